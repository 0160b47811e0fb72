//! The configuration: `callhook.toml`, the legacy `webhooks.ini`, or both.
//!
//! Loading has two steps (house style: parse, then validate). [`raw`] reads the TOML file into
//! serde-shaped structs whose every value remembers where it was written, and
//! [`legacy_ini`] reads a `webhooks.ini` into the same shape. [`validate`] then merges the two
//! (a key of `callhook.toml` wins over the same key from the ini), checks every value and
//! resolves defaults, relative paths and `env:NAME` references into a [`Config`]. Every
//! problem found is collected, each with the file, line and key it is about
//! ([`ConfigError`]); nothing stops at the first.
//!
//! Loading never touches the network and reads only the configuration files themselves.
//! [`check`](fn@check) goes further for `callhook check-config`: it looks at the files and
//! directories the configuration names (plugins, certificates, folders), still without
//! connecting anywhere.
//!
//! Hot reload is [`Config::reload`]: parse and validate the new file; on error the caller keeps
//! the old configuration. [`Config::diff`] says what changed, so the caller restarts only the
//! plugins and routes affected (and knows which changes need a restart of the process).
//!
//! The reference page `docs/configuration.md` is generated from the doc comments of [`raw`]
//! by a test, so the two never drift.

mod check;
mod components;
mod diff;
mod errors;
mod legacy_ini;
#[cfg(test)]
mod proptests;
mod raw;
#[cfg(test)]
mod reference;
#[cfg(test)]
mod tests;
mod validate;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::queue::Routes;
use crate::runtime::limits::PluginLimits;

pub use crate::secret::Secret;
pub use check::{CheckReport, check, warnings};
pub use diff::ConfigDiff;
pub use errors::{ConfigError, ConfigErrors, ErrorKind, Place};

/// The name of the built-in default plugin.
pub const GENERIC_WEBHOOK: &str = "generic-webhook";

/// A fully resolved configuration: defaults applied, paths absolute or relative to the working
/// directory, secrets read from the environment.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The file it was loaded from.
    pub file: PathBuf,
    /// The legacy ini it includes (or `file` itself when that is an ini), if any.
    pub legacy_ini: Option<PathBuf>,
    /// The phone system.
    pub pbx: PbxConfig,
    /// Event derivation.
    pub engine: EngineSettings,
    /// Recordings, in the recorder's own terms (its `public_url` is `server.public_url`, its
    /// folder's time zone the PBX's).
    pub recordings: crate::recordings::RecordingsConfig,
    /// The HTTP server.
    pub server: ServerConfig,
    /// The operator console, in its own terms.
    pub admin: crate::console::ConsoleConfig,
    /// Durable state.
    pub storage: StorageConfig,
    /// Where the path-valued keys that are not [`FileRef`]s were written (`recordings.folder`,
    /// `recordings.mp3_dir`), for [`check`](fn@check)'s messages; a key left at its default is
    /// absent.
    pub places: BTreeMap<&'static str, Place>,
    /// Every plugin to load, in the order configured; the built-in `generic-webhook` is among
    /// them when a route or `default_plugins` names it.
    pub plugins: Vec<PluginConfig>,
    /// Which plugins receive which extensions' events.
    pub routes: Routes,
}

/// The resolved `[pbx]` section; the connector's `ConnectorConfig` is built from it.
#[derive(Debug, Clone, PartialEq)]
pub struct PbxConfig {
    /// The PBX's origin (`http` or `https`), e.g. `https://pbx.example.com:5001/`.
    pub url: url::Url,
    /// The API client's id.
    pub client_id: String,
    /// The API client's secret.
    pub client_secret: Secret,
    /// A PEM file of extra CA certificates. By default none.
    pub ca_file: Option<FileRef>,
    /// How often to take a fresh snapshot. By default 60 s.
    pub resnapshot_interval: Duration,
    /// Where `url` was written, for messages about the connection.
    pub url_place: Option<Place>,
    /// The E.164 normaliser for `pbx.country`. By default none (only `+` numbers).
    pub e164: crate::calls::e164::E164,
}

/// The resolved engine settings; the engine's `EngineConfig` is built from them.
#[derive(Debug, Clone, PartialEq)]
pub struct EngineSettings {
    /// The transfer / queue-wave grace period. By default 2 s.
    pub grace: Duration,
    /// Whether internal calls produce events. By default `false`.
    pub report_internal_calls: bool,
    /// The PBX's time zone for call ids (`[pbx] timezone`). By default the host's.
    pub time_zone: jiff::tz::TimeZone,
    /// The time zone's name as configured, if one was.
    pub time_zone_name: Option<String>,
    /// DID number → inbound rule name (`[did]`); no two numbers have the same digits. By
    /// default empty.
    pub did_rules: BTreeMap<String, String>,
    /// Trunk DN → the DID number its inbound calls arrive on (`[trunks]`). By default empty.
    pub trunk_dids: BTreeMap<String, String>,
}

impl EngineSettings {
    /// The engine's configuration: these settings as they are (`run`, `replay --config`).
    pub fn engine_config(&self) -> crate::calls::EngineConfig {
        crate::calls::EngineConfig {
            grace: self.grace,
            report_internal_calls: self.report_internal_calls,
            time_zone: self.time_zone.clone(),
            did_rules: self.did_rules.clone(),
            trunk_dids: self.trunk_dids.clone(),
        }
    }
}

