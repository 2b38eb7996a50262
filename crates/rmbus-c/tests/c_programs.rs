//! The C programs in `tests/c/`, compiled with the system C compiler
//! against `include/` and the library `cargo build -p rmbus-c` made (the
//! README's test command builds it first: a `cargo build` inside `cargo
//! test` would wait for ever on the build directory's lock), and run on a
//! private host-local bus.

use std::io::Read;
use std::net::{Ipv4Addr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant, SystemTime};

use rmbus::auth::{seal, CipherAlgo, HashAlgo};
use rmbus::config::file;
use rmbus::proto::{Delivery, Event};
use rmbus::runtime::Bus;
use rmbus::wire::{
    timestamp_of, Address, Command as MbusCommand, Framing, Header, Message, MessageType, Value,
};

const DEADLINE: Duration = Duration::from_secs(40);

/// Where the library is: the profile directory above this test's binary.
fn lib_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test's own path");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps/<test>")
        .to_path_buf();
    for lib in ["librmbus_c.so", "librmbus_c.a"] {
        assert!(
            dir.join(lib).exists(),
            "{} is missing: build the C library first (`cargo build -p rmbus-c`; the README's test command does)",
            dir.join(lib).display()
        );
    }
    dir
}

fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[derive(Clone, Copy)]
enum Link {
    Shared,
    Static,
}

/// Compiles `tests/c/NAME.c` into `out`, linked with the library.
fn compile(name: &str, out: &Path, link: Link) -> PathBuf {
    let lib = lib_dir();
    let exe = out.join(name);
    let mut cc = Command::new(std::env::var("CC").unwrap_or_else(|_| "cc".into()));
    cc.args([
        "-std=c99",
        "-D_POSIX_C_SOURCE=200809L",
        "-Wall",
        "-Wextra",
        "-Werror",
        "-g",
    ])
    .arg("-I")
    .arg(crate_dir().join("include"))
    .arg(crate_dir().join("tests/c").join(format!("{name}.c")))
    .arg("-o")
    .arg(&exe);
    match link {
        Link::Shared => {
            cc.arg("-L")
                .arg(&lib)
                .arg("-lrmbus_c")
                .arg(format!("-Wl,-rpath,{}", lib.display()));
        }
        Link::Static => {
            cc.arg(lib.join("librmbus_c.a")).args([
                "-lgcc_s",
                "-lutil",
                "-lrt",
                "-lpthread",
                "-lm",
                "-ldl",
            ]);
        }
    }
    let done = cc.output().expect("a C compiler (cc)");
    assert!(
        done.status.success(),
        "compiling {name}.c failed:\n{}",
        String::from_utf8_lossy(&done.stderr)
    );
    exe
}

/// A private host-local bus: a configuration file with fresh keys on a
/// free port (should two tests ever draw the same port, their keys keep
/// their datagrams apart).
struct TestBus {
    dir: tempfile::TempDir,
    config: PathBuf,
}

impl TestBus {
    fn new() -> TestBus {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let port = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))
            .and_then(|s| s.local_addr())
            .expect("a free port")
            .port();
        let config = dir.path().join("mbus.conf");
        file::load_or_create(&config, HashAlgo::HmacMd5_96, CipherAlgo::None)
            .expect("a configuration with fresh keys");
        let text = std::fs::read_to_string(&config).expect("the configuration file");
        let text: String = text
            .lines()
            .filter(|l| !l.starts_with("PORT=") && !l.starts_with("SCOPE="))
            .map(|l| format!("{l}\n"))
            .chain([format!("SCOPE=HOSTLOCAL\nPORT={port}\n")])
            .collect();
        std::fs::write(&config, text).expect("the configuration file");
        TestBus { dir, config }
    }

    /// `exe ARGS` on this bus ($MBUS), its output collected.
    fn spawn(&self, exe: &Path, args: &[&str]) -> std::process::Child {
        Command::new(exe)
            .args(args)
            .env("MBUS", &self.config)
            .env("HOME", self.dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the C program starts")
    }

    fn bus(&self, address: &str) -> Bus {
        let config = file::load(&self.config).expect("the test configuration");
        Bus::bind(&config, &Address::parse(address).unwrap()).expect("the test entity joins")
    }
}

