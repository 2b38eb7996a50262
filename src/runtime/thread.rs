//! An entity on a background thread: a cloneable [`Handle`] to talk to it, and
//! either a channel of events or pyMbus-style callbacks.

use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, Sender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::{JoinHandle, ThreadId};
use std::time::{Duration, Instant};

use mio::{Events, Interest, Poll, Token, Waker};
use nix::sys::eventfd::{EfdFlags, EventFd};

use crate::config::Config;
use crate::proto::{Endpoint, Event, LeaveReason};
use crate::rpc::Outcome;
use crate::wire::{Address, Command, Value};

use super::{BindError, Bus, HandleError};

const BUS: Token = Token(0);
const WAKE: Token = Token(1);

/// How many events the channel of [`spawn`] holds before it drops (and counts).
pub const EVENT_CHANNEL_CAPACITY: usize = 4096;

type CommandFn = Box<dyn FnMut(&mut Bus, &Address, &Command, bool) + Send>;
type EntityFn = Box<dyn FnMut(&mut Bus, &Address) + Send>;
type LostFn = Box<dyn FnMut(&mut Bus, &Address, LeaveReason) + Send>;
type ErrorFn = Box<dyn FnMut(&io::Error) + Send>;
type EventFn = Box<dyn FnMut(&mut Bus, &Event) + Send>;

/// Callbacks in the spirit of pyMbus, run on the bus thread. Each gets the
/// [`Bus`], so it can answer at once (and its answer carries the ack).
#[derive(Default)]
pub struct Callbacks {
    commands: Vec<(String, CommandFn)>,
    new_entity: Option<EntityFn>,
    lost_entity: Option<LostFn>,
    unknown_message: Option<CommandFn>,
    error: Option<ErrorFn>,
    other: Option<EventFn>,
}

impl Callbacks {
    /// No callbacks yet.
    pub fn new() -> Callbacks {
        Callbacks::default()
    }

    /// For commands named `prefix` or below it, by whole name components
    /// (`audio` takes `audio` and `audio.x`, not `audiox`); the longest
    /// matching prefix wins. Arguments: bus, source, command, reliable.
    pub fn on_command(
        mut self,
        prefix: &str,
        f: impl FnMut(&mut Bus, &Address, &Command, bool) + Send + 'static,
    ) -> Callbacks {
        self.commands.push((prefix.to_owned(), Box::new(f)));
        self.commands
            .sort_by_key(|(p, _)| std::cmp::Reverse(p.len()));
        self
    }

    /// An entity appeared (`new-entity`).
    pub fn on_new_entity(
        mut self,
        f: impl FnMut(&mut Bus, &Address) + Send + 'static,
    ) -> Callbacks {
        self.new_entity = Some(Box::new(f));
        self
    }

    /// An entity left, by bye or silence (`lost-entity`).
    pub fn on_lost_entity(
        mut self,
        f: impl FnMut(&mut Bus, &Address, LeaveReason) + Send + 'static,
    ) -> Callbacks {
        self.lost_entity = Some(Box::new(f));
        self
    }

    /// A command no `on_command` prefix matched (`unknown-message`).
    pub fn on_unknown_message(
        mut self,
        f: impl FnMut(&mut Bus, &Address, &Command, bool) + Send + 'static,
    ) -> Callbacks {
        self.unknown_message = Some(Box::new(f));
        self
    }

    /// A socket error (`error`); the bus keeps running.
    pub fn on_error(mut self, f: impl FnMut(&io::Error) + Send + 'static) -> Callbacks {
        self.error = Some(Box::new(f));
        self
    }

    /// Every other event: delivered, failed, quit, waiting, go, and the
    /// Guidelines layer's (requests no handler took, returns, transactions,
    /// properties set from the bus).
    pub fn on_event(mut self, f: impl FnMut(&mut Bus, &Event) + Send + 'static) -> Callbacks {
        self.other = Some(Box::new(f));
        self
    }

