//! `callhook plugin test`: a plugin against a scenario or a capture, with every request it
//! makes answered by a local stand-in and printed, so nothing reaches the real CRM.

use crate::app::{Replayer, plugins, scenario_changes};
use crate::calls::{Engine, EngineConfig};
use crate::pbx::{Change, Replay};
use crate::runtime::{
    DeliveryOutcome, DeliveryRequest, GENERIC_WEBHOOK_WASM, ORIGINAL_URL_HEADER, PluginLimits,
    PluginSpec, RuntimeConfig,
};
use anyhow::Context;
use axum::body::Bytes;
use axum::http::{HeaderMap, Method};
use callhook_simulator::Scenario;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Options of `callhook plugin test`.
#[derive(Debug, clap::Args)]
pub struct TestArgs {
    /// The plugin's `.wasm` file, or `generic-webhook` for the built-in default plugin.
    plugin: String,
    /// A simulator scenario: a built-in name (e.g. `05-blind-transfer`) or a `.toml` file.
    #[arg(long, conflicts_with = "capture", required_unless_present = "capture")]
    scenario: Option<String>,
    /// A capture written by `callhook run --capture`.
    #[arg(long)]
    capture: Option<PathBuf>,
    /// A plugin setting, `key=value`; repeat for more.
    #[arg(long = "setting", value_parser = key_value)]
    settings: Vec<(String, String)>,
    /// A plugin secret, `key=value`; repeat for more.
    #[arg(long = "secret", value_parser = key_value)]
    secrets: Vec<(String, String)>,
    /// An allowed_hosts pattern; repeat for more. By default every http and https origin, as
    /// the requests go to the stand-in anyway.
    #[arg(long = "allow")]
    allowed_hosts: Vec<String>,
}

fn key_value(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("expected key=value, not {text:?}"))
}

/// Runs the test and prints each event, the requests it caused and any failure.
pub async fn run(args: TestArgs) -> anyhow::Result<()> {
    let changes = match (&args.scenario, &args.capture) {
        (Some(scenario), _) => scenario_changes(&load_scenario(scenario)?, jiff::Timestamp::now()),
        (None, Some(capture)) => capture_changes(capture)?,
        (None, None) => unreachable!("clap requires --scenario or --capture"),
    };
    // The scenarios are the simulator's: its trunk tells their DID, as `[trunks]` would.
    let engine = Engine::new(EngineConfig {
        trunk_dids: callhook_simulator::SimConfig::default_trunks(),
        ..EngineConfig::default()
    });
    let events = Replayer::all(engine, changes);

    let stand_in = start_stand_in().await?;
    let storage = tempfile::tempdir()?;
    let db = redb::Database::create(storage.path().join("plugin-test.redb"))?;
    let runtime = plugins::runtime(
        Arc::new(db),
        RuntimeConfig {
            stand_in: Some(stand_in),
            ..RuntimeConfig::default()
        },
    )?;
    let wasm: Arc<[u8]> = if args.plugin == crate::config::GENERIC_WEBHOOK {
        GENERIC_WEBHOOK_WASM.into()
    } else {
        std::fs::read(&args.plugin)
            .with_context(|| format!("while reading the plugin {}", args.plugin))?
            .into()
    };
    let allowed_hosts = if args.allowed_hosts.is_empty() {
        vec!["https://*:*".to_string(), "http://*:*".to_string()]
    } else {
        args.allowed_hosts
    };
    let plugin = runtime.load(PluginSpec {
        name: args.plugin.clone(),
        wasm,
        allowed_hosts,
        limits: PluginLimits::default(),
        settings: args.settings.into_iter().collect::<BTreeMap<_, _>>(),
        secrets: args.secrets.into_iter().collect::<BTreeMap<_, _>>(),
        ca_file: None,
    })?;
    let now = jiff::Timestamp::now().as_second().max(0) as u64;
    for event in &events {
        println!(
            "{} {} ({})",
            event.name(),
            event.user().unwrap_or(""),
            event.call_id()
        );
        let key = event.key();
        let outcome = plugin
            .deliver(DeliveryRequest {
                event,
                idempotency_key: &key,
                attempt: 1,
                timestamp: now,
                replayed: false,
            })
            .await;
        if let Some(message) = outcome.message() {
            println!("  => {}: {message}", outcome.label());
        } else if outcome != DeliveryOutcome::Delivered {
            println!("  => {}", outcome.label());
        }
    }
    println!("{} events", events.len());
    Ok(())
}

fn load_scenario(name: &str) -> anyhow::Result<Scenario> {
    let path = Path::new(name);
    let scenario = if path.extension().is_some_and(|e| e == "toml") {
        Scenario::from_file(path)?
    } else {
        Scenario::builtin(name)?
    };
    Ok(scenario)
}

fn capture_changes(file: &Path) -> anyhow::Result<Vec<Change>> {
    let reader = std::fs::File::open(file)
        .with_context(|| format!("while opening the capture {}", file.display()))?;
    Replay::new(std::io::BufReader::new(reader))
        .collect::<Result<_, _>>()
        .with_context(|| format!("while reading {}", file.display()))
}

/// A local server that answers every request with 200 and prints it with its real URL.
async fn start_stand_in() -> anyhow::Result<std::net::SocketAddr> {
    async fn answer(method: Method, headers: HeaderMap, body: Bytes) -> &'static str {
        let url = headers
            .get(ORIGINAL_URL_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("?");
        if body.is_empty() {
            println!("  {method} {url}");
        } else {
            println!("  {method} {url} {}", String::from_utf8_lossy(&body));
        }
        "ok"
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, axum::Router::new().fallback(answer)).await });
    Ok(address)
}
