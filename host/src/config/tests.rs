//! Tests of loading, validation, the legacy ini, `check`, hot reload and the reference page.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::*;
use crate::queue::{NumberPattern, Route, Routes};
use crate::recordings::convert::BITRATES;
use crate::runtime::RuntimeConfig;

const PBX: &str = "[pbx]\nurl = \"https://pbx.example.com:5001\"\nclient_id = \"callhook\"\nclient_secret = \"s3cret\"\n";

/// A temporary directory with files, and the env the tests load with.
struct Dir {
    dir: tempfile::TempDir,
    env: BTreeMap<String, String>,
}

impl Dir {
    fn new() -> Self {
        let env = [
            ("CALLHOOK_PBX_SECRET", "pbx-secret"),
            (
                "CALLHOOK_SIGNING_SECRET",
                "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            ),
            ("HUBSPOT_TOKEN", "pat-123"),
            ("MY_CRM_TOKEN", "my-crm-123"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        Dir {
            dir: tempfile::tempdir().unwrap(),
            env,
        }
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(&path, text).unwrap();
        path
    }

    fn load(&self, name: &str, text: &str) -> Result<Config, ConfigErrors> {
        let path = self.write(name, text);
        Config::load_with_env(&path, &self.env)
    }
}

fn load_toml(text: &str) -> Result<Config, ConfigErrors> {
    Dir::new().load("callhook.toml", text)
}

/// The errors of an invalid TOML file, as displayed.
fn errors(text: &str) -> Vec<String> {
    match load_toml(text) {
        Ok(_) => panic!("expected errors for:\n{text}"),
        Err(errors) => errors.iter().map(ToString::to_string).collect(),
    }
}

/// Asserts that exactly one error names `file:line` and `key` and contains `words`.
#[track_caller]
fn assert_error(errors: &[String], place: &str, key: &str, words: &str) {
    let found = errors
        .iter()
        .any(|e| e.contains(place) && e.contains(&format!(": {key}: ")) && e.contains(words));
    assert!(
        found,
        "no error at {place} for {key} with {words:?} in:\n{}",
        errors.join("\n")
    );
}

// ---- validation error classes ----

#[test]
fn rejects_unknown_key() {
    let errors = errors(&format!("{PBX}urll = \"x\"\n"));
    assert_error(
        &errors,
        "callhook.toml:5:1",
        "pbx.urll",
        "unknown key; expected",
    );
    assert!(errors[0].contains("`url`"), "{errors:?}");
}

#[test]
fn rejects_unknown_top_level_key() {
    let errors = errors(&format!("defaul_plugins = []\n{PBX}"));
    assert_error(
        &errors,
        "callhook.toml:1:1",
        "defaul_plugins",
        "`default_plugins`",
    );
}

#[test]
fn rejects_unknown_key_in_a_plugin() {
    let errors = errors(&format!(
        "{PBX}[[plugin]]\nname = \"x\"\npath = \"x.wasm\"\nmemory = 5\n"
    ));
    assert_error(
        &errors,
        "callhook.toml:8",
        "plugin.memory",
        "expected one of",
    );
}

#[test]
fn rejects_wrong_type() {
    let errors = errors(&format!(
        "{PBX}[[plugin]]\nname = \"x\"\npath = \"x.wasm\"\nmemory_mb = \"64\"\n"
    ));
    assert_error(&errors, "callhook.toml:8", "plugin.memory_mb", "wrong type");
}

#[test]
fn rejects_syntax_error() {
    let errors = errors(&format!("{PBX}[[plugin]\n"));
    assert_error_any(&errors, "callhook.toml:5", "syntax error");
}

#[track_caller]
fn assert_error_any(errors: &[String], place: &str, words: &str) {
    assert!(
        errors
            .iter()
            .any(|e| e.contains(place) && e.contains(words)),
        "no error at {place} with {words:?} in:\n{}",
        errors.join("\n")
    );
}

#[test]
fn rejects_bad_url() {
    let errors = errors(
        "[pbx]\nurl = \"ftp://pbx.example.com\"\nclient_id = \"c\"\nclient_secret = \"s\"\n",
    );
    assert_error(
        &errors,
        "callhook.toml:2:7",
        "pbx.url",
        "http:// or https:// URL",
    );
    let errors = errors_with(&format!(
        "{PBX}[[plugin]]\nname = \"generic-webhook\"\n[plugin.settings]\nwebhook_url = \"crm.example.com/hook\"\n"
    ));
    assert_error(
        &errors,
        "callhook.toml:8:15",
        "plugin.settings.webhook_url",
        "http:// or https:// URL",
    );
}

fn errors_with(text: &str) -> Vec<String> {
    errors(text)
}

#[test]
fn rejects_reversed_extension_range() {
    let errors = errors(&format!(
        "{PBX}[[route]]\nextensions = [\"100-199\", \"199-100\"]\nplugins = [\"generic-webhook\"]\n"
    ));
    assert_error(
        &errors,
        "callhook.toml:6:26",
        "route.extensions",
        "\"100-199\"",
    );
    assert_error(
        &errors,
        "callhook.toml:6",
        "route.extensions",
        "found \"199-100\"",
    );
}

#[test]
fn rejects_bad_extension() {
    let errors = errors(&format!(
        "{PBX}[[route]]\nextensions = \"1x0\"\nplugins = [\"generic-webhook\"]\n"
    ));
    assert_error(
        &errors,
        "callhook.toml:6",
        "route.extensions",
        "a range (\"100-199\")",
    );
}

#[test]
fn rejects_unknown_plugin_in_route() {
    let errors = errors(&format!(
        "{PBX}[[route]]\nextensions = \"*\"\nplugins = [\"generic-webhook\", \"hubspt\"]\n"
    ));
    assert_error(
        &errors,
        "callhook.toml:7:31",
        "route.plugins",
        "unknown plugin \"hubspt\"",
    );
    assert!(errors[0].contains("generic-webhook"), "{errors:?}");
}

#[test]
fn rejects_unknown_default_plugin() {
    let errors = errors(&format!("default_plugins = [\"nope\"]\n{PBX}"));
    assert_error(
        &errors,
        "callhook.toml:1",
        "default_plugins",
        "unknown plugin \"nope\"",
    );
}

#[test]
fn rejects_duplicate_plugin_names() {
    let errors = errors(&format!(
        "{PBX}[[plugin]]\nname = \"crm\"\npath = \"a.wasm\"\n[[plugin]]\nname = \"crm\"\npath = \"b.wasm\"\n"
    ));
    assert_error(
        &errors,
        "callhook.toml:9",
        "plugin.name",
        "duplicate plugin name \"crm\", already defined at ",
    );
    assert!(errors[0].contains("callhook.toml:6"), "{errors:?}");
}

#[test]
fn rejects_memory_out_of_range() {
    let errors = errors(&format!(
        "{PBX}[[plugin]]\nname = \"x\"\npath = \"x.wasm\"\nmemory_mb = 4096\ntimeout_ms = 0\n"
    ));
    assert_error(
        &errors,
        "callhook.toml:8:13",
        "plugin.memory_mb",
        "from 1 to 1024",
    );
    assert_error(
        &errors,
        "callhook.toml:9",
        "plugin.timeout_ms",
        "from 1 to 600000",
    );
}

#[test]
fn accepts_every_memory_cap_the_runtime_allows() {
    // The validator's maximum is the runtime's own: a cap that validates also loads.
    let max = RuntimeConfig::MAX_MEMORY_MB;
    assert_eq!(RuntimeConfig::default().max_memory_bytes, max << 20);
    for memory_mb in [1, 512, max] {
        let config = load_toml(&format!(
            "{PBX}[[plugin]]\nname = \"x\"\npath = \"x.wasm\"\nmemory_mb = {memory_mb}\n"
        ))
        .unwrap_or_else(|errors| panic!("{memory_mb}: {errors}"));
        assert_eq!(
            config.plugin("x").unwrap().limits.memory_bytes,
            memory_mb << 20
        );
    }
    let errors = errors(&format!(
        "{PBX}[[plugin]]\nname = \"x\"\npath = \"x.wasm\"\nmemory_mb = {}\n",
        max + 1
    ));
    assert_error(
        &errors,
        "callhook.toml:8:13",
        "plugin.memory_mb",
        &format!("from 1 to {max}"),
    );
}

#[test]
fn rejects_mp3_bitrate_the_encoder_lacks() {
    // 56 kbit/s is an MPEG bit rate, but not one the encoder offers: refused here, with its
    // place, rather than when `run` starts the recorder.
    let errors = errors(&format!("{PBX}[recordings]\nmp3_bitrate = 56\n"));
    assert_error(
        &errors,
        "callhook.toml:6:15",
        "recordings.mp3_bitrate",
        "kbit/s: 8, 16, 24, 32, 40, 48, 64, 80,",
    );
    let errors = Dir::new()
        .load(
            "webhooks.ini",
            "[3CX]\nURL=https://pbx.example.com\nCLIENT_ID=callhook\nCLIENT_SECRET=s\n\
             [RECORDINGS]\nMP3_BITRATE=56\n",
        )
        .unwrap_err()
        .to_string();
    assert!(
        errors.contains("webhooks.ini:6: [RECORDINGS] MP3_BITRATE: ") && errors.contains("56"),
        "{errors}"
    );
}

#[test]
fn accepts_every_mp3_bitrate_the_encoder_offers() {
    for rate in BITRATES {
        let config = load_toml(&format!("{PBX}[recordings]\nmp3_bitrate = {rate}\n"))
            .unwrap_or_else(|errors| panic!("{rate}: {errors}"));
        assert_eq!(config.recordings.bitrate_kbps, rate);
    }
}

#[test]
fn retry_hours_default_to_6_and_stop_at_a_week() {
    for (text, hours) in [
        ("", 6),
        ("retry_hours = 0\n", 0),
        ("retry_hours = 168\n", 168),
    ] {
        let config = load_toml(&format!("{PBX}[recordings]\n{text}"))
            .unwrap_or_else(|errors| panic!("{text}: {errors}"));
        assert_eq!(
            config.recordings.retry_for,
            std::time::Duration::from_secs(hours * 3600),
            "{text}"
        );
    }
    let errors = errors(&format!("{PBX}[recordings]\nretry_hours = 169\n"));
    assert_error(
        &errors,
        "callhook.toml:6:15",
        "recordings.retry_hours",
        "hours from 0 to 168",
    );
}

#[test]
fn rejects_delivery_limits_out_of_range() {
    let errors = errors(&format!(
        "{PBX}[[plugin]]\nname = \"x\"\npath = \"x.wasm\"\nconcurrency = 0\nrate_per_second = -1\n"
    ));
    assert_error(
        &errors,
        "callhook.toml:8:15",
        "plugin.concurrency",
        "from 1 to 64",
    );
    assert_error(
        &errors,
        "callhook.toml:9",
        "plugin.rate_per_second",
        "above 0",
    );
}

#[test]
fn rejects_max_response_kb_out_of_range() {
    for bad in ["0", "65537"] {
        let errors = errors(&format!(
            "{PBX}[[plugin]]\nname = \"x\"\npath = \"x.wasm\"\nmax_response_kb = {bad}\n"
        ));
        assert_error(
            &errors,
            "callhook.toml:8",
            "plugin.max_response_kb",
            "from 1 to 65536",
        );
    }
}

#[test]
fn accepts_max_response_kb_and_defaults_it_to_4_mib() {
    let config = load_toml(&format!(
        "{PBX}[[plugin]]\nname = \"x\"\npath = \"x.wasm\"\nmax_response_kb = 64\n[[plugin]]\nname = \"y\"\npath = \"y.wasm\"\n"
    ))
    .unwrap();
    assert_eq!(config.plugins[0].limits.max_response_bytes, 64 << 10);
    assert_eq!(config.plugins[1].limits.max_response_bytes, 4 << 20);
}

#[test]
fn rejects_missing_required_key() {
    let errors = errors("[pbx]\nurl = \"https://pbx.example.com\"\nclient_secret = \"s\"\n");
    assert_error(
        &errors,
        "callhook.toml:1",
        "pbx.client_id",
        "missing required key",
    );
    let errors = errors_with("");
    assert_error_any(&errors, "callhook.toml: pbx.url", "missing required key");
    let errors = errors_with(&format!("{PBX}[[plugin]]\nname = \"crm\"\n"));
    assert_error(
        &errors,
        "callhook.toml:6",
        "plugin.path",
        "missing required key",
    );
}

#[test]
fn rejects_missing_file() {
    let dir = Dir::new();
    let missing = dir.dir.path().join("nope.toml");
    let errors = Config::load_with_env(&missing, &dir.env).unwrap_err();
    let shown = errors.to_string();
    assert!(
        shown.contains("nope.toml") && shown.contains("cannot use"),
        "{shown}"
    );

    let errors = dir
        .load("callhook.toml", &format!("legacy_ini = \"old.ini\"\n{PBX}"))
        .unwrap_err()
        .to_string();
    assert!(
        errors.contains("callhook.toml:1:14: legacy_ini: cannot use") && errors.contains("old.ini"),
        "{errors}"
    );
}

#[test]
fn rejects_unset_env_var() {
    let errors = errors(
        "[pbx]\nurl = \"https://pbx.example.com\"\nclient_id = \"c\"\nclient_secret = \"env:NOT_SET_ANYWHERE\"\n",
    );
    assert_error(
        &errors,
        "callhook.toml:4",
        "pbx.client_secret",
        "environment variable NOT_SET_ANYWHERE is not set",
    );
}

#[test]
fn rejects_bad_allowed_host() {
    let errors = errors(&format!(
        "{PBX}[[plugin]]\nname = \"x\"\npath = \"x.wasm\"\nallowed_hosts = [\"https://ok.example.com\", \"crm.example.com\"]\n"
    ));
    assert_error(
        &errors,
        "callhook.toml:8:44",
        "plugin.allowed_hosts",
        "scheme://host[:port]",
    );
}

#[test]
fn rejects_a_plugin_ca_file_without_certificates() {
    let dir = Dir::new();
    dir.write("not-pem.txt", "hello\n");
    let text = format!(
        "{PBX}[[plugin]]\nname = \"x\"\npath = \"x.wasm\"\nca_file = \"missing.pem\"\n[[plugin]]\nname = \"y\"\npath = \"y.wasm\"\nca_file = \"not-pem.txt\"\n"
    );
    let errors: Vec<String> = match dir.load("callhook.toml", &text) {
        Ok(_) => panic!("expected errors"),
        Err(errors) => errors.iter().map(ToString::to_string).collect(),
    };
    assert_error(&errors, "callhook.toml:8", "plugin.ca_file", "missing.pem");
    assert_error(
        &errors,
        "callhook.toml:12",
        "plugin.ca_file",
        "no PEM certificate",
    );
}

#[test]
fn accepts_a_plugin_ca_file_of_pem_certificates() {
    let dir = Dir::new();
    let key = rcgen::KeyPair::generate().unwrap();
    let ca = rcgen::CertificateParams::new(Vec::<String>::new())
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let path = dir.write("certs/ca.pem", &ca.pem());
    let config = dir
        .load(
            "callhook.toml",
            &format!(
                "{PBX}[[plugin]]\nname = \"x\"\npath = \"x.wasm\"\nca_file = \"certs/ca.pem\"\n"
            ),
        )
        .unwrap();
    assert_eq!(config.plugins[0].ca_file, Some(path));
}

#[test]
fn rejects_bad_values_of_the_builtin_plugin() {
    let errors = errors(&format!(
        "{PBX}[[plugin]]\nname = \"generic-webhook\"\n[plugin.settings]\npost = 2\nduration_format = \"minutes\"\nwebhok_url = \"https://x.example\"\nevent_alias.incomming = \"x\"\n[plugin.secrets]\nsigning_secret = \"not base64!\"\n"
    ));
    assert_error(&errors, "callhook.toml:8", "plugin.settings.post", "0 or 1");
    assert_error(
        &errors,
        "callhook.toml:9",
        "plugin.settings.duration_format",
        "`clock`",
    );
    assert_error(
        &errors,
        "callhook.toml:10",
        "plugin.settings.webhok_url",
        "unknown key",
    );
    assert_error(
        &errors,
        "callhook.toml:11",
        "plugin.settings.event_alias.incomming",
        "unknown key",
    );
    assert_error(
        &errors,
        "callhook.toml:13",
        "plugin.secrets.signing_secret",
        "whsec_",
    );
    assert!(
        !errors.iter().any(|e| e.contains("not base64!")),
        "secret shown: {errors:?}"
    );
}

#[test]
fn rejects_bad_durations_and_addresses() {
    let errors = errors(&format!(
        "{PBX}resnapshot_interval = \"soon\"\n[engine]\ngrace = \"2h\"\n[server]\nlisten = \"localhost\"\n[recordings]\nmp3_bitrate = 33\n"
    ));
    assert_error(
        &errors,
        "callhook.toml:5",
        "pbx.resnapshot_interval",
        "a duration",
    );
    assert_error(&errors, "callhook.toml:7", "engine.grace", "from 0s to 1h");
    assert_error(
        &errors,
        "callhook.toml:9",
        "server.listen",
        "IP address and port",
    );
    assert_error(&errors, "callhook.toml:11", "recordings.mp3_bitrate", "320");
}

#[test]
fn rejects_a_public_url_with_a_query_or_fragment() {
    for url in [
        "https://pbx.example.com:5001/?x=1",
        "https://pbx.example.com:5001/#top",
    ] {
        let errors = errors(&format!("{PBX}[server]\npublic_url = \"{url}\"\n"));
        assert_error(
            &errors,
            "callhook.toml:6",
            "server.public_url",
            "without a query or fragment",
        );
    }
}

#[test]
fn rejects_recordings_without_public_url() {
    let errors = errors(&format!(
        "{PBX}[recordings]\nenabled = true\nsource = \"folder\"\n"
    ));
    assert_error(
        &errors,
        "callhook.toml",
        "server.public_url",
        "recordings are enabled",
    );
    assert_error(
        &errors,
        "callhook.toml:5",
        "recordings.folder",
        "missing required key",
    );
}

#[test]
fn rejects_bad_timezone() {
    let errors = errors(&format!("{PBX}timezone = \"Mars/Olympus\"\n"));
    assert_error(&errors, "callhook.toml:5", "pbx.timezone", "IANA time zone");
}

#[test]
fn rejects_bad_trunks() {
    let bad = errors(&format!(
        "{PBX}[trunks]\n\"10007\" = \"abc\"\n\" \" = \"+4930123456\"\n\"10008\" = \"\"\n"
    ));
    assert_error(&bad, "callhook.toml:6", "trunks.\"10007\"", "a DID number");
    assert_error(&bad, "callhook.toml:7", "trunks.\" \"", "a trunk DN");
    assert_error(&bad, "callhook.toml:8", "trunks.\"10008\"", "a DID number");
    let wrong_type = errors(&format!("{PBX}[trunks]\n\"10007\" = 4930123456\n"));
    assert_error(&wrong_type, "callhook.toml:6", "trunks.10007", "wrong type");
}

#[test]
fn rejects_did_numbers_with_the_same_digits() {
    let errors = errors(&format!(
        "{PBX}[did]\n\"+4930123456\" = \"A\"\n\"49 30 123456\" = \"B\"\n"
    ));
    assert_error(
        &errors,
        "callhook.toml:7",
        "did.\"49 30 123456\"",
        "compared by digits",
    );
}

#[test]
fn collects_every_error() {
    let errors = errors(
        "bogus = 1\n[pbx]\nurl = \"nope\"\nclient_id = \"\"\n[[plugin]]\nname = \"Bad Name\"\npath = \"x.wasm\"\n[[route]]\nextensions = \"9-1\"\nplugins = [\"ghost\"]\n",
    );
    assert!(errors.len() >= 6, "{errors:#?}");
    for line in [":1:", ":3:", ":4:", ":6:", ":9:", ":10:"] {
        assert!(
            errors.iter().any(|e| e.contains(line)),
            "{line} in {errors:#?}"
        );
    }
}

// ---- accepted configurations ----

#[test]
fn accepts_trunks_and_dids_in_any_form() {
    let config = load_toml(&format!(
        "{PBX}[trunks]\n\"10007\" = \"+49 30 123456\"\nsip-trunk = \"030/555\"\n[did]\n\"+4930123456\" = \"CompanyDID\"\n"
    ))
    .unwrap_or_else(|errors| panic!("{errors}"));
    assert_eq!(
        config.engine.trunk_dids,
        BTreeMap::from([
            ("10007".to_string(), "+49 30 123456".to_string()),
            ("sip-trunk".to_string(), "030/555".to_string()),
        ])
    );
    assert_eq!(config.engine.did_rules["+4930123456"], "CompanyDID");
}

#[test]
fn accepts_a_minimal_config_with_defaults() {
    let config = load_toml(PBX).unwrap();
    assert_eq!(config.pbx.url.as_str(), "https://pbx.example.com:5001/");
    assert_eq!(config.pbx.client_secret.expose(), "s3cret");
    assert_eq!(config.pbx.resnapshot_interval, Duration::from_secs(60));
    assert_eq!(config.engine.grace, Duration::from_secs(2));
    assert!(!config.engine.report_internal_calls);
    assert!(!config.recordings.enabled);
    assert_eq!(config.storage.dir.path, PathBuf::from("/var/lib/callhook"));
    assert_eq!(
        config.recordings.mp3_dir,
        PathBuf::from("/var/lib/callhook/recordings")
    );
    assert_eq!(config.server.listen, crate::server::DEFAULT_LISTEN);
    assert_eq!(config.routes.default_plugins, vec![GENERIC_WEBHOOK]);
    let plugin = config.plugin(GENERIC_WEBHOOK).unwrap();
    assert_eq!(
        plugin.source,
        PluginSource::Builtin(crate::runtime::builtin(GENERIC_WEBHOOK).unwrap())
    );
    assert!(plugin.allowed_hosts.is_empty());
    assert_eq!(plugin.limits, PluginLimits::default());
}

#[test]
fn accepts_flattened_settings_and_env_secrets() {
    let config = load_toml(&format!(
        "{PBX}[[plugin]]\nname = \"generic-webhook\"\n[plugin.settings]\nwebhook_url = \"https://crm.example.com:8443/hook\"\npost = true\n\"event_alias.ringing\" = \"ring\"\n[plugin.settings.event_alias]\nincoming = \"hangupincoming\"\n[plugin.secrets]\nsigning_secret = \"env:CALLHOOK_SIGNING_SECRET\"\n"
    ))
    .unwrap();
    let plugin = config.plugin(GENERIC_WEBHOOK).unwrap();
    let settings: Vec<(&str, &str)> = plugin
        .settings
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        settings,
        [
            ("event_alias.incoming", "hangupincoming"),
            ("event_alias.ringing", "ring"),
            ("post", "true"),
            ("webhook_url", "https://crm.example.com:8443/hook"),
        ]
    );
    assert_eq!(
        plugin.expose_secrets()["signing_secret"],
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    );
    assert_eq!(plugin.allowed_hosts, ["https://crm.example.com:8443"]);
    assert!(plugin.allowed_hosts_derived);
}

#[test]
fn accepts_numbers_and_booleans_as_settings() {
    let config = load_toml(&format!(
        "{PBX}[[plugin]]\nname = \"crm\"\npath = \"crm.wasm\"\nmemory_mb = 16\ntimeout_ms = 2500\n[plugin.settings]\nportal = 4711\nratio = 0.5\nlog = false\n[plugin.retry]\nladder = [\"1s\", \"1m\"]\nmax_age = \"2h\"\n"
    ))
    .unwrap();
    let plugin = config.plugin("crm").unwrap();
    assert_eq!(plugin.settings["portal"], "4711");
    assert_eq!(plugin.settings["ratio"], "0.5");
    assert_eq!(plugin.settings["log"], "false");
    assert_eq!(plugin.limits.memory_bytes, 16 << 20);
    assert_eq!(plugin.limits.timeout, Duration::from_millis(2500));
    assert_eq!(
        plugin.retry.ladder,
        Some(vec![Duration::from_secs(1), Duration::from_secs(60)])
    );
    assert_eq!(plugin.retry.max_age, Some(Duration::from_secs(7200)));
    assert_eq!(plugin.retry.max_retry_after, None);
    assert_eq!((plugin.concurrency, plugin.rate_per_second), (8, None));
    let PluginSource::File(file) = &plugin.source else {
        panic!("a file")
    };
    assert!(file.path.ends_with("crm.wasm") && file.path.is_absolute());
    // The built-in plugin is loaded because default_plugins names it by default.
    assert!(config.plugin(GENERIC_WEBHOOK).is_some());
}

#[test]
fn debug_redacts_secrets() {
    let config = load_toml(&format!(
        "{PBX}[[plugin]]\nname = \"crm\"\npath = \"crm.wasm\"\n[plugin.secrets]\ntoken = \"env:HUBSPOT_TOKEN\"\n"
    ))
    .unwrap();
    let shown = format!("{config:?}");
    assert!(
        !shown.contains("s3cret") && !shown.contains("pat-123"),
        "{shown}"
    );
    assert!(shown.contains("redacted"), "{shown}");
}

const SPEC_INI: &str = "\
[3CX]
URL=https://pbx.example.com:5001     ; http:// is accepted too
CLIENT_ID=callhook
CLIENT_SECRET=pbx-secret
TIMEZONE=Europe/Berlin

[WEBHOOKS]
WEBHOOK_URL=https://crm.example.com/3cx/events
WEBHOOK_POST_URL=https://hooks.example.net:8443/3cx/recordings
POST=1
RECORDING_FULL_INFO=0
REPORT_INTERNAL_CALLS=1
DURATION_FORMAT=clock
SIGNING_SECRET=whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw

[RECORDINGS]
ENABLED=1
SOURCE=folder
FOLDER=/var/lib/3cxpbx/Instance1/Data/Recordings
MP3_DIR=mp3
MP3_BITRATE=64
KEEP_DAYS=0
PUBLIC_URL=https://pbx.example.com:5001
LISTEN=0.0.0.0:5001
TLS_CERT=/etc/callhook/cert.pem
TLS_KEY=/etc/callhook/key.pem
SIGN_LINKS=0

[STORAGE]
DIR=/var/lib/callhook
";

#[test]
fn accepts_legacy_ini_alone() {
    let dir = Dir::new();
    let config = dir.load("webhooks.ini", SPEC_INI).unwrap();
    assert_eq!(
        config.legacy_ini.as_deref(),
        Some(dir.dir.path().join("webhooks.ini").as_path())
    );
    assert_eq!(config.pbx.url.as_str(), "https://pbx.example.com:5001/");
    assert_eq!(config.pbx.client_id, "callhook");
    assert_eq!(config.pbx.client_secret.expose(), "pbx-secret");
    assert_eq!(
        config.engine.time_zone_name.as_deref(),
        Some("Europe/Berlin")
    );
    assert!(config.engine.report_internal_calls);

    assert_eq!(config.plugins.len(), 1);
    let plugin = &config.plugins[0];
    assert_eq!(plugin.name, GENERIC_WEBHOOK);
    assert_eq!(
        plugin.source,
        PluginSource::Builtin(crate::runtime::builtin(GENERIC_WEBHOOK).unwrap())
    );
    let settings: Vec<(&str, &str)> = plugin
        .settings
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        settings,
        [
            ("duration_format", "clock"),
            ("post", "1"),
            ("recording_full_info", "0"),
            (
                "webhook_post_url",
                "https://hooks.example.net:8443/3cx/recordings"
            ),
            ("webhook_url", "https://crm.example.com/3cx/events"),
        ]
    );
    assert_eq!(
        plugin.expose_secrets(),
        BTreeMap::from([(
            "signing_secret".to_string(),
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".to_string()
        )])
    );
    assert_eq!(
        plugin.allowed_hosts,
        ["https://crm.example.com", "https://hooks.example.net:8443"]
    );
    assert_eq!(config.routes.plugins_for("120", None), [GENERIC_WEBHOOK]);

    let recordings = &config.recordings;
    assert!(recordings.enabled);
    assert_eq!(recordings.source, crate::recordings::SourceKind::Folder);
    assert_eq!(recordings.bitrate_kbps, 64);
    assert_eq!(recordings.keep_days, 0);
    assert!(!recordings.sign_links);
    assert_eq!(recordings.mp3_dir, dir.dir.path().join("mp3"));
    assert_eq!(config.server.listen.to_string(), "0.0.0.0:5001");
    assert_eq!(
        config.server.public_url.as_ref().map(url::Url::as_str),
        Some("https://pbx.example.com:5001/")
    );
    assert!(config.server_tls().is_some());
    assert_eq!(config.storage.dir.path, PathBuf::from("/var/lib/callhook"));
}

#[test]
fn accepts_ini_keys_in_any_case_with_comments() {
    let config = Dir::new()
        .load(
            "old.INI",
            "; comment\n# another\n[3cx]\nurl = https://pbx.example.com\nClient_Id: callhook\nclient_secret=\"quoted;secret\"\n\n[Webhooks]\nwebhook_url=https://crm.example.com/a;b ; comment\nsigning_secret=\n",
        )
        .unwrap();
    assert_eq!(config.pbx.client_id, "callhook");
    assert_eq!(config.pbx.client_secret.expose(), "quoted;secret");
    let plugin = config.plugin(GENERIC_WEBHOOK).unwrap();
    assert_eq!(
        plugin.settings["webhook_url"],
        "https://crm.example.com/a;b"
    );
    assert!(plugin.secrets.is_empty());
}

#[test]
fn rejects_unknown_ini_key_and_section() {
    let errors = Dir::new()
        .load(
            "webhooks.ini",
            "[3CX]\nURL=https://pbx.example.com\nCLIENT_ID=c\nCLIENT_SECRET=s\n[WEBHOOKS]\nWEBHOOK_URLL=https://x\n[EXTRA]\nA=1\n",
        )
        .unwrap_err()
        .to_string();
    assert!(
        errors.contains(
            "webhooks.ini:6: [WEBHOOKS] WEBHOOK_URLL: unknown key; expected in [WEBHOOKS]"
        ),
        "{errors}"
    );
    assert!(
        errors.contains("webhooks.ini:7: [EXTRA]: unknown key"),
        "{errors}"
    );
    assert!(
        !errors.contains(":8:"),
        "keys of an unknown section are not reported: {errors}"
    );
}

#[test]
fn rejects_bad_ini_values_at_their_line() {
    let errors = Dir::new()
        .load(
            "webhooks.ini",
            "[3CX]\nURL=pbx.example.com\nCLIENT_SECRET=env:NOPE_NOT_SET\n[WEBHOOKS]\nPOST=yes please\nWEBHOOK_URL=ftp://x\nPOST=1\n[RECORDINGS]\nMP3_BITRATE=fast\nnot a key\n",
        )
        .unwrap_err()
        .to_string();
    for expected in [
        "webhooks.ini:2: [3CX] URL: expected an http:// or https:// URL",
        "webhooks.ini: [3CX] CLIENT_ID: missing required key",
        "webhooks.ini:3: [3CX] CLIENT_SECRET: the environment variable NOPE_NOT_SET is not set",
        "webhooks.ini:5: [WEBHOOKS] POST: expected 0 or 1",
        "webhooks.ini:6: [WEBHOOKS] WEBHOOK_URL: expected an http:// or https:// URL",
        "webhooks.ini:7: [WEBHOOKS] POST: duplicate key \"POST\", already defined at line 5",
        "webhooks.ini:9: [RECORDINGS] MP3_BITRATE: expected a whole number",
        "webhooks.ini:10: syntax error: expected KEY=VALUE",
    ] {
        assert!(errors.contains(expected), "{expected:?} not in\n{errors}");
    }
}

#[test]
fn accepts_one_listen_default_for_toml_and_ini() {
    // The spec's legacy ini listens on 0.0.0.0:5001; without LISTEN, so does a callhook.toml.
    assert_eq!(crate::server::DEFAULT_LISTEN.to_string(), "0.0.0.0:5001");
    let toml = load_toml(PBX).unwrap();
    let ini = Dir::new()
        .load(
            "webhooks.ini",
            "[3CX]\nURL=https://pbx.example.com\nCLIENT_ID=callhook\nCLIENT_SECRET=s\n",
        )
        .unwrap_or_else(|errors| panic!("{errors}"));
    assert_eq!(toml.server.listen, crate::server::DEFAULT_LISTEN);
    assert_eq!(ini.server.listen, crate::server::DEFAULT_LISTEN);
}

#[test]
fn accepts_legacy_ini_with_toml() {
    let dir = Dir::new();
    dir.write("legacy/webhooks.ini", SPEC_INI);
    let config = dir
        .load(
            "callhook.toml",
            "legacy_ini = \"legacy/webhooks.ini\"\n[pbx]\nclient_id = \"from-toml\"\n[[plugin]]\nname = \"generic-webhook\"\n[plugin.settings]\npost = 0\nevent_alias.incoming = \"hangupincoming\"\n",
        )
        .unwrap();
    // TOML wins, the ini fills the rest.
    assert_eq!(config.pbx.client_id, "from-toml");
    assert_eq!(config.pbx.url.as_str(), "https://pbx.example.com:5001/");
    let plugin = config.plugin(GENERIC_WEBHOOK).unwrap();
    assert_eq!(plugin.settings["post"], "0");
    assert_eq!(plugin.settings["event_alias.incoming"], "hangupincoming");
    assert_eq!(plugin.settings["duration_format"], "clock");
    assert!(plugin.secrets.contains_key("signing_secret"));
    assert_eq!(plugin.allowed_hosts.len(), 2);
    // Ini paths are relative to the ini.
    assert_eq!(config.recordings.mp3_dir, dir.dir.path().join("legacy/mp3"));
    assert_eq!(
        config.legacy_ini,
        Some(dir.dir.path().join("legacy/webhooks.ini"))
    );

    // An error in the ini names the ini.
    dir.write(
        "legacy/webhooks.ini",
        "[WEBHOOKS]\nDURATION_FORMAT=minutes\n",
    );
    let errors = Config::load_with_env(&dir.dir.path().join("callhook.toml"), &dir.env)
        .unwrap_err()
        .to_string();
    assert!(
        errors
            .contains("webhooks.ini:2: [WEBHOOKS] DURATION_FORMAT: expected `seconds` or `clock`"),
        "{errors}"
    );
    assert!(
        errors.contains("callhook.toml:2:2: pbx.url: missing required key"),
        "{errors}"
    );
    assert!(errors.contains("[3CX] URL in the legacy ini"), "{errors}");
}

#[test]
fn accepts_the_example_files() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config");
    let env = Dir::new().env;
    let toml = Config::load_with_env(&dir.join("callhook.toml"), &env)
        .unwrap_or_else(|errors| panic!("{errors}"));
    assert_eq!(toml.plugins.len(), 3);
    let hubspot = toml.plugin("hubspot").unwrap();
    assert_eq!(
        hubspot.source,
        PluginSource::Builtin(crate::runtime::builtin("hubspot").unwrap())
    );
    assert_eq!(hubspot.allowed_hosts, ["https://api.hubapi.com"]);
    assert_eq!(
        toml.routes.plugins_for("150", None),
        ["hubspot", "my-crm", GENERIC_WEBHOOK]
    );
    // What its comments say: every event of a call through queue 800 goes to HubSpot, the
    // queue's own missed call and its agents' events alike; others by their extensions.
    let q800 = ["800".to_string()];
    assert_eq!(toml.routes.plugins_for_call("800", &[]), ["hubspot"]);
    assert_eq!(toml.routes.plugins_for_call("300", &[]), [GENERIC_WEBHOOK]);
    assert_eq!(toml.routes.plugins_for_call("300", &q800), ["hubspot"]);
    assert_eq!(
        toml.routes.plugins_for_call("150", &[]),
        ["hubspot", "my-crm", GENERIC_WEBHOOK]
    );
    assert_eq!(toml.engine.did_rules["+4930123456"], "CompanyDID");
    assert_eq!(toml.engine.trunk_dids["10007"], "+4930123456");
    let ini = Config::load_with_env(&dir.join("webhooks.ini"), &env)
        .unwrap_or_else(|errors| panic!("{errors}"));
    assert_eq!(ini.plugins[0].allowed_hosts, ["https://crm.example.com"]);
    assert!(ini.recordings.enabled);
}

