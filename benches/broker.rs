//! CMBS beside the broker its users would otherwise pick: mosquitto 2.0 on
//! loopback with 10 QoS 1 subscribers, against an L3.2 message to 10
//! members hosted in one process (`runtime::spawn_members`, a host-local
//! bus on a free port), interleaved in one run, each figure the median of
//! the rounds:
//! - rate, 8 messages in flight: messages a second, a message counting when
//!   every one of the 10 has it (MQTT: the last subscriber received it;
//!   CMBS: its report is complete, every member `DELIVERED`, which is the
//!   members' own answer). Target ≥ 0.5× mosquitto's.
//! - latency, 1 in flight: p50 from publish to that point. Target ≤ 2×.
//! - CPU per message: this process plus mosquitto's, for each side.
//!
//! Install mosquitto with `apt-get install -y mosquitto` (Debian's 2.0); the
//! bench runs `mosquitto -c FILE` itself on 127.0.0.1 and a free port, and
//! says it skipped when there is none. Run: `cargo bench --bench broker`
//! (`RMBUS_BENCH_ROUNDS`, default 5).

mod support;

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver, Sender};
use std::time::{Duration, Instant};

use rmbus::cmbs::{Content, Description, Layer, LayerSet, Message, Publish};
use rmbus::runtime::{spawn_members, MembersHandle, MembersOptions};
use rumqttc::{Client, Event, MqttOptions, Packet, QoS};

const SUBSCRIBERS: usize = 10;
const RATE_MESSAGES: u64 = 2_000;
const LATENCY_MESSAGES: u64 = 300;
const DEADLINE: Duration = Duration::from_secs(60);

fn mosquitto_binary() -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    dirs.push("/usr/sbin".into());
    dirs.into_iter()
        .map(|d| d.join("mosquitto"))
        .find(|p| p.is_file())
}

