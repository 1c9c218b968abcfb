//! The end-to-end test binary: one binary, a module per topic, so linking
//! happens once.

mod fast_hooks;
mod fast_path;
mod foundation;
mod hooks;
mod interface;
mod isolation;
mod live;
mod reference;
mod reload;
mod resolution;
mod signing;
mod tenant_metrics;
mod tenants;
