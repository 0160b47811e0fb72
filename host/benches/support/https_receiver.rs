//! An HTTPS receiver for benches and tests: a certificate for `localhost` from a fresh test CA,
//! answering `ok` to every request over HTTP/1.1 or, when the client picks it by ALPN and it is
//! offered, HTTP/2. It counts completed TLS handshakes and HTTP/2 requests, and can close every
//! connection after its answer (to measure deliveries without connection reuse).
//!
//! The `https` bench includes it with `#[path = "support/https_receiver.rs"]`, the egress tests
//! with `#[path = "../../benches/support/https_receiver.rs"]`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A running receiver.
pub struct HttpsReceiver {
    /// The test CA, PEM.
    pub ca_pem: String,
    /// Its port on 127.0.0.1.
    pub port: u16,
    handshakes: Arc<AtomicUsize>,
    http2_requests: Arc<AtomicUsize>,
}

impl HttpsReceiver {
    /// Starts a receiver offering the protocols `alpn` (e.g. `[b"h2", b"http/1.1"]`); with
    /// `keep_alive` false an HTTP/1.1 connection is closed after one answer.
    pub async fn start(alpn: &[&[u8]], keep_alive: bool) -> HttpsReceiver {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let issuer = rcgen::Issuer::from_params(&ca_params, &ca_key);
        let key = rcgen::KeyPair::generate().unwrap();
        let leaf = rcgen::CertificateParams::new(vec!["localhost".to_string()])
            .unwrap()
            .signed_by(&key, &issuer)
            .unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![leaf.der().clone()],
                rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
            )
            .unwrap();
        config.alpn_protocols = alpn.iter().map(|protocol| protocol.to_vec()).collect();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let handshakes = Arc::new(AtomicUsize::new(0));
        let http2_requests = Arc::new(AtomicUsize::new(0));
        let (counted, http2) = (handshakes.clone(), http2_requests.clone());
        tokio::spawn(async move {
            loop {
                let (tcp, _) = listener.accept().await.unwrap();
                let _ = tcp.set_nodelay(true);
                let acceptor = acceptor.clone();
                let (counted, http2) = (counted.clone(), http2.clone());
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    counted.fetch_add(1, Ordering::SeqCst);
                    let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
                    let service = hyper::service::service_fn(move |request| {
                        if request.version() == hyper::Version::HTTP_2 {
                            http2.fetch_add(1, Ordering::SeqCst);
                        }
                        async {
                            Ok::<_, std::convert::Infallible>(hyper::Response::new(
                                http_body_util::Full::new(bytes::Bytes::from_static(b"ok")),
                            ))
                        }
                    });
                    let io = hyper_util::rt::TokioIo::new(tls);
                    let _ = if h2 {
                        hyper::server::conn::http2::Builder::new(
                            hyper_util::rt::TokioExecutor::new(),
                        )
                        .serve_connection(io, service)
                        .await
                    } else {
                        hyper::server::conn::http1::Builder::new()
                            .keep_alive(keep_alive)
                            .serve_connection(io, service)
                            .await
                    };
                });
            }
        });
        HttpsReceiver {
            ca_pem: ca.pem(),
            port,
            handshakes,
            http2_requests,
        }
    }

    /// TLS handshakes completed so far.
    pub fn handshakes(&self) -> usize {
        self.handshakes.load(Ordering::SeqCst)
    }

    /// Requests received over HTTP/2 so far.
    #[allow(dead_code, reason = "used by the egress tests, not by the https bench")]
    pub fn http2_requests(&self) -> usize {
        self.http2_requests.load(Ordering::SeqCst)
    }
}
