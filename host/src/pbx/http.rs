//! TLS setup and transport errors shared by the token manager, the REST client and the socket.
//!
//! One rustls configuration serves HTTPS and WSS alike: the public web roots (webpki-roots)
//! plus, optionally, the certificates of a PEM file (a PBX with a self-signed or private CA).
//! The crypto provider is named explicitly (ring), so nothing depends on a process-wide default.
//! No ALPN is offered: the PBX speaks HTTP/1.1, which the WebSocket upgrade needs anyway.
//!
//! Redirects are never followed (see [`http_client`]): the token request carries the client
//! secret and every other request the bearer token, which must go nowhere but the PBX.
//!
//! Transport failures are sorted into what an administrator can act on: the PBX cannot be
//! reached (address, port, firewall), TLS failed (certificate: trust its CA), or it did not
//! answer in time. reqwest and tungstenite both wrap the underlying error several layers deep,
//! so [`TransportError::classify`] walks the `source()` chain looking for a rustls error.

use std::error::Error as StdError;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

/// The PBX could not be talked to at all (no HTTP status was received).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransportError {
    /// No connection: wrong address or port, PBX down, firewall.
    #[error("cannot reach the PBX at {url}: {detail}")]
    Unreachable {
        /// What was being requested.
        url: String,
        /// The innermost cause, e.g. "Connection refused (os error 111)".
        detail: String,
    },
    /// The TLS handshake failed, most often because the PBX's certificate is not trusted.
    #[error(
        "TLS with the PBX at {url} failed: {detail}; if the PBX uses a self-signed or private \
         certificate, trust its CA with the `ca_file` setting"
    )]
    Tls {
        /// What was being requested.
        url: String,
        /// rustls's reason, e.g. "invalid peer certificate: UnknownIssuer".
        detail: String,
    },
    /// The PBX accepted the connection but did not answer in time.
    #[error("the PBX at {url} did not answer within {timeout:?}")]
    Timeout {
        /// What was being requested.
        url: String,
        /// The time limit that passed.
        timeout: Duration,
    },
    /// The connection broke during the exchange, or the reply was not HTTP.
    #[error("the exchange with the PBX at {url} failed: {detail}")]
    Broken {
        /// What was being requested.
        url: String,
        /// The innermost cause.
        detail: String,
    },
}

impl TransportError {
    /// Sorts a reqwest error (one without an HTTP status) for `url`.
    pub(crate) fn classify(url: &str, error: &reqwest::Error, timeout: Duration) -> TransportError {
        let url = url.to_owned();
        if let Some(detail) = tls_cause(error) {
            return TransportError::Tls { url, detail };
        }
        if error.is_timeout() {
            return TransportError::Timeout { url, timeout };
        }
        let detail = innermost(error);
        if error.is_connect() {
            TransportError::Unreachable { url, detail }
        } else {
            TransportError::Broken { url, detail }
        }
    }

