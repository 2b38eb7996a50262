//! [`Bridge`]: CMBS across sites. One entity on a site's bus that carries
//! the site's directory and deliveries to and from the bridges of other
//! sites over NATS ([`super::crossing`] has the subjects and messages).
//!
//! - **Directory.** It follows its own bus's members (as any participant
//!   does) and publishes each change to `dir.<site>`, numbered in its run;
//!   a heartbeat every [`BridgeConfig::heartbeat`] says how far it is. It
//!   learns every other site's members from their updates, asks a site for
//!   its whole directory (`sync.<site>`) when it missed an update or meets
//!   a new run, and announces each remote member on its own bus with the
//!   site and `via` (its own address) in the announce. A site not heard
//!   for [`BridgeConfig::site_timeout`] is dropped: its members leave every
//!   directory on this bus.
//! - **Deliveries.** A sender gives the bridge one delivery naming the
//!   recipients it has at other sites ([`super::Relay`]); the bridge sends
//!   each site's part as a NATS request to `deliver.<site>` and answers the
//!   sender with every member's own answer. The far bridge puts each
//!   sender's deliveries to each member back in order, delivers them as a
//!   sender of its bus does (retries, the member's answer) and remembers
//!   what was delivered, so a retry is answered from memory; the members
//!   remember too, so a retry after a restart of either bridge reaches no
//!   application twice.
//! - **One bridge per site.** A bridge listens for [`BridgeConfig::probe`]
//!   before it publishes anything or announces other sites' members on its
//!   bus; hearing another run of its site then, or later a run older than
//!   its own, it stops ([`BridgeEvent::Yield`]).
//!
//! Pure, like the rest of [`crate::cmbs`]: the runtime feeds it the bus's
//! events and what NATS brings ([`NatsInput`]), with `now`, and takes what
//! to publish ([`NatsOutput`]).

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::proto::maps::HashMap;
use crate::proto::{Delivery, Endpoint, Event as BusEvent};
use crate::rpc::{Reply, Request, RequestId, RpcEvent};
use crate::wire::{Address, Command, Value};

use super::client::{cmbs_group, Client, ClientConfig};
use super::cmd::{Announce, Deliver, DeliverAnswer, Describe, Leave};
use super::code::{Code, Refusal};
use super::crossing::{
    crossing_timeout, paginate, CrossDeliver, Crossing, Heartbeat, Known, Subjects, SyncPage,
    Update,
};
use super::description::{Description, Remote};
use super::directory::MAX_MEMBERS;
use super::event::Event;
use super::memory::{Answered, MemoryConfig};
use super::message::Message;
use super::order::{Absorb, Reorder};
use super::relay::{Relay, RelayAnswer, MAX_REASON_BYTES};
use super::report::LineStatus;

/// How long the bridge gathers its bus's directory changes before it
/// publishes them in one update.
const UPDATE_DELAY: Duration = Duration::from_millis(50);

/// How many announces go in one datagram on the bus, at most.
const ANNOUNCES_PER_DATAGRAM: usize = 12;

/// The most bytes of commands in one datagram the bridge sends on its bus
/// (a datagram holds 65,507 with the header).
const DATAGRAM_BYTES: usize = 60_000;

/// The most ids in one update that says members left (about 400 KiB).
const LEFT_PER_UPDATE: usize = 8192;

/// How many versions of our directory's sync pages are kept.
const SYNC_VERSIONS_KEPT: usize = 4;

/// The most ids in one `cmbs.member.leave` on the bus.
const LEFT_PER_COMMAND: usize = 256;

/// How many heartbeats a remote member's announce or leave is sent again
/// with (a datagram may be lost; the full announce comes only every
/// [`BridgeConfig::reannounce`]).
const REPEATS: u8 = 3;

/// A bridge's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BridgeConfig {
    /// The name of its site ([`super::crossing::valid_site`]).
    pub site: String,
    /// The NATS subjects.
    pub subjects: Subjects,
    /// How often it says it is there (1 s).
    pub heartbeat: Duration,
    /// How long another site may be silent before its members leave
    /// (5 s: five heartbeats).
    pub site_timeout: Duration,
    /// How long it listens before it publishes (1.5 s).
    pub probe: Duration,
    /// How often it announces every remote member on its bus again (10 s).
    pub reannounce: Duration,
    /// How it delivers to its bus's members.
    pub client: ClientConfig,
    /// What it remembers of delivered messages, per member.
    pub memory: MemoryConfig,
}

impl BridgeConfig {
    /// The settings of a bridge for site `site`, the rest by default.
    pub fn new(site: &str) -> BridgeConfig {
        BridgeConfig {
            site: site.to_owned(),
            subjects: Subjects::default(),
            heartbeat: Duration::from_secs(1),
            site_timeout: Duration::from_secs(5),
            probe: Duration::from_millis(1500),
            reannounce: Duration::from_secs(10),
            client: ClientConfig::default(),
            memory: MemoryConfig::default(),
        }
    }
}

/// What NATS brought.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NatsInput {
    /// A message on a subject the bridge subscribes to
    /// ([`Bridge::subscriptions`]); `reply` for a request.
    Message {
        /// Its subject.
        subject: String,
        /// Its payload.
        payload: Vec<u8>,
        /// Where to answer a request.
        reply: Option<String>,
    },
    /// The answer to our request `token` ([`NatsOutput::Request`]).
    Answered {
        /// The request's token.
        token: u64,
        /// The answer's payload, or why none came.
        result: Result<Vec<u8>, RequestFailure>,
    },
    /// The connection to the cluster came up (`true`) or went down.
    Connection(bool),
}

/// Why a request got no answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestFailure {
    /// Nobody subscribes to the subject (no bridge for that site).
    NoResponders,
    /// No answer within the request's timeout.
    TimedOut,
    /// The request could not be sent.
    Unreachable(String),
}

/// What to do on NATS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NatsOutput {
    /// Publish `payload` on `subject` (an answer goes to the request's
    /// reply subject).
    Publish {
        /// The subject.
        subject: String,
        /// The payload.
        payload: Vec<u8>,
    },
    /// Send a request; its answer comes back as [`NatsInput::Answered`]
    /// with `token`.
    Request {
        /// Ours, for the answer.
        token: u64,
        /// The subject.
        subject: String,
        /// The payload.
        payload: Vec<u8>,
        /// How long to wait for the answer.
        timeout: Duration,
    },
}

