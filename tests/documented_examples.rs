//! Every example in every `rmbus … --help`, and every line of the README's
//! `sh` blocks (the pyCMBS recipe as one script; `cargo` lines are what CI
//! runs itself; blocks marked `text` are not run), runs as written, on a private
//! host-local bus (a free port, a throwaway HOME holding the configuration,
//! the examples' files in that HOME), against the entities it needs, which
//! the test starts: an engine `(app:rat module:engine)` with the RPCs and the
//! property the examples use, a peer `(app:peer)`, two CMBS members (one
//! with the id the examples name, serving the provider `weather` and
//! executing L1 messages; one storing what it receives in `./m.sqlite`), and
//! a gateway for `curl`. One-shot examples must exit 0 (and print what they
//! should); long-running ones (monitor, watch, demo, member, gateway) are
//! stopped by SIGINT after their first line of output and must exit 0 after
//! a clean bye. Two things are put in: `<message-id>` becomes the id of a
//! message the store holds, and the gateway's port 8090 a free port (no test
//! listens on a fixed port). An example whose program (`man`, `jq`, …) is
//! not installed is skipped, and the test says so.

mod common;
mod nats;

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use rmbus::proto::Delivery;
use rmbus::rpc::{Access, Reply};
use rmbus::runtime::{spawn, Handle};
use rmbus::wire::{Address, Command as MbusCommand, Value};

const DEADLINE: Duration = Duration::from_secs(30);

/// The subcommands whose examples run here, in an order in which each
/// example finds what an earlier one made (`decode` reads what `encode`
/// wrote, `monitor --read` what `monitor --pcap` recorded).
const SUBCOMMANDS: &[&str] = &[
    "keygen",
    "encode",
    "decode",
    "list",
    "send",
    "call",
    "get",
    "set",
    "watch",
    "join",
    "monitor",
    "demo",
    "completions",
    "man",
    "member",
    "publish",
    "members",
    "messages",
    "gateway",
    "bridge",
];

/// The member id the CMBS examples name.
const MEMBER: &str = "6f1c0a2e-5b7d-4c1e-9a3f-2d8e4b6c1a90";

/// Commands that run until they are stopped.
fn long_running(example: &str) -> bool {
    if !example.starts_with("rmbus ") {
        return false;
    }
    let first = example.split_whitespace().nth(1).unwrap_or_default();
    (matches!(first, "monitor" | "watch" | "demo") && !example.contains("--read"))
        || first == "member"
        || (first == "gateway" && !example.contains("--hash-password"))
        || first == "bridge"
}

/// What an example must print (a part of its standard output), if anything
/// in particular.
fn expected_output(example: &str) -> Option<&'static str> {
    [
        ("tools.foo.bar", "(OK OK \"\")"),
        ("engine.status", "\"outcome\":\"ok\""),
        ("tools.version", "(app:rat module:engine"),
        ("rmbus get", "50"),
        ("rmbus set", "80"),
        (
            "rmbus list --wait 5 --json",
            "\"address\":\"(app:rat module:engine",
        ),
        ("rsend (app:peer) test.ping", "\"event\":\"delivered\""),
        ("decode --json", "\"mbus.hello\""),
        ("rmbus decode datagram.bin", "test.set (1 \"x\" (2 3))"),
        ("--read bus.pcap", " ok  mbus/1.0 "),
        ("mbus.hello '()'", "0a"),
        ("man -l target/man/rmbus-join.1", "rsend"),
        ("rmbus man | man", "EXIT STATUS"),
        ("rmbus member --topics", "rmbus: member "),
        ("--layer l2 '{", "DELIVERED"),
        ("--executable", "DELIVERED"),
        ("alerts.disk --storable", "DELIVERED"),
        ("--hold 5", "DELIVERED"),
        ("rmbus members --json", MEMBER),
        ("stop_l2", "active on l1,l3.1,l3.2,l4"),
        (
            "rmbus messages --store ./m.sqlite <message-id>",
            "disk full",
        ),
        ("gateway --no-auth", "listening on http://127.0.0.1:"),
        ("curl -s --user alice:secret", "cmbs"),
        ("mixer.add '(2 3)'", "(5)"),
        ("mixer.status", "MIXING"),
        ("rmbus get '(module:mixer)'", "50"),
        ("rmbus set '(module:mixer)'", "80"),
        ("codec.encode", "(\"x\")"),
        ("tool.version", "(app:rat module:engine"),
        ("rmbus decode hello.bin", "mbus.hello ()"),
        ("rmbus decode --json hello.bin", "\"mbus.hello\""),
        ("rmbus decode --hex hello.txt", "mbus.hello ()"),
        ("--to <member-id> --executable", "DELIVERED"),
        ("alerts.disk.full", "DELIVERED"),
        ("--storable --text 'kept on disk", "DELIVERED"),
        ("| grep -i -e etag", "etag: \""),
        ("rmbus bridge --site office", "rmbus bridge: site office"),
        ("--only-listed --json", "\"event\":\"ready\""),
    ]
    .into_iter()
    .find(|(k, _)| example.contains(k))
    .map(|(_, v)| v)
}

