//! The original module's `webhooks.ini`, read into the same raw shape as `callhook.toml`.
//!
//! The format, as the original module accepted it: `[SECTION]` headers, `KEY=VALUE` (or
//! `KEY: VALUE`) lines, keys and section names in any case, whole-line comments starting with
//! `;` or `#`, inline comments starting with `;` after white space, optional double quotes
//! around a value. An empty value means "not set" (the default applies). Unknown sections and
//! keys are errors, like in `callhook.toml`.
//!
//! Mapping: `[3CX]` → `[pbx]`; `[WEBHOOKS]` → the `generic-webhook` plugin's settings
//! (`WEBHOOK_URL` → `webhook_url`, ...), its secret `signing_secret` and
//! `engine.report_internal_calls`; `[RECORDINGS]` → `[recordings]`, except `PUBLIC_URL`,
//! `LISTEN`, `TLS_CERT` and `TLS_KEY`, which go to `[server]`; `[STORAGE] DIR` → `storage.dir`.

use super::GENERIC_WEBHOOK;
use super::errors::{At, ErrorKind, Pos, Problem};
use super::raw::{Loc, RawConfig, RawMap, RawPlugin, RecordingSource, SettingValue, one_of};

/// One `KEY=VALUE` line.
struct Entry {
    section: &'static str,
    key: String,
    value: String,
    at: At,
}

/// The sections and keys of the legacy format.
const SCHEMA: &[(&str, &[&str])] = &[
    (
        "3CX",
        &["URL", "CLIENT_ID", "CLIENT_SECRET", "TIMEZONE", "COUNTRY"],
    ),
    (
        "WEBHOOKS",
        &[
            "WEBHOOK_URL",
            "WEBHOOK_POST_URL",
            "POST",
            "RECORDING_FULL_INFO",
            "REPORT_INTERNAL_CALLS",
            "DURATION_FORMAT",
            "SIGNING_SECRET",
        ],
    ),
    (
        "RECORDINGS",
        &[
            "ENABLED",
            "SOURCE",
            "FOLDER",
            "MP3_DIR",
            "MP3_BITRATE",
            "KEEP_DAYS",
            "PUBLIC_URL",
            "LISTEN",
            "TLS_CERT",
            "TLS_KEY",
            "SIGN_LINKS",
        ],
    ),
    ("STORAGE", &["DIR"]),
];

/// Reads `text` (file `file` of the sources) into the raw configuration.
pub(crate) fn parse_ini(text: &str, file: usize) -> (RawConfig, Vec<Problem>) {
    let mut problems = Vec::new();
    let entries = lex(text, file, &mut problems);
    let mut raw = RawConfig::default();
    let mut settings = Vec::new();
    let mut secrets = Vec::new();
    let mut webhooks_at = None;
    for Entry {
        section,
        key,
        value,
        at,
    } in entries
    {
        if value.is_empty() {
            continue;
        }
        let text = || Some(Loc::new(value.clone(), at.clone()));
        let flag = |problems: &mut Vec<Problem>| match parse_flag(&value) {
            Some(flag) => Some(Loc::new(flag, at.clone())),
            None => {
                problems.push(invalid(&at, "0 or 1", &value));
                None
            }
        };
        let number = |problems: &mut Vec<Problem>| match value.parse::<u32>() {
            Ok(n) => Some(Loc::new(n, at.clone())),
            Err(_) => {
                problems.push(invalid(&at, "a whole number", &value));
                None
            }
        };
        match (section, key.as_str()) {
            ("3CX", "URL") => raw.pbx.url = text(),
            ("3CX", "CLIENT_ID") => raw.pbx.client_id = text(),
            ("3CX", "CLIENT_SECRET") => raw.pbx.client_secret = text(),
            ("3CX", "TIMEZONE") => raw.pbx.timezone = text(),
            ("3CX", "COUNTRY") => raw.pbx.country = text(),
            ("WEBHOOKS", "REPORT_INTERNAL_CALLS") => {
                raw.engine.report_internal_calls = flag(&mut problems)
            }
            ("WEBHOOKS", "SIGNING_SECRET") => {
                webhooks_at.get_or_insert(at.clone());
                secrets.push((
                    Loc::new("signing_secret".to_string(), at.clone()),
                    Loc::new(SettingValue::Text(value.clone()), at.clone()),
                ));
            }
            ("WEBHOOKS", key) => {
                webhooks_at.get_or_insert(at.clone());
                settings.push((
                    Loc::new(key.to_ascii_lowercase(), at.clone()),
                    Loc::new(SettingValue::Text(value.clone()), at.clone()),
                ));
            }
            ("RECORDINGS", "ENABLED") => raw.recordings.enabled = flag(&mut problems),
            ("RECORDINGS", "SOURCE") => {
                raw.recordings.source = match value.to_ascii_lowercase().as_str() {
                    "xapi" => Some(Loc::new(RecordingSource::Xapi, at.clone())),
                    "folder" => Some(Loc::new(RecordingSource::Folder, at.clone())),
                    _ => {
                        problems.push(invalid(&at, "`xapi` or `folder`", &value));
                        None
                    }
                }
            }
            ("RECORDINGS", "FOLDER") => raw.recordings.folder = text(),
            ("RECORDINGS", "MP3_DIR") => raw.recordings.mp3_dir = text(),
            ("RECORDINGS", "MP3_BITRATE") => raw.recordings.mp3_bitrate = number(&mut problems),
            ("RECORDINGS", "KEEP_DAYS") => raw.recordings.keep_days = number(&mut problems),
            ("RECORDINGS", "SIGN_LINKS") => raw.recordings.sign_links = flag(&mut problems),
            ("RECORDINGS", "PUBLIC_URL") => raw.server.public_url = text(),
            ("RECORDINGS", "LISTEN") => raw.server.listen = text(),
            ("RECORDINGS", "TLS_CERT") => raw.server.tls_cert = text(),
            ("RECORDINGS", "TLS_KEY") => raw.server.tls_key = text(),
            ("STORAGE", "DIR") => raw.storage.dir = text(),
            _ => unreachable!("lex only returns keys of the schema"),
        }
    }
    if let Some(at) = webhooks_at {
        let at = At {
            ini_key: Some("[WEBHOOKS]".to_string()),
            ..at
        };
        raw.plugin.push(Loc::new(
            RawPlugin {
                name: Some(Loc::new(GENERIC_WEBHOOK.to_string(), at.clone())),
                settings: Some(Loc::new(RawMap(settings), at.clone())),
                secrets: Some(Loc::new(RawMap(secrets), at.clone())),
                ..RawPlugin::default()
            },
            at,
        ));
    }
    (raw, problems)
}

