//! `plugkit-runner`: spawned by the host for a plugin in process isolation;
//! all of its logic (sandbox, loading, serving) is `plugin_host::isolation`,
//! so the library is checked by exactly the host's loader code.

fn main() {
    std::process::exit(plugin_host::isolation::runner_main());
}
