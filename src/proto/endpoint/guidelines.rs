//! The Guidelines layer inside the [`Endpoint`] (`mbus.md` §9): calls and
//! their correlation and timeouts, serving requests (at once or deferred),
//! group RPC, and properties with their watchers.
//!
//! It rides on the endpoint's own machinery: requests go out with
//! [`Endpoint::send`], their delivery outcome comes back through the event
//! queue (and is turned into an RPC outcome here), and the timers join
//! [`Endpoint::poll_timeout`].

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::time::{Duration, Instant};

use crate::rpc::{
    parse_request, parse_return, request_command, return_command, standby_command, Access, Answer,
    CallId, MetaError, Outcome, Reply, ReplyError, Request, RequestId, RpcType,
};
use crate::wire::{Address, Command, Value};

use super::{Delivery, Endpoint, Event, MsgId, SendError};

/// What a reliable message sent by this layer was, so that its delivery
/// outcome reaches the right place instead of the application.
#[derive(Debug, Clone, Copy)]
enum Owner {
    /// The request of a call: failure means undeliverable.
    Request(CallId),
    /// A return or a property notification: settled quietly.
    Quiet,
}

#[derive(Debug)]
enum CallKind {
    Unicast {
        callee: Address,
    },
    Anycast {
        group: Address,
        args: Vec<Value>,
        choose_at: Instant,
        /// Volunteers in the order they answered, with their standby SeqNum.
        standbys: Vec<(Address, u32)>,
        chosen: Option<Address>,
    },
    Multicast {
        expected: Vec<Address>,
        results: Vec<(Address, Outcome)>,
    },
}

#[derive(Debug)]
struct PendingCall {
    name: String,
    deadline: Instant,
    /// The key under which it sits in `Guides::timers`.
    next: Instant,
    kind: CallKind,
}

#[derive(Debug)]
struct PendingRequest {
    caller: Address,
    name: String,
    rpc_id: String,
    /// Multicast returns and returns to reliable requests go reliably.
    reliable: bool,
}

#[derive(Debug)]
struct Property {
    value: Value,
    access: Access,
    watchers: Vec<Address>,
}

/// The Guidelines state of one endpoint.
#[derive(Debug, Default)]
pub(super) struct Guides {
    serve_all: bool,
    served: HashSet<String>,
    next_call: u64,
    calls: HashMap<u64, PendingCall>,
    timers: BTreeSet<(Instant, u64)>,
    owners: HashMap<MsgId, Owner>,
    next_request: u64,
    requests: BTreeMap<u64, PendingRequest>,
    properties: BTreeMap<String, Property>,
}

impl Guides {
    pub(super) fn next_deadline(&self) -> Option<Instant> {
        self.timers.first().map(|(t, _)| *t)
    }

    fn serves(&self, name: &str) -> bool {
        self.served.contains(name)
    }
}

/// The property operations of Guidelines §5.4.
const PROPERTY_OPS: [&str; 4] = ["get", "set", "watch", "unwatch"];

impl Endpoint {
    // ---- serving ------------------------------------------------------------------

    /// Serves RPC `name`: requests for it arrive as [`Event::Request`].
    /// Unicast requests for operations nobody serves are answered
    /// `RPC-STATUS UNKNOWN`; group requests for them are ignored (Guidelines §5.2).
    pub fn serve(&mut self, name: &str) {
        self.guides.served.insert(name.to_owned());
    }

    /// Stops serving `name`.
    pub fn unserve(&mut self, name: &str) {
        self.guides.served.remove(name);
    }

    /// Surfaces every RPC request that no served name or property takes as an
    /// [`Event::Request`] (for scripts that decide per request, like
    /// `rmbus join`); the application then answers each, `UNKNOWN` included.
    pub fn serve_all(&mut self, on: bool) {
        self.guides.serve_all = on;
    }

