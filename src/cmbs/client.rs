//! The part of CMBS every participant has, member or plain sender: the
//! directory and the outbox (deliveries in flight, their retries, reports
//! and held messages).
//!
//! A message goes to each recipient as its own `cmbs.message.deliver`
//! unicast RPC, sent reliably; many may be out at once. Each delivery
//! carries its number in this sender's stream to that recipient and the
//! lowest number still open ([`super::cmd::Order`]), and the recipient hands
//! them to its application in that order (see [`super::Member`]). A
//! delivery that is never acknowledged is retried, with the same message id
//! and number, until its timeout; so is one acknowledged whose answer has
//! not come within [`Client::answer_window`] (the answer, sent reliably,
//! may have been lost N_r times). The recipient answers a retry from
//! memory, or with the work still in progress, so its application sees the
//! message once. A delivery the sender
//! gave up on (`UNDELIVERABLE`), or one still missing after the recipient's
//! [`super::REORDER_WINDOW`], reaches the recipient out of order.

use std::collections::VecDeque;
use std::time::{Duration, Instant, SystemTime};

use crate::proto::maps::HashMap;
use crate::proto::{Deadlines, Delivery, Endpoint, Event as BusEvent, Rng};
use crate::rpc::{CallId, Outcome as CallOutcome, RpcEvent};
use crate::wire::{Address, Command, Value};

use super::cmd::{Announce, Deliver, DeliverAnswer, Describe, Leave, Order};
use super::code::{Code, Refusal};
use super::directory::{matches_member, Directory, Entry};
use super::event::Event;
use super::layer::Layer;
use super::message::Message;
use super::persist::{unix_ms, HeldRecord, StoreOp};
use super::relay::{
    Recipient, Relay, RelayAnswer, CROSSING_ALLOWANCE, MAX_RECIPIENTS, MAX_RELAY_BYTES,
};
use super::report::{Line, LineStatus, Outcome, Report};
use super::shared::{SharedDirectory, Stats};

pub use super::shared::{member_id_of, DISCOVERY_INTERVAL};

/// The address every member is under, and where announces go.
pub fn cmbs_group() -> Address {
    Address::new([("app", "cmbs")]).expect("a constant address")
}

/// Where an unreliable L2 message goes.
pub fn members_group() -> Address {
    Address::new([("app", "cmbs"), ("module", "member")]).expect("a constant address")
}

/// A sender's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientConfig {
    /// How long a delivery may take, retries included (2 s).
    pub delivery_timeout: Duration,
    /// Added for an executable message: the recipients' execute timeout (5 s).
    pub exec_allowance: Duration,
    /// Deliveries out at once (256): a message to more members waits for
    /// earlier deliveries to end, so a fan-out never floods the endpoint's
    /// queue or the sockets' buffers; each delivery's timeout runs from
    /// when it is sent.
    pub max_in_flight: usize,
}

impl Default for ClientConfig {
    fn default() -> ClientConfig {
        ClientConfig {
            delivery_timeout: Duration::from_secs(2),
            exec_allowance: Duration::from_secs(5),
            max_in_flight: 256,
        }
    }
}

/// What to send.
#[derive(Debug, Clone, PartialEq)]
pub struct Publish {
    /// The message (its id is chosen when empty).
    pub message: Message,
    /// L2 only: one unreliable multicast, no answers (`SENT_UNCONFIRMED`).
    pub unreliable: bool,
    /// Keep offering the message, for this long, to matching members that
    /// appear or come back.
    pub hold: Option<Duration>,
}

impl Publish {
    /// A message to send once, reliably, without a hold.
    pub fn new(message: Message) -> Publish {
        Publish {
            message,
            unreliable: false,
            hold: None,
        }
    }
}

#[derive(Debug)]
struct Outgoing {
    message: Message,
    /// The message as `cmbs.message.deliver` carries it, made once.
    map: Value,
    lines: Vec<Line>,
    /// Per line: the delivery's deadline and its number in the recipient's
    /// stream, while it is out.
    slots: Vec<Option<Slot>>,
    hold_until: Option<Instant>,
    until_unix_ms: u64,
    /// Sent with a hold: each line is reported as it settles.
    held: bool,
    /// Lines of members that were undescribed when it was sent and turned
    /// out not to be recipients: left out of the report.
    not_recipients: std::collections::BTreeSet<usize>,
    /// Lines of members of other sites ready to go, gathered so that each
    /// bridge gets one delivery naming its recipients.
    to_relay: Vec<usize>,
    /// The delivery timeout, when not the client's
    /// ([`Client::deliver_to`]).
    timeout: Option<Duration>,
}

/// A delivery that is out.
#[derive(Debug, Clone)]
struct Slot {
    deadline: Instant,
    seq: u64,
    /// For a member of another site: the bridge it goes through.
    via: Option<Address>,
}

/// A matching member, as `offer` needs it.
struct Target<'a> {
    member: &'a str,
    address: &'a Address,
    started: bool,
    /// A member of another site: its site and bridge.
    remote: Option<(&'a str, &'a Address)>,
}

