//! The one commit point of a plugin install, shared by `cargo xtask
//! install-plugin` (`<dir>/.store`), the daemon's page upload
//! (`<dir>/.store`) and OCI provisioning (`<dir>/.oci`):
//!
//! ```text
//! <plugin dir>/<id> -> <store>/<package folder>     the link the host discovers
//! ```
//!
//! 1. [`stage_files`] writes a package's files into a fresh staging folder
//!    on the same file system (each file synced, the folder synced once);
//! 2. [`commit_folder`] renames that folder into the store, so a package
//!    folder is complete or absent and, once there, never rewritten;
//! 3. [`switch_link`] renames a new symlink over `<dir>/<id>`: the commit
//!    point. On an error `<dir>/<id>` is what it was; [`restore_link`]
//!    puts back what it returned, when the new version fails its start.
//!
//! A crash before step 3 leaves the previous version installed (plus a
//! staging or store folder the owner's cleanup removes); after it, the new.
//!
//! ```
//! use plugkit_durable::install::{commit_folder, stage_files, switch_link, IfExists, IfFolder};
//! let dir = tempfile::tempdir().unwrap();
//! let (root, store) = (dir.path(), dir.path().join(".store"));
//! let staged = root.join(".staging-sms");
//! std::fs::create_dir_all(&staged).unwrap();
//! stage_files(&staged, &[("plugin.toml", b"id = \"sms\"\n", 0o644)]).unwrap();
//! let folder = commit_folder(&staged, &store, "sms-1.0.0", IfExists::NewName).unwrap();
//! switch_link(root, "sms", &folder, &store, IfFolder::Refuse).unwrap();
//! assert!(root.join("sms/plugin.toml").is_file());
//! ```

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{symlink, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::{failed, sync_dir, WriteError};

/// An install step failed; `<dir>/<id>` is unchanged.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InstallError {
    /// A file step failed.
    #[error(transparent)]
    Io(#[from] WriteError),
    /// `<dir>/<id>` is a plain folder or file (laid out by hand), and the
    /// caller asked not to replace one ([`IfFolder::Refuse`]).
    #[error("{} exists and is not a symlink (installed by hand?); move it out of the plugin directory", link.display())]
    NotALink {
        /// `<dir>/<id>`.
        link: PathBuf,
    },
}

/// What [`commit_folder`] does when the store already has a folder of that name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IfExists {
    /// Keep the existing folder and drop the staged one: names are content
    /// addressed (OCI digests), so it holds the same bytes.
    Keep,
    /// Take a new name `<name>.2`, `<name>.3`, …: the existing one may be
    /// damaged (that is why it is reinstalled) or in use.
    NewName,
}

/// What [`switch_link`] does when `<dir>/<id>` is not a symlink.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IfFolder {
    /// Refuse with [`InstallError::NotALink`].
    Refuse,
    /// Move it into this folder (same file system), so the link can take
    /// its place; [`Previous::Folder`] says where it went.
    MoveAside(PathBuf),
}

/// What `<dir>/<id>` was before [`switch_link`] replaced it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Previous {
    /// Nothing.
    Nothing,
    /// A symlink to this target (as written in the link).
    Link(PathBuf),
    /// A folder, moved aside to this path.
    Folder(PathBuf),
}

/// Writes `files` (name, bytes, permission bits) into the existing folder
/// `staged`: every file written, then every file synced (the first sync's
/// journal commit carries the others', so they cost little), then the
/// folder synced once. Names are plain file names.
///
/// # Errors
/// The first file that cannot be created, written or synced.
pub fn stage_files(staged: &Path, files: &[(&str, &[u8], u32)]) -> Result<(), InstallError> {
    let mut written = Vec::with_capacity(files.len());
    for (name, bytes, mode) in files {
        let path = staged.join(name);
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(*mode)
            .open(&path)
            .map_err(failed("create", &path))?;
        file.write_all(bytes).map_err(failed("write", &path))?;
        written.push((file, path));
    }
    for (file, path) in written {
        file.sync_all().map_err(failed("sync", &path))?;
    }
    Ok(sync_dir(staged)?)
}

