//! The CRM stand-ins (`tests/crm-standins`) behind `callhook demo --plugin NAME` and
//! `callhook plugin test NAME`, so a built-in CRM plugin can be tried without an account and
//! nothing reaches a real CRM.
//!
//! Each stand-in is seeded as a small company would be: the demo's caller as a contact, and the
//! 3CX simulator's users as CRM users (by e-mail, or for Bitrix24 by internal number), so that
//! the records it ends up with show contact and owner. [`CrmStandin::settings`] and
//! [`CrmStandin::secrets`] point the plugin at it with the credentials it accepts.

use callhook_crm_standins::{
    Bitrix24, Bitrix24Config, Bitrix24Handle, HubSpot, HubSpotConfig, HubSpotHandle, Pipedrive,
    PipedriveConfig, PipedriveHandle, Recorded, Standin, Zoho, ZohoConfig, ZohoHandle,
};
use callhook_simulator::User;
use serde_json::Value;

/// The built-in plugins that have a stand-in.
pub const CRMS: [&str; 4] = ["hubspot", "pipedrive", "bitrix24", "zoho"];

/// The external number of the simulator's scenarios, seeded as a contact.
const CALLER: &str = "425630434343";

/// A running, seeded stand-in for one CRM.
pub struct CrmStandin {
    crm: Crm,
    settings: Vec<(String, String)>,
    secrets: Vec<(String, String)>,
}

enum Crm {
    HubSpot(HubSpotHandle),
    Pipedrive(PipedriveHandle),
    Bitrix24(Bitrix24Handle),
    Zoho(ZohoHandle),
}

impl CrmStandin {
    /// Starts and seeds the stand-in of the built-in plugin `plugin`; `None` when it has none.
    pub async fn start(plugin: &str) -> anyhow::Result<Option<CrmStandin>> {
        let users = User::defaults();
        let emails = || users.iter().filter_map(|user| user.email.as_deref());
        let standin = match plugin {
            "hubspot" => {
                let config = HubSpotConfig::default();
                let hubspot = HubSpot::start(config.clone()).await?;
                hubspot.add_contact(&[("phone", CALLER), ("firstname", "Demo caller")]);
                for email in emails() {
                    hubspot.add_owner(email);
                }
                let base = hubspot.base_url();
                CrmStandin {
                    crm: Crm::HubSpot(hubspot),
                    settings: vec![("api_base".into(), base)],
                    secrets: vec![("access_token".into(), config.token)],
                }
            }
            "pipedrive" => {
                let config = PipedriveConfig::default();
                let pipedrive = Pipedrive::start(config.clone()).await?;
                pipedrive.add_person("Demo caller", &[CALLER]);
                for email in emails() {
                    pipedrive.add_user(email);
                }
                let base = pipedrive.base_url();
                CrmStandin {
                    crm: Crm::Pipedrive(pipedrive),
                    settings: vec![("api_base".into(), base)],
                    secrets: vec![("api_token".into(), config.token)],
                }
            }
            "bitrix24" => {
                let config = Bitrix24Config::default();
                let bitrix = Bitrix24::start(config.clone()).await?;
                bitrix.add_contact(CALLER);
                for user in &users {
                    bitrix.add_user(&user.number);
                }
                let base = bitrix.base_url();
                CrmStandin {
                    crm: Crm::Bitrix24(bitrix),
                    settings: vec![
                        ("portal".into(), base.clone()),
                        ("oauth_base".into(), base),
                        ("client_id".into(), config.client_id),
                    ],
                    secrets: vec![
                        ("client_secret".into(), config.client_secret),
                        ("refresh_token".into(), config.refresh_token),
                    ],
                }
            }
            "zoho" => {
                let config = ZohoConfig::default();
                let zoho = Zoho::start(config.clone()).await?;
                zoho.add_contact("Demo caller", CALLER);
                for email in emails() {
                    zoho.add_user(email);
                }
                let base = zoho.base_url();
                CrmStandin {
                    crm: Crm::Zoho(zoho),
                    settings: vec![
                        ("api_base".into(), base.clone()),
                        ("accounts_base".into(), base),
                        ("client_id".into(), config.client_id),
                    ],
                    secrets: vec![
                        ("client_secret".into(), config.client_secret),
                        ("refresh_token".into(), config.refresh_token),
                    ],
                }
            }
            _ => return Ok(None),
        };
        Ok(Some(standin))
    }

