//! Plugins built into the `callhook` binary, so a fresh installation needs no `.wasm` files.
//!
//! A `[[plugin]]` without `path` whose `name` is a built-in plugin's runs it, and
//! `builtin = "NAME"` runs one under another name (two webhook receivers, two CRM accounts).
//! Each built-in plugin brings the defaults its `[[plugin]]` keys take when left out
//! ([`Builtin::defaults`]); the validator reads them.

/// The default `generic-webhook` plugin, built from `plugins/generic-webhook` by `build.rs`.
pub const GENERIC_WEBHOOK_WASM: &[u8] = include_bytes!(env!("CALLHOOK_GENERIC_WEBHOOK_WASM"));
/// The `hubspot` plugin, built from `plugins/hubspot`.
pub const HUBSPOT_WASM: &[u8] = include_bytes!(env!("CALLHOOK_HUBSPOT_WASM"));
/// The `pipedrive` plugin, built from `plugins/pipedrive`.
pub const PIPEDRIVE_WASM: &[u8] = include_bytes!(env!("CALLHOOK_PIPEDRIVE_WASM"));
/// The `bitrix24` plugin, built from `plugins/bitrix24`.
pub const BITRIX24_WASM: &[u8] = include_bytes!(env!("CALLHOOK_BITRIX24_WASM"));
/// The `zoho` plugin, built from `plugins/zoho`.
pub const ZOHO_WASM: &[u8] = include_bytes!(env!("CALLHOOK_ZOHO_WASM"));

/// A plugin built into the binary.
#[derive(Debug)]
pub struct Builtin {
    /// Its name.
    pub name: &'static str,
    /// Its component.
    pub wasm: &'static [u8],
    /// What its `[[plugin]]` keys are when left out.
    pub defaults: BuiltinDefaults,
    /// The settings and secrets it knows, which the validator checks; `None` for
    /// `generic-webhook`, whose settings the validator checks one by one.
    pub schema: Option<&'static SettingsSchema>,
}

/// The defaults of a built-in plugin's `[[plugin]]` keys.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BuiltinDefaults {
    /// `memory_mb`.
    pub memory_mb: u64,
    /// `timeout_ms`.
    pub timeout_ms: u64,
    /// `kv_quota_mb`.
    pub kv_quota_mb: u64,
    /// `rate_per_second`.
    pub rate_per_second: Option<f64>,
    /// The settings holding the URLs it sends to; `allowed_hosts` defaults to their origins.
    pub url_settings: &'static [UrlSetting],
}

/// A setting that holds a URL the plugin sends to.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct UrlSetting {
    /// The setting.
    pub key: &'static str,
    /// Its default, when it has one.
    pub default: Option<&'static str>,
    /// Only when this holds (Bitrix24's `oauth_base` is used with `auth = "app"` only).
    pub when: Option<Condition>,
}

/// A condition on another setting's value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Condition {
    /// The setting.
    pub setting: &'static str,
    /// The value it must have.
    pub equals: &'static str,
    /// Its value when unset.
    pub default: &'static str,
}

impl Condition {
    /// Whether the condition holds for these settings.
    pub fn holds(&self, settings: &std::collections::BTreeMap<String, String>) -> bool {
        settings
            .get(self.setting)
            .map_or(self.default, |value| value.trim())
            == self.equals
    }
}

/// The settings and secrets a built-in plugin knows: anything else is a typo, and a missing
/// required one would fail every delivery, so both are configuration errors.
#[derive(Debug, PartialEq)]
pub struct SettingsSchema {
    /// Its settings.
    pub settings: &'static [SettingSpec],
    /// Its secrets.
    pub secrets: &'static [&'static str],
    /// The settings and secrets it cannot work without.
    pub required: &'static [Required],
}

/// One setting of a built-in plugin.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SettingSpec {
    /// Its key; a key ending in `.` is a table (`users.` takes `users.120`).
    pub key: &'static str,
    /// What it holds.
    pub kind: SettingKind,
}

/// What a built-in plugin's setting holds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SettingKind {
    /// An `http` or `https` URL.
    Url,
    /// A flag: 0 or 1, true or false.
    Flag,
    /// Any text.
    Text,
    /// One of these words.
    OneOf(&'static [&'static str]),
}

/// A setting or secret a built-in plugin cannot work without.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Required {
    /// The key.
    pub key: &'static str,
    /// Whether it is a secret (`[plugin.secrets]`) rather than a setting.
    pub secret: bool,
    /// Another setting accepted in its place (Bitrix24's `api_base` for `portal`).
    pub alias: Option<&'static str>,
    /// Only when this holds.
    pub when: Option<Condition>,
}

