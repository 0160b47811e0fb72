//! What every CRM plugin needs beyond mapping fields: the idempotent create, the error
//! classification, OAuth token state, and the text forms of times and notes
//! (spec `crm-plugins.md`, sections 3.2, 3.5, 3.6, 6.1 and 7.1).
//!
//! Each helper is a small function or type over a [`KvStore`] and closures that do the CRM's
//! own requests, so it knows nothing of any one CRM's URLs or JSON and runs natively in tests
//! with [`MemoryKv`]. A CRM plugin then is the mapping of events to requests:
//!
//! - [`format`](mod@format): ISO-8601 and `YYYY-MM-DD HH:MM:SS` times, `mm:ss` durations, HTML escaping and
//!   the notes lines.
//! - [`errors`]: the verdict on a CRM's answer: success, retry after a delay, unauthorized,
//!   permanent or target gone, with the CRM's own message.
//! - [`idempotent`]: the create of a record exactly once, with `rec:` and `pending:` entries
//!   and the `unknown-outcome` of a create that may or may not have happened.
//! - [`oauth`]: access tokens in the store, refreshed before they expire and once after a
//!   401, safe when deliveries refresh at once.
//! - [`part`]: the values of a record read from its end event: key, external number, from
//!   and to, start and end, notes.
//! - [`cache`]: lookups (a CRM user by e-mail) cached in the store for up to an hour.
//! - [`store`]: the [`KvStore`] trait, the host's store ([`HostKv`]) and [`MemoryKv`].
//!
//! The end event of a call logged in Pipedrive, whose call logs cannot be searched by an id of
//! ours, so a lost answer to the create ends in `unknown-outcome` until an operator replays:
//!
//! ```no_run
//! use callhook_plugin_sdk::crm::idempotent::{CreateOnce, Sent};
//! use callhook_plugin_sdk::crm::{HostKv, errors::Rules, format};
//! use callhook_plugin_sdk::http::Request;
//! use callhook_plugin_sdk::{DeliveryError, Ended};
//! use std::time::SystemTime;
//!
//! /// Logs the part `ended` (talking from `start_ms` to `end_ms`); `replayed` is the delivery's.
//! fn log_call(
//!     api_base: &str,
//!     api_token: &str,
//!     ended: &Ended,
//!     (start_ms, end_ms): (u64, u64),
//!     replayed: bool,
//! ) -> Result<String, DeliveryError> {
//!     let key = format!("{}.{}", ended.id, ended.user);
//!     let body = serde_json::json!({
//!         "subject": ended.title,
//!         "start_time": format::date_time(start_ms),
//!         "end_time": format::date_time(end_ms),
//!         "duration": ended.duration_seconds.to_string(),
//!     });
//!     let record = CreateOnce::new("Pipedrive", &key, replayed).run(&HostKv, || {
//!         let sent = Request::post(&format!("{api_base}/v1/callLogs"))
//!             .header("x-api-token", api_token)
//!             .json(&body)
//!             .send();
//!         // 2xx with `"success":true` and a `data.id` is the new record.
//!         Sent::from_http(sent, &Rules::PIPEDRIVE, SystemTime::now(), |response| {
//!             let body: serde_json::Value = serde_json::from_slice(&response.body).ok()?;
//!             Some(body["data"]["id"].as_str()?.to_string())
//!         })
//!     })?;
//!     Ok(record.id)
//! }
//! ```

pub mod cache;
pub mod errors;
pub mod format;
pub mod idempotent;
pub mod oauth;
pub mod part;
pub mod store;

pub use store::{HostKv, KvStore, MemoryKv};
