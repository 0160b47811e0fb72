//! The participant record of the 3CX Call Control API, exactly as the PBX sends it.
//!
//! A participant is one leg of a call as seen from one DN (`3cx-api.md`, section 2). Absent DNs
//! are `""` and absent types `"None"`, never `null`; missing keys are tolerated and take those
//! same empty values so that a newer PBX that drops a field does not stop the connector.

use serde::{Deserialize, Serialize};

/// One leg of a call as seen from one DN.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Participant {
    /// Participant id, unique while it lives; part of its entity path.
    pub id: u64,
    /// What this leg is doing now.
    pub status: ParticipantStatus,
    /// The DN this leg belongs to (an extension, queue, route point, ...).
    pub dn: String,
    /// Display name of the other side.
    pub party_caller_name: String,
    /// DN of the other side; for an external party the trunk's DN.
    pub party_dn: String,
    /// Number of the other side (digits and `+` as the PBX gives them).
    pub party_caller_id: String,
    /// The DID the external caller dialled; often empty on V20 inbound calls.
    pub party_did: String,
    /// The SIP device of this leg.
    pub device_id: String,
    /// Type of the other side's DN; `Wexternalline` for an external party.
    pub party_dn_type: DnType,
    /// Whether the API client controls this leg directly.
    pub direct_control: bool,
    /// The DN that routed this leg here (queue, ring group, IVR, route point), or `""`.
    pub originated_by_dn: String,
    /// Type of `originated_by_dn`.
    pub originated_by_type: DnType,
    /// The DN that blind-transferred the call to this DN, or `""`.
    pub referred_by_dn: String,
    /// Type of `referred_by_dn`.
    pub referred_by_type: DnType,
    /// The queue or ring group on whose behalf this DN rings, or `""`.
    pub on_behalf_of_dn: String,
    /// Type of `on_behalf_of_dn`.
    pub on_behalf_of_type: DnType,
    /// The PBX's call id, shared by all legs of one call.
    pub callid: u64,
    /// Distinguishes legs within a call.
    pub legid: u64,
}

impl Default for Participant {
    fn default() -> Self {
        Self {
            id: 0,
            status: ParticipantStatus::Unknown,
            dn: String::new(),
            party_caller_name: String::new(),
            party_dn: String::new(),
            party_caller_id: String::new(),
            party_did: String::new(),
            device_id: String::new(),
            party_dn_type: DnType::None,
            direct_control: false,
            originated_by_dn: String::new(),
            originated_by_type: DnType::None,
            referred_by_dn: String::new(),
            referred_by_type: DnType::None,
            on_behalf_of_dn: String::new(),
            on_behalf_of_type: DnType::None,
            callid: 0,
            legid: 0,
        }
    }
}

/// The state of one participant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ParticipantStatus {
    /// This DN placed the leg and waits for the other side.
    Dialing,
    /// This DN is being offered the call.
    Ringing,
    /// Both sides talk.
    Connected,
    /// This DN put the other side on hold.
    Hold,
    /// The other side holds this DN.
    Held,
    /// A status this version does not know; treated as "still present".
    #[serde(other)]
    Unknown,
}

/// The type of a DN.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum DnType {
    /// A user's extension: the only kind that produces events.
    Wextension,
    /// A call queue.
    Wqueue,
    /// A ring group.
    Wringgroup,
    /// A digital receptionist.
    Wivr,
    /// A route point (the API client's own DN is one).
    Wroutepoint,
    /// A trunk: the other side is an external party.
    Wexternalline,
    /// A special menu.
    Wspecialmenu,
    /// A fax extension.
    Wfax,
    /// A conference room.
    Wconference,
    /// A parking place.
    Wparking,
    /// Absent.
    None,
    /// A type this version does not know.
    #[serde(other)]
    Unknown,
}
