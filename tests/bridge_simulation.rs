//! CMBS across sites in the deterministic simulation: two or three buses
//! (partitions of one virtual network), a bridge on each, and an
//! in-process stand-in for the NATS cluster between the bridges (subjects
//! with `*`, request/reply with inboxes, no responders, timeouts, a site
//! cut off). The real cluster is in `tests/bridge_nats.rs`; this one runs
//! on a virtual clock, with loss, in milliseconds.

mod sim;

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant, SystemTime};

use rmbus::cmbs::{
    echo_executor, Bridge, BridgeConfig, BridgeEvent, Client, ClientConfig, Content, Description,
    Event, Layer, LayerSet, LineStatus, Member, MemberConfig, Message, NatsInput, NatsOutput,
    Outcome, Publish, Report, RequestFailure,
};
use rmbus::proto::{Endpoint, SansIo, Transmit};
use rmbus::wire::Address;
use sim::{endpoint_config, Link, Net};

const WALL: u64 = 1_700_000_000;

/// The NATS stand-in: what each bridge subscribes to, what is on its way
/// to it, and the requests waiting for an answer.
#[derive(Default)]
struct Hub {
    delay: Duration,
    subs: Vec<Vec<String>>,
    inbox: Vec<VecDeque<(Instant, NatsInput)>>,
    down: Vec<bool>,
    /// Reply subject → requester, its token and deadline.
    waiting: HashMap<String, (usize, u64, Instant)>,
    next_inbox: u64,
}

fn matches(pattern: &str, subject: &str) -> bool {
    let p: Vec<&str> = pattern.split('.').collect();
    let s: Vec<&str> = subject.split('.').collect();
    p.len() == s.len() && p.iter().zip(&s).all(|(a, b)| *a == "*" || a == b)
}

impl Hub {
    fn join(&mut self, subs: Vec<String>) -> usize {
        self.subs.push(subs);
        self.inbox.push(VecDeque::new());
        self.down.push(false);
        self.subs.len() - 1
    }

    fn push(&mut self, to: usize, at: Instant, input: NatsInput) {
        if !self.down[to] {
            self.inbox[to].push_back((at, input));
        }
    }

    fn submit(&mut self, now: Instant, from: usize, out: NatsOutput) {
        let at = now + self.delay;
        if self.down[from] {
            if let NatsOutput::Request { token, .. } = out {
                let result = Err(RequestFailure::Unreachable("not connected".into()));
                self.inbox[from].push_back((now, NatsInput::Answered { token, result }));
            }
            return;
        }
        match out {
            NatsOutput::Publish { subject, payload } => {
                if let Some((to, token, _)) = self.waiting.remove(&subject) {
                    self.push(
                        to,
                        at,
                        NatsInput::Answered {
                            token,
                            result: Ok(payload),
                        },
                    );
                    return;
                }
                for to in 0..self.subs.len() {
                    if !self.down[to] && self.subs[to].iter().any(|p| matches(p, &subject)) {
                        let input = NatsInput::Message {
                            subject: subject.clone(),
                            payload: payload.clone(),
                            reply: None,
                        };
                        self.push(to, at, input);
                    }
                }
            }
            NatsOutput::Request {
                token,
                subject,
                payload,
                timeout,
            } => {
                let responder = (0..self.subs.len())
                    .find(|&b| !self.down[b] && self.subs[b].iter().any(|p| matches(p, &subject)));
                let Some(to) = responder else {
                    let result = Err(RequestFailure::NoResponders);
                    self.push(from, at, NatsInput::Answered { token, result });
                    return;
                };
                self.next_inbox += 1;
                let reply = format!("_INBOX.{}", self.next_inbox);
                self.waiting
                    .insert(reply.clone(), (from, token, now + timeout));
                let input = NatsInput::Message {
                    subject,
                    payload,
                    reply: Some(reply),
                };
                self.push(to, at, input);
            }
        }
    }

