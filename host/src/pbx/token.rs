//! The one access token shared by the event socket, the Call Control REST calls and XAPI.
//!
//! 3CX keeps **one live token per API client**: minting a new token invalidates the previous
//! one at once (`3cx-api.md`, section 1). So the connector must never have two tokens in flight,
//! and two users that see a `401` at the same moment must not both mint (the second mint would
//! invalidate the first one's fresh token and the two would chase each other). Hence:
//!
//! - [`TokenManager`] holds the current token behind an async mutex that is kept across the
//!   mint request, so concurrent callers wait for one mint instead of starting their own;
//! - every token carries a *generation*; [`TokenManager::refresh_after_401`] mints only if the
//!   rejected token is still the current one, otherwise it hands out the newer token;
//! - the token is refreshed before it expires, a safety margin of a fifth of its lifetime
//!   (at most 60 s) ahead.
//!
//! **Lifetime.** `expires_in` is unreliable (a live V20 is reported to send `60` for a JWT
//! that lives an hour), so the JWT's own claims are authoritative when the token is a JWT: its
//! lifetime is `exp − iat`, counted from when the reply arrived, so that clock skew between
//! host and PBX does not matter. Otherwise `expires_in` is used, in minutes when it is under
//! 300 (PBXes before 20.0.9), else in seconds; without it, a JWT's `exp` against the host's
//! clock; without either, 5 minutes are assumed. No lifetime is taken to be longer than a day.
//! See [`token_lifetime`].
//!
//! **Planned refreshes.** [`TokenManager::watch`] tells when the current token will be
//! replaced ([`TokenState::refresh_at`]); the connector refreshes it then on purpose and moves
//! to a new event socket (`3cx-api.md`, section 3), rather than letting the next REST call mint
//! one under an open socket.
//!
//! **Secrets.** The client secret and the tokens live in [`Secret`], whose `Debug` prints
//! `[redacted]`; nothing here logs them, and captures record only the token's lifetime.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::{DecodePaddingMode, general_purpose};
use jiff::Timestamp;
use reqwest::StatusCode;
use serde_json::Value;
use tokio::sync::{Mutex, watch};
use url::Url;

use super::capture::{CaptureWriter, Record};
use super::http::TransportError;
use super::stats::ConnectorStats;
pub use crate::secret::Secret;
use crate::telemetry::pbx::TokenMinted;

/// A bearer token handed out by the [`TokenManager`], with the generation that identifies it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessToken {
    value: Secret,
    generation: u64,
}

impl AccessToken {
    /// The `Authorization` header value, `Bearer <token>`.
    pub fn header_value(&self) -> String {
        format!("Bearer {}", self.value.expose())
    }

    /// Counts the tokens this manager minted: 1 for the first. Used to tell whether a token
    /// that got `401` is still the current one.
    pub fn generation(&self) -> u64 {
        self.generation
    }
}

/// Why no token could be had.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TokenError {
    /// The token endpoint could not be talked to.
    #[error("while getting an access token: {0}")]
    Transport(#[from] TransportError),
    /// `400` or `401` from the token endpoint: the client id or secret is wrong.
    #[error(
        "the PBX refused the API client's credentials (client id `{client_id}`, HTTP {status}: \
         {detail}); check the client id and secret in 3CX Admin > Integrations > API"
    )]
    Credentials {
        /// The client id that was refused (the secret is never shown).
        client_id: String,
        /// `400` or `401`.
        status: u16,
        /// The PBX's `error` / `error_description`, or its body, shortened.
        detail: String,
    },
    /// Any other status from the token endpoint.
    #[error("the token endpoint {url} answered HTTP {status}: {body}")]
    Status {
        /// The token endpoint.
        url: String,
        /// The HTTP status.
        status: u16,
        /// The start of the reply body.
        body: String,
    },
    /// A `3xx`: the token endpoint sends the request elsewhere. Redirects are not followed,
    /// since the request carries the client secret; the PBX's address is usually wrong (often
    /// `http://` where the PBX wants `https://`).
    #[error(
        "the token endpoint {url} answered HTTP {status}, a redirect to {location}; callhook \
         follows no redirects, which would send the client secret elsewhere: set pbx.url to \
         the PBX's own address"
    )]
    Redirected {
        /// The token endpoint.
        url: String,
        /// The `3xx` status.
        status: u16,
        /// The `Location` header, or `(no Location header)`.
        location: String,
    },
    /// `200` but not the JSON the spec describes.
    #[error("the token endpoint's reply is not the expected JSON ({detail})")]
    Malformed {
        /// What was wrong.
        detail: String,
    },
}

