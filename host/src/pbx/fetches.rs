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
//!   answered, or it is a remove). When a fetch starts, its slot moves to the back: its reply
//!   can only tell the state from that moment on, so it must not overtake frames that arrived
//!   before it was sent (a follow-up fetch that read an agent `Connected` would otherwise be
//!   handed on before another agent's earlier `Ringing`). The engine thus sees each reply after
//!   every frame that was received before its GET went out.
//! - **A remove cancels a waiting fetch** of the same participant: it would only answer `404`.
//!
//! A slow reply holds back the slots behind it until it answers (a follow-up waits for its
//! participant's previous fetch, so up to two round trips, more when every fetch slot is
//! busy); every fetch is bounded by the request time limit.
//!
//! This type does no I/O of its own beyond starting fetches through its [`Fetch`] function (the
//! [`RestClient`]'s participant GET, or a fake in tests); the session drives it
//! ([`Fetches::answered`]) and hands on what [`Fetches::pop_ready`] yields.

use std::collections::{HashMap, VecDeque};
use std::pin::Pin;
use std::sync::Arc;

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

/// How a participant is fetched: the GET of its entity.
pub(super) type Fetch = Arc<
    dyn Fn(Entity) -> Pin<Box<dyn Future<Output = Result<FetchedParticipant, RestError>> + Send>>
        + Send
        + Sync,
>;

/// The participant GET of `rest` as a [`Fetch`].
pub(super) fn fetch_with(rest: RestClient) -> Fetch {
    Arc::new(move |entity: Entity| {
        let rest = rest.clone();
        Box::pin(async move { rest.participant(&entity.dn, entity.participant_id).await })
    })
}