/// Moves the complete folder `staged` into `store` (created if needed) as
/// `name` with one rename, and syncs both directories. Returns the folder.
///
/// # Errors
/// Creating the store, the rename, or a sync failed; `staged` is removed
/// on a failed rename.
pub fn commit_folder(
    staged: &Path,
    store: &Path,
    name: &str,
    if_exists: IfExists,
) -> Result<PathBuf, InstallError> {
    fs::create_dir_all(store).map_err(failed("create", store))?;
    let mut target = store.join(name);
    if target.exists() {
        match if_exists {
            IfExists::Keep => {
                let _ = fs::remove_dir_all(staged);
                return Ok(target);
            }
            IfExists::NewName => {
                let mut n = 2;
                while target.exists() {
                    target = store.join(format!("{name}.{n}"));
                    n += 1;
                }
            }
        }
    }
    if let Err(e) = fs::rename(staged, &target) {
        let _ = fs::remove_dir_all(staged);
        return Err(failed("move into the store as", &target)(e).into());
    }
    sync_dir(store)?;
    if let Some(parent) = staged.parent().filter(|p| *p != store) {
        sync_dir(parent)?;
    }
    Ok(target)
}

/// Points `<root>/<id>` at `target` (a folder under `root`; the link is
/// written relative to `root`) by renaming a new symlink, made in `tmp_dir`
/// (same file system), over it; syncs `root`. Returns what was there.
///
/// # Errors
/// `<root>/<id>` is not a symlink and `if_folder` refuses, or a step
/// failed; in every case `<root>/<id>` is what it was.
pub fn switch_link(
    root: &Path,
    id: &str,
    target: &Path,
    tmp_dir: &Path,
    if_folder: IfFolder,
) -> Result<Previous, InstallError> {
    let link = root.join(id);
    let relative = target.strip_prefix(root).unwrap_or(target);
    let previous = match fs::symlink_metadata(&link) {
        Err(_) => Previous::Nothing,
        Ok(meta) if meta.file_type().is_symlink() => {
            Previous::Link(fs::read_link(&link).map_err(failed("read", &link))?)
        }
        Ok(_) => match if_folder {
            IfFolder::Refuse => return Err(InstallError::NotALink { link }),
            IfFolder::MoveAside(dir) => {
                fs::create_dir_all(&dir).map_err(failed("create", &dir))?;
                let aside = dir.join(format!("{id}-replaced-{}", std::process::id()));
                let _ = fs::remove_dir_all(&aside);
                fs::rename(&link, &aside).map_err(failed("move aside", &link))?;
                Previous::Folder(aside)
            }
        },
    };
    let linked = replace_link(&link, relative, tmp_dir).and_then(|()| Ok(sync_dir(root)?));
    if let Err(e) = linked {
        let _ = restore_link(root, id, previous, tmp_dir);
        return Err(e);
    }
    Ok(previous)
}

/// Puts back what `<root>/<id>` was before [`switch_link`] returned `previous`.
///
/// # Errors
/// A step failed (the caller reports it: the link may point at the new folder).
pub fn restore_link(
    root: &Path,
    id: &str,
    previous: Previous,
    tmp_dir: &Path,
) -> Result<(), InstallError> {
    let link = root.join(id);
    match previous {
        Previous::Nothing => match fs::remove_file(&link) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(failed("remove", &link)(e).into()),
        },
        Previous::Link(target) => replace_link(&link, &target, tmp_dir)?,
        Previous::Folder(aside) => {
            let _ = fs::remove_file(&link);
            fs::rename(&aside, &link).map_err(failed("move back", &link))?;
        }
    }
    Ok(sync_dir(root)?)
}

/// Removes the link `<root>/<id>` (the package folder stays) and syncs
/// `root`. Returns whether there was one.
///
/// # Errors
/// The removal or the sync failed.
pub fn unlink(root: &Path, id: &str) -> Result<bool, InstallError> {
    let link = root.join(id);
    match fs::remove_file(&link) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(failed("remove", &link)(e).into()),
    }
    sync_dir(root)?;
    Ok(true)
}

