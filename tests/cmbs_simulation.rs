//! CMBS in the deterministic simulation: members and plain senders over
//! the virtual network, every layer and every code, loss, held messages and
//! a restart on a store.

mod sim;

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};

use rmbus::cmbs::{
    echo_executor, Action, Client, ClientConfig, Code, Content, Description, Event, Execution,
    Layer, LayerSet, LineStatus, Member, MemberConfig, MemberState, Message, Outcome, Publish,
    Report, StoreBatch,
};
use rmbus::proto::{Endpoint, SansIo, Transmit};
use rmbus::store::{MemoryStore, Store};
use rmbus::wire::Address;
use sim::{endpoint_config, Link, Net};

const WALL: u64 = 1_700_000_000;

fn wall(net_now: Instant, base: Instant) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(WALL) + net_now.duration_since(base)
}

enum Role {
    Member(Box<Member>),
    Sender(Box<Client>),
}

/// One CMBS participant: an endpoint and a member (or a plain sender), a
/// store in memory that commits after `store_delay`, and execute jobs that
/// finish after `exec_delay` (`None`: never).
struct Node {
    ep: Endpoint,
    role: Role,
    store: Option<MemoryStore>,
    store_delay: Duration,
    batches: VecDeque<(Instant, StoreBatch)>,
    exec_jobs: VecDeque<(Instant, u64, serde_json::Value)>,
    events: VecDeque<Event>,
    base: Instant,
}

impl Node {
    fn member(&mut self) -> &mut Member {
        match &mut self.role {
            Role::Member(m) => m,
            Role::Sender(_) => panic!("not a member"),
        }
    }

    fn client(&self) -> &Client {
        match &self.role {
            Role::Member(m) => m.client(),
            Role::Sender(c) => c,
        }
    }

    fn publish(&mut self, now: Instant, p: Publish) -> Result<String, Box<Report>> {
        let w = wall(now, self.base);
        let r = match &mut self.role {
            Role::Member(m) => m.publish(&mut self.ep, now, w, p),
            Role::Sender(c) => c.publish(&mut self.ep, now, w, p),
        };
        self.pump(now);
        r
    }

    fn pump(&mut self, now: Instant) {
        loop {
            let mut progress = false;
            while let Some(ev) = self.ep.poll_event() {
                progress = true;
                let _ = match &mut self.role {
                    Role::Member(m) => m.handle_event(&mut self.ep, now, ev),
                    Role::Sender(c) => c.handle_event(&mut self.ep, now, ev),
                };
            }
            if let Role::Member(m) = &mut self.role {
                while let Some(b) = m.poll_store() {
                    progress = true;
                    self.batches.push_back((now + self.store_delay, b));
                }
                while self.batches.front().is_some_and(|(t, _)| *t <= now) {
                    let (_, b) = self.batches.pop_front().unwrap();
                    let store = self
                        .store
                        .as_mut()
                        .expect("a member with batches has a store");
                    let r = store
                        .commit(&b.member, &b.ops, wall(now, self.base))
                        .map_err(|e| e.to_string());
                    m.store_done(&mut self.ep, now, b.ticket, r);
                    progress = true;
                }
                while self.exec_jobs.front().is_some_and(|(t, _, _)| *t <= now) {
                    let (_, ticket, v) = self.exec_jobs.pop_front().unwrap();
                    m.exec_done(&mut self.ep, now, ticket, Ok(v));
                    progress = true;
                }
            }
            loop {
                let e = match &mut self.role {
                    Role::Member(m) => m.poll_event(),
                    Role::Sender(c) => c.poll_event(),
                };
                match e {
                    Some(e) => self.events.push_back(e),
                    None => break,
                }
            }
            if !progress {
                break;
            }
        }
    }
}

impl SansIo for Node {
    type Event = Event;

    fn handle_datagram(&mut self, now: Instant, from: SocketAddr, data: &[u8]) {
        self.ep.handle_datagram(now, from, data);
        self.pump(now);
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.ep.handle_timeout(now);
        match &mut self.role {
            Role::Member(m) => m.handle_timeout(&mut self.ep, now),
            Role::Sender(c) => c.handle_timeout(&mut self.ep, now),
        }
        self.pump(now);
    }

    fn poll_transmit(&mut self, now: Instant) -> Option<Transmit> {
        self.ep.poll_transmit(now)
    }

    fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    fn poll_timeout(&self) -> Option<Instant> {
        let role = match &self.role {
            Role::Member(m) => m.poll_timeout(),
            Role::Sender(c) => c.poll_timeout(),
        };
        [
            self.ep.poll_timeout(),
            role,
            self.batches.front().map(|(t, _)| *t),
            self.exec_jobs.front().map(|(t, _, _)| *t),
        ]
        .into_iter()
        .flatten()
        .min()
    }
}

struct Bus {
    net: Net<Node>,
    seed: u64,
}

/// How a test member is made.
#[derive(Clone)]
struct Spec {
    id: String,
    topics: Vec<String>,
    providers: Vec<String>,
    layers: LayerSet,
    store: bool,
    store_delay: Duration,
    executor: bool,
}

fn spec(id: &str) -> Spec {
    Spec {
        id: id.into(),
        topics: Vec::new(),
        providers: Vec::new(),
        layers: LayerSet::ALL,
        store: true,
        store_delay: Duration::ZERO,
        executor: true,
    }
}

impl Spec {
    fn topics(mut self, t: &[&str]) -> Spec {
        self.topics = t.iter().map(|s| s.to_string()).collect();
        self
    }
    fn providers(mut self, p: &[&str]) -> Spec {
        self.providers = p.iter().map(|s| s.to_string()).collect();
        self
    }
}

impl Bus {
    fn new(seed: u64, link: Link) -> Bus {
        Bus {
            net: Net::new(seed, link),
            seed,
        }
    }

