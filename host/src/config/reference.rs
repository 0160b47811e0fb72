//! Generates `docs/configuration.md` from the doc comments of `raw.rs` (test-only).
//!
//! The reference page is the raw types' documentation: the doc comment of each section struct
//! (summary and example) and of each field (meaning, constraints, default). The test
//! `reference_page_is_current` compares the page with what this module generates; set
//! `CALLHOOK_UPDATE_DOCS=1` to rewrite it.

use super::legacy_ini::{schema, toml_key};

/// The section structs in page order: struct name, heading, key prefix.
const SECTIONS: &[(&str, &str, &str)] = &[
    ("RawConfig", "Top level", ""),
    ("RawPbx", "`[pbx]`", "pbx."),
    ("RawRecordings", "`[recordings]`", "recordings."),
    ("RawServer", "`[server]`", "server."),
    ("RawAdmin", "`[admin]`", "admin."),
    ("RawStorage", "`[storage]`", "storage."),
    ("RawEngine", "`[engine]`", "engine."),
    ("RawPlugin", "`[[plugin]]`", "plugin."),
    ("RawRetry", "`[plugin.retry]`", "plugin.retry."),
    ("RawRoute", "`[[route]]`", "route."),
    ("RawTrunks", "`[trunks]`", "trunks."),
    ("RawDid", "`[did]`", "did."),
];

const INTRO: &str = "\
<!-- Generated from host/src/config/raw.rs by the test `reference_page_is_current`.
     Edit the doc comments there, then run the host's tests with CALLHOOK_UPDATE_DOCS=1. -->

# Configuration reference