/// What a bridge tells its runner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BridgeEvent {
    /// It listened long enough and now publishes and serves.
    Active,
    /// Another bridge for this site runs and is older: this one must stop
    /// (its runner exits with an error that says so).
    Yield {
        /// The other run's epoch (its start, in ms since 1970, times 1000,
        /// plus a random part).
        other: u64,
    },
    /// A younger bridge for this site was heard; it stops.
    Younger {
        /// Its epoch.
        other: u64,
    },
    /// A site was heard and its directory learnt.
    SiteJoined {
        /// The site.
        site: String,
        /// How many members it has.
        members: usize,
    },
    /// A site was not heard for the site timeout: its members left.
    SiteLost {
        /// The site.
        site: String,
        /// How many members left with it.
        members: usize,
    },
}

/// Counters of what the bridge did and dropped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BridgeStats {
    /// NATS messages that could not be read, were too large or came where
    /// they do not belong: dropped.
    pub malformed: u64,
    /// Deliveries for a member not on this bus: answered `UNDELIVERABLE`.
    pub unknown_member: u64,
    /// Retries of deliveries answered from memory, or joined to one in
    /// progress: no member got them twice.
    pub replays: u64,
    /// Deliveries sent to other sites (one per site and message).
    pub crossed_out: u64,
    /// Deliveries from other sites taken.
    pub crossed_in: u64,
    /// Directory syncs asked for.
    pub syncs: u64,
    /// Members of other sites not taken in: it knew
    /// [`crate::cmbs::MAX_MEMBERS`] already.
    pub directory_full: u64,
    /// Members announced by a site under an id another site has (the
    /// first one keeps it).
    pub claimed_twice: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Made, not started.
    New,
    Probing {
        until: Instant,
    },
    Active,
    Stopped,
}

/// What this bridge knows of another site.
#[derive(Debug)]
struct SiteView {
    epoch: u64,
    version: u64,
    heard_at: Instant,
    /// Its name, shared by its members' entries in `site_of`.
    name: Arc<str>,
    /// Its members: by id, the map their announce on our bus carries, as
    /// Mbus text (a few hundred bytes each: what a remote member costs).
    members: BTreeMap<Box<str>, Box<str>>,
    /// A sync under way: when it began, and the pages so far.
    sync: Option<Sync>,
    /// True once its directory was learnt (a sync completed).
    known: bool,
}

#[derive(Debug)]
struct Sync {
    started: Instant,
    epoch: u64,
    version: u64,
    pages: Vec<Option<Vec<Known>>>,
}

/// A delivery from another site to one member of this bus, waiting for
/// its turn or under way.
#[derive(Debug)]
struct Unit {
    message: Message,
    member: String,
    /// When the far side's time for it runs out (from its arrival).
    deadline: Instant,
    /// Others that came with the same number (a sender that started its
    /// numbering again): they go on with this one.
    extra: Vec<Unit>,
}

impl Absorb for Unit {
    fn absorb(&mut self, other: Unit) {
        // A retry of the same message is joined through `units`; a
        // different one must not be lost.
        if other.message.id != self.message.id {
            self.extra.push(other);
        }
    }
}

/// A request of ours on NATS.
#[derive(Debug)]
enum Pending {
    /// Part `site` of a local sender's relay `relay`.
    Deliver {
        relay: u64,
        site: String,
        members: Vec<String>,
    },
    /// Page `page` of site `site`'s directory.
    Sync { site: String, page: u64 },
}

/// Answers being gathered, per member, in the order they were named.
#[derive(Debug)]
struct Gathering {
    answers: Vec<(String, Option<DeliverAnswer>)>,
    waiting: usize,
}

impl Gathering {
    fn new(members: impl Iterator<Item = String>) -> Gathering {
        let answers: Vec<(String, Option<DeliverAnswer>)> = members.map(|m| (m, None)).collect();
        Gathering {
            waiting: answers.len(),
            answers,
        }
    }

    /// Sets `member`'s answer (the first one counts); true when all are in.
    fn fill(&mut self, member: &str, answer: DeliverAnswer) -> bool {
        for (m, a) in &mut self.answers {
            if m == member && a.is_none() {
                *a = Some(answer.clone());
                self.waiting -= 1;
            }
        }
        self.waiting == 0
    }

    fn done(self) -> RelayAnswer {
        RelayAnswer {
            answers: self
                .answers
                .into_iter()
                .map(|(m, a)| {
                    let a = match a {
                        Some(DeliverAnswer::Refused(mut r)) => {
                            cut(&mut r.reason, MAX_REASON_BYTES);
                            DeliverAnswer::Refused(r)
                        }
                        Some(delivered) => delivered,
                        None => {
                            DeliverAnswer::Refused(Refusal::new(Code::Undeliverable, "no answer"))
                        }
                    };
                    (m, a)
                })
                .collect(),
        }
    }
}

/// The bridge of one site: see the module docs.
#[derive(Debug)]
pub struct Bridge {
    config: BridgeConfig,
    epoch: u64,
    /// The number of our last directory update.
    version: u64,
    me: Option<Address>,
    client: Client,
    phase: Phase,
    connected: bool,
    sites: BTreeMap<String, SiteView>,
    /// Each remote member's site.
    site_of: HashMap<Box<str>, Arc<str>>,
    /// Our bus's members changed since the last update, and those left.
    changed: BTreeMap<String, Known>,
    left: Vec<String>,
    /// Remote members that left, sent again with the next heartbeats.
    recent_leaves: Vec<(String, u8)>,
    /// Remote members new or changed, announced again with the next
    /// heartbeats.
    recent_announces: Vec<(String, u8)>,
    /// Our directory in sync pages, for the versions they were made at
    /// (the last few: a sync under way reads the version it began with).
    sync_pages: VecDeque<(u64, Vec<Vec<Known>>)>,
    /// When the changes gathered are published.
    update_at: Option<Instant>,
    next_heartbeat: Option<Instant>,
    /// When every remote member is announced on the bus again.
    next_reannounce: Option<Instant>,
    last_full_announce: Option<Instant>,
    // ---- deliveries from our bus to other sites ----
    relays: HashMap<u64, (RequestId, Gathering)>,
    next_relay: u64,
    requests: HashMap<u64, Pending>,
    next_token: u64,
    // ---- deliveries from other sites to our bus ----
    inbound: HashMap<u64, (String, Gathering)>,
    next_inbound: u64,
    /// Deliveries waiting or under way, by message id and member: the
    /// inbound requests waiting for each.
    units: HashMap<(String, String), Vec<u64>>,
    reorder: Reorder<Unit, (Address, String)>,
    delivered: Answered,
    nats: VecDeque<NatsOutput>,
    events: VecDeque<BridgeEvent>,
    stats: BridgeStats,
}

