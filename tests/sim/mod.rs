//! A deterministic network for sans-I/O machines: a virtual clock, and a
//! seeded link model with loss, duplication, delay (hence reordering), a
//! datagram size limit and partitions. Multicast reaches every node, the
//! sender included (multicast loop is on); unicast reaches the node that owns
//! the address.
//!
//! It drives anything with the `handle_*` / `poll_*` shape
//! ([`rmbus::proto::SansIo`]): Mbus endpoints now, the machines built on them
//! later. Its randomness is the core's own generator, [`rmbus::proto::Rng`].
//!
//! Every call into a node runs in a tracing span `node{n=…, t_ms=…}` (the
//! virtual time). The logs of the current test go to a buffer of its own
//! thread (`RMBUS_SIM_LOG` sets the filter, default `rmbus=debug,sim=debug`); when a test
//! fails while a network exists, the buffer is printed into the test's
//! output.
//!
//! The harness checks one invariant on every step: after `handle_timeout(now)`
//! a node never asks to be woken at or before `now` (no busy loop).
#![allow(dead_code)]

use std::cell::RefCell;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::Once;
use std::time::{Duration, Instant, SystemTime};

use rmbus::auth::Keys;
use rmbus::proto::{
    Delivery, Endpoint, EndpointConfig, Event, Limits, MsgId, ReplayPolicy, Rng, SansIo, SendError,
    Timers,
};
use rmbus::rpc::{Answer, Request, RpcEvent};
use rmbus::wire::{Address, Command, Framing, MAX_DATAGRAM};

pub const KEY: &[u8] = b"123156189112";

pub fn keys() -> Keys {
    Keys::md5_noencr(KEY).unwrap()
}

pub fn group() -> SocketAddr {
    "239.255.255.247:47000".parse().unwrap()
}

pub fn endpoint_config(seed: u64) -> EndpointConfig {
    EndpointConfig {
        keys: keys(),
        framing: Framing::Lf,
        group: group(),
        send_unicast: false,
        seed,
        first_seq: 0,
        timers: Timers::default(),
        limits: Limits::default(),
        replay: ReplayPolicy::default(),
    }
}

// ---- logs ------------------------------------------------------------------------

/// The most a test keeps of its logs (the oldest half is dropped beyond it).
const LOG_LIMIT: usize = 4 << 20;

thread_local! {
    static LOGS: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Writes into the current thread's log buffer.
struct ThreadBuffer;

impl Write for ThreadBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        LOGS.with(|logs| {
            let mut logs = logs.borrow_mut();
            if logs.len() + buf.len() > LOG_LIMIT {
                let half = logs.len() / 2;
                logs.drain(..half);
            }
            logs.extend_from_slice(buf);
        });
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Installs the log subscriber (once per test process) and empties this
/// thread's buffer.
pub fn start_logs() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let filter =
            std::env::var("RMBUS_SIM_LOG").unwrap_or_else(|_| "rmbus=debug,sim=debug".into());
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_writer(|| ThreadBuffer)
            .with_ansi(false)
            .without_time()
            .with_target(false)
            .try_init();
    });
    LOGS.with(|logs| logs.borrow_mut().clear());
}

/// This thread's logs so far.
pub fn logs() -> String {
    LOGS.with(|logs| String::from_utf8_lossy(&logs.borrow()).into_owned())
}

/// Prints this thread's logs into the test's output.
pub fn print_logs() {
    LOGS.with(|logs| {
        let logs = logs.borrow();
        if !logs.is_empty() {
            eprintln!(
                "---- simulation log (RMBUS_SIM_LOG to filter) ----\n{}",
                String::from_utf8_lossy(&logs)
            );
        }
    });
}

// ---- seeds -----------------------------------------------------------------------

