//! The Pipedrive stand-in: persons search, users find, call logs and their recordings, as
//! `crm-plugins.md` section 5.3 says the real API checks them.
//!
//! Every request needs `x-api-token: {token}` ([`PipedriveConfig::token`]), else 401
//! `unauthorized access`. The legacy `api_token` query parameter is refused like a missing
//! header: the plugins must never put the token in a URL. A rolling window per token
//! ([`PipedriveConfig::rate_limit`] in [`PipedriveConfig::rate_window`], by default 20 in 2 s)
//! answers 429 `{"success":false,"error":…,"errorCode":429}` *(body unverified)*; every answer
//! carries `x-ratelimit-limit`, `-remaining` and `-reset` (seconds). With
//! [`crate::Faults::daily_budget_exhausted`] every request gets 429 with `retry-after`. The
//! endpoints live in `api.rs`.

mod api;

use std::ops::Deref;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Map, Value, json};

use crate::common::faults::Faults;
use crate::common::journal::Journal;
use crate::common::limit::RollingWindow;
use crate::common::{Ids, Standin};

/// How a Pipedrive stand-in behaves.
#[derive(Debug, Clone)]
pub struct PipedriveConfig {
    /// The port on `127.0.0.1`. By default 0: an ephemeral port.
    pub port: u16,
    /// The API token requests must carry in `x-api-token`. By default `pd-standin`.
    pub token: String,
    /// Requests per token in [`PipedriveConfig::rate_window`]. By default 20.
    pub rate_limit: usize,
    /// The rolling window. By default 2 s.
    pub rate_window: Duration,
}

impl Default for PipedriveConfig {
    fn default() -> Self {
        PipedriveConfig {
            port: 0,
            token: "pd-standin".into(),
            rate_limit: 20,
            rate_window: Duration::from_secs(2),
        }
    }
}

/// A call log as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct PipedriveCallLog {
    /// A string, as Pipedrive gives it.
    pub id: String,
    /// The fields as sent.
    pub fields: Map<String, Value>,
    /// The uploaded recording: file name and bytes.
    pub recording: Option<(String, Vec<u8>)>,
    /// Deleted by [`PipedriveHandle::delete_call_log`]: uploads answer 410.
    pub deleted: bool,
}

/// A seeded person.
#[derive(Debug, Clone, PartialEq)]
pub struct PipedrivePerson {
    /// The person id.
    pub id: i64,
    /// Its name.
    pub name: String,
    /// Its phone numbers, as stored (searched by substring).
    pub phones: Vec<String>,
}

/// A seeded user.
#[derive(Debug, Clone, PartialEq)]
pub struct PipedriveUser {
    /// The user id, what `user_id` takes.
    pub id: i64,
    /// Its e-mail.
    pub email: String,
}

#[derive(Debug, Default)]
struct Store {
    persons: Vec<PipedrivePerson>,
    users: Vec<PipedriveUser>,
    organizations: Vec<i64>,
    deals: Vec<i64>,
    call_logs: Vec<PipedriveCallLog>,
}

struct Shared {
    config: PipedriveConfig,
    store: Mutex<Store>,
    ids: Ids,
    window: RollingWindow,
    faults: Arc<Faults>,
}

impl Shared {
    fn store(&self) -> MutexGuard<'_, Store> {
        self.store.lock().expect("store poisoned")
    }
}

/// Starts Pipedrive stand-ins.
pub struct Pipedrive;

impl Pipedrive {
    /// Binds `127.0.0.1:{port}` and serves; returns once the port accepts connections.
    pub async fn start(config: PipedriveConfig) -> anyhow::Result<PipedriveHandle> {
        let faults = Arc::new(Faults::default());
        let shared = Arc::new(Shared {
            window: RollingWindow::new(config.rate_limit, config.rate_window),
            ids: Ids::new(1),
            store: Mutex::new(Store::default()),
            faults: faults.clone(),
            config,
        });
        let api = Router::new()
            .route("/api/v2/persons/search", get(api::search_persons))
            .route("/v1/users/find", get(api::find_users))
            .route("/v1/callLogs", post(api::create_call_log))
            .route("/v1/callLogs/{id}/recordings", post(api::upload_recording))
            .route_layer(middleware::from_fn_with_state(shared.clone(), gate))
            .with_state(shared.clone());
        let standin = Standin::start(
            shared.config.port,
            api,
            Arc::new(Journal::default()),
            faults,
        )
        .await?;
        Ok(PipedriveHandle { standin, shared })
    }
}

