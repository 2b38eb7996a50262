//! CMBS members on one host, exchanging messages on every layer: three
//! members with their own topics and providers, one message per layer from
//! member A, and one message held for a member that starts later.
//!
//! Each member is one entity of a library `Host` (one set of sockets), with
//! a store in memory; the loop is the application's own mio loop.
//!
//! Run: `cargo run --example cmbs_layers`

use std::collections::BTreeMap;
use std::net::UdpSocket;
use std::time::{Duration, Instant, SystemTime};

use mio::{Events, Interest, Poll, Token};
use rmbus::auth::{CipherAlgo, HashAlgo};
use rmbus::cmbs::{echo_executor, Content, Description, Event, Layer, Member, MemberConfig};
use rmbus::cmbs::{Message, Publish};
use rmbus::config::Config;
use rmbus::runtime::{EntityId, Host};
use rmbus::store::{MemoryStore, Store};

struct Node {
    entity: EntityId,
    member: Member,
    store: MemoryStore,
    received: Vec<Message>,
}

fn add(
    host: &mut Host,
    id: &str,
    topics: &[&str],
    providers: &[&str],
) -> Result<Node, Box<dyn std::error::Error>> {
    let mut d = Description::new(id);
    d.topics = topics.iter().map(|t| t.to_string()).collect();
    d.providers = providers.iter().map(|p| p.to_string()).collect();
    d.started = rmbus::cmbs::LayerSet::ALL;
    let config = MemberConfig {
        has_store: true,
        ..MemberConfig::default()
    };
    let mut member = Member::new(d, config, rand_seed(id));
    member.set_executor(echo_executor());
    let entity = host.add(&Member::address(id)?)?;
    if let Some(mut e) = host.entity(entity) {
        e.with_endpoint(|ep, now| member.start(ep, now));
    }
    Ok(Node {
        entity,
        member,
        store: MemoryStore::new(),
        received: Vec::new(),
    })
}

fn rand_seed(id: &str) -> u64 {
    id.bytes()
        .fold(7, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)))
}

fn msg(layer: Layer, content: serde_json::Value) -> Message {
    Message::new("", layer, Content::Json(content))
}

pub fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut config = Config::generate(HashAlgo::HmacMd5_96, CipherAlgo::None);
    config.port = Some(UdpSocket::bind("127.0.0.1:0")?.local_addr()?.port());
    let mut host = Host::bind(&config)?;
    let mut nodes: BTreeMap<&str, Node> = BTreeMap::new();
    nodes.insert(
        "a",
        add(&mut host, "member-a", &["sensors.*.temp"], &["p1"])?,
    );
    nodes.insert("b", add(&mut host, "member-b", &["alerts.#"], &["p2"])?);
    nodes.insert(
        "c",
        add(&mut host, "member-c", &["#.error"], &["p1", "p2"])?,
    );

    let mut poll = Poll::new()?;
    poll.registry()
        .register(&mut host, Token(0), Interest::READABLE)?;
    let mut events = Events::with_capacity(64);
    let give_up = Instant::now() + Duration::from_secs(30);
    let (mut sent, mut reports, mut late_started) = (false, 0, false);
    while Instant::now() < give_up {
        let next = nodes
            .values()
            .filter_map(|n| n.member.poll_timeout())
            .chain(host.deadline())
            .min();
        poll.poll(
            &mut events,
            next.map(|t| t.saturating_duration_since(Instant::now())),
        )?;
        host.on_readable()?;
        host.on_timeout()?;
        // The endpoints' events go to their members; then timers and stores.
        while let Some((entity, event)) = host.poll_event() {
            if let Some(n) = nodes.values_mut().find(|n| n.entity == entity) {
                if let Some(mut e) = host.entity(entity) {
                    e.with_endpoint(|ep, now| n.member.handle_event(ep, now, event));
                }
            }
        }
        for n in nodes.values_mut() {
            let Some(mut e) = host.entity(n.entity) else {
                continue;
            };
            e.with_endpoint(|ep, now| {
                n.member.handle_timeout(ep, now);
                while let Some(batch) = n.member.poll_store() {
                    let done = n.store.commit(&batch.member, &batch.ops, SystemTime::now());
                    n.member
                        .store_done(ep, now, batch.ticket, done.map_err(|e| e.to_string()));
                }
            });
            while let Some(event) = n.member.poll_event() {
                match event {
                    Event::Received { message, from } => {
                        println!(
                            "{}: got {} on {} from {from}",
                            n.member.description().id,
                            message.content.to_json(),
                            message.layer
                        );
                        n.received.push(message);
                    }
                    Event::Report(r) => {
                        reports += 1;
                        println!(
                            "report {} on {}: {} ({} lines)",
                            r.message,
                            r.layer,
                            r.outcome,
                            r.lines.len()
                        );
                    }
                    Event::Line { message, line } => {
                        println!("  {message}: {} {}", line.member, line.code())
                    }
                    _ => {}
                }
            }
        }
        let knows_all = nodes
            .values()
            .all(|n| n.member.client().directory().len() >= 2);
        if knows_all && !sent {
            sent = true;
            let a = nodes.get_mut("a").ok_or("no a")?;
            let mut l1 = msg(Layer::L1, serde_json::json!({"add": [2, 3]}));
            l1.receiver = Some("mbus:member-b/l1".into());
            l1.executable = true;
            let mut batch = vec![
                Publish::new(l1),
                Publish::new(msg(Layer::L2, serde_json::json!("hello, all"))),
            ];
            batch.push(Publish::new(Message {
                providers: vec!["p2".into()],
                ..msg(Layer::L31, serde_json::json!("for p2"))
            }));
            batch.push(Publish::new(Message {
                topics: vec!["alerts.disk.error".into()],
                storable: true,
                ..msg(Layer::L32, serde_json::json!("disk"))
            }));
            batch.push(Publish::new(Message {
                providers: vec!["p1".into()],
                topics: vec!["db.error".into()],
                ..msg(Layer::L4, serde_json::json!("db down"))
            }));
            batch.push(Publish {
                hold: Some(Duration::from_secs(15)),
                ..Publish::new(Message {
                    topics: vec!["news.today".into()],
                    ..msg(Layer::L32, serde_json::json!("held news"))
                })
            });
            let mut e = host.entity(a.entity).ok_or("no entity")?;
            for p in batch {
                let wall = SystemTime::now();
                e.with_endpoint(|ep, now| a.member.publish(ep, now, wall, p))
                    .map_err(|r| format!("{:?}", r.outcome))?;
            }
        }
        // Once the five plain messages are reported, a member that wants news starts.
        if reports >= 5 && !late_started {
            late_started = true;
            nodes.insert("d", add(&mut host, "member-d", &["news.#"], &[])?);
        }
        if nodes.get("d").is_some_and(|d| !d.received.is_empty()) {
            let b = &nodes["b"];
            let stored = b.store.messages("member-b")?;
            println!(
                "member-b stored {} message(s); the held message reached member-d",
                stored.len()
            );
            for n in nodes.values() {
                if let Some(mut e) = host.entity(n.entity) {
                    e.close()?;
                }
            }
            let counts: Vec<usize> = ["a", "b", "c"]
                .iter()
                .map(|k| nodes[k].received.len())
                .collect();
            // a sends (never to itself); b: L1, L2, L3.1, L3.2; c: L2, L3.1, L3.2, L4.
            return if counts == [0, 4, 4] && stored.len() == 1 {
                Ok(())
            } else {
                Err(format!("received {counts:?}").into())
            };
        }
    }
    Err("the example did not finish in 30 s".into())
}
