//! Requests to the Zoho CRM API with an OAuth access token (spec `crm-plugins.md` 7.1).
//!
//! Every request carries `Authorization: Zoho-oauthtoken {access token}` (not `Bearer`). The
//! token comes from the SDK's [`Tokens`]: it lives in the store under `oauth` as
//! `{"access_token","expires_at","seed"}` and is refreshed at the accounts server
//! (`POST {accounts_base}/oauth/v2/token?refresh_token=…&client_id=…&client_secret=…&grant_type=refresh_token`,
//! empty body) when there is none, fewer than 300 s are left, or once after a 401
//! (`INVALID_TOKEN`, `AUTHENTICATION_FAILURE`). Zoho's refresh tokens do not rotate, but it
//! grants only ten access tokens per refresh token in ten minutes, so every delivery reuses the
//! stored token: with deliveries refreshing at once, `set-if` keeps one state and the others
//! use its token.
//!
//! The accounts server answers a refused refresh token with **200** and `{"error":"…"}`:
//! permanent, `"Zoho refresh token rejected: {error}"`. Any other answer but 200 is retryable.

use crate::settings::Settings;
use callhook_plugin_sdk::crm::HostKv;
use callhook_plugin_sdk::crm::oauth::{Grant, RefreshError, SendError, Tokens};
use callhook_plugin_sdk::http::{HttpError, Request, Response};
use callhook_plugin_sdk::query::QueryString;
use callhook_plugin_sdk::{DeliveryError, log};
use serde_json::Value;
use std::time::SystemTime;

/// The Zoho CRM API of one delivery.
pub struct Api<'a> {
    settings: &'a Settings,
    now: SystemTime,
}

impl<'a> Api<'a> {
    /// The API `settings` name, at `now`.
    pub fn new(settings: &'a Settings, now: SystemTime) -> Self {
        Api { settings, now }
    }

    /// When this delivery runs: dates a `Retry-After`.
    pub fn now(&self) -> SystemTime {
        self.now
    }

    /// `GET {api_base}{path}`.
    pub fn get(&self, path: &str) -> Result<Response, DeliveryError> {
        self.send(|| Request::get(&self.url(path)))
    }

    /// `PUT {api_base}{path}` with a JSON body.
    pub fn put(&self, path: &str, body: &Value) -> Result<Response, DeliveryError> {
        self.send(|| Request::put(&self.url(path)).json(body))
    }

    /// `POST {api_base}{path}` with a JSON body, where a failure to send is the caller's to
    /// judge (a create must tell "never arrived" from "no answer"): the answer, or the
    /// failure; a refused token is dealt with as in [`Api::get`].
    pub fn post(
        &self,
        path: &str,
        body: &Value,
    ) -> Result<Result<Response, HttpError>, DeliveryError> {
        let tokens = self.tokens();
        tokens.send(
            |refresh_token| self.refresh(refresh_token),
            |access_token| {
                let request = Request::post(&self.url(path))
                    .json(body)
                    .header("authorization", &format!("Zoho-oauthtoken {access_token}"));
                match request.send() {
                    Ok(response) if response.status == 401 => Err(SendError::Unauthorized),
                    sent => Ok(sent),
                }
            },
        )
    }

    /// Sends the request `make` builds with the access token; after a 401, once more with a
    /// new one. The answer is returned whatever its status, for the caller to judge.
    fn send(&self, make: impl Fn() -> Request) -> Result<Response, DeliveryError> {
        self.tokens().send(
            |refresh_token| self.refresh(refresh_token),
            |access_token| {
                let response = make()
                    .header("authorization", &format!("Zoho-oauthtoken {access_token}"))
                    .send()?;
                if response.status == 401 {
                    return Err(SendError::Unauthorized);
                }
                Ok(response)
            },
        )
    }

    fn tokens(&self) -> Tokens<'_, HostKv> {
        Tokens::new("Zoho", &HostKv, &self.settings.refresh_token, self.now)
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.settings.api_base)
    }

    /// One refresh at the accounts server.
    fn refresh(&self, refresh_token: &str) -> Result<Grant, RefreshError> {
        let mut query = QueryString::new();
        query
            .push("refresh_token", refresh_token)
            .push("client_id", &self.settings.client_id)
            .push("client_secret", &self.settings.client_secret)
            .push("grant_type", "refresh_token");
        let url = format!(
            "{}/oauth/v2/token?{}",
            self.settings.accounts_base,
            query.as_str()
        );
        // The URL carries the client secret: an invalid one is reported by its setting.
        let response = Request::post(&url).send().map_err(|error| match error {
            HttpError::InvalidUrl(_) => {
                HttpError::InvalidUrl("the setting `accounts_base` is not a usable URL".into())
            }
            other => other,
        })?;
        let body: Value = serde_json::from_slice(&response.body).unwrap_or(Value::Null);
        if response.status != 200 {
            let detail = body["error"].as_str().unwrap_or_default();
            return Err(RefreshError::Failed(DeliveryError::retryable(format!(
                "Zoho's accounts server answered HTTP {} {detail}",
                response.status
            ))));
        }
        if let Some(error) = body.get("error") {
            let error = error
                .as_str()
                .map_or_else(|| error.to_string(), str::to_string);
            return Err(RefreshError::Failed(DeliveryError::permanent(format!(
                "Zoho refresh token rejected: {error}"
            ))));
        }
        let grant = Grant::from_json(&response.body).ok_or_else(|| {
            DeliveryError::permanent(
                "Zoho's accounts server answered without `access_token` and `expires_in`",
            )
        })?;
        log::info(
            "Zoho access token refreshed",
            &[("expires_in", &grant.expires_in_seconds.to_string())],
        );
        // Zoho's refresh tokens stay valid: the configured one is used again.
        Ok(Grant {
            refresh_token: None,
            ..grant
        })
    }
}
