//! Calls over the channel: waiting for a ready generation, one request and
//! its reply within a deadline, the host-service callbacks a plugin makes
//! meanwhile, category calls, and the `HostError` each failure becomes.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use abi_stable::std_types::{RResult, RSlice, RStr};
use plugin_api::abi::{LogLevel, Payload, PluginError};

use super::generation::{signal_name, Death, Generation};
use super::ChildPlugin;
use crate::error::{Call, HostError};
use crate::isolation::shm::{self, Wait};
use crate::isolation::wire::{self, Callback, CallbackReply, Reply, Request, WireError};

impl ChildPlugin {
    /// The generation calls may use, waiting for a restart up to `deadline`.
    fn ready_generation(
        &self,
        tenant: &str,
        call: Call,
        deadline: Instant,
    ) -> Result<Arc<Generation>, HostError> {
        let mut current = self.current.lock();
        loop {
            if let Some(reason) = &current.quarantine {
                return Err(HostError::Quarantined {
                    plugin: self.plugin.clone(),
                    reason: reason.clone(),
                });
            }
            if current.ready {
                // A generation that has died but is not yet replaced is skipped:
                // its watcher is about to clear it and start the next one.
                if let Some(g) = current
                    .generation
                    .as_ref()
                    .filter(|g| g.death.lock().is_none())
                {
                    return Ok(g.clone());
                }
            }
            if self.stopping.load(Ordering::Acquire) {
                return Err(HostError::ChildExited {
                    plugin: self.plugin.clone(),
                    tenant: tenant.to_owned(),
                    call,
                    code: 0,
                    last_log: "(the plugin was stopped)".into(),
                });
            }
            if self.changed.wait_until(&mut current, deadline).timed_out() {
                return Err(HostError::DeadlineExceeded {
                    plugin: self.plugin.clone(),
                    tenant: tenant.to_owned(),
                    call,
                    deadline: self.options.call_deadline,
                    last_log: format!(
                        "(the plugin process was restarting and did not come back in time)\n{}",
                        self.last_log()
                    )
                    .into(),
                });
            }
        }
    }

    /// One request/reply with the current generation.
    pub(crate) fn request(
        &self,
        tenant: &str,
        call: Call,
        request: &Request,
    ) -> Result<Reply, HostError> {
        let deadline = match call {
            Call::Hook | Call::Service | Call::Health => self.options.call_deadline,
            _ => self.options.lifecycle_deadline,
        };
        let generation = self.ready_generation(tenant, call, Instant::now() + deadline)?;
        self.exchange(&generation, tenant, call, request, deadline)
    }

    pub(super) fn exchange(
        &self,
        generation: &Generation,
        tenant: &str,
        call: Call,
        request: &Request,
        deadline: Duration,
    ) -> Result<Reply, HostError> {
        let until = Instant::now() + deadline;
        let Some(_turn) = generation.call_lock.try_lock_until(until) else {
            return Err(HostError::DeadlineExceeded {
                plugin: self.plugin.clone(),
                tenant: tenant.to_owned(),
                call,
                deadline,
                last_log: "(waited for the plugin's previous call the whole time)".into(),
            });
        };
        if let Some(death) = generation.death.lock().clone() {
            return Err(self.death_error(death, tenant, call));
        }
        let channel = &generation.channel;
        let len = wire::encode(request, channel.buffer()).map_err(|e| HostError::CallFailed {
            plugin: self.plugin.clone(),
            path: self.runner.clone(),
            call,
            message: format!(
                "the request does not fit the {} byte channel: {e}",
                channel.capacity()
            ),
            error: Box::new(PluginError::InvalidRequest {
                message: "request too large for process isolation".into(),
            }),
        })?;
        channel.send(len, shm::REQUEST);
        loop {
            match channel.wait_while(&[shm::REQUEST, shm::CALLBACK_REPLY], Some(until)) {
                Wait::State(shm::RESPONSE) => {
                    let reply = channel.message().map(wire::decode::<Reply>);
                    return match reply {
                        Some(Ok(reply)) => {
                            channel.publish(shm::IDLE);
                            Ok(reply)
                        }
                        Some(Err(e)) => Err(self.garbage_error(
                            generation,
                            tenant,
                            call,
                            format!("undecodable reply: {e}"),
                        )),
                        None => Err(self.garbage_error(
                            generation,
                            tenant,
                            call,
                            "reply length beyond the channel".to_owned(),
                        )),
                    };
                }
                Wait::State(shm::CALLBACK) => {
                    let cb = match channel.message().map(wire::decode::<Callback>) {
                        Some(Ok(cb)) => cb,
                        _ => {
                            return Err(self.garbage_error(
                                generation,
                                tenant,
                                call,
                                "undecodable host-service callback".to_owned(),
                            ))
                        }
                    };
                    let answer = self.serve_callback(cb);
                    let n = wire::encode(&answer, channel.buffer()).unwrap_or(0);
                    channel.send(n, shm::CALLBACK_REPLY);
                }
                Wait::State(shm::DEAD) => {
                    let death = generation.wait_reaped();
                    return Err(self.death_error(death, tenant, call));
                }
                Wait::State(other) => {
                    return Err(self.garbage_error(
                        generation,
                        tenant,
                        call,
                        format!("unknown channel state {other:#x}"),
                    ))
                }
                Wait::TimedOut => {
                    let state = channel.state();
                    if ![shm::REQUEST, shm::CALLBACK_REPLY].contains(&state) {
                        // Changed without a wake-up: only a scribbling child does that.
                        return Err(self.garbage_error(
                            generation,
                            tenant,
                            call,
                            format!("channel state changed to {state:#x} without a wake-up"),
                        ));
                    }
                    generation.kill(Death::Deadline(deadline));
                    let death = generation.wait_reaped();
                    return Err(self.death_error(death, tenant, call));
                }
            }
        }
    }

