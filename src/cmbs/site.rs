//! [`Site`]: the CMBS participants of one host, over the host's
//! [`Entities`], with what they see alike kept once.
//!
//! Every member stays an Mbus entity of its own on the wire (its address,
//! hellos, acknowledgements and answers), but the directory and its
//! discovery are the host's: announces are taken once for the whole host
//! ([`Entities::take_once`]), the entity table's changes reach the
//! directory once ([`Entities::follow_table`]), and one entity asks the
//! member entities still undescribed at each discovery round to describe
//! themselves, once per host. The
//! directory is lent to a participant while it acts, so a member resolves
//! recipients exactly as a lone one does. A participant with messages open
//! is told of each new description (a held message offers itself, a line
//! that waited for it settles); one without is not.
//!
//! Like [`Entities`], it is pure and driven from outside: inputs carry
//! `now`, and what the participants hand out (events, store batches) is
//! pulled. Only the participants that were acted on are asked for events
//! and store work, and their timers are kept in one table, so a host of
//! thousands of members wakes only those with something to do.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use crate::proto::maps::HashMap;
use crate::proto::{Deadlines, Endpoint, Entities, EntityId, Event as BusEvent};
use crate::wire::Address;

use super::client::{ask_to_describe, Client};
use super::cmd::{Announce, Leave};
use super::description::Description;
use super::directory::Entry;
use super::event::Event;
use super::member::Member;
use super::persist::StoreBatch;
use super::shared::SharedDirectory;

/// The most undescribed member entities a host asks per discovery round:
/// a host that joins a bus of thousands (or loses announces in a burst of
/// them) learns them at this pace, from one entity.
pub const ASKS_PER_ROUND: usize = 1024;

/// A participant of a [`Site`]: a member, or a plain sender.
#[derive(Debug)]
pub enum Participant {
    /// A member.
    Member(Box<Member>),
    /// A plain sender (a gateway, `rmbus publish`).
    Sender(Box<Client>),
}

impl Participant {
    /// Its client: the outbox and (while it acts) the host's directory.
    pub fn client(&self) -> &Client {
        match self {
            Participant::Member(m) => m.client(),
            Participant::Sender(c) => c,
        }
    }

    fn client_mut(&mut self) -> &mut Client {
        match self {
            Participant::Member(m) => m.client_mut(),
            Participant::Sender(c) => c,
        }
    }

    /// The member, if it is one.
    pub fn member(&self) -> Option<&Member> {
        match self {
            Participant::Member(m) => Some(m),
            Participant::Sender(_) => None,
        }
    }

    fn handle_event(&mut self, ep: &mut Endpoint, now: Instant, e: BusEvent) -> Option<BusEvent> {
        match self {
            Participant::Member(m) => m.handle_event(ep, now, e),
            Participant::Sender(c) => c.handle_event(ep, now, e),
        }
    }

    fn handle_timeout(&mut self, ep: &mut Endpoint, now: Instant) {
        match self {
            Participant::Member(m) => m.handle_timeout(ep, now),
            Participant::Sender(c) => c.handle_timeout(ep, now),
        }
    }

    fn poll_timeout(&self) -> Option<Instant> {
        match self {
            Participant::Member(m) => m.poll_timeout(),
            Participant::Sender(c) => c.poll_timeout(),
        }
    }

    /// Its next event (for one taken out of a site with events left).
    pub fn poll_event(&mut self) -> Option<Event> {
        match self {
            Participant::Member(m) => m.poll_event(),
            Participant::Sender(c) => c.poll_event(),
        }
    }

    fn on_described(&mut self, ep: &mut Endpoint, now: Instant, entry: &Entry) {
        match self {
            Participant::Member(m) => m.on_described(ep, now, entry),
            Participant::Sender(c) => c.on_described(ep, now, entry),
        }
    }

    fn follows_peers(&self) -> bool {
        match self {
            Participant::Member(m) => m.follows_peers(),
            Participant::Sender(_) => false,
        }
    }
}

