//! The safe SDK: the plain-Rust traits a plugin author implements, and the
//! adapters that turn them into the stable-ABI objects of [`crate::abi`].
//!
//! Every adapter method runs the author's code under `guard`, so a panic
//! becomes a [`PluginError::Panicked`] instead of aborting the host.
//!
//! Split by job: `error` (errors and health), `host` (the plugin's view of
//! host services and its tenant configuration), `traits` (what authors
//! implement), `adapter` (the panic guard and the ABI adapters),
//! `identity` (compile-time manifest values and the `.plugkit_info`
//! record); this file holds the export glue `export_plugin!` expands to
//! (the one place with `unsafe`) and the macros. Every item keeps its
//! `plugin_api::sdk::` path.

mod adapter;
mod error;
mod host;
mod identity;
mod traits;

pub use adapter::Adapter;
pub(crate) use adapter::{guard, panicked};
pub use error::{Error, Health, Result};
pub use host::{Host, Secret, TenantConfig};
#[doc(hidden)]
pub use identity::{__identity, __identity_len, __manifest_str, __str_eq};
pub use identity::{parse_identity, Identity};
pub use traits::{HookAction, HookEvent, Hooks, Plugin, Service, Stateful};

use abi_stable::sabi_trait::TD_Opaque;
use abi_stable::std_types::{RArc, ROption, RResult};

use crate::abi::{
    self, BasePlugin_TO, CategoryObject, HookHandler_TO, PluginError, PluginInstance, Service_TO,
    Stateful_TO,
};
use adapter::install_panic_hook;

/// Builds the plugin's identity; called by `export_plugin!`.
#[doc(hidden)]
pub fn __info<P: Plugin>(version: &str, description: &str, authors: &str) -> abi::PluginInfo {
    abi::PluginInfo {
        id: P::ID.into(),
        name: P::NAME.into(),
        version: version.into(),
        description: description.into(),
        authors: authors.into(),
        category: P::CATEGORY.into(),
        api_version: crate::API_VERSION.into(),
    }
}

/// Builds one extension object from the shared plugin object.
#[doc(hidden)]
pub type __MakeExtension<P, T> = Option<fn(&RArc<Adapter<P>>) -> T>;

/// Builds one category object from the shared plugin object.
#[doc(hidden)]
pub type __ExportCategory<P> = fn(&RArc<Adapter<P>>) -> CategoryObject;

/// Which extensions `export_plugin!` should expose.
#[doc(hidden)]
pub struct __Extensions<P> {
    pub hooks: __MakeExtension<P, abi::HookHandlerBox>,
    pub service: __MakeExtension<P, abi::ServiceBox>,
    pub state: __MakeExtension<P, abi::StatefulBox>,
    pub categories: Vec<__ExportCategory<P>>,
    /// The fast call table over `Service` by name (`service` listed).
    pub fast_by_name: Option<__ExportCategory<P>>,
    /// The fast call table over `FastService` (`fast_service` listed); wins.
    pub fast_native: Option<__ExportCategory<P>>,
    /// The fast hook table (`hooks` listed).
    pub fast_hooks: Option<__ExportCategory<P>>,
}

impl<P> Default for __Extensions<P> {
    fn default() -> Self {
        Self {
            hooks: None,
            service: None,
            state: None,
            categories: Vec::new(),
            fast_by_name: None,
            fast_native: None,
            fast_hooks: None,
        }
    }
}

#[doc(hidden)]
pub fn __hooks<P: Hooks>(p: &RArc<Adapter<P>>) -> abi::HookHandlerBox {
    HookHandler_TO::from_ptr(p.clone(), TD_Opaque)
}
#[doc(hidden)]
pub fn __service<P: Service>(p: &RArc<Adapter<P>>) -> abi::ServiceBox {
    Service_TO::from_ptr(p.clone(), TD_Opaque)
}
#[doc(hidden)]
pub fn __state<P: Stateful>(p: &RArc<Adapter<P>>) -> abi::StatefulBox {
    Stateful_TO::from_ptr(p.clone(), TD_Opaque)
}

/// Builds the plugin object and its extensions; called by `export_plugin!`.
#[doc(hidden)]
pub fn __instantiate<P: Plugin>(
    extensions: __Extensions<P>,
) -> RResult<PluginInstance, PluginError> {
    install_panic_hook();
    guard(|| {
        let plugin = RArc::new(Adapter(P::new()?));
        Ok(PluginInstance {
            hooks: extension(extensions.hooks, &plugin),
            service: extension(extensions.service, &plugin),
            state: extension(extensions.state, &plugin),
            categories: extensions
                .categories
                .iter()
                .chain(extensions.fast_native.or(extensions.fast_by_name).iter())
                .chain(extensions.fast_hooks.iter())
                .map(|export| export(&plugin))
                .collect(),
            base: BasePlugin_TO::from_ptr(plugin, TD_Opaque),
        })
    })
}

fn extension<P, T>(make: __MakeExtension<P, T>, plugin: &RArc<Adapter<P>>) -> ROption<T> {
    match make {
        Some(make) => ROption::RSome(make(plugin)),
        None => ROption::RNone,
    }
}

