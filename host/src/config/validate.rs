//! Raw configuration → [`Config`]: merge the legacy ini in, check every value, apply defaults,
//! resolve paths and `env:NAME` references, and collect every problem with its place.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::errors::{At, ConfigError, ConfigErrors, ErrorKind, Place, Problem, Sources};
use super::legacy_ini::{parse_flag, parse_ini};
use super::raw::{
    Loc, Patterns, RawConfig, RawPlugin, RawRetry, RecordingSource, SettingValue, flatten, one_of,
    parse_toml, setting_text,
};
use super::{
    Config, EngineSettings, Env, FileRef, GENERIC_WEBHOOK, PbxConfig, PluginConfig, PluginSource,
    RetryOverrides, Secret, ServerConfig, StorageConfig,
};
use crate::calls::e164::E164;
use crate::calls::{EngineConfig, did_digits};
use crate::console::ConsoleConfig;
use crate::pbx::ConnectorConfig;
use crate::queue::{NumberPattern, Route, Routes};
use crate::recordings::convert::BITRATES;
use crate::recordings::{RecordingsConfig, SourceKind};

use crate::queue::PluginPolicy;
use crate::runtime::egress::HostPattern;
use crate::runtime::{PluginLimits, RuntimeConfig, SettingKind, SettingsSchema, UrlSetting};

/// The settings the built-in plugin reads (besides `event_alias.<event>`).
const GENERIC_WEBHOOK_SETTINGS: &[&str] = &[
    "webhook_url",
    "webhook_post_url",
    "post",
    "recording_full_info",
    "duration_format",
];
/// The events an `event_alias.<event>` may rename.
const EVENTS: &[&str] = &[
    "ringing",
    "dialing",
    "incomingcall_started",
    "outgoingcall_started",
    "incoming",
    "outgoing",
    "recording",
];

/// Reads, parses and validates `path` (and the legacy ini it names).
pub(crate) fn load(path: &Path, env: &dyn Env) -> Result<Config, ConfigErrors> {
    let mut sources = Sources::default();
    let text = std::fs::read_to_string(path).map_err(|error| {
        ConfigErrors(vec![ConfigError {
            place: Place {
                file: path.to_path_buf(),
                line: None,
                column: None,
                key: None,
            },
            kind: ErrorKind::File {
                path: path.to_path_buf(),
                reason: error.to_string(),
            },
        }])
    })?;
    let is_ini = path
        .extension()
        .is_some_and(|ext| ext.eq_ignore_ascii_case("ini"));
    let main = sources.add(path, text.clone());
    let (mut raw, mut problems) = if is_ini {
        parse_ini(&text, main)
    } else {
        parse_toml(&text)
    };
    let mut legacy_ini = is_ini.then(|| path.to_path_buf());
    if let Some(legacy) = raw.legacy_ini.clone() {
        let ini_path = sources.dir(legacy.at.file).join(&legacy.value);
        match std::fs::read_to_string(&ini_path) {
            Ok(ini_text) => {
                let file = sources.add(&ini_path, ini_text.clone());
                let (ini, ini_problems) = parse_ini(&ini_text, file);
                problems.extend(ini_problems);
                merge(&mut raw, ini);
                legacy_ini = Some(ini_path);
            }
            Err(error) => problems.push(Problem::new(
                &legacy.at,
                "legacy_ini",
                ErrorKind::File {
                    path: ini_path,
                    reason: format!("{error}; expected a webhooks.ini relative to this file"),
                },
            )),
        }
    }
    // A TOML syntax error leaves nothing reliable to validate; an ini one spoils one line only.
    let syntax_broken = !is_ini
        && problems
            .iter()
            .any(|problem| matches!(problem.kind, ErrorKind::Syntax(_)) && problem.at.file == main);
    let config = if syntax_broken {
        None
    } else {
        let mut validator = Validator {
            sources: &sources,
            env,
            ini_main: is_ini,
            problems,
        };
        let config = validator.config(raw, path, legacy_ini);
        problems = validator.problems;
        Some(config)
    };
    match config {
        Some(config) if problems.is_empty() => Ok(config),
        _ => {
            // In file order, line by line (files in the order they were read).
            let mut errors: Vec<(usize, ConfigError)> = problems
                .into_iter()
                .map(|problem| (problem.at.file, sources.error(problem)))
                .collect();
            errors.sort_by_key(|(file, error)| (*file, error.place.line, error.place.column));
            Err(ConfigErrors(errors.into_iter().map(|(_, e)| e).collect()))
        }
    }
}

/// Fills what `callhook.toml` leaves unset with the values of the legacy ini.
fn merge(toml: &mut RawConfig, ini: RawConfig) {
    macro_rules! fill {
        ($($section:ident . $key:ident),* $(,)?) => {
            $( if toml.$section.$key.is_none() { toml.$section.$key = ini.$section.$key; } )*
        };
    }
    fill!(
        pbx.url,
        pbx.client_id,
        pbx.client_secret,
        pbx.timezone,
        pbx.country,
        engine.report_internal_calls,
        recordings.enabled,
        recordings.source,
        recordings.folder,
        recordings.mp3_dir,
        recordings.mp3_bitrate,
        recordings.keep_days,
        recordings.sign_links,
        server.public_url,
        server.listen,
        server.tls_cert,
        server.tls_key,
        storage.dir,
    );
    for ini_plugin in ini.plugin {
        let declared = toml.plugin.iter_mut().find(|plugin| {
            plugin
                .value
                .name
                .as_ref()
                .is_some_and(|name| name.value == GENERIC_WEBHOOK)
        });
        let Some(declared) = declared else {
            toml.plugin.push(ini_plugin);
            continue;
        };
        let ini_plugin = ini_plugin.value;
        for (ours, theirs) in [
            (&mut declared.value.settings, ini_plugin.settings),
            (&mut declared.value.secrets, ini_plugin.secrets),
        ] {
            let Some(theirs) = theirs else { continue };
            match ours {
                None => *ours = Some(theirs),
                Some(ours) => {
                    let mut flat = Vec::new();
                    flatten(std::mem::take(&mut ours.value), "", &mut flat);
                    for (key, value) in theirs.value.0 {
                        if !flat.iter().any(|(k, _)| k.value == key.value) {
                            flat.push((key, value));
                        }
                    }
                    ours.value.0 = flat;
                }
            }
        }
    }
}

