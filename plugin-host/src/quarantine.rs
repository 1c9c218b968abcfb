//! Operating isolated plugins: where each runs, and releasing one from
//! quarantine. Host methods over the isolation module's child handles.

use crate::error::HostError;
use crate::host::Host;
use crate::isolation::{child_of, Isolation, IsolationStatus};

impl Host {
    /// Where and how an isolated plugin runs; `None` for in-process plugins.
    pub fn isolation_status(&self, id: &str) -> Option<IsolationStatus> {
        let slot = self.slot(id).ok()?;
        let loaded = slot.current.read().clone();
        let child = child_of(&loaded.isolation)?;
        let sandbox = child.sandbox.lock().clone();
        Some(IsolationStatus {
            mode: Isolation::Process,
            pid: child.pid(),
            serving: child.is_ready(),
            restarts: child.restarts.load(std::sync::atomic::Ordering::Relaxed),
            quarantined: child.quarantine_reason(),
            sandbox,
        })
    }

    /// Releases a quarantined plugin: starts a fresh process, initializes
    /// it and re-activates its tenants. The operator's explicit action after
    /// fixing whatever made it crash.
    pub fn release_quarantine(&self, id: &str) -> Result<(), HostError> {
        let slot = self.slot(id)?;
        let loaded = slot.current.read().clone();
        let Some(child) = child_of(&loaded.isolation) else {
            return Ok(());
        };
        child.release()?;
        slot.lifecycle.lock().recover();
        tracing::info!(plugin = %id, "released from quarantine");
        Ok(())
    }
}
