//! Misbehaving plugins are stopped or refused within their limits, with a clear error, while a
//! well-behaved plugin in the same runtime keeps delivering.

use crate::support::*;
use callhook::queue::DeliveryOutcome;
use callhook::runtime::{
    GENERIC_WEBHOOK_WASM, LoadError, PluginLimits, PluginRuntime, RuntimeConfig, VersionError,
};
use std::time::{Duration, Instant};

fn failed_with(outcome: &DeliveryOutcome, needle: &str) -> bool {
    matches!(outcome, DeliveryOutcome::Failed { message } if message.contains(needle))
}

fn rejected_with(outcome: &DeliveryOutcome, needle: &str) -> bool {
    matches!(outcome, DeliveryOutcome::Rejected { message, .. } if message.contains(needle))
}

#[tokio::test]
async fn runaway_memory_and_panics_are_stopped_while_others_deliver() {
    let sink = Sink::start().await;
    let (_dir, runtime) = runtime();
    let limits = PluginLimits {
        memory_bytes: 16 << 20,
        timeout: Duration::from_millis(500),
        ..PluginLimits::default()
    };
    let probe = probe();
    let load = |mode: &str| {
        let mut spec = spec(mode, &probe, &[], &[("mode", mode)]);
        spec.limits = limits;
        runtime.load(spec).unwrap()
    };
    let (spinner, hog, panicker) = (load("loop"), load("memory"), load("panic"));
    let url = sink.url("/ok/good");
    let good = runtime
        .load(spec(
            "good",
            GENERIC_WEBHOOK_WASM,
            &[&sink.origin()],
            &[("webhook_url", &url)],
        ))
        .unwrap();

    let started = Instant::now();
    let event = ringing();
    let (spun, hogged, panicked, delivered) = tokio::join!(
        deliver(&spinner, &event),
        deliver(&hog, &event),
        deliver(&panicker, &event),
        deliver(&good, &event),
    );
    assert!(
        failed_with(&spun, "computed for longer than its time limit of 500 ms"),
        "{spun:?}"
    );
    assert!(
        failed_with(&hogged, "exceeded its memory cap of 16 MiB"),
        "{hogged:?}"
    );
    assert!(
        failed_with(&panicked, "the probe panics on purpose"),
        "{panicked:?}"
    );
    assert_eq!(delivered, DeliveryOutcome::Delivered);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(
        sink.wait_for(1).await[0].target.split('?').next(),
        Some("/ok/good")
    );

    // The runtime is unharmed: the same plugins run again.
    assert_eq!(deliver(&good, &event).await, DeliveryOutcome::Delivered);
    assert!(failed_with(
        &deliver(&panicker, &event).await,
        "panics on purpose"
    ));
}

#[tokio::test]
async fn requests_outside_allowed_hosts_are_refused_with_the_setting_to_change() {
    let sink = Sink::start().await;
    let (_dir, runtime) = runtime();
    let probe = probe();
    let fetch = |allowed: &[&str], url: &str| {
        runtime
            .load(spec(
                "fetch",
                &probe,
                allowed,
                &[("mode", "fetch"), ("url", url)],
            ))
            .unwrap()
    };
    let event = ringing();

    let not_listed = fetch(&[], &sink.url("/ok/x"));
    let outcome = deliver(&not_listed, &event).await;
    assert!(
        rejected_with(
            &outcome,
            &format!(
                "{} is not in the plugin's allowed_hosts; add",
                sink.origin()
            )
        ),
        "{outcome:?}"
    );

    let metadata = fetch(&["http://*"], "http://169.254.169.254/latest/meta-data/");
    let outcome = deliver(&metadata, &event).await;
    assert!(
        rejected_with(&outcome, "cloud metadata endpoint"),
        "{outcome:?}"
    );

    let wildcard_to_loopback = fetch(&["http://*:*"], &sink.url("/ok/x"));
    let outcome = deliver(&wildcard_to_loopback, &event).await;
    assert!(
        rejected_with(&outcome, "a loopback address, which is refused"),
        "{outcome:?}"
    );

    assert!(sink.received().is_empty(), "nothing may reach the sink");

    let redirected = fetch(&[&sink.origin()], &sink.url("/redirect"));
    let outcome = deliver(&redirected, &event).await;
    assert!(rejected_with(&outcome, "HTTP 302"), "{outcome:?}");
    let received = sink.wait_for(1).await;
    assert_eq!(
        received.len(),
        1,
        "the redirect must not be followed: {received:?}"
    );
}

