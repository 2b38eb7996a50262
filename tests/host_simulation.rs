//! Hosts of many entities ([`rmbus::proto::Entities`]) on the simulated
//! network: the entity table, the replay guard and the expiry kept once per
//! host, datagrams routed only to the entities they designate, under loss.
//! `RMBUS_SIM_SEEDS=N` runs N seeds instead of the default few.

mod sim;

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use rmbus::auth::seal;
use rmbus::proto::{Delivery, Entities, EntityId, Event, LeaveReason, MsgId};
use rmbus::wire::{Address, Command, Framing, Header, Message, MessageType, Value};

use sim::{endpoint_config, for_seeds, keys, Link, Net};

type HostNet = Net<Entities>;

/// The wall clock every simulated host starts from.
fn epoch() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000)
}

/// Adds a host (node) with `entities` entities `(app:sim host:h<n> e:<k>
/// id:<k>-<n>@127.0.0.1)`; returns its node index and their addresses.
fn add_host(
    net: &mut HostNet,
    seed: u64,
    entities: usize,
    max_peers: usize,
) -> (usize, Vec<Address>) {
    let n = net.nodes.len();
    let mut template = endpoint_config(seed.wrapping_mul(1000).wrapping_add(n as u64));
    template.limits.max_peers = max_peers;
    let mut host = Entities::new(&template, net.now, epoch());
    let mut addresses = Vec::new();
    for k in 0..entities {
        let local = Address::parse(&format!("(app:sim host:h{n} e:{k} id:{k}-{n}@127.0.0.1)"))
            .expect("a valid address");
        let mut config = template.clone();
        config.seed = template.seed.wrapping_mul(7919).wrapping_add(k as u64);
        host.add(config, local.clone(), net.now, epoch())
            .expect("a new address");
        addresses.push(local);
    }
    (net.push(host), addresses)
}

/// The id of the entity with address `a` on node `node`.
fn id_of(net: &HostNet, node: usize, a: &Address) -> EntityId {
    net.nodes[node].ep.id_of(a).expect("an entity of that node")
}

/// Which host's table lacks which entities, and how many each entity sees.
fn missing(net: &HostNet, hosts: &[(usize, Vec<Address>)]) -> String {
    let mut out = String::new();
    for (node, _) in hosts {
        let shared = net.nodes[*node].ep.shared();
        let lacking: Vec<String> = hosts
            .iter()
            .flat_map(|(_, a)| a.iter())
            .filter(|a| shared.peers().all(|p| p.address != **a))
            .map(|a| a.to_string())
            .collect();
        let seen: Vec<usize> = net.nodes[*node]
            .ep
            .ids()
            .filter_map(|id| net.nodes[*node].ep.endpoint(id).map(|v| v.entities()))
            .collect();
        out += &format!(
            "node {node}: table {} lacking {lacking:?}, entities see {}..={}; ",
            shared.len(),
            seen.iter().min().unwrap_or(&0),
            seen.iter().max().unwrap_or(&0)
        );
    }
    out
}

/// True once every entity of every node sees `total` entities.
fn everyone_sees(net: &HostNet, total: usize) -> bool {
    net.nodes.iter().all(|node| {
        node.ep
            .ids()
            .all(|id| node.ep.endpoint(id).is_some_and(|v| v.entities() == total))
    })
}

