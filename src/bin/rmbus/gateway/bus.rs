//! The gateway's bus side: one thread running the command's event loop
//! over a library host that carries the gateway entity `(app:cmbs
//! module:gateway)` (a CMBS sender with its directory) and every member
//! created through the gateway, each with its store worker. The HTTP side
//! talks to it with [`BusHandle`]: commands over a channel and a waker,
//! answers over one-shot channels.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use mio::Waker;
use rmbus::cmbs::cmd::{ActionAnswer, ActionRequest};
use rmbus::cmbs::{
    echo_executor, Action, Client, ClientConfig, Description, Entry, Event, Member, MemberConfig,
    MemberState, Message, Participant, Publish, Report, Site, SiteEvent,
};
use rmbus::proto::{Endpoint, Event as BusEvent};
use rmbus::rpc::{CallId, Outcome as RpcOutcome, RpcEvent};
use rmbus::runtime::{EntityId, Host};
use rmbus::store::{Retention, SqliteStore, Store, Worker};
use rmbus::wire::Address;
use tokio::sync::oneshot;

use crate::bus_args::BusPlace;
use crate::driver::{Driver, Ended, Flow};
use crate::{exec, Failure};

use super::monitor;

/// How long a forwarded action may take.
const ACTION_TIMEOUT: Duration = Duration::from_secs(5);

/// What the HTTP side asks of the bus.
enum Command {
    /// Host a member (its store's messages and held records restored).
    Host(Description, oneshot::Sender<Result<Description, String>>),
    /// Change a hosted member's endpoints, neighbors, topics or providers.
    Update(Description, oneshot::Sender<Result<Description, String>>),
    /// Run an action on a member: hosted here, or elsewhere over the bus.
    Act(
        String,
        Action,
        oneshot::Sender<Result<ActionAnswer, String>>,
    ),
    /// Say bye for a hosted member and forget it.
    Remove(String, oneshot::Sender<()>),
    /// Send a message from the gateway entity.
    Publish(Box<Message>, oneshot::Sender<Report>),
}

/// A member a remote action changed, for the HTTP side's records.
pub type Changed = tokio::sync::mpsc::UnboundedSender<Description>;

/// The HTTP side's handle on the bus thread.
#[derive(Clone)]
pub struct BusHandle {
    commands: Sender<Command>,
    waker: Arc<Waker>,
    /// The host's directory as the HTTP side sees it, by member id.
    directory: Arc<Mutex<BTreeMap<String, Entry>>>,
    alive: Arc<AtomicBool>,
}

