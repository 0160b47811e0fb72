//! Participant fetches: concurrent across participants, one at a time per participant, repeats
//! folded, results handed on in the order of the frames that caused them.
//!
//! A socket frame carries no state, so every upsert costs a `GET` of its participant. 3CX
//! repeats the upsert of a leg about every 750 ms until it is `Connected` (`3cx-api.md`,
//! section 3): a queue ringing 10 agents for 30 s sends some 400 frames. Fetched one after the
//! other against a PBX that answers in 50 ms, they would queue up for 20 s and an answered call
//! would be reported long after the fact. So:
//!
//! - **Concurrent, bounded.** Fetches of different participants run at the same time, at most
//!   [`super::ConnectorConfig::fetch_concurrency`] of them, each as its own task.
//! - **One at a time per participant.** A participant's next fetch starts only when its previous
//!   one has answered, so its replies come back in order.
//! - **Repeats fold.** An upsert of a participant whose follow-up fetch is still waiting to start
//!   joins that fetch (it moves the fetch's frame time to its own): however many repeats arrive
//!   while one fetch is in flight, they cost one more fetch, which reads the latest state.
//! - **Frame order out.** Each upsert that is not folded and each remove takes a slot in a queue
//!   in frame order; a slot leaves the queue only when it is at the front and decided (its fetch
//!   answered, or it is a remove). A slow reply holds back the slots behind it for at most one
//!   round trip, and the engine sees changes in the order the PBX announced them.
//! - **A remove cancels a waiting fetch** of the same participant: it would only answer `404`.
//!
//! This type does no I/O of its own beyond starting fetches through the [`RestClient`]; the
//! session drives it ([`Fetches::answered`]) and hands on what [`Fetches::pop_ready`] yields.

use std::collections::{HashMap, VecDeque};

use jiff::Timestamp;
use tokio::task::JoinSet;

use super::rest::{FetchedParticipant, RestClient, RestError};
use super::socket::{Entity, Received};
use super::stats::ConnectorStats;

/// A decided slot, ready to be handed on, in frame order.
#[derive(Debug)]
pub(super) enum Ready {
    /// A participant's fetch answered; `frame_at` is the time of the newest upsert frame it
    /// answers.
    Fetched {
        /// The reply.
        fetched: Box<FetchedParticipant>,
        /// The newest frame's time.
        frame_at: Timestamp,
    },
    /// A remove frame.
    Removed {
        /// The participant.
        entity: Entity,
        /// The frame as received.
        frame: Received,
    },
}

/// One place in the output order.
#[derive(Debug)]
enum Slot {
    Fetch {
        entity: Entity,
        frame_at: Timestamp,
        state: FetchState,
    },
    Remove {
        entity: Entity,
        frame: Received,
    },
    /// A waiting fetch that a remove of its participant made pointless.
    Cancelled,
}

#[derive(Debug)]
enum FetchState {
    Waiting,
    Running,
    Answered(Box<FetchedParticipant>),
}

/// What is going on for one participant: its running fetch and its waiting follow-up, by slot
/// number.
#[derive(Debug, Default)]
struct PerParticipant {
    running: Option<u64>,
    waiting: Option<u64>,
}

/// The ordered, concurrent participant fetches of one session.
pub(super) struct Fetches {
    rest: RestClient,
    stats: std::sync::Arc<ConnectorStats>,
    limit: usize,
    /// Slots in frame order; the front one has number `front`.
    slots: VecDeque<Slot>,
    front: u64,
    /// Waiting fetch slots in the order they were made.
    waiting: VecDeque<u64>,
    participants: HashMap<Entity, PerParticipant>,
    running: JoinSet<(u64, Result<FetchedParticipant, RestError>)>,
}

impl Fetches {
    /// No fetches yet; at most `limit` (at least 1) will run at once.
    pub(super) fn new(
        rest: RestClient,
        stats: std::sync::Arc<ConnectorStats>,
        limit: usize,
    ) -> Fetches {
        Fetches {
            rest,
            stats,
            limit: limit.max(1),
            slots: VecDeque::new(),
            front: 0,
            waiting: VecDeque::new(),
            participants: HashMap::new(),
            running: JoinSet::new(),
        }
    }

