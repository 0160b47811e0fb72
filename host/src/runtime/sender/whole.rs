//! Contract 0.3's `http.send`: a plugin's whole request in one host call.
//!
//! The request is checked as `wasi:http` checks the parts a guest builds (method, absolute
//! `http`/`https` URL, header names and values, none of its forbidden fields), then goes
//! through [`Sender::send`] like any other: policy, bounds, pool, time-outs. It is sent in the
//! delivery's own task, so none of its work changes threads, and the whole answer is read
//! within the plugin's `max_response_kb`. A failure is the `wasi:http` error code the plugin
//! would have got over `wasi:http`.

use super::super::bounds::{DeliveryBounds, check_header_fields};
use super::{Sender, refused};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use wasmtime_wasi_http::p2::bindings::http::types::{
    DnsErrorPayload, ErrorCode, FieldSizePayload, TlsAlertReceivedPayload,
};
use wasmtime_wasi_http::{DEFAULT_FORBIDDEN_HEADERS, Error, WasiBody};

impl Sender {
    /// Sends a whole request (method, absolute URL, header fields, body) within the
    /// delivery's `bounds` and reads the whole answer.
    pub async fn send_whole(
        &self,
        method: &str,
        url: &str,
        headers: Vec<(String, Vec<u8>)>,
        body: Vec<u8>,
        bounds: &DeliveryBounds,
    ) -> Result<WholeResponse, ErrorCode> {
        let bytes = headers.iter().map(|(name, value)| name.len() + value.len());
        check_header_fields(headers.len(), bytes.sum())
            .map_err(|refusal| error_code(refused(bounds.refuse(refusal))))?;
        let request = whole_request(method, url, headers, body)?;
        let slot = bounds
            .request_slot()
            .map_err(|refusal| error_code(refused(refusal)))?;
        let response = self
            .send(request, None, bounds, slot)
            .await
            .map_err(error_code)?;
        let (head, body) = response.into_parts();
        let body = body.collect().await.map_err(error_code)?.to_bytes();
        Ok(WholeResponse {
            status: head.status.as_u16(),
            headers: head
                .headers
                .iter()
                .filter(|(name, _)| !DEFAULT_FORBIDDEN_HEADERS.contains(name))
                .map(|(name, value)| (name.as_str().to_owned(), value.as_bytes().to_vec()))
                .collect(),
            body: body.to_vec(),
        })
    }
}

/// The whole answer to a request sent with [`Sender::send_whole`].
pub struct WholeResponse {
    /// The status code.
    pub status: u16,
    /// The header fields, in order.
    pub headers: Vec<(String, Vec<u8>)>,
    /// The whole body.
    pub body: Vec<u8>,
}

/// A plugin's whole request as `wasi:http` would have built it: an absolute `http`/`https`
/// URL, a valid method, valid header fields, none that `wasi:http` forbids, a `content-length`
/// (if the plugin gives one) that is the body's. An empty body of a method that carries one
/// (`POST`, `PUT`, `PATCH`) is sent with `content-length: 0`, as RFC 9110 asks; a body is
/// otherwise sent with its length, never chunked.
fn whole_request(
    method: &str,
    url: &str,
    headers: Vec<(String, Vec<u8>)>,
    body: Vec<u8>,
) -> Result<http::Request<WasiBody>, ErrorCode> {
    let method = http::Method::from_bytes(method.as_bytes())
        .map_err(|_| ErrorCode::HttpRequestMethodInvalid)?;
    let uri: http::Uri = url.parse().map_err(|_| ErrorCode::HttpRequestUriInvalid)?;
    if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.authority().is_none() {
        return Err(ErrorCode::HttpRequestUriInvalid);
    }
    let mut builder = http::Request::builder().method(method).uri(uri);
    for (name, value) in headers {
        let invalid = |field_name: Option<String>| {
            ErrorCode::HttpRequestHeaderSize(Some(FieldSizePayload {
                field_name,
                field_size: None,
            }))
        };
        let name = http::HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| invalid(Some(name.clone())))?;
        if DEFAULT_FORBIDDEN_HEADERS.contains(&name) {
            return Err(invalid(Some(name.to_string())));
        }
        let value =
            http::HeaderValue::from_bytes(&value).map_err(|_| invalid(Some(name.to_string())))?;
        if name == http::header::CONTENT_LENGTH {
            let length = value
                .to_str()
                .ok()
                .filter(|v| v.bytes().all(|b| b.is_ascii_digit()));
            match length.and_then(|v| v.parse::<u64>().ok()) {
                None => return Err(invalid(Some(name.to_string()))),
                Some(length) if length != body.len() as u64 => {
                    return Err(ErrorCode::HttpRequestBodySize(Some(body.len() as u64)));
                }
                // Hyper sets it from the body.
                Some(_) => continue,
            }
        }
        builder = builder.header(name, value);
    }
    let carries_body = [http::Method::POST, http::Method::PUT, http::Method::PATCH];
    if body.is_empty()
        && builder
            .method_ref()
            .is_some_and(|m| carries_body.contains(m))
    {
        builder = builder.header(http::header::CONTENT_LENGTH, 0);
    }
    let body = Full::new(Bytes::from(body))
        .map_err(|never| match never {})
        .boxed_unsync();
    builder
        .body(body)
        .map_err(|error| ErrorCode::InternalError(Some(error.to_string())))
}

