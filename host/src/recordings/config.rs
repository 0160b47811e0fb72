//! [`RecordingsConfig`]: the resolved `[RECORDINGS]` settings, with their defaults.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use jiff::tz::TimeZone;

use super::convert::Converter;

/// Where recordings come from (`SOURCE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SourceKind {
    /// Poll the PBX's XAPI (`xapi`): works wherever the host runs. The default.
    #[default]
    Xapi,
    /// Watch the PBX's recordings folder (`folder`): when the host runs on the PBX itself.
    Folder,
}

/// Everything the recordings pipeline needs. The configuration's validator ([`crate::config`])
/// checks every value a user can set (the bit rate against [`BITRATES`](super::convert::BITRATES),
/// the public URL); the rest are these defaults.
///
/// Build one from [`Default`] and change what differs:
///
/// ```
/// # use callhook::recordings::{RecordingsConfig, SourceKind};
/// let config = RecordingsConfig {
///     enabled: true,
///     public_url: "https://pbx.example.com:5001".to_owned(),
///     ..RecordingsConfig::default()
/// };
/// assert_eq!(config.source, SourceKind::Xapi);
/// assert_eq!(config.bitrate_kbps, 32);
/// ```
///
/// `Debug` never shows the signing key.
#[derive(Clone, PartialEq)]
pub struct RecordingsConfig {
    /// Whether recordings are fetched, converted and offered at all (`ENABLED`). By default off.
    pub enabled: bool,
    /// Where recordings come from (`SOURCE`). By default XAPI.
    pub source: SourceKind,
    /// The PBX's recordings folder, one sub-folder per extension, for the `folder` source
    /// (`FOLDER`). By default `/var/lib/3cxpbx/Instance1/Data/Recordings`.
    pub folder: PathBuf,
    /// The time zone of the time stamps in recording file names (`folder` source). By default
    /// the host's.
    pub folder_time_zone: TimeZone,
    /// Where the MP3s are kept and served from (`MP3_DIR`). Created if missing. By default
    /// `/var/lib/callhook/recordings`.
    pub mp3_dir: PathBuf,
    /// The MP3 bitrate in kbit/s (`MP3_BITRATE`), one of [`BITRATES`](super::convert::BITRATES) (8, 16, 24, 32, 40, 48,
    /// 64, 80, 96, 112, 128, 160, 192, 224, 256, 320). By default 32, plenty for telephone
    /// speech.
    pub bitrate_kbps: u32,
    /// How many conversions run at once. By default one per core.
    pub parallel_conversions: usize,
    /// MP3s older than this many days are deleted (`KEEP_DAYS`); 0 keeps them forever.
    /// By default 30.
    pub keep_days: u32,
    /// How often the retention sweep runs. By default hourly.
    pub sweep_interval: Duration,
    /// The base of the links sent to the CRM (`PUBLIC_URL`), e.g.
    /// `https://pbx.example.com:5001`; links are `{public_url}/webapi/recording/{file}`.
    /// Required when enabled. By default empty.
    pub public_url: String,
    /// Whether links carry an expiry and an HMAC signature (`SIGN_LINKS`); off only for
    /// receivers that cannot keep the query string. By default on.
    pub sign_links: bool,
    /// The HMAC key for signed links. `None`: a random key is made once and kept in
    /// `{mp3_dir}/.link-key`, so links survive restarts. By default `None`.
    pub signing_key: Option<String>,
    /// How long a signed link works. By default 30 days (the default `keep_days`).
    pub link_lifetime: Duration,
    /// How long to wait after a call is over for its recordings to appear. By default 120 s.
    /// Only a wait in which the PBX answered every look ends the job when nothing appeared.
    pub wait_limit: Duration,
    /// How long after a call's end its recording job keeps retrying while the PBX cannot be
    /// asked (unreachable, HTTP 5xx, XAPI `403`) or a download or MP3 cannot be stored (disk
    /// full), with backoff from [`RETRY_FIRST_DELAY`](super::RETRY_FIRST_DELAY) to
    /// [`RETRY_MAX_DELAY`](super::RETRY_MAX_DELAY); counted from the call's end, so
    /// a job resumed after a restart keeps the same deadline. By default 6 hours.
    pub retry_for: Duration,
    /// The largest WAV a download may bring (XAPI source); a larger one is stopped at this
    /// size and reported, never held in memory (downloads stream to a temporary file in
    /// `mp3_dir`). By default [`RecordingsConfig::DEFAULT_MAX_DOWNLOAD_BYTES`], 200 MiB (about
    /// 3.6 hours of 8 kHz 16-bit stereo).
    pub max_download_bytes: u64,
}

