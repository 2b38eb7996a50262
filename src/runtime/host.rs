//! [`Host`]: many entities in one process, on one set of sockets and one
//! event loop.

use std::collections::BTreeMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::time::{Duration, Instant, SystemTime};

use mio::event::Source;
use mio::net::UdpSocket;
use mio::{Interest, Registry, Token};
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags};

use crate::config::Config;
use crate::proto::{Endpoint, EndpointConfig, Entities, EntityView, Event, SendError, Transmit};
use crate::rpc::{CallId, Outcome, Request};
use crate::wire::{timestamp_of, Address, Value};

use super::closures::Closures;
use super::{echo_filter, socket, BindError, Handled};

pub use crate::proto::EntityId;

/// The sending side shared by the entities.
#[derive(Debug)]
struct Sender {
    own: UdpSocket,
    send_errors: u64,
    /// The causes of lost datagrams already logged (each once).
    logged: Vec<io::ErrorKind>,
}

/// True for a `sendto` error that loses this one datagram and says nothing
/// about the socket: a full buffer, a firewall rule that drops it (EPERM),
/// a route or an interface that is missing or down. The datagram is lost
/// as on a lossy link, and the retransmission rules apply (RFC 3259 §7).
fn loses_only_this_datagram(e: &io::Error) -> bool {
    use io::ErrorKind::*;
    matches!(
        e.kind(),
        WouldBlock
            | ConnectionRefused
            | PermissionDenied
            | NetworkUnreachable
            | HostUnreachable
            | NetworkDown
            | AddrNotAvailable
    ) || e.raw_os_error() == Some(nix::libc::ENOBUFS)
}

impl Sender {
    fn new(own: UdpSocket) -> Sender {
        Sender {
            own,
            send_errors: 0,
            logged: Vec::new(),
        }
    }

    /// Sends one datagram. One the kernel refuses
    /// ([`loses_only_this_datagram`]) is counted as lost, its cause logged
    /// once; any other error is returned.
    fn send(&mut self, t: &Transmit) -> io::Result<()> {
        match self.own.send_to(&t.contents, t.destination) {
            Ok(_) => Ok(()),
            Err(e) if loses_only_this_datagram(&e) => {
                self.send_errors += 1;
                let quiet = matches!(e.kind(), io::ErrorKind::WouldBlock);
                if !quiet && !self.logged.contains(&e.kind()) {
                    self.logged.push(e.kind());
                    tracing::warn!(
                        "the kernel refused a datagram to {}: {e}; it is counted as lost \
                         (reliable messages are retransmitted), and further ones for \
                         this cause only counted",
                        t.destination
                    );
                }
                Ok(())
            }
            Err(e) => {
                self.send_errors += 1;
                Err(e)
            }
        }
    }

    /// Sends every datagram `ep` has ready (see [`Sender::send`]).
    fn flush(&mut self, ep: &mut Endpoint) -> io::Result<()> {
        let now = Instant::now();
        while let Some(t) = ep.poll_transmit(now) {
            self.send(&t)?;
        }
        Ok(())
    }
}

