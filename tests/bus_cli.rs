//! The bus commands as separate processes on the host-local (loopback) group:
//! `join`, `monitor`, `list`, `send`, `demo`. Each test has its own
//! configuration on a free port; every wait is for an event, with a deadline.

mod common;
mod procs;

use procs::*;

use std::fs;
use std::net::UdpSocket;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::time::{Duration, Instant};

use rmbus::auth::{seal, seal_raw};
use rmbus::wire::{Address, Framing, Header, Message, MessageType};
use serde_json::Value as Json;

#[test]
fn two_join_processes_exchange_commands_and_see_bye() {
    let bus = bus();
    let (mut a, mut b, a_addr, b_addr) = pair(&bus, "a", "b");

    a.say(&format!("rsend {b_addr} test.set (42 \"x\" (1 2))"));
    a.say("send (module:b) test.note (\"hi\")");
    let got = b.expect("reliable command", |j| {
        event(j, "command") && j["name"] == "test.set"
    });
    assert_eq!(got["reliable"], true);
    assert_eq!(got["src"], a_addr.as_str());
    assert_eq!(
        got["args"],
        serde_json::json!([{"int": 42}, {"str": "x"}, {"list": [{"int": 1}, {"int": 2}]}])
    );
    let note = b.expect("unreliable command", |j| {
        event(j, "command") && j["name"] == "test.note"
    });
    assert_eq!(note["reliable"], false);
    a.expect("ok 1", |j| event(j, "ok") && j["id"] == 1);
    a.expect("ok 2", |j| event(j, "ok") && j["id"] == 2);
    a.expect("delivered 1", |j| event(j, "delivered") && j["id"] == 1);

    // A bad line gets an error event and the entity keeps running.
    a.say("frobnicate");
    a.expect("error 3", |j| event(j, "error") && j["id"] == 3);

    // End of input: a says bye, and b hears it at once. Its last line says
    // so, with the error counted; without --strict the exit is still 0.
    let closed = Instant::now();
    a.end_input();
    assert_eq!(a.wait_exit(), 0);
    let left = a.expect("left", |j| event(j, "left"));
    assert_eq!(
        (left["reason"].as_str(), left["errors"].as_u64()),
        (Some("bye"), Some(1)),
        "{left}"
    );
    b.expect("lost a by bye", |j| {
        event(j, "lost") && j["address"] == a_addr.as_str() && j["reason"] == "bye"
    });
    assert!(
        closed.elapsed() < Duration::from_secs(5),
        "the bye is reported at once"
    );
}

#[test]
fn waiting_and_go_between_processes() {
    let bus = bus();
    let mut worker = Proc::join(&bus, "worker");
    let mut boss = Proc::join(&bus, "boss");
    let worker_addr = worker.address();
    boss.address();
    // A monitor that ends after five mbus.waiting datagrams: by then the
    // boss has heard them too.
    let mut monitor = Proc::start({
        let mut c = rmbus(&bus);
        c.args([
            "monitor",
            "--json",
            "--command",
            "mbus.waiting",
            "--count",
            "5",
        ]);
        c
    });
    worker.say("wait ready");
    boss.expect("waiting", |j| {
        event(j, "waiting") && j["condition"] == "ready"
    });
    assert_eq!(monitor.wait_exit(), 0);
    boss.say(&format!("go {worker_addr} ready"));
    worker.expect("go", |j| event(j, "go") && j["condition"] == "ready");
    boss.expect("go delivered", |j| event(j, "delivered") && j["id"] == 1);
    let shown = boss
        .seen
        .iter()
        .filter(|l| l.contains("\"event\":\"waiting\""))
        .count();
    assert_eq!(shown, 1, "a waiting repeated every 100 ms is one event");
}

