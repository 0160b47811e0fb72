//! Who may use the console: the token check on every request, the login form and its session
//! cookie, and the CSRF token of every action.
//!
//! A session is a random id in an HttpOnly, SameSite=Strict cookie, remembered in memory (a
//! restart logs everyone out). Its CSRF token is an HMAC of the session id under a key drawn at
//! start, so it needs no storage. Tokens are compared in constant time, through their SHA-256
//! digests so that not even their length shows. Without a configured token there is one
//! identity (the validator let the console bind loopback addresses only).

use super::Console;
use crate::secret::Secret;
use axum::extract::{Form, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use std::collections::VecDeque;
use std::sync::Mutex;
use subtle::ConstantTimeEq;

/// The session cookie's name.
const COOKIE: &str = "callhook_console";
/// Sessions remembered at once; the oldest is forgotten beyond.
const MAX_SESSIONS: usize = 256;

/// The token, the open sessions and the CSRF key.
pub(super) struct Auth {
    token: Option<Secret>,
    sessions: Mutex<VecDeque<String>>,
    csrf_key: [u8; 32],
}

/// Who a request comes from, once let through.
#[derive(Debug, Clone)]
pub(super) struct Identity {
    /// The session id; empty without a token or for a bearer request.
    session: String,
    /// Authenticated by `Authorization: Bearer`: a header no other site can make a browser
    /// send, so its actions need no CSRF token.
    bearer: bool,
}

impl Auth {
    pub(super) fn new(token: Option<Secret>) -> Auth {
        Auth {
            token,
            sessions: Mutex::new(VecDeque::new()),
            csrf_key: rand::random(),
        }
    }

    /// Who sent `headers`, or `None` when the token is required and missing or wrong.
    fn identify(&self, headers: &HeaderMap) -> Option<Identity> {
        let Some(token) = &self.token else {
            return Some(Identity {
                session: String::new(),
                bearer: false,
            });
        };
        let bearer = headers
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "));
        if bearer.is_some_and(|given| same(given, token.expose())) {
            return Some(Identity {
                session: String::new(),
                bearer: true,
            });
        }
        let session = cookie(headers)?;
        let known = self
            .sessions
            .lock()
            .expect("not poisoned")
            .iter()
            .any(|open| same(open, &session));
        known.then_some(Identity {
            session,
            bearer: false,
        })
    }

    /// A new session id when `typed` is the token.
    fn open_session(&self, typed: &str) -> Option<String> {
        let token = self.token.as_ref()?;
        if !same(typed, token.expose()) {
            return None;
        }
        let session = hex::encode(rand::random::<[u8; 32]>());
        let mut sessions = self.sessions.lock().expect("not poisoned");
        if sessions.len() >= MAX_SESSIONS {
            sessions.pop_front();
        }
        sessions.push_back(session.clone());
        Some(session)
    }

    /// The CSRF token of `identity`'s forms.
    pub(super) fn csrf(&self, identity: &Identity) -> String {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.csrf_key).expect("HMAC takes any key length");
        mac.update(identity.session.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    /// Whether an action may go ahead: sent by this site's page (the browser's
    /// `Sec-Fetch-Site` and `Origin`, when it sends them) with `identity`'s CSRF token, or
    /// authenticated by a bearer header. Says why not.
    pub(super) fn check_action(
        &self,
        identity: &Identity,
        headers: &HeaderMap,
        csrf: &str,
    ) -> Result<(), &'static str> {
        if identity.bearer {
            return Ok(());
        }
        same_site(headers)?;
        if same(csrf, &self.csrf(identity)) {
            Ok(())
        } else {
            Err("the form's CSRF token is missing or wrong; reload the page")
        }
    }
}

/// `Err` when the browser says the request comes from another site.
fn same_site(headers: &HeaderMap) -> Result<(), &'static str> {
    let text = |name| {
        headers
            .get(name)
            .and_then(|v: &http::HeaderValue| v.to_str().ok())
    };
    if let Some(site) = text(header::HeaderName::from_static("sec-fetch-site"))
        && site != "same-origin"
        && site != "none"
    {
        return Err("the request comes from another site");
    }
    if let (Some(origin), Some(host)) = (text(header::ORIGIN), text(header::HOST)) {
        let origin = origin
            .strip_prefix("http://")
            .or_else(|| origin.strip_prefix("https://"));
        if origin != Some(host) {
            return Err("the request comes from another origin");
        }
    }
    Ok(())
}

/// Compares two secrets in constant time (of their digests: the length does not show either).
fn same(given: &str, expected: &str) -> bool {
    let given = Sha256::digest(given.as_bytes());
    let expected = Sha256::digest(expected.as_bytes());
    given.ct_eq(&expected).into()
}