impl TokenError {
    /// Whether retrying cannot help until someone changes a setting (wrong credentials, TLS).
    pub fn is_permanent(&self) -> bool {
        matches!(
            self,
            TokenError::Credentials { .. }
                | TokenError::Redirected { .. }
                | TokenError::Transport(TransportError::Tls { .. })
        )
    }
}

/// Where a token's lifetime came from; see [`token_lifetime`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LifetimeSource {
    /// The JWT's `exp − iat`.
    JwtExpMinusIat,
    /// The JWT's `exp` (no `iat`, no `expires_in`), against the host's clock.
    JwtExp,
    /// `expires_in` of 300 or more, taken as seconds.
    ExpiresInSeconds,
    /// `expires_in` under 300, taken as minutes (PBXes before 20.0.9).
    ExpiresInMinutes,
    /// Neither was usable: 5 minutes assumed.
    Assumed,
}

/// How long a token received at `now` lives, at most [`MAX_LIFETIME`].
///
/// A JWT with `exp` and `iat` lives `exp − iat`; else `expires_in` counts minutes when under
/// 300 and seconds otherwise; else a JWT with only `exp` lives until `exp` (if that lies after
/// `now`); else 5 minutes.
///
/// ```
/// # use callhook::pbx::token::{token_lifetime, LifetimeSource};
/// # use std::time::Duration;
/// let now = jiff::Timestamp::UNIX_EPOCH;
/// assert_eq!(token_lifetime("opaque", Some(60), now), (Duration::from_secs(3600), LifetimeSource::ExpiresInMinutes));
/// assert_eq!(token_lifetime("opaque", Some(3600), now), (Duration::from_secs(3600), LifetimeSource::ExpiresInSeconds));
/// ```
pub fn token_lifetime(
    access_token: &str,
    expires_in: Option<u64>,
    now: Timestamp,
) -> (Duration, LifetimeSource) {
    let (lifetime, source) = uncapped_lifetime(access_token, expires_in, now);
    (lifetime.min(MAX_LIFETIME), source)
}

/// The longest lifetime believed: a day. A bigger `expires_in` is taken as a day.
pub const MAX_LIFETIME: Duration = Duration::from_secs(24 * 3600);

fn uncapped_lifetime(
    access_token: &str,
    expires_in: Option<u64>,
    now: Timestamp,
) -> (Duration, LifetimeSource) {
    let claims = jwt_times(access_token);
    if let Some(claims) = &claims
        && let Some(issued) = claims.iat
        && let Some(lifetime) = claims.exp.checked_sub(issued).filter(|&s| s > 0)
    {
        return (
            Duration::from_secs(lifetime.unsigned_abs()),
            LifetimeSource::JwtExpMinusIat,
        );
    }
    match expires_in {
        Some(n) if n > 0 && n < 300 => {
            return (
                Duration::from_secs(n * 60),
                LifetimeSource::ExpiresInMinutes,
            );
        }
        Some(n) if n >= 300 => return (Duration::from_secs(n), LifetimeSource::ExpiresInSeconds),
        _ => {}
    }
    if let Some(claims) = &claims
        && let Some(remaining) = claims.exp.checked_sub(now.as_second()).filter(|&s| s > 0)
    {
        let subsec = Duration::from_nanos(u64::from(now.subsec_nanosecond().unsigned_abs()));
        let lifetime = Duration::from_secs(remaining.unsigned_abs()).saturating_sub(subsec);
        return (lifetime, LifetimeSource::JwtExp);
    }
    (Duration::from_secs(300), LifetimeSource::Assumed)
}

