//! A member: one Mbus entity that receives CMBS messages on the layers it
//! has started, refuses with a code what it cannot take, runs the
//! application's execute handler, asks its store to keep what is storable,
//! and answers each delivery once. It is also a [`Client`], so it can send.
//!
//! What a member does with `cmbs.message.deliver`, in order:
//! 1. a message id it answered delivered before is answered again from
//!    memory, and one still in progress waits for the same answer; a
//!    delivery whose sender has an earlier one to this member still open
//!    waits for it (at most [`super::REORDER_WINDOW`]), so that one sender's
//!    messages reach the application in the order they were sent;
//! 2. refuse if the layer is stopped (`LAYER_STOPPED`), the member suspended
//!    (`SUSPENDED`), its id already in `path_history` (`LOOP`), storing asked
//!    without a store (`NOT_STORABLE`), or an L1 message names another member
//!    (`MALFORMED`);
//! 3. append its id to `path_history`;
//! 4. if executable, run the execute handler (`EXEC_FAILED` when it fails or
//!    passes the execute timeout) and keep its output as `result`;
//! 5. if storable, ask the store to keep it, and answer when the store says
//!    it is on disk (`STORE_FAILED` when it could not be written);
//! 6. answer delivered (with the result), and tell the application.

use std::collections::VecDeque;
use std::time::{Duration, Instant, SystemTime};

use crate::proto::maps::HashMap;
use crate::proto::{Deadlines, Delivery, Endpoint, Event as BusEvent};
use crate::rpc::{Reply, Request, RequestId, RpcEvent};
use crate::wire::{Address, Value};

use super::client::{cmbs_group, Client, ClientConfig, Publish, DISCOVERY_INTERVAL};
use super::cmd::{
    Action, ActionAnswer, ActionRequest, Announce, Deliver, DeliverAnswer, Describe, NeighborCheck,
};
use super::code::{Code, Refusal};
use super::description::{Description, MemberState};
use super::event::Event;
use super::layer::{Layer, LayerSet};
use super::memory::{Answered, MemoryConfig};
use super::message::Message;
use super::order::{Absorb, Reorder};
use super::persist::{HeldRecord, StoreBatch, StoreOp};
use super::report::Report;

/// A member's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberConfig {
    /// How its own messages are sent.
    pub client: ClientConfig,
    /// How long the execute handler may take (5 s).
    pub exec_timeout: Duration,
    /// True if a store keeps what it receives and holds.
    pub has_store: bool,
    /// What it remembers of answered messages.
    pub memory: MemoryConfig,
    /// The most deliveries it works on at once (executing or being
    /// stored, 4,096); beyond it new ones are refused `STORE_FAILED` or
    /// `EXEC_FAILED`, "busy", so that a slow disk or handler cannot make it
    /// queue without bound.
    pub max_in_progress: usize,
}

impl Default for MemberConfig {
    fn default() -> MemberConfig {
        MemberConfig {
            client: ClientConfig::default(),
            exec_timeout: Duration::from_secs(5),
            has_store: false,
            memory: MemoryConfig::default(),
            max_in_progress: 4096,
        }
    }
}

/// A message for the execute handler.
#[derive(Debug, Clone, PartialEq)]
pub struct ExecJob {
    /// Its number, for [`Member::exec_done`].
    pub ticket: u64,
    /// The message (this member already appended to `path_history`).
    pub message: Message,
    /// Who sent it.
    pub from: Address,
}

/// What the execute handler says.
#[derive(Debug, Clone, PartialEq)]
pub enum Execution {
    /// Done now: the result, or why it failed.
    Done(Result<serde_json::Value, String>),
    /// It runs elsewhere; the application calls [`Member::exec_done`] with
    /// the job's ticket (within the execute timeout).
    Later,
}

/// The application's execute handler.
pub type Executor = Box<dyn FnMut(&ExecJob) -> Execution + Send>;

/// An execute handler that answers with the content itself (`rmbus
/// member`'s default).
pub fn echo_executor() -> Executor {
    Box::new(|job: &ExecJob| Execution::Done(Ok(job.message.content.to_json())))
}

