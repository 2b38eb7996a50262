//! CMBS across sites through two bridges and a real NATS cluster (two
//! `nats-server` processes on loopback), each figure a ratio against a
//! baseline measured in the same run, the median of interleaved rounds:
//!
//! (g) an L3.2 message to 10 members of a remote site, through the bridge
//!     of each site (on different NATS servers), 8 messages in flight, until
//!     each report is complete with 10 lines delivered: messages/s against
//!     raw NATS request/reply through the same servers (per message 10
//!     concurrent requests, one to each of 10 responders, each a connection
//!     of its own on the far server; 8 messages in flight) (target ≥ 0.50);
//! (h) the p50 of one such message's complete report, one at a time,
//!     against one raw round of 10 requests (target ≤ 3×);
//! (i) a bridge's memory per remote member in its directory (target ≤ 4
//!     KiB): what its heap holds per member once it has learnt 5,000
//!     members of another site (the bridge's core, fed the site's directory
//!     as NATS brings it, its announces on the bus sent; counted by an
//!     allocator that counts), and the resident memory of an `rmbus bridge`
//!     process as it learns 2,500 and then 5,000 members one update at a
//!     time (what the operating system sees: the heap, and what the
//!     allocator keeps of the messages that brought them).
//!
//! Run: `cargo bench --bench bridge` (needs `nats-server`;
//! `RMBUS_BENCH_ROUNDS`, default 3; `RMBUS_BENCH_ONLY=g` (g and h) or `i`;
//! `RMBUS_BENCH_PROFILE=1` runs the bridge path of (g) alone for 10 s, for
//! a profiler).

mod support;

#[path = "../tests/nats/mod.rs"]
mod nats;

use std::io::BufRead;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use rmbus::bridge::{spawn_bridge, BridgeHandle, BridgeOptions};
use rmbus::cmbs::crossing::{paginate, Crossing, Heartbeat, Known, SyncPage};
use rmbus::cmbs::{
    Bridge, BridgeConfig, Content, Description, Layer, LayerSet, Member, Message, NatsInput,
    NatsOutput, Outcome, Publish,
};
use rmbus::config::Config;
use rmbus::proto::{Endpoint, EndpointConfig};
use rmbus::runtime::{spawn_members, MembersHandle, MembersOptions};
use stats_alloc::{Region, StatsAlloc, INSTRUMENTED_SYSTEM};
use support::{config, median, rss_kib};

#[global_allocator]
static GLOBAL: &StatsAlloc<std::alloc::System> = &INSTRUMENTED_SYSTEM;

const STALLED: Duration = Duration::from_secs(120);
const ROUND: Duration = Duration::from_millis(1500);
const IN_FLIGHT: usize = 8;
const FAN_OUT: usize = 10;

