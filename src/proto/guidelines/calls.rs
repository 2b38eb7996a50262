//! Calls this entity makes (Guidelines §5.2): unicast calls sent reliably to
//! the callee's full address, ANYCAST calls that pick a volunteer, MULTICAST
//! calls that collect one outcome per entity; their correlation by RPC ID and
//! their timeouts.

use crate::proto::maps::HashMap;
use std::time::{Duration, Instant};

use crate::rpc::cmd::{RpcRequest, RpcReturn, Standby};
use crate::rpc::{Answer, CallId, Outcome, RpcEvent, RpcType};
use crate::wire::{Address, Value};

use super::super::deadlines::Deadlines;
use super::super::transport::Owner;
use super::super::{Delivery, SendError};
use super::{CallError, Ctx, Rpc};

#[derive(Debug)]
enum CallKind {
    /// A unicast call whose destination was unknown: pinged, and waiting
    /// for an entity it designates to appear ([`Rpc::call_within`]).
    Finding {
        dst: Address,
        meta: Vec<(String, Value)>,
        args: Vec<Value>,
    },
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
    kind: CallKind,
    /// The reliable request was acknowledged (unicast calls, and an
    /// anycast's request to its chosen volunteer).
    acked: bool,
}

/// The calls this entity has made and not seen end.
#[derive(Debug, Default)]
pub(crate) struct Calls {
    next_call: u64,
    calls: HashMap<u64, PendingCall>,
    /// Each call's next step: its deadline, or an anycast's choice.
    timers: Deadlines<u64>,
    /// How many calls wait for their callee to appear.
    finding: usize,
}

impl Rpc<'_> {
    /// Calls `name` with `args` at the one entity `dst` designates (a unique
    /// match among known entities, completed to its full address): a UNICAST
    /// RPC sent reliably (Guidelines §5.2.1). The outcome arrives as
    /// [`RpcEvent::Returned`] within `timeout` (a call not answered by then is
    /// reported [`Outcome::TimedOut`]).
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

    /// [`Rpc::call`] with extra META entries (e.g. `CONTEXT-ID`).
    pub fn call_with_meta(
        &mut self,
        now: Instant,
        dst: &Address,
        name: &str,
        meta: &[(String, Value)],
        args: Vec<Value>,
        timeout: Duration,
    ) -> Result<CallId, SendError> {
        let mut ctx = Ctx::new(self.transport, now);
        let callee = ctx.unique_match(dst)?;
        let calls = &mut *self.calls;
        let call = CallId(calls.next_call);
        let request = RpcRequest::new(name, &call.0.to_string(), RpcType::Unicast, meta, args);
        ctx.send_owned(&callee, request.into_command(), Owner::Call(call))?;
        calls.next_call += 1;
        calls.track(
            call,
            name,
            now + timeout,
            now + timeout,
            CallKind::Unicast { callee },
        );
        Ok(call)
    }

    /// [`Rpc::call`] for an application that may call before it has heard
    /// the callee: a destination no known entity matches is not refused but
    /// pinged once (RFC 3259 §9.3), and the request goes as soon as an entity
    /// it designates is its one match. The call's `timeout` is the deadline
    /// for both: a callee that has not appeared by then ends the call as
    /// [`Outcome::Undeliverable`]. A known destination goes at once, as with
    /// [`Rpc::call`]; other refusals are the same.
    pub fn call_within(
        &mut self,
        now: Instant,
        dst: &Address,
        name: &str,
        args: Vec<Value>,
        timeout: Duration,
    ) -> Result<CallId, SendError> {
        let unknown = matches!(
            self.transport.unique_match(dst),
            Err(SendError::UnknownDestination(_))
        );
        if !unknown || timeout.is_zero() || self.transport.is_closed() {
            return self.call(now, dst, name, args, timeout);
        }
        self.transport.ping(now, dst)?;
        let calls = &mut *self.calls;
        let call = CallId(calls.next_call);
        calls.next_call += 1;
        calls.finding += 1;
        tracing::debug!(call = call.0, %dst, "callee unknown: pinged, waiting");
        let kind = CallKind::Finding {
            dst: dst.clone(),
            meta: Vec::new(),
            args,
        };
        calls.track(call, name, now + timeout, now + timeout, kind);
        Ok(call)
    }

    /// A group RPC to the entities `dst` designates (Guidelines §5.2.5), sent
    /// unreliably:
    /// - [`RpcType::Anycast`]: volunteers answer `.standby`; after T_anycast
    ///   (N_r·T_r) the first volunteer gets the request reliably, with
    ///   `REFERENCE`, and its return ends the call ([`RpcEvent::Returned`]; no
    ///   volunteer gives [`Outcome::NoResponder`]).
    /// - [`RpcType::Multicast`]: every entity that serves it returns reliably;
    ///   [`RpcEvent::GroupReturned`] lists one outcome per entity known to
    ///   match `dst` when the call was made (and per other entity that
    ///   answered), once all of them answered or at `timeout`.
    pub fn call_group(
        &mut self,
        now: Instant,
        dst: &Address,
        name: &str,
        args: Vec<Value>,
        rpc_type: RpcType,
        timeout: Duration,
    ) -> Result<CallId, CallError> {
        let mut ctx = Ctx::new(self.transport, now);
        let calls = &mut *self.calls;
        let call = CallId(calls.next_call);
        let (kind, next) = match rpc_type {
            RpcType::Anycast => {
                let choose_at = now + ctx.policy().anycast_wait();
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
                let kind = CallKind::Multicast {
                    expected: ctx.known_matching(dst),
                    results: Vec::new(),
                };
                (kind, now + timeout)
            }
            RpcType::Unicast | RpcType::Coordinated => {
                return Err(CallError::UnsupportedRpcType(rpc_type))
            }
        };
        let request = RpcRequest::new(name, &call.0.to_string(), rpc_type, &[], args);
        ctx.send(dst, request.into_command(), Delivery::Unreliable)?;
        calls.next_call += 1;
        calls.track(call, name, now + timeout, next, kind);
        Ok(call)
    }

    /// Calls made and not finished yet.
    pub fn open_calls(&self) -> usize {
        self.calls.calls.len()
    }
}

