//! Bindings of the plugin contract `callhook:plugin@0.2.0` (`wit/since_v0.2.0`), its imports
//! served by the newest version's implementation (`super::latest`).
//!
//! 0.3 only adds the `http` interface, so 0.2's records are the same types as 0.3's (bindgen's
//! `with`; the component model checks them by structure, not by package) and a 0.2 plugin
//! gets exactly the events it did; `log-level` and `kv-error`, declared in interfaces with
//! functions, are converted. Since the records are shared, a change to 0.3's would show as a
//! load-time type error for 0.2 plugins, not at compile time: the committed 0.2.0 build of
//! `generic-webhook` in the contract test is what catches it (and 0.3's records are frozen
//! like every version's).

use super::state::PluginState;
use wasmtime::component::HasSelf;

wasmtime::component::bindgen!({
    path: "../wit/since_v0.2.0",
    world: "callhook:plugin/plugin@0.2.0",
    imports: { default: async },
    exports: { default: async },
    with: {
        "wasi:http": wasmtime_wasi_http::p2::bindings::http,
        "wasi:io": wasmtime_wasi::p2::bindings::io,
        "wasi:clocks": wasmtime_wasi::p2::bindings::clocks,
        "callhook:plugin/types": super::latest::callhook::plugin::types,
    },
});

use self::callhook::plugin::{host as host_api, kv};
use super::latest::callhook::plugin as latest;

/// Adds this version's own interfaces (not WASI's) to the linker.
pub fn add_to_linker(
    linker: &mut wasmtime::component::Linker<PluginState>,
) -> wasmtime::Result<()> {
    host_api::add_to_linker::<PluginState, HasSelf<PluginState>>(linker, |state| state)?;
    kv::add_to_linker::<PluginState, HasSelf<PluginState>>(linker, |state| state)?;
    Ok(())
}

impl host_api::Host for PluginState {
    async fn log(
        &mut self,
        level: host_api::LogLevel,
        message: String,
        fields: Vec<(String, String)>,
    ) {
        latest::host::Host::log(self, level.into(), message, fields).await;
    }

    async fn setting(&mut self, key: String) -> Option<String> {
        latest::host::Host::setting(self, key).await
    }

    async fn settings(&mut self) -> Vec<(String, String)> {
        latest::host::Host::settings(self).await
    }

    async fn secret(&mut self, key: String) -> Option<String> {
        latest::host::Host::secret(self, key).await
    }

    async fn recording_file(&mut self, link: String) -> Result<Vec<u8>, String> {
        latest::host::Host::recording_file(self, link).await
    }
}

impl kv::Host for PluginState {
    async fn get(&mut self, key: String) -> Result<Option<Vec<u8>>, kv::KvError> {
        latest::kv::Host::get(self, key).await.map_err(Into::into)
    }

    async fn set(&mut self, key: String, value: Vec<u8>) -> Result<(), kv::KvError> {
        latest::kv::Host::set(self, key, value)
            .await
            .map_err(Into::into)
    }

    async fn delete(&mut self, key: String) -> Result<(), kv::KvError> {
        latest::kv::Host::delete(self, key)
            .await
            .map_err(Into::into)
    }

    async fn set_expiring(
        &mut self,
        key: String,
        value: Vec<u8>,
        ttl_seconds: u64,
    ) -> Result<(), kv::KvError> {
        latest::kv::Host::set_expiring(self, key, value, ttl_seconds)
            .await
            .map_err(Into::into)
    }

    async fn set_if(
        &mut self,
        key: String,
        expected: Option<Vec<u8>>,
        value: Vec<u8>,
    ) -> Result<bool, kv::KvError> {
        latest::kv::Host::set_if(self, key, expected, value)
            .await
            .map_err(Into::into)
    }
}

impl From<host_api::LogLevel> for latest::host::LogLevel {
    fn from(level: host_api::LogLevel) -> Self {
        match level {
            host_api::LogLevel::Trace => latest::host::LogLevel::Trace,
            host_api::LogLevel::Debug => latest::host::LogLevel::Debug,
            host_api::LogLevel::Info => latest::host::LogLevel::Info,
            host_api::LogLevel::Warn => latest::host::LogLevel::Warn,
            host_api::LogLevel::Error => latest::host::LogLevel::Error,
        }
    }
}

impl From<latest::kv::KvError> for kv::KvError {
    fn from(error: latest::kv::KvError) -> Self {
        match error {
            latest::kv::KvError::KeyTooLong(limit) => kv::KvError::KeyTooLong(limit),
            latest::kv::KvError::ValueTooLarge(limit) => kv::KvError::ValueTooLarge(limit),
            latest::kv::KvError::QuotaExceeded(quota) => kv::KvError::QuotaExceeded(quota),
            latest::kv::KvError::Unavailable(why) => kv::KvError::Unavailable(why),
        }
    }
}