/// The ordered, concurrent participant fetches of one session.
pub(super) struct Fetches {
    fetch: Fetch,
    stats: Arc<ConnectorStats>,
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
    pub(super) fn new(fetch: Fetch, stats: Arc<ConnectorStats>, limit: usize) -> Fetches {
        Fetches {
            fetch,
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
    /// fetch running. A started fetch's slot moves to the back (see the module docs).
    fn start_more(&mut self) {
        let mut index = 0;
        while self.running.len() < self.limit && index < self.waiting.len() {
            let number = self.waiting[index];
            let Some(Slot::Fetch {
                entity, frame_at, ..
            }) = self.slot_mut(number)
            else {
                unreachable!("waiting numbers name fetch slots");
            };
            let (entity, frame_at) = (entity.clone(), *frame_at);
            if self
                .participants
                .get(&entity)
                .is_some_and(|participant| participant.running.is_some())
            {
                index += 1;
                continue;
            }
            self.waiting.remove(index);
            let started = if self.is_last(number) {
                number
            } else {
                if let Some(slot) = self.slot_mut(number) {
                    *slot = Slot::Cancelled;
                }
                self.push(Slot::Fetch {
                    entity: entity.clone(),
                    frame_at,
                    state: FetchState::Waiting,
                })
            };
            if let Some(Slot::Fetch { state, .. }) = self.slot_mut(started) {
                *state = FetchState::Running;
            }
            let participant = self.participants.entry(entity.clone()).or_default();
            participant.waiting = None;
            participant.running = Some(started);
            let fetching = (self.fetch)(entity);
            self.running.spawn(async move { (started, fetching.await) });
        }
    }

    fn is_last(&self, number: u64) -> bool {
        number + 1 == self.front + self.slots.len() as u64
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

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use bytes::Bytes;
    use tokio::sync::oneshot;

    use super::*;
    use crate::callcontrol::{Participant, ParticipantStatus};
    use crate::pbx::rest::ParticipantReply;

    type Reply = oneshot::Sender<Result<FetchedParticipant, RestError>>;

    /// A fake PBX: every fetch waits until the test answers it.
    #[derive(Clone, Default)]
    struct Pbx {
        asked: Arc<Mutex<Vec<(Entity, Reply)>>>,
    }

    impl Pbx {
        fn fetch(&self) -> Fetch {
            let asked = self.asked.clone();
            Arc::new(move |entity: Entity| {
                let (tx, rx) = oneshot::channel();
                asked.lock().unwrap().push((entity, tx));
                Box::pin(async move { rx.await.expect("the test answers every fetch") })
            })
        }

        /// The participant ids asked for so far, in order.
        fn asked(&self) -> Vec<u64> {
            let asked = self.asked.lock().unwrap();
            asked.iter().map(|(e, _)| e.participant_id).collect()
        }

        /// Answers the oldest open fetch of participant `id` with `status`.
        fn answer(&self, id: u64, status: ParticipantStatus) {
            let mut asked = self.asked.lock().unwrap();
            let index = asked
                .iter()
                .position(|(e, reply)| e.participant_id == id && !reply.is_closed())
                .expect("an open fetch of that participant");
            let (entity, reply) = asked.remove(index);
            let participant = Participant {
                id,
                status,
                dn: entity.dn.clone(),
                callid: 1,
                ..Participant::default()
            };
            let _ = reply.send(Ok(FetchedParticipant {
                path: entity.path(),
                at: Timestamp::UNIX_EPOCH,
                status: 200,
                body: Bytes::new(),
                outcome: ParticipantReply::Found(Box::new(participant)),
            }));
        }
    }

    fn entity(id: u64) -> Entity {
        Entity {
            dn: format!("1{id}"),
            participant_id: id,
        }
    }

    fn at(second: i64) -> Timestamp {
        Timestamp::from_second(second).unwrap()
    }

    fn frame(second: i64) -> Received {
        Received {
            at: at(second),
            text: String::new(),
        }
    }

    /// What leaves, as `(participant, status)` (`"Gone"` for a remove).
    fn drain(fetches: &mut Fetches) -> Vec<(u64, String)> {
        std::iter::from_fn(|| fetches.pop_ready())
            .map(|ready| match ready {
                Ready::Fetched { fetched, .. } => match fetched.outcome {
                    ParticipantReply::Found(p) => (p.id, format!("{:?}", p.status)),
                    other => panic!("{other:?}"),
                },
                Ready::Removed { entity, .. } => (entity.participant_id, "Gone".to_owned()),
            })
            .collect()
    }

    fn fetches(pbx: &Pbx, limit: usize) -> (Fetches, Arc<ConnectorStats>) {
        let stats = Arc::new(ConnectorStats::default());
        (Fetches::new(pbx.fetch(), stats.clone(), limit), stats)
    }

    #[tokio::test]
    async fn a_follow_up_fetch_does_not_overtake_frames_that_came_before_it_went_out() {
        use ParticipantStatus::*;
        let pbx = Pbx::default();
        let (mut f, _) = fetches(&pbx, 8);
        f.upsert(entity(22), at(1)); // agent 122 rings: fetch A
        f.upsert(entity(22), at(2)); // a repeat: waits for A
        f.upsert(entity(23), at(3)); // agent 123 rings: fetch B
        pbx.answer(22, Ringing);
        f.answered().await.unwrap();
        // The follow-up for 122 went out only now, after 123's frame.
        assert_eq!(pbx.asked(), [23, 22]);
        f.remove(entity(23), frame(4)); // 123 stops ringing (122 answered)
        pbx.answer(22, Connected);
        f.answered().await.unwrap();
        assert_eq!(
            drain(&mut f),
            [(22, "Ringing".to_owned())],
            "123's slot is next"
        );
        pbx.answer(23, Ringing);
        f.answered().await.unwrap();
        assert_eq!(
            drain(&mut f),
            [
                (23, "Ringing".to_owned()),
                (22, "Connected".to_owned()),
                (23, "Gone".to_owned())
            ]
        );
        assert!(f.is_empty());
    }

    #[tokio::test]
    async fn repeats_while_a_fetch_runs_fold_into_one_follow_up() {
        use ParticipantStatus::*;
        let pbx = Pbx::default();
        let (mut f, stats) = fetches(&pbx, 8);
        for second in 1..=5 {
            f.upsert(entity(7), at(second));
        }
        assert_eq!(pbx.asked(), [7], "one at a time per participant");
        pbx.answer(7, Ringing);
        f.answered().await.unwrap();
        assert_eq!(pbx.asked(), [7], "the one follow-up");
        pbx.answer(7, Connected);
        f.answered().await.unwrap();
        let out: Vec<_> = std::iter::from_fn(|| f.pop_ready())
            .map(|ready| match ready {
                Ready::Fetched { frame_at, .. } => frame_at,
                Ready::Removed { .. } => panic!("no remove"),
            })
            .collect();
        assert_eq!(
            out,
            [at(1), at(5)],
            "the follow-up keeps the newest frame's time"
        );
        assert_eq!(stats.snapshot().fetches_folded, 3);
    }

    #[tokio::test]
    async fn a_remove_cancels_a_waiting_fetch_and_follows_a_running_one() {
        use ParticipantStatus::*;
        let pbx = Pbx::default();
        let (mut f, stats) = fetches(&pbx, 8);
        f.upsert(entity(7), at(1));
        f.upsert(entity(7), at(2));
        f.remove(entity(7), frame(3));
        assert_eq!(drain(&mut f), [], "the running fetch holds the remove back");
        pbx.answer(7, Ringing);
        f.answered().await.unwrap();
        assert_eq!(
            drain(&mut f),
            [(7, "Ringing".to_owned()), (7, "Gone".to_owned())]
        );
        assert_eq!(pbx.asked(), Vec::<u64>::new(), "no follow-up went out");
        assert_eq!(stats.snapshot().fetches_skipped, 1);
        assert!(f.is_empty());
    }

    #[tokio::test]
    async fn at_most_the_limit_runs_at_once() {
        use ParticipantStatus::*;
        let pbx = Pbx::default();
        let (mut f, _) = fetches(&pbx, 2);
        for id in [1, 2, 3] {
            f.upsert(entity(id), at(id as i64));
        }
        assert_eq!(pbx.asked(), [1, 2]);
        pbx.answer(2, Ringing);
        f.answered().await.unwrap();
        assert_eq!(pbx.asked(), [1, 3], "room for the third");
        assert_eq!(drain(&mut f), [], "the first slot is still open");
        pbx.answer(1, Ringing);
        f.answered().await.unwrap();
        pbx.answer(3, Ringing);
        f.answered().await.unwrap();
        let ids: Vec<u64> = drain(&mut f).into_iter().map(|(id, _)| id).collect();
        assert_eq!(ids, [1, 2, 3], "frame order, whatever the answer order");
    }
}
