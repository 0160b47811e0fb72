//! [`Host`]: the one place a running host is assembled from a validated [`Config`].
//!
//! `callhook run`, `callhook demo` (through [`LocalHost`](super::local::LocalHost)), the
//! end-to-end tests and the benchmarks all start a host here; `check-config` loads the plugins
//! with [`Host::check`]; a reload loads them with the same functions
//! ([`super::plugins`]). In order, [`Host::start`]:
//! 1. opens the storage directory and its database ([`super::storage`]);
//! 2. builds the plugin runtime on it and loads every configured plugin;
//! 3. opens the durable queue over them (which schedules what a previous run left pending);
//! 4. builds the connector (with its capture, when asked) and restores the engine's call state;
//! 5. binds the public HTTP server (a port in use stops the start here, before any connection);
//! 6. starts the refresh of the PBX's user list (for `user-info`) and the recorder when
//!    recordings are enabled (its MP3s are what `recording-file` reads);
//! 7. starts the reloader when asked (its file watch in place before any connection);
//! 8. starts the pipeline: connector, derivation, inbound rules, resumed recording jobs;
//! 9. serves the admin socket when asked, then the operator console on its own listener (one
//!    that cannot listen is said in the summary: the host runs without it), then the HTTP
//!    server.
//!
//! Each component gets its configuration from the [`Config`] itself (`config.connector()`,
//! `config.queue()`, `config.recordings`, ...), so every default lives in the component's own
//! type. The host prints nothing: what `run` shows at start is [`Host::summary`].

use super::observe::{self, Observed};
use super::pipeline::Pipeline;
use super::plugins::{self, DeliveryQueue, Plugins, describe, load_plugins};
use super::record::start_recorder;
use super::reload::{self, Reloader};
use super::{EngineStore, admin, storage};
use crate::calls::{Engine, EngineConfig};
use crate::config::Config;
use crate::console;
use crate::pbx::{CaptureWriter, ConnectionState, Connector};
use crate::queue::Queue;
use crate::runtime::{HostServices, RecordingFiles, RuntimeConfig};
use crate::server::HttpServer;
use anyhow::Context;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::signal::unix::Signal;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// What differs between the ways a host runs; [`Default`] is a host with neither admin socket
/// nor reload nor capture (the demo's, the tests').
#[derive(Default)]
pub struct HostOptions {
    /// Records every frame and reply of the PBX here (`run --capture`).
    pub capture: Option<CaptureWriter>,
    /// Serves the admin socket that `callhook deliveries` talks to while the host runs.
    pub admin_socket: bool,
    /// Reloads plugins and routes when the configuration's files change and on SIGHUP.
    pub reload: Reload,
}

/// Whether and how a host reloads its configuration.
#[derive(Default)]
pub enum Reload {
    /// Never: the configuration of the start stays.
    #[default]
    Off,
    /// When a watched file changes, and on `hangup` (taken over by
    /// [`reload::listen_for_hangup`] first thing, so an early SIGHUP is kept, not fatal).
    OnChange {
        /// The SIGHUP stream, when it could be taken over.
        hangup: Option<Signal>,
    },
}

/// A running host.
pub struct Host {
    pipeline: Pipeline,
    queue: Arc<DeliveryQueue>,
    address: SocketAddr,
    summary: Vec<String>,
    /// Stops the HTTP server, the admin socket, the reloader and the retention sweep.
    stop: CancellationToken,
    admin: Option<JoinHandle<()>>,
    console: Option<SocketAddr>,
}

