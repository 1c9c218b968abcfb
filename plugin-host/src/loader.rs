//! Stages a plugin library into a private, content-addressed path, checks it,
//! and loads it. The only module that calls `dlopen`; with `isolation`, the
//! only one holding `unsafe`.
//!
//! Invariants:
//! - the loaded file is always a private copy named by its content hash
//!   (`<runtime dir>/<id>-<sha256 prefix>.so`, directory mode 0700): never the
//!   install path, and a loaded file is never overwritten (renaming a new
//!   file over a loaded path makes `dlopen` return the old library; writing
//!   into it in place segfaults);
//! - bytes reach `dlopen` only after [`plugin_package::identity`] accepted them;
//! - layouts are checked with a fresh `CheckingGlobals` per load, so no
//!   global map keeps pointers into a library (abi_stable's global checker
//!   does, which makes unloading unsafe);
//! - every value returned by the plugin is copied into host-owned memory
//!   before the library could go away.

use std::any::TypeId;
use std::ffi::c_void;
use std::fs;
use std::io::Write;
use std::mem::ManuallyDrop;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use abi_stable::abi_stability::abi_checking::{
    check_layout_compatibility_with_globals, CheckingGlobals,
};
use abi_stable::library::{
    lib_header_from_raw_library, AbiHeaderRef, LibHeader, LibraryError, RawLibrary, RootModule,
};
use abi_stable::type_layout::TypeLayout;
use abi_stable::StableAbi;
use plugin_api::abi::{PluginInstance, PluginModRef};
use plugin_api::category::Contract;
use sha2::{Digest, Sha256};

use crate::error::{Call, HostError};
use plugin_package::identity as elf;

/// What a library says about itself, copied into host memory.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PluginIdentity {
    /// Stable identifier.
    pub id: String,
    /// Human-readable name.
    pub name: String,
    /// The plugin's version.
    pub version: String,
    /// One-line description.
    pub description: String,
    /// Authors.
    pub authors: String,
    /// Category code.
    pub category: String,
    /// The plugin-api version it was built against.
    pub api_version: String,
}

/// A library copied into the runtime directory, not loaded yet.
#[derive(Debug, Clone)]
pub(crate) struct StagedLibrary {
    /// Where the operator installed it.
    pub(crate) source: PathBuf,
    /// The private copy that will be loaded.
    pub(crate) path: PathBuf,
    /// SHA-256 of the exact bytes of the private copy.
    pub(crate) sha256: [u8; 32],
    /// The identity embedded in the library, when it has one.
    pub(crate) embedded: Option<plugin_api::sdk::Identity>,
    /// The name used in errors until the library's own id is known.
    pub(crate) label: String,
}

/// A loaded library. When the last plugin object from it is gone it is
/// unloaded (if the host allows it), and `/proc/self/maps` is checked to
/// confirm; a library glibc keeps mapped is reported, never a crash.
pub(crate) struct Library {
    /// `None` for a library loaded by an isolated plugin's runner instead.
    raw: Option<ManuallyDrop<RawLibrary>>,
    pub(crate) path: PathBuf,
    pub(crate) sha256: [u8; 32],
    label: String,
    unload: Option<Arc<UnloadLog>>,
}

impl Drop for Library {
    fn drop(&mut self) {
        let Some(raw) = self.raw.as_mut() else {
            // Mapped in a runner process, which unmaps it by exiting.
            return;
        };
        let Some(log) = self.unload.take() else {
            // Never unloaded: the mapping stays for the life of the process.
            return;
        };
        // SAFETY: `Library` is only reachable through `Arc`s held by objects
        // from this library, which have all been dropped (field order in
        // `LoadedPlugin`), and the layout check kept no pointers into it.
        unsafe { ManuallyDrop::drop(raw) };
        log.record(&self.label, &self.path);
    }
}

impl Library {
    /// Stands for a library that an isolated plugin's runner loaded.
    pub(crate) fn in_child(staged: &StagedLibrary) -> Self {
        Self {
            raw: None,
            path: staged.path.clone(),
            sha256: staged.sha256,
            label: staged.label.clone(),
            unload: None,
        }
    }
}

/// What happened to libraries the host tried to unload.
#[derive(Default)]
pub(crate) struct UnloadLog {
    unloaded: std::sync::atomic::AtomicU64,
    pinned: parking_lot::Mutex<Vec<PinnedLibrary>>,
}

