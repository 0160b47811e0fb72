//! The table of spec section 3.6, one answer per line.

use super::*;
use std::time::{Duration, UNIX_EPOCH};

/// 2026-11-28 09:15:00Z.
fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_795_857_300)
}

fn response(status: u16, headers: &[(&str, &str)], body: &str) -> Response {
    Response {
        status,
        headers: headers
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect(),
        body: body.as_bytes().to_vec(),
    }
}

fn verdict(rules: Rules, status: u16, headers: &[(&str, &str)], body: &str) -> Verdict {
    rules.verdict(&response(status, headers, body), now())
}

fn retry(message: &str, after_ms: Option<u64>) -> Verdict {
    Verdict::Retry {
        message: message.to_string(),
        after_ms,
    }
}

fn permanent(message: &str) -> Verdict {
    Verdict::Permanent {
        message: message.to_string(),
        target_gone: false,
    }
}

#[test]
fn the_common_table() {
    let acme = Rules::new("Acme");
    type Case = (
        u16,
        &'static [(&'static str, &'static str)],
        &'static str,
        Verdict,
    );
    let cases: Vec<Case> = vec![
        (200, &[], "", Verdict::Success),
        (201, &[], "{\"id\":\"1\"}", Verdict::Success),
        (204, &[], "", Verdict::Success),
        (429, &[], "", retry("Acme answered HTTP 429", Some(10_000))),
        (
            429,
            &[("Retry-After", "7")],
            "",
            retry("Acme answered HTTP 429", Some(7_000)),
        ),
        (
            429,
            &[("retry-after", "Sat, 28 Nov 2026 09:16:00 GMT")],
            "slow down",
            retry("Acme answered HTTP 429: slow down", Some(60_000)),
        ),
        (
            429,
            &[("retry-after", "soon")],
            "",
            retry("Acme answered HTTP 429", Some(10_000)),
        ),
        (
            500,
            &[],
            "oops",
            retry("Acme answered HTTP 500: oops", None),
        ),
        (
            503,
            &[("retry-after", "3")],
            "",
            retry("Acme answered HTTP 503", Some(3_000)),
        ),
        (502, &[], "", retry("Acme answered HTTP 502", None)),
        (408, &[], "", retry("Acme answered HTTP 408", None)),
        (
            425,
            &[("retry-after", "1")],
            "",
            retry("Acme answered HTTP 425", Some(1_000)),
        ),
        (
            401,
            &[],
            "no",
            Verdict::Unauthorized {
                message: "Acme rejected the token: no".to_string(),
            },
        ),
        (400, &[], "bad", permanent("Acme answered HTTP 400: bad")),
        (403, &[], "", permanent("Acme answered HTTP 403")),
        (404, &[], "", permanent("Acme answered HTTP 404")),
        (409, &[], "", permanent("Acme answered HTTP 409")),
        (422, &[], "", permanent("Acme answered HTTP 422")),
        (418, &[], "", permanent("Acme answered HTTP 418")),
        (
            410,
            &[],
            "gone",
            Verdict::Permanent {
                message: "Acme answered HTTP 410: gone".to_string(),
                target_gone: true,
            },
        ),
        (
            301,
            &[("location", "https://elsewhere.example/")],
            "",
            permanent(
                "Acme answered HTTP 301, a redirect to https://elsewhere.example/; \
                 redirects are not followed",
            ),
        ),
        (
            307,
            &[],
            "",
            permanent("Acme answered HTTP 307, a redirect; redirects are not followed"),
        ),
    ];
    for (status, headers, body, expected) in cases {
        assert_eq!(
            verdict(acme, status, headers, body),
            expected,
            "{status} {headers:?}"
        );
    }
}

#[test]
fn long_bodies_are_cut_in_messages() {
    let body = "x".repeat(500);
    let Verdict::Permanent { message, .. } = verdict(Rules::new("Acme"), 400, &[], &body) else {
        panic!()
    };
    assert_eq!(
        message,
        format!("Acme answered HTTP 400: {}", "x".repeat(200))
    );
}

