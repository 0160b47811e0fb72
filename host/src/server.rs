//! The public HTTP server (recordings, `/metrics`, `/healthz`): plain HTTP, or HTTPS with rustls
//! on the `ring` provider, with limits that keep slow or idle clients from using it up.
//!
//! The certificate chain and key are read from PEM files once, at [`HttpServer::bind`], so a
//! bad file stops the start with a message naming it.
//!
//! # Limits ([`ServerLimits`])
//!
//! The server faces the internet (the CRM fetches recordings through it), so every connection is
//! bounded in number and in time:
//! - **at most [`ServerLimits::max_connections`] at once** (512 by default), TLS handshakes
//!   included. The accept loop takes a permit before it accepts, so further clients wait in the
//!   kernel's listen backlog (up to 4096) rather than costing a file descriptor each; a warning
//!   is logged once each time the cap is reached;
//! - **a TLS handshake may take [`ServerLimits::tls_handshake_timeout`]** (10 s), each in its own
//!   task so a slow client holds up nobody else;
//! - **a request's head must arrive within [`ServerLimits::header_read_timeout`]** (10 s),
//!   counted from when the server starts waiting for it: when the connection is accepted or
//!   when the previous response has been sent. hyper enforces it (with tokio's timer), so it is
//!   also the keep-alive time-out: a connection with no next request is closed after it;
//! - **a connection on which no byte moves either way for [`ServerLimits::idle_timeout`]**
//!   (60 s) while no handler is running is closed: a client that stops reading a download, or
//!   stops sending a request body, lets go of its connection. Time spent in a handler does not
//!   count.
//!
//! Connections speak HTTP/1.1 (axum's `http2` feature is off, as before) without upgrades; no
//! route of this server needs one. On shutdown no new connection is accepted, idle ones are
//! closed, and requests in progress finish (each bounded by the limits above).

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::{Semaphore, watch};
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;

#[cfg(test)]
mod tests;

/// A certificate chain and its private key, both PEM files (`server.tls_cert`, `server.tls_key`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The certificate chain, leaf first.
    pub cert: PathBuf,
    /// The private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// The default `server.listen` (ini `[RECORDINGS] LISTEN`), as the legacy `webhooks.ini` of the
/// specification has it: every interface, port 5001, so that the recording links of a
/// `PUBLIC_URL` on port 5001 work without more configuration.
pub const DEFAULT_LISTEN: SocketAddr = SocketAddr::V4(std::net::SocketAddrV4::new(
    std::net::Ipv4Addr::UNSPECIFIED,
    5001,
));
/// How many connections the server holds open at once, by default.
pub const DEFAULT_MAX_CONNECTIONS: usize = 512;
/// How long a client may take to send a request's head, by default.
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a connection may go without a byte either way (no handler running), by default.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a TLS handshake may take, by default.
pub const DEFAULT_TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// How many finished TCP handshakes the kernel holds for the accept loop (it clamps this to
/// `net.core.somaxconn`, 4096 by default on Linux). Clients over the connection cap wait here at
/// no descriptor's cost; once it is full, further clients' handshakes are retried with
/// exponential backoff (1 s, 3 s, 7 s ...), so it is larger than tokio's 1024.
const LISTEN_BACKLOG: u32 = 4096;

/// How long the accept loop pauses after a failed `accept` (e.g. out of file descriptors),
/// instead of spinning.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// Bounds on the server's connections, in number and in time; each field says how it applies.
///
/// ```
/// use callhook::server::ServerLimits;
/// use std::time::Duration;
///
/// let limits = ServerLimits {
///     header_read_timeout: Duration::from_secs(5),
///     ..ServerLimits::default()
/// };
/// assert_eq!(limits.max_connections, 512);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerLimits {
    /// Most connections open at once, TLS handshakes included; more wait in the listen backlog
    /// until one closes. At least 1 (0 is taken as 1). By default 512
    /// ([`DEFAULT_MAX_CONNECTIONS`]).
    pub max_connections: usize,
    /// How long a client may take to send a request line and headers, counted from the accept
    /// or from the end of the previous response (so it is the keep-alive time-out too). By
    /// default 10 s ([`DEFAULT_HEADER_READ_TIMEOUT`]).
    pub header_read_timeout: Duration,
    /// How long a connection may go without reading or writing a byte while no handler runs.
    /// By default 60 s ([`DEFAULT_IDLE_TIMEOUT`]).
    pub idle_timeout: Duration,
    /// How long a TLS handshake may take. By default 10 s ([`DEFAULT_TLS_HANDSHAKE_TIMEOUT`]).
    pub tls_handshake_timeout: Duration,
}

impl Default for ServerLimits {
    fn default() -> Self {
        ServerLimits {
            max_connections: DEFAULT_MAX_CONNECTIONS,
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            tls_handshake_timeout: DEFAULT_TLS_HANDSHAKE_TIMEOUT,
        }
    }
}

