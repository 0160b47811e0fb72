//! Variants: the shapes of the same calls that a real PBX may show, played with one expect list.
//!
//! `3cx-api.md` leaves several details open or documents them as seen in some captures only:
//! whether `party_did` carries the DID, in which order the two halves of a transfer arrive,
//! whether a held leg shows `Hold` or stays `Connected`, whether an outbound leg first shows up
//! without its party. A [`Variant`] picks one answer to each; the webhooks the host must send are
//! the same for all of them, so every scenario is played in each variant with its one
//! `[[expect]]` list ([`crate::Scenario::variants`]). [`Variant::default`] is the most realistic
//! shape, the one live PBXes show.

use std::fmt;

use serde::Deserialize;

/// In which order the two halves of a transfer reach the socket (the spec says either happens).
#[derive(Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
#[serde(rename_all = "snake_case")]
pub enum TransferOrder {
    /// The transferring extension's leg is removed first, then the new leg appears.
    #[default]
    LeaveFirst,
    /// The new leg appears first, then the transferring extension's leg is removed.
    JoinFirst,
}

impl TransferOrder {
    /// The name used in scenario files, `leave_first` or `join_first`.
    pub fn as_str(self) -> &'static str {
        match self {
            TransferOrder::LeaveFirst => "leave_first",
            TransferOrder::JoinFirst => "join_first",
        }
    }
}

/// One realistic shape of a scenario's participant changes; see [`crate::Scenario::with_variant`].
///
/// ```
/// use callhook_simulator::{Scenario, TransferOrder, Variant};
///
/// let scenario = Scenario::builtin("05-blind-transfer").unwrap();
/// assert_eq!(scenario.variant(), Variant::default());
/// let joined = scenario.with_variant(Variant {
///     transfer_order: Some(TransferOrder::JoinFirst),
///     ..Variant::default()
/// });
/// assert_eq!(joined.expected(), scenario.expected());
/// assert_eq!(scenario.variants().len(), 4); // party_did filled or empty, either order
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Variant {
    /// Inbound legs carry their call's `did` in `party_did`. By default `false`: `party_did` is
    /// empty on every leg, as in every live sample, and the host takes the DID from its
    /// `[trunks]` table (trunk `10007` → `+4930123456` for the shipped scenarios).
    pub did_in_party_did: bool,
    /// Overrides the `order` of every `blind_transfer` and `complete_transfer` step. By default
    /// `None`: each step's own `order` (which defaults to `join_first` for a blind transfer and
    /// `leave_first` for an attended one, the orders 3CX uses).
    pub transfer_order: Option<TransferOrder>,
    /// A held leg (by `hold`, or the holder of a `consult`) stays `Connected`: hold and resume
    /// are upserts with an unchanged status. By default `true`, since 3CX documents no hold
    /// status and none was seen live; `false` shows the modelled `Hold` status instead.
    pub hold_as_connected: bool,
    /// `dial` first upserts the `Dialing` leg without its party (`party_dn` `""`,
    /// `party_dn_type` `"None"`, only the dialled digits in `party_caller_id`) and fills the
    /// party in with a second upsert shortly after (0.2 scenario seconds, or half the time to
    /// the call's next step if that is sooner). By default `true`, as seen live; `false` shows
    /// the party from the first upsert.
    pub partyless_first_dialing: bool,
}

impl Default for Variant {
    fn default() -> Self {
        Variant {
            did_in_party_did: false,
            transfer_order: None,
            hold_as_connected: true,
            partyless_first_dialing: true,
        }
    }
}

impl Variant {
    /// Every combination worth trying, the default first; [`crate::Scenario::variants`] keeps
    /// those that change the scenario's timeline.
    pub(crate) fn candidates() -> Vec<Variant> {
        let mut out = Vec::new();
        for did_in_party_did in [false, true] {
            for transfer_order in [
                None,
                Some(TransferOrder::LeaveFirst),
                Some(TransferOrder::JoinFirst),
            ] {
                for hold_as_connected in [true, false] {
                    for partyless_first_dialing in [true, false] {
                        out.push(Variant {
                            did_in_party_did,
                            transfer_order,
                            hold_as_connected,
                            partyless_first_dialing,
                        });
                    }
                }
            }
        }
        out
    }
}

/// A short label for test messages, e.g.
/// `party_did=empty order=as_written hold=connected first_dialing=partyless`.
impl fmt::Display for Variant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "party_did={} order={} hold={} first_dialing={}",
            if self.did_in_party_did {
                "filled"
            } else {
                "empty"
            },
            self.transfer_order
                .map_or("as_written", TransferOrder::as_str),
            if self.hold_as_connected {
                "connected"
            } else {
                "hold"
            },
            if self.partyless_first_dialing {
                "partyless"
            } else {
                "with_party"
            },
        )
    }
}
