//! Cgroup v1 memory and CPU limits for a runner, when this host can create
//! cgroups; otherwise the runner falls back to rlimits. Detected per spawn,
//! never assumed, and every outcome is one report line.

use std::path::{Path, PathBuf};

use super::wire::WireLimits;
use super::ProcessOptions;

const ROOT: &str = "/sys/fs/cgroup";
const CFS_PERIOD_US: u64 = 100_000;

/// The cgroups made for one runner.
pub(crate) struct Cgroups {
    pub(crate) dirs: Vec<PathBuf>,
    memory: bool,
    cpu: bool,
    pub(crate) report: Vec<String>,
}

impl Cgroups {
    /// The rlimits the runner sets for what no cgroup covers.
    pub(crate) fn fallback_limits(&self, options: &ProcessOptions) -> WireLimits {
        WireLimits {
            address_space_mb: options.memory_mb.filter(|_| !self.memory),
            cpu_seconds: if options.cpu_percent.is_some() && !self.cpu {
                Some(options.cpu_seconds_fallback)
            } else {
                None
            },
            open_files: options.open_files,
        }
    }

    /// Removes the directories (used when the runner never started).
    pub(crate) fn remove(&self) {
        for dir in &self.dirs {
            let _ = std::fs::remove_dir(dir);
        }
    }
}

/// The v1 hierarchy mounted for `controller`, joined with this process's own
/// cgroup in it, when there is one.
fn own_cgroup(controller: &str) -> Option<PathBuf> {
    let text = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    for line in text.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
        if controllers.split(',').any(|c| c == controller) {
            let mount = Path::new(ROOT).join(controllers);
            if mount.is_dir() {
                return Some(mount.join(path.trim_start_matches('/')));
            }
        }
    }
    None
}

fn make(controller: &str, name: &str, settings: &[(&str, String)]) -> Result<PathBuf, String> {
    let base = own_cgroup(controller)
        .ok_or_else(|| format!("no cgroup v1 `{controller}` hierarchy is mounted"))?;
    let dir = base.join(name);
    std::fs::create_dir(&dir).map_err(|e| format!("cannot create `{}`: {e}", dir.display()))?;
    for (file, value) in settings {
        let path = dir.join(file);
        if let Err(e) = std::fs::write(&path, value) {
            let _ = std::fs::remove_dir(&dir);
            return Err(format!("cannot write `{}`: {e}", path.display()));
        }
    }
    Ok(dir)
}

/// Creates the cgroups `options` ask for.
pub(crate) fn create(label: &str, serial: u64, options: &ProcessOptions) -> Cgroups {
    let name = format!("plugkit-{label}-{}-{serial}", std::process::id());
    let mut out = Cgroups {
        dirs: Vec::new(),
        memory: false,
        cpu: false,
        report: Vec::new(),
    };
    if let Some(mb) = options.memory_mb {
        let bytes = (mb << 20).to_string();
        match make("memory", &name, &[("memory.limit_in_bytes", bytes)]) {
            Ok(dir) => {
                // Without swap accounting the limit above already covers it.
                let _ = std::fs::write(dir.join("memory.memsw.limit_in_bytes"), (mb << 20).to_string());
                out.report.push(format!(
                    "memory: cgroup v1 limit {mb} MiB ({}), out-of-memory kills reported",
                    dir.display()
                ));
                out.dirs.push(dir);
                out.memory = true;
            }
            Err(why) => out.report.push(format!(
                "memory: no cgroup limit ({why}); the runner sets an address-space limit of {mb} MiB instead"
            )),
        }
    }
    if let Some(pct) = options.cpu_percent {
        let quota = (u64::from(pct) * CFS_PERIOD_US / 100).max(1000);
        match make(
            "cpu",
            &name,
            &[
                ("cpu.cfs_period_us", CFS_PERIOD_US.to_string()),
                ("cpu.cfs_quota_us", quota.to_string()),
            ],
        ) {
            Ok(dir) => {
                out.report.push(format!(
                    "cpu: cgroup v1 quota {pct}% of one core ({})",
                    dir.display()
                ));
                out.dirs.push(dir);
                out.cpu = true;
            }
            Err(why) => out.report.push(format!(
                "cpu: no cgroup quota ({why}); the runner sets RLIMIT_CPU to {} s as a hard stop instead",
                options.cpu_seconds_fallback
            )),
        }
    }
    out
}
