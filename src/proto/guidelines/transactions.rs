//! Transactions (Guidelines §5.3): request, `.ack`, `.commit` or `.cancel`,
//! `.completed`; unicast and reliable only, on both sides. A cancel after a
//! commit is not honoured.

use crate::proto::maps::{HashMap, HashSet};
use std::time::{Duration, Instant};

use crate::rpc::cmd::{ControlVerb, ReplyVerb, TxnBegin, TxnControl, TxnReply};
use crate::rpc::{OpenTxnId, TxnEvent, TxnId, TxnOutcome, TxnRequest, TxnStatus};
use crate::wire::{Address, Command, Value};

use super::super::deadlines::Deadlines;
use super::super::transport::{Owner, Transport};
use super::super::Delivery;
use super::{Ctx, TxnError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ClientState {
    AwaitAck,
    Acked,
    AwaitCompleted,
}

#[derive(Debug)]
struct ClientTxn {
    server: Address,
    name: String,
    state: ClientState,
    timeout: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ServerState {
    Received,
    Acked,
    Committed,
}

#[derive(Debug)]
struct ServerTxn {
    client: Address,
    name: String,
    tid: String,
    state: ServerState,
}

/// The transactions of one endpoint, as client and as server.
#[derive(Debug, Default)]
pub(crate) struct TxnTable {
    served: HashSet<String>,
    next: u64,
    client: HashMap<u64, ClientTxn>,
    /// Each client transaction's wait for the server, while one runs.
    timers: Deadlines<u64>,
    next_open: u64,
    server: HashMap<u64, ServerTxn>,
}

/// The application's handle on the endpoint's transactions
/// (`Endpoint::transactions`).
pub struct Transactions<'a> {
    pub(super) table: &'a mut TxnTable,
    pub(super) transport: &'a mut Transport,
}

impl Transactions<'_> {
    /// Serves `name` as a transaction: requests arrive as
    /// [`TxnEvent::Request`], commits as [`TxnEvent::Committed`]; cancels
    /// before a commit are answered `.completed CANCELLED` here and reported
    /// as [`TxnEvent::Cancelled`].
    pub fn serve(&mut self, name: &str) {
        self.table.served.insert(name.to_owned());
    }

    /// Starts transaction `name` with `args` at the one entity `dst`
    /// designates. Its `.ack` comes as [`TxnEvent::Acked`] (OK) or ends it
    /// ([`TxnOutcome::Refused`]); then [`Transactions::commit`] or
    /// [`Transactions::cancel`]. Each wait for the server lasts at most
    /// `timeout`.
    pub fn begin(
        &mut self,
        now: Instant,
        dst: &Address,
        name: &str,
        args: Vec<Value>,
        timeout: Duration,
    ) -> Result<TxnId, super::super::SendError> {
        let mut ctx = Ctx::new(self.transport, now);
        let t = &mut *self.table;
        let server = ctx.unique_match(dst)?;
        let id = t.next;
        let begin = TxnBegin {
            name: name.to_owned(),
            tid: id.to_string(),
            args,
        };
        ctx.send_owned(&server, begin.into_command(), Owner::Txn(TxnId(id)))?;
        t.next += 1;
        t.client.insert(
            id,
            ClientTxn {
                server,
                name: name.to_owned(),
                state: ClientState::AwaitAck,
                timeout,
            },
        );
        t.timers.set(id, now + timeout);
        Ok(TxnId(id))
    }

    /// Commits a transaction the server acknowledged OK.
    pub fn commit(&mut self, now: Instant, txn: TxnId) -> Result<(), TxnError> {
        self.control(now, txn, ControlVerb::Commit)
    }

    /// Cancels a transaction before its commit.
    pub fn cancel(&mut self, now: Instant, txn: TxnId) -> Result<(), TxnError> {
        self.control(now, txn, ControlVerb::Cancel)
    }

    /// Answers a transaction request with `.ack`; anything but OK ends it.
    pub fn ack(&mut self, now: Instant, id: OpenTxnId, status: TxnStatus) -> Result<(), TxnError> {
        let from = (ServerState::Received, "acknowledged already");
        let ends = status != TxnStatus::Ok;
        self.server_reply(now, id, from, ReplyVerb::Ack, status, ends)
    }

    /// Finishes a committed transaction with `.completed`.
    pub fn complete(
        &mut self,
        now: Instant,
        id: OpenTxnId,
        status: TxnStatus,
    ) -> Result<(), TxnError> {
        let from = (ServerState::Committed, "not committed");
        self.server_reply(now, id, from, ReplyVerb::Completed, status, true)
    }

    /// Transactions this entity serves that have not finished.
    pub fn open(&self) -> usize {
        self.table.server.len()
    }

    fn control(&mut self, now: Instant, txn: TxnId, verb: ControlVerb) -> Result<(), TxnError> {
        let t = self
            .table
            .client
            .get(&txn.0)
            .ok_or(TxnError::NoSuchTransaction)?;
        match (verb, t.state) {
            (ControlVerb::Commit, ClientState::Acked) => {}
            (ControlVerb::Commit, _) => {
                return Err(TxnError::WrongState("not acknowledged OK yet"))
            }
            (ControlVerb::Cancel, ClientState::AwaitCompleted) => {
                return Err(TxnError::WrongState("committed or cancelled already"))
            }
            _ => {}
        }
        let (server, timeout) = (t.server.clone(), t.timeout);
        let control = TxnControl {
            name: t.name.clone(),
            verb,
            tid: txn.0.to_string(),
        };
        Ctx::new(self.transport, now).send_owned(
            &server,
            control.into_command(),
            Owner::Txn(txn),
        )?;
        if let Some(t) = self.table.client.get_mut(&txn.0) {
            t.state = ClientState::AwaitCompleted;
        }
        self.table.timers.set(txn.0, now + timeout);
        Ok(())
    }

    /// Sends `<name>.<verb> ("tid" status)` for a served transaction that is
    /// in state `from.0` (else the error says `from.1`); it moves to Acked,
    /// or ends.
    fn server_reply(
        &mut self,
        now: Instant,
        id: OpenTxnId,
        from: (ServerState, &'static str),
        verb: ReplyVerb,
        status: TxnStatus,
        ends: bool,
    ) -> Result<(), TxnError> {
        let t = self
            .table
            .server
            .get_mut(&id.0)
            .ok_or(TxnError::NoSuchTransaction)?;
        if t.state != from.0 {
            return Err(TxnError::WrongState(from.1));
        }
        t.state = ServerState::Acked;
        let client = t.client.clone();
        let reply = TxnReply {
            name: t.name.clone(),
            verb,
            tid: t.tid.clone(),
            status,
        };
        if ends {
            self.table.server.remove(&id.0);
        }
        send_reply(
            &mut Ctx::new(self.transport, now),
            &client,
            reply.into_command(),
        )
    }
}

/// Sends a server's `.ack` or `.completed`: reliably to a known client.
fn send_reply(ctx: &mut Ctx<'_>, client: &Address, cmd: Command) -> Result<(), TxnError> {
    if ctx.is_known(client) {
        ctx.send_owned(client, cmd, Owner::Quiet)?;
    } else {
        ctx.send(client, cmd, Delivery::Unreliable)?;
    }
    Ok(())
}

impl TxnTable {
    /// True if `name` is served as a transaction.
    pub(crate) fn serves(&self, name: &str) -> bool {
        self.served.contains(name)
    }

    /// True if `reply` answers a transaction of ours (other commands may
    /// share its name and shape).
    pub(crate) fn is_ours(&self, reply: &TxnReply) -> bool {
        reply
            .tid
            .parse::<u64>()
            .is_ok_and(|id| self.client.contains_key(&id))
    }

    /// When the next client wait ends.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.timers.next()
    }

    /// A request for a served transaction, from `src`.
    pub(crate) fn on_begin(&mut self, ctx: &mut Ctx<'_>, src: &Address, begin: TxnBegin) {
        let duplicate = self
            .server
            .values()
            .any(|t| t.client == *src && t.name == begin.name && t.tid == begin.tid);
        if duplicate {
            return;
        }
        let id = self.next_open;
        self.next_open += 1;
        self.server.insert(
            id,
            ServerTxn {
                client: src.clone(),
                name: begin.name.clone(),
                tid: begin.tid.clone(),
                state: ServerState::Received,
            },
        );
        ctx.push(TxnEvent::Request(TxnRequest {
            id: OpenTxnId(id),
            tid: begin.tid,
            src: src.clone(),
            name: begin.name,
            args: begin.args,
        }));
    }

    /// Refuses a served transaction request from `src` with `.ack FAILED`.
    pub(crate) fn refuse(ctx: &mut Ctx<'_>, src: &Address, begin: TxnBegin) {
        let ack = TxnReply {
            name: begin.name,
            verb: ReplyVerb::Ack,
            tid: begin.tid,
            status: TxnStatus::Failed,
        };
        let _ = send_reply(ctx, src, ack.into_command());
    }

    /// The server's `.ack` or `.completed` for one of our transactions.
    pub(crate) fn on_reply(&mut self, ctx: &mut Ctx<'_>, src: &Address, reply: TxnReply) {
        let Ok(id) = reply.tid.parse::<u64>() else {
            return;
        };
        let Some(t) = self.client.get_mut(&id) else {
            return;
        };
        if t.server != *src || t.name != reply.name {
            ctx.stats().rpc_stray += 1;
            return;
        }
        match (reply.verb, t.state) {
            (ReplyVerb::Ack, ClientState::AwaitAck) if reply.status == TxnStatus::Ok => {
                t.state = ClientState::Acked;
                self.timers.remove(&id);
                ctx.push(TxnEvent::Acked { txn: TxnId(id) });
            }
            (ReplyVerb::Ack, ClientState::AwaitAck) => {
                self.end(ctx, id, TxnOutcome::Refused(reply.status))
            }
            (ReplyVerb::Completed, _) => self.end(ctx, id, TxnOutcome::Completed(reply.status)),
            _ => ctx.stats().rpc_stray += 1,
        }
    }

    /// The client's commit or cancel of a transaction we serve.
    pub(crate) fn on_control(&mut self, ctx: &mut Ctx<'_>, src: &Address, control: TxnControl) {
        let found = self
            .server
            .iter()
            .find(|(_, t)| t.client == *src && t.name == control.name && t.tid == control.tid)
            .map(|(id, t)| (*id, t.state));
        let Some((id, state)) = found else {
            // Unknown, or finished: a cancel after the commit completed.
            ctx.stats().txn_refused += 1;
            return;
        };
        match (control.verb, state) {
            (ControlVerb::Commit, ServerState::Acked) => {
                if let Some(t) = self.server.get_mut(&id) {
                    t.state = ServerState::Committed;
                }
                ctx.push(TxnEvent::Committed { id: OpenTxnId(id) });
            }
            (ControlVerb::Cancel, ServerState::Received | ServerState::Acked) => {
                self.server.remove(&id);
                let done = TxnReply {
                    name: control.name,
                    verb: ReplyVerb::Completed,
                    tid: control.tid,
                    status: TxnStatus::Cancelled,
                };
                let _ = send_reply(ctx, src, done.into_command());
                ctx.push(TxnEvent::Cancelled { id: OpenTxnId(id) });
            }
            // A cancel after the commit, or a commit out of turn.
            _ => ctx.stats().txn_refused += 1,
        }
    }

    /// A reliable message of client transaction `txn` settled.
    pub(crate) fn settled(&mut self, ctx: &mut Ctx<'_>, txn: TxnId, delivered: bool) {
        if !delivered {
            self.end(ctx, txn.0, TxnOutcome::Undeliverable);
        }
    }

    /// `addr` left: its transactions end, on both sides.
    pub(crate) fn peer_left(&mut self, ctx: &mut Ctx<'_>, addr: &Address) {
        let mut ended: Vec<u64> = self
            .client
            .iter()
            .filter(|(_, t)| t.server == *addr)
            .map(|(id, _)| *id)
            .collect();
        ended.sort_unstable();
        for id in ended {
            self.end(ctx, id, TxnOutcome::ServerLeft);
        }
        self.server.retain(|_, t| t.client != *addr);
    }

    /// True if a transaction with `addr` is open, as client or as server.
    pub(crate) fn engaged_with(&self, addr: &Address) -> bool {
        self.client.values().any(|t| t.server == *addr)
            || self.server.values().any(|t| t.client == *addr)
    }

    /// True if any transaction is open, either way.
    pub(crate) fn any_open(&self) -> bool {
        !self.client.is_empty() || !self.server.is_empty()
    }

    /// The endpoint closes: our transactions end ([`TxnOutcome::Closed`]).
    pub(crate) fn close(&mut self, ctx: &mut Ctx<'_>) {
        let mut open: Vec<u64> = self.client.keys().copied().collect();
        open.sort_unstable();
        for id in open {
            self.end(ctx, id, TxnOutcome::Closed);
        }
    }

    /// Client waits that ran out at `ctx.now`.
    pub(crate) fn handle_timeout(&mut self, ctx: &mut Ctx<'_>) {
        for id in self.timers.take_due(ctx.now) {
            self.end(ctx, id, TxnOutcome::TimedOut);
        }
    }

    fn end(&mut self, ctx: &mut Ctx<'_>, id: u64, outcome: TxnOutcome) {
        if self.client.remove(&id).is_some() {
            self.timers.remove(&id);
            ctx.push(TxnEvent::Ended {
                txn: TxnId(id),
                outcome,
            });
        }
    }
}
