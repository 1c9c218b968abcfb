//! `cargo xtask bench`: builds the plugins in release mode, runs the
//! criterion benchmarks in `benches/` against them, and lets each benchmark
//! print its ratios to the baseline it measured in the same run.
//! `cargo xtask bench side-by-side` runs the stand-alone comparison with
//! other plugin systems (`benches/side-by-side`, a workspace of its own).
//! `cargo xtask bench api-load` load-tests the release daemon's read
//! endpoints (`benches/api-load`).

use anyhow::{bail, Context, Result};

use crate::artifacts;

/// The filter that selects the side-by-side comparison.
pub(crate) const SIDE_BY_SIDE: &str = "side-by-side";

/// The plugin the side-by-side comparison loads.
const SIDE_BY_SIDE_PLUGIN: &str = "plugkit-bench-arith";

/// The plugin its typed category call goes to (`communication`).
const SIDE_BY_SIDE_TYPED: &str = "fixture-good";

pub(crate) fn run(filter: Option<&str>) -> Result<()> {
    eprintln!("xtask: building plugin libraries (release)");
    let built = artifacts::build_plugins(true)?;
    let list = artifacts::target_dir()?.join("plugkit-artifacts-release.json");
    std::fs::write(&list, serde_json::to_vec_pretty(&built)?)
        .with_context(|| format!("writing {}", list.display()))?;
    let mut cmd = artifacts::cargo();
    cmd.current_dir(artifacts::workspace_root())
        .args(["bench", "-p", "plugkit-bench"])
        // The report reads criterion's estimates from here (see benches/report.rs).
        .env("CRITERION_HOME", list.with_file_name("criterion"))
        .env("PLUGKIT_ARTIFACTS", &list);
    if let Some(f) = filter {
        cmd.args(["--bench", f]);
    }
    if !cmd.status()?.success() {
        bail!("benchmarks failed");
    }
    Ok(())
}

/// Builds the `bench-arith` and `fixture-good` plugins and the process
/// runner here, then builds and runs the side-by-side binary from its own
/// manifest (release), passing it their paths. Its wasmtime, Extism and Lua build into
/// `benches/side-by-side/target`, never into this workspace.
pub(crate) fn side_by_side(args: &[String]) -> Result<()> {
    eprintln!(
        "xtask: building {SIDE_BY_SIDE_PLUGIN}, {SIDE_BY_SIDE_TYPED} and the runner (release)"
    );
    let mut built = artifacts::build(
        &[
            SIDE_BY_SIDE_PLUGIN.to_owned(),
            SIDE_BY_SIDE_TYPED.to_owned(),
        ],
        true,
    )?;
    let mut take = |name: &str| {
        built
            .remove(name)
            .with_context(|| format!("cargo built nothing for {name}"))
    };
    let plugin = take(SIDE_BY_SIDE_PLUGIN)?;
    let typed = take(SIDE_BY_SIDE_TYPED)?;
    let runner = take(artifacts::RUNNER)?;
    let manifest = artifacts::workspace_root()
        .join("benches")
        .join(SIDE_BY_SIDE)
        .join("Cargo.toml");
    eprintln!(
        "xtask: building and running {} (release; the first build compiles wasmtime and takes a while)",
        manifest.display()
    );
    let status = artifacts::cargo()
        .current_dir(artifacts::workspace_root())
        .args(["run", "--release", "--manifest-path"])
        .arg(&manifest)
        .args(["--", "--plugin"])
        .arg(&plugin)
        .arg("--runner")
        .arg(&runner)
        .arg("--typed-plugin")
        .arg(&typed)
        .args(args)
        .status()
        .context("running cargo")?;
    if !status.success() {
        bail!(
            "the side-by-side benchmark failed (see above); it runs alone with \
             `cargo run --release --manifest-path {} -- --plugin {} --runner {} --typed-plugin {}`",
            manifest.display(),
            plugin.display(),
            runner.display(),
            typed.display()
        );
    }
    Ok(())
}

/// The filter that selects the admin API's load test.
pub(crate) const API_LOAD: &str = "api-load";

/// The plugins the load test installs: the three reference plugins, built
/// with the dev profile as `cargo xtask demo` installs them (the larger
/// libraries are the harder case for the read paths).
const API_LOAD_PLUGINS: [&str; 3] = [
    "plugkit-twilio",
    "plugkit-stripe",
    "plugkit-network-automation",
];

/// Builds the reference plugins, the release daemon and the load
/// generator (`benches/api-load`), then runs it; `args` go to it.
pub(crate) fn api_load(args: &[String]) -> Result<()> {
    eprintln!("xtask: building the reference plugins (dev profile)");
    let names = API_LOAD_PLUGINS.map(String::from);
    let built = artifacts::build(&names, false)?;
    let runner = built.get(artifacts::RUNNER).cloned();
    let list = artifacts::target_dir()?.join("plugkit-artifacts-api-load.json");
    std::fs::write(&list, serde_json::to_vec_pretty(&built)?)
        .with_context(|| format!("writing {}", list.display()))?;
    eprintln!("xtask: building isp-daemon and api-load (release)");
    let output = artifacts::cargo()
        .current_dir(artifacts::workspace_root())
        .args([
            "build",
            "--release",
            "-p",
            "isp-daemon",
            "-p",
            "plugkit-api-load",
            "--message-format=json-render-diagnostics",
        ])
        .stderr(std::process::Stdio::inherit())
        .output()
        .context("running cargo build --release -p isp-daemon -p plugkit-api-load")?;
    if !output.status.success() {
        bail!("building the release daemon failed (see the compiler output above)");
    }
    let daemon = crate::demo::executable(&output.stdout, "isp-daemon")
        .context("cargo reported no isp-daemon executable")?;
    let load = crate::demo::executable(&output.stdout, "api-load")
        .context("cargo reported no api-load executable")?;
    let mut cmd = std::process::Command::new(&load);
    cmd.arg("--daemon")
        .arg(&daemon)
        .arg("--artifacts")
        .arg(&list);
    if let Some(runner) = runner {
        cmd.arg("--runner").arg(runner);
    }
    let status = cmd
        .args(args)
        .status()
        .with_context(|| format!("running {}", load.display()))?;
    if !status.success() {
        bail!("the load test failed (see above)");
    }
    Ok(())
}