impl Host {
    /// Assembles and starts the host `config` describes (see the module's documentation).
    /// Returns once everything listens; the PBX connection is made in the background.
    pub async fn start(config: Config, options: HostOptions) -> anyhow::Result<Host> {
        let dir = config.storage.dir.path.clone();
        let db = Arc::new(storage::open(&dir)?);
        let runtime = plugins::runtime(
            db.clone(),
            RuntimeConfig {
                cache_dir: Some(dir.join("plugin-cache")),
                services: HostServices {
                    e164: config.pbx.e164.into(),
                    ..HostServices::default()
                },
                ..RuntimeConfig::default()
            },
        )?;
        let services = runtime.services().clone();
        let loaded = load_plugins(&runtime, &config)?;
        let mut summary: Vec<String> = loaded.iter().map(describe).collect();
        let queue = Arc::new(Queue::open(db, config.queue(), Plugins::new(loaded))?);
        let connector = Connector::new(config.connector(), options.capture)?;
        let store = EngineStore::of(&queue);
        let engine = restore_engine(config.engine(), &store);
        let listen = config.server.listen;
        let config_admin = config.admin.clone();
        let config_recordings = config.recordings.enabled;
        let server = HttpServer::bind(listen, config.server_tls().as_ref())
            .await
            .with_context(|| format!("while opening the HTTP server on {listen}"))?;
        let address = server.local_addr()?;
        let stop = CancellationToken::new();
        tokio::spawn(crate::pbx::users::refresh(
            connector.rest(),
            services.users.clone(),
            stop.clone(),
        ));
        let recorder = if config.recordings.enabled {
            let recordings = config.recordings.clone();
            let recorder = start_recorder(&recordings, Arc::new(connector.rest()), stop.clone())?;
            // `recording-file` (contract 0.2) reads the MP3s this recorder serves.
            let _ = services.recordings.set(RecordingFiles::new(
                recorder.store().clone(),
                recorder.links().clone(),
            ));
            summary.push(format!(
                "recordings served as {}/webapi/recording/... (links {})",
                recordings.public_url.trim_end_matches('/'),
                if recordings.sign_links {
                    "signed"
                } else {
                    "unsigned"
                }
            ));
            Some(recorder)
        } else {
            None
        };
        let mut router = axum::Router::new();
        if let Some(recorder) = &recorder {
            router = router.merge(recorder.router());
        }
        // The file watch is in place before the connector starts: a change made once the PBX
        // is connected is always seen.
        if let Reload::OnChange { hangup } = options.reload {
            let reloader = Reloader::new(config, runtime, queue.clone());
            let watched: Vec<String> = reloader
                .watched_files()
                .iter()
                .map(|file| file.display().to_string())
                .collect();
            reload::spawn(reloader, hangup, stop.clone());
            summary.push(format!(
                "plugins and routes reload on SIGHUP and when these change: {}",
                watched.join(", ")
            ));
        }
        let pipeline = Pipeline::start(connector, engine, queue.clone(), Some(store), recorder);
        tokio::spawn(storage::watch_free_space(
            dir.clone(),
            pipeline.observed().storage,
            stop.clone(),
        ));
        let admin = if options.admin_socket {
            match admin::serve(queue.clone(), &dir, stop.clone()) {
                Ok(task) => Some(task),
                Err(error) => {
                    summary.push(format!(
                        "cannot open the admin socket {} ({error}); `callhook deliveries` \
                         works only while callhook is stopped",
                        admin::socket_path(&dir).display()
                    ));
                    None
                }
            }
        } else {
            None
        };
        let console = console::start(
            &config_admin,
            console::Sources {
                observed: pipeline.observed(),
                live: pipeline.live(),
                recordings: config_recordings.then(|| EngineStore::of(&queue)),
            },
            stop.clone(),
        )
        .await;
        let console = match console {
            Ok(address) => {
                summary.push(format!(
                    "operator console on http://{address}/ ({})",
                    if config_admin.token.is_some() {
                        "token required"
                    } else {
                        "this machine only"
                    }
                ));
                Some(address)
            }
            Err(error) => {
                summary.push(format!(
                    "no operator console: {error} (set another [admin] listen)"
                ));
                None
            }
        };
        let router = router.merge(observe::router(pipeline.observed()));
        tokio::spawn(server.run(router, stop.clone().cancelled_owned()));
        summary.push(format!("HTTP server on {address}: /metrics, /healthz"));
        Ok(Host {
            pipeline,
            queue,
            address,
            summary,
            stop,
            admin,
            console,
        })
    }

    /// Loads every plugin of `config` as [`Host::start`] would, on a temporary database, and
    /// describes each: what `check-config` shows. Connects nowhere, touches no storage.
    pub fn check(config: &Config) -> anyhow::Result<Vec<String>> {
        let scratch = tempfile::tempdir().context("while creating a scratch directory")?;
        let db = redb::Database::create(scratch.path().join("check.redb"))
            .context("while creating a scratch database")?;
        let runtime = plugins::runtime(Arc::new(db), RuntimeConfig::default())?;
        let plugins = load_plugins(&runtime, config)?;
        Ok(plugins.iter().map(describe).collect())
    }

    /// What the start did, one line each: the plugins and what they may do, where recordings
    /// and metrics are served, what reloads; a problem that did not stop the start.
    pub fn summary(&self) -> &[String] {
        &self.summary
    }

    /// Where the HTTP server (recordings, `/metrics`, `/healthz`) listens.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Where the operator console listens, when it could.
    pub fn console_address(&self) -> Option<SocketAddr> {
        self.console
    }

    /// The PBX connection's state, as it changes.
    pub fn connection(&self) -> watch::Receiver<ConnectionState> {
        self.pipeline.observed().connection
    }

    /// What `/metrics` and `/healthz` read: the counters of every component.
    pub fn observed(&self) -> Observed {
        self.pipeline.observed()
    }

    /// The durable queue.
    pub fn queue(&self) -> &Arc<DeliveryQueue> {
        &self.queue
    }

    /// Resolves when the connector or the derivation task panicked; the host should then be
    /// stopped, and [`Host::stop`] reports the panic.
    pub fn task_failed(&self) -> impl Future<Output = ()> + Send + 'static {
        self.pipeline.task_failed()
    }

    /// Stops the pipeline (deliveries in progress get their grace; see
    /// [`Pipeline::shutdown`]), then the HTTP server, the admin socket and the reloader.
    /// Reports the connector's error or a task's panic.
    pub async fn stop(self) -> anyhow::Result<()> {
        let stopped = self.pipeline.shutdown().await;
        self.stop.cancel();
        if let Some(admin) = self.admin {
            let _ = admin.await;
        }
        stopped
    }
}

/// The engine with the call state a previous run saved, or a fresh one when there is none or
/// it cannot be read (said in the log: calls in progress then start over).
fn restore_engine(config: EngineConfig, store: &EngineStore) -> Engine {
    match store.load() {
        Ok(Some(state)) => Engine::restore(config, state),
        Ok(None) => Engine::new(config),
        Err(error) => {
            tracing::error!(%error, "starting without the saved call state");
            Engine::new(config)
        }
    }
}
