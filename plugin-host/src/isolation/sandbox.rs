//! The runner's sandbox, applied to itself before the plugin library is
//! opened: parent-death signal, no inherited fds but the channel, resource
//! limits, cgroup membership, Landlock and seccomp. Each layer reports one
//! line saying what is in force or why not; nothing is skipped silently.

use std::collections::BTreeMap;

use landlock::{
    path_beneath_rules, Access, AccessFs, AccessNet, Ruleset, RulesetAttr, RulesetCreatedAttr,
    RulesetStatus, ABI,
};
use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule,
};

use super::wire::Hello;

/// The fds a runner keeps: stdin/stdout/stderr, the library and the channel.
pub(crate) const LIBRARY_FD: i32 = 3;
pub(crate) const CHANNEL_FD: i32 = 4;

/// Read-only (and executable) system paths every plugin may use: the
/// dynamic loader's libraries and its cache.
const SYSTEM_READ: &[&str] = &[
    "/usr",
    "/lib",
    "/lib64",
    "/etc/ld.so.cache",
    "/dev/null",
    "/dev/urandom",
];
/// Added for `network:outbound`: name resolution and TLS roots.
const NETWORK_READ: &[&str] = &[
    "/etc/resolv.conf",
    "/etc/hosts",
    "/etc/nsswitch.conf",
    "/etc/ssl",
    "/etc/ca-certificates",
];
/// Added for `process:spawn`: what programs commonly need.
const SPAWN_READ: &[&str] = &["/bin", "/sbin", "/etc", "/proc"];
const SPAWN_WRITE: &[&str] = &["/tmp", "/dev/null", "/dev/tty"];

/// Applies everything in order; the returned lines describe each layer.
/// An error means the runner must not load the plugin.
pub(crate) fn apply(hello: &Hello) -> Result<Vec<String>, String> {
    let mut report = Vec::new();
    let has = |p: &str| hello.permissions.iter().any(|q| q == p);
    close_other_fds()?;
    report.push("fds: all closed but stdio, the library and the channel".to_owned());

    // SAFETY: prctl with integer arguments.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
        return Err(format!(
            "PR_SET_NO_NEW_PRIVS failed: {}",
            std::io::Error::last_os_error()
        ));
    }
    report.push("no_new_privs: on".to_owned());

    for dir in &hello.cgroups {
        let procs = format!("{dir}/cgroup.procs");
        std::fs::write(&procs, std::process::id().to_string())
            .map_err(|e| format!("joining cgroup `{dir}`: {e}"))?;
        report.push(format!("cgroup: joined {dir}"));
    }
    let limits = &hello.limits;
    set_rlimit(libc::RLIMIT_NOFILE, limits.open_files, "open files")?;
    report.push(format!("rlimit: open files {}", limits.open_files));
    if let Some(mb) = limits.address_space_mb {
        set_rlimit(libc::RLIMIT_AS, mb << 20, "address space")?;
        report.push(format!(
            "memory: address-space limit {mb} MiB (no writable cgroup memory controller)"
        ));
    }
    if let Some(secs) = limits.cpu_seconds {
        set_rlimit(libc::RLIMIT_CPU, secs, "cpu time")?;
        report.push(format!(
            "cpu: RLIMIT_CPU {secs} s hard stop (no writable cgroup cpu controller)"
        ));
    }

    report.push(landlock(has("network:outbound"), has("process:spawn"))?);
    report.push(seccomp(has("network:outbound"), has("process:spawn"))?);
    Ok(report)
}

fn close_other_fds() -> Result<(), String> {
    // SAFETY: close_range on fds this process owns; nothing else uses them.
    let r = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            (CHANNEL_FD + 1) as libc::c_uint,
            libc::c_uint::MAX,
            0 as libc::c_uint,
        )
    };
    if r != 0 {
        return Err(format!(
            "close_range failed: {}",
            std::io::Error::last_os_error()
        ));
    }
    Ok(())
}

fn set_rlimit(resource: libc::__rlimit_resource_t, value: u64, what: &str) -> Result<(), String> {
    let limit = libc::rlimit {
        rlim_cur: value,
        rlim_max: value,
    };
    // SAFETY: a valid rlimit struct.
    if unsafe { libc::setrlimit(resource, &limit) } != 0 {
        return Err(format!(
            "setting the {what} limit to {value}: {}",
            std::io::Error::last_os_error()
        ));
    }
    Ok(())
}

