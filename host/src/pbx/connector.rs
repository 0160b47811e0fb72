//! The connector loop: keeps one event socket open and turns what it says into [`Change`]s.
//!
//! # One session
//!
//! 1. Get a token; open `/callcontrol/ws` with it. A `401` on the upgrade re-mints the token
//!    once and tries again at once (the token may have been superseded by another login).
//! 2. **Then** take a snapshot (`GET /callcontrol`) and emit it: the socket is open first, so
//!    every change after the snapshot arrives as a frame, and frames that raced the snapshot
//!    are merely applied twice (the engine is idempotent).
//! 3. Read frames. Frames already waiting are taken as a batch (up to
//!    [`ConnectorConfig::batch_limit`]) and processed in order, one at a time:
//!    - a **`sequence` gap** (any step other than +1) means frames were lost: take a snapshot
//!      before going on;
//!    - an **upsert** fetches its participant and emits [`Change::Upsert`], or
//!      [`Change::Remove`] if the fetch answers `404`; the fetch is skipped when a later frame of
//!      the same batch names the same participant, since that one's fetch or remove tells the
//!      newer truth (this absorbs duplicate frames for free);
//!    - a **remove** emits [`Change::Remove`];
//!    - DTMF and prompt events are counted and ignored; malformed frames and unknown event
//!      types are logged, counted and skipped (a malformed frame also shows up as a sequence
//!      gap, so the next valid frame causes a snapshot: whatever it was, nothing is lost).
//! 4. Every `resnapshot_interval` (60 s by default) a snapshot is taken anyway.
//!
//! Processing one frame at a time keeps the output in the PBX's order and makes a capture
//! replay to exactly the same stream (see [`super::capture`]).
//!
//! # Between sessions
//!
//! Any failure (socket closed or silent, REST error, token trouble) ends the session; the
//! connector publishes [`ConnectionState::Backoff`], waits (capped exponential backoff with
//! jitter, `backoff_min` 1 s to `backoff_max` 60 s by default) and starts a new session, whose
//! snapshot lets the engine close the calls that ended meanwhile. The backoff starts over once
//! a session has stayed connected for `min(30 s, backoff_max)`, so a PBX that accepts and
//! drops at once is not hammered.
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

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use tokio::sync::{mpsc, watch};
use tokio::time::{Instant, Interval, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use super::Change;
use super::backoff::Backoff;
use super::capture::{CaptureWriter, FORMAT_VERSION, Record, snapshot_change};
use super::config::ConnectorConfig;
use super::http::{self, TlsSetupError, TransportError};
use super::rest::{RestClient, RestError};
use super::socket::{
    Entity, Event, EventSocket, Frame, FrameError, Received, SocketError, parse_frame,
};
use super::stats::ConnectorStats;
use super::token::{TokenError, TokenManager, shorten};

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
}

impl Connector {
    /// Sets up TLS (reading `ca_file`), the HTTP client and the token manager. Nothing is sent
    /// until [`Connector::run`]. With `capture`, every frame and GET reply is recorded there,
    /// starting with a `start` line.
    pub fn new(
        config: ConnectorConfig,
        capture: Option<CaptureWriter>,
    ) -> Result<Connector, ConnectorError> {
        config.check().map_err(ConnectorError::Setup)?;
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
                last_sequence: None,
                connected_at: None,
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
            self.stats.count_disconnect();
            self.record(Record::SocketClosed {
                at: Timestamp::now(),
                reason: error.to_string(),
            });
            if !ever_connected && error.is_permanent() {
                tracing::error!(%error, "cannot connect to the PBX; giving up");
                break Err(error);
            }
            let delay = backoff.next_delay();
            tracing::warn!(
                %error,
                delay_ms = delay.as_millis() as u64,
                failures = backoff.failures(),
                "lost the PBX connection; reconnecting"
            );
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
}

/// One connection: socket, snapshot, frames.
struct Session<'a> {
    connector: &'a Connector,
    out: &'a mpsc::Sender<Change>,
    cancel: &'a CancellationToken,
    last_sequence: Option<u64>,
    connected_at: Option<Instant>,
}

