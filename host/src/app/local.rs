//! A whole host wired to a 3CX simulator in this process, delivering with the built-in
//! generic-webhook plugin to one receiver: what `callhook demo` runs, and what the pipeline
//! tests and benchmark drive. Storage is a temporary directory, removed when the host stops.

use super::{EngineStore, Pipeline, Plugins, start_recorder};
use crate::calls::{Engine, EngineConfig};
use crate::pbx::{Connector, ConnectorConfig};
use crate::queue::{Queue, QueueConfig};
use crate::recordings::{RecordingServer, RecordingsConfig};
use crate::runtime::{
    GENERIC_WEBHOOK_WASM, KvQuota, KvStore, PluginLimits, PluginRuntime, PluginSpec, RuntimeConfig,
};
use anyhow::Context;
use callhook_simulator::SimHandle;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How the local host is set up.
#[derive(Debug, Clone)]
pub struct LocalSetup {
    /// The receiver's origin, e.g. `http://127.0.0.1:8080`: the plugin may reach only it.
    pub receiver: String,
    /// Where the webhooks go (generic-webhook's `webhook_url`).
    pub webhook_url: String,
    /// Where recordings are posted (`webhook_post_url`); `None` turns recordings off.
    pub recordings_url: Option<String>,
    /// The engine's grace period.
    pub grace: Duration,
    /// Whether the engine's call state is saved with the events, as `callhook run` does.
    pub keep_call_state: bool,
}

/// The running local host.
pub struct LocalHost {
    pipeline: Pipeline,
    stop: CancellationToken,
    recordings_base: Option<String>,
    _storage: tempfile::TempDir,
}

impl LocalHost {
    /// Starts the host against `simulator` and waits for its first snapshot.
    pub async fn start(simulator: &SimHandle, setup: LocalSetup) -> anyhow::Result<LocalHost> {
        let storage = tempfile::tempdir().context("while creating the host's storage")?;
        let db = Arc::new(redb::Database::create(
            storage.path().join("callhook.redb"),
        )?);
        let runtime = PluginRuntime::new(
            RuntimeConfig::default(),
            KvStore::new(db.clone(), KvQuota::default()),
        )?;
        let mut settings = vec![("webhook_url".to_string(), setup.webhook_url.clone())];
        if let Some(url) = &setup.recordings_url {
            settings.push(("webhook_post_url".to_string(), url.clone()));
        }
        let plugin = runtime.load(PluginSpec {
            name: "generic-webhook".into(),
            wasm: GENERIC_WEBHOOK_WASM.into(),
            allowed_hosts: vec![setup.receiver.clone()],
            limits: PluginLimits::default(),
            settings: settings.into_iter().collect(),
            secrets: Default::default(),
        })?;
        let pbx = simulator.config();
        let connector = Connector::new(
            ConnectorConfig::new(
                simulator.base_url().parse()?,
                pbx.client_id.clone(),
                pbx.client_secret.clone(),
            ),
            None,
        )?;
        let plugins = Plugins::new([plugin]);
        let queue_config = QueueConfig::new(Default::default(), plugins.names());
        let queue = Queue::open(db, queue_config, plugins)?;
        let store = setup.keep_call_state.then(|| EngineStore::of(&queue));
        let engine = Engine::new(EngineConfig {
            grace: setup.grace,
            trunk_dids: pbx.trunks.clone(),
            ..EngineConfig::default()
        });
        let stop = CancellationToken::new();
        let (recorder, recordings_base) = match setup.recordings_url {
            Some(_) => {
                let listen = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
                let base = format!("http://{listen}");
                let recordings = RecordingsConfig {
                    enabled: true,
                    mp3_dir: storage.path().join("recordings"),
                    listen,
                    public_url: base.clone(),
                    keep_days: 0,
                    ..RecordingsConfig::default()
                };
                let recorder =
                    start_recorder(&recordings, Arc::new(connector.rest()), stop.clone())?;
                let server = RecordingServer::bind(listen, None).await?;
                let stopped = stop.clone();
                tokio::spawn(
                    server.run(recorder.router(), async move { stopped.cancelled().await }),
                );
                (Some(recorder), Some(base))
            }
            None => (None, None),
        };
        let pipeline = Pipeline::start(connector, engine, Arc::new(queue), store, recorder);
        simulator.wait_snapshots(1).await;
        Ok(LocalHost {
            pipeline,
            stop,
            recordings_base,
            _storage: storage,
        })
    }

    /// Where the recordings are served, e.g. `http://127.0.0.1:4321`, when they are on.
    pub fn recordings_base(&self) -> Option<&str> {
        self.recordings_base.as_deref()
    }

    /// Stops the host: see [`Pipeline::shutdown`].
    pub async fn stop(self) -> anyhow::Result<()> {
        let stopped = self.pipeline.shutdown().await;
        self.stop.cancel();
        stopped
    }
}
