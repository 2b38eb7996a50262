//! What a sender learns about a message: one line per matching member, and
//! an outcome once every line is settled. "Delivered" is always the
//! recipient's answer to `cmbs.message.deliver`, never a transport ack.

use std::fmt;

use crate::wire::Address;

use super::code::{Code, Refusal};
use super::layer::Layer;

/// Where one recipient stands.
#[derive(Debug, Clone, PartialEq)]
pub enum LineStatus {
    /// Sent, no answer yet.
    Pending,
    /// The recipient answered that it has the message.
    Delivered {
        /// Its execute handler's output, for an executable message.
        result: Option<serde_json::Value>,
    },
    /// Refused by the recipient, or lost on the way.
    Refused(Refusal),
}

/// One matching member in a report.
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    /// The member id.
    pub member: String,
    /// Its address when the message was sent to it (for a member of
    /// another site, its address on its site's bus).
    pub address: Address,
    /// The site of a member of another site, reached through a bridge
    /// (`None`: a member on this link).
    pub site: Option<String>,
    /// True for an intended recipient, counted in the outcome: a delivery
    /// went to it, or could not (`UNDELIVERABLE`, or `UNDESCRIBED`: its
    /// entity is on the bus but its description never reached us). False
    /// when the directory showed its layer stopped, so nothing was sent
    /// (the line is `LAYER_STOPPED` and does not count against success).
    pub sent: bool,
    /// Where it stands.
    pub status: LineStatus,
}

impl Line {
    /// True once the line will not change (unless a held message is offered
    /// again).
    pub fn is_settled(&self) -> bool {
        !matches!(self.status, LineStatus::Pending)
    }

    /// True if the member answered that it has the message.
    pub fn is_delivered(&self) -> bool {
        matches!(self.status, LineStatus::Delivered { .. })
    }

    /// `DELIVERED`, `PENDING`, or the refusal's code.
    pub fn code(&self) -> &'static str {
        match &self.status {
            LineStatus::Pending => "PENDING",
            LineStatus::Delivered { .. } => "DELIVERED",
            LineStatus::Refused(r) => r.code.as_str(),
        }
    }
}

/// How a message ended, for the sender.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Every intended recipient answered delivered.
    Delivered,
    /// At least one intended recipient refused it, or never acknowledged it.
    Refused,
    /// Nothing refused, but at least one recipient acknowledged and did not
    /// answer in time.
    TimedOut,
    /// Not sent at all: the sender's own finding (`UNKNOWN_MEMBER`,
    /// `NO_RECIPIENT`, `NOT_SENDABLE`, `INVALID_TOPIC`, `TOO_LARGE`).
    Rejected(Refusal),
    /// L2 `unreliable`: one multicast, no answer asked for.
    SentUnconfirmed,
}

impl Outcome {
    /// `DELIVERED`, `REFUSED`, `TIMEOUT`, the rejection's code, or
    /// `SENT_UNCONFIRMED`.
    pub fn code(&self) -> &'static str {
        match self {
            Outcome::Delivered => "DELIVERED",
            Outcome::Refused => "REFUSED",
            Outcome::TimedOut => "TIMEOUT",
            Outcome::Rejected(r) => r.code.as_str(),
            Outcome::SentUnconfirmed => "SENT_UNCONFIRMED",
        }
    }

    /// The `rmbus publish` exit code: 0 delivered (or sent unconfirmed), 1
    /// refused or unacknowledged, 2 rejected, 3 timed out.
    pub fn exit_code(&self) -> u8 {
        match self {
            Outcome::Delivered | Outcome::SentUnconfirmed => 0,
            Outcome::Refused => 1,
            Outcome::Rejected(_) => 2,
            Outcome::TimedOut => 3,
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Rejected(r) => write!(f, "{r}"),
            other => f.write_str(other.code()),
        }
    }
}

/// A message's report.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// The message id.
    pub message: String,
    /// Its layer.
    pub layer: Layer,
    /// One line per matching member, in the order they were found.
    pub lines: Vec<Line>,
    /// How it ended.
    pub outcome: Outcome,
}

impl Report {
    /// The outcome `lines` add up to (all settled).
    pub fn outcome_of(lines: &[Line]) -> Outcome {
        let intended: Vec<&Line> = lines.iter().filter(|l| l.sent).collect();
        if intended.is_empty() {
            return Outcome::Rejected(Refusal::new(
                Code::NoRecipient,
                if lines.is_empty() {
                    "no member matches".to_owned()
                } else {
                    format!(
                        "every matching member ({}) has the layer stopped",
                        lines.len()
                    )
                },
            ));
        }
        let refused =
            |l: &&Line| matches!(&l.status, LineStatus::Refused(r) if r.code != Code::Timeout);
        let timed_out =
            |l: &&Line| matches!(&l.status, LineStatus::Refused(r) if r.code == Code::Timeout);
        if intended.iter().any(refused) {
            Outcome::Refused
        } else if intended.iter().any(timed_out) {
            Outcome::TimedOut
        } else {
            Outcome::Delivered
        }
    }

    /// The result of the first delivered line (an L1 message's answer).
    pub fn result(&self) -> Option<&serde_json::Value> {
        self.lines.iter().find_map(|l| match &l.status {
            LineStatus::Delivered { result } => result.as_ref(),
            _ => None,
        })
    }
}
