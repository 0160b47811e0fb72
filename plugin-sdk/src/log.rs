//! Structured logging into the host's log.
//!
//! Every line is tagged by the host with the plugin's name and version and the call id of the
//! delivery, so a plugin only says what happened:
//!
//! ```no_run
//! use callhook_plugin_sdk::log;
//!
//! log::info("contact created", &[("crm_id", "17")]);
//! ```

use crate::wit::callhook::plugin::host::{self, LogLevel};

/// Logs at `debug` level.
pub fn debug(message: &str, fields: &[(&str, &str)]) {
    write(LogLevel::Debug, message, fields);
}

/// Logs at `info` level.
pub fn info(message: &str, fields: &[(&str, &str)]) {
    write(LogLevel::Info, message, fields);
}

/// Logs at `warn` level.
pub fn warn(message: &str, fields: &[(&str, &str)]) {
    write(LogLevel::Warn, message, fields);
}

/// Logs at `error` level.
pub fn error(message: &str, fields: &[(&str, &str)]) {
    write(LogLevel::Error, message, fields);
}

fn write(level: LogLevel, message: &str, fields: &[(&str, &str)]) {
    let fields: Vec<(String, String)> = fields
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    host::log(level, message, &fields);
}
