//! The scenario file format: raw serde tables, then typed declarations and steps.
//!
//! Every raw table is `deny_unknown_fields` and wrapped in [`Spanned`], so that any error can
//! name its line. Step tables share one flat shape (`at`, `action` and the keys the actions
//! use); [`step`] checks that a step carries exactly the keys its action takes, so a misplaced
//! key is an error rather than silently ignored. `scenarios/README.md` documents the format for
//! people; keep the two in step.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::{Expectation, FaultAction, ScenarioError, ScheduledFault, TransferOrder};
use crate::faults::{Nulls, RecordingField, SocketClose};

/// The DN types of `3cx-api.md` section 2 that a scenario may declare.
const DN_TYPES: &[&str] = &[
    "Wextension",
    "Wqueue",
    "Wringgroup",
    "Wivr",
    "Wroutepoint",
    "Wexternalline",
    "Wspecialmenu",
    "Wfax",
    "Wconference",
    "Wparking",
];

/// The webhook fields of `call-events.md` section 3 an `[[expect]]` table may pin down.
const EXPECT_FIELDS: &[&str] = &[
    "event",
    "callerid",
    "did",
    "user",
    "usertype",
    "trtype",
    "finishtype",
    "transfer",
    "duration",
    "title",
];

/// The call event names of `call-events.md` section 3 (the recording event is not a call event).
const EVENTS: &[&str] = &[
    "ringing",
    "dialing",
    "incomingcall_started",
    "outgoingcall_started",
    "incoming",
    "outgoing",
];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScenario {
    name: Option<String>,
    #[serde(default)]
    description: String,
    #[serde(default = "default_first_participant_id")]
    first_participant_id: u64,
    #[serde(default)]
    dn: Vec<Spanned<RawDn>>,
    #[serde(default)]
    call: Vec<Spanned<RawCall>>,
    #[serde(default)]
    fault: Vec<Spanned<RawFault>>,
    #[serde(default)]
    expect: Vec<Spanned<BTreeMap<String, Spanned<toml::Value>>>>,
}

