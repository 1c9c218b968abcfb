//! The fast in-process call path: tenants and methods resolved once into
//! handles, checked per call by one integer compare, counted per handle,
//! with replies written into a buffer the caller keeps.
//!
//! ```no_run
//! # fn demo(host: &plugin_host::Host) -> Result<(), plugin_host::HostError> {
//! let plugin = host.plugin("bench-arith")?;
//! let mut add_one = plugin.method("add_one")?; // resolved once
//! let acme = plugin.tenant("acme")?; // checked once, then per epoch
//! let mut reply = Vec::with_capacity(64); // reused across calls
//! add_one.call_into(&acme, &41u64.to_le_bytes(), &mut reply)?;
//! # Ok(()) }
//! ```
//!
//! # What a call does (and what it no longer does)
//! One acquire load of the slot's epoch, compared with the handle's: equal
//! means neither the tenants nor the serving version changed since the
//! handles last looked, so the tenant stays active and the method id stays
//! valid. Then a load and a store on the handle's own counter for that
//! tenant (an address compare finds it), the
//! plugin's `extern "C"` `call` (panic-guarded in the plugin), and the
//! reply appended to the caller's `Vec` by the plugin itself. No
//! allocation once the buffer has room, no string compared, no atomic
//! read-modify-write, no ABI enum moved.
//!
//! # Invariants (and the tests that keep them)
//! - A tenant deactivated after its handle was taken is refused: the
//!   deactivation bumps the epoch after it changes the tenant set, so the
//!   next call looks again (`fast_path::a_tenant_handle_is_refused_after_the_tenant_is_deactivated`).
//! - A hot reload bumps the epoch after the swap; a method handle then
//!   rebinds to the new version by name before calling, or reports the
//!   method gone. A handle always holds a reference to the version it is
//!   bound to, so the library it points into stays mapped
//!   (`fast_path::a_method_handle_resolved_before_a_reload_calls_the_new_version`).
//!   A call that read the epoch just before a swap may finish on the old
//!   version, as a `PluginHandle` call in flight does.
//! - Plugins without the table (built against plugin-api 0.2.0/0.2.1, or
//!   in process isolation) are called through `Service::invoke`
//!   (`fast_path::a_plugin_built_against_0_2_0_is_served_through_the_fallback`).

use std::mem::MaybeUninit;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};
use std::sync::Arc;
use std::time::Instant;

use abi_stable::abi_stability::abi_checking::{
    check_layout_compatibility_with_globals, CheckingGlobals,
};
use abi_stable::std_types::RResult;
use abi_stable::type_layout::TypeLayout;
use abi_stable::StableAbi;
use plugin_api::abi::PluginError;
use plugin_api::fast::{self as table_abi, BytesRef, CallArgs, FastCallTable, StrRef};

use crate::error::HostError;
use crate::host::{PluginHandle, Slot};
use crate::loader::LoadedPlugin;
use crate::metrics::{CallShard, Counters};
use crate::reply_buf;

/// A tenant of one plugin, checked active when taken and again whenever the
/// plugin's tenants or version changed. Cheap to share across threads.
pub struct TenantHandle {
    slot: Arc<Slot>,
    name: Box<str>,
    /// The tenant's counters for this plugin (kept while it is loaded).
    counters: Arc<Counters>,
    /// The slot epoch at which the tenant was last seen active.
    checked: AtomicU64,
}

impl TenantHandle {
    /// The tenant id.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Ok when the tenant is active for `slot` at `epoch`.
    #[inline(always)]
    fn check(&self, slot: &Arc<Slot>, epoch: u64) -> Result<(), HostError> {
        if self.checked.load(Relaxed) == epoch && Arc::ptr_eq(&self.slot, slot) {
            return Ok(());
        }
        self.recheck(slot, epoch)
    }

    #[cold]
    #[inline(never)]
    fn recheck(&self, slot: &Arc<Slot>, epoch: u64) -> Result<(), HostError> {
        if !Arc::ptr_eq(&self.slot, slot) {
            return Err(HostError::ForeignHandle {
                plugin: slot.id.clone(),
                other: self.slot.id.clone(),
            });
        }
        // The set is written before the epoch is bumped (release), and the
        // epoch was read with acquire: this set is at least that new.
        if slot.active_tenants.read().contains(&self.name) {
            self.checked.store(epoch, Relaxed);
            Ok(())
        } else {
            Err(slot.not_active(&self.name))
        }
    }
}

