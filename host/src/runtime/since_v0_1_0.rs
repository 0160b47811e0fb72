//! Bindings of the plugin contract `callhook:plugin@0.1.0` (`wit/since_v0.1.0`), its imports
//! served by the newest version's implementation (`super::latest`) through conversions of its
//! own types, and the conversion of host events into its records.
//!
//! A later contract version gets a sibling module `since_vX_Y_Z.rs` and becomes `latest`;
//! this one keeps its bindings and only its conversions follow, so plugins built against 0.1
//! keep loading.

use super::state::PluginState;
use crate::calls::event as host;
use wasmtime::component::HasSelf;

wasmtime::component::bindgen!({
    path: "../wit/since_v0.1.0",
    world: "callhook:plugin/plugin@0.1.0",
    imports: { default: async },
    exports: { default: async },
    with: {
        "wasi:http": wasmtime_wasi_http::p2::bindings::http,
        "wasi:io": wasmtime_wasi::p2::bindings::io,
        "wasi:clocks": wasmtime_wasi::p2::bindings::clocks,
    },
});

pub use self::callhook::plugin::types::Event;
use self::callhook::plugin::{host as host_api, kv, types};
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

impl types::Host for PluginState {}

/// 0.1's errors are the newest contract's without `unknown-outcome`.
impl From<types::DeliveryError> for latest::types::DeliveryError {
    fn from(error: types::DeliveryError) -> Self {
        match error {
            types::DeliveryError::Retryable(e) => {
                latest::types::DeliveryError::Retryable(latest::types::RetryableError {
                    message: e.message,
                    retry_after_ms: e.retry_after_ms,
                })
            }
            types::DeliveryError::Permanent(e) => {
                latest::types::DeliveryError::Permanent(latest::types::PermanentError {
                    message: e.message,
                    target_gone: e.target_gone,
                })
            }
        }
    }
}

impl From<&host::CallEvent> for Event {
    fn from(event: &host::CallEvent) -> Self {
        match event {
            host::CallEvent::Ringing(offered) => Event::Ringing(offered.into()),
            host::CallEvent::Dialing(offered) => Event::Dialing(offered.into()),
            host::CallEvent::Started(started) => Event::CallStarted(types::Started {
                id: started.id.to_string(),
                direction: started.direction.into(),
                callerid: started.caller_id.clone(),
                user: started.user.clone(),
                did: started.did.clone(),
                trtype: match started.transfer_type {
                    host::TransferType::NotDef => types::TransferType::NotDef,
                    host::TransferType::Blind => types::TransferType::Blind,
                    host::TransferType::Accomp => types::TransferType::Accomp,
                },
            }),
            host::CallEvent::Ended(ended) => Event::CallEnded(ended.into()),
            host::CallEvent::Recording(recording) => Event::Recording(types::Recording {
                id: recording.id.to_string(),
                files: recording.files.clone(),
                last_end: recording.last_end.as_ref().map(Into::into),
            }),
        }
    }
}

impl From<&host::Offered> for types::Offered {
    fn from(offered: &host::Offered) -> Self {
        types::Offered {
            id: offered.id.to_string(),
            callerid: offered.caller_id.clone(),
            did: offered.did.clone(),
            user: offered.user.clone(),
            usertype: match offered.user_type {
                host::UserType::Ext => types::UserType::Ext,
                host::UserType::Queue => types::UserType::Queue,
                host::UserType::Other => types::UserType::Other,
            },
        }
    }
}

impl From<&host::Ended> for types::Ended {
    fn from(ended: &host::Ended) -> Self {
        types::Ended {
            id: ended.id.to_string(),
            direction: ended.direction.into(),
            callerid: ended.caller_id.clone(),
            user: ended.user.clone(),
            did: ended.did.clone(),
            finishtype: match ended.finish_type {
                host::FinishType::Ok => types::FinishType::Ok,
                host::FinishType::Missed => types::FinishType::Missed,
            },
            transfer: ended.transfer,
            duration_seconds: ended.duration_secs,
            title: ended.title.clone(),
        }
    }
}

impl From<host::Direction> for types::Direction {
    fn from(direction: host::Direction) -> Self {
        match direction {
            host::Direction::Incoming => types::Direction::Incoming,
            host::Direction::Outgoing => types::Direction::Outgoing,
        }
    }
}
