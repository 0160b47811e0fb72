//! The connector's resolved settings: where the PBX is, how to log in, and its timings.

use std::path::PathBuf;
use std::time::Duration;

use url::Url;

use super::token::Secret;

/// Everything the connector needs to watch one PBX. The configuration's validator
/// ([`crate::config`]) checks every value a user can set: an `http(s)` URL, a client id,
/// intervals of at least a second; the rest are these defaults.
///
/// Build one with [`ConnectorConfig::new`] and change the fields whose defaults do not fit:
///
/// ```
/// # use callhook::pbx::ConnectorConfig;
/// # use std::time::Duration;
/// let config = ConnectorConfig {
///     resnapshot_interval: Duration::from_secs(30),
///     ..ConnectorConfig::new("https://pbx.example.com:5001".parse().unwrap(), "callhook", "s3cret")
/// };
/// assert_eq!(config.ping_interval, Duration::from_secs(5));
/// ```
///
/// `Debug` never shows the secret.
#[derive(Debug, Clone)]
pub struct ConnectorConfig {
    /// The PBX's HTTPS origin, e.g. `https://pbx.example.com:5001`. Every path (`/connect/token`,
    /// `/callcontrol`, `/xapi/v1/...`) is resolved against it; the event socket uses the same
    /// host with `wss` (or `ws` for a plain `http` origin, which only tests use).
    pub base_url: Url,
    /// The API client's id (3CX: Admin > Integrations > API). Also the name of its route point.
    pub client_id: String,
    /// The API client's secret. Never logged nor captured.
    pub client_secret: Secret,
    /// A PEM file with extra CA certificates to trust besides the public web roots, for a PBX
    /// with a self-signed or private certificate. By default none.
    pub ca_file: Option<PathBuf>,
    /// How often to take a fresh snapshot although nothing seems lost, to heal anything missed.
    /// By default 60 s.
    pub resnapshot_interval: Duration,
    /// How often to ping the event socket. A socket that has received nothing (not even a pong)
    /// for three intervals is considered dead and reconnected. By default 5 s.
    pub ping_interval: Duration,
    /// The first reconnect delay; each failed attempt doubles it. By default 1 s.
    pub backoff_min: Duration,
    /// The longest reconnect delay. By default 60 s.
    pub backoff_max: Duration,
    /// Time limit of one HTTP request or WebSocket upgrade, connection included. By default 15 s.
    pub request_timeout: Duration,
    /// The most participant fetches running at once (different participants; one participant
    /// is fetched one at a time). By default 16.
    pub fetch_concurrency: usize,
    /// The least time between two snapshots taken because of sequence gaps; gaps within it
    /// share the next one. By default 5 s.
    pub gap_snapshot_every: Duration,
}

impl ConnectorConfig {
    /// The default first reconnect delay.
    pub const DEFAULT_BACKOFF_MIN: Duration = Duration::from_secs(1);
    /// The default longest reconnect delay.
    pub const DEFAULT_BACKOFF_MAX: Duration = Duration::from_secs(60);
    /// The default periodic resnapshot interval.
    pub const DEFAULT_RESNAPSHOT_INTERVAL: Duration = Duration::from_secs(60);
    /// The default ping interval.
    pub const DEFAULT_PING_INTERVAL: Duration = Duration::from_secs(5);
    /// The default request timeout.
    pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
    /// The default number of participant fetches running at once.
    pub const DEFAULT_FETCH_CONCURRENCY: usize = 16;
    /// The default least time between two snapshots for sequence gaps.
    pub const DEFAULT_GAP_SNAPSHOT_EVERY: Duration = Duration::from_secs(5);

    /// A configuration for the PBX at `base_url` with every other setting at its default.
    pub fn new(
        base_url: Url,
        client_id: impl Into<String>,
        client_secret: impl Into<Secret>,
    ) -> Self {
        ConnectorConfig {
            base_url,
            client_id: client_id.into(),
            client_secret: client_secret.into(),
            ca_file: None,
            resnapshot_interval: Self::DEFAULT_RESNAPSHOT_INTERVAL,
            ping_interval: Self::DEFAULT_PING_INTERVAL,
            backoff_min: Self::DEFAULT_BACKOFF_MIN,
            backoff_max: Self::DEFAULT_BACKOFF_MAX,
            request_timeout: Self::DEFAULT_REQUEST_TIMEOUT,
            fetch_concurrency: Self::DEFAULT_FETCH_CONCURRENCY,
            gap_snapshot_every: Self::DEFAULT_GAP_SNAPSHOT_EVERY,
        }
    }

    /// The event socket's URL: the base URL's host with `wss` (`ws` for `http`) and the path
    /// `/callcontrol/ws`.
    pub fn socket_url(&self) -> Url {
        let mut url = self.endpoint("/callcontrol/ws");
        let scheme = if url.scheme() == "http" { "ws" } else { "wss" };
        // Switching between these special schemes always succeeds.
        let _ = url.set_scheme(scheme);
        url
    }

    /// `path` (starting with `/`, may carry a query) resolved against the base URL, keeping
    /// any path prefix the base URL has (a PBX behind a reverse proxy under `/pbx`).
    pub fn endpoint(&self, path_and_query: &str) -> Url {
        let base = self.base_url.as_str().trim_end_matches('/');
        // The base URL parsed already; appending an absolute path keeps it a valid URL.
        Url::parse(&format!("{base}{path_and_query}")).unwrap_or_else(|_| self.base_url.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(base: &str) -> ConnectorConfig {
        ConnectorConfig::new(base.parse().unwrap(), "callhook", "secret")
    }

    #[test]
    fn socket_url_follows_the_scheme() {
        for (base, expected) in [
            (
                "https://pbx.example.com:5001",
                "wss://pbx.example.com:5001/callcontrol/ws",
            ),
            (
                "https://pbx.example.com:5001/",
                "wss://pbx.example.com:5001/callcontrol/ws",
            ),
            (
                "http://127.0.0.1:8080",
                "ws://127.0.0.1:8080/callcontrol/ws",
            ),
            (
                "https://proxy.example.com/pbx/",
                "wss://proxy.example.com/pbx/callcontrol/ws",
            ),
        ] {
            assert_eq!(config(base).socket_url().as_str(), expected, "{base}");
        }
    }

    #[test]
    fn endpoint_keeps_the_query() {
        let url = config("https://pbx.example.com").endpoint("/xapi/v1/Recordings?$top=5");
        assert_eq!(
            url.as_str(),
            "https://pbx.example.com/xapi/v1/Recordings?$top=5"
        );
    }

    #[test]
    fn debug_hides_the_secret() {
        let shown = format!("{:?}", config("https://pbx.example.com"));
        assert!(!shown.contains("secret\""), "{shown}");
        assert!(shown.contains("redacted"), "{shown}");
    }
}
