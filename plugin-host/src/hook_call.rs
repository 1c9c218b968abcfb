//! Delivering one hook to one plugin version: through the plugin's fast
//! hook table (`plugin_api::fast_hooks`) when it exports one whose layout
//! this host checked, else through the frozen `HookHandler`. Used by the
//! host's dispatch tables and by `HookHandle` (`fast_hooks`).

use std::mem::MaybeUninit;
use std::time::{Duration, Instant};

use abi_stable::abi_stability::abi_checking::{
    check_layout_compatibility_with_globals, CheckingGlobals,
};
use abi_stable::std_types::RStr;
use abi_stable::type_layout::TypeLayout;
use abi_stable::StableAbi;
use plugin_api::abi::{HookCall, HookOutcome, PluginError};
use plugin_api::fast::{BytesRef, StrRef};
use plugin_api::fast_hooks::{self as table_abi, FastHookTable, HookArgs};

use crate::loader::LoadedPlugin;

/// How a subscriber's version is delivered to.
#[derive(Clone, Copy)]
pub(crate) enum HookRoute {
    /// Through its fast hook table.
    Table(*const FastHookTable),
    /// Through the frozen `HookHandler` (no table: an older plugin, or isolation).
    Handler,
}

// SAFETY: `Table` points into a `FastHookTable` (`Send + Sync`, see
// `plugin_api::fast_hooks`) owned by the version it was resolved for; every
// holder of a route also holds that version (`Target`, `HookHandle`).
unsafe impl Send for HookRoute {}
// SAFETY: as above.
unsafe impl Sync for HookRoute {}

/// The route for `loaded`, or `None` when it does not take hooks at all.
pub(crate) fn route_for(plugin: &str, loaded: &LoadedPlugin) -> Option<HookRoute> {
    if let Some(table) = table_of(plugin, loaded) {
        return Some(HookRoute::Table(std::ptr::from_ref(table)));
    }
    loaded
        .instance
        .hooks
        .is_some()
        .then_some(HookRoute::Handler)
}

/// The plugin's fast hook table, when it exports one whose layout matches.
fn table_of<'a>(plugin: &str, loaded: &'a LoadedPlugin) -> Option<&'a FastHookTable> {
    let object = loaded
        .instance
        .categories
        .iter()
        .find(|o| o.name.as_str() == table_abi::NAME)?;
    // SAFETY: `export_object`, the only constructor of a `CategoryObject`,
    // stores a `&'static TypeLayout` in `layout`.
    let found = unsafe { &*object.layout.cast::<TypeLayout>() };
    let globals = CheckingGlobals::new();
    if let Err(errors) = check_layout_compatibility_with_globals(
        <FastHookTable as StableAbi>::LAYOUT,
        found,
        &globals,
    ) {
        tracing::warn!(
            plugin,
            "the plugin's fast hook table has another layout; delivering through `hooks`: {errors}"
        );
        return None;
    }
    // SAFETY: the layout matches `FastHookTable`'s (checked above); the
    // object lives as long as `loaded`'s instance.
    Some(unsafe { &*object.object.cast_const().cast::<FastHookTable>() })
}

/// One hook delivery's borrowed arguments.
#[derive(Clone, Copy)]
pub(crate) struct Delivery<'a> {
    pub(crate) tenant: &'a str,
    pub(crate) hook: &'a str,
    pub(crate) content_type: &'a str,
    pub(crate) payload: &'a [u8],
}

/// What one subscriber decided. A replacement or a veto's reason is in the
/// `out` buffer passed to [`deliver`].
pub(crate) enum Outcome {
    Continue,
    /// `out[..split]` is the content type, `out[split..]` the bytes.
    Replace {
        split: usize,
    },
    /// `out` is the reason.
    Veto,
    Failed(PluginError),
}

/// The argument block of one delivery: `call`'s borrowed values, an empty
/// reply buffer over `vec`, and `error` as the plugin's error slot.
///
/// # Safety
/// As for [`crate::reply_buf::lend`]: `vec` is alive and unaliased until
/// the last call made with the block returns.
#[inline(always)]
unsafe fn hook_args(
    call: Delivery<'_>,
    vec: *mut Vec<u8>,
    error: &mut MaybeUninit<PluginError>,
) -> HookArgs {
    HookArgs {
        tenant: StrRef::new(call.tenant),
        hook: StrRef::new(call.hook),
        content_type: StrRef::new(call.content_type),
        payload: BytesRef::new(call.payload),
        // SAFETY: the function's contract.
        out: unsafe { crate::reply_buf::lend(vec) },
        split: 0,
        error: error.as_mut_ptr(),
    }
}

/// Delivers one hook to `loaded` by `route`; `out` is cleared first.
///
/// # Safety (upheld by construction)
/// `route` was made by [`route_for`] for this `loaded`, which the caller
/// keeps alive for the call.
#[inline(always)]
pub(crate) fn deliver(
    loaded: &LoadedPlugin,
    route: HookRoute,
    call: Delivery<'_>,
    out: &mut Vec<u8>,
) -> Outcome {
    out.clear();
    match route {
        // SAFETY: the table belongs to `loaded`, alive for this call.
        HookRoute::Table(table) => unsafe { deliver_table(&*table, call, out) },
        HookRoute::Handler => deliver_handler(loaded, call, out),
    }
}

