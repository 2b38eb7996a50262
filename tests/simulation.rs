//! The protocol core on a virtual clock: the project's conformance cases 3,
//! 8–13 and 17–21 (RFC 3259 §7–§9), plus the reliability promise, convergence, partitions,
//! bye, quit, waiting/go, ping coalescing and forged traffic.
//!
//! Sweeps run `RMBUS_SIM_SEEDS` seeds (default 200); a failure names its seed.

mod common;
mod sim;

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant, SystemTime};

use common::*;
use rmbus::auth::{open, seal_raw};
use rmbus::proto::{
    Delivery, Endpoint, EndpointConfig, Event, LeaveReason, MsgId, SendError, Timers,
};
use rmbus::wire::{Address, Command, Framing, MessageType, Value};
use sim::{endpoint_config, for_seeds, Link, Net};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// A standalone endpoint with address `addr`, for the cases fed by golden datagrams.
fn endpoint(addr: &str) -> (Endpoint, Instant) {
    let now = Instant::now();
    let ep = Endpoint::new(
        endpoint_config(1),
        Address::parse(addr).unwrap(),
        now,
        SystemTime::now(),
    )
    .unwrap();
    (ep, now)
}

fn events(ep: &mut Endpoint) -> Vec<Event> {
    std::iter::from_fn(|| ep.poll_event()).collect()
}

fn transmits(ep: &mut Endpoint, now: Instant) -> Vec<rmbus::wire::Message> {
    std::iter::from_fn(|| ep.poll_transmit(now))
        .map(|t| open(&t.contents, &md5()).unwrap())
        .collect()
}

fn from_a() -> std::net::SocketAddr {
    "192.168.1.1:40000".parse().unwrap()
}

fn cmd(name: &str, args: Vec<Value>) -> Vec<Command> {
    vec![Command::new(name, args)]
}

// ---- cases fed with golden datagrams ---------------------------------------------

#[test]
fn case_03_accept_a_valid_datagram() {
    let (mut b, now) = endpoint(B);
    b.handle_datagram(now, from_a(), &wire("qJsDJDwAMQVkzhxe", b"\r\n", V1_BODY));
    assert_eq!(b.entities(), 2);
    assert_eq!(b.peer(&addr(A)).unwrap().endpoint, from_a());
    assert_eq!(events(&mut b), vec![Event::PeerJoined(addr(A))]);
}

#[test]
fn case_04_05_forged_datagrams_change_nothing_but_counters() {
    let (mut b, now) = endpoint(B);
    let mut tampered = wire("qJsDJDwAMQVkzhxe", b"\r\n", V1_BODY);
    let last = tampered.len() - 2;
    tampered[last] ^= 1;
    b.handle_datagram(now, from_a(), &tampered);
    let wrong_key = rmbus::auth::Keys::md5_noencr(b"123156189113").unwrap();
    b.handle_datagram(
        now,
        from_a(),
        &seal_raw(V2_BODY, &wrong_key, Framing::Lf).unwrap(),
    );
    b.handle_datagram(now, from_a(), b"no digest at all");
    b.handle_datagram(
        now,
        from_a(),
        &seal_raw(b"mbus/1.0 x", &md5(), Framing::Lf).unwrap(),
    );
    assert_eq!(b.entities(), 1);
    assert!(events(&mut b).is_empty());
    assert!(transmits(&mut b, now).is_empty(), "no ack, nothing");
    let s = b.stats();
    assert_eq!(
        (s.datagrams_in, s.rejected_auth, s.rejected_malformed),
        (4, 3, 1)
    );
}

#[test]
fn case_08_reliable_exact_address_delivered_in_order_and_acked() {
    let (mut b, now) = endpoint(B);
    b.handle_datagram(now, from_a(), &wire("83gngKI3713RhbY4", b"\r\n", V2_BODY));
    let evs = events(&mut b);
    assert_eq!(evs[0], Event::PeerJoined(addr(A)));
    let Event::Command {
        src,
        reliable,
        command,
    } = &evs[1]
    else {
        panic!("{evs:?}")
    };
    assert_eq!(
        (src, *reliable, command.name.as_str()),
        (&addr(A), true, "tool.test.set")
    );
    assert_eq!(command.args[2], Value::Float(3.25));
    assert!(matches!(&evs[2], Event::Command { command, .. } if command.name == "tool.test.ping"));
    // The ack must be due within T_c, and goes out as soon as transmits are polled.
    assert!(b.poll_timeout().unwrap() <= now + ms(70));
    let sent = transmits(&mut b, now);
    assert_eq!(sent.len(), 1);
    let ack = &sent[0].header;
    assert_eq!(
        (ack.kind, &ack.dst, &ack.acks),
        (MessageType::Unreliable, &addr(A), &vec![1])
    );
    assert!(sent[0].commands.is_empty());
}

