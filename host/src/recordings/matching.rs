//! Which part of a finished call a recording belongs to (`3cx-api.md`, section 5).
//!
//! A recording belongs to the part whose extension is its `FromDn` or `ToDn`, whose other
//! party's number is the recording's number on the other side, and whose talk time overlaps the
//! recording's `[start, end]` most. Decisions where the spec leaves room:
//! - **Tolerance.** A part qualifies when its talk time widened by [`TOLERANCE`] on both sides
//!   overlaps the recording (touching counts: a recording's time stamps are rounded, and the host
//!   and the PBX measure from different events). How well it fits is its [`Fit`]: the overlap
//!   with the *unwidened* talk time first, then the widened overlap, then the call id. Among the
//!   parts of one call the best fit wins, then the earlier part; among calls waiting at the same
//!   time the best fit wins too (`sources`).
//! - **Numbers** are compared digit by digit (`+49 30 123` = `4930123`); when one has at least
//!   [`MIN_SUFFIX_DIGITS`] digits and the other ends with it they match too, so `0301234567`
//!   matches `+49301234567`. Numbers without digits (`anonymous`) match only themselves. A part
//!   whose other number is unknown (empty) accepts any.
//! - **Call id.** With the folder source the bracketed number of the file name is taken to be the
//!   PBX call id, but that is a model (`3cx-api.md`): it never rejects a file and only breaks a
//!   tie between calls that fit equally well otherwise, in favour of the call whose id it is.

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};

use crate::calls::CallPart;

/// How far apart the talk time and the recording time may lie and still match.
pub const TOLERANCE: Duration = Duration::from_secs(2);

/// The fewest digits for a suffix match of numbers.
pub const MIN_SUFFIX_DIGITS: usize = 6;

/// Where a recording's audio is to be had.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Origin {
    /// XAPI, by `Id` (download with `Pbx.DownloadRecording`).
    Xapi(u64),
    /// A WAV file in the recordings folder.
    File(std::path::PathBuf),
}

/// What is known about one recording, whichever source found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordingMeta {
    /// Where its audio is.
    pub origin: Origin,
    /// Its name for messages: XAPI's `RecordingUrl` or the file's path.
    pub name: String,
    /// The calling DN (XAPI `FromDn`; folder: the calling number).
    pub from_dn: String,
    /// The called DN (XAPI `ToDn`; folder: the called number).
    pub to_dn: String,
    /// The calling number.
    pub from_number: String,
    /// The called number.
    pub to_number: String,
    /// When recording started.
    pub start: Timestamp,
    /// When it ended.
    pub end: Timestamp,
    /// The PBX call id, when the source tells it (folder: the bracketed number).
    pub pbx_call_id: Option<u64>,
}

impl RecordingMeta {
    /// How messages name this recording, e.g. `XAPI recording 7 (150/[..].wav)`, or
    /// `XAPI recording 7` when XAPI gave no `RecordingUrl`.
    pub fn label(&self) -> String {
        match &self.origin {
            Origin::Xapi(id) if self.name.is_empty() => format!("XAPI recording {id}"),
            Origin::Xapi(id) => format!("XAPI recording {id} ({})", self.name),
            Origin::File(path) => path.display().to_string(),
        }
    }
}

/// How well a recording fits a part of a call; greater is better (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Fit {
    /// The overlap of the recording with the talk time.
    exact: SignedDuration,
    /// The overlap with the talk time widened by [`TOLERANCE`] on both sides.
    widened: SignedDuration,
    /// Whether the recording names the call's id (the folder's bracketed number).
    same_call: bool,
}

/// The index in `parts` of the part of call `pbx_call_id` that `recording` belongs to, with
/// how well it fits, if any part qualifies; see the module docs.
pub fn best_part(
    parts: &[CallPart],
    pbx_call_id: u64,
    recording: &RecordingMeta,
) -> Option<(usize, Fit)> {
    let tolerance = SignedDuration::try_from(TOLERANCE).unwrap_or_default();
    let same_call = recording.pbx_call_id == Some(pbx_call_id);
    let mut best: Option<(usize, Fit)> = None;
    for (i, part) in parts.iter().enumerate() {
        let other = if part.extension == recording.from_dn {
            &recording.to_number
        } else if part.extension == recording.to_dn {
            &recording.from_number
        } else {
            continue;
        };
        if !part.other_number.is_empty() && !numbers_match(&part.other_number, other) {
            continue;
        }
        let widened = overlap(
            part.talk_start - tolerance,
            part.talk_end + tolerance,
            recording.start,
            recording.end,
        );
        if widened < SignedDuration::ZERO {
            continue;
        }
        let exact = overlap(
            part.talk_start,
            part.talk_end,
            recording.start,
            recording.end,
        );
        let fit = Fit {
            exact,
            widened,
            same_call,
        };
        if best.is_none_or(|(_, b)| fit > b) {
            best = Some((i, fit));
        }
    }
    best
}

/// The length of the intersection of `[a0, a1]` and `[b0, b1]`; negative when apart.
fn overlap(a0: Timestamp, a1: Timestamp, b0: Timestamp, b1: Timestamp) -> SignedDuration {
    a1.min(b1).duration_since(a0.max(b0))
}

