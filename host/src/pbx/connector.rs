//! The connector loop: keeps one event socket open and turns what it says into [`Change`]s.
//!
//! # One session
//!
//! 1. Get a token; open `/callcontrol/ws` with it. A `401` on the upgrade re-mints the token
//!    once and tries again at once (the token may have been superseded by another login).
//! 2. **Then** take a snapshot (`GET /callcontrol`) and emit it: the socket is open first, so
//!    every change after the snapshot arrives as a frame, and frames that raced the snapshot
//!    are merely applied twice (the engine is idempotent). Objects of the snapshot that cannot
//!    be used are skipped alone, counted and logged once.
//! 3. Read frames in order, every frame that has already arrived before the next fetch's reply
//!    (`Session::frames`):
//!    - a **`sequence` gap** (any step other than +1) means frames were lost: take a snapshot
//!      before going on, at most one per [`ConnectorConfig::gap_snapshot_every`] (5 s by
//!      default); gaps within that time share the next one;
//!    - an **upsert** queues a fetch of its participant ([`super::fetches`]): fetches of
//!      different participants run concurrently, repeats of one participant fold into one
//!      follow-up fetch, and the results are emitted in the order the fetches went out as
//!      [`Change::Upsert`]
//!      (stamped with the newest frame's time), as [`Change::Remove`] when the fetch answers
//!      `404`, or not at all when it answers `403` (a leg not visible to this client, counted
//!      and logged once per DN) or with a participant that cannot be used;
//!    - a **remove** emits [`Change::Remove`] in its place in the order;
//!    - frames about other entities (devices, DNs), DTMF and prompt events are counted and
//!      ignored; malformed frames and unknown event types are logged, counted and skipped (a
//!      malformed frame also shows up as a sequence gap, so the next valid frame causes a
//!      snapshot: whatever it was, nothing is lost).
//! 4. Every `resnapshot_interval` (60 s by default) a snapshot is taken anyway.
//! 5. When the token is due for its planned refresh, the session mints the new token, opens a
//!    new socket with it, takes a snapshot, and only then drops the old socket (`3cx-api.md`,
//!    section 3): no frame can fall between the two sockets.
//!
//! Every snapshot first waits for the fetches already under way and emits their results, so a
//! snapshot is never followed by older news. The capture records each deciding reply when its
//! change is emitted, so a replay reproduces the stream (see [`super::capture`]).
//!
//! # Between sessions
//!
//! Any failure (socket closed cleanly or abnormally, silent, a REST error, token trouble) ends
//! the session. A session that was connected is followed at once by a new one, whose snapshot
//! lets the engine close the calls that ended meanwhile: the PBX may drop a socket at any time
//! (`1006`, no close frame) and a moment's wait would only delay events. Only repeated failures
//! back off: a failed attempt, or a second drop before the connection has held for
//! `min(30 s, backoff_max)`, makes the connector publish [`ConnectionState::Backoff`], wait
//! (capped exponential backoff with jitter, `backoff_min` 1 s to `backoff_max` 60 s by
//! default) and try again. The backoff starts over once a session has stayed connected for
//! `min(30 s, backoff_max)`, so a PBX that accepts and drops at once is not hammered.
//!
//! Errors that retrying cannot fix (wrong credentials, no Call Control licence, TLS
//! verification failure, a bad CA file) end [`Connector::run`] with that error **if they
//! happen before the first successful connection**: a wrong setting fails loudly at start.
//! After that, everything is retried, because a PBX being restarted or upgraded produces each
//! of them for a while.
//!
//! # Shutdown
//!
//! Cancelling the [`CancellationToken`] ends `run` promptly: an open socket gets a close frame,
//! a pending send on the output channel is abandoned. Dropping the output receiver ends `run`
//! too. Both return `Ok(())` and leave the state at [`ConnectionState::Stopped`].

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::Timestamp;
use tokio::sync::{mpsc, watch};
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use super::backoff::Backoff;
use super::capture::{CaptureWriter, FORMAT_VERSION, Record};
use super::config::ConnectorConfig;
use super::fetches::{Fetches, Ready, fetch_with};
use super::http::{self, TlsSetupError, TransportError};
use super::rest::{ParticipantReply, RestClient, RestError};
use super::socket::{Entity, Event, EventSocket, Frame, Received, SocketError, parse_frame};
use super::stats::ConnectorStats;
use super::token::{AccessToken, TokenError, TokenManager, TokenState, shorten};
use crate::callcontrol::Change;
use crate::telemetry::pbx::{
    ConnectionGivenUp, ConnectionLost, FrameMalformed, ParticipantFetchFailed, ParticipantHidden,
    ParticipantUnusable, SequenceGap, SnapshotObjectSkipped, UnknownEventSkipped,
};

