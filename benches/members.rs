//! CMBS at a broker's scale, on real sockets (host-local group), each figure
//! a ratio against a baseline measured in the same run, the median of
//! interleaved rounds:
//! (d) an L2 message (neither storable nor executable) from a plain sender
//!     to `RMBUS_BENCH_MEMBERS` (10,000) members hosted in one process (one
//!     host, its `cmbs::Site`), until the report is complete with every
//!     member delivered, against as many plain reliable RPC calls from one
//!     entity to as many entities of one host, with as many in flight as the
//!     sender allows (256) (target ≥ 0.5 of their rate);
//! (e) an L3.2 message whose topic 100 of those members subscribe to,
//!     against the same message to 100 members among 100: p50 of the report
//!     time, one message at a time (target ≤ 1.0×);
//! (f) four hosts of 2,500 members each on one bus (`runtime::spawn_members`,
//!     each its own sockets and thread, in this one process), started at
//!     once: how long after the last member started every host's directory
//!     lists all 10,000 (target ≤ 30 s), then an L2 message from a fifth
//!     host, which must reach all 10,000.
//!
//! Run: `cargo bench --bench members` (`RMBUS_BENCH_ROUNDS`, default 3;
//! `RMBUS_BENCH_ONLY=d`, `e` or `f` runs one part).

mod support;

use std::collections::HashSet;
use std::time::{Duration, Instant, SystemTime};

use mio::{Events, Interest, Poll, Token};
use rmbus::cmbs::{
    Client, ClientConfig, Content, Description, Event as CmbsEvent, Layer, LayerSet, Member,
    MemberConfig, Message, Participant, Publish, Report, Site, SiteEvent,
};
use rmbus::proto::Event;
use rmbus::rpc::{CallId, Reply, RpcEvent};
use rmbus::runtime::{EntityId, Host};
use rmbus::wire::{Address, Value};
use support::{config, median, poll_host};

const HOST: Token = Token(0);
/// How long any one wait may take before the bench calls it stalled.
const STALLED: Duration = Duration::from_secs(120);

/// A host with `n` members on a `Site` and a plain sender, driven here.
struct Members {
    host: Host,
    poll: Poll,
    events: Events,
    site: Site,
    sender: EntityId,
}

impl Members {
    /// `n` members; the first `hot` of them also subscribe to `hot`.
    fn new(n: usize, hot: usize) -> Members {
        let mut host = Host::bind(&config()).unwrap();
        let poll = Poll::new().unwrap();
        poll.registry()
            .register(&mut host, HOST, Interest::READABLE)
            .unwrap();
        let mut site = Site::new(host.core_mut());
        let sender = host
            .add(&Address::parse("(app:cmbs module:bench)").unwrap())
            .unwrap();
        let client = Client::new(ClientConfig::default(), 7);
        site.add(
            host.core_mut(),
            sender,
            Participant::Sender(Box::new(client)),
        );
        for i in 0..n {
            let id = format!("m{i}");
            let mut d = Description::new(&id);
            d.started = LayerSet::ALL;
            d.topics = vec![format!("t.{i}")];
            if i < hot {
                d.topics.push("hot".into());
            }
            let m = Member::new(d, MemberConfig::default(), i as u64);
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
            host.flush().unwrap();
        }
        let mut s = Members {
            host,
            poll,
            events: Events::with_capacity(1024),
            site,
            sender,
        };
        // Every member's entity known to the sender's table.
        let until = Instant::now() + STALLED;
        while s.host.endpoint(sender).unwrap().entities() < n + 1 {
            assert!(
                Instant::now() < until,
                "the members' entities never appeared"
            );
            s.step();
        }
        s
    }

