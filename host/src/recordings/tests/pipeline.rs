//! The pipeline: against a fake XAPI, and end to end against the 3CX simulator over real HTTP
//! (XAPI and folder sources), with downloads of the signed links decoded back.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use callhook_simulator::{Scenario, SimConfig, SimHandle, Simulator};
use jiff::Timestamp;

use super::{Gen, assert_close, mp3_duration, raw_get, tone};
use crate::calls::event::CallId;
use crate::calls::{CallPart, FinishedCall};
use crate::recordings::*;

// ---------------------------------------------------------------------------------------------
// Against a fake XAPI

/// An XAPI whose recordings the test adds; counts requests.
#[derive(Default)]
struct FakeXapi {
    recordings: Mutex<Vec<(XapiRecording, Bytes)>>,
    requests: Mutex<Vec<String>>,
}

impl RecordingSource for FakeXapi {
    fn recordings_after(
        &self,
        after: u64,
        top: u32,
    ) -> BoxFuture<'_, Result<RecordingPage, SourceError>> {
        self.requests.lock().unwrap().push(format!("after {after}"));
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

    fn download_recording(&self, id: u64) -> BoxFuture<'_, Result<Bytes, SourceError>> {
        self.requests.lock().unwrap().push(format!("download {id}"));
        let list = self.recordings.lock().unwrap();
        // A recording listed with no bytes has lost its file.
        let found = list
            .iter()
            .find(|(r, b)| r.id == id && !b.is_empty())
            .map(|(_, b)| b.clone());
        Box::pin(async move { found.ok_or_else(|| "WARNINGS.XAPI.FILE_NOT_FOUND".into()) })
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
    let server = RecordingServer::bind(SocketAddr::from(([127, 0, 0, 1], 0)), None)
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