#[test]
fn join_text_lines_are_ordered_quoted_and_end_with_left() {
    let bus = bus();
    let mut a = Proc::join(&bus, "a");
    let a_addr = a.address();
    let mut t = Proc::start({
        let mut c = rmbus(&bus);
        c.args(["join", "--address", "(app:test module:t)"]);
        c
    });
    let ready = t.expect_line("ready", |l| l.starts_with("ready "));
    assert!(
        ready.contains("address=\"(app:test module:t id:"),
        "quoted: {ready}"
    );
    a.expect("t joined", |j| {
        event(j, "joined")
            && j["address"]
                .as_str()
                .is_some_and(|s| s.contains("module:t"))
    });
    a.say("send (module:t) test.note (\"two words\" 1.5)");
    let line = t.expect_line("command", |l| l.starts_with("command "));
    let at = |k: &str| line.find(k).unwrap_or_else(|| panic!("{k} in {line}"));
    assert!(
        at(" src=\"(") < at(" reliable=false")
            && at(" reliable=") < at(" name=test.note ")
            && at(" name=") < at(" args="),
        "fixed order: {line}"
    );
    assert!(line.contains("{\"str\":\"two words\"}"), "{line}");
    t.say(&format!("rsend {a_addr} test.x ()"));
    let delivered = t.expect_line("delivered", |l| l.starts_with("delivered "));
    let ms = delivered
        .split_whitespace()
        .find_map(|f| f.strip_prefix("after_ms="))
        .unwrap_or_else(|| panic!("{delivered}"));
    assert!(
        ms.split('.').nth(1).is_none_or(|d| d.len() <= 3),
        "microseconds at most: {delivered}"
    );
    // Ctrl-C: a clean bye, exit 0, and a last line that says why.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(t.child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    assert_eq!(t.wait_exit(), 0);
    let left = t.expect_line("left", |l| l.starts_with("left "));
    assert_eq!(left, "left      reason=signal errors=0 failures=0");
}

#[test]
fn join_strict_makes_the_scripts_errors_count() {
    let bus = bus();
    // A callee whose script never answers: calls to it time out.
    let mut callee = Proc::join(&bus, "callee");
    callee.address();
    let run = |strict: bool, script: &str| {
        let mut c = rmbus(&bus);
        c.args([
            "join",
            "--json",
            "--wait",
            "5",
            "--timeout",
            "300",
            "--address",
            "(app:test module:s)",
        ]);
        if strict {
            c.arg("--strict");
        }
        let mut p = Proc::start(c);
        p.say(script);
        p.end_input();
        p.wait_exit()
    };
    assert_eq!(run(false, "frobnicate"), 0, "errors are events");
    assert_eq!(run(true, "frobnicate"), 2, "a refused action");
    assert_eq!(
        run(true, "rsend (module:nobody) test.x ()"),
        2,
        "an unknown destination"
    );
    assert_eq!(
        run(true, "call (module:callee) test.op ()"),
        1,
        "a call that did not return OK"
    );
    assert_eq!(run(true, "send () test.x ()"), 0);
}

#[test]
fn monitor_sees_hellos_and_flags_a_forged_datagram_that_nobody_receives() {
    let bus = bus();
    let mut monitor = Proc::start({
        let mut c = rmbus(&bus);
        c.args(["monitor", "--json"]);
        c
    });
    let mut entity = Proc::join(&bus, "victim");
    let victim = entity.address();
    monitor.expect("hello", |j| {
        j["auth"] == "ok" && j["src"] == victim.as_str() && j["commands"][0]["name"] == "mbus.hello"
    });

    // A reliable command to the victim, signed with the wrong key.
    let msg = Message {
        header: Header {
            seq: 1,
            timestamp: common::wall_ms(),
            kind: MessageType::Unreliable,
            src: Address::parse("(app:evil id:666-1@127.0.0.1)").unwrap(),
            dst: Address::parse(&victim).unwrap(),
            acks: vec![],
        },
        commands: vec![rmbus::wire::Command::new("test.evil", vec![])],
    };
    let wrong = rmbus::auth::Keys::md5_noencr(b"not the bus key").unwrap();
    inject(&bus, &seal(&msg, &wrong, Framing::Lf).unwrap());
    let flagged = monitor.expect("bad digest", |j| j["auth"] == "bad_digest");
    assert!(flagged["from"].as_str().unwrap().starts_with("127.0.0.1:"));
    // Then a genuine one, as a marker: the victim gets it, and nothing before it.
    let keys = bus.config.keys().unwrap();
    let mut genuine = msg.clone();
    genuine.header.src = Address::parse("(app:friend id:777-1@127.0.0.1)").unwrap();
    genuine.commands[0].name = "test.marker".into();
    inject(&bus, &seal(&genuine, &keys, Framing::Lf).unwrap());
    entity.expect("marker", |j| {
        event(j, "command") && j["name"] == "test.marker"
    });
    assert!(
        !entity
            .seen
            .iter()
            .any(|l| l.contains("test.evil") || l.contains("app:evil")),
        "the forgery reached nobody"
    );

    // Authenticated but malformed: flagged with its offset.
    inject(
        &bus,
        &seal_raw(
            b"mbus/1.0 1 1 U (id:1-1@h) () ()\nx (1 .5)",
            &keys,
            Framing::Lf,
        )
        .unwrap(),
    );
    let malformed = monitor.expect("malformed", |j| j["auth"] == "malformed");
    assert_eq!(malformed["offset"], 17 + 37);
}

