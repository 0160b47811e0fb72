//! The pipeline: against a fake XAPI, and end to end against the 3CX simulator over real HTTP
//! (XAPI and folder sources), with downloads of the signed links decoded back.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use callhook_simulator::{Scenario, SimConfig, SimHandle, Simulator};
use futures_util::StreamExt;
use jiff::Timestamp;

use super::{Gen, assert_close, mp3_duration, raw_get, tone};
use crate::calls::event::CallId;
use crate::calls::{CallPart, FinishedCall};
use crate::recordings::*;
use crate::server::HttpServer;

// ---------------------------------------------------------------------------------------------
// Against a fake XAPI

/// An XAPI whose recordings the test adds; counts requests. While `down_until` lies ahead
/// (tokio time), every request fails as an unreachable PBX's would (HTTP 503).
#[derive(Default)]
struct FakeXapi {
    recordings: Mutex<Vec<(XapiRecording, Bytes)>>,
    requests: Mutex<Vec<String>>,
    down_until: Mutex<Option<tokio::time::Instant>>,
}

impl FakeXapi {
    /// The error of a PBX that is down, if it is.
    fn outage(&self, path: &str) -> Option<SourceError> {
        let down = (*self.down_until.lock().unwrap())
            .is_some_and(|until| tokio::time::Instant::now() < until);
        down.then(|| {
            crate::pbx::RestError::Status {
                path: path.to_owned(),
                status: 503,
                body: "Service Unavailable".to_owned(),
            }
            .into()
        })
    }
}

impl RecordingSource for FakeXapi {
    fn recordings_after(
        &self,
        after: u64,
        top: u32,
    ) -> BoxFuture<'_, Result<RecordingPage, SourceError>> {
        self.requests.lock().unwrap().push(format!("after {after}"));
        if let Some(error) = self.outage("/xapi/v1/Recordings") {
            return Box::pin(async move { Err(error) });
        }
        let list = self.recordings.lock().unwrap();
        let page = list
            .iter()
            .map(|(r, _)| r.clone())
            .filter(|r| r.id > after)
            .take(top as usize);
        let page = RecordingPage {
            rows: page.collect(),
            skipped: Vec::new(),
        };
        Box::pin(async move { Ok(page) })
    }

    fn newest_recordings(&self, top: u32) -> BoxFuture<'_, Result<RecordingPage, SourceError>> {
        self.requests.lock().unwrap().push("newest".to_owned());
        if let Some(error) = self.outage("/xapi/v1/Recordings") {
            return Box::pin(async move { Err(error) });
        }
        let list = self.recordings.lock().unwrap();
        let page = RecordingPage {
            rows: list
                .iter()
                .rev()
                .take(top as usize)
                .map(|(r, _)| r.clone())
                .collect(),
            skipped: Vec::new(),
        };
        Box::pin(async move { Ok(page) })
    }

    fn download_recording(&self, id: u64) -> BoxFuture<'_, Result<AudioStream, SourceError>> {
        self.requests.lock().unwrap().push(format!("download {id}"));
        if let Some(error) = self.outage("/xapi/v1/Recordings/Pbx.DownloadRecording") {
            return Box::pin(async move { Err(error) });
        }
        let list = self.recordings.lock().unwrap();
        // A recording listed with no bytes has lost its file.
        let found = list
            .iter()
            .find(|(r, b)| r.id == id && !b.is_empty())
            .map(|(_, b)| b.clone());
        Box::pin(async move {
            let bytes = found.ok_or("WARNINGS.XAPI.FILE_NOT_FOUND")?;
            Ok(Box::pin(futures_util::stream::iter([Ok(bytes)])) as AudioStream)
        })
    }
}

fn ts(secs: i64) -> Timestamp {
    Timestamp::from_second(1_800_000_000 + secs).unwrap()
}

fn call_id(pbx_call_id: u64, link: u32) -> CallId {
    CallId {
        stamp: "270115080000".to_owned(),
        pbx_call_id,
        link,
    }
}

