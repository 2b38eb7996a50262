//! [`Entities`]: the entities of one host and what they share, as one pure
//! state machine (the shape of quinn-proto's `Endpoint` over its
//! `Connection`s).
//!
//! Every datagram is opened and screened once ([`Shared::screen`]: the
//! replay guard, the entity table), then handed only to the entities its
//! destination designates (RFC 3259 §4's subset rule, answered through an
//! index of the entities' address elements): a datagram to `()` reaches every
//! entity once, one to a complete address reaches that entity alone. Hellos
//! and byes (RFC 3259 §9.1–§9.2) change only the shared table and reach no
//! entity. A change of the table reaches the entities that follow it (their
//! application wants peer events, or they have work the change may affect).
//!
//! Timers are kept in one table by entity, so a host of thousands wakes only
//! the entities whose deadline has come, and only entities that were acted
//! on are asked for datagrams and events.
//!
//! What a layer above keeps once for the whole host (CMBS's directory) is
//! fed once too, through [`Entities::poll_host_event`]: the table's changes
//! when [`Entities::follow_table`] is on, and the commands registered with
//! [`Entities::take_once`], which an unreliable datagram to several entities
//! hands to the host once instead of to each entity.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::SocketAddr;
use std::time::{Instant, SystemTime};

use crate::auth::{open, Rejection};
use crate::proto::maps::HashMap;
use crate::wire::{Address, Message, MessageType};

use super::cmd::TransportCommand;
use super::deadlines::Deadlines;
use super::index::{Candidates, ElementIndex};
use super::peers::Peer;
use super::shared::{PeerChange, Screened, Shared};
use super::{Endpoint, EndpointConfig, Event, LeaveReason, SendError, SetupError, Stats, Transmit};

/// An entity of a host ([`Entities`], `runtime::Host`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EntityId(pub u64);

/// The entities of one host and what they share: see the module docs.
///
/// Drive it like an [`Endpoint`]: datagrams in with
/// [`Entities::handle_datagram`] (or [`Entities::handle_opened`]), timers with
/// [`Entities::handle_timeout`] at [`Entities::poll_timeout`], then
/// [`Entities::poll_transmit`] and [`Entities::poll_event`] until `None`. Act on
/// one entity with [`Entities::with`].
#[derive(Debug)]
pub struct Entities {
    /// The keys every datagram is opened with.
    keys: crate::auth::Keys,
    /// `None` only while lent to the entity being acted on.
    shared: Option<Box<Shared>>,
    /// Boxed: a B-tree node holds several, and an endpoint is large.
    endpoints: BTreeMap<EntityId, Box<Endpoint>>,
    /// The entities by their complete address.
    by_address: HashMap<Address, EntityId>,
    /// The entities by the elements of their address.
    by_element: ElementIndex<EntityId>,
    /// When each entity's timers are due.
    timers: Deadlines<EntityId>,
    /// Entities acted on since they were last asked for datagrams.
    sending: BTreeSet<EntityId>,
    /// Entities acted on since they were last asked for events.
    telling: BTreeSet<EntityId>,
    /// Entities that follow the entity table's changes.
    followers: BTreeSet<EntityId>,
    /// The entity the shared state is lent to, if any.
    lent_to: Option<EntityId>,
    /// What removed entities had left to send (their byes).
    leftovers: VecDeque<(EntityId, Transmit)>,
    next_id: u64,
    /// Command names taken once for the whole host ([`Entities::take_once`]).
    once: BTreeSet<String>,
    /// True if the table's changes are handed to the host too.
    follows_table: bool,
    /// What the host is told once: see [`Entities::poll_host_event`].
    host_events: VecDeque<Event>,
    /// Datagrams whose commands went to the host once.
    taken_once: u64,
}

/// A read-only view of one entity of [`Entities`], with the shared entity
/// table it sees.
#[derive(Debug, Clone, Copy)]
pub struct EntityView<'a> {
    endpoint: &'a Endpoint,
    shared: &'a Shared,
}

