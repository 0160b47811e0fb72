//! What the four stand-ins share: the server, the request journal, rate limits, fault switches,
//! time formats, and [`Standin`], the part of every handle that is the same.

pub(crate) mod faults;
pub(crate) mod journal;
pub(crate) mod limit;
pub(crate) mod serve;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use axum::middleware;
use axum::routing::{get, post};
use jiff::Timestamp;

use faults::Faults;
use journal::{Journal, Recorded};
use serve::Server;

/// The running server and what every stand-in keeps: its request journal and fault switches.
/// Each CRM's handle dereferences to it.
pub struct Standin {
    server: Server,
    journal: Arc<Journal>,
    faults: Arc<Faults>,
}

impl Standin {
    /// Serves `api` (recorded) beside the `/_standin/` control paths (not recorded).
    pub(crate) async fn start(
        port: u16,
        api: Router,
        journal: Arc<Journal>,
        faults: Arc<Faults>,
    ) -> anyhow::Result<Standin> {
        let control = Router::new()
            .route("/_standin/faults", get(faults::describe))
            .route("/_standin/{switch}", post(faults::control))
            .with_state(faults.clone());
        let app = api
            .layer(middleware::from_fn_with_state(
                journal.clone(),
                journal::record,
            ))
            .merge(control);
        let server = Server::start(port, app).await?;
        Ok(Standin {
            server,
            journal,
            faults,
        })
    }

    /// `http://127.0.0.1:PORT`, without a trailing slash: the plugin's `api_base` (and, for
    /// Bitrix24 and Zoho, `oauth_base` / `accounts_base`, served by the same port).
    pub fn base_url(&self) -> String {
        self.server.base_url()
    }

    /// The address the stand-in listens on.
    pub fn local_addr(&self) -> std::net::SocketAddr {
        self.server.local_addr()
    }

    /// The fault switches.
    pub fn faults(&self) -> &Faults {
        &self.faults
    }

    /// Every API request received so far (not the `/_standin/` ones), secrets masked.
    pub fn requests(&self) -> Vec<Recorded> {
        self.journal.all()
    }

    /// The API requests so far whose path `path` accepts, each as `METHOD path?query` (secrets
    /// masked): what a test lists when it asserts that none, or which, were sent.
    pub fn requests_to(&self, path: impl Fn(&str) -> bool) -> Vec<String> {
        let requests = self.journal.all().into_iter();
        requests
            .filter(|r| path(&r.path))
            .map(|r| format!("{} {}?{}", r.method, r.path, r.query))
            .collect()
    }

    /// How many API requests were received so far.
    pub fn request_count(&self) -> usize {
        self.journal.count()
    }

    /// Stops serving; returns once the port is free.
    pub async fn shutdown(self) {
        self.server.shutdown().await;
    }
}

/// A counter handing out ids, from `first` up.
#[derive(Debug)]
pub(crate) struct Ids(AtomicU64);

impl Ids {
    pub(crate) fn new(first: u64) -> Self {
        Ids(AtomicU64::new(first))
    }

    pub(crate) fn next(&self) -> u64 {
        self.0.fetch_add(1, Ordering::SeqCst)
    }
}

/// Whether `text` has the shape of `pattern`, where `9` stands for any ASCII digit and every
/// other character for itself.
pub(crate) fn shaped(text: &str, pattern: &str) -> bool {
    text.len() == pattern.len()
        && text.bytes().zip(pattern.bytes()).all(|(t, p)| match p {
            b'9' => t.is_ascii_digit(),
            _ => t == p,
        })
}

/// `YYYY-MM-DDTHH:MM:SS+HH:MM` (or `-HH:MM`): ISO-8601 with a numeric offset, as Bitrix24 and
/// Zoho take it. `Z` is refused: the plugins never send it.
pub(crate) fn offset_time(text: &str) -> Option<Timestamp> {
    let (shape_plus, shape_minus) = ("9999-99-99T99:99:99+99:99", "9999-99-99T99:99:99-99:99");
    (shaped(text, shape_plus) || shaped(text, shape_minus))
        .then(|| text.parse().ok())
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offset_time_takes_numeric_offsets_only() {
        for (text, ok) in [
            ("2026-11-28T09:15:05+00:00", true),
            ("2026-11-28T10:15:05+01:00", true),
            ("2026-11-28T09:15:05-03:30", true),
            ("2026-11-28T09:15:05Z", false),
            ("2026-11-28T09:15:05.000+00:00", false),
            ("2026-11-28 09:15:05+00:00", false),
            ("2026-13-28T09:15:05+00:00", false),
        ] {
            assert_eq!(offset_time(text).is_some(), ok, "{text}");
        }
    }
}
