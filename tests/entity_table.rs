//! A full entity table (RFC 3259 §8 leaves its size to us): nobody is
//! locked out. A newcomer takes the place of an entity heard only once and
//! with nothing open with us; established entities survive a flood of
//! hellos; an evicted entity's duplicate memory is kept; the overflow is
//! logged once, then summed up each minute while it lasts.

mod common;
mod sim;

use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};

use common::*;
use rmbus::auth::{open, seal_raw};
use rmbus::proto::{Delivery, Endpoint, Event, LeaveReason};
use rmbus::wire::{Address, Command, Framing};
use sim::{endpoint_config, logs, start_logs, Link, Net};

/// A sealed hello from a made-up entity number `i`.
fn flood_hello(i: u32) -> Vec<u8> {
    let body = format!("mbus/1.0 0 1 U (app:flood id:{i}-1@10.9.0.1) () ()\nmbus.hello ()");
    seal_raw(body.as_bytes(), &md5(), Framing::Lf).unwrap()
}

fn flooder() -> SocketAddr {
    "10.9.0.1:47000".parse().unwrap()
}

#[test]
fn established_peers_survive_a_20000_hello_flood_untouched() {
    let mut net: Net<Endpoint> = Net::new(31, Link::perfect());
    let (a, b, c) = (net.add(""), net.add(""), net.add(""));
    assert!(net.run_until_converged(Duration::from_secs(10)));
    net.run_for(Duration::from_secs(10));
    let max_peers = rmbus::proto::Limits::default().max_peers;
    for i in 0..20_000 {
        net.inject(a, flooder(), &flood_hello(i));
    }
    let stats = net.nodes[a].ep.stats();
    assert_eq!(
        net.nodes[a].ep.entities(),
        max_peers + 1,
        "the table is full"
    );
    assert_eq!(stats.evicted, 20_000 - (max_peers as u64 - 2));
    assert_eq!(stats.untracked, 0);
    let lost: Vec<(Address, LeaveReason)> = net.events(a, |e| match e {
        Event::PeerLeft { addr, reason } => Some((addr.clone(), *reason)),
        _ => None,
    });
    let (addr_b, addr_c) = (net.address(b), net.address(c));
    assert!(
        lost.iter()
            .all(|(addr, reason)| *reason == LeaveReason::Evicted
                && *addr != addr_b
                && *addr != addr_c),
        "only flood entities were evicted"
    );
    assert!(net.nodes[a].ep.peer(&addr_b).is_some());
    assert!(net.nodes[a].ep.peer(&addr_c).is_some());
    // They still talk reliably, both ways, and a newcomer joins.
    let addr_a = net.address(a);
    let to_b = net
        .send(
            a,
            &addr_b,
            vec![Command::new("x.y", vec![])],
            Delivery::Reliable,
        )
        .unwrap();
    let from_c = net
        .send(
            c,
            &addr_a,
            vec![Command::new("x.z", vec![])],
            Delivery::Reliable,
        )
        .unwrap();
    let d = net.add("");
    let addr_d = net.address(d);
    net.run_for(Duration::from_secs(5));
    assert!(
        net.nodes[a].ep.peer(&addr_d).is_some(),
        "the newcomer is known"
    );
    let from_d = net
        .send(
            d,
            &addr_a,
            vec![Command::new("x.d", vec![])],
            Delivery::Reliable,
        )
        .unwrap();
    net.run_for(Duration::from_secs(2));
    let delivered = |n: usize, id| {
        net.events(n, |e| {
            matches!(e, Event::Delivered { id: got, .. } if *got == id).then_some(())
        })
        .len()
    };
    assert_eq!(
        (
            delivered(a, to_b),
            delivered(c, from_c),
            delivered(d, from_d)
        ),
        (1, 1, 1)
    );
    let got = |name: &str| {
        net.events(a, |e| match e {
            Event::Command { command, .. } if command.name == name => Some(()),
            _ => None,
        })
        .len()
    };
    assert_eq!((got("x.z"), got("x.d")), (1, 1), "each delivered once");
    assert!(net
        .events(a, |e| {
            matches!(e, Event::PeerLeft { addr, .. } if *addr == addr_b || *addr == addr_c)
                .then_some(())
        })
        .is_empty());
}

