//! [`spawn_members`]: CMBS members hosted on a thread of their own, with a
//! cloneable [`MembersHandle`] (feature `sqlite` too).
//!
//! The thread runs one [`Host`] with a [`Site`] over it: a plain sender
//! entity (the one [`MembersHandle::publish`] sends from; optional, see
//! [`MembersOptions::sender`]) and every member hosted with
//! [`MembersHandle::host`], sharing the host's directory, one
//! store worker and one reading connection (an SQLite file, optional), and
//! an execute handler that runs each job on a thread of its own. Every call
//! of the handle has a blocking form and a `_then` form that hands the
//! answer to a callback (run on the members' thread: keep it short); the
//! members' events (messages received, actions, the directory's changes)
//! go to the `on_event` callback given at the start.
//!
//! ```no_run
//! use rmbus::cmbs::{Content, Description, Layer, LayerSet, Message};
//! use rmbus::config::file;
//! use rmbus::runtime::{spawn_members, MembersEvent, MembersOptions};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let config = file::load(&file::locate(None)?)?; // $MBUS, else ~/.mbus
//! let members = spawn_members(&config, MembersOptions::default(), |e| {
//!     if let MembersEvent::Member { member, event } = e {
//!         println!("{member}: {event:?}");
//!     }
//! })?;
//! let mut d = Description::new("sensor-1");
//! d.started = LayerSet::ALL;
//! members.host(d)?;
//! let m = Message::new("", Layer::L2, Content::Json(serde_json::json!({"t": 21})));
//! let report = members.publish(m)?;
//! println!("{:?}", report.outcome);
//! members.stop();
//! # Ok(())
//! # }
//! ```

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use mio::{Events, Interest, Poll, Token, Waker};

use crate::cmbs::cmd::{ActionAnswer, ActionRequest};
use crate::cmbs::{
    echo_executor, Action, Client, ClientConfig, Description, Entry, Event, ExecJob, Execution,
    Member, MemberConfig, MemberState, Message, Participant, Publish, Report, SharedDirectory,
    Site, SiteEvent,
};
use crate::config::Config;
use crate::proto::{Endpoint, Event as BusEvent, LeaveReason};
use crate::rpc::{CallId, Outcome as RpcOutcome, RpcEvent};
use crate::store::{Retention, SqliteStore, Store, StoreError, Worker};
use crate::wire::Address;

use super::{BindError, EntityId, Host};

const HOST: Token = Token(0);
const WAKE: Token = Token(1);

/// How often the host asks the bus to describe itself while a caller of
/// [`MembersHandle::learn`] waits, on a small bus: a describe or its
/// answers may be lost. On a large bus, less often: one millisecond per
/// member known, so that the announces it brings stay near a thousand a
/// second.
pub const LEARN_ASK_EVERY: Duration = Duration::from_millis(250);

/// An execute handler: the job (its message and sender), and the result or
/// why it failed. It runs on a thread of its own per job; one that takes
/// longer than the execute timeout ends `EXEC_TIMEOUT` for the sender.
pub type ExecHandler = Arc<dyn Fn(&ExecJob) -> Result<serde_json::Value, String> + Send + Sync>;

/// How the members run.
#[derive(Clone)]
pub struct MembersOptions {
    /// The plain sender's address, without its `id` element
    /// (`(app:cmbs module:host)` by default). `None`: no plain sender (one
    /// entity fewer on the bus); [`MembersHandle::publish`] is then
    /// refused, and the first hosted member asks the bus for its members.
    pub sender: Option<Address>,
    /// The SQLite file the members keep what they receive and hold in
    /// (`None`: no store; storable messages are refused `NOT_STORABLE`).
    pub store: Option<PathBuf>,
    /// How many received messages the store keeps, and how long.
    pub retention: Retention,
    /// How long an action on a member elsewhere on the bus may take (5 s).
    pub action_timeout: Duration,
    /// The execute handler (`None`: the content is the result).
    pub exec: Option<ExecHandler>,
    /// How long an execution may take (5 s).
    pub exec_timeout: Duration,
    /// The sender's and the members' delivery settings.
    pub client: ClientConfig,
}

impl Default for MembersOptions {
    fn default() -> MembersOptions {
        MembersOptions {
            sender: Some(
                Address::new([("app", "cmbs"), ("module", "host")]).expect("a constant address"),
            ),
            store: None,
            retention: Retention::default(),
            action_timeout: Duration::from_secs(5),
            exec: None,
            exec_timeout: Duration::from_secs(5),
            client: ClientConfig::default(),
        }
    }
}

impl std::fmt::Debug for MembersOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MembersOptions")
            .field("sender", &self.sender)
            .field("store", &self.store)
            .field("retention", &self.retention)
            .field("action_timeout", &self.action_timeout)
            .field("exec", &self.exec.as_ref().map(|_| "a handler"))
            .field("exec_timeout", &self.exec_timeout)
            .finish_non_exhaustive()
    }
}

