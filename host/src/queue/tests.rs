//! The queue end to end against a fake plugin boundary, with tokio's paused clock.

use super::*;
use super::{NumberPattern, Route, Routes};
use crate::calls::event::{
    CallId, Direction, Ended, FinishType, Offered, RecordingReady, Started, TransferType, UserType,
};
use proptest::prelude::*;
use redb::TableDefinition;
use std::collections::BTreeMap;
use tokio::runtime::Runtime;

// ---------------------------------------------------------------------------------------------
// Fixtures

const T0: u64 = 1_704_110_400_000; // 2024-01-01T12:00:00Z

type Rule = Box<dyn FnMut(&str, &CallEvent, u32) -> DeliveryOutcome + Send>;

/// A fake plugin boundary: answers by a rule and notes every attempt.
struct Fake {
    rule: std::sync::Mutex<Rule>,
    seen: std::sync::Mutex<Vec<Seen>>,
    clock: Clock,
    took: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    plugin: String,
    key: String,
    attempt: u32,
    /// Milliseconds since `T0`.
    at: u64,
    outcome: &'static str,
}

impl Fake {
    fn new(
        clock: &Clock,
        rule: impl FnMut(&str, &CallEvent, u32) -> DeliveryOutcome + Send + 'static,
    ) -> Arc<Fake> {
        Arc::new(Fake {
            rule: std::sync::Mutex::new(Box::new(rule)),
            seen: Default::default(),
            clock: clock.clone(),
            took: Duration::from_millis(10),
        })
    }

    fn delivering(clock: &Clock) -> Arc<Fake> {
        Fake::new(clock, |_, _, _| DeliveryOutcome::Delivered)
    }

    fn set(&self, rule: impl FnMut(&str, &CallEvent, u32) -> DeliveryOutcome + Send + 'static) {
        *self.rule.lock().unwrap() = Box::new(rule);
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// Keys delivered successfully to `plugin`, in order.
    fn delivered(&self, plugin: &str) -> Vec<String> {
        self.seen()
            .into_iter()
            .filter(|s| s.plugin == plugin && s.outcome == "delivered")
            .map(|s| s.key)
            .collect()
    }
}

impl Deliverer for Arc<Fake> {
    async fn deliver(&self, plugin: &str, request: DeliveryRequest<'_>) -> DeliveryOutcome {
        tokio::time::sleep(self.took).await;
        let outcome = (self.rule.lock().unwrap())(plugin, request.event, request.attempt);
        assert_eq!(request.idempotency_key, request.event.key());
        self.seen.lock().unwrap().push(Seen {
            plugin: plugin.to_string(),
            key: request.idempotency_key.to_string(),
            attempt: request.attempt,
            at: self.clock.now_ms() - T0,
            outcome: outcome.label(),
        });
        outcome
    }
}

fn retry() -> DeliveryOutcome {
    DeliveryOutcome::Retry {
        message: "HTTP 503".into(),
        after: None,
    }
}

fn rejected(target_gone: bool) -> DeliveryOutcome {
    DeliveryOutcome::Rejected {
        message: if target_gone { "HTTP 410" } else { "HTTP 400" }.into(),
        target_gone,
    }
}

fn call_id(call: u64, link: u32) -> CallId {
    CallId {
        stamp: "240101120000".into(),
        pbx_call_id: call,
        link,
    }
}

fn ringing(call: u64, user: &str) -> CallEvent {
    CallEvent::Ringing(Offered {
        id: call_id(call, 0),
        caller_id: "+4930123".into(),
        did: "CompanyDID".into(),
        user: user.into(),
        user_type: UserType::Ext,
        facts: Default::default(),
    })
}

fn started(call: u64, user: &str) -> CallEvent {
    CallEvent::Started(Started {
        id: call_id(call, 1),
        direction: Direction::Incoming,
        caller_id: "+4930123".into(),
        user: user.into(),
        did: "CompanyDID".into(),
        transfer_type: TransferType::NotDef,
        facts: Default::default(),
    })
}

fn ended(call: u64, user: &str) -> CallEvent {
    CallEvent::Ended(Ended {
        id: call_id(call, 1),
        direction: Direction::Incoming,
        caller_id: "+4930123".into(),
        user: user.into(),
        did: "CompanyDID".into(),
        finish_type: FinishType::Ok,
        transfer: false,
        duration_secs: 10,
        title: "answered".into(),
        facts: Default::default(),
    })
}

fn recording(call: u64) -> CallEvent {
    CallEvent::Recording(RecordingReady {
        id: call_id(call, 1),
        files: vec!["https://pbx/1.mp3".into()],
        last_end: None,
        parts: Vec::new(),
    })
}

/// Every event to every plugin in `plugins`, no jitter, a breaker that does not trip.
fn config(plugins: &[&str]) -> QueueConfig {
    let routing = Routes {
        routes: vec![Route {
            extensions: vec![NumberPattern::Any],
            queues: None,
            plugins: plugins.iter().map(|p| p.to_string()).collect(),
        }],
        default_plugins: vec![],
    };
    let mut config = QueueConfig::new(routing, plugins.iter().copied());
    for policy in config.plugins.values_mut() {
        policy.retry.jitter = 0.0;
        policy.breaker.failures = 0;
    }
    config
}

fn database(dir: &tempfile::TempDir) -> Arc<Database> {
    Arc::new(Database::create(dir.path().join("callhook.redb")).unwrap())
}

/// A fresh single-threaded runtime with paused time: one "life" of the process. Dropping it
/// drops every task, like a crash.
fn runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .unwrap()
}