/// A library still mapped after `dlclose`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PinnedLibrary {
    /// The plugin.
    pub plugin: String,
    /// The private copy that stays mapped.
    pub path: PathBuf,
    /// Why it is likely still mapped.
    pub reason: String,
}

/// Counts of unload outcomes.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct UnloadStats {
    /// Libraries unmapped after their plugin was gone.
    pub unloaded: u64,
    /// Libraries still mapped after `dlclose`.
    pub pinned: Vec<PinnedLibrary>,
}

impl UnloadLog {
    fn record(&self, plugin: &str, path: &Path) {
        if is_mapped(path) {
            let reason = "still mapped after dlclose: the plugin left a thread-local destructor \
                          pending or a thread running (see ARCHITECTURE.md, the unload contract)";
            tracing::warn!(plugin, path = %path.display(), "could not unload: {reason}");
            self.pinned.lock().push(PinnedLibrary {
                plugin: plugin.to_owned(),
                path: path.to_owned(),
                reason: reason.to_owned(),
            });
        } else {
            self.unloaded
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            tracing::debug!(plugin, path = %path.display(), "unloaded");
            let _ = fs::remove_file(path);
        }
    }

    pub(crate) fn stats(&self) -> UnloadStats {
        UnloadStats {
            unloaded: self.unloaded.load(std::sync::atomic::Ordering::Relaxed),
            pinned: self.pinned.lock().clone(),
        }
    }
}

/// Whether `path` appears in this process's memory map.
pub(crate) fn is_mapped(path: &Path) -> bool {
    let needle = path.to_string_lossy();
    match fs::read_to_string("/proc/self/maps") {
        Ok(maps) => maps
            .lines()
            .any(|line| line.split_whitespace().nth(5).is_some_and(|p| p == needle)),
        // Without /proc we cannot prove it is gone: report it as kept.
        Err(_) => true,
    }
}

/// A plugin object and the library it came from.
pub(crate) struct LoadedPlugin {
    // Field order matters: the instance's vtables live in the library, so the
    // instance must drop first (the reverse order segfaults).
    pub(crate) instance: PluginInstance,
    /// Typed views of `instance.categories`, checked at load.
    pub(crate) categories: CheckedCategories,
    pub(crate) identity: PluginIdentity,
    pub(crate) library: Arc<Library>,
    /// The runner process serving this plugin, in process isolation (an
    /// `isolation::ChildPlugin`, type-erased so the loader does not depend on
    /// the isolation module; it lives exactly as long as this version).
    pub(crate) isolation: Option<Arc<dyn std::any::Any + Send + Sync>>,
    /// How many fast-path handles are bound to this version (`fast`): their
    /// references do not mean a call is in flight, so a reload's drain
    /// does not wait for them.
    pub(crate) fast_bound: std::sync::atomic::AtomicUsize,
}

/// The category objects of one instance whose layouts matched what this
/// host expects, by contract type. Categories this host does not know are
/// left out (a newer plugin on an older host); a known category with another
/// layout refuses the whole plugin.
pub(crate) struct CheckedCategories {
    entries: Vec<CheckedCategory>,
}

struct CheckedCategory {
    contract: TypeId,
    name: &'static str,
    object: *const c_void,
}

// SAFETY: the pointers are to `Send + Sync` objects owned by the instance
// next to which this table is always kept (see `LoadedPlugin`).
unsafe impl Send for CheckedCategories {}
// SAFETY: as above.
unsafe impl Sync for CheckedCategories {}

