//! The fast hook table: an optional, additive object through which a host
//! delivers hooks to a plugin's [`Hooks`] with borrowed
//! arguments behind one pointer and a one-byte status back, instead of
//! the frozen [`HookHandler`](crate::abi::HookHandler)'s by-value
//! `HookCall` and ~80-byte `HookOutcome` enum.
//!
//! # How it travels without changing a frozen layout
//! Like [`crate::fast`]'s call table, it is one more entry of the open
//! [`PluginInstance::categories`](crate::abi::PluginInstance) list, under the
//! reserved name [`NAME`] (a dot: never a category code), with its own
//! `TypeLayout` the host checks before it casts. A host built before this
//! module ignores the entry; a plugin built before it lacks it, and the host
//! calls its `HookHandler`. New in plugin-api 0.2.3 (a patch: additive
//! only). `export_plugin!`'s `hooks` lists it: every hook subscriber built
//! against 0.2.3 exports it, with no change to its code.
//!
//! # Outcomes
//! [`FastHookTable::on_hook`] returns one of the `STATUS_*` bytes. A
//! replacement payload (filters) or a veto's reason is written into the
//! host's buffer [`HookArgs::out`] (content type first, then
//! [`HookArgs::split`] marks where the bytes start), an error into
//! [`HookArgs::error`]. The call runs under the SDK's panic guard: a panic
//! becomes [`PluginError::Panicked`] with [`STATUS_FAILED`].

use std::ffi::c_void;

use abi_stable::std_types::RArc;
use abi_stable::StableAbi;

use crate::abi::PluginError;
use crate::fast::{BytesRef, OutBuf, StrRef};
use crate::sdk::{Adapter, HookAction, HookEvent, Hooks};

/// The reserved name the table is listed under in `PluginInstance.categories`.
pub const NAME: &str = "plugkit.fast-hook";

/// Pass the payload on unchanged (for events: delivered).
pub const STATUS_CONTINUE: u8 = 0;
/// The subscriber failed or panicked; a [`PluginError`] is in `error`.
pub const STATUS_FAILED: u8 = 1;
/// Filters: pass `out[split..]` on instead, with content type `out[..split]`.
pub const STATUS_REPLACE: u8 = 2;
/// Filters: stop the chain; `out` holds the reason (UTF-8).
pub const STATUS_VETO: u8 = 3;

/// One hook delivery's arguments, built by the host on its stack.
#[repr(C)]
#[derive(StableAbi)]
pub struct HookArgs {
    /// The tenant the hook fired for.
    pub tenant: StrRef,
    /// The hook name, e.g. `invoice.paid`.
    pub hook: StrRef,
    /// The payload's content type.
    pub content_type: StrRef,
    /// The payload bytes.
    pub payload: BytesRef,
    /// The host's buffer for a replacement or a veto reason; untouched on
    /// [`STATUS_CONTINUE`].
    pub out: OutBuf,
    /// With [`STATUS_REPLACE`]: where the content type ends in `out`.
    pub split: usize,
    /// Where the plugin writes its error: uninitialized memory the host owns
    /// and reads once, after [`STATUS_FAILED`].
    pub error: *mut PluginError,
}

/// The table a plugin exports under [`NAME`].
#[repr(C)]
#[derive(StableAbi)]
pub struct FastHookTable {
    /// The plugin object the functions work on (owned by the table).
    pub plugin: *const c_void,
    /// Delivers one hook described by `args`; returns a `STATUS_*` byte.
    pub on_hook: unsafe extern "C" fn(plugin: *const c_void, args: *mut HookArgs) -> u8,
    /// Releases `plugin`; run by the table's destructor, in the plugin.
    pub release: unsafe extern "C" fn(plugin: *const c_void),
}

// SAFETY: `plugin` is an `RArc<Adapter<P>>` with `P: Send + Sync` (the only
// constructor is in this module); the functions are plain code.
unsafe impl Send for FastHookTable {}
// SAFETY: as above.
unsafe impl Sync for FastHookTable {}

impl Drop for FastHookTable {
    fn drop(&mut self) {
        // SAFETY: `plugin` was made together with `release` by `__export`,
        // and the table is dropped exactly once, by the plugin's `drop_object`.
        unsafe { (self.release)(self.plugin) }
    }
}

