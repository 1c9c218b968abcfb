//! `cargo xtask tidy`: the house rules of ARCHITECTURE.md, checked. Runs with
//! the test suite (`tidy_the_workspace` below); each rule has a test that
//! plants a violation and sees it caught.
//!
//! Rules:
//! - every Rust source file opens with a `//!` line saying what it is for;
//! - `unsafe` appears only in the files ARCHITECTURE.md names
//!   ([`UNSAFE_ALLOWED`]), and every other crate root denies `unsafe_code`;
//! - `notify` is used only by the host's watcher (and xtask's `dev` loop);
//! - pure modules ([`PURE_MODULES`]) touch neither the file system nor the
//!   network;
//! - no import cycles between the top-level modules of a crate;
//! - plugin-api's frozen ABI files ([`FROZEN_FILES`]) change only together
//!   with a new minor version of plugin-api (`plugin-api/frozen.sha256`
//!   records them; `cargo xtask tidy --bless` rewrites it after a bump).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};

/// Files that may contain `unsafe`, relative to the workspace root, with the
/// reason ARCHITECTURE.md gives.
pub(crate) const UNSAFE_ALLOWED: &[(&str, &str)] = &[
    (
        "plugin-host/src/loader.rs",
        "the only module that calls dlopen",
    ),
    (
        "plugin-api/src/abi.rs",
        "type-erased category objects cross the boundary",
    ),
    (
        "plugin-api/src/category.rs",
        "boxes and drops category objects in the plugin",
    ),
    (
        "plugin-api/src/sdk.rs",
        "export_plugin! writes the library header",
    ),
    (
        "plugin-api/src/fast.rs",
        "the fast call table's `extern \"C\"` functions take raw pointers and write into the host's buffer",
    ),
    (
        "plugin-host/src/fast.rs",
        "calls the plugin's fast call table by raw pointer and lends it the caller's buffer",
    ),
    (
        "plugin-api/src/fast_hooks.rs",
        "the fast hook table's `extern \"C\"` function takes raw pointers and writes into the host's buffer",
    ),
    (
        "plugin-host/src/hook_call.rs",
        "delivers hooks through the plugin's fast hook table by raw pointer, lending it a buffer",
    ),
    (
        "plugin-host/src/reply_buf.rs",
        "grows the caller's buffer a plugin writes its reply into, by raw pointer",
    ),
    (
        "robustness/src/engine.rs",
        "the robustness run's signal handler saves the input a crash came from",
    ),
    (
        "benches/isolation.rs",
        "the forked Unix-socket echo server process calls are measured against",
    ),
    (
        "benches/calls.rs",
        "the plain `extern \"C\"` baseline plugin calls are measured against",
    ),
    (
        "plugin-host/src/isolation/mod.rs",
        "the sealed memfd the child gets instead of a path",
    ),
    (
        "plugin-host/src/isolation/shm.rs",
        "maps the shared-memory channel and waits on its futex",
    ),
    (
        "plugin-host/src/isolation/sandbox.rs",
        "installs the child's sandbox (fds, rlimits, Landlock, seccomp)",
    ),
    (
        "plugin-host/src/isolation/runner.rs",
        "the child's main checks its parent before loading",
    ),
    (
        "plugin-host/src/isolation/process/spawn.rs",
        "forks the runner (pre_exec) and opens its pidfd",
    ),
    (
        "plugin-host/src/isolation/process/generation.rs",
        "signals and reaps a child through its pidfd",
    ),
];

/// Directories (relative to the workspace root) whose files may contain
/// `unsafe`: the isolation runner's executable. (The host's isolation
/// module is listed file by file in [`UNSAFE_ALLOWED`], so its channel,
/// supervision and category files stay safe code.)
pub(crate) const UNSAFE_ALLOWED_DIRS: &[&str] = &[
    "plugkit-runner/src",
    // Deliberately broken or hostile libraries the host must survive.
    "tests/fixtures/no-root/",
    "tests/fixtures/hostile/",
];

