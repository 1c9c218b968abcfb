//! The host's side of a reply buffer lent to a plugin (`plugin_api::fast::OutBuf`):
//! the plugin appends into the caller's `Vec<u8>` and asks the host, through
//! [`grow`], for more room (host code, host allocator). Shared by the fast
//! call path (`fast`) and hook delivery (`hook_call`).

use std::ffi::c_void;

use plugin_api::fast::OutBuf;

/// An empty reply buffer over `vec`'s allocation, for one call: the plugin
/// appends from `ptr`, and asks [`grow`] (with `ctx` = `vec`) for room.
///
/// # Safety
/// `vec` is a live `Vec<u8>` that nothing else touches until the plugin's
/// call returns and the caller has read `len` back (the `Vec`'s length is
/// set by the caller, never by the plugin).
#[inline(always)]
pub(crate) unsafe fn lend(vec: *mut Vec<u8>) -> OutBuf {
    // SAFETY: `vec` is alive and unaliased (the function's contract).
    let (ptr, cap) = unsafe { ((*vec).as_mut_ptr(), (*vec).capacity()) };
    OutBuf {
        ptr,
        len: 0,
        cap,
        ctx: vec.cast::<c_void>(),
        grow,
    }
}

/// Grows the caller's `Vec` for the plugin, keeping the first `len` bytes
/// the plugin wrote, and updates `ptr` and `cap`; false when it cannot.
///
/// # Safety
/// `out` is an `OutBuf` made by the host for one call, whose `ctx` is a
/// live `Vec<u8>` and whose `ptr`/`cap` are that `Vec`'s buffer.
pub(crate) unsafe extern "C" fn grow(out: *mut OutBuf, needed: usize) -> bool {
    // SAFETY: see the function's contract.
    let (buf, vec) = unsafe { (&mut *out, &mut *(*out).ctx.cast::<Vec<u8>>()) };
    if buf.len > buf.cap {
        return false;
    }
    // SAFETY: the plugin wrote `buf.len <= capacity` bytes (checked above).
    unsafe { vec.set_len(buf.len) };
    if vec.try_reserve(needed.saturating_sub(buf.len)).is_err() {
        return false;
    }
    buf.ptr = vec.as_mut_ptr();
    buf.cap = vec.capacity();
    true
}
