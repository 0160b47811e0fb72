//! The recordings web server's socket: plain HTTP, or HTTPS with rustls on the `ring` provider.
//!
//! The certificate chain and key are read from PEM files once, at [`RecordingServer::bind`], so a
//! bad file stops the start with a message naming it. With TLS, TCP connections are accepted in
//! a background task and each handshake runs in its own task with a time limit, so a slow or
//! broken client cannot hold up others; finished handshakes are handed to `axum::serve`.

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use super::config::TlsFiles;

/// How long a TLS handshake may take.
const HANDSHAKE_LIMIT: Duration = Duration::from_secs(10);

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
pub struct RecordingServer {
    tcp: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
}

impl RecordingServer {
    /// Binds `addr` and, with `tls`, loads the certificate and key.
    pub async fn bind(addr: SocketAddr, tls: Option<&TlsFiles>) -> Result<Self, ServerError> {
        let tls = tls.map(load_tls).transpose()?;
        let tcp = TcpListener::bind(addr)
            .await
            .map_err(|source| ServerError::Bind { addr, source })?;
        Ok(RecordingServer { tcp, tls })
    }

    /// The bound address (useful with port 0).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.tcp.local_addr()
    }

    /// Whether it serves HTTPS.
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// Serves `router` until `shutdown` completes, then lets open requests finish.
    pub async fn run(
        self,
        router: Router,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        match self.tls {
            None => {
                use axum::serve::ListenerExt;
                let tcp = self.tcp.tap_io(|stream| {
                    let _ = stream.set_nodelay(true);
                });
                axum::serve(tcp, router)
                    .with_graceful_shutdown(shutdown)
                    .await
            }
            Some(config) => {
                let listener = TlsListener::new(self.tcp, config)?;
                axum::serve(listener, router)
                    .with_graceful_shutdown(shutdown)
                    .await
            }
        }
    }
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

/// Finished TLS connections, for `axum::serve`.
struct TlsListener {
    local: SocketAddr,
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    acceptor: JoinHandle<()>,
}

impl TlsListener {
    fn new(tcp: TcpListener, config: Arc<rustls::ServerConfig>) -> std::io::Result<TlsListener> {
        let local = tcp.local_addr()?;
        let (tx, ready) = mpsc::channel(64);
        let tls = TlsAcceptor::from(config);
        let acceptor = tokio::spawn(async move {
            loop {
                let (stream, peer) = match tcp.accept().await {
                    Ok(accepted) => accepted,
                    Err(_) => {
                        // Out of descriptors or similar: back off instead of spinning.
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                // Small replies (metrics, refusals) go out at once, without Nagle's delay.
                let _ = stream.set_nodelay(true);
                let (tls, tx) = (tls.clone(), tx.clone());
                tokio::spawn(async move {
                    let handshake = tokio::time::timeout(HANDSHAKE_LIMIT, tls.accept(stream));
                    if let Ok(Ok(stream)) = handshake.await {
                        let _ = tx.send((stream, peer)).await;
                    }
                });
            }
        });
        Ok(TlsListener {
            local,
            ready,
            acceptor,
        })
    }
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        self.acceptor.abort();
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(connection) => connection,
            // The acceptor is gone only when the listener is being dropped.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}
