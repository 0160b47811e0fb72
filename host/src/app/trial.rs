//! A plugin tried on its own, outside a running host: the events of recorded or scripted calls
//! delivered one by one to a plugin loaded in a runtime of its own, with its store in a
//! temporary directory. What `callhook plugin test` runs; the command adds the stand-ins that
//! answer the plugin's requests and prints what happens.

use super::{Replayer, plugins};
use crate::callcontrol::Change;
use crate::calls::{Engine, EngineConfig, event::CallEvent};
use crate::queue::{DeliveryOutcome, DeliveryRequest};
use crate::runtime::{Plugin, PluginLimits, PluginSpec, RuntimeConfig};
use anyhow::Context;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// The events `changes` cause, the grace periods run out at the end. The engine knows the 3CX
/// simulator's trunks (as `[trunks]` would), since the scenarios are the simulator's.
pub fn trial_events(changes: Vec<Change>) -> Vec<CallEvent> {
    let engine = Engine::new(EngineConfig {
        trunk_dids: callhook_simulator::SimConfig::default_trunks(),
        ..EngineConfig::default()
    });
    Replayer::all(engine, changes)
}

/// What to try.
#[derive(Debug, Clone)]
pub struct TrialSpec {
    /// A built-in plugin's name, or the path of a `.wasm` file.
    pub plugin: String,
    /// Its settings.
    pub settings: BTreeMap<String, String>,
    /// Its secrets.
    pub secrets: BTreeMap<String, String>,
    /// The origins it may reach.
    pub allowed_hosts: Vec<String>,
    /// Where every request goes instead of its destination (see
    /// [`RuntimeConfig::stand_in`]); `None` sends each where the plugin says.
    pub stand_in: Option<std::net::SocketAddr>,
}

/// A plugin loaded for a trial.
pub struct TrialPlugin {
    plugin: Plugin,
    _storage: tempfile::TempDir,
}

impl TrialPlugin {
    /// Loads the plugin with the limits it would have in a host (a built-in plugin's own
    /// defaults), its key-value store in a temporary directory.
    pub fn load(spec: TrialSpec) -> anyhow::Result<TrialPlugin> {
        let storage = tempfile::tempdir().context("while creating the trial's storage")?;
        let db = redb::Database::create(storage.path().join("plugin-test.redb"))?;
        let runtime = plugins::runtime(
            Arc::new(db),
            RuntimeConfig {
                stand_in: spec.stand_in,
                ..RuntimeConfig::default()
            },
        )?;
        let builtin = crate::runtime::builtin(&spec.plugin);
        let wasm: Arc<[u8]> = match builtin {
            Some(builtin) => builtin.wasm.into(),
            None => std::fs::read(&spec.plugin)
                .with_context(|| format!("while reading the plugin {}", spec.plugin))?
                .into(),
        };
        let limits = match builtin {
            Some(builtin) => PluginLimits {
                memory_bytes: (builtin.defaults.memory_mb as usize) << 20,
                kv_quota_bytes: Some(builtin.defaults.kv_quota_mb << 20),
                timeout: Duration::from_millis(builtin.defaults.timeout_ms),
                ..PluginLimits::default()
            },
            None => PluginLimits::default(),
        };
        let plugin = runtime.load(PluginSpec {
            name: spec.plugin,
            wasm,
            allowed_hosts: spec.allowed_hosts,
            limits,
            settings: spec.settings,
            secrets: spec.secrets,
            ca_file: None,
        })?;
        Ok(TrialPlugin {
            plugin,
            _storage: storage,
        })
    }

    /// Delivers `event` as a first attempt at `timestamp` (seconds since the Unix epoch).
    pub async fn deliver(&self, event: &CallEvent, timestamp: u64) -> DeliveryOutcome {
        let key = event.key();
        self.plugin
            .deliver(DeliveryRequest {
                event,
                idempotency_key: &key,
                attempt: 1,
                timestamp,
                replayed: false,
            })
            .await
    }
}
