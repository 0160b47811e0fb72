//! The console's actions: retry one delivery, replay every delivery the filters select, enable
//! a plugin a receiver disabled (410). Each is a POST checked for its CSRF token and origin
//! ([`super::auth`]), carried out by the admin socket's own queue operations
//! ([`admin::carry_out`]), and answered by a redirect back to the page with what was done.

use super::Console;
use super::auth::Identity;
use super::pages::Filters;
use crate::app::admin::{self, Request};
use crate::queue::DeliveryFilter;
use axum::Extension;
use axum::extract::{Form, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

/// `POST /deliveries/retry`'s form.
#[derive(Deserialize)]
pub(super) struct Retry {
    csrf: String,
    id: u64,
}

/// `POST /deliveries/replay`'s form: the page's filters.
#[derive(Deserialize)]
pub(super) struct Replay {
    csrf: String,
    #[serde(flatten)]
    filters: Filters,
}

/// `POST /plugins/enable`'s form.
#[derive(Deserialize)]
pub(super) struct Enable {
    csrf: String,
    plugin: String,
}

/// `POST /deliveries/retry`: attempts one delivery again now.
pub(super) async fn retry(
    State(console): State<Console>,
    Extension(identity): Extension<Identity>,
    headers: HeaderMap,
    Form(form): Form<Retry>,
) -> Response {
    let request = Request::Retry {
        id: Some(form.id),
        filter: DeliveryFilter::default(),
    };
    act(
        &console,
        &identity,
        &headers,
        &form.csrf,
        request,
        "/deliveries",
    )
}

/// `POST /deliveries/replay`: attempts again every delivery the filters select.
pub(super) async fn replay(
    State(console): State<Console>,
    Extension(identity): Extension<Identity>,
    headers: HeaderMap,
    Form(form): Form<Replay>,
) -> Response {
    if let Err(why) = console.0.auth.check_action(&identity, &headers, &form.csrf) {
        return (StatusCode::FORBIDDEN, why).into_response();
    }
    let outcome = form.filters.select(&console).and_then(|selected| {
        let ids: Vec<u64> = selected.iter().map(|delivery| delivery.id).collect();
        console
            .0
            .sources
            .observed
            .queue
            .retry_all(&ids)
            .map(|retried| format!("{} deliveries will be attempted again now", retried.len()))
            .map_err(|error| error.to_string())
    });
    let done = outcome.unwrap_or_else(|error| error);
    back("/deliveries", &done)
}

/// `POST /plugins/enable`: lets a plugin disabled by its receiver's 410 deliver again.
pub(super) async fn enable_plugin(
    State(console): State<Console>,
    Extension(identity): Extension<Identity>,
    headers: HeaderMap,
    Form(form): Form<Enable>,
) -> Response {
    let request = Request::EnablePlugin {
        plugin: form.plugin,
    };
    act(&console, &identity, &headers, &form.csrf, request, "/")
}

/// Checks the action, carries `request` out and redirects to `page` with what was done.
fn act(
    console: &Console,
    identity: &Identity,
    headers: &HeaderMap,
    csrf: &str,
    request: Request,
    page: &str,
) -> Response {
    if let Err(why) = console.0.auth.check_action(identity, headers, csrf) {
        return (StatusCode::FORBIDDEN, why).into_response();
    }
    let done = match admin::carry_out(&console.0.sources.observed.queue, request) {
        Ok(text) => text,
        Err(error) => error.to_string(),
    };
    back(page, &done)
}

/// A redirect to `page` that shows `done` once.
fn back(page: &str, done: &str) -> Response {
    let query = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("done", done.trim())
        .finish();
    Redirect::to(&format!("{page}?{query}")).into_response()
}
