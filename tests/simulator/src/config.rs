//! The simulator's settings.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::DnEntry;

impl SimConfig {
    /// The trunks of the shipped scenarios: `10007` on DID `+4930123456` (rule `CompanyDID`).
    /// Calls that must arrive without a DID use another trunk, e.g. `10008`.
    pub fn default_trunks() -> std::collections::BTreeMap<String, String> {
        [("10007".to_owned(), "+4930123456".to_owned())].into()
    }
}

/// When the repeaters ([`SimConfig::repeat_unconnected`], [`crate::Faults::repeat_connected`])
/// re-announce the legs they repeat. 3CX is reported to repeat a leg about every 750 ms; whether
/// its legs repeat on one shared clock or each on its own is not known.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum RepeatPhase {
    /// Every leg at each tick of one period clock: one burst of upserts per period, as many
    /// frames at once as legs are ringing (the harder case for a client).
    #[default]
    Together,
    /// Each leg a period after its own last upsert, as a timer per leg would: the same number
    /// of frames, spread out over the period.
    PerLeg,
}

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
    /// When set, `expires_in` reports exactly this number, whatever the lifetime and unit:
    /// `Some(60)` with the default hour-long JWT is the quirk reported from a live V20. The
    /// JWT's `iat` and `exp` stay right. By default none.
    pub expires_in: Option<u64>,
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
    /// The inbound rules `GET /xapi/v1/InboundRules` lists (`Id` counting from 1). By default
    /// [`InboundRule::defaults`]: `CompanyDID` for DID `4930123456`, plus two rules clients must
    /// ignore.
    pub inbound_rules: Vec<InboundRule>,
    /// The users `GET /xapi/v1/Users` lists (`Id` counting from 1). By default
    /// [`User::defaults`]: the extensions of the shipped scenarios.
    pub users: Vec<User>,
    /// The PBX's trunks: trunk DN → the DID number its inbound calls arrive on. 3CX does not
    /// tell API clients (it leaves `party_did` empty), so this is what an administrator writes
    /// into callhook's `[trunks]` table; tests and the demo hand it to the host. By default
    /// [`SimConfig::default_trunks`]: trunk `10007` on `+4930123456`.
    pub trunks: std::collections::BTreeMap<String, String>,
    /// Re-announce every participant not yet `Connected` this often (wall-clock time), as 3CX
    /// does; see [`crate::Faults::repeat_unconnected`]. By default every 750 ms, like a live
    /// PBX; `None` plays exactly the timeline's frames.
    pub repeat_unconnected: Option<Duration>,
    /// When the repeats of different legs go out. By default [`RepeatPhase::Together`].
    pub repeat_phase: RepeatPhase,
    /// Wait this long before answering each `GET /callcontrol/{dn}/participants/{id}`, like a
    /// remote PBX; see [`crate::Faults::get_delay`]. By default zero.
    pub get_delay: Duration,
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
            expires_in: None,
            token_lifetime: Duration::from_secs(3600),
            recording_delay: Duration::from_millis(200),
            recordings_folder: None,
            wav_format: WavFormat::default(),
            directory: Vec::new(),
            inbound_rules: InboundRule::defaults(),
            users: User::defaults(),
            trunks: SimConfig::default_trunks(),
            repeat_unconnected: Some(Duration::from_millis(750)),
            repeat_phase: RepeatPhase::default(),
            get_delay: Duration::ZERO,
            control_endpoint: false,
        }
    }
}

/// An XAPI inbound rule (`3cx-api.md` section 5). Clients use only rules whose `Condition` is
/// `BasedOnDID` and whose `Data` and `RuleName` are set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundRule {
    /// `RuleName`, e.g. `"CompanyDID"`.
    pub name: String,
    /// `Data`: for a DID rule the DID number, e.g. `"4930123456"`; `None` is sent as `null`.
    pub did: Option<String>,
    /// `Condition`, e.g. `"BasedOnDID"`, `"BasedOnCallerID"`.
    pub condition: String,
}

impl InboundRule {
    /// A `BasedOnDID` rule mapping `did` to `name`.
    pub fn did(name: &str, did: &str) -> InboundRule {
        InboundRule {
            name: name.to_owned(),
            did: Some(did.to_owned()),
            condition: "BasedOnDID".to_owned(),
        }
    }

    /// The default rules: `CompanyDID` for `4930123456`; then a `BasedOnCallerID` rule
    /// `VIP callers` whose `Data` is the same digits (a client that ignores `Condition` maps the
    /// DID wrongly), and a `BasedOnDID` rule `Unassigned` with `Data` null.
    pub fn defaults() -> Vec<InboundRule> {
        vec![
            InboundRule::did("CompanyDID", "4930123456"),
            InboundRule {
                condition: "BasedOnCallerID".to_owned(),
                ..InboundRule::did("VIP callers", "4930123456")
            },
            InboundRule {
                did: None,
                ..InboundRule::did("Unassigned", "")
            },
        ]
    }
}

/// An XAPI user: an extension and the person behind it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// `Number`: the extension, e.g. `"120"`.
    pub number: String,
    /// `FirstName`; `None` is sent as `null`.
    pub first_name: Option<String>,
    /// `LastName`; `None` is sent as `null`.
    pub last_name: Option<String>,
    /// `EmailAddress`; `None` is sent as `null`.
    pub email: Option<String>,
}

impl User {
    /// A user with every field set.
    pub fn new(number: &str, first_name: &str, last_name: &str, email: &str) -> User {
        User {
            number: number.to_owned(),
            first_name: Some(first_name.to_owned()),
            last_name: Some(last_name.to_owned()),
            email: Some(email.to_owned()),
        }
    }

    /// The people of the shipped scenarios' extensions 120, 121, 122, 123, 130 and 150 (150
    /// without an email address). Queue 800 is not a user.
    pub fn defaults() -> Vec<User> {
        vec![
            User::new("120", "Anna", "Mueller", "anna.mueller@example.com"),
            User::new("121", "Ben", "Schmidt", "ben.schmidt@example.com"),
            User::new("122", "Clara", "Weber", "clara.weber@example.com"),
            User::new("123", "David", "Fischer", "david.fischer@example.com"),
            User::new("130", "Eva", "Wagner", "eva.wagner@example.com"),
            User {
                email: None,
                ..User::new("150", "Jonas", "Becker", "")
            },
        ]
    }
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
