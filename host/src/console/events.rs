//! `/events`: server-sent events that tell an open page what changed, so its script re-reads
//! the page: `connection` (the PBX connection's state), `calls` (the engine's calls or the
//! latest events) and `deliveries` (the queue's depth, parked count or outcomes). Events carry
//! no data beyond their name: the page itself is the one view of the state. A stream ends
//! when the host stops.

use super::Console;
use crate::queue::QueueStats;
use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::{Stream, StreamExt};
use std::convert::Infallible;
use std::time::Duration;

/// How often the queue's numbers are compared (the queue has no change notification).
const QUEUE_POLL: Duration = Duration::from_millis(500);

/// What of the queue, when it changes, is worth a `deliveries` event.
fn queue_mark(stats: &QueueStats) -> (u64, u64, u64, Vec<(u64, u64, bool)>) {
    let plugins = stats
        .plugins
        .values()
        .map(|plugin| {
            let outcomes: u64 = plugin.outcomes.pairs().iter().map(|(_, n)| n).sum();
            (outcomes, u64::from(plugin.in_flight), plugin.disabled)
        })
        .collect();
    (stats.events_taken, stats.depth, stats.parked, plugins)
}

/// What one `/events` stream watches.
struct Watch {
    console: Console,
    connection: tokio::sync::watch::Receiver<crate::pbx::ConnectionState>,
    live: tokio::sync::watch::Receiver<super::LiveState>,
    mark: (u64, u64, u64, Vec<(u64, u64, bool)>),
}

impl Watch {
    /// The name of the next change, `None` once the host stops.
    async fn next(&mut self) -> Option<&'static str> {
        let shared = &self.console.0;
        loop {
            tokio::select! {
                _ = shared.stop.cancelled() => return None,
                Ok(()) = self.connection.changed() => return Some("connection"),
                Ok(()) = self.live.changed() => return Some("calls"),
                _ = tokio::time::sleep(QUEUE_POLL) => {
                    let now = queue_mark(&shared.sources.observed.queue.stats());
                    if now != self.mark {
                        self.mark = now;
                        return Some("deliveries");
                    }
                }
            }
        }
    }
}

/// `GET /events`.
pub(super) async fn stream(
    State(console): State<Console>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let sources = &console.0.sources;
    let watch = Watch {
        connection: sources.observed.connection.clone(),
        live: sources.live.clone(),
        mark: queue_mark(&sources.observed.queue.stats()),
        console: console.clone(),
    };
    let changes = futures_util::stream::unfold(watch, |mut watch| async move {
        let name = watch.next().await?;
        Some((Ok(Event::default().event(name).data(name)), watch))
    });
    // A first comment at once: the response's head goes out with it, so the page's stream opens
    // now (and re-reads what changed since it was rendered), not at the first keep-alive.
    let opened = futures_util::stream::once(async { Ok(Event::default().comment("open")) });
    Sse::new(opened.chain(changes)).keep_alive(KeepAlive::default())
}