fn talk(id: CallId, extension: &str, start: Timestamp, end: Timestamp) -> CallPart {
    CallPart {
        id,
        extension: extension.to_owned(),
        other_number: "425630434343".to_owned(),
        talk_start: start,
        talk_end: end,
    }
}

fn xapi_recording(id: u64, dn: &str, start: Timestamp, end: Timestamp) -> XapiRecording {
    XapiRecording {
        id,
        recording_url: format!("{dn}/[X]_425630434343-{dn}_x({id}).wav"),
        start_time: Some(start),
        end_time: Some(end),
        from_dn: "10000".to_owned(),
        to_dn: dn.to_owned(),
        from_caller_number: "425630434343".to_owned(),
        to_caller_number: dn.to_owned(),
        from_dn_type: "1".to_owned(),
        to_dn_type: "0".to_owned(),
        call_type: crate::pbx::xapi::CallType::InboundExternal,
    }
}

fn config(dir: &Path, public_url: &str) -> RecordingsConfig {
    RecordingsConfig {
        enabled: true,
        mp3_dir: dir.join("mp3"),
        public_url: public_url.to_owned(),
        wait_limit: Duration::from_secs(20),
        parallel_conversions: 2,
        ..RecordingsConfig::default()
    }
}

#[tokio::test]
async fn pipeline_claims_early_recordings_and_reports_corrupt_ones() {
    let dir = tempfile::tempdir().unwrap();
    let xapi = Arc::new(FakeXapi::default());
    let old = xapi_recording(1, "120", ts(-9000), ts(-8000));
    xapi.recordings.lock().unwrap().push((old, Bytes::new()));
    let recorder = Recorder::new(&config(dir.path(), "https://pbx"), Some(xapi.clone())).unwrap();

    // Call 7: 120 then 130 (its WAV is corrupt); both recordings are there before the call is
    // handed over, next to one of another call.
    let wav = Bytes::from(tone(Gen::Pcm16, 1, 8000, 1.0));
    for (recording, bytes) in [
        (xapi_recording(2, "120", ts(0), ts(1)), wav.clone()),
        (xapi_recording(3, "140", ts(0), ts(1)), wav.clone()),
        (
            xapi_recording(4, "130", ts(2), ts(3)),
            Bytes::from_static(b"RIFF....WAVEjunk"),
        ),
    ] {
        xapi.recordings.lock().unwrap().push((recording, bytes));
    }
    let call = FinishedCall {
        pbx_call_id: 7,
        parts: vec![
            talk(call_id(7, 1), "120", ts(0), ts(1)),
            talk(call_id(7, 2), "130", ts(2), ts(3)),
        ],
        last_end: None,
    };
    let started = std::time::Instant::now();
    let Outcome::Ready { event, failures } = recorder.handle(&call).await else {
        panic!("expected a recording event");
    };
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "no waiting when all parts have one"
    );
    assert_eq!(event.id, call_id(7, 2));
    assert_eq!(event.files.len(), 1);
    assert!(
        event.files[0].starts_with("https://pbx/webapi/recording/270115080000_7-1-1.mp3?expires=")
    );
    assert_eq!(failures.len(), 1);
    assert_eq!(failures[0].file, "270115080000_7-2-1.mp3");
    let error = failures[0].error.to_string();
    assert!(
        error.contains("XAPI recording 4 (130/") && error.contains("not a valid WAV"),
        "{error}"
    );
    assert!(
        recorder
            .store()
            .dir()
            .join("270115080000_7-1-1.mp3")
            .exists()
    );

    // The recording of call 8 (extension 140) was seen already and waits in the inbox.
    let call = FinishedCall {
        pbx_call_id: 8,
        parts: vec![talk(call_id(8, 1), "140", ts(0), ts(1))],
        last_end: None,
    };
    assert!(matches!(
        recorder.handle(&call).await,
        Outcome::Ready { .. }
    ));
    let requests = xapi.requests.lock().unwrap().clone();
    assert_eq!(
        requests.first().map(String::as_str),
        Some("newest"),
        "{requests:?}"
    );
}