#[test]
fn hubspot() {
    let h = Rules::HUBSPOT;
    let limit = |policy: &str| format!("{{\"message\":\"limit\",\"policyName\":\"{policy}\"}}");
    assert_eq!(verdict(h, 201, &[], "{\"id\":\"17\"}"), Verdict::Success);
    assert_eq!(
        verdict(h, 429, &[], &limit("DAILY")),
        retry("HubSpot answered HTTP 429: limit", Some(3_600_000))
    );
    assert_eq!(
        verdict(h, 429, &[], &limit("SECONDLY")),
        retry("HubSpot answered HTTP 429: limit", Some(1_000))
    );
    assert_eq!(
        verdict(h, 429, &[], &limit("TEN_SECONDLY_ROLLING")),
        retry("HubSpot answered HTTP 429: limit", Some(10_000))
    );
    assert_eq!(
        verdict(h, 429, &[("retry-after", "5")], &limit("DAILY")),
        retry("HubSpot answered HTTP 429: limit", Some(5_000))
    );
    assert_eq!(
        verdict(h, 423, &[], ""),
        retry("HubSpot answered HTTP 423", Some(2_000))
    );
    assert_eq!(
        verdict(h, 477, &[("retry-after", "9")], ""),
        retry("HubSpot answered HTTP 477", Some(9_000))
    );
    assert_eq!(
        verdict(h, 477, &[], ""),
        retry("HubSpot answered HTTP 477", None)
    );
    assert_eq!(
        verdict(
            h,
            400,
            &[],
            "{\"status\":\"error\",\"message\":\"Property values were not valid: x\",\
             \"category\":\"VALIDATION_ERROR\"}"
        ),
        permanent("HubSpot answered HTTP 400: Property values were not valid: x")
    );
    assert_eq!(
        verdict(
            h,
            401,
            &[],
            "{\"message\":\"Authentication credentials not found.\"}"
        ),
        Verdict::Unauthorized {
            message: "HubSpot rejected the token: Authentication credentials not found."
                .to_string()
        }
    );
}

#[test]
fn pipedrive() {
    let p = Rules::PIPEDRIVE;
    assert_eq!(
        verdict(p, 201, &[], "{\"success\":true,\"data\":{\"id\":\"a\"}}"),
        Verdict::Success
    );
    assert_eq!(
        verdict(p, 200, &[], "{\"success\":false,\"error\":\"nope\"}"),
        permanent("Pipedrive answered HTTP 200 without success: nope")
    );
    assert_eq!(
        verdict(p, 200, &[], "<html>"),
        permanent("Pipedrive answered HTTP 200 without success: <html>")
    );
    assert_eq!(
        verdict(
            p,
            400,
            &[],
            "{\"success\":false,\"error\":\"unauthorized access\",\"errorCode\":401,\
             \"error_info\":\"Please check developers.pipedrive.com\"}"
        ),
        permanent(
            "Pipedrive answered HTTP 400: unauthorized access \
             (Please check developers.pipedrive.com)"
        )
    );
    assert_eq!(
        verdict(
            p,
            429,
            &[("x-ratelimit-reset", "2")],
            "{\"error\":\"slow\"}"
        ),
        retry("Pipedrive answered HTTP 429: slow", Some(2_000))
    );
    assert_eq!(
        verdict(p, 429, &[("x-ratelimit-reset", "5")], ""),
        retry("Pipedrive answered HTTP 429", Some(5_000))
    );
    assert_eq!(
        verdict(p, 429, &[], ""),
        retry("Pipedrive answered HTTP 429", Some(2_000))
    );
    assert_eq!(
        verdict(
            p,
            429,
            &[("retry-after", "30"), ("x-ratelimit-reset", "5")],
            ""
        ),
        retry("Pipedrive answered HTTP 429", Some(30_000))
    );
    assert_eq!(
        verdict(p, 410, &[], "{\"success\":false,\"error\":\"gone\"}"),
        Verdict::Permanent {
            message: "Pipedrive answered HTTP 410: gone".to_string(),
            target_gone: true
        }
    );
}

#[test]
fn bitrix24() {
    let b = Rules::BITRIX24;
    assert_eq!(
        verdict(b, 200, &[], "{\"result\":{\"CALL_ID\":\"externalCall.1\"}}"),
        Verdict::Success
    );
    assert_eq!(
        verdict(b, 200, &[], "{\"time\":{}}"),
        permanent("Bitrix24 answered HTTP 200 without success: {\"time\":{}}")
    );
    assert_eq!(
        verdict(
            b,
            503,
            &[],
            "{\"error\":\"QUERY_LIMIT_EXCEEDED\",\"error_description\":\"Too many requests\"}"
        ),
        retry(
            "Bitrix24 answered HTTP 503: QUERY_LIMIT_EXCEEDED: Too many requests",
            Some(1_000)
        )
    );
    assert_eq!(
        verdict(b, 503, &[], "{\"error\":\"OTHER\"}"),
        retry("Bitrix24 answered HTTP 503: OTHER", None)
    );
    assert_eq!(
        verdict(b, 429, &[], "{\"error\":\"OPERATION_TIME_LIMIT\"}"),
        retry(
            "Bitrix24 answered HTTP 429: OPERATION_TIME_LIMIT",
            Some(60_000)
        )
    );
    assert_eq!(
        verdict(
            b,
            400,
            &[],
            "{\"error\":\"ERROR_CORE\",\"error_description\":\"Call is not found\"}"
        ),
        permanent("Bitrix24 answered HTTP 400: ERROR_CORE: Call is not found")
    );
    assert_eq!(
        verdict(
            b,
            403,
            &[],
            "{\"error\":\"WRONG_AUTH_TYPE\",\"error_description\":\"Current authorization type is denied for this method\"}"
        ),
        permanent(
            "Bitrix24 answered HTTP 403: WRONG_AUTH_TYPE: Current authorization type is denied \
             for this method; this method needs an application: set `auth = \"app\"`"
        )
    );
    assert_eq!(
        verdict(b, 401, &[], "{\"error\":\"expired_token\"}"),
        Verdict::Unauthorized {
            message: "Bitrix24 rejected the token: expired_token".to_string()
        }
    );
}