/// Waits for `child` (killing it after the deadline) and returns its
/// output, read as it comes (so that a talkative child never blocks).
fn finish(mut child: std::process::Child) -> Output {
    fn drain(pipe: Option<impl Read + Send + 'static>) -> std::thread::JoinHandle<Vec<u8>> {
        std::thread::spawn(move || {
            let mut all = Vec::new();
            if let Some(mut p) = pipe {
                let _ = p.read_to_end(&mut all);
            }
            all
        })
    }
    let (stdout, stderr) = (drain(child.stdout.take()), drain(child.stderr.take()));
    let until = Instant::now() + DEADLINE;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > until {
            let _ = child.kill();
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    }
}

fn text(o: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}--- stderr\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn assert_ok(o: &Output, says: &[&str]) {
    let all = text(o);
    assert!(o.status.success(), "{all}");
    for s in says {
        assert!(all.contains(s), "no {s:?} in:\n{all}");
    }
}

/// Drives `bus` until `f` says it is done with an event, or the deadline.
fn pump(bus: &mut Bus, mut f: impl FnMut(&mut Bus, Event) -> bool) {
    let until = Instant::now() + DEADLINE;
    loop {
        assert!(Instant::now() < until, "the rmbus entity waited in vain");
        bus.on_readable().unwrap();
        bus.on_timeout().unwrap();
        while let Some(event) = bus.poll_event() {
            if f(bus, event) {
                bus.flush().unwrap();
                return;
            }
        }
        let wait = bus
            .timeout()
            .unwrap_or(Duration::from_millis(50))
            .min(Duration::from_millis(50));
        let mut pfd = libc::pollfd {
            fd: std::os::fd::AsRawFd::as_raw_fd(bus),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        unsafe { libc::poll(&mut pfd, 1, wait.as_millis() as i32) };
    }
}

#[test]
fn every_declared_symbol_links_shared_and_static_with_the_headers_types() {
    let out = tempfile::tempdir().unwrap();
    for link in [Link::Shared, Link::Static] {
        let dir = out.path().join(match link {
            Link::Shared => "shared",
            Link::Static => "static",
        });
        std::fs::create_dir(&dir).unwrap();
        let exe = compile("symbols", &dir, link);
        let run = Command::new(&exe).output().unwrap();
        assert_ok(&run, &["40 symbols, 0 failures", "MBUS_UNKOWN_ERR"]);
    }
}

#[test]
fn the_parser_functions_on_tricky_arguments() {
    let out = tempfile::tempdir().unwrap();
    let exe = compile("parser", out.path(), Link::Static);
    let run = Command::new(&exe).output().unwrap();
    assert_ok(&run, &["0 failures"]);
}

#[test]
fn misuse_is_answered_as_documented_never_a_crash() {
    let out = tempfile::tempdir().unwrap();
    let exe = compile("misuse", out.path(), Link::Shared);
    let bus = TestBus::new();
    let run = finish(bus.spawn(&exe, &[]));
    assert_ok(
        &run,
        &[
            "0 failures",
            // Every refusal of a void function is said on stderr.
            "rmbus: mbus_qmsg: nothing queued",
            "is not a live mbus handle",
        ],
    );
}

#[test]
fn two_copies_of_a_ucl_program_rendezvous_and_exchange_commands() {
    let out = tempfile::tempdir().unwrap();
    let shared = compile("ucl_component", out.path(), Link::Shared);
    let static_dir = out.path().join("static");
    std::fs::create_dir(&static_dir).unwrap();
    let linked_static = compile("ucl_component", &static_dir, Link::Static);
    let bus = TestBus::new();
    let ui = bus.spawn(&shared, &["ui"]);
    let engine = bus.spawn(&linked_static, &["engine"]);
    let (engine, ui) = (finish(engine), finish(ui));
    assert_ok(
        &engine,
        &[
            "rendezvous with (app:ctest module:ui id:",
            "reply 42",
            "done",
        ],
    );
    assert_ok(
        &ui,
        &[
            "rendezvous with (app:ctest module:engine id:",
            ": a \"quoted\" text 41",
            "level 0.50",
            "done",
        ],
    );
}

#[test]
fn a_ucl_program_and_an_rmbus_entity_exchange_commands_both_ways() {
    let out = tempfile::tempdir().unwrap();
    let exe = compile("ucl_component", out.path(), Link::Shared);

    // The C engine waits for us (the ui): we answer its mbus.waiting with
    // mbus.go, take its reliable and unreliable commands and reply.
    let bus = TestBus::new();
    let engine = bus.spawn(&exe, &["engine"]);
    let mut ui = bus.bus("(app:ctest module:ui)");
    let (mut hello, mut level) = (None, None);
    pump(&mut ui, |b, event| {
        match event {
            Event::Waiting { src, condition } if condition == "ctest-ready" => {
                b.with_endpoint(|ep, now| ep.go(now, &src, &condition))
                    .unwrap();
            }
            Event::Command {
                src,
                command,
                reliable,
            } => match command.name.as_str() {
                "ctest.hello" => {
                    assert!(reliable, "ctest.hello came reliably");
                    hello = Some(command.args.clone());
                    let reply = MbusCommand::new("ctest.reply", vec![Value::Integer(42)]);
                    b.with_endpoint(|ep, now| ep.send(now, &src, vec![reply], Delivery::Reliable))
                        .unwrap();
                }
                "ctest.level" => level = Some((command.args.clone(), reliable)),
                _ => {}
            },
            _ => {}
        }
        hello.is_some() && level.is_some()
    });
    assert_eq!(
        hello.unwrap(),
        vec![
            Value::String("a \"quoted\" text".into()),
            Value::Integer(41)
        ]
    );
    // Queued right after the reliable hello for the same destination, the
    // unreliable level shares its message, and so comes reliably (as UCL's
    // mbus_qmsg batches).
    assert_eq!(level.unwrap(), (vec![Value::Float(0.5)], true));
    assert_ok(&finish(engine), &["reply 42", "done"]);

    // The C ui answers our wait with mbus.go and our command with a reply.
    let bus = TestBus::new();
    let ui = bus.spawn(&exe, &["ui"]);
    let mut engine = bus.bus("(app:ctest module:engine)");
    let ui_address = Address::parse("(app:ctest module:ui)").unwrap();
    let mut waiting_started = false;
    let mut reply = None;
    pump(&mut engine, |b, event| {
        match event {
            Event::PeerJoined(a) if ui_address.is_subset_of(&a) && !waiting_started => {
                b.with_endpoint(|ep, now| ep.start_waiting(now, &a, "ctest-ready"))
                    .unwrap();
                waiting_started = true;
            }
            Event::Go { src, .. } => {
                let hello = MbusCommand::new(
                    "ctest.hello",
                    vec![Value::String("from rust".into()), Value::Integer(9)],
                );
                let level = MbusCommand::new("ctest.level", vec![Value::Float(0.25)]);
                b.with_endpoint(|ep, now| {
                    ep.send(now, &src, vec![hello], Delivery::Reliable)?;
                    ep.send(now, &src, vec![level], Delivery::Unreliable)
                })
                .unwrap();
            }
            Event::Command {
                command, reliable, ..
            } if command.name == "ctest.reply" => {
                reply = Some((command.args, reliable));
                return true;
            }
            _ => {}
        }
        false
    });
    assert_eq!(reply.unwrap(), (vec![Value::Integer(10)], true));
    assert_ok(&finish(ui), &[": from rust 9", "level 0.25", "done"]);
}

#[test]
fn a_reliable_message_nobody_acknowledges_reaches_the_error_handler() {
    let out = tempfile::tempdir().unwrap();
    let exe = compile("ucl_component", out.path(), Link::Shared);
    let bus = TestBus::new();
    let config = file::load(&bus.config).unwrap();
    let keys = config.keys().unwrap();
    let group = config.group_addr();
    let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    socket.set_multicast_ttl_v4(0).unwrap();
    // Multicast leaves by the loopback only (the socket is bound there,
    // and IP_MULTICAST_IF says so too), with TTL 0.
    let lo = libc::in_addr {
        s_addr: u32::from(Ipv4Addr::LOCALHOST).to_be(),
    };
    // SAFETY: a valid socket and an in_addr of the size given.
    let set = unsafe {
        libc::setsockopt(
            std::os::fd::AsRawFd::as_raw_fd(&socket),
            libc::IPPROTO_IP,
            libc::IP_MULTICAST_IF,
            (&lo as *const libc::in_addr).cast(),
            std::mem::size_of::<libc::in_addr>() as libc::socklen_t,
        )
    };
    assert_eq!(set, 0, "IP_MULTICAST_IF on the loopback");
    let sender = bus.spawn(&exe, &["lost"]);
    // An entity that says hello and never acknowledges anything.
    let mut sender = Some(sender);
    let mut seq = 0;
    let until = Instant::now() + DEADLINE;
    let output = loop {
        let hello = Message {
            header: Header {
                seq,
                timestamp: timestamp_of(SystemTime::now()),
                kind: MessageType::Unreliable,
                src: Address::parse("(app:ctest module:mute id:1-1@127.0.0.1)").unwrap(),
                dst: Address::parse("()").unwrap(),
                acks: vec![],
            },
            commands: vec![MbusCommand::new("mbus.hello", vec![])],
        };
        seq += 1;
        socket
            .send_to(&seal(&hello, &keys, Framing::Lf).unwrap(), group)
            .unwrap();
        let child = sender.as_mut().unwrap();
        if child.try_wait().unwrap().is_some() {
            break finish(sender.take().unwrap());
        }
        assert!(Instant::now() < until, "the sender did not finish");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_ok(
        &output,
        &[
            "heard the mute entity",
            "waiting ack 1",
            "error 1 MBUS_MESSAGE_LOST",
            "done",
        ],
    );
}

#[test]
fn the_native_api_in_a_programs_own_poll_loop() {
    let out = tempfile::tempdir().unwrap();
    let exe = compile("native_poll", out.path(), Link::Static);
    let bus = TestBus::new();
    let run = finish(bus.spawn(&exe, &[]));
    assert_ok(
        &run,
        &[
            "returned ok OK values (5) from (app:ctest module:server id:",
            "request ctest.add from (app:ctest module:client id:",
            "(2 3): reply RMBUS_OK",
            "process from callback: RMBUS_ERR_REENTERED",
            "outcome delivered for ctest.note",
            "command ctest.note (\"hi\" (1 2)) from (app:ctest module:client id:",
            "reliable",
            "command mbus.quit () from (app:ctest module:client id:",
            "holding request",
            "open call ended closed; a send from it: RMBUS_ERR_CLOSED",
            "done",
        ],
    );
}

#[test]
fn the_install_command_and_pkg_config_build_a_ucl_program() {
    let prefix = tempfile::tempdir().unwrap();
    let install = Command::new("sh")
        .arg(crate_dir().join("install.sh"))
        .arg("--built")
        .arg(lib_dir())
        .arg(prefix.path())
        .output()
        .unwrap();
    assert_ok(&install, &["installed rmbus-c"]);
    for f in [
        "lib/librmbus_c.so",
        "lib/librmbus_c.a",
        "include/rmbus/mbus.h",
        "include/rmbus/mbus_parser.h",
        "include/rmbus/rmbus.h",
        "lib/pkgconfig/rmbus-c.pc",
    ] {
        assert!(prefix.path().join(f).exists(), "{f} installed");
    }
    let pc = std::fs::read_to_string(prefix.path().join("lib/pkgconfig/rmbus-c.pc")).unwrap();
    assert!(
        pc.contains(&format!("prefix={}", prefix.path().display())),
        "{pc}"
    );
    let flags = match Command::new("pkg-config")
        .args(["--cflags", "--libs", "rmbus-c"])
        .env("PKG_CONFIG_PATH", prefix.path().join("lib/pkgconfig"))
        .output()
    {
        Ok(o) if o.status.success() => String::from_utf8(o.stdout).unwrap(),
        Ok(o) => panic!("pkg-config refused rmbus-c.pc: {}", text(&o)),
        Err(e) => {
            eprintln!("skipped the pkg-config part: pkg-config cannot run here ({e})");
            return;
        }
    };
    assert!(flags.contains("-lrmbus_c"), "{flags}");
    let exe = prefix.path().join("ucl_component");
    let mut cc = Command::new(std::env::var("CC").unwrap_or_else(|_| "cc".into()));
    cc.arg(crate_dir().join("tests/c/ucl_component.c"))
        .arg("-o")
        .arg(&exe)
        .args(flags.split_whitespace())
        .arg(format!(
            "-Wl,-rpath,{}",
            prefix.path().join("lib").display()
        ));
    assert_ok(&cc.output().unwrap(), &[]);
    let bus = TestBus::new();
    let ui = bus.spawn(&exe, &["ui"]);
    let engine = bus.spawn(&exe, &["engine"]);
    assert_ok(&finish(engine), &["reply 42", "done"]);
    assert_ok(&finish(ui), &["done"]);
}
