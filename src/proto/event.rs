//! What the endpoint tells the application: one event type, the transport's
//! own events flat and the Guidelines layer's nested by domain.

use std::time::Duration;

use crate::rpc::{PropertyEvent, RpcEvent, TxnEvent};
use crate::wire::{Address, Command};

use super::MsgId;

/// Why a peer left the entity table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LeaveReason {
    /// It said `mbus.bye`.
    Bye,
    /// Nothing heard from it for 5.5 hello intervals.
    Timeout,
    /// The entity table was full and a newcomer took its place: it had been
    /// heard only once (or was the least recently heard of the established
    /// ones) and had nothing open with us. Its duplicate memory is kept, so
    /// a message it sent is still not delivered twice.
    Evicted,
}

/// Something the application should know.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Event {
    /// A command addressed to us that no part of the endpoint takes (every
    /// command but the RFC 3259 §9 ones and the Guidelines messages the
    /// endpoint answers or correlates itself).
    Command {
        /// The sender.
        src: Address,
        /// True if it came in a reliable message.
        reliable: bool,
        /// The command.
        command: Command,
    },
    /// An entity was heard from for the first time (or again after leaving).
    PeerJoined(Address),
    /// An entity left.
    PeerLeft {
        /// Its address.
        addr: Address,
        /// Bye, or silence.
        reason: LeaveReason,
    },
    /// A reliable message was acknowledged.
    Delivered {
        /// The message.
        id: MsgId,
        /// Its destination.
        dst: Address,
        /// From the first transmission to the acknowledgement.
        after: Duration,
    },
    /// A reliable message got no acknowledgement. It may still have arrived
    /// (its acks may have been lost): it is unacknowledged, not undelivered.
    DeliveryFailed {
        /// The message.
        id: MsgId,
        /// Its destination.
        dst: Address,
    },
    /// `mbus.quit`: the sender asks us to terminate.
    Quit {
        /// The sender.
        src: Address,
    },
    /// `mbus.waiting`: the sender waits for `condition`.
    Waiting {
        /// The sender.
        src: Address,
        /// The condition (a Symbol, or UCL's String).
        condition: String,
    },
    /// `mbus.go`: the sender releases `condition`.
    Go {
        /// The sender.
        src: Address,
        /// The condition.
        condition: String,
    },
    /// Calls and serving (Guidelines §5.2): a request to answer, a call
    /// that ended.
    Rpc(RpcEvent),
    /// Transactions (Guidelines §5.3), on either side.
    Txn(TxnEvent),
    /// Properties (Guidelines §5.4): one of ours was set from the bus.
    Property(PropertyEvent),
}

impl From<RpcEvent> for Event {
    fn from(e: RpcEvent) -> Event {
        Event::Rpc(e)
    }
}

impl From<TxnEvent> for Event {
    fn from(e: TxnEvent) -> Event {
        Event::Txn(e)
    }
}

impl From<PropertyEvent> for Event {
    fn from(e: PropertyEvent) -> Event {
        Event::Property(e)
    }
}
