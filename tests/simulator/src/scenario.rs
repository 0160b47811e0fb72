//! Scenarios: what happens on the simulated PBX, and what the host must make of it.
//!
//! A scenario file (format documented in `scenarios/README.md`) declares DNs, calls made of
//! timed high-level steps, optional timed faults, and the expected webhook sequence. Loading
//! runs three stages, each reporting errors with file, line and key:
//!
//! 1. `format`: TOML into serde-shaped raw tables (unknown keys refused), then into typed steps,
//!    checking which keys each action takes;
//! 2. `expand`: the steps are replayed against a model of the PBX's legs, in global time order,
//!    yielding the participant upserts/removes of `3cx-api.md` section 4 and the recording parts;
//!    a step that makes no sense in the state at its time (answering a leg that is not ringing,
//!    a call that never ends, ...) is an error;
//! 3. the `[[expect]]` tables are checked against the declared calls.
//!
//! The result is immutable and pure: [`Scenario::timeline`] needs no server. The `player`
//! module plays it against a running simulator.

mod expand;
mod format;
mod variant;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

pub(crate) use expand::{ROUTE_POINT, RecordingPart, device_id};
pub use variant::{TransferOrder, Variant};

use crate::faults::{Nulls, RecordingField, SocketClose};

/// A parsed, validated and expanded scenario, in one [`Variant`] (by default the realistic one).
#[derive(Debug, Clone)]
pub struct Scenario {
    name: String,
    description: String,
    directory: Vec<DnEntry>,
    /// The parsed file, kept to expand it again in another variant.
    source: Arc<format::Parsed>,
    variant: Variant,
    /// (call id, participant id) offsets of [`Scenario::renumbered`], applied after expansion.
    offsets: (u64, u64),
    timeline: Vec<TimelineStep>,
    recordings: Vec<RecordingPart>,
    faults: Vec<ScheduledFault>,
    expected: Vec<Expectation>,
}

/// A DN the API client sees in `GET /callcontrol`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DnEntry {
    /// The DN's number, e.g. `"120"`.
    pub dn: String,
    /// Its 3CX type as the API spells it, e.g. `"Wextension"`, `"Wqueue"`.
    pub dn_type: String,
}

/// One participant change at a time offset from the scenario's start.
#[derive(Debug, Clone, PartialEq)]
pub struct TimelineStep {
    /// Scenario time (unscaled) of the change.
    pub at: Duration,
    /// The change itself.
    pub change: ParticipantChange,
}

/// What the WebSocket reports: an upsert (event type 0) or a remove (event type 1).
#[derive(Debug, Clone, PartialEq)]
pub enum ParticipantChange {
    /// The participant now looks exactly like this JSON (as `GET .../participants/{id}` returns
    /// it, every key present).
    Upsert(serde_json::Value),
    /// The participant is gone; its entity GET answers 404 from now on.
    Remove {
        /// The DN the participant belonged to.
        dn: String,
        /// The participant's id.
        participant_id: u64,
    },
}

/// One expected webhook, from an `[[expect]]` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expectation {
    /// The PBX call id (`callid`) the event belongs to.
    pub call: u64,
    /// The link number of the event's call id (`…_{callid}-{link}`).
    pub link: u32,
    /// The query-string fields of `call-events.md` section 3 that the scenario pins down
    /// (`event` always; others only when listed). Values as sent, e.g. `"60"`, `"false"`.
    pub fields: BTreeMap<String, String>,
}

/// A fault the scenario switches on or fires at a given time.
#[derive(Debug, Clone, PartialEq)]
pub struct ScheduledFault {
    /// Scenario time (unscaled).
    pub at: Duration,
    /// What to do.
    pub action: FaultAction,
}

/// The fault actions a scenario can schedule; each maps to a [`crate::Faults`] method.
#[derive(Debug, Clone, PartialEq)]
pub enum FaultAction {
    /// [`crate::Faults::drop_sockets`].
    DropSockets,
    /// [`crate::Faults::refuse_upgrades_for`]; the window is in scenario time (scaled at play).
    RefuseUpgrades(Duration),
    /// [`crate::Faults::duplicate_upserts`].
    DuplicateUpserts(bool),
    /// [`crate::Faults::repeat_connected`]; the period is in scenario time (scaled at play).
    RepeatConnected(Option<Duration>),
    /// [`crate::Faults::skip_sequence`].
    SkipSequence,
    /// [`crate::Faults::malformed_frame`].
    MalformedFrame,
    /// [`crate::Faults::unknown_event_type`].
    UnknownEventType,
    /// [`crate::Faults::vanish_next_upsert`].
    VanishNextUpsert,
    /// [`crate::Faults::supersede_token`].
    SupersedeToken,
    /// [`crate::Faults::repeat_unconnected`]; the period is wall-clock time (not scaled).
    RepeatUnconnected(Option<Duration>),
    /// [`crate::Faults::get_delay`]; wall-clock time (not scaled).
    GetDelay(Duration),
    /// [`crate::Faults::abnormal_close`].
    AbnormalClose,
    /// [`crate::Faults::close_on_new_token`].
    CloseOnNewToken(Option<SocketClose>),
    /// [`crate::Faults::nulls`].
    Nulls(Nulls),
    /// [`crate::Faults::unusable_participants`].
    UnusableParticipants(bool),
    /// [`crate::Faults::forbid_participants_of`].
    ForbidParticipantsOf(String),
    /// [`crate::Faults::forbid_xapi`].
    ForbidXapi(bool),
    /// [`crate::Faults::null_recording_field`].
    NullRecordingField(Option<RecordingField>),
    /// [`crate::Faults::non_participant_frames`].
    NonParticipantFrames(String),
}

