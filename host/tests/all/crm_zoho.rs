//! The `zoho` plugin end to end: 3CX simulator → host → plugin in wasmtime → the Zoho CRM
//! stand-in over HTTP on 127.0.0.1, with the Calls records the stand-in stores compared with
//! spec `crm-plugins.md` section 8, the access token shared, kept across a restart and
//! replaced when it expires early, a revoked refresh token parking the delivery, and a call
//! deleted in Zoho before its recording arrived.

use crate::crm::*;
use callhook::queue::DeliveryStatus;
use callhook_crm_standins::{Zoho, ZohoConfig, ZohoHandle, ZohoRecord};
use serde_json::Value;
use std::collections::BTreeMap;

/// The custom field on Calls the tests configure as `id_field`.
const ID_FIELD: &str = "Callhook_Id";
/// The external number of the shipped scenarios.
const CALLER: &str = "425630434343";
/// The e-mail addresses the simulator's user list gives the scenarios' extensions.
const EMAILS: [(&str, &str); 5] = [
    ("120", "anna.mueller@example.com"),
    ("121", "ben.schmidt@example.com"),
    ("122", "clara.weber@example.com"),
    ("123", "david.fischer@example.com"),
    ("130", "eva.wagner@example.com"),
];

/// The stand-in, with a contact for the caller and a Zoho user per extension.
struct Crm {
    zoho: ZohoHandle,
    contact: String,
    /// Extension → Zoho user id.
    owners: BTreeMap<&'static str, String>,
}

impl Crm {
    async fn start(id_field: bool) -> Crm {
        let zoho = Zoho::start(ZohoConfig {
            id_field: id_field.then(|| ID_FIELD.to_string()),
            ..ZohoConfig::default()
        })
        .await
        .unwrap();
        let contact = zoho.add_contact("Caller", CALLER);
        let owners = EMAILS
            .iter()
            .map(|(extension, email)| (*extension, zoho.add_user(email)))
            .collect();
        Crm {
            zoho,
            contact,
            owners,
        }
    }

    /// The plugin's table: the stand-in as both data-centre bases; four deliveries at once,
    /// below the stand-in's five requests in flight, and a retry after a second.
    fn plugin(&self, id_field: bool) -> Plugin<'static> {
        let url = self.zoho.base_url();
        let mut settings = vec![
            ("api_base", url.clone()),
            ("accounts_base", url),
            ("client_id", "1000.STANDIN".to_string()),
        ];
        if id_field {
            settings.push(("id_field", ID_FIELD.to_string()));
        }
        Plugin {
            name: "zoho",
            settings,
            secrets: vec![
                ("client_secret", "zoho-secret"),
                ("refresh_token", "1000.refresh.standin"),
            ],
            keys: vec![("concurrency", "4"), ("retry", "{ ladder = [\"1s\"] }")],
        }
    }

    /// The Calls records of PBX call `call`, in creation order.
    fn records(&self, call: u64) -> Vec<ZohoRecord> {
        let call = format!("_{call}-");
        let of_call = |record: &ZohoRecord| {
            let description = record.fields["Description"].as_str().unwrap_or_default();
            let key = description.lines().find(|line| line.starts_with("Call: "));
            key.is_some_and(|line| line.contains(&call))
        };
        self.zoho.calls().into_iter().filter(of_call).collect()
    }
}

/// One expected record: extension, `Call_Type`, scenario seconds (`None`: no `Call_Duration`),
/// whether the part's recording is linked.
type Record = (&'static str, &'static str, Option<u64>, bool);

/// Section 8's Zoho column, by scenario call id.
const EXPECTED: [(u64, &[Record]); 9] = [
    (101, &[("120", "Inbound", Some(60), true)]),
    (201, &[("120", "Missed", None, false)]),
    (301, &[("122", "Inbound", Some(30), true)]),
    (401, &[("800", "Missed", None, false)]),
    (
        501,
        &[
            ("120", "Inbound", Some(30), true),
            ("130", "Inbound", Some(60), true),
        ],
    ),
    (
        601,
        &[
            ("120", "Inbound", Some(45), true),
            ("130", "Inbound", Some(50), true),
        ],
    ),
    (
        701,
        &[
            ("120", "Inbound", Some(30), true),
            ("130", "Missed", None, false),
        ],
    ),
    (801, &[("120", "Outbound", Some(60), true)]),
    (901, &[("120", "Outbound", Some(0), false)]),
];