impl<'a> EntityView<'a> {
    pub(crate) fn new(endpoint: &'a Endpoint, shared: &'a Shared) -> EntityView<'a> {
        EntityView { endpoint, shared }
    }

    /// Its complete address.
    pub fn local_address(&self) -> &'a Address {
        self.endpoint.transport().local_address()
    }

    /// The entities it knows of (not itself), in the order they joined.
    pub fn peers(&self) -> impl Iterator<Item = &'a Peer> + 'a {
        self.endpoint.transport().peers_in(self.shared)
    }

    /// The known entity with exactly this address.
    pub fn peer(&self, addr: &Address) -> Option<&'a Peer> {
        self.endpoint.transport().peer_in(self.shared, addr)
    }

    /// The entities on the bus as it sees them, itself included.
    pub fn entities(&self) -> usize {
        self.endpoint.transport().entities_in(self.shared)
    }

    /// Its counters (rejections, evictions and untracked senders are the
    /// host's, see [`Endpoint::stats`]).
    pub fn stats(&self) -> Stats {
        self.endpoint.transport().stats_in(self.shared)
    }

    /// Its reliable messages not yet acknowledged or failed.
    pub fn in_flight(&self) -> usize {
        self.endpoint.in_flight()
    }

    /// True once it has been closed.
    pub fn is_closed(&self) -> bool {
        self.endpoint.is_closed()
    }

    /// The complete address of the one known entity `dst` designates.
    pub fn unique_match(&self, dst: &Address) -> Result<Address, SendError> {
        self.endpoint.transport().unique_match_in(self.shared, dst)
    }

    /// `dst` itself if it is the complete address of one known entity (see
    /// [`Endpoint::resolve`]).
    pub fn resolve(&self, dst: &Address) -> Result<Address, SendError> {
        self.endpoint.transport().resolve_in(self.shared, dst)
    }

    /// The conditions it is waiting for, in name order.
    pub fn waiting_for(&self) -> impl Iterator<Item = &'a str> + 'a {
        self.endpoint.waiting_for()
    }

    /// How long a reliable message is tried before it is reported failed.
    pub fn retransmit_window(&self) -> std::time::Duration {
        self.endpoint.retransmit_window()
    }

    /// The sources of datagrams that failed authentication (the host's).
    pub fn unauthenticated_sources(&self) -> &'a [super::UnauthenticatedSource] {
        self.shared.unauthenticated_sources()
    }

    /// When its timers are due next (the shared table's expiry is the
    /// host's, see [`Entities::poll_timeout`]).
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.endpoint.poll_timeout()
    }
}

/// True for a message that only says hello or bye, without acks: it
/// changes the shared entity table and nothing of any entity.
fn only_presence(msg: &Message) -> bool {
    msg.header.kind == MessageType::Unreliable
        && msg.header.acks.is_empty()
        && !msg.commands.is_empty()
        && msg.commands.iter().all(|c| {
            matches!(
                TransportCommand::from_command(c),
                Ok(TransportCommand::Hello(_) | TransportCommand::Bye(_))
            )
        })
}

impl Entities {
    /// A host with no entity yet, whose entities will use `config`'s keys,
    /// timers, limits and replay policy, created at `now` (`wall` being the
    /// wall clock then).
    pub fn new(config: &EndpointConfig, now: Instant, wall: SystemTime) -> Entities {
        Entities {
            keys: config.keys.clone(),
            shared: Some(Box::new(Shared::new(config, now, wall))),
            endpoints: BTreeMap::new(),
            by_address: HashMap::default(),
            by_element: ElementIndex::default(),
            timers: Deadlines::default(),
            sending: BTreeSet::new(),
            telling: BTreeSet::new(),
            followers: BTreeSet::new(),
            lent_to: None,
            leftovers: VecDeque::new(),
            next_id: 0,
            once: BTreeSet::new(),
            follows_table: false,
            host_events: VecDeque::new(),
            taken_once: 0,
        }
    }

