//! The child side: what `plugkit-runner` runs. Reads the host's hello from
//! the channel, sandboxes itself, loads the library from its inherited fd
//! with the host's own loader checks, and serves calls until told to stop
//! or until the host goes away.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;
use std::thread::ThreadId;

use abi_stable::sabi_trait::TD_Opaque;
use abi_stable::std_types::{RArc, ROption, RResult, RSlice, RStr, RString, RVec};
use plugin_api::abi::{
    HookCall, HookOutcome, HostServices, HostServices_TO, LogLevel, Payload, PluginError,
    SavedState, TenantActivation,
};

use super::categories;
use super::sandbox::{self, CHANNEL_FD, LIBRARY_FD};
use super::shm::{self, Channel, Wait};
use super::wire::{
    self, Bytes, Callback, CallbackReply, Extensions, Reply, Request, WireError, WireHookOutcome,
    WireIdentity, PROTOCOL_VERSION,
};
use crate::loader::{LoadedPlugin, Loader};

/// Exit codes the host tells apart.
pub(crate) const EXIT_PROTOCOL: i32 = 65;
pub(crate) const EXIT_SETUP: i32 = 66;

static CHANNEL: OnceLock<Channel> = OnceLock::new();
static SERVING_THREAD: OnceLock<ThreadId> = OnceLock::new();
static IN_CALL: AtomicBool = AtomicBool::new(false);

/// The runner's `main`: returns the process exit code.
#[doc(hidden)]
pub fn runner_main() -> i32 {
    match run() {
        Ok(()) => 0,
        Err((code, message)) => {
            eprintln!("plugkit-runner: {message}");
            code
        }
    }
}

fn run() -> Result<(), (i32, String)> {
    let mut channel = Channel::open(CHANNEL_FD)
        .map_err(|e| (EXIT_SETUP, format!("opening the channel (fd 4): {e}")))?;
    // Until the hello says otherwise, wait without spinning.
    let hello = {
        if channel.host_protocol() != PROTOCOL_VERSION {
            channel.refuse(PROTOCOL_VERSION);
            return Err((
                EXIT_PROTOCOL,
                format!(
                    "the host speaks channel protocol {}, this runner speaks {PROTOCOL_VERSION}: \
                     install the runner built with this host",
                    channel.host_protocol()
                ),
            ));
        }
        match next_request(&channel) {
            Some(Request::Hello(h)) => h,
            _ => return Err((EXIT_SETUP, "the host did not start with a hello".into())),
        }
    };
    channel.set_spin(std::time::Duration::from_nanos(hello.spin_ns));
    let channel = CHANNEL.get_or_init(|| channel);
    let _ = SERVING_THREAD.set(std::thread::current().id());
    // SAFETY: getppid has no preconditions.
    if unsafe { libc::getppid() } as u32 != hello.host_pid {
        return Err((
            EXIT_SETUP,
            "the host exited before the runner started".into(),
        ));
    }
    let sandbox = match sandbox::apply(&hello) {
        Ok(lines) => lines,
        Err(message) => {
            reply(
                channel,
                &Reply::Refused {
                    message: format!("sandbox: {message}"),
                },
            );
            return Err((EXIT_SETUP, message));
        }
    };
    let loaded = match load(&hello.plugin) {
        Ok(l) => l,
        Err(message) => {
            reply(
                channel,
                &Reply::Refused {
                    message: message.clone(),
                },
            );
            return Err((EXIT_SETUP, message));
        }
    };
    let instance = &loaded.instance;
    let i = &loaded.identity;
    reply(
        channel,
        &Reply::Ready {
            identity: WireIdentity {
                id: i.id.clone(),
                name: i.name.clone(),
                version: i.version.clone(),
                description: i.description.clone(),
                authors: i.authors.clone(),
                category: i.category.clone(),
                api_version: i.api_version.clone(),
            },
            extensions: Extensions {
                hooks: instance.hooks.is_some(),
                service: instance.service.is_some(),
                state: instance.state.is_some(),
                categories: loaded.categories.names().map(str::to_owned).collect(),
            },
            sandbox,
        },
    );
    loop {
        let Some(request) = next_request(channel) else {
            // The host is gone or wrote garbage: nothing left to serve.
            return Ok(());
        };
        if matches!(request, Request::Shutdown) {
            reply(channel, &Reply::Done(Ok(())));
            return Ok(());
        }
        IN_CALL.store(true, Ordering::Relaxed);
        let answer = serve(&loaded, request);
        IN_CALL.store(false, Ordering::Relaxed);
        reply(channel, &answer);
    }
}

