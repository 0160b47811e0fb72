//! `zoho`: logs 3CX calls in Zoho CRM as Calls records (spec `shared/spec/crm-plugins.md`,
//! sections 3 and 7).
//!
//! Each end event with an external party makes one Calls record: `Inbound`, `Missed` or
//! `Outbound` (with `Outbound_Call_Status` `Completed`), its start, its duration as `mm:ss`,
//! the title as subject and the notes as description, linked to the matching Contact (or
//! Lead) and owned by the extension's Zoho user. A recording's links are added to the
//! description of its part's record. `ringing`, `dialing` and `started` make nothing, nor do
//! calls without an external party (`internal`).
//!
//! Modules: [`settings`] (the configuration and data centre), [`mapping`] (events to records,
//! pure), `api` (requests with the OAuth access token), `crm` (the steps of each event).

pub mod mapping;
pub mod settings;

mod api;
mod crm;

use api::Api;
use callhook_plugin_sdk::{self as sdk, Delivery, DeliveryError, Event, Plugin};
use crm::Crm;
use settings::Settings;
use std::time::SystemTime;

/// The plugin, configured for one delivery.
pub struct Zoho {
    settings: Settings,
}

impl Plugin for Zoho {
    fn new() -> Result<Self, DeliveryError> {
        Ok(Zoho {
            settings: Settings::from_host()?,
        })
    }

    fn deliver(&mut self, delivery: &Delivery) -> Result<(), DeliveryError> {
        let crm = || Crm::new(&self.settings, Api::new(&self.settings, SystemTime::now()));
        match &delivery.event {
            Event::CallEnded(ended) if ended.internal => internal(),
            Event::CallEnded(ended) => crm().ended(ended, delivery.replayed),
            Event::Recording(recording)
                if recording.last_end.as_ref().is_some_and(|e| e.internal) =>
            {
                internal()
            }
            Event::Recording(recording) => crm().recording(recording),
            Event::Ringing(_) | Event::Dialing(_) | Event::CallStarted(_) => Ok(()),
        }
    }
}

/// A call without an external party succeeds without a request.
fn internal() -> Result<(), DeliveryError> {
    sdk::log::debug("internal call: not logged in Zoho", &[]);
    Ok(())
}

sdk::register_plugin!(Zoho);
