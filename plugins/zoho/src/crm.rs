//! What each event does in Zoho CRM (spec `crm-plugins.md` 3.3 to 3.5 and 7.2).
//!
//! An end event makes one Calls record, exactly once: the SDK's [`CreateOnce`] keeps
//! `rec:{key}` and `pending:{key}` in the store, and with `id_field` set a create whose outcome
//! is unknown (no answer, or with `id_field` a 5xx, which Zoho may give after storing) is
//! looked for by the key (`Calls/search?criteria=({id_field}:equals:{key})`) before it is
//! sent again; without it, such a create parks the delivery as `outcome-unknown`
//! until an operator replays it. The record is linked to the first Contact, else Lead, whose
//! phone equals the external number (E.164 first, then as reported; 204 is no match), and
//! owned by `users.{extension}` or the active user with the extension's e-mail (cached in the
//! store for an hour under `owner:{e-mail}`, an empty value meaning "none").
//!
//! A recording adds one line `Recording: {link}` per file to the `Description` of its part's
//! record: Calls have no recording field, and the attachment API does not list Calls.

use crate::api::Api;
use crate::mapping::{self, Party};
use crate::settings::Settings;
use callhook_plugin_sdk::crm::errors::Rules;
use callhook_plugin_sdk::crm::format::{self, Markup};
use callhook_plugin_sdk::crm::idempotent::{CreateOnce, Sent, stored_record};
use callhook_plugin_sdk::crm::part::Part;
use callhook_plugin_sdk::crm::{HostKv, KvStore};
use callhook_plugin_sdk::http::Response;
use callhook_plugin_sdk::query::QueryString;
use callhook_plugin_sdk::{DeliveryError, Ended, Recording, log};
use serde_json::{Value, json};

/// How long an owner found by e-mail is remembered: one hour.
const OWNER_TTL_SECONDS: u64 = 3600;
/// Users per page of the user list, Zoho's most.
const USERS_PER_PAGE: u32 = 200;

/// The Zoho side of one delivery.
pub struct Crm<'a> {
    settings: &'a Settings,
    api: Api<'a>,
    kv: HostKv,
}

impl<'a> Crm<'a> {
    /// The CRM `settings` name, reached through `api`.
    pub fn new(settings: &'a Settings, api: Api<'a>) -> Self {
        Crm {
            settings,
            api,
            kv: HostKv,
        }
    }

    /// An end event: the part's Calls record, made once. `replayed` is the delivery's.
    pub fn ended(&self, ended: &Ended, replayed: bool) -> Result<(), DeliveryError> {
        let key = mapping::record_key(&ended.id, &ended.user);
        // Made already: no searches either.
        if stored_record(&self.kv, &key)?.is_some() {
            return Ok(());
        }
        let party = self.party(ended)?;
        let owner = self.owner(ended)?;
        let id_field = self.settings.id_field.as_deref();
        let record = mapping::call_record(ended, party.as_ref(), owner.as_deref(), id_field);
        let body = json!({ "data": [record] });
        let mut create = CreateOnce::new("Zoho", &key, replayed);
        if let Some(field) = id_field {
            create = create.search(|| self.find_by_key(field, &key));
        }
        let made = create.run(&self.kv, || self.create(&body))?;
        log::info("Zoho call record", &[("key", &key), ("id", &made.id)]);
        Ok(())
    }

    /// `recording`: each part's links appended to its record's `Description`.
    pub fn recording(&self, recording: &Recording) -> Result<(), DeliveryError> {
        for part in &recording.parts {
            let key = mapping::record_key(&part.id, &part.user);
            let Some(id) = stored_record(&self.kv, &key)? else {
                log::debug("no Zoho call for this part; skipped", &[("part", &key)]);
                continue;
            };
            let response = self
                .api
                .get(&format!("/crm/v8/Calls/{id}?fields=Description"))?;
            if response.status == 204 {
                log::warn(
                    "the Zoho call of this part was deleted; its recording is skipped",
                    &[("part", &key), ("id", &id)],
                );
                continue;
            }
            let current = mapping::description(&self.judge(&response)?);
            let Some(updated) = format::with_recording_links(&current, &part.files, Markup::Text)
            else {
                continue;
            };
            let change = json!({"data": [{"Description": updated}]});
            let response = self.api.put(&format!("/crm/v8/Calls/{id}"), &change)?;
            self.judge(&response)?;
        }
        Ok(())
    }

