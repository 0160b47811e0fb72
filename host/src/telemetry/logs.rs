//! The log subscriber: where log lines go and what they look like.
//!
//! Logs go to stderr, filtered by `RUST_LOG` (by default warnings and errors; the `wasmtime`
//! HTTP client's own warnings are left out, because the failed delivery they belong to is
//! logged once, with its plugin and call, as `delivery attempt`). Text is for people: colour
//! only when stderr is a terminal, so `callhook run 2> host.log` and the systemd journal get
//! plain text. JSON is for log shippers: one object per line with `timestamp`, `level`,
//! `target` and `fields` (the message and the event's fields).

use std::io::IsTerminal;
use tracing_subscriber::EnvFilter;

/// The filter when `RUST_LOG` is not set.
const DEFAULT_FILTER: &str = "warn,callhook=warn,wasmtime_wasi_http=error";

/// How log lines are written (`--log-format`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines, coloured when stderr is a terminal. The default.
    #[default]
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

/// Installs the process-wide subscriber writing to stderr in `format`. Call once, first thing.
pub fn init(format: LogFormat) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => builder.json().init(),
    }
}