/// `rmbus monitor` flags what the entities' replay guard refuses, with the
/// reason, and shows how far each source's clock is from ours; pyMbus's
/// id-less, seconds-stamped source is flagged as outside the RFC.
#[test]
fn monitor_flags_replays_and_clocks_and_pymbus_forms() {
    let bus = bus();
    let mut json = Proc::start({
        let mut c = rmbus(&bus);
        c.args(["monitor", "--json"]);
        c
    });
    let mut text = Proc::start({
        let mut c = rmbus(&bus);
        c.arg("monitor");
        c
    });
    let mut entity = Proc::join(&bus, "listener");
    let listener = entity.address();
    json.expect("hello", |j| j["src"] == listener.as_str());
    text.expect_line("hello", |l| l.contains(&listener) && l.contains(" ok "));
    let keys = bus.config.keys().unwrap();
    let sealed = |text: String| seal_raw(text.as_bytes(), &keys, Framing::Lf).unwrap();
    let now_s = common::wall_ms() / 1000;
    let pymbus = sealed(format!(
        "mbus/1.0 3 {now_s} U (app:gex module:panel) () ()\n\
         desktop.configuration.notify (gex/panel/plugin (\"eth0\"))"
    ));
    inject(&bus, &pymbus);
    let first = json.expect("the pyMbus datagram", |j| {
        j["src"] == "(app:gex module:panel)"
    });
    assert!(first.get("replay").is_none(), "{first}");
    assert!(
        first["clock_offset_ms"].as_i64().unwrap().abs() < 2000,
        "{first}"
    );
    let notes = first["outside_rfc"].to_string();
    assert!(
        notes.contains("has no id element") && notes.contains("in seconds"),
        "{notes}"
    );
    // The same datagram again: a replay, and the entity does not take it.
    inject(&bus, &pymbus);
    let again = json.expect_new("its copy", |j| j["src"] == "(app:gex module:panel)");
    assert_eq!(again["replay"]["code"], "seen", "{again}");
    assert_eq!(again["replay"]["retransmission"], false, "{again}");
    // A stamp a minute old from a source nobody knows: the clock check.
    let stale = sealed(format!(
        "mbus/1.0 1 {} U (app:old id:5-1@127.0.0.1) () ()\nvolume.set (5)",
        common::wall_ms() - 60_000
    ));
    inject(&bus, &stale);
    let old = json.expect("the stale datagram", |j| {
        j["src"] == "(app:old id:5-1@127.0.0.1)"
    });
    assert_eq!(old["replay"]["code"], "clock", "{old}");
    let offset = old["clock_offset_ms"].as_i64().unwrap();
    assert!((-62_000..=-59_000).contains(&offset), "{old}");
    // The text monitor says the same in words.
    text.expect_line("the copy", |l| {
        l.contains("REPLAY") && l.contains("(app:gex module:panel)")
    });
    text.expect_line("its reason", |l| {
        l.contains("! replay (seen): a copy of a datagram seen")
    });
    text.expect_line("the clock note", |l| {
        l.contains("! clock: (app:old id:5-1@127.0.0.1) is -")
    });
    // The entity took the first pyMbus datagram only (and not the stale one):
    // a command after them shows what it was handed.
    // A reliable command to the entity, sent twice at once as a sender
    // whose ack was lost would: the copy is shown as `again`, not REPLAY.
    let reliable = sealed(format!(
        "mbus/1.0 8 {} R (app:friend id:7-1@127.0.0.1) {listener} ()\ntest.twice ()",
        common::wall_ms()
    ));
    inject(&bus, &reliable);
    inject(&bus, &reliable);
    let retransmitted = json.expect("the copy of the reliable command", |j| {
        j["seq"] == 8 && j.get("replay").is_some()
    });
    assert_eq!(
        retransmitted["replay"]["retransmission"], true,
        "{retransmitted}"
    );
    text.expect_line("its note", |l| {
        l.contains("! again: a copy of a datagram seen")
    });
    let marker = sealed(format!(
        "mbus/1.0 9 {} U (app:friend id:7-1@127.0.0.1) () ()\ntest.marker ()",
        common::wall_ms()
    ));
    inject(&bus, &marker);
    entity.expect("the marker", |j| {
        event(j, "command") && j["name"] == "test.marker"
    });
    let handed = |name: &str| entity.seen.iter().filter(|l| l.contains(name)).count();
    assert_eq!(handed("desktop.configuration.notify"), 1);
    assert_eq!(handed("volume.set"), 0);
    assert_eq!(handed("test.twice"), 1, "delivered once");
}