/// What the root of `plugin-host` may export: the embedding API. Everything
/// else lives in named modules (`status`, `dispatch`, `hot_reload`,
/// `tenancy`, `discovery`) or in the `plugin-package` crate (`package`).
pub(crate) const HOST_ROOT_EXPORTS: &[&str] = &[
    "Call",
    "HostError",
    "Host",
    "HostConfig",
    "LoadOptions",
    "PluginHandle",
    "Platform",
    "PlatformConfig",
    "PlatformError",
    "package",
];

/// Modules that do no IO: tested with plain values.
pub(crate) const PURE_MODULES: &[&str] = &[
    "plugin-package/src/manifest/mod.rs",
    "plugin-package/src/manifest/config.rs",
    "plugin-package/src/manifest/error.rs",
    "plugin-package/src/manifest/raw.rs",
    "plugin-package/src/manifest/validate.rs",
    "plugin-package/src/manifest/vocabulary.rs",
    "plugin-package/src/graph/mod.rs",
    "plugin-package/src/graph/bench.rs",
    "plugin-package/src/graph/export.rs",
    "plugin-package/src/graph/problem.rs",
    "plugin-package/src/graph/resolve.rs",
    "plugin-package/src/identity.rs",
    "plugin-package/src/minisig.rs",
    "plugin-package/src/signature.rs",
    "plugin-host/src/lifecycle.rs",
    "plugin-host/src/hooks.rs",
    "plugin-api/src/category.rs",
    "plugin-api/src/hooks.rs",
];

/// What a pure module must not name.
const IO_MARKERS: &[&str] = &[
    "std::fs",
    "fs::read",
    "fs::write",
    "File::open",
    "File::create",
    "std::net",
    "TcpStream",
    "UdpSocket",
    "ureq::",
    "reqwest::",
    "std::process",
];

/// The frozen ABI files of plugin-api: a change to any of them changes what
/// built plugins carry.
pub(crate) const FROZEN_FILES: &[&str] = &[
    "plugin-api/src/abi.rs",
    "plugin-api/src/category.rs",
    "plugin-api/src/communication.rs",
    "plugin-api/src/payment.rs",
    "plugin-api/src/network_automation.rs",
    "plugin-api/src/crm.rs",
    "plugin-api/src/fast.rs",
];

/// Where the frozen files' hashes are recorded.
const FROZEN_RECORD: &str = "plugin-api/frozen.sha256";

/// The kept copy of plugin-api as its current minor first shipped (before
/// `crm`); its frozen files must equal the current ones, or the fixture no
/// longer proves that older plugins load.
const KEPT_INTERFACE: &str = "tests/fixtures/interface-0.2.0/plugin-api";

/// Runs every rule on the workspace at `root`; `bless` rewrites the frozen
/// record instead of checking it.
pub(crate) fn run(root: &Path, bless: bool) -> Result<()> {
    if bless {
        let record = frozen_record(root)?;
        std::fs::write(root.join(FROZEN_RECORD), record)
            .with_context(|| format!("writing {FROZEN_RECORD}"))?;
        eprintln!("xtask tidy: wrote {FROZEN_RECORD}");
    }
    let problems = check(root)?;
    if !problems.is_empty() {
        bail!(
            "tidy found {}:\n- {}",
            crate::wording::counted(problems.len(), "problem", "problems"),
            problems.join("\n- ")
        );
    }
    eprintln!("xtask tidy: the house is in order");
    Ok(())
}

/// Every rule's problems, one line each.
pub(crate) fn check(root: &Path) -> Result<Vec<String>> {
    let files = rust_files(root)?;
    let mut problems = Vec::new();
    for (rel, text) in &files {
        check_opening_doc(rel, text, &mut problems);
        check_unsafe(rel, text, &mut problems);
        check_notify(rel, text, &mut problems);
        check_pure(rel, text, &mut problems);
    }
    check_crate_roots_deny_unsafe(root, &files, &mut problems)?;
    if let Some(lib) = files.get("plugin-host/src/lib.rs") {
        check_host_root(lib, &mut problems);
    }
    check_import_cycles(&files, &mut problems);
    check_frozen(root, &mut problems)?;
    Ok(problems)
}

