//! How a category contract is declared once and turned into every face it has.
//!
//! A category (communication, payment, network automation, CRM, ...) is one
//! `declare_category!` invocation in its own module. From it come:
//! - the plain-Rust SDK trait a plugin author implements (`Communication`);
//! - the frozen stable-ABI trait (`Abi`, with abi_stable's `Abi_TO` object)
//!   and the panic-guarded adapter from one to the other;
//! - the export function `export_plugin!` uses to list the category object;
//! - the serde wire model (`Request`/`Response`) and `Request::serve`, which
//!   an isolation runner uses to carry the same calls across a process;
//! - the host-side [`Client`](crate::communication::Client): typed methods
//!   over a [`Caller`] (the host's checks and counts);
//! - the forwarding object ([`Contract::forwarding`]): the same `Abi`
//!   implemented by sending each call as a `Request` through a [`Forward`],
//!   so a plugin in another process appears to the host as an ordinary
//!   category object and host code has one path for both modes;
//! - the marker type implementing [`Contract`], for generic host code.
//!
//! # Why categories are an open list
//! [`crate::abi::PluginInstance`] carries categories as a
//! list of [`CategoryObject`]s, each naming its category and pointing at its
//! own abi_stable type layout. Adding a category adds a module here and
//! changes no shipped layout, so plugins built before it existed still load.
//! The host checks each object's layout on its own, only for the categories
//! it knows, when it loads the plugin.

use std::ffi::c_void;

use abi_stable::std_types::{RResult, RStr};
use abi_stable::StableAbi;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::abi::{CategoryObject, PluginError, PluginInstance};

/// What generic host code knows about one declared category.
pub trait Contract: 'static {
    /// The category code, as written in `plugin.toml` (`network-automation`).
    const NAME: &'static str;
    /// The stable-ABI object a plugin exports for it.
    type Object: StableAbi + Send + Sync + 'static;
    /// Every call of the contract as one serializable value.
    type Request: Serialize + DeserializeOwned + std::fmt::Debug + Send + 'static;
    /// Every answer of the contract as one serializable value.
    type Response: Serialize + DeserializeOwned + std::fmt::Debug + Send + 'static;
    /// The typed host-side client over a [`Caller`].
    type Client<'a, C: Caller + 'a>;

    /// Builds a client calling `object` through `caller`.
    fn client<'a, C: Caller + 'a>(object: &'a Self::Object, caller: &'a C) -> Self::Client<'a, C>;

    /// A category object whose every call is sent as a [`Contract::Request`]
    /// through `forward` (for a plugin that runs in another process).
    fn forwarding<F: Forward>(forward: F) -> CategoryObject;

    /// Runs one decoded request against an in-process object: what an
    /// isolation runner does with a request that crossed the process boundary.
    fn serve(
        object: &Self::Object,
        tenant: &str,
        request: Self::Request,
    ) -> RResult<Self::Response, PluginError>;

    /// The method a request calls, for errors and metrics.
    fn request_method(request: &Self::Request) -> &'static str;
    /// The method a response answers.
    fn response_method(response: &Self::Response) -> &'static str;
}

/// The host's side of a category call: checks, counts and error
/// conversion. `plugin-host` implements it; plugin code never sees it.
pub trait Caller {
    /// The host's error type.
    type Error;

    /// Runs a call for `tenant`. `call` returns the plugin's value already
    /// copied into host memory.
    fn call<T>(
        &self,
        tenant: &str,
        method: &'static str,
        call: impl FnOnce() -> RResult<T, PluginError>,
    ) -> Result<T, Self::Error>;
}

/// Carries one category call to where the plugin runs and brings back its
/// answer: plugin-host's process isolation implements it over its channel.
pub trait Forward: Send + Sync + 'static {
    /// Sends `request` for `tenant` to the plugin's object of contract `C`.
    fn forward<C: Contract>(
        &self,
        tenant: &str,
        request: C::Request,
    ) -> RResult<C::Response, PluginError>;
}

/// A category object that forwards every call through a [`Forward`]; each
/// category's `Abi` is implemented for it by `declare_category!`.
#[doc(hidden)]
pub struct Forwarder<F>(pub F);