impl CheckedCategories {
    pub(crate) fn check(
        instance: &PluginInstance,
        plugin: &str,
        path: &Path,
    ) -> Result<Self, HostError> {
        struct CheckLayout<'a> {
            found: *const c_void,
            globals: &'a CheckingGlobals,
        }
        impl plugin_api::category::ContractVisitor for CheckLayout<'_> {
            type Output = Result<(TypeId, &'static str), String>;
            fn visit<C: Contract>(self) -> Self::Output {
                // SAFETY: `export_object`, the only constructor of a
                // `CategoryObject`, stores a `&'static TypeLayout` here.
                let found = unsafe { &*self.found.cast::<TypeLayout>() };
                check_layout_compatibility_with_globals(
                    <C::Object as StableAbi>::LAYOUT,
                    found,
                    self.globals,
                )
                .map_err(|errors| errors.to_string())?;
                Ok((TypeId::of::<C>(), C::NAME))
            }
        }
        let globals = CheckingGlobals::new();
        let mut entries: Vec<CheckedCategory> = Vec::new();
        for object in instance.categories.iter() {
            let name = object.name.as_str();
            if name == plugin_api::fast::NAME {
                continue; // not a category: checked where it is used (`fast`)
            }
            let visitor = CheckLayout {
                found: object.layout,
                globals: &globals,
            };
            match plugin_api::visit_category(name, visitor) {
                None => tracing::debug!(
                    plugin,
                    category = name,
                    "the plugin exports a category this host does not know; ignored"
                ),
                Some(Err(full)) => {
                    tracing::debug!(
                        plugin,
                        category = name,
                        "category ABI mismatch details:\n{full}"
                    );
                    return Err(HostError::AbiMismatch {
                        plugin: plugin.to_owned(),
                        path: path.to_owned(),
                        summary: format!("category `{name}`: {}", summarize_abi_errors(&full)),
                    });
                }
                Some(Ok((contract, name))) => {
                    if entries.iter().all(|e| e.contract != contract) {
                        entries.push(CheckedCategory {
                            contract,
                            name,
                            object: object.object.cast_const(),
                        });
                    }
                }
            }
        }
        Ok(Self { entries })
    }

    /// The plugin's object for contract `C`, when it exports one.
    #[inline]
    pub(crate) fn get<C: Contract>(&self) -> Option<&C::Object> {
        let contract = TypeId::of::<C>();
        let entry = self.entries.iter().find(|e| e.contract == contract)?;
        // SAFETY: the entry was recorded for `C` only after the object's
        // layout was checked against `C::Object`'s, and the object lives as
        // long as the instance this table is kept with.
        Some(unsafe { &*entry.object.cast::<C::Object>() })
    }

    /// The names of the categories the plugin exports that this host knows.
    pub(crate) fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.entries.iter().map(|e| e.name)
    }
}

/// Stages and loads libraries from one private runtime directory.
pub(crate) struct Loader {
    runtime_dir: PathBuf,
    /// Makes every private copy a distinct path: `dlopen` of a path that is
    /// still loaded returns the old library.
    sequence: std::sync::atomic::AtomicU64,
    unload: Option<Arc<UnloadLog>>,
}

