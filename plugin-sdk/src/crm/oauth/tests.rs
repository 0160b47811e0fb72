//! Token state, refresh-once-on-401, and two deliveries refreshing at once.

use super::*;
use crate::crm::MemoryKv;
use crate::{PermanentError, RetryableError};
use std::cell::{Cell, RefCell};
use std::time::Duration;

/// 2026-11-28 09:15:00Z in milliseconds.
const NOW_MS: u64 = 1_795_857_300_000;
const CONFIGURED: &str = "R0";

fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(NOW_MS)
}

/// A token endpoint. With `rotate`, each refresh issues a new refresh token and invalidates the
/// one used (Bitrix24); without, the configured one stays valid (Zoho).
struct AuthServer {
    rotate: bool,
    valid_refresh: RefCell<String>,
    issued: Cell<u32>,
}

impl AuthServer {
    fn new(rotate: bool) -> Self {
        AuthServer {
            rotate,
            valid_refresh: RefCell::new(CONFIGURED.to_string()),
            issued: Cell::new(0),
        }
    }

    fn refresh(&self, refresh_token: &str) -> Result<Grant, RefreshError> {
        if *self.valid_refresh.borrow() != refresh_token {
            return Err(RefreshError::Rejected);
        }
        let n = self.issued.get() + 1;
        self.issued.set(n);
        let rotated = self.rotate.then(|| format!("R{n}"));
        if let Some(next) = &rotated {
            *self.valid_refresh.borrow_mut() = next.clone();
        }
        Ok(Grant {
            access_token: format!("T{n}"),
            expires_in_seconds: 3600,
            refresh_token: rotated,
        })
    }
}

fn state(access: &str, expires_at: u64, refresh: Option<&str>, configured: &str) -> TokenState {
    TokenState {
        access_token: access.to_string(),
        expires_at,
        refresh_token: refresh.map(str::to_string),
        seed: seed(configured),
    }
}

fn store(kv: &MemoryKv, state: &TokenState) {
    kv.set(KEY, &serde_json::to_vec(state).unwrap()).unwrap();
}

fn stored(kv: &MemoryKv) -> TokenState {
    serde_json::from_slice(&kv.get(KEY).unwrap().unwrap()).unwrap()
}

fn tokens(kv: &MemoryKv) -> Tokens<'_, MemoryKv> {
    Tokens::new("Bitrix24", kv, CONFIGURED, now())
}

fn retryable_message(error: DeliveryError) -> String {
    match error {
        DeliveryError::Retryable(RetryableError { message, .. }) => message,
        other => panic!("{other:?}"),
    }
}

#[test]
fn no_state_refreshes_with_the_configured_token_and_stores_it_for_good() {
    let kv = MemoryKv::new();
    let server = AuthServer::new(true);
    let token = tokens(&kv).access_token(|r| server.refresh(r)).unwrap();
    assert_eq!(token, "T1");
    assert_eq!(
        stored(&kv),
        state("T1", NOW_MS + 3_600_000, Some("R1"), CONFIGURED)
    );
    assert_eq!(kv.ttl_seconds(KEY), None);
    assert_eq!(
        String::from_utf8(kv.get(KEY).unwrap().unwrap()).unwrap(),
        format!(
            "{{\"access_token\":\"T1\",\"expires_at\":1795860900000,\"refresh_token\":\"R1\",\
             \"seed\":\"{}\"}}",
            seed(CONFIGURED)
        )
    );
}

#[test]
fn the_seed_is_the_sha256_of_the_configured_refresh_token() {
    assert_eq!(
        seed("test"),
        "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
    );
}

#[test]
fn a_fresh_token_is_used_as_stored() {
    let kv = MemoryKv::new();
    let server = AuthServer::new(true);
    // Exactly five minutes left is still fresh.
    store(
        &kv,
        &state("T0", NOW_MS + REFRESH_MARGIN_MS, Some("R0"), CONFIGURED),
    );
    assert_eq!(
        tokens(&kv).access_token(|r| server.refresh(r)).unwrap(),
        "T0"
    );
    assert_eq!(server.issued.get(), 0);
}

#[test]
fn a_token_about_to_expire_is_refreshed_with_the_stored_refresh_token() {
    let kv = MemoryKv::new();
    let server = AuthServer::new(true);
    *server.valid_refresh.borrow_mut() = "R7".to_string();
    store(
        &kv,
        &state("T0", NOW_MS + REFRESH_MARGIN_MS - 1, Some("R7"), CONFIGURED),
    );
    assert_eq!(
        tokens(&kv).access_token(|r| server.refresh(r)).unwrap(),
        "T1"
    );
    assert_eq!(
        stored(&kv),
        state("T1", NOW_MS + 3_600_000, Some("R1"), CONFIGURED)
    );
}

