//! Transactions (Guidelines §5.3; `mbus.md` §9.4) in the [`Endpoint`]:
//! request, `.ack`, `.commit` or `.cancel`, `.completed`. Unicast and
//! reliable only. A cancel after a commit is not honoured.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::time::{Duration, Instant};

use crate::rpc::{
    parse_request, read_transaction_control, read_transaction_reply, transaction_command,
    transaction_control, transaction_reply, OpenTxnId, TxnError, TxnId, TxnOutcome, TxnRequest,
    TxnStatus,
};
use crate::wire::{Address, Command, Value};

use super::{Delivery, Endpoint, Event, MsgId};

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
    /// Its key in `Txns::timers`, while one runs.
    next: Option<Instant>,
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

/// The transaction state of one endpoint.
#[derive(Debug, Default)]
pub(super) struct Txns {
    served: HashSet<String>,
    next: u64,
    client: HashMap<u64, ClientTxn>,
    timers: BTreeSet<(Instant, u64)>,
    /// Reliable messages of client transactions, to their transaction.
    owners: HashMap<MsgId, u64>,
    next_open: u64,
    server: HashMap<u64, ServerTxn>,
}

impl Txns {
    pub(super) fn next_deadline(&self) -> Option<Instant> {
        self.timers.first().map(|(t, _)| *t)
    }
}

impl Endpoint {
    /// Serves `name` as a transaction: requests arrive as
    /// [`Event::Transaction`], commits as [`Event::TransactionCommit`];
    /// cancels before a commit are answered `.completed CANCELLED` here and
    /// reported as [`Event::TransactionCancelled`].
    pub fn serve_transaction(&mut self, name: &str) {
        self.txns.served.insert(name.to_owned());
    }

    /// Starts transaction `name` with `args` at the one entity `dst`
    /// designates. Its `.ack` comes as [`Event::TransactionAcked`] (OK) or ends
    /// it ([`TxnOutcome::Refused`]); then [`Endpoint::commit`] or
    /// [`Endpoint::cancel`]. Each wait for the server lasts at most `timeout`.
    pub fn begin_transaction(
        &mut self,
        now: Instant,
        dst: &Address,
        name: &str,
        args: Vec<Value>,
        timeout: Duration,
    ) -> Result<TxnId, super::SendError> {
        let server = self.unique_match(dst)?;
        let id = self.txns.next;
        let cmd = transaction_command(name, &id.to_string(), args);
        let msg = self.send(now, &server, vec![cmd], Delivery::Reliable)?;
        self.txns.next += 1;
        self.txns.owners.insert(msg, id);
        self.txns.client.insert(
            id,
            ClientTxn {
                server,
                name: name.to_owned(),
                state: ClientState::AwaitAck,
                timeout,
                next: None,
            },
        );
        self.arm_txn(id, now + timeout);
        Ok(TxnId(id))
    }

    /// Commits a transaction the server acknowledged OK.
    pub fn commit(&mut self, now: Instant, txn: TxnId) -> Result<(), TxnError> {
        self.txn_control(now, txn, "commit")
    }

    /// Cancels a transaction before its commit.
    pub fn cancel(&mut self, now: Instant, txn: TxnId) -> Result<(), TxnError> {
        self.txn_control(now, txn, "cancel")
    }

    /// Answers a transaction request with `.ack`; anything but OK ends it.
    pub fn txn_ack(
        &mut self,
        now: Instant,
        id: OpenTxnId,
        status: TxnStatus,
    ) -> Result<(), TxnError> {
        let (from, why) = (ServerState::Received, "acknowledged already");
        let ends = status != TxnStatus::Ok;
        self.server_reply(now, id, (from, why), "ack", status, ends)
    }

    /// Finishes a committed transaction with `.completed`.
    pub fn txn_complete(
        &mut self,
        now: Instant,
        id: OpenTxnId,
        status: TxnStatus,
    ) -> Result<(), TxnError> {
        let from = (ServerState::Committed, "not committed");
        self.server_reply(now, id, from, "completed", status, true)
    }

    /// Transactions this entity serves that have not finished.
    pub fn open_transactions(&self) -> usize {
        self.txns.server.len()
    }

    // ---- hooks ----------------------------------------------------------------------

