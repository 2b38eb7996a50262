//! The codes a CMBS delivery can end with, other than delivered: the
//! receiver's refusals and what the sender finds out on its own.

use std::fmt;

/// Why a message did not reach a recipient (or was not sent at all).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Code {
    // ---- the receiver's answers ----
    /// The recipient has the message's layer stopped.
    LayerStopped,
    /// The recipient is suspended.
    Suspended,
    /// The recipient's id is already in `path_history`.
    Loop,
    /// The message asks to be stored and the recipient has no store.
    NotStorable,
    /// The recipient's store could not write it.
    StoreFailed,
    /// The execute handler failed or timed out.
    ExecFailed,
    /// The recipient could not read the message.
    Malformed,
    // ---- the sender's findings ----
    /// No member in the directory has that id or endpoint.
    UnknownMember,
    /// A member entity is on the bus, but its description (what it
    /// receives) has not reached the sender: it may or may not be a
    /// recipient, and nothing was sent to it.
    Undescribed,
    /// No matching member has the layer started.
    NoRecipient,
    /// The message is `sendable=false`.
    NotSendable,
    /// A topic is not valid for a message.
    InvalidTopic,
    /// The message does not fit in a datagram.
    TooLarge,
    /// The request was never acknowledged (it may have arrived).
    Undeliverable,
    /// Acknowledged, but no answer in time.
    Timeout,
}

impl Code {
    /// Every code.
    pub const ALL: [Code; 15] = [
        Code::LayerStopped,
        Code::Suspended,
        Code::Loop,
        Code::NotStorable,
        Code::StoreFailed,
        Code::ExecFailed,
        Code::Malformed,
        Code::UnknownMember,
        Code::Undescribed,
        Code::NoRecipient,
        Code::NotSendable,
        Code::InvalidTopic,
        Code::TooLarge,
        Code::Undeliverable,
        Code::Timeout,
    ];

    /// The wire and report spelling, e.g. `LAYER_STOPPED`.
    pub fn as_str(self) -> &'static str {
        match self {
            Code::LayerStopped => "LAYER_STOPPED",
            Code::Suspended => "SUSPENDED",
            Code::Loop => "LOOP",
            Code::NotStorable => "NOT_STORABLE",
            Code::StoreFailed => "STORE_FAILED",
            Code::ExecFailed => "EXEC_FAILED",
            Code::Malformed => "MALFORMED",
            Code::UnknownMember => "UNKNOWN_MEMBER",
            Code::Undescribed => "UNDESCRIBED",
            Code::NoRecipient => "NO_RECIPIENT",
            Code::NotSendable => "NOT_SENDABLE",
            Code::InvalidTopic => "INVALID_TOPIC",
            Code::TooLarge => "TOO_LARGE",
            Code::Undeliverable => "UNDELIVERABLE",
            Code::Timeout => "TIMEOUT",
        }
    }

    /// Reads the spelling of [`Code::as_str`].
    pub fn parse(s: &str) -> Option<Code> {
        Code::ALL.into_iter().find(|c| c.as_str() == s)
    }

    /// True if a member that refused with this code may take the message
    /// when it comes back or changes (a held message is offered again).
    pub fn may_change(self) -> bool {
        matches!(
            self,
            Code::LayerStopped
                | Code::Suspended
                | Code::Undeliverable
                | Code::Timeout
                | Code::Undescribed
        )
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A code with the reason a person reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The code.
    pub code: Code,
    /// Why, in words.
    pub reason: String,
}

impl Refusal {
    /// A refusal.
    pub fn new(code: Code, reason: impl Into<String>) -> Refusal {
        Refusal {
            code,
            reason: reason.into(),
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.reason)
    }
}

impl std::error::Error for Refusal {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_reads_back() {
        for c in Code::ALL {
            assert_eq!(Code::parse(c.as_str()), Some(c));
        }
        assert_eq!(Code::parse("DELIVERED"), None);
    }
}
