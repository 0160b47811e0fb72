//! A plugin of the SDK's contract (0.3, the fields 0.2 added included) that reports what it
//! receives, for the host's contract tests.
//!
//! For every delivery it `POST`s to the setting `url` a JSON object with every field of the
//! delivery and its event (`null` for none), and for a `recording` event the SHA-256 (hex) and
//! length of each file's bytes as `recording-file` returns them (or the error). Settings:
//! - `kv_set`: `key=value`, stored with `kv::set` before anything is sent;
//! - `unknown_outcome`: when set, a delivery that is not a replay fails with
//!   `unknown-outcome` after posting; a replay succeeds.

use callhook_plugin_sdk::http::Request;
use callhook_plugin_sdk::{
    self as sdk, Delivery, DeliveryError, Ended, Event, Offered, Plugin, Started, UserInfo,
};
use serde_json::{Value, json};
use sha2::Digest;

/// The probe, configured for one delivery.
pub struct ContractProbe {
    url: String,
}

impl Plugin for ContractProbe {
    fn new() -> Result<Self, DeliveryError> {
        Ok(ContractProbe {
            url: sdk::settings::required("url")?,
        })
    }

    fn deliver(&mut self, delivery: &Delivery) -> Result<(), DeliveryError> {
        if let Some(pair) = sdk::settings::get("kv_set") {
            let (key, value) = pair.split_once('=').unwrap_or((&pair, ""));
            sdk::kv::set(key, value.as_bytes())?;
        }
        let report = json!({
            "event": delivery.event.name(),
            "idempotency_key": delivery.idempotency_key,
            "attempt": delivery.attempt,
            "replayed": delivery.replayed,
            "record": event(&delivery.event),
        });
        Request::post(&self.url)
            .json(&report)
            .send()?
            .error_for_status()?;
        if sdk::settings::get("unknown_outcome").is_some() && !delivery.replayed {
            return Err(DeliveryError::unknown_outcome(
                "probe: did the create take effect?",
            ));
        }
        Ok(())
    }
}

fn user_info(info: &Option<UserInfo>) -> Value {
    info.as_ref()
        .map_or(Value::Null, |u| json!({ "name": u.name, "email": u.email }))
}

fn offered(o: &Offered) -> Value {
    json!({
        "id": o.id, "callerid": o.callerid, "did": o.did, "user": o.user,
        "usertype": o.usertype.as_str(),
        "call_started_at": o.call_started_at, "offered_at": o.offered_at,
        "callerid_e164": o.callerid_e164, "user_info": user_info(&o.user_info),
        "queue": o.queue, "internal": o.internal,
    })
}

fn started(s: &Started) -> Value {
    json!({
        "id": s.id, "callerid": s.callerid, "did": s.did, "user": s.user,
        "trtype": s.trtype.as_str(),
        "call_started_at": s.call_started_at, "offered_at": s.offered_at,
        "answered_at": s.answered_at,
        "callerid_e164": s.callerid_e164, "user_info": user_info(&s.user_info),
        "queue": s.queue, "internal": s.internal,
    })
}

fn ended(e: &Ended) -> Value {
    json!({
        "id": e.id, "callerid": e.callerid, "did": e.did, "user": e.user,
        "finishtype": e.finishtype.as_str(), "transfer": e.transfer,
        "duration_seconds": e.duration_seconds, "title": e.title,
        "call_started_at": e.call_started_at, "offered_at": e.offered_at,
        "answered_at": e.answered_at, "ended_at": e.ended_at,
        "callerid_e164": e.callerid_e164, "user_info": user_info(&e.user_info),
        "queue": e.queue, "internal": e.internal,
    })
}

fn event(event: &Event) -> Value {
    match event {
        Event::Ringing(o) | Event::Dialing(o) => offered(o),
        Event::CallStarted(s) => started(s),
        Event::CallEnded(e) => ended(e),
        Event::Recording(r) => json!({
            "id": r.id,
            "files": r.files,
            "last_end": r.last_end.as_ref().map(ended),
            "parts": r.parts.iter().map(|p| json!({
                "id": p.id, "user": p.user, "files": p.files,
            })).collect::<Vec<_>>(),
            "file_bytes": r.files.iter().map(|link| match sdk::recording_file(link) {
                Ok(bytes) => json!({
                    "len": bytes.len(),
                    "sha256": hex::encode(sha2::Sha256::digest(&bytes)),
                }),
                Err(error) => json!({ "error": error }),
            }).collect::<Vec<_>>(),
        }),
    }
}

sdk::register_plugin!(ContractProbe);
