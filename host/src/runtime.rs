//! The plugin runtime: loads WebAssembly plugin components and runs one delivery at a time in
//! a fresh, sandboxed instance.
//!
//! Design:
//! - One wasmtime [`Engine`] with the component model, the pooling allocator and epoch
//!   interruption. Each plugin is compiled once ([`cache`] keeps the machine code on disk) and
//!   pre-linked into an `InstancePre`, so a delivery only instantiates.
//! - Every delivery gets a new `Store`: its own memory (capped by
//!   [`PluginLimits::memory_bytes`]), its own WASI context with no files, no environment and no
//!   sockets, and the plugin's own egress policy for `wasi:http` and `http.send`. Nothing
//!   survives the delivery but what the plugin wrote to its key-value store.
//! - Run time is bounded twice: an epoch deadline traps code that computes past the delivery's
//!   time limit (the epoch callback also yields to the async executor every tick, so a busy
//!   plugin never starves other tasks), and an outer wall-clock time-out also covers time spent
//!   waiting on host calls such as a slow receiver.
//! - The result has two levels: the outer one is a trap or host failure, the inner one the
//!   plugin's own `delivery-error` of its contract version. Both become a [`DeliveryOutcome`],
//!   logged at debug with the plugin's name and contract version; the queue logs the
//!   attempt's end, once, as a warning when it did not deliver.
//! - Contract versions: one bindings module per version (`since_v0_1_0`, `since_v0_2_0`,
//!   `since_v0_3_0`), all added to one linker, and [`versions::PluginPre`] over them, matched
//!   exhaustively. The imports live in the newest version's module (`latest`); an older one
//!   converts its types to and from it, or shares them where they are the same (0.2's records
//!   are 0.3's). What 0.2 adds beyond the event (E.164, the user list, recording bytes) comes
//!   from [`HostServices`]; 0.3's `http.send` is the plugin's sender in one call.

pub mod bounds;
mod builtin;
mod cache;
pub mod egress;
mod kv_store;
pub mod limits;
pub mod sender;
mod services;
mod since_v0_1_0;
mod since_v0_2_0;
mod since_v0_3_0;
/// The newest contract's bindings: older versions serve the imports they share with it through
/// its implementation, converting their own types (as Zed's extension host does).
use since_v0_3_0 as latest;
mod state;
mod versions;

use crate::queue::{DeliveryOutcome, DeliveryRequest};
pub use builtin::{
    BUILTINS, Builtin, BuiltinDefaults, Condition, GENERIC_WEBHOOK_WASM, Required, SettingKind,
    SettingSpec, SettingsSchema, UrlSetting, builtin, builtin_names,
};
pub use egress::{EgressPolicy, PatternError, Refusal};
pub use kv_store::{KvError, KvQuota, KvStore};
pub use limits::PluginLimits;
pub use sender::{Resolution, Resolver, SystemResolver, TlsError};
pub use services::{E164Numbers, HostServices, RecordingFiles};
pub use versions::{ApiVersion, VersionError};

use state::{PluginIdentity, PluginState};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use versions::PluginPre;
use wasmtime::component::Linker;
use wasmtime::{Engine, Store, UpdateDeadline};

/// How often the epoch advances; also the granularity of the CPU deadline and of yielding.
const EPOCH_TICK: Duration = Duration::from_millis(10);
/// How much of each pooled memory and table slot stays resident between deliveries.
///
/// Every delivery gets a fresh instance, so its memory slot is reset after each one. By default
/// wasmtime resets a slot with `madvise`, and the next delivery then page-faults every page it
/// touches back in: together about a fifth of a delivery's cost with the default plugin
/// (`docs/benchmarks.md`, https). Up to this many bytes are instead reset in place (on Linux
/// 6.7 and later only the pages the instance wrote, found with the `PAGEMAP_SCAN` ioctl; before,
/// the whole low part with `memset`), and stay mapped. It covers a typical Rust plugin's stack
/// and heap. The price is resident memory: at most this much per memory slot that a delivery
/// has used, so at most [`RuntimeConfig::INSTANCES`] × [`PluginLimits::MAX_MEMORIES`] × 2 MiB
/// after a burst that used the whole pool.
const KEEP_RESIDENT: usize = 2 << 20;
/// Extra time the outer time-out allows, so a computing plugin is reported as such by the
/// epoch deadline rather than by the outer time-out.
const OUTER_GRACE: Duration = Duration::from_millis(200);

