//! An uploaded plugin package, read and verified in memory before anything
//! is written: the tar of one package folder as `cargo xtask install-plugin`
//! makes it (`plugin.toml`, the library it names, `<library>.minisig`,
//! optionally `SHA256SUMS`). Pure: bytes in, a verified package or a
//! [`Problem`] out; the daemon's `packages` module does the writing.
//!
//! Make one with `tar -cf <id>.tar -C <package folder> .` (plain POSIX/GNU
//! tar; a gzip-compressed tar is refused with that hint).

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use plugin_host::package::manifest::Manifest;
use plugin_host::package::signature::{
    embedded_identity, sha256_hex, verify_signature, Expected, TrustPolicy,
};

use crate::error::Problem;

/// The largest package the API takes (bytes): a debug build of a reference
/// plugin is ~7 MiB.
pub const MAX_PACKAGE_BYTES: usize = 64 * 1024 * 1024;
/// The most files a package may hold (it needs four).
const MAX_FILES: usize = 16;
/// The manifest's file name.
pub const MANIFEST: &str = "plugin.toml";
/// The checksum file's name.
pub const CHECKSUMS: &str = "SHA256SUMS";

/// What to do when a package is refused, said once for every refusal.
const WHAT_TO_DO: &str = "upload a plain tar of one package folder: make the folder with \
                          `cargo xtask install-plugin <plugin> --plugin-dir <dir>` (it becomes \
                          `<dir>/<plugin id>`), then `tar -cf <plugin id>.tar -C <dir>/<plugin id> .`";

/// Whether `bytes` start with a tar header block: 512 bytes whose checksum
/// field (octal, bytes 148..156) is the sum of the block's bytes with that
/// field counted as spaces (POSIX.1-1988 ustar, GNU and v7 tar alike). An
/// all-zero first block (an empty archive) counts as tar.
fn starts_with_tar_header(bytes: &[u8]) -> bool {
    let Some(block) = bytes.get(..512) else {
        return false;
    };
    if block.iter().all(|b| *b == 0) {
        return true;
    }
    let field = &block[148..156];
    let digits: String = field
        .iter()
        .map(|b| *b as char)
        .filter(|c| !matches!(c, '\0' | ' '))
        .collect();
    let Ok(stored) = u32::from_str_radix(&digits, 8) else {
        return false;
    };
    let sum: u32 = block
        .iter()
        .enumerate()
        .map(|(i, b)| {
            if (148..156).contains(&i) {
                32
            } else {
                u32::from(*b)
            }
        })
        .sum();
    stored == sum
}

/// What a body that is not a tar looks like, for the refusal's words.
fn looks_like(bytes: &[u8]) -> &'static str {
    let starts = |magic: &[u8]| bytes.starts_with(magic);
    if starts(b"PK\x03\x04") {
        "a zip archive"
    } else if starts(b"\x7fELF") {
        "a bare shared library (a package also needs its plugin.toml and signature)"
    } else if starts(b"\xfd7zXZ\0") {
        "an xz-compressed file"
    } else if starts(b"BZh") {
        "a bzip2-compressed file"
    } else if starts(&[0x28, 0xb5, 0x2f, 0xfd]) {
        "a zstd-compressed file"
    } else if starts(b"--") && bytes.windows(19).any(|w| w == b"Content-Disposition") {
        "a multipart form (send the file itself as the body, e.g. `curl --data-binary @<file>`)"
    } else if std::str::from_utf8(&bytes[..bytes.len().min(512)])
        .is_ok_and(|t| !t.chars().any(|c| c.is_control() && !c.is_whitespace()))
    {
        "text"
    } else {
        "some other binary file"
    }
}

/// A package whose manifest, library identity, API range and signature
/// passed the host's checks.
#[derive(Debug)]
pub struct VerifiedPackage {
    /// The parsed manifest.
    pub manifest: Manifest,
    /// Every file of the package by name (flat: a package has no folders).
    pub files: BTreeMap<String, Vec<u8>>,
    /// The signing key's id, or why the package is accepted unsigned
    /// (only under `allow-unsigned`).
    pub signature: Result<String, String>,
    /// SHA-256 of the library, hex.
    pub library_sha256: String,
}