// ---- routes ----

#[test]
fn number_patterns() {
    for (pattern, number, expected) in [
        ("*", "120", true),
        ("205", "205", true),
        ("205", "2050", false),
        ("100-199", "100", true),
        ("100-199", "199", true),
        ("100-199", "200", false),
        ("100-199", "15x", false),
        ("100-199", "", false),
    ] {
        let parsed = NumberPattern::parse(pattern).unwrap();
        assert_eq!(parsed.matches(number), expected, "{pattern} {number}");
    }
    for bad in ["199-100", "abc", "", "1-", "-5", "12*"] {
        assert!(NumberPattern::parse(bad).is_err(), "{bad}");
    }
}

#[test]
fn routes_send_each_plugin_once_and_fall_back() {
    let route = |ext: &[&str], queues: Option<&[&str]>, plugins: &[&str]| Route {
        extensions: ext
            .iter()
            .map(|e| NumberPattern::parse(e).unwrap())
            .collect(),
        queues: queues.map(|q| q.iter().map(|e| NumberPattern::parse(e).unwrap()).collect()),
        plugins: plugins.iter().map(ToString::to_string).collect(),
    };
    let routes = Routes {
        routes: vec![
            route(&["100-199"], None, &["a", "b"]),
            route(&["150"], None, &["b", "c"]),
            route(&["*"], Some(&["800"]), &["q"]),
        ],
        default_plugins: vec!["d".to_string()],
    };
    for (extension, queue, expected) in [
        ("150", None, vec!["a", "b", "c"]),
        ("120", None, vec!["a", "b"]),
        ("120", Some("800"), vec!["a", "b", "q"]),
        ("300", Some("801"), vec!["d"]),
        ("800", Some("800"), vec!["q"]),
        ("300", None, vec!["d"]),
    ] {
        assert_eq!(
            routes.plugins_for(extension, queue),
            expected,
            "{extension} {queue:?}"
        );
    }
}

