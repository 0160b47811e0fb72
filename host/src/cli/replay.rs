//! `callhook replay`: a capture file through the engine, events to stdout.

use crate::app::{Replayer, read_capture};
use crate::calls::{Engine, EngineConfig};
use anyhow::Context;
use std::io::Write;
use std::path::Path;

/// Replays `file` and prints every derived event as one JSON line. With `config`, the engine
/// takes that configuration's settings (`[trunks]`, `[did]`, time zone, grace); XAPI's rule
/// names, which `run` adds, are not in a capture.
pub fn run(file: &Path, timezone: Option<&str>, config: Option<&Path>) -> anyhow::Result<()> {
    let mut config = match config {
        Some(path) => crate::config::Config::load(path)
            .map_err(|errors| anyhow::anyhow!("{errors}"))?
            .engine(),
        None => EngineConfig::default(),
    };
    if let Some(zone) = timezone {
        config.time_zone = jiff::tz::TimeZone::get(zone)
            .with_context(|| format!("while reading --timezone {zone:?}"))?;
    }
    let mut replayer = Replayer::new(Engine::new(config));
    let mut out = std::io::stdout().lock();
    for change in read_capture(file)? {
        for event in replayer.apply(change?) {
            writeln!(out, "{}", serde_json::to_string(&event)?)?;
        }
    }
    for event in replayer.finish().0 {
        writeln!(out, "{}", serde_json::to_string(&event)?)?;
    }
    Ok(())
}
