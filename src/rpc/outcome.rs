//! How a call or a transaction ended, as its caller sees it.

use super::Reply;
use super::TxnStatus;

/// The outcome of one call, for one callee.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Outcome {
    /// The callee returned (`RPC-STATUS OK`); the reply says whether the
    /// procedure succeeded.
    Returned(Reply),
    /// `RPC-STATUS UNKNOWN`: the callee has no such operation.
    Unknown,
    /// The reliable request was never acknowledged: the transport gave up
    /// on it, or the call's timeout came while it was unacknowledged. It may
    /// still have arrived (its acks may have been lost).
    Undeliverable,
    /// No return within the call's timeout (for a unicast call: after its
    /// request was acknowledged).
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
    /// `timeout`, `callee_left`, `no_responder`, `closed`.
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

/// How a transaction ended for its client (Guidelines §5.3).
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
