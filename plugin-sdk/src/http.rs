//! A small blocking HTTP client over the contract's `http.send`, one host call per request.
//!
//! The host sends the request on the plugin's behalf, over the plugin's pooled connections,
//! after checking it against the plugin's `allowed_hosts`; it follows no redirects and applies
//! its own time-outs. A refused or failed request comes back as an [`HttpError`], which
//! converts into the right [`DeliveryError`] with `?`: connection problems are worth a retry, a
//! refusal by the host's policy or a malformed URL or header field is not.
//!
//! ```no_run
//! # use callhook_plugin_sdk::{http::Request, DeliveryError};
//! # fn run() -> Result<(), DeliveryError> {
//! let response = Request::get("https://crm.example.com/3cx?event=ringing").send()?;
//! response.error_for_status()?;
//! # Ok(())
//! # }
//! ```

use crate::DeliveryError;
use crate::wit::callhook::plugin::http;
use crate::wit::wasi::http::types::{ErrorCode, FieldSizePayload};
use std::fmt;

/// An HTTP request under construction.
#[derive(Debug, Clone)]
pub struct Request {
    method: &'static str,
    url: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

/// An HTTP response, with its whole body read.
#[derive(Debug, Clone)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// The header fields, in the order received, names in lower case.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

/// Why a request got no response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpError {
    /// The URL is not `http://` or `https://` followed by a host.
    InvalidUrl(String),
    /// The host refused the request: its policy (host not in `allowed_hosts`, a private
    /// address), or a header field that is malformed or that only the host may set
    /// (`host`, `connection`, `transfer-encoding` and the like).
    Refused(String),
    /// The request failed on the way: DNS, connection, TLS, time-out, protocol.
    Transport(String),
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HttpError::InvalidUrl(url) => write!(f, "invalid URL {url:?}"),
            HttpError::Refused(why) => write!(f, "request refused by the host: {why}"),
            HttpError::Transport(why) => write!(f, "request failed: {why}"),
        }
    }
}

impl std::error::Error for HttpError {}

impl From<HttpError> for DeliveryError {
    /// Transport failures are retryable; invalid URLs and refusals by policy are permanent.
    fn from(error: HttpError) -> Self {
        match error {
            HttpError::Transport(_) => DeliveryError::retryable(error.to_string()),
            HttpError::InvalidUrl(_) | HttpError::Refused(_) => {
                DeliveryError::permanent(error.to_string())
            }
        }
    }
}

impl Request {
    /// A `GET` request.
    pub fn get(url: &str) -> Self {
        Self::new("GET", url)
    }

    /// A `POST` request.
    pub fn post(url: &str) -> Self {
        Self::new("POST", url)
    }

    /// A `PUT` request.
    pub fn put(url: &str) -> Self {
        Self::new("PUT", url)
    }

    /// A `PATCH` request.
    pub fn patch(url: &str) -> Self {
        Self::new("PATCH", url)
    }

    /// A `DELETE` request.
    pub fn delete(url: &str) -> Self {
        Self::new("DELETE", url)
    }

