//! Plain-text rendering of deliveries for `callhook deliveries list` (pure).
//!
//! Reasons and attempt messages carry text a receiver chose (an error body, a status line), and
//! plugin names, events and call ids come from the database; every cell passes
//! [`escape_controls`] so that none of it can break the table's lines or steer the operator's
//! terminal.

use super::replay::DeliveryInfo;
use crate::text::escape_controls;
use std::fmt::Write as _;

/// One line per delivery: id, status, plugin, event, call id, attempts, and the next attempt
/// or the reason it was parked. With `history`, each kept attempt follows on its own indented
/// line. Control characters in any of it are escaped ([`escape_controls`]).
///
/// ```text
/// ID  STATUS    PLUGIN   EVENT    CALL                 TRIES  NEXT / REASON
/// 7   parked    hubspot  ringing  240101120000_1-0     1      rejected: HTTP 400
/// ```
pub fn render_deliveries(deliveries: &[DeliveryInfo], history: bool) -> String {
    let header = [
        "ID",
        "STATUS",
        "PLUGIN",
        "EVENT",
        "CALL",
        "TRIES",
        "NEXT / REASON",
    ];
    let mut rows: Vec<[String; 7]> = Vec::with_capacity(deliveries.len());
    for d in deliveries {
        let status = if d.in_flight {
            "sending"
        } else {
            d.status.label()
        };
        let last = match (&d.parked, d.next_attempt_at) {
            (Some((at, reason)), _) => format!("{reason} (since {at})"),
            (None, Some(next)) => format!("next at {next}"),
            (None, None) => String::new(),
        };
        rows.push([
            d.id.to_string(),
            status.to_string(),
            escape_controls(&d.plugin).into_owned(),
            escape_controls(&d.event).into_owned(),
            escape_controls(&d.call_id).into_owned(),
            d.attempts.to_string(),
            escape_controls(&last).into_owned(),
        ]);
    }
    let mut widths = header.map(str::len);
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &[&str]| {
        let mut text = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                text.push_str(cell);
            } else {
                let _ = write!(text, "{cell:<width$}  ", width = widths[i]);
            }
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(&header);
    for (row, info) in rows.iter().zip(deliveries) {
        line(&row.each_ref().map(String::as_str));
        if history {
            for attempt in &info.history {
                let message = attempt.message.as_deref().unwrap_or("");
                line(&[&format!(
                    "    #{} {} {} {} ms {}",
                    attempt.attempt,
                    attempt.at,
                    attempt.outcome,
                    attempt.duration.as_millis(),
                    escape_controls(message)
                )]);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::replay::{Attempt, DeliveryStatus};
    use std::time::Duration;

    #[test]
    fn renders_a_table_with_history() {
        let at: jiff::Timestamp = "2024-01-01T12:00:00Z".parse().unwrap();
        let parked = DeliveryInfo {
            id: 7,
            plugin: "hubspot".into(),
            call_id: "240101120000_1-0".into(),
            event: "ringing".into(),
            idempotency_key: "240101120000_1-0.ringing.100".into(),
            status: DeliveryStatus::Parked,
            in_flight: false,
            attempts: 1,
            taken_at: at,
            next_attempt_at: None,
            parked: Some((at, "rejected: HTTP 400".into())),
            history: vec![Attempt {
                at,
                attempt: 1,
                outcome: "rejected".into(),
                message: Some("HTTP 400".into()),
                duration: Duration::from_millis(42),
            }],
        };
        let waiting = DeliveryInfo {
            id: 12,
            status: DeliveryStatus::Pending,
            attempts: 0,
            parked: None,
            next_attempt_at: Some(at),
            history: vec![],
            plugin: "crm".into(),
            ..parked.clone()
        };
        let text = render_deliveries(&[parked, waiting], true);
        let expected = "\
ID  STATUS   PLUGIN   EVENT    CALL              TRIES  NEXT / REASON
7   parked   hubspot  ringing  240101120000_1-0  1      rejected: HTTP 400 (since 2024-01-01T12:00:00Z)
    #1 2024-01-01T12:00:00Z rejected 42 ms HTTP 400
12  pending  crm      ringing  240101120000_1-0  0      next at 2024-01-01T12:00:00Z
";
        assert_eq!(text, expected);
    }

    #[test]
    fn escapes_what_receivers_and_plugins_wrote() {
        let at: jiff::Timestamp = "2024-01-01T12:00:00Z".parse().unwrap();
        let body = "HTTP 500: <html>\r\n\x1b[2J\x1b]0;pwned\x07\u{9b}31m".to_string();
        let info = DeliveryInfo {
            id: 3,
            plugin: "crm\x1b[8m".into(),
            call_id: "c1\nforged".into(),
            event: "ringing".into(),
            idempotency_key: "c1.ringing.100".into(),
            status: DeliveryStatus::Parked,
            in_flight: false,
            attempts: 1,
            taken_at: at,
            next_attempt_at: None,
            parked: Some((at, format!("rejected: {body}"))),
            history: vec![Attempt {
                at,
                attempt: 1,
                outcome: "rejected".into(),
                message: Some(body.clone()),
                duration: Duration::from_millis(1),
            }],
        };
        let text = render_deliveries(&[info], true);
        assert_eq!(
            text.lines().count(),
            3,
            "header, delivery, attempt:\n{text}"
        );
        assert!(
            !text.chars().any(|c| c.is_control() && c != '\n'),
            "{text:?}"
        );
        assert!(text.contains(r"HTTP 500: <html>\r\n\u{1b}[2J"), "{text}");
        assert!(text.contains(r"c1\nforged"), "{text}");
    }
}
