//! The call channel between host and runner: one shared-memory slot (a
//! memfd mapped by both) holding a state word and one message, with a futex
//! on the state word for wake-ups after a short spin.
//!
//! Invariants:
//! - exactly one side writes the message area at a time: the side whose
//!   turn the state word says it is (host: `IDLE`/`RESPONSE`/`CALLBACK`,
//!   runner: `REQUEST`/`CALLBACK_REPLY`);
//! - the host never trusts the runner's values: an unknown state or an
//!   out-of-range length is "garbage on the channel";
//! - the host's supervisor writes `DEAD` when the child is gone, so a
//!   waiting caller wakes at once.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// Size of the mapping; messages larger than [`Channel::capacity`] are refused.
pub(crate) const CHANNEL_BYTES: usize = 8 << 20;
const HEADER: usize = 64;
const MAGIC: u32 = 0x504b_4348; // "PKCH"

pub(crate) const IDLE: u32 = 0;
pub(crate) const REQUEST: u32 = 1;
pub(crate) const RESPONSE: u32 = 2;
pub(crate) const CALLBACK: u32 = 3;
pub(crate) const CALLBACK_REPLY: u32 = 4;
pub(crate) const DEAD: u32 = 5;
/// Written by a runner that speaks another protocol version.
pub(crate) const REFUSED: u32 = 6;

#[repr(C)]
struct Header {
    magic: AtomicU32,
    protocol: AtomicU32,
    state: AtomicU32,
    len: AtomicU32,
    runner_protocol: AtomicU32,
}

/// One side's mapping of the channel.
pub(crate) struct Channel {
    base: *mut u8,
    fd: OwnedFd,
    /// How long to busy-wait before sleeping on the futex (see
    /// `ProcessOptions::spin`).
    spin: Duration,
}

// SAFETY: the mapping is plain shared memory; every access to the header
// goes through atomics, and the message area is written only by the side
// whose turn it is (see the module invariants), with the turn handed over
// through release/acquire on the state word.
unsafe impl Send for Channel {}
// SAFETY: as above.
unsafe impl Sync for Channel {}

/// How a wait ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wait {
    /// The state word changed to this value.
    State(u32),
    /// The deadline passed first.
    TimedOut,
}

impl Channel {
    /// Creates a new channel (host side) for `protocol`.
    pub(crate) fn create(protocol: u32) -> std::io::Result<Self> {
        // SAFETY: a valid NUL-terminated name and flags.
        let fd = unsafe { libc::memfd_create(c"plugkit-channel".as_ptr(), libc::MFD_CLOEXEC) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: memfd_create returned a fresh fd we now own.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: a valid fd and length.
        if unsafe { libc::ftruncate(fd.as_raw_fd(), CHANNEL_BYTES as libc::off_t) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        let channel = Self::map(fd)?;
        let h = channel.header();
        h.magic.store(MAGIC, Ordering::Relaxed);
        h.protocol.store(protocol, Ordering::Relaxed);
        h.state.store(IDLE, Ordering::Release);
        Ok(channel)
    }

    /// Maps an inherited channel fd (runner side).
    pub(crate) fn open(fd: RawFd) -> std::io::Result<Self> {
        // SAFETY: the runner is handed this fd by its host and owns it.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let channel = Self::map(fd)?;
        if channel.header().magic.load(Ordering::Acquire) != MAGIC {
            return Err(std::io::Error::other("fd 4 is not a plugkit channel"));
        }
        Ok(channel)
    }

    fn map(fd: OwnedFd) -> std::io::Result<Self> {
        // SAFETY: mapping a memfd of CHANNEL_BYTES bytes, shared.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                CHANNEL_BYTES,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        Ok(Self {
            base: base.cast(),
            fd,
            spin: Duration::ZERO,
        })
    }

    /// Sets how long waits busy-wait before sleeping.
    pub(crate) fn set_spin(&mut self, spin: Duration) {
        self.spin = spin;
    }

    pub(crate) fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    fn header(&self) -> &Header {
        // SAFETY: the mapping starts with a Header-sized, aligned area that
        // lives as long as `self`.
        unsafe { &*self.base.cast::<Header>() }
    }

