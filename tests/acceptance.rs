//! What we accept from deployed peers, and what the
//! encoder writes (RFC 3259 §5.3, and the forms UCL and libgmbus send).

mod common;

use common::*;
use std::hash::BuildHasher;

use rmbus::wire::{Address, Command, EncodeError, Framing, Message, Rule, Value, MAX_DEPTH};

fn parse(text: &str) -> Message {
    Message::parse(text.as_bytes()).unwrap_or_else(|e| panic!("{text:?}: {e}"))
}

#[test]
fn liberal_header_whitespace_and_padded_acks() {
    let msg = parse(&format!(
        "mbus/1.0   \t 5  1 \tR  {A}\t({})   (     2   7 )\r\n\r\nmbus.hello()\n",
        &B[1..B.len() - 1]
    ));
    assert_eq!(msg.header.seq, 5);
    assert_eq!(msg.header.acks, vec![2, 7]);
    assert_eq!(msg.commands, vec![Command::new("mbus.hello", vec![])]);
}

#[test]
fn gmbus_trailing_spaces_inside_parentheses() {
    let msg = parse("mbus/1.0 1 1 U (app:x id:1-1@h ) () (1 2 )\nx.y (1 2 )\n");
    assert_eq!(msg.header.src, addr("(id:1-1@h app:x)"));
    assert_eq!(
        msg.commands[0].args,
        vec![Value::Integer(1), Value::Integer(2)]
    );
}

#[test]
fn ucl_escapes_any_character() {
    let msg = parse(&format!(
        "mbus/1.0 1 1 U {A} () ()\nx (\"a\\ b\\q\\\\\\n\")"
    ));
    assert_eq!(msg.commands[0].args, vec![Value::string("a bq\\\n")]);
}

#[test]
fn utf8_strings_and_raw_cr() {
    let msg = parse(&format!("mbus/1.0 1 1 U {A} () ()\nx (\"grüße\r\")"));
    assert_eq!(msg.commands[0].args, vec![Value::string("grüße\r")]);
    // Invalid UTF-8 inside a string is malformed, with the offset of the bad byte.
    let mut bad = format!("mbus/1.0 1 1 U {A} () ()\nx (\"ab").into_bytes();
    let at = bad.len();
    bad.extend_from_slice(b"\xff\")");
    let err = Message::parse(&bad).unwrap_err();
    assert_eq!((err.rule, err.offset), (Rule::String, at));
}

#[test]
fn trailing_newlines_and_nuls_are_ignored() {
    let mut text = format!("mbus/1.0 1 1 U {A} () ()\nmbus.hello ()\r\n\n").into_bytes();
    text.extend_from_slice(&[0, 0, 0]);
    assert_eq!(Message::parse(&text).unwrap().commands.len(), 1);
}

#[test]
fn several_commands_keep_their_order() {
    let msg = parse(&format!("mbus/1.0 1 1 U {A} () ()\na (1)\nb (2)\r\nc (3)"));
    let names: Vec<_> = msg.commands.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["a", "b", "c"]);
}

#[test]
fn integers_beyond_64_bits_keep_their_digits() {
    let big = "123456789012345678901234567890";
    let msg = parse(&format!(
        "mbus/1.0 1 1 U {A} () ()\nx ({big} -{big} 9223372036854775807)"
    ));
    assert_eq!(
        msg.commands[0].args,
        vec![
            Value::BigInteger(big.to_owned()),
            Value::BigInteger(format!("-{big}")),
            Value::Integer(i64::MAX)
        ]
    );
    let again = Message::parse(&msg.encode(Framing::Lf).unwrap()).unwrap();
    assert_eq!(again, msg);
}