#[test]
fn case_08_the_ack_cancels_retransmission() {
    let mut net = Net::new(1, Link::perfect());
    let (a, b) = (net.add("module:engine"), net.add("module:gui"));
    net.run_for(ms(1500));
    assert!(net.converged());
    let id = net
        .send(
            a,
            &net.address(b),
            cmd("tool.test.ping", vec![]),
            Delivery::Reliable,
        )
        .unwrap();
    net.run_for(ms(1000));
    assert_eq!(
        net.events(a, |e| {
            matches!(e, Event::Delivered { id: i, .. } if *i == id).then_some(())
        })
        .len(),
        1
    );
    assert_eq!(net.nodes[a].ep.stats().retransmissions, 0);
    assert_eq!(net.nodes[b].ep.stats().dedicated_acks, 1);
}

#[test]
fn case_09_reliable_to_a_subset_is_ignored() {
    let (mut b, now) = endpoint(B);
    let body = std::str::from_utf8(V2_BODY)
        .unwrap()
        .replace(B, "(module:gui)");
    b.handle_datagram(
        now,
        from_a(),
        &seal_raw(body.as_bytes(), &md5(), Framing::Crlf).unwrap(),
    );
    assert_eq!(
        events(&mut b),
        vec![Event::PeerJoined(addr(A))],
        "no command delivered"
    );
    assert!(transmits(&mut b, now).is_empty(), "no ack");
    assert_eq!(b.stats().not_for_us, 1);
}

#[test]
fn case_10_unreliable_subset_delivery() {
    let v5 = wire("wkOZCR8G9YXGen+q", b"\r\n", V5_BODY);
    let sha1_config = |seed| EndpointConfig {
        keys: sha1(),
        ..endpoint_config(seed)
    };
    let now = Instant::now();
    let mk = |a: &str| Endpoint::new(sha1_config(1), addr(a), now, SystemTime::now()).unwrap();
    let (mut b, mut x, mut a) = (
        mk(B),
        mk("(app:x module:gui id:1-1@10.0.0.1)"),
        mk("(app:test module:engine id:9-9@192.168.1.9)"),
    );
    for ep in [&mut b, &mut x, &mut a] {
        ep.handle_datagram(now, from_a(), &v5);
    }
    let waiting = |ep: &mut Endpoint| {
        events(ep)
            .into_iter()
            .filter(|e| matches!(e, Event::Waiting { condition, .. } if condition == "ready"))
            .count()
    };
    assert_eq!(
        (waiting(&mut b), waiting(&mut x), waiting(&mut a)),
        (1, 1, 0)
    );
    // To (foo:bar): nobody.
    let body = std::str::from_utf8(V5_BODY)
        .unwrap()
        .replace("(module:gui)", "(foo:bar)");
    let to_foo = seal_raw(body.as_bytes(), &sha1(), Framing::Crlf).unwrap();
    b.handle_datagram(now, from_a(), &to_foo);
    assert_eq!(waiting(&mut b), 0);
}

#[test]
fn case_11_duplicate_reliable_is_reacked_not_redelivered() {
    let (mut b, now) = endpoint(B);
    let v2 = wire("83gngKI3713RhbY4", b"\r\n", V2_BODY);
    b.handle_datagram(now, from_a(), &v2);
    let first = events(&mut b).len();
    assert_eq!(transmits(&mut b, now)[0].header.acks, vec![1]);
    let later = now + ms(200);
    b.handle_datagram(later, from_a(), &v2);
    assert!(
        events(&mut b).is_empty(),
        "not delivered again (first time: {first} events)"
    );
    let again = transmits(&mut b, later);
    assert_eq!(again.len(), 1);
    assert!(again[0].header.acks.contains(&1), "acked again");
    assert_eq!(b.stats().duplicates, 1);
}

