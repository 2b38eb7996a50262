//! Whatever a remote participant sends, a member neither panics nor delivers
//! what it cannot read: arbitrary CMBS commands and RPC arguments (random
//! values, and maps with the right field names and wrong values) go straight
//! into a member, which then still takes a well-formed message.

mod sim;

use std::time::{Duration, Instant, SystemTime};

use proptest::prelude::*;
use rmbus::cmbs::{
    echo_executor, Content, Description, Event as CmbsEvent, Layer, LayerSet, Member, MemberConfig,
    Message,
};
use rmbus::proto::{Endpoint, Event};
use rmbus::rpc::{Meta, Request, RequestId, RpcEvent, RpcType};
use rmbus::wire::{Address, Command, Value};

fn value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        any::<i64>().prop_map(Value::Integer),
        any::<String>().prop_map(|s| Value::String(s.replace('\0', ""))),
        "[A-Za-z][A-Za-z0-9_.-]{0,8}".prop_map(Value::Symbol),
        proptest::collection::vec(any::<u8>(), 0..8).prop_map(Value::Data),
        Just(Value::string("{\"a\": 1}")),
        Just(Value::symbol("true")),
        Just(Value::string("l3.2")),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        proptest::collection::vec(inner, 0..4).prop_map(Value::List)
    })
}

/// A map with CMBS field names and arbitrary values.
fn fields() -> impl Strategy<Value = Value> {
    let names = prop::sample::select(vec![
        "id",
        "layer",
        "content",
        "executable",
        "sendable",
        "storable",
        "path_history",
        "l1_socket_receiver_member",
        "providers",
        "topics",
        "seq",
        "low",
        "state",
        "layers",
        "l1_socket",
        "neighbors_socket",
        "result",
    ]);
    proptest::collection::vec((names, value()), 0..8).prop_map(|pairs| {
        Value::List(
            pairs
                .into_iter()
                .map(|(k, v)| Value::List(vec![Value::string(k), v]))
                .collect(),
        )
    })
}

fn setup() -> (Endpoint, Member, Instant) {
    let now = Instant::now();
    let local = Address::parse("(app:cmbs module:member member:me id:1-1@127.0.0.1)").unwrap();
    let ep = Endpoint::new(sim::endpoint_config(1), local, now, SystemTime::now()).unwrap();
    let mut d = Description::new("me");
    d.started = LayerSet::ALL;
    let config = MemberConfig {
        has_store: true,
        ..MemberConfig::default()
    };
    let mut m = Member::new(d, config, 1);
    m.set_executor(echo_executor());
    (ep, m, now)
}

fn request(id: u64, name: &str, args: Vec<Value>) -> Event {
    Event::Rpc(RpcEvent::Request(Request {
        id: RequestId(id),
        rpc_id: id.to_string(),
        src: Address::parse("(app:cmbs module:member member:other id:2-1@127.0.0.1)").unwrap(),
        name: name.into(),
        args,
        rpc_type: RpcType::Unicast,
        meta: Meta::default(),
    }))
}

fn command(name: &str, args: Vec<Value>) -> Event {
    Event::Command {
        src: Address::parse("(app:cmbs module:member member:other id:2-1@127.0.0.1)").unwrap(),
        reliable: false,
        command: Command::new(name, args),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn a_member_survives_anything_and_still_works(
        args in proptest::collection::vec(prop_oneof![value(), fields()], 0..3),
        which in 0usize..5,
        store_fails in any::<bool>(),
    ) {
        let (mut ep, mut m, now) = setup();
        let name = ["cmbs.message.deliver", "cmbs.message.deliver", "cmbs.member.announce", "cmbs.member.action", "cmbs.member.describe"][which];
        let event = if which == 0 || which == 3 {
            request(7, name, args.clone())
        } else {
            command(name, args.clone())
        };
        let _ = m.handle_event(&mut ep, now, event);
        while let Some(b) = m.poll_store() {
            let r = if store_fails { Err("disk full".to_owned()) } else { Ok(()) };
            m.store_done(&mut ep, now, b.ticket, r);
        }
        m.handle_timeout(&mut ep, now + Duration::from_secs(10));
        let mut received_before = 0;
        while let Some(e) = m.poll_event() {
            if let CmbsEvent::Received { message, .. } = e {
                // Only a message that reads back whole is delivered.
                prop_assert!(!message.id.is_empty());
                received_before += 1;
            }
        }
        prop_assert!(received_before <= 1);
        // A well-formed message still goes through.
        let good = Message::new("good", Layer::L2, Content::Json(serde_json::json!(1)));
        let _ = m.handle_event(&mut ep, now, request(8, "cmbs.message.deliver", vec![good.to_value()]));
        let mut got = false;
        while let Some(e) = m.poll_event() {
            got |= matches!(e, CmbsEvent::Received { ref message, .. } if message.id == "good");
        }
        prop_assert!(got);
    }
}

#[test]
fn a_member_whose_store_never_answers_refuses_beyond_its_limit_instead_of_queueing() {
    let (mut ep, _, now) = setup();
    let mut d = Description::new("me");
    d.started = LayerSet::ALL;
    let config = MemberConfig {
        has_store: true,
        max_in_progress: 100,
        ..MemberConfig::default()
    };
    let mut m = Member::new(d, config, 1);
    for k in 0..150 {
        let mut msg = Message::new(
            &format!("s{k}"),
            Layer::L2,
            Content::Json(serde_json::json!(k)),
        );
        msg.storable = true;
        // Unreliable deliveries: nobody waits for an answer, nothing bounds them but this.
        let _ = m.handle_event(
            &mut ep,
            now,
            command("cmbs.message.deliver", vec![msg.to_value()]),
        );
    }
    // The store never says it is done.
    let queued: usize = std::iter::from_fn(|| m.poll_store())
        .map(|b| b.ops.len())
        .sum();
    assert_eq!(queued, 100);
    let busy = std::iter::from_fn(|| m.poll_event())
        .filter(|e| matches!(e, CmbsEvent::Refused { refusal, .. } if refusal.reason.starts_with("busy")))
        .count();
    assert_eq!(busy, 50);
}
