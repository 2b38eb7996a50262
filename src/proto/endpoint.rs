//! The [`Endpoint`]: one entity's protocol state machine, the transport and
//! the Guidelines sub-machines behind one poll interface.

mod dispatch;

use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};

use crate::wire::{Address, Command};

use super::guidelines::{Ctx, Guidelines, Properties, Rpc, Services, Transactions};
use super::peers::Peer;
use super::shared::{PeerChange, Screened, Shared};
use super::transport::{Accepted, Opened, Transport};
use super::unauthenticated::UnauthenticatedSource;
use super::{
    Delivery, EndpointConfig, Event, MsgId, SansIo, SendError, SetupError, Stats, Transmit,
};

/// One Mbus entity's protocol state (RFC 3259 §6–§10 and the Guidelines
/// layer), driven by its caller.
///
/// See the [module documentation](super) for the driving rule. The transport's
/// own commands are methods here (`send`, `ping`, `start_waiting`, `go`,
/// `close`); the Guidelines layer is reached through its views:
///
/// ```
/// # use std::time::{Duration, Instant, SystemTime};
/// # use rmbus::auth::Keys;
/// # use rmbus::proto::{Endpoint, EndpointConfig, Limits, ReplayPolicy, Timers};
/// # use rmbus::rpc::Access;
/// # use rmbus::wire::{Address, Framing, Value};
/// # let config = EndpointConfig {
/// #     keys: Keys::md5_noencr(b"123156189112")?,
/// #     framing: Framing::Lf,
/// #     group: "239.255.255.247:47000".parse()?,
/// #     send_unicast: false,
/// #     seed: 1,
/// #     first_seq: 0,
/// #     timers: Timers::default(),
/// #     limits: Limits::default(),
/// #     replay: ReplayPolicy::default(),
/// # };
/// let now = Instant::now();
/// let me = Address::parse("(app:mixer id:1-1@127.0.0.1)")?;
/// let mut ep = Endpoint::new(config, me, now, SystemTime::now())?;
/// ep.rpc().serve("mixer.add");
/// ep.properties().define("mixer.volume", Value::Integer(50), Access::ReadWrite);
/// assert_eq!(ep.properties().value("mixer.volume"), Some(&Value::Integer(50)));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Endpoint {
    transport: Transport,
    guidelines: Guidelines,
    /// [`Transport::joins`] when calls last looked for their callees.
    joins_seen: u64,
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
        Ok(Endpoint {
            transport: Transport::new(config, local, now, wall_now)?,
            guidelines: Guidelines::default(),
            joins_seen: 0,
        })
    }

    // ---- getters ---------------------------------------------------------------

    /// Our own complete address.
    pub fn local_address(&self) -> &Address {
        self.transport.local_address()
    }

    /// The sources of datagrams that failed authentication (RFC 3259 §11),
    /// in the order they first did, at most
    /// [`super::MAX_UNAUTHENTICATED_SOURCES`]: usually a peer with another
    /// key. The first failure from each is also logged as a warning.
    pub fn unauthenticated_sources(&self) -> &[UnauthenticatedSource] {
        self.transport.unauthenticated_sources()
    }

    /// The entities we know of (not ourselves), in the order they joined.
    pub fn peers(&self) -> impl Iterator<Item = &Peer> + '_ {
        self.transport.peers()
    }

    /// The known entity with exactly this address.
    pub fn peer(&self, addr: &Address) -> Option<&Peer> {
        self.transport.peer(addr)
    }

    /// How long a reliable message is tried before it is reported failed
    /// (RFC 3259 §7: T_r · N_r(N_r+1)/2, 600 ms with the RFC's timers).
    pub fn retransmit_window(&self) -> Duration {
        self.transport.policy().retransmit_window()
    }

    /// The number of entities on the bus as we see it, ourselves included (§8).
    pub fn entities(&self) -> usize {
        self.transport.entities()
    }

    /// The counters. Rejections, evictions and untracked senders are
    /// counted once for a host's entities, and each of them reports the
    /// host's count.
    pub fn stats(&self) -> Stats {
        self.transport.stats()
    }

    /// Whether the application hears entities join and leave as
    /// [`Event::PeerJoined`] and [`Event::PeerLeft`] (on by default). An
    /// entity among thousands on one host that has no use for them turns
    /// them off, and is then handed a change of the entity table only while
    /// it has work the change may affect.
    pub fn set_peer_events(&mut self, on: bool) {
        self.transport.set_peer_events(on);
    }

    /// Reliable messages not yet acknowledged or failed (queued ones included).
    pub fn in_flight(&self) -> usize {
        self.transport.in_flight()
    }

    /// True once [`Endpoint::close`] has been called.
    pub fn is_closed(&self) -> bool {
        self.transport.is_closed()
    }

    /// The complete address of the one known entity that `dst` designates
    /// (RFC 3259 §6.2 uniqueness); `dst` may be a subset of it.
    pub fn unique_match(&self, dst: &Address) -> Result<Address, SendError> {
        self.transport.unique_match(dst)
    }

    /// `dst` itself if it is the complete address of one known entity, as a
    /// reliable message needs it (RFC 3259 §7); a unique subset address is
    /// refused with the complete one in the error.
    pub fn resolve(&self, dst: &Address) -> Result<Address, SendError> {
        self.transport.resolve(dst)
    }

    // ---- the Guidelines layer's views ---------------------------------------------

    /// Calls and serving (Guidelines §5.2).
    pub fn rpc(&mut self) -> Rpc<'_> {
        self.guidelines.rpc(&mut self.transport)
    }

    /// Properties (Guidelines §5.4).
    pub fn properties(&mut self) -> Properties<'_> {
        self.guidelines.properties(&mut self.transport)
    }

    /// Transactions, as client and as server (Guidelines §5.3).
    pub fn transactions(&mut self) -> Transactions<'_> {
        self.guidelines.transactions(&mut self.transport)
    }

    /// Services, registration and event notifications (Guidelines §5.5, §6).
    pub fn services(&mut self) -> Services<'_> {
        self.guidelines.services(&mut self.transport)
    }

    // ---- inputs ------------------------------------------------------------------

    /// The wall clock read at `now`: the entity's TimeStamps (RFC 3259 §3)
    /// and the clock the replay guard compares with count from it from now
    /// on. [`Endpoint::new`] takes the first reading; a driver that calls
    /// this as it wakes keeps the entity right across a suspend or a
    /// stepped clock (the monotonic `now` does not see either). A
    /// simulation that never calls it keeps one exact timeline.
    pub fn set_wall_clock(&mut self, now: Instant, wall: SystemTime) {
        self.transport.set_wall_clock(now, wall);
    }

    /// One datagram from the bus. Never fails: what is not acceptable is
    /// dropped and counted.
    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddr, data: &[u8]) {
        let guidelines = &self.guidelines;
        let engaged = |a: &Address| guidelines.engaged_with(a);
        let accepted = self.transport.accept(now, from, data, &engaged);
        self.handle_accepted(now, accepted);
    }

    /// A datagram the driver has already opened ([`crate::auth::open`]) with
    /// this endpoint's keys, shared with other endpoints: what a host of many
    /// entities that share one set of keys does, so that a datagram is
    /// authenticated and parsed once, not once per entity (only the entity
    /// that takes the message copies its commands). Otherwise the same as
    /// [`Endpoint::handle_datagram`].
    pub fn handle_opened(
        &mut self,
        now: Instant,
        from: SocketAddr,
        opened: Result<&crate::wire::Message, &crate::auth::Rejection>,
    ) {
        let opened = opened.map(Opened::Shared);
        let guidelines = &self.guidelines;
        let engaged = |a: &Address| guidelines.engaged_with(a);
        let accepted = self.transport.accept_opened(now, from, opened, &engaged);
        self.handle_accepted(now, accepted);
    }

    fn handle_accepted(&mut self, now: Instant, accepted: Option<Accepted>) {
        self.route_settled(now);
        self.follow_changes(now);
        let Some(Accepted {
            header,
            reliable,
            commands,
        }) = accepted
        else {
            return;
        };
        for command in commands {
            self.dispatch(now, &header, reliable, command);
        }
    }

    /// Timers: retransmissions and failures, acks due, expiry, hellos,
    /// waiting, calls and transactions. Idempotent; call it when
    /// [`Endpoint::poll_timeout`] is reached (calling it early does no harm).
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.transport.is_closed() {
            return;
        }
        self.transport.retransmit_due(now);
        self.route_settled(now);
        self.transport.send_acks_due(now);
        self.transport.expire_due(now);
        self.follow_changes(now);
        self.transport.announce_due(now);
        let mut ctx = Ctx::new(&mut self.transport, now);
        self.guidelines.handle_timeout(&mut ctx);
    }

    // ---- commands from the application -------------------------------------------

    /// Sends `commands` in one message to `dst`.
    ///
    /// Reliable delivery needs the complete address of one known entity; it is
    /// refused at once otherwise, and nothing is sent (RFC 3259 §7 needs one
    /// acknowledging entity; a message nobody may acknowledge could only time
    /// out). The outcome
    /// of a reliable message comes later as [`Event::Delivered`] or
    /// [`Event::DeliveryFailed`] with the returned id.
    pub fn send(
        &mut self,
        now: Instant,
        dst: &Address,
        commands: Vec<Command>,
        delivery: Delivery,
    ) -> Result<MsgId, SendError> {
        self.transport.send(now, dst, commands, delivery)
    }

    /// [`Endpoint::send`] for an application that may send before it has
    /// heard its peer: a reliable message to a destination no known entity
    /// matches is not refused but waits for one to appear. `dst` is pinged
    /// once (RFC 3259 §9.3); the message goes as soon as an entity it
    /// designates joins (a subset address is completed to that entity's
    /// address when it is the one match), and fails with
    /// [`Event::DeliveryFailed`] if none has by `deadline`. It counts in
    /// [`Endpoint::in_flight`] meanwhile. A destination that is known goes
    /// at once, as with [`Endpoint::send`]; other refusals are the same.
    pub fn send_within(
        &mut self,
        now: Instant,
        dst: &Address,
        commands: Vec<Command>,
        delivery: Delivery,
        deadline: Instant,
    ) -> Result<MsgId, SendError> {
        self.transport
            .send_within(now, dst, commands, delivery, deadline)
    }

    /// Asks the entities that `dst` designates to answer with a hello (unreliable).
    pub fn ping(&mut self, now: Instant, dst: &Address) -> Result<(), SendError> {
        self.transport.ping(now, dst)
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
        self.transport.start_waiting(now, dst, condition)
    }

    /// Stops announcing `condition`; returns false if we were not waiting for it.
    pub fn stop_waiting(&mut self, condition: &str) -> bool {
        self.transport.stop_waiting(condition)
    }

    /// The conditions we are waiting for, in name order.
    pub fn waiting_for(&self) -> impl Iterator<Item = &str> + '_ {
        self.transport.waiting_for()
    }

    /// Releases `waiter`'s `condition`: `mbus.go` sent reliably to its complete
    /// address (RFC 3259 §9.6).
    pub fn go(
        &mut self,
        now: Instant,
        waiter: &Address,
        condition: &str,
    ) -> Result<MsgId, SendError> {
        let go = super::cmd::Go {
            condition: condition.to_owned(),
        };
        self.transport
            .send(now, waiter, vec![go.into_command()], Delivery::Reliable)
    }

    /// Leaves the bus: reliable messages still unacknowledged are reported
    /// failed now, calls and transactions still open end, `mbus.bye` is
    /// queued, hellos stop. (To let messages in flight settle first, wait
    /// until [`Endpoint::in_flight`] is 0.)
    pub fn close(&mut self, now: Instant) {
        if self.transport.is_closed() {
            return;
        }
        self.transport.fail_all();
        self.route_settled(now);
        let mut ctx = Ctx::new(&mut self.transport, now);
        self.guidelines.close(&mut ctx);
        self.transport.say_bye(now);
    }

    // ---- outputs -------------------------------------------------------------------

    /// The next datagram to send. Acknowledgements still owed go out first,
    /// one message per peer (the socket has been read empty when the driver
    /// asks for transmits).
    pub fn poll_transmit(&mut self, now: Instant) -> Option<Transmit> {
        self.transport.poll_transmit(now)
    }

    /// The next event for the application.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.transport.poll_event()
    }

    /// When [`Endpoint::handle_timeout`] should be called next (`None` after
    /// close). O(log n) in what is in flight.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let transport = self.transport.next_deadline()?;
        Some(
            self.guidelines
                .next_deadline()
                .map_or(transport, |g| g.min(transport)),
        )
    }

    // ---- internals -------------------------------------------------------------------

    /// Hands the outcomes of the sub-machines' reliable messages to them.
    fn route_settled(&mut self, now: Instant) {
        for settled in self.transport.take_settled() {
            let mut ctx = Ctx::new(&mut self.transport, now);
            self.guidelines.settled(&mut ctx, settled);
        }
    }

    /// A lone entity follows the changes of its own entity table (a host
    /// hands its entities the changes of the shared one).
    pub(super) fn follow_changes(&mut self, now: Instant) {
        while let Some(change) = self.transport.poll_change() {
            self.apply_change(now, &change);
        }
    }

    /// A change of the entity table: the transport follows it, the
    /// sub-machines forget an entity that left, and calls waiting for a
    /// callee look again when one joined.
    pub(crate) fn apply_change(&mut self, now: Instant, change: &PeerChange) {
        self.transport.apply_change(now, change);
        if let PeerChange::Left(addr, _) = change {
            if addr != self.transport.local_address() {
                let mut ctx = Ctx::new(&mut self.transport, now);
                self.guidelines.peer_left(&mut ctx, addr);
            }
        }
        let joins = self.transport.joins();
        if joins != self.joins_seen {
            self.joins_seen = joins;
            if self.guidelines.calls.finding() {
                let mut ctx = Ctx::new(&mut self.transport, now);
                self.guidelines.calls.find_callees(&mut ctx);
            }
        }
        self.route_settled(now);
    }

    // ---- as an entity of a host ([`super::Entities`]) -------------------------------

    /// Makes this endpoint an entity of a host: its own shared state is
    /// handed back, and from now on it acts only with the host's attached.
    pub(crate) fn make_hosted(&mut self) -> Option<Box<Shared>> {
        self.transport.make_hosted()
    }

    /// Lends the host's shared state to this entity.
    pub(crate) fn attach(&mut self, shared: Box<Shared>) {
        self.transport.attach(shared);
    }

    /// Takes the host's shared state back.
    pub(crate) fn detach(&mut self) -> Option<Box<Shared>> {
        self.transport.detach()
    }

    /// A datagram the host has opened and screened, routed to this entity
    /// because its destination designates it.
    pub(crate) fn handle_screened(
        &mut self,
        now: Instant,
        msg: &crate::wire::Message,
        screened: Screened,
    ) {
        let accepted = self
            .transport
            .accept_screened(now, Opened::Shared(msg), screened);
        self.handle_accepted(now, accepted);
    }

    /// True if this entity has open work with `addr` (a full table does not
    /// evict such an entity).
    pub(crate) fn engaged_with(&self, addr: &Address) -> bool {
        self.transport.busy_with(addr) || self.guidelines.engaged_with(addr)
    }

    /// True if this entity must hear the entity table's changes.
    pub(crate) fn follows_peers(&self) -> bool {
        self.transport.follows_peers() || self.guidelines.any_open()
    }

    /// The transport, for a host's read-only views.
    pub(crate) fn transport(&self) -> &Transport {
        &self.transport
    }

    /// This endpoint as the read-only view a host gives of its entities.
    pub fn view(&self) -> super::EntityView<'_> {
        super::EntityView::new(self, self.transport.shared())
    }
}

impl SansIo for Endpoint {
    type Event = Event;

    fn handle_datagram(&mut self, now: Instant, from: SocketAddr, data: &[u8]) {
        Endpoint::handle_datagram(self, now, from, data);
    }

    fn handle_timeout(&mut self, now: Instant) {
        Endpoint::handle_timeout(self, now);
    }

    fn poll_transmit(&mut self, now: Instant) -> Option<Transmit> {
        Endpoint::poll_transmit(self, now)
    }

    fn poll_event(&mut self) -> Option<Event> {
        Endpoint::poll_event(self)
    }

    fn poll_timeout(&self) -> Option<Instant> {
        Endpoint::poll_timeout(self)
    }
}
