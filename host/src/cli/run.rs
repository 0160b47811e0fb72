//! `callhook run` and `callhook check-config`: the configured host, and its dry run.

use crate::app::admin;
use crate::app::configured::{describe, load_plugin, load_plugins, queue_config};
use crate::app::reload::{self, Reloader};
use crate::app::{EngineStore, Pipeline, Plugins};
use crate::calls::Engine;
use crate::config::{Config, RecordingSource};
use crate::pbx::probe::probe;
use crate::pbx::{CaptureWriter, ConnectionState, Connector, ConnectorConfig};
use crate::queue::Queue;
use crate::recordings::{RecordingServer, RecordingsConfig, SourceKind, TlsFiles};
use crate::runtime::{KvQuota, KvStore, PluginRuntime, RecordingFiles, RuntimeConfig};
use anyhow::Context;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// Loads the configuration, or an error listing every problem with its place.
fn load(path: &Path) -> anyhow::Result<Config> {
    Config::load(path).map_err(|errors| anyhow::anyhow!("{errors}"))
}

/// The plugin runtime on the configured storage, with its database.
fn runtime(config: &Config) -> anyhow::Result<(Arc<redb::Database>, PluginRuntime)> {
    let dir = &config.storage.dir.path;
    let db = Arc::new(open_storage(dir)?);
    let runtime = PluginRuntime::new(
        RuntimeConfig {
            cache_dir: Some(dir.join("plugin-cache")),
            services: crate::runtime::HostServices {
                e164: config.pbx.e164,
                ..Default::default()
            },
            ..RuntimeConfig::default()
        },
        KvStore::new(db.clone(), KvQuota::default()),
    )?;
    Ok((db, runtime))
}

/// Opens the database `callhook.redb` in the storage directory `dir`, creating both as
/// needed, owner-only: the database holds callers' numbers, plugins' stored data (their
/// tokens, often) and signed links to recordings. A new directory gets mode 0700 and a new database 0600; an existing directory or
/// database that others may read is tightened to that, and the command says so.
fn open_storage(dir: &Path) -> anyhow::Result<redb::Database> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("while creating the storage directory {}", dir.display()))?;
    owner_only(dir, 0o700).with_context(|| {
        format!(
            "while making the storage directory {} owner-only",
            dir.display()
        )
    })?;
    let path = dir.join("callhook.redb");
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("while creating the database {}", path.display()))?;
    owner_only(&path, 0o600)
        .with_context(|| format!("while making the database {} owner-only", path.display()))?;
    // An empty file is where redb initialises a new database.
    redb::Database::create(&path)
        .with_context(|| format!("while opening the database {}", path.display()))
}

/// Removes the group's and others' permissions from `path` (to `mode` at most), saying so when
/// there were any.
fn owner_only(path: &Path, mode: u32) -> std::io::Result<()> {
    let current = std::fs::metadata(path)?.permissions().mode() & 0o7777;
    if current & !mode == 0 {
        return Ok(());
    }
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(current & mode))?;
    println!(
        "{} was mode {current:o}; made it owner-only ({:o})",
        path.display(),
        current & mode
    );
    Ok(())
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
    let storage = tempfile::tempdir()?;
    let db = redb::Database::create(storage.path().join("check.redb"))?;
    let runtime = PluginRuntime::new(
        RuntimeConfig::default(),
        KvStore::new(Arc::new(db), KvQuota::default()),
    )?;
    for plugin in &config.plugins {
        println!("ok  {}", describe(&load_plugin(&runtime, plugin)?));
    }
    println!("{} is valid", path.display());
    if online {
        check_pbx_access(&config).await?;
    }
    Ok(())
}