    fn endpoint(&self, base: Address, i: usize) -> Endpoint {
        let mut addr = base;
        addr.push("id", &format!("{}-1@127.0.0.1", 1000 + i))
            .unwrap();
        let config = endpoint_config(self.seed.wrapping_mul(1000).wrapping_add(i as u64));
        Endpoint::new(
            config,
            addr,
            self.net.now,
            wall(self.net.now, self.net.base),
        )
        .unwrap()
    }

    fn node(&self, ep: Endpoint, role: Role, store: Option<MemoryStore>, delay: Duration) -> Node {
        Node {
            ep,
            role,
            store,
            store_delay: delay,
            batches: VecDeque::new(),
            exec_jobs: VecDeque::new(),
            events: VecDeque::new(),
            base: self.net.base,
        }
    }

    fn add_member(&mut self, s: Spec) -> usize {
        self.add_member_with(s, MemoryStore::new(), Vec::new())
    }

    fn add_member_with(
        &mut self,
        s: Spec,
        store: MemoryStore,
        held_from: Vec<rmbus::cmbs::HeldRecord>,
    ) -> usize {
        let i = self.net.nodes.len();
        let ep = self.endpoint(Member::address(&s.id).unwrap(), i);
        let mut d = Description::new(&s.id);
        d.topics = s.topics.clone();
        d.providers = s.providers.clone();
        d.started = s.layers;
        let config = MemberConfig {
            has_store: s.store,
            ..MemberConfig::default()
        };
        let mut m = Member::new(d, config, self.seed + i as u64);
        if s.executor {
            m.set_executor(echo_executor());
        }
        let now = self.net.now;
        m.restore(now, wall(now, self.net.base), Vec::new(), held_from);
        let node = self.node(
            ep,
            Role::Member(Box::new(m)),
            s.store.then_some(store),
            s.store_delay,
        );
        let i = self.net.push(node);
        self.net.with(i, |n, now| {
            let Node { ep, role, .. } = n;
            if let Role::Member(m) = role {
                m.start(ep, now);
            }
            n.pump(now);
        });
        i
    }

    fn add_sender(&mut self) -> usize {
        self.add_sender_with(ClientConfig::default())
    }

    fn add_sender_with(&mut self, config: ClientConfig) -> usize {
        let i = self.net.nodes.len();
        let ep = self.endpoint(Address::parse("(app:cmbs module:publish)").unwrap(), i);
        let client = Client::new(config, self.seed + 77);
        let node = self.node(ep, Role::Sender(Box::new(client)), None, Duration::ZERO);
        let i = self.net.push(node);
        self.net.with(i, |n, now| {
            let Node { ep, role, .. } = n;
            if let Role::Sender(c) = role {
                c.describe(ep, now);
            }
        });
        i
    }

    /// Runs until node `i`'s directory holds `n` members.
    fn learn(&mut self, i: usize, n: usize) {
        let ok = self.net.run_until_true(Duration::from_secs(10), |net| {
            net.nodes[i].ep.client().directory().len() >= n
        });
        if !ok {
            for (k, node) in self.net.nodes.iter().enumerate() {
                eprintln!(
                    "node {k}: peers {:?} dir {:?} timeout {:?}",
                    node.ep
                        .ep
                        .peers()
                        .map(|p| p.address.to_string())
                        .collect::<Vec<_>>(),
                    node.ep
                        .client()
                        .directory()
                        .iter()
                        .map(|e| e.address.to_string())
                        .collect::<Vec<_>>(),
                    node.ep.poll_timeout().map(|t| self.net.elapsed_ms(t))
                );
            }
        }
        assert!(
            self.net
                .run_until_true(Duration::from_secs(10), |net| net.nodes[i]
                    .ep
                    .client()
                    .directory()
                    .len()
                    >= n),
            "node {i} knows {} members, not {n}",
            self.net.nodes[i].ep.client().directory().len()
        );
    }

    /// Runs `f` on member `i` and its endpoint now, then lets the output flow.
    fn with_member<R>(
        &mut self,
        i: usize,
        f: impl FnOnce(&mut Member, &mut Endpoint, Instant) -> R,
    ) -> R {
        self.net.with(i, |n, now| {
            let Node { ep, role, .. } = n;
            let Role::Member(m) = role else {
                panic!("node {i} is no member")
            };
            let r = f(m, ep, now);
            n.pump(now);
            r
        })
    }

    fn publish(&mut self, i: usize, p: Publish) -> Result<String, Box<Report>> {
        self.net.with(i, |n, now| n.publish(now, p))
    }

    /// Runs until node `i` reports message `id`; the report.
    fn report(&mut self, i: usize, id: &str, limit: Duration) -> Report {
        let id = id.to_owned();
        let found = |net: &Net<Node>| {
            net.events(i, |e| match e {
                Event::Report(r) if r.message == id => Some(r.clone()),
                _ => None,
            })
        };
        assert!(
            self.net.run_until_true(limit, |net| !found(net).is_empty()),
            "no report for {id}"
        );
        found(&self.net).remove(0)
    }

    fn received(&self, i: usize) -> Vec<Message> {
        self.net.events(i, |e| match e {
            Event::Received { message, .. } => Some(message.clone()),
            _ => None,
        })
    }
}

fn msg(layer: Layer, content: serde_json::Value) -> Message {
    Message::new("", layer, Content::Json(content))
}

fn status_of<'a>(r: &'a Report, member: &str) -> &'a LineStatus {
    &r.lines
        .iter()
        .find(|l| l.member == member)
        .unwrap_or_else(|| panic!("no line for {member} in {r:?}"))
        .status
}

fn code_of(r: &Report, member: &str) -> Code {
    match status_of(r, member) {
        LineStatus::Refused(x) => x.code,
        other => panic!("{member}: {other:?}"),
    }
}