    fn due(&mut self, me: usize, now: Instant) -> Vec<NatsInput> {
        let expired: Vec<String> = self
            .waiting
            .iter()
            .filter(|(_, (from, _, deadline))| *from == me && *deadline <= now)
            .map(|(k, _)| k.clone())
            .collect();
        let mut out = Vec::new();
        for k in expired {
            if let Some((_, token, _)) = self.waiting.remove(&k) {
                out.push(NatsInput::Answered {
                    token,
                    result: Err(RequestFailure::TimedOut),
                });
            }
        }
        while self.inbox[me].front().is_some_and(|(t, _)| *t <= now) {
            if let Some((_, input)) = self.inbox[me].pop_front() {
                out.push(input);
            }
        }
        out
    }

    fn next_for(&self, me: usize) -> Option<Instant> {
        let deadline = self
            .waiting
            .values()
            .filter(|(from, _, _)| *from == me)
            .map(|(_, _, d)| *d)
            .min();
        self.inbox[me]
            .front()
            .map(|(t, _)| *t)
            .into_iter()
            .chain(deadline)
            .min()
    }
}

enum Role {
    Member(Box<Member>),
    Sender(Box<Client>),
    Bridge(Box<Bridge>, usize),
}

#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
enum Ev {
    Cmbs(Event),
    Bridge(BridgeEvent),
}

struct Node {
    ep: Endpoint,
    role: Role,
    hub: Rc<RefCell<Hub>>,
    events: VecDeque<Ev>,
}

impl Node {
    fn client(&self) -> &Client {
        match &self.role {
            Role::Member(m) => m.client(),
            Role::Sender(c) => c,
            Role::Bridge(b, _) => b.client(),
        }
    }

    fn bridge(&self) -> &Bridge {
        match &self.role {
            Role::Bridge(b, _) => b,
            _ => panic!("not a bridge"),
        }
    }

    fn pump(&mut self, now: Instant) {
        loop {
            let mut progress = false;
            while let Some(ev) = self.ep.poll_event() {
                progress = true;
                let _ = match &mut self.role {
                    Role::Member(m) => m.handle_event(&mut self.ep, now, ev),
                    Role::Sender(c) => c.handle_event(&mut self.ep, now, ev),
                    Role::Bridge(b, _) => b.handle_event(&mut self.ep, now, ev),
                };
            }
            match &mut self.role {
                Role::Member(m) => {
                    while let Some(e) = m.poll_event() {
                        self.events.push_back(Ev::Cmbs(e));
                    }
                }
                Role::Sender(c) => {
                    while let Some(e) = c.poll_event() {
                        self.events.push_back(Ev::Cmbs(e));
                    }
                }
                Role::Bridge(b, me) => {
                    while let Some(out) = b.poll_nats() {
                        progress = true;
                        self.hub.borrow_mut().submit(now, *me, out);
                    }
                    while let Some(e) = b.poll_event() {
                        self.events.push_back(Ev::Bridge(e));
                    }
                }
            }
            if !progress {
                break;
            }
        }
    }
}

impl SansIo for Node {
    type Event = Ev;

    fn handle_datagram(&mut self, now: Instant, from: SocketAddr, data: &[u8]) {
        self.ep.handle_datagram(now, from, data);
        self.pump(now);
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.ep.handle_timeout(now);
        match &mut self.role {
            Role::Member(m) => m.handle_timeout(&mut self.ep, now),
            Role::Sender(c) => c.handle_timeout(&mut self.ep, now),
            Role::Bridge(b, me) => {
                let inputs = self.hub.borrow_mut().due(*me, now);
                for input in inputs {
                    b.handle_nats(&mut self.ep, now, input);
                }
                b.handle_timeout(&mut self.ep, now);
            }
        }
        self.pump(now);
    }

    fn poll_transmit(&mut self, now: Instant) -> Option<Transmit> {
        self.ep.poll_transmit(now)
    }