/// How many connections a [`HttpServer`] holds open now (a cheap, clonable gauge).
#[derive(Debug, Clone, Default)]
pub struct OpenConnections(Arc<AtomicUsize>);

impl OpenConnections {
    /// The connections open now, TLS handshakes in progress included.
    pub fn get(&self) -> usize {
        self.0.load(Ordering::Relaxed)
    }
}

/// The server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A PEM file could not be read or holds nothing usable.
    #[error("cannot load {what} from {path}: {detail}")]
    Pem {
        /// `the TLS certificate` or `the TLS key`.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// What went wrong.
        detail: String,
    },
    /// rustls refused the certificate and key (e.g. they do not belong together).
    #[error("the TLS certificate {cert} and key {key} cannot be used: {detail}")]
    Tls {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// rustls' complaint.
        detail: String,
    },
}

/// A bound, not yet serving, recordings server.
pub struct HttpServer {
    tcp: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    limits: ServerLimits,
    open: OpenConnections,
}

impl HttpServer {
    /// Binds `addr` and, with `tls`, loads the certificate and key. The limits are the
    /// defaults until [`HttpServer::with_limits`].
    pub async fn bind(addr: SocketAddr, tls: Option<&TlsFiles>) -> Result<Self, ServerError> {
        let tls = tls.map(load_tls).transpose()?;
        let tcp = listen(addr).map_err(|source| ServerError::Bind { addr, source })?;
        Ok(HttpServer {
            tcp,
            tls,
            limits: ServerLimits::default(),
            open: OpenConnections::default(),
        })
    }

    /// Serves with `limits` instead of the defaults.
    pub fn with_limits(mut self, limits: ServerLimits) -> Self {
        self.limits = limits;
        self
    }

    /// The limits it will serve with.
    pub fn limits(&self) -> ServerLimits {
        self.limits
    }

    /// The bound address (useful with port 0).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.tcp.local_addr()
    }

    /// Whether it serves HTTPS.
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// A gauge of the connections open, to read while it serves.
    pub fn open_connections(&self) -> OpenConnections {
        self.open.clone()
    }

    /// Serves `router` until `shutdown` completes, then lets open requests finish.
    pub async fn run(
        self,
        router: Router,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let HttpServer {
            tcp,
            tls,
            limits,
            open,
        } = self;
        let limits = ServerLimits {
            max_connections: limits.max_connections.max(1),
            ..limits
        };
        let tls = tls.map(TlsAcceptor::from);
        // Dropping `stop_rx` tells the accept loop and every connection to wind down; each
        // connection holds a `done_rx` clone, so `done_tx.closed()` waits for the last one.
        let (stop_tx, stop_rx) = watch::channel(());
        tokio::spawn(async move {
            shutdown.await;
            drop(stop_rx);
        });
        let (done_tx, done_rx) = watch::channel(());
        let permits = Arc::new(Semaphore::new(limits.max_connections));
        let mut cap_reported = false;
        loop {
            if permits.available_permits() == 0 && !cap_reported {
                tracing::warn!(
                    max_connections = limits.max_connections,
                    "the HTTP server has as many connections open as it allows; new ones wait"
                );
                cap_reported = true;
            } else if permits.available_permits() > limits.max_connections / 2 {
                cap_reported = false;
            }
            let permit = tokio::select! {
                permit = permits.clone().acquire_owned() => permit.expect("never closed"),
                () = stop_tx.closed() => break,
            };
            let (stream, peer) = tokio::select! {
                accepted = tcp.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        tracing::debug!(%error, "accepting a connection failed");
                        tokio::time::sleep(ACCEPT_BACKOFF).await;
                        continue;
                    }
                },
                () = stop_tx.closed() => break,
            };
            // Small replies (metrics, refusals) go out at once, without Nagle's delay.
            let _ = stream.set_nodelay(true);
            let counted = Counted::new(&open, permit);
            let (router, tls, stop, done) = (
                router.clone(),
                tls.clone(),
                stop_tx.clone(),
                done_rx.clone(),
            );
            tokio::spawn(async move {
                match tls {
                    None => serve_connection(stream, router, &limits, &stop).await,
                    Some(tls) => {
                        let handshake =
                            tokio::time::timeout(limits.tls_handshake_timeout, tls.accept(stream));
                        let stream = tokio::select! {
                            result = handshake => match result {
                                Ok(Ok(stream)) => stream,
                                Ok(Err(error)) => {
                                    tracing::debug!(%peer, %error, "TLS handshake failed");
                                    return;
                                }
                                Err(_) => {
                                    tracing::debug!(%peer, "TLS handshake timed out");
                                    return;
                                }
                            },
                            () = stop.closed() => return,
                        };
                        serve_connection(stream, router, &limits, &stop).await;
                    }
                }
                drop((counted, done));
            });
        }
        drop(done_rx);
        drop(tcp);
        done_tx.closed().await;
        Ok(())
    }
}

