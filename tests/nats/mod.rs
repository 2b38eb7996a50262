//! A real NATS cluster for the bridge's tests: `nats-server` processes on
//! 127.0.0.1 (client, cluster and monitoring ports each the test's own),
//! routed to each other, that a test can kill (`SIGKILL`), stop and start
//! again on the same ports.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a server may take to come up and route.
const READY: Duration = Duration::from_secs(30);

/// The `nats-server` to run, if this machine has one (`.ci/run` installs
/// the Debian package); a test without it says so and does nothing.
pub fn server() -> Option<PathBuf> {
    let path = std::env::var_os("RMBUS_NATS_SERVER")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("nats-server"));
    let ok = Command::new(&path)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        eprintln!(
            "SKIPPED: no nats-server on this machine (apt-get install nats-server, as .ci/run does)"
        );
    }
    ok.then_some(path)
}

/// A port nothing listens on, below Linux's ephemeral range (32768 up):
/// a port the kernel hands out for `bind(0)` is one the outgoing
/// connections of the servers (routes, clients) may take before a server
/// listens on it.
fn free_port() -> u16 {
    loop {
        let port = 20_000 + rand::random::<u16>() % 12_000;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// One server of the cluster.
pub struct Node {
    pub port: u16,
    pub cluster_port: u16,
    pub monitor_port: u16,
    config: PathBuf,
    child: Option<Child>,
}

impl Node {
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }
}

/// A cluster of servers on loopback.
pub struct Cluster {
    server: PathBuf,
    pub nodes: Vec<Node>,
    _dir: tempfile::TempDir,
}

impl Cluster {
    /// `n` servers routed to each other, with `authorization` (a NATS
    /// configuration block, or empty) on each; `None` without nats-server.
    /// A server that cannot listen (a port taken meanwhile) makes the
    /// cluster start again on other ports.
    pub fn start(n: usize, authorization: &str) -> Option<Cluster> {
        let server = server()?;
        for _ in 0..5 {
            let mut cluster = Cluster::configure(server.clone(), n, authorization);
            for i in 0..n {
                cluster.spawn(i);
            }
            if (0..n).all(|i| cluster.ready(i)) {
                cluster.wait_routes();
                return Some(cluster);
            }
            // Dropping it kills what did start.
        }
        panic!("the nats cluster never started (five tries on fresh ports)");
    }

    fn configure(server: PathBuf, n: usize, authorization: &str) -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let ports: Vec<(u16, u16, u16)> = (0..n)
            .map(|_| (free_port(), free_port(), free_port()))
            .collect();
        let routes: Vec<String> = ports
            .iter()
            .map(|(_, c, _)| format!("\"nats://127.0.0.1:{c}\""))
            .collect();
        let nodes = ports
            .iter()
            .enumerate()
            .map(|(i, (port, cluster_port, monitor_port))| {
                let config = dir.path().join(format!("node{i}.conf"));
                let text = format!(
                    "server_name: n{i}\nlisten: \"127.0.0.1:{port}\"\nhttp: \"127.0.0.1:{monitor_port}\"\n\
                     cluster {{\n  name: rmbus\n  listen: \"127.0.0.1:{cluster_port}\"\n  routes: [{}]\n}}\n{authorization}\n",
                    routes.join(", ")
                );
                std::fs::write(&config, text).unwrap();
                Node {
                    port: *port,
                    cluster_port: *cluster_port,
                    monitor_port: *monitor_port,
                    config,
                    child: None,
                }
            })
            .collect();
        Cluster {
            server,
            nodes,
            _dir: dir,
        }
    }

    fn spawn(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        let child = Command::new(&self.server)
            .arg("-c")
            .arg(&node.config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server starts");
        node.child = Some(child);
    }

    /// Waits until server `i` takes connections: false if it exited (it
    /// could not listen) or never did.
    fn ready(&mut self, i: usize) -> bool {
        let until = Instant::now() + READY;
        let port = self.nodes[i].port;
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            let exited = self.nodes[i]
                .child
                .as_mut()
                .is_none_or(|c| c.try_wait().ok().flatten().is_some());
            if exited || Instant::now() > until {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        true
    }

    /// Waits until server `i` takes connections (started again on its own
    /// ports, which it tries a few times to get back).
    pub fn wait_ready(&mut self, i: usize) {
        for _ in 0..5 {
            if self.ready(i) {
                return;
            }
            self.kill(i);
            std::thread::sleep(Duration::from_millis(200));
            self.spawn(i);
        }
        panic!("nats server {i} never came up on its ports");
    }

    /// The number of routes server `i` has, from its monitoring port.
    pub fn routes(&self, i: usize) -> Option<u64> {
        let mut s = TcpStream::connect(("127.0.0.1", self.nodes[i].monitor_port)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        s.write_all(b"GET /routez HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
            .ok()?;
        let mut body = String::new();
        s.read_to_string(&mut body).ok()?;
        let json = &body[body.find('{')?..];
        let v: serde_json::Value = serde_json::from_str(json).ok()?;
        v["num_routes"].as_u64()
    }

    /// Waits until every running server routes to every other running one.
    pub fn wait_routes(&self) {
        let running: Vec<usize> = (0..self.nodes.len())
            .filter(|i| self.nodes[*i].child.is_some())
            .collect();
        let want = (running.len() as u64).saturating_sub(1);
        let until = Instant::now() + READY;
        while !running.iter().all(|i| self.routes(*i) == Some(want)) {
            assert!(Instant::now() < until, "the nats cluster never routed");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Kills server `i` (`SIGKILL`).
    pub fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.nodes[i].child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts server `i` again on its ports, and waits for its routes.
    pub fn restart(&mut self, i: usize) {
        self.spawn(i);
        self.wait_ready(i);
        self.wait_routes();
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for i in 0..self.nodes.len() {
            self.kill(i);
        }
    }
}
