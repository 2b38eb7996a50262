//! CMBS with real processes on a host-local bus of its own: three `rmbus
//! member`s, `rmbus publish` on every layer, `rmbus members` and its
//! actions, a member killed with SIGKILL and restarted on its store, and a
//! held message for a member that starts later.
#![cfg(feature = "sqlite")]

mod common;
mod procs;

use std::path::{Path, PathBuf};
use std::process::Command;

use procs::*;
use serde_json::Value as Json;

const A: &str = "aaaaaaaa-0000-4000-8000-000000000001";
const B: &str = "bbbbbbbb-0000-4000-8000-000000000002";
const C: &str = "cccccccc-0000-4000-8000-000000000003";

fn run(bus: &Bus, args: &[&str]) -> (i32, String, String) {
    let out = rmbus(bus).args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn member(bus: &Bus, store: &Path, extra: &[&str]) -> Proc {
    let mut cmd: Command = rmbus(bus);
    cmd.args(["member", "--json", "--store"])
        .arg(store)
        .args(extra);
    Proc::start(cmd)
}

/// `rmbus publish --json …`: the exit code and the report.
fn publish(bus: &Bus, args: &[&str]) -> (i32, Json) {
    let mut all = vec!["publish", "--json", "--wait", "1"];
    all.extend_from_slice(args);
    let (code, out, err) = run(bus, &all);
    let report = out
        .lines()
        .filter_map(|l| serde_json::from_str::<Json>(l).ok())
        .find(|j| j["event"] == "report")
        .unwrap_or_else(|| panic!("no report from publish {args:?}: {out} {err}"));
    (code, report)
}

fn delivered(report: &Json) -> Vec<String> {
    let mut v: Vec<String> = report["lines"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["status"] == "DELIVERED")
        .map(|l| l["member"].as_str().unwrap().to_owned())
        .collect();
    v.sort();
    v
}

/// Waits until `p` has logged members `ids` joining.
fn knows(p: &mut Proc, ids: &[&str]) {
    for id in ids {
        p.expect("a member joining", |j| {
            j["event"] == "joined" && j["id"] == *id
        });
    }
}

/// `rmbus publish` of an L3.2 message `{"job": N}` on `jobs.new`, held 6 s.
fn held_publisher(bus: &Bus, job: u32) -> Proc {
    let mut cmd = rmbus(bus);
    let content = format!("{{\"job\": {job}}}");
    cmd.args([
        "publish", "--json", "--wait", "0.5", "--layer", "l3.2", "--topics", "jobs.new", "--hold",
        "6", &content,
    ]);
    Proc::start(cmd)
}

fn store_in(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.sqlite"))
}

#[test]
fn members_and_publish_on_every_layer_and_a_restart_on_the_store() {
    let bus = bus();
    let dir = tempfile::tempdir().unwrap();
    let (sa, sb, sc) = (
        store_in(dir.path(), "a"),
        store_in(dir.path(), "b"),
        store_in(dir.path(), "c"),
    );
    let mut a = member(
        &bus,
        &sa,
        &[
            "--id",
            A,
            "--topics",
            "sensors.*.temp",
            "--providers",
            "weather",
        ],
    );
    let mut b = member(&bus, &sb, &["--id", B, "--topics", "alerts.#"]);
    let mut c = member(
        &bus,
        &sc,
        &[
            "--id",
            C,
            "--topics",
            "#.error",
            "--providers",
            "weather,db",
            "--layers",
            "l1,l2,l3.1,l3.2",
        ],
    );
    knows(&mut a, &[B, C]);
    knows(&mut b, &[A, C]);
    knows(&mut c, &[A, B]);

    // The directory, as a person and as a script reads it.
    let (code, out, _) = run(&bus, &["members", "--wait", "1"]);
    assert_eq!(code, 0);
    assert!(out.starts_with("MEMBER"), "{out}");
    for id in [A, B, C] {
        assert!(out.contains(id), "{out}");
    }
    let (_, out, _) = run(&bus, &["members", "--wait", "1", "--json"]);
    let listed: Vec<Json> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(listed.len(), 3);
    let c_entry = listed.iter().find(|j| j["id"] == C).unwrap();
    assert_eq!(
        c_entry["layers"],
        serde_json::json!(["l1", "l2", "l3.1", "l3.2"])
    );

    // L1 by endpoint name, executed by the echo handler.
    let l1 = format!("mbus:{B}/l1");
    let (code, r) = publish(
        &bus,
        &["--layer", "l1", "--to", &l1, "--executable", r#"{"n": 7}"#],
    );
    assert_eq!(code, 0, "{r}");
    assert_eq!(r["result"], serde_json::json!({"n": 7}));
    b.expect("the L1 message", |j| {
        j["event"] == "received" && j["message"]["cmbs_layer"] == "l1"
    });

    // L2: everyone.
    let (code, r) = publish(&bus, &["--layer", "l2", "--storable", r#""to all""#]);
    assert_eq!(
        (code, delivered(&r)),
        (0, vec![A.to_owned(), B.to_owned(), C.to_owned()])
    );
    // L3.1 by provider (c takes weather too).
    let (code, r) = publish(&bus, &["--layer", "l31", "--providers", "weather", "1"]);
    assert_eq!((code, delivered(&r)), (0, vec![A.to_owned(), C.to_owned()]));
    // L3.2 by topic.
    let (code, r) = publish(
        &bus,
        &[
            "--layer",
            "l3.2",
            "--topics",
            "alerts.disk.error",
            "--storable",
            "--text",
            "disk",
        ],
    );
    assert_eq!((code, delivered(&r)), (0, vec![B.to_owned(), C.to_owned()]));
    // L4: c matches provider and topic but has L4 stopped: a line, no send;
    // nobody else matches both, so there is no recipient.
    let (code, r) = publish(
        &bus,
        &[
            "--layer",
            "l4",
            "--providers",
            "db",
            "--topics",
            "db.error",
            "2",
        ],
    );
    assert_eq!(code, 2, "{r}");
    assert_eq!(r["outcome"], "NO_RECIPIENT");
    assert_eq!(r["lines"][0]["status"], "LAYER_STOPPED");
    assert_eq!(r["lines"][0]["sent"], false);
    let (code, r) = publish(
        &bus,
        &[
            "--layer",
            "l4",
            "--providers",
            "weather",
            "--topics",
            "sensors.x.temp",
            "3",
        ],
    );
    assert_eq!((code, delivered(&r)), (0, vec![A.to_owned()]));
    // Unreliable L2.
    let (code, r) = publish(&bus, &["--layer", "l2", "--unreliable", "4"]);
    assert_eq!((code, r["outcome"].as_str()), (0, Some("SENT_UNCONFIRMED")));

    // The sender refuses what it can know, before anything is sent.
    let (code, _, err) = run(
        &bus,
        &["publish", "--layer", "l3.2", "--topics", "a.*", "1"],
    );
    assert_eq!(code, 2);
    assert!(err.contains("INVALID_TOPIC"), "{err}");
    let (code, _, err) = run(&bus, &["publish", "--layer", "l2", "not json"]);
    assert_eq!(code, 2);
    assert!(err.contains("not JSON"), "{err}");
    let (code, _, err) = run(&bus, &["publish", "--layer", "l7", "1"]);
    assert_eq!(code, 2);
    assert!(err.contains("--layer"), "{err}");
    let (code, r) = publish(&bus, &["--layer", "l1", "--to", "nobody", "1"]);
    assert_eq!((code, r["outcome"].as_str()), (2, Some("UNKNOWN_MEMBER")));

    // An action through the bus: b stops L2; the next L2 shows it stopped.
    let (code, out, err) = run(&bus, &["members", "--wait", "1", B, "stop_l2"]);
    assert_eq!(code, 0, "{out} {err}");
    assert!(out.contains(B) && out.contains("l1,l3.1,l3.2,l4"), "{out}");
    b.expect("the action", |j| {
        j["event"] == "action" && j["action"] == "stop_l2"
    });
    let (code, r) = publish(&bus, &["--layer", "l2", "5"]);
    assert_eq!(code, 0);
    let line = r["lines"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["member"] == B)
        .unwrap()
        .clone();
    assert_eq!(line["status"], "LAYER_STOPPED");
    let (code, _, _) = run(&bus, &["members", "--wait", "1", B, "explode"]);
    assert_eq!(code, 2);

    // b dies without a bye, and comes back on its store as itself.
    b.child.kill().unwrap();
    let _ = b.child.wait();
    let mut b = member(&bus, &sb, &["--topics", "alerts.#"]);
    b.expect("the directory", |j| j["event"] == "joined" && j["id"] == A);
    a.expect("b again", |j| {
        (j["event"] == "changed" || j["event"] == "joined")
            && j["id"] == B
            && j["layers"].as_array().unwrap().len() == 5
    });
    let (code, r) = publish(&bus, &["--layer", "l1", "--to", B, "--storable", "6"]);
    assert_eq!(code, 0, "{r}");
    // What b stored before and after its restart.
    let (code, out, err) = run(
        &bus,
        &["messages", "--store", sb.to_str().unwrap(), "--json"],
    );
    assert_eq!(code, 0, "{err}");
    let stored: Vec<Json> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let contents: Vec<&Json> = stored.iter().map(|m| &m["message_content"]).collect();
    assert_eq!(
        contents,
        vec![
            &serde_json::json!("to all"),
            &serde_json::json!("disk"),
            &serde_json::json!(6)
        ]
    );
    assert_eq!(stored[1]["path_history"], serde_json::json!([B]));
    let id = stored[0]["id"].as_str().unwrap().to_owned();
    let (code, out, _) = run(&bus, &["messages", "--store", sb.to_str().unwrap(), &id]);
    assert_eq!(code, 0);
    assert!(out.contains("\"to all\""), "{out}");
    let (code, out, _) = run(
        &bus,
        &["messages", "--store", sb.to_str().unwrap(), "--delete", &id],
    );
    assert_eq!((code, out.trim()), (0, format!("deleted {id}").as_str()));
    let (code, _, _) = run(
        &bus,
        &["messages", "--store", sb.to_str().unwrap(), "--delete", &id],
    );
    assert_eq!(code, 2);

    // A clean stop says bye: the others see it leave, and it exits 0.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(c.child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    assert_eq!(c.wait_exit(), 0);
    a.expect("c leaving", |j| {
        j["event"] == "left" && j["member"] == C && j["reason"] == "bye"
    });
}

#[test]
fn a_held_message_reaches_a_member_that_starts_during_the_hold() {
    let bus = bus();
    let dir = tempfile::tempdir().unwrap();
    let mut publisher = held_publisher(&bus, 1);
    // Said at once, with the id and until when.
    let held = publisher.expect("the held event", |j| j["event"] == "held");
    assert!(
        held["message"].as_str().is_some_and(|m| m.len() == 36),
        "{held}"
    );
    assert!(
        held["until"].as_str().is_some_and(|u| u.ends_with('Z')),
        "{held}"
    );
    let mut late = member(
        &bus,
        &store_in(dir.path(), "late"),
        &["--id", A, "--topics", "jobs.#"],
    );
    late.expect("the held message", |j| {
        j["event"] == "received" && j["message"]["message_content"]["job"] == 1
    });
    let line = publisher.expect("its line", |j| j["event"] == "line");
    assert_eq!(line["line"]["member"], A);
    assert_eq!(line["line"]["status"], "DELIVERED");
    let report = publisher.expect("the report at the end of the hold", |j| {
        j["event"] == "report"
    });
    assert_eq!(report["outcome"], "DELIVERED");
    assert_eq!(publisher.wait_exit(), 0);
}

#[test]
fn an_exec_program_answers_with_its_output_and_fails_as_exec_failed() {
    let bus = bus();
    let mut m = {
        let mut cmd = rmbus(&bus);
        cmd.args([
            "member",
            "--json",
            "--memory",
            "--id",
            C,
            "--exec-timeout",
            "2",
            "--exec",
            "cat",
        ]);
        Proc::start(cmd)
    };
    let mut f = {
        let mut cmd = rmbus(&bus);
        cmd.args(["member", "--json", "--memory", "--id", B, "--exec", "false"]);
        Proc::start(cmd)
    };
    let _ = (&mut m, &mut f);
    let (code, r) = publish(
        &bus,
        &[
            "--layer",
            "l1",
            "--to",
            C,
            "--executable",
            r#"{"x": [1, 2]}"#,
        ],
    );
    assert_eq!(code, 0, "{r}");
    assert_eq!(r["result"], serde_json::json!({"x": [1, 2]}));
    let (code, r) = publish(&bus, &["--layer", "l1", "--to", B, "--executable", "1"]);
    assert_eq!(code, 1, "{r}");
    assert_eq!(r["lines"][0]["status"], "EXEC_FAILED");
    // Storable without a store.
    let (code, r) = publish(&bus, &["--layer", "l1", "--to", C, "--storable", "1"]);
    assert_eq!(
        (code, r["lines"][0]["status"].as_str()),
        (1, Some("NOT_STORABLE"))
    );
}

#[test]
fn a_member_restarted_on_its_store_keeps_its_topics_and_gets_a_held_message_once() {
    let bus = bus();
    let dir = tempfile::tempdir().unwrap();
    let store = store_in(dir.path(), "a");
    let mut a = member(
        &bus,
        &store,
        &["--id", A, "--topics", "jobs.#", "--providers", "weather"],
    );
    // Its description is in the store before it dies.
    let until = std::time::Instant::now() + DEADLINE;
    loop {
        use rmbus::store::Store;
        let kept = rmbus::store::SqliteStore::open_read_only(&store)
            .ok()
            .and_then(|s| s.description(A).ok().flatten());
        if let Some(d) = kept {
            assert_eq!(d.topics, ["jobs.#"]);
            assert_eq!(d.providers, ["weather"]);
            break;
        }
        assert!(std::time::Instant::now() < until, "no description stored");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    a.child.kill().unwrap();
    a.child.wait().unwrap();
    // A message held for its topic while it is down…
    let mut publisher = held_publisher(&bus, 7);
    // …reaches it once it is back on its store, without --topics.
    let mut back = member(&bus, &store, &[]);
    back.expect("the held message", |j| {
        j["event"] == "received" && j["message"]["message_content"]["job"] == 7
    });
    let report = publisher.expect("the report at the end of the hold", |j| {
        j["event"] == "report"
    });
    assert_eq!(report["outcome"], "DELIVERED", "{report}");
    assert_eq!(delivered(&report), [A]);
    assert_eq!(publisher.wait_exit(), 0);
    // Once: nothing more of it came while the hold lasted.
    while let Some(j) = back.next_within(std::time::Duration::from_millis(200)) {
        assert!(
            !(j["event"] == "received" && j["message"]["message_content"]["job"] == 7),
            "received twice: {j}"
        );
    }
}

#[test]
fn members_lists_a_member_entity_whose_description_never_came() {
    let bus = bus();
    // An entity with a member's address that never answers a describe.
    let mut mute = {
        let mut cmd = rmbus(&bus);
        cmd.args([
            "join",
            "--json",
            "--address",
            &format!("(app:cmbs module:member member:{C})"),
        ]);
        Proc::start(cmd)
    };
    let _ = mute.address();
    // Each run learns the bus afresh within its wait: one that heard no
    // hello of the mute entity in time is run again, up to a deadline.
    let until = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let row = loop {
        let (code, out, err) = run(&bus, &["members", "--wait", "1", "--json"]);
        assert_eq!(code, 0, "{err}");
        let found = out
            .lines()
            .filter_map(|l| serde_json::from_str::<Json>(l).ok())
            .find(|r| r["id"] == C);
        match found {
            Some(row) => break row,
            None => assert!(std::time::Instant::now() < until, "not listed: {out}"),
        }
    };
    assert_eq!(row["state"], "undescribed");
    let line = loop {
        let (_, text, _) = run(&bus, &["members", "--wait", "1"]);
        match text.lines().find(|l| l.starts_with(C)) {
            Some(line) => break line.to_owned(),
            None => assert!(std::time::Instant::now() < until, "not listed: {text}"),
        }
    };
    assert!(line.contains(" ? "), "{line}");
}

#[test]
fn a_member_is_one_entity_on_the_bus() {
    let bus = bus();
    let dir = tempfile::tempdir().unwrap();
    let mut a = member(&bus, &store_in(dir.path(), "a"), &["--id", A]);
    // It is up once publish finds it.
    let (code, report) = publish(&bus, &["--layer", "l1", "--to", A, "1"]);
    assert_eq!((code, delivered(&report)), (0, vec![A.to_owned()]));
    let (code, out, err) = run(&bus, &["list", "--wait", "2", "--json"]);
    assert_eq!(code, 0, "{err}");
    let cmbs: Vec<Json> = out
        .lines()
        .filter_map(|l| serde_json::from_str::<Json>(l).ok())
        .filter(|j| {
            j["address"]
                .as_str()
                .is_some_and(|a| a.contains("app:cmbs"))
        })
        .collect();
    assert_eq!(
        cmbs.len(),
        1,
        "one entity, no plain sender beside it: {out}"
    );
    assert!(cmbs[0]["address"].as_str().unwrap().contains(A), "{out}");
    assert!(a.running());
}

#[test]
fn a_held_message_with_nobody_there_says_it_is_held_and_that_nobody_came() {
    let bus = bus();
    let mut cmd = rmbus(&bus);
    cmd.args([
        "publish",
        "--wait",
        "0.3",
        "--layer",
        "l2",
        "--hold",
        "1",
        "\"anyone?\"",
    ]);
    let out = cmd.output().unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(out.status.code(), Some(2), "{stdout}{stderr}");
    assert!(stdout.contains("held for 1 s, until 20"), "{stdout}");
    assert!(stdout.contains("NO_RECIPIENT"), "{stdout}");
    assert!(
        stderr.contains("no matching member appeared during the 1 s hold"),
        "{stderr}"
    );
}
