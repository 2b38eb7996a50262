//! The Guidelines layer on real sockets (host-local group), in one run:
//! calls per second with 1, 16 and 256 calls outstanding (five rounds per row,
//! each against a raw `sendto` of as many request-sized datagrams measured
//! just before it),
//! and the latency of
//! one call at a time (p50/p99) against a raw UDP ping-pong measured in the
//! same run (these machines are noisy: only same-run ratios mean much).
//!
//! `RMBUS_BUSY_POLL=1` makes the bus loops spin instead of sleeping.
//!
//! Run: `cargo bench --bench rpc` (`RMBUS_BENCH_CALLS` sets the number of
//! calls per row, default 20000; `RMBUS_UNICAST=1` turns on the unicast
//! optimisation, SEND_UNICAST=yes; `RMBUS_REPLAY_WINDOW=off` turns the
//! replay guard off, to measure its cost).

mod support;

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rmbus::auth::seal;
use rmbus::proto::Event;
use rmbus::rpc::cmd::RpcRequest;
use rmbus::rpc::{Outcome, Reply, RpcEvent, RpcType};
use rmbus::wire::{Framing, Header, Message, MessageType, Value};
use support::*;

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("rpc benchmark: run with `cargo bench --bench rpc`");
        return;
    }
    let n: u64 = std::env::var("RMBUS_BENCH_CALLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let mut config = config();
    config.send_unicast = std::env::var("RMBUS_UNICAST").is_ok();
    let (ready, stop) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicBool::new(false)),
    );
    let server = bus_thread(
        config.clone(),
        "(app:bench module:server)",
        ready.clone(),
        stop.clone(),
        |bus| {
            bus.serve("bench.echo", |req| Reply::ok(req.args.clone()).into());
        },
        |_| {},
    );
    wait_for(&ready);
    let (mut client, mut poll, callee) = joined(
        &config,
        "(app:bench module:client)",
        "(app:bench module:server)",
    );
    let timeout = Duration::from_secs(5);
    let args = |i: u64| {
        vec![
            Value::Integer(i as i64),
            Value::string("payload of a typical size"),
        ]
    };

    // The raw baseline: a datagram of a request's size, sent as fast as
    // sendto goes, to an address nobody has (the server drops it unread).
    let nobody = rmbus::wire::Address::parse("(app:bench module:nobody id:0-0@127.0.0.1)").unwrap();
    let request = Message {
        header: Header {
            seq: 1,
            timestamp: 1,
            kind: MessageType::Unreliable,
            src: nobody.clone(),
            dst: nobody,
            acks: vec![],
        },
        commands: vec![
            RpcRequest::new("bench.echo", "1", RpcType::Unicast, &[], args(1)).into_command(),
        ],
    };
    let datagram = seal(&request, &config.keys().unwrap(), Framing::Lf).unwrap();
    let raw_socket = loopback_sender();
    let group = config.group_addr();
    let raw_rate = |count: u64| {
        let t = Instant::now();
        for _ in 0..count {
            raw_socket.send_to(&datagram, group).unwrap();
        }
        count as f64 / t.elapsed().as_secs_f64()
    };

    let rounds = 5;
    let per_round = (n / rounds).max(1);
    println!("\nrmbus RPC benchmark: host-local group, {n} calls per row in {rounds} rounds, each against a raw sendto just before it; medians\n");
    println!(
        "{:<34} {:>12} {:>10} {:>16}",
        "", "calls/s", "not OK", "x raw sendto/s"
    );
    // Per window, rounds of raw sendto and of calls alternate; the median of
    // the per-round ratios is reported.
    for window in [1u64, 16, 256] {
        let (mut rates, mut ratios, mut bad) = (Vec::new(), Vec::new(), 0u64);
        for _ in 0..rounds {
            let raw = raw_rate(per_round);
            // Let the server read what the baseline sent before the calls
            // start, and read the copies the client's own socket got.
            std::thread::sleep(Duration::from_millis(200));
            client.on_readable().unwrap();
            while client.poll_event().is_some() {}
            let (mut sent, mut done) = (0u64, 0u64);
            let t = Instant::now();
            while sent < window.min(per_round) {
                client
                    .with_endpoint(|ep, now| {
                        ep.rpc()
                            .call(now, &callee, "bench.echo", args(sent), timeout)
                    })
                    .unwrap();
                sent += 1;
            }
            drive(&mut client, &mut poll, |bus, e| {
                let Event::Rpc(RpcEvent::Returned { outcome, .. }) = e else {
                    return false;
                };
                done += 1;
                if !matches!(outcome, Outcome::Returned(ref r) if r.is_ok()) {
                    bad += 1;
                }
                if sent < per_round {
                    bus.with_endpoint(|ep, now| {
                        ep.rpc()
                            .call(now, &callee, "bench.echo", args(sent), timeout)
                    })
                    .unwrap();
                    sent += 1;
                }
                done == per_round
            });
            let rate = per_round as f64 / t.elapsed().as_secs_f64();
            rates.push(rate);
            ratios.push(rate / raw);
        }
        rates.sort_by(f64::total_cmp);
        ratios.sort_by(f64::total_cmp);
        println!(
            "{:<34} {:>12.0} {bad:>10} {:>16.2}   rounds {:.2} to {:.2}",
            format!("{window} call(s) outstanding"),
            rates[rates.len() / 2],
            ratios[ratios.len() / 2],
            ratios[0],
            ratios[ratios.len() - 1]
        );
    }

    // Latency: rounds of raw ping-pong and of calls alternate, and the
    // median of the per-round p50 ratios is reported, because this VM's
    // wake-up latency jumps between runs (10 to 50 us for the raw baseline).
    let (rounds, trips) = (10, 200);
    let (mut rtts, mut raws, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds {
        let raw = raw_ping_pong(trips);
        let mut round = Vec::with_capacity(trips);
        for i in 0..trips {
            let t = Instant::now();
            client
                .with_endpoint(|ep, now| {
                    ep.rpc()
                        .call(now, &callee, "bench.echo", args(i as u64), timeout)
                })
                .unwrap();
            // Timed when the outcome reaches the application (the ack of
            // the return goes out after that).
            let mut took = Duration::ZERO;
            drive(&mut client, &mut poll, |_, e| {
                took = t.elapsed();
                matches!(e, Event::Rpc(RpcEvent::Returned { .. }))
            });
            round.push(took);
        }
        round.sort();
        ratios.push(us(percentile(&round, 0.5)) / us(percentile(&raw, 0.5)));
        rtts.extend(round);
        raws.extend(raw);
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    server.join().unwrap();
    rtts.sort();
    raws.sort();
    ratios.sort_by(f64::total_cmp);
    println!(
        "\ncall latency, one at a time: p50 {:.1} us, p99 {:.1} us; raw UDP ping-pong p50 {:.1} us, p99 {:.1} us",
        us(percentile(&rtts, 0.5)),
        us(percentile(&rtts, 0.99)),
        us(percentile(&raws, 0.5)),
        us(percentile(&raws, 0.99)),
    );
    println!(
        "p50 ratio, median of {rounds} interleaved rounds: {:.2} (rounds ranged {:.2} to {:.2})",
        ratios[ratios.len() / 2],
        ratios[0],
        ratios[ratios.len() - 1]
    );
    println!("targets: p50 ratio <= 1.5; calls/s with 256 outstanding >= 0.30 x raw sendto/s");
}