impl Session<'_> {
    async fn run(&mut self) -> Stop {
        let mut socket = match self.until_cancelled(self.open()).await {
            Ok(socket) => socket,
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

    /// Token, then socket (one re-mint on `401`).
    async fn open(&self) -> Result<EventSocket, Stop> {
        let c = self.connector;
        let tokens = c.rest.tokens();
        let url = c.config.socket_url();
        let connect = |token| {
            EventSocket::connect(
                &url,
                token,
                c.tls.clone(),
                c.config.request_timeout,
                c.config.ping_interval,
            )
        };
        let token = tokens.token().await?;
        let socket = match connect(&token).await {
            Err(SocketError::Unauthorized) => {
                tracing::info!("the event socket upgrade got 401; minting a new token");
                let fresh = tokens.refresh_after_401(&token).await?;
                connect(&fresh).await?
            }
            other => other?,
        };
        c.stats.count_connect();
        c.record(Record::SocketOpened {
            at: Timestamp::now(),
            url: url.to_string(),
        });
        Ok(socket)
    }

    /// Snapshot, then frames until something fails.
    async fn serve(&mut self, socket: &mut EventSocket) -> Stop {
        match self.until_cancelled(self.snapshot()).await {
            Ok(()) => {}
            Err(stop) => return stop,
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
        loop {
            let result = tokio::select! {
                _ = self.cancel.cancelled() => Err(Stop::Cancelled),
                _ = resnapshot.tick() => self.snapshot().await,
                received = socket.next() => match received {
                    Ok(Some(first)) => self.batch(socket, first, &mut resnapshot).await,
                    Ok(None) => Err(Stop::Lost(ConnectorError::Closed)),
                    Err(error) => Err(error.into()),
                },
            };
            if let Err(stop) = result {
                return stop;
            }
        }
    }

    /// Takes the frames already waiting after `first` and processes them all.
    async fn batch(
        &mut self,
        socket: &mut EventSocket,
        first: Received,
        resnapshot: &mut Interval,
    ) -> Result<(), Stop> {
        let mut batch = vec![first];
        let mut ended = None;
        while batch.len() < self.connector.config.batch_limit.max(1) {
            match socket.try_next() {
                None => break,
                Some(Ok(Some(received))) => batch.push(received),
                Some(Ok(None)) => {
                    ended = Some(Stop::Lost(ConnectorError::Closed));
                    break;
                }
                Some(Err(error)) => {
                    ended = Some(error.into());
                    break;
                }
            }
        }
        let frames: Vec<Result<Frame, FrameError>> =
            batch.iter().map(|r| parse_frame(&r.text)).collect();
        // The last frame of the batch naming each participant: earlier upserts need no fetch.
        let mut last_mention: HashMap<&Entity, usize> = HashMap::new();
        for (index, frame) in frames.iter().enumerate() {
            if let Ok(Frame {
                event: Event::Upsert(entity) | Event::Remove(entity),
                ..
            }) = frame
            {
                last_mention.insert(entity, index);
            }
        }
        for (index, (received, frame)) in batch.iter().zip(&frames).enumerate() {
            let superseded =
                |entity: &Entity| last_mention.get(entity).is_some_and(|&last| last > index);
            self.frame(received, frame, superseded, resnapshot).await?;
        }
        match ended {
            Some(stop) => Err(stop),
            None => Ok(()),
        }
    }

    /// Processes one frame (see the module docs).
    async fn frame(
        &mut self,
        received: &Received,
        frame: &Result<Frame, FrameError>,
        superseded: impl Fn(&Entity) -> bool,
        resnapshot: &mut Interval,
    ) -> Result<(), Stop> {
        let c = self.connector;
        c.record(Record::frame(received.at, &received.text));
        c.stats.count_frame();
        let frame = match frame {
            Ok(frame) => frame,
            Err(error) => {
                c.stats.count_malformed_frame();
                tracing::warn!(%error, frame = %shorten(&received.text), "skipped a malformed event frame");
                return Ok(());
            }
        };
        if let Some(sequence) = frame.sequence {
            if let Some(last) = self.last_sequence
                && sequence != last.wrapping_add(1)
            {
                c.stats.count_sequence_gap();
                tracing::warn!(
                    expected = last.wrapping_add(1),
                    got = sequence,
                    "event sequence gap; taking a snapshot"
                );
                self.snapshot().await?;
                resnapshot.reset();
            }
            self.last_sequence = Some(sequence);
        }
        match &frame.event {
            Event::Upsert(entity) if superseded(entity) => {
                c.stats.count_fetch_skipped();
            }
            Event::Upsert(entity) => {
                let (at, participant) = c
                    .rest
                    .participant(&entity.dn, entity.participant_id)
                    .await?;
                let change = match participant {
                    Some(participant) => Change::Upsert { at, participant },
                    None => Change::Remove {
                        at,
                        dn: entity.dn.clone(),
                        participant_id: entity.participant_id,
                    },
                };
                self.emit(change).await?;
            }
            Event::Remove(entity) => {
                self.emit(Change::Remove {
                    at: received.at,
                    dn: entity.dn.clone(),
                    participant_id: entity.participant_id,
                })
                .await?;
            }
            Event::Dtmf { .. } | Event::PromptPlaybackFinished { .. } => {
                c.stats.count_ignored_event();
            }
            Event::Unknown { event_type, entity } => {
                c.stats.count_unknown_event();
                tracing::warn!(event_type, %entity, "skipped an event of unknown type");
            }
        }
        Ok(())
    }

    /// `GET /callcontrol` and emit it.
    async fn snapshot(&self) -> Result<(), Stop> {
        let snapshot = self.connector.rest.snapshot().await?;
        self.emit(snapshot_change(snapshot.at, snapshot.dns)).await
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
