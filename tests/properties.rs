//! Property tests: parse(encode(m)) == m, open(seal(m)) == m under every
//! cipher, the parser never panics, and any single-bit flip of a sealed
//! datagram is rejected.

mod common;

use common::*;
use proptest::prelude::*;
use rmbus::auth::{open, seal, CipherAlgo, HashAlgo, Keys};
use rmbus::rpc::RpcEvent;
use rmbus::wire::{Address, Command, Framing, Header, Message, MessageType, Value};

fn value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        any::<i64>().prop_map(Value::Integer),
        ("-?", "[1-9][0-9]{19,30}").prop_map(|(s, d)| Value::BigInteger(format!("{s}{d}"))),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::Float),
        any::<String>().prop_map(|s| Value::String(s.replace('\0', ""))),
        "[A-Za-z][A-Za-z0-9_.-]{0,12}".prop_map(Value::Symbol),
        proptest::collection::vec(any::<u8>(), 0..24).prop_map(Value::Data),
    ];
    leaf.prop_recursive(4, 32, 5, |inner| {
        proptest::collection::vec(inner, 0..5).prop_map(Value::List)
    })
}

fn address(with_id: bool) -> impl Strategy<Value = Address> {
    proptest::collection::btree_map("[a-zA-Z]{1,32}", "[!-'*-~]{1,64}", 0..4).prop_map(
        move |elements| {
            let mut a = Address::new(elements.iter().filter(|(t, _)| *t != "id")).unwrap();
            if with_id {
                a.push("id", "4711-1@192.168.1.1").unwrap();
            }
            a
        },
    )
}

fn message() -> impl Strategy<Value = Message> {
    let header = (
        any::<u32>(),
        0u64..=9_999_999_999_999,
        any::<bool>(),
        address(true),
        address(false),
        proptest::collection::vec(any::<u32>(), 0..4),
    )
        .prop_map(|(seq, timestamp, reliable, src, dst, acks)| Header {
            seq,
            timestamp,
            kind: if reliable {
                MessageType::Reliable
            } else {
                MessageType::Unreliable
            },
            src,
            dst,
            acks,
        });
    let command = (
        "[A-Za-z][A-Za-z0-9_.-]{0,20}",
        proptest::collection::vec(value(), 0..5),
    )
        .prop_map(|(name, args)| Command::new(name, args));
    (header, proptest::collection::vec(command, 0..4))
        .prop_map(|(header, commands)| Message { header, commands })
}

fn all_keys() -> Vec<Keys> {
    let mut keys = vec![md5(), sha1(), md5_des(&K_DES), sha1_aes()];
    keys.push(Keys::new(HashAlgo::HmacMd5_96, K_MD5, CipherAlgo::TripleDes, &[7; 24]).unwrap());
    keys
}

proptest! {
    #[test]
    fn encode_then_parse_is_identity(msg in message()) {
        for framing in [Framing::Lf, Framing::Crlf] {
            let text = msg.encode(framing).unwrap();
            prop_assert_eq!(Message::parse(&text).unwrap(), msg.clone());
        }
        prop_assert_eq!(Message::parse(msg.to_string().as_bytes()).unwrap(), msg);
    }

    #[test]
    fn seal_then_open_is_identity(msg in message()) {
        for keys in all_keys() {
            for framing in [Framing::Lf, Framing::Crlf] {
                let datagram = seal(&msg, &keys, framing).unwrap();
                prop_assert_eq!(open(&datagram, &keys).unwrap(), msg.clone());
            }
        }
    }

    #[test]
    fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = Message::parse(&bytes);
        let _ = open(&bytes, &md5());
        let _ = open(&bytes, &md5_des(&K_DES));
    }

    #[test]
    fn parse_never_panics_on_mutated_messages(
        msg in message(),
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
    ) {
        let mut text = msg.encode(Framing::Lf).unwrap();
        for (at, byte) in edits {
            let i = at.index(text.len());
            text[i] = byte;
        }
        if let Ok(parsed) = Message::parse(&text) {
            // Whatever parses is a message we can encode and read back.
            let again = parsed.encode(Framing::Lf).unwrap();
            prop_assert_eq!(Message::parse(&again).unwrap(), parsed);
        }
    }

    #[test]
    fn any_single_bit_flip_is_rejected(msg in message(), at in any::<prop::sample::Index>(), bit in 0u8..8) {
        for keys in [md5(), sha1_aes()] {
            let mut datagram = seal(&msg, &keys, Framing::Lf).unwrap();
            let i = at.index(datagram.len());
            datagram[i] ^= 1 << bit;
            prop_assert!(open(&datagram, &keys).is_err(), "flip of bit {} at byte {} accepted", bit, i);
        }
    }
}

