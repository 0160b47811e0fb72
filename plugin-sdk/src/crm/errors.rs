//! What a CRM's answer means for the delivery (spec `crm-plugins.md` section 3.6).
//!
//! [`Rules::verdict`] turns a response into a [`Verdict`]: success, retry (with the delay the
//! CRM asked for, or the CRM's default), unauthorized (for the OAuth flow to refresh once) or
//! permanent (with the CRM's own message, and `target_gone` on 410). The table is the same for
//! every CRM; what differs is in [`Rules`]: how a 2xx body says success, where the error message
//! is, the delay for a 429 without `Retry-After`, and a few statuses of the CRM's own. The four
//! CRMs of the spec come ready-made ([`Rules::HUBSPOT`], [`Rules::PIPEDRIVE`],
//! [`Rules::BITRIX24`], [`Rules::ZOHO`]); another CRM starts from [`Rules::new`].
//!
//! Answers that mean something only at one call site stay with the plugin, before it asks for
//! the verdict: Pipedrive's 409 on a recording upload (done), Zoho's 204 on a search (no match),
//! Zoho's token endpoint answering 200 with `error`, Bitrix24's "Call is not found" on `finish`.
//! A request that got no answer is a [`crate::http::HttpError`], retryable or permanent through
//! its own `From` conversion.

use crate::http::Response;
use crate::{DeliveryError, PermanentError, RetryableError};
use serde_json::Value;
use std::time::SystemTime;

/// What one answer means for the delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// 2xx, and the body agrees.
    Success,
    /// A passing failure: 5xx, 408, 425, 429 and the CRM's own (HubSpot 423, 477, Bitrix24's
    /// `QUERY_LIMIT_EXCEEDED`).
    Retry {
        /// What the CRM answered, for the operator.
        message: String,
        /// When to try again: `Retry-After`, else for a 429 the CRM's default; `None` leaves it
        /// to the host's retry ladder.
        after_ms: Option<u64>,
    },
    /// HTTP 401: an OAuth plugin refreshes its token once and repeats the request
    /// ([`oauth::authorized`](super::oauth::authorized)); otherwise it is permanent,
    /// `"{crm} rejected the token: {the CRM's message}"`.
    Unauthorized {
        /// `"{crm} rejected the token"`, followed by `": {the CRM's message}"` when it gave one.
        message: String,
    },
    /// Retrying cannot help: other 4xx, 3xx (redirects are not followed), a 2xx whose body
    /// reports a failure.
    Permanent {
        /// What the CRM answered, with its own message.
        message: String,
        /// True for 410: the host stops sending to the plugin until an operator re-enables it.
        target_gone: bool,
    },
}

impl Verdict {
    /// `Ok` for [`Verdict::Success`], else the delivery error the host understands
    /// ([`Verdict::Unauthorized`] is permanent).
    pub fn into_result(self) -> Result<(), DeliveryError> {
        match self {
            Verdict::Success => Ok(()),
            Verdict::Retry { message, after_ms } => Err(DeliveryError::Retryable(RetryableError {
                message,
                retry_after_ms: after_ms,
            })),
            Verdict::Unauthorized { message } => Err(DeliveryError::permanent(message)),
            Verdict::Permanent {
                message,
                target_gone,
            } => Err(DeliveryError::Permanent(PermanentError {
                message,
                target_gone,
            })),
        }
    }
}

/// How one CRM says success, failure and "slow down". Plain data with function hooks, so a
/// plugin for another CRM fills in its own:
///
/// ```
/// use callhook_plugin_sdk::crm::errors::{Rules, Verdict};
/// use callhook_plugin_sdk::http::Response;
/// use std::time::SystemTime;
///
/// const ACME: Rules = Rules {
///     body_agrees: |body| body["ok"] == true,
///     message: |body| body["reason"].as_str().map(str::to_string),
///     ..Rules::new("Acme")
/// };
/// let answer = Response { status: 422, headers: vec![], body: br#"{"reason":"no phone"}"#.to_vec() };
/// assert_eq!(
///     ACME.verdict(&answer, SystemTime::now()),
///     Verdict::Permanent { message: "Acme answered HTTP 422: no phone".into(), target_gone: false }
/// );
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Rules {
    /// The CRM's name, as messages name it (`HubSpot`).
    pub crm: &'static str,
    /// Whether a 2xx body (JSON, `Null` when it is not) reports success. By default always.
    pub body_agrees: fn(&Value) -> bool,
    /// The CRM's own error message in a body (JSON, `Null` when it is not). By default none,
    /// and the message quotes the start of the body.
    pub message: fn(&Value) -> Option<String>,
    /// The delay of a 429 without a usable `Retry-After`, in milliseconds. By default 10 000.
    pub default_retry_after_ms: fn(&Response, &Value) -> u64,
    /// Answers the CRM means otherwise than the common table; asked first. By default none.
    pub special: fn(&Response, &Value, SystemTime) -> Option<Verdict>,
}

