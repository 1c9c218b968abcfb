//! Benchmark plugin `bench-arith`: the work every contender of the
//! side-by-side benchmark (`benches/side-by-side`) does, so the timings
//! compare call paths and not work.
//!
//! Service methods (integers are 8 bytes, little-endian):
//! - `add_one`: payload an integer `n`, reply `n + 1` (wrapping);
//! - `sum`: reply the sum of the payload's bytes;
//! - `nothing`: empty payload, empty reply (the fixed cost alone).
//!
//! The same methods are served by name (`Service`) and by id with the
//! reply written into the host's buffer (`FastService`, plugin-api's fast
//! call table), so the benchmarks compare both paths into one library.

#![deny(unsafe_code)]

use plugin_api::fast::{FastService, Reply};
use plugin_api::{Plugin, PluginError, Result, Service};

/// The plugin: stateless.
pub struct Arith;

impl Plugin for Arith {
    const ID: &'static str = "bench-arith";
    const NAME: &'static str = "Benchmark arithmetic";
    const CATEGORY: &'static str = "custom";

    fn new() -> Result<Self> {
        Ok(Self)
    }
}

/// `n + 1` for an 8-byte little-endian `n`.
pub fn add_one(payload: &[u8]) -> Result<[u8; 8]> {
    let bytes: [u8; 8] = payload.try_into().map_err(|_| {
        PluginError::invalid_request(format!(
            "bench-arith add_one takes an 8-byte little-endian integer, got {} bytes",
            payload.len()
        ))
    })?;
    Ok(u64::from_le_bytes(bytes).wrapping_add(1).to_le_bytes())
}

/// The sum of the payload's bytes.
pub fn sum(payload: &[u8]) -> u64 {
    // 16-bit lanes, 256 bytes at a time (256 × 255 fits in a u16), so the
    // compiler vectorizes it with plain SSE2; the same code in every native
    // contender (`benches/arith-plugin`, `benches/side-by-side`).
    payload
        .chunks(256)
        .map(|c| u64::from(c.iter().map(|&b| u16::from(b)).sum::<u16>()))
        .sum()
}

impl Service for Arith {
    fn invoke(&self, _tenant: &str, method: &str, payload: &[u8]) -> Result<Vec<u8>> {
        match method {
            "add_one" => add_one(payload).map(Vec::from),
            "sum" => Ok(sum(payload).to_le_bytes().to_vec()),
            "nothing" => Ok(Vec::new()),
            other => Err(PluginError::invalid_request(format!(
                "bench-arith has no method `{other}`; it knows add_one, sum and nothing"
            ))),
        }
    }
}

impl FastService for Arith {
    const METHODS: &'static [&'static str] = &["add_one", "sum", "nothing"];

    #[inline]
    fn call(&self, _tenant: &str, method: u32, input: &[u8], out: &mut Reply<'_>) -> Result<()> {
        match method {
            0 => out.write(&add_one(input)?),
            1 => out.write(&sum(input).to_le_bytes()),
            2 => Ok(()),
            other => Err(PluginError::invalid_request(format!(
                "bench-arith has no method id {other}; it knows 0 (add_one), 1 (sum), 2 (nothing)"
            ))),
        }
    }
}

plugin_api::export_plugin!(Arith, extensions: [service, fast_service]);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_one_adds_one_and_wraps_at_the_top() {
        assert_eq!(
            add_one(&41u64.to_le_bytes()).ok(),
            Some(42u64.to_le_bytes())
        );
        assert_eq!(
            add_one(&u64::MAX.to_le_bytes()).ok(),
            Some(0u64.to_le_bytes())
        );
    }

    #[test]
    fn add_one_refuses_a_payload_that_is_not_eight_bytes() {
        let err = add_one(&[1, 2, 3])
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("got 3 bytes"), "{err}");
    }

    #[test]
    fn sum_adds_every_byte() {
        assert_eq!(sum(&[7u8; 1024]), 7 * 1024);
        assert_eq!(sum(&[]), 0);
        let ramp: Vec<u8> = (0..1000u32).map(|i| (i * 31 + 7) as u8).collect();
        assert_eq!(sum(&ramp), ramp.iter().map(|b| u64::from(*b)).sum::<u64>());
        assert_eq!(sum(&[255; 257]), 255 * 257);
    }

    #[test]
    fn unknown_method_names_the_known_ones() {
        let err = Arith
            .invoke("acme", "mul", &[])
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("add_one, sum and nothing"), "{err}");
    }
}
