//! The text forms the CRMs want: times, durations, HTML-escaped notes.
//!
//! Times come from the contract as UTC milliseconds since the Unix epoch and go out in UTC, in
//! the form each CRM documents (spec `crm-plugins.md` sections 4 to 7). Forms in whole seconds
//! truncate the milliseconds (`09:15:05.999` is `09:15:05`). No CRM here needs a time zone, so
//! the calendar arithmetic is the few lines of `civil_from_days` rather than a date crate
//! (`docs/decisions.md`, "Dates in the SDK"); the tests check it against `jiff`.

/// ISO-8601 in UTC with milliseconds and `Z`: `2026-11-28T09:15:05.000Z` (HubSpot `hs_timestamp`).
///
/// ```
/// use callhook_plugin_sdk::crm::format;
/// assert_eq!(format::iso8601_millis(1_795_857_305_042), "2026-11-28T09:15:05.042Z");
/// ```
pub fn iso8601_millis(ms: u64) -> String {
    let t = Civil::from_ms(ms);
    format!("{}T{}.{:03}Z", t.date(), t.time(), t.millis)
}

/// ISO-8601 in whole seconds with the offset written out, in UTC:
/// `2026-11-28T09:15:05+00:00` (Zoho `Call_Start_Time`, Bitrix24 `CALL_START_DATE`, which
/// refuse `Z`).
///
/// ```
/// use callhook_plugin_sdk::crm::format;
/// assert_eq!(format::iso8601_utc_offset(1_795_857_305_999), "2026-11-28T09:15:05+00:00");
/// ```
pub fn iso8601_utc_offset(ms: u64) -> String {
    let t = Civil::from_ms(ms);
    format!("{}T{}+00:00", t.date(), t.time())
}

/// `YYYY-MM-DD HH:MM:SS` in UTC: `2026-11-28 09:15:05` (Pipedrive `start_time`, `end_time`).
///
/// ```
/// use callhook_plugin_sdk::crm::format;
/// assert_eq!(format::date_time(1_795_857_305_999), "2026-11-28 09:15:05");
/// ```
pub fn date_time(ms: u64) -> String {
    let t = Civil::from_ms(ms);
    format!("{} {}", t.date(), t.time())
}

/// A duration as `mm:ss`, the minutes in total with two digits or more: 95 s is `01:35`,
/// 3725 s is `62:05`, 0 is `00:00` (Zoho `Call_Duration`).
///
/// ```
/// use callhook_plugin_sdk::crm::format;
/// assert_eq!(format::mm_ss(3725), "62:05");
/// ```
pub fn mm_ss(seconds: u64) -> String {
    format!("{:02}:{:02}", seconds / 60, seconds % 60)
}

/// `&`, `<` and `>` replaced by their entities, for the HTML notes of HubSpot and Pipedrive.
/// Quotes are kept: the text goes between tags, never into an attribute.
///
/// ```
/// use callhook_plugin_sdk::crm::format;
/// assert_eq!(format::escape_html("R&D <sales>"), "R&amp;D &lt;sales&gt;");
/// ```
pub fn escape_html(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            c => escaped.push(c),
        }
    }
    escaped
}

/// How a CRM's notes field joins lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Markup {
    /// HTML: each line escaped with [`escape_html`], joined with `<br>` (HubSpot, Pipedrive).
    Html,
    /// Plain text: lines joined with `\n` (Zoho).
    Text,
}

impl Markup {
    fn line(self, line: &str) -> String {
        match self {
            Markup::Html => escape_html(line),
            Markup::Text => line.to_string(),
        }
    }

    fn separator(self) -> &'static str {
        match self {
            Markup::Html => "<br>",
            Markup::Text => "\n",
        }
    }

    fn join(self, lines: &[String]) -> String {
        let lines: Vec<String> = lines.iter().map(|line| self.line(line)).collect();
        lines.join(self.separator())
    }
}

