//! Write [callhook](https://github.com/callhook/callhook) plugins in Rust.
//!
//! A plugin is a WebAssembly component that receives one 3CX call event at a time and delivers
//! it somewhere, usually to a CRM over HTTP. The host creates a fresh instance of the plugin for
//! every delivery, so a plugin keeps no state in memory between events; what it must remember
//! goes into its [`kv`] store.
//!
//! Implement [`Plugin`], register it with [`register_plugin!`], and build with
//! `cargo build --release --target wasm32-wasip2`:
//!
//! ```no_run
//! use callhook_plugin_sdk::{self as sdk, Delivery, DeliveryError, Ended, Plugin};
//!
//! struct Notify {
//!     url: String,
//! }
//!
//! impl Plugin for Notify {
//!     fn new() -> Result<Self, DeliveryError> {
//!         Ok(Notify { url: sdk::settings::required("url")? })
//!     }
//!
//!     fn on_call_ended(&mut self, delivery: &Delivery, ended: &Ended) -> Result<(), DeliveryError> {
//!         let body = serde_json::json!({ "call": ended.id, "seconds": ended.duration_seconds });
//!         sdk::http::Request::post(&self.url)
//!             .header("idempotency-key", &delivery.idempotency_key)
//!             .json(&body)
//!             .send()?
//!             .error_for_status()?;
//!         Ok(())
//!     }
//! }
//!
//! sdk::register_plugin!(Notify);
//! ```
//!
//! The host decides what a plugin may reach: outgoing requests go only to the `allowed_hosts`
//! of its configuration, memory and run time are capped, and a failing delivery is retried or
//! parked according to the [`DeliveryError`] the plugin returns.
#![deny(missing_docs)]

pub mod crm;
pub mod http;
pub mod kv;
pub mod log;
pub mod query;
pub mod settings;
pub mod signing;

/// The bindings generated from the WIT contract (`wit/`, inside this crate, so that the
/// published crate carries its contract). Not part of the API: use the re-exports. It is
/// reachable only because the code [`register_plugin!`] expands to in the plugin's crate
/// names the export macro and the types through it.
#[doc(hidden)]
#[allow(missing_docs, clippy::all)]
pub mod wit {
    wit_bindgen::generate!({
        path: "wit",
        world: "callhook:plugin/plugin@0.3.0",
        generate_all,
        pub_export_macro: true,
        export_macro_name: "__export_callhook_plugin",
        default_bindings_module: "callhook_plugin_sdk::wit",
    });
}

pub use wit::callhook::plugin::types::{
    Delivery, DeliveryError, Direction, Ended, Event, FinishType, Offered, PermanentError,
    Recording, RecordingPart, RetryableError, Started, TransferType, UnknownOutcomeError, UserInfo,
    UserType,
};

/// The version of the WIT contract this SDK implements, read at build time from the package
/// line of its `wit/plugin.wit`. The host reads it from the plugin's `callhook:api-version`
/// custom section before loading the plugin.
pub const API_VERSION: &str = env!("CALLHOOK_API_VERSION");

/// [`API_VERSION`] as the bytes of the custom section [`register_plugin!`] embeds.
#[doc(hidden)]
pub const API_VERSION_SECTION: [u8; API_VERSION.len()] = {
    let mut bytes = [0; API_VERSION.len()];
    let mut i = 0;
    while i < bytes.len() {
        bytes[i] = API_VERSION.as_bytes()[i];
        i += 1;
    }
    bytes
};

/// The bytes of an MP3 this host serves, given one of the links of a [`Recording`] (its
/// `files`, or a part's). The error names the file and why it cannot be read (unknown,
/// removed by retention).
pub fn recording_file(link: &str) -> Result<Vec<u8>, String> {
    wit::callhook::plugin::host::recording_file(link)
}

/// A callhook plugin.
///
/// The host calls [`Plugin::new`] and then [`Plugin::deliver`] once per delivery, on a fresh
/// instance. The default `deliver` dispatches to one `on_*` method per event kind, each of which
/// does nothing by default: implement the ones your plugin cares about.
pub trait Plugin: Sized {
    /// Creates the plugin for one delivery, typically reading [`settings`].
    ///
    /// Return a [`DeliveryError::Permanent`] for a configuration the plugin cannot work with:
    /// the delivery is parked until an operator fixes it and replays it.
    fn new() -> Result<Self, DeliveryError>;

    /// Delivers one event. By default dispatches to the `on_*` methods.
    fn deliver(&mut self, delivery: &Delivery) -> Result<(), DeliveryError> {
        match &delivery.event {
            Event::Ringing(offered) => self.on_ringing(delivery, offered),
            Event::Dialing(offered) => self.on_dialing(delivery, offered),
            Event::CallStarted(started) => self.on_call_started(delivery, started),
            Event::CallEnded(ended) => self.on_call_ended(delivery, ended),
            Event::Recording(recording) => self.on_recording(delivery, recording),
        }
    }

    /// A monitored extension starts ringing for an incoming call. By default does nothing.
    fn on_ringing(
        &mut self,
        _delivery: &Delivery,
        _offered: &Offered,
    ) -> Result<(), DeliveryError> {
        Ok(())
    }

