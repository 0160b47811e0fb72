//! What every CRM plugin needs beyond mapping fields: the idempotent create, the error
//! classification, OAuth token state, and the text forms of times and notes
//! (spec `crm-plugins.md`, sections 3.2, 3.5, 3.6, 6.1 and 7.1).
//!
//! Each helper is a small function or type over a [`KvStore`] and closures that do the CRM's
//! own requests, so it knows nothing of any one CRM's URLs or JSON and runs natively in tests
//! with [`MemoryKv`]. A CRM plugin then is the mapping of events to requests:
//!
//! - [`format`]: ISO-8601 and `YYYY-MM-DD HH:MM:SS` times, `mm:ss` durations, HTML escaping and
//!   the notes lines.
//! - [`errors`]: the verdict on a CRM's answer: success, retry after a delay, unauthorized,
//!   permanent or target gone, with the CRM's own message.
//! - [`idempotent`]: the create of a record exactly once, with `rec:` and `pending:` entries
//!   and the `unknown-outcome` of a create that may or may not have happened.
//! - [`oauth`]: access tokens in the store, refreshed before they expire and once after a
//!   401, safe when deliveries refresh at once.
//! - [`store`]: the [`KvStore`] trait, the host's store ([`HostKv`]) and [`MemoryKv`].

pub mod errors;
pub mod format;
pub mod idempotent;
pub mod oauth;
pub mod store;

pub use store::{HostKv, KvStore, MemoryKv};
