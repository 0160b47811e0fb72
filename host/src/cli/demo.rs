//! `callhook demo`: simulator, receiver and host in one process, playing a few calls.
//!
//! By default the generic-webhook plugin sends to a local sink that prints each request; with
//! `--plugin hubspot` (or `pipedrive`, `bitrix24`, `zoho`) the built-in CRM plugin sends to
//! that CRM's stand-in, and the demo ends with the call records the CRM holds.

use super::crm_standin::{self, CrmStandin};
use crate::app::local::{LocalHost, LocalPlugin, LocalSetup};
use crate::calls::EngineConfig;
use anyhow::Context;
use axum::Router;
use axum::body::Bytes;
use axum::http::{Method, Uri};
use callhook_simulator::{Scenario, SimConfig, Simulator};
use std::time::Duration;

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
    /// The built-in plugin the calls go to: `generic-webhook` (to a local sink) or a CRM
    /// plugin (`hubspot`, `pipedrive`, `bitrix24`, `zoho`, to a local stand-in of that CRM).
    #[arg(long, default_value = crate::config::GENERIC_WEBHOOK, value_parser = plugin_name)]
    plugin: String,
}

fn plugin_name(name: &str) -> Result<String, String> {
    if name == crate::config::GENERIC_WEBHOOK || crm_standin::CRMS.contains(&name) {
        Ok(name.to_owned())
    } else {
        Err(format!(
            "expected {} or one of {}",
            crate::config::GENERIC_WEBHOOK,
            crm_standin::CRMS.join(", ")
        ))
    }
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
    println!("3CX simulator  {}", simulator.base_url());
    let standin = CrmStandin::start(&args.plugin).await?;
    let plugin = match &standin {
        Some(standin) => {
            println!("{:<14} {} (stand-in)", standin.name(), standin.base_url());
            LocalPlugin::Named {
                name: args.plugin.clone(),
                settings: standin.settings().to_vec(),
                secrets: standin.secrets().to_vec(),
                keys: Vec::new(),
            }
        }
        None => {
            let sink = start_sink().await?;
            println!("webhook sink   {sink}");
            LocalPlugin::GenericWebhook {
                receiver: sink.clone(),
                webhook_url: format!("{sink}/3cx/events"),
                recordings_url: Some(format!("{sink}/3cx/recordings")),
            }
        }
    };
    let host = LocalHost::start(
        &simulator,
        LocalSetup {
            plugin,
            recordings: true,
            grace: EngineConfig::default().grace,
            admin_token: None,
            country: Some("DE".to_owned()),
        },
    )
    .await?;
    println!("plugin         {}", args.plugin);
    if let Some(base) = host.recordings_base() {
        println!("recordings     {base}/webapi/recording/ (signed links)");
    }
    println!();
    let mut printed = 0;
    for scenario in &scenarios {
        println!("── {}", scenario.description());
        simulator.play(scenario, args.time_scale).await?;
        // The engine waits out its grace period (2 s) before it calls a part over; then the
        // recordings are fetched, converted and delivered.
        tokio::time::sleep(Duration::from_secs(4)).await;
        if let Some(standin) = &standin {
            let requests = standin.requests();
            for request in requests.iter().skip(printed) {
                println!("   {}", crm_standin::request_line(request));
            }
            printed = requests.len();
        }
        println!();
    }
    if let Some(standin) = &standin {
        println!("{} now holds:", standin.name());
        for record in standin.records() {
            println!("   {record}");
        }
    }
    host.stop().await
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
