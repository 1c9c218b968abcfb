//! plugkit: the `bench-arith` plugin (`benches/arith-plugin`), a cdylib
//! built from this repository, loaded through `plugin-host`'s public API and
//! called with `PluginHandle::invoke` ([`Plugkit`]), through the fast path,
//! handles resolved once and the reply written into a reused buffer
//! ([`PlugkitFast`], `plugin_host::fast`), or in process isolation, inside
//! a sandboxed `plugkit-runner` child ([`Plugkit::load_isolated`]).

use std::path::Path;

use anyhow::{bail, Context, Result};
use plugin_host::fast::{MethodHandle, TenantHandle};
use plugin_host::isolation::Isolation;
use plugin_host::{Host, HostConfig, LoadOptions, PluginHandle};

use super::Contender;

/// The tenant every call is made for.
const TENANT: &str = "acme";

/// A loaded, initialized plugin active for one tenant.
pub(crate) struct Plugkit {
    handle: PluginHandle,
    // Declared after `handle` so the handle drops first; the host owns the library.
    _host: Host,
    _runtime: tempfile::TempDir,
}

impl Plugkit {
    pub(crate) fn load(library: &Path) -> Result<Self> {
        Self::start(library, None)
    }

    /// The plugin in a sandboxed child process (`isolation = "process"`),
    /// run by `runner` (`plugkit-runner`); calls cross a shared-memory
    /// channel with the host's default spin-then-futex wait.
    pub(crate) fn load_isolated(library: &Path, runner: &Path) -> Result<Self> {
        Self::start(library, Some(runner))
    }

    fn start(library: &Path, runner: Option<&Path>) -> Result<Self> {
        let runtime = tempfile::tempdir().context("creating the plugin runtime directory")?;
        let mut config = HostConfig::with_runtime_dir(runtime.path().join("rt"));
        config.runner = runner.map(Path::to_path_buf);
        let host = Host::new(config)?;
        let options = LoadOptions {
            isolation: if runner.is_some() {
                Isolation::Process
            } else {
                Isolation::InProcess
            },
            ..LoadOptions::default()
        };
        let id = host
            .load(library, options)
            .with_context(|| format!("loading {}", library.display()))?;
        host.initialize(&id)?;
        host.activate(&id, TENANT, "{}")?;
        let handle = host.plugin(&id)?;
        Ok(Self {
            handle,
            _host: host,
            _runtime: runtime,
        })
    }

    /// The fixed cost: no payload, no reply.
    #[inline]
    pub(crate) fn nothing(&mut self) -> Result<usize> {
        Ok(self.handle.invoke(TENANT, "nothing", &[])?.len())
    }
}

fn integer(reply: &[u8]) -> Result<u64> {
    match <[u8; 8]>::try_from(reply) {
        Ok(bytes) => Ok(u64::from_le_bytes(bytes)),
        Err(_) => bail!(
            "bench-arith replied {} bytes, not an 8-byte integer",
            reply.len()
        ),
    }
}

impl Contender for Plugkit {
    #[inline]
    fn add_one(&mut self, x: u64) -> Result<u64> {
        integer(&self.handle.invoke(TENANT, "add_one", &x.to_le_bytes())?)
    }

    #[inline]
    fn sum(&mut self, payload: &[u8]) -> Result<u64> {
        integer(&self.handle.invoke(TENANT, "sum", payload)?)
    }
}

/// The fast path: `MethodHandle::call_into` with a `TenantHandle`, the
/// reply written into a buffer kept across calls.
pub(crate) struct PlugkitFast {
    add_one: MethodHandle,
    sum: MethodHandle,
    tenant: TenantHandle,
    out: Vec<u8>,
    // Declared after the handles so they drop first; the host owns the library.
    _plugkit: Plugkit,
}

impl PlugkitFast {
    pub(crate) fn load(library: &Path) -> Result<Self> {
        let plugkit = Plugkit::load(library)?;
        Ok(Self {
            add_one: plugkit.handle.method("add_one")?,
            sum: plugkit.handle.method("sum")?,
            tenant: plugkit.handle.tenant(TENANT)?,
            out: Vec::with_capacity(64),
            _plugkit: plugkit,
        })
    }
}

impl Contender for PlugkitFast {
    #[inline]
    fn add_one(&mut self, x: u64) -> Result<u64> {
        self.add_one
            .call_into(&self.tenant, &x.to_le_bytes(), &mut self.out)?;
        integer(&self.out)
    }

    #[inline]
    fn sum(&mut self, payload: &[u8]) -> Result<u64> {
        self.sum.call_into(&self.tenant, payload, &mut self.out)?;
        integer(&self.out)
    }
}
