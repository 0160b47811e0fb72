//! A plugin that misbehaves on request, for the host's sandbox and host-API tests.
//!
//! The setting `mode` picks the behaviour:
//! - `fetch`: `GET {url}`; success on 2xx, the SDK's error mapping otherwise;
//! - `loop`: spins forever (the epoch deadline must stop it);
//! - `memory`: allocates until the memory cap stops it;
//! - `panic`: panics;
//! - `echo`: logs, then `POST {url}` with its settings, the secret `token`, and the delivery;
//! - `kv`: stores the call id under `last`, reads it back, and posts what the store holds
//!   and the outcome of writing a value of `kv_value_size` bytes to `{url}`.

use callhook_plugin_sdk::http::Request;
use callhook_plugin_sdk::{self as sdk, Delivery, DeliveryError, Plugin};
use serde_json::json;

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
            other => Err(DeliveryError::permanent(format!("unknown mode {other:?}"))),
        }
    }
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
