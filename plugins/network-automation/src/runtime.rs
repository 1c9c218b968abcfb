//! The plugin's one tokio runtime, for `russh`: current-thread, created at
//! the first SSH call and shut down by `cleanup`.
//!
//! Invariant: the runtime starts no thread. It is driven by whichever host
//! thread is inside [`AsyncRuntime::block_on`]; tasks `russh` spawns (one
//! per connection) only run while some caller is blocked there. Nothing in
//! the plugin calls `spawn_blocking` or resolves names through tokio (that
//! would start the blocking pool).

use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use plugin_api::{PluginError, Result};
use tokio::runtime::{Builder, Runtime};

/// How long `cleanup` waits for in-flight tasks to notice the shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

enum State {
    Idle,
    Running(Arc<Runtime>),
    Closed,
}

/// A lazily built runtime that refuses work after [`AsyncRuntime::shutdown`].
pub(crate) struct AsyncRuntime {
    state: Mutex<State>,
}

impl AsyncRuntime {
    pub(crate) const fn new() -> Self {
        Self {
            state: Mutex::new(State::Idle),
        }
    }

    /// Runs `future` to completion on the calling thread.
    pub(crate) fn block_on<F: Future>(&self, future: F) -> Result<F::Output> {
        let runtime = {
            let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            match &*state {
                State::Running(rt) => Arc::clone(rt),
                State::Closed => return Err(PluginError::failed(
                    "the network-automation plugin has been cleaned up; reload it to use SSH again",
                )),
                State::Idle => {
                    let rt = Arc::new(
                        Builder::new_current_thread()
                            .enable_io()
                            .enable_time()
                            .build()
                            .map_err(|e| {
                                PluginError::failed(format!("cannot start the async runtime: {e}"))
                            })?,
                    );
                    *state = State::Running(Arc::clone(&rt));
                    rt
                }
            }
        };
        Ok(runtime.block_on(future))
    }

    /// Drops every pending task and closes the runtime's sockets. Calls
    /// still running keep their handle; the runtime goes with the last one.
    pub(crate) fn shutdown(&self) {
        let previous = std::mem::replace(
            &mut *self.state.lock().unwrap_or_else(PoisonError::into_inner),
            State::Closed,
        );
        if let State::Running(rt) = previous {
            if let Ok(rt) = Arc::try_unwrap(rt) {
                rt.shutdown_timeout(SHUTDOWN_GRACE);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_work_after_shutdown() {
        let rt = AsyncRuntime::new();
        assert_eq!(rt.block_on(async { 7 }).ok(), Some(7));
        rt.shutdown();
        let error = rt.block_on(async { 7 }).err().map(|e| e.to_string());
        assert!(error.is_some_and(|e| e.contains("cleaned up")));
    }
}
