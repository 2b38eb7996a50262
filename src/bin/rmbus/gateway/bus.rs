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
    MemberState, Message, Publish, Report,
};
use rmbus::proto::Event as BusEvent;
use rmbus::rpc::{CallId, Outcome as RpcOutcome, RpcEvent};
use rmbus::runtime::EntityId;
use rmbus::store::{Retention, SqliteStore, Store, Worker};
use rmbus::wire::Address;
use tokio::sync::oneshot;

use crate::bus_args::BusPlace;
use crate::driver::{Driver, Ended, Flow};
use crate::participant::{Participant, Role};
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
    directory: Arc<Mutex<Vec<Entry>>>,
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
        self.directory
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
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
    let (tx, rx) = mpsc::channel();
    let handle = BusHandle {
        commands: tx,
        waker: Arc::clone(&waker),
        directory: Arc::new(Mutex::new(Vec::new())),
        alive: Arc::new(AtomicBool::new(true)),
    };
    let shared = handle.clone();
    std::thread::Builder::new()
        .name("rmbus-gateway-bus".into())
        .spawn(move || {
            let alive = Arc::clone(&shared.alive);
            let result = run(driver, me, rx, shared, waker, settings, changed);
            alive.store(false, Ordering::Release);
            ended(result);
        })
        .map_err(Failure::input)?;
    Ok(handle)
}

struct Loop {
    gateway: Participant,
    members: BTreeMap<String, Participant>,
    by_entity: HashMap<EntityId, String>,
    reports: HashMap<String, oneshot::Sender<Report>>,
    actions: HashMap<CallId, oneshot::Sender<Result<ActionAnswer, String>>>,
    shared: BusHandle,
    waker: Arc<Waker>,
    settings: Settings,
    changed: Changed,
    directory_changed: bool,
    /// Members removed here whose bye the directory has not seen yet: kept
    /// out of the snapshot, so that a deleted member does not reappear
    /// as one running elsewhere.
    gone: HashSet<String>,
    /// The last description of each member in the directory, to tell
    /// the monitors what changed.
    known: HashMap<String, Description>,
}

fn run(
    mut driver: Driver,
    me: EntityId,
    commands: Receiver<Command>,
    shared: BusHandle,
    waker: Arc<Waker>,
    settings: Settings,
    changed: Changed,
) -> Result<(), String> {
    let mut gateway = Participant::new(
        Role::Sender(Box::new(Client::new(
            ClientConfig::default(),
            rand::random(),
        ))),
        me,
    );
    gateway.with(&mut driver.host, |role, ep, now| {
        if let Role::Sender(c) = role {
            c.describe(ep, now);
        }
    });
    let state = RefCell::new(Loop {
        gateway,
        members: BTreeMap::new(),
        by_entity: HashMap::new(),
        reports: HashMap::new(),
        actions: HashMap::new(),
        shared,
        waker,
        settings,
        changed,
        directory_changed: true,
        gone: HashSet::new(),
        known: HashMap::new(),
    });
    let ended = driver.run(
        None,
        |host| {
            let mut s = state.borrow_mut();
            while let Ok(c) = commands.try_recv() {
                s.command(host, c);
            }
            s.tick(host).map_or(Flow::Continue, Flow::WakeAt)
        },
        |host, id, event| {
            state.borrow_mut().on_event(host, id, event);
            Flow::Continue
        },
    );
    let mut s = state.into_inner();
    for (_, mut p) in std::mem::take(&mut s.members) {
        if let Some(w) = p.worker.take() {
            let _ = w.finish();
        }
        driver.host.remove(p.id);
    }
    driver.host.remove(s.gateway.id);
    match ended {
        Ok(Ended::Signal) | Ok(_) => Ok(()),
        Err(e) => Err(format!("the bus failed: {e}")),
    }
}

impl Loop {
    fn command(&mut self, host: &mut rmbus::runtime::Host, c: Command) {
        match c {
            Command::Host(d, reply) => {
                let _ = reply.send(self.host_member(host, d));
            }
            Command::Update(d, reply) => {
                let r = match self.members.get_mut(&d.id) {
                    None => Err(format!("member {} is not hosted here", d.id)),
                    Some(p) => Ok(p.with(host, |role, ep, now| match role {
                        Role::Member(m) => {
                            m.update(ep, now, |mine| {
                                mine.sockets = d.sockets.clone();
                                mine.neighbors = d.neighbors.clone();
                                mine.topics = d.topics.clone();
                                mine.providers = d.providers.clone();
                            });
                            m.description().clone()
                        }
                        Role::Sender(_) => d.clone(),
                    })),
                };
                let _ = reply.send(r);
            }
            Command::Act(id, action, reply) => {
                if let Some(p) = self.members.get_mut(&id) {
                    let answer = p.with(host, |role, ep, now| match role {
                        Role::Member(m) => Ok(m.action(ep, now, action)),
                        Role::Sender(_) => Err("not a member".to_owned()),
                    });
                    let _ = reply.send(answer);
                    return;
                }
                let Some(entry) = self.gateway.client().directory().get(&id).cloned() else {
                    let _ = reply.send(Err(format!("no member {id} on the bus")));
                    return;
                };
                let call = self.gateway.with(host, |_, ep, now| {
                    ep.rpc().call(
                        now,
                        &entry.address,
                        ActionRequest::NAME,
                        ActionRequest { action }.into_args(),
                        ACTION_TIMEOUT,
                    )
                });
                match call {
                    Ok(call) => {
                        self.actions.insert(call, reply);
                    }
                    Err(e) => {
                        let _ = reply.send(Err(e.to_string()));
                    }
                }
            }
            Command::Remove(id, reply) => {
                if let Some(mut p) = self.members.remove(&id) {
                    if let Some(w) = p.worker.take() {
                        let done = w.finish();
                        p.with(host, |role, ep, now| {
                            if let Role::Member(m) = role {
                                for d in done {
                                    m.store_done(ep, now, d.ticket, d.result);
                                }
                            }
                        });
                    }
                    self.by_entity.remove(&p.id);
                    host.remove(p.id);
                    self.gone.insert(id);
                    self.directory_changed = true;
                }
                let _ = reply.send(());
            }
            Command::Publish(m, reply) => {
                let r = self.gateway.publish(host, Publish::new(*m));
                match r {
                    Ok(id) => {
                        self.reports.insert(id, reply);
                    }
                    Err(report) => {
                        let _ = reply.send(*report);
                    }
                }
            }
        }
    }

