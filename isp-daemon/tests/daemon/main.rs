//! isp-daemon end to end, one test binary with a module per topic: the
//! admin API endpoint by endpoint, API keys and scopes, JSON errors, the demo flows against the stand-ins and
//! real devices, the admin page in a real browser, and the binary's
//! lifecycle (the main job, signals, command-line errors), and webhooks
//! in from the providers and out to integrators.

mod api;
mod browser;
mod errors;
mod flows;
mod keys;
mod lifecycle;
mod limits;
mod logs;
mod metrics;
mod operator;
mod packages;
mod provisioning;
mod provisioning_cli;
mod provisioning_vault;
mod support;
mod webhooks_in;
mod webhooks_out;
