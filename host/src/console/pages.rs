//! The pages: Overview, Calls, Deliveries and Recordings, each a template over a view of the
//! host's state taken for this request. Only what an operator needs is put in a view, and no
//! secret is ever read, so no template can show one.

use super::Console;
use super::auth::Identity;
use crate::pbx::ConnectionState;
use crate::queue::{BreakerState, DeliveryFilter, DeliveryInfo};
use axum::Extension;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The templates, compiled in; `.html` names are HTML-escaped by `minijinja`.
const TEMPLATES: &[(&str, &str)] = &[
    ("base.html", include_str!("templates/base.html")),
    ("login.html", include_str!("templates/login.html")),
    ("overview.html", include_str!("templates/overview.html")),
    ("calls.html", include_str!("templates/calls.html")),
    ("deliveries.html", include_str!("templates/deliveries.html")),
    ("recordings.html", include_str!("templates/recordings.html")),
];

/// The vendored live-update script.
const SCRIPT: &str = include_str!("static/live.js");

/// The template environment.
pub(super) fn templates() -> minijinja::Environment<'static> {
    let mut env = minijinja::Environment::new();
    for (name, source) in TEMPLATES {
        env.add_template(name, source)
            .expect("the console's templates compile (checked by its tests)");
    }
    env
}

impl Console {
    /// Renders `template` with `context`, answered with `status`.
    pub(super) fn render(
        &self,
        status: StatusCode,
        template: &str,
        context: minijinja::Value,
    ) -> Response {
        let rendered = self
            .0
            .templates
            .get_template(template)
            .and_then(|template| template.render(context));
        match rendered {
            Ok(html) => (status, Html(html)).into_response(),
            Err(error) => {
                tracing::error!(%error, template, "console: a page did not render");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "the page did not render\n",
                )
                    .into_response()
            }
        }
    }

    /// Renders a page of the console for `identity`, with its CSRF token.
    fn page(&self, identity: &Identity, template: &str, view: minijinja::Value) -> Response {
        let context = minijinja::context! {
            csrf => self.0.auth.csrf(identity),
            ..view
        };
        self.render(StatusCode::OK, template, context)
    }
}

/// `GET /live.js`.
pub(super) async fn script() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        SCRIPT,
    )
}

