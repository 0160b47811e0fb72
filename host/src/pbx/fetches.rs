//! Participant fetches: concurrent across participants, one at a time per participant, repeats
//! folded, new legs started first and then the newest frames', results handed on in the order
//! their fetches went out.
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
//! - **New legs first, in frame order.** When more fetches wait than may run, a participant the
//!   engine has not seen yet (no reply or snapshot has shown it since its last remove) has its
//!   fetch started before any known participant's, in the order of their first frames. The
//!   engine must learn of the legs of a call in the order they appeared: a leg that appears
//!   while another extension of its call is talking reads as a transfer in progress
//!   (`calls::call`), so an agent's `Ringing` must not reach it after another agent's answer.
//! - **Then the newest frame first.** Among known participants, the one with the newest upsert
//!   starts next. Whether 3CX repeats all unconnected legs on one clock is not known; if it
//!   does, a busy PBX sends hundreds of repeats at once, and a real change arriving just after
//!   them (an answer) would wait for all their GETs, oldest first. Started newest first, it
//!   waits only for the fetches already running; the repeats, which change nothing, wait. So
//!   that no fetch waits for ever under a steady overload, a fetch whose first frame is at
//!   least [`OLDEST_FIRST_AFTER`] older than the newest frame (by the frames' receive times)
//!   starts before all others, oldest first.
//! - **Output in the order the fetches went out.** A fetch takes its place in the output
//!   order when it starts, a remove when its frame arrives; a place leaves only when it is at
//!   the front and decided (its fetch answered, or it is a remove). A reply can only tell the
//!   state from the moment its GET went out, so it must not overtake frames that arrived
//!   before that (a follow-up fetch that read an agent `Connected` would otherwise be handed on
//!   before another agent's earlier `Ringing`). The engine thus sees each reply after every
//!   remove whose frame, and every reply whose GET, came before its GET went out. A waiting
//!   fetch has no place yet, so it holds nothing back. A reply keeps the time of the newest
//!   frame it answers, and the session makes times monotonic, so a reply handed on after a
//!   newer frame's carries that frame's time (up to [`OLDEST_FIRST_AFTER`] and a round trip
//!   late under overload).
//! - **A remove cancels a waiting fetch** of the same participant: it would only answer `404`.
//!
//! A slow reply holds back the places behind it until it answers (a follow-up waits for its
//! participant's previous fetch, so up to two round trips, more when every fetch slot is
//! busy); every fetch is bounded by the request time limit.
//!
//! This type does no I/O of its own beyond starting fetches through its [`Fetch`] function (the
//! [`RestClient`]'s participant GET, or a fake in tests); the session drives it
//! ([`Fetches::answered`]) and hands on what [`Fetches::pop_ready`] yields.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use tokio::task::JoinSet;

use super::rest::{FetchedParticipant, ParticipantReply, RestClient, RestError};
use super::socket::{Entity, Received};
use super::stats::ConnectorStats;

/// How much older than the newest frame a waiting fetch's first frame may become before it
/// starts ahead of all others: longer than a burst of repeats takes to fetch (tens of
/// milliseconds for hundreds of legs), shorter than a caller would notice.
pub(super) const OLDEST_FIRST_AFTER: Duration = Duration::from_secs(1);

/// A decided place, ready to be handed on, in output order.
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

/// One place in the output order: a started fetch or a remove.
#[derive(Debug)]
enum Slot {
    Fetch {
        frame_at: Timestamp,
        /// `None` while the fetch runs.
        reply: Option<Box<FetchedParticipant>>,
    },
    Remove {
        entity: Entity,
        frame: Received,
    },
}

/// A fetch waiting for room, or for its participant's running fetch to answer.
#[derive(Debug)]
struct Waiting {
    /// The arrival number of its first frame: its key in [`Fetches::by_first_frame`], and in
    /// [`Fetches::new_legs`] for a participant the engine has not seen.
    first: u64,
    /// For a known participant, the arrival number of its newest frame: its key in
    /// [`Fetches::known_by_newest_frame`].
    newest: Option<u64>,
    /// The newest frame's time, which its reply keeps.
    frame_at: Timestamp,
}

