//! What the real-socket benchmarks share: a private host-local bus, a bus
//! driven on its own thread, and the raw UDP baselines.
#![allow(dead_code)]

use std::net::{Ipv4Addr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use mio::{Events, Interest, Poll, Token};
use rmbus::auth::{CipherAlgo, HashAlgo};
use rmbus::config::Config;
use rmbus::proto::Event;
use rmbus::runtime::Bus;
use rmbus::wire::Address;

/// A host-local bus configuration on a free port.
pub fn config() -> Config {
    let mut c = Config::generate(HashAlgo::HmacMd5_96, CipherAlgo::None);
    c.port = Some(
        UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port(),
    );
    c
}

/// Runs a bus as `address` on its own thread until `stop`: `setup` prepares
/// it, `on_event` sees every event it does not handle itself.
pub fn bus_thread(
    config: Config,
    address: &str,
    ready: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    setup: impl FnOnce(&mut Bus) + Send + 'static,
    mut on_event: impl FnMut(Event) + Send + 'static,
) -> thread::JoinHandle<()> {
    let address = Address::parse(address).unwrap();
    thread::spawn(move || {
        let mut bus = Bus::bind(&config, &address).unwrap();
        setup(&mut bus);
        let mut poll = Poll::new().unwrap();
        poll.registry()
            .register(&mut bus, Token(0), Interest::READABLE)
            .unwrap();
        let mut events = Events::with_capacity(64);
        ready.store(true, Ordering::SeqCst);
        while !stop.load(Ordering::Relaxed) {
            let wait = poll_wait(&bus, Duration::from_millis(20));
            poll.poll(&mut events, Some(wait)).unwrap();
            bus.on_readable().unwrap();
            bus.on_timeout().unwrap();
            while let Some(e) = bus.poll_event() {
                on_event(e);
            }
        }
        bus.close().unwrap();
    })
}

/// How long a bench loop sleeps in `poll`: until the bus's next deadline, at
/// most `cap`; not at all with `RMBUS_BUSY_POLL=1` (both sides then spin, so
/// that the machine's wake-up latency drops out of the comparison).
fn poll_wait(bus: &Bus, cap: Duration) -> Duration {
    if std::env::var_os("RMBUS_BUSY_POLL").is_some() {
        return Duration::ZERO;
    }
    bus.timeout().map_or(cap, |t| t.min(cap))
}

/// Waits until `flag` is set.
pub fn wait_for(flag: &AtomicBool) {
    while !flag.load(Ordering::SeqCst) {
        thread::sleep(Duration::from_millis(5));
    }
}

/// Lets `bus` run until `done` says so (or 10 s pass).
pub fn drive(bus: &mut Bus, poll: &mut Poll, mut done: impl FnMut(&mut Bus, Event) -> bool) {
    let mut events = Events::with_capacity(64);
    let until = Instant::now() + Duration::from_secs(10);
    while Instant::now() < until {
        let wait = poll_wait(bus, Duration::from_millis(5));
        poll.poll(&mut events, Some(wait)).unwrap();
        bus.on_readable().unwrap();
        bus.on_timeout().unwrap();
        while let Some(e) = bus.poll_event() {
            if done(bus, e) {
                while bus.poll_event().is_some() {}
                return;
            }
        }
    }
    panic!("benchmark stalled");
}

/// A bus in this thread's own mio poll, that has heard from `peer`; returns
/// the bus, its poll and the peer's full address.
pub fn joined(config: &Config, address: &str, peer: &str) -> (Bus, Poll, Address) {
    let mut bus = Bus::bind(config, &Address::parse(address).unwrap()).unwrap();
    let mut poll = Poll::new().unwrap();
    poll.registry()
        .register(&mut bus, Token(0), Interest::READABLE)
        .unwrap();
    bus.with_endpoint(|ep, now| ep.ping(now, &Address::empty()))
        .unwrap();
    let peer = Address::parse(peer).unwrap();
    drive(
        &mut bus,
        &mut poll,
        |_, e| matches!(e, Event::PeerJoined(ref x) if peer.is_subset_of(x)),
    );
    let full = bus.endpoint().unique_match(&peer).unwrap();
    (bus, poll, full)
}

/// A socket that sends to the group like a host-local entity: loopback, TTL 0.
pub fn loopback_sender() -> UdpSocket {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.set_multicast_ttl_v4(0).unwrap();
    socket2::SockRef::from(&socket)
        .set_multicast_if_v4(&Ipv4Addr::LOCALHOST)
        .unwrap();
    socket
}

/// The `p` quantile of sorted durations.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// Round trips of a raw UDP ping-pong on the loopback, sorted.
pub fn raw_ping_pong(rounds: usize) -> Vec<Duration> {
    let server = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = server.local_addr().unwrap();
    let echo = thread::spawn(move || {
        let mut buf = [0u8; 2048];
        for _ in 0..rounds {
            let (n, from) = server.recv_from(&mut buf).unwrap();
            server.send_to(&buf[..n], from).unwrap();
        }
    });
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    let payload = [b'x'; 180];
    let mut buf = [0u8; 2048];
    let mut times = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let t = Instant::now();
        client.send_to(&payload, addr).unwrap();
        client.recv_from(&mut buf).unwrap();
        times.push(t.elapsed());
    }
    echo.join().unwrap();
    times.sort();
    times
}

/// Microseconds, for printing.
pub fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}
