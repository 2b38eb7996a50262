//! Finding a destination before sending reliably to it: a known one at once,
//! an unknown one by a ping and a wait to hear from it (`--wait`), as `send
//! --reliable`, `call` and `join`'s `rsend`, `call` and `go` do.

use std::time::{Duration, Instant};

use rmbus::proto::{EntityView, SendError};
use rmbus::runtime::{EntityId, EntityMut};
use rmbus::wire::Address;

use crate::driver::{endpoint, entity};

/// When entity `me` heard no entity but datagrams that failed
/// authentication, a sentence naming where they came from (usually a bus
/// with another key), for the answer of a command that found nobody.
pub fn key_hint(host: &rmbus::runtime::Host, me: EntityId) -> Option<String> {
    rmbus::proto::unauthenticated_hint(endpoint(host, me).unauthenticated_sources())
}

/// The failure for a destination that was not found: exit 2 with the key
/// hint when there is one, exit 2 naming the entities when several match,
/// else what `otherwise` makes of `e`.
pub fn not_found(
    host: &rmbus::runtime::Host,
    me: EntityId,
    e: SendError,
    otherwise: impl FnOnce(SendError) -> crate::Failure,
) -> crate::Failure {
    match (&e, key_hint(host, me)) {
        (SendError::UnknownDestination(_), Some(hint)) => {
            crate::Failure::input(format!("{e}; {hint}"))
        }
        (SendError::NotUnique { dst, .. }, _) => {
            let named: Vec<String> = endpoint(host, me)
                .peers()
                .filter(|p| dst.is_subset_of(&p.address))
                .map(|p| p.address.to_string())
                .collect();
            crate::Failure::input(format!("{e}: {}", named.join(", ")))
        }
        _ => otherwise(e),
    }
}

/// How long ping answers take at most (U[0, 1000] ms) plus a margin.
const PING_ANSWERS: Duration = Duration::from_millis(1100);

/// A destination being looked for.
pub struct Search {
    pub dst: Address,
    /// When it was pinged; `None` if it was known from the start.
    pinged: Option<Instant>,
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
    /// Starts looking for `dst`, at most `wait`. Only a destination that no
    /// known entity matches is pinged and waited for: one that matches known
    /// entities is decided at once (learn, don't ask again; a UCL peer never
    /// answers pings, it only says hello once a second).
    pub fn start(me: &mut EntityMut<'_>, dst: &Address, wait: Duration) -> Search {
        let now = Instant::now();
        let unknown = matches!(
            me.endpoint().unique_match(dst),
            Err(SendError::UnknownDestination(_))
        );
        if unknown {
            return Search::pinging(me, dst, wait);
        }
        Search {
            dst: dst.clone(),
            pinged: None,
            deadline: now + wait,
        }
    }

    /// Pings `dst` and starts waiting at most `wait` (for a group, whose
    /// known members may not be all of it).
    pub fn pinging(me: &mut EntityMut<'_>, dst: &Address, wait: Duration) -> Search {
        let now = Instant::now();
        if let Err(e) = me.with_endpoint(|ep, now| ep.ping(now, dst)) {
            tracing::warn!("ping failed: {e}");
        }
        Search {
            dst: dst.clone(),
            pinged: Some(now),
            deadline: now + wait,
        }
    }

    /// A destination with an `id` element is unique once heard from; any other
    /// needs every ping answer (1.1 s) to tell whether one entity or several
    /// match it. A unique subset address is completed to the entity's address.
    pub fn check(&self, ep: EntityView<'_>, now: Instant) -> Found {
        let complete = self.dst.id().is_some();
        let settled = complete || self.pinged.is_none_or(|at| now >= at + PING_ANSWERS);
        let result = ep.unique_match(&self.dst);
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
        match self.pinged.map(|at| at + PING_ANSWERS) {
            Some(answers) if answers > Instant::now() => answers.min(self.deadline),
            _ => self.deadline,
        }
    }
}

/// Pings `dst` and runs `driver` until one entity is found, the search gives
/// up, or a signal arrives (`None`).
pub fn find(
    driver: &mut crate::driver::Driver,
    me: EntityId,
    dst: &Address,
    wait: Duration,
) -> std::io::Result<Option<Result<Address, SendError>>> {
    use crate::driver::{Ended, Flow};
    let search = Search::start(&mut entity(&mut driver.host, me), dst, wait);
    let mut found = Found::NotYet;
    let ended = driver.run(
        Some(search.next_check().max(Instant::now() + wait) + Duration::from_millis(10)),
        |host| {
            let now = Instant::now();
            found = search.check(endpoint(host, me), now);
            match found {
                Found::NotYet => {
                    Flow::WakeAt(search.next_check().max(now + Duration::from_millis(5)))
                }
                _ => Flow::Stop,
            }
        },
        |_, _, _| Flow::Continue,
    )?;
    if ended == Ended::Signal {
        return Ok(None);
    }
    if matches!(found, Found::NotYet) {
        found = search.check(endpoint(&driver.host, me), Instant::now());
    }
    Ok(Some(match found {
        Found::Unique(full) => Ok(full),
        Found::No(e) => Err(e),
        Found::NotYet => Err(SendError::UnknownDestination(dst.clone())),
    }))
}

/// Pings the group `dst` and runs `driver` until entities matching it are
/// known: the first one if `first` (an ANYCAST call needs one volunteer),
/// else all that answer the ping (1.1 s), or until `wait` has passed. Returns
/// the known matches (`None` after a signal).
pub fn gather(
    driver: &mut crate::driver::Driver,
    me: EntityId,
    dst: &Address,
    wait: Duration,
    first: bool,
) -> std::io::Result<Option<Vec<Address>>> {
    use crate::driver::{Ended, Flow};
    let search = Search::pinging(&mut entity(&mut driver.host, me), dst, wait);
    let settled = search.deadline.min(Instant::now() + PING_ANSWERS);
    let matches = |ep: EntityView<'_>| -> Vec<Address> {
        ep.peers()
            .map(|p| p.address.clone())
            .filter(|a| dst.is_subset_of(a))
            .collect()
    };
    let ended = driver.run(
        Some(search.deadline),
        |host| {
            let now = Instant::now();
            let known = !matches(endpoint(host, me)).is_empty();
            if known && (first || now >= settled) {
                Flow::Stop
            } else if now < settled {
                Flow::WakeAt(settled)
            } else {
                Flow::Continue
            }
        },
        |_, _, _| Flow::Continue,
    )?;
    if ended == Ended::Signal {
        return Ok(None);
    }
    Ok(Some(matches(endpoint(&driver.host, me))))
}
