//! The parameters of spec 6.2 for the scenarios of section 8.

use super::*;
use crate::settings::Settings;

/// 2026-11-28 09:15:00Z, when the spec's example call was first seen.
const FIRST_SEEN: u64 = 1_795_857_300_000;

fn settings(pairs: &[(&str, &str)]) -> Settings {
    let mut all = vec![("portal", "https://b24.example"), ("client_id", "c")];
    all.extend_from_slice(pairs);
    Settings::resolve(all, |_| Some("secret".into())).unwrap()
}

fn ended(user: &str, finishtype: FinishType, queue: Option<&str>) -> Ended {
    let answered = finishtype == FinishType::Ok;
    Ended {
        id: "261128101500_782-1".into(),
        direction: Direction::Incoming,
        callerid: "0301234567".into(),
        user: user.into(),
        did: "CompanyDID".into(),
        finishtype,
        transfer: false,
        duration_seconds: if answered { 30 } else { 0 },
        title: "CompanyDID: answered incoming call from 0301234567 to 122, 00:00:30".into(),
        call_started_at: FIRST_SEEN,
        offered_at: FIRST_SEEN,
        answered_at: answered.then_some(FIRST_SEEN + 8_000),
        ended_at: FIRST_SEEN + 38_000,
        callerid_e164: Some("+49301234567".into()),
        user_info: None,
        queue: queue.map(str::to_string),
        internal: false,
    }
}

#[test]
fn ids_numbers_and_file_names() {
    assert_eq!(call_without_link("261128101500_782-1"), "261128101500_782");
    assert_eq!(call_without_link("261128101500_782-12"), "261128101500_782");
    assert_eq!(
        record_key("261128101500_782-1", "120"),
        "261128101500_782-1.120"
    );
    assert_eq!(
        external_number("0301234567", Some("+49301234567")),
        "+49301234567"
    );
    assert_eq!(external_number("0301234567", None), "0301234567");
    assert_eq!(
        file_name("https://pbx.example/webapi/recording/261128101500_782-1-1.mp3?expires=1&sig=ab"),
        "261128101500_782-1-1.mp3"
    );
    assert_eq!(
        file_name("261128101500_782-1-2.mp3"),
        "261128101500_782-1-2.mp3"
    );
}

#[test]
fn register_follows_the_spec_example() {
    let user = UserParam::Inner("121".into());
    let registration = Registration {
        user: &user,
        phone: "+49301234567",
        direction: Direction::Incoming,
        offered_at: FIRST_SEEN + 999,
        external_call_id: "261128101500_782",
        show: false,
        crm_create: false,
    };
    assert_eq!(
        Value::Object(registration.params()),
        serde_json::json!({"USER_PHONE_INNER":"121","PHONE_NUMBER":"+49301234567","TYPE":2,
            "CALL_START_DATE":"2026-11-28T09:15:00+00:00","EXTERNAL_CALL_ID":"261128101500_782",
            "SHOW":0,"CRM_CREATE":0})
    );
    let outgoing = Registration {
        user: &UserParam::Id(77),
        direction: Direction::Outgoing,
        show: true,
        crm_create: true,
        ..registration
    }
    .params();
    assert_eq!(
        (
            &outgoing["USER_ID"],
            &outgoing["TYPE"],
            &outgoing["SHOW"],
            &outgoing["CRM_CREATE"]
        ),
        (&json!(77), &json!(1), &json!(1), &json!(1))
    );
    assert!(!outgoing.contains_key("USER_PHONE_INNER"));
}

#[test]
fn a_withheld_number_is_registered_without_crm_create() {
    let user = UserParam::Inner("121".into());
    let registration = Registration {
        user: &user,
        phone: "anonymous",
        direction: Direction::Incoming,
        offered_at: FIRST_SEEN,
        external_call_id: "261128101500_782",
        show: false,
        crm_create: true,
    };
    let params = registration.params();
    assert_eq!(
        (&params["PHONE_NUMBER"], &params["CRM_CREATE"]),
        (&json!("anonymous"), &json!(0)),
        "the call is registered, but no lead is made for a withheld number"
    );
}

#[test]
fn finish_carries_duration_and_status() {
    let answered = ended("122", FinishType::Ok, Some("800"));
    assert_eq!(
        Value::Object(finish_params(
            "externalCall.1",
            &UserParam::Inner("122".into()),
            &answered
        )),
        serde_json::json!({"CALL_ID":"externalCall.1","USER_PHONE_INNER":"122","DURATION":30,
            "STATUS_CODE":"200"})
    );
    let missed = ended("800", FinishType::Missed, Some("800"));
    let params = finish_params("externalCall.1", &UserParam::Id(9), &missed);
    assert_eq!(
        (&params["DURATION"], &params["STATUS_CODE"]),
        (&json!(0), &json!("304"))
    );
}

#[test]
fn users_of_parts_and_of_calls_missed_in_a_queue() {
    let plain = settings(&[]);
    let mapped = settings(&[("users.122", "77"), ("users.800", "12")]);
    let fallback = settings(&[("default_user", "5")]);
    let registered = UserParam::Inner("121".into());

    // An agent's part: its own extension, or its mapping.
    let agent = ended("122", FinishType::Ok, Some("800"));
    assert!(!missed_in_queue(&agent));
    assert_eq!(
        finish_user(&plain, &agent, &registered),
        UserParam::Inner("122".into())
    );
    assert_eq!(finish_user(&mapped, &agent, &registered), UserParam::Id(77));
    assert_eq!(
        registration_user_at_end(&plain, &agent).unwrap(),
        UserParam::Inner("122".into())
    );

    // Missed at queue level: users.800, else the registered user (finish) or default_user
    // (registration), else an error naming both keys.
    let queue = ended("800", FinishType::Missed, Some("800"));
    assert!(missed_in_queue(&queue));
    assert_eq!(finish_user(&plain, &queue, &registered), registered);
    assert_eq!(finish_user(&mapped, &queue, &registered), UserParam::Id(12));
    assert_eq!(
        registration_user_at_end(&mapped, &queue).unwrap(),
        UserParam::Id(12)
    );
    assert_eq!(
        registration_user_at_end(&fallback, &queue).unwrap(),
        UserParam::Id(5)
    );
    assert_eq!(
        registration_user_at_end(&plain, &queue)
            .unwrap_err()
            .message(),
        "bitrix24: no Bitrix24 user for the call missed in queue 800: set `users.800` or \
         `default_user`"
    );

    // A transfer target that never answered is not a queue's miss.
    let target = ended("130", FinishType::Missed, None);
    assert!(!missed_in_queue(&target));
}

#[test]
fn open_registrations_are_stored_as_the_spec_shows() {
    let open = Open {
        call_id: "externalCall.716f".into(),
        user: UserParam::Inner("121".into()),
    };
    let text = serde_json::to_string(&open).unwrap();
    assert_eq!(
        text,
        r#"{"call_id":"externalCall.716f","user":{"USER_PHONE_INNER":"121"}}"#
    );
    assert_eq!(serde_json::from_str::<Open>(&text).unwrap(), open);
    let by_id: Open = serde_json::from_str(r#"{"call_id":"x","user":{"USER_ID":77}}"#).unwrap();
    assert_eq!(by_id.user, UserParam::Id(77));
}

#[test]
fn call_not_found_is_recognised_by_its_description() {
    assert!(call_not_found(&json!({"error":"ERROR_CORE",
        "error_description":"Call is not found (call should be registered prior to finishing)"})));
    assert!(!call_not_found(
        &json!({"error":"ERROR_CORE","error_description":"Other"})
    ));
    assert!(!call_not_found(&Value::Null));
}