/// The examples of one subcommand's `--help`: the indented lines under
/// `Example:` or `Examples:`, a line ending in `\` joined with the next;
/// trailing `# …` comments dropped.
fn examples_of(help: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut inside = false;
    let mut pending = String::new();
    for line in help.lines() {
        if line.starts_with("Example:") || line.starts_with("Examples:") {
            inside = true;
            continue;
        }
        if !inside {
            continue;
        }
        if line.trim().is_empty() {
            break;
        }
        let line = line.trim();
        if let Some(start) = line.strip_suffix('\\') {
            pending.push_str(start);
            continue;
        }
        let full = format!("{pending}{line}");
        pending.clear();
        out.push(strip_comment(&full));
    }
    out
}

/// The line without a trailing ` # comment` (outside quotes).
fn strip_comment(line: &str) -> String {
    let (mut single, mut double) = (false, false);
    let bytes = line.as_bytes();
    for (i, &c) in bytes.iter().enumerate() {
        match c {
            b'\'' if !double => single = !single,
            b'"' if !single => double = !double,
            b'#' if !single && !double && i > 0 && bytes[i - 1] == b' ' => {
                return line[..i].trim_end().to_owned();
            }
            _ => {}
        }
    }
    line.trim_end().to_owned()
}

/// The programs an example runs (the first word of each part of a pipeline
/// or `&&` chain).
fn programs(example: &str) -> Vec<String> {
    example
        .split(['|', '&', ';'])
        .filter_map(|part| part.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(program).is_file()))
}

/// The private bus, its files, and the entities the examples talk to.
struct Bench {
    home: tempfile::TempDir,
    bin_dir: PathBuf,
    engine: Handle,
    peer: Handle,
    others: Vec<Handle>,
    stop: Arc<AtomicBool>,
    ticker: Option<std::thread::JoinHandle<()>>,
}

