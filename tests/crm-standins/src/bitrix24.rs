//! The Bitrix24 stand-in: one portal's REST telephony methods and the OAuth server, as
//! `crm-plugins.md` section 6.3 says the real services check them.
//!
//! One port serves the portal (`portal`) and the OAuth server (`oauth_base`). Methods are
//! `POST`ed with JSON bodies in either form: `/rest/{user}/{code}/{method}` (inbound webhook,
//! [`Bitrix24Config::webhook_user_id`] and [`Bitrix24Config::webhook_code`]) or `/rest/{method}`
//! with `auth` (an access token from `GET /oauth/token/`) in the body or the query; method names
//! are case-insensitive and take an optional `.json` suffix. An unknown webhook or token → 401
//! `NO_AUTH_FOUND`, a token older than [`Bitrix24Config::access_token_ttl`] → 401
//! `expired_token`. Through a webhook, `register` and `finish` answer 403 `WRONG_AUTH_TYPE`
//! unless [`crate::Faults::allow_webhook_telephony`] is on (the current documentation says they
//! work for applications only; which portals still allow webhooks is unverified). Every method
//! passes a leaky bucket per portal, [`Bitrix24Config::bucket_capacity`] requests draining
//! [`Bitrix24Config::drain_per_second`] → 503 `QUERY_LIMIT_EXCEEDED`.
//!
//! Codes the spec does not give are *(unverified)*: a missing or malformed parameter is 400
//! `ERROR_ARGUMENT`, an unknown method 404 `ERROR_METHOD_NOT_FOUND`, and parameters outside
//! those each method documents are refused (the real portal ignores them) so that a misspelt
//! one shows in tests. Numeric parameters must be JSON integers, `STATUS_CODE` a string.
//! The telephony methods live in `telephony.rs`, the OAuth server in `oauth.rs`.

mod oauth;
mod telephony;

use std::collections::{HashMap, HashSet};
use std::ops::Deref;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use jiff::Timestamp;
use serde_json::{Map, Value, json};

use crate::common::faults::Faults;
use crate::common::journal::Journal;
use crate::common::limit::LeakyBucket;
use crate::common::serve::Conn;
use crate::common::{Ids, Standin};

/// How a Bitrix24 stand-in behaves.
#[derive(Debug, Clone)]
pub struct Bitrix24Config {
    /// The port on `127.0.0.1`. By default 0: an ephemeral port.
    pub port: u16,
    /// The user id part of the inbound webhook URL. By default `1`.
    pub webhook_user_id: String,
    /// The code part of the inbound webhook URL. By default `standin-webhook-code`.
    pub webhook_code: String,
    /// The local application's client id. By default `local.standin`.
    pub client_id: String,
    /// The local application's client secret. By default `b24-secret`.
    pub client_secret: String,
    /// The refresh token of the installation, valid until its first use. By default
    /// `b24-refresh-standin`.
    pub refresh_token: String,
    /// How long an access token lives. By default 3600 s.
    pub access_token_ttl: Duration,
    /// Requests the bucket holds. By default 50.
    pub bucket_capacity: u32,
    /// Requests the bucket drains a second. By default 2.
    pub drain_per_second: f64,
    /// How long a register with the same number, type, user and `EXTERNAL_CALL_ID` returns
    /// the same `CALL_ID`. By default 30 minutes.
    pub reregister_window: Duration,
}

impl Default for Bitrix24Config {
    fn default() -> Self {
        Bitrix24Config {
            port: 0,
            webhook_user_id: "1".into(),
            webhook_code: "standin-webhook-code".into(),
            client_id: "local.standin".into(),
            client_secret: "b24-secret".into(),
            refresh_token: "b24-refresh-standin".into(),
            access_token_ttl: Duration::from_secs(3600),
            bucket_capacity: 50,
            drain_per_second: 2.0,
            reregister_window: Duration::from_secs(30 * 60),
        }
    }
}

/// A registered external call, with what `finish` and `attachRecord` added to it.
#[derive(Debug, Clone, PartialEq)]
pub struct Bitrix24Call {
    /// `externalCall.<32 hex>.<unix time>`.
    pub call_id: String,
    /// The user it was registered for.
    pub registered_user: i64,
    /// The parameters of `register`, `auth` left out.
    pub register: Map<String, Value>,
    /// The statistics row `finish` wrote, if finished.
    pub finished: Option<Bitrix24Finish>,
    /// The recording `attachRecord` downloaded: file name and bytes.
    pub recording: Option<(String, Vec<u8>)>,
}

/// A statistics row and the CRM activity of a finished call.
#[derive(Debug, Clone, PartialEq)]
pub struct Bitrix24Finish {
    /// The user who finished the call.
    pub user: i64,
    /// `DURATION`, in seconds.
    pub duration: u64,
    /// `STATUS_CODE`.
    pub status_code: String,
    /// The id of the CRM activity made for it.
    pub activity_id: u64,
}

