//! The `bitrix24` plugin end to end: 3CX simulator → host → plugin in wasmtime → the Bitrix24
//! stand-in over HTTP on 127.0.0.1, with the finished calls the stand-in stores compared with
//! spec `crm-plugins.md` section 8, the OAuth token surviving rotation races, restarts and
//! early expiry and parking the deliveries once revoked, `crm_create` making leads for unknown
//! numbers only, and an inbound webhook (`auth = "webhook"`) that the portal allows, refuses
//! for telephony or does not know.

use crate::crm::*;
use callhook::queue::DeliveryStatus;
use callhook_crm_standins::{Bitrix24, Bitrix24Call, Bitrix24Config, Bitrix24Handle};
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// The extensions of the shipped scenarios, seeded as portal users with these internal numbers.
const EXTENSIONS: [&str; 5] = ["120", "121", "122", "123", "130"];
/// The user id part of the stand-in's inbound webhook (its default).
const WEBHOOK_USER: &str = "1";
/// The code of the stand-in's inbound webhook in the webhook tests.
const WEBHOOK_CODE: &str = "b24-webhook-code-4f1c";
/// A webhook code the stand-in does not know.
const UNKNOWN_CODE: &str = "b24-unknown-code-9d2e";

/// The stand-in with the scenarios' users, and the host running `bitrix24` against it as a
/// local application, with `settings` added; deliveries quick to retry and not rate limited
/// (the stand-in's bucket still is).
struct Portal {
    bitrix: Bitrix24Handle,
    /// Internal number → user id.
    users: BTreeMap<String, i64>,
}

impl Portal {
    async fn start(config: Bitrix24Config) -> Portal {
        let bitrix = Bitrix24::start(config).await.unwrap();
        let users = EXTENSIONS
            .iter()
            .map(|n| (n.to_string(), bitrix.add_user(n)))
            .collect();
        Portal { bitrix, users }
    }

