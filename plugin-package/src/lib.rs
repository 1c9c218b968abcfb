//! What a plugkit plugin package is, without loading it: its manifest
//! (`plugin.toml`), the identity its library embeds, its minisign signature,
//! and how a set of packages resolves into a start order. Shared by the host
//! (`plugin-host`) and the tools (`xtask`), so the tools never reach into the
//! host.
//!
//! ```
//! use plugin_package::manifest::Manifest;
//! use std::path::Path;
//!
//! let manifest = Manifest::parse(
//!     "id = \"sms\"\nname = \"SMS\"\nversion = \"1.0.0\"\napi = \"^0.2\"\n\
//!      library = \"libsms.so\"\ncategory = \"communication\"\n",
//!     Path::new("plugins/sms/plugin.toml"),
//! )?;
//! assert_eq!(manifest.category.as_str(), "communication");
//! # Ok::<(), plugin_package::manifest::ManifestError>(())
//! ```
//!
//! Every module is pure (values in, values out) except `read` and `folder`,
//! which read files.

#![deny(unsafe_code)]
#![deny(missing_docs)]

pub mod catalog;
pub mod folder;
pub mod graph;
pub mod identity;
pub mod manifest;
pub mod minisig;
pub mod oci;
pub mod read;
pub mod signature;
