//! The bus on real sockets (host-local group), all in one run, as ratios to
//! baselines measured in the same run (these machines are shared and noisy):
//!
//! (a) raw `sendto` of datagrams like (b)'s, sealed beforehand (the baseline
//!     for b and c);
//! (b) unreliable commands from one entity to another;
//! (c) reliable commands with acks, 64 in flight;
//! (d) reliable round-trip latency p50/p99 against a raw UDP ping-pong that
//!     waits the same way (in epoll, or spinning), in alternating rounds;
//! (e) unreliable commands in bursts of 10 separate sends within one drain
//!     (batched into shared messages), commands/s against (a)'s datagrams/s.
//!
//! Plus the resident memory of an idle `rmbus join` process and of one that
//! tracks 1,000 peers.
//!
//! `RMBUS_BUSY_POLL=1` makes the bus loops spin instead of sleeping;
//! `RMBUS_UNICAST=1` turns on the unicast optimisation (SEND_UNICAST=yes), so
//! that messages to the one peer go by unicast as the raw ping-pong does;
//! `RMBUS_REPLAY_WINDOW=off` turns the replay guard off (to measure its cost).
//!
//! Run: `cargo bench --bench bus` (`RMBUS_BENCH_N` sets the message count,
//! default 100000).

mod support;