/// Exports a plugin: the one line a plugin author writes.
///
/// ```text
/// plugin_api::export_plugin!(MyPlugin, extensions: [hooks, communication]);
/// ```
///
/// Extensions: `hooks` ([`Hooks`]), `service` ([`Service`]), `fast_service`
/// ([`FastService`](crate::fast::FastService), listed with `service`; see
/// [`crate::fast`]), `state` ([`Stateful`]), and any category module's name (`communication`,
/// `payment`, `network_automation`, `crm`; see [`crate::category`]).
///
/// The library header is exported under a symbol named after the crate
/// (`plugkit_root_module__<crate name>`), recorded in the `.plugkit_info`
/// section, so that several plugin crates can be linked into one test or
/// tool binary as `rlib`s without their symbols clashing.
#[macro_export]
macro_rules! export_plugin {
    ($plugin:ty) => {
        $crate::export_plugin!($plugin, extensions: []);
    };
    ($plugin:ty, extensions: [$($ext:ident),* $(,)?]) => {
        #[doc(hidden)]
        pub fn __plugkit_root_module() -> $crate::abi::PluginModRef {
            extern "C" fn info() -> $crate::abi::PluginInfo {
                // Referencing the identity record keeps the linker from dropping it.
                ::core::hint::black_box(&__PLUGKIT_INFO);
                $crate::sdk::__info::<$plugin>(
                    env!("CARGO_PKG_VERSION"),
                    env!("CARGO_PKG_DESCRIPTION"),
                    env!("CARGO_PKG_AUTHORS"),
                )
            }
            extern "C" fn instantiate(
            ) -> $crate::__abi_stable::std_types::RResult<$crate::abi::PluginInstance, $crate::abi::PluginError> {
                #[allow(unused_mut, reason = "mutated only when extensions are listed")]
                let mut ext = $crate::sdk::__Extensions::<$plugin>::default();
                $( $crate::export_plugin!(@ext ext, $plugin, $ext); )*
                $crate::sdk::__instantiate::<$plugin>(ext)
            }
            use $crate::__abi_stable::prefix_type::PrefixTypeTrait;
            $crate::abi::PluginMod { info, instantiate }.leak_into_prefix()
        }

        // What `#[abi_stable::export_root_module]` generates, spelled out so
        // plugins need no direct abi_stable dependency, under a per-crate
        // symbol the loader finds through the identity record.
        #[doc(hidden)]
        #[allow(unsafe_code, reason = "the library header is the one exported symbol; plugin crates may deny unsafe_code")]
        #[unsafe(export_name = concat!("plugkit_root_module__", env!("CARGO_CRATE_NAME")))]
        pub static __PLUGKIT_LIB_HEADER: $crate::__abi_stable::library::LibHeader = {
            extern "C" fn erased() -> $crate::__abi_stable::library::RootModuleResult {
                $crate::__abi_stable::library::__call_root_module_loader(__plugkit_root_module)
            }
            // SAFETY: `erased` returns the root module of type `PluginModRef`.
            unsafe {
                $crate::__abi_stable::library::LibHeader::from_constructor::<$crate::abi::PluginModRef>(
                    erased,
                    $crate::__abi_stable::library::CheckTypeLayout::Yes,
                )
            }
        };

        /// What this library says about itself, readable without loading it.
        #[allow(unsafe_code, reason = "a named link section; plugin crates may deny unsafe_code")]
        #[used]
        #[unsafe(link_section = ".plugkit_info")]
        static __PLUGKIT_INFO: [u8; $crate::sdk::__identity_len(
            <$plugin as $crate::Plugin>::ID,
            env!("CARGO_PKG_VERSION"),
            concat!("plugkit_root_module__", env!("CARGO_CRATE_NAME")),
        )] = $crate::sdk::__identity(
            <$plugin as $crate::Plugin>::ID,
            env!("CARGO_PKG_VERSION"),
            concat!("plugkit_root_module__", env!("CARGO_CRATE_NAME")),
        );
    };
    (@ext $e:ident, $p:ty, hooks) => {
        $e.hooks = Some($crate::sdk::__hooks::<$p>);
        $e.fast_hooks = Some($crate::fast_hooks::__export::<$p>);
    };
    (@ext $e:ident, $p:ty, service) => {
        $e.service = Some($crate::sdk::__service::<$p>);
        $e.fast_by_name = Some($crate::fast::__export_by_name::<$p>);
    };
    (@ext $e:ident, $p:ty, fast_service) => {
        $e.fast_native = Some($crate::fast::__export_native::<$p>);
    };
    (@ext $e:ident, $p:ty, state) => { $e.state = Some($crate::sdk::__state::<$p>); };
    (@ext $e:ident, $p:ty, $category:ident) => {
        $e.categories.push($crate::$category::__export::<$p>);
    };
}

/// The plugin's id, read at compile time from `plugin.toml` beside the
/// crate's `Cargo.toml`, so the id is written once. Compilation fails when
/// the file has no top-level `id = "..."` line, or when its `version`
/// differs from the crate's `Cargo.toml` version (which the library embeds).
///
/// ```ignore
/// impl plugin_api::Plugin for MyPlugin {
///     const ID: &'static str = plugin_api::manifest_id!();
///     // ...
/// }
/// ```
#[macro_export]
macro_rules! manifest_id {
    () => {{
        const MANIFEST: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/plugin.toml"));
        const _: () = assert!(
            $crate::sdk::__str_eq(
                $crate::sdk::__manifest_str(MANIFEST, "version"),
                env!("CARGO_PKG_VERSION"),
            ),
            "plugin.toml's `version` differs from the crate's Cargo.toml `version`; make them equal"
        );
        $crate::sdk::__manifest_str(MANIFEST, "id")
    }};
}