#[test]
fn hundreds_of_entities_on_three_hosts_get_every_reliable_message_once_under_loss() {
    for_seeds(2, |seed| {
        let mut net: HostNet = Net::new(seed, Link::lossy(0.10));
        let hosts: Vec<(usize, Vec<Address>)> = (0..3)
            .map(|_| add_host(&mut net, seed, 100, 16_384))
            .collect();
        // Each entity says hello about every 52 s here (the interval grows
        // with the entity count, to 256 counted; RFC 3259 §8), and a host
        // learns it only from them: at 10 % loss, some host missed all of
        // one entity's three hellos in 120 s in about every other run
        // (600 pairs, each 1 in 1,000). Within 300 s (six hellos), about
        // once in 1,700 runs.
        assert!(
            net.run_until_true(Duration::from_secs(300), |n| everyone_sees(n, 300)),
            "seed {seed}: every entity of every host learns all 300; {}",
            missing(&net, &hosts)
        );
        for (node, _) in &hosts {
            assert_eq!(
                net.nodes[*node].ep.shared().len(),
                300,
                "one table per host"
            );
        }
        // A datagram to () reaches every entity once: the siblings through
        // the host's own loop, the others over the lossy link (a host hands
        // it to all its entities or, lost, to none), never the sender.
        let (first, first_addrs) = &hosts[0];
        let shouter = id_of(&net, *first, &first_addrs[0]);
        let shout = Command::new("test.everyone", vec![]);
        net.with(*first, |ep, now| {
            ep.with(shouter, |ep| {
                ep.send(now, &Address::empty(), vec![shout], Delivery::Unreliable)
            })
        })
        .expect("the entity exists")
        .expect("an unreliable send");
        net.run_for(Duration::from_millis(100));
        for (node, addresses) in &hosts {
            let counts: Vec<usize> = addresses
                .iter()
                .map(|a| {
                    let id = id_of(&net, *node, a);
                    net.nodes[*node]
                        .events
                        .iter()
                        .filter(|(_, (to, e))| {
                            *to == id
                                && matches!(e, Event::Command { command, .. } if command.name == "test.everyone")
                        })
                        .count()
                })
                .collect();
            if node == first {
                assert_eq!(counts[0], 0, "seed {seed}: never the sender");
                assert!(
                    counts[1..].iter().all(|n| *n == 1),
                    "seed {seed}: each sibling once"
                );
            } else {
                let all = counts.iter().all(|n| *n == 1);
                let none = counts.iter().all(|n| *n == 0);
                assert!(
                    all || none,
                    "seed {seed}: all of a host's entities once, or none"
                );
            }
        }
        // Each entity sends one reliable command to its counterpart on the
        // next host and one to a sibling.
        let mut sent: HashMap<(usize, EntityId, MsgId), (Address, String)> = HashMap::new();
        for (h, (node, addresses)) in hosts.iter().enumerate() {
            let (_, next) = &hosts[(h + 1) % hosts.len()];
            for (k, me) in addresses.iter().enumerate() {
                let id = id_of(&net, *node, me);
                for (to, what) in [
                    (next[k].clone(), "test.across"),
                    (addresses[(k + 1) % addresses.len()].clone(), "test.sibling"),
                ] {
                    let name = format!("{what}.{h}.{k}");
                    let cmd = Command::new(&name, vec![Value::Integer(k as i64)]);
                    let msg = net
                        .with(*node, |ep, now| {
                            ep.with(id, |ep| ep.send(now, &to, vec![cmd], Delivery::Reliable))
                        })
                        .expect("the entity exists")
                        .expect("a known destination");
                    sent.insert((*node, id, msg), (to, name));
                }
            }
        }
        let settled = |net: &HostNet| -> usize {
            net.nodes
                .iter()
                .map(|n| {
                    n.events
                        .iter()
                        .filter(|(_, (_, e))| {
                            matches!(e, Event::Delivered { .. } | Event::DeliveryFailed { .. })
                        })
                        .count()
                })
                .sum()
        };
        assert!(
            net.run_until_true(Duration::from_secs(30), |n| settled(n) == 600),
            "seed {seed}: every send settles, delivered or failed"
        );
        // What each entity was handed, by command name.
        let mut received: HashMap<(Address, String), usize> = HashMap::new();
        for node in &net.nodes {
            for (_, (id, e)) in &node.events {
                if let Event::Command { command, .. } = e {
                    let me = node
                        .ep
                        .endpoint(*id)
                        .expect("still there")
                        .local_address()
                        .clone();
                    *received.entry((me, command.name.clone())).or_default() += 1;
                }
            }
        }
        assert!(
            received.values().all(|n| *n == 1),
            "seed {seed}: never twice"
        );
        let mut delivered = 0;
        for (n, node) in net.nodes.iter().enumerate() {
            for (_, (id, e)) in &node.events {
                if let Event::Delivered { id: msg, .. } = e {
                    let (to, name) = &sent[&(n, *id, *msg)];
                    assert_eq!(
                        received.get(&(to.clone(), name.clone())),
                        Some(&1),
                        "seed {seed}: delivered means {to} had {name}"
                    );
                    delivered += 1;
                }
            }
        }
        assert!(
            delivered >= 570,
            "seed {seed}: {delivered} of 600 delivered at 10 % loss"
        );
        // The host screened each datagram once: no entity was handed one
        // that was not for it.
        for node in &net.nodes {
            for id in node.ep.ids() {
                let stats = node.ep.endpoint(id).expect("there").stats();
                assert_eq!(stats.not_for_us, 0, "seed {seed}: routed, not broadcast");
            }
        }
    });
}