/// Several entities in one process, on one pair of sockets.
///
/// The protocol work is a [`crate::proto::Entities`]: every datagram the
/// sockets receive is opened and screened once (what the entities share,
/// the entity table and the replay guard, is kept once), then handed only
/// to the entities its destination designates. The entities share one
/// sending socket, so their traffic to each other goes through the
/// kernel's multicast loop exactly as it would between processes: each
/// sibling gets each message once, from the kernel, and is never handed a
/// second, in-process copy. While the host holds a single entity, what
/// comes back from its own socket is its own traffic and is dropped unread
/// (counted in [`Host::own_echoes`]); with several, it may be a sibling's and
/// goes to everyone (the sender recognises its own by the source address).
///
/// Entities are added and removed at any time. Drive a host like a
/// [`super::Bus`]: on readability [`Host::on_readable`]; when [`Host::timeout`]
/// has passed [`Host::on_timeout`]; then [`Host::poll_event`] until `None`
/// (which also sends what is owed).
#[derive(Debug)]
pub struct Host {
    group: UdpSocket,
    sender: Sender,
    group_addr: SocketAddr,
    own_addr: SocketAddr,
    interface_ip: IpAddr,
    /// What every entity is told about the bus (its seed is drawn per entity).
    template: EndpointConfig,
    /// The entities' protocol state, and what they share.
    core: Entities,
    /// The closures the runtime adds to each entity.
    closures: BTreeMap<EntityId, Closures>,
    /// Both sockets in a level-triggered epoll set, for [`AsRawFd`].
    watch: Epoll,
    buf: Vec<u8>,
    own_echoes: u64,
    /// True while the kernel keeps our own multicast off the group socket
    /// (see [`echo_filter`]): only while at most one entity is hosted.
    echo_filter: bool,
    /// The wall clock (ms) the entities were last told, and when.
    wall_told: (Instant, u64),
}

/// How far the wall clock may drift from the entities' idea of it before
/// they are told again.
const WALL_CLOCK_SLACK_MS: u64 = 10;

