//! The six steps of spec 3.5, each with what is sent and what is left in the store.

use super::*;
use crate::crm::MemoryKv;
use crate::wit::wasi::http::types::{DnsErrorPayload, ErrorCode};
use crate::{PermanentError, RetryableError, UnknownOutcomeError};
use std::cell::{Cell, RefCell};

const KEY: &str = "261128101500_782-1.120";
const REC: &str = "rec:261128101500_782-1.120";
const PENDING: &str = "pending:261128101500_782-1.120";

/// A store whose writes and deletes of some keys fail.
#[derive(Default)]
struct FailingKv {
    inner: MemoryKv,
    failing: RefCell<Vec<String>>,
}

impl FailingKv {
    fn fail(&self, key: &str) {
        self.failing.borrow_mut().push(key.to_string());
    }

    fn check(&self, key: &str) -> Result<(), KvError> {
        if self.failing.borrow().iter().any(|k| k == key) {
            return Err(KvError::Unavailable("disk full".to_string()));
        }
        Ok(())
    }
}

impl KvStore for FailingKv {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        self.inner.get(key)
    }
    fn set(&self, key: &str, value: &[u8]) -> Result<(), KvError> {
        self.check(key)?;
        self.inner.set(key, value)
    }
    fn set_expiring(&self, key: &str, value: &[u8], ttl: u64) -> Result<(), KvError> {
        self.check(key)?;
        self.inner.set_expiring(key, value, ttl)
    }
    fn set_if(&self, key: &str, expected: Option<&[u8]>, value: &[u8]) -> Result<bool, KvError> {
        self.check(key)?;
        self.inner.set_if(key, expected, value)
    }
    fn delete(&self, key: &str) -> Result<(), KvError> {
        self.check(key)?;
        self.inner.delete(key)
    }
}

/// Counts the creates sent, checking that `pending:` is written before each.
struct Crm<'k> {
    kv: &'k dyn KvStore,
    creates: Cell<u32>,
    searches: Cell<u32>,
}

impl<'k> Crm<'k> {
    fn new(kv: &'k dyn KvStore) -> Self {
        Crm {
            kv,
            creates: Cell::new(0),
            searches: Cell::new(0),
        }
    }

    fn create(&self, sent: Sent) -> impl FnOnce() -> Sent + '_ {
        move || {
            assert_eq!(self.kv.get(PENDING).unwrap(), Some(b"1".to_vec()));
            self.creates.set(self.creates.get() + 1);
            sent
        }
    }

    fn search(
        &self,
        found: Result<Option<&'static str>, DeliveryError>,
    ) -> impl FnOnce() -> Result<Option<String>, DeliveryError> + '_ {
        move || {
            self.searches.set(self.searches.get() + 1);
            found.map(|id| id.map(str::to_string))
        }
    }
}

fn created(id: &str) -> Sent {
    Sent::Created(id.to_string())
}

fn failed_message(result: Result<Record, CreateError>) -> (bool, String) {
    match result {
        Err(CreateError::Failed(DeliveryError::Retryable(RetryableError { message, .. }))) => {
            (true, message)
        }
        Err(CreateError::Failed(DeliveryError::Permanent(PermanentError { message, .. }))) => {
            (false, message)
        }
        other => panic!("{other:?}"),
    }
}

const UNKNOWN: &str = "Pipedrive: outcome of creating the record for 261128101500_782-1.120 \
                       unknown; check Pipedrive and replay this delivery if the record is missing";

#[test]
fn step_3_and_4_create_and_remember() {
    let kv = MemoryKv::new();
    let crm = Crm::new(&kv);
    let record = CreateOnce::new("HubSpot", KEY, false)
        .run(&kv, crm.create(created("17")))
        .unwrap();
    assert_eq!(
        record,
        Record {
            id: "17".to_string(),
            origin: Origin::Created
        }
    );
    assert_eq!(crm.creates.get(), 1);
    assert_eq!(kv.keys(), [REC]);
    assert_eq!(kv.get(REC).unwrap(), Some(b"17".to_vec()));
    assert_eq!(kv.ttl_seconds(REC), Some(2_592_000));
    assert_eq!(stored_record(&kv, KEY).unwrap().as_deref(), Some("17"));
    assert_eq!(stored_record(&kv, "other.120").unwrap(), None);
}