impl<'a> Target<'a> {
    fn of(entry: &'a Entry, layer: Layer) -> Target<'a> {
        Target {
            member: &entry.description.id,
            address: &entry.address,
            started: entry.description.started.contains(layer),
            remote: entry
                .description
                .remote
                .as_ref()
                .map(|r| (r.site.as_str(), &r.via)),
        }
    }
}

/// Our deliveries to one recipient: the next number, and those not settled.
#[derive(Debug, Default)]
struct SendStream {
    next: u64,
    open: std::collections::BTreeSet<u64>,
}

/// The directory and the outbox of one participant.
#[derive(Debug)]
pub struct Client {
    config: ClientConfig,
    me: Option<String>,
    persist_held: bool,
    /// Its own directory, or (hosted) the host's while it is lent.
    dir: Option<Box<SharedDirectory>>,
    /// True if the directory is the host's ([`Client::make_hosted`]).
    hosted: bool,
    /// Messages not reported yet, by our own number (in sending order).
    outgoing: std::collections::BTreeMap<u64, Outgoing>,
    next_outgoing: u64,
    /// Each delivery out: its message's number and its line.
    calls: HashMap<CallId, (u64, usize)>,
    /// Each delivery out through a bridge: its message's number and lines.
    relays: HashMap<CallId, (u64, Vec<usize>)>,
    /// Deliveries waiting for room among those out ([`ClientConfig::max_in_flight`]):
    /// message number and line, in the order they were offered.
    queued: VecDeque<(u64, usize)>,
    /// Per recipient: the numbering of our deliveries to it.
    streams: HashMap<String, SendStream>,
    holds: Deadlines<u64>,
    events: VecDeque<Event>,
    store_ops: Vec<StoreOp>,
    rng: Rng,
}

/// What a hosted client sees of the directory while the host's is not lent.
static NO_DIRECTORY: std::sync::LazyLock<SharedDirectory> =
    std::sync::LazyLock::new(SharedDirectory::default);

impl Client {
    /// A participant that is not a member (`rmbus publish`), with the seed of
    /// its message ids.
    pub fn new(config: ClientConfig, seed: u64) -> Client {
        let asks_per_round = config.max_in_flight;
        Client {
            config,
            me: None,
            persist_held: false,
            dir: Some(Box::new(SharedDirectory::new(asks_per_round))),
            hosted: false,
            outgoing: Default::default(),
            next_outgoing: 0,
            calls: HashMap::default(),
            relays: HashMap::default(),
            queued: VecDeque::new(),
            streams: HashMap::default(),
            holds: Deadlines::default(),
            events: VecDeque::new(),
            store_ops: Vec::new(),
            rng: Rng::new(seed),
        }
    }

    /// Makes this the client of a hosted participant: the directory is the
    /// host's, kept once for all its participants and lent to this one
    /// while it acts ([`Client::attach`]); the host feeds it announces and
    /// the entity table's changes, and tells this client of new
    /// descriptions ([`Client::on_described`]) while it has messages open.
    pub(crate) fn make_hosted(&mut self) {
        self.hosted = true;
        self.dir = None;
    }

    /// True if the directory is the host's.
    pub fn is_hosted(&self) -> bool {
        self.hosted
    }

    /// Lends the host's directory to this hosted client.
    pub(crate) fn attach(&mut self, dir: Box<SharedDirectory>) {
        debug_assert!(self.hosted && self.dir.is_none());
        self.dir = Some(dir);
    }

    /// Takes the host's directory back from this hosted client.
    pub(crate) fn detach(&mut self) -> Option<Box<SharedDirectory>> {
        if self.hosted {
            self.dir.take()
        } else {
            None
        }
    }

    /// The directory this client resolves recipients in.
    fn dir(&self) -> &SharedDirectory {
        self.dir.as_deref().unwrap_or(&NO_DIRECTORY)
    }

    /// Moves what its own directory reported to this client's events.
    fn pull_directory_events(&mut self) {
        if self.hosted {
            return;
        }
        if let Some(dir) = self.dir.as_deref_mut() {
            while let Some(e) = dir.poll_event() {
                self.events.push_back(e);
            }
        }
    }

    /// Makes this the client of member `id` (never its own recipient); with
    /// `persist_held`, held messages are written to its store.
    pub(crate) fn for_member(&mut self, id: &str, persist_held: bool) {
        self.me = Some(id.to_owned());
        self.persist_held = persist_held;
    }

    /// The members this participant knows (for a hosted one, only while
    /// the host's directory is lent to it; see the host's own).
    pub fn directory(&self) -> &Directory {
        self.dir().directory()
    }

    /// What was dropped.
    pub fn stats(&self) -> Stats {
        self.dir().stats()
    }

    /// The member entities on the bus whose description has not reached
    /// us (id and address): they cannot be told apart from recipients yet.
    pub fn undescribed(&self) -> impl Iterator<Item = (&str, &Address)> + '_ {
        self.dir()
            .undescribed()
            .filter(|(id, _)| Some(*id) != self.me.as_deref())
    }

    /// True when every member entity heard has described itself: the
    /// directory is as complete as what the endpoint knows.
    pub fn settled(&self) -> bool {
        self.undescribed().next().is_none()
    }

    /// Messages sent and not reported yet.
    pub fn open_messages(&self) -> usize {
        self.outgoing.len()
    }

