//! The fuzz target's body, kept in the library so that an ordinary test can run
//! it over the seed corpus (`fuzz/corpus/open`) on stable Rust.

use crate::auth::{open, seal, CipherAlgo, HashAlgo, Keys};
use crate::wire::{Framing, Message};

/// Feeds one input to the receive function under two key sets (plaintext and
/// DES), and to the parser directly. Whatever parses must re-encode and parse
/// back to the same message (forms outside RFC 3259 to their RFC form).
/// Panics only on a real bug.
pub fn open_target(data: &[u8]) {
    let plain = Keys::md5_noencr(b"123156189112");
    let des = Keys::new(
        HashAlgo::HmacMd5_96,
        b"123156189112",
        CipherAlgo::Des,
        &[0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef],
    );
    for keys in [plain.ok(), des.ok()].into_iter().flatten() {
        if let Ok(msg) = open(data, &keys) {
            round_trip(&msg, &keys);
        }
    }
    if let (Ok(msg), Ok(keys)) = (Message::parse(data), Keys::md5_noencr(b"k")) {
        round_trip(&msg, &keys);
    }
}

fn round_trip(msg: &Message, keys: &Keys) {
    for framing in [Framing::Lf, Framing::Crlf] {
        let text = match msg.encode(framing) {
            Ok(t) => t,
            Err(e) => panic!("a parsed message must encode: {e}"),
        };
        let reparsed = match Message::parse(&text) {
            Ok(m) => m,
            Err(e) => panic!("what we encode must parse: {e}"),
        };
        // Forms outside RFC 3259 (pyMbus's Symbols with '/') are encoded in
        // RFC form, so only the encoding must be stable for those.
        assert_eq!(
            reparsed.encode(framing).as_ref(),
            Ok(&text),
            "encode(parse(encode(m))) != encode(m)"
        );
        let rfc = msg.outside_rfc().is_empty();
        if rfc {
            assert_eq!(&reparsed, msg, "parse(encode(m)) != m");
        }
        if let Ok(datagram) = seal(msg, keys, framing) {
            assert_eq!(
                open(&datagram, keys).as_ref(),
                Ok(&reparsed),
                "open(seal(m)) != parse(encode(m))"
            );
        }
    }
}

/// The key the endpoint target signs its peers' datagrams with.
const ENDPOINT_KEY: &[u8] = b"123156189112";