    fn dispatch(&mut self, bus: &mut Bus, event: Event) {
        match &event {
            Event::Command {
                src,
                reliable,
                command,
            } => {
                let hit = self
                    .commands
                    .iter_mut()
                    .find(|(prefix, _)| command.is_under(prefix));
                match (hit, &mut self.unknown_message) {
                    (Some((_, f)), _) => f(bus, src, command, *reliable),
                    (None, Some(f)) => f(bus, src, command, *reliable),
                    (None, None) => {
                        tracing::debug!(command = %command.name, "no callback for command")
                    }
                }
            }
            Event::PeerJoined(addr) => {
                if let Some(f) = &mut self.new_entity {
                    f(bus, addr);
                }
            }
            Event::PeerLeft { addr, reason } => {
                if let Some(f) = &mut self.lost_entity {
                    f(bus, addr, *reason);
                }
            }
            _ => {
                if let Some(f) = &mut self.other {
                    f(bus, &event);
                }
            }
        }
    }
}

/// Work for the bus thread.
enum Job {
    /// Run this on the bus thread, with the bus.
    Run(Box<dyn FnOnce(&mut Bus) + Send>),
    Close,
}

/// The part shared by all clones of a [`Handle`]; dropping the last one stops
/// the thread, which says bye.
struct Shared {
    requests: Mutex<Sender<Job>>,
    waker: Waker,
    thread: Mutex<Option<JoinHandle<()>>>,
    /// The bus thread, where a handle must not wait for the bus.
    bus_thread: ThreadId,
    dropped_events: Arc<AtomicU64>,
    /// Readable while events may be queued on the channel ([`spawn`] only).
    event_fd: Option<Arc<EventFd>>,
}

impl Drop for Shared {
    fn drop(&mut self) {
        self.stop();
    }
}

impl Shared {
    fn request(&self, r: Job) -> bool {
        let sent = self
            .requests
            .lock()
            .map(|tx| tx.send(r).is_ok())
            .unwrap_or(false);
        sent && self.waker.wake().is_ok()
    }

    fn on_bus_thread(&self) -> bool {
        std::thread::current().id() == self.bus_thread
    }

    /// Asks the thread to say bye and end, and waits for it, except on the
    /// bus thread itself (a callback dropping the last handle): it ends once
    /// that callback returns.
    fn stop(&self) {
        self.request(Job::Close);
        if self.on_bus_thread() {
            return;
        }
        if let Ok(mut guard) = self.thread.lock() {
            if let Some(t) = guard.take() {
                let _ = t.join();
            }
        }
    }
}

/// A handle to an entity running on its own thread. Cheap to clone and `Send`.
///
/// **To leave the bus, call [`Handle::close`]**: the entity says bye (RFC 3259
/// §9, `mbus.bye`), so its peers forget it at once, and the thread ends; every
/// clone stops working. Dropping the last clone does the same, as a fallback,
/// but a clone held elsewhere (a worker thread, a callback) keeps the entity
/// alive, and its peers then see it leave only when it expires. Give workers
/// and callbacks a [`WeakHandle`] ([`Handle::downgrade`]) instead: it does not
/// keep the entity alive.
///
/// Called on the bus thread (from the entity's own callbacks), a handle's
/// methods fail at once ([`HandleError::OnBusThread`]) rather than wait for
/// themselves; the callback's `&mut Bus` does the same work. Dropping the last
/// clone there ends the entity when the callback returns.
#[derive(Clone)]
pub struct Handle {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Handle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handle").finish_non_exhaustive()
    }
}