#[test]
fn step_1_a_stored_record_sends_nothing() {
    let kv = MemoryKv::new();
    kv.set_expiring(REC, b"17", RECORD_TTL_SECONDS).unwrap();
    kv.set_expiring(PENDING, b"1", RECORD_TTL_SECONDS).unwrap();
    let crm = Crm::new(&kv);
    let record = CreateOnce::new("HubSpot", KEY, false)
        .search(crm.search(Ok(None)))
        .run(&kv, crm.create(created("18")))
        .unwrap();
    assert_eq!((record.id.as_str(), record.origin), ("17", Origin::Stored));
    assert_eq!((crm.creates.get(), crm.searches.get()), (0, 0));
}

#[test]
fn step_2_a_found_record_is_remembered() {
    let kv = MemoryKv::new();
    kv.set_expiring(PENDING, b"1", RECORD_TTL_SECONDS).unwrap();
    let crm = Crm::new(&kv);
    let record = CreateOnce::new("HubSpot", KEY, false)
        .search(crm.search(Ok(Some("17"))))
        .run(&kv, crm.create(created("18")))
        .unwrap();
    assert_eq!((record.id.as_str(), record.origin), ("17", Origin::Found));
    assert_eq!((crm.creates.get(), crm.searches.get()), (0, 1));
    assert_eq!(kv.keys(), [REC]);
    assert_eq!(kv.ttl_seconds(REC), Some(RECORD_TTL_SECONDS));
}

#[test]
fn step_2_nothing_found_creates_again() {
    let kv = MemoryKv::new();
    kv.set_expiring(PENDING, b"1", RECORD_TTL_SECONDS).unwrap();
    let crm = Crm::new(&kv);
    let record = CreateOnce::new("Zoho", KEY, false)
        .search(crm.search(Ok(None)))
        .run(&kv, crm.create(created("18")))
        .unwrap();
    assert_eq!((record.id.as_str(), record.origin), ("18", Origin::Created));
    assert_eq!((crm.creates.get(), crm.searches.get()), (1, 1));
    assert_eq!(kv.keys(), [REC]);
}

#[test]
fn step_2_a_failed_search_keeps_pending() {
    let kv = MemoryKv::new();
    kv.set_expiring(PENDING, b"1", RECORD_TTL_SECONDS).unwrap();
    let crm = Crm::new(&kv);
    let result = CreateOnce::new("Zoho", KEY, false)
        .search(crm.search(Err(DeliveryError::retryable("Zoho answered HTTP 503"))))
        .run(&kv, crm.create(created("18")));
    assert_eq!(
        failed_message(result),
        (true, "Zoho answered HTTP 503".to_string())
    );
    assert_eq!(crm.creates.get(), 0);
    assert_eq!(kv.keys(), [PENDING]);
}

#[test]
fn step_2_without_search_is_an_unknown_outcome() {
    let kv = MemoryKv::new();
    kv.set_expiring(PENDING, b"1", RECORD_TTL_SECONDS).unwrap();
    let crm = Crm::new(&kv);
    let result = CreateOnce::new("Pipedrive", KEY, false).run(&kv, crm.create(created("18")));
    match result {
        Err(CreateError::UnknownOutcome { message }) => assert_eq!(message, UNKNOWN),
        other => panic!("{other:?}"),
    }
    assert_eq!(crm.creates.get(), 0);
    assert_eq!(kv.keys(), [PENDING]);
}

#[test]
fn step_2_without_search_a_replay_creates_again() {
    let kv = MemoryKv::new();
    kv.set_expiring(PENDING, b"1", RECORD_TTL_SECONDS).unwrap();
    let crm = Crm::new(&kv);
    let record = CreateOnce::new("Pipedrive", KEY, true)
        .run(&kv, crm.create(created("18")))
        .unwrap();
    assert_eq!((record.id.as_str(), record.origin), ("18", Origin::Created));
    assert_eq!(kv.keys(), [REC]);
}

#[test]
fn step_5_an_answer_other_than_success_clears_pending() {
    for error in [
        DeliveryError::permanent("Pipedrive answered HTTP 400: bad"),
        DeliveryError::retryable("Pipedrive answered HTTP 502"),
    ] {
        let kv = MemoryKv::new();
        let crm = Crm::new(&kv);
        let expected = (
            matches!(error, DeliveryError::Retryable(_)),
            error.message().to_string(),
        );
        let result =
            CreateOnce::new("Pipedrive", KEY, false).run(&kv, crm.create(Sent::NotCreated(error)));
        assert_eq!(failed_message(result), expected);
        assert_eq!(crm.creates.get(), 1);
        assert!(kv.keys().is_empty());
    }
}

