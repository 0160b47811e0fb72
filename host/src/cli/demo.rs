//! `callhook demo`: simulator, sink and host in one process, playing a few calls.

use crate::app;
use crate::calls::{Engine, EngineConfig};
use crate::pbx::{Connector, ConnectorConfig};
use crate::queue::{Queue, QueueConfig};
use crate::recordings::{RecordingServer, RecordingsConfig};
use crate::runtime::{
    GENERIC_WEBHOOK_WASM, KvQuota, KvStore, PluginLimits, PluginRuntime, PluginSpec, RuntimeConfig,
};
use anyhow::Context;
use axum::Router;
use axum::body::Bytes;
use axum::http::{Method, Uri};
use callhook_simulator::{Scenario, SimConfig, Simulator};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The calls the demo plays, in order.
const SCENARIOS: [&str; 4] = [
    "01-direct-inbound-answered",
    "03-queue-answered",
    "05-blind-transfer",
    "08-outbound-answered",
];

/// Options of `callhook demo`.
#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// How fast the calls play: 0.1 plays a 100-second call in 10 seconds.
    #[arg(long, default_value_t = 0.1)]
    time_scale: f64,
}

/// Runs the demo to the end of its last call.
pub async fn run(args: DemoArgs) -> anyhow::Result<()> {
    let scenarios = SCENARIOS
        .iter()
        .map(|name| Scenario::builtin(name).with_context(|| format!("while loading {name}")))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let simulator = Simulator::start(SimConfig::default())
        .await
        .context("while starting the 3CX simulator")?;
    for scenario in &scenarios {
        simulator.add_directory(&scenario.directory());
    }
    let sink = start_sink().await?;
    println!("3CX simulator  {}", simulator.base_url());
    println!("webhook sink   {sink}");

    let storage = tempfile::tempdir().context("while creating the demo's storage")?;
    let db = Arc::new(redb::Database::create(
        storage.path().join("callhook.redb"),
    )?);
    let runtime = PluginRuntime::new(
        RuntimeConfig::default(),
        KvStore::new(db.clone(), KvQuota::default()),
    )?;
    let plugin = runtime.load(PluginSpec {
        name: "generic-webhook".into(),
        wasm: GENERIC_WEBHOOK_WASM.into(),
        allowed_hosts: vec![sink.clone()],
        limits: PluginLimits::default(),
        settings: [
            ("webhook_url".to_string(), format!("{sink}/3cx/events")),
            (
                "webhook_post_url".to_string(),
                format!("{sink}/3cx/recordings"),
            ),
        ]
        .into(),
        secrets: Default::default(),
    })?;
    println!("plugin         generic-webhook (allowed: {sink})");

    let config = simulator.config();
    let connector = Connector::new(
        ConnectorConfig::new(
            simulator.base_url().parse()?,
            config.client_id.clone(),
            config.client_secret.clone(),
        ),
        None,
    )?;
    let plugins = app::Plugins::new([plugin]);
    let queue_config = QueueConfig::new(Default::default(), plugins.names());
    let queue = Queue::open(db, queue_config, plugins)?;
    let engine = Engine::new(EngineConfig::default());
    let listen = free_local_address()?;
    let recordings = RecordingsConfig {
        enabled: true,
        mp3_dir: storage.path().join("recordings"),
        listen,
        public_url: format!("http://{listen}"),
        keep_days: 0,
        ..RecordingsConfig::default()
    };
    let stop_recordings = CancellationToken::new();
    let recorder = app::start_recorder(
        &recordings,
        Arc::new(connector.rest()),
        stop_recordings.clone(),
    )?;
    let server = RecordingServer::bind(listen, None).await?;
    let stop = stop_recordings.clone();
    tokio::spawn(server.run(recorder.router(), async move { stop.cancelled().await }));
    println!("recordings     http://{listen}/webapi/recording/ (signed links)\n");
    let pipeline = app::Pipeline::start(connector, engine, Arc::new(queue), None, Some(recorder));
    simulator.wait_snapshots(1).await;
    for scenario in &scenarios {
        println!("── {}", scenario.description());
        simulator.play(scenario, args.time_scale).await?;
        // The engine waits out its grace period (2 s) before it calls a part over; then the
        // recordings are fetched, converted and posted.
        tokio::time::sleep(Duration::from_secs(4)).await;
        println!();
    }
    let stopped = pipeline.shutdown().await;
    stop_recordings.cancel();
    stopped
}

/// A free port on 127.0.0.1 for the recordings server, whose links must name it up front.
fn free_local_address() -> anyhow::Result<std::net::SocketAddr> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?)
}

/// A webhook receiver on 127.0.0.1 that prints every request; returns its origin.
async fn start_sink() -> anyhow::Result<String> {
    async fn print(method: Method, uri: Uri, body: Bytes) -> &'static str {
        let target = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
        if body.is_empty() {
            println!("   {method} {target}");
        } else {
            println!("   {method} {target} {}", String::from_utf8_lossy(&body));
        }
        "ok"
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let origin = format!("http://{}", listener.local_addr()?);
    let app = Router::new().fallback(print);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(origin)
}