#[tokio::test]
async fn a_receiver_that_never_answers_hits_the_wall_clock_timeout() {
    let sink = Sink::start().await;
    let (_dir, runtime) = runtime();
    let mut spec = spec(
        "slow",
        &probe(),
        &[&sink.origin()],
        &[("mode", "fetch"), ("url", &sink.url("/slow"))],
    );
    spec.limits.timeout = Duration::from_millis(300);
    let plugin = runtime.load(spec).unwrap();
    let started = Instant::now();
    let outcome = deliver(&plugin, &ringing()).await;
    // The wall clock stops it; on a loaded machine the epoch deadline, which also counts wall
    // time, may be first when the plugin resumes: either way the message names the limit.
    assert!(
        failed_with(&outcome, "timed out after 300 ms")
            || failed_with(&outcome, "time limit of 300 ms (timeout_ms)"),
        "{outcome:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(3));
}

/// The largest `memory_mb` the configuration accepts loads and delivers in the default runtime,
/// and a cap above it is refused naming the same maximum: one constant sizes both.
#[tokio::test]
async fn the_largest_memory_cap_the_configuration_allows_loads_and_delivers() {
    let sink = Sink::start().await;
    let (_dir, runtime) = runtime();
    let url = sink.url("/ok/big");
    let at_most = |memory_mb: usize| {
        let mut spec = spec(
            "big",
            GENERIC_WEBHOOK_WASM,
            &[&sink.origin()],
            &[("webhook_url", &url)],
        );
        spec.limits.memory_bytes = memory_mb << 20;
        runtime.load(spec)
    };
    let max = RuntimeConfig::MAX_MEMORY_MB;
    for memory_mb in [512, max] {
        let plugin = at_most(memory_mb).unwrap_or_else(|e| panic!("{memory_mb} MiB: {e}"));
        assert_eq!(
            deliver(&plugin, &ringing()).await,
            DeliveryOutcome::Delivered
        );
    }
    assert_eq!(sink.wait_for(2).await.len(), 2);
    let error = at_most(max + 1).err().expect("above the maximum");
    assert!(
        matches!(error, LoadError::MemoryTooLarge { max_mb, .. } if max_mb == max),
        "{error}"
    );
}

#[tokio::test]
async fn plugins_read_their_settings_secrets_and_delivery() {
    let sink = Sink::start().await;
    let (_dir, runtime) = runtime();
    let url = sink.url("/ok/echo");
    let mut spec = spec(
        "echo",
        &probe(),
        &[&sink.origin()],
        &[("mode", "echo"), ("url", &url)],
    );
    spec.secrets = to_map(&[("token", "s3cr3t")]);
    let plugin = runtime.load(spec).unwrap();
    assert_eq!(deliver(&plugin, &ended()).await, DeliveryOutcome::Delivered);
    let body: serde_json::Value = serde_json::from_slice(&sink.wait_for(1).await[0].body).unwrap();
    assert_eq!(
        body,
        serde_json::json!({
            "settings": [["mode", "echo"], ["url", url]],
            "token": "s3cr3t",
            "missing": null,
            "event": "incoming",
            "id": "210701165649_782-1",
            "idempotency_key": "210701165649_782-1.incoming.120",
            "attempt": 1,
        })
    );
}

#[tokio::test]
async fn the_key_value_store_persists_across_deliveries_within_its_quota() {
    let sink = Sink::start().await;
    let (_dir, runtime) = runtime();
    let url = sink.url("/ok/kv");
    let settings = [
        ("mode", "kv"),
        ("url", url.as_str()),
        ("kv_value_size", "70000"),
    ];
    let plugin = runtime
        .load(spec("kv", &probe(), &[&sink.origin()], &settings))
        .unwrap();
    assert_eq!(
        deliver(&plugin, &ringing()).await,
        DeliveryOutcome::Delivered
    );
    assert_eq!(deliver(&plugin, &ended()).await, DeliveryOutcome::Delivered);
    let received = sink.wait_for(2).await;
    let bodies: Vec<serde_json::Value> = received
        .iter()
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .collect();
    assert_eq!(bodies[0]["previous"], serde_json::Value::Null);
    assert_eq!(bodies[0]["now"], "210701165649_782-0");
    assert_eq!(bodies[1]["previous"], "210701165649_782-0");
    assert_eq!(bodies[1]["now"], "210701165649_782-1");
    assert_eq!(bodies[1]["big"], "KvError::ValueTooLarge(65536)");
}

/// The `steady` bench's `kv` mode compares these two modes of the probe: `kv-webhook` is
/// `webhook` after one key-value write.
#[tokio::test]
async fn the_probe_sends_the_benches_webhook_query_with_or_without_a_key_value_write_first() {
    let sink = Sink::start().await;
    let (_dir, runtime) = runtime();
    let url = sink.url("/ok/events");
    let load = |mode: &str, kv_quota_bytes: Option<u64>| {
        let settings = [("mode", mode), ("url", url.as_str())];
        let mut spec = spec(mode, &probe(), &[&sink.origin()], &settings);
        spec.limits.kv_quota_bytes = kv_quota_bytes;
        runtime.load(spec).unwrap()
    };
    for mode in ["webhook", "kv-webhook"] {
        let outcome = deliver(&load(mode, None), &ringing()).await;
        assert_eq!(outcome, DeliveryOutcome::Delivered, "{mode}");
    }
    let queries: Vec<String> = sink
        .wait_for(2)
        .await
        .iter()
        .map(|r| r.query().to_owned())
        .collect();
    assert_eq!(queries, ["event=ringing&id=210701165649_782-0"; 2]);
    // A quota too small for the key: the write fails the delivery before it sends anything.
    let outcome = deliver(&load("kv-webhook", Some(8)), &ringing()).await;
    let message = outcome.message().unwrap_or_default();
    assert!(message.contains("quota of 8 bytes exceeded"), "{outcome:?}");
    assert_eq!(sink.received().len(), 2);
}

#[tokio::test]
async fn plugins_for_another_contract_version_are_refused_before_loading() {
    let (_dir, runtime) = runtime();
    let mut wasm = probe();
    let marker = b"callhook:api-version0.3.0";
    let at = wasm
        .windows(marker.len())
        .position(|w| w == marker)
        .expect("version section");
    wasm[at + marker.len() - 5..at + marker.len()].copy_from_slice(b"9.9.0");
    let error = runtime
        .load(spec("future", &wasm, &[], &[]))
        .err()
        .expect("must be refused");
    assert!(matches!(
        error,
        LoadError::Version {
            source: VersionError::Unsupported { .. },
            ..
        }
    ));
    assert!(
        error.to_string().contains("built against contract 9.9.0"),
        "{error}"
    );

    let error = runtime
        .load(spec("core", b"\0asm\x01\0\0\0", &[], &[]))
        .err()
        .unwrap();
    assert!(
        error.to_string().contains("not a WebAssembly component"),
        "{error}"
    );

    let error = runtime
        .load(spec("bad-host", &probe(), &["crm.example.com"], &[]))
        .err()
        .unwrap();
    assert!(
        error
            .to_string()
            .contains("invalid allowed_hosts entry \"crm.example.com\""),
        "{error}"
    );
}

#[tokio::test]
async fn compiled_plugins_are_cached_on_disk() {
    let cache = tempfile::tempdir().unwrap();
    let (dir, _) = runtime();
    let db = redb::Database::create(dir.path().join("cache-test.redb")).unwrap();
    let kv = callhook::runtime::KvStore::new(std::sync::Arc::new(db), Default::default());
    let config = RuntimeConfig {
        cache_dir: Some(cache.path().to_path_buf()),
        ..RuntimeConfig::default()
    };
    let runtime = PluginRuntime::new(config, kv).unwrap();
    runtime
        .load(spec("a", GENERIC_WEBHOOK_WASM, &[], &[]))
        .unwrap();
    let files: Vec<_> = std::fs::read_dir(cache.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    assert!(files[0].extension().is_some_and(|e| e == "cwasm"));
    let modified = std::fs::metadata(&files[0]).unwrap().modified().unwrap();
    let plugin = runtime
        .load(spec("b", GENERIC_WEBHOOK_WASM, &[], &[]))
        .unwrap();
    assert_eq!(
        std::fs::metadata(&files[0]).unwrap().modified().unwrap(),
        modified,
        "reused, not rewritten"
    );
    assert_eq!(
        deliver(&plugin, &ringing()).await,
        DeliveryOutcome::Delivered
    );
}

/// More deliveries at once than the pool has instances wait for one to be free instead of
/// failing (which would count against the plugin and could open its breaker).
#[tokio::test]
async fn deliveries_beyond_the_instance_pool_wait_for_a_free_instance() {
    let sink = Sink::start().await;
    let dir = tempfile::tempdir().unwrap();
    let kv = callhook::runtime::KvStore::new(database(&dir, "kv.redb"), Default::default());
    let config = RuntimeConfig {
        max_instances: 1,
        ..RuntimeConfig::default()
    };
    let runtime = PluginRuntime::new(config, kv).unwrap();
    let mut slow = spec(
        "slow",
        &probe(),
        &[&sink.origin()],
        &[("mode", "fetch"), ("url", &sink.url("/slow"))],
    );
    slow.limits.timeout = Duration::from_millis(800);
    let slow = runtime.load(slow).unwrap();
    let url = sink.url("/ok/waited");
    let webhook = runtime
        .load(spec(
            "webhook",
            GENERIC_WEBHOOK_WASM,
            &[&sink.origin()],
            &[("webhook_url", &url)],
        ))
        .unwrap();
    let event = ringing();
    let (held, waited) = tokio::join!(deliver(&slow, &event), async {
        // The slow delivery has the only instance once its request reached the receiver.
        sink.wait_for_requests_to("/slow", 1).await;
        deliver(&webhook, &event).await
    });
    assert!(failed_with(&held, "800 ms"), "{held:?}");
    assert_eq!(waited, DeliveryOutcome::Delivered);
    let targets: Vec<String> = sink
        .wait_for(2)
        .await
        .iter()
        .map(|request| request.target.split('?').next().unwrap().to_owned())
        .collect();
    assert_eq!(targets, ["/slow", "/ok/waited"]);
}

/// Memory slots are reset in place between deliveries (`KEEP_RESIDENT`): a delivery, of the
/// same plugin or of another one reusing the slot, must still find nothing of the last one.
#[tokio::test]
async fn a_delivery_finds_nothing_an_earlier_delivery_left_in_memory() {
    let (_dir, runtime) = runtime();
    let probe = probe();
    let load = |name: &str| {
        runtime
            .load(spec(name, &probe, &[], &[("mode", "residue")]))
            .unwrap()
    };
    let (first, second) = (load("first"), load("second"));
    let event = ringing();
    for plugin in [&first, &first, &second, &first, &second] {
        let outcome = deliver(plugin, &event).await;
        assert!(
            rejected_with(&outcome, "seen 0, dirty static 0, dirty heap 0"),
            "{}: {outcome:?}",
            plugin.name()
        );
    }
}