/// The seeds to sweep: `RMBUS_SIM_SEEDS` (default `default`).
pub fn seeds(default: u64) -> std::ops::Range<u64> {
    let n = std::env::var("RMBUS_SIM_SEEDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default);
    0..n
}

/// Runs `f` for each seed; a failure names the seed so it can be replayed,
/// after that seed's logs.
pub fn for_seeds(default: u64, f: impl Fn(u64) + std::panic::RefUnwindSafe) {
    for seed in seeds(default) {
        if let Err(e) = std::panic::catch_unwind(|| f(seed)) {
            let msg = e
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            panic!("seed {seed} failed (replay with that seed): {msg}");
        }
    }
}

// ---- the network -----------------------------------------------------------------

/// The link: what happens to each datagram on its way to each receiver.
#[derive(Debug, Clone, Copy)]
pub struct Link {
    pub loss: f64,
    pub duplicate: f64,
    pub delay: (Duration, Duration),
    /// Datagrams larger than this are lost on every link.
    pub max_datagram: usize,
}

impl Link {
    pub fn perfect() -> Link {
        Link {
            loss: 0.0,
            duplicate: 0.0,
            delay: (Duration::from_micros(100), Duration::from_micros(100)),
            max_datagram: MAX_DATAGRAM,
        }
    }

    pub fn lossy(loss: f64) -> Link {
        Link {
            loss,
            duplicate: 0.05,
            delay: (Duration::from_micros(100), Duration::from_millis(30)),
            max_datagram: MAX_DATAGRAM,
        }
    }
}

/// What a node does with each of its events before it is recorded (an RPC
/// server answering, say).
pub type Hook<M> = Box<dyn FnMut(&mut M, Instant, &<M as SansIo>::Event)>;

pub struct Node<M: SansIo> {
    pub ep: M,
    pub addr: SocketAddr,
    pub events: Vec<(Instant, M::Event)>,
    /// Every datagram this node sent: when, and to where.
    pub sent: Vec<(Instant, SocketAddr, Vec<u8>)>,
    pub on_event: Option<Hook<M>>,
}

struct InTransit {
    at: Instant,
    order: u64,
    to: usize,
    from: SocketAddr,
    bytes: Vec<u8>,
}

impl PartialEq for InTransit {
    fn eq(&self, o: &Self) -> bool {
        (self.at, self.order) == (o.at, o.order)
    }
}
impl Eq for InTransit {}
impl PartialOrd for InTransit {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for InTransit {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (self.at, self.order).cmp(&(o.at, o.order))
    }
}

pub struct Net<M: SansIo = Endpoint> {
    pub base: Instant,
    pub now: Instant,
    pub nodes: Vec<Node<M>>,
    pub link: Link,
    /// `Some(side)`: node i only reaches nodes with the same `side[i]`.
    pub partition: Option<Vec<u8>>,
    /// Datagrams lost for being larger than the link allows.
    pub oversized: u64,
    queue: BinaryHeap<Reverse<InTransit>>,
    order: u64,
    rng: Rng,
    seed: u64,
}

impl<M: SansIo> Drop for Net<M> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "the simulation of seed {} failed at t = {} ms",
                self.seed,
                self.elapsed_ms(self.now)
            );
            print_logs();
        }
    }
}

impl<M: SansIo> Net<M> {
    pub fn new(seed: u64, link: Link) -> Net<M> {
        start_logs();
        // The tables made from now on on this thread walk in a fixed order:
        // the run replays from its seed.
        rmbus::proto::seed_hash_tables(seed);
        let base = Instant::now();
        Net {
            base,
            now: base,
            nodes: Vec::new(),
            link,
            partition: None,
            oversized: 0,
            queue: BinaryHeap::new(),
            order: 0,
            rng: Rng::new(seed ^ 0x5DEE_CE66_D1CE_5EED),
            seed,
        }
    }

    pub fn ms(&self, ms: u64) -> Instant {
        self.base + Duration::from_millis(ms)
    }

    pub fn elapsed_ms(&self, at: Instant) -> u64 {
        at.duration_since(self.base).as_millis() as u64
    }

    /// Adds a node on IP endpoint 127.0.0.1:(50000 + its index).
    pub fn push(&mut self, m: M) -> usize {
        let i = self.nodes.len();
        self.nodes.push(Node {
            ep: m,
            addr: SocketAddr::from(([127, 0, 0, 1], 50_000 + i as u16)),
            events: Vec::new(),
            sent: Vec::new(),
            on_event: None,
        });
        i
    }