    fn new(method: &'static str, url: &str) -> Self {
        Request {
            method,
            url: url.to_string(),
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// Adds a header field.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    /// Sets the body.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    /// Sets a JSON body and `Content-Type: application/json`.
    pub fn json<T: serde::Serialize + ?Sized>(self, value: &T) -> Self {
        let body = serde_json::to_vec(value).expect("serialising to a Vec cannot fail");
        self.header("content-type", "application/json").body(body)
    }

    /// Sets a `multipart/form-data` body of one file part, as an upload endpoint takes it:
    /// `Content-Disposition: form-data; name="{field}"; filename="{file_name}"` and the file's
    /// `Content-Type`. The boundary is chosen so that it does not occur in the bytes.
    ///
    /// ```
    /// use callhook_plugin_sdk::http::Request;
    ///
    /// let request = Request::post("https://crm.example.com/upload")
    ///     .multipart_file("file", "1-1.mp3", "audio/mpeg", b"ID3");
    /// let body = String::from_utf8_lossy(request.body_bytes());
    /// assert!(body.contains("name=\"file\"; filename=\"1-1.mp3\"\r\nContent-Type: audio/mpeg\r\n\r\nID3\r\n"));
    /// ```
    pub fn multipart_file(
        self,
        field: &str,
        file_name: &str,
        content_type: &str,
        bytes: &[u8],
    ) -> Self {
        let mut boundary = "callhook-form-boundary".to_string();
        while contains(bytes, boundary.as_bytes()) {
            boundary.push('x');
        }
        let quoted = |text: &str| text.replace(['"', '\r', '\n'], "_");
        let mut body = format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"{}\"; filename=\"{}\"\r\n\
             Content-Type: {content_type}\r\n\r\n",
            quoted(field),
            quoted(file_name)
        )
        .into_bytes();
        body.extend_from_slice(bytes);
        body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
        self.header(
            "content-type",
            &format!("multipart/form-data; boundary={boundary}"),
        )
        .body(body)
    }

    /// The method.
    pub fn method(&self) -> &str {
        self.method
    }

    /// The URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The body.
    pub fn body_bytes(&self) -> &[u8] {
        &self.body
    }

    /// Sends the request and reads the whole response.
    ///
    /// The host sends it in one call (contract 0.3 `http.send`); the URL is checked here
    /// first, so a malformed one is a permanent error naming it.
    pub fn send(self) -> Result<Response, HttpError> {
        let url = ParsedUrl::parse(&self.url)?;
        let request = http::Request {
            method: self.method.to_string(),
            url: format!("{}://{}{}", url.scheme, url.authority, url.path_and_query),
            headers: self
                .headers
                .into_iter()
                .map(|(name, value)| (name, value.into_bytes()))
                .collect(),
            body: self.body,
        };
        let answer = http::send(&request).map_err(|code| match code {
            ErrorCode::HttpRequestUriInvalid => HttpError::InvalidUrl(self.url.clone()),
            ErrorCode::HttpRequestMethodInvalid => {
                HttpError::InvalidUrl(format!("{} (method {})", self.url, self.method))
            }
            other => error_from_code(other),
        })?;
        Ok(Response {
            status: answer.status,
            headers: answer
                .headers
                .into_iter()
                .map(|(name, value)| (name, String::from_utf8_lossy(&value).into_owned()))
                .collect(),
            body: answer.body,
        })
    }
}

impl Response {
    /// The first header field called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Turns the status into the delivery outcome webhook receivers expect.
    ///
    /// 2xx is success. 5xx, 408, 425 and 429 are retryable (429 and 503 with their
    /// `Retry-After`); 410 is permanent and marks the target as gone; every other status,
    /// redirects included, is permanent.
    pub fn error_for_status(self) -> Result<Response, DeliveryError> {
        let status = self.status;
        if (200..300).contains(&status) {
            return Ok(self);
        }
        let message = format!("receiver answered HTTP {status}{}", self.body_excerpt());
        match status {
            408 | 425 | 429 | 500..=599 => {
                let retry_after_ms = match status {
                    429 | 503 => self.header("retry-after").and_then(parse_retry_after),
                    _ => None,
                };
                Err(DeliveryError::Retryable(crate::RetryableError {
                    message,
                    retry_after_ms,
                }))
            }
            _ => Err(DeliveryError::Permanent(crate::PermanentError {
                message,
                target_gone: status == 410,
            })),
        }
    }

    fn body_excerpt(&self) -> String {
        const MAX: usize = 200;
        let text = String::from_utf8_lossy(&self.body);
        let text = text.trim();
        if text.is_empty() {
            return String::new();
        }
        let cut: String = text.chars().take(MAX).collect();
        format!(": {cut}")
    }
}

/// `Retry-After` as delay-seconds or an HTTP date, in milliseconds from now.
fn parse_retry_after(value: &str) -> Option<u64> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(seconds.saturating_mul(1000));
    }
    let when = httpdate::parse_http_date(value).ok()?;
    let delay = when
        .duration_since(std::time::SystemTime::now())
        .unwrap_or_default();
    Some(delay.as_millis().try_into().unwrap_or(u64::MAX))
}

/// Whether `needle` occurs in `haystack`.
fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle)
}

fn error_from_code(code: ErrorCode) -> HttpError {
    match code {
        ErrorCode::HttpRequestHeaderSize(Some(FieldSizePayload {
            field_name: Some(name),
            field_size: None,
        })) => HttpError::Refused(format!(
            "the header field `{name}` is malformed or one the host sets itself"
        )),
        ErrorCode::HttpRequestDenied | ErrorCode::DestinationIpProhibited => HttpError::Refused(
            format!("{code:?} (see the host log for the rule that refused it)"),
        ),
        other => HttpError::Transport(format!("{other:?}")),
    }
}