impl Handle {
    /// Runs `f` on the bus thread with the [`Bus`] and returns its result.
    ///
    /// Fails once the bus is closed, and when called on the bus thread
    /// itself (from a callback, where it would wait for itself forever; the
    /// callback's `&mut Bus` is the way there).
    pub fn with<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Bus) -> R + Send + 'static,
    ) -> Result<R, HandleError> {
        if self.shared.on_bus_thread() {
            tracing::error!("{}", HandleError::OnBusThread);
            return Err(HandleError::OnBusThread);
        }
        let (reply, answer) = mpsc::sync_channel(1);
        let run = Box::new(move |bus: &mut Bus| {
            let _ = reply.send(f(bus));
        });
        if !self.shared.request(Job::Run(run)) {
            return Err(HandleError::Closed);
        }
        answer.recv().map_err(|_| HandleError::Closed)
    }

    /// Runs `f` on the bus thread with the protocol core and the current
    /// time, sends what it produced, and returns its result: the way to every
    /// core method and view from another thread, e.g.
    /// `handle.with_endpoint(move |ep, now| ep.send(now, &dst, commands, Delivery::Reliable))`.
    pub fn with_endpoint<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Endpoint, Instant) -> R + Send + 'static,
    ) -> Result<R, HandleError> {
        self.with(move |bus| bus.with_endpoint(f))
    }

    /// Calls `name` at the one entity `dst` designates and waits for the
    /// outcome (pyMbus's `sendRPC`): at most `timeout`, plus the time to notice
    /// an undeliverable request. A callee not heard from yet (an application
    /// that calls right after it started) is pinged and waited for within
    /// the same `timeout`; one that does not appear makes the call
    /// [`Outcome::Undeliverable`]. From a callback running on the bus thread it
    /// fails with [`HandleError::OnBusThread`]; use [`Bus::call_then`] there.
    pub fn call(
        &self,
        dst: &Address,
        name: &str,
        args: Vec<Value>,
        timeout: Duration,
    ) -> Result<(Address, Outcome), HandleError> {
        let (dst, name) = (dst.clone(), name.to_owned());
        let (tx, rx) = mpsc::sync_channel(1);
        self.with(move |bus| {
            bus.call_then(&dst, &name, args, timeout, move |callee, outcome| {
                let _ = tx.send((callee, outcome));
            })
        })??;
        rx.recv().map_err(|_| HandleError::Closed)
    }

    /// For a UI thread's own loop (GLib, Qt, …): a descriptor that is
    /// readable once an event is queued on the channel of [`spawn`] (`None`
    /// with callbacks). When it is, call [`Handle::clear_event_fd`], then
    /// drain the channel with `try_recv`.
    pub fn event_fd(&self) -> Option<BorrowedFd<'_>> {
        self.shared.event_fd.as_ref().map(|fd| fd.as_fd())
    }

    /// Makes [`Handle::event_fd`] unreadable until the next event is queued.
    /// Call it before draining the channel with `try_recv`, not after, or an
    /// event queued in between would not wake you.
    pub fn clear_event_fd(&self) {
        if let Some(fd) = &self.shared.event_fd {
            // Would-block means it was clear already.
            let _ = fd.read();
        }
    }

    /// Events the channel of [`spawn`] dropped because nobody read them.
    pub fn dropped_events(&self) -> u64 {
        self.shared.dropped_events.load(Ordering::Relaxed)
    }

    /// Says bye and stops the thread, waiting for it (all clones stop
    /// working): the way to leave the bus. On the bus thread itself it does
    /// not wait; the thread ends once the running callback returns.
    pub fn close(&self) {
        self.shared.stop();
    }

    /// A handle that does not keep the entity alive, for worker threads and
    /// callbacks.
    pub fn downgrade(&self) -> WeakHandle {
        WeakHandle {
            shared: Arc::downgrade(&self.shared),
        }
    }
}

/// A [`Handle`] that does not keep its entity alive: once the last
/// [`Handle`] is dropped or [`Handle::close`] called, the entity leaves, and
/// [`WeakHandle::upgrade`] returns `None` (or a handle whose methods fail
/// with [`HandleError::Closed`]).
#[derive(Clone)]
pub struct WeakHandle {
    shared: std::sync::Weak<Shared>,
}

impl std::fmt::Debug for WeakHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WeakHandle").finish_non_exhaustive()
    }
}

impl WeakHandle {
    /// A full handle, while the entity has one left somewhere. Drop it when
    /// done with it: held, it keeps the entity alive like any other.
    pub fn upgrade(&self) -> Option<Handle> {
        self.shared.upgrade().map(|shared| Handle { shared })
    }
}

