//! `callhook run` and `callhook check-config`: the configured host, and its dry run.

use crate::app::reload;
use crate::app::{Host, HostOptions, Reload};
use crate::config::Config;
use crate::pbx::probe::probe;
use crate::pbx::{CaptureWriter, ConnectionState, Connector};
use crate::telemetry::config::ConfigWarning;
use anyhow::Context;
use std::path::{Path, PathBuf};

/// Loads the configuration, or an error listing every problem with its place.
fn load(path: &Path) -> anyhow::Result<Config> {
    Config::load(path).map_err(|errors| anyhow::anyhow!("{errors}"))
}

/// `callhook check-config`: validates everything and loads every plugin, connecting nowhere.
pub async fn check_config(path: &Path, online: bool) -> anyhow::Result<()> {
    let config = load(path)?;
    let report = crate::config::check(&config).map_err(|errors| anyhow::anyhow!("{errors}"))?;
    for line in report.lines {
        println!("ok  {line}");
    }
    for line in report.warnings {
        println!("warning  {line}");
    }
    for line in Host::check(&config)? {
        println!("ok  {line}");
    }
    println!("{} is valid", path.display());
    if online {
        check_pbx_access(&config).await?;
    }
    Ok(())
}

/// `check-config --online`: logs in and says which of the PBX's APIs the client may use.
async fn check_pbx_access(config: &Config) -> anyhow::Result<()> {
    let connector = Connector::new(config.connector(), None)?;
    let access = probe(&connector.rest()).await;
    for line in access.lines() {
        println!("{line}");
    }
    if !access.complete() {
        anyhow::bail!(
            "the API client {} cannot use every API callhook needs (see above)",
            config.pbx.client_id
        );
    }
    Ok(())
}

/// `callhook run`: connects to the PBX and delivers events until SIGTERM or Ctrl-C.
pub async fn run(path: &Path, capture: Option<PathBuf>) -> anyhow::Result<()> {
    let hangup = reload::listen_for_hangup();
    let config = load(path)?;
    for warning in crate::config::warnings(&config) {
        ConfigWarning { warning: &warning }.emit();
    }
    let capture = match capture {
        Some(file) => Some(
            CaptureWriter::create(&file)
                .with_context(|| format!("while creating the capture file {}", file.display()))?,
        ),
        None => None,
    };
    let pbx = config.pbx.clone();
    let options = HostOptions {
        capture,
        admin_socket: true,
        reload: Reload::OnChange { hangup },
    };
    let host = Host::start(config, options).await?;
    report_connection(host.connection(), &pbx);
    for line in host.summary() {
        println!("{line}");
    }
    // A panicking connector or derivation task stops the host with an error (exit code 1), so
    // the service manager starts it afresh; `stop` reports which task and why.
    tokio::select! {
        () = shutdown_signal() => println!("stopping"),
        () = host.task_failed() => println!("stopping after a task of the pipeline failed"),
    }
    host.stop().await
}

/// Prints connection state changes as they happen; a failure names the PBX's address and
/// where it is configured, since a wrong address is the usual cause.
fn report_connection(
    mut state: tokio::sync::watch::Receiver<ConnectionState>,
    pbx: &crate::config::PbxConfig,
) {
    let url = pbx.url.to_string();
    let configured = pbx
        .url_place
        .as_ref()
        .map_or_else(|| "pbx.url".to_string(), ToString::to_string);
    tokio::spawn(async move {
        while state.changed().await.is_ok() {
            let line = match &*state.borrow() {
                ConnectionState::Connected { .. } => format!("connected to the PBX at {url}"),
                ConnectionState::Backoff { delay, error, .. } => format!(
                    "cannot reach the PBX at {url} (configured at {configured}): {error}; \
                     retrying in {} s",
                    delay.as_secs()
                ),
                ConnectionState::Connecting { attempt } if *attempt > 1 => {
                    format!("connecting to the PBX at {url} (attempt {attempt})")
                }
                ConnectionState::Connecting { .. } => format!("connecting to the PBX at {url}"),
                ConnectionState::Stopped => break,
            };
            println!("{line}");
        }
    });
}

/// Resolves on SIGTERM or Ctrl-C.
async fn shutdown_signal() {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("installing a SIGTERM handler cannot fail");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
}
