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
use rmbus::runtime::{Bus, Host};
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
    // `RMBUS_REPLAY_WINDOW=off` turns the replay guard off (to measure its cost).
    if std::env::var("RMBUS_REPLAY_WINDOW").is_ok_and(|v| v == "off") {
        c.replay_window = None;
    }
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
            wait(&mut poll, &mut events, &bus, Duration::from_millis(20));
            bus.on_readable().unwrap();
            bus.on_timeout().unwrap();
            while let Some(e) = bus.poll_event() {
                on_event(e);
            }
        }
        bus.close().unwrap();
    })
}

/// Set while a raw baseline runs: the bus threads then sleep in `poll` even
/// under `RMBUS_BUSY_POLL=1`, so that the baseline has the cores to itself as
/// the buses have them in their own rounds.
static BASELINE_RUNNING: AtomicBool = AtomicBool::new(false);

/// True under `RMBUS_BUSY_POLL=1`: both sides of every loop spin.
pub fn busy_poll() -> bool {
    std::env::var_os("RMBUS_BUSY_POLL").is_some()
}

/// Where a bench loop waits for the bus: in `poll` until the bus's next
/// deadline, at most `cap`; not at all with `RMBUS_BUSY_POLL=1` (both sides
/// then spin on their sockets' reads, as the raw baseline spins on its own,
/// so that the machine's wake-up latency drops out of the comparison).
fn wait(poll: &mut Poll, events: &mut Events, bus: &Bus, cap: Duration) {
    if busy_poll() && !BASELINE_RUNNING.load(Ordering::Relaxed) {
        return;
    }
    let timeout = bus.timeout().map_or(cap, |t| t.min(cap));
    poll.poll(events, Some(timeout)).unwrap();
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
        wait(poll, &mut events, bus, Duration::from_millis(5));
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

/// The median of `v` (the upper one of an even count).
pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// The `p` quantile of sorted durations.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// Round trips of a raw UDP ping-pong on the loopback, sorted, waiting as the
/// bus loops wait: in `epoll_wait` (through mio), or spinning on a
/// non-blocking socket under `RMBUS_BUSY_POLL=1`. The bus threads stand
/// still meanwhile (see [`BASELINE_RUNNING`]).
pub fn raw_ping_pong(rounds: usize) -> Vec<Duration> {
    BASELINE_RUNNING.store(true, Ordering::SeqCst);
    // Let a spinning bus thread notice and go to sleep.
    thread::sleep(Duration::from_millis(30));
    let server = RawPeer::bind();
    let addr = server.socket.local_addr().unwrap();
    let echo = thread::spawn(move || {
        let mut server = server;
        let mut buf = [0u8; 2048];
        for _ in 0..rounds {
            let (n, from) = server.recv(&mut buf);
            server.socket.send_to(&buf[..n], from).unwrap();
        }
    });
    let mut client = RawPeer::bind();
    let payload = [b'x'; 180];
    let mut buf = [0u8; 2048];
    let mut times = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let t = Instant::now();
        client.socket.send_to(&payload, addr).unwrap();
        client.recv(&mut buf);
        times.push(t.elapsed());
    }
    echo.join().unwrap();
    BASELINE_RUNNING.store(false, Ordering::SeqCst);
    times.sort();
    times
}

/// One end of the raw ping-pong: a non-blocking socket, with a mio poll to
/// wait in unless the bench busy-polls.
struct RawPeer {
    socket: mio::net::UdpSocket,
    poll: Option<(Poll, Events)>,
}

impl RawPeer {
    fn bind() -> RawPeer {
        let mut socket = mio::net::UdpSocket::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let poll = (!busy_poll()).then(|| {
            let poll = Poll::new().unwrap();
            poll.registry()
                .register(&mut socket, Token(0), Interest::READABLE)
                .unwrap();
            (poll, Events::with_capacity(8))
        });
        RawPeer { socket, poll }
    }

    /// The next datagram: read at once if one is there, else after waiting.
    fn recv(&mut self, buf: &mut [u8]) -> (usize, std::net::SocketAddr) {
        loop {
            match self.socket.recv_from(buf) {
                Ok(got) => return got,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    if let Some((poll, events)) = &mut self.poll {
                        poll.poll(events, Some(Duration::from_secs(10))).unwrap();
                    }
                }
                Err(e) => panic!("raw ping-pong: {e}"),
            }
        }
    }
}

/// Microseconds, for printing.
pub fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// One turn of a host's loop: waits for its sockets at most until `next`
/// (and never more than 5 ms), then reads them and runs its timers.
pub fn poll_host(host: &mut Host, poll: &mut Poll, events: &mut Events, next: Option<Instant>) {
    let wait = next.map_or(Duration::from_millis(5), |t| {
        t.saturating_duration_since(Instant::now())
            .min(Duration::from_millis(5))
    });
    poll.poll(events, Some(wait)).unwrap();
    host.on_readable().unwrap();
    host.on_timeout().unwrap();
}

/// Resident memory of process `pid`, in KiB.
pub fn rss_kib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// CPU time of process `pid` so far (user and system), in seconds.
pub fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // The fields after the command name (which may hold spaces).
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap();
    // USER_HZ is 100 on Linux.
    ticks / 100.0
}