    /// Sorts an I/O-level error of the WebSocket connection for `url`.
    pub(crate) fn classify_other(
        url: &str,
        error: &(dyn StdError + 'static),
        connecting: bool,
    ) -> TransportError {
        let url = url.to_owned();
        if let Some(detail) = tls_cause(error) {
            return TransportError::Tls { url, detail };
        }
        let detail = innermost(error);
        if connecting {
            TransportError::Unreachable { url, detail }
        } else {
            TransportError::Broken { url, detail }
        }
    }
}

/// The rustls error somewhere in `error`'s cause chain, as text.
fn tls_cause(error: &(dyn StdError + 'static)) -> Option<String> {
    let mut current: Option<&(dyn StdError + 'static)> = Some(error);
    while let Some(e) = current {
        if let Some(tls) = e.downcast_ref::<rustls::Error>() {
            return Some(tls.to_string());
        }
        current = cause(e);
    }
    None
}

/// The next error down the chain. An `io::Error` wrapping another error reports that error's
/// *source* as its own, skipping the wrapped error itself; hyper and tokio-rustls nest the
/// rustls error two `io::Error`s deep, so descend into the wrapped error instead.
fn cause<'a>(error: &'a (dyn StdError + 'static)) -> Option<&'a (dyn StdError + 'static)> {
    if let Some(io) = error.downcast_ref::<std::io::Error>()
        && let Some(inner) = io.get_ref()
    {
        return Some(inner);
    }
    error.source()
}

/// The message of the deepest cause: the one that says what actually happened.
fn innermost(error: &(dyn StdError + 'static)) -> String {
    let mut deepest = error;
    while let Some(next) = cause(deepest) {
        deepest = next;
    }
    deepest.to_string()
}

/// The extra CA file could not be used, or the HTTP client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    /// The file could not be read.
    #[error("cannot read the CA file {path}: {source}")]
    Read {
        /// The `ca_file` setting.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not PEM or holds no `CERTIFICATE` section.
    #[error("the CA file {path} holds no PEM certificate{}", detail.as_deref().map(|d| format!(" ({d})")).unwrap_or_default())]
    NoCertificate {
        /// The `ca_file` setting.
        path: PathBuf,
        /// The PEM parser's complaint, if any.
        detail: Option<String>,
    },
    /// rustls refused a certificate of the file.
    #[error(
        "the CA file {path} holds a certificate that cannot be used as a trust anchor: {source}"
    )]
    BadCertificate {
        /// The `ca_file` setting.
        path: PathBuf,
        /// rustls's reason.
        source: rustls::Error,
    },
    /// rustls or reqwest refused the configuration (a bug rather than a setting).
    #[error("cannot set up the HTTPS client: {0}")]
    Client(String),
}

/// The rustls client configuration: web roots plus the certificates of `ca_file`.
pub(crate) fn tls_config(
    ca_file: Option<&Path>,
) -> Result<Arc<rustls::ClientConfig>, TlsSetupError> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = ca_file {
        for certificate in read_ca_file(path)? {
            roots
                .add(certificate)
                .map_err(|source| TlsSetupError::BadCertificate {
                    path: path.to_owned(),
                    source,
                })?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsSetupError::Client(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// Every `CERTIFICATE` section of a PEM file; at least one.
fn read_ca_file(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsSetupError> {
    let pem = std::fs::read(path).map_err(|source| TlsSetupError::Read {
        path: path.to_owned(),
        source,
    })?;
    let certificates: Result<Vec<_>, _> = CertificateDer::pem_slice_iter(&pem).collect();
    match certificates {
        Ok(certificates) if !certificates.is_empty() => Ok(certificates),
        Ok(_) => Err(TlsSetupError::NoCertificate {
            path: path.to_owned(),
            detail: None,
        }),
        Err(e) => Err(TlsSetupError::NoCertificate {
            path: path.to_owned(),
            detail: Some(e.to_string()),
        }),
    }
}

/// The HTTP client for token, REST and XAPI requests.
///
/// It follows no redirects: a `3xx` reaches the caller as it is, which reports it as an error.
/// Following one would send the client secret (a `307` repeats the token request's body) or
/// the bearer token to wherever the redirect points.
pub(crate) fn http_client(
    tls: &rustls::ClientConfig,
    timeout: Duration,
) -> Result<reqwest::Client, TlsSetupError> {
    reqwest::Client::builder()
        .use_preconfigured_tls(tls.clone())
        .redirect(reqwest::redirect::Policy::none())
        .timeout(timeout)
        .connect_timeout(timeout)
        .user_agent(concat!("callhook/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| TlsSetupError::Client(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_a_missing_ca_file() {
        let error = tls_config(Some(Path::new("/nonexistent/ca.pem"))).unwrap_err();
        assert!(matches!(error, TlsSetupError::Read { .. }), "{error}");
        assert!(error.to_string().contains("/nonexistent/ca.pem"), "{error}");
    }

    #[test]
    fn rejects_a_ca_file_without_certificates() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.pem");
        std::fs::write(&path, "not a certificate\n").unwrap();
        let error = tls_config(Some(&path)).unwrap_err();
        assert!(
            matches!(error, TlsSetupError::NoCertificate { .. }),
            "{error}"
        );
    }

    #[test]
    fn accepts_no_ca_file() {
        assert!(tls_config(None).is_ok());
    }

    #[test]
    fn finds_rustls_errors_nested_in_io_errors() {
        use std::io::{Error, ErrorKind};
        let tls = rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer);
        let nested = Error::other(Error::new(ErrorKind::InvalidData, tls));
        let sorted = TransportError::classify_other("https://pbx", &nested, true);
        assert!(
            matches!(&sorted, TransportError::Tls { detail, .. } if detail.contains("UnknownIssuer")),
            "{sorted:?}"
        );
        assert!(sorted.to_string().contains("ca_file"), "{sorted}");
    }

    #[test]
    fn innermost_cause_is_reported() {
        #[derive(Debug, thiserror::Error)]
        #[error("outer")]
        struct Outer(#[source] std::io::Error);
        let error = Outer(std::io::Error::new(
            std::io::ErrorKind::ConnectionRefused,
            "refused",
        ));
        let sorted = TransportError::classify_other("https://pbx", &error, true);
        assert_eq!(
            sorted,
            TransportError::Unreachable {
                url: "https://pbx".into(),
                detail: "refused".into()
            }
        );
    }
}