impl Bench {
    fn new() -> Bench {
        let home = tempfile::tempdir().unwrap();
        let config = common::free_port_config();
        let path = home.path().join(".mbus");
        rmbus::config::file::write_new(&path, &config, false).unwrap();
        let engine = spawn(&config, &Address::parse("(app:rat module:engine)").unwrap())
            .unwrap()
            .0;
        engine
            .with(|bus| {
                bus.serve("tools.foo.bar", |_| Reply::ok(vec![]).into());
                bus.serve("engine.status", |_| {
                    Reply::ok(vec![Value::symbol("RUNNING")]).into()
                });
                bus.serve("tools.version", |_| {
                    Reply::ok(vec![Value::string("1.0")]).into()
                });
                bus.with_endpoint(|ep, _| {
                    ep.properties()
                        .define("audio.volume", Value::Integer(50), Access::ReadWrite);
                });
            })
            .unwrap();
        engine
            .with(|bus| {
                bus.serve("tool.version", |_| {
                    Reply::ok(vec![Value::string("1.0")]).into()
                })
            })
            .unwrap();
        // The README's callees: a mixer and a codec.
        let mixer = spawn(&config, &Address::parse("(app:demo module:mixer)").unwrap())
            .unwrap()
            .0;
        mixer
            .with(|bus| {
                bus.serve("mixer.add", |req| {
                    let sum: i64 = req.args.iter().filter_map(Value::as_i64).sum();
                    Reply::ok(vec![Value::Integer(sum)]).into()
                });
                bus.serve("mixer.status", |_| {
                    Reply::ok(vec![Value::symbol("MIXING")]).into()
                });
                bus.with_endpoint(|ep, _| {
                    ep.properties()
                        .define("mixer.volume", Value::Integer(50), Access::ReadWrite);
                });
            })
            .unwrap();
        let codec = spawn(&config, &Address::parse("(app:demo module:codec)").unwrap())
            .unwrap()
            .0;
        codec
            .with(|bus| bus.serve("codec.encode", |req| Reply::ok(req.args.clone()).into()))
            .unwrap();
        let peer = spawn(&config, &Address::parse("(app:peer)").unwrap())
            .unwrap()
            .0;
        // Traffic for the monitor's filters: a tool.tick every 200 ms.
        let stop = Arc::new(AtomicBool::new(false));
        let (ticking, weak) = (stop.clone(), peer.downgrade());
        let ticker = std::thread::spawn(move || {
            while !ticking.load(Ordering::Relaxed) {
                if let Some(peer) = weak.upgrade() {
                    let _ = peer.with_endpoint(|ep, now| {
                        ep.send(
                            now,
                            &Address::empty(),
                            vec![MbusCommand::new("tool.tick", vec![])],
                            Delivery::Unreliable,
                        )
                    });
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        });
        let bin = PathBuf::from(env!("CARGO_BIN_EXE_rmbus"));
        Bench {
            home,
            bin_dir: bin.parent().unwrap().to_path_buf(),
            engine,
            peer,
            others: vec![mixer, codec],
            stop,
            ticker: Some(ticker),
        }
    }

    fn dir(&self) -> &Path {
        self.home.path()
    }

    /// `bash -c example` in HOME, with rmbus first on the PATH.
    fn command(&self, example: &str) -> Command {
        let path = std::env::var_os("PATH").unwrap_or_default();
        let mut dirs = vec![self.bin_dir.clone()];
        dirs.extend(std::env::split_paths(&path));
        let mut cmd = Command::new("bash");
        let line = if long_running(example) {
            format!("exec {example}")
        } else {
            example.to_owned()
        };
        cmd.arg("-c")
            .arg(line)
            .current_dir(self.dir())
            .env("HOME", self.dir())
            .env("MBUS", self.dir().join(".mbus"))
            .env("PATH", std::env::join_paths(dirs).unwrap())
            .env("MANPAGER", "cat")
            .env("PAGER", "cat")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        cmd
    }

    /// Runs a one-shot example to its end: its exit code, stdout, stderr.
    fn run(&self, example: &str) -> (Option<i32>, String, String) {
        let child = self.command(example).spawn().unwrap();
        let pid = child.id();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(child.wait_with_output());
        });
        match rx.recv_timeout(DEADLINE) {
            Ok(out) => {
                let out = out.unwrap();
                (
                    out.status.code(),
                    String::from_utf8_lossy(&out.stdout).into_owned(),
                    String::from_utf8_lossy(&out.stderr).into_owned(),
                )
            }
            Err(_) => {
                let _ = nix::sys::signal::killpg(
                    nix::unistd::Pid::from_raw(pid as i32),
                    nix::sys::signal::Signal::SIGKILL,
                );
                panic!("{example}: did not end within {DEADLINE:?}")
            }
        }
    }