/// `check-config --online`: logs in and says which of the PBX's APIs the client may use.
async fn check_pbx_access(config: &Config) -> anyhow::Result<()> {
    let connector = Connector::new(connector_config(config), None)?;
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

/// The connector's settings out of the validated configuration.
fn connector_config(config: &Config) -> ConnectorConfig {
    let pbx = &config.pbx;
    let mut connector_config = ConnectorConfig::new(
        pbx.url.clone(),
        pbx.client_id.clone(),
        pbx.client_secret.expose(),
    );
    connector_config.ca_file = pbx.ca_file.as_ref().map(|file| file.path.clone());
    connector_config.resnapshot_interval = pbx.resnapshot_interval;
    connector_config
}

/// `callhook run`: connects to the PBX and delivers events until SIGTERM or Ctrl-C.
pub async fn run(path: &Path, capture: Option<PathBuf>) -> anyhow::Result<()> {
    let hangup = reload::listen_for_hangup();
    let config = load(path)?;
    for line in crate::config::warnings(&config) {
        eprintln!("warning  {line}");
    }
    let (db, runtime) = runtime(&config)?;
    let plugins = load_plugins(&runtime, &config)?;
    for plugin in &plugins {
        println!("{}", describe(plugin));
    }
    let queue = Queue::open(db, queue_config(&config), Plugins::new(plugins))?;
    let capture = match capture {
        Some(file) => Some(
            CaptureWriter::create(&file)
                .with_context(|| format!("while creating the capture file {}", file.display()))?,
        ),
        None => None,
    };
    let pbx = &config.pbx;
    let connector = Connector::new(connector_config(&config), capture)?;
    report_connection(connector.state(), pbx);
    let users = CancellationToken::new();
    let _stop_users = users.clone().drop_guard();
    tokio::spawn(crate::pbx::users::refresh(
        connector.rest(),
        runtime.services().users.clone(),
        users,
    ));

    let engine_config = config.engine.engine_config();
    let store = EngineStore::of(&queue);
    let engine = match store.load() {
        Ok(Some(state)) => Engine::restore(engine_config, state),
        Ok(None) => Engine::new(engine_config),
        Err(error) => {
            tracing::error!(%error, "starting without the saved call state");
            Engine::new(engine_config)
        }
    };
    let server = RecordingServer::bind(config.server.listen, tls_files(&config).as_ref())
        .await
        .with_context(|| format!("while opening the HTTP server on {}", config.server.listen))?;
    let address = server.local_addr()?;
    let stop_server = CancellationToken::new();
    let recorder = if config.recordings.enabled {
        let recordings = recordings_config(&config);
        let recorder = crate::app::start_recorder(
            &recordings,
            Arc::new(connector.rest()),
            stop_server.clone(),
        )?;
        let files = RecordingFiles::new(recorder.store().clone(), recorder.links().clone());
        let _ = runtime.services().recordings.set(files);
        println!(
            "recordings served as {}/webapi/recording/... (links {})",
            recordings.public_url.trim_end_matches('/'),
            if recordings.sign_links {
                "signed"
            } else {
                "unsigned"
            }
        );
        Some(recorder)
    } else {
        None
    };
    let mut router = axum::Router::new();
    if let Some(recorder) = &recorder {
        router = router.merge(recorder.router());
    }
    let queue = Arc::new(queue);
    let pipeline = Pipeline::start(connector, engine, queue.clone(), Some(store), recorder);
    let socket = admin::socket_path(&config.storage.dir.path);
    let admin = match admin::serve(queue.clone(), &config.storage.dir.path, stop_server.clone()) {
        Ok(task) => Some(task),
        Err(error) => {
            eprintln!(
                "cannot open the admin socket {} ({error}); `callhook deliveries` works only \
                 while callhook is stopped",
                socket.display()
            );
            None
        }
    };
    let reloader = Reloader::new(config, runtime, queue);
    let watched = reloader.watched_files();
    reload::spawn(reloader, hangup, stop_server.clone());
    println!(
        "plugins and routes reload on SIGHUP and when these change: {}",
        watched
            .iter()
            .map(|file| file.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    let router = router.merge(crate::app::observe::router(pipeline.observed()));
    let stop = stop_server.clone();
    tokio::spawn(server.run(router, async move { stop.cancelled().await }));
    println!("HTTP server on {address}: /metrics, /healthz");
    // A panicking connector or derivation task stops the host with an error (exit code 1), so
    // the service manager starts it afresh; `shutdown` reports which task and why.
    tokio::select! {
        () = shutdown_signal() => println!("stopping"),
        () = pipeline.task_failed() => println!("stopping after a task of the pipeline failed"),
    }
    let stopped = pipeline.shutdown().await;
    stop_server.cancel();
    if let Some(admin) = admin {
        let _ = admin.await;
    }
    stopped
}

/// The configured certificate and key, in the server's terms.
fn tls_files(config: &Config) -> Option<TlsFiles> {
    config.server.tls.as_ref().map(|tls| TlsFiles {
        cert: tls.cert.path.clone(),
        key: tls.key.path.clone(),
    })
}

/// The recordings settings of the configuration, in the recorder's terms.
fn recordings_config(config: &Config) -> RecordingsConfig {
    let recordings = &config.recordings;
    let defaults = RecordingsConfig::default();
    RecordingsConfig {
        enabled: recordings.enabled,
        source: match recordings.source {
            RecordingSource::Xapi => SourceKind::Xapi,
            RecordingSource::Folder => SourceKind::Folder,
        },
        folder: recordings
            .folder
            .as_ref()
            .map_or(defaults.folder, |folder| folder.path.clone()),
        folder_time_zone: config.engine.time_zone.clone(),
        mp3_dir: recordings.mp3_dir.path.clone(),
        bitrate_kbps: recordings.mp3_bitrate,
        keep_days: recordings.keep_days.unwrap_or(0),
        public_url: config
            .server
            .public_url
            .as_ref()
            .map(|url| url.to_string())
            .unwrap_or_default(),
        listen: config.server.listen,
        tls: tls_files(config),
        sign_links: recordings.sign_links,
        retry_for: std::time::Duration::from_secs(u64::from(recordings.retry_hours) * 3600),
        ..defaults
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn a_new_storage_directory_and_database_are_owner_only() {
        let parent = tempfile::tempdir().unwrap();
        let dir = parent.path().join("state/callhook");
        drop(open_storage(&dir).unwrap());
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&dir.join("callhook.redb")), 0o600);
    }

    #[test]
    fn an_existing_storage_directory_and_database_are_made_owner_only() {
        let parent = tempfile::tempdir().unwrap();
        let dir = parent.path().join("state");
        std::fs::create_dir(&dir).unwrap();
        let path = dir.join("callhook.redb");
        drop(redb::Database::create(&path).unwrap());
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        drop(open_storage(&dir).unwrap());
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&path), 0o600);
    }

    #[test]
    fn an_owner_only_storage_keeps_its_stricter_modes() {
        let parent = tempfile::tempdir().unwrap();
        let dir = parent.path().join("state");
        drop(open_storage(&dir).unwrap());
        let path = dir.join("callhook.redb");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o400)).unwrap();
        owner_only(&path, 0o600).unwrap();
        assert_eq!(mode(&path), 0o400);
    }
}
