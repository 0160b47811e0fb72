//! The `title` of end events: one readable sentence per call part (the set is in `calls.rs`).

use std::fmt::Write as _;

use crate::calls::event::{Direction, FinishType};
use crate::calls::fields::GroupKind;

/// Everything a title says about one ended part.
#[derive(Debug, Clone)]
pub(super) struct Facts<'a> {
    /// Incoming or outgoing.
    pub direction: Direction,
    /// The inbound rule (or DID); empty for none and for outgoing calls.
    pub did: &'a str,
    /// The external number (or the other extension of an internal call).
    pub caller_id: &'a str,
    /// The extension, or the group's DN when `group` is set.
    pub user: &'a str,
    /// Whether the part talked.
    pub finish: FinishType,
    /// Whether the part ended by passing the call on.
    pub transfer: bool,
    /// Talk time in whole seconds.
    pub duration_secs: u32,
    /// Set when an unanswered call ended in this queue or ring group.
    pub group: Option<GroupKind>,
    /// Whether the end time was inferred from a snapshot after a reconnect.
    pub approximate: bool,
}

/// `HH:MM:SS`; hours grow past two digits rather than wrap.
pub(super) fn clock(secs: u32) -> String {
    format!("{:02}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60)
}

/// The title sentence of an end event.
pub(super) fn ended(f: &Facts<'_>) -> String {
    let mut s = String::new();
    if f.direction == Direction::Incoming && !f.did.is_empty() {
        let _ = write!(s, "{}: ", f.did);
    }
    s.push_str(match f.finish {
        FinishType::Ok => "answered ",
        FinishType::Missed => "missed ",
    });
    let _ = match (f.direction, f.group) {
        (Direction::Incoming, None) => {
            write!(s, "incoming call from {} to {}", f.caller_id, f.user)
        }
        (Direction::Incoming, Some(GroupKind::Queue)) => {
            write!(s, "incoming call from {} in queue {}", f.caller_id, f.user)
        }
        (Direction::Incoming, Some(GroupKind::RingGroup)) => {
            write!(
                s,
                "incoming call from {} in ring group {}",
                f.caller_id, f.user
            )
        }
        (Direction::Outgoing, _) => write!(s, "outgoing call from {} to {}", f.user, f.caller_id),
    };
    if f.finish == FinishType::Ok {
        let _ = match f.transfer {
            true => write!(s, ", transferred after {}", clock(f.duration_secs)),
            false => write!(s, ", {}", clock(f.duration_secs)),
        };
    }
    if f.approximate {
        s.push_str(" (end time approximate)");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_formats_hours_minutes_seconds() {
        #[rustfmt::skip]
        let cases = [(0, "00:00:00"), (133, "00:02:13"), (3600, "01:00:00"), (360_000, "100:00:00")];
        for (secs, expected) in cases {
            assert_eq!(clock(secs), expected);
        }
    }

    #[test]
    fn titles_cover_every_kind_of_end() {
        use Direction::*;
        use FinishType::*;
        let x = "425630434343";
        let base = Facts {
            direction: Incoming,
            did: "CompanyDID",
            caller_id: x,
            user: "120",
            finish: Ok,
            transfer: false,
            duration_secs: 133,
            group: None,
            approximate: false,
        };
        #[rustfmt::skip]
        let cases = [
            (base.clone(),
             "CompanyDID: answered incoming call from 425630434343 to 120, 00:02:13"),
            (Facts { did: "", ..base.clone() },
             "answered incoming call from 425630434343 to 120, 00:02:13"),
            (Facts { transfer: true, duration_secs: 30, ..base.clone() },
             "CompanyDID: answered incoming call from 425630434343 to 120, transferred after 00:00:30"),
            (Facts { approximate: true, ..base.clone() },
             "CompanyDID: answered incoming call from 425630434343 to 120, 00:02:13 (end time approximate)"),
            (Facts { finish: Missed, duration_secs: 0, ..base.clone() },
             "CompanyDID: missed incoming call from 425630434343 to 120"),
            (Facts { finish: Missed, user: "800", group: Some(GroupKind::Queue), ..base.clone() },
             "CompanyDID: missed incoming call from 425630434343 in queue 800"),
            (Facts { finish: Missed, user: "600", group: Some(GroupKind::RingGroup), ..base.clone() },
             "CompanyDID: missed incoming call from 425630434343 in ring group 600"),
            (Facts { finish: Missed, approximate: true, ..base.clone() },
             "CompanyDID: missed incoming call from 425630434343 to 120 (end time approximate)"),
            (Facts { direction: Outgoing, did: "", duration_secs: 60, ..base.clone() },
             "answered outgoing call from 120 to 425630434343, 00:01:00"),
            (Facts { direction: Outgoing, did: "ignored", transfer: true, ..base.clone() },
             "answered outgoing call from 120 to 425630434343, transferred after 00:02:13"),
            (Facts { direction: Outgoing, did: "", finish: Missed, ..base.clone() },
             "missed outgoing call from 120 to 425630434343"),
        ];
        for (facts, expected) in cases {
            assert_eq!(ended(&facts), expected);
        }
    }
}
