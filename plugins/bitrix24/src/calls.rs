//! What each event does in Bitrix24 (spec `crm-plugins.md` 6.2 and 3.5), with the store entries
//! that make every step safe to repeat:
//!
//! | key | value | written |
//! |---|---|---|
//! | `b24:open:{C}` | [`Open`]: the `CALL_ID` and its user | after `register` |
//! | `rec:{id}.{user}` | the `CALL_ID` | after `finish` |
//! | `b24:fin:{CALL_ID}` | `1` | after `finish` |
//!
//! All of them expire after 30 days. No `pending:` entry is needed: a repeated `register`
//! returns the same `CALL_ID` for 30 minutes, and a repeated `finish` answers "Call is not
//! found", which for a `CALL_ID` the plugin holds means an earlier attempt finished it. A
//! `register` that returns a `CALL_ID` already finished (the same extension takes the call
//! again after a transfer) is made once more with `EXTERNAL_CALL_ID` = the event's id with its
//! link, so the new part gets its own call.
//!
//! The host delivers a call's events in order, and a transfer target's after the holder's end
//! event, so one call's registration is never raced.

use crate::mapping::{self, Open, Registration, UserParam};
use crate::portal::Portal;
use crate::settings::Settings;
use callhook_plugin_sdk::crm::errors::Rules;
use callhook_plugin_sdk::crm::idempotent::{RECORD_TTL_SECONDS, stored_record};
use callhook_plugin_sdk::crm::{HostKv, KvStore};
use callhook_plugin_sdk::{DeliveryError, Direction, Ended, Recording, log};
use serde_json::{Map, Value};

/// The register method.
const REGISTER: &str = "telephony.externalcall.register";
/// The finish method.
const FINISH: &str = "telephony.externalcall.finish";
/// The attach method.
const ATTACH_RECORD: &str = "telephony.externalcall.attachRecord";

/// The Bitrix24 side of one delivery.
pub struct Calls<'a> {
    settings: &'a Settings,
    portal: Portal<'a>,
    kv: HostKv,
}

/// The part of a call an event is about, as a registration needs it.
pub struct Part<'a> {
    /// The event's id, with its link.
    pub id: &'a str,
    /// The extension.
    pub user: &'a str,
    /// Incoming or outgoing.
    pub direction: Direction,
    /// The external number.
    pub phone: &'a str,
    /// When the part began.
    pub offered_at: u64,
}

impl<'a> Calls<'a> {
    /// The calls of `settings`' portal.
    pub fn new(settings: &'a Settings, portal: Portal<'a>) -> Self {
        Calls {
            settings,
            portal,
            kv: HostKv,
        }
    }

    /// `ringing`, `dialing`, `started`: registers the call for `part`'s extension unless a
    /// registration of the call is open (queue agents after the first, the answering agent).
    pub fn offered(&self, part: &Part) -> Result<(), DeliveryError> {
        let call = mapping::call_without_link(part.id);
        if self.open(call)?.is_some() {
            return Ok(());
        }
        let user = mapping::extension_user(self.settings, part.user);
        self.register(part, user, self.settings.show_card)?;
        Ok(())
    }