/// mosquitto on 127.0.0.1 and a free port, killed when dropped.
struct Mosquitto {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Mosquitto {
    fn start(binary: &PathBuf) -> Mosquitto {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let dir = tempfile::tempdir().expect("a temporary directory");
        let conf = dir.path().join("mosquitto.conf");
        std::fs::write(
            &conf,
            format!(
                "listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\nlog_dest none\n"
            ),
        )
        .expect("the configuration is written");
        let child = Command::new(binary)
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("mosquitto starts");
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let until = Instant::now() + DEADLINE;
        while TcpStream::connect(addr).is_err() {
            assert!(Instant::now() < until, "mosquitto never listened on {addr}");
            std::thread::sleep(Duration::from_millis(20));
        }
        Mosquitto {
            child,
            port,
            _dir: dir,
        }
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The MQTT side: 10 subscribers on `bench/t` and a publisher, each with
/// its connection driven by a thread; completed sequence numbers come out
/// of `done` once all 10 subscribers have them.
struct Mqtt {
    publisher: Client,
    done: Receiver<u64>,
}

fn mqtt_client(port: u16, name: &str) -> (Client, rumqttc::Connection) {
    let mut o = MqttOptions::new(name, "127.0.0.1", port);
    o.set_keep_alive(Duration::from_secs(30));
    o.set_inflight(64);
    Client::new(o, 64)
}

impl Mqtt {
    fn start(port: u16) -> Mqtt {
        let (got_tx, got_rx) = mpsc::channel::<u64>();
        let (ready_tx, ready_rx) = mpsc::channel::<()>();
        for i in 0..SUBSCRIBERS {
            let (client, mut connection) = mqtt_client(port, &format!("sub-{i}"));
            client
                .subscribe("bench/t", QoS::AtLeastOnce)
                .expect("the subscription is queued");
            let (got, ready) = (got_tx.clone(), ready_tx.clone());
            std::thread::spawn(move || {
                let _keep = client;
                for event in connection.iter() {
                    match event {
                        Ok(Event::Incoming(Packet::SubAck(_))) => {
                            let _ = ready.send(());
                        }
                        Ok(Event::Incoming(Packet::Publish(p))) => {
                            let seq = p.payload.get(..8).and_then(|b| b.try_into().ok());
                            if let Some(b) = seq {
                                if got.send(u64::from_le_bytes(b)).is_err() {
                                    return;
                                }
                            }
                        }
                        Ok(_) => {}
                        Err(_) => return,
                    }
                }
            });
        }
        for _ in 0..SUBSCRIBERS {
            ready_rx
                .recv_timeout(DEADLINE)
                .expect("every subscriber subscribed");
        }
        let (publisher, mut connection) = mqtt_client(port, "pub");
        std::thread::spawn(move || for _ in connection.iter() {});
        // A message is done when all 10 have it.
        let (done_tx, done) = mpsc::channel();
        std::thread::spawn(move || {
            let mut counts = std::collections::HashMap::<u64, usize>::new();
            for seq in got_rx {
                let n = counts.entry(seq).or_default();
                *n += 1;
                if *n == SUBSCRIBERS {
                    counts.remove(&seq);
                    if done_tx.send(seq).is_err() {
                        return;
                    }
                }
            }
        });
        Mqtt { publisher, done }
    }

    fn send(&self, seq: u64) {
        self.publisher
            .publish(
                "bench/t",
                QoS::AtLeastOnce,
                false,
                seq.to_le_bytes().to_vec(),
            )
            .expect("the publish is queued");
    }
}

/// The CMBS side: 10 members with topic `bench.t` hosted in one process,
/// and the plain sender beside them; a message is done when its report is
/// complete with all 10 delivered.
struct Cmbs {
    members: MembersHandle,
    done_tx: Sender<u64>,
    done: Receiver<u64>,
}

impl Cmbs {
    fn start() -> Cmbs {
        let config = support::config();
        let members =
            spawn_members(&config, MembersOptions::default(), |_| {}).expect("the members start");
        for i in 0..SUBSCRIBERS {
            let mut d = Description::new(&format!("member-{i}"));
            d.started = LayerSet::ALL;
            d.topics = vec!["bench.t".into()];
            members.host(d).expect("the member is hosted");
        }
        let learned = members
            .learn(Instant::now() + DEADLINE, |d| {
                d.directory().len() == SUBSCRIBERS
            })
            .expect("the directory");
        assert!(learned.reached, "the directory never held the members");
        let (done_tx, done) = mpsc::channel();
        Cmbs {
            members,
            done_tx,
            done,
        }
    }

    fn send(&self, seq: u64) {
        let mut m = Message::new("", Layer::L32, Content::Data(seq.to_le_bytes().to_vec()));
        m.topics = vec!["bench.t".into()];
        let tx = self.done_tx.clone();
        self.members.publish_then(None, Publish::new(m), move |r| {
            let report = r.expect("a report");
            let delivered = report.lines.iter().filter(|l| l.is_delivered()).count();
            assert_eq!(delivered, SUBSCRIBERS, "an incomplete report: {report:?}");
            let _ = tx.send(seq);
        });
    }
}

/// Sends `n` messages keeping `window` in flight; the time from each send
/// to its completion, and the whole time.
fn windowed(
    n: u64,
    window: u64,
    first: u64,
    send: &dyn Fn(u64),
    done: &Receiver<u64>,
) -> (Duration, Vec<Duration>) {
    let start = Instant::now();
    let mut sent_at = std::collections::HashMap::new();
    let mut latencies = Vec::with_capacity(n as usize);
    let mut next = first;
    let end = first + n;
    while next < end && next - first < window {
        sent_at.insert(next, Instant::now());
        send(next);
        next += 1;
    }
    while latencies.len() < n as usize {
        let seq = done.recv_timeout(DEADLINE).expect("a message completes");
        if let Some(at) = sent_at.remove(&seq) {
            latencies.push(at.elapsed());
        }
        if next < end {
            sent_at.insert(next, Instant::now());
            send(next);
            next += 1;
        }
    }
    latencies.sort();
    (start.elapsed(), latencies)
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("broker benchmark: run with `cargo bench --bench broker`");
        return;
    }
    let Some(binary) = mosquitto_binary() else {
        println!("broker: skipped: mosquitto is not installed (apt-get install -y mosquitto)");
        return;
    };
    let rounds: usize = std::env::var("RMBUS_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let broker = Mosquitto::start(&binary);
    let mqtt = Mqtt::start(broker.port);
    let cmbs = Cmbs::start();
    let me = std::process::id();
    let broker_pid = broker.child.id();
    let mut seq = 0u64;
    let (mut rate_ratio, mut p50_ratio, mut cpu_ratio) = (vec![], vec![], vec![]);
    let (mut mqtt_rates, mut cmbs_rates, mut mqtt_p50s, mut cmbs_p50s) =
        (vec![], vec![], vec![], vec![]);
    // One warm-up of each, then the rounds, the order alternating.
    let mqtt_send = |s| mqtt.send(s);
    let cmbs_send = |s| cmbs.send(s);
    windowed(200, 8, seq, &mqtt_send, &mqtt.done);
    seq += 200;
    windowed(200, 8, seq, &cmbs_send, &cmbs.done);
    seq += 200;
    for round in 0..rounds {
        let mut measure = |which: &str| {
            let (send, done): (&dyn Fn(u64), &Receiver<u64>) = if which == "mqtt" {
                (&mqtt_send, &mqtt.done)
            } else {
                (&cmbs_send, &cmbs.done)
            };
            let cpu = support::cpu_secs(me) + support::cpu_secs(broker_pid);
            let (took, _) = windowed(RATE_MESSAGES, 8, seq, send, done);
            seq += RATE_MESSAGES;
            let cpu = support::cpu_secs(me) + support::cpu_secs(broker_pid) - cpu;
            let (_, lat) = windowed(LATENCY_MESSAGES, 1, seq, send, done);
            seq += LATENCY_MESSAGES;
            (
                RATE_MESSAGES as f64 / took.as_secs_f64(),
                support::us(support::percentile(&lat, 0.5)),
                cpu / RATE_MESSAGES as f64,
            )
        };
        let (m, c) = if round % 2 == 0 {
            let m = measure("mqtt");
            (m, measure("cmbs"))
        } else {
            let c = measure("cmbs");
            (measure("mqtt"), c)
        };
        println!(
            "round {round}: mosquitto {:.0} msg/s, p50 {:.0} µs, {:.1} µs CPU/msg; \
             CMBS {:.0} msg/s, p50 {:.0} µs, {:.1} µs CPU/msg",
            m.0,
            m.1,
            m.2 * 1e6,
            c.0,
            c.1,
            c.2 * 1e6
        );
        mqtt_rates.push(m.0);
        cmbs_rates.push(c.0);
        mqtt_p50s.push(m.1);
        cmbs_p50s.push(c.1);
        rate_ratio.push(c.0 / m.0);
        p50_ratio.push(c.1 / m.1);
        cpu_ratio.push(c.2 / m.2);
    }
    println!(
        "broker: mosquitto {:.0} msg/s p50 {:.0} µs; CMBS L3.2 {:.0} msg/s p50 {:.0} µs (medians of {rounds} rounds)",
        support::median(mqtt_rates),
        support::median(mqtt_p50s),
        support::median(cmbs_rates),
        support::median(cmbs_p50s)
    );
    println!(
        "broker: rate {:.2}x mosquitto's (target >= 0.5), p50 {:.2}x (target <= 2), CPU per message {:.2}x",
        support::median(rate_ratio),
        support::median(p50_ratio),
        support::median(cpu_ratio)
    );
    cmbs.members.stop();
    let _ = cmbs.members.wait();
}
