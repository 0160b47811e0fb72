//! Robustness of [`parse_page`]: any body, and any mutation of a real page, is a page or an
//! error, never a panic, and a page never holds more rows than the body has (budget and
//! inputs: `crate::robustness`). The structure-aware property of the row-by-row rule is in
//! `recordings/xapi.rs`.

use proptest::prelude::*;
use serde_json::Value;

use super::{InboundRule, Page, Recording, parse_page};
use crate::robustness::{self, bytes, mutated_from, nested};

const RECORDINGS: &str = r#"{"@odata.context":"https://pbx/xapi/v1/$metadata#Recordings","value":[{"Id":7,"RecordingUrl":"150/[Mueller, Anna]_150-0123456789_20261124101530(1264).wav","StartTime":"2026-11-24T10:15:30+01:00","EndTime":"2026-11-24T10:16:30.5+01:00","FromDn":"150","ToDn":10007,"FromCallerNumber":"150","ToCallerNumber":"0123456789","FromDnType":"Extension","ToDnType":1,"CallType":"OutboundExternal","Extra":null},{"Id":"8","StartTime":null},[9],null],"@odata.nextLink":null}"#;

const INBOUND_RULES: &str = r#"{"value":[{"Id":1,"RuleName":"Sales","Data":"0301234567","Condition":"BasedOnDID"},{"Id":2,"RuleName":"After hours","Data":"*","Condition":"ForwardAll"},{"Id":null,"Condition":{"x":1}}]}"#;

fn seeds() -> Vec<Vec<u8>> {
    vec![
        RECORDINGS.as_bytes().to_vec(),
        INBOUND_RULES.as_bytes().to_vec(),
    ]
}

/// Every row is either kept or skipped: a page never holds more than the body's array.
fn check<T>(page: Result<Page<T>, String>, bytes: &[u8]) -> Result<(), TestCaseError> {
    if let Ok(page) = page {
        let rows = page.rows.len() + page.skipped.len();
        prop_assert!(
            rows <= bytes.len(),
            "{} rows from {} bytes",
            rows,
            bytes.len()
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(robustness::config())]

    #[test]
    fn arbitrary_bytes_are_a_page_or_an_error(bytes in bytes()) {
        check(parse_page::<Recording>(&bytes), &bytes)?;
        check(parse_page::<InboundRule>(&bytes), &bytes)?;
    }

    #[test]
    fn mutated_pages_are_a_page_or_an_error(bytes in mutated_from(seeds())) {
        let recordings = parse_page::<Recording>(&bytes);
        if let Ok(page) = &recordings {
            for recording in &page.rows {
                let _ = recording.times();
            }
        }
        check(recordings, &bytes)?;
        let rules = parse_page::<InboundRule>(&bytes);
        if let Ok(page) = &rules {
            for rule in &page.rows {
                let _ = rule.did_mapping();
            }
        }
        check(rules, &bytes)?;
        check(parse_page::<Value>(&bytes), &bytes)?;
    }
}

/// Nesting far beyond serde_json's recursion limit is refused, not a stack overflow.
#[test]
fn deep_nesting_is_an_error() {
    let url = nested("[", "0", "]", 50_000);
    let deep = format!(r#"{{"value":[{{"Id":1,"RecordingUrl":{url}}}]}}"#);
    assert!(parse_page::<Recording>(deep.as_bytes()).is_err());
    let deep = nested(r#"{"value":["#, "0", "]}", 50_000);
    assert!(parse_page::<Value>(deep.as_bytes()).is_err());
}
