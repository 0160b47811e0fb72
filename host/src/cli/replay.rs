//! `callhook replay`: a capture file through the engine, events to stdout.

use crate::app::to_input;
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
            .engine
            .engine_config(),
        None => EngineConfig::default(),
    };
    if let Some(zone) = timezone {
        config.time_zone = jiff::tz::TimeZone::get(zone)
            .with_context(|| format!("while reading --timezone {zone:?}"))?;
    }
    let mut engine = Engine::new(config);
    let reader = std::fs::File::open(file)
        .with_context(|| format!("while opening the capture {}", file.display()))?;
    let replay = crate::pbx::Replay::new(std::io::BufReader::new(reader));
    let mut out = std::io::stdout().lock();
    let mut last = None;
    for change in replay {
        let change = change.with_context(|| format!("while reading {}", file.display()))?;
        let at = change.at();
        last = Some(at);
        for event in engine.apply(to_input(change), at).events {
            writeln!(out, "{}", serde_json::to_string(&event)?)?;
        }
    }
    if let Some(last) = last {
        // Let every grace period run out, as it would have after the capture ended.
        let later = last + jiff::SignedDuration::from_hours(24);
        for event in engine.tick(later).events {
            writeln!(out, "{}", serde_json::to_string(&event)?)?;
        }
    }
    Ok(())
}
