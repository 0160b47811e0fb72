//! Opens the connections the pool keeps: resolves the name once through the plugin's
//! [`Resolver`], checks every answer against the egress policy, connects to a checked address
//! (never resolving again), sets `TCP_NODELAY`, and speaks TLS with SNI and the certificate
//! checked against the name. ALPN tells the pool whether the server chose HTTP/2.

use super::resolver::Resolver;
use crate::runtime::egress::{EgressPolicy, Refusal};
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::rt::TokioIo;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

/// Why no connection was opened.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The egress policy refused the destination or one of its addresses.
    #[error("{0}")]
    Refused(Refusal),
    /// No checked address answered within the connect time-out.
    #[error("connecting timed out after {} ms", .0.as_millis())]
    Timeout(Duration),
    /// Every checked address refused the connection.
    #[error("could not connect: {0}")]
    Io(io::Error),
    /// The TLS handshake failed (for instance an untrusted certificate).
    #[error("TLS handshake failed: {0}")]
    Tls(io::Error),
}

/// The pool's connector for one plugin.
#[derive(Clone)]
pub struct Connector {
    pub(super) policy: Arc<EgressPolicy>,
    pub(super) resolver: Arc<dyn Resolver>,
    pub(super) tls: tokio_rustls::TlsConnector,
    pub(super) connect_timeout: Duration,
    /// Where every connection goes instead (`callhook plugin test`), unchecked and plain.
    pub(super) stand_in: Option<SocketAddr>,
}

impl tower_service::Service<http::Uri> for Connector {
    type Response = TokioIo<Stream>;
    type Error = ConnectError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, ConnectError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), ConnectError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: http::Uri) -> Self::Future {
        let this = self.clone();
        Box::pin(async move { this.connect(uri).await.map(TokioIo::new) })
    }
}

impl Connector {
    async fn connect(self, uri: http::Uri) -> Result<Stream, ConnectError> {
        let timeout = self.connect_timeout;
        if let Some(stand_in) = self.stand_in {
            return Ok(Stream::Plain(
                connect_any(&[stand_in.ip()], stand_in.port(), timeout).await?,
            ));
        }
        let addresses = self
            .policy
            .check(&uri, self.resolver.as_ref())
            .await
            .map_err(ConnectError::Refused)?;
        let https = uri.scheme() == Some(&http::uri::Scheme::HTTPS);
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        let tcp = connect_any(&addresses, port, timeout).await?;
        if !https {
            return Ok(Stream::Plain(tcp));
        }
        let host = uri.host().unwrap_or_default();
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let name = rustls::pki_types::ServerName::try_from(host.to_string()).map_err(|e| {
            ConnectError::Tls(io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))
        })?;
        match tokio::time::timeout(timeout, self.tls.connect(name, tcp)).await {
            Ok(Ok(tls)) => Ok(Stream::Tls(Box::new(tls))),
            Ok(Err(error)) => Err(ConnectError::Tls(error)),
            Err(_) => Err(ConnectError::Timeout(timeout)),
        }
    }
}

/// Connects to the first of `addresses` that answers, within `timeout` in all.
async fn connect_any(
    addresses: &[IpAddr],
    port: u16,
    timeout: Duration,
) -> Result<TcpStream, ConnectError> {
    let attempt = async {
        let mut last = io::Error::new(io::ErrorKind::NotFound, "the name has no address");
        for &address in addresses {
            match TcpStream::connect(SocketAddr::new(address, port)).await {
                Ok(stream) => {
                    stream.set_nodelay(true).map_err(ConnectError::Io)?;
                    return Ok(stream);
                }
                Err(error) => last = error,
            }
        }
        Err(ConnectError::Io(last))
    };
    tokio::time::timeout(timeout, attempt)
        .await
        .map_err(|_| ConnectError::Timeout(timeout))?
}

/// A connection, plain or TLS.
#[derive(Debug)]
pub enum Stream {
    /// Plain TCP.
    Plain(TcpStream),
    /// TLS over TCP.
    Tls(Box<TlsStream<TcpStream>>),
}

impl Connection for Stream {
    fn connected(&self) -> Connected {
        match self {
            Stream::Plain(_) => Connected::new(),
            Stream::Tls(tls) if tls.get_ref().1.alpn_protocol() == Some(b"h2") => {
                Connected::new().negotiated_h2()
            }
            Stream::Tls(_) => Connected::new(),
        }
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}