#[test]
fn a_non_rotating_crm_keeps_using_the_configured_refresh_token() {
    let kv = MemoryKv::new();
    let server = AuthServer::new(false);
    store(&kv, &state("T0", NOW_MS, None, CONFIGURED));
    assert_eq!(
        tokens(&kv).access_token(|r| server.refresh(r)).unwrap(),
        "T1"
    );
    assert_eq!(
        stored(&kv),
        state("T1", NOW_MS + 3_600_000, None, CONFIGURED)
    );
    assert!(
        !String::from_utf8(kv.get(KEY).unwrap().unwrap())
            .unwrap()
            .contains("refresh_token")
    );
}

#[test]
fn a_newly_configured_refresh_token_discards_the_state() {
    let kv = MemoryKv::new();
    let server = AuthServer::new(true);
    store(
        &kv,
        &state("OLD", NOW_MS + 3_600_000, Some("R-old"), "old configured"),
    );
    assert_eq!(
        tokens(&kv).access_token(|r| server.refresh(r)).unwrap(),
        "T1"
    );
    assert_eq!(
        stored(&kv),
        state("T1", NOW_MS + 3_600_000, Some("R1"), CONFIGURED)
    );
}

#[test]
fn an_unreadable_state_is_replaced() {
    let kv = MemoryKv::new();
    let server = AuthServer::new(false);
    kv.set(KEY, b"not json").unwrap();
    assert_eq!(
        tokens(&kv).access_token(|r| server.refresh(r)).unwrap(),
        "T1"
    );
    assert_eq!(stored(&kv).access_token, "T1");
}

#[test]
fn other_refresh_failures_are_returned_as_they_are() {
    let kv = MemoryKv::new();
    let error = tokens(&kv)
        .access_token(|_| {
            Err(RefreshError::Failed(DeliveryError::permanent(
                "Zoho refresh token rejected: invalid_code",
            )))
        })
        .unwrap_err();
    assert!(matches!(
        error,
        DeliveryError::Permanent(PermanentError { ref message, .. })
            if message == "Zoho refresh token rejected: invalid_code"
    ));
    assert_eq!(kv.get(KEY).unwrap(), None);
}

#[test]
fn a_rejected_refresh_token_with_nothing_newer_is_retryable() {
    let kv = MemoryKv::new();
    let server = AuthServer::new(true);
    *server.valid_refresh.borrow_mut() = "somebody else's".to_string();
    let error = tokens(&kv).access_token(|r| server.refresh(r)).unwrap_err();
    assert_eq!(
        retryable_message(error),
        "Bitrix24 refresh token rejected; retrying"
    );
    assert_eq!(kv.get(KEY).unwrap(), None);
}

/// Two deliveries both find the token expired. B refreshes and stores while A waits for its
/// own refresh; A's refresh token was spent by B, so A is refused, rereads, and uses B's token.
#[test]
fn concurrent_refresh_with_rotation_the_loser_uses_the_winners_token() {
    let kv = MemoryKv::new();
    let server = AuthServer::new(true);
    store(&kv, &state("T0", NOW_MS - 1, None, CONFIGURED));
    let a = tokens(&kv);
    let token = a
        .access_token(|r| {
            let b = tokens(&kv).access_token(|r| server.refresh(r)).unwrap();
            assert_eq!(b, "T1");
            server.refresh(r)
        })
        .unwrap();
    assert_eq!(token, "T1");
    assert_eq!(server.issued.get(), 1);
    assert_eq!(
        stored(&kv),
        state("T1", NOW_MS + 3_600_000, Some("R1"), CONFIGURED)
    );
}

/// Without rotation both refreshes succeed; B stores first, A's `set-if` fails, and A uses
/// B's token so that one state wins.
#[test]
fn concurrent_refresh_without_rotation_one_state_wins() {
    let kv = MemoryKv::new();
    let server = AuthServer::new(false);
    let a = tokens(&kv);
    let token = a
        .access_token(|r| {
            let b = tokens(&kv).access_token(|r| server.refresh(r)).unwrap();
            assert_eq!(b, "T1");
            server.refresh(r)
        })
        .unwrap();
    assert_eq!(token, "T1");
    assert_eq!(server.issued.get(), 2);
    assert_eq!(
        stored(&kv),
        state("T1", NOW_MS + 3_600_000, None, CONFIGURED)
    );
}

/// A was refused, and the state B stored meanwhile holds a newer refresh token but an access
/// token that is already about to expire: A refreshes once more with the newer one.
#[test]
fn a_rejected_refresh_token_retries_once_with_a_newer_one() {
    let kv = MemoryKv::new();
    let server = AuthServer::new(true);
    let a = tokens(&kv);
    let token = a
        .access_token(|r| {
            // B rotated R0 → R5 and stored a state whose token is nearly spent.
            *server.valid_refresh.borrow_mut() = "R5".to_string();
            store(&kv, &state("T-old", NOW_MS + 1000, Some("R5"), CONFIGURED));
            server.refresh(r)
        })
        .unwrap();
    assert_eq!(token, "T1");
    assert_eq!(
        stored(&kv),
        state("T1", NOW_MS + 3_600_000, Some("R1"), CONFIGURED)
    );
}