/// What the members' thread tells the application.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum MembersEvent {
    /// A member appeared in the host's directory.
    Joined(Entry),
    /// A member of the directory announced a new description or address.
    Changed {
        /// The member now.
        entry: Entry,
        /// What it said before.
        before: Description,
    },
    /// A member left the directory (it said bye, or its entity expired).
    Left {
        /// The member as it was.
        entry: Entry,
        /// Why.
        reason: LeaveReason,
    },
    /// An event of hosted member `member`: a message received, an action
    /// run, a held message's line settled, a report of its own message.
    Member {
        /// The member's id.
        member: String,
        /// What happened.
        event: Event,
    },
    /// An event of the plain sender: a line of a held message settled (the
    /// report a publish waits for goes to its caller instead).
    Sender(Event),
}

/// What [`MembersHandle::learn`] found when it returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Learned {
    /// True if the condition held (false: the deadline passed first).
    pub reached: bool,
    /// Member entities heard on the bus whose description has not come
    /// (member id and address): they may be recipients nobody knows of.
    pub undescribed: Vec<(String, Address)>,
}

/// A condition on the host's directory, for [`MembersHandle::learn`].
type Until = Box<dyn Fn(&SharedDirectory) -> bool + Send>;

/// Why the members' thread could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MembersSpawnError {
    /// The bus could not be joined.
    #[error("cannot join the bus: {0}")]
    Bind(#[from] BindError),
    /// The store could not be opened.
    #[error("{path}: the store failed: {source}")]
    Store {
        /// The store's file.
        path: PathBuf,
        /// Why.
        source: StoreError,
    },
    /// The event loop or a thread could not be set up.
    #[error("cannot start the members' thread: {0}")]
    Io(#[from] io::Error),
}

/// Why a [`MembersHandle`] call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MembersError {
    /// The members' thread has stopped.
    #[error("the members' thread has stopped")]
    Stopped,
    /// A blocking call was made on the members' thread (from a callback):
    /// it would wait for itself. Use the `_then` form there.
    #[error("a blocking members call was made on the members' thread; use its _then form")]
    OnMembersThread,
    /// There is no such member, or the store or the bus refused.
    #[error("{0}")]
    Refused(String),
    /// A member elsewhere on the bus did not answer in time.
    #[error("{0}")]
    TimedOut(String),
    /// A member elsewhere on the bus answered, but not as the protocol says.
    #[error("{0}")]
    Malformed(String),
}

type Reply<T> = Box<dyn FnOnce(Result<T, MembersError>) + Send>;

/// How the members' thread ended (once it has), and who waits for it.
type Ended = (Mutex<Option<Result<(), String>>>, Condvar);

/// What a handle asks of the thread.
enum Command {
    Host(Box<Description>, Reply<Description>),
    Update(Box<Description>, Reply<Description>),
    Act(String, Action, Reply<ActionAnswer>),
    Remove(String, Reply<()>),
    Publish(Option<String>, Box<Publish>, Reply<Report>),
    Learn(Instant, Until, Reply<Learned>),
}

/// The directory as the handles see it, by member id, and how many times
/// it changed.
#[derive(Default)]
struct DirectorySnapshot {
    entries: Mutex<BTreeMap<String, Arc<Entry>>>,
    changes: AtomicU64,
}

impl DirectorySnapshot {
    /// Counts a change, made before this is called.
    fn changed(&self) {
        self.changes.fetch_add(1, Ordering::Release);
    }
}

/// A cloneable handle on members hosted by [`spawn_members`]. Dropping every
/// handle does not stop the thread: [`MembersHandle::stop`] does (each
/// member says bye).
#[derive(Clone)]
pub struct MembersHandle {
    commands: Sender<Command>,
    waker: Arc<Waker>,
    /// The directory as the handle sees it, by member id.
    directory: Arc<DirectorySnapshot>,
    alive: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    /// How the thread ended, once it has.
    ended: Arc<Ended>,
    thread: std::thread::ThreadId,
}

impl std::fmt::Debug for MembersHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MembersHandle")
            .field("alive", &self.is_alive())
            .finish_non_exhaustive()
    }
}

impl MembersHandle {
    fn send(&self, c: Command) -> Result<(), (Command, MembersError)> {
        if !self.alive.load(Ordering::Acquire) {
            return Err((c, MembersError::Stopped));
        }
        self.commands
            .send(c)
            .map_err(|mpsc::SendError(c)| (c, MembersError::Stopped))?;
        if let Err(e) = self.waker.wake() {
            tracing::warn!("cannot wake the members' thread: {e}");
        }
        Ok(())
    }

