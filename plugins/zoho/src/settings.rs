//! The plugin's settings and secrets (spec `crm-plugins.md` 7.1), read once per delivery and
//! resolved into [`Settings`]: both base URLs without a trailing `/`, each required key
//! checked.
//!
//! The data centre is chosen by the two base URLs, which must name the same one: EU by
//! default (`https://www.zohoapis.eu`, `https://accounts.zoho.eu`); US `.com`, India `.in`,
//! Australia `.com.au`, Japan `.jp`.

use callhook_plugin_sdk::DeliveryError;
use callhook_plugin_sdk::settings::{self, SettingsError};
use serde::Deserialize;
use std::collections::BTreeMap;

/// The EU data centre's API domain, the default `api_base`.
pub const DEFAULT_API_BASE: &str = "https://www.zohoapis.eu";
/// The EU data centre's accounts server, the default `accounts_base`.
pub const DEFAULT_ACCOUNTS_BASE: &str = "https://accounts.zoho.eu";

/// The settings as the operator wrote them (`[plugin.settings]`), before they are checked.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    /// The data centre's API domain. By default [`DEFAULT_API_BASE`].
    api_base: Option<String>,
    /// The same data centre's accounts server. By default [`DEFAULT_ACCOUNTS_BASE`].
    accounts_base: Option<String>,
    /// The self client's or server-based client's id. Required.
    client_id: Option<String>,
    /// The API name of a custom single-line field on Calls that gets the record key. By
    /// default none.
    id_field: Option<String>,
    /// `users.{extension or queue}`: its Zoho user id. By default empty.
    #[serde(default)]
    users: BTreeMap<String, String>,
}

/// The resolved settings of one delivery.
#[derive(Clone, PartialEq, Eq)]
pub struct Settings {
    /// The API domain, without a trailing `/`.
    pub api_base: String,
    /// The accounts server, without a trailing `/`.
    pub accounts_base: String,
    /// `client_id`.
    pub client_id: String,
    /// Secret `client_secret`. Never log it.
    pub client_secret: String,
    /// Secret `refresh_token`. Never log it.
    pub refresh_token: String,
    /// The custom field on Calls that gets the record key, when set.
    pub id_field: Option<String>,
    /// Extension or queue → Zoho user id.
    pub users: BTreeMap<String, String>,
}

impl std::fmt::Debug for Settings {
    /// Everything but the secrets.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("api_base", &self.api_base)
            .field("accounts_base", &self.accounts_base)
            .field("client_id", &self.client_id)
            .field("id_field", &self.id_field)
            .field("users", &self.users)
            .finish_non_exhaustive()
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
        let required_secret = |key: &str| {
            secret(key)
                .filter(|v| !v.trim().is_empty())
                .ok_or_else(|| missing("secret", key))
        };
        let client_id = raw
            .client_id
            .filter(|v| !v.trim().is_empty())
            .ok_or_else(|| missing("setting", "client_id"))?;
        Ok(Settings {
            api_base: base(raw.api_base.as_deref().unwrap_or(DEFAULT_API_BASE)),
            accounts_base: base(
                raw.accounts_base
                    .as_deref()
                    .unwrap_or(DEFAULT_ACCOUNTS_BASE),
            ),
            client_id,
            client_secret: required_secret("client_secret")?,
            refresh_token: required_secret("refresh_token")?,
            id_field: raw.id_field.filter(|f| !f.trim().is_empty()),
            users: raw.users,
        })
    }
}

/// A base URL trimmed, without its trailing `/`.
fn base(url: &str) -> String {
    url.trim().trim_end_matches('/').to_string()
}

fn invalid(error: SettingsError) -> DeliveryError {
    DeliveryError::permanent(format!("zoho: {error}"))
}

fn missing(kind: &str, key: &str) -> DeliveryError {
    DeliveryError::permanent(format!("zoho: the {kind} `{key}` is required but not set"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secrets(key: &str) -> Option<String> {
        match key {
            "client_secret" => Some("s3cret".into()),
            "refresh_token" => Some("1000.r".into()),
            _ => None,
        }
    }

    #[test]
    fn accepts_the_eu_data_centre_by_default() {
        let settings = Settings::resolve([("client_id", "1000.X")], secrets).unwrap();
        assert_eq!(settings.api_base, "https://www.zohoapis.eu");
        assert_eq!(settings.accounts_base, "https://accounts.zoho.eu");
        assert_eq!(settings.id_field, None);
        assert!(settings.users.is_empty());
    }

    #[test]
    fn accepts_another_data_centre_an_id_field_and_users() {
        let settings = Settings::resolve(
            [
                ("api_base", "https://www.zohoapis.com/"),
                ("accounts_base", "https://accounts.zoho.com"),
                ("client_id", "1000.X"),
                ("id_field", "Callhook_Id"),
                ("users.120", "4876876000000225013"),
            ],
            secrets,
        )
        .unwrap();
        assert_eq!(settings.api_base, "https://www.zohoapis.com");
        assert_eq!(settings.accounts_base, "https://accounts.zoho.com");
        assert_eq!(settings.id_field.as_deref(), Some("Callhook_Id"));
        assert_eq!(settings.users["120"], "4876876000000225013");
    }

    #[test]
    fn rejects_missing_keys_naming_plugin_and_key() {
        let message = |pairs: &[(&str, &str)], secret: fn(&str) -> Option<String>| {
            Settings::resolve(pairs.iter().copied(), secret)
                .unwrap_err()
                .message()
                .to_string()
        };
        assert_eq!(
            message(&[], secrets),
            "zoho: the setting `client_id` is required but not set"
        );
        assert_eq!(
            message(&[("client_id", "x")], |_| None),
            "zoho: the secret `client_secret` is required but not set"
        );
        assert_eq!(
            message(&[("client_id", "x"), ("api_bse", "y")], secrets),
            "zoho: the setting `api_bse` is not a setting of this plugin (`api_bse`; known: \
             `api_base`, `accounts_base`, `client_id`, `id_field`, `users`)"
        );
    }

    #[test]
    fn debug_output_shows_no_secrets() {
        let settings = Settings::resolve([("client_id", "1000.X")], secrets).unwrap();
        let shown = format!("{settings:?}");
        assert!(
            !shown.contains("s3cret") && !shown.contains("1000.r"),
            "{shown}"
        );
    }
}