/// Splits the file into entries of known sections and keys; everything else is a problem.
fn lex(text: &str, file: usize, problems: &mut Vec<Problem>) -> Vec<Entry> {
    let mut entries: Vec<Entry> = Vec::new();
    // `None` before the first header; `Some(None)` inside an unknown section.
    let mut section: Option<Option<(&'static str, &'static [&'static str])>> = None;
    for (index, line) in text.lines().enumerate() {
        let number = index + 1;
        let at = |key: Option<String>| At {
            file,
            pos: Pos::Line(number),
            ini_key: key,
        };
        let line = line.trim_start_matches('\u{feff}').trim();
        if line.is_empty() || line.starts_with(';') || line.starts_with('#') {
            continue;
        }
        let line = strip_comment(line);
        if let Some(header) = line.strip_prefix('[') {
            let Some(name) = header.strip_suffix(']') else {
                problems.push(Problem {
                    at: at(None),
                    key: None,
                    kind: ErrorKind::Syntax(format!(
                        "expected a section header like [WEBHOOKS], found {line:?}"
                    )),
                });
                section = Some(None);
                continue;
            };
            let name = name.trim();
            let known = SCHEMA
                .iter()
                .find(|(known, _)| known.eq_ignore_ascii_case(name));
            if known.is_none() {
                let sections: Vec<String> = SCHEMA.iter().map(|(s, _)| format!("[{s}]")).collect();
                let sections: Vec<&str> = sections.iter().map(String::as_str).collect();
                problems.push(Problem {
                    at: at(Some(format!("[{name}]"))),
                    key: None,
                    kind: ErrorKind::UnknownKey {
                        expected: format!("a section {}", one_of(&sections)),
                    },
                });
            }
            section = Some(known.copied());
            continue;
        }
        let split = line.find(['=', ':']);
        let Some(split) = split else {
            problems.push(Problem {
                at: at(None),
                key: None,
                kind: ErrorKind::Syntax(format!("expected KEY=VALUE, found {line:?}")),
            });
            continue;
        };
        let key = line[..split].trim().to_ascii_uppercase();
        let value = unquote(line[split + 1..].trim()).to_string();
        let (name, keys) = match section {
            None => {
                problems.push(Problem {
                    at: at(Some(key)),
                    key: None,
                    kind: ErrorKind::Syntax(
                        "a key before the first [SECTION] header; expected it inside [3CX], \
                         [WEBHOOKS], [RECORDINGS] or [STORAGE]"
                            .to_string(),
                    ),
                });
                continue;
            }
            // The unknown section was reported once; its keys are not.
            Some(None) => continue,
            Some(Some(known)) => known,
        };
        let place = format!("[{name}] {key}");
        let Some(&known_key) = keys.iter().find(|k| **k == key) else {
            problems.push(Problem {
                at: at(Some(place)),
                key: None,
                kind: ErrorKind::UnknownKey {
                    expected: format!("in [{name}] {}", one_of(keys)),
                },
            });
            continue;
        };
        if let Some(first) = entries
            .iter()
            .find(|entry| entry.section == name && entry.key == known_key)
        {
            let Pos::Line(first_line) = first.at.pos else {
                unreachable!("ini entries have lines")
            };
            problems.push(Problem {
                at: at(Some(place)),
                key: None,
                kind: ErrorKind::Duplicate {
                    what: "key",
                    name: key,
                    first: format!("line {first_line}"),
                },
            });
            continue;
        }
        entries.push(Entry {
            section: name,
            key: known_key.to_string(),
            value,
            at: at(Some(place)),
        });
    }
    entries
}

/// The line without an inline `;` comment (one that follows white space).
fn strip_comment(line: &str) -> &str {
    let bytes = line.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        if b == b';' && i > 0 && bytes[i - 1].is_ascii_whitespace() {
            return line[..i].trim_end();
        }
    }
    line
}

fn unquote(value: &str) -> &str {
    value
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or(value)
}

/// The original module's flags: `1`/`0`, also `true`/`false`, `yes`/`no`, `on`/`off`.
pub(crate) fn parse_flag(value: &str) -> Option<bool> {
    match value.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Some(true),
        "0" | "false" | "no" | "off" => Some(false),
        _ => None,
    }
}

