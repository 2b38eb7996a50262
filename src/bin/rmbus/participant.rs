//! A CMBS participant in the command's event loop: a member (or a plain
//! sender) over one entity of the driver's host, its store on a worker
//! thread and its `--exec` jobs on threads of their own; both wake the loop
//! when they finish.

use std::cell::RefCell;
use std::sync::mpsc::Receiver;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use mio::Waker;
use rmbus::cmbs::{Client, ClientConfig, Directory, Event, Member, Publish, Report};
use rmbus::proto::{Endpoint, Event as BusEvent};
use rmbus::runtime::{EntityId, Host};
use rmbus::store::Worker;
use rmbus::wire::Address;

use crate::bus_args::BusPlace;
use crate::driver::{entity, Driver, Ended, Flow};
use crate::Failure;

/// A member or a plain sender.
pub enum Role {
    Member(Box<Member>),
    Sender(Box<Client>),
}

/// One CMBS participant of a command.
pub struct Participant {
    pub role: Role,
    pub id: EntityId,
    pub worker: Option<Worker>,
    /// Execute results from `--exec` threads: (ticket, result).
    pub exec_results: Option<Receiver<(u64, Result<serde_json::Value, String>)>>,
}

impl Participant {
    pub fn new(role: Role, id: EntityId) -> Participant {
        Participant {
            role,
            id,
            worker: None,
            exec_results: None,
        }
    }

    pub fn client(&self) -> &Client {
        match &self.role {
            Role::Member(m) => m.client(),
            Role::Sender(c) => c,
        }
    }

    /// Runs `f` on the role and the endpoint now, then sends what it produced.
    pub fn with<R>(
        &mut self,
        host: &mut Host,
        f: impl FnOnce(&mut Role, &mut Endpoint, Instant) -> R,
    ) -> R {
        let role = &mut self.role;
        entity(host, self.id).with_endpoint(|ep, now| f(role, ep, now))
    }

    /// One endpoint event; what CMBS does not take comes back.
    pub fn on_event(&mut self, host: &mut Host, id: EntityId, event: BusEvent) -> Option<BusEvent> {
        if id != self.id {
            return Some(event);
        }
        self.with(host, |role, ep, now| match role {
            Role::Member(m) => m.handle_event(ep, now, event),
            Role::Sender(c) => c.handle_event(ep, now, event),
        })
    }

    /// After the events of one wake-up: timers, finished store batches and
    /// execute jobs, then the next store batch (all deliveries of this
    /// wake-up in one commit). The next instant the loop must wake.
    pub fn tick(&mut self, host: &mut Host) -> Option<Instant> {
        let done = self
            .worker
            .as_ref()
            .map(Worker::completed)
            .unwrap_or_default();
        let jobs: Vec<_> = self
            .exec_results
            .as_ref()
            .map(|r| r.try_iter().collect())
            .unwrap_or_default();
        let worker = self.worker.as_ref();
        let role = &mut self.role;
        entity(host, self.id).with_endpoint(|ep, now| match role {
            Role::Member(m) => {
                for d in done {
                    m.store_done(ep, now, d.ticket, d.result);
                }
                for (ticket, result) in jobs {
                    m.exec_done(ep, now, ticket, result);
                }
                m.handle_timeout(ep, now);
                while let Some(batch) = m.poll_store() {
                    match worker {
                        Some(w) => w.submit(batch),
                        None => m.store_done(ep, now, batch.ticket, Err("no store".into())),
                    }
                }
                m.poll_timeout()
            }
            Role::Sender(c) => {
                c.handle_timeout(ep, now);
                c.poll_timeout()
            }
        })
    }

    /// The next CMBS event.
    pub fn poll_event(&mut self) -> Option<Event> {
        match &mut self.role {
            Role::Member(m) => m.poll_event(),
            Role::Sender(c) => c.poll_event(),
        }
    }

    /// Sends a message.
    pub fn publish(&mut self, host: &mut Host, p: Publish) -> Result<String, Box<Report>> {
        let wall = SystemTime::now();
        self.with(host, |role, ep, now| match role {
            Role::Member(m) => m.publish(ep, now, wall, p),
            Role::Sender(c) => c.publish(ep, now, wall, p),
        })
    }