/// What is going on for one participant: whether a fetch of it runs, and its waiting follow-up.
#[derive(Debug, Default)]
struct PerParticipant {
    running: bool,
    waiting: Option<Waiting>,
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
    /// Places in output order; the front one has number `front`.
    slots: VecDeque<Slot>,
    front: u64,
    /// Numbers the upsert frames in arrival order, for the orders of the waiting.
    frames_seen: u64,
    /// The newest upsert frame's time.
    newest_frame_at: Option<Timestamp>,
    /// Every waiting fetch by the arrival number of its first frame, with that frame's time.
    by_first_frame: BTreeMap<u64, (Timestamp, Entity)>,
    /// The waiting fetches of participants the engine has not seen, by first frame.
    new_legs: BTreeMap<u64, Entity>,
    /// The waiting fetches of known participants, by the arrival number of their newest frame.
    known_by_newest_frame: BTreeMap<u64, Entity>,
    /// The participants the engine has seen: the last reply or snapshot showed them, and no
    /// remove came since.
    known: HashSet<Entity>,
    participants: HashMap<Entity, PerParticipant>,
    running: JoinSet<(u64, Entity, Result<FetchedParticipant, RestError>)>,
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
            frames_seen: 0,
            newest_frame_at: None,
            by_first_frame: BTreeMap::new(),
            new_legs: BTreeMap::new(),
            known_by_newest_frame: BTreeMap::new(),
            known: HashSet::new(),
            participants: HashMap::new(),
            running: JoinSet::new(),
        }
    }

    /// Whether every fetch has started and every place has been handed on.
    pub(super) fn is_empty(&self) -> bool {
        self.slots.is_empty() && self.by_first_frame.is_empty()
    }

    /// A snapshot was emitted (with every fetch settled): the engine has seen exactly its
    /// participants.
    pub(super) fn snapshot_seen(&mut self, participants: impl IntoIterator<Item = Entity>) {
        debug_assert!(
            self.is_empty(),
            "snapshots are taken with the fetches settled"
        );
        self.known = participants.into_iter().collect();
    }

    /// An upsert frame of `entity` arrived at `frame_at`: fold it into the participant's
    /// waiting fetch, or make one.
    pub(super) fn upsert(&mut self, entity: Entity, frame_at: Timestamp) {
        self.frames_seen += 1;
        let arrival = self.frames_seen;
        self.newest_frame_at = Some(frame_at);
        let known = self.known.contains(&entity);
        let participant = self.participants.entry(entity.clone()).or_default();
        match &mut participant.waiting {
            Some(waiting) => {
                if let Some(newest) = &mut waiting.newest {
                    self.known_by_newest_frame.remove(newest);
                    self.known_by_newest_frame.insert(arrival, entity);
                    *newest = arrival;
                }
                waiting.frame_at = frame_at;
                self.stats.count_fetch_folded();
            }
            None => {
                // A follow-up of a running fetch is not the participant's first appearance.
                let newest = if known || participant.running {
                    self.known_by_newest_frame.insert(arrival, entity.clone());
                    Some(arrival)
                } else {
                    self.new_legs.insert(arrival, entity.clone());
                    None
                };
                participant.waiting = Some(Waiting {
                    first: arrival,
                    newest,
                    frame_at,
                });
                self.by_first_frame.insert(arrival, (frame_at, entity));
            }
        }
        self.start_more();
    }

    /// A remove frame of `entity`: it takes its place in the order, and a fetch of the same
    /// participant that has not started yet is cancelled.
    pub(super) fn remove(&mut self, entity: Entity, frame: Received) {
        self.known.remove(&entity);
        if let Some(waiting) = self
            .participants
            .get_mut(&entity)
            .and_then(|participant| participant.waiting.take())
        {
            self.forget_waiting(&waiting);
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
        let (number, entity, result) =
            joined.expect("participant fetches neither panic nor get aborted");
        let fetched = result?;
        if matches!(fetched.outcome, ParticipantReply::Found(_)) {
            self.known.insert(entity.clone());
        } else {
            self.known.remove(&entity);
        }
        let Some(Slot::Fetch { reply, .. }) = self.slot_mut(number) else {
            unreachable!("a running fetch keeps its place until it answers");
        };
        *reply = Some(Box::new(fetched));
        if let Some(participant) = self.participants.get_mut(&entity) {
            participant.running = false;
        }
        self.forget_if_idle(&entity);
        self.start_more();
        Ok(())
    }

    /// The front place, if it is decided.
    pub(super) fn pop_ready(&mut self) -> Option<Ready> {
        let decided = match self.slots.front()? {
            Slot::Fetch { reply, .. } => reply.is_some(),
            Slot::Remove { .. } => true,
        };
        if !decided {
            return None;
        }
        let slot = self.slots.pop_front().expect("the front place exists");
        self.front += 1;
        Some(match slot {
            Slot::Fetch {
                frame_at,
                reply: Some(fetched),
            } => Ready::Fetched { fetched, frame_at },
            Slot::Remove { entity, frame } => Ready::Removed { entity, frame },
            Slot::Fetch { reply: None, .. } => unreachable!("checked above"),
        })
    }

    /// Starts waiting fetches while there is room, in the order of [`Fetches::next_to_start`].
    /// A started fetch takes the last place in the output order (see the module docs).
    fn start_more(&mut self) {
        while self.running.len() < self.limit {
            let Some(entity) = self.next_to_start() else {
                return;
            };
            let participant = self
                .participants
                .get_mut(&entity)
                .expect("a waiting fetch's participant is known");
            let waiting = participant
                .waiting
                .take()
                .expect("next_to_start names a waiting fetch");
            participant.running = true;
            self.forget_waiting(&waiting);
            let number = self.push(Slot::Fetch {
                frame_at: waiting.frame_at,
                reply: None,
            });
            let fetching = (self.fetch)(entity.clone());
            self.running
                .spawn(async move { (number, entity, fetching.await) });
        }
    }

    /// The waiting fetch to start next, of a participant with no fetch running (see the module
    /// docs): the oldest if it is overdue, else the first new leg, else the known participant
    /// with the newest frame.
    fn next_to_start(&self) -> Option<Entity> {
        let startable = |entity: &&Entity| {
            self.participants
                .get(*entity)
                .is_some_and(|participant| !participant.running)
        };
        let overdue_before = self
            .newest_frame_at
            .and_then(|newest| newest.checked_sub(OLDEST_FIRST_AFTER).ok());
        self.by_first_frame
            .values()
            .take_while(|(first_at, _)| overdue_before.is_some_and(|before| *first_at <= before))
            .map(|(_, entity)| entity)
            .find(startable)
            .or_else(|| self.new_legs.values().find(startable))
            .or_else(|| self.known_by_newest_frame.values().rev().find(startable))
            .cloned()
    }

    fn forget_waiting(&mut self, waiting: &Waiting) {
        self.by_first_frame.remove(&waiting.first);
        match waiting.newest {
            Some(newest) => self.known_by_newest_frame.remove(&newest),
            None => self.new_legs.remove(&waiting.first),
        };
    }

    /// Appends a place to the output order; returns its number.
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
            && !participant.running
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

    /// Fetches `ids` one by one, so the engine has seen them, and drains their replies.
    async fn known(f: &mut Fetches, pbx: &Pbx, ids: &[u64]) {
        for &id in ids {
            f.upsert(entity(id), at(1));
            pbx.answer(id, ParticipantStatus::Ringing);
            f.answered().await.unwrap();
        }
        assert_eq!(drain(f).len(), ids.len());
    }

    #[tokio::test]
    async fn a_change_behind_a_burst_of_repeats_starts_before_the_burst_s_waiting_fetches() {
        use ParticipantStatus::*;
        let pbx = Pbx::default();
        let (mut f, _) = fetches(&pbx, 2);
        known(&mut f, &pbx, &[1, 2, 3, 4, 5, 6, 9]).await;
        for id in 1..=6 {
            f.upsert(entity(id), at(10)); // repeats of six ringing legs, at once
        }
        assert_eq!(pbx.asked(), [1, 2]);
        f.upsert(entity(9), at(10)); // 9 answers, just after the burst
        f.remove(entity(8), frame(10)); // a leg hung up
        pbx.answer(1, Ringing);
        f.answered().await.unwrap();
        assert_eq!(pbx.asked(), [2, 9], "the newest frame's fetch starts first");
        assert_eq!(
            drain(&mut f),
            [(1, "Ringing".to_owned())],
            "the waiting burst holds nothing back; 2's GET went out before the remove"
        );
        pbx.answer(9, Connected);
        f.answered().await.unwrap();
        assert_eq!(pbx.asked(), [2, 6], "then the burst, newest first");
        pbx.answer(2, Ringing);
        f.answered().await.unwrap();
        assert_eq!(
            drain(&mut f),
            [
                (2, "Ringing".to_owned()),
                (8, "Gone".to_owned()),
                (9, "Connected".to_owned())
            ],
            "in the order the GETs went out, the remove where its frame came"
        );
        f.upsert(entity(3), at(10)); // 3's change joins its waiting fetch
        pbx.answer(6, Ringing);
        f.answered().await.unwrap();
        assert_eq!(pbx.asked(), [5, 3], "the change moved 3 to the front");
    }

    #[tokio::test]
    async fn new_legs_start_first_in_frame_order() {
        use ParticipantStatus::*;
        let pbx = Pbx::default();
        let (mut f, _) = fetches(&pbx, 1);
        known(&mut f, &pbx, &[1, 2]).await;
        f.upsert(entity(1), at(10)); // a repeat: runs
        f.upsert(entity(7), at(10)); // agent 7 starts ringing: a new leg
        f.upsert(entity(8), at(10)); // and agent 8
        f.upsert(entity(2), at(10)); // then agent 2 answers
        pbx.answer(1, Ringing);
        f.answered().await.unwrap();
        assert_eq!(
            pbx.asked(),
            [7],
            "new legs before any known one, in frame order"
        );
        pbx.answer(7, Ringing);
        f.answered().await.unwrap();
        assert_eq!(pbx.asked(), [8]);
        pbx.answer(8, Ringing);
        f.answered().await.unwrap();
        assert_eq!(pbx.asked(), [2], "then the known leg's change");
        f.remove(entity(7), frame(10)); // 7 stops ringing: when it rings again it is new
        f.upsert(entity(1), at(10));
        f.upsert(entity(7), at(10));
        pbx.answer(2, Connected);
        f.answered().await.unwrap();
        assert_eq!(pbx.asked(), [7]);
    }

    #[tokio::test]
    async fn a_snapshot_makes_its_participants_known_and_no_others() {
        let pbx = Pbx::default();
        let (mut f, _) = fetches(&pbx, 1);
        known(&mut f, &pbx, &[3]).await;
        f.snapshot_seen([entity(1), entity(2)]);
        f.upsert(entity(9), at(10)); // runs
        f.upsert(entity(1), at(10));
        f.upsert(entity(3), at(10)); // no longer known: not in the snapshot
        f.upsert(entity(2), at(10));
        pbx.answer(9, ParticipantStatus::Ringing);
        f.answered().await.unwrap();
        assert_eq!(pbx.asked(), [3], "3 is new again; 1 and 2 are known");
    }

    #[tokio::test]
    async fn a_fetch_waiting_past_the_bound_starts_before_newer_ones() {
        use ParticipantStatus::*;
        let pbx = Pbx::default();
        let (mut f, _) = fetches(&pbx, 1);
        known(&mut f, &pbx, &[1, 2, 3, 4]).await;
        f.upsert(entity(1), at(1));
        f.upsert(entity(2), at(1)); // waits for room
        f.upsert(entity(3), at(2)); // newer, and 2's frame is now a second older
        f.upsert(entity(4), at(2));
        pbx.answer(1, Ringing);
        f.answered().await.unwrap();
        assert_eq!(pbx.asked(), [2], "overdue, so oldest first");
        pbx.answer(2, Ringing);
        f.answered().await.unwrap();
        assert_eq!(pbx.asked(), [4], "none overdue: newest first");
        pbx.answer(4, Ringing);
        f.answered().await.unwrap();
        pbx.answer(3, Ringing);
        f.answered().await.unwrap();
        let ids: Vec<u64> = drain(&mut f).into_iter().map(|(id, _)| id).collect();
        assert_eq!(ids, [1, 2, 4, 3], "output in the order the GETs went out");
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
        assert_eq!(
            ids,
            [1, 2, 3],
            "the order the GETs went out, whatever the answer order"
        );
    }
}