    /// Answers request `id` (from [`Event::Request`]), now or later. The return
    /// goes to the caller's full address, reliably when the request came
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
        let answer = answer.into();
        let req = self
            .guides
            .requests
            .get(&id.0)
            .ok_or(ReplyError::NoSuchRequest(id))?;
        let cmd = return_command(&req.name, &req.rpc_id, &answer);
        cmd.validate().map_err(SendError::from)?;
        let (caller, reliable) = (req.caller.clone(), req.reliable);
        self.guides.requests.remove(&id.0);
        self.send_quietly(now, &caller, cmd, reliable)?;
        Ok(())
    }

    /// Requests received and not answered yet.
    pub fn open_requests(&self) -> usize {
        self.guides.requests.len()
    }

    // ---- calling ------------------------------------------------------------------

    /// Calls `name` with `args` at the one entity `dst` designates (a unique
    /// match among known entities, completed to its full address): a UNICAST
    /// RPC sent reliably (Guidelines §5.2.1). The outcome arrives as
    /// [`Event::Returned`] within `timeout` (plus nothing: a call that is not
    /// answered by then is reported [`Outcome::TimedOut`]).
    pub fn call(
        &mut self,
        now: Instant,
        dst: &Address,
        name: &str,
        args: Vec<Value>,
        timeout: Duration,
    ) -> Result<CallId, SendError> {
        self.call_with_meta(now, dst, name, &[], args, timeout)
    }

    /// [`Endpoint::call`] with extra META entries (e.g. `CONTEXT-ID`).
    pub fn call_with_meta(
        &mut self,
        now: Instant,
        dst: &Address,
        name: &str,
        meta: &[(String, Value)],
        args: Vec<Value>,
        timeout: Duration,
    ) -> Result<CallId, SendError> {
        let callee = self.unique_match(dst)?;
        let call = CallId(self.guides.next_call);
        let cmd = request_command(name, &call.0.to_string(), RpcType::Unicast, meta, args);
        let msg = self.send(now, &callee, vec![cmd], Delivery::Reliable)?;
        self.guides.next_call += 1;
        self.guides.owners.insert(msg, Owner::Request(call));
        self.track_call(
            call,
            name,
            now + timeout,
            now + timeout,
            CallKind::Unicast { callee },
        );
        Ok(call)
    }

    /// A group RPC to the entities `dst` designates (Guidelines §5.2.5), sent
    /// unreliably:
    /// - [`RpcType::Anycast`]: volunteers answer `.standby`; after T_anycast
    ///   (N_r·T_r) the first volunteer gets the request reliably, with
    ///   `REFERENCE`, and its return ends the call ([`Event::Returned`]; no
    ///   volunteer gives [`Outcome::NoResponder`]).
    /// - [`RpcType::Multicast`]: every entity that serves it returns reliably;
    ///   [`Event::GroupReturned`] lists one outcome per entity known to match
    ///   `dst` when the call was made (and per other entity that answered),
    ///   once all of them answered or at `timeout`.
    pub fn call_group(
        &mut self,
        now: Instant,
        dst: &Address,
        name: &str,
        args: Vec<Value>,
        rpc_type: RpcType,
        timeout: Duration,
    ) -> Result<CallId, SendError> {
        let call = CallId(self.guides.next_call);
        let rpc_id = call.0.to_string();
        let (kind, next) = match rpc_type {
            RpcType::Anycast => {
                let choose_at = now + self.config.timers.t_r * self.config.timers.n_r;
                let kind = CallKind::Anycast {
                    group: dst.clone(),
                    args: args.clone(),
                    choose_at,
                    standbys: Vec::new(),
                    chosen: None,
                };
                (kind, choose_at.min(now + timeout))
            }
            RpcType::Multicast => {
                let expected = self
                    .peers
                    .keys()
                    .filter(|a| dst.is_subset_of(a))
                    .cloned()
                    .collect();
                let kind = CallKind::Multicast {
                    expected,
                    results: Vec::new(),
                };
                (kind, now + timeout)
            }
            RpcType::Unicast | RpcType::Coordinated => {
                return Err(SendError::UnsupportedRpcType(rpc_type))
            }
        };
        let cmd = request_command(name, &rpc_id, rpc_type, &[], args);
        self.send(now, dst, vec![cmd], Delivery::Unreliable)?;
        self.guides.next_call += 1;
        self.track_call(call, name, now + timeout, next, kind);
        Ok(call)
    }

    /// Calls made and not finished yet.
    pub fn open_calls(&self) -> usize {
        self.guides.calls.len()
    }

    fn track_call(
        &mut self,
        call: CallId,
        name: &str,
        deadline: Instant,
        next: Instant,
        kind: CallKind,
    ) {
        self.guides.timers.insert((next, call.0));
        self.guides.calls.insert(
            call.0,
            PendingCall {
                name: name.to_owned(),
                deadline,
                next,
                kind,
            },
        );
    }

    fn finish_call(&mut self, call: u64) -> Option<PendingCall> {
        let c = self.guides.calls.remove(&call)?;
        self.guides.timers.remove(&(c.next, call));
        Some(c)
    }

    fn end_call(&mut self, call: u64, callee: Address, outcome: Outcome) {
        if self.finish_call(call).is_some() {
            self.push_event(Event::Returned {
                call: CallId(call),
                callee,
                outcome,
            });
        }
    }

    fn end_group_call(&mut self, call: u64) {
        let Some(c) = self.finish_call(call) else {
            return;
        };
        if let CallKind::Multicast {
            expected,
            mut results,
        } = c.kind
        {
            for a in expected {
                if results.iter().all(|(r, _)| *r != a) {
                    results.push((a, Outcome::TimedOut));
                }
            }
            results.sort_by_cached_key(|(a, _)| a.to_string());
            self.push_event(Event::GroupReturned {
                call: CallId(call),
                results,
            });
        }
    }

    // ---- properties ---------------------------------------------------------------

    /// Offers property `name` with `value` on the bus (Guidelines §5.4):
    /// `name.get`, `.set` (unless read-only), `.watch` and `.unwatch` are then
    /// answered here. Defining it again replaces value and access and keeps the
    /// watchers.
    pub fn define_property(&mut self, name: &str, value: Value, access: Access) {
        let p = self
            .guides
            .properties
            .entry(name.to_owned())
            .or_insert_with(|| Property {
                value: Value::List(vec![]),
                access,
                watchers: Vec::new(),
            });
        p.value = value;
        p.access = access;
    }

    /// Changes property `name` and sends `name (value)` to every watcher
    /// (reliably where the watcher is a known entity). False if there is no
    /// such property.
    pub fn set_property(&mut self, now: Instant, name: &str, value: Value) -> bool {
        let Some(p) = self.guides.properties.get_mut(name) else {
            return false;
        };
        p.value = value.clone();
        let watchers = p.watchers.clone();
        for w in watchers {
            let cmd = Command::new(name, vec![value.clone()]);
            let _ = self.send_quietly(now, &w, cmd, true);
        }
        true
    }

    /// The current value of property `name`.
    pub fn property(&self, name: &str) -> Option<&Value> {
        self.guides.properties.get(name).map(|p| &p.value)
    }

    /// The entities watching property `name`.
    pub fn property_watchers(&self, name: &str) -> &[Address] {
        self.guides
            .properties
            .get(name)
            .map_or(&[], |p| p.watchers.as_slice())
    }

    // ---- hooks called by the endpoint ---------------------------------------------

    /// A command that is not an `mbus.*` transport command. Returns it back if
    /// it is not a Guidelines message, so the caller can deliver it as a
    /// plain command.
    pub(super) fn guidelines_dispatch(
        &mut self,
        now: Instant,
        src: &Address,
        dst: &Address,
        seq: u32,
        reliable: bool,
        command: Command,
    ) -> Option<Command> {
        let command = self.transactions_dispatch(now, src, reliable, command)?;
        if let Some(op) = command.name.strip_suffix(".return") {
            match parse_return(&command) {
                Ok(ret) => {
                    self.on_return(src, op, &ret.rpc_id, ret.answer);
                    return None;
                }
                Err(MetaError::Malformed { .. }) => {
                    self.stats.rpc_malformed += 1;
                    return None;
                }
                Err(MetaError::NotRpc) => {}
            }
        }
        if let Some(op) = command.name.strip_suffix(".standby") {
            match parse_request(&command) {
                Ok(r) => {
                    self.on_standby(src, seq, op, &r.rpc_id);
                    return None;
                }
                Err(MetaError::Malformed { .. }) => {
                    self.stats.rpc_malformed += 1;
                    return None;
                }
                Err(MetaError::NotRpc) => {}
            }
        }
        if !self.allowed(src, &command.name) {
            self.stats.denied += 1;
            if let (Ok(req), true) = (parse_request(&command), reliable) {
                let answer = Answer::Reply(Reply::failed(
                    "DENIED",
                    "only registered controllers may use this service",
                ));
                let ret = return_command(&command.name, &req.rpc_id, &answer);
                let _ = self.send_quietly(now, src, ret, true);
            }
            return None;
        }
        let req = match parse_request(&command) {
            Ok(req) => req,
            Err(MetaError::NotRpc) => return Some(command),
            Err(MetaError::Malformed { rpc_id, problem }) => {
                self.stats.rpc_malformed += 1;
                if let (Some(rpc_id), true) = (rpc_id, reliable) {
                    let answer = Answer::Reply(Reply::failed("MALFORMED_REQUEST", &problem));
                    let ret = return_command(&command.name, &rpc_id, &answer);
                    let _ = self.send_quietly(now, src, ret, true);
                }
                return None;
            }
        };
        self.stats.rpc_requests += 1;
        let chosen = req.meta.get("REFERENCE").is_some();
        let group = match req.rpc_type {
            RpcType::Unicast => false,
            RpcType::Anycast => !chosen,
            RpcType::Multicast => true,
            RpcType::Coordinated => {
                if reliable {
                    let answer = Answer::Reply(Reply::failed(
                        "UNSUPPORTED_RPC_TYPE",
                        "COORDINATED RPCs are not defined by the Guidelines draft",
                    ));
                    let ret = return_command(&command.name, &req.rpc_id, &answer);
                    let _ = self.send_quietly(now, src, ret, true);
                }
                return None;
            }
        };
        let Command { name, .. } = command;
        if req.rpc_type == RpcType::Anycast && !chosen {
            if self.guides.serves(&name) || self.guides.serve_all {
                let to = src.intersection(dst);
                let _ = self.send(
                    now,
                    &to,
                    vec![standby_command(&name, &req.rpc_id)],
                    Delivery::Unreliable,
                );
            }
            return None;
        }
        if let Some(answer) = self.registration_request(now, &name, &req.args) {
            self.count_bad_arguments(&answer);
            let ret = return_command(&name, &req.rpc_id, &answer);
            let _ = self.send_quietly(now, src, ret, reliable || group);
            return None;
        }
        if !self.guides.serves(&name) {
            if let Some((answer, change)) = self.property_request(src, &name, &req.args) {
                self.count_bad_arguments(&answer);
                let ret = return_command(&name, &req.rpc_id, &answer);
                let _ = self.send_quietly(now, src, ret, reliable || group);
                if let (Some(value), Some((prop, _))) = (change, name.rsplit_once('.')) {
                    self.set_property(now, prop, value.clone());
                    self.push_event(Event::PropertyChanged {
                        name: prop.to_owned(),
                        value,
                        by: src.clone(),
                    });
                }
                return None;
            }
            if !self.guides.serve_all {
                // UNKNOWN only to a unicast RPC sent to exactly us: one sent
                // to a group would draw an answer from every entity.
                if !group && *dst == self.local {
                    let ret = return_command(&name, &req.rpc_id, &Answer::Unknown);
                    let _ = self.send_quietly(now, src, ret, reliable);
                }
                return None;
            }
        }
        let id = RequestId(self.guides.next_request);
        self.guides.next_request += 1;
        if self.guides.requests.len() >= self.config.limits.max_open_requests {
            self.guides.requests.pop_first();
            self.stats.queue_drops += 1;
        }
        self.guides.requests.insert(
            id.0,
            PendingRequest {
                caller: src.clone(),
                name: name.clone(),
                rpc_id: req.rpc_id.clone(),
                reliable: reliable || group,
            },
        );
        self.push_event(Event::Request(Request {
            id,
            rpc_id: req.rpc_id,
            src: src.clone(),
            name,
            args: req.args,
            rpc_type: req.rpc_type,
            meta: req.meta,
        }));
        None
    }

    /// Settles `msg` without telling the application.
    pub(super) fn quiet_delivery(&mut self, msg: MsgId) {
        self.guides.owners.insert(msg, Owner::Quiet);
    }

    /// A reliable message this layer sent has settled: true if it was ours
    /// (and so is no business of the application).
    pub(super) fn guidelines_settled(&mut self, id: MsgId, delivered: bool) -> bool {
        match self.guides.owners.remove(&id) {
            None => self.transactions_settled(id, delivered),
            Some(Owner::Quiet) => true,
            Some(Owner::Request(call)) => {
                if !delivered {
                    let callee = match self.guides.calls.get(&call.0).map(|c| &c.kind) {
                        Some(CallKind::Unicast { callee }) => Some(callee.clone()),
                        Some(CallKind::Anycast {
                            chosen: Some(c), ..
                        }) => Some(c.clone()),
                        _ => None,
                    };
                    if let Some(callee) = callee {
                        self.end_call(call.0, callee, Outcome::Undeliverable);
                    }
                }
                true
            }
        }
    }

    /// `addr` left the bus: it watches nothing any more, and calls waiting
    /// for it end.
    pub(super) fn guidelines_peer_left(&mut self, addr: &Address) {
        self.transactions_peer_left(addr);
        self.services_peer_left(addr);
        for p in self.guides.properties.values_mut() {
            p.watchers.retain(|w| w != addr);
        }
        let waiting: Vec<u64> = self
            .guides
            .calls
            .iter()
            .filter(|(_, c)| match &c.kind {
                CallKind::Unicast { callee } => callee == addr,
                CallKind::Anycast { chosen, .. } => chosen.as_ref() == Some(addr),
                CallKind::Multicast { .. } => false,
            })
            .map(|(id, _)| *id)
            .collect();
        for call in waiting {
            self.end_call(call, addr.clone(), Outcome::CalleeLeft);
        }
        for c in self.guides.calls.values_mut() {
            if let CallKind::Multicast { expected, results } = &mut c.kind {
                if expected.contains(addr) && results.iter().all(|(r, _)| r != addr) {
                    results.push((addr.clone(), Outcome::CalleeLeft));
                }
            }
        }
    }

    /// The endpoint closes: every call still open ends ([`Outcome::Closed`],
    /// or for a MULTICAST call, for the entities that have not answered).
    pub(super) fn guidelines_close(&mut self) {
        let open: Vec<u64> = self.guides.calls.keys().copied().collect();
        for call in open {
            let callee = match self.guides.calls.get_mut(&call).map(|c| &mut c.kind) {
                Some(CallKind::Multicast { expected, results }) => {
                    for a in std::mem::take(expected) {
                        if results.iter().all(|(r, _)| *r != a) {
                            results.push((a, Outcome::Closed));
                        }
                    }
                    self.end_group_call(call);
                    continue;
                }
                Some(CallKind::Unicast { callee }) => callee.clone(),
                Some(CallKind::Anycast { chosen, group, .. }) => {
                    chosen.clone().unwrap_or_else(|| group.clone())
                }
                None => continue,
            };
            self.end_call(call, callee, Outcome::Closed);
        }
        self.transactions_close();
    }

    /// Call timers: anycast choices and deadlines.
    pub(super) fn guidelines_timeout(&mut self, now: Instant) {
        self.transactions_timeout(now);
        while let Some(&(at, call)) = self.guides.timers.first() {
            if at > now {
                break;
            }
            let Some(c) = self.guides.calls.get(&call).filter(|c| c.next == at) else {
                self.guides.timers.pop_first();
                continue;
            };
            if let CallKind::Anycast {
                chosen: None,
                choose_at,
                ..
            } = c.kind
            {
                if choose_at <= now && now < c.deadline {
                    self.choose_volunteer(now, call);
                    continue;
                }
            }
            match &c.kind {
                CallKind::Multicast { .. } => self.end_group_call(call),
                CallKind::Unicast { callee } => {
                    let callee = callee.clone();
                    self.end_call(call, callee, Outcome::TimedOut);
                }
                CallKind::Anycast { chosen, group, .. } => {
                    let (callee, outcome) = match chosen {
                        Some(c) => (c.clone(), Outcome::TimedOut),
                        None => (group.clone(), Outcome::NoResponder),
                    };
                    self.end_call(call, callee, outcome);
                }
            }
        }
        if self.guides.calls.is_empty() {
            self.guides.timers.clear();
        }
    }

    // ---- internals ----------------------------------------------------------------

    /// A request the core answers itself had arguments of the wrong shape.
    fn count_bad_arguments(&mut self, answer: &Answer) {
        if matches!(answer, Answer::Reply(r) if r.result == "BAD_ARGUMENTS") {
            self.stats.rpc_malformed += 1;
        }
    }

    /// Sends one command to `to`, reliably if asked and possible (else
    /// unreliably); the delivery outcome is not reported to the application.
    pub(super) fn send_quietly(
        &mut self,
        now: Instant,
        to: &Address,
        cmd: Command,
        reliable: bool,
    ) -> Result<(), SendError> {
        if reliable && self.peers.contains_key(to) {
            match self.send(now, to, vec![cmd.clone()], Delivery::Reliable) {
                Ok(msg) => {
                    self.guides.owners.insert(msg, Owner::Quiet);
                    return Ok(());
                }
                Err(SendError::Encode(e)) => return Err(SendError::Encode(e)),
                Err(_) => {}
            }
        }
        self.send(now, to, vec![cmd], Delivery::Unreliable)
            .map(|_| ())
    }

    fn on_return(&mut self, src: &Address, op: &str, rpc_id: &str, answer: Answer) {
        let outcome = match answer {
            Answer::Reply(r) => Outcome::Returned(r),
            Answer::Unknown => Outcome::Unknown,
        };
        let call = rpc_id.parse::<u64>().ok();
        let Some((call, c)) = call.and_then(|id| Some((id, self.guides.calls.get_mut(&id)?)))
        else {
            self.stats.rpc_stray += 1;
            return;
        };
        if c.name != op {
            self.stats.rpc_stray += 1;
            return;
        }
        match &mut c.kind {
            CallKind::Unicast { callee }
            | CallKind::Anycast {
                chosen: Some(callee),
                ..
            } if callee == src => {
                self.end_call(call, src.clone(), outcome);
            }
            CallKind::Multicast { expected, results } => {
                if results.iter().any(|(r, _)| r == src) {
                    self.stats.rpc_stray += 1;
                    return;
                }
                results.push((src.clone(), outcome));
                let all = !expected.is_empty()
                    && expected.iter().all(|a| results.iter().any(|(r, _)| r == a));
                if all {
                    self.end_group_call(call);
                }
            }
            _ => self.stats.rpc_stray += 1,
        }
    }

    fn on_standby(&mut self, src: &Address, seq: u32, op: &str, rpc_id: &str) {
        let call = rpc_id.parse::<u64>().ok();
        match call.and_then(|id| self.guides.calls.get_mut(&id)) {
            Some(PendingCall {
                name,
                kind:
                    CallKind::Anycast {
                        standbys,
                        chosen: None,
                        ..
                    },
                ..
            }) if name == op => {
                if standbys.iter().all(|(a, _)| a != src) {
                    standbys.push((src.clone(), seq));
                }
            }
            _ => self.stats.rpc_stray += 1,
        }
    }

    /// T_anycast has passed: sends the request reliably to the first
    /// volunteer, with `REFERENCE` naming its standby message.
    fn choose_volunteer(&mut self, now: Instant, call: u64) {
        let Some(c) = self.guides.calls.get_mut(&call) else {
            return;
        };
        let CallKind::Anycast {
            standbys,
            args,
            group,
            ..
        } = &mut c.kind
        else {
            return;
        };
        let (volunteers, args, group) = (
            std::mem::take(standbys),
            std::mem::take(args),
            group.clone(),
        );
        let name = c.name.clone();
        let deadline = c.deadline;
        for (volunteer, seq) in volunteers {
            let meta = [("REFERENCE".to_owned(), Value::string(seq.to_string()))];
            let cmd = request_command(
                &name,
                &call.to_string(),
                RpcType::Anycast,
                &meta,
                args.clone(),
            );
            if let Ok(msg) = self.send(now, &volunteer, vec![cmd], Delivery::Reliable) {
                self.guides.owners.insert(msg, Owner::Request(CallId(call)));
                if let Some(c) = self.guides.calls.get_mut(&call) {
                    c.kind = CallKind::Anycast {
                        group,
                        args: Vec::new(),
                        choose_at: now,
                        standbys: Vec::new(),
                        chosen: Some(volunteer),
                    };
                    self.guides.timers.remove(&(c.next, call));
                    c.next = deadline;
                    self.guides.timers.insert((deadline, call));
                }
                return;
            }
        }
        self.end_call(call, group, Outcome::NoResponder);
    }

    /// Answers a property operation (Guidelines §5.4) if `name` is one and
    /// this entity has properties, with the new value of an accepted `.set`;
    /// `None` otherwise.
    fn property_request(
        &mut self,
        src: &Address,
        name: &str,
        args: &[Value],
    ) -> Option<(Answer, Option<Value>)> {
        let (prop, op) = name.rsplit_once('.')?;
        if !PROPERTY_OPS.contains(&op) || self.guides.properties.is_empty() {
            return None;
        }
        let Some(p) = self.guides.properties.get_mut(prop) else {
            let reply = Reply::failed("NO_SUCH_PROPERTY", &format!("no property {prop}"));
            return Some((reply.into(), None));
        };
        let reply = match (op, args) {
            ("get", []) => Reply::ok(vec![p.value.clone()]),
            ("watch", []) => {
                if !p.watchers.contains(src) {
                    p.watchers.push(src.clone());
                }
                Reply::ok(vec![p.value.clone()])
            }
            ("unwatch", []) => {
                if p.watchers.contains(src) {
                    p.watchers.retain(|w| w != src);
                    Reply::ok(vec![])
                } else {
                    Reply::failed("NOT_SUBSCRIBED", &format!("{src} does not watch {prop}"))
                }
            }
            ("set", [value]) if p.access == Access::ReadWrite => {
                return Some((Reply::ok(vec![value.clone()]).into(), Some(value.clone())));
            }
            ("set", [_]) => Reply::failed("READ_ONLY", &format!("{prop} cannot be set")),
            ("set", _) => Reply::failed("BAD_ARGUMENTS", "set takes exactly one value"),
            _ => Reply::failed("BAD_ARGUMENTS", &format!("{op} takes no arguments")),
        };
        Some((reply.into(), None))
    }
}