    fn plugin(&self, settings: &[(&'static str, &str)]) -> Plugin<'static> {
        let url = self.bitrix.base_url();
        let mut all = vec![
            ("portal", url.clone()),
            ("oauth_base", url),
            ("client_id", "local.standin".to_string()),
        ];
        all.extend(settings.iter().map(|(k, v)| (*k, v.to_string())));
        Plugin {
            name: "bitrix24",
            settings: all,
            secrets: vec![
                ("client_secret", "b24-secret"),
                ("refresh_token", "b24-refresh-standin"),
            ],
            keys: vec![
                ("rate_per_second", "1000.0"),
                ("retry", "{ ladder = [\"1s\"] }"),
            ],
        }
    }

    /// The stand-in with the scenarios' users and an inbound webhook of code [`WEBHOOK_CODE`].
    async fn with_webhook() -> Portal {
        Portal::start(Bitrix24Config {
            webhook_code: WEBHOOK_CODE.into(),
            ..Bitrix24Config::default()
        })
        .await
    }

    /// The plugin in `auth = "webhook"` mode with the webhook code `code`, otherwise as
    /// [`Portal::plugin`] (no OAuth settings).
    fn webhook_plugin(&self, code: &'static str) -> Plugin<'static> {
        Plugin {
            settings: vec![
                ("portal", self.bitrix.base_url()),
                ("auth", "webhook".to_string()),
                ("webhook_user_id", WEBHOOK_USER.to_string()),
            ],
            secrets: vec![("webhook_code", code)],
            ..self.plugin(&[])
        }
    }

    /// The internal number of user `id`.
    fn number(&self, id: i64) -> &str {
        self.users
            .iter()
            .find(|(_, user)| **user == id)
            .map(|(number, _)| number.as_str())
            .unwrap_or("?")
    }

    /// The finished calls of PBX call `call`, in registration order.
    fn finished(&self, call: u64) -> Vec<Bitrix24Call> {
        let suffix = format!("_{call}");
        self.bitrix
            .finished_calls()
            .into_iter()
            .filter(|c| {
                c.register["EXTERNAL_CALL_ID"]
                    .as_str()
                    .is_some_and(|id| id.ends_with(&suffix) || id.contains(&format!("{suffix}-")))
            })
            .collect()
    }
}

/// How many `finish` requests the stand-in received.
fn finishes(portal: &Portal) -> usize {
    let requests = portal.bitrix.requests();
    let finish = |path: &str| path.to_ascii_lowercase().ends_with("externalcall.finish");
    requests.iter().filter(|r| finish(&r.path)).count()
}

/// One expected finished call: registered for, finished by, `TYPE`, `STATUS_CODE`, scenario
/// seconds, whether a recording is attached.
type Finished = (&'static str, &'static str, i64, &'static str, u64, bool);

/// Section 8's Bitrix24 column, by scenario call id (without `users.800`).
const EXPECTED: [(u64, &[Finished]); 9] = [
    (101, &[("120", "120", 2, "200", 60, true)]),
    (201, &[("120", "120", 2, "304", 0, false)]),
    (301, &[("121", "122", 2, "200", 30, true)]),
    (401, &[("121", "121", 2, "304", 0, false)]),
    (
        501,
        &[
            ("120", "120", 2, "200", 30, true),
            ("130", "130", 2, "200", 60, true),
        ],
    ),
    (
        601,
        &[
            ("120", "120", 2, "200", 45, true),
            ("130", "130", 2, "200", 50, true),
        ],
    ),
    (
        701,
        &[
            ("120", "120", 2, "200", 30, true),
            ("130", "130", 2, "304", 0, false),
        ],
    ),
    (801, &[("120", "120", 1, "200", 60, true)]),
    (901, &[("120", "120", 1, "304", 0, false)]),
];

/// Asserts the finished calls of `call` (played with `offset`) are exactly `expected`.
fn assert_finished(portal: &Portal, call: u64, expected: &[Finished], recordings: bool) {
    let finished = portal.finished(call);
    assert_eq!(finished.len(), expected.len(), "call {call}: {finished:#?}");
    for (got, want) in finished.iter().zip(expected) {
        let (registered, finisher, call_type, status, seconds, recorded) = *want;
        let what = format!("call {call}, part of {finisher}");
        let finish = got.finished.as_ref().unwrap();
        assert_eq!(portal.number(got.registered_user), registered, "{what}");
        assert_eq!(portal.number(finish.user), finisher, "{what}");
        assert_eq!(got.register["TYPE"], call_type, "{what}");
        assert_eq!(got.register["PHONE_NUMBER"], "425630434343", "{what}");
        assert_eq!(got.register["SHOW"], 0, "{what}");
        assert_eq!(finish.status_code, status, "{what}");
        assert_duration(finish.duration, seconds, &what);
        if status == "304" {
            assert_eq!(finish.duration, 0, "{what}");
        }
        match (&got.recording, recorded && recordings) {
            (Some((name, bytes)), true) => {
                assert!(name.ends_with("-1.mp3"), "{what}: {name}");
                assert!(!bytes.is_empty(), "{what}");
            }
            (None, false) => {}
            (recording, _) => panic!("{what}: recording {recording:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bitrix24_scenarios_one_to_nine_give_the_finished_calls_of_the_spec() {
    let portal = Portal::start(Bitrix24Config::default()).await;
    let played = scenarios(&ONE_TO_NINE, 0);
    let crm = CrmHost::start(&played, portal.plugin(&[]), true).await;
    crm.play(&played).await;
    let parts: usize = EXPECTED.iter().map(|(_, parts)| parts.len()).sum();
    let recorded = EXPECTED
        .iter()
        .flat_map(|(_, parts)| parts.iter())
        .filter(|part| part.5)
        .count();
    crm.wait_until("every part finished and recorded", || {
        let calls = portal.bitrix.finished_calls();
        calls.len() >= parts && calls.iter().filter(|c| c.recording.is_some()).count() >= recorded
    })
    .await;
    wait_delivered(&crm).await;
    for (call, expected) in EXPECTED {
        assert_finished(&portal, call, expected, true);
    }
    // Nothing else: no call left open or registered twice, one refresh for the whole run.
    assert_eq!(
        portal.bitrix.calls().len(),
        parts,
        "{:#?}",
        portal.bitrix.calls()
    );
    assert_eq!(portal.bitrix.refreshes(), 1);
    crm.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bitrix24_queue_miss_finishes_with_the_queue_user_and_the_card_pops_up() {
    let portal = Portal::start(Bitrix24Config::default()).await;
    let queue_user = portal.bitrix.add_user("8000");
    let played = scenarios(&["03-queue-answered", "04-queue-missed-two-waves"], 0);
    let queue = queue_user.to_string();
    let settings = [("users.800", queue.as_str()), ("show_card", "1")];
    let crm = CrmHost::start(&played, portal.plugin(&settings), false).await;
    crm.play(&played).await;
    crm.wait_until("both calls finished", || {
        portal.bitrix.finished_calls().len() >= 2
    })
    .await;
    wait_delivered(&crm).await;
    let missed = portal.finished(401);
    assert_eq!(missed.len(), 1, "{missed:#?}");
    assert_eq!(portal.number(missed[0].registered_user), "121");
    assert_eq!(missed[0].finished.as_ref().unwrap().user, queue_user);
    assert_eq!(missed[0].register["SHOW"], 1);
    let answered = portal.finished(301);
    assert_eq!(answered.len(), 1, "{answered:#?}");
    assert_eq!(
        portal.number(answered[0].finished.as_ref().unwrap().user),
        "122"
    );
    crm.stop().await;
}

/// With `crm_create`, the portal makes a lead for a number it finds in no contact or lead, but
/// none for a withheld caller (3CX reports `anonymous`): that call is registered with
/// `CRM_CREATE` 0, and a known contact's number makes none either.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bitrix24_crm_create_makes_a_lead_for_an_unknown_number_and_none_for_a_withheld_one() {
    let portal = Portal::start(Bitrix24Config::default()).await;
    portal.bitrix.add_contact(crate::crm_harness::CALLER);
    let played = [
        ("anonymous", 0),
        (crate::crm_harness::STRANGER, 1),
        (crate::crm_harness::CALLER, 2),
    ]
    .map(|(caller, n)| crate::crm_harness::scenario("01-direct-inbound-answered", caller, n));
    let crm = CrmHost::start(&played, portal.plugin(&[("crm_create", "1")]), false).await;
    crm.play(&played).await;
    crm.wait_until("the three calls finished", || {
        portal.bitrix.finished_calls().len() >= 3
    })
    .await;
    wait_delivered(&crm).await;
    let mut registered: Vec<_> = portal
        .bitrix
        .calls()
        .iter()
        .map(|call| {
            let phone = call.register["PHONE_NUMBER"].as_str().unwrap().to_owned();
            (phone, call.register["CRM_CREATE"].clone())
        })
        .collect();
    registered.sort_by(|a, b| a.0.cmp(&b.0));
    let expected = [
        ("425630434343", json!(1)),
        ("4930999888", json!(1)),
        ("anonymous", json!(0)),
    ]
    .map(|(phone, create)| (phone.to_owned(), create));
    assert_eq!(registered, expected);
    let leads: Vec<_> = portal
        .bitrix
        .leads()
        .into_iter()
        .map(|(_, phone)| phone)
        .collect();
    assert_eq!(
        leads,
        [crate::crm_harness::STRANGER],
        "one lead, for the unknown number only"
    );
    crm.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bitrix24_eight_deliveries_refreshing_at_once_keep_one_refresh_token_chain() {
    let portal = Portal::start(Bitrix24Config::default()).await;
    // Eight answered calls ringing at the same moment: eight deliveries that need the first
    // token at once (the plugin's concurrency is 8 by default).
    let played: Vec<_> = (1..=8)
        .flat_map(|offset| scenarios(&["01-direct-inbound-answered"], offset))
        .collect();
    let next = scenarios(&["02-direct-inbound-missed"], 9);
    let all: Vec<_> = played.iter().chain(&next).cloned().collect();
    let mut plugin = portal.plugin(&[]);
    plugin.keys.push(("concurrency", "8"));
    let crm = CrmHost::start(&all, plugin, false).await;
    // Slow answers keep the deliveries in flight together.
    portal.bitrix.faults().delay(Duration::from_millis(100));
    crm.play(&played).await;
    crm.wait_until("eight finished calls", || {
        portal.bitrix.finished_calls().len() >= 8
    })
    .await;
    wait_delivered(&crm).await;
    for offset in 1..=8 {
        assert_finished(&portal, call_number(101, offset), EXPECTED[0].1, false);
    }
    assert_eq!(portal.bitrix.refreshes(), 1, "one refresh won the race");
    assert_eq!(portal.bitrix.valid_refresh_tokens().len(), 1);

    // The chain goes on from the stored refresh token: with the access token expired, the
    // next call refreshes once more, with the token the winner stored.
    portal.bitrix.faults().reset();
    portal.bitrix.expire_access_tokens();
    crm.play(&next).await;
    crm.wait_until("the next call finished", || {
        !portal.finished(call_number(201, 9)).is_empty()
    })
    .await;
    wait_delivered(&crm).await;
    assert_eq!(portal.bitrix.refreshes(), 2);
    crm.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bitrix24_a_rotated_refresh_token_survives_a_restart() {
    let portal = Portal::start(Bitrix24Config::default()).await;
    let first = scenarios(&["02-direct-inbound-missed"], 1);
    let second = scenarios(&["02-direct-inbound-missed"], 2);
    let all: Vec<_> = first.iter().chain(&second).cloned().collect();
    let crm = CrmHost::start(&all, portal.plugin(&[]), false).await;
    crm.play(&first).await;
    crm.wait_until("the first call finished", || {
        !portal.finished(call_number(201, 1)).is_empty()
    })
    .await;
    wait_delivered(&crm).await;
    assert_eq!(portal.bitrix.refreshes(), 1);

    // The configured refresh token is spent; after the restart the access token is expired
    // too, so the plugin must refresh with the rotated token it stored.
    let crm = crm.restart().await;
    portal.bitrix.expire_access_tokens();
    crm.play(&second).await;
    crm.wait_until("the second call finished", || {
        !portal.finished(call_number(201, 2)).is_empty()
    })
    .await;
    wait_delivered(&crm).await;
    assert_eq!(portal.bitrix.refreshes(), 2);
    assert_finished(&portal, call_number(201, 2), EXPECTED[1].1, false);
    crm.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bitrix24_an_access_token_expiring_mid_call_is_refreshed_once() {
    let portal = Portal::start(Bitrix24Config::default()).await;
    let played = scenarios(&["01-direct-inbound-answered"], 0);
    let crm = CrmHost::start(&played, portal.plugin(&[]), false).await;
    let play = crm.play(&played);
    let expire = async {
        // Registered at `ringing` with the first token; it expires before the finish.
        crm.wait_until("the call registered", || !portal.bitrix.calls().is_empty())
            .await;
        portal.bitrix.expire_access_tokens();
    };
    tokio::join!(play, expire);
    crm.wait_until("the call finished", || {
        !portal.bitrix.finished_calls().is_empty()
    })
    .await;
    wait_delivered(&crm).await;
    assert_finished(&portal, 101, EXPECTED[0].1, false);
    assert_eq!(portal.bitrix.refreshes(), 2);
    assert_eq!(
        finishes(&portal),
        2,
        "the finish that met the expired token, and its repeat"
    );
    crm.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bitrix24_a_finish_stored_but_unanswered_leaves_one_finished_call() {
    let portal = Portal::start(Bitrix24Config::default()).await;
    let failed = scenarios(&["05-blind-transfer"], 1);
    let dropped = scenarios(&["05-blind-transfer"], 2);
    let all: Vec<_> = failed.iter().chain(&dropped).cloned().collect();
    let crm = CrmHost::start(&all, portal.plugin(&[]), false).await;
    // 500 after storing the finish of the first part, then no answer at all after storing.
    portal.bitrix.faults().fail_after_store(1);
    crm.play(&failed).await;
    crm.wait_until("both parts finished", || {
        portal.finished(call_number(501, 1)).len() >= 2
    })
    .await;
    portal.bitrix.faults().drop_after_store(1);
    crm.play(&dropped).await;
    crm.wait_until("both parts finished", || {
        portal.finished(call_number(501, 2)).len() >= 2
    })
    .await;
    wait_delivered(&crm).await;
    for offset in [1, 2] {
        assert_finished(&portal, call_number(501, offset), EXPECTED[4].1, false);
    }
    // Four parts, and one repeat of each unanswered finish (answered "Call is not found").
    assert_eq!(finishes(&portal), 6);
    assert_eq!(portal.bitrix.calls().len(), 4, "no part registered twice");
    crm.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bitrix24_a_revoked_refresh_token_is_retried_then_parked_when_the_deliverys_time_is_up() {
    let logs = capture_logs();
    let portal = Portal::start(Bitrix24Config::default()).await;
    let first = scenarios(&["02-direct-inbound-missed"], 1);
    let second = scenarios(&["02-direct-inbound-missed"], 2);
    let all: Vec<_> = first.iter().chain(&second).cloned().collect();
    let mut plugin = portal.plugin(&[]);
    // Retried every second, given up two seconds after the first attempt.
    plugin.keys.retain(|(key, _)| *key != "retry");
    plugin
        .keys
        .push(("retry", "{ ladder = [\"1s\"], max_age = \"2s\" }"));
    let crm = CrmHost::start(&all, plugin, false).await;
    crm.play(&first).await;
    crm.wait_until("the first call finished", || {
        !portal.finished(call_number(201, 1)).is_empty()
    })
    .await;
    wait_delivered(&crm).await;

    // The application is uninstalled: its access token is refused (401) and every refresh
    // token answered 400 `invalid_grant`, with no newer state stored by another delivery.
    let mut secrets = portal.bitrix.valid_refresh_tokens();
    secrets.extend(["b24-refresh-standin".to_string(), "b24-secret".to_string()]);
    portal.bitrix.expire_access_tokens();
    portal.bitrix.faults().revoke_refresh_tokens();
    crm.play(&second).await;
    // Ringing is retried, then parked. (The end event behind it meets the same, until the
    // failures in a row pause the plugin: the circuit breaker.)
    let parked = crm.wait_parked(1).await;
    let delivery = &parked[0];
    assert_eq!(delivery.event, "ringing", "{delivery:#?}");
    assert_eq!(delivery.status, DeliveryStatus::Parked, "{delivery:#?}");
    assert!(delivery.attempts >= 2, "retried first: {delivery:#?}");
    let reason = &delivery.parked.as_ref().unwrap().1;
    assert!(
        reason.starts_with("gave up after")
            && reason.ends_with("in 2s; last: Bitrix24 refresh token rejected; retrying"),
        "{reason}"
    );
    assert_eq!(
        delivery.history.len(),
        delivery.attempts as usize,
        "every attempt is in the history: {delivery:#?}"
    );
    for attempt in &delivery.history {
        assert_eq!(
            attempt.message.as_deref(),
            Some("Bitrix24 refresh token rejected; retrying"),
            "{delivery:#?}"
        );
    }
    assert!(portal.finished(call_number(201, 2)).is_empty());
    assert_eq!(
        portal.bitrix.refreshes(),
        1,
        "no refresh granted after the revocation"
    );
    let secrets: Vec<&str> = secrets.iter().map(String::as_str).collect();
    assert_no_secret(&crm.deliveries_list(), &secrets);
    crm.stop().await;
    let logged = logs.text();
    assert!(
        logged.contains("Bitrix24 refresh token rejected"),
        "the attempts are logged:\n{logged}"
    );
    assert_no_secret(&logged, &secrets);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bitrix24_a_webhook_logs_calls_through_its_url_where_the_portal_allows_telephony() {
    let portal = Portal::with_webhook().await;
    portal.bitrix.faults().allow_webhook_telephony(true);
    let played = scenarios(
        &["01-direct-inbound-answered", "02-direct-inbound-missed"],
        0,
    );
    let crm = CrmHost::start(&played, portal.webhook_plugin(WEBHOOK_CODE), true).await;
    crm.play(&played).await;
    crm.wait_until("both calls finished, the answered one recorded", || {
        let calls = portal.bitrix.finished_calls();
        calls.len() >= 2 && calls.iter().any(|c| c.recording.is_some())
    })
    .await;
    wait_delivered(&crm).await;
    assert_finished(&portal, 101, EXPECTED[0].1, true);
    assert_finished(&portal, 201, EXPECTED[1].1, true);
    assert_eq!(
        portal.bitrix.calls().len(),
        2,
        "{:#?}",
        portal.bitrix.calls()
    );
    // Every method through the webhook's URL, none with an access token, no OAuth at all.
    let webhook = format!("/rest/{WEBHOOK_USER}/{WEBHOOK_CODE}/");
    let requests = portal.bitrix.requests();
    let methods: BTreeSet<_> = requests
        .iter()
        .map(|r| match r.path.strip_prefix(&webhook) {
            Some(method) => method.to_ascii_lowercase(),
            None => panic!("not through the webhook: {r:?}"),
        })
        .collect();
    let expected =
        ["attachrecord", "finish", "register"].map(|m| format!("telephony.externalcall.{m}"));
    assert_eq!(methods, BTreeSet::from(expected));
    assert!(
        requests
            .iter()
            .all(|r| r.json().unwrap().get("auth").is_none())
    );
    assert_eq!(portal.bitrix.refreshes(), 0);
    crm.stop().await;
}

/// Plays scenario 2 (ringing, then the missed end event) to the plugin with the webhook code
/// `code` and asserts that the portal stored nothing and that both deliveries were parked at
/// their first attempt with `reason`, which, like the whole `deliveries list`, shows no webhook
/// code.
async fn parked_at_once(portal: &Portal, code: &'static str, reason: &str) {
    let logs = capture_logs();
    let played = scenarios(&["02-direct-inbound-missed"], 0);
    let crm = CrmHost::start(&played, portal.webhook_plugin(code), false).await;
    crm.play(&played).await;
    let parked = crm.wait_parked(2).await;
    let events: Vec<_> = parked.iter().map(|d| d.event.as_str()).collect();
    assert_eq!(events, ["ringing", "incoming"]);
    for delivery in &parked {
        assert_eq!(delivery.status, DeliveryStatus::Parked, "{delivery:#?}");
        assert_eq!(delivery.attempts, 1, "not retried: {delivery:#?}");
        assert_eq!(delivery.parked.as_ref().unwrap().1, reason);
    }
    assert!(portal.bitrix.calls().is_empty());
    assert_eq!(portal.bitrix.refreshes(), 0);
    assert_no_secret(&crm.deliveries_list(), &[code, WEBHOOK_CODE]);
    crm.stop().await;
    let logged = logs.text();
    assert!(
        logged.contains(reason),
        "the attempts are logged:\n{logged}"
    );
    assert_no_secret(&logged, &[code, WEBHOOK_CODE]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bitrix24_a_webhook_refused_telephony_parks_with_the_hint_to_use_an_application() {
    // The portal refuses `register` and `finish` through a webhook, as documented: ringing
    // registers, the end event registers first (none open), each refused.
    let portal = Portal::with_webhook().await;
    let reason = "rejected: Bitrix24 answered HTTP 403: WRONG_AUTH_TYPE: Current authorization \
                  type is denied for this method; this method needs an application: set \
                  `auth = \"app\"`";
    parked_at_once(&portal, WEBHOOK_CODE, reason).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bitrix24_an_unknown_webhook_code_parks_as_a_rejected_token_without_showing_it() {
    // The portal answers 401 `NO_AUTH_FOUND`; with a webhook there is nothing to refresh.
    let portal = Portal::with_webhook().await;
    portal.bitrix.faults().allow_webhook_telephony(true);
    let reason = "rejected: Bitrix24 rejected the token: NO_AUTH_FOUND: Wrong authorization data";
    parked_at_once(&portal, UNKNOWN_CODE, reason).await;
}

/// `docs/benchmarks.md`, "token refreshes per 1000 deliveries": plays 340 answered calls
/// (ringing, started and ended each: 1020 deliveries) in batches and prints how often the
/// plugin refreshed at the stand-in's OAuth server. Ignored by default: about a minute.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn bitrix24_token_refreshes_per_1000_deliveries() {
    let portal = Portal::start(Bitrix24Config {
        // A portal that never throttles: the figure is about tokens, not the bucket.
        bucket_capacity: 100_000,
        drain_per_second: 1000.0,
        ..Bitrix24Config::default()
    })
    .await;
    let batches: Vec<Vec<_>> = (0..10)
        .map(|batch| {
            (1..=34)
                .flat_map(|n| scenarios(&["01-direct-inbound-answered"], batch * 34 + n))
                .collect()
        })
        .collect();
    let all: Vec<_> = batches.iter().flatten().cloned().collect();
    let deliveries: usize = all.iter().map(|s| s.expected().len()).sum();
    let crm = CrmHost::start(&all, portal.plugin(&[]), false).await;
    let started = std::time::Instant::now();
    for batch in &batches {
        crm.play(batch).await;
    }
    crm.wait_until("every call finished", || {
        portal.bitrix.finished_calls().len() >= all.len()
    })
    .await;
    wait_delivered(&crm).await;
    let refreshes = portal.bitrix.refreshes();
    println!(
        "bitrix24: {deliveries} deliveries in {:.1} s, {refreshes} token refreshes, {:.2} per 1000 \
         deliveries (access tokens live 3600 s)",
        started.elapsed().as_secs_f64(),
        refreshes as f64 * 1000.0 / deliveries as f64
    );
    assert_eq!(refreshes, 1);
    crm.stop().await;
}