/// The error for an answer to another method than the one asked: the other
/// side speaks another version of the contract.
#[doc(hidden)]
pub fn answered_out_of_protocol(category: &str, asked: &str, answered: &str) -> PluginError {
    PluginError::InvalidRequest {
        message: format!(
            "`{category}.{asked}` was answered as `{answered}`: the plugin's process speaks \
             another version of the contract; rebuild it against this host's plugin-api"
        )
        .into(),
    }
}

// Lives here rather than in `abi` so the frozen core names no category code.
impl CategoryObject {
    /// The object as contract `C`'s type, when it was exported for `C`
    /// with a compatible layout. For unit tests that instantiate a plugin
    /// without loading it; a host loading libraries goes through its loader,
    /// which checks the same way and keeps the result.
    pub fn downcast_local<C: Contract>(&self) -> Option<&C::Object> {
        if self.name.as_str() != C::NAME {
            return None;
        }
        // SAFETY: `export_object`, the only constructor, stores a
        // `&'static TypeLayout` in `layout`.
        let found = unsafe { &*self.layout.cast::<abi_stable::type_layout::TypeLayout>() };
        let globals = abi_stable::abi_stability::abi_checking::CheckingGlobals::new();
        abi_stable::abi_stability::abi_checking::check_layout_compatibility_with_globals(
            <C::Object as StableAbi>::LAYOUT,
            found,
            &globals,
        )
        .ok()?;
        // SAFETY: the object's layout matches `C::Object`'s, checked above.
        Some(unsafe { &*self.object.cast::<C::Object>() })
    }
}

impl PluginInstance {
    /// The category object for contract `C` exported by code in this binary
    /// (see [`CategoryObject::downcast_local`]).
    pub fn category_local<C: Contract>(&self) -> Option<&C::Object> {
        self.categories
            .iter()
            .find_map(CategoryObject::downcast_local::<C>)
    }
}

/// Generic code over every category this build knows, chosen by name.
pub trait ContractVisitor {
    /// What the visit returns.
    type Output;
    /// Called with the contract whose name matched.
    fn visit<C: Contract>(self) -> Self::Output;
}

/// Wraps a category object for [`PluginInstance`](crate::abi::PluginInstance):
/// boxed in the plugin's allocator, dropped by the plugin's own code.
#[doc(hidden)]
pub fn export_object<T: StableAbi + Send + Sync + 'static>(
    name: &'static str,
    object: T,
) -> CategoryObject {
    CategoryObject {
        name: RStr::from_str(name),
        layout: (T::LAYOUT as *const abi_stable::type_layout::TypeLayout).cast::<c_void>(),
        object: Box::into_raw(Box::new(object)).cast::<c_void>(),
        drop_object: drop_object::<T>,
    }
}

/// Drops an object made by [`export_object`]; a panic in a destructor is
/// swallowed here rather than unwinding into the host.
unsafe extern "C" fn drop_object<T>(object: *mut c_void) {
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        // SAFETY: `object` came from `Box::into_raw` of a `Box<T>` in
        // `export_object`, in this same library, and the host calls this
        // exactly once (when its `CategoryObject` is dropped).
        drop(unsafe { Box::from_raw(object.cast::<T>()) });
    }));
    drop(result);
}