#[test]
fn case_12_retransmission_timing() {
    let mut net = Net::new(2, Link::perfect());
    let (a, b) = (net.add("module:engine"), net.add("module:gui"));
    net.run_for(ms(1500));
    let dst = net.address(b);
    // B goes deaf: A's reliable message is never acknowledged.
    net.partition = Some(vec![0, 1]);
    let start = net.now;
    let before = net.nodes[a].sent.len();
    let id = net
        .send(
            a,
            &dst,
            cmd("tool.test.set", vec![Value::Integer(1)]),
            Delivery::Reliable,
        )
        .unwrap();
    net.run_for(ms(2000));
    let copies: Vec<(u64, Vec<u8>)> = net.nodes[a].sent[before..]
        .iter()
        .filter(|(_, _, bytes)| {
            open(bytes, &md5()).is_ok_and(|m| m.header.kind == MessageType::Reliable)
        })
        .map(|(t, _, bytes)| (t.duration_since(start).as_millis() as u64, bytes.clone()))
        .collect();
    let times: Vec<u64> = copies.iter().map(|(t, _)| *t).collect();
    assert_eq!(times, vec![0, 100, 300], "no 4th transmission");
    assert!(
        copies.iter().all(|(_, bytes)| *bytes == copies[0].1),
        "identical datagrams"
    );
    let failed: Vec<Instant> = net.nodes[a]
        .events
        .iter()
        .filter(|(_, e)| matches!(e, Event::DeliveryFailed { id: i, .. } if *i == id))
        .map(|(t, _)| *t)
        .collect();
    assert_eq!(failed, vec![start + ms(600)]);
    let s = net.nodes[a].ep.stats();
    assert_eq!(
        (s.reliable_sent, s.retransmissions, s.failed, s.acknowledged),
        (1, 2, 1, 0)
    );
}

#[test]
fn case_13_reliable_needs_a_unique_known_complete_address() {
    let mut net = Net::new(3, Link::perfect());
    let (a, _, _) = (
        net.add("module:gui"),
        net.add("module:engine"),
        net.add("module:engine"),
    );
    net.run_for(ms(1500));
    assert!(net.converged());
    let before = net.nodes[a].sent.len();
    let engine = addr("(module:engine)");
    assert!(matches!(
        net.send(a, &engine, cmd("x", vec![]), Delivery::Reliable),
        Err(SendError::NotUnique { matches: 2, .. })
    ));
    assert!(matches!(
        net.send(
            a,
            &addr("(module:nothing)"),
            cmd("x", vec![]),
            Delivery::Reliable
        ),
        Err(SendError::UnknownDestination(_))
    ));
    // Uniqueness alone: a subset that matches one entity names it fully.
    assert_eq!(
        net.nodes[a].ep.unique_match(&addr("(node:n1)")).unwrap(),
        net.address(1)
    );
    assert!(matches!(
        net.nodes[a].ep.unique_match(&engine),
        Err(SendError::NotUnique { matches: 2, .. })
    ));
    let subset = addr("(node:n1)");
    assert!(matches!(
        net.send(a, &subset, cmd("x", vec![]), Delivery::Reliable),
        Err(SendError::Incomplete { .. })
    ));
    assert_eq!(net.nodes[a].sent.len(), before, "nothing emitted");
    assert_eq!(net.nodes[a].ep.stats().reliable_sent, 0);
}

#[test]
fn case_14_seqnum_wraps_to_zero() {
    let mut config = endpoint_config(4);
    config.first_seq = u32::MAX;
    let now = Instant::now();
    let mut ep = Endpoint::new(config, addr(A), now, SystemTime::now()).unwrap();
    let mut seqs = Vec::new();
    // One drain per send (sends within one drain share a message).
    for _ in 0..2 {
        ep.send(
            now,
            &Address::empty(),
            cmd("x.y", vec![]),
            Delivery::Unreliable,
        )
        .unwrap();
        seqs.extend(transmits(&mut ep, now).iter().map(|m| m.header.seq));
    }
    assert_eq!(seqs, vec![u32::MAX, 0]);
}

// ---- awareness --------------------------------------------------------------------------

#[test]
fn case_17_hello_timing() {
    for_seeds(20, |seed| {
        for n in [1usize, 3, 5, 10] {
            let mut net = Net::new(seed, Link::perfect());
            for _ in 0..n {
                net.add("");
            }
            net.run_for(ms(30_000));
            for i in 0..n {
                let hellos = net.hellos(i);
                assert!(
                    net.elapsed_ms(hellos[0]) <= 1000,
                    "first hello after {} ms",
                    net.elapsed_ms(hellos[0])
                );
                let (lo, hi) = if n <= 5 { (900, 1100) } else { (1800, 2200) };
                // Once everyone is known (after the first second), intervals are steady.
                for w in hellos.windows(2).skip(2) {
                    let gap = w[1].duration_since(w[0]).as_millis() as u64;
                    assert!((lo..=hi).contains(&gap), "{n} entities: interval {gap} ms");
                }
            }
        }
    });
}