/// A: sensors and provider p1; B: alerts and p2; C: errors, p1 and p2;
/// S: a plain sender that knows all three.
fn three_members(seed: u64, link: Link) -> (Bus, [usize; 4]) {
    let mut bus = Bus::new(seed, link);
    let a = bus.add_member(
        spec("member-a")
            .topics(&["sensors.*.temp"])
            .providers(&["p1"]),
    );
    let b = bus.add_member(spec("member-b").topics(&["alerts.#"]).providers(&["p2"]));
    let c = bus.add_member(
        spec("member-c")
            .topics(&["#.error"])
            .providers(&["p1", "p2"]),
    );
    let s = bus.add_sender();
    bus.learn(s, 3);
    for i in [a, b, c] {
        bus.learn(i, 2);
    }
    (bus, [a, b, c, s])
}

fn delivered_to(r: &Report) -> Vec<String> {
    let mut v: Vec<String> = r
        .lines
        .iter()
        .filter(|l| l.is_delivered())
        .map(|l| l.member.clone())
        .collect();
    v.sort();
    v
}

#[test]
fn every_layer_reaches_the_members_it_names() {
    let (mut bus, [a, b, c, s]) = three_members(1, Link::perfect());

    // L1, executable: the one member named, and its handler's result.
    let mut m = msg(Layer::L1, serde_json::json!({"q": 42}));
    m.receiver = Some("mbus:member-b/l1".into());
    m.executable = true;
    let id = bus.publish(s, Publish::new(m)).unwrap();
    let r = bus.report(s, &id, Duration::from_secs(10));
    assert_eq!(r.outcome, Outcome::Delivered);
    assert_eq!(delivered_to(&r), vec!["member-b"]);
    assert_eq!(r.result(), Some(&serde_json::json!({"q": 42})));
    // By member id too.
    let mut m = msg(Layer::L1, serde_json::json!(1));
    m.receiver = Some("member-a".into());
    let id = bus.publish(s, Publish::new(m)).unwrap();
    assert_eq!(
        delivered_to(&bus.report(s, &id, Duration::from_secs(10))),
        vec!["member-a"]
    );

    let cases: Vec<(Message, Vec<&str>)> = vec![
        (
            msg(Layer::L2, serde_json::json!("all")),
            vec!["member-a", "member-b", "member-c"],
        ),
        (
            Message {
                providers: vec!["p1".into()],
                ..msg(Layer::L31, serde_json::json!("p1"))
            },
            vec!["member-a", "member-c"],
        ),
        (
            // A member's id is always one of its providers.
            Message {
                providers: vec!["member-b".into()],
                ..msg(Layer::L31, serde_json::json!("id"))
            },
            vec!["member-b"],
        ),
        (
            Message {
                topics: vec!["alerts.disk.error".into()],
                ..msg(Layer::L32, serde_json::json!("t"))
            },
            vec!["member-b", "member-c"],
        ),
        (
            Message {
                topics: vec!["sensors.kitchen.temp".into()],
                ..msg(Layer::L32, serde_json::json!("t"))
            },
            vec!["member-a"],
        ),
        (
            Message {
                providers: vec!["p1".into()],
                topics: vec!["sensors.kitchen.temp".into(), "db.error".into()],
                ..msg(Layer::L4, serde_json::json!("both"))
            },
            vec!["member-a", "member-c"],
        ),
        (
            Message {
                providers: vec!["p2".into()],
                topics: vec!["sensors.kitchen.temp".into()],
                ..msg(Layer::L4, serde_json::json!("none of p2 takes sensors"))
            },
            vec![],
        ),
    ];
    for (m, want) in cases {
        let layer = m.layer;
        match bus.publish(s, Publish::new(m)) {
            Ok(id) => {
                let r = bus.report(s, &id, Duration::from_secs(10));
                assert_eq!(r.outcome, Outcome::Delivered, "{layer}: {r:?}");
                assert_eq!(delivered_to(&r), want, "{layer}");
            }
            Err(r) => {
                assert!(want.is_empty(), "{layer}: {r:?}");
                assert_eq!(r.outcome.code(), "NO_RECIPIENT");
            }
        }
    }
    // Each member's application saw what it was sent, with its id appended
    // to path_history.
    for (i, id) in [(a, "member-a"), (b, "member-b"), (c, "member-c")] {
        let got = bus.received(i);
        assert!(!got.is_empty());
        assert!(got
            .iter()
            .all(|m| m.path_history.last().map(String::as_str) == Some(id)));
    }
    assert_eq!(bus.received(a).len(), 5);
    assert_eq!(bus.received(b).len(), 4);
    assert_eq!(bus.received(c).len(), 4);
}

#[test]
fn unreliable_l2_is_one_multicast_without_answers() {
    let (mut bus, [a, b, c, s]) = three_members(2, Link::perfect());
    let p = Publish {
        unreliable: true,
        ..Publish::new(msg(Layer::L2, serde_json::json!("fire and forget")))
    };
    let id = bus.publish(s, p).unwrap();
    let r = bus.report(s, &id, Duration::from_secs(1));
    assert_eq!(r.outcome, Outcome::SentUnconfirmed);
    bus.net.run_for(Duration::from_millis(100));
    for i in [a, b, c] {
        assert_eq!(bus.received(i).len(), 1);
    }
    // Only L2 has it.
    let p = Publish {
        unreliable: true,
        ..Publish::new(Message {
            providers: vec!["p1".into()],
            ..msg(Layer::L31, serde_json::json!(1))
        })
    };
    assert_eq!(
        bus.publish(s, p).unwrap_err().outcome.code(),
        "NOT_SENDABLE"
    );
}

