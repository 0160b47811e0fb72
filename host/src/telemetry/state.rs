//! What happens to the saved call state: a record that does not read is logged and counted
//! (`callhook_call_state_unreadable_total`), and the others are restored.

use std::fmt::Display;
use std::sync::atomic::{AtomicU64, Ordering};

/// The log target: the engine store's, so that `RUST_LOG` filters by component as before.
const TARGET: &str = "callhook::app::engine_store";

/// A saved record (a call, the DN table, a recording job) did not read: skipped, the others are
/// restored, and it is left in place for inspection.
pub(crate) struct StateRecordUnreadable<'a> {
    pub table: &'a str,
    pub key: &'a str,
    pub error: &'a dyn Display,
}

impl StateRecordUnreadable<'_> {
    pub(crate) fn emit(&self, unreadable: &AtomicU64) {
        tracing::error!(
                target: TARGET,
            table = self.table,
            key = self.key,
            error = %self.error,
            "a saved call state record is unreadable; skipped, the others are restored"
        );
        unreadable.fetch_add(1, Ordering::Relaxed);
    }
}

/// The call state saved whole by an earlier version did not read: dropped while it is moved to
/// per-call records.
pub(crate) struct WholeStateUnreadable<'a> {
    pub error: &'a dyn Display,
}

impl WholeStateUnreadable<'_> {
    pub(crate) fn emit(&self, unreadable: &AtomicU64) {
        tracing::error!(
            target: TARGET,
            error = %self.error,
            "the saved call state is unreadable; dropped"
        );
        unreadable.fetch_add(1, Ordering::Relaxed);
    }
}
