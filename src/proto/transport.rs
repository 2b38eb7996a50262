//! The transport: one entity's RFC 3259 machine (§6–§10) without the
//! Guidelines layer. It accepts datagrams, keeps the hello schedule, sends
//! and retransmits reliable messages, acknowledges and suppresses
//! duplicates, and queues what the application should know. What it shares
//! with the other entities of its host (the entity table, the replay guard,
//! the memory of unauthenticated sources) is a [`Shared`]: its own when it
//! stands alone, the host's while the host lets it act ([`Transport::attach`]). The [`super::Endpoint`] wraps it with the Guidelines
//! sub-machines and routes the commands it accepts.
//!
//! The delivery outcome of a reliable message that a sub-machine sent on its
//! own behalf (a call's request, a return, a notification) is not an event for
//! the application: such messages carry an [`Owner`], and their outcomes are
//! set aside as [`Settled`] notices for the endpoint to route.

use std::collections::{BTreeMap, VecDeque};

use crate::proto::maps::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};

use crate::auth::{open, seal_view, sealed_len, Rejection};

use super::acks::AcksOwed;
use super::shared::{PeerChange, Screened, Shared};
use super::unauthenticated::UnauthenticatedSource;
use crate::rpc::{CallId, TxnId};
use crate::wire::{
    timestamp_of, Address, Command, EncodeError, Header, Message, MessageType, MessageView,
    MAX_DATAGRAM,
};

use super::batch::{Batch, Batches};
use super::cmd::{Hello, Ping, Waiting};
use super::deadlines::Deadlines;
use super::hello::HelloTimer;
use super::peers::Peer;
use super::reliable::{DuplicateMemory, Fired, InFlight, InFlightTable, RetransmitPolicy};
use super::replay::ReplayVerdict;
use super::rng::Rng;
use super::{
    Delivery, EndpointConfig, Event, LeaveReason, MsgId, SendError, SetupError, Stats, Transmit,
};

/// The room for events an emptied queue keeps.
const EVENTS_KEPT: usize = 16;

/// Who a reliable message's delivery outcome goes to, when not to the
/// application.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Owner {
    /// Nobody: it settles quietly (returns, notifications, replies).
    Quiet,
    /// The call whose request it is: failure makes the call undeliverable.
    Call(CallId),
    /// The client transaction it belongs to: failure ends it.
    Txn(TxnId),
}

/// The outcome of an owned reliable message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Settled {
    pub(crate) owner: Owner,
    pub(crate) delivered: bool,
}

/// A datagram opened (authenticated and parsed) for the transport: owned
/// when one endpoint opened it, shared when a host opened it once for all
/// its entities (the one it is for copies what it keeps).
#[derive(Debug)]
pub(crate) enum Opened<'a> {
    /// This endpoint's own.
    Owned(Message),
    /// Shared with other entities.
    Shared(&'a Message),
}

impl Opened<'_> {
    fn header(&self) -> &Header {
        match self {
            Opened::Owned(m) => &m.header,
            Opened::Shared(m) => &m.header,
        }
    }

    fn into_message(self) -> Message {
        match self {
            Opened::Owned(m) => m,
            Opened::Shared(m) => m.clone(),
        }
    }
}

/// A message the transport accepted: authentic, from a peer, for us, and
/// (if reliable) not a duplicate. Its commands are for the endpoint to route.
#[derive(Debug)]
pub(crate) struct Accepted {
    pub(crate) header: Header,
    pub(crate) reliable: bool,
    pub(crate) commands: Vec<Command>,
}

/// Where a send's commands went.
enum Queued {
    /// Into an open batch, to go at the next drain.
    Batched,
    /// Nowhere: an ordered send whose destination's open batch is full
    /// (handed back to wait for that batch to settle).
    NoRoom(Vec<Command>),
}

/// The conditions we announce with `mbus.waiting` until released.
#[derive(Debug, Default)]
struct Waits {
    /// When each is announced next.
    next: Deadlines<String>,
    /// Where each is announced.
    dst: BTreeMap<String, Address>,
}

/// Whether the sub-machines above the transport have something open with an
/// entity (a call, a request being served, a transaction, a watch or a
/// service registration): such an entity is not evicted.
pub(crate) type Engaged<'a> = &'a dyn Fn(&Address) -> bool;

/// A reliable send waiting for its destination to appear
/// ([`Transport::send_within`]).
#[derive(Debug)]
struct Parked {
    dst: Address,
    commands: Vec<Command>,
    delivery: Delivery,
}

/// One entity's RFC 3259 state.
#[derive(Debug)]
pub(crate) struct Transport {
    config: EndpointConfig,
    policy: RetransmitPolicy,
    local: Address,
    /// The monotonic instant and wall-clock milliseconds of one moment: every
    /// TimeStamp is derived from it, so `now` stays the only time input.
    anchor: (Instant, u64),
    rng: Rng,
    next_seq: u32,
    next_id: u64,
    /// The entity table and the rest of what a host's entities share: this
    /// entity's own, or the host's while it is attached (`None` while a
    /// host holds it detached).
    shared: Option<Box<Shared>>,
    /// True for an entity of a host of several: table changes and expiry
    /// are the host's to run and to hand out.
    hosted: bool,
    /// Whether the application hears peers join and leave as events.
    peer_events: bool,
    /// The acks this entity owes.
    acks: AcksOwed,
    hello: HelloTimer,
    /// When the hello that answers pings goes out.
    ping_reply: Option<Instant>,
    /// Pings until then are covered by the answer already scheduled or sent
    /// (one answer per c_hello_min, however many pings come).
    pings_covered_until: Option<Instant>,
    in_flight: InFlightTable,
    /// Reliable sends waiting for their destination to appear, and until when.
    parked: HashMap<MsgId, Parked>,
    /// Entities that joined the table while we followed it (the
    /// endpoint's calls that wait for a callee look again when it changes).
    joins: u64,
    parked_until: Deadlines<MsgId>,
    /// Ordered-mode messages waiting for their predecessor to settle.
    ordered: HashMap<Address, VecDeque<(MsgId, Vec<Command>)>>,
    remembered: DuplicateMemory,
    /// Commands of this drain's sends, batched by destination and reliability.
    batches: Batches,
    waits: Waits,
    transmits: VecDeque<Transmit>,
    events: VecDeque<Event>,
    owners: HashMap<MsgId, Owner>,
    settled: Vec<Settled>,
    stats: Stats,
    closed: bool,
}

