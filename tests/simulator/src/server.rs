//! The HTTP side: one router over the shared state, served over plain TCP or TLS.
//!
//! | path | file |
//! |---|---|
//! | `POST /connect/token` | `token.rs` (also the Bearer middleware guarding the rest) |
//! | `GET /callcontrol`, `/callcontrol/{dn}[/participants[/{id}]]` | `callcontrol.rs` |
//! | `GET /callcontrol/ws` | `socket.rs` |
//! | `GET /xapi/v1/...` (`Recordings`, `InboundRules`, `Users`) | `xapi.rs` |
//! | `/_sim/...` (opt-in) | `control.rs` |
//!
//! TLS material comes from `tls.rs`. [`SimHandle`] is the caller's grip on a running simulator:
//! play scenarios, flip faults, inspect recordings and tokens, wait for clients, shut down.
//! Dropping the handle without [`SimHandle::shutdown`] aborts the server tasks.

mod callcontrol;
mod control;
mod socket;
mod tls;
pub(crate) mod token;
mod xapi;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::middleware;
use axum::routing::{get, post};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::faults::Repeat;
use crate::state::Shared;
use crate::{
    DnEntry, Faults, ParticipantChange, RecordingInfo, Scenario, SimConfig, faults, player,
};

/// How long [`SimHandle::shutdown`] lets open HTTP connections finish before cutting them.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Starts simulators.
pub struct Simulator;

impl Simulator {
    /// Binds [`SimConfig::listen`] and starts serving. Returns once the port accepts connections.
    pub async fn start(config: SimConfig) -> anyhow::Result<SimHandle> {
        let tcp = TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("while binding {}", config.listen))?;
        let addr = tcp.local_addr()?;
        let tls = config.tls;
        let control = config.control_endpoint;
        let shared = Shared::new(config);
        let app = router(shared.clone(), control);
        let (stop, stopped) = oneshot::channel::<()>();
        let signal = async move {
            let _ = stopped.await;
        };
        let (server, ca_pem) = if tls {
            let certificates = tls::generate().context("while generating the TLS certificate")?;
            let listener = tls::TlsListener::new(tcp, certificates.server)?;
            let serve = axum::serve(listener, app).with_graceful_shutdown(signal);
            (
                tokio::spawn(report(serve.into_future())),
                Some(certificates.ca_pem),
            )
        } else {
            use axum::serve::ListenerExt;
            // Small replies go out at once, as a PBX's would (no Nagle delay).
            let tcp = tcp.tap_io(|stream| {
                let _ = stream.set_nodelay(true);
            });
            let serve = axum::serve(tcp, app).with_graceful_shutdown(signal);
            (tokio::spawn(report(serve.into_future())), None)
        };
        let repeaters = [Repeat::Connected, Repeat::Unconnected]
            .map(|which| tokio::spawn(faults::run_repeater(shared.clone(), which)));
        Ok(SimHandle {
            shared,
            addr,
            tls,
            ca_pem,
            stop: Some(stop),
            tasks: [server].into_iter().chain(repeaters).collect(),
        })
    }
}

/// Runs the server to its end, logging why it failed if it did.
async fn report(serve: impl Future<Output = std::io::Result<()>>) {
    if let Err(error) = serve.await {
        tracing::error!(%error, "the simulator's server stopped");
    }
}

fn router(shared: Arc<Shared>, control: bool) -> Router {
    let protected = Router::new()
        .route("/callcontrol", get(callcontrol::snapshot))
        .route("/callcontrol/ws", get(socket::upgrade))
        .route("/callcontrol/{dn}", get(callcontrol::dn))
        .route(
            "/callcontrol/{dn}/participants",
            get(callcontrol::participants),
        )
        .route(
            "/callcontrol/{dn}/participants/{id}",
            get(callcontrol::participant),
        )
        .route("/xapi/v1/Recordings", get(xapi::recordings))
        .route("/xapi/v1/Recordings/{action}", get(xapi::download))
        .route("/xapi/v1/InboundRules", get(xapi::inbound_rules))
        .route("/xapi/v1/Users", get(xapi::users))
        .route("/xapi/v1/{entity}", get(xapi::entity))
        .route_layer(middleware::from_fn_with_state(
            shared.clone(),
            token::require_bearer,
        ));
    let mut app = Router::new()
        .route("/connect/token", post(token::connect_token))
        .merge(protected);
    if control {
        app = app
            .route("/_sim/faults", get(control::describe))
            .route("/_sim/{fault}", post(control::fault));
    }
    app.with_state(shared)
}