/// The parts of an absolute `http`/`https` URL, checked before the host sees it.
struct ParsedUrl<'a> {
    /// `http` or `https`, lower case.
    scheme: &'static str,
    authority: &'a str,
    /// Always starts with `/`: `https://host?x=1` becomes `/?x=1`. No fragment.
    path_and_query: String,
}

impl<'a> ParsedUrl<'a> {
    fn parse(url: &'a str) -> Result<Self, HttpError> {
        let invalid = || HttpError::InvalidUrl(url.to_string());
        let (scheme, rest) = url.split_once("://").ok_or_else(invalid)?;
        let scheme = match scheme.to_ascii_lowercase().as_str() {
            "http" => "http",
            "https" => "https",
            _ => return Err(invalid()),
        };
        let rest = rest.split('#').next().unwrap_or("");
        let end = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(end);
        if authority.is_empty() {
            return Err(invalid());
        }
        let path_and_query = if tail.starts_with('/') {
            tail.to_string()
        } else {
            format!("/{tail}")
        };
        Ok(ParsedUrl {
            scheme,
            authority,
            path_and_query,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_seconds_become_milliseconds() {
        assert_eq!(parse_retry_after("120"), Some(120_000));
        assert_eq!(parse_retry_after(" 0 "), Some(0));
        assert_eq!(parse_retry_after("soon"), None);
    }

    #[test]
    fn retry_after_in_the_past_is_zero() {
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), Some(0));
    }

    fn status(status: u16, retry_after: Option<&str>) -> Result<Response, DeliveryError> {
        Response {
            status,
            headers: retry_after
                .map(|v| vec![("retry-after".to_string(), v.to_string())])
                .unwrap_or_default(),
            body: Vec::new(),
        }
        .error_for_status()
    }

    #[test]
    fn statuses_map_to_outcomes() {
        assert!(status(200, None).is_ok());
        assert!(status(204, None).is_ok());
        for code in [408, 425, 429, 500, 502, 503, 504] {
            assert!(
                matches!(status(code, None), Err(DeliveryError::Retryable(_))),
                "{code}"
            );
        }
        for code in [301, 302, 307, 400, 401, 403, 404, 422] {
            assert!(
                matches!(status(code, None), Err(DeliveryError::Permanent(ref e)) if !e.target_gone),
                "{code}"
            );
        }
        assert!(matches!(status(410, None), Err(DeliveryError::Permanent(ref e)) if e.target_gone));
    }

    #[test]
    fn retry_after_is_honoured_only_for_429_and_503() {
        let after = |code| match status(code, Some("7")) {
            Err(DeliveryError::Retryable(e)) => e.retry_after_ms,
            other => panic!("{other:?}"),
        };
        assert_eq!(after(429), Some(7000));
        assert_eq!(after(503), Some(7000));
        assert_eq!(after(500), None);
    }

    #[test]
    fn multipart_body_has_one_file_part_and_a_boundary_not_in_the_bytes() {
        let bytes = b"ID3\x00--callhook-form-boundary\xff";
        let request =
            Request::post("http://h/u").multipart_file("file", "a\"b.mp3", "audio/mpeg", bytes);
        let content_type = &request.headers[0].1;
        assert_eq!(
            content_type,
            "multipart/form-data; boundary=callhook-form-boundaryx"
        );
        let mut expected = b"--callhook-form-boundaryx\r\nContent-Disposition: form-data; \
            name=\"file\"; filename=\"a_b.mp3\"\r\nContent-Type: audio/mpeg\r\n\r\n"
            .to_vec();
        expected.extend_from_slice(bytes);
        expected.extend_from_slice(b"\r\n--callhook-form-boundaryx--\r\n");
        assert_eq!(request.body_bytes(), expected.as_slice());
    }

    #[test]
    fn urls_split_into_wasi_parts() {
        let url = ParsedUrl::parse("https://crm.example.com:8443/a/b?x=1#frag").unwrap();
        assert_eq!(url.scheme, "https");
        assert_eq!(url.authority, "crm.example.com:8443");
        assert_eq!(url.path_and_query, "/a/b?x=1");
        let url = ParsedUrl::parse("http://127.0.0.1:9").unwrap();
        assert_eq!(url.path_and_query, "/");
        let url = ParsedUrl::parse("http://h?x=1").unwrap();
        assert_eq!(url.path_and_query, "/?x=1");
        for bad in ["ftp://x/", "crm.example.com/x", "https:///x"] {
            assert!(ParsedUrl::parse(bad).is_err(), "{bad}");
        }
    }
}