fn default_first_participant_id() -> u64 {
    8000
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDn {
    dn: String,
    #[serde(rename = "type", default = "default_dn_type")]
    dn_type: Spanned<String>,
    #[serde(default)]
    name: String,
    #[serde(default = "yes")]
    monitored: bool,
}

fn default_dn_type() -> Spanned<String> {
    Spanned::new(0..0, "Wextension".to_owned())
}

fn yes() -> bool {
    true
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCall {
    callid: u64,
    external: String,
    external_name: Option<String>,
    #[serde(default = "default_trunk")]
    trunk: String,
    #[serde(default)]
    did: String,
    #[serde(default = "yes")]
    record: bool,
    #[serde(default)]
    step: Vec<Spanned<RawStep>>,
}

fn default_trunk() -> String {
    "10007".to_owned()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStep {
    at: Spanned<f64>,
    action: ActionName,
    dn: Option<Spanned<String>>,
    dns: Option<Spanned<Vec<String>>>,
    to: Option<Spanned<String>>,
    via: Option<Spanned<String>>,
    callid: Option<Spanned<u64>>,
    order: Option<Spanned<TransferOrder>>,
}

#[derive(Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
enum ActionName {
    Ring,
    Enter,
    Answer,
    StopRinging,
    Dial,
    RemoteAnswer,
    Hold,
    Resume,
    Leave,
    Hangup,
    BlindTransfer,
    Consult,
    ConsultAnswer,
    CompleteTransfer,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFault {
    at: Spanned<f64>,
    action: FaultName,
    on: Option<bool>,
    every_ms: Option<u64>,
    ms: Option<u64>,
    seconds: Option<Spanned<f64>>,
    dn: Option<String>,
    mode: Option<String>,
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "snake_case")]
enum FaultName {
    DropSockets,
    RefuseUpgrades,
    DuplicateUpserts,
    RepeatConnected,
    SkipSequence,
    MalformedFrame,
    UnknownEventType,
    VanishNextUpsert,
    SupersedeToken,
    RepeatUnconnected,
    GetDelay,
    AbnormalClose,
    CloseOnNewToken,
    Nulls,
    UnusableParticipants,
    ForbidParticipantsOf,
    ForbidXapi,
    NullRecordingField,
    NonParticipantFrames,
}

/// A scenario after parsing, before expansion.
#[derive(Debug)]
pub(super) struct Parsed {
    pub name: Option<String>,
    pub description: String,
    pub first_participant_id: u64,
    pub dns: Vec<DnDecl>,
    pub calls: Vec<CallDecl>,
    pub faults: Vec<ScheduledFault>,
    pub expected: Vec<Expectation>,
}

/// A declared DN.
#[derive(Debug)]
pub(super) struct DnDecl {
    pub dn: String,
    pub dn_type: String,
    pub name: String,
    pub monitored: bool,
}

/// A declared call with its external party and steps.
#[derive(Debug)]
pub(super) struct CallDecl {
    pub callid: u64,
    pub line: usize,
    pub external: External,
    pub record: bool,
    pub steps: Vec<Step>,
}

/// The external party of a call.
#[derive(Debug)]
pub(super) struct External {
    pub number: String,
    pub name: String,
    pub trunk: String,
    pub did: String,
}

/// One timed step of a call.
#[derive(Debug)]
pub(super) struct Step {
    pub at: Duration,
    pub line: usize,
    pub action: Action,
}

/// The high-level actions; `expand` gives each its participant changes.
#[derive(Debug)]
pub(super) enum Action {
    Ring {
        dns: Vec<String>,
        via: Option<String>,
    },
    Enter {
        dn: String,
    },
    Answer {
        dn: String,
    },
    StopRinging {
        dns: Option<Vec<String>>,
    },
    Dial {
        dn: String,
    },
    RemoteAnswer,
    Hold {
        dn: String,
    },
    Resume {
        dn: String,
    },
    Leave {
        dn: String,
    },
    Hangup,
    BlindTransfer {
        dn: String,
        to: String,
        order: TransferOrder,
    },
    Consult {
        dn: String,
        to: String,
        callid: u64,
    },
    ConsultAnswer,
    CompleteTransfer {
        dn: String,
        order: TransferOrder,
    },
}

/// An error at a line and key, before the file name is known.
#[derive(Debug)]
pub(super) struct Invalid {
    pub line: usize,
    pub key: String,
    pub message: String,
}

impl Invalid {
    pub fn new(line: usize, key: &str, message: impl Into<String>) -> Invalid {
        Invalid {
            line,
            key: key.to_owned(),
            message: message.into(),
        }
    }

    pub fn in_file(self, file: &str) -> ScenarioError {
        ScenarioError::Invalid {
            file: file.to_owned(),
            line: self.line,
            key: self.key,
            message: self.message,
        }
    }
}

/// Turns byte offsets into 1-based line numbers (binary search over line starts, so that big
/// generated scenarios stay fast).
struct Lines(Vec<usize>);

impl Lines {
    fn new(text: &str) -> Lines {
        let starts = std::iter::once(0).chain(text.match_indices('\n').map(|(i, _)| i + 1));
        Lines(starts.collect())
    }

    fn of(&self, span: Range<usize>) -> usize {
        self.0.partition_point(|&start| start <= span.start)
    }
}

/// Parses and type-checks a scenario text; `file` names it in errors.
pub(super) fn parse(text: &str, file: &str) -> Result<Parsed, ScenarioError> {
    let lines = Lines::new(text);
    let raw: RawScenario = toml::from_str(text).map_err(|e| ScenarioError::Syntax {
        file: file.to_owned(),
        line: e.span().map_or(1, |s| lines.of(s)),
        message: e.message().trim().to_owned(),
    })?;
    resolve(raw, &lines).map_err(|e| e.in_file(file))
}

fn resolve(raw: RawScenario, lines: &Lines) -> Result<Parsed, Invalid> {
    let mut dns = Vec::new();
    let mut seen = BTreeSet::new();
    for spanned in raw.dn {
        let line = lines.of(spanned.span());
        let d = spanned.into_inner();
        if !seen.insert(d.dn.clone()) {
            return Err(Invalid::new(
                line,
                "dn",
                format!("DN {} is declared twice", d.dn),
            ));
        }
        if !DN_TYPES.contains(&d.dn_type.get_ref().as_str()) {
            return Err(Invalid::new(
                lines.of(d.dn_type.span()).max(line),
                "type",
                format!(
                    "unknown DN type `{}` (one of {})",
                    d.dn_type.get_ref(),
                    DN_TYPES.join(", ")
                ),
            ));
        }
        dns.push(DnDecl {
            name: if d.name.is_empty() {
                d.dn.clone()
            } else {
                d.name
            },
            dn: d.dn,
            dn_type: d.dn_type.into_inner(),
            monitored: d.monitored,
        });
    }

    let mut calls = Vec::new();
    for spanned in raw.call {
        let line = lines.of(spanned.span());
        let c = spanned.into_inner();
        if calls
            .iter()
            .any(|other: &CallDecl| other.callid == c.callid)
        {
            return Err(Invalid::new(
                line,
                "callid",
                format!("call {} is declared twice", c.callid),
            ));
        }
        if c.step.is_empty() {
            return Err(Invalid::new(
                line,
                "step",
                format!("call {} has no steps", c.callid),
            ));
        }
        let mut steps: Vec<Step> = Vec::new();
        for raw_step in c.step {
            let s = step(raw_step, lines)?;
            if let Some(previous) = steps.last()
                && s.at < previous.at
            {
                return Err(Invalid::new(
                    s.line,
                    "at",
                    "steps of a call must be in time order",
                ));
            }
            steps.push(s);
        }
        calls.push(CallDecl {
            callid: c.callid,
            line,
            external: External {
                name: c.external_name.unwrap_or_else(|| e164(&c.external)),
                number: c.external,
                trunk: c.trunk,
                did: c.did,
            },
            record: c.record,
            steps,
        });
    }

    let mut faults = raw
        .fault
        .into_iter()
        .map(|f| fault(f, lines))
        .collect::<Result<Vec<_>, _>>()?;
    faults.sort_by_key(|f| f.at);

    let expected = raw
        .expect
        .into_iter()
        .map(|e| expectation(e, lines, &calls))
        .collect::<Result<Vec<_>, _>>()?;

    Ok(Parsed {
        name: raw.name,
        description: raw.description,
        first_participant_id: raw.first_participant_id,
        dns,
        calls,
        faults,
        expected,
    })
}

/// The number as 3CX writes caller names of external parties: with a leading `+`.
fn e164(number: &str) -> String {
    if number.starts_with('+') {
        number.to_owned()
    } else {
        format!("+{number}")
    }
}

fn seconds(value: &Spanned<f64>, lines: &Lines, key: &str) -> Result<Duration, Invalid> {
    Duration::try_from_secs_f64(*value.get_ref()).map_err(|_| {
        Invalid::new(
            lines.of(value.span()),
            key,
            "must be a finite number of seconds, at least 0",
        )
    })
}

/// Which keys (besides `at` and `action`) each action takes: (required, optional).
fn keys_of(action: ActionName) -> (&'static [&'static str], &'static [&'static str]) {
    use ActionName::*;
    match action {
        Ring => (&[], &["dn", "dns", "via"]),
        Enter | Answer | Dial | Hold | Resume | Leave => (&["dn"], &[]),
        StopRinging => (&[], &["dn", "dns"]),
        RemoteAnswer | Hangup | ConsultAnswer => (&[], &[]),
        BlindTransfer => (&["dn", "to"], &["order"]),
        Consult => (&["dn", "to", "callid"], &[]),
        CompleteTransfer => (&["dn"], &["order"]),
    }
}

fn step(spanned: Spanned<RawStep>, lines: &Lines) -> Result<Step, Invalid> {
    let line = lines.of(spanned.span());
    let s = spanned.into_inner();
    let at = seconds(&s.at, lines, "at")?;
    let present: [(&str, Option<Range<usize>>); 6] = [
        ("dn", s.dn.as_ref().map(Spanned::span)),
        ("dns", s.dns.as_ref().map(Spanned::span)),
        ("to", s.to.as_ref().map(Spanned::span)),
        ("via", s.via.as_ref().map(Spanned::span)),
        ("callid", s.callid.as_ref().map(Spanned::span)),
        ("order", s.order.as_ref().map(Spanned::span)),
    ];
    let (required, optional) = keys_of(s.action);
    let action_name = format!("{:?}", s.action);
    for (key, span) in &present {
        if let Some(span) = span
            && !required.contains(key)
            && !optional.contains(key)
        {
            return Err(Invalid::new(
                lines.of(span.clone()),
                key,
                format!("does not apply to action `{}`", snake(&action_name)),
            ));
        }
    }
    for key in required {
        if present.iter().any(|(k, span)| k == key && span.is_none()) {
            return Err(Invalid::new(
                line,
                key,
                format!("missing; action `{}` needs it", snake(&action_name)),
            ));
        }
    }
    let dn = s.dn.map(Spanned::into_inner);
    let dns = s.dns.map(Spanned::into_inner);
    if dn.is_some() && dns.is_some() {
        return Err(Invalid::new(
            line,
            "dns",
            "give either `dn` or `dns`, not both",
        ));
    }
    let one_or_many = dn.map(|d| vec![d]).or(dns);
    let to = s.to.map(Spanned::into_inner).unwrap_or_default();
    // 3CX shows a blind transfer's new leg before it removes the holder's; an attended
    // transfer's holder leaves both calls before the target appears connected.
    let default_order = match s.action {
        ActionName::BlindTransfer => TransferOrder::JoinFirst,
        _ => TransferOrder::LeaveFirst,
    };
    let order = s.order.map(Spanned::into_inner).unwrap_or(default_order);
    let dn = || {
        one_or_many
            .clone()
            .and_then(|v| v.into_iter().next())
            .unwrap_or_default()
    };
    let action = match s.action {
        ActionName::Ring => Action::Ring {
            dns: one_or_many
                .clone()
                .filter(|v| !v.is_empty())
                .ok_or_else(|| Invalid::new(line, "dn", "action `ring` needs `dn` or `dns`"))?,
            via: s.via.map(Spanned::into_inner),
        },
        ActionName::Enter => Action::Enter { dn: dn() },
        ActionName::Answer => Action::Answer { dn: dn() },
        ActionName::StopRinging => Action::StopRinging {
            dns: one_or_many.clone(),
        },
        ActionName::Dial => Action::Dial { dn: dn() },
        ActionName::RemoteAnswer => Action::RemoteAnswer,
        ActionName::Hold => Action::Hold { dn: dn() },
        ActionName::Resume => Action::Resume { dn: dn() },
        ActionName::Leave => Action::Leave { dn: dn() },
        ActionName::Hangup => Action::Hangup,
        ActionName::BlindTransfer => Action::BlindTransfer {
            dn: dn(),
            to,
            order,
        },
        ActionName::Consult => Action::Consult {
            dn: dn(),
            to,
            callid: s.callid.map(Spanned::into_inner).unwrap_or_default(),
        },
        ActionName::ConsultAnswer => Action::ConsultAnswer,
        ActionName::CompleteTransfer => Action::CompleteTransfer { dn: dn(), order },
    };
    Ok(Step { at, line, action })
}

/// `BlindTransfer` → `blind_transfer`, for messages.
fn snake(camel: &str) -> String {
    let mut out = String::new();
    for (i, c) in camel.chars().enumerate() {
        if c.is_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_lowercase());
    }
    out
}