/// Why a scenario could not be loaded. Every variant names where the problem is.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    /// The file could not be read.
    #[error("cannot read scenario {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The text is not valid TOML, or a table does not have the shape of the format.
    #[error("{file}:{line}: {message}")]
    Syntax {
        /// The file (or `<string>`).
        file: String,
        /// 1-based line of the offending text.
        line: usize,
        /// The parser's message, naming the key when it knows it.
        message: String,
    },
    /// The TOML is well-formed but a value makes no sense (unknown DN, answering a leg that is
    /// not ringing, a call that never ends, an unknown expectation key, ...).
    #[error("{file}:{line}: key `{key}`: {message}")]
    Invalid {
        /// The file (or `<string>`).
        file: String,
        /// 1-based line of the offending key or table.
        line: usize,
        /// The offending key.
        key: String,
        /// What is wrong.
        message: String,
    },
    /// [`Scenario::builtin`] was given a name that is not shipped.
    #[error("no builtin scenario named `{name}` (available: {available})")]
    UnknownBuiltin {
        /// The name asked for.
        name: String,
        /// The names that exist, comma-separated.
        available: String,
    },
}

macro_rules! builtin {
    ($name:literal) => {
        (
            $name,
            include_str!(concat!("../scenarios/", $name, ".toml")),
        )
    };
}

/// The shipped scenarios, embedded so that an installed binary does not need the source tree.
/// `tests/all/scenarios.rs` checks that this list and the folder agree.
const BUILTINS: &[(&str, &str)] = &[
    builtin!("01-direct-inbound-answered"),
    builtin!("02-direct-inbound-missed"),
    builtin!("03-queue-answered"),
    builtin!("04-queue-missed-two-waves"),
    builtin!("05-blind-transfer"),
    builtin!("06-attended-transfer"),
    builtin!("07-blind-transfer-unanswered"),
    builtin!("08-outbound-answered"),
    builtin!("09-outbound-unanswered"),
    builtin!("10-hold"),
    builtin!("11-socket-drop"),
    builtin!("12-duplicate-upserts"),
];

impl Scenario {
    /// Reads and validates a scenario file.
    pub fn from_file(path: &Path) -> Result<Scenario, ScenarioError> {
        let text = std::fs::read_to_string(path).map_err(|source| ScenarioError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned());
        Self::parse(&text, &path.display().to_string(), stem)
    }

    /// Parses and validates a scenario from TOML text; errors name the file `<string>`.
    pub fn from_toml_str(text: &str) -> Result<Scenario, ScenarioError> {
        Self::parse(text, "<string>", None)
    }

