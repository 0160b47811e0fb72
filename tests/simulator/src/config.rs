//! The simulator's settings.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::DnEntry;

/// How a [`crate::Simulator`] behaves. Every field has a default; build one with
/// `SimConfig { tls: true, ..SimConfig::default() }`.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Where to listen. By default `127.0.0.1:0` (a free port; see [`crate::SimHandle::base_url`]).
    pub listen: SocketAddr,
    /// The API client's id; also the name of its route point DN. By default `"callhook"`.
    pub client_id: String,
    /// The API client's secret. By default `"secret"`.
    pub client_secret: String,
    /// Serve HTTPS (and WSS) with a freshly generated certificate whose CA is
    /// [`crate::SimHandle::ca_pem`]. By default plain HTTP.
    pub tls: bool,
    /// Report `expires_in` in minutes like PBXes before 20.0.9 (`60`), rather than seconds
    /// (`3600`). The JWT's `exp` claim is right either way. By default seconds.
    pub expires_in_minutes: bool,
    /// How long a token lives. By default one hour; tests of refreshing use a few seconds.
    pub token_lifetime: Duration,
    /// How long after a call is completely over its recordings appear (in XAPI and in the
    /// recordings folder). Real time, not scaled. By default 200 ms.
    pub recording_delay: Duration,
    /// When set, each recording is also written as a WAV file under this folder, laid out like
    /// the PBX's `Data/Recordings` (one folder per extension). By default none.
    pub recordings_folder: Option<PathBuf>,
    /// The format of the generated recordings. By default 16-bit PCM mono at 8000 Hz.
    pub wav_format: WavFormat,
    /// DNs shown by `GET /callcontrol` from the start, besides the client's route point. Pass the
    /// scenarios' [`crate::Scenario::directory`] here so the client's first snapshot knows them;
    /// [`crate::SimHandle::play`] adds a scenario's DNs too. By default empty.
    pub directory: Vec<DnEntry>,
    /// The inbound rules `GET /xapi/v1/InboundRules` lists. By default one rule, `CompanyDID`
    /// for DID `4930123456`.
    pub inbound_rules: Vec<InboundRule>,
    /// Serve the fault control endpoints under `/_sim/` (no authentication). By default off.
    pub control_endpoint: bool,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            client_id: "callhook".to_owned(),
            client_secret: "secret".to_owned(),
            tls: false,
            expires_in_minutes: false,
            token_lifetime: Duration::from_secs(3600),
            recording_delay: Duration::from_millis(200),
            recordings_folder: None,
            wav_format: WavFormat::default(),
            directory: Vec::new(),
            inbound_rules: vec![InboundRule {
                name: "CompanyDID".to_owned(),
                did: "4930123456".to_owned(),
            }],
            control_endpoint: false,
        }
    }
}

/// An XAPI inbound rule: a DID number and its rule name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundRule {
    /// `RuleName`, e.g. `"CompanyDID"`.
    pub name: String,
    /// `Data`: the DID number, e.g. `"4930123456"`.
    pub did: String,
}

/// The sample format of generated recordings (all 8000 Hz, RIFF PCM).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WavFormat {
    /// 16-bit little-endian, one channel: what the PBX records by default.
    #[default]
    Pcm16Mono,
    /// 16-bit little-endian, two channels (each side of the call on its own channel).
    Pcm16Stereo,
    /// 8-bit unsigned, one channel.
    Pcm8Mono,
}
