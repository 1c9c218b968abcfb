//! `plugkit-robustness`: the host's file formats (`manifest`, `config`,
//! `signature`) and the admin API (`api`), under `cargo xtask fuzz`.

fn main() {
    plugkit_robustness::main_with(plugkit_robustness::host_targets);
}
