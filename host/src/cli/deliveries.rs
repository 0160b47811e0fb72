//! `callhook deliveries`: inspect and replay the durable queue.
//!
//! While the host runs, the commands ask it through its admin socket ([`crate::app::admin`])
//! and take effect at once. While it is stopped, they open the database themselves (redb lets
//! one process open it) and the host picks up what they changed at its next start.

use crate::app::admin::{self, Request, Response};
use crate::config::Config;
use crate::queue::cli_format::render_deliveries;
use crate::queue::replay::{DeliveryFilter, enable_plugin, list_deliveries, retry_deliveries};
use crate::text::escape_controls;
use anyhow::Context;
use std::path::{Path, PathBuf};

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

    fn is_narrowed(&self) -> bool {
        self.failed || self.plugin.is_some() || self.since.is_some()
    }
}

/// The storage directory of the configuration at `config`.
fn storage(config: &Path) -> anyhow::Result<PathBuf> {
    let config = Config::load(config).map_err(|errors| anyhow::anyhow!("{errors}"))?;
    Ok(config.storage.dir.path)
}

/// Asks the running host, if one serves `storage`; prints its answer. `false` when no host
/// runs.
///
/// The host renders receivers' texts escaped already; its answer is escaped once more line by
/// line ([`printable`]), so that whatever a host sends, no control character reaches the
/// terminal.
async fn ask_host(storage: &Path, request: Request) -> anyhow::Result<bool> {
    let socket = admin::socket_path(storage);
    let answer = admin::send(&socket, &request)
        .await
        .with_context(|| format!("while asking the running callhook at {}", socket.display()))?;
    match answer {
        None => Ok(false),
        Some(Response::Done(text)) => {
            print!("{}", printable(&text));
            Ok(true)
        }
        Some(Response::Failed(why)) => Err(anyhow::anyhow!("{}", escape_controls(&why))),
    }
}

/// `text` with its line breaks kept and every other control character escaped.
fn printable(text: &str) -> String {
    text.split_inclusive('\n')
        .map(|line| match line.strip_suffix('\n') {
            Some(line) => format!("{}\n", escape_controls(line)),
            None => escape_controls(line).into_owned(),
        })
        .collect()
}

/// Opens the queue's database in `storage`, for a host that is stopped.
fn open(storage: &Path) -> anyhow::Result<redb::Database> {
    let path = storage.join("callhook.redb");
    redb::Database::open(&path).with_context(|| format!("while opening {}", path.display()))
}

/// `deliveries list`: prints the selected deliveries with their last outcomes.
pub async fn list(config: &Path, selection: &Selection, history: bool) -> anyhow::Result<()> {
    let storage = storage(config)?;
    let filter = selection.filter();
    if ask_host(
        &storage,
        Request::List {
            filter: filter.clone(),
            history,
        },
    )
    .await?
    {
        return Ok(());
    }
    let deliveries = list_deliveries(&open(&storage)?, &filter)?;
    print!("{}", render_deliveries(&deliveries, history));
    Ok(())
}

/// `deliveries retry`: the given delivery, or every selected one, is attempted again: at once
/// by a running host, else at the host's next start.
pub async fn retry(config: &Path, id: Option<u64>, selection: &Selection) -> anyhow::Result<()> {
    anyhow::ensure!(
        id.is_some() || selection.is_narrowed(),
        "name a delivery id, or select deliveries with --failed, --plugin or --since"
    );
    let storage = storage(config)?;
    let filter = selection.filter();
    if ask_host(
        &storage,
        Request::Retry {
            id,
            filter: filter.clone(),
        },
    )
    .await?
    {
        return Ok(());
    }
    let db = open(&storage)?;
    let ids: Vec<u64> = match id {
        Some(id) => vec![id],
        None => list_deliveries(&db, &filter)?
            .into_iter()
            .map(|delivery| delivery.id)
            .collect(),
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
/// receive deliveries again: at once in a running host, else from its next start.
pub async fn enable(config: &Path, plugin: &str) -> anyhow::Result<()> {
    let storage = storage(config)?;
    let request = Request::EnablePlugin {
        plugin: plugin.to_string(),
    };
    if ask_host(&storage, request).await? {
        return Ok(());
    }
    enable_plugin(&open(&storage)?, plugin)?;
    println!("plugin {plugin} receives deliveries again when callhook starts");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printable_keeps_lines_and_escapes_the_rest() {
        for (text, expected) in [
            ("ID  STATUS\n7   parked\n", "ID  STATUS\n7   parked\n"),
            ("a\r\n\x1b[2Jb\n", "a\\r\n\\u{1b}[2Jb\n"),
            ("no newline\x07", "no newline\\u{7}"),
            ("", ""),
        ] {
            assert_eq!(printable(text), expected, "{text:?}");
        }
    }
}
