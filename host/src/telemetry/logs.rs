//! The log subscriber: where log lines go and what they look like.
//!
//! Logs go to stderr, filtered by `RUST_LOG` (by default warnings and errors; the `wasmtime`
//! HTTP client's own warnings are left out, because the failed delivery they belong to is
//! logged once, with its plugin and call, as `delivery attempt`). Whatever `RUST_LOG` asks,
//! the `TRACE` lines of wasmtime's WASI bindings are never written: they log every call a
//! plugin makes with its arguments (request paths with their query strings, header values),
//! and so the plugins' secrets ([`filter`]). Text is for people: colour
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

/// The targets of wasmtime's generated WASI bindings, which trace each call a plugin makes
/// with its arguments and results.
const CALL_TRACING: [&str; 2] = [
    "wasmtime_wasi_http::p2::bindings",
    "wasmtime_wasi::p2::bindings",
];

/// The filter for `rust_log` (`RUST_LOG`; the default when `None` or not a valid filter), with
/// wasmtime's WASI bindings (`CALL_TRACING`) held at `debug`: their `trace` lines carry what
/// plugins send, secrets included.
pub fn filter(rust_log: Option<&str>) -> EnvFilter {
    let mut filter = rust_log
        .and_then(|directives| EnvFilter::try_new(directives).ok())
        .unwrap_or_else(|| EnvFilter::new(DEFAULT_FILTER));
    for target in CALL_TRACING {
        let directive = format!("{target}=debug")
            .parse()
            .expect("the call-tracing directives parse");
        filter = filter.add_directive(directive);
    }
    filter
}

/// Installs the process-wide subscriber writing to stderr in `format`. Call once, first thing.
pub fn init(format: LogFormat) {
    let rust_log = std::env::var(EnvFilter::DEFAULT_ENV).ok();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter(rust_log.as_deref()))
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// What a text subscriber with `filter` writes while `emit` runs, for tests of log lines.
#[cfg(test)]
pub(crate) fn written_under(filter: EnvFilter, emit: impl FnOnce()) -> String {
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Lines(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Lines {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    let lines = Lines::default();
    let sink = lines.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(false)
        .with_writer(move || sink.clone())
        .finish();
    tracing::subscriber::with_default(subscriber, emit);
    let bytes = lines.0.lock().unwrap().clone();
    String::from_utf8(bytes).expect("log lines are UTF-8")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `filter(rust_log)` lets through of one `TRACE` line of each WASI binding and one of
    /// the host.
    fn written(rust_log: Option<&str>) -> String {
        written_under(filter(rust_log), || {
            tracing::trace!(
                target: "wasmtime_wasi_http::p2::bindings::generated::wasi::http::types",
                path_with_query = "/oauth?client_secret=s3cret",
                "call"
            );
            tracing::trace!(target: "wasmtime_wasi::p2::bindings::cli", "call");
            tracing::trace!(target: "callhook::queue", "host trace");
        })
    }

    #[test]
    fn the_wasi_bindings_call_traces_are_never_written() {
        for rust_log in [
            "trace",
            "wasmtime_wasi_http=trace,wasmtime_wasi=trace,trace",
        ] {
            let written = written(Some(rust_log));
            assert!(written.contains("host trace"), "{rust_log}: {written}");
            assert!(!written.contains("s3cret"), "{rust_log}: {written}");
            assert!(!written.contains("wasmtime_wasi"), "{rust_log}: {written}");
        }
    }

    #[test]
    fn without_rust_log_no_trace_line_is_written() {
        assert_eq!(written(None), "");
        assert_eq!(written(Some("not a [filter")), "");
    }
}
