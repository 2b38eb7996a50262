//! The event loop of the commands that join the bus: one or more [`Bus`]es,
//! termination signals, and an optional waker for other threads.

use std::io;
use std::time::{Duration, Instant};

use mio::{Events, Interest, Poll, Token, Waker};
use rmbus::proto::Event;
use rmbus::runtime::Bus;

use crate::signals::Termination;

const SIGNAL: Token = Token(usize::MAX - 1);
const WAKE: Token = Token(usize::MAX - 2);

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

pub struct Driver {
    poll: Poll,
    events: Events,
    signals: Termination,
    pub buses: Vec<Bus>,
}

impl Driver {
    pub fn new(buses: Vec<Bus>) -> io::Result<Driver> {
        let poll = Poll::new()?;
        let mut signals = Termination::install()?;
        signals.register(poll.registry(), SIGNAL)?;
        let mut driver = Driver {
            poll,
            events: Events::with_capacity(64),
            signals,
            buses: Vec::new(),
        };
        for bus in buses {
            driver.add(bus)?;
        }
        Ok(driver)
    }

    pub fn add(&mut self, mut bus: Bus) -> io::Result<usize> {
        let i = self.buses.len();
        self.poll
            .registry()
            .register(&mut bus, Token(i), Interest::READABLE)?;
        self.buses.push(bus);
        Ok(i)
    }

    /// A waker other threads can use to make [`Driver::run`] call `tick`.
    pub fn waker(&self) -> io::Result<Waker> {
        Waker::new(self.poll.registry(), WAKE)
    }

    /// Runs until `on_event` or `tick` says stop, `deadline` passes, or a
    /// signal arrives. After every wake-up, `on_event` runs for each event of
    /// each bus, then `tick` once (so that `tick` sees what the events said).
    pub fn run(
        &mut self,
        deadline: Option<Instant>,
        mut tick: impl FnMut(&mut [Bus]) -> Flow,
        mut on_event: impl FnMut(&mut [Bus], usize, Event) -> Flow,
    ) -> io::Result<Ended> {
        let mut wake_at: Option<Instant> = None;
        loop {
            let now = Instant::now();
            if deadline.is_some_and(|d| d <= now) {
                return Ok(Ended::Deadline);
            }
            let wake = self
                .buses
                .iter()
                .filter_map(Bus::deadline)
                .chain(deadline)
                .chain(wake_at)
                .min()
                .map(|t| t.saturating_duration_since(now) + Duration::from_micros(200));
            match self.poll.poll(&mut self.events, wake) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
            let mut readable = Vec::new();
            for e in self.events.iter() {
                if e.token() == SIGNAL {
                    if self.signals.arrived() {
                        return Ok(Ended::Signal);
                    }
                } else if e.token() != WAKE {
                    readable.push(e.token().0);
                }
            }
            for i in readable {
                if let Some(bus) = self.buses.get_mut(i) {
                    bus.on_readable()?;
                }
            }
            for bus in &mut self.buses {
                bus.on_timeout()?;
            }
            for i in 0..self.buses.len() {
                while let Some(event) = self.buses[i].poll_event() {
                    if on_event(&mut self.buses, i, event) == Flow::Stop {
                        // Send what the handler queued; later events stay queued.
                        self.buses[i].flush()?;
                        return Ok(Ended::Stopped);
                    }
                }
            }
            match tick(&mut self.buses) {
                Flow::Stop => return Ok(Ended::Stopped),
                Flow::WakeAt(t) => wake_at = Some(t),
                Flow::Continue => wake_at = None,
            }
        }
    }
}