    fn poll_event(&mut self) -> Option<Ev> {
        self.events.pop_front()
    }

    fn poll_timeout(&self) -> Option<Instant> {
        let role = match &self.role {
            Role::Member(m) => m.poll_timeout(),
            Role::Sender(c) => c.poll_timeout(),
            Role::Bridge(b, me) => b
                .poll_timeout()
                .into_iter()
                .chain(self.hub.borrow().next_for(*me))
                .min(),
        };
        self.ep.poll_timeout().into_iter().chain(role).min()
    }
}

/// Sites as partitions of one virtual network, and the hub.
struct World {
    net: Net<Node>,
    hub: Rc<RefCell<Hub>>,
    side: Vec<u8>,
    seed: u64,
}

impl World {
    fn new(seed: u64, link: Link) -> World {
        let hub = Rc::new(RefCell::new(Hub {
            delay: Duration::from_millis(2),
            ..Hub::default()
        }));
        let mut net = Net::new(seed, link);
        net.partition = Some(Vec::new());
        World {
            net,
            hub,
            side: Vec::new(),
            seed,
        }
    }

    fn endpoint(&self, base: Address) -> Endpoint {
        let i = self.net.nodes.len();
        let mut addr = base;
        addr.push("id", &format!("{}-1@127.0.0.1", 1000 + i))
            .unwrap();
        let config = endpoint_config(self.seed.wrapping_mul(1000).wrapping_add(i as u64));
        let wall = SystemTime::UNIX_EPOCH
            + Duration::from_secs(WALL)
            + self.net.now.duration_since(self.net.base);
        Endpoint::new(config, addr, self.net.now, wall).unwrap()
    }

    fn push(&mut self, site: u8, ep: Endpoint, role: Role) -> usize {
        self.side.push(site);
        self.net.partition = Some(self.side.clone());
        self.net.push(Node {
            ep,
            role,
            hub: Rc::clone(&self.hub),
            events: VecDeque::new(),
        })
    }

    fn member(&mut self, site: u8, id: &str, topics: &[&str]) -> usize {
        let ep = self.endpoint(Member::address(id).unwrap());
        let mut d = Description::new(id);
        d.topics = topics.iter().map(|t| t.to_string()).collect();
        d.started = LayerSet::ALL;
        let mut m = Member::new(d, MemberConfig::default(), self.seed + 31);
        m.set_executor(echo_executor());
        let i = self.push(site, ep, Role::Member(Box::new(m)));
        self.net.with(i, |n, now| {
            if let Role::Member(m) = &mut n.role {
                m.start(&mut n.ep, now);
            }
            n.pump(now);
        });
        i
    }

    fn sender(&mut self, site: u8) -> usize {
        let ep = self.endpoint(Address::parse("(app:cmbs module:publish)").unwrap());
        let client = Client::new(ClientConfig::default(), self.seed + 77);
        let i = self.push(site, ep, Role::Sender(Box::new(client)));
        self.net.with(i, |n, now| {
            if let Role::Sender(c) = &mut n.role {
                c.describe(&mut n.ep, now);
            }
            n.pump(now);
        });
        i
    }

    fn bridge(&mut self, site: u8, name: &str, epoch: u64) -> usize {
        let ep = self.endpoint(Bridge::address(name).unwrap());
        let b = Bridge::new(BridgeConfig::new(name), epoch, self.seed + 5);
        let me = self.hub.borrow_mut().join(b.subscriptions().to_vec());
        let i = self.push(site, ep, Role::Bridge(Box::new(b), me));
        self.net.with(i, |n, now| {
            if let Role::Bridge(b, _) = &mut n.role {
                b.start(&mut n.ep, now);
                b.handle_nats(&mut n.ep, now, NatsInput::Connection(true));
            }
            n.pump(now);
        });
        i
    }

    fn hub_index(&self, node: usize) -> usize {
        match &self.net.nodes[node].ep.role {
            Role::Bridge(_, me) => *me,
            _ => panic!("not a bridge"),
        }
    }

