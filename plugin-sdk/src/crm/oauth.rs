//! OAuth access tokens kept in the plugin's store, refreshed when needed and once after a 401
//! (spec `crm-plugins.md` sections 6.1 and 7.1: Bitrix24 `auth = "app"`, Zoho).
//!
//! The state lives under the key [`KEY`] (`oauth`), without expiry, as JSON [`TokenState`]:
//! the access token, when it expires, the latest refresh token when the CRM rotates them
//! (Bitrix24 does, Zoho does not), and the `seed`, the SHA-256 of the configured refresh
//! token, so that configuring a new one discards the state built on the old one.
//!
//! A token is refreshed when there is none, when fewer than five minutes are left
//! ([`REFRESH_MARGIN_MS`]), or once after the CRM refused it ([`Tokens::send`]). Deliveries
//! run at once, so two may refresh together. Each stores its new state with `set-if` against
//! the exact bytes it read: one wins, and the loser rereads and uses the winner's token. With
//! rotating refresh tokens the loser's refresh may instead be refused, its refresh token
//! already spent by the winner: it rereads the state, and a newer one there is used; without
//! one the failure is retryable (`"{crm} refresh token rejected; retrying"`), so a race at
//! start never parks a delivery. When the retries run out, the host parks it.

use super::KvStore;
use super::errors::{Rules, Verdict};
use crate::DeliveryError;
use crate::http::{HttpError, Response};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::time::{SystemTime, UNIX_EPOCH};

/// The store key of the token state. Written without expiry.
pub const KEY: &str = "oauth";

/// A token with fewer than this many milliseconds left is refreshed first: 300 000 (5 min).
pub const REFRESH_MARGIN_MS: u64 = 300_000;

/// The token state as stored under [`KEY`], e.g.
/// `{"access_token":"T1","expires_at":1795860900000,"refresh_token":"R1","seed":"9f86…"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenState {
    /// The access token.
    pub access_token: String,
    /// When it expires, in UTC milliseconds since the Unix epoch.
    pub expires_at: u64,
    /// The refresh token the last refresh returned, when the CRM rotates them; else the
    /// configured one is used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// SHA-256 (lower-case hex) of the configured refresh token the state was built from.
    pub seed: String,
}

/// What the CRM's token endpoint granted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// The new access token.
    pub access_token: String,
    /// Its lifetime, `expires_in`, in seconds.
    pub expires_in_seconds: u64,
    /// The new refresh token, when the CRM rotates them (Bitrix24); `None` keeps the one used.
    pub refresh_token: Option<String>,
}

impl Grant {
    /// The grant in a token endpoint's JSON answer (RFC 6749 section 5.1: `access_token`,
    /// `expires_in` as a number or a string of digits, optional `refresh_token`); `None` when
    /// the body has no `access_token` or `expires_in`. What an answer without them means
    /// (Bitrix24 `invalid_grant`, Zoho's 200 with `error`) is the plugin's to say.
    ///
    /// ```
    /// use callhook_plugin_sdk::crm::oauth::Grant;
    ///
    /// let body = br#"{"access_token":"T1","refresh_token":"R1","expires_in":3600,"scope":"crm"}"#;
    /// let grant = Grant::from_json(body).unwrap();
    /// assert_eq!((grant.expires_in_seconds, grant.refresh_token.as_deref()), (3600, Some("R1")));
    /// ```
    pub fn from_json(body: &[u8]) -> Option<Grant> {
        let body: serde_json::Value = serde_json::from_slice(body).ok()?;
        let access_token = body.get("access_token")?.as_str()?.to_string();
        let expires_in_seconds = match body.get("expires_in")? {
            serde_json::Value::Number(n) => n.as_u64()?,
            serde_json::Value::String(s) => s.trim().parse().ok()?,
            _ => return None,
        };
        let refresh_token = body
            .get("refresh_token")
            .and_then(serde_json::Value::as_str)
            .filter(|token| !token.is_empty())
            .map(str::to_string);
        Some(Grant {
            access_token,
            expires_in_seconds,
            refresh_token,
        })
    }
}

/// Why a refresh failed.
#[derive(Debug, Clone)]
pub enum RefreshError {
    /// The endpoint refused the refresh token (Bitrix24 `invalid_grant`, `invalid_client`):
    /// perhaps another delivery rotated it, so the state is read again.
    Rejected,
    /// Anything else, returned as it is (e.g. Zoho's permanent
    /// `"Zoho refresh token rejected: {error}"`, a retryable 5xx).
    Failed(DeliveryError),
}

