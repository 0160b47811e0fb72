//! Playing a scenario against the running simulator, in scaled real time.
//!
//! The player merges the scenario's participant changes, scheduled faults and recording
//! publications into one agenda ordered by scaled time; at equal times faults come first (so a
//! switch set at `t` affects the changes at `t`), then changes in timeline order, then
//! recordings. It sleeps until each item's instant and applies it. Periods and delays that model
//! the network or 3CX's timers (`repeat_unconnected`, `get_delay`) are wall-clock and not
//! scaled; `repeat_connected` and `refuse_upgrades` are scenario time and scaled. Inbound legs
//! originated by the default client's route point are renamed to the simulator's client id.
//! Wall-clock times of
//! recordings are the play's start plus the scaled scenario times, matching what a client
//! watching the socket measures.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::time::Instant;

use crate::scenario::{ROUTE_POINT, RecordingPart};
use crate::state::Shared;
use crate::{FaultAction, ParticipantChange, Scenario};

/// The shortest repeat period a scaled scenario may ask for, so a fast replay cannot flood.
const MIN_REPEAT: Duration = Duration::from_millis(1);

enum Item<'a> {
    Fault(&'a FaultAction),
    Change(&'a ParticipantChange),
    Recording(&'a RecordingPart),
}

impl Item<'_> {
    /// Order among items due at the same instant.
    fn rank(&self) -> u8 {
        match self {
            Item::Fault(_) => 0,
            Item::Change(_) => 1,
            Item::Recording(_) => 2,
        }
    }
}

/// Plays `scenario` on `shared`; see [`crate::SimHandle::play`].
pub(crate) async fn play(
    shared: &Arc<Shared>,
    scenario: &Scenario,
    time_scale: f64,
) -> anyhow::Result<()> {
    anyhow::ensure!(
        time_scale.is_finite() && time_scale > 0.0,
        "time_scale must be a positive number, not {time_scale}"
    );
    let scale = |d: Duration| d.mul_f64(time_scale);
    shared.add_directory(&scenario.directory());
    let mut timeline = scenario.timeline();
    if shared.config.client_id != ROUTE_POINT {
        for step in &mut timeline {
            rename_route_point(&mut step.change, &shared.config.client_id);
        }
    }
    let mut agenda: Vec<(Duration, Item)> = Vec::new();
    agenda.extend(
        scenario
            .fault_schedule()
            .iter()
            .map(|f| (scale(f.at), Item::Fault(&f.action))),
    );
    agenda.extend(
        timeline
            .iter()
            .map(|s| (scale(s.at), Item::Change(&s.change))),
    );
    let delay = shared.config.recording_delay;
    agenda.extend(
        scenario
            .recording_parts()
            .iter()
            .map(|p| (scale(p.call_end) + delay, Item::Recording(p))),
    );
    // Stable: items of one kind keep their order.
    agenda.sort_by_key(|(at, item)| (*at, item.rank()));

    let start = Instant::now();
    let wall = SystemTime::now();
    for (at, item) in agenda {
        tokio::time::sleep_until(start + at).await;
        match item {
            Item::Fault(action) => apply_fault(shared, action, scale),
            Item::Change(change) => shared.apply(change),
            Item::Recording(part) => {
                shared.publish_recording(
                    part,
                    wall + scale(part.talk_start),
                    wall + scale(part.talk_end),
                )?;
            }
        }
    }
    Ok(())
}

/// Inbound legs name the route point of the default client id as their origin; on a simulator
/// with another client id they name its route point.
fn rename_route_point(change: &mut ParticipantChange, client_id: &str) {
    if let ParticipantChange::Upsert(participant) = change
        && participant["originated_by_dn"] == ROUTE_POINT
        && participant["originated_by_type"] == "Wroutepoint"
    {
        participant["originated_by_dn"] = client_id.into();
    }
}

fn apply_fault(shared: &Shared, action: &FaultAction, scale: impl Fn(Duration) -> Duration) {
    let faults = &shared.faults;
    match action {
        FaultAction::DropSockets => faults.drop_sockets(),
        FaultAction::RefuseUpgrades(window) => faults.refuse_upgrades_for(scale(*window)),
        FaultAction::DuplicateUpserts(on) => faults.duplicate_upserts(*on),
        FaultAction::RepeatConnected(period) => {
            faults.repeat_connected(period.map(|p| scale(p).max(MIN_REPEAT)));
        }
        FaultAction::SkipSequence => faults.skip_sequence(),
        FaultAction::MalformedFrame => faults.malformed_frame(),
        FaultAction::UnknownEventType => faults.unknown_event_type(),
        FaultAction::VanishNextUpsert => faults.vanish_next_upsert(),
        FaultAction::SupersedeToken => faults.supersede_token(),
        FaultAction::RepeatUnconnected(period) => faults.repeat_unconnected(*period),
        FaultAction::GetDelay(delay) => faults.get_delay(*delay),
        FaultAction::AbnormalClose => faults.abnormal_close(),
        FaultAction::CloseOnNewToken(close) => faults.close_on_new_token(*close),
        FaultAction::Nulls(nulls) => faults.nulls(*nulls),
        FaultAction::UnusableParticipants(on) => faults.unusable_participants(*on),
        FaultAction::ForbidParticipantsOf(dn) => faults.forbid_participants_of(dn),
        FaultAction::ForbidXapi(on) => faults.forbid_xapi(*on),
        FaultAction::NullRecordingField(field) => faults.null_recording_field(*field),
        FaultAction::NonParticipantFrames(dn) => faults.non_participant_frames(dn),
    }
}