    /// Runs until `node`'s directory holds members `ids` (or, with
    /// `present` false, none of them).
    fn until_directory(
        &mut self,
        node: usize,
        ids: &[&str],
        present: bool,
        limit: Duration,
    ) -> bool {
        self.net.run_until_true(limit, |net| {
            let dir = net.nodes[node].ep.client().directory();
            ids.iter().all(|id| dir.get(id).is_some() == present)
        })
    }

    fn publish(&mut self, node: usize, message: Message) -> String {
        let base = self.net.base;
        self.net.with(node, |n, now| {
            let wall =
                SystemTime::UNIX_EPOCH + Duration::from_secs(WALL) + now.duration_since(base);
            let r = match &mut n.role {
                Role::Sender(c) => c.publish(&mut n.ep, now, wall, Publish::new(message)),
                Role::Member(m) => m.publish(&mut n.ep, now, wall, Publish::new(message)),
                Role::Bridge(..) => panic!("a bridge does not publish"),
            };
            n.pump(now);
            r.expect("sent")
        })
    }

    fn report(&mut self, node: usize, id: &str) -> Report {
        let found = |net: &Net<Node>| {
            net.nodes[node].events.iter().find_map(|(_, e)| match e {
                Ev::Cmbs(Event::Report(r)) if r.message == id => Some(r.clone()),
                _ => None,
            })
        };
        assert!(
            self.net
                .run_until_true(Duration::from_secs(15), |net| found(net).is_some()),
            "no report for {id}"
        );
        found(&self.net).unwrap()
    }

    fn received(&self, node: usize) -> Vec<Message> {
        self.net.events(node, |e| match e {
            Ev::Cmbs(Event::Received { message, .. }) => Some(message.clone()),
            _ => None,
        })
    }
}

fn message(id: &str, layer: Layer, content: serde_json::Value) -> Message {
    Message::new(id, layer, Content::Json(content))
}

fn lines(r: &Report) -> BTreeMap<String, (String, Option<String>)> {
    r.lines
        .iter()
        .map(|l| (l.member.clone(), (l.code().to_owned(), l.site.clone())))
        .collect()
}

/// Two sites: A with members a1 (topic t.x) and a2 and a sender, B with b1
/// (t.#) and b2; a bridge on each.
fn two_sites(seed: u64, link: Link) -> (World, [usize; 7]) {
    let mut w = World::new(seed, link);
    let a1 = w.member(0, "a1", &["t.x"]);
    let a2 = w.member(0, "a2", &[]);
    let sa = w.sender(0);
    let b1 = w.member(1, "b1", &["t.#"]);
    let b2 = w.member(1, "b2", &[]);
    let ba = w.bridge(0, "A", 1_000);
    let bb = w.bridge(1, "B", 2_000);
    assert!(
        w.until_directory(sa, &["a1", "a2", "b1", "b2"], true, Duration::from_secs(10)),
        "the sender learns both sites' members"
    );
    assert!(w.until_directory(b2, &["a1", "a2", "b1"], true, Duration::from_secs(10)));
    (w, [a1, a2, sa, b1, b2, ba, bb])
}