    fn ask<T: Send + 'static>(
        &self,
        make: impl FnOnce(Reply<T>) -> Command,
        then: impl FnOnce(Result<T, MembersError>) + Send + 'static,
    ) {
        if let Err((c, e)) = self.send(make(Box::new(then))) {
            fail(c, e);
        }
    }

    fn blocking<T: Send + 'static>(
        &self,
        make: impl FnOnce(Reply<T>) -> Command,
    ) -> Result<T, MembersError> {
        if std::thread::current().id() == self.thread {
            return Err(MembersError::OnMembersThread);
        }
        let (tx, rx) = mpsc::channel();
        self.ask(make, move |r| {
            let _ = tx.send(r);
        });
        rx.recv().unwrap_or(Err(MembersError::Stopped))
    }

    /// Hosts a member described by `d` (a store's messages and held
    /// records for its id taken up); its description once started. An id
    /// hosted already is refused.
    pub fn host(&self, d: Description) -> Result<Description, MembersError> {
        self.blocking(|r| Command::Host(Box::new(d), r))
    }

    /// [`MembersHandle::host`], the answer to `then`.
    pub fn host_then(
        &self,
        d: Description,
        then: impl FnOnce(Result<Description, MembersError>) + Send + 'static,
    ) {
        self.ask(|r| Command::Host(Box::new(d), r), then)
    }

    /// Changes hosted member `d.id`'s endpoint names, neighbors, topics and
    /// providers (announced if anything changed); its description.
    pub fn update(&self, d: Description) -> Result<Description, MembersError> {
        self.blocking(|r| Command::Update(Box::new(d), r))
    }

    /// [`MembersHandle::update`], the answer to `then`.
    pub fn update_then(
        &self,
        d: Description,
        then: impl FnOnce(Result<Description, MembersError>) + Send + 'static,
    ) {
        self.ask(|r| Command::Update(Box::new(d), r), then)
    }

    /// Runs `action` on member `id`: hosted here, or elsewhere on the bus
    /// (as `cmbs.member.action`, from the plain sender, else from the first
    /// hosted member; refused when there is neither).
    pub fn act(&self, id: &str, action: Action) -> Result<ActionAnswer, MembersError> {
        self.blocking(|r| Command::Act(id.to_owned(), action, r))
    }

    /// [`MembersHandle::act`], the answer to `then`.
    pub fn act_then(
        &self,
        id: &str,
        action: Action,
        then: impl FnOnce(Result<ActionAnswer, MembersError>) + Send + 'static,
    ) {
        self.ask(|r| Command::Act(id.to_owned(), action, r), then)
    }

    /// Says bye for hosted member `id` and forgets it (its deliveries still
    /// open end `UNDELIVERABLE` for their senders). Not an error if there is
    /// no such member.
    pub fn remove(&self, id: &str) -> Result<(), MembersError> {
        self.blocking(|r| Command::Remove(id.to_owned(), r))
    }

    /// [`MembersHandle::remove`], the answer to `then`.
    pub fn remove_then(
        &self,
        id: &str,
        then: impl FnOnce(Result<(), MembersError>) + Send + 'static,
    ) {
        self.ask(|r| Command::Remove(id.to_owned(), r), then)
    }

    /// Sends `message` from the plain sender; its report once every line
    /// has settled (a message refused before sending is a report too).
    /// Refused without a plain sender ([`MembersOptions::sender`]).
    pub fn publish(&self, message: Message) -> Result<Report, MembersError> {
        self.blocking(|r| Command::Publish(None, Box::new(Publish::new(message)), r))
    }

    /// Sends `publish` (a hold, an unreliable L2) from hosted member `from`,
    /// or from the plain sender (`None`); its report to `then`.
    pub fn publish_then(
        &self,
        from: Option<&str>,
        publish: Publish,
        then: impl FnOnce(Result<Report, MembersError>) + Send + 'static,
    ) {
        let from = from.map(str::to_owned);
        self.ask(|r| Command::Publish(from, Box::new(publish), r), then)
    }

    /// Waits until `until` holds for the host's directory (checked as it
    /// changes) or `deadline` passes; which it was, and the member entities
    /// still undescribed. Meanwhile the host asks the bus to describe itself
    /// again every [`LEARN_ASK_EVERY`] (a describe or its answers may be
    /// lost), and asks the members it has heard but not had described at
    /// each discovery round ([`crate::cmbs::DISCOVERY_INTERVAL`]), reliably.
    /// A program about to publish waits so for its directory to settle,
    /// bounded by `deadline`. `until` runs on the members' thread: keep it
    /// short.
    pub fn learn(
        &self,
        deadline: Instant,
        until: impl Fn(&SharedDirectory) -> bool + Send + 'static,
    ) -> Result<Learned, MembersError> {
        self.blocking(|r| Command::Learn(deadline, Box::new(until), r))
    }

    /// [`MembersHandle::learn`], the answer to `then`.
    pub fn learn_then(
        &self,
        deadline: Instant,
        until: impl Fn(&SharedDirectory) -> bool + Send + 'static,
        then: impl FnOnce(Result<Learned, MembersError>) + Send + 'static,
    ) {
        self.ask(|r| Command::Learn(deadline, Box::new(until), r), then)
    }

    fn snapshot(&self) -> MutexGuard<'_, BTreeMap<String, Arc<Entry>>> {
        self.directory
            .entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// The members the host knows of, hosted ones among them (a member
    /// removed here is left out at once).
    pub fn directory(&self) -> Vec<Entry> {
        self.snapshot().values().map(|e| Entry::clone(e)).collect()
    }

    /// A number that grows with every change of [`MembersHandle::directory`]
    /// (a cache of something made from the directory is good while it
    /// stays the same).
    pub fn directory_version(&self) -> u64 {
        self.directory.changes.load(Ordering::Acquire)
    }

    /// Member `id`, if the host knows of it.
    pub fn member(&self, id: &str) -> Option<Entry> {
        self.snapshot().get(id).map(|e| Entry::clone(e))
    }

    /// True while the members' thread runs.
    pub fn is_alive(&self) -> bool {
        self.alive.load(Ordering::Acquire)
    }

    /// Waits until the members' thread has ended (after
    /// [`MembersHandle::stop`], or because its sockets failed: the error).
    pub fn wait(&self) -> Result<(), String> {
        if std::thread::current().id() == self.thread {
            return Err(MembersError::OnMembersThread.to_string());
        }
        let (lock, ended) = &*self.ended;
        let mut state = lock.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if let Some(r) = state.as_ref() {
                return r.clone();
            }
            state = ended.wait(state).unwrap_or_else(|p| p.into_inner());
        }
    }

    /// Stops the members' thread: every member says bye and the store's
    /// last writes are made. Returns at once ([`MembersHandle::wait`] waits);
    /// calls made later fail [`MembersError::Stopped`].
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Release);
        if let Err(e) = self.waker.wake() {
            tracing::warn!("cannot wake the members' thread: {e}");
        }
    }
}

