//! The [`Endpoint`]: one entity's protocol state machine.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use crate::auth::{open, seal_view, Rejection};
use crate::wire::{
    Address, Command, EncodeError, Header, Message, MessageType, MessageView, Value,
};

use super::hello::HelloTimer;
use super::peers::{Peer, PeerState};
use super::reliable::{DuplicateMemory, InFlight, InFlightTable};
use super::rng::Rng;

use super::{Delivery, EndpointConfig, Event, LeaveReason, MsgId, SendError, Stats, Transmit};

mod guidelines;
mod services;
mod transactions;

/// Why an [`Endpoint`] could not be created.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SetupError {
    /// Our own address needs an `id` element (RFC 3259 §4.1).
    #[error("the local address {0} has no id element")]
    MissingId(Address),
}

/// A reliable message's datagram and IP destination, kept for retransmission.
type Retained = (Vec<u8>, SocketAddr);

/// A condition we wait for, announced with `mbus.waiting` until released.
#[derive(Debug)]
struct Waiting {
    condition: String,
    dst: Address,
    next: Instant,
}

/// One Mbus entity's protocol state (RFC 3259 §6–§10), driven by its caller.
///
/// See the [module documentation](super) for the driving rule.
#[derive(Debug)]
pub struct Endpoint {
    config: EndpointConfig,
    local: Address,
    /// The monotonic instant and wall-clock milliseconds of one moment: every
    /// TimeStamp is derived from it, so `now` stays the only time input.
    anchor: (Instant, u64),
    rng: Rng,
    next_seq: u32,
    next_id: u64,
    peers: HashMap<Address, PeerState>,
    hello: HelloTimer,
    /// When the hello that answers pings goes out.
    ping_reply: Option<Instant>,
    /// Pings until then are covered by the answer already scheduled or sent
    /// (one answer per c_hello_min, however many pings come).
    pings_covered_until: Option<Instant>,
    in_flight: InFlightTable,
    /// Ordered-mode messages waiting for their predecessor to settle.
    ordered: HashMap<Address, VecDeque<(MsgId, Vec<Command>)>>,
    remembered: DuplicateMemory,
    /// False only when no peer is owed acknowledgements: then sending needs
    /// no look-up for acks to piggy-back, and polling no scan of the table.
    acks_owed: bool,
    waiting: Vec<Waiting>,
    transmits: VecDeque<Transmit>,
    events: VecDeque<Event>,
    stats: Stats,
    closed: bool,
    /// The IP endpoint our datagrams leave from, if the driver told us.
    own_source: Option<SocketAddr>,
    guides: guidelines::Guides,
    txns: transactions::Txns,
    services: services::Services,
}

impl Endpoint {
    /// An entity with address `local` (which must hold an `id` element) joining
    /// the bus at `now`; `wall_now` is the wall-clock time at that same moment.
    pub fn new(
        config: EndpointConfig,
        local: Address,
        now: Instant,
        wall_now: SystemTime,
    ) -> Result<Endpoint, SetupError> {
        if local.id().is_none() {
            return Err(SetupError::MissingId(local));
        }
        let wall_ms = wall_now
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let mut rng = Rng::new(config.seed);
        let hello = HelloTimer::new(now, &config.timers, &mut rng);
        let first_seq = config.first_seq;
        Ok(Endpoint {
            config,
            local,
            anchor: (now, wall_ms),
            rng,
            next_seq: first_seq,
            next_id: 0,
            peers: HashMap::new(),
            hello,
            ping_reply: None,
            pings_covered_until: None,
            in_flight: InFlightTable::default(),
            ordered: HashMap::new(),
            remembered: DuplicateMemory::default(),
            acks_owed: false,
            waiting: Vec::new(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            stats: Stats::default(),
            closed: false,
            own_source: None,
            guides: guidelines::Guides::default(),
            txns: transactions::Txns::default(),
            services: services::Services::default(),
        })
    }

    // ---- getters ---------------------------------------------------------------

    /// Our own complete address.
    pub fn local_address(&self) -> &Address {
        &self.local
    }

    /// The entities we know of (not ourselves).
    pub fn peers(&self) -> impl Iterator<Item = &Peer> + '_ {
        self.peers.values().map(|p| &p.peer)
    }

