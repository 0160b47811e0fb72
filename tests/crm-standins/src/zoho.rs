//! The Zoho CRM stand-in: the accounts server's token endpoint and CRM v8 Contacts, Leads,
//! users and Calls, as `crm-plugins.md` section 7.3 says the real services check them.
//!
//! One port serves both the accounts server (`accounts_base`) and the API (`api_base`).
//! `POST /oauth/v2/token` takes its parameters in the query only; a bad refresh token or client
//! answers **200** `{"error":"invalid_code"}` (`invalid_client`), and the eleventh token for one
//! refresh token within ten minutes ([`ZohoConfig::tokens_per_window`] in
//! [`ZohoConfig::token_window`]) 400 `{"error":"Access Denied",…}` *(exact answer unverified)*.
//! Zoho refresh tokens do not rotate. Every API request needs `Authorization: Zoho-oauthtoken
//! {access token}` of a token issued here and younger than [`ZohoConfig::access_token_ttl`];
//! `Bearer`, an unknown or an expired token → 401 `INVALID_TOKEN`. More than
//! [`ZohoConfig::max_in_flight`] requests in flight → 429 `TOO_MANY_REQUESTS` *(body
//! unverified)*. The token endpoint lives in `oauth.rs`, the records in `api.rs`.

mod api;
mod oauth;

use std::collections::HashMap;
use std::ops::Deref;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Map, Value, json};

use crate::common::faults::Faults;
use crate::common::journal::Journal;
use crate::common::limit::{InFlight, RollingWindow};
use crate::common::{Ids, Standin};

/// How a Zoho stand-in behaves.
#[derive(Debug, Clone)]
pub struct ZohoConfig {
    /// The port on `127.0.0.1`. By default 0: an ephemeral port.
    pub port: u16,
    /// The client id the token endpoint takes. By default `1000.STANDIN`.
    pub client_id: String,
    /// The client secret the token endpoint takes. By default `zoho-secret`.
    pub client_secret: String,
    /// The refresh token the token endpoint takes. By default `1000.refresh.standin`.
    pub refresh_token: String,
    /// How long an access token lives. By default 3600 s.
    pub access_token_ttl: Duration,
    /// Access tokens per refresh token in [`ZohoConfig::token_window`]. By default 10.
    pub tokens_per_window: usize,
    /// The window of that limit. By default ten minutes.
    pub token_window: Duration,
    /// Requests in flight at once before 429. By default 5.
    pub max_in_flight: usize,
    /// The operator's custom field on Calls (`id_field`), accepted beside the standard ones.
    /// By default none.
    pub id_field: Option<String>,
}

impl Default for ZohoConfig {
    fn default() -> Self {
        ZohoConfig {
            port: 0,
            client_id: "1000.STANDIN".into(),
            client_secret: "zoho-secret".into(),
            refresh_token: "1000.refresh.standin".into(),
            access_token_ttl: Duration::from_secs(3600),
            tokens_per_window: 10,
            token_window: Duration::from_secs(600),
            max_in_flight: 5,
            id_field: None,
        }
    }
}

/// A Zoho record: a seeded contact, lead or user, or a created call.
#[derive(Debug, Clone, PartialEq)]
pub struct ZohoRecord {
    /// A 19-digit string.
    pub id: String,
    /// The fields as stored.
    pub fields: Map<String, Value>,
}

#[derive(Debug, Default)]
struct Store {
    contacts: Vec<ZohoRecord>,
    leads: Vec<ZohoRecord>,
    users: Vec<ZohoRecord>,
    calls: Vec<ZohoRecord>,
    /// Access tokens and when they were issued.
    tokens: HashMap<String, Instant>,
}

struct Shared {
    config: ZohoConfig,
    store: Mutex<Store>,
    ids: Ids,
    grants: RollingWindow,
    in_flight: InFlight,
    faults: Arc<Faults>,
    base_url: Mutex<String>,
}

impl Shared {
    fn store(&self) -> MutexGuard<'_, Store> {
        self.store.lock().expect("store poisoned")
    }

    fn next_id(&self) -> String {
        (5_725_767_000_000_000_000 + self.ids.next()).to_string()
    }
}

/// Starts Zoho stand-ins.
pub struct Zoho;

