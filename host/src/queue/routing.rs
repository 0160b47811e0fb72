//! Which plugins receive which event: the `[[route]]` entries and `default_plugins`, as the
//! validated configuration hands them to the queue, which routes each event when it stores it.

use crate::config::GENERIC_WEBHOOK;

/// The routes and the fallback list.
#[derive(Debug, Clone, PartialEq)]
pub struct Routes {
    /// The `[[route]]` entries, in order.
    pub routes: Vec<Route>,
    /// Plugins for events no route matches. By default `["generic-webhook"]`.
    pub default_plugins: Vec<String>,
}

impl Routes {
    /// The plugins for an event about `user` on a call that rang through `queues` (queues and
    /// ring groups, as the events' `queue` named them so far): a route with `queues` matches
    /// when one of them, or `user` itself (a queue's own missed call, also in events stored
    /// before the events named their queue), is one of its queues. So a route's `queues` select
    /// every event of a call rung through the queue: its agents' `ringing`, `started` and end
    /// events, the queue's own missed call, and the events of whoever the call was transferred
    /// to afterwards. What the delivery queue routes by.
    pub fn plugins_for_call(&self, user: &str, queues: &[String]) -> Vec<&str> {
        self.select(|route| {
            std::iter::once(user)
                .chain(queues.iter().map(String::as_str))
                .any(|queue| route.matches(user, Some(queue)))
        })
    }

    /// The plugins for `extension` on a call through `queue`, if known: every plugin of every
    /// matching route, each once, in configuration order; `default_plugins` when no route
    /// matches.
    pub fn plugins_for(&self, extension: &str, queue: Option<&str>) -> Vec<&str> {
        self.select(|route| route.matches(extension, queue))
    }

    /// Every plugin of every route `matches` selects, each once, in configuration order;
    /// `default_plugins` when none is selected.
    fn select(&self, matches: impl Fn(&Route) -> bool) -> Vec<&str> {
        let mut plugins: Vec<&str> = Vec::new();
        let mut matched = false;
        for route in &self.routes {
            if matches(route) {
                matched = true;
                for plugin in &route.plugins {
                    if !plugins.contains(&plugin.as_str()) {
                        plugins.push(plugin);
                    }
                }
            }
        }
        if matched {
            plugins
        } else {
            self.default_plugins.iter().map(String::as_str).collect()
        }
    }
}

impl Default for Routes {
    /// No routes; every event goes to the built-in `generic-webhook`.
    fn default() -> Self {
        Routes {
            routes: Vec::new(),
            default_plugins: vec![GENERIC_WEBHOOK.to_string()],
        }
    }
}

/// One `[[route]]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Route {
    /// The extensions it matches.
    pub extensions: Vec<NumberPattern>,
    /// When set, only events on a call through one of these queues (see
    /// [`Routes::plugins_for_call`]).
    pub queues: Option<Vec<NumberPattern>>,
    /// The plugins that receive the matched events.
    pub plugins: Vec<String>,
}

impl Route {
    /// Whether an event of `extension` on a call through `queue` matches.
    pub fn matches(&self, extension: &str, queue: Option<&str>) -> bool {
        let extension_ok = self.extensions.iter().any(|p| p.matches(extension));
        let queue_ok = match &self.queues {
            None => true,
            Some(queues) => queue.is_some_and(|q| queues.iter().any(|p| p.matches(q))),
        };
        extension_ok && queue_ok
    }
}

/// An extension or queue number pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NumberPattern {
    /// `*`: any.
    Any,
    /// Exactly this number.
    Exact(String),
    /// A range of numbers, both ends included (`100-199`).
    Range(u64, u64),
}

impl NumberPattern {
    /// Parses `*`, `205` or `100-199`; `Err` says what is expected.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let digits =
            |s: &str| !s.is_empty() && s.len() <= 18 && s.bytes().all(|b| b.is_ascii_digit());
        if text == "*" {
            return Ok(NumberPattern::Any);
        }
        if digits(text) {
            return Ok(NumberPattern::Exact(text.to_string()));
        }
        if let Some((low, high)) = text.split_once('-') {
            let (low, high) = (low.trim(), high.trim());
            if digits(low) && digits(high) {
                let (low, high): (u64, u64) = (low.parse().unwrap_or(0), high.parse().unwrap_or(0));
                if low <= high {
                    return Ok(NumberPattern::Range(low, high));
                }
                return Err(format!("a range from low to high such as \"{high}-{low}\""));
            }
        }
        Err("an extension number (\"205\"), a range (\"100-199\") or \"*\"".to_string())
    }

    /// Whether `number` matches.
    pub fn matches(&self, number: &str) -> bool {
        match self {
            NumberPattern::Any => true,
            NumberPattern::Exact(exact) => exact == number,
            NumberPattern::Range(low, high) => {
                !number.is_empty()
                    && number.bytes().all(|b| b.is_ascii_digit())
                    && number
                        .parse::<u64>()
                        .is_ok_and(|n| (*low..=*high).contains(&n))
            }
        }
    }
}
