//! The data of one plugin store: WASI and HTTP contexts, the egress hooks, the memory limiter,
//! and the plugin's identity, settings, secrets and key-value handle.
//!
//! A store lives for exactly one delivery; nothing in it survives to the next.

use super::bounds::{DeliveryBounds, MAX_TABLE_ENTRIES};
use super::egress::{EgressPolicy, Refusal};
use super::kv_store::KvStore;
use super::limits::{MemoryLimiter, PluginLimits};
use super::sender::{Sender, refused};
use super::services::HostServices;
use crate::text::one_line;
use std::collections::BTreeMap;
use std::sync::Arc;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpHooks, WasiHttpView};

/// How much of a plugin's stderr is kept for the log (panic messages land there).
const STDERR_CAPACITY: usize = 16 << 10;
/// The longest log message, and the longest list of log fields, a plugin can write, in bytes
/// (after escaping); the rest is cut with a marker.
pub const MAX_LOG_TEXT: usize = 4 << 10;

/// What the host knows about a loaded plugin, shared by all its deliveries.
#[derive(Debug)]
pub struct PluginIdentity {
    /// The plugin's configured name.
    pub name: String,
    /// The contract version it was built against.
    pub api_version: String,
    /// `[plugin.settings]`.
    pub settings: BTreeMap<String, String>,
    /// `[plugin.secrets]`, resolved. Never logged.
    pub secrets: BTreeMap<String, String>,
    /// Its limits.
    pub limits: PluginLimits,
    /// Its egress policy.
    pub policy: Arc<EgressPolicy>,
    /// Sends its requests, over its pool of connections.
    pub sender: Arc<Sender>,
}

/// The `T` of `Store<T>` for plugins.
pub struct PluginState {
    table: ResourceTable,
    wasi: WasiCtx,
    http: WasiHttpCtx,
    hooks: EgressHooks,
    limiter: MemoryLimiter,
    plugin: Arc<PluginIdentity>,
    kv: KvStore,
    services: HostServices,
    call_id: String,
    stderr: MemoryOutputPipe,
}

impl PluginState {
    /// Fresh state for one delivery of `call_id`.
    pub fn new(
        plugin: Arc<PluginIdentity>,
        kv: KvStore,
        services: HostServices,
        call_id: String,
    ) -> Self {
        let stderr = MemoryOutputPipe::new(STDERR_CAPACITY);
        let wasi = WasiCtx::builder().stderr(stderr.clone()).build();
        PluginState {
            table: bounded_table(),
            wasi,
            http: WasiHttpCtx::new(),
            hooks: EgressHooks {
                sender: plugin.sender.clone(),
                bounds: DeliveryBounds::default(),
            },
            limiter: MemoryLimiter::new(plugin.limits.memory_bytes),
            kv: match plugin.limits.kv_quota_bytes {
                Some(bytes) => kv.with_total_quota(bytes),
                None => kv,
            },
            plugin,
            services,
            call_id,
            stderr,
        }
    }

    /// The plugin this store belongs to.
    pub fn plugin(&self) -> &PluginIdentity {
        &self.plugin
    }

    /// The memory limiter (for `Store::limiter`).
    pub fn limiter(&mut self) -> &mut MemoryLimiter {
        &mut self.limiter
    }

    /// Whether the plugin tried to grow its memory past its cap.
    pub fn memory_cap_hit(&self) -> bool {
        self.limiter.hit()
    }

    /// Requests the egress policy refused during this delivery.
    pub fn refusals(&self) -> Vec<Refusal> {
        self.hooks.bounds.refusals()
    }

    /// The plugin's sender and this delivery's bounds, for contract 0.3's `http.send`
    /// ([`Sender::send_whole`]).
    pub fn egress(&self) -> (Arc<Sender>, DeliveryBounds) {
        (self.hooks.sender.clone(), self.hooks.bounds.clone())
    }

    /// What the plugin wrote to stderr, lossily decoded and trimmed.
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.stderr.contents())
            .trim()
            .to_string()
    }

    /// What the host knows besides the event (contract 0.2).
    pub fn services(&self) -> &HostServices {
        &self.services
    }

    /// The key-value store, with the plugin's quota, and the plugin's name in it.
    pub fn kv(&self) -> (KvStore, String) {
        (self.kv.clone(), self.plugin.name.clone())
    }

    /// Writes a plugin's log line, tagged with plugin and call id.
    ///
    /// The message and the fields are the plugin's, so they are made one line of plain text
    /// first ([`crate::text::one_line`]): control characters escaped, so that a plugin can
    /// neither forge log lines nor steer a terminal, and each cut at [`MAX_LOG_TEXT`] bytes.
    pub fn write_log(&self, level: tracing::Level, message: &str, fields: &[(String, String)]) {
        let message = one_line(message, MAX_LOG_TEXT);
        let fields = fields
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(" ");
        let fields = one_line(&fields, MAX_LOG_TEXT);
        let fields = fields.as_ref();
        let plugin = self.plugin.name.as_str();
        let call_id = self.call_id.as_str();
        match level {
            tracing::Level::ERROR => tracing::error!(plugin, call_id, fields, "{message}"),
            tracing::Level::WARN => tracing::warn!(plugin, call_id, fields, "{message}"),
            tracing::Level::INFO => tracing::info!(plugin, call_id, fields, "{message}"),
            tracing::Level::DEBUG => tracing::debug!(plugin, call_id, fields, "{message}"),
            tracing::Level::TRACE => tracing::trace!(plugin, call_id, fields, "{message}"),
        }
    }
}

