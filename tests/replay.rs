//! Replays, out: simulation tests of the replay guard in a whole endpoint.
//! A peer's datagrams are made here, sealed with the bus key, and handed to
//! the endpoint at chosen instants; its wall clock starts at T0.

mod common;
mod sim;

use std::net::SocketAddr;
use std::time::{Duration, Instant, UNIX_EPOCH};

use common::*;
use rmbus::auth::{open, seal};
use rmbus::proto::{
    Delivery, Endpoint, EndpointConfig, Event, ReplayGuard, ReplayPolicy, ReplayVerdict,
};
use rmbus::wire::{Address, Command, Framing, Header, Message, MessageType, Value};
use sim::endpoint_config;

/// Our wall clock at the start, in ms.
const T0: u64 = 1_700_000_000_000;
const US: &str = "(app:volume module:engine id:1-1@127.0.0.1)";
const PEER: &str = "(app:mixer module:gui id:2-1@127.0.0.1)";

fn from() -> SocketAddr {
    "127.0.0.1:4000".parse().unwrap()
}

/// The endpoint under test, and the instant its clock reads T0.
fn endpoint(config: EndpointConfig) -> (Endpoint, Instant) {
    let start = Instant::now();
    let wall = UNIX_EPOCH + Duration::from_millis(T0);
    (Endpoint::new(config, addr(US), start, wall).unwrap(), start)
}

fn hostlocal() -> EndpointConfig {
    EndpointConfig {
        replay: ReplayPolicy {
            clock_check: true,
            ..ReplayPolicy::default()
        },
        ..endpoint_config(1)
    }
}

/// A sealed datagram from `src` with SeqNum `seq` and the TimeStamp `ts`
/// as written.
fn datagram(
    src: &str,
    seq: u32,
    ts: u64,
    kind: MessageType,
    dst: &str,
    cmds: &[Command],
) -> Vec<u8> {
    let msg = Message {
        header: Header {
            seq,
            timestamp: ts,
            kind,
            src: addr(src),
            dst: addr(dst),
            acks: vec![],
        },
        commands: cmds.to_vec(),
    };
    seal(&msg, &md5(), Framing::Lf).unwrap()
}

fn volume_set(n: i64) -> Vec<Command> {
    vec![Command::new("volume.set", vec![Value::Integer(n)])]
}

/// What handing `bytes` to the endpoint at `at` gave: the commands
/// delivered, and the SeqNums acknowledged to each destination.
struct Outcome {
    delivered: Vec<Command>,
    acks: Vec<(Address, u32)>,
}

fn feed(ep: &mut Endpoint, at: Instant, bytes: &[u8]) -> Outcome {
    ep.handle_datagram(at, from(), bytes);
    let delivered = std::iter::from_fn(|| ep.poll_event())
        .filter_map(|e| match e {
            Event::Command { command, .. } => Some(command),
            _ => None,
        })
        .collect();
    let acks = std::iter::from_fn(|| ep.poll_transmit(at))
        .filter_map(|t| open(&t.contents, &md5()).ok())
        .flat_map(|m| {
            let dst = m.header.dst.clone();
            m.header.acks.into_iter().map(move |s| (dst.clone(), s))
        })
        .collect();
    Outcome { delivered, acks }
}

fn secs(start: Instant, s: u64) -> Instant {
    start + Duration::from_secs(s)
}

fn replays(ep: &Endpoint) -> u64 {
    ep.stats().rejected_replay
}