    /// Whether every slot has been handed on.
    pub(super) fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// An upsert frame of `entity` arrived at `frame_at`: fold it into the participant's
    /// waiting fetch, or queue a new one.
    pub(super) fn upsert(&mut self, entity: Entity, frame_at: Timestamp) {
        let waiting = self
            .participants
            .get(&entity)
            .and_then(|participant| participant.waiting);
        if let Some(number) = waiting {
            if let Some(Slot::Fetch { frame_at: at, .. }) = self.slot_mut(number) {
                *at = frame_at;
            }
            self.stats.count_fetch_folded();
            return;
        }
        let number = self.push(Slot::Fetch {
            entity: entity.clone(),
            frame_at,
            state: FetchState::Waiting,
        });
        self.participants.entry(entity).or_default().waiting = Some(number);
        self.waiting.push_back(number);
        self.start_more();
    }

    /// A remove frame of `entity`: it takes its place in the order, and a fetch of the same
    /// participant that has not started yet is cancelled.
    pub(super) fn remove(&mut self, entity: Entity, frame: Received) {
        if let Some(participant) = self.participants.get_mut(&entity)
            && let Some(number) = participant.waiting.take()
        {
            self.waiting.retain(|&waiting| waiting != number);
            if let Some(slot) = self.slot_mut(number) {
                *slot = Slot::Cancelled;
            }
            self.stats.count_fetch_skipped();
            self.forget_if_idle(&entity);
        }
        self.push(Slot::Remove { entity, frame });
    }

    /// Waits for the next fetch to answer and records its reply (then starts the fetches that
    /// were waiting for room). Pending forever while nothing runs, so it can sit in a
    /// `select!`. A fetch that failed (transport, `5xx`, `401` twice) ends the session.
    pub(super) async fn answered(&mut self) -> Result<(), RestError> {
        let Some(joined) = self.running.join_next().await else {
            return std::future::pending().await;
        };
        let (number, result) = joined.expect("participant fetches neither panic nor get aborted");
        let fetched = result?;
        let Some(Slot::Fetch { entity, state, .. }) = self.slot_mut(number) else {
            unreachable!("a running fetch keeps its slot until it answers");
        };
        *state = FetchState::Answered(Box::new(fetched));
        let entity = entity.clone();
        if let Some(participant) = self.participants.get_mut(&entity) {
            participant.running = None;
        }
        self.forget_if_idle(&entity);
        self.start_more();
        Ok(())
    }

    /// The front slot, if it is decided. Cancelled slots are passed over.
    pub(super) fn pop_ready(&mut self) -> Option<Ready> {
        loop {
            let decided = match self.slots.front()? {
                Slot::Fetch { state, .. } => matches!(state, FetchState::Answered(_)),
                Slot::Remove { .. } | Slot::Cancelled => true,
            };
            if !decided {
                return None;
            }
            let slot = self.slots.pop_front().expect("the front slot exists");
            self.front += 1;
            match slot {
                Slot::Fetch {
                    frame_at,
                    state: FetchState::Answered(fetched),
                    ..
                } => return Some(Ready::Fetched { fetched, frame_at }),
                Slot::Remove { entity, frame } => return Some(Ready::Removed { entity, frame }),
                Slot::Cancelled | Slot::Fetch { .. } => {}
            }
        }
    }

    /// Starts waiting fetches, oldest first, while there is room and their participant has no
    /// fetch running.
    fn start_more(&mut self) {
        let mut index = 0;
        while self.running.len() < self.limit && index < self.waiting.len() {
            let number = self.waiting[index];
            let Some(Slot::Fetch { entity, .. }) = self.slot_mut(number) else {
                unreachable!("waiting numbers name fetch slots");
            };
            let entity = entity.clone();
            let participant = self.participants.entry(entity.clone()).or_default();
            if participant.running.is_some() {
                index += 1;
                continue;
            }
            participant.running = participant.waiting.take();
            if let Some(Slot::Fetch { state, .. }) = self.slot_mut(number) {
                *state = FetchState::Running;
            }
            self.waiting.remove(index);
            let rest = self.rest.clone();
            self.running.spawn(async move {
                let reply = rest.participant(&entity.dn, entity.participant_id).await;
                (number, reply)
            });
        }
    }

    fn push(&mut self, slot: Slot) -> u64 {
        let number = self.front + self.slots.len() as u64;
        self.slots.push_back(slot);
        number
    }

    fn slot_mut(&mut self, number: u64) -> Option<&mut Slot> {
        let index = usize::try_from(number.checked_sub(self.front)?).ok()?;
        self.slots.get_mut(index)
    }

    fn forget_if_idle(&mut self, entity: &Entity) {
        if let Some(participant) = self.participants.get(entity)
            && participant.running.is_none()
            && participant.waiting.is_none()
        {
            self.participants.remove(entity);
        }
    }
}