#[test]
fn the_sender_refuses_what_it_can_know_before_sending() {
    let (mut bus, [_, _, _, s]) = three_members(3, Link::perfect());
    let sent_before = bus.net.nodes[s].sent.len();
    let mut cases = Vec::new();
    let mut l1 = msg(Layer::L1, serde_json::json!(1));
    l1.receiver = Some("nobody".into());
    cases.push((l1, Code::UnknownMember));
    cases.push((
        Message {
            sendable: false,
            ..msg(Layer::L2, serde_json::json!(1))
        },
        Code::NotSendable,
    ));
    cases.push((
        Message {
            topics: vec!["a.*".into()],
            ..msg(Layer::L32, serde_json::json!(1))
        },
        Code::InvalidTopic,
    ));
    cases.push((
        Message {
            topics: vec!["a..b".into()],
            ..msg(Layer::L32, serde_json::json!(1))
        },
        Code::InvalidTopic,
    ));
    cases.push((
        Message::new("", Layer::L2, Content::Data(vec![0; 70_000])),
        Code::TooLarge,
    ));
    cases.push((
        Message {
            topics: vec!["nobody.listens".into()],
            ..msg(Layer::L32, serde_json::json!(1))
        },
        Code::NoRecipient,
    ));
    for (m, code) in cases {
        let r = bus.publish(s, Publish::new(m)).unwrap_err();
        match &r.outcome {
            Outcome::Rejected(x) => {
                assert_eq!(x.code, code);
                assert!(!x.reason.is_empty(), "{code}: a reason");
            }
            other => panic!("{code}: {other:?}"),
        }
        assert_eq!(r.outcome.exit_code(), 2);
    }
    let deliveries = bus.net.nodes[s].sent.len() - sent_before;
    assert_eq!(deliveries, 0, "nothing is sent for a rejected message");
}

#[test]
fn a_stopped_layer_is_a_line_without_a_send_and_all_stopped_is_no_recipient() {
    let (mut bus, [a, b, c, s]) = three_members(4, Link::perfect());
    let answer = bus.with_member(b, |m, ep, now| m.action(ep, now, Action::Stop(Layer::L2)));
    assert!(!answer.member.started.contains(Layer::L2));
    bus.net.run_for(Duration::from_millis(100));
    let id = bus
        .publish(s, Publish::new(msg(Layer::L2, serde_json::json!(1))))
        .unwrap();
    let r = bus.report(s, &id, Duration::from_secs(5));
    assert_eq!(
        r.outcome,
        Outcome::Delivered,
        "a stopped member does not count against success"
    );
    assert_eq!(code_of(&r, "member-b"), Code::LayerStopped);
    assert!(
        !r.lines
            .iter()
            .find(|l| l.member == "member-b")
            .unwrap()
            .sent
    );
    assert!(bus.received(b).is_empty());

    for i in [a, c] {
        bus.with_member(i, |m, ep, now| m.action(ep, now, Action::Stop(Layer::L2)));
    }
    bus.net.run_for(Duration::from_millis(100));
    let r = bus
        .publish(s, Publish::new(msg(Layer::L2, serde_json::json!(2))))
        .unwrap_err();
    assert_eq!(r.outcome.code(), "NO_RECIPIENT");
    assert_eq!(
        r.lines.len(),
        3,
        "the report still shows the stopped members"
    );

    // A member that stops a layer after the sender last heard refuses itself.
    let mut bus2 = three_members(5, Link::perfect());
    let (a2, s2) = (bus2.1[0], bus2.1[3]);
    // Drop a2's announce on the way: stop the layer while partitioned.
    bus2.0.net.partition = Some(vec![0, 1, 1, 1]);
    bus2.0
        .with_member(a2, |m, ep, now| m.action(ep, now, Action::Stop(Layer::L32)));
    bus2.0.net.run_for(Duration::from_millis(50));
    bus2.0.net.partition = None;
    let m = Message {
        topics: vec!["sensors.x.temp".into()],
        ..msg(Layer::L32, serde_json::json!(1))
    };
    let id = bus2.0.publish(s2, Publish::new(m)).unwrap();
    let r = bus2.0.report(s2, &id, Duration::from_secs(5));
    assert_eq!(code_of(&r, "member-a"), Code::LayerStopped);
    assert_eq!(
        r.outcome,
        Outcome::Refused,
        "a refusal from an intended recipient counts"
    );
    assert_eq!(r.outcome.exit_code(), 1);
}

#[test]
fn a_suspended_member_refuses_until_resumed() {
    let (mut bus, [a, _, _, s]) = three_members(6, Link::perfect());
    let act = |bus: &mut Bus, action| {
        bus.with_member(a, |m, ep, now| m.action(ep, now, action));
        bus.net.run_for(Duration::from_millis(100));
    };
    act(&mut bus, Action::Suspend);
    assert_eq!(
        bus.net.nodes[s]
            .ep
            .client()
            .directory()
            .get("member-a")
            .unwrap()
            .description
            .state,
        MemberState::Suspended
    );
    let mut m = msg(Layer::L1, serde_json::json!(1));
    m.receiver = Some("member-a".into());
    let id = bus.publish(s, Publish::new(m.clone())).unwrap();
    let r = bus.report(s, &id, Duration::from_secs(5));
    assert_eq!(code_of(&r, "member-a"), Code::Suspended);
    act(&mut bus, Action::Resume);
    let id = bus.publish(s, Publish::new(m)).unwrap();
    assert_eq!(
        bus.report(s, &id, Duration::from_secs(5)).outcome,
        Outcome::Delivered
    );
    assert_eq!(bus.received(a).len(), 1);
}