    /// The tracing span of node `i` now.
    fn span(&self, i: usize) -> tracing::Span {
        tracing::span!(target: "sim", tracing::Level::DEBUG, "node", n = i, t_ms = self.elapsed_ms(self.now))
    }

    /// Runs node `i`'s closure on its machine now, then lets its output flow.
    pub fn with<R>(&mut self, i: usize, f: impl FnOnce(&mut M, Instant) -> R) -> R {
        let now = self.now;
        let _span = self.span(i).entered();
        let r = f(&mut self.nodes[i].ep, now);
        self.drain(i);
        r
    }

    /// Delivers a datagram to node `to` from `from`, now.
    pub fn inject(&mut self, to: usize, from: SocketAddr, bytes: &[u8]) {
        let now = self.now;
        let _span = self.span(to).entered();
        self.nodes[to].ep.handle_datagram(now, from, bytes);
        self.drain(to);
    }

    fn reaches(&self, from: usize, to: usize) -> bool {
        self.partition
            .as_ref()
            .is_none_or(|side| side[from] == side[to])
    }

    /// Lets node `i`'s output flow (in the caller's span): events first (so
    /// replies can carry acks), then datagrams.
    fn drain(&mut self, i: usize) {
        let now = self.now;
        while let Some(e) = self.nodes[i].ep.poll_event() {
            let node = &mut self.nodes[i];
            if let Some(hook) = node.on_event.as_mut() {
                hook(&mut node.ep, now, &e);
            }
            node.events.push((now, e));
        }
        while let Some(t) = self.nodes[i].ep.poll_transmit(now) {
            self.nodes[i]
                .sent
                .push((now, t.destination, t.contents.clone()));
            if t.contents.len() > self.link.max_datagram {
                self.oversized += 1;
                continue;
            }
            let from = self.nodes[i].addr;
            let receivers: Vec<usize> = if t.destination == group() {
                (0..self.nodes.len()).collect()
            } else {
                (0..self.nodes.len())
                    .filter(|&j| self.nodes[j].addr == t.destination)
                    .collect()
            };
            for to in receivers {
                if !self.reaches(i, to) {
                    continue;
                }
                if to != i && self.rng.unit() < self.link.loss {
                    continue;
                }
                let copies = if self.rng.unit() < self.link.duplicate {
                    2
                } else {
                    1
                };
                for _ in 0..copies {
                    let (lo, hi) = self.link.delay;
                    let delay = lo + (hi - lo).mul_f64(self.rng.unit());
                    self.order += 1;
                    self.queue.push(Reverse(InTransit {
                        at: now + delay,
                        order: self.order,
                        to,
                        from,
                        bytes: t.contents.clone(),
                    }));
                }
            }
        }
    }