    /// Starts a long-running example, waits for its first line of output
    /// (the first holding `want`, if given), stops it with SIGINT: its exit
    /// code and that line.
    fn run_until_first_line(&self, example: &str, want: Option<&str>) -> (Option<i32>, String) {
        let mut child = self.command(example).spawn().unwrap();
        let rx = lines_of(&mut child);
        let until = Instant::now() + DEADLINE;
        let first = loop {
            match rx.recv_timeout(until.saturating_duration_since(Instant::now())) {
                Ok(line) if want.is_none_or(|w| line.contains(w)) => break Ok(line),
                Ok(_) => {}
                Err(e) => break Err(e),
            }
        };
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT);
        let until = Instant::now() + DEADLINE;
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > until {
                let _ = child.kill();
                panic!("{example}: did not stop after SIGINT");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let first = first.unwrap_or_else(|_| panic!("{example}: no output within {DEADLINE:?}"));
        (status.code(), first)
    }
}

/// The lines a child writes on stdout and stderr, as they come.
fn lines_of(child: &mut std::process::Child) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    let out = child
        .stdout
        .take()
        .map(|o| Box::new(o) as Box<dyn std::io::Read + Send>);
    let err = child
        .stderr
        .take()
        .map(|e| Box::new(e) as Box<dyn std::io::Read + Send>);
    for stream in [out, err].into_iter().flatten() {
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
    }
    rx
}

/// A process the examples need, running until the test stops it.
struct Fixture {
    child: std::process::Child,
    lines: mpsc::Receiver<String>,
}

impl Fixture {
    fn start(bench: &Bench, line: &str) -> Fixture {
        let mut child = bench.command(&format!("exec {line}")).spawn().unwrap();
        let lines = lines_of(&mut child);
        Fixture { child, lines }
    }

    /// Waits for a line containing `what`.
    fn expect(&self, what: &str) {
        let until = Instant::now() + DEADLINE;
        loop {
            match self
                .lines
                .recv_timeout(until.saturating_duration_since(Instant::now()))
            {
                Ok(line) if line.contains(what) => return,
                Ok(_) => {}
                Err(e) => panic!("fixture never said {what:?}: {e}"),
            }
        }
    }

    fn stop(mut self) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT);
        let until = Instant::now() + DEADLINE;
        while self.child.try_wait().unwrap().is_none() {
            assert!(Instant::now() < until, "a fixture did not stop");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Bench {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.ticker.take() {
            let _ = t.join();
        }
        self.peer.close();
        self.engine.close();
        for h in &self.others {
            h.close();
        }
    }
}