#[test]
fn structural_errors_name_rule_and_offset() {
    for (text, rule, at) in [
        ("mbus/1.0 1 1 X (id:1-1@h) () ()", Rule::MessageType, "X ("),
        ("mbus/1.0 1 1 U (id:1-1@h)() ()", Rule::Whitespace, "() ()"),
        (
            "mbus/1.0 1 12345678901234 U (id:1-1@h) () ()",
            Rule::TimeStamp,
            "12345678901234",
        ),
        (
            "mbus/1.0 1 1 U (id:1-1@h) () ()\n9x ()",
            Rule::CommandName,
            "9x",
        ),
        ("mbus/1.0 1 1 U (id:1-1@h) () ()\nx 1", Rule::ArgList, "1"),
        // An unclosed list: where its ')' is missing, at the end.
        ("mbus/1.0 1 1 U (id:1-1@h) () ()\nx (1 2", Rule::List, ""),
        (
            "mbus/1.0 1 1 U (id:1-1@h) () ()\nx ()y ()",
            Rule::Whitespace,
            "y ()",
        ),
        ("mbus/1.0 1 1 U (id:1-1@h) () (1,2)", Rule::AckList, ",2)"),
        (
            "mbus/1.0 1 1 U (id:1-1@h) () ()\nx (\"a\0\")",
            Rule::String,
            "\0\")",
        ),
        (
            "mbus/1.0 1 1 U (id:1-1@h) () ()\nx (<aGVsbG8>)",
            Rule::Data,
            "<aGVsbG8>)",
        ),
        (
            "mbus/1.0 1 1 U (id:1-1@h) () ()\nx (1.5.2)",
            Rule::Float,
            "1.5.2)",
        ),
    ] {
        let err = Message::parse(text.as_bytes()).unwrap_err();
        assert_eq!(err.rule, rule, "{text:?}");
        assert!(
            text[err.offset..].starts_with(at),
            "{text:?}: offset {} points at {:?}",
            err.offset,
            &text[err.offset..]
        );
    }
    let unclosed = "mbus/1.0 1 1 U (id:1-1@h) () ()\nx (1 2";
    let err = Message::parse(unclosed.as_bytes()).unwrap_err();
    assert_eq!(
        err.offset,
        unclosed.len(),
        "at the missing ')', not the '('"
    );
}

#[test]
fn nesting_is_capped() {
    let deep = |n: usize| {
        format!(
            "mbus/1.0 1 1 U (id:1-1@h) () ()\nx {}{}",
            "(".repeat(n),
            ")".repeat(n)
        )
    };
    assert!(Message::parse(deep(MAX_DEPTH).as_bytes()).is_ok());
    assert_eq!(
        Message::parse(deep(MAX_DEPTH + 1).as_bytes())
            .unwrap_err()
            .rule,
        Rule::NestingTooDeep
    );
    // A hostile depth far beyond the cap is an error, not a stack overflow.
    assert_eq!(
        Message::parse(deep(30_000).as_bytes()).unwrap_err().rule,
        Rule::NestingTooDeep
    );
}

#[test]
fn oversized_input_is_refused() {
    let mut text = b"mbus/1.0 1 1 U (id:1-1@h) () ()\nx (\"".to_vec();
    text.resize(70_000, b'a');
    assert_eq!(Message::parse(&text).unwrap_err().rule, Rule::TooLarge);
}

fn one_command(args: Vec<Value>) -> Message {
    let mut msg = Message::parse(V1_BODY).unwrap();
    msg.commands = vec![Command::new("x.y", args)];
    msg
}

#[test]
fn canonical_encoding() {
    let msg = one_command(vec![
        Value::Float(1.0),
        Value::Float(-0.0),
        Value::Float(1e21),
        Value::Float(1.5e-7),
        Value::string("q\"b\\n\nc\rd"),
        Value::Data(vec![0xff, 0, 1]),
        Value::List(vec![]),
    ]);
    let text = String::from_utf8(msg.encode(Framing::Lf).unwrap()).unwrap();
    assert!(text.ends_with(
        "\nx.y (1.0 -0.0 1000000000000000000000.0 0.00000015 \"q\\\"b\\\\n\\nc\rd\" </wAB> ())\n"
    ), "{text:?}");
    assert_eq!(Message::parse(text.as_bytes()).unwrap(), msg);
    // CRLF framing: CRLF between lines, none at the end.
    let crlf = String::from_utf8(msg.encode(Framing::Crlf).unwrap()).unwrap();
    assert!(crlf.contains(") ()\r\nx.y (") && crlf.ends_with("())"));
}

#[test]
fn encoder_refuses_what_has_no_mbus_form() {
    for (value, expected) in [
        (Value::Float(f64::NAN), "not finite"),
        (Value::Float(f64::INFINITY), "not finite"),
        (Value::BigInteger("12a".into()), "not an optional"),
        (Value::string("nul\0"), "NUL"),
    ] {
        let err = one_command(vec![value.clone()])
            .encode(Framing::Lf)
            .unwrap_err();
        assert!(err.to_string().contains(expected), "{value:?}: {err}");
    }
    // A Symbol value outside the grammar is sent as a String instead.
    for s in ["9lives", "", "a/b"] {
        let text = String::from_utf8(
            one_command(vec![Value::symbol(s)])
                .encode(Framing::Lf)
                .unwrap(),
        )
        .unwrap();
        assert!(
            text.trim_end().ends_with(&format!("(\"{s}\")")),
            "{s:?}: {text}"
        );
    }
    let mut msg = one_command(vec![]);
    msg.commands[0].name = "bad name".into();
    assert!(matches!(
        msg.encode(Framing::Lf),
        Err(EncodeError::BadCommandName(_))
    ));
    let mut deep = Value::List(vec![]);
    for _ in 0..MAX_DEPTH {
        deep = Value::List(vec![deep]);
    }
    assert_eq!(
        one_command(vec![deep]).encode(Framing::Lf),
        Err(EncodeError::TooDeep)
    );
}