// ---- hot reload ----

#[test]
fn reload_reports_what_changed_and_keeps_the_old_config_on_error() {
    let dir = Dir::new();
    let first = format!(
        "{PBX}[[plugin]]\nname = \"crm\"\npath = \"crm.wasm\"\n[[plugin]]\nname = \"old\"\npath = \"old.wasm\"\n"
    );
    let old = dir.load("callhook.toml", &first).unwrap();
    let path = dir.dir.path().join("callhook.toml");

    // Same content, lines moved: no change.
    dir.write("callhook.toml", &format!("\n\n{first}"));
    let (_, diff) = old.reload(&path, &dir.env).unwrap();
    assert!(diff.is_empty(), "{diff:?}");

    dir.write(
        "callhook.toml",
        &format!(
            "{PBX}[[plugin]]\nname = \"crm\"\npath = \"crm.wasm\"\nmemory_mb = 32\n[[plugin]]\nname = \"new\"\npath = \"new.wasm\"\n[[route]]\nextensions = \"1\"\nplugins = [\"new\"]\n"
        ),
    );
    let (new, diff) = old.reload(&path, &dir.env).unwrap();
    assert_eq!(diff.plugins_added, ["new"]);
    assert_eq!(diff.plugins_removed, ["old"]);
    assert_eq!(diff.plugins_changed, ["crm"]);
    assert!(diff.routes_changed);
    assert!(diff.needs_restart.is_empty());

    dir.write("callhook.toml", &format!("{PBX}[[plugin]]\nname = 5\n"));
    let errors = new.reload(&path, &dir.env).unwrap_err();
    assert!(errors.to_string().contains("callhook.toml:6"), "{errors}");

    dir.write("callhook.toml", &PBX.replace("callhook\"", "other\""));
    let (_, diff) = new.reload(&path, &dir.env).unwrap();
    assert_eq!(diff.needs_restart, ["pbx"]);
}