/// Node 1 hears node 0 once (node 0 then goes silent) and must keep it for
/// 5.5 hello intervals, then drop it.
fn silence_threshold(others: usize) -> (u64, u64) {
    let mut net = Net::new(5, Link::perfect());
    let (a, b) = (net.add("module:talker"), net.add("module:listener"));
    for _ in 0..others {
        net.add("");
    }
    net.run_for(ms(2000));
    assert!(net.converged());
    let heard = net.nodes[b].ep.peer(&net.address(a)).unwrap().last_heard;
    // Node a stops talking: cut it off from everyone.
    let mut side = vec![0; net.nodes.len()];
    side[a] = 1;
    net.partition = Some(side);
    let target = net.address(a);
    let mut kept_until = heard;
    while net.nodes[b].ep.peer(&target).is_some() {
        kept_until = net.now;
        net.run_for(ms(10));
    }
    let lost = net.events(b, |e| match e {
        Event::PeerLeft { addr, reason } if *addr == target => Some(*reason),
        _ => None,
    });
    assert_eq!(lost, vec![LeaveReason::Timeout]);
    (
        kept_until.duration_since(heard).as_millis() as u64,
        net.now.duration_since(heard).as_millis() as u64,
    )
}

#[test]
fn case_18_entity_expiry() {
    let (kept, gone) = silence_threshold(0);
    assert!(
        kept >= 5400 && (5500..=5510).contains(&gone),
        "kept {kept} ms, gone by {gone} ms"
    );
    let (kept, gone) = silence_threshold(8);
    assert!(
        kept >= 10_900 && (11_000..=11_010).contains(&gone),
        "10 entities: kept {kept} ms, gone by {gone} ms"
    );
}

#[test]
fn case_20_bye_removes_at_once() {
    let mut net = Net::new(6, Link::perfect());
    let (a, b) = (net.add(""), net.add(""));
    net.run_for(ms(1500));
    let target = net.address(a);
    let closed_at = net.now;
    net.with(a, |ep, now| ep.close(now));
    net.run_for(ms(5));
    let left: Vec<(Instant, LeaveReason)> = net.nodes[b]
        .events
        .iter()
        .filter_map(|(t, e)| match e {
            Event::PeerLeft { addr, reason } if *addr == target => Some((*t, *reason)),
            _ => None,
        })
        .collect();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].1, LeaveReason::Bye);
    assert!(left[0].0.duration_since(closed_at) < ms(1));
    assert_eq!(net.nodes[b].ep.entities(), 1);
    assert!(
        net.nodes[a].ep.poll_timeout().is_none(),
        "a closed endpoint needs no wake-ups"
    );
}

#[test]
fn case_21_ping_coalescing() {
    for_seeds(50, |seed| {
        // Dither pinned at 1.5: the regular hello comes 1500 ms after the last
        // one, so any hello within 1000 ms of the ping is the ping's answer.
        let mut config = endpoint_config(seed);
        config.timers = Timers {
            hello_dither: (1.5, 1.5),
            ..Timers::default()
        };
        let mut net = Net::new(seed, Link::perfect());
        let pinger = net.add("module:pinger");
        let target = net.add_with("module:target", config);
        net.run_until(net.ms(3000));
        // Ping just after a regular hello.
        let regular = net.hellos(target).len();
        while net.hellos(target).len() == regular {
            net.run_for(ms(1));
        }
        let pinged = net.now;
        net.with(pinger, |ep, now| {
            ep.ping(now, &addr("(module:target)")).unwrap()
        });
        net.run_for(ms(50));
        net.with(pinger, |ep, now| {
            ep.ping(now, &addr("(module:target)")).unwrap()
        });
        net.run_until(pinged + ms(1001));
        let answers: Vec<_> = net
            .hellos(target)
            .into_iter()
            .filter(|t| *t > pinged)
            .collect();
        let all: Vec<u64> = net
            .hellos(target)
            .iter()
            .map(|t| net.elapsed_ms(*t))
            .collect();
        assert_eq!(
            answers.len(),
            1,
            "exactly one hello for two pings; pinged at {} ms, hellos at {all:?}",
            net.elapsed_ms(pinged)
        );
        assert!(answers[0].duration_since(pinged) <= ms(1000));
    });
}