/// `mm:ss` in seconds.
fn seconds(mm_ss: &str) -> u64 {
    let (minutes, seconds) = mm_ss.split_once(':').unwrap();
    minutes.parse::<u64>().unwrap() * 60 + seconds.parse::<u64>().unwrap()
}

/// Asserts the records of `call` are exactly `expected`.
fn assert_records(crm: &Crm, call: u64, expected: &[Record], recordings: bool, id_field: bool) {
    let records = crm.records(call);
    assert_eq!(records.len(), expected.len(), "call {call}: {records:#?}");
    for (got, want) in records.iter().zip(expected) {
        let (user, call_type, duration, recorded) = *want;
        let what = format!("call {call}, part of {user}");
        let fields = &got.fields;
        let text = |field: &str| fields.get(field).and_then(Value::as_str);
        assert_eq!(text("Call_Type"), Some(call_type), "{what}");
        let outgoing = call_type == "Outbound";
        assert_eq!(
            text("Outbound_Call_Status"),
            outgoing.then_some("Completed"),
            "{what}"
        );
        match duration {
            Some(expected) => {
                assert_duration(seconds(text("Call_Duration").unwrap()), expected, &what)
            }
            None => assert_eq!(text("Call_Duration"), None, "{what}"),
        }
        if duration == Some(0) {
            assert_eq!(text("Call_Duration"), Some("00:00"), "{what}");
        }
        let description = text("Description").unwrap();
        let key_line = description
            .lines()
            .find(|line| line.starts_with("Call: "))
            .unwrap();
        assert!(
            key_line.ends_with(&format!(".{user}")),
            "{what}: {description}"
        );
        assert!(description.starts_with(text("Subject").unwrap()), "{what}");
        assert_eq!(
            fields["Who_Id"],
            serde_json::json!({ "id": crm.contact }),
            "{what}"
        );
        let owner = crm
            .owners
            .get(user)
            .map(|id| serde_json::json!({ "id": id }));
        assert_eq!(fields.get("Owner"), owner.as_ref(), "{what}");
        let key = key_line.trim_start_matches("Call: ");
        assert_eq!(text(ID_FIELD), id_field.then_some(key), "{what}");
        let start = text("Call_Start_Time").unwrap();
        assert!(
            start.ends_with("+00:00") && start.len() == 25,
            "{what}: {start}"
        );
        let links = description
            .lines()
            .filter(|line| line.starts_with("Recording: "))
            .collect::<Vec<_>>();
        match (links.as_slice(), recorded && recordings) {
            ([link], true) => {
                let part = key.rsplit_once('.').unwrap().0;
                assert!(link.contains(&format!("{part}-1.mp3?")), "{what}: {link}");
            }
            ([], false) => {}
            (links, _) => panic!("{what}: recording links {links:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zoho_scenarios_one_to_nine_give_the_calls_of_the_spec() {
    let crm = Crm::start(true).await;
    let played = scenarios(&ONE_TO_NINE, 0);
    let host = CrmHost::start(&played, crm.plugin(true), true).await;
    host.play(&played).await;
    let parts: usize = EXPECTED.iter().map(|(_, parts)| parts.len()).sum();
    let recorded = EXPECTED
        .iter()
        .flat_map(|(_, parts)| parts.iter())
        .filter(|part| part.3)
        .count();
    host.wait_until("every part logged and recorded", || {
        let calls = crm.zoho.calls();
        let linked = calls
            .iter()
            .filter(|c| {
                c.fields["Description"]
                    .as_str()
                    .unwrap_or("")
                    .contains("Recording: ")
            })
            .count();
        calls.len() >= parts && linked >= recorded
    })
    .await;
    wait_delivered(&host).await;
    for (call, expected) in EXPECTED {
        assert_records(&crm, call, expected, true, true);
    }
    assert_eq!(crm.zoho.calls().len(), parts);
    // One token for the whole run, or one per delivery running when there was none yet.
    let tokens = crm.zoho.tokens_issued();
    assert!((1..=4).contains(&tokens), "{tokens} access tokens");
    host.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zoho_a_lead_and_a_mapped_queue_owner() {
    let zoho = Zoho::start(ZohoConfig::default()).await.unwrap();
    let lead = zoho.add_lead("Prospect", CALLER);
    let queue_owner = zoho.add_user("sales@example.com");
    let crm = Crm {
        zoho,
        contact: String::new(),
        owners: BTreeMap::new(),
    };
    let played = scenarios(&["04-queue-missed-two-waves"], 0);
    let mut plugin = crm.plugin(false);
    plugin.settings.push(("users.800", queue_owner.clone()));
    let host = CrmHost::start(&played, plugin, false).await;
    host.play(&played).await;
    host.wait_until("the missed call logged", || !crm.zoho.calls().is_empty())
        .await;
    wait_delivered(&host).await;
    let calls = crm.zoho.calls();
    assert_eq!(calls.len(), 1, "{calls:#?}");
    let fields = &calls[0].fields;
    assert_eq!(fields["What_Id"], serde_json::json!({ "id": lead }));
    assert_eq!(fields["$se_module"], "Leads");
    assert_eq!(fields["Owner"], serde_json::json!({ "id": queue_owner }));
    assert!(!fields.contains_key("Who_Id"));
    host.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zoho_the_access_token_is_kept_across_a_restart_and_replaced_when_refused() {
    let crm = Crm::start(false).await;
    let first = scenarios(&["02-direct-inbound-missed"], 1);
    let second = scenarios(&["02-direct-inbound-missed"], 2);
    let third = scenarios(&["02-direct-inbound-missed"], 3);
    let all: Vec<_> = [&first, &second, &third]
        .into_iter()
        .flatten()
        .cloned()
        .collect();
    let host = CrmHost::start(&all, crm.plugin(false), false).await;
    host.play(&first).await;
    host.wait_until("the first call logged", || crm.zoho.calls().len() == 1)
        .await;
    wait_delivered(&host).await;

    // After a restart the stored token is still used: no second token.
    let host = host.restart().await;
    host.play(&second).await;
    host.wait_until("the second call logged", || crm.zoho.calls().len() == 2)
        .await;
    wait_delivered(&host).await;
    assert_eq!(crm.zoho.tokens_issued(), 1);

    // A token Zoho refuses before its time is replaced once.
    crm.zoho.expire_access_tokens();
    host.play(&third).await;
    host.wait_until("the third call logged", || crm.zoho.calls().len() == 3)
        .await;
    wait_delivered(&host).await;
    assert_eq!(crm.zoho.tokens_issued(), 2);
    for offset in 1..=3 {
        assert_records(&crm, call_number(201, offset), EXPECTED[1].1, false, false);
    }
    host.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zoho_a_create_stored_but_unanswered_leaves_one_record() {
    let crm = Crm::start(true).await;
    let failed = scenarios(&["05-blind-transfer"], 1);
    let dropped = scenarios(&["05-blind-transfer"], 2);
    let all: Vec<_> = failed.iter().chain(&dropped).cloned().collect();
    let host = CrmHost::start(&all, crm.plugin(true), false).await;
    // 500 after storing the first part's record, then no answer at all after storing.
    crm.zoho.faults().fail_after_store(1);
    host.play(&failed).await;
    host.wait_until("both parts logged", || {
        crm.records(call_number(501, 1)).len() >= 2
    })
    .await;
    crm.zoho.faults().drop_after_store(1);
    host.play(&dropped).await;
    host.wait_until("both parts logged", || {
        crm.records(call_number(501, 2)).len() >= 2
    })
    .await;
    wait_delivered(&host).await;
    for offset in [1, 2] {
        assert_records(&crm, call_number(501, offset), EXPECTED[4].1, false, true);
    }
    // Each lost answer was followed by a search that found the record.
    let searches = crm
        .zoho
        .requests()
        .iter()
        .filter(|r| r.path == "/crm/v8/Calls/search")
        .count();
    assert_eq!(searches, 2);
    host.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zoho_without_id_field_a_lost_answer_parks_as_outcome_unknown() {
    let crm = Crm::start(false).await;
    let played = scenarios(&["01-direct-inbound-answered"], 0);
    let host = CrmHost::start(&played, crm.plugin(false), false).await;
    crm.zoho.faults().drop_after_store(1);
    host.play(&played).await;
    host.wait_until("the delivery parked", || {
        host.unfinished()
            .iter()
            .any(|d| d.status == DeliveryStatus::OutcomeUnknown)
    })
    .await;
    let parked = host.unfinished();
    assert_eq!(parked.len(), 1, "{parked:#?}");
    assert_eq!(parked[0].event, "incoming");
    let reason = &parked[0].parked.as_ref().unwrap().1;
    assert!(reason.contains("check Zoho and replay"), "{reason}");
    assert_eq!(crm.zoho.calls().len(), 1, "one record, not two");
    host.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zoho_logs_a_withheld_number_without_searching_or_linking_a_record() {
    // A junk Lead whose phone is `anonymous` (what 3CX reports for a withheld number) would
    // be linked to every withheld call if the plugin searched for it.
    let crm = Crm::start(false).await;
    crm.zoho.add_lead("Junk", "anonymous");
    let played = [crate::crm_harness::scenario(
        "02-direct-inbound-missed",
        "anonymous",
        0,
    )];
    let host = CrmHost::start(&played, crm.plugin(false), false).await;
    host.play(&played).await;
    host.wait_until("the missed call logged", || !crm.records(201).is_empty())
        .await;
    wait_delivered(&host).await;
    let records = crm.records(201);
    assert_eq!(records.len(), 1, "{records:#?}");
    let fields = &records[0].fields;
    assert_eq!(fields["Call_Type"], "Missed", "{fields:#?}");
    for link in ["Who_Id", "What_Id", "$se_module"] {
        assert!(!fields.contains_key(link), "{link}: {fields:#?}");
    }
    let searches = crm.zoho.requests_to(|path| path.ends_with("/search"));
    assert!(searches.is_empty(), "{searches:?}");
    host.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zoho_a_revoked_refresh_token_parks_the_delivery_at_once() {
    let logs = capture_logs();
    let crm = Crm::start(false).await;
    let first = scenarios(&["02-direct-inbound-missed"], 1);
    let second = scenarios(&["02-direct-inbound-missed"], 2);
    let all: Vec<_> = first.iter().chain(&second).cloned().collect();
    let host = CrmHost::start(&all, crm.plugin(false), false).await;
    host.play(&first).await;
    host.wait_until("the first call logged", || crm.zoho.calls().len() == 1)
        .await;
    wait_delivered(&host).await;

    // The user revokes the client: the access token is refused (401) and the accounts
    // server answers the refresh with 200 `{"error":"invalid_code"}`.
    crm.zoho.expire_access_tokens();
    crm.zoho.faults().revoke_refresh_tokens();
    host.play(&second).await;
    let parked = host.wait_parked(1).await;
    let delivery = &parked[0];
    assert_eq!(delivery.status, DeliveryStatus::Parked, "{delivery:#?}");
    assert_eq!(
        (delivery.event.as_str(), delivery.attempts),
        ("incoming", 1),
        "parked at the first attempt: {delivery:#?}"
    );
    let reason = &delivery.parked.as_ref().unwrap().1;
    assert_eq!(
        reason,
        "rejected: Zoho refresh token rejected: invalid_code"
    );
    let list = host.deliveries_list();
    assert!(list.contains(reason.as_str()), "{list}");
    assert_no_secret(&list, &["1000.refresh.standin", "zoho-secret"]);
    // One refresh that worked, one refused; the second call was not logged.
    let refreshes = crm
        .zoho
        .requests()
        .iter()
        .filter(|r| r.path == "/oauth/v2/token")
        .count();
    assert_eq!((refreshes, crm.zoho.tokens_issued()), (2, 1));
    assert_eq!(crm.zoho.calls().len(), 1);
    host.stop().await;
    let logged = logs.text();
    assert!(
        logged.contains(reason.as_str()),
        "the attempt is logged:\n{logged}"
    );
    assert_no_secret(&logged, &["1000.refresh.standin", "zoho-secret"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zoho_a_call_deleted_before_its_recording_is_skipped_and_the_delivery_succeeds() {
    let crm = Crm::start(false).await;
    let played = scenarios(&["05-blind-transfer"], 0);
    let host = CrmHost::start(&played, crm.plugin(false), true).await;
    // 120's part ends at t35, its record is deleted long before the call ends (t100) and
    // its recording, which has a part for 120 and one for 130, arrives.
    let delete = async {
        host.wait_until("120's part logged", || !crm.records(501).is_empty())
            .await;
        let deleted = crm.records(501).remove(0);
        crm.zoho.delete_call(&deleted.id);
        deleted.id
    };
    let ((), deleted) = tokio::join!(host.play(&played), delete);
    host.wait_until("130's part logged and recorded", || {
        crm.records(501).iter().any(|record| {
            let description = record.fields["Description"].as_str().unwrap_or_default();
            description.contains("Recording: ")
        })
    })
    .await;
    wait_delivered(&host).await;
    // 130's record carries its recording; 120's is not made again.
    assert_records(&crm, 501, &EXPECTED[4].1[1..], true, false);
    assert_eq!(crm.zoho.calls().len(), 1);
    // The deleted record was read (204) and left alone.
    let path = format!("/crm/v8/Calls/{deleted}");
    let to_deleted: Vec<_> = crm
        .zoho
        .requests()
        .into_iter()
        .filter(|r| r.path == path)
        .map(|r| r.method)
        .collect();
    assert_eq!(to_deleted, ["GET"]);
    host.stop().await;
}

/// `docs/benchmarks.md`, "token refreshes per 1000 deliveries": plays 340 answered calls
/// (1020 deliveries) in batches and prints how many access tokens the plugin asked the
/// stand-in's accounts server for. Ignored by default: about a minute.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn zoho_token_refreshes_per_1000_deliveries() {
    let crm = Crm::start(false).await;
    let batches: Vec<Vec<_>> = (0..10)
        .map(|batch| {
            (1..=34)
                .flat_map(|n| scenarios(&["01-direct-inbound-answered"], batch * 34 + n))
                .collect()
        })
        .collect();
    let all: Vec<_> = batches.iter().flatten().cloned().collect();
    let deliveries: usize = all.iter().map(|s| s.expected().len()).sum();
    let host = CrmHost::start(&all, crm.plugin(false), false).await;
    let started = std::time::Instant::now();
    for batch in &batches {
        host.play(batch).await;
    }
    host.wait_until("every call logged", || crm.zoho.calls().len() >= all.len())
        .await;
    wait_delivered(&host).await;
    let tokens = crm.zoho.tokens_issued();
    println!(
        "zoho: {deliveries} deliveries in {:.1} s, {tokens} access tokens, {:.2} per 1000 \
         deliveries (access tokens live 3600 s)",
        started.elapsed().as_secs_f64(),
        tokens as f64 * 1000.0 / deliveries as f64
    );
    // Zoho's refresh tokens do not rotate, so deliveries that start together without a token
    // each get one (the first stored wins, `set-if`); after that, none.
    assert!(
        tokens <= 4,
        "at most one per delivery running at the start: {tokens}"
    );
    host.stop().await;
}
