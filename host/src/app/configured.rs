//! The configuration in the terms of the plugin runtime and the queue: what `run` starts with
//! and what a hot reload puts in force.

use crate::config::{Config, PluginConfig, PluginSource};
use crate::queue::QueueConfig;
use crate::runtime::{GENERIC_WEBHOOK_WASM, Plugin, PluginRuntime, PluginSpec};
use anyhow::Context;
use std::time::Duration;

/// Loads one configured plugin into the runtime: reads its component (or the built-in
/// `generic-webhook`), checks its contract version and compiles it (cached on disk).
pub fn load_plugin(runtime: &PluginRuntime, plugin: &PluginConfig) -> anyhow::Result<Plugin> {
    let wasm = plugin
        .read_wasm(GENERIC_WEBHOOK_WASM)
        .with_context(|| format!("while reading plugin {}", whence(plugin)))?;
    runtime
        .load(PluginSpec {
            name: plugin.name.clone(),
            wasm,
            allowed_hosts: plugin.allowed_hosts.clone(),
            limits: plugin.limits,
            settings: plugin.settings.clone(),
            secrets: plugin.expose_secrets(),
        })
        .with_context(|| format!("while loading plugin {}", whence(plugin)))
}

/// A plugin's name, file and where it is configured, for messages.
fn whence(plugin: &PluginConfig) -> String {
    let file = match &plugin.source {
        PluginSource::Builtin => "built in".to_string(),
        PluginSource::File(file) => file.path.display().to_string(),
    };
    match &plugin.place {
        Some(place) => format!("{} ({file}, configured at {place})", plugin.name),
        None => format!("{} ({file})", plugin.name),
    }
}

/// Loads every configured plugin; the first that does not load is the error.
pub fn load_plugins(runtime: &PluginRuntime, config: &Config) -> anyhow::Result<Vec<Plugin>> {
    config
        .plugins
        .iter()
        .map(|plugin| load_plugin(runtime, plugin))
        .collect()
}

/// One line saying what a plugin may do.
pub fn describe(plugin: &Plugin) -> String {
    let hosts: Vec<String> = plugin.policy().patterns().map(|p| p.to_string()).collect();
    let limits = plugin.limits();
    format!(
        "plugin {} (contract {}): allowed hosts [{}], memory {} MiB, timeout {} ms",
        plugin.name(),
        plugin.api_version(),
        hosts.join(", "),
        limits.memory_bytes >> 20,
        limits.timeout.as_millis()
    )
}

/// The queue's routing and per-plugin policies: each plugin's `retry` overrides, concurrency
/// and rate limit.
pub fn queue_config(config: &Config) -> QueueConfig {
    let names = config.plugins.iter().map(|p| p.name.clone());
    let mut queue = QueueConfig::new(config.routes.clone(), names);
    queue.parked_keep = config
        .storage
        .parked_keep_days
        .map(|days| Duration::from_secs(u64::from(days) * 24 * 3600));
    for plugin in &config.plugins {
        let Some(policy) = queue.plugins.get_mut(&plugin.name) else {
            continue;
        };
        policy.concurrency = plugin.concurrency;
        policy.rate_per_second = plugin.rate_per_second;
        let overrides = &plugin.retry;
        if let Some(ladder) = &overrides.ladder {
            policy.retry.ladder = ladder.clone();
        }
        if let Some(max_age) = overrides.max_age {
            policy.retry.max_age = max_age;
        }
        if let Some(max_retry_after) = overrides.max_retry_after {
            policy.retry.max_retry_after = max_retry_after;
        }
    }
    queue
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plugins_limits_and_retry_overrides_reach_the_queue() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("callhook.toml");
        std::fs::write(
            &file,
            "[pbx]\nurl = \"https://pbx.example.com\"\nclient_id = \"c\"\nclient_secret = \"s\"\n\n\
             [[plugin]]\nname = \"crm\"\npath = \"crm.wasm\"\nconcurrency = 2\nrate_per_second = 0.5\n\
             [plugin.retry]\nladder = [\"3s\"]\n",
        )
        .unwrap();
        let config = Config::load(&file).unwrap();
        let queue = queue_config(&config);
        let crm = &queue.plugins["crm"];
        assert_eq!(crm.concurrency, 2);
        assert_eq!(crm.rate_per_second, Some(0.5));
        assert_eq!(crm.retry.ladder, [Duration::from_secs(3)]);
        let builtin = &queue.plugins["generic-webhook"];
        assert_eq!((builtin.concurrency, builtin.rate_per_second), (8, None));
    }

    #[test]
    fn storage_parked_keep_days_reaches_the_queue() {
        const DAY: u64 = 24 * 3600;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("callhook.toml");
        let pbx =
            "[pbx]\nurl = \"https://pbx.example.com\"\nclient_id = \"c\"\nclient_secret = \"s\"\n";
        for (storage, expected) in [
            ("", Some(30 * DAY)),
            ("[storage]\nparked_keep_days = 7\n", Some(7 * DAY)),
            ("[storage]\nparked_keep_days = 0\n", None),
        ] {
            std::fs::write(&file, format!("{pbx}{storage}")).unwrap();
            let config = Config::load(&file).unwrap();
            let keep = queue_config(&config).parked_keep;
            assert_eq!(keep, expected.map(Duration::from_secs), "{storage:?}");
        }
    }
}