impl WasiView for PluginState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for PluginState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.hooks,
        }
    }
}

/// A resource table capped at [`MAX_TABLE_ENTRIES`].
fn bounded_table() -> ResourceTable {
    let mut table = ResourceTable::new();
    table.set_max_capacity(MAX_TABLE_ENTRIES);
    table
}

/// Hands a plugin's requests to its [`Sender`], within the delivery's [`DeliveryBounds`],
/// which also keep the refusals so the delivery result can name them.
struct EgressHooks {
    sender: Arc<Sender>,
    bounds: DeliveryBounds,
}

type ResponseFuture = Box<
    dyn Future<
            Output = wasmtime_wasi_http::Result<(
                http::Response<wasmtime_wasi_http::WasiBody>,
                Box<dyn Future<Output = wasmtime_wasi_http::Result<()>> + Send>,
            )>,
        > + Send,
>;

impl WasiHttpHooks for EgressHooks {
    fn send_request(
        &mut self,
        request: http::Request<wasmtime_wasi_http::WasiBody>,
        options: Option<wasmtime_wasi_http::RequestOptions>,
        _response_errors: Box<dyn Future<Output = wasmtime_wasi_http::Result<()>> + Send>,
    ) -> ResponseFuture {
        let sender = self.sender.clone();
        let bounds = self.bounds.clone();
        let slot = bounds.request_slot();
        Box::new(async move {
            let slot = slot.map_err(refused)?;
            let response = sender.send(request, options, &bounds, slot).await?;
            // The pool drives the connection; nothing is left to await here.
            let io = Box::new(std::future::ready(Ok(()))) as Box<dyn Future<Output = _> + Send>;
            Ok((response, io))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::kv_store::KvQuota;
    use crate::telemetry::logs::written_under;
    use tracing_subscriber::EnvFilter;

    /// What the host's log shows for one `write_log` call of a plugin.
    fn logged(message: &str, fields: &[(String, String)]) -> String {
        let dir = tempfile::tempdir().unwrap();
        let db = redb::Database::create(dir.path().join("kv.redb")).unwrap();
        let plugin = Arc::new(PluginIdentity {
            name: "crm".into(),
            api_version: "0.1.0".into(),
            settings: BTreeMap::new(),
            secrets: BTreeMap::new(),
            limits: PluginLimits::default(),
            policy: Arc::default(),
            sender: Arc::new(
                Sender::new(
                    Arc::default(),
                    PluginLimits::default(),
                    Arc::new(crate::runtime::SystemResolver),
                    None,
                    None,
                )
                .unwrap(),
            ),
        });
        let state = PluginState::new(
            plugin,
            KvStore::new(Arc::new(db), KvQuota::default()),
            HostServices::default(),
            "call-1".into(),
        );
        written_under(EnvFilter::new("trace"), || {
            state.write_log(tracing::Level::WARN, message, fields)
        })
    }

    #[test]
    fn a_plugin_log_call_is_one_line_without_control_characters() {
        let forged = "sent\n2026-01-01T00:00:00Z ERROR callhook: forged\r\x1b[2J\u{9b}";
        let fields = [("k\ney".to_string(), "v\x1b]0;title\x07".to_string())];
        let text = logged(forged, &fields);
        assert_eq!(text.lines().count(), 1, "{text}");
        assert!(text.ends_with('\n'), "{text}");
        assert!(
            !text.trim_end_matches('\n').chars().any(char::is_control),
            "{text:?}"
        );
        assert!(text.contains(r"sent\n2026-01-01T00:00:00Z ERROR"), "{text}");
        assert!(text.contains("crm") && text.contains("call-1"), "{text}");
    }

    #[test]
    fn a_long_plugin_log_message_is_cut_with_a_marker() {
        let text = logged(&"x".repeat(1 << 20), &[]);
        assert_eq!(text.lines().count(), 1);
        assert!(text.len() < 2 * MAX_LOG_TEXT, "{} bytes", text.len());
        assert!(text.contains("[cut; 1048576 bytes in all]"), "{text}");
    }
}
