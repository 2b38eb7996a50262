//! The Guidelines layer on a [`Bus`] (`mbus.md` §9): handlers that answer
//! requests on the bus's own thread, calls whose outcome goes to a closure,
//! and properties. The protocol work is the [`crate::proto::Endpoint`]'s;
//! this adds what needs closures.

use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

use crate::proto::{Event, SendError};
use crate::rpc::{
    Access, Answer, CallId, OpenTxnId, Outcome, Reply, ReplyError, Request, RequestId, RpcType,
    ServiceModel, TxnError, TxnId, TxnStatus,
};
use crate::wire::{Address, Value};

use super::Bus;

/// What a handler did with a request.
#[derive(Debug, Clone, PartialEq)]
pub enum Handled {
    /// Answer now.
    Answer(Answer),
    /// Answer later with [`Bus::reply`] (the request's `id` is the key), from
    /// this thread or through a [`crate::runtime::Handle`].
    Later,
}

impl From<Reply> for Handled {
    fn from(r: Reply) -> Handled {
        Handled::Answer(Answer::Reply(r))
    }
}

impl From<Answer> for Handled {
    fn from(a: Answer) -> Handled {
        Handled::Answer(a)
    }
}

/// A request handler (pyMbus's `addRPCCallback`).
pub type Handler = Box<dyn FnMut(&Request) -> Handled + Send>;

/// Where the outcome of a [`Bus::call_then`] goes.
type Waiter = Box<dyn FnOnce(Address, Outcome) + Send>;

/// The closures of one bus.
#[derive(Default)]
pub(super) struct Closures {
    handlers: HashMap<String, Handler>,
    waiters: HashMap<CallId, Waiter>,
}

impl std::fmt::Debug for Closures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Closures")
            .field("handlers", &self.handlers.keys().collect::<Vec<_>>())
            .field("waiters", &self.waiters.len())
            .finish()
    }
}

/// The text of a panic payload.
fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "the handler panicked".to_owned())
}

impl Bus {
    /// Serves RPC `name` with `handler`, run on the thread that drives this
    /// bus (inside [`Bus::poll_event`]). A handler that panics does not take
    /// the bus down: the caller gets `FAILED HANDLER_PANICKED` with the panic
    /// message. Returns that cannot be encoded become `FAILED BAD_RETURN`.
    pub fn serve(&mut self, name: &str, handler: impl FnMut(&Request) -> Handled + Send + 'static) {
        self.endpoint.serve(name);
        self.closures
            .handlers
            .insert(name.to_owned(), Box::new(handler));
    }

    /// Serves RPC `name` through events: requests arrive as
    /// [`Event::Request`] from [`Bus::poll_event`]; answer with [`Bus::reply`].
    pub fn serve_events(&mut self, name: &str) {
        self.closures.handlers.remove(name);
        self.endpoint.serve(name);
    }

    /// Stops serving `name` (unicast calls then get `UNKNOWN`).
    pub fn unserve(&mut self, name: &str) {
        self.closures.handlers.remove(name);
        self.endpoint.unserve(name);
    }

    /// See [`crate::proto::Endpoint::serve_all`].
    pub fn serve_all(&mut self, on: bool) {
        self.endpoint.serve_all(on);
    }

    /// Answers a request that arrived as [`Event::Request`] or that a handler
    /// deferred (see [`crate::proto::Endpoint::reply`]), and sends it.
    pub fn reply(&mut self, id: RequestId, answer: impl Into<Answer>) -> Result<(), ReplyError> {
        let r = self.endpoint.reply(Instant::now(), id, answer);
        self.flush_logged();
        r
    }

    /// Calls `name` at the one entity `dst` designates; the outcome arrives as
    /// [`Event::Returned`] (see [`crate::proto::Endpoint::call`]).
    pub fn call(
        &mut self,
        dst: &Address,
        name: &str,
        args: Vec<Value>,
        timeout: Duration,
    ) -> Result<CallId, SendError> {
        let id = self
            .endpoint
            .call(Instant::now(), dst, name, args, timeout)?;
        self.flush_logged();
        Ok(id)
    }

    /// [`Bus::call`], with the outcome handed to `done` (on the thread that
    /// drives the bus) instead of an event.
    pub fn call_then(
        &mut self,
        dst: &Address,
        name: &str,
        args: Vec<Value>,
        timeout: Duration,
        done: impl FnOnce(Address, Outcome) + Send + 'static,
    ) -> Result<CallId, SendError> {
        let id = self.call(dst, name, args, timeout)?;
        self.closures.waiters.insert(id, Box::new(done));
        Ok(id)
    }