/// Advances (virtual) time until `done` holds.
async fn settle<D: Deliverer>(queue: &Queue<D>, done: impl Fn(&QueueStats) -> bool) {
    for _ in 0..200_000 {
        if done(&queue.stats()) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    panic!("the queue did not settle: {:#?}", queue.stats());
}

fn drained(stats: &QueueStats) -> bool {
    stats.depth == 0
}

/// The ids of the delivery rows `deliveries list` shows, in order.
fn listed_ids(db: &Database) -> Vec<u64> {
    store::all_deliveries(db)
        .unwrap()
        .into_iter()
        .map(|(id, _)| id)
        .collect()
}

fn keys(events: &[CallEvent]) -> Vec<String> {
    events.iter().map(CallEvent::key).collect()
}

// ---------------------------------------------------------------------------------------------
// Taking events

#[tokio::test(start_paused = true)]
async fn enqueue_commits_the_event_and_its_rows_together() {
    let dir = tempfile::tempdir().unwrap();
    let db = database(&dir);
    let clock = Clock::starting_at(T0);
    // A plugin that never finishes, so the rows stay.
    let fake = Fake::new(&clock, |_, _, _| retry());
    let mut config = config(&["crm", "audit"]);
    config.routing.routes.push(Route {
        extensions: vec![NumberPattern::parse("100").unwrap()],
        queues: None,
        plugins: vec!["crm".into()],
    });
    let queue = Queue::open_with_clock(db.clone(), config, fake, clock).unwrap();

    let taken = queue.enqueue(&ringing(1, "100")).unwrap();
    assert_eq!(
        taken,
        Enqueued {
            event: Some(1),
            deliveries: vec![(2, "crm".into()), (3, "audit".into())],
        },
        "one row per plugin, each once, ids right after the event's"
    );
    assert_eq!(store::event_count(&db).unwrap(), 1);
    let rows = store::all_deliveries(&db).unwrap();
    assert_eq!(rows.len(), 2);
    assert!(
        rows.iter()
            .all(|(_, r)| r.event == 1 && r.key == ringing(1, "100").key())
    );

    let second = queue.enqueue(&ringing(2, "100")).unwrap();
    assert_eq!(second.event, Some(4));
    assert_eq!(store::event_count(&db).unwrap(), 2);
    assert_eq!(queue.stats().events_taken, 2);
}

#[tokio::test(start_paused = true)]
async fn a_batch_and_its_attached_write_are_taken_together_or_not_at_all() {
    const MARK: redb::TableDefinition<&str, u64> = redb::TableDefinition::new("test_mark");
    let dir = tempfile::tempdir().unwrap();
    let db = database(&dir);
    let clock = Clock::starting_at(T0);
    let fake = Fake::new(&clock, |_, _, _| retry());
    let queue = Queue::open_with_clock(db.clone(), config(&["crm"]), fake, clock).unwrap();
    let mark = |write: &redb::WriteTransaction| -> Result<(), String> {
        let mut table = write.open_table(MARK).map_err(|e| e.to_string())?;
        table.insert("batch", 1).map_err(|e| e.to_string())?;
        Ok(())
    };
    let batch = [ringing(1, "100"), ringing(2, "100"), started(1, "100")];
    let taken = queue.take(&batch, Some(&mark)).unwrap();
    let ids: Vec<Option<u64>> = taken.iter().map(|t| t.event).collect();
    assert_eq!(
        ids,
        [Some(1), Some(3), Some(5)],
        "in order, ids as one by one"
    );
    assert_eq!(store::event_count(&db).unwrap(), 3);
    let read = redb::ReadableDatabase::begin_read(&*db).unwrap();
    let marked = read.open_table(MARK).unwrap().get("batch").unwrap();
    assert_eq!(
        marked.map(|v| v.value()),
        Some(1),
        "the attached write committed"
    );

    let failing = |_: &redb::WriteTransaction| -> Result<(), String> { Err("disk full".into()) };
    let error = queue.take(&[ended(1, "100")], Some(&failing)).unwrap_err();
    assert!(error.to_string().contains("disk full"), "{error}");
    assert_eq!(
        store::event_count(&db).unwrap(),
        3,
        "nothing of the batch stored"
    );
    assert_eq!(queue.stats().depth, 3, "nor scheduled");
    assert_eq!(queue.stats().events_taken, 3);
}

/// Overwrites a record of `table` with bytes that do not read, as a damaged disk would.
fn damage<K: redb::Key + 'static>(
    db: &Database,
    table: TableDefinition<K, &[u8]>,
    key: K::SelfType<'_>,
) {
    let write = db.begin_write().unwrap();
    write
        .open_table(table)
        .unwrap()
        .insert(key, b"{not json".as_slice())
        .unwrap();
    write.commit().unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_damaged_record_is_skipped_alone_and_the_rest_delivered() {
    let dir = tempfile::tempdir().unwrap();
    let db = database(&dir);
    let clock = Clock::starting_at(T0);
    let damaged_row = {
        let queue = Queue::open_with_clock(
            db.clone(),
            config(&["a"]),
            Fake::new(&clock, |_, _, _| retry()),
            clock.clone(),
        )
        .unwrap();
        let first = queue.enqueue(&ringing(1, "100")).unwrap();
        queue.enqueue(&ringing(2, "100")).unwrap();
        queue.shutdown(Duration::from_secs(1)).await;
        first.deliveries[0].0
    };
    damage(&db, store::DELIVERIES, damaged_row);

    let fake = Fake::delivering(&clock);
    let queue = Queue::open_with_clock(db.clone(), config(&["a"]), fake.clone(), clock).unwrap();
    assert_eq!(queue.stats().unreadable_records, 1, "the damaged row");
    // (Opening prunes call records that do not read; one damaged later is met by `take`.)
    let call_two = store::call_key(&started(2, "100"));
    damage(&db, store::CALLS, call_two.as_str());
    let failing = |_: &redb::WriteTransaction| -> Result<(), String> { Err("disk full".into()) };
    queue
        .take(&[started(2, "100")], Some(&failing))
        .unwrap_err();
    assert_eq!(
        queue.stats().unreadable_records,
        1,
        "a batch that failed reports nothing: its retry meets the record again"
    );
    queue.enqueue(&started(2, "100")).unwrap();
    assert_eq!(
        queue.stats().unreadable_records,
        2,
        "and call 2's record, once"
    );
    settle(&queue, drained).await;
    assert_eq!(
        fake.delivered("a"),
        keys(&[ringing(2, "100"), started(2, "100")]),
        "everything else is delivered"
    );
    let listed = listed_ids(&db);
    assert!(
        listed.is_empty(),
        "the damaged row is not listed: {listed:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn reconfigure_swaps_plugins_and_routes_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = database(&dir);
    let clock = Clock::starting_at(T0);
    let old = Fake::new(&clock, |_, _, _| retry());
    let queue = Queue::open_with_clock(db, config(&["crm"]), old.clone(), clock.clone()).unwrap();
    let first = [ringing(1, "100"), started(1, "100")];
    for event in &first {
        queue.enqueue(event).unwrap();
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        old.delivered("crm"),
        Vec::<String>::new(),
        "the old one fails"
    );

    // A new instance of the same plugin: what is queued goes to it, in order.
    let new = Fake::delivering(&clock);
    queue.reconfigure(config(&["crm"]), new.clone());
    settle(&queue, drained).await;
    assert_eq!(new.delivered("crm"), keys(&first));

    // Routes now name "audit" instead; "crm" is gone and what is queued for it waits.
    let audit = Fake::delivering(&clock);
    let mut both = config(&["crm", "audit"]);
    both.routing.routes[0].plugins = vec!["audit".into()];
    queue.reconfigure(both, audit.clone());
    queue.enqueue(&ringing(2, "100")).unwrap();
    settle(&queue, drained).await;
    assert_eq!(audit.delivered("audit"), keys(&[ringing(2, "100")]));
    assert_eq!(audit.delivered("crm"), Vec::<String>::new());

    let mut only_audit = config(&["audit"]);
    only_audit.routing.routes[0].plugins = vec!["audit".into(), "crm".into()];
    queue.reconfigure(only_audit, audit.clone());
    queue.enqueue(&ringing(3, "100")).unwrap();
    settle(&queue, |stats| stats.plugins["audit"].pending == 0).await;
    tokio::time::sleep(Duration::from_secs(60)).await;
    let stats = queue.stats();
    assert_eq!(
        stats.plugins["crm"].pending, 1,
        "kept for the removed plugin"
    );
    assert!(!stats.plugins["crm"].configured);
    assert_eq!(
        audit.delivered("crm"),
        Vec::<String>::new(),
        "and not attempted"
    );

    queue.reconfigure(config(&["audit", "crm"]), audit.clone());
    settle(&queue, drained).await;
    assert_eq!(
        audit.delivered("crm"),
        keys(&[ringing(3, "100")]),
        "configured again, it resumes"
    );
}

#[tokio::test(start_paused = true)]
async fn an_event_no_plugin_wants_is_not_stored() {
    let dir = tempfile::tempdir().unwrap();
    let db = database(&dir);
    let clock = Clock::starting_at(T0);
    let mut config = config(&["crm"]);
    config.routing.routes[0].extensions = vec![NumberPattern::parse("100").unwrap()];
    let queue =
        Queue::open_with_clock(db.clone(), config, Fake::delivering(&clock), clock).unwrap();
    let taken = queue.enqueue(&ringing(1, "200")).unwrap();
    assert_eq!(
        taken,
        Enqueued {
            event: None,
            deliveries: vec![]
        }
    );
    assert_eq!(store::event_count(&db).unwrap(), 0);
}

#[tokio::test(start_paused = true)]
async fn delivered_events_leave_no_trace() {
    let dir = tempfile::tempdir().unwrap();
    let db = database(&dir);
    let clock = Clock::starting_at(T0);
    let fake = Fake::delivering(&clock);
    let queue =
        Queue::open_with_clock(db.clone(), config(&["a", "b"]), fake.clone(), clock).unwrap();
    for call in 1..=3 {
        queue.enqueue(&ringing(call, "100")).unwrap();
    }
    settle(&queue, drained).await;
    assert_eq!(fake.delivered("a").len(), 3);
    assert_eq!(fake.delivered("b").len(), 3);
    assert_eq!(store::event_count(&db).unwrap(), 0);
    assert!(store::all_deliveries(&db).unwrap().is_empty());
}

#[tokio::test(start_paused = true)]
async fn recordings_follow_the_plugins_of_their_call() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Clock::starting_at(T0);
    let routing = Routes {
        routes: vec![
            Route {
                extensions: vec![NumberPattern::parse("100-199").unwrap()],
                queues: None,
                plugins: vec!["hubspot".into()],
            },
            Route {
                extensions: vec![NumberPattern::Any],
                queues: Some(vec![NumberPattern::parse("800").unwrap()]),
                plugins: vec!["zendesk".into()],
            },
        ],
        default_plugins: vec!["generic-webhook".into()],
    };
    let config = QueueConfig::new(routing, ["hubspot", "zendesk", "generic-webhook"]);
    let fake = Fake::delivering(&clock);
    let queue = Queue::open_with_clock(database(&dir), config, fake.clone(), clock).unwrap();
    let plugins =
        |taken: Enqueued| -> Vec<String> { taken.deliveries.into_iter().map(|(_, p)| p).collect() };
    assert_eq!(
        plugins(queue.enqueue(&ringing(1, "150")).unwrap()),
        ["hubspot"]
    );
    assert_eq!(
        plugins(queue.enqueue(&ended(1, "800")).unwrap()),
        ["zendesk"]
    );
    assert_eq!(
        plugins(queue.enqueue(&recording(1)).unwrap()),
        ["hubspot", "zendesk"],
        "every plugin that had the call's events"
    );
    assert_eq!(
        plugins(queue.enqueue(&recording(2)).unwrap()),
        ["generic-webhook"],
        "an unknown call: the default plugins"
    );
    settle(&queue, drained).await;
}

/// `event` as rung on behalf of `queue` (contract 0.2's `queue`).
fn through(queue: &str, mut event: CallEvent) -> CallEvent {
    let facts = match &mut event {
        CallEvent::Ringing(o) | CallEvent::Dialing(o) => &mut o.facts,
        CallEvent::Started(s) => &mut s.facts,
        CallEvent::Ended(e) => &mut e.facts,
        CallEvent::Recording(_) => unreachable!(),
    };
    facts.queue = Some(queue.to_owned());
    event
}

#[tokio::test(start_paused = true)]
async fn a_route_by_queue_takes_every_event_of_a_call_through_it() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Clock::starting_at(T0);
    let routing = Routes {
        routes: vec![Route {
            extensions: vec![NumberPattern::Any],
            queues: Some(vec![NumberPattern::parse("800").unwrap()]),
            plugins: vec!["support".into()],
        }],
        default_plugins: vec!["generic-webhook".into()],
    };
    let config = QueueConfig::new(routing, ["support", "generic-webhook"]);
    let fake = Fake::delivering(&clock);
    let queue = Queue::open_with_clock(database(&dir), config, fake.clone(), clock).unwrap();
    let plugins =
        |taken: Enqueued| -> Vec<String> { taken.deliveries.into_iter().map(|(_, p)| p).collect() };
    let taken = |event: CallEvent| plugins(queue.enqueue(&event).unwrap());
    // The agents of queue 800, and then whoever the call is transferred to (no queue of its
    // own): all the call's events.
    assert_eq!(taken(through("800", ringing(1, "121"))), ["support"]);
    assert_eq!(taken(through("800", started(1, "121"))), ["support"]);
    assert_eq!(taken(through("800", ended(1, "121"))), ["support"]);
    assert_eq!(taken(started(1, "130")), ["support"]);
    assert_eq!(taken(ended(1, "130")), ["support"]);
    // The queue's own missed call, also as stored before events named their queue.
    assert_eq!(taken(ended(2, "800")), ["support"]);
    // Another queue's and a direct call's events go by their extension.
    assert_eq!(
        taken(through("801", ringing(3, "121"))),
        ["generic-webhook"]
    );
    assert_eq!(taken(ringing(4, "121")), ["generic-webhook"]);
    settle(&queue, drained).await;
}

