//! A whole host wired to a 3CX simulator in this process, delivering with the built-in
//! generic-webhook plugin to one receiver: what `callhook demo` runs, and what the pipeline
//! tests and benchmarks drive.
//!
//! It is a [`Host`] like `callhook run`'s, started from a `callhook.toml` written into a
//! temporary directory (which also holds the storage, removed when the host stops), so the
//! demo and the tests go through the same validation, defaults and assembly as production.

use super::{Host, HostOptions, Observed};
use anyhow::Context;
use callhook_simulator::SimHandle;
use std::fmt::Write;
use std::time::Duration;

/// How the local host is set up.
#[derive(Debug, Clone)]
pub struct LocalSetup {
    /// The one plugin every call goes to.
    pub plugin: LocalPlugin,
    /// Whether recordings are fetched, converted, served (on a free port of 127.0.0.1, see
    /// [`LocalHost::recordings_base`]) and delivered as `recording` events.
    pub recordings: bool,
    /// The engine's grace period.
    pub grace: Duration,
    /// The operator console's token (`[admin] token`); `None` for a console without one. The
    /// console listens on a free port of 127.0.0.1 ([`LocalHost::console_address`]).
    pub admin_token: Option<String>,
    /// `[pbx] country`, the region numbers are normalised to E.164 in.
    pub country: Option<String>,
}

impl LocalSetup {
    /// The generic-webhook plugin sending to `webhook_url` and allowed only `receiver` (an
    /// origin such as `http://127.0.0.1:8080`); recordings off, a grace period of 2 s, no
    /// console token, no country.
    pub fn webhook(receiver: impl Into<String>, webhook_url: impl Into<String>) -> LocalSetup {
        LocalSetup {
            plugin: LocalPlugin::GenericWebhook {
                receiver: receiver.into(),
                webhook_url: webhook_url.into(),
                recordings_url: None,
            },
            recordings: false,
            grace: Duration::from_secs(2),
            admin_token: None,
            country: None,
        }
    }
}

/// The plugin of a local host.
#[derive(Debug, Clone)]
pub enum LocalPlugin {
    /// The generic-webhook plugin.
    GenericWebhook {
        /// The receiver's origin, e.g. `http://127.0.0.1:8080`: the plugin may reach only it.
        receiver: String,
        /// Where the webhooks go (`webhook_url`).
        webhook_url: String,
        /// Where recordings are posted (`webhook_post_url`), when [`LocalSetup::recordings`]
        /// is on.
        recordings_url: Option<String>,
    },
    /// A plugin by name, every event routed to it: a built-in one, e.g. `hubspot` pointed at a
    /// CRM stand-in (it may reach the origins of its URL settings, as configured by default),
    /// or one loaded from a file, with `path` (and `allowed_hosts`) among its `keys`.
    Named {
        /// Its name.
        name: String,
        /// Its `[plugin.settings]`; dotted keys such as `users.120` are table entries.
        settings: Vec<(String, String)>,
        /// Its `[plugin.secrets]`.
        secrets: Vec<(String, String)>,
        /// Other keys of its `[[plugin]]` table, each value written as TOML as it is, e.g.
        /// `("concurrency", "8")`, `("rate_per_second", "50.0")`; empty keeps the plugin's
        /// defaults.
        keys: Vec<(String, String)>,
    },
}

/// The running local host.
pub struct LocalHost {
    host: Host,
    recordings_base: Option<String>,
    dir: tempfile::TempDir,
}

impl LocalHost {
    /// Starts the host against `simulator` and waits for its first snapshot.
    pub async fn start(simulator: &SimHandle, setup: LocalSetup) -> anyhow::Result<LocalHost> {
        let dir = tempfile::tempdir().context("while creating the host's directory")?;
        // The recording links must name the server's port before it listens: take a free one.
        let port = match setup.recordings {
            true => std::net::TcpListener::bind("127.0.0.1:0")?
                .local_addr()?
                .port(),
            false => 0,
        };
        let recordings_base = setup.recordings.then(|| format!("http://127.0.0.1:{port}"));
        let file = dir.path().join("callhook.toml");
        let toml = local_config(
            simulator,
            &setup,
            dir.path(),
            port,
            recordings_base.as_deref(),
        );
        std::fs::write(&file, toml).context("while writing the host's configuration")?;
        let host = start_host(simulator, &file).await?;
        Ok(LocalHost {
            host,
            recordings_base,
            dir,
        })
    }

