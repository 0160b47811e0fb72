//! Plugins built into the `callhook` binary, so a fresh installation needs no `.wasm` files.
//!
//! A `[[plugin]]` without `path` whose `name` is a built-in plugin's runs it, and
//! `builtin = "NAME"` runs one under another name (two webhook receivers, two CRM accounts).
//! Each built-in plugin brings the defaults its `[[plugin]]` keys take when left out
//! ([`Builtin::defaults`]); the validator reads them.

/// The default `generic-webhook` plugin, built from `plugins/generic-webhook` by `build.rs`.
pub const GENERIC_WEBHOOK_WASM: &[u8] = include_bytes!(env!("CALLHOOK_GENERIC_WEBHOOK_WASM"));

/// A plugin built into the binary.
#[derive(Debug)]
pub struct Builtin {
    /// Its name.
    pub name: &'static str,
    /// Its component.
    pub wasm: &'static [u8],
    /// What its `[[plugin]]` keys are when left out.
    pub defaults: BuiltinDefaults,
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
    /// The settings holding the URLs it sends to, each with its default (none: the setting has
    /// no default); `allowed_hosts` defaults to their origins.
    pub url_settings: &'static [(&'static str, Option<&'static str>)],
}

impl PartialEq for Builtin {
    /// Built-in plugins are the same when their names are.
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

/// Every built-in plugin.
pub static BUILTINS: &[Builtin] = &[Builtin {
    name: "generic-webhook",
    wasm: GENERIC_WEBHOOK_WASM,
    defaults: BuiltinDefaults {
        memory_mb: 64,
        timeout_ms: 10_000,
        kv_quota_mb: 1,
        rate_per_second: None,
        url_settings: &[("webhook_url", None), ("webhook_post_url", None)],
    },
}];

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