/// Runs an entity on a thread; its events arrive on the returned channel
/// (bounded: what does not fit is dropped and counted, see
/// [`Handle::dropped_events`]).
///
/// For a UI thread that cannot block on the channel, [`Handle::event_fd`] is a
/// descriptor that becomes readable when events are queued.
pub fn spawn(config: &Config, address: &Address) -> Result<(Handle, Receiver<Event>), BindError> {
    let (tx, rx) = mpsc::sync_channel(EVENT_CHANNEL_CAPACITY);
    let dropped = Arc::new(AtomicU64::new(0));
    let counter = Arc::clone(&dropped);
    let signal = Arc::new(
        EventFd::from_flags(EfdFlags::EFD_CLOEXEC | EfdFlags::EFD_NONBLOCK)
            .map_err(io::Error::from)?,
    );
    let raise = Arc::clone(&signal);
    let handle = start_with_errors(
        config,
        address,
        dropped,
        Some(signal),
        move |_bus, event| match tx.try_send(event) {
            Ok(()) => {
                // Only fails when the counter would overflow, which leaves
                // it readable anyway.
                let _ = raise.write(1);
            }
            Err(TrySendError::Disconnected(_)) => {}
            Err(TrySendError::Full(_)) => {
                counter.fetch_add(1, Ordering::Relaxed);
            }
        },
        |e| tracing::warn!("bus error: {e}"),
    )?;
    Ok((handle, rx))
}

/// Runs an entity on a thread that calls `callbacks` for its events.
pub fn spawn_with_callbacks(
    config: &Config,
    address: &Address,
    mut callbacks: Callbacks,
) -> Result<Handle, BindError> {
    let dropped = Arc::new(AtomicU64::new(0));
    let mut errors = callbacks.error.take();
    start_with_errors(
        config,
        address,
        dropped,
        None,
        move |bus, event| callbacks.dispatch(bus, event),
        move |e| {
            if let Some(f) = &mut errors {
                f(e);
            }
        },
    )
}

fn start_with_errors(
    config: &Config,
    address: &Address,
    dropped: Arc<AtomicU64>,
    event_fd: Option<Arc<EventFd>>,
    mut on_event: impl FnMut(&mut Bus, Event) + Send + 'static,
    mut on_error: impl FnMut(&io::Error) + Send + 'static,
) -> Result<Handle, BindError> {
    let mut bus = Bus::bind(config, address)?;
    let mut poll = Poll::new()?;
    poll.registry()
        .register(&mut bus, BUS, Interest::READABLE)?;
    let waker = Waker::new(poll.registry(), WAKE)?;
    let (tx, rx) = mpsc::channel::<Job>();
    let thread = std::thread::Builder::new()
        .name("rmbus".into())
        .spawn(move || {
            let mut events = Events::with_capacity(16);
            loop {
                if let Err(e) = poll.poll(&mut events, bus.timeout()) {
                    if e.kind() != io::ErrorKind::Interrupted {
                        on_error(&e);
                    }
                }
                if events.iter().any(|e| e.token() == BUS) {
                    if let Err(e) = bus.on_readable() {
                        on_error(&e);
                    }
                }
                while let Ok(request) = rx.try_recv() {
                    match request {
                        Job::Run(f) => f(&mut bus),
                        Job::Close => {
                            if let Err(e) = bus.close() {
                                on_error(&e);
                            }
                            while let Some(event) = bus.poll_event() {
                                on_event(&mut bus, event);
                            }
                            return;
                        }
                    }
                }
                if let Err(e) = bus.on_timeout() {
                    on_error(&e);
                }
                while let Some(event) = bus.poll_event() {
                    on_event(&mut bus, event);
                }
            }
        })?;
    Ok(Handle {
        shared: Arc::new(Shared {
            requests: Mutex::new(tx),
            waker,
            bus_thread: thread.thread().id(),
            thread: Mutex::new(Some(thread)),
            dropped_events: dropped,
            event_fd,
        }),
    })
}
