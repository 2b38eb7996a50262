//! What a member asks of its store. The core never touches the disk: it
//! queues these operations, the driver hands each batch to a store off the
//! bus loop, and tells the member when the batch is committed. Deliveries
//! that arrive together share one batch, so one commit.

use std::time::SystemTime;

use super::description::Description;
use super::message::Message;

/// One store operation.
#[derive(Debug, Clone, PartialEq)]
pub enum StoreOp {
    /// Keep a message this member received (with `result` and
    /// `path_history`).
    Save {
        /// The message.
        message: Message,
        /// The sender's address, as text.
        from: String,
    },
    /// Keep (or replace) a message this member holds for later recipients.
    Hold(HeldRecord),
    /// Forget a held message (its hold time is over).
    Release {
        /// The message id.
        id: String,
    },
    /// Keep what the member says about itself (endpoints, neighbors,
    /// topics, providers, started layers, state), so that a member
    /// restarted on its store is the same member.
    Describe(Description),
}

/// A held message as the store keeps it, so that it survives a restart of
/// the member that sends it.
#[derive(Debug, Clone, PartialEq)]
pub struct HeldRecord {
    /// The message.
    pub message: Message,
    /// When the hold ends, in milliseconds since the Unix epoch.
    pub until_unix_ms: u64,
    /// The members that have it already.
    pub delivered: Vec<String>,
}

/// Operations to commit together; answer with the member's `store_done`.
#[derive(Debug, Clone, PartialEq)]
pub struct StoreBatch {
    /// The batch's number, for `store_done`.
    pub ticket: u64,
    /// The member the operations are for.
    pub member: String,
    /// The operations, in order.
    pub ops: Vec<StoreOp>,
}

/// A stored message, as a store lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredMessage {
    /// The message, with its result and path history.
    pub message: Message,
    /// The sender's address, as text.
    pub from: String,
    /// When it was stored, in milliseconds since the Unix epoch.
    pub stored_unix_ms: u64,
}

/// Milliseconds since the Unix epoch (0 before it), as stores keep times.
pub(crate) fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
