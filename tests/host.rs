//! The library host on real sockets (the host-local group, each test on its
//! own free port): several entities in one process on one pair of sockets,
//! delivering to each other exactly once, added and removed while running,
//! and the typed errors of joining. Waits are for events, with generous
//! deadlines.

mod common;
mod procs;

use std::time::{Duration, Instant};

use mio::{Events, Interest, Poll, Token};
use rmbus::auth::CipherAlgo;
use rmbus::config::KeyEntry;
use rmbus::proto::{Delivery, Event, LeaveReason};
use rmbus::rpc::{Outcome, Reply, RpcEvent, DEFAULT_TIMEOUT};
use rmbus::runtime::{BindError, Bus, EntityId, Host};
use rmbus::wire::{Address, Command, Value};

const DEADLINE: Duration = Duration::from_secs(20);

fn addr(s: &str) -> Address {
    Address::parse(s).unwrap()
}

/// A host registered in its own poll.
struct Loop {
    host: Host,
    poll: Poll,
    /// Every event so far, with the entity it is for.
    seen: Vec<(EntityId, Event)>,
}

impl Loop {
    fn new(host: Host) -> Loop {
        let mut host = host;
        let poll = Poll::new().unwrap();
        poll.registry()
            .register(&mut host, Token(0), Interest::READABLE)
            .unwrap();
        Loop {
            host,
            poll,
            seen: Vec::new(),
        }
    }

    /// Drives the host until `done` holds for the events seen so far.
    fn until(&mut self, what: &str, done: impl Fn(&[(EntityId, Event)]) -> bool) {
        let until = Instant::now() + DEADLINE;
        let mut events = Events::with_capacity(16);
        while !done(&self.seen) {
            assert!(Instant::now() < until, "{what}: not within {DEADLINE:?}");
            let wait = self.host.timeout().map_or(Duration::from_millis(50), |t| {
                t.min(Duration::from_millis(50))
            });
            self.poll.poll(&mut events, Some(wait)).unwrap();
            self.host.on_readable().unwrap();
            self.host.on_timeout().unwrap();
            while let Some(e) = self.host.poll_event() {
                self.seen.push(e);
            }
        }
    }

    fn address(&self, id: EntityId) -> Address {
        self.host.endpoint(id).unwrap().local_address().clone()
    }

    fn knows(&self, id: EntityId, other: EntityId) -> bool {
        let other = self.address(other);
        self.host.endpoint(id).unwrap().peer(&other).is_some()
    }

    /// Drives until each of `ids` knows each other.
    fn meet(&mut self, ids: &[EntityId]) {
        for &a in ids {
            let _ = self
                .host
                .entity(a)
                .unwrap()
                .with_endpoint(|ep, now| ep.ping(now, &Address::empty()));
        }
        let pairs: Vec<(EntityId, Address)> = ids
            .iter()
            .flat_map(|&a| ids.iter().filter(move |&&b| b != a).map(move |&b| (a, b)))
            .map(|(a, b)| (a, self.address(b)))
            .collect();
        let joined = |seen: &[(EntityId, Event)]| {
            pairs.iter().all(|(a, b)| {
                seen.iter()
                    .any(|(id, e)| id == a && matches!(e, Event::PeerJoined(x) if x == b))
            })
        };
        self.until("the entities meet", joined);
        for &a in ids {
            for &b in ids {
                assert!(a == b || self.knows(a, b));
            }
        }
    }

    fn send(&mut self, from: EntityId, to: &Address, name: &str, delivery: Delivery) {
        let cmd = Command::new(name, vec![]);
        self.host
            .entity(from)
            .unwrap()
            .with_endpoint(|ep, now| ep.send(now, to, vec![cmd], delivery))
            .unwrap();
    }

    /// How many times `id` was handed command `name`.
    fn deliveries(&self, id: EntityId, name: &str) -> usize {
        self.seen
            .iter()
            .filter(|(i, e)| {
                *i == id && matches!(e, Event::Command { command, .. } if command.name == name)
            })
            .count()
    }
}