// ---------------------------------------------------------------------------------------------
// Crashes and shutdown

#[test]
fn a_crash_redelivers_everything_undelivered_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let events: Vec<CallEvent> = (1..=4)
        .flat_map(|call| {
            [
                ringing(call, "100"),
                started(call, "100"),
                ended(call, "100"),
            ]
        })
        .collect();
    let mut crashed_at = 0;
    let mut first_life = Vec::new();
    {
        let rt = runtime();
        rt.block_on(async {
            let clock = Clock::starting_at(T0);
            // Calls 1 and 2 reach "a"; everything else keeps failing.
            let fake = Fake::new(&clock, |plugin, event, _| {
                let call = event.call_id().pbx_call_id;
                if plugin == "a" && call <= 2 {
                    DeliveryOutcome::Delivered
                } else {
                    retry()
                }
            });
            let queue = Queue::open_with_clock(
                database(&dir),
                config(&["a", "b"]),
                fake.clone(),
                clock.clone(),
            )
            .unwrap();
            for event in &events {
                queue.enqueue(event).unwrap();
            }
            tokio::time::sleep(Duration::from_secs(60)).await;
            first_life = fake.seen();
            crashed_at = clock.now_ms();
            // No shutdown: the runtime is dropped with attempts in flight.
        });
    }
    let delivered_first = first_life
        .iter()
        .filter(|s| s.outcome == "delivered")
        .map(|s| s.key.clone());
    assert_eq!(
        by_call(delivered_first),
        by_call(keys(&events[..6])),
        "calls 1 and 2 reached a"
    );
    let tries_of = |seen: &[Seen], key: &str| {
        seen.iter()
            .filter(|s| s.plugin == "a" && s.key == key)
            .map(|s| s.attempt)
            .collect::<Vec<_>>()
    };
    let head = ringing(3, "100").key();
    assert_eq!(tries_of(&first_life, &head), [1, 2, 3]);

    let rt = runtime();
    rt.block_on(async {
        let clock = Clock::starting_at(crashed_at);
        let fake = Fake::delivering(&clock);
        let queue =
            Queue::open_with_clock(database(&dir), config(&["a", "b"]), fake.clone(), clock)
                .unwrap();
        let stats = queue.stats();
        assert_eq!(stats.plugins["a"].pending, 6);
        assert_eq!(stats.plugins["b"].pending, 12);
        settle(&queue, drained).await;
        assert_eq!(
            by_call(fake.delivered("a")),
            by_call(keys(&events[6..])),
            "the rest, in order per call, none missing, none twice"
        );
        assert_eq!(by_call(fake.delivered("b")), by_call(keys(&events)));
        assert_eq!(
            tries_of(&fake.seen(), &head),
            [4],
            "the attempt counter survived"
        );
    });
}