#[test]
fn members_of_two_sites_see_each_other_and_l1_l2_l32_cross_with_complete_reports() {
    sim::for_seeds(4, |seed| {
        let (mut w, [a1, _a2, sa, b1, b2, ba, bb]) = two_sites(seed, Link::perfect());
        // The remote entries carry their site and bridge.
        let e = w.net.nodes[sa]
            .ep
            .client()
            .directory()
            .get("b1")
            .cloned()
            .unwrap();
        let remote = e.description.remote.clone().expect("b1 is remote at A");
        assert_eq!(remote.site, "B");
        assert_eq!(remote.via, *w.net.nodes[ba].ep.ep.local_address());
        assert!(w.net.nodes[a1]
            .ep
            .client()
            .directory()
            .get("a2")
            .unwrap()
            .description
            .remote
            .is_none());
        assert_eq!(
            w.net.nodes[bb].ep.bridge().remote_members(),
            2,
            "B's bridge knows A's two members"
        );

        // L1 to a member of the other site: its result comes back.
        let mut m = message("l1", Layer::L1, serde_json::json!({"q": 1}));
        m.receiver = Some("b1".into());
        m.executable = true;
        let id = w.publish(sa, m);
        let r = w.report(sa, &id);
        assert_eq!(r.outcome, Outcome::Delivered, "{r:?}");
        assert_eq!(r.result(), Some(&serde_json::json!({"q": 1})));
        assert_eq!(lines(&r)["b1"], ("DELIVERED".into(), Some("B".into())));

        // L2: one line per member of both sites.
        let id = w.publish(sa, message("l2", Layer::L2, serde_json::json!(2)));
        let r = w.report(sa, &id);
        assert_eq!(r.outcome, Outcome::Delivered, "{r:?}");
        let l = lines(&r);
        assert_eq!(l.len(), 4, "{l:?}");
        assert_eq!(l["a1"], ("DELIVERED".into(), None));
        assert_eq!(l["b2"], ("DELIVERED".into(), Some("B".into())));

        // L3.2 from B's member: the subscribers of both sites.
        let mut m = message("l32", Layer::L32, serde_json::json!(3));
        m.topics = vec!["t.x".into()];
        let id = w.publish(b2, m);
        let r = w.report(b2, &id);
        let l = lines(&r);
        assert_eq!(l.keys().collect::<Vec<_>>(), ["a1", "b1"], "{l:?}");
        assert_eq!(r.outcome, Outcome::Delivered);
        assert_eq!(l["a1"].1.as_deref(), Some("A"));

        // Each member got each message once.
        let got: Vec<String> = w.received(b1).iter().map(|m| m.id.clone()).collect();
        assert_eq!(got, ["l1", "l2", "l32"]);
        let got: Vec<String> = w.received(a1).iter().map(|m| m.id.clone()).collect();
        assert_eq!(got, ["l2", "l32"]);
    });
}

#[test]
fn a_site_cut_off_leaves_every_directory_in_bounded_time_and_comes_back() {
    sim::for_seeds(4, |seed| {
        let (mut w, [_a1, _a2, sa, _b1, _b2, _ba, bb]) = two_sites(seed, Link::perfect());
        let hb = w.hub_index(bb);
        w.hub.borrow_mut().down[hb] = true;
        let cut = w.net.now;
        // A delivery to B meanwhile ends UNDELIVERABLE or TIMEOUT, never delivered.
        let mut m = message("cut", Layer::L1, serde_json::json!(0));
        m.receiver = Some("b1".into());
        let id = w.publish(sa, m);
        let r = w.report(sa, &id);
        assert!(
            matches!(r.outcome, Outcome::Refused | Outcome::TimedOut),
            "{r:?}"
        );
        assert!(!r.lines[0].is_delivered());
        assert!(w.until_directory(sa, &["b1", "b2"], false, Duration::from_secs(10)));
        let gone = w.net.now.duration_since(cut);
        let bound = BridgeConfig::new("A").site_timeout + Duration::from_secs(1);
        assert!(gone <= bound, "left after {gone:?}");
        // Healed: B is learnt again.
        w.hub.borrow_mut().down[hb] = false;
        assert!(w.until_directory(sa, &["b1", "b2"], true, Duration::from_secs(10)));
    });
}

