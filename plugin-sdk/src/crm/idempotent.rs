//! Creating a CRM record exactly once per end event, although no CRM deduplicates a create
//! (spec `crm-plugins.md` section 3.5).
//!
//! The plugin keeps two entries per record key `{id}.{user}` in its store, both expiring after
//! 30 days ([`RECORD_TTL_SECONDS`]):
//!
//! | key | value | written |
//! |---|---|---|
//! | `rec:{key}` | the CRM's record id | right after the create succeeded |
//! | `pending:{key}` | `1` | right before the create is sent; deleted once its outcome is known |
//!
//! [`CreateOnce::run`] goes through the spec's six steps:
//! 1. `rec:` exists: the record is there, nothing is sent.
//! 2. `pending:` exists: an earlier create went out and its outcome is unknown. With a
//!    [`search`](CreateOnce::search) by a stored id, a found record is remembered and nothing is
//!    sent; nothing found goes on with step 3. Without one, a `replayed` delivery (an operator
//!    checked the CRM) goes on with step 3, any other fails with
//!    [`CreateError::UnknownOutcome`].
//! 3. `pending:` is written, then the create is sent.
//! 4. [`Sent::Created`]: `rec:` is written and `pending:` deleted; a failed write is retryable.
//! 5. [`Sent::NotCreated`]: `pending:` is deleted and the CRM's verdict returned.
//! 6. [`Sent::Unknown`]: `pending:` stays; retryable, `outcome unknown`.
//!
//! The durability of the host's `set` (contract 0.2.0) is what makes step 3 safe: once the
//! create is sent, a crash or a delivery time limit leaves `pending:` behind, never nothing.

use super::KvStore;
use super::errors::Rules;
use crate::DeliveryError;
use crate::http::{HttpError, Response};
use crate::kv::KvError;
use std::time::SystemTime;

/// How long `rec:` and `pending:` entries live: 30 days, in seconds.
pub const RECORD_TTL_SECONDS: u64 = 30 * 24 * 60 * 60;

/// What became of one create request, as the plugin's create closure reports it.
#[derive(Debug, Clone)]
pub enum Sent {
    /// The CRM created the record and answered with its id.
    Created(String),
    /// Nothing was created: the CRM answered otherwise than success (the error is its verdict,
    /// see [`super::errors`]), or the request failed before a connection was established.
    NotCreated(DeliveryError),
    /// The record may or may not exist: the request was under way and no answer came
    /// (response time-out, connection closed), or the CRM reported success without an id to
    /// read. The text says which.
    Unknown(String),
}

impl Sent {
    /// The outcome of `http::Request::send` for a create: a success by `rules` whose record id
    /// `id` reads is [`Sent::Created`]; any other answer is [`Sent::NotCreated`] with the
    /// verdict's error (a 401 too: an OAuth plugin intercepts it first); a failure is
    /// [`Sent::Unknown`] when the request may have reached the CRM ([`may_have_arrived`]),
    /// else [`Sent::NotCreated`]. A success without an id is [`Sent::Unknown`]: the record is
    /// probably there, and creating it again would make a second.
    pub fn from_http(
        result: Result<Response, HttpError>,
        rules: &Rules,
        now: SystemTime,
        id: impl FnOnce(&Response) -> Option<String>,
    ) -> Sent {
        let response = match result {
            Ok(response) => response,
            Err(error) if may_have_arrived(&error) => return Sent::Unknown(error.to_string()),
            Err(error) => return Sent::NotCreated(error.into()),
        };
        match rules.verdict(&response, now).into_result() {
            Ok(()) => match id(&response) {
                Some(id) => Sent::Created(id),
                None => Sent::Unknown(format!(
                    "{} answered HTTP {} without the new record's id",
                    rules.crm, response.status
                )),
            },
            Err(error) => Sent::NotCreated(error),
        }
    }

    /// [`Sent::from_http`] for a create whose record [`CreateOnce::search`] can find: a 5xx
    /// answer is [`Sent::Unknown`] instead, since a CRM may store the record and then fail
    /// (the stand-ins' "500 after store"); `pending:` stays, and the next attempt searches
    /// before it creates again. Without a search that would park every outage as an unknown
    /// outcome, so plugins use it only with one (HubSpot `id_property`, Zoho `id_field`).
    ///
    /// ```
    /// use callhook_plugin_sdk::crm::errors::Rules;
    /// use callhook_plugin_sdk::crm::idempotent::Sent;
    /// use callhook_plugin_sdk::http::Response;
    /// use std::time::SystemTime;
    ///
    /// let failed = Response { status: 500, headers: vec![], body: b"{}".to_vec() };
    /// let sent = Sent::from_http_searchable(Ok(failed), &Rules::ZOHO, SystemTime::now(), |_| None);
    /// assert!(matches!(sent, Sent::Unknown(ref what) if what == "Zoho answered HTTP 500"));
    /// ```
    pub fn from_http_searchable(
        result: Result<Response, HttpError>,
        rules: &Rules,
        now: SystemTime,
        id: impl FnOnce(&Response) -> Option<String>,
    ) -> Sent {
        match &result {
            Ok(response) if (500..=599).contains(&response.status) => {
                Sent::Unknown(format!("{} answered HTTP {}", rules.crm, response.status))
            }
            _ => Sent::from_http(result, rules, now, id),
        }
    }
}