#[test]
fn step_6_no_answer_keeps_pending_and_retries() {
    let kv = MemoryKv::new();
    let crm = Crm::new(&kv);
    let sent = Sent::Unknown("request failed: ErrorCode::ConnectionReadTimeout".to_string());
    let result = CreateOnce::new("Pipedrive", KEY, false).run(&kv, crm.create(sent));
    assert_eq!(
        failed_message(result),
        (
            true,
            "Pipedrive: outcome unknown: request failed: ErrorCode::ConnectionReadTimeout"
                .to_string()
        )
    );
    assert_eq!(kv.keys(), [PENDING]);
    assert_eq!(kv.ttl_seconds(PENDING), Some(RECORD_TTL_SECONDS));

    // The retry cannot tell; the operator's replay creates.
    let result = CreateOnce::new("Pipedrive", KEY, false).run(&kv, crm.create(created("18")));
    assert!(
        matches!(result, Err(CreateError::UnknownOutcome { ref message }) if message == UNKNOWN)
    );
    let record = CreateOnce::new("Pipedrive", KEY, true)
        .run(&kv, crm.create(created("18")))
        .unwrap();
    assert_eq!(record.origin, Origin::Created);
    assert_eq!(crm.creates.get(), 2);
}

#[test]
fn store_failures_are_retryable_and_resume_at_the_right_step() {
    // `pending:` cannot be written: nothing is sent.
    let kv = FailingKv::default();
    kv.fail(PENDING);
    let crm = Crm::new(&kv);
    let result = CreateOnce::new("HubSpot", KEY, false).run(&kv, crm.create(created("17")));
    assert_eq!(
        failed_message(result),
        (
            true,
            "HubSpot: could not write `pending:261128101500_782-1.120`: plugin store \
             unavailable: disk full"
                .to_string()
        )
    );
    assert_eq!(crm.creates.get(), 0);

    // `rec:` cannot be written after the create: retryable, and `pending:` stays.
    let kv = FailingKv::default();
    kv.fail(REC);
    let crm = Crm::new(&kv);
    let result = CreateOnce::new("HubSpot", KEY, false).run(&kv, crm.create(created("17")));
    assert_eq!(
        failed_message(result),
        (
            true,
            "HubSpot: could not write `rec:261128101500_782-1.120`: plugin store unavailable: \
             disk full"
                .to_string()
        )
    );
    assert_eq!(kv.inner.keys(), [PENDING]);
}

#[test]
fn an_unknown_outcome_is_the_contracts_unknown_outcome() {
    let error = DeliveryError::from(CreateError::UnknownOutcome {
        message: UNKNOWN.to_string(),
    });
    assert!(matches!(
        error,
        DeliveryError::UnknownOutcome(UnknownOutcomeError { ref message }) if message == UNKNOWN
    ));
    let error = DeliveryError::from(CreateError::Failed(DeliveryError::retryable("x")));
    assert!(matches!(error, DeliveryError::Retryable(_)));
}

/// `HttpError::Transport` as `http::Request::send` makes it from a `wasi:http` error code.
fn transport(code: ErrorCode) -> HttpError {
    HttpError::Transport(format!("{code:?}"))
}

#[test]
fn failures_before_a_connection_did_not_arrive() {
    let dns = ErrorCode::DnsError(DnsErrorPayload {
        rcode: Some("address not available".to_string()),
        info_code: None,
    });
    for error in [
        transport(dns),
        transport(ErrorCode::DnsTimeout),
        transport(ErrorCode::ConnectionRefused),
        transport(ErrorCode::ConnectionTimeout),
        transport(ErrorCode::TlsCertificateError),
        transport(ErrorCode::DestinationUnavailable),
        HttpError::Refused("HttpRequestDenied".to_string()),
        HttpError::InvalidUrl("crm".to_string()),
    ] {
        assert!(!may_have_arrived(&error), "{error}");
    }
    for error in [
        transport(ErrorCode::ConnectionReadTimeout),
        transport(ErrorCode::ConnectionTerminated),
        transport(ErrorCode::HttpResponseTimeout),
        transport(ErrorCode::HttpResponseIncomplete),
        transport(ErrorCode::HttpProtocolError),
        transport(ErrorCode::InternalError(Some("x".to_string()))),
        HttpError::Transport("reading the response body: connection reset".to_string()),
        HttpError::Transport("something new".to_string()),
    ] {
        assert!(may_have_arrived(&error), "{error}");
    }
}

