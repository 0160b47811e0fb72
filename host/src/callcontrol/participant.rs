//! The participant record of the 3CX Call Control API, read the way a real PBX sends it.
//!
//! A participant is one leg of a call as seen from one DN (`3cx-api.md`, section 2). Live PBXes
//! write absent DNs as `""` and absent types as `"None"`, but 3CX's own types declare every
//! string field nullable, so the reader follows the contract's tolerance rule field by field
//! ([`super::lenient`]): a missing key or `null` reads as `""`, `"None"` or `false`, a number
//! where a string belongs reads as its digits, and unknown keys and enum strings are kept as
//! unknown. Only a participant without a usable `id` or `callid` fails to parse; the snapshot
//! and the connector skip that one participant and count it.

use serde::{Deserialize, Serialize};

use super::lenient;

/// One leg of a call as seen from one DN.
///
/// Every field but `id` and `callid` takes its empty value when the key is missing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Participant {
    /// Participant id, unique while it lives; part of its entity path. Required.
    #[serde(deserialize_with = "lenient::required_id")]
    pub id: u64,
    /// What this leg is doing now.
    #[serde(default, deserialize_with = "lenient::or_default")]
    pub status: ParticipantStatus,
    /// The DN this leg belongs to (an extension, queue, route point, ...).
    #[serde(default, deserialize_with = "lenient::string")]
    pub dn: String,
    /// Display name of the other side.
    #[serde(default, deserialize_with = "lenient::string")]
    pub party_caller_name: String,
    /// DN of the other side; for an external party the trunk's DN.
    #[serde(default, deserialize_with = "lenient::string")]
    pub party_dn: String,
    /// Number of the other side (digits and `+` as the PBX gives them).
    #[serde(default, deserialize_with = "lenient::string")]
    pub party_caller_id: String,
    /// The DID the external caller dialled; often empty on V20 inbound calls.
    #[serde(default, deserialize_with = "lenient::string")]
    pub party_did: String,
    /// The SIP device of this leg.
    #[serde(default, deserialize_with = "lenient::string")]
    pub device_id: String,
    /// Type of the other side's DN; `Wexternalline` for an external party.
    #[serde(default, deserialize_with = "lenient::or_default")]
    pub party_dn_type: DnType,
    /// Whether the API client controls this leg directly.
    #[serde(default, deserialize_with = "lenient::or_default")]
    pub direct_control: bool,
    /// The DN that routed this leg here (queue, ring group, IVR, route point), or `""`.
    #[serde(default, deserialize_with = "lenient::string")]
    pub originated_by_dn: String,
    /// Type of `originated_by_dn`.
    #[serde(default, deserialize_with = "lenient::or_default")]
    pub originated_by_type: DnType,
    /// The DN that blind-transferred the call to this DN, or `""`.
    #[serde(default, deserialize_with = "lenient::string")]
    pub referred_by_dn: String,
    /// Type of `referred_by_dn`.
    #[serde(default, deserialize_with = "lenient::or_default")]
    pub referred_by_type: DnType,
    /// The queue or ring group on whose behalf this DN rings, or `""`.
    #[serde(default, deserialize_with = "lenient::string")]
    pub on_behalf_of_dn: String,
    /// Type of `on_behalf_of_dn`.
    #[serde(default, deserialize_with = "lenient::or_default")]
    pub on_behalf_of_type: DnType,
    /// The PBX's call id, shared by all legs of one call. Required.
    #[serde(deserialize_with = "lenient::required_id")]
    pub callid: u64,
    /// Distinguishes legs within a call.
    #[serde(default, deserialize_with = "lenient::number")]
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
///
/// 3CX documents `Dialing`, `Ringing` and `Connected` only; `Hold` and `Held` are this
/// project's model (`3cx-api.md`, section 2). Any other string, and `null`, is
/// [`ParticipantStatus::Unknown`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
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
    #[default]
    #[serde(other)]
    Unknown,
}

/// The type of a DN; absent (`"None"`, `null`, missing) is [`DnType::None`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
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
    #[default]
    None,
    /// A type this version does not know.
    #[serde(other)]
    Unknown,
}
