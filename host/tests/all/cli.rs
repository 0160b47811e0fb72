//! The `callhook` binary itself: `run` with a legacy ini against the simulator, and
//! `check-config`.

use crate::support::{CALLHOOK, Host, Sink, connected, host_config};
use callhook_simulator::{Scenario, SimConfig, Simulator, Variant};
use std::process::{Command, Stdio};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_legacy_ini_alone_drives_the_default_plugin_end_to_end() {
    let simulator = Simulator::start(SimConfig::default()).await.unwrap();
    // An ini has no `[trunks]`: its DID comes only from a PBX that fills `party_did`.
    let scenario = Scenario::builtin("01-direct-inbound-answered")
        .unwrap()
        .with_variant(Variant {
            did_in_party_did: true,
            ..Variant::default()
        });
    simulator.add_directory(&scenario.directory());
    let sink = Sink::start().await;
    let dir = tempfile::tempdir().unwrap();
    let ini = dir.path().join("webhooks.ini");
    std::fs::write(
        &ini,
        format!(
            "[3CX]\nURL={}\nCLIENT_ID=callhook\nCLIENT_SECRET=secret\n\n\
             [WEBHOOKS]\nWEBHOOK_URL={}\n\n[RECORDINGS]\nENABLED=0\nLISTEN=127.0.0.1:0\n\n\
             [STORAGE]\nDIR={}\n",
            simulator.base_url(),
            sink.url("/3cx/events"),
            dir.path().join("state").display()
        ),
    )
    .unwrap();
    let mut child = Host::start_with_output(&ini, Stdio::piped());
    let server = http_address(&mut child.0);

    connected(&simulator).await;
    simulator.play(&scenario, 0.05).await.unwrap();
    let received = sink.wait_for(3).await;
    let events: Vec<&str> = received
        .iter()
        .map(|r| r.query().split('&').next().unwrap())
        .collect();
    assert_eq!(
        events,
        [
            "event=ringing",
            "event=incomingcall_started",
            "event=incoming"
        ]
    );
    assert!(
        received[2]
            .query()
            .contains("&did=CompanyDID&finishtype=Ok&transfer=false&")
    );

    let health = reqwest::get(format!("http://{server}/healthz"))
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    let metrics = reqwest::get(format!("http://{server}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for line in [
        "callhook_events_derived_total{event=\"ringing\"} 1",
        "callhook_events_derived_total{event=\"incoming\"} 1",
        "callhook_pbx_connected 1",
        "callhook_pbx_total{what=\"skipped_objects\"} 0",
        "callhook_pbx_total{what=\"forbidden_participants\"} 0",
        "callhook_pbx_total{what=\"failed_fetches\"} 0",
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line} in:\n{metrics}");
    }
    assert!(metrics.contains("callhook_queue_"), "{metrics}");

    let status = Command::new("kill")
        .args(["-TERM", &child.0.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = child.0.wait().unwrap();
    assert!(
        exit.success(),
        "callhook exits cleanly on SIGTERM: {exit:?}"
    );
    assert!(
        dir.path().join("state/callhook.redb").exists(),
        "state is kept on disk"
    );
}

/// Reads the host's startup lines until it names its HTTP server's address.
fn http_address(child: &mut std::process::Child) -> String {
    use std::io::BufRead;
    let stdout = child.stdout.take().unwrap();
    let mut lines = std::io::BufReader::new(stdout).lines();
    let address = lines
        .by_ref()
        .map_while(Result::ok)
        .find_map(|line| {
            let rest = line.strip_prefix("HTTP server on ")?;
            rest.split_once(": /")
                .map(|(address, _)| address.to_string())
        })
        .expect("callhook prints its HTTP address");
    // Keep draining stdout so the host never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(drop));
    address
}

fn check_config(contents: &str) -> (bool, String, String) {
    check_config_with(contents, &[])
}

fn check_config_with(contents: &str, flags: &[&str]) -> (bool, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("callhook.toml");
    std::fs::write(
        &file,
        contents.replace("{dir}", &dir.path().display().to_string()),
    )
    .unwrap();
    let output = Command::new(CALLHOOK)
        .args(["check-config", "--config"])
        .arg(&file)
        .args(flags)
        .output()
        .unwrap();
    (
        output.status.success(),
        String::from_utf8(output.stdout).unwrap(),
        String::from_utf8(output.stderr).unwrap(),
    )
}

const VALID: &str = r#"
[pbx]
url = "http://127.0.0.1:5001"
client_id = "callhook"
client_secret = "secret"

[storage]
dir = "{dir}/state"

[[plugin]]
name = "generic-webhook"
[plugin.settings]
webhook_url = "https://crm.example.com/3cx/events"
"#;

#[test]
fn check_config_loads_the_plugins_and_reports_their_permissions() {
    let (ok, stdout, stderr) = check_config(VALID);
    assert!(ok, "{stdout}{stderr}");
    assert!(
        stdout.contains(
            "plugin generic-webhook (contract 0.3.0): allowed hosts [https://crm.example.com], memory 64 MiB, timeout 10000 ms"
        ),
        "{stdout}"
    );
    assert!(stdout.contains("is valid"), "{stdout}");
    assert!(
        stdout.contains("warning  ") && stdout.contains("callhook.toml:3:7: pbx.url is http://"),
        "an http:// PBX is accepted with a warning naming its place: {stdout}"
    );
    let (ok, stdout, stderr) = check_config(&VALID.replace("http://", "https://"));
    assert!(ok, "{stdout}{stderr}");
    assert!(!stdout.contains("warning"), "{stdout}");
}

#[test]
fn check_config_names_file_line_and_key_of_a_mistake() {
    let broken = VALID.replace("client_id = \"callhook\"", "client_idd = \"callhook\"");
    let (ok, _, stderr) = check_config(&broken);
    assert!(!ok);
    assert!(
        stderr.contains("callhook.toml:4:1: pbx.client_idd: unknown key"),
        "{stderr}"
    );
    assert!(stderr.contains("client_idd"), "{stderr}");
}

/// A WebAssembly component that declares the plugin contract version but exports nothing.
fn component_without_the_export() -> Vec<u8> {
    let (name, version) = (b"callhook:api-version", b"0.1.0");
    let mut section = vec![name.len() as u8];
    section.extend(name);
    section.extend(version);
    let mut wasm = b"\0asm\x0d\0\x01\0".to_vec();
    wasm.extend([0, section.len() as u8]);
    wasm.extend(section);
    wasm
}

#[test]
fn check_config_names_the_plugin_file_and_place_of_a_plugin_without_the_export() {
    let dir = tempfile::tempdir().unwrap();
    let wasm = dir.path().join("empty.wasm");
    std::fs::write(&wasm, component_without_the_export()).unwrap();
    let config = format!(
        "{VALID}\n[[plugin]]\nname = \"crm\"\npath = \"{}\"\nallowed_hosts = [\"https://crm.example.com\"]\n",
        wasm.display()
    );
    let (ok, _, stderr) = check_config(&config);
    assert!(!ok);
    let place = format!("plugin crm ({}, configured at ", wasm.display());
    assert!(stderr.contains(&place), "{stderr}");
    assert!(
        stderr.contains("callhook.toml:16:8: plugin.name)"),
        "{stderr}"
    );
    assert!(
        stderr.contains("no export `deliver`"),
        "names the missing export: {stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scaffolded_plugin_builds_loads_and_delivers() {
    let dir = tempfile::tempdir().unwrap();
    let crate_dir = dir.path().join("my-crm");
    let output = Command::new(CALLHOOK)
        .args(["plugin", "new", "my-crm", "--dir"])
        .arg(&crate_dir)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let printed = String::from_utf8(output.stdout).unwrap();
    assert!(
        printed.contains("cargo build --release --target wasm32-wasip2"),
        "{printed}"
    );
    // The crate carries the SDK (contract and all): nothing points back at this source tree.
    let manifest = std::fs::read_to_string(crate_dir.join("Cargo.toml")).unwrap();
    assert!(
        manifest.contains("callhook-plugin-sdk = { path = \"callhook-plugin-sdk\" }"),
        "{manifest}"
    );
    let sdk = crate_dir.join("callhook-plugin-sdk");
    let sdk_manifest = std::fs::read_to_string(sdk.join("Cargo.toml")).unwrap();
    assert!(!sdk_manifest.contains("workspace"), "{sdk_manifest}");
    let wit = sdk.join("wit/plugin.wit");
    assert!(!wit.is_symlink(), "the contract is a file of the crate");
    assert!(
        std::fs::read_to_string(wit)
            .unwrap()
            .contains("package callhook:plugin@0.3.0;")
    );

    // Build it as its author would (its own `[profile.release]`), with the workspace's lock
    // file and plugin build directory, so that nothing new is downloaded.
    let workspace = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap();
    std::fs::copy(workspace.join("Cargo.lock"), crate_dir.join("Cargo.lock")).unwrap();
    let target = workspace.join("target").join("plugins");
    let build = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args([
            "build",
            "--release",
            "--target",
            "wasm32-wasip2",
            "--target-dir",
        ])
        .arg(&target)
        .current_dir(&crate_dir)
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .output()
        .unwrap();
    assert!(
        build.status.success(),
        "{}",
        String::from_utf8_lossy(&build.stderr)
    );
    let wasm = std::fs::read(target.join("wasm32-wasip2/release/my_crm.wasm")).unwrap();

    let sink = Sink::start().await;
    let (_dir, runtime) = crate::support::runtime();
    let url = sink.url("/calls");
    let plugin = runtime
        .load(crate::support::spec(
            "my-crm",
            &wasm,
            &[&sink.origin()],
            &[("url", &url)],
        ))
        .unwrap();
    assert_eq!(
        crate::support::deliver(&plugin, &crate::support::ringing()).await,
        callhook::queue::DeliveryOutcome::Delivered
    );
    let body: serde_json::Value = serde_json::from_slice(&sink.wait_for(1).await[0].body).unwrap();
    assert_eq!(
        body,
        serde_json::json!({
            "event": "ringing",
            "call": "210701165649_782-0",
            "extension": "120",
            "from": "+425630434343",
        })
    );
}

#[test]
fn plugin_test_prints_the_requests_a_plugin_would_send_without_sending_them() {
    let output = Command::new(CALLHOOK)
        .args([
            "plugin",
            "test",
            "generic-webhook",
            "--scenario",
            "01-direct-inbound-answered",
            "--setting",
            "webhook_url=https://crm.example.com/hook",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let requests: Vec<&str> = stdout.lines().filter(|l| l.starts_with("  GET ")).collect();
    assert_eq!(requests.len(), 3, "{stdout}");
    assert!(
        requests[0].starts_with(
            "  GET https://crm.example.com/hook?event=ringing&callerid=425630434343&did=%2B4930123456&user=120&usertype=ext&id="
        ),
        "{stdout}"
    );
    assert!(requests[2].contains("?event=incoming&"), "{stdout}");
    assert!(stdout.ends_with("3 events\n"), "{stdout}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_config_online_says_which_api_the_client_lacks() {
    let simulator = Simulator::start(SimConfig::default()).await.unwrap();
    let config = VALID.replace("http://127.0.0.1:5001", &simulator.base_url());
    let online = |config: String| async move {
        tokio::task::spawn_blocking(move || check_config_with(&config, &["--online"]))
            .await
            .unwrap()
    };

    let (ok, stdout, stderr) = online(config.clone()).await;
    assert!(ok, "{stdout}{stderr}");
    assert!(stdout.contains("ok  Call Control: "), "{stdout}");
    assert!(stdout.contains("ok  XAPI: "), "{stdout}");

    simulator.faults().forbid_xapi(true);
    let (ok, stdout, stderr) = online(config.clone()).await;
    assert!(!ok, "{stdout}{stderr}");
    assert!(stdout.contains("ok  Call Control: "), "{stdout}");
    assert!(
        stdout.contains("missing  XAPI: ") && stdout.contains("XAPI access"),
        "{stdout}"
    );
    assert!(!stdout.contains("licence"), "{stdout}");

    simulator.faults().reset();
    simulator.faults().no_licence(true);
    let (ok, stdout, stderr) = online(config).await;
    assert!(!ok, "{stdout}{stderr}");
    assert!(
        stdout.contains("missing  Call Control: ") && stdout.contains("Call Control access"),
        "{stdout}"
    );
    assert!(stdout.contains("ok  XAPI: "), "{stdout}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_capture_of_a_run_replays_to_the_same_events_with_the_configuration() {
    let simulator = Simulator::start(SimConfig::default()).await.unwrap();
    let scenario = Scenario::builtin("01-direct-inbound-answered").unwrap();
    simulator.add_directory(&scenario.directory());
    let sink = Sink::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("callhook.toml");
    let capture = dir.path().join("capture.jsonl");
    // The live PBX leaves `party_did` empty: the DID comes from `[trunks]`, its name from
    // `[did]` here (XAPI's rules are not in a capture).
    let toml =
        crate::support::host_config(dir.path(), &simulator.base_url(), &sink.base, "/3cx/events")
            + "\n[did]\n\"4930123456\" = \"CompanyDID\"\n";
    std::fs::write(&config, toml).unwrap();
    let mut host = Host(
        Command::new(CALLHOOK)
            .args(["run", "--config"])
            .arg(&config)
            .arg("--capture")
            .arg(&capture)
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    connected(&simulator).await;
    simulator.play(&scenario, 0.05).await.unwrap();
    let received = sink.wait_for(3).await;
    assert!(host.signal("-TERM").success());
    for request in &received {
        assert!(
            request.query().contains("&did=CompanyDID&"),
            "{}",
            request.query()
        );
    }

    let replay = |with_config: bool| {
        let mut command = Command::new(CALLHOOK);
        command.arg("replay").arg(&capture);
        if with_config {
            command.arg("--config").arg(&config);
        }
        let output = command.output().unwrap();
        assert!(output.status.success(), "{output:?}");
        String::from_utf8(output.stdout).unwrap()
    };
    let events: Vec<serde_json::Value> = replay(true)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(events.len(), 3, "{events:#?}");
    let text = serde_json::to_string(&events).unwrap();
    assert_eq!(text.matches("\"did\":\"CompanyDID\"").count(), 3, "{text}");
    assert!(
        !replay(false).contains("CompanyDID"),
        "without the configuration the trunk's DID is unknown"
    );
}

/// The issue's configuration, `memory_mb = 512` with `mp3_bitrate = 56` (recordings on): the
/// validator, `check-config` and `run` agree. 56 kbit/s is refused by all three, each naming the
/// same file, line and key, and `run` refuses before connecting anywhere; with a bit rate the
/// encoder offers, the 512 MiB plugin passes all three and delivers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validator_check_config_and_run_agree_on_memory_mb_and_mp3_bitrate() {
    let simulator = Simulator::start(SimConfig::default()).await.unwrap();
    let scenario = Scenario::builtin("01-direct-inbound-answered").unwrap();
    simulator.add_directory(&scenario.directory());
    let sink = Sink::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("callhook.toml");
    let toml = host_config(dir.path(), &simulator.base_url(), &sink.base, "/3cx/events")
        .replace(
            "name = \"generic-webhook\"\n",
            "name = \"generic-webhook\"\nmemory_mb = 512\n",
        )
        .replace(
            "listen = \"127.0.0.1:0\"\n",
            "listen = \"127.0.0.1:0\"\npublic_url = \"http://127.0.0.1:1\"\n",
        )
        + "\n[recordings]\nenabled = true\nmp3_bitrate = 56\n";
    let line = toml
        .lines()
        .position(|line| line.starts_with("mp3_bitrate"))
        .unwrap()
        + 1;
    let place = format!("callhook.toml:{line}:15: recordings.mp3_bitrate: ");
    std::fs::write(&config, &toml).unwrap();

    let refused = callhook::config::Config::load(&config)
        .unwrap_err()
        .to_string();
    assert!(
        refused.contains(&place) && refused.contains("56"),
        "{refused}"
    );
    let checked = Command::new(CALLHOOK)
        .args(["check-config", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&checked.stderr);
    assert!(!checked.status.success(), "{checked:?}");
    assert!(stderr.contains(&place), "{stderr}");
    let (mut host, lines) = Host::start_capturing(&config);
    let mut exit = None;
    for _ in 0..300 {
        exit = host.0.try_wait().unwrap();
        if exit.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let printed = lines.all().join("\n");
    assert!(
        exit.is_some_and(|status| !status.success()),
        "run refuses at start:\n{printed}"
    );
    assert!(printed.contains(&place), "{printed}");
    assert_eq!(
        simulator.snapshots_served(),
        0,
        "run connected before refusing"
    );

    std::fs::write(
        &config,
        toml.replace("mp3_bitrate = 56", "mp3_bitrate = 64"),
    )
    .unwrap();
    let accepted = callhook::config::Config::load(&config).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(accepted.plugins[0].limits.memory_bytes, 512 << 20);
    let checked = Command::new(CALLHOOK)
        .args(["check-config", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&checked.stdout);
    assert!(checked.status.success(), "{checked:?}");
    assert!(stdout.contains("memory 512 MiB"), "{stdout}");
    let (mut host, lines) = Host::start_capturing(&config);
    lines.wait_for(|line| line.contains("memory 512 MiB")).await;
    connected(&simulator).await;
    simulator.play(&scenario, 0.05).await.unwrap();
    assert_eq!(sink.wait_for(3).await.len(), 3);
    assert!(host.signal("-TERM").success());
}

/// `callhook [--log-format F] run` against a PBX that refuses connections, its stderr going to
/// a file as `callhook run 2> host.log` would; returns the file once the connector has logged a
/// reconnect.
fn stderr_of_a_run(format: Option<&str>) -> String {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("callhook.toml");
    std::fs::write(
        &config,
        VALID
            .replace("127.0.0.1:5001", "127.0.0.1:1")
            .replace("{dir}", &dir.path().display().to_string())
            + "\n[server]\nlisten = \"127.0.0.1:0\"\n",
    )
    .unwrap();
    let log = dir.path().join("host.log");
    let mut command = Command::new(CALLHOOK);
    if let Some(format) = format {
        command.args(["--log-format", format]);
    }
    let _host = Host(
        command
            .args(["run", "--config"])
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let text = std::fs::read_to_string(&log).unwrap();
        if text.contains("lost the PBX connection") {
            return text;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no reconnect logged:\n{text}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

#[test]
fn logs_to_a_file_have_no_colour_codes() {
    let text = stderr_of_a_run(None);
    assert!(text.contains(" WARN "), "{text}");
    assert!(
        !text.contains("\x1b["),
        "no ANSI escape codes off a terminal:\n{text}"
    );
}

#[test]
fn log_format_json_writes_one_object_per_line() {
    let text = stderr_of_a_run(Some("json"));
    let logs: Vec<serde_json::Value> = text
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line:?}")))
        .collect();
    // The configuration's warnings too, each naming file, line and key.
    let warning = logs
        .iter()
        .find(|log| log["target"] == "callhook::config")
        .unwrap_or_else(|| panic!("{text}"));
    assert_eq!(warning["level"], "WARN");
    let message = warning["fields"]["message"].as_str().unwrap();
    assert!(message.contains(":3:7: pbx.url is http://"), "{message}");
    let reconnect = logs
        .iter()
        .find(|log| log["fields"]["message"] == "lost the PBX connection; reconnecting")
        .unwrap_or_else(|| panic!("{text}"));
    assert_eq!(reconnect["level"], "WARN");
    assert_eq!(reconnect["target"], "callhook::pbx::connector");
    assert!(reconnect["fields"]["error"].is_string(), "{reconnect}");
}

/// `plugin test` answers a CRM plugin with its CRM's stand-in and prints the records the CRM
/// ends up with: a blind transfer makes one record per extension that talked, with the
/// duration in the CRM's unit, the caller's contact and the extension's owner (by e-mail).
#[test]
fn plugin_test_runs_each_crm_plugin_against_its_stand_in() {
    let expected: [(&str, [&str; 2], &str); 4] = [
        (
            "hubspot",
            ["INBOUND COMPLETED 30000 ms", "INBOUND COMPLETED 60000 ms"],
            "owner -",
        ),
        ("pipedrive", ["connected 30 s", "connected 60 s"], "user -"),
        (
            "bitrix24",
            [": 200 after 30 s", ": 200 after 60 s"],
            "not finished",
        ),
        ("zoho", ["Inbound 00:30", "Inbound 01:00"], "owner -"),
    ];
    for (crm, records, absent) in expected {
        let output = Command::new(CALLHOOK)
            .args(["plugin", "test", crm, "--scenario", "05-blind-transfer"])
            .output()
            .unwrap();
        let stdout = String::from_utf8(output.stdout).unwrap();
        assert!(
            output.status.success(),
            "{crm}: {stdout}{}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(
            !stdout.contains("=> "),
            "{crm}: every delivery succeeds:\n{stdout}"
        );
        let (_, held) = stdout
            .split_once("now holds:\n")
            .unwrap_or_else(|| panic!("{crm}: {stdout}"));
        let lines: Vec<&str> = held.lines().collect();
        assert_eq!(lines.len(), 2, "{crm}: {held}");
        for (line, record) in lines.iter().zip(records) {
            assert!(line.contains(record), "{crm}: {line:?} lacks {record:?}");
            assert!(!line.contains(absent), "{crm}: {line:?} has {absent:?}");
        }
    }
}

/// `demo --plugin` runs the demo's calls into a CRM plugin and its stand-in, and ends with the
/// records: one per part that talked (01, 03, 05 twice, 08).
#[test]
fn demo_with_a_crm_plugin_ends_with_the_crm_records() {
    let output = Command::new(CALLHOOK)
        .args(["demo", "--plugin", "pipedrive", "--time-scale", "0.05"])
        .output()
        .unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("POST /v1/callLogs "), "{stdout}");
    let (_, held) = stdout
        .split_once("Pipedrive now holds:\n")
        .unwrap_or_else(|| panic!("{stdout}"));
    let lines: Vec<&str> = held.lines().collect();
    assert_eq!(lines.len(), 5, "{held}");
    assert!(
        lines.iter().all(|line| line.contains(": connected ")),
        "{held}"
    );
    // The recordings were uploaded to the call logs.
    assert!(
        lines.iter().all(|line| line.ends_with(", with recording")),
        "{held}"
    );
}

/// Two hosts on one machine with the same console port: the second starts and delivers, and
/// its start summary says that it has no console and which setting to change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_console_port_in_use_leaves_the_host_running_and_names_the_setting() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let simulator = Simulator::start(SimConfig::default()).await.unwrap();
    let scenario = Scenario::builtin("01-direct-inbound-answered").unwrap();
    simulator.add_directory(&scenario.directory());
    let sink = Sink::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("callhook.toml");
    let toml = host_config(dir.path(), &simulator.base_url(), &sink.base, "/3cx/events").replace(
        "listen = '127.0.0.1:0'",
        &format!("listen = '127.0.0.1:{port}'"),
    );
    std::fs::write(&config, &toml).unwrap();
    let (_host, lines) = Host::start_capturing(&config);
    let line = lines
        .wait_for(|line| line.contains("no operator console"))
        .await;
    assert!(
        line.contains(&format!("127.0.0.1:{port}")) && line.contains("[admin] listen"),
        "{line}"
    );
    crate::support::connected(&simulator).await;
    simulator.play(&scenario, 0.05).await.unwrap();
    sink.wait_for(3).await;
}
