//! The endpoint's one dispatch table: where each command of an accepted
//! message goes, in order.
//!
//! | command | goes to |
//! |---|---|
//! | `mbus.hello`, `bye`, `ping`, `quit`, `waiting`, `go` (RFC 3259 §9) | the transport (malformed ones are dropped and counted) |
//! | `<name>.ack` / `.completed` of one of our transactions | transactions (client) |
//! | `<name>.commit` / `.cancel` of a name served as a transaction | transactions (server) |
//! | a request for a name served as a transaction | transactions (server), if reliable and allowed |
//! | `<op>.return`, `<op>.standby` | calls |
//! | anything under a tight service, from a non-controller | refused (`DENIED`) |
//! | an RPC request: registration | services |
//! | an RPC request: `P.get` / `.set` / `.watch` / `.unwatch`, `P.x` not served | properties |
//! | any other RPC request | serving (a request event, or `UNKNOWN`) |
//! | anything else | the application, as [`Event::Command`] |
//!
//! Each row is recognised by its typed command (`proto::cmd`, `rpc::cmd`).

use std::time::Instant;

use crate::rpc::cmd::{RpcRequest, RpcReturn, Standby, TxnBegin, TxnControl, TxnReply};
use crate::rpc::{Reply, RpcType};
use crate::wire::{Address, Command, Header, ShapeError};

use super::super::cmd::TransportCommand;
use super::super::guidelines::{self, Ctx, Guidelines, TxnTable};
use super::super::Event;
use super::Endpoint;

/// Where a command that is not an RFC 3259 §9 command goes.
enum Route {
    /// `.ack` / `.completed` of one of our transactions.
    TxnReply(TxnReply),
    /// `.commit` / `.cancel` of a transaction we serve.
    TxnControl(TxnControl),
    /// A request for a name we serve as a transaction (well formed or not).
    TxnBegin(Result<TxnBegin, ShapeError>),
    /// A return to one of our calls.
    Return(RpcReturn),
    /// A volunteer for one of our anycast calls.
    Standby(Standby),
    /// A return or standby that does not fit its format.
    BadReply,
    /// A command under a tight service, from an entity that may not use it.
    Denied,
    /// An RPC request.
    Request(RpcRequest),
    /// An RPC request that does not fit its format.
    BadRequest { id: Option<String>, problem: String },
    /// Anything else: the application's.
    Plain,
}

/// The table: the first row that takes `command` from `src`.
fn route(g: &Guidelines, src: &Address, command: &Command) -> Route {
    if let Ok(reply) = TxnReply::from_command(command) {
        if g.transactions.is_ours(&reply) {
            return Route::TxnReply(reply);
        }
    }
    if let Ok(control) = TxnControl::from_command(command) {
        if g.transactions.serves(&control.name) {
            return Route::TxnControl(control);
        }
    }
    if g.transactions.serves(&command.name) {
        return Route::TxnBegin(TxnBegin::from_command(command));
    }
    match RpcReturn::from_command(command) {
        Ok(ret) => return Route::Return(ret),
        Err(ShapeError::Malformed { .. }) => return Route::BadReply,
        Err(_) => {}
    }
    match Standby::from_command(command) {
        Ok(standby) => return Route::Standby(standby),
        Err(ShapeError::Malformed { .. }) => return Route::BadReply,
        Err(_) => {}
    }
    if !g.services.allowed(src, &command.name) {
        return Route::Denied;
    }
    match RpcRequest::from_command(command) {
        Ok(req) => Route::Request(req),
        Err(ShapeError::Malformed { id, problem, .. }) => Route::BadRequest { id, problem },
        Err(_) => Route::Plain,
    }
}