/// Reads the files of a tar archive: regular files at the top level only.
pub fn read_tar(bytes: &[u8], name: &str) -> Result<BTreeMap<String, Vec<u8>>, Problem> {
    let refuse =
        |why: String| Problem::unprocessable(format!("package {name}: {why}; {WHAT_TO_DO}"));
    if bytes.is_empty() {
        return Err(refuse("the request body is empty".to_owned()));
    }
    if bytes.starts_with(&[0x1f, 0x8b]) {
        return Err(refuse(
            "it is gzip-compressed; send the plain tar (`tar -cf`, not `tar -czf`)".to_owned(),
        ));
    }
    if bytes.len() > MAX_PACKAGE_BYTES {
        return Err(too_large(name, bytes.len()));
    }
    if !starts_with_tar_header(bytes) {
        return Err(refuse(format!(
            "the upload is not a tar archive: its {} bytes look like {}",
            bytes.len(),
            looks_like(bytes)
        )));
    }
    let mut archive = tar::Archive::new(bytes);
    let entries = archive
        .entries()
        .map_err(|e| refuse(format!("it is not a tar archive ({e})")))?;
    let mut files = BTreeMap::new();
    for entry in entries {
        let mut entry =
            entry.map_err(|e| refuse(format!("it is not a valid tar archive ({e})")))?;
        let path = entry
            .path()
            .map_err(|e| refuse(format!("an entry's name is not valid ({e})")))?
            .into_owned();
        let kind = entry.header().entry_type();
        let parts: Vec<String> = path
            .components()
            .filter_map(|c| match c {
                std::path::Component::Normal(p) => Some(p.to_string_lossy().into_owned()),
                _ => None,
            })
            .collect();
        let clean = path.components().all(|c| {
            matches!(
                c,
                std::path::Component::Normal(_) | std::path::Component::CurDir
            )
        });
        if kind.is_dir() && parts.is_empty() {
            continue;
        }
        if !clean || parts.len() != 1 || !kind.is_file() {
            return Err(refuse(format!(
                "entry `{}` is not a plain file at the archive's top level (a package is one \
                 flat folder; links, folders and `..` are refused)",
                path.display()
            )));
        }
        let file = parts.into_iter().next().unwrap_or_default();
        if files.len() >= MAX_FILES {
            return Err(refuse(format!("it holds more than {MAX_FILES} files")));
        }
        let mut data = Vec::new();
        entry
            .read_to_end(&mut data)
            .map_err(|e| refuse(format!("entry `{file}` cannot be read ({e})")))?;
        if files.insert(file.clone(), data).is_some() {
            return Err(refuse(format!("it holds `{file}` twice")));
        }
    }
    if files.is_empty() {
        return Err(refuse("the archive holds no files".to_owned()));
    }
    Ok(files)
}

/// The refusal of a package over [`MAX_PACKAGE_BYTES`].
pub fn too_large(name: &str, bytes: usize) -> Problem {
    Problem::new(
        crate::error::ProblemKind::PayloadTooLarge,
        format!(
            "package {name} is {} MiB, over the limit of {} MiB; build the plugin in release \
             mode (`cargo xtask install-plugin --release`) or strip its library",
            bytes.div_ceil(1024 * 1024),
            MAX_PACKAGE_BYTES / (1024 * 1024)
        ),
    )
}

