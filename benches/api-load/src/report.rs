//! The load test's tables: per route of each single-endpoint run, per route
//! and in total for the mixed run, memory, and the webhook deliveries; and
//! the list of what went wrong (empty when the run passed).

use std::sync::atomic::Ordering;
use std::sync::PoisonError;

use crate::load::{Credential, Outcome, PathOutcome};
use crate::mb;
use crate::webhooks::{Driven, Receiver};

/// One measured run.
pub(crate) struct Run {
    pub(crate) outcome: Outcome,
    /// The daemon's highest VmRSS during the run, bytes.
    pub(crate) rss_max: u64,
    /// Its VmRSS half a second after, bytes.
    pub(crate) rss_after: u64,
}

/// Everything to print.
pub(crate) struct Report<'a> {
    pub(crate) runs: &'a [Run],
    pub(crate) mixed: &'a Run,
    pub(crate) credentials: &'a [Credential],
    pub(crate) idle: u64,
    pub(crate) after: u64,
    /// Events the driver caused (each one delivery due).
    pub(crate) events: usize,
    pub(crate) driven: &'a Driven,
    pub(crate) receiver: &'a Receiver,
    /// Deliveries still in the outbox, and dead letters, at the end.
    pub(crate) pending: usize,
    pub(crate) dead: usize,
}

const HEADER: &str = "| `GET` | requests | req/s | p50 ms | p99 ms | 200 | 403 (expected) | failed | mis-authorised | RSS max / after MB |\n\
                      |---|---:|---:|---:|---:|---:|---:|---:|---:|---:|";

fn row(path: &str, run: &Run, p: &PathOutcome, rss: bool) -> String {
    let memory = if rss {
        format!("{:.0} / {:.0}", mb(run.rss_max), mb(run.rss_after))
    } else {
        String::new()
    };
    format!(
        "| `{path}` | {} | {:.0} | {:.1} | {:.1} | {} | {} | {} | {} | {memory} |",
        p.requests,
        run.outcome.throughput(p),
        p.quantile_ms(0.50),
        p.quantile_ms(0.99),
        p.ok,
        p.refused,
        p.failed,
        p.misauthorised,
    )
}

/// Prints the tables; returns what failed.
pub(crate) fn print(r: &Report<'_>) -> Vec<String> {
    let mut problems = Vec::new();
    let mut note = |p: &PathOutcome| {
        if p.failed + p.misauthorised > 0 {
            problems.push(format!(
                "{} failed and {} mis-authorised of {} requests; first: {}",
                p.failed,
                p.misauthorised,
                p.requests,
                p.first_failure.as_deref().unwrap_or("?")
            ));
        }
    };
    println!();
    println!("One endpoint at a time:");
    println!();
    println!("{HEADER}");
    for run in r.runs {
        for (path, p) in &run.outcome.paths {
            println!("{}", row(path, run, p, true));
            note(p);
        }
    }
    println!();
    println!(
        "Every endpoint at once ({} requests, {:.1} s):",
        r.mixed.outcome.total().requests,
        r.mixed.outcome.elapsed.as_secs_f64()
    );
    println!();
    println!("{HEADER}");
    for (path, p) in &r.mixed.outcome.paths {
        println!("{}", row(path, r.mixed, p, false));
        note(p);
    }
    println!("{}", row("all", r.mixed, &r.mixed.outcome.total(), true));

    let names: Vec<String> = r
        .credentials
        .iter()
        .map(|c| {
            let scopes = if c.scopes.is_empty() {
                "no scope".to_owned()
            } else {
                c.scopes.join(" ")
            };
            format!("{} ({scopes})", c.name)
        })
        .collect();
    println!();
    println!("Credentials, in turn: {}", names.join(", "));

    let (deliveries, verified, bad, distinct, first_bad) = r.receiver.counts();
    let failed_events = r.driven.failed.load(Ordering::Relaxed);
    let types = {
        let seen = r
            .receiver
            .seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        seen.types
            .iter()
            .map(|(t, n)| format!("{t} {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    println!(
        "Webhooks: {} events caused ({failed_events} refused), {deliveries} deliveries received, \
         {verified} verified ({distinct} distinct ids: {types}), {bad} bad signatures; outbox \
         {} pending, {} dead letters",
        r.events, r.pending, r.dead
    );
    if failed_events > 0 {
        let first = r
            .driven
            .first_failure
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        problems.push(format!(
            "event requests failed: {failed_events}; first: {}",
            first.unwrap_or_default()
        ));
    }
    if bad > 0 {
        problems.push(format!(
            "{bad} webhook deliveries did not verify; first: {}",
            first_bad.unwrap_or_default()
        ));
    }
    if distinct < r.events || r.pending > 0 || r.dead > 0 {
        problems.push(format!(
            "{} of {} events were delivered ({} pending, {} dead letters)",
            distinct, r.events, r.pending, r.dead
        ));
    }
    println!(
        "Memory: idle {:.1} MB, after every run {:.1} MB ({:+.1} MB)",
        mb(r.idle),
        mb(r.after),
        mb(r.after) - mb(r.idle)
    );
    if problems.is_empty() {
        println!("api-load: 0 failed, 0 mis-authorised, every event delivered and verified");
    }
    problems
}