#[test]
fn quit_waiting_and_go() {
    let mut net = Net::new(7, Link::perfect());
    let (boss, worker) = (net.add("module:boss"), net.add("module:worker"));
    net.run_for(ms(1500));
    net.with(worker, |ep, now| {
        ep.start_waiting(now, &Address::empty(), "ready").unwrap()
    });
    net.run_for(ms(450));
    let heard = net.events(boss, |e| {
        matches!(e, Event::Waiting { condition, .. } if condition == "ready").then_some(())
    });
    assert!(
        (4..=6).contains(&heard.len()),
        "repeated every 100 ms: {}",
        heard.len()
    );
    let worker_addr = net.address(worker);
    let go = net
        .with(boss, |ep, now| ep.go(now, &worker_addr, "ready"))
        .unwrap();
    net.run_for(ms(10));
    assert_eq!(
        net.events(worker, |e| {
            matches!(e, Event::Go { condition, .. } if condition == "ready").then_some(())
        })
        .len(),
        1
    );
    assert_eq!(
        net.events(boss, |e| {
            matches!(e, Event::Delivered { id, .. } if *id == go).then_some(())
        })
        .len(),
        1
    );
    assert_eq!(net.nodes[worker].ep.waiting_for().count(), 0, "released");
    let count = net
        .events(boss, |e| matches!(e, Event::Waiting { .. }).then_some(()))
        .len();
    net.run_for(ms(1000));
    assert_eq!(
        net.events(boss, |e| matches!(e, Event::Waiting { .. }).then_some(()))
            .len(),
        count,
        "no more waiting"
    );

    net.send(
        boss,
        &worker_addr,
        cmd("mbus.quit", vec![]),
        Delivery::Reliable,
    )
    .unwrap();
    net.run_for(ms(10));
    assert_eq!(
        net.events(worker, |e| matches!(e, Event::Quit { .. }).then_some(()))
            .len(),
        1
    );
}

// ---- properties over many seeds -------------------------------------------------------------

/// The reliability promise: under 0–50 % loss, duplication and reordering,
/// every reliable send ends in exactly one of delivered or failed; no receiver
/// hands the same message to the application twice; sent = acknowledged +
/// failed; delivered ≥ acknowledged.
#[test]
fn reliability_promise_under_loss() {
    for_seeds(200, |seed| {
        let loss = (seed % 11) as f64 * 0.05;
        let mut net = Net::new(seed, Link::lossy(loss));
        let sender = net.add("module:sender");
        let receivers = [net.add("module:r1"), net.add("module:r2")];
        net.run_for(ms(1500));
        let mut sent: HashMap<MsgId, i64> = HashMap::new();
        for n in 0..40i64 {
            let to = receivers[(n % 2) as usize];
            let dst = net.address(to);
            if let Ok(id) = net.send(
                sender,
                &dst,
                cmd("test.n", vec![Value::Integer(n)]),
                Delivery::Reliable,
            ) {
                sent.insert(id, n);
            }
            net.run_for(ms(20 + (seed * 7 + n as u64) % 40));
        }
        net.run_for(ms(2000));
        let outcome: Vec<MsgId> = net.events(sender, |e| match e {
            Event::Delivered { id, .. } | Event::DeliveryFailed { id, .. } => Some(*id),
            _ => None,
        });
        let unique: HashSet<MsgId> = outcome.iter().copied().collect();
        assert_eq!(
            outcome.len(),
            unique.len(),
            "loss {loss}: an outcome reported twice"
        );
        assert_eq!(
            unique,
            sent.keys().copied().collect(),
            "loss {loss}: every send ends once"
        );
        let mut delivered_total = 0;
        for r in receivers {
            let got = net.events(r, |e| match e {
                Event::Command { command, .. } if command.name == "test.n" => {
                    command.args[0].as_i64()
                }
                _ => None,
            });
            let distinct: HashSet<i64> = got.iter().copied().collect();
            assert_eq!(got.len(), distinct.len(), "loss {loss}: delivered twice");
            delivered_total += got.len() as u64;
        }
        let s = net.nodes[sender].ep.stats();
        assert_eq!(s.reliable_sent, s.acknowledged + s.failed, "loss {loss}");
        assert_eq!(s.reliable_sent, sent.len() as u64);
        assert!(delivered_total >= s.acknowledged, "loss {loss}");
        if loss == 0.0 {
            assert_eq!(s.failed, 0);
        }
    });
}

