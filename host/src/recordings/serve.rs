//! The web side: `GET /webapi/recording/{file}` and nothing else.
//!
//! | request | answer |
//! |---|---|
//! | a valid link to an existing MP3 | `200`, `Content-Type: audio/mpeg`, `Content-Length`, `Accept-Ranges: bytes` |
//! | one satisfiable `Range: bytes=...` | `206` with `Content-Range` |
//! | a range past the end | `416` with `Content-Range: bytes */{len}` |
//! | several ranges | `200`, the whole file (allowed by RFC 9110) |
//! | a file name that is not a plain `*.mp3` name (`..`, `/`, `\`, `%2F`, leading dot) | `400` |
//! | a missing or bad signature, or an expired link | `403` |
//! | a valid name and signature but no such file (e.g. swept) | `404` |
//! | `/webapi/recording/` or any other path | `404`: there is no listing |
//!
//! The signature is checked before the file system is touched, so an unsigned request cannot
//! even learn whether a file exists. `HEAD` answers like `GET` without a body. The body is
//! streamed from the file, never read whole into memory.

use std::io::SeekFrom;
use std::sync::Arc;
use std::time::SystemTime;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio_util::io::ReaderStream;

use super::links::{LinkRefusal, Links};
use super::store::Store;

/// What the handler needs.
struct Served {
    store: Store,
    links: Links,
}

/// The query string of a link.
#[derive(serde::Deserialize)]
struct LinkQuery {
    expires: Option<String>,
    sig: Option<String>,
}

/// The router serving the MP3s of `store`, checking signatures with `links`.
pub fn router(store: Store, links: Links) -> Router {
    Router::new()
        .route("/webapi/recording/{file}", get(recording))
        .with_state(Arc::new(Served { store, links }))
}

fn plain(status: StatusCode, text: &str) -> Response {
    (
        status,
        [(header::CACHE_CONTROL, "no-store")],
        text.to_owned(),
    )
        .into_response()
}

async fn recording(
    State(served): State<Arc<Served>>,
    Path(file): Path<String>,
    Query(query): Query<LinkQuery>,
    headers: HeaderMap,
) -> Response {
    let Some(path) = served.store.resolve(&file) else {
        return plain(StatusCode::BAD_REQUEST, "not a recording file name\n");
    };
    let (expires, sig) = (query.expires.as_deref(), query.sig.as_deref());
    if let Err(refusal) = served.links.verify(&file, expires, sig, SystemTime::now()) {
        let text = match refusal {
            LinkRefusal::Expired { .. } => "this link has expired\n",
            LinkRefusal::Unsigned | LinkRefusal::BadSignature => "this link is not valid\n",
        };
        return plain(StatusCode::FORBIDDEN, text);
    }
    let mut handle = match tokio::fs::File::open(&path).await {
        Ok(handle) => handle,
        Err(_) => return plain(StatusCode::NOT_FOUND, "no such recording\n"),
    };
    let len = match handle.metadata().await {
        Ok(meta) if meta.is_file() => meta.len(),
        _ => return plain(StatusCode::NOT_FOUND, "no such recording\n"),
    };
    let range = headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .map(|v| parse_range(v, len));
    let (status, start, count) = match range {
        None | Some(RangeAnswer::Whole) => (StatusCode::OK, 0, len),
        Some(RangeAnswer::Part { start, end }) => {
            (StatusCode::PARTIAL_CONTENT, start, end - start + 1)
        }
        Some(RangeAnswer::Unsatisfiable) => {
            return (
                StatusCode::RANGE_NOT_SATISFIABLE,
                [(header::CONTENT_RANGE, format!("bytes */{len}"))],
            )
                .into_response();
        }
    };
    if start > 0 && handle.seek(SeekFrom::Start(start)).await.is_err() {
        return plain(
            StatusCode::INTERNAL_SERVER_ERROR,
            "cannot read the recording\n",
        );
    }
    let mut response = Response::new(Body::from_stream(ReaderStream::new(handle.take(count))));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("audio/mpeg"));
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(count));
    headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, max-age=3600"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if status == StatusCode::PARTIAL_CONTENT
        && let Ok(value) =
            HeaderValue::from_str(&format!("bytes {start}-{}/{len}", start + count - 1))
    {
        headers.insert(header::CONTENT_RANGE, value);
    }
    response
}

/// How to answer a `Range` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RangeAnswer {
    /// Ignore it: serve the whole file (several ranges, other units, malformed).
    Whole,
    /// Serve bytes `start..=end`.
    Part { start: u64, end: u64 },
    /// `416`.
    Unsatisfiable,
}

/// Interprets one `Range` header value for a file of `len` bytes (RFC 9110, section 14).
fn parse_range(value: &str, len: u64) -> RangeAnswer {
    let Some(spec) = value.trim().strip_prefix("bytes=") else {
        return RangeAnswer::Whole;
    };
    if spec.contains(',') {
        return RangeAnswer::Whole;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return RangeAnswer::Whole;
    };
    let number = |s: &str| -> Option<u64> {
        (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse().ok())
            .flatten()
    };
    let (first, last) = (first.trim(), last.trim());
    match (first.is_empty(), number(first), number(last)) {
        // bytes=-N: the last N bytes.
        (true, _, Some(suffix)) => {
            if suffix == 0 || len == 0 {
                RangeAnswer::Unsatisfiable
            } else {
                RangeAnswer::Part {
                    start: len.saturating_sub(suffix),
                    end: len - 1,
                }
            }
        }
        (false, Some(start), end) if last.is_empty() || end.is_some() => {
            if start >= len {
                return RangeAnswer::Unsatisfiable;
            }
            match end {
                Some(end) if end < start => RangeAnswer::Whole,
                Some(end) => RangeAnswer::Part {
                    start,
                    end: end.min(len - 1),
                },
                None => RangeAnswer::Part {
                    start,
                    end: len - 1,
                },
            }
        }
        _ => RangeAnswer::Whole,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interprets_ranges() {
        use RangeAnswer::*;
        for (value, answer) in [
            ("bytes=0-9", Part { start: 0, end: 9 }),
            ("bytes=10-", Part { start: 10, end: 99 }),
            ("bytes=90-200", Part { start: 90, end: 99 }),
            ("bytes=-10", Part { start: 90, end: 99 }),
            ("bytes=-500", Part { start: 0, end: 99 }),
            ("bytes=100-", Unsatisfiable),
            ("bytes=100-120", Unsatisfiable),
            ("bytes=-0", Unsatisfiable),
            ("bytes=0-1,5-6", Whole),
            ("bytes=9-3", Whole),
            ("bytes=a-3", Whole),
            ("bytes=-", Whole),
            ("items=0-1", Whole),
        ] {
            assert_eq!(parse_range(value, 100), answer, "{value}");
        }
    }
}