    /// One turn of the loop; the sender's reports.
    fn step(&mut self) -> Vec<Report> {
        let next = self.site.poll_timeout();
        poll_host(&mut self.host, &mut self.poll, &mut self.events, next);
        let now = Instant::now();
        while let Some((id, e)) = self.host.poll_event() {
            let _ = self.site.handle_event(self.host.core_mut(), now, id, e);
        }
        while let Some(e) = self.host.poll_host_event() {
            self.site.handle_host_event(self.host.core_mut(), now, e);
        }
        if self.site.poll_timeout().is_some_and(|t| t <= now) {
            self.site.handle_timeout(self.host.core_mut(), now);
        }
        let mut reports = Vec::new();
        while let Some(e) = self.site.poll_event() {
            if let SiteEvent::Of(id, CmbsEvent::Report(r)) = e {
                if id == self.sender {
                    reports.push(r);
                }
            }
        }
        self.host.flush().unwrap();
        reports
    }

    /// Sends `m` and waits for its report: the report and how long it took.
    fn publish(&mut self, m: Message) -> (Report, Duration) {
        let t0 = Instant::now();
        let wall = SystemTime::now();
        let id = self
            .site
            .with(self.host.core_mut(), t0, self.sender, |p, ep| match p {
                Participant::Sender(c) => c.publish(ep, t0, wall, Publish::new(m)),
                Participant::Member(_) => unreachable!("the sender is a plain sender"),
            })
            .unwrap()
            .unwrap_or_else(|r| panic!("not sent: {:?}", r.outcome));
        self.host.flush().unwrap();
        let until = Instant::now() + STALLED;
        loop {
            assert!(Instant::now() < until, "the fan-out stalled");
            if let Some(r) = self.step().into_iter().find(|r| r.message == id) {
                return (r, t0.elapsed());
            }
        }
    }
}

/// The baseline of (d): `n` entities serving an echo, and a caller.
struct Plain {
    host: Host,
    poll: Poll,
    events: Events,
    caller: EntityId,
    callees: Vec<Address>,
}

impl Plain {
    fn new(n: usize) -> Plain {
        let mut host = Host::bind(&config()).unwrap();
        let mut poll = Poll::new().unwrap();
        poll.registry()
            .register(&mut host, HOST, Interest::READABLE)
            .unwrap();
        let mut callees = Vec::new();
        for i in 0..n {
            let e = host
                .add_without_peer_events(&Address::parse(&format!("(app:bench n:{i})")).unwrap())
                .unwrap();
            host.entity(e)
                .unwrap()
                .serve("bench.echo", |req| Reply::ok(req.args.clone()).into());
            callees.push(host.endpoint(e).unwrap().local_address().clone());
        }
        let caller = host
            .add_without_peer_events(&Address::parse("(app:bench module:caller)").unwrap())
            .unwrap();
        host.entity(caller)
            .unwrap()
            .with_endpoint(|ep, now| ep.ping(now, &Address::empty()))
            .unwrap();
        let mut events = Events::with_capacity(1024);
        let until = Instant::now() + STALLED;
        while host.endpoint(caller).unwrap().entities() < n + 1 {
            assert!(Instant::now() < until, "the callees never appeared");
            let next = host.deadline();
            poll_host(&mut host, &mut poll, &mut events, next);
            while host.poll_event().is_some() {}
        }
        Plain {
            host,
            poll,
            events,
            caller,
            callees,
        }
    }

    /// One call to each callee, at most `window` out at once: how long
    /// until every one has returned.
    fn calls(&mut self, window: usize) -> Duration {
        let t0 = Instant::now();
        let mut open: HashSet<CallId> = HashSet::new();
        let (mut next, mut done) = (0, 0);
        let args = vec![Value::string("a payload of a typical size")];
        let until = Instant::now() + STALLED;
        while done < self.callees.len() {
            assert!(Instant::now() < until, "the rpc baseline stalled");
            while open.len() < window && next < self.callees.len() {
                let to = self.callees[next].clone();
                let call = self
                    .host
                    .entity(self.caller)
                    .unwrap()
                    .with_endpoint(|ep, now| {
                        let timeout = Duration::from_secs(5);
                        ep.rpc().call(now, &to, "bench.echo", args.clone(), timeout)
                    })
                    .unwrap();
                open.insert(call);
                next += 1;
            }
            let deadline = self.host.deadline();
            poll_host(&mut self.host, &mut self.poll, &mut self.events, deadline);
            while let Some((_, ev)) = self.host.poll_event() {
                if let Event::Rpc(RpcEvent::Returned { call, outcome, .. }) = ev {
                    assert_eq!(outcome.code(), "ok", "every call returns");
                    if open.remove(&call) {
                        done += 1;
                    }
                }
            }
        }
        t0.elapsed()
    }
}

