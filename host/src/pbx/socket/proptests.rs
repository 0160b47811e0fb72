//! Robustness of [`parse_frame`]: any text, and any mutation of a real frame, is a frame or a
//! [`FrameError`], never a panic (budget and inputs: `crate::robustness`).

use proptest::prelude::*;

use super::{Entity, Event, FrameError, parse_frame};
use crate::robustness::{self, bytes, mutated_from, nested};

/// Frames as the PBX sends them, one per event type.
fn seeds() -> Vec<Vec<u8>> {
    [
        r#"{"sequence":18,"event":{"event_type":0,"entity":"/callcontrol/150/participants/8106","attached_data":null}}"#,
        r#"{"sequence":19,"event":{"event_type":"1","entity":"/callcontrol/150/participants/8106","attached_data":null}}"#,
        r#"{"sequence":21,"event":{"event_type":2,"entity":"/callcontrol/150/participants/8106","attached_data":{"dtmf_input":"1"}}}"#,
        r#"{"sequence":22,"event":{"event_type":3,"entity":"/callcontrol/150/participants/8106","attached_data":null}}"#,
        r#"{"event":{"event_type":7,"entity":"/callcontrol/000/devices/x"}}"#,
    ]
    .into_iter()
    .map(|frame| frame.as_bytes().to_vec())
    .collect()
}

/// Parses `bytes` as the socket would hand them over (text frames are UTF-8; lossy here so
/// invalid sequences still reach the parser as replacement characters).
fn parse(bytes: &[u8]) -> Result<Event, FrameError> {
    parse_frame(&String::from_utf8_lossy(bytes)).map(|frame| frame.event)
}

proptest! {
    #![proptest_config(robustness::config())]

    #[test]
    fn arbitrary_bytes_are_a_frame_or_an_error(bytes in bytes()) {
        let _ = parse(&bytes);
    }

    #[test]
    fn arbitrary_text_is_a_frame_or_an_error(text in ".{0,512}") {
        let _ = parse_frame(&text);
    }

    #[test]
    fn mutated_frames_are_a_frame_or_an_error(bytes in mutated_from(seeds())) {
        if let Ok(Event::Upsert(entity) | Event::Remove(entity)) = parse(&bytes) {
            // A participant entity always names a DN.
            prop_assert!(!entity.dn.is_empty());
        }
    }

    #[test]
    fn entity_paths_round_trip(path in "(/callcontrol/)?[^/]{0,6}(/participants/)?[0-9a-z+-]{0,22}/?") {
        if let Some(entity) = Entity::parse(&path) {
            prop_assert_eq!(Entity::parse(&entity.path()), Some(entity));
        }
    }
}

/// Nesting far beyond serde_json's recursion limit is refused (or skipped, in an ignored
/// field, which serde_json does without recursing), not a stack overflow.
#[test]
fn deep_nesting_is_an_error() {
    for (open, close) in [("[", "]"), (r#"{"a":"#, "}")] {
        let deep = nested(
            &format!(r#"{{"event":{open}"#),
            "0",
            &format!("{close}}}"),
            50_000,
        );
        assert!(parse_frame(&deep).is_err(), "{open}");
    }
}