/// What a [`Site`] hands out.
#[derive(Debug)]
pub enum SiteEvent {
    /// The host's directory changed: [`Event::Joined`], [`Event::Changed`]
    /// or [`Event::Left`], once for all participants.
    Directory(Event),
    /// An event of one participant (a report, a received message, an action).
    Of(EntityId, Event),
}

/// The CMBS participants of one host: see the module docs.
#[derive(Debug)]
pub struct Site {
    /// `None` only while lent to the participant acting.
    directory: Option<Box<SharedDirectory>>,
    participants: BTreeMap<EntityId, Participant>,
    /// The members' entities by member id.
    by_member: HashMap<String, EntityId>,
    timers: Deadlines<EntityId>,
    /// Participants acted on since they were last asked for events.
    telling: BTreeSet<EntityId>,
    /// Participants acted on since they were last asked for store work.
    storing: BTreeSet<EntityId>,
    /// Participants with messages open: told of new descriptions.
    open: BTreeSet<EntityId>,
    /// Participants not yet shown the members the directory knew before
    /// they came (their held messages offer themselves to those once).
    fresh: BTreeSet<EntityId>,
}

impl Site {
    /// A site with no participant yet, whose directory asks at most
    /// [`ASKS_PER_ROUND`] undescribed member entities a round; it sets
    /// `entities` up to feed it once ([`Entities::take_once`] for announces,
    /// [`Entities::follow_table`]).
    pub fn new(entities: &mut Entities) -> Site {
        entities.take_once(Announce::NAME);
        entities.take_once(Leave::NAME);
        entities.follow_table(true);
        Site {
            directory: Some(Box::new(SharedDirectory::new(ASKS_PER_ROUND))),
            participants: BTreeMap::new(),
            by_member: HashMap::default(),
            timers: Deadlines::default(),
            telling: BTreeSet::new(),
            storing: BTreeSet::new(),
            open: BTreeSet::new(),
            fresh: BTreeSet::new(),
        }
    }

    /// The host's directory.
    pub fn directory(&self) -> &SharedDirectory {
        self.directory
            .as_deref()
            .expect("the directory is lent only inside a call")
    }

    /// Adds `participant` on entity `id` of `entities` (added there by the
    /// caller): its directory becomes the host's, and its entity hears the
    /// entity table's changes only while its work needs them. Start a
    /// member with [`Site::with`] ([`Member::start`]).
    pub fn add(&mut self, entities: &mut Entities, id: EntityId, mut participant: Participant) {
        participant.client_mut().make_hosted();
        if let Participant::Member(m) = &participant {
            self.by_member.insert(m.description().id.clone(), id);
        }
        entities.with(id, |ep| ep.set_peer_events(false));
        self.participants.insert(id, participant);
        self.fresh.insert(id);
        self.after_acting(id);
    }

    /// Takes participant `id` out of `entities`' site (the caller removes
    /// its entity next): a member leaves the directory at once. Returns it,
    /// with the events it had not handed out.
    pub fn remove(&mut self, entities: &Entities, id: EntityId) -> Option<Participant> {
        let p = self.participants.remove(&id)?;
        if let (Participant::Member(_), Some(view)) = (&p, entities.endpoint(id)) {
            let dir = self
                .directory
                .as_deref_mut()
                .expect("the directory is lent only inside a call");
            dir.on_left(view.local_address(), crate::proto::LeaveReason::Bye);
        }
        self.fresh.remove(&id);
        if let Participant::Member(m) = &p {
            if self.by_member.get(&m.description().id) == Some(&id) {
                self.by_member.remove(&m.description().id);
            }
        }
        self.timers.remove(&id);
        self.telling.remove(&id);
        self.storing.remove(&id);
        self.open.remove(&id);
        Some(p)
    }

    /// Participant `id`, to look at.
    pub fn participant(&self, id: EntityId) -> Option<&Participant> {
        self.participants.get(&id)
    }

    /// The entity of the member with id `member`.
    pub fn member_entity(&self, member: &str) -> Option<EntityId> {
        self.by_member.get(member).copied()
    }

