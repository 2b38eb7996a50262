//! The Guidelines layer (draft-ietf-mmusic-mbus-guidelines-00) as sub-state
//! machines of the endpoint: calls ([`calls`]) and serving ([`serving`]),
//! properties, transactions and services.
//!
//! Each owns its state and its logic, and reaches the transport only through
//! [`Ctx`]: send reliably or not, push an event, look up a peer, count. The
//! endpoint's dispatch table hands them the commands they take; the
//! transport's outcomes for the reliable messages they sent come back as
//! settled notices; peers leaving, the endpoint closing and their timers are
//! fanned out here. The application reaches them through the views
//! [`Rpc`], [`Properties`], [`Transactions`] and [`Services`], which the
//! endpoint hands out (the shape of quinn-proto's `streams()`).

mod calls;
mod ctx;
mod error;
mod properties;
mod services;
mod serving;
mod transactions;

use std::time::Instant;

use crate::rpc::cmd::RpcReturn;
use crate::rpc::Answer;
use crate::wire::Address;

use super::transport::{Owner, Settled, Transport};

pub(crate) use calls::Calls;
pub(crate) use ctx::Ctx;
pub use error::{CallError, NotifyError, ReplyError, TxnError};
pub use properties::Properties;
pub(crate) use properties::PropertyTable;
pub(crate) use services::ServiceTable;
pub use services::Services;
pub(crate) use serving::Serving;
pub use transactions::Transactions;
pub(crate) use transactions::TxnTable;

/// The Guidelines state of one endpoint.
#[derive(Debug, Default)]
pub(crate) struct Guidelines {
    pub(crate) calls: Calls,
    pub(crate) serving: Serving,
    pub(crate) properties: PropertyTable,
    pub(crate) transactions: TxnTable,
    pub(crate) services: ServiceTable,
}

/// The application's handle on calls and serving (`Endpoint::rpc`).
pub struct Rpc<'a> {
    pub(super) calls: &'a mut Calls,
    pub(super) serving: &'a mut Serving,
    pub(super) transport: &'a mut Transport,
}

impl Guidelines {
    /// The calls and serving view.
    pub(crate) fn rpc<'a>(&'a mut self, transport: &'a mut Transport) -> Rpc<'a> {
        Rpc {
            calls: &mut self.calls,
            serving: &mut self.serving,
            transport,
        }
    }

    /// The properties view.
    pub(crate) fn properties<'a>(&'a mut self, transport: &'a mut Transport) -> Properties<'a> {
        Properties {
            table: &mut self.properties,
            transport,
        }
    }

    /// The transactions view.
    pub(crate) fn transactions<'a>(&'a mut self, transport: &'a mut Transport) -> Transactions<'a> {
        Transactions {
            table: &mut self.transactions,
            transport,
        }
    }

    /// The services view.
    pub(crate) fn services<'a>(&'a mut self, transport: &'a mut Transport) -> Services<'a> {
        Services {
            table: &mut self.services,
            transport,
        }
    }

    /// A reliable message sent by one of the sub-machines settled.
    pub(crate) fn settled(&mut self, ctx: &mut Ctx<'_>, s: Settled) {
        match s.owner {
            Owner::Quiet => {}
            Owner::Call(call) => self.calls.settled(ctx, call, s.delivered),
            Owner::Txn(txn) => self.transactions.settled(ctx, txn, s.delivered),
        }
    }

    /// `addr` left the bus.
    pub(crate) fn peer_left(&mut self, ctx: &mut Ctx<'_>, addr: &Address) {
        self.transactions.peer_left(ctx, addr);
        self.services.peer_left(addr);
        self.properties.peer_left(addr);
        self.calls.peer_left(ctx, addr);
    }

    /// True if something is open with `addr`: a call to it, a request of
    /// its not yet answered, a transaction either way, a watch of one of our
    /// properties or a registration with one of our services. A full entity
    /// table does not evict such an entity.
    pub(crate) fn engaged_with(&self, addr: &Address) -> bool {
        self.calls.engaged_with(addr)
            || self.serving.engaged_with(addr)
            || self.transactions.engaged_with(addr)
            || self.properties.engaged_with(addr)
            || self.services.engaged_with(addr)
    }

    /// True if anything is open with any entity (see
    /// [`Guidelines::engaged_with`]), or a call waits for its callee to
    /// appear: such an endpoint follows the entity table's changes.
    pub(crate) fn any_open(&self) -> bool {
        self.calls.any_open()
            || self.serving.any_open()
            || self.transactions.any_open()
            || self.properties.any_open()
            || self.services.any_open()
    }

    /// The endpoint closes: every call and client transaction still open ends.
    pub(crate) fn close(&mut self, ctx: &mut Ctx<'_>) {
        self.calls.close(ctx);
        self.transactions.close(ctx);
    }

    /// Timers due at `ctx.now`.
    pub(crate) fn handle_timeout(&mut self, ctx: &mut Ctx<'_>) {
        self.transactions.handle_timeout(ctx);
        self.calls.handle_timeout(ctx);
    }

    /// When the next Guidelines timer is due.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        [
            self.calls.next_deadline(),
            self.transactions.next_deadline(),
        ]
        .into_iter()
        .flatten()
        .min()
    }
}

/// Answers request `rpc_id` for operation `op` from `to` with `answer`,
/// reliably if `reliable` (and `to` is known); the return's delivery is
/// nobody's business.
pub(crate) fn answer(
    ctx: &mut Ctx<'_>,
    to: &Address,
    op: &str,
    rpc_id: &str,
    answer: Answer,
    reliable: bool,
) {
    let ret = RpcReturn {
        op: op.to_owned(),
        rpc_id: rpc_id.to_owned(),
        answer,
    };
    let _ = ctx.send_quietly(to, ret.into_command(), reliable);
}