/// The least time between a mint and the planned refresh, so that an absurdly short-lived
/// token cannot make the connector move sockets in a tight loop.
const MIN_REFRESH_INTERVAL: Duration = Duration::from_secs(1);

/// How long before expiry a token is replaced: a fifth of its lifetime, at most 60 s.
pub fn refresh_margin(lifetime: Duration) -> Duration {
    (lifetime / 5).min(Duration::from_secs(60))
}

/// The time claims of a JWT, in seconds since the epoch.
struct JwtTimes {
    exp: i64,
    iat: Option<i64>,
}

/// The `exp` (and `iat`, if present) claims of a JWT, if `token` is one with an `exp`.
fn jwt_times(token: &str) -> Option<JwtTimes> {
    // JWTs use unpadded base64url, but be lenient about padding.
    const LENIENT: GeneralPurpose = GeneralPurpose::new(
        &base64::alphabet::URL_SAFE,
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
    );
    let mut parts = token.split('.');
    let (_header, payload, _signature) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let bytes = LENIENT
        .decode(payload)
        .or_else(|_| general_purpose::STANDARD_NO_PAD.decode(payload.trim_end_matches('=')))
        .ok()?;
    let claims: Value = serde_json::from_slice(&bytes).ok()?;
    let seconds = |claim: &Value| match claim {
        Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)),
        Value::String(s) => s.parse().ok(),
        _ => None,
    };
    Some(JwtTimes {
        exp: seconds(&claims["exp"])?,
        iat: seconds(&claims["iat"]),
    })
}

/// The current token and when to replace it.
struct Current {
    token: AccessToken,
    refresh_at: Instant,
}

/// Mints, caches and refreshes the API client's one access token.
///
/// Cheap to share: wrap it in an `Arc` (the [`super::Connector`] does) and hand it to every
/// user of the PBX's API.
pub struct TokenManager {
    http: reqwest::Client,
    token_url: Url,
    client_id: String,
    client_secret: Secret,
    timeout: Duration,
    capture: Option<CaptureWriter>,
    stats: Arc<ConnectorStats>,
    current: Mutex<Option<Current>>,
    /// The current token's generation and planned refresh, readable without waiting for a mint.
    state: watch::Sender<TokenState>,
}

/// What [`TokenManager::watch`] shows: the current token's generation (0 before the first) and
/// when it is due to be replaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TokenState {
    /// The current token's generation; a new one means the PBX invalidated the previous token.
    pub generation: u64,
    /// When the current token is due for its planned refresh.
    pub refresh_at: Option<Instant>,
}

impl fmt::Debug for TokenManager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenManager")
            .field("token_url", &self.token_url.as_str())
            .field("client_id", &self.client_id)
            .field("client_secret", &self.client_secret)
            .finish_non_exhaustive()
    }
}

impl TokenManager {
    /// A manager minting at `token_url` (`{base}/connect/token`) with these credentials.
    pub(crate) fn new(
        http: reqwest::Client,
        token_url: Url,
        client_id: String,
        client_secret: Secret,
        timeout: Duration,
        capture: Option<CaptureWriter>,
        stats: Arc<ConnectorStats>,
    ) -> Self {
        TokenManager {
            http,
            token_url,
            client_id,
            client_secret,
            timeout,
            capture,
            stats,
            current: Mutex::new(None),
            state: watch::Sender::new(TokenState::default()),
        }
    }

    /// A valid token: the cached one, or a new one if there is none or it is about to expire.
    pub async fn token(&self) -> Result<AccessToken, TokenError> {
        let mut current = self.current.lock().await;
        if let Some(c) = current.as_ref()
            && Instant::now() < c.refresh_at
        {
            return Ok(c.token.clone());
        }
        self.mint(&mut current).await
    }