#[tokio::test]
async fn pipeline_gives_up_after_the_wait_limit() {
    let dir = tempfile::tempdir().unwrap();
    let config = RecordingsConfig {
        wait_limit: Duration::from_millis(700),
        ..config(dir.path(), "https://pbx")
    };
    let xapi = Arc::new(FakeXapi::default());
    let recorder = Recorder::new(&config, Some(xapi.clone())).unwrap();
    let call = FinishedCall {
        pbx_call_id: 9,
        parts: vec![talk(call_id(9, 1), "120", ts(0), ts(1))],
        last_end: None,
    };
    match recorder.handle(&call).await {
        Outcome::NotFound { id, waited, .. } => {
            assert_eq!(id, call_id(9, 1));
            assert!(waited >= Duration::from_millis(700), "{waited:?}");
        }
        other => panic!("{other:?}"),
    }
    let polls = xapi.requests.lock().unwrap().len();
    assert!(
        (3..=6).contains(&polls),
        "backoff: 0, 200, 600 ms: {polls} polls"
    );
    let empty = FinishedCall {
        parts: Vec::new(),
        ..call
    };
    assert!(matches!(
        recorder.handle(&empty).await,
        Outcome::NothingToRecord
    ));
    assert!(matches!(
        Recorder::new(&config, None),
        Err(RecorderError::NoXapiClient)
    ));
}

#[tokio::test]
async fn pipeline_reports_failed_downloads_after_retrying() {
    let dir = tempfile::tempdir().unwrap();
    let xapi = Arc::new(FakeXapi::default());
    let recorder = Recorder::new(&config(dir.path(), "https://pbx"), Some(xapi.clone())).unwrap();
    let lost = xapi_recording(1, "120", ts(0), ts(1));
    xapi.recordings.lock().unwrap().push((lost, Bytes::new()));
    let call = FinishedCall {
        pbx_call_id: 10,
        parts: vec![talk(call_id(10, 1), "120", ts(0), ts(1))],
        last_end: None,
    };
    let Outcome::Failed { failures, .. } = recorder.handle(&call).await else {
        panic!("expected a failure report");
    };
    let error = failures[0].error.to_string();
    assert!(
        error.contains("cannot download XAPI recording 1") && error.contains("after 3 attempts"),
        "{error}"
    );
    let downloads = xapi
        .requests
        .lock()
        .unwrap()
        .iter()
        .filter(|r| r.starts_with("download"))
        .count();
    assert_eq!(downloads, DOWNLOAD_ATTEMPTS as usize);
}

/// A call of extension 120 that ended just now, and its recording as XAPI lists it.
fn call_ending_now(pbx_call_id: u64) -> (FinishedCall, XapiRecording) {
    let end = Timestamp::from_second(Timestamp::now().as_second()).unwrap();
    let start = end - jiff::SignedDuration::from_secs(1);
    let call = FinishedCall {
        pbx_call_id,
        parts: vec![talk(call_id(pbx_call_id, 1), "120", start, end)],
        last_end: None,
    };
    (call, xapi_recording(1, "120", start, end))
}

