//! A plugin that misbehaves on request, for the host's sandbox and host-API tests.
//!
//! The setting `mode` picks the behaviour:
//! - `fetch`: `GET {url}`; success on 2xx, the SDK's error mapping otherwise;
//! - `loop`: spins forever (the epoch deadline must stop it);
//! - `memory`: allocates until the memory cap stops it;
//! - `panic`: panics;
//! - `echo`: logs, then `POST {url}` with its settings, the secret `token`, and the delivery;
//! - `kv`: stores the call id under `last`, reads it back, and posts what the store holds
//!   and the outcome of writing a value of `kv_value_size` bytes to `{url}`;
//! - `parallel`: starts `count` `GET {url}` at once, then waits for them all;
//! - `headers`: `GET {url}` with `count` header fields of `size` bytes each;
//! - `header`: `GET {url}` with the one header field `header_name: header_value`;
//! - `resources`: creates `count` header sets and keeps them all;
//! - `residue`: reports what an earlier delivery left in this instance's memory (see the
//!   function `residue`), then leaves some itself;
//! - `webhook`: `GET {url}?event=NAME&id=ID`, the two fields of the generic-webhook's query
//!   string that the pipeline benches' sink reads;
//! - `kv-webhook`: stores the event's name under its id (one key per call, written by each of
//!   its events), then does what `webhook` does: the `steady` bench's plugin that writes its
//!   key-value store on every delivery.

use callhook_plugin_sdk::http::Request;
use callhook_plugin_sdk::{self as sdk, Delivery, DeliveryError, Plugin};
use sdk::wit::wasi::http::outgoing_handler;
use sdk::wit::wasi::http::types::{Fields, OutgoingBody, OutgoingRequest, Scheme};
use serde_json::json;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};

/// The probe, configured for one delivery.
pub struct SandboxProbe {
    mode: String,
    url: String,
}

impl Plugin for SandboxProbe {
    fn new() -> Result<Self, DeliveryError> {
        Ok(SandboxProbe {
            mode: sdk::settings::required("mode")?,
            url: sdk::settings::get("url").unwrap_or_default(),
        })
    }

    fn deliver(&mut self, delivery: &Delivery) -> Result<(), DeliveryError> {
        match self.mode.as_str() {
            "fetch" => {
                Request::get(&self.url).send()?.error_for_status()?;
                Ok(())
            }
            "loop" => spin(),
            "memory" => exhaust_memory(),
            "panic" => panic!("the probe panics on purpose"),
            "echo" => {
                sdk::log::info("echo", &[("event", delivery.event.name())]);
                let body = json!({
                    "settings": sdk::settings::all(),
                    "token": sdk::settings::secret("token"),
                    "missing": sdk::settings::get("missing"),
                    "event": delivery.event.name(),
                    "id": delivery.event.id(),
                    "idempotency_key": delivery.idempotency_key,
                    "attempt": delivery.attempt,
                });
                Request::post(&self.url)
                    .json(&body)
                    .send()?
                    .error_for_status()?;
                Ok(())
            }
            "kv" => {
                let previous =
                    sdk::kv::get("last")?.map(|v| String::from_utf8_lossy(&v).into_owned());
                sdk::kv::set("last", delivery.event.id().as_bytes())?;
                let size: usize = sdk::settings::get("kv_value_size")
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0);
                let big = sdk::kv::set("big", &vec![b'x'; size]).map_err(|e| format!("{e:?}"));
                let body = json!({
                    "previous": previous,
                    "now": sdk::kv::get("last")?.map(|v| String::from_utf8_lossy(&v).into_owned()),
                    "big": big.err(),
                });
                sdk::kv::delete("big")?;
                Request::post(&self.url)
                    .json(&body)
                    .send()?
                    .error_for_status()?;
                Ok(())
            }
            "parallel" => parallel(&self.url, number("count")),
            "headers" => {
                let value = "v".repeat(number("size"));
                let mut request = Request::get(&self.url);
                for n in 0..number("count") {
                    request = request.header(&format!("x-probe-{n}"), &value);
                }
                request.send()?.error_for_status()?;
                Ok(())
            }
            "header" => {
                let name = sdk::settings::required("header_name")?;
                let value = sdk::settings::get("header_value").unwrap_or_default();
                Request::get(&self.url)
                    .header(&name, &value)
                    .send()?
                    .error_for_status()?;
                Ok(())
            }
            "resources" => {
                let kept: Vec<Fields> = (0..number("count")).map(|_| Fields::new()).collect();
                std::hint::black_box(&kept);
                Ok(())
            }
            "residue" => residue(),
            "webhook" => webhook(&self.url, delivery),
            "kv-webhook" => {
                sdk::kv::set(delivery.event.id(), delivery.event.name().as_bytes())?;
                webhook(&self.url, delivery)
            }
            other => Err(DeliveryError::permanent(format!("unknown mode {other:?}"))),
        }
    }
}