// ---- check ----

#[test]
fn check_looks_at_plugin_files_and_directories() {
    let dir = Dir::new();
    dir.write("good.wasm", "\0asm\x0d\0\x01\0rest");
    dir.write("core.wasm", "\0asm\x01\0\0\0");
    dir.write("text.wasm", "hello world");
    dir.write("cert.pem", "not pem");
    dir.write("key.pem", "-----BEGIN PRIVATE KEY-----\n");
    dir.write("state", "a file, not a directory");
    let config = dir
        .load(
            "callhook.toml",
            &format!(
                "{PBX}[server]\ntls_cert = \"cert.pem\"\ntls_key = \"key.pem\"\n[storage]\ndir = \"state\"\n\
                 [[plugin]]\nname = \"good\"\npath = \"good.wasm\"\n\
                 [[plugin]]\nname = \"core\"\npath = \"core.wasm\"\n\
                 [[plugin]]\nname = \"text\"\npath = \"text.wasm\"\n\
                 [[plugin]]\nname = \"gone\"\npath = \"gone.wasm\"\n"
            ),
        )
        .unwrap();
    let errors: Vec<String> = check(&config)
        .unwrap_err()
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_error(
        &errors,
        "callhook.toml:6",
        "server.tls_cert",
        "not a PEM file",
    );
    assert_error(&errors, "callhook.toml:9", "storage.dir", "not a directory");
    assert_error(
        &errors,
        "callhook.toml:15",
        "plugin.path",
        "core WebAssembly module",
    );
    assert_error(
        &errors,
        "callhook.toml:18",
        "plugin.path",
        "not a WebAssembly file",
    );
    assert_error(&errors, "callhook.toml:21", "plugin.path", "gone.wasm");
    assert_eq!(errors.len(), 5, "{errors:#?}");

    let config = dir
        .load(
            "ok.toml",
            &format!("{PBX}[storage]\ndir = \"new/state\"\n[[plugin]]\nname = \"good\"\npath = \"good.wasm\"\nallowed_hosts = [\"https://crm.example.com\"]\n"),
        )
        .unwrap();
    let report = check(&config).unwrap();
    let report = report.lines.join("\n");
    assert!(
        report.contains("plugin good: may reach https://crm.example.com"),
        "{report}"
    );
    assert!(report.contains("(will be created)"), "{report}");
    assert!(
        !dir.dir.path().join("new").exists(),
        "check creates nothing"
    );
}