#[test]
fn every_help_example_runs_as_written() {
    let bench = Bench::new();
    let gateway_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut ran = 0;
    let mut skipped = Vec::new();
    let mut fixtures: Vec<Fixture> = Vec::new();
    for sub in SUBCOMMANDS {
        match *sub {
            // The members the publish examples reach, once the member
            // examples have run (one of them has the same id).
            "publish" => {
                let weather = Fixture::start(
                    &bench,
                    &format!(
                        "rmbus member --memory --id {MEMBER} --topics 'sensors.#' --providers weather --exec cat"
                    ),
                );
                let store = Fixture::start(
                    &bench,
                    "rmbus member --store ./m.sqlite --topics 'alerts.#'",
                );
                weather.expect("rmbus: member ");
                store.expect("rmbus: member ");
                fixtures.extend([weather, store]);
            }
            // The store is read once its member has stopped.
            "messages" => {
                for f in fixtures.drain(..) {
                    f.stop();
                }
            }
            _ => {}
        }
        let help = Command::new(env!("CARGO_BIN_EXE_rmbus"))
            .args([sub, "--help"])
            .output()
            .unwrap();
        let examples = examples_of(&String::from_utf8_lossy(&help.stdout));
        assert!(!examples.is_empty(), "rmbus {sub} --help has examples");
        // The bridge's examples name NATS servers on 127.0.0.1:4222 and
        // 4223: a cluster of two of our own, on free ports, stands in.
        let cluster = (*sub == "bridge")
            .then(|| nats::Cluster::start(2, ""))
            .flatten();
        for example in examples {
            let mut example = put_in(&bench, &example, gateway_port);
            if *sub == "bridge" {
                let Some(c) = &cluster else {
                    skipped.push(format!("{example} (nats-server is not installed)"));
                    continue;
                };
                for (named, node) in [("127.0.0.1:4222", 0), ("127.0.0.1:4223", 1)] {
                    example = example.replace(named, &format!("127.0.0.1:{}", c.nodes[node].port));
                }
            }
            // curl needs a gateway that knows alice (the gateway examples
            // before it have stopped, freeing the port).
            if example.starts_with("curl") && on_path("curl") {
                let g = Fixture::start(
                    &bench,
                    &format!("rmbus gateway --user alice:secret --listen 127.0.0.1:{gateway_port} --state ./gw-fixture"),
                );
                g.expect("listening on");
                fixtures.push(g);
            }
            if !run_example(&bench, &example, &mut skipped) {
                continue;
            }
            ran += 1;
        }
    }
    for f in fixtures {
        f.stop();
    }
    for s in &skipped {
        eprintln!("skipped: {s}");
    }
    assert!(ran >= 25, "examples run: {ran}");
}

/// Runs one example as its kind asks (see the module docs) and checks it;
/// false, with the reason noted in `skipped`, if a program it needs is not
/// installed.
fn run_example(bench: &Bench, example: &str, skipped: &mut Vec<String>) -> bool {
    if let Some(missing) = programs(example)
        .into_iter()
        .find(|p| p != "rmbus" && !["mkdir", "printf", "echo"].contains(&p.as_str()) && !on_path(p))
    {
        skipped.push(format!("{example} ({missing} is not installed)"));
        return false;
    }
    let want = expected_output(example);
    if long_running(example) {
        let (code, first) = bench.run_until_first_line(example, want);
        assert_eq!(
            code,
            Some(0),
            "{example}: stopped by SIGINT after {first:?}"
        );
    } else {
        let (code, out, err) = bench.run(example);
        assert_eq!(code, Some(0), "{example}:\n{out}\n{err}");
        if let Some(want) = want {
            assert!(
                out.contains(want),
                "{example}: wanted {want:?} in\n{out}\n{err}"
            );
        }
    }
    true
}

/// The example with what only the test can know put in: `<message-id>` (a
/// message the store holds) and the gateway's port (a free one instead of
/// 8090; `--listen` added where the example relies on the default).
fn put_in(bench: &Bench, example: &str, gateway_port: u16) -> String {
    let mut line = example.replace("127.0.0.1:8090", &format!("127.0.0.1:{gateway_port}"));
    if line.starts_with("rmbus gateway")
        && !line.contains("--listen")
        && !line.contains("--hash-password")
    {
        line.push_str(&format!(" --listen 127.0.0.1:{gateway_port}"));
    }
    line = line.replace("<member-id>", MEMBER);
    line = line.replace(
        "F=tests/fixtures/pycmbs",
        &format!("F={}/tests/fixtures/pycmbs", env!("CARGO_MANIFEST_DIR")),
    );
    if line.contains("<message-id>") {
        let (code, out, err) = bench.run("rmbus messages --store ./m.sqlite --json");
        assert_eq!(code, Some(0), "{err}");
        let first: serde_json::Value = serde_json::from_str(
            out.lines()
                .next()
                .unwrap_or_else(|| panic!("the store holds a message: {err}")),
        )
        .unwrap();
        let id = first["id"]
            .as_str()
            .unwrap_or_else(|| panic!("{first}"))
            .to_owned();
        line = line.replace("<message-id>", &id);
    }
    line
}

