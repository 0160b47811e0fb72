//! The plugins' outgoing HTTP: our own sender behind `wasi:http`'s `send_request` hook and
//! behind contract 0.3's `http.send` ([`whole`]).
//!
//! One [`Sender`] per loaded plugin, shared by all its deliveries. It holds:
//! - the plugin's egress policy and a [`Resolver`]. The origin is checked on every request; a
//!   new connection resolves the name once, checks every answer (the special-address list
//!   included) and connects only to a checked address, so a name cannot pass the check and
//!   then point at 169.254.169.254 ([`connector`]);
//! - its TLS settings: the webpki roots plus its `ca_file`, SNI and the certificate checked
//!   against the name, ALPN offering HTTP/2 ([`tls`]);
//! - a pool of kept-alive connections per origin (hyper-util's pooled client), so a fresh
//!   instance reuses the connection the last delivery opened instead of paying a TCP and TLS
//!   handshake. Idle connections close after [`POOL_IDLE_TIMEOUT`]; at most
//!   [`POOL_MAX_IDLE_PER_ORIGIN`] idle ones are kept per origin. HTTP/2 is used where the
//!   server chooses it. At most [`MAX_REQUESTS_PER_ORIGIN`] requests of the plugin's
//!   deliveries together are in flight to one origin (a connection is opened only for a
//!   request, so this caps its open connections there too); more wait for one to end, within
//!   their delivery's time limit, so a busy plugin cannot open hundreds of connections to a
//!   CRM. The pool lives and dies with the [`Plugin`](super::Plugin): a reload
//!   that changes the plugin's `allowed_hosts` or `ca_file` loads a new `Plugin`, and with it
//!   a new, empty pool.
//!
//! Redirects are handed to the plugin, never followed. Time-outs: connecting (name lookup,
//! TCP and TLS) is bounded by the plugin's connect time-out; the answer's head by the
//! response time-out (or the shorter one a guest gives `wasi:http`) after that; each wait
//! between body frames by the same.

mod body;
mod connector;
mod resolver;
mod tls;
mod whole;

pub use connector::ConnectError;
pub use resolver::{Resolution, Resolver, SystemResolver};
pub use tls::{TlsError, client_config};
pub use whole::WholeResponse;

use super::bounds::{DeliveryBounds, check_headers};
use super::egress::{EgressPolicy, Refusal};
use super::limits::PluginLimits;
use http_body_util::BodyExt;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody};

/// How long an idle kept-alive connection stays in the pool. Many servers close idle
/// connections after 60 s; closing ours first avoids sending on a connection being closed.
pub const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(50);
/// The most idle connections kept per plugin and origin.
pub const POOL_MAX_IDLE_PER_ORIGIN: usize = 8;
/// The most requests of one plugin in flight to one origin, all its deliveries together.
pub const MAX_REQUESTS_PER_ORIGIN: usize = 32;

/// Sends one plugin's requests over its own pool of connections.
pub struct Sender {
    policy: Arc<EgressPolicy>,
    limits: PluginLimits,
    stand_in: Option<SocketAddr>,
    client: Client<connector::Connector, WasiBody>,
    origins: OriginSlots,
}

impl std::fmt::Debug for Sender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sender")
            .field("policy", &self.policy)
            .field("stand_in", &self.stand_in)
            .finish_non_exhaustive()
    }
}

impl Sender {
    /// A sender for a plugin with `policy` and `limits`, resolving through `resolver` and
    /// trusting the webpki roots plus `ca_file`. With `stand_in`, every allowed request goes
    /// to that local address over plain HTTP instead (`callhook plugin test`).
    pub fn new(
        policy: Arc<EgressPolicy>,
        limits: PluginLimits,
        resolver: Arc<dyn Resolver>,
        ca_file: Option<&Path>,
        stand_in: Option<SocketAddr>,
    ) -> Result<Self, TlsError> {
        let connector = connector::Connector {
            policy: policy.clone(),
            resolver,
            tls: tokio_rustls::TlsConnector::from(tls::client_config(ca_file)?),
            connect_timeout: limits.connect_timeout,
            stand_in,
        };
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .pool_max_idle_per_host(POOL_MAX_IDLE_PER_ORIGIN)
            .build(connector);
        Ok(Sender {
            policy,
            limits,
            stand_in,
            client,
            origins: OriginSlots::new(MAX_REQUESTS_PER_ORIGIN),
        })
    }