fn load(label: &str) -> Result<crate::loader::LoadedPlugin, String> {
    let path = std::path::PathBuf::from(format!("/proc/self/fd/{LIBRARY_FD}"));
    Loader::for_runner()
        .load_path(&path, label)
        .map_err(|e| e.to_string())
}

fn next_request(channel: &Channel) -> Option<Request> {
    match channel.wait_while(&[shm::IDLE, shm::RESPONSE], None) {
        Wait::State(shm::REQUEST) => wire::decode(channel.message()?).ok(),
        _ => None,
    }
}

fn reply(channel: &Channel, reply: &Reply) {
    let len = match wire::encode(reply, channel.buffer()) {
        Ok(n) => n,
        Err(e) => {
            let fallback = Reply::Bytes(Err(WireError::Failed(format!(
                "the reply does not fit the channel ({} bytes): {e}",
                channel.capacity()
            ))));
            wire::encode(&fallback, channel.buffer()).unwrap_or(0)
        }
    };
    channel.send(len, shm::RESPONSE);
}

fn serve(loaded: &LoadedPlugin, request: Request) -> Reply {
    let instance = &loaded.instance;
    match request {
        Request::Hello(_) | Request::Shutdown => {
            Reply::Done(Err(WireError::InvalidRequest("unexpected request".into())))
        }
        Request::Initialize => Reply::Done(wire::to_wire(
            instance.base.initialize(HostServices_TO::from_ptr(
                RArc::new(ChildServices),
                TD_Opaque,
            )),
            |()| (),
        )),
        Request::Activate {
            tenant,
            config_json,
        } => Reply::Done(wire::to_wire(
            instance.base.activate(TenantActivation {
                tenant: tenant.into(),
                config_json: config_json.into(),
            }),
            |()| (),
        )),
        Request::Deactivate { tenant } => Reply::Done(wire::to_wire(
            instance.base.deactivate(tenant.as_str().into()),
            |()| (),
        )),
        Request::Cleanup => Reply::Done(wire::to_wire(instance.base.cleanup(), |()| ())),
        Request::Health => {
            let h = instance.base.health();
            Reply::Health {
                status: h.status,
                message: h.message.to_string(),
            }
        }
        Request::Hook {
            tenant,
            hook,
            content_type,
            payload,
        } => {
            let Some(handler) = instance.hooks.as_ref().into_option() else {
                return Reply::Hook(WireHookOutcome::Continue);
            };
            let outcome = handler.on_hook(HookCall {
                tenant: tenant.as_str().into(),
                hook: hook.as_str().into(),
                content_type: content_type.as_str().into(),
                payload: payload.as_slice().into(),
            });
            Reply::Hook(match outcome {
                HookOutcome::Continue => WireHookOutcome::Continue,
                HookOutcome::Replace(p) => WireHookOutcome::Replace {
                    content_type: p.content_type.to_string(),
                    bytes: p.bytes.to_vec(),
                },
                HookOutcome::Veto(r) => WireHookOutcome::Veto(r.to_string()),
                HookOutcome::Failed(e) => WireHookOutcome::Failed(WireError::from(&e)),
            })
        }
        Request::Invoke {
            tenant,
            method,
            payload,
        } => {
            let Some(service) = instance.service.as_ref().into_option() else {
                return Reply::Bytes(Err(WireError::Unsupported("no service extension".into())));
            };
            Reply::Bytes(wire::to_wire(
                service.invoke(
                    tenant.as_str().into(),
                    method.as_str().into(),
                    payload.as_slice().into(),
                ),
                |v| Bytes(v.into_vec()),
            ))
        }
        Request::SaveState => match instance.state.as_ref().into_option() {
            None => Reply::State(Ok(None)),
            Some(s) => Reply::State(wire::to_wire(s.save_state(), |o| {
                o.into_option()
                    .map(|s| (s.format_version, s.bytes.into_vec()))
            })),
        },
        Request::RestoreState {
            format_version,
            bytes,
        } => match instance.state.as_ref().into_option() {
            None => Reply::Done(Ok(())),
            Some(s) => Reply::Done(wire::to_wire(
                s.restore_state(SavedState {
                    format_version,
                    bytes: bytes.into(),
                }),
                |()| (),
            )),
        },
        Request::Category {
            category,
            tenant,
            request,
        } => Reply::Bytes(categories::serve(loaded, &category, &tenant, &request).map(Bytes)),
    }
}