/// The workspace's Rust files (relative path → text), without build outputs
/// and without the kept older interfaces (fixtures that must never change).
fn rust_files(root: &Path) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let entries =
            std::fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))?;
        for entry in entries {
            let entry = entry?;
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            let rel = relative(root, &path);
            if entry.file_type()?.is_dir() {
                let skip = name.starts_with('.')
                    || name == "target"
                    || name == "node_modules"
                    || rel.starts_with("tests/fixtures/interface-")
                    || rel.starts_with("var")
                    || rel.starts_with("benches/side-by-side/target");
                if !skip {
                    stack.push(path);
                }
            } else if name.ends_with(".rs") {
                let text = std::fs::read_to_string(&path)
                    .with_context(|| format!("reading {}", path.display()))?;
                out.insert(rel, text);
            }
        }
    }
    Ok(out)
}

fn relative(root: &Path, path: &Path) -> String {
    path.strip_prefix(root)
        .unwrap_or(path)
        .to_string_lossy()
        .replace('\\', "/")
}

/// The lines of `text` that are code, with comments and the contents of
/// string literals blanked, so a rule never fires on prose. A string that
/// continues over lines is followed; raw strings are treated as plain ones
/// (good enough for the rules here, which look for identifiers and paths).
fn code_lines(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut in_string = false;
    for (i, line) in text.lines().enumerate() {
        let mut code = String::new();
        let mut chars = line.chars().peekable();
        let mut escaped = false;
        while let Some(c) = chars.next() {
            if in_string {
                if escaped {
                    escaped = false;
                } else if c == '\\' {
                    escaped = true;
                } else if c == '"' {
                    in_string = false;
                    code.push('"');
                }
                continue;
            }
            if c == '/' && chars.peek() == Some(&'/') {
                break;
            }
            // A char literal like '"' must not open a string.
            if c == '\'' {
                let rest: String = chars.clone().take(3).collect();
                let skip = if rest.starts_with("\"'") {
                    2
                } else if rest.starts_with("\\\"'") {
                    3
                } else {
                    0
                };
                if skip > 0 {
                    for _ in 0..skip {
                        chars.next();
                    }
                    code.push_str("' '");
                    continue;
                }
            }
            if c == '"' {
                in_string = true;
            }
            code.push(c);
        }
        let code = code.trim().to_owned();
        if !code.is_empty() {
            out.push((i + 1, code));
        }
    }
    out
}

fn check_opening_doc(rel: &str, text: &str, problems: &mut Vec<String>) {
    let first = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
    if !first.starts_with("//!") {
        problems.push(format!(
            "{rel}: the file does not open with a `//!` line saying what it is for"
        ));
    }
}

fn contains_word(code: &str, word: &str) -> bool {
    code.match_indices(word).any(|(at, _)| {
        let before = code[..at].chars().next_back();
        let after = code[at + word.len()..].chars().next();
        let is_ident = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '_');
        !is_ident(before) && !is_ident(after)
    })
}

fn unsafe_allowed(rel: &str) -> bool {
    UNSAFE_ALLOWED.iter().any(|(file, _)| *file == rel)
        || UNSAFE_ALLOWED_DIRS.iter().any(|dir| rel.starts_with(dir))
}

fn check_unsafe(rel: &str, text: &str, problems: &mut Vec<String>) {
    if unsafe_allowed(rel) {
        return;
    }
    for (line, code) in code_lines(text) {
        // `deny(unsafe_code)` and friends name the lint, not the keyword.
        if contains_word(&code, "unsafe") && !code.contains("unsafe_code") {
            problems.push(format!(
                "{rel}:{line}: `unsafe` outside the modules ARCHITECTURE.md allows it in \
                 (the loader, the isolation runner, plugin-api's boundary); move it there"
            ));
        }
    }
}

fn check_notify(rel: &str, text: &str, problems: &mut Vec<String>) {
    if rel == "plugin-host/src/watch.rs" || rel == "xtask/src/dev.rs" {
        return;
    }
    for (line, code) in code_lines(text) {
        if code.contains("notify::") {
            problems.push(format!(
                "{rel}:{line}: `notify` is used outside the watcher (plugin-host/src/watch.rs); \
                 send a `FolderEvent` from there instead"
            ));
        }
    }
}