#[test]
fn warns_of_an_http_pbx_url_naming_its_place() {
    let dir = Dir::new();
    let http = PBX.replace("https://", "http://");
    #[rustfmt::skip]
    let cases: &[(&str, String, Option<&str>)] = &[
        ("callhook.toml", PBX.to_string(), None),
        ("callhook.toml", http, Some("callhook.toml:2:7: pbx.url is http://: the client secret")),
        ("webhooks.ini", SPEC_INI.to_string(), None),
        ("webhooks.ini", SPEC_INI.replace("URL=https://pbx", "URL=http://pbx"), Some("webhooks.ini:2: [3CX] URL is http://")),
    ];
    for (name, text, expected) in cases {
        let config = dir.load(name, text).unwrap();
        let found = warnings(&config);
        match expected {
            None => assert!(found.is_empty(), "{name}: {found:?}"),
            Some(expected) => {
                assert_eq!(found.len(), 1, "{name}: {found:?}");
                assert!(found[0].contains(expected), "{name}: {found:?}");
                assert!(found[0].contains("unencrypted"), "{found:?}");
            }
        }
    }
}

#[test]
fn check_reports_the_warnings() {
    let dir = Dir::new();
    let text = format!(
        "{}[storage]\ndir = \"state\"\n",
        PBX.replace("https://", "http://")
    );
    let config = dir.load("callhook.toml", &text).unwrap();
    let report = check(&config).unwrap();
    assert_eq!(report.warnings, warnings(&config));
    assert_eq!(report.warnings.len(), 1, "{report:?}");
}

