//! The operator console: server-rendered pages on their own listener (`[admin] listen`) that
//! answer "is it connected, what did the CRM get for this call, why did that fail, send it
//! again" without a terminal.
//!
//! **Design.** Every page is rendered on the server from the running host's own state, never a
//! copy: the connector's state and counters and the queue (through [`Observed`]), the calls in
//! the engine and the latest events (the [`LiveState`] the derivation loop publishes after each
//! batch), and the waiting recording jobs (the [`EngineStore`]). Templates are `minijinja`'s
//! with HTML auto-escaping, so text from the PBX or a receiver is shown, never run. A small
//! vendored script (`static/live.js`, no build step) listens to `/events` (server-sent events:
//! connection changed, deliveries changed, calls changed) and re-reads the page's live section.
//!
//! **Safety.** The console may act on the queue (retry, replay, enable a plugin: the same queue
//! operations as the admin socket, [`crate::app::admin`]), so:
//! - without `[admin] token` the validator lets it bind loopback addresses only;
//! - with a token every request needs it ([`auth`]): a bearer header, or the HttpOnly,
//!   SameSite=Strict cookie of a session opened by the login form;
//! - every action is a POST carrying the session's CSRF token, and is refused when the
//!   browser says it comes from another site (`Sec-Fetch-Site`, `Origin`);
//! - nothing shown holds a secret: tokens, plugin secrets and signing keys are never read here.

mod actions;
mod auth;
pub mod config;
mod events;
pub mod live;
mod pages;

pub use config::ConsoleConfig;
pub use live::{LivePublisher, LiveState};

use crate::app::{EngineStore, Observed};
use crate::server::{HttpServer, ServerError};
use axum::Router;
use axum::routing::{get, post};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// What the console reads: the running host's state.
pub struct Sources {
    /// Connection, counters, queue, storage health.
    pub observed: Observed,
    /// The calls in the engine and the latest events.
    pub live: watch::Receiver<LiveState>,
    /// The waiting recording jobs, when recordings are on.
    pub recordings: Option<EngineStore>,
}

/// What every handler shares.
#[derive(Clone)]
struct Console(Arc<Shared>);

struct Shared {
    sources: Sources,
    templates: minijinja::Environment<'static>,
    auth: auth::Auth,
    /// Ends the `/events` streams when the host stops, so the server's shutdown need not wait.
    stop: CancellationToken,
}

/// Binds the console's listener and serves it until `stop`; returns the address it listens
/// on. The listener is the public server's kind ([`HttpServer`]), with the same limits.
pub async fn start(
    config: &ConsoleConfig,
    sources: Sources,
    stop: CancellationToken,
) -> Result<SocketAddr, ServerError> {
    let server = HttpServer::bind(config.listen, None).await?;
    let address = server.local_addr().map_err(|source| ServerError::Bind {
        addr: config.listen,
        source,
    })?;
    let router = router(Console(Arc::new(Shared {
        sources,
        templates: pages::templates(),
        auth: auth::Auth::new(config.token.clone()),
        stop: stop.clone(),
    })));
    tokio::spawn(server.run(router, stop.cancelled_owned()));
    Ok(address)
}

/// Every route: the pages, the live stream and the actions behind the token check, the login
/// form and the script before it.
fn router(console: Console) -> Router {
    let guarded = Router::new()
        .route("/", get(pages::overview))
        .route("/calls", get(pages::calls))
        .route("/deliveries", get(pages::deliveries))
        .route("/recordings", get(pages::recordings))
        .route("/events", get(events::stream))
        .route("/deliveries/retry", post(actions::retry))
        .route("/deliveries/replay", post(actions::replay))
        .route("/plugins/enable", post(actions::enable_plugin))
        .route_layer(axum::middleware::from_fn_with_state(
            console.clone(),
            auth::require,
        ));
    Router::new()
        .route("/login", get(auth::login_form).post(auth::login))
        .route("/live.js", get(pages::script))
        .merge(guarded)
        .with_state(console)
}
