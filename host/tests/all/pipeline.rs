//! End to end: 3CX simulator → connector → engine → generic-webhook → local sink, over real
//! HTTP and WebSocket on 127.0.0.1, compared with each scenario's expected webhooks.

use crate::scenarios::assert_matches;
use crate::support::*;
use callhook::app::local::{LocalHost, LocalPlugin, LocalSetup};
use callhook_simulator::{Scenario, SimConfig, Simulator};
use std::collections::BTreeMap;
use std::time::Duration;

/// Scenario seconds per real second: 0.05 plays a 100 s call in 5 s.
const TIME_SCALE: f64 = 0.05;
/// The engine's grace period, scaled with the calls (2 s × 0.05 = 100 ms) and widened to
/// 300 ms so a loaded machine's scheduling delays cannot split a wave or a transfer. No
/// scenario has a pause between 2 s and 6 s (scenario time) that must count as "over".
const GRACE: Duration = Duration::from_millis(300);

/// Simulator, sink and the whole host pipeline between them, on 127.0.0.1.
struct Harness {
    simulator: callhook_simulator::SimHandle,
    sink: Sink,
    host: LocalHost,
}

impl Harness {
    /// Starts everything for `scenarios`, with recordings when `recordings` is set.
    async fn start(scenarios: &[Scenario], recordings: bool) -> Harness {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let simulator = Simulator::start(SimConfig::default()).await.unwrap();
        for scenario in scenarios {
            simulator.add_directory(&scenario.directory());
        }
        let sink = Sink::start().await;
        let setup = LocalSetup {
            plugin: LocalPlugin::GenericWebhook {
                receiver: sink.origin(),
                webhook_url: sink.url("/events"),
                recordings_url: Some(sink.url("/recordings")),
            },
            recordings,
            // The grace period is scaled with the calls, so waves and transfers keep their
            // meaning.
            grace: GRACE,
            admin_token: None,
            country: None,
        };
        let host = LocalHost::start(&simulator, setup).await.unwrap();
        Harness {
            simulator,
            sink,
            host,
        }
    }

    async fn stop(self) {
        self.host.stop().await.unwrap();
    }
}

