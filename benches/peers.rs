//! The entity table at a broker's scale, on the sans-I/O core alone (no
//! sockets, a virtual clock):
//!
//! (a) a reliable send to one known peer, sealed and drained, with 10,000
//!     peers known, against the same send with 10 peers known (the
//!     baseline), in alternating rounds: the destination is found through
//!     the table's index of address elements, not by a scan;
//! (b) the resident memory a full table of 16,384 peers (the default
//!     `Limits::max_peers`) takes, per peer, measured on this process.
//!
//! Run: `cargo bench --bench peers`.

use std::hint::black_box;
use std::net::SocketAddr;
use std::time::{Instant, SystemTime};

use rmbus::auth::{seal, Keys};
use rmbus::proto::{Delivery, Endpoint, EndpointConfig, Limits, ReplayPolicy, Timers};
use rmbus::wire::{Address, Command, Framing, Header, Message, MessageType, Value};

const KEY: &[u8] = b"123156189112";

fn config(max_peers: usize) -> EndpointConfig {
    EndpointConfig {
        keys: Keys::md5_noencr(KEY).unwrap(),
        framing: Framing::Lf,
        group: "239.255.255.247:47000".parse().unwrap(),
        send_unicast: false,
        seed: 7,
        first_seq: 0,
        timers: Timers::default(),
        limits: Limits {
            max_peers,
            ..Limits::default()
        },
        replay: ReplayPolicy::default(),
    }
}

fn peer(i: usize) -> Address {
    Address::parse(&format!(
        "(app:cmbs module:member member:{i:08}-0000-4000-8000-000000000000 id:{i}-1@127.0.0.1)"
    ))
    .unwrap()
}

fn hello(i: usize, keys: &Keys, timestamp: u64) -> Vec<u8> {
    let m = Message {
        header: Header {
            seq: 0,
            timestamp,
            kind: MessageType::Unreliable,
            src: peer(i),
            dst: Address::empty(),
            acks: vec![],
        },
        commands: vec![Command::new("mbus.hello", vec![])],
    };
    seal(&m, keys, Framing::Lf).unwrap()
}

/// An endpoint that knows `n` peers.
fn endpoint_with(n: usize, max_peers: usize) -> (Endpoint, Instant) {
    let now = Instant::now();
    let wall = SystemTime::now();
    let ms = wall
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let mut ep = Endpoint::new(
        config(max_peers),
        Address::parse("(app:bench module:sender id:1-1@127.0.0.1)").unwrap(),
        now,
        wall,
    )
    .unwrap();
    let keys = Keys::md5_noencr(KEY).unwrap();
    let from: SocketAddr = "127.0.0.1:40000".parse().unwrap();
    for i in 0..n {
        ep.handle_datagram(now, from, &hello(i, &keys, ms));
        while ep.poll_event().is_some() {}
        while ep.poll_transmit(now).is_some() {}
    }
    assert_eq!(ep.peers().count(), n);
    (ep, now)
}

/// Nanoseconds per reliable send to peers spread over the table.
fn time_sends(ep: &mut Endpoint, now: Instant, n: usize, sends: usize) -> f64 {
    let targets: Vec<Address> = (0..sends).map(|k| peer((k * 7919) % n)).collect();
    let cmd = Command::new("bench.item", vec![Value::Integer(1)]);
    let started = Instant::now();
    for dst in &targets {
        black_box(
            ep.send(now, dst, vec![cmd.clone()], Delivery::Reliable)
                .unwrap(),
        );
        while let Some(t) = ep.poll_transmit(now) {
            let _ = black_box(t);
        }
    }
    started.elapsed().as_nanos() as f64 / sends as f64
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn main() {
    // `cargo test --benches` runs benches once as a smoke test: keep it short.
    let real = std::env::args().any(|a| a == "--bench");
    let (rounds, sends) = if real { (15, 2_000) } else { (1, 50) };
    // Memory first, while the allocator has nothing freed to hand back.
    let table = real.then(|| {
        let before = rss_kib();
        let (full, _) = endpoint_with(16_384, 16_384);
        let after = rss_kib();
        black_box(&full);
        (full.peers().count(), after.saturating_sub(before))
    });
    let (mut small, t_small) = endpoint_with(10, 16_384);
    let (mut large, t_large) = endpoint_with(10_000, 16_384);
    let mut ratios = Vec::new();
    let (mut base, mut ours) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        let b = time_sends(&mut small, t_small, 10, sends);
        let o = time_sends(&mut large, t_large, 10_000, sends);
        base.push(b);
        ours.push(o);
        ratios.push(o / b);
    }
    println!(
        "\nrmbus entity table at scale ({rounds} interleaved rounds of {sends} reliable sends)"
    );
    println!(
        "(a) send to 1 of 10,000 known peers {:>8.0} ns   to 1 of 10 {:>8.0} ns   ratio {:.2} (rounds {:.2}–{:.2}; target ≤ 2.00)",
        median(ours),
        median(base),
        median(ratios.clone()),
        ratios.iter().copied().fold(f64::INFINITY, f64::min),
        ratios.iter().copied().fold(0.0, f64::max),
    );
    if let Some((n, kib)) = table {
        println!(
            "(b) a full table of {n} peers: {kib} KiB resident, {:.0} bytes per peer",
            (kib * 1024) as f64 / n as f64
        );
    }
}