/// The PBX is down for 10 minutes, far past the 120 s wait limit: the job keeps retrying (the
/// listing and then the download fail with 503) and delivers once the PBX is back.
#[tokio::test(start_paused = true)]
async fn pipeline_outlasts_an_outage_longer_than_the_wait_limit() {
    let dir = tempfile::tempdir().unwrap();
    let config = RecordingsConfig {
        wait_limit: RecordingsConfig::DEFAULT_WAIT_LIMIT,
        ..config(dir.path(), "https://pbx")
    };
    let xapi = Arc::new(FakeXapi::default());
    let (call, recording) = call_ending_now(11);
    let wav = Bytes::from(tone(Gen::Pcm16, 1, 8000, 1.0));
    xapi.recordings.lock().unwrap().push((recording, wav));
    let started = tokio::time::Instant::now();
    *xapi.down_until.lock().unwrap() = Some(started + Duration::from_secs(600));
    let recorder = Recorder::new(&config, Some(xapi.clone())).unwrap();

    let outcome = recorder.handle(&call).await;
    let Outcome::Ready { event, failures } = outcome else {
        panic!("expected a recording event, got {outcome:?}");
    };
    assert!(failures.is_empty(), "{failures:?}");
    assert_eq!(event.files.len(), 1);
    assert!(started.elapsed() >= Duration::from_secs(600));
    assert!(
        started.elapsed() < Duration::from_secs(600) + RETRY_MAX_DELAY + config.wait_limit,
        "{:?}",
        started.elapsed()
    );
}

/// The listing works but the download keeps failing with 503 (PBX overloaded), then recovers:
/// the recording is tried again, not reported as failed after three attempts.
#[tokio::test(start_paused = true)]
async fn pipeline_retries_a_download_while_the_pbx_cannot_answer() {
    let dir = tempfile::tempdir().unwrap();
    let xapi = Arc::new(FakeXapi::default());
    let (call, recording) = call_ending_now(12);
    let wav = Bytes::from(tone(Gen::Pcm16, 1, 8000, 1.0));
    xapi.recordings.lock().unwrap().push((recording, wav));
    let recorder = Recorder::new(&config(dir.path(), "https://pbx"), Some(xapi.clone())).unwrap();
    // Listed first (the first poll), then down before the download.
    let poller = tokio::spawn({
        let xapi = xapi.clone();
        async move {
            while !xapi
                .requests
                .lock()
                .unwrap()
                .iter()
                .any(|r| r.starts_with("after"))
            {
                tokio::task::yield_now().await;
            }
            *xapi.down_until.lock().unwrap() =
                Some(tokio::time::Instant::now() + Duration::from_secs(300));
        }
    });
    let outcome = recorder.handle(&call).await;
    poller.await.unwrap();
    assert!(matches!(outcome, Outcome::Ready { .. }), "{outcome:?}");
    let downloads = xapi
        .requests
        .lock()
        .unwrap()
        .iter()
        .filter(|r| r.starts_with("download"))
        .count();
    assert!(downloads > DOWNLOAD_ATTEMPTS as usize, "{downloads}");
}

/// A PBX that stays down past `retry_for` ends the job with a message that says so.
#[tokio::test(start_paused = true)]
async fn pipeline_gives_up_after_the_retry_time() {
    let dir = tempfile::tempdir().unwrap();
    let config = RecordingsConfig {
        retry_for: Duration::from_secs(3600),
        ..config(dir.path(), "https://pbx")
    };
    let xapi = Arc::new(FakeXapi::default());
    let (call, recording) = call_ending_now(13);
    let wav = Bytes::from(tone(Gen::Pcm16, 1, 8000, 1.0));
    xapi.recordings.lock().unwrap().push((recording, wav));
    let started = tokio::time::Instant::now();
    *xapi.down_until.lock().unwrap() = Some(started + Duration::from_secs(86_400));
    let recorder = Recorder::new(&config, Some(xapi.clone())).unwrap();

    match recorder.handle(&call).await {
        Outcome::NotFound {
            id,
            waited,
            last_error,
        } => {
            assert_eq!(id, call_id(13, 1));
            let error = last_error.unwrap_or_default();
            assert!(
                error.starts_with("gave up after retrying for 60 min since the call ended")
                    && error.contains("HTTP 503"),
                "{error}"
            );
            assert!(waited >= Duration::from_secs(3600), "{waited:?}");
            assert!(
                waited < Duration::from_secs(3600) + config.wait_limit + Duration::from_secs(5),
                "{waited:?}"
            );
        }
        other => panic!("{other:?}"),
    }
}