/// # Safety
/// `table` is a checked table of a live version.
#[inline(always)]
unsafe fn deliver_table(table: &FastHookTable, call: Delivery<'_>, out: &mut Vec<u8>) -> Outcome {
    let vec = std::ptr::from_mut(out);
    let mut error = MaybeUninit::<PluginError>::uninit();
    // SAFETY: `vec` is `out`, alive and unaliased for this call.
    let mut args = unsafe { hook_args(call, vec, &mut error) };
    // SAFETY: the table's own `plugin`, live borrowed values, a valid
    // buffer and error storage (the contract of `FastHookTable::on_hook`).
    let status = unsafe { (table.on_hook)(table.plugin, &mut args) };
    let buf = &args.out;
    let written = buf.len <= buf.cap;
    match status {
        table_abi::STATUS_CONTINUE => Outcome::Continue,
        // SAFETY: on `STATUS_FAILED` the plugin wrote one `PluginError`.
        table_abi::STATUS_FAILED => Outcome::Failed(unsafe { error.assume_init() }),
        table_abi::STATUS_REPLACE if written && args.split <= buf.len => {
            // SAFETY: the plugin wrote `buf.len` bytes into the `Vec`'s
            // buffer (`grow` kept `ptr`/`cap` in step with it).
            unsafe { (*vec).set_len(buf.len) };
            Outcome::Replace { split: args.split }
        }
        table_abi::STATUS_VETO if written => {
            // SAFETY: as above.
            unsafe { (*vec).set_len(buf.len) };
            Outcome::Veto
        }
        other => Outcome::Failed(PluginError::failed(format!(
            "the plugin's fast hook returned status {other} (reply {} of {} bytes); \
             rebuild it against this host's plugin-api",
            buf.len, buf.cap
        ))),
    }
}

/// Not inlined: the table is the common route; isolated and older
/// plugins come here.
#[inline(never)]
fn deliver_handler(loaded: &LoadedPlugin, call: Delivery<'_>, out: &mut Vec<u8>) -> Outcome {
    let Some(handler) = loaded.instance.hooks.as_ref().into_option() else {
        return Outcome::Failed(PluginError::unsupported(
            "the plugin no longer offers `hooks`",
        ));
    };
    match handler.on_hook(HookCall {
        tenant: RStr::from_str(call.tenant),
        hook: RStr::from_str(call.hook),
        content_type: RStr::from_str(call.content_type),
        payload: call.payload.into(),
    }) {
        HookOutcome::Continue => Outcome::Continue,
        HookOutcome::Replace(new) => {
            out.extend_from_slice(new.content_type.as_bytes());
            let split = out.len();
            out.extend_from_slice(new.bytes.as_slice());
            Outcome::Replace { split }
        }
        HookOutcome::Veto(reason) => {
            out.extend_from_slice(reason.as_bytes());
            Outcome::Veto
        }
        HookOutcome::Failed(error) => Outcome::Failed(error),
    }
}

/// A subscriber an event is delivered to by [`deliver_events`].
pub(crate) trait EventTarget {
    /// How it is reached; the route belongs to [`EventTarget::loaded`].
    fn route(&self) -> HookRoute;
    /// The version it is delivered to.
    fn loaded(&self) -> &LoadedPlugin;
    /// Counts one delivery; true when its latency should be sampled.
    fn count(&self) -> bool;
    /// Records a sampled delivery's latency.
    fn record_latency(&self, elapsed: Duration);
}

/// Delivers one event to each target in turn, its arguments built once for
/// all of them (per target only the reply length is reset), and tells
/// `each` every target's failure or `None`. Events ignore replacements and
/// vetoes. Building the argument block per subscriber, and moving an
/// `Outcome` out of each call, were most of the host's instructions per
/// subscriber (callgrind, `benches/examples/hook_profile.rs`).
#[inline(always)]
pub(crate) fn deliver_events<'t, T: EventTarget + 't>(
    targets: impl IntoIterator<Item = &'t T>,
    call: Delivery<'_>,
    out: &mut Vec<u8>,
    mut each: impl FnMut(&'t T, Option<PluginError>),
) {
    out.clear();
    // Every access to `out` until this returns goes through `vec`.
    let vec = std::ptr::from_mut(out);
    let mut error = MaybeUninit::<PluginError>::uninit();
    // SAFETY: `vec` is `out`, alive and unaliased here.
    let mut args = unsafe { hook_args(call, vec, &mut error) };
    for target in targets {
        let start = target.count().then(Instant::now);
        let failure = match target.route() {
            HookRoute::Table(table) => {
                args.out.len = 0;
                // SAFETY: the table belongs to `target.loaded()`, alive for
                // this call; `args` borrows live values and `vec`'s buffer
                // (`grow` keeps `ptr`/`cap` in step with it).
                let status = unsafe { ((*table).on_hook)((*table).plugin, &mut args) };
                match status {
                    table_abi::STATUS_CONTINUE
                    | table_abi::STATUS_REPLACE
                    | table_abi::STATUS_VETO => None,
                    // SAFETY: on `STATUS_FAILED` the plugin wrote one
                    // `PluginError`; it is read once, leaving the slot
                    // free for the next target.
                    table_abi::STATUS_FAILED => Some(unsafe { error.assume_init_read() }),
                    other => Some(bad_status(other)),
                }
            }
            HookRoute::Handler => {
                // SAFETY: `vec` is `out`; `args` is not used during this call.
                let out = unsafe { &mut *vec };
                out.clear();
                let outcome = deliver_handler(target.loaded(), call, out);
                // The handler may have reallocated `out`.
                (args.out.ptr, args.out.cap) = (out.as_mut_ptr(), out.capacity());
                match outcome {
                    Outcome::Failed(error) => Some(error),
                    _ => None,
                }
            }
        };
        if let Some(start) = start {
            target.record_latency(start.elapsed());
        }
        each(target, failure);
    }
}

#[cold]
fn bad_status(status: u8) -> PluginError {
    PluginError::failed(format!(
        "the plugin's fast hook returned status {status}; rebuild it against this host's plugin-api"
    ))
}
