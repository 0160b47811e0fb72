//! The values every CRM record of an end event is made of (spec `crm-plugins.md` section 3.2):
//! the record key, the external number, from and to, the part's start and end, and the notes.
//!
//! They are the same for the four CRMs; only the field names and text forms differ, which stay
//! with each plugin. [`Part::of`] reads them from an [`Ended`] once, so that a plugin's mapping
//! is a list of `field: value` lines.

use super::format::{Markup, Notes};
use crate::{Direction, Ended, FinishType};

/// The values of one part of a call, read from its end event.
#[derive(Debug, Clone)]
pub struct Part<'a> {
    /// The end event.
    pub ended: &'a Ended,
    /// `{id}.{user}`, e.g. `261128101500_782-1.122`: the record's key in the plugin's store.
    pub key: String,
}

impl<'a> Part<'a> {
    /// The part that `ended` ends.
    ///
    /// ```
    /// # use callhook_plugin_sdk::crm::part::Part;
    /// # fn show(ended: &callhook_plugin_sdk::Ended) {
    /// let part = Part::of(ended);
    /// println!("{} from {} to {}", part.key, part.from(), part.to());
    /// # }
    /// ```
    pub fn of(ended: &'a Ended) -> Self {
        Part {
            key: format!("{}.{}", ended.id, ended.user),
            ended,
        }
    }

    /// Whether the extension talked (`finishtype=Ok`).
    pub fn answered(&self) -> bool {
        self.ended.finishtype == FinishType::Ok
    }

    /// Whether the call came in.
    pub fn incoming(&self) -> bool {
        self.ended.direction == Direction::Incoming
    }

    /// `callerid-e164` when the host could normalise it, else `callerid` as the PBX reported it.
    pub fn external_number(&self) -> &str {
        self.ended
            .callerid_e164
            .as_deref()
            .unwrap_or(&self.ended.callerid)
    }

    /// The forms of the external number to search or create a contact by, in order: the E.164
    /// form when given, then the raw `callerid` when different; only forms that
    /// [look like a phone number](is_phone_number), so a withheld number (`anonymous`,
    /// `unknown`, empty) gives none and no contact is searched or created for it.
    pub fn number_forms(&self) -> Vec<&'a str> {
        let mut forms: Vec<&str> = self
            .ended
            .callerid_e164
            .iter()
            .map(String::as_str)
            .collect();
        if !forms.contains(&self.ended.callerid.as_str()) {
            forms.push(&self.ended.callerid);
        }
        forms.retain(|form| is_phone_number(form));
        forms
    }

    /// The calling side: the external number for an incoming call, else the extension.
    pub fn from(&self) -> &str {
        if self.incoming() {
            self.external_number()
        } else {
            &self.ended.user
        }
    }

    /// The called side: the extension for an incoming call, else the external number.
    pub fn to(&self) -> &str {
        if self.incoming() {
            &self.ended.user
        } else {
            self.external_number()
        }
    }

    /// When the part began: `answered-at` when answered, else `offered-at` (UTC ms).
    pub fn start_ms(&self) -> u64 {
        match self.ended.answered_at {
            Some(answered_at) if self.answered() => answered_at,
            _ => self.ended.offered_at,
        }
    }

    /// When the part ended: `ended-at` (UTC ms), never before [`Part::start_ms`].
    pub fn end_ms(&self) -> u64 {
        self.ended.ended_at.max(self.start_ms())
    }

    /// Talk time in whole seconds: `duration-seconds`, 0 when missed.
    pub fn duration_seconds(&self) -> u32 {
        if self.answered() {
            self.ended.duration_seconds
        } else {
            0
        }
    }

    /// The e-mail of the extension's PBX user, when the host knows one (for the owner lookup).
    pub fn user_email(&self) -> Option<&str> {
        let info = self.ended.user_info.as_ref()?;
        info.email
            .as_deref()
            .filter(|email| !email.trim().is_empty())
    }

    /// The notes lines (section 3.2), joined as `markup` asks.
    pub fn notes(&self, markup: Markup) -> String {
        Notes {
            title: &self.ended.title,
            user: &self.ended.user,
            name: self.ended.user_info.as_ref().map(|info| info.name.as_str()),
            queue: self.ended.queue.as_deref(),
            key: &self.key,
        }
        .render(markup)
    }
}

/// Whether a caller id is a phone number that a contact may be searched or created by.
///
/// The rule, after trimming surrounding white space: at least one ASCII digit, and nothing but
/// digits, a `+` as the first character, and the separators people write numbers with (space,
/// `-`, `.`, `/`, `(`, `)`). So `+49 30 1234567`, `(030) 123-4567` and an extension such as
/// `120` are numbers; what 3CX reports for a withheld number (`anonymous`, `Anonymous`,
/// `unknown`, `private`, `restricted`, empty) is not, nor is anything else with letters or
/// other signs (`*31#…`, `sip:…`). A CRM search for such an id would only find a junk record
/// that then matches every withheld call, and `create_contacts` would make one.
///
/// ```
/// use callhook_plugin_sdk::crm::part::is_phone_number;
///
/// assert!(is_phone_number("+49 30 1234567"));
/// assert!(is_phone_number("(030) 123-4567"));
/// assert!(!is_phone_number("anonymous"));
/// assert!(!is_phone_number(""));
/// ```
pub fn is_phone_number(callerid: &str) -> bool {
    let number = callerid.trim();
    let digits = number.strip_prefix('+').unwrap_or(number);
    digits.chars().any(|c| c.is_ascii_digit())
        && digits
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, ' ' | '-' | '.' | '/' | '(' | ')'))
}