struct Validator<'a> {
    sources: &'a Sources,
    env: &'a dyn Env,
    /// The main file is a legacy ini: name missing keys as the ini does.
    ini_main: bool,
    problems: Vec<Problem>,
}

impl Validator<'_> {
    fn push(&mut self, at: &At, key: &str, kind: ErrorKind) {
        self.problems.push(Problem::new(at, key, kind));
    }

    /// A whole number from 1 to `max` of `unit`s at `key`; `default` when absent or invalid
    /// (then with an error).
    fn count(
        &mut self,
        value: &Option<Loc<u64>>,
        key: &str,
        unit: &str,
        max: u64,
        default: u64,
    ) -> u64 {
        match value {
            Some(n) if !(1..=max).contains(&n.value) => {
                self.invalid(
                    &n.at,
                    key,
                    format!("a number of {unit} from 1 to {max}"),
                    n.value.to_string(),
                );
                default
            }
            Some(n) => n.value,
            None => default,
        }
    }

    fn invalid(
        &mut self,
        at: &At,
        key: &str,
        expected: impl Into<String>,
        found: impl Into<String>,
    ) {
        self.push(
            at,
            key,
            ErrorKind::Invalid {
                expected: expected.into(),
                found: found.into(),
            },
        );
    }

    /// Reports a missing required key at its section header (or the file).
    fn missing(&mut self, raw: &RawConfig, section: &str, key: &str, expected: &str) {
        if raw.failed.iter().any(|failed| failed == section) {
            return;
        }
        let at = raw
            .sections
            .iter()
            .find(|(name, _)| *name == section)
            .map(|(_, at)| at.clone())
            .unwrap_or_default();
        let full = format!("{section}.{key}");
        let name = if self.ini_main {
            ini_name(&full).map_or(full.clone(), str::to_string)
        } else {
            full.clone()
        };
        let expected = match ini_name(&full) {
            Some(ini) if !self.ini_main => format!("{expected} (or {ini} in the legacy ini)"),
            _ => expected.to_string(),
        };
        self.push(&at, &name, ErrorKind::Missing { expected });
    }

    fn config(&mut self, raw: RawConfig, file: &Path, legacy_ini: Option<PathBuf>) -> Config {
        let pbx = self.pbx(&raw);
        let storage_dir = match &raw.storage.dir {
            Some(dir) => self.path(dir),
            None => FileRef {
                path: PathBuf::from(crate::app::storage::DEFAULT_DIR),
                place: None,
            },
        };
        let mut places = BTreeMap::new();
        let mut recordings = self.recordings(&raw, &storage_dir, &mut places);
        let server = self.server(&raw, recordings.enabled);
        let admin = self.admin(&raw, &server);
        let engine = self.engine(&raw);
        recordings.folder_time_zone = engine.time_zone.clone();
        recordings.public_url = server
            .public_url
            .as_ref()
            .map(url::Url::to_string)
            .unwrap_or_default();
        let mut plugins = Vec::new();
        let mut names: BTreeMap<String, At> = BTreeMap::new();
        for plugin in &raw.plugin {
            if let Some(plugin) = self.plugin(plugin, &mut names) {
                plugins.push(plugin);
            }
        }
        let routes = self.routes(&raw, &names);
        let builtin_used = routes.default_plugins.iter().any(|p| p == GENERIC_WEBHOOK)
            || routes
                .routes
                .iter()
                .any(|route| route.plugins.iter().any(|p| p == GENERIC_WEBHOOK));
        if builtin_used && !names.contains_key(GENERIC_WEBHOOK) {
            plugins.push(PluginConfig {
                name: GENERIC_WEBHOOK.to_string(),
                source: PluginSource::Builtin(
                    crate::runtime::builtin(GENERIC_WEBHOOK).expect("generic-webhook is built in"),
                ),
                allowed_hosts: Vec::new(),
                allowed_hosts_derived: true,
                ca_file: None,
                limits: PluginLimits::default(),
                settings: BTreeMap::new(),
                secrets: BTreeMap::new(),
                retry: RetryOverrides::default(),
                concurrency: PluginPolicy::DEFAULT_CONCURRENCY,
                rate_per_second: None,
                place: None,
            });
        }
        Config {
            file: file.to_path_buf(),
            legacy_ini,
            pbx: pbx.unwrap_or_else(placeholder_pbx),
            engine,
            recordings,
            server,
            admin,
            places,
            storage: StorageConfig {
                dir: storage_dir,
                parked_keep_days: match &raw.storage.parked_keep_days {
                    Some(days) if days.value == 0 => None,
                    Some(days) => Some(days.value),
                    None => Some(30),
                },
            },
            plugins,
            routes,
        }
    }

    fn pbx(&mut self, raw: &RawConfig) -> Option<PbxConfig> {
        let pbx = &raw.pbx;
        let url = match &pbx.url {
            Some(url) => self.url(url, "pbx.url", "https://pbx.example.com:5001"),
            None => {
                self.missing(
                    raw,
                    "pbx",
                    "url",
                    "the PBX's address, e.g. url = \"https://pbx.example.com:5001\"",
                );
                None
            }
        };
        let client_id = match &pbx.client_id {
            Some(id) if id.value.trim().is_empty() => {
                self.invalid(
                    &id.at,
                    "pbx.client_id",
                    "the API client's id",
                    "an empty string",
                );
                None
            }
            Some(id) => Some(id.value.trim().to_string()),
            None => {
                self.missing(
                    raw,
                    "pbx",
                    "client_id",
                    "the id of the API client created in the 3CX admin console",
                );
                None
            }
        };
        let client_secret = match &pbx.client_secret {
            Some(secret) => self.secret(secret, "pbx.client_secret", "the 3CX API client's secret"),
            None => {
                self.missing(
                    raw,
                    "pbx",
                    "client_secret",
                    "the API client's secret, or env:NAME to read it from the environment",
                );
                None
            }
        };
        let ca_file = pbx.ca_file.as_ref().map(|file| self.path(file));
        let resnapshot_interval = match &pbx.resnapshot_interval {
            Some(interval) => self.duration(
                interval,
                "pbx.resnapshot_interval",
                Duration::from_secs(1),
                Duration::from_secs(24 * 3600),
            ),
            None => Some(ConnectorConfig::DEFAULT_RESNAPSHOT_INTERVAL),
        };
        let url_place = pbx
            .url
            .as_ref()
            .map(|url| self.sources.place(&url.at, Some("pbx.url".to_string())));
        let e164 = match &pbx.country {
            Some(country) => E164::new(Some(&country.value)).unwrap_or_else(|_| {
                self.invalid(
                    &country.at,
                    "pbx.country",
                    "an ISO 3166-1 alpha-2 country code such as \"DE\"",
                    format!("{:?}", country.value),
                );
                E164::default()
            }),
            None => E164::default(),
        };
        Some(PbxConfig {
            url_place,
            url: url?,
            client_id: client_id?,
            client_secret: client_secret?,
            ca_file,
            resnapshot_interval: resnapshot_interval?,
            e164,
        })
    }

    fn engine(&mut self, raw: &RawConfig) -> EngineSettings {
        let grace = raw
            .engine
            .grace
            .as_ref()
            .and_then(|grace| {
                self.duration(
                    grace,
                    "engine.grace",
                    Duration::ZERO,
                    EngineConfig::MAX_CONFIGURED_GRACE,
                )
            })
            .unwrap_or(EngineConfig::DEFAULT_GRACE);
        let (time_zone, time_zone_name) = match &raw.pbx.timezone {
            Some(name) => match jiff::tz::TimeZone::get(name.value.trim()) {
                Ok(zone) => (zone, Some(name.value.trim().to_string())),
                Err(_) => {
                    self.invalid(
                        &name.at,
                        "pbx.timezone",
                        "an IANA time zone name such as \"Europe/Berlin\" or \"UTC\"",
                        format!("{:?}", name.value),
                    );
                    (jiff::tz::TimeZone::UTC, None)
                }
            },
            None => (jiff::tz::TimeZone::system(), None),
        };
        let did_rules = self.did_rules(raw);
        let trunk_dids = self.trunk_dids(raw);
        EngineSettings {
            grace,
            report_internal_calls: raw
                .engine
                .report_internal_calls
                .as_ref()
                .is_some_and(|flag| flag.value),
            time_zone,
            time_zone_name,
            did_rules,
            trunk_dids,
        }
    }

    /// `[did]`: DID number -> rule name. Two numbers with the same digits would be one number
    /// with two names, so the second is an error.
    fn did_rules(&mut self, raw: &RawConfig) -> BTreeMap<String, String> {
        let mut did_rules = BTreeMap::new();
        let mut seen: BTreeMap<String, String> = BTreeMap::new();
        for (number, rule) in raw.did.iter().flat_map(|did| &did.value.0) {
            let key = format!("did.\"{}\"", number.value);
            if !self.did_number(number, &key) {
                continue;
            }
            if rule.value.trim().is_empty() {
                self.invalid(&rule.at, &key, "an inbound rule name", "an empty string");
                continue;
            }
            if let Some(first) = seen.insert(did_digits(&number.value), number.value.clone()) {
                self.invalid(
                    &number.at,
                    &key,
                    format!("a number other than {first:?} (DID numbers are compared by digits)"),
                    format!("{:?}", number.value),
                );
                continue;
            }
            did_rules.insert(number.value.clone(), rule.value.trim().to_string());
        }
        did_rules
    }

    /// `[trunks]`: trunk DN -> DID number.
    fn trunk_dids(&mut self, raw: &RawConfig) -> BTreeMap<String, String> {
        let mut trunk_dids = BTreeMap::new();
        for (trunk, number) in raw.trunks.iter().flat_map(|trunks| &trunks.value.0) {
            let key = format!("trunks.\"{}\"", trunk.value);
            let dn = trunk.value.trim();
            if dn.is_empty() || dn.chars().any(char::is_whitespace) {
                self.invalid(
                    &trunk.at,
                    &key,
                    "a trunk DN such as \"10007\" (the external party's `party_dn`)",
                    format!("{:?}", trunk.value),
                );
            } else if self.did_number(number, &key) {
                trunk_dids.insert(dn.to_string(), number.value.trim().to_string());
            }
        }
        trunk_dids
    }

    /// Checks a DID number (digits, `+` and separators, at least one digit); reports it at
    /// `key` and returns false when it is not one.
    fn did_number(&mut self, number: &Loc<String>, key: &str) -> bool {
        let digits = did_digits(&number.value).len();
        let clean = number
            .value
            .chars()
            .all(|c| c.is_ascii_digit() || "+ -()./".contains(c));
        if digits == 0 || !clean {
            self.invalid(
                &number.at,
                key,
                "a DID number such as \"+4930123456\" (digits, `+` and separators)",
                format!("{:?}", number.value),
            );
        }
        digits > 0 && clean
    }

    /// The recorder's configuration, from its own defaults; `public_url` and the folder's
    /// time zone are filled in by `config` from `[server]` and `[pbx]`. The places
    /// of `folder` and `mp3_dir` go into `places`, for `check`'s messages.
    fn recordings(
        &mut self,
        raw: &RawConfig,
        storage_dir: &FileRef,
        places: &mut BTreeMap<&'static str, Place>,
    ) -> RecordingsConfig {
        let recordings = &raw.recordings;
        let defaults = RecordingsConfig::default();
        let enabled = recordings.enabled.as_ref().is_some_and(|e| e.value);
        let source = match recordings.source.as_ref().map(|s| s.value) {
            Some(RecordingSource::Folder) => SourceKind::Folder,
            Some(RecordingSource::Xapi) | None => SourceKind::Xapi,
        };
        let mut file = |key: &'static str, file: FileRef| {
            if let Some(place) = file.place {
                places.insert(key, place);
            }
            file.path
        };
        let folder = recordings
            .folder
            .as_ref()
            .map(|folder| self.path(folder))
            .map(|folder| file("recordings.folder", folder));
        if enabled && source == SourceKind::Folder && folder.is_none() {
            self.missing(
                raw,
                "recordings",
                "folder",
                "the PBX's recordings folder, because source = \"folder\"",
            );
        }
        let mp3_dir = match &recordings.mp3_dir {
            Some(dir) => {
                let dir = self.path(dir);
                file("recordings.mp3_dir", dir)
            }
            None => storage_dir.path.join("recordings"),
        };
        let bitrate_kbps = match &recordings.mp3_bitrate {
            Some(rate) if !BITRATES.contains(&rate.value) => {
                let allowed: Vec<String> = BITRATES.iter().map(u32::to_string).collect();
                self.invalid(
                    &rate.at,
                    "recordings.mp3_bitrate",
                    format!("an MP3 bit rate in kbit/s: {}", allowed.join(", ")),
                    rate.value.to_string(),
                );
                defaults.bitrate_kbps
            }
            Some(rate) => rate.value,
            None => defaults.bitrate_kbps,
        };
        let keep_days = recordings
            .keep_days
            .as_ref()
            .map_or(defaults.keep_days, |days| days.value);
        let hours = |duration: Duration| (duration.as_secs() / 3600) as u32;
        let max_retry_hours = hours(RecordingsConfig::MAX_RETRY_FOR);
        let retry_for = match &recordings.retry_hours {
            Some(retry) if retry.value > max_retry_hours => {
                self.invalid(
                    &retry.at,
                    "recordings.retry_hours",
                    format!("a number of hours from 0 to {max_retry_hours}"),
                    retry.value.to_string(),
                );
                defaults.retry_for
            }
            Some(retry) => Duration::from_secs(u64::from(retry.value) * 3600),
            None => defaults.retry_for,
        };
        RecordingsConfig {
            enabled,
            source,
            folder: folder.unwrap_or(defaults.folder.clone()),
            mp3_dir,
            bitrate_kbps,
            keep_days,
            sign_links: recordings
                .sign_links
                .as_ref()
                .map_or(defaults.sign_links, |s| s.value),
            retry_for,
            ..defaults
        }
    }

    fn server(&mut self, raw: &RawConfig, recordings_enabled: bool) -> ServerConfig {
        let server = &raw.server;
        let listen = match &server.listen {
            Some(listen) => match listen.value.trim().parse::<SocketAddr>() {
                Ok(addr) => addr,
                Err(_) => {
                    self.invalid(
                        &listen.at,
                        "server.listen",
                        "an IP address and port such as \"0.0.0.0:5001\" or \"[::]:5001\"",
                        format!("{:?}", listen.value),
                    );
                    crate::server::DEFAULT_LISTEN
                }
            },
            None => crate::server::DEFAULT_LISTEN,
        };
        let public_url = server.public_url.as_ref().and_then(|url| {
            let parsed = self.url(url, "server.public_url", "https://pbx.example.com:5001")?;
            if parsed.query().is_some() || parsed.fragment().is_some() {
                // Links are `{public_url}/webapi/recording/{file}`: a query would end up in
                // the middle of them.
                self.invalid(
                    &url.at,
                    "server.public_url",
                    "a base URL without a query or fragment".to_string(),
                    format!("{:?}", url.value),
                );
                return None;
            }
            Some(parsed)
        });
        if recordings_enabled && server.public_url.is_none() {
            self.missing(
                raw,
                "server",
                "public_url",
                "the base URL of the recording links as the CRM reaches this server, e.g. \
                 public_url = \"https://pbx.example.com:5001\", because recordings are enabled",
            );
        }
        let cert = server.tls_cert.as_ref().map(|cert| self.path(cert));
        let key = server.tls_key.as_ref().map(|key| self.path(key));
        let (tls_cert, tls_key) = match (cert, key) {
            (Some(_), None) => {
                self.missing(raw, "server", "tls_key", "the private key of tls_cert");
                (None, None)
            }
            (None, Some(_)) => {
                self.missing(raw, "server", "tls_cert", "the certificate of tls_key");
                (None, None)
            }
            both => both,
        };
        ServerConfig {
            listen,
            public_url,
            tls_cert,
            tls_key,
        }
    }

    /// `[admin]`: the console's listener, never the server's, and loopback-only without a
    /// token. Defaults are [`ConsoleConfig`]'s.
    fn admin(&mut self, raw: &RawConfig, server: &ServerConfig) -> ConsoleConfig {
        let admin = &raw.admin;
        let defaults = ConsoleConfig::default();
        let token = admin
            .token
            .as_ref()
            .and_then(|token| self.secret(token, "admin.token", "the console's token"));
        let Some(listen) = &admin.listen else {
            return ConsoleConfig { token, ..defaults };
        };
        let Ok(addr) = listen.value.trim().parse::<SocketAddr>() else {
            self.invalid(
                &listen.at,
                "admin.listen",
                "an IP address and port such as \"127.0.0.1:8081\"",
                format!("{:?}", listen.value),
            );
            return ConsoleConfig { token, ..defaults };
        };
        if addr == server.listen && addr.port() != 0 {
            self.invalid(
                &listen.at,
                "admin.listen",
                "another address than server.listen: the console never shares the public server",
                format!("{:?}", listen.value),
            );
        } else if admin.token.is_none() && !addr.ip().is_loopback() {
            self.invalid(
                &listen.at,
                "admin.listen",
                "a loopback address such as \"127.0.0.1:8081\", or set admin.token to listen \
                 on other interfaces",
                format!("{:?}", listen.value),
            );
        }
        ConsoleConfig {
            listen: addr,
            token,
        }
    }

    fn plugin(
        &mut self,
        plugin: &Loc<RawPlugin>,
        names: &mut BTreeMap<String, At>,
    ) -> Option<PluginConfig> {
        let raw = &plugin.value;
        let Some(name) = &raw.name else {
            self.push(
                &plugin.at,
                "plugin.name",
                ErrorKind::Missing {
                    expected: "a name for this [[plugin]], e.g. name = \"hubspot\"".to_string(),
                },
            );
            return None;
        };
        let valid_name = !name.value.is_empty()
            && name.value.len() <= 64
            && name
                .value
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        if !valid_name {
            self.invalid(
                &name.at,
                "plugin.name",
                "lower-case letters, digits, `-` and `_`, at most 64 characters",
                format!("{:?}", name.value),
            );
        }
        if let Some(first) = names.get(&name.value) {
            let first = self.sources.describe(first);
            self.push(
                &name.at,
                "plugin.name",
                ErrorKind::Duplicate {
                    what: "plugin name",
                    name: name.value.clone(),
                    first,
                },
            );
            return None;
        }
        names.insert(name.value.clone(), name.at.clone());
        let builtin = match (&raw.builtin, &raw.path) {
            (Some(named), Some(_)) => {
                self.invalid(
                    &named.at,
                    "plugin.builtin",
                    "either `path` or `builtin`, not both",
                    format!("{:?} with a path", named.value),
                );
                None
            }
            (Some(named), None) => {
                let found = crate::runtime::builtin(&named.value);
                if found.is_none() {
                    self.invalid(
                        &named.at,
                        "plugin.builtin",
                        format!(
                            "a built-in plugin: {}",
                            one_of(&crate::runtime::builtin_names())
                        ),
                        format!("{:?}", named.value),
                    );
                }
                found
            }
            (None, None) => crate::runtime::builtin(&name.value),
            (None, Some(_)) => None,
        };
        let source = match (&raw.path, builtin) {
            (Some(path), _) => PluginSource::File(self.path(path)),
            (None, Some(builtin)) => PluginSource::Builtin(builtin),
            (None, None) => {
                if raw.builtin.is_none() {
                    self.push(
                        &name.at,
                        "plugin.path",
                        ErrorKind::Missing {
                            expected: format!(
                                "the path of plugin {:?}'s .wasm component, or `builtin` naming a \
                                 built-in plugin ({})",
                                name.value,
                                crate::runtime::builtin_names().join(", ")
                            ),
                        },
                    );
                }
                PluginSource::Builtin(&crate::runtime::BUILTINS[0])
            }
        };
        let defaults = builtin.map(|builtin| builtin.defaults);
        let is_webhook = builtin.is_some_and(|builtin| builtin.name == GENERIC_WEBHOOK);
        let memory_mb = self.count(
            &raw.memory_mb,
            "plugin.memory_mb",
            "MiB",
            RuntimeConfig::MAX_MEMORY_MB as u64,
            defaults.map_or(u64::from(PluginLimits::DEFAULT_MEMORY_MB), |d| d.memory_mb),
        );
        let kv_quota_mb = self.count(
            &raw.kv_quota_mb,
            "plugin.kv_quota_mb",
            "MiB",
            PluginLimits::MAX_KV_QUOTA_MB,
            defaults.map_or(PluginLimits::DEFAULT_KV_QUOTA_MB, |d| d.kv_quota_mb),
        );
        let timeout_ms = self.count(
            &raw.timeout_ms,
            "plugin.timeout_ms",
            "milliseconds",
            PluginLimits::MAX_TIMEOUT.as_millis() as u64,
            defaults.map_or(PluginLimits::DEFAULT_TIMEOUT.as_millis() as u64, |d| {
                d.timeout_ms
            }),
        );
        let max_response_kb = self.count(
            &raw.max_response_kb,
            "plugin.max_response_kb",
            "KiB",
            u64::from(PluginLimits::MAX_MAX_RESPONSE_KB),
            u64::from(PluginLimits::DEFAULT_MAX_RESPONSE_KB),
        );
        let concurrency = self.count(
            &raw.concurrency,
            "plugin.concurrency",
            "deliveries",
            u64::from(PluginPolicy::MAX_CONCURRENCY),
            u64::from(PluginPolicy::DEFAULT_CONCURRENCY),
        );
        let rate_per_second = match &raw.rate_per_second {
            Some(rate) if !(rate.value.is_finite() && rate.value > 0.0) => {
                self.invalid(
                    &rate.at,
                    "plugin.rate_per_second",
                    "a number of deliveries per second above 0, e.g. 5 or 0.5",
                    rate.value.to_string(),
                );
                None
            }
            Some(rate) => Some(rate.value),
            None => defaults.and_then(|d| d.rate_per_second),
        };
        let schema = builtin.and_then(|builtin| builtin.schema);
        let settings = self.settings(raw, is_webhook, schema);
        let secrets = self.secrets(raw, is_webhook, schema);
        if let Some(schema) = schema {
            self.required(name, schema, &settings, &secrets);
        }
        let (allowed_hosts, allowed_hosts_derived) = match &raw.allowed_hosts {
            Some(hosts) => {
                for host in &hosts.value {
                    if let Err(error) = HostPattern::parse(&host.value) {
                        self.invalid(
                            &host.at,
                            "plugin.allowed_hosts",
                            "scheme://host[:port] such as \"https://crm.example.com\" or \
                             \"https://*.hubapi.com:443\"",
                            format!("{:?} ({})", host.value, error.reason),
                        );
                    }
                }
                (hosts.value.iter().map(|h| h.value.clone()).collect(), false)
            }
            None => match defaults {
                Some(defaults) => (derive_allowed_hosts(&settings, defaults.url_settings), true),
                None => (Vec::new(), false),
            },
        };
        let ca_file = raw.ca_file.as_ref().and_then(|file| self.ca_file(file));
        let retry = raw
            .retry
            .as_ref()
            .map(|retry| self.retry(&retry.value))
            .unwrap_or_default();
        Some(PluginConfig {
            name: name.value.clone(),
            source,
            allowed_hosts,
            allowed_hosts_derived,
            ca_file,
            limits: PluginLimits {
                memory_bytes: (memory_mb as usize) << 20,
                kv_quota_bytes: Some(kv_quota_mb << 20),
                timeout: Duration::from_millis(timeout_ms),
                max_response_bytes: max_response_kb << 10,
                ..PluginLimits::default()
            },
            settings,
            secrets,
            retry,
            concurrency: concurrency as u32,
            rate_per_second,
            place: Some(
                self.sources
                    .place(&name.at, Some("plugin.name".to_string())),
            ),
        })
    }

    /// A plugin's `ca_file`, if it reads as PEM with at least one certificate.
    fn ca_file(&mut self, file: &Loc<String>) -> Option<PathBuf> {
        let path = self.path(file).path;
        match crate::runtime::sender::client_config(Some(&path)) {
            Ok(_) => Some(path),
            Err(error) => {
                self.invalid(
                    &file.at,
                    "plugin.ca_file",
                    "a PEM file of CA certificates, such as \"/etc/ssl/certs/ca-certificates.crt\"",
                    error.to_string(),
                );
                None
            }
        }
    }

    fn settings(
        &mut self,
        raw: &RawPlugin,
        builtin: bool,
        schema: Option<&SettingsSchema>,
    ) -> BTreeMap<String, String> {
        let mut flat = Vec::new();
        if let Some(settings) = &raw.settings {
            flatten(settings.value.clone(), "", &mut flat);
        }
        let mut out = BTreeMap::new();
        let mut seen: BTreeMap<String, At> = BTreeMap::new();
        for (key, value) in flat {
            let name = format!("plugin.settings.{}", key.value);
            if let Some(first) = seen.get(&key.value) {
                let first = self.sources.describe(first);
                self.push(
                    &key.at,
                    &name,
                    ErrorKind::Duplicate {
                        what: "setting",
                        name: key.value.clone(),
                        first,
                    },
                );
                continue;
            }
            seen.insert(key.value.clone(), key.at.clone());
            let text = match setting_text(&value.value) {
                Ok(text) => text,
                Err(kind) => {
                    self.push(
                        &value.at,
                        &name,
                        ErrorKind::WrongType(format!(
                            "expected a string, number or boolean, found {kind}"
                        )),
                    );
                    continue;
                }
            };
            let checked = match schema {
                _ if builtin => self.builtin_setting(&key, &value.at, &name, &text),
                Some(schema) => self.schema_setting(schema, &key, &value.at, &name, &text),
                None => Some(text),
            };
            let Some(text) = checked else { continue };
            out.insert(key.value, text);
        }
        out
    }

    /// Checks a setting of a built-in plugin with a [`SettingsSchema`]: a key it does not know
    /// (a typo, which the plugin would ignore) or a value it cannot use is an error here rather
    /// than at every delivery.
    fn schema_setting(
        &mut self,
        schema: &SettingsSchema,
        key: &Loc<String>,
        at: &At,
        name: &str,
        text: &str,
    ) -> Option<String> {
        let trimmed = text.trim();
        let spec = schema
            .settings
            .iter()
            .find(|spec| match spec.key.strip_suffix('.') {
                Some(table) => key
                    .value
                    .strip_prefix(table)
                    .and_then(|rest| rest.strip_prefix('.'))
                    .is_some_and(|entry| !entry.is_empty() && !entry.contains('.')),
                None => spec.key == key.value,
            });
        let Some(spec) = spec else {
            let known: Vec<String> = schema
                .settings
                .iter()
                .map(|spec| match spec.key.strip_suffix('.') {
                    Some(table) => format!("{table}.<number>"),
                    None => spec.key.to_string(),
                })
                .collect();
            let known: Vec<&str> = known.iter().map(String::as_str).collect();
            self.push(
                &key.at,
                name,
                ErrorKind::UnknownKey {
                    expected: format!("a setting of this plugin: {}", one_of(&known)),
                },
            );
            return None;
        };
        match spec.kind {
            SettingKind::Url => {
                self.url(
                    &Loc::new(trimmed.to_string(), at.clone()),
                    name,
                    "https://crm.example.com",
                )?;
            }
            SettingKind::Flag => {
                if parse_flag(trimmed).is_none() {
                    self.invalid(at, name, "0 or 1 (or true/false)", format!("{text:?}"));
                    return None;
                }
            }
            SettingKind::OneOf(words) => {
                if !words.contains(&trimmed) {
                    self.invalid(at, name, one_of(words), format!("{text:?}"));
                    return None;
                }
            }
            SettingKind::Text => {}
        }
        Some(trimmed.to_string())
    }

    /// Reports each required setting or secret of a built-in plugin that is missing or empty,
    /// naming the plugin and the key.
    fn required(
        &mut self,
        plugin: &Loc<String>,
        schema: &SettingsSchema,
        settings: &BTreeMap<String, String>,
        secrets: &BTreeMap<String, Secret>,
    ) {
        for required in schema.required {
            if required.when.is_some_and(|when| !when.holds(settings)) {
                continue;
            }
            let present = |key: &str| {
                if required.secret {
                    secrets.contains_key(key)
                } else {
                    settings.get(key).is_some_and(|value| !value.is_empty())
                }
            };
            if present(required.key) || required.alias.is_some_and(present) {
                continue;
            }
            let table = if required.secret {
                "secrets"
            } else {
                "settings"
            };
            let mut expected = format!(
                "`{}` in plugin {:?}'s [plugin.{table}]",
                required.key, plugin.value
            );
            if let Some(when) = required.when {
                expected.push_str(&format!(" (with {} = {:?})", when.setting, when.equals));
            }
            if required.secret {
                expected.push_str(", e.g. \"env:NAME\"");
            }
            self.push(
                &plugin.at,
                &format!("plugin.{table}.{}", required.key),
                ErrorKind::Missing { expected },
            );
        }
    }

    /// Checks a setting of the built-in plugin, which would otherwise fail at every delivery.
    fn builtin_setting(
        &mut self,
        key: &Loc<String>,
        at: &At,
        name: &str,
        text: &str,
    ) -> Option<String> {
        let trimmed = text.trim();
        match key.value.as_str() {
            "webhook_url" | "webhook_post_url" => {
                if !trimmed.is_empty() {
                    self.url(
                        &Loc::new(trimmed.to_string(), at.clone()),
                        name,
                        "https://crm.example.com/3cx/events",
                    )?;
                }
                Some(trimmed.to_string())
            }
            "post" | "recording_full_info" => {
                if !trimmed.is_empty() && parse_flag(trimmed).is_none() {
                    self.invalid(at, name, "0 or 1 (or true/false)", format!("{text:?}"));
                    return None;
                }
                Some(trimmed.to_string())
            }
            "duration_format" => {
                let lower = trimmed.to_ascii_lowercase();
                if !["", "seconds", "clock"].contains(&lower.as_str()) {
                    self.invalid(
                        at,
                        name,
                        "`seconds` or `clock` (HH:MM:SS)",
                        format!("{text:?}"),
                    );
                    return None;
                }
                Some(lower)
            }
            other => {
                if let Some(event) = other.strip_prefix("event_alias.") {
                    if !EVENTS.contains(&event) {
                        self.push(
                            &key.at,
                            name,
                            ErrorKind::UnknownKey {
                                expected: format!(
                                    "event_alias.<event> with <event> {}",
                                    one_of(EVENTS)
                                ),
                            },
                        );
                        return None;
                    }
                    return Some(text.to_string());
                }
                let mut expected: Vec<&str> = GENERIC_WEBHOOK_SETTINGS.to_vec();
                expected.push("event_alias.<event>");
                self.push(
                    &key.at,
                    name,
                    ErrorKind::UnknownKey {
                        expected: format!("a setting of {GENERIC_WEBHOOK}: {}", one_of(&expected)),
                    },
                );
                None
            }
        }
    }

    fn secrets(
        &mut self,
        raw: &RawPlugin,
        builtin: bool,
        schema: Option<&SettingsSchema>,
    ) -> BTreeMap<String, Secret> {
        let mut flat = Vec::new();
        if let Some(secrets) = &raw.secrets {
            flatten(secrets.value.clone(), "", &mut flat);
        }
        let mut out = BTreeMap::new();
        for (key, value) in flat {
            let name = format!("plugin.secrets.{}", key.value);
            if out.contains_key(&key.value) {
                self.push(
                    &key.at,
                    &name,
                    ErrorKind::Duplicate {
                        what: "secret",
                        name: key.value.clone(),
                        first: "an earlier line".to_string(),
                    },
                );
                continue;
            }
            let SettingValue::Text(text) = &value.value else {
                self.push(
                    &value.at,
                    &name,
                    ErrorKind::WrongType("expected a string (the secret, or env:NAME)".to_string()),
                );
                continue;
            };
            if builtin && key.value != "signing_secret" {
                self.push(
                    &key.at,
                    &name,
                    ErrorKind::UnknownKey {
                        expected: format!("the only secret of {GENERIC_WEBHOOK}, `signing_secret`"),
                    },
                );
                continue;
            }
            if let Some(schema) = schema
                && !schema.secrets.contains(&key.value.as_str())
            {
                self.push(
                    &key.at,
                    &name,
                    ErrorKind::UnknownKey {
                        expected: format!("a secret of this plugin: {}", one_of(schema.secrets)),
                    },
                );
                continue;
            }
            let what = format!("the secret `{}`", key.value);
            let Some(secret) = self.secret(&Loc::new(text.clone(), value.at.clone()), &name, &what)
            else {
                continue;
            };
            if builtin && !valid_signing_secret(secret.expose()) {
                self.invalid(
                    &value.at,
                    &name,
                    "a Standard Webhooks secret: whsec_ followed by base64",
                    "a value that is not (not shown)",
                );
                continue;
            }
            out.insert(key.value, secret);
        }
        out
    }

    fn retry(&mut self, retry: &RawRetry) -> RetryOverrides {
        let second = Duration::from_secs(1);
        let year = Duration::from_secs(365 * 24 * 3600);
        let ladder = retry.ladder.as_ref().and_then(|ladder| {
            if ladder.value.is_empty() {
                self.invalid(
                    &ladder.at,
                    "plugin.retry.ladder",
                    "at least one delay, e.g. [\"5s\", \"1m\"]",
                    "an empty list",
                );
                return None;
            }
            let delays: Vec<Option<Duration>> = ladder
                .value
                .iter()
                .map(|delay| self.duration(delay, "plugin.retry.ladder", second, year))
                .collect();
            delays.into_iter().collect()
        });
        RetryOverrides {
            ladder,
            max_age: retry
                .max_age
                .as_ref()
                .and_then(|d| self.duration(d, "plugin.retry.max_age", second, year)),
            max_retry_after: retry
                .max_retry_after
                .as_ref()
                .and_then(|d| self.duration(d, "plugin.retry.max_retry_after", second, year)),
        }
    }

    fn routes(&mut self, raw: &RawConfig, names: &BTreeMap<String, At>) -> Routes {
        let failed: Vec<&str> = raw
            .failed
            .iter()
            .filter_map(|failed| failed.strip_prefix("plugin "))
            .collect();
        let mut known: Vec<&str> = names.keys().map(String::as_str).collect();
        if !known.contains(&GENERIC_WEBHOOK) {
            known.push(GENERIC_WEBHOOK);
        }
        let plugin_list = |this: &mut Self, list: &Loc<Vec<Loc<String>>>, key: &str| {
            let mut out = Vec::new();
            for name in &list.value {
                if failed.contains(&name.value.as_str()) {
                    // Its own error is reported.
                } else if known.contains(&name.value.as_str()) {
                    if !out.contains(&name.value) {
                        out.push(name.value.clone());
                    }
                } else {
                    this.push(
                        &name.at,
                        key,
                        ErrorKind::UnknownPlugin {
                            name: name.value.clone(),
                            known: known.join(", "),
                        },
                    );
                }
            }
            out
        };
        let mut routes = Vec::new();
        for route in &raw.route {
            let raw_route = &route.value;
            let extensions = match (&raw_route.extensions, &raw_route.queues) {
                (Some(extensions), _) => self.patterns(extensions, "route.extensions"),
                (None, Some(_)) => vec![NumberPattern::Any],
                (None, None) => {
                    self.push(
                        &route.at,
                        "route.extensions",
                        ErrorKind::Missing {
                            expected: "the extensions this route matches, e.g. \
                                       extensions = [\"100-199\", \"205\"] or \"*\""
                                .to_string(),
                        },
                    );
                    Vec::new()
                }
            };
            let queues = raw_route
                .queues
                .as_ref()
                .map(|queues| self.patterns(queues, "route.queues"));
            let plugins = match &raw_route.plugins {
                Some(list) if list.value.is_empty() => {
                    self.invalid(
                        &list.at,
                        "route.plugins",
                        "at least one plugin name",
                        "an empty list",
                    );
                    Vec::new()
                }
                Some(list) => plugin_list(self, list, "route.plugins"),
                None => {
                    self.push(
                        &route.at,
                        "route.plugins",
                        ErrorKind::Missing {
                            expected: "the plugins that receive this route's events, e.g. \
                                       plugins = [\"generic-webhook\"]"
                                .to_string(),
                        },
                    );
                    Vec::new()
                }
            };
            routes.push(Route {
                extensions,
                queues,
                plugins,
            });
        }
        let default_plugins = match &raw.default_plugins {
            Some(list) => plugin_list(self, list, "default_plugins"),
            None => vec![GENERIC_WEBHOOK.to_string()],
        };
        Routes {
            routes,
            default_plugins,
        }
    }

    fn patterns(&mut self, patterns: &Loc<Patterns>, key: &str) -> Vec<NumberPattern> {
        let items: Vec<Loc<String>> = match &patterns.value {
            Patterns::One(one) => vec![Loc::new(one.clone(), patterns.at.clone())],
            Patterns::Many(many) => many.clone(),
        };
        if items.is_empty() {
            self.invalid(
                &patterns.at,
                key,
                "at least one number, range or \"*\"",
                "an empty list",
            );
        }
        let mut out = Vec::new();
        for item in items {
            match NumberPattern::parse(&item.value) {
                Ok(pattern) => out.push(pattern),
                Err(expected) => self.invalid(&item.at, key, expected, format!("{:?}", item.value)),
            }
        }
        out
    }

    fn url(&mut self, value: &Loc<String>, key: &str, example: &str) -> Option<url::Url> {
        let expected = format!("an http:// or https:// URL such as {example}");
        match url::Url::parse(value.value.trim()) {
            Ok(url) if matches!(url.scheme(), "http" | "https") && url.host_str().is_some() => {
                Some(url)
            }
            Ok(_) => {
                self.invalid(&value.at, key, expected, format!("{:?}", value.value));
                None
            }
            Err(error) => {
                self.invalid(
                    &value.at,
                    key,
                    expected,
                    format!("{:?} ({error})", value.value),
                );
                None
            }
        }
    }

    fn duration(
        &mut self,
        value: &Loc<String>,
        key: &str,
        min: Duration,
        max: Duration,
    ) -> Option<Duration> {
        let expected = format!(
            "a duration such as \"2s\", \"500ms\" or \"1h 30m\", from {} to {}",
            show(min),
            show(max)
        );
        let parsed = value
            .value
            .trim()
            .parse::<jiff::SignedDuration>()
            .ok()
            .and_then(|d| Duration::try_from(d).ok());
        match parsed {
            Some(duration) if duration >= min && duration <= max => Some(duration),
            _ => {
                self.invalid(&value.at, key, expected, format!("{:?}", value.value));
                None
            }
        }
    }

    /// Resolves a path against the directory of the file it was written in.
    fn path(&mut self, value: &Loc<String>) -> FileRef {
        let written = PathBuf::from(value.value.trim());
        let path = if written.is_absolute() {
            written
        } else {
            self.sources.dir(value.at.file).join(written)
        };
        FileRef {
            path,
            place: Some(self.sources.place(&value.at, None)),
        }
    }

    /// A secret value or an `env:NAME` reference. The value never appears in messages.
    fn secret(&mut self, value: &Loc<String>, key: &str, what: &str) -> Option<Secret> {
        let Some(var) = value.value.trim().strip_prefix("env:") else {
            return Some(Secret::new(value.value.clone()));
        };
        let var = var.trim();
        let valid = !var.is_empty()
            && !var.starts_with(|c: char| c.is_ascii_digit())
            && var.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            self.invalid(
                &value.at,
                key,
                "env:NAME with NAME an environment variable name (letters, digits, `_`)",
                format!("{:?}", value.value),
            );
            return None;
        }
        match self.env.var(var) {
            Some(secret) => Some(Secret::new(secret)),
            None => {
                self.push(
                    &value.at,
                    key,
                    ErrorKind::EnvNotSet {
                        var: var.to_string(),
                        what: what.to_string(),
                    },
                );
                None
            }
        }
    }
}

