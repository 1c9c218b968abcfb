//! Reading what a plugin folder holds from disk: its manifest. Lives apart
//! from `manifest`, which stays pure (text in, values out).

use std::path::Path;

use crate::manifest::{Manifest, ManifestError};
use crate::read::read_text;

impl Manifest {
    /// Reads and parses the manifest at `path`; a file that cannot be read
    /// or is not UTF-8 text is [`ManifestError::Read`] with the reason.
    pub fn load(path: &Path) -> Result<Manifest, ManifestError> {
        let text = read_text(path).map_err(|source| ManifestError::Read {
            path: path.to_owned(),
            source,
        })?;
        Manifest::parse(&text, path)
    }
}
