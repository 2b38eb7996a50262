//! Command batching: separate sends to one destination with one reliability
//! within one drain share a message (RFC 3259 §5: a message carries any
//! number of commands), never larger than `Limits::max_batch_bytes`; each
//! send keeps its own id and outcome.

mod common;
mod sim;

use std::time::{Duration, Instant, SystemTime};

use common::*;
use rmbus::auth::open;
use rmbus::proto::{Delivery, Endpoint, Event, MsgId};
use rmbus::wire::{Address, Command, Message, MessageType, Value};
use sim::{endpoint_config, for_seeds, Link, Net};

fn command(i: i64) -> Vec<Command> {
    vec![Command::new("x.n", vec![Value::Integer(i)])]
}

fn datagrams(ep: &mut Endpoint, now: Instant) -> Vec<(usize, Message)> {
    std::iter::from_fn(|| ep.poll_transmit(now))
        .map(|t| (t.contents.len(), open(&t.contents, &md5()).unwrap()))
        .collect()
}

/// An endpoint that knows `A` (it heard a hello).
fn knowing_a(config: rmbus::proto::EndpointConfig) -> (Endpoint, Instant) {
    let now = Instant::now();
    let mut ep = Endpoint::new(config, addr(B), now, SystemTime::now()).unwrap();
    let hello = format!("mbus/1.0 1 1 U {A} () ()\nmbus.hello ()");
    ep.handle_datagram(
        now,
        "192.168.1.1:40000".parse().unwrap(),
        &rmbus::auth::seal_raw(hello.as_bytes(), &md5(), rmbus::wire::Framing::Lf).unwrap(),
    );
    while ep.poll_event().is_some() {}
    (ep, now)
}

#[test]
fn ten_sends_in_one_drain_go_in_one_message_each_with_its_own_outcome() {
    let mut net: Net<Endpoint> = Net::new(51, Link::perfect());
    let (a, b) = (net.add(""), net.add(""));
    assert!(net.run_until_converged(Duration::from_secs(5)));
    let b_addr = net.address(b);
    let before = net.nodes[a].sent.len();
    let ids: Vec<MsgId> = net.with(a, |ep, now| {
        (0..10)
            .map(|i| {
                ep.send(now, &b_addr, command(i), Delivery::Reliable)
                    .unwrap()
            })
            .collect()
    });
    let sent: Vec<Message> = net.nodes[a].sent[before..]
        .iter()
        .map(|(_, _, bytes)| open(bytes, &sim::keys()).unwrap())
        .collect();
    assert_eq!(sent.len(), 1, "one message");
    assert_eq!(sent[0].header.kind, MessageType::Reliable);
    assert_eq!(sent[0].commands.len(), 10);
    assert_eq!(net.nodes[a].ep.in_flight(), 10, "ten sends in flight");
    net.run_for(Duration::from_secs(1));
    let delivered: Vec<MsgId> = net.events(a, |e| match e {
        Event::Delivered { id, .. } => Some(*id),
        _ => None,
    });
    assert_eq!(delivered, ids, "each send its own Delivered, in order");
    let got: Vec<i64> = net.events(b, |e| match e {
        Event::Command { command, .. } if command.name == "x.n" => command.args[0].as_i64(),
        _ => None,
    });
    assert_eq!(got, (0..10).collect::<Vec<_>>(), "delivered once, in order");
    let s = net.nodes[a].ep.stats();
    assert_eq!((s.reliable_sent, s.acknowledged), (10, 10));
}

#[test]
fn batches_keep_to_the_size_bound_and_to_one_destination_and_reliability() {
    for_seeds(20, |seed| {
        let mut config = endpoint_config(seed);
        let bound = [0usize, 300, 1472][seed as usize % 3];
        config.limits.max_batch_bytes = bound;
        let (mut ep, now) = knowing_a(config);
        let mut rng = rmbus::proto::Rng::new(seed);
        let group = addr("(app:test)");
        let mut expected = 0;
        for i in 0..60 {
            let text = "y".repeat((rng.unit() * 200.0) as usize);
            let cmd = vec![Command::new(
                "x.t",
                vec![Value::Integer(i), Value::String(text)],
            )];
            let (dst, delivery) = match i % 3 {
                0 => (addr(A), Delivery::Reliable),
                1 => (addr(A), Delivery::Unreliable),
                _ => (group.clone(), Delivery::Unreliable),
            };
            ep.send(now, &dst, cmd, delivery).unwrap();
            expected += 1;
        }
        let sent = datagrams(&mut ep, now);
        let mut seen = 0;
        for (len, m) in &sent {
            if m.commands.len() > 1 {
                assert!(*len <= bound, "seed {seed}: a batch of {len} octets");
            }
            let kinds: Vec<i64> = m
                .commands
                .iter()
                .map(|c| c.args[0].as_i64().unwrap() % 3)
                .collect();
            assert!(
                kinds.windows(2).all(|w| w[0] == w[1]),
                "one destination and kind"
            );
            seen += m.commands.len();
        }
        assert_eq!(seen, expected, "seed {seed}: every command sent once");
        if bound == 0 {
            assert_eq!(sent.len(), expected, "batching off");
        } else {
            assert!(sent.len() < expected, "seed {seed}: some batched");
        }
    });
}