    /// Takes the transaction messages among the commands that reach the
    /// Guidelines layer; returns the others.
    pub(super) fn transactions_dispatch(
        &mut self,
        now: Instant,
        src: &Address,
        reliable: bool,
        command: Command,
    ) -> Option<Command> {
        if let Some((op, verb)) = command.name.rsplit_once('.') {
            match verb {
                "ack" | "completed" => {
                    // Only for a transaction of ours: other commands may
                    // share the name and shape.
                    let ours = read_transaction_reply(&command.args)
                        .and_then(|(tid, status)| Some((tid.parse::<u64>().ok()?, status)))
                        .filter(|(id, _)| self.txns.client.contains_key(id));
                    if let Some((id, status)) = ours {
                        self.on_transaction_reply(src, op, verb, id, status);
                        return None;
                    }
                }
                "commit" | "cancel" if self.txns.served.contains(op) => {
                    if let Some(tid) = read_transaction_control(&command.args) {
                        self.on_transaction_control(now, src, op, verb, tid);
                        return None;
                    }
                }
                _ => {}
            }
        }
        if !self.txns.served.contains(&command.name) {
            return Some(command);
        }
        let Ok(req) = parse_request(&command) else {
            self.stats.rpc_malformed += 1;
            return None;
        };
        if !reliable {
            // Transactions MUST be reliable (Guidelines §5.3).
            self.stats.rpc_malformed += 1;
            return None;
        }
        if !self.allowed(src, &command.name) {
            self.stats.denied += 1;
            let ack = transaction_reply(&command.name, "ack", &req.rpc_id, TxnStatus::Failed);
            let _ = self.send_transaction_reply(now, src, ack);
            return None;
        }
        let duplicate = self
            .txns
            .server
            .values()
            .any(|t| t.client == *src && t.name == command.name && t.tid == req.rpc_id);
        if duplicate {
            return None;
        }
        let id = self.txns.next_open;
        self.txns.next_open += 1;
        self.txns.server.insert(
            id,
            ServerTxn {
                client: src.clone(),
                name: command.name.clone(),
                tid: req.rpc_id.clone(),
                state: ServerState::Received,
            },
        );
        self.push_event(Event::Transaction(TxnRequest {
            id: OpenTxnId(id),
            tid: req.rpc_id,
            src: src.clone(),
            name: command.name,
            args: req.args,
        }));
        None
    }

    /// A reliable message of a client transaction settled; true if it was one.
    pub(super) fn transactions_settled(&mut self, msg: MsgId, delivered: bool) -> bool {
        let Some(id) = self.txns.owners.remove(&msg) else {
            return false;
        };
        if !delivered {
            self.end_txn(id, TxnOutcome::Undeliverable);
        }
        true
    }

    /// `addr` left: its transactions end, on both sides.
    pub(super) fn transactions_peer_left(&mut self, addr: &Address) {
        let ended: Vec<u64> = self
            .txns
            .client
            .iter()
            .filter(|(_, t)| t.server == *addr)
            .map(|(id, _)| *id)
            .collect();
        for id in ended {
            self.end_txn(id, TxnOutcome::ServerLeft);
        }
        self.txns.server.retain(|_, t| t.client != *addr);
    }

    /// The endpoint closes: our transactions end ([`TxnOutcome::Closed`]).
    pub(super) fn transactions_close(&mut self) {
        let open: Vec<u64> = self.txns.client.keys().copied().collect();
        for id in open {
            self.end_txn(id, TxnOutcome::Closed);
        }
    }

    pub(super) fn transactions_timeout(&mut self, now: Instant) {
        while let Some(&(at, id)) = self.txns.timers.first() {
            if at > now {
                break;
            }
            self.txns.timers.pop_first();
            if self
                .txns
                .client
                .get(&id)
                .is_some_and(|t| t.next == Some(at))
            {
                self.end_txn(id, TxnOutcome::TimedOut);
            }
        }
    }

    // ---- internals ------------------------------------------------------------------

    fn arm_txn(&mut self, id: u64, at: Instant) {
        if let Some(t) = self.txns.client.get_mut(&id) {
            if let Some(old) = t.next.replace(at) {
                self.txns.timers.remove(&(old, id));
            }
            self.txns.timers.insert((at, id));
        }
    }

    fn end_txn(&mut self, id: u64, outcome: TxnOutcome) {
        if let Some(t) = self.txns.client.remove(&id) {
            if let Some(at) = t.next {
                self.txns.timers.remove(&(at, id));
            }
            self.push_event(Event::TransactionEnded {
                txn: TxnId(id),
                outcome,
            });
        }
    }

