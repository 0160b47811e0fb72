//! The plugin's configuration (spec `crm-plugins.md` section 5.1), parsed once per delivery.

use callhook_plugin_sdk::{self as sdk, DeliveryError};
use serde::Deserialize;
use std::collections::BTreeMap;

/// The `[plugin.settings]` of a `pipedrive` plugin.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// The API's base URL, without a trailing `/`. By default `https://api.pipedrive.com`
    /// (`https://{company}.pipedrive.com` works too); a stand-in in tests.
    #[serde(default = "default_api_base")]
    pub api_base: String,
    /// `users.{extension}`: the Pipedrive user id (an integer) of an extension, or of a queue
    /// for its own missed calls; wins over the user lookup by e-mail. By default empty.
    #[serde(default)]
    pub users: BTreeMap<String, u64>,
}

fn default_api_base() -> String {
    "https://api.pipedrive.com".to_string()
}

/// The settings and the secret `api_token`, read from the host.
#[derive(Debug, Clone)]
pub struct Config {
    /// The settings.
    pub settings: Settings,
    /// An admin's API token, sent as `x-api-token`. Never logged.
    pub api_token: String,
}

impl Config {
    /// Reads and checks the configuration: a missing token or an invalid setting fails the
    /// delivery permanently, naming the key.
    pub fn read() -> Result<Config, DeliveryError> {
        let settings = Settings::parse(sdk::settings::all())?;
        let api_token = sdk::settings::secret("api_token")
            .filter(|token| !token.trim().is_empty())
            .ok_or_else(|| {
                DeliveryError::permanent(
                    "pipedrive: the secret `api_token` is required but not set",
                )
            })?;
        Ok(Config {
            settings,
            api_token,
        })
    }
}

impl Settings {
    /// The settings from `(key, value)` pairs, the base URL without its trailing `/`.
    pub fn parse<K: AsRef<str>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Result<Settings, DeliveryError> {
        let mut settings: Settings = sdk::settings::from_pairs(pairs)
            .map_err(|e| DeliveryError::permanent(format!("pipedrive: {e}")))?;
        settings.api_base = settings.api_base.trim_end_matches('/').to_string();
        Ok(settings)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_defaults_and_every_setting() {
        let settings = Settings::parse(Vec::<(&str, &str)>::new()).unwrap();
        assert_eq!(settings.api_base, "https://api.pipedrive.com");
        assert!(settings.users.is_empty());
        let settings =
            Settings::parse([("api_base", "http://127.0.0.1:8086/"), ("users.120", "12")]).unwrap();
        assert_eq!(settings.api_base, "http://127.0.0.1:8086");
        assert_eq!(settings.users.get("120"), Some(&12));
    }

    #[test]
    fn rejects_unknown_keys_and_non_integer_users() {
        let error = Settings::parse([("api_bse", "x")]).unwrap_err();
        assert!(error.message().contains("api_bse"), "{}", error.message());
        let error = Settings::parse([("users.120", "anna")]).unwrap_err();
        assert!(error.message().contains("users.120"), "{}", error.message());
    }
}