/// A delivery being executed or stored.
#[derive(Debug)]
struct Work {
    message: Message,
    from: Address,
    /// The requests (the first and its retries) waiting for the answer.
    requests: Vec<RequestId>,
}

/// A member.
pub struct Member {
    description: Description,
    config: MemberConfig,
    client: Client,
    executor: Option<Executor>,
    answered: Answered,
    /// Messages in progress, by id.
    work: HashMap<String, Work>,
    /// Execute jobs running elsewhere: ticket → message id, and their deadlines.
    jobs: HashMap<u64, String>,
    job_deadlines: Deadlines<u64>,
    next_job: u64,
    /// Store operations for the next batch, and the messages it answers.
    store_ops: Vec<StoreOp>,
    store_waiting: Vec<String>,
    /// Batches handed out and not done: ticket → messages they answer.
    batches: HashMap<u64, Vec<String>>,
    next_batch: u64,
    events: VecDeque<Event>,
    /// Per sender: its deliveries put back in order.
    order: Reorder<Waiting>,
    /// Who was answered a describe lately: the answer and when. An answer
    /// that fails is forgotten, so the next describe is answered again.
    describe_answered: HashMap<Address, (crate::proto::MsgId, Instant)>,
    /// Set when it announces; see [`Member::take_announced`].
    announced: bool,
    /// When it started, for its later announces ([`REANNOUNCES`]).
    started_at: Option<Instant>,
    /// How many of its later announces it has made.
    reannounced: usize,
}

/// When a member announces itself again after it starts, twice: each entry
/// is how long after its start, plus up to how much more (spread by its
/// id, so that members that start together do not announce together
/// again). 1–3 s, then 10–20 s.
pub const REANNOUNCES: [(Duration, Duration); 2] = [
    (Duration::from_secs(1), Duration::from_secs(2)),
    (Duration::from_secs(10), Duration::from_secs(10)),
];

/// The most askers remembered at once (beyond, describes are answered
/// without being remembered).
const MAX_DESCRIBE_ANSWERED: usize = 1024;

/// A delivery waiting for an earlier one.
#[derive(Debug)]
struct Waiting {
    message: Message,
    from: Address,
    requests: Vec<RequestId>,
}

impl Absorb for Waiting {
    fn absorb(&mut self, other: Waiting) {
        self.requests.extend(other.requests);
    }
}

impl std::fmt::Debug for Member {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Member")
            .field("description", &self.description)
            .field("work", &self.work.len())
            .finish_non_exhaustive()
    }
}