    /// How many participants there are.
    pub fn len(&self) -> usize {
        self.participants.len()
    }

    /// True if there is none.
    pub fn is_empty(&self) -> bool {
        self.participants.is_empty()
    }

    /// Runs `f` on participant `id` and its endpoint at `now`, with the
    /// host's directory lent to it; `None` if there is no such participant.
    /// A member that announced a description is in the directory at once.
    pub fn with<R>(
        &mut self,
        entities: &mut Entities,
        now: Instant,
        id: EntityId,
        f: impl FnOnce(&mut Participant, &mut Endpoint) -> R,
    ) -> Option<R> {
        let p = self.participants.get_mut(&id)?;
        if let Some(dir) = self.directory.take() {
            p.client_mut().attach(dir);
        }
        let r = entities.with(id, |ep| {
            let r = f(p, ep);
            ep.set_peer_events(p.follows_peers());
            let own = match p {
                Participant::Member(m) => m
                    .take_announced()
                    .then(|| (ep.local_address().clone(), m.description().clone())),
                Participant::Sender(_) => None,
            };
            (r, own)
        });
        if let Some(dir) = p.client_mut().detach() {
            self.directory = Some(dir);
        }
        self.after_acting(id);
        let (r, own) = r.unzip();
        if let Some((address, description)) = own.flatten() {
            // A member of this host is in its directory as soon as it says
            // what it is, not when its announce comes back.
            self.learned(entities, now, address, description);
        }
        if self.fresh.remove(&id) && self.open.contains(&id) {
            self.introduce(entities, now, id);
        }
        r
    }

    /// Held messages participant `id` brought (restored from a store) offer
    /// themselves to the members known before it came, as a lone
    /// participant's would when they answer its describe.
    fn introduce(&mut self, entities: &mut Entities, now: Instant, id: EntityId) {
        let known: Vec<Entry> = self.directory().directory().iter().cloned().collect();
        self.with(entities, now, id, |p, ep| {
            for entry in &known {
                p.on_described(ep, now, entry);
            }
        });
    }

    /// The directory learnt `description` of the member at `address`: the
    /// participants with messages open are told if it is new or changed.
    fn learned(
        &mut self,
        entities: &mut Entities,
        now: Instant,
        address: Address,
        description: Description,
    ) {
        let Some(dir) = self.directory.as_deref_mut() else {
            return;
        };
        if let Some(entry) = dir.learn(address, description) {
            self.tell_open(entities, now, &entry);
        }
    }

    /// `entry` is new or changed in the directory: the participants with
    /// messages open are told.
    fn tell_open(&mut self, entities: &mut Entities, now: Instant, entry: &Entry) {
        let open: Vec<EntityId> = self.open.iter().copied().collect();
        for id in open {
            self.with(entities, now, id, |p, ep| p.on_described(ep, now, entry));
        }
    }

    /// Notes participant `id`'s deadline and that it may have output.
    fn after_acting(&mut self, id: EntityId) {
        let Some(p) = self.participants.get(&id) else {
            return;
        };
        match p.poll_timeout() {
            Some(at) => self.timers.set(id, at),
            None => {
                self.timers.remove(&id);
            }
        }
        if p.client().open_messages() > 0 {
            self.open.insert(id);
        } else {
            self.open.remove(&id);
        }
        self.telling.insert(id);
        self.storing.insert(id);
    }

    // ---- inputs --------------------------------------------------------------------

    /// Takes what [`Entities::poll_host_event`] handed out: announces, and
    /// entities joining and leaving.
    pub fn handle_host_event(&mut self, entities: &mut Entities, now: Instant, event: BusEvent) {
        let dir = self
            .directory
            .as_deref_mut()
            .expect("the directory is lent only inside a call");
        match event {
            BusEvent::Command { src, command, .. } if command.name == Announce::NAME => {
                if let Some(entry) = dir.on_announce(src, &command) {
                    self.tell_open(entities, now, &entry);
                }
            }
            BusEvent::Command { src, command, .. } if command.name == Leave::NAME => {
                dir.on_leave(&src, &command);
            }
            BusEvent::PeerJoined(addr) => {
                // A member announces itself as it starts, usually in the
                // very datagram that makes it known (the table's change
                // comes first): it is asked only if it is still undescribed
                // at the next discovery round.
                dir.on_joined(now, &addr);
            }
            BusEvent::PeerLeft { addr, reason } => dir.on_left(&addr, reason),
            _ => {}
        }
    }

