//! Calling the portal's REST methods in either auth mode (spec `crm-plugins.md` 6.1).
//!
//! Every method is a `POST` with a JSON body. With an inbound webhook the credentials are in
//! the path, `{portal}/rest/{user id}/{code}/{method}`; with a local application the body
//! carries `"auth":"{access token}"` and goes to `{portal}/rest/{method}`.
//!
//! The application's access token comes from the SDK's [`Tokens`]: it lives in the store under
//! `oauth` as `{"access_token","expires_at","refresh_token","seed"}`, is refreshed at the OAuth
//! server (`GET {oauth_base}/oauth/token/?grant_type=refresh_token&…`) when there is none, fewer
//! than 300 s are left or the portal answered 401 (`expired_token`, `invalid_token`,
//! `NO_AUTH_FOUND`), and each refresh's new state is stored at once with `set-if` against the
//! state it was made from. Bitrix24 rotates refresh tokens (each refresh invalidates the one it
//! used), so of two deliveries refreshing together the loser's refresh is refused
//! (`invalid_grant`): [`RefreshError::Rejected`] makes `Tokens` reread the state and use the
//! winner's token; with none newer the delivery is retried ("Bitrix24 refresh token rejected;
//! retrying") until the host's retry ladder parks it.

use crate::settings::{Auth, Settings};
use callhook_plugin_sdk::crm::HostKv;
use callhook_plugin_sdk::crm::errors::Rules;
use callhook_plugin_sdk::crm::oauth::{Grant, RefreshError, SendError, Tokens};
use callhook_plugin_sdk::http::{HttpError, Request, Response};
use callhook_plugin_sdk::query::QueryString;
use callhook_plugin_sdk::{DeliveryError, log};
use serde_json::{Map, Value};
use std::time::SystemTime;

/// The portal of one delivery.
pub struct Portal<'a> {
    settings: &'a Settings,
    now: SystemTime,
}

impl<'a> Portal<'a> {
    /// The portal `settings` name, at `now`.
    pub fn new(settings: &'a Settings, now: SystemTime) -> Self {
        Portal { settings, now }
    }

    /// When this delivery runs: dates a `Retry-After`.
    pub fn now(&self) -> SystemTime {
        self.now
    }

    /// Calls `method` with `params` and returns the portal's answer whatever its status; the
    /// caller judges it (with [`Rules::BITRIX24`]). In app mode a 401 has already been dealt
    /// with: the token was replaced once and the call repeated, and a second 401 is the
    /// permanent error `"access token rejected"`.
    pub fn call(
        &self,
        method: &str,
        params: &Map<String, Value>,
    ) -> Result<Response, DeliveryError> {
        let portal = &self.settings.portal;
        match &self.settings.auth {
            Auth::Webhook { user_id, code } => {
                let url = format!("{portal}/rest/{user_id}/{code}/{method}");
                send(Request::post(&url).json(params), "portal").map_err(Into::into)
            }
            Auth::App {
                oauth_base,
                client_id,
                client_secret,
                refresh_token,
            } => {
                let url = format!("{portal}/rest/{method}");
                let tokens = Tokens::new("Bitrix24", &HostKv, refresh_token, self.now);
                let refresh =
                    |current: &str| self.refresh(oauth_base, client_id, client_secret, current);
                tokens.send(refresh, |access_token| {
                    let mut body = params.clone();
                    body.insert("auth".into(), Value::String(access_token.to_string()));
                    let response = send(Request::post(&url).json(&body), "portal")?;
                    if response.status == 401 {
                        return Err(SendError::Unauthorized);
                    }
                    Ok(response)
                })
            }
        }
    }

    /// One refresh at the OAuth server with `refresh_token`. `invalid_grant` and
    /// `invalid_client` are [`RefreshError::Rejected`] (perhaps another delivery rotated it);
    /// other refusals are judged like any Bitrix24 answer.
    fn refresh(
        &self,
        oauth_base: &str,
        client_id: &str,
        client_secret: &str,
        refresh_token: &str,
    ) -> Result<Grant, RefreshError> {
        let mut query = QueryString::new();
        query
            .push("grant_type", "refresh_token")
            .push("client_id", client_id)
            .push("client_secret", client_secret)
            .push("refresh_token", refresh_token);
        let url = format!("{oauth_base}/oauth/token/?{}", query.as_str());
        let response = send(Request::get(&url), "oauth_base")?;
        let body: Value = serde_json::from_slice(&response.body).unwrap_or(Value::Null);
        if let Some("invalid_grant" | "invalid_client") = body.get("error").and_then(Value::as_str)
        {
            log::warn("Bitrix24 refused the refresh token", &[]);
            return Err(RefreshError::Rejected);
        }
        // A refusal in Bitrix24's error form; a 2xx answer is a grant (never quoted: it holds
        // the tokens).
        if !(200..=299).contains(&response.status) {
            Rules::BITRIX24.check(&response, self.now)?;
        }
        let grant = Grant::from_json(&response.body).ok_or_else(|| {
            DeliveryError::permanent(
                "Bitrix24's OAuth server answered without `access_token` and `expires_in`",
            )
        })?;
        log::info(
            "Bitrix24 access token refreshed",
            &[("expires_in", &grant.expires_in_seconds.to_string())],
        );
        Ok(grant)
    }
}

/// Sends `request`; an invalid URL is reported by the setting it came from, never by the URL,
/// which carries credentials (the webhook code, the client secret).
fn send(request: Request, setting: &str) -> Result<Response, HttpError> {
    request.send().map_err(|error| match error {
        HttpError::InvalidUrl(_) => {
            HttpError::InvalidUrl(format!("the setting `{setting}` is not a usable URL"))
        }
        other => other,
    })
}
