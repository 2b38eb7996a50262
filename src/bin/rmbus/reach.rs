//! Finding a destination before sending reliably to it: ping, then wait to
//! hear from it (`--wait`), as `send --reliable` and `join`'s `rsend` do.

use std::time::{Duration, Instant};

use rmbus::proto::SendError;
use rmbus::runtime::Bus;
use rmbus::wire::Address;

/// How long ping answers take at most (U[0, 1000] ms) plus a margin.
const PING_ANSWERS: Duration = Duration::from_millis(1100);

/// A destination being looked for.
pub struct Search {
    pub dst: Address,
    pinged: Instant,
    deadline: Instant,
}

/// What a search found.
pub enum Found {
    /// The complete address of the one entity `dst` designates.
    Unique(Address),
    /// Keep waiting.
    NotYet,
    /// Give up: unknown or not unique.
    No(SendError),
}

impl Search {
    /// Pings `dst` and starts waiting at most `wait`.
    pub fn start(bus: &mut Bus, dst: &Address, wait: Duration) -> Search {
        let now = Instant::now();
        if let Err(e) = bus.ping(dst) {
            tracing::warn!("ping failed: {e}");
        }
        Search {
            dst: dst.clone(),
            pinged: now,
            deadline: now + wait,
        }
    }

    /// A destination with an `id` element is unique once heard from; any other
    /// needs every ping answer (1.1 s) to tell whether one entity or several
    /// match it. A unique subset address is completed to the entity's address.
    pub fn check(&self, bus: &Bus, now: Instant) -> Found {
        let complete = self.dst.id().is_some();
        let settled = complete || now >= self.pinged + PING_ANSWERS;
        let result = bus.endpoint().unique_match(&self.dst);
        let expired = now >= self.deadline;
        match result {
            Ok(full) if settled || expired => Found::Unique(full),
            // More answers cannot make several matches one.
            Err(e @ SendError::NotUnique { .. }) => Found::No(e),
            Err(e) if expired => Found::No(e),
            _ => Found::NotYet,
        }
    }

    /// When to look again at the latest: when the ping answers are all in,
    /// then at the deadline.
    pub fn next_check(&self) -> Instant {
        let answers = self.pinged + PING_ANSWERS;
        if answers > Instant::now() {
            answers.min(self.deadline)
        } else {
            self.deadline
        }
    }
}