fn range(v: &[f64]) -> (f64, f64) {
    let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
    (lo, v.iter().copied().fold(0.0, f64::max))
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("members benchmark: run with `cargo bench --bench members`");
        return;
    }
    let rounds: usize = std::env::var("RMBUS_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let n: usize = std::env::var("RMBUS_BENCH_MEMBERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    println!("\nrmbus members benchmark: {n} members in one host, {rounds} interleaved rounds\n");
    let only = std::env::var("RMBUS_BENCH_ONLY").unwrap_or_default();
    if only == "f" {
        four_hosts(n);
        return;
    }
    let t = Instant::now();
    // The members announce themselves again up to 20 s after they start
    // (`cmbs::REANNOUNCES`); the figures are of hosts past that.
    let (after, spread) = rmbus::cmbs::REANNOUNCES[rmbus::cmbs::REANNOUNCES.len() - 1];
    let settled = t + after + spread + Duration::from_secs(1);
    let mut large = Members::new(n, 100.min(n));
    println!(
        "  {n} members hosted and known in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let t = Instant::now();
    let mut plain = Plain::new(n);
    println!(
        "  {n} echo entities hosted and known in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let mut small = Members::new(100.min(n), 100.min(n));
    while Instant::now() < settled {
        large.step();
        small.step();
    }

    // (d) the L2 fan-out against plain calls.
    let (mut ours, mut theirs, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for r in 0..rounds {
        if !only.is_empty() && !only.contains('d') {
            break;
        }
        let m = Message::new(
            &format!("l2-{r}"),
            Layer::L2,
            Content::Json(serde_json::json!(r)),
        );
        let (report, took) = large.publish(m);
        let delivered = report.lines.iter().filter(|l| l.is_delivered()).count();
        assert_eq!(delivered, n, "every member delivered: {:?}", report.outcome);
        let calls = plain.calls(ClientConfig::default().max_in_flight);
        let (a, b) = (
            n as f64 / took.as_secs_f64(),
            n as f64 / calls.as_secs_f64(),
        );
        ours.push(took.as_secs_f64());
        theirs.push(calls.as_secs_f64());
        ratios.push(a / b);
    }
    let (lo, hi) = range(&ratios);
    if !ratios.is_empty() {
        println!(
        "(d) L2 to {n} members: {:.2} s ({:.0} deliveries/s); {n} RPC calls: {:.2} s; rate ratio {:.2} (rounds {lo:.2}–{hi:.2}; target ≥ 0.50)",
        median(ours.clone()),
        n as f64 / median(ours),
        median(theirs),
        median(ratios),
    );
    }

    if only.is_empty() || only.contains('f') {
        drop((large, plain, small));
        four_hosts(n);
        return;
    }

    // (e) L3.2 to the 100 of n, against 100 among 100.
    let hot = |i: usize| {
        let mut m = Message::new(
            &format!("hot-{i}"),
            Layer::L32,
            Content::Json(serde_json::json!(i)),
        );
        m.topics = vec!["hot".into()];
        m
    };
    let (mut at_n, mut at_100) = (Vec::new(), Vec::new());
    for r in 0..rounds {
        if !only.is_empty() && !only.contains('e') {
            break;
        }
        let mut a = Vec::new();
        let mut b = Vec::new();
        for i in 0..20 {
            let (report, took) = large.publish(hot(r * 1000 + i));
            assert_eq!(report.lines.len(), 100.min(n));
            a.push(took.as_secs_f64() * 1000.0);
            let (report, took) = small.publish(hot(r * 1000 + 500 + i));
            assert_eq!(report.lines.len(), 100.min(n));
            b.push(took.as_secs_f64() * 1000.0);
        }
        at_n.push(median(a));
        at_100.push(median(b));
    }
    let ratios: Vec<f64> = at_n.iter().zip(&at_100).map(|(a, b)| a / b).collect();
    let (lo, hi) = range(&ratios);
    if !ratios.is_empty() {
        println!(
        "(e) L3.2 to 100 of {n}: p50 {:.2} ms; to 100 of 100: {:.2} ms; ratio {:.2} (rounds {lo:.2}–{hi:.2}; target ≤ 1.00)",
        median(at_n),
        median(at_100),
        median(ratios),
    );
    }
    if only.is_empty() || only.contains('f') {
        drop((large, plain, small));
        four_hosts(n);
    }
}

/// (f): four hosts of `n / 4` members on one bus, and a fifth that sends.
fn four_hosts(n: usize) {
    use rmbus::runtime::{spawn_members, MembersHandle, MembersOptions};
    let config = config();
    let per_host = n / 4;
    let started = Instant::now();
    let hosts: Vec<MembersHandle> = std::thread::scope(|scope| {
        let spawned: Vec<_> = (0..4)
            .map(|h| {
                let config = &config;
                scope.spawn(move || {
                    let members = spawn_members(config, MembersOptions::default(), |_| {}).unwrap();
                    for i in 0..per_host {
                        let mut d = Description::new(&format!("h{h}-m{i}"));
                        d.started = LayerSet::ALL;
                        members.host(d).unwrap();
                    }
                    members
                })
            })
            .collect();
        spawned.into_iter().map(|t| t.join().unwrap()).collect()
    });
    let last_started = Instant::now();
    let total = per_host * 4;
    let until = last_started + STALLED;
    let mut known = Vec::new();
    while known.len() < hosts.len() {
        assert!(Instant::now() < until, "the directories never filled");
        known = hosts
            .iter()
            .filter(|h| h.directory().len() >= total)
            .collect();
        if std::env::var_os("RMBUS_BENCH_VERBOSE").is_some()
            && last_started.elapsed().as_millis() % 5000 < 20
        {
            let sizes: Vec<usize> = hosts.iter().map(|h| h.directory().len()).collect();
            println!(
                "  {:.0} s: directories {sizes:?}",
                last_started.elapsed().as_secs_f64()
            );
            for (k, h) in hosts.iter().enumerate() {
                for g in 0..4 {
                    for i in 0..per_host {
                        let id = format!("h{g}-m{i}");
                        if h.member(&id).is_none() {
                            println!("    host {k} lacks {id}");
                        }
                    }
                }
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let filled = last_started.elapsed();
    let fifth = spawn_members(&config, MembersOptions::default(), |_| {}).unwrap();
    while fifth.directory().len() < total {
        assert!(Instant::now() < until, "the fifth host never learnt them");
        std::thread::sleep(Duration::from_millis(20));
    }
    let t = Instant::now();
    let m = Message::new("to-all", Layer::L2, Content::Json(serde_json::json!("all")));
    let report = fifth.publish(m).unwrap();
    let delivered = report.lines.iter().filter(|l| l.is_delivered()).count();
    println!(
        "(f) 4 hosts x {per_host} members started in {:.1} s; every directory lists {total} {:.1} s after the last start (target ≤ 30 s); an L2 from a fifth host: {delivered} of {total} delivered in {:.2} s",
        (last_started - started).as_secs_f64(),
        filled.as_secs_f64(),
        t.elapsed().as_secs_f64(),
    );
    assert_eq!(delivered, total, "{:?}", report.outcome);
    for h in hosts.iter().chain([&fifth]) {
        h.stop();
    }
    for h in hosts.iter().chain([&fifth]) {
        let _ = h.wait();
    }
}