impl Bridge {
    /// A bridge with `config`; `epoch` names its run and orders it against
    /// another bridge of its site (the older one stays): make it from the
    /// wall clock, `unix_ms * 1000 + a random number below 1000`. `seed`
    /// seeds its client's message ids.
    pub fn new(config: BridgeConfig, epoch: u64, seed: u64) -> Bridge {
        let client = Client::new(config.client.clone(), seed);
        Bridge {
            delivered: Answered::new(config.memory),
            config,
            epoch,
            version: 0,
            me: None,
            client,
            phase: Phase::New,
            connected: false,
            sites: BTreeMap::new(),
            site_of: HashMap::default(),
            changed: BTreeMap::new(),
            left: Vec::new(),
            recent_leaves: Vec::new(),
            recent_announces: Vec::new(),
            sync_pages: VecDeque::new(),
            update_at: None,
            next_heartbeat: None,
            next_reannounce: None,
            last_full_announce: None,
            relays: HashMap::default(),
            next_relay: 0,
            requests: HashMap::default(),
            next_token: 0,
            inbound: HashMap::default(),
            next_inbound: 0,
            units: HashMap::default(),
            reorder: Reorder::default(),
            nats: VecDeque::new(),
            events: VecDeque::new(),
            stats: BridgeStats::default(),
        }
    }

    /// The address a bridge of `site` joins the bus with (the runtime adds
    /// the `id` element).
    pub fn address(site: &str) -> Result<Address, crate::wire::AddressError> {
        Address::new([("app", "cmbs"), ("module", "bridge"), ("site", site)])
    }

    /// The subjects to subscribe to: every site's directory, and this
    /// site's sync and delivery requests.
    pub fn subscriptions(&self) -> [String; 3] {
        let s = &self.config.subjects;
        [
            s.all_dirs(),
            s.sync(&self.config.site),
            s.deliver(&self.config.site),
        ]
    }

    /// Its settings.
    pub fn config(&self) -> &BridgeConfig {
        &self.config
    }