/// Answers `c` with `e`.
fn fail(c: Command, e: MembersError) {
    match c {
        Command::Host(_, r) | Command::Update(_, r) => r(Err(e)),
        Command::Act(_, _, r) => r(Err(e)),
        Command::Remove(_, r) => r(Err(e)),
        Command::Publish(_, _, r) => r(Err(e)),
        Command::Learn(_, _, r) => r(Err(e)),
    }
}

/// Joins the bus `config` describes and starts the members' thread, with a
/// plain sender at `options.sender` (if any); `on_event` gets the members' events on
/// that thread. [`MembersHandle::is_alive`] says if the thread still runs,
/// and [`MembersHandle::wait`] waits for its end. A command sent as the
/// thread stops is answered [`MembersError::Stopped`].
pub fn spawn_members(
    config: &Config,
    options: MembersOptions,
    on_event: impl FnMut(MembersEvent) + Send + 'static,
) -> Result<MembersHandle, MembersSpawnError> {
    let mut host = Host::bind(config)?;
    let sender = match &options.sender {
        Some(address) => Some(host.add(address)?),
        None => None,
    };
    let poll = Poll::new()?;
    poll.registry()
        .register(&mut host, HOST, Interest::READABLE)?;
    let waker = Arc::new(Waker::new(poll.registry(), WAKE)?);
    let stores = match &options.store {
        None => None,
        Some(path) => {
            let failed = |source| MembersSpawnError::Store {
                path: path.clone(),
                source,
            };
            let reader = SqliteStore::open(path).map_err(failed)?;
            let writer = SqliteStore::open(path).map_err(failed)?;
            let notify = notifier(&waker);
            let worker = Worker::spawn(Box::new(writer), options.retention, notify)?;
            Some((worker, reader))
        }
    };
    let (tx, rx) = mpsc::channel();
    let alive = Arc::new(AtomicBool::new(true));
    let stop = Arc::new(AtomicBool::new(false));
    let directory = Arc::new(DirectorySnapshot::default());
    let mut state = Loop::new(
        &mut host,
        sender,
        stores,
        options,
        Arc::clone(&waker),
        Arc::clone(&directory),
        Box::new(on_event),
    );
    let stopping = Arc::clone(&stop);
    let ended: Arc<Ended> = Arc::default();
    let mut guard = EndGuard {
        alive: Arc::clone(&alive),
        ended: Arc::clone(&ended),
        result: Err("the members' thread panicked (in a callback?)".into()),
    };
    let thread = std::thread::Builder::new()
        .name("rmbus-members".into())
        .spawn(move || {
            let result = state.run(&mut host, poll, &rx, &stopping);
            if let Err(e) = &result {
                tracing::error!("the members' thread failed: {e}");
            }
            guard.alive.store(false, Ordering::Release);
            state.finish(&mut host);
            while let Ok(c) = rx.try_recv() {
                fail(c, MembersError::Stopped);
            }
            guard.ended_with(result.map_err(|e| format!("the bus failed: {e}")));
        })?;
    Ok(MembersHandle {
        commands: tx,
        waker,
        directory,
        alive,
        stop,
        ended,
        thread: thread.thread().id(),
    })
}

/// Whatever way the members' thread ends (a panic in a callback too), it
/// is marked stopped and [`MembersHandle::wait`] returns.
struct EndGuard {
    alive: Arc<AtomicBool>,
    ended: Arc<Ended>,
    result: Result<(), String>,
}

impl EndGuard {
    /// How the thread ended, for [`MembersHandle::wait`].
    fn ended_with(&mut self, result: Result<(), String>) {
        self.result = result;
    }
}

impl Drop for EndGuard {
    fn drop(&mut self) {
        self.alive.store(false, Ordering::Release);
        let (lock, cv) = &*self.ended;
        *lock.lock().unwrap_or_else(|p| p.into_inner()) = Some(self.result.clone());
        cv.notify_all();
    }
}

/// A notifier for the store worker and execute threads: wakes the loop.
fn notifier(waker: &Arc<Waker>) -> impl Fn() + Send + Clone + 'static {
    let waker = Arc::clone(waker);
    move || {
        if let Err(e) = waker.wake() {
            tracing::warn!("cannot wake the members' thread: {e}");
        }
    }
}

