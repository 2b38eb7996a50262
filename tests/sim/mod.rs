//! A deterministic network for protocol endpoints: a virtual clock, and a
//! seeded link model with loss, duplication, delay (hence reordering) and
//! partitions. Multicast reaches every node, the sender included (multicast
//! loop is on); unicast reaches the node that owns the address.
//!
//! The harness checks one invariant on every step: after `handle_timeout(now)`
//! an endpoint never asks to be woken at or before `now` (no busy loop).
#![allow(dead_code)]

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};

use rmbus::auth::Keys;
use rmbus::proto::{Delivery, Endpoint, EndpointConfig, Event, Limits, MsgId, SendError, Timers};
use rmbus::wire::{Address, Command, Framing};

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
    }
}

/// The seeds to sweep: `RMBUS_SIM_SEEDS` (default `default`).
pub fn seeds(default: u64) -> std::ops::Range<u64> {
    let n = std::env::var("RMBUS_SIM_SEEDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default);
    0..n
}

/// Runs `f` for each seed; a failure names the seed so it can be replayed.
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

/// The link: what happens to each datagram on its way to each receiver.
#[derive(Debug, Clone, Copy)]
pub struct Link {
    pub loss: f64,
    pub duplicate: f64,
    pub delay: (Duration, Duration),
}

impl Link {
    pub fn perfect() -> Link {
        Link {
            loss: 0.0,
            duplicate: 0.0,
            delay: (Duration::from_micros(100), Duration::from_micros(100)),
        }
    }

    pub fn lossy(loss: f64) -> Link {
        Link {
            loss,
            duplicate: 0.05,
            delay: (Duration::from_micros(100), Duration::from_millis(30)),
        }
    }
}

pub struct Node {
    pub ep: Endpoint,
    pub addr: SocketAddr,
    pub events: Vec<(Instant, Event)>,
    /// Every datagram this node sent: when, and to where.
    pub sent: Vec<(Instant, SocketAddr, Vec<u8>)>,
    /// Answers RPC requests as they come (`None`: leave it open).
    pub server: Option<Server>,
}

/// A node's RPC handler in the simulation.
pub type Server = Box<dyn FnMut(&rmbus::rpc::Request) -> Option<rmbus::rpc::Answer>>;

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

pub struct Net {
    pub base: Instant,
    pub now: Instant,
    pub nodes: Vec<Node>,
    pub link: Link,
    /// `Some(side)`: node i only reaches nodes with the same `side[i]`.
    pub partition: Option<Vec<u8>>,
    queue: BinaryHeap<Reverse<InTransit>>,
    order: u64,
    rng: u64,
    seed: u64,
}

impl Net {
    pub fn new(seed: u64, link: Link) -> Net {
        let base = Instant::now();
        Net {
            base,
            now: base,
            nodes: Vec::new(),
            link,
            partition: None,
            queue: BinaryHeap::new(),
            order: 0,
            rng: seed ^ 0x5DEE_CE66_D1CE_5EED,
            seed,
        }
    }

    fn unit(&mut self) -> f64 {
        self.rng = self.rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    }

    pub fn ms(&self, ms: u64) -> Instant {
        self.base + Duration::from_millis(ms)
    }

    pub fn elapsed_ms(&self, at: Instant) -> u64 {
        at.duration_since(self.base).as_millis() as u64
    }

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
        self.nodes.push(Node {
            ep,
            addr: SocketAddr::from(([127, 0, 0, 1], 50_000 + i as u16)),
            events: Vec::new(),
            sent: Vec::new(),
            server: None,
        });
        i
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
        let now = self.now;
        let r = self.nodes[i].ep.send(now, dst, commands, delivery);
        self.drain(i);
        r
    }

    /// Runs node `i`'s closure on its endpoint now, then lets its output flow.
    pub fn with<R>(&mut self, i: usize, f: impl FnOnce(&mut Endpoint, Instant) -> R) -> R {
        let now = self.now;
        let r = f(&mut self.nodes[i].ep, now);
        self.drain(i);
        r
    }

    /// Delivers a datagram to node `to` from `from`, now.
    pub fn inject(&mut self, to: usize, from: SocketAddr, bytes: &[u8]) {
        let now = self.now;
        self.nodes[to].ep.handle_datagram(now, from, bytes);
        self.drain(to);
    }

    fn reaches(&self, from: usize, to: usize) -> bool {
        self.partition
            .as_ref()
            .is_none_or(|side| side[from] == side[to])
    }

    /// Events first (so replies can carry acks), then datagrams.
    pub fn drain(&mut self, i: usize) {
        let now = self.now;
        while let Some(e) = self.nodes[i].ep.poll_event() {
            if let (Event::Request(req), Some(server)) = (&e, self.nodes[i].server.as_mut()) {
                if let Some(answer) = server(req) {
                    self.nodes[i].ep.reply(now, req.id, answer).unwrap();
                }
            }
            self.nodes[i].events.push((now, e));
        }
        while let Some(t) = self.nodes[i].ep.poll_transmit(now) {
            self.nodes[i]
                .sent
                .push((now, t.destination, t.contents.clone()));
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
                if to != i && self.unit() < self.link.loss {
                    continue;
                }
                let copies = if self.unit() < self.link.duplicate {
                    2
                } else {
                    1
                };
                for _ in 0..copies {
                    let (lo, hi) = self.link.delay;
                    let delay = lo + (hi - lo).mul_f64(self.unit());
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

    /// Advances the clock to `until`, delivering datagrams and firing timers in order.
    pub fn run_until(&mut self, until: Instant) {
        loop {
            let next_datagram = self.queue.peek().map(|Reverse(d)| d.at);
            let next_timer = self.nodes.iter().filter_map(|n| n.ep.poll_timeout()).min();
            let next = match (next_datagram, next_timer) {
                (Some(a), Some(b)) => a.min(b),
                (a, b) => match a.or(b) {
                    Some(t) => t,
                    None => break,
                },
            };
            if next > until {
                break;
            }
            self.now = self.now.max(next);
            let now = self.now;
            while self.queue.peek().is_some_and(|Reverse(d)| d.at <= now) {
                let Some(Reverse(d)) = self.queue.pop() else {
                    break;
                };
                self.nodes[d.to].ep.handle_datagram(now, d.from, &d.bytes);
                self.drain(d.to);
            }
            for i in 0..self.nodes.len() {
                if self.nodes[i].ep.poll_timeout().is_some_and(|t| t <= now) {
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
        self.now = self.now.max(until);
    }

    pub fn run_for(&mut self, d: Duration) {
        let until = self.now + d;
        self.run_until(until);
    }

    /// True once every node knows every other node.
    pub fn converged(&self) -> bool {
        let n = self.nodes.len();
        self.nodes.iter().all(|node| node.ep.entities() == n)
    }

    /// Node `i`'s events matching `f`.
    pub fn events<T>(&self, i: usize, f: impl Fn(&Event) -> Option<T>) -> Vec<T> {
        self.nodes[i]
            .events
            .iter()
            .filter_map(|(_, e)| f(e))
            .collect()
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