#[test]
fn a_killed_entity_is_lost_by_timeout() {
    let bus = bus();
    let (mut a, mut b, _, b_addr) = pair(&bus, "a", "b");
    // kill -9: no bye.
    b.child.kill().unwrap();
    b.child.wait().unwrap();
    let killed = Instant::now();
    a.expect("lost b by timeout", |j| {
        event(j, "lost") && j["address"] == b_addr.as_str() && j["reason"] == "timeout"
    });
    let after = killed.elapsed();
    // At most 5.5 hello intervals of silence, measured from b's last hello.
    assert!(
        after <= Duration::from_millis(5500 + 2000),
        "lost after {after:?}"
    );
}

#[test]
fn send_reliable_exit_codes() {
    let bus = bus();
    let mut peer = Proc::join(&bus, "peer");
    let peer_addr = peer.address();
    let send = |args: &[&str]| {
        let mut c = rmbus(&bus);
        c.arg("send").args(args);
        let out = c.output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    assert_eq!(
        send(&["--reliable", "--to", "(module:peer)", "test.x", "(1)"]).0,
        Some(0)
    );
    peer.expect("received", |j| event(j, "command") && j["name"] == "test.x");
    let (code, err) = send(&[
        "--reliable",
        "--to",
        "(module:nobody)",
        "--wait",
        "0.5",
        "test.x",
    ]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("not a known entity"), "{err}");
    let mut twin = Proc::join(&bus, "peer");
    let twin_addr = twin.address();
    let (code, err) = send(&["--reliable", "--to", "(module:peer)", "test.x"]);
    assert_eq!(code, Some(2), "two match: {err}");
    assert!(err.contains("matches 2"), "{err}");
    assert!(
        err.contains(&peer_addr) && err.contains(&twin_addr),
        "it names them: {err}"
    );
    assert_eq!(
        send(&["--to", "(module:peer)", "test.unreliable"]).0,
        Some(0)
    );

    // An entity that says hello but never acknowledges: exit 1.
    let keys = bus.config.keys().unwrap();
    let mute = Address::parse("(app:test module:mute id:999-1@127.0.0.1)").unwrap();
    let hello = move |seq| Message {
        header: Header {
            seq,
            timestamp: common::wall_ms(),
            kind: MessageType::Unreliable,
            src: mute.clone(),
            dst: Address::empty(),
            acks: vec![],
        },
        commands: vec![rmbus::wire::Command::new("mbus.hello", vec![])],
    };
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop2 = stop.clone();
    let group = bus.config.group_addr();
    let helloer = std::thread::spawn(move || {
        let socket = loopback_sender();
        // A new SeqNum and TimeStamp each time: the same datagram again
        // would be refused as a replay.
        let mut seq = 0;
        while !stop2.load(std::sync::atomic::Ordering::Relaxed) {
            let datagram = seal(&hello(seq), &keys, Framing::Lf).unwrap();
            seq += 1;
            socket.send_to(&datagram, group).unwrap();
            std::thread::sleep(Duration::from_millis(50));
        }
    });
    let (code, err) = send(&["--reliable", "--to", "(module:mute)", "test.x"]);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    helloer.join().unwrap();
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("no acknowledgement"), "{err}");
}