fn check_pure(rel: &str, text: &str, problems: &mut Vec<String>) {
    if !PURE_MODULES.contains(&rel) {
        return;
    }
    // Unit tests may build temporary files; the rule is about the module.
    let text = match text.find("#[cfg(test)]") {
        Some(at) => &text[..at],
        None => text,
    };
    for (line, code) in code_lines(text) {
        if let Some(marker) = IO_MARKERS.iter().find(|m| code.contains(**m)) {
            problems.push(format!(
                "{rel}:{line}: `{marker}` in a pure module; pure modules take values and \
                 return values, the caller does the IO"
            ));
        }
    }
}

/// The names `plugin-host`'s root re-exports at top level (not inside a
/// `pub mod { … }` block), each checked against [`HOST_ROOT_EXPORTS`].
fn check_host_root(text: &str, problems: &mut Vec<String>) {
    let mut depth = 0usize;
    let mut statement = String::new();
    for (line, code) in code_lines(text) {
        if depth == 0 && (code.starts_with("pub use ") || !statement.is_empty()) {
            statement.push_str(&code);
            statement.push(' ');
            if code.ends_with(';') {
                let names = exported_names(&statement);
                for name in names {
                    if !HOST_ROOT_EXPORTS.contains(&name.as_str()) {
                        problems.push(format!(
                            "plugin-host/src/lib.rs:{line}: the root exports `{name}`; the root is \
                             the embedding API only, put it in a named module"
                        ));
                    }
                }
                statement.clear();
            }
        }
        depth += code.matches('{').count();
        depth = depth.saturating_sub(code.matches('}').count());
    }
}

/// `pub use a::{b, c as d};` → `b`, `d`.
fn exported_names(statement: &str) -> Vec<String> {
    let body = statement
        .trim()
        .trim_start_matches("pub use ")
        .trim_end_matches([';', ' ']);
    let list = match (body.find('{'), body.rfind('}')) {
        (Some(open), Some(close)) => body[open + 1..close].to_owned(),
        _ => body.to_owned(),
    };
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|item| {
            let item = item.rsplit(" as ").next().unwrap_or(item);
            item.rsplit("::").next().unwrap_or(item).trim().to_owned()
        })
        .collect()
}

/// Crates whose root may omit `deny(unsafe_code)`: they hold allowed files.
fn crate_may_use_unsafe(krate: &str) -> bool {
    UNSAFE_ALLOWED
        .iter()
        .any(|(file, _)| file.starts_with(&format!("{krate}/")))
        || UNSAFE_ALLOWED_DIRS
            .iter()
            .any(|dir| dir.starts_with(&format!("{krate}/")))
}

fn check_crate_roots_deny_unsafe(
    root: &Path,
    files: &BTreeMap<String, String>,
    problems: &mut Vec<String>,
) -> Result<()> {
    for (rel, text) in files {
        let is_root = rel.ends_with("src/lib.rs") || rel.ends_with("src/main.rs");
        if !is_root {
            continue;
        }
        let krate = rel
            .trim_end_matches("src/lib.rs")
            .trim_end_matches("src/main.rs")
            .trim_end_matches('/');
        if !root.join(krate).join("Cargo.toml").exists() || crate_may_use_unsafe(krate) {
            continue;
        }
        let denies =
            text.contains("#![deny(unsafe_code)]") || text.contains("#![forbid(unsafe_code)]");
        if !denies {
            problems.push(format!(
                "{rel}: a crate root without `#![deny(unsafe_code)]`; only the crates \
                 ARCHITECTURE.md names may use `unsafe`"
            ));
        }
    }
    Ok(())
}

/// Top-level module of a crate file: `plugin-host/src/host/dispatch.rs` →
/// (`plugin-host`, `host`).
fn module_of(rel: &str) -> Option<(String, String)> {
    let (krate, rest) = rel.split_once("/src/")?;
    if rest == "lib.rs" || rest == "main.rs" || rest.starts_with("bin/") {
        return None;
    }
    let first = rest.split('/').next()?;
    Some((krate.to_owned(), first.trim_end_matches(".rs").to_owned()))
}