/// Which keys (besides `at` and `action`) each fault action takes; every one is required.
fn fault_keys(action: FaultName) -> &'static [&'static str] {
    use FaultName::*;
    match action {
        RefuseUpgrades => &["seconds"],
        DuplicateUpserts | UnusableParticipants | ForbidXapi => &["on"],
        RepeatConnected | RepeatUnconnected => &["every_ms"],
        GetDelay => &["ms"],
        CloseOnNewToken | Nulls | NullRecordingField => &["mode"],
        ForbidParticipantsOf | NonParticipantFrames => &["dn"],
        DropSockets | SkipSequence | MalformedFrame | UnknownEventType | VanishNextUpsert
        | SupersedeToken | AbnormalClose => &[],
    }
}

/// A `mode` value: one of `choices` (name, value), else an error listing them.
fn mode<T: Copy>(line: usize, given: &str, choices: &[(&str, T)]) -> Result<T, Invalid> {
    choices
        .iter()
        .find(|(name, _)| *name == given)
        .map(|(_, value)| *value)
        .ok_or_else(|| {
            let names: Vec<&str> = choices.iter().map(|(name, _)| *name).collect();
            Invalid::new(
                line,
                "mode",
                format!("unknown mode `{given}` (one of {})", names.join(", ")),
            )
        })
}

