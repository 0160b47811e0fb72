//! Every request a stand-in received, for assertions; secrets are masked before they are kept.
//!
//! Masked: the headers `authorization`, `x-api-token` and `cookie` (the scheme word of
//! `authorization` is kept, so a test can still see `Bearer` against `Zoho-oauthtoken`), the
//! query parameters `api_token`, `auth`, `access_token`, `refresh_token`, `client_secret` and
//! `code`, and a top-level `"auth"` field of a JSON body (Bitrix24's application mode).

use std::sync::{Arc, Mutex};

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::Value;

/// Bodies above this size are refused with 413 (no CRM takes more in one call).
const MAX_BODY: usize = 64 * 1024 * 1024;

/// What stands in for a masked secret.
pub const MASK: &str = "***";

const SECRET_HEADERS: [&str; 3] = ["authorization", "x-api-token", "cookie"];
const SECRET_PARAMS: [&str; 6] = [
    "api_token",
    "auth",
    "access_token",
    "refresh_token",
    "client_secret",
    "code",
];

/// One request as received, secrets masked.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// `GET`, `POST`, ...
    pub method: String,
    /// The path, without the query.
    pub path: String,
    /// The query string as sent (secret parameters masked), without `?`; empty when none.
    pub query: String,
    /// Header names (lower case) and values, in the order received.
    pub headers: Vec<(String, String)>,
    /// The body as received (a masked JSON body is re-serialised).
    pub body: Bytes,
}

impl Recorded {
    /// The value of header `name` (case-insensitive), if present.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    /// The body parsed as JSON, if it is JSON.
    pub fn json(&self) -> Option<Value> {
        serde_json::from_slice(&self.body).ok()
    }
}

/// The requests received so far.
#[derive(Debug, Default)]
pub(crate) struct Journal(Mutex<Vec<Recorded>>);

impl Journal {
    pub(crate) fn all(&self) -> Vec<Recorded> {
        self.0.lock().expect("journal poisoned").clone()
    }

    pub(crate) fn count(&self) -> usize {
        self.0.lock().expect("journal poisoned").len()
    }

    fn push(&self, recorded: Recorded) {
        self.0.lock().expect("journal poisoned").push(recorded);
    }
}

/// Middleware: buffers the body, records the request, passes it on.
pub(crate) async fn record(
    State(journal): State<Arc<Journal>>,
    request: Request,
    next: Next,
) -> Response {
    let (parts, body) = request.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, MAX_BODY).await else {
        return (StatusCode::PAYLOAD_TOO_LARGE, "body too large").into_response();
    };
    journal.push(Recorded {
        method: parts.method.to_string(),
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().map(mask_query).unwrap_or_default(),
        headers: parts
            .headers
            .iter()
            .map(|(name, value)| {
                let value = String::from_utf8_lossy(value.as_bytes());
                let value = if SECRET_HEADERS.contains(&name.as_str()) {
                    mask_header(&value)
                } else {
                    value.into_owned()
                };
                (name.as_str().to_owned(), value)
            })
            .collect(),
        body: mask_body(&bytes),
    });
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

/// `Bearer secret` → `Bearer ***`; a value without a scheme → `***`.
fn mask_header(value: &str) -> String {
    match value.split_once(' ') {
        Some((scheme, _)) => format!("{scheme} {MASK}"),
        None => MASK.to_owned(),
    }
}

fn mask_query(query: &str) -> String {
    query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((key, _)) if SECRET_PARAMS.contains(&key) => format!("{key}={MASK}"),
            _ => pair.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("&")
}

fn mask_body(bytes: &Bytes) -> Bytes {
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(mut object)) if object.contains_key("auth") => {
            object.insert("auth".into(), Value::String(MASK.into()));
            Bytes::from(Value::Object(object).to_string())
        }
        _ => bytes.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_secrets() {
        assert_eq!(mask_header("Bearer pat-eu1-abc"), "Bearer ***");
        assert_eq!(mask_header("abc"), "***");
        assert_eq!(
            mask_query("term=120&api_token=s3&fields=phone"),
            "term=120&api_token=***&fields=phone"
        );
        let body = mask_body(&Bytes::from(r#"{"auth":"tok","CALL_ID":"x"}"#));
        // Compared as JSON: the key order depends on serde_json's features in the build.
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body, serde_json::json!({"CALL_ID": "x", "auth": "***"}));
    }
}