/// A seeded portal user.
#[derive(Debug, Clone, PartialEq)]
pub struct Bitrix24User {
    /// The user id (`USER_ID`).
    pub id: i64,
    /// The internal phone number (`USER_PHONE_INNER`).
    pub inner_number: String,
}

#[derive(Debug)]
struct Store {
    users: Vec<Bitrix24User>,
    contacts: Vec<(i64, String)>,
    /// Leads, as `(id, phone)`: the ones `register` made with `CRM_CREATE` = 1.
    leads: Vec<(i64, String)>,
    calls: Vec<(Bitrix24Call, Instant)>,
    access_tokens: HashMap<String, Instant>,
    refresh_tokens: HashSet<String>,
    refreshes: usize,
}

struct Shared {
    config: Bitrix24Config,
    store: Mutex<Store>,
    ids: Ids,
    bucket: LeakyBucket,
    faults: Arc<Faults>,
    base_url: Mutex<String>,
}

impl Shared {
    fn store(&self) -> MutexGuard<'_, Store> {
        self.store.lock().expect("store poisoned")
    }
}

/// Starts Bitrix24 stand-ins.
pub struct Bitrix24;

impl Bitrix24 {
    /// Binds `127.0.0.1:{port}` and serves; returns once the port accepts connections.
    pub async fn start(config: Bitrix24Config) -> anyhow::Result<Bitrix24Handle> {
        let faults = Arc::new(Faults::default());
        let shared = Arc::new(Shared {
            bucket: LeakyBucket::new(config.bucket_capacity, config.drain_per_second),
            ids: Ids::new(1),
            store: Mutex::new(Store {
                users: Vec::new(),
                contacts: Vec::new(),
                leads: Vec::new(),
                calls: Vec::new(),
                access_tokens: HashMap::new(),
                refresh_tokens: HashSet::from([config.refresh_token.clone()]),
                refreshes: 0,
            }),
            faults: faults.clone(),
            base_url: Mutex::new(String::new()),
            config,
        });
        let api = Router::new()
            .route("/oauth/token/", get(oauth::token))
            .route("/oauth/token", get(oauth::token))
            .route("/rest/{method}", post(app_method))
            .route("/rest/{user}/{code}/{method}", post(webhook_method))
            .with_state(shared.clone());
        let standin = Standin::start(
            shared.config.port,
            api,
            Arc::new(Journal::default()),
            faults,
        )
        .await?;
        *shared.base_url.lock().expect("poisoned") = standin.base_url();
        Ok(Bitrix24Handle { standin, shared })
    }
}

/// A running Bitrix24 stand-in; dereferences to [`Standin`] for the URL, faults and journal.
pub struct Bitrix24Handle {
    standin: Standin,
    shared: Arc<Shared>,
}

impl Deref for Bitrix24Handle {
    type Target = Standin;
    fn deref(&self) -> &Standin {
        &self.standin
    }
}

impl Bitrix24Handle {
    /// Seeds a user with this internal number; returns its id.
    pub fn add_user(&self, inner_number: &str) -> i64 {
        let id = i64::try_from(self.shared.ids.next()).unwrap_or(i64::MAX);
        self.shared.store().users.push(Bitrix24User {
            id,
            inner_number: inner_number.to_owned(),
        });
        id
    }

    /// Seeds a CRM contact with this phone number, which `register` binds calls to; returns
    /// its id.
    pub fn add_contact(&self, phone: &str) -> i64 {
        let id = i64::try_from(self.shared.ids.next()).unwrap_or(i64::MAX);
        self.shared.store().contacts.push((id, phone.to_owned()));
        id
    }

    /// The leads `register` made for numbers it found in no contact or lead (`CRM_CREATE` = 1),
    /// as `(id, phone)`, oldest first.
    pub fn leads(&self) -> Vec<(i64, String)> {
        self.shared.store().leads.clone()
    }

    /// Every registered call, finished or not, in registration order.
    pub fn calls(&self) -> Vec<Bitrix24Call> {
        self.shared
            .store()
            .calls
            .iter()
            .map(|(call, _)| call.clone())
            .collect()
    }

    /// The finished calls (statistics rows), in registration order.
    pub fn finished_calls(&self) -> Vec<Bitrix24Call> {
        let calls = self.calls().into_iter();
        calls.filter(|call| call.finished.is_some()).collect()
    }

    /// Refreshes served by `GET /oauth/token/` so far.
    pub fn refreshes(&self) -> usize {
        self.shared.store().refreshes
    }

