//! [`Bus`]: an [`Endpoint`] on real sockets, for any event loop.

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::time::{Duration, Instant, SystemTime};

use mio::event::Source;
use mio::net::UdpSocket;
use mio::{Interest, Registry, Token};
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags};

use crate::config::Config;
use crate::proto::{Delivery, Endpoint, EndpointConfig, Event, MsgId, Peer, SendError, Stats};
use crate::wire::{Address, Command};

use super::socket;

mod guidelines;

pub use guidelines::{Handled, Handler};

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
#[derive(Debug)]
pub struct Bus {
    endpoint: Endpoint,
    group: UdpSocket,
    own: UdpSocket,
    group_addr: SocketAddr,
    /// Both sockets in a level-triggered epoll set, for [`AsRawFd`]: its
    /// descriptor is readable exactly while one of them is.
    watch: Epoll,
    buf: Vec<u8>,
    send_errors: u64,
    closures: guidelines::Closures,
}

impl Bus {
    /// Joins the bus that `config` describes as `address` (an `id` element
    /// `<pid>-<n>@<interface address>` is added if it has none).
    pub fn bind(config: &Config, address: &Address) -> io::Result<Bus> {
        let sockets = socket::open(config)?;
        let local = super::entity_address(address, sockets.interface_ip);
        let ep_config = EndpointConfig::from_config(config, rand::random())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let endpoint = Endpoint::new(ep_config, local, Instant::now(), SystemTime::now())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let watch = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC)?;
        for (n, s) in [&sockets.group, &sockets.own].into_iter().enumerate() {
            watch.add(s.as_fd(), EpollEvent::new(EpollFlags::EPOLLIN, n as u64))?;
        }
        let mut endpoint = endpoint;
        endpoint.set_own_source(sockets.own.local_addr()?);
        let group = UdpSocket::from_std(sockets.group);
        let own = UdpSocket::from_std(sockets.own);
        Ok(Bus {
            endpoint,
            group,
            own,
            group_addr: sockets.group_addr,
            watch,
            buf: vec![0; 65_536],
            send_errors: 0,
            closures: guidelines::Closures::default(),
        })
    }

    /// The protocol core (peers, counters, …).
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// Our complete address.
    pub fn local_address(&self) -> &Address {
        self.endpoint.local_address()
    }

    /// The group and port we send to.
    pub fn group_addr(&self) -> SocketAddr {
        self.group_addr
    }

    /// The IP endpoint we send from.
    pub fn own_addr(&self) -> io::Result<SocketAddr> {
        self.own.local_addr()
    }

    /// The known entities.
    pub fn peers(&self) -> Vec<Peer> {
        self.endpoint.peers().cloned().collect()
    }

    /// The core's counters.
    pub fn stats(&self) -> Stats {
        self.endpoint.stats()
    }

    /// Datagrams the operating system refused to send.
    pub fn send_errors(&self) -> u64 {
        self.send_errors
    }

    /// Reads both sockets until they would block and hands every datagram to
    /// the core. Nothing is sent here; see [`Bus::poll_event`].
    pub fn on_readable(&mut self) -> io::Result<()> {
        for own in [false, true] {
            loop {
                let socket = if own { &self.own } else { &self.group };
                match socket.recv_from(&mut self.buf) {
                    Ok((n, from)) => {
                        self.endpoint
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

    /// Runs the core's timers if one is due, and sends what they produced.
    ///
    /// When no timer is due it sends nothing: acknowledgements owed for what
    /// [`Bus::on_readable`] took in wait for [`Bus::poll_event`], so that a
    /// reply made while handling the events carries them.
    pub fn on_timeout(&mut self) -> io::Result<()> {
        let now = Instant::now();
        if self.endpoint.poll_timeout().is_some_and(|t| t <= now) {
            self.endpoint.handle_timeout(now);
            return self.flush();
        }
        Ok(())
    }

    /// How long the event loop may sleep before [`Bus::on_timeout`] is due.
    pub fn timeout(&self) -> Option<Duration> {
        self.endpoint
            .poll_timeout()
            .map(|t| t.saturating_duration_since(Instant::now()))
    }

    /// The next deadline, as an instant.
    pub fn deadline(&self) -> Option<Instant> {
        self.endpoint.poll_timeout()
    }

    /// The next event; when there are none left, sends everything owed.
    ///
    /// Requests for operations served by a closure ([`Bus::serve`]) and the
    /// outcomes of [`Bus::call_then`] are handled here and not returned.
    pub fn poll_event(&mut self) -> Option<Event> {
        loop {
            let Some(event) = self.endpoint.poll_event() else {
                self.flush_logged();
                return None;
            };
            if let Some(event) = self.take_by_closures(event) {
                return Some(event);
            }
        }
    }

    /// Sends `commands` to `dst` (see [`Endpoint::send`]) and flushes.
    pub fn send(
        &mut self,
        dst: &Address,
        commands: Vec<Command>,
        delivery: Delivery,
    ) -> Result<MsgId, SendError> {
        let id = self
            .endpoint
            .send(Instant::now(), dst, commands, delivery)?;
        self.flush_logged();
        Ok(id)
    }

    /// Pings `dst`: the entities it designates answer with a hello.
    pub fn ping(&mut self, dst: &Address) -> Result<(), SendError> {
        self.endpoint.ping(Instant::now(), dst)?;
        self.flush_logged();
        Ok(())
    }

    /// Announces that we wait for `condition` (see [`Endpoint::start_waiting`]).
    pub fn start_waiting(&mut self, dst: &Address, condition: &str) -> Result<(), SendError> {
        self.endpoint
            .start_waiting(Instant::now(), dst, condition)?;
        self.flush_logged();
        Ok(())
    }

    /// Releases `waiter`'s `condition` (see [`Endpoint::go`]).
    pub fn go(&mut self, waiter: &Address, condition: &str) -> Result<MsgId, SendError> {
        let id = self.endpoint.go(Instant::now(), waiter, condition)?;
        self.flush_logged();
        Ok(id)
    }

    /// Says bye and sends it; messages still in flight are reported failed.
    pub fn close(&mut self) -> io::Result<()> {
        self.endpoint.close(Instant::now());
        self.flush()
    }

    /// Sends every datagram the core has ready.
    pub fn flush(&mut self) -> io::Result<()> {
        let now = Instant::now();
        while let Some(t) = self.endpoint.poll_transmit(now) {
            match self.own.send_to(&t.contents, t.destination) {
                Ok(_) => {}
                // A full buffer or an unreachable peer loses this datagram only;
                // reliable messages are retransmitted.
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::ConnectionRefused
                    ) =>
                {
                    self.send_errors += 1;
                }
                Err(e) => {
                    self.send_errors += 1;
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    fn flush_logged(&mut self) {
        if let Err(e) = self.flush() {
            tracing::warn!("sending failed: {e}");
        }
    }
}

impl Source for Bus {
    fn register(
        &mut self,
        registry: &Registry,
        token: Token,
        interests: Interest,
    ) -> io::Result<()> {
        self.group.register(registry, token, interests)?;
        self.own.register(registry, token, interests)
    }

    fn reregister(
        &mut self,
        registry: &Registry,
        token: Token,
        interests: Interest,
    ) -> io::Result<()> {
        self.group.reregister(registry, token, interests)?;
        self.own.reregister(registry, token, interests)
    }

    fn deregister(&mut self, registry: &Registry) -> io::Result<()> {
        self.group.deregister(registry)?;
        self.own.deregister(registry)
    }
}

impl AsRawFd for Bus {
    /// A descriptor that is readable while either socket is: watch it in a
    /// foreign event loop, then call [`Bus::on_readable`].
    fn as_raw_fd(&self) -> RawFd {
        self.watch.0.as_raw_fd()
    }
}
