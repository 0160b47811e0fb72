//! How each event field is derived from the participants: stamp, usertype, did, callerid, duration.
//!
//! Every function here is a rule of `call-events.md`, sections 2 and 3, with the decisions the
//! spec leaves open written next to it. They are small and pure so the tables below pin them down.

use std::collections::BTreeMap;

use jiff::Timestamp;
use jiff::tz::TimeZone;

use crate::callcontrol::{DnType, Participant};
use crate::calls::event::UserType;

/// The `yyMMddHHmmss` part of a call id: `at` in the PBX's time zone.
pub(super) fn stamp(at: Timestamp, tz: &TimeZone) -> String {
    at.to_zoned(tz.clone()).strftime("%y%m%d%H%M%S").to_string()
}

/// `usertype` of an extension that is offered an incoming call.
///
/// `queue` when it rings on behalf of a queue or was routed by one; `ext` when nothing routed it
/// or only a route point or IVR did (that is still the caller choosing this extension), and for
/// transfers (a person chose this extension); `other` for ring groups, forwarding from another
/// extension and every other router.
pub(super) fn user_type(p: &Participant) -> UserType {
    if p.on_behalf_of_type == DnType::Wqueue || p.originated_by_type == DnType::Wqueue {
        return UserType::Queue;
    }
    if p.on_behalf_of_type != DnType::None && !p.on_behalf_of_dn.is_empty() {
        return UserType::Other;
    }
    match p.originated_by_type {
        DnType::None | DnType::Wroutepoint | DnType::Wivr => UserType::Ext,
        _ if p.originated_by_dn.is_empty() => UserType::Ext,
        _ => UserType::Other,
    }
}

/// A queue or ring group that a call can be missed in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(super) enum GroupKind {
    /// A call queue (`Wqueue`).
    Queue,
    /// A ring group (`Wringgroup`).
    RingGroup,
}

/// The queue or ring group an extension's leg rings for, if any: `on_behalf_of` first, else
/// `originated_by`.
pub(super) fn group_of(p: &Participant) -> Option<(GroupKind, String)> {
    let kind = |t: DnType| match t {
        DnType::Wqueue => Some(GroupKind::Queue),
        DnType::Wringgroup => Some(GroupKind::RingGroup),
        _ => None,
    };
    [
        (p.on_behalf_of_type, &p.on_behalf_of_dn),
        (p.originated_by_type, &p.originated_by_dn),
    ]
    .into_iter()
    .find_map(|(t, dn)| Some((kind(t)?, dn.clone())).filter(|(_, dn)| !dn.is_empty()))
}

/// Whether a person (not a queue, ring group, IVR or route point) referred the call to this leg,
/// i.e. whether the leg is the target of a transfer.
pub(super) fn referred_by_person(p: &Participant) -> bool {
    !p.referred_by_dn.is_empty()
        && !matches!(
            p.referred_by_type,
            DnType::Wqueue
                | DnType::Wringgroup
                | DnType::Wivr
                | DnType::Wroutepoint
                | DnType::Wspecialmenu
        )
}

/// `callerid` of an extension's part.
///
/// The leg's own external party when it has one; else the call's external number (queue agents
/// may see the queue as their party); else, for an internal call, the other extension.
pub(super) fn caller_id(p: &Participant, call_external: Option<&str>) -> String {
    if p.party_dn_type == DnType::Wexternalline {
        return p.party_caller_id.clone();
    }
    if let Some(number) = call_external {
        return number.to_owned();
    }
    if p.party_dn.is_empty() {
        p.party_caller_id.clone()
    } else {
        p.party_dn.clone()
    }
}

/// Whether the leg's other side is known: its DN type is given. A `Dialing` leg may first show
/// no party at all (`party_dn_type` `None`, only the dialled digits); until its party is known,
/// the leg can be neither an external call nor an internal one.
pub(super) fn party_known(p: &Participant) -> bool {
    p.party_dn_type != DnType::None
}

/// The DID number of an incoming call: `party_did` when the PBX filled it in, else the DID the
/// configuration's `[trunks]` table gives the call's trunk (the `party_dn` of its external
/// party), else `""`.
pub(super) fn did_number<'a>(
    party_did: &'a str,
    trunk: &str,
    trunk_dids: &'a BTreeMap<String, String>,
) -> &'a str {
    if !party_did.is_empty() {
        return party_did;
    }
    trunk_dids.get(trunk).map_or("", String::as_str)
}

