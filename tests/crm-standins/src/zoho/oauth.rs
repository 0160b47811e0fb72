//! `POST /oauth/v2/token`: Zoho's accounts server, refresh grant only.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::Shared;

/// Zoho answers a refused grant with 200 and an `error`.
fn refused(error: &str) -> Response {
    Json(json!({"error": error})).into_response()
}

/// Issues an access token for the configured refresh token; parameters in the query only.
pub(super) async fn token(
    State(shared): State<Arc<Shared>>,
    Query(query): Query<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    let param = |key: &str| query.get(key).map(String::as_str);
    let config = &shared.config;
    if !body.is_empty() || param("grant_type") != Some("refresh_token") {
        return refused("invalid_request");
    }
    if param("client_id") != Some(&config.client_id)
        || param("client_secret") != Some(&config.client_secret)
    {
        return refused("invalid_client");
    }
    let revoked = shared.faults.switches().refresh_tokens_revoked;
    if param("refresh_token") != Some(&config.refresh_token) || revoked {
        return refused("invalid_code");
    }
    if !shared.grants.hit(&config.refresh_token).allowed {
        let body = json!({"error": "Access Denied", "error_description":
            "You have made too many requests continuously. Please try again after some time.",
            "status": "failure"});
        return (StatusCode::BAD_REQUEST, Json(body)).into_response();
    }
    let n = u128::from(shared.ids.next());
    let token = format!(
        "1000.{n:032x}.{:032x}",
        n.wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c)
    );
    shared.store().tokens.insert(token.clone(), Instant::now());
    let api_domain = shared.base_url.lock().expect("poisoned").clone();
    Json(
        json!({"access_token": token, "expires_in": config.access_token_ttl.as_secs(),
        "api_domain": api_domain, "token_type": "Bearer",
        "scope": "ZohoCRM.modules.ALL ZohoCRM.users.READ ZohoSearch.securesearch.READ"}),
    )
    .into_response()
}