impl RecordingsConfig {
    /// The default `FOLDER`.
    pub const DEFAULT_FOLDER: &str = "/var/lib/3cxpbx/Instance1/Data/Recordings";
    /// The default `MP3_DIR`.
    pub const DEFAULT_MP3_DIR: &str = "/var/lib/callhook/recordings";
    /// The default `MP3_BITRATE`.
    pub const DEFAULT_BITRATE_KBPS: u32 = 32;
    /// The default `KEEP_DAYS`.
    pub const DEFAULT_KEEP_DAYS: u32 = 30;
    /// The default wait for recordings.
    pub const DEFAULT_WAIT_LIMIT: Duration = Duration::from_secs(120);
    /// The default time a recording job retries while the PBX cannot be asked.
    pub const DEFAULT_RETRY_FOR: Duration = Duration::from_secs(6 * 3600);
    /// The longest time a recording job may retry (`retry_hours`): a week.
    pub const MAX_RETRY_FOR: Duration = Duration::from_secs(168 * 3600);
    /// The default download limit: 200 MiB.
    pub const DEFAULT_MAX_DOWNLOAD_BYTES: u64 = 200 * 1024 * 1024;
    /// The default lifetime of signed links.
    pub const DEFAULT_LINK_LIFETIME: Duration = Duration::from_secs(30 * 86_400);

    /// How long files are kept; `None` for ever.
    pub fn keep(&self) -> Option<Duration> {
        (self.keep_days > 0).then(|| Duration::from_secs(u64::from(self.keep_days) * 86_400))
    }
}

impl Default for RecordingsConfig {
    fn default() -> Self {
        RecordingsConfig {
            enabled: false,
            source: SourceKind::Xapi,
            folder: PathBuf::from(Self::DEFAULT_FOLDER),
            folder_time_zone: TimeZone::system(),
            mp3_dir: PathBuf::from(Self::DEFAULT_MP3_DIR),
            bitrate_kbps: Self::DEFAULT_BITRATE_KBPS,
            parallel_conversions: Converter::default_parallelism(),
            keep_days: Self::DEFAULT_KEEP_DAYS,
            sweep_interval: Duration::from_secs(3600),
            public_url: String::new(),
            sign_links: true,
            signing_key: None,
            link_lifetime: Self::DEFAULT_LINK_LIFETIME,
            wait_limit: Self::DEFAULT_WAIT_LIMIT,
            retry_for: Self::DEFAULT_RETRY_FOR,
            max_download_bytes: Self::DEFAULT_MAX_DOWNLOAD_BYTES,
        }
    }
}

impl fmt::Debug for RecordingsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecordingsConfig")
            .field("enabled", &self.enabled)
            .field("source", &self.source)
            .field("folder", &self.folder)
            .field("folder_time_zone", &self.folder_time_zone)
            .field("mp3_dir", &self.mp3_dir)
            .field("bitrate_kbps", &self.bitrate_kbps)
            .field("parallel_conversions", &self.parallel_conversions)
            .field("keep_days", &self.keep_days)
            .field("sweep_interval", &self.sweep_interval)
            .field("public_url", &self.public_url)
            .field("sign_links", &self.sign_links)
            .field(
                "signing_key",
                &self.signing_key.as_ref().map(|_| "<redacted>"),
            )
            .field("link_lifetime", &self.link_lifetime)
            .field("wait_limit", &self.wait_limit)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_defaults() {
        assert_eq!(
            RecordingsConfig::default().keep(),
            Some(Duration::from_secs(30 * 86_400))
        );
    }

    #[test]
    fn never_shows_the_signing_key() {
        let config = RecordingsConfig {
            signing_key: Some("super-secret-signing-key".to_owned()),
            ..RecordingsConfig::default()
        };
        assert!(!format!("{config:?}").contains("super-secret"));
    }
}
