//! The HubSpot stand-in: CRM v3 contacts, owners and calls, as `crm-plugins.md` section 4.3
//! says the real API checks them.
//!
//! Every request needs `Authorization: Bearer {token}` ([`HubSpotConfig::token`]), else 401
//! `INVALID_AUTHENTICATION`. A rolling window per token ([`HubSpotConfig::rate_limit`] in
//! [`HubSpotConfig::rate_window`], by default 100 in 10 s) answers 429 `TEN_SECONDLY_ROLLING`
//! without `Retry-After` (unless [`crate::Faults::retry_after`]); other answers carry
//! `X-HubSpot-RateLimit-Max`, `-Remaining` and `-Interval-Milliseconds`. Searches carry none of
//! these headers and have their own limit: more than [`HubSpotConfig::searches_per_second`] a
//! second → 429 `SECONDLY`. The records and their validation live in `api.rs`.

mod api;

use std::collections::BTreeMap;
use std::ops::Deref;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use jiff::Timestamp;
use serde_json::{Value, json};

use crate::common::faults::Faults;
use crate::common::journal::Journal;
use crate::common::limit::RollingWindow;
use crate::common::{Ids, Standin};

/// The six outcomes every HubSpot account has: Busy, Connected, Left live message, Left
/// voicemail, No answer, Wrong number.
pub const DEFAULT_DISPOSITIONS: [&str; 6] = [
    "9d9162e7-6cf3-4944-bf63-4dff82258764",
    "f240bbac-87c9-4f6e-bf70-924b57d47db7",
    "a4c4c377-d246-4b32-a13b-75a56a4cd0ff",
    "b2cf5968-551e-4856-9783-52b3da59a7d0",
    "73a0d17f-1163-4015-bdd5-ec830791da20",
    "17b47fee-58de-441e-a44c-c6300d46f273",
];

/// How a HubSpot stand-in behaves.
#[derive(Debug, Clone)]
pub struct HubSpotConfig {
    /// The port on `127.0.0.1`. By default 0: an ephemeral port.
    pub port: u16,
    /// The private app token requests must carry. By default `pat-standin`.
    pub token: String,
    /// The operator's custom call property (`id_property`), accepted beside the standard
    /// ones. By default none.
    pub id_property: Option<String>,
    /// Requests per token in [`HubSpotConfig::rate_window`]. By default 100.
    pub rate_limit: usize,
    /// The rolling window. By default 10 s.
    pub rate_window: Duration,
    /// Searches a second. By default 5.
    pub searches_per_second: usize,
    /// How long a new call takes to show up in searches (HubSpot indexes with a delay). By
    /// default zero.
    pub search_delay: Duration,
}

impl Default for HubSpotConfig {
    fn default() -> Self {
        HubSpotConfig {
            port: 0,
            token: "pat-standin".into(),
            id_property: None,
            rate_limit: 100,
            rate_window: Duration::from_secs(10),
            searches_per_second: 5,
            search_delay: Duration::ZERO,
        }
    }
}

/// A HubSpot object as stored: a contact or a call.
#[derive(Debug, Clone, PartialEq)]
pub struct HubSpotObject {
    /// A digit string.
    pub id: String,
    /// The properties, all strings.
    pub properties: BTreeMap<String, String>,
    /// The ids of the contacts a call is associated with (type 194).
    pub contacts: Vec<String>,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it was last changed.
    pub updated_at: Timestamp,
}

/// A seeded owner.
#[derive(Debug, Clone, PartialEq)]
pub struct HubSpotOwner {
    /// The owner id (a digit string), what `hubspot_owner_id` takes.
    pub id: String,
    /// The e-mail `GET /crm/v3/owners?email=` looks for.
    pub email: String,
}

#[derive(Debug, Default)]
struct Store {
    contacts: Vec<HubSpotObject>,
    calls: Vec<HubSpotObject>,
    owners: Vec<HubSpotOwner>,
    dispositions: Vec<String>,
}

struct Shared {
    config: HubSpotConfig,
    store: Mutex<Store>,
    ids: Ids,
    window: RollingWindow,
    searches: RollingWindow,
    faults: Arc<Faults>,
}

impl Shared {
    fn store(&self) -> MutexGuard<'_, Store> {
        self.store.lock().expect("store poisoned")
    }
}

/// Starts HubSpot stand-ins.
pub struct HubSpot;

impl HubSpot {
    /// Binds `127.0.0.1:{port}` and serves; returns once the port accepts connections.
    pub async fn start(config: HubSpotConfig) -> anyhow::Result<HubSpotHandle> {
        let faults = Arc::new(Faults::default());
        let shared = Arc::new(Shared {
            window: RollingWindow::new(config.rate_limit, config.rate_window),
            searches: RollingWindow::new(config.searches_per_second, Duration::from_secs(1)),
            ids: Ids::new(17_591_596_434),
            store: Mutex::new(Store {
                dispositions: DEFAULT_DISPOSITIONS.map(String::from).to_vec(),
                ..Store::default()
            }),
            faults: faults.clone(),
            config,
        });
        let api = Router::new()
            .route("/crm/v3/objects/contacts", post(api::create_contact))
            .route(
                "/crm/v3/objects/contacts/search",
                post(api::search_contacts),
            )
            .route("/crm/v3/owners", get(api::owners))
            .route("/crm/v3/objects/calls", post(api::create_call))
            .route("/crm/v3/objects/calls/search", post(api::search_calls))
            .route(
                "/crm/v3/objects/calls/{id}",
                get(api::get_call).patch(api::patch_call),
            )
            .route_layer(middleware::from_fn_with_state(shared.clone(), gate))
            .with_state(shared.clone());
        let standin = Standin::start(
            shared.config.port,
            api,
            Arc::new(Journal::default()),
            faults,
        )
        .await?;
        Ok(HubSpotHandle { standin, shared })
    }
}

