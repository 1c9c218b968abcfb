//! The stripe reference plugin.
