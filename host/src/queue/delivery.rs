//! What the queue hands a [`Deliverer`](super::Deliverer) (one attempt of one event) and what
//! it gets back (the outcome, as data): the contract between the queue and the plugin runtime.
//!
//! Meaning and priority, from best to worst: `Delivered` (the receiver has it: remove it from
//! the queue), `Retry` (a passing failure: try again later, honouring `after` when given),
//! `Rejected` (retrying cannot help: park it for replay; `target_gone` also disables the plugin
//! until an operator re-enables it), `UnknownOutcome` (contract 0.2: the plugin cannot tell
//! whether its create took effect: parked like `Rejected`, so that an operator checks the
//! receiver before replaying it, and counted apart), `Failed` (the plugin trapped, ran out of time or memory, or
//! the host could not run it: retried like `Retry`, because a fixed plugin or a less loaded host
//! may succeed, and counted separately so a broken plugin stands out).

use crate::calls::event::CallEvent;
use std::time::Duration;

/// One delivery attempt of one event.
#[derive(Debug, Clone, Copy)]
pub struct DeliveryRequest<'a> {
    /// The event.
    pub event: &'a CallEvent,
    /// Stable across retries; handed to the plugin for the receiver's deduplication.
    pub idempotency_key: &'a str,
    /// 1 for the first attempt.
    pub attempt: u32,
    /// Time of the attempt, seconds since the Unix epoch.
    pub timestamp: u64,
    /// True when an operator replayed the delivery after it was parked (contract 0.2).
    pub replayed: bool,
}

/// What became of one delivery attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryOutcome {
    /// The receiver has the event.
    Delivered,
    /// The plugin reported a passing failure.
    Retry {
        /// The plugin's message.
        message: String,
        /// The delay the receiver asked for, if any.
        after: Option<Duration>,
    },
    /// The plugin reported a failure that retrying cannot fix.
    Rejected {
        /// The plugin's message.
        message: String,
        /// The receiver said the target is gone for good (HTTP 410).
        target_gone: bool,
    },
    /// The plugin cannot tell whether the receiver acted on the delivery (contract 0.2's
    /// `unknown-outcome`).
    UnknownOutcome {
        /// The plugin's message: what to check before replaying.
        message: String,
    },
    /// The plugin did not finish: trap, panic, time-out, memory cap, or a host failure.
    Failed {
        /// What happened, with the limit that was hit.
        message: String,
    },
}

impl DeliveryOutcome {
    /// A short label for logs and metrics: `delivered`, `retry`, `rejected`, `outcome-unknown`
    /// or `failed`.
    pub fn label(&self) -> &'static str {
        match self {
            DeliveryOutcome::Delivered => "delivered",
            DeliveryOutcome::Retry { .. } => "retry",
            DeliveryOutcome::Rejected { .. } => "rejected",
            DeliveryOutcome::UnknownOutcome { .. } => "outcome-unknown",
            DeliveryOutcome::Failed { .. } => "failed",
        }
    }

    /// The plugin's own outcome with the egress refusals of the delivery (`refused`, already
    /// formatted) appended to its message.
    pub(crate) fn refused(mut self, refused: &str) -> DeliveryOutcome {
        match &mut self {
            DeliveryOutcome::Delivered => {}
            DeliveryOutcome::Retry { message, .. }
            | DeliveryOutcome::Rejected { message, .. }
            | DeliveryOutcome::UnknownOutcome { message }
            | DeliveryOutcome::Failed { message } => message.push_str(refused),
        }
        self
    }

    /// The outcome with its message made one line and cut at `max_bytes` (see
    /// [`one_line`](crate::text::one_line)): messages carry a plugin's and a receiver's text
    /// and are stored and logged.
    pub fn capped(self, max_bytes: usize) -> Self {
        let cap = |message: String| crate::text::one_line(&message, max_bytes).into_owned();
        match self {
            DeliveryOutcome::Delivered => DeliveryOutcome::Delivered,
            DeliveryOutcome::Retry { message, after } => DeliveryOutcome::Retry {
                message: cap(message),
                after,
            },
            DeliveryOutcome::Rejected {
                message,
                target_gone,
            } => DeliveryOutcome::Rejected {
                message: cap(message),
                target_gone,
            },
            DeliveryOutcome::UnknownOutcome { message } => DeliveryOutcome::UnknownOutcome {
                message: cap(message),
            },
            DeliveryOutcome::Failed { message } => DeliveryOutcome::Failed {
                message: cap(message),
            },
        }
    }

    /// The message, if the delivery did not succeed.
    pub fn message(&self) -> Option<&str> {
        match self {
            DeliveryOutcome::Delivered => None,
            DeliveryOutcome::Retry { message, .. }
            | DeliveryOutcome::Rejected { message, .. }
            | DeliveryOutcome::UnknownOutcome { message }
            | DeliveryOutcome::Failed { message } => Some(message),
        }
    }
}
