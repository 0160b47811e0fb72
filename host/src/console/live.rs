//! The live view the derivation loop publishes for the console: the calls in the engine now and
//! the latest events, updated after each batch of changes (a `watch` channel, so a slow page
//! never holds the loop up, and an unchanged view wakes no one). Only the calls the batch
//! changed are rebuilt, so the loop's cost per batch does not grow with the calls it holds.

use crate::calls::LiveCall;
use crate::calls::event::CallEvent;
use jiff::Timestamp;
use std::collections::{BTreeMap, VecDeque};
use tokio::sync::watch;

/// How many of the latest events the view keeps (the Calls page and events per minute).
const RECENT: usize = 500;

/// What the console shows of the engine: a read-only copy.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LiveState {
    /// The calls in progress or in their grace period, by PBX call id.
    pub calls: BTreeMap<u64, LiveCall>,
    /// The latest events, oldest first, at most [`RECENT`].
    pub recent: VecDeque<RecentEvent>,
}

/// One derived event, as the Calls page lists it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RecentEvent {
    /// When it was derived.
    pub at: Timestamp,
    /// Its call id (`callid` of the webhook).
    pub call_id: String,
    /// Its name, e.g. `incoming`.
    pub event: &'static str,
    /// The extension it is about, empty when none.
    pub user: String,
}

impl LiveState {
    /// How many events were derived in the minute before `now` (counted among the latest
    /// [`RECENT`]).
    pub fn events_last_minute(&self, now: Timestamp) -> usize {
        let since = now - jiff::SignedDuration::from_secs(60);
        self.recent.iter().filter(|event| event.at >= since).count()
    }
}

/// The derivation loop's end of the live view.
#[derive(Debug)]
pub struct LivePublisher(watch::Sender<LiveState>);

impl LivePublisher {
    /// A publisher and the view's first (empty) state for the console.
    pub fn new() -> (LivePublisher, watch::Receiver<LiveState>) {
        let (tx, rx) = watch::channel(LiveState::default());
        (LivePublisher(tx), rx)
    }

    /// Publishes a batch: the calls it changed, each by PBX call id with its view now (`None`
    /// for a call that is over), and the events it derived. Readers are woken only when
    /// something changed.
    pub fn publish(
        &self,
        changed: impl IntoIterator<Item = (u64, Option<LiveCall>)>,
        events: &[CallEvent],
    ) {
        let now = Timestamp::now();
        self.0.send_if_modified(|state| {
            let mut modified = !events.is_empty();
            for (pbx_call_id, call) in changed {
                match call {
                    Some(call) if state.calls.get(&pbx_call_id) == Some(&call) => {}
                    Some(call) => {
                        state.calls.insert(pbx_call_id, call);
                        modified = true;
                    }
                    None => modified |= state.calls.remove(&pbx_call_id).is_some(),
                }
            }
            for event in events {
                state.recent.push_back(RecentEvent {
                    at: now,
                    call_id: event.call_id().to_string(),
                    event: event.name(),
                    user: event.user().unwrap_or("").to_owned(),
                });
            }
            while state.recent.len() > RECENT {
                state.recent.pop_front();
            }
            modified
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(pbx_call_id: u64, state: &'static str) -> LiveCall {
        LiveCall {
            pbx_call_id,
            external: Some("+4930123456".to_owned()),
            did: String::new(),
            extensions: vec![("120".to_owned(), state)],
        }
    }

    #[test]
    fn a_batch_updates_only_its_calls_and_an_unchanged_one_wakes_no_one() {
        let (publisher, mut view) = LivePublisher::new();
        publisher.publish(
            [(1, Some(call(1, "offered"))), (2, Some(call(2, "offered")))],
            &[],
        );
        assert!(view.has_changed().unwrap());
        view.borrow_and_update();

        publisher.publish([(1, Some(call(1, "talking")))], &[]);
        assert!(view.has_changed().unwrap());
        let calls = view.borrow_and_update().calls.clone();
        assert_eq!(calls[&1], call(1, "talking"));
        assert_eq!(
            calls[&2],
            call(2, "offered"),
            "a call not in the batch stays"
        );

        publisher.publish([(1, Some(call(1, "talking"))), (3, None)], &[]);
        assert!(!view.has_changed().unwrap(), "nothing changed");

        publisher.publish([(2, None)], &[]);
        assert!(view.has_changed().unwrap());
        let calls = view.borrow_and_update().calls.clone();
        assert_eq!(calls.keys().copied().collect::<Vec<_>>(), [1]);
    }
}
