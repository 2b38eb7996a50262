//! What the runtime adds to an entity's Guidelines layer: request handlers
//! that answer on the thread that drives the entity, and calls whose outcome
//! goes to a closure (pyMbus's `addRPCCallback` and `sendRPC` callbacks). The
//! protocol work is the [`Endpoint`]'s; this only holds closures and runs them
//! on the events they are for.

use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Instant;

use crate::proto::{Endpoint, Event, ReplyError};
use crate::rpc::{Answer, CallId, Outcome, Reply, Request, RpcEvent};
use crate::wire::Address;

/// What a handler did with a request.
#[derive(Debug, Clone, PartialEq)]
pub enum Handled {
    /// Answer now.
    Answer(Answer),
    /// Answer later, with the endpoint's `rpc().reply(now, request.id, …)`,
    /// from this thread or through a [`crate::runtime::Handle`].
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

/// Where the outcome of a call made with `call_then` goes.
pub(super) type Waiter = Box<dyn FnOnce(Address, Outcome) + Send>;

/// The closures of one entity.
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

impl Closures {
    /// Serves `name` with `handler` (and tells the endpoint it is served).
    pub(super) fn serve(&mut self, ep: &mut Endpoint, name: &str, handler: Handler) {
        ep.rpc().serve(name);
        self.handlers.insert(name.to_owned(), handler);
    }

    /// Serves `name` through request events rather than a handler.
    pub(super) fn serve_events(&mut self, ep: &mut Endpoint, name: &str) {
        self.handlers.remove(name);
        ep.rpc().serve(name);
    }

    /// Stops serving `name`.
    pub(super) fn unserve(&mut self, ep: &mut Endpoint, name: &str) {
        self.handlers.remove(name);
        ep.rpc().unserve(name);
    }

    /// The outcome of `call` goes to `done`.
    pub(super) fn wait_for(&mut self, call: CallId, done: Waiter) {
        self.waiters.insert(call, done);
    }

    /// Runs the closure an event is for; returns the event if none took it.
    /// A handler that panics answers `FAILED HANDLER_PANICKED`; an answer
    /// that cannot be encoded becomes `FAILED BAD_RETURN`.
    pub(super) fn take(&mut self, ep: &mut Endpoint, event: Event) -> Option<Event> {
        match event {
            Event::Rpc(RpcEvent::Request(req)) if self.handlers.contains_key(&req.name) => {
                let handler = self.handlers.get_mut(&req.name)?;
                let handled =
                    catch_unwind(AssertUnwindSafe(|| handler(&req))).unwrap_or_else(|payload| {
                        let text = panic_text(payload.as_ref());
                        tracing::error!(op = %req.name, "RPC handler panicked: {text}");
                        Reply::failed("HANDLER_PANICKED", &text).into()
                    });
                if let Handled::Answer(answer) = handled {
                    let now = Instant::now();
                    if let Err(ReplyError::Send(e)) = ep.rpc().reply(now, req.id, answer) {
                        let fallback = Reply::failed("BAD_RETURN", &e.to_string());
                        let _ = ep.rpc().reply(now, req.id, fallback);
                    }
                }
                None
            }
            Event::Rpc(RpcEvent::Returned {
                call,
                callee,
                outcome,
            }) => match self.waiters.remove(&call) {
                Some(done) => {
                    done(callee, outcome);
                    None
                }
                None => Some(Event::Rpc(RpcEvent::Returned {
                    call,
                    callee,
                    outcome,
                })),
            },
            other => Some(other),
        }
    }
}
