//! The fast call table: an optional, additive object through which a host
//! calls a plugin's service methods by integer id, with the reply written
//! into a buffer the host owns (no allocation, no string matching, no ABI
//! enum moved per call).
//!
//! # How it travels without changing a frozen layout
//! The table is exported as one more entry of the open
//! [`PluginInstance::categories`](crate::abi::PluginInstance) list under the
//! reserved name [`NAME`] (not a category code: it has a dot, which no
//! category has), with its own `TypeLayout` that the host checks before it
//! casts. A host built before this module ignores the unknown name; a
//! plugin built before it simply lacks the entry, and the host falls back to
//! [`Service`](crate::abi::Service) `invoke`. This module is new in
//! plugin-api 0.2.2 (a patch: additive only).
//!
//! # What `export_plugin!` makes
//! - `extensions: [service]`: a table whose `call` forwards to
//!   [`crate::Service::invoke`] by the method's name and copies the reply into
//!   the host's buffer (saves the host-side costs; the plugin still matches
//!   the name and allocates its reply).
//! - `extensions: [service, fast_service]`: a table over [`FastService`]:
//!   methods resolved once to ids, the reply written in place.
//!
//! Every `call` runs under the SDK's panic guard: a panic becomes
//! [`PluginError::Panicked`], written into the host's error slot.

use std::ffi::c_void;

use abi_stable::std_types::RArc;
use abi_stable::StableAbi;

use crate::abi::PluginError;
use crate::sdk::{Adapter, Service};

/// The reserved name the table is listed under in `PluginInstance.categories`.
pub const NAME: &str = "plugkit.fast-call";

/// What `resolve` returns for a name the plugin does not serve.
pub const NO_METHOD: u32 = u32::MAX;

/// `call` succeeded; the reply is `out.ptr[..out.len]`.
pub const STATUS_OK: u8 = 0;
/// `call` failed; a [`PluginError`] was written into the error slot.
pub const STATUS_ERROR: u8 = 1;

/// The host's reply buffer, lent to the plugin for one call. The plugin
/// appends at `ptr + len` within `cap` bytes and asks the host to `grow`
/// the buffer (host code, host allocator) when it needs more.
#[repr(C)]
#[derive(StableAbi)]
pub struct OutBuf {
    /// Start of the buffer (host memory).
    pub ptr: *mut u8,
    /// Bytes written so far.
    pub len: usize,
    /// Bytes available at `ptr`.
    pub cap: usize,
    /// The host's buffer object behind `ptr`, for `grow`.
    pub ctx: *mut c_void,
    /// Grows the buffer to at least `needed` bytes of capacity, keeping the
    /// first `len` bytes, and updates `ptr` and `cap`. Returns false when it
    /// cannot (the call then fails with an error).
    pub grow: unsafe extern "C" fn(out: *mut OutBuf, needed: usize) -> bool,
}

/// The table a plugin exports under [`NAME`]. Every function takes `plugin`
/// (the table's own field) first.
#[repr(C)]
#[derive(StableAbi)]
pub struct FastCallTable {
    /// The plugin object the functions work on (owned by the table).
    pub plugin: *const c_void,
    /// Maps a method name (UTF-8 `ptr`/`len`) to the id `call` takes, or
    /// [`NO_METHOD`]. Called once per name, never on the call path.
    pub resolve: unsafe extern "C" fn(plugin: *const c_void, name: *const u8, len: usize) -> u32,
    /// Runs one call described by `args` (see [`CallArgs`]). Returns
    /// [`STATUS_OK`], or [`STATUS_ERROR`] after writing a [`PluginError`]
    /// into `args.error`. One pointer rather than seven arguments: with more
    /// than six the arguments spill to the stack, and the spilled slice
    /// stalled store forwarding (62% of a small call's host-side cycles,
    /// measured with perf).
    pub call: unsafe extern "C" fn(plugin: *const c_void, args: *mut CallArgs) -> u8,
    /// Releases `plugin`; run by the table's destructor, in the plugin.
    pub release: unsafe extern "C" fn(plugin: *const c_void),
}

/// One call's arguments, built by the host on its stack.
#[repr(C)]
#[derive(StableAbi)]
pub struct CallArgs {
    /// The id `resolve` returned.
    pub method: u32,
    /// The method's name, for plugins that match on names.
    pub name: StrRef,
    /// The tenant the call is for.
    pub tenant: StrRef,
    /// The request bytes.
    pub input: BytesRef,
    /// The reply buffer the plugin appends to.
    pub out: OutBuf,
    /// Where the plugin writes its error: uninitialized memory the host owns
    /// and reads once, after [`STATUS_ERROR`].
    pub error: *mut PluginError,
}

