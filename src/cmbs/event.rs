//! What CMBS tells its application.

use crate::proto::LeaveReason;
use crate::wire::Address;

use super::cmd::Action;
use super::description::Description;
use super::directory::Entry;
use super::message::Message;
use super::report::{Line, Report};

/// Something a CMBS participant should know.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Event {
    /// A message reached this member (answered delivered, stored first if
    /// storable). Never twice for one message id.
    Received {
        /// The message, with this member appended to `path_history` and
        /// the execute handler's result.
        message: Message,
        /// Who sent it.
        from: Address,
    },
    /// A refusal this member answered (or, for an unreliable delivery,
    /// dropped).
    Refused {
        /// The message id (empty when it could not be read).
        id: String,
        /// Who sent it.
        from: Address,
        /// The code and reason.
        refusal: super::code::Refusal,
    },
    /// One recipient of a held message we sent settled (a held message's
    /// report comes only when its hold ends; this says how it goes meanwhile).
    Line {
        /// The message id.
        message: String,
        /// The recipient's line.
        line: Line,
    },
    /// A message we sent ended: every line settled and its hold time over.
    Report(Report),
    /// A member entered the directory.
    Joined(Entry),
    /// A member announced a new description.
    Changed(Entry),
    /// A member left the directory.
    Left {
        /// What the directory held.
        entry: Entry,
        /// Bye, or silence.
        reason: LeaveReason,
    },
    /// An action ran on this member.
    Acted {
        /// The action.
        action: Action,
        /// Who asked for it over the bus (`None`: the application).
        by: Option<Address>,
        /// The member after it.
        description: Description,
    },
}