#[test]
fn replays_inside_the_window_are_not_delivered_and_a_reliable_one_is_acknowledged_again() {
    let (mut ep, start) = endpoint(endpoint_config(1));
    let reliable = datagram(PEER, 1, T0, MessageType::Reliable, US, &volume_set(100));
    let unreliable = datagram(
        PEER,
        2,
        T0 + 10,
        MessageType::Unreliable,
        US,
        &volume_set(5),
    );
    let first = feed(&mut ep, start, &reliable);
    assert_eq!(first.delivered, volume_set(100));
    assert_eq!(first.acks, [(addr(PEER), 1)]);
    assert_eq!(feed(&mut ep, start, &unreliable).delivered, volume_set(5));
    // 12 s later the duplicate memory (10 s) has let go: the guard has not.
    let later = secs(start, 12);
    ep.handle_timeout(later);
    let again = feed(&mut ep, later, &reliable);
    assert!(
        again.delivered.is_empty(),
        "the reliable copy is not delivered"
    );
    assert_eq!(again.acks, [(addr(PEER), 1)], "but acknowledged again");
    let again = feed(&mut ep, later, &unreliable);
    assert!(again.delivered.is_empty() && again.acks.is_empty());
    assert_eq!(replays(&ep), 2);
    assert_eq!(ep.stats().duplicates, 0);
}

#[test]
fn replays_outside_the_window_are_dropped_unacknowledged() {
    let (mut ep, start) = endpoint(endpoint_config(1));
    let reliable = datagram(PEER, 1, T0, MessageType::Reliable, US, &volume_set(100));
    let unreliable = datagram(PEER, 2, T0, MessageType::Unreliable, US, &volume_set(5));
    feed(&mut ep, start, &reliable);
    feed(&mut ep, start, &unreliable);
    // The peer goes on talking: 40 s later its TimeStamps are 40 s on.
    let later = secs(start, 40);
    let hello = datagram(PEER, 3, T0 + 40_000, MessageType::Unreliable, "()", &[]);
    feed(&mut ep, later, &hello);
    for copy in [&reliable, &unreliable] {
        let o = feed(&mut ep, later, copy);
        assert!(
            o.delivered.is_empty() && o.acks.is_empty(),
            "older than newest − W"
        );
    }
    assert_eq!(replays(&ep), 2);
    // A peer silent since: its old datagrams are still refused once the
    // window has moved past them (and a fresh one from it still goes in).
    let (mut quiet, start) = endpoint(endpoint_config(2));
    feed(&mut quiet, start, &unreliable);
    let later = secs(start, 40);
    assert!(feed(&mut quiet, later, &unreliable).delivered.is_empty());
    let fresh = datagram(
        PEER,
        3,
        T0 + 40_000,
        MessageType::Unreliable,
        US,
        &volume_set(7),
    );
    assert_eq!(feed(&mut quiet, later, &fresh).delivered, volume_set(7));
    assert_eq!(replays(&quiet), 1);
}

#[test]
fn a_peer_restarting_under_the_same_address_is_not_a_replay() {
    let (mut ep, start) = endpoint(endpoint_config(1));
    for seq in 0..3 {
        let d = datagram(
            PEER,
            seq,
            T0 + u64::from(seq),
            MessageType::Reliable,
            US,
            &volume_set(1),
        );
        assert_eq!(feed(&mut ep, start, &d).delivered.len(), 1);
    }
    // It restarts 2 s later: SeqNums from 0 again, later TimeStamps.
    let later = secs(start, 2);
    for seq in 0..3 {
        let d = datagram(
            PEER,
            seq,
            T0 + 2000 + u64::from(seq),
            MessageType::Reliable,
            US,
            &volume_set(2),
        );
        let o = feed(&mut ep, later, &d);
        assert_eq!(o.delivered, volume_set(2), "SeqNum {seq} after the restart");
        assert!(o.acks.contains(&(addr(PEER), seq)));
    }
    assert_eq!((replays(&ep), ep.stats().duplicates), (0, 0));
}

#[test]
fn a_retransmission_5_s_late_is_acknowledged_not_delivered_and_not_a_replay() {
    // UCL retransmits with the first TimeStamp for up to 5 s.
    let (mut ep, start) = endpoint(hostlocal());
    let d = datagram(PEER, 9, T0, MessageType::Reliable, US, &volume_set(100));
    assert_eq!(feed(&mut ep, start, &d).delivered.len(), 1);
    for s in [1, 3, 5] {
        let at = secs(start, s);
        ep.handle_timeout(at);
        let o = feed(&mut ep, at, &d);
        assert!(o.delivered.is_empty(), "at {s} s");
        assert_eq!(o.acks, [(addr(PEER), 9)], "acknowledged again at {s} s");
    }
    assert_eq!((ep.stats().duplicates, replays(&ep)), (3, 0));
}