/// How a bound method is called.
#[derive(Clone, Copy)]
enum Route {
    /// Through the plugin's fast call table, by id.
    Table {
        table: *const FastCallTable,
        method: u32,
    },
    /// Through `Service::invoke` (no table: an older plugin, or isolation).
    Service,
    /// The version bound to does not serve the method (after a reload).
    Missing,
}

/// The version a method handle calls, and the epoch it was checked at.
struct Bound {
    epoch: u64,
    loaded: Arc<LoadedPlugin>,
    route: Route,
}

// SAFETY: `Route::Table` points into the table of `loaded`'s instance
// (`Send + Sync`, see `plugin_api::fast`), which `loaded` keeps alive.
unsafe impl Send for Bound {}
// SAFETY: as above.
unsafe impl Sync for Bound {}

impl Bound {
    fn new(epoch: u64, loaded: Arc<LoadedPlugin>, route: Route) -> Self {
        loaded.fast_bound.fetch_add(1, Release);
        Self {
            epoch,
            loaded,
            route,
        }
    }
}

impl Drop for Bound {
    fn drop(&mut self) {
        self.loaded.fast_bound.fetch_sub(1, Release);
    }
}

/// One service method of one plugin, resolved to the plugin's method id.
/// Calls take `&mut self` (each thread clones its own handle: the clone
/// gets its own call counters); it follows hot reloads by itself.
pub struct MethodHandle {
    slot: Arc<Slot>,
    name: Box<str>,
    bound: Bound,
    shards: TenantShards,
}

/// A method handle's call counters, one per tenant it called for: the one
/// used last is compared by address first, so a run of calls for one
/// tenant costs one compare more than a single counter.
#[derive(Default)]
struct TenantShards {
    /// The address of the counters `last` counts into (0 before the first call).
    last_of: usize,
    last: Arc<CallShard>,
    /// Every tenant's shard (the last one's too), folded in when dropped.
    all: Vec<(Arc<Counters>, Arc<CallShard>)>,
}

impl TenantShards {
    /// Counts a call for `tenant`; true when its latency is sampled.
    #[inline(always)]
    fn count(&mut self, tenant: &TenantHandle) -> bool {
        if self.last_of != Arc::as_ptr(&tenant.counters) as usize {
            self.switch(&tenant.counters);
        }
        self.last.count()
    }

    #[cold]
    #[inline(never)]
    fn switch(&mut self, counters: &Arc<Counters>) {
        let shard = match self.all.iter().find(|(c, _)| Arc::ptr_eq(c, counters)) {
            Some((_, shard)) => Arc::clone(shard),
            None => {
                let shard = counters.new_shard();
                self.all.push((Arc::clone(counters), Arc::clone(&shard)));
                shard
            }
        };
        self.last = shard;
        self.last_of = Arc::as_ptr(counters) as usize;
    }
}

impl Drop for TenantShards {
    fn drop(&mut self) {
        for (counters, shard) in &self.all {
            counters.retire_shard(shard);
        }
    }
}

impl Clone for MethodHandle {
    fn clone(&self) -> Self {
        Self {
            slot: self.slot.clone(),
            name: self.name.clone(),
            bound: Bound::new(
                self.bound.epoch,
                self.bound.loaded.clone(),
                self.bound.route,
            ),
            shards: TenantShards::default(),
        }
    }
}

impl PluginHandle {
    /// Resolves `method` once for [`MethodHandle::call_into`].
    ///
    /// # Errors
    /// [`HostError::UnknownMethod`] when the plugin's fast call table does
    /// not list it; [`HostError::MissingExtension`] when the plugin offers
    /// no `service` at all.
    pub fn method(&self, method: &str) -> Result<MethodHandle, HostError> {
        let epoch = self.slot.epoch.load(Acquire);
        let loaded = self.slot.current.read().clone();
        let route = route_for(&self.slot, &loaded, method)?;
        if matches!(route, Route::Missing) {
            return Err(unknown_method(&self.slot, method, ""));
        }
        Ok(MethodHandle {
            bound: Bound::new(epoch, loaded, route),
            slot: self.slot.clone(),
            name: method.into(),
            shards: TenantShards::default(),
        })
    }

