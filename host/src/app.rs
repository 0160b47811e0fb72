//! The host: the pieces of the data flow wired together, from a validated configuration.
//!
//! [`Host`] (in [`host`]) is the one place that assembles a running host: storage, plugin
//! runtime and plugins ([`plugins`]), the durable queue, the engine's saved state
//! ([`EngineStore`]), the connector, the recorder, the HTTP server, the admin socket and the
//! reloader. The pieces it starts:
//! - [`pipeline`]: the connector and the derivation loop, supervised;
//! - [`derive`](mod@derive): connector changes → engine → durable queue, with the engine's
//!   timers;
//! - [`record`]: a finished call's recordings → a `recording` event in the same queue;
//! - [`replay`]: the same engine fed from a capture or a scenario (`replay`, `plugin test`).
//!
//! [`LocalHost`](local::LocalHost) is a [`Host`] against a simulator in this process, for the
//! demo, the tests and the benchmarks.

pub mod admin;
mod derive;
mod engine_store;
pub mod host;
pub mod local;
pub mod observe;
mod pipeline;
pub mod plugins;
mod record;
pub mod reload;
pub mod replay;
pub mod storage;
pub mod supervise;
pub mod trial;

pub use engine_store::{EngineStore, EngineStoreError, StateRecords};
pub use host::{Host, HostOptions, Reload};
pub use observe::{EventCounter, Observed};
pub use pipeline::Pipeline;
pub use plugins::{DeliveryQueue, Plugins};
pub use replay::{Replayer, read_capture, scenario_changes};
pub use supervise::TaskPanicked;