#[test]
fn examples_are_found_and_comments_dropped() {
    let help =
        "Usage: x\n\nExamples:\n  rmbus a --x   # says x\n  rmbus b \\\n      --y '#not' \n\nExit";
    assert_eq!(examples_of(help), ["rmbus a --x", "rmbus b --y '#not'"]);
    assert_eq!(
        programs("echo -n x | rmbus gateway && chmod 600 u"),
        ["echo", "rmbus", "chmod"]
    );
}

/// The README's ```sh blocks: each a list of lines (one command each), or,
/// when it sets shell variables, one script.
fn readme_blocks() -> Vec<Vec<String>> {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let mut blocks = Vec::new();
    let mut current: Option<Vec<String>> = None;
    for line in readme.lines() {
        match (&mut current, line) {
            (None, "```sh") => current = Some(Vec::new()),
            (Some(_), "```") => blocks.extend(current.take()),
            (Some(b), l) => b.push(l.to_owned()),
            _ => {}
        }
    }
    blocks
}

/// True for a block run as one script (it sets variables for later lines).
fn is_script(block: &[String]) -> bool {
    block.iter().any(|l| {
        l.split_once('=')
            .is_some_and(|(k, _)| !k.is_empty() && k.chars().all(|c| c.is_ascii_uppercase()))
    })
}

#[test]
fn every_readme_shell_block_runs_as_written() {
    let bench = Bench::new();
    let gateway_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    // The README's CMBS members: one with the id its examples put in
    // (stored at the default place), one storing in ./m.sqlite.
    let members = [
        Fixture::start(
            &bench,
            &format!("rmbus member --id {MEMBER} --topics 'alerts.#' --providers weather"),
        ),
        Fixture::start(
            &bench,
            "rmbus member --store ./m.sqlite --topics 'alerts.#,jobs.#'",
        ),
    ];
    for m in &members {
        m.expect("rmbus: member ");
    }
    let mut gateway: Option<Fixture> = None;
    let (mut ran, mut skipped) = (0, Vec::new());
    for block in readme_blocks() {
        if is_script(&block) {
            // The pyCMBS recipe, against a gateway that knows its user.
            let g = gateway.get_or_insert_with(|| {
                let g = Fixture::start(
                    &bench,
                    &format!("rmbus gateway --user user_1:pass --listen 127.0.0.1:{gateway_port} --state ./gw-fixture"),
                );
                g.expect("listening on");
                g
            });
            let _ = g;
            let script: Vec<String> = block
                .iter()
                .map(|l| put_in(&bench, l, gateway_port))
                .collect();
            let (code, out, err) = bench.run(&script.join("\n"));
            assert_eq!(code, Some(0), "the pyCMBS recipe:\n{out}\n{err}");
            assert!(
                out.contains("\"status\":\"delivered\""),
                "its L1 message is delivered:\n{out}\n{err}"
            );
            assert!(
                out.contains("X-OCCI-Location"),
                "the member listing:\n{out}"
            );
            ran += 1;
            continue;
        }
        for line in block {
            let line = strip_comment(line.trim());
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            // The README's own two commands and `cargo install` are what CI runs.
            if line.starts_with("cargo ") {
                continue;
            }
            let example = put_in(&bench, &line, gateway_port);
            if example.starts_with("curl") && gateway.is_none() {
                let g = Fixture::start(
                    &bench,
                    &format!("rmbus gateway --user user_1:pass --listen 127.0.0.1:{gateway_port} --state ./gw-fixture"),
                );
                g.expect("listening on");
                gateway = Some(g);
            }
            if !run_example(&bench, &example, &mut skipped) {
                continue;
            }
            ran += 1;
        }
    }
    for m in members {
        m.stop();
    }
    if let Some(g) = gateway {
        g.stop();
    }
    for s in &skipped {
        eprintln!("skipped: {s}");
    }
    assert!(ran >= 30, "README lines run: {ran}");
}