/// Declares one category contract; see the module docs for what it makes.
///
/// Every method takes the tenant and one argument, both by value in the ABI,
/// and returns one value. Types must be `StableAbi`, `Clone` (the host copies
/// every answer into its own memory) and serde-serializable (the wire model).
macro_rules! declare_category {
    (
        $(#[$category_meta:meta])*
        category $name:literal, trait $Sdk:ident, handle $handle:ident;
        $(
            $(#[$method_meta:meta])*
            fn $method:ident($arg:ident: $Arg:ty) -> $Ret:ty;
        )+
    ) => {
        /// The category code, as written in `plugin.toml`.
        pub const NAME: &str = $name;

        $(#[$category_meta])*
        ///
        /// List the category in `export_plugin!`'s extensions to export it.
        pub trait $Sdk: $crate::sdk::Plugin {
            $(
                $(#[$method_meta])*
                fn $method(&self, tenant: &str, $arg: $Arg) -> $crate::Result<$Ret>;
            )+
        }

        /// The frozen stable-ABI form of the contract. Never edited once
        /// shipped: a changed contract is a new category.
        #[::abi_stable::sabi_trait]
        pub trait Abi: Send + Sync {
            $(
                $(#[$method_meta])*
                fn $method(
                    &self,
                    tenant: ::abi_stable::std_types::RStr<'_>,
                    $arg: $Arg,
                ) -> ::abi_stable::std_types::RResult<$Ret, $crate::abi::PluginError>;
            )+
        }

        /// The category object as it crosses the boundary.
        pub type Object = Abi_TO<'static, ::abi_stable::std_types::RArc<()>>;

        impl<P: $Sdk> Abi for $crate::sdk::Adapter<P> {
            $(
                #[inline]
                fn $method(
                    &self,
                    tenant: ::abi_stable::std_types::RStr<'_>,
                    $arg: $Arg,
                ) -> ::abi_stable::std_types::RResult<$Ret, $crate::abi::PluginError> {
                    $crate::sdk::guard(|| <P as $Sdk>::$method(self.plugin(), tenant.as_str(), $arg))
                }
            )+
        }

        impl<F: $crate::category::Forward> Abi for $crate::category::Forwarder<F> {
            $(
                fn $method(
                    &self,
                    tenant: ::abi_stable::std_types::RStr<'_>,
                    $arg: $Arg,
                ) -> ::abi_stable::std_types::RResult<$Ret, $crate::abi::PluginError> {
                    // Host code, but behind an `extern "C"` shim: a panic
                    // must become an error here too.
                    $crate::sdk::guard(|| {
                        match self.0.forward::<Contract>(tenant.as_str(), Request::$method { $arg }) {
                            ::abi_stable::std_types::RResult::ROk(Response::$method(value)) => Ok(value),
                            #[allow(unreachable_patterns, reason = "a one-method contract has no other answer")]
                            ::abi_stable::std_types::RResult::ROk(other) => Err($crate::category::answered_out_of_protocol(
                                $name,
                                stringify!($method),
                                <Contract as $crate::category::Contract>::response_method(&other),
                            )),
                            ::abi_stable::std_types::RResult::RErr(error) => Err(error),
                        }
                    })
                }
            )+
        }

        /// Builds the category object for `export_plugin!`.
        #[doc(hidden)]
        pub fn __export<P: $Sdk>(
            plugin: &::abi_stable::std_types::RArc<$crate::sdk::Adapter<P>>,
        ) -> $crate::abi::CategoryObject {
            let object: Object =
                Abi_TO::from_ptr(plugin.clone(), ::abi_stable::sabi_trait::TD_Opaque);
            $crate::category::export_object(NAME, object)
        }

        /// Every call of the contract, for the wire between processes.
        #[derive(Debug, Clone, ::serde::Serialize, ::serde::Deserialize)]
        #[allow(non_camel_case_types, reason = "variants are named after the methods they call")]
        pub enum Request {
            $(
                #[allow(missing_docs, reason = "documented on the method")]
                $method {
                    #[allow(missing_docs, reason = "documented on the method")]
                    $arg: $Arg,
                },
            )+
        }

        /// Every answer of the contract, for the wire between processes.
        #[derive(Debug, Clone, ::serde::Serialize, ::serde::Deserialize)]
        #[allow(non_camel_case_types, reason = "variants are named after the methods they answer")]
        pub enum Response {
            $(
                #[allow(missing_docs, reason = "documented on the method")]
                $method($Ret),
            )+
        }

        /// The marker type generic host code names the category by.
        #[derive(Debug, Clone, Copy)]
        pub struct Contract;

        impl $crate::category::Contract for Contract {
            const NAME: &'static str = $name;
            type Object = Object;
            type Request = Request;
            type Response = Response;
            type Client<'a, C: $crate::category::Caller + 'a> = Client<'a, C>;

            fn client<'a, C: $crate::category::Caller + 'a>(
                object: &'a Object,
                caller: &'a C,
            ) -> Client<'a, C> {
                Client { object, caller }
            }

            fn forwarding<F: $crate::category::Forward>(forward: F) -> $crate::abi::CategoryObject {
                let object: Object = Abi_TO::from_ptr(
                    ::abi_stable::std_types::RArc::new($crate::category::Forwarder(forward)),
                    ::abi_stable::sabi_trait::TD_Opaque,
                );
                $crate::category::export_object(NAME, object)
            }

            fn serve(
                object: &Object,
                tenant: &str,
                request: Request,
            ) -> ::abi_stable::std_types::RResult<Response, $crate::abi::PluginError> {
                match request {
                    $(
                        Request::$method { $arg } => {
                            object.$method(tenant.into(), $arg).map(|value| Response::$method(value.clone()))
                        }
                    )+
                }
            }

            fn request_method(request: &Request) -> &'static str {
                match request {
                    $( Request::$method { .. } => stringify!($method), )+
                }
            }

            fn response_method(response: &Response) -> &'static str {
                match response {
                    $( Response::$method(..) => stringify!($method), )+
                }
            }
        }

        /// Typed calls into one plugin's category object, in process or in
        /// an isolated child alike. Get one from the host's plugin handle.
        pub struct Client<'a, C> {
            object: &'a Object,
            caller: &'a C,
        }

        impl<'a, C: $crate::category::Caller> Client<'a, C> {
            $(
                $(#[$method_meta])*
                #[inline]
                pub fn $method(&self, tenant: &str, $arg: $Arg) -> Result<$Ret, C::Error> {
                    let object = self.object;
                    // The clone copies the plugin's answer into host memory
                    // before the plugin's value is dropped.
                    self.caller.call(tenant, stringify!($method), || {
                        object.$method(tenant.into(), $arg).map(|value| value.clone())
                    })
                }
            )+
        }

        /// `handle.
        #[doc = stringify!($handle)]
        /// ()` on anything that can hand out category clients (the host's
        /// plugin handle).
        pub trait HandleExt: $crate::category::CategoryHost {
            /// The typed client for this category, or the host's error when
            /// the plugin does not export it.
            fn $handle(&self) -> Result<Client<'_, Self::Caller<'_>>, Self::Error>;
        }

        impl<H: $crate::category::CategoryHost> HandleExt for H {
            #[inline]
            fn $handle(&self) -> Result<Client<'_, H::Caller<'_>>, H::Error> {
                self.category::<Contract>()
            }
        }
    };
}
pub(crate) use declare_category;

/// Anything that hands out typed category clients: the host's plugin handle.
/// With it, every category adds `handle.<category>()` through its
/// `HandleExt` trait (import them all with `plugin_api::categories::*`).
pub trait CategoryHost {
    /// The host's error type.
    type Error;
    /// The caller clients use.
    type Caller<'a>: Caller<Error = Self::Error>
    where
        Self: 'a;

    /// The client for category `C`, or an error naming the plugin and the
    /// category when the plugin does not export it.
    fn category<C: Contract>(&self) -> Result<C::Client<'_, Self::Caller<'_>>, Self::Error>;
}

/// Declares the list of categories this build knows; the one place a new
/// category's module is named.
macro_rules! known_categories {
    ($($module:ident),+ $(,)?) => {
        $(pub mod $module;)+

        /// Every category code this build of plugin-api knows, plus `custom`
        /// (plugins that offer only generic service calls).
        pub const KNOWN_CATEGORIES: &[&str] = &[$($module::NAME,)+ "custom"];

        /// Runs `visitor` with the contract named `name`; `None` when this
        /// build does not know the category.
        pub fn visit_category<V: $crate::category::ContractVisitor>(
            name: &str,
            visitor: V,
        ) -> Option<V::Output> {
            $(
                if name == $module::NAME {
                    return Some(visitor.visit::<$module::Contract>());
                }
            )+
            None
        }

        /// Every category's `handle.<category>()` extension, to import with `*`.
        pub mod categories {
            $(pub use crate::$module::HandleExt as _;)+
        }
    };
}
pub(crate) use known_categories;