/// The runner's host services: each call is a callback over the channel,
/// answered by the host's permission-gated services. Only the serving
/// thread, inside a call, owns the channel; other threads' log lines go to
/// stderr (the host forwards them), their other calls are refused.
struct ChildServices;

impl ChildServices {
    fn callback(&self, cb: &Callback) -> Option<CallbackReply> {
        let channel = CHANNEL.get()?;
        let on_serving_thread = SERVING_THREAD.get() == Some(&std::thread::current().id());
        if !on_serving_thread || !IN_CALL.load(Ordering::Relaxed) {
            return None;
        }
        let len = wire::encode(cb, channel.buffer()).ok()?;
        channel.send(len, shm::CALLBACK);
        match channel.wait_while(&[shm::CALLBACK], None) {
            Wait::State(shm::CALLBACK_REPLY) => wire::decode(channel.message()?).ok(),
            // The host is gone: stop here rather than run on unsupervised.
            _ => std::process::exit(0),
        }
    }

    fn outside_call() -> PluginError {
        PluginError::failed(
            "in process isolation, host services are available on the calling thread during a \
             call only (log lines from other threads go to the host log)",
        )
    }
}

fn unit(r: Option<CallbackReply>) -> RResult<(), PluginError> {
    match r {
        Some(CallbackReply::Unit(Ok(()))) => RResult::ROk(()),
        Some(CallbackReply::Unit(Err(e))) => RResult::RErr(e.into()),
        Some(_) => RResult::RErr(PluginError::failed("the host answered another call")),
        None => RResult::RErr(ChildServices::outside_call()),
    }
}

impl HostServices for ChildServices {
    fn log(&self, level: LogLevel, message: RStr<'_>) {
        let cb = Callback::Log {
            level: level as u8,
            message: message.to_string(),
        };
        if self.callback(&cb).is_none() {
            eprintln!("{:?}: {}", level, message.as_str());
        }
    }

    fn config_json(&self) -> RString {
        match self.callback(&Callback::Config) {
            Some(CallbackReply::Config(c)) => c.into(),
            _ => "{}".into(),
        }
    }

    fn secret(&self, tenant: RStr<'_>, name: RStr<'_>) -> RResult<RString, PluginError> {
        let cb = Callback::Secret {
            tenant: tenant.to_string(),
            name: name.to_string(),
        };
        match self.callback(&cb) {
            Some(CallbackReply::Secret(Ok(s))) => RResult::ROk(s.into()),
            Some(CallbackReply::Secret(Err(e))) => RResult::RErr(e.into()),
            Some(_) => RResult::RErr(PluginError::failed("the host answered another call")),
            None => RResult::RErr(Self::outside_call()),
        }
    }

    fn emit(&self, tenant: RStr<'_>, hook: RStr<'_>, payload: Payload) -> RResult<(), PluginError> {
        unit(self.callback(&Callback::Emit {
            tenant: tenant.to_string(),
            hook: hook.to_string(),
            content_type: payload.content_type.to_string(),
            payload: payload.bytes.into_vec(),
        }))
    }

    fn state_get(
        &self,
        tenant: RStr<'_>,
        key: RStr<'_>,
    ) -> RResult<ROption<RVec<u8>>, PluginError> {
        let cb = Callback::StateGet {
            tenant: tenant.to_string(),
            key: key.to_string(),
        };
        match self.callback(&cb) {
            Some(CallbackReply::StateGet(Ok(v))) => RResult::ROk(v.map(RVec::from).into()),
            Some(CallbackReply::StateGet(Err(e))) => RResult::RErr(e.into()),
            Some(_) => RResult::RErr(PluginError::failed("the host answered another call")),
            None => RResult::RErr(Self::outside_call()),
        }
    }

    fn state_put(
        &self,
        tenant: RStr<'_>,
        key: RStr<'_>,
        value: RSlice<'_, u8>,
    ) -> RResult<(), PluginError> {
        unit(self.callback(&Callback::StatePut {
            tenant: tenant.to_string(),
            key: key.to_string(),
            value: value.to_vec(),
        }))
    }

    fn metric(&self, name: RStr<'_>, value: f64) -> RResult<(), PluginError> {
        unit(self.callback(&Callback::Metric {
            name: name.to_string(),
            value,
        }))
    }
}