/// How much of a body a message quotes when the CRM's own message is not found.
const EXCERPT_CHARS: usize = 200;

impl Rules {
    /// The common table with the defaults above, for a CRM named `crm`.
    pub const fn new(crm: &'static str) -> Rules {
        Rules {
            crm,
            body_agrees: |_| true,
            message: |_| None,
            default_retry_after_ms: |_, _| 10_000,
            special: |_, _, _| None,
        }
    }

    /// The verdict on `response`; `now` dates a `Retry-After` given as an HTTP date.
    pub fn verdict(&self, response: &Response, now: SystemTime) -> Verdict {
        let body: Value = serde_json::from_slice(&response.body).unwrap_or(Value::Null);
        if let Some(verdict) = (self.special)(response, &body, now) {
            return verdict;
        }
        let status = response.status;
        let retry_after = || {
            response
                .header("retry-after")
                .and_then(|v| retry_after_ms(v, now))
        };
        match status {
            200..=299 if (self.body_agrees)(&body) => Verdict::Success,
            200..=299 => Verdict::Permanent {
                message: format!(
                    "{} answered HTTP {status} without success{}",
                    self.crm,
                    self.detail(response, &body)
                ),
                target_gone: false,
            },
            401 => Verdict::Unauthorized {
                message: format!(
                    "{} rejected the token{}",
                    self.crm,
                    self.detail(response, &body)
                ),
            },
            429 => Verdict::Retry {
                message: self.answered(response, &body),
                after_ms: Some(
                    retry_after().unwrap_or_else(|| (self.default_retry_after_ms)(response, &body)),
                ),
            },
            408 | 425 | 500..=599 => Verdict::Retry {
                message: self.answered(response, &body),
                after_ms: retry_after(),
            },
            300..=399 => Verdict::Permanent {
                message: format!(
                    "{} answered HTTP {status}, a redirect{}; redirects are not followed",
                    self.crm,
                    response
                        .header("location")
                        .map(|to| format!(" to {to}"))
                        .unwrap_or_default()
                ),
                target_gone: false,
            },
            _ => Verdict::Permanent {
                message: self.answered(response, &body),
                target_gone: status == 410,
            },
        }
    }

    /// [`Rules::verdict`] as a result, for requests outside the OAuth flow.
    pub fn check(&self, response: &Response, now: SystemTime) -> Result<(), DeliveryError> {
        self.verdict(response, now).into_result()
    }

    /// `"{crm} answered HTTP {status}: {detail}"`.
    fn answered(&self, response: &Response, body: &Value) -> String {
        format!(
            "{} answered HTTP {}{}",
            self.crm,
            response.status,
            self.detail(response, body)
        )
    }

    /// `": {the CRM's message}"`, else `": {the body's start}"`, else nothing.
    fn detail(&self, response: &Response, body: &Value) -> String {
        if let Some(message) = (self.message)(body) {
            return format!(": {message}");
        }
        let text = String::from_utf8_lossy(&response.body);
        let text = text.trim();
        if text.is_empty() {
            return String::new();
        }
        format!(": {}", text.chars().take(EXCERPT_CHARS).collect::<String>())
    }
}

/// `Retry-After` in milliseconds from `now`: delay-seconds (`120`) or an HTTP date
/// (`Wed, 21 Oct 2026 07:28:00 GMT`); a date in the past is 0; anything else `None`.
///
/// ```
/// use callhook_plugin_sdk::crm::errors::retry_after_ms;
/// use std::time::{Duration, UNIX_EPOCH};
///
/// let now = UNIX_EPOCH + Duration::from_secs(1_795_857_300);
/// assert_eq!(retry_after_ms("120", now), Some(120_000));
/// assert_eq!(retry_after_ms("Sat, 28 Nov 2026 09:15:30 GMT", now), Some(30_000));
/// ```
pub fn retry_after_ms(value: &str, now: SystemTime) -> Option<u64> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(seconds.saturating_mul(1000));
    }
    let when = httpdate::parse_http_date(value).ok()?;
    let delay = when.duration_since(now).unwrap_or_default();
    Some(u64::try_from(delay.as_millis()).unwrap_or(u64::MAX))
}