/// The notes of a call record (spec section 3.2): the lines `{title}`,
/// `Extension: {user} {name}`, `Queue: {queue}` and `Call: {key}`.
///
/// ```
/// use callhook_plugin_sdk::crm::format::{Markup, Notes};
///
/// let notes = Notes {
///     title: "CompanyDID: answered incoming call from 0301234567 to 120, 00:01:00",
///     user: "120",
///     name: Some("Anna Mueller"),
///     queue: None,
///     key: "261128101500_782-1.120",
/// };
/// assert_eq!(
///     notes.render(Markup::Html),
///     "CompanyDID: answered incoming call from 0301234567 to 120, 00:01:00<br>\
///      Extension: 120 Anna Mueller<br>Call: 261128101500_782-1.120"
/// );
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Notes<'a> {
    /// The end event's `title`.
    pub title: &'a str,
    /// The end event's `user`: the extension, or the queue for a call missed at queue level.
    pub user: &'a str,
    /// The `user-info` name, when the host knows it.
    pub name: Option<&'a str>,
    /// The queue the extension rang for, when the event has one.
    pub queue: Option<&'a str>,
    /// The record key `{id}.{user}`.
    pub key: &'a str,
}

impl Notes<'_> {
    /// The lines, unescaped: the `Extension` line without a name when none is known, no
    /// `Queue` line without a queue.
    pub fn lines(&self) -> Vec<String> {
        let mut lines = vec![self.title.to_string()];
        lines.push(match self.name {
            Some(name) if !name.is_empty() => format!("Extension: {} {name}", self.user),
            _ => format!("Extension: {}", self.user),
        });
        if let Some(queue) = self.queue.filter(|queue| !queue.is_empty()) {
            lines.push(format!("Queue: {queue}"));
        }
        lines.push(format!("Call: {}", self.key));
        lines
    }

    /// The lines joined as `markup` asks.
    pub fn render(&self, markup: Markup) -> String {
        markup.join(&self.lines())
    }
}

/// `notes` followed by a line `Recording: {link}` for each link not yet in them, or `None`
/// when every link is there already, so that attaching a recording twice changes nothing
/// (HubSpot `hs_call_body`, Zoho `Description`; spec 4.2, 7.2).
///
/// ```
/// use callhook_plugin_sdk::crm::format::{Markup, with_recording_links};
///
/// let links = ["https://pbx.example.com/r/1-1.mp3?exp=1&sig=a"];
/// let body = with_recording_links("Call: 1.120", &links, Markup::Html).unwrap();
/// assert_eq!(body, "Call: 1.120<br>Recording: https://pbx.example.com/r/1-1.mp3?exp=1&amp;sig=a");
/// assert_eq!(with_recording_links(&body, &links, Markup::Html), None);
/// ```
pub fn with_recording_links<S: AsRef<str>>(
    notes: &str,
    links: &[S],
    markup: Markup,
) -> Option<String> {
    let mut updated = notes.to_string();
    for link in links {
        let line = markup.line(&format!("Recording: {}", link.as_ref()));
        if updated.contains(&line) {
            continue;
        }
        if !updated.is_empty() {
            updated.push_str(markup.separator());
        }
        updated.push_str(&line);
    }
    (updated != notes).then_some(updated)
}

/// A UTC instant split into calendar fields.
struct Civil {
    year: i64,
    month: u32,
    day: u32,
    seconds_of_day: u64,
    millis: u64,
}

impl Civil {
    fn from_ms(ms: u64) -> Self {
        const DAY_MS: u64 = 86_400_000;
        let days = i64::try_from(ms / DAY_MS).expect("u64 milliseconds are fewer than i64 days");
        let (year, month, day) = civil_from_days(days);
        Civil {
            year,
            month,
            day,
            seconds_of_day: ms % DAY_MS / 1000,
            millis: ms % 1000,
        }
    }