impl From<DeliveryError> for RefreshError {
    fn from(error: DeliveryError) -> Self {
        RefreshError::Failed(error)
    }
}

impl From<HttpError> for RefreshError {
    fn from(error: HttpError) -> Self {
        RefreshError::Failed(error.into())
    }
}

/// Why a request sent with an access token failed.
#[derive(Debug, Clone)]
pub enum SendError {
    /// The CRM refused the token (HTTP 401): [`Tokens::send`] replaces it once.
    Unauthorized,
    /// Anything else, returned as it is.
    Failed(DeliveryError),
}

impl From<DeliveryError> for SendError {
    fn from(error: DeliveryError) -> Self {
        SendError::Failed(error)
    }
}

impl From<HttpError> for SendError {
    fn from(error: HttpError) -> Self {
        SendError::Failed(error.into())
    }
}

/// [`Rules::verdict`] for a request made with an access token: a 401 is
/// [`SendError::Unauthorized`], other failures the delivery error.
pub fn authorized(rules: &Rules, response: &Response, now: SystemTime) -> Result<(), SendError> {
    match rules.verdict(response, now) {
        Verdict::Unauthorized { .. } => Err(SendError::Unauthorized),
        verdict => Ok(verdict.into_result()?),
    }
}

/// The access tokens of one delivery.
///
/// ```
/// use callhook_plugin_sdk::crm::oauth::{Grant, Tokens, SendError};
/// use callhook_plugin_sdk::crm::MemoryKv;
/// use std::time::{Duration, UNIX_EPOCH};
///
/// let kv = MemoryKv::new();
/// let now = UNIX_EPOCH + Duration::from_secs(1_795_857_300);
/// let tokens = Tokens::new("Zoho", &kv, "configured-refresh-token", now);
/// let refresh = |_refresh_token: &str| {
///     Ok(Grant { access_token: "T1".into(), expires_in_seconds: 3600, refresh_token: None })
/// };
/// let answer = tokens.send(refresh, |access_token| {
///     // Send the request with `Authorization: Zoho-oauthtoken {access_token}`; a 401 is
///     // `Err(SendError::Unauthorized)` (see `oauth::authorized`).
///     Ok::<_, SendError>(format!("sent with {access_token}"))
/// });
/// assert_eq!(answer.unwrap(), "sent with T1");
/// ```
pub struct Tokens<'a, K: KvStore> {
    crm: &'a str,
    kv: &'a K,
    configured: &'a str,
    seed: String,
    now_ms: u64,
}

/// The state as read: its exact bytes (for `set-if`) and, when it belongs to the configured
/// refresh token and parses, the state.
struct Read {
    raw: Option<Vec<u8>>,
    state: Option<TokenState>,
}

impl<'a, K: KvStore> Tokens<'a, K> {
    /// The tokens of `crm` (its name in messages), kept in `kv`, for the refresh token the
    /// operator configured, at `now`.
    pub fn new(
        crm: &'a str,
        kv: &'a K,
        configured_refresh_token: &'a str,
        now: SystemTime,
    ) -> Self {
        let now_ms = now
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        Tokens {
            crm,
            kv,
            configured: configured_refresh_token,
            seed: seed(configured_refresh_token),
            now_ms,
        }
    }

    /// A usable access token: the stored one, unless there is none, it was made from another
    /// configured refresh token, or it expires within [`REFRESH_MARGIN_MS`]; else a new one
    /// from `refresh`, which is called with the refresh token to use.
    pub fn access_token(
        &self,
        mut refresh: impl FnMut(&str) -> Result<Grant, RefreshError>,
    ) -> Result<String, DeliveryError> {
        let read = self.read()?;
        match &read.state {
            Some(state) if self.fresh(state) => Ok(state.access_token.clone()),
            _ => self.refresh(read, None, &mut refresh, false),
        }
    }

    /// Calls `send` with a usable access token; when the CRM refuses it, replaces it once (by
    /// a newer one another delivery stored, else by a refresh) and calls `send` again. A second
    /// refusal is permanent, `"access token rejected"`.
    pub fn send<T>(
        &self,
        mut refresh: impl FnMut(&str) -> Result<Grant, RefreshError>,
        mut send: impl FnMut(&str) -> Result<T, SendError>,
    ) -> Result<T, DeliveryError> {
        let token = self.access_token(&mut refresh)?;
        let refused = match send(&token) {
            Ok(value) => return Ok(value),
            Err(SendError::Failed(error)) => return Err(error),
            Err(SendError::Unauthorized) => token,
        };
        let read = self.read()?;
        let token = match &read.state {
            Some(state) if self.usable(state, Some(&refused)) => state.access_token.clone(),
            _ => self.refresh(read, Some(&refused), &mut refresh, false)?,
        };
        match send(&token) {
            Ok(value) => Ok(value),
            Err(SendError::Failed(error)) => Err(error),
            Err(SendError::Unauthorized) => Err(DeliveryError::permanent("access token rejected")),
        }
    }