#[test]
fn display_prints_mbus_text() {
    let msg = Message::parse(V2_BODY).unwrap();
    let shown = msg.to_string();
    assert!(shown.starts_with("mbus/1.0 1 1020000000100 R (app:test"));
    assert!(shown.ends_with("\ntool.test.ping ()"));
    assert_eq!(Message::parse(shown.as_bytes()).unwrap(), msg);
}

#[test]
fn address_set_semantics() {
    let full = addr("(conf:test media:audio module:engine app:rat id:4711-1@192.168.1.1)");
    assert!(addr("(media:audio module:engine)").is_subset_of(&full));
    assert!(addr("(module:engine)").is_subset_of(&full));
    assert!(addr("()").is_subset_of(&full));
    assert!(!addr("(foo:bar)").is_subset_of(&full));
    assert!(
        !addr("(module:eng)").is_subset_of(&full),
        "no substring matching, unlike UCL"
    );
    assert!(
        !addr("(conf:test media:audio module:engine app:rat id:4711-1@192.168.1.1 foo:bar)")
            .is_subset_of(&full)
    );
    assert_eq!(addr("(a:1 b:2)"), addr("(b:2 a:1)"));
    assert_ne!(addr("(a:1 b:2)"), addr("(a:1)"));
    assert_ne!(addr("(a:1)"), addr("(A:1)"), "tags compare byte for byte");
    let s = std::hash::RandomState::new();
    assert_eq!(s.hash_one(addr("(a:1 b:2)")), s.hash_one(addr("(b:2 a:1)")));
    assert_eq!(addr("(id:7-1@::1 x:a:b)").id(), Some("7-1@::1"));
    assert_eq!(addr("(id:7-1@::1 x:a:b)").get("x"), Some("a:b"));
    assert_eq!(
        addr("(a:1 b:2 c:3)").intersection(&addr("(c:3 a:1 d:4)")),
        addr("(a:1 c:3)")
    );
    assert!(Address::new([("a", "1"), ("a", "2")]).is_err());
    assert!(Address::new([("a1", "x")]).is_err());
    assert!(Address::new([("a", "x y")]).is_err());
    assert_eq!(
        Address::new([("app", "rat"), ("id", "1-1@h")])
            .unwrap()
            .to_string(),
        "(app:rat id:1-1@h)"
    );
}

#[test]
fn value_parse_from_text() {
    assert_eq!(
        Value::parse(" (1 \"x\" (2 3)) ").unwrap(),
        Value::List(vec![
            Value::Integer(1),
            Value::string("x"),
            Value::List(vec![Value::Integer(2), Value::Integer(3)])
        ])
    );
    assert!(Value::parse("(1 2").is_err());
    assert!(Value::parse("1 2").is_err());
}

/// However many addresses a flood of hellos makes up, the hello interval
/// and the expiry grow only up to the count `max_counted_entities` (256):
/// the made-up entities are gone 4.7 minutes after the flood, not an hour.
#[test]
fn a_hello_flood_does_not_stretch_the_expiry() {
    use rmbus::auth::seal;
    use rmbus::proto::{Endpoint, EndpointConfig};
    use rmbus::wire::{Header, MessageType};
    use std::time::{Duration, Instant, SystemTime};
    let config = EndpointConfig {
        keys: md5(),
        framing: Framing::Lf,
        group: "239.255.255.247:47000".parse().unwrap(),
        send_unicast: false,
        seed: 7,
        first_seq: 0,
        timers: Default::default(),
        limits: Default::default(),
        replay: Default::default(),
    };
    assert_eq!(config.limits.max_counted_entities, 256);
    let start = Instant::now();
    let me = Address::parse("(app:t module:me id:1-1@127.0.0.1)").unwrap();
    let mut ep = Endpoint::new(config, me, start, SystemTime::now()).unwrap();
    let from = "127.0.0.1:4000".parse().unwrap();
    for i in 0..1000 {
        let src = Address::parse(&format!("(app:flood id:{i}-1@127.0.0.1)")).unwrap();
        let hello = Message {
            header: Header {
                seq: 0,
                timestamp: 1,
                kind: MessageType::Unreliable,
                src,
                dst: Address::empty(),
                acks: vec![],
            },
            commands: vec![Command::new("mbus.hello", vec![])],
        };
        ep.handle_datagram(start, from, &seal(&hello, &md5(), Framing::Lf).unwrap());
    }
    assert_eq!(ep.entities(), 1001);
    let mut at = start;
    let mut gone_at = None;
    while at < start + Duration::from_secs(600) {
        at += Duration::from_secs(1);
        ep.handle_timeout(at);
        while ep.poll_transmit(at).is_some() {}
        while ep.poll_event().is_some() {}
        if ep.entities() == 1 {
            gone_at = Some(at - start);
            break;
        }
    }
    let gone_at = gone_at.expect("the flood's entities expire");
    // c_hello_dead (5) × the interval at 256 entities (51.2 s) × the dither
    // maximum (1.1): 281.6 s.
    assert!(
        gone_at >= Duration::from_secs(270),
        "{gone_at:?}: too early"
    );
    assert!(
        gone_at <= Duration::from_secs(283),
        "{gone_at:?}: the count was not capped"
    );
}

