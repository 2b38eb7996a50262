//! Learn, don't ask again: a reliable send or a call given a deadline waits
//! for an unknown destination to appear (one ping), and goes at once to a
//! known one; without a deadline an unknown destination is refused at once.

mod common;
mod sim;

use std::time::Duration;

use rmbus::proto::{Delivery, Endpoint, Event, SendError};
use rmbus::rpc::{Outcome, Reply, RpcEvent};
use rmbus::wire::{Address, Command, Value};
use sim::{Link, Net};

fn pings_sent(net: &Net<Endpoint>, i: usize) -> usize {
    net.nodes[i]
        .sent
        .iter()
        .filter_map(|(_, _, bytes)| rmbus::auth::open(bytes, &sim::keys()).ok())
        .filter(|m| m.commands.iter().any(|c| c.name == "mbus.ping"))
        .count()
}

/// The address `Net::add` gives node `i` with no extra elements.
fn future_address(i: usize) -> Address {
    Address::parse(&format!("(app:sim node:n{i} id:{}-1@127.0.0.1)", 1000 + i)).unwrap()
}

#[test]
fn a_send_within_a_deadline_waits_for_its_destination_to_appear() {
    let mut net: Net<Endpoint> = Net::new(41, Link::perfect());
    let a = net.add("");
    let b_addr = future_address(1);
    let cmd = || vec![Command::new("x.early", vec![Value::Integer(1)])];
    // Without a deadline: refused at once, nothing sent.
    let refused = net.send(a, &b_addr, cmd(), Delivery::Reliable);
    assert!(matches!(refused, Err(SendError::UnknownDestination(_))));
    let deadline = net.now + Duration::from_secs(10);
    let id = net
        .with(a, |ep, now| {
            ep.send_within(now, &b_addr, cmd(), Delivery::Reliable, deadline)
        })
        .unwrap();
    assert_eq!(pings_sent(&net, a), 1, "pinged once");
    assert_eq!(net.nodes[a].ep.in_flight(), 1, "it counts as in flight");
    // A send to a destination that never appears fails at its deadline.
    let never = Address::parse("(app:sim node:none id:9-9@127.0.0.1)").unwrap();
    let soon = net.now + Duration::from_secs(3);
    let lost = net
        .with(a, |ep, now| {
            ep.send_within(now, &never, cmd(), Delivery::Reliable, soon)
        })
        .unwrap();
    let b = net.add("");
    assert_eq!(net.address(b), b_addr);
    net.run_for(Duration::from_secs(5));
    let outcome = |id| {
        net.events(a, |e| match e {
            Event::Delivered { id: got, .. } if *got == id => Some(true),
            Event::DeliveryFailed { id: got, .. } if *got == id => Some(false),
            _ => None,
        })
    };
    assert_eq!(outcome(id), vec![true], "delivered once b appeared");
    assert_eq!(outcome(lost), vec![false], "failed at its deadline");
    let got = net.events(b, |e| match e {
        Event::Command { command, .. } if command.name == "x.early" => Some(()),
        _ => None,
    });
    assert_eq!(got.len(), 1);
    // Now b is known: no further ping, it goes at once.
    let pings = pings_sent(&net, a);
    let later = net.now + Duration::from_secs(10);
    net.with(a, |ep, now| {
        ep.send_within(now, &b_addr, cmd(), Delivery::Reliable, later)
    })
    .unwrap();
    assert_eq!(
        pings_sent(&net, a),
        pings,
        "a known destination is not pinged"
    );
    assert_eq!(net.nodes[a].ep.in_flight(), 1, "sent, waiting for its ack");
}

#[test]
fn a_call_within_its_timeout_waits_for_its_callee_to_appear() {
    let mut net: Net<Endpoint> = Net::new(43, Link::perfect());
    let a = net.add("");
    let timeout = Duration::from_secs(10);
    let callee = Address::parse("(node:n1)").unwrap();
    let call = net
        .with(a, |ep, now| {
            ep.rpc()
                .call_within(now, &callee, "calc.add", vec![Value::Integer(2)], timeout)
        })
        .unwrap();
    let nobody = Address::parse("(node:nobody)").unwrap();
    let missed = net
        .with(a, |ep, now| {
            ep.rpc()
                .call_within(now, &nobody, "calc.add", vec![], Duration::from_secs(2))
        })
        .unwrap();
    assert_eq!(pings_sent(&net, a), 2, "one ping per unknown callee");
    // Without a wait the same call is refused at once.
    let refused = net.with(a, |ep, now| {
        ep.rpc().call(now, &nobody, "calc.add", vec![], timeout)
    });
    assert!(matches!(refused, Err(SendError::UnknownDestination(_))));
    let b = net.add("");
    net.nodes[b].ep.rpc().serve("calc.add");
    net.serve(b, |req| {
        let sum: i64 = req.args.iter().filter_map(Value::as_i64).sum();
        Some(Reply::ok(vec![Value::Integer(sum)]).into())
    });
    net.run_for(Duration::from_secs(5));
    let outcomes: Vec<(rmbus::rpc::CallId, Address, Outcome)> = net.events(a, |e| match e {
        Event::Rpc(RpcEvent::Returned {
            call,
            callee,
            outcome,
        }) => Some((*call, callee.clone(), outcome.clone())),
        _ => None,
    });
    assert_eq!(outcomes.len(), 2, "{outcomes:?}");
    let of = |c| outcomes.iter().find(|(id, _, _)| *id == c).unwrap();
    assert_eq!(of(call).1, net.address(b), "completed to b's address");
    assert_eq!(
        of(call).2,
        Outcome::Returned(Reply::ok(vec![Value::Integer(2)]))
    );
    assert_eq!(of(missed).2, Outcome::Undeliverable);
    assert_eq!(net.nodes[a].ep.rpc().open_calls(), 0);
}
