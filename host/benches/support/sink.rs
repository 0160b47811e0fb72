//! The webhook sink of the pipeline benches: a local axum server (`TCP_NODELAY`) that notes
//! when each request arrived and its query string, and reads call ids out of those.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::Router;
use axum::extract::{RawQuery, State};
use axum::routing::any;

/// What the sink received: when, and the query string.
pub type Received = Arc<Mutex<Vec<(Instant, String)>>>;

/// Starts the sink on a free port of 127.0.0.1; its origin and what it receives.
pub async fn sink() -> (String, Received) {
    let received = Received::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin = format!("http://{}", listener.local_addr().unwrap());
    let app = Router::new()
        .fallback(any(
            |State(received): State<Received>, RawQuery(query): RawQuery| async move {
                let at = Instant::now();
                received
                    .lock()
                    .unwrap()
                    .push((at, query.unwrap_or_default()));
                "ok"
            },
        ))
        .with_state(received.clone());
    use axum::serve::ListenerExt;
    // Without TCP_NODELAY, Nagle's algorithm and delayed ACKs add up to 40 ms to some replies.
    let listener = listener.tap_io(|stream| {
        let _ = stream.set_nodelay(true);
    });
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (origin, received)
}

/// The call id and event name of a webhook's query string.
pub fn call_and_event(query: &str) -> (u64, String) {
    let field = |name: &str| {
        query
            .split('&')
            .find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))
            .unwrap_or_else(|| panic!("no {name} in {query}"))
            .to_owned()
    };
    let id = field("id");
    let (_, call_and_link) = id.split_once('_').unwrap();
    let (call, _) = call_and_link.split_once('-').unwrap();
    (call.parse().unwrap(), field("event"))
}