/// Whether a request that failed may have reached the server: true unless it failed before a
/// connection was established (name lookup, refused, connect time-out, TLS handshake, the
/// host's policy, an invalid URL). Unknown failures count as arrived, the careful side: the
/// worst that follows is an `unknown-outcome` instead of a retry.
///
/// `HttpError::Transport` carries the `wasi:http` error code's name as its text (the SDK's
/// `http` module); this reads the name back.
pub fn may_have_arrived(error: &HttpError) -> bool {
    /// The codes the host's sender gives before the request's first byte is sent.
    const BEFORE_CONNECTION: &[&str] = &[
        "DnsTimeout",
        "DnsError",
        "DestinationNotFound",
        "DestinationUnavailable",
        "DestinationIpProhibited",
        "DestinationIpUnroutable",
        "ConnectionRefused",
        "ConnectionTimeout",
        "ConnectionLimitReached",
        "TlsProtocolError",
        "TlsCertificateError",
        "TlsAlertReceived",
        "HttpRequestDenied",
        "HttpRequestMethodInvalid",
        "HttpRequestUriInvalid",
        "HttpRequestUriTooLong",
        "ConfigurationError",
    ];
    match error {
        HttpError::InvalidUrl(_) | HttpError::Refused(_) => false,
        HttpError::Transport(text) => {
            let text = text.strip_prefix("ErrorCode::").unwrap_or(text);
            let name = text
                .split(|c: char| !c.is_ascii_alphanumeric())
                .next()
                .unwrap_or("");
            !BEFORE_CONNECTION.contains(&name)
        }
    }
}

/// A record the plugin holds for a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The CRM's record id.
    pub id: String,
    /// How it was obtained.
    pub origin: Origin,
}

/// How [`CreateOnce::run`] came by a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// From `rec:` (step 1): an earlier attempt created it; nothing was sent.
    Stored,
    /// By the search after an unknown outcome (step 2).
    Found,
    /// Created by this attempt (step 4).
    Created,
}

/// Why [`CreateOnce::run`] has no record.
#[derive(Debug, Clone)]
pub enum CreateError {
    /// Retry or park as the error says: the CRM's verdict, a failed store, or an unknown
    /// outcome after no answer (retryable).
    Failed(DeliveryError),
    /// An earlier create's outcome is unknown and cannot be found out (step 2): parked until
    /// an operator checks the CRM and replays the delivery.
    UnknownOutcome {
        /// `"{crm}: outcome of creating the record for {key} unknown; check {crm} and replay
        /// this delivery if the record is missing"`.
        message: String,
    },
}

impl From<CreateError> for DeliveryError {
    /// [`CreateError::UnknownOutcome`] is contract 0.2's `unknown-outcome`: the host parks the
    /// delivery as `outcome-unknown`, and an operator's replay comes back with `replayed`.
    fn from(error: CreateError) -> Self {
        match error {
            CreateError::Failed(error) => error,
            CreateError::UnknownOutcome { message } => DeliveryError::unknown_outcome(message),
        }
    }
}

/// The idempotent create of one record.
///
/// ```
/// use callhook_plugin_sdk::crm::idempotent::{CreateOnce, Origin, Sent};
/// use callhook_plugin_sdk::crm::MemoryKv;
///
/// let kv = MemoryKv::new();
/// let create = || Sent::Created("17591596434".to_string());
/// let record = CreateOnce::new("HubSpot", "261128101500_782-1.120", false)
///     .run(&kv, create)
///     .unwrap();
/// assert_eq!((record.id.as_str(), record.origin), ("17591596434", Origin::Created));
///
/// // A retry of the same delivery finds it and sends nothing.
/// let record = CreateOnce::new("HubSpot", "261128101500_782-1.120", false)
///     .run(&kv, || unreachable!())
///     .unwrap();
/// assert_eq!(record.origin, Origin::Stored);
/// ```
pub struct CreateOnce<'a> {
    crm: &'a str,
    key: &'a str,
    replayed: bool,
    search: Option<Search<'a>>,
}