#[test]
fn ordered_mode_keeps_send_order() {
    for_seeds(50, |seed| {
        let mut net = Net::new(seed, Link::lossy(0.2));
        let (a, b) = (net.add(""), net.add(""));
        let dst = net.address(b);
        while net.nodes[a].ep.peer(&dst).is_none() {
            net.run_for(ms(100));
        }
        for n in 0..20 {
            net.send(
                a,
                &dst,
                cmd("seq.n", vec![Value::Integer(n)]),
                Delivery::ReliableOrdered,
            )
            .unwrap();
        }
        assert!(net.nodes[a].ep.in_flight() == 20);
        net.run_for(ms(20 * 700));
        let got = net.events(b, |e| match e {
            Event::Command { command, .. } => command.args[0].as_i64(),
            _ => None,
        });
        assert!(got.windows(2).all(|w| w[0] < w[1]), "out of order: {got:?}");
        assert_eq!(net.nodes[a].ep.in_flight(), 0);
    });
}

#[test]
fn convergence_of_2_to_50_entities() {
    for n in [2usize, 5, 20, 50] {
        let mut net = Net::new(n as u64, Link::perfect());
        for _ in 0..n {
            net.add("");
        }
        net.run_for(ms(1100));
        assert!(net.converged(), "{n} entities after 1.1 s");
        // Stays converged: nobody expires anybody while all are alive.
        net.run_for(ms(60_000));
        assert!(net.converged(), "{n} entities after a minute");
        for i in 0..n {
            let lost = net.events(i, |e| matches!(e, Event::PeerLeft { .. }).then_some(()));
            assert!(lost.is_empty(), "{n} entities: node {i} lost someone");
        }
    }
}

#[test]
fn convergence_under_loss() {
    for_seeds(20, |seed| {
        let mut net = Net::new(seed, Link::lossy(0.3));
        for _ in 0..8 {
            net.add("");
        }
        net.run_for(ms(20_000));
        // Everyone has discovered everyone (a peer may be between an expiry
        // and its next hello at any given moment, so discovery is the claim).
        for i in 0..8 {
            let met: HashSet<Address> = net
                .events(i, |e| match e {
                    Event::PeerJoined(a) => Some(a.clone()),
                    _ => None,
                })
                .into_iter()
                .collect();
            assert_eq!(met.len(), 7, "node {i}");
        }
    });
}

#[test]
fn partition_and_heal() {
    let mut net = Net::new(8, Link::perfect());
    for _ in 0..4 {
        net.add("");
    }
    net.run_for(ms(1500));
    assert!(net.converged());
    net.partition = Some(vec![0, 0, 1, 1]);
    net.run_for(ms(12_000));
    for i in 0..4 {
        assert_eq!(net.nodes[i].ep.entities(), 2, "node {i} sees only its side");
        let timeouts = net.events(i, |e| {
            matches!(
                e,
                Event::PeerLeft {
                    reason: LeaveReason::Timeout,
                    ..
                }
            )
            .then_some(())
        });
        assert_eq!(timeouts.len(), 2);
    }
    net.partition = None;
    net.run_for(ms(1500));
    assert!(net.converged(), "healed");
    for i in 0..4 {
        let joined = net.events(i, |e| matches!(e, Event::PeerJoined(_)).then_some(()));
        assert_eq!(
            joined.len(),
            5,
            "node {i}: 3 at start, 2 again after healing"
        );
    }
}

#[test]
fn forged_and_malformed_traffic_only_moves_counters() {
    for_seeds(50, |seed| {
        let mut net = Net::new(seed, Link::perfect());
        let (a, b) = (net.add(""), net.add(""));
        net.run_for(ms(1500));
        let genuine = net.nodes[a].sent.last().unwrap().2.clone();
        let wrong_key = rmbus::auth::Keys::md5_noencr(b"not the bus key").unwrap();
        let events_before = net.nodes[b].events.len();
        let mut rejected = 0;
        for k in 0..50u64 {
            let mut bytes = genuine.clone();
            let at = ((seed * 31 + k * 17) as usize) % bytes.len();
            bytes[at] ^= 1 << (k % 8);
            let forged_body = format!(
                "mbus/1.0 {k} 1 R (app:evil id:666-{k}@6.6.6.6) {} ()\nmbus.quit ()",
                net.address(b)
            );
            for datagram in [
                bytes,
                seal_raw(forged_body.as_bytes(), &wrong_key, Framing::Lf).unwrap(),
                vec![k as u8; k as usize],
            ] {
                net.inject(b, "10.6.6.6:666".parse().unwrap(), &datagram);
                rejected += 1;
            }
        }
        assert_eq!(
            net.nodes[b].events.len(),
            events_before,
            "no event from forged traffic"
        );
        assert_eq!(net.nodes[b].ep.entities(), 2);
        let s = net.nodes[b].ep.stats();
        assert_eq!(
            s.rejected_auth + s.rejected_malformed + s.rejected_cipher,
            rejected
        );
    });
}