impl Member {
    /// A member described by `description` (its `started` layers run once
    /// [`Member::start`] is called), with the seed of its message ids.
    pub fn new(mut description: Description, config: MemberConfig, seed: u64) -> Member {
        let mut client = Client::new(config.client.clone(), seed);
        client.for_member(&description.id, config.has_store);
        description.state = state_of(description.state, description.started);
        Member {
            answered: Answered::new(config.memory),
            description,
            config,
            client,
            executor: None,
            work: HashMap::default(),
            jobs: HashMap::default(),
            job_deadlines: Deadlines::default(),
            next_job: 0,
            store_ops: Vec::new(),
            store_waiting: Vec::new(),
            batches: HashMap::default(),
            // Tickets of a member hosted again under the same id do not
            // meet the tickets of its earlier self still in a store's queue.
            next_batch: seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) & !0xFFFF_FFFF,
            events: VecDeque::new(),
            order: Reorder::default(),
            describe_answered: HashMap::default(),
            announced: false,
            started_at: None,
            reannounced: 0,
        }
    }

    /// The address a member with id `id` takes on the bus (the runtime adds
    /// the `id` element): `(app:cmbs module:member member:<id>)`.
    pub fn address(id: &str) -> Result<Address, crate::wire::AddressError> {
        Address::new([("app", "cmbs"), ("module", "member"), ("member", id)])
    }

    /// Registers the execute handler.
    pub fn set_executor(&mut self, executor: Executor) {
        self.executor = Some(executor);
    }

    /// What the member says about itself.
    pub fn description(&self) -> &Description {
        &self.description
    }

    /// Its client: the directory and the outbox.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// How many answered message ids it remembers.
    pub fn remembered(&self) -> usize {
        self.answered.len()
    }

    /// Joins CMBS on `ep`: serves the CMBS RPCs, announces itself and asks
    /// the other members to announce (a hosted member does not ask: its
    /// host's directory knows them already).
    pub fn start(&mut self, ep: &mut Endpoint, now: Instant) {
        let mut rpc = ep.rpc();
        rpc.serve(Deliver::NAME);
        rpc.serve(ActionRequest::NAME);
        self.announce(ep, now);
        if !self.client.is_hosted() {
            self.client.describe(ep, now);
        }
        // Again, later, twice: members that start together (a host
        // bringing back thousands, several hosts at once) send their
        // announces in bursts a receiver may drop for seconds, and a host
        // that missed its hello and its announces would otherwise not know
        // the member is there before its next hello (about a minute on a
        // bus of 10,000).
        self.started_at = Some(now);
        self.reannounced = 0;
    }

    /// When its next later announce is due, if one is left.
    fn reannounce_at(&self) -> Option<Instant> {
        let (after, spread) = REANNOUNCES.get(self.reannounced)?;
        let hash = self
            .description
            .id
            .bytes()
            .fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)));
        let spread = Duration::from_millis(hash % (spread.as_millis() as u64).max(1));
        Some(self.started_at? + *after + spread)
    }

    /// Its client, to hand it what its host learns
    /// ([`Client::make_hosted`]).
    pub(crate) fn client_mut(&mut self) -> &mut Client {
        &mut self.client
    }

    /// `entry` is new or changed in the host's directory (see
    /// [`Client::on_described`]).
    pub fn on_described(&mut self, ep: &mut Endpoint, now: Instant, entry: &super::Entry) {
        self.client.on_described(ep, now, entry);
        self.pull_client_ops();
    }

    /// True once if it announced a description since the last call (its
    /// host then knows it without waiting for the announce to come back).
    pub fn take_announced(&mut self) -> bool {
        std::mem::take(&mut self.announced)
    }

    /// True while deliveries wait for earlier ones from their sender: the
    /// member then needs to hear that a sender left (its waiting deliveries
    /// go on at once), as a hosted member otherwise does not.
    pub fn follows_peers(&self) -> bool {
        self.order.next_timeout().is_some()
    }

    /// Takes up what a store kept over a restart: the ids (and results) of
    /// stored messages, answered from memory if retried, and held messages.
    pub fn restore(
        &mut self,
        now: Instant,
        wall: SystemTime,
        stored: Vec<(String, Option<serde_json::Value>)>,
        held: Vec<HeldRecord>,
    ) {
        for (id, result) in stored {
            self.answered.remember(now, &id, result, true);
        }
        self.client.restore_held(now, wall, held);
    }

    /// Sends a message (see [`Client::publish`]).
    pub fn publish(
        &mut self,
        ep: &mut Endpoint,
        now: Instant,
        wall: SystemTime,
        publish: Publish,
    ) -> Result<String, Box<Report>> {
        let r = self.client.publish(ep, now, wall, publish);
        self.pull_client_ops();
        r
    }

    /// Changes the description (topics, providers, endpoint names,
    /// neighbors) and announces it if anything changed; the id and the
    /// started layers stay (use actions for those).
    pub fn update(&mut self, ep: &mut Endpoint, now: Instant, f: impl FnOnce(&mut Description)) {
        let before = self.description.clone();
        f(&mut self.description);
        self.description.id = before.id.clone();
        self.description.started = before.started;
        self.description.state = before.state;
        if self.description != before {
            self.announce(ep, now);
        }
    }

    /// Runs an action; the answer says what the member is after it.
    pub fn action(&mut self, ep: &mut Endpoint, now: Instant, action: Action) -> ActionAnswer {
        self.act(ep, now, action, None)
    }

    fn act(
        &mut self,
        ep: &mut Endpoint,
        now: Instant,
        action: Action,
        by: Option<Address>,
    ) -> ActionAnswer {
        let before = self.description.clone();
        let d = &mut self.description;
        match action {
            Action::Start(l) => {
                d.started.insert(l);
            }
            Action::Stop(l) => {
                d.started.remove(l);
            }
            Action::Suspend => d.state = MemberState::Suspended,
            Action::Resume => {
                if d.state == MemberState::Suspended {
                    d.state = MemberState::Inactive;
                }
            }
            Action::CheckNeighbors => self.client.describe(ep, now),
        }
        self.description.state = state_of(self.description.state, self.description.started);
        if self.description != before {
            self.announce(ep, now);
        }
        self.events.push_back(Event::Acted {
            action,
            by,
            description: self.description.clone(),
        });
        let mut answer = ActionAnswer {
            member: self.description.clone(),
            neighbors: Vec::new(),
            members: Vec::new(),
        };
        if action == Action::CheckNeighbors {
            let dir = self.client.directory();
            answer.neighbors = self
                .description
                .neighbors
                .iter()
                .map(|n| NeighborCheck {
                    endpoint: n.clone(),
                    member: dir.named(n).map(|e| e.description.id.clone()),
                })
                .collect();
            answer.members = dir.iter().map(|e| e.description.clone()).collect();
        }
        answer
    }

    /// Marks the member failed (its bus session died) or takes it back
    /// (`false`: its state follows its layers again).
    pub fn set_failed(&mut self, failed: bool) {
        self.description.state = if failed {
            MemberState::Failed
        } else {
            state_of(MemberState::Inactive, self.description.started)
        };
    }

    /// Answers a describe with an announce to the asker, sent reliably so
    /// that it survives loss (to the group, unreliably, if the asker cannot
    /// be sent to reliably); one asker at most once a
    /// [`DISCOVERY_INTERVAL`] while its reliable answer is retransmitted
    /// (once that answer fails, the next describe is answered again).
    fn answer_describe(&mut self, ep: &mut Endpoint, now: Instant, asker: &Address) {
        self.describe_answered
            .retain(|_, (_, at)| now.duration_since(*at) < DISCOVERY_INTERVAL);
        if self.describe_answered.contains_key(asker) {
            return;
        }
        let cmd = Announce {
            description: self.description.clone(),
        }
        .into_command();
        match ep.send(now, asker, vec![cmd.clone()], Delivery::Reliable) {
            Ok(id) => {
                if self.describe_answered.len() < MAX_DESCRIBE_ANSWERED {
                    self.describe_answered.insert(asker.clone(), (id, now));
                }
            }
            Err(_) => {
                if let Err(e) = ep.send(now, &cmbs_group(), vec![cmd], Delivery::Unreliable) {
                    tracing::warn!("cannot answer a describe: {e}");
                }
            }
        }
    }

    fn announce(&mut self, ep: &mut Endpoint, now: Instant) {
        self.announced = true;
        if self.config.has_store {
            // Every description it announces is the one a restart takes up.
            self.store_ops
                .push(StoreOp::Describe(self.description.clone()));
        }
        self.send_announce(ep, now);
    }

    /// Tells the members' group what it is (nothing to store).
    fn send_announce(&mut self, ep: &mut Endpoint, now: Instant) {
        let cmd = Announce {
            description: self.description.clone(),
        }
        .into_command();
        if let Err(e) = ep.send(now, &cmbs_group(), vec![cmd], Delivery::Unreliable) {
            tracing::warn!("cannot announce: {e}");
        }
    }

    /// Takes the endpoint events CMBS consumes; every other one comes back.
    pub fn handle_event(
        &mut self,
        ep: &mut Endpoint,
        now: Instant,
        event: BusEvent,
    ) -> Option<BusEvent> {
        let rest = match event {
            BusEvent::Rpc(RpcEvent::Request(req)) if req.name == Deliver::NAME => {
                self.on_deliver(ep, now, req.src.clone(), Some(req.id), &req.args);
                None
            }
            BusEvent::Rpc(RpcEvent::Request(req)) if req.name == ActionRequest::NAME => {
                self.on_action(ep, now, &req);
                None
            }
            BusEvent::Command { src, command, .. } if command.name == Deliver::NAME => {
                self.on_deliver(ep, now, src, None, &command.args);
                None
            }
            BusEvent::Command { src, command, .. } if command.name == Describe::NAME => {
                self.answer_describe(ep, now, &src);
                None
            }
            BusEvent::DeliveryFailed { id, dst } => {
                if self
                    .describe_answered
                    .get(&dst)
                    .is_some_and(|(a, _)| *a == id)
                {
                    self.describe_answered.remove(&dst);
                }
                self.client
                    .handle_event(ep, now, BusEvent::DeliveryFailed { id, dst })
            }
            BusEvent::PeerLeft { addr, reason } => {
                self.sender_left(ep, now, &addr);
                self.client
                    .handle_event(ep, now, BusEvent::PeerLeft { addr, reason })
            }
            other => self.client.handle_event(ep, now, other),
        };
        self.pull_client_ops();
        rest
    }

    fn on_action(&mut self, ep: &mut Endpoint, now: Instant, req: &Request) {
        let reply = match ActionRequest::from_args(&req.args) {
            Ok(a) => self
                .act(ep, now, a.action, Some(req.src.clone()))
                .to_reply(),
            Err(e) => Reply::failed("UNKNOWN_ACTION", &e),
        };
        if let Err(e) = ep.rpc().reply(now, req.id, reply) {
            tracing::warn!("cannot answer an action: {e}");
        }
    }

    fn on_deliver(
        &mut self,
        ep: &mut Endpoint,
        now: Instant,
        from: Address,
        request: Option<RequestId>,
        args: &[Value],
    ) {
        let (message, order) = match Deliver::from_args(args) {
            Ok(d) => (d.message, d.order),
            Err(e) => {
                let r = Refusal::new(Code::Malformed, e);
                return self.refuse(
                    ep,
                    now,
                    String::new(),
                    from,
                    request.into_iter().collect(),
                    r,
                );
            }
        };
        if let Some(result) = self.answered.get(&message.id) {
            let answer = DeliverAnswer::Delivered {
                result: result.clone(),
            };
            if let Some(id) = request {
                answer_request(ep, now, id, &answer);
            }
            return;
        }
        if let Some(w) = self.work.get_mut(&message.id) {
            w.requests.extend(request);
            return;
        }
        let waiting = Waiting {
            message,
            from,
            requests: request.into_iter().collect(),
        };
        match order {
            None => self.accept(ep, now, waiting),
            Some(o) => {
                let from = waiting.from.clone();
                for w in self.order.put(now, &from, waiting, o) {
                    self.accept(ep, now, w);
                }
            }
        }
    }

    /// A sender left: what it had waiting goes on.
    fn sender_left(&mut self, ep: &mut Endpoint, now: Instant, addr: &Address) {
        for w in self.order.sender_left(addr) {
            self.accept(ep, now, w);
        }
    }

    /// Checks, executes, stores and answers one delivery (steps 2–6).
    fn accept(&mut self, ep: &mut Endpoint, now: Instant, w: Waiting) {
        let Waiting {
            message,
            from,
            requests,
        } = w;
        if let Err(r) = self.check(&message) {
            return self.refuse(ep, now, message.id, from, requests, r);
        }
        let mut message = message;
        message.path_history.push(self.description.id.clone());
        let work = Work {
            message,
            from,
            requests,
        };
        if (work.message.executable || work.message.storable)
            && self.work.len() >= self.config.max_in_progress
        {
            let code = if work.message.executable {
                Code::ExecFailed
            } else {
                Code::StoreFailed
            };
            let why = format!(
                "busy: {} deliveries are being executed or stored",
                self.work.len()
            );
            let r = Refusal::new(code, why);
            return self.refuse(ep, now, work.message.id, work.from, work.requests, r);
        }
        if !work.message.executable && !work.message.storable {
            // Nothing to wait for: answer at once.
            return self.answer_delivered(ep, now, work, false);
        }
        let id = work.message.id.clone();
        let executable = work.message.executable;
        self.work.insert(id.clone(), work);
        if executable {
            self.execute(ep, now, &id);
        } else {
            self.after_exec(ep, now, &id);
        }
    }

    fn check(&self, m: &Message) -> Result<(), Refusal> {
        let d = &self.description;
        if !d.started.contains(m.layer) {
            return Err(Refusal::new(
                Code::LayerStopped,
                format!("{} is stopped on this member", m.layer),
            ));
        }
        if matches!(d.state, MemberState::Suspended | MemberState::Failed) {
            return Err(Refusal::new(
                Code::Suspended,
                format!("this member is {}", d.state),
            ));
        }
        if m.path_history.contains(&d.id) {
            return Err(Refusal::new(
                Code::Loop,
                "this member is already in its path_history",
            ));
        }
        if m.storable && !self.config.has_store {
            return Err(Refusal::new(Code::NotStorable, "this member has no store"));
        }
        if m.layer == Layer::L1 && !m.receiver.as_deref().is_some_and(|r| d.is_named(r)) {
            return Err(Refusal::new(
                Code::Malformed,
                "an L1 message for another member",
            ));
        }
        Ok(())
    }

    fn execute(&mut self, ep: &mut Endpoint, now: Instant, id: &str) {
        let Some(w) = self.work.get(id) else { return };
        let Some(executor) = self.executor.as_mut() else {
            let r = Refusal::new(Code::ExecFailed, "this member has no execute handler");
            return self.fail_work(ep, now, id, r);
        };
        let ticket = self.next_job;
        self.next_job += 1;
        let job = ExecJob {
            ticket,
            message: w.message.clone(),
            from: w.from.clone(),
        };
        match executor(&job) {
            Execution::Done(result) => self.exec_finished(ep, now, id, result),
            Execution::Later => {
                self.jobs.insert(ticket, id.to_owned());
                self.job_deadlines
                    .set(ticket, now + self.config.exec_timeout);
            }
        }
    }

    /// The outcome of execute job `ticket` that ran elsewhere. Late or
    /// unknown tickets are ignored (the job already failed as timed out).
    pub fn exec_done(
        &mut self,
        ep: &mut Endpoint,
        now: Instant,
        ticket: u64,
        result: Result<serde_json::Value, String>,
    ) {
        let Some(id) = self.jobs.remove(&ticket) else {
            return;
        };
        self.job_deadlines.remove(&ticket);
        self.exec_finished(ep, now, &id, result);
    }

    fn exec_finished(
        &mut self,
        ep: &mut Endpoint,
        now: Instant,
        id: &str,
        result: Result<serde_json::Value, String>,
    ) {
        match result {
            Ok(v) => {
                if let Some(w) = self.work.get_mut(id) {
                    w.message.result = Some(v);
                }
                self.after_exec(ep, now, id);
            }
            Err(e) => self.fail_work(ep, now, id, Refusal::new(Code::ExecFailed, e)),
        }
    }

    fn after_exec(&mut self, ep: &mut Endpoint, now: Instant, id: &str) {
        let Some(w) = self.work.get_mut(id) else {
            return;
        };
        if w.message.storable {
            self.store_ops.push(StoreOp::Save {
                message: w.message.clone(),
                from: w.from.to_string(),
            });
            self.store_waiting.push(id.to_owned());
        } else {
            self.finish(ep, now, id, false);
        }
    }

    fn finish(&mut self, ep: &mut Endpoint, now: Instant, id: &str, stored: bool) {
        if let Some(w) = self.work.remove(id) {
            self.answer_delivered(ep, now, w, stored);
        }
    }

    /// Answers `w` delivered, remembers that, and tells the application.
    fn answer_delivered(&mut self, ep: &mut Endpoint, now: Instant, w: Work, stored: bool) {
        let answer = DeliverAnswer::Delivered {
            result: w.message.result.clone(),
        };
        for r in &w.requests {
            answer_request(ep, now, *r, &answer);
        }
        self.answered
            .remember(now, &w.message.id, w.message.result.clone(), stored);
        self.events.push_back(Event::Received {
            message: w.message,
            from: w.from,
        });
    }

    fn fail_work(&mut self, ep: &mut Endpoint, now: Instant, id: &str, refusal: Refusal) {
        if let Some(w) = self.work.remove(id) {
            self.refuse(ep, now, id.to_owned(), w.from, w.requests, refusal);
        }
    }

    fn refuse(
        &mut self,
        ep: &mut Endpoint,
        now: Instant,
        id: String,
        from: Address,
        requests: Vec<RequestId>,
        refusal: Refusal,
    ) {
        let answer = DeliverAnswer::Refused(refusal.clone());
        for r in requests {
            answer_request(ep, now, r, &answer);
        }
        self.events.push_back(Event::Refused { id, from, refusal });
    }

    /// True if [`Member::poll_store`] has a batch to hand out.
    pub fn has_store_work(&self) -> bool {
        !self.store_ops.is_empty() || self.client.has_store_ops()
    }

    /// The next batch of store operations, to commit together off the bus
    /// loop; then call [`Member::store_done`] with its ticket.
    pub fn poll_store(&mut self) -> Option<StoreBatch> {
        self.pull_client_ops();
        if self.store_ops.is_empty() {
            return None;
        }
        let ticket = self.next_batch;
        self.next_batch += 1;
        self.batches
            .insert(ticket, std::mem::take(&mut self.store_waiting));
        Some(StoreBatch {
            ticket,
            member: self.description.id.clone(),
            ops: std::mem::take(&mut self.store_ops),
        })
    }

    /// The store committed batch `ticket` (`Ok`), or could not (`Err`: each
    /// delivery in it is refused `STORE_FAILED` with that reason).
    pub fn store_done(
        &mut self,
        ep: &mut Endpoint,
        now: Instant,
        ticket: u64,
        result: Result<(), String>,
    ) {
        let Some(ids) = self.batches.remove(&ticket) else {
            return;
        };
        for id in ids {
            match &result {
                Ok(()) => self.finish(ep, now, &id, true),
                Err(e) => self.fail_work(ep, now, &id, Refusal::new(Code::StoreFailed, e.clone())),
            }
        }
    }

    fn pull_client_ops(&mut self) {
        self.store_ops.extend(self.client.take_store_ops());
    }

    /// Execute timeouts and the client's holds.
    pub fn handle_timeout(&mut self, ep: &mut Endpoint, now: Instant) {
        if self.reannounce_at().is_some_and(|t| t <= now) {
            self.reannounced += 1;
            self.send_announce(ep, now);
        }
        for w in self.order.take_due(now) {
            self.accept(ep, now, w);
        }
        for ticket in self.job_deadlines.take_due(now) {
            if let Some(id) = self.jobs.remove(&ticket) {
                let secs = self.config.exec_timeout.as_secs_f64();
                let r = Refusal::new(
                    Code::ExecFailed,
                    format!("the execute handler took longer than {secs} s"),
                );
                self.fail_work(ep, now, &id, r);
            }
        }
        self.client.handle_timeout(ep, now);
        self.answered.prune(now);
        self.pull_client_ops();
    }

    /// When [`Member::handle_timeout`] is due next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        [
            self.job_deadlines.next(),
            self.order.next_timeout(),
            self.client.poll_timeout(),
            self.reannounce_at(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// The next event: the member's own first, then its client's.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front().or_else(|| self.client.poll_event())
    }
}

fn answer_request(ep: &mut Endpoint, now: Instant, id: RequestId, answer: &DeliverAnswer) {
    if let Err(e) = ep.rpc().reply(now, id, answer.to_reply()) {
        tracing::debug!("cannot answer a delivery: {e}");
    }
}

/// The state a member's layers give it, unless a user suspended it or the
/// runtime marked it failed.
fn state_of(state: MemberState, started: LayerSet) -> MemberState {
    match state {
        MemberState::Suspended | MemberState::Failed => state,
        _ if started.is_empty() => MemberState::Inactive,
        _ => MemberState::Active,
    }
}
