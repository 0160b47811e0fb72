//! `pipedrive`: logs 3CX calls in Pipedrive as call logs (spec `crm-plugins.md` sections 3
//! and 5).
//!
//! Each end event with an external party becomes one call log: answered ones `connected` with
//! their talk time in seconds, missed ones `no_answer`, from the external number to the
//! extension or back, linked to the person with that number (`person_id`) and logged for the
//! extension's Pipedrive user (`user_id`). The recording event uploads the MP3 of each part's
//! first file, read from the host with `recording_file`, since Pipedrive takes no recording
//! URL and keeps one recording per call log. Ringing, dialing, started and internal calls send
//! nothing.
//!
//! - [`settings`]: the configuration, checked once per delivery.
//! - [`call_log`]: the JSON body and the readings of answers, pure and tested natively.
//! - [`api`]: the requests, classified by `Rules::PIPEDRIVE`.
//!
//! A call log is created once per part through `CreateOnce` (`rec:` and `pending:` in the
//! store). Call logs cannot be searched by an id of ours, so a create whose answer was lost
//! parks the delivery as `outcome-unknown`; the operator checks Pipedrive and replays it, and
//! the replay creates the call log. Users found by e-mail are cached for an hour.

pub mod api;
pub mod call_log;
pub mod settings;

use api::{Api, Upload};
use callhook_plugin_sdk::crm::HostKv;
use callhook_plugin_sdk::crm::cache::{LOOKUP_TTL_SECONDS, cached};
use callhook_plugin_sdk::crm::idempotent::{CreateOnce, stored_record};
use callhook_plugin_sdk::crm::part::{Part, recording_part_key};
use callhook_plugin_sdk::{
    self as sdk, Delivery, DeliveryError, Ended, Plugin, Recording, RecordingPart,
};
use settings::Config;

/// The plugin, configured for one delivery.
pub struct Pipedrive {
    config: Config,
}

impl Pipedrive {
    fn api(&self) -> Api<'_> {
        Api::new(&self.config.settings.api_base, &self.config.api_token)
    }

    /// The person with the external number: the E.164 form first, then the raw one. Forms
    /// shorter than two characters are not searched (Pipedrive refuses such terms).
    fn person(&self, part: &Part) -> Result<Option<u64>, DeliveryError> {
        for number in part.number_forms() {
            if number.chars().count() < 2 {
                continue;
            }
            if let Some(id) = self.api().find_person(number)? {
                return Ok(Some(id));
            }
        }
        Ok(None)
    }

    /// The user: `users.{extension}`, else the user with the PBX user's e-mail (cached for an
    /// hour), else none, so that Pipedrive takes the token's user.
    fn user(&self, part: &Part) -> Result<Option<u64>, DeliveryError> {
        if let Some(id) = self.config.settings.users.get(&part.ended.user) {
            return Ok(Some(*id));
        }
        let Some(email) = part.user_email() else {
            return Ok(None);
        };
        let email = email.to_lowercase();
        let found = cached(
            &HostKv,
            &format!("user:{email}"),
            LOOKUP_TTL_SECONDS,
            || Ok(self.api().find_user(&email)?.map(|id| id.to_string())),
        )?;
        Ok(found.and_then(|id| id.parse().ok()))
    }

    /// Uploads the first file of one recording part to its call log.
    fn attach(&self, id: &str, key: &str, part: &RecordingPart) -> Result<(), DeliveryError> {
        let Some(link) = part.files.first() else {
            return Ok(());
        };
        if part.files.len() > 1 {
            sdk::log::info(
                "Pipedrive keeps one recording per call log; only the first file is uploaded",
                &[("key", key), ("files", &part.files.len().to_string())],
            );
        }
        let name = call_log::file_name(link);
        let mp3 = sdk::recording_file(link).map_err(|why| {
            DeliveryError::permanent(format!(
                "pipedrive: cannot read the recording {name}: {why}"
            ))
        })?;
        let fields = [("call_log", id), ("key", key), ("file", name)];
        match self.api().upload_recording(id, name, &mp3)? {
            Upload::Stored => sdk::log::info("recording uploaded", &fields),
            Upload::Existed => sdk::log::debug("recording already uploaded", &fields),
            Upload::Gone => {
                sdk::log::warn("call log deleted in Pipedrive; recording skipped", &fields)
            }
        }
        Ok(())
    }
}

impl Plugin for Pipedrive {
    fn new() -> Result<Self, DeliveryError> {
        Ok(Pipedrive {
            config: Config::read()?,
        })
    }

    /// One call log per part (spec 3.1, 3.5), created once.
    fn on_call_ended(&mut self, delivery: &Delivery, ended: &Ended) -> Result<(), DeliveryError> {
        if ended.internal {
            return Ok(());
        }
        let part = Part::of(ended);
        if stored_record(&HostKv, &part.key)?.is_some() {
            return Ok(());
        }
        let person = self.person(&part)?;
        let user = self.user(&part)?;
        let body = call_log::create_body(&part, user, person);
        let api = self.api();
        let record = CreateOnce::new("Pipedrive", &part.key, delivery.replayed)
            .run(&HostKv, || api.create_call_log(&body))?;
        sdk::log::info(
            "call logged",
            &[
                ("call_log", &record.id),
                ("key", &part.key),
                ("origin", &format!("{:?}", record.origin)),
            ],
        );
        Ok(())
    }

    /// The recording of each part whose call log exists (spec 3.4).
    fn on_recording(&mut self, _: &Delivery, recording: &Recording) -> Result<(), DeliveryError> {
        if recording.last_end.as_ref().is_some_and(|end| end.internal) {
            return Ok(());
        }
        for part in &recording.parts {
            let key = recording_part_key(part);
            match stored_record(&HostKv, &key)? {
                Some(id) => self.attach(&id, &key, part)?,
                None => sdk::log::debug(
                    "no call log for this part; recording skipped",
                    &[("key", &key)],
                ),
            }
        }
        Ok(())
    }
}

sdk::register_plugin!(Pipedrive);