fn fault(spanned: Spanned<RawFault>, lines: &Lines) -> Result<ScheduledFault, Invalid> {
    let line = lines.of(spanned.span());
    let f = spanned.into_inner();
    let at = seconds(&f.at, lines, "at")?;
    // Like steps, a fault table carries exactly the keys its action takes.
    let takes = fault_keys(f.action);
    let given = [
        ("on", f.on.is_some()),
        ("every_ms", f.every_ms.is_some()),
        ("ms", f.ms.is_some()),
        ("seconds", f.seconds.is_some()),
        ("dn", f.dn.is_some()),
        ("mode", f.mode.is_some()),
    ];
    for (key, present) in given {
        if present && !takes.contains(&key) {
            return Err(Invalid::new(
                line,
                key,
                "does not apply to this fault action",
            ));
        }
        if !present && takes.contains(&key) {
            return Err(Invalid::new(line, key, "missing for this fault action"));
        }
    }
    let on = f.on.unwrap_or_default();
    let every = f
        .every_ms
        .and_then(|ms| (ms > 0).then(|| Duration::from_millis(ms)));
    let dn = f.dn.unwrap_or_default();
    let given_mode = f.mode.unwrap_or_default();
    let action = match f.action {
        FaultName::DropSockets => FaultAction::DropSockets,
        FaultName::RefuseUpgrades => {
            let window = f.seconds.as_ref().expect("checked above");
            FaultAction::RefuseUpgrades(seconds(window, lines, "seconds")?)
        }
        FaultName::DuplicateUpserts => FaultAction::DuplicateUpserts(on),
        FaultName::RepeatConnected => FaultAction::RepeatConnected(every),
        FaultName::RepeatUnconnected => FaultAction::RepeatUnconnected(every),
        FaultName::GetDelay => {
            FaultAction::GetDelay(Duration::from_millis(f.ms.unwrap_or_default()))
        }
        FaultName::SkipSequence => FaultAction::SkipSequence,
        FaultName::MalformedFrame => FaultAction::MalformedFrame,
        FaultName::UnknownEventType => FaultAction::UnknownEventType,
        FaultName::VanishNextUpsert => FaultAction::VanishNextUpsert,
        FaultName::SupersedeToken => FaultAction::SupersedeToken,
        FaultName::AbnormalClose => FaultAction::AbnormalClose,
        FaultName::CloseOnNewToken => FaultAction::CloseOnNewToken(mode(
            line,
            &given_mode,
            &[
                ("off", None),
                ("clean", Some(SocketClose::Clean)),
                ("abnormal", Some(SocketClose::Abnormal)),
            ],
        )?),
        FaultName::Nulls => FaultAction::Nulls(mode(
            line,
            &given_mode,
            &[
                ("off", Nulls::Off),
                ("null", Nulls::Null),
                ("missing", Nulls::Missing),
            ],
        )?),
        FaultName::NullRecordingField => FaultAction::NullRecordingField(mode(
            line,
            &given_mode,
            &[
                ("off", None),
                ("recording_url", Some(RecordingField::RecordingUrl)),
                ("call_type", Some(RecordingField::CallType)),
                ("end_time", Some(RecordingField::EndTime)),
            ],
        )?),
        FaultName::UnusableParticipants => FaultAction::UnusableParticipants(on),
        FaultName::ForbidParticipantsOf => FaultAction::ForbidParticipantsOf(dn),
        FaultName::ForbidXapi => FaultAction::ForbidXapi(on),
        FaultName::NonParticipantFrames => FaultAction::NonParticipantFrames(dn),
    };
    Ok(ScheduledFault { at, action })
}