/// Keys grouped by call (the call id without its link), in delivery order.
fn by_call(keys: impl IntoIterator<Item = String>) -> BTreeMap<String, Vec<String>> {
    let mut calls: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for key in keys {
        let call = key.split('-').next().unwrap().to_string();
        calls.entry(call).or_default().push(key);
    }
    calls
}

#[tokio::test(start_paused = true)]
async fn shutdown_stops_taking_and_lets_attempts_finish() {
    let dir = tempfile::tempdir().unwrap();
    let db = database(&dir);
    let clock = Clock::starting_at(T0);
    let fake = Fake::delivering(&clock);
    let queue = Queue::open_with_clock(db.clone(), config(&["a"]), fake.clone(), clock).unwrap();
    queue.enqueue(&ringing(1, "100")).unwrap();
    tokio::task::yield_now().await; // the scheduler starts the attempt
    let report = queue.shutdown(Duration::from_secs(5)).await;
    assert_eq!(report, ShutdownReport { interrupted: 0 });
    assert_eq!(fake.delivered("a").len(), 1, "the running attempt finished");
    assert!(matches!(
        queue.enqueue(&ringing(2, "100")),
        Err(QueueError::ShuttingDown)
    ));
    assert!(store::all_deliveries(&db).unwrap().is_empty());
}

#[tokio::test(start_paused = true)]
async fn shutdown_abandons_attempts_that_outlast_the_grace() {
    let dir = tempfile::tempdir().unwrap();
    let db = database(&dir);
    let clock = Clock::starting_at(T0);
    let fake = Arc::new(Fake {
        took: Duration::from_secs(60),
        ..Arc::into_inner(Fake::delivering(&clock)).unwrap()
    });
    let queue = Queue::open_with_clock(db.clone(), config(&["a"]), fake.clone(), clock).unwrap();
    queue.enqueue(&ringing(1, "100")).unwrap();
    tokio::task::yield_now().await;
    let report = queue.shutdown(Duration::from_secs(1)).await;
    assert_eq!(report, ShutdownReport { interrupted: 1 });
    let rows = store::all_deliveries(&db).unwrap();
    assert_eq!(rows.len(), 1, "still pending, for the next start");
    assert_eq!(rows[0].1.attempts, 0);
}

// ---------------------------------------------------------------------------------------------
// Retries and ordering

