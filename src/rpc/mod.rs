//! The Mbus Guidelines layer (draft-ietf-mmusic-mbus-guidelines-00; `mbus.md`
//! §9): RPC requests and returns, group RPC, properties and optional argument
//! lists.
//!
//! This module holds the vocabulary and the message shapes; the state that
//! correlates calls, serves requests and keeps properties lives with the
//! [`crate::proto::Endpoint`] (its `call`, `call_group`, `serve`, `reply` and
//! property methods), so that it shares the endpoint's clock input, its
//! reliable delivery and its event queue. Everything here is pure.
//!
//! Choices the draft leaves open, made here:
//! - RPC IDs are a decimal counter per entity (as libgmbus does).
//! - A return to a request that came reliably is sent reliably too (the draft's
//!   examples send it unreliably); the caller's acknowledgement is then
//!   piggy-backed or sent as usual, and a return lost on the way is
//!   retransmitted instead of turning into a timeout at the caller.
//! - Empty ARGS and empty results are written as `()` and `((OK OK "") ())`;
//!   the draft's shorter forms are accepted on receipt (decision D10).

mod meta;
mod shapes;

use std::time::Duration;

use crate::wire::{Address, Value};

pub use meta::{
    optional_args, parse_request, parse_return, request_command, return_command,
    split_optional_args, standby_command, Meta, MetaError, ParsedRequest, ParsedReturn,
};
pub use shapes::{
    address_value, read_status, read_transaction_control, read_transaction_reply, status_command,
    transaction_command, transaction_control, transaction_reply, value_address, TxnStatus,
};

/// How long a caller waits for a return unless told otherwise (pyMbus's
/// `rpcTimeout`; spec README).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(2000);

/// An outstanding call made by this entity; reported back in
/// [`crate::proto::Event::Returned`] or [`crate::proto::Event::GroupReturned`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CallId(pub u64);

/// A request this entity received and has not answered yet; pass it to
/// [`crate::proto::Endpoint::reply`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestId(pub u64);

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

/// The generic part of an application status: the first Symbol of APPSTATUS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    /// `OK`.
    Ok,
    /// `FAILED`.
    Failed,
}

impl Status {
    /// The wire Symbol.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "OK",
            Status::Failed => "FAILED",
        }
    }
}

/// What a handler answers, and what a caller gets back: the application
/// status triple (OK/FAILED, result Symbol, description) and the return values
/// (Guidelines §5.2.2).
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    /// OK or FAILED.
    pub status: Status,
    /// The application-specific result Symbol (e.g. `BAR_COMPLETED`).
    pub result: String,
    /// A human-readable description.
    pub description: String,
    /// The return values.
    pub values: Vec<Value>,
}

impl Reply {
    /// `(OK OK "")` with `values`.
    pub fn ok(values: Vec<Value>) -> Reply {
        Reply {
            status: Status::Ok,
            result: "OK".into(),
            description: String::new(),
            values,
        }
    }

    /// `(OK result "description")` with `values`.
    pub fn ok_with(result: &str, description: &str, values: Vec<Value>) -> Reply {
        Reply {
            status: Status::Ok,
            result: result.into(),
            description: description.into(),
            values,
        }
    }

    /// `(FAILED result "description")` without values.
    pub fn failed(result: &str, description: &str) -> Reply {
        Reply {
            status: Status::Failed,
            result: result.into(),
            description: description.into(),
            values: Vec::new(),
        }
    }

    /// True for `OK`.
    pub fn is_ok(&self) -> bool {
        self.status == Status::Ok
    }
}

/// How a callee answers a request (see [`crate::proto::Endpoint::reply`]).
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// `RPC-STATUS OK`: the procedure was called; here is its result.
    Reply(Reply),
    /// `RPC-STATUS UNKNOWN`: no such operation here.
    Unknown,
}

impl From<Reply> for Answer {
    fn from(r: Reply) -> Answer {
        Answer::Reply(r)
    }
}

