//! The plugin's settings and secrets (spec `crm-plugins.md` 6.1), read once per delivery and
//! resolved into [`Settings`]: the portal's base URL without a trailing `/`, and the
//! credentials of the one auth mode in force, each required one checked.

use callhook_plugin_sdk::DeliveryError;
use callhook_plugin_sdk::settings::{self, SettingsError};
use serde::Deserialize;
use std::collections::BTreeMap;

/// Bitrix24's OAuth server, where a local application's tokens are refreshed.
pub const DEFAULT_OAUTH_BASE: &str = "https://oauth.bitrix.info";

/// The settings as the operator wrote them (`[plugin.settings]`), before they are checked.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    /// The portal's base URL, e.g. `https://example.bitrix24.de`. Required.
    portal: Option<String>,
    /// Accepted in place of `portal`, as for the other CRM plugins.
    api_base: Option<String>,
    /// `app` (the default) or `webhook`.
    #[serde(default)]
    auth: Mode,
    /// The user id part of an inbound webhook's URL; required with `auth = "webhook"`.
    webhook_user_id: Option<String>,
    /// The local application's client id; required with `auth = "app"`.
    client_id: Option<String>,
    /// Where tokens are refreshed. By default [`DEFAULT_OAUTH_BASE`].
    oauth_base: Option<String>,
    /// `SHOW` on register: pop up the call card. By default false.
    #[serde(default)]
    show_card: bool,
    /// `CRM_CREATE` on register: a lead for an unknown number (never for a withheld one). By
    /// default false.
    #[serde(default)]
    crm_create: bool,
    /// The Bitrix24 user for registrations no extension maps to. By default none.
    default_user: Option<u64>,
    /// `users.{extension or queue}`: its Bitrix24 user id. By default empty.
    #[serde(default)]
    users: BTreeMap<String, u64>,
}

/// How the plugin authenticates.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Mode {
    /// A local application with OAuth.
    #[default]
    App,
    /// An inbound webhook.
    Webhook,
}

/// The resolved settings of one delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// The portal's base URL, without a trailing `/`.
    pub portal: String,
    /// The credentials.
    pub auth: Auth,
    /// `SHOW` = 1 on registrations made at `ringing`, `dialing` or `started`.
    pub show_card: bool,
    /// `CRM_CREATE` = 1 on every registration of a phone number (not of a withheld one).
    pub crm_create: bool,
    /// The user of registrations no extension maps to (a call missed at queue level without
    /// `users.{queue}`).
    pub default_user: Option<u64>,
    /// Extension or queue → Bitrix24 user id.
    pub users: BTreeMap<String, u64>,
}

/// The credentials of the auth mode in force. Secrets: never log them.
#[derive(Clone, PartialEq, Eq)]
pub enum Auth {
    /// `auth = "app"`: tokens from the OAuth server, the access token in each body.
    App {
        /// `oauth_base`, without a trailing `/`.
        oauth_base: String,
        /// `client_id`.
        client_id: String,
        /// Secret `client_secret`.
        client_secret: String,
        /// Secret `refresh_token`, as configured (the rotated ones live in the store).
        refresh_token: String,
    },
    /// `auth = "webhook"`: `{portal}/rest/{user_id}/{code}/{method}`.
    Webhook {
        /// `webhook_user_id`.
        user_id: String,
        /// Secret `webhook_code`.
        code: String,
    },
}

impl std::fmt::Debug for Auth {
    /// Names the mode only: the credentials stay out of logs and panics.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Auth::App { .. } => f.write_str("Auth::App"),
            Auth::Webhook { .. } => f.write_str("Auth::Webhook"),
        }
    }
}

impl Settings {
    /// The host's settings and secrets of this delivery.
    pub fn from_host() -> Result<Settings, DeliveryError> {
        Settings::resolve(settings::all(), settings::secret)
    }