/// The origins of the built-in plugin's URLs, as `allowed_hosts` patterns.
fn derive_allowed_hosts(
    settings: &BTreeMap<String, String>,
    url_settings: &[UrlSetting],
) -> Vec<String> {
    let mut hosts = Vec::new();
    for setting in url_settings {
        if setting.when.is_some_and(|when| !when.holds(settings)) {
            continue;
        }
        let url = settings
            .get(setting.key)
            .map(String::as_str)
            .filter(|url| !url.is_empty())
            .or(setting.default);
        let Some(url) = url.and_then(|u| url::Url::parse(u).ok()) else {
            continue;
        };
        let Some(host) = url.host_str() else { continue };
        let origin = match url.port() {
            Some(port) => format!("{}://{host}:{port}", url.scheme()),
            None => format!("{}://{host}", url.scheme()),
        };
        if !hosts.contains(&origin) {
            hosts.push(origin);
        }
    }
    hosts
}

/// `whsec_` (optional) followed by standard base64.
fn valid_signing_secret(secret: &str) -> bool {
    let secret = secret.trim();
    if secret.is_empty() {
        return true;
    }
    let encoded = secret.strip_prefix("whsec_").unwrap_or(secret);
    !encoded.is_empty()
        && encoded.len().is_multiple_of(4)
        && encoded
            .trim_end_matches('=')
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
}