/// A search for the record by the key stored with it.
type Search<'a> = Box<dyn FnOnce() -> Result<Option<String>, DeliveryError> + 'a>;

impl<'a> CreateOnce<'a> {
    /// The create of the record `key` (`{id}.{user}` of the end event) in `crm` (its name in
    /// messages); `replayed` is the delivery's: an operator replayed it after it was parked.
    pub fn new(crm: &'a str, key: &'a str, replayed: bool) -> Self {
        CreateOnce {
            crm,
            key,
            replayed,
            search: None,
        }
    }

    /// How to find a record created before with an unknown outcome, by the key the create
    /// stored in it (HubSpot `id_property`, Zoho `id_field`): its id, or `None`. By default
    /// there is none, and an unknown outcome parks the delivery until it is replayed.
    pub fn search(
        mut self,
        search: impl FnOnce() -> Result<Option<String>, DeliveryError> + 'a,
    ) -> Self {
        self.search = Some(Box::new(search));
        self
    }

    /// Runs steps 1 to 6 (module documentation), calling `create` at most once.
    pub fn run(
        mut self,
        kv: &impl KvStore,
        create: impl FnOnce() -> Sent,
    ) -> Result<Record, CreateError> {
        let rec = format!("rec:{}", self.key);
        let pending = format!("pending:{}", self.key);
        let read = |key: &str| kv.get(key).map_err(|e| self.store_failed("read", key, e));

        if let Some(id) = read(&rec)? {
            return Ok(Record {
                id: String::from_utf8_lossy(&id).into_owned(),
                origin: Origin::Stored,
            });
        }
        if read(&pending)?.is_some() {
            match self.search.take() {
                Some(search) => {
                    if let Some(id) = search().map_err(CreateError::Failed)? {
                        self.remember(kv, &id)?;
                        return Ok(Record {
                            id,
                            origin: Origin::Found,
                        });
                    }
                }
                None if self.replayed => {}
                None => {
                    return Err(CreateError::UnknownOutcome {
                        message: format!(
                            "{crm}: outcome of creating the record for {key} unknown; check \
                             {crm} and replay this delivery if the record is missing",
                            crm = self.crm,
                            key = self.key
                        ),
                    });
                }
            }
        }

        kv.set_expiring(&pending, b"1", RECORD_TTL_SECONDS)
            .map_err(|e| self.store_failed("write", &pending, e))?;
        match create() {
            Sent::Created(id) => {
                self.remember(kv, &id)?;
                Ok(Record {
                    id,
                    origin: Origin::Created,
                })
            }
            Sent::NotCreated(error) => {
                // A `pending:` left behind by a failed delete only makes a later attempt ask
                // (step 2); the CRM's answer is what the operator needs to see now.
                let _ = kv.delete(&pending);
                Err(CreateError::Failed(error))
            }
            Sent::Unknown(what) => Err(CreateError::Failed(DeliveryError::retryable(format!(
                "{}: outcome unknown: {what}",
                self.crm
            )))),
        }
    }

    /// Step 4: `rec:` written, `pending:` deleted; a failure is retryable (and leaves
    /// `pending:`, so the next attempt asks).
    fn remember(&self, kv: &impl KvStore, id: &str) -> Result<(), CreateError> {
        let rec = format!("rec:{}", self.key);
        let pending = format!("pending:{}", self.key);
        kv.set_expiring(&rec, id.as_bytes(), RECORD_TTL_SECONDS)
            .map_err(|e| self.store_failed("write", &rec, e))?;
        kv.delete(&pending)
            .map_err(|e| self.store_failed("delete", &pending, e))
    }

    /// Every store failure is retryable here: the next attempt resumes at the right step.
    fn store_failed(&self, what: &str, key: &str, error: KvError) -> CreateError {
        let why = DeliveryError::from(error);
        CreateError::Failed(DeliveryError::retryable(format!(
            "{}: could not {what} `{key}`: {}",
            self.crm,
            why.message()
        )))
    }
}

/// The record id stored for `key` (`rec:{key}`), e.g. to attach a recording to it
/// (spec 3.4); `None` when the plugin made no record for it.
pub fn stored_record(kv: &impl KvStore, key: &str) -> Result<Option<String>, KvError> {
    Ok(kv
        .get(&format!("rec:{key}"))?
        .map(|id| String::from_utf8_lossy(&id).into_owned()))
}

#[cfg(test)]
mod tests;