/// A source whose one recording's download never ends (64 KiB chunks made on demand, counted).
struct EndlessDownload {
    recording: XapiRecording,
    chunks: Arc<std::sync::atomic::AtomicU64>,
}

impl RecordingSource for EndlessDownload {
    fn recordings_after(
        &self,
        after: u64,
        _: u32,
    ) -> BoxFuture<'_, Result<RecordingPage, SourceError>> {
        let rows = if after < self.recording.id {
            vec![self.recording.clone()]
        } else {
            vec![]
        };
        Box::pin(async move {
            Ok(RecordingPage {
                rows,
                skipped: vec![],
            })
        })
    }

    fn newest_recordings(&self, _: u32) -> BoxFuture<'_, Result<RecordingPage, SourceError>> {
        Box::pin(async {
            Ok(RecordingPage {
                rows: vec![],
                skipped: vec![],
            })
        })
    }

    fn download_recording(&self, _: u64) -> BoxFuture<'_, Result<AudioStream, SourceError>> {
        let chunks = self.chunks.clone();
        let header = Bytes::from(tone(Gen::Pcm16, 1, 8000, 0.1));
        let stream = futures_util::stream::iter(std::iter::once(header).chain(
            std::iter::repeat_with(move || {
                chunks.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                Bytes::from(vec![0u8; 64 * 1024])
            }),
        ))
        .map(Ok);
        Box::pin(async move { Ok(Box::pin(stream) as AudioStream) })
    }
}

/// A download larger than `max_download_bytes` is stopped at the limit, reported with the
/// limit named, and leaves no partial file behind; it is not retried (the PBX answered).
#[tokio::test]
async fn pipeline_refuses_a_download_over_the_size_limit() {
    let dir = tempfile::tempdir().unwrap();
    let config = RecordingsConfig {
        max_download_bytes: 1024 * 1024,
        ..config(dir.path(), "https://pbx")
    };
    let (call, recording) = call_ending_now(15);
    let chunks = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let source = Arc::new(EndlessDownload {
        recording,
        chunks: chunks.clone(),
    });
    let recorder = Recorder::new(&config, Some(source)).unwrap();
    let Outcome::Failed { failures, .. } = recorder.handle(&call).await else {
        panic!("expected a failure report");
    };
    let error = failures[0].error.to_string();
    assert!(
        error.contains("XAPI recording 1 (120/")
            && error.contains("larger than the download limit of 1 MiB (1048576 bytes)"),
        "{error}"
    );
    assert!(!failures[0].error.is_transient());
    let read = chunks.load(std::sync::atomic::Ordering::Relaxed);
    assert!(
        read <= 17,
        "read {read} chunks of 64 KiB: stopped at the limit, and not tried again"
    );
    let left: Vec<_> = std::fs::read_dir(recorder.store().dir())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|name| name != ".link-key")
        .collect();
    assert!(left.is_empty(), "no partial download left: {left:?}");
}

/// A job resumed long after its call ended has only the rest of its retry time.
#[tokio::test(start_paused = true)]
async fn a_resumed_job_keeps_its_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let config = RecordingsConfig {
        retry_for: Duration::from_secs(3600),
        ..config(dir.path(), "https://pbx")
    };
    let xapi = Arc::new(FakeXapi::default());
    let (mut call, _) = call_ending_now(14);
    let hours_ago = jiff::SignedDuration::from_secs(2 * 3600);
    for part in &mut call.parts {
        part.talk_start -= hours_ago;
        part.talk_end -= hours_ago;
    }
    *xapi.down_until.lock().unwrap() =
        Some(tokio::time::Instant::now() + Duration::from_secs(86_400));
    let recorder = Recorder::new(&config, Some(xapi.clone())).unwrap();
    let Outcome::NotFound {
        waited, last_error, ..
    } = recorder.handle(&call).await
    else {
        panic!("expected the give-up");
    };
    assert!(
        waited <= config.wait_limit + Duration::from_secs(1),
        "{waited:?}: one wait only"
    );
    assert!(
        last_error
            .unwrap_or_default()
            .starts_with("gave up after retrying")
    );
}

