//! `callhook plugin test`: a plugin against a scenario or a capture, with every request it
//! makes answered by a local stand-in and printed, so nothing reaches the real CRM.
//!
//! A `.wasm` file or `generic-webhook` gets a stand-in that answers 200 to everything (the
//! runtime sends every request there, with its real URL in a header). A built-in CRM plugin
//! (`hubspot`, `pipedrive`, `bitrix24`, `zoho`) gets its CRM's stand-in instead, which checks
//! each request as the CRM would and answers as it does; it is pointed at it through its
//! settings, and the records the CRM holds at the end are printed.

use super::crm_standin::{self, CrmStandin};
use crate::app::trial::{TrialPlugin, TrialSpec, trial_events};
use crate::app::{read_capture, scenario_changes};
use crate::queue::DeliveryOutcome;
use crate::runtime::ORIGINAL_URL_HEADER;
use axum::body::Bytes;
use axum::http::{HeaderMap, Method};
use callhook_simulator::Scenario;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Options of `callhook plugin test`.
#[derive(Debug, clap::Args)]
pub struct TestArgs {
    /// The plugin's `.wasm` file, or a built-in plugin: `generic-webhook`, `hubspot`,
    /// `pipedrive`, `bitrix24` or `zoho`.
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
        (Some(scenario), _) => {
            // The calls took place just now, ending a minute ago: CRMs refuse calls that end
            // in the future.
            let scenario = load_scenario(scenario)?;
            let took = jiff::SignedDuration::try_from(scenario.duration())?
                + jiff::SignedDuration::from_mins(1);
            scenario_changes(&scenario, jiff::Timestamp::now() - took)
        }
        (None, Some(capture)) => read_capture(capture)?.collect::<anyhow::Result<_>>()?,
        (None, None) => unreachable!("clap requires --scenario or --capture"),
    };
    let events = trial_events(changes);

    let crm = CrmStandin::start(&args.plugin).await?;
    let stand_in = match &crm {
        Some(_) => None,
        None => Some(start_stand_in().await?),
    };
    // The stand-in's settings and credentials first, so that `--setting` and `--secret` win.
    let (mut settings, mut secrets) = (BTreeMap::new(), BTreeMap::new());
    if let Some(crm) = &crm {
        println!("{} stand-in at {}", crm.name(), crm.base_url());
        settings.extend(crm.settings().iter().cloned());
        secrets.extend(crm.secrets().iter().cloned());
    }
    settings.extend(args.settings);
    secrets.extend(args.secrets);
    let allowed_hosts = match (&crm, args.allowed_hosts.is_empty()) {
        (_, false) => args.allowed_hosts,
        (Some(crm), true) => vec![crm.base_url()],
        (None, true) => vec!["https://*:*".to_string(), "http://*:*".to_string()],
    };
    let plugin = TrialPlugin::load(TrialSpec {
        plugin: args.plugin,
        settings,
        secrets,
        allowed_hosts,
        stand_in,
    })?;
    let now = jiff::Timestamp::now().as_second().max(0) as u64;
    let mut printed = 0;
    for event in &events {
        println!(
            "{} {} ({})",
            event.name(),
            event.user().unwrap_or(""),
            event.call_id()
        );
        let outcome = plugin.deliver(event, now).await;
        if let Some(crm) = &crm {
            let requests = crm.requests();
            for request in requests.iter().skip(printed) {
                println!("  {}", crm_standin::request_line(request));
            }
            printed = requests.len();
        }
        if let Some(message) = outcome.message() {
            println!("  => {}: {message}", outcome.label());
        } else if outcome != DeliveryOutcome::Delivered {
            println!("  => {}", outcome.label());
        }
    }
    println!("{} events", events.len());
    if let Some(crm) = &crm {
        println!("{} now holds:", crm.name());
        for record in crm.records() {
            println!("  {record}");
        }
    }
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