/// Fails with `seen N, dirty static D, dirty heap H`: the deliveries this instance ran before
/// (a counter in a static), and the non-zero bytes of a zero-initialised 1 MiB static and of a
/// freshly allocated zeroed 4 MiB heap block (memory the instance grows). Then it counts this
/// delivery and fills both with `0xAB`. In a fresh instance every figure is 0.
fn residue() -> Result<(), DeliveryError> {
    static SEEN: AtomicU32 = AtomicU32::new(0);
    static STATIC: Mutex<[u8; 1 << 20]> = Mutex::new([0; 1 << 20]);
    let seen = SEEN.fetch_add(1, Ordering::Relaxed);
    let mut block = STATIC.lock().expect("one delivery at a time");
    let dirty_static = block.iter().filter(|b| **b != 0).count();
    block.fill(0xAB);
    let mut heap = vec![0u8; 4 << 20];
    let dirty_heap = heap.iter().filter(|b| **b != 0).count();
    heap.fill(0xAB);
    std::hint::black_box(&heap);
    Err(DeliveryError::permanent(format!(
        "seen {seen}, dirty static {dirty_static}, dirty heap {dirty_heap}"
    )))
}

/// The setting `name` as a number, 0 when missing.
fn number(name: &str) -> usize {
    sdk::settings::get(name)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// `GET {url}?event=NAME&id=ID`: event ids are digits, `_` and `-`, which need no escaping.
fn webhook(url: &str, delivery: &Delivery) -> Result<(), DeliveryError> {
    let event = &delivery.event;
    let url = format!("{url}?event={}&id={}", event.name(), event.id());
    Request::get(&url).send()?.error_for_status()?;
    Ok(())
}

/// Starts `count` GET requests to `url` before waiting for any.
fn parallel(url: &str, count: usize) -> Result<(), DeliveryError> {
    let (scheme, rest) = url.split_once("://").unwrap_or(("http", url));
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let scheme = if scheme == "https" {
        Scheme::Https
    } else {
        Scheme::Http
    };
    let mut pending = Vec::new();
    for _ in 0..count {
        let request = OutgoingRequest::new(Fields::new());
        let _ = request.set_scheme(Some(&scheme));
        let _ = request.set_authority(Some(authority));
        let _ = request.set_path_with_query(Some(if path.is_empty() { "/" } else { path }));
        let body = request.body().expect("a new request's body");
        match outgoing_handler::handle(request, None) {
            Ok(future) => {
                OutgoingBody::finish(body, None)
                    .map_err(|e| DeliveryError::retryable(format!("{e:?}")))?;
                pending.push(future);
            }
            Err(error) => return Err(DeliveryError::retryable(format!("{error:?}"))),
        }
    }
    for future in &pending {
        future.subscribe().block();
        match future.get() {
            Some(Ok(Ok(_response))) => {}
            other => return Err(DeliveryError::retryable(format!("{other:?}"))),
        }
    }
    Ok(())
}

fn spin() -> ! {
    let mut counter: u64 = 0;
    loop {
        counter = std::hint::black_box(counter.wrapping_add(1));
    }
}

fn exhaust_memory() -> ! {
    let mut hoard: Vec<Vec<u8>> = Vec::new();
    loop {
        hoard.push(vec![1; 1 << 20]);
        std::hint::black_box(&hoard);
    }
}

sdk::register_plugin!(SandboxProbe);
