//! The body of spec section 5.2 for the parts of the scenarios of section 8, and the readings
//! of Pipedrive's answers.

use super::*;
use callhook_plugin_sdk::{Direction, Ended, FinishType, UserInfo};

/// Scenario 1: 120 answers a call from 0301234567 for 60 s (the spec's example).
fn answered() -> Ended {
    Ended {
        id: "261128101500_782-1".into(),
        direction: Direction::Incoming,
        callerid: "0301234567".into(),
        user: "120".into(),
        did: "CompanyDID".into(),
        finishtype: FinishType::Ok,
        transfer: false,
        duration_seconds: 60,
        title: "CompanyDID: answered incoming call from 0301234567 to 120, 00:01:00".into(),
        call_started_at: 1_795_857_300_000,
        offered_at: 1_795_857_300_000,
        answered_at: Some(1_795_857_305_999),
        ended_at: 1_795_857_365_999,
        callerid_e164: Some("+49301234567".into()),
        user_info: Some(UserInfo {
            name: "Anna Mueller".into(),
            email: Some("anna@example.com".into()),
        }),
        queue: None,
        internal: false,
    }
}

#[test]
fn answered_incoming_call_is_the_spec_example() {
    let ended = answered();
    assert_eq!(
        create_body(&Part::of(&ended), Some(12), Some(34)),
        json!({"subject":"CompanyDID: answered incoming call from 0301234567 to 120, 00:01:00",
          "outcome":"connected","from_phone_number":"+49301234567","to_phone_number":"120",
          "start_time":"2026-11-28 09:15:05","end_time":"2026-11-28 09:16:05","duration":"60",
          "note":"CompanyDID: answered incoming call from 0301234567 to 120, 00:01:00<br>Extension: 120 Anna Mueller<br>Call: 261128101500_782-1.120",
          "user_id":12,"person_id":34})
    );
}

#[test]
fn missed_queue_call_starts_when_offered_and_lasts_zero() {
    let ended = Ended {
        user: "800".into(),
        finishtype: FinishType::Missed,
        duration_seconds: 0,
        answered_at: None,
        ended_at: 1_795_857_330_000,
        title: "CompanyDID: missed incoming call from 0301234567 to 800".into(),
        user_info: None,
        queue: Some("800".into()),
        ..answered()
    };
    assert_eq!(
        create_body(&Part::of(&ended), None, None),
        json!({"subject":"CompanyDID: missed incoming call from 0301234567 to 800",
          "outcome":"no_answer","from_phone_number":"+49301234567","to_phone_number":"800",
          "start_time":"2026-11-28 09:15:00","end_time":"2026-11-28 09:15:30","duration":"0",
          "note":"CompanyDID: missed incoming call from 0301234567 to 800<br>Extension: 800<br>Queue: 800<br>Call: 261128101500_782-1.800"})
    );
}

#[test]
fn outgoing_call_goes_from_the_extension() {
    let ended = Ended {
        direction: Direction::Outgoing,
        ..answered()
    };
    let body = create_body(&Part::of(&ended), None, None);
    assert_eq!(
        (&body["from_phone_number"], &body["to_phone_number"]),
        (&json!("120"), &json!("+49301234567"))
    );
}

#[test]
fn a_person_matches_on_all_digits_only() {
    let answer = json!({"success":true,"data":{"items":[
        {"result_score":1.0,"item":{"id":7,"phones":["+49 30 1234567 99"]}},
        {"result_score":0.5,"item":{"id":8,"phones":["030 111", "+49 (30) 1234567"]}}]}});
    assert_eq!(matching_person(&answer, "+49301234567"), Some(8));
    assert_eq!(matching_person(&answer, "0301234567"), None);
    assert_eq!(
        matching_person(&json!({"success":true,"data":{"items":[]}}), "+49"),
        None
    );
}

#[test]
fn a_user_matches_on_the_whole_email() {
    let answer = json!({"success":true,"data":[
        {"id":11,"email":"anna@example.com.au"},{"id":12,"email":"Anna@Example.com"}]});
    assert_eq!(matching_user(&answer, "anna@example.com"), Some(12));
    assert_eq!(
        matching_user(&json!({"success":true,"data":null}), "anna@example.com"),
        None
    );
}

#[test]
fn file_names_are_the_last_segment_without_the_query() {
    assert_eq!(
        file_name("https://pbx.example.com/recordings/261128101500_782-1-1.mp3?exp=1&sig=a"),
        "261128101500_782-1-1.mp3"
    );
    assert_eq!(file_name("http://127.0.0.1:1/r/a-2.mp3"), "a-2.mp3");
}
