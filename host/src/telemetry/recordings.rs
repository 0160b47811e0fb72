//! What happens to recordings and is worth a log line: an XAPI row that cannot be matched to a
//! call is logged once (the poller's cursor never brings it back) and counted
//! (`callhook_recordings_skipped_total`).

use jiff::Timestamp;

/// The log target: the XAPI poller's, so that `RUST_LOG` filters by component as before.
const TARGET: &str = "callhook::recordings::xapi";

/// An XAPI recording row without a usable `Id`: skipped.
pub(crate) struct RecordingRowWithoutId<'a> {
    /// Why the row was not read.
    pub reason: &'a str,
}

impl RecordingRowWithoutId<'_> {
    /// Logs, and counts into `skipped`.
    pub(crate) fn emit(&self, skipped: &mut u64) {
        tracing::warn!(
            target: TARGET,
            reason = self.reason,
            "skipped an XAPI recording row without a usable Id"
        );
        *skipped += 1;
    }
}

/// An XAPI recording whose start or end time is unknown: it cannot be matched to a call, and
/// is skipped.
pub(crate) struct RecordingTimesUnknown<'a> {
    pub id: u64,
    pub url: &'a str,
    pub start: Option<Timestamp>,
    pub end: Option<Timestamp>,
}

impl RecordingTimesUnknown<'_> {
    /// Logs, and counts into `skipped`.
    pub(crate) fn emit(&self, skipped: &mut u64) {
        tracing::warn!(
            target: TARGET,
            id = self.id,
            url = self.url,
            start = ?self.start,
            end = ?self.end,
            "skipped an XAPI recording whose start or end time is unknown: it cannot be \
             matched to a call"
        );
        *skipped += 1;
    }
}
