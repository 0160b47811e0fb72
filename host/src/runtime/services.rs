//! What the host tells plugins beyond the event itself (contract 0.2): the external number in
//! E.164, the extension's name and e-mail, and the bytes of the MP3s it serves.
//!
//! One [`HostServices`] is shared by all plugins of a runtime. Plugins of contract 0.1 never
//! see any of it.

use crate::calls::e164::E164;
use crate::pbx::users::UserDirectory;
use crate::recordings::{Links, ROUTE_PREFIX, Store};
use quick_cache::sync::Cache;
use std::convert::Infallible;
use std::sync::{Arc, OnceLock};
use std::time::UNIX_EPOCH;

/// How many numbers [`E164Numbers`] remembers: far more than the external numbers of the calls
/// one PBX has in flight, so the events of a call find theirs.
const REMEMBERED_NUMBERS: usize = 4096;

/// The host's knowledge that contract 0.2 hands to plugins. By default: no country (only
/// `+` numbers normalised), an empty user list, no recordings.
#[derive(Debug, Clone, Default)]
pub struct HostServices {
    /// Normalises `callerid` to `callerid-e164`, with `pbx.country` as the default region.
    pub e164: E164Numbers,
    /// The PBX's user list, for `user-info`.
    pub users: UserDirectory,
    /// The MP3s this host serves, for `recording-file`: set once the recordings pipeline is up
    /// (the host makes the runtime before it); empty while recordings are off.
    pub recordings: Arc<OnceLock<RecordingFiles>>,
}

/// [`E164`] normalisation with the numbers already normalised remembered.
///
/// libphonenumber's parse costs about 10 µs, a tenth of a delivery's host overhead, and every
/// event of a call, for every plugin, asks for the same number. The answers of the most recent
/// [`REMEMBERED_NUMBERS`] numbers are kept, "not a number" answers too; clones share them.
#[derive(Debug, Clone)]
pub struct E164Numbers {
    rules: E164,
    remembered: Arc<Cache<String, Option<String>>>,
}

impl E164Numbers {
    /// `number` in E.164, as [`E164::normalise`] gives it.
    pub fn normalise(&self, number: &str) -> Option<String> {
        let Ok(normalised) = self
            .remembered
            .get_or_insert_with(number, || Ok::<_, Infallible>(self.rules.normalise(number)));
        normalised
    }
}

impl From<E164> for E164Numbers {
    fn from(rules: E164) -> Self {
        E164Numbers {
            rules,
            remembered: Arc::new(Cache::new(REMEMBERED_NUMBERS)),
        }
    }
}

impl Default for E164Numbers {
    fn default() -> Self {
        E164::default().into()
    }
}

/// Reads the MP3s this host serves, given their public links.
#[derive(Debug, Clone)]
pub struct RecordingFiles {
    store: Store,
    links: Links,
}

impl RecordingFiles {
    /// The files of `store`, whose links `links` makes.
    pub fn new(store: Store, links: Links) -> RecordingFiles {
        RecordingFiles { store, links }
    }

    /// The bytes of the MP3 that `link` (a link of a `recording` event) names.
    ///
    /// The link's signature is checked when links are signed, so a plugin can read only files
    /// whose links it was given; its expiry is not, since a replayed delivery may come after the
    /// link expired (retention decides how long a file lives). The error names the file and why.
    pub fn read(&self, link: &str) -> Result<Vec<u8>, String> {
        let (path, query) = link.split_once('?').unwrap_or((link, ""));
        let Some(name) = path
            .find(ROUTE_PREFIX)
            .map(|at| &path[at + ROUTE_PREFIX.len()..])
        else {
            return Err(format!("{link:?} is not a recording link of this host"));
        };
        let param = |key: &str| {
            query
                .split('&')
                .find_map(|pair| pair.strip_prefix(key)?.strip_prefix('='))
        };
        self.links
            .verify(name, param("expires"), param("sig"), UNIX_EPOCH)
            .map_err(|refusal| format!("recording {name}: {refusal}"))?;
        let Some(file) = self.store.resolve(name) else {
            return Err(format!("recording {name}: not a recording file name"));
        };
        std::fs::read(&file).map_err(|error| match error.kind() {
            std::io::ErrorKind::NotFound => {
                format!("recording {name}: no such file (unknown, or removed by retention)")
            }
            _ => format!("recording {name}: cannot be read: {error}"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembered_numbers_give_the_rules_answers_and_clones_share_them() {
        let numbers = E164Numbers::from(E164::new(Some("DE")).unwrap());
        let clone = numbers.clone();
        for _ in 0..2 {
            assert_eq!(
                numbers.normalise("030 1234567").as_deref(),
                Some("+49301234567")
            );
            assert_eq!(clone.normalise("120"), None);
        }
        assert_eq!(numbers.remembered.len(), 2);
    }
}
