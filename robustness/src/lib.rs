//! The robustness run: feeds mutated inputs to one of plugkit's parsers or
//! request handlers and prints what it found as one JSON line. Run through
//! `cargo xtask fuzz`, which runs each target in its own process.
//!
//! The Twilio and Stripe targets have binaries of their own
//! (`robustness-twilio`, `robustness-stripe`): two plugin crates cannot be
//! linked into one program yet (both export the same root-module symbol;
//! issue 14, item 8). `plugkit-robustness` runs the others.
//!
//! Why a loop of our own: libFuzzer and cargo-fuzz need a nightly
//! toolchain, afl needs its own compiler wrappers and an instrumented build
//! of every target, and bolero on stable only draws fresh random inputs
//! (no seed corpus). A coverage-free mutator seeded from real files reaches
//! deep enough into text formats whose seeds are already valid, runs on the
//! stable toolchain in a plain release build, and is reproducible per seed.

mod engine;
mod targets;

pub use engine::{fields, join, Outcome, Run, Target};
pub use targets::{lossy, read_dir_files};

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;

const USAGE: &str = "usage: plugkit-robustness <target> [--runs N] [--seed S] \
                     [--budget-ms MS] [--findings DIR] [--workspace DIR]";

/// Builds a target by name from the workspace's files.
pub type Build = fn(&str, &Path) -> Option<anyhow::Result<Target>>;

/// The targets of this crate (`manifest`, `config`, `signature`, `api`).
pub fn host_targets(name: &str, workspace: &Path) -> Option<anyhow::Result<Target>> {
    targets::build(name, workspace)
}

/// A binary's `main`: parses the command line, builds the target with
/// `build` and runs it; exits 2 on a usage or setup error.
pub fn main_with(build: Build) {
    if let Err(error) = run(build) {
        eprintln!("error: {error:#}");
        std::process::exit(2);
    }
}

fn run(build: Build) -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let mut target = None;
    let mut options = engine::Options {
        runs: 1_000_000,
        seed: 1,
        budget: Duration::from_secs(2),
        findings: PathBuf::from("target/robustness/findings"),
    };
    let mut workspace = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().with_context(|| format!("{name} needs a value"));
        match arg.as_str() {
            "--runs" => options.runs = value("--runs")?.parse().context("--runs")?,
            "--seed" => options.seed = value("--seed")?.parse().context("--seed")?,
            "--budget-ms" => {
                options.budget = Duration::from_millis(value("--budget-ms")?.parse()?);
            }
            "--findings" => options.findings = value("--findings")?.into(),
            "--workspace" => workspace = value("--workspace")?.into(),
            name if !name.starts_with('-') && target.is_none() => target = Some(name.to_owned()),
            other => anyhow::bail!("unexpected argument `{other}`\n{USAGE}"),
        }
    }
    let target = target.with_context(|| format!("which target?\n{USAGE}"))?;
    let target = build(&target, &workspace)
        .with_context(|| format!("this program has no target `{target}`"))??;
    engine::run(target, &options)
}
