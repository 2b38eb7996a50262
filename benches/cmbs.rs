//! CMBS on real sockets (host-local group), in one run, each figure a ratio
//! against a baseline measured in the same run, the median of interleaved
//! rounds:
//! (a) L3.2 fan-out to 10 members in one process (on a `cmbs::Site`, as
//!     `runtime::spawn_members` and the gateway run them): messages/s and report
//!     latency, against 10 plain unicast RPC calls to an echo handler on 10
//!     entities (targets: ≥ 80 % of their rate, report p99 ≤ 1.5× theirs);
//! (b) storable deliveries into SQLite with 1 and 64 in flight, against a
//!     bare rusqlite loop with the same pragmas (one commit per row at 1,
//!     one per 64 rows at 64; target ≥ 50 % of each);
//! (c) resident memory of a member whose directory holds 1,000 members,
//!     against the same process with an empty directory (target ≤ 4 KiB per
//!     entry).
//!
//! Run: `cargo bench --bench cmbs` (`RMBUS_BENCH_ROUNDS` sets the rounds,
//! default 5). Aids for profiling: `RMBUS_BENCH_ONLY=a|b|c` runs one part,
//! `RMBUS_BENCH_VERBOSE=1` prints each round's absolute figures,
//! `RMBUS_BENCH_SIDE=cmbs|plain` (with `RMBUS_BENCH_N`) runs one side of (a)
//! alone, one message at a time, and `RMBUS_BENCH_NOSTORE=1` makes (b)'s
//! deliveries not storable.

mod support;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use mio::{Events, Interest, Poll, Token, Waker};
use rmbus::cmbs::{Client, Content, Description, Event as CmbsEvent, Layer, LayerSet, Member};
use rmbus::cmbs::{MemberConfig, Message, Outcome, Participant, Publish, Site, SiteEvent};
use rmbus::proto::Event;
use rmbus::rpc::{Reply, RpcEvent};
use rmbus::runtime::{EntityId, Host};
use rmbus::store::{Retention, SqliteStore, Worker};
use rmbus::wire::{Address, Value};
use support::*;

const HOST: Token = Token(0);
const WAKE: Token = Token(1);

/// A host with CMBS members and one plain sender on a `Site` (what
/// `runtime::spawn_members` and the gateway run), driven in this thread,
/// with one store worker for all members.
struct Cmbs {
    host: Host,
    poll: Poll,
    events: Events,
    _waker: Arc<Waker>,
    site: Site,
    sender: EntityId,
    worker: Option<Worker>,
    steps: u64,
}

impl Cmbs {
    fn new(n: usize, store_dir: Option<&std::path::Path>) -> Cmbs {
        let mut host = Host::bind(&config()).unwrap();
        let poll = Poll::new().unwrap();
        poll.registry()
            .register(&mut host, HOST, Interest::READABLE)
            .unwrap();
        let waker = Arc::new(Waker::new(poll.registry(), WAKE).unwrap());
        let worker = store_dir.map(|dir| {
            let store = SqliteStore::open(&dir.join("members.sqlite")).unwrap();
            let w = Arc::clone(&waker);
            Worker::spawn(Box::new(store), Retention::default(), move || {
                let _ = w.wake();
            })
            .unwrap()
        });
        let mut site = Site::new(host.core_mut());
        let sender = host
            .add(&Address::parse("(app:cmbs module:publish)").unwrap())
            .unwrap();
        let client = Client::new(Default::default(), 99);
        site.add(
            host.core_mut(),
            sender,
            Participant::Sender(Box::new(client)),
        );
        for i in 0..n {
            let id = format!("bench-member-{i}");
            let mut d = Description::new(&id);
            d.topics = vec!["bench.#".into()];
            d.started = LayerSet::ALL;
            let config = MemberConfig {
                has_store: worker.is_some(),
                ..MemberConfig::default()
            };
            let m = Member::new(d, config, i as u64);
            let e = host
                .add_without_peer_events(&Member::address(&id).unwrap())
                .unwrap();
            site.add(host.core_mut(), e, Participant::Member(Box::new(m)));
            let now = Instant::now();
            site.with(host.core_mut(), now, e, |p, ep| {
                if let Participant::Member(m) = p {
                    m.start(ep, now);
                }
            });
        }
        let mut c = Cmbs {
            host,
            poll,
            events: Events::with_capacity(256),
            _waker: waker,
            site,
            sender,
            worker,
            steps: 0,
        };
        let until = Instant::now() + Duration::from_secs(30);
        while c.site.directory().directory().len() < n {
            assert!(Instant::now() < until, "the members did not announce");
            c.step();
        }
        c
    }