fn rounds() -> usize {
    std::env::var("RMBUS_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3)
}

fn only(part: &str) -> bool {
    std::env::var("RMBUS_BENCH_ONLY").map_or(true, |v| v == part)
}

fn site(config: &Config, members: usize, topic: &str, prefix: &str) -> MembersHandle {
    let handle = spawn_members(config, MembersOptions::default(), |_| {}).unwrap();
    for i in 0..members {
        let mut d = Description::new(&format!("{prefix}{i}"));
        d.started = LayerSet::ALL;
        d.topics = vec![topic.to_owned()];
        handle.host(d).unwrap();
    }
    handle
}

fn bridge(config: &Config, site: &str, url: &str) -> BridgeHandle {
    let options = BridgeOptions::new(site, vec![url.to_owned()]);
    spawn_bridge(config, options, |_| {}).unwrap()
}

fn wait_directory(h: &MembersHandle, n: usize) {
    let until = Instant::now() + STALLED;
    while h.directory().len() < n {
        assert!(Instant::now() < until, "the directory never held {n}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn l32() -> Message {
    let mut m = Message::new("", Layer::L32, Content::Json(serde_json::json!({"t": 1})));
    m.topics = vec!["bench.tick".into()];
    m
}

/// Messages/s through the bridges, `IN_FLIGHT` at a time, for a round.
fn bridge_rate(sender: &MembersHandle) -> f64 {
    let (tx, rx) = mpsc::channel();
    let start = Instant::now();
    let (mut out, mut done, mut failed) = (0, 0usize, 0usize);
    loop {
        while out < IN_FLIGHT && start.elapsed() < ROUND {
            let tx = tx.clone();
            sender.publish_then(None, Publish::new(l32()), move |r| {
                let _ = tx.send(r);
            });
            out += 1;
        }
        if out == 0 {
            break;
        }
        let r = rx.recv_timeout(STALLED).expect("a report").unwrap();
        out -= 1;
        let complete = r.outcome == Outcome::Delivered && r.lines.len() == FAN_OUT;
        if complete {
            done += 1;
        } else {
            failed += 1;
        }
    }
    if failed > 0 {
        eprintln!("  ({failed} reports not complete)");
    }
    done as f64 / start.elapsed().as_secs_f64()
}

/// The same rate with the 10 members on the sender's own bus (no bridge,
/// no NATS): what the far bus's part of a crossing costs at least.
fn local_rate(local: &MembersHandle) -> f64 {
    bridge_rate(local)
}

/// The p50 of one message's report, one at a time, for a round.
fn bridge_p50(sender: &MembersHandle) -> Duration {
    let start = Instant::now();
    let mut times = Vec::new();
    while start.elapsed() < ROUND || times.len() < 5 {
        let t = Instant::now();
        let r = sender.publish(l32()).unwrap();
        assert_eq!(r.lines.len(), FAN_OUT, "{r:?}");
        times.push(t.elapsed());
    }
    times.sort();
    times[times.len() / 2]
}

/// The raw baseline: a requester on one server, `FAN_OUT` responders on
/// the other, each its own connection.
struct Raw {
    rt: tokio::runtime::Runtime,
    requester: async_nats::Client,
    _responders: Vec<async_nats::Client>,
}

impl Raw {
    fn new(near: &str, far: &str) -> Raw {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let (requester, responders) = rt.block_on(async {
            let mut responders = Vec::new();
            for i in 0..FAN_OUT {
                let c = async_nats::connect(far).await.unwrap();
                let mut sub = c.subscribe(format!("raw.r.{i}")).await.unwrap();
                let replier = c.clone();
                tokio::spawn(async move {
                    while let Some(m) = sub.next().await {
                        if let Some(reply) = m.reply {
                            let _ = replier.publish(reply, m.payload).await;
                        }
                    }
                });
                c.flush().await.unwrap();
                responders.push(c);
            }
            let requester = async_nats::connect(near).await.unwrap();
            // The interest reaches the other server asynchronously.
            let until = Instant::now() + STALLED;
            loop {
                let tries =
                    (0..FAN_OUT).map(|i| requester.request(format!("raw.r.{i}"), "x".into()));
                let ok = futures_util::future::join_all(tries)
                    .await
                    .iter()
                    .all(Result::is_ok);
                if ok {
                    break;
                }
                assert!(Instant::now() < until, "the responders never answered");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            (requester, responders)
        });
        Raw {
            rt,
            requester,
            _responders: responders,
        }
    }

    /// One round: `FAN_OUT` requests at once, all answered.
    async fn round(requester: async_nats::Client) {
        let payload = bytes_of(&l32());
        let tries =
            (0..FAN_OUT).map(|i| requester.request(format!("raw.r.{i}"), payload.clone().into()));
        for r in futures_util::future::join_all(tries).await {
            r.expect("an answer");
        }
    }

    fn rate(&self) -> f64 {
        let requester = self.requester.clone();
        self.rt.block_on(async move {
            let start = Instant::now();
            let mut tasks = Vec::new();
            for _ in 0..IN_FLIGHT {
                let c = requester.clone();
                tasks.push(tokio::spawn(async move {
                    let mut n = 0u64;
                    while start.elapsed() < ROUND {
                        Raw::round(c.clone()).await;
                        n += 1;
                    }
                    n
                }));
            }
            let mut n = 0;
            for t in tasks {
                n += t.await.unwrap();
            }
            n as f64 / start.elapsed().as_secs_f64()
        })
    }

    fn p50(&self) -> Duration {
        let requester = self.requester.clone();
        self.rt.block_on(async move {
            let start = Instant::now();
            let mut times = Vec::new();
            while start.elapsed() < ROUND || times.len() < 5 {
                let t = Instant::now();
                Raw::round(requester.clone()).await;
                times.push(t.elapsed());
            }
            times.sort();
            times[times.len() / 2]
        })
    }
}

/// About what a relayed delivery carries: the message's map as text.
fn bytes_of(m: &Message) -> Vec<u8> {
    m.to_value().to_string().into_bytes()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn throughput_and_latency(cluster: &nats::Cluster) {
    let (near_config, far_config) = (config(), config());
    let far = site(&far_config, FAN_OUT, "bench.#", "far-");
    let near = site(&near_config, 0, "none", "near-");
    let _near_bridge = bridge(&near_config, "near", &cluster.nodes[0].url());
    let _far_bridge = bridge(&far_config, "far", &cluster.nodes[1].url());
    wait_directory(&near, FAN_OUT);
    if std::env::var("RMBUS_BENCH_PROFILE").is_ok() {
        // For a profiler: the bridge path alone, for a while.
        let until = Instant::now() + Duration::from_secs(10);
        while Instant::now() < until {
            println!("bridge {:.0} msg/s", bridge_rate(&near));
        }
        return;
    }
    let raw = Raw::new(&cluster.nodes[0].url(), &cluster.nodes[1].url());
    let local_config = config();
    let local = site(&local_config, FAN_OUT, "bench.#", "local-");
    wait_directory(&local, FAN_OUT);
    // Warm every path.
    bridge_rate(&near);
    raw.rate();
    local_rate(&local);
    let (mut rates, mut p50s, mut locals) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..rounds() {
        let raw_rate = raw.rate();
        let rate = bridge_rate(&near);
        let local_r = local_rate(&local);
        locals.push(local_r / raw_rate);
        let raw_p50 = raw.p50();
        let p50 = bridge_p50(&near);
        println!(
            "round {round}: bridge {rate:.0} msg/s, raw {raw_rate:.0} rounds/s ({:.2}), one bus {local_r:.0} msg/s; p50 {:.2} ms, raw {:.2} ms ({:.2}x)",
            rate / raw_rate,
            ms(p50),
            ms(raw_p50),
            ms(p50) / ms(raw_p50)
        );
        rates.push(rate / raw_rate);
        p50s.push(ms(p50) / ms(raw_p50));
    }
    println!(
        "(g) L3.2 to {FAN_OUT} remote members, {IN_FLIGHT} in flight, against raw NATS request/reply: {:.2} (target >= 0.50)",
        median(rates)
    );
    println!(
        "    reference: the same message to {FAN_OUT} members on the sender's own bus (no bridge, no NATS), against the same raw rounds: {:.2}",
        median(locals)
    );
    println!(
        "(h) p50 of one report against one raw round of {FAN_OUT} requests: {:.2}x (target <= 3)",
        median(p50s)
    );
    drop(far);
}

/// Starts `rmbus bridge --json` for `site` as a process; its stdout lines.
fn bridge_process(
    config: &Config,
    dir: &std::path::Path,
    site: &str,
    url: &str,
) -> (std::process::Child, mpsc::Receiver<String>) {
    let path = dir.join(format!("{site}.mbus"));
    rmbus::config::file::write_new(&path, config, false).unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_rmbus"))
        .args([
            "bridge", "--json", "--site", site, "--nats", url, "--config",
        ])
        .arg(&path)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let out = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    (child, rx)
}

fn memory(cluster: &nats::Cluster) {
    const N: usize = 5_000;
    let dir = tempfile::tempdir().unwrap();
    let (many_config, far_config) = (config(), config());
    let many = spawn_members(&many_config, MembersOptions::default(), |_| {}).unwrap();
    let _many_bridge = bridge(&many_config, "many", &cluster.nodes[0].url());
    // Whoever is on the far bus: a plain sender that learns the directory.
    let watcher = spawn_members(&far_config, MembersOptions::default(), |_| {}).unwrap();
    let (mut child, lines) =
        bridge_process(&far_config, dir.path(), "far", &cluster.nodes[1].url());
    let until = Instant::now() + STALLED;
    loop {
        let line = lines
            .recv_timeout(STALLED)
            .expect("the bridge prints its events");
        if line.contains("\"site_joined\"") && line.contains("\"many\"") {
            break;
        }
        assert!(Instant::now() < until);
    }
    std::thread::sleep(Duration::from_secs(1));
    let none = rss_kib(child.id());
    let mut rss = Vec::new();
    for half in 0..2 {
        for i in half * N / 2..(half + 1) * N / 2 {
            let mut d = Description::new(&format!("member-{i:05}-0000-4000-8000-000000000000"));
            d.started = LayerSet::ALL;
            d.topics = vec![format!("sensors.{i}.temp")];
            d.providers = vec!["weather".into()];
            many.host(d).unwrap();
        }
        wait_directory(&watcher, (half + 1) * N / 2);
        // Let the bridge settle (its announces of them on its bus go out).
        std::thread::sleep(Duration::from_secs(2));
        rss.push(rss_kib(child.id()));
    }
    let slope = (rss[1] - rss[0]) / (N / 2) as f64;
    let overall = (rss[1] - none) / N as f64;
    println!(
        "(i) an rmbus bridge process's resident memory per remote member: {slope:.2} KiB from {} to {N} known ({none:.0}, {:.0}, {:.0} KiB knowing none, {}, {N}; {overall:.2} KiB per member over all, with what the first learning left) (target <= 4)",
        N / 2, rss[0], rss[1], N / 2
    );
    let _ = child.kill();
    let _ = child.wait();
}

/// Remote member `i` as its site publishes it.
fn known(i: usize) -> Known {
    let id = format!("member-{i:05}-0000-4000-8000-000000000000");
    let mut d = Description::new(&id);
    d.started = LayerSet::ALL;
    d.topics = vec![format!("sensors.{i}.temp")];
    d.providers = vec!["weather".into()];
    let mut address = Member::address(&id).unwrap();
    address
        .push("id", &format!("{}-1@10.1.2.3", 4000 + i))
        .unwrap();
    Known {
        description: d,
        address,
    }
}

/// The live heap of a bridge's core per remote member it knows: 5,000 of
/// them, learnt from another site's directory pages, announced on its bus.
fn directory_heap() {
    const N: usize = 5_000;
    let t0 = Instant::now();
    let wall = std::time::SystemTime::now();
    let cfg = EndpointConfig::from_config(&config(), 1).unwrap();
    let mut me = Bridge::address("far").unwrap();
    me.push("id", "1-1@127.0.0.1").unwrap();
    let mut ep = Endpoint::new(cfg, me, t0, wall).unwrap();
    let mut b = Bridge::new(BridgeConfig::new("far"), 2, 1);
    b.start(&mut ep, t0);
    b.handle_nats(&mut ep, t0, NatsInput::Connection(true));
    let mut now = t0 + Duration::from_secs(2);
    let drain = |b: &mut Bridge, ep: &mut Endpoint, now: Instant| {
        let mut asked = Vec::new();
        while let Some(out) = b.poll_nats() {
            if let NatsOutput::Request { token, payload, .. } = out {
                asked.push((token, payload));
            }
        }
        while ep.poll_transmit(now).is_some() {}
        while ep.poll_event().is_some() {}
        asked
    };
    b.handle_timeout(&mut ep, now);
    drain(&mut b, &mut ep, now);
    assert!(b.is_active());
    let members: Vec<Known> = (0..N).map(known).collect();
    let chunks = paginate(members);
    let pages: Vec<Vec<u8>> = chunks
        .iter()
        .enumerate()
        .map(|(p, c)| {
            Crossing::SyncPage(SyncPage {
                site: "many".into(),
                epoch: 1,
                version: 1,
                page: p as u64,
                pages: chunks.len() as u64,
                members: c.clone(),
            })
            .to_bytes()
        })
        .collect();
    drop(chunks);
    let region = Region::new(GLOBAL);
    let heartbeat = Crossing::Heartbeat(Heartbeat {
        site: "many".into(),
        epoch: 1,
        version: 1,
        members: N as u64,
    });
    let beat = |b: &mut Bridge, ep: &mut Endpoint, now: Instant| {
        let payload = heartbeat.to_bytes();
        let subject = "cmbs.dir.many".into();
        let reply = None;
        b.handle_nats(
            ep,
            now,
            NatsInput::Message {
                subject,
                payload,
                reply,
            },
        );
    };
    beat(&mut b, &mut ep, now);
    let mut asked = drain(&mut b, &mut ep, now);
    while !asked.is_empty() {
        for (token, payload) in std::mem::take(&mut asked) {
            let Ok(Crossing::SyncAsk { page, .. }) = Crossing::parse(&payload) else {
                panic!("a sync request");
            };
            let result = Ok(pages[page as usize].clone());
            b.handle_nats(&mut ep, now, NatsInput::Answered { token, result });
            asked.extend(drain(&mut b, &mut ep, now));
        }
    }
    assert_eq!(b.remote_members(), N, "{:?}", b.stats());
    // The announces sent again with the next heartbeats are sent, and
    // their bookkeeping gone.
    for _ in 0..5 {
        now += Duration::from_secs(1);
        beat(&mut b, &mut ep, now);
        b.handle_timeout(&mut ep, now);
        drain(&mut b, &mut ep, now);
    }
    let c = region.change();
    let live = c.bytes_allocated as isize - c.bytes_deallocated as isize;
    println!(
        "(i) the bridge's heap per remote member in its directory: {:.2} KiB ({} bytes for {N}) (target <= 4)",
        live as f64 / N as f64 / 1024.0,
        live
    );
}

fn main() {
    if only("i") {
        // First, while no other thread of this process allocates.
        directory_heap();
    }
    let Some(cluster) = nats::Cluster::start(2, "") else {
        println!("bridge bench skipped: no nats-server");
        return;
    };
    if only("g") {
        throughput_and_latency(&cluster);
    }
    if only("i") {
        memory(&cluster);
    }
}