/// The shared state, which a transport in use always has.
macro_rules! shared {
    ($t:expr) => {
        $t.shared
            .as_deref_mut()
            .expect("a transport in use has its shared state attached")
    };
}

impl Transport {
    pub(crate) fn new(
        config: EndpointConfig,
        local: Address,
        now: Instant,
        wall_now: SystemTime,
    ) -> Result<Transport, SetupError> {
        if local.id().is_none() {
            return Err(SetupError::MissingId(local));
        }
        let mut rng = Rng::new(config.seed);
        let hello = HelloTimer::new(now, &config.timers, &mut rng);
        let shared = Box::new(Shared::new(&config, now, wall_now).of_one());
        Ok(Transport {
            policy: RetransmitPolicy::new(&config.timers),
            next_seq: config.first_seq,
            config,
            local,
            anchor: (now, timestamp_of(wall_now)),
            rng,
            next_id: 0,
            shared: Some(shared),
            hosted: false,
            peer_events: true,
            acks: AcksOwed::default(),
            hello,
            ping_reply: None,
            pings_covered_until: None,
            in_flight: InFlightTable::default(),
            parked: HashMap::default(),
            joins: 0,
            parked_until: Deadlines::default(),
            ordered: HashMap::default(),
            remembered: DuplicateMemory::default(),
            batches: Batches::default(),
            waits: Waits::default(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            owners: HashMap::default(),
            settled: Vec::new(),
            stats: Stats::default(),
            closed: false,
        })
    }

    // ---- the shared state ----------------------------------------------------------

    /// The shared state: this entity's own, or its host's while attached.
    pub(crate) fn shared(&self) -> &Shared {
        self.shared
            .as_deref()
            .expect("a transport in use has its shared state attached")
    }

    /// Makes this transport an entity of a host of several: its own shared
    /// state is handed back (the host's replaces it while the host lets it
    /// act), and table changes and expiry become the host's to run.
    pub(crate) fn make_hosted(&mut self) -> Option<Box<Shared>> {
        self.hosted = true;
        self.shared.take()
    }

    /// Lends the host's shared state to this entity.
    pub(crate) fn attach(&mut self, shared: Box<Shared>) {
        self.shared = Some(shared);
    }

    /// Takes the host's shared state back.
    pub(crate) fn detach(&mut self) -> Option<Box<Shared>> {
        self.shared.take()
    }

    /// Whether the application hears peers join and leave as events.
    pub(crate) fn set_peer_events(&mut self, on: bool) {
        self.peer_events = on;
    }

    /// True if this entity must hear the entity table's changes: its
    /// application follows them, or it has work a change may affect (sends
    /// waiting for a destination, reliable messages, acks owed, calls).
    pub(crate) fn follows_peers(&self) -> bool {
        self.peer_events
            || !self.parked.is_empty()
            || self.in_flight.len() > 0
            || !self.ordered.is_empty()
            || self.acks.owe_any()
    }

    /// True if this entity has open work with `addr` (a full table does
    /// not evict such an entity).
    pub(crate) fn busy_with(&self, addr: &Address) -> bool {
        self.in_flight.has_destination(addr)
            || self.ordered.contains_key(addr)
            || self.batches.has_reliable_to(addr)
            || self.acks.owes(addr)
    }

    // ---- getters ---------------------------------------------------------------

    pub(crate) fn local_address(&self) -> &Address {
        &self.local
    }

    pub(crate) fn unauthenticated_sources(&self) -> &[UnauthenticatedSource] {
        self.shared().unauthenticated_sources()
    }

    /// The entities of `shared`'s table other than this one.
    pub(crate) fn peers_in<'a>(
        &'a self,
        shared: &'a Shared,
    ) -> impl Iterator<Item = &'a Peer> + 'a {
        shared.peers().filter(move |p| p.address != self.local)
    }

