//! Bindings of the plugin contract `callhook:plugin@0.3.0` (`wit/since_v0.3.0`), the host's
//! implementation of its imports, and the conversion of host events into its records.
//!
//! 0.2 is 0.1 plus what CRM plugins need (see `wit/README.md`): the event times, queue and
//! `internal` come with the host's events ([`host::PartFacts`]); `callerid-e164` and
//! `user-info` are looked up at each delivery from the runtime's [`HostServices`], so a
//! retried delivery sees the current user list; `recording-file` reads the MP3s the host
//! serves; the KV store adds expiring entries and compare-and-set. 0.3 adds `http.send`, a
//! whole request in one host call ([`super::sender::Sender::send_whole`]).

use super::kv_store::KvError as StoreError;
use super::services::HostServices;
use super::state::PluginState;
use crate::calls::event as host;
use wasmtime::component::HasSelf;

wasmtime::component::bindgen!({
    path: "../wit/since_v0.3.0",
    world: "callhook:plugin/plugin@0.3.0",
    imports: { default: async },
    exports: { default: async },
    with: {
        "wasi:http": wasmtime_wasi_http::p2::bindings::http,
        "wasi:io": wasmtime_wasi::p2::bindings::io,
        "wasi:clocks": wasmtime_wasi::p2::bindings::clocks,
    },
});

use self::callhook::plugin::types::Event;
use self::callhook::plugin::{host as host_api, http, kv, types};

/// Adds this version's own interfaces (not WASI's) to the linker.
pub fn add_to_linker(
    linker: &mut wasmtime::component::Linker<PluginState>,
) -> wasmtime::Result<()> {
    host_api::add_to_linker::<PluginState, HasSelf<PluginState>>(linker, |state| state)?;
    kv::add_to_linker::<PluginState, HasSelf<PluginState>>(linker, |state| state)?;
    http::add_to_linker::<PluginState, HasSelf<PluginState>>(linker, |state| state)?;
    Ok(())
}

impl host_api::Host for PluginState {
    async fn log(
        &mut self,
        level: host_api::LogLevel,
        message: String,
        fields: Vec<(String, String)>,
    ) {
        let level = match level {
            host_api::LogLevel::Trace => tracing::Level::TRACE,
            host_api::LogLevel::Debug => tracing::Level::DEBUG,
            host_api::LogLevel::Info => tracing::Level::INFO,
            host_api::LogLevel::Warn => tracing::Level::WARN,
            host_api::LogLevel::Error => tracing::Level::ERROR,
        };
        self.write_log(level, &message, &fields);
    }

    async fn setting(&mut self, key: String) -> Option<String> {
        self.plugin().settings.get(&key).cloned()
    }

    async fn settings(&mut self) -> Vec<(String, String)> {
        let settings = &self.plugin().settings;
        settings
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    async fn secret(&mut self, key: String) -> Option<String> {
        self.plugin().secrets.get(&key).cloned()
    }

    async fn recording_file(&mut self, link: String) -> Result<Vec<u8>, String> {
        let Some(files) = self.services().recordings.get().cloned() else {
            return Err("recordings are off on this host".to_owned());
        };
        tokio::task::spawn_blocking(move || files.read(&link))
            .await
            .unwrap_or_else(|join| Err(join.to_string()))
    }
}

impl kv::Host for PluginState {
    async fn get(&mut self, key: String) -> Result<Option<Vec<u8>>, kv::KvError> {
        let (store, plugin) = self.kv();
        blocking(move || store.get(&plugin, &key)).await
    }

    async fn set(&mut self, key: String, value: Vec<u8>) -> Result<(), kv::KvError> {
        let (store, plugin) = self.kv();
        blocking(move || store.set(&plugin, &key, &value)).await
    }

    async fn delete(&mut self, key: String) -> Result<(), kv::KvError> {
        let (store, plugin) = self.kv();
        blocking(move || store.delete(&plugin, &key)).await
    }

    async fn set_expiring(
        &mut self,
        key: String,
        value: Vec<u8>,
        ttl_seconds: u64,
    ) -> Result<(), kv::KvError> {
        let (store, plugin) = self.kv();
        let ttl = std::time::Duration::from_secs(ttl_seconds);
        blocking(move || store.set_expiring(&plugin, &key, &value, ttl)).await
    }