    /// A replacement for `rejected`, which got `401`: a new token if `rejected` is still the
    /// current one, else the token that already replaced it. The caller retries once with it
    /// and treats a second `401` as an error.
    pub async fn refresh_after_401(
        &self,
        rejected: &AccessToken,
    ) -> Result<AccessToken, TokenError> {
        self.stats.count_unauthorized();
        let mut current = self.current.lock().await;
        if let Some(c) = current.as_ref()
            && c.token.generation != rejected.generation
        {
            return Ok(c.token.clone());
        }
        self.mint(&mut current).await
    }

    /// The current token's generation and planned refresh (a fifth of its lifetime, at most
    /// 60 s, before it runs out, and at least a second after the mint), updated at each mint.
    pub fn watch(&self) -> watch::Receiver<TokenState> {
        self.state.subscribe()
    }

    /// Forgets the current token so the next [`TokenManager::token`] mints one.
    pub async fn invalidate(&self) {
        *self.current.lock().await = None;
    }

    /// Mints a token and makes it current. Called with the lock held.
    async fn mint(&self, current: &mut Option<Current>) -> Result<AccessToken, TokenError> {
        let url = self.token_url.as_str();
        let form = [
            ("client_id", self.client_id.as_str()),
            ("client_secret", self.client_secret.expose()),
            ("grant_type", "client_credentials"),
        ];
        let started = Instant::now();
        let reply = self
            .http
            .post(self.token_url.clone())
            .form(&form)
            .send()
            .await
            .map_err(|e| TransportError::classify(url, &e, self.timeout))?;
        let status = reply.status();
        let location = reply.headers().get(reqwest::header::LOCATION).map(|value| {
            let location = String::from_utf8_lossy(value.as_bytes());
            crate::text::escape_controls(&shorten(&location)).into_owned()
        });
        let body = reply
            .bytes()
            .await
            .map_err(|e| TransportError::classify(url, &e, self.timeout))?;
        let at = Timestamp::now();
        let result = if status.is_redirection() {
            Err(TokenError::Redirected {
                url: url.to_owned(),
                status: status.as_u16(),
                location: location.unwrap_or_else(|| "(no Location header)".to_owned()),
            })
        } else {
            self.read_reply(status, &body, at)
        };
        if let Some(capture) = &self.capture {
            let (lifetime_s, error) = match &result {
                Ok((_, lifetime, _)) => (Some(lifetime.as_secs_f64()), None),
                Err(e) => (None, Some(e.to_string())),
            };
            let expires_in = serde_json::from_slice::<Value>(&body)
                .ok()
                .and_then(|v| v["expires_in"].as_u64());
            capture.record(&Record::Token {
                at,
                status: status.as_u16(),
                expires_in,
                lifetime_s,
                error,
            });
        }
        let (value, lifetime, source) = result?;
        let generation = current.as_ref().map_or(0, |c| c.token.generation) + 1;
        let token = AccessToken { value, generation };
        let refresh_in = lifetime
            .saturating_sub(refresh_margin(lifetime))
            .max(MIN_REFRESH_INTERVAL);
        TokenMinted {
            generation,
            lifetime,
            source: &source,
        }
        .emit(&self.stats);
        *current = Some(Current {
            token: token.clone(),
            refresh_at: started + refresh_in,
        });
        self.state.send_replace(TokenState {
            generation,
            refresh_at: Some(started + refresh_in),
        });
        Ok(token)
    }