    /// The largest message the channel carries.
    pub(crate) fn capacity(&self) -> usize {
        CHANNEL_BYTES - HEADER
    }

    /// The protocol the host wrote.
    pub(crate) fn host_protocol(&self) -> u32 {
        self.header().protocol.load(Ordering::Acquire)
    }

    /// The protocol a refusing runner wrote.
    pub(crate) fn runner_protocol(&self) -> u32 {
        self.header().runner_protocol.load(Ordering::Acquire)
    }

    /// Runner side: refuse the host's protocol.
    pub(crate) fn refuse(&self, runner_protocol: u32) {
        self.header()
            .runner_protocol
            .store(runner_protocol, Ordering::Release);
        self.publish(REFUSED);
    }

    pub(crate) fn state(&self) -> u32 {
        self.header().state.load(Ordering::Acquire)
    }

    /// The message area, for writing a message before [`Self::publish`].
    ///
    /// Only the side whose turn it is may call this (module invariants).
    #[allow(
        clippy::mut_from_ref,
        reason = "turn-taking on the state word gives exclusive access"
    )]
    pub(crate) fn buffer(&self) -> &mut [u8] {
        // SAFETY: the area after the header is CHANNEL_BYTES - HEADER bytes
        // of the live mapping; exclusivity comes from the turn protocol.
        unsafe { std::slice::from_raw_parts_mut(self.base.add(HEADER), self.capacity()) }
    }

    /// The current message, or `None` when its length is out of range.
    pub(crate) fn message(&self) -> Option<&[u8]> {
        let len = self.header().len.load(Ordering::Acquire) as usize;
        (len <= self.capacity()).then(|| &self.buffer()[..len])
    }

    /// Sets the message length and hands the turn over with `state`.
    pub(crate) fn send(&self, len: usize, state: u32) {
        self.header().len.store(len as u32, Ordering::Relaxed);
        self.publish(state);
    }

    /// Stores `state` and wakes the other side.
    pub(crate) fn publish(&self, state: u32) {
        let word = &self.header().state;
        word.store(state, Ordering::Release);
        futex_wake(word);
    }

    /// Waits while the state word is one of `while_in`, until `deadline`.
    pub(crate) fn wait_while(&self, while_in: &[u32], deadline: Option<Instant>) -> Wait {
        let word = &self.header().state;
        let spinning = Instant::now();
        loop {
            for _ in 0..32 {
                let s = word.load(Ordering::Acquire);
                if !while_in.contains(&s) {
                    return Wait::State(s);
                }
                std::hint::spin_loop();
            }
            if spinning.elapsed() >= self.spin {
                break;
            }
        }
        loop {
            let s = word.load(Ordering::Acquire);
            if !while_in.contains(&s) {
                return Wait::State(s);
            }
            let timeout = match deadline {
                Some(d) => match d.checked_duration_since(Instant::now()) {
                    Some(left) if !left.is_zero() => Some(left),
                    _ => return Wait::TimedOut,
                },
                None => None,
            };
            futex_wait(word, s, timeout);
        }
    }
}

impl Drop for Channel {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly what `map` mapped; no reference into it
        // outlives `self` (all borrows are tied to `&self`).
        unsafe { libc::munmap(self.base.cast(), CHANNEL_BYTES) };
    }
}

fn futex_wait(word: &AtomicU32, expected: u32, timeout: Option<Duration>) {
    let ts = timeout.map(|t| libc::timespec {
        tv_sec: t.as_secs().min(i64::MAX as u64) as libc::time_t,
        tv_nsec: t.subsec_nanos() as libc::c_long,
    });
    let ts_ptr = ts
        .as_ref()
        .map_or(std::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: a valid futex word in shared memory (no FUTEX_PRIVATE_FLAG:
    // the other side is another process); EINTR, EAGAIN and ETIMEDOUT all
    // send the caller back to re-check the word.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT,
            expected,
            ts_ptr,
        );
    }
}

fn futex_wake(word: &AtomicU32) {
    // SAFETY: a valid futex word; waking never faults.
    unsafe {
        libc::syscall(libc::SYS_futex, word.as_ptr(), libc::FUTEX_WAKE, i32::MAX);
    }
}