fn unauthorized_then(
    ok_from: u32,
    calls: &Cell<u32>,
) -> impl FnMut(&str) -> Result<String, SendError> + '_ {
    move |token| {
        calls.set(calls.get() + 1);
        if calls.get() < ok_from {
            Err(SendError::Unauthorized)
        } else {
            Ok(format!("done with {token}"))
        }
    }
}

#[test]
fn a_401_refreshes_once_and_repeats_once() {
    let kv = MemoryKv::new();
    let server = AuthServer::new(true);
    store(
        &kv,
        &state("T0", NOW_MS + 3_600_000, Some("R0"), CONFIGURED),
    );
    let calls = Cell::new(0);
    let answer = tokens(&kv)
        .send(|r| server.refresh(r), unauthorized_then(2, &calls))
        .unwrap();
    assert_eq!(answer, "done with T1");
    assert_eq!((calls.get(), server.issued.get()), (2, 1));
    assert_eq!(stored(&kv).access_token, "T1");
}

#[test]
fn a_second_401_is_permanent() {
    let kv = MemoryKv::new();
    let server = AuthServer::new(true);
    let calls = Cell::new(0);
    let error = tokens(&kv)
        .send(|r| server.refresh(r), unauthorized_then(99, &calls))
        .unwrap_err();
    assert!(matches!(
        error,
        DeliveryError::Permanent(PermanentError { ref message, target_gone: false })
            if message == "access token rejected"
    ));
    assert_eq!((calls.get(), server.issued.get()), (2, 2));
}

#[test]
fn a_401_uses_a_token_another_delivery_stored_meanwhile() {
    let kv = MemoryKv::new();
    let server = AuthServer::new(true);
    store(
        &kv,
        &state("T0", NOW_MS + 3_600_000, Some("R0"), CONFIGURED),
    );
    let calls = Cell::new(0);
    let answer = tokens(&kv)
        .send(
            |r| server.refresh(r),
            |token| {
                calls.set(calls.get() + 1);
                if token == "T0" {
                    // Meanwhile another delivery refreshed.
                    store(
                        &kv,
                        &state("T9", NOW_MS + 3_600_000, Some("R9"), CONFIGURED),
                    );
                    return Err(SendError::Unauthorized);
                }
                Ok(format!("done with {token}"))
            },
        )
        .unwrap();
    assert_eq!(answer, "done with T9");
    assert_eq!((calls.get(), server.issued.get()), (2, 0));
}

#[test]
fn other_send_failures_are_returned_without_a_refresh() {
    let kv = MemoryKv::new();
    let server = AuthServer::new(true);
    let error = tokens(&kv)
        .send(
            |r| server.refresh(r),
            |_| {
                Err::<(), _>(SendError::Failed(DeliveryError::retryable(
                    "Zoho answered HTTP 503",
                )))
            },
        )
        .unwrap_err();
    assert_eq!(retryable_message(error), "Zoho answered HTTP 503");
    assert_eq!(server.issued.get(), 1);
}

#[test]
fn authorized_tells_a_401_from_other_answers() {
    let response = |status: u16| Response {
        status,
        headers: Vec::new(),
        body: b"{\"code\":\"INVALID_TOKEN\",\"message\":\"invalid oauth token\"}".to_vec(),
    };
    assert!(authorized(&Rules::ZOHO, &response(200), now()).is_ok());
    assert!(matches!(
        authorized(&Rules::ZOHO, &response(401), now()),
        Err(SendError::Unauthorized)
    ));
    assert!(matches!(
        authorized(&Rules::ZOHO, &response(400), now()),
        Err(SendError::Failed(DeliveryError::Permanent(_)))
    ));
    assert!(matches!(
        SendError::from(HttpError::Transport("x".into())),
        SendError::Failed(DeliveryError::Retryable(_))
    ));
    assert!(matches!(
        RefreshError::from(HttpError::Refused("x".into())),
        RefreshError::Failed(DeliveryError::Permanent(_))
    ));
}

#[test]
fn grants_from_token_answers() {
    let grant = |body: &str| Grant::from_json(body.as_bytes());
    assert_eq!(
        grant(r#"{"access_token":"T1","expires_in":3600,"api_domain":"x","token_type":"Bearer"}"#),
        Some(Grant {
            access_token: "T1".to_string(),
            expires_in_seconds: 3600,
            refresh_token: None
        })
    );
    assert_eq!(
        grant(r#"{"access_token":"T1","expires_in":"3600","refresh_token":"R1"}"#),
        Some(Grant {
            access_token: "T1".to_string(),
            expires_in_seconds: 3600,
            refresh_token: Some("R1".to_string())
        })
    );
    assert_eq!(
        grant(r#"{"access_token":"T1","expires_in":3600,"refresh_token":""}"#)
            .unwrap()
            .refresh_token,
        None
    );
    for body in [
        r#"{"error":"invalid_code"}"#,
        r#"{"access_token":"T1"}"#,
        r#"{"access_token":"T1","expires_in":-5}"#,
        r#"{"access_token":7,"expires_in":3600}"#,
        "not json",
    ] {
        assert_eq!(grant(body), None, "{body}");
    }
}