impl Endpoint {
    /// One command of an accepted message.
    pub(super) fn dispatch(
        &mut self,
        now: Instant,
        header: &Header,
        reliable: bool,
        command: Command,
    ) {
        let src = &header.src;
        match TransportCommand::from_command(&command) {
            Ok(c) => return self.on_transport_command(now, src, c),
            Err(e @ ShapeError::Malformed { .. }) => {
                tracing::debug!(%src, "dropped: {e}");
                self.transport.stats_mut().malformed_commands += 1;
                return;
            }
            Err(_) => {}
        }
        let g = &mut self.guidelines;
        let mut ctx = Ctx::new(&mut self.transport, now);
        match route(g, src, &command) {
            Route::TxnReply(reply) => g.transactions.on_reply(&mut ctx, src, reply),
            Route::TxnControl(control) => g.transactions.on_control(&mut ctx, src, control),
            Route::TxnBegin(Err(_)) => ctx.stats().rpc_malformed += 1,
            Route::TxnBegin(Ok(begin)) => {
                if !reliable {
                    // Transactions MUST be reliable (Guidelines §5.3).
                    ctx.stats().rpc_malformed += 1;
                } else if !g.services.allowed(src, &begin.name) {
                    ctx.stats().denied += 1;
                    TxnTable::refuse(&mut ctx, src, begin);
                } else {
                    g.transactions.on_begin(&mut ctx, src, begin);
                }
            }
            Route::Return(ret) => g.calls.on_return(&mut ctx, src, ret),
            Route::Standby(standby) => g.calls.on_standby(&mut ctx, src, header.seq, standby),
            Route::BadReply => ctx.stats().rpc_malformed += 1,
            Route::Denied => {
                ctx.stats().denied += 1;
                if let (Ok(req), true) = (RpcRequest::from_command(&command), reliable) {
                    let why = "only registered controllers may use this service";
                    let answer = Reply::failed("DENIED", why).into();
                    guidelines::answer(&mut ctx, src, &req.name, &req.rpc_id, answer, true);
                }
            }
            Route::Request(req) => on_request(g, &mut ctx, header, reliable, req),
            Route::BadRequest { id, problem } => {
                ctx.stats().rpc_malformed += 1;
                if let (Some(rpc_id), true) = (id, reliable) {
                    let answer = Reply::failed("MALFORMED_REQUEST", &problem).into();
                    guidelines::answer(&mut ctx, src, &command.name, &rpc_id, answer, true);
                }
            }
            Route::Plain => ctx.push(Event::Command {
                src: src.clone(),
                reliable,
                command,
            }),
        }
    }

    /// `mbus.hello`, `bye`, `ping`, `quit`, `waiting` and `go` (RFC 3259 §9).
    fn on_transport_command(&mut self, now: Instant, src: &Address, command: TransportCommand) {
        match command {
            TransportCommand::Hello(_) => {}
            TransportCommand::Bye(_) => {
                self.transport.said_bye(src);
                self.follow_changes(now);
            }
            TransportCommand::Ping(_) => self.transport.on_ping(now),
            TransportCommand::Quit(_) => {
                self.transport.push_event(Event::Quit { src: src.clone() })
            }
            TransportCommand::Waiting(w) => self.transport.push_event(Event::Waiting {
                src: src.clone(),
                condition: w.condition,
            }),
            TransportCommand::Go(go) => {
                self.transport.stop_waiting(&go.condition);
                self.transport.push_event(Event::Go {
                    src: src.clone(),
                    condition: go.condition,
                });
            }
        }
    }
}

/// An RPC request that reached the Guidelines layer: answered by the endpoint
/// (COORDINATED, registration, properties, `UNKNOWN`), volunteered for
/// (ANYCAST), or opened for the application.
fn on_request(
    g: &mut Guidelines,
    ctx: &mut Ctx<'_>,
    header: &Header,
    reliable: bool,
    req: RpcRequest,
) {
    let src = &header.src;
    ctx.stats().rpc_requests += 1;
    let chosen = req.meta.get("REFERENCE").is_some();
    let group = match req.rpc_type {
        RpcType::Unicast => false,
        RpcType::Anycast => !chosen,
        RpcType::Multicast => true,
        RpcType::Coordinated => {
            if reliable {
                let why = "COORDINATED RPCs are not defined by the Guidelines draft";
                let answer = Reply::failed("UNSUPPORTED_RPC_TYPE", why).into();
                guidelines::answer(ctx, src, &req.name, &req.rpc_id, answer, true);
            }
            return;
        }
    };
    if req.rpc_type == RpcType::Anycast && !chosen {
        g.serving.volunteer(ctx, src, &header.dst, &req);
        return;
    }
    // Multicast returns and returns to reliable requests go reliably.
    let reliable = reliable || group;
    if let Some(answer) = g.services.on_request(ctx, &req) {
        guidelines::answer(ctx, src, &req.name, &req.rpc_id, answer, reliable);
        return;
    }
    if !g.serving.serves(&req.name) && g.properties.on_request(ctx, src, &req, reliable) {
        return;
    }
    g.serving
        .on_request(ctx, src, &header.dst, req, reliable, group);
}
