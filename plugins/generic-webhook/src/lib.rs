//! `generic-webhook`: the default callhook plugin.
//!
//! It speaks the wire format of the original 3CX webhooks module (`call-events.md`, section 6),
//! so CRMs built against that module work unchanged:
//! - call events as `GET {webhook_url}?{query}` with the fields in the documented order, or with
//!   `post = 1` as `POST {webhook_url}` with the same fields as one flat JSON object of strings;
//! - recordings as `POST {webhook_post_url}` with `{"FILES":[...],"id":...}`, plus the call's last
//!   end fields with `recording_full_info = 1`;
//! - optional event-name aliases (`event_alias.incoming = "hangupincoming"`);
//! - Standard Webhooks signatures and `Idempotency-Key` when the secret `signing_secret` is set.
//!
//! An unset or empty URL turns that kind of request off: the delivery succeeds without sending.
//!
//! Settings (all optional): `webhook_url`, `webhook_post_url`, `post` (default 0),
//! `recording_full_info` (default 0), `duration_format` (`seconds`, the default, or `clock`),
//! `event_alias.<event>`. Secret: `signing_secret` (`whsec_...`).

pub mod render;

use callhook_plugin_sdk::http::Request;
use callhook_plugin_sdk::signing::SigningKey;
use callhook_plugin_sdk::{self as sdk, Delivery, DeliveryError, Event, Plugin};
use render::{DurationFormat, Rendered};

/// The plugin, configured for one delivery.
pub struct GenericWebhook {
    webhook_url: Option<String>,
    webhook_post_url: Option<String>,
    options: render::Options,
    signing_key: Option<SigningKey>,
}

impl Plugin for GenericWebhook {
    fn new() -> Result<Self, DeliveryError> {
        let url = |key: &str| sdk::settings::get(key).filter(|url| !url.trim().is_empty());
        let duration_format = match sdk::settings::get("duration_format").as_deref() {
            None | Some("") | Some("seconds") => DurationFormat::Seconds,
            Some("clock") => DurationFormat::Clock,
            Some(other) => {
                return Err(DeliveryError::permanent(format!(
                    "the setting `duration_format` must be `seconds` or `clock`, not {other:?}"
                )));
            }
        };
        let signing_key = match sdk::settings::secret("signing_secret") {
            Some(secret) if !secret.trim().is_empty() => {
                Some(SigningKey::from_secret(&secret).map_err(|e| {
                    DeliveryError::permanent(format!("the secret `signing_secret`: {e}"))
                })?)
            }
            _ => None,
        };
        Ok(GenericWebhook {
            webhook_url: url("webhook_url"),
            webhook_post_url: url("webhook_post_url"),
            options: render::Options {
                post_json: sdk::settings::flag("post", false)?,
                recording_full_info: sdk::settings::flag("recording_full_info", false)?,
                duration_format,
                aliases: sdk::settings::all()
                    .into_iter()
                    .filter_map(|(key, alias)| {
                        key.strip_prefix("event_alias.")
                            .map(|event| (event.to_string(), alias))
                    })
                    .collect(),
            },
            signing_key,
        })
    }

    fn deliver(&mut self, delivery: &Delivery) -> Result<(), DeliveryError> {
        let url = match &delivery.event {
            Event::Recording(_) => &self.webhook_post_url,
            _ => &self.webhook_url,
        };
        let Some(url) = url else {
            sdk::log::debug(
                "no URL configured for this event; skipped",
                &[("event", delivery.event.name())],
            );
            return Ok(());
        };
        let rendered = render::render(&delivery.event, &self.options, url);
        let request = match rendered {
            Rendered::Get { url, query } => {
                let request = Request::get(&url);
                self.sign(request, delivery, query.as_bytes())
            }
            Rendered::Post { url, body } => {
                let request = Request::post(&url).header("content-type", "application/json");
                let request = self.sign(request, delivery, body.as_bytes());
                request.body(body)
            }
        };
        request.send()?.error_for_status()?;
        Ok(())
    }
}

impl GenericWebhook {
    /// Adds the Standard Webhooks headers when a signing secret is configured.
    fn sign(&self, request: Request, delivery: &Delivery, signed_body: &[u8]) -> Request {
        let Some(key) = &self.signing_key else {
            return request;
        };
        let id = &delivery.idempotency_key;
        let signature = key.sign(id, delivery.timestamp, signed_body);
        request
            .header("webhook-id", id)
            .header("webhook-timestamp", &delivery.timestamp.to_string())
            .header("webhook-signature", &signature)
            .header("idempotency-key", id)
    }
}

sdk::register_plugin!(GenericWebhook);