impl Host {
    /// Opens the sockets of the bus that `config` describes, with no entity yet.
    pub fn bind(config: &Config) -> Result<Host, BindError> {
        let template = EndpointConfig::from_config(config, 0)?;
        let sockets = socket::open(config)?;
        let watch = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC).map_err(io::Error::from)?;
        for (n, s) in [&sockets.group, &sockets.own].into_iter().enumerate() {
            watch
                .add(s.as_fd(), EpollEvent::new(EpollFlags::EPOLLIN, n as u64))
                .map_err(io::Error::from)?;
        }
        let own_addr = sockets.own.local_addr()?;
        let echo_filter = echo_filter::set(&sockets.group, own_addr, true).unwrap_or_else(|e| {
            tracing::debug!("own multicast is dropped in user space: no socket filter ({e})");
            false
        });
        let core = Entities::new(&template, Instant::now(), SystemTime::now());
        Ok(Host {
            core,
            closures: BTreeMap::new(),
            group: UdpSocket::from_std(sockets.group),
            sender: Sender::new(UdpSocket::from_std(sockets.own)),
            group_addr: sockets.group_addr,
            own_addr,
            interface_ip: sockets.interface_ip,
            template,
            watch,
            buf: vec![0; 65_536],
            own_echoes: 0,
            echo_filter,
            wall_told: (Instant::now(), timestamp_of(SystemTime::now())),
        })
    }

    /// Adds an entity with `address` (an `id` element
    /// `<pid>-<n>@<interface address>` is added if it has none); it says its
    /// first hello within a second.
    pub fn add(&mut self, address: &Address) -> Result<EntityId, BindError> {
        self.add_entity(address, true)
    }

    /// As [`Host::add`], with the entity's peer events off from the start
    /// (see [`Entities::add_without_peer_events`]): how a layer that keeps
    /// the bus's view once for many entities (`cmbs::Site`) adds them.
    pub fn add_without_peer_events(&mut self, address: &Address) -> Result<EntityId, BindError> {
        self.add_entity(address, false)
    }

    fn add_entity(&mut self, address: &Address, peer_events: bool) -> Result<EntityId, BindError> {
        let local = super::entity_address(address, self.interface_ip);
        let mut config = self.template.clone();
        config.seed = rand::random();
        if self.echo_filter && !self.core.is_empty() {
            // A second entity: the first one's copies are a sibling's now.
            echo_filter::set(&self.group, self.own_addr, false)?;
            self.echo_filter = false;
        }
        let (now, wall) = (Instant::now(), SystemTime::now());
        let id = match peer_events {
            true => self.core.add(config, local, now, wall)?,
            false => self
                .core
                .add_without_peer_events(config, local, now, wall)?,
        };
        self.closures.insert(id, Closures::default());
        Ok(id)
    }

    /// Says bye for entity `id` and forgets it. Returns the events it had
    /// not handed out yet, the outcomes of its unfinished messages, calls and
    /// transactions among them (no closure runs for them); `None` if there
    /// is no such entity.
    pub fn remove(&mut self, id: EntityId) -> Option<Vec<Event>> {
        let events = self.core.remove(id, Instant::now())?;
        self.closures.remove(&id);
        self.flush_logged();
        if self.core.len() == 1 && !self.echo_filter {
            self.echo_filter = echo_filter::set(&self.group, self.own_addr, true).unwrap_or(false);
        }
        Some(events)
    }

    /// The entities, in the order they were added.
    pub fn ids(&self) -> impl Iterator<Item = EntityId> + '_ {
        self.core.ids()
    }

    /// How many entities the host holds.
    pub fn len(&self) -> usize {
        self.core.len()
    }

    /// True if the host holds no entity.
    pub fn is_empty(&self) -> bool {
        self.core.is_empty()
    }

    /// Entity `id`'s protocol core, to look at (peers, counters, …).
    pub fn endpoint(&self, id: EntityId) -> Option<EntityView<'_>> {
        self.core.endpoint(id)
    }

    /// The entities' protocol state and what they share (the entity table,
    /// the replay guard, the host's counters).
    pub fn core(&self) -> &Entities {
        &self.core
    }

    /// Entity `id`, to act on.
    pub fn entity(&mut self, id: EntityId) -> Option<EntityMut<'_>> {
        self.core.lend(id)?;
        let closures = self.closures.entry(id).or_default();
        Some(EntityMut {
            id,
            core: &mut self.core,
            closures,
            sender: &mut self.sender,
        })
    }

    /// The group and port the entities send to.
    pub fn group_addr(&self) -> SocketAddr {
        self.group_addr
    }

    /// The IP endpoint the entities send from.
    pub fn own_addr(&self) -> SocketAddr {
        self.own_addr
    }

    /// Datagrams the operating system refused to send.
    pub fn send_errors(&self) -> u64 {
        self.sender.send_errors
    }

    /// Datagrams from our own socket dropped unread while one entity was
    /// hosted. Where the kernel drops them first ([`Host::filters_own_echoes`])
    /// they never arrive and are not counted.
    pub fn own_echoes(&self) -> u64 {
        self.own_echoes
    }

    /// True while a kernel socket filter keeps our own multicast off the
    /// group socket (Linux, at most one entity hosted): then no wake-up and
    /// no read is spent on it.
    pub fn filters_own_echoes(&self) -> bool {
        self.echo_filter
    }

    /// Reads both sockets until they would block and hands every datagram to
    /// the entities, opened and screened once (see [`Entities`]). Nothing is
    /// sent here; see [`Host::poll_event`].
    pub fn on_readable(&mut self) -> io::Result<()> {
        self.read_wall_clock();
        for own in [false, true] {
            loop {
                let socket = if own { &self.sender.own } else { &self.group };
                match socket.recv_from(&mut self.buf) {
                    Ok((n, from)) => {
                        if from == self.own_addr && self.core.len() <= 1 {
                            // Our only entity's own multicast, looped back.
                            self.own_echoes += 1;
                            continue;
                        }
                        self.core
                            .handle_datagram(Instant::now(), from, &self.buf[..n]);
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    // ICMP errors from earlier unicast sends surface here; they
                    // say nothing about this socket's health.
                    Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => continue,
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(())
    }

    /// Runs the timers that are due, and sends what they produced.
    ///
    /// When no timer is due it sends nothing: acknowledgements owed for what
    /// [`Host::on_readable`] took in wait for [`Host::poll_event`], so that a
    /// reply made while handling the events carries them.
    pub fn on_timeout(&mut self) -> io::Result<()> {
        let now = self.read_wall_clock();
        if self.core.poll_timeout().is_some_and(|t| t <= now) {
            self.core.handle_timeout(now);
            self.flush()?;
        }
        Ok(())
    }

    /// Reads the clocks; when the wall clock has moved away from where the
    /// monotonic one says it should be (a suspend, a stepped clock), tells
    /// every entity ([`Endpoint::set_wall_clock`]), so that its TimeStamps
    /// and its replay clock check follow. Returns the monotonic reading.
    fn read_wall_clock(&mut self) -> Instant {
        let (now, wall) = (Instant::now(), SystemTime::now());
        let (at, told) = self.wall_told;
        let expected = told.saturating_add(now.saturating_duration_since(at).as_millis() as u64);
        if expected.abs_diff(timestamp_of(wall)) >= WALL_CLOCK_SLACK_MS {
            self.wall_told = (now, timestamp_of(wall));
            self.core.set_wall_clock(now, wall);
        }
        now
    }

    /// The next deadline of any entity, or of what they share.
    pub fn deadline(&self) -> Option<Instant> {
        self.core.poll_timeout()
    }

    /// How long the event loop may sleep before [`Host::on_timeout`] is due.
    pub fn timeout(&self) -> Option<Duration> {
        self.deadline()
            .map(|t| t.saturating_duration_since(Instant::now()))
    }

    /// The next event of any entity, with the entity's id; when there are
    /// none left, sends everything owed.
    ///
    /// Requests for operations served by a closure and the outcomes of calls
    /// made with [`EntityMut::call_then`] are handled here and not returned.
    pub fn poll_event(&mut self) -> Option<(EntityId, Event)> {
        while let Some((id, event)) = self.core.poll_event() {
            let closures = self.closures.entry(id).or_default();
            if let Some(event) = self.core.with(id, |ep| closures.take(ep, event)).flatten() {
                return Some((id, event));
            }
        }
        self.flush_logged();
        None
    }

    /// The next event for the host as a whole (see
    /// [`Entities::poll_host_event`]): the entity table's changes and the
    /// commands taken once, when the core was set up for them (as
    /// `cmbs::Site::new` does). Drain it after each wake-up, with
    /// [`Host::poll_event`].
    pub fn poll_host_event(&mut self) -> Option<Event> {
        self.core.poll_host_event()
    }

    /// The entities' protocol core, to act on many at once (a layer that
    /// keeps state for all of them, such as `cmbs::Site`). What is done
    /// through it is sent by the next [`Host::flush`] or [`Host::poll_event`]
    /// that finds no event left; the closures of [`EntityMut`] are not run
    /// for it.
    pub fn core_mut(&mut self) -> &mut Entities {
        &mut self.core
    }

    /// Sends every datagram the entities have ready.
    pub fn flush(&mut self) -> io::Result<()> {
        let now = Instant::now();
        while let Some((_, t)) = self.core.poll_transmit(now) {
            self.sender.send(&t)?;
        }
        Ok(())
    }

    fn flush_logged(&mut self) {
        if let Err(e) = self.flush() {
            tracing::warn!("sending failed: {e}");
        }
    }
}

/// One entity of a [`Host`], to act on: its endpoint (flushed after each
/// use) and the closures the runtime adds to it.
///
/// While it exists the entity holds what the host's entities share (the
/// entity table), so its endpoint answers as a lone one would.
#[derive(Debug)]
pub struct EntityMut<'a> {
    id: EntityId,
    core: &'a mut Entities,
    closures: &'a mut Closures,
    sender: &'a mut Sender,
}

impl Drop for EntityMut<'_> {
    fn drop(&mut self) {
        self.core.take_back(self.id);
    }
}

impl EntityMut<'_> {
    /// Its id in the host.
    pub fn id(&self) -> EntityId {
        self.id
    }

    /// Its protocol core, holding the host's shared state while `self` lives.
    fn ep(&mut self) -> &mut Endpoint {
        self.core
            .lent(self.id)
            .expect("an EntityMut holds its entity's shared state while it lives")
    }

    /// Its protocol core.
    pub fn endpoint(&self) -> &Endpoint {
        self.core
            .lent_ref(self.id)
            .expect("an EntityMut holds its entity's shared state while it lives")
    }

    /// Runs `f` on its protocol core with the current time, then sends what
    /// `f` produced: the way to every core method and view, e.g.
    /// `e.with_endpoint(|ep, now| ep.rpc().call(now, &dst, "op", args, timeout))`.
    pub fn with_endpoint<R>(&mut self, f: impl FnOnce(&mut Endpoint, Instant) -> R) -> R {
        let r = f(self.ep(), Instant::now());
        self.flush_logged();
        r
    }

    fn flush_logged(&mut self) {
        if let Err(e) = self.flush() {
            tracing::warn!("sending failed: {e}");
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        let ep = self
            .core
            .lent(self.id)
            .expect("an EntityMut holds its entity's shared state while it lives");
        self.sender.flush(ep)
    }

    /// Serves RPC `name` with `handler`, run on the thread that drives the
    /// host (inside [`Host::poll_event`]). A handler that panics does not take
    /// the host down: the caller gets `FAILED HANDLER_PANICKED` with the panic
    /// message. Returns that cannot be encoded become `FAILED BAD_RETURN`.
    pub fn serve(&mut self, name: &str, handler: impl FnMut(&Request) -> Handled + Send + 'static) {
        let ep = self.core.lent(self.id);
        if let Some(ep) = ep {
            self.closures.serve(ep, name, Box::new(handler));
        }
    }

    /// Serves RPC `name` through request events (answer them with the
    /// endpoint's `rpc().reply`).
    pub fn serve_events(&mut self, name: &str) {
        if let Some(ep) = self.core.lent(self.id) {
            self.closures.serve_events(ep, name);
        }
    }

    /// Stops serving `name` (unicast calls then get `UNKNOWN`).
    pub fn unserve(&mut self, name: &str) {
        if let Some(ep) = self.core.lent(self.id) {
            self.closures.unserve(ep, name);
        }
    }

    /// Calls `name` at the one entity `dst` designates (the endpoint's
    /// `rpc().call_within`: a callee not heard from yet is pinged and waited
    /// for, within `timeout`), with the outcome handed to `done` on the
    /// thread that drives the host instead of an event.
    pub fn call_then(
        &mut self,
        dst: &Address,
        name: &str,
        args: Vec<Value>,
        timeout: Duration,
        done: impl FnOnce(Address, Outcome) + Send + 'static,
    ) -> Result<CallId, SendError> {
        let call =
            self.with_endpoint(|ep, now| ep.rpc().call_within(now, dst, name, args, timeout))?;
        self.closures.wait_for(call, Box::new(done));
        Ok(call)
    }

    /// Says bye and sends it; messages still in flight are reported failed.
    /// The entity stays in the host (closed) until removed.
    pub fn close(&mut self) -> io::Result<()> {
        self.ep().close(Instant::now());
        self.flush()
    }
}

impl Source for Host {
    fn register(
        &mut self,
        registry: &Registry,
        token: Token,
        interests: Interest,
    ) -> io::Result<()> {
        self.group.register(registry, token, interests)?;
        self.sender.own.register(registry, token, interests)
    }

    fn reregister(
        &mut self,
        registry: &Registry,
        token: Token,
        interests: Interest,
    ) -> io::Result<()> {
        self.group.reregister(registry, token, interests)?;
        self.sender.own.reregister(registry, token, interests)
    }

    fn deregister(&mut self, registry: &Registry) -> io::Result<()> {
        self.group.deregister(registry)?;
        self.sender.own.deregister(registry)
    }
}

impl AsRawFd for Host {
    /// A descriptor that is readable while either socket is: watch it in a
    /// foreign event loop, then call [`Host::on_readable`].
    fn as_raw_fd(&self) -> RawFd {
        self.watch.0.as_raw_fd()
    }
}
