//! Which plugins receive an event: the `[[route]]` tables and `default_plugins`, as pure code.
//!
//! A route matches an event when the event's `user` matches one of its `extensions` patterns or
//! equals one of its `queues`. Every matching route contributes its plugins; an event that no
//! route matches goes to `default_plugins`. Each plugin appears at most once in the result, in
//! the order of first mention, so a plugin named by two matching routes still receives the event
//! once.
//!
//! Limits of what can be matched, given what an event carries:
//! - `queues` match on `user` only. The one event whose `user` is a queue's DN is the end event
//!   of a call missed at queue level. An agent's `ringing` on behalf of a queue carries
//!   `usertype = queue` but not *which* queue, so it is routed by the agent's extension.
//! - A `recording` has no `user`. The queue routes it to the plugins that received the same
//!   call's other events (kept durably per call, see the queue's on-disk format); only when it
//!   knows none does it ask [`Routing::plugins_for_user`] with the user of the recording's last
//!   end event, and failing that uses `default_plugins`.

use std::fmt;
use std::str::FromStr;

/// One entry of a route's `extensions` list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExtensionPattern {
    /// `"*"`: every extension (and every queue DN).
    Any,
    /// `"205"`: exactly this extension.
    Exact(String),
    /// `"100-199"`: every all-digit extension whose number lies in the inclusive range.
    Range {
        /// The first number of the range.
        from: u64,
        /// The last number of the range, at least `from`.
        to: u64,
    },
}

/// Why an `extensions` entry could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    /// The entry is empty or blank.
    #[error("empty extension pattern")]
    Empty,
    /// A range whose ends are not both numbers, e.g. `"1a-20"`.
    #[error("extension range {0:?} must be two numbers, like \"100-199\"")]
    BadRange(String),
    /// A range whose first number is above its last, e.g. `"200-100"`.
    #[error("extension range {0:?} runs backwards")]
    Backwards(String),
}

impl FromStr for ExtensionPattern {
    type Err = PatternError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        if text.is_empty() {
            return Err(PatternError::Empty);
        }
        if text == "*" {
            return Ok(ExtensionPattern::Any);
        }
        let Some((from, to)) = text.split_once('-') else {
            return Ok(ExtensionPattern::Exact(text.to_string()));
        };
        let number = |part: &str| {
            let part = part.trim();
            if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            part.parse::<u64>().ok()
        };
        match (number(from), number(to)) {
            (Some(from), Some(to)) if from <= to => Ok(ExtensionPattern::Range { from, to }),
            (Some(_), Some(_)) => Err(PatternError::Backwards(text.to_string())),
            _ => Err(PatternError::BadRange(text.to_string())),
        }
    }
}

impl fmt::Display for ExtensionPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExtensionPattern::Any => f.write_str("*"),
            ExtensionPattern::Exact(ext) => f.write_str(ext),
            ExtensionPattern::Range { from, to } => write!(f, "{from}-{to}"),
        }
    }
}

impl ExtensionPattern {
    /// Whether `user` matches. Ranges compare numbers, so `"100-199"` matches `"150"` but not
    /// `"1500"` nor `"15a"`.
    pub fn matches(&self, user: &str) -> bool {
        match self {
            ExtensionPattern::Any => true,
            ExtensionPattern::Exact(ext) => ext == user,
            ExtensionPattern::Range { from, to } => {
                !user.is_empty()
                    && user.bytes().all(|b| b.is_ascii_digit())
                    && user
                        .parse::<u64>()
                        .is_ok_and(|number| (*from..=*to).contains(&number))
            }
        }
    }
}

/// One `[[route]]` table.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Route {
    /// Extensions whose events this route selects. By default none.
    pub extensions: Vec<ExtensionPattern>,
    /// Queue DNs whose own events (a call missed at queue level) this route selects; see the
    /// module documentation for what cannot be matched. By default none.
    pub queues: Vec<String>,
    /// The plugins that receive the selected events, by name.
    pub plugins: Vec<String>,
}

impl Route {
    /// Whether this route selects events about `user`.
    pub fn matches(&self, user: &str) -> bool {
        self.extensions.iter().any(|p| p.matches(user)) || self.queues.iter().any(|q| q == user)
    }
}

/// All routes plus the fallback list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Routing {
    /// The `[[route]]` tables, in configuration order.
    pub routes: Vec<Route>,
    /// Plugins for events that no route matches. By default `["generic-webhook"]`.
    pub default_plugins: Vec<String>,
}

impl Default for Routing {
    fn default() -> Self {
        Routing {
            routes: Vec::new(),
            default_plugins: vec!["generic-webhook".to_string()],
        }
    }
}