/// Settings of the runtime as a whole.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// Where compiled plugins are cached. By default none (compile at every start).
    pub cache_dir: Option<PathBuf>,
    /// How many plugin instances may run at once, all plugins together; more deliveries wait
    /// for a free one. By default [`RuntimeConfig::INSTANCES`].
    pub max_instances: u32,
    /// Largest memory cap any plugin may be given, in bytes; also the size of one memory slot
    /// of the pooling allocator. By default [`RuntimeConfig::MAX_MEMORY_MB`] MiB, the most a
    /// configuration may ask for (`memory_mb`).
    pub max_memory_bytes: usize,
    /// Send every allowed request to this local stand-in instead of its destination, over plain
    /// HTTP, with the original URL in the header [`ORIGINAL_URL_HEADER`]. By default none; used
    /// by `callhook plugin test` so that a test never touches the real CRM.
    pub stand_in: Option<std::net::SocketAddr>,
    /// What contract 0.2 plugins learn from the host besides the event: E.164 numbers, the
    /// PBX's users, the MP3s. By default none of it (see [`HostServices`]).
    pub services: HostServices,
    /// Looks up the names plugins send requests to. By default the system's resolver; tests
    /// give a fake.
    pub resolver: Arc<dyn Resolver>,
}

/// The header that carries a request's real destination to a stand-in.
pub const ORIGINAL_URL_HEADER: &str = "x-callhook-original-url";

impl RuntimeConfig {
    /// The largest memory cap a plugin can be given, in MiB: the configuration's `memory_mb`
    /// is validated against it and the default pool is sized by it, so a cap that passes
    /// `check-config` always loads.
    ///
    /// Raising the slot size costs no reserved address space: each pooled memory slot reserves
    /// wasmtime's `memory_reservation` (4 GiB on 64-bit hosts) plus guard pages whatever its
    /// maximum, and only the pages a plugin touches are backed by RAM.
    pub const MAX_MEMORY_MB: usize = 1024;

    /// The instances of the default pool: the most deliveries that run at once, and so the
    /// largest `concurrency` of one plugin.
    pub const INSTANCES: u32 = 64;
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            cache_dir: None,
            max_instances: Self::INSTANCES,
            max_memory_bytes: Self::MAX_MEMORY_MB << 20,
            stand_in: None,
            services: HostServices::default(),
            resolver: Arc::new(SystemResolver),
        }
    }
}

/// Why a plugin could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The binary's contract version is missing or not served.
    #[error("plugin {plugin}: {source}")]
    Version {
        /// The plugin's name.
        plugin: String,
        /// What is wrong with the version.
        source: VersionError,
    },
    /// An `allowed_hosts` entry is malformed.
    #[error("plugin {plugin}: {source}")]
    Policy {
        /// The plugin's name.
        plugin: String,
        /// The bad entry.
        source: PatternError,
    },
    /// The `ca_file` could not be used.
    #[error("plugin {plugin}: {source}")]
    Tls {
        /// The plugin's name.
        plugin: String,
        /// What is wrong with it.
        source: TlsError,
    },
    /// The memory cap is above what the runtime's pool provides.
    #[error("plugin {plugin}: memory_mb {asked_mb} is above the maximum of {max_mb}")]
    MemoryTooLarge {
        /// The plugin's name.
        plugin: String,
        /// The cap asked for.
        asked_mb: usize,
        /// The largest cap allowed.
        max_mb: usize,
    },
    /// Compiling or linking failed (e.g. the plugin imports something the host does not offer).
    #[error("plugin {plugin}: {message}")]
    Link {
        /// The plugin's name.
        plugin: String,
        /// The engine's message.
        message: String,
    },
}

/// A plugin to load.
#[derive(Debug, Clone)]
pub struct PluginSpec {
    /// The plugin's name, unique in the configuration.
    pub name: String,
    /// The component binary.
    pub wasm: Arc<[u8]>,
    /// `allowed_hosts` patterns (see [`egress`]). By default none: no outgoing requests.
    pub allowed_hosts: Vec<String>,
    /// Limits per delivery.
    pub limits: PluginLimits,
    /// Plain settings handed to the plugin.
    pub settings: BTreeMap<String, String>,
    /// Secrets handed to the plugin, never logged.
    pub secrets: BTreeMap<String, String>,
    /// PEM certificates its HTTPS receivers may chain to, besides the webpki roots. By
    /// default none.
    pub ca_file: Option<PathBuf>,
}