/// An execute job's end: the member's entity, the job's ticket, its result.
type ExecDone = (EntityId, u64, Result<serde_json::Value, String>);

/// The members' thread's state.
struct Loop {
    site: Site,
    /// The plain sender's entity, if there is one.
    sender: Option<EntityId>,
    /// Hosted members' entities, by member id.
    members: BTreeMap<String, EntityId>,
    /// One store worker for all members, and the connection that reads
    /// what a member's restart takes up.
    stores: Option<(Worker, SqliteStore)>,
    exec: Option<ExecHandler>,
    exec_timeout: Duration,
    action_timeout: Duration,
    client: ClientConfig,
    exec_done: (Sender<ExecDone>, Receiver<ExecDone>),
    waker: Arc<Waker>,
    /// Publishes waiting for their report: by message id, the sending
    /// entity and the reply.
    reports: HashMap<String, (EntityId, Reply<Report>)>,
    /// Actions on members elsewhere: by call, the entity asking and the
    /// reply.
    actions: HashMap<CallId, (EntityId, Reply<ActionAnswer>)>,
    /// Callers waiting for the directory: deadline, condition, reply.
    learning: Vec<(Instant, Until, Reply<Learned>)>,
    /// When the bus is next asked to describe itself, while callers learn.
    ask_again: Option<Instant>,
    directory: Arc<DirectorySnapshot>,
    /// Members removed here whose leaving the directory has not seen yet:
    /// kept out of the snapshot, so that a removed member does not
    /// reappear as one running elsewhere.
    gone: HashSet<String>,
    on_event: Box<dyn FnMut(MembersEvent) + Send>,
}

impl Loop {
    fn new(
        host: &mut Host,
        sender: Option<EntityId>,
        stores: Option<(Worker, SqliteStore)>,
        options: MembersOptions,
        waker: Arc<Waker>,
        directory: Arc<DirectorySnapshot>,
        on_event: Box<dyn FnMut(MembersEvent) + Send>,
    ) -> Loop {
        let mut site = Site::new(host.core_mut());
        if let Some(sender) = sender {
            let client = Client::new(options.client.clone(), rand::random());
            site.add(
                host.core_mut(),
                sender,
                Participant::Sender(Box::new(client)),
            );
            let now = Instant::now();
            // Learn the members already on the bus.
            site.with(host.core_mut(), now, sender, |p, ep| {
                if let Participant::Sender(c) = p {
                    c.describe(ep, now);
                }
            });
        }
        Loop {
            site,
            sender,
            members: BTreeMap::new(),
            stores,
            exec: options.exec,
            exec_timeout: options.exec_timeout,
            action_timeout: options.action_timeout,
            client: options.client,
            exec_done: mpsc::channel(),
            waker,
            reports: HashMap::new(),
            actions: HashMap::new(),
            learning: Vec::new(),
            ask_again: None,
            directory,
            gone: HashSet::new(),
            on_event,
        }
    }

    /// The event loop, until `stop` is set or the sockets fail.
    fn run(
        &mut self,
        host: &mut Host,
        mut poll: Poll,
        commands: &Receiver<Command>,
        stop: &AtomicBool,
    ) -> io::Result<()> {
        let mut events = Events::with_capacity(64);
        let mut next: Option<Instant> = None;
        loop {
            let now = Instant::now();
            let wake = host
                .deadline()
                .into_iter()
                .chain(next)
                .min()
                .map(|t| t.saturating_duration_since(now) + Duration::from_micros(200));
            match poll.poll(&mut events, wake) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
            if stop.load(Ordering::Acquire) {
                return Ok(());
            }
            if events.iter().any(|e| e.token() == HOST) {
                host.on_readable()?;
            }
            host.on_timeout()?;
            while let Some((id, event)) = host.poll_event() {
                self.on_event(host, id, event);
            }
            while let Ok(c) = commands.try_recv() {
                self.command(host, c);
            }
            next = self.tick(host);
            host.flush()?;
        }
    }

    /// The store's last writes are made and answered; then every member
    /// says bye.
    fn finish(&mut self, host: &mut Host) {
        if let Some((worker, _)) = self.stores.take() {
            let now = Instant::now();
            for d in worker.finish() {
                self.site
                    .store_done(host.core_mut(), now, &d.member, d.ticket, d.result);
            }
            if let Err(e) = host.flush() {
                tracing::warn!("cannot send the members' last answers: {e}");
            }
        }
        for (id, entity) in std::mem::take(&mut self.members) {
            self.take_out(host, &id, entity, || MembersError::Stopped);
        }
        if let Some(sender) = self.sender {
            self.site.remove(host.core(), sender);
            host.remove(sender);
        }
        for (_, (_, r)) in self.reports.drain() {
            r(Err(MembersError::Stopped));
        }
        for (_, (_, r)) in self.actions.drain() {
            r(Err(MembersError::Stopped));
        }
        for (_, _, r) in self.learning.drain(..) {
            r(Err(MembersError::Stopped));
        }
    }