/// The session cookie's value.
fn cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.to_owned())
}

/// The middleware of every page, stream and action: lets a request with the token (or an open
/// session) through with its [`Identity`]; a page request without sends to the login form,
/// anything else is answered 401.
pub(super) async fn require(
    State(console): State<Console>,
    mut request: Request,
    next: Next,
) -> Response {
    match console.0.auth.identify(request.headers()) {
        Some(identity) => {
            request.extensions_mut().insert(identity);
            next.run(request).await
        }
        None if request.method() == http::Method::GET && request.uri().path() != "/events" => {
            let mut response = Redirect::to("/login").into_response();
            *response.status_mut() = StatusCode::SEE_OTHER;
            response
        }
        None => (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            "the console's token is required\n",
        )
            .into_response(),
    }
}

/// The login form's field.
#[derive(serde::Deserialize)]
pub(super) struct Login {
    token: String,
}

/// `GET /login`: the form (a console without token has nothing to log into).
pub(super) async fn login_form(State(console): State<Console>) -> Response {
    if console.0.auth.token.is_none() {
        return Redirect::to("/").into_response();
    }
    console.render(StatusCode::OK, "login.html", minijinja::context! {})
}

/// `POST /login`: opens a session when the token is right, with its cookie.
pub(super) async fn login(
    State(console): State<Console>,
    headers: HeaderMap,
    Form(form): Form<Login>,
) -> Response {
    if let Err(why) = same_site(&headers) {
        return (StatusCode::FORBIDDEN, why).into_response();
    }
    match console.0.auth.open_session(&form.token) {
        Some(session) => (
            StatusCode::SEE_OTHER,
            [
                (
                    header::SET_COOKIE,
                    format!("{COOKIE}={session}; HttpOnly; SameSite=Strict; Path=/"),
                ),
                (header::LOCATION, "/".to_owned()),
            ],
        )
            .into_response(),
        None => console.render(
            StatusCode::UNAUTHORIZED,
            "login.html",
            minijinja::context! { error => "That is not the console's token." },
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, value.parse().unwrap());
        }
        map
    }

    #[test]
    fn without_the_token_nobody_is_let_in() {
        let auth = Auth::new(Some(Secret::from("s3cret")));
        for (case, sent) in [
            ("nothing", headers(&[])),
            ("wrong bearer", headers(&[("authorization", "Bearer nope")])),
            ("basic", headers(&[("authorization", "Basic czNjcmV0")])),
            (
                "unknown session",
                headers(&[("cookie", "callhook_console=abc")]),
            ),
        ] {
            assert!(auth.identify(&sent).is_none(), "{case}");
        }
        let bearer = auth
            .identify(&headers(&[("authorization", "Bearer s3cret")]))
            .unwrap();
        assert!(bearer.bearer);
    }

    #[test]
    fn a_session_opens_with_the_token_only_and_its_csrf_token_is_its_own() {
        let auth = Auth::new(Some(Secret::from("s3cret")));
        assert!(auth.open_session("s3cre").is_none());
        let session = auth.open_session("s3cret").unwrap();
        let other = auth.open_session("s3cret").unwrap();
        let cookie = format!("theme=dark; callhook_console={session}");
        let identity = auth.identify(&headers(&[("cookie", &cookie)])).unwrap();
        let csrf = auth.csrf(&identity);
        let none = HeaderMap::new();
        assert_eq!(auth.check_action(&identity, &none, &csrf), Ok(()));
        assert!(auth.check_action(&identity, &none, "").is_err());
        let other = auth
            .identify(&headers(&[(
                "cookie",
                &format!("callhook_console={other}"),
            )]))
            .unwrap();
        assert!(auth.check_action(&other, &none, &csrf).is_err());
    }

    #[test]
    fn actions_from_another_site_are_refused() {
        let auth = Auth::new(None);
        let identity = auth.identify(&HeaderMap::new()).unwrap();
        let csrf = auth.csrf(&identity);
        for (sent, allowed) in [
            (headers(&[("sec-fetch-site", "same-origin")]), true),
            (headers(&[("sec-fetch-site", "cross-site")]), false),
            (headers(&[("sec-fetch-site", "same-site")]), false),
            (
                headers(&[
                    ("origin", "http://127.0.0.1:8081"),
                    ("host", "127.0.0.1:8081"),
                ]),
                true,
            ),
            (
                headers(&[
                    ("origin", "http://evil.example"),
                    ("host", "127.0.0.1:8081"),
                ]),
                false,
            ),
        ] {
            assert_eq!(
                auth.check_action(&identity, &sent, &csrf).is_ok(),
                allowed,
                "{sent:?}"
            );
        }
    }
}