/// The resolved `[server]` section.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerConfig {
    /// The listening address. By default
    /// [`server::DEFAULT_LISTEN`](crate::server::DEFAULT_LISTEN),
    /// `0.0.0.0:5001`.
    pub listen: SocketAddr,
    /// The base of the links sent to the CRM (set whenever recordings are enabled).
    pub public_url: Option<url::Url>,
    /// The certificate chain to serve HTTPS with; set together with `tls_key`. By default
    /// none: plain HTTP. [`Config::server_tls`] gives both in the server's terms.
    pub tls_cert: Option<FileRef>,
    /// The private key of `tls_cert`.
    pub tls_key: Option<FileRef>,
}

/// The resolved `[storage]` section.
#[derive(Debug, Clone, PartialEq)]
pub struct StorageConfig {
    /// The directory of the queue and the call state. By default `/var/lib/callhook`.
    pub dir: FileRef,
    /// Days to keep parked deliveries; `None` keeps them for ever. By default 30.
    pub parked_keep_days: Option<u32>,
}

/// One plugin to load.
#[derive(Debug, Clone, PartialEq)]
pub struct PluginConfig {
    /// Its unique name.
    pub name: String,
    /// Where its component comes from.
    pub source: PluginSource,
    /// Its `allowed_hosts` patterns, each already checked by the egress policy's parser.
    pub allowed_hosts: Vec<String>,
    /// Whether `allowed_hosts` was derived from the `generic-webhook` URLs rather than written.
    pub allowed_hosts_derived: bool,
    /// A PEM file of extra CA certificates for its HTTPS requests, already checked to hold
    /// at least one. By default none.
    pub ca_file: Option<PathBuf>,
    /// Memory and time limits.
    pub limits: PluginLimits,
    /// Plain settings, flattened (`event_alias.incoming`).
    pub settings: BTreeMap<String, String>,
    /// Secrets, with `env:NAME` references resolved.
    pub secrets: BTreeMap<String, Secret>,
    /// Retry policy overrides.
    pub retry: RetryOverrides,
    /// Deliveries running at once, at least 1.
    pub concurrency: u32,
    /// Deliveries started per second at most; `None` for no limit.
    pub rate_per_second: Option<f64>,
    /// Where the plugin was configured.
    pub place: Option<Place>,
}

impl PluginConfig {
    /// The secrets as plain strings, for the runtime's `PluginSpec`. Do not log them.
    pub fn expose_secrets(&self) -> BTreeMap<String, String> {
        self.secrets
            .iter()
            .map(|(key, secret)| (key.clone(), secret.expose().to_string()))
            .collect()
    }

    /// The component's bytes: the file, or the built-in plugin's.
    pub fn read_wasm(&self) -> std::io::Result<Arc<[u8]>> {
        match &self.source {
            PluginSource::Builtin(builtin) => Ok(Arc::from(builtin.wasm)),
            PluginSource::File(file) => Ok(Arc::from(std::fs::read(&file.path)?)),
        }
    }
}

/// Where a plugin's component comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum PluginSource {
    /// Built into the binary: a `[[plugin]]` without `path` named after it, or with `builtin`.
    Builtin(&'static crate::runtime::Builtin),
    /// A `.wasm` file.
    File(FileRef),
}

/// Overrides of the delivery retry policy for one plugin; `None` keeps the host's default.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RetryOverrides {
    /// Delays before the 2nd, 3rd, ... attempt; the last repeats.
    pub ladder: Option<Vec<Duration>>,
    /// Give up once the first attempt is this old.
    pub max_age: Option<Duration>,
    /// The longest `Retry-After` honoured.
    pub max_retry_after: Option<Duration>,
}

/// A path from the configuration and where it was written (for [`check`](fn@check)'s messages).
/// Two `FileRef`s are equal when their paths are.
#[derive(Debug, Clone)]
pub struct FileRef {
    /// The path, resolved against the directory of the file it was written in.
    pub path: PathBuf,
    /// Where it was written; `None` for a default.
    pub place: Option<Place>,
}

impl PartialEq for FileRef {
    fn eq(&self, other: &Self) -> bool {
        self.path == other.path
    }
}

/// Where `env:NAME` references are looked up.
pub trait Env {
    /// The variable's value, if set.
    fn var(&self, name: &str) -> Option<String>;
}

/// The process environment.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

impl Env for BTreeMap<String, String> {
    fn var(&self, name: &str) -> Option<String> {
        self.get(name).cloned()
    }
}

impl Config {
    /// Loads `path`: a legacy ini when its name ends in `.ini`, else `callhook.toml`.
    /// `env:NAME` references are read from the process environment.
    pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
        Self::load_with_env(path, &ProcessEnv)
    }

    /// [`Config::load`] with `env:NAME` references looked up in `env`.
    pub fn load_with_env(path: &Path, env: &dyn Env) -> Result<Config, ConfigErrors> {
        validate::load(path, env)
    }

    /// Hot reload: loads `path` again. On error the caller keeps `self` in force and reports
    /// the errors; on success it applies what [`Config::diff`] reports.
    pub fn reload(&self, path: &Path, env: &dyn Env) -> Result<(Config, ConfigDiff), ConfigErrors> {
        let new = Self::load_with_env(path, env)?;
        let diff = self.diff(&new);
        Ok((new, diff))
    }

    /// What changed from `self` to `new`.
    pub fn diff(&self, new: &Config) -> ConfigDiff {
        diff::diff(self, new)
    }

    /// The plugin named `name`.
    pub fn plugin(&self, name: &str) -> Option<&PluginConfig> {
        self.plugins.iter().find(|plugin| plugin.name == name)
    }
}