/// The outcome of one call, for one callee.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Outcome {
    /// The callee returned (`RPC-STATUS OK`); the reply says whether the
    /// procedure succeeded.
    Returned(Reply),
    /// `RPC-STATUS UNKNOWN`: the callee has no such operation.
    Unknown,
    /// The reliable request was never acknowledged.
    Undeliverable,
    /// No return within the call's timeout.
    TimedOut,
    /// The callee said bye or timed out of the entity table before returning.
    CalleeLeft,
    /// An anycast call that no entity offered to serve within T_anycast.
    NoResponder,
    /// This entity closed (said bye) before the call ended.
    Closed,
}

impl Outcome {
    /// A short machine name: `ok`, `failed`, `unknown`, `undeliverable`,
    /// `timeout`, `callee_left`, `no_responder`.
    pub fn code(&self) -> &'static str {
        match self {
            Outcome::Returned(r) if r.is_ok() => "ok",
            Outcome::Returned(_) => "failed",
            Outcome::Unknown => "unknown",
            Outcome::Undeliverable => "undeliverable",
            Outcome::TimedOut => "timeout",
            Outcome::CalleeLeft => "callee_left",
            Outcome::NoResponder => "no_responder",
            Outcome::Closed => "closed",
        }
    }
}

/// A request for an operation this entity serves (delivered as
/// [`crate::proto::Event::Request`]); answer it with
/// [`crate::proto::Endpoint::reply`], at once or later.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// Our handle for the answer.
    pub id: RequestId,
    /// The caller's RPC ID (unique per caller only).
    pub rpc_id: String,
    /// The caller's address.
    pub src: Address,
    /// The operation (command name).
    pub name: String,
    /// The RPC parameters (ARGS).
    pub args: Vec<Value>,
    /// How it was called.
    pub rpc_type: RpcType,
    /// The whole META map (for `CONTEXT-ID` and other additions).
    pub meta: Meta,
}

/// Why [`crate::proto::Endpoint::reply`] sent nothing.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ReplyError {
    /// The request was answered already, or never existed (or was dropped
    /// because too many requests were open).
    #[error("no open request {0:?}")]
    NoSuchRequest(RequestId),
    /// The return could not be encoded or sent; the request stays open.
    #[error(transparent)]
    Send(#[from] crate::proto::SendError),
}

/// Who may change a property from the bus (Guidelines §5.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Access {
    /// `.get` and `.watch` only; `.set` gets `FAILED READ_ONLY`.
    ReadOnly,
    /// `.set` is accepted too.
    ReadWrite,
}

/// A transaction this entity started (client side, Guidelines §5.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TxnId(pub u64);

/// A transaction this entity serves and has not finished (server side).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OpenTxnId(pub u64);

/// A transaction request for an operation this entity serves as a
/// transaction (delivered as [`crate::proto::Event::Transaction`]). Answer it
/// with [`crate::proto::Endpoint::txn_ack`]; after a commit, finish it with
/// [`crate::proto::Endpoint::txn_complete`].
#[derive(Debug, Clone, PartialEq)]
pub struct TxnRequest {
    /// Our handle.
    pub id: OpenTxnId,
    /// The client's transaction ID.
    pub tid: String,
    /// The client.
    pub src: Address,
    /// The operation.
    pub name: String,
    /// Its parameters.
    pub args: Vec<Value>,
}

/// How a transaction ended for its client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TxnOutcome {
    /// `.completed` arrived with this status (`CANCELLED` after a cancel).
    Completed(TxnStatus),
    /// The server's `.ack` was not OK: nothing to commit.
    Refused(TxnStatus),
    /// The request, commit or cancel was never acknowledged.
    Undeliverable,
    /// No `.ack` or `.completed` within the timeout.
    TimedOut,
    /// The server left the bus first.
    ServerLeft,
    /// This entity closed (said bye) before the transaction ended.
    Closed,
}

/// Why a transaction step was not taken.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum TxnError {
    /// No such transaction, or it has ended.
    #[error("no open transaction")]
    NoSuchTransaction,
    /// The step does not fit the transaction's state (e.g. a commit before
    /// the server's OK, or a second completion).
    #[error("not now: the transaction is {0}")]
    WrongState(&'static str),
    /// Sending failed.
    #[error(transparent)]
    Send(#[from] crate::proto::SendError),
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