    /// Its run's epoch.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Its client: the directory of its bus (remote members included, as
    /// other bridges on the bus announce them).
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The sites it knows, with their members.
    pub fn sites(&self) -> impl Iterator<Item = (&str, usize)> + '_ {
        self.sites
            .iter()
            .map(|(s, v)| (s.as_str(), v.members.len()))
    }

    /// How many members of other sites it knows.
    pub fn remote_members(&self) -> usize {
        self.site_of.len()
    }

    /// True once it listened long enough and publishes and serves.
    pub fn is_active(&self) -> bool {
        self.phase == Phase::Active
    }

    /// What it did and dropped.
    pub fn stats(&self) -> BridgeStats {
        self.stats
    }

    /// Joins CMBS on `ep`: serves deliveries, asks the bus's members to
    /// announce themselves, and listens on NATS for
    /// [`BridgeConfig::probe`] before it publishes.
    pub fn start(&mut self, ep: &mut Endpoint, now: Instant) {
        self.me = Some(ep.local_address().clone());
        ep.rpc().serve(Deliver::NAME);
        self.client.describe(ep, now);
        self.phase = Phase::Probing {
            until: now + self.config.probe,
        };
    }

    /// Leaves: other sites are told that this site's members are gone (its
    /// bye, sent by the runtime, tells its own bus), and the senders whose
    /// deliveries it carries get `UNDELIVERABLE` for what had no answer.
    pub fn stop(&mut self, ep: &mut Endpoint, now: Instant) {
        // Senders waiting on us hear it now, not at their timeout.
        for (_, (request, mut g)) in std::mem::take(&mut self.relays) {
            let pending: Vec<String> = g
                .answers
                .iter()
                .filter(|(_, a)| a.is_none())
                .map(|(m, _)| m.clone())
                .collect();
            for m in pending {
                let why = "the bridge stopped before the answer came (it may have crossed)";
                g.fill(&m, undeliverable(why.into()));
            }
            answer(ep, now, request, g.done().to_reply());
        }
        self.requests.clear();
        if self.phase == Phase::Active {
            let left: Vec<String> = self
                .client
                .directory()
                .iter()
                .filter(|e| e.description.remote.is_none())
                .map(|e| e.description.id.clone())
                .collect();
            self.changed.clear();
            self.left = left;
            self.publish_update();
        }
        self.halt();
    }

    /// Stopped: nothing more is due.
    fn halt(&mut self) {
        self.phase = Phase::Stopped;
        self.next_heartbeat = None;
        self.next_reannounce = None;
        self.update_at = None;
    }

    // ---- the bus ---------------------------------------------------------------------

    /// Takes an event of its entity; what CMBS does not take comes back.
    pub fn handle_event(
        &mut self,
        ep: &mut Endpoint,
        now: Instant,
        event: BusEvent,
    ) -> Option<BusEvent> {
        let rest = match event {
            BusEvent::Rpc(RpcEvent::Request(req)) if req.name == Deliver::NAME => {
                self.on_relay_request(ep, now, req);
                None
            }
            BusEvent::Command { src, command, .. }
                if Some(&src) == self.me.as_ref()
                    && (command.name == Announce::NAME || command.name == Leave::NAME) =>
            {
                None
            }
            BusEvent::Command { command, .. } if command.name == Describe::NAME => {
                // A member that starts asks the bus to describe itself: it
                // learns the other sites' members from us too.
                self.announce_soon(now);
                None
            }
            other => self.client.handle_event(ep, now, other),
        };
        self.after(now);
        rest
    }

    /// Runs the timers due at `now`.
    pub fn handle_timeout(&mut self, ep: &mut Endpoint, now: Instant) {
        self.client.handle_timeout(ep, now);
        for unit in self.reorder.take_due(now) {
            self.start_unit(ep, now, unit);
        }
        if let Phase::Probing { until } = self.phase {
            if until <= now {
                self.phase = Phase::Active;
                self.events.push_back(BridgeEvent::Active);
                // The first update holds the whole directory.
                for e in self.client.directory().iter() {
                    if e.description.remote.is_none() {
                        self.changed.insert(e.description.id.clone(), known_of(e));
                    }
                }
                self.next_heartbeat = Some(now);
                self.next_reannounce = Some(now + self.config.reannounce);
                // Senders on our bus learn the other sites' members only
                // now: a bridge that may still yield is not used.
                self.announce_all(ep, now);
            }
        }
        if self.update_at.is_some_and(|t| t <= now) {
            self.update_at = None;
            if self.phase == Phase::Active {
                self.publish_update();
            }
        }
        if self.next_heartbeat.is_some_and(|t| t <= now) && self.phase == Phase::Active {
            self.next_heartbeat = Some(now + self.config.heartbeat);
            self.heartbeat();
            self.repeat_changes(ep, now);
        }
        let lost: Vec<String> = self
            .sites
            .iter()
            .filter(|(_, v)| v.heard_at + self.config.site_timeout <= now)
            .map(|(s, _)| s.clone())
            .collect();
        for site in lost {
            self.drop_site(ep, now, &site);
        }
        if self.next_reannounce.is_some_and(|t| t <= now) {
            self.next_reannounce = Some(now + self.config.reannounce);
            self.announce_all(ep, now);
        }
        self.delivered.prune(now);
        self.after(now);
    }

    /// When [`Bridge::handle_timeout`] is due next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let probe = match self.phase {
            Phase::Probing { until } => Some(until),
            _ => None,
        };
        let expiry = self
            .sites
            .values()
            .map(|v| v.heard_at + self.config.site_timeout)
            .min();
        [
            self.client.poll_timeout(),
            self.reorder.next_timeout(),
            probe,
            self.next_heartbeat,
            self.next_reannounce,
            self.update_at,
            expiry,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// The next thing to do on NATS.
    pub fn poll_nats(&mut self) -> Option<NatsOutput> {
        self.nats.pop_front()
    }

    /// The next event for the runner.
    pub fn poll_event(&mut self) -> Option<BridgeEvent> {
        self.events.pop_front()
    }

    /// After any input: the client's events (reports of deliveries, our
    /// bus's directory changes), and the directory update they make.
    fn after(&mut self, now: Instant) {
        while let Some(e) = self.client.poll_event() {
            match e {
                Event::Report(report) => {
                    for line in report.lines {
                        let answer = match line.status {
                            LineStatus::Delivered { result } => DeliverAnswer::Delivered { result },
                            LineStatus::Refused(r) => DeliverAnswer::Refused(r),
                            LineStatus::Pending => continue,
                        };
                        self.unit_done(now, &report.message, &line.member, answer);
                    }
                }
                Event::Joined(e) | Event::Changed(e) if e.description.remote.is_none() => {
                    self.left.retain(|id| *id != e.description.id);
                    self.changed.insert(e.description.id.clone(), known_of(&e));
                }
                Event::Left { entry, .. } if entry.description.remote.is_none() => {
                    self.changed.remove(&entry.description.id);
                    self.left.push(entry.description.id);
                }
                _ => {}
            }
        }
        if self.phase == Phase::Active && (!self.changed.is_empty() || !self.left.is_empty()) {
            // Changes that come together (members starting in a burst) go
            // in one update.
            self.update_at.get_or_insert(now + UPDATE_DELAY);
        }
    }

    // ---- our directory on NATS ----------------------------------------------------------

    /// Publishes what changed on our bus, in updates of at most a page of
    /// members, or of ids that left, each.
    fn publish_update(&mut self) {
        let changed: Vec<Known> = std::mem::take(&mut self.changed).into_values().collect();
        let left = std::mem::take(&mut self.left);
        let mut updates: Vec<(Vec<Known>, Vec<String>)> = Vec::new();
        if !changed.is_empty() {
            updates.extend(paginate(changed).into_iter().map(|p| (p, Vec::new())));
        }
        updates.extend(
            left.chunks(LEFT_PER_UPDATE)
                .map(|c| (Vec::new(), c.to_vec())),
        );
        for (members, left) in updates {
            self.version += 1;
            let update = Update {
                site: self.config.site.clone(),
                epoch: self.epoch,
                version: self.version,
                members,
                left,
            };
            self.nats.push_back(NatsOutput::Publish {
                subject: self.config.subjects.dir(&self.config.site),
                payload: Crossing::Update(update).to_bytes(),
            });
        }
    }

    fn heartbeat(&mut self) {
        let members = self
            .client
            .directory()
            .iter()
            .filter(|e| e.description.remote.is_none())
            .count() as u64;
        let hb = Heartbeat {
            site: self.config.site.clone(),
            epoch: self.epoch,
            version: self.version,
            members,
        };
        self.nats.push_back(NatsOutput::Publish {
            subject: self.config.subjects.dir(&self.config.site),
            payload: Crossing::Heartbeat(hb).to_bytes(),
        });
    }

    /// Our directory's page `page` of `version` (the version a sync began
    /// with; `None`: the current one), answering a sync: the pages of a
    /// version are made once, and the last few versions' kept, so that a
    /// sync of a directory that changes meanwhile still ends.
    fn sync_page(&mut self, page: u64, version: Option<u64>) -> SyncPage {
        let wanted = version.unwrap_or(self.version);
        if !self.sync_pages.iter().any(|(v, _)| *v == wanted) {
            let members: Vec<Known> = self
                .client
                .directory()
                .iter()
                .filter(|e| e.description.remote.is_none())
                .map(known_of)
                .collect();
            if self.sync_pages.len() >= SYNC_VERSIONS_KEPT {
                self.sync_pages.pop_front();
            }
            self.sync_pages.push_back((self.version, paginate(members)));
        }
        let (version, pages) = self
            .sync_pages
            .iter()
            .find(|(v, _)| *v == wanted)
            .or(self.sync_pages.back())
            .map_or((self.version, &[][..]), |(v, p)| (*v, &p[..]));
        let count = pages.len().max(1) as u64;
        let page = page.min(count - 1);
        SyncPage {
            site: self.config.site.clone(),
            epoch: self.epoch,
            version,
            page,
            pages: count,
            members: pages.get(page as usize).cloned().unwrap_or_default(),
        }
    }

    // ---- NATS ------------------------------------------------------------------------

    /// Takes what NATS brought.
    pub fn handle_nats(&mut self, ep: &mut Endpoint, now: Instant, input: NatsInput) {
        if self.phase == Phase::Stopped {
            return;
        }
        if self.phase == Phase::New && !matches!(input, NatsInput::Connection(_)) {
            return;
        }
        match input {
            NatsInput::Connection(up) => {
                self.connected = up;
                if up && self.phase == Phase::Active {
                    self.next_heartbeat = Some(now);
                }
            }
            NatsInput::Message {
                subject,
                payload,
                reply,
            } => self.on_message(ep, now, &subject, &payload, reply),
            NatsInput::Answered { token, result } => self.on_answered(ep, now, token, result),
        }
        self.after(now);
    }

    fn malformed(&mut self, why: &str) {
        tracing::debug!("dropped a NATS message: {why}");
        self.stats.malformed += 1;
    }

    fn on_message(
        &mut self,
        ep: &mut Endpoint,
        now: Instant,
        subject: &str,
        payload: &[u8],
        reply: Option<String>,
    ) {
        let crossing = match Crossing::parse(payload) {
            Ok(c) => c,
            Err(e) => return self.malformed(&e),
        };
        let own = self.config.site.clone();
        let subjects = self.config.subjects.clone();
        if let Some(site) = subjects.site_of_dir(subject) {
            let (c_site, epoch) = match &crossing {
                Crossing::Update(u) => (u.site.as_str(), u.epoch),
                Crossing::Heartbeat(h) => (h.site.as_str(), h.epoch),
                _ => return self.malformed("a request on a directory subject"),
            };
            if c_site != site {
                return self.malformed("a directory message for another site's subject");
            }
            if site == own {
                return self.own_site_heard(epoch);
            }
            return match crossing {
                Crossing::Update(u) => self.on_update(ep, now, u),
                Crossing::Heartbeat(h) => self.on_heartbeat(now, h),
                _ => {}
            };
        }
        let Some(reply) = reply else {
            return self.malformed("a request without a reply subject");
        };
        if subject == subjects.sync(&own) {
            let Crossing::SyncAsk { page, version } = crossing else {
                return self.malformed("not a sync request on the sync subject");
            };
            if self.phase != Phase::Active {
                return; // The bridge that is active answers.
            }
            let page = Crossing::SyncPage(self.sync_page(page, version)).to_bytes();
            self.nats.push_back(NatsOutput::Publish {
                subject: reply,
                payload: page,
            });
        } else if subject == subjects.deliver(&own) {
            let Crossing::Deliver(d) = crossing else {
                return self.malformed("not a delivery on the delivery subject");
            };
            self.on_cross_deliver(ep, now, d, reply);
        } else {
            self.malformed("a subject the bridge does not serve");
        }
    }

    /// A directory message of our own site, from run `epoch`.
    fn own_site_heard(&mut self, epoch: u64) {
        if epoch == self.epoch {
            return; // Our own, back from the server.
        }
        // A probing bridge publishes nothing: whatever it hears of its site
        // comes from a bridge that is already there, whatever its clock.
        let probing = matches!(self.phase, Phase::Probing { .. });
        if probing || epoch < self.epoch {
            tracing::error!(
                site = %self.config.site,
                "another bridge for this site runs (epoch {epoch}; ours {}): this one stops",
                self.epoch
            );
            self.halt();
            self.events.push_back(BridgeEvent::Yield { other: epoch });
        } else {
            tracing::warn!(site = %self.config.site, "a younger bridge for this site was heard (epoch {epoch}); it stops");
            self.events.push_back(BridgeEvent::Younger { other: epoch });
        }
    }

    fn view(&mut self, now: Instant, site: &str) -> &mut SiteView {
        self.sites
            .entry(site.to_owned())
            .or_insert_with(|| SiteView {
                epoch: 0,
                version: 0,
                heard_at: now,
                name: Arc::from(site),
                members: BTreeMap::new(),
                sync: None,
                known: false,
            })
    }

    fn on_heartbeat(&mut self, now: Instant, h: Heartbeat) {
        let v = self.view(now, &h.site);
        v.heard_at = now;
        if !v.known || v.epoch != h.epoch || v.version != h.version {
            self.start_sync(now, &h.site);
        }
    }

    fn on_update(&mut self, ep: &mut Endpoint, now: Instant, u: Update) {
        let v = self.view(now, &u.site);
        v.heard_at = now;
        if v.known && v.epoch == u.epoch && u.version <= v.version {
            return; // Seen already.
        }
        if !(v.known && v.epoch == u.epoch && u.version == v.version + 1) {
            // A gap, or a new run: the whole directory.
            self.start_sync(now, &u.site);
            return;
        }
        v.version = u.version;
        let site = u.site.clone();
        self.apply(ep, now, &site, u.members, u.left);
    }

    /// Asks `site` for its whole directory, unless a sync is under way.
    fn start_sync(&mut self, now: Instant, site: &str) {
        let retry_after = self.config.site_timeout;
        let v = self.view(now, site);
        if v.sync
            .as_ref()
            .is_some_and(|s| now < s.started + retry_after)
        {
            return;
        }
        v.sync = Some(Sync {
            started: now,
            epoch: 0,
            version: 0,
            pages: Vec::new(),
        });
        self.stats.syncs += 1;
        self.request_page(site, 0, None);
    }

    fn request_page(&mut self, site: &str, page: u64, version: Option<u64>) {
        let token = self.next_token;
        self.next_token += 1;
        self.requests.insert(
            token,
            Pending::Sync {
                site: site.to_owned(),
                page,
            },
        );
        self.nats.push_back(NatsOutput::Request {
            token,
            subject: self.config.subjects.sync(site),
            payload: Crossing::SyncAsk { page, version }.to_bytes(),
            timeout: self.config.site_timeout,
        });
    }

    fn on_sync_page(&mut self, ep: &mut Endpoint, now: Instant, site: &str, page: SyncPage) {
        if page.site != site {
            return self.malformed("a sync page of another site");
        }
        let page_version = page.version;
        let more: Vec<u64> = {
            let Some(v) = self.sites.get_mut(site) else {
                return;
            };
            let Some(sync) = v.sync.as_mut() else {
                return;
            };
            let pages = page.pages as usize;
            if page.page == 0 && sync.pages.is_empty() {
                sync.epoch = page.epoch;
                sync.version = page.version;
                sync.pages = vec![None; pages];
                sync.pages[0] = Some(page.members);
                (1..page.pages).collect()
            } else if sync.epoch == page.epoch
                && sync.version == page.version
                && sync.pages.len() == pages
            {
                sync.pages[page.page as usize] = Some(page.members);
                Vec::new()
            } else {
                // The directory changed under the sync: the next heartbeat
                // starts another.
                v.sync = None;
                return;
            }
        };
        for p in more {
            self.request_page(site, p, Some(page_version));
        }
        let Some(v) = self.sites.get_mut(site) else {
            return;
        };
        if v.sync
            .as_ref()
            .is_none_or(|s| s.pages.iter().any(Option::is_none))
        {
            return;
        }
        let Some(done) = v.sync.take() else {
            return;
        };
        let members: BTreeMap<String, Known> = done
            .pages
            .into_iter()
            .flatten()
            .flatten()
            .map(|k| (k.description.id.clone(), k))
            .collect();
        let first = !v.known;
        v.known = true;
        v.epoch = done.epoch;
        v.version = done.version;
        v.heard_at = now;
        let left: Vec<String> = v
            .members
            .keys()
            .filter(|id| !members.contains_key(&***id))
            .map(|id| id.to_string())
            .collect();
        // What did not change is left alone ([`Bridge::apply`] compares).
        let changed: Vec<Known> = members.into_values().collect();
        let site = site.to_owned();
        self.apply(ep, now, &site, changed, left);
        if first {
            let members = self.sites.get(&site).map_or(0, |v| v.members.len());
            tracing::info!(%site, members, "learnt a site's directory");
            self.events
                .push_back(BridgeEvent::SiteJoined { site, members });
        }
    }

    /// Members of `site` new or changed, and left: into our view, and
    /// announced (or said gone) on our bus.
    fn apply(
        &mut self,
        ep: &mut Endpoint,
        now: Instant,
        site: &str,
        changed: Vec<Known>,
        left: Vec<String>,
    ) {
        let Some(me) = self.me.clone() else {
            return;
        };
        let Some(v) = self.sites.get_mut(site) else {
            return;
        };
        let mut announces = Vec::new();
        for k in changed {
            let id = k.description.id.as_str();
            if self.site_of.get(id).is_some_and(|s| **s != *site) {
                // The same id at two sites: the first one keeps it.
                self.stats.claimed_twice += 1;
                continue;
            }
            if !self.site_of.contains_key(id) && self.site_of.len() >= MAX_MEMBERS {
                // As a bus's directory, bounded.
                self.stats.directory_full += 1;
                continue;
            }
            let map = remote_map(&k, site, &me);
            let text = map.to_string();
            if v.members.get(id).is_some_and(|t| **t == *text) {
                continue;
            }
            announces.push(Command::new(Announce::NAME, vec![map]));
            self.recent_announces.push((id.to_owned(), REPEATS));
            self.site_of.insert(id.into(), Arc::clone(&v.name));
            v.members.insert(id.into(), text.into_boxed_str());
        }
        let mut gone = Vec::new();
        for id in left {
            if v.members.remove(id.as_str()).is_some() {
                self.site_of.remove(id.as_str());
                gone.push(id);
            }
        }
        if self.phase == Phase::Active {
            send_batched(ep, now, announces);
            self.say_gone(ep, now, gone);
        }
    }

    /// Tells our bus that remote members `ids` left, now and with the next
    /// heartbeats.
    fn say_gone(&mut self, ep: &mut Endpoint, now: Instant, ids: Vec<String>) {
        if ids.is_empty() {
            return;
        }
        for chunk in ids.chunks(LEFT_PER_COMMAND) {
            let cmd = Leave {
                ids: chunk.to_vec(),
            }
            .into_command();
            send_batched(ep, now, vec![cmd]);
        }
        self.recent_leaves
            .extend(ids.into_iter().map(|id| (id, REPEATS)));
    }

    /// Sends again the announces and leaves of remote members that
    /// changed lately.
    fn repeat_changes(&mut self, ep: &mut Endpoint, now: Instant) {
        let mut announces = Vec::new();
        for (id, n) in &mut self.recent_announces {
            *n = n.saturating_sub(1);
            let text = self
                .site_of
                .get(id.as_str())
                .and_then(|site| self.sites.get(&**site)?.members.get(id.as_str()));
            announces.extend(text.and_then(|t| announce_of(t)));
        }
        self.recent_announces.retain(|(_, n)| *n > 0);
        send_batched(ep, now, announces);
        if self.recent_leaves.is_empty() {
            return;
        }
        let ids: Vec<String> = self
            .recent_leaves
            .iter()
            .filter(|(id, _)| !self.site_of.contains_key(id.as_str()))
            .map(|(id, _)| id.clone())
            .collect();
        for chunk in ids.chunks(LEFT_PER_COMMAND) {
            let cmd = Leave {
                ids: chunk.to_vec(),
            }
            .into_command();
            send_batched(ep, now, vec![cmd]);
        }
        for (_, n) in &mut self.recent_leaves {
            *n = n.saturating_sub(1);
        }
        self.recent_leaves.retain(|(_, n)| *n > 0);
    }

    /// `site` was silent too long: its members leave our bus's directories.
    fn drop_site(&mut self, ep: &mut Endpoint, now: Instant, site: &str) {
        let Some(v) = self.sites.remove(site) else {
            return;
        };
        let ids: Vec<String> = v.members.into_keys().map(String::from).collect();
        for id in &ids {
            self.site_of.remove(id.as_str());
        }
        let members = ids.len();
        tracing::warn!(%site, members, "a site's bridge was not heard: its members leave");
        self.say_gone(ep, now, ids);
        self.events.push_back(BridgeEvent::SiteLost {
            site: site.to_owned(),
            members,
        });
    }

    /// Every remote member announced on our bus again, soon (someone asked
    /// the bus to describe itself), at most once a second.
    fn announce_soon(&mut self, now: Instant) {
        let at = match self.last_full_announce {
            Some(last) => (last + Duration::from_secs(1)).max(now + Duration::from_millis(100)),
            None => now + Duration::from_millis(100),
        };
        if self.next_reannounce.is_none_or(|t| t > at) {
            self.next_reannounce = Some(at);
        }
    }

    fn announce_all(&mut self, ep: &mut Endpoint, now: Instant) {
        self.last_full_announce = Some(now);
        let announces: Vec<Command> = self
            .sites
            .values()
            .flat_map(|v| v.members.values())
            .filter_map(|t| announce_of(t))
            .collect();
        send_batched(ep, now, announces);
    }

    // ---- deliveries from our bus ---------------------------------------------------------

    fn on_relay_request(&mut self, ep: &mut Endpoint, now: Instant, req: Request) {
        let relay = match Relay::from_args(&req.args) {
            Ok(Some(r)) => r,
            Ok(None) => {
                let why = "this entity is a bridge: a delivery to it names its recipients";
                return answer(
                    ep,
                    now,
                    req.id,
                    Reply::failed(Code::Malformed.as_str(), why),
                );
            }
            Err(e) => return answer(ep, now, req.id, Reply::failed(Code::Malformed.as_str(), &e)),
        };
        let mut gathering = Gathering::new(relay.recipients.iter().map(|r| r.member.clone()));
        let id = self.next_relay;
        self.next_relay += 1;
        let mut by_site: BTreeMap<String, Vec<super::relay::Recipient>> = BTreeMap::new();
        for r in &relay.recipients {
            let why = match self.site_of.get(r.member.as_str()) {
                _ if self.phase != Phase::Active => "the bridge is not active yet".to_owned(),
                _ if !self.connected => "the bridge is cut off from NATS".to_owned(),
                Some(site) => {
                    by_site.entry(site.to_string()).or_default().push(r.clone());
                    continue;
                }
                None => format!("no member {} is known at another site", r.member),
            };
            gathering.fill(&r.member, undeliverable(why));
        }
        for (site, recipients) in by_site {
            let token = self.next_token;
            self.next_token += 1;
            let members = recipients.iter().map(|r| r.member.clone()).collect();
            self.requests.insert(
                token,
                Pending::Deliver {
                    relay: id,
                    site: site.clone(),
                    members,
                },
            );
            let cross = Box::new(CrossDeliver {
                origin: req.src.clone(),
                relay: Relay {
                    message: relay.message.clone(),
                    recipients,
                    timeout: relay.timeout,
                },
            });
            self.stats.crossed_out += 1;
            self.nats.push_back(NatsOutput::Request {
                token,
                subject: self.config.subjects.deliver(&site),
                payload: Crossing::Deliver(cross).to_bytes(),
                timeout: crossing_timeout(relay.timeout),
            });
        }
        if gathering.waiting == 0 {
            return answer(ep, now, req.id, gathering.done().to_reply());
        }
        self.relays.insert(id, (req.id, gathering));
    }

    fn on_answered(
        &mut self,
        ep: &mut Endpoint,
        now: Instant,
        token: u64,
        result: Result<Vec<u8>, RequestFailure>,
    ) {
        let Some(pending) = self.requests.remove(&token) else {
            return;
        };
        match pending {
            Pending::Sync { site, page } => match result.map(|b| Crossing::parse(&b)) {
                Ok(Ok(Crossing::SyncPage(p))) if p.page == page => {
                    self.on_sync_page(ep, now, &site, p)
                }
                Ok(Ok(_)) => self.malformed("not the sync page asked for"),
                Ok(Err(e)) => self.malformed(&e),
                Err(why) => {
                    tracing::debug!(%site, ?why, "a sync request got no answer");
                    if let Some(v) = self.sites.get_mut(&site) {
                        v.sync = None;
                    }
                }
            },
            Pending::Deliver {
                relay,
                site,
                members,
            } => {
                let answers: Vec<(String, DeliverAnswer)> = match result {
                    Ok(bytes) => match Crossing::parse(&bytes) {
                        Ok(Crossing::Answer(a)) => members
                            .iter()
                            .map(|m| {
                                let answer = a.answer_of(m).cloned().unwrap_or_else(|| {
                                    DeliverAnswer::Refused(Refusal::new(
                                        Code::Malformed,
                                        format!(
                                            "site {site}'s bridge did not answer for this member"
                                        ),
                                    ))
                                });
                                (m.clone(), answer)
                            })
                            .collect(),
                        other => {
                            let why = match other {
                                Err(e) => e,
                                Ok(_) => "not an answer".into(),
                            };
                            self.malformed(&why);
                            let r = Refusal::new(
                                Code::Malformed,
                                format!("site {site}'s bridge answered what cannot be read: {why}"),
                            );
                            members
                                .iter()
                                .map(|m| (m.clone(), DeliverAnswer::Refused(r.clone())))
                                .collect()
                        }
                    },
                    Err(failure) => {
                        let r = match failure {
                            RequestFailure::NoResponders => Refusal::new(
                                Code::Undeliverable,
                                format!("no bridge of site {site} answers on NATS"),
                            ),
                            RequestFailure::TimedOut => Refusal::new(
                                Code::Timeout,
                                format!("site {site}'s bridge did not answer in time (it may have delivered)"),
                            ),
                            RequestFailure::Unreachable(e) => Refusal::new(
                                Code::Undeliverable,
                                format!("the delivery could not cross to site {site}: {e}"),
                            ),
                        };
                        members
                            .iter()
                            .map(|m| (m.clone(), DeliverAnswer::Refused(r.clone())))
                            .collect()
                    }
                };
                let Some((_, g)) = self.relays.get_mut(&relay) else {
                    return;
                };
                let mut complete = false;
                for (m, a) in answers {
                    complete = g.fill(&m, a);
                }
                if complete {
                    if let Some((request, g)) = self.relays.remove(&relay) {
                        answer(ep, now, request, g.done().to_reply());
                    }
                }
            }
        }
    }

    // ---- deliveries from other sites ------------------------------------------------------

    fn on_cross_deliver(
        &mut self,
        ep: &mut Endpoint,
        now: Instant,
        d: Box<CrossDeliver>,
        reply: String,
    ) {
        let CrossDeliver { origin, relay } = *d;
        if self.phase != Phase::Active {
            // Not ours to answer: a bridge that is active does (or nobody,
            // and the sender hears TIMEOUT).
            return;
        }
        let mut g = Gathering::new(relay.recipients.iter().map(|r| r.member.clone()));
        self.stats.crossed_in += 1;
        let id = self.next_inbound;
        self.next_inbound += 1;
        let mut start = Vec::new();
        for r in &relay.recipients {
            let key = (relay.message.id.clone(), r.member.clone());
            if let Some(result) = self.delivered.get(&memory_key(&key.0, &key.1)) {
                self.stats.replays += 1;
                g.fill(
                    &r.member,
                    DeliverAnswer::Delivered {
                        result: result.clone(),
                    },
                );
            } else if let Some(waiting) = self.units.get_mut(&key) {
                self.stats.replays += 1;
                waiting.push(id);
            } else if self
                .client
                .directory()
                .get(&r.member)
                .is_none_or(|e| e.description.remote.is_some())
            {
                self.stats.unknown_member += 1;
                let site = &self.config.site;
                g.fill(
                    &r.member,
                    undeliverable(format!("member {} is not on site {site}'s bus", r.member)),
                );
            } else {
                self.units.insert(key, vec![id]);
                start.push((r.member.clone(), r.order));
            }
        }
        if g.waiting == 0 {
            return self.respond(reply, g);
        }
        self.inbound.insert(id, (reply, g));
        for (member, order) in start {
            let unit = Unit {
                message: relay.message.clone(),
                member: member.clone(),
                deadline: now + relay.timeout,
                extra: Vec::new(),
            };
            let ready = self
                .reorder
                .put(now, &(origin.clone(), member), unit, order);
            for u in ready {
                self.start_unit(ep, now, u);
            }
        }
    }

    fn start_unit(&mut self, ep: &mut Endpoint, now: Instant, u: Unit) {
        let Unit {
            message,
            member,
            deadline,
            extra,
        } = u;
        let id = message.id.clone();
        let left = deadline.saturating_duration_since(now);
        let started = if left.is_zero() {
            Err(Refusal::new(
                Code::Timeout,
                "its time ran out while an earlier delivery was waited for",
            ))
        } else {
            self.client.deliver_to(ep, now, message, &member, left)
        };
        if let Err(r) = started {
            self.unit_done(now, &id, &member, DeliverAnswer::Refused(r));
        }
        for u in extra {
            self.start_unit(ep, now, u);
        }
    }

    fn unit_done(&mut self, now: Instant, message: &str, member: &str, answer: DeliverAnswer) {
        let key = (message.to_owned(), member.to_owned());
        let Some(waiting) = self.units.remove(&key) else {
            return;
        };
        if let DeliverAnswer::Delivered { result } = &answer {
            self.delivered
                .remember(now, &memory_key(message, member), result.clone(), false);
        }
        for id in waiting {
            let complete = self
                .inbound
                .get_mut(&id)
                .is_some_and(|(_, g)| g.fill(member, answer.clone()));
            if complete {
                if let Some((reply, g)) = self.inbound.remove(&id) {
                    self.respond(reply, g);
                }
            }
        }
    }

    fn respond(&mut self, reply: String, g: Gathering) {
        self.nats.push_back(NatsOutput::Publish {
            subject: reply,
            payload: Crossing::Answer(g.done()).to_bytes(),
        });
    }
}