/// Verifies `files` as the host would before loading: a manifest that
/// parses, the library it names, a library built as that plugin and
/// version, an API range this host meets, checksums that match, and a
/// signature by a trusted key binding library and manifest (unless `trust`
/// is `allow-unsigned`).
pub fn verify(
    files: BTreeMap<String, Vec<u8>>,
    name: &str,
    trust: &TrustPolicy,
    host_api: &semver::Version,
) -> Result<VerifiedPackage, Problem> {
    let refuse = |why: String| Problem::unprocessable(format!("package {name}: {why}"));
    let Some(manifest_bytes) = files.get(MANIFEST) else {
        return Err(refuse(format!(
            "it has no {MANIFEST} at its top level (it holds {}); {WHAT_TO_DO}",
            files.keys().cloned().collect::<Vec<_>>().join(", ")
        )));
    };
    let text = std::str::from_utf8(manifest_bytes).map_err(|_| {
        refuse(format!(
            "its {MANIFEST} is not UTF-8 text; fix the manifest"
        ))
    })?;
    let manifest = Manifest::parse(text, Path::new(MANIFEST))
        .map_err(|e| refuse(format!("its manifest is broken: {e}")))?;
    let id = manifest.id.clone();
    let refuse = |why: String| refuse(why).plugin(&id);
    let Some(library) = files.get(&manifest.library) else {
        return Err(refuse(format!(
            "{MANIFEST} names the library `{}`, which the package does not hold; {WHAT_TO_DO}",
            manifest.library
        )));
    };
    if !manifest.api.matches(host_api) {
        return Err(refuse(format!(
            "plugin `{id}` {} needs plugin API {}, and this daemon's plugin API is {host_api}; \
             rebuild the plugin against plugin-api {host_api} or upgrade the daemon",
            manifest.version, manifest.api
        )));
    }
    let embedded = embedded_identity(library).map_err(|reason| {
        refuse(format!(
            "`{}` is not a loadable plugkit library ({reason}); rebuild the plugin",
            manifest.library
        ))
    })?;
    if embedded.id != manifest.id || embedded.version != manifest.version {
        return Err(refuse(format!(
            "{MANIFEST} says `{id}` {} but `{}` was built as `{}` {}; make `id` and `version` \
             agree with the plugin's code and rebuild",
            manifest.version, manifest.library, embedded.id, embedded.version
        )));
    }
    let library_sha256 = sha256_hex(library);
    if let Some(sums) = files.get(CHECKSUMS) {
        let sums = String::from_utf8_lossy(sums);
        for (file, bytes) in [
            (MANIFEST, manifest_bytes),
            (manifest.library.as_str(), library),
        ] {
            let listed = sums.lines().find_map(|line| {
                let (hash, listed) = line.split_once("  ")?;
                (listed == file).then_some(hash)
            });
            if listed.is_some_and(|hash| !hash.eq_ignore_ascii_case(&sha256_hex(bytes))) {
                return Err(refuse(format!(
                    "`{file}` changed after the package was made (its SHA-256 is not the one in \
                     {CHECKSUMS}); rebuild the package with `cargo xtask install-plugin`"
                )));
            }
        }
    }
    let signature_name = format!("{}.minisig", manifest.library);
    let version = manifest.version.to_string();
    let signature = match (files.get(&signature_name), trust) {
        (Some(signature), TrustPolicy::Require { trusted_keys }) => {
            let text = String::from_utf8_lossy(signature);
            let expected = Expected::plugin(&id, &version).manifest(manifest_bytes);
            let verified =
                verify_signature(library, &text, trusted_keys, &expected).map_err(|e| {
                    refuse(format!(
                        "its signature does not verify: {e}; sign it with a key this daemon \
                         trusts (`cargo xtask install-plugin` signs with yours; the daemon's \
                         [trust] keys list the trusted ones)"
                    ))
                })?;
            Ok(verified.key_id)
        }
        (None, TrustPolicy::Require { .. }) => {
            return Err(refuse(format!(
                "it is unsigned (no `{signature_name}`) and this daemon loads only signed \
                 plugins; sign it with `cargo xtask sign <package folder>` and upload it again"
            )))
        }
        (Some(_), TrustPolicy::AllowUnsigned) => {
            Err("the daemon runs with allow-unsigned; the signature was not checked".to_owned())
        }
        (None, TrustPolicy::AllowUnsigned) => {
            Err("unsigned; accepted because the daemon runs with allow-unsigned".to_owned())
        }
    };
    Ok(VerifiedPackage {
        manifest,
        files,
        signature,
        library_sha256,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tar_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for (name, data) in entries {
            let mut header = tar::Header::new_gnu();
            header.set_size(data.len() as u64);
            header.set_mode(0o644);
            header.set_entry_type(tar::EntryType::Regular);
            builder
                .append_data(&mut header, name, *data)
                .expect("append");
        }
        builder.into_inner().expect("tar")
    }

    fn check_tar(bytes: &[u8], expected: Result<&[&str], &str>) {
        match (read_tar(bytes, "p.tar"), expected) {
            (Ok(files), Ok(names)) => {
                assert_eq!(files.keys().map(String::as_str).collect::<Vec<_>>(), names)
            }
            (Err(problem), Err(part)) => {
                assert!(problem.error.contains(part), "{problem}");
                assert!(problem.error.contains("p.tar"), "{problem}");
            }
            (got, want) => panic!("got {got:?}, expected {want:?}"),
        }
    }

    #[test]
    fn a_package_archive_is_one_flat_folder_of_plain_files() {
        check_tar(
            &tar_of(&[("plugin.toml", b"id"), ("./libx.so", b"elf")]),
            Ok(&["libx.so", "plugin.toml"]),
        );
        check_tar(b"", Err("empty"));
        check_tar(&[0x1f, 0x8b, 8, 0], Err("gzip"));
        check_tar(&tar_of(&[("sub/plugin.toml", b"id")]), Err("top level"));
        check_tar(&tar_of(&[("a", b"1"), ("a", b"2")]), Err("twice"));
        // A tar of zero blocks holds nothing.
        check_tar(&[0u8; 1024], Err("no files"));
    }

    /// New-user trial: garbage uploaded to the page gave an unclear error
    /// (the tar reader's own words); the refusal names the upload, says what
    /// it looks like, what a package is and how to make one.
    #[test]
    fn an_upload_that_is_not_a_tar_says_what_it_looks_like_and_how_to_make_one() {
        let mut ustar = tar_of(&[("plugin.toml", b"id")]);
        assert!(starts_with_tar_header(&ustar));
        let mut old_style = ustar.clone();
        old_style[257..265].fill(0); // no magic: a v7 header still checks
        let sum: u32 = old_style[..512]
            .iter()
            .enumerate()
            .map(|(i, b)| {
                if (148..156).contains(&i) {
                    32
                } else {
                    u32::from(*b)
                }
            })
            .sum();
        old_style[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
        assert!(starts_with_tar_header(&old_style));
        ustar[0] ^= 1; // a broken checksum is not a tar
        let mut elf = b"\x7fELF".to_vec();
        elf.resize(4096, 0);
        let mut zip = b"PK\x03\x04".to_vec();
        zip.resize(700, 7);
        let form = b"--xyz\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\n".repeat(20);
        for (body, looks) in [
            (
                &b"this is not a package, it is a sentence"[..],
                "look like text",
            ),
            (&ustar[..], "some other binary file"),
            (&elf[..], "a bare shared library"),
            (&zip[..], "a zip archive"),
            (&form[..], "a multipart form"),
            (&[0xff; 600][..], "some other binary file"),
        ] {
            let problem = read_tar(body, "`garbage.tar`").expect_err("refused");
            let text = problem.error;
            for part in [
                "package `garbage.tar`: the upload is not a tar archive",
                looks,
                "plain tar of one package folder",
                "cargo xtask install-plugin",
                "tar -cf",
            ] {
                assert!(text.contains(part), "{text:?} lacks {part:?}");
            }
        }
    }

    #[test]
    fn a_package_without_a_manifest_or_library_is_refused_by_name() {
        let api = semver::Version::new(0, 2, 0);
        let check = |files: &[(&str, &[u8])], part: &str| {
            let map = files
                .iter()
                .map(|(n, d)| ((*n).to_owned(), d.to_vec()))
                .collect();
            let problem =
                verify(map, "p.tar", &TrustPolicy::AllowUnsigned, &api).expect_err("refused");
            assert!(problem.error.contains(part), "{problem}");
            assert!(problem.error.starts_with("package p.tar:"), "{problem}");
        };
        check(&[("libx.so", b"x")], "has no plugin.toml");
        check(&[("plugin.toml", b"id = 3")], "manifest is broken");
        let manifest = b"id = \"xx\"\nname = \"X\"\nversion = \"1.0.0\"\napi = \"^0.2\"\nlibrary = \"libx.so\"\n";
        check(&[("plugin.toml", manifest)], "does not hold");
        check(
            &[("plugin.toml", manifest), ("libx.so", b"not elf")],
            "not a loadable plugkit library",
        );
        let old = b"id = \"xx\"\nname = \"X\"\nversion = \"1.0.0\"\napi = \"^0.1\"\nlibrary = \"libx.so\"\n";
        check(
            &[("plugin.toml", old), ("libx.so", b"not elf")],
            "needs plugin API ^0.1",
        );
    }
}