impl Loader {
    /// Creates the runtime directory with mode 0700.
    pub(crate) fn new(runtime_dir: PathBuf, unload: bool) -> Result<Self, HostError> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&runtime_dir)
            .map_err(|source| HostError::Io {
                plugin: "<host>".to_owned(),
                action: "creating the runtime directory",
                path: runtime_dir.clone(),
                source,
            })?;
        Ok(Self {
            runtime_dir,
            sequence: std::sync::atomic::AtomicU64::new(0),
            unload: unload.then(|| Arc::new(UnloadLog::default())),
        })
    }

    /// The loader a runner process uses: no runtime directory (it loads
    /// from an inherited fd) and no unloading (the process exits instead).
    pub(crate) fn for_runner() -> Self {
        Self {
            runtime_dir: PathBuf::new(),
            sequence: std::sync::atomic::AtomicU64::new(0),
            unload: None,
        }
    }

    /// Loads the library at `path` (a runner's `/proc/self/fd/N`) with the
    /// same checks as [`Loader::load`].
    pub(crate) fn load_path(&self, path: &Path, label: &str) -> Result<LoadedPlugin, HostError> {
        // The identity record names the symbol the library header is
        // exported under; the bytes are the sealed copy the host verified.
        let embedded = fs::read(path)
            .ok()
            .and_then(|bytes| elf::embedded_identity(&bytes).ok());
        self.load(&StagedLibrary {
            source: path.to_owned(),
            path: path.to_owned(),
            sha256: [0; 32],
            embedded,
            label: label.to_owned(),
        })
    }

    pub(crate) fn unload_stats(&self) -> UnloadStats {
        match &self.unload {
            Some(log) => log.stats(),
            None => UnloadStats {
                unloaded: 0,
                pinned: Vec::new(),
            },
        }
    }

    /// Copies `bytes` (read from `source`, and already checked against the
    /// signature policy) to their content-addressed private path after
    /// checking that they are a complete shared object.
    pub(crate) fn stage_bytes(
        &self,
        source: &Path,
        label: &str,
        bytes: &[u8],
    ) -> Result<StagedLibrary, HostError> {
        elf::Elf::parse(bytes).map_err(|problem| {
            let (plugin, path, reason) = (label.to_owned(), source.to_owned(), problem.to_string());
            if problem.is_foreign() {
                HostError::NotForThisHost {
                    plugin,
                    path,
                    reason,
                }
            } else {
                HostError::CorruptLibrary {
                    plugin,
                    path,
                    reason,
                }
            }
        })?;
        let embedded = elf::embedded_identity(bytes).ok();
        let sha256: [u8; 32] = Sha256::digest(bytes).into();
        let name_part = embedded.as_ref().map_or(label, |e| e.id.as_str());
        let seq = self
            .sequence
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let file = format!("{name_part}-{}-{seq}.so", hex::encode(&sha256[..8]));
        let path = self.runtime_dir.join(file);
        let io = |action: &'static str, path: &Path, source: std::io::Error| HostError::Io {
            plugin: label.to_owned(),
            action,
            path: path.to_owned(),
            source,
        };
        // Write beside, then rename: a half-written copy never has the final name.
        let tmp = self.runtime_dir.join(format!(".{name_part}-{seq}.tmp"));
        let mut out = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o500)
            .open(&tmp)
            .map_err(|e| io("creating the private copy", &tmp, e))?;
        // No fsync: a private copy is worthless after a crash and is made
        // anew from the installed file on the next start.
        out.write_all(bytes)
            .map_err(|e| io("writing the private copy", &tmp, e))?;
        fs::rename(&tmp, &path).map_err(|e| io("renaming the private copy", &path, e))?;
        Ok(StagedLibrary {
            source: source.to_owned(),
            path,
            sha256,
            embedded,
            label: label.to_owned(),
        })
    }

    /// Finds the library header: under the per-crate symbol the identity record
    /// names (plugin-api 0.2 and later), else under abi_stable's fixed name, so
    /// older plugins still reach the version check and its "rebuild" message.
    ///
    /// # Safety
    /// The returned header points into `raw`; the caller keeps `raw` loaded for
    /// as long as anything read through the header exists.
    pub(crate) unsafe fn lib_header(
        raw: &RawLibrary,
        symbol: Option<&str>,
    ) -> Result<&'static LibHeader, LibraryError> {
        let Some(symbol) = symbol else {
            // SAFETY: forwarded from the caller.
            return unsafe { lib_header_from_raw_library(raw) };
        };
        let mut name = Vec::with_capacity(symbol.len() + 1);
        name.extend_from_slice(symbol.as_bytes());
        name.push(0);
        // SAFETY: the symbol is the `LibHeader` static `export_plugin!` defines;
        // reading its address as an `AbiHeaderRef` is what abi_stable's own
        // `abi_header_from_raw_library` does for the fixed name.
        let header: AbiHeaderRef = unsafe { *raw.get::<AbiHeaderRef>(&name)? };
        header.upgrade()
    }

    /// Loads a staged library, checks its plugin-api version and layout, and
    /// builds the plugin object.
    pub(crate) fn load(&self, staged: &StagedLibrary) -> Result<LoadedPlugin, HostError> {
        let label = staged.label.clone();
        let path = staged.source.clone();
        let raw = RawLibrary::load_at(&staged.path).map_err(|e| HostError::Dlopen {
            plugin: label.clone(),
            path: path.clone(),
            message: e.to_string(),
        })?;
        let library = Arc::new(Library {
            raw: Some(ManuallyDrop::new(raw)),
            path: staged.path.clone(),
            sha256: staged.sha256,
            label: staged
                .embedded
                .as_ref()
                .map_or_else(|| label.clone(), |e| e.id.clone()),
            unload: self.unload.clone(),
        });
        // SAFETY: the header is read from a library we keep loaded for as long
        // as anything from it exists (`library` travels with the instance).
        let symbol = staged.embedded.as_ref().and_then(|e| e.symbol.as_deref());
        let header =
            unsafe { Self::lib_header(raw_of(&library), symbol) }.map_err(|e| match e {
                LibraryError::GetSymbolError { .. } => HostError::NotAPlugin {
                    plugin: label.clone(),
                    path: path.clone(),
                },
                other => HostError::Dlopen {
                    plugin: label.clone(),
                    path: path.clone(),
                    message: other.to_string(),
                },
            })?;

        let host_api = <PluginModRef as RootModule>::VERSION_STRINGS;
        let plugin_api = header.version_strings();
        // Same minor, any patch, older or newer: patches only add (new
        // categories are an open list; see plugin-api's versioning rules).
        let compatible = match (host_api.parsed(), plugin_api.parsed()) {
            (Ok(host), Ok(plugin)) => host.is_loosely_compatible(plugin),
            _ => false,
        };
        if !compatible {
            return Err(HostError::ApiVersionMismatch {
                plugin: label,
                path,
                plugin_api: plugin_api.version.to_string(),
                host_api: host_api.version.to_string(),
            });
        }

        let layout = header.layout().ok_or_else(|| HostError::AbiMismatch {
            plugin: label.clone(),
            path: path.clone(),
            summary: "the library exports no layout information to check".to_owned(),
        })?;
        let globals = CheckingGlobals::new();
        if let Err(errors) =
            check_layout_compatibility_with_globals(PluginModRef::LAYOUT, layout, &globals)
        {
            let full = errors.to_string();
            tracing::debug!(plugin = %label, path = %path.display(), "ABI mismatch details:\n{full}");
            return Err(HostError::AbiMismatch {
                plugin: label,
                path,
                summary: summarize_abi_errors(&full),
            });
        }

        // SAFETY: the layout was checked just above.
        let module = unsafe { header.unchecked_layout::<PluginModRef>() }.map_err(|e| {
            HostError::Dlopen {
                plugin: label.clone(),
                path: path.clone(),
                message: format!("the root module constructor failed: {e}"),
            }
        })?;

        let info = (module.info())();
        let identity = PluginIdentity {
            id: info.id.to_string(),
            name: info.name.to_string(),
            version: info.version.to_string(),
            description: info.description.to_string(),
            authors: info.authors.to_string(),
            category: info.category.to_string(),
            api_version: info.api_version.to_string(),
        };
        drop(info);

        let instance = match (module.instantiate())() {
            abi_stable::std_types::RResult::ROk(instance) => instance,
            abi_stable::std_types::RResult::RErr(error) => {
                return Err(call_error(&identity.id, &path, Call::Instantiate, &error));
            }
        };
        let categories = CheckedCategories::check(&instance, &identity.id, &path)?;
        Ok(LoadedPlugin {
            instance,
            categories,
            identity,
            library,
            isolation: None,
            fast_bound: std::sync::atomic::AtomicUsize::new(0),
        })
    }
}