    /// The CRM's name as users know it.
    pub fn name(&self) -> &'static str {
        match self.crm {
            Crm::HubSpot(_) => "HubSpot",
            Crm::Pipedrive(_) => "Pipedrive",
            Crm::Bitrix24(_) => "Bitrix24",
            Crm::Zoho(_) => "Zoho CRM",
        }
    }

    /// The plugin settings that point it at the stand-in.
    pub fn settings(&self) -> &[(String, String)] {
        &self.settings
    }

    /// The plugin secrets the stand-in accepts.
    pub fn secrets(&self) -> &[(String, String)] {
        &self.secrets
    }

    /// Where the stand-in listens, e.g. `http://127.0.0.1:4321`.
    pub fn base_url(&self) -> String {
        self.standin().base_url()
    }

    /// The requests it received so far, secrets masked.
    pub fn requests(&self) -> Vec<Recorded> {
        self.standin().requests()
    }

    /// One line per call record the CRM holds now, with what a user would look at.
    pub fn records(&self) -> Vec<String> {
        match &self.crm {
            Crm::HubSpot(hubspot) => hubspot
                .calls()
                .iter()
                .map(|call| {
                    let property = |name: &str| {
                        call.properties
                            .get(name)
                            .map_or("-", String::as_str)
                            .to_owned()
                    };
                    format!(
                        "call {}: {} {} {} ms, from {} to {}, owner {}, contacts {:?}{}",
                        call.id,
                        property("hs_call_direction"),
                        property("hs_call_status"),
                        property("hs_call_duration"),
                        property("hs_call_from_number"),
                        property("hs_call_to_number"),
                        property("hubspot_owner_id"),
                        call.contacts,
                        recording_note(
                            call.properties
                                .get("hs_call_body")
                                .is_some_and(|body| body.contains("Recording: "))
                        ),
                    )
                })
                .collect(),
            Crm::Pipedrive(pipedrive) => pipedrive
                .call_logs()
                .iter()
                .map(|log| {
                    format!(
                        "call log {}: {} {} s, from {} to {}, user {}, person {}{}",
                        log.id,
                        field(&log.fields, "outcome"),
                        field(&log.fields, "duration"),
                        field(&log.fields, "from_phone_number"),
                        field(&log.fields, "to_phone_number"),
                        field(&log.fields, "user_id"),
                        field(&log.fields, "person_id"),
                        recording_note(log.recording.is_some()),
                    )
                })
                .collect(),
            Crm::Bitrix24(bitrix) => bitrix
                .calls()
                .iter()
                .map(|call| {
                    let finished = match &call.finished {
                        Some(finish) => format!(
                            "finished by user {}: {} after {} s",
                            finish.user, finish.status_code, finish.duration
                        ),
                        None => "not finished".to_owned(),
                    };
                    format!(
                        "call {}: type {}, {}, registered for user {}, {finished}{}",
                        call.call_id,
                        field(&call.register, "TYPE"),
                        field(&call.register, "PHONE_NUMBER"),
                        call.registered_user,
                        recording_note(call.recording.is_some()),
                    )
                })
                .collect(),
            Crm::Zoho(zoho) => zoho
                .calls()
                .iter()
                .map(|call| {
                    format!(
                        "call {}: {} {}, started {}, owner {}, contact {}{}",
                        call.id,
                        field(&call.fields, "Call_Type"),
                        field(&call.fields, "Call_Duration"),
                        field(&call.fields, "Call_Start_Time"),
                        field(&call.fields, "Owner"),
                        field(&call.fields, "Who_Id"),
                        recording_note(field(&call.fields, "Description").contains("Recording: ")),
                    )
                })
                .collect(),
        }
    }

    fn standin(&self) -> &Standin {
        match &self.crm {
            Crm::HubSpot(handle) => handle,
            Crm::Pipedrive(handle) => handle,
            Crm::Bitrix24(handle) => handle,
            Crm::Zoho(handle) => handle,
        }
    }
}

/// A field of a stored JSON record as text: strings bare, `{"id":…}` as the id, `-` when absent.
fn field(fields: &serde_json::Map<String, Value>, name: &str) -> String {
    match fields.get(name) {
        None | Some(Value::Null) => "-".to_owned(),
        Some(Value::String(text)) => text.clone(),
        Some(Value::Object(object)) if object.contains_key("id") => field(object, "id"),
        Some(other) => other.to_string(),
    }
}

fn recording_note(has_recording: bool) -> &'static str {
    if has_recording {
        ", with recording"
    } else {
        ""
    }
}

/// A request as one line: method, path and query, and a short body.
pub fn request_line(request: &Recorded) -> String {
    let mut line = format!("{} {}", request.method, request.path);
    if !request.query.is_empty() {
        line.push('?');
        line.push_str(&request.query);
    }
    if !request.body.is_empty() {
        line.push(' ');
        let body = String::from_utf8_lossy(&request.body);
        match body.char_indices().nth(300) {
            Some((end, _)) => {
                line.push_str(&body[..end]);
                line.push('…');
            }
            None => line.push_str(&body),
        }
    }
    line
}