/// The string at `pointer` (RFC 6901, `/details/api_name`), when there is a non-empty one.
fn text(body: &Value, pointer: &str) -> Option<String> {
    match body.pointer(pointer)? {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// `first: second`, either alone, or none.
fn pair(first: Option<String>, second: Option<String>) -> Option<String> {
    match (first, second) {
        (Some(a), Some(b)) => Some(format!("{a}: {b}")),
        (a, b) => a.or(b),
    }
}

impl Rules {
    /// HubSpot: messages in `message`; a 429 waits by its `policyName` (`DAILY` one hour,
    /// `SECONDLY` one second, others ten seconds); 423 is retried after 2 s, 477 with its
    /// `Retry-After`.
    pub const HUBSPOT: Rules = Rules {
        message: |body| text(body, "/message"),
        default_retry_after_ms: |_, body| match body.get("policyName").and_then(Value::as_str) {
            Some("DAILY") => 3_600_000,
            Some("SECONDLY") => 1_000,
            _ => 10_000,
        },
        special: |response, body, now| {
            let after_ms = match response.status {
                423 => Some(2_000),
                477 => response
                    .header("retry-after")
                    .and_then(|v| retry_after_ms(v, now)),
                _ => return None,
            };
            Some(Verdict::Retry {
                message: Rules::HUBSPOT.answered(response, body),
                after_ms,
            })
        },
        ..Rules::new("HubSpot")
    };

    /// Pipedrive: success is `"success":true`; messages in `error` and `error_info`; a 429
    /// waits `x-ratelimit-reset` seconds when given, else 2 s.
    pub const PIPEDRIVE: Rules = Rules {
        body_agrees: |body| body.get("success") == Some(&Value::Bool(true)),
        message: |body| {
            let error = text(body, "/error");
            match text(body, "/error_info") {
                Some(info) => Some(match error {
                    Some(error) => format!("{error} ({info})"),
                    None => info,
                }),
                None => error,
            }
        },
        default_retry_after_ms: |response, _| {
            response
                .header("x-ratelimit-reset")
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map_or(2_000, |seconds| seconds.saturating_mul(1000))
        },
        ..Rules::new("Pipedrive")
    };

    /// Bitrix24: success is a `result`; messages in `error` and `error_description`; a 429
    /// (`OPERATION_TIME_LIMIT`) waits a minute; 503 `QUERY_LIMIT_EXCEEDED` is retried after
    /// 1 s; `WRONG_AUTH_TYPE` is permanent with the hint to set `auth = "app"`.
    pub const BITRIX24: Rules = Rules {
        body_agrees: |body| body.get("result").is_some(),
        message: |body| pair(text(body, "/error"), text(body, "/error_description")),
        default_retry_after_ms: |_, _| 60_000,
        special: |response, body, _| match body.get("error").and_then(Value::as_str)? {
            "QUERY_LIMIT_EXCEEDED" if response.status == 503 => Some(Verdict::Retry {
                message: Rules::BITRIX24.answered(response, body),
                after_ms: Some(1_000),
            }),
            "WRONG_AUTH_TYPE" => Some(Verdict::Permanent {
                message: format!(
                    "{}; this method needs an application: set `auth = \"app\"`",
                    Rules::BITRIX24.answered(response, body)
                ),
                target_gone: false,
            }),
            _ => None,
        },
        ..Rules::new("Bitrix24")
    };

    /// Zoho CRM: a body reporting a `status` (at the top or in `data[0]`) must report
    /// `success`; messages from `code`, `message` and `details.api_name`, at the top or in
    /// `data[0]`; a 429 waits ten seconds.
    pub const ZOHO: Rules = Rules {
        body_agrees: |body| {
            [body, &body["data"][0]]
                .into_iter()
                .filter_map(|v| v.get("status").and_then(Value::as_str))
                .all(|status| status == "success")
        },
        message: |body| {
            let error = if body.get("code").is_some() {
                body
            } else {
                &body["data"][0]
            };
            let message = pair(text(error, "/code"), text(error, "/message"))?;
            Some(match text(error, "/details/api_name") {
                Some(field) => format!("{message} ({field})"),
                None => message,
            })
        },
        ..Rules::new("Zoho")
    };
}

#[cfg(test)]
mod tests;
