//! The typed category call: `communication.message_status` on the recording
//! fixture plugin (`tests/fixtures/good`, a cdylib built from this
//! repository), through a tenant-bound handle (`BoundPlugin`) and a plain
//! `PluginHandle`, against the same method through `Box<dyn Trait>`.
//! `bench-arith` has no category, so this call has a table of its own.

use std::hint::black_box;
use std::path::Path;

use anyhow::{bail, Context, Result};
use plugin_api::categories::*;
use plugin_api::communication::{DeliveryStatus, MessageReceipt};
use plugin_api::RString;
use plugin_host::fast::BoundPlugin;
use plugin_host::{Host, HostConfig, LoadOptions, PluginHandle};

/// The tenant every call is made for.
const TENANT: &str = "acme";

/// The baseline's interface: the category method's shape.
pub(crate) trait Communication {
    fn message_status(&self, tenant: &str, id: RString) -> Result<MessageReceipt>;
}

struct Fixture;

impl Communication for Fixture {
    /// What `fixture-good` answers (`tests/fixtures/good/src/lib.rs`).
    #[inline(never)]
    fn message_status(&self, tenant: &str, id: RString) -> Result<MessageReceipt> {
        Ok(MessageReceipt {
            provider_message_id: id,
            status: DeliveryStatus::Delivered,
            segments: 1,
            error_code: None.into(),
            error_message: Some(tenant.into()).into(),
        })
    }
}

/// `Box<dyn Communication>`, hidden from the optimizer.
pub(crate) fn direct() -> Box<dyn Communication> {
    black_box(Box::new(Fixture))
}

/// `fixture-good` loaded in-process and active for the tenant.
pub(crate) struct Typed {
    pub(crate) bound: BoundPlugin,
    pub(crate) handle: PluginHandle,
    // Declared after the handles so they drop first; the host owns the library.
    _host: Host,
    _runtime: tempfile::TempDir,
}

impl Typed {
    pub(crate) fn load(library: &Path) -> Result<Self> {
        let runtime = tempfile::tempdir().context("creating the plugin runtime directory")?;
        let host = Host::new(HostConfig::with_runtime_dir(runtime.path().join("rt")))?;
        let id = host
            .load(library, LoadOptions::default())
            .with_context(|| format!("loading {}", library.display()))?;
        host.initialize(&id)?;
        host.activate(&id, TENANT, "{}")?;
        let handle = host.plugin(&id)?;
        Ok(Self {
            bound: handle.bind(TENANT)?,
            handle,
            _host: host,
            _runtime: runtime,
        })
    }

    /// Checks that both plugkit routes answer as the baseline does.
    pub(crate) fn verify(&self, direct: &dyn Communication) -> Result<()> {
        let want = direct.message_status(TENANT, "SM1".into())?;
        let bound = self
            .bound
            .communication()?
            .message_status(self.bound.tenant(), "SM1".into())?;
        let plain = self
            .handle
            .communication()?
            .message_status(TENANT, "SM1".into())?;
        if bound != want || plain != want {
            bail!(
                "fixture-good's message_status answered {bound:?} / {plain:?}, expected {want:?}"
            );
        }
        Ok(())
    }
}

/// The tenant the typed calls are made for.
pub(crate) fn tenant() -> &'static str {
    TENANT
}
