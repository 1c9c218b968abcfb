//! The network-automation reference plugin.
