//! plugkit's host: loads, orders, runs and hot-reloads native plugins.

pub(crate) mod discovery;
pub(crate) mod graph;
pub(crate) mod manifest;