    /// One turn of the loop; the reports the sender got.
    fn step(&mut self) -> Vec<(String, Outcome)> {
        let next = self.site.poll_timeout();
        poll_host(&mut self.host, &mut self.poll, &mut self.events, next);
        let now = Instant::now();
        while let Some((id, e)) = self.host.poll_event() {
            let _ = self.site.handle_event(self.host.core_mut(), now, id, e);
        }
        while let Some(e) = self.host.poll_host_event() {
            self.site.handle_host_event(self.host.core_mut(), now, e);
        }
        let done = self
            .worker
            .as_ref()
            .map(Worker::completed)
            .unwrap_or_default();
        for d in done {
            self.site
                .store_done(self.host.core_mut(), now, &d.member, d.ticket, d.result);
        }
        if self.site.poll_timeout().is_some_and(|t| t <= now) {
            self.site.handle_timeout(self.host.core_mut(), now);
        }
        while let Some(b) = self.site.poll_store() {
            self.worker
                .as_ref()
                .expect("storable only with a store")
                .submit(b);
        }
        let mut reports = Vec::new();
        while let Some(e) = self.site.poll_event() {
            if let SiteEvent::Of(id, CmbsEvent::Report(r)) = e {
                if id == self.sender {
                    reports.push((r.message, r.outcome));
                }
            }
        }
        self.host.flush().unwrap();
        reports
    }

    fn publish(&mut self, m: Message) {
        let wall = SystemTime::now();
        let now = Instant::now();
        self.site
            .with(self.host.core_mut(), now, self.sender, |p, ep| match p {
                Participant::Sender(c) => c.publish(ep, now, wall, Publish::new(m)),
                Participant::Member(_) => unreachable!("the sender is a plain sender"),
            })
            .unwrap()
            .unwrap();
        self.host.flush().unwrap();
    }

    /// `total` messages, `window` at a time: each one's report latency
    /// (sorted) and the elapsed time.
    fn pipeline(
        &mut self,
        total: usize,
        window: usize,
        make: impl Fn(usize) -> Message,
    ) -> (Vec<Duration>, Duration) {
        let t0 = Instant::now();
        let mut started = HashMap::new();
        let (mut sent, mut done) = (0, 0);
        let mut lat = Vec::with_capacity(total);
        let send = |c: &mut Cmbs, started: &mut HashMap<String, Instant>, sent: &mut usize| {
            let m = Message {
                id: format!("m{}-{}", *sent, t0.elapsed().as_nanos()),
                ..make(*sent)
            };
            started.insert(m.id.clone(), Instant::now());
            c.publish(m);
            *sent += 1;
        };
        while sent < window.min(total) {
            send(self, &mut started, &mut sent);
        }
        let until = Instant::now() + Duration::from_secs(60);
        while done < total {
            assert!(Instant::now() < until, "the cmbs benchmark stalled");
            self.steps += 1;
            for (id, outcome) in self.step() {
                assert_eq!(outcome, Outcome::Delivered, "every message is delivered");
                lat.push(
                    started
                        .remove(&id)
                        .map(|t: Instant| t.elapsed())
                        .unwrap_or_default(),
                );
                done += 1;
                if sent < total {
                    send(self, &mut started, &mut sent);
                }
            }
        }
        lat.sort();
        (lat, t0.elapsed())
    }
}

/// The baseline of (a): 10 entities serving an echo, and a caller.
struct Plain {
    host: Host,
    poll: Poll,
    events: Events,
    caller: EntityId,
    callees: Vec<Address>,
    steps: u64,
}

impl Plain {
    fn new(n: usize) -> Plain {
        let mut host = Host::bind(&config()).unwrap();
        let mut poll = Poll::new().unwrap();
        poll.registry()
            .register(&mut host, HOST, Interest::READABLE)
            .unwrap();
        let mut ids = Vec::new();
        for i in 0..n {
            let e = host
                .add(&Address::parse(&format!("(app:bench module:echo n:{i})")).unwrap())
                .unwrap();
            host.entity(e)
                .unwrap()
                .serve("bench.echo", |req| Reply::ok(req.args.clone()).into());
            ids.push(e);
        }
        let caller = host
            .add(&Address::parse("(app:bench module:caller)").unwrap())
            .unwrap();
        host.entity(caller)
            .unwrap()
            .with_endpoint(|ep, now| ep.ping(now, &Address::empty()))
            .unwrap();
        let mut events = Events::with_capacity(256);
        let until = Instant::now() + Duration::from_secs(30);
        while host.endpoint(caller).unwrap().entities() < n + 1 {
            assert!(Instant::now() < until);
            let next = host.deadline();
            poll_host(&mut host, &mut poll, &mut events, next);
            while host.poll_event().is_some() {}
        }
        let callees = ids
            .iter()
            .map(|e| host.endpoint(*e).unwrap().local_address().clone())
            .collect();
        Plain {
            host,
            poll,
            events,
            caller,
            callees,
            steps: 0,
        }
    }