    /// The token, its lifetime and where that came from, out of the endpoint's reply.
    fn read_reply(
        &self,
        status: StatusCode,
        body: &[u8],
        now: Timestamp,
    ) -> Result<(Secret, Duration, LifetimeSource), TokenError> {
        if status == StatusCode::BAD_REQUEST || status == StatusCode::UNAUTHORIZED {
            return Err(TokenError::Credentials {
                client_id: self.client_id.clone(),
                status: status.as_u16(),
                detail: oauth_detail(body),
            });
        }
        if !status.is_success() {
            return Err(TokenError::Status {
                url: self.token_url.to_string(),
                status: status.as_u16(),
                body: shorten(&String::from_utf8_lossy(body)),
            });
        }
        let reply: Value = serde_json::from_slice(body).map_err(|e| TokenError::Malformed {
            detail: format!("not JSON: {e}"),
        })?;
        let Some(access_token) = reply["access_token"].as_str().filter(|t| !t.is_empty()) else {
            return Err(TokenError::Malformed {
                detail: "no `access_token`".to_owned(),
            });
        };
        let expires_in = match &reply["expires_in"] {
            Value::Number(n) => n.as_u64(),
            Value::String(s) => s.parse().ok(),
            _ => None,
        };
        let (lifetime, source) = token_lifetime(access_token, expires_in, now);
        Ok((Secret::from(access_token), lifetime, source))
    }
}

/// `error: error_description` of an OAuth error body, else the body itself, shortened.
fn oauth_detail(body: &[u8]) -> String {
    if let Ok(value) = serde_json::from_slice::<Value>(body) {
        let error = value["error"].as_str().unwrap_or_default();
        let description = value["error_description"].as_str().unwrap_or_default();
        match (error.is_empty(), description.is_empty()) {
            (false, false) => return format!("{error}: {description}"),
            (false, true) => return error.to_owned(),
            (true, false) => return description.to_owned(),
            (true, true) => {}
        }
    }
    let text = String::from_utf8_lossy(body);
    if text.trim().is_empty() {
        "no details".to_owned()
    } else {
        shorten(&text)
    }
}

