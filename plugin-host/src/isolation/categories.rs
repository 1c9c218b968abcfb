//! Category calls across the process boundary, from each category's one
//! declaration: the host hands the host-side registry a *forwarding* object
//! per category (`Contract::forwarding`), which sends every call as the
//! contract's serde `Request`; the runner decodes it and runs
//! `Contract::serve` against the plugin's real, layout-checked object. No
//! category is named here, so a new category needs no change in this file.
//!
//! Category payloads are JSON, not postcard: plugin-api's types use serde's
//! internally and adjacently tagged enums (`PluginError`, `SnmpValue`),
//! which only a self-describing format can decode. The envelope and the
//! byte-level `invoke` hot path stay postcard.

use abi_stable::std_types::RResult;
use plugin_api::abi::{CategoryObject, PluginError};
use plugin_api::category::{Contract, ContractVisitor, Forward};

use super::process::ChildPlugin;
use super::wire::WireError;
use crate::loader::LoadedPlugin;

/// Runner side: serves one category call on the loaded plugin.
pub(crate) fn serve(
    loaded: &LoadedPlugin,
    category: &str,
    tenant: &str,
    request: &[u8],
) -> Result<Vec<u8>, WireError> {
    struct Serve<'a> {
        loaded: &'a LoadedPlugin,
        tenant: &'a str,
        request: &'a [u8],
    }
    impl ContractVisitor for Serve<'_> {
        type Output = Result<Vec<u8>, WireError>;
        fn visit<C: Contract>(self) -> Self::Output {
            let object = self.loaded.categories.get::<C>().ok_or_else(|| {
                WireError::Unsupported(format!(
                    "this plugin does not offer the `{}` category",
                    C::NAME
                ))
            })?;
            let request: C::Request = serde_json::from_slice(self.request).map_err(|e| {
                WireError::InvalidRequest(format!("undecodable `{}` request: {e}", C::NAME))
            })?;
            match C::serve(object, self.tenant, request) {
                RResult::ROk(response) => serde_json::to_vec(&response)
                    .map_err(|e| WireError::Failed(format!("encoding a reply: {e}"))),
                RResult::RErr(e) => Err(WireError::from(&e)),
            }
        }
    }
    let visitor = Serve {
        loaded,
        tenant,
        request,
    };
    plugin_api::visit_category(category, visitor).unwrap_or_else(|| {
        Err(WireError::Unsupported(format!(
            "this runner does not know the `{category}` category"
        )))
    })
}

/// Host side: carries one category's calls to the child.
#[derive(Clone)]
pub(crate) struct CategoryProxy {
    pub(crate) child: std::sync::Arc<ChildPlugin>,
}

impl Forward for CategoryProxy {
    fn forward<C: Contract>(
        &self,
        tenant: &str,
        request: C::Request,
    ) -> RResult<C::Response, PluginError> {
        let bytes = match serde_json::to_vec(&request) {
            Ok(bytes) => bytes,
            Err(e) => {
                return RResult::RErr(PluginError::failed(format!(
                    "encoding the `{}` request: {e}",
                    C::NAME
                )))
            }
        };
        match self.child.category(C::NAME, tenant, bytes) {
            RResult::ROk(reply) => match serde_json::from_slice::<C::Response>(&reply) {
                Ok(response) => RResult::ROk(response),
                Err(e) => RResult::RErr(
                    self.child
                        .garbage(tenant, format!("undecodable `{}` reply: {e}", C::NAME)),
                ),
            },
            RResult::RErr(e) => RResult::RErr(e),
        }
    }
}

/// Host side: the forwarding objects for the categories the child reported,
/// of those this host knows.
pub(crate) fn forwarding_objects(proxy: &CategoryProxy, names: &[String]) -> Vec<CategoryObject> {
    struct Build<'a>(&'a CategoryProxy);
    impl ContractVisitor for Build<'_> {
        type Output = CategoryObject;
        fn visit<C: Contract>(self) -> CategoryObject {
            C::forwarding(self.0.clone())
        }
    }
    names
        .iter()
        .filter_map(|name| plugin_api::visit_category(name, Build(proxy)))
        .collect()
}
