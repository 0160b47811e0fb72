//! A 3CX V20 phone system in a box, for callhook's end-to-end tests, `callhook demo` and plugin
//! authors.
//!
//! The simulator speaks exactly the protocol of `shared/spec/3cx-api.md` over real HTTP(S) and
//! WebSocket on a local port: the token endpoint, the Call Control REST snapshot and entity
//! paths, the event WebSocket and the XAPI subset for recordings. What happens on the PBX comes
//! from [`Scenario`]s: TOML files (see `scenarios/README.md`) describing calls step by step with
//! high-level actions (ring, answer, transfer, hang up, ...), which [`Scenario::timeline`] expands
//! into the participant upserts and removes of spec section 4. Each scenario also lists the
//! webhooks the host must send for it ([`Scenario::expected`]), so one generic test can check any
//! pipeline against any scenario.
//!
//! By default the simulator behaves like a live V20 PBX (`3cx-api.md`): inbound legs come from
//! the trunk DN with `party_did` empty and the client's route point as origin, an outbound leg
//! first shows up without its party, a held leg stays `Connected`, and every absent value is
//! `""` or `"None"`. Each scenario can be replayed in every other realistic shape with the same
//! expectations ([`Scenario::variants`], [`Variant`]). The less common behaviours (nulls, `403`
//! legs, abnormal closes, repeats of unconnected legs, slow GETs, `403` on XAPI, ...) are
//! switches on [`Faults`], some with a [`SimConfig`] default.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use callhook_simulator::{Scenario, SimConfig, Simulator};
//!
//! let scenario = Scenario::builtin("01-direct-inbound-answered")?;
//! let sim = Simulator::start(SimConfig {
//!     directory: scenario.directory(),
//!     ..SimConfig::default()
//! })
//! .await?;
//! // ... start the client under test against `sim.base_url()` and wait for its socket ...
//! sim.wait_sockets(1).await;
//! sim.play(&scenario, 0.01).await?; // 100x faster than real time
//! assert_eq!(sim.recordings().len(), 1);
//! sim.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! Layout: [`scenario`] parses and expands scenario files, [`load`] generates big ones,
//! `server` holds the HTTP side (one file per interface), `state` the PBX's live state and event
//! bus, `player` turns a timeline into state changes in (scaled) real time, [`faults`] the
//! injection switches, `recordings` and `wav` the XAPI recordings and their audio.

mod clock;
mod config;
pub mod faults;
pub mod load;
mod player;
mod recordings;
pub mod scenario;
mod server;
mod state;
mod wav;

pub use config::{InboundRule, RepeatPhase, SimConfig, User, WavFormat};
pub use faults::{Faults, Nulls, RecordingField, SocketClose};
pub use load::LoadProfile;
pub use recordings::RecordingInfo;
pub use scenario::{
    DnEntry, Expectation, FaultAction, ParticipantChange, Scenario, ScenarioError, ScheduledFault,
    TimelineStep, TransferOrder, Variant,
};
pub use server::{SimHandle, Simulator};