/// At most 200 characters of `text`, for error messages.
pub(crate) fn shorten(text: &str) -> String {
    let text = text.trim();
    match text.char_indices().nth(200) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    fn jwt(claims: &str) -> String {
        format!(
            "{}.{}.sig",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"HS256","typ":"JWT"}"#),
            URL_SAFE_NO_PAD.encode(claims)
        )
    }

    fn at(second: i64) -> Timestamp {
        Timestamp::from_second(second).unwrap()
    }

    #[test]
    fn lifetime_table() {
        let now = 1_800_000_000;
        let secs = Duration::from_secs;
        use LifetimeSource::*;
        type Case = (
            &'static str,
            String,
            Option<u64>,
            (Duration, LifetimeSource),
        );
        #[rustfmt::skip]
        let cases: &[Case] = &[
            ("minutes",                "opaque".into(), Some(60),   (secs(3600), ExpiresInMinutes)),
            ("one minute",             "opaque".into(), Some(1),    (secs(60), ExpiresInMinutes)),
            ("299 is still minutes",   "opaque".into(), Some(299),  (secs(299 * 60), ExpiresInMinutes)),
            ("seconds",                "opaque".into(), Some(3600), (secs(3600), ExpiresInSeconds)),
            ("300 is seconds",         "opaque".into(), Some(300),  (secs(300), ExpiresInSeconds)),
            ("nothing",                "opaque".into(), None,       (secs(300), Assumed)),
            ("zero",                   "opaque".into(), Some(0),    (secs(300), Assumed)),
            ("exp alone loses to expires_in", jwt(&format!(r#"{{"exp":{}}}"#, now + 90)), Some(60), (secs(3600), ExpiresInMinutes)),
            ("exp alone, no expires_in", jwt(&format!(r#"{{"exp":{}}}"#, now + 7)), None, (secs(7), JwtExp)),
            ("jwt exp as string",      jwt(&format!(r#"{{"exp":"{}"}}"#, now + 7)), None, (secs(7), JwtExp)),
            ("jwt exp as float",       jwt(&format!(r#"{{"exp":{}.0}}"#, now + 7)), None, (secs(7), JwtExp)),
            ("expired jwt falls back", jwt(&format!(r#"{{"exp":{}}}"#, now - 5)), Some(60), (secs(3600), ExpiresInMinutes)),
            ("jwt without exp",        jwt(r#"{"sub":"x"}"#), Some(3600), (secs(3600), ExpiresInSeconds)),
            ("not base64 payload",     "a.%%%.c".into(), Some(60), (secs(3600), ExpiresInMinutes)),
            ("four parts",             format!("{}.x", jwt(r#"{"exp":1}"#)), Some(60), (secs(3600), ExpiresInMinutes)),
            ("live V20: 60 and a 1 h jwt", jwt(&format!(r#"{{"iat":{},"exp":{}}}"#, now, now + 3600)), Some(60), (secs(3600), JwtExpMinusIat)),
            ("exp - iat ignores skew", jwt(&format!(r#"{{"iat":{},"exp":{}}}"#, now - 7200, now - 3600)), Some(60), (secs(3600), JwtExpMinusIat)),
            ("iat after exp ignored",  jwt(&format!(r#"{{"iat":{},"exp":{}}}"#, now + 100, now + 50)), None, (secs(50), JwtExp)),
            ("extreme claims",         jwt(&format!(r#"{{"iat":{},"exp":{}}}"#, i64::MIN, i64::MAX)), Some(3600), (secs(3600), ExpiresInSeconds)),
            ("extreme exp alone",      jwt(&format!(r#"{{"exp":{}}}"#, i64::MIN)), None, (secs(300), Assumed)),
            ("huge expires_in capped", "opaque".into(), Some(u64::MAX), (secs(24 * 3600), ExpiresInSeconds)),
            ("huge jwt capped",        jwt(&format!(r#"{{"iat":0,"exp":{}}}"#, i64::MAX)), None, (secs(24 * 3600), JwtExpMinusIat)),
        ];
        for (name, token, expires_in, expected) in cases {
            assert_eq!(
                token_lifetime(token, *expires_in, at(now)),
                *expected,
                "{name}"
            );
        }
    }

    #[test]
    fn jwt_lifetime_counts_the_fraction_of_a_second() {
        let now = Timestamp::new(1_800_000_000, 250_000_000).unwrap();
        let token = jwt(r#"{"exp":1800000010}"#);
        assert_eq!(
            token_lifetime(&token, None, now).0,
            Duration::from_millis(9750)
        );
    }

    #[test]
    fn refresh_margin_table() {
        let secs = Duration::from_secs;
        for (lifetime, margin) in [
            (secs(3600), secs(60)),
            (secs(300), secs(60)),
            (secs(100), secs(20)),
            (secs(3), Duration::from_millis(600)),
            (secs(0), secs(0)),
        ] {
            assert_eq!(refresh_margin(lifetime), margin, "{lifetime:?}");
        }
    }

    #[test]
    fn oauth_detail_table() {
        for (body, expected) in [
            (
                r#"{"error":"invalid_client","error_description":"wrong client_secret"}"#,
                "invalid_client: wrong client_secret",
            ),
            (r#"{"error":"invalid_client"}"#, "invalid_client"),
            ("Bad Request", "Bad Request"),
            ("", "no details"),
        ] {
            assert_eq!(oauth_detail(body.as_bytes()), expected, "{body}");
        }
    }

    #[test]
    fn secrets_and_tokens_are_redacted_in_debug() {
        let token = AccessToken {
            value: Secret::from("eyJhbGciOi.secret.token"),
            generation: 3,
        };
        let shown = format!("{token:?}");
        assert!(!shown.contains("eyJ"), "{shown}");
        assert_eq!(token.header_value(), "Bearer eyJhbGciOi.secret.token");
    }

    #[test]
    fn shorten_cuts_long_text() {
        let long = "x".repeat(500);
        assert_eq!(shorten(&long).chars().count(), 201);
        assert_eq!(shorten(" short "), "short");
    }
}