    /// A handle for `tenant`, for fast-path calls.
    ///
    /// # Errors
    /// [`HostError::NotActive`] when the plugin is not active for `tenant`.
    pub fn tenant(&self, tenant: &str) -> Result<TenantHandle, HostError> {
        let counters = self.slot.active_tenants.read().get(tenant).cloned();
        let Some(counters) = counters else {
            return Err(self.slot.not_active(tenant));
        };
        let handle = TenantHandle {
            slot: self.slot.clone(),
            name: tenant.into(),
            counters,
            checked: AtomicU64::new(u64::MAX),
        };
        handle.check(&self.slot, self.slot.epoch.load(Acquire))?;
        Ok(handle)
    }
}

impl MethodHandle {
    /// The method's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Calls the method for `tenant` with `input`; the reply replaces the
    /// contents of `out` (its capacity is reused, so a small reply
    /// allocates nothing once `out` has room).
    ///
    /// # Errors
    /// [`HostError::NotActive`] (tenant deactivated), [`HostError::ForeignHandle`],
    /// [`HostError::UnknownMethod`] (gone after a reload),
    /// [`HostError::CallFailed`] / [`HostError::CallPanicked`] (the plugin's
    /// error, or a panic it raised; the host keeps serving).
    #[inline]
    pub fn call_into(
        &mut self,
        tenant: &TenantHandle,
        input: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), HostError> {
        let epoch = self.slot.epoch.load(Acquire);
        if epoch != self.bound.epoch {
            self.rebind(epoch);
        }
        tenant.check(&self.slot, epoch)?;
        out.clear();
        let start = self.shards.count(tenant).then(Instant::now);
        let result = match self.bound.route {
            // SAFETY: `table` belongs to `self.bound.loaded`, which is alive.
            Route::Table { table, method } => unsafe {
                call_table(&*table, method, &self.name, &tenant.name, input, out)
            },
            Route::Service => self.call_service(&tenant.name, input, out),
            Route::Missing => {
                return Err(unknown_method(&self.slot, &self.name, " since its reload"))
            }
        };
        if let Some(start) = start {
            tenant.counters.record_latency(start.elapsed());
        }
        result.map_err(|error| self.slot.call_failed(&tenant.counters, &error))
    }

    /// [`MethodHandle::call_into`] into a new `Vec`.
    ///
    /// # Errors
    /// As for [`MethodHandle::call_into`].
    pub fn call(&mut self, tenant: &TenantHandle, input: &[u8]) -> Result<Vec<u8>, HostError> {
        let mut out = Vec::new();
        self.call_into(tenant, input, &mut out)?;
        Ok(out)
    }

    /// Follows a change of tenants or version: rebinds by name when the
    /// serving version is another one.
    #[cold]
    #[inline(never)]
    fn rebind(&mut self, epoch: u64) {
        let current = self.slot.current.read().clone();
        if Arc::ptr_eq(&current, &self.bound.loaded) {
            self.bound.epoch = epoch;
            return;
        }
        let route = route_for(&self.slot, &current, &self.name).unwrap_or(Route::Missing);
        // The old binding (and with it this handle's hold on the old
        // library) goes here.
        self.bound = Bound::new(epoch, current, route);
    }

    fn call_service(
        &self,
        tenant: &str,
        input: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), PluginError> {
        let Some(service) = self.bound.loaded.instance.service.as_ref().into_option() else {
            return Err(PluginError::unsupported(
                "the plugin no longer offers `service`",
            ));
        };
        match service.invoke(tenant.into(), (&*self.name).into(), input.into()) {
            RResult::ROk(reply) => {
                out.extend_from_slice(reply.as_slice());
                Ok(())
            }
            RResult::RErr(error) => Err(error),
        }
    }
}

#[cold]
fn unknown_method(slot: &Slot, method: &str, after_reload: &'static str) -> HostError {
    HostError::UnknownMethod {
        plugin: slot.id.clone(),
        method: method.to_owned(),
        after_reload,
    }
}

/// How `method` is called on `loaded`: through its fast call table when it
/// exports one with the layout this host expects, else through `service`.
fn route_for(slot: &Slot, loaded: &LoadedPlugin, method: &str) -> Result<Route, HostError> {
    if let Some(table) = table_of(slot, loaded) {
        // SAFETY: `resolve` is the plugin's function over its own `plugin`
        // field, given a live string.
        let id = unsafe { (table.resolve)(table.plugin, method.as_ptr(), method.len()) };
        return Ok(if id == table_abi::NO_METHOD {
            Route::Missing
        } else {
            Route::Table {
                table: std::ptr::from_ref(table),
                method: id,
            }
        });
    }
    if loaded.instance.service.is_some() {
        Ok(Route::Service)
    } else {
        Err(HostError::MissingExtension {
            plugin: slot.id.clone(),
            extension: "service",
        })
    }
}

