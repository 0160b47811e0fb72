//! `callhook check-config`: what loading does not look at — the files and directories the
//! configuration names — still without connecting anywhere.
//!
//! Loading the plugins into the runtime (to check their WIT version) is the caller's part; this
//! module only checks that each plugin file is there, readable and a WebAssembly component.

use std::path::Path;

use super::errors::{ConfigError, ConfigErrors, ErrorKind, Place};
use super::{Config, FileRef, PluginSource};
use crate::recordings::SourceKind;
use crate::runtime::egress::EgressPolicy;

/// What [`check`] found in order, one line per item, for the command to print.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckReport {
    /// One line per thing checked, e.g. `plugin hubspot: plugins/hubspot.wasm (1.2 MiB)`.
    pub lines: Vec<String>,
    /// What is allowed but unwise, one line each ([`warnings`]).
    pub warnings: Vec<String>,
}

/// What `config` allows that is unwise, one line each, naming the key and where it was
/// written: for `callhook run` to print at start and `callhook check-config` among its
/// findings.
///
/// Today that is a PBX URL with `http://`: accepted (tests and a local TLS-terminating proxy use
/// it), but the client secret and the access tokens then cross the network unencrypted.
pub fn warnings(config: &Config) -> Vec<String> {
    let mut warnings = Vec::new();
    if config.pbx.url.scheme() == "http" {
        let place = config.pbx.url_place.clone().unwrap_or_else(|| Place {
            file: config.file.clone(),
            line: None,
            column: None,
            key: None,
        });
        warnings.push(format!(
            "{} is http://: the client secret and the access tokens travel unencrypted; use \
             https:// unless a proxy on this machine adds TLS",
            with_key(place, "pbx.url")
        ));
    }
    warnings
}

/// Checks the files and directories `config` names: plugin components exist, are readable and
/// are WebAssembly components; certificates are readable PEM files; the recordings folder
/// exists; the storage and MP3 directories exist or can be created; every `allowed_hosts`
/// entry parses. Every problem is reported, each with the place of the key.
pub fn check(config: &Config) -> Result<CheckReport, ConfigErrors> {
    let mut errors = Vec::new();
    let mut report = CheckReport::default();
    let fallback = |key: &str| Place {
        file: config.file.clone(),
        line: None,
        column: None,
        key: Some(key.to_string()),
    };
    let mut fail = |file: &FileRef, key: &str, reason: String| {
        errors.push(ConfigError {
            place: with_key(file.place.clone().unwrap_or_else(|| fallback(key)), key),
            kind: ErrorKind::File {
                path: file.path.clone(),
                reason,
            },
        });
    };

    for plugin in &config.plugins {
        match &plugin.source {
            PluginSource::Builtin(builtin) => report
                .lines
                .push(format!("plugin {}: built-in {}", plugin.name, builtin.name)),
            PluginSource::File(file) => match component(&file.path) {
                Ok(size) => report.lines.push(format!(
                    "plugin {}: {} ({} KiB)",
                    plugin.name,
                    file.path.display(),
                    size.div_ceil(1024)
                )),
                Err(reason) => fail(file, "plugin.path", reason),
            },
        }
        match EgressPolicy::new(&plugin.allowed_hosts) {
            Ok(_) if plugin.allowed_hosts.is_empty() => report.lines.push(format!(
                "plugin {}: no outgoing requests allowed",
                plugin.name
            )),
            Ok(_) => report.lines.push(format!(
                "plugin {}: may reach {}",
                plugin.name,
                plugin.allowed_hosts.join(", ")
            )),
            Err(error) => {
                let place = plugin.place.clone().unwrap_or_else(|| fallback("plugin"));
                fail(
                    &FileRef {
                        path: config.file.clone(),
                        place: Some(place),
                    },
                    "plugin.allowed_hosts",
                    error.to_string(),
                )
            }
        }
    }

    if let Some(ca) = &config.pbx.ca_file {
        match pem(&ca.path) {
            Ok(()) => report
                .lines
                .push(format!("pbx.ca_file: {}", ca.path.display())),
            Err(reason) => fail(ca, "pbx.ca_file", reason),
        }
    }
    let server = &config.server;
    for (file, key) in [
        (&server.tls_cert, "server.tls_cert"),
        (&server.tls_key, "server.tls_key"),
    ] {
        let Some(file) = file else { continue };
        match pem(&file.path) {
            Ok(()) => report.lines.push(format!("{key}: {}", file.path.display())),
            Err(reason) => fail(file, key, reason),
        }
    }
    let recordings = &config.recordings;
    if recordings.enabled {
        let file = |key: &str, path: &std::path::Path| FileRef {
            path: path.to_owned(),
            place: config.places.get(key).cloned(),
        };
        if recordings.source == SourceKind::Folder {
            let folder = file("recordings.folder", &recordings.folder);
            match std::fs::metadata(&folder.path) {
                Ok(meta) if meta.is_dir() => report
                    .lines
                    .push(format!("recordings.folder: {}", folder.path.display())),
                Ok(_) => fail(&folder, "recordings.folder", "not a directory".to_string()),
                Err(error) => fail(&folder, "recordings.folder", error.to_string()),
            }
        }
        let mp3_dir = file("recordings.mp3_dir", &recordings.mp3_dir);
        match directory(&mp3_dir.path) {
            Ok(line) => report.lines.push(format!("recordings.mp3_dir: {line}")),
            Err(reason) => fail(&mp3_dir, "recordings.mp3_dir", reason),
        }
    }
    match directory(&config.storage.dir.path) {
        Ok(line) => report.lines.push(format!("storage.dir: {line}")),
        Err(reason) => fail(&config.storage.dir, "storage.dir", reason),
    }

    if errors.is_empty() {
        report.warnings = warnings(config);
        Ok(report)
    } else {
        errors.sort_by(|a, b| {
            (&a.place.file, a.place.line, a.place.column).cmp(&(
                &b.place.file,
                b.place.line,
                b.place.column,
            ))
        });
        Err(ConfigErrors(errors))
    }
}