#[test]
fn order_holds_and_nobody_gets_a_message_twice_across_a_lossy_bus() {
    sim::for_seeds(8, |seed| {
        let (mut w, [_a1, _a2, sa, b1, _b2, _ba, _bb]) = two_sites(seed, Link::lossy(0.05));
        let mut ids = Vec::new();
        for k in 0..60 {
            let mut m = message(&format!("m{k:03}"), Layer::L1, serde_json::json!(k));
            m.receiver = Some("b1".into());
            ids.push(w.publish(sa, m));
        }
        let mut delivered = 0;
        for id in &ids {
            let r = w.report(sa, id);
            assert!(r.lines.len() == 1);
            if r.lines[0].is_delivered() {
                delivered += 1;
            }
        }
        let got: Vec<String> = w.received(b1).iter().map(|m| m.id.clone()).collect();
        let mut unique = got.clone();
        unique.dedup();
        assert_eq!(unique, got, "nobody receives a message twice");
        let mut sorted = got.clone();
        sorted.sort();
        assert_eq!(sorted, got, "in send order");
        assert!(
            delivered <= got.len(),
            "delivered {delivered} > received {}",
            got.len()
        );
        assert!(
            delivered >= 55,
            "only {delivered} of 60 delivered at 5 % loss"
        );
    });
}

#[test]
fn a_second_bridge_for_a_site_stops_and_the_first_goes_on() {
    sim::for_seeds(4, |seed| {
        let (mut w, [_a1, _a2, sa, _b1, _b2, _ba, _bb]) = two_sites(seed, Link::perfect());
        let again = w.bridge(0, "A", 5_000);
        assert!(w.net.run_until_true(Duration::from_secs(5), |net| {
            net.nodes[again]
                .events
                .iter()
                .any(|(_, e)| matches!(e, Ev::Bridge(BridgeEvent::Yield { other: 1_000 })))
        }));
        assert!(!w.net.nodes[again].ep.bridge().is_active());
        // One whose clock is behind (a smaller epoch) stops too: while it
        // listens, whatever it hears of its site is already there.
        let behind = w.bridge(0, "A", 500);
        assert!(w.net.run_until_true(Duration::from_secs(5), |net| {
            net.nodes[behind]
                .events
                .iter()
                .any(|(_, e)| matches!(e, Ev::Bridge(BridgeEvent::Yield { other: 1_000 })))
        }));
        assert!(!w.net.nodes[behind].ep.bridge().is_active());
        // The site still works through the first.
        let mut m = message("after", Layer::L1, serde_json::json!(0));
        m.receiver = Some("b1".into());
        let id = w.publish(sa, m);
        assert_eq!(w.report(sa, &id).outcome, Outcome::Delivered);
    });
}

#[test]
fn a_retry_that_crosses_again_is_answered_from_memory() {
    sim::for_seeds(4, |seed| {
        let (mut w, [_a1, _a2, sa, b1, _b2, ba, _bb]) = two_sites(seed, Link::perfect());
        let mut m = message("once", Layer::L1, serde_json::json!(0));
        m.receiver = Some("b1".into());
        let id = w.publish(sa, m.clone());
        assert_eq!(w.report(sa, &id).outcome, Outcome::Delivered);
        // The same message id again (a sender's retry after a restart).
        w.net.nodes[sa].events.clear();
        let id = w.publish(sa, m);
        let r = w.report(sa, &id);
        assert_eq!(r.outcome, Outcome::Delivered, "{r:?}");
        assert_eq!(w.received(b1).len(), 1, "the member got it once");
        let _ = ba;
        let lines: Vec<_> = r
            .lines
            .iter()
            .map(|l| matches!(l.status, LineStatus::Delivered { .. }))
            .collect();
        assert_eq!(lines, [true]);
    });
}