fn raw_of(library: &Library) -> &RawLibrary {
    match &library.raw {
        Some(raw) => raw,
        // `load` builds the Library with `Some` just before asking for it.
        None => unreachable!("a library loaded here always has its handle"),
    }
}

/// Converts a plugin's error into a host error with host-owned strings.
pub(crate) fn call_error(
    plugin: &str,
    path: &Path,
    call: Call,
    error: &plugin_api::PluginError,
) -> HostError {
    // A proxy for an isolated plugin returns a failure of its process as a
    // plugin error; the host error it stands for is more precise.
    if let Some(isolated) = crate::error::take_stashed_failure(error) {
        return isolated;
    }
    match error {
        plugin_api::PluginError::Panicked { message } => HostError::CallPanicked {
            plugin: plugin.to_owned(),
            path: path.to_owned(),
            call,
            message: message.to_string(),
        },
        other => HostError::CallFailed {
            plugin: plugin.to_owned(),
            path: path.to_owned(),
            call,
            message: other.to_string(),
            error: Box::new(other.clone()),
        },
    }
}

/// The name to use for a library before its own id is known.
pub(crate) fn label_of(path: &Path) -> String {
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string());
    stem.strip_prefix("lib").map(str::to_owned).unwrap_or(stem)
}

/// Keeps abi_stable's final `Error / Expected / Found` lines; the full dump
/// goes to the debug log.
fn summarize_abi_errors(full: &str) -> String {
    let mut kept: Vec<&str> = Vec::new();
    for line in full.lines() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("Error:")
            || trimmed.starts_with("Expected:")
            || trimmed.starts_with("Found:")
        {
            kept.push(line.trim());
        }
    }
    if kept.is_empty() {
        full.lines().take(6).collect::<Vec<_>>().join("\n")
    } else {
        // The last error triple is the innermost, most specific mismatch.
        let start = kept
            .iter()
            .rposition(|l| l.starts_with("Error:"))
            .unwrap_or(0);
        kept[start..].join("\n")
    }
}
