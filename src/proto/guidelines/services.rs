//! Event notifications, service models and registration (Guidelines §5.5,
//! §6): the services this entity offers by command prefix, their clients,
//! who may use them, and where their notifications go.

use std::collections::BTreeMap;
use std::time::Instant;

use crate::rpc::cmd::{Registered, Registration, RpcRequest};
use crate::rpc::{address_value, Answer, Reply, ServiceModel};
use crate::wire::{is_under, Address, Command, Value};

use super::super::transport::Transport;
use super::super::Delivery;
use super::{Ctx, NotifyError};

#[derive(Debug)]
struct Service {
    default_target: Address,
    model: ServiceModel,
    clients: Vec<Address>,
}

/// The services one endpoint offers, by command prefix.
#[derive(Debug, Default)]
pub(crate) struct ServiceTable {
    by_prefix: BTreeMap<String, Service>,
}

/// The application's handle on the endpoint's services
/// (`Endpoint::services`).
pub struct Services<'a> {
    pub(super) table: &'a mut ServiceTable,
    pub(super) transport: &'a mut Transport,
}

impl<'a> Services<'a> {
    /// Offers the commands under `prefix` (e.g. `audio.levels`) as a service
    /// with `model`; its event notifications ([`Services::notify`]) go to
    /// `default_target` until clients register with `mbus.register`.
    pub fn define(&mut self, prefix: &str, default_target: Address, model: ServiceModel) {
        let clients = self
            .table
            .by_prefix
            .remove(prefix)
            .map(|s| s.clients)
            .unwrap_or_default();
        self.table.by_prefix.insert(
            prefix.to_owned(),
            Service {
                default_target,
                model,
                clients,
            },
        );
    }

    /// The clients registered for service `prefix`.
    pub fn registered(self, prefix: &str) -> &'a [Address] {
        self.table
            .by_prefix
            .get(prefix)
            .map_or(&[], |s| s.clients.as_slice())
    }

    /// Sends the event notification `name (args)` (Guidelines §5.5): to each
    /// client registered for the service `name` falls under (reliably where
    /// it is one known entity), or, with no clients and no control, to the
    /// service's default target. Returns how many destinations it went to.
    /// A name under no service goes nowhere and is an error.
    pub fn notify(
        &mut self,
        now: Instant,
        name: &str,
        args: Vec<Value>,
    ) -> Result<usize, NotifyError> {
        let Some(service) = self.table.covering(name) else {
            return Err(NotifyError::NoSuchService(name.to_owned()));
        };
        let targets = match (service.clients.is_empty(), service.model) {
            (false, _) => service.clients.clone(),
            (true, ServiceModel::NoControl) => vec![service.default_target.clone()],
            (true, _) => Vec::new(),
        };
        let cmd = Command::new(name, args);
        cmd.validate().map_err(super::super::SendError::from)?;
        let mut ctx = Ctx::new(self.transport, now);
        for to in &targets {
            ctx.send_quietly(to, cmd.clone(), true)?;
        }
        Ok(targets.len())
    }
}

impl ServiceTable {
    /// The service whose prefix covers `name` (the longest one).
    fn covering(&self, name: &str) -> Option<&Service> {
        self.by_prefix
            .iter()
            .filter(|(p, _)| is_under(name, p))
            .max_by_key(|(p, _)| p.len())
            .map(|(_, s)| s)
    }

    /// True if `src` may use `name`: always, unless `name` is under a tight
    /// service and `src` is not a registered controller (its address
    /// contains a registered address).
    pub(crate) fn allowed(&self, src: &Address, name: &str) -> bool {
        match self.covering(name) {
            Some(s) if s.model != ServiceModel::NoControl => {
                s.clients.iter().any(|c| c.is_subset_of(src))
            }
            _ => true,
        }
    }

    /// Answers a registration RPC if `req` is one and this entity offers
    /// services; `None` otherwise. A change of clients is announced with
    /// `mbus.registered` to the old clients (or the default target).
    pub(crate) fn on_request(&mut self, ctx: &mut Ctx<'_>, req: &RpcRequest) -> Option<Answer> {
        if !Registration::is_registration(&req.name) || self.by_prefix.is_empty() {
            return None;
        }
        let registration = match Registration::from_request(&req.name, &req.args) {
            Ok(r) => r,
            Err(crate::wire::ShapeError::Malformed { problem, .. }) => {
                ctx.stats().rpc_malformed += 1;
                return Some(Reply::failed("BAD_ARGUMENTS", &problem).into());
            }
            Err(_) => return None,
        };
        let command = registration.command().to_owned();
        let Some(service) = self.by_prefix.get_mut(&command) else {
            return Some(Reply::failed("NO_SUCH_COMMAND", &format!("no service {command}")).into());
        };
        let before = service.clients.clone();
        match registration {
            Registration::Register { addr, .. } if service.clients.contains(&addr) => {}
            Registration::Register { addr, .. } => {
                if service.model == ServiceModel::ExclusiveTight && !service.clients.is_empty() {
                    let why = format!("{command} has its controller");
                    return Some(Reply::failed("DENIED", &why).into());
                }
                service.clients.push(addr);
            }
            Registration::Deregister { addr, .. } => {
                if !service.clients.contains(&addr) {
                    let why = format!("{addr} is not registered");
                    return Some(Reply::failed("NOT_REGISTERED", &why).into());
                }
                service.clients.retain(|c| *c != addr);
            }
            Registration::GetRegistered { .. } => {}
        }
        let list = Value::List(service.clients.iter().map(address_value).collect());
        if service.clients != before {
            let old = if before.is_empty() {
                vec![service.default_target.clone()]
            } else {
                before
            };
            let event = Registered {
                command,
                clients: service.clients.clone(),
            }
            .into_command();
            for to in old {
                let _ = ctx.send(&to, event.clone(), Delivery::Unreliable);
            }
        }
        Some(Reply::ok(vec![list]).into())
    }

    /// `addr` left the bus: it is no client any more.
    /// True if `addr` is registered with one of our services.
    pub(crate) fn engaged_with(&self, addr: &Address) -> bool {
        self.by_prefix.values().any(|s| s.clients.contains(addr))
    }

    /// True if any service has a registered client.
    pub(crate) fn any_open(&self) -> bool {
        self.by_prefix.values().any(|s| !s.clients.is_empty())
    }

    pub(crate) fn peer_left(&mut self, addr: &Address) {
        for s in self.by_prefix.values_mut() {
            s.clients.retain(|c| c != addr);
        }
    }
}