    /// Hands commands named `name` to the host once: an unreliable datagram
    /// without acks, to at least one entity, whose commands all are such
    /// commands, reaches no entity, and each of its commands comes out of
    /// [`Entities::poll_host_event`] once (as [`Event::Command`]), whatever
    /// the number of entities it designates. Such a datagram asks nothing
    /// of any one entity (RFC 3259 §6: no acknowledgement is owed), so what
    /// the host keeps once for all of them is fed once. A reliable datagram
    /// still reaches its entity, which acknowledges it and hands its
    /// commands out as usual. It holds for the whole host: an entity that
    /// is not fed by what the host takes once (by `cmbs::Site`, say) does
    /// not see such datagrams.
    pub fn take_once(&mut self, name: &str) {
        self.once.insert(name.to_owned());
    }

    /// With `on`, every change of the shared entity table (an entity joined,
    /// or left and why) also comes out of [`Entities::poll_host_event`] once,
    /// as [`Event::PeerJoined`] and [`Event::PeerLeft`]. A host entity's own
    /// address is among them: the host's entities are each other's peers.
    pub fn follow_table(&mut self, on: bool) {
        self.follows_table = on;
    }

    /// Datagrams whose commands were handed to the host once
    /// ([`Entities::take_once`]) instead of to each entity they designate.
    pub fn taken_once(&self) -> u64 {
        self.taken_once
    }

    /// Adds an entity with address `local` (which must hold an `id` element,
    /// and be no other entity's) and its own `config` (seed, first SeqNum; its
    /// keys, timers and limits should be the host's), joining at `now`.
    pub fn add(
        &mut self,
        config: EndpointConfig,
        local: Address,
        now: Instant,
        wall: SystemTime,
    ) -> Result<EntityId, SetupError> {
        self.add_entity(config, local, now, wall, true)
    }

    /// As [`Entities::add`], with the entity's peer events off from the
    /// start ([`Endpoint::set_peer_events`]): it is not told of the
    /// entities the host knows already, as it would not be told of later
    /// ones. What a host of many keeps for all of them (`cmbs::Site`) adds
    /// its entities so, and a host of thousands does not queue thousands of
    /// events for each newcomer.
    pub fn add_without_peer_events(
        &mut self,
        config: EndpointConfig,
        local: Address,
        now: Instant,
        wall: SystemTime,
    ) -> Result<EntityId, SetupError> {
        self.add_entity(config, local, now, wall, false)
    }

    fn add_entity(
        &mut self,
        config: EndpointConfig,
        local: Address,
        now: Instant,
        wall: SystemTime,
        peer_events: bool,
    ) -> Result<EntityId, SetupError> {
        if self.by_address.contains_key(&local) {
            return Err(SetupError::TakenAddress(local));
        }
        let mut endpoint = Endpoint::new(config, local.clone(), now, wall)?;
        endpoint.make_hosted();
        endpoint.set_peer_events(peer_events);
        let id = EntityId(self.next_id);
        self.next_id += 1;
        self.by_element.insert(&local, id);
        self.by_address.insert(local, id);
        self.endpoints.insert(id, Box::new(endpoint));
        self.after_acting(id);
        if !peer_events {
            return Ok(id);
        }
        // It learns the bus the host already knows as a lone entity would,
        // one entity at a time.
        let known: Vec<Address> = self.shared().peers().map(|p| p.address.clone()).collect();
        for addr in known {
            self.with(id, |ep| ep.apply_change(now, &PeerChange::Joined(addr)));
        }
        Ok(id)
    }

