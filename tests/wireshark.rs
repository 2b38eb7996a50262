//! The Wireshark dissector (`contrib/wireshark/mbus.lua`) under `tshark`:
//! captures `rmbus monitor --pcap` writes (plain commands, reliable CMBS
//! deliveries with their returns and acks, a DES bus, pcapng), and a live
//! capture on the loopback. The test reads fields, not pictures. Skipped,
//! saying why, without `tshark` (`.ci/run` installs it) or where capturing
//! is not permitted.

mod common;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const DEADLINE: Duration = Duration::from_secs(30);

fn dissector() -> String {
    format!(
        "lua_script:{}/contrib/wireshark/mbus.lua",
        env!("CARGO_MANIFEST_DIR")
    )
}

/// True if tshark runs here; else says so.
fn have_tshark() -> bool {
    let ok = Command::new("tshark")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        eprintln!("SKIPPED: no tshark on this machine (apt-get install tshark, as .ci/run does)");
    }
    ok
}

/// A private bus: a directory holding its configuration (HOME and MBUS).
struct Bus {
    dir: tempfile::TempDir,
    port: u16,
}

impl Bus {
    fn new(cipher: &str) -> Bus {
        let dir = tempfile::tempdir().unwrap();
        let port = common::free_port_config().port.unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_rmbus"))
            .args(["keygen", "--cipher", cipher, "-o"])
            .arg(dir.path().join("mbus"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        Bus { dir, port }
    }

    fn rmbus(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_rmbus"));
        c.args(args)
            .args(["--port", &self.port.to_string()])
            .env("MBUS", self.dir.path().join("mbus"))
            .env("HOME", self.dir.path());
        c
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

/// A long-running command and the lines it prints.
struct Running {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Running {
    fn start(mut c: Command) -> Running {
        let mut child = c
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let out = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines().map_while(Result::ok) {
                let _ = tx.send(l);
            }
        });
        Running {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits (doing `meanwhile` between looks) until a line holds `what`.
    fn until(&mut self, what: &str, mut meanwhile: impl FnMut()) {
        let until = Instant::now() + DEADLINE;
        loop {
            if self.seen.iter().any(|l| l.contains(what)) {
                return;
            }
            assert!(
                Instant::now() < until,
                "never saw {what:?}: {:?}",
                self.seen
            );
            meanwhile();
            while let Ok(l) = self.lines.recv_timeout(Duration::from_millis(200)) {
                self.seen.push(l);
            }
        }
    }

    fn stop(mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGINT,
        );
        let _ = self.child.wait();
    }
}

/// `tshark -r FILE` with the dissector and `extra`, as `-T fields` of
/// `fields`, one row per frame.
fn fields(file: &Path, extra: &[&str], fields: &[&str]) -> Vec<Vec<String>> {
    let mut c = Command::new("tshark");
    c.args(["-X", &dissector(), "-r"]).arg(file).args(extra);
    c.args(["-T", "fields", "-E", "separator=|", "-E", "aggregator=,"]);
    for f in fields {
        c.args(["-e", f]);
    }
    let out = c.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.split('|').map(str::to_owned).collect())
        .collect()
}

/// Records a bus while `traffic` runs, until the monitor has printed
/// `last`; the capture's path.
fn record(bus: &Bus, name: &str, last: &str, traffic: impl FnOnce(&Bus)) -> PathBuf {
    let file = bus.path(name);
    let mut monitor = Running::start(bus.rmbus(&["monitor", "--pcap", file.to_str().unwrap()]));
    // The monitor listens once it shows what is sent.
    monitor.until("probe.ready", || {
        let _ = bus.rmbus(&["send", "probe.ready"]).output();
    });
    traffic(bus);
    monitor.until(last, || {});
    monitor.stop();
    file
}

#[test]
fn captures_of_plain_commands_cmbs_deliveries_and_acks_decode_field_by_field() {
    if !have_tshark() {
        return;
    }
    let bus = Bus::new("none");
    let file = record(&bus, "bus.pcapng", "cmbs.message.deliver.return", |bus| {
        let out = bus
            .rmbus(&["send", "test.ping", "(1 \"x y\" (2 3.5) <aGk=> sym)"])
            .output()
            .unwrap();
        assert!(out.status.success());
        let member = Running::start(bus.rmbus(&["member", "--memory"]));
        // Published once the member is in the directory.
        let until = Instant::now() + DEADLINE;
        while !String::from_utf8_lossy(
            &bus.rmbus(&["members", "--wait", "0.5", "--json"])
                .output()
                .unwrap()
                .stdout,
        )
        .contains("\"id\"")
        {
            assert!(Instant::now() < until, "the member never showed");
        }
        let out = bus
            .rmbus(&["publish", "--layer", "l2", "\"hello\""])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
        member.stop();
    });
    let magic = std::fs::read(&file).unwrap();
    assert_eq!(
        &magic[..4],
        &[0x0a, 0x0d, 0x0d, 0x0a],
        "a .pcapng file is pcapng"
    );
    // On the test's own port, the heuristic finds every datagram.
    let rows = fields(
        &file,
        &[],
        &[
            "mbus.seq",
            "mbus.type",
            "mbus.reliable",
            "mbus.src",
            "mbus.dst",
            "mbus.ack",
            "mbus.command",
            "mbus.arg",
            "mbus.src.element",
        ],
    );
    assert!(rows.len() >= 6, "{rows:?}");
    assert!(
        rows.iter().all(|r| !r[0].is_empty()),
        "every frame is Mbus: {rows:?}"
    );
    let commands: BTreeSet<&str> = rows
        .iter()
        .flat_map(|r| r[6].split(','))
        .filter(|c| !c.is_empty())
        .collect();
    for want in [
        "test.ping",
        "mbus.hello",
        "cmbs.member.announce",
        "cmbs.message.deliver",
        "cmbs.message.deliver.return",
        "mbus.bye",
    ] {
        assert!(commands.contains(want), "{want} in {commands:?}");
    }
    let ping = rows.iter().find(|r| r[6] == "test.ping").unwrap();
    assert_eq!(ping[1], "U");
    assert!(ping[3].starts_with("(app:rmbus id:"), "{ping:?}");
    assert_eq!(ping[4], "()");
    for arg in ["1", "\"x y\"", "3.5", "<aGk=>", "sym"] {
        assert!(
            ping[7].split(',').any(|a| a == arg),
            "{arg} in {:?}",
            ping[7]
        );
    }
    assert!(ping[8].contains("app:rmbus"), "{ping:?}");
    let deliver = rows
        .iter()
        .find(|r| r[6] == "cmbs.message.deliver")
        .unwrap();
    assert_eq!((deliver[1].as_str(), deliver[2].as_str()), ("R", "1"));
    assert!(deliver[4].contains("module:member"), "{deliver:?}");
    assert!(
        rows.iter().any(|r| !r[5].is_empty()),
        "some datagram acknowledges another: {rows:?}"
    );
    // A filter on a header field and on a command name.
    let reliable = fields(
        &file,
        &[
            "-Y",
            "mbus.reliable && mbus.command == \"cmbs.message.deliver\"",
        ],
        &["mbus.seq"],
    );
    assert!(!reliable.is_empty());
}

#[test]
fn an_encrypted_bus_is_marked_encrypted_on_a_decoded_port_and_left_alone_elsewhere() {
    if !have_tshark() {
        return;
    }
    let bus = Bus::new("des");
    let file = record(&bus, "des.pcap", "probe.ready", |_| {});
    let magic = std::fs::read(&file).unwrap();
    assert_eq!(
        &magic[..4],
        &[0xd4, 0xc3, 0xb2, 0xa1],
        "a .pcap file is classic pcap"
    );
    let port = format!("mbus.ports:{}", bus.port);
    let rows = fields(
        &file,
        &["-o", &port],
        &["mbus.digest", "mbus.encrypted", "mbus.command"],
    );
    assert!(!rows.is_empty());
    for r in &rows {
        assert!(
            !r[0].is_empty() && !r[1].is_empty() && r[2].is_empty(),
            "{r:?}"
        );
    }
    // Without the port, nothing claims to read it.
    let rows = fields(&file, &[], &["mbus.digest"]);
    assert!(rows.iter().all(|r| r[0].is_empty()), "{rows:?}");
    // Mbus's own port, 47000, is ours without asking (no bus of a test
    // runs there: the capture is made by hand).
    let mut payload = b"qJsDJDwAMQVkzhxe\n".to_vec();
    payload.extend((0u8..64).map(|i| i.wrapping_mul(37)));
    let file = bus.path("47000.pcap");
    std::fs::write(&file, raw_ip_pcap(47000, &payload)).unwrap();
    let rows = fields(
        &file,
        &[],
        &["mbus.digest", "mbus.encrypted", "udp.dstport"],
    );
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0][0], "qJsDJDwAMQVkzhxe", "{rows:?}");
    assert!(!rows[0][1].is_empty(), "{rows:?}");
}

/// A classic pcap file (raw IP) of one UDP datagram from 127.0.0.1:40000
/// to 239.255.255.247:`port`.
fn raw_ip_pcap(port: u16, payload: &[u8]) -> Vec<u8> {
    let builder =
        etherparse::PacketBuilder::ipv4([127, 0, 0, 1], [239, 255, 255, 247], 1).udp(40000, port);
    let mut packet = Vec::new();
    builder.write(&mut packet, payload).unwrap();
    let mut file = Vec::new();
    for w in [0xa1b2_c3d4u32, 0x0004_0002, 0, 0, 65_535, 101] {
        // magic; version 2.4; zone; sigfigs; snaplen; LINKTYPE_RAW
        file.extend_from_slice(&w.to_le_bytes());
    }
    // The version is two u16: 2 then 4.
    file[4..8].copy_from_slice(&[2, 0, 4, 0]);
    let len = packet.len() as u32;
    for w in [1_700_000_000u32, 0, len, len] {
        file.extend_from_slice(&w.to_le_bytes());
    }
    file.extend_from_slice(&packet);
    file
}

#[test]
fn a_live_capture_on_the_loopback_decodes_as_it_goes() {
    if !have_tshark() {
        return;
    }
    let bus = Bus::new("none");
    let filter = format!("udp port {}", bus.port);
    let mut c = Command::new("tshark");
    c.args([
        "-X",
        &dissector(),
        "-i",
        "lo",
        "-f",
        &filter,
        "-l",
        "-T",
        "fields",
        "-e",
        "mbus.command",
    ]);
    let mut child = c
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let err = child.stderr.take().unwrap();
    let (etx, erx) = mpsc::channel();
    std::thread::spawn(move || {
        for l in BufReader::new(err).lines().map_while(Result::ok) {
            let _ = etx.send(l);
        }
    });
    // tshark says when it captures, or why it cannot.
    let until = Instant::now() + DEADLINE;
    loop {
        match erx.recv_timeout(Duration::from_millis(200)) {
            Ok(l) if l.contains("Capturing on") => break,
            Ok(l)
                if l.contains("ermission")
                    || l.contains("don't have")
                    || l.contains("Couldn't run")
                    || l.contains("dumpcap") =>
            {
                eprintln!("SKIPPED: tshark cannot capture on lo here: {l}");
                let _ = child.kill();
                let _ = child.wait();
                return;
            }
            _ => {}
        }
        if let Ok(Some(status)) = child.try_wait() {
            eprintln!("SKIPPED: tshark cannot capture on lo here (it exited {status})");
            return;
        }
        assert!(Instant::now() < until, "tshark never started capturing");
    }
    let out = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for l in BufReader::new(out).lines().map_while(Result::ok) {
            let _ = tx.send(l);
        }
    });
    let until = Instant::now() + DEADLINE;
    let mut seen = Vec::new();
    while !seen.iter().any(|l: &String| l == "live.ping") {
        assert!(Instant::now() < until, "never decoded: {seen:?}");
        let _ = bus.rmbus(&["send", "live.ping", "(1)"]).output();
        while let Ok(l) = rx.recv_timeout(Duration::from_millis(300)) {
            seen.push(l);
        }
    }
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn odd_but_valid_and_malformed_datagrams_decode_as_the_grammar_says() {
    if !have_tshark() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let decode = |name: &str, payload: &[u8], fields_wanted: &[&str]| {
        let file = dir.path().join(name);
        std::fs::write(&file, raw_ip_pcap(47000, payload)).unwrap();
        fields(&file, &[], fields_wanted).remove(0)
    };
    // A string holding a line end, two commands on one line after
    // leading blanks, CRLF, trailing NUL padding.
    let row = decode(
        "odd.pcap",
        b"qJsDJDwAMQVkzhxe\r\nmbus/1.0 5 1700000000000 R (app:a id:1) (app:b) (1 2)\r\n  sdr.desc (\"line1\nline2\" 3)  tool.x ()\n\0\0",
        &["mbus.command", "mbus.ack", "mbus.seq", "_ws.expert.message"],
    );
    assert_eq!(row[0], "sdr.desc,tool.x", "{row:?}");
    assert_eq!(row[1], "1,2", "{row:?}");
    assert_eq!(row[2], "5");
    assert!(row[3].is_empty(), "nothing malformed: {row:?}");
    // A SeqNum beyond 32 bits, and a string never closed: malformed, said.
    let row = decode(
        "seq.pcap",
        b"qJsDJDwAMQVkzhxe\nmbus/1.0 99999999999 1 U (app:a id:1) () ()\nx ()",
        &["mbus.seq", "_ws.expert.message"],
    );
    assert!(row[0].is_empty() && row[1].contains("SeqNum"), "{row:?}");
    let row = decode(
        "string.pcap",
        b"qJsDJDwAMQVkzhxe\nmbus/1.0 1 1 U (app:a id:1) () ()\nx (1 \"open)",
        &["mbus.command", "_ws.expert.message"],
    );
    assert_eq!(row[0], "x");
    assert!(row[1].contains("not one list"), "{row:?}");
}
