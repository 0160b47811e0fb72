//! Hot reload: the configuration is read again on SIGHUP and whenever one of its files changes
//! (the configuration file, the legacy ini it names, a plugin's `.wasm` file), and its plugins
//! and routes are put in force while the host runs.
//!
//! A reload is all or nothing: the new configuration must load and validate, and every plugin
//! in it must load (readable, right contract version, compiles), before anything changes. Then
//! the queue switches routing, policies and plugin instances at once
//! ([`Queue::reconfigure`](crate::queue::Queue::reconfigure)); events already queued stay
//! queued and go to the new instances; attempts already running finish with the old ones. A
//! configuration that does not load is rejected with its errors, and the one in force stays.
//!
//! The PBX connection, the engine settings, the HTTP server, storage and recordings are read at
//! start only: a change there is reported as needing a restart and otherwise ignored.

use super::plugins::{DeliveryQueue, Plugins, describe, load_plugins};
use crate::config::{Config, ConfigDiff, PluginSource, ProcessEnv};
use crate::runtime::PluginRuntime;
use notify::{EventKind, RecommendedWatcher, RecursiveMode, Watcher};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::signal::unix::Signal;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// A change to a file is acted on once the file has been quiet this long (an editor or a copy
/// writes in several steps).
const SETTLE: Duration = Duration::from_millis(300);

/// The configuration in force, and what it needs to load a new one.
pub struct Reloader {
    current: Config,
    runtime: PluginRuntime,
    queue: Arc<DeliveryQueue>,
}

impl Reloader {
    /// A reloader for `queue`, which runs with `current`'s plugins and routes; new plugins are
    /// loaded into `runtime`.
    pub fn new(current: Config, runtime: PluginRuntime, queue: Arc<DeliveryQueue>) -> Self {
        Reloader {
            current,
            runtime,
            queue,
        }
    }

    /// Reads the configuration file again and, if it and all its plugins load, puts its
    /// plugins and routes in force. Every plugin is loaded anew, so a `.wasm` file replaced
    /// under the same path takes effect. On error nothing changes.
    pub fn reload(&mut self) -> anyhow::Result<ConfigDiff> {
        let (new, diff) = self
            .current
            .reload(&self.current.file, &ProcessEnv)
            .map_err(|errors| anyhow::anyhow!("{errors}"))?;
        crate::config::check(&new).map_err(|errors| anyhow::anyhow!("{errors}"))?;
        let plugins = load_plugins(&self.runtime, &new)?;
        let lines: Vec<String> = plugins.iter().map(describe).collect();
        self.queue.reconfigure(new.queue(), Plugins::new(plugins));
        for line in lines {
            println!("{line}");
        }
        self.current = new;
        Ok(diff)
    }

    /// The files whose change triggers a reload.
    pub fn watched_files(&self) -> BTreeSet<PathBuf> {
        let config = &self.current;
        let mut files: BTreeSet<PathBuf> = [config.file.clone()].into();
        files.extend(config.legacy_ini.clone());
        for plugin in &config.plugins {
            if let PluginSource::File(file) = &plugin.source {
                files.insert(file.path.clone());
            }
            files.extend(plugin.ca_file.clone());
        }
        files
            .into_iter()
            .map(|file| std::path::absolute(&file).unwrap_or(file))
            .collect()
    }

    /// Reloads, and reports what happened on the console: what changed, what needs a restart,
    /// deliveries left waiting for a removed plugin, or why the new configuration was rejected.
    pub fn reload_and_report(&mut self, why: &str) {
        let file = self.current.file.display().to_string();
        match self.reload() {
            Ok(diff) => self.report(&file, why, &diff),
            Err(error) => {
                eprintln!(
                    "configuration {file} rejected ({why}); the previous one stays in force:\n{error:#}"
                );
                tracing::error!(
                    file,
                    why,
                    "configuration rejected; the previous one stays in force"
                );
            }
        }
    }

