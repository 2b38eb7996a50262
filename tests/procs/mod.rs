//! Running `rmbus` processes on a host-local bus of their own: a fresh
//! configuration on a free port, stdout lines collected on a channel, and
//! waits for events with a generous deadline (never fixed sleeps).
#![allow(dead_code)]

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::net::{Ipv4Addr, UdpSocket};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use rmbus::config::Config;
use serde_json::Value as Json;

pub const DEADLINE: Duration = Duration::from_secs(30);

pub struct Bus {
    _dir: tempfile::TempDir,
    pub config_path: PathBuf,
    pub config: Config,
}

/// A fresh host-local bus configuration on a free port.
pub fn bus() -> Bus {
    let dir = tempfile::tempdir().unwrap();
    let config = super::common::free_port_config();
    let config_path = dir.path().join("bus.conf");
    fs::write(&config_path, config.to_file_text()).unwrap();
    fs::set_permissions(&config_path, fs::Permissions::from_mode(0o600)).unwrap();
    Bus {
        _dir: dir,
        config_path,
        config,
    }
}

pub fn rmbus(bus: &Bus) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_rmbus"));
    cmd.env("MBUS", &bus.config_path).env_remove("RUST_LOG");
    cmd
}

/// A running command whose stdout lines are collected on a channel.
pub struct Proc {
    pub child: Child,
    pub stdin: Option<ChildStdin>,
    pub lines: Receiver<String>,
    pub seen: Vec<String>,
}

impl Proc {
    pub fn start(mut cmd: Command) -> Proc {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stdin = child.stdin.take();
        Proc {
            child,
            stdin,
            lines,
            seen: Vec::new(),
        }
    }

    pub fn join(bus: &Bus, module: &str) -> Proc {
        let mut cmd = rmbus(bus);
        cmd.args([
            "join",
            "--json",
            "--address",
            &format!("(app:test module:{module})"),
        ]);
        Proc::start(cmd)
    }

    pub fn say(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().unwrap();
        writeln!(stdin, "{line}").unwrap();
        stdin.flush().unwrap();
    }

    pub fn end_input(&mut self) {
        self.stdin.take();
    }

    /// The first JSON line (seen before or arriving within the deadline) that `f` accepts.
    pub fn expect(&mut self, what: &str, f: impl Fn(&Json) -> bool) -> Json {
        let parse = |l: &str| serde_json::from_str::<Json>(l).ok();
        if let Some(hit) = self.seen.iter().filter_map(|l| parse(l)).find(|j| f(j)) {
            return hit;
        }
        self.expect_new(what, f)
    }

    /// The first JSON line not seen yet, arriving within the deadline, that
    /// `f` accepts.
    pub fn expect_new(&mut self, what: &str, f: impl Fn(&Json) -> bool) -> Json {
        self.expect_new_within(what, DEADLINE, f)
    }

    /// The same within `within`.
    pub fn expect_new_within(
        &mut self,
        what: &str,
        within: Duration,
        f: impl Fn(&Json) -> bool,
    ) -> Json {
        let parse = |l: &str| serde_json::from_str::<Json>(l).ok();
        let until = Instant::now() + within;
        loop {
            let left = until.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let json = parse(&line);
                    self.seen.push(line);
                    if let Some(j) = json.filter(|j| f(j)) {
                        return j;
                    }
                }
                Err(_) => panic!(
                    "no {what} within {within:?}; saw:\n{}",
                    self.seen.join("\n")
                ),
            }
        }
    }

    /// The next JSON line within `within`, if one comes.
    pub fn next_within(&mut self, within: Duration) -> Option<Json> {
        let line = self.lines.recv_timeout(within).ok()?;
        self.seen.push(line.clone());
        serde_json::from_str(&line).ok()
    }

    /// True while the process has not exited.
    pub fn running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// The first text line not seen yet, arriving within the deadline, that
    /// `f` accepts.
    pub fn expect_line(&mut self, what: &str, f: impl Fn(&str) -> bool) -> String {
        let until = Instant::now() + DEADLINE;
        loop {
            let left = until.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if f(&line) {
                        return line;
                    }
                }
                Err(_) => panic!(
                    "no {what} within {DEADLINE:?}; saw:\n{}",
                    self.seen.join("\n")
                ),
            }
        }
    }

    pub fn address(&mut self) -> String {
        self.expect("ready", |j| j["event"] == "ready")["address"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    pub fn wait_exit(&mut self) -> i32 {
        let until = Instant::now() + DEADLINE;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code().unwrap_or(-1);
            }
            assert!(Instant::now() < until, "process did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn event(j: &Json, name: &str) -> bool {
    j["event"] == name
}

/// A socket that sends to the group the way a host-local entity does:
/// from the loopback, with TTL 0.
pub fn loopback_sender() -> UdpSocket {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.set_multicast_ttl_v4(0).unwrap();
    socket2::SockRef::from(&socket)
        .set_multicast_if_v4(&Ipv4Addr::LOCALHOST)
        .unwrap();
    socket
}

/// Sends a datagram to the group.
pub fn inject(bus: &Bus, datagram: &[u8]) {
    loopback_sender()
        .send_to(datagram, bus.config.group_addr())
        .unwrap();
}

/// Two join processes that have heard from each other, and their addresses.
pub fn pair(bus: &Bus, first: &str, second: &str) -> (Proc, Proc, String, String) {
    let mut a = Proc::join(bus, first);
    let mut b = Proc::join(bus, second);
    let (a_addr, b_addr) = (a.address(), b.address());
    a.expect("joined second", |j| {
        event(j, "joined") && j["address"] == b_addr.as_str()
    });
    b.expect("joined first", |j| {
        event(j, "joined") && j["address"] == a_addr.as_str()
    });
    (a, b, a_addr, b_addr)
}
