//! The vocabulary of the Mbus Guidelines (draft-ietf-mmusic-mbus-guidelines-00):
//! RPC requests and returns, group RPC, transactions, properties, service
//! models, optional argument lists.
//!
//! This layer is pure data, below the endpoint: the message shapes as typed
//! commands ([`cmd`]), the values they carry ([`Reply`], [`Answer`],
//! [`RpcType`], [`TxnStatus`], [`Meta`]), and what the application sees of
//! calls, requests and transactions (ids, [`Outcome`], [`TxnOutcome`], and the
//! events [`RpcEvent`], [`TxnEvent`], [`PropertyEvent`]). It imports only
//! [`crate::wire`]. The state machines that use it (calls and serving,
//! properties, transactions, services) are sub-machines of
//! [`crate::proto::Endpoint`], reached through its views `rpc()`,
//! `properties()`, `transactions()` and `services()`, so that they share the
//! endpoint's clock input, its reliable delivery and its event queue.
//!
//! Choices the draft leaves open, made here:
//! - RPC IDs are a decimal counter per entity (as libgmbus does).
//! - A return to a request that came reliably is sent reliably too (the draft's
//!   examples send it unreliably); the caller's acknowledgement is then
//!   piggy-backed or sent as usual, and a return lost on the way is
//!   retransmitted instead of turning into a timeout at the caller.
//! - Empty ARGS and empty results are written as `()` and `((OK OK "") ())`;
//!   the draft's shorter forms are accepted on receipt (the draft's examples
//!   use both, and libgmbus sends the short ones).

mod args;
pub mod cmd;
mod event;
mod meta;
mod outcome;
mod reply;

use std::time::Duration;

pub use args::{address_value, optional_args, split_optional_args, value_address};
pub use cmd::TxnStatus;
pub use event::{PropertyEvent, Request, RpcEvent, TxnEvent, TxnRequest};
pub use meta::Meta;
pub use outcome::{Outcome, TxnOutcome};
pub use reply::{Answer, Reply, Status};

/// How long a caller waits for a return unless told otherwise (pyMbus's
/// `rpcTimeout`).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(2000);

/// An outstanding call made by this entity; reported back in
/// [`RpcEvent::Returned`] or [`RpcEvent::GroupReturned`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CallId(pub u64);

/// A request this entity received and has not answered yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestId(pub u64);

/// A transaction this entity started (client side, Guidelines §5.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TxnId(pub u64);

/// A transaction this entity serves and has not finished (server side).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OpenTxnId(pub u64);

/// The `RPC-TYPE` of a request (Guidelines §5.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RpcType {
    /// One caller, one callee, sent reliably to the callee's full address.
    Unicast,
    /// Sent to a group; willing entities reply `.standby`, the caller picks one.
    Anycast,
    /// Sent to a group; every entity that serves it returns a result.
    Multicast,
    /// Defined by name only in the draft ("TBD"); requests of this type are
    /// answered `FAILED UNSUPPORTED_RPC_TYPE` when they are unicast, ignored
    /// otherwise.
    Coordinated,
}

impl RpcType {
    /// The wire text (`UNICAST`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            RpcType::Unicast => "UNICAST",
            RpcType::Anycast => "ANYCAST",
            RpcType::Multicast => "MULTICAST",
            RpcType::Coordinated => "COORDINATED",
        }
    }

    /// Reads the wire text.
    pub fn from_wire(s: &str) -> Option<RpcType> {
        Some(match s {
            "UNICAST" => RpcType::Unicast,
            "ANYCAST" => RpcType::Anycast,
            "MULTICAST" => RpcType::Multicast,
            "COORDINATED" => RpcType::Coordinated,
            _ => return None,
        })
    }
}

/// Who may change a property from the bus (Guidelines §5.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Access {
    /// `.get` and `.watch` only; `.set` gets `FAILED READ_ONLY`.
    ReadOnly,
    /// `.set` is accepted too.
    ReadWrite,
}

/// Who may use a service's commands and where its notifications go
/// (Guidelines §6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ServiceModel {
    /// Anyone may use the commands; notifications go to the registered
    /// clients, or to the default target while none is registered.
    NoControl,
    /// Only registered controllers may use the commands; notifications go to
    /// them only (never to the default target).
    Tight,
    /// [`ServiceModel::Tight`] with at most one controller: further
    /// registrations are `DENIED`.
    ExclusiveTight,
}