// ---- the reference page ----

#[test]
fn reference_page_is_current() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/configuration.md");
    let generated = reference::generate();
    if std::env::var_os("CALLHOOK_UPDATE_DOCS").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let current = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        current == generated,
        "docs/configuration.md is out of date; run the tests with CALLHOOK_UPDATE_DOCS=1"
    );
}

#[test]
fn reference_page_states_the_limits_the_code_enforces() {
    let page = reference::generate()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    let bitrates: Vec<String> = BITRATES.iter().map(u32::to_string).collect();
    for expected in [
        format!("in MiB: 1 to {}.", RuntimeConfig::MAX_MEMORY_MB),
        format!("kbit/s: one of {} (", bitrates.join(", ")),
        format!("By default `\"{}\"`", crate::server::DEFAULT_LISTEN),
    ] {
        assert!(
            page.contains(&expected),
            "{expected:?} not in docs/configuration.md"
        );
    }
}

#[test]
fn reference_examples_parse() {
    let examples = reference::examples();
    assert!(examples.len() >= 9, "{}", examples.len());
    for (section, example) in examples {
        // A subsection of [[plugin]] needs its array of tables.
        let example = if example.starts_with("[plugin.") {
            format!("[[plugin]]\n{example}")
        } else {
            example
        };
        let (_, problems) = raw::parse_toml(&example);
        assert!(problems.is_empty(), "{section}: {problems:?}\n{example}");
    }
}

