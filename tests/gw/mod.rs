//! Running `rmbus gateway` for the tests: a process on a free loopback
//! port of its own (`--listen 127.0.0.1:0`), its stderr lines collected.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::Instant;

use super::procs::{rmbus, Bus, DEADLINE};

pub struct Gateway {
    pub child: Child,
    pub base: String,
    pub stderr: Receiver<String>,
    pub seen: Vec<String>,
}

impl Gateway {
    pub fn start(bus: &Bus, state: &Path, extra: &[&str]) -> Gateway {
        let mut cmd = rmbus(bus);
        cmd.args(["gateway", "--listen", "127.0.0.1:0", "--state"])
            .arg(state)
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        let err = child.stderr.take().unwrap();
        let (tx, stderr) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut g = Gateway {
            child,
            base: String::new(),
            stderr,
            seen: Vec::new(),
        };
        let line = g.expect("listening on ");
        g.base = line.rsplit(' ').next().unwrap().to_owned();
        g
    }

    /// The first stderr line containing `what` (seen before or within the deadline).
    pub fn expect(&mut self, what: &str) -> String {
        if let Some(l) = self.seen.iter().find(|l| l.contains(what)) {
            return l.clone();
        }
        let until = Instant::now() + DEADLINE;
        loop {
            let left = until.saturating_duration_since(Instant::now());
            match self.stderr.recv_timeout(left) {
                Ok(l) => {
                    self.seen.push(l.clone());
                    if l.contains(what) {
                        return l;
                    }
                }
                Err(_) => panic!(
                    "no {what:?} from the gateway; saw:\n{}",
                    self.seen.join("\n")
                ),
            }
        }
    }

    pub fn kill9(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
