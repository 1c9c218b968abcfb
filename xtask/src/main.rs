//! `cargo xtask`: the workflows of plugin authors and operators. This file
//! only parses the command line and dispatches; each task has its module.

mod artifacts;
mod bench;
mod test;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "cargo xtask", about = "plugkit workflows")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Builds every plugin once, then runs the whole test suite against them.
    Test {
        /// Extra arguments for `cargo test` (after `--`).
        #[arg(last = true)]
        args: Vec<String>,
    },
    /// Runs the benchmarks and prints ratios against in-process baselines.
    Bench {
        /// Only benchmarks whose name contains this.
        filter: Option<String>,
    },
    /// Builds the plugin libraries and prints where they are (JSON).
    Artifacts,
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Test { args } => test::run(&args),
        Command::Bench { filter } => bench::run(filter.as_deref()),
        Command::Artifacts => {
            let built = artifacts::build_plugins(false)?;
            println!("{}", serde_json::to_string_pretty(&built)?);
            Ok(())
        }
    }
}