    /// The refresh tokens that work right now (one after each refresh).
    pub fn valid_refresh_tokens(&self) -> Vec<String> {
        self.shared.store().refresh_tokens.iter().cloned().collect()
    }

    /// Ages every access token issued so far past its life: the next request with one gets
    /// 401 `expired_token`.
    pub fn expire_access_tokens(&self) {
        let past = Instant::now().checked_sub(self.shared.config.access_token_ttl);
        for issued in self.shared.store().access_tokens.values_mut() {
            *issued = past.unwrap_or(*issued);
        }
    }
}

/// An error answer `{"error","error_description"}`.
fn error(status: StatusCode, code: &str, description: &str) -> Response {
    let body = json!({"error": code, "error_description": description});
    (status, axum::Json(body)).into_response()
}

/// A success answer `{"result": …, "time": {…}}`.
fn result(value: Value) -> Response {
    let now = Timestamp::now();
    let time = json!({"start": now.as_millisecond() as f64 / 1000.0, "duration": 0.01,
        "date_start": now.to_string()});
    axum::Json(json!({"result": value, "time": time})).into_response()
}

/// How a method call authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Auth {
    Webhook,
    App,
}

/// `POST /rest/{method}` with `auth`.
async fn app_method(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(conn): ConnectInfo<Conn>,
    Path(method): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    let token = query.get("auth").cloned();
    call(&shared, &conn, &method, body, |params| {
        let token = params
            .remove("auth")
            .and_then(|v| v.as_str().map(String::from))
            .or(token);
        let store = shared.store();
        match token.and_then(|t| store.access_tokens.get(&t).copied()) {
            None => Err(error(
                StatusCode::UNAUTHORIZED,
                "NO_AUTH_FOUND",
                "Wrong authorization data",
            )),
            Some(issued) if issued.elapsed() >= shared.config.access_token_ttl => Err(error(
                StatusCode::UNAUTHORIZED,
                "expired_token",
                "The access token provided has expired.",
            )),
            Some(_) => Ok(Auth::App),
        }
    })
    .await
}

/// `POST /rest/{user}/{code}/{method}`.
async fn webhook_method(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(conn): ConnectInfo<Conn>,
    Path((user, code, method)): Path<(String, String, String)>,
    body: Bytes,
) -> Response {
    call(&shared, &conn, &method, body, |_| {
        if user == shared.config.webhook_user_id && code == shared.config.webhook_code {
            Ok(Auth::Webhook)
        } else {
            Err(error(
                StatusCode::UNAUTHORIZED,
                "NO_AUTH_FOUND",
                "Wrong authorization data",
            ))
        }
    })
    .await
}

/// A method call after routing: delay, status bursts, the bucket, authentication, the
/// webhook restriction, then the method.
async fn call(
    shared: &Shared,
    conn: &Conn,
    method: &str,
    body: Bytes,
    authenticate: impl FnOnce(&mut Map<String, Value>) -> Result<Auth, Response>,
) -> Response {
    let faults = &shared.faults;
    faults.wait().await;
    if let Some(status) = faults.take_status() {
        return (status, "stand-in status burst").into_response();
    }
    if faults.take_rate_limit() || !shared.bucket.admit() {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "QUERY_LIMIT_EXCEEDED",
            "Too many requests",
        );
    }
    let mut params = match serde_json::from_slice::<Value>(&body) {
        Ok(Value::Object(params)) => params,
        _ if body.is_empty() => Map::new(),
        _ => {
            return error(
                StatusCode::BAD_REQUEST,
                "ERROR_ARGUMENT",
                "the body must be a JSON object",
            );
        }
    };
    let auth = match authenticate(&mut params) {
        Ok(auth) => auth,
        Err(response) => return response,
    };
    if faults.switches().token_revoked {
        return error(
            StatusCode::UNAUTHORIZED,
            "invalid_token",
            "The access token provided is invalid.",
        );
    }
    let method = method.to_ascii_lowercase();
    let method = method.strip_suffix(".json").unwrap_or(&method);
    let restricted = matches!(
        method,
        "telephony.externalcall.register" | "telephony.externalcall.finish"
    );
    if auth == Auth::Webhook && restricted && !faults.switches().webhook_telephony {
        return error(
            StatusCode::FORBIDDEN,
            "WRONG_AUTH_TYPE",
            "Current authorization type is denied for this method",
        );
    }
    match method {
        "telephony.externalcall.register" => telephony::register(shared, &params),
        "telephony.externalcall.finish" => telephony::finish(shared, conn, &params),
        "telephony.externalcall.attachrecord" => telephony::attach_record(shared, &params).await,
        _ => error(
            StatusCode::NOT_FOUND,
            "ERROR_METHOD_NOT_FOUND",
            "Method not found!",
        ),
    }
}
