//! The plugins as the host runs them: the plugin runtime on the host's database, each
//! configured plugin loaded into it, and [`Plugins`], the queue's
//! [`Deliverer`] over them.

use crate::config::{Config, PluginConfig, PluginSource};
use crate::queue::{Deliverer, Queue};
use crate::queue::{DeliveryOutcome, DeliveryRequest};
use crate::runtime::{KvQuota, KvStore, Plugin, PluginRuntime, PluginSpec, RuntimeConfig};
use anyhow::Context;
use std::collections::HashMap;
use std::sync::Arc;

/// The plugin runtime, its plugins' stored data (KV) in `db`.
pub fn runtime(db: Arc<redb::Database>, config: RuntimeConfig) -> anyhow::Result<PluginRuntime> {
    PluginRuntime::new(config, KvStore::new(db, KvQuota::default()))
        .map_err(|error| anyhow::anyhow!("while setting up the plugin runtime: {error:#}"))
}

/// Loads one configured plugin into the runtime: reads its component (or the built-in
/// `generic-webhook`), checks its contract version and compiles it (cached on disk).
pub fn load_plugin(runtime: &PluginRuntime, plugin: &PluginConfig) -> anyhow::Result<Plugin> {
    let wasm = plugin
        .read_wasm()
        .with_context(|| format!("while reading plugin {}", whence(plugin)))?;
    runtime
        .load(PluginSpec {
            name: plugin.name.clone(),
            wasm,
            allowed_hosts: plugin.allowed_hosts.clone(),
            limits: plugin.limits,
            settings: plugin.settings.clone(),
            secrets: plugin.expose_secrets(),
            ca_file: plugin.ca_file.clone(),
        })
        .with_context(|| format!("while loading plugin {}", whence(plugin)))
}

/// A plugin's name, file and where it is configured, for messages.
fn whence(plugin: &PluginConfig) -> String {
    let file = match &plugin.source {
        PluginSource::Builtin(builtin) => format!("built-in {}", builtin.name),
        PluginSource::File(file) => file.path.display().to_string(),
    };
    match &plugin.place {
        Some(place) => format!("{} ({file}, configured at {place})", plugin.name),
        None => format!("{} ({file})", plugin.name),
    }
}

/// Loads every configured plugin; the first that does not load is the error.
pub fn load_plugins(runtime: &PluginRuntime, config: &Config) -> anyhow::Result<Vec<Plugin>> {
    config
        .plugins
        .iter()
        .map(|plugin| load_plugin(runtime, plugin))
        .collect()
}

/// One line saying what a plugin may do.
pub fn describe(plugin: &Plugin) -> String {
    let hosts: Vec<String> = plugin.policy().patterns().map(|p| p.to_string()).collect();
    let limits = plugin.limits();
    format!(
        "plugin {} (contract {}): allowed hosts [{}], memory {} MiB, timeout {} ms",
        plugin.name(),
        plugin.api_version(),
        hosts.join(", "),
        limits.memory_bytes >> 20,
        limits.timeout.as_millis()
    )
}

/// The loaded plugins, by name: what the queue delivers with.
pub struct Plugins(HashMap<String, Arc<Plugin>>);

impl Plugins {
    /// The plugins, keyed by their names.
    pub fn new(plugins: impl IntoIterator<Item = Plugin>) -> Self {
        Plugins(
            plugins
                .into_iter()
                .map(|p| (p.name().to_string(), Arc::new(p)))
                .collect(),
        )
    }

    /// The plugins' names.
    pub fn names(&self) -> Vec<String> {
        self.0.keys().cloned().collect()
    }
}

impl Deliverer for Plugins {
    fn deliver(
        &self,
        plugin: &str,
        request: DeliveryRequest<'_>,
    ) -> impl Future<Output = DeliveryOutcome> + Send {
        let found = self.0.get(plugin).cloned();
        let name = plugin.to_string();
        async move {
            match found {
                Some(plugin) => plugin.deliver(request).await,
                None => DeliveryOutcome::Failed {
                    message: format!("plugin {name} is not loaded"),
                },
            }
        }
    }
}

/// The durable queue over the loaded plugins.
pub type DeliveryQueue = Queue<Plugins>;