    /// A monitored extension starts an outgoing call. By default does nothing.
    fn on_dialing(
        &mut self,
        _delivery: &Delivery,
        _offered: &Offered,
    ) -> Result<(), DeliveryError> {
        Ok(())
    }

    /// An extension (or the called party) answered. By default does nothing.
    fn on_call_started(
        &mut self,
        _delivery: &Delivery,
        _started: &Started,
    ) -> Result<(), DeliveryError> {
        Ok(())
    }

    /// An extension's part of a call ended. By default does nothing.
    fn on_call_ended(&mut self, _delivery: &Delivery, _ended: &Ended) -> Result<(), DeliveryError> {
        Ok(())
    }

    /// The recordings of a finished call are ready. By default does nothing.
    fn on_recording(
        &mut self,
        _delivery: &Delivery,
        _recording: &Recording,
    ) -> Result<(), DeliveryError> {
        Ok(())
    }
}

impl Event {
    /// The event's name on the default webhook's wire: `ringing`, `dialing`,
    /// `incomingcall_started`, `outgoingcall_started`, `incoming`, `outgoing` or `recording`.
    pub fn name(&self) -> &'static str {
        match self {
            Event::Ringing(_) => "ringing",
            Event::Dialing(_) => "dialing",
            Event::CallStarted(started) => match started.direction {
                Direction::Incoming => "incomingcall_started",
                Direction::Outgoing => "outgoingcall_started",
            },
            Event::CallEnded(ended) => match ended.direction {
                Direction::Incoming => "incoming",
                Direction::Outgoing => "outgoing",
            },
            Event::Recording(_) => "recording",
        }
    }

    /// The call id the event carries.
    pub fn id(&self) -> &str {
        match self {
            Event::Ringing(offered) | Event::Dialing(offered) => &offered.id,
            Event::CallStarted(started) => &started.id,
            Event::CallEnded(ended) => &ended.id,
            Event::Recording(recording) => &recording.id,
        }
    }
}

impl UserType {
    /// The wire value: `ext`, `queue` or `other`.
    pub fn as_str(self) -> &'static str {
        match self {
            UserType::Ext => "ext",
            UserType::Queue => "queue",
            UserType::Other => "other",
        }
    }
}

impl TransferType {
    /// The wire value: `NotDef`, `Blind` or `Accomp`.
    pub fn as_str(self) -> &'static str {
        match self {
            TransferType::NotDef => "NotDef",
            TransferType::Blind => "Blind",
            TransferType::Accomp => "Accomp",
        }
    }
}

impl FinishType {
    /// The wire value: `Ok` or `Missed`.
    pub fn as_str(self) -> &'static str {
        match self {
            FinishType::Ok => "Ok",
            FinishType::Missed => "Missed",
        }
    }
}

impl DeliveryError {
    /// A failure worth retrying, with no preferred delay.
    pub fn retryable(message: impl Into<String>) -> Self {
        DeliveryError::Retryable(RetryableError {
            message: message.into(),
            retry_after_ms: None,
        })
    }

    /// A failure that retrying cannot fix: the delivery is parked for replay.
    pub fn permanent(message: impl Into<String>) -> Self {
        DeliveryError::Permanent(PermanentError {
            message: message.into(),
            target_gone: false,
        })
    }

    /// The plugin cannot tell whether the receiver acted on the delivery (e.g. no answer once
    /// a create was under way): parked, shown as `outcome-unknown`; the operator checks the
    /// receiver and replays it, and the replay has [`Delivery::replayed`] set.
    pub fn unknown_outcome(message: impl Into<String>) -> Self {
        DeliveryError::UnknownOutcome(UnknownOutcomeError {
            message: message.into(),
        })
    }

    /// The operator-facing message.
    pub fn message(&self) -> &str {
        match self {
            DeliveryError::Retryable(error) => &error.message,
            DeliveryError::Permanent(error) => &error.message,
            DeliveryError::UnknownOutcome(error) => &error.message,
        }
    }
}

/// Runs one delivery on a fresh plugin value. Called by the code [`register_plugin!`] generates.
#[doc(hidden)]
pub fn __deliver<P: Plugin>(delivery: Delivery) -> Result<(), DeliveryError> {
    P::new()?.deliver(&delivery)
}

/// Registers the plugin type: generates the component's `deliver` export and embeds the
/// contract version the plugin was built against.
///
/// Call it once, at the crate root of a `cdylib` crate.
#[macro_export]
macro_rules! register_plugin {
    ($plugin:ty) => {
        #[doc(hidden)]
        pub struct __CallhookPluginExports;

        impl $crate::wit::Guest for __CallhookPluginExports {
            fn deliver(
                delivery: $crate::Delivery,
            ) -> ::core::result::Result<(), $crate::DeliveryError> {
                $crate::__deliver::<$plugin>(delivery)
            }
        }

        $crate::wit::__export_callhook_plugin!(__CallhookPluginExports with_types_in $crate::wit);

        #[used]
        #[cfg_attr(target_arch = "wasm32", unsafe(link_section = "callhook:api-version"))]
        static __CALLHOOK_API_VERSION: [u8; $crate::API_VERSION_SECTION.len()] =
            $crate::API_VERSION_SECTION;
    };
}