impl Zoho {
    /// Binds `127.0.0.1:{port}` and serves; returns once the port accepts connections.
    pub async fn start(config: ZohoConfig) -> anyhow::Result<ZohoHandle> {
        let faults = Arc::new(Faults::default());
        let shared = Arc::new(Shared {
            grants: RollingWindow::new(config.tokens_per_window, config.token_window),
            in_flight: InFlight::new(config.max_in_flight),
            ids: Ids::new(1),
            store: Mutex::new(Store::default()),
            faults: faults.clone(),
            base_url: Mutex::new(String::new()),
            config,
        });
        let crm = Router::new()
            .route("/crm/v8/{module}/search", get(api::search))
            .route("/crm/v8/Calls/search", get(api::search_calls))
            .route("/crm/v8/users", get(api::users))
            .route("/crm/v8/Calls", post(api::create_calls))
            .route(
                "/crm/v8/Calls/{id}",
                get(api::get_call).put(api::update_call),
            )
            .route_layer(middleware::from_fn_with_state(shared.clone(), gate));
        let api = Router::new()
            .route("/oauth/v2/token", post(oauth::token))
            .merge(crm)
            .with_state(shared.clone());
        let standin = Standin::start(
            shared.config.port,
            api,
            Arc::new(Journal::default()),
            faults,
        )
        .await?;
        *shared.base_url.lock().expect("poisoned") = standin.base_url();
        Ok(ZohoHandle { standin, shared })
    }
}

/// A running Zoho stand-in; dereferences to [`Standin`] for the URL, faults and journal.
pub struct ZohoHandle {
    standin: Standin,
    shared: Arc<Shared>,
}

impl Deref for ZohoHandle {
    type Target = Standin;
    fn deref(&self) -> &Standin {
        &self.standin
    }
}

fn seed(shared: &Shared, fields: Value) -> ZohoRecord {
    ZohoRecord {
        id: shared.next_id(),
        fields: fields.as_object().cloned().unwrap_or_default(),
    }
}

impl ZohoHandle {
    /// Seeds a contact with this `Phone`; returns its id.
    pub fn add_contact(&self, name: &str, phone: &str) -> String {
        let record = seed(&self.shared, json!({"Full_Name": name, "Phone": phone}));
        self.shared.store().contacts.push(record.clone());
        record.id
    }

    /// Seeds a lead with this `Phone`; returns its id.
    pub fn add_lead(&self, name: &str, phone: &str) -> String {
        let record = seed(&self.shared, json!({"Full_Name": name, "Phone": phone}));
        self.shared.store().leads.push(record.clone());
        record.id
    }

    /// Seeds an active user with this e-mail; returns its id.
    pub fn add_user(&self, email: &str) -> String {
        let record = seed(&self.shared, json!({"email": email, "status": "active"}));
        self.shared.store().users.push(record.clone());
        record.id
    }

    /// The calls created, in creation order.
    pub fn calls(&self) -> Vec<ZohoRecord> {
        self.shared.store().calls.clone()
    }

    /// Deletes a call, as a user would: reading it answers 204.
    pub fn delete_call(&self, id: &str) {
        self.shared.store().calls.retain(|call| call.id != id);
    }

    /// Access tokens issued so far.
    pub fn tokens_issued(&self) -> usize {
        self.shared.store().tokens.len()
    }

    /// Ages every access token issued so far past its life: the next request with one gets 401.
    pub fn expire_access_tokens(&self) {
        let past = Instant::now().checked_sub(self.shared.config.access_token_ttl);
        for issued in self.shared.store().tokens.values_mut() {
            *issued = past.unwrap_or(*issued);
        }
    }
}

/// An error answer `{"code","details","message","status":"error"}`.
fn error(status: StatusCode, code: &str, message: &str, details: Value) -> Response {
    let body = json!({"code": code, "details": details, "message": message, "status": "error"});
    (status, axum::Json(body)).into_response()
}

/// Middleware before every CRM route: delay, status bursts, requests in flight, the token.
async fn gate(State(shared): State<Arc<Shared>>, request: Request, next: Next) -> Response {
    let faults = &shared.faults;
    let Some(_place) = shared.in_flight.enter() else {
        let message = "too many concurrent requests";
        return error(
            StatusCode::TOO_MANY_REQUESTS,
            "TOO_MANY_REQUESTS",
            message,
            json!({}),
        );
    };
    faults.wait().await;
    if let Some(status) = faults.take_status() {
        return (status, "stand-in status burst").into_response();
    }
    let token = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Zoho-oauthtoken "));
    let ttl = shared.config.access_token_ttl;
    let valid = token.is_some_and(|token| {
        shared
            .store()
            .tokens
            .get(token)
            .is_some_and(|issued| issued.elapsed() < ttl)
    });
    if !valid || faults.switches().token_revoked {
        let message = "invalid oauth token";
        return error(
            StatusCode::UNAUTHORIZED,
            "INVALID_TOKEN",
            message,
            json!({}),
        );
    }
    if faults.take_rate_limit() {
        let message = "too many requests";
        return error(
            StatusCode::TOO_MANY_REQUESTS,
            "TOO_MANY_REQUESTS",
            message,
            json!({}),
        );
    }
    next.run(request).await
}