    /// The known entity with exactly this address.
    pub fn peer(&self, addr: &Address) -> Option<&Peer> {
        self.peers.get(addr).map(|p| &p.peer)
    }

    /// The number of entities on the bus as we see it, ourselves included (§8).
    pub fn entities(&self) -> usize {
        self.peers.len() + 1
    }

    /// The counters.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Reliable messages not yet acknowledged or failed (queued ones included).
    pub fn in_flight(&self) -> usize {
        self.in_flight.len() + self.ordered.values().map(VecDeque::len).sum::<usize>()
    }

    /// True once [`Endpoint::close`] has been called.
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// The complete address of the one known entity that `dst` designates
    /// (RFC 3259 §6.2 uniqueness); `dst` may be a subset of it.
    pub fn unique_match(&self, dst: &Address) -> Result<Address, SendError> {
        let mut matches = self.peers.keys().filter(|a| dst.is_subset_of(a));
        match (matches.next(), matches.count()) {
            (None, _) => Err(SendError::UnknownDestination(dst.clone())),
            (Some(one), 0) => Ok(one.clone()),
            (Some(_), more) => Err(SendError::NotUnique {
                dst: dst.clone(),
                matches: more + 1,
            }),
        }
    }

    /// `dst` itself if it is the complete address of one known entity, as a
    /// reliable message needs it (RFC 3259 §7); a unique subset address is
    /// refused with the complete one in the error.
    pub fn resolve(&self, dst: &Address) -> Result<Address, SendError> {
        let full = self.unique_match(dst)?;
        if &full == dst {
            Ok(full)
        } else {
            Err(SendError::Incomplete {
                dst: dst.clone(),
                full,
            })
        }
    }

    // ---- inputs ------------------------------------------------------------------