    /// Checks `request` against the policy and the header bounds and sends it, on a pooled
    /// connection if one is idle for its origin. Refusals are recorded in `bounds`; `slot`,
    /// the request's place among those in flight, is held until its body is done.
    pub async fn send(
        &self,
        mut request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        bounds: &DeliveryBounds,
        slot: OwnedSemaphorePermit,
    ) -> Result<http::Response<WasiBody>, Error> {
        let checked = self
            .policy
            .check_origin(request.uri())
            .and_then(|()| check_headers(request.headers()));
        if let Err(refusal) = checked {
            return Err(refused(bounds.refuse(refusal)));
        }
        let origin_slot = self.origins.acquire(request.uri()).await;
        if let Some(stand_in) = self.stand_in {
            redirect_to(&mut request, stand_in)?;
        }
        let (first_byte, between_bytes) = self.response_timeouts(options);
        let head = tokio::time::timeout(
            self.limits.connect_timeout + first_byte,
            self.client.request(request),
        )
        .await
        .map_err(|_| Error::HttpResponseTimeout)?
        .map_err(|error| classify(error, bounds))?;
        let bounds = bounds.clone();
        let max_bytes = self.limits.max_response_bytes;
        Ok(head.map(|incoming| {
            let slots = [slot, origin_slot];
            body::ResponseBody::new(incoming, between_bytes, max_bytes, bounds, slots)
                .boxed_unsync()
        }))
    }

    /// The guest's time-outs for the answer, capped by the host's.
    fn response_timeouts(&self, guest: Option<RequestOptions>) -> (Duration, Duration) {
        let guest = guest.unwrap_or_default();
        let ours = self.limits.response_timeout;
        let cap = |asked: Option<Duration>| asked.map_or(ours, |a| a.min(ours));
        (
            cap(guest.first_byte_timeout),
            cap(guest.between_bytes_timeout),
        )
    }
}

/// The requests in flight to each origin, each origin with its own [`Semaphore`].
struct OriginSlots {
    per_origin: usize,
    origins: std::sync::Mutex<std::collections::HashMap<String, Arc<Semaphore>>>,
}

impl OriginSlots {
    fn new(per_origin: usize) -> Self {
        OriginSlots {
            per_origin,
            origins: std::sync::Mutex::default(),
        }
    }

    /// A slot for one more request to `uri`'s origin, once one is free. Origins are the
    /// plugin's `allowed_hosts`, so the map stays small.
    async fn acquire(&self, uri: &http::Uri) -> OwnedSemaphorePermit {
        let origin = format!(
            "{}://{}",
            uri.scheme_str().unwrap_or(""),
            uri.authority().map_or("", |a| a.as_str())
        );
        let semaphore = self
            .origins
            .lock()
            .expect("origin slots poisoned")
            .entry(origin)
            .or_insert_with(|| Arc::new(Semaphore::new(self.per_origin)))
            .clone();
        semaphore
            .acquire_owned()
            .await
            .expect("origin semaphores are never closed")
    }
}

/// What the plugin is told for a failed request; a refusal is recorded in `bounds` too.
fn classify(error: hyper_util::client::legacy::Error, bounds: &DeliveryBounds) -> Error {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&error);
    while let Some(cause) = source {
        if let Some(connect) = cause.downcast_ref::<ConnectError>() {
            return match connect {
                ConnectError::Refused(refusal) => refused(bounds.refuse(refusal.clone())),
                ConnectError::Timeout(_) => Error::ConnectionTimeout,
                ConnectError::Io(_) => Error::ConnectionRefused,
                ConnectError::Tls(_) => Error::TlsCertificateError,
            };
        }
        source = cause.source();
    }
    tracing::debug!(error = %error, "a plugin's request failed");
    Error::HttpProtocolError
}

/// The error code a plugin gets for a refused request.
pub fn refused(refusal: Refusal) -> Error {
    if refusal.is_address() {
        Error::DestinationIpProhibited
    } else if refusal.is_limit() {
        Error::ConnectionLimitReached
    } else {
        Error::HttpRequestDenied
    }
}

/// Points `request` at the stand-in over plain HTTP, keeping its path and query and carrying
/// its real URL in [`ORIGINAL_URL_HEADER`](super::ORIGINAL_URL_HEADER).
fn redirect_to(request: &mut http::Request<WasiBody>, stand_in: SocketAddr) -> Result<(), Error> {
    let original = request.uri().to_string();
    let path = request
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_string();
    *request.uri_mut() = http::Uri::builder()
        .scheme("http")
        .authority(stand_in.to_string())
        .path_and_query(path)
        .build()
        .map_err(|_| Error::HttpRequestUriInvalid)?;
    let value = http::HeaderValue::from_str(&original).map_err(|_| Error::HttpRequestUriInvalid)?;
    request
        .headers_mut()
        .insert(super::ORIGINAL_URL_HEADER, value);
    Ok(())
}