impl Calls {
    fn track(
        &mut self,
        call: CallId,
        name: &str,
        deadline: Instant,
        next: Instant,
        kind: CallKind,
    ) {
        self.timers.set(call.0, next);
        self.calls.insert(
            call.0,
            PendingCall {
                name: name.to_owned(),
                deadline,
                kind,
                acked: false,
            },
        );
    }

    fn finish(&mut self, call: u64) -> Option<PendingCall> {
        self.timers.remove(&call);
        let c = self.calls.remove(&call)?;
        if matches!(c.kind, CallKind::Finding { .. }) {
            self.finding -= 1;
        }
        Some(c)
    }

    /// True if some call waits for its callee to appear.
    pub(crate) fn finding(&self) -> bool {
        self.finding > 0
    }

    /// New entities joined: calls waiting for a callee that now has one
    /// match send their request; a destination that now matches several
    /// cannot become unique, and the call ends undeliverable.
    pub(crate) fn find_callees(&mut self, ctx: &mut Ctx<'_>) {
        let mut waiting: Vec<u64> = self
            .calls
            .iter()
            .filter(|(_, c)| matches!(c.kind, CallKind::Finding { .. }))
            .map(|(id, _)| *id)
            .collect();
        waiting.sort_unstable();
        for call in waiting {
            let Some(PendingCall {
                name,
                kind: CallKind::Finding { dst, .. },
                ..
            }) = self.calls.get(&call)
            else {
                continue;
            };
            let (name, dst) = (name.clone(), dst.clone());
            let callee = match ctx.unique_match(&dst) {
                Ok(callee) => callee,
                Err(SendError::UnknownDestination(_)) => continue,
                Err(e) => {
                    tracing::debug!(call, %dst, "callee not found: {e}");
                    self.end(ctx, call, dst, Outcome::Undeliverable);
                    continue;
                }
            };
            let Some(c) = self.calls.get_mut(&call) else {
                continue;
            };
            let CallKind::Finding { meta, args, .. } = std::mem::replace(
                &mut c.kind,
                CallKind::Unicast {
                    callee: callee.clone(),
                },
            ) else {
                continue;
            };
            self.finding -= 1;
            let id = call.to_string();
            let request = RpcRequest::new(&name, &id, RpcType::Unicast, &meta, args);
            if ctx
                .send_owned(&callee, request.into_command(), Owner::Call(CallId(call)))
                .is_err()
            {
                self.end(ctx, call, callee, Outcome::Undeliverable);
            }
        }
    }

    fn end(&mut self, ctx: &mut Ctx<'_>, call: u64, callee: Address, outcome: Outcome) {
        if self.finish(call).is_some() {
            tracing::debug!(call, %callee, outcome = outcome.code(), "call ended");
            ctx.push(RpcEvent::Returned {
                call: CallId(call),
                callee,
                outcome,
            });
        }
    }

