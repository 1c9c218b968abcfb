//! plugin.toml agrees with the compiled plugin (id, version, category,
//! library name, hook) so the host's pre-load checks pass.

use plugin_api::Plugin;
use plugkit_network_automation::NetworkPlugin;

#[test]
fn manifest_matches_the_compiled_plugin() {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/plugin.toml"))
        .expect("plugin.toml is readable");
    let manifest: toml::Table = toml::from_str(&text).expect("plugin.toml parses");
    let field = |name: &str| manifest[name].as_str().unwrap_or_default().to_owned();
    assert_eq!(field("id"), NetworkPlugin::ID);
    assert_eq!(field("version"), env!("CARGO_PKG_VERSION"));
    assert_eq!(field("category"), NetworkPlugin::CATEGORY);
    assert_eq!(field("library"), "libplugkit_network_automation.so");
    assert_eq!(field("required_tier"), "enterprise");
    let hooks = manifest["hooks"].as_array().expect("[[hooks]]");
    assert!(hooks
        .iter()
        .any(|h| h["name"].as_str() == Some(plugin_api::hooks::SERVICE_ACTIVATED)));
}