#[test]
fn two_siblings_get_each_others_unreliable_command_exactly_once() {
    let config = common::free_port_config();
    let mut l = Loop::new(Host::bind(&config).unwrap());
    let a = l.host.add(&addr("(app:test module:a)")).unwrap();
    let b = l.host.add(&addr("(app:test module:b)")).unwrap();
    l.meet(&[a, b]);
    let b_addr = l.address(b);
    l.send(a, &b_addr, "test.once", Delivery::Unreliable);
    // A second command after it, on the same path: once it is in, any
    // second copy of the first (in-process or from the kernel's loop) would
    // have arrived before it.
    l.send(a, &b_addr, "test.marker", Delivery::Unreliable);
    l.until("the marker arrives", |seen| {
        seen.iter().any(|(id, e)| {
            *id == b && matches!(e, Event::Command { command, .. } if command.name == "test.marker")
        })
    });
    assert_eq!(
        l.deliveries(b, "test.once"),
        1,
        "one delivery, not zero or two"
    );
    assert_eq!(l.deliveries(a, "test.once"), 0, "not to the sender");
    // The sender's own copies came back and were screened once for the
    // host (its entry in the shared table), not dropped unseen as the
    // echoes of a lone entity are; none was handed to the sender.
    let a_addr = l.address(a);
    assert!(l.host.core().shared().peers().any(|p| p.address == a_addr));
    let a_stats = l.host.endpoint(a).unwrap().stats();
    assert_eq!(a_stats.not_for_us, 0, "{a_stats:?}");
    assert_eq!(
        l.host.own_echoes(),
        0,
        "two entities: nothing is dropped unread"
    );
}

#[test]
fn siblings_and_an_outside_entity_exchange_reliable_commands_and_calls() {
    let config = common::free_port_config();
    let mut l = Loop::new(Host::bind(&config).unwrap());
    let a = l.host.add(&addr("(app:test module:a)")).unwrap();
    let b = l.host.add(&addr("(app:test module:b)")).unwrap();
    // An entity of its own, on sockets of its own, as another process would be.
    let (outside, outside_events) =
        rmbus::runtime::spawn(&config, &addr("(app:test module:outside)")).unwrap();
    let outside_addr = outside.with(|bus| bus.local_address().clone()).unwrap();
    l.meet(&[a, b]);
    l.until("the siblings hear the outside entity", |seen| {
        [a, b].iter().all(|who| {
            seen.iter()
                .any(|(id, e)| id == who && matches!(e, Event::PeerJoined(x) if *x == outside_addr))
        })
    });
    let b_addr = l.address(b);
    l.send(a, &b_addr, "test.reliable", Delivery::Reliable);
    l.send(a, &outside_addr, "test.out", Delivery::Reliable);
    l.until("both are acknowledged", |seen| {
        seen.iter()
            .filter(|(id, e)| *id == a && matches!(e, Event::Delivered { .. }))
            .count()
            == 2
    });
    assert_eq!(l.deliveries(b, "test.reliable"), 1);
    // Its bus thread queues the command before it sends the ack that we saw.
    let got = outside_events
        .try_iter()
        .filter(|e| matches!(e, Event::Command { command, .. } if command.name == "test.out"))
        .count();
    assert_eq!(got, 1, "the outside entity got it {got} times");

    // A sibling serves a call from the other sibling.
    l.host.entity(b).unwrap().serve("calc.triple", |req| {
        let n = req.args.first().and_then(Value::as_i64).unwrap_or(0);
        Reply::ok(vec![Value::Integer(3 * n)]).into()
    });
    let call = l
        .host
        .entity(a)
        .unwrap()
        .with_endpoint(|ep, now| {
            ep.rpc().call(
                now,
                &b_addr,
                "calc.triple",
                vec![Value::Integer(14)],
                DEFAULT_TIMEOUT,
            )
        })
        .unwrap();
    l.until("the call returns", |seen| {
        seen.iter().any(|(id, e)| {
            *id == a && matches!(e, Event::Rpc(RpcEvent::Returned { call: c, .. }) if *c == call)
        })
    });
    let outcome = l.seen.iter().find_map(|(_, e)| match e {
        Event::Rpc(RpcEvent::Returned {
            call: c, outcome, ..
        }) if *c == call => Some(outcome.clone()),
        _ => None,
    });
    assert_eq!(
        outcome,
        Some(Outcome::Returned(Reply::ok(vec![Value::Integer(42)])))
    );
}