    /// Runs `f` on hosted member `id`.
    fn with_member<R>(
        &mut self,
        host: &mut Host,
        id: &str,
        f: impl FnOnce(&mut Member, &mut Endpoint, Instant) -> R,
    ) -> Option<R> {
        let entity = *self.members.get(id)?;
        let now = Instant::now();
        self.site
            .with(host.core_mut(), now, entity, |p, ep| match p {
                Participant::Member(m) => Some(f(m, ep, now)),
                Participant::Sender(_) => None,
            })
            .flatten()
    }

    fn command(&mut self, host: &mut Host, c: Command) {
        let not_hosted =
            |id: &str| MembersError::Refused(format!("member {id} is not hosted here"));
        match c {
            Command::Host(d, reply) => reply(self.host_member(host, *d)),
            Command::Update(d, reply) => {
                let r = self
                    .with_member(host, &d.id, |m, ep, now| {
                        m.update(ep, now, |mine| {
                            mine.sockets = d.sockets.clone();
                            mine.neighbors = d.neighbors.clone();
                            mine.topics = d.topics.clone();
                            mine.providers = d.providers.clone();
                        });
                        m.description().clone()
                    })
                    .ok_or_else(|| not_hosted(&d.id));
                reply(r)
            }
            Command::Act(id, action, reply) => {
                if self.members.contains_key(&id) {
                    let r = self
                        .with_member(host, &id, |m, ep, now| m.action(ep, now, action))
                        .ok_or_else(|| not_hosted(&id));
                    return reply(r);
                }
                let Some(entry) = self.site.directory().directory().get(&id).cloned() else {
                    return reply(Err(MembersError::Refused(format!(
                        "no member {id} on the bus"
                    ))));
                };
                let Some(from) = self.asker() else {
                    return reply(Err(MembersError::Refused(
                        "no entity here to ask from: host a member first".into(),
                    )));
                };
                let (now, timeout) = (Instant::now(), self.action_timeout);
                let call = self.site.with(host.core_mut(), now, from, |_, ep| {
                    ep.rpc().call(
                        now,
                        &entry.address,
                        ActionRequest::NAME,
                        ActionRequest { action }.into_args(),
                        timeout,
                    )
                });
                match call {
                    Some(Ok(call)) => {
                        self.actions.insert(call, (from, reply));
                    }
                    Some(Err(e)) => reply(Err(MembersError::Refused(e.to_string()))),
                    None => reply(Err(MembersError::Stopped)),
                }
            }
            Command::Remove(id, reply) => {
                if let Some(entity) = self.members.remove(&id) {
                    let why = || MembersError::Refused(format!("member {id} was removed first"));
                    self.take_out(host, &id, entity, why);
                    self.snapshot().remove(&id);
                    self.directory.changed();
                    self.gone.insert(id);
                }
                reply(Ok(()))
            }
            Command::Publish(from, p, reply) => {
                let entity = match &from {
                    None => match self.sender {
                        Some(sender) => sender,
                        None => {
                            return reply(Err(MembersError::Refused(
                                "there is no plain sender here: publish from a member".into(),
                            )))
                        }
                    },
                    Some(id) => match self.members.get(id) {
                        Some(e) => *e,
                        None => return reply(Err(not_hosted(id))),
                    },
                };
                if !p.message.id.is_empty() && self.reports.contains_key(&p.message.id) {
                    return reply(Err(MembersError::Refused(format!(
                        "message {} is still being sent",
                        p.message.id
                    ))));
                }
                let (now, wall) = (Instant::now(), SystemTime::now());
                let r = self
                    .site
                    .with(host.core_mut(), now, entity, |p2, ep| match p2 {
                        Participant::Sender(c) => c.publish(ep, now, wall, *p),
                        Participant::Member(m) => m.publish(ep, now, wall, *p),
                    });
                match r {
                    Some(Ok(id)) => {
                        self.reports.insert(id, (entity, reply));
                    }
                    Some(Err(report)) => reply(Ok(*report)),
                    None => reply(Err(MembersError::Stopped)),
                }
            }
            Command::Learn(deadline, until, reply) => {
                self.learning.push((deadline, until, reply));
            }
        }
    }

    fn host_member(
        &mut self,
        host: &mut Host,
        d: Description,
    ) -> Result<Description, MembersError> {
        let refused = |e: &dyn std::fmt::Display| MembersError::Refused(e.to_string());
        if self.members.contains_key(&d.id) {
            return Err(MembersError::Refused(format!(
                "member {} is hosted already",
                d.id
            )));
        }
        let id = d.id.clone();
        let suspended = d.state == MemberState::Suspended;
        // Only reads here: the member's row is written by the store's
        // thread with its first batch (its description, as it starts).
        let (stored, held) = match &mut self.stores {
            Some((_, reader)) => {
                let stored = reader.answered(&id).map_err(|e| refused(&e))?;
                let held = reader.held(&id).map_err(|e| refused(&e))?;
                (stored, held)
            }
            None => (Vec::new(), Vec::new()),
        };
        let config = MemberConfig {
            exec_timeout: self.exec_timeout,
            has_store: self.stores.is_some(),
            client: self.client.clone(),
            ..MemberConfig::default()
        };
        let mut member = Member::new(d, config, rand::random());
        member.restore(Instant::now(), SystemTime::now(), stored, held);
        let address = Member::address(&id).map_err(|e| refused(&e))?;
        let entity = host
            .add_without_peer_events(&address)
            .map_err(|e| refused(&e))?;
        member.set_executor(match &self.exec {
            None => echo_executor(),
            Some(handler) => self.executor(entity, Arc::clone(handler)),
        });
        self.site.add(
            host.core_mut(),
            entity,
            Participant::Member(Box::new(member)),
        );
        self.members.insert(id.clone(), entity);
        self.gone.remove(&id);
        // Without a plain sender, the first member asks the bus for its
        // members (a hosted member does not on its own).
        let ask = self.sender.is_none() && self.members.len() == 1;
        self.with_member(host, &id, |m, ep, now| {
            m.start(ep, now);
            if ask {
                m.client_mut().describe(ep, now);
            }
            if suspended {
                m.action(ep, now, Action::Suspend);
            }
            m.description().clone()
        })
        .ok_or_else(|| MembersError::Refused("the member's entity is gone".into()))
    }