/// A time as the pages show it: UTC to the second.
pub(super) fn when(at: Timestamp) -> String {
    at.strftime("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// The PBX connection: a one-word state and what it means.
fn connection(state: &ConnectionState) -> (&'static str, String) {
    match state {
        ConnectionState::Connecting { attempt } => ("connecting", format!("attempt {attempt}")),
        ConnectionState::Connected { since } => ("connected", format!("since {}", when(*since))),
        ConnectionState::Backoff {
            failures,
            delay,
            error,
        } => (
            "disconnected",
            format!("{failures} failures, next attempt in {delay:?}: {error}"),
        ),
        ConnectionState::Stopped => ("stopped", String::new()),
    }
}

/// One plugin on the Overview page.
#[derive(Serialize)]
struct PluginView {
    name: String,
    configured: bool,
    breaker: String,
    disabled: Option<String>,
    pending: u64,
    parked: u64,
    in_flight: u32,
    delivered: u64,
}

/// `GET /`: connection, traffic, queue, storage and plugins.
pub(super) async fn overview(
    State(console): State<Console>,
    Extension(identity): Extension<Identity>,
) -> Response {
    let sources = &console.0.sources;
    let observed = &sources.observed;
    let (state, detail) = connection(&observed.connection.borrow());
    let counters = observed.connector.snapshot();
    let moments = observed.connector.moments();
    let stats = observed.queue.stats();
    let disabled: BTreeMap<String, String> = observed
        .queue
        .disabled_plugins()
        .into_iter()
        .map(|(name, at, why)| (name, format!("since {}: {why}", when(at))))
        .collect();
    let plugins: Vec<PluginView> = stats
        .plugins
        .iter()
        .map(|(name, plugin)| PluginView {
            name: name.clone(),
            configured: plugin.configured,
            breaker: match plugin.breaker {
                BreakerState::Closed => "closed".to_owned(),
                BreakerState::Open { until } => format!(
                    "open until {}",
                    when(crate::queue::replay::timestamp(until))
                ),
                BreakerState::HalfOpen => "half-open (probing)".to_owned(),
            },
            disabled: disabled.get(name).cloned(),
            pending: plugin.pending,
            parked: plugin.parked,
            in_flight: plugin.in_flight,
            delivered: plugin.outcomes.delivered,
        })
        .collect();
    let live = sources.live.borrow().clone();
    let view = minijinja::context! {
        page => "overview",
        connection => state,
        connection_detail => detail,
        frames => counters.frames,
        connects => counters.connects,
        disconnects => counters.disconnects,
        tokens_minted => counters.tokens_minted,
        token_expires => moments.token_expires.map(when),
        last_frame => moments.last_frame.map(when),
        events_per_minute => live.events_last_minute(Timestamp::now()),
        live_calls => live.calls.len(),
        depth => stats.depth,
        parked => stats.parked,
        oldest_pending => stats.oldest_pending_age.map(|age| format!("{} s", age.as_secs())),
        storage => observed.storage.failing(),
        plugins => plugins,
    };
    console.page(&identity, "overview.html", view)
}

/// One event on the Calls page, with what became of its deliveries.
#[derive(Serialize)]
struct EventView {
    at: String,
    call_id: String,
    event: &'static str,
    user: String,
    deliveries: Vec<String>,
}

/// `GET /calls`: the calls in the engine, and the latest events with their deliveries.
pub(super) async fn calls(
    State(console): State<Console>,
    Extension(identity): Extension<Identity>,
) -> Response {
    let sources = &console.0.sources;
    let live = sources.live.borrow().clone();
    let waiting = sources
        .observed
        .queue
        .list(&DeliveryFilter::default())
        .unwrap_or_default();
    let mut by_event: BTreeMap<(&str, &str), Vec<String>> = BTreeMap::new();
    for delivery in &waiting {
        by_event
            .entry((&delivery.call_id, &delivery.event))
            .or_default()
            .push(format!(
                "{}: {} ({} attempts)",
                delivery.plugin,
                delivery.status.label(),
                delivery.attempts
            ));
    }
    let recent: Vec<EventView> = live
        .recent
        .iter()
        .rev()
        .take(100)
        .map(|event| EventView {
            at: when(event.at),
            deliveries: by_event
                .get(&(event.call_id.as_str(), event.event))
                .cloned()
                .unwrap_or_default(),
            call_id: event.call_id.clone(),
            event: event.event,
            user: event.user.clone(),
        })
        .collect();
    let view = minijinja::context! {
        page => "calls",
        live => live.calls.values().collect::<Vec<_>>(),
        recent => recent,
    };
    console.page(&identity, "calls.html", view)
}

/// The Deliveries page's filters, from its query string.
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
pub(super) struct Filters {
    /// One plugin's only; empty for all.
    #[serde(default)]
    pub plugin: String,
    /// One status only (its label); empty for every status but `pending`, `all` for all.
    #[serde(default)]
    pub status: String,
    /// Only those parked (or taken) at or after this time, e.g. `2026-01-31T08:00:00Z`.
    #[serde(default)]
    pub since: String,
    /// What the last action did, shown once.
    #[serde(default)]
    pub done: String,
}

impl Filters {
    /// The deliveries these filters select, or why the filters do not read.
    pub(super) fn select(&self, console: &Console) -> Result<Vec<DeliveryInfo>, String> {
        let since = match self.since.trim() {
            "" => None,
            text => Some(text.parse::<Timestamp>().map_err(|_| {
                format!("since: {text:?} is not a time such as 2026-01-31T08:00:00Z")
            })?),
        };
        let filter = DeliveryFilter {
            parked_only: false,
            plugin: (!self.plugin.is_empty()).then(|| self.plugin.clone()),
            since,
        };
        let all = console
            .0
            .sources
            .observed
            .queue
            .list(&filter)
            .map_err(|error| error.to_string())?;
        Ok(all
            .into_iter()
            .filter(|delivery| match self.status.as_str() {
                "" => delivery.status.label() != "pending",
                "all" => true,
                status => delivery.status.label() == status,
            })
            .collect())
    }
}

/// One delivery on the Deliveries page.
#[derive(Serialize)]
struct DeliveryView {
    id: u64,
    plugin: String,
    call_id: String,
    event: String,
    status: &'static str,
    in_flight: bool,
    attempts: u32,
    taken_at: String,
    next_attempt_at: Option<String>,
    why: String,
}

impl From<DeliveryInfo> for DeliveryView {
    fn from(delivery: DeliveryInfo) -> Self {
        let last = delivery
            .history
            .last()
            .map(|attempt| {
                format!(
                    "{} {}",
                    attempt.outcome,
                    attempt.message.as_deref().unwrap_or("")
                )
            })
            .unwrap_or_default();
        DeliveryView {
            id: delivery.id,
            status: delivery.status.label(),
            in_flight: delivery.in_flight,
            attempts: delivery.attempts,
            taken_at: when(delivery.taken_at),
            next_attempt_at: delivery.next_attempt_at.map(when),
            why: delivery
                .parked
                .map_or(last, |(at, why)| format!("parked {}: {why}", when(at))),
            plugin: delivery.plugin,
            call_id: delivery.call_id,
            event: delivery.event,
        }
    }
}

/// `GET /deliveries`: the deliveries waiting or given up on, filtered, with their actions.
pub(super) async fn deliveries(
    State(console): State<Console>,
    Extension(identity): Extension<Identity>,
    Query(filters): Query<Filters>,
) -> Response {
    let (rows, error) = match filters.select(&console) {
        Ok(rows) => (rows.into_iter().map(DeliveryView::from).collect(), None),
        Err(error) => (Vec::new(), Some(error)),
    };
    let stats = console.0.sources.observed.queue.stats();
    let plugins: Vec<&String> = stats.plugins.keys().collect();
    let view = minijinja::context! {
        page => "deliveries",
        filters => filters,
        plugins => plugins,
        statuses => ["pending", "retrying", "parked"],
        rows => rows,
        error => error,
    };
    console.page(&identity, "deliveries.html", view)
}

/// One waiting recording job.
#[derive(Serialize)]
struct JobView {
    pbx_call_id: u64,
    extensions: Vec<String>,
    ended: Option<String>,
}

/// `GET /recordings`: the calls whose recordings are still awaited.
pub(super) async fn recordings(
    State(console): State<Console>,
    Extension(identity): Extension<Identity>,
) -> Response {
    let (enabled, jobs, error) = match &console.0.sources.recordings {
        None => (false, Vec::new(), None),
        Some(store) => match store.recording_jobs() {
            Ok(jobs) => (
                true,
                jobs.into_iter()
                    .map(|job| JobView {
                        pbx_call_id: job.pbx_call_id,
                        extensions: job
                            .parts
                            .iter()
                            .map(|part| format!("{} with {}", part.extension, part.other_number))
                            .collect(),
                        ended: job.parts.iter().map(|part| part.talk_end).max().map(when),
                    })
                    .collect(),
                None,
            ),
            Err(error) => (true, Vec::new(), Some(error.to_string())),
        },
    };
    let view = minijinja::context! {
        page => "recordings",
        enabled => enabled,
        jobs => jobs,
        error => error,
    };
    console.page(&identity, "recordings.html", view)
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_template_compiles_and_escapes_html() {
        let env = super::templates();
        let login = env
            .get_template("login.html")
            .unwrap()
            .render(minijinja::context! { error => "<b>x</b>" })
            .unwrap();
        assert!(login.contains("&lt;b&gt;x&lt;&#x2f;b&gt;"), "{login}");
    }
}