/// Cuts `text` to at most `max` bytes, on a character boundary.
fn cut(text: &mut String, max: usize) {
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
}

fn undeliverable(why: String) -> DeliverAnswer {
    DeliverAnswer::Refused(Refusal::new(Code::Undeliverable, why))
}

fn memory_key(message: &str, member: &str) -> String {
    format!("{message}\u{1f}{member}")
}

fn answer(ep: &mut Endpoint, now: Instant, id: RequestId, reply: Reply) {
    if let Err(e) = ep.rpc().reply(now, id, reply) {
        tracing::warn!("cannot answer a relay: {e}");
    }
}

fn known_of(e: &super::Entry) -> Known {
    Known {
        description: e.description.clone(),
        address: e.address.clone(),
    }
}

/// The map of remote member `k` of `site`'s announce on our bus, via us
/// (`me`).
fn remote_map(k: &Known, site: &str, me: &Address) -> Value {
    let mut description: Description = k.description.clone();
    description.remote = Some(Box::new(Remote {
        site: site.to_owned(),
        via: me.clone(),
        address: k.address.clone(),
    }));
    description.to_value()
}

/// The announce whose map [`remote_map`] made, from its text.
fn announce_of(text: &str) -> Option<Command> {
    Value::parse(text)
        .ok()
        .map(|map| Command::new(Announce::NAME, vec![map]))
}

/// Sends `commands` to every member, unreliably, a few to a datagram.
fn send_batched(ep: &mut Endpoint, now: Instant, commands: Vec<Command>) {
    let mut batch: Vec<Command> = Vec::new();
    let mut bytes = 0;
    let send = |ep: &mut Endpoint, batch: Vec<Command>| {
        if let Err(e) = ep.send(now, &cmbs_group(), batch, Delivery::Unreliable) {
            tracing::warn!("cannot announce remote members: {e}");
        }
    };
    for c in commands {
        let len = c.name.len() + c.args.iter().map(Value::encoded_len).sum::<usize>() + 4;
        if !batch.is_empty()
            && (batch.len() >= ANNOUNCES_PER_DATAGRAM || bytes + len > DATAGRAM_BYTES)
        {
            send(ep, std::mem::take(&mut batch));
            bytes = 0;
        }
        bytes += len;
        batch.push(c);
    }
    if !batch.is_empty() {
        send(ep, batch);
    }
}
