//! isp-daemon end to end, one test binary with a module per topic: the
//! admin API endpoint by endpoint, the demo flows against the stand-ins and
//! real devices, the admin page in a real browser, and the binary's
//! lifecycle (the main job, signals, command-line errors).

mod api;
mod browser;
mod flows;
mod lifecycle;
mod provisioning;
mod support;