// ---------------------------------------------------------------------------------------------
// End to end with the simulator

/// The simulator's XAPI through the connector's REST client, exactly as the host reads it.
fn sim_xapi(sim: &SimHandle) -> Arc<dyn RecordingSource> {
    let config = sim.config();
    let connector = crate::pbx::Connector::new(
        crate::pbx::ConnectorConfig::new(
            sim.base_url().parse().unwrap(),
            config.client_id.clone(),
            config.client_secret.clone(),
        ),
        None,
    )
    .unwrap();
    Arc::new(connector.rest())
}

/// The time scale the scenarios play at: scenario 5's talks last 1.5 s and 3 s.
const SCALE: f64 = 0.05;

/// The finished call of scenario 5 (blind transfer 120 → 130) played from `wall`, as the
/// engine reports it: 120 talked t5–t35 under link 1, 130 t40–t100 under link 2.
fn blind_transfer_call(wall: SystemTime, callid: u64) -> FinishedCall {
    let at = |t: f64| Timestamp::try_from(wall + Duration::from_secs_f64(t * SCALE)).unwrap();
    FinishedCall {
        pbx_call_id: callid,
        parts: vec![
            talk(call_id(callid, 1), "120", at(5.0), at(35.0)),
            talk(call_id(callid, 2), "130", at(40.0), at(100.0)),
        ],
        last_end: None,
    }
}

/// Binds a plain recordings server on a free port; it serves `recorder` once started.
async fn start_server(
    config_for: impl FnOnce(String) -> (RecordingsConfig, Option<Arc<dyn RecordingSource>>),
) -> Recorder {
    let server = HttpServer::bind(SocketAddr::from(([127, 0, 0, 1], 0)), None)
        .await
        .unwrap();
    let (config, xapi) = config_for(format!("http://{}", server.local_addr().unwrap()));
    let recorder = Recorder::new(&config, xapi).unwrap();
    tokio::spawn(server.run(recorder.router(), std::future::pending()));
    recorder
}

/// Downloads each link and checks it decodes to the recording's length.
async fn check_links(files: &[String], sim: &SimHandle, first_id: u64) {
    for (file, recording) in files
        .iter()
        .zip(sim.recordings().iter().filter(|r| r.id >= first_id))
    {
        let reply = reqwest::get(file).await.unwrap();
        assert_eq!(reply.status(), 200, "{file}");
        assert_eq!(reply.headers()["content-type"], "audio/mpeg");
        let mp3 = reply.bytes().await.unwrap().to_vec();
        let wav_length = recording.end.duration_since(recording.start).unwrap();
        assert_close(mp3_duration(mp3), wav_length, file);
    }
}