#[test]
fn entities_are_added_and_removed_while_the_host_runs() {
    let config = common::free_port_config();
    let mut l = Loop::new(Host::bind(&config).unwrap());
    let a = l.host.add(&addr("(app:test module:a)")).unwrap();
    let b = l.host.add(&addr("(app:test module:b)")).unwrap();
    l.meet(&[a, b]);
    // A newcomer while the loop runs.
    let c = l.host.add(&addr("(app:test module:c)")).unwrap();
    assert_eq!(l.host.ids().collect::<Vec<_>>(), vec![a, b, c]);
    l.meet(&[a, b, c]);
    // C sends reliably and leaves before any ack can be read: the message
    // ends unacknowledged, and remove hands that outcome back.
    let b_addr = l.address(b);
    let c_addr = l.address(c);
    l.send(c, &b_addr, "test.late", Delivery::Reliable);
    let leftovers = l.host.remove(c).expect("c was there");
    assert!(l.host.endpoint(c).is_none());
    assert_eq!(l.host.len(), 2);
    let failed: Vec<_> = leftovers
        .iter()
        .filter(|e| matches!(e, Event::DeliveryFailed { dst, .. } if *dst == b_addr))
        .collect();
    assert_eq!(failed.len(), 1, "{leftovers:?}");
    l.until("both siblings see c leave", |seen| {
        [a, b].iter().all(|who| {
            seen.iter().any(|(id, e)| {
                id == who
                    && matches!(e, Event::PeerLeft { addr, reason: LeaveReason::Bye } if *addr == c_addr)
            })
        })
    });
    assert!(l.host.remove(c).is_none(), "removed once");
}

#[test]
fn a_lone_entity_never_reads_its_own_echoes() {
    let config = common::free_port_config();
    let mut bus = Bus::bind(&config, &addr("(app:test module:alone)")).unwrap();
    let mut poll = Poll::new().unwrap();
    poll.registry()
        .register(&mut bus, Token(0), Interest::READABLE)
        .unwrap();
    // A raw listener on the group shows when the ping has gone out.
    let listener = group_listener(&config);
    bus.with_endpoint(|ep, now| ep.ping(now, &Address::empty()))
        .unwrap();
    let until = Instant::now() + DEADLINE;
    let mut events = Events::with_capacity(8);
    let mut buf = [0u8; 2048];
    loop {
        assert!(Instant::now() < until, "its own ping never went out");
        match listener.recv_from(&mut buf) {
            Ok((n, _)) if String::from_utf8_lossy(&buf[..n]).contains("mbus.ping") => break,
            _ => {}
        }
        poll.poll(&mut events, Some(Duration::from_millis(10)))
            .unwrap();
        bus.on_readable().unwrap();
        while bus.poll_event().is_some() {}
    }
    // Multicast loop delivers every copy while `sendto` runs: by now ours
    // was either kept away by the kernel or is waiting to be read.
    bus.on_readable().unwrap();
    while bus.poll_event().is_some() {}
    if cfg!(target_os = "linux") {
        assert!(bus.filters_own_echoes(), "Linux has socket filters");
    }
    if bus.filters_own_echoes() {
        assert_eq!(bus.own_echoes(), 0, "the kernel kept the copy away");
    } else {
        assert!(bus.own_echoes() > 0, "the copy was read and dropped");
    }
    let stats = bus.endpoint().stats();
    assert_eq!(
        (stats.datagrams_in, stats.own_echoes),
        (0, 0),
        "the core never saw them"
    );
    assert_eq!(bus.endpoint().peers().count(), 0);
}