/// A borrowed UTF-8 string passed by pointer and length.
#[repr(C)]
#[derive(StableAbi, Clone, Copy)]
pub struct StrRef {
    /// Start of the bytes.
    pub ptr: *const u8,
    /// Length in bytes.
    pub len: usize,
}

impl StrRef {
    /// Borrows `s` for a call.
    #[inline(always)]
    pub fn new(s: &str) -> Self {
        Self {
            ptr: s.as_ptr(),
            len: s.len(),
        }
    }

    /// # Safety
    /// `self` was made by [`StrRef::new`] from a string that is still alive.
    #[inline(always)]
    unsafe fn as_str<'a>(self) -> &'a str {
        // SAFETY: made from a `&str` that outlives the call (caller's promise).
        unsafe { std::str::from_utf8_unchecked(std::slice::from_raw_parts(self.ptr, self.len)) }
    }
}

/// Borrowed bytes passed by pointer and length.
#[repr(C)]
#[derive(StableAbi, Clone, Copy)]
pub struct BytesRef {
    /// Start of the bytes.
    pub ptr: *const u8,
    /// Length in bytes.
    pub len: usize,
}

impl BytesRef {
    /// Borrows `b` for a call.
    #[inline(always)]
    pub fn new(b: &[u8]) -> Self {
        Self {
            ptr: b.as_ptr(),
            len: b.len(),
        }
    }

    /// # Safety
    /// `self` was made by [`BytesRef::new`] from a slice that is still alive.
    #[inline(always)]
    unsafe fn as_slice<'a>(self) -> &'a [u8] {
        // SAFETY: made from a slice that outlives the call (caller's promise).
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
}

// SAFETY: `plugin` is an `RArc<Adapter<P>>` with `P: Send + Sync` (the only
// constructors are in this module); the functions are plain code.
unsafe impl Send for FastCallTable {}
// SAFETY: as above.
unsafe impl Sync for FastCallTable {}

impl Drop for FastCallTable {
    fn drop(&mut self) {
        // SAFETY: `plugin` was made together with `release` by `table`, and
        // the table is dropped exactly once, by the plugin's `drop_object`.
        unsafe { (self.release)(self.plugin) }
    }
}

/// The reply writer a [`FastService`] method appends to: the host's buffer.
pub struct Reply<'a> {
    out: &'a mut OutBuf,
}

impl Reply<'_> {
    /// Appends `bytes` to the reply, asking the host for room when needed.
    ///
    /// # Errors
    /// [`PluginError::Failed`] when the host cannot grow its buffer.
    #[inline]
    pub fn write(&mut self, bytes: &[u8]) -> crate::Result<()> {
        let needed = self.out.len.checked_add(bytes.len()).ok_or_else(too_big)?;
        if needed > self.out.cap {
            // SAFETY: `grow` and `out` come from the host for this call.
            if !unsafe { (self.out.grow)(self.out, needed) } || self.out.cap < needed {
                return Err(too_big());
            }
        }
        // SAFETY: `ptr[len..cap]` is writable host memory and `needed <= cap`.
        unsafe {
            std::ptr::copy_nonoverlapping(
                bytes.as_ptr(),
                self.out.ptr.add(self.out.len),
                bytes.len(),
            );
        }
        self.out.len = needed;
        Ok(())
    }

    /// Bytes written so far.
    pub fn len(&self) -> usize {
        self.out.len
    }

    /// Whether nothing was written yet.
    pub fn is_empty(&self) -> bool {
        self.out.len == 0
    }
}

#[cold]
fn too_big() -> PluginError {
    PluginError::failed("the host could not make room for the reply")
}

/// Service methods called by id with the reply written in place: the
/// fastest in-process call. Implement it next to [`Service`] (which serves
/// callers that go by name, and process isolation) and list `fast_service`
/// after `service` in `export_plugin!`.
pub trait FastService: Service {
    /// The method names; a method's id is its index here.
    const METHODS: &'static [&'static str];

    /// Handles method `METHODS[method]` for `tenant`, appending the reply to `out`.
    fn call(
        &self,
        tenant: &str,
        method: u32,
        input: &[u8],
        out: &mut Reply<'_>,
    ) -> crate::Result<()>;
}

unsafe extern "C" fn release<P>(plugin: *const c_void) {
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        // SAFETY: `plugin` came from `Box::into_raw` in `table`, released once.
        drop(unsafe { Box::from_raw(plugin.cast_mut().cast::<RArc<Adapter<P>>>()) });
    }));
    drop(result);
}