impl BusHandle {
    async fn ask<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Command) -> Result<T, String> {
        let (tx, rx) = oneshot::channel();
        if !self.alive.load(Ordering::Acquire) || self.commands.send(make(tx)).is_err() {
            return Err("the bus is down".into());
        }
        self.waker
            .wake()
            .map_err(|e| format!("cannot wake the bus loop: {e}"))?;
        rx.await.map_err(|_| "the bus is down".to_owned())
    }

    /// Hosts a member; its description once started.
    pub async fn host(&self, d: Description) -> Result<Description, String> {
        self.ask(|tx| Command::Host(d, tx)).await?
    }

    /// Changes a hosted member.
    pub async fn update(&self, d: Description) -> Result<Description, String> {
        self.ask(|tx| Command::Update(d, tx)).await?
    }

    /// Runs an action on member `id`.
    pub async fn act(&self, id: &str, action: Action) -> Result<ActionAnswer, String> {
        self.ask(|tx| Command::Act(id.to_owned(), action, tx))
            .await?
    }

    /// Says bye for hosted member `id`.
    pub async fn remove(&self, id: &str) -> Result<(), String> {
        self.ask(|tx| Command::Remove(id.to_owned(), tx)).await
    }

    /// Sends a message; its report.
    pub async fn publish(&self, m: Message) -> Result<Report, String> {
        self.ask(|tx| Command::Publish(Box::new(m), tx)).await
    }

    /// The members the gateway knows of, hosted ones among them.
    pub fn directory(&self) -> Vec<Entry> {
        self.snapshot().values().cloned().collect()
    }

    /// The member with id `id`, if the gateway knows of it.
    pub fn member(&self, id: &str) -> Option<Entry> {
        self.snapshot().get(id).cloned()
    }

    fn snapshot(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Entry>> {
        self.directory.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// What hosted members need.
pub struct Settings {
    /// The database of the members' stores.
    pub db: PathBuf,
    /// `--exec PROGRAM [ARG…]` (empty: the echo handler).
    pub exec: Vec<String>,
    /// How long an execution may take.
    pub exec_timeout: Duration,
    /// Where member changes go, for the monitors.
    pub hub: Arc<super::monitor::Hub>,
}

/// Joins the bus and starts the thread. `ended` runs when the loop stops
/// (a signal, or a failed bus).
pub fn start(
    place: &BusPlace,
    settings: Settings,
    changed: Changed,
    ended: impl FnOnce(Result<(), String>) + Send + 'static,
) -> Result<BusHandle, Failure> {
    let address = Address::parse("(app:cmbs module:gateway)").map_err(Failure::input)?;
    let (driver, me) = Driver::join_as(place, &address)?;
    let waker = Arc::new(driver.waker().map_err(Failure::input)?);
    // The members' store, opened (and migrated) before the HTTP side opens
    // the same file: one worker writes for every hosted member, and one
    // connection reads what a member's restart takes up.
    let store_failed = |e: rmbus::store::StoreError| {
        Failure::input(format!("{}: the store failed: {e}", settings.db.display()))
    };
    let reader = SqliteStore::open(&settings.db).map_err(store_failed)?;
    let writer = SqliteStore::open(&settings.db).map_err(store_failed)?;
    let worker = Worker::spawn(Box::new(writer), Retention::default(), notifier(&waker))
        .map_err(Failure::input)?;
    let stores = (worker, reader);
    let (tx, rx) = mpsc::channel();
    let handle = BusHandle {
        commands: tx,
        waker: Arc::clone(&waker),
        directory: Arc::default(),
        alive: Arc::new(AtomicBool::new(true)),
    };
    let shared = handle.clone();
    std::thread::Builder::new()
        .name("rmbus-gateway-bus".into())
        .spawn(move || {
            let alive = Arc::clone(&shared.alive);
            let result = run(driver, me, stores, rx, shared, waker, settings, changed);
            alive.store(false, Ordering::Release);
            ended(result);
        })
        .map_err(Failure::input)?;
    Ok(handle)
}

/// An execute job's end: the member's entity, the job's ticket, its result.
type ExecDone = (EntityId, u64, Result<serde_json::Value, String>);

struct Loop {
    /// The gateway entity and every hosted member, with the host's directory.
    site: Site,
    gateway: EntityId,
    /// Hosted members' entities, by member id.
    members: BTreeMap<String, EntityId>,
    /// One store worker for all hosted members, and the connection that
    /// reads what a member's restart takes up.
    worker: Worker,
    reader: SqliteStore,
    /// Where `--exec` jobs of every member end.
    exec_done: (mpsc::Sender<ExecDone>, Receiver<ExecDone>),
    reports: HashMap<String, oneshot::Sender<Report>>,
    actions: HashMap<CallId, oneshot::Sender<Result<ActionAnswer, String>>>,
    shared: BusHandle,
    waker: Arc<Waker>,
    settings: Settings,
    changed: Changed,
    /// Members removed here whose leaving the directory has not seen yet:
    /// kept out of the snapshot, so that a deleted member does not
    /// reappear as one running elsewhere.
    gone: HashSet<String>,
}

#[allow(clippy::too_many_arguments)]
fn run(
    mut driver: Driver,
    me: EntityId,
    (worker, reader): (Worker, SqliteStore),
    commands: Receiver<Command>,
    shared: BusHandle,
    waker: Arc<Waker>,
    settings: Settings,
    changed: Changed,
) -> Result<(), String> {
    let config = ClientConfig::default();
    let mut site = Site::new(driver.host.core_mut(), &config);
    let gateway = Participant::Sender(Box::new(Client::new(config, rand::random())));
    site.add(driver.host.core_mut(), me, gateway);
    let now = Instant::now();
    site.with(driver.host.core_mut(), me, |p, ep| {
        if let Participant::Sender(c) = p {
            c.describe(ep, now);
        }
    });
    let state = RefCell::new(Loop {
        site,
        gateway: me,
        members: BTreeMap::new(),
        worker,
        reader,
        exec_done: mpsc::channel(),
        reports: HashMap::new(),
        actions: HashMap::new(),
        shared,
        waker,
        settings,
        changed,
        gone: HashSet::new(),
    });
    let ended = driver.run(
        None,
        |host| {
            let mut s = state.borrow_mut();
            while let Ok(c) = commands.try_recv() {
                s.command(host, c);
            }
            let next = s.tick(host);
            if let Err(e) = host.flush() {
                tracing::warn!("sending failed: {e}");
            }
            next.map_or(Flow::Continue, Flow::WakeAt)
        },
        |host, id, event| {
            state.borrow_mut().on_event(host, id, event);
            Flow::Continue
        },
    );
    let s = state.into_inner();
    let _ = s.worker.finish();
    for id in s.members.values() {
        driver.host.remove(*id);
    }
    driver.host.remove(s.gateway);
    match ended {
        Ok(Ended::Signal) | Ok(_) => Ok(()),
        Err(e) => Err(format!("the bus failed: {e}")),
    }
}

/// A notifier for the worker and exec threads: wakes the loop.
fn notifier(waker: &Arc<Waker>) -> impl Fn() + Send + Clone + 'static {
    let waker = Arc::clone(waker);
    move || {
        if let Err(e) = waker.wake() {
            tracing::warn!("cannot wake the loop: {e}");
        }
    }
}

impl Loop {
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
            .with(host.core_mut(), entity, |p, ep| match p {
                Participant::Member(m) => Some(f(m, ep, now)),
                Participant::Sender(_) => None,
            })
            .flatten()
    }

    fn command(&mut self, host: &mut Host, c: Command) {
        match c {
            Command::Host(d, reply) => {
                let _ = reply.send(self.host_member(host, d));
            }
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
                    .ok_or_else(|| format!("member {} is not hosted here", d.id));
                let _ = reply.send(r);
            }
            Command::Act(id, action, reply) => {
                if self.members.contains_key(&id) {
                    let answer = self
                        .with_member(host, &id, |m, ep, now| m.action(ep, now, action))
                        .ok_or_else(|| "not a member".to_owned());
                    let _ = reply.send(answer);
                    return;
                }
                let Some(entry) = self.site.directory().directory().get(&id).cloned() else {
                    let _ = reply.send(Err(format!("no member {id} on the bus")));
                    return;
                };
                let now = Instant::now();
                let call = self.site.with(host.core_mut(), self.gateway, |_, ep| {
                    ep.rpc().call(
                        now,
                        &entry.address,
                        ActionRequest::NAME,
                        ActionRequest { action }.into_args(),
                        ACTION_TIMEOUT,
                    )
                });
                match call {
                    Some(Ok(call)) => {
                        self.actions.insert(call, reply);
                    }
                    Some(Err(e)) => {
                        let _ = reply.send(Err(e.to_string()));
                    }
                    None => {
                        let _ = reply.send(Err("the gateway entity is gone".into()));
                    }
                }
            }
            Command::Remove(id, reply) => {
                if let Some(entity) = self.members.remove(&id) {
                    // Its store batches still commit on the shared worker;
                    // their answers find it gone.
                    self.site.remove(entity);
                    host.remove(entity);
                    self.shared.snapshot().remove(&id);
                    self.gone.insert(id);
                }
                let _ = reply.send(());
            }
            Command::Publish(m, reply) => {
                let (now, wall) = (Instant::now(), SystemTime::now());
                let r = self
                    .site
                    .with(host.core_mut(), self.gateway, |p, ep| match p {
                        Participant::Sender(c) => c.publish(ep, now, wall, Publish::new(*m)),
                        Participant::Member(m2) => m2.publish(ep, now, wall, Publish::new(*m)),
                    });
                match r {
                    Some(Ok(id)) => {
                        self.reports.insert(id, reply);
                    }
                    Some(Err(report)) => {
                        let _ = reply.send(*report);
                    }
                    None => {}
                }
            }
        }
    }

    fn host_member(&mut self, host: &mut Host, d: Description) -> Result<Description, String> {
        if self.members.contains_key(&d.id) {
            return Err(format!("member {} is hosted already", d.id));
        }
        let id = d.id.clone();
        let suspended = d.state == MemberState::Suspended;
        let store = &mut self.reader;
        store.add_member(&id).map_err(|e| e.to_string())?;
        let stored = store.answered(&id).map_err(|e| e.to_string())?;
        let held = store.held(&id).map_err(|e| e.to_string())?;
        let config = MemberConfig {
            exec_timeout: self.settings.exec_timeout,
            has_store: true,
            ..MemberConfig::default()
        };
        let mut member = Member::new(d, config, rand::random());
        member.restore(Instant::now(), SystemTime::now(), stored, held);
        let address = Member::address(&id).map_err(|e| e.to_string())?;
        let entity = host
            .add_without_peer_events(&address)
            .map_err(|e| e.to_string())?;
        if self.settings.exec.is_empty() {
            member.set_executor(echo_executor());
        } else {
            let (tx, notify) = (self.exec_done.0.clone(), notifier(&self.waker));
            let deliver = move |ticket, result| {
                if tx.send((entity, ticket, result)).is_ok() {
                    notify();
                }
            };
            member.set_executor(exec::executor_with(
                self.settings.exec.clone(),
                self.settings.exec_timeout,
                deliver,
            ));
        }
        self.site.add(
            host.core_mut(),
            entity,
            Participant::Member(Box::new(member)),
        );
        self.members.insert(id.clone(), entity);
        let description = self
            .with_member(host, &id, |m, ep, now| {
                m.start(ep, now);
                if suspended {
                    m.action(ep, now, Action::Suspend);
                }
                m.description().clone()
            })
            .ok_or("the member's entity is gone")?;
        self.gone.remove(&id);
        Ok(description)
    }

    fn on_event(&mut self, host: &mut Host, id: EntityId, event: BusEvent) {
        let now = Instant::now();
        let rest = self.site.handle_event(host.core_mut(), now, id, event);
        if let Some(BusEvent::Rpc(RpcEvent::Returned { call, outcome, .. })) = rest {
            if let Some(reply) = self.actions.remove(&call) {
                let r = match outcome {
                    RpcOutcome::Returned(reply) if reply.is_ok() => {
                        ActionAnswer::from_reply(&reply).map_err(|e| e.to_string())
                    }
                    RpcOutcome::Returned(reply) => Err(format!(
                        "the member refused: {} {}",
                        reply.result, reply.description
                    )),
                    RpcOutcome::TimedOut => Err("the member did not answer in time".into()),
                    other => Err(format!("the action was lost: {}", other.code())),
                };
                let _ = reply.send(r);
            }
        }
    }

    /// After the events of one wake-up: what the host learnt once, finished
    /// store batches and execute jobs, timers, then the store batches and
    /// the events of the participants acted on. The next instant the loop
    /// must wake.
    fn tick(&mut self, host: &mut Host) -> Option<Instant> {
        let now = Instant::now();
        while let Some(e) = host.poll_host_event() {
            self.site.handle_host_event(host.core_mut(), now, e);
        }
        for d in self.worker.completed() {
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
            self.worker.submit(batch);
        }
        while let Some(e) = self.site.poll_event() {
            match e {
                SiteEvent::Of(id, Event::Report(r)) if id == self.gateway => {
                    if let Some(reply) = self.reports.remove(&r.message) {
                        let _ = reply.send(r);
                    }
                }
                SiteEvent::Directory(e) => self.directory_event(e),
                SiteEvent::Of(
                    _,
                    Event::Acted {
                        by: Some(_),
                        description,
                        ..
                    },
                ) => {
                    let _ = self.changed.send(description);
                }
                SiteEvent::Of(id, Event::Received { message, from }) => {
                    let member = self
                        .site
                        .participant(id)
                        .and_then(|p| p.member())
                        .map(|m| m.description().id.clone())
                        .unwrap_or_default();
                    eprintln!(
                        "rmbus gateway: member {member} received {} ({}) from {from}",
                        message.id,
                        message.layer.dotted()
                    );
                }
                SiteEvent::Of(..) => {}
            }
        }
        self.site.poll_timeout()
    }

    /// A change of the host's directory, for the HTTP side (its snapshot,
    /// changed entry by entry) and the monitors.
    fn directory_event(&mut self, e: Event) {
        match e {
            Event::Joined(entry) => {
                let address = entry.address.to_string();
                self.settings.hub.publish(monitor::member_note(
                    "joined",
                    &entry.description,
                    Some(&address),
                    serde_json::json!({}),
                ));
                self.keep(entry);
            }
            Event::Changed(entry) => {
                let address = entry.address.to_string();
                let old = self
                    .shared
                    .snapshot()
                    .get(&entry.description.id)
                    .map(|e| e.description.clone());
                if let Some(old) = old {
                    for n in monitor::member_changes(&old, &entry.description, Some(&address)) {
                        self.settings.hub.publish(n);
                    }
                }
                self.keep(entry);
            }
            Event::Left { entry, reason } => {
                self.gone.remove(&entry.description.id);
                self.shared.snapshot().remove(&entry.description.id);
                let reason = format!("{reason:?}").to_lowercase();
                self.settings.hub.publish(monitor::member_note(
                    "left",
                    &entry.description,
                    Some(&entry.address.to_string()),
                    serde_json::json!({ "reason": reason }),
                ));
            }
            _ => {}
        }
    }

    /// Puts `entry` in the HTTP side's snapshot, unless it was removed here.
    fn keep(&mut self, entry: Entry) {
        if !self.gone.contains(&entry.description.id) {
            self.shared
                .snapshot()
                .insert(entry.description.id.clone(), entry);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "current_thread")]
    async fn a_bus_that_is_down_is_an_error_not_a_hang() {
        let poll = mio::Poll::new().unwrap();
        let waker = Arc::new(Waker::new(poll.registry(), mio::Token(0)).unwrap());
        let (tx, rx) = mpsc::channel();
        let handle = BusHandle {
            commands: tx,
            waker,
            directory: Arc::default(),
            alive: Arc::new(AtomicBool::new(true)),
        };
        // The loop took the command and ended without answering.
        let dropper = std::thread::spawn(move || drop(rx.recv()));
        let e = handle.remove("x").await.unwrap_err();
        assert_eq!(e, "the bus is down");
        dropper.join().unwrap();
        handle.alive.store(false, Ordering::Release);
        assert_eq!(
            handle
                .publish(Message::new(
                    "m",
                    rmbus::cmbs::Layer::L2,
                    rmbus::cmbs::Content::Json(serde_json::Value::Null)
                ))
                .await
                .unwrap_err(),
            "the bus is down"
        );
    }
}