#[test]
fn receiver_codes_loop_not_storable_store_and_exec_failures() {
    let mut bus = Bus::new(7, Link::perfect());
    let plain = bus.add_member(Spec {
        store: false,
        executor: false,
        ..spec("plain")
    });
    let broken = bus.add_member(spec("broken"));
    bus.net.nodes[broken].ep.store.as_mut().unwrap().fail_writes = true;
    let s = bus.add_sender();
    bus.learn(s, 2);
    let l1 = |to: &str| Message {
        receiver: Some(to.into()),
        ..msg(Layer::L1, serde_json::json!("x"))
    };

    let cases = vec![
        (
            Message {
                path_history: vec!["plain".into()],
                ..l1("plain")
            },
            "plain",
            Code::Loop,
        ),
        (
            Message {
                storable: true,
                ..l1("plain")
            },
            "plain",
            Code::NotStorable,
        ),
        (
            Message {
                executable: true,
                ..l1("plain")
            },
            "plain",
            Code::ExecFailed,
        ),
        (
            Message {
                storable: true,
                ..l1("broken")
            },
            "broken",
            Code::StoreFailed,
        ),
    ];
    for (m, who, code) in cases {
        let id = bus.publish(s, Publish::new(m)).unwrap();
        let r = bus.report(s, &id, Duration::from_secs(10));
        assert_eq!(code_of(&r, who), code, "{r:?}");
        assert_eq!(r.outcome, Outcome::Refused);
    }
    assert!(bus.received(plain).is_empty());
    assert!(bus.received(broken).is_empty());
    // The receiver reports what it refused.
    let refused = bus.net.events(broken, |e| match e {
        Event::Refused { refusal, .. } => Some(refusal.code),
        _ => None,
    });
    assert_eq!(refused, vec![Code::StoreFailed]);
}

#[test]
fn an_executor_that_runs_elsewhere_answers_late_or_times_out() {
    let mut bus = Bus::new(8, Link::perfect());
    let m = bus.add_member(Spec {
        executor: false,
        ..spec("slow")
    });
    let s = bus.add_sender();
    bus.learn(s, 1);
    // Results after 1 s for the first job; the second never comes.
    bus.net.with(m, |n, _| {
        let mut first = true;
        n.member().set_executor(Box::new(move |_job| {
            if first {
                first = false;
            }
            Execution::Later
        }));
    });
    let l1 = Message {
        receiver: Some("slow".into()),
        executable: true,
        ..msg(Layer::L1, serde_json::json!("x"))
    };
    let id = bus.publish(s, Publish::new(l1.clone())).unwrap();
    let now = bus.net.now;
    bus.net.nodes[m].ep.exec_jobs.push_back((
        now + Duration::from_secs(1),
        0,
        serde_json::json!("done later"),
    ));
    let r = bus.report(s, &id, Duration::from_secs(10));
    assert_eq!(r.outcome, Outcome::Delivered);
    assert_eq!(r.result(), Some(&serde_json::json!("done later")));
    // The second job never finishes: EXEC_FAILED at the 5 s execute timeout,
    // inside the sender's 2 s + 5 s.
    let id = bus.publish(s, Publish::new(l1)).unwrap();
    let r = bus.report(s, &id, Duration::from_secs(10));
    assert_eq!(code_of(&r, "slow"), Code::ExecFailed);
    assert!(
        matches!(status_of(&r, "slow"), LineStatus::Refused(x) if x.reason.contains("longer than 5"))
    );
}

#[test]
fn acknowledged_but_unanswered_is_timeout_and_a_silent_member_is_undeliverable() {
    let mut bus = Bus::new(9, Link::perfect());
    let slow = bus.add_member(Spec {
        store_delay: Duration::from_secs(60),
        ..spec("slow-disk")
    });
    let gone = bus.add_member(spec("gone"));
    let s = bus.add_sender();
    bus.learn(s, 2);
    let m = Message {
        receiver: Some("slow-disk".into()),
        storable: true,
        ..msg(Layer::L1, serde_json::json!(1))
    };
    let id = bus.publish(s, Publish::new(m)).unwrap();
    let r = bus.report(s, &id, Duration::from_secs(5));
    assert_eq!(code_of(&r, "slow-disk"), Code::Timeout);
    assert_eq!(r.outcome, Outcome::TimedOut);
    assert_eq!(r.outcome.exit_code(), 3);
    assert!(bus.net.elapsed_ms(bus.net.now) < 60_000);
    let _ = slow;

    // "gone" hears nothing any more: every attempt goes unacknowledged.
    let mut side = vec![0; bus.net.nodes.len()];
    side[gone] = 1;
    bus.net.partition = Some(side);
    let m = Message {
        receiver: Some("gone".into()),
        ..msg(Layer::L1, serde_json::json!(1))
    };
    let start = bus.net.now;
    let id = bus.publish(s, Publish::new(m)).unwrap();
    let r = bus.report(s, &id, Duration::from_secs(5));
    assert_eq!(code_of(&r, "gone"), Code::Undeliverable);
    let took = bus.net.now.duration_since(start);
    assert!(
        took >= Duration::from_millis(1400) && took <= Duration::from_millis(2100),
        "{took:?}: retried until the 2 s timeout"
    );
}

#[test]
fn a_member_lost_mid_delivery_is_reported_and_leaves_the_directory() {
    let mut bus = Bus::new(10, Link::perfect());
    let m = bus.add_member(Spec {
        store_delay: Duration::from_secs(30),
        ..spec("leaving")
    });
    let s = bus.add_sender();
    bus.learn(s, 1);
    let msg1 = Message {
        receiver: Some("leaving".into()),
        storable: true,
        ..msg(Layer::L1, serde_json::json!(1))
    };
    let id = bus.publish(s, Publish::new(msg1)).unwrap();
    bus.net.run_for(Duration::from_millis(200));
    bus.net.with(m, |n, now| n.ep.close(now));
    let r = bus.report(s, &id, Duration::from_secs(5));
    assert_eq!(code_of(&r, "leaving"), Code::Undeliverable);
    assert!(
        matches!(status_of(&r, "leaving"), LineStatus::Refused(x) if x.reason.contains("left"))
    );
    assert!(bus.net.nodes[s].ep.client().directory().is_empty());
    assert_eq!(
        bus.net
            .events(s, |e| matches!(e, Event::Left { .. }).then_some(()))
            .len(),
        1
    );
}

