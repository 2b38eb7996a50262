//! The CMBS commands (`member`, `publish`, `members`) on the library's
//! member runtime ([`rmbus::runtime::spawn_members`]): the members' thread,
//! and one channel on which the command hears what it waits for (answers,
//! events it forwards, Ctrl-C or SIGTERM, the thread's end).

use std::sync::mpsc::{self, Receiver, Sender};
use std::time::{Duration, Instant};

use rmbus::cmbs::cmd::ActionAnswer;
use rmbus::cmbs::{Directory, Report, SharedDirectory};
use rmbus::runtime::{
    spawn_members, Learned, MembersError, MembersEvent, MembersHandle, MembersOptions,
};

use crate::bus_args::BusPlace;
use crate::signals::Termination;
use crate::Failure;

/// How much longer than its wait a command waits for member entities it
/// has heard to describe themselves (the host asks them reliably at each
/// discovery round, once a second); those still undescribed then get
/// `UNDESCRIBED` lines.
pub const SETTLE_FOR: Duration = Duration::from_secs(2);

/// What the command's main thread hears.
pub enum Wake {
    /// Ctrl-C or SIGTERM.
    Signal,
    /// The members' thread ended (its sockets failed: the error).
    Ended(Result<(), String>),
    /// An answer of [`MembersHandle::learn_then`].
    Learned(Result<Learned, MembersError>),
    /// An answer of [`MembersHandle::publish_then`].
    Report(Result<Report, MembersError>),
    /// An answer of [`MembersHandle::act_then`].
    Acted(Result<ActionAnswer, MembersError>),
    /// A members' event the command's callback passed on.
    Event(Box<MembersEvent>),
}

/// Members run by a command, and the channel it waits on.
pub struct Hosted {
    /// The members' thread.
    pub members: MembersHandle,
    tx: Sender<Wake>,
    rx: Receiver<Wake>,
}

impl Hosted {
    /// Joins the bus `place` describes and starts the members' thread;
    /// `on_event` gets its events there (and may pass them on to the main
    /// thread with the sender it is given).
    pub fn start(
        place: &BusPlace,
        options: MembersOptions,
        mut on_event: impl FnMut(MembersEvent, &Sender<Wake>) + Send + 'static,
    ) -> Result<Hosted, Failure> {
        let config = place.config()?;
        let (tx, rx) = mpsc::channel();
        let signals = Termination::install().map_err(Failure::input)?;
        let events = tx.clone();
        let members = spawn_members(&config, options, move |e| on_event(e, &events))
            .map_err(Failure::input)?;
        let (signalled, ended) = (tx.clone(), tx.clone());
        std::thread::Builder::new()
            .name("rmbus-signals".into())
            .spawn(move || {
                if signals.wait().is_ok() {
                    let _ = signalled.send(Wake::Signal);
                }
            })
            .map_err(Failure::input)?;
        let watched = members.clone();
        std::thread::Builder::new()
            .name("rmbus-members-watch".into())
            .spawn(move || {
                let _ = ended.send(Wake::Ended(watched.wait()));
            })
            .map_err(Failure::input)?;
        Ok(Hosted { members, tx, rx })
    }

    /// A sender to the main thread, for answers given to a callback.
    pub fn sender(&self) -> Sender<Wake> {
        self.tx.clone()
    }

    /// The next thing the main thread hears.
    pub fn next(&self) -> Wake {
        // The channel stays open: `self` holds a sender.
        self.rx.recv().unwrap_or(Wake::Ended(Ok(())))
    }

    /// Learns the directory for `wait`, or until `enough` holds; then, up
    /// to [`SETTLE_FOR`] more, until every member entity heard has
    /// described itself. The member entities still undescribed; a signal
    /// meanwhile is `interrupted`.
    pub fn learn(
        &self,
        wait: Duration,
        enough: impl Fn(&Directory) -> bool + Clone + Send + 'static,
        interrupted: &str,
    ) -> Result<Learned, Failure> {
        let learned = Instant::now() + wait;
        let first = enough.clone();
        let learn = |deadline, until: Box<dyn Fn(&SharedDirectory) -> bool + Send>| {
            let tx = self.sender();
            self.members.learn_then(deadline, until, move |r| {
                let _ = tx.send(Wake::Learned(r));
            });
            self.wait_learned(interrupted)
        };
        let got = learn(learned, Box::new(move |d| first(d.directory())))?;
        if got.reached || got.undescribed.is_empty() {
            return Ok(got);
        }
        learn(
            learned + SETTLE_FOR,
            Box::new(move |d| d.undescribed().next().is_none() || enough(d.directory())),
        )
    }

    fn wait_learned(&self, interrupted: &str) -> Result<Learned, Failure> {
        self.wait_for(interrupted, |w| match w {
            Wake::Learned(r) => Some(r.map_err(Failure::input)),
            _ => None,
        })?
    }

    /// Waits until `take` takes something the main thread hears. A signal
    /// meanwhile closes the members and is `interrupted`; the members'
    /// thread ending first is its failure.
    pub fn wait_for<T>(
        &self,
        interrupted: &str,
        mut take: impl FnMut(Wake) -> Option<T>,
    ) -> Result<T, Failure> {
        loop {
            match self.next() {
                Wake::Signal => {
                    self.close();
                    return Err(Failure::interrupted(interrupted));
                }
                Wake::Ended(r) => return Err(ended(r)),
                other => {
                    if let Some(t) = take(other) {
                        return Ok(t);
                    }
                }
            }
        }
    }

    /// Stops the members' thread (each member and the sender say bye) and
    /// waits for its end.
    pub fn close(&self) {
        self.members.stop();
        let _ = self.members.wait();
    }
}

/// The failure of a members' thread that ended before the command did.
pub fn ended(r: Result<(), String>) -> Failure {
    match r {
        Ok(()) => Failure::input("the members' thread stopped"),
        Err(e) => Failure::input(e),
    }
}
