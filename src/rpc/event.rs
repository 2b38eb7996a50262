//! What the Guidelines layer tells the application: requests to answer,
//! calls and transactions that ended, properties set from the bus. The
//! endpoint nests them in its event as `Event::Rpc`, `Event::Txn` and
//! `Event::Property`.

use crate::wire::{Address, Value};

use super::{CallId, Meta, OpenTxnId, Outcome, RequestId, RpcType, TxnId, TxnOutcome};

/// A request for an operation this entity serves; answer it with the
/// endpoint's `rpc().reply(now, id, …)`, at once or later.
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

/// A transaction request for an operation this entity serves as a
/// transaction. Answer it with the endpoint's `transactions().ack(…)`; after
/// a commit, finish it with `transactions().complete(…)`.
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

/// Calls and serving (Guidelines §5.2).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum RpcEvent {
    /// A request for an operation this entity serves.
    Request(Request),
    /// A unicast call, or an ANYCAST call, ended.
    Returned {
        /// The call.
        call: CallId,
        /// Who answered (for an anycast that found no volunteer: the group).
        callee: Address,
        /// How it ended.
        outcome: Outcome,
    },
    /// A MULTICAST call ended: one outcome per entity.
    GroupReturned {
        /// The call.
        call: CallId,
        /// Each entity and its outcome, ordered by address.
        results: Vec<(Address, Outcome)>,
    },
}

/// Transactions (Guidelines §5.3), on both sides.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum TxnEvent {
    /// Server side: a transaction request for an operation we serve as one.
    Request(TxnRequest),
    /// Server side: the client committed a transaction we acknowledged OK:
    /// do it, then complete it.
    Committed {
        /// The transaction.
        id: OpenTxnId,
    },
    /// Server side: the client cancelled before committing (answered
    /// `CANCELLED` already): undo what the request did.
    Cancelled {
        /// The transaction.
        id: OpenTxnId,
    },
    /// Client side: the server acknowledged our transaction OK: commit or
    /// cancel it.
    Acked {
        /// The transaction.
        txn: TxnId,
    },
    /// Client side: our transaction ended.
    Ended {
        /// The transaction.
        txn: TxnId,
        /// How.
        outcome: TxnOutcome,
    },
}

/// Properties (Guidelines §5.4).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum PropertyEvent {
    /// Another entity set one of our properties; the watchers have been told.
    Changed {
        /// The property.
        name: String,
        /// Its new value.
        value: Value,
        /// Who set it.
        by: Address,
    },
}
