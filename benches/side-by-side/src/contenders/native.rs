//! The baseline: a call through `Box<dyn Trait>` to code in the same binary.

use std::hint::black_box;

use super::Contender;

/// The interface the baseline calls through a vtable.
pub(crate) trait Callee {
    fn add_one(&self, x: u64) -> u64;
    fn sum(&self, payload: &[u8]) -> u64;
}

struct Arith;

impl Callee for Arith {
    #[inline(never)]
    fn add_one(&self, x: u64) -> u64 {
        x.wrapping_add(1)
    }

    #[inline(never)]
    fn sum(&self, payload: &[u8]) -> u64 {
        sum_bytes(payload)
    }
}

/// The sum of the payload's bytes, as `bench-arith` computes it.
pub(crate) fn sum_bytes(payload: &[u8]) -> u64 {
    // 16-bit lanes, 256 bytes at a time (256 × 255 fits in a u16), so the
    // compiler vectorizes it with plain SSE2; the same code in every native
    // contender (`benches/arith-plugin`, `benches/side-by-side`).
    payload
        .chunks(256)
        .map(|c| u64::from(c.iter().map(|&b| u16::from(b)).sum::<u16>()))
        .sum()
}

/// `Box<dyn Callee>`, hidden from the optimizer so the call stays virtual.
pub(crate) struct BoxDyn(Box<dyn Callee>);

impl BoxDyn {
    pub(crate) fn new() -> Self {
        Self(black_box(Box::new(Arith)))
    }
}

impl Contender for BoxDyn {
    #[inline]
    fn add_one(&mut self, x: u64) -> anyhow::Result<u64> {
        Ok(self.0.add_one(x))
    }

    #[inline]
    fn sum(&mut self, payload: &[u8]) -> anyhow::Result<u64> {
        Ok(self.0.sum(payload))
    }
}