#[test]
fn a_seconds_stamped_pymbus_peer_without_id_is_heard_acknowledged_exactly_and_guarded() {
    // pyMbus: `mbus/1.0 3 1128277610 R …`, a source address without `id`.
    const PYMBUS: &str = "(app:pymbus module:panel)";
    let (mut ep, start) = endpoint(hostlocal());
    let now_s = T0 / 1000;
    let notify = |seq| {
        datagram(
            PYMBUS,
            seq,
            now_s,
            MessageType::Reliable,
            US,
            &[Command::new(
                "desktop.configuration.notify",
                vec![
                    Value::symbol("gex/panel/plugin"),
                    Value::Integer(i64::from(seq)),
                ],
            )],
        )
    };
    // Two in the same second: distinct SeqNums, both fresh.
    for seq in [3, 4] {
        let o = feed(&mut ep, start, &notify(seq));
        assert_eq!(o.delivered.len(), 1, "SeqNum {seq}");
        assert_eq!(
            o.acks,
            [(addr(PYMBUS), seq)],
            "acknowledged to that exact address"
        );
    }
    assert!(ep.peer(&addr(PYMBUS)).is_some(), "in the entity table");
    // Its copy 15 s later (beyond the duplicate memory) is a replay.
    let later = secs(start, 15);
    ep.handle_timeout(later);
    let o = feed(&mut ep, later, &notify(3));
    assert!(o.delivered.is_empty());
    assert_eq!(replays(&ep), 1);
    // Seconds are read as seconds: a stamp 40 s back is out of the window.
    let stale = datagram(
        PYMBUS,
        5,
        now_s - 40,
        MessageType::Unreliable,
        US,
        &volume_set(1),
    );
    assert!(feed(&mut ep, later, &stale).delivered.is_empty());
    assert_eq!(replays(&ep), 2);
}

#[test]
fn an_ack_to_an_id_less_address_settles_only_the_exact_entity() {
    // We send reliably to P; P's ack goes to us. An ack from P in a message
    // to another destination (an id-less one that contains us, or another
    // entity) acknowledges nothing of ours.
    let (mut ep, start) = endpoint(endpoint_config(1));
    feed(
        &mut ep,
        start,
        &datagram(PEER, 0, T0, MessageType::Unreliable, "()", &[]),
    );
    let id = ep
        .send(start, &addr(PEER), volume_set(1), Delivery::Reliable)
        .unwrap();
    let sent: Vec<Message> = std::iter::from_fn(|| ep.poll_transmit(start))
        .filter_map(|t| open(&t.contents, &md5()).ok())
        .collect();
    let seq = sent
        .iter()
        .find(|m| !m.commands.is_empty())
        .unwrap()
        .header
        .seq;
    let ack_to = |n: u32, dst: &str| {
        let text = format!("mbus/1.0 {n} {} U {PEER} {dst} ({seq})", T0 + u64::from(n));
        seal(
            &Message::parse(text.as_bytes()).unwrap(),
            &md5(),
            Framing::Lf,
        )
        .unwrap()
    };
    let delivered = |ep: &mut Endpoint| {
        std::iter::from_fn(|| ep.poll_event())
            .any(|e| matches!(e, Event::Delivered { id: d, .. } if d == id))
    };
    for (n, dst) in [
        (1, "(app:volume module:engine)"),
        (2, "(app:other id:9-1@127.0.0.1)"),
    ] {
        ep.handle_datagram(start, from(), &ack_to(n, dst));
        assert!(!delivered(&mut ep), "an ack to {dst} is not ours");
    }
    ep.handle_datagram(start, from(), &ack_to(3, US));
    assert!(delivered(&mut ep), "the ack to exactly us is");
}

