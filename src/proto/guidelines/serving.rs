//! Requests this entity serves (Guidelines §5.2): the served names, the
//! requests open until the application answers them, anycast volunteering,
//! and `RPC-STATUS UNKNOWN` for unicast calls nobody serves.

use std::collections::BTreeMap;

use crate::proto::maps::HashSet;
use std::time::Instant;

use crate::rpc::cmd::{RpcRequest, RpcReturn, Standby};
use crate::rpc::{Answer, Request, RequestId, RpcEvent};
use crate::wire::Address;

use super::super::{Delivery, SendError};
use super::{Ctx, ReplyError, Rpc};

#[derive(Debug)]
struct PendingRequest {
    caller: Address,
    name: String,
    rpc_id: String,
    /// Multicast returns and returns to reliable requests go reliably.
    reliable: bool,
}

/// What this entity serves and what it has not answered yet.
#[derive(Debug, Default)]
pub(crate) struct Serving {
    serve_all: bool,
    served: HashSet<String>,
    next_request: u64,
    requests: BTreeMap<u64, PendingRequest>,
}

impl Rpc<'_> {
    /// Serves RPC `name`: requests for it arrive as [`RpcEvent::Request`].
    /// Unicast requests for operations nobody serves are answered
    /// `RPC-STATUS UNKNOWN`; group requests for them are ignored (Guidelines §5.2).
    pub fn serve(&mut self, name: &str) {
        self.serving.served.insert(name.to_owned());
    }

    /// Stops serving `name`.
    pub fn unserve(&mut self, name: &str) {
        self.serving.served.remove(name);
    }

    /// True if `name` is served.
    pub fn serves(&self, name: &str) -> bool {
        self.serving.served.contains(name)
    }

    /// Surfaces every RPC request that no served name or property takes as an
    /// [`RpcEvent::Request`] (for scripts that decide per request, like
    /// `rmbus join`); the application then answers each, `UNKNOWN` included.
    pub fn serve_all(&mut self, on: bool) {
        self.serving.serve_all = on;
    }

    /// Answers request `id` (from [`RpcEvent::Request`]), now or later. The
    /// return goes to the caller's full address, reliably when the request came
    /// reliably or was a MULTICAST RPC (Guidelines §5.2.2, §5.2.5).
    ///
    /// If the answer cannot be encoded, nothing is sent, the request stays
    /// open and the error says why.
    pub fn reply(
        &mut self,
        now: Instant,
        id: RequestId,
        answer: impl Into<Answer>,
    ) -> Result<(), ReplyError> {
        let req = self
            .serving
            .requests
            .get(&id.0)
            .ok_or(ReplyError::NoSuchRequest(id))?;
        let ret = RpcReturn {
            op: req.name.clone(),
            rpc_id: req.rpc_id.clone(),
            answer: answer.into(),
        }
        .into_command();
        ret.validate().map_err(SendError::from)?;
        let (caller, reliable) = (req.caller.clone(), req.reliable);
        self.serving.requests.remove(&id.0);
        Ctx::new(self.transport, now).send_quietly(&caller, ret, reliable)?;
        Ok(())
    }

    /// Requests received and not answered yet.
    pub fn open_requests(&self) -> usize {
        self.serving.requests.len()
    }
}

impl Serving {
    /// True if a request of `addr`'s waits for our answer.
    pub(crate) fn engaged_with(&self, addr: &Address) -> bool {
        self.requests.values().any(|r| r.caller == *addr)
    }

    /// True if any request is being served.
    pub(crate) fn any_open(&self) -> bool {
        !self.requests.is_empty()
    }

    /// True if `name` is served by name.
    pub(crate) fn serves(&self, name: &str) -> bool {
        self.served.contains(name)
    }

    /// An ANYCAST request not yet addressed to a chosen volunteer: offer to
    /// serve it with `.standby`, unreliably, to the aggregate of the caller's
    /// and the group's address (Guidelines §5.2.5).
    pub(crate) fn volunteer(
        &self,
        ctx: &mut Ctx<'_>,
        src: &Address,
        dst: &Address,
        req: &RpcRequest,
    ) {
        if self.serves(&req.name) || self.serve_all {
            let standby = Standby {
                op: req.name.clone(),
                rpc_id: req.rpc_id.clone(),
            };
            let _ = ctx.send(
                &src.intersection(dst),
                standby.into_command(),
                Delivery::Unreliable,
            );
        }
    }

    /// A request that no other part of the endpoint took: opened for the
    /// application if it is served (or everything is), else answered
    /// `UNKNOWN` when it was a unicast RPC sent to exactly us (one sent to a
    /// group would draw an answer from every entity). `reliable` says how
    /// its return must go; `group` that it was a group RPC.
    pub(crate) fn on_request(
        &mut self,
        ctx: &mut Ctx<'_>,
        src: &Address,
        dst: &Address,
        req: RpcRequest,
        reliable: bool,
        group: bool,
    ) {
        if !self.serves(&req.name) && !self.serve_all {
            if !group && dst == ctx.local() {
                super::answer(ctx, src, &req.name, &req.rpc_id, Answer::Unknown, reliable);
            }
            return;
        }
        let id = RequestId(self.next_request);
        self.next_request += 1;
        if self.requests.len() >= ctx.limits().max_open_requests {
            self.requests.pop_first();
            ctx.stats().queue_drops += 1;
        }
        self.requests.insert(
            id.0,
            PendingRequest {
                caller: src.clone(),
                name: req.name.clone(),
                rpc_id: req.rpc_id.clone(),
                reliable,
            },
        );
        ctx.push(RpcEvent::Request(Request {
            id,
            rpc_id: req.rpc_id,
            src: src.clone(),
            name: req.name,
            args: req.args,
            rpc_type: req.rpc_type,
            meta: req.meta,
        }));
    }
}