fn invalid(at: &At, expected: &str, found: &str) -> Problem {
    Problem {
        at: at.clone(),
        key: None,
        kind: ErrorKind::Invalid {
            expected: expected.to_string(),
            found: format!("{found:?}"),
        },
    }
}

/// The `callhook.toml` key an ini key fills, for the reference page.
#[cfg(test)]
pub(crate) fn toml_key(section: &str, key: &str) -> &'static str {
    match (section, key) {
        ("3CX", "URL") => "pbx.url",
        ("3CX", "CLIENT_ID") => "pbx.client_id",
        ("3CX", "CLIENT_SECRET") => "pbx.client_secret",
        ("3CX", "TIMEZONE") => "pbx.timezone",
        ("3CX", "COUNTRY") => "pbx.country",
        ("WEBHOOKS", "WEBHOOK_URL") => "setting `webhook_url` of `generic-webhook`",
        ("WEBHOOKS", "WEBHOOK_POST_URL") => "setting `webhook_post_url` of `generic-webhook`",
        ("WEBHOOKS", "POST") => "setting `post` of `generic-webhook`",
        ("WEBHOOKS", "RECORDING_FULL_INFO") => "setting `recording_full_info` of `generic-webhook`",
        ("WEBHOOKS", "DURATION_FORMAT") => "setting `duration_format` of `generic-webhook`",
        ("WEBHOOKS", "SIGNING_SECRET") => "secret `signing_secret` of `generic-webhook`",
        ("WEBHOOKS", "REPORT_INTERNAL_CALLS") => "engine.report_internal_calls",
        ("RECORDINGS", "ENABLED") => "recordings.enabled",
        ("RECORDINGS", "SOURCE") => "recordings.source",
        ("RECORDINGS", "FOLDER") => "recordings.folder",
        ("RECORDINGS", "MP3_DIR") => "recordings.mp3_dir",
        ("RECORDINGS", "MP3_BITRATE") => "recordings.mp3_bitrate",
        ("RECORDINGS", "KEEP_DAYS") => "recordings.keep_days",
        ("RECORDINGS", "SIGN_LINKS") => "recordings.sign_links",
        ("RECORDINGS", "PUBLIC_URL") => "server.public_url",
        ("RECORDINGS", "LISTEN") => "server.listen",
        ("RECORDINGS", "TLS_CERT") => "server.tls_cert",
        ("RECORDINGS", "TLS_KEY") => "server.tls_key",
        ("STORAGE", "DIR") => "storage.dir",
        _ => "",
    }
}

/// The sections and keys, for the reference page.
#[cfg(test)]
pub(crate) fn schema() -> &'static [(&'static str, &'static [&'static str])] {
    SCHEMA
}

#[cfg(test)]
mod proptests;