/// A new symlink to `target` renamed over `link`.
fn replace_link(link: &Path, target: &Path, tmp_dir: &Path) -> Result<(), InstallError> {
    fs::create_dir_all(tmp_dir).map_err(failed("create", tmp_dir))?;
    let name = link.file_name().unwrap_or_default().to_string_lossy();
    let tmp = tmp_dir.join(format!(".link-{name}-{}", std::process::id()));
    let _ = fs::remove_file(&tmp);
    symlink(target, &tmp).map_err(failed("create the symlink", &tmp))?;
    if let Err(e) = fs::rename(&tmp, link) {
        let _ = fs::remove_file(&tmp);
        return Err(failed("replace", link)(e).into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stage(root: &Path, name: &str, body: &[u8]) -> PathBuf {
        let staged = root.join(".staging").join(name);
        fs::create_dir_all(&staged).unwrap();
        stage_files(&staged, &[("plugin.toml", body, 0o644)]).unwrap();
        staged
    }

    #[test]
    fn a_folder_is_committed_then_linked_and_an_existing_name_is_kept_or_renamed() {
        let dir = tempfile::tempdir().unwrap();
        let (root, store) = (dir.path(), dir.path().join(".store"));
        let first =
            commit_folder(&stage(root, "a", b"1"), &store, "p-1", IfExists::NewName).unwrap();
        let second =
            commit_folder(&stage(root, "b", b"2"), &store, "p-1", IfExists::NewName).unwrap();
        assert_eq!(second, store.join("p-1.2"));
        let kept = commit_folder(&stage(root, "c", b"3"), &store, "p-1", IfExists::Keep).unwrap();
        assert_eq!(kept, first);
        assert_eq!(fs::read(first.join("plugin.toml")).unwrap(), b"1");
        assert!(
            !root.join(".staging/c").exists(),
            "the staged copy is dropped"
        );

        let previous = switch_link(root, "p", &first, &store, IfFolder::Refuse).unwrap();
        assert_eq!(previous, Previous::Nothing);
        assert_eq!(
            fs::read_link(root.join("p")).unwrap(),
            Path::new(".store/p-1")
        );
        let previous = switch_link(root, "p", &second, &store, IfFolder::Refuse).unwrap();
        assert_eq!(previous, Previous::Link(PathBuf::from(".store/p-1")));
        assert_eq!(fs::read(root.join("p/plugin.toml")).unwrap(), b"2");
        restore_link(root, "p", previous, &store).unwrap();
        assert_eq!(fs::read(root.join("p/plugin.toml")).unwrap(), b"1");
        assert!(unlink(root, "p").unwrap());
        assert!(!unlink(root, "p").unwrap());
        assert!(first.is_dir(), "unlinking keeps the package folder");
        let leftovers: Vec<_> = fs::read_dir(&store)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(".link-"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }

    #[test]
    fn a_hand_made_folder_is_refused_or_moved_aside_and_put_back() {
        let dir = tempfile::tempdir().unwrap();
        let (root, store) = (dir.path(), dir.path().join(".store"));
        fs::create_dir_all(root.join("p")).unwrap();
        fs::write(root.join("p/plugin.toml"), b"by hand").unwrap();
        let folder =
            commit_folder(&stage(root, "a", b"new"), &store, "p-1", IfExists::NewName).unwrap();
        let refused = switch_link(root, "p", &folder, &store, IfFolder::Refuse).unwrap_err();
        assert!(
            matches!(refused, InstallError::NotALink { .. }),
            "{refused}"
        );
        assert!(
            refused.to_string().contains("is not a symlink"),
            "{refused}"
        );
        let aside = root.join(".staging");
        let previous = switch_link(
            root,
            "p",
            &folder,
            &store,
            IfFolder::MoveAside(aside.clone()),
        )
        .unwrap();
        assert!(matches!(&previous, Previous::Folder(p) if p.starts_with(&aside)));
        assert_eq!(fs::read(root.join("p/plugin.toml")).unwrap(), b"new");
        restore_link(root, "p", previous, &store).unwrap();
        assert!(!fs::symlink_metadata(root.join("p")).unwrap().is_symlink());
        assert_eq!(fs::read(root.join("p/plugin.toml")).unwrap(), b"by hand");
    }
}