/// Scenarios 1 to 9 of `call-events.md` section 4.
const ONE_TO_NINE: [&str; 9] = [
    "01-direct-inbound-answered",
    "02-direct-inbound-missed",
    "03-queue-answered",
    "04-queue-missed-two-waves",
    "05-blind-transfer",
    "06-attended-transfer",
    "07-blind-transfer-unanswered",
    "08-outbound-answered",
    "09-outbound-unanswered",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenarios_one_to_nine_reach_the_sink_as_expected() {
    let scenarios: Vec<Scenario> = ONE_TO_NINE
        .iter()
        .map(|n| Scenario::builtin(n).unwrap())
        .collect();
    play_and_check(&scenarios).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_other_shape_of_scenarios_one_to_nine_reaches_the_sink_alike() {
    // The DID in `party_did`, transfers in the other order, the `Hold` status, no party-less
    // first `Dialing`: each variant besides the default, renumbered to play side by side.
    let mut scenarios = Vec::new();
    for name in ONE_TO_NINE {
        let scenario = Scenario::builtin(name).unwrap();
        for variant in scenario.variants().into_iter().skip(1) {
            let n = scenarios.len() as u64 + 1;
            scenarios.push(
                scenario
                    .with_variant(variant)
                    .renumbered(n * 10_000, n * 100_000),
            );
        }
    }
    assert!(scenarios.len() >= 15, "{}", scenarios.len());
    play_and_check(&scenarios).await;
}

/// Plays `scenarios` at once through simulator, host and generic-webhook, and checks that
/// the sink receives exactly each scenario's expected webhooks.
async fn play_and_check(scenarios: &[Scenario]) {
    let harness = Harness::start(scenarios, false).await;
    let (simulator, sink) = (&harness.simulator, &harness.sink);
    let plays = scenarios.iter().map(|s| simulator.play(s, TIME_SCALE));
    for played in futures_util::future::join_all(plays).await {
        played.unwrap();
    }
    let expected: usize = scenarios.iter().map(|s| s.expected().len()).sum();
    let received = sink.wait_for(expected).await;
    // Nothing more arrives once the grace periods are over.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(sink.received().len(), expected, "{:#?}", sink.received());
    harness.stop().await;

    let events: Vec<(u64, u32, BTreeMap<String, String>)> = received
        .iter()
        .filter(|r| r.method == "GET")
        .map(parse)
        .collect();
    for scenario in scenarios {
        // Durations and titles are in scaled time here: durations are checked with a tolerance.
        let calls: Vec<u64> = scenario.expected().iter().map(|e| e.call).collect();
        let mine: Vec<_> = events
            .iter()
            .filter(|(c, ..)| calls.contains(c))
            .cloned()
            .collect();
        assert_matches(scenario, &mine, &["duration", "title"]);
        for want in scenario.expected() {
            let Some(seconds) = want.fields.get("duration") else {
                continue;
            };
            let got = events
                .iter()
                .find(|(call, link, f)| {
                    *call == want.call
                        && *link == want.link
                        && f["event"] == want.fields["event"]
                        && f.get("user") == want.fields.get("user")
                })
                .unwrap_or_else(|| panic!("{}: no event for {want:?}", scenario.name()));
            let scaled = seconds.parse::<f64>().unwrap() * TIME_SCALE;
            let actual: f64 = got.2["duration"].parse().unwrap();
            assert!(
                (actual - scaled).abs() <= 1.0,
                "{} ({}): duration {actual} s, expected {scaled} s",
                scenario.name(),
                scenario.variant()
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transfer_yields_one_recording_post_with_two_playable_links() {
    let scenario = Scenario::builtin("05-blind-transfer").unwrap();
    let harness = Harness::start(std::slice::from_ref(&scenario), true).await;
    harness.simulator.play(&scenario, TIME_SCALE).await.unwrap();
    let received = harness.sink.wait_for(scenario.expected().len() + 1).await;
    let posts: Vec<&Received> = received
        .iter()
        .filter(|r| r.target == "/recordings")
        .collect();
    assert_eq!(posts.len(), 1, "{received:#?}");
    let body: serde_json::Value = serde_json::from_slice(&posts[0].body).unwrap();
    let files: Vec<String> = body["FILES"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap().to_string())
        .collect();
    assert_eq!(files.len(), 2, "{body}");
    let id = body["id"].as_str().unwrap();
    assert!(
        id.ends_with("_501-2"),
        "the id of the call's last part: {id}"
    );
    assert!(
        files[0].contains(&format!("{}-1-1.mp3?expires=", &id[..id.len() - 2])),
        "{files:?}"
    );
    assert!(
        files[1].contains(&format!("{id}-1.mp3?expires=")),
        "{files:?}"
    );

    // 120 talked 30 s and 130 talked 60 s, played 20 times faster.
    let client = reqwest::Client::new();
    for (link, seconds) in files.iter().zip([30.0 * TIME_SCALE, 60.0 * TIME_SCALE]) {
        let response = client.get(link).send().await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["content-type"], "audio/mpeg");
        let played = mp3_seconds(response.bytes().await.unwrap().to_vec());
        assert!(
            (played - seconds).abs() <= seconds * 0.05,
            "{link}: {played} s, expected {seconds} s"
        );
    }
    let tampered = files[0].replace("sig=", "sig=0");
    assert_eq!(client.get(&tampered).send().await.unwrap().status(), 403);
    harness.stop().await;
}

/// The playing time of an MP3, decoded.
fn mp3_seconds(bytes: Vec<u8>) -> f64 {
    use symphonia::core::errors::Error;
    let stream = symphonia::core::io::MediaSourceStream::new(
        Box::new(std::io::Cursor::new(bytes)),
        Default::default(),
    );
    let mut hint = symphonia::core::probe::Hint::new();
    hint.with_extension("mp3");
    let options = symphonia::core::formats::FormatOptions {
        enable_gapless: true,
        ..Default::default()
    };
    let mut format = symphonia::default::get_probe()
        .format(&hint, stream, &options, &Default::default())
        .unwrap()
        .format;
    let track = format.default_track().unwrap().clone();
    let rate = track.codec_params.sample_rate.unwrap() as f64;
    let mut decoder = symphonia::default::get_codecs()
        .make(&track.codec_params, &Default::default())
        .unwrap();
    let mut frames = 0u64;
    loop {
        match format.next_packet() {
            Ok(packet) => frames += decoder.decode(&packet).unwrap().frames() as u64,
            Err(Error::IoError(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(e) => panic!("the MP3 does not decode: {e}"),
        }
    }
    frames as f64 / rate
}

/// The call, link and fields of one webhook GET.
fn parse(request: &Received) -> (u64, u32, BTreeMap<String, String>) {
    let fields: BTreeMap<String, String> = request
        .query()
        .split('&')
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap();
            (key.to_string(), percent_decode(value))
        })
        .collect();
    let id = fields["id"].clone();
    let (_, call_and_link) = id.split_once('_').unwrap();
    let (call, link) = call_and_link.split_once('-').unwrap();
    let mut fields = fields;
    fields.remove("id");
    (call.parse().unwrap(), link.parse().unwrap(), fields)
}

fn percent_decode(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            out.push(u8::from_str_radix(&value[i + 1..i + 3], 16).unwrap());
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}