use support::*;

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::process::{Command as Process, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use rmbus::auth::seal;
use rmbus::config::Config;
use rmbus::proto::{Delivery, Event};
use rmbus::wire::{Address, Command, Framing, Header, Message, MessageType, Value};

fn command(i: u64) -> Command {
    Command::new(
        "bench.item",
        vec![
            Value::Integer(i as i64),
            Value::string("payload of a typical size"),
        ],
    )
}

/// Waits until `counter` stops growing; returns its value.
fn settle(counter: &AtomicU64) -> u64 {
    let mut last = u64::MAX;
    loop {
        thread::sleep(Duration::from_millis(100));
        let now = counter.load(Ordering::Relaxed);
        if now == last {
            return now;
        }
        last = now;
    }
}

/// The wall clock in milliseconds, for the TimeStamps of made-up datagrams.
fn wall_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Resident memory of an idle `rmbus join`, then after it learned 1,000 peers.
fn memory(config: &Config) -> (u64, u64) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bus.conf");
    std::fs::write(&path, config.to_file_text()).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    let mut child = Process::new(env!("CARGO_BIN_EXE_rmbus"))
        .args(["join", "--json", "--address", "(app:bench module:memory)"])
        .env("MBUS", &path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    lines.next();
    thread::sleep(Duration::from_millis(1500));
    let idle = rss_kib(child.id());
    let keys = config.keys().unwrap();
    let socket = loopback_sender();
    for i in 0..1000 {
        let hello = Message {
            header: Header {
                seq: 0,
                timestamp: wall_ms(),
                kind: MessageType::Unreliable,
                src: Address::parse(&format!("(app:bench module:peer n:{i} id:{i}-1@127.0.0.1)"))
                    .unwrap(),
                dst: Address::empty(),
                acks: vec![],
            },
            commands: vec![Command::new("mbus.hello", vec![])],
        };
        socket
            .send_to(
                &seal(&hello, &keys, Framing::Lf).unwrap(),
                config.group_addr(),
            )
            .unwrap();
    }
    let mut joined = 0;
    for line in lines.by_ref() {
        if line.unwrap_or_default().contains("\"joined\"") {
            joined += 1;
            if joined == 1000 {
                break;
            }
        }
    }
    let with_peers = rss_kib(child.id());
    let _ = child.kill();
    let _ = child.wait();
    (idle, with_peers)
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("bus benchmark: run with `cargo bench --bench bus`");
        return;
    }
    let n: u64 = std::env::var("RMBUS_BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let mut config = config();
    config.send_unicast = std::env::var_os("RMBUS_UNICAST").is_some();
    let (ready, stop, received) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicU64::new(0)),
    );
    let counter = received.clone();
    let b_thread = bus_thread(
        config.clone(),
        "(app:bench module:b)",
        ready.clone(),
        stop.clone(),
        |_| {},
        move |e| {
            if let Event::Command { .. } = e {
                counter.fetch_add(1, Ordering::Relaxed);
            }
        },
    );
    wait_for(&ready);
    let (mut a, mut poll, b_full) = joined(&config, "(app:bench module:a)", "(app:bench module:b)");

    // (a) raw sendto of datagrams like a's, sealed beforehand: each with a
    // SeqNum of its own (b's replay guard refuses a copy) and, each round,
    // a fresh TimeStamp (a host-local bus refuses one far from its clock).
    let raw_socket = loopback_sender();
    let keys = config.keys().unwrap();
    let rounds = 5;
    let per_round = (n / rounds).max(1);
    let (a_addr, mut raw_seq) = (a.local_address().clone(), u32::MAX / 2);
    let mut sealed_round = || -> Vec<Vec<u8>> {
        let timestamp = wall_ms();
        (0..per_round)
            .map(|_| {
                raw_seq += 1;
                let sample = Message {
                    header: Header {
                        seq: raw_seq,
                        timestamp,
                        kind: MessageType::Unreliable,
                        src: a_addr.clone(),
                        dst: b_full.clone(),
                        acks: vec![],
                    },
                    commands: vec![command(1)],
                };
                seal(&sample, &keys, Framing::Lf).unwrap()
            })
            .collect()
    };
    let group = config.group_addr();
    // (a) and (b) alternate over several rounds; each round's ratio is taken,
    // and the median reported, so that drift of the machine cancels out.
    let (mut raw_times, mut bus_times, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    let (mut burst_times, mut burst_ratios) = (Vec::new(), Vec::new());
    let (mut raw_got, mut unreliable_got, mut burst_got) = (0, 0, 0);
    let (mut reliable_times, mut reliable_ratios) = (Vec::new(), Vec::new());
    let (mut acked, mut failed) = (0u64, 0u64);
    let burst = 10;
    for _ in 0..rounds {
        let datagrams = sealed_round();
        received.store(0, Ordering::SeqCst);
        let t = Instant::now();
        for datagram in &datagrams {
            raw_socket.send_to(datagram, group).unwrap();
        }
        let raw = t.elapsed();
        raw_got += settle(&received);

        received.store(0, Ordering::SeqCst);
        let t = Instant::now();
        for i in 0..per_round {
            a.with_endpoint(|ep, now| {
                ep.send(now, &b_full, vec![command(i)], Delivery::Unreliable)
            })
            .unwrap();
        }
        let bus = t.elapsed();
        unreliable_got += settle(&received);
        // Take in what A's own socket collected meanwhile (its own echoes).
        a.on_readable().unwrap();
        while a.poll_event().is_some() {}
        ratios.push(raw.as_secs_f64() / bus.as_secs_f64());
        raw_times.push(raw);
        bus_times.push(bus);

        // (e) the same commands, 10 separate sends per drain.
        received.store(0, Ordering::SeqCst);
        let t = Instant::now();
        for first in (0..per_round).step_by(burst) {
            a.with_endpoint(|ep, now| {
                for i in first..(first + burst as u64).min(per_round) {
                    ep.send(now, &b_full, vec![command(i)], Delivery::Unreliable)
                        .unwrap();
                }
            });
        }
        let bursts = t.elapsed();
        burst_got += settle(&received);
        a.on_readable().unwrap();
        while a.poll_event().is_some() {}
        burst_ratios.push(raw.as_secs_f64() / bursts.as_secs_f64());
        burst_times.push(bursts);

        // (c) reliable commands with acks, 64 in flight.
        let window = 64;
        let t = Instant::now();
        let (mut sent, mut round_acked) = (0u64, 0u64);
        while sent < window.min(per_round) {
            a.with_endpoint(|ep, now| {
                ep.send(now, &b_full, vec![command(sent)], Delivery::Reliable)
            })
            .unwrap();
            sent += 1;
        }
        drive(&mut a, &mut poll, |bus, e| {
            match e {
                Event::Delivered { .. } => round_acked += 1,
                Event::DeliveryFailed { .. } => failed += 1,
                _ => return false,
            }
            if sent < per_round {
                bus.with_endpoint(|ep, now| {
                    ep.send(now, &b_full, vec![command(sent)], Delivery::Reliable)
                })
                .unwrap();
                sent += 1;
            }
            round_acked + failed >= per_round
        });
        let reliable = t.elapsed();
        acked += round_acked;
        settle(&received);
        reliable_ratios.push(raw.as_secs_f64() / reliable.as_secs_f64());
        reliable_times.push(reliable);
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let raw_elapsed = Duration::from_secs_f64(median(
        raw_times.iter().map(Duration::as_secs_f64).collect(),
    ));
    let unreliable_elapsed = Duration::from_secs_f64(median(
        bus_times.iter().map(Duration::as_secs_f64).collect(),
    ));
    let unreliable_ratio = median(ratios);
    let burst_elapsed = Duration::from_secs_f64(median(
        burst_times.iter().map(Duration::as_secs_f64).collect(),
    ));
    let burst_ratio = median(burst_ratios);
    let reliable_elapsed = Duration::from_secs_f64(median(
        reliable_times.iter().map(Duration::as_secs_f64).collect(),
    ));
    let reliable_ratio = median(reliable_ratios);
    let sent_ab = per_round * rounds;

    // (d) reliable round trips, one at a time, in rounds that alternate with
    // a raw UDP ping-pong waiting the same way; the median of the per-round
    // p50 ratios is reported.
    let trips: usize = std::env::var("RMBUS_BENCH_TRIPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(400);
    let (mut rtts, mut raw_rtts, mut trip_ratios) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds {
        let raw = raw_ping_pong(trips);
        let mut round = Vec::with_capacity(trips);
        for i in 0..trips {
            let t = Instant::now();
            a.with_endpoint(|ep, now| {
                ep.send(now, &b_full, vec![command(i as u64)], Delivery::Reliable)
            })
            .unwrap();
            drive(&mut a, &mut poll, |_, e| {
                matches!(e, Event::Delivered { .. } | Event::DeliveryFailed { .. })
            });
            round.push(t.elapsed());
        }
        round.sort();
        trip_ratios.push(us(percentile(&round, 0.5)) / us(percentile(&raw, 0.5)));
        rtts.extend(round);
        raw_rtts.extend(raw);
    }
    rtts.sort();
    raw_rtts.sort();
    trip_ratios.sort_by(f64::total_cmp);

    stop.store(true, Ordering::SeqCst);
    b_thread.join().unwrap();
    let (idle, with_peers) = memory(&config);

    let rate = |count: u64, d: Duration| count as f64 / d.as_secs_f64();
    let raw_rate = rate(per_round, raw_elapsed);
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    println!("\nrmbus bus benchmark: host-local group, {n} messages, one run; ratios to baselines of this run\n");
    println!("{:<52} {:>12} {:>10}  note", "", "msg/s", "x (a)");
    println!(
        "{:<52} {:>12.0} {:>10.2}  receiver got {:.1} %",
        "(a) raw sendto of the same datagrams",
        raw_rate,
        1.0,
        100.0 * raw_got as f64 / sent_ab as f64
    );
    println!(
        "{:<52} {:>12.0} {:>10.2}  receiver got {:.1} % (median of {rounds} interleaved rounds)",
        "(b) unreliable commands, one entity to another",
        rate(per_round, unreliable_elapsed),
        unreliable_ratio,
        100.0 * unreliable_got as f64 / sent_ab as f64
    );
    println!(
        "{:<52} {:>12.0} {:>10.2}  receiver got {:.1} % (commands/s; median of {rounds} rounds)",
        "(e) unreliable, bursts of 10 sends per drain",
        rate(per_round, burst_elapsed),
        burst_ratio,
        100.0 * burst_got as f64 / sent_ab as f64
    );
    println!(
        "{:<52} {:>12.0} {:>10.2}  {acked} acknowledged, {failed} failed (median of {rounds} interleaved rounds)",
        "(c) reliable commands with acks, 64 in flight",
        rate(per_round, reliable_elapsed),
        reliable_ratio
    );
    println!(
        "(d) reliable round trip: p50 {:.1} us, p99 {:.1} us; raw UDP ping-pong p50 {:.1} us, p99 {:.1} us; p50 ratio {:.2} (median of {rounds} interleaved rounds, {:.2} to {:.2}; {})",
        us(percentile(&rtts, 0.5)),
        us(percentile(&rtts, 0.99)),
        us(percentile(&raw_rtts, 0.5)),
        us(percentile(&raw_rtts, 0.99)),
        trip_ratios[trip_ratios.len() / 2],
        trip_ratios[0],
        trip_ratios[trip_ratios.len() - 1],
        if busy_poll() { "both spinning" } else { "both waiting in epoll" }
    );
    println!("memory (rmbus join, resident): idle {idle} KiB; tracking 1000 peers {with_peers} KiB (+{} KiB)", with_peers.saturating_sub(idle));
    println!(
        "\nFor scale: the UCL C library reaches 100-119 k unreliable msg/s here and, one reliable"
    );
    println!("message at a time, 28-35 k reliable round trips/s while busy-polling.");
}
