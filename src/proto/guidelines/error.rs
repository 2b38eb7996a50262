//! Why a step of the Guidelines layer was not taken. Each wraps the
//! transport's [`SendError`] where sending is what failed.

use crate::rpc::{RequestId, RpcType};

use super::super::SendError;

/// Why a call was not made (`Endpoint::rpc().call…`). Nothing was sent.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum CallError {
    /// The request could not be sent.
    #[error(transparent)]
    Send(#[from] SendError),
    /// `call_group` takes ANYCAST or MULTICAST only.
    #[error("{} is not a group RPC type this endpoint can call", .0.as_str())]
    UnsupportedRpcType(RpcType),
}

/// Why an answer was not sent (`Endpoint::rpc().reply`).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ReplyError {
    /// The request was answered already, or never existed (or was dropped
    /// because too many requests were open).
    #[error("no open request {0:?}")]
    NoSuchRequest(RequestId),
    /// The return could not be encoded or sent; the request stays open.
    #[error(transparent)]
    Send(#[from] SendError),
}

/// Why a transaction step was not taken (`Endpoint::transactions()`).
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
    Send(#[from] SendError),
}

/// Why an event notification was not sent (`Endpoint::services().notify`).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum NotifyError {
    /// The name is under no service this entity offers.
    #[error("{0} is under no service this entity offers")]
    NoSuchService(String),
    /// Sending failed.
    #[error(transparent)]
    Send(#[from] SendError),
}
