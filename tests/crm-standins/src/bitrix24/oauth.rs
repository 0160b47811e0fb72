//! `GET /oauth/token/`: the OAuth server's refresh grant. Every refresh issues a new access
//! token and a new refresh token and invalidates the refresh token it was given.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use axum::Json;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use jiff::Timestamp;
use serde_json::json;

use super::{Shared, error};

/// A token of 32 hex digits followed by the portal's member id, the shape Bitrix24 uses.
fn new_token(shared: &Shared) -> String {
    let n = u128::from(shared.ids.next());
    format!(
        "{:032x}0000000000000001",
        n.wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835)
    )
}

pub(super) async fn token(
    State(shared): State<Arc<Shared>>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let param = |key: &str| query.get(key).map(String::as_str);
    let config = &shared.config;
    if param("grant_type") != Some("refresh_token") {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "grant_type must be refresh_token",
        );
    }
    if param("client_id") != Some(&config.client_id)
        || param("client_secret") != Some(&config.client_secret)
    {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_client",
            "Invalid client credentials",
        );
    }
    let revoked = shared.faults.switches().refresh_tokens_revoked;
    let mut store = shared.store();
    let given = param("refresh_token").unwrap_or_default();
    if revoked || !store.refresh_tokens.remove(given) {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "Invalid refresh token",
        );
    }
    let (access, refresh) = (new_token(&shared), new_token(&shared));
    store.access_tokens.insert(access.clone(), Instant::now());
    store.refresh_tokens.insert(refresh.clone());
    store.refreshes += 1;
    let base = shared.base_url.lock().expect("poisoned").clone();
    let ttl = config.access_token_ttl.as_secs();
    let expires = Timestamp::now().as_second() + i64::try_from(ttl).unwrap_or(i64::MAX);
    Json(
        json!({"access_token": access, "expires": expires, "expires_in": ttl, "scope": "app",
        "domain": base, "server_endpoint": format!("{base}/rest/"), "status": "L",
        "client_endpoint": format!("{base}/rest/"), "member_id": "standin", "user_id": 1,
        "refresh_token": refresh}),
    )
    .into_response()
}