    /// The create of the record `body`, as [`CreateOnce`] needs its outcome. With `id_field`
    /// a 5xx answer counts as unknown (the record may have been stored before the failure),
    /// so that the next attempt searches before it creates again.
    fn create(&self, body: &Value) -> Sent {
        let sent = match self.api.post("/crm/v8/Calls", body) {
            // No token: nothing was sent.
            Err(error) => return Sent::NotCreated(error),
            Ok(sent) => sent,
        };
        let id = |response: &Response| {
            mapping::created_id(&serde_json::from_slice(&response.body).ok()?)
        };
        match self.settings.id_field {
            Some(_) => Sent::from_http_searchable(sent, &Rules::ZOHO, self.api.now(), id),
            None => Sent::from_http(sent, &Rules::ZOHO, self.api.now(), id),
        }
    }

    /// The record made with `key` in `field`, if any (204: none).
    fn find_by_key(&self, field: &str, key: &str) -> Result<Option<String>, DeliveryError> {
        let mut query = QueryString::new();
        query.push("criteria", &format!("({field}:equals:{key})"));
        let response = self
            .api
            .get(&format!("/crm/v8/Calls/search?{}", query.as_str()))?;
        if response.status == 204 {
            return Ok(None);
        }
        Ok(mapping::first_id(&self.judge(&response)?))
    }

    /// The first Contact, else Lead, with the external number.
    fn party(&self, ended: &Ended) -> Result<Option<Party>, DeliveryError> {
        let numbers = Part::of(ended).number_forms();
        for module in ["Contacts", "Leads"] {
            for number in &numbers {
                let mut query = QueryString::new();
                query.push("phone", number);
                let response = self
                    .api
                    .get(&format!("/crm/v8/{module}/search?{}", query.as_str()))?;
                if response.status == 204 {
                    continue;
                }
                if let Some(id) = mapping::first_id(&self.judge(&response)?) {
                    return Ok(Some(match module {
                        "Contacts" => Party::Contact(id),
                        _ => Party::Lead(id),
                    }));
                }
            }
        }
        Ok(None)
    }

    /// `users.{user}`, else the active user with the `user-info` e-mail, else none.
    fn owner(&self, ended: &Ended) -> Result<Option<String>, DeliveryError> {
        if let Some(id) = self.settings.users.get(&ended.user) {
            return Ok(Some(id.clone()));
        }
        let Some(email) = ended
            .user_info
            .as_ref()
            .and_then(|info| info.email.as_deref())
            .filter(|email| !email.trim().is_empty())
        else {
            return Ok(None);
        };
        let cache = format!("owner:{}", email.trim().to_ascii_lowercase());
        if let Some(cached) = self.kv.get(&cache)? {
            return Ok((!cached.is_empty()).then(|| String::from_utf8_lossy(&cached).into_owned()));
        }
        let mut found = None;
        for page in 1.. {
            let response = self.api.get(&format!(
                "/crm/v8/users?type=ActiveUsers&page={page}&per_page={USERS_PER_PAGE}"
            ))?;
            if response.status == 204 {
                break;
            }
            let (user, more) = mapping::user_in_page(&self.judge(&response)?, email);
            found = user;
            if found.is_some() || !more {
                break;
            }
        }
        let value = found.as_deref().unwrap_or_default();
        // The cache only saves requests: failing to write it fails nothing.
        if let Err(error) = self
            .kv
            .set_expiring(&cache, value.as_bytes(), OWNER_TTL_SECONDS)
        {
            log::debug(
                "owner not cached",
                &[("why", DeliveryError::from(error).message())],
            );
        }
        Ok(found)
    }

    /// The JSON body of an answer Zoho's rules call success, else the delivery error.
    fn judge(&self, response: &Response) -> Result<Value, DeliveryError> {
        Rules::ZOHO.check(response, self.api.now())?;
        Ok(serde_json::from_slice(&response.body).unwrap_or(Value::Null))
    }
}