    /// A fresh message id: a UUID from the seeded generator.
    pub fn new_message_id(&mut self) -> String {
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&self.rng.next_u64().to_le_bytes());
        bytes[8..].copy_from_slice(&self.rng.next_u64().to_le_bytes());
        uuid::Builder::from_random_bytes(bytes)
            .into_uuid()
            .to_string()
    }

    /// Asks every member on the bus to announce itself.
    pub fn describe(&mut self, ep: &mut Endpoint, now: Instant) {
        let _ = ep.send(
            now,
            &cmbs_group(),
            vec![Describe.into_command()],
            Delivery::Unreliable,
        );
    }

    /// Sends a message: its id, or the report of why it was not sent (every
    /// check the sender can make comes before anything is sent). `wall` is
    /// the wall-clock time, for a held message's record.
    pub fn publish(
        &mut self,
        ep: &mut Endpoint,
        now: Instant,
        wall: SystemTime,
        publish: Publish,
    ) -> Result<String, Box<Report>> {
        let Publish {
            mut message,
            unreliable,
            hold,
        } = publish;
        if message.id.is_empty() {
            message.id = self.new_message_id();
        }
        let reject = |message: &Message, lines: Vec<Line>, refusal: Refusal| {
            Box::new(Report {
                message: message.id.clone(),
                layer: message.layer,
                lines,
                outcome: Outcome::Rejected(refusal),
            })
        };
        if let Err(r) = message.check_targets() {
            return Err(reject(&message, Vec::new(), r));
        }
        let map = message.to_value();
        if let Err(r) = super::message::check_size(&map) {
            return Err(reject(&message, Vec::new(), r));
        }
        if unreliable {
            if message.layer != Layer::L2 || hold.is_some() {
                let r = Refusal::new(
                    Code::NotSendable,
                    "unreliable is an L2 option, without a hold",
                );
                return Err(reject(&message, Vec::new(), r));
            }
            let cmd = Command::new(Deliver::NAME, Deliver::args(map, None));
            if let Err(e) = ep.send(now, &members_group(), vec![cmd], Delivery::Unreliable) {
                return Err(reject(
                    &message,
                    Vec::new(),
                    Refusal::new(Code::TooLarge, e.to_string()),
                ));
            }
            self.events.push_back(Event::Report(Report {
                message: message.id.clone(),
                layer: message.layer,
                lines: Vec::new(),
                outcome: Outcome::SentUnconfirmed,
            }));
            return Ok(message.id);
        }
        if message.layer == Layer::L1 && hold.is_none() {
            let name = message.receiver.as_deref().unwrap_or_default();
            let named = self.directory().named(name);
            if named.is_none_or(|e| Some(&e.description.id) == self.me.as_ref()) {
                let r = match self.dir().heard(name) {
                    Some(_) => Refusal::new(
                        Code::Undescribed,
                        format!(
                            "member {name} is on the bus, but its description has not reached us"
                        ),
                    ),
                    None => Refusal::new(
                        Code::UnknownMember,
                        format!("no member in the directory has the id or l1_socket {name:?}"),
                    ),
                };
                return Err(reject(&message, Vec::new(), r));
            }
        }
        let id = message.id.clone();
        let until_unix_ms = hold
            .map(|h| unix_ms(wall).saturating_add(h.as_millis() as u64))
            .unwrap_or(0);
        let mut out = Outgoing {
            map,
            message,
            lines: Vec::new(),
            slots: Vec::new(),
            hold_until: hold.map(|h| now + h),
            until_unix_ms,
            held: hold.is_some(),
            not_recipients: Default::default(),
            to_relay: Vec::new(),
            timeout: None,
        };
        let key = self.next_outgoing;
        self.next_outgoing += 1;
        let dir = self.dir.take();
        let layer = out.message.layer;
        if let Some(dir) = dir.as_deref() {
            let matched: Vec<&Entry> = dir
                .directory()
                .matching(&out.message)
                .filter(|e| Some(&e.description.id) != self.me.as_ref())
                .collect();
            for e in matched {
                self.offer(ep, now, key, &mut out, Target::of(e, layer));
            }
        }
        self.dir = dir;
        self.send_relays(ep, now, key, &mut out);
        if layer != Layer::L1 {
            // A member whose description we lack may be a recipient: a line
            // that says so, never a silent absence (a held message offers
            // itself once the description comes).
            let undescribed: Vec<(String, Address)> = self
                .undescribed()
                .map(|(id, a)| (id.to_owned(), a.clone()))
                .collect();
            for (member, address) in undescribed {
                out.lines.push(Line {
                    member,
                    address,
                    site: None,
                    sent: true,
                    status: LineStatus::Refused(Refusal::new(
                        Code::Undescribed,
                        "its entity is on the bus, but its description never reached us",
                    )),
                });
                out.slots.push(None);
            }
        }
        if hold.is_none() && !out.lines.iter().any(|l| l.sent) {
            let lines = std::mem::take(&mut out.lines);
            let refusal = match Report::outcome_of(&lines) {
                Outcome::Rejected(r) => r,
                _ => Refusal::new(Code::NoRecipient, "no member matches"),
            };
            return Err(reject(&out.message, lines, refusal));
        }
        if let Some(until) = out.hold_until {
            self.holds.set(key, until);
            self.persist(&out);
        }
        self.outgoing.insert(key, out);
        self.settle(key);
        Ok(id)
    }

    /// Sends `message` to member `member` of this link alone, whatever its
    /// layer's matching, within `timeout` (retries included): what a bridge
    /// does for a sender of another site. It goes as a delivery of
    /// [`Client::publish`] does (its number in this client's stream to the
    /// member, retries, the member's answer), and its report comes as an
    /// [`Event::Report`] with one line. `Err` if the directory has no such
    /// member on this link.
    pub fn deliver_to(
        &mut self,
        ep: &mut Endpoint,
        now: Instant,
        message: Message,
        member: &str,
        timeout: Duration,
    ) -> Result<(), Refusal> {
        let key = self.next_outgoing;
        let mut out = Outgoing {
            map: message.to_value(),
            message,
            lines: Vec::new(),
            slots: Vec::new(),
            hold_until: None,
            until_unix_ms: 0,
            held: false,
            not_recipients: Default::default(),
            to_relay: Vec::new(),
            timeout: Some(timeout),
        };
        let dir = self.dir.take();
        let entry = dir
            .as_deref()
            .and_then(|d| d.directory().get(member))
            .filter(|e| e.description.remote.is_none());
        let found = entry.is_some();
        if let Some(e) = entry {
            self.next_outgoing += 1;
            let target = Target::of(e, out.message.layer);
            self.offer(ep, now, key, &mut out, target);
        }
        self.dir = dir;
        if !found {
            return Err(Refusal::new(
                Code::Undeliverable,
                format!("member {member} is not on this bus"),
            ));
        }
        self.outgoing.insert(key, out);
        self.settle(key);
        Ok(())
    }

    /// Offers message `key` (`out`) to a matching member: a line without a
    /// send when its layer is stopped, else a delivery.
    fn offer(
        &mut self,
        ep: &mut Endpoint,
        now: Instant,
        key: u64,
        out: &mut Outgoing,
        t: Target<'_>,
    ) {
        let at = match out.lines.iter().position(|l| l.member == t.member) {
            Some(i) => {
                out.lines[i].address = t.address.clone();
                out.lines[i].site = t.remote.map(|(site, _)| site.to_owned());
                // A member left out earlier that matches now is reported.
                out.not_recipients.remove(&i);
                i
            }
            None => {
                out.lines.push(Line {
                    member: t.member.to_owned(),
                    address: t.address.clone(),
                    site: None,
                    sent: false,
                    status: LineStatus::Pending,
                });
                out.slots.push(None);
                let at = out.lines.len() - 1;
                out.lines[at].site = t.remote.map(|(site, _)| site.to_owned());
                at
            }
        };
        if !t.started {
            out.lines[at].sent = false;
            out.lines[at].status = LineStatus::Refused(Refusal::new(
                Code::LayerStopped,
                format!("the directory shows {} stopped on it", out.message.layer),
            ));
            return;
        }
        let stream = self.streams.entry(t.member.to_owned()).or_default();
        let seq = stream.next;
        stream.next += 1;
        stream.open.insert(seq);
        out.slots[at] = Some(Slot {
            deadline: now,
            seq,
            via: t.remote.map(|(_, via)| via.clone()),
        });
        out.lines[at].sent = true;
        out.lines[at].status = LineStatus::Pending;
        if self.in_flight() >= self.config.max_in_flight.max(1) {
            // Its number holds its place in the recipient's order; its
            // time starts when it goes.
            self.queued.push_back((key, at));
            return;
        }
        self.send_line(ep, now, key, out, at);
    }

    /// Sends line `at` of message `key` (`out`), its timeout from now.
    fn send_line(
        &mut self,
        ep: &mut Endpoint,
        now: Instant,
        key: u64,
        out: &mut Outgoing,
        at: usize,
    ) {
        let Some(slot) = out.slots[at].as_mut() else {
            return;
        };
        let mut timeout = self.config.delivery_timeout;
        if out.message.executable {
            timeout += self.config.exec_allowance;
        }
        let timeout = out.timeout.unwrap_or(timeout);
        if slot.via.is_some() {
            // Through a bridge: gathered, and sent with the others for the
            // same bridge ([`Client::send_relays`]).
            slot.deadline = now + timeout + CROSSING_ALLOWANCE;
            out.to_relay.push(at);
            return;
        }
        slot.deadline = now + timeout;
        let seq = slot.seq;
        let member = out.lines[at].member.clone();
        let address = out.lines[at].address.clone();
        let window = self.answer_window(ep, &out.message);
        let sent = self.attempt(
            ep,
            now,
            (key, at),
            &out.map,
            &member,
            &address,
            timeout.min(window),
            seq,
        );
        if let Err(refusal) = sent {
            out.slots[at] = None;
            self.settled_seq(&member, seq);
            out.lines[at].status = LineStatus::Refused(refusal);
        }
        if out.held && out.lines[at].is_settled() {
            self.events.push_back(Event::Line {
                message: out.message.id.clone(),
                line: out.lines[at].clone(),
            });
        }
    }

    /// Deliveries out now: calls to members and to bridges.
    fn in_flight(&self) -> usize {
        self.calls.len() + self.relays.len()
    }

    /// Sends queued deliveries while there is room among those out.
    fn send_queued(&mut self, ep: &mut Endpoint, now: Instant) {
        while self.in_flight() < self.config.max_in_flight.max(1) {
            let Some((key, at)) = self.queued.pop_front() else {
                return;
            };
            let Some(mut out) = self.outgoing.remove(&key) else {
                continue;
            };
            let waiting = out.slots.get(at).is_some_and(Option::is_some)
                && matches!(out.lines[at].status, LineStatus::Pending);
            if waiting {
                self.send_line(ep, now, key, &mut out, at);
                self.send_relays(ep, now, key, &mut out);
            }
            self.outgoing.insert(key, out);
            self.settle(key);
        }
    }

    /// How long one delivery attempt waits for its answer before it is
    /// made again (within the delivery's timeout): the retransmit window
    /// twice (the request's transmissions, then the answer's; RFC 3259 §7),
    /// plus the execute allowance for an executable message.
    pub fn answer_window(&self, ep: &Endpoint, message: &Message) -> Duration {
        let mut window = ep.retransmit_window() * 2;
        if message.executable {
            window += self.config.exec_allowance;
        }
        window
    }

    /// Deliveries out now, and waiting for room.
    pub fn deliveries(&self) -> (usize, usize) {
        (self.in_flight(), self.queued.len())
    }

    /// Delivery `seq` to `member` settled: it no longer holds back the
    /// recipient's order.
    fn settled_seq(&mut self, member: &str, seq: u64) {
        if let Some(s) = self.streams.get_mut(member) {
            s.open.remove(&seq);
        }
    }

    /// One delivery attempt for line `line` of message `key`: delivery `seq`
    /// of our stream to `member`, from the message's map (`map`, made once
    /// for all recipients).
    #[allow(clippy::too_many_arguments)]
    fn attempt(
        &mut self,
        ep: &mut Endpoint,
        now: Instant,
        line: (u64, usize),
        map: &Value,
        member: &str,
        address: &Address,
        timeout: Duration,
        seq: u64,
    ) -> Result<(), Refusal> {
        let args = Deliver::args(map.clone(), Some(self.order_of(member, seq)));
        let call = self
            .call_deliver(ep, now, address, args, timeout)
            .map_err(|e| Refusal::new(Code::Undeliverable, format!("not sent: {e}")))?;
        self.calls.insert(call, line);
        Ok(())
    }

    /// Delivery `seq` of our stream to `member`, with the lowest number of
    /// that stream still open.
    fn order_of(&self, member: &str, seq: u64) -> Order {
        let low = self
            .streams
            .get(member)
            .and_then(|s| s.open.first().copied())
            .unwrap_or(seq)
            .min(seq);
        Order { seq, low }
    }

    /// Calls `cmbs.message.deliver` at `dst` (a member or a bridge). A
    /// hosted participant's directory learns the host's own members before
    /// their hellos come back: the call waits for such an entity, within its
    /// timeout. A lone client's directory follows its table.
    fn call_deliver(
        &self,
        ep: &mut Endpoint,
        now: Instant,
        dst: &Address,
        args: Vec<Value>,
        timeout: Duration,
    ) -> Result<CallId, crate::proto::SendError> {
        let mut rpc = ep.rpc();
        match self.hosted {
            true => rpc.call_within(now, dst, Deliver::NAME, args, timeout),
            false => rpc.call(now, dst, Deliver::NAME, args, timeout),
        }
    }

    /// Takes the endpoint events CMBS consumes (announces, describes from
    /// plain senders, the returns of our deliveries, members joining and
    /// leaving); every other event comes back.
    pub fn handle_event(
        &mut self,
        ep: &mut Endpoint,
        now: Instant,
        event: BusEvent,
    ) -> Option<BusEvent> {
        match event {
            BusEvent::Command { src, command, .. }
                if command.name == Announce::NAME && !self.hosted =>
            {
                self.on_announce(ep, now, src, &command);
                None
            }
            BusEvent::Command { src, command, .. }
                if command.name == Leave::NAME && !self.hosted =>
            {
                if let Some(d) = self.dir.as_deref_mut() {
                    d.on_leave(&src, &command);
                }
                self.pull_directory_events();
                None
            }
            BusEvent::Rpc(RpcEvent::Returned {
                call,
                callee,
                outcome,
            }) if self.calls.contains_key(&call) => {
                self.on_returned(ep, now, call, &callee, outcome);
                None
            }
            BusEvent::Rpc(RpcEvent::Returned {
                call,
                callee,
                outcome,
            }) if self.relays.contains_key(&call) => {
                self.on_relay_returned(ep, now, call, &callee, outcome);
                None
            }
            BusEvent::PeerJoined(addr) if !self.hosted => {
                let ask = self
                    .dir
                    .as_deref_mut()
                    .is_some_and(|d| d.on_joined(now, &addr));
                if ask && member_id_of(&addr) != self.me.as_deref() {
                    // We may have missed its announce: ask it, reliably
                    // (it answers reliably), and again until it answers.
                    ask_to_describe(ep, now, &addr);
                }
                Some(BusEvent::PeerJoined(addr))
            }
            BusEvent::PeerLeft { addr, reason } if !self.hosted => {
                if let Some(d) = self.dir.as_deref_mut() {
                    d.on_left(&addr, reason);
                }
                self.pull_directory_events();
                Some(BusEvent::PeerLeft { addr, reason })
            }
            other => Some(other),
        }
    }

    fn on_announce(&mut self, ep: &mut Endpoint, now: Instant, src: Address, command: &Command) {
        if self.me.is_some() && member_id_of(&src) == self.me.as_deref() {
            // Its own announce, looped back.
            return;
        }
        let Some(dir) = self.dir.as_deref_mut() else {
            return;
        };
        let Some(entry) = dir.on_announce(src, command) else {
            return;
        };
        self.pull_directory_events();
        self.on_described(ep, now, &entry);
    }

    /// `entry` is new or changed in the directory: the open messages it
    /// concerns offer themselves to it (a held message it matches, a line
    /// that waited for its description). The host calls it for a hosted
    /// client with messages open ([`Client::open_messages`]).
    pub fn on_described(&mut self, ep: &mut Endpoint, now: Instant, entry: &Entry) {
        if Some(&entry.description.id) == self.me.as_ref() || self.outgoing.is_empty() {
            return;
        }
        self.described(ep, now, entry);
        self.offer_held(ep, now, entry);
    }

    /// `entry` described itself: every open message with an `UNDESCRIBED`
    /// line for it either offers itself to it now (it matches) or leaves
    /// it out of its report (it does not).
    fn described(&mut self, ep: &mut Endpoint, now: Instant, entry: &Entry) {
        let id = entry.description.id.as_str();
        let undescribed = |o: &Outgoing| {
            o.lines.iter().enumerate().position(|(i, l)| {
                l.member == id
                    && !o.not_recipients.contains(&i)
                    && matches!(&l.status, LineStatus::Refused(r) if r.code == Code::Undescribed)
            })
        };
        let keys: Vec<u64> = self
            .outgoing
            .iter()
            .filter(|(_, o)| undescribed(o).is_some())
            .map(|(k, _)| *k)
            .collect();
        for key in keys {
            let Some(mut out) = self.outgoing.remove(&key) else {
                continue;
            };
            if let Some(at) = undescribed(&out) {
                if matches_member(&entry.description, &out.message, None) {
                    let target = Target::of(entry, out.message.layer);
                    self.offer(ep, now, key, &mut out, target);
                    self.send_relays(ep, now, key, &mut out);
                } else {
                    out.not_recipients.insert(at);
                }
            }
            self.outgoing.insert(key, out);
            self.settle(key);
        }
    }

    /// Offers every held message `entry` matches and does not have yet.
    fn offer_held(&mut self, ep: &mut Endpoint, now: Instant, entry: &Entry) {
        let keys: Vec<u64> = self
            .outgoing
            .iter()
            .filter(|(_, o)| o.hold_until.is_some_and(|t| t > now))
            .filter(|(_, o)| {
                let l1 = match (o.message.layer, &o.message.receiver) {
                    (Layer::L1, Some(name)) => entry.description.is_named(name).then_some(()),
                    _ => None,
                };
                let l1 = l1.map(|()| entry.description.id.as_str());
                matches_member(&entry.description, &o.message, l1)
            })
            .filter(
                |(_, o)| match o.lines.iter().find(|l| l.member == entry.description.id) {
                    None => true,
                    Some(l) => match &l.status {
                        LineStatus::Refused(r) => r.code.may_change(),
                        _ => false,
                    },
                },
            )
            .map(|(k, _)| *k)
            .collect();
        for key in keys {
            let Some(mut out) = self.outgoing.remove(&key) else {
                continue;
            };
            let target = Target::of(entry, out.message.layer);
            self.offer(ep, now, key, &mut out, target);
            self.send_relays(ep, now, key, &mut out);
            self.outgoing.insert(key, out);
            self.settle(key);
        }
    }

    fn on_returned(
        &mut self,
        ep: &mut Endpoint,
        now: Instant,
        call: CallId,
        callee: &Address,
        outcome: CallOutcome,
    ) {
        let Some((key, at)) = self.calls.remove(&call) else {
            return;
        };
        let Some(mut out) = self.outgoing.remove(&key) else {
            self.send_queued(ep, now);
            return;
        };
        let Some(slot) = out.slots.get(at).cloned().flatten() else {
            self.outgoing.insert(key, out);
            self.send_queued(ep, now);
            return;
        };
        let member = out.lines[at].member.clone();
        let status = match outcome {
            CallOutcome::Returned(reply) => match DeliverAnswer::from_reply(&reply) {
                DeliverAnswer::Delivered { result } => LineStatus::Delivered { result },
                DeliverAnswer::Refused(r) => LineStatus::Refused(r),
            },
            CallOutcome::Unknown => LineStatus::Refused(Refusal::new(
                Code::UnknownMember,
                "that entity does not serve cmbs.message.deliver: it is no member",
            )),
            CallOutcome::Undeliverable | CallOutcome::TimedOut
                // A retry (of an unacknowledged attempt, or of one whose
                // answer did not come in its window) only while a whole
                // attempt still fits, so that an unacknowledged last one
                // ends UNDELIVERABLE, not TIMEOUT.
                if slot.deadline.saturating_duration_since(now) > ep.retransmit_window() =>
            {
                let remaining = (slot.deadline - now).min(self.answer_window(ep, &out.message));
                let line = (key, at);
                match self.attempt(
                    ep, now, line, &out.map, &member, callee, remaining, slot.seq,
                ) {
                    Ok(()) => LineStatus::Pending,
                    Err(r) => LineStatus::Refused(r),
                }
            }
            CallOutcome::Undeliverable => LineStatus::Refused(Refusal::new(
                Code::Undeliverable,
                "never acknowledged (it may have arrived)",
            )),
            CallOutcome::TimedOut => LineStatus::Refused(Refusal::new(
                Code::Timeout,
                "acknowledged, but no answer in time",
            )),
            CallOutcome::CalleeLeft => LineStatus::Refused(Refusal::new(
                Code::Undeliverable,
                "the member left before it answered (it may have arrived)",
            )),
            other => LineStatus::Refused(Refusal::new(
                Code::Undeliverable,
                format!("the call ended {}", other.code()),
            )),
        };
        self.set_status(&mut out, at, status);
        self.outgoing.insert(key, out);
        self.settle(key);
        self.send_queued(ep, now);
    }

    /// Line `at` of `out` now stands at `status`: once settled, its number
    /// no longer holds back the recipient's order, a delivered line of a
    /// held message is kept, and a held message says how the line went.
    fn set_status(&mut self, out: &mut Outgoing, at: usize, status: LineStatus) {
        out.lines[at].status = status;
        if !out.lines[at].is_settled() {
            return;
        }
        if let Some(slot) = out.slots[at].take() {
            let member = out.lines[at].member.clone();
            self.settled_seq(&member, slot.seq);
        }
        if out.lines[at].is_delivered() && out.hold_until.is_some() {
            self.persist(out);
        }
        if out.held {
            self.events.push_back(Event::Line {
                message: out.message.id.clone(),
                line: out.lines[at].clone(),
            });
        }
    }

    /// Sends the lines of message `key` gathered for bridges: one delivery
    /// per bridge, naming its recipients.
    fn send_relays(&mut self, ep: &mut Endpoint, now: Instant, key: u64, out: &mut Outgoing) {
        if out.to_relay.is_empty() {
            return;
        }
        let mut by_via: Vec<(Address, Vec<usize>)> = Vec::new();
        for at in std::mem::take(&mut out.to_relay) {
            let Some(via) = out.slots[at].as_ref().and_then(|s| s.via.clone()) else {
                continue;
            };
            match by_via.iter_mut().find(|(v, _)| *v == via) {
                Some((_, lines)) => lines.push(at),
                None => by_via.push((via, vec![at])),
            }
        }
        // Each relay, and its answer, fits a datagram.
        let room = MAX_RELAY_BYTES.saturating_sub(out.map.encoded_len() + 64);
        for (via, lines) in by_via {
            let mut chunk: Vec<usize> = Vec::new();
            let mut bytes = 0;
            // An executable message's answers carry results (each up to
            // what a member's answer holds): one recipient per relay.
            let most = if out.message.executable {
                1
            } else {
                MAX_RECIPIENTS
            };
            for at in lines {
                let len = out.lines[at].member.len() + 48;
                if !chunk.is_empty() && (chunk.len() >= most || bytes + len > room) {
                    self.relay(ep, now, key, out, &via, std::mem::take(&mut chunk));
                    bytes = 0;
                }
                bytes += len;
                chunk.push(at);
            }
            if !chunk.is_empty() {
                self.relay(ep, now, key, out, &via, chunk);
            }
        }
    }

    /// One delivery to the bridge at `via` for lines `lines` of message
    /// `key`, within what is left of their time.
    fn relay(
        &mut self,
        ep: &mut Endpoint,
        now: Instant,
        key: u64,
        out: &mut Outgoing,
        via: &Address,
        lines: Vec<usize>,
    ) {
        let deadline = lines
            .iter()
            .filter_map(|at| out.slots[*at].as_ref().map(|s| s.deadline))
            .min()
            .unwrap_or(now);
        let remaining = deadline.saturating_duration_since(now);
        let recipients: Vec<Recipient> = lines
            .iter()
            .filter_map(|at| {
                let member = &out.lines[*at].member;
                Some(Recipient {
                    member: member.clone(),
                    order: self.order_of(member, out.slots[*at].as_ref()?.seq),
                })
            })
            .collect();
        let far_side = remaining.saturating_sub(CROSSING_ALLOWANCE);
        let args = Relay::args(out.map.clone(), &recipients, far_side);
        match self.call_deliver(ep, now, via, args, remaining) {
            Ok(call) => {
                self.relays.insert(call, (key, lines));
            }
            Err(e) => {
                for at in lines {
                    let r =
                        Refusal::new(Code::Undeliverable, format!("not sent to the bridge: {e}"));
                    self.set_status(out, at, LineStatus::Refused(r));
                }
            }
        }
    }

    fn on_relay_returned(
        &mut self,
        ep: &mut Endpoint,
        now: Instant,
        call: CallId,
        callee: &Address,
        outcome: CallOutcome,
    ) {
        let Some((key, lines)) = self.relays.remove(&call) else {
            return;
        };
        let Some(mut out) = self.outgoing.remove(&key) else {
            self.send_queued(ep, now);
            return;
        };
        let lines: Vec<usize> = lines
            .into_iter()
            .filter(|at| {
                out.slots.get(*at).is_some_and(Option::is_some)
                    && matches!(out.lines[*at].status, LineStatus::Pending)
            })
            .collect();
        let deadline = lines
            .iter()
            .filter_map(|at| out.slots[*at].as_ref().map(|s| s.deadline))
            .min();
        let left = deadline.map_or(Duration::ZERO, |d| d.saturating_duration_since(now));
        // Each member's own answer, or one refusal for every line.
        let every = |code, why: String| Err(Refusal::new(code, why));
        let answered: Result<RelayAnswer, Refusal> = match outcome {
            CallOutcome::Returned(reply) => {
                RelayAnswer::from_reply(&reply).map_err(|e| Refusal::new(Code::Malformed, e))
            }
            CallOutcome::Undeliverable if left > ep.retransmit_window() => {
                // Never acknowledged by the bridge, and a whole attempt
                // still fits: again, with the same numbers.
                self.relay(ep, now, key, &mut out, callee, lines);
                self.outgoing.insert(key, out);
                self.settle(key);
                self.send_queued(ep, now);
                return;
            }
            CallOutcome::Undeliverable => every(
                Code::Undeliverable,
                "the bridge never acknowledged it (it may have crossed)".into(),
            ),
            CallOutcome::TimedOut => every(
                Code::Timeout,
                "the bridge acknowledged it, but no answer came in time".into(),
            ),
            CallOutcome::Unknown => every(
                Code::Undeliverable,
                format!("{callee} does not relay cmbs.message.deliver: it is no bridge"),
            ),
            other => every(
                Code::Undeliverable,
                format!(
                    "the delivery to the bridge ended {} (it may have crossed)",
                    other.code()
                ),
            ),
        };
        let statuses: Vec<(usize, LineStatus)> = lines
            .iter()
            .map(|at| {
                let status = match &answered {
                    Err(r) => LineStatus::Refused(r.clone()),
                    Ok(answer) => match answer.answer_of(&out.lines[*at].member) {
                        Some(DeliverAnswer::Delivered { result }) => LineStatus::Delivered {
                            result: result.clone(),
                        },
                        Some(DeliverAnswer::Refused(r)) => LineStatus::Refused(r.clone()),
                        None => LineStatus::Refused(Refusal::new(
                            Code::Malformed,
                            format!("the bridge {callee} did not answer for this member"),
                        )),
                    },
                };
                (*at, status)
            })
            .collect();
        for (at, status) in statuses {
            self.set_status(&mut out, at, status);
        }
        self.outgoing.insert(key, out);
        self.settle(key);
        self.send_queued(ep, now);
    }

    /// Reports message `key` if every line is settled and its hold is over.
    fn settle(&mut self, key: u64) {
        let done = self
            .outgoing
            .get(&key)
            .is_some_and(|o| o.hold_until.is_none() && o.lines.iter().all(Line::is_settled));
        if !done {
            return;
        }
        if let Some(out) = self.outgoing.remove(&key) {
            let lines: Vec<Line> = out
                .lines
                .into_iter()
                .enumerate()
                .filter(|(i, _)| !out.not_recipients.contains(i))
                .map(|(_, l)| l)
                .collect();
            let outcome = Report::outcome_of(&lines);
            self.events.push_back(Event::Report(Report {
                message: out.message.id,
                layer: out.message.layer,
                lines,
                outcome,
            }));
        }
    }

    fn persist(&mut self, out: &Outgoing) {
        if !self.persist_held {
            return;
        }
        self.store_ops.push(StoreOp::Hold(HeldRecord {
            message: out.message.clone(),
            until_unix_ms: out.until_unix_ms,
            delivered: out
                .lines
                .iter()
                .filter(|l| l.is_delivered())
                .map(|l| l.member.clone())
                .collect(),
        }));
    }

    /// Takes up held messages from a store after a restart: each one is
    /// offered to matching members as they announce, until its hold ends.
    pub fn restore_held(&mut self, now: Instant, wall: SystemTime, records: Vec<HeldRecord>) {
        let wall_ms = unix_ms(wall);
        for r in records {
            if r.until_unix_ms <= wall_ms {
                if self.persist_held {
                    self.store_ops.push(StoreOp::Release {
                        id: r.message.id.clone(),
                    });
                }
                continue;
            }
            let until = now + Duration::from_millis(r.until_unix_ms - wall_ms);
            let lines: Vec<Line> = r
                .delivered
                .iter()
                .map(|m| Line {
                    member: m.clone(),
                    address: Address::empty(),
                    site: None,
                    sent: true,
                    status: LineStatus::Delivered { result: None },
                })
                .collect();
            let key = self.next_outgoing;
            self.next_outgoing += 1;
            self.holds.set(key, until);
            self.outgoing.insert(
                key,
                Outgoing {
                    map: r.message.to_value(),
                    slots: vec![None; lines.len()],
                    message: r.message,
                    lines,
                    hold_until: Some(until),
                    until_unix_ms: r.until_unix_ms,
                    held: true,
                    not_recipients: Default::default(),
                    to_relay: Vec::new(),
                    timeout: None,
                },
            );
        }
    }

    /// Ends the holds that are over, and asks member entities the endpoint
    /// knows and the directory does not to announce themselves.
    pub fn handle_timeout(&mut self, ep: &mut Endpoint, now: Instant) {
        if !self.hosted {
            let me = self.me.clone();
            let asks = match self.dir.as_deref_mut() {
                Some(d) => d.asks_due(now, me.as_deref()),
                None => Vec::new(),
            };
            for addr in &asks {
                ask_to_describe(ep, now, addr);
            }
        }
        for key in self.holds.take_due(now) {
            if let Some(out) = self.outgoing.get_mut(&key) {
                out.hold_until = None;
                if self.persist_held {
                    let id = out.message.id.clone();
                    self.store_ops.push(StoreOp::Release { id });
                }
            }
            self.settle(key);
        }
    }

    /// When [`Client::handle_timeout`] is due next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let discovery = match self.hosted {
            true => None,
            false => self.dir().poll_timeout(),
        };
        self.holds.next().into_iter().chain(discovery).min()
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// True if held-message store operations are queued.
    pub(crate) fn has_store_ops(&self) -> bool {
        !self.store_ops.is_empty()
    }

    /// Store operations queued (held messages).
    pub(crate) fn take_store_ops(&mut self) -> Vec<StoreOp> {
        std::mem::take(&mut self.store_ops)
    }
}

/// Asks the member entity at `addr` to announce itself, reliably (it
/// answers reliably).
pub fn ask_to_describe(ep: &mut Endpoint, now: Instant, addr: &Address) {
    tracing::debug!(%addr, "asking a member entity to announce itself");
    let _ = ep.send(now, addr, vec![Describe.into_command()], Delivery::Reliable);
}
