//! Why the transport refused to send, or to start.

use crate::wire::{Address, EncodeError};

/// Why a message was refused (`Endpoint::send` and everything that sends
/// through it). Nothing was sent.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// Reliable messages need a destination we know (RFC 3259 §7).
    #[error("reliable destination {0} is not a known entity")]
    UnknownDestination(Address),
    /// Reliable messages need a destination that matches one entity only.
    #[error("reliable destination {dst} matches {matches} entities")]
    NotUnique {
        /// The destination.
        dst: Address,
        /// How many known entities it matches.
        matches: usize,
    },
    /// Reliable messages need the entity's complete address: it is only
    /// processed if the address is exactly its own.
    #[error("reliable destination {dst} is not the complete address {full}")]
    Incomplete {
        /// The destination given.
        dst: Address,
        /// The complete address of the one entity it matches.
        full: Address,
    },
    /// Too many reliable messages in flight.
    #[error("{0} reliable messages are in flight already")]
    TooManyInFlight(usize),
    /// The message has no Mbus form, or is too large.
    #[error(transparent)]
    Encode(#[from] EncodeError),
    /// The endpoint has said bye.
    #[error("the endpoint is closed")]
    Closed,
}

/// Why an `Endpoint` could not be created.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SetupError {
    /// Our own address needs an `id` element (RFC 3259 §4.1).
    #[error("the local address {0} has no id element")]
    MissingId(Address),
    /// Another entity of the same host already has this address.
    #[error("another entity of this host already has the address {0}")]
    TakenAddress(Address),
}
