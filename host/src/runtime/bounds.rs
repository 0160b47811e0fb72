//! Bounds on what one delivery makes the host hold outside the plugin's own memory: outgoing
//! requests in flight, request headers, resource table entries, the list of refusals, and the
//! length of the messages a delivery's outcome carries. (The bound on a response body is the
//! plugin's `max_response_kb`, [`PluginLimits::max_response_bytes`](super::PluginLimits).
//! Contract 0.3's `http.send` hands the host a whole request body, which its memory cap
//! `memory_mb` bounds, and holds the whole response body, which `max_response_kb` bounds.)
//!
//! Each bound is a constant here, so the operator-facing message and the check share one
//! number. A bound reached is recorded as a [`Refusal::Limit`] naming it; the runtime then
//! fails the delivery with that message whatever the plugin made of the error it got.

use super::egress::Refusal;
use std::sync::{Arc, Mutex};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Outgoing requests one delivery may have in flight at once (a request is in flight until
/// its response body is read to the end or dropped).
pub const MAX_CONCURRENT_REQUESTS: usize = 8;
/// Header fields one outgoing request may carry.
pub const MAX_REQUEST_HEADERS: usize = 64;
/// Bytes of header names and values one outgoing request may carry.
pub const MAX_REQUEST_HEADER_BYTES: usize = 16 << 10;
/// Entries (streams, requests, header sets, pollables, ...) one instance's resource table may
/// hold at once. The SDK's requests use a handful each.
pub const MAX_TABLE_ENTRIES: usize = 1000;
/// Refusals kept per delivery; the last entry then says that more were left out.
pub const MAX_REFUSALS: usize = 16;
/// Bytes of a plugin's error message (and of a whole outcome message) that are stored and
/// logged; the rest is cut with a marker.
pub const MAX_MESSAGE: usize = 4 << 10;

/// What one delivery's requests share: the slots for requests in flight and the refusals.
#[derive(Debug, Clone)]
pub struct DeliveryBounds {
    slots: Arc<Semaphore>,
    refusals: Arc<Mutex<Vec<Refusal>>>,
}

impl Default for DeliveryBounds {
    fn default() -> Self {
        DeliveryBounds {
            slots: Arc::new(Semaphore::new(MAX_CONCURRENT_REQUESTS)),
            refusals: Arc::default(),
        }
    }
}

impl DeliveryBounds {
    /// A slot for one more request in flight, or the refusal (recorded).
    pub fn request_slot(&self) -> Result<OwnedSemaphorePermit, Refusal> {
        self.slots.clone().try_acquire_owned().map_err(|_| {
            self.refuse(limit(
                format!("more than {MAX_CONCURRENT_REQUESTS} outgoing requests at once"),
                "concurrent outgoing requests per delivery",
                MAX_CONCURRENT_REQUESTS,
            ))
        })
    }

    /// Records `refusal` (at most [`MAX_REFUSALS`] are kept) and hands it back.
    pub fn refuse(&self, refusal: Refusal) -> Refusal {
        let mut refusals = self.refusals.lock().expect("refusal list poisoned");
        match refusals.len() {
            n if n + 1 < MAX_REFUSALS => refusals.push(refusal.clone()),
            n if n + 1 == MAX_REFUSALS => refusals.push(limit(
                "further refusals not listed".into(),
                "refusals kept per delivery",
                MAX_REFUSALS,
            )),
            _ => {}
        }
        refusal
    }

    /// The refusals recorded so far.
    pub fn refusals(&self) -> Vec<Refusal> {
        self.refusals.lock().expect("refusal list poisoned").clone()
    }
}

/// A [`Refusal::Limit`]: `what` happened, over the bound `name` of `value`.
pub fn limit(what: String, name: &str, value: impl std::fmt::Display) -> Refusal {
    Refusal::Limit {
        what,
        limit: format!("{name}: {value}"),
    }
}

/// Checks an outgoing request's header fields against their bounds.
pub fn check_headers(headers: &http::HeaderMap) -> Result<(), Refusal> {
    let bytes = headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len())
        .sum();
    check_header_fields(headers.len(), bytes)
}

/// Checks `count` header fields of `bytes` bytes (names and values) against their bounds.
pub fn check_header_fields(count: usize, bytes: usize) -> Result<(), Refusal> {
    if count > MAX_REQUEST_HEADERS {
        return Err(limit(
            format!("a request with {count} header fields"),
            "header fields per request",
            MAX_REQUEST_HEADERS,
        ));
    }
    if bytes > MAX_REQUEST_HEADER_BYTES {
        return Err(limit(
            format!("a request with {bytes} bytes of header fields"),
            "header bytes per request",
            MAX_REQUEST_HEADER_BYTES,
        ));
    }
    Ok(())
}

/// The message for a trap caused by a full resource table, if that is what `error` is.
pub fn table_full(error: &wasmtime::Error) -> Option<String> {
    let full = error.chain().any(|cause| {
        matches!(
            cause.downcast_ref::<wasmtime::component::ResourceTableError>(),
            Some(wasmtime::component::ResourceTableError::Full)
        ) || cause
            .to_string()
            .contains("resource table has no free keys")
    });
    full.then(|| {
        format!(
            "stopped: the plugin held more host resources at once than its limit \
             (resource table entries per instance: {MAX_TABLE_ENTRIES})"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_refusal_list_is_capped_with_a_note() {
        let bounds = DeliveryBounds::default();
        for n in 0..100 {
            bounds.refuse(Refusal::Malformed {
                url: format!("x{n}"),
            });
        }
        let refusals = bounds.refusals();
        assert_eq!(refusals.len(), MAX_REFUSALS);
        assert!(
            refusals[MAX_REFUSALS - 1]
                .to_string()
                .contains("further refusals not listed"),
            "{refusals:?}"
        );
    }

    #[test]
    fn header_bounds() {
        let mut headers = http::HeaderMap::new();
        for n in 0..MAX_REQUEST_HEADERS {
            headers.insert(
                http::HeaderName::from_bytes(format!("x-{n}").as_bytes()).unwrap(),
                http::HeaderValue::from_static("v"),
            );
        }
        assert_eq!(check_headers(&headers), Ok(()));
        headers.insert("x-one-more", http::HeaderValue::from_static("v"));
        assert!(check_headers(&headers).is_err());
        let mut big = http::HeaderMap::new();
        let value = "v".repeat(MAX_REQUEST_HEADER_BYTES);
        big.insert("x-big", http::HeaderValue::from_str(&value).unwrap());
        let refusal = check_headers(&big).unwrap_err();
        assert!(
            refusal
                .to_string()
                .contains("header bytes per request: 16384"),
            "{refusal}"
        );
    }
}