#[test]
fn on_a_host_local_bus_a_stamp_far_from_our_clock_is_refused_and_on_a_link_it_is_not() {
    // A source never seen: only the clock check can tell its datagram is old.
    let old = datagram(
        PEER,
        1,
        T0 - 60_000,
        MessageType::Unreliable,
        US,
        &volume_set(5),
    );
    let (mut host, start) = endpoint(hostlocal());
    assert!(feed(&mut host, start, &old).delivered.is_empty());
    assert_eq!(replays(&host), 1);
    let (mut link, start) = endpoint(endpoint_config(1));
    assert_eq!(feed(&mut link, start, &old).delivered, volume_set(5));
    // The check follows the clock the driver reads (after a suspend, say).
    let (mut resumed, start) = endpoint(hostlocal());
    let hour = Duration::from_secs(3600);
    resumed.set_wall_clock(start, UNIX_EPOCH + Duration::from_millis(T0) + hour);
    let now = datagram(
        PEER,
        1,
        T0 + 3_600_000,
        MessageType::Unreliable,
        US,
        &volume_set(6),
    );
    assert_eq!(feed(&mut resumed, start, &now).delivered, volume_set(6));
    resumed.ping(start, &Address::empty()).unwrap();
    let stamp = std::iter::from_fn(|| resumed.poll_transmit(start))
        .filter_map(|t| open(&t.contents, &md5()).ok())
        .map(|m| m.header.timestamp)
        .last()
        .unwrap();
    assert_eq!(stamp, T0 + 3_600_000, "our TimeStamps follow it too");
}

#[test]
fn off_lets_copies_through_as_rfc_3259_has_it() {
    let config = EndpointConfig {
        replay: ReplayPolicy {
            window: None,
            clock_check: true,
        },
        ..endpoint_config(1)
    };
    let (mut ep, start) = endpoint(config);
    let d = datagram(PEER, 2, 1, MessageType::Unreliable, US, &volume_set(5));
    assert_eq!(feed(&mut ep, start, &d).delivered.len(), 1);
    assert_eq!(feed(&mut ep, start, &d).delivered.len(), 1);
    assert_eq!(replays(&ep), 0);
}

#[test]
fn at_its_bound_the_memory_shrinks_the_window_and_lets_no_copy_through() {
    let mut config = endpoint_config(1);
    config.limits.max_replay_entries = 16;
    let (mut ep, start) = endpoint(config);
    let sends: Vec<Vec<u8>> = (0..200)
        .map(|seq| {
            datagram(
                PEER,
                seq,
                T0 + u64::from(seq),
                MessageType::Unreliable,
                US,
                &volume_set(1),
            )
        })
        .collect();
    for d in &sends {
        assert_eq!(
            feed(&mut ep, start, d).delivered.len(),
            1,
            "every fresh one is delivered"
        );
    }
    for d in [&sends[0], &sends[100], &sends[199]] {
        assert!(
            feed(&mut ep, start, d).delivered.is_empty(),
            "no copy goes through"
        );
    }
    assert_eq!(replays(&ep), 3);
    // The guard itself stays within its bound, whatever the sources.
    let mut guard = ReplayGuard::new(ReplayPolicy::default(), 16);
    for i in 0..1000u32 {
        let src = addr(&format!("(app:flood id:{}-1@127.0.0.1)", i % 40));
        assert!(guard.check(&src, i, T0 + u64::from(i), T0).is_fresh());
        assert!(guard.remembered() <= 16);
    }
    let last = addr("(app:flood id:39-1@127.0.0.1)");
    assert!(matches!(
        guard.check(&last, 999, T0 + 999, T0),
        ReplayVerdict::Seen { .. }
    ));
}

#[test]
fn a_peer_sending_at_the_rate_of_the_window_keeps_being_heard() {
    // A steady peer for twice the window, one datagram every 100 ms:
    // nothing fresh is refused as the window moves.
    let (mut ep, start) = endpoint(hostlocal());
    for i in 0..600u32 {
        let at = start + Duration::from_millis(u64::from(i) * 100);
        ep.handle_timeout(at);
        let d = datagram(
            PEER,
            i,
            T0 + u64::from(i) * 100,
            MessageType::Unreliable,
            US,
            &volume_set(1),
        );
        assert_eq!(feed(&mut ep, at, &d).delivered.len(), 1, "datagram {i}");
    }
    assert_eq!(replays(&ep), 0);
}
