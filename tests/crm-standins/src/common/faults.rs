//! Fault switches: the misbehaviours of a real CRM API that plugins must survive.
//!
//! One set of switches serves all four stand-ins; each switch says which ones honour it. They
//! are flipped from Rust through a handle's `faults()` or over HTTP: `POST /_standin/{switch}`
//! with query parameters, `GET /_standin/faults` to see them, `POST /_standin/reset` to turn
//! all off. The control paths take no authentication and are neither recorded nor rate limited.
//!
//! | path | parameters | switch |
//! |---|---|---|
//! | `fail_after_store` | `n=N` | [`Faults::fail_after_store`] |
//! | `drop_after_store` | `n=N` | [`Faults::drop_after_store`] |
//! | `rate_limit_burst` | `n=N` | [`Faults::rate_limit_burst`] |
//! | `status_burst` | `status=S&n=N` | [`Faults::status_burst`] |
//! | `revoke_token` | `on=true\|false` | [`Faults::revoke_token`] |
//! | `revoke_refresh_tokens` | | [`Faults::revoke_refresh_tokens`] |
//! | `allow_webhook_telephony` | `on=true\|false` | [`Faults::allow_webhook_telephony`] |
//! | `retry_after` | `secs=N` (absent: none) | [`Faults::retry_after`] |
//! | `daily_budget_exhausted` | `on=true\|false` | [`Faults::daily_budget_exhausted`] |
//! | `created_201` | `on=true\|false` | [`Faults::created_201`] |
//! | `delay` | `ms=N` | [`Faults::delay`] |
//! | `reset` | | [`Faults::reset`] |

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// The switches; all off by default.
#[derive(Debug, Default)]
pub struct Faults(Mutex<Switches>);

/// A snapshot of the switches, as `GET /_standin/faults` shows them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Switches {
    /// Creates left that store their record, then answer 500.
    pub fail_after_store: u32,
    /// Creates left that store their record, then close the connection without an answer.
    pub drop_after_store: u32,
    /// Requests left that get the CRM's rate-limit answer.
    pub rate_limit_burst: u32,
    /// Requests left that get this status with a short body, and the status.
    pub status_burst: Option<(u16, u32)>,
    /// Every API request is refused as with a revoked token.
    pub token_revoked: bool,
    /// Every refresh token issued so far is invalid.
    pub refresh_tokens_revoked: bool,
    /// Bitrix24 accepts `register` and `finish` through a webhook.
    pub webhook_telephony: bool,
    /// HubSpot's 429 carries `Retry-After` with these seconds.
    pub retry_after: Option<u64>,
    /// Pipedrive's daily budget is spent.
    pub daily_budget_exhausted: bool,
    /// Pipedrive answers a call log create with 201 instead of 200.
    pub created_201: bool,
    /// Milliseconds every API answer waits.
    pub delay_ms: u64,
}

