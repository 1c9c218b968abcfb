//! `cargo xtask`: the workflows of plugin authors and operators. This file
//! only parses the command line and dispatches; each task has its module.

#![deny(unsafe_code)]
#![allow(
    rustdoc::invalid_html_tags,
    reason = "doc comments here are clap's --help text, where <name> means a placeholder"
)]

mod artifacts;
mod bench;
mod demo;
mod demo_registry;
mod dev;
mod files;
mod fuzz;
mod install;
mod keys;
mod list;
mod locations;
mod oci;
mod package;
mod peers;
mod remove;
mod scaffold;
mod sign;
mod store;
mod test;
mod tidy;
mod validate;
mod wording;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "cargo xtask",
    about = "plugkit workflows",
    after_help = "Locations: --plugin-dir, else PLUGKIT_PLUGIN_DIR, else <workspace>/var/plugins; \
                  signing key in PLUGKIT_KEY_DIR, else ~/.config/plugkit; \
                  daemon configuration in PLUGKIT_CONFIG_DIR, else <workspace>/config."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Where installed plugins live.
#[derive(Args)]
struct PluginDirArg {
    /// The plugin directory [default: $PLUGKIT_PLUGIN_DIR, else <workspace>/var/plugins].
    #[arg(long, value_name = "DIR")]
    plugin_dir: Option<PathBuf>,
}

/// How to build and install.
#[derive(Args)]
struct InstallArgs {
    /// Build with the release profile.
    #[arg(long, conflicts_with = "debug")]
    release: bool,
    /// Build with the dev profile (the default).
    #[arg(long)]
    debug: bool,
    #[command(flatten)]
    dir: PluginDirArg,
    /// Install even when an older version than the installed one.
    #[arg(long)]
    allow_downgrade: bool,
    /// Only say what would be built and installed.
    #[arg(long)]
    dry_run: bool,
}

