//! The sampler: each contender runs in batches long enough for the clock to
//! be negligible, contenders take turns round by round so drift on a shared
//! machine spreads over all of them, and the per-call times of the batches
//! give median, min, max and p99.

use std::time::{Duration, Instant};

/// How long one timed batch should take; the clock's own cost (~25 ns a
/// reading) is then below 0.1% of it.
const BATCH_TARGET: Duration = Duration::from_micros(50);

/// Runs `calls` calls and returns how long they took. The loop lives inside
/// the closure, so the call under test is not behind a virtual call.
pub(crate) type Batch<'a> = Box<dyn FnMut(u64) -> Duration + 'a>;

/// One contender's timings: nanoseconds per call, one value per batch.
#[derive(Debug, Clone)]
pub(crate) struct Stats {
    pub(crate) median: f64,
    pub(crate) min: f64,
    pub(crate) max: f64,
    pub(crate) p99: f64,
    pub(crate) batch: u64,
}

impl Stats {
    fn from_samples(mut ns_per_call: Vec<f64>, batch: u64) -> Self {
        ns_per_call.sort_by(f64::total_cmp);
        let at = |q: f64| {
            let i = ((ns_per_call.len() - 1) as f64 * q).round() as usize;
            ns_per_call[i]
        };
        Self {
            median: at(0.5),
            min: ns_per_call[0],
            max: ns_per_call[ns_per_call.len() - 1],
            p99: at(0.99),
            batch,
        }
    }
}

/// A contender under measurement.
struct Runner<'a> {
    run: Batch<'a>,
    batch: u64,
    samples: Vec<f64>,
}

/// Calibrates each batch size, warms up, then runs `rounds` rounds in which
/// every contender takes `per_round` samples in turn. Short turns (the
/// default is 10 samples, about 0.5 ms) spread the other load of a shared
/// machine evenly: with long turns a sub-nanosecond baseline moved by 50%
/// between runs on the 2-core machine.
pub(crate) fn measure(batches: Vec<Batch<'_>>, rounds: usize, per_round: usize) -> Vec<Stats> {
    let mut runners: Vec<Runner<'_>> = batches
        .into_iter()
        .map(|mut run| {
            let batch = calibrate(&mut run);
            Runner {
                run,
                batch,
                samples: Vec::with_capacity(rounds * per_round),
            }
        })
        .collect();
    for _ in 0..rounds {
        for r in &mut runners {
            for _ in 0..per_round {
                let took = (r.run)(r.batch);
                r.samples.push(took.as_nanos() as f64 / r.batch as f64);
            }
        }
    }
    runners
        .into_iter()
        .map(|r| Stats::from_samples(r.samples, r.batch))
        .collect()
}

/// The number of calls that takes about `BATCH_TARGET`, after a warm-up of
/// about 50 ms (caches, branch predictors, lazily compiled code, CPU clock).
fn calibrate(run: &mut Batch<'_>) -> u64 {
    let warm_until = Instant::now() + Duration::from_millis(50);
    let mut calls = 1u64;
    loop {
        let took = run(calls);
        if took >= BATCH_TARGET && Instant::now() >= warm_until {
            break;
        }
        if took < BATCH_TARGET {
            calls = calls.saturating_mul(2);
        }
    }
    let per_call = run(calls).as_nanos() as f64 / calls as f64;
    ((BATCH_TARGET.as_nanos() as f64 / per_call).ceil() as u64).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_pick_median_extremes_and_p99() {
        let s = Stats::from_samples((1..=101).rev().map(f64::from).collect(), 8);
        assert_eq!((s.min, s.median, s.max, s.p99), (1.0, 51.0, 101.0, 100.0));
        assert_eq!(s.batch, 8);
    }
}
