//! The replay loop that feeds a recorded or scripted series of the connector's changes through
//! an engine, and where such series come from (a capture file, a simulator scenario):
//! `callhook replay`, `callhook plugin test`, the scenario tests and the engine benchmark share
//! it.

use crate::callcontrol::{Change, Dn};
use crate::callcontrol::{DnType, Participant};
use crate::calls::{Engine, event::CallEvent};
use callhook_simulator::{ParticipantChange, Scenario};

/// How long after the last change a replay lets the clock run, so that every grace period
/// runs out as it would have after the recording ended.
const SETTLE: jiff::SignedDuration = jiff::SignedDuration::from_hours(24);

/// Feeds changes through an engine, each at its own time.
pub struct Replayer {
    engine: Engine,
    last: Option<jiff::Timestamp>,
}

impl Replayer {
    /// A replay through `engine`.
    pub fn new(engine: Engine) -> Self {
        Replayer { engine, last: None }
    }

    /// Applies `change` at the time it was seen; the events it caused.
    pub fn apply(&mut self, change: Change) -> Vec<CallEvent> {
        let at = change.at();
        self.last = Some(at);
        self.engine.apply(change).events
    }

    /// Lets every grace period run out (a day after the last change); the events that causes,
    /// and the engine.
    pub fn finish(mut self) -> (Vec<CallEvent>, Engine) {
        let events = match self.last {
            Some(last) => self.engine.tick(last + SETTLE).events,
            None => Vec::new(),
        };
        (events, self.engine)
    }

    /// Every event `changes` cause through `engine`, the grace periods run out at the end.
    pub fn all(engine: Engine, changes: impl IntoIterator<Item = Change>) -> Vec<CallEvent> {
        let mut replayer = Replayer::new(engine);
        let mut events: Vec<CallEvent> = changes
            .into_iter()
            .flat_map(|change| replayer.apply(change))
            .collect();
        events.extend(replayer.finish().0);
        events
    }
}

/// The changes of a capture written by `callhook run --capture`, read as they are needed.
pub fn read_capture(
    file: &std::path::Path,
) -> anyhow::Result<impl Iterator<Item = anyhow::Result<Change>>> {
    use anyhow::Context;
    let reader = std::fs::File::open(file)
        .with_context(|| format!("while opening the capture {}", file.display()))?;
    let name = file.display().to_string();
    Ok(crate::pbx::Replay::new(std::io::BufReader::new(reader))
        .map(move |change| change.with_context(|| format!("while reading {name}"))))
}

/// A simulator scenario's participant changes as the connector would report them, the
/// scenario starting at `start`: a snapshot of its directory, then each upsert and remove.
pub fn scenario_changes(scenario: &Scenario, start: jiff::Timestamp) -> Vec<Change> {
    let dns = scenario
        .directory()
        .into_iter()
        .map(|entry| Dn {
            dn: entry.dn,
            dn_type: serde_json::from_value(serde_json::Value::String(entry.dn_type))
                .unwrap_or(DnType::Unknown),
        })
        .collect();
    let mut changes = vec![Change::Snapshot {
        at: start,
        dns,
        participants: Vec::new(),
    }];
    for step in scenario.timeline() {
        let at = start + jiff::SignedDuration::try_from(step.at).unwrap_or_default();
        changes.push(match step.change {
            ParticipantChange::Upsert(json) => Change::Upsert {
                at,
                participant: serde_json::from_value::<Participant>(json).unwrap_or_default(),
            },
            ParticipantChange::Remove { dn, participant_id } => Change::Remove {
                at,
                dn,
                participant_id,
            },
        });
    }
    changes
}