    /// Refreshes from the state `read`, stores the result with `set-if` against it, and on a
    /// lost race or a refused refresh token reads again (see the module documentation).
    /// `endpoint` asks the CRM's token endpoint with a refresh token; `refused` is an access
    /// token the CRM refused, never to be handed out again; `retried` says this is the one
    /// refresh allowed after a refused refresh token.
    fn refresh(
        &self,
        read: Read,
        refused: Option<&str>,
        endpoint: &mut dyn FnMut(&str) -> Result<Grant, RefreshError>,
        retried: bool,
    ) -> Result<String, DeliveryError> {
        let previous = read.state.as_ref().and_then(|s| s.refresh_token.clone());
        let used = previous.as_deref().unwrap_or(self.configured).to_string();
        let grant = match endpoint(&used) {
            Ok(grant) => grant,
            Err(RefreshError::Failed(error)) => return Err(error),
            Err(RefreshError::Rejected) => {
                return self.after_rejection(&read, &used, refused, endpoint, retried);
            }
        };
        let state = TokenState {
            access_token: grant.access_token,
            expires_at: self
                .now_ms
                .saturating_add(grant.expires_in_seconds.saturating_mul(1000)),
            refresh_token: grant.refresh_token.or(previous),
            seed: self.seed.clone(),
        };
        let bytes = serde_json::to_vec(&state).expect("a token state serialises");
        let stored = self
            .kv
            .set_if(KEY, read.raw.as_deref(), &bytes)
            .map_err(|e| self.store_failed(e))?;
        if stored {
            return Ok(state.access_token);
        }
        // Another delivery stored a state since we read: its token wins. Should that state
        // be of no use (another seed, already expiring), ours serves this delivery unstored.
        match self.read()?.state {
            Some(winner) if self.usable(&winner, refused) => Ok(winner.access_token),
            _ => Ok(state.access_token),
        }
    }

    /// The refresh token `used` was refused: a state stored since `read` is used, its access
    /// token or, once, a refresh with its newer refresh token; else retryable.
    fn after_rejection(
        &self,
        read: &Read,
        used: &str,
        refused: Option<&str>,
        endpoint: &mut dyn FnMut(&str) -> Result<Grant, RefreshError>,
        retried: bool,
    ) -> Result<String, DeliveryError> {
        let rejected =
            || DeliveryError::retryable(format!("{} refresh token rejected; retrying", self.crm));
        let again = self.read()?;
        if again.raw == read.raw {
            return Err(rejected());
        }
        match &again.state {
            Some(state) if self.usable(state, refused) => Ok(state.access_token.clone()),
            Some(TokenState {
                refresh_token: Some(newer),
                ..
            }) if newer != used && !retried => self.refresh(again, refused, endpoint, true),
            _ => Err(rejected()),
        }
    }

    /// Whether `state`'s access token may be handed out: fresh, and not the one refused.
    fn usable(&self, state: &TokenState, refused: Option<&str>) -> bool {
        self.fresh(state) && Some(state.access_token.as_str()) != refused
    }

    fn read(&self) -> Result<Read, DeliveryError> {
        let raw = self.kv.get(KEY).map_err(|e| self.store_failed(e))?;
        let state = raw
            .as_deref()
            .and_then(|bytes| serde_json::from_slice::<TokenState>(bytes).ok())
            .filter(|state| state.seed == self.seed);
        Ok(Read { raw, state })
    }

    fn fresh(&self, state: &TokenState) -> bool {
        state.expires_at.saturating_sub(self.now_ms) >= REFRESH_MARGIN_MS
    }

    fn store_failed(&self, error: crate::kv::KvError) -> DeliveryError {
        DeliveryError::retryable(format!(
            "{}: token state: {}",
            self.crm,
            DeliveryError::from(error).message()
        ))
    }
}

/// SHA-256 of `refresh_token`, lower-case hex.
fn seed(refresh_token: &str) -> String {
    Sha256::digest(refresh_token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests;