#[test]
fn a_leaving_entity_reaches_the_other_hosts_once_and_only_followers_hear_of_it() {
    for_seeds(3, |seed| {
        let mut net: HostNet = Net::new(seed, Link::perfect());
        let (a, a_addrs) = add_host(&mut net, seed, 20, 16_384);
        let (b, b_addrs) = add_host(&mut net, seed, 20, 16_384);
        // Half of b's entities do not follow the table.
        for quiet in &b_addrs[10..] {
            let id = id_of(&net, b, quiet);
            net.with(b, |ep, _| ep.with(id, |ep| ep.set_peer_events(false)));
        }
        assert!(net.run_until_true(Duration::from_secs(60), |n| everyone_sees(n, 40)));
        // Only hellos so far: they changed the shared tables and reached no
        // entity.
        for node in &net.nodes {
            for id in node.ep.ids() {
                let seen = node.ep.endpoint(id).expect("there").stats().datagrams_in;
                assert_eq!(seen, 0, "seed {seed}: hellos stay in the host's table");
            }
        }
        let leaving = id_of(&net, a, &a_addrs[0]);
        let before: usize = net.nodes[b].events.len();
        net.with(a, |ep, now| ep.remove(leaving, now))
            .expect("it was there");
        net.run_for(Duration::from_millis(200));
        assert_eq!(net.nodes[a].ep.shared().len(), 39);
        assert_eq!(
            net.nodes[b].ep.shared().len(),
            39,
            "seed {seed}: its bye went through"
        );
        let left: Vec<EntityId> = net.nodes[b].events[before..]
            .iter()
            .filter_map(|(_, (id, e))| match e {
                Event::PeerLeft { addr, reason } if *addr == a_addrs[0] => {
                    assert_eq!(*reason, LeaveReason::Bye);
                    Some(*id)
                }
                _ => None,
            })
            .collect();
        let followers: Vec<EntityId> = b_addrs[..10].iter().map(|x| id_of(&net, b, x)).collect();
        assert_eq!(
            left, followers,
            "seed {seed}: once each, to those that follow"
        );
    });
}

#[test]
fn a_flood_of_invented_entities_does_not_evict_the_peer_an_entity_is_sending_to() {
    let mut net: HostNet = Net::new(7, Link::perfect());
    let (a, a_addrs) = add_host(&mut net, 7, 4, 16);
    let (b, b_addrs) = add_host(&mut net, 7, 1, 16_384);
    assert!(net.run_until_true(Duration::from_secs(30), |n| everyone_sees(n, 5)));
    // b goes quiet (partitioned), while a's first entity sends to it.
    net.partition = Some(vec![0, 1]);
    let _ = b;
    let sender = id_of(&net, a, &a_addrs[0]);
    let to = b_addrs[0].clone();
    let cmd = Command::new("test.held", vec![]);
    net.with(a, |ep, now| {
        ep.with(sender, |ep| {
            ep.send(now, &to, vec![cmd], Delivery::Reliable)
        })
    })
    .expect("there")
    .expect("known");
    // 100 invented entities say hello to a's host: the table holds 16.
    let from = "127.0.0.1:60000".parse().expect("an address");
    for i in 0..100u32 {
        let hello = Message {
            header: Header {
                seq: 0,
                timestamp: 1_700_000_000_000 + u64::from(i),
                kind: MessageType::Unreliable,
                src: Address::parse(&format!("(app:flood id:{i}@10.0.0.1)")).expect("valid"),
                dst: Address::empty(),
                acks: vec![],
            },
            commands: vec![Command::new("mbus.hello", vec![])],
        };
        let bytes = seal(&hello, &keys(), Framing::Lf).expect("sealed");
        net.inject(a, from, &bytes);
    }
    let shared = net.nodes[a].ep.shared();
    assert!(shared.len() <= 16, "bounded: {}", shared.len());
    assert!(
        shared.peers().any(|p| p.address == to),
        "the peer a message is in flight to stays"
    );
    assert!(shared.stats().evicted > 0);
}