#[tokio::test(start_paused = true)]
async fn retries_follow_the_ladder_and_retry_after() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Clock::starting_at(T0);
    let fake = Fake::new(&clock, |_, _, attempt| match attempt {
        1 | 3 | 4 => retry(),
        2 => DeliveryOutcome::Retry {
            message: "HTTP 429".into(),
            after: Some(Duration::from_secs(7)),
        },
        5 => DeliveryOutcome::Failed {
            message: "trap".into(),
        },
        _ => DeliveryOutcome::Delivered,
    });
    let queue =
        Queue::open_with_clock(database(&dir), config(&["a"]), fake.clone(), clock).unwrap();
    queue.enqueue(&ringing(1, "100")).unwrap();
    settle(&queue, drained).await;
    let times: Vec<u64> = fake.seen().iter().map(|s| s.at).collect();
    let gaps: Vec<u64> = times.windows(2).map(|w| w[1] - w[0]).collect();
    // Each gap is the delay plus the 10 ms the fake takes per attempt.
    assert_eq!(
        gaps,
        [5_010, 7_010, 120_010, 600_010, 1_800_010],
        "5 s, Retry-After 7 s, then the ladder's 2 min, 10 min, 30 min (failed counts too)"
    );
    let attempts: Vec<u32> = fake.seen().iter().map(|s| s.attempt).collect();
    assert_eq!(attempts, [1, 2, 3, 4, 5, 6]);
}

#[tokio::test(start_paused = true)]
async fn jitter_stays_within_twenty_percent() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Clock::starting_at(T0);
    let fake = Fake::new(&clock, |_, _, attempt| {
        if attempt <= 20 {
            retry()
        } else {
            DeliveryOutcome::Delivered
        }
    });
    let mut config = config(&["a"]);
    let policy = config.plugins.get_mut("a").unwrap();
    policy.retry.jitter = 0.2;
    policy.retry.ladder = vec![Duration::from_secs(100)];
    let queue = Queue::open_with_clock(database(&dir), config, fake.clone(), clock).unwrap();
    queue.enqueue(&ringing(1, "100")).unwrap();
    settle(&queue, drained).await;
    let times: Vec<u64> = fake.seen().iter().map(|s| s.at).collect();
    let gaps: Vec<u64> = times.windows(2).map(|w| w[1] - w[0] - 10).collect();
    assert_eq!(gaps.len(), 20);
    assert!(
        gaps.iter().all(|g| (80_000..=120_000).contains(g)),
        "{gaps:?}"
    );
    assert!(gaps.iter().any(|g| *g != 100_000), "jittered: {gaps:?}");
}

#[tokio::test(start_paused = true)]
async fn gives_up_by_count_and_by_age() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Clock::starting_at(T0);
    let fake = Fake::new(&clock, |_, _, _| retry());
    let mut config = config(&["few", "young"]);
    config.plugins.get_mut("few").unwrap().retry.max_attempts = 3;
    config.plugins.get_mut("young").unwrap().retry.max_age = Duration::from_secs(60);
    let queue = Queue::open_with_clock(database(&dir), config, fake.clone(), clock).unwrap();
    queue.enqueue(&ringing(1, "100")).unwrap();
    settle(&queue, drained).await;
    let parked = queue
        .list(&DeliveryFilter {
            parked_only: true,
            ..Default::default()
        })
        .unwrap();
    let reasons: BTreeMap<&str, (&str, u32)> = parked
        .iter()
        .map(|d| {
            (
                d.plugin.as_str(),
                (d.parked.as_ref().unwrap().1.as_str(), d.attempts),
            )
        })
        .collect();
    assert_eq!(
        reasons["few"],
        ("gave up after 3 attempts; last: HTTP 503", 3)
    );
    // 0, 5 s, 35 s, then the last try moved forward to the 60 s deadline.
    assert_eq!(
        reasons["young"],
        ("gave up after 4 attempts in 1m; last: HTTP 503", 4)
    );
    let young: Vec<u64> = fake
        .seen()
        .iter()
        .filter(|s| s.plugin == "young")
        .map(|s| s.at)
        .collect();
    assert_eq!(young, [10, 5_020, 35_030, 60_010]);
}