/// A running HubSpot stand-in; dereferences to [`Standin`] for the URL, faults and journal.
pub struct HubSpotHandle {
    standin: Standin,
    shared: Arc<Shared>,
}

impl Deref for HubSpotHandle {
    type Target = Standin;
    fn deref(&self) -> &Standin {
        &self.standin
    }
}

impl HubSpotHandle {
    /// Seeds a contact with these properties (e.g. `[("phone", "+49301234567")]`); returns its id.
    pub fn add_contact(&self, properties: &[(&str, &str)]) -> String {
        let id = self.shared.ids.next().to_string();
        let now = Timestamp::now();
        self.shared.store().contacts.push(HubSpotObject {
            id: id.clone(),
            properties: properties
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            contacts: Vec::new(),
            created_at: now,
            updated_at: now,
        });
        id
    }

    /// Seeds an owner with this e-mail; returns its id.
    pub fn add_owner(&self, email: &str) -> String {
        let id = self.shared.ids.next().to_string();
        self.shared.store().owners.push(HubSpotOwner {
            id: id.clone(),
            email: email.to_owned(),
        });
        id
    }

    /// Makes a custom call outcome's GUID valid for `hs_call_disposition`.
    pub fn add_disposition(&self, guid: &str) {
        self.shared.store().dispositions.push(guid.to_owned());
    }

    /// The contacts, seeded and created, in creation order.
    pub fn contacts(&self) -> Vec<HubSpotObject> {
        self.shared.store().contacts.clone()
    }

    /// The calls created, in creation order.
    pub fn calls(&self) -> Vec<HubSpotObject> {
        self.shared.store().calls.clone()
    }

    /// Deletes a call, as a user would in HubSpot: later reads and updates of it answer 404.
    pub fn delete_call(&self, id: &str) {
        self.shared.store().calls.retain(|call| call.id != id);
    }
}

/// A correlation id, as HubSpot puts in every error.
fn correlation_id() -> String {
    let n = Timestamp::now().as_nanosecond();
    format!(
        "{:08x}-0000-4000-8000-{:012x}",
        n as u32,
        (n >> 32) as u64 & 0xffff_ffff_ffff
    )
}

/// An error answer: `{"status":"error","message",...,"correlationId"}` with `extra` merged.
fn error(status: StatusCode, message: &str, extra: Value) -> Response {
    let mut body =
        json!({"status": "error", "message": message, "correlationId": correlation_id()});
    if let (Some(body), Value::Object(extra)) = (body.as_object_mut(), extra) {
        body.extend(extra);
    }
    (status, axum::Json(body)).into_response()
}

fn rate_limited(shared: &Shared, policy: &str, message: &str) -> Response {
    let mut response = error(
        StatusCode::TOO_MANY_REQUESTS,
        message,
        json!({"errorType": "RATE_LIMIT", "policyName": policy}),
    );
    if let Some(secs) = shared.faults.switches().retry_after {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    response
}

/// Middleware before every API route: delay, status bursts, authentication, rate limits.
async fn gate(State(shared): State<Arc<Shared>>, request: Request, next: Next) -> Response {
    let faults = &shared.faults;
    faults.wait().await;
    if let Some(status) = faults.take_status() {
        return (status, "stand-in status burst").into_response();
    }
    let expected = format!("Bearer {}", shared.config.token);
    let authorised = request
        .headers()
        .get(header::AUTHORIZATION)
        .is_some_and(|value| value.as_bytes() == expected.as_bytes());
    if !authorised || faults.switches().token_revoked {
        return error(
            StatusCode::UNAUTHORIZED,
            "Authentication credentials not found.",
            json!({"category": "INVALID_AUTHENTICATION"}),
        );
    }
    let ten_secondly = "You have reached your ten_secondly_rolling limit.";
    if faults.take_rate_limit() {
        return rate_limited(&shared, "TEN_SECONDLY_ROLLING", ten_secondly);
    }
    let window = shared.window.hit(&shared.config.token);
    if !window.allowed {
        return rate_limited(&shared, "TEN_SECONDLY_ROLLING", ten_secondly);
    }
    let search = request.uri().path().ends_with("/search");
    if search && !shared.searches.hit(&shared.config.token).allowed {
        return rate_limited(&shared, "SECONDLY", "You have reached your secondly limit.");
    }
    let mut response = next.run(request).await;
    if !search {
        let headers = response.headers_mut();
        headers.insert("x-hubspot-ratelimit-max", shared.window.limit().into());
        headers.insert("x-hubspot-ratelimit-remaining", window.remaining.into());
        let interval = u64::try_from(shared.window.window().as_millis()).unwrap_or(u64::MAX);
        headers.insert("x-hubspot-ratelimit-interval-milliseconds", interval.into());
    }
    response
}