#[test]
fn sent_from_http() {
    let now = std::time::UNIX_EPOCH;
    let answer = |status: u16, body: &str| {
        Ok(Response {
            status,
            headers: Vec::new(),
            body: body.as_bytes().to_vec(),
        })
    };
    let sent = |result: Result<Response, HttpError>| {
        Sent::from_http(
            result,
            &crate::crm::errors::Rules::PIPEDRIVE,
            now,
            |response| {
                let body: serde_json::Value = serde_json::from_slice(&response.body).ok()?;
                Some(body["data"]["id"].as_str()?.to_string())
            },
        )
    };
    assert!(matches!(
        sent(answer(201, r#"{"success":true,"data":{"id":"17"}}"#)),
        Sent::Created(id) if id == "17"
    ));
    assert!(matches!(
        sent(answer(200, r#"{"success":true,"data":{"id":17}}"#)),
        Sent::Unknown(what) if what == "Pipedrive answered HTTP 200 without the new record's id"
    ));
    assert!(matches!(
        sent(answer(200, r#"{"success":false,"error":"no"}"#)),
        Sent::NotCreated(DeliveryError::Permanent(PermanentError { message, .. }))
            if message == "Pipedrive answered HTTP 200 without success: no"
    ));
    assert!(matches!(
        sent(answer(400, r#"{"success":false,"error":"bad"}"#)),
        Sent::NotCreated(DeliveryError::Permanent(PermanentError { message, .. }))
            if message == "Pipedrive answered HTTP 400: bad"
    ));
    assert!(matches!(
        sent(answer(503, "")),
        Sent::NotCreated(DeliveryError::Retryable(RetryableError { message, .. }))
            if message == "Pipedrive answered HTTP 503"
    ));
    assert!(matches!(
        sent(answer(401, "")),
        Sent::NotCreated(DeliveryError::Permanent(PermanentError { message, .. }))
            if message == "Pipedrive rejected the token"
    ));
    assert!(matches!(
        sent(Err(transport(ErrorCode::ConnectionRefused))),
        Sent::NotCreated(DeliveryError::Retryable(_))
    ));
    assert!(matches!(
        sent(Err(HttpError::Refused("policy".to_string()))),
        Sent::NotCreated(DeliveryError::Permanent(_))
    ));
    assert!(matches!(
        sent(Err(transport(ErrorCode::ConnectionReadTimeout))),
        Sent::Unknown(what) if what == "request failed: ErrorCode::ConnectionReadTimeout"
    ));
}

#[test]
fn sent_from_http_searchable_keeps_pending_on_a_server_error() {
    let now = std::time::UNIX_EPOCH;
    let answer = |status: u16, body: &str| {
        Ok(Response {
            status,
            headers: Vec::new(),
            body: body.as_bytes().to_vec(),
        })
    };
    let rules = crate::crm::errors::Rules::ZOHO;
    let id = |response: &Response| {
        let body: serde_json::Value = serde_json::from_slice(&response.body).ok()?;
        Some(body["data"][0]["details"]["id"].as_str()?.to_string())
    };
    for status in [500, 502, 503, 504] {
        assert!(matches!(
            Sent::from_http_searchable(answer(status, ""), &rules, now, id),
            Sent::Unknown(what) if what == format!("Zoho answered HTTP {status}")
        ));
    }
    // Everything else as `from_http`.
    assert!(matches!(
        Sent::from_http_searchable(
            answer(201, r#"{"data":[{"status":"success","details":{"id":"9"}}]}"#),
            &rules,
            now,
            id
        ),
        Sent::Created(id) if id == "9"
    ));
    assert!(matches!(
        Sent::from_http_searchable(answer(429, ""), &rules, now, id),
        Sent::NotCreated(DeliveryError::Retryable(_))
    ));
    assert!(matches!(
        Sent::from_http_searchable(
            Err(transport(ErrorCode::ConnectionRefused)),
            &rules,
            now,
            id
        ),
        Sent::NotCreated(DeliveryError::Retryable(_))
    ));

    // Through the six steps: the retry searches and finds the record the failed create stored.
    let kv = MemoryKv::new();
    let failed = CreateOnce::new("Zoho", KEY, false).run(&kv, || {
        Sent::from_http_searchable(answer(500, ""), &rules, now, id)
    });
    assert!(failed.is_err());
    assert_eq!(kv.get(PENDING).unwrap(), Some(b"1".to_vec()));
    let found = CreateOnce::new("Zoho", KEY, false)
        .search(|| Ok(Some("9".to_string())))
        .run(&kv, || unreachable!("found by the search"))
        .unwrap();
    assert_eq!((found.id.as_str(), found.origin), ("9", Origin::Found));
    assert_eq!(kv.get(PENDING).unwrap(), None);
}
