//! Event notifications, service models and registration (Guidelines §5.5,
//! §6; `mbus.md` §9.6, §9.7) in the [`Endpoint`].

use std::collections::BTreeMap;
use std::time::Instant;

use crate::rpc::{address_value, value_address, Answer, Reply, ServiceModel};
use crate::wire::{Address, Command, Value};

use super::{Delivery, Endpoint, SendError};

#[derive(Debug)]
struct Service {
    default_target: Address,
    model: ServiceModel,
    clients: Vec<Address>,
}

/// The services one endpoint offers, by command prefix.
#[derive(Debug, Default)]
pub(super) struct Services {
    by_prefix: BTreeMap<String, Service>,
}

impl Services {
    /// The service whose prefix covers `name` (the longest one).
    fn covering(&self, name: &str) -> Option<(&str, &Service)> {
        self.by_prefix
            .iter()
            .filter(|(p, _)| {
                name == p.as_str()
                    || (name.starts_with(p.as_str()) && name.as_bytes().get(p.len()) == Some(&b'.'))
            })
            .max_by_key(|(p, _)| p.len())
            .map(|(p, s)| (p.as_str(), s))
    }
}

/// The registration RPCs (Guidelines §6.1).
const REGISTRATION: [&str; 3] = ["mbus.register", "mbus.deregister", "mbus.get-registered"];

impl Endpoint {
    /// Offers the commands under `prefix` (e.g. `audio.levels`) as a service
    /// with `model`; its event notifications ([`Endpoint::notify`]) go to
    /// `default_target` until clients register with `mbus.register`.
    pub fn define_service(&mut self, prefix: &str, default_target: Address, model: ServiceModel) {
        let clients = self
            .services
            .by_prefix
            .remove(prefix)
            .map(|s| s.clients)
            .unwrap_or_default();
        self.services.by_prefix.insert(
            prefix.to_owned(),
            Service {
                default_target,
                model,
                clients,
            },
        );
    }

    /// The clients registered for service `prefix`.
    pub fn registered(&self, prefix: &str) -> &[Address] {
        self.services
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
    ) -> Result<usize, SendError> {
        let Some((_, service)) = self.services.covering(name) else {
            return Err(SendError::NoSuchService(name.to_owned()));
        };
        let targets = match (service.clients.is_empty(), service.model) {
            (false, _) => service.clients.clone(),
            (true, ServiceModel::NoControl) => vec![service.default_target.clone()],
            (true, _) => Vec::new(),
        };
        let cmd = Command::new(name, args);
        cmd.validate()?;
        for to in &targets {
            self.send_quietly(now, to, cmd.clone(), true)?;
        }
        Ok(targets.len())
    }

    // ---- hooks ----------------------------------------------------------------------

    /// True if `src` may use `name`: always, unless `name` is under a tight
    /// service and `src` is not a registered controller (its address
    /// contains a registered address).
    pub(super) fn allowed(&self, src: &Address, name: &str) -> bool {
        match self.services.covering(name) {
            Some((_, s)) if s.model != ServiceModel::NoControl => {
                s.clients.iter().any(|c| c.is_subset_of(src))
            }
            _ => true,
        }
    }

    /// Answers a registration RPC if `name` is one and this entity offers
    /// services; `None` otherwise.
    pub(super) fn registration_request(
        &mut self,
        now: Instant,
        name: &str,
        args: &[Value],
    ) -> Option<Answer> {
        if !REGISTRATION.contains(&name) || self.services.by_prefix.is_empty() {
            return None;
        }
        let (command, addr) = match (name, args) {
            ("mbus.get-registered", [Value::String(c)]) => (c, None),
            ("mbus.register" | "mbus.deregister", [Value::String(c), a]) => {
                match value_address(a) {
                    Some(a) => (c, Some(a)),
                    None => return Some(bad("the address must be a map of (tag value) strings")),
                }
            }
            _ => return Some(bad("expected (command) or (command address)")),
        };
        let Some(service) = self.services.by_prefix.get_mut(command.as_str()) else {
            return Some(Reply::failed("NO_SUCH_COMMAND", &format!("no service {command}")).into());
        };
        let before = service.clients.clone();
        match (name, addr) {
            ("mbus.register", Some(a)) if service.clients.contains(&a) => {}
            ("mbus.register", Some(a)) => {
                if service.model == ServiceModel::ExclusiveTight && !service.clients.is_empty() {
                    let why = format!("{command} has its controller");
                    return Some(Reply::failed("DENIED", &why).into());
                }
                service.clients.push(a);
            }
            ("mbus.deregister", Some(a)) => {
                if !service.clients.contains(&a) {
                    return Some(
                        Reply::failed("NOT_REGISTERED", &format!("{a} is not registered")).into(),
                    );
                }
                service.clients.retain(|c| *c != a);
            }
            _ => {}
        }
        let list = Value::List(service.clients.iter().map(address_value).collect());
        if service.clients != before {
            let old = if before.is_empty() {
                vec![service.default_target.clone()]
            } else {
                before
            };
            let event = Command::new(
                "mbus.registered",
                vec![Value::string(command.clone()), list.clone()],
            );
            for to in old {
                let _ = self.send(now, &to, vec![event.clone()], Delivery::Unreliable);
            }
        }
        Some(Reply::ok(vec![list]).into())
    }

    /// `addr` left the bus: it is no client any more.
    pub(super) fn services_peer_left(&mut self, addr: &Address) {
        for s in self.services.by_prefix.values_mut() {
            s.clients.retain(|c| c != addr);
        }
    }
}

fn bad(why: &str) -> Answer {
    Reply::failed("BAD_ARGUMENTS", why).into()
}