/// The plugin's fast call table, when it exports one whose layout matches.
fn table_of<'a>(slot: &Slot, loaded: &'a LoadedPlugin) -> Option<&'a FastCallTable> {
    let object = loaded
        .instance
        .categories
        .iter()
        .find(|o| o.name.as_str() == table_abi::NAME)?;
    // SAFETY: `export_object`, the only constructor of a `CategoryObject`,
    // stores a `&'static TypeLayout` in `layout`.
    let found = unsafe { &*object.layout.cast::<TypeLayout>() };
    let globals = CheckingGlobals::new();
    if let Err(errors) = check_layout_compatibility_with_globals(
        <FastCallTable as StableAbi>::LAYOUT,
        found,
        &globals,
    ) {
        tracing::warn!(
            plugin = %slot.id,
            "the plugin's fast call table has another layout; calling it through `service`: {errors}"
        );
        return None;
    }
    // SAFETY: the layout matches `FastCallTable`'s (checked above); the
    // object lives as long as `loaded`'s instance.
    Some(unsafe { &*object.object.cast_const().cast::<FastCallTable>() })
}

/// One call through the table, the reply appended to `out` (empty).
///
/// # Safety
/// `table` is a checked table of a live version.
#[inline(always)]
unsafe fn call_table(
    table: &FastCallTable,
    method: u32,
    name: &str,
    tenant: &str,
    input: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), PluginError> {
    // Every access to `out` until the call returns goes through `vec`.
    let vec = std::ptr::from_mut(out);
    let mut error = MaybeUninit::<PluginError>::uninit();
    let mut args = CallArgs {
        method,
        name: StrRef::new(name),
        tenant: StrRef::new(tenant),
        input: BytesRef::new(input),
        // SAFETY: `vec` is `out`, alive and unaliased for this call.
        out: unsafe { reply_buf::lend(vec) },
        error: error.as_mut_ptr(),
    };
    // SAFETY: the table's own `plugin`, live borrowed values, a valid
    // buffer and error storage (the contract of `FastCallTable::call`).
    let status = unsafe { (table.call)(table.plugin, &mut args) };
    let buf = &args.out;
    match status {
        table_abi::STATUS_OK if buf.len <= buf.cap => {
            // SAFETY: the plugin wrote `buf.len` bytes into the `Vec`'s
            // buffer (`grow` kept `ptr`/`cap` in step with it).
            unsafe { (*vec).set_len(buf.len) };
            Ok(())
        }
        // SAFETY: on `STATUS_ERROR` the plugin wrote one `PluginError`.
        table_abi::STATUS_ERROR => Err(unsafe { error.assume_init() }),
        other => Err(PluginError::failed(format!(
            "the plugin's fast call returned status {other} (reply {} of {} bytes); \
             rebuild it against this host's plugin-api",
            buf.len, buf.cap
        ))),
    }
}

/// A plugin handle bound to one tenant, for typed category calls with the
/// fast path's host-side treatment: the tenant checked by an epoch compare
/// instead of a set lookup, calls counted on the handle's own counter.
///
/// ```no_run
/// # fn demo(host: &plugin_host::Host) -> Result<(), plugin_host::HostError> {
/// use plugin_api::categories::*;
/// let acme = host.plugin("twilio")?.bind("acme")?;
/// let crm = acme.crm()?;
/// # Ok(()) }
/// ```
///
/// Like a [`PluginHandle`] it is a snapshot of one version: after a hot
/// reload its calls fail with [`HostError::Reloaded`] (take a new one). It
/// is `Send` but not `Sync` (its counter has one writer); clone it per thread.
pub struct BoundPlugin {
    handle: PluginHandle,
    tenant: TenantHandle,
    shard: Arc<CallShard>,
    _one_writer: std::marker::PhantomData<std::cell::Cell<()>>,
}

impl PluginHandle {
    /// This handle bound to `tenant`, for typed category calls.
    ///
    /// # Errors
    /// [`HostError::NotActive`] when the plugin is not active for `tenant`.
    pub fn bind(&self, tenant: &str) -> Result<BoundPlugin, HostError> {
        let tenant = self.tenant(tenant)?;
        self.loaded.fast_bound.fetch_add(1, Release);
        Ok(BoundPlugin {
            handle: self.clone(),
            shard: tenant.counters.new_shard(),
            tenant,
            _one_writer: std::marker::PhantomData,
        })
    }
}