/// The ini spelling of a TOML key that the legacy ini can set.
fn ini_name(key: &str) -> Option<&'static str> {
    Some(match key {
        "pbx.url" => "[3CX] URL",
        "pbx.client_id" => "[3CX] CLIENT_ID",
        "pbx.client_secret" => "[3CX] CLIENT_SECRET",
        "recordings.folder" => "[RECORDINGS] FOLDER",
        "server.public_url" => "[RECORDINGS] PUBLIC_URL",
        "server.tls_cert" => "[RECORDINGS] TLS_CERT",
        "server.tls_key" => "[RECORDINGS] TLS_KEY",
        _ => return None,
    })
}

fn show(duration: Duration) -> String {
    let secs = duration.as_secs();
    match secs {
        0 => "0s".to_string(),
        s if s.is_multiple_of(86_400) => format!("{}d", s / 86_400),
        s if s.is_multiple_of(3600) => format!("{}h", s / 3600),
        s if s.is_multiple_of(60) => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

/// Stands in for a `[pbx]` section with errors; never returned (errors are).
fn placeholder_pbx() -> PbxConfig {
    PbxConfig {
        url: url::Url::parse("http://invalid.invalid").expect("a valid URL"),
        client_id: String::new(),
        client_secret: Secret::new(""),
        ca_file: None,
        resnapshot_interval: ConnectorConfig::DEFAULT_RESNAPSHOT_INTERVAL,
        url_place: None,
        e164: E164::default(),
    }
}
