//! Test support shared by every test crate: real peers started on 127.0.0.1
//! by the test itself, and guards that stop them when the test ends.
//!
//! Peers are real programs installed by `.ci/run` (Debian packages, PyPI,
//! npm). A test never skips because a peer is missing: it fails and says
//! which install step to run.

#![deny(unsafe_code)]

pub mod ansible;
pub mod openbao;
pub mod prism;
pub mod process;
pub mod prometheus;
pub mod registry;
pub mod snmpd;
pub mod sshd;
