//! `bitrix24`: logs 3CX calls in Bitrix24 through its external-call telephony methods (spec
//! `shared/spec/crm-plugins.md`, sections 3 and 6).
//!
//! A call is registered (`telephony.externalcall.register`) when an extension rings, dials or
//! answers, and finished (`…finish`) by each part's end event, with its duration and `200`
//! (answered) or `304` (missed); Bitrix24 binds it to the contact, company or lead with that
//! number and makes the CRM activity itself. A transfer target registers anew, so each part
//! that talked is one finished call. The recording is attached (`…attachRecord`) by link, which
//! Bitrix24 downloads. Calls without an external party (`internal`) are not logged.
//!
//! Modules: [`settings`] (the configuration, both auth modes), [`mapping`] (events to
//! parameters, pure), `portal` (the REST calls and the OAuth tokens), `calls` (the steps of each
//! event and their store entries).

pub mod mapping;
pub mod settings;

mod calls;
mod portal;

use callhook_plugin_sdk::{self as sdk, Delivery, DeliveryError, Event, Plugin};
use calls::{Calls, Part};
use portal::Portal;
use settings::Settings;
use std::time::SystemTime;

/// The plugin, configured for one delivery.
pub struct Bitrix24 {
    settings: Settings,
}

impl Plugin for Bitrix24 {
    fn new() -> Result<Self, DeliveryError> {
        Ok(Bitrix24 {
            settings: Settings::from_host()?,
        })
    }

    fn deliver(&mut self, delivery: &Delivery) -> Result<(), DeliveryError> {
        if is_internal(&delivery.event) {
            sdk::log::debug("internal call: not logged in Bitrix24", &[]);
            return Ok(());
        }
        let calls = Calls::new(
            &self.settings,
            Portal::new(&self.settings, SystemTime::now()),
        );
        match &delivery.event {
            Event::Ringing(offered) | Event::Dialing(offered) => calls.offered(&Part {
                id: &offered.id,
                user: &offered.user,
                direction: match &delivery.event {
                    Event::Dialing(_) => sdk::Direction::Outgoing,
                    _ => sdk::Direction::Incoming,
                },
                phone: mapping::external_number(
                    &offered.callerid,
                    offered.callerid_e164.as_deref(),
                ),
                offered_at: offered.offered_at,
            }),
            Event::CallStarted(started) => calls.offered(&Part {
                id: &started.id,
                user: &started.user,
                direction: started.direction,
                phone: mapping::external_number(
                    &started.callerid,
                    started.callerid_e164.as_deref(),
                ),
                offered_at: started.offered_at,
            }),
            Event::CallEnded(ended) => calls.ended(ended),
            Event::Recording(recording) => calls.recording(recording),
        }
    }
}

/// Whether the event is of a call without an external party; a recording by its last end event.
fn is_internal(event: &Event) -> bool {
    match event {
        Event::Ringing(offered) | Event::Dialing(offered) => offered.internal,
        Event::CallStarted(started) => started.internal,
        Event::CallEnded(ended) => ended.internal,
        Event::Recording(recording) => recording.last_end.as_ref().is_some_and(|e| e.internal),
    }
}

sdk::register_plugin!(Bitrix24);
