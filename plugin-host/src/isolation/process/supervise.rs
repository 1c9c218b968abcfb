//! Supervision: a generation's death handed to the plugin, crashes counted
//! in a window, restarts with exponential back-off that bring the new child
//! back to the initialized state and tenants the host asked for, quarantine
//! after too many, and its release.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::generation::{describe, Death, Generation};
use super::spawn::spawn_generation;
use super::ChildPlugin;
use crate::error::{Call, HostError};
use crate::isolation::wire::{Reply, Request};

impl ChildPlugin {
    /// Hands this generation's death to the supervisor.
    pub(super) fn watch(&self, generation: Arc<Generation>) {
        let weak = self.this.clone();
        let g = Arc::downgrade(&generation);
        generation.on_death(Box::new(move |death| {
            if let (Some(child), Some(g)) = (weak.upgrade(), g.upgrade()) {
                child.after_death(&g, death);
            }
        }));
    }

    fn after_death(&self, generation: &Arc<Generation>, death: Death) {
        let was_current = {
            let mut current = self.current.lock();
            let same = current
                .generation
                .as_ref()
                .is_some_and(|g| Arc::ptr_eq(g, generation));
            if same {
                current.generation = None;
                current.ready = false;
            }
            same
        };
        self.changed.notify_all();
        if !was_current || self.stopping.load(Ordering::Acquire) || death == Death::Stopped {
            return;
        }
        tracing::error!(
            plugin = %self.plugin,
            pid = generation.pid,
            "plugin process died: {}; last lines it logged:\n{}",
            describe(&death),
            self.last_log()
        );
        self.restart_after_crash(describe(&death));
    }

    /// Counts a crash, then restarts with back-off or quarantines.
    fn restart_after_crash(&self, reason: String) {
        let crashes = {
            let mut c = self.crashes.lock();
            let now = Instant::now();
            c.push_back(now);
            while c
                .front()
                .is_some_and(|t| now.duration_since(*t) > self.options.crash_window)
            {
                c.pop_front();
            }
            c.len() as u32
        };
        if crashes >= self.options.max_crashes {
            let why = format!(
                "{crashes} crashes within {:?}, the last: {reason}",
                self.options.crash_window
            );
            tracing::error!(plugin = %self.plugin, "quarantined: {why}; release it with `Host::release_quarantine`");
            self.current.lock().quarantine = Some(why.clone());
            self.changed.notify_all();
            if let Some(f) = self.on_quarantine.lock().as_ref() {
                f(&why);
            }
            return;
        }
        let backoff = self
            .options
            .restart_backoff
            .saturating_mul(1 << (crashes - 1).min(16))
            .min(self.options.max_backoff);
        std::thread::sleep(backoff);
        if self.stopping.load(Ordering::Acquire) {
            return;
        }
        if let Err(e) = self.respawn() {
            tracing::error!(plugin = %self.plugin, "restart failed: {e}");
            self.restart_after_crash(e.to_string());
        }
    }

    /// Spawns a new generation and brings it to the state the host had
    /// asked for: initialized, with the same tenants and configurations.
    fn respawn(&self) -> Result<(), HostError> {
        let n = self.spawned.fetch_add(1, Ordering::Relaxed);
        let (generation, _, _, sandbox) = spawn_generation(
            &self.plugin,
            &self.runner,
            &self.library,
            &self.permissions,
            &self.options,
            n,
            &self.log_tail,
        )?;
        *self.sandbox.lock() = sandbox;
        self.current.lock().generation = Some(generation.clone());
        self.watch(generation.clone());
        self.restarts.fetch_add(1, Ordering::Relaxed);
        if let Err(e) = self.bring_up(&generation) {
            if generation.death.lock().is_some() {
                // It died during start-up: its own watcher restarts it.
                return Ok(());
            }
            // Alive but refusing (e.g. initialize failed): stopped here, and
            // the caller counts it as a crash.
            generation.kill(Death::Stopped);
            generation.wait_reaped();
            return Err(e);
        }
        {
            let mut current = self.current.lock();
            if current
                .generation
                .as_ref()
                .is_some_and(|g| Arc::ptr_eq(g, &generation))
            {
                current.ready = true;
            }
        }
        self.changed.notify_all();
        tracing::info!(plugin = %self.plugin, pid = generation.pid, "plugin process restarted and serving");
        Ok(())
    }

    /// Initializes a new generation and re-activates every tenant.
    fn bring_up(&self, generation: &Generation) -> Result<(), HostError> {
        let deadline = self.options.lifecycle_deadline;
        if self.initialized.load(Ordering::Acquire) {
            self.expect_done(
                generation,
                "",
                Call::Initialize,
                &Request::Initialize,
                deadline,
            )?;
            let tenants: Vec<(String, String)> = self
                .tenants
                .lock()
                .iter()
                .map(|(t, c)| (t.clone(), c.clone()))
                .collect();
            for (tenant, config_json) in tenants {
                let request = Request::Activate {
                    tenant: tenant.clone(),
                    config_json,
                };
                self.expect_done(generation, &tenant, Call::Activate, &request, deadline)?;
            }
        }
        Ok(())
    }

    fn expect_done(
        &self,
        generation: &Generation,
        tenant: &str,
        call: Call,
        request: &Request,
        deadline: Duration,
    ) -> Result<(), HostError> {
        match self.exchange(generation, tenant, call, request, deadline)? {
            Reply::Done(Ok(())) => Ok(()),
            Reply::Done(Err(e)) => Err(crate::loader::call_error(
                &self.plugin,
                &self.runner,
                call,
                &e.into(),
            )),
            other => Err(self.garbage_error(
                generation,
                tenant,
                call,
                format!("unexpected reply {other:?}"),
            )),
        }
    }

    /// Lifts a quarantine and starts a fresh child.
    pub(crate) fn release(&self) -> Result<(), HostError> {
        if self.current.lock().quarantine.take().is_none() {
            return Ok(());
        }
        self.crashes.lock().clear();
        self.respawn()
    }
}