/// A running Pipedrive stand-in; dereferences to [`Standin`] for the URL, faults and journal.
pub struct PipedriveHandle {
    standin: Standin,
    shared: Arc<Shared>,
}

impl Deref for PipedriveHandle {
    type Target = Standin;
    fn deref(&self) -> &Standin {
        &self.standin
    }
}

impl PipedriveHandle {
    /// Seeds a person with these phone numbers; returns its id.
    pub fn add_person(&self, name: &str, phones: &[&str]) -> i64 {
        let id = self.next_id();
        self.shared.store().persons.push(PipedrivePerson {
            id,
            name: name.to_owned(),
            phones: phones.iter().map(|p| (*p).to_owned()).collect(),
        });
        id
    }

    /// Seeds a user with this e-mail; returns its id.
    pub fn add_user(&self, email: &str) -> i64 {
        let id = self.next_id();
        self.shared.store().users.push(PipedriveUser {
            id,
            email: email.to_owned(),
        });
        id
    }

    /// Seeds an organization (for `org_id`); returns its id.
    pub fn add_organization(&self) -> i64 {
        let id = self.next_id();
        self.shared.store().organizations.push(id);
        id
    }

    /// Seeds a deal (for `deal_id`); returns its id.
    pub fn add_deal(&self) -> i64 {
        let id = self.next_id();
        self.shared.store().deals.push(id);
        id
    }

    /// The call logs created, in creation order.
    pub fn call_logs(&self) -> Vec<PipedriveCallLog> {
        self.shared.store().call_logs.clone()
    }

    /// Deletes a call log, as a user would: uploads to it answer 410.
    pub fn delete_call_log(&self, id: &str) {
        let mut store = self.shared.store();
        for log in store.call_logs.iter_mut().filter(|log| log.id == id) {
            log.deleted = true;
        }
    }

    fn next_id(&self) -> i64 {
        i64::try_from(self.shared.ids.next()).unwrap_or(i64::MAX)
    }
}

/// An error answer: `{"success":false,"error":message}`.
fn error(status: StatusCode, message: &str) -> Response {
    let body = json!({"success": false, "error": message});
    (status, axum::Json(body)).into_response()
}

fn rate_headers(headers: &mut HeaderMap, limit: usize, remaining: usize, reset: Duration) {
    headers.insert("x-ratelimit-limit", limit.into());
    headers.insert("x-ratelimit-remaining", remaining.into());
    headers.insert("x-ratelimit-reset", reset.as_secs().max(1).into());
}

/// Middleware before every API route: delay, status bursts, authentication, rate limits.
async fn gate(State(shared): State<Arc<Shared>>, request: Request, next: Next) -> Response {
    let faults = &shared.faults;
    faults.wait().await;
    if let Some(status) = faults.take_status() {
        return (status, "stand-in status burst").into_response();
    }
    let authorised = request
        .headers()
        .get("x-api-token")
        .is_some_and(|value| value.as_bytes() == shared.config.token.as_bytes());
    if !authorised || faults.switches().token_revoked {
        let body = json!({"success": false, "error": "unauthorized access", "errorCode": 401,
            "error_info": "Please check developers.pipedrive.com"});
        return (StatusCode::UNAUTHORIZED, axum::Json(body)).into_response();
    }
    let limited = |reset: Duration| {
        let body = json!({"success": false, "error": "Request over limit", "errorCode": 429});
        let mut response = (StatusCode::TOO_MANY_REQUESTS, axum::Json(body)).into_response();
        rate_headers(response.headers_mut(), shared.window.limit(), 0, reset);
        response
    };
    if faults.switches().daily_budget_exhausted {
        let mut response = limited(Duration::from_secs(3600));
        response.headers_mut().insert("retry-after", 3600.into());
        return response;
    }
    let window = shared.window.hit(&shared.config.token);
    if faults.take_rate_limit() || !window.allowed {
        return limited(window.reset);
    }
    let mut response = next.run(request).await;
    let (limit, remaining) = (shared.window.limit(), window.remaining);
    rate_headers(response.headers_mut(), limit, remaining, window.reset);
    response
}