/// A running simulator.
pub struct SimHandle {
    shared: Arc<Shared>,
    addr: SocketAddr,
    tls: bool,
    ca_pem: Option<String>,
    stop: Option<oneshot::Sender<()>>,
    tasks: Vec<JoinHandle<()>>,
}

impl SimHandle {
    /// `http://127.0.0.1:PORT` (or `https://` with TLS), without a trailing slash.
    pub fn base_url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// The event WebSocket's URL, `ws://127.0.0.1:PORT/callcontrol/ws` (or `wss://`).
    pub fn ws_url(&self) -> String {
        let scheme = if self.tls { "wss" } else { "ws" };
        format!("{scheme}://{}/callcontrol/ws", self.addr)
    }

    /// The address the simulator listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// With TLS, the PEM of the CA that signed the server certificate: what a client trusts.
    pub fn ca_pem(&self) -> Option<String> {
        self.ca_pem.clone()
    }

    /// The configuration the simulator runs with.
    pub fn config(&self) -> &SimConfig {
        &self.shared.config
    }

    /// Plays `scenario` in real time scaled by `time_scale` (`0.01` = 100x faster): adds its DNs
    /// to the directory, applies each participant change and fault at its (scaled) time, and
    /// publishes each recording [`SimConfig::recording_delay`] after its call is over. Returns
    /// when the last of these happened. Several scenarios may play at once if their call ids and
    /// participant ids differ (see [`Scenario::renumbered`]).
    pub async fn play(&self, scenario: &Scenario, time_scale: f64) -> anyhow::Result<()> {
        player::play(&self.shared, scenario, time_scale).await
    }

    /// Applies one participant change now, outside any scenario.
    pub fn apply(&self, change: &ParticipantChange) {
        self.shared.apply(change);
    }

    /// Re-announces every leg not yet connected now, at once: one tick of the repeater with
    /// [`crate::RepeatPhase::Together`], whatever the repeat settings.
    pub fn repeat_unconnected_now(&self) {
        self.shared.repeat(Repeat::Unconnected, Duration::ZERO);
    }

    /// Makes DNs visible in `GET /callcontrol` from now on.
    pub fn add_directory(&self, entries: &[DnEntry]) {
        self.shared.add_directory(entries);
    }

    /// The fault injection switches.
    pub fn faults(&self) -> &Faults {
        &self.shared.faults
    }

    /// The recordings published so far, in `Id` order.
    pub fn recordings(&self) -> Vec<RecordingInfo> {
        self.shared.recordings()
    }

    /// Tokens handed out through `POST /connect/token` so far.
    pub fn tokens_issued(&self) -> u64 {
        self.shared.tokens.issued()
    }

    /// Event WebSockets open right now.
    pub fn sockets(&self) -> usize {
        *self.shared.sockets.borrow()
    }

    /// Waits until at least `n` event WebSockets are open.
    pub async fn wait_sockets(&self, n: usize) {
        let mut open = self.shared.sockets.subscribe();
        let _ = open.wait_for(|&open| open >= n).await;
    }

    /// `GET /callcontrol` snapshots served so far.
    pub fn snapshots_served(&self) -> u64 {
        *self.shared.snapshots.borrow()
    }

    /// Waits until at least `n` snapshots have been served in total (a client that has opened
    /// its socket and taken its snapshot is ready for a scenario).
    pub async fn wait_snapshots(&self, n: u64) {
        let mut served = self.shared.snapshots.subscribe();
        let _ = served.wait_for(|&served| served >= n).await;
    }

    /// Stops serving: closes every WebSocket, lets open requests finish (up to 5 s), and returns
    /// once the port is released.
    pub async fn shutdown(mut self) {
        self.shared.faults.drop_sockets();
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let mut tasks = std::mem::take(&mut self.tasks).into_iter();
        if let Some(server) = tasks.next() {
            let abort = server.abort_handle();
            if tokio::time::timeout(SHUTDOWN_GRACE, server).await.is_err() {
                abort.abort();
            }
        }
        for task in tasks {
            task.abort();
        }
    }
}

impl Drop for SimHandle {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}