/// One open connection: its permit, and its count in the gauge, both given back on drop.
struct Counted {
    open: OpenConnections,
    _permit: tokio::sync::OwnedSemaphorePermit,
}

impl Counted {
    fn new(open: &OpenConnections, permit: tokio::sync::OwnedSemaphorePermit) -> Counted {
        open.0.fetch_add(1, Ordering::Relaxed);
        Counted {
            open: open.clone(),
            _permit: permit,
        }
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.open.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Serves HTTP/1.1 on one connection until the client or a limit ends it, or until shutdown
/// (`stop` closed) lets its current request finish.
async fn serve_connection<I>(io: I, router: Router, limits: &ServerLimits, stop: &watch::Sender<()>)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let activity = Arc::new(Activity::new());
    let io = TokioIo::new(Watched {
        inner: io,
        activity: activity.clone(),
    });
    let handler = TowerToHyperService::new(router);
    let handling = activity.clone();
    let service = hyper::service::service_fn(move |request: http::Request<Incoming>| {
        let busy = Handling::start(&handling);
        let response = hyper::service::Service::call(&handler, request);
        async move {
            let response = response.await;
            drop(busy);
            response
        }
    });
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .keep_alive(true);
    let mut connection = pin!(http.serve_connection(io, service));
    let mut idle = pin!(activity.idle_for(limits.idle_timeout));
    let mut stopping = pin!(stop.closed());
    let mut stopped = false;
    loop {
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(error) = result {
                    tracing::trace!(%error, "connection ended");
                }
                return;
            }
            () = &mut idle => {
                tracing::trace!("closing an idle connection");
                return;
            }
            () = &mut stopping, if !stopped => {
                stopped = true;
                connection.as_mut().graceful_shutdown();
            }
        }
    }
}

/// When a connection last moved a byte, and whether a handler is running on it.
struct Activity {
    origin: Instant,
    /// Milliseconds from `origin` to the last byte read or written, or the last handler's end.
    last: AtomicU64,
    /// Handlers running now (more than one only if a client pipelines).
    busy: AtomicUsize,
}

impl Activity {
    fn new() -> Activity {
        Activity {
            origin: Instant::now(),
            last: AtomicU64::new(0),
            busy: AtomicUsize::new(0),
        }
    }

    fn touch(&self) {
        let now = u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last.store(now, Ordering::Relaxed);
    }

    /// Completes once nothing has moved for `limit` with no handler running.
    async fn idle_for(&self, limit: Duration) {
        loop {
            let last = self.origin + Duration::from_millis(self.last.load(Ordering::Relaxed));
            let deadline = last + limit;
            if Instant::now() < deadline {
                tokio::time::sleep_until(deadline).await;
            } else if self.busy.load(Ordering::Relaxed) == 0 {
                return;
            } else {
                // A handler is running; its end counts as activity, so look again later.
                tokio::time::sleep(limit).await;
            }
        }
    }
}

/// A running handler, counted in [`Activity::busy`] until dropped.
struct Handling(Arc<Activity>);

impl Handling {
    fn start(activity: &Arc<Activity>) -> Handling {
        activity.busy.fetch_add(1, Ordering::Relaxed);
        Handling(activity.clone())
    }
}

impl Drop for Handling {
    fn drop(&mut self) {
        self.0.touch();
        self.0.busy.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A connection's stream, noting in [`Activity`] each time bytes move.
struct Watched<I> {
    inner: I,
    activity: Arc<Activity>,
}

impl<I: AsyncRead + Unpin> AsyncRead for Watched<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.touch();
        }
        polled
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Watched<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// A listening socket on `addr`, as `TcpListener::bind` makes it but with a longer backlog.
fn listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    #[cfg(not(windows))]
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

fn pem_error(what: &'static str, path: &Path, detail: impl ToString) -> ServerError {
    ServerError::Pem {
        what,
        path: path.to_owned(),
        detail: detail.to_string(),
    }
}

/// Reads the PEM files and builds the rustls configuration (ring provider, TLS 1.2 and 1.3).
fn load_tls(files: &TlsFiles) -> Result<Arc<rustls::ServerConfig>, ServerError> {
    let cert_what = "the TLS certificate";
    let chain = CertificateDer::pem_file_iter(&files.cert)
        .map_err(|e| pem_error(cert_what, &files.cert, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error(cert_what, &files.cert, e))?;
    if chain.is_empty() {
        return Err(pem_error(cert_what, &files.cert, "no CERTIFICATE block"));
    }
    let key = PrivateKeyDer::from_pem_file(&files.key)
        .map_err(|e| pem_error("the TLS key", &files.key, e))?;
    let tls_error = |detail: String| ServerError::Tls {
        cert: files.cert.clone(),
        key: files.key.clone(),
        detail,
    };
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| tls_error(e.to_string()))?
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .map_err(|e| tls_error(e.to_string()))?;
    Ok(Arc::new(config))
}
