//! [`Bus`]: one entity on real sockets, for any event loop: the one-entity
//! case of [`Host`].

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::time::{Duration, Instant};

use mio::event::Source;
use mio::{Interest, Registry, Token};

use crate::config::Config;
use crate::proto::{Endpoint, EntityView, Event, SendError};
use crate::rpc::{CallId, Outcome, Request};
use crate::wire::{Address, Value};

use super::host::{EntityId, EntityMut, Host};
use super::{BindError, Handled};

/// An entity on the bus: the protocol core plus its two sockets.
///
/// Three ways to drive it:
/// - register it in your own [`mio::Poll`] (it is an [`mio::event::Source`]);
/// - watch [`AsRawFd::as_raw_fd`] for readability in another loop (GLib, Qt);
/// - or let [`super::spawn`] run it on a thread.
///
/// In every case: on readability call [`Bus::on_readable`]; when
/// [`Bus::timeout`] has passed call [`Bus::on_timeout`]; then take events with
/// [`Bus::poll_event`] until it returns `None` (that last call also sends what
/// is owed, acknowledgements included, so that a reply made while handling an
/// event carries them).
///
/// Everything the protocol core does is reached through
/// [`Bus::with_endpoint`], which sends what it produced:
///
/// ```no_run
/// # use rmbus::config::file;
/// # use rmbus::proto::Delivery;
/// # use rmbus::runtime::Bus;
/// # use rmbus::wire::{Address, Command};
/// let config = file::load(&file::locate(None)?)?;   // $MBUS, else ~/.mbus
/// let mut bus = Bus::bind(&config, &Address::parse("(app:myapp)")?)?;
/// let peer = Address::parse("(app:other)")?;
/// bus.with_endpoint(|ep, now| {
///     ep.send(now, &peer, vec![Command::new("tool.refresh", vec![])], Delivery::Unreliable)
/// })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Bus {
    host: Host,
    id: EntityId,
}

impl Bus {
    /// Joins the bus that `config` describes as `address` (an `id` element
    /// `<pid>-<n>@<interface address>` is added if it has none).
    pub fn bind(config: &Config, address: &Address) -> Result<Bus, BindError> {
        let mut host = Host::bind(config)?;
        let id = host.add(address)?;
        Ok(Bus { host, id })
    }

    fn entity(&mut self) -> EntityMut<'_> {
        // The bus never removes its one entity.
        self.host
            .entity(self.id)
            .expect("a Bus always holds its entity")
    }

    /// The protocol core, to look at (peers, counters, …).
    pub fn endpoint(&self) -> EntityView<'_> {
        self.host
            .endpoint(self.id)
            .expect("a Bus always holds its entity")
    }

    /// Runs `f` on the protocol core with the current time, then sends what
    /// `f` produced (the way to every core method and view).
    pub fn with_endpoint<R>(&mut self, f: impl FnOnce(&mut Endpoint, Instant) -> R) -> R {
        self.entity().with_endpoint(f)
    }

    /// Our complete address.
    pub fn local_address(&self) -> &Address {
        self.endpoint().local_address()
    }

    /// The group and port we send to.
    pub fn group_addr(&self) -> SocketAddr {
        self.host.group_addr()
    }

    /// The IP endpoint we send from.
    pub fn own_addr(&self) -> SocketAddr {
        self.host.own_addr()
    }

    /// Datagrams the operating system refused to send.
    pub fn send_errors(&self) -> u64 {
        self.host.send_errors()
    }

    /// Our own datagrams, looped back by the group and dropped unread (none
    /// reach us while [`Bus::filters_own_echoes`]).
    pub fn own_echoes(&self) -> u64 {
        self.host.own_echoes()
    }

    /// True while the kernel keeps our own multicast off our group socket
    /// (a socket filter, on Linux), so that it costs no wake-up and no read.
    pub fn filters_own_echoes(&self) -> bool {
        self.host.filters_own_echoes()
    }

    /// Reads both sockets until they would block and hands every datagram to
    /// the core. Nothing is sent here; see [`Bus::poll_event`].
    pub fn on_readable(&mut self) -> io::Result<()> {
        self.host.on_readable()
    }

    /// Runs the core's timers if one is due, and sends what they produced
    /// (see [`Host::on_timeout`]).
    pub fn on_timeout(&mut self) -> io::Result<()> {
        self.host.on_timeout()
    }

    /// How long the event loop may sleep before [`Bus::on_timeout`] is due.
    pub fn timeout(&self) -> Option<Duration> {
        self.host.timeout()
    }

    /// The next deadline, as an instant.
    pub fn deadline(&self) -> Option<Instant> {
        self.host.deadline()
    }

    /// The next event; when there are none left, sends everything owed.
    ///
    /// Requests for operations served by a closure ([`Bus::serve`]) and the
    /// outcomes of [`Bus::call_then`] are handled here and not returned.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.host.poll_event().map(|(_, event)| event)
    }

    /// Sends every datagram the core has ready.
    pub fn flush(&mut self) -> io::Result<()> {
        self.host.flush()
    }

    /// Says bye and sends it; messages still in flight are reported failed
    /// (their events are still to be polled).
    pub fn close(&mut self) -> io::Result<()> {
        self.entity().close()
    }

    /// Serves RPC `name` with `handler` (see [`EntityMut::serve`]).
    pub fn serve(&mut self, name: &str, handler: impl FnMut(&Request) -> Handled + Send + 'static) {
        self.entity().serve(name, handler);
    }

    /// Serves RPC `name` through request events from [`Bus::poll_event`].
    pub fn serve_events(&mut self, name: &str) {
        self.entity().serve_events(name);
    }

    /// Stops serving `name` (unicast calls then get `UNKNOWN`).
    pub fn unserve(&mut self, name: &str) {
        self.entity().unserve(name);
    }

    /// Calls `name` at the one entity `dst` designates, with the outcome
    /// handed to `done` (on the thread that drives the bus) instead of an
    /// event (see [`EntityMut::call_then`]).
    pub fn call_then(
        &mut self,
        dst: &Address,
        name: &str,
        args: Vec<Value>,
        timeout: Duration,
        done: impl FnOnce(Address, Outcome) + Send + 'static,
    ) -> Result<CallId, SendError> {
        self.entity().call_then(dst, name, args, timeout, done)
    }
}

impl Source for Bus {
    fn register(
        &mut self,
        registry: &Registry,
        token: Token,
        interests: Interest,
    ) -> io::Result<()> {
        self.host.register(registry, token, interests)
    }

    fn reregister(
        &mut self,
        registry: &Registry,
        token: Token,
        interests: Interest,
    ) -> io::Result<()> {
        self.host.reregister(registry, token, interests)
    }

    fn deregister(&mut self, registry: &Registry) -> io::Result<()> {
        self.host.deregister(registry)
    }
}

impl AsRawFd for Bus {
    /// A descriptor that is readable while either socket is: watch it in a
    /// foreign event loop, then call [`Bus::on_readable`].
    fn as_raw_fd(&self) -> RawFd {
        self.host.as_raw_fd()
    }
}
