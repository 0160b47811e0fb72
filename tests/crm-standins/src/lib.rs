//! Stand-ins for the CRM APIs callhook's built-in plugins talk to: HubSpot, Pipedrive, Bitrix24
//! and Zoho CRM, for the pipeline tests, `callhook demo` and `callhook plugin test`.
//!
//! Each stand-in is an HTTP server on `127.0.0.1` that checks what the real service checks, as
//! `shared/spec/crm-plugins.md` lists it under "The fake checks" (sections 4.3, 5.3, 6.3, 7.3):
//! the form of the credentials, required fields, their types, enum values, time formats and
//! units, unknown fields, and it answers with the CRM's documented error bodies and status
//! codes. It keeps what it stored, so a test reads the records back, records every request
//! (secrets masked), enforces the CRM's rate limit (smaller limits make tests quick), and has
//! fault switches ([`Faults`]) settable from Rust or over `POST /_standin/{switch}`.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use callhook_crm_standins::{HubSpot, HubSpotConfig};
//!
//! let hubspot = HubSpot::start(HubSpotConfig::default()).await?;
//! let contact = hubspot.add_contact(&[("phone", "+49301234567")]);
//! // ... point the plugin's `api_base` at `hubspot.base_url()`, play a scenario ...
//! assert_eq!(hubspot.calls()[0].contacts, [contact]);
//! hubspot.faults().fail_after_store(1);
//! # Ok(()) }
//! ```
//!
//! Layout: `common` holds the server (with connections a fault can cut), the request journal,
//! the rate limiters and the fault switches; one module per CRM holds its configuration, handle
//! and gate (authentication, limits) and a sub-module with its endpoints.

#![warn(missing_docs)]
// The handlers' helpers return the HTTP answer that refuses a request as their error; it is
// produced once per request, so boxing it would buy nothing.
#![allow(clippy::result_large_err)]

pub mod bitrix24;
mod common;
pub mod hubspot;
pub mod pipedrive;
pub mod zoho;

pub use bitrix24::{
    Bitrix24, Bitrix24Call, Bitrix24Config, Bitrix24Finish, Bitrix24Handle, Bitrix24User,
};
pub use common::Standin;
pub use common::faults::{Faults, Switches};
pub use common::journal::{MASK, Recorded};
pub use hubspot::{HubSpot, HubSpotConfig, HubSpotHandle, HubSpotObject, HubSpotOwner};
pub use pipedrive::{
    Pipedrive, PipedriveCallLog, PipedriveConfig, PipedriveHandle, PipedrivePerson, PipedriveUser,
};
pub use zoho::{Zoho, ZohoConfig, ZohoHandle, ZohoRecord};
