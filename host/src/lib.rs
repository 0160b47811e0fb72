//! callhook: watches a 3CX phone system, derives call events and delivers them to sandboxed
//! WebAssembly plugins.
//!
//! Data flows one way: 3CX → [`pbx`] (raw participants) → [`calls`] (the pure call state
//! machine) → durable queue → [`runtime`] (one fresh sandboxed plugin instance per delivery)
//! → CRM.
//!
//! This library exists for the `callhook` binary and its tests; its documentation is for the
//! people who work on it, built with `cargo doc --document-private-items` (as `scripts/test`
//! does), so a public item's docs may link to private ones.

#![allow(rustdoc::private_intra_doc_links)]

pub mod app;
pub mod callcontrol;
pub mod calls;
pub mod cli;
pub mod config;
pub mod console;
pub mod pbx;
pub mod queue;
pub mod recordings;
#[cfg(test)]
mod robustness;
pub mod runtime;
pub mod secret;
pub mod server;
pub mod telemetry;
#[cfg(test)]
mod test_disk;
pub mod text;