/// # Safety
/// `plugin` is the table's own field; the string is valid UTF-8 (the host
/// passes a `&str`).
unsafe extern "C" fn resolve_native<P: FastService>(
    _plugin: *const c_void,
    name: *const u8,
    len: usize,
) -> u32 {
    // SAFETY: the host passes a live `&str` as pointer and length.
    let name = unsafe { StrRef { ptr: name, len }.as_str() };
    P::METHODS
        .iter()
        .position(|m| *m == name)
        .and_then(|i| u32::try_from(i).ok())
        .unwrap_or(NO_METHOD)
}

unsafe extern "C" fn resolve_by_name(_plugin: *const c_void, _name: *const u8, _len: usize) -> u32 {
    // A plain `Service` matches names itself: every name resolves, and
    // `call` passes the name on.
    0
}

/// # Safety
/// The host passes the table's `plugin` and valid `args` borrowing live
/// values, with writable `error` storage (see [`FastCallTable::call`]).
unsafe extern "C" fn call_native<P: FastService>(plugin: *const c_void, args: *mut CallArgs) -> u8 {
    // SAFETY: see the function's contract.
    let (plugin, args) = unsafe { (&**plugin.cast::<RArc<Adapter<P>>>(), &mut *args) };
    // SAFETY: as above.
    let (tenant, input) = unsafe { (args.tenant.as_str(), args.input.as_slice()) };
    let method = args.method;
    let out = &mut args.out;
    guarded(args.error, || {
        plugin
            .plugin()
            .call(tenant, method, input, &mut Reply { out })
    })
}

/// # Safety
/// As for [`call_native`].
unsafe extern "C" fn call_by_name<P: Service>(plugin: *const c_void, args: *mut CallArgs) -> u8 {
    // SAFETY: see the function's contract.
    let (plugin, args) = unsafe { (&**plugin.cast::<RArc<Adapter<P>>>(), &mut *args) };
    // SAFETY: as above.
    let (name, tenant, input) = unsafe {
        (
            args.name.as_str(),
            args.tenant.as_str(),
            args.input.as_slice(),
        )
    };
    let out = &mut args.out;
    let error = args.error;
    guarded(error, || {
        let reply = plugin.plugin().invoke(tenant, name, input)?;
        Reply { out }.write(&reply)
    })
}

/// Runs `f` under a panic guard and turns its outcome into a status,
/// writing the error (or the caught panic) into `error`. Deciding the
/// status inside the guard keeps the `Result` out of memory: a `Result`
/// whose tag byte was stored and then read back as a word stalled store
/// forwarding (measured with perf: most of a small call's cycles).
#[inline(always)]
fn guarded(error: *mut PluginError, f: impl FnOnce() -> crate::Result<()>) -> u8 {
    let status = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| match f() {
        Ok(()) => STATUS_OK,
        Err(e) => {
            // SAFETY: the host hands writable storage for one error.
            unsafe { error.write(e) };
            STATUS_ERROR
        }
    }));
    match status {
        Ok(status) => status,
        Err(payload) => {
            // SAFETY: as above; nothing was written (the closure panicked).
            unsafe { error.write(crate::sdk::panicked(payload)) };
            STATUS_ERROR
        }
    }
}

fn table<P: Service>(
    plugin: &RArc<Adapter<P>>,
    resolve: unsafe extern "C" fn(*const c_void, *const u8, usize) -> u32,
    call: unsafe extern "C" fn(*const c_void, *mut CallArgs) -> u8,
) -> crate::abi::CategoryObject {
    let owned = Box::into_raw(Box::new(plugin.clone()))
        .cast_const()
        .cast::<c_void>();
    crate::category::export_object(
        NAME,
        FastCallTable {
            plugin: owned,
            resolve,
            call,
            release: release::<P>,
        },
    )
}

/// The table over a plain [`Service`]; `export_plugin!`'s `service` lists it.
#[doc(hidden)]
pub fn __export_by_name<P: Service>(plugin: &RArc<Adapter<P>>) -> crate::abi::CategoryObject {
    table(plugin, resolve_by_name, call_by_name::<P>)
}

/// The table over a [`FastService`]; `export_plugin!`'s `fast_service` lists it.
#[doc(hidden)]
pub fn __export_native<P: FastService>(plugin: &RArc<Adapter<P>>) -> crate::abi::CategoryObject {
    table(plugin, resolve_native::<P>, call_native::<P>)
}