    /// One datagram from the bus. Never fails: what is not acceptable is
    /// dropped and counted.
    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddr, data: &[u8]) {
        self.stats.datagrams_in += 1;
        if self.closed {
            return;
        }
        if Some(from) == self.own_source {
            // Our own multicast, looped back: not worth a digest check.
            self.stats.own_echoes += 1;
            return;
        }
        let msg = match open(data, &self.config.keys) {
            Ok(msg) => msg,
            Err(rejection) => {
                match rejection {
                    Rejection::NoDigest | Rejection::BadDigest => self.stats.rejected_auth += 1,
                    Rejection::Malformed(_) => self.stats.rejected_malformed += 1,
                    _ => self.stats.rejected_cipher += 1,
                }
                tracing::trace!(%from, reason = rejection.code(), "datagram rejected");
                return;
            }
        };
        let Message { header, commands } = msg;
        if header.src == self.local {
            self.stats.own_echoes += 1;
            return;
        }
        if !self.heard_from(now, &header.src, from) {
            return;
        }
        for seq in &header.acks {
            if let Some((id, m)) = self.in_flight.acked(&header.src, *seq) {
                self.stats.acknowledged += 1;
                self.push_event(Event::Delivered {
                    id,
                    after: now.saturating_duration_since(m.first_sent),
                    dst: m.dst.clone(),
                });
                self.release_ordered(now, &m.dst);
            }
        }
        if !header.dst.is_subset_of(&self.local) {
            self.stats.not_for_us += 1;
            return;
        }
        let reliable = header.kind == MessageType::Reliable;
        if reliable {
            // RFC 3259 §7: processed and acknowledged only if sent to exactly us.
            if header.dst != self.local {
                self.stats.not_for_us += 1;
                return;
            }
            let due = now + self.config.timers.t_c;
            let fresh = self.remembered.insert(
                (header.src.clone(), header.seq, header.timestamp),
                now,
                self.config.limits.max_remembered,
            );
            self.acks_owed = true;
            if let Some(peer) = self.peers.get_mut(&header.src) {
                if fresh {
                    peer.owe_ack(header.seq, due);
                } else {
                    peer.reack(header.seq, now, due);
                }
            }
            self.flush_acks_if_full(now, &header.src);
            if !fresh {
                self.stats.duplicates += 1;
                return;
            }
        }
        for command in commands {
            self.dispatch(now, &header, reliable, command);
        }
    }

    /// Timers: retransmissions and failures, acks due, hellos, expiry, waiting.
    /// Idempotent; call it when [`Endpoint::poll_timeout`] is reached (calling
    /// it early does no harm).
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.closed {
            return;
        }
        let timers = self.config.timers.clone();
        for id in self.in_flight.due(now) {
            let Some(m) = self.in_flight.get_mut(id) else {
                continue;
            };
            if m.transmissions >= timers.n_r {
                if let Some(m) = self.in_flight.remove(id) {
                    self.stats.failed += 1;
                    self.push_event(Event::DeliveryFailed {
                        id,
                        dst: m.dst.clone(),
                    });
                    self.release_ordered(now, &m.dst);
                }
            } else {
                m.transmissions += 1;
                m.next = now + timers.t_r * m.transmissions;
                let t = Transmit {
                    destination: m.to,
                    contents: m.bytes.clone(),
                };
                self.stats.retransmissions += 1;
                self.queue_transmit(t);
            }
        }
        let overdue: Vec<Address> = self
            .peers
            .values()
            .filter(|p| p.ack_due.is_some_and(|d| d <= now))
            .map(|p| p.peer.address.clone())
            .collect();
        for addr in overdue {
            self.send_dedicated_ack(now, &addr);
        }
        // The silence threshold shrinks with the entity count, so removing
        // peers can make others overdue: repeat until none is.
        loop {
            let dead_after = HelloTimer::dead_after(&timers, self.entities());
            let silent: Vec<Address> = self
                .peers
                .values()
                .filter(|p| p.peer.last_heard + dead_after <= now)
                .map(|p| p.peer.address.clone())
                .collect();
            if silent.is_empty() {
                break;
            }
            for addr in silent {
                self.remove_peer(now, &addr, LeaveReason::Timeout);
            }
        }
        if self.ping_reply.is_some_and(|at| at <= now) {
            self.ping_reply = None;
            self.send_hello(now);
        } else if self.hello.next <= now {
            let entities = self.entities();
            if self.hello.expire(now, entities, &timers, &mut self.rng) {
                self.send_hello_now(now);
            }
        }
        let due: Vec<(Address, String)> = self
            .waiting
            .iter_mut()
            .filter(|w| w.next <= now)
            .map(|w| {
                w.next = now + timers.waiting_interval;
                (w.dst.clone(), w.condition.clone())
            })
            .collect();
        for (dst, condition) in due {
            let cmd = Command::new("mbus.waiting", vec![Value::Symbol(condition)]);
            let _ = self.emit(now, &dst, MessageType::Unreliable, vec![cmd]);
        }
        self.remembered.expire(now, timers.dup_memory);
        self.guidelines_timeout(now);
    }

    // ---- commands from the application -------------------------------------------

    /// Sends `commands` in one message to `dst`.
    ///
    /// Reliable delivery needs the complete address of one known entity; it is
    /// refused at once otherwise (decision D8), and nothing is sent. The outcome
    /// of a reliable message comes later as [`Event::Delivered`] or
    /// [`Event::DeliveryFailed`] with the returned id.
    pub fn send(
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
            self.emit(now, dst, MessageType::Unreliable, commands)?;
            self.next_id += 1;
            return Ok(id);
        }
        let full = self.resolve(dst)?;
        if self.in_flight() >= self.config.limits.max_in_flight {
            return Err(SendError::TooManyInFlight(self.in_flight()));
        }
        let busy = self.in_flight.has_destination(&full) || self.ordered.contains_key(&full);
        if delivery == Delivery::ReliableOrdered && busy {
            // Checked now, so that a queued message cannot fail to encode later.
            let probe = self.view(dst, MessageType::Reliable, &[], &commands);
            seal_view(&probe, &self.config.keys, self.config.framing)?;
            self.ordered
                .entry(full)
                .or_default()
                .push_back((id, commands));
        } else {
            self.transmit_reliable(now, id, full, commands)?;
        }
        self.next_id += 1;
        Ok(id)
    }

    /// Asks the entities that `dst` designates to answer with a hello (unreliable).
    pub fn ping(&mut self, now: Instant, dst: &Address) -> Result<(), SendError> {
        self.send(
            now,
            dst,
            vec![Command::new("mbus.ping", vec![])],
            Delivery::Unreliable,
        )
        .map(|_| ())
    }

    /// Announces that we wait for `condition` (a Symbol): `mbus.waiting` goes to
    /// `dst` now and every `waiting_interval` until an `mbus.go` for it arrives
    /// or [`Endpoint::stop_waiting`] is called.
    pub fn start_waiting(
        &mut self,
        now: Instant,
        dst: &Address,
        condition: &str,
    ) -> Result<(), SendError> {
        if self.closed {
            return Err(SendError::Closed);
        }
        let cmd = Command::new("mbus.waiting", vec![Value::symbol(condition)]);
        self.emit(now, dst, MessageType::Unreliable, vec![cmd])?;
        self.waiting.retain(|w| w.condition != condition);
        self.waiting.push(Waiting {
            condition: condition.to_owned(),
            dst: dst.clone(),
            next: now + self.config.timers.waiting_interval,
        });
        Ok(())
    }

    /// Stops announcing `condition`; returns false if we were not waiting for it.
    pub fn stop_waiting(&mut self, condition: &str) -> bool {
        let before = self.waiting.len();
        self.waiting.retain(|w| w.condition != condition);
        self.waiting.len() != before
    }

    /// The conditions we are waiting for.
    pub fn waiting_for(&self) -> impl Iterator<Item = &str> + '_ {
        self.waiting.iter().map(|w| w.condition.as_str())
    }

    /// Releases `waiter`'s `condition`: `mbus.go` sent reliably to its complete
    /// address (RFC 3259 §9.6).
    pub fn go(
        &mut self,
        now: Instant,
        waiter: &Address,
        condition: &str,
    ) -> Result<MsgId, SendError> {
        let cmd = Command::new("mbus.go", vec![Value::symbol(condition)]);
        self.send(now, waiter, vec![cmd], Delivery::Reliable)
    }

    /// Leaves the bus: reliable messages still unacknowledged are reported
    /// failed now, `mbus.bye` is queued, hellos stop. (To let messages in flight
    /// settle first, wait until [`Endpoint::in_flight`] is 0.)
    pub fn close(&mut self, now: Instant) {
        if self.closed {
            return;
        }
        for id in self.in_flight.ids() {
            if let Some(m) = self.in_flight.remove(id) {
                self.stats.failed += 1;
                self.push_event(Event::DeliveryFailed { id, dst: m.dst });
            }
        }
        for (dst, queue) in std::mem::take(&mut self.ordered) {
            for (id, _) in queue {
                self.stats.failed += 1;
                self.push_event(Event::DeliveryFailed {
                    id,
                    dst: dst.clone(),
                });
            }
        }
        self.guidelines_close();
        let bye = Command::new("mbus.bye", vec![]);
        let _ = self.emit(now, &Address::empty(), MessageType::Unreliable, vec![bye]);
        self.waiting.clear();
        self.ping_reply = None;
        self.closed = true;
    }

    // ---- outputs -------------------------------------------------------------------

    /// Tells the endpoint the IP endpoint its datagrams leave from: what
    /// arrives from there is our own multicast looped back, counted as an
    /// echo without checking its digest.
    pub fn set_own_source(&mut self, from: SocketAddr) {
        self.own_source = Some(from);
    }

    /// The next datagram to send. Acknowledgements still owed go out first,
    /// one message per peer (the socket has been read empty when the driver
    /// asks for transmits).
    pub fn poll_transmit(&mut self, now: Instant) -> Option<Transmit> {
        if self.acks_owed {
            let owed: Vec<Address> = self
                .peers
                .values()
                .filter(|p| !p.pending_acks.is_empty())
                .map(|p| p.peer.address.clone())
                .collect();
            for addr in owed {
                self.send_dedicated_ack(now, &addr);
            }
            // Cleared only when true: `emit` relies on it to skip the lookup.
            self.acks_owed = self.peers.values().any(|p| !p.pending_acks.is_empty());
        }
        let t = self.transmits.pop_front()?;
        self.stats.datagrams_out += 1;
        Some(t)
    }

    /// The next event for the application.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`Endpoint::handle_timeout`] should be called next (`None` after close).
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.closed {
            return None;
        }
        let dead_after = HelloTimer::dead_after(&self.config.timers, self.entities());
        let peers = self.peers.values().flat_map(|p| {
            [Some(p.peer.last_heard + dead_after), p.ack_due]
                .into_iter()
                .flatten()
        });
        [
            Some(self.hello.next),
            self.ping_reply,
            self.in_flight.next_deadline(),
        ]
        .into_iter()
        .flatten()
        .chain(peers)
        .chain(self.waiting.iter().map(|w| w.next))
        .chain(self.guides.next_deadline())
        .chain(self.txns.next_deadline())
        .min()
    }

    // ---- internals -------------------------------------------------------------------

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

    /// Builds, seals and queues one message, piggy-backing the acks owed to
    /// `dst` if it is exactly a known entity. Returns its SeqNum and, for a
    /// reliable message, a copy of the datagram and its IP destination.
    fn emit(
        &mut self,
        now: Instant,
        dst: &Address,
        kind: MessageType,
        commands: Vec<Command>,
    ) -> Result<(u32, Option<Retained>), EncodeError> {
        let keep_until = now + self.config.timers.t_r * self.ack_copy_factor();
        let acks = match self.peers.get_mut(dst) {
            Some(p) if self.acks_owed => p.take_acks(keep_until),
            _ => Vec::new(),
        };
        let mut msg = self.view(dst, kind, &acks, &commands);
        msg.timestamp = self.wall_ms(now);
        match seal_view(&msg, &self.config.keys, self.config.framing) {
            Ok(bytes) => {
                let seq = self.next_seq;
                self.next_seq = self.next_seq.wrapping_add(1);
                let to = self.route(dst);
                let copy = (kind == MessageType::Reliable).then(|| (bytes.clone(), to));
                self.queue_transmit(Transmit {
                    destination: to,
                    contents: bytes,
                });
                Ok((seq, copy))
            }
            Err(e) => {
                let due = now + self.config.timers.t_c;
                if let Some(p) = self.peers.get_mut(dst) {
                    self.acks_owed |= !acks.is_empty();
                    for seq in acks {
                        p.owe_ack(seq, due);
                    }
                }
                Err(e)
            }
        }
    }

    /// T_k / T_r: how long sent ack lists are kept, in units of T_r.
    fn ack_copy_factor(&self) -> u32 {
        let n = self.config.timers.n_r;
        n * (n + 1) / 2
    }

    fn transmit_reliable(
        &mut self,
        now: Instant,
        id: MsgId,
        dst: Address,
        commands: Vec<Command>,
    ) -> Result<(), EncodeError> {
        let (seq, copy) = self.emit(now, &dst, MessageType::Reliable, commands)?;
        let Some((bytes, to)) = copy else {
            return Ok(());
        };
        self.stats.reliable_sent += 1;
        self.in_flight.insert(
            id,
            InFlight {
                dst,
                seq,
                bytes,
                to,
                first_sent: now,
                transmissions: 1,
                next: now + self.config.timers.t_r,
            },
        );
        Ok(())
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
                .transmit_reliable(now, id, dst.clone(), commands)
                .is_err()
            {
                self.stats.failed += 1;
                self.push_event(Event::DeliveryFailed {
                    id,
                    dst: dst.clone(),
                });
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
        let mut matches = self
            .peers
            .values()
            .filter(|p| dst.is_subset_of(&p.peer.address));
        match (matches.next(), matches.next()) {
            (Some(p), None) if p.peer.endpoint.port() != group.port() => p.peer.endpoint,
            _ => group,
        }
    }

    fn send_hello(&mut self, now: Instant) {
        self.send_hello_now(now);
        let entities = self.entities();
        let timers = self.config.timers.clone();
        self.hello.sent(now, entities, &timers, &mut self.rng);
    }

    fn send_hello_now(&mut self, now: Instant) {
        let hello = Command::new("mbus.hello", vec![]);
        let _ = self.emit(now, &Address::empty(), MessageType::Unreliable, vec![hello]);
    }

    fn send_dedicated_ack(&mut self, now: Instant, peer: &Address) {
        if self
            .emit(now, peer, MessageType::Unreliable, vec![])
            .is_ok()
        {
            self.stats.dedicated_acks += 1;
        }
    }

    fn flush_acks_if_full(&mut self, now: Instant, peer: &Address) {
        let full = self
            .peers
            .get(peer)
            .is_some_and(|p| p.pending_acks.len() >= self.config.limits.max_pending_acks);
        if full {
            self.send_dedicated_ack(now, peer);
        }
    }

    /// Adds or refreshes the sender in the entity table; false if it is new and
    /// the table is full.
    fn heard_from(&mut self, now: Instant, src: &Address, from: SocketAddr) -> bool {
        if let Some(p) = self.peers.get_mut(src) {
            p.peer.last_heard = now;
            p.peer.endpoint = from;
            return true;
        }
        if self.peers.len() >= self.config.limits.max_peers {
            self.stats.queue_drops += 1;
            return false;
        }
        self.peers
            .insert(src.clone(), PeerState::new(src.clone(), from, now));
        self.push_event(Event::PeerJoined(src.clone()));
        true
    }

    fn remove_peer(&mut self, now: Instant, addr: &Address, reason: LeaveReason) {
        if self.peers.remove(addr).is_none() {
            return;
        }
        self.remembered.forget(addr);
        let entities = self.entities();
        self.hello.entities_dropped(now, entities);
        self.push_event(Event::PeerLeft {
            addr: addr.clone(),
            reason,
        });
        self.guidelines_peer_left(addr);
    }

    /// One command of an accepted message, in order.
    fn dispatch(&mut self, now: Instant, header: &Header, reliable: bool, command: Command) {
        let src = &header.src;
        let condition = command
            .args
            .first()
            .and_then(Value::as_str)
            .map(str::to_owned);
        match (command.name.as_str(), condition) {
            ("mbus.hello", _) => {}
            ("mbus.bye", _) => self.remove_peer(now, src, LeaveReason::Bye),
            ("mbus.ping", _) => {
                // RFC 3259 §9.3: one hello after U[0, c_hello_min] answers the
                // pings of that wait. We extend the cover to c_hello_min after
                // the first ping even when the random wait was shorter: the
                // answer resets the regular timer, so a later pinger still hears
                // a hello within about one interval.
                let covered = self.pings_covered_until.is_some_and(|until| now < until);
                if self.ping_reply.is_none() && !covered {
                    let wait = self.config.timers.hello_min;
                    self.ping_reply = Some(now + wait.mul_f64(self.rng.unit()));
                    self.pings_covered_until = Some(now + wait);
                }
            }
            ("mbus.quit", _) => self.push_event(Event::Quit { src: src.clone() }),
            ("mbus.waiting", Some(condition)) => self.push_event(Event::Waiting {
                src: src.clone(),
                condition,
            }),
            ("mbus.go", Some(condition)) => {
                self.stop_waiting(&condition);
                self.push_event(Event::Go {
                    src: src.clone(),
                    condition,
                });
            }
            _ => {
                let plain =
                    self.guidelines_dispatch(now, src, &header.dst, header.seq, reliable, command);
                if let Some(command) = plain {
                    self.push_event(Event::Command {
                        src: src.clone(),
                        reliable,
                        command,
                    });
                }
            }
        }
    }

    fn push_event(&mut self, event: Event) {
        let settled = match &event {
            Event::Delivered { id, .. } => Some((*id, true)),
            Event::DeliveryFailed { id, .. } => Some((*id, false)),
            _ => None,
        };
        if let Some((id, delivered)) = settled {
            if self.guidelines_settled(id, delivered) {
                return;
            }
        }
        if self.events.len() >= self.config.limits.max_events {
            self.events.pop_front();
            self.stats.queue_drops += 1;
        }
        self.events.push_back(event);
    }

    fn queue_transmit(&mut self, t: Transmit) {
        if self.transmits.len() >= self.config.limits.max_transmits {
            self.transmits.pop_front();
            self.stats.queue_drops += 1;
        }
        self.transmits.push_back(t);
    }
}
