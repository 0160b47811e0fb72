//! The Calls records of spec 7.2 for the scenarios of section 8.

use super::*;
use callhook_plugin_sdk::UserInfo;

/// 2026-11-28 09:15:00Z, when the spec's example call was first seen.
const FIRST_SEEN: u64 = 1_795_857_300_000;

fn ended(direction: Direction, finishtype: FinishType, seconds: u32) -> Ended {
    let answered = finishtype == FinishType::Ok;
    Ended {
        id: "261128101500_782-1".into(),
        direction,
        callerid: "0301234567".into(),
        user: "120".into(),
        did: "CompanyDID".into(),
        finishtype,
        transfer: false,
        duration_seconds: seconds,
        title: "CompanyDID: answered incoming call from 0301234567 to 120, 00:01:00".into(),
        call_started_at: FIRST_SEEN,
        offered_at: FIRST_SEEN + 42,
        answered_at: answered.then_some(FIRST_SEEN + 5_999),
        ended_at: FIRST_SEEN + 65_999,
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
fn an_answered_incoming_call_follows_the_spec_example() {
    let record = call_record(
        &ended(Direction::Incoming, FinishType::Ok, 60),
        Some(&Party::Contact("4876876000001036016".into())),
        Some("4876876000000225013"),
        None,
    );
    assert_eq!(
        Value::Object(record),
        json!({"Subject":"CompanyDID: answered incoming call from 0301234567 to 120, 00:01:00",
            "Call_Type":"Inbound","Call_Start_Time":"2026-11-28T09:15:05+00:00",
            "Call_Duration":"01:00",
            "Description":"CompanyDID: answered incoming call from 0301234567 to 120, 00:01:00\n\
                Extension: 120 Anna Mueller\nCall: 261128101500_782-1.120",
            "Who_Id":{"id":"4876876000001036016"},"Owner":{"id":"4876876000000225013"}})
    );
}

#[test]
fn call_types_durations_and_statuses() {
    // (direction, finish type, seconds) → (Call_Type, Call_Duration, Outbound_Call_Status)
    type Case = (
        Direction,
        FinishType,
        u32,
        &'static str,
        Option<&'static str>,
        Option<&'static str>,
    );
    let cases: [Case; 5] = [
        (
            Direction::Incoming,
            FinishType::Ok,
            30,
            "Inbound",
            Some("00:30"),
            None,
        ),
        (
            Direction::Incoming,
            FinishType::Missed,
            0,
            "Missed",
            None,
            None,
        ),
        (
            Direction::Outgoing,
            FinishType::Ok,
            60,
            "Outbound",
            Some("01:00"),
            Some("Completed"),
        ),
        (
            Direction::Outgoing,
            FinishType::Missed,
            0,
            "Outbound",
            Some("00:00"),
            Some("Completed"),
        ),
        (
            Direction::Incoming,
            FinishType::Ok,
            3725,
            "Inbound",
            Some("62:05"),
            None,
        ),
    ];
    for (direction, finish, seconds, call_type, duration, status) in cases {
        let record = call_record(&ended(direction, finish, seconds), None, None, None);
        let text = |field: &str| record.get(field).and_then(Value::as_str);
        assert_eq!(
            (
                text("Call_Type"),
                text("Call_Duration"),
                text("Outbound_Call_Status")
            ),
            (Some(call_type), duration, status),
            "{direction:?} {finish:?} {seconds}"
        );
    }
}

#[test]
fn a_missed_part_starts_when_it_was_offered() {
    let record = call_record(
        &ended(Direction::Incoming, FinishType::Missed, 0),
        None,
        None,
        None,
    );
    assert_eq!(record["Call_Start_Time"], "2026-11-28T09:15:00+00:00");
    assert!(!record.contains_key("Who_Id") && !record.contains_key("Owner"));
}

#[test]
fn a_lead_is_linked_as_what_id_and_the_key_goes_into_the_id_field() {
    let mut missed_in_queue = ended(Direction::Incoming, FinishType::Missed, 0);
    missed_in_queue.user = "800".into();
    missed_in_queue.queue = Some("800".into());
    missed_in_queue.user_info = None;
    let record = call_record(
        &missed_in_queue,
        Some(&Party::Lead("77".into())),
        None,
        Some("Callhook_Id"),
    );
    assert_eq!(record["What_Id"], json!({"id":"77"}));
    assert_eq!(record["$se_module"], "Leads");
    assert_eq!(record["Callhook_Id"], "261128101500_782-1.800");
    assert_eq!(
        record["Description"],
        "CompanyDID: answered incoming call from 0301234567 to 120, 00:01:00\nExtension: 800\n\
         Queue: 800\nCall: 261128101500_782-1.800"
    );
}

#[test]
fn answers_are_read() {
    assert_eq!(first_id(&json!({"data":[{"id":"5"}]})), Some("5".into()));
    assert_eq!(first_id(&json!({"data":[]})), None);
    assert_eq!(
        created_id(&json!({"data":[{"code":"SUCCESS","details":{"id":"9"},"status":"success"}]})),
        Some("9".into())
    );
    let page = json!({"users":[{"id":"1","email":"bob@example.com"},
        {"id":"2","email":"Anna@Example.com"}],"info":{"more_records":true}});
    assert_eq!(
        user_in_page(&page, "anna@example.com"),
        (Some("2".into()), true)
    );
    assert_eq!(user_in_page(&page, "eve@example.com"), (None, true));
    assert_eq!(
        description(&json!({"data":[{"Description":"a\nb"}]})),
        "a\nb"
    );
    assert_eq!(description(&json!({"data":[{}]})), "");
}