#[test]
fn list_shows_the_entities_that_answer() {
    let bus = bus();
    let mut a = Proc::join(&bus, "listed");
    let addr = a.address();
    let out = rmbus(&bus)
        .args(["list", "--json", "--wait", "2"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let lines: Vec<Json> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(
        lines.iter().any(|j| j["address"] == addr.as_str()),
        "{lines:?}"
    );
    assert!(lines
        .iter()
        .all(|j| j["endpoint"].as_str().unwrap().starts_with("127.0.0.1:")));
    // As text, the address column is as wide as the longest address.
    let out = rmbus(&bus).args(["list", "--wait", "2"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("ADDRESS "), "{text}");
    assert!(text.contains(&format!("{addr}  127.0.0.1:")), "{text}");
}

#[test]
fn monitor_writes_a_pcap_that_it_reads_back() {
    let bus = bus();
    let dir = tempfile::tempdir().unwrap();
    let capture = dir.path().join("bus.pcap");
    let mut monitor = Proc::start({
        let mut c = rmbus(&bus);
        c.args(["monitor", "--json", "--count", "3", "--pcap"])
            .arg(&capture);
        c
    });
    let mut a = Proc::join(&bus, "pcap");
    a.address();
    inject(&bus, b"garbage that is not mbus");
    assert_eq!(monitor.wait_exit(), 0);
    let live: Vec<Json> = monitor
        .seen
        .iter()
        .chain(monitor.lines.try_iter().collect::<Vec<_>>().iter())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(live.len(), 3);
    let out = rmbus(&bus)
        .args(["monitor", "--json", "--read"])
        .arg(&capture)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let replayed: Vec<Json> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let strip = |j: &Json| {
        let mut j = j.clone();
        j.as_object_mut().unwrap().remove("time");
        j
    };
    assert_eq!(
        replayed.iter().map(strip).collect::<Vec<_>>(),
        live.iter().map(strip).collect::<Vec<_>>()
    );
    let bad = rmbus(&bus)
        .args(["monitor", "--read"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
}

#[test]
fn monitor_command_filters_match_whole_name_components() {
    let bus = bus();
    let dir = tempfile::tempdir().unwrap();
    let capture = dir.path().join("names.pcap");
    // Record a hello (which shows the monitor listens), then four commands.
    let mut recorder = Proc::start({
        let mut c = rmbus(&bus);
        c.args(["monitor", "--json", "--count", "5", "--pcap"])
            .arg(&capture);
        c
    });
    let mut entity = Proc::join(&bus, "names");
    let src = entity.address();
    recorder.expect("hello", |j| j["src"] == src.as_str());
    let keys = bus.config.keys().unwrap();
    for (seq, name) in ["audiox.y", "audio.x", "tool.set", "audio"]
        .iter()
        .enumerate()
    {
        let msg = Message {
            header: Header {
                seq: seq as u32,
                timestamp: common::wall_ms(),
                kind: MessageType::Unreliable,
                src: Address::parse("(app:names id:9-1@127.0.0.1)").unwrap(),
                dst: Address::empty(),
                acks: vec![],
            },
            commands: vec![rmbus::wire::Command::new(*name, vec![])],
        };
        inject(&bus, &seal(&msg, &keys, Framing::Lf).unwrap());
    }
    assert_eq!(recorder.wait_exit(), 0);
    let names = |prefix: &str| -> Vec<String> {
        let out = rmbus(&bus)
            .args(["monitor", "--json", "--command", prefix, "--read"])
            .arg(&capture)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0));
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| serde_json::from_str::<Json>(l).unwrap())
            .map(|j| j["commands"][0]["name"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(names("audio"), ["audio.x", "audio"], "not audiox.y");
    assert_eq!(
        names("audio."),
        ["audio.x", "audio"],
        "a trailing dot changes nothing"
    );
    assert_eq!(names("audio.x"), ["audio.x"]);
    assert_eq!(names("mbus"), ["mbus.hello"]);
}

#[test]
fn demo_narrates_a_bus_coming_alive() {
    let out = Command::new(env!("CARGO_BIN_EXE_rmbus"))
        .args(["demo", "--seconds", "5"])
        .env("HOME", "/nonexistent")
        .env_remove("MBUS")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    for expected in [
        "notices controller joined",
        "acknowledged after",
        "receives demo.reading",
        "notices sensor left (it said bye)",
        "done",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
    assert!(text.contains("loopback only"));
}

#[test]
fn bus_commands_create_a_missing_config_and_say_so() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("new.conf");
    let out = Command::new(env!("CARGO_BIN_EXE_rmbus"))
        .args(["list", "--wait", "0.2", "--port"])
        .arg(
            UdpSocket::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port()
                .to_string(),
        )
        .env("MBUS", &path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stderr).contains("created"));
    assert_eq!(
        fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
}

#[test]
fn sigterm_says_bye() {
    let bus = bus();
    let (mut a, mut b, _, b_addr) = pair(&bus, "a", "b");
    let pid = nix::unistd::Pid::from_raw(b.child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    assert_eq!(b.wait_exit(), 0);
    a.expect("lost b by bye", |j| {
        event(j, "lost") && j["address"] == b_addr.as_str() && j["reason"] == "bye"
    });
}

/// An `rmbus join` that has heard 20,000 made-up entities (more than its
/// table holds) still takes a new peer: its reliable command is delivered
/// once and acknowledged, and the flood's entities made room for it.
#[test]
fn a_join_flooded_with_20000_hellos_still_takes_a_newcomer() {
    let bus = bus();
    let mut a = Proc::join(&bus, "flooded");
    let a_addr = a.address();
    let flood = loopback_sender();
    for i in 0..20_000u32 {
        let hello = Message {
            header: Header {
                seq: 0,
                timestamp: common::wall_ms(),
                kind: MessageType::Unreliable,
                src: Address::parse(&format!("(app:flood id:{i}-1@127.0.0.1)")).unwrap(),
                dst: Address::empty(),
                acks: vec![],
            },
            commands: vec![rmbus::wire::Command::new("mbus.hello", vec![])],
        };
        let datagram = seal(&hello, &bus.config.keys().unwrap(), Framing::Lf).unwrap();
        flood.send_to(&datagram, bus.config.group_addr()).unwrap();
        // Paced to what the entity reads, so that its socket buffer does
        // not drop most of the flood: each batch of 200 waits until one of
        // its hellos has been heard.
        if i % 200 == 199 {
            let batch = i - 199..=i;
            a.expect_new("a hello of the batch", |j| {
                event(j, "joined")
                    && j["address"]
                        .as_str()
                        .and_then(|s| s.strip_prefix("(app:flood id:"))
                        .and_then(|s| s.split('-').next())
                        .and_then(|n| n.parse::<u32>().ok())
                        .is_some_and(|n| batch.contains(&n))
            });
        }
    }
    // The table overflowed: the flood's own entities made room for each other.
    a.expect("an eviction", |j| {
        event(j, "lost") && j["reason"] == "evicted"
    });
    let mut b = Proc::join(&bus, "newcomer");
    let b_addr = b.address();
    b.say(&format!("rsend {a_addr} test.once (1)"));
    b.expect("delivered", |j| event(j, "delivered") && j["id"] == 1);
    b.say(&format!("rsend {a_addr} test.after (2)"));
    b.expect("delivered 2", |j| event(j, "delivered") && j["id"] == 2);
    a.expect("the second command", |j| {
        event(j, "command") && j["name"] == "test.after" && j["src"] == b_addr.as_str()
    });
    let once = a
        .seen
        .iter()
        .filter_map(|l| serde_json::from_str::<Json>(l).ok())
        .filter(|j| event(j, "command") && j["name"] == "test.once")
        .count();
    assert_eq!(once, 1, "delivered once");
    let evicted = a
        .seen
        .iter()
        .filter_map(|l| serde_json::from_str::<Json>(l).ok())
        .filter(|j| event(j, "lost") && j["reason"] == "evicted")
        .any(|j| j["address"] == b_addr.as_str());
    assert!(!evicted, "the newcomer is not evicted");
}

/// `join`'s `rsend` and `call` to a destination that matches one known
/// entity go at once, without a ping (a UCL peer never answers one); an
/// unknown destination is still pinged and waited for.
#[test]
fn join_pings_only_destinations_it_does_not_know() {
    let bus = bus();
    let (mut a, mut b, a_addr, b_addr) = pair(&bus, "asker", "known");
    let mut monitor = Proc::start({
        let mut c = rmbus(&bus);
        c.args(["monitor", "--json"]);
        c
    });
    // The monitor is up once it shows one of b's hellos.
    monitor.expect("b's hello", |j| {
        j["src"] == b_addr.as_str() && j["commands"][0]["name"] == "mbus.hello"
    });
    a.say("rsend (module:known) test.direct (1)");
    let ok = a.expect("ok 1", |j| event(j, "ok") && j["id"] == 1);
    assert_eq!(ok["to"], b_addr.as_str(), "the subset completed to b");
    a.say("call (module:known) test.op ()");
    a.expect("call sent", |j| event(j, "ok") && j["id"] == 2);
    b.expect("the call", |j| {
        event(j, "request") && j["name"] == "test.op"
    });
    a.say("send () test.marker ()");
    monitor.expect("a's marker", |j| {
        j["src"] == a_addr.as_str() && j["commands"][0]["name"] == "test.marker"
    });
    let pinged = |seen: &[String]| {
        seen.iter()
            .filter_map(|l| serde_json::from_str::<Json>(l).ok())
            .filter(|j| j["src"] == a_addr.as_str())
            .any(|j| j["commands"][0]["name"] == "mbus.ping")
    };
    assert!(!pinged(&monitor.seen), "a known destination is not pinged");
    b.expect("the command", |j| {
        event(j, "command") && j["name"] == "test.direct"
    });
    // Unknown: pinged, and after --wait an error.
    a.say("rsend (module:nobody) test.lost ()");
    monitor.expect("a's ping", |j| {
        j["src"] == a_addr.as_str() && j["commands"][0]["name"] == "mbus.ping"
    });
    let error = a.expect("error 4", |j| event(j, "error") && j["id"] == 4);
    assert!(error["reason"]
        .as_str()
        .unwrap()
        .contains("not a known entity"));
}

/// A configuration file for the same group and port as `bus`, with keys of
/// its own.
fn other_key_config(bus: &Bus, dir: &std::path::Path) -> std::path::PathBuf {
    let mut other = common::free_port_config();
    other.port = bus.config.port;
    let path = dir.join("other-key.conf");
    fs::write(&path, other.to_file_text()).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
    path
}

#[test]
fn a_wrong_key_is_named_not_silent() {
    let bus = bus();
    let mut a = Proc::join(&bus, "keyed");
    let a_addr = a.address();
    let dir = tempfile::tempdir().unwrap();
    let wrong = other_key_config(&bus, dir.path());

    // `list` hears the entity's hellos, cannot authenticate them, and says so.
    let out = rmbus(&bus)
        .env("MBUS", &wrong)
        .args(["list", "--wait", "3"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(out.stdout.is_empty(), "no entity listed");
    let warnings: Vec<_> = stderr
        .lines()
        .filter(|l| l.contains("ignoring datagrams from 127.0.0.1:"))
        .collect();
    assert_eq!(warnings.len(), 1, "once per source, by default: {stderr}");
    assert!(
        warnings[0].contains("bad digest: a different key?"),
        "{stderr}"
    );
    assert!(
        stderr.contains("no entity answered;")
            && stderr.contains("failed authentication (bad digest)"),
        "{stderr}"
    );

    // `send --reliable` and `call` name it in their answers.
    for args in [
        vec![
            "send",
            "--reliable",
            "--wait",
            "2",
            "--to",
            a_addr.as_str(),
            "test.x",
        ],
        vec!["call", "--wait", "2", a_addr.as_str(), "test.echo"],
    ] {
        let out = rmbus(&bus)
            .env("MBUS", &wrong)
            .args(&args)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains("is not a known entity") && stderr.contains("different key"),
            "{args:?}: {stderr}"
        );
    }
    // With the right key the same entity is listed: the hint was about the key.
    let out = rmbus(&bus).args(["list", "--wait", "2"]).output().unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(a_addr.as_str()),
        "{out:?}"
    );
}

/// A one-shot command stopped by a signal says bye and exits as a shell
/// reports a command the signal killed: 130 after SIGINT, 143 after SIGTERM.
#[test]
fn a_one_shot_command_interrupted_exits_130_or_143() {
    use nix::sys::signal::{kill, Signal};
    let bus = bus();
    let mut watcher = Proc::join(&bus, "watcher");
    watcher.address();
    for (signal, code) in [(Signal::SIGINT, 130), (Signal::SIGTERM, 143)] {
        let mut send = Proc::start({
            let mut c = rmbus(&bus);
            c.args([
                "send",
                "--reliable",
                "--wait",
                "60",
                "--to",
                "(module:nobody)",
                "test.x",
            ]);
            c
        });
        let pid = send.child.id();
        let id = format!("id:{pid}-");
        // Its ping for the unknown destination shows it is up and waiting.
        let joined = watcher.expect_new("the sender is heard", |j| {
            event(j, "joined") && j["address"].as_str().is_some_and(|a| a.contains(&id))
        });
        kill(nix::unistd::Pid::from_raw(pid as i32), signal).unwrap();
        assert_eq!(send.wait_exit(), code, "{signal:?}");
        watcher.expect_new("it said bye", |j| {
            event(j, "lost") && j["address"] == joined["address"] && j["reason"] == "bye"
        });
    }
}

#[test]
fn join_says_in_its_ready_event_which_configuration_it_joined_with() {
    let bus = bus();
    let mut t = Proc::start({
        let mut c = rmbus(&bus);
        c.args(["join", "--json", "--address", "(app:test module:r)"]);
        c
    });
    let ready = t.expect("ready", |j| event(j, "ready"));
    let group = bus.config.group_addr();
    assert_eq!(
        ready["config"],
        bus.config_path.display().to_string(),
        "{ready}"
    );
    assert_eq!(ready["group"], group.ip().to_string(), "{ready}");
    assert_eq!(ready["port"], group.port(), "{ready}");
    assert_eq!(ready["scope"], "HOSTLOCAL", "{ready}");
}

/// The fields a typed `config` event must carry for `bus`.
fn assert_config_event(j: &Json, bus: &Bus) {
    let group = bus.config.group_addr();
    assert!(
        event(j, "config"),
        "the first line is the config event: {j}"
    );
    assert_eq!(j["config"], bus.config_path.display().to_string(), "{j}");
    assert_eq!(j["group"], group.ip().to_string(), "{j}");
    assert_eq!(j["port"], group.port(), "{j}");
    assert_eq!(j["scope"], "HOSTLOCAL", "{j}");
}

#[test]
fn commands_without_a_ready_event_print_a_typed_config_event_first_at_v() {
    let bus = bus();
    // Streams: the config event comes before anything the command prints,
    // the member's events from its own thread included.
    for args in [
        vec!["-v", "monitor", "--json"],
        vec![
            "-v",
            "member",
            "--json",
            "--memory",
            "--id",
            "0b9d4c36-5b5e-4c1f-9a53-2f6d2c1e7a01",
        ],
    ] {
        let mut p = Proc::start({
            let mut c = rmbus(&bus);
            c.args(&args);
            c
        });
        let first = p
            .next_within(DEADLINE)
            .unwrap_or_else(|| panic!("{args:?} printed nothing"));
        assert_config_event(&first, &bus);
    }
    // One-shot commands: first with -v, and not at all without it (a script
    // reading `call --json` as one object keeps working).
    let list = |verbose: bool| {
        let mut c = rmbus(&bus);
        if verbose {
            c.arg("-v");
        }
        c.args(["list", "--json", "--wait", "0.2"]);
        let out = c.output().unwrap();
        String::from_utf8(out.stdout).unwrap()
    };
    let loud = list(true);
    let first = loud.lines().next().expect("list -v --json printed a line");
    assert_config_event(&serde_json::from_str(first).unwrap(), &bus);
    assert!(
        !list(false).contains("\"config\""),
        "without -v there is no config event"
    );
}