#[test]
fn every_ini_key_has_a_toml_key() {
    for (section, keys) in legacy_ini::schema() {
        for key in *keys {
            assert!(
                !legacy_ini::toml_key(section, key).is_empty(),
                "[{section}] {key}"
            );
        }
    }
}

#[test]
fn accepts_the_pbx_country_in_toml_and_ini() {
    let e164 = |config: Config| config.pbx.e164.normalise("030 1234567");
    let toml = load_toml(&format!("{PBX}country = \"de\"\n")).unwrap();
    assert_eq!(e164(toml).as_deref(), Some("+49301234567"));
    let ini = SPEC_INI.replace(
        "TIMEZONE=Europe/Berlin",
        "TIMEZONE=Europe/Berlin\nCOUNTRY=DE",
    );
    let ini = Dir::new().load("webhooks.ini", &ini).unwrap();
    assert_eq!(e164(ini).as_deref(), Some("+49301234567"));
    let none = load_toml(PBX).unwrap();
    assert_eq!(e164(none), None, "without a country only +numbers");
}

#[test]
fn rejects_unknown_countries() {
    let errors = errors(&format!("{PBX}country = \"Germany\"\n"));
    assert_error(
        &errors,
        "callhook.toml:5",
        "pbx.country",
        "ISO 3166-1 alpha-2",
    );
}

#[test]
fn accepts_kv_quotas_from_1_to_1024_mib() {
    let quota = |line: &str| {
        let text = format!("{PBX}[[plugin]]\nname = \"x\"\npath = \"x.wasm\"\n{line}");
        load_toml(&text).map(|config| config.plugin("x").unwrap().limits.kv_quota_bytes)
    };
    assert_eq!(quota("").unwrap(), Some(1 << 20), "1 MiB by default");
    assert_eq!(quota("kv_quota_mb = 64\n").unwrap(), Some(64 << 20));
    assert_eq!(quota("kv_quota_mb = 1024\n").unwrap(), Some(1024 << 20));
    let errors = errors(&format!(
        "{PBX}[[plugin]]\nname = \"x\"\npath = \"x.wasm\"\nkv_quota_mb = 0\n"
    ));
    assert_error(
        &errors,
        "callhook.toml:8",
        "plugin.kv_quota_mb",
        "from 1 to 1024",
    );
}

#[test]
fn a_built_in_plugin_runs_under_another_name_with_its_defaults() {
    let config = load_toml(&format!(
        "{PBX}\n[[plugin]]\nname = \"webhook-sales\"\nbuiltin = \"generic-webhook\"\n\
         [plugin.settings]\nwebhook_url = \"https://sales.example.com:8443/hook\"\n\n\
         [[route]]\nextensions = [\"*\"]\nplugins = [\"webhook-sales\"]\n"
    ))
    .unwrap_or_else(|errors| panic!("{errors}"));
    let plugin = config.plugin("webhook-sales").unwrap();
    let webhook = crate::runtime::builtin(GENERIC_WEBHOOK).unwrap();
    assert_eq!(plugin.source, PluginSource::Builtin(webhook));
    assert_eq!(plugin.read_wasm().unwrap().as_ref(), webhook.wasm);
    assert_eq!(plugin.allowed_hosts, ["https://sales.example.com:8443"]);
    assert!(plugin.allowed_hosts_derived);
    assert_eq!(
        plugin.limits.kv_quota_bytes,
        Some(webhook.defaults.kv_quota_mb << 20)
    );
    // Its settings are checked as generic-webhook's.
    let typo = errors(&format!(
        "{PBX}\n[[plugin]]\nname = \"webhook-sales\"\nbuiltin = \"generic-webhook\"\n\
         [plugin.settings]\nwebhook_ulr = \"https://sales.example.com/hook\"\n"
    ));
    assert_error_any(&typo, "callhook.toml:10", "webhook_ulr");
}

#[test]
fn rejects_unknown_built_in_plugins_and_builtin_with_path() {
    let unknown = errors(&format!(
        "{PBX}\n[[plugin]]\nname = \"crm\"\nbuiltin = \"hubspt\"\n"
    ));
    assert_error(
        &unknown,
        "callhook.toml:8",
        "plugin.builtin",
        "generic-webhook",
    );
    let both = errors(&format!(
        "{PBX}\n[[plugin]]\nname = \"crm\"\nbuiltin = \"generic-webhook\"\npath = \"crm.wasm\"\n"
    ));
    assert_error(&both, "callhook.toml:8", "plugin.builtin", "not both");
    let neither = errors(&format!("{PBX}\n[[plugin]]\nname = \"crm\"\n"));
    assert_error(&neither, "callhook.toml:7", "plugin.path", "builtin");
}