    async fn set_if(
        &mut self,
        key: String,
        expected: Option<Vec<u8>>,
        value: Vec<u8>,
    ) -> Result<bool, kv::KvError> {
        let (store, plugin) = self.kv();
        blocking(move || store.set_if(&plugin, &key, expected.as_deref(), &value)).await
    }
}

impl types::Host for PluginState {}

impl http::Host for PluginState {
    async fn send(&mut self, request: http::Request) -> Result<http::Response, http::ErrorCode> {
        let http::Request {
            method,
            url,
            headers,
            body,
        } = request;
        let (sender, bounds) = self.egress();
        let answer = sender
            .send_whole(&method, &url, headers, body, &bounds)
            .await?;
        Ok(http::Response {
            status: answer.status,
            headers: answer.headers,
            body: answer.body,
        })
    }
}

/// Runs a store operation off the async threads (a write waits for the store's group commit,
/// a read for redb).
async fn blocking<T: Send + 'static>(
    operation: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, kv::KvError> {
    let result = tokio::task::spawn_blocking(operation)
        .await
        .unwrap_or_else(|join| Err(StoreError::Unavailable(join.to_string())));
    result.map_err(|error| match error {
        StoreError::KeyTooLong(limit) => kv::KvError::KeyTooLong(limit),
        StoreError::ValueTooLarge(limit) => kv::KvError::ValueTooLarge(limit),
        StoreError::QuotaExceeded(quota) => kv::KvError::QuotaExceeded(quota),
        StoreError::Unavailable(why) => kv::KvError::Unavailable(why),
    })
}

/// The event as contracts 0.2 and 0.3 carry it, with `callerid-e164` and `user-info` looked up
/// now.
pub fn event(event: &host::CallEvent, services: &HostServices) -> Event {
    let e164 = |number: &str| services.e164.normalise(number);
    let user_info = |user: &str| {
        services.users.get(user).map(|info| types::UserInfo {
            name: info.name,
            email: info.email,
        })
    };
    match event {
        host::CallEvent::Ringing(offered) => {
            Event::Ringing(offered_record(offered, e164, user_info))
        }
        host::CallEvent::Dialing(offered) => {
            Event::Dialing(offered_record(offered, e164, user_info))
        }
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
            call_started_at: started.facts.call_started_at,
            offered_at: started.facts.offered_at,
            answered_at: started.facts.answered_at.unwrap_or_default(),
            callerid_e164: e164(&started.caller_id),
            user_info: user_info(&started.user),
            queue: started.facts.queue.clone(),
            internal: started.facts.internal,
        }),
        host::CallEvent::Ended(ended) => Event::CallEnded(ended_record(ended, e164, user_info)),
        host::CallEvent::Recording(recording) => Event::Recording(types::Recording {
            id: recording.id.to_string(),
            files: recording.files.clone(),
            last_end: recording
                .last_end
                .as_ref()
                .map(|ended| ended_record(ended, e164, user_info)),
            parts: recording
                .parts
                .iter()
                .map(|part| types::RecordingPart {
                    id: part.id.to_string(),
                    user: part.user.clone(),
                    files: part.files.clone(),
                })
                .collect(),
        }),
    }
}

fn offered_record(
    offered: &host::Offered,
    e164: impl Fn(&str) -> Option<String>,
    user_info: impl Fn(&str) -> Option<types::UserInfo>,
) -> types::Offered {
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
        call_started_at: offered.facts.call_started_at,
        offered_at: offered.facts.offered_at,
        callerid_e164: e164(&offered.caller_id),
        user_info: user_info(&offered.user),
        queue: offered.facts.queue.clone(),
        internal: offered.facts.internal,
    }
}

fn ended_record(
    ended: &host::Ended,
    e164: impl Fn(&str) -> Option<String>,
    user_info: impl Fn(&str) -> Option<types::UserInfo>,
) -> types::Ended {
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
        call_started_at: ended.facts.call_started_at,
        offered_at: ended.facts.offered_at,
        answered_at: ended.facts.answered_at,
        ended_at: ended.facts.ended_at.unwrap_or_default(),
        callerid_e164: e164(&ended.caller_id),
        user_info: user_info(&ended.user),
        queue: ended.facts.queue.clone(),
        internal: ended.facts.internal,
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
