//! The event loop of the commands that join the bus: one library [`Host`]
//! (one entity for most commands, several for the demo), termination
//! signals, and an optional waker for other threads.

use std::io;
use std::time::{Duration, Instant};

use mio::{Events, Interest, Poll, Token, Waker};
use rmbus::proto::{EntityView, Event};
use rmbus::runtime::{EntityId, EntityMut, Host};

use rmbus::wire::Address;

use crate::bus_args::{BusArgs, BusPlace};
use crate::signals::Termination;
use crate::Failure;

const HOST: Token = Token(0);
const SIGNAL: Token = Token(1);
const WAKE: Token = Token(2);

/// What the loop does after an event or a tick.
#[derive(Debug, PartialEq, Eq)]
pub enum Flow {
    Continue,
    /// Continue, and call `tick` again by then at the latest.
    WakeAt(Instant),
    Stop,
}

/// Why [`Driver::run`] returned.
#[derive(Debug, PartialEq, Eq)]
pub enum Ended {
    /// The handler said stop.
    Stopped,
    /// The deadline passed.
    Deadline,
    /// Ctrl-C or SIGTERM.
    Signal,
}

/// Entity `id` of `host`: a command keeps its entities for its whole run.
pub fn entity(host: &mut Host, id: EntityId) -> EntityMut<'_> {
    host.entity(id)
        .expect("a command keeps its entities while it runs")
}

/// Entity `id`'s protocol core.
pub fn endpoint(host: &Host, id: EntityId) -> EntityView<'_> {
    host.endpoint(id)
        .expect("a command keeps its entities while it runs")
}

pub struct Driver {
    poll: Poll,
    events: Events,
    signals: Termination,
    pub host: Host,
}

impl Driver {
    pub fn new(mut host: Host) -> io::Result<Driver> {
        let poll = Poll::new()?;
        let mut signals = Termination::install()?;
        signals.register(poll.registry(), SIGNAL)?;
        poll.registry()
            .register(&mut host, HOST, Interest::READABLE)?;
        Ok(Driver {
            poll,
            events: Events::with_capacity(64),
            signals,
            host,
        })
    }

    /// Joins the bus that `args` describe with one entity: the driver and
    /// the entity's id.
    pub fn join(args: &BusArgs) -> Result<(Driver, EntityId), Failure> {
        Driver::join_as(&args.place, &args.address)
    }

    /// Joins the bus `place` describes as `address` (the runtime adds the
    /// `id` element).
    pub fn join_as(place: &BusPlace, address: &Address) -> Result<(Driver, EntityId), Failure> {
        let config = place.config()?;
        let mut host = rmbus::runtime::Host::bind(&config)
            .map_err(|e| Failure::input(format!("cannot join the bus: {e}")))?;
        let me = host
            .add(address)
            .map_err(|e| Failure::input(format!("cannot join the bus: {e}")))?;
        Ok((Driver::new(host).map_err(Failure::input)?, me))
    }

    /// A waker other threads can use to make [`Driver::run`] call `tick`.
    pub fn waker(&self) -> io::Result<Waker> {
        Waker::new(self.poll.registry(), WAKE)
    }

    /// Runs until `on_event` or `tick` says stop, `deadline` passes, or a
    /// signal arrives. After every wake-up, `on_event` runs for each event of
    /// each entity, then `tick` once (so that `tick` sees what the events said).
    pub fn run(
        &mut self,
        deadline: Option<Instant>,
        mut tick: impl FnMut(&mut Host) -> Flow,
        mut on_event: impl FnMut(&mut Host, EntityId, Event) -> Flow,
    ) -> io::Result<Ended> {
        let mut wake_at: Option<Instant> = None;
        loop {
            let now = Instant::now();
            if deadline.is_some_and(|d| d <= now) {
                return Ok(Ended::Deadline);
            }
            let wake = self
                .host
                .deadline()
                .into_iter()
                .chain(deadline)
                .chain(wake_at)
                .min()
                .map(|t| t.saturating_duration_since(now) + Duration::from_micros(200));
            match self.poll.poll(&mut self.events, wake) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
            let mut readable = false;
            for e in self.events.iter() {
                match e.token() {
                    SIGNAL if self.signals.arrived() => return Ok(Ended::Signal),
                    HOST => readable = true,
                    _ => {}
                }
            }
            if readable {
                self.host.on_readable()?;
            }
            self.host.on_timeout()?;
            while let Some((id, event)) = self.host.poll_event() {
                if on_event(&mut self.host, id, event) == Flow::Stop {
                    // Send what the handler queued; later events stay queued.
                    self.host.flush()?;
                    return Ok(Ended::Stopped);
                }
            }
            match tick(&mut self.host) {
                Flow::Stop => return Ok(Ended::Stopped),
                Flow::WakeAt(t) => wake_at = Some(t),
                Flow::Continue => wake_at = None,
            }
        }
    }
}
