//! `callhook deliveries`: inspect and replay the durable queue.
//!
//! The queue's database can be opened by one process at a time, so these commands work while
//! the host is stopped (they say so when it is running); the host picks up what they change at
//! its next start.

use crate::config::Config;
use crate::queue::cli_format::render_deliveries;
use crate::queue::replay::{DeliveryFilter, enable_plugin, list_deliveries, retry_deliveries};
use anyhow::Context;
use std::path::Path;

/// Which deliveries a command applies to.
#[derive(Debug, clap::Args)]
pub struct Selection {
    /// Only parked deliveries: those that failed for good or ran out of retries.
    #[arg(long)]
    failed: bool,
    /// Only this plugin's deliveries.
    #[arg(long)]
    plugin: Option<String>,
    /// Only deliveries parked (or, when pending, taken) at or after this time, RFC 3339,
    /// e.g. `2026-11-24T10:00:00Z`.
    #[arg(long)]
    since: Option<jiff::Timestamp>,
}

impl Selection {
    fn filter(&self) -> DeliveryFilter {
        DeliveryFilter {
            parked_only: self.failed,
            plugin: self.plugin.clone(),
            since: self.since,
        }
    }
}

/// Opens the queue's database of the configuration at `config`.
fn open(config: &Path) -> anyhow::Result<redb::Database> {
    let config = Config::load(config).map_err(|errors| anyhow::anyhow!("{errors}"))?;
    let path = config.storage.dir.path.join("callhook.redb");
    redb::Database::open(&path).with_context(|| {
        format!(
            "while opening {} (is callhook still running? stop it first)",
            path.display()
        )
    })
}

/// `deliveries list`: prints the selected deliveries with their last outcomes.
pub fn list(config: &Path, selection: &Selection, history: bool) -> anyhow::Result<()> {
    let db = open(config)?;
    let deliveries = list_deliveries(&db, &selection.filter())?;
    print!("{}", render_deliveries(&deliveries, history));
    Ok(())
}

/// `deliveries retry`: schedules the given delivery, or every selected one, for another
/// attempt at the host's next start.
pub fn retry(config: &Path, id: Option<u64>, selection: &Selection) -> anyhow::Result<()> {
    let db = open(config)?;
    let ids: Vec<u64> = match id {
        Some(id) => vec![id],
        None => {
            anyhow::ensure!(
                selection.failed || selection.plugin.is_some() || selection.since.is_some(),
                "name a delivery id, or select deliveries with --failed, --plugin or --since"
            );
            list_deliveries(&db, &selection.filter())?
                .into_iter()
                .map(|delivery| delivery.id)
                .collect()
        }
    };
    let retried = retry_deliveries(&db, &ids, jiff::Timestamp::now())?;
    if let Some(id) = id {
        anyhow::ensure!(!retried.is_empty(), "there is no delivery {id}");
    }
    println!(
        "{} deliveries will be attempted again when callhook starts",
        retried.len()
    );
    Ok(())
}

/// `deliveries enable-plugin`: lets a plugin that was disabled (its receiver answered 410)
/// receive deliveries again from the host's next start.
pub fn enable(config: &Path, plugin: &str) -> anyhow::Result<()> {
    let db = open(config)?;
    enable_plugin(&db, plugin)?;
    println!("plugin {plugin} receives deliveries again when callhook starts");
    Ok(())
}
