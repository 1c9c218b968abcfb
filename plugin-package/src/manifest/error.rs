//! Where a manifest is wrong and how that is told: positions, the broken
//! rules collected while validating, and [`ManifestError`].

use std::fmt;
use std::io;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// A `line:column` in a manifest, both counted from 1; columns count characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Position {
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub column: usize,
}

impl Position {
    /// The 1-based line and column (in characters) of byte `offset` in
    /// `text`: the one line/column helper every TOML error message uses.
    pub fn of_offset(text: &str, offset: usize) -> Position {
        let before = text.get(..offset).unwrap_or(text);
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        Position {
            line: before.matches('\n').count() + 1,
            column: before[line_start..].chars().count() + 1,
        }
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// One rule a manifest breaks after it parsed, with where.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ManifestProblem {
    /// Where in the file.
    pub position: Position,
    /// What is wrong and how to fix it.
    pub message: String,
}

/// A manifest that cannot be read, parsed or accepted.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ManifestError {
    /// The file could not be read.
    #[error(
        "cannot read plugin manifest {}: {source}; {}.",
        path.display(),
        crate::read::read_hint(source)
    )]
    Read {
        /// The manifest file.
        path: PathBuf,
        /// Why reading failed.
        #[source]
        source: io::Error,
    },
    /// The file is not valid TOML, has an unknown key, or a value of the wrong form.
    #[error(
        "{}{}: {message}; fix this entry of the plugin manifest.",
        path.display(),
        position.map(|p| format!(":{p}")).unwrap_or_default()
    )]
    Syntax {
        /// The manifest file.
        path: PathBuf,
        /// Where the parser stopped, when it knows.
        position: Option<Position>,
        /// The parser's description, including the expected form.
        message: String,
    },
    /// The file parsed but breaks one or more manifest rules; all are listed.
    #[error("{}", render_invalid(path, problems))]
    Invalid {
        /// The manifest file.
        path: PathBuf,
        /// Every broken rule, in file order.
        problems: Vec<ManifestProblem>,
    },
}

impl ManifestError {
    /// The manifest file the error is about.
    pub fn path(&self) -> &Path {
        match self {
            ManifestError::Read { path, .. }
            | ManifestError::Syntax { path, .. }
            | ManifestError::Invalid { path, .. } => path,
        }
    }
}

fn render_invalid(path: &Path, problems: &[ManifestProblem]) -> String {
    let mut out = format!(
        "plugin manifest {} breaks {} rule{}; fix {} and reload:",
        path.display(),
        problems.len(),
        if problems.len() == 1 { "" } else { "s" },
        if problems.len() == 1 { "it" } else { "each" },
    );
    for problem in problems {
        out.push_str(&format!(
            "\n  {}:{}: {}",
            path.display(),
            problem.position,
            problem.message
        ));
    }
    out
}

/// Collects broken rules with their positions in `text`.
pub(super) struct Problems<'t> {
    pub(super) text: &'t str,
    pub(super) found: Vec<ManifestProblem>,
}

impl Problems<'_> {
    pub(super) fn position(&self, span: Range<usize>) -> Position {
        Position::of_offset(self.text, span.start)
    }

    pub(super) fn report(&mut self, span: Range<usize>, message: String) {
        let position = self.position(span);
        self.found.push(ManifestProblem { position, message });
    }
}