impl Faults {
    fn lock(&self) -> MutexGuard<'_, Switches> {
        self.0.lock().expect("faults poisoned")
    }

    /// The next `n` record creates (HubSpot calls and contacts, Pipedrive call logs, Bitrix24
    /// `finish`, Zoho Calls) store their record, then answer 500.
    pub fn fail_after_store(&self, n: u32) {
        self.lock().fail_after_store = n;
    }

    /// The next `n` record creates store their record, then the connection is closed without
    /// an answer: the outcome is unknown to the client.
    pub fn drop_after_store(&self, n: u32) {
        self.lock().drop_after_store = n;
    }

    /// The next `n` API requests get the CRM's rate-limit answer (HubSpot, Pipedrive, Zoho
    /// 429; Bitrix24 503 `QUERY_LIMIT_EXCEEDED`), whatever the counters say.
    pub fn rate_limit_burst(&self, n: u32) {
        self.lock().rate_limit_burst = n;
    }

    /// The next `n` API requests get `status` (e.g. 502, 504) with a short plain body.
    pub fn status_burst(&self, status: u16, n: u32) {
        self.lock().status_burst = (n > 0).then_some((status, n));
    }

    /// While on, every API request is refused as the CRM refuses a revoked token (401 with its
    /// body); token endpoints are not affected.
    pub fn revoke_token(&self, on: bool) {
        self.lock().token_revoked = on;
    }

    /// Every refresh token issued or configured so far is rejected from now on (Bitrix24 and
    /// Zoho token endpoints), as when a user uninstalls the app or revokes the client.
    pub fn revoke_refresh_tokens(&self) {
        self.lock().refresh_tokens_revoked = true;
    }

    /// Bitrix24: whether `register` and `finish` work through a webhook. By default they do
    /// not (403 `WRONG_AUTH_TYPE`, as documented).
    pub fn allow_webhook_telephony(&self, on: bool) {
        self.lock().webhook_telephony = on;
    }

    /// HubSpot: 429 answers carry `Retry-After: secs`. By default they carry none.
    pub fn retry_after(&self, secs: Option<u64>) {
        self.lock().retry_after = secs;
    }

    /// Pipedrive: while on, every request gets 429 with `retry-after` (the daily budget).
    pub fn daily_budget_exhausted(&self, on: bool) {
        self.lock().daily_budget_exhausted = on;
    }

    /// Pipedrive: answer `POST /v1/callLogs` with 201 instead of 200.
    pub fn created_201(&self, on: bool) {
        self.lock().created_201 = on;
    }

    /// Every API answer waits `delay` first. By default none.
    pub fn delay(&self, delay: Duration) {
        self.lock().delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
    }

    /// Turns every switch off.
    pub fn reset(&self) {
        *self.lock() = Switches::default();
    }

    /// The switches as they stand.
    pub fn switches(&self) -> Switches {
        self.lock().clone()
    }

    /// Takes one from the `fail_after_store` count; true if this create must fail.
    pub(crate) fn take_fail_after_store(&self) -> bool {
        take(&mut self.lock().fail_after_store)
    }

    /// Takes one from the `drop_after_store` count; true if this create's answer is dropped.
    pub(crate) fn take_drop_after_store(&self) -> bool {
        take(&mut self.lock().drop_after_store)
    }

    /// Takes one from the `rate_limit_burst` count.
    pub(crate) fn take_rate_limit(&self) -> bool {
        take(&mut self.lock().rate_limit_burst)
    }

    /// Takes one from the status burst: the status to answer, if any.
    pub(crate) fn take_status(&self) -> Option<StatusCode> {
        let mut switches = self.lock();
        let (status, n) = switches.status_burst?;
        switches.status_burst = (n > 1).then_some((status, n - 1));
        StatusCode::from_u16(status).ok()
    }

    /// Waits the configured delay, if any.
    pub(crate) async fn wait(&self) {
        let ms = self.lock().delay_ms;
        if ms > 0 {
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
    }
}

fn take(count: &mut u32) -> bool {
    let hit = *count > 0;
    *count = count.saturating_sub(1);
    hit
}

/// `POST /_standin/{switch}`.
pub(crate) async fn control(
    State(faults): State<Arc<Faults>>,
    Path(name): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let number = |key: &str| params.get(key).and_then(|v| v.parse::<u64>().ok());
    let count = |key: &str| params.get(key).and_then(|v| v.parse::<u32>().ok());
    let flag = |key: &str| params.get(key).and_then(|v| v.parse::<bool>().ok());
    let missing =
        |key: &str| (StatusCode::BAD_REQUEST, format!("`{name}` needs `{key}=`")).into_response();
    match name.as_str() {
        "fail_after_store" => match count("n") {
            Some(n) => faults.fail_after_store(n),
            None => return missing("n"),
        },
        "drop_after_store" => match count("n") {
            Some(n) => faults.drop_after_store(n),
            None => return missing("n"),
        },
        "rate_limit_burst" => match count("n") {
            Some(n) => faults.rate_limit_burst(n),
            None => return missing("n"),
        },
        "status_burst" => match (
            number("status").and_then(|s| u16::try_from(s).ok()),
            count("n"),
        ) {
            (Some(status), Some(n)) if StatusCode::from_u16(status).is_ok() => {
                faults.status_burst(status, n)
            }
            _ => return missing("status` and `n"),
        },
        "revoke_token" => match flag("on") {
            Some(on) => faults.revoke_token(on),
            None => return missing("on"),
        },
        "revoke_refresh_tokens" => faults.revoke_refresh_tokens(),
        "allow_webhook_telephony" => match flag("on") {
            Some(on) => faults.allow_webhook_telephony(on),
            None => return missing("on"),
        },
        "retry_after" => faults.retry_after(number("secs")),
        "daily_budget_exhausted" => match flag("on") {
            Some(on) => faults.daily_budget_exhausted(on),
            None => return missing("on"),
        },
        "created_201" => match flag("on") {
            Some(on) => faults.created_201(on),
            None => return missing("on"),
        },
        "delay" => match number("ms") {
            Some(ms) => faults.delay(Duration::from_millis(ms)),
            None => return missing("ms"),
        },
        "reset" => faults.reset(),
        _ => return (StatusCode::NOT_FOUND, format!("no switch `{name}`")).into_response(),
    }
    Json(faults.switches()).into_response()
}

/// `GET /_standin/faults`.
pub(crate) async fn describe(State(faults): State<Arc<Faults>>) -> Response {
    Json(faults.switches()).into_response()
}