#[test]
fn a_command_taken_once_reaches_the_host_once_and_no_entity_unless_sent_reliably() {
    let seed = 7;
    let mut net: HostNet = Net::new(seed, Link::perfect());
    let (a, a_addrs) = add_host(&mut net, seed, 1, 16_384);
    let n = net.nodes.len();
    let mut template = endpoint_config(seed.wrapping_mul(1000).wrapping_add(n as u64));
    template.limits.max_peers = 16_384;
    let mut host = Entities::new(&template, net.now, epoch());
    host.take_once("test.once");
    host.follow_table(true);
    let mut b_addrs = Vec::new();
    for k in 0..20 {
        let local = Address::parse(&format!("(app:sim host:h{n} e:{k} id:{k}-{n}@127.0.0.1)"))
            .expect("a valid address");
        let mut config = template.clone();
        config.seed = template.seed.wrapping_add(k);
        host.add(config, local.clone(), net.now, epoch())
            .expect("a new address");
        b_addrs.push(local);
    }
    let b = net.push(host);
    assert!(net.run_until_true(Duration::from_secs(60), |n| everyone_sees(n, 21)));
    // The table's changes, once for the host: its own 20 and the other one.
    let joined: Vec<Address> = std::iter::from_fn(|| net.nodes[b].ep.poll_host_event())
        .filter_map(|e| match e {
            Event::PeerJoined(addr) => Some(addr),
            _ => None,
        })
        .collect();
    assert_eq!(joined.len(), 21);
    assert!(joined.contains(&a_addrs[0]) && joined.contains(&b_addrs[3]));

    let sender = id_of(&net, a, &a_addrs[0]);
    let handed = |net: &HostNet| {
        net.nodes[b]
            .events
            .iter()
            .filter(|(_, (_, e))| matches!(e, Event::Command { command, .. } if command.name == "test.once"))
            .count()
    };
    // Unreliable, to all 20: once to the host, to no entity.
    net.with(a, |ep, now| {
        ep.with(sender, |ep| {
            let cmd = Command::new("test.once", vec![Value::Integer(1)]);
            ep.send(now, &Address::empty(), vec![cmd], Delivery::Unreliable)
        })
    })
    .expect("the entity exists")
    .expect("an unreliable send");
    net.run_for(Duration::from_millis(100));
    let once: Vec<Event> = std::iter::from_fn(|| net.nodes[b].ep.poll_host_event()).collect();
    assert!(
        matches!(&once[..], [Event::Command { src, command, .. }]
            if *src == a_addrs[0] && command.args == vec![Value::Integer(1)]),
        "{once:?}"
    );
    assert_eq!(handed(&net), 0, "no entity handled it");
    assert_eq!(net.nodes[b].ep.taken_once(), 1);
    // Reliable, to one entity: that entity acknowledges it and has it.
    net.with(a, |ep, now| {
        ep.with(sender, |ep| {
            let cmd = Command::new("test.once", vec![Value::Integer(2)]);
            ep.send(now, &b_addrs[5], vec![cmd], Delivery::Reliable)
        })
    })
    .expect("the entity exists")
    .expect("a reliable send");
    net.run_for(Duration::from_millis(500));
    assert_eq!(handed(&net), 1);
    assert!(net.nodes[b].ep.poll_host_event().is_none());
    assert!(net.nodes[a]
        .events
        .iter()
        .any(|(_, (_, e))| matches!(e, Event::Delivered { .. })));

    // An entity added without peer events is not told of the 21 known.
    let joins_of = |net: &HostNet, id: EntityId| {
        net.nodes[b]
            .events
            .iter()
            .filter(|(_, (to, e))| *to == id && matches!(e, Event::PeerJoined(_)))
            .count()
    };
    let (loud, quiet) = net.with(b, |host, now| {
        let mut config = template.clone();
        let loud = Address::parse(&format!("(app:sim host:h{n} e:loud id:90-{n}@127.0.0.1)"))
            .expect("a valid address");
        let quiet = Address::parse(&format!("(app:sim host:h{n} e:quiet id:91-{n}@127.0.0.1)"))
            .expect("a valid address");
        config.seed = 90;
        let loud = host.add(config.clone(), loud, now, epoch()).unwrap();
        config.seed = 91;
        let quiet = host
            .add_without_peer_events(config, quiet, now, epoch())
            .unwrap();
        (loud, quiet)
    });
    assert!(joins_of(&net, loud) >= 21);
    assert_eq!(joins_of(&net, quiet), 0);
}