#[test]
fn a_malformed_delivery_is_refused_malformed() {
    let mut bus = Bus::new(11, Link::perfect());
    let m = bus.add_member(spec("target"));
    let s = bus.add_sender();
    bus.learn(s, 1);
    let target = bus.net.nodes[s]
        .ep
        .client()
        .directory()
        .get("target")
        .unwrap()
        .address
        .clone();
    // A raw call with a bad map, straight through the endpoint.
    let call = bus.net.with(s, |n, now| {
        n.ep.rpc()
            .call(
                now,
                &target,
                "cmbs.message.deliver",
                vec![rmbus::wire::Value::Integer(3)],
                Duration::from_secs(2),
            )
            .unwrap()
    });
    let _ = call;
    bus.net.run_for(Duration::from_millis(300));
    let refused = bus.net.events(m, |e| match e {
        Event::Refused { refusal, .. } => Some(refusal.code),
        _ => None,
    });
    assert_eq!(refused, vec![Code::Malformed]);
    assert!(bus.received(m).is_empty());
}

#[test]
fn under_loss_every_delivery_is_answered_once_and_reaches_the_application_once() {
    sim::for_seeds(12, |seed| {
        let (mut bus, [a, b, c, s]) = three_members(seed, Link::lossy(0.2));
        let mut ids = Vec::new();
        for k in 0..20 {
            let m = Message {
                storable: k % 2 == 0,
                ..msg(Layer::L2, serde_json::json!(k))
            };
            ids.push(bus.publish(s, Publish::new(m)).unwrap());
            bus.net.run_for(Duration::from_millis(20));
        }
        let mut reports = Vec::new();
        for id in &ids {
            reports.push(bus.report(s, id, Duration::from_secs(10)));
        }
        for (i, who) in [(a, "member-a"), (b, "member-b"), (c, "member-c")] {
            let got = bus.received(i);
            let mut seen = HashMap::new();
            for m in &got {
                *seen.entry(m.id.clone()).or_insert(0) += 1;
            }
            assert!(
                seen.values().all(|n| *n == 1),
                "seed {seed}: {who} saw a message twice"
            );
            for r in &reports {
                if matches!(status_of(r, who), LineStatus::Delivered { .. }) {
                    assert!(
                        seen.contains_key(&r.message),
                        "seed {seed}: delivered to {who} without reaching it"
                    );
                }
            }
        }
        // Every line ends delivered, or honestly unacknowledged or unanswered.
        let mut counts = HashMap::new();
        for l in reports.iter().flat_map(|r| &r.lines) {
            *counts.entry(l.code()).or_insert(0) += 1;
        }
        assert!(
            counts
                .keys()
                .all(|c| ["DELIVERED", "UNDELIVERABLE", "TIMEOUT"].contains(c)),
            "seed {seed}: {counts:?}"
        );
        let delivered = counts.get("DELIVERED").copied().unwrap_or(0);
        assert!(
            delivered >= 40,
            "seed {seed}: only {delivered} of 60 deliveries answered under 20 % loss: {counts:?}"
        );
    });
}

#[test]
fn a_retry_of_an_answered_message_is_answered_from_memory() {
    let mut bus = Bus::new(13, Link::perfect());
    let m = bus.add_member(spec("once"));
    let s = bus.add_sender();
    bus.learn(s, 1);
    let message = Message {
        id: "fixed-id".into(),
        receiver: Some("once".into()),
        executable: true,
        ..msg(Layer::L1, serde_json::json!("r"))
    };
    for _ in 0..3 {
        let id = bus.publish(s, Publish::new(message.clone())).unwrap();
        let r = bus.report(s, &id, Duration::from_secs(5));
        assert_eq!(r.outcome, Outcome::Delivered);
        assert_eq!(
            r.result(),
            Some(&serde_json::json!("r")),
            "the same result again"
        );
    }
    assert_eq!(bus.received(m).len(), 1);
    assert_eq!(bus.net.nodes[m].ep.member().remembered(), 1);
}

#[test]
fn messages_from_one_sender_arrive_in_send_order() {
    let (mut bus, [a, _, _, s]) = three_members(
        14,
        Link {
            delay: (Duration::from_micros(100), Duration::from_millis(20)),
            ..Link::perfect()
        },
    );
    let mut ids = Vec::new();
    for k in 0..30 {
        let m = Message {
            receiver: Some("member-a".into()),
            ..msg(Layer::L1, serde_json::json!(k))
        };
        ids.push(bus.publish(s, Publish::new(m)).unwrap());
    }
    for id in &ids {
        bus.report(s, id, Duration::from_secs(10));
    }
    let order: Vec<serde_json::Value> = bus
        .received(a)
        .into_iter()
        .map(|m| m.content.to_json())
        .collect();
    assert_eq!(
        order,
        (0..30).map(|k| serde_json::json!(k)).collect::<Vec<_>>()
    );
}