/// Arguments shaped like Guidelines messages, and not quite.
fn rpc_like_args() -> impl Strategy<Value = Vec<Value>> {
    let key = "ID|RPC-TYPE|RPC-STATUS|REFERENCE|CONTEXT-ID|X";
    let entry = prop_oneof![
        (key, value()).prop_map(|(k, v)| Value::List(vec![Value::String(k), v])),
        (
            key,
            "[0-9]{1,2}|UNICAST|ANYCAST|MULTICAST|COORDINATED|OK|UNKNOWN|FAILED"
        )
            .prop_map(|(k, v)| Value::List(vec![Value::String(k), Value::String(v)])),
        value(),
    ];
    let meta = proptest::collection::vec(entry, 0..4).prop_map(Value::List);
    let status = prop_oneof![
        "OK|FAILED|UNKNOWN|CANCELLED|X".prop_map(Value::Symbol),
        value()
    ];
    proptest::collection::vec(prop_oneof![meta, status, value()], 0..4)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]
    /// Whatever Guidelines-shaped traffic arrives, at caller or callee,
    /// nothing panics and no call ends twice.
    #[test]
    fn guidelines_traffic_never_panics(
        msgs in proptest::collection::vec((
            prop_oneof![
                Just("op"), Just("op.return"), Just("op.standby"), Just("p.get"),
                Just("p.set"), Just("p.watch"), Just("p.unwatch"), Just("svc.do"),
                Just("tx"), Just("tx.ack"), Just("tx.completed"), Just("tx.commit"),
                Just("tx.cancel"), Just("mbus.register"), Just("mbus.deregister"),
                Just("mbus.get-registered"), Just("other")
            ],
            rpc_like_args(),
            any::<bool>(),
        ), 1..12)
    ) {
        use std::time::{Duration, Instant, SystemTime};
        use rmbus::proto::{Endpoint, Event};
        use rmbus::rpc::{Access, ServiceModel};
        let now = Instant::now();
        let config = |seed| rmbus::proto::EndpointConfig {
            keys: md5(),
            framing: Framing::Lf,
            group: "239.255.255.247:47000".parse().unwrap(),
            send_unicast: false,
            seed,
            first_seq: 0,
            timers: Default::default(),
            limits: Default::default(),
            replay: Default::default(),
        };
        let a_addr = Address::parse("(app:t module:a id:1-1@127.0.0.1)").unwrap();
        let b_addr = Address::parse("(app:t module:b id:2-1@127.0.0.1)").unwrap();
        let mut a = Endpoint::new(config(1), a_addr.clone(), now, SystemTime::now()).unwrap();
        let mut b = Endpoint::new(config(2), b_addr.clone(), now, SystemTime::now()).unwrap();
        b.rpc().serve("op");
        b.transactions().serve("tx");
        b.properties().define("p", Value::Integer(1), Access::ReadWrite);
        b.services().define("svc", Address::empty(), ServiceModel::Tight);
        let from = "127.0.0.1:4000".parse().unwrap();
        let hello = |src: &Address| Message {
            header: Header { seq: 0, timestamp: 1, kind: MessageType::Unreliable, src: src.clone(), dst: Address::empty(), acks: vec![] },
            commands: vec![Command::new("mbus.hello", vec![])],
        };
        a.handle_datagram(now, from, &seal(&hello(&b_addr), &md5(), Framing::Lf).unwrap());
        b.handle_datagram(now, from, &seal(&hello(&a_addr), &md5(), Framing::Lf).unwrap());
        a.rpc().call(now, &b_addr, "op", vec![], Duration::from_secs(2)).unwrap();
        a.transactions().begin(now, &b_addr, "tx", vec![], Duration::from_secs(2)).unwrap();
        for (i, (name, args, reliable)) in msgs.into_iter().enumerate() {
            let msg = Message {
                header: Header {
                    seq: 100 + i as u32,
                    timestamp: 2,
                    kind: if reliable { MessageType::Reliable } else { MessageType::Unreliable },
                    src: a_addr.clone(),
                    dst: b_addr.clone(),
                    acks: vec![],
                },
                commands: vec![Command::new(name, args)],
            };
            let Ok(bytes) = seal(&msg, &md5(), Framing::Lf) else { continue };
            b.handle_datagram(now, from, &bytes);
            // The same traffic as if the callee had sent it to the caller.
            let mut back = msg.clone();
            back.header.src = b_addr.clone();
            back.header.dst = a_addr.clone();
            a.handle_datagram(now, from, &seal(&back, &md5(), Framing::Lf).unwrap());
            while b.poll_event().is_some() {}
            while let Some(t) = b.poll_transmit(now) {
                a.handle_datagram(now, from, &t.contents);
            }
        }
        a.handle_timeout(now + Duration::from_secs(3));
        let mut ended = 0;
        while let Some(e) = a.poll_event() {
            if matches!(e, Event::Rpc(RpcEvent::Returned { .. })) {
                ended += 1;
            }
        }
        prop_assert_eq!(ended, 1, "the one call ends exactly once");
        prop_assert_eq!(a.rpc().open_calls(), 0);
    }
}

/// Small addresses over a few tags and values, so that subsets and
/// near-misses (a value that is a prefix of another) are common.
fn small_address() -> impl Strategy<Value = Vec<(String, String)>> {
    proptest::collection::btree_map(
        prop::sample::select(vec!["app", "module", "media", "id"]),
        prop::sample::select(vec!["a", "ab", "b", "a:b", "x"]),
        0..4,
    )
    .prop_map(|m| {
        m.into_iter()
            .map(|(t, v)| (t.to_owned(), v.to_owned()))
            .collect()
    })
}

proptest! {
    #[test]
    fn subset_equality_and_hash_agree_with_sets(a in small_address(), b in small_address(), rot in 0usize..4) {
        use std::collections::BTreeSet;
        use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
        let build = |pairs: &[(String, String)]| Address::new(pairs.iter().map(|(t, v)| (t.as_str(), v.as_str()))).unwrap();
        let (x, y) = (build(&a), build(&b));
        let (sa, sb): (BTreeSet<_>, BTreeSet<_>) = (a.iter().cloned().collect(), b.iter().cloned().collect());
        prop_assert_eq!(x.is_subset_of(&y), sa.is_subset(&sb));
        prop_assert_eq!(x == y, sa == sb);
        // The same set written in another order is equal and hashes the same.
        let mut turned = a.clone();
        if !turned.is_empty() {
            let k = rot % turned.len();
            turned.rotate_left(k);
        }
        let z = build(&turned);
        let hasher = BuildHasherDefault::<DefaultHasher>::default();
        prop_assert!(x == z);
        prop_assert_eq!(hasher.hash_one(&x), hasher.hash_one(&z));
    }
}
