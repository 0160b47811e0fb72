//! Robustness of [`parse_snapshot`] and [`parse_participant`]: any body, and any mutation of
//! a real one, is parsed or refused, never a panic (budget and inputs: `crate::robustness`).
//! The structure-aware properties of the tolerance rule are in `pbx/proptests.rs`.

use proptest::prelude::*;

use super::{parse_participant, parse_snapshot};
use crate::robustness::{self, bytes, mutated_from, nested};

const PARTICIPANT: &str = r#"{"id":8106,"status":"Connected","dn":"150","party_caller_name":"Anna Müller","party_dn":"10007","party_caller_id":"0123456789","party_did":"0301234567","device_id":"sip:150@127.0.0.1:5060","party_dn_type":"Wexternalline","direct_control":false,"callid":4711,"legid":2,"originated_by_dn":"","originated_by_type":"None","referred_by_dn":null,"referred_by_type":"None","on_behalf_of_dn":"","on_behalf_of_type":"None","unknown_extra":[1,{"x":null}]}"#;

fn snapshot() -> String {
    format!(
        r#"[{{"dn":"150","type":"Wextension","devices":[{{"dn":"150","device_id":"sip:150@127.0.0.1:5060","user_agent":"Yealink"}}],"participants":[{PARTICIPANT}]}},{{"dn":"800","type":"Wqueue","devices":null,"participants":[{{"id":9,"callid":4712,"dn":null}}]}}]"#
    )
}

fn seeds() -> Vec<Vec<u8>> {
    vec![PARTICIPANT.as_bytes().to_vec(), snapshot().into_bytes()]
}

proptest! {
    #![proptest_config(robustness::config())]

    #[test]
    fn arbitrary_bytes_are_parsed_or_refused(bytes in bytes()) {
        let _ = parse_snapshot(&bytes);
        let _ = parse_participant(&bytes, "150");
    }

    #[test]
    fn mutated_bodies_are_parsed_or_refused(bytes in mutated_from(seeds())) {
        if let Ok(snapshot) = parse_snapshot(&bytes) {
            for dn in &snapshot.dns {
                prop_assert!(!dn.dn.is_empty());
                for participant in &dn.participants {
                    prop_assert!(!participant.dn.is_empty());
                }
            }
        }
        if let Ok(participant) = parse_participant(&bytes, "150") {
            prop_assert!(!participant.dn.is_empty());
        }
    }
}

/// Nesting far beyond serde_json's recursion limit is refused, not a stack overflow.
#[test]
fn deep_nesting_is_refused() {
    let deep = nested("[", "0", "]", 50_000);
    assert!(parse_snapshot(deep.as_bytes()).is_err());
    let deep = nested(r#"{"id":"#, "0", "}", 50_000);
    assert!(parse_participant(deep.as_bytes(), "150").is_err());
}