    /// Closes entity `id` (its unfinished messages, calls and transactions
    /// failed) and removes it; what it had left to send, its bye last, goes
    /// out through [`Entities::poll_transmit`]. Returns the events it had not
    /// handed out; `None` if there is no such entity.
    pub fn remove(&mut self, id: EntityId, now: Instant) -> Option<Vec<Event>> {
        self.with(id, |ep| ep.close(now))?;
        while let Some(t) = self.with(id, |ep| ep.poll_transmit(now)).flatten() {
            self.leftovers.push_back((id, t));
        }
        let mut endpoint = self.endpoints.remove(&id)?;
        let events = std::iter::from_fn(|| endpoint.poll_event()).collect();
        let local = endpoint.local_address().clone();
        self.by_element.remove(&local, id);
        self.by_address.remove(&local);
        self.timers.remove(&id);
        self.sending.remove(&id);
        self.telling.remove(&id);
        self.followers.remove(&id);
        // Its own bye, when it comes back, finds it gone already.
        self.shared_mut().remove(&local, LeaveReason::Bye);
        self.hand_out_changes(now);
        Some(events)
    }

    // ---- views -------------------------------------------------------------------

    /// The entities, in the order they were added.
    pub fn ids(&self) -> impl Iterator<Item = EntityId> + '_ {
        self.endpoints.keys().copied()
    }

    /// How many entities there are.
    pub fn len(&self) -> usize {
        self.endpoints.len()
    }

    /// True if there is none.
    pub fn is_empty(&self) -> bool {
        self.endpoints.is_empty()
    }

    /// The entity with this complete address.
    pub fn id_of(&self, local: &Address) -> Option<EntityId> {
        self.by_address.get(local).copied()
    }

    /// What the entities share: the entity table, the replay guard, the
    /// sources that failed authentication, and their counters.
    pub fn shared(&self) -> &Shared {
        self.shared
            .as_deref()
            .expect("the shared state is lent only inside a call")
    }

    fn shared_mut(&mut self) -> &mut Shared {
        self.shared
            .as_deref_mut()
            .expect("the shared state is lent only inside a call")
    }

    /// Entity `id`, to look at.
    pub fn endpoint(&self, id: EntityId) -> Option<EntityView<'_>> {
        Some(EntityView {
            endpoint: self.endpoints.get(&id)?,
            shared: self.shared(),
        })
    }

    // ---- acting on one entity ------------------------------------------------------

    /// Runs `f` on entity `id`'s endpoint, with the shared state lent to it;
    /// `None` if there is no such entity. What `f` produced is handed out by
    /// [`Entities::poll_transmit`] and [`Entities::poll_event`].
    pub fn with<R>(&mut self, id: EntityId, f: impl FnOnce(&mut Endpoint) -> R) -> Option<R> {
        self.lend(id)?;
        let r = self.endpoints.get_mut(&id).map(|ep| f(ep));
        self.take_back(id);
        r
    }

    /// Lends the shared state to entity `id` until [`Entities::take_back`]
    /// (what a runtime's handle on one entity does for its lifetime).
    pub(crate) fn lend(&mut self, id: EntityId) -> Option<&mut Endpoint> {
        let endpoint = self.endpoints.get_mut(&id)?;
        if self.lent_to.is_none() {
            if let Some(shared) = self.shared.take() {
                endpoint.attach(shared);
                self.lent_to = Some(id);
            }
        }
        Some(endpoint)
    }

    /// The endpoint the shared state is lent to.
    #[cfg_attr(not(feature = "runtime"), allow(dead_code))]
    pub(crate) fn lent(&mut self, id: EntityId) -> Option<&mut Endpoint> {
        if self.lent_to != Some(id) {
            return None;
        }
        self.endpoints.get_mut(&id).map(|ep| &mut **ep)
    }

    /// The endpoint the shared state is lent to, to look at.
    #[cfg_attr(not(feature = "runtime"), allow(dead_code))]
    pub(crate) fn lent_ref(&self, id: EntityId) -> Option<&Endpoint> {
        if self.lent_to != Some(id) {
            return None;
        }
        self.endpoints.get(&id).map(|ep| &**ep)
    }

    /// Takes the shared state back from entity `id`, and notes what acting
    /// on it changed (its deadline, its output, its following the table).
    pub(crate) fn take_back(&mut self, id: EntityId) {
        if self.lent_to != Some(id) {
            return;
        }
        self.lent_to = None;
        if let Some(shared) = self.endpoints.get_mut(&id).and_then(|ep| ep.detach()) {
            self.shared = Some(shared);
        }
        self.after_acting(id);
    }

    /// Notes entity `id`'s deadline, output and whether it follows the table.
    fn after_acting(&mut self, id: EntityId) {
        let Some(ep) = self.endpoints.get(&id) else {
            return;
        };
        match ep.poll_timeout() {
            Some(at) => self.timers.set(id, at),
            None => {
                self.timers.remove(&id);
            }
        }
        if ep.follows_peers() {
            self.followers.insert(id);
        } else {
            self.followers.remove(&id);
        }
        self.sending.insert(id);
        self.telling.insert(id);
    }

    /// Hands each queued change of the entity table to the entities that
    /// follow it.
    fn hand_out_changes(&mut self, now: Instant) {
        while let Some(change) = self.shared_mut().poll_change() {
            if self.follows_table {
                self.host_events.push_back(match &change {
                    PeerChange::Joined(addr) => Event::PeerJoined(addr.clone()),
                    PeerChange::Left(addr, reason) => Event::PeerLeft {
                        addr: addr.clone(),
                        reason: *reason,
                    },
                });
            }
            let followers: Vec<EntityId> = self.followers.iter().copied().collect();
            for id in followers {
                self.with(id, |ep| ep.apply_change(now, &change));
            }
        }
    }

    // ---- inputs --------------------------------------------------------------------

    /// Re-anchors the wall clock of the shared replay check and of every
    /// entity's TimeStamps (see [`Endpoint::set_wall_clock`]).
    pub fn set_wall_clock(&mut self, now: Instant, wall: SystemTime) {
        self.shared_mut().set_wall_clock(now, wall);
        for ep in self.endpoints.values_mut() {
            ep.set_wall_clock(now, wall);
        }
    }

    /// One datagram from the bus: opened once with the host's keys, then as
    /// [`Entities::handle_opened`].
    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddr, data: &[u8]) {
        let opened = open(data, &self.keys);
        self.handle_opened(now, from, opened.as_ref());
    }

    /// One datagram the driver has opened ([`crate::auth::open`]) with the
    /// host's keys: screened once, then routed to the entities it designates.
    pub fn handle_opened(
        &mut self,
        now: Instant,
        from: SocketAddr,
        opened: Result<&Message, &Rejection>,
    ) {
        let msg = match opened {
            Ok(msg) => msg,
            Err(rejection) => {
                self.shared_mut().reject(from, rejection);
                return;
            }
        };
        let Some(mut shared) = self.shared.take() else {
            return;
        };
        let endpoints = &self.endpoints;
        let busy = |a: &Address| endpoints.values().any(|ep| ep.engaged_with(a));
        let screened = shared.screen(now, from, &msg.header, &busy);
        self.shared = Some(shared);
        // A newcomer is known before its message is handled, as a lone
        // entity sees it.
        self.hand_out_changes(now);
        let targets: Vec<EntityId> = match screened {
            Screened::Fresh { .. } if only_presence(msg) => {
                let src = &msg.header.src;
                if msg.commands.iter().any(|c| c.name == "mbus.bye") {
                    self.shared_mut().remove(src, LeaveReason::Bye);
                }
                Vec::new()
            }
            Screened::Fresh { .. } if self.for_the_host(msg) => {
                if self.designating(&msg.header.dst).next().is_some() {
                    self.taken_once += 1;
                    for command in &msg.commands {
                        self.host_events.push_back(Event::Command {
                            src: msg.header.src.clone(),
                            reliable: false,
                            command: command.clone(),
                        });
                    }
                }
                Vec::new()
            }
            Screened::Fresh { .. } => self.designating(&msg.header.dst).collect(),
            // A copy matters only to the entity it was sent to exactly (a
            // reliable one is acknowledged again).
            Screened::Refused(_) => self.id_of(&msg.header.dst).into_iter().collect(),
        };
        for id in targets {
            self.with(id, |ep| ep.handle_screened(now, msg, screened));
        }
        self.hand_out_changes(now);
    }

    /// True for an unreliable datagram without acks whose commands all are
    /// taken once for the host ([`Entities::take_once`]).
    fn for_the_host(&self, msg: &Message) -> bool {
        !self.once.is_empty()
            && msg.header.kind == MessageType::Unreliable
            && msg.header.acks.is_empty()
            && !msg.commands.is_empty()
            && msg.commands.iter().all(|c| self.once.contains(&c.name))
    }

    /// The entities `dst` designates (RFC 3259 §4), in the order they were
    /// added: the candidates the address index gives, checked by the
    /// subset rule.
    fn designating<'a>(&'a self, dst: &'a Address) -> impl Iterator<Item = EntityId> + 'a {
        let ids: Box<dyn Iterator<Item = &EntityId>> = match self.by_element.candidates(dst) {
            Candidates::All => Box::new(self.endpoints.keys()),
            Candidates::Some(ids) => Box::new(ids.iter()),
            Candidates::None => Box::new(std::iter::empty()),
        };
        ids.filter(move |id| {
            self.endpoints
                .get(id)
                .is_some_and(|ep| dst.is_subset_of(ep.local_address()))
        })
        .copied()
    }

    /// The timers due at `now`: the shared table's expiry, then the
    /// entities whose deadline has come.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.shared().next_deadline().is_some_and(|at| at <= now) {
            self.shared_mut().handle_timeout(now);
            self.hand_out_changes(now);
        }
        for id in self.timers.take_due(now) {
            self.with(id, |ep| ep.handle_timeout(now));
        }
    }

    // ---- outputs -------------------------------------------------------------------

    /// When [`Entities::handle_timeout`] is due next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let shared = self.shared().next_deadline();
        let entities = self.timers.next();
        shared.into_iter().chain(entities).min()
    }

    /// The next datagram any entity has to send, with the entity's id.
    pub fn poll_transmit(&mut self, now: Instant) -> Option<(EntityId, Transmit)> {
        if let Some(left) = self.leftovers.pop_front() {
            return Some(left);
        }
        while let Some(&id) = self.sending.first() {
            if let Some(t) = self.with(id, |ep| ep.poll_transmit(now)).flatten() {
                return Some((id, t));
            }
            self.sending.remove(&id);
        }
        None
    }

    /// The next event for the host as a whole: a change of the entity table
    /// ([`Entities::follow_table`]) or a command taken once
    /// ([`Entities::take_once`]), in the order they happened.
    pub fn poll_host_event(&mut self) -> Option<Event> {
        self.host_events.pop_front()
    }

    /// The next event of any entity, with the entity's id.
    pub fn poll_event(&mut self) -> Option<(EntityId, Event)> {
        while let Some(&id) = self.telling.first() {
            if let Some(event) = self.endpoints.get_mut(&id).and_then(|ep| ep.poll_event()) {
                return Some((id, event));
            }
            self.telling.remove(&id);
        }
        None
    }
}

impl super::SansIo for Entities {
    type Event = (EntityId, Event);

    fn handle_datagram(&mut self, now: Instant, from: SocketAddr, data: &[u8]) {
        Entities::handle_datagram(self, now, from, data);
    }

    fn handle_timeout(&mut self, now: Instant) {
        Entities::handle_timeout(self, now);
    }

    fn poll_transmit(&mut self, now: Instant) -> Option<Transmit> {
        Entities::poll_transmit(self, now).map(|(_, t)| t)
    }

    fn poll_event(&mut self) -> Option<(EntityId, Event)> {
        Entities::poll_event(self)
    }

    fn poll_timeout(&self) -> Option<Instant> {
        Entities::poll_timeout(self)
    }
}