fn with_key(mut place: Place, key: &str) -> Place {
    if place.key.is_none() {
        place.key = Some(key.to_string());
    }
    place
}

/// The size of a WebAssembly component file, or why it is not one.
fn component(path: &Path) -> Result<u64, String> {
    use std::io::Read;
    let mut file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let size = file.metadata().map_err(|e| e.to_string())?.len();
    let mut header = [0u8; 8];
    file.read_exact(&mut header)
        .map_err(|_| "too short to be a WebAssembly file".to_string())?;
    if &header[..4] != b"\0asm" {
        return Err("not a WebAssembly file (expected a .wasm component)".to_string());
    }
    // Bytes 4..8: version and layer; layer 1 is a component, layer 0 a core module.
    if header[6..8] != [1, 0] {
        return Err(
            "a core WebAssembly module, not a component; build the plugin for \
             wasm32-wasip2 (see the SDK's README)"
                .to_string(),
        );
    }
    Ok(size)
}

/// A readable PEM file.
fn pem(path: &Path) -> Result<(), String> {
    let text = std::fs::read(path).map_err(|e| e.to_string())?;
    if !text.windows(11).any(|w| w == b"-----BEGIN ") {
        return Err("not a PEM file (no -----BEGIN line)".to_string());
    }
    Ok(())
}

/// A directory that exists, or whose nearest existing ancestor is a directory to create it in.
fn directory(path: &Path) -> Result<String, String> {
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_dir() => return Ok(path.display().to_string()),
        Ok(_) => return Err("exists but is not a directory".to_string()),
        Err(_) => {}
    }
    let mut ancestor = path.parent();
    while let Some(dir) = ancestor {
        let probe = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        match std::fs::metadata(probe) {
            Ok(meta) if meta.is_dir() => {
                if meta.permissions().readonly() {
                    return Err(format!(
                        "does not exist, and {} is read-only",
                        probe.display()
                    ));
                }
                return Ok(format!("{} (will be created)", path.display()));
            }
            Ok(_) => {
                return Err(format!("{} is not a directory", probe.display()));
            }
            Err(_) => ancestor = dir.parent(),
        }
    }
    Err("no existing parent directory".to_string())
}