    /// The folder of the shipped scenarios, `tests/simulator/scenarios` in the source tree.
    pub fn builtin_dir() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scenarios")
    }

    /// The names of the shipped scenarios, in order.
    pub fn builtin_names() -> Vec<&'static str> {
        BUILTINS.iter().map(|(name, _)| *name).collect()
    }

    /// A shipped scenario by name, e.g. `"01-direct-inbound-answered"` (with or without `.toml`).
    pub fn builtin(name: &str) -> Result<Scenario, ScenarioError> {
        let name = name.strip_suffix(".toml").unwrap_or(name);
        let (name, text) = BUILTINS.iter().find(|(n, _)| *n == name).ok_or_else(|| {
            ScenarioError::UnknownBuiltin {
                name: name.to_owned(),
                available: Self::builtin_names().join(", "),
            }
        })?;
        let file = Self::builtin_dir().join(format!("{name}.toml"));
        Self::parse(text, &file.display().to_string(), Some((*name).to_owned()))
    }

    fn parse(text: &str, file: &str, stem: Option<String>) -> Result<Scenario, ScenarioError> {
        let parsed = format::parse(text, file)?;
        let variant = Variant::default();
        let expansion = expand::expand(&parsed, variant).map_err(|e| e.in_file(file))?;
        Ok(Scenario {
            name: parsed
                .name
                .clone()
                .or(stem)
                .unwrap_or_else(|| "unnamed".to_owned()),
            description: parsed.description.clone(),
            directory: parsed
                .dns
                .iter()
                .filter(|d| d.monitored)
                .map(|d| DnEntry {
                    dn: d.dn.clone(),
                    dn_type: d.dn_type.clone(),
                })
                .collect(),
            timeline: expansion.timeline,
            recordings: expansion.recordings,
            faults: parsed.faults.clone(),
            expected: parsed.expected.clone(),
            source: Arc::new(parsed),
            variant,
            offsets: (0, 0),
        })
    }

    /// The variant this scenario is expanded in; [`Variant::default`] unless it came from
    /// [`Scenario::with_variant`].
    pub fn variant(&self) -> Variant {
        self.variant
    }

    /// The same scenario expanded in `variant`: same calls, faults and expectations (and the
    /// same renumbering), participant changes shaped as the variant says.
    pub fn with_variant(&self, variant: Variant) -> Scenario {
        // Variants only change what the upserts show, never which steps are valid.
        let expansion = expand::expand(&self.source, variant)
            .expect("a scenario that expands in one variant expands in all");
        let mut out = Scenario {
            timeline: expansion.timeline,
            recordings: expansion.recordings,
            expected: self.source.expected.clone(),
            variant,
            offsets: (0, 0),
            ..self.clone()
        };
        out.shift(self.offsets.0, self.offsets.1);
        out
    }

    /// Every variant that gives this scenario a different timeline, [`Variant::default`] first:
    /// inbound calls with a `did` with it in `party_did` and without; transfers in both orders;
    /// holds (and consultations) with the `Hold` status and staying `Connected`; outbound calls
    /// with and without the party-less first `Dialing` upsert; and their combinations. Play each
    /// with the same [`Scenario::expected`] list.
    pub fn variants(&self) -> Vec<Variant> {
        let mut seen: Vec<Vec<TimelineStep>> = Vec::new();
        let mut out = Vec::new();
        for variant in Variant::candidates() {
            let timeline = self.with_variant(variant).timeline;
            if !seen.contains(&timeline) {
                seen.push(timeline);
                out.push(variant);
            }
        }
        out
    }

    /// The scenario's name: its `name` key, else the file stem.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The scenario's `description` (may be empty).
    pub fn description(&self) -> &str {
        &self.description
    }

    /// The monitored DNs of the scenario, as `GET /callcontrol` lists them. The simulator adds
    /// the API client's own route point (named after its client id) by itself.
    pub fn directory(&self) -> Vec<DnEntry> {
        self.directory.clone()
    }

    /// The participant changes the API client sees, in the order the WebSocket reports them.
    /// Changes on unmonitored DNs are not part of it.
    pub fn timeline(&self) -> Vec<TimelineStep> {
        self.timeline.clone()
    }

    /// The faults the scenario schedules, in time order.
    pub fn fault_schedule(&self) -> &[ScheduledFault] {
        &self.faults
    }

    /// The expected webhooks, in file order.
    pub fn expected(&self) -> &[Expectation] {
        &self.expected
    }

    /// The recordings the scenario produces, one per talking part of an extension.
    pub(crate) fn recording_parts(&self) -> &[RecordingPart] {
        &self.recordings
    }

    /// Scenario time of the last step or fault (unscaled).
    pub fn duration(&self) -> Duration {
        let steps = self.timeline.iter().map(|s| s.at);
        let faults = self.faults.iter().map(|f| f.at);
        steps.chain(faults).max().unwrap_or_default()
    }

    /// A copy with every call id shifted by `call_offset` and every participant id by
    /// `participant_offset` (timeline, recordings and expectations alike), so that the same
    /// scenario can be played again, or next to another one, on one simulator: call ids and live
    /// participant ids must be unique on a PBX.
    pub fn renumbered(&self, call_offset: u64, participant_offset: u64) -> Scenario {
        let mut out = self.clone();
        out.shift(call_offset, participant_offset);
        out
    }

    fn shift(&mut self, call_offset: u64, participant_offset: u64) {
        self.offsets.0 += call_offset;
        self.offsets.1 += participant_offset;
        for step in &mut self.timeline {
            match &mut step.change {
                ParticipantChange::Upsert(value) => {
                    shift(&mut value["id"], participant_offset);
                    shift(&mut value["callid"], call_offset);
                }
                ParticipantChange::Remove { participant_id, .. } => {
                    *participant_id += participant_offset;
                }
            }
        }
        for part in &mut self.recordings {
            part.callid += call_offset;
        }
        for expectation in &mut self.expected {
            expectation.call += call_offset;
        }
    }
}

fn shift(value: &mut serde_json::Value, offset: u64) {
    if let Some(n) = value.as_u64() {
        *value = (n + offset).into();
    }
}