    /// Starts round `round`: one call to each callee.
    fn start(
        &mut self,
        round: usize,
        round_of: &mut HashMap<rmbus::rpc::CallId, usize>,
        open: &mut HashMap<usize, (Instant, usize)>,
    ) {
        // Timed from before the first call is made, as a publish is.
        let started = Instant::now();
        let args = vec![
            Value::string("payload of a typical size"),
            Value::Integer(round as i64),
        ];
        for c in self.callees.clone() {
            let call = self
                .host
                .entity(self.caller)
                .unwrap()
                .with_endpoint(|ep, now| {
                    ep.rpc()
                        .call(now, &c, "bench.echo", args.clone(), Duration::from_secs(5))
                })
                .unwrap();
            round_of.insert(call, round);
        }
        open.insert(round, (started, self.callees.len()));
    }

    /// `total` rounds of one call to each callee, `window` rounds at a time.
    fn pipeline(&mut self, total: usize, window: usize) -> (Vec<Duration>, Duration) {
        let t0 = Instant::now();
        let mut round_of = HashMap::new();
        let mut open: HashMap<usize, (Instant, usize)> = HashMap::new();
        let (mut sent, mut done) = (0, 0);
        let mut lat = Vec::with_capacity(total);
        while sent < window.min(total) {
            self.start(sent, &mut round_of, &mut open);
            sent += 1;
        }
        let until = Instant::now() + Duration::from_secs(60);
        while done < total {
            assert!(Instant::now() < until, "the rpc baseline stalled");
            self.steps += 1;
            let next = self.host.deadline();
            poll_host(&mut self.host, &mut self.poll, &mut self.events, next);
            let mut finished = 0;
            while let Some((_, ev)) = self.host.poll_event() {
                if let Event::Rpc(RpcEvent::Returned { call, outcome, .. }) = ev {
                    assert_eq!(outcome.code(), "ok");
                    let Some(round) = round_of.remove(&call) else {
                        continue;
                    };
                    let entry = open.get_mut(&round).unwrap();
                    entry.1 -= 1;
                    if entry.1 == 0 {
                        lat.push(entry.0.elapsed());
                        open.remove(&round);
                        finished += 1;
                    }
                }
            }
            for _ in 0..finished {
                done += 1;
                if sent < total {
                    self.start(sent, &mut round_of, &mut open);
                    sent += 1;
                }
            }
        }
        lat.sort();
        (lat, t0.elapsed())
    }
}

fn median(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.sort_by(f64::total_cmp);
    (v[v.len() / 2], v[0], v[v.len() - 1])
}

fn l32(i: usize) -> Message {
    let mut m = Message::new(
        "",
        Layer::L32,
        Content::Json(serde_json::json!({"n": i, "payload": "of a typical size"})),
    );
    m.topics = vec!["bench.load".into()];
    m
}