    /// The executor of the member on `entity`: each job on a thread of its
    /// own, its result back to the loop.
    fn executor(&self, entity: EntityId, handler: ExecHandler) -> crate::cmbs::Executor {
        let (tx, notify) = (self.exec_done.0.clone(), notifier(&self.waker));
        Box::new(move |job: &ExecJob| {
            let (tx, notify, handler) = (tx.clone(), notify.clone(), Arc::clone(&handler));
            let job = job.clone();
            let spawned = std::thread::Builder::new()
                .name("rmbus-exec".into())
                .spawn(move || {
                    let result = handler(&job);
                    if tx.send((entity, job.ticket, result)).is_ok() {
                        notify();
                    }
                });
            match spawned {
                Ok(_) => Execution::Later,
                Err(e) => Execution::Done(Err(format!("cannot start a thread: {e}"))),
            }
        })
    }

    fn on_event(&mut self, host: &mut Host, id: EntityId, event: BusEvent) {
        let now = Instant::now();
        let rest = self.site.handle_event(host.core_mut(), now, id, event);
        if let Some(BusEvent::Rpc(RpcEvent::Returned { call, outcome, .. })) = rest {
            if let Some((_, reply)) = self.actions.remove(&call) {
                let refused = |s: String| Err(MembersError::Refused(s));
                reply(match outcome {
                    RpcOutcome::Returned(r) if r.is_ok() => ActionAnswer::from_reply(&r)
                        .map_err(|e| MembersError::Malformed(e.to_string())),
                    RpcOutcome::Returned(r) => refused(format!(
                        "the member refused: {} {}",
                        r.result, r.description
                    )),
                    RpcOutcome::TimedOut => Err(MembersError::TimedOut(
                        "the member did not answer in time".into(),
                    )),
                    other => refused(format!("the action was lost: {}", other.code())),
                });
            }
        }
    }

    /// After the events of one wake-up: what the host learnt once, finished
    /// store batches and execute jobs, timers, then the store batches and
    /// events of the participants acted on. The next instant to wake.
    fn tick(&mut self, host: &mut Host) -> Option<Instant> {
        let now = Instant::now();
        while let Some(e) = host.poll_host_event() {
            self.site.handle_host_event(host.core_mut(), now, e);
        }
        let done = self
            .stores
            .as_ref()
            .map(|(w, _)| w.completed())
            .unwrap_or_default();
        for d in done {
            self.site
                .store_done(host.core_mut(), now, &d.member, d.ticket, d.result);
        }
        let jobs: Vec<ExecDone> = self.exec_done.1.try_iter().collect();
        for (entity, ticket, result) in jobs {
            self.site
                .exec_done(host.core_mut(), now, entity, ticket, result);
        }
        if self.site.poll_timeout().is_some_and(|t| t <= now) {
            self.site.handle_timeout(host.core_mut(), now);
        }
        while let Some(batch) = self.site.poll_store() {
            match &self.stores {
                Some((worker, _)) => worker.submit(batch),
                None => self.site.store_done(
                    host.core_mut(),
                    now,
                    &batch.member,
                    batch.ticket,
                    Err("no store".into()),
                ),
            }
        }
        while let Some(e) = self.site.poll_event() {
            match e {
                SiteEvent::Directory(e) => self.directory_event(e),
                SiteEvent::Of(id, event) => {
                    let member = self
                        .site
                        .participant(id)
                        .and_then(|p| p.member())
                        .map(|m| m.description().id.clone());
                    self.participant_event(id, member, event);
                }
            }
        }
        self.answer_learning(now);
        self.ask_while_learning(host, now);
        let learning = self.learning.iter().map(|(deadline, _, _)| *deadline).min();
        self.site
            .poll_timeout()
            .into_iter()
            .chain(learning)
            .chain(self.ask_again)
            .min()
    }

    /// The entity that asks the bus: the plain sender, else the first
    /// hosted member.
    fn asker(&self) -> Option<EntityId> {
        self.sender
            .or_else(|| self.members.values().next().copied())
    }

