//! The host's side of a reply buffer lent to a plugin (`plugin_api::fast::OutBuf`):
//! the plugin appends into the caller's `Vec<u8>` and asks the host, through
//! [`grow`], for more room (host code, host allocator). Shared by the fast
//! call path (`fast`) and hook delivery (`hook_call`).

use plugin_api::fast::OutBuf;

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