/// Whether two phone numbers are the same; see the module docs.
pub fn numbers_match(a: &str, b: &str) -> bool {
    let digits = |s: &str| s.chars().filter(char::is_ascii_digit).collect::<String>();
    let (da, db) = (digits(a), digits(b));
    if da.is_empty() || db.is_empty() {
        return a.trim().eq_ignore_ascii_case(b.trim());
    }
    if da == db {
        return true;
    }
    // Trunk and international prefixes (`0`, `00`) differ; the subscriber part does not.
    let (da, db) = (da.trim_start_matches('0'), db.trim_start_matches('0'));
    let (short, long) = if da.len() <= db.len() {
        (da, db)
    } else {
        (db, da)
    };
    short.len() >= MIN_SUFFIX_DIGITS && long.ends_with(short)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calls::event::CallId;

    /// A time `s` seconds into the test's day.
    fn t(s: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + s).unwrap()
    }

    fn part(link: u32, extension: &str, other: &str, start: i64, end: i64) -> CallPart {
        CallPart {
            id: CallId {
                stamp: "261124101530".to_owned(),
                pbx_call_id: 501,
                link,
            },
            extension: extension.to_owned(),
            other_number: other.to_owned(),
            talk_start: t(start),
            talk_end: t(end),
        }
    }

    /// An inbound recording: external `from` to extension `to`.
    fn rec(from: &str, to: &str, start: i64, end: i64, call: Option<u64>) -> RecordingMeta {
        RecordingMeta {
            origin: Origin::Xapi(1),
            name: "r.wav".to_owned(),
            from_dn: "10000".to_owned(),
            to_dn: to.to_owned(),
            from_number: from.to_owned(),
            to_number: to.to_owned(),
            start: t(start),
            end: t(end),
            pbx_call_id: call,
        }
    }

    #[test]
    fn matches_recordings_to_parts() {
        // Scenario 5: 120 talks 5..35, blind transfer, 130 talks 40..100; then 120 again 100..110.
        let parts = [
            part(1, "120", "+49 425630434343", 5, 35),
            part(2, "130", "0425630434343", 40, 100),
            part(3, "120", "425630434343", 100, 110),
        ];
        let x = "425630434343";
        for (recording, expected, why) in [
            (rec(x, "120", 5, 35, None), Some(0), "exact"),
            (rec(x, "130", 40, 100, None), Some(1), "second part"),
            (
                rec(x, "120", 99, 110, None),
                Some(2),
                "same extension, most overlap",
            ),
            (rec(x, "120", 36, 37, None), Some(0), "within the tolerance"),
            (rec(x, "120", 38, 39, None), None, "beyond the tolerance"),
            (rec(x, "140", 5, 35, None), None, "another extension"),
            (
                rec("0301234567", "120", 5, 35, None),
                None,
                "another number",
            ),
            (rec(x, "120", 5, 35, Some(501)), Some(0), "same call id"),
            (
                rec(x, "120", 5, 35, Some(502)),
                Some(0),
                "another call id never rejects",
            ),
        ] {
            let part = best_part(&parts, 501, &recording).map(|(part, _)| part);
            assert_eq!(part, expected, "{why}");
        }
    }

    #[test]
    fn matches_outbound_recordings_by_from_dn() {
        let parts = [part(1, "150", "0123456789", 0, 60)];
        let recording = RecordingMeta {
            from_dn: "150".to_owned(),
            to_dn: "10007".to_owned(),
            from_number: "150".to_owned(),
            to_number: "0123456789".to_owned(),
            ..rec("", "", 0, 60, None)
        };
        assert_eq!(best_part(&parts, 501, &recording).map(|(p, _)| p), Some(0));
    }

    #[test]
    fn the_call_id_only_breaks_ties() {
        let parts = [part(1, "120", "425630434343", 5, 35)];
        let fit = |start, end, call| {
            best_part(&parts, 501, &rec("425630434343", "120", start, end, call))
                .unwrap()
                .1
        };
        assert!(fit(5, 35, Some(501)) > fit(5, 35, Some(502)), "a tie");
        assert_eq!(fit(5, 35, None), fit(5, 35, Some(502)));
        assert!(
            fit(5, 35, Some(502)) > fit(6, 35, Some(501)),
            "more overlap beats the call id"
        );
    }

    #[test]
    fn compares_numbers() {
        for (a, b, same) in [
            ("+49 30 1234567", "4930-1234567", true),
            ("0301234567", "+49301234567", true),
            ("0049301234567", "+49301234567", true),
            ("000123", "123", false),
            ("1234", "991234", false),
            ("120", "120", true),
            ("anonymous", "Anonymous", true),
            ("anonymous", "123456", false),
            ("", "123", false),
        ] {
            assert_eq!(numbers_match(a, b), same, "{a} vs {b}");
        }
    }

    #[test]
    fn a_part_with_an_unknown_number_takes_any() {
        let parts = [part(1, "120", "", 0, 10)];
        let recording = rec("999", "120", 0, 10, None);
        assert_eq!(best_part(&parts, 1, &recording).map(|(p, _)| p), Some(0));
    }
}