    pub(crate) fn peers(&self) -> impl Iterator<Item = &Peer> + '_ {
        self.peers_in(self.shared())
    }

    /// The known entities `dst` designates (RFC 3259 §4), through the
    /// table's element index; never this entity itself.
    pub(crate) fn matching<'a>(&'a self, dst: &'a Address) -> impl Iterator<Item = &'a Peer> + 'a {
        self.matching_in(self.shared(), dst)
    }

    fn matching_in<'a>(
        &'a self,
        shared: &'a Shared,
        dst: &'a Address,
    ) -> impl Iterator<Item = &'a Peer> + 'a {
        shared
            .matching(dst)
            .filter(move |p| p.address != self.local)
    }

    pub(crate) fn peer_in<'a>(&self, shared: &'a Shared, addr: &Address) -> Option<&'a Peer> {
        shared.peer(addr).filter(|p| p.address != self.local)
    }

    pub(crate) fn peer(&self, addr: &Address) -> Option<&Peer> {
        self.peer_in(self.shared(), addr)
    }

    pub(crate) fn is_known(&self, addr: &Address) -> bool {
        *addr != self.local && self.shared().contains(addr)
    }

    /// The entities on the bus as this one sees them, itself included.
    pub(crate) fn entities_in(&self, shared: &Shared) -> usize {
        shared.len() + usize::from(!shared.contains(&self.local))
    }

    pub(crate) fn entities(&self) -> usize {
        self.entities_in(self.shared())
    }

    /// The entity count the hello timing and the expiry use: capped at
    /// [`super::Limits::max_counted_entities`].
    fn timed_entities(&self) -> usize {
        let shared = self.shared();
        shared.timed(self.entities_in(shared))
    }

    /// How many entities have joined the table while we followed it.
    pub(crate) fn joins(&self) -> u64 {
        self.joins
    }

    /// The counters: this entity's own, with those `shared` keeps for the
    /// host (rejections, evictions, untracked senders).
    pub(crate) fn stats_in(&self, shared: &Shared) -> Stats {
        let host = shared.stats();
        Stats {
            rejected_auth: host.rejected_auth,
            rejected_cipher: host.rejected_cipher,
            rejected_malformed: host.rejected_malformed,
            rejected_replay: host.rejected_replay,
            evicted: host.evicted,
            untracked: host.untracked,
            ..self.stats
        }
    }

    pub(crate) fn stats(&self) -> Stats {
        self.stats_in(self.shared())
    }

    pub(crate) fn stats_mut(&mut self) -> &mut Stats {
        &mut self.stats
    }

    pub(crate) fn policy(&self) -> &RetransmitPolicy {
        &self.policy
    }

    pub(crate) fn limits(&self) -> &super::Limits {
        &self.config.limits
    }

    pub(crate) fn in_flight(&self) -> usize {
        self.in_flight.len()
            + self.ordered.values().map(VecDeque::len).sum::<usize>()
            + self.parked.len()
            + self.batches.reliable_sends()
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed
    }

    /// The complete address of the one known entity that `dst` designates
    /// (RFC 3259 §6.2 uniqueness); `dst` may be a subset of it.
    pub(crate) fn unique_match(&self, dst: &Address) -> Result<Address, SendError> {
        self.unique_match_in(self.shared(), dst)
    }

    pub(crate) fn unique_match_in(
        &self,
        shared: &Shared,
        dst: &Address,
    ) -> Result<Address, SendError> {
        let mut matches = self.matching_in(shared, dst);
        match (matches.next(), matches.count()) {
            (None, _) => Err(SendError::UnknownDestination(dst.clone())),
            (Some(one), 0) => Ok(one.address.clone()),
            (Some(_), more) => Err(SendError::NotUnique {
                dst: dst.clone(),
                matches: more + 1,
            }),
        }
    }

    /// `dst` itself if it is the complete address of one known entity, as a
    /// reliable message needs it (RFC 3259 §7).
    pub(crate) fn resolve(&self, dst: &Address) -> Result<Address, SendError> {
        self.resolve_in(self.shared(), dst)
    }

    pub(crate) fn resolve_in(&self, shared: &Shared, dst: &Address) -> Result<Address, SendError> {
        let full = self.unique_match_in(shared, dst)?;
        if &full == dst {
            Ok(full)
        } else {
            Err(SendError::Incomplete {
                dst: dst.clone(),
                full,
            })
        }
    }

    // ---- input -------------------------------------------------------------------

    /// One datagram: authenticated, the sender refreshed, its acks applied,
    /// and the message returned if its commands are for us. Never fails:
    /// what is not acceptable is dropped and counted.
    pub(crate) fn accept(
        &mut self,
        now: Instant,
        from: SocketAddr,
        data: &[u8],
        engaged: Engaged<'_>,
    ) -> Option<Accepted> {
        if self.closed {
            self.stats.datagrams_in += 1;
            return None;
        }
        match open(data, &self.config.keys) {
            Ok(m) => self.accept_opened(now, from, Ok(Opened::Owned(m)), engaged),
            Err(r) => self.accept_opened(now, from, Err(&r), engaged),
        }
    }

    /// [`Transport::accept`] of a datagram already opened with our keys: a
    /// lone entity screens it with its own shared state, then takes what is
    /// for it.
    pub(crate) fn accept_opened(
        &mut self,
        now: Instant,
        from: SocketAddr,
        opened: Result<Opened<'_>, &Rejection>,
        engaged: Engaged<'_>,
    ) -> Option<Accepted> {
        let msg = match opened {
            Ok(msg) => msg,
            Err(rejection) => {
                self.stats.datagrams_in += 1;
                if !self.closed {
                    shared!(self).reject(from, rejection);
                }
                return None;
            }
        };
        if self.closed || msg.header().src == self.local {
            return self.accept_screened(now, msg, Screened::Fresh { tracked: false });
        }
        let mut shared = self
            .shared
            .take()
            .expect("a transport in use has its shared state attached");
        let busy = |a: &Address| self.busy_with(a) || engaged(a);
        let screened = shared.screen(now, from, msg.header(), &busy);
        self.shared = Some(shared);
        self.accept_screened(now, msg, screened)
    }

    /// A datagram its host has screened ([`Shared::screen`]), for this
    /// entity: its acks applied, a reliable one acknowledged (or re-acked if
    /// a copy), and the message returned if its commands are for us.
    pub(crate) fn accept_screened(
        &mut self,
        now: Instant,
        msg: Opened<'_>,
        screened: Screened,
    ) -> Option<Accepted> {
        self.stats.datagrams_in += 1;
        if self.closed {
            return None;
        }
        let header = msg.header();
        if header.src == self.local {
            self.stats.own_echoes += 1;
            return None;
        }
        let tracked = match screened {
            Screened::Fresh { tracked } => tracked,
            Screened::Refused(verdict) => {
                self.refused_copy(now, header, verdict);
                return None;
            }
        };
        // An AckList acknowledges SeqNums that the destination sent to the
        // source (RFC 3259 §3, §7): only a message addressed to exactly us
        // acknowledges ours. (Every entity starts at SeqNum 0, and an ack to
        // an id-less pyMbus address reaches every entity that contains it.)
        let acks: &[u32] = if header.dst == self.local {
            &header.acks
        } else {
            &[]
        };
        for seq in acks {
            if let Some((id, m)) = self.in_flight.acked(&header.src, *seq) {
                self.stats.acknowledged += 1 + m.batched.len() as u64;
                let after = now.saturating_duration_since(m.first_sent);
                self.settle_message(id, &m.batched, &m.dst, Some(after));
                self.release_ordered(now, &m.dst);
            }
        }
        if !header.dst.is_subset_of(&self.local) {
            self.stats.not_for_us += 1;
            return None;
        }
        let reliable = header.kind == MessageType::Reliable;
        if reliable {
            // RFC 3259 §7: processed and acknowledged only if sent to exactly us.
            if header.dst != self.local {
                self.stats.not_for_us += 1;
                return None;
            }
            let due = now + self.config.timers.t_c;
            let fresh = self.remembered.insert(
                &header.src,
                header.seq,
                header.timestamp,
                now,
                self.config.limits.max_remembered,
            );
            if !tracked {
                // Nowhere to keep an owed ack: it goes now, on its own.
                self.send_ack_now(now, &header.src, header.seq);
            } else if fresh {
                self.acks.owe(&header.src, header.seq, due);
            } else {
                self.acks.reack(&header.src, header.seq, now, due);
            }
            if self.acks.pending(&header.src) >= self.config.limits.max_pending_acks {
                self.send_dedicated_ack(now, &header.src);
            }
            if !fresh {
                self.stats.duplicates += 1;
                return None;
            }
        }
        let Message { header, commands } = msg.into_message();
        Some(Accepted {
            header,
            reliable,
            commands,
        })
    }

    /// A datagram the replay guard refused, as this entity sees it: nothing
    /// of it is delivered or applied. A copy of a reliable message to us
    /// inside the window is acknowledged again (its sender may be
    /// retransmitting because our ack was lost); one that came within the
    /// duplicate memory of the first is counted as the retransmission it
    /// most likely is (the host counted the others as replays).
    fn refused_copy(&mut self, now: Instant, header: &Header, verdict: ReplayVerdict) {
        let reliable = header.kind == MessageType::Reliable;
        let (ReplayVerdict::Seen { .. }, true) = (verdict, reliable) else {
            return;
        };
        let for_us = header.dst == self.local;
        if for_us {
            let due = now + self.config.timers.t_c;
            if self.shared().contains(&header.src) {
                self.acks.reack(&header.src, header.seq, now, due);
            } else {
                self.send_ack_now(now, &header.src, header.seq);
            }
        }
        if verdict.is_retransmission(reliable, self.config.timers.dup_memory) {
            if for_us {
                self.stats.duplicates += 1;
            } else {
                self.stats.not_for_us += 1;
            }
        }
    }

    /// Re-anchors the wall clock: from `now` on, TimeStamps (ours, and the
    /// clock the replay guard compares with) count from `wall`. The driver
    /// calls it as it reads the clock, so that a suspended machine or a
    /// stepped clock does not leave the entity's idea of the time behind.
    pub(crate) fn set_wall_clock(&mut self, now: Instant, wall: SystemTime) {
        self.anchor = (now, timestamp_of(wall));
        if !self.hosted {
            shared!(self).set_wall_clock(now, wall);
        }
    }

    /// `mbus.ping` arrived (RFC 3259 §9.3): one hello after U[0, c_hello_min]
    /// answers the pings of that wait. We extend the cover to c_hello_min after
    /// the first ping even when the random wait was shorter: the answer resets
    /// the regular timer, so a later pinger still hears a hello within about
    /// one interval.
    pub(crate) fn on_ping(&mut self, now: Instant) {
        let covered = self.pings_covered_until.is_some_and(|until| now < until);
        if self.ping_reply.is_none() && !covered {
            let wait = self.config.timers.hello_min;
            self.ping_reply = Some(now + wait.mul_f64(self.rng.unit()));
            self.pings_covered_until = Some(now + wait);
        }
    }

    /// `src` said bye (RFC 3259 §9.2): it leaves the entity table.
    pub(crate) fn said_bye(&mut self, src: &Address) {
        shared!(self).remove(src, LeaveReason::Bye);
    }

    /// Expires the silent entities of this lone entity's own table.
    pub(crate) fn expire_due(&mut self, now: Instant) {
        if !self.hosted {
            shared!(self).handle_timeout(now);
        }
    }

    /// The next change of the entity table, for a lone entity to follow
    /// (a host hands its changes out itself).
    pub(crate) fn poll_change(&mut self) -> Option<PeerChange> {
        if self.hosted {
            return None;
        }
        shared!(self).poll_change()
    }

    /// Follows a change of the entity table: a newcomer may be what a
    /// parked send waits for; one that left is owed nothing more, its
    /// duplicate memory goes (unless evicted: only a bye or silence forgets
    /// it), and the hello interval is reconsidered (RFC 3259 §9.1). The
    /// application hears of it if it follows peers.
    pub(crate) fn apply_change(&mut self, now: Instant, change: &PeerChange) {
        match change {
            PeerChange::Joined(addr) if *addr != self.local => {
                self.joins += 1;
                if self.peer_events {
                    self.push_event(Event::PeerJoined(addr.clone()));
                }
                if !self.parked.is_empty() {
                    self.release_parked(now, addr);
                }
            }
            PeerChange::Left(addr, reason) if *addr != self.local => {
                self.acks.forget(addr);
                if *reason != LeaveReason::Evicted {
                    self.remembered.forget(addr);
                    let entities = self.timed_entities();
                    self.hello.entities_dropped(now, entities);
                }
                if self.peer_events {
                    self.push_event(Event::PeerLeft {
                        addr: addr.clone(),
                        reason: *reason,
                    });
                }
            }
            _ => {}
        }
    }

    // ---- timers, in the order the endpoint runs them --------------------------------

    /// Retransmissions and failures due at `now`, and the parked sends whose
    /// destination did not appear in time.
    pub(crate) fn retransmit_due(&mut self, now: Instant) {
        for id in self.parked_until.take_due(now) {
            if let Some(p) = self.parked.remove(&id) {
                tracing::debug!(id = id.0, dst = %p.dst, "reliable destination did not appear");
                self.settle(id, p.dst, None);
            }
        }
        let policy = self.policy;
        for fired in self.in_flight.fire(now, &policy) {
            match fired {
                Fired::Retransmit { to, bytes } => {
                    self.stats.retransmissions += 1;
                    self.queue_transmit(Transmit {
                        destination: to,
                        contents: bytes,
                    });
                }
                Fired::Failed(id, m) => {
                    self.stats.failed += 1 + m.batched.len() as u64;
                    tracing::debug!(id = id.0, dst = %m.dst, "reliable message not acknowledged");
                    self.settle_message(id, &m.batched, &m.dst, None);
                    self.release_ordered(now, &m.dst);
                }
            }
        }
    }

    /// Acknowledgements whose T_c deadline has come.
    pub(crate) fn send_acks_due(&mut self, now: Instant) {
        for addr in self.acks.owed(Some(now)) {
            self.send_dedicated_ack(now, &addr);
        }
    }

    /// Hellos (the regular one or the answer to pings), `mbus.waiting`
    /// repeats, and forgetting old deliveries.
    pub(crate) fn announce_due(&mut self, now: Instant) {
        let timers = &self.config.timers;
        if self.ping_reply.is_some_and(|at| at <= now) {
            self.ping_reply = None;
            self.send_hello(now);
        } else if self.hello.next <= now {
            let entities = self.timed_entities();
            if self.hello.expire(now, entities, timers, &mut self.rng) {
                self.send_hello_now(now);
            }
        }
        let (interval, memory) = (
            self.config.timers.waiting_interval,
            self.config.timers.dup_memory,
        );
        for condition in self.waits.next.take_due(now) {
            self.waits.next.set(condition.clone(), now + interval);
            if let Some(dst) = self.waits.dst.get(&condition).cloned() {
                let cmd = Waiting { condition }.into_command();
                let _ = self.emit(now, &dst, MessageType::Unreliable, vec![cmd]);
            }
        }
        self.remembered.expire(now, memory);
        self.acks.prune(now);
    }

    /// When the earliest transport timer is due.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        if self.closed {
            return None;
        }
        // A host runs its shared state's timers itself, once.
        let shared = if self.hosted {
            None
        } else {
            self.shared().next_deadline()
        };
        [
            Some(self.hello.next),
            self.ping_reply,
            self.in_flight.next_deadline(),
            self.parked_until.next(),
            self.acks.next_due(),
            shared,
            self.waits.next.next(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    // ---- commands from the application -------------------------------------------

    /// Sends `commands` in one message to `dst` (see `Endpoint::send`).
    pub(crate) fn send(
        &mut self,
        now: Instant,
        dst: &Address,
        commands: Vec<Command>,
        delivery: Delivery,
    ) -> Result<MsgId, SendError> {
        if self.closed {
            return Err(SendError::Closed);
        }
        let id = MsgId(self.next_id);
        if delivery == Delivery::Unreliable {
            self.queue_send(now, id, dst, MessageType::Unreliable, commands, false)?;
            self.next_id += 1;
            return Ok(id);
        }
        let full = self.resolve(dst)?;
        if self.in_flight() >= self.config.limits.max_in_flight {
            return Err(SendError::TooManyInFlight(self.in_flight()));
        }
        let ordered = delivery == Delivery::ReliableOrdered;
        if ordered && (self.ordered.contains_key(&full) || self.in_flight.has_destination(&full)) {
            // Checked now, so that a queued message cannot fail to encode later.
            let newline = self.config.framing.newline().len();
            self.batches.measure(&commands, newline)?;
            self.ordered
                .entry(full)
                .or_default()
                .push_back((id, commands));
        } else if let Queued::NoRoom(commands) =
            self.queue_send(now, id, &full, MessageType::Reliable, commands, ordered)?
        {
            self.ordered
                .entry(full)
                .or_default()
                .push_back((id, commands));
        }
        self.next_id += 1;
        Ok(id)
    }

    /// [`Transport::send`], except that a reliable message to a destination
    /// no known entity matches is not refused: `dst` is pinged once and the
    /// message waits until an entity it designates appears, at most until
    /// `deadline` (then it fails, as [`Event::DeliveryFailed`]).
    pub(crate) fn send_within(
        &mut self,
        now: Instant,
        dst: &Address,
        commands: Vec<Command>,
        delivery: Delivery,
        deadline: Instant,
    ) -> Result<MsgId, SendError> {
        let unknown = matches!(self.resolve(dst), Err(SendError::UnknownDestination(_)));
        if !unknown || delivery == Delivery::Unreliable || deadline <= now || self.closed {
            return self.send(now, dst, commands, delivery);
        }
        // Checked now, so that a parked message cannot fail to encode later.
        let newline = self.config.framing.newline().len();
        self.batches.measure(&commands, newline)?;
        if self.in_flight() >= self.config.limits.max_in_flight {
            return Err(SendError::TooManyInFlight(self.in_flight()));
        }
        self.ping(now, dst)?;
        let id = MsgId(self.next_id);
        self.next_id += 1;
        tracing::debug!(id = id.0, %dst, "reliable destination unknown: pinged, waiting");
        self.parked.insert(
            id,
            Parked {
                dst: dst.clone(),
                commands,
                delivery,
            },
        );
        self.parked_until.set(id, deadline);
        Ok(id)
    }

    /// `joined` is new in the table: the parked sends it is now the one
    /// match of go to it (those whose destination matches several wait on).
    fn release_parked(&mut self, now: Instant, joined: &Address) {
        let mut ready: Vec<MsgId> = self
            .parked
            .iter()
            .filter(|(_, p)| p.dst.is_subset_of(joined))
            .map(|(id, _)| *id)
            .collect();
        ready.sort_unstable();
        for id in ready {
            let Some(full) = self
                .parked
                .get(&id)
                .and_then(|p| self.unique_match(&p.dst).ok())
            else {
                continue;
            };
            let Some(p) = self.parked.remove(&id) else {
                continue;
            };
            self.parked_until.remove(&id);
            let sent = if p.delivery == Delivery::ReliableOrdered
                && (self.ordered.contains_key(&full) || self.in_flight.has_destination(&full))
            {
                self.ordered
                    .entry(full.clone())
                    .or_default()
                    .push_back((id, p.commands));
                Ok(())
            } else {
                self.queue_send(now, id, &full, MessageType::Reliable, p.commands, false)
                    .map(|_| ())
            };
            if sent.is_err() {
                self.stats.failed += 1;
                self.settle(id, full, None);
            }
        }
    }

    /// Sends one command reliably to `dst` (a known entity's complete
    /// address); its outcome goes to `owner`, not to the application.
    pub(crate) fn send_owned(
        &mut self,
        now: Instant,
        dst: &Address,
        command: Command,
        owner: Owner,
    ) -> Result<MsgId, SendError> {
        let id = self.send(now, dst, vec![command], Delivery::Reliable)?;
        self.owners.insert(id, owner);
        Ok(id)
    }

    /// Announces `condition` to `dst` now and every `waiting_interval`.
    pub(crate) fn start_waiting(
        &mut self,
        now: Instant,
        dst: &Address,
        condition: &str,
    ) -> Result<(), SendError> {
        if self.closed {
            return Err(SendError::Closed);
        }
        let cmd = Waiting {
            condition: condition.to_owned(),
        }
        .into_command();
        self.emit(now, dst, MessageType::Unreliable, vec![cmd])?;
        self.waits.next.set(
            condition.to_owned(),
            now + self.config.timers.waiting_interval,
        );
        self.waits.dst.insert(condition.to_owned(), dst.clone());
        Ok(())
    }

    /// Stops announcing `condition`; false if we were not waiting for it.
    pub(crate) fn stop_waiting(&mut self, condition: &str) -> bool {
        self.waits.dst.remove(condition);
        self.waits.next.remove(&condition.to_owned()).is_some()
    }

    /// The conditions we are waiting for, in name order.
    pub(crate) fn waiting_for(&self) -> impl Iterator<Item = &str> + '_ {
        self.waits.dst.keys().map(String::as_str)
    }

    /// Pings `dst` (unreliable).
    pub(crate) fn ping(&mut self, now: Instant, dst: &Address) -> Result<(), SendError> {
        self.send(now, dst, vec![Ping.into_command()], Delivery::Unreliable)
            .map(|_| ())
    }

    /// Fails every reliable message still in flight or queued (closing).
    pub(crate) fn fail_all(&mut self) {
        for (id, m) in self.in_flight.drain() {
            self.stats.failed += 1 + m.batched.len() as u64;
            self.settle_message(id, &m.batched, &m.dst, None);
        }
        for b in self.batches.close_reliable() {
            self.settle_message(b.ids[0], &b.ids[1..], &b.dst, None);
        }
        let mut parked: Vec<(MsgId, Parked)> = self.parked.drain().collect();
        parked.sort_unstable_by_key(|(id, _)| *id);
        self.parked_until.clear();
        for (id, p) in parked {
            self.settle(id, p.dst, None);
        }
        let mut queued: Vec<(MsgId, Address)> = std::mem::take(&mut self.ordered)
            .into_iter()
            .flat_map(|(dst, queue)| queue.into_iter().map(move |(id, _)| (id, dst.clone())))
            .collect();
        queued.sort_unstable_by_key(|(id, _)| *id);
        for (id, dst) in queued {
            self.stats.failed += 1;
            self.settle(id, dst, None);
        }
    }

    /// Says bye (RFC 3259 §9.2) and stops: no hello, no waiting, no input.
    pub(crate) fn say_bye(&mut self, now: Instant) {
        if self.closed {
            return;
        }
        self.flush_batches(now);
        let bye = super::cmd::Bye.into_command();
        let _ = self.emit(now, &Address::empty(), MessageType::Unreliable, vec![bye]);
        self.waits = Waits::default();
        self.ping_reply = None;
        self.closed = true;
    }

    // ---- output ------------------------------------------------------------------

    /// The next datagram to send. Acknowledgements still owed go out first,
    /// one message per peer (the socket has been read empty when the driver
    /// asks for transmits).
    pub(crate) fn poll_transmit(&mut self, now: Instant) -> Option<Transmit> {
        if !self.batches.is_empty() {
            self.flush_batches(now);
        }
        if self.acks.owe_any() {
            for addr in self.acks.owed(None) {
                self.send_dedicated_ack(now, &addr);
            }
        }
        let t = self.transmits.pop_front()?;
        self.stats.datagrams_out += 1;
        if t.destination != self.config.group {
            self.stats.unicast_out += 1;
        }
        Some(t)
    }

    pub(crate) fn poll_event(&mut self) -> Option<Event> {
        let event = self.events.pop_front();
        if event.is_none() && self.events.capacity() > EVENTS_KEPT {
            // A burst's room is not kept for the entity's whole life (a host
            // of thousands would keep it thousands of times).
            self.events.shrink_to(EVENTS_KEPT);
        }
        event
    }

    /// Queues an event for the application (the oldest is dropped beyond the
    /// bound).
    pub(crate) fn push_event(&mut self, event: Event) {
        if self.events.len() >= self.config.limits.max_events {
            self.events.pop_front();
            self.stats.queue_drops += 1;
        }
        self.events.push_back(event);
    }

    /// The outcomes of owned messages since the last call.
    pub(crate) fn take_settled(&mut self) -> Vec<Settled> {
        std::mem::take(&mut self.settled)
    }

    // ---- internals -------------------------------------------------------------------

    /// A reliable message settled: `after` is the time to its ack, `None`
    /// for a failure. Its owner hears of it, or else the application.
    fn settle(&mut self, id: MsgId, dst: Address, after: Option<Duration>) {
        let delivered = after.is_some();
        if let Some(owner) = self.owners.remove(&id) {
            self.settled.push(Settled { owner, delivered });
            return;
        }
        self.push_event(match after {
            Some(after) => Event::Delivered { id, dst, after },
            None => Event::DeliveryFailed { id, dst },
        });
    }

    fn wall_ms(&self, now: Instant) -> u64 {
        let (at, ms) = self.anchor;
        ms + now.saturating_duration_since(at).as_millis() as u64
    }

    /// The message we would send now, as borrowed parts (no clones).
    fn view<'a>(
        &'a self,
        dst: &'a Address,
        kind: MessageType,
        acks: &'a [u32],
        commands: &'a [Command],
    ) -> MessageView<'a> {
        MessageView {
            seq: self.next_seq,
            timestamp: 0,
            kind,
            src: &self.local,
            dst,
            acks,
            commands,
        }
    }

    /// Builds, seals and queues one unbatched message (hellos, waiting,
    /// bye, dedicated acks), piggy-backing the acks owed to `dst` if it is
    /// exactly a known entity.
    fn emit(
        &mut self,
        now: Instant,
        dst: &Address,
        kind: MessageType,
        commands: Vec<Command>,
    ) -> Result<(), EncodeError> {
        let acks = if self.acks.owe_any() {
            let keep_until = now + self.policy.retransmit_window();
            self.acks.take(dst, keep_until)
        } else {
            Vec::new()
        };
        let mut msg = self.view(dst, kind, &acks, &commands);
        msg.timestamp = self.wall_ms(now);
        match seal_view(&msg, &self.config.keys, self.config.framing) {
            Ok(bytes) => {
                self.next_seq = self.next_seq.wrapping_add(1);
                let to = self.route(dst);
                self.queue_transmit(Transmit {
                    destination: to,
                    contents: bytes,
                });
                Ok(())
            }
            Err(e) => {
                let due = now + self.config.timers.t_c;
                for seq in acks {
                    self.acks.owe(dst, seq, due);
                }
                Err(e)
            }
        }
    }

    /// Puts send `id`'s commands into the open batch for `dst` and `kind`
    /// if they fit within [`super::Limits::max_batch_bytes`]; else the
    /// batch goes now and a new one opens with them. Their form and size
    /// are checked here, so that a batch cannot fail to encode later. An
    /// `ordered` send that does not fit is handed back instead: it must
    /// not overtake the batch.
    fn queue_send(
        &mut self,
        now: Instant,
        id: MsgId,
        dst: &Address,
        kind: MessageType,
        commands: Vec<Command>,
        ordered: bool,
    ) -> Result<Queued, EncodeError> {
        let (keys, framing) = (&self.config.keys, self.config.framing);
        let newline = framing.newline().len();
        let len = self.batches.measure(&commands, newline)?;
        if let Some(b) = self.batches.get(dst, kind) {
            if sealed_len(b.body + len, keys, framing) <= self.config.limits.max_batch_bytes {
                self.batches.append(dst, kind, id, commands, len);
                return Ok(Queued::Batched);
            }
            if ordered {
                return Ok(Queued::NoRoom(commands));
            }
        }
        let header = MessageView {
            seq: u32::MAX,
            timestamp: self.wall_ms(now),
            kind,
            src: &self.local,
            dst,
            acks: &[],
            commands: &[],
        };
        let body = self.batches.header_len(&header, newline) + len;
        let size = sealed_len(body, keys, framing);
        if size > MAX_DATAGRAM {
            return Err(EncodeError::TooLarge(size));
        }
        if let Some(full) = self.batches.close(dst, kind) {
            self.transmit_batch(now, full);
        }
        self.batches.open(dst.clone(), kind, id, commands, body);
        Ok(Queued::Batched)
    }

    /// Seals every open batch and queues it.
    fn flush_batches(&mut self, now: Instant) {
        for b in self.batches.close_all() {
            self.transmit_batch(now, b);
        }
    }

    /// Seals one batch with the acks owed to its destination (unless they
    /// would take it beyond the size bound: then they go on their own) and
    /// queues it; a reliable one goes in flight as one message.
    fn transmit_batch(&mut self, now: Instant, b: Batch) {
        let (keys, framing) = (&self.config.keys, self.config.framing);
        let acks = if self.acks.owe_any() {
            let keep_until = now + self.policy.retransmit_window();
            self.acks.take(&b.dst, keep_until)
        } else {
            Vec::new()
        };
        let limit = self
            .config
            .limits
            .max_batch_bytes
            .max(sealed_len(b.body, keys, framing));
        let mut view = MessageView {
            seq: self.next_seq,
            timestamp: self.wall_ms(now),
            kind: b.kind,
            src: &self.local,
            dst: &b.dst,
            acks: &acks,
            commands: &b.commands,
        };
        let mut sealed = seal_view(&view, keys, framing);
        let acks_apart = !acks.is_empty() && sealed.as_ref().map_or(true, |d| d.len() > limit);
        if acks_apart {
            view.acks = &[];
            sealed = seal_view(&view, keys, framing);
            let due = now + self.config.timers.t_c;
            for seq in &acks {
                self.acks.owe(&b.dst, *seq, due);
            }
        }
        let reliable = b.kind == MessageType::Reliable;
        let bytes = match sealed {
            Ok(bytes) => bytes,
            Err(e) => {
                // Not reached: queue_send checked the form and the size.
                tracing::warn!(dst = %b.dst, "a batch could not be sealed: {e}");
                if reliable {
                    self.stats.failed += b.ids.len() as u64;
                    self.settle_message(b.ids[0], &b.ids[1..], &b.dst, None);
                } else {
                    self.stats.queue_drops += 1;
                }
                return;
            }
        };
        let seq = self.next_seq;
        self.next_seq = self.next_seq.wrapping_add(1);
        let to = self.route(&b.dst);
        if reliable {
            self.stats.reliable_sent += b.ids.len() as u64;
            let mut ids = b.ids.into_iter();
            let first = ids.next().unwrap_or(MsgId(u64::MAX));
            let m = InFlight {
                dst: b.dst,
                seq,
                batched: ids.collect(),
                bytes: bytes.clone(),
                to,
                first_sent: now,
                transmissions: 1,
            };
            self.in_flight.insert(first, m, &self.policy);
        }
        self.queue_transmit(Transmit {
            destination: to,
            contents: bytes,
        });
    }

    /// A message settled: every send in it (`first`, then `batched`).
    fn settle_message(
        &mut self,
        first: MsgId,
        batched: &[MsgId],
        dst: &Address,
        after: Option<Duration>,
    ) {
        self.settle(first, dst.clone(), after);
        for id in batched {
            self.settle(*id, dst.clone(), after);
        }
    }

    /// The previous ordered message to `dst` settled: send the next one.
    fn release_ordered(&mut self, now: Instant, dst: &Address) {
        let Some(queue) = self.ordered.get_mut(dst) else {
            return;
        };
        let next = queue.pop_front();
        if queue.is_empty() {
            self.ordered.remove(dst);
        }
        if let Some((id, commands)) = next {
            if self
                .queue_send(now, id, dst, MessageType::Reliable, commands, false)
                .is_err()
            {
                self.stats.failed += 1;
                self.settle(id, dst.clone(), None);
            }
        }
    }

    /// Where a message to `dst` goes: the group, or the unique destination's own
    /// endpoint with the unicast optimisation (RFC 3259 §6.2).
    fn route(&self, dst: &Address) -> SocketAddr {
        let group = self.config.group;
        if !self.config.send_unicast || dst.is_empty() {
            return group;
        }
        let mut matches = self.matching(dst);
        match (matches.next(), matches.next()) {
            (Some(p), None) if p.endpoint.port() != group.port() => p.endpoint,
            _ => group,
        }
    }

    fn send_hello(&mut self, now: Instant) {
        self.send_hello_now(now);
        let entities = self.timed_entities();
        self.hello
            .sent(now, entities, &self.config.timers, &mut self.rng);
    }

    fn send_hello_now(&mut self, now: Instant) {
        let hello = Hello.into_command();
        let _ = self.emit(now, &Address::empty(), MessageType::Unreliable, vec![hello]);
    }

    /// Acknowledges `seq` to `peer` at once, in a message of its own (for
    /// an entity the table does not hold).
    fn send_ack_now(&mut self, now: Instant, peer: &Address, seq: u32) {
        let acks = [seq];
        let stamp = self.wall_ms(now);
        let mut msg = self.view(peer, MessageType::Unreliable, &acks, &[]);
        msg.timestamp = stamp;
        if let Ok(bytes) = seal_view(&msg, &self.config.keys, self.config.framing) {
            self.next_seq = self.next_seq.wrapping_add(1);
            let to = self.route(peer);
            self.queue_transmit(Transmit {
                destination: to,
                contents: bytes,
            });
            self.stats.dedicated_acks += 1;
        }
    }

    fn send_dedicated_ack(&mut self, now: Instant, peer: &Address) {
        if self
            .emit(now, peer, MessageType::Unreliable, vec![])
            .is_ok()
        {
            self.stats.dedicated_acks += 1;
        }
    }

    fn queue_transmit(&mut self, t: Transmit) {
        if self.transmits.len() >= self.config.limits.max_transmits {
            self.transmits.pop_front();
            self.stats.queue_drops += 1;
        }
        self.transmits.push_back(t);
    }
}