#[test]
fn a_held_message_reaches_members_that_appear_during_the_hold_once() {
    let mut bus = Bus::new(15, Link::perfect());
    let early = bus.add_member(spec("early").topics(&["news.#"]));
    let s = bus.add_sender();
    bus.learn(s, 1);
    let p = Publish {
        hold: Some(Duration::from_secs(20)),
        ..Publish::new(Message {
            topics: vec!["news.today".into()],
            ..msg(Layer::L32, serde_json::json!("held"))
        })
    };
    let id = bus.publish(s, p).unwrap();
    bus.net.run_for(Duration::from_secs(3));
    let late = bus.add_member(spec("late").topics(&["news.*"]));
    let other = bus.add_member(spec("other").topics(&["sport.#"]));
    bus.net.run_for(Duration::from_secs(3));
    assert_eq!(
        bus.received(late).len(),
        1,
        "the late member got it during the hold"
    );
    assert!(bus.received(other).is_empty());
    // The report grows line by line, and ends with the hold.
    let lines = bus.net.events(s, |e| match e {
        Event::Line { message, line } if *message == id => Some(line.member.clone()),
        _ => None,
    });
    assert_eq!(lines, vec!["early", "late"]);
    assert!(bus
        .net
        .events(s, |e| matches!(e, Event::Report(_)).then_some(()))
        .is_empty());
    assert_eq!(
        bus.net.nodes[s].ep.client().open_messages(),
        1,
        "held, not reported"
    );
    let r = bus.report(s, &id, Duration::from_secs(20));
    assert_eq!(delivered_to(&r), vec!["early", "late"]);
    assert_eq!(bus.net.nodes[s].ep.client().open_messages(), 0);
    // After the hold, a newcomer gets nothing.
    let after = bus.add_member(spec("after").topics(&["news.#"]));
    bus.net.run_for(Duration::from_secs(3));
    assert!(bus.received(after).is_empty());
    assert_eq!(bus.received(early).len(), 1);
}

#[test]
fn a_held_message_survives_a_restart_of_its_sending_member() {
    let mut bus = Bus::new(16, Link::perfect());
    let sender = bus.add_member(spec("sender"));
    bus.net.run_for(Duration::from_millis(200));
    let p = Publish {
        hold: Some(Duration::from_secs(60)),
        ..Publish::new(Message {
            topics: vec!["jobs.new".into()],
            ..msg(Layer::L32, serde_json::json!("job"))
        })
    };
    let id = bus.net.with(sender, |n, now| n.publish(now, p)).unwrap();
    bus.net.run_for(Duration::from_millis(100));
    // The sender dies (no bye); its store survives.
    let store = bus.net.nodes[sender].ep.store.clone().unwrap();
    let held = store.held("sender").unwrap();
    assert_eq!(held.len(), 1);
    assert_eq!(held[0].message.id, id);
    bus.net.partition = Some(vec![1, 0, 0]);
    let restarted = bus.add_member_with(spec("sender"), store, held);
    bus.net.run_for(Duration::from_secs(2));
    let worker = bus.add_member(spec("worker").topics(&["jobs.#"]));
    bus.net.run_for(Duration::from_secs(3));
    let got = bus.received(worker);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].id, id);
    let lines = bus.net.events(restarted, |e| match e {
        Event::Line { line, .. } => Some(line.member.clone()),
        _ => None,
    });
    assert_eq!(lines, vec!["worker"]);
    // The delivery is recorded in the store, so a second restart would not
    // offer it to "worker" again.
    let held = bus.net.nodes[restarted]
        .ep
        .store
        .as_ref()
        .unwrap()
        .held("sender")
        .unwrap();
    assert_eq!(held[0].delivered, vec!["worker"]);
}

#[test]
fn remote_actions_run_on_the_member_and_answer_its_description() {
    let (mut bus, [a, _, _, s]) = three_members(17, Link::perfect());
    let target = bus.net.nodes[s]
        .ep
        .client()
        .directory()
        .get("member-a")
        .unwrap()
        .address
        .clone();
    let call = bus.net.with(s, |n, now| {
        n.ep.rpc()
            .call(
                now,
                &target,
                "cmbs.member.action",
                vec![rmbus::wire::Value::string("stop_l3.2")],
                Duration::from_secs(2),
            )
            .unwrap()
    });
    bus.net.run_for(Duration::from_millis(300));
    assert!(!bus.net.nodes[a]
        .ep
        .member()
        .description()
        .started
        .contains(Layer::L32));
    let acted = bus.net.events(a, |e| match e {
        Event::Acted { action, by, .. } => Some((*action, by.is_some())),
        _ => None,
    });
    assert_eq!(acted, vec![(Action::Stop(Layer::L32), true)]);
    // The sender's directory follows the announce.
    let entry = bus.net.nodes[s]
        .ep
        .client()
        .directory()
        .get("member-a")
        .unwrap()
        .clone();
    assert!(!entry.description.started.contains(Layer::L32));
    let _ = call;
    // check_neighbors says which neighbors are known.
    let answer = bus.with_member(a, |m, ep, now| {
        m.update(ep, now, |d| {
            d.neighbors = vec!["mbus:member-b/l1".into(), "tcp://nowhere:1".into()]
        });
        m.action(ep, now, Action::CheckNeighbors)
    });
    assert_eq!(answer.neighbors[0].member.as_deref(), Some("member-b"));
    assert_eq!(answer.neighbors[1].member, None);
    assert_eq!(answer.members.len(), 2);
}