/// The `wasi:http` error code a plugin gets for a failed request of contract 0.3's
/// `http.send`, as `wasi:http` itself would report it.
fn error_code(error: Error) -> ErrorCode {
    use ErrorCode as C;
    let field = |field_name, field_size| FieldSizePayload {
        field_name,
        field_size,
    };
    match error {
        Error::DnsTimeout => C::DnsTimeout,
        Error::DnsError { rcode, info_code } => C::DnsError(DnsErrorPayload { rcode, info_code }),
        Error::DestinationNotFound => C::DestinationNotFound,
        Error::DestinationUnavailable => C::DestinationUnavailable,
        Error::DestinationIpProhibited => C::DestinationIpProhibited,
        Error::DestinationIpUnroutable => C::DestinationIpUnroutable,
        Error::ConnectionRefused | Error::Connect(_) => C::ConnectionRefused,
        Error::ConnectionTerminated => C::ConnectionTerminated,
        Error::ConnectionTimeout => C::ConnectionTimeout,
        Error::ConnectionReadTimeout => C::ConnectionReadTimeout,
        Error::ConnectionWriteTimeout => C::ConnectionWriteTimeout,
        Error::ConnectionLimitReached => C::ConnectionLimitReached,
        Error::TlsProtocolError | Error::Tls(_) => C::TlsProtocolError,
        Error::TlsCertificateError => C::TlsCertificateError,
        Error::TlsAlertReceived {
            alert_id,
            alert_message,
        } => C::TlsAlertReceived(TlsAlertReceivedPayload {
            alert_id,
            alert_message,
        }),
        Error::HttpRequestDenied => C::HttpRequestDenied,
        Error::HttpRequestLengthRequired => C::HttpRequestLengthRequired,
        Error::HttpRequestBodySize(size) => C::HttpRequestBodySize(size),
        Error::HttpRequestMethodInvalid => C::HttpRequestMethodInvalid,
        Error::HttpRequestUriInvalid => C::HttpRequestUriInvalid,
        Error::HttpRequestUriTooLong => C::HttpRequestUriTooLong,
        Error::HttpRequestHeaderSectionSize(size) => C::HttpRequestHeaderSectionSize(size),
        Error::HttpRequestHeaderSize {
            field_name,
            field_size,
        } => C::HttpRequestHeaderSize(Some(field(field_name, field_size))),
        Error::HttpResponseIncomplete => C::HttpResponseIncomplete,
        Error::HttpResponseHeaderSectionSize(size) => C::HttpResponseHeaderSectionSize(size),
        Error::HttpResponseHeaderSize {
            field_name,
            field_size,
        } => C::HttpResponseHeaderSize(field(field_name, field_size)),
        Error::HttpResponseBodySize(size) => C::HttpResponseBodySize(size),
        Error::HttpRequestTrailerSectionSize(size) => C::HttpRequestTrailerSectionSize(size),
        Error::HttpRequestTrailerSize {
            field_name,
            field_size,
        } => C::HttpRequestTrailerSize(field(field_name, field_size)),
        Error::HttpResponseTrailerSectionSize(size) => C::HttpResponseTrailerSectionSize(size),
        Error::HttpResponseTrailerSize {
            field_name,
            field_size,
        } => C::HttpResponseTrailerSize(field(field_name, field_size)),
        Error::HttpResponseTransferCoding(coding) => C::HttpResponseTransferCoding(coding),
        Error::HttpResponseContentCoding(coding) => C::HttpResponseContentCoding(coding),
        Error::HttpUpgradeFailed => C::HttpUpgradeFailed,
        Error::LoopDetected => C::LoopDetected,
        Error::HttpResponseTimeout => C::HttpResponseTimeout,
        Error::HttpProtocolError | Error::Hyper(_) => C::HttpProtocolError,
        Error::ConfigurationError => C::ConfigurationError,
        Error::InternalError(message) => C::InternalError(message),
        other => C::InternalError(Some(format!("{other:?}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The header field `whole_request` refused, if it refused one.
    fn refused_field(method: &str, url: &str, name: &str, value: &[u8]) -> Option<String> {
        match whole_request(method, url, vec![(name.into(), value.into())], vec![]) {
            Err(ErrorCode::HttpRequestHeaderSize(Some(FieldSizePayload {
                field_name,
                field_size: None,
            }))) => field_name,
            Err(other) => panic!("{other:?}"),
            Ok(_) => None,
        }
    }

    #[test]
    fn a_body_goes_out_with_its_length_and_a_plugins_own_length_must_match_it() {
        let url = "https://crm.example.com/api";
        let length = |method: &str, headers: Vec<(String, Vec<u8>)>, body: &[u8]| {
            let request = whole_request(method, url, headers, body.to_vec()).unwrap();
            let lengths = request.headers().get_all(http::header::CONTENT_LENGTH);
            lengths
                .iter()
                .map(|v| v.to_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        };
        assert_eq!(length("POST", vec![], b""), ["0"]);
        assert_eq!(length("PUT", vec![], b""), ["0"]);
        assert!(length("GET", vec![], b"").is_empty());
        assert!(length("DELETE", vec![], b"").is_empty());
        // Hyper sets a body's length itself; a plugin's own value that agrees is left to it.
        let own = |value: &str| vec![("content-length".to_owned(), value.as_bytes().to_vec())];
        assert!(length("POST", own("2"), b"{}").is_empty());
        assert!(matches!(
            whole_request("POST", url, own("1"), b"{}".to_vec()).err(),
            Some(ErrorCode::HttpRequestBodySize(Some(2)))
        ));
        assert_eq!(
            refused_field("POST", url, "content-length", b"-1").as_deref(),
            Some("content-length")
        );
    }

    #[test]
    fn a_whole_request_is_checked_as_wasi_http_checks_its_parts() {
        let url = "https://crm.example.com/api?x=1";
        let request = whole_request(
            "POST",
            url,
            vec![("x-a".into(), b"1".to_vec())],
            b"{}".into(),
        )
        .unwrap();
        assert_eq!(request.method(), http::Method::POST);
        assert_eq!(request.uri(), url);
        assert_eq!(request.headers()["x-a"], "1");
        assert_eq!(refused_field("GET", url, "x-ok", b"fine"), None);
        for forbidden in ["connection", "host", "transfer-encoding", "keep-alive"] {
            assert_eq!(
                refused_field("GET", url, forbidden, b"x").as_deref(),
                Some(forbidden),
                "{forbidden}"
            );
        }
        assert_eq!(
            refused_field("GET", url, "bad name", b"x").as_deref(),
            Some("bad name")
        );
        assert_eq!(
            refused_field("GET", url, "x-v", b"line\nbreak").as_deref(),
            Some("x-v")
        );
        let error = |method: &str, url: &str| whole_request(method, url, vec![], vec![]).err();
        assert!(matches!(
            error("G T", url),
            Some(ErrorCode::HttpRequestMethodInvalid)
        ));
        for bad in ["/relative", "ftp://host/x", "https:///nohost", "not a url"] {
            assert!(
                matches!(error("GET", bad), Some(ErrorCode::HttpRequestUriInvalid)),
                "{bad}"
            );
        }
    }
}