/// A plain socket joined to the bus's group on the loopback, non-blocking.
fn group_listener(config: &rmbus::config::Config) -> std::net::UdpSocket {
    let group = config.group_addr();
    let socket = socket2::Socket::new(
        socket2::Domain::IPV4,
        socket2::Type::DGRAM,
        Some(socket2::Protocol::UDP),
    )
    .unwrap();
    socket.set_reuse_address(true).unwrap();
    socket.set_reuse_port(true).unwrap();
    socket.bind(&group.into()).unwrap();
    let std::net::IpAddr::V4(ip) = group.ip() else {
        panic!("IPv4 group expected")
    };
    socket
        .join_multicast_v4(&ip, &std::net::Ipv4Addr::LOCALHOST)
        .unwrap();
    socket.set_nonblocking(true).unwrap();
    socket.into()
}

#[test]
fn joining_fails_with_a_typed_error() {
    let mut config = common::free_port_config();
    config.encryption = KeyEntry {
        algo: CipherAlgo::Des,
        key: vec![1, 2, 3],
    };
    let err = Bus::bind(&config, &addr("(app:test)")).unwrap_err();
    assert!(matches!(err, BindError::Keys(_)), "{err:?}");
    assert!(err.to_string().contains("DES"), "{err}");

    let mut config = common::free_port_config();
    config.scope = rmbus::config::Scope::LinkLocal;
    config.interface = Some("no-such-interface0".into());
    let err = Host::bind(&config).unwrap_err();
    assert!(matches!(err, BindError::Io(_)), "{err:?}");
    assert!(err.to_string().contains("no-such-interface0"), "{err}");
}

#[test]
fn a_datagram_opened_once_reaches_the_entity_it_is_for_and_updates_the_others() {
    let config = common::free_port_config();
    let mut l = Loop::new(Host::bind(&config).unwrap());
    let a = l.host.add(&addr("(app:test module:a)")).unwrap();
    let b = l.host.add(&addr("(app:test module:b)")).unwrap();
    let c = l.host.add(&addr("(app:test module:c)")).unwrap();
    l.meet(&[a, b, c]);
    let before = l.host.endpoint(c).unwrap().stats();
    let b_addr = l.address(b);
    l.send(a, &b_addr, "test.for-b", Delivery::Reliable);
    l.until("b has it and a its ack", |seen| {
        seen.iter()
            .any(|(id, e)| *id == a && matches!(e, Event::Delivered { .. }))
    });
    assert_eq!(l.deliveries(b, "test.for-b"), 1);
    assert_eq!(l.deliveries(c, "test.for-b"), 0);
    let after = l.host.endpoint(c).unwrap().stats();
    assert_eq!(
        (after.not_for_us, after.duplicates),
        (before.not_for_us, before.duplicates),
        "the host routed it to b alone: c was never handed it"
    );
    // A forged datagram is rejected once, for the host: every entity reports
    // the host's count.
    let forged = b"AAAAAAAAAAAAAAAAAAAAAA==\nmbus/1.0 1 1 U (app:x id:1-1@127.0.0.1) () ()\n";
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.set_multicast_ttl_v4(0).unwrap();
    socket2::SockRef::from(&socket)
        .set_multicast_if_v4(&std::net::Ipv4Addr::LOCALHOST)
        .unwrap();
    let rejected = |l: &Loop| -> Vec<u64> {
        [a, b, c]
            .iter()
            .map(|e| l.host.endpoint(*e).unwrap().stats().rejected_auth)
            .collect()
    };
    let was = rejected(&l);
    socket.send_to(forged, l.host.group_addr()).unwrap();
    let until = Instant::now() + DEADLINE;
    while rejected(&l).iter().zip(&was).any(|(now, then)| now == then) {
        assert!(Instant::now() < until, "the forged datagram was not seen");
        l.until("a turn", |_| true);
        let mut events = Events::with_capacity(4);
        l.poll
            .poll(&mut events, Some(Duration::from_millis(20)))
            .unwrap();
        l.host.on_readable().unwrap();
    }
    let now = rejected(&l);
    assert!(
        now.iter().zip(&was).all(|(n, w)| *n == w + 1),
        "{was:?} -> {now:?}"
    );
}