// ---- [admin]: the operator console ----

#[test]
fn accepts_an_admin_section_with_defaults_from_the_console() {
    let config = load_toml(PBX).unwrap_or_else(|errors| panic!("{errors}"));
    assert_eq!(config.admin, crate::console::ConsoleConfig::default());
    assert_eq!(config.admin.listen.to_string(), "127.0.0.1:8081");
    let config = load_toml(&format!(
        "{PBX}[admin]\nlisten = \"0.0.0.0:9000\"\ntoken = \"s3cret\"\n"
    ))
    .unwrap_or_else(|errors| panic!("{errors}"));
    assert_eq!(config.admin.listen.to_string(), "0.0.0.0:9000");
    assert_eq!(config.admin.token.unwrap().expose(), "s3cret");
    let config = load_toml(&format!("{PBX}[admin]\nlisten = \"[::1]:9000\"\n"))
        .unwrap_or_else(|errors| panic!("{errors}"));
    assert!(config.admin.listen.ip().is_loopback());
}

#[test]
fn rejects_an_admin_listen_off_loopback_without_a_token() {
    let errors = errors(&format!("{PBX}[admin]\nlisten = \"0.0.0.0:8081\"\n"));
    assert_error(
        &errors,
        "callhook.toml:6:",
        "admin.listen",
        "set admin.token",
    );
}

#[test]
fn rejects_an_admin_listen_equal_to_the_server_and_a_bad_one() {
    let same = errors(&format!(
        "{PBX}[server]\nlisten = \"127.0.0.1:5001\"\n[admin]\nlisten = \"127.0.0.1:5001\"\n"
    ));
    assert_error(&same, "callhook.toml:8:", "admin.listen", "server.listen");
    let bad = errors(&format!("{PBX}[admin]\nlisten = \"localhost\"\n"));
    assert_error(
        &bad,
        "callhook.toml:6:",
        "admin.listen",
        "IP address and port",
    );
}

#[test]
fn rejects_an_admin_token_from_an_unset_variable_without_showing_it() {
    let errors = errors(&format!(
        "{PBX}[admin]\ntoken = \"env:CALLHOOK_TEST_UNSET_ADMIN_TOKEN\"\n"
    ));
    assert_error(
        &errors,
        "callhook.toml:6:",
        "admin.token",
        "CALLHOOK_TEST_UNSET_ADMIN_TOKEN",
    );
}

#[test]
fn a_crm_plugin_names_each_missing_credential_with_plugin_and_key() {
    let hubspot = errors(&format!("{PBX}\n[[plugin]]\nname = \"hubspot\"\n"));
    assert_error(
        &hubspot,
        "callhook.toml:7",
        "plugin.secrets.access_token",
        "`access_token` in plugin \"hubspot\"'s [plugin.secrets]",
    );
    let pipedrive = errors(&format!(
        "{PBX}\n[[plugin]]\nname = \"pipedrive-sales\"\nbuiltin = \"pipedrive\"\n"
    ));
    assert_error(
        &pipedrive,
        "callhook.toml:7",
        "plugin.secrets.api_token",
        "plugin \"pipedrive-sales\"",
    );
    // Bitrix24 asks for the credentials of the mode it is in, OAuth by default.
    let app = errors(&format!(
        "{PBX}\n[[plugin]]\nname = \"bitrix24\"\n[plugin.settings]\nportal = \"https://acme.bitrix24.de\"\n"
    ));
    for key in [
        "settings.client_id",
        "secrets.client_secret",
        "secrets.refresh_token",
    ] {
        assert_error(
            &app,
            "callhook.toml:7",
            &format!("plugin.{key}"),
            "auth = \"app\"",
        );
    }
    assert!(!app.iter().any(|e| e.contains("webhook_code")), "{app:?}");
    let webhook = errors(&format!(
        "{PBX}\n[[plugin]]\nname = \"bitrix24\"\n[plugin.settings]\napi_base = \"https://acme.bitrix24.de\"\nauth = \"webhook\"\n"
    ));
    assert_error(
        &webhook,
        "callhook.toml:7",
        "plugin.settings.webhook_user_id",
        "webhook",
    );
    assert_error(
        &webhook,
        "callhook.toml:7",
        "plugin.secrets.webhook_code",
        "webhook",
    );
    assert_eq!(webhook.len(), 2, "api_base stands for portal: {webhook:?}");
    let zoho = errors(&format!("{PBX}\n[[plugin]]\nname = \"zoho\"\n"));
    for key in [
        "settings.client_id",
        "secrets.client_secret",
        "secrets.refresh_token",
    ] {
        assert_error(
            &zoho,
            "callhook.toml:7",
            &format!("plugin.{key}"),
            "plugin \"zoho\"",
        );
    }
}

#[test]
fn a_crm_plugin_refuses_settings_and_secrets_it_does_not_know() {
    let errors = errors(&format!(
        "{PBX}\n[[plugin]]\nname = \"hubspot\"\n[plugin.settings]\nid_propety = \"callhook_id\"\n\
         create_contacts = \"maybe\"\nusers = {{ \"120\" = \"77\" }}\n[plugin.secrets]\naccess_token = \"pat-1\"\ntoken = \"x\"\n"
    ));
    assert_error(
        &errors,
        "callhook.toml:9",
        "plugin.settings.id_propety",
        "id_property",
    );
    assert_error(
        &errors,
        "callhook.toml:10",
        "plugin.settings.create_contacts",
        "0 or 1",
    );
    assert_error(
        &errors,
        "callhook.toml:14",
        "plugin.secrets.token",
        "access_token",
    );
    assert_eq!(errors.len(), 3, "users.120 is known: {errors:?}");
}

#[test]
fn a_crm_plugin_may_reach_its_base_urls_by_default() {
    let config = load_toml(&format!(
        "{PBX}\n[[plugin]]\nname = \"zoho\"\n[plugin.settings]\nclient_id = \"1000.X\"\n\
         api_base = \"https://www.zohoapis.com/\"\n[plugin.secrets]\nclient_secret = \"s\"\nrefresh_token = \"r\"\n"
    ))
    .unwrap_or_else(|errors| panic!("{errors}"));
    let zoho = config.plugin("zoho").unwrap();
    assert_eq!(
        zoho.allowed_hosts,
        ["https://www.zohoapis.com", "https://accounts.zoho.eu"]
    );
    assert_eq!(zoho.limits.timeout, Duration::from_secs(30));
    assert_eq!(zoho.limits.kv_quota_bytes, Some(64 << 20));
    let bitrix = load_toml(&format!(
        "{PBX}\n[[plugin]]\nname = \"bitrix24\"\n[plugin.settings]\nportal = \"https://acme.bitrix24.de\"\n\
         auth = \"webhook\"\nwebhook_user_id = \"1\"\n[plugin.secrets]\nwebhook_code = \"c\"\n"
    ))
    .unwrap_or_else(|errors| panic!("{errors}"));
    let bitrix = bitrix.plugin("bitrix24").unwrap();
    // A webhook needs no OAuth server.
    assert_eq!(bitrix.allowed_hosts, ["https://acme.bitrix24.de"]);
    assert_eq!(bitrix.rate_per_second, Some(2.0));
}
