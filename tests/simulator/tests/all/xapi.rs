//! XAPI: recordings (listing, paging, download, WAV validity, folder, corruption), inbound rules.

use std::io::Cursor;
use std::time::Duration;

use callhook_simulator::{RecordingField, Scenario, SimConfig, SimHandle, WavFormat};
use serde_json::{Value, json};

use crate::support::{get, get_json, start, token};

/// Scale used to play scenarios in these tests: 60 s of talk take 60 ms.
const SCALE: f64 = 0.001;

async fn played(config: SimConfig, names: &[&str]) -> (SimHandle, String) {
    let sim = start(config).await;
    for name in names {
        sim.play(&Scenario::builtin(name).unwrap(), SCALE)
            .await
            .unwrap();
    }
    let token = token(&sim).await;
    (sim, token)
}

fn ids(page: &Value) -> Vec<u64> {
    page["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["Id"].as_u64().unwrap())
        .collect()
}

#[tokio::test]
async fn recordings_appear_after_the_call_one_per_part() {
    let (sim, token) = played(SimConfig::default(), &["05-blind-transfer"]).await;
    let recordings = sim.recordings();
    assert_eq!(
        recordings.len(),
        2,
        "one recording per part of a transferred call"
    );
    assert_eq!(
        (recordings[0].dn.as_str(), recordings[1].dn.as_str()),
        ("120", "130")
    );
    assert!(recordings.iter().all(|r| r.callid == 501));
    let listed = get_json(&sim, &token, "/xapi/v1/Recordings").await;
    let first = &listed["value"][0];
    let url = first["RecordingUrl"].as_str().unwrap();
    assert!(
        url.starts_with("120/[Mueller, Anna]_425630434343-120_"),
        "{url}"
    );
    assert!(url.ends_with("(501).wav"), "{url}");
    assert_eq!(first["CallType"], "InboundExternal");
    assert_eq!(
        (first["FromCallerNumber"].clone(), first["ToDn"].clone()),
        (json!("425630434343"), json!("120"))
    );
    for key in ["StartTime", "EndTime"] {
        let time = first[key].as_str().unwrap();
        assert!(time.ends_with("+00:00") && time.len() == 29, "{key} {time}");
    }
    sim.shutdown().await;
}

#[tokio::test]
async fn recordings_wait_for_the_end_of_the_call_and_the_delay() {
    let scenario = Scenario::builtin("01-direct-inbound-answered").unwrap();
    let sim = start(SimConfig {
        recording_delay: Duration::from_secs(30),
        ..SimConfig::default()
    })
    .await;
    {
        // The call is over after 65 ms; with a 30 s delay nothing is published for a good while.
        let playing = sim.play(&scenario, SCALE);
        assert!(
            tokio::time::timeout(Duration::from_millis(500), playing)
                .await
                .is_err()
        );
    }
    assert!(sim.recordings().is_empty());
    sim.shutdown().await;
}

#[tokio::test]
async fn paging_filters_orders_counts_and_limits_top() {
    let (sim, token) = played(
        SimConfig {
            recording_delay: Duration::ZERO,
            ..SimConfig::default()
        },
        &[
            "05-blind-transfer",
            "06-attended-transfer",
            "01-direct-inbound-answered",
        ],
    )
    .await;
    assert_eq!(sim.recordings().len(), 5);
    let page = get_json(
        &sim,
        &token,
        "/xapi/v1/Recordings?$filter=Id gt 1&$orderby=Id asc&$top=2",
    )
    .await;
    assert_eq!(ids(&page), vec![2, 3]);
    assert!(page.get("@odata.count").is_none());
    let page = get_json(
        &sim,
        &token,
        "/xapi/v1/Recordings?$filter=Id gt 3&$orderby=Id asc&$top=2&$count=true",
    )
    .await;
    assert_eq!(
        (ids(&page), page["@odata.count"].clone()),
        (vec![4, 5], json!(2))
    );
    let page = get_json(&sim, &token, "/xapi/v1/Recordings?$filter=Id eq 4").await;
    assert_eq!(ids(&page), vec![4]);
    let page = get_json(
        &sim,
        &token,
        "/xapi/v1/Recordings?$orderby=Id desc&$skip=1&$top=100",
    )
    .await;
    assert_eq!(ids(&page), vec![4, 3, 2, 1]);
    for bad in ["$top=101", "$filter=Name eq 3", "$orderby=StartTime"] {
        let reply = get(&sim, &token, &format!("/xapi/v1/Recordings?{bad}")).await;
        assert_eq!(reply.status(), 400, "{bad}");
        let body: Value = reply.json().await.unwrap();
        assert_eq!(body["error"]["code"], "400", "{bad}");
    }
    assert_eq!(
        get(&sim, &token, "/xapi/v1/Recordings(1)").await.status(),
        404
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn downloads_are_valid_wavs_of_the_scaled_talk_time() {
    let (sim, token) = played(
        SimConfig {
            recording_delay: Duration::ZERO,
            ..SimConfig::default()
        },
        &["01-direct-inbound-answered"],
    )
    .await;
    let reply = get(
        &sim,
        &token,
        "/xapi/v1/Recordings/Pbx.DownloadRecording(recId=1)",
    )
    .await;
    assert_eq!(reply.status(), 200);
    assert_eq!(reply.headers()["content-type"], "audio/x-wav");
    let disposition = reply.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        disposition.starts_with("attachment; filename=\"[Mueller, Anna]_425630434343-120_"),
        "{disposition}"
    );
    let bytes = reply.bytes().await.unwrap();
    let wav = hound::WavReader::new(Cursor::new(bytes.to_vec())).expect("a valid WAV");
    let spec = wav.spec();
    assert_eq!(
        (spec.sample_rate, spec.channels, spec.bits_per_sample),
        (8000, 1, 16)
    );
    assert_eq!(spec.sample_format, hound::SampleFormat::Int);
    // 60 s of talk at scale 0.001 is 60 ms: 480 frames (give or take scheduling).
    let seconds = f64::from(wav.duration()) / 8000.0;
    assert!((0.05..0.5).contains(&seconds), "{seconds} s");
    let missing = get(
        &sim,
        &token,
        "/xapi/v1/Recordings/Pbx.DownloadRecording(recId=99)",
    )
    .await;
    assert_eq!(missing.status(), 400);
    assert_eq!(
        missing.json::<Value>().await.unwrap(),
        json!({"error": {"code": "400", "message": "WARNINGS.XAPI.FILE_NOT_FOUND"}})
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn other_wav_formats_on_request() {
    for (format, channels, bits) in [(WavFormat::Pcm16Stereo, 2, 16), (WavFormat::Pcm8Mono, 1, 8)] {
        let config = SimConfig {
            wav_format: format,
            recording_delay: Duration::ZERO,
            ..SimConfig::default()
        };
        let (sim, token) = played(config, &["08-outbound-answered"]).await;
        let bytes = get(
            &sim,
            &token,
            "/xapi/v1/Recordings/Pbx.DownloadRecording(recId=1)",
        )
        .await
        .bytes()
        .await
        .unwrap();
        let spec = hound::WavReader::new(Cursor::new(bytes.to_vec()))
            .unwrap()
            .spec();
        assert_eq!(
            (spec.channels, spec.bits_per_sample),
            (channels, bits),
            "{format:?}"
        );
        let record = &get_json(&sim, &token, "/xapi/v1/Recordings").await["value"][0];
        assert_eq!(record["CallType"], "OutboundExternal");
        assert!(
            record["RecordingUrl"]
                .as_str()
                .unwrap()
                .starts_with("120/[Mueller, Anna]_120-425630434343_")
        );
        sim.shutdown().await;
    }
}

#[tokio::test]
async fn corrupt_recordings_are_served_and_written_broken() {
    let folder = std::env::temp_dir().join(format!("callhook-sim-corrupt-{}", std::process::id()));
    let config = SimConfig {
        recording_delay: Duration::ZERO,
        recordings_folder: Some(folder.clone()),
        ..SimConfig::default()
    };
    let sim = start(config).await;
    sim.faults().corrupt_recording(2);
    sim.play(&Scenario::builtin("05-blind-transfer").unwrap(), SCALE)
        .await
        .unwrap();
    let token = token(&sim).await;
    let good = get(
        &sim,
        &token,
        "/xapi/v1/Recordings/Pbx.DownloadRecording(recId=1)",
    )
    .await
    .bytes()
    .await
    .unwrap();
    assert!(hound::WavReader::new(Cursor::new(good.to_vec())).is_ok());
    let bad = get(
        &sim,
        &token,
        "/xapi/v1/Recordings/Pbx.DownloadRecording(recId=2)",
    )
    .await
    .bytes()
    .await
    .unwrap();
    assert!(bad.starts_with(b"RIFF"));
    assert!(hound::WavReader::new(Cursor::new(bad.to_vec())).is_err());
    let on_disk = sim.recordings()[1]
        .file
        .clone()
        .expect("written to the folder");
    assert!(hound::WavReader::open(&on_disk).is_err());
    std::fs::remove_dir_all(&folder).unwrap();
    sim.shutdown().await;
}

#[tokio::test]
async fn the_recordings_folder_mirrors_the_pbx_layout() {
    let folder = std::env::temp_dir().join(format!("callhook-sim-folder-{}", std::process::id()));
    let config = SimConfig {
        recording_delay: Duration::ZERO,
        recordings_folder: Some(folder.clone()),
        ..SimConfig::default()
    };
    let (sim, _) = played(config, &["06-attended-transfer"]).await;
    for recording in sim.recordings() {
        let file = recording.file.clone().expect("written");
        assert_eq!(file, folder.join(&recording.recording_url));
        assert!(file.parent().unwrap().ends_with(&recording.dn));
        let reader = hound::WavReader::open(&file).expect("a valid WAV on disk");
        assert_eq!(reader.spec().sample_rate, 8000);
    }
    let names: Vec<String> = std::fs::read_dir(folder.join("130"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names.len(), 1);
    assert!(
        names[0].starts_with("[Wagner, Eva]_425630434343-130_") && names[0].ends_with("(601).wav"),
        "{names:?}"
    );
    std::fs::remove_dir_all(&folder).unwrap();
    sim.shutdown().await;
}

#[tokio::test]
async fn inbound_rules_carry_their_condition_and_nulls() {
    let sim = start(SimConfig::default()).await;
    let token = token(&sim).await;
    let rules = get_json(&sim, &token, "/xapi/v1/InboundRules").await;
    let seen: Vec<(Value, Value, Value, Value)> = rules["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|rule| {
            assert!(rule.get("RuleType").is_none(), "{rule}");
            (
                rule["Id"].clone(),
                rule["RuleName"].clone(),
                rule["Data"].clone(),
                rule["Condition"].clone(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            (
                json!(1),
                json!("CompanyDID"),
                json!("4930123456"),
                json!("BasedOnDID")
            ),
            (
                json!(2),
                json!("VIP callers"),
                json!("4930123456"),
                json!("BasedOnCallerID")
            ),
            (
                json!(3),
                json!("Unassigned"),
                Value::Null,
                json!("BasedOnDID")
            ),
        ]
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn users_are_paged_and_selected() {
    let sim = start(SimConfig::default()).await;
    let token = token(&sim).await;
    let path = "/xapi/v1/Users?$select=Number,FirstName,LastName,EmailAddress";
    let all = get_json(&sim, &token, &format!("{path}&$top=100&$skip=0")).await;
    let numbers: Vec<&str> = all["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["Number"].as_str().unwrap())
        .collect();
    assert_eq!(numbers, ["120", "121", "122", "123", "130", "150"]);
    assert_eq!(
        all["value"][0],
        json!({"Number": "120", "FirstName": "Anna", "LastName": "Mueller", "EmailAddress": "anna.mueller@example.com"})
    );
    assert_eq!(all["value"][5]["EmailAddress"], Value::Null);
    let page = get_json(&sim, &token, &format!("{path}&$top=2&$skip=1")).await;
    assert_eq!(
        page["value"],
        json!([
            {"Number": "121", "FirstName": "Ben", "LastName": "Schmidt", "EmailAddress": "ben.schmidt@example.com"},
            {"Number": "122", "FirstName": "Clara", "LastName": "Weber", "EmailAddress": "clara.weber@example.com"},
        ])
    );
    let past = get_json(&sim, &token, &format!("{path}&$top=100&$skip=100")).await;
    assert_eq!(past["value"], json!([]));
    let refused = get(&sim, &token, &format!("{path}&$top=101&$skip=0")).await;
    assert_eq!(refused.status(), 400);
    sim.shutdown().await;
}

#[tokio::test]
async fn forbid_xapi_answers_403_on_every_xapi_path() {
    let sim = start(SimConfig::default()).await;
    let token = token(&sim).await;
    sim.faults().forbid_xapi(true);
    for path in [
        "/xapi/v1/Recordings",
        "/xapi/v1/InboundRules",
        "/xapi/v1/Users",
        "/xapi/v1/Recordings/Pbx.DownloadRecording(recId=1)",
    ] {
        assert_eq!(get(&sim, &token, path).await.status(), 403, "{path}");
    }
    assert_eq!(get(&sim, &token, "/callcontrol").await.status(), 200);
    assert_eq!(
        get(&sim, "stale", "/xapi/v1/Recordings").await.status(),
        401
    );
    sim.faults().forbid_xapi(false);
    assert_eq!(get(&sim, &token, "/xapi/v1/Recordings").await.status(), 200);
    sim.shutdown().await;
}

#[tokio::test]
async fn recording_rows_carry_every_field_and_the_null_on_request() {
    let sim = start(SimConfig {
        recording_delay: Duration::ZERO,
        ..SimConfig::default()
    })
    .await;
    let scenario = Scenario::builtin("01-direct-inbound-answered").unwrap();
    sim.play(&scenario, SCALE).await.unwrap();
    sim.faults()
        .null_recording_field(Some(RecordingField::CallType));
    sim.play(&scenario.renumbered(10, 1000), SCALE)
        .await
        .unwrap();
    let token = token(&sim).await;
    let rows = get_json(&sim, &token, "/xapi/v1/Recordings").await;
    let (first, second) = (&rows["value"][0], &rows["value"][1]);
    for key in [
        "FromDidNumber",
        "ToDidNumber",
        "Transcription",
        "Summary",
        "ArchivedUrl",
    ] {
        assert_eq!(first[key], Value::Null, "{key}");
    }
    assert_eq!(
        (first["CallType"].clone(), second["CallType"].clone()),
        (json!("InboundExternal"), Value::Null)
    );
    assert!(second["RecordingUrl"].is_string() && second["EndTime"].is_string());
    sim.shutdown().await;
}