#[test]
fn under_loss_and_reordering_a_recipient_still_gets_one_senders_messages_in_order() {
    sim::for_seeds(8, |seed| {
        let (mut bus, [a, _, _, s]) = three_members(seed, Link::lossy(0.15));
        let mut ids = Vec::new();
        for k in 0..40 {
            let m = Message {
                receiver: Some("member-a".into()),
                ..msg(Layer::L1, serde_json::json!(k))
            };
            ids.push(bus.publish(s, Publish::new(m)).unwrap());
        }
        let mut failed = Vec::new();
        for (k, id) in ids.iter().enumerate() {
            if bus.report(s, id, Duration::from_secs(10)).outcome != Outcome::Delivered {
                failed.push(k as i64);
            }
        }
        let got: Vec<i64> = bus
            .received(a)
            .iter()
            .map(|m| m.content.to_json().as_i64().unwrap())
            .collect();
        // What the sender gave up on may come late; everything else is in order.
        let in_order: Vec<i64> = got
            .iter()
            .copied()
            .filter(|k| !failed.contains(k))
            .collect();
        let mut sorted = in_order.clone();
        sorted.sort();
        assert_eq!(
            in_order, sorted,
            "seed {seed}: out of order (failed: {failed:?})"
        );
        assert!(
            failed.len() <= 10,
            "seed {seed}: {} of 40 failed",
            failed.len()
        );
    });
}

/// A member entity that never describes itself (a plain client under a
/// member's address, standing in for one whose announces are all lost).
fn add_silent_member(bus: &mut Bus, id: &str) -> usize {
    let i = bus.net.nodes.len();
    let ep = bus.endpoint(Member::address(id).unwrap(), i);
    let client = Client::new(ClientConfig::default(), 5);
    let node = bus.node(ep, Role::Sender(Box::new(client)), None, Duration::ZERO);
    bus.net.push(node)
}

#[test]
fn a_member_heard_but_never_described_is_a_line_of_its_own_and_a_late_description_settles_it() {
    let (mut bus, [_, _, _, s]) = three_members(41, Link::perfect());
    let silent = add_silent_member(&mut bus, "member-silent");
    // The sender hears its entity (hellos) but never its description.
    assert!(bus.net.run_until_true(Duration::from_secs(10), |net| {
        net.nodes[s]
            .ep
            .client()
            .undescribed()
            .any(|(id, _)| id == "member-silent")
    }));
    assert!(!bus.net.nodes[s].ep.client().settled());
    let id = bus
        .publish(s, Publish::new(msg(Layer::L2, serde_json::json!(1))))
        .unwrap();
    let r = bus.report(s, &id, Duration::from_secs(10));
    assert_eq!(code_of(&r, "member-silent"), Code::Undescribed, "{r:?}");
    assert_eq!(delivered_to(&r), ["member-a", "member-b", "member-c"]);
    assert_eq!(
        r.outcome,
        Outcome::Refused,
        "not delivered while one may be missing"
    );
    // L1 to it: undescribed, not unknown.
    let m = Message {
        receiver: Some("member-silent".into()),
        ..msg(Layer::L1, serde_json::json!(2))
    };
    let r = bus.publish(s, Publish::new(m)).unwrap_err();
    assert_eq!(
        r.outcome,
        Outcome::Rejected(rmbus::cmbs::Refusal::new(
            Code::Undescribed,
            "member member-silent is on the bus, but its description has not reached us"
        ))
    );
    // A held message for a topic: the description that comes during the
    // hold decides. Not subscribed: left out of the report.
    let topic = |t: &str| Message {
        topics: vec![t.into()],
        ..msg(Layer::L32, serde_json::json!(3))
    };
    let held = |m: Message| Publish {
        hold: Some(Duration::from_secs(2)),
        ..Publish::new(m)
    };
    let id = bus.publish(s, held(topic("alerts.disk"))).unwrap();
    bus.net.run_for(Duration::from_millis(100));
    let mut d = Description::new("member-silent");
    d.topics = vec!["sensors.#".into()];
    bus.net.with(silent, |n, now| {
        let cmd = rmbus::cmbs::cmd::Announce { description: d }.into_command();
        n.ep.send(
            now,
            &rmbus::cmbs::cmbs_group(),
            vec![cmd],
            rmbus::proto::Delivery::Unreliable,
        )
        .unwrap();
    });
    let r = bus.report(s, &id, Duration::from_secs(10));
    assert!(
        r.lines.iter().all(|l| l.member != "member-silent"),
        "not a recipient after all: {r:?}"
    );
    assert_eq!(delivered_to(&r), ["member-b"]);
    assert_eq!(r.outcome, Outcome::Delivered);
}

#[test]
fn a_fan_out_keeps_its_window_and_each_delivery_its_own_time() {
    // Five slow members (each store commit takes 150 ms) and a sender that
    // has one delivery out at a time, with 400 ms for each: one after the
    // other they take 750 ms, and none times out, since each delivery's
    // time starts when it is sent.
    let mut bus = Bus::new(43, Link::perfect());
    let members: Vec<String> = (0..5).map(|i| format!("member-{i}")).collect();
    for id in &members {
        let mut s = spec(id);
        s.store_delay = Duration::from_millis(150);
        bus.add_member(s);
    }
    let s = bus.add_sender_with(ClientConfig {
        delivery_timeout: Duration::from_millis(400),
        max_in_flight: 1,
        ..ClientConfig::default()
    });
    bus.learn(s, 5);
    let m = Message {
        storable: true,
        ..msg(Layer::L2, serde_json::json!("slow"))
    };
    let id = bus.publish(s, Publish::new(m)).unwrap();
    let most = std::cell::Cell::new(0);
    let done = bus.net.run_until_true(Duration::from_secs(10), |net| {
        let (out, _) = net.nodes[s].ep.client().deliveries();
        most.set(most.get().max(out));
        net.events(s, |e| match e {
            Event::Report(r) if r.message == id => Some(()),
            _ => None,
        })
        .len()
            == 1
    });
    assert!(done, "no report");
    let r = bus.report(s, &id, Duration::from_secs(1));
    assert_eq!(most.get(), 1, "one delivery out at a time");
    let mut want = members.clone();
    want.sort();
    assert_eq!(delivered_to(&r), want, "{r:?}");
    assert_eq!(r.outcome, Outcome::Delivered);
    assert_eq!(bus.net.nodes[s].ep.client().deliveries(), (0, 0));
}
