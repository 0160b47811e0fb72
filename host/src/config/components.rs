//! The validated configuration hands each component its own configuration (Vector's
//! `SinkConfig::build` is the model): the connector's, the queue's, the server's TLS files and
//! the engine's (the recorder's is [`Config::recordings`] itself). These are the only mappings from [`Config`] to
//! component types; every default a component has comes from its own type.

use super::Config;
use crate::calls::EngineConfig;
use crate::pbx::ConnectorConfig;
use crate::queue::QueueConfig;
use crate::server::TlsFiles;
use std::time::Duration;

impl Config {
    /// The connector's settings.
    pub fn connector(&self) -> ConnectorConfig {
        let pbx = &self.pbx;
        ConnectorConfig {
            ca_file: pbx.ca_file.as_ref().map(|file| file.path.clone()),
            resnapshot_interval: pbx.resnapshot_interval,
            ..ConnectorConfig::new(
                pbx.url.clone(),
                pbx.client_id.clone(),
                pbx.client_secret.expose(),
            )
        }
    }

    /// The engine's settings, as they are (`run`, `replay --config`).
    pub fn engine(&self) -> EngineConfig {
        self.engine.engine_config()
    }

    /// The HTTP server's certificate and key, when it serves HTTPS.
    pub fn server_tls(&self) -> Option<TlsFiles> {
        let (cert, key) = (
            self.server.tls_cert.as_ref()?,
            self.server.tls_key.as_ref()?,
        );
        Some(TlsFiles {
            cert: cert.path.clone(),
            key: key.path.clone(),
        })
    }

    /// The queue's routing and per-plugin policies: each plugin's `retry` overrides,
    /// concurrency and rate limit, and how long parked deliveries are kept.
    pub fn queue(&self) -> QueueConfig {
        let names = self.plugins.iter().map(|p| p.name.clone());
        let mut queue = QueueConfig::new(self.routes.clone(), names);
        queue.parked_keep = self
            .storage
            .parked_keep_days
            .map(|days| Duration::from_secs(u64::from(days) * 24 * 3600));
        for plugin in &self.plugins {
            let Some(policy) = queue.plugins.get_mut(&plugin.name) else {
                continue;
            };
            policy.concurrency = plugin.concurrency;
            policy.rate_per_second = plugin.rate_per_second;
            let overrides = &plugin.retry;
            if let Some(ladder) = &overrides.ladder {
                policy.retry.ladder = ladder.clone();
            }
            if let Some(max_age) = overrides.max_age {
                policy.retry.max_age = max_age;
            }
            if let Some(max_retry_after) = overrides.max_retry_after {
                policy.retry.max_retry_after = max_retry_after;
            }
        }
        queue
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(toml: &str) -> Config {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("callhook.toml");
        let pbx =
            "[pbx]\nurl = \"https://pbx.example.com\"\nclient_id = \"c\"\nclient_secret = \"s\"\n";
        std::fs::write(&file, format!("{pbx}{toml}")).unwrap();
        Config::load(&file).unwrap_or_else(|errors| panic!("{errors}"))
    }

    #[test]
    fn a_plugins_limits_and_retry_overrides_reach_the_queue() {
        let config = load(
            "[[plugin]]\nname = \"crm\"\npath = \"crm.wasm\"\nconcurrency = 2\nrate_per_second = 0.5\n\
             [plugin.retry]\nladder = [\"3s\"]\n",
        );
        let queue = config.queue();
        let crm = &queue.plugins["crm"];
        assert_eq!(crm.concurrency, 2);
        assert_eq!(crm.rate_per_second, Some(0.5));
        assert_eq!(crm.retry.ladder, [Duration::from_secs(3)]);
        let builtin = &queue.plugins["generic-webhook"];
        assert_eq!((builtin.concurrency, builtin.rate_per_second), (8, None));
    }

    #[test]
    fn storage_parked_keep_days_reaches_the_queue() {
        const DAY: u64 = 24 * 3600;
        for (storage, expected) in [
            ("", Some(30 * DAY)),
            ("[storage]\nparked_keep_days = 7\n", Some(7 * DAY)),
            ("[storage]\nparked_keep_days = 0\n", None),
        ] {
            let keep = load(storage).queue().parked_keep;
            assert_eq!(keep, expected.map(Duration::from_secs), "{storage:?}");
        }
    }

    #[test]
    fn defaults_come_from_the_components_own_types() {
        let config = load("");
        let connector = config.connector();
        let defaults = ConnectorConfig::new("https://pbx.example.com".parse().unwrap(), "c", "s");
        assert_eq!(connector.resnapshot_interval, defaults.resnapshot_interval);
        assert_eq!(connector.fetch_concurrency, defaults.fetch_concurrency);
        let recorder = &config.recordings;
        let recorder_defaults = crate::recordings::RecordingsConfig::default();
        assert_eq!(recorder.bitrate_kbps, recorder_defaults.bitrate_kbps);
        assert_eq!(recorder.keep_days, recorder_defaults.keep_days);
        assert_eq!(recorder.retry_for, recorder_defaults.retry_for);
        assert_eq!(config.engine().grace, EngineConfig::default().grace);
        assert_eq!(
            config.plugins[0].limits,
            crate::runtime::PluginLimits::default()
        );
        assert_eq!(config.server.listen, crate::server::DEFAULT_LISTEN);
        assert_eq!(
            config.storage.dir.path,
            std::path::Path::new(crate::app::storage::DEFAULT_DIR)
        );
        assert_eq!(config.server_tls(), None);
    }

    #[test]
    fn https_files_reach_the_server() {
        let config = load("[server]\ntls_cert = \"/etc/c.pem\"\ntls_key = \"/etc/k.pem\"\n");
        assert_eq!(
            config.server_tls(),
            Some(TlsFiles {
                cert: "/etc/c.pem".into(),
                key: "/etc/k.pem".into()
            })
        );
    }
}