unsafe extern "C" fn release<P>(plugin: *const c_void) {
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        // SAFETY: `plugin` came from `Box::into_raw` in `__export`, released once.
        drop(unsafe { Box::from_raw(plugin.cast_mut().cast::<RArc<Adapter<P>>>()) });
    }));
    drop(result);
}

/// # Safety
/// `s` borrows a live `&str` (the host passes one per call).
#[inline(always)]
unsafe fn text<'a>(s: StrRef) -> &'a str {
    // SAFETY: see the function's contract.
    unsafe { std::str::from_utf8_unchecked(std::slice::from_raw_parts(s.ptr, s.len)) }
}

/// # Safety
/// `b` borrows a live slice (the host passes one per call).
#[inline(always)]
unsafe fn bytes<'a>(b: BytesRef) -> &'a [u8] {
    // SAFETY: see the function's contract.
    unsafe { std::slice::from_raw_parts(b.ptr, b.len) }
}

/// Appends `bytes` to the host's buffer, asking it for room when needed.
fn append(out: &mut OutBuf, bytes: &[u8]) -> crate::Result<()> {
    let needed = out.len.checked_add(bytes.len()).ok_or_else(too_big)?;
    if needed > out.cap {
        // SAFETY: `grow` and `out` come from the host for this call.
        if !unsafe { (out.grow)(out, needed) } || out.cap < needed {
            return Err(too_big());
        }
    }
    // SAFETY: `ptr[len..cap]` is writable host memory and `needed <= cap`.
    unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), out.ptr.add(out.len), bytes.len()) };
    out.len = needed;
    Ok(())
}

#[cold]
fn too_big() -> PluginError {
    PluginError::failed("the host could not make room for the hook's reply")
}

/// Turns a subscriber's action into a status, writing what goes with it.
#[inline(always)]
fn outcome(args: &mut HookArgs, action: crate::Result<HookAction>) -> crate::Result<u8> {
    match action? {
        HookAction::Continue => Ok(STATUS_CONTINUE),
        HookAction::Replace {
            content_type,
            bytes,
        } => {
            append(&mut args.out, content_type.as_bytes())?;
            args.split = args.out.len;
            append(&mut args.out, &bytes)?;
            Ok(STATUS_REPLACE)
        }
        HookAction::Veto(reason) => {
            append(&mut args.out, reason.as_bytes())?;
            Ok(STATUS_VETO)
        }
    }
}

/// # Safety
/// The host passes the table's `plugin` and valid `args` borrowing live
/// values, with writable `error` storage (see [`FastHookTable::on_hook`]).
unsafe extern "C" fn on_hook<P: Hooks>(plugin: *const c_void, args: *mut HookArgs) -> u8 {
    // SAFETY: see the function's contract.
    let (plugin, args) = unsafe { (&**plugin.cast::<RArc<Adapter<P>>>(), &mut *args) };
    // SAFETY: as above: the strings and the payload are live for this call.
    let event = unsafe {
        HookEvent {
            tenant: text(args.tenant),
            hook: text(args.hook),
            content_type: text(args.content_type),
            payload: bytes(args.payload),
        }
    };
    let error = args.error;
    // The status is decided inside the guard, so no `Result` goes through
    // memory on the way out (see `crate::fast::FastCallTable::call`).
    let status = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        match outcome(args, plugin.plugin().on_hook(event)) {
            Ok(status) => status,
            Err(e) => {
                // SAFETY: the host hands writable storage for one error.
                unsafe { error.write(e) };
                STATUS_FAILED
            }
        }
    }));
    match status {
        Ok(status) => status,
        Err(payload) => {
            // SAFETY: as above; nothing was written (the closure panicked
            // before or instead of writing).
            unsafe { error.write(crate::sdk::panicked(payload)) };
            STATUS_FAILED
        }
    }
}

/// The table over a [`Hooks`] plugin; `export_plugin!`'s `hooks` lists it.
#[doc(hidden)]
pub fn __export<P: Hooks>(plugin: &RArc<Adapter<P>>) -> crate::abi::CategoryObject {
    let owned = Box::into_raw(Box::new(plugin.clone()))
        .cast_const()
        .cast::<c_void>();
    crate::category::export_object(
        NAME,
        FastHookTable {
            plugin: owned,
            on_hook: on_hook::<P>,
            release: release::<P>,
        },
    )
}
