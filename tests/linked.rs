//! Two plugin crates linked into one program as `rlib`s (issue 14, item 8):
//! each exports its library header under its own symbol, so the link
//! succeeds, and each crate's root module builds its own plugin.

use plugin_api::__abi_stable::std_types::RResult;

fn instantiate(module: plugin_api::abi::PluginModRef) -> (String, plugin_api::abi::PluginInstance) {
    let info = (module.info())();
    match (module.instantiate())() {
        RResult::ROk(instance) => (info.id.to_string(), instance),
        RResult::RErr(e) => panic!("instantiate {}: {e}", info.id),
    }
}

#[test]
fn two_plugin_crates_link_into_one_binary_and_each_builds_its_own_plugin() {
    let (good, good_instance) = instantiate(fixture_good::__plugkit_root_module());
    let (echo, echo_instance) = instantiate(fixture_tenant_echo::__plugkit_root_module());
    assert_eq!(
        (good.as_str(), echo.as_str()),
        ("fixture-good", "tenant-echo")
    );
    // Each exports what its own crate implements, not the other's.
    assert!(good_instance
        .category_local::<plugin_api::crm::Contract>()
        .is_some());
    assert!(echo_instance
        .category_local::<plugin_api::crm::Contract>()
        .is_none());
    assert!(good_instance.service.is_some() && echo_instance.service.is_some());
}