fn expectation(
    spanned: Spanned<BTreeMap<String, Spanned<toml::Value>>>,
    lines: &Lines,
    calls: &[CallDecl],
) -> Result<Expectation, Invalid> {
    let line = lines.of(spanned.span());
    let mut call = None;
    let mut link = None;
    let mut fields = BTreeMap::new();
    for (key, value) in spanned.into_inner() {
        let at = lines.of(value.span());
        let value = value.into_inner();
        match key.as_str() {
            "call" | "link" => {
                let n = value
                    .as_integer()
                    .and_then(|n| u64::try_from(n).ok())
                    .ok_or_else(|| Invalid::new(at, &key, "must be a non-negative integer"))?;
                if key == "call" {
                    call = Some(n);
                } else {
                    link = Some(u32::try_from(n).map_err(|_| Invalid::new(at, &key, "too large"))?);
                }
            }
            k if EXPECT_FIELDS.contains(&k) => {
                let text = match value {
                    toml::Value::String(s) => s,
                    toml::Value::Integer(n) => n.to_string(),
                    toml::Value::Boolean(b) => b.to_string(),
                    _ => {
                        return Err(Invalid::new(
                            at,
                            &key,
                            "must be a string, integer or boolean",
                        ));
                    }
                };
                if k == "event" && !EVENTS.contains(&text.as_str()) {
                    return Err(Invalid::new(
                        at,
                        &key,
                        format!("unknown event `{text}` (one of {})", EVENTS.join(", ")),
                    ));
                }
                fields.insert(key, text);
            }
            _ => {
                return Err(Invalid::new(
                    at,
                    &key,
                    format!(
                        "unknown key; use call, link or one of {}",
                        EXPECT_FIELDS.join(", ")
                    ),
                ));
            }
        }
    }
    let call = call.ok_or_else(|| Invalid::new(line, "call", "missing"))?;
    let link = link.ok_or_else(|| Invalid::new(line, "link", "missing"))?;
    if !fields.contains_key("event") {
        return Err(Invalid::new(line, "event", "missing"));
    }
    if !calls.iter().any(|c| c.callid == call) {
        return Err(Invalid::new(
            line,
            "call",
            format!("no `[[call]]` has callid {call}"),
        ));
    }
    Ok(Expectation { call, link, fields })
}
