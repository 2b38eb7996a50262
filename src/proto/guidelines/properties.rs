//! Properties this entity offers (Guidelines §5.4): their values, who may set
//! them, and their watchers, who hear `P (value)` on every change.

use std::collections::BTreeMap;
use std::time::Instant;

use crate::rpc::cmd::{PropertyCall, PropertyVerb, RpcRequest};
use crate::rpc::{Access, Answer, PropertyEvent, Reply};
use crate::wire::{Address, Command, Value};

use super::super::transport::Transport;
use super::Ctx;

#[derive(Debug)]
struct Property {
    value: Value,
    access: Access,
    watchers: Vec<Address>,
}

/// The properties of one endpoint.
#[derive(Debug, Default)]
pub(crate) struct PropertyTable {
    properties: BTreeMap<String, Property>,
}

/// The application's handle on the endpoint's properties
/// (`Endpoint::properties`).
pub struct Properties<'a> {
    pub(super) table: &'a mut PropertyTable,
    pub(super) transport: &'a mut Transport,
}

impl<'a> Properties<'a> {
    /// Offers property `name` with `value` on the bus (Guidelines §5.4):
    /// `name.get`, `.set` (unless read-only), `.watch` and `.unwatch` are then
    /// answered here. Defining it again replaces value and access and keeps the
    /// watchers.
    pub fn define(&mut self, name: &str, value: Value, access: Access) {
        let p = self
            .table
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
    pub fn set(&mut self, now: Instant, name: &str, value: Value) -> bool {
        self.table
            .set(&mut Ctx::new(self.transport, now), name, value)
    }

    /// The current value of property `name`.
    pub fn value(self, name: &str) -> Option<&'a Value> {
        self.table.properties.get(name).map(|p| &p.value)
    }

    /// The entities watching property `name`.
    pub fn watchers(self, name: &str) -> &'a [Address] {
        self.table
            .properties
            .get(name)
            .map_or(&[], |p| p.watchers.as_slice())
    }
}

impl PropertyTable {
    fn set(&mut self, ctx: &mut Ctx<'_>, name: &str, value: Value) -> bool {
        let Some(p) = self.properties.get_mut(name) else {
            return false;
        };
        p.value = value.clone();
        for w in p.watchers.clone() {
            let _ = ctx.send_quietly(&w, Command::new(name, vec![value.clone()]), true);
        }
        true
    }

    /// Answers a property request if `req` is one and this entity has
    /// properties: the return goes to `src` (reliably if `reliable`), an
    /// accepted `.set` then reaches the watchers and the application. False
    /// if it is no property request of ours.
    pub(crate) fn on_request(
        &mut self,
        ctx: &mut Ctx<'_>,
        src: &Address,
        req: &RpcRequest,
        reliable: bool,
    ) -> bool {
        let Some((prop, _)) = PropertyCall::split_name(&req.name) else {
            return false;
        };
        if self.properties.is_empty() {
            return false;
        }
        let (reply, change) = self.answer(src, prop, req);
        if reply.result == "BAD_ARGUMENTS" {
            ctx.stats().rpc_malformed += 1;
        }
        super::answer(
            ctx,
            src,
            &req.name,
            &req.rpc_id,
            Answer::Reply(reply),
            reliable,
        );
        if let Some(value) = change {
            self.set(ctx, prop, value.clone());
            ctx.push(PropertyEvent::Changed {
                name: prop.to_owned(),
                value,
                by: src.clone(),
            });
        }
        true
    }

    /// The reply to a request for property `prop`, and the new value of an
    /// accepted `.set`.
    fn answer(&mut self, src: &Address, prop: &str, req: &RpcRequest) -> (Reply, Option<Value>) {
        let Some(p) = self.properties.get_mut(prop) else {
            let reply = Reply::failed("NO_SUCH_PROPERTY", &format!("no property {prop}"));
            return (reply, None);
        };
        let call = match PropertyCall::from_request(&req.name, &req.args) {
            Ok(call) => call,
            Err(e) => {
                let problem = match e {
                    crate::wire::ShapeError::Malformed { problem, .. } => problem,
                    other => other.to_string(),
                };
                return (Reply::failed("BAD_ARGUMENTS", &problem), None);
            }
        };
        let reply = match (call.verb, call.value) {
            (PropertyVerb::Get, _) => Reply::ok(vec![p.value.clone()]),
            (PropertyVerb::Watch, _) => {
                if !p.watchers.contains(src) {
                    p.watchers.push(src.clone());
                }
                Reply::ok(vec![p.value.clone()])
            }
            (PropertyVerb::Unwatch, _) => {
                if p.watchers.contains(src) {
                    p.watchers.retain(|w| w != src);
                    Reply::ok(vec![])
                } else {
                    Reply::failed("NOT_SUBSCRIBED", &format!("{src} does not watch {prop}"))
                }
            }
            (PropertyVerb::Set, Some(value)) if p.access == Access::ReadWrite => {
                return (Reply::ok(vec![value.clone()]), Some(value));
            }
            (PropertyVerb::Set, _) => Reply::failed("READ_ONLY", &format!("{prop} cannot be set")),
        };
        (reply, None)
    }

    /// `addr` left the bus: it watches nothing any more.
    /// True if `addr` watches one of our properties.
    pub(crate) fn engaged_with(&self, addr: &Address) -> bool {
        self.properties.values().any(|p| p.watchers.contains(addr))
    }

    /// True if any property is watched.
    pub(crate) fn any_open(&self) -> bool {
        self.properties.values().any(|p| !p.watchers.is_empty())
    }

    pub(crate) fn peer_left(&mut self, addr: &Address) {
        for p in self.properties.values_mut() {
            p.watchers.retain(|w| w != addr);
        }
    }
}