    /// When something happens next: a datagram arrives or a timer is due.
    fn next_instant(&self) -> Option<Instant> {
        let next_datagram = self.queue.peek().map(|Reverse(d)| d.at);
        let next_timer = self.nodes.iter().filter_map(|n| n.ep.poll_timeout()).min();
        match (next_datagram, next_timer) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Moves the clock to `at` and runs what happens then: datagrams in
    /// order of arrival, then timers.
    fn step(&mut self, at: Instant) {
        self.now = self.now.max(at);
        let now = self.now;
        while self.queue.peek().is_some_and(|Reverse(d)| d.at <= now) {
            let Some(Reverse(d)) = self.queue.pop() else {
                break;
            };
            let _span = self.span(d.to).entered();
            self.nodes[d.to].ep.handle_datagram(now, d.from, &d.bytes);
            self.drain(d.to);
        }
        for i in 0..self.nodes.len() {
            if self.nodes[i].ep.poll_timeout().is_some_and(|t| t <= now) {
                let _span = self.span(i).entered();
                self.nodes[i].ep.handle_timeout(now);
                self.drain(i);
                if let Some(t) = self.nodes[i].ep.poll_timeout() {
                    assert!(
                        t > now,
                        "node {i} asks to be woken at {:?}, not after now {:?}",
                        t,
                        now
                    );
                }
            }
        }
    }

    /// Advances the clock to `until`, delivering datagrams and firing timers in order.
    pub fn run_until(&mut self, until: Instant) {
        while let Some(next) = self.next_instant().filter(|t| *t <= until) {
            self.step(next);
        }
        self.now = self.now.max(until);
    }

    pub fn run_for(&mut self, d: Duration) {
        let until = self.now + d;
        self.run_until(until);
    }

    /// Runs until `done` holds (checked after every step) or `limit` has
    /// passed; returns whether it holds.
    pub fn run_until_true(&mut self, limit: Duration, done: impl Fn(&Net<M>) -> bool) -> bool {
        let until = self.now + limit;
        while !done(self) {
            match self.next_instant().filter(|t| *t <= until) {
                Some(next) => self.step(next),
                None => {
                    self.now = self.now.max(until);
                    return done(self);
                }
            }
        }
        true
    }

    /// Node `i`'s events matching `f`.
    pub fn events<T>(&self, i: usize, f: impl Fn(&M::Event) -> Option<T>) -> Vec<T> {
        self.nodes[i]
            .events
            .iter()
            .filter_map(|(_, e)| f(e))
            .collect()
    }
}

/// Helpers for networks of Mbus endpoints.
impl Net<Endpoint> {
    /// Adds an entity `(app:sim node:<i> … id:<i>-1@127.0.0.1)` with `extra` elements.
    pub fn add(&mut self, extra: &str) -> usize {
        let config = endpoint_config(
            self.seed
                .wrapping_mul(1000)
                .wrapping_add(self.nodes.len() as u64),
        );
        self.add_with(extra, config)
    }

    pub fn add_with(&mut self, extra: &str, config: EndpointConfig) -> usize {
        let i = self.nodes.len();
        let text = format!("(app:sim node:n{i} {extra} id:{}-1@127.0.0.1)", 1000 + i);
        let local = Address::parse(&text.replace("  ", " ")).unwrap();
        let ep = Endpoint::new(
            config,
            local,
            self.now,
            SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000),
        )
        .unwrap();
        self.push(ep)
    }

    pub fn address(&self, i: usize) -> Address {
        self.nodes[i].ep.local_address().clone()
    }

    /// Sends from node `i` now, then lets its output flow.
    pub fn send(
        &mut self,
        i: usize,
        dst: &Address,
        commands: Vec<Command>,
        delivery: Delivery,
    ) -> Result<MsgId, SendError> {
        self.with(i, |ep, now| ep.send(now, dst, commands, delivery))
    }

    /// Node `i` answers each RPC request as `server` says (`None`: leave it
    /// open).
    pub fn serve(
        &mut self,
        i: usize,
        mut server: impl FnMut(&Request) -> Option<Answer> + 'static,
    ) {
        self.nodes[i].on_event = Some(Box::new(move |ep, now, e| {
            if let Event::Rpc(RpcEvent::Request(req)) = e {
                if let Some(answer) = server(req) {
                    ep.rpc().reply(now, req.id, answer).unwrap();
                }
            }
        }));
    }

    /// True once every node knows every other node.
    pub fn converged(&self) -> bool {
        let n = self.nodes.len();
        self.nodes.iter().all(|node| node.ep.entities() == n)
    }

    /// Runs until every node knows every other (at most `limit`); returns
    /// whether they do.
    pub fn run_until_converged(&mut self, limit: Duration) -> bool {
        self.run_until_true(limit, Net::converged)
    }

    /// How many `mbus.hello` messages node `i` sent, with their times.
    pub fn hellos(&self, i: usize) -> Vec<Instant> {
        self.nodes[i]
            .sent
            .iter()
            .filter(|(_, _, bytes)| {
                rmbus::auth::open(bytes, &keys())
                    .is_ok_and(|m| m.commands.iter().any(|c| c.name == "mbus.hello"))
            })
            .map(|(t, _, _)| *t)
            .collect()
    }
}
