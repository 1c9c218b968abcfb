//! The targets of the robustness run: what each feeds its inputs to, and
//! the real files its seeds come from.

mod api;
mod host;

use std::borrow::Cow;
use std::path::Path;

use crate::engine::Target;

/// Builds the target `name`, reading its seeds from `workspace`; `None`
/// when it is not one of this crate's.
pub(crate) fn build(name: &str, workspace: &Path) -> Option<anyhow::Result<Target>> {
    Some(match name {
        "manifest" => host::manifest(workspace),
        "config" => host::config(workspace),
        "signature" => host::signature(workspace),
        "api" => api::api(workspace),
        _ => return None,
    })
}

/// Text as a parser that reads a file would see it (invalid UTF-8 replaced,
/// so every input reaches the parser).
pub fn lossy(bytes: &[u8]) -> Cow<'_, str> {
    String::from_utf8_lossy(bytes)
}

/// The files of a corpus folder, sorted by name.
pub fn read_dir_files(dir: &Path) -> anyhow::Result<Vec<Vec<u8>>> {
    let mut paths: Vec<_> = std::fs::read_dir(dir)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    paths.sort();
    paths
        .iter()
        .filter(|p| p.is_file())
        .map(|p| Ok(std::fs::read(p)?))
        .collect()
}

/// TOML's punctuation plus `words`.
pub(crate) fn toml_tokens(words: &[&str]) -> Vec<Vec<u8>> {
    [
        "=",
        "\"",
        "'",
        "'''",
        "\"\"\"",
        "[",
        "]",
        "[[",
        "]]",
        "{",
        "}",
        ",",
        ".",
        "#",
        "\\u",
        "\\",
        "\n",
        "\r\n",
        "true",
        "false",
        "1979-05-27T07:32:00Z",
        "0x7f",
        "1_000",
        "inf",
        "nan",
    ]
    .iter()
    .chain(words)
    .map(|t| t.as_bytes().to_vec())
    .collect()
}