impl Routing {
    /// The plugins that receive an event about `user`, each once, in order of first mention.
    ///
    /// ```
    /// # use callhook::queue::routing::{Route, Routing};
    /// let routing = Routing {
    ///     routes: vec![Route {
    ///         extensions: vec!["100-199".parse().unwrap()],
    ///         queues: vec![],
    ///         plugins: vec!["hubspot".into()],
    ///     }],
    ///     default_plugins: vec!["generic-webhook".into()],
    /// };
    /// assert_eq!(routing.plugins_for_user("150"), ["hubspot"]);
    /// assert_eq!(routing.plugins_for_user("300"), ["generic-webhook"]);
    /// ```
    pub fn plugins_for_user(&self, user: &str) -> Vec<&str> {
        let mut chosen: Vec<&str> = Vec::new();
        let mut matched = false;
        for route in self.routes.iter().filter(|r| r.matches(user)) {
            matched = true;
            push_unique(&mut chosen, &route.plugins);
        }
        if !matched {
            push_unique(&mut chosen, &self.default_plugins);
        }
        chosen
    }

    /// Every plugin name the routing mentions, each once (for validating the configuration).
    pub fn plugin_names(&self) -> Vec<&str> {
        let mut names = Vec::new();
        for route in &self.routes {
            push_unique(&mut names, &route.plugins);
        }
        push_unique(&mut names, &self.default_plugins);
        names
    }
}

fn push_unique<'a>(chosen: &mut Vec<&'a str>, plugins: &'a [String]) {
    for plugin in plugins {
        if !chosen.contains(&plugin.as_str()) {
            chosen.push(plugin);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(extensions: &[&str], queues: &[&str], plugins: &[&str]) -> Route {
        Route {
            extensions: extensions.iter().map(|p| p.parse().unwrap()).collect(),
            queues: queues.iter().map(|q| q.to_string()).collect(),
            plugins: plugins.iter().map(|p| p.to_string()).collect(),
        }
    }

    fn routing() -> Routing {
        Routing {
            routes: vec![
                route(&["100-199", "205"], &[], &["hubspot", "audit"]),
                route(&["150"], &["800"], &["pipedrive", "hubspot"]),
                route(&["3000-3999"], &[], &[]),
            ],
            default_plugins: vec!["generic-webhook".into(), "audit".into()],
        }
    }

    #[test]
    fn routes_by_extension_queue_and_default() {
        let routing = routing();
        #[rustfmt::skip]
        let cases: &[(&str, &[&str])] = &[
            ("100", &["hubspot", "audit"]),                  // first number of a range
            ("199", &["hubspot", "audit"]),                  // last number of a range
            ("205", &["hubspot", "audit"]),                  // an exact entry
            ("150", &["hubspot", "audit", "pipedrive"]),     // two routes, each plugin once
            ("800", &["pipedrive", "hubspot"]),              // a queue's own event
            ("200", &["generic-webhook", "audit"]),          // between entries: default
            ("1500", &["generic-webhook", "audit"]),         // numbers, not prefixes
            ("15a", &["generic-webhook", "audit"]),          // not a number: no range match
            ("", &["generic-webhook", "audit"]),             // empty user: default
            ("3500", &[]),                                   // matched a route without plugins
        ];
        for (user, expected) in cases {
            assert_eq!(routing.plugins_for_user(user), *expected, "user {user:?}");
        }
    }

    #[test]
    fn star_matches_everything_and_suppresses_the_default() {
        let routing = Routing {
            routes: vec![route(&["*"], &[], &["all"])],
            default_plugins: vec!["never".into()],
        };
        for user in ["1", "800", "abc", ""] {
            assert_eq!(routing.plugins_for_user(user), ["all"], "user {user:?}");
        }
    }

    #[test]
    fn parses_patterns() {
        use ExtensionPattern::*;
        #[rustfmt::skip]
        let cases: &[(&str, Result<ExtensionPattern, PatternError>)] = &[
            ("*", Ok(Any)),
            ("205", Ok(Exact("205".into()))),
            (" 205 ", Ok(Exact("205".into()))),
            ("100-199", Ok(Range { from: 100, to: 199 })),
            ("100 - 199", Ok(Range { from: 100, to: 199 })),
            ("7-7", Ok(Range { from: 7, to: 7 })),
            ("", Err(PatternError::Empty)),
            ("200-100", Err(PatternError::Backwards("200-100".into()))),
            ("1a-20", Err(PatternError::BadRange("1a-20".into()))),
            ("-20", Err(PatternError::BadRange("-20".into()))),
            ("10-", Err(PatternError::BadRange("10-".into()))),
        ];
        for (text, expected) in cases {
            assert_eq!(&text.parse::<ExtensionPattern>(), expected, "pattern {text:?}");
        }
    }

    #[test]
    fn lists_every_plugin_once() {
        assert_eq!(
            routing().plugin_names(),
            ["hubspot", "audit", "pipedrive", "generic-webhook"]
        );
    }
}
