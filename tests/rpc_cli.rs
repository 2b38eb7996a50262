//! `rmbus call`, `get`, `set`, `watch` and `join`'s `call`/`return` actions as
//! separate processes on a host-local bus of their own; a property-serving
//! entity runs in this process on the same bus (real sockets, its own thread).

mod common;
mod procs;

use std::process::Command;
use std::time::{Duration, Instant};

use procs::*;
use rmbus::rpc::{Access, Reply};
use rmbus::runtime::Handled;
use rmbus::wire::{Address, Value};
use serde_json::Value as Json;

fn run(bus: &Bus, args: &[&str]) -> (Option<i32>, String, String) {
    let out = rmbus(bus).args(args).output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Starts `rmbus call …` and answers its request from `server` with `answer`.
fn call_answered(bus: &Bus, server: &mut Proc, op: &str, answer: &str) -> (i32, Vec<String>) {
    let caller = start_call(bus, &["--json", "(module:server)", op, "(21)"]);
    let req = server.expect("request", |j| event(j, "request") && j["name"] == op);
    server.say(&format!(
        "return {} {answer}",
        req["rpc_id"].as_str().unwrap()
    ));
    finish(caller)
}

#[test]
fn call_prints_the_outcome_and_exits_by_it() {
    let bus = bus();
    let mut server = Proc::join(&bus, "server");
    server.address();

    let (code, out) = call_answered(
        &bus,
        &mut server,
        "calc.double",
        r#"OK DOUBLED "fine" (42)"#,
    );
    assert_eq!(code, 0, "{out:?}");
    let j: Json = serde_json::from_str(&out[0]).unwrap();
    assert_eq!(j["outcome"], "ok");
    assert_eq!(j["result"], "DOUBLED");
    assert_eq!(j["description"], "fine");
    assert_eq!(j["values"][0]["int"], 42, "{j}");
    // The request carried the argument as sent.
    let req = server.expect("request", |j| {
        event(j, "request") && j["name"] == "calc.double"
    });
    assert_eq!(req["type"], "UNICAST");
    assert_eq!(req["args"][0]["int"], 21, "{req}");

    let (code, out) = call_answered(
        &bus,
        &mut server,
        "calc.refuse",
        r#"FAILED NOT_TODAY "closed""#,
    );
    assert_eq!(code, 1, "{out:?}");
    let j: Json = serde_json::from_str(&out[0]).unwrap();
    assert_eq!(
        (j["outcome"].as_str(), j["result"].as_str()),
        (Some("failed"), Some("NOT_TODAY"))
    );

    let (code, _) = call_answered(&bus, &mut server, "calc.what", "UNKNOWN");
    assert_eq!(code, 2);

    // The server sees the request and never answers: exit 3 after --timeout.
    let started = Instant::now();
    let (code, _, err) = run(
        &bus,
        &["call", "--timeout", "300", "(module:server)", "calc.slow"],
    );
    assert_eq!(code, Some(3), "{err}");
    assert!(err.contains("no return in time"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(20));

    // Nobody there, two entities match, bad arguments: 2.
    let (code, _, err) = run(&bus, &["call", "--wait", "0.5", "(module:nobody)", "x.y"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("unknown callee"), "{err}");
    // With --json the failure is one outcome object too.
    let (code, out, err) = run(
        &bus,
        &["call", "--json", "--wait", "0.5", "(module:nobody)", "x.y"],
    );
    assert_eq!(code, Some(2), "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 1, "one object: {out}");
    let j: Json = serde_json::from_str(lines[0]).unwrap();
    assert_eq!(
        (j["outcome"].as_str(), j["exit"].as_u64()),
        (Some("error"), Some(2)),
        "{j}"
    );
    assert!(
        j["error"].as_str().unwrap().contains("unknown callee"),
        "{j}"
    );
    let mut twin = Proc::join(&bus, "server");
    twin.address();
    let (code, _, err) = run(&bus, &["call", "(module:server)", "x.y"]);
    assert_eq!(code, Some(2), "{err}");
    let (code, _, _) = run(&bus, &["call", "(module:server)", "x.y", "(unclosed"]);
    assert_eq!(code, Some(2));
}

/// `rmbus call` with `args`, run in the background.
fn start_call(bus: &Bus, args: &[&str]) -> Proc {
    let mut call = rmbus(bus);
    call.arg("call").args(args);
    Proc::start(call)
}

/// The exit code and stdout lines of a finished `start_call`.
fn finish(mut caller: Proc) -> (i32, Vec<String>) {
    let code = caller.wait_exit();
    while let Ok(line) = caller.lines.recv_timeout(Duration::from_millis(200)) {
        caller.seen.push(line);
    }
    (code, caller.seen.clone())
}

#[test]
fn call_multicast_and_anycast_reach_a_group() {
    let bus = bus();
    let mut one = Proc::join(&bus, "server n:one");
    let mut two = Proc::join(&bus, "server n:two");
    let (one_addr, two_addr) = (one.address(), two.address());

    // MULTICAST: both are called; one says OK, the other FAILED, so the exit is
    // FAILED's 1, and both outcomes are printed in address order.
    let caller = start_call(
        &bus,
        &["--json", "--multicast", "(module:server)", "calc.who", "()"],
    );
    for (server, answer) in [
        (&mut one, "OK ME \"\" (1)"),
        (&mut two, "FAILED BUSY \"later\""),
    ] {
        let req = server.expect("request", |j| {
            event(j, "request") && j["name"] == "calc.who"
        });
        assert_eq!(req["type"], "MULTICAST", "{req}");
        server.say(&format!("return #{} {answer}", req["request"]));
    }
    let (code, out) = finish(caller);
    assert_eq!(code, 1, "{out:?}");
    let got: Vec<(String, String)> = out
        .iter()
        .map(|l| serde_json::from_str::<Json>(l).unwrap())
        .map(|j| {
            (
                j["callee"].as_str().unwrap().to_owned(),
                j["outcome"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let mut want = vec![
        (one_addr.clone(), "ok".to_owned()),
        (two_addr.clone(), "failed".to_owned()),
    ];
    want.sort();
    assert_eq!(got, want);

    // ANYCAST: one volunteer gets the request; its return is the outcome.
    let caller = start_call(
        &bus,
        &["--json", "--anycast", "(module:server)", "calc.any", "()"],
    );
    let until = Instant::now() + Duration::from_secs(20);
    let (server, addr, req) = 'found: loop {
        assert!(Instant::now() < until, "no server got the anycast request");
        for (server, addr) in [(&mut one, &one_addr), (&mut two, &two_addr)] {
            if let Ok(line) = server.lines.recv_timeout(Duration::from_millis(50)) {
                server.seen.push(line.clone());
                let j: Json = serde_json::from_str(&line).unwrap();
                if event(&j, "request") && j["name"] == "calc.any" {
                    break 'found (server, addr.clone(), j);
                }
            }
        }
    };
    assert_eq!(req["type"], "ANYCAST", "{req}");
    server.say(&format!("return #{} OK CHOSEN \"\"", req["request"]));
    let (code, out) = finish(caller);
    assert_eq!(code, 0, "{out:?}");
    let j: Json = serde_json::from_str(&out[0]).unwrap();
    assert_eq!(
        (j["callee"].as_str(), j["result"].as_str()),
        (Some(addr.as_str()), Some("CHOSEN"))
    );

    // Nobody in the group: exit 2 (an unknown destination) once --wait has passed.
    let (code, _, err) = run(
        &bus,
        &[
            "call",
            "--wait",
            "0.3",
            "--multicast",
            "(module:nobody)",
            "calc.who",
            "()",
        ],
    );
    assert_eq!(code, Some(2), "an unknown destination: {err}");
    assert!(err.contains("no entity"), "{err}");
    // Either group form or neither.
    let (code, _, _) = run(
        &bus,
        &[
            "call",
            "--anycast",
            "--multicast",
            "(module:server)",
            "calc.who",
            "()",
        ],
    );
    assert_eq!(code, Some(2));
}

#[test]
fn join_calls_and_returns_with_action_ids() {
    let bus = bus();
    let (mut a, mut b, _, b_addr) = pair(&bus, "a", "b");
    a.say(&format!("call {b_addr} calc.add (2 3)"));
    let req = b.expect("request", |j| {
        event(j, "request") && j["name"] == "calc.add"
    });
    assert_eq!(req["args"][1]["int"], 3);
    // A bad return line is an error event, and the entity keeps running.
    b.say("return");
    b.expect("error", |j| event(j, "error") && j["id"] == 1);
    b.say("return nosuch OK");
    b.expect("error", |j| event(j, "error") && j["id"] == 2);
    b.say(&format!("return #{} OK SUM \"\" (5)", req["request"]));
    b.expect("ok", |j| {
        event(j, "ok") && j["id"] == 3 && j["action"] == "return"
    });
    let ret = a.expect("returned", |j| event(j, "returned"));
    assert_eq!(ret["id"], 1, "the outcome carries the call's line id");
    assert_eq!(ret["outcome"], "ok");
    assert_eq!(ret["result"], "SUM");
    assert_eq!(ret["values"][0]["int"], 5);
    // An unanswered call times out for the caller (join --timeout default 2 s),
    // and end of input waits for it before the bye.
    a.say(&format!("call {b_addr} calc.never ()"));
    b.expect("second request", |j| {
        event(j, "request") && j["name"] == "calc.never"
    });
    a.end_input();
    let ret = a.expect("timeout", |j| event(j, "returned") && j["id"] == 2);
    assert_eq!(ret["outcome"], "timeout");
    assert_eq!(a.wait_exit(), 0);
}

#[test]
fn get_set_and_watch_a_property() {
    let bus = bus();
    let (server, _events) = rmbus::runtime::spawn(
        &bus.config,
        &Address::parse("(app:test module:mixer)").unwrap(),
    )
    .unwrap();
    server
        .with(|bus| {
            bus.with_endpoint(|ep, _| {
                ep.properties()
                    .define("audio.volume", Value::Integer(5), Access::ReadWrite)
            });
            bus.serve("mixer.reset", |_| Handled::from(Reply::ok(vec![])));
        })
        .unwrap();
    let value = |name: &'static str| {
        server
            .with_endpoint(move |ep, _| ep.properties().value(name).cloned())
            .unwrap()
    };

    let (code, out, err) = run(&bus, &["get", "(module:mixer)", "audio.volume"]);
    assert_eq!((code, out.as_str()), (Some(0), "5\n"), "{err}");
    let (code, out, err) = run(&bus, &["set", "(module:mixer)", "audio.volume", "7"]);
    assert_eq!((code, out.as_str()), (Some(0), "7\n"), "{err}");
    assert_eq!(value("audio.volume"), Some(Value::Integer(7)));
    let (code, _, err) = run(&bus, &["get", "(module:mixer)", "audio.treble"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("NO_SUCH_PROPERTY"), "{err}");
    let (code, _, err) = run(
        &bus,
        &["set", "(module:mixer)", "audio.volume", "(unclosed"],
    );
    assert_eq!(code, Some(2), "{err}");
    // A value of another type: refused with --strict, else made with a word.
    let (code, _, err) = run(
        &bus,
        &["set", "--strict", "(module:mixer)", "audio.volume", "abc"],
    );
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("audio.volume is an Integer 7; abc is a Symbol abc"),
        "{err}"
    );
    assert_eq!(value("audio.volume"), Some(Value::Integer(7)), "not set");
    let (code, _, err) = run(&bus, &["set", "(module:mixer)", "audio.volume", "abc"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("the property changes type"), "{err}");
    assert_eq!(value("audio.volume"), Some(Value::symbol("abc")));
    let (code, _, err) = run(&bus, &["set", "(module:mixer)", "audio.volume", "7"]);
    assert_eq!(code, Some(0), "{err}");
    // With --strict, a type that cannot be read is no type checked.
    let (code, _, err) = run(
        &bus,
        &["set", "--strict", "(module:mixer)", "audio.treble", "1"],
    );
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("cannot be checked"), "{err}");
    let (code, out, _) = run(&bus, &["call", "(module:mixer)", "mixer.reset"]);
    assert_eq!((code, out.as_str()), (Some(0), "(OK OK \"\")\n()\n"));

    let mut watch = rmbus(&bus);
    watch.args(["watch", "--json", "(module:mixer)", "audio.volume"]);
    let mut watcher = Proc::start(watch);
    let first = watcher.expect("current value", |j| {
        event(j, "value") && j["value"]["int"] == 7
    });
    assert_eq!(first["property"], "audio.volume", "{first}");
    let watching = |n: usize| {
        let until = Instant::now() + Duration::from_secs(30);
        loop {
            let count = server
                .with_endpoint(|ep, _| ep.properties().watchers("audio.volume").len())
                .unwrap();
            if count == n {
                return;
            }
            assert!(
                Instant::now() < until,
                "watchers stayed {count}, wanted {n}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    watching(1);
    assert!(server
        .with_endpoint(|ep, now| ep.properties().set(now, "audio.volume", Value::Integer(9)))
        .unwrap());
    let changed = watcher.expect("change", |j| event(j, "changed"));
    assert_eq!(changed["value"]["int"], 9, "{changed}");
    // Every line has the same top level.
    let keys = |j: &Json| {
        let mut k: Vec<String> = j.as_object().unwrap().keys().cloned().collect();
        k.sort();
        k
    };
    assert_eq!(keys(&first), keys(&changed), "{first} / {changed}");
    // SIGTERM: it unwatches, says bye and exits 0.
    nix_kill(watcher.child.id());
    assert_eq!(watcher.wait_exit(), 0);
    watching(0);
}

fn nix_kill(pid: u32) {
    let status = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn join_refuses_an_answer_two_callers_share_naming_both_and_takes_the_request_number() {
    let bus = bus();
    let mut server = Proc::join(&bus, "server");
    server.address();
    // Two callers, each numbering its calls from 0: one RPC ID, two requests.
    let first = start_call(
        &bus,
        &[
            "--json",
            "--timeout",
            "30000",
            "(module:server)",
            "calc.one",
            "()",
        ],
    );
    let a = server.expect("request", |j| {
        event(j, "request") && j["name"] == "calc.one"
    });
    let second = start_call(
        &bus,
        &[
            "--json",
            "--timeout",
            "30000",
            "(module:server)",
            "calc.two",
            "()",
        ],
    );
    let b = server.expect("request", |j| {
        event(j, "request") && j["name"] == "calc.two"
    });
    assert_eq!(
        a["rpc_id"], b["rpc_id"],
        "both callers start at the same ID"
    );
    server.say(&format!("return {} OK", a["rpc_id"].as_str().unwrap()));
    let refused = server.expect("error", |j| event(j, "error"));
    let reason = refused["reason"].as_str().unwrap();
    for (req, name) in [(&a, "calc.one"), (&b, "calc.two")] {
        assert!(
            reason.contains(&format!("#{} ({name} from ", req["request"])),
            "{reason}"
        );
    }
    assert!(reason.contains("answer with #N"), "{reason}");
    server.say(&format!("return #{} OK", a["request"]));
    server.say(&format!("return #{} OK", b["request"]));
    assert_eq!(finish(first).0, 0);
    assert_eq!(finish(second).0, 0);
}