    /// A notifier for the worker and exec threads: wakes the loop.
    pub fn notifier(waker: &Arc<Waker>) -> impl Fn() + Send + Clone + 'static {
        let waker = Arc::clone(waker);
        move || {
            if let Err(e) = waker.wake() {
                tracing::warn!("cannot wake the loop: {e}");
            }
        }
    }

    /// Runs `driver` until `deadline`, or until `after` (called after the
    /// events, timers and store work of each wake-up) or `other` (called
    /// with each endpoint event CMBS does not take) says stop.
    pub fn run(
        &mut self,
        driver: &mut Driver,
        deadline: Option<Instant>,
        mut after: impl FnMut(&mut Participant) -> bool,
        mut other: impl FnMut(BusEvent) -> bool,
    ) -> Result<Ended, Failure> {
        let p = RefCell::new(self);
        driver
            .run(
                deadline,
                |host| {
                    let mut p = p.borrow_mut();
                    let next = p.tick(host);
                    if after(&mut p) {
                        Flow::Stop
                    } else {
                        next.map_or(Flow::Continue, Flow::WakeAt)
                    }
                },
                |host, id, event| {
                    let rest = p.borrow_mut().on_event(host, id, event);
                    if rest.is_some_and(&mut other) {
                        Flow::Stop
                    } else {
                        Flow::Continue
                    }
                },
            )
            .map_err(Failure::input)
    }

    /// Joins the bus `place` describes as a plain sender at `address`, asks
    /// the members to announce themselves (again every
    /// [`ASK_AGAIN`], since a describe or its answer may be lost), and
    /// learns the directory for `wait`, or until `enough` holds; then, up
    /// to [`SETTLE_FOR`] more, until every member entity it has heard has
    /// described itself. A signal meanwhile is `interrupted`.
    pub fn join_sender(
        place: &BusPlace,
        address: &str,
        config: ClientConfig,
        wait: Duration,
        enough: impl Fn(&Directory) -> bool,
        interrupted: &str,
    ) -> Result<(Driver, Participant), Failure> {
        let address = Address::parse(address).map_err(Failure::input)?;
        let (mut driver, me) = Driver::join_as(place, &address)?;
        let client = Client::new(config, rand::random());
        let mut p = Participant::new(Role::Sender(Box::new(client)), me);
        let learned = Instant::now() + wait;
        let mut ask = Instant::now();
        loop {
            if ask <= Instant::now() {
                p.with(&mut driver.host, |role, ep, now| {
                    if let Role::Sender(c) = role {
                        c.describe(ep, now);
                    }
                });
                ask += ASK_AGAIN;
            }
            let ended = p.run(
                &mut driver,
                Some(ask.min(learned)),
                |p| {
                    while p.poll_event().is_some() {}
                    enough(p.client().directory())
                },
                |_| false,
            )?;
            match ended {
                Ended::Signal => return Err(Failure::interrupted(interrupted)),
                Ended::Stopped => return Ok((driver, p)),
                Ended::Deadline if Instant::now() >= learned => break,
                Ended::Deadline => {}
            }
        }
        if !p.client().settled() {
            let ended = p.run(
                &mut driver,
                Some(learned + SETTLE_FOR),
                |p| {
                    while p.poll_event().is_some() {}
                    p.client().settled() || enough(p.client().directory())
                },
                |_| false,
            )?;
            if ended == Ended::Signal {
                return Err(Failure::interrupted(interrupted));
            }
        }
        Ok((driver, p))
    }
}

/// How often a plain sender asks the members to announce themselves while
/// it learns the directory.
pub const ASK_AGAIN: Duration = Duration::from_millis(250);

/// How much longer than its wait a plain sender waits for member entities
/// it has heard to describe themselves (they are asked reliably, once a
/// second); those still undescribed then get `UNDESCRIBED` lines.
pub const SETTLE_FOR: Duration = Duration::from_secs(2);