/// An entity evicted right after its reliable message was delivered comes
/// back with a retransmission of it: acknowledged again, not delivered twice.
#[test]
fn an_evicted_entity_is_still_not_delivered_twice() {
    let mut config = endpoint_config(3);
    config.limits.max_peers = 1;
    let now = Instant::now();
    let me = addr(B);
    let mut ep = Endpoint::new(config, me.clone(), now, SystemTime::now()).unwrap();
    let from: SocketAddr = "192.168.1.1:40000".parse().unwrap();
    let reliable = seal_raw(
        format!("mbus/1.0 7 1 R {A} {B} ()\nx.once ()").as_bytes(),
        &md5(),
        Framing::Lf,
    )
    .unwrap();
    let acks_of = |ep: &mut Endpoint, at| -> Vec<u32> {
        std::iter::from_fn(|| ep.poll_transmit(at))
            .filter_map(|t| open(&t.contents, &md5()).ok())
            .filter(|m| m.header.dst == addr(A))
            .flat_map(|m| m.header.acks)
            .collect()
    };
    let commands = |ep: &mut Endpoint| {
        std::iter::from_fn(|| ep.poll_event())
            .filter(|e| matches!(e, Event::Command { .. }))
            .count()
    };
    ep.handle_datagram(now, from, &reliable);
    assert_eq!(commands(&mut ep), 1);
    assert_eq!(acks_of(&mut ep, now), vec![7]);
    // A newcomer takes A's place: A was heard once and owes nothing.
    let later = now + Duration::from_millis(100);
    ep.handle_datagram(later, flooder(), &flood_hello(1));
    assert!(ep.peer(&addr(A)).is_none(), "A evicted");
    let left: Vec<Event> = std::iter::from_fn(|| ep.poll_event()).collect();
    assert!(left.contains(&Event::PeerLeft {
        addr: addr(A),
        reason: LeaveReason::Evicted
    }));
    // A retransmits (its ack was lost): re-acknowledged, not redelivered.
    let again = now + Duration::from_millis(300);
    ep.handle_datagram(again, from, &reliable);
    assert_eq!(commands(&mut ep), 0, "not delivered twice");
    assert_eq!(acks_of(&mut ep, again), vec![7]);
    assert_eq!(ep.stats().duplicates, 1);
    assert!(
        ep.peer(&addr(A)).is_some(),
        "A is back, the newcomer evicted"
    );
}

/// One warning when the table first overflows, a summary each minute while
/// it lasts, and a word when it stops.
#[test]
fn an_overflow_is_logged_once_then_summed_up_each_minute() {
    start_logs();
    let mut config = endpoint_config(5);
    config.limits.max_peers = 4;
    let start = Instant::now();
    let mut ep = Endpoint::new(config, addr(B), start, SystemTime::now()).unwrap();
    let mut n = 0;
    // 200 s of 10 newcomers a second, then quiet: summaries at 60, 120,
    // 180 and 240 s, and the end of it at 300 s.
    for second in 0..310u64 {
        let at = start + Duration::from_secs(second);
        if second < 200 {
            for _ in 0..10 {
                ep.handle_datagram(at, flooder(), &flood_hello(n));
                n += 1;
            }
        }
        ep.handle_timeout(at);
        while ep.poll_transmit(at).is_some() {}
        while ep.poll_event().is_some() {}
    }
    let logs = logs();
    let count = |text: &str| logs.matches(text).count();
    assert_eq!(count("the entity table is full"), 1, "{logs}");
    assert_eq!(count("the entity table is still full"), 4, "{logs}");
    assert_eq!(
        count("no newcomer overflowed the entity table"),
        1,
        "{logs}"
    );
    assert!(
        logs.contains("in the last minute 600 entities were evicted"),
        "{logs}"
    );
    assert_eq!(ep.stats().evicted, 2000 - 4);
}