#[test]
fn a_held_message_reaches_a_member_that_appears_at_another_site_during_the_hold() {
    sim::for_seeds(4, |seed| {
        let (mut w, [_a1, _a2, sa, _b1, _b2, _ba, _bb]) = two_sites(seed, Link::perfect());
        let mut m = message("held", Layer::L32, serde_json::json!("later"));
        m.topics = vec!["late.news".into()];
        let base = w.net.base;
        w.net.with(sa, |n, now| {
            let wall =
                SystemTime::UNIX_EPOCH + Duration::from_secs(WALL) + now.duration_since(base);
            let Role::Sender(c) = &mut n.role else {
                unreachable!()
            };
            let p = Publish {
                message: m,
                unreliable: false,
                hold: Some(Duration::from_secs(20)),
            };
            c.publish(&mut n.ep, now, wall, p).expect("held");
            n.pump(now);
        });
        w.net.run_for(Duration::from_secs(2));
        // A subscriber appears at site B.
        let b3 = w.member(1, "b3", &["late.#"]);
        assert!(w.net.run_until_true(Duration::from_secs(15), |net| {
            net.nodes[b3]
                .events
                .iter()
                .any(|(_, e)| matches!(e, Ev::Cmbs(Event::Received { message, .. }) if message.id == "held"))
        }), "the held message reached b3 at the other site");
        let line = w.net.run_until_true(Duration::from_secs(5), |net| {
            net.nodes[sa].events.iter().any(|(_, e)| {
                matches!(e, Ev::Cmbs(Event::Line { message, line }) if message == "held" && line.member == "b3" && line.is_delivered())
            })
        });
        assert!(line, "the sender hears b3's line");
    });
}

#[test]
fn bad_input_on_nats_is_dropped_and_counted_and_a_replay_is_answered_from_memory() {
    sim::for_seeds(2, |seed| {
        let (mut w, [_a1, _a2, sa, b1, _b2, _ba, bb]) = two_sites(seed, Link::perfect());
        let hb = w.hub_index(bb);
        let subjects = rmbus::cmbs::crossing::Subjects::default();
        let inject = |w: &mut World, subject: String, payload: Vec<u8>, reply: Option<&str>| {
            let now = w.net.now;
            w.hub.borrow_mut().push(
                hb,
                now,
                NatsInput::Message {
                    subject,
                    payload,
                    reply: reply.map(str::to_owned),
                },
            );
            w.net.run_for(Duration::from_millis(50));
        };
        let before = w.net.nodes[bb].ep.bridge().stats();
        inject(
            &mut w,
            subjects.deliver("B"),
            b"(((".to_vec(),
            Some("_INBOX.x"),
        );
        inject(
            &mut w,
            subjects.deliver("B"),
            vec![b'('; (1 << 20) + 1],
            Some("_INBOX.x"),
        );
        // A directory message that says it is another site's.
        let hb_other =
            rmbus::cmbs::crossing::Crossing::Heartbeat(rmbus::cmbs::crossing::Heartbeat {
                site: "Z".into(),
                epoch: 1,
                version: 1,
                members: 0,
            });
        inject(&mut w, subjects.dir("Y"), hb_other.to_bytes(), None);
        // A delivery without a reply subject.
        let mut m = message("r1", Layer::L1, serde_json::json!(1));
        m.receiver = Some("b1".into());
        let deliver = |m: &Message, member: &str| {
            rmbus::cmbs::crossing::Crossing::Deliver(Box::new(
                rmbus::cmbs::crossing::CrossDeliver {
                    origin: Address::parse("(app:forger id:1@h)").unwrap(),
                    relay: rmbus::cmbs::Relay {
                        message: m.clone(),
                        recipients: vec![rmbus::cmbs::Recipient {
                            member: member.into(),
                            order: rmbus::cmbs::Order { seq: 0, low: 0 },
                        }],
                        timeout: Duration::from_secs(2),
                    },
                },
            ))
            .to_bytes()
        };
        inject(&mut w, subjects.deliver("B"), deliver(&m, "b1"), None);
        let after = w.net.nodes[bb].ep.bridge().stats();
        assert_eq!(after.malformed - before.malformed, 4, "{after:?}");
        // For a member not on B's bus: answered UNDELIVERABLE, counted.
        inject(
            &mut w,
            subjects.deliver("B"),
            deliver(&m, "nobody"),
            Some("_INBOX.y"),
        );
        assert_eq!(w.net.nodes[bb].ep.bridge().stats().unknown_member, 1);
        assert!(w.received(b1).is_empty(), "nothing of that reached b1");
        // A real delivery, then its replay: the member has it once.
        let id = w.publish(sa, m.clone());
        assert_eq!(w.report(sa, &id).outcome, Outcome::Delivered);
        let replays = w.net.nodes[bb].ep.bridge().stats().replays;
        inject(
            &mut w,
            subjects.deliver("B"),
            deliver(&m, "b1"),
            Some("_INBOX.z"),
        );
        w.net.run_for(Duration::from_secs(1));
        assert_eq!(w.net.nodes[bb].ep.bridge().stats().replays, replays + 1);
        assert_eq!(w.received(b1).len(), 1, "a replay reaches no member twice");
        // Two different messages with the same place in one sender's
        // stream (a sender that numbered again), both waiting for earlier
        // ones: neither is lost.
        let numbered = |id: &str| {
            let mut m = message(id, Layer::L1, serde_json::json!(id));
            m.receiver = Some("b1".into());
            rmbus::cmbs::crossing::Crossing::Deliver(Box::new(
                rmbus::cmbs::crossing::CrossDeliver {
                    origin: Address::parse("(app:renumbered id:7@h)").unwrap(),
                    relay: rmbus::cmbs::Relay {
                        message: m,
                        recipients: vec![rmbus::cmbs::Recipient {
                            member: "b1".into(),
                            order: rmbus::cmbs::Order { seq: 5, low: 3 },
                        }],
                        timeout: Duration::from_secs(5),
                    },
                },
            ))
            .to_bytes()
        };
        inject(
            &mut w,
            subjects.deliver("B"),
            numbered("same-1"),
            Some("_INBOX.s1"),
        );
        inject(
            &mut w,
            subjects.deliver("B"),
            numbered("same-2"),
            Some("_INBOX.s2"),
        );
        w.net.run_for(Duration::from_secs(3));
        let got: Vec<String> = w.received(b1).iter().map(|m| m.id.clone()).collect();
        assert!(
            got.contains(&"same-1".to_owned()) && got.contains(&"same-2".to_owned()),
            "{got:?}"
        );
    });
}