    /// An end event: finishes the open registration (registering first when none is open),
    /// then remembers the `CALL_ID` as the part's record.
    pub fn ended(&self, ended: &Ended) -> Result<(), DeliveryError> {
        let key = mapping::record_key(&ended.id, &ended.user);
        if stored_record(&self.kv, &key)?.is_some() {
            return Ok(());
        }
        let call = mapping::call_without_link(&ended.id);
        let open = match self.open(call)? {
            Some(open) => open,
            None => {
                let user = mapping::registration_user_at_end(self.settings, ended)?;
                let part = Part {
                    id: &ended.id,
                    user: &ended.user,
                    direction: ended.direction,
                    phone: mapping::external_number(
                        &ended.callerid,
                        ended.callerid_e164.as_deref(),
                    ),
                    offered_at: ended.offered_at,
                };
                self.register(&part, user, false)?
            }
        };
        let user = mapping::finish_user(self.settings, ended, &open.user);
        let params = mapping::finish_params(&open.call_id, &user, ended);
        let response = self.portal.call(FINISH, &params)?;
        let body: Value = serde_json::from_slice(&response.body).unwrap_or(Value::Null);
        if mapping::call_not_found(&body) {
            log::info(
                "Bitrix24 call finished by an earlier attempt",
                &[("call_id", &open.call_id)],
            );
        } else {
            Rules::BITRIX24.check(&response, self.portal.now())?;
        }
        self.put(&format!("rec:{key}"), &open.call_id)?;
        self.put(&format!("b24:fin:{}", open.call_id), "1")?;
        self.kv
            .delete(&format!("b24:open:{call}"))
            .map_err(DeliveryError::from)
    }

    /// `recording`: attaches each part's first file to its finished call.
    pub fn recording(&self, recording: &Recording) -> Result<(), DeliveryError> {
        for part in &recording.parts {
            let key = mapping::record_key(&part.id, &part.user);
            let Some(call_id) = stored_record(&self.kv, &key)? else {
                log::debug("no Bitrix24 call for this part; skipped", &[("part", &key)]);
                continue;
            };
            let Some(link) = part.files.first() else {
                continue;
            };
            if part.files.len() > 1 {
                log::info(
                    "a Bitrix24 call keeps one recording: only the part's first file is attached",
                    &[("part", &key)],
                );
            }
            let response = self
                .portal
                .call(ATTACH_RECORD, &mapping::attach_params(&call_id, link))?;
            Rules::BITRIX24.check(&response, self.portal.now())?;
        }
        Ok(())
    }

    /// Registers `part`'s call for `user` and stores the registration as open. When Bitrix24
    /// hands back a call this plugin finished already, registers once more under the event's
    /// id with its link.
    fn register(&self, part: &Part, user: UserParam, show: bool) -> Result<Open, DeliveryError> {
        let call = mapping::call_without_link(part.id);
        let mut registration = Registration {
            user: &user,
            phone: part.phone,
            direction: part.direction,
            offered_at: part.offered_at,
            external_call_id: call,
            show,
            crm_create: self.settings.crm_create,
        };
        let mut call_id = self.register_once(registration.params())?;
        if self.kv.get(&format!("b24:fin:{call_id}"))?.is_some() {
            registration.external_call_id = part.id;
            call_id = self.register_once(registration.params())?;
        }
        let open = Open { call_id, user };
        let value = serde_json::to_string(&open).expect("a registration serialises");
        self.put(&format!("b24:open:{call}"), &value)?;
        Ok(open)
    }

    /// One `register`: the `CALL_ID` of its answer.
    fn register_once(&self, params: Map<String, Value>) -> Result<String, DeliveryError> {
        let response = self.portal.call(REGISTER, &params)?;
        Rules::BITRIX24.check(&response, self.portal.now())?;
        let body: Value = serde_json::from_slice(&response.body).unwrap_or(Value::Null);
        body["result"]["CALL_ID"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| {
                DeliveryError::permanent("Bitrix24 registered the call without a CALL_ID")
            })
    }

    /// The open registration of call `C`, if any.
    fn open(&self, call: &str) -> Result<Option<Open>, DeliveryError> {
        let Some(bytes) = self.kv.get(&format!("b24:open:{call}"))? else {
            return Ok(None);
        };
        Ok(serde_json::from_slice(&bytes).ok())
    }

    /// Stores a call entry for 30 days.
    fn put(&self, key: &str, value: &str) -> Result<(), DeliveryError> {
        self.kv
            .set_expiring(key, value.as_bytes(), RECORD_TTL_SECONDS)
            .map_err(Into::into)
    }
}