/// The record key of a recording's part, `{id}.{user}`: the same as the [`Part::key`] of the
/// end event that made its record.
pub fn recording_part_key(part: &crate::RecordingPart) -> String {
    format!("{}.{}", part.id, part.user)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::UserInfo;

    /// Scenario 1 of the spec: 120 answers a call from 0301234567 for 60 s.
    fn answered() -> Ended {
        Ended {
            id: "261128101500_782-1".into(),
            direction: Direction::Incoming,
            callerid: "0301234567".into(),
            user: "120".into(),
            did: "CompanyDID".into(),
            finishtype: FinishType::Ok,
            transfer: false,
            duration_seconds: 60,
            title: "CompanyDID: answered incoming call from 0301234567 to 120, 00:01:00".into(),
            call_started_at: 1_795_857_300_000,
            offered_at: 1_795_857_300_400,
            answered_at: Some(1_795_857_305_000),
            ended_at: 1_795_857_365_000,
            callerid_e164: Some("+49301234567".into()),
            user_info: Some(UserInfo {
                name: "Anna Mueller".into(),
                email: Some("anna@example.com".into()),
            }),
            queue: None,
            internal: false,
        }
    }

    #[test]
    fn answered_incoming_part() {
        let ended = answered();
        let part = Part::of(&ended);
        assert_eq!(part.key, "261128101500_782-1.120");
        assert_eq!((part.from(), part.to()), ("+49301234567", "120"));
        assert_eq!(
            (part.start_ms(), part.end_ms()),
            (1_795_857_305_000, 1_795_857_365_000)
        );
        assert_eq!(part.duration_seconds(), 60);
        assert_eq!(part.number_forms(), ["+49301234567", "0301234567"]);
        assert_eq!(part.user_email(), Some("anna@example.com"));
        assert_eq!(
            part.notes(Markup::Html),
            "CompanyDID: answered incoming call from 0301234567 to 120, 00:01:00<br>\
             Extension: 120 Anna Mueller<br>Call: 261128101500_782-1.120"
        );
    }

    #[test]
    fn missed_outgoing_part_without_e164() {
        let ended = Ended {
            direction: Direction::Outgoing,
            finishtype: FinishType::Missed,
            answered_at: None,
            duration_seconds: 0,
            callerid: "anonymous".into(),
            callerid_e164: None,
            user_info: None,
            ..answered()
        };
        let part = Part::of(&ended);
        assert_eq!((part.from(), part.to()), ("120", "anonymous"));
        assert_eq!(part.start_ms(), 1_795_857_300_400);
        assert_eq!(part.duration_seconds(), 0);
        assert!(
            part.number_forms().is_empty(),
            "a withheld number is not searched"
        );
        assert_eq!(part.user_email(), None);
    }

    #[test]
    fn same_forms_are_searched_once_and_empty_ones_never() {
        let ended = Ended {
            callerid: "+49301234567".into(),
            ..answered()
        };
        assert_eq!(Part::of(&ended).number_forms(), ["+49301234567"]);
        let ended = Ended {
            callerid: String::new(),
            callerid_e164: None,
            ..answered()
        };
        assert!(Part::of(&ended).number_forms().is_empty());
    }

    /// Which caller ids are searched and created by: a phone number, however it is written,
    /// and an extension; never a withheld or otherwise non-numeric id.
    #[test]
    fn only_phone_numbers_are_number_forms() {
        #[rustfmt::skip]
        let cases = [
            ("anonymous",        false),
            ("Anonymous",        false),
            ("ANONYMOUS",        false),
            ("unknown",          false),
            ("private",          false),
            ("restricted",       false),
            ("",                 false),
            ("  ",               false),
            ("+",                false),
            ("()-./",            false),
            ("anonymous 1",      false),
            ("12a34",            false),
            ("30+1234567",       false),
            ("++49301234567",    false),
            ("*31#0301234567",   false),
            ("sip:120@pbx",      false),
            ("+49 30 1234567",   true),
            ("+49301234567",     true),
            ("0301234567",       true),
            ("(030) 123-4567",   true),
            ("030/123.45.67",    true),
            (" 0301234567 ",     true),
            ("425630434343",     true),
            ("120",              true),
        ];
        for (callerid, searched) in cases {
            let ended = Ended {
                callerid: callerid.into(),
                callerid_e164: None,
                ..answered()
            };
            let expected: &[&str] = if searched { &[callerid] } else { &[] };
            assert_eq!(Part::of(&ended).number_forms(), expected, "{callerid:?}");
        }
    }
}