/// Drives one endpoint through a script decoded from `data`, so that the
/// fuzzer reaches the protocol state machines and not only the parser.
///
/// The endpoint serves an RPC, a transaction, a property and a service, has a
/// peer, and has a unicast call, a group call, a transaction and a reliable
/// message of its own open. Each record of the script is one op byte, a
/// little-endian `u16` length and that many bytes:
/// - op 0: a datagram from the peer whose payload is signed for it (so that
///   it passes authentication and reaches the core);
/// - op 1: the payload as a datagram, unsigned (forgeries, garbage);
/// - op 2: time passes (the payload's first two bytes, in ms) and timers run;
/// - op 3: an application action (reply, call, send, set, ack, close).
///
/// Panics only on a real bug: a panic inside the core, a call, transaction
/// or reliable message that ends twice, or a timer asked for in the past.
/// Returns what the script made the endpoint do, so that a test can tell
/// that the seed corpus reaches the state machines.
pub fn endpoint_target(data: &[u8]) -> ScriptRun {
    use std::collections::HashSet;
    use std::time::{Duration, Instant, UNIX_EPOCH};

    use crate::auth::seal_raw;
    use crate::proto::{Delivery, Endpoint, EndpointConfig, Event};
    use crate::rpc::{Access, Reply, RpcEvent, RpcType, ServiceModel, TxnEvent, TxnStatus};
    use crate::wire::{Address, Command, Header, MessageType, Value};

    let mut run = ScriptRun::default();
    let Ok(keys) = Keys::md5_noencr(ENDPOINT_KEY) else {
        return run;
    };
    let config = EndpointConfig {
        keys: keys.clone(),
        framing: Framing::Lf,
        group: std::net::SocketAddr::from(([224, 255, 222, 239], 47000)),
        send_unicast: false,
        seed: 1,
        first_seq: 0,
        timers: Default::default(),
        limits: Default::default(),
        replay: Default::default(),
    };
    let (Ok(us), Ok(peer)) = (
        Address::parse("(app:fuzz module:us id:1-1@127.0.0.1)"),
        Address::parse("(app:fuzz module:peer id:2-1@127.0.0.1)"),
    ) else {
        return run;
    };
    let from = std::net::SocketAddr::from(([127, 0, 0, 1], 40000));
    // A fixed origin: the core only ever sees instants derived from it.
    let mut now = Instant::now();
    let wall = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let Ok(mut ep) = Endpoint::new(config, us, now, wall) else {
        return run;
    };
    ep.rpc().serve("op");
    ep.transactions().serve("tx");
    ep.properties()
        .define("p", Value::Integer(1), Access::ReadWrite);
    ep.services()
        .define("svc", Address::empty(), ServiceModel::Tight);
    let hello = Message {
        header: Header {
            seq: 0,
            timestamp: 1,
            kind: MessageType::Unreliable,
            src: peer.clone(),
            dst: Address::empty(),
            acks: vec![],
        },
        commands: vec![crate::proto::cmd::Hello.into_command()],
    };
    if let Ok(d) = seal(&hello, &keys, Framing::Lf) {
        ep.handle_datagram(now, from, &d);
    }
    let second = Duration::from_secs(1);
    let _ = ep.rpc().call(now, &peer, "op", vec![], second);
    let _ = ep.rpc().call_group(
        now,
        &Address::empty(),
        "grp",
        vec![],
        RpcType::Multicast,
        second,
    );
    let _ = ep.transactions().begin(now, &peer, "tx", vec![], second);
    let _ = ep.send(
        now,
        &peer,
        vec![Command::new("x", vec![])],
        Delivery::Reliable,
    );

    let (mut requests, mut txns) = (Vec::new(), Vec::new());
    let (mut calls_ended, mut txns_ended, mut msgs_ended) =
        (HashSet::new(), HashSet::new(), HashSet::new());
    let mut rest = data;
    while let [op, lo, hi, tail @ ..] = rest {
        let len = usize::from(u16::from_le_bytes([*lo, *hi])).min(tail.len());
        let (payload, next) = tail.split_at(len);
        rest = next;
        match op % 4 {
            0 => {
                if let Ok(d) = seal_raw(payload, &keys, Framing::Lf) {
                    ep.handle_datagram(now, from, &d);
                }
            }
            1 => ep.handle_datagram(now, from, payload),
            2 => {
                let ms = u64::from(payload.first().copied().unwrap_or(0))
                    | u64::from(payload.get(1).copied().unwrap_or(0)) << 8;
                now += Duration::from_millis(ms);
                ep.handle_timeout(now);
                if let Some(t) = ep.poll_timeout() {
                    assert!(t > now, "a timer asked for in the past: {t:?} <= {now:?}");
                }
            }
            _ => {
                let pick = payload.first().copied().unwrap_or(0);
                match pick % 7 {
                    0 => {
                        if let Some(id) = requests.pop() {
                            let _ = ep.rpc().reply(now, id, Reply::ok(vec![Value::Integer(1)]));
                        }
                    }
                    1 => {
                        let _ = ep.rpc().call(now, &peer, "op", vec![], second);
                    }
                    2 => {
                        let _ = ep.send(
                            now,
                            &peer,
                            vec![Command::new("y", vec![])],
                            Delivery::Reliable,
                        );
                    }
                    3 => {
                        ep.properties()
                            .set(now, "p", Value::Integer(i64::from(pick)));
                    }
                    4 => {
                        if let Some(id) = txns.pop() {
                            let _ = ep.transactions().ack(now, id, TxnStatus::Ok);
                        }
                    }
                    5 => {
                        let _ = ep.services().notify(now, "svc.changed", vec![]);
                    }
                    _ => ep.close(now),
                }
            }
        }
        while ep.poll_transmit(now).is_some() {}
        while let Some(e) = ep.poll_event() {
            match e {
                Event::Rpc(RpcEvent::Request(r)) => {
                    run.requests += 1;
                    requests.push(r.id);
                }
                Event::Txn(TxnEvent::Request(t)) => txns.push(t.id),
                Event::Rpc(RpcEvent::Returned { call, outcome, .. }) => {
                    assert!(calls_ended.insert(call), "call {call:?} ended twice");
                    run.returned += usize::from(outcome.code() == "ok");
                }
                Event::Rpc(RpcEvent::GroupReturned { call, .. }) => {
                    assert!(calls_ended.insert(call), "call {call:?} ended twice");
                }
                Event::Txn(TxnEvent::Ended { txn, .. }) => {
                    assert!(txns_ended.insert(txn), "transaction {txn:?} ended twice");
                }
                Event::Delivered { id, .. } | Event::DeliveryFailed { id, .. } => {
                    assert!(msgs_ended.insert(id), "message {id:?} ended twice");
                }
                _ => {}
            }
        }
    }
    let stats = ep.stats();
    run.rejected = stats.rejected_auth + stats.rejected_malformed;
    run.sent = stats.datagrams_out;
    run
}

/// What one [`endpoint_target`] script made the endpoint do.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ScriptRun {
    /// RPC requests delivered to the application.
    pub requests: usize,
    /// Our calls that returned OK.
    pub returned: usize,
    /// Datagrams refused (authentication or syntax).
    pub rejected: u64,
    /// Datagrams the endpoint sent.
    pub sent: u64,
}