impl PartialEq for Builtin {
    /// Built-in plugins are the same when their names are.
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

/// The defaults of the four CRM plugins (`crm-plugins.md` section 1): room for a CRM's slow
/// answers, JSON of a few hundred contacts and their token and call maps.
const fn crm_defaults(url_settings: &'static [UrlSetting]) -> BuiltinDefaults {
    BuiltinDefaults {
        memory_mb: 128,
        timeout_ms: 30_000,
        kv_quota_mb: 64,
        rate_per_second: None,
        url_settings,
    }
}

const fn url(key: &'static str, default: Option<&'static str>) -> UrlSetting {
    UrlSetting {
        key,
        default,
        when: None,
    }
}

const fn setting(key: &'static str, kind: SettingKind) -> SettingSpec {
    SettingSpec { key, kind }
}

const fn required(key: &'static str, secret: bool) -> Required {
    Required {
        key,
        secret,
        alias: None,
        when: None,
    }
}

/// The extension → CRM user map every CRM plugin takes (`users.120 = "77"`).
const USERS: SettingSpec = setting("users.", SettingKind::Text);

/// Bitrix24's OAuth mode, its default.
const BITRIX24_APP: Condition = Condition {
    setting: "auth",
    equals: "app",
    default: "app",
};
/// Bitrix24's inbound-webhook mode.
const BITRIX24_WEBHOOK: Condition = Condition {
    setting: "auth",
    equals: "webhook",
    default: "app",
};

/// Every built-in plugin.
pub static BUILTINS: &[Builtin] = &[
    Builtin {
        name: "generic-webhook",
        wasm: GENERIC_WEBHOOK_WASM,
        defaults: BuiltinDefaults {
            memory_mb: 64,
            timeout_ms: 10_000,
            kv_quota_mb: 1,
            rate_per_second: None,
            url_settings: &[url("webhook_url", None), url("webhook_post_url", None)],
        },
        schema: None,
    },
    Builtin {
        name: "hubspot",
        wasm: HUBSPOT_WASM,
        defaults: crm_defaults(&[url("api_base", Some("https://api.hubapi.com"))]),
        schema: Some(&SettingsSchema {
            settings: &[
                setting("api_base", SettingKind::Url),
                setting("create_contacts", SettingKind::Flag),
                setting("id_property", SettingKind::Text),
                setting("disposition_connected", SettingKind::Text),
                setting("disposition_no_answer", SettingKind::Text),
                USERS,
            ],
            secrets: &["access_token"],
            required: &[required("access_token", true)],
        }),
    },
    Builtin {
        name: "pipedrive",
        wasm: PIPEDRIVE_WASM,
        defaults: crm_defaults(&[url("api_base", Some("https://api.pipedrive.com"))]),
        schema: Some(&SettingsSchema {
            settings: &[setting("api_base", SettingKind::Url), USERS],
            secrets: &["api_token"],
            required: &[required("api_token", true)],
        }),
    },
    Builtin {
        name: "bitrix24",
        wasm: BITRIX24_WASM,
        defaults: BuiltinDefaults {
            rate_per_second: Some(2.0),
            ..crm_defaults(&[
                url("portal", None),
                url("api_base", None),
                UrlSetting {
                    key: "oauth_base",
                    default: Some("https://oauth.bitrix.info"),
                    when: Some(BITRIX24_APP),
                },
            ])
        },
        schema: Some(&SettingsSchema {
            settings: &[
                setting("portal", SettingKind::Url),
                setting("api_base", SettingKind::Url),
                setting("auth", SettingKind::OneOf(&["app", "webhook"])),
                setting("webhook_user_id", SettingKind::Text),
                setting("client_id", SettingKind::Text),
                setting("oauth_base", SettingKind::Url),
                setting("show_card", SettingKind::Flag),
                setting("crm_create", SettingKind::Flag),
                setting("default_user", SettingKind::Text),
                USERS,
            ],
            secrets: &["webhook_code", "client_secret", "refresh_token"],
            required: &[
                Required {
                    alias: Some("api_base"),
                    ..required("portal", false)
                },
                Required {
                    when: Some(BITRIX24_WEBHOOK),
                    ..required("webhook_user_id", false)
                },
                Required {
                    when: Some(BITRIX24_WEBHOOK),
                    ..required("webhook_code", true)
                },
                Required {
                    when: Some(BITRIX24_APP),
                    ..required("client_id", false)
                },
                Required {
                    when: Some(BITRIX24_APP),
                    ..required("client_secret", true)
                },
                Required {
                    when: Some(BITRIX24_APP),
                    ..required("refresh_token", true)
                },
            ],
        }),
    },
    Builtin {
        name: "zoho",
        wasm: ZOHO_WASM,
        defaults: crm_defaults(&[
            url("api_base", Some("https://www.zohoapis.eu")),
            url("accounts_base", Some("https://accounts.zoho.eu")),
        ]),
        schema: Some(&SettingsSchema {
            settings: &[
                setting("api_base", SettingKind::Url),
                setting("accounts_base", SettingKind::Url),
                setting("client_id", SettingKind::Text),
                setting("id_field", SettingKind::Text),
                USERS,
            ],
            secrets: &["client_secret", "refresh_token"],
            required: &[
                required("client_id", false),
                required("client_secret", true),
                required("refresh_token", true),
            ],
        }),
    },
];

/// The built-in plugin called `name`.
pub fn builtin(name: &str) -> Option<&'static Builtin> {
    BUILTINS.iter().find(|builtin| builtin.name == name)
}

/// The names of the built-in plugins, for messages.
pub fn builtin_names() -> Vec<&'static str> {
    BUILTINS.iter().map(|builtin| builtin.name).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::PluginLimits;

    #[test]
    fn generic_webhook_is_built_in_with_the_usual_limits() {
        let webhook = builtin("generic-webhook").unwrap();
        assert_eq!(webhook.wasm, GENERIC_WEBHOOK_WASM);
        let limits = PluginLimits::default();
        assert_eq!(
            webhook.defaults.memory_mb,
            u64::from(PluginLimits::DEFAULT_MEMORY_MB)
        );
        assert_eq!(
            u128::from(webhook.defaults.timeout_ms),
            limits.timeout.as_millis()
        );
        assert!(builtin("hubspot-typo").is_none());
    }
}