/// The runtime: an engine, a linker with everything plugins may import, the compile cache and
/// the plugins' key-value store.
pub struct PluginRuntime {
    engine: Engine,
    linker: Linker<PluginState>,
    cache: cache::CompileCache,
    kv: KvStore,
    max_memory_bytes: usize,
    stand_in: Option<std::net::SocketAddr>,
    services: HostServices,
    resolver: Arc<dyn Resolver>,
    instances: Arc<tokio::sync::Semaphore>,
}

impl PluginRuntime {
    /// Builds the engine and linker and starts the epoch ticker.
    pub fn new(config: RuntimeConfig, kv: KvStore) -> wasmtime::Result<Self> {
        let engine = Engine::new(&engine_config(&config))?;
        start_epoch_ticker(&engine);
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
        since_v0_1_0::add_to_linker(&mut linker)?;
        since_v0_2_0::add_to_linker(&mut linker)?;
        since_v0_3_0::add_to_linker(&mut linker)?;
        Ok(PluginRuntime {
            engine,
            linker,
            cache: cache::CompileCache::new(config.cache_dir),
            kv,
            max_memory_bytes: config.max_memory_bytes,
            stand_in: config.stand_in,
            services: config.services,
            resolver: config.resolver,
            instances: Arc::new(tokio::sync::Semaphore::new(config.max_instances as usize)),
        })
    }

    /// What contract 0.2 plugins learn from the host: the host fills in the user list and the
    /// MP3s as they become available.
    pub fn services(&self) -> &HostServices {
        &self.services
    }

    /// Checks, compiles (or loads from the cache) and pre-links one plugin.
    pub fn load(&self, spec: PluginSpec) -> Result<Plugin, LoadError> {
        let plugin = spec.name.clone();
        let api_version =
            versions::api_version(&spec.wasm).map_err(|source| LoadError::Version {
                plugin: plugin.clone(),
                source,
            })?;
        let policy =
            EgressPolicy::new(&spec.allowed_hosts).map_err(|source| LoadError::Policy {
                plugin: plugin.clone(),
                source,
            })?;
        if spec.limits.memory_bytes > self.max_memory_bytes {
            return Err(LoadError::MemoryTooLarge {
                plugin,
                asked_mb: spec.limits.memory_bytes >> 20,
                max_mb: self.max_memory_bytes >> 20,
            });
        }
        let policy = Arc::new(policy);
        let sender = sender::Sender::new(
            policy.clone(),
            spec.limits,
            self.resolver.clone(),
            spec.ca_file.as_deref(),
            self.stand_in,
        )
        .map_err(|source| LoadError::Tls {
            plugin: plugin.clone(),
            source,
        })?;
        let link_error = |error: wasmtime::Error| LoadError::Link {
            plugin: plugin.clone(),
            message: format!("{error:#}"),
        };
        let component = self
            .cache
            .component(&self.engine, &spec.wasm)
            .map_err(link_error)?;
        let instance_pre = self
            .linker
            .instantiate_pre(&component)
            .map_err(link_error)?;
        let pre = match (api_version.major, api_version.minor) {
            (0, 1) => {
                PluginPre::V0_1(since_v0_1_0::PluginPre::new(instance_pre).map_err(link_error)?)
            }
            (0, 2) => {
                PluginPre::V0_2(since_v0_2_0::PluginPre::new(instance_pre).map_err(link_error)?)
            }
            (0, 3) => {
                PluginPre::V0_3(since_v0_3_0::PluginPre::new(instance_pre).map_err(link_error)?)
            }
            _ => unreachable!("versions::api_version accepts only served versions"),
        };
        Ok(Plugin {
            identity: Arc::new(PluginIdentity {
                name: spec.name,
                api_version: api_version.to_string(),
                settings: spec.settings,
                secrets: spec.secrets,
                limits: spec.limits,
                policy,
                sender: Arc::new(sender),
            }),
            pre,
            engine: self.engine.clone(),
            kv: self.kv.clone(),
            services: self.services.clone(),
            instances: self.instances.clone(),
        })
    }
}