    pub(super) fn garbage_error(
        &self,
        generation: &Generation,
        tenant: &str,
        call: Call,
        detail: String,
    ) -> HostError {
        generation.kill(Death::Garbage(detail));
        let death = generation.wait_reaped();
        self.death_error(death, tenant, call)
    }

    /// A plugin error standing for a broken channel (used by the proxies).
    pub(crate) fn garbage(&self, tenant: &str, detail: String) -> PluginError {
        let generation = self.current.lock().generation.clone();
        let err = match generation {
            Some(g) => self.garbage_error(&g, tenant, Call::Service, detail),
            None => HostError::ChannelGarbage {
                plugin: self.plugin.clone(),
                tenant: tenant.to_owned(),
                call: Call::Service,
                detail: detail.into(),
                last_log: self.last_log().into(),
            },
        };
        crate::isolation::stash(err)
    }

    fn death_error(&self, death: Death, tenant: &str, call: Call) -> HostError {
        let plugin = self.plugin.clone();
        let tenant = tenant.to_owned();
        let last_log: Box<str> = self.last_log().into();
        match death {
            Death::Signal(signal) => HostError::ChildCrashed {
                plugin,
                tenant,
                call,
                signal,
                signal_name: signal_name(signal),
                last_log,
            },
            Death::OutOfMemory(limit) => HostError::ChildOutOfMemory {
                plugin,
                tenant,
                call,
                limit,
                last_log,
            },
            Death::Exited(code) => HostError::ChildExited {
                plugin,
                tenant,
                call,
                code,
                last_log,
            },
            Death::Stopped => HostError::ChildExited {
                plugin,
                tenant,
                call,
                code: 0,
                last_log: "(stopped by the host)".into(),
            },
            Death::Deadline(deadline) => HostError::DeadlineExceeded {
                plugin,
                tenant,
                call,
                deadline,
                last_log,
            },
            Death::Garbage(detail) => HostError::ChannelGarbage {
                plugin,
                tenant,
                call,
                detail: detail.into(),
                last_log,
            },
        }
    }

    fn serve_callback(&self, cb: Callback) -> CallbackReply {
        let services = self.services.lock().clone();
        let Some(s) = services else {
            return CallbackReply::Unit(Err(WireError::Failed(
                "host services are not available before initialize".into(),
            )));
        };
        let wire_unit =
            |r: RResult<(), PluginError>| CallbackReply::Unit(wire::to_wire(r, |()| ()));
        match cb {
            Callback::Log { level, message } => {
                let level = match level {
                    0 => LogLevel::Trace,
                    1 => LogLevel::Debug,
                    2 => LogLevel::Info,
                    3 => LogLevel::Warn,
                    _ => LogLevel::Error,
                };
                if level >= LogLevel::Info {
                    self.log_tail.push(message.clone());
                }
                s.log(level, RStr::from_str(&message));
                CallbackReply::Logged
            }
            Callback::Config => CallbackReply::Config(s.config_json().to_string()),
            Callback::Secret { tenant, name } => CallbackReply::Secret(wire::to_wire(
                s.secret(tenant.as_str().into(), name.as_str().into()),
                |v| v.to_string(),
            )),
            Callback::Emit {
                tenant,
                hook,
                content_type,
                payload,
            } => wire_unit(s.emit(
                tenant.as_str().into(),
                hook.as_str().into(),
                Payload {
                    content_type: content_type.into(),
                    bytes: payload.into(),
                },
            )),
            Callback::StateGet { tenant, key } => CallbackReply::StateGet(wire::to_wire(
                s.state_get(tenant.as_str().into(), key.as_str().into()),
                |v| v.into_option().map(|v| v.into_vec()),
            )),
            Callback::StatePut { tenant, key, value } => wire_unit(s.state_put(
                tenant.as_str().into(),
                key.as_str().into(),
                RSlice::from_slice(&value),
            )),
            Callback::Metric { name, value } => wire_unit(s.metric(name.as_str().into(), value)),
        }
    }

    /// A category call (see `categories`).
    pub(crate) fn category(
        &self,
        category: &str,
        tenant: &str,
        request: Vec<u8>,
    ) -> RResult<Vec<u8>, PluginError> {
        let request = Request::Category {
            category: category.to_owned(),
            tenant: tenant.to_owned(),
            request,
        };
        match self.request(tenant, Call::Service, &request) {
            Ok(Reply::Bytes(r)) => r.map(|b| b.0).map_err(PluginError::from).into(),
            Ok(other) => {
                RResult::RErr(self.garbage(tenant, format!("a reply of the wrong kind: {other:?}")))
            }
            Err(e) => RResult::RErr(crate::isolation::stash(e)),
        }
    }
}