fn check_import_cycles(files: &BTreeMap<String, String>, problems: &mut Vec<String>) {
    // crate → module → modules it names through `crate::`.
    let mut graphs: BTreeMap<String, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    for (rel, text) in files {
        let Some((krate, module)) = module_of(rel) else {
            continue;
        };
        let text = match text.find("#[cfg(test)]") {
            Some(at) => &text[..at],
            None => text,
        };
        let edges = graphs
            .entry(krate)
            .or_default()
            .entry(module.clone())
            .or_default();
        for (_, code) in code_lines(text) {
            for (at, _) in code.match_indices("crate::") {
                if code[..at].ends_with('$') {
                    continue; // `$crate::` in a macro
                }
                let name: String = code[at + "crate::".len()..]
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if !name.is_empty() && name != module {
                    edges.insert(name);
                }
            }
        }
    }
    for (krate, graph) in &graphs {
        for cycle in cycles(graph) {
            problems.push(format!(
                "{krate}: import cycle between modules {}; move the shared piece into a \
                 module both can depend on",
                cycle.join(" → ")
            ));
        }
    }
}

/// Every elementary cycle's canonical form, found by a depth-first search
/// from each module (the graphs are a few dozen nodes).
fn cycles(graph: &BTreeMap<String, BTreeSet<String>>) -> BTreeSet<Vec<String>> {
    fn visit(
        graph: &BTreeMap<String, BTreeSet<String>>,
        start: &str,
        node: &str,
        path: &mut Vec<String>,
        found: &mut BTreeSet<Vec<String>>,
    ) {
        for next in graph.get(node).into_iter().flatten() {
            if !graph.contains_key(next) {
                continue;
            }
            if next == start {
                let mut cycle = path.clone();
                // Canonical: rotate so the smallest module comes first.
                let min = (0..cycle.len()).min_by_key(|&i| &cycle[i]).unwrap_or(0);
                cycle.rotate_left(min);
                let first = cycle[0].clone();
                cycle.push(first);
                found.insert(cycle);
            } else if !path.contains(next) && next.as_str() > start {
                path.push(next.clone());
                visit(graph, start, next, path, found);
                path.pop();
            }
        }
    }
    let mut found = BTreeSet::new();
    for start in graph.keys() {
        let mut path = vec![start.clone()];
        visit(graph, start, start, &mut path, &mut found);
    }
    found
}