#[test]
fn own_echoes_are_counted_and_ignored() {
    let mut net = Net::new(9, Link::perfect());
    let a = net.add("");
    net.run_for(ms(3000));
    let s = net.nodes[a].ep.stats();
    assert!(s.own_echoes >= 2, "its hellos come back by multicast loop");
    assert_eq!(net.nodes[a].ep.entities(), 1);
    assert!(net.nodes[a].events.is_empty());
}

#[test]
fn a_flooding_peer_cannot_grow_memory_without_bound() {
    let mut config = endpoint_config(10);
    config.limits.max_peers = 16;
    config.limits.max_events = 64;
    config.limits.max_pending_acks = 8;
    let now = Instant::now();
    let mut ep = Endpoint::new(config, addr(B), now, SystemTime::now()).unwrap();
    for k in 0..1000u32 {
        let body = format!("mbus/1.0 {k} 1 U (app:flood id:{k}-1@10.0.0.1) () ()\nx.y ({k})");
        ep.handle_datagram(
            now,
            from_a(),
            &seal_raw(body.as_bytes(), &md5(), Framing::Lf).unwrap(),
        );
    }
    assert_eq!(ep.entities(), 17);
    assert!(std::iter::from_fn(|| ep.poll_event()).count() <= 64);
    assert_eq!(ep.stats().evicted, 1000 - 16, "each newcomer took a place");
    assert!(
        ep.stats().queue_drops > 900,
        "events beyond the bound dropped"
    );
    // One peer sending many reliable messages: acks are flushed every 8.
    let mut config = endpoint_config(10);
    config.limits.max_pending_acks = 8;
    let mut ep = Endpoint::new(config, addr(B), now, SystemTime::now()).unwrap();
    for k in 0..100u32 {
        let body = format!("mbus/1.0 {k} 1 R {A} {B} ()\nx.y ({k})");
        ep.handle_datagram(
            now,
            from_a(),
            &seal_raw(body.as_bytes(), &md5(), Framing::Lf).unwrap(),
        );
    }
    let acks: usize = transmits(&mut ep, now)
        .iter()
        .map(|m| m.header.acks.len())
        .sum();
    assert_eq!(acks, 100, "every message acknowledged");
    assert!(ep.stats().dedicated_acks >= 12);
}

/// A reply sent while handling the event (events are drained before
/// transmits) carries the ack; no separate ack message goes out.
#[test]
fn acks_piggyback_on_a_reply_to_the_sender() {
    let (mut b, now) = endpoint(B);
    b.handle_datagram(now, from_a(), &wire("83gngKI3713RhbY4", b"\r\n", V2_BODY));
    assert_eq!(events(&mut b).len(), 3);
    b.send(now, &addr(A), cmd("reply", vec![]), Delivery::Unreliable)
        .unwrap();
    let sent = transmits(&mut b, now);
    assert_eq!(sent.len(), 1, "no separate ack");
    assert_eq!(sent[0].header.acks, vec![1]);
    assert_eq!(sent[0].commands[0].name, "reply");
    assert_eq!(b.stats().dedicated_acks, 0);
}

#[test]
fn close_reports_every_message_in_flight() {
    let mut net = Net::new(12, Link::perfect());
    let (a, b) = (net.add(""), net.add(""));
    net.run_for(ms(1500));
    let dst = net.address(b);
    net.partition = Some(vec![0, 1]);
    let ids: Vec<MsgId> = (0..3)
        .map(|_| {
            net.send(a, &dst, cmd("x", vec![]), Delivery::ReliableOrdered)
                .unwrap()
        })
        .collect();
    net.with(a, |ep, now| ep.close(now));
    let failed = net.events(a, |e| match e {
        Event::DeliveryFailed { id, .. } => Some(*id),
        _ => None,
    });
    assert_eq!(failed, ids);
    assert!(matches!(
        net.send(a, &dst, cmd("x", vec![]), Delivery::Unreliable),
        Err(SendError::Closed)
    ));
    let bye = net.nodes[a].sent.last().unwrap();
    assert_eq!(open(&bye.2, &md5()).unwrap().commands[0].name, "mbus.bye");
}