/// What the connector is doing now; watch it through [`Connector::state`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectionState {
    /// Getting a token, opening the socket, taking the first snapshot.
    Connecting {
        /// 1 for the first attempt since the last good connection.
        attempt: u32,
    },
    /// The socket is open and the snapshot delivered: changes flow.
    Connected {
        /// When this connection was established.
        since: Timestamp,
    },
    /// The last attempt or connection failed; waiting before the next attempt.
    Backoff {
        /// Failures since the last good connection.
        failures: u32,
        /// How long the wait is.
        delay: Duration,
        /// Why the last attempt or connection failed.
        error: String,
    },
    /// `run` has ended (or has not started yet).
    Stopped,
}

/// Why the connector stopped, or why a session ended.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ConnectorError {
    /// The settings are unusable (CA file, URL scheme, a zero interval).
    #[error("cannot set up the connection to the PBX: {0}")]
    Setup(String),
    /// No token.
    #[error(transparent)]
    Token(#[from] TokenError),
    /// A REST request failed.
    #[error(transparent)]
    Rest(#[from] RestError),
    /// The event socket failed.
    #[error(transparent)]
    Socket(#[from] SocketError),
    /// The PBX closed the event socket (restart, token superseded, ...).
    #[error("the PBX closed the event socket")]
    Closed,
}

impl From<TlsSetupError> for ConnectorError {
    fn from(error: TlsSetupError) -> Self {
        ConnectorError::Setup(error.to_string())
    }
}

impl ConnectorError {
    /// Whether retrying cannot help until someone changes a setting.
    pub fn is_permanent(&self) -> bool {
        match self {
            ConnectorError::Setup(_) => true,
            ConnectorError::Token(e) => e.is_permanent(),
            ConnectorError::Rest(e) => e.is_permanent(),
            ConnectorError::Socket(SocketError::Forbidden)
            | ConnectorError::Socket(SocketError::Transport(TransportError::Tls { .. })) => true,
            ConnectorError::Socket(_) | ConnectorError::Closed => false,
        }
    }
}

/// How a session or a step of it ended early.
enum Stop {
    /// Shutdown was requested.
    Cancelled,
    /// The output receiver is gone.
    OutputClosed,
    /// The connection failed; reconnect.
    Lost(ConnectorError),
}

macro_rules! lost_on {
    ($($error:ty),*) => {$(
        impl From<$error> for Stop {
            fn from(error: $error) -> Self {
                Stop::Lost(error.into())
            }
        }
    )*};
}

lost_on!(ConnectorError, TokenError, RestError, SocketError);

/// Watches one PBX. Make it with [`Connector::new`], take what you need ([`Connector::rest`],
/// [`Connector::state`], [`Connector::stats`]), then [`Connector::run`] it.
#[derive(Debug)]
pub struct Connector {
    config: Arc<ConnectorConfig>,
    tls: Arc<rustls::ClientConfig>,
    rest: RestClient,
    capture: Option<CaptureWriter>,
    stats: Arc<ConnectorStats>,
    state: watch::Sender<ConnectionState>,
    /// What has been warned about once already (see [`Connector::first_warning`]).
    warned: Mutex<HashSet<String>>,
}

/// The most distinct things [`Connector::first_warning`] remembers; past that it warns again.
const WARNED_LIMIT: usize = 1024;

impl Connector {
    /// Sets up TLS (reading `ca_file`), the HTTP client and the token manager. Nothing is sent
    /// until [`Connector::run`]. With `capture`, every frame and GET reply is recorded there,
    /// starting with a `start` line.
    pub fn new(
        config: ConnectorConfig,
        capture: Option<CaptureWriter>,
    ) -> Result<Connector, ConnectorError> {
        let tls = http::tls_config(config.ca_file.as_deref())?;
        let http = http::http_client(&tls, config.request_timeout)?;
        let config = Arc::new(config);
        let stats = Arc::new(ConnectorStats::default());
        if let Some(capture) = &capture {
            let mut base_url = config.base_url.clone();
            let _ = base_url.set_password(None);
            capture.record(&Record::Start {
                at: Timestamp::now(),
                version: FORMAT_VERSION,
                base_url: base_url.to_string(),
                client_id: config.client_id.clone(),
            });
        }
        let tokens = Arc::new(TokenManager::new(
            http.clone(),
            config.endpoint("/connect/token"),
            config.client_id.clone(),
            config.client_secret.clone(),
            config.request_timeout,
            capture.clone(),
            stats.clone(),
        ));
        let rest = RestClient::new(http, config.clone(), tokens, capture.clone(), stats.clone());
        Ok(Connector {
            config,
            tls,
            rest,
            capture,
            stats,
            state: watch::Sender::new(ConnectionState::Stopped),
            warned: Mutex::new(HashSet::new()),
        })
    }

    /// A REST client sharing this connector's token (for XAPI recordings and the like).
    pub fn rest(&self) -> RestClient {
        self.rest.clone()
    }

    /// The connection state, updated as it changes.
    pub fn state(&self) -> watch::Receiver<ConnectionState> {
        self.state.subscribe()
    }

    /// The connector's counters.
    pub fn stats(&self) -> Arc<ConnectorStats> {
        self.stats.clone()
    }

    /// Runs until `cancel` fires or `out`'s receiver is dropped (then `Ok(())`), or until a
    /// permanent error before the first successful connection (see the module docs).
    pub async fn run(
        self,
        out: mpsc::Sender<Change>,
        cancel: CancellationToken,
    ) -> Result<(), ConnectorError> {
        let mut backoff = Backoff::new(self.config.backoff_min, self.config.backoff_max);
        let mut ever_connected = false;
        let result = loop {
            self.state.send_replace(ConnectionState::Connecting {
                attempt: backoff.failures() + 1,
            });
            let mut session = Session {
                connector: &self,
                out: &out,
                cancel: &cancel,
                fetches: Fetches::new(
                    fetch_with(self.rest.clone()),
                    self.stats.clone(),
                    self.config.fetch_concurrency,
                ),
                last_sequence: None,
                connected_at: None,
                last_gap_snapshot: None,
                gap_snapshot_due: None,
                last_at: None,
                socket_generation: 0,
                move_retry_at: None,
            };
            let stop = session.run().await;
            let connected_for = session.connected_at.map(|at| at.elapsed());
            if let Some(duration) = connected_for {
                ever_connected = true;
                if duration >= self.config.backoff_max.min(Duration::from_secs(30)) {
                    backoff.reset();
                }
            }
            let error = match stop {
                Stop::Cancelled | Stop::OutputClosed => break Ok(()),
                Stop::Lost(error) => error,
            };
            self.record(Record::SocketClosed {
                at: Timestamp::now(),
                reason: error.to_string(),
            });
            if !ever_connected && error.is_permanent() {
                ConnectionGivenUp { error: &error }.emit(&self.stats);
                break Err(error);
            }
            // A session that was connected is followed at once; only repeated failures wait.
            let at_once = connected_for.is_some() && backoff.failures() == 0;
            let delay = match backoff.next_delay() {
                _ if at_once => Duration::ZERO,
                delay => delay,
            };
            ConnectionLost {
                error: &error,
                delay,
                failures: backoff.failures(),
            }
            .emit(&self.stats);
            self.state.send_replace(ConnectionState::Backoff {
                failures: backoff.failures(),
                delay,
                error: error.to_string(),
            });
            tokio::select! {
                _ = cancel.cancelled() => break Ok(()),
                _ = tokio::time::sleep(delay) => {}
            }
        };
        self.state.send_replace(ConnectionState::Stopped);
        result
    }

    fn record(&self, record: Record) {
        if let Some(capture) = &self.capture {
            capture.record(&record);
        }
    }

    /// Whether `key` is seen for the first time (and now remembered): the PBX repeats itself
    /// (every snapshot lists the same unusable object, every repeat GETs the same hidden leg),
    /// the log should not, so events about such things log only the first time.
    fn first_warning(&self, key: String) -> bool {
        let mut warned = self.warned.lock().expect("warned set lock");
        if warned.len() >= WARNED_LIMIT {
            warned.clear();
        }
        warned.insert(key)
    }
}

/// One connection: socket, snapshot, frames.
struct Session<'a> {
    connector: &'a Connector,
    out: &'a mpsc::Sender<Change>,
    cancel: &'a CancellationToken,
    fetches: Fetches,
    last_sequence: Option<u64>,
    connected_at: Option<Instant>,
    /// When the last snapshot for a sequence gap was taken.
    last_gap_snapshot: Option<Instant>,
    /// A snapshot owed to a gap that came too soon after the last one.
    gap_snapshot_due: Option<Instant>,
    /// The time of the last change emitted: times never go backwards in the stream.
    last_at: Option<Timestamp>,
    /// The generation of the token the socket was opened with.
    socket_generation: u64,
    /// After a failed move to a new socket: not before this time again.
    move_retry_at: Option<Instant>,
}

/// How long to keep the old socket after a failed planned move before trying again.
const MOVE_RETRY: Duration = Duration::from_secs(5);

/// The most frames read in one step before the fetches' replies get their turn: a burst of
/// repeats on a large PBX (hundreds of legs) is read whole, and a PBX sending without pause
/// cannot starve the replies.
const FRAMES_PER_STEP: usize = 4096;

impl Session<'_> {
    async fn run(&mut self) -> Stop {
        let mut socket = match self.until_cancelled(self.open()).await {
            Ok((socket, generation)) => {
                self.socket_generation = generation;
                socket
            }
            Err(stop) => return stop,
        };
        let stop = self.serve(&mut socket).await;
        if matches!(stop, Stop::Cancelled | Stop::OutputClosed) {
            socket.close().await;
        }
        stop
    }

    /// Runs `step` unless shutdown is requested first.
    async fn until_cancelled<T>(
        &self,
        step: impl Future<Output = Result<T, Stop>>,
    ) -> Result<T, Stop> {
        tokio::select! {
            _ = self.cancel.cancelled() => Err(Stop::Cancelled),
            result = step => result,
        }
    }

    /// Token, then socket (one re-mint on `401`); the socket with its token's generation.
    async fn open(&self) -> Result<(EventSocket, u64), Stop> {
        let c = self.connector;
        let tokens = c.rest.tokens();
        let token = tokens.token().await?;
        let (socket, token) = match self.connect(&token).await {
            Err(SocketError::Unauthorized) => {
                tracing::info!("the event socket upgrade got 401; minting a new token");
                let fresh = tokens.refresh_after_401(&token).await?;
                (self.connect(&fresh).await?, fresh)
            }
            other => (other?, token),
        };
        c.stats.count_connect();
        c.record(Record::SocketOpened {
            at: Timestamp::now(),
            url: c.config.socket_url().to_string(),
        });
        Ok((socket, token.generation()))
    }

    async fn connect(&self, token: &AccessToken) -> Result<EventSocket, SocketError> {
        let c = self.connector;
        EventSocket::connect(
            &c.config.socket_url(),
            token,
            c.tls.clone(),
            c.config.request_timeout,
            c.config.ping_interval,
        )
        .await
    }

    /// Snapshot, then frames until something fails.
    async fn serve(&mut self, socket: &mut EventSocket) -> Stop {
        let cancel = self.cancel;
        let first = tokio::select! {
            _ = cancel.cancelled() => Err(Stop::Cancelled),
            result = self.snapshot() => result,
        };
        if let Err(stop) = first {
            return stop;
        }
        let since = Timestamp::now();
        self.connected_at = Some(Instant::now());
        self.connector
            .state
            .send_replace(ConnectionState::Connected { since });
        tracing::info!(url = %self.connector.config.socket_url(), "connected to the PBX");
        let every = self.connector.config.resnapshot_interval;
        let mut resnapshot = tokio::time::interval_at(Instant::now() + every, every);
        resnapshot.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut tokens = self.connector.rest.tokens().watch();
        loop {
            let move_at = self.move_due(&tokens.borrow_and_update());
            // Each step may wait on the PBX for a while (snapshots, fetches, a new socket):
            // shutdown interrupts it.
            let step = async {
                tokio::select! {
                    _ = resnapshot.tick() => self.snapshot().await,
                    _ = until(self.gap_snapshot_due) => {
                        resnapshot.reset();
                        self.gap_snapshot().await
                    }
                    _ = until(move_at) => {
                        resnapshot.reset();
                        self.move_to_new_socket(socket).await
                    }
                    // A mint elsewhere (a 401, the XAPI poller): look at the token again.
                    _ = tokens.changed() => Ok(()),
                    answered = self.fetches.answered() => match answered {
                        Ok(()) => self.emit_ready().await,
                        Err(error) => Err(error.into()),
                    },
                    received = socket.next() => match received {
                        Ok(Some(received)) => self.frames(received, socket).await,
                        Ok(None) => Err(Stop::Lost(ConnectorError::Closed)),
                        Err(error) => Err(error.into()),
                    },
                }
            };
            let result = tokio::select! {
                _ = cancel.cancelled() => Err(Stop::Cancelled),
                result = step => result,
            };
            if let Err(stop) = result {
                return stop;
            }
        }
    }

    /// When to move to a new socket: at once when the token changed since the socket was
    /// opened (the PBX invalidates the old one), else at the token's planned refresh; not
    /// before a failed move's retry time.
    fn move_due(&self, token: &TokenState) -> Option<Instant> {
        let due = if token.generation != self.socket_generation {
            Some(Instant::now())
        } else {
            token.refresh_at.map(Instant::from_std)
        }?;
        Some(self.move_retry_at.map_or(due, |retry| due.max(retry)))
    }

    /// The planned token refresh: new token, new socket, the frames still waiting on the old
    /// socket, a snapshot, then the old socket goes. If no new socket can be had, the old one
    /// stays (its token may still be good) and the move is tried again after [`MOVE_RETRY`].
    async fn move_to_new_socket(&mut self, socket: &mut EventSocket) -> Result<(), Stop> {
        self.settle().await?;
        let (fresh, generation) = match self.open().await {
            Ok(opened) => opened,
            Err(Stop::Lost(error)) => {
                tracing::warn!(%error, retry_in_s = MOVE_RETRY.as_secs(), "cannot move to a new event socket after the token refresh; keeping the old one");
                self.move_retry_at = Some(Instant::now() + MOVE_RETRY);
                return Ok(());
            }
            Err(stop) => return Err(stop),
        };
        self.move_retry_at = None;
        self.socket_generation = generation;
        let mut old = std::mem::replace(socket, fresh);
        while let Some(Ok(Some(received))) = old.try_next() {
            self.frame(received).await?;
        }
        self.last_sequence = None;
        tracing::debug!(generation, "moved to a new event socket with the new token");
        tokio::spawn(old.close());
        self.snapshot().await
    }

    /// Processes `first` and then every frame that has already arrived behind it, at most
    /// [`FRAMES_PER_STEP`], before the session turns to the fetches' replies: a burst of
    /// repeats is read whole, so a change that arrived behind it is known, and its fetch
    /// started first (new legs first, then the newest frame, [`super::fetches`]), before the
    /// burst's replies are handled one by one.
    async fn frames(&mut self, first: Received, socket: &mut EventSocket) -> Result<(), Stop> {
        self.frame(first).await?;
        for _ in 1..FRAMES_PER_STEP {
            match socket.try_next() {
                None => break,
                Some(Ok(Some(received))) => self.frame(received).await?,
                Some(Ok(None)) => return Err(Stop::Lost(ConnectorError::Closed)),
                Some(Err(error)) => return Err(error.into()),
            }
        }
        Ok(())
    }

    /// Processes one frame (see the module docs).
    async fn frame(&mut self, received: Received) -> Result<(), Stop> {
        let c = self.connector;
        c.stats.count_frame();
        c.stats.note_frame_at(received.at);
        let parsed = parse_frame(&received.text);
        // A remove's line is written when the remove is emitted, in its place in the order.
        if !matches!(
            &parsed,
            Ok(Frame {
                event: Event::Remove(_),
                ..
            })
        ) {
            c.record(Record::frame(received.at, &received.text));
        }
        let frame = match parsed {
            Ok(frame) => frame,
            Err(error) => {
                FrameMalformed {
                    error: &error,
                    frame: &shorten(&received.text),
                }
                .emit(&c.stats);
                return Ok(());
            }
        };
        if let Some(sequence) = frame.sequence {
            if let Some(last) = self.last_sequence
                && sequence != last.wrapping_add(1)
            {
                self.note_gap(last.wrapping_add(1), sequence);
            }
            self.last_sequence = Some(sequence);
        }
        match frame.event {
            Event::Upsert(entity) => self.fetches.upsert(entity, received.at),
            Event::Remove(entity) => self.fetches.remove(entity, received),
            Event::OtherEntity { .. } => c.stats.count_ignored_entity(),
            Event::Dtmf { .. } | Event::PromptPlaybackFinished { .. } => {
                c.stats.count_ignored_event();
            }
            Event::Unknown { event_type, entity } => UnknownEventSkipped {
                event_type,
                entity: &entity,
            }
            .emit(&c.stats),
        }
        self.emit_ready().await
    }

    /// Frames were lost: a snapshot is owed, at once or when the last gap's snapshot is
    /// `gap_snapshot_every` old; gaps until then share it.
    fn note_gap(&mut self, expected: u64, got: u64) {
        let now = Instant::now();
        let due = self.owe_snapshot();
        SequenceGap {
            expected,
            got,
            snapshot_in: due.saturating_duration_since(now),
        }
        .emit(&self.connector.stats);
    }

    /// Emits every decided result at the front of the fetch order.
    async fn emit_ready(&mut self) -> Result<(), Stop> {
        while let Some(ready) = self.fetches.pop_ready() {
            let c = self.connector;
            match ready {
                Ready::Fetched { fetched, frame_at } => {
                    let at = self.monotonic(frame_at);
                    c.record(Record::participant_reply(&fetched, at));
                    let entity = Entity::parse(&fetched.path)
                        .expect("participant paths are made from entities");
                    match fetched.outcome {
                        ParticipantReply::Found(participant) => {
                            self.emit(Change::Upsert {
                                at,
                                participant: *participant,
                            })
                            .await?;
                        }
                        ParticipantReply::Gone => {
                            self.emit(Change::Remove {
                                at,
                                dn: entity.dn,
                                participant_id: entity.participant_id,
                            })
                            .await?;
                        }
                        ParticipantReply::Hidden => ParticipantHidden {
                            dn: &entity.dn,
                            first: c.first_warning(format!("hidden {}", entity.dn)),
                        }
                        .emit(),
                        ParticipantReply::Unusable(detail) => ParticipantUnusable {
                            path: &fetched.path,
                            detail: &detail,
                            first: c.first_warning(format!("unusable {}", fetched.path)),
                        }
                        .emit(),
                        ParticipantReply::Failed(status) => {
                            ParticipantFetchFailed {
                                path: &fetched.path,
                                status,
                                first: c.first_warning(format!("failed {}", entity.dn)),
                            }
                            .emit();
                            self.owe_snapshot();
                        }
                    }
                }
                Ready::Removed { entity, frame } => {
                    let at = self.monotonic(frame.at);
                    c.record(Record::frame(at, &frame.text));
                    self.emit(Change::Remove {
                        at,
                        dn: entity.dn,
                        participant_id: entity.participant_id,
                    })
                    .await?;
                }
            }
        }
        Ok(())
    }

    /// `at`, or the last emitted time if `at` is earlier (a folded fetch can carry a frame
    /// time later than the slots behind it).
    fn monotonic(&mut self, at: Timestamp) -> Timestamp {
        let at = self.last_at.map_or(at, |last| last.max(at));
        self.last_at = Some(at);
        at
    }

    /// Waits for the fetches under way and emits their results.
    async fn settle(&mut self) -> Result<(), Stop> {
        loop {
            self.emit_ready().await?;
            if self.fetches.is_empty() {
                return Ok(());
            }
            self.fetches.answered().await?;
        }
    }

    /// Something was missed (a sequence gap, a failed fetch): a snapshot is owed, at once or
    /// when the last such snapshot is `gap_snapshot_every` old. Returns when it is due.
    fn owe_snapshot(&mut self) -> Instant {
        let every = self.connector.config.gap_snapshot_every;
        let now = Instant::now();
        *self.gap_snapshot_due.get_or_insert_with(|| {
            self.last_gap_snapshot
                .map_or(now, |last| (last + every).max(now))
        })
    }

    /// The snapshot owed to a sequence gap or a failed fetch.
    async fn gap_snapshot(&mut self) -> Result<(), Stop> {
        self.gap_snapshot_due = None;
        self.last_gap_snapshot = Some(Instant::now());
        self.snapshot().await
    }

    /// Settles the fetches under way, then `GET /callcontrol` and emit it.
    async fn snapshot(&mut self) -> Result<(), Stop> {
        self.settle().await?;
        let c = self.connector;
        let snapshot = c.rest.snapshot().await?;
        for skipped in &snapshot.skipped {
            SnapshotObjectSkipped {
                object: skipped,
                first: c.first_warning(format!("snapshot:{skipped}")),
            }
            .emit(&c.stats);
        }
        self.fetches
            .snapshot_seen(snapshot.dns.iter().flat_map(|dn| {
                dn.participants.iter().map(|participant| Entity {
                    dn: dn.dn.clone(),
                    participant_id: participant.id,
                })
            }));
        let at = self.monotonic(snapshot.at);
        self.emit(Change::snapshot(at, snapshot.dns)).await
    }

    /// Hands a change to the output, waiting for room unless shutdown comes first.
    async fn emit(&self, change: Change) -> Result<(), Stop> {
        tokio::select! {
            _ = self.cancel.cancelled() => Err(Stop::Cancelled),
            sent = self.out.send(change) => match sent {
                Ok(()) => {
                    self.connector.stats.count_change();
                    Ok(())
                }
                Err(_) => Err(Stop::OutputClosed),
            },
        }
    }
}

/// Sleeps until `deadline`; pending forever without one.
async fn until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}