/// With the entity table full of entities that have something open with
/// us (so none can be evicted), a newcomer is still heard: its reliable
/// command is delivered once and acknowledged every time it comes.
#[test]
fn a_full_table_still_delivers_and_acknowledges_a_newcomer() {
    use rmbus::auth::{open, seal};
    use rmbus::proto::{Delivery, Endpoint, EndpointConfig, Event};
    use rmbus::wire::{Header, MessageType};
    use std::time::{Duration, Instant, SystemTime};
    let mut config = EndpointConfig {
        keys: md5(),
        framing: Framing::Lf,
        group: "239.255.255.247:47000".parse().unwrap(),
        send_unicast: false,
        seed: 9,
        first_seq: 0,
        timers: Default::default(),
        limits: Default::default(),
        replay: Default::default(),
    };
    config.limits.max_peers = 2;
    let now = Instant::now();
    let me = Address::parse("(app:t module:me id:1-1@127.0.0.1)").unwrap();
    let mut ep = Endpoint::new(config, me.clone(), now, SystemTime::now()).unwrap();
    let from = "127.0.0.1:4000".parse().unwrap();
    let message = |src: &Address, kind, dst: &Address, commands| Message {
        header: Header {
            seq: 41,
            timestamp: 1_020_000_000_000,
            kind,
            src: src.clone(),
            dst: dst.clone(),
            acks: vec![],
        },
        commands,
    };
    let old: Vec<Address> = (0..2)
        .map(|i| Address::parse(&format!("(app:old id:{i}-1@127.0.0.1)")).unwrap())
        .collect();
    for src in &old {
        let hello = message(
            src,
            MessageType::Unreliable,
            &Address::empty(),
            vec![Command::new("mbus.hello", vec![])],
        );
        ep.handle_datagram(now, from, &seal(&hello, &md5(), Framing::Lf).unwrap());
    }
    // Something open with each: a reliable message in flight, a call.
    ep.send(
        now,
        &old[0],
        vec![Command::new("x.y", vec![])],
        Delivery::Reliable,
    )
    .unwrap();
    ep.rpc()
        .call(now, &old[1], "x.z", vec![], Duration::from_secs(60))
        .unwrap();
    while ep.poll_event().is_some() {}
    while ep.poll_transmit(now).is_some() {}
    assert_eq!(ep.entities(), 3, "the table is full");
    let newcomer = Address::parse("(app:new id:9-1@127.0.0.1)").unwrap();
    let cmd = message(
        &newcomer,
        MessageType::Reliable,
        &me,
        vec![Command::new("app.do", vec![Value::Integer(1)])],
    );
    let datagram = seal(&cmd, &md5(), Framing::Lf).unwrap();
    let mut delivered = 0;
    for round in 0..2 {
        ep.handle_datagram(now, from, &datagram);
        while let Some(e) = ep.poll_event() {
            assert!(
                !matches!(e, Event::PeerLeft { .. }),
                "nobody evicted: {e:?}"
            );
            if matches!(e, Event::Command { .. }) {
                delivered += 1;
            }
        }
        let acked = std::iter::from_fn(|| ep.poll_transmit(now))
            .filter_map(|t| open(&t.contents, &md5()).ok())
            .any(|m| m.header.dst == newcomer && m.header.acks.contains(&41));
        assert!(acked, "round {round}: acknowledged");
    }
    assert_eq!(delivered, 1, "delivered once");
    assert_eq!(ep.entities(), 3, "not tracked");
    assert_eq!((ep.stats().untracked, ep.stats().evicted), (2, 0));
    assert_eq!(
        ep.stats().duplicates,
        1,
        "the second copy is a retransmission"
    );
    assert!(old.iter().all(|a| ep.peer(a).is_some()), "both still known");
}