    fn txn_control(&mut self, now: Instant, txn: TxnId, verb: &str) -> Result<(), TxnError> {
        let t = self
            .txns
            .client
            .get(&txn.0)
            .ok_or(TxnError::NoSuchTransaction)?;
        match (verb, t.state) {
            ("commit", ClientState::Acked) => {}
            ("commit", _) => return Err(TxnError::WrongState("not acknowledged OK yet")),
            ("cancel", ClientState::AwaitCompleted) => {
                return Err(TxnError::WrongState("committed or cancelled already"))
            }
            _ => {}
        }
        let (server, timeout) = (t.server.clone(), t.timeout);
        let cmd = transaction_control(&t.name, verb, &txn.0.to_string());
        let msg = self.send(now, &server, vec![cmd], Delivery::Reliable)?;
        self.txns.owners.insert(msg, txn.0);
        if let Some(t) = self.txns.client.get_mut(&txn.0) {
            t.state = ClientState::AwaitCompleted;
        }
        self.arm_txn(txn.0, now + timeout);
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
        verb: &str,
        status: TxnStatus,
        ends: bool,
    ) -> Result<(), TxnError> {
        let t = self
            .txns
            .server
            .get_mut(&id.0)
            .ok_or(TxnError::NoSuchTransaction)?;
        if t.state != from.0 {
            return Err(TxnError::WrongState(from.1));
        }
        t.state = ServerState::Acked;
        let (client, cmd) = (
            t.client.clone(),
            transaction_reply(&t.name, verb, &t.tid, status),
        );
        if ends {
            self.txns.server.remove(&id.0);
        }
        self.send_transaction_reply(now, &client, cmd)
    }

    fn send_transaction_reply(
        &mut self,
        now: Instant,
        client: &Address,
        cmd: Command,
    ) -> Result<(), TxnError> {
        let delivery = if self.peers.contains_key(client) {
            Delivery::Reliable
        } else {
            Delivery::Unreliable
        };
        let msg = self.send(now, client, vec![cmd], delivery)?;
        if delivery == Delivery::Reliable {
            self.quiet_delivery(msg);
        }
        Ok(())
    }

    fn on_transaction_reply(
        &mut self,
        src: &Address,
        op: &str,
        verb: &str,
        id: u64,
        status: TxnStatus,
    ) {
        let Some(t) = self.txns.client.get_mut(&id) else {
            return;
        };
        if t.server != *src || t.name != op {
            self.stats.rpc_stray += 1;
            return;
        }
        match (verb, t.state) {
            ("ack", ClientState::AwaitAck) if status == TxnStatus::Ok => {
                t.state = ClientState::Acked;
                if let Some(at) = t.next.take() {
                    self.txns.timers.remove(&(at, id));
                }
                self.push_event(Event::TransactionAcked { txn: TxnId(id) });
            }
            ("ack", ClientState::AwaitAck) => self.end_txn(id, TxnOutcome::Refused(status)),
            ("completed", _) => self.end_txn(id, TxnOutcome::Completed(status)),
            _ => self.stats.rpc_stray += 1,
        }
    }

    fn on_transaction_control(
        &mut self,
        now: Instant,
        src: &Address,
        op: &str,
        verb: &str,
        tid: &str,
    ) {
        let found = self
            .txns
            .server
            .iter()
            .find(|(_, t)| t.client == *src && t.name == op && t.tid == tid)
            .map(|(id, t)| (*id, t.state));
        let Some((id, state)) = found else {
            // Unknown, or finished: a cancel after the commit completed.
            self.stats.txn_refused += 1;
            return;
        };
        match (verb, state) {
            ("commit", ServerState::Acked) => {
                if let Some(t) = self.txns.server.get_mut(&id) {
                    t.state = ServerState::Committed;
                }
                self.push_event(Event::TransactionCommit { id: OpenTxnId(id) });
            }
            ("cancel", ServerState::Received | ServerState::Acked) => {
                self.txns.server.remove(&id);
                let cmd = transaction_reply(op, "completed", tid, TxnStatus::Cancelled);
                let _ = self.send_transaction_reply(now, src, cmd);
                self.push_event(Event::TransactionCancelled { id: OpenTxnId(id) });
            }
            // A cancel after the commit, or a commit out of turn.
            _ => self.stats.txn_refused += 1,
        }
    }
}