impl Clone for BoundPlugin {
    fn clone(&self) -> Self {
        self.handle.loaded.fast_bound.fetch_add(1, Release);
        Self {
            handle: self.handle.clone(),
            tenant: TenantHandle {
                slot: self.tenant.slot.clone(),
                name: self.tenant.name.clone(),
                counters: self.tenant.counters.clone(),
                checked: AtomicU64::new(self.tenant.checked.load(Relaxed)),
            },
            shard: self.tenant.counters.new_shard(),
            _one_writer: std::marker::PhantomData,
        }
    }
}

impl Drop for BoundPlugin {
    fn drop(&mut self) {
        self.tenant.counters.retire_shard(&self.shard);
        self.handle.loaded.fast_bound.fetch_sub(1, Release);
    }
}

impl BoundPlugin {
    /// The tenant id the handle is bound to; pass it to the typed calls.
    pub fn tenant(&self) -> &str {
        &self.tenant.name
    }

    /// The plugin handle underneath.
    pub fn plugin(&self) -> &PluginHandle {
        &self.handle
    }

    #[cold]
    #[inline(never)]
    fn recheck(&self, tenant: &str, epoch: u64) -> Result<(), HostError> {
        let slot = &self.handle.slot;
        if !Arc::ptr_eq(&slot.current.read(), &self.handle.loaded) {
            return Err(HostError::Reloaded {
                plugin: slot.id.clone(),
            });
        }
        if tenant != &*self.tenant.name {
            // Another tenant than the bound one: the plain set lookup.
            return if slot.active_tenants.read().contains(tenant) {
                Ok(())
            } else {
                Err(slot.not_active(tenant))
            };
        }
        self.tenant.check(slot, epoch)
    }

    /// The counters of `tenant` when it is not the bound one (checked
    /// active just before), else `None`: calls for the bound tenant count
    /// on the handle's own shard.
    #[cold]
    #[inline(never)]
    fn other_tenant(&self, tenant: &str) -> Option<Arc<Counters>> {
        if tenant == &*self.tenant.name {
            return None;
        }
        let slot = &self.handle.slot;
        let counters = slot.active_tenants.read().get(tenant).cloned();
        // Deactivated since the check: count it under its own entry anyway.
        Some(counters.unwrap_or_else(|| slot.metrics.tenant(tenant)))
    }
}

impl plugin_api::category::Caller for BoundPlugin {
    type Error = HostError;

    /// Checks the tenant (one compare when it is the bound one and nothing
    /// changed), counts the call, samples its latency and turns a plugin
    /// error into a host error naming the plugin.
    #[inline]
    fn call<T>(
        &self,
        tenant: &str,
        _method: &'static str,
        call: impl FnOnce() -> RResult<T, PluginError>,
    ) -> Result<T, HostError> {
        let slot = &self.handle.slot;
        let epoch = slot.epoch.load(Acquire);
        let bound = std::ptr::eq(tenant.as_ptr(), self.tenant.name.as_ptr())
            && tenant.len() == self.tenant.name.len();
        let mut other = None;
        if !(bound && self.tenant.checked.load(Relaxed) == epoch) {
            self.recheck(tenant, epoch)?;
            other = self.other_tenant(tenant);
        }
        let (counters, sampled) = match &other {
            None => (&*self.tenant.counters, self.shard.count()),
            Some(counters) => (&**counters, counters.start_call()),
        };
        let start = sampled.then(Instant::now);
        let result = call();
        if let Some(start) = start {
            counters.record_latency(start.elapsed());
        }
        match result {
            RResult::ROk(value) => Ok(value),
            RResult::RErr(error) => Err(self.handle.slot.call_failed(counters, &error)),
        }
    }
}

impl plugin_api::category::CategoryHost for BoundPlugin {
    type Error = HostError;
    type Caller<'a> = BoundPlugin;

    #[inline]
    fn category<C: plugin_api::category::Contract>(
        &self,
    ) -> Result<C::Client<'_, BoundPlugin>, HostError> {
        match self.handle.loaded.categories.get::<C>() {
            Some(object) => Ok(C::client(object, self)),
            None => Err(HostError::MissingExtension {
                plugin: self.handle.slot.id.clone(),
                extension: C::NAME,
            }),
        }
    }
}
