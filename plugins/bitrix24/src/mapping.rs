//! Events to Bitrix24 parameters, without I/O (spec `crm-plugins.md` 6.2): who a registration
//! and a finish name, and the JSON bodies of `register`, `finish` and `attachRecord`.
//!
//! The user parameter is `USER_ID` = `users.{extension}` when set, else `USER_PHONE_INNER` =
//! the extension, which Bitrix24 resolves by the users' internal numbers. A call missed at queue
//! level (the end event's `user` is its `queue`) maps no extension: it registers with
//! `users.{queue}`, else `default_user`, and finishes with `users.{queue}`, else the user the
//! call was registered for.

use crate::settings::Settings;
use callhook_plugin_sdk::crm::format;
use callhook_plugin_sdk::crm::part::is_phone_number;
use callhook_plugin_sdk::{DeliveryError, Direction, Ended, FinishType};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

/// Who a `register` or `finish` is for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum UserParam {
    /// `USER_ID`: a Bitrix24 user id.
    #[serde(rename = "USER_ID")]
    Id(u64),
    /// `USER_PHONE_INNER`: an internal number Bitrix24 finds the user by.
    #[serde(rename = "USER_PHONE_INNER")]
    Inner(String),
}

impl UserParam {
    /// Adds the parameter to a request body.
    fn insert_into(&self, params: &mut Map<String, Value>) {
        match self {
            UserParam::Id(id) => params.insert("USER_ID".into(), json!(id)),
            UserParam::Inner(number) => params.insert("USER_PHONE_INNER".into(), json!(number)),
        };
    }
}

/// A registration still open, stored as `b24:open:{C}`:
/// `{"call_id":"externalCall.…","user":{"USER_PHONE_INNER":"121"}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Open {
    /// The `CALL_ID` Bitrix24 gave.
    pub call_id: String,
    /// The user it was registered for.
    pub user: UserParam,
}

/// `C`: the call id without its link, `261128101500_782` of `261128101500_782-1`, which all
/// parts of a call register under.
pub fn call_without_link(id: &str) -> &str {
    id.rsplit_once('-').map_or(id, |(call, _)| call)
}

/// The record key of an end event or a recording part, `{id}.{user}`.
pub fn record_key(id: &str, user: &str) -> String {
    format!("{id}.{user}")
}

/// The external number: `callerid-e164` when the host could normalise it, else `callerid`.
pub fn external_number<'a>(callerid: &'a str, e164: Option<&'a str>) -> &'a str {
    e164.filter(|n| !n.is_empty()).unwrap_or(callerid)
}

/// Whether `ended` is the one end event of a call missed at queue level: its `user` is the
/// queue it rang in.
pub fn missed_in_queue(ended: &Ended) -> bool {
    ended.finishtype == FinishType::Missed && ended.queue.as_deref() == Some(ended.user.as_str())
}

/// The user parameter of an extension: `users.{extension}`, else its internal number.
pub fn extension_user(settings: &Settings, extension: &str) -> UserParam {
    match settings.users.get(extension) {
        Some(id) => UserParam::Id(*id),
        None => UserParam::Inner(extension.to_string()),
    }
}

/// Whom an end event registers for when no registration of its call is open (a lost or
/// parked earlier event): its extension; for a call missed at queue level `users.{queue}`, else
/// `default_user`, else a permanent error naming both keys.
pub fn registration_user_at_end(
    settings: &Settings,
    ended: &Ended,
) -> Result<UserParam, DeliveryError> {
    if !missed_in_queue(ended) {
        return Ok(extension_user(settings, &ended.user));
    }
    let queue = &ended.user;
    settings
        .users
        .get(queue)
        .copied()
        .or(settings.default_user)
        .map(UserParam::Id)
        .ok_or_else(|| {
            DeliveryError::permanent(format!(
                "bitrix24: no Bitrix24 user for the call missed in queue {queue}: set \
                 `users.{queue}` or `default_user`"
            ))
        })
}

/// Whom `finish` names: the part's extension; for a call missed at queue level
/// `users.{queue}`, else the user the call was `registered` for.
pub fn finish_user(settings: &Settings, ended: &Ended, registered: &UserParam) -> UserParam {
    if !missed_in_queue(ended) {
        return extension_user(settings, &ended.user);
    }
    match settings.users.get(&ended.user) {
        Some(id) => UserParam::Id(*id),
        None => registered.clone(),
    }
}

/// What a `register` says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration<'a> {
    /// Who the call is registered for.
    pub user: &'a UserParam,
    /// The external number.
    pub phone: &'a str,
    /// Incoming (`TYPE` 2) or outgoing (`TYPE` 1).
    pub direction: Direction,
    /// When the part began, UTC milliseconds: `CALL_START_DATE`.
    pub offered_at: u64,
    /// `EXTERNAL_CALL_ID`: `C`, or the event's id with its link for a second registration.
    pub external_call_id: &'a str,
    /// `SHOW`.
    pub show: bool,
    /// `CRM_CREATE`, sent as 1 only when `phone` [is a phone number](is_phone_number): no
    /// lead is made for a withheld number (`anonymous`).
    pub crm_create: bool,
}

impl Registration<'_> {
    /// The body of `telephony.externalcall.register`.
    pub fn params(&self) -> Map<String, Value> {
        let mut params = Map::new();
        self.user.insert_into(&mut params);
        let call_type = match self.direction {
            Direction::Incoming => 2,
            Direction::Outgoing => 1,
        };
        params.insert("PHONE_NUMBER".into(), json!(self.phone));
        params.insert("TYPE".into(), json!(call_type));
        params.insert(
            "CALL_START_DATE".into(),
            json!(format::iso8601_utc_offset(self.offered_at)),
        );
        params.insert("EXTERNAL_CALL_ID".into(), json!(self.external_call_id));
        params.insert("SHOW".into(), json!(u8::from(self.show)));
        let crm_create = self.crm_create && is_phone_number(self.phone);
        params.insert("CRM_CREATE".into(), json!(u8::from(crm_create)));
        params
    }
}

/// The body of `telephony.externalcall.finish`: `DURATION` in whole seconds, `STATUS_CODE`
/// `"200"` answered or `"304"` missed.
pub fn finish_params(call_id: &str, user: &UserParam, ended: &Ended) -> Map<String, Value> {
    let mut params = Map::new();
    params.insert("CALL_ID".into(), json!(call_id));
    user.insert_into(&mut params);
    params.insert("DURATION".into(), json!(ended.duration_seconds));
    let status = match ended.finishtype {
        FinishType::Ok => "200",
        FinishType::Missed => "304",
    };
    params.insert("STATUS_CODE".into(), json!(status));
    params
}

/// The body of `telephony.externalcall.attachRecord` for a part's first file `link`.
pub fn attach_params(call_id: &str, link: &str) -> Map<String, Value> {
    let mut params = Map::new();
    params.insert("CALL_ID".into(), json!(call_id));
    params.insert("FILENAME".into(), json!(file_name(link)));
    params.insert("RECORD_URL".into(), json!(link));
    params
}

/// A link's file name: its last path segment without the query (`{part id}-{n}.mp3`).
pub fn file_name(link: &str) -> &str {
    let path = link.split(['?', '#']).next().unwrap_or(link);
    path.rsplit('/').next().unwrap_or(path)
}

/// Whether a `finish` answer says the call is not open: an earlier attempt finished it.
pub fn call_not_found(body: &Value) -> bool {
    body.get("error_description")
        .and_then(Value::as_str)
        .is_some_and(|text| text.starts_with("Call is not found"))
}

#[cfg(test)]
mod tests;