`callhook run --config FILE` reads `FILE`: a `.ini` file is the legacy `webhooks.ini` of the
original module (see [the end of this page](#legacy-webhooksini)), anything else is
`callhook.toml`, described here key by key. `callhook check-config --config FILE` validates a
configuration without starting anything or connecting anywhere.

- Unknown keys are errors, like values of the wrong type or out of range. Every error names the
  file, the line and the key, and says what is expected; all errors are reported at once.
- Relative paths are resolved against the directory of the file they are written in.
- Durations are strings such as `\"2s\"`, `\"500ms\"`, `\"10m\"` or `\"1h 30m\"`.
- Secrets (`pbx.client_secret`, `admin.token`, `[plugin.secrets]`) are the value itself or `env:NAME`, read
  from the environment variable `NAME` when the configuration is loaded; they are never logged.
- Hot reload: on `SIGHUP`, or when the file changes (or the legacy ini it names, or a plugin's
  `.wasm` file), `callhook run` loads the configuration again. Plugins (added, removed,
  changed settings, permissions, limits, retry policy, a new `.wasm` under the same path) and
  routes change at once, without losing or repeating queued events: what is queued goes to the
  new plugin instances, deliveries already running finish with the old ones, and deliveries
  queued for a removed plugin wait until it is configured again. A file that does not load,
  or a plugin that does not load, rejects the whole reload: the errors are printed with their
  places and the configuration in force stays. Changes of `[pbx]`, `[engine]`, `[trunks]`,
  `[did]`, `[server]`, `[admin]`, `[storage]` and `[recordings]` take effect at the next start.

A complete, commented example is [`config/callhook.toml`](../config/callhook.toml).
";

/// A struct's doc and its fields' docs, read from the source.
struct Documented {
    doc: Vec<String>,
    fields: Vec<(String, Vec<String>)>,
}

fn parse(source: &str, name: &str) -> Documented {
    let mut pending: Vec<String> = Vec::new();
    let mut found: Option<Documented> = None;
    for line in source.lines() {
        let trimmed = line.trim();
        if let Some(doc) = trimmed.strip_prefix("///") {
            pending.push(doc.strip_prefix(' ').unwrap_or(doc).to_string());
            continue;
        }
        if trimmed.starts_with("#[") {
            continue;
        }
        if let Some(current) = &mut found {
            if line.starts_with('}') {
                return found.expect("set");
            }
            if let Some(field) = trimmed.strip_prefix("pub ")
                && let Some((field, _)) = field.split_once(':')
                && !pending.is_empty()
            {
                current
                    .fields
                    .push((field.trim().to_string(), std::mem::take(&mut pending)));
            }
        } else if trimmed.starts_with("pub(crate) struct ")
            && trimmed
                .trim_start_matches("pub(crate) struct ")
                .split([' ', ';', '{'])
                .next()
                == Some(name)
        {
            let documented = Documented {
                doc: std::mem::take(&mut pending),
                fields: Vec::new(),
            };
            if trimmed.ends_with(';') {
                return documented;
            }
            found = Some(documented);
        }
        pending.clear();
    }
    found.unwrap_or_else(|| panic!("struct {name} not found in raw.rs"))
}

/// Rewrites intra-doc links (`[`x`](#y)` stays; `[`Loc`]` loses its brackets).
fn markdown(lines: &[String]) -> String {
    let mut out = String::new();
    for line in lines {
        out.push_str(line);
        out.push('\n');
    }
    out.trim_end().to_string()
}

/// The whole page.
pub(super) fn generate() -> String {
    let source = include_str!("raw.rs");
    let mut page = String::from(INTRO);
    page.push_str("\n## Contents\n\n");
    for (_, heading, _) in SECTIONS {
        page.push_str(&format!("- [{heading}](#{})\n", anchor(heading)));
    }
    page.push_str("- [Legacy `webhooks.ini`](#legacy-webhooksini)\n");
    for (name, heading, prefix) in SECTIONS {
        let documented = parse(source, name);
        page.push_str(&format!(
            "\n## {heading}\n\n{}\n",
            markdown(&documented.doc)
        ));
        for (field, doc) in &documented.fields {
            // Fields that only point to their own section are documented there.
            if doc.join(" ").contains("; see [`[") {
                continue;
            }
            page.push_str(&format!("\n### `{prefix}{field}`\n\n{}\n", markdown(doc)));
        }
    }
    page.push_str(
        "\n## Legacy `webhooks.ini`\n\n\
         The original module's file works unchanged: `callhook run --config webhooks.ini` runs \
         the built-in `generic-webhook` plugin with it, whose `allowed_hosts` are the origins \
         of `WEBHOOK_URL` and `WEBHOOK_POST_URL`. In `callhook.toml`, `legacy_ini = \
         \"webhooks.ini\"` reads it too; a key set in both files takes the TOML value.\n\n\
         Keys and section names are case-insensitive; `;` starts a comment (at the start of a \
         line, or after white space); an empty value means \"not set\". Flags are `1`/`0` \
         (also `true`/`false`, `yes`/`no`, `on`/`off`). Secrets may be `env:NAME` here too. \
         Unknown sections and keys are errors. The example is \
         [`config/webhooks.ini`](../config/webhooks.ini).\n\n\
         ```ini\n",
    );
    page.push_str(include_str!("../../../config/webhooks.ini"));
    page.push_str("```\n\n| ini | `callhook.toml` |\n|---|---|\n");
    for (section, keys) in schema() {
        for key in *keys {
            let target = toml_key(section, key);
            let target = if target.contains('`') {
                target.to_string()
            } else {
                format!("`{target}`")
            };
            page.push_str(&format!("| `[{section}]` `{key}` | {target} |\n"));
        }
    }
    page
}

/// The GitHub anchor of a heading.
fn anchor(heading: &str) -> String {
    heading
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            'a'..='z' | '0'..='9' | '-' | '_' => Some(c),
            ' ' => Some('-'),
            _ => None,
        })
        .collect()
}

/// Every ```toml example of the section docs.
pub(super) fn examples() -> Vec<(&'static str, String)> {
    let source = include_str!("raw.rs");
    let mut out = Vec::new();
    for (name, _, _) in SECTIONS {
        let documented = parse(source, name);
        let mut inside: Option<String> = None;
        for line in &documented.doc {
            match (&mut inside, line.trim()) {
                (None, "```toml") => inside = Some(String::new()),
                (Some(block), "```") => {
                    out.push((*name, std::mem::take(block)));
                    inside = None;
                }
                (Some(block), _) => {
                    block.push_str(line);
                    block.push('\n');
                }
                _ => {}
            }
        }
    }
    out
}