#[tokio::test]
async fn end_to_end_with_the_simulator_over_xapi() {
    let sim = Simulator::start(SimConfig::default()).await.unwrap();
    let scenario = Scenario::builtin("05-blind-transfer").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let xapi = sim_xapi(&sim);
    let recorder = start_server(|url| (config(dir.path(), &url), Some(xapi))).await;

    let wall = SystemTime::now();
    sim.play(&scenario, SCALE).await.unwrap();
    let Outcome::Ready { event, failures } = recorder.handle(&blind_transfer_call(wall, 501)).await
    else {
        panic!("expected a recording event");
    };
    assert!(failures.is_empty(), "{failures:?}");
    assert_eq!(sim.recordings().len(), 2, "two recordings for the transfer");
    assert_eq!(event.id, call_id(501, 2), "the id of the last part");
    assert_eq!(event.files.len(), 2);
    assert!(event.files[0].contains("/webapi/recording/270115080000_501-1-1.mp3?expires="));
    assert!(event.files[1].contains("/webapi/recording/270115080000_501-2-1.mp3?expires="));
    // Contract 0.2: the same links per talking part, with its extension.
    let parts: Vec<_> = event
        .parts
        .iter()
        .map(|p| (p.id.clone(), p.user.as_str(), p.files.clone()))
        .collect();
    assert_eq!(
        parts,
        [
            (call_id(501, 1), "120", vec![event.files[0].clone()]),
            (call_id(501, 2), "130", vec![event.files[1].clone()]),
        ]
    );
    check_links(&event.files, &sim, 1).await;

    // Tampered and expired links are refused; traversal finds nothing.
    let tampered = event.files[0].replace("501-1-1", "501-2-1");
    let expired = recorder.links().url_at(
        "270115080000_501-1-1.mp3",
        SystemTime::now() - Duration::from_secs(31 * 86_400),
    );
    for bad in [tampered, expired] {
        assert_eq!(reqwest::get(&bad).await.unwrap().status(), 403, "{bad}");
    }
    let base = event.files[0].split("/webapi/").next().unwrap().to_owned();
    let status = raw_get(&base, "/webapi/recording/../../../etc/passwd").await;
    assert!(status == 400 || status == 404, "{status}");

    // The next call's recording is served corrupt: reported, not dropped.
    let direct = Scenario::builtin("01-direct-inbound-answered")
        .unwrap()
        .renumbered(1000, 10_000);
    sim.faults().corrupt_recording(3);
    sim.play(&direct, SCALE).await.unwrap();
    let info = sim.recordings().into_iter().find(|r| r.id == 3).unwrap();
    let callid = info.callid;
    let other = direct.expected()[0].fields["callerid"].clone();
    let call = FinishedCall {
        pbx_call_id: callid,
        parts: vec![CallPart {
            other_number: other,
            ..talk(
                call_id(callid, 1),
                &info.dn,
                Timestamp::try_from(info.start).unwrap(),
                Timestamp::try_from(info.end).unwrap(),
            )
        }],
        last_end: None,
    };
    match recorder.handle(&call).await {
        Outcome::Failed { id, failures } => {
            assert_eq!(id, call_id(callid, 1));
            let error = failures[0].error.to_string();
            assert!(
                error.contains("XAPI recording 3") && error.contains("not a valid WAV file"),
                "{error}"
            );
        }
        other => panic!("expected a failure report, got {other:?}"),
    }
    sim.shutdown().await;
}

#[tokio::test]
async fn end_to_end_with_the_simulator_over_the_folder() {
    let folder = tempfile::tempdir().unwrap();
    let sim = Simulator::start(SimConfig {
        recordings_folder: Some(folder.path().to_owned()),
        wav_format: callhook_simulator::WavFormat::Pcm16Stereo,
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let scenario = Scenario::builtin("05-blind-transfer").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let recorder = start_server(|url| {
        let config = RecordingsConfig {
            source: SourceKind::Folder,
            folder: folder.path().to_owned(),
            folder_time_zone: jiff::tz::TimeZone::UTC,
            ..config(dir.path(), &url)
        };
        (config, None)
    })
    .await;
    let wall = SystemTime::now();
    let play = sim.play(&scenario, SCALE);
    let call = blind_transfer_call(wall, 501);
    // Handed over while the call is still playing: the watcher sees the files appear.
    let (played, outcome) = tokio::join!(play, recorder.handle(&call));
    played.unwrap();
    let Outcome::Ready { event, failures } = outcome else {
        panic!("expected a recording event, got {outcome:?}");
    };
    assert!(failures.is_empty(), "{failures:?}");
    assert_eq!(event.files.len(), 2, "{:?}", event.files);
    check_links(&event.files, &sim, 1).await;
    let files: Vec<PathBuf> = sim
        .recordings()
        .iter()
        .filter_map(|r| r.file.clone())
        .collect();
    assert_eq!(files.len(), 2);
    sim.shutdown().await;
}
