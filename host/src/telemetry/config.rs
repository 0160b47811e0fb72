//! What the configuration tells the operator when the host starts: its warnings (an `http://`
//! PBX URL, ...), logged like everything else so that `--log-format json` stays one JSON
//! object per line.

/// The log target: the configuration's.
const TARGET: &str = "callhook::config";

/// A configuration that loads but deserves a second look; the text names the file, line and
/// key.
pub(crate) struct ConfigWarning<'a> {
    pub warning: &'a str,
}

impl ConfigWarning<'_> {
    pub(crate) fn emit(&self) {
        tracing::warn!(target: TARGET, "{}", self.warning);
    }
}
