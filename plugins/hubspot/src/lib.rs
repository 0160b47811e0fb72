//! `hubspot`: logs 3CX calls in HubSpot as call engagements (spec `crm-plugins.md`
//! sections 3 and 4).
//!
//! Each end event with an external party becomes one call: answered ones `COMPLETED` with
//! their talk time in milliseconds, missed ones `NO_ANSWER`, from the external number to the
//! extension or back, associated with the contact that has the number and owned by the
//! extension's HubSpot user. The recording event then adds the part's links to the call's body
//! and, for an `https://` link, sets `hs_call_recording_url`. Ringing, dialing, started and
//! internal calls send nothing.
//!
//! The work is the SDK's CRM helpers with HubSpot's names:
//! - [`settings`]: the configuration, checked once per delivery.
//! - [`call`]: the JSON bodies, pure and tested natively.
//! - [`api`]: the requests, classified by `Rules::HUBSPOT`.
//!
//! A call is created once per part through `CreateOnce` (`rec:` and `pending:` in the store).
//! With `id_property` set, a create whose answer was lost, or answered with a 5xx (HubSpot may
//! have stored the call before failing), is found again by a search on that property before it
//! is sent again; without it, a lost answer parks the delivery as `outcome-unknown` until an
//! operator replays it, and a 5xx is retried as the spec says.
//! A contact made with `create_contacts` is kept under `contact:{key}`, so that a retry
//! associates the same one; owners found by e-mail are cached for an hour.

pub mod api;
pub mod call;
pub mod settings;

use api::Api;
use callhook_plugin_sdk::crm::cache::{LOOKUP_TTL_SECONDS, cached};
use callhook_plugin_sdk::crm::idempotent::{CreateOnce, RECORD_TTL_SECONDS, stored_record};
use callhook_plugin_sdk::crm::part::{Part, recording_part_key};
use callhook_plugin_sdk::crm::{HostKv, KvStore};
use callhook_plugin_sdk::{self as sdk, Delivery, DeliveryError, Ended, Plugin, Recording};
use settings::Config;

/// The plugin, configured for one delivery.
pub struct HubSpot {
    config: Config,
}

impl HubSpot {
    fn api(&self) -> Api<'_> {
        Api::new(&self.config.settings.api_base, &self.config.access_token)
    }

    /// The contact to associate: the one made for this part by an earlier attempt, else the
    /// first that has the number, else with `create_contacts` a new one. A caller id that is no
    /// phone number (`anonymous`: [`Part::number_forms`] gives none) is neither searched nor
    /// made a contact of.
    fn contact(&self, part: &Part) -> Result<Option<String>, DeliveryError> {
        let made = format!("contact:{}", part.key);
        if let Some(id) = HostKv.get(&made)? {
            return Ok(Some(String::from_utf8_lossy(&id).into_owned()));
        }
        let numbers = part.number_forms();
        if numbers.is_empty() {
            return Ok(None);
        }
        if let Some(id) = self.api().search_contact(&numbers)? {
            return Ok(Some(id));
        }
        if !self.config.settings.create_contacts {
            return Ok(None);
        }
        let id = self.api().create_contact(numbers[0])?;
        HostKv.set_expiring(&made, id.as_bytes(), RECORD_TTL_SECONDS)?;
        sdk::log::info("contact created", &[("contact", &id), ("key", &part.key)]);
        Ok(Some(id))
    }

    /// The owner: `users.{extension}`, else the owner with the PBX user's e-mail (cached for an
    /// hour), else none, so that HubSpot takes the token's user.
    fn owner(&self, part: &Part) -> Result<Option<String>, DeliveryError> {
        if let Some(id) = self.config.settings.user(&part.ended.user) {
            return Ok(Some(id.to_string()));
        }
        let Some(email) = part.user_email() else {
            return Ok(None);
        };
        let email = email.to_lowercase();
        cached(
            &HostKv,
            &format!("owner:{email}"),
            LOOKUP_TTL_SECONDS,
            || self.api().find_owner(&email),
        )
    }

    /// Attaches the files of one recording part to its call, unless the call is gone.
    fn attach(&self, id: &str, key: &str, files: &[String]) -> Result<(), DeliveryError> {
        let api = self.api();
        let Some(current) = api.call_body(id)? else {
            sdk::log::warn(
                "call deleted in HubSpot; recording skipped",
                &[("call", id), ("key", key)],
            );
            return Ok(());
        };
        let Some(patch) = call::recording_patch(&current, files) else {
            sdk::log::debug("recording already attached", &[("call", id), ("key", key)]);
            return Ok(());
        };
        if !api.patch_call(id, &patch)? {
            sdk::log::warn(
                "call deleted in HubSpot; recording skipped",
                &[("call", id), ("key", key)],
            );
        }
        Ok(())
    }
}

impl Plugin for HubSpot {
    fn new() -> Result<Self, DeliveryError> {
        Ok(HubSpot {
            config: Config::read()?,
        })
    }

    /// One call per part (spec 3.1, 3.5), created once.
    fn on_call_ended(&mut self, delivery: &Delivery, ended: &Ended) -> Result<(), DeliveryError> {
        if ended.internal {
            return Ok(());
        }
        let part = Part::of(ended);
        if stored_record(&HostKv, &part.key)?.is_some() {
            return Ok(());
        }
        let contact = self.contact(&part)?;
        let owner = self.owner(&part)?;
        let body = call::create_body(
            &part,
            &self.config.settings,
            owner.as_deref(),
            contact.as_deref(),
        );
        let api = self.api();
        let mut create = CreateOnce::new("HubSpot", &part.key, delivery.replayed);
        if let Some(id_property) = &self.config.settings.id_property {
            let (api, key) = (&api, part.key.as_str());
            create = create.search(move || api.search_call(id_property, key));
        }
        let searchable = self.config.settings.id_property.is_some();
        let record = create.run(&HostKv, || api.create_call(&body, searchable))?;
        sdk::log::info(
            "call logged",
            &[
                ("call", &record.id),
                ("key", &part.key),
                ("origin", &format!("{:?}", record.origin)),
            ],
        );
        Ok(())
    }

    /// The recording links of each part whose call exists (spec 3.4).
    fn on_recording(&mut self, _: &Delivery, recording: &Recording) -> Result<(), DeliveryError> {
        if recording.last_end.as_ref().is_some_and(|end| end.internal) {
            return Ok(());
        }
        for part in &recording.parts {
            let key = recording_part_key(part);
            match stored_record(&HostKv, &key)? {
                Some(id) => self.attach(&id, &key, &part.files)?,
                None => {
                    sdk::log::debug("no call for this part; recording skipped", &[("key", &key)])
                }
            }
        }
        Ok(())
    }
}

sdk::register_plugin!(HubSpot);