#[test]
fn a_bridge_that_stops_answers_the_deliveries_it_carries_at_once() {
    sim::for_seeds(2, |seed| {
        let (mut w, [_a1, _a2, sa, _b1, _b2, ba, _bb]) = two_sites(seed, Link::perfect());
        // NATS is slow now: the crossing is under way when the bridge stops.
        w.hub.borrow_mut().delay = Duration::from_secs(10);
        let mut m = message("stopping", Layer::L1, serde_json::json!(0));
        m.receiver = Some("b1".into());
        let id = w.publish(sa, m);
        w.net.run_for(Duration::from_millis(100));
        let stopped = w.net.now;
        w.net.with(ba, |n, now| {
            if let Role::Bridge(b, _) = &mut n.role {
                b.stop(&mut n.ep, now);
            }
            n.pump(now);
        });
        let r = w.report(sa, &id);
        assert!(w.net.now.duration_since(stopped) < Duration::from_secs(1));
        let LineStatus::Refused(why) = &r.lines[0].status else {
            panic!("{r:?}");
        };
        assert!(why.reason.contains("stopped"), "{why:?}");
    });
}

#[test]
fn a_member_that_joins_later_learns_the_other_sites_members_from_its_bridge_at_once() {
    sim::for_seeds(4, |seed| {
        let (mut w, _) = two_sites(seed, Link::perfect());
        // Well after the bridge's first announces, long before its next
        // full one (every 10 s).
        w.net.run_for(Duration::from_secs(4));
        let a3 = w.member(0, "a3", &[]);
        let joined = w.net.now;
        assert!(w.until_directory(a3, &["b1", "b2"], true, Duration::from_secs(5)));
        let took = w.net.now.duration_since(joined);
        assert!(took < Duration::from_secs(2), "learnt after {took:?}");
    });
}