    /// An ANYCAST or MULTICAST call (see [`crate::proto::Endpoint::call_group`]).
    pub fn call_group(
        &mut self,
        dst: &Address,
        name: &str,
        args: Vec<Value>,
        rpc_type: RpcType,
        timeout: Duration,
    ) -> Result<CallId, SendError> {
        let id = self
            .endpoint
            .call_group(Instant::now(), dst, name, args, rpc_type, timeout)?;
        self.flush_logged();
        Ok(id)
    }

    /// Offers a property (see [`crate::proto::Endpoint::define_property`]).
    pub fn define_property(&mut self, name: &str, value: Value, access: Access) {
        self.endpoint.define_property(name, value, access);
    }

    /// Changes a property and tells its watchers; false if there is none.
    pub fn set_property(&mut self, name: &str, value: Value) -> bool {
        let found = self.endpoint.set_property(Instant::now(), name, value);
        self.flush_logged();
        found
    }

    /// A property's current value.
    pub fn property(&self, name: &str) -> Option<&Value> {
        self.endpoint.property(name)
    }

    /// Offers a service (see [`crate::proto::Endpoint::define_service`]).
    pub fn define_service(&mut self, prefix: &str, default_target: Address, model: ServiceModel) {
        self.endpoint.define_service(prefix, default_target, model);
    }

    /// Sends an event notification (see [`crate::proto::Endpoint::notify`]).
    pub fn notify(&mut self, name: &str, args: Vec<Value>) -> Result<usize, SendError> {
        let n = self.endpoint.notify(Instant::now(), name, args)?;
        self.flush_logged();
        Ok(n)
    }

    /// Serves `name` as a transaction (see
    /// [`crate::proto::Endpoint::serve_transaction`]).
    pub fn serve_transaction(&mut self, name: &str) {
        self.endpoint.serve_transaction(name);
    }

    /// Starts a transaction (see [`crate::proto::Endpoint::begin_transaction`]).
    pub fn begin_transaction(
        &mut self,
        dst: &Address,
        name: &str,
        args: Vec<Value>,
        timeout: Duration,
    ) -> Result<TxnId, SendError> {
        let id = self
            .endpoint
            .begin_transaction(Instant::now(), dst, name, args, timeout)?;
        self.flush_logged();
        Ok(id)
    }

    /// Commits a transaction the server acknowledged OK.
    pub fn commit(&mut self, txn: TxnId) -> Result<(), TxnError> {
        let r = self.endpoint.commit(Instant::now(), txn);
        self.flush_logged();
        r
    }

    /// Cancels a transaction before its commit.
    pub fn cancel(&mut self, txn: TxnId) -> Result<(), TxnError> {
        let r = self.endpoint.cancel(Instant::now(), txn);
        self.flush_logged();
        r
    }

    /// Answers a transaction request (see [`crate::proto::Endpoint::txn_ack`]).
    pub fn txn_ack(&mut self, id: OpenTxnId, status: TxnStatus) -> Result<(), TxnError> {
        let r = self.endpoint.txn_ack(Instant::now(), id, status);
        self.flush_logged();
        r
    }

    /// Finishes a committed transaction (see
    /// [`crate::proto::Endpoint::txn_complete`]).
    pub fn txn_complete(&mut self, id: OpenTxnId, status: TxnStatus) -> Result<(), TxnError> {
        let r = self.endpoint.txn_complete(Instant::now(), id, status);
        self.flush_logged();
        r
    }

    /// Runs the closures an event is for; returns the event if none took it.
    pub(super) fn take_by_closures(&mut self, event: Event) -> Option<Event> {
        match event {
            Event::Request(req) if self.closures.handlers.contains_key(&req.name) => {
                let handler = self.closures.handlers.get_mut(&req.name)?;
                let handled =
                    catch_unwind(AssertUnwindSafe(|| handler(&req))).unwrap_or_else(|payload| {
                        let text = panic_text(payload.as_ref());
                        tracing::error!(op = %req.name, "RPC handler panicked: {text}");
                        Reply::failed("HANDLER_PANICKED", &text).into()
                    });
                if let Handled::Answer(answer) = handled {
                    let now = Instant::now();
                    if let Err(ReplyError::Send(e)) = self.endpoint.reply(now, req.id, answer) {
                        let fallback = Reply::failed("BAD_RETURN", &e.to_string());
                        let _ = self.endpoint.reply(now, req.id, fallback);
                    }
                }
                None
            }
            Event::Returned {
                call,
                callee,
                outcome,
            } => match self.closures.waiters.remove(&call) {
                Some(done) => {
                    done(callee, outcome);
                    None
                }
                None => Some(Event::Returned {
                    call,
                    callee,
                    outcome,
                }),
            },
            other => Some(other),
        }
    }
}