#[tokio::test(start_paused = true)]
async fn a_later_event_waits_while_an_earlier_one_retries() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Clock::starting_at(T0);
    let first = ringing(1, "100").key();
    let fake = Fake::new(&clock, move |_, event, attempt| {
        if event.key() == first && attempt < 3 {
            retry()
        } else {
            DeliveryOutcome::Delivered
        }
    });
    let queue =
        Queue::open_with_clock(database(&dir), config(&["a"]), fake.clone(), clock).unwrap();
    let call1 = [ringing(1, "100"), started(1, "100"), ended(1, "100")];
    for event in &call1 {
        queue.enqueue(event).unwrap();
    }
    queue.enqueue(&ringing(2, "101")).unwrap();
    settle(&queue, drained).await;
    let order: Vec<(String, &str, u64)> = fake
        .seen()
        .into_iter()
        .map(|s| (s.key, s.outcome, s.at))
        .collect();
    let k = |e: &CallEvent| e.key();
    assert_eq!(
        order,
        [
            (k(&call1[0]), "retry", 10),
            (k(&ringing(2, "101")), "delivered", 10), // another call does not wait
            (k(&call1[0]), "retry", 5_020),
            (k(&call1[0]), "delivered", 35_030),
            (k(&call1[1]), "delivered", 35_040),
            (k(&call1[2]), "delivered", 35_050),
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn a_failing_plugin_does_not_delay_other_plugins_or_calls() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Clock::starting_at(T0);
    let fake = Fake::new(&clock, |plugin, event, _| {
        if plugin == "bad" && event.call_id().pbx_call_id == 1 {
            retry()
        } else {
            DeliveryOutcome::Delivered
        }
    });
    let queue = Queue::open_with_clock(
        database(&dir),
        config(&["bad", "good"]),
        fake.clone(),
        clock,
    )
    .unwrap();
    let events = [
        ringing(1, "100"),
        ended(1, "100"),
        ringing(2, "101"),
        ended(2, "101"),
    ];
    for event in &events {
        queue.enqueue(event).unwrap();
    }
    settle(&queue, |s| {
        s.plugins["good"].pending == 0 && s.plugins["bad"].pending == 2
    })
    .await;
    tokio::time::sleep(Duration::from_secs(60)).await;
    let late: Vec<Seen> = fake
        .seen()
        .into_iter()
        .filter(|s| s.outcome == "delivered" && s.at > 100)
        .collect();
    assert!(
        late.is_empty(),
        "all but call 1 at bad delivered at once: {late:?}"
    );
    assert_eq!(by_call(fake.delivered("good")), by_call(keys(&events)));
    assert_eq!(fake.delivered("bad"), keys(&events[2..]));
}

// ---------------------------------------------------------------------------------------------
// Parking, replay, disabling, circuit breaker

#[tokio::test(start_paused = true)]
async fn parked_then_retried_then_delivered() {
    let dir = tempfile::tempdir().unwrap();
    let db = database(&dir);
    let clock = Clock::starting_at(T0);
    let fake = Fake::new(&clock, |_, event, _| {
        if event.name() == "ringing" {
            rejected(false)
        } else {
            DeliveryOutcome::Delivered
        }
    });
    let queue =
        Queue::open_with_clock(db.clone(), config(&["a"]), fake.clone(), clock.clone()).unwrap();
    queue.enqueue(&ringing(1, "100")).unwrap();
    queue.enqueue(&ended(1, "100")).unwrap();
    settle(&queue, drained).await;
    assert_eq!(
        fake.delivered("a"),
        [ended(1, "100").key()],
        "a parked event does not block its call"
    );

    let parked = queue
        .list(&DeliveryFilter {
            parked_only: true,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(parked.len(), 1);
    let info = &parked[0];
    assert_eq!(
        (info.status, info.attempts, info.plugin.as_str()),
        (DeliveryStatus::Parked, 1, "a")
    );
    assert_eq!(info.parked.as_ref().unwrap().1, "rejected: HTTP 400");
    assert_eq!(info.history.len(), 1);
    assert_eq!(info.history[0].outcome, "rejected");
    assert_eq!(info.history[0].message.as_deref(), Some("HTTP 400"));
    assert_eq!(info.history[0].duration, Duration::from_millis(10));
    assert_eq!(queue.stats().parked, 1);

    // The receiver is fixed; the operator retries.
    fake.set(|_, _, _| DeliveryOutcome::Delivered);
    tokio::time::sleep(Duration::from_secs(3600)).await;
    assert_eq!(
        fake.seen().len(),
        2,
        "parked rows are not retried on their own"
    );
    queue.retry(info.id).unwrap();
    settle(&queue, drained).await;
    let last = fake.seen().pop().unwrap();
    assert_eq!(
        (last.key, last.attempt, last.outcome),
        (ringing(1, "100").key(), 2, "delivered")
    );
    assert_eq!(queue.stats().parked, 0);
    assert!(queue.list(&DeliveryFilter::default()).unwrap().is_empty());
    assert_eq!(store::event_count(&db).unwrap(), 0);
    assert!(matches!(
        queue.retry(info.id),
        Err(QueueError::NoSuchDelivery(_))
    ));
}

#[tokio::test(start_paused = true)]
async fn parked_deliveries_expire_after_the_time_they_are_kept() {
    const DAY: Duration = Duration::from_secs(24 * 3600);
    let dir = tempfile::tempdir().unwrap();
    let db = database(&dir);
    let clock = Clock::starting_at(T0);
    let fake = Fake::new(&clock, |_, _, _| rejected(false));
    let queue =
        Queue::open_with_clock(db.clone(), config(&["a"]), fake.clone(), clock.clone()).unwrap();
    assert_eq!(
        queue.inner.parked_keep,
        Some(30 * DAY),
        "by default 30 days"
    );
    queue.enqueue(&ringing(1, "100")).unwrap();
    settle(&queue, drained).await;
    tokio::time::sleep(20 * DAY).await;
    queue.enqueue(&ringing(2, "100")).unwrap();
    settle(&queue, drained).await;
    assert_eq!(queue.stats().parked, 2);
    assert_eq!(store::event_count(&db).unwrap(), 2);

    // Day 31: the first was parked 31 days ago, the second 11.
    tokio::time::sleep(11 * DAY).await;
    let stats = queue.stats();
    assert_eq!(
        (stats.parked, stats.plugins["a"].parked_expired),
        (1, 1),
        "the older one is removed and counted"
    );
    let left = queue.list(&DeliveryFilter::default()).unwrap();
    assert_eq!(
        left.iter()
            .map(|d| d.idempotency_key.clone())
            .collect::<Vec<_>>(),
        [ringing(2, "100").key()],
        "the younger one stays"
    );
    assert_eq!(store::event_count(&db).unwrap(), 1, "with its event only");
    let text = crate::telemetry::metrics::render_queue(&stats);
    assert!(text.contains("callhook_plugin_parked_expired_total{plugin=\"a\"} 1"));
}

#[test]
fn expiring_parked_deliveries_is_bounded_per_transaction_and_skips_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let db = database(&dir);
    store::open(&db).unwrap();
    let routing = config(&["a"]).routing;
    let events: Vec<CallEvent> = (1..=4).map(|call| ringing(call, "100")).collect();
    let taken = store::take(&db, &events, &routing, T0, None, &|record| {
        panic!("{record:?}")
    })
    .unwrap();
    let ids: Vec<u64> = taken.iter().map(|(_, rows)| rows[0].0).collect();
    let park = |id: u64, at: u64| {
        let attempt = store::AttemptLog {
            at,
            attempt: 1,
            outcome: "rejected".into(),
            message: None,
            duration_ms: 1,
        };
        let change = store::Change::Park {
            reason: "rejected".into(),
            outcome_unknown: false,
        };
        store::record_attempt(&db, id, attempt, &change, 20, None).unwrap();
    };
    // Three parked long ago, one parked recently; the fourth event's row stays pending.
    park(ids[0], T0);
    park(ids[1], T0);
    park(ids[2], T0 + 10_000);
    let before = T0 + 5_000;
    let first = store::expire_parked(&db, before, 1).unwrap();
    let second = store::expire_parked(&db, before, 1).unwrap();
    let third = store::expire_parked(&db, before, 1).unwrap();
    let removed: Vec<u64> = first.iter().chain(&second).map(|e| e.id).collect();
    assert_eq!(
        removed,
        ids[..2],
        "one row per transaction, oldest ids first"
    );
    assert!(
        third.is_empty(),
        "the recently parked and the pending rows stay"
    );
    assert_eq!(listed_ids(&db), ids[2..]);
    assert_eq!(store::event_count(&db).unwrap(), 2);
}

#[tokio::test(start_paused = true)]
async fn retry_parked_since_a_time_and_per_plugin() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Clock::starting_at(T0);
    let fake = Fake::new(&clock, |_, _, _| rejected(false));
    let queue = Queue::open_with_clock(
        database(&dir),
        config(&["a", "b"]),
        fake.clone(),
        clock.clone(),
    )
    .unwrap();
    queue.enqueue(&ringing(1, "100")).unwrap();
    settle(&queue, drained).await;
    tokio::time::sleep(Duration::from_secs(600)).await;
    let cut = replay::timestamp(clock.now_ms());
    queue.enqueue(&ringing(2, "100")).unwrap();
    settle(&queue, drained).await;
    assert_eq!(queue.stats().parked, 4);

    let since = DeliveryFilter {
        since: Some(cut),
        ..Default::default()
    };
    let listed = queue.list(&since).unwrap();
    assert_eq!(
        listed
            .iter()
            .map(|d| d.call_id.as_str())
            .collect::<Vec<_>>(),
        ["240101120000_2-0"; 2]
    );
    let by_plugin = DeliveryFilter {
        plugin: Some("b".into()),
        ..Default::default()
    };
    assert_eq!(queue.list(&by_plugin).unwrap().len(), 2);

    fake.set(|_, _, _| DeliveryOutcome::Delivered);
    let retried = queue
        .retry_parked(&DeliveryFilter {
            since: Some(cut),
            plugin: Some("a".into()),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(retried.len(), 1);
    settle(&queue, drained).await;
    assert_eq!(fake.delivered("a"), [ringing(2, "100").key()]);
    assert_eq!(queue.stats().parked, 3);
}

#[test]
fn a_gone_target_disables_its_plugin_durably_until_re_enabled() {
    let dir = tempfile::tempdir().unwrap();
    let mut stopped_at = 0;
    {
        let rt = runtime();
        rt.block_on(async {
            let clock = Clock::starting_at(T0);
            let fake = Fake::new(&clock, |plugin, _, _| {
                if plugin == "gone" {
                    rejected(true)
                } else {
                    DeliveryOutcome::Delivered
                }
            });
            let queue = Queue::open_with_clock(
                database(&dir),
                config(&["gone", "ok"]),
                fake.clone(),
                clock.clone(),
            )
            .unwrap();
            queue.enqueue(&ringing(1, "100")).unwrap();
            settle(&queue, |s| {
                s.plugins["gone"].disabled && s.plugins["ok"].pending == 0
            })
            .await;
            queue.enqueue(&ringing(2, "100")).unwrap();
            queue.enqueue(&ringing(3, "100")).unwrap();
            tokio::time::sleep(Duration::from_secs(3600)).await;
            assert_eq!(
                fake.seen().iter().filter(|s| s.plugin == "gone").count(),
                1,
                "no more attempts"
            );
            assert_eq!(fake.delivered("ok").len(), 3, "other plugins go on");
            let disabled = queue.disabled_plugins();
            assert_eq!(disabled.len(), 1);
            assert_eq!(
                (disabled[0].0.as_str(), disabled[0].2.as_str()),
                ("gone", "target gone: HTTP 410")
            );
            queue.shutdown(Duration::from_secs(1)).await;
            stopped_at = clock.now_ms();
        });
    }
    let rt = runtime();
    rt.block_on(async {
        let clock = Clock::starting_at(stopped_at);
        let fake = Fake::delivering(&clock);
        let queue =
            Queue::open_with_clock(database(&dir), config(&["gone", "ok"]), fake.clone(), clock)
                .unwrap();
        tokio::time::sleep(Duration::from_secs(600)).await;
        assert!(fake.seen().is_empty(), "still disabled after a restart");
        let stats = queue.stats();
        assert!(stats.plugins["gone"].disabled);
        assert_eq!(
            (stats.plugins["gone"].pending, stats.plugins["gone"].parked),
            (2, 1)
        );

        assert!(queue.enable_plugin("gone").unwrap());
        settle(&queue, drained).await;
        assert_eq!(
            fake.delivered("gone"),
            [ringing(2, "100").key(), ringing(3, "100").key()]
        );
        assert_eq!(
            queue.stats().parked,
            1,
            "the 410 delivery waits for an operator's retry"
        );
        assert!(queue.disabled_plugins().is_empty());
    });
}

#[tokio::test(start_paused = true)]
async fn the_circuit_breaker_pauses_without_burning_retries() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Clock::starting_at(T0);
    let fake = Fake::new(&clock, |_, _, _| retry());
    let mut config = config(&["a"]);
    let policy = config.plugins.get_mut("a").unwrap();
    policy.breaker = BreakerPolicy {
        failures: 3,
        cool_down: Duration::from_secs(60),
    };
    policy.concurrency = 1;
    let queue = Queue::open_with_clock(database(&dir), config, fake.clone(), clock).unwrap();
    for call in 1..=4 {
        queue.enqueue(&ringing(call, "100")).unwrap();
    }
    settle(&queue, |s| {
        matches!(s.plugins["a"].breaker, BreakerState::Open { .. })
    })
    .await;
    assert_eq!(fake.seen().len(), 3, "three failures open the breaker");
    tokio::time::sleep(Duration::from_secs(59)).await;
    assert_eq!(fake.seen().len(), 3, "paused: the retries due at 5 s wait");

    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(fake.seen().len(), 4, "one probe after the cool-down");
    assert!(
        matches!(
            queue.stats().plugins["a"].breaker,
            BreakerState::Open { .. }
        ),
        "probe failed"
    );

    fake.set(|_, _, _| DeliveryOutcome::Delivered);
    settle(&queue, drained).await;
    let seen = fake.seen();
    assert!(
        seen[4].at >= 120_000,
        "next probe after another cool-down: {:?}",
        seen[4]
    );
    assert_eq!(
        seen.len(),
        8,
        "4 failures, then each of the 4 delivered once"
    );
    let attempts: Vec<u32> = seen[4..].iter().map(|s| s.attempt).collect();
    assert_eq!(attempts, [2, 2, 2, 2], "waiting cost no attempts");
    assert_eq!(queue.stats().plugins["a"].breaker, BreakerState::Closed);
    assert_eq!(queue.stats().plugins["a"].breaker_opened, 2);
}

#[tokio::test(start_paused = true)]
async fn concurrency_cap_and_rate_limit_hold() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Clock::starting_at(T0);
    let fake = Arc::new(Fake {
        took: Duration::from_secs(1),
        ..Arc::into_inner(Fake::delivering(&clock)).unwrap()
    });
    let mut config = config(&["capped", "limited"]);
    config.plugins.get_mut("capped").unwrap().concurrency = 2;
    config.plugins.get_mut("limited").unwrap().rate_per_second = Some(4.0);
    let queue = Queue::open_with_clock(database(&dir), config, fake.clone(), clock).unwrap();
    for call in 1..=8 {
        queue.enqueue(&ringing(call, "100")).unwrap();
    }
    settle(&queue, drained).await;
    let finished = |plugin: &str| -> Vec<u64> {
        fake.seen()
            .iter()
            .filter(|s| s.plugin == plugin)
            .map(|s| s.at)
            .collect()
    };
    assert_eq!(
        finished("capped"),
        [1000, 1000, 2000, 2000, 3000, 3000, 4000, 4000]
    );
    assert_eq!(
        finished("limited"),
        [1000, 1000, 1000, 1000, 1250, 1500, 1750, 2000],
        "a burst of 4, then 4 a second"
    );
}

// ---------------------------------------------------------------------------------------------
// Stats

#[tokio::test(start_paused = true)]
async fn stats_count_depth_age_and_outcomes() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Clock::starting_at(T0);
    let fake = Fake::new(&clock, |plugin, _, _| match plugin {
        "down" => retry(),
        "picky" => rejected(false),
        _ => DeliveryOutcome::Delivered,
    });
    let queue = Queue::open_with_clock(
        database(&dir),
        config(&["down", "picky", "up"]),
        fake,
        clock,
    )
    .unwrap();
    assert_eq!(queue.stats().oldest_pending_age, None);
    queue.enqueue(&ringing(1, "100")).unwrap();
    tokio::time::sleep(Duration::from_secs(20)).await;
    queue.enqueue(&ringing(2, "100")).unwrap();
    tokio::time::sleep(Duration::from_secs(10)).await;

    let stats = queue.stats();
    assert_eq!((stats.events_taken, stats.depth, stats.parked), (2, 2, 2));
    assert_eq!(stats.oldest_pending_age, Some(Duration::from_secs(30)));
    let down = &stats.plugins["down"];
    assert_eq!((down.pending, down.parked, down.in_flight), (2, 0, 0));
    assert_eq!(down.oldest_pending_age, Some(Duration::from_secs(30)));
    assert_eq!(
        down.outcomes.retry, 4,
        "call 1 at 0 s and 5 s, call 2 at 20 s and 25 s"
    );
    assert_eq!(stats.plugins["picky"].outcomes.rejected, 2);
    assert_eq!(stats.plugins["picky"].parked, 2);
    assert_eq!(stats.plugins["up"].outcomes.delivered, 2);
    assert_eq!(stats.plugins["up"].durations.count, 2);
    assert_eq!(
        stats.plugins["up"].durations.counts[1], 2,
        "10 ms: in the 0.01 s bucket"
    );

    let text = crate::telemetry::metrics::render_queue(&stats);
    assert!(text.contains("callhook_queue_depth 2\n"), "{text}");
    assert!(
        text.contains("callhook_queue_oldest_pending_age_seconds 30.0\n"),
        "{text}"
    );
    assert!(
        text.contains("callhook_plugin_deliveries_total{plugin=\"down\",outcome=\"retry\"} 4\n")
    );
}