fn engine_config(config: &RuntimeConfig) -> wasmtime::Config {
    let mut pool = wasmtime::PoolingAllocationConfig::default();
    let instances = config.max_instances;
    pool.total_component_instances(instances)
        .max_core_instances_per_component(PluginLimits::MAX_CORE_INSTANCES)
        .max_memories_per_component(PluginLimits::MAX_MEMORIES)
        .max_tables_per_component(PluginLimits::MAX_TABLES)
        .total_core_instances(instances * PluginLimits::MAX_CORE_INSTANCES)
        .total_memories(instances * PluginLimits::MAX_MEMORIES)
        .total_tables(instances * PluginLimits::MAX_TABLES)
        .total_stacks(instances)
        .max_memory_size(config.max_memory_bytes)
        .linear_memory_keep_resident(KEEP_RESIDENT)
        .table_keep_resident(KEEP_RESIDENT)
        .pagemap_scan(wasmtime::Enabled::Auto);
    let mut engine = wasmtime::Config::new();
    engine
        .wasm_component_model(true)
        .epoch_interruption(true)
        .allocation_strategy(wasmtime::InstanceAllocationStrategy::Pooling(pool));
    engine
}

/// Advances the engine's epoch every [`EPOCH_TICK`] until the engine is dropped.
fn start_epoch_ticker(engine: &Engine) {
    let weak = engine.weak();
    std::thread::Builder::new()
        .name("callhook-epoch".into())
        .spawn(move || {
            while let Some(engine) = weak.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(EPOCH_TICK);
            }
        })
        .expect("could not start the epoch thread");
}

/// A loaded plugin, ready to deliver. Cheap to share behind an `Arc`.
pub struct Plugin {
    identity: Arc<PluginIdentity>,
    pre: PluginPre,
    engine: Engine,
    kv: KvStore,
    services: HostServices,
    /// One permit per instance the engine's pool holds, shared by every plugin of the runtime.
    instances: Arc<tokio::sync::Semaphore>,
}

impl Plugin {
    /// The plugin's configured name.
    pub fn name(&self) -> &str {
        &self.identity.name
    }

    /// The contract version the plugin was built against.
    pub fn api_version(&self) -> &str {
        &self.identity.api_version
    }

    /// The plugin's egress policy.
    pub fn policy(&self) -> &EgressPolicy {
        &self.identity.policy
    }

    /// The plugin's limits.
    pub fn limits(&self) -> PluginLimits {
        self.identity.limits
    }

    /// Runs one delivery in a fresh instance and reports its outcome (logged at debug).
    pub async fn deliver(&self, request: DeliveryRequest<'_>) -> DeliveryOutcome {
        let started = Instant::now();
        let call_id = request.event.call_id().to_string();
        let outcome = self
            .run(request, &call_id)
            .await
            .capped(bounds::MAX_MESSAGE);
        let plugin = self.name();
        let version = self.api_version();
        let event = request.event.name();
        let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
        // At debug only: the queue logs the attempt's end once, with what happens next
        // (`telemetry::queue::AttemptEnded`); this line adds the plugin's contract version.
        tracing::debug!(
            plugin,
            version,
            call_id,
            event,
            elapsed_ms,
            outcome = outcome.label(),
            detail = outcome.message().unwrap_or_default(),
            "plugin ran"
        );
        outcome
    }

    async fn run(&self, request: DeliveryRequest<'_>, call_id: &str) -> DeliveryOutcome {
        // A delivery waits for a free instance of the pool rather than failing to instantiate:
        // more deliveries than instances (plugins' `concurrency` adds up) is load, not a
        // plugin fault, and must not count against the plugin or open its breaker. The wait is
        // not part of the plugin's `timeout_ms`.
        let Ok(_instance) = self.instances.acquire().await else {
            unreachable!("the instance semaphore is never closed")
        };
        let limits = self.identity.limits;
        let state = PluginState::new(
            self.identity.clone(),
            self.kv.clone(),
            self.services.clone(),
            call_id.to_string(),
        );
        let mut store = Store::new(&self.engine, state);
        store.limiter(|state| state.limiter());
        let deadline = Instant::now() + limits.timeout;
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(move |_| {
            if Instant::now() >= deadline {
                Err(wasmtime::format_err!(EpochDeadline))
            } else {
                Ok(UpdateDeadline::Yield(1))
            }
        });
        let result = {
            let run = self.instantiate_and_deliver(&mut store, request);
            tokio::time::timeout(limits.timeout + OUTER_GRACE, run).await
        };
        let state = store.data();
        let refusals = state.refusals();
        let refused = refusals
            .iter()
            .map(|r| format!("; egress refused: {r}"))
            .collect::<String>();
        if let Some(hit) = refusals.iter().find(|r| r.is_limit()) {
            return DeliveryOutcome::Failed {
                message: format!("stopped at a host limit: {hit}{refused}"),
            };
        }
        match result {
            Err(_elapsed) => DeliveryOutcome::Failed {
                message: format!(
                    "timed out after {} ms (the plugin's timeout_ms), waiting on a host call{refused}",
                    limits.timeout.as_millis()
                ),
            },
            Ok(Err(error)) => DeliveryOutcome::Failed {
                message: describe_trap(&error, state, limits) + &refused,
            },
            Ok(Ok(outcome)) => outcome.refused(&refused),
        }
    }