    /// `pairs` as the host hands them over, and the secrets `secret` returns; every error is
    /// permanent and names the plugin and the key.
    pub fn resolve<K, V>(
        pairs: impl IntoIterator<Item = (K, V)>,
        secret: impl Fn(&str) -> Option<String>,
    ) -> Result<Settings, DeliveryError>
    where
        K: AsRef<str>,
        V: Into<String>,
    {
        let raw: Raw = settings::from_pairs(pairs).map_err(invalid)?;
        let required_setting = |value: Option<String>, key: &str| {
            value
                .filter(|v| !v.trim().is_empty())
                .ok_or_else(|| missing("setting", key))
        };
        let required_secret = |key: &str| {
            secret(key)
                .filter(|v| !v.trim().is_empty())
                .ok_or_else(|| missing("secret", key))
        };
        let portal = required_setting(raw.portal.or(raw.api_base), "portal")?;
        let auth = match raw.auth {
            Mode::App => Auth::App {
                oauth_base: base(raw.oauth_base.as_deref().unwrap_or(DEFAULT_OAUTH_BASE)),
                client_id: required_setting(raw.client_id, "client_id")?,
                client_secret: required_secret("client_secret")?,
                refresh_token: required_secret("refresh_token")?,
            },
            Mode::Webhook => Auth::Webhook {
                user_id: required_setting(raw.webhook_user_id, "webhook_user_id")?,
                code: required_secret("webhook_code")?,
            },
        };
        Ok(Settings {
            portal: base(&portal),
            auth,
            show_card: raw.show_card,
            crm_create: raw.crm_create,
            default_user: raw.default_user,
            users: raw.users,
        })
    }
}

/// A base URL trimmed, without its trailing `/`.
fn base(url: &str) -> String {
    url.trim().trim_end_matches('/').to_string()
}

fn invalid(error: SettingsError) -> DeliveryError {
    DeliveryError::permanent(format!("bitrix24: {error}"))
}

fn missing(kind: &str, key: &str) -> DeliveryError {
    DeliveryError::permanent(format!(
        "bitrix24: the {kind} `{key}` is required but not set"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secrets(key: &str) -> Option<String> {
        match key {
            "client_secret" => Some("s3cret".into()),
            "refresh_token" => Some("r0".into()),
            "webhook_code" => Some("code".into()),
            _ => None,
        }
    }

    fn message(error: DeliveryError) -> String {
        error.message().to_string()
    }

    #[test]
    fn accepts_an_app_with_defaults() {
        let settings = Settings::resolve(
            [("portal", "https://b24.example/"), ("client_id", "local.1")],
            secrets,
        )
        .unwrap();
        assert_eq!(settings.portal, "https://b24.example");
        assert_eq!(
            settings.auth,
            Auth::App {
                oauth_base: DEFAULT_OAUTH_BASE.into(),
                client_id: "local.1".into(),
                client_secret: "s3cret".into(),
                refresh_token: "r0".into(),
            }
        );
        assert!(!settings.show_card && !settings.crm_create);
        assert_eq!(settings.default_user, None);
    }

    #[test]
    fn accepts_a_webhook_api_base_and_users() {
        let settings = Settings::resolve(
            [
                ("api_base", "http://127.0.0.1:8085"),
                ("auth", "webhook"),
                ("webhook_user_id", "1"),
                ("users.120", "77"),
                ("default_user", "5"),
                ("show_card", "1"),
            ],
            secrets,
        )
        .unwrap();
        assert_eq!(settings.portal, "http://127.0.0.1:8085");
        assert_eq!(
            settings.auth,
            Auth::Webhook {
                user_id: "1".into(),
                code: "code".into()
            }
        );
        assert_eq!(settings.users["120"], 77);
        assert_eq!(settings.default_user, Some(5));
        assert!(settings.show_card);
    }

    #[test]
    fn rejects_missing_keys_naming_plugin_and_key() {
        type Case<'a> = (&'a [(&'a str, &'a str)], &'a str);
        let cases: &[Case] = &[
            (
                &[("client_id", "c")],
                "bitrix24: the setting `portal` is required but not set",
            ),
            (
                &[("portal", "p")],
                "bitrix24: the setting `client_id` is required but not set",
            ),
            (
                &[("portal", "p"), ("auth", "webhook")],
                "bitrix24: the setting `webhook_user_id` is required but not set",
            ),
            (
                &[("portal", "p"), ("users.120", "anna")],
                "bitrix24: the setting `users.120` must be an integer from 0 to 18446744073709551615, not \"anna\"",
            ),
        ];
        for (pairs, expected) in cases {
            let error = Settings::resolve(pairs.iter().copied(), secrets).unwrap_err();
            assert_eq!(message(error), *expected, "{pairs:?}");
        }
        let error = Settings::resolve([("portal", "p"), ("client_id", "c")], |_| None);
        assert_eq!(
            message(error.unwrap_err()),
            "bitrix24: the secret `client_secret` is required but not set"
        );
    }

    #[test]
    fn debug_output_shows_no_credentials() {
        let settings = Settings::resolve([("portal", "p"), ("client_id", "c")], secrets).unwrap();
        let shown = format!("{settings:?}");
        assert!(
            !shown.contains("s3cret") && !shown.contains("r0\""),
            "{shown}"
        );
    }
}
