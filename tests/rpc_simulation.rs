//! The Guidelines layer on a virtual clock (Guidelines draft §5, conformance
//! case 25):
//! unicast RPC with immediate and deferred returns, UNKNOWN, timeouts, a
//! callee lost mid-call, undeliverable requests, ANYCAST and MULTICAST,
//! properties and their watchers, malformed and stray traffic, and 1,000
//! concurrent calls under loss.

mod common;
mod sim;

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use common::*;
use rmbus::auth::{open, seal_raw};
use rmbus::proto::{Endpoint, Event};
use rmbus::rpc::cmd::{ControlVerb, RpcRequest, RpcReturn, TxnControl};
use rmbus::rpc::{
    Access, Answer, CallId, Outcome, PropertyEvent, Reply, RpcEvent, RpcType, TxnEvent,
    DEFAULT_TIMEOUT,
};
use rmbus::wire::{Address, Command, Framing, MessageType, Value};
use sim::{endpoint_config, for_seeds, Link, Net};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Two or more converged nodes on a perfect link.
fn net(n: usize) -> Net {
    let mut net = Net::new(1, Link::perfect());
    for _ in 0..n {
        net.add("");
    }
    net.run_for(ms(3000));
    assert!(net.converged());
    net
}

fn outcomes(net: &Net, i: usize) -> Vec<(CallId, Address, Outcome)> {
    net.events(i, |e| match e {
        Event::Rpc(RpcEvent::Returned {
            call,
            callee,
            outcome,
        }) => Some((*call, callee.clone(), outcome.clone())),
        _ => None,
    })
}

fn requests(net: &Net, i: usize) -> Vec<rmbus::rpc::Request> {
    net.events(i, |e| match e {
        Event::Rpc(RpcEvent::Request(r)) => Some(r.clone()),
        _ => None,
    })
}

fn call(net: &mut Net, from: usize, to: usize, name: &str, args: Vec<Value>) -> CallId {
    let dst = net.address(to);
    net.with(from, |ep, now| {
        ep.rpc().call(now, &dst, name, args, DEFAULT_TIMEOUT)
    })
    .unwrap()
}

#[test]
fn case_25_v9_gets_a_v10_shaped_return_carrying_the_ack() {
    let now = std::time::Instant::now();
    let mut engine = Endpoint::new(
        endpoint_config(1),
        Address::parse("(app:foo module:engine id:4712-1@192.168.1.1)").unwrap(),
        now,
        SystemTime::now(),
    )
    .unwrap();
    engine.rpc().serve("tools.foo.bar");
    let v9 = seal_raw(V9_BODY, &md5(), Framing::Crlf).unwrap();
    engine.handle_datagram(now, "192.168.1.1:40000".parse().unwrap(), &v9);
    let req = std::iter::from_fn(|| engine.poll_event())
        .find_map(|e| match e {
            Event::Rpc(RpcEvent::Request(r)) => Some(r),
            _ => None,
        })
        .expect("a request event");
    assert_eq!(
        (req.rpc_id.as_str(), req.name.as_str()),
        ("123", "tools.foo.bar")
    );
    assert_eq!(req.rpc_type, RpcType::Unicast);
    assert_eq!(
        req.args,
        vec![
            Value::string("gg"),
            Value::Integer(17),
            Value::List(vec![Value::string("a"), Value::string("b")])
        ]
    );
    let reply = Reply::ok_with("BAR_COMPLETED", "Success!", vec![Value::Integer(1)]);
    engine.rpc().reply(now, req.id, reply).unwrap();
    let sent: Vec<_> = std::iter::from_fn(|| engine.poll_transmit(now))
        .map(|t| open(&t.contents, &md5()).unwrap())
        .collect();
    let ret = sent
        .iter()
        .find(|m| m.commands.iter().any(|c| c.name == "tools.foo.bar.return"))
        .expect("a return");
    assert!(
        ret.header.acks.contains(&42),
        "the ack of V9 rides on the return"
    );
    assert_eq!(
        ret.header.dst,
        Address::parse("(app:foo module:gui id:4711-1@192.168.1.1)").unwrap()
    );
    let v10 = rmbus::wire::Message::parse(V10_BODY).unwrap();
    assert_eq!(ret.commands, v10.commands, "the same return as V10");
    // Answered once: a second reply has nothing to answer.
    assert!(engine.rpc().reply(now, req.id, Reply::ok(vec![])).is_err());
}