fn bench_fanout(rounds: usize) {
    let mut cmbs = Cmbs::new(10, None);
    let mut plain = Plain::new(10);
    // Profiling aid: one side alone, one message at a time.
    let n: usize = std::env::var("RMBUS_BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3000);
    match std::env::var("RMBUS_BENCH_SIDE").as_deref() {
        Ok("cmbs") => {
            let (lat, t) = cmbs.pipeline(n, 1, l32);
            println!(
                "cmbs alone: p50 {:.0} us, {:.0} msgs/s, {:.1} loop turns per message",
                us(percentile(&lat, 0.5)),
                n as f64 / t.as_secs_f64(),
                cmbs.steps as f64 / n as f64
            );
            return;
        }
        Ok("plain") => {
            let (lat, t) = plain.pipeline(n, 1);
            println!(
                "plain alone: p50 {:.0} us, {:.0} msgs/s, {:.1} loop turns per message",
                us(percentile(&lat, 0.5)),
                n as f64 / t.as_secs_f64(),
                plain.steps as f64 / n as f64
            );
            return;
        }
        _ => {}
    }
    let (mut rate, mut p99, mut p50) = (Vec::new(), Vec::new(), Vec::new());
    // Warm both up.
    plain.pipeline(100, 8);
    cmbs.pipeline(100, 8, l32);
    if std::env::var_os("RMBUS_BENCH_VERBOSE").is_some() {
        let out = |h: &Host| -> (u64, u64, u64) {
            h.ids()
                .map(|e| h.endpoint(e).unwrap().stats())
                .fold((0, 0, 0), |a, s| {
                    (
                        a.0 + s.datagrams_out,
                        a.1 + s.dedicated_acks,
                        a.2 + s.retransmissions,
                    )
                })
        };
        let (a0, b0) = (out(&cmbs.host), out(&plain.host));
        cmbs.pipeline(100, 1, l32);
        plain.pipeline(100, 1);
        let (a1, b1) = (out(&cmbs.host), out(&plain.host));
        println!(
            "    per message, one at a time: cmbs {} datagrams ({} dedicated acks, {} retransmissions), plain {} ({}, {})",
            (a1.0 - a0.0) as f64 / 100.0,
            (a1.1 - a0.1) as f64 / 100.0,
            (a1.2 - a0.2) as f64 / 100.0,
            (b1.0 - b0.0) as f64 / 100.0,
            (b1.1 - b0.1) as f64 / 100.0,
            (b1.2 - b0.2) as f64 / 100.0
        );
    }
    for _ in 0..rounds {
        // Throughput: short chunks alternate, so that both see the same noise.
        let (mut t_plain, mut t_cmbs) = (Duration::ZERO, Duration::ZERO);
        let (chunks, chunk) = (10, 50);
        for _ in 0..chunks {
            t_plain += plain.pipeline(chunk, 8).1;
            t_cmbs += cmbs.pipeline(chunk, 8, l32).1;
        }
        rate.push(t_plain.as_secs_f64() / t_cmbs.as_secs_f64());
        // Latency, one message at a time, alternating in chunks of 20.
        let (mut one, mut one_base) = (Vec::new(), Vec::new());
        for _ in 0..25 {
            one_base.extend(plain.pipeline(20, 1).0);
            one.extend(cmbs.pipeline(20, 1, l32).0);
        }
        one.sort();
        one_base.sort();
        p99.push(us(percentile(&one, 0.99)) / us(percentile(&one_base, 0.99)));
        p50.push(us(percentile(&one, 0.5)) / us(percentile(&one_base, 0.5)));
        if std::env::var_os("RMBUS_BENCH_VERBOSE").is_some() {
            let n = (chunks * chunk) as f64;
            println!(
                "    round: {:.0} vs {:.0} msgs/s; one at a time p50 {:.0} vs {:.0} us, p99 {:.0} vs {:.0} us",
                n / t_cmbs.as_secs_f64(),
                n / t_plain.as_secs_f64(),
                us(percentile(&one, 0.5)),
                us(percentile(&one_base, 0.5)),
                us(percentile(&one, 0.99)),
                us(percentile(&one_base, 0.99))
            );
        }
    }
    let (r, rlo, rhi) = median(rate);
    let (p, plo, phi) = median(p99);
    let (q, qlo, qhi) = median(p50);
    println!(
        "(a) L3.2 fan-out to 10 members, 8 messages in flight, x 10 RPC calls to 10 echo entities:"
    );
    println!("    messages/s ratio {r:.2} (rounds {rlo:.2}..{rhi:.2}); target >= 0.80");
    println!(
        "    report p99 ratio, one at a time, {p:.2} (rounds {plo:.2}..{phi:.2}); target <= 1.5"
    );
    println!("    report p50 ratio, one at a time, {q:.2} (rounds {qlo:.2}..{qhi:.2})");
}

fn bare_sqlite(path: &std::path::Path, total: usize, per_commit: usize) -> Duration {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.pragma_update(None, "journal_mode", "WAL").unwrap();
    conn.pragma_update(None, "synchronous", "FULL").unwrap();
    conn.execute_batch("CREATE TABLE IF NOT EXISTS t (member TEXT, id TEXT, layer TEXT, sender TEXT, stored_ms INTEGER, body TEXT, PRIMARY KEY (member, id))").unwrap();
    let body = l32(0).to_json().to_string();
    let t = Instant::now();
    let mut conn = conn;
    let mut i = 0;
    while i < total {
        let tx = conn.transaction().unwrap();
        for _ in 0..per_commit {
            tx.execute(
                "INSERT OR REPLACE INTO t VALUES ('m', ?1, 'l1', '(app:x)', 0, ?2)",
                rusqlite::params![format!("r{i}-{}", t.elapsed().as_nanos()), body],
            )
            .unwrap();
            i += 1;
        }
        tx.commit().unwrap();
    }
    t.elapsed()
}

fn bench_store(rounds: usize) {
    let dir = tempfile::tempdir().unwrap();
    let mut cmbs = Cmbs::new(1, Some(dir.path()));
    let stored = |i: usize| {
        let mut m = Message::new(
            "",
            Layer::L1,
            Content::Json(serde_json::json!({"n": i, "payload": "of a typical size"})),
        );
        m.receiver = Some("bench-member-0".into());
        m.storable = std::env::var_os("RMBUS_BENCH_NOSTORE").is_none();
        m
    };
    for (window, total) in [(1usize, 200usize), (64, 3000)] {
        let mut ratios = Vec::new();
        for r in 0..rounds {
            let bare = bare_sqlite(
                &dir.path().join(format!("bare-{window}-{r}.sqlite")),
                total,
                window,
            );
            let before = cmbs.worker.as_ref().map_or(0, Worker::transactions);
            let steps_before = cmbs.steps;
            let (_, t) = cmbs.pipeline(total, window, stored);
            let commits = cmbs.worker.as_ref().map_or(0, Worker::transactions) - before;
            ratios.push(bare.as_secs_f64() / t.as_secs_f64());
            if std::env::var_os("RMBUS_BENCH_VERBOSE").is_some() {
                println!(
                    "    round {r}: bare {:.0} rows/s, cmbs {:.0} deliveries/s in {commits} commits, {:.2} loop turns per delivery",
                    total as f64 / bare.as_secs_f64(),
                    total as f64 / t.as_secs_f64(),
                    (cmbs.steps - steps_before) as f64 / total as f64
                );
            }
        }
        let (m, lo, hi) = median(ratios);
        println!("(b) storable deliveries, {window} in flight, x bare rusqlite (one commit per {window} row(s)): {m:.2} (rounds {lo:.2}..{hi:.2}); target >= 0.50");
    }
}

fn rss_bytes() -> u64 {
    (rss_kib(std::process::id()) * 1024.0) as u64
}

fn bench_memory() {
    use rmbus::cmbs::cmd::Announce;
    use rmbus::proto::{Endpoint, EndpointConfig};
    let config = EndpointConfig::from_config(&config(), 1).unwrap();
    let local = Address::parse("(app:cmbs module:member member:me id:1-1@127.0.0.1)").unwrap();
    let now = Instant::now();
    let mut ep = Endpoint::new(config, local, now, SystemTime::now()).unwrap();
    let mut member = Member::new(Description::new("me"), MemberConfig::default(), 1);
    let n = 1000;
    let announce = |i: usize| {
        let id = uuid::Uuid::from_u128(0x1000_0000_0000_4000_8000_0000_0000_0000 + i as u128)
            .to_string();
        let mut d = Description::new(&id);
        d.state = rmbus::cmbs::MemberState::Active;
        d.started = LayerSet::ALL;
        d.topics = vec!["sensors.*.temp".into(), "alerts.#".into()];
        d.providers = vec!["weather".into()];
        let src = Address::parse(&format!(
            "(app:cmbs module:member member:{id} id:{}-1@192.168.1.{})",
            10_000 + i,
            i % 250
        ))
        .unwrap();
        Event::Command {
            src,
            reliable: false,
            command: Announce { description: d }.into_command(),
        }
    };
    // Warm the allocator with one entry made and dropped, then measure.
    let _ = member.handle_event(&mut ep, now, announce(n));
    let before = rss_bytes();
    for i in 0..n {
        let _ = member.handle_event(&mut ep, now, announce(i));
    }
    let after = rss_bytes();
    assert_eq!(member.client().directory().len(), n + 1);
    let per = (after.saturating_sub(before)) as f64 / n as f64;
    println!("(c) resident memory per directory entry (1,000 members, each with 5 endpoints, 2 topics, 1 provider): {per:.0} bytes; target <= 4096");
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("cmbs benchmark: run with `cargo bench --bench cmbs`");
        return;
    }
    let rounds: usize = std::env::var("RMBUS_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    println!("\nrmbus CMBS benchmark: host-local group, {rounds} interleaved rounds, one run\n");
    let only = std::env::var("RMBUS_BENCH_ONLY").unwrap_or_default();
    let part = |p: &str| only.is_empty() || only.contains(p);
    if part("c") {
        bench_memory();
    }
    if part("a") {
        bench_fanout(rounds);
    }
    if part("b") {
        bench_store(rounds);
    }
}