#[test]
fn unicast_optimisation_when_enabled() {
    let mut net = Net::new(13, Link::perfect());
    let mut config = endpoint_config(99);
    config.send_unicast = true;
    let a = net.add_with("module:a", config);
    let b = net.add("module:b");
    net.run_for(ms(1500));
    let dst = net.address(b);
    net.send(a, &dst, cmd("direct", vec![]), Delivery::Reliable)
        .unwrap();
    net.send(
        a,
        &Address::empty(),
        cmd("everyone", vec![]),
        Delivery::Unreliable,
    )
    .unwrap();
    let n = net.nodes[a].sent.len();
    let sent = &net.nodes[a].sent[n - 2..];
    assert_eq!(
        sent[0].1, net.nodes[b].addr,
        "unique destination with its own port: unicast"
    );
    assert_eq!(sent[1].1, sim::group(), "() always goes to the group");
    net.run_for(ms(100));
    assert_eq!(
        net.events(b, |e| matches!(e, Event::Command { .. }).then_some(()))
            .len(),
        2
    );
}

#[test]
fn rfc_3259_commands_outside_their_format_are_dropped_and_counted() {
    let mut net = Net::new(3, Link::perfect());
    let (a, b) = (net.add(""), net.add(""));
    net.run_for(ms(3000));
    assert!(net.converged());
    let commands = vec![
        Command::new("mbus.bye", vec![Value::Integer(1)]),
        Command::new("mbus.waiting", vec![]),
        Command::new("mbus.go", vec![Value::symbol("a"), Value::symbol("b")]),
        Command::new("mbus.ping", vec![Value::symbol("x")]),
        // Hello keeps ignoring its arguments (RFC 3259 §9).
        Command::new("mbus.hello", vec![Value::Integer(7)]),
        Command::new("test.after", vec![]),
    ];
    net.send(b, &Address::empty(), commands, Delivery::Unreliable)
        .unwrap();
    net.run_for(ms(50));
    let s = net.nodes[a].ep.stats();
    assert_eq!(s.malformed_commands, 4, "{s:?}");
    let b_addr = net.address(b);
    assert!(
        net.nodes[a].ep.peer(&b_addr).is_some(),
        "a malformed bye removes nobody"
    );
    let seen: Vec<String> = net.events(a, |e| match e {
        Event::Command { command, .. } => Some(command.name.clone()),
        Event::Waiting { .. } | Event::Go { .. } | Event::PeerLeft { .. } => Some(format!("{e:?}")),
        _ => None,
    });
    assert_eq!(seen, ["test.after"], "the rest of the message is delivered");
}

#[test]
fn a_datagram_larger_than_the_link_allows_is_lost_and_its_message_fails() {
    let mut link = Link::perfect();
    link.max_datagram = 1500;
    let mut net = Net::new(4, link);
    let (a, b) = (net.add(""), net.add(""));
    net.run_for(ms(3000));
    assert!(net.converged());
    let dst = net.address(b);
    let big = Command::new("test.big", vec![Value::string("x".repeat(2000))]);
    let big = net.send(a, &dst, vec![big], Delivery::Reliable).unwrap();
    let small = Command::new("test.small", vec![Value::Integer(1)]);
    let small = net.send(a, &dst, vec![small], Delivery::Reliable).unwrap();
    net.run_for(ms(1000));
    assert_eq!(net.oversized, 3, "sent three times, lost each time");
    let outcomes = net.events(a, |e| match e {
        Event::Delivered { id, .. } => Some((*id, true)),
        Event::DeliveryFailed { id, .. } => Some((*id, false)),
        _ => None,
    });
    assert_eq!(outcomes, [(small, true), (big, false)]);
    let got = net.events(b, |e| match e {
        Event::Command { command, .. } => Some(command.name.clone()),
        _ => None,
    });
    assert_eq!(got, ["test.small"]);
}

#[test]
fn the_simulation_log_names_each_node_and_the_virtual_time() {
    if std::env::var_os("RMBUS_SIM_LOG").is_some() {
        eprintln!("skipped: RMBUS_SIM_LOG sets a filter of its own");
        return;
    }
    let mut net = Net::new(5, Link::perfect());
    net.add("");
    net.add("");
    net.run_for(ms(3000));
    assert!(net.converged());
    let logs = sim::logs();
    for n in 0..2 {
        let line = logs
            .lines()
            .find(|l| l.contains(&format!("node{{n={n} t_ms=")) && l.contains("entity joined"))
            .unwrap_or_else(|| panic!("no join logged for node {n}:\n{logs}"));
        assert!(line.contains("app:sim"), "{line}");
    }
}