#[derive(Subcommand)]
enum Command {
    /// Builds every plugin once, then runs the whole test suite against them.
    Test {
        /// Extra arguments for `cargo test` (after `--`).
        #[arg(last = true)]
        args: Vec<String>,
    },
    /// Checks the house rules of ARCHITECTURE.md (also runs with the tests).
    Tidy {
        /// Record the frozen ABI files anew (after a plugin-api minor bump).
        #[arg(long)]
        bless: bool,
    },
    /// Runs the benchmarks and prints ratios against in-process baselines.
    ///
    /// `cargo xtask bench side-by-side` instead runs the stand-alone
    /// comparison with wasmtime, Extism, Lua and a Unix socket
    /// (`benches/side-by-side`, its own workspace; the first build is long).
    /// `cargo xtask bench api-load` load-tests the release daemon's read
    /// endpoints (`-- --help` lists its options).
    Bench {
        /// Only benchmarks whose name contains this; `side-by-side` for the comparison.
        filter: Option<String>,
        /// Extra arguments for the side-by-side or api-load binary (after `--`), e.g. `--rounds 100`.
        #[arg(last = true)]
        args: Vec<String>,
    },
    /// The robustness run (not part of the tests): feeds mutated inputs to
    /// the manifest, configuration and signature parsers, the Twilio and
    /// Stripe webhook checks and the admin API, one target at a time, and
    /// reports executions and findings (panics, hangs, crashes, faults).
    Fuzz {
        /// Targets to run: manifest, config, signature, twilio, stripe, api [default: all].
        targets: Vec<String>,
        /// Inputs per target (the seeds first, then mutations).
        #[arg(long, default_value_t = 1_000_000)]
        runs: u64,
        /// The mutator's seed; the same seed feeds the same inputs.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Time one input may take before it counts as a hang.
        #[arg(long, default_value_t = 2000)]
        budget_ms: u64,
        /// Where failing inputs are kept [default: <target dir>/robustness/findings].
        #[arg(long, value_name = "DIR")]
        findings: Option<PathBuf>,
        /// Run the api target's daemon with no plugin installed (faster;
        /// by default the reference plugins are built in release and
        /// installed, so requests reach them and the local stand-ins).
        #[arg(long)]
        without_plugins: bool,
    },
    /// Builds the plugin libraries and prints where they are (JSON).
    Artifacts,
    /// Prints where things live (JSON): plugin, key and configuration
    /// directories, and the cargo target directory as cargo reports it.
    Locations {
        #[command(flatten)]
        dir: PluginDirArg,
    },
    /// Builds, signs, verifies and installs plugins (by id, package name or crate folder).
    InstallPlugin {
        /// Plugin ids (e.g. `twilio`), package names, or plugin crate folders.
        #[arg(required = true)]
        names: Vec<String>,
        #[command(flatten)]
        args: InstallArgs,
    },
    /// Installs the reference plugins: twilio, stripe, network-automation.
    InstallCommonPlugins {
        #[command(flatten)]
        args: InstallArgs,
    },
    /// Lists plugins available in plugins/ and installed in the plugin directory.
    ListPlugins {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        dir: PluginDirArg,
    },
    /// Uninstalls a plugin; refuses while installed plugins depend on it.
    RemovePlugin {
        /// The plugin id.
        name: String,
        /// Also remove the installed plugins that depend on it.
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        dir: PluginDirArg,
    },
    /// Creates a plugin crate that builds, installs and loads as it is.
    NewPlugin {
        /// The plugin id, e.g. `sms-gateway`.
        name: String,
        /// One of communication, payment, network-automation, crm, custom.
        #[arg(long)]
        category: String,
        /// Where to create it [default: plugins/<name>, added to the workspace].
        #[arg(long, value_name = "DIR")]
        path: Option<PathBuf>,
    },
    /// Checks a package or plugin crate folder without installing; lists every problem.
    Validate {
        /// A package folder (e.g. <plugin-dir>/<id>) or a plugin crate folder.
        path: PathBuf,
        /// A trusted public key (.pub file or base64); default: the development key and config/trusted-keys.
        #[arg(long, value_name = "KEY")]
        trusted_key: Vec<String>,
        /// Build a crate with the release profile.
        #[arg(long)]
        release: bool,
    },
    /// The main job: installs the reference plugins and runs the ISP daemon's
    /// demo on its embedded configuration (extra arguments go to the daemon).
    Demo {
        #[command(flatten)]
        dir: PluginDirArg,
        /// Deliver the plugins from a demo OCI registry on 127.0.0.1 (started,
        /// filled and stopped by the demo) through the daemon's provisioning,
        /// for this tier [default tier: enterprise; plugin dir: var/demo/provisioned].
        #[arg(long, value_name = "TIER", num_args = 0..=1, default_missing_value = "enterprise")]
        from_registry: Option<String>,
        #[arg(last = true)]
        args: Vec<String>,
    },
    /// Rebuilds and reinstalls a plugin on every save; a host watching the
    /// plugin directory swaps it in, and the build and swap times are printed.
    Dev {
        name: String,
        #[command(flatten)]
        dir: PluginDirArg,
        #[arg(long)]
        release: bool,
        /// Build and install once, report the swap, and exit.
        #[arg(long)]
        once: bool,
    },
    /// Builds, signs and pushes a plugin to an OCI registry as one artifact
    /// tagged by its version; prints its digest.
    Publish {
        /// Plugin id, package name, or plugin crate folder.
        plugin: String,
        /// The registry [default: $PLUGKIT_REGISTRY], e.g. http://127.0.0.1:5000.
        #[arg(long, value_name = "URL")]
        registry: Option<String>,
        /// The repository [default: plugkit/plugins/<id>].
        #[arg(long, value_name = "NAME")]
        repository: Option<String>,
        #[arg(long)]
        release: bool,
    },
    /// Pins, signs (operator key) and pushes an entitlement catalog (TOML).
    PublishCatalog {
        catalog: PathBuf,
        /// The registry [default: $PLUGKIT_REGISTRY].
        #[arg(long, value_name = "URL")]
        registry: Option<String>,
        /// Publish even an expired catalog or one whose serial is not above
        /// the registry's `latest` (daemons will refuse it).
        #[arg(long)]
        force: bool,
    },
    /// Installs the plugins a tier includes from the registry's signed catalog
    /// and writes plugkit.lock.
    Provision {
        #[arg(long)]
        tier: String,
        /// The registry [default: $PLUGKIT_REGISTRY].
        #[arg(long, value_name = "URL")]
        registry: Option<String>,
        #[command(flatten)]
        dir: PluginDirArg,
        /// A trusted public key (.pub file or base64); default: the development key and config/trusted-keys.
        #[arg(long, value_name = "KEY")]
        trusted_key: Vec<String>,
        /// Print the report and the lock as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Creates the development signing key (outside the repository).
    Keygen {
        /// Replace an existing key.
        #[arg(long)]
        force: bool,
    },
    /// Signs a package folder with the development key.
    Sign {
        /// The package folder.
        package: PathBuf,
    },
    /// Verifies a package folder's signature as the host does.
    Verify {
        /// The package folder.
        package: PathBuf,
        /// A trusted public key (.pub file or base64); default: the development key and config/trusted-keys.
        #[arg(long, value_name = "KEY")]
        trusted_key: Vec<String>,
    },
}

fn install_options(args: InstallArgs) -> install::Options {
    install::Options {
        release: args.release,
        plugin_dir: locations::plugin_dir(args.dir.plugin_dir),
        allow_downgrade: args.allow_downgrade,
        dry_run: args.dry_run,
        rebuild: false,
    }
}

fn main() {
    // Errors print as one short chain, never with a backtrace (RUST_BACKTRACE
    // is often set for the tests' sake).
    if let Err(error) = run(Cli::parse().command) {
        eprintln!("error: {error:#}");
        std::process::exit(1);
    }
}

fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Test { args } => test::run(&args),
        Command::Tidy { bless } => tidy::run(&tidy::workspace_root(), bless),
        Command::Bench { filter, args } => match filter.as_deref() {
            Some(bench::SIDE_BY_SIDE) => bench::side_by_side(&args),
            Some(bench::API_LOAD) => bench::api_load(&args),
            _ if !args.is_empty() => {
                anyhow::bail!("arguments after `--` are for `cargo xtask bench side-by-side` or `api-load` only")
            }
            filter => bench::run(filter),
        },
        Command::Fuzz {
            targets,
            runs,
            seed,
            budget_ms,
            findings,
            without_plugins,
        } => fuzz::run(&fuzz::Options {
            targets,
            runs,
            seed,
            budget_ms,
            findings,
            with_plugins: !without_plugins,
        }),
        Command::Artifacts => {
            let built = artifacts::build_plugins(false)?;
            println!("{}", serde_json::to_string_pretty(&built)?);
            Ok(())
        }
        Command::Locations { dir } => {
            let all = locations::all(dir.plugin_dir)?;
            println!("{}", serde_json::to_string_pretty(&all)?);
            Ok(())
        }
        Command::InstallPlugin { names, args } => install::run(&names, &install_options(args)),
        Command::InstallCommonPlugins { args } => {
            let names = install::COMMON_PLUGINS.map(String::from);
            install::run(&names, &install_options(args))
        }
        Command::Demo {
            dir,
            from_registry,
            args,
        } => demo::run(dir.plugin_dir, from_registry.as_deref(), &args),
        Command::Dev {
            name,
            dir,
            release,
            once,
        } => dev::run(&name, locations::plugin_dir(dir.plugin_dir), release, once),
        Command::ListPlugins { json, dir } => {
            list::run(&locations::plugin_dir(dir.plugin_dir), json)
        }
        Command::RemovePlugin { name, force, dir } => {
            remove::run(&locations::plugin_dir(dir.plugin_dir), &name, force)
        }
        Command::NewPlugin {
            name,
            category,
            path,
        } => scaffold::run(&name, &category, path),
        Command::Validate {
            path,
            trusted_key,
            release,
        } => validate::run(&path, &trusted_key, release),
        Command::Publish {
            plugin,
            registry,
            repository,
            release,
        } => oci::publish(
            &plugin,
            oci::registry(registry)?,
            repository.as_deref(),
            release,
        ),
        Command::PublishCatalog {
            catalog,
            registry,
            force,
        } => oci::publish_catalog(&catalog, oci::registry(registry)?, force),
        Command::Provision {
            tier,
            registry,
            dir,
            trusted_key,
            json,
        } => oci::provision(
            &tier,
            oci::registry(registry)?,
            locations::plugin_dir(dir.plugin_dir),
            &trusted_key,
            json,
        ),
        Command::Keygen { force } => keys::keygen(force),
        Command::Sign { package } => sign::sign(&package),
        Command::Verify {
            package,
            trusted_key,
        } => sign::verify(&package, &trusted_key),
    }
}