    /// Stops the host and starts it again from the same configuration and storage, as a
    /// service restart would; waits for its first snapshot.
    pub async fn restart(self, simulator: &SimHandle) -> anyhow::Result<LocalHost> {
        let LocalHost {
            host,
            recordings_base,
            dir,
        } = self;
        host.stop().await?;
        // `Host::stop` cancels some background tasks (server, users refresh, free-space watch)
        // without waiting for them, and they may hold the storage a little longer: the new
        // host waits for the database's lock, a few seconds at most.
        let file = dir.path().join("callhook.toml");
        let mut tries = 0;
        let host = loop {
            match start_host(simulator, &file).await {
                Ok(host) => break host,
                Err(error) if tries < 50 && format!("{error:#}").contains("already open") => {
                    tries += 1;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(error) => return Err(error),
            }
        };
        Ok(LocalHost {
            host,
            recordings_base,
            dir,
        })
    }

    /// Where the recordings are served, e.g. `http://127.0.0.1:4321`, when they are on.
    pub fn recordings_base(&self) -> Option<&str> {
        self.recordings_base.as_deref()
    }

    /// The host's counters (connector, queue, events), as `/metrics` shows them.
    pub fn observed(&self) -> Observed {
        self.host.observed()
    }

    /// Where the operator console listens, when it could.
    pub fn console_address(&self) -> Option<std::net::SocketAddr> {
        self.host.console_address()
    }

    /// The durable queue.
    pub fn queue(&self) -> &std::sync::Arc<super::DeliveryQueue> {
        self.host.queue()
    }

    /// Where the HTTP server (`/metrics`, `/healthz`, recordings) listens.
    pub fn address(&self) -> std::net::SocketAddr {
        self.host.address()
    }

    /// The storage directory (queue, call state, plugins' data), inside the temporary
    /// directory.
    pub fn storage_dir(&self) -> std::path::PathBuf {
        self.dir.path().join("state")
    }

    /// Resolves when a task of the pipeline panicked; see [`Host::task_failed`].
    pub fn task_failed(&self) -> impl Future<Output = ()> + Send + 'static {
        self.host.task_failed()
    }

    /// Stops the host: see [`Host::stop`].
    pub async fn stop(self) -> anyhow::Result<()> {
        self.host.stop().await
    }
}

/// Starts a host from `file` and waits for its first snapshot of `simulator`.
async fn start_host(simulator: &SimHandle, file: &std::path::Path) -> anyhow::Result<Host> {
    let config = crate::config::Config::load(file).map_err(|errors| {
        anyhow::anyhow!("the local host's configuration is invalid:\n{errors}")
    })?;
    let snapshots = simulator.snapshots_served();
    let host = Host::start(config, HostOptions::default()).await?;
    simulator.wait_snapshots(snapshots + 1).await;
    Ok(host)
}

/// The `callhook.toml` of a local host: the simulator as PBX (its trunks in `[trunks]`),
/// storage in `dir`, the server on 127.0.0.1 (`port`, 0 for any), the console on any port, the
/// plugin, recordings on when `recordings_base` is given.
fn local_config(
    simulator: &SimHandle,
    setup: &LocalSetup,
    dir: &std::path::Path,
    port: u16,
    recordings_base: Option<&str>,
) -> String {
    let pbx = simulator.config();
    let mut toml = String::new();
    // Every event to the one plugin: without this, they would go to the default
    // generic-webhook, which sends nothing when it has no URL.
    if let LocalPlugin::Named { name, .. } = &setup.plugin {
        let _ = writeln!(toml, "default_plugins = [{}]\n", quoted(name));
    }
    let _ = writeln!(
        toml,
        "[pbx]\nurl = {}\nclient_id = {}\nclient_secret = {}\n",
        quoted(&simulator.base_url()),
        quoted(&pbx.client_id),
        quoted(&pbx.client_secret),
    );
    if let Some(country) = &setup.country {
        let _ = writeln!(toml, "country = {}\n", quoted(country));
    }
    let _ = writeln!(
        toml,
        "[engine]\ngrace = \"{}ms\"\n",
        setup.grace.as_millis()
    );
    toml.push_str("[trunks]\n");
    for (trunk, did) in &pbx.trunks {
        let _ = writeln!(toml, "{} = {}", quoted(trunk), quoted(did));
    }
    let _ = writeln!(
        toml,
        "\n[storage]\ndir = {}\n",
        quoted(&dir.join("state").display().to_string())
    );
    let _ = writeln!(toml, "[admin]\nlisten = \"127.0.0.1:0\"");
    if let Some(token) = &setup.admin_token {
        let _ = writeln!(toml, "token = {}", quoted(token));
    }
    let _ = writeln!(toml, "\n[server]\nlisten = \"127.0.0.1:{port}\"");
    if let Some(base) = recordings_base {
        let _ = writeln!(
            toml,
            "public_url = {}\n\n[recordings]\nenabled = true\nkeep_days = 0\nmp3_dir = {}",
            quoted(base),
            quoted(&dir.join("recordings").display().to_string())
        );
    }
    match &setup.plugin {
        LocalPlugin::GenericWebhook {
            receiver,
            webhook_url,
            recordings_url,
        } => {
            let _ = writeln!(
                toml,
                "\n[[plugin]]\nname = \"generic-webhook\"\nallowed_hosts = [{}]\n\n[plugin.settings]\nwebhook_url = {}",
                quoted(receiver),
                quoted(webhook_url)
            );
            if let Some(url) = recordings_url.as_ref().filter(|_| setup.recordings) {
                let _ = writeln!(toml, "webhook_post_url = {}", quoted(url));
            }
        }
        LocalPlugin::Named {
            name,
            settings,
            secrets,
            keys,
        } => {
            let _ = writeln!(toml, "\n[[plugin]]\nname = {}", quoted(name));
            for (key, value) in keys {
                let _ = writeln!(toml, "{key} = {value}");
            }
            for (table, entries) in [("settings", settings), ("secrets", secrets)] {
                let _ = writeln!(toml, "\n[plugin.{table}]");
                for (key, value) in entries {
                    let key: Vec<String> = key.split('.').map(quoted).collect();
                    let _ = writeln!(toml, "{} = {}", key.join("."), quoted(value));
                }
            }
        }
    }
    toml
}

/// `text` as a TOML string.
fn quoted(text: &str) -> String {
    toml::Value::String(text.to_owned()).to_string()
}