/// A reliable `volume.set (100)` and an unreliable `volume.set (5)`,
/// captured off the group and sent again once the receiver's duplicate
/// memory has let go of them, are not delivered a second time: the replay
/// guard remembers them for its 30 s window.
#[test]
fn a_captured_datagram_replayed_after_the_duplicate_memory_expired_is_not_delivered() {
    let config = common::free_port_config();
    let capture = group_listener(&config);
    let keys = config.keys().unwrap();
    let mut l = Loop::new(Host::bind(&config).unwrap());
    let mixer = l.host.add(&addr("(app:replay module:mixer)")).unwrap();
    let volume = l.host.add(&addr("(app:replay module:volume)")).unwrap();
    l.meet(&[mixer, volume]);
    let to = l.address(volume);
    for (arg, delivery) in [(100, Delivery::Reliable), (5, Delivery::Unreliable)] {
        let cmd = Command::new("volume.set", vec![Value::Integer(arg)]);
        l.host
            .entity(mixer)
            .unwrap()
            .with_endpoint(|ep, now| ep.send(now, &to, vec![cmd], delivery))
            .unwrap();
    }
    l.until(
        "both volume.set delivered and the reliable one acknowledged",
        |seen| {
            let set = seen
            .iter()
            .filter(|(id, e)| {
                *id == volume
                    && matches!(e, Event::Command { command, .. } if command.name == "volume.set")
            })
            .count();
            set == 2
                && seen
                    .iter()
                    .any(|(id, e)| *id == mixer && matches!(e, Event::Delivered { .. }))
        },
    );
    // The capture: the two datagrams that carry volume.set.
    let mut captured = Vec::new();
    let mut buf = vec![0; 65_536];
    while let Ok((n, _)) = capture.recv_from(&mut buf) {
        let datagram = buf[..n].to_vec();
        if let Ok(m) = rmbus::auth::open(&datagram, &keys) {
            if m.commands.iter().any(|c| c.name == "volume.set") && !captured.contains(&datagram) {
                captured.push(datagram);
            }
        }
    }
    assert_eq!(captured.len(), 2, "both datagrams captured");
    // The duplicate memory (10 s) lets go; the entities go on meanwhile.
    let memory = rmbus::proto::Timers::default().dup_memory;
    let after = Instant::now() + memory + Duration::from_millis(500);
    l.until("the duplicate memory has let go", |_| {
        Instant::now() >= after
    });
    let before = l.host.endpoint(volume).unwrap().stats();
    let replayer = procs::loopback_sender();
    for datagram in &captured {
        replayer.send_to(datagram, config.group_addr()).unwrap();
    }
    // A fresh command after them: once it is in, so are the replays.
    l.send(mixer, &to, "volume.marker", Delivery::Unreliable);
    l.until("the marker", |seen| {
        seen.iter().any(|(id, e)| {
            *id == volume
                && matches!(e, Event::Command { command, .. } if command.name == "volume.marker")
        })
    });
    assert_eq!(l.deliveries(volume, "volume.set"), 2, "no second delivery");
    let stats = l.host.endpoint(volume).unwrap().stats();
    assert_eq!(stats.rejected_replay - before.rejected_replay, 2);
    assert_eq!(
        stats.duplicates, before.duplicates,
        "not taken for retransmissions"
    );
}
