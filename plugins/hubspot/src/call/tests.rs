//! The bodies of spec section 4.2, for the parts of the scenarios of section 8.

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
        answered_at: Some(1_795_857_305_000),
        ended_at: 1_795_857_365_000,
        callerid_e164: Some("+49301234567".into()),
        user_info: Some(UserInfo {
            name: "Anna Mueller".into(),
            email: Some("anna@example.com".into()),
        }),
        queue: None,
        internal: false,
    }
}

fn settings(pairs: &[(&str, &str)]) -> Settings {
    Settings::parse(pairs.iter().copied()).unwrap()
}

#[test]
fn answered_incoming_call_is_the_spec_example() {
    let ended = answered();
    let body = create_body(
        &Part::of(&ended),
        &settings(&[("id_property", "callhook_id")]),
        Some("77"),
        Some("501"),
    );
    assert_eq!(
        body,
        json!({"properties":{"hs_timestamp":"2026-11-28T09:15:05.000Z",
          "hs_call_title":"CompanyDID: answered incoming call from 0301234567 to 120, 00:01:00",
          "hs_call_body":"CompanyDID: answered incoming call from 0301234567 to 120, 00:01:00<br>Extension: 120 Anna Mueller<br>Call: 261128101500_782-1.120",
          "hs_call_direction":"INBOUND","hs_call_status":"COMPLETED","hs_call_duration":"60000",
          "hs_call_disposition":"f240bbac-87c9-4f6e-bf70-924b57d47db7","hubspot_owner_id":"77",
          "hs_call_from_number":"+49301234567","hs_call_to_number":"120","callhook_id":"261128101500_782-1.120"},
         "associations":[{"to":{"id":"501"},"types":[{"associationCategory":"HUBSPOT_DEFINED","associationTypeId":194}]}]})
    );
}

#[test]
fn missed_at_queue_level_has_no_owner_contact_or_key_property() {
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
    let body = create_body(&Part::of(&ended), &settings(&[]), None, None);
    assert_eq!(
        body,
        json!({"properties":{"hs_timestamp":"2026-11-28T09:15:00.000Z",
          "hs_call_title":"CompanyDID: missed incoming call from 0301234567 to 800",
          "hs_call_body":"CompanyDID: missed incoming call from 0301234567 to 800<br>Extension: 800<br>Queue: 800<br>Call: 261128101500_782-1.800",
          "hs_call_direction":"INBOUND","hs_call_status":"NO_ANSWER","hs_call_duration":"0",
          "hs_call_disposition":"73a0d17f-1163-4015-bdd5-ec830791da20",
          "hs_call_from_number":"+49301234567","hs_call_to_number":"800"}})
    );
}

#[test]
fn outgoing_call_goes_from_the_extension_and_empty_dispositions_send_none() {
    let ended = Ended {
        direction: Direction::Outgoing,
        title: "outgoing call from 120 to 0301234567, 00:01:00".into(),
        callerid_e164: None,
        user_info: None,
        ..answered()
    };
    let body = create_body(
        &Part::of(&ended),
        &settings(&[("disposition_connected", "")]),
        None,
        None,
    );
    let properties = &body["properties"];
    assert_eq!(properties["hs_call_direction"], "OUTBOUND");
    assert_eq!(properties["hs_call_from_number"], "120");
    assert_eq!(properties["hs_call_to_number"], "0301234567");
    assert_eq!(properties["hs_call_duration"], "60000");
    assert!(properties.get("hs_call_disposition").is_none());
    assert!(body.get("associations").is_none());
}

#[test]
fn titles_with_markup_are_escaped_in_the_body_only() {
    let ended = Ended {
        title: "R&D: answered incoming call from <anonymous> to 120".into(),
        ..answered()
    };
    let body = create_body(&Part::of(&ended), &settings(&[]), None, None);
    assert_eq!(
        body["properties"]["hs_call_title"],
        "R&D: answered incoming call from <anonymous> to 120"
    );
    assert!(
        body["properties"]["hs_call_body"]
            .as_str()
            .unwrap()
            .starts_with("R&amp;D: answered incoming call from &lt;anonymous&gt; to 120<br>")
    );
}

#[test]
fn contact_search_asks_for_phone_and_mobile_in_both_forms() {
    assert_eq!(
        contact_search(&["+49301234567", "0301234567"]),
        json!({"filterGroups":[
            {"filters":[{"propertyName":"phone","operator":"EQ","value":"+49301234567"}]},
            {"filters":[{"propertyName":"mobilephone","operator":"EQ","value":"+49301234567"}]},
            {"filters":[{"propertyName":"phone","operator":"EQ","value":"0301234567"}]},
            {"filters":[{"propertyName":"mobilephone","operator":"EQ","value":"0301234567"}]}],
          "limit":1})
    );
}

#[test]
fn call_search_filters_on_the_key_property() {
    assert_eq!(
        call_search("callhook_id", "261128101500_782-1.120"),
        json!({"filterGroups":[{"filters":[{"propertyName":"callhook_id","operator":"EQ",
            "value":"261128101500_782-1.120"}]}],"limit":1})
    );
}

#[test]
fn recording_patch_adds_links_once_and_the_url_only_when_https() {
    let links = vec![
        "https://pbx.example.com/r/1-1.mp3?exp=1&sig=a".to_string(),
        "https://pbx.example.com/r/1-2.mp3".to_string(),
    ];
    let patch = recording_patch("Call: 1.120", &links).unwrap();
    assert_eq!(
        patch,
        json!({"properties":{
            "hs_call_recording_url":"https://pbx.example.com/r/1-1.mp3?exp=1&sig=a",
            "hs_call_body":"Call: 1.120<br>Recording: https://pbx.example.com/r/1-1.mp3?exp=1&amp;sig=a<br>Recording: https://pbx.example.com/r/1-2.mp3"}})
    );
    let body = patch["properties"]["hs_call_body"].as_str().unwrap();
    assert_eq!(recording_patch(body, &links), None);

    let plain = vec!["http://127.0.0.1:8080/r/1-1.mp3".to_string()];
    assert_eq!(
        recording_patch("Call: 1.120", &plain).unwrap(),
        json!({"properties":{"hs_call_body":"Call: 1.120<br>Recording: http://127.0.0.1:8080/r/1-1.mp3"}})
    );
}