/// A frozen file's text with comments and blank lines removed: what the
/// compiler sees of it, so that a doc fix does not count as an ABI change.
fn abi_text(text: &str) -> String {
    let mut out = String::new();
    // Strings stay: a category's name is part of its ABI.
    for line in text.lines().map(str::trim) {
        if !line.is_empty() && !line.starts_with("//") {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

fn plugin_api_minor(root: &Path) -> Result<String> {
    let toml = std::fs::read_to_string(root.join("plugin-api/Cargo.toml"))
        .context("reading plugin-api/Cargo.toml")?;
    let version = toml
        .lines()
        .find_map(|l| l.strip_prefix("version = \""))
        .and_then(|v| v.strip_suffix('"'))
        .context("plugin-api/Cargo.toml has no literal `version = \"…\"` (it must not inherit the workspace's)")?;
    let parsed = semver::Version::parse(version).context("plugin-api's version")?;
    Ok(format!("{}.{}", parsed.major, parsed.minor))
}

fn frozen_record(root: &Path) -> Result<String> {
    let mut out = format!(
        "# plugin-api {} frozen ABI files: sha256 of their code without comments.\n\
         # Written by `cargo xtask tidy --bless`; a change needs a new plugin-api minor.\n",
        plugin_api_minor(root)?
    );
    for file in FROZEN_FILES {
        let text =
            std::fs::read_to_string(root.join(file)).with_context(|| format!("reading {file}"))?;
        let hash = hex::encode(Sha256::digest(abi_text(&text).as_bytes()));
        let _ = writeln!(out, "{hash}  {file}");
    }
    Ok(out)
}

fn check_frozen(root: &Path, problems: &mut Vec<String>) -> Result<()> {
    let recorded = match std::fs::read_to_string(root.join(FROZEN_RECORD)) {
        Ok(text) => text,
        Err(_) => {
            problems.push(format!(
                "{FROZEN_RECORD} is missing; run `cargo xtask tidy --bless` to record the frozen ABI files"
            ));
            return Ok(());
        }
    };
    let minor = plugin_api_minor(root)?;
    let recorded_minor = recorded
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("# plugin-api "))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or("");
    let current = frozen_record(root)?;
    if recorded_minor != minor {
        // A new minor: every change is allowed, and the record must be renewed.
        problems.push(format!(
            "plugin-api is {minor} but {FROZEN_RECORD} records {recorded_minor}; run \
             `cargo xtask tidy --bless` to freeze the new minor's ABI files"
        ));
        return Ok(());
    }
    let hashes = |text: &str| -> BTreeMap<String, String> {
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| l.split_once("  "))
            .map(|(h, f)| (f.to_owned(), h.to_owned()))
            .collect()
    };
    let (recorded, current) = (hashes(&recorded), hashes(&current));
    let kept = root.join(KEPT_INTERFACE);
    if kept.exists() {
        for file in FROZEN_FILES {
            let Some(name) = file.strip_prefix("plugin-api/") else {
                continue;
            };
            let Ok(old) = std::fs::read_to_string(kept.join(name)) else {
                continue; // added in a later patch, like `crm`
            };
            let new = std::fs::read_to_string(root.join(file))
                .with_context(|| format!("reading {file}"))?;
            if abi_text(&old) != abi_text(&new) {
                problems.push(format!(
                    "{file} differs from the kept {KEPT_INTERFACE}/{name}: plugins built \
                     against the first release of this minor would no longer match; revert \
                     the change or start a new minor"
                ));
            }
        }
    }
    for (file, hash) in &current {
        match recorded.get(file) {
            Some(old) if old == hash => {}
            Some(_) => problems.push(format!(
                "{file} changed, but it is a frozen ABI file of plugin-api {minor}: plugins \
                 built against {minor} carry the old form. Revert the change, or bump \
                 plugin-api to the next minor (rebuild every plugin) and run \
                 `cargo xtask tidy --bless`; a new capability goes in a new file instead"
            )),
            None => problems.push(format!(
                "{file} is a frozen ABI file not yet recorded; run `cargo xtask tidy --bless` \
                 (adding a category is a patch release of plugin-api)"
            )),
        }
    }
    Ok(())
}

/// The workspace root for `tidy`, given xtask's manifest directory.
pub(crate) fn workspace_root() -> PathBuf {
    crate::artifacts::workspace_root()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tidy_the_workspace() {
        let problems = check(&workspace_root()).expect("tidy runs");
        assert!(problems.is_empty(), "tidy:\n- {}", problems.join("\n- "));
    }

    /// A minimal workspace with one crate and the frozen record in order.
    fn planted(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("temp dir");
        let root = dir.path();
        let mut all: Vec<(String, String)> = vec![
            (
                "plugin-api/Cargo.toml".into(),
                "[package]\nname = \"plugin-api\"\nversion = \"0.2.1\"\n".into(),
            ),
            (
                "demo/Cargo.toml".into(),
                "[package]\nname = \"demo\"\n".into(),
            ),
            (
                "demo/src/lib.rs".into(),
                "//! Demo.\n#![deny(unsafe_code)]\npub mod a;\npub mod b;\n".into(),
            ),
            ("demo/src/a.rs".into(), "//! A.\npub fn a() {}\n".into()),
            (
                "demo/src/b.rs".into(),
                "//! B.\npub fn b() { crate::a::a() }\n".into(),
            ),
        ];
        for file in FROZEN_FILES {
            all.push(((*file).into(), "//! Frozen.\npub struct Frozen;\n".into()));
        }
        for (path, text) in &all {
            let path = root.join(path);
            std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
            std::fs::write(path, text).expect("write");
        }
        std::fs::write(
            root.join(FROZEN_RECORD),
            frozen_record(root).expect("record"),
        )
        .expect("write");
        for (path, text) in files {
            let path = root.join(path);
            std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
            std::fs::write(path, text).expect("write");
        }
        dir
    }

    fn check_planted(files: &[(&str, &str)], expected: &str) {
        let dir = planted(files);
        let problems = check(dir.path()).expect("tidy runs");
        assert!(
            problems.iter().any(|p| p.contains(expected)),
            "expected a problem containing {expected:?}, got {problems:#?}"
        );
    }

    #[test]
    fn a_clean_planted_tree_passes() {
        let dir = planted(&[]);
        assert_eq!(check(dir.path()).expect("tidy runs"), Vec::<String>::new());
    }

    #[test]
    fn a_file_without_an_opening_doc_line_is_caught() {
        check_planted(
            &[("demo/src/a.rs", "pub fn a() {}\n")],
            "demo/src/a.rs: the file does not open with a `//!` line",
        );
    }

    #[test]
    fn unsafe_outside_the_allowed_modules_is_caught() {
        check_planted(
            &[(
                "demo/src/a.rs",
                "//! A.\npub fn a() { unsafe { std::hint::unreachable_unchecked() } }\n",
            )],
            "demo/src/a.rs:2: `unsafe` outside the modules",
        );
    }

    #[test]
    fn unsafe_in_an_isolation_file_off_the_list_is_caught() {
        check_planted(
            &[(
                "plugin-host/src/isolation/process/call.rs",
                "//! Calls.\npub fn c() { unsafe { std::hint::unreachable_unchecked() } }\n",
            )],
            "plugin-host/src/isolation/process/call.rs:2: `unsafe` outside the modules",
        );
    }

    #[test]
    fn a_crate_root_that_does_not_deny_unsafe_is_caught() {
        check_planted(
            &[("demo/src/lib.rs", "//! Demo.\npub mod a;\npub mod b;\n")],
            "demo/src/lib.rs: a crate root without `#![deny(unsafe_code)]`",
        );
    }

    #[test]
    fn notify_outside_the_watcher_is_caught() {
        check_planted(
            &[(
                "plugin-host/src/host.rs",
                "//! Host.\nfn w() { let _ = notify::recommended_watcher(|_| {}); }\n",
            )],
            "plugin-host/src/host.rs:2: `notify` is used outside the watcher",
        );
    }

    #[test]
    fn io_in_a_pure_module_is_caught() {
        check_planted(
            &[(
                "plugin-package/src/graph/resolve.rs",
                "//! Graph.\nfn g() { let _ = std::fs::read(\"x\"); }\n",
            )],
            "plugin-package/src/graph/resolve.rs:2: `std::fs` in a pure module",
        );
    }

    #[test]
    fn an_import_cycle_between_modules_is_caught() {
        check_planted(
            &[("demo/src/a.rs", "//! A.\npub fn a() { crate::b::b() }\n")],
            "demo: import cycle between modules a → b → a",
        );
    }

    #[test]
    fn a_host_root_export_outside_the_embedding_api_is_caught() {
        check_planted(
            &[(
                "plugin-host/src/lib.rs",
                "//! Host.\n#![deny(unsafe_code)]\npub use host::{Host, PluginStatus};\n\
                 pub mod status {\n    pub use crate::host::PluginHealth;\n}\n",
            )],
            "plugin-host/src/lib.rs:3: the root exports `PluginStatus`",
        );
    }

    #[test]
    fn a_changed_abi_file_without_a_minor_bump_is_caught() {
        check_planted(
            &[(
                "plugin-api/src/abi.rs",
                "//! Frozen.\npub struct Frozen(u8);\n",
            )],
            "plugin-api/src/abi.rs changed, but it is a frozen ABI file of plugin-api 0.2",
        );
    }

    #[test]
    fn a_comment_change_in_an_abi_file_is_not_an_abi_change() {
        let dir = planted(&[(
            "plugin-api/src/abi.rs",
            "//! Frozen, with better docs.\n// and a comment\npub struct Frozen;\n",
        )]);
        assert_eq!(check(dir.path()).expect("tidy runs"), Vec::<String>::new());
    }

    #[test]
    fn a_minor_bump_asks_for_the_record_to_be_renewed() {
        check_planted(
            &[
                (
                    "plugin-api/src/abi.rs",
                    "//! Frozen.\npub struct Frozen(u8);\n",
                ),
                (
                    "plugin-api/Cargo.toml",
                    "[package]\nname = \"plugin-api\"\nversion = \"0.3.0\"\n",
                ),
            ],
            "plugin-api is 0.3 but plugin-api/frozen.sha256 records 0.2",
        );
    }
}