    async fn instantiate_and_deliver(
        &self,
        store: &mut Store<PluginState>,
        request: DeliveryRequest<'_>,
    ) -> wasmtime::Result<DeliveryOutcome> {
        let outcome = match &self.pre {
            PluginPre::V0_1(pre) => {
                let delivery = since_v0_1_0::Delivery {
                    event: request.event.into(),
                    idempotency_key: request.idempotency_key.to_string(),
                    attempt: request.attempt,
                    timestamp: request.timestamp,
                };
                let instance = pre.instantiate_async(&mut *store).await?;
                let result = instance.call_deliver(&mut *store, &delivery).await?;
                latest_outcome(result.map_err(Into::into))
            }
            PluginPre::V0_2(pre) => {
                let instance = pre.instantiate_async(&mut *store).await?;
                let delivery = self.latest_delivery(request);
                latest_outcome(instance.call_deliver(&mut *store, &delivery).await?)
            }
            PluginPre::V0_3(pre) => {
                let instance = pre.instantiate_async(&mut *store).await?;
                let delivery = self.latest_delivery(request);
                latest_outcome(instance.call_deliver(&mut *store, &delivery).await?)
            }
        };
        Ok(outcome)
    }

    /// The delivery as the newest contract carries it (0.2 and 0.3 share its records).
    fn latest_delivery(&self, request: DeliveryRequest<'_>) -> latest::Delivery {
        latest::Delivery {
            event: latest::event(request.event, &self.services),
            idempotency_key: request.idempotency_key.to_string(),
            attempt: request.attempt,
            timestamp: request.timestamp,
            replayed: request.replayed,
        }
    }
}

/// A plugin's answer of the newest contract as the queue's outcome.
fn latest_outcome(result: Result<(), latest::DeliveryError>) -> DeliveryOutcome {
    use DeliveryOutcome as O;
    use latest::DeliveryError as E;
    match result {
        Ok(()) => O::Delivered,
        Err(E::Retryable(e)) => O::Retry {
            message: e.message,
            after: e.retry_after_ms.map(Duration::from_millis),
        },
        Err(E::Permanent(e)) => O::Rejected {
            message: e.message,
            target_gone: e.target_gone,
        },
        Err(E::UnknownOutcome(e)) => O::UnknownOutcome { message: e.message },
    }
}

/// The error the epoch callback raises when a plugin computes past its deadline.
#[derive(Debug)]
struct EpochDeadline;

impl std::fmt::Display for EpochDeadline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("epoch deadline reached")
    }
}

impl std::error::Error for EpochDeadline {}

/// Explains a trap in the operator's terms: which limit was hit, or what the plugin said.
fn describe_trap(error: &wasmtime::Error, state: &PluginState, limits: PluginLimits) -> String {
    if error.downcast_ref::<EpochDeadline>().is_some() {
        return format!(
            "stopped: the plugin computed for longer than its time limit of {} ms (timeout_ms)",
            limits.timeout.as_millis()
        );
    }
    if let Some(message) = bounds::table_full(error) {
        return message;
    }
    let stderr = state.stderr();
    let stderr = if stderr.is_empty() {
        String::new()
    } else {
        format!("; plugin stderr: {stderr}")
    };
    if state.memory_cap_hit() {
        return format!(
            "stopped: the plugin exceeded its memory cap of {} MiB (memory_mb){stderr}",
            limits.memory_bytes >> 20
        );
    }
    format!("the plugin trapped: {error:#}{stderr}")
}