/// A DID number as it is compared: its digits only, so `+49 30 123456` and XAPI's
/// `4930123456` are the same number.
///
/// ```
/// assert_eq!(callhook::calls::did_digits("+49 (30) 123-456"), "4930123456");
/// ```
pub fn did_digits(number: &str) -> String {
    number.chars().filter(char::is_ascii_digit).collect()
}

/// `did` of an incoming call: the inbound rule's name when `number` resolves, else `number`.
///
/// Rules are looked up by the exact number first, then by digits only, so `+4930123456` finds a
/// rule stored as `4930123456` and the other way round.
pub(super) fn did(rules: &BTreeMap<String, String>, number: &str) -> String {
    if number.is_empty() {
        return String::new();
    }
    if let Some(name) = rules.get(number) {
        return name.clone();
    }
    let wanted = did_digits(number);
    rules
        .iter()
        .find(|(key, _)| !wanted.is_empty() && did_digits(key) == wanted)
        .map_or_else(|| number.to_owned(), |(_, name)| name.clone())
}

/// Talk time from `start` to `end` in whole seconds, rounded to the nearest second (half up),
/// never negative.
///
/// Counted between the two instants cut to whole milliseconds, the precision of the events'
/// `answered-at` and `ended-at` (contract 0.2), so that `duration-seconds` always equals
/// `round((ended-at - answered-at) / 1000)` as the spec says.
pub(super) fn duration_secs(start: Timestamp, end: Timestamp) -> u32 {
    let ms = (end.as_millisecond() - start.as_millisecond()).max(0);
    u32::try_from((ms + 500) / 1000).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leg(obo: (&str, DnType), orig: (&str, DnType), referred: (&str, DnType)) -> Participant {
        Participant {
            on_behalf_of_dn: obo.0.into(),
            on_behalf_of_type: obo.1,
            originated_by_dn: orig.0.into(),
            originated_by_type: orig.1,
            referred_by_dn: referred.0.into(),
            referred_by_type: referred.1,
            ..Participant::default()
        }
    }

    const NONE: (&str, DnType) = ("", DnType::None);

    #[test]
    fn user_type_follows_the_router() {
        use DnType::*;
        #[rustfmt::skip]
        let cases = [
            (NONE,                 NONE,                   NONE,                UserType::Ext),
            (NONE,                 ("ROUTER", Wroutepoint), NONE,               UserType::Ext),
            (NONE,                 ("700", Wivr),          NONE,                UserType::Ext),
            (NONE,                 NONE,                   ("120", Wextension), UserType::Ext),
            (("800", Wqueue),      NONE,                   NONE,                UserType::Queue),
            (NONE,                 ("800", Wqueue),        NONE,                UserType::Queue),
            (("800", Wqueue),      ("ROUTER", Wroutepoint), NONE,               UserType::Queue),
            (("600", Wringgroup),  NONE,                   NONE,                UserType::Other),
            (NONE,                 ("600", Wringgroup),    NONE,                UserType::Other),
            (NONE,                 ("121", Wextension),    NONE,                UserType::Other),
            (NONE,                 ("999", Unknown),       NONE,                UserType::Other),
        ];
        for (obo, orig, referred, expected) in cases {
            assert_eq!(
                user_type(&leg(obo, orig, referred)),
                expected,
                "{obo:?} {orig:?}"
            );
        }
    }

    #[test]
    fn group_prefers_on_behalf_of() {
        use DnType::{Wqueue, Wringgroup, Wroutepoint};
        #[rustfmt::skip]
        let cases = [
            (NONE,                NONE,                    None),
            (("800", Wqueue),     NONE,                    Some((GroupKind::Queue, "800"))),
            (NONE,                ("801", Wqueue),         Some((GroupKind::Queue, "801"))),
            (("600", Wringgroup), ("800", Wqueue),         Some((GroupKind::RingGroup, "600"))),
            (NONE,                ("ROUTER", Wroutepoint), None),
            (("", Wqueue),        NONE,                    None),
        ];
        for (obo, orig, expected) in cases {
            let got = group_of(&leg(obo, orig, NONE));
            assert_eq!(
                got,
                expected.map(|(k, d)| (k, d.to_owned())),
                "{obo:?} {orig:?}"
            );
        }
    }

    #[test]
    fn transfers_come_from_people() {
        use DnType::*;
        #[rustfmt::skip]
        let cases = [
            (NONE, false),
            (("120", Wextension), true),
            (("120", None), true),
            (("800", Wqueue), false),
            (("700", Wivr), false),
            (("ROUTER", Wroutepoint), false),
        ];
        for (referred, expected) in cases {
            assert_eq!(
                referred_by_person(&leg(NONE, NONE, referred)),
                expected,
                "{referred:?}"
            );
        }
    }

    #[test]
    fn caller_id_prefers_the_external_party() {
        let external = Participant {
            party_dn: "10007".into(),
            party_caller_id: "425630434343".into(),
            party_dn_type: DnType::Wexternalline,
            ..Participant::default()
        };
        let via_queue = Participant {
            party_dn: "800".into(),
            party_caller_id: "800".into(),
            party_dn_type: DnType::Wqueue,
            ..Participant::default()
        };
        let internal = Participant {
            party_dn: "121".into(),
            party_caller_id: "".into(),
            party_dn_type: DnType::Wextension,
            ..Participant::default()
        };
        #[rustfmt::skip]
        let cases = [
            (&external,  Some("999"), "425630434343"),
            (&via_queue, Some("425630434343"), "425630434343"),
            (&internal,  None, "121"),
        ];
        for (p, call, expected) in cases {
            assert_eq!(caller_id(p, call), expected);
        }
    }

    #[test]
    fn did_is_rule_name_else_number_else_empty() {
        let rules = BTreeMap::from([
            ("4930123456".to_owned(), "CompanyDID".to_owned()),
            ("+4940999".to_owned(), "Hamburg".to_owned()),
        ]);
        #[rustfmt::skip]
        let cases = [
            ("4930123456", "CompanyDID"),
            ("+4930123456", "CompanyDID"),
            ("4940999", "Hamburg"),
            ("4930000000", "4930000000"),
            ("", ""),
        ];
        for (number, expected) in cases {
            assert_eq!(did(&rules, number), expected, "{number}");
        }
        assert_eq!(did(&BTreeMap::new(), "123"), "123");
    }

    #[test]
    fn did_number_is_party_did_else_the_trunk_entry() {
        let trunks = BTreeMap::from([("10007".to_owned(), "+4930123456".to_owned())]);
        #[rustfmt::skip]
        let cases = [
            ("4940999", "10007", "4940999"),
            ("",        "10007", "+4930123456"),
            ("",        "10008", ""),
            ("",        "",      ""),
        ];
        for (party_did, trunk, expected) in cases {
            assert_eq!(
                did_number(party_did, trunk, &trunks),
                expected,
                "{party_did:?} {trunk}"
            );
        }
    }

    #[test]
    fn the_trunk_did_finds_its_rule_by_digits() {
        let rules = BTreeMap::from([("4930123456".to_owned(), "CompanyDID".to_owned())]);
        let trunks = BTreeMap::from([("10007".to_owned(), "+49 30 123456".to_owned())]);
        assert_eq!(did(&rules, did_number("", "10007", &trunks)), "CompanyDID");
    }

    #[test]
    fn stamp_uses_the_pbx_time_zone() {
        let at: Timestamp = "2021-07-01T14:56:49.900Z".parse().unwrap();
        #[rustfmt::skip]
        let cases = [
            (TimeZone::UTC, "210701145649"),
            (TimeZone::fixed(jiff::tz::offset(2)), "210701165649"),
            (TimeZone::fixed(jiff::tz::offset(-15)), "210630235649"),
        ];
        for (tz, expected) in cases {
            assert_eq!(stamp(at, &tz), expected);
        }
    }

    #[test]
    fn durations_round_to_whole_seconds() {
        let t0: Timestamp = "2021-07-01T14:56:49Z".parse().unwrap();
        let plus = |ms: i64| t0 + jiff::SignedDuration::from_millis(ms);
        #[rustfmt::skip]
        let cases = [(0, 0), (499, 0), (500, 1), (59_999, 60), (60_000, 60), (-3_000, 0)];
        for (ms, expected) in cases {
            assert_eq!(duration_secs(t0, plus(ms)), expected, "{ms} ms");
        }
        // Between whole milliseconds, as `answered-at` and `ended-at` show them: 0.742 s to
        // 2.242 s is 1.5 s there (1499.5 ms exactly), so 2 s.
        let at = |us: i64| t0 + jiff::SignedDuration::from_micros(us);
        assert_eq!(duration_secs(at(742_600), at(2_242_100)), 2);
    }
}