    fn date(&self) -> String {
        format!("{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }

    fn time(&self) -> String {
        let s = self.seconds_of_day;
        format!("{:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
    }
}

/// The proleptic Gregorian date of a day counted from 1970-01-01, after Howard Hinnant's
/// `civil_from_days` (<https://howardhinnant.github.io/date_algorithms.html>): days are
/// shifted to eras of 400 years starting on 0000-03-01, so that the leap day ends the year.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * shifted_month + 2) / 5 + 1;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month as u32, day as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-11-28 09:15:05.042Z, the spec's example part start.
    const PART_START: u64 = 1_795_857_305_042;

    #[test]
    fn formats_the_spec_examples() {
        assert_eq!(iso8601_millis(PART_START), "2026-11-28T09:15:05.042Z");
        assert_eq!(iso8601_millis(PART_START - 42), "2026-11-28T09:15:05.000Z");
        assert_eq!(iso8601_utc_offset(PART_START), "2026-11-28T09:15:05+00:00");
        assert_eq!(date_time(PART_START), "2026-11-28 09:15:05");
        assert_eq!(date_time(PART_START + 60_000), "2026-11-28 09:16:05");
    }

    #[test]
    fn whole_seconds_truncate_milliseconds() {
        assert_eq!(date_time(999), "1970-01-01 00:00:00");
        assert_eq!(iso8601_utc_offset(59_999), "1970-01-01T00:00:59+00:00");
        assert_eq!(iso8601_millis(59_999), "1970-01-01T00:00:59.999Z");
    }

    #[test]
    fn dates_agree_with_jiff() {
        // Every day from 1970 to 2200, at a time of day that moves through the day.
        for day in 0..84_000u64 {
            let ms = day * 86_400_000 + (day * 7_919_317) % 86_400_000;
            let expected = jiff::Timestamp::from_millisecond(ms as i64).unwrap();
            assert_eq!(
                iso8601_millis(ms),
                expected.strftime("%Y-%m-%dT%H:%M:%S.%3fZ").to_string(),
                "{ms}"
            );
        }
    }

    #[test]
    fn leap_days_and_year_ends() {
        for (ms, expected) in [
            (951_782_400_000, "2000-02-29 00:00:00"),
            (1_709_164_800_000, "2024-02-29 00:00:00"),
            (1_735_689_599_000, "2024-12-31 23:59:59"),
            (4_107_542_400_000, "2100-03-01 00:00:00"),
        ] {
            assert_eq!(date_time(ms), expected);
        }
    }

    #[test]
    fn durations_as_minutes_and_seconds() {
        for (seconds, expected) in [
            (0, "00:00"),
            (30, "00:30"),
            (60, "01:00"),
            (95, "01:35"),
            (3599, "59:59"),
            (3725, "62:05"),
            (6000, "100:00"),
        ] {
            assert_eq!(mm_ss(seconds), expected, "{seconds}");
        }
    }

    #[test]
    fn escapes_ampersands_and_angle_brackets_only() {
        assert_eq!(
            escape_html("a & b <i>\"x\"</i>'"),
            "a &amp; b &lt;i&gt;\"x\"&lt;/i&gt;'"
        );
        assert_eq!(escape_html("&amp;"), "&amp;amp;");
        assert_eq!(escape_html("Müller"), "Müller");
    }

    fn notes<'a>(name: Option<&'a str>, queue: Option<&'a str>) -> Notes<'a> {
        Notes {
            title: "R&D: missed incoming call from <anonymous> to 800",
            user: "800",
            name,
            queue,
            key: "261128101500_782-1.800",
        }
    }

    #[test]
    fn notes_lines_follow_the_spec() {
        assert_eq!(
            notes(Some("Sales & Support"), Some("800")).render(Markup::Html),
            "R&amp;D: missed incoming call from &lt;anonymous&gt; to 800<br>\
             Extension: 800 Sales &amp; Support<br>Queue: 800<br>Call: 261128101500_782-1.800"
        );
        assert_eq!(
            notes(None, None).render(Markup::Text),
            "R&D: missed incoming call from <anonymous> to 800\nExtension: 800\n\
             Call: 261128101500_782-1.800"
        );
        assert_eq!(notes(Some(""), Some("")).lines(), notes(None, None).lines());
    }

    #[test]
    fn recording_links_are_added_once() {
        let links = ["https://h/a-1.mp3?x=1&y=2", "https://h/a-2.mp3"];
        let zoho = with_recording_links("Call: k", &links[..1], Markup::Text).unwrap();
        assert_eq!(zoho, "Call: k\nRecording: https://h/a-1.mp3?x=1&y=2");
        assert_eq!(
            with_recording_links(&zoho, &links, Markup::Text).unwrap(),
            "Call: k\nRecording: https://h/a-1.mp3?x=1&y=2\nRecording: https://h/a-2.mp3"
        );
        let hubspot = with_recording_links("Call: k", &links, Markup::Html).unwrap();
        assert_eq!(
            hubspot,
            "Call: k<br>Recording: https://h/a-1.mp3?x=1&amp;y=2<br>Recording: https://h/a-2.mp3"
        );
        assert_eq!(with_recording_links(&hubspot, &links, Markup::Html), None);
        assert_eq!(
            with_recording_links("", &links[1..], Markup::Html).unwrap(),
            "Recording: https://h/a-2.mp3"
        );
    }
}