#[test]
fn zoho() {
    let z = Rules::ZOHO;
    assert_eq!(
        verdict(
            z,
            201,
            &[],
            "{\"data\":[{\"code\":\"SUCCESS\",\"details\":{\"id\":\"5\"},\"status\":\"success\"}]}"
        ),
        Verdict::Success
    );
    assert_eq!(
        verdict(z, 200, &[], "{\"data\":[{\"id\":\"5\"}]}"),
        Verdict::Success
    );
    assert_eq!(
        verdict(
            z,
            202,
            &[],
            "{\"data\":[{\"code\":\"INVALID_DATA\",\"details\":{\"api_name\":\"Call_Type\"},\
             \"message\":\"invalid data\",\"status\":\"error\"}]}"
        ),
        permanent("Zoho answered HTTP 202 without success: INVALID_DATA: invalid data (Call_Type)")
    );
    assert_eq!(
        verdict(
            z,
            400,
            &[],
            "{\"data\":[{\"code\":\"MANDATORY_NOT_FOUND\",\"details\":{\"api_name\":\"Subject\",\
             \"json_path\":\"$.data[0].Subject\"},\"message\":\"required field not found\",\
             \"status\":\"error\"}]}"
        ),
        permanent(
            "Zoho answered HTTP 400: MANDATORY_NOT_FOUND: required field not found (Subject)"
        )
    );
    assert_eq!(
        verdict(
            z,
            429,
            &[],
            "{\"code\":\"TOO_MANY_REQUESTS\",\"details\":{},\"message\":\"slow\",\"status\":\"error\"}"
        ),
        retry(
            "Zoho answered HTTP 429: TOO_MANY_REQUESTS: slow",
            Some(10_000)
        )
    );
    assert_eq!(
        verdict(
            z,
            401,
            &[],
            "{\"code\":\"INVALID_TOKEN\",\"details\":{},\"message\":\"invalid oauth token\"}"
        ),
        Verdict::Unauthorized {
            message: "Zoho rejected the token: INVALID_TOKEN: invalid oauth token".to_string()
        }
    );
}

#[test]
fn verdicts_become_delivery_errors() {
    assert!(Verdict::Success.into_result().is_ok());
    let error = retry("m", Some(5)).into_result().unwrap_err();
    assert!(matches!(
        error,
        DeliveryError::Retryable(RetryableError { ref message, retry_after_ms: Some(5) })
            if message == "m"
    ));
    let error = Verdict::Unauthorized {
        message: "HubSpot rejected the token".to_string(),
    }
    .into_result()
    .unwrap_err();
    assert!(matches!(
        error,
        DeliveryError::Permanent(PermanentError { ref message, target_gone: false })
            if message == "HubSpot rejected the token"
    ));
    let error = Verdict::Permanent {
        message: "gone".to_string(),
        target_gone: true,
    }
    .into_result()
    .unwrap_err();
    assert!(matches!(
        error,
        DeliveryError::Permanent(PermanentError {
            target_gone: true,
            ..
        })
    ));
    assert!(
        Rules::HUBSPOT
            .check(&response(404, &[], ""), now())
            .is_err()
    );
}

#[test]
fn retry_after_in_seconds_or_as_a_date() {
    for (value, expected) in [
        ("0", Some(0)),
        (" 120 ", Some(120_000)),
        ("Sat, 28 Nov 2026 09:15:30 GMT", Some(30_000)),
        ("Wed, 21 Oct 2015 07:28:00 GMT", Some(0)),
        ("-1", None),
        ("1.5", None),
        ("", None),
    ] {
        assert_eq!(retry_after_ms(value, now()), expected, "{value:?}");
    }
}