#[test]
fn unicast_call_returns_ok_failed_and_deferred_results() {
    let mut net = net(2);
    net.nodes[1].ep.rpc().serve("calc.double");
    net.nodes[1].ep.rpc().serve("calc.refuse");
    net.nodes[1].ep.rpc().serve("calc.later");
    net.serve(1, |r| match r.name.as_str() {
        "calc.double" => {
            let n = r.args.first().and_then(Value::as_i64).unwrap_or(0);
            Some(Reply::ok(vec![Value::Integer(2 * n)]).into())
        }
        "calc.refuse" => Some(Reply::failed("NOT_TODAY", "closed for lunch").into()),
        _ => None,
    });
    let double = call(&mut net, 0, 1, "calc.double", vec![Value::Integer(21)]);
    let refuse = call(&mut net, 0, 1, "calc.refuse", vec![]);
    let later = call(&mut net, 0, 1, "calc.later", vec![]);
    net.run_for(ms(50));
    let got: HashMap<CallId, Outcome> = outcomes(&net, 0)
        .into_iter()
        .map(|(c, who, o)| {
            assert_eq!(who, net.address(1));
            (c, o)
        })
        .collect();
    assert_eq!(
        got[&double],
        Outcome::Returned(Reply::ok(vec![Value::Integer(42)]))
    );
    match &got[&refuse] {
        Outcome::Returned(r) => {
            assert!(!r.is_ok());
            assert_eq!(
                (r.result.as_str(), r.description.as_str()),
                ("NOT_TODAY", "closed for lunch")
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(!got.contains_key(&later), "deferred: not answered yet");
    // The deferred answer, 500 ms later.
    net.run_for(ms(500));
    let pending = requests(&net, 1)
        .into_iter()
        .find(|r| r.name == "calc.later")
        .unwrap();
    assert_eq!(net.nodes[1].ep.rpc().open_requests(), 1);
    net.with(1, |ep, now| {
        ep.rpc()
            .reply(now, pending.id, Reply::ok(vec![Value::string("done")]))
    })
    .unwrap();
    net.run_for(ms(50));
    let last = outcomes(&net, 0)
        .into_iter()
        .find(|(c, _, _)| *c == later)
        .unwrap();
    assert_eq!(
        last.2,
        Outcome::Returned(Reply::ok(vec![Value::string("done")]))
    );
    assert_eq!(net.nodes[0].ep.rpc().open_calls(), 0);
    assert_eq!(net.nodes[1].ep.rpc().open_requests(), 0);
    // Nothing leaked to the caller's plain command or delivery events.
    assert!(net
        .events(0, |e| matches!(
            e,
            Event::Command { .. } | Event::Delivered { .. } | Event::DeliveryFailed { .. }
        )
        .then_some(()))
        .is_empty());
}

#[test]
fn an_operation_nobody_serves_is_unknown() {
    let mut net = net(2);
    let c = call(&mut net, 0, 1, "no.such.thing", vec![]);
    net.run_for(ms(50));
    assert_eq!(
        outcomes(&net, 0),
        vec![(c, net.address(1), Outcome::Unknown)]
    );
    assert!(requests(&net, 1).is_empty());
}

#[test]
fn an_unanswered_call_times_out_at_its_deadline() {
    let mut net = net(2);
    net.nodes[1].ep.rpc().serve("slow.op");
    let start = net.now;
    let dst = net.address(1);
    let c = net
        .with(0, |ep, now| {
            ep.rpc().call(now, &dst, "slow.op", vec![], ms(750))
        })
        .unwrap();
    net.run_for(ms(740));
    assert!(outcomes(&net, 0).is_empty());
    net.run_for(ms(20));
    let (at, e) = net.nodes[0]
        .events
        .iter()
        .find(|(_, e)| matches!(e, Event::Rpc(RpcEvent::Returned { .. })))
        .unwrap();
    assert_eq!(at.duration_since(start), ms(750));
    assert_eq!(
        *e,
        Event::Rpc(RpcEvent::Returned {
            call: c,
            callee: dst,
            outcome: Outcome::TimedOut
        })
    );
    // A late answer is a stray, counted and ignored.
    let req = requests(&net, 1).pop().unwrap();
    net.with(1, |ep, now| ep.rpc().reply(now, req.id, Reply::ok(vec![])))
        .unwrap();
    net.run_for(ms(50));
    assert_eq!(outcomes(&net, 0).len(), 1);
    assert_eq!(net.nodes[0].ep.stats().rpc_stray, 1);
}

#[test]
fn a_callee_lost_mid_call_ends_the_call() {
    let mut net = net(2);
    net.nodes[1].ep.rpc().serve("slow.op");
    let c = call(&mut net, 0, 1, "slow.op", vec![]);
    net.run_for(ms(100));
    net.with(1, |ep, now| ep.close(now));
    net.run_for(ms(50));
    assert_eq!(
        outcomes(&net, 0),
        vec![(c, net.address(1), Outcome::CalleeLeft)]
    );
}

#[test]
fn an_unreachable_callee_makes_the_call_undeliverable() {
    let mut net = net(2);
    net.partition = Some(vec![0, 1]);
    let start = net.now;
    let c = call(&mut net, 0, 1, "any.op", vec![]);
    net.run_for(ms(1000));
    let (at, _) = net.nodes[0]
        .events
        .iter()
        .find(|(_, e)| matches!(e, Event::Rpc(RpcEvent::Returned { .. })))
        .unwrap();
    assert_eq!(at.duration_since(start), ms(600));
    assert_eq!(
        outcomes(&net, 0),
        vec![(c, net.address(1), Outcome::Undeliverable)]
    );
}

#[test]
fn a_call_whose_timeout_comes_before_any_ack_is_undeliverable_not_timed_out() {
    let mut net = net(2);
    net.partition = Some(vec![0, 1]);
    let dst = net.address(1);
    let start = net.now;
    let c = net
        .with(0, |ep, now| {
            ep.rpc().call(now, &dst, "any.op", vec![], ms(250))
        })
        .unwrap();
    net.run_for(ms(1000));
    let (at, _) = net.nodes[0]
        .events
        .iter()
        .find(|(_, e)| matches!(e, Event::Rpc(RpcEvent::Returned { .. })))
        .unwrap();
    assert_eq!(at.duration_since(start), ms(250));
    // Not "acknowledged, no answer": nothing says it arrived.
    assert_eq!(outcomes(&net, 0), vec![(c, dst, Outcome::Undeliverable)]);
}

#[test]
fn calls_to_unknown_or_ambiguous_destinations_are_refused_at_once() {
    let mut net = net(3);
    let nobody = Address::parse("(app:sim node:n9)").unwrap();
    let everybody = Address::parse("(app:sim)").unwrap();
    net.with(0, |ep, now| {
        assert!(ep
            .rpc()
            .call(now, &nobody, "x", vec![], DEFAULT_TIMEOUT)
            .is_err());
        assert!(ep
            .rpc()
            .call(now, &everybody, "x", vec![], DEFAULT_TIMEOUT)
            .is_err());
        // A unique subset is completed to the full address.
        let one = Address::parse("(node:n1)").unwrap();
        assert!(ep
            .rpc()
            .call(now, &one, "x", vec![], DEFAULT_TIMEOUT)
            .is_ok());
    });
}

#[test]
fn anycast_picks_one_volunteer_after_t_anycast() {
    for_seeds(20, |seed| {
        let mut net = Net::new(seed, Link::perfect());
        for _ in 0..4 {
            net.add("role:worker");
        }
        net.run_for(ms(3000));
        for i in [1, 2] {
            net.nodes[i].ep.rpc().serve("job.run");
            net.serve(i, move |_| {
                Some(Reply::ok(vec![Value::Integer(i as i64)]).into())
            });
        }
        let start = net.now;
        let workers = Address::parse("(role:worker)").unwrap();
        let c = net
            .with(0, |ep, now| {
                ep.rpc().call_group(
                    now,
                    &workers,
                    "job.run",
                    vec![],
                    RpcType::Anycast,
                    DEFAULT_TIMEOUT,
                )
            })
            .unwrap();
        net.run_for(ms(1000));
        let done = outcomes(&net, 0);
        assert_eq!(done.len(), 1);
        let (call, callee, outcome) = &done[0];
        assert_eq!(*call, c);
        let chosen = [1, 2]
            .into_iter()
            .find(|&i| net.address(i) == *callee)
            .unwrap();
        assert_eq!(
            *outcome,
            Outcome::Returned(Reply::ok(vec![Value::Integer(chosen as i64)]))
        );
        // Exactly one volunteer ran it, after T_anycast, via REFERENCE.
        let ran: Vec<usize> = (0..4).filter(|&i| !requests(&net, i).is_empty()).collect();
        assert_eq!(ran, vec![chosen]);
        let req = &requests(&net, chosen)[0];
        assert!(req.meta.get("REFERENCE").is_some());
        let (at, _) = net.nodes[chosen]
            .events
            .iter()
            .find(|(_, e)| matches!(e, Event::Rpc(RpcEvent::Request(_))))
            .unwrap();
        assert!(at.duration_since(start) >= ms(300));
    });
}

#[test]
fn anycast_without_volunteers_has_no_responder() {
    let mut net = net(3);
    let all = Address::parse("(app:sim)").unwrap();
    let c = net
        .with(0, |ep, now| {
            ep.rpc().call_group(
                now,
                &all,
                "job.run",
                vec![],
                RpcType::Anycast,
                DEFAULT_TIMEOUT,
            )
        })
        .unwrap();
    net.run_for(ms(400));
    assert_eq!(outcomes(&net, 0), vec![(c, all, Outcome::NoResponder)]);
}

#[test]
fn multicast_gives_one_outcome_per_expected_entity() {
    let mut net = net(4);
    for i in [1, 2] {
        net.nodes[i].ep.rpc().serve("stat.load");
        net.serve(i, move |_| {
            Some(Reply::ok(vec![Value::Integer(10 * i as i64)]).into())
        });
    }
    let all = Address::parse("(app:sim)").unwrap();
    let c = net
        .with(0, |ep, now| {
            ep.rpc()
                .call_group(now, &all, "stat.load", vec![], RpcType::Multicast, ms(1500))
        })
        .unwrap();
    net.run_for(ms(1000));
    assert!(net
        .events(0, |e| matches!(
            e,
            Event::Rpc(RpcEvent::GroupReturned { .. })
        )
        .then_some(()))
        .is_empty());
    net.run_for(ms(600));
    let results = net.events(0, |e| match e {
        Event::Rpc(RpcEvent::GroupReturned { call, results }) if *call == c => {
            Some(results.clone())
        }
        _ => None,
    });
    assert_eq!(results.len(), 1);
    let by: HashMap<Address, Outcome> = results[0].iter().cloned().collect();
    assert_eq!(by.len(), 3);
    assert_eq!(
        by[&net.address(1)],
        Outcome::Returned(Reply::ok(vec![Value::Integer(10)]))
    );
    assert_eq!(
        by[&net.address(2)],
        Outcome::Returned(Reply::ok(vec![Value::Integer(20)]))
    );
    assert_eq!(
        by[&net.address(3)],
        Outcome::TimedOut,
        "node 3 serves nothing and stays silent"
    );
    // Returns to a multicast call travel reliably.
    assert!(net.nodes[1].sent.iter().any(|(_, _, b)| {
        let m = open(b, &md5()).unwrap();
        m.header.kind == MessageType::Reliable
            && m.commands.iter().any(|c| c.name == "stat.load.return")
    }));
}

#[test]
fn multicast_ends_early_when_everybody_answered() {
    let mut net = net(3);
    for i in [1, 2] {
        net.nodes[i].ep.rpc().serve("stat.load");
        net.serve(i, |_| Some(Reply::ok(vec![]).into()));
    }
    let all = Address::parse("(app:sim)").unwrap();
    net.with(0, |ep, now| {
        ep.rpc()
            .call_group(now, &all, "stat.load", vec![], RpcType::Multicast, ms(5000))
    })
    .unwrap();
    net.run_for(ms(100));
    let results = net.events(0, |e| match e {
        Event::Rpc(RpcEvent::GroupReturned { results, .. }) => Some(results.len()),
        _ => None,
    });
    assert_eq!(results, vec![2]);
}

fn property_call(net: &mut Net, op: &str, args: Vec<Value>) -> Outcome {
    let c = call(net, 0, 1, op, args);
    net.run_for(ms(50));
    outcomes(net, 0)
        .into_iter()
        .find(|(id, _, _)| *id == c)
        .map(|(_, _, o)| o)
        .expect("an outcome")
}

#[test]
fn properties_get_set_watch_and_unwatch() {
    let mut net = net(2);
    net.nodes[1]
        .ep
        .properties()
        .define("audio.volume", Value::Integer(5), Access::ReadWrite);
    net.nodes[1]
        .ep
        .properties()
        .define("audio.codec", Value::symbol("PCMU"), Access::ReadOnly);
    let ok = |v: Vec<Value>| Outcome::Returned(Reply::ok(v));
    assert_eq!(
        property_call(&mut net, "audio.volume.get", vec![]),
        ok(vec![Value::Integer(5)])
    );
    assert_eq!(
        property_call(&mut net, "audio.volume.watch", vec![]),
        ok(vec![Value::Integer(5)])
    );
    let watcher = net.address(0);
    assert_eq!(
        net.nodes[1].ep.properties().watchers("audio.volume"),
        &[watcher]
    );
    assert_eq!(
        property_call(&mut net, "audio.volume.set", vec![Value::Integer(7)]),
        ok(vec![Value::Integer(7)])
    );
    assert_eq!(
        net.nodes[1].ep.properties().value("audio.volume"),
        Some(&Value::Integer(7))
    );
    let changed = net.events(1, |e| match e {
        Event::Property(PropertyEvent::Changed { name, value, by }) => {
            Some((name.clone(), value.clone(), by.clone()))
        }
        _ => None,
    });
    assert_eq!(
        changed,
        vec![("audio.volume".to_owned(), Value::Integer(7), net.address(0))]
    );
    // The owner changes it: the watcher hears `audio.volume (9)`.
    net.with(1, |ep, now| {
        assert!(ep.properties().set(now, "audio.volume", Value::Integer(9)))
    });
    net.run_for(ms(50));
    let heard = net.events(0, |e| match e {
        Event::Command { command, .. } if command.name == "audio.volume" => {
            Some(command.args.clone())
        }
        _ => None,
    });
    assert_eq!(
        heard,
        vec![vec![Value::Integer(7)], vec![Value::Integer(9)]]
    );
    let failed = |symbol: &str, out: Outcome| match out {
        Outcome::Returned(r) => !r.is_ok() && r.result == symbol,
        _ => false,
    };
    assert!(failed(
        "READ_ONLY",
        property_call(&mut net, "audio.codec.set", vec![Value::symbol("GSM")])
    ));
    assert!(failed(
        "NO_SUCH_PROPERTY",
        property_call(&mut net, "audio.treble.get", vec![])
    ));
    assert!(failed(
        "BAD_ARGUMENTS",
        property_call(&mut net, "audio.volume.set", vec![])
    ));
    assert_eq!(
        property_call(&mut net, "audio.volume.unwatch", vec![]),
        ok(vec![])
    );
    assert!(failed(
        "NOT_SUBSCRIBED",
        property_call(&mut net, "audio.volume.unwatch", vec![])
    ));
    net.with(1, |ep, now| {
        ep.properties().set(now, "audio.volume", Value::Integer(1))
    });
    net.run_for(ms(50));
    assert_eq!(
        net.events(0, |e| {
            matches!(e, Event::Command { command, .. } if command.name == "audio.volume")
                .then_some(())
        })
        .len(),
        2,
        "no notification after unwatch"
    );
}

#[test]
fn watchers_that_leave_the_bus_are_forgotten() {
    let mut net = net(3);
    net.nodes[1]
        .ep
        .properties()
        .define("p", Value::Integer(0), Access::ReadWrite);
    property_call(&mut net, "p.watch", vec![]);
    let dst = net.address(1);
    net.with(2, |ep, now| {
        ep.rpc().call(now, &dst, "p.watch", vec![], DEFAULT_TIMEOUT)
    })
    .unwrap();
    net.run_for(ms(50));
    assert_eq!(net.nodes[1].ep.properties().watchers("p").len(), 2);
    net.with(0, |ep, now| ep.close(now));
    net.run_for(ms(50));
    let watcher = net.address(2);
    assert_eq!(net.nodes[1].ep.properties().watchers("p"), &[watcher]);
}

#[test]
fn malformed_requests_get_a_failed_return_and_strays_are_counted() {
    let mut net = net(2);
    let to = net.address(1);
    net.send(
        0,
        &to,
        vec![Command::new(
            "calc.double",
            vec![
                Value::List(vec![
                    Value::List(vec![Value::string("ID"), Value::string("77")]),
                    Value::List(vec![Value::string("RPC-TYPE"), Value::string("SIDEWAYS")]),
                ]),
                Value::List(vec![]),
            ],
        )],
        rmbus::proto::Delivery::Reliable,
    )
    .unwrap();
    // A return for a call nobody made, and a malformed one.
    let back = net.address(0);
    net.send(
        1,
        &back,
        vec![
            RpcReturn {
                op: "calc.double".into(),
                rpc_id: "999".into(),
                answer: Answer::Reply(Reply::ok(vec![])),
            }
            .into_command(),
            Command::new(
                "calc.double.return",
                vec![
                    Value::List(vec![Value::List(vec![
                        Value::string("ID"),
                        Value::string("5"),
                    ])]),
                    Value::Integer(3),
                ],
            ),
        ],
        rmbus::proto::Delivery::Unreliable,
    )
    .unwrap();
    net.run_for(ms(50));
    assert_eq!(net.nodes[1].ep.stats().rpc_malformed, 1);
    // Node 0 made no calls: both returns (ours, and the FAILED one node 1
    // sent back) are strays to it; the malformed one is counted as such.
    assert_eq!(net.nodes[0].ep.stats().rpc_stray, 2);
    assert_eq!(net.nodes[0].ep.stats().rpc_malformed, 1);
    assert!(net
        .events(0, |e| matches!(e, Event::Command { .. }).then_some(()))
        .is_empty());
    let returns: Vec<Command> = net.nodes[1]
        .sent
        .iter()
        .flat_map(|(_, _, b)| open(b, &md5()).unwrap().commands)
        .filter(|c| c.name == "calc.double.return")
        .collect();
    let answers: Vec<_> = returns
        .iter()
        .filter_map(|c| RpcReturn::from_command(c).ok())
        .filter(|r| r.rpc_id == "77")
        .collect();
    assert_eq!(answers.len(), 1);
    let ret = answers[0].clone();
    match ret.answer {
        Answer::Reply(r) => {
            assert_eq!(r.result, "MALFORMED_REQUEST");
            assert!(r.description.contains("SIDEWAYS"), "{}", r.description);
        }
        other => panic!("{other:?}"),
    }
    assert!(requests(&net, 1).is_empty());
}

#[test]
fn a_thousand_concurrent_calls_are_correlated_under_loss() {
    for_seeds(10, |seed| {
        let mut net = Net::new(seed, Link::lossy(0.2));
        net.add("");
        net.add("");
        // At 20 % loss all five hellos one way are lost about once in 3,000
        // runs: wait for the two to meet, with a generous bound.
        assert!(net.run_until_converged(ms(60_000)), "never converged");
        net.nodes[1].ep.rpc().serve("calc.double");
        net.serve(1, |r| {
            let n = r.args.first().and_then(Value::as_i64)?;
            Some(Reply::ok(vec![Value::Integer(2 * n)]).into())
        });
        let mut calls = HashMap::new();
        for n in 0..1000i64 {
            let c = call(&mut net, 0, 1, "calc.double", vec![Value::Integer(n)]);
            calls.insert(c, n);
        }
        net.run_for(ms(3000));
        let done = outcomes(&net, 0);
        assert_eq!(done.len(), 1000, "every call ends exactly once");
        let mut returned = 0;
        let mut seen = std::collections::HashSet::new();
        for (c, _, o) in done {
            assert!(seen.insert(c), "call {c:?} ended twice");
            let n = calls[&c];
            match o {
                Outcome::Returned(r) => {
                    assert_eq!(
                        r.values,
                        vec![Value::Integer(2 * n)],
                        "call {c:?} got another call's result"
                    );
                    returned += 1;
                }
                Outcome::Undeliverable | Outcome::TimedOut => {}
                other => panic!("unexpected {other:?}"),
            }
        }
        assert!(
            returned > 900,
            "only {returned} of 1000 returned at 20 % loss"
        );
        // Each request ran at most once, even when retransmitted.
        let ran = requests(&net, 1);
        let mut ids = std::collections::HashSet::new();
        assert!(ran.iter().all(|r| ids.insert(r.rpc_id.clone())));
        assert_eq!(net.nodes[0].ep.rpc().open_calls(), 0);
    });
}

#[test]
fn requests_beyond_the_bound_forget_the_oldest() {
    let mut config = endpoint_config(3);
    config.limits.max_open_requests = 2;
    let mut net = Net::new(3, Link::perfect());
    net.add("");
    net.add_with("", config);
    net.run_for(ms(3000));
    net.nodes[1].ep.rpc().serve("q");
    for _ in 0..3 {
        call(&mut net, 0, 1, "q", vec![]);
    }
    net.run_for(ms(20));
    assert_eq!(net.nodes[1].ep.rpc().open_requests(), 2);
    let first = requests(&net, 1)[0].id;
    assert!(net
        .with(1, |ep, now| ep.rpc().reply(now, first, Reply::ok(vec![])))
        .is_err());
    assert_eq!(net.nodes[1].ep.stats().queue_drops, 1);
}

fn txn_events(net: &Net, i: usize) -> Vec<Event> {
    net.events(i, |e| {
        matches!(
            e,
            Event::Txn(TxnEvent::Request(_))
                | Event::Txn(TxnEvent::Committed { .. })
                | Event::Txn(TxnEvent::Cancelled { .. })
                | Event::Txn(TxnEvent::Acked { .. })
                | Event::Txn(TxnEvent::Ended { .. })
        )
        .then(|| e.clone())
    })
}

fn open_txn(net: &Net, i: usize) -> rmbus::rpc::OpenTxnId {
    net.events(i, |e| match e {
        Event::Txn(TxnEvent::Request(t)) => Some(t.id),
        _ => None,
    })
    .pop()
    .expect("a transaction request")
}

#[test]
fn a_transaction_is_acked_committed_and_completed() {
    use rmbus::rpc::{TxnOutcome, TxnStatus};
    let mut net = net(2);
    net.nodes[1].ep.transactions().serve("conf.call.setup");
    let dst = net.address(1);
    let txn = net
        .with(0, |ep, now| {
            ep.transactions().begin(
                now,
                &dst,
                "conf.call.setup",
                vec![Value::string("joe")],
                ms(1000),
            )
        })
        .unwrap();
    net.run_for(ms(20));
    let Some(Event::Txn(TxnEvent::Request(req))) = txn_events(&net, 1).pop() else {
        panic!("no request")
    };
    assert_eq!(
        (req.name.as_str(), req.args.clone()),
        ("conf.call.setup", vec![Value::string("joe")])
    );
    assert_eq!(req.src, net.address(0));
    // A commit before the OK is refused locally.
    assert!(net
        .with(0, |ep, now| ep.transactions().commit(now, txn))
        .is_err());
    net.with(1, |ep, now| {
        ep.transactions().ack(now, req.id, TxnStatus::Ok)
    })
    .unwrap();
    net.run_for(ms(20));
    assert_eq!(
        txn_events(&net, 0),
        vec![Event::Txn(TxnEvent::Acked { txn })]
    );
    net.with(0, |ep, now| ep.transactions().commit(now, txn))
        .unwrap();
    net.run_for(ms(20));
    assert_eq!(
        txn_events(&net, 1).last(),
        Some(&Event::Txn(TxnEvent::Committed { id: req.id }))
    );
    // A cancel after the commit: refused by the client, and by the server
    // when it comes anyway.
    assert!(net
        .with(0, |ep, now| ep.transactions().cancel(now, txn))
        .is_err());
    let forged = TxnControl {
        name: "conf.call.setup".into(),
        verb: ControlVerb::Cancel,
        tid: txn.0.to_string(),
    }
    .into_command();
    net.send(0, &dst, vec![forged], rmbus::proto::Delivery::Reliable)
        .unwrap();
    net.run_for(ms(20));
    assert_eq!(net.nodes[1].ep.stats().txn_refused, 1);
    assert!(!txn_events(&net, 1)
        .iter()
        .any(|e| matches!(e, Event::Txn(TxnEvent::Cancelled { .. }))));
    net.with(1, |ep, now| {
        ep.transactions().complete(now, req.id, TxnStatus::Ok)
    })
    .unwrap();
    net.run_for(ms(20));
    assert_eq!(
        txn_events(&net, 0).last(),
        Some(&Event::Txn(TxnEvent::Ended {
            txn,
            outcome: TxnOutcome::Completed(TxnStatus::Ok)
        }))
    );
    assert_eq!(net.nodes[1].ep.transactions().open(), 0);
    // The wire shapes are the draft's.
    let said: Vec<String> = net.nodes[1]
        .sent
        .iter()
        .flat_map(|(_, _, b)| open(b, &md5()).unwrap().commands)
        .filter(|c| c.name.starts_with("conf.call.setup"))
        .map(|c| c.to_string())
        .collect();
    assert_eq!(
        said,
        vec![
            format!(r#"conf.call.setup.ack ("{}" OK)"#, txn.0),
            format!(r#"conf.call.setup.completed ("{}" OK)"#, txn.0)
        ]
    );
}

#[test]
fn a_transaction_cancelled_before_commit_completes_cancelled() {
    use rmbus::rpc::{TxnOutcome, TxnStatus};
    let mut net = net(2);
    net.nodes[1].ep.transactions().serve("t.op");
    let dst = net.address(1);
    let txn = net
        .with(0, |ep, now| {
            ep.transactions().begin(now, &dst, "t.op", vec![], ms(1000))
        })
        .unwrap();
    net.run_for(ms(20));
    let id = open_txn(&net, 1);
    net.with(1, |ep, now| ep.transactions().ack(now, id, TxnStatus::Ok))
        .unwrap();
    net.run_for(ms(20));
    net.with(0, |ep, now| ep.transactions().cancel(now, txn))
        .unwrap();
    net.run_for(ms(20));
    assert_eq!(
        txn_events(&net, 1).last(),
        Some(&Event::Txn(TxnEvent::Cancelled { id }))
    );
    assert_eq!(
        txn_events(&net, 0).last(),
        Some(&Event::Txn(TxnEvent::Ended {
            txn,
            outcome: TxnOutcome::Completed(TxnStatus::Cancelled)
        }))
    );
    // Nothing left to complete.
    assert!(net
        .with(1, |ep, now| ep.transactions().complete(
            now,
            id,
            TxnStatus::Ok
        ))
        .is_err());
}

#[test]
fn a_refused_or_silent_transaction_ends_for_its_client() {
    use rmbus::rpc::{TxnOutcome, TxnStatus};
    let mut net = net(2);
    net.nodes[1].ep.transactions().serve("t.op");
    let dst = net.address(1);
    let refused = net
        .with(0, |ep, now| {
            ep.transactions().begin(now, &dst, "t.op", vec![], ms(1000))
        })
        .unwrap();
    net.run_for(ms(20));
    let id = open_txn(&net, 1);
    net.with(1, |ep, now| {
        ep.transactions().ack(now, id, TxnStatus::Failed)
    })
    .unwrap();
    net.run_for(ms(20));
    assert_eq!(
        txn_events(&net, 0).last(),
        Some(&Event::Txn(TxnEvent::Ended {
            txn: refused,
            outcome: TxnOutcome::Refused(TxnStatus::Failed)
        }))
    );
    let start = net.now;
    let silent = net
        .with(0, |ep, now| {
            ep.transactions().begin(now, &dst, "t.op", vec![], ms(700))
        })
        .unwrap();
    net.run_for(ms(1000));
    let (at, e) = net.nodes[0].events.last().unwrap().clone();
    assert_eq!(
        e,
        Event::Txn(TxnEvent::Ended {
            txn: silent,
            outcome: TxnOutcome::TimedOut
        })
    );
    assert_eq!(at.duration_since(start), ms(700));
}

fn registration(net: &mut Net, from: usize, op: &str, args: Vec<Value>) -> Outcome {
    let c = call(net, from, 1, op, args);
    net.run_for(ms(50));
    outcomes(net, from)
        .into_iter()
        .find(|(id, _, _)| *id == c)
        .map(|(_, _, o)| o)
        .expect("an outcome")
}

fn heard(net: &Net, i: usize, name: &str) -> usize {
    net.events(i, |e| {
        matches!(e, Event::Command { command, .. } if command.name == name).then_some(())
    })
    .len()
}

#[test]
fn notifications_follow_registration_in_the_no_control_model() {
    use rmbus::rpc::{address_value, ServiceModel};
    let mut net = net(4);
    let gui = net.address(2);
    net.nodes[1]
        .ep
        .services()
        .define("audio.levels", gui.clone(), ServiceModel::NoControl);
    let notify = |net: &mut Net| {
        net.with(1, |ep, now| {
            ep.services()
                .notify(now, "audio.levels.input", vec![Value::Integer(3)])
        })
        .unwrap()
    };
    assert_eq!(notify(&mut net), 1);
    net.run_for(ms(50));
    assert_eq!(
        heard(&net, 2, "audio.levels.input"),
        1,
        "the default target hears it"
    );

    let me = address_value(&net.address(3));
    let out = registration(
        &mut net,
        3,
        "mbus.register",
        vec![Value::string("audio.levels"), me.clone()],
    );
    assert_eq!(
        out,
        Outcome::Returned(Reply::ok(vec![Value::List(vec![me.clone()])]))
    );
    let client = net.address(3);
    assert_eq!(
        net.nodes[1].ep.services().registered("audio.levels"),
        &[client]
    );
    assert_eq!(
        heard(&net, 2, "mbus.registered"),
        1,
        "the old target is told"
    );
    notify(&mut net);
    net.run_for(ms(50));
    assert_eq!(heard(&net, 3, "audio.levels.input"), 1);
    assert_eq!(
        heard(&net, 2, "audio.levels.input"),
        1,
        "redirected away from the default"
    );

    let out = registration(
        &mut net,
        0,
        "mbus.get-registered",
        vec![Value::string("audio.levels")],
    );
    assert_eq!(
        out,
        Outcome::Returned(Reply::ok(vec![Value::List(vec![me.clone()])]))
    );
    let failed =
        |o: Outcome, sym: &str| matches!(o, Outcome::Returned(r) if !r.is_ok() && r.result == sym);
    assert!(failed(
        registration(
            &mut net,
            0,
            "mbus.get-registered",
            vec![Value::string("video")]
        ),
        "NO_SUCH_COMMAND"
    ));
    assert!(failed(
        registration(
            &mut net,
            0,
            "mbus.register",
            vec![Value::string("audio.levels"), Value::Integer(1)]
        ),
        "BAD_ARGUMENTS"
    ));
    let nobody = address_value(&Address::parse("(module:nobody)").unwrap());
    assert!(failed(
        registration(
            &mut net,
            0,
            "mbus.deregister",
            vec![Value::string("audio.levels"), nobody]
        ),
        "NOT_REGISTERED"
    ));
    let out = registration(
        &mut net,
        3,
        "mbus.deregister",
        vec![Value::string("audio.levels"), me],
    );
    assert_eq!(out, Outcome::Returned(Reply::ok(vec![Value::List(vec![])])));
    assert_eq!(
        heard(&net, 3, "mbus.registered"),
        1,
        "the old client list is told"
    );
    notify(&mut net);
    net.run_for(ms(50));
    assert_eq!(
        heard(&net, 2, "audio.levels.input"),
        2,
        "back to the default target"
    );
}

#[test]
fn tight_control_accepts_only_registered_controllers() {
    use rmbus::rpc::{address_value, ServiceModel};
    let mut net = net(4);
    let gui = net.address(2);
    net.nodes[1]
        .ep
        .services()
        .define("mixer", gui, ServiceModel::ExclusiveTight);
    net.nodes[1].ep.rpc().serve("mixer.mute");
    net.serve(1, |_| Some(Reply::ok(vec![]).into()));
    let denied = |o: Outcome| matches!(o, Outcome::Returned(r) if r.result == "DENIED");
    assert!(denied(registration(&mut net, 0, "mixer.mute", vec![])));
    // Nothing goes to the default target under tight control.
    assert_eq!(
        net.with(1, |ep, now| ep.services().notify(
            now,
            "mixer.level",
            vec![]
        ))
        .unwrap(),
        0
    );
    let me = address_value(&net.address(0));
    registration(
        &mut net,
        0,
        "mbus.register",
        vec![Value::string("mixer"), me],
    );
    assert_eq!(
        registration(&mut net, 0, "mixer.mute", vec![]),
        Outcome::Returned(Reply::ok(vec![]))
    );
    // Exclusive: a second controller is denied, and cannot use it either.
    let other = address_value(&net.address(3));
    assert!(denied(registration(
        &mut net,
        3,
        "mbus.register",
        vec![Value::string("mixer"), other]
    )));
    assert!(denied(registration(&mut net, 3, "mixer.mute", vec![])));
    // A plain command from a non-controller is dropped and counted.
    let to = net.address(1);
    net.send(
        3,
        &to,
        vec![Command::new("mixer.reset", vec![])],
        rmbus::proto::Delivery::Unreliable,
    )
    .unwrap();
    net.run_for(ms(50));
    assert_eq!(heard(&net, 1, "mixer.reset"), 0);
    assert_eq!(
        net.nodes[1].ep.stats().denied,
        3,
        "two requests and one command"
    );
    // The controller leaves: the service is free again.
    net.with(0, |ep, now| ep.close(now));
    net.run_for(ms(50));
    assert!(net.nodes[1].ep.services().registered("mixer").is_empty());
    let other = address_value(&net.address(3));
    assert_eq!(
        registration(
            &mut net,
            3,
            "mbus.register",
            vec![Value::string("mixer"), other.clone()]
        ),
        Outcome::Returned(Reply::ok(vec![Value::List(vec![other])]))
    );
}

#[test]
fn a_unicast_rpc_sent_to_a_group_draws_no_unknown_answers() {
    let mut net = net(4);
    let all = Address::parse("(app:sim)").unwrap();
    let request = RpcRequest::new("no.such", "5", RpcType::Unicast, &[], vec![]).into_command();
    net.send(0, &all, vec![request], rmbus::proto::Delivery::Unreliable)
        .unwrap();
    net.run_for(ms(50));
    for i in 1..4 {
        let answered = net.nodes[i].sent.iter().any(|(_, _, b)| {
            open(b, &md5())
                .unwrap()
                .commands
                .iter()
                .any(|c| c.name == "no.such.return")
        });
        assert!(!answered, "node {i} answered a group");
        assert_eq!(net.nodes[i].ep.stats().rpc_requests, 1);
    }
}

#[test]
fn closing_ends_every_open_call_and_transaction() {
    use rmbus::rpc::TxnOutcome;
    let mut net = net(3);
    net.nodes[1].ep.rpc().serve("slow.op");
    net.nodes[2].ep.rpc().serve("slow.op");
    net.nodes[1].ep.transactions().serve("t.op");
    let unicast = call(&mut net, 0, 1, "slow.op", vec![]);
    let all = Address::parse("(app:sim)").unwrap();
    let group = net
        .with(0, |ep, now| {
            ep.rpc()
                .call_group(now, &all, "slow.op", vec![], RpcType::Multicast, ms(5000))
        })
        .unwrap();
    let dst = net.address(1);
    let txn = net
        .with(0, |ep, now| {
            ep.transactions().begin(now, &dst, "t.op", vec![], ms(5000))
        })
        .unwrap();
    net.run_for(ms(50));
    net.with(0, |ep, now| ep.close(now));
    assert_eq!(
        outcomes(&net, 0),
        vec![(unicast, net.address(1), Outcome::Closed)]
    );
    let group_results = net.events(0, |e| match e {
        Event::Rpc(RpcEvent::GroupReturned { call, results }) if *call == group => {
            Some(results.clone())
        }
        _ => None,
    });
    assert_eq!(group_results.len(), 1);
    assert_eq!(group_results[0].len(), 2);
    assert!(group_results[0].iter().all(|(_, o)| *o == Outcome::Closed));
    assert_eq!(
        txn_events(&net, 0).last(),
        Some(&Event::Txn(TxnEvent::Ended {
            txn,
            outcome: TxnOutcome::Closed
        }))
    );
    assert_eq!(net.nodes[0].ep.rpc().open_calls(), 0);
}