    fn report(&self, file: &str, why: &str, diff: &ConfigDiff) {
        let mut changes = Vec::new();
        let list = |names: &[String]| names.join(", ");
        if !diff.plugins_added.is_empty() {
            changes.push(format!("plugins added: {}", list(&diff.plugins_added)));
        }
        if !diff.plugins_removed.is_empty() {
            changes.push(format!("plugins removed: {}", list(&diff.plugins_removed)));
        }
        if !diff.plugins_changed.is_empty() {
            changes.push(format!("plugins changed: {}", list(&diff.plugins_changed)));
        }
        if diff.routes_changed {
            changes.push("routes changed".to_string());
        }
        let summary = if changes.is_empty() {
            "plugins loaded again, nothing else changed".to_string()
        } else {
            changes.join("; ")
        };
        println!("configuration {file} reloaded ({why}): {summary}");
        tracing::info!(file, why, summary, "configuration reloaded");
        let mut restart: Vec<&str> = diff.needs_restart.clone();
        if diff.engine_changed {
            restart.push("engine");
        }
        if !restart.is_empty() {
            println!(
                "changes to [{}] take effect after a restart",
                restart.join("], [")
            );
        }
        let stats = self.queue.stats();
        for name in &diff.plugins_removed {
            let waiting = stats.plugins.get(name).map_or(0, |p| p.pending);
            if waiting > 0 {
                println!(
                    "{waiting} deliveries for the removed plugin {name} wait until it is configured again"
                );
            }
        }
    }
}

/// Takes over SIGHUP (whose default ends the process), for [`spawn`]. Call it first thing,
/// so a SIGHUP while the host starts (a service manager's reload) is kept, not fatal.
pub fn listen_for_hangup() -> Option<Signal> {
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(signal) => Some(signal),
        Err(error) => {
            tracing::warn!(%error, "cannot listen for SIGHUP; reload by file change only");
            None
        }
    }
}

/// Reloads on `hangup` (from [`listen_for_hangup`]) and when a watched file changes, until
/// `cancel`. The file watch is in place when this returns.
pub fn spawn(
    mut reloader: Reloader,
    mut hangup: Option<Signal>,
    cancel: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    let (changed_tx, mut changed) = watch::channel(0u64);
    let mut watcher = FileWatcher::start(reloader.watched_files(), changed_tx.clone());
    tokio::spawn(async move {
        loop {
            let why = tokio::select! {
                _ = cancel.cancelled() => return,
                Some(()) = async { hangup.as_mut()?.recv().await } => "SIGHUP",
                Ok(()) = changed.changed() => {
                    settle(&mut changed).await;
                    "file changed"
                }
            };
            // Loading plugins compiles them: off the async workers.
            let done = tokio::task::spawn_blocking(move || {
                reloader.reload_and_report(why);
                reloader
            });
            reloader = match done.await {
                Ok(reloader) => reloader,
                Err(error) => {
                    tracing::error!(%error, "the reload failed; reload is off until a restart");
                    return;
                }
            };
            let files = reloader.watched_files();
            if watcher.files != files {
                watcher = FileWatcher::start(files, changed_tx.clone());
            }
        }
    })
}

/// Waits until no change has been seen for [`SETTLE`].
async fn settle(changed: &mut watch::Receiver<u64>) {
    while let Ok(Ok(())) = tokio::time::timeout(SETTLE, changed.changed()).await {}
}

/// Watches the folders of a set of files and counts changes to those files.
struct FileWatcher {
    files: BTreeSet<PathBuf>,
    _watcher: Option<RecommendedWatcher>,
}

impl FileWatcher {
    /// Watches `files` (absolute paths). Their folders are watched rather than the files, so a
    /// file replaced by a rename (as editors save) is still seen.
    fn start(files: BTreeSet<PathBuf>, changed: watch::Sender<u64>) -> FileWatcher {
        let watched = files.clone();
        let watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
            let Ok(event) = event else { return };
            let writes = matches!(
                event.kind,
                EventKind::Create(_) | EventKind::Modify(_) | EventKind::Remove(_)
            );
            if writes && event.paths.iter().any(|path| watched.contains(path)) {
                changed.send_modify(|n| *n = n.wrapping_add(1));
            }
        })
        .and_then(|mut watcher| {
            let folders: BTreeSet<&Path> = files.iter().filter_map(|f| f.parent()).collect();
            for folder in folders {
                watcher.watch(folder, RecursiveMode::NonRecursive)?;
            }
            Ok(watcher)
        });
        let watcher = match watcher {
            Ok(watcher) => Some(watcher),
            Err(error) => {
                tracing::warn!(%error, "cannot watch the configuration files; reload with SIGHUP");
                None
            }
        };
        FileWatcher {
            files,
            _watcher: watcher,
        }
    }
}