    fn end_group(&mut self, ctx: &mut Ctx<'_>, call: u64) {
        let Some(c) = self.finish(call) else {
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
            ctx.push(RpcEvent::GroupReturned {
                call: CallId(call),
                results,
            });
        }
    }

    /// When the next call timer is due.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.timers.next()
    }

    /// A return from `src` (Guidelines §5.2.2).
    pub(crate) fn on_return(&mut self, ctx: &mut Ctx<'_>, src: &Address, ret: RpcReturn) {
        let outcome = match ret.answer {
            Answer::Reply(r) => Outcome::Returned(r),
            Answer::Unknown => Outcome::Unknown,
        };
        let call = ret.rpc_id.parse::<u64>().ok();
        let Some((call, c)) = call.and_then(|id| Some((id, self.calls.get_mut(&id)?))) else {
            ctx.stats().rpc_stray += 1;
            return;
        };
        if c.name != ret.op {
            ctx.stats().rpc_stray += 1;
            return;
        }
        match &mut c.kind {
            CallKind::Unicast { callee }
            | CallKind::Anycast {
                chosen: Some(callee),
                ..
            } if callee == src => {
                self.end(ctx, call, src.clone(), outcome);
            }
            CallKind::Multicast { expected, results } => {
                if results.iter().any(|(r, _)| r == src) {
                    ctx.stats().rpc_stray += 1;
                    return;
                }
                results.push((src.clone(), outcome));
                let all = !expected.is_empty()
                    && expected.iter().all(|a| results.iter().any(|(r, _)| r == a));
                if all {
                    self.end_group(ctx, call);
                }
            }
            _ => ctx.stats().rpc_stray += 1,
        }
    }

    /// A volunteer's standby for one of our anycast calls; `seq` is the
    /// SeqNum of the message it came in.
    pub(crate) fn on_standby(&mut self, ctx: &mut Ctx<'_>, src: &Address, seq: u32, s: Standby) {
        let call = s.rpc_id.parse::<u64>().ok();
        match call.and_then(|id| self.calls.get_mut(&id)) {
            Some(PendingCall {
                name,
                kind:
                    CallKind::Anycast {
                        standbys,
                        chosen: None,
                        ..
                    },
                ..
            }) if *name == s.op => {
                if standbys.iter().all(|(a, _)| a != src) {
                    standbys.push((src.clone(), seq));
                }
            }
            _ => ctx.stats().rpc_stray += 1,
        }
    }

    /// The reliable request of `call` settled.
    pub(crate) fn settled(&mut self, ctx: &mut Ctx<'_>, call: CallId, delivered: bool) {
        if delivered {
            if let Some(c) = self.calls.get_mut(&call.0) {
                c.acked = true;
            }
            return;
        }
        let callee = match self.calls.get(&call.0).map(|c| &c.kind) {
            Some(CallKind::Unicast { callee }) => callee.clone(),
            Some(CallKind::Anycast {
                chosen: Some(c), ..
            }) => c.clone(),
            _ => return,
        };
        self.end(ctx, call.0, callee, Outcome::Undeliverable);
    }

    /// `addr` left the bus: calls waiting for it end.
    pub(crate) fn peer_left(&mut self, ctx: &mut Ctx<'_>, addr: &Address) {
        let mut waiting: Vec<u64> = self
            .calls
            .iter()
            .filter(|(_, c)| match &c.kind {
                CallKind::Unicast { callee } => callee == addr,
                CallKind::Anycast { chosen, .. } => chosen.as_ref() == Some(addr),
                CallKind::Multicast { .. } | CallKind::Finding { .. } => false,
            })
            .map(|(id, _)| *id)
            .collect();
        waiting.sort_unstable();
        for call in waiting {
            self.end(ctx, call, addr.clone(), Outcome::CalleeLeft);
        }
        for c in self.calls.values_mut() {
            if let CallKind::Multicast { expected, results } = &mut c.kind {
                if expected.contains(addr) && results.iter().all(|(r, _)| r != addr) {
                    results.push((addr.clone(), Outcome::CalleeLeft));
                }
            }
        }
    }

    /// True if a call of ours waits on `addr` (its callee, an anycast's
    /// chosen volunteer, or a multicast call's expected answerer).
    pub(crate) fn engaged_with(&self, addr: &Address) -> bool {
        self.calls.values().any(|c| match &c.kind {
            CallKind::Unicast { callee } => callee == addr,
            CallKind::Anycast { chosen, .. } => chosen.as_ref() == Some(addr),
            CallKind::Multicast { expected, .. } => expected.contains(addr),
            CallKind::Finding { .. } => false,
        })
    }

    /// True if any call is open.
    pub(crate) fn any_open(&self) -> bool {
        !self.calls.is_empty()
    }

    /// The endpoint closes: every call still open ends ([`Outcome::Closed`],
    /// or for a MULTICAST call, for the entities that have not answered).
    pub(crate) fn close(&mut self, ctx: &mut Ctx<'_>) {
        let mut open: Vec<u64> = self.calls.keys().copied().collect();
        open.sort_unstable();
        for call in open {
            let callee = match self.calls.get_mut(&call).map(|c| &mut c.kind) {
                Some(CallKind::Multicast { expected, results }) => {
                    for a in std::mem::take(expected) {
                        if results.iter().all(|(r, _)| *r != a) {
                            results.push((a, Outcome::Closed));
                        }
                    }
                    self.end_group(ctx, call);
                    continue;
                }
                Some(CallKind::Unicast { callee })
                | Some(CallKind::Finding { dst: callee, .. }) => callee.clone(),
                Some(CallKind::Anycast { chosen, group, .. }) => {
                    chosen.clone().unwrap_or_else(|| group.clone())
                }
                None => continue,
            };
            self.end(ctx, call, callee, Outcome::Closed);
        }
    }

    /// Call timers due at `ctx.now`: anycast choices and deadlines.
    pub(crate) fn handle_timeout(&mut self, ctx: &mut Ctx<'_>) {
        let now = ctx.now;
        while let Some((at, &call)) = self.timers.first() {
            if at > now {
                break;
            }
            let Some(c) = self.calls.get(&call) else {
                self.timers.remove(&call);
                continue;
            };
            if let CallKind::Anycast {
                chosen: None,
                choose_at,
                ..
            } = c.kind
            {
                if choose_at <= now && now < c.deadline {
                    self.choose_volunteer(ctx, call);
                    continue;
                }
            }
            match &c.kind {
                CallKind::Multicast { .. } => self.end_group(ctx, call),
                CallKind::Finding { dst, .. } => {
                    let dst = dst.clone();
                    tracing::debug!(call, %dst, "the callee did not appear in time");
                    self.end(ctx, call, dst, Outcome::Undeliverable);
                }
                CallKind::Unicast { callee } => {
                    // A request still unacknowledged at the deadline (a
                    // timeout shorter than the transport's 600 ms, say) did
                    // not reach the callee as far as we know: undeliverable,
                    // not timed out.
                    let outcome = if c.acked {
                        Outcome::TimedOut
                    } else {
                        Outcome::Undeliverable
                    };
                    let callee = callee.clone();
                    self.end(ctx, call, callee, outcome);
                }
                CallKind::Anycast { chosen, group, .. } => {
                    let (callee, outcome) = match chosen {
                        Some(c) => (c.clone(), Outcome::TimedOut),
                        None => (group.clone(), Outcome::NoResponder),
                    };
                    self.end(ctx, call, callee, outcome);
                }
            }
        }
    }

    /// T_anycast has passed: sends the request reliably to the first
    /// volunteer, with `REFERENCE` naming its standby message.
    fn choose_volunteer(&mut self, ctx: &mut Ctx<'_>, call: u64) {
        let Some(c) = self.calls.get_mut(&call) else {
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
        let (name, deadline) = (c.name.clone(), c.deadline);
        for (volunteer, seq) in volunteers {
            let meta = [("REFERENCE".to_owned(), Value::string(seq.to_string()))];
            let request = RpcRequest::new(
                &name,
                &call.to_string(),
                RpcType::Anycast,
                &meta,
                args.clone(),
            );
            let sent = ctx.send_owned(
                &volunteer,
                request.into_command(),
                Owner::Call(CallId(call)),
            );
            if sent.is_ok() {
                if let Some(c) = self.calls.get_mut(&call) {
                    c.kind = CallKind::Anycast {
                        group,
                        args: Vec::new(),
                        choose_at: ctx.now,
                        standbys: Vec::new(),
                        chosen: Some(volunteer),
                    };
                    self.timers.set(call, deadline);
                }
                return;
            }
        }
        self.end(ctx, call, group, Outcome::NoResponder);
    }
}
