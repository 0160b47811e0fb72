//! `POST /connect/token` and the Bearer check every other endpoint goes through.
//!
//! Tokens are HS256 JWTs (`sub`/`client_id`, `iat`, `nbf`, `exp`, `jti`) signed with a key made
//! per simulator run. The store keeps exactly one live token: minting a new one (through the
//! endpoint, or [`crate::Faults::supersede_token`] "as if another client logged in") replaces it,
//! so the old one gets `401` at once. A token is accepted while it is the live one and its `exp`
//! has not passed. Credentials: an unknown `client_id` gets `400`, a wrong secret `401` (the spec
//! allows both; the simulator uses both so clients handle both), each with an OAuth-style JSON
//! error body. `expires_in` reports the lifetime in seconds, in minutes, or a fixed number
//! ([`crate::SimConfig::expires_in`]); the JWT's `iat` and `exp` are right in every case. With
//! [`crate::Faults::close_on_new_token`], each minted token ends the sockets open at that moment.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use axum::extract::{FromRequest, Multipart, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::{Form, Json};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::clock;
use crate::state::Shared;

/// The one live token of the API client.
pub(crate) struct TokenStore {
    client_id: String,
    client_secret: String,
    lifetime: Duration,
    expires_in_minutes: bool,
    expires_in: Option<u64>,
    key: [u8; 32],
    live: Mutex<Option<Live>>,
    serial: AtomicU64,
    issued: AtomicU64,
}

struct Live {
    token: String,
    expires: SystemTime,
}

impl TokenStore {
    pub fn new(
        client_id: &str,
        client_secret: &str,
        lifetime: Duration,
        expires_in_minutes: bool,
        expires_in: Option<u64>,
    ) -> Self {
        // Randomly keyed hashers are the standard library's source of per-process randomness.
        let random = |n: u64| RandomState::new().hash_one(n);
        let seed = format!(
            "{:?}/{}/{}/{}",
            SystemTime::now(),
            std::process::id(),
            random(1),
            random(2)
        );
        TokenStore {
            client_id: client_id.to_owned(),
            client_secret: client_secret.to_owned(),
            lifetime,
            expires_in_minutes,
            expires_in,
            key: Sha256::digest(seed.as_bytes()).into(),
            live: Mutex::new(None),
            serial: AtomicU64::new(0),
            issued: AtomicU64::new(0),
        }
    }

    /// Makes a new live token, invalidating the previous one.
    fn mint(&self) -> String {
        let now = SystemTime::now();
        let expires = now + self.lifetime;
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
        let claims = json!({
            "sub": self.client_id,
            "client_id": self.client_id,
            "iat": clock::unix_secs(now),
            "nbf": clock::unix_secs(now),
            "exp": clock::unix_secs(expires),
            "jti": self.serial.fetch_add(1, Ordering::Relaxed) + 1,
        });
        let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
        let signing_input = format!("{header}.{payload}");
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes any key length");
        mac.update(signing_input.as_bytes());
        let signature = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
        let token = format!("{signing_input}.{signature}");
        *self.live.lock().expect("token lock") = Some(Live {
            token: token.clone(),
            expires,
        });
        token
    }

    /// Replaces the live token by one nobody holds (another client logged in).
    pub fn supersede(&self) {
        self.mint();
    }

    /// Whether `token` is the live token and not expired.
    pub fn accepts(&self, token: &str) -> bool {
        let live = self.live.lock().expect("token lock");
        live.as_ref()
            .is_some_and(|l| l.token == token && SystemTime::now() < l.expires)
    }

    /// Tokens handed out through `/connect/token`.
    pub fn issued(&self) -> u64 {
        self.issued.load(Ordering::Relaxed)
    }

    /// `expires_in` as configured: the fixed number, else the lifetime in the configured unit
    /// (minutes rounded up).
    fn expires_in(&self) -> u64 {
        if let Some(fixed) = self.expires_in {
            return fixed;
        }
        let secs = self.lifetime.as_secs();
        if self.expires_in_minutes {
            secs.div_ceil(60)
        } else {
            secs
        }
    }
}

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    (
        status,
        Json(json!({"error": error, "error_description": description})),
    )
        .into_response()
}

/// `POST /connect/token` with a form-urlencoded or multipart body.
pub(crate) async fn connect_token(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let is_multipart = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("multipart/form-data"));
    let fields = if is_multipart {
        read_multipart(request).await
    } else {
        Form::<HashMap<String, String>>::from_request(request, &())
            .await
            .map(|Form(fields)| fields)
            .map_err(|e| e.body_text())
    };
    let fields = match fields {
        Ok(fields) => fields,
        Err(why) => return oauth_error(StatusCode::BAD_REQUEST, "invalid_request", &why),
    };
    let field = |name: &str| fields.get(name).map(String::as_str).unwrap_or_default();
    let tokens = &shared.tokens;
    if field("grant_type") != "client_credentials" {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "grant_type must be client_credentials",
        );
    }
    if field("client_id") != tokens.client_id {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_client",
            "unknown client_id",
        );
    }
    if field("client_secret") != tokens.client_secret {
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "wrong client_secret",
        );
    }
    let token = tokens.mint();
    tokens.issued.fetch_add(1, Ordering::Relaxed);
    shared.faults.token_minted();
    Json(json!({
        "token_type": "Bearer",
        "expires_in": tokens.expires_in(),
        "access_token": token,
    }))
    .into_response()
}

async fn read_multipart(request: Request) -> Result<HashMap<String, String>, String> {
    let mut multipart = Multipart::from_request(request, &())
        .await
        .map_err(|e| e.body_text())?;
    let mut fields = HashMap::new();
    while let Some(field) = multipart.next_field().await.map_err(|e| e.body_text())? {
        let name = field.name().unwrap_or_default().to_owned();
        let value = field.text().await.map_err(|e| e.body_text())?;
        fields.insert(name, value);
    }
    Ok(fields)
}

/// Middleware: `401` unless the request carries the live token as `Authorization: Bearer`.
pub(crate) async fn require_bearer(
    State(shared): State<Arc<Shared>>,
    request: Request,
    next: Next,
) -> Response {
    let token = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match token {
        Some(token) if shared.tokens.accepts(token) => {
            let path = request.uri().path();
            if path.starts_with("/callcontrol") && shared.faults.unlicensed() {
                return (
                    StatusCode::FORBIDDEN,
                    Json(json!({"error": "Call Control API requires a licence"})),
                )
                    .into_response();
            }
            if path.starts_with("/xapi") && shared.faults.switches().forbid_xapi {
                return (
                    StatusCode::FORBIDDEN,
                    Json(json!({"error": {"code": "403", "message": "Forbidden"}})),
                )
                    .into_response();
            }
            next.run(request).await
        }
        _ => (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, r#"Bearer error="invalid_token""#)],
            Json(json!({"error": "invalid_token"})),
        )
            .into_response(),
    }
}
