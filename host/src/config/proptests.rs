//! Robustness of configuration loading: any `callhook.toml` or `webhooks.ini`, and any
//! mutation of the examples in `config/`, is parsed and validated into a [`Config`] or into
//! errors that each name a line of the file, never a panic (budget and inputs:
//! `crate::robustness`). [`parse_toml`] is driven directly; [`Config::load_with_env`] through
//! a file in a temporary directory, one directory per property.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use proptest::prelude::*;

use super::raw::parse_toml;
use super::{Config, ConfigErrors};
use crate::robustness::{self, bytes, mutated, nested};

const TOML: &str = include_str!("../../../config/callhook.toml");
const INI: &str = include_str!("../../../config/webhooks.ini");

/// The environment the examples name.
fn env() -> BTreeMap<String, String> {
    [
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
    .collect()
}

/// Writes `bytes` to `path` and loads it; checks that every error names the file (or the
/// legacy ini it includes) and, when it names a line, one that exists.
fn load(path: &Path, bytes: &[u8]) -> Result<Result<Config, ConfigErrors>, TestCaseError> {
    std::fs::write(path, bytes).unwrap();
    let result = Config::load_with_env(path, &env());
    if let Err(errors) = &result {
        prop_assert!(!errors.is_empty());
        let lines = String::from_utf8_lossy(bytes).split('\n').count();
        for error in errors.iter() {
            let _ = error.to_string();
            if error.place.file == path
                && let Some(line) = error.place.line
            {
                prop_assert!(
                    (1..=lines).contains(&line),
                    "{} (of {} lines)",
                    error,
                    lines
                );
            }
        }
    }
    Ok(result)
}

/// A temporary directory holding the file a property rewrites for each case.
fn file(name: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    (dir, path)
}

proptest! {
    #![proptest_config(robustness::config())]

    #[test]
    fn arbitrary_text_is_parsed_with_problems(bytes in bytes()) {
        let _ = parse_toml(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn mutated_tomls_are_parsed_with_problems(bytes in mutated(TOML.as_bytes().to_vec())) {
        let _ = parse_toml(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn mutated_tomls_load_or_fail_with_placed_errors(
        bytes in mutated(TOML.as_bytes().to_vec())
    ) {
        thread_local!(static FILE: (tempfile::TempDir, PathBuf) = file("callhook.toml"));
        FILE.with(|(_, path)| load(path, &bytes))?.ok();
    }

    #[test]
    fn mutated_inis_load_or_fail_with_placed_errors(bytes in mutated(INI.as_bytes().to_vec())) {
        thread_local!(static FILE: (tempfile::TempDir, PathBuf) = file("webhooks.ini"));
        FILE.with(|(_, path)| load(path, &bytes))?.ok();
    }

    #[test]
    fn arbitrary_bytes_load_or_fail_with_placed_errors(bytes in bytes()) {
        thread_local!(static FILE: (tempfile::TempDir, PathBuf) = file("callhook.toml"));
        FILE.with(|(_, path)| load(path, &bytes))?.ok();
    }
}

#[test]
fn the_examples_load() {
    let (_dir, path) = file("callhook.toml");
    load(&path, TOML.as_bytes()).unwrap().unwrap();
    let (_dir, path) = file("webhooks.ini");
    // The example ini leaves the client secret as `...`, which is a valid value.
    load(&path, INI.as_bytes()).unwrap().unwrap();
}

/// Nesting far deeper than any configuration is refused, not a stack overflow.
#[test]
fn deep_nesting_is_a_syntax_error() {
    for (open, close) in [("[", "]"), ("{a=", "}")] {
        let deep = format!("key = {}", nested(open, "1", close, 50_000));
        let (_, problems) = parse_toml(&deep);
        assert!(!problems.is_empty());
    }
    let deep = format!("[{}]\n", nested("a.", "a", "", 50_000));
    let _ = parse_toml(&deep);
}