// ---------------------------------------------------------------------------------------------
// Property: no loss, no duplicate success

fn outcome_strategy() -> impl Strategy<Value = DeliveryOutcome> {
    prop_oneof![
        4 => Just(DeliveryOutcome::Delivered),
        2 => (0u64..3).prop_map(|s| DeliveryOutcome::Retry {
            message: "503".into(),
            after: (s > 0).then(|| Duration::from_secs(s)),
        }),
        1 => Just(DeliveryOutcome::Failed { message: "trap".into() }),
        1 => Just(rejected(false)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Whatever the plugins answer, and wherever the process crashes, once the parked
    /// deliveries are replayed every (event, plugin) has been delivered successfully exactly
    /// once; without parking, in order per call.
    #[test]
    fn no_event_is_lost_or_delivered_twice(
        calls in prop::collection::vec((1u64..4, 0usize..3), 1..12),
        outcomes in prop::collection::vec(outcome_strategy(), 1..40),
        crash_after_ms in 0u64..20_000,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let kinds = [ringing, started, ended];
        let events: Vec<CallEvent> = calls
            .iter()
            .enumerate()
            .map(|(i, (call, kind))| kinds[*kind](*call, &format!("{}", 100 + i)))
            .collect();
        let mut config = config(&["a", "b"]);
        for policy in config.plugins.values_mut() {
            policy.retry.ladder = vec![Duration::from_secs(1), Duration::from_secs(2)];
            policy.retry.max_attempts = 4;
        }
        let mut seen = Vec::new();
        let mut crashed_at = 0;
        {
            let rt = runtime();
            rt.block_on(async {
                let clock = Clock::starting_at(T0);
                let mut script = outcomes.clone().into_iter().cycle();
                let fake = Fake::new(&clock, move |_, _, _| script.next().unwrap());
                let queue = Queue::open_with_clock(database(&dir), config.clone(), fake.clone(), clock.clone()).unwrap();
                for event in &events {
                    queue.enqueue(event).unwrap();
                }
                tokio::time::sleep(Duration::from_millis(crash_after_ms)).await;
                seen = fake.seen();
                crashed_at = clock.now_ms();
            });
        }
        let rt = runtime();
        rt.block_on(async {
            let clock = Clock::starting_at(crashed_at);
            let mut script = outcomes.clone().into_iter().cycle().skip(seen.len());
            let fake = Fake::new(&clock, move |_, _, _| script.next().unwrap());
            let queue = Queue::open_with_clock(database(&dir), config.clone(), fake.clone(), clock).unwrap();
            settle(&queue, drained).await;
            fake.set(|_, _, _| DeliveryOutcome::Delivered);
            while queue.stats().parked > 0 {
                queue.retry_parked(&DeliveryFilter::default()).unwrap();
                settle(&queue, drained).await;
            }
            seen.extend(fake.seen());
        });
        for plugin in ["a", "b"] {
            let mut delivered: Vec<String> = seen
                .iter()
                .filter(|s| s.plugin == plugin && s.outcome == "delivered")
                .map(|s| s.key.clone())
                .collect();
            let parked_any = seen.iter().any(|s| s.plugin == plugin && s.outcome == "rejected")
                || seen.iter().filter(|s| s.plugin == plugin).any(|s| s.attempt >= 4);
            if !parked_any {
                prop_assert_eq!(by_call(delivered.clone()), by_call(keys(&events)), "order at {}", plugin);
            }
            delivered.sort();
            let mut expected = keys(&events);
            expected.sort();
            prop_assert_eq!(delivered, expected, "plugin {}", plugin);
        }
    }
}