    fn host_member(
        &mut self,
        host: &mut rmbus::runtime::Host,
        d: Description,
    ) -> Result<Description, String> {
        if self.members.contains_key(&d.id) {
            return Err(format!("member {} is hosted already", d.id));
        }
        let id = d.id.clone();
        let suspended = d.state == MemberState::Suspended;
        let mut store = SqliteStore::open(&self.settings.db).map_err(|e| e.to_string())?;
        store.add_member(&id).map_err(|e| e.to_string())?;
        let stored = store.answered(&id).map_err(|e| e.to_string())?;
        let held = store.held(&id).map_err(|e| e.to_string())?;
        let config = MemberConfig {
            exec_timeout: self.settings.exec_timeout,
            has_store: true,
            ..MemberConfig::default()
        };
        let requested = d.clone();
        let mut member = Member::new(d, config, rand::random());
        member.restore(Instant::now(), SystemTime::now(), stored, held);
        let notify = Participant::notifier(&self.waker);
        let mut exec_results = None;
        if self.settings.exec.is_empty() {
            member.set_executor(echo_executor());
        } else {
            let (executor, results) = exec::executor(
                self.settings.exec.clone(),
                self.settings.exec_timeout,
                notify.clone(),
            );
            member.set_executor(executor);
            exec_results = Some(results);
        }
        let address = Member::address(&id).map_err(|e| e.to_string())?;
        let entity = host.add(&address).map_err(|e| e.to_string())?;
        let mut p = Participant::new(Role::Member(Box::new(member)), entity);
        p.exec_results = exec_results;
        p.worker = Some(
            Worker::spawn(Box::new(store), Retention::default(), notify)
                .map_err(|e| e.to_string())?,
        );
        let description = p.with(host, |role, ep, now| match role {
            Role::Member(m) => {
                m.start(ep, now);
                if suspended {
                    m.action(ep, now, Action::Suspend);
                }
                m.description().clone()
            }
            Role::Sender(_) => requested,
        });
        self.by_entity.insert(entity, id.clone());
        self.gone.remove(&id);
        self.members.insert(id, p);
        Ok(description)
    }

    fn on_event(&mut self, host: &mut rmbus::runtime::Host, id: EntityId, event: BusEvent) {
        let rest = if id == self.gateway.id {
            self.gateway.on_event(host, id, event)
        } else if let Some(p) = self
            .by_entity
            .get(&id)
            .and_then(|m| self.members.get_mut(m))
        {
            p.on_event(host, id, event)
        } else {
            None
        };
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

    fn tick(&mut self, host: &mut rmbus::runtime::Host) -> Option<Instant> {
        let mut next = self.gateway.tick(host);
        while let Some(e) = self.gateway.poll_event() {
            match e {
                Event::Report(r) => {
                    if let Some(reply) = self.reports.remove(&r.message) {
                        let _ = reply.send(r);
                    }
                }
                Event::Joined(entry) => {
                    self.directory_changed = true;
                    let address = entry.address.to_string();
                    self.settings.hub.publish(monitor::member_note(
                        "joined",
                        &entry.description,
                        Some(&address),
                        serde_json::json!({}),
                    ));
                    self.known
                        .insert(entry.description.id.clone(), entry.description);
                }
                Event::Changed(entry) => {
                    self.directory_changed = true;
                    let address = entry.address.to_string();
                    let d = entry.description;
                    if let Some(old) = self.known.get(&d.id) {
                        for n in monitor::member_changes(old, &d, Some(&address)) {
                            self.settings.hub.publish(n);
                        }
                    }
                    self.known.insert(d.id.clone(), d);
                }
                Event::Left { entry, reason } => {
                    self.directory_changed = true;
                    self.known.remove(&entry.description.id);
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
        for p in self.members.values_mut() {
            next = min(next, p.tick(host));
            while let Some(e) = p.poll_event() {
                match e {
                    Event::Acted {
                        by: Some(_),
                        description,
                        ..
                    } => {
                        let _ = self.changed.send(description);
                    }
                    Event::Received { message, from } => {
                        eprintln!(
                            "rmbus gateway: member {} received {} ({}) from {from}",
                            member_of(p),
                            message.id,
                            message.layer.dotted()
                        );
                    }
                    _ => {}
                }
            }
        }
        if self.directory_changed {
            self.directory_changed = false;
            let dir = self.gateway.client().directory();
            self.gone.retain(|id| dir.get(id).is_some());
            let entries: Vec<Entry> = dir
                .iter()
                .filter(|e| !self.gone.contains(&e.description.id))
                .cloned()
                .collect();
            *self
                .shared
                .directory
                .lock()
                .unwrap_or_else(|p| p.into_inner()) = entries;
        }
        next
    }
}

fn member_of(p: &Participant) -> String {
    match &p.role {
        Role::Member(m) => m.description().id.clone(),
        Role::Sender(_) => String::new(),
    }
}

fn min(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
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
            directory: Arc::new(Mutex::new(Vec::new())),
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