#[test]
fn a_lost_batch_is_retransmitted_whole_and_fails_send_by_send() {
    let (mut ep, now) = knowing_a(endpoint_config(7));
    let ids: Vec<MsgId> = (0..3)
        .map(|i| {
            ep.send(now, &addr(A), command(i), Delivery::Reliable)
                .unwrap()
        })
        .collect();
    let first = datagrams(&mut ep, now);
    assert_eq!(first.len(), 1);
    let mut at = now;
    let mut retransmitted = Vec::new();
    for _ in 0..20 {
        at += Duration::from_millis(100);
        ep.handle_timeout(at);
        retransmitted.extend(
            datagrams(&mut ep, at)
                .into_iter()
                .filter(|(_, m)| m.header.kind == MessageType::Reliable),
        );
    }
    assert_eq!(retransmitted.len(), 2, "N_r = 3 transmissions in all");
    assert!(
        retransmitted.iter().all(|(_, m)| m == &first[0].1),
        "byte for byte"
    );
    let failed: Vec<MsgId> = std::iter::from_fn(|| ep.poll_event())
        .filter_map(|e| match e {
            Event::DeliveryFailed { id, .. } => Some(id),
            _ => None,
        })
        .collect();
    assert_eq!(failed, ids);
    assert_eq!(ep.stats().failed, 3);
    assert_eq!(ep.in_flight(), 0);
}

#[test]
fn ordered_sends_do_not_overtake_a_full_batch() {
    let mut config = endpoint_config(8);
    config.limits.max_batch_bytes = 200;
    let (mut ep, now) = knowing_a(config);
    let big = |i| {
        vec![Command::new(
            "x.o",
            vec![Value::Integer(i), Value::String("z".repeat(60))],
        )]
    };
    for i in 0..4 {
        ep.send(now, &addr(A), big(i), Delivery::ReliableOrdered)
            .unwrap();
    }
    let sent = datagrams(&mut ep, now);
    assert_eq!(sent.len(), 1, "the rest wait for the first message's ack");
    let first_batch = sent[0].1.commands.len();
    assert!(first_batch < 4);
    // Its ack releases the next.
    let ack = format!("mbus/1.0 9 1 U {A} {B} ({})", sent[0].1.header.seq);
    ep.handle_datagram(
        now,
        "192.168.1.1:40000".parse().unwrap(),
        &rmbus::auth::seal_raw(ack.as_bytes(), &md5(), rmbus::wire::Framing::Lf).unwrap(),
    );
    let next = datagrams(&mut ep, now);
    assert_eq!(next.len(), 1);
    let order: Vec<i64> = sent
        .iter()
        .chain(next.iter())
        .flat_map(|(_, m)| m.commands.iter().map(|c| c.args[0].as_i64().unwrap()))
        .collect();
    assert_eq!(
        order[..first_batch + 1],
        (0..first_batch as i64 + 1).collect::<Vec<_>>()[..]
    );
}

#[test]
fn closing_fails_unsent_reliable_batches_and_sends_unreliable_ones_before_bye() {
    let (mut ep, now) = knowing_a(endpoint_config(9));
    let id = ep
        .send(now, &addr(A), command(1), Delivery::Reliable)
        .unwrap();
    ep.send(now, &Address::empty(), command(2), Delivery::Unreliable)
        .unwrap();
    ep.close(now);
    let events: Vec<Event> = std::iter::from_fn(|| ep.poll_event()).collect();
    assert!(events.contains(&Event::DeliveryFailed { id, dst: addr(A) }));
    let names: Vec<String> = datagrams(&mut ep, now)
        .into_iter()
        .flat_map(|(_, m)| m.commands.into_iter().map(|c| c.name))
        .collect();
    assert_eq!(names, vec!["x.n".to_owned(), "mbus.bye".to_owned()]);
}
