//! The plugin's configuration (spec `crm-plugins.md` section 4.1), parsed once per delivery.

use callhook_plugin_sdk::{self as sdk, DeliveryError};
use serde::Deserialize;
use std::collections::BTreeMap;

/// HubSpot's default "Connected" call outcome.
pub const CONNECTED: &str = "f240bbac-87c9-4f6e-bf70-924b57d47db7";
/// HubSpot's default "No answer" call outcome.
pub const NO_ANSWER: &str = "73a0d17f-1163-4015-bdd5-ec830791da20";

/// The `[plugin.settings]` of a `hubspot` plugin.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// The API's base URL, without a trailing `/`. By default `https://api.hubapi.com`; a
    /// stand-in such as `http://127.0.0.1:8085` in tests.
    #[serde(default = "default_api_base")]
    pub api_base: String,
    /// Create a contact (`phone` only) when none has the external number; never for a withheld
    /// one (`anonymous`). By default false.
    #[serde(default)]
    pub create_contacts: bool,
    /// The internal name of a custom single-line text call property the operator made: it gets
    /// the record key, and a create whose answer was lost is found by it. By default none.
    #[serde(default)]
    pub id_property: Option<String>,
    /// The outcome (`hs_call_disposition`) of an answered call. By default HubSpot's
    /// "Connected"; empty sends none.
    #[serde(default = "connected")]
    pub disposition_connected: Option<String>,
    /// The outcome of a missed call. By default HubSpot's "No answer"; empty sends none.
    #[serde(default = "no_answer")]
    pub disposition_no_answer: Option<String>,
    /// `users.{extension}`: the HubSpot owner id of an extension (or of a queue, for its own
    /// missed calls); wins over the owner lookup by e-mail. By default empty.
    #[serde(default)]
    pub users: BTreeMap<String, String>,
}

fn default_api_base() -> String {
    "https://api.hubapi.com".to_string()
}

fn connected() -> Option<String> {
    Some(CONNECTED.to_string())
}

fn no_answer() -> Option<String> {
    Some(NO_ANSWER.to_string())
}

/// The settings and the secret `access_token`, read from the host.
#[derive(Debug, Clone)]
pub struct Config {
    /// The settings.
    pub settings: Settings,
    /// The private app token (`pat-…`). Never logged.
    pub access_token: String,
}

impl Config {
    /// Reads and checks the configuration: a missing token or an invalid setting fails the
    /// delivery permanently, naming the key.
    pub fn read() -> Result<Config, DeliveryError> {
        let settings = Settings::parse(sdk::settings::all())?;
        let access_token = sdk::settings::secret("access_token")
            .filter(|token| !token.trim().is_empty())
            .ok_or_else(|| {
                DeliveryError::permanent(
                    "hubspot: the secret `access_token` is required but not set",
                )
            })?;
        Ok(Config {
            settings,
            access_token,
        })
    }
}

impl Settings {
    /// The settings from `(key, value)` pairs, the base URL without its trailing `/`.
    pub fn parse<K: AsRef<str>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Result<Settings, DeliveryError> {
        let mut settings: Settings = sdk::settings::from_pairs(pairs)
            .map_err(|e| DeliveryError::permanent(format!("hubspot: {e}")))?;
        settings.api_base = settings.api_base.trim_end_matches('/').to_string();
        settings.id_property = settings.id_property.filter(|p| !p.trim().is_empty());
        Ok(settings)
    }

    /// The owner configured for an extension (or queue) in `users`.
    pub fn user(&self, extension: &str) -> Option<&str> {
        self.users
            .get(extension)
            .map(String::as_str)
            .filter(|id| !id.trim().is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_defaults() {
        let settings = Settings::parse(Vec::<(&str, &str)>::new()).unwrap();
        assert_eq!(settings.api_base, "https://api.hubapi.com");
        assert!(!settings.create_contacts);
        assert_eq!(settings.id_property, None);
        assert_eq!(settings.disposition_connected.as_deref(), Some(CONNECTED));
        assert_eq!(settings.disposition_no_answer.as_deref(), Some(NO_ANSWER));
        assert!(settings.users.is_empty());
    }

    #[test]
    fn accepts_every_setting() {
        let settings = Settings::parse([
            ("api_base", "http://127.0.0.1:8085/"),
            ("create_contacts", "true"),
            ("id_property", "callhook_id"),
            ("disposition_connected", ""),
            (
                "disposition_no_answer",
                "0c4ae4a4-0000-4000-8000-000000000001",
            ),
            ("users.120", "77"),
        ])
        .unwrap();
        assert_eq!(settings.api_base, "http://127.0.0.1:8085");
        assert!(settings.create_contacts);
        assert_eq!(settings.id_property.as_deref(), Some("callhook_id"));
        assert_eq!(settings.disposition_connected, None);
        assert_eq!(
            settings.disposition_no_answer.as_deref(),
            Some("0c4ae4a4-0000-4000-8000-000000000001")
        );
        assert_eq!(
            (settings.user("120"), settings.user("121")),
            (Some("77"), None)
        );
    }

    #[test]
    fn rejects_unknown_keys_and_bad_flags() {
        let error = Settings::parse([("id_propery", "x")]).unwrap_err();
        assert!(
            error.message().contains("id_propery"),
            "{}",
            error.message()
        );
        let error = Settings::parse([("create_contacts", "maybe")]).unwrap_err();
        assert!(
            error.message().contains("create_contacts"),
            "{}",
            error.message()
        );
    }
}