fn landlock(network: bool, spawn: bool) -> Result<String, String> {
    let abi = ABI::V6;
    let fail = |e: landlock::RulesetError| format!("landlock: {e}");
    let mut ruleset = Ruleset::default()
        .handle_access(AccessFs::from_all(abi))
        .map_err(fail)?;
    if !network {
        ruleset = ruleset
            .handle_access(AccessNet::from_all(abi))
            .map_err(fail)?;
    }
    let mut read: Vec<&str> = SYSTEM_READ.to_vec();
    if network {
        read.extend(NETWORK_READ);
    }
    if spawn {
        read.extend(SPAWN_READ);
    }
    let existing = |paths: Vec<&str>| -> Vec<String> {
        paths
            .into_iter()
            .filter(|p| std::path::Path::new(p).exists())
            .map(str::to_owned)
            .collect()
    };
    let mut created = ruleset
        .create()
        .map_err(fail)?
        .add_rules(path_beneath_rules(existing(read), AccessFs::from_read(abi)))
        .map_err(fail)?;
    if spawn {
        created = created
            .add_rules(path_beneath_rules(
                existing(SPAWN_WRITE.to_vec()),
                AccessFs::from_all(abi),
            ))
            .map_err(fail)?;
    }
    let status = created.restrict_self().map_err(fail)?;
    let net = if network {
        "TCP allowed (network:outbound)"
    } else {
        "TCP bind/connect denied"
    };
    Ok(match status.ruleset {
        RulesetStatus::FullyEnforced => format!(
            "landlock: fully enforced; files: system libraries read-only{}; {net}",
            if spawn { ", /tmp writable (process:spawn)" } else { "" }
        ),
        RulesetStatus::PartiallyEnforced => {
            format!("landlock: PARTIALLY enforced (the kernel's ABI is older than V6); {net}")
        }
        RulesetStatus::NotEnforced => {
            "landlock: NOT enforced: the kernel does not support it; files and TCP are not restricted"
                .to_owned()
        }
    })
}

fn seccomp(network: bool, spawn: bool) -> Result<String, String> {
    let arch = std::env::consts::ARCH
        .try_into()
        .map_err(|e| format!("seccomp: unsupported architecture: {e}"))?;
    let cond = |arg, op, value| {
        SeccompCondition::new(arg, SeccompCmpArgLen::Dword, op, value)
            .map_err(|e| format!("seccomp rule: {e}"))
    };
    let mut eperm: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
    let mut eacces: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
    let mut enosys: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
    let mut denied = Vec::new();
    if !spawn {
        for call in [
            libc::SYS_execve,
            libc::SYS_execveat,
            libc::SYS_fork,
            libc::SYS_vfork,
        ] {
            eperm.insert(call, Vec::new());
        }
        // clone without CLONE_THREAD makes a process; threads stay allowed.
        eperm.insert(
            libc::SYS_clone,
            vec![SeccompRule::new(vec![cond(
                0,
                SeccompCmpOp::MaskedEq(libc::CLONE_THREAD as u64),
                0,
            )?])
            .map_err(|e| format!("seccomp rule: {e}"))?],
        );
        // clone3 passes its flags in memory seccomp cannot read: ENOSYS makes
        // libc fall back to clone, which the rule above inspects.
        enosys.insert(libc::SYS_clone3, Vec::new());
        denied.push("execve/fork/clone of processes (EPERM)");
    }
    if !network {
        let mut rules = Vec::new();
        for family in [libc::AF_INET, libc::AF_INET6] {
            rules.push(
                SeccompRule::new(vec![cond(0, SeccompCmpOp::Eq, family as u64)?])
                    .map_err(|e| format!("seccomp rule: {e}"))?,
            );
        }
        eacces.insert(libc::SYS_socket, rules);
        denied.push("IPv4/IPv6 sockets (EACCES)");
    }
    if denied.is_empty() {
        return Ok("seccomp: nothing to deny (process:spawn and network:outbound declared)".into());
    }
    for (rules, errno) in [
        (eperm, libc::EPERM),
        (eacces, libc::EACCES),
        (enosys, libc::ENOSYS),
    ] {
        if rules.is_empty() {
            continue;
        }
        let filter = SeccompFilter::new(
            rules,
            SeccompAction::Allow,
            SeccompAction::Errno(errno as u32),
            arch,
        )
        .map_err(|e| format!("seccomp filter: {e}"))?;
        let program: BpfProgram = filter
            .try_into()
            .map_err(|e| format!("seccomp filter: {e}"))?;
        seccompiler::apply_filter(&program).map_err(|e| format!("seccomp: {e}"))?;
    }
    Ok(format!("seccomp: denies {}", denied.join(", ")))
}