    /// While callers learn, asks the bus to describe itself again every
    /// [`LEARN_ASK_EVERY`] (plus a millisecond per member known).
    fn ask_while_learning(&mut self, host: &mut Host, now: Instant) {
        if self.learning.is_empty() {
            self.ask_again = None;
            return;
        }
        let due = self.ask_again;
        if due.is_some_and(|due| due > now) {
            return;
        }
        let known = self.site.directory().directory().len() as u32;
        self.ask_again = Some(now + LEARN_ASK_EVERY + Duration::from_millis(1) * known);
        // The first ask was the start's (or the first member's).
        if due.is_none() {
            return;
        }
        let Some(from) = self.asker() else {
            return;
        };
        self.site.with(host.core_mut(), now, from, |p, ep| match p {
            Participant::Sender(c) => c.describe(ep, now),
            Participant::Member(m) => m.client_mut().describe(ep, now),
        });
    }

    /// Answers the callers of [`MembersHandle::learn`] whose condition
    /// holds or whose deadline has passed.
    fn answer_learning(&mut self, now: Instant) {
        if self.learning.is_empty() {
            return;
        }
        let dir = self.site.directory();
        let (done, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.learning)
            .into_iter()
            .map(|(deadline, until, reply)| (until(dir), deadline, until, reply))
            .partition(|(reached, deadline, _, _)| *reached || *deadline <= now);
        self.learning = waiting
            .into_iter()
            .map(|(_, deadline, until, reply)| (deadline, until, reply))
            .collect();
        if done.is_empty() {
            return;
        }
        let mut undescribed: Vec<(String, Address)> = dir
            .undescribed()
            .map(|(id, a)| (id.to_owned(), a.clone()))
            .collect();
        undescribed.sort_by(|a, b| a.0.cmp(&b.0));
        for (reached, _, _, reply) in done {
            reply(Ok(Learned {
                reached,
                undescribed: undescribed.clone(),
            }));
        }
    }

    /// An event of participant `entity` (member `member`, if it is one): a
    /// report for a publish waiting, or the application's.
    fn participant_event(&mut self, entity: EntityId, member: Option<String>, event: Event) {
        if let Event::Report(r) = &event {
            if self
                .reports
                .get(&r.message)
                .is_some_and(|(e, _)| *e == entity)
            {
                if let Some((_, reply)) = self.reports.remove(&r.message) {
                    reply(Ok(r.clone()));
                }
                return;
            }
        }
        match member {
            Some(member) => (self.on_event)(MembersEvent::Member { member, event }),
            None => (self.on_event)(MembersEvent::Sender(event)),
        }
    }

    /// Takes hosted member `id` (on `entity`) out: it says bye, the events
    /// it had left are handed out, and its publishes still open fail with
    /// `why`. Its store batches still commit; their answers find it gone.
    fn take_out(
        &mut self,
        host: &mut Host,
        id: &str,
        entity: EntityId,
        why: impl Fn() -> MembersError,
    ) {
        if let Some(mut p) = self.site.remove(host.core(), entity) {
            while let Some(event) = p.poll_event() {
                self.participant_event(entity, Some(id.to_owned()), event);
            }
        }
        host.remove(entity);
        let open: Vec<String> = self
            .reports
            .iter()
            .filter(|(_, (e, _))| *e == entity)
            .map(|(m, _)| m.clone())
            .collect();
        for m in open {
            if let Some((_, reply)) = self.reports.remove(&m) {
                reply(Err(why()));
            }
        }
        // Actions it asked for end too: their answers would come to an
        // entity that is gone.
        let asked: Vec<CallId> = self
            .actions
            .iter()
            .filter(|(_, (e, _))| *e == entity)
            .map(|(c, _)| *c)
            .collect();
        for call in asked {
            if let Some((_, reply)) = self.actions.remove(&call) {
                reply(Err(why()));
            }
        }
    }

    fn snapshot(&self) -> MutexGuard<'_, BTreeMap<String, Arc<Entry>>> {
        self.directory
            .entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// A change of the host's directory: the handles' snapshot, changed
    /// entry by entry, then the application.
    fn directory_event(&mut self, e: Event) {
        let event = match e {
            Event::Joined(entry) => {
                self.keep(&entry);
                MembersEvent::Joined(entry)
            }
            Event::Changed(entry) => {
                let id = &entry.description.id;
                let before = self.snapshot().get(id).map(|e| e.description.clone());
                self.keep(&entry);
                match before {
                    Some(before) => MembersEvent::Changed { entry, before },
                    None => MembersEvent::Joined(entry),
                }
            }
            Event::Left { entry, reason } => {
                self.gone.remove(&entry.description.id);
                self.snapshot().remove(&entry.description.id);
                self.directory.changed();
                MembersEvent::Left { entry, reason }
            }
            _ => return,
        };
        (self.on_event)(event);
    }

    /// Puts `entry` in the handles' snapshot (shared with the directory),
    /// unless it was removed here.
    fn keep(&mut self, entry: &Entry) {
        let id = &entry.description.id;
        if self.gone.contains(id) {
            return;
        }
        // The directory's own entry when it is still this one (it may have
        // changed again since the event was queued).
        let current = self.site.directory().directory().shared(id);
        let shared = match current {
            Some(e) if *e == *entry => e,
            _ => Arc::new(entry.clone()),
        };
        self.snapshot().insert(id.clone(), shared);
        self.directory.changed();
    }
}
