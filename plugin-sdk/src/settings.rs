//! The plugin's `[plugin.settings]` and `[plugin.secrets]`, as the operator configured them.
//!
//! ```no_run
//! use callhook_plugin_sdk::{settings, DeliveryError};
//!
//! # fn run() -> Result<(), DeliveryError> {
//! let url = settings::required("webhook_url")?;
//! let as_json = settings::flag("post", false)?;
//! let token = settings::secret("api_token");
//! # Ok(())
//! # }
//! ```
//!
//! Or all at once into a struct of the plugin's own with [`parse`] (see [`from_pairs`] for how
//! text becomes numbers, flags and tables).
//!
//! The settings are asked of the host once, at the first read of one (`get`, `all`,
//! `required`, `flag`, `parse`), and kept for the rest of the delivery: every delivery runs in
//! a fresh instance, and a plugin's settings change only when the host reloads it, so the copy
//! cannot go stale. Each host call costs about a microsecond; a plugin that reads a dozen
//! settings pays for one. Secrets are asked for one by one, so that only those the plugin
//! reads cross into its memory.

mod typed;

pub use typed::{SettingsError, from_pairs};

use crate::DeliveryError;
use crate::wit::callhook::plugin::host;
use std::collections::BTreeMap;
use std::sync::OnceLock;

/// The setting `key`, if set.
pub fn get(key: &str) -> Option<String> {
    instance_copy().get(key).cloned()
}

/// All settings, sorted by key.
pub fn all() -> Vec<(String, String)> {
    instance_copy()
        .iter()
        .map(|(key, value)| (key.clone(), value.clone()))
        .collect()
}

/// This instance's copy of the settings, asked of the host at the first call.
fn instance_copy() -> &'static BTreeMap<String, String> {
    static SETTINGS: OnceLock<BTreeMap<String, String>> = OnceLock::new();
    SETTINGS.get_or_init(|| host::settings().into_iter().collect())
}

/// The setting `key`, or a permanent error naming it when it is missing or empty.
pub fn required(key: &str) -> Result<String, DeliveryError> {
    match get(key) {
        Some(value) if !value.trim().is_empty() => Ok(value),
        _ => Err(DeliveryError::permanent(format!(
            "the setting `{key}` is required but not set"
        ))),
    }
}

/// The boolean setting `key`: `1`/`true`/`yes`/`on` or `0`/`false`/`no`/`off`; `default` when
/// unset or empty; a permanent error for anything else.
pub fn flag(key: &str, default: bool) -> Result<bool, DeliveryError> {
    let Some(value) = get(key) else {
        return Ok(default);
    };
    match parse_flag(&value) {
        Some(flag) => Ok(flag.unwrap_or(default)),
        None => Err(DeliveryError::permanent(format!(
            "the setting `{key}` must be 1/0 or true/false, not {value:?}"
        ))),
    }
}

/// All settings deserialized into `T`, e.g. a struct with a field per setting and a
/// `BTreeMap` for a table such as `users`; the error names the setting at fault.
///
/// ```no_run
/// use callhook_plugin_sdk::{settings, DeliveryError};
/// use std::collections::BTreeMap;
///
/// #[derive(serde::Deserialize)]
/// #[serde(deny_unknown_fields)]
/// struct Settings {
///     api_base: String,
///     /// `users.{extension}`: the CRM user of an extension.
///     #[serde(default)]
///     users: BTreeMap<String, String>,
/// }
///
/// # fn run() -> Result<(), DeliveryError> {
/// let settings: Settings = settings::parse()?;
/// # Ok(())
/// # }
/// ```
pub fn parse<T: serde::de::DeserializeOwned>() -> Result<T, SettingsError> {
    from_pairs(instance_copy())
}

/// The secret `key`, if set. Never log it.
pub fn secret(key: &str) -> Option<String> {
    host::secret(key)
}

/// `Some(None)` for an empty value (use the default), `None` for an invalid one.
fn parse_flag(value: &str) -> Option<Option<bool>> {
    match value.trim().to_ascii_lowercase().as_str() {
        "" => Some(None),
        "1" | "true" | "yes" | "on" => Some(Some(true)),
        "0" | "false" | "no" | "off" => Some(Some(false)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::parse_flag;

    #[test]
    fn flags_accept_the_usual_spellings() {
        for (raw, expected) in [
            ("1", Some(Some(true))),
            ("TRUE", Some(Some(true))),
            (" on ", Some(Some(true))),
            ("0", Some(Some(false))),
            ("no", Some(Some(false))),
            ("", Some(None)),
            ("2", None),
            ("maybe", None),
        ] {
            assert_eq!(parse_flag(raw), expected, "{raw:?}");
        }
    }
}