    /// Takes an event of entity `id` (from [`Entities::poll_event`]): an
    /// announce that reached one entity feeds the host's directory; the rest
    /// goes to the participant. What CMBS does not take comes back.
    pub fn handle_event(
        &mut self,
        entities: &mut Entities,
        now: Instant,
        id: EntityId,
        event: BusEvent,
    ) -> Option<BusEvent> {
        if let BusEvent::Command { command, .. } = &event {
            if command.name == Announce::NAME || command.name == Leave::NAME {
                self.handle_host_event(entities, now, event);
                return None;
            }
        }
        if !self.participants.contains_key(&id) {
            return Some(event);
        }
        self.with(entities, now, id, |p, ep| p.handle_event(ep, now, event))
            .flatten()
    }

    /// The timers due at `now`: the directory's discovery round (asked by
    /// one entity for the whole host), then the participants whose deadline
    /// has come.
    pub fn handle_timeout(&mut self, entities: &mut Entities, now: Instant) {
        let asks = self
            .directory
            .as_deref_mut()
            .map(|d| d.asks_due(now, None))
            .unwrap_or_default();
        if !asks.is_empty() {
            if let Some(asker) = self.participants.keys().next().copied() {
                entities.with(asker, |ep| {
                    for addr in &asks {
                        ask_to_describe(ep, now, addr);
                    }
                });
            }
        }
        for id in self.timers.take_due(now) {
            self.with(entities, now, id, |p, ep| p.handle_timeout(ep, now));
        }
    }

    /// A store batch is done: `member`'s batch `ticket`, with its result.
    pub fn store_done(
        &mut self,
        entities: &mut Entities,
        now: Instant,
        member: &str,
        ticket: u64,
        result: Result<(), String>,
    ) {
        let Some(id) = self.member_entity(member) else {
            return;
        };
        self.with(entities, now, id, |p, ep| {
            if let Participant::Member(m) = p {
                m.store_done(ep, now, ticket, result);
            }
        });
    }

    /// An execute job of participant `id` ended (see [`Member::exec_done`]).
    pub fn exec_done(
        &mut self,
        entities: &mut Entities,
        now: Instant,
        id: EntityId,
        ticket: u64,
        result: Result<serde_json::Value, String>,
    ) {
        self.with(entities, now, id, |p, ep| {
            if let Participant::Member(m) = p {
                m.exec_done(ep, now, ticket, result);
            }
        });
    }

    // ---- outputs -------------------------------------------------------------------

    /// When [`Site::handle_timeout`] is due next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let discovery = self.directory().poll_timeout();
        discovery.into_iter().chain(self.timers.next()).min()
    }

    /// The next store batch of any member acted on.
    pub fn poll_store(&mut self) -> Option<StoreBatch> {
        while let Some(&id) = self.storing.first() {
            if let Some(Participant::Member(m)) = self.participants.get_mut(&id) {
                if let Some(batch) = m.poll_store() {
                    return Some(batch);
                }
            }
            self.storing.remove(&id);
        }
        None
    }

    /// The next event: the directory's changes first, then each
    /// participant's acted on.
    pub fn poll_event(&mut self) -> Option<SiteEvent> {
        if let Some(e) = self.directory.as_deref_mut().and_then(|d| d.poll_event()) {
            return Some(SiteEvent::Directory(e));
        }
        while let Some(&id) = self.telling.first() {
            if let Some(e) = self.participants.get_mut(&id).and_then(|p| p.poll_event()) {
                return Some(SiteEvent::Of(id, e));
            }
            self.telling.remove(&id);
        }
        None
    }
}
