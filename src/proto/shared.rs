//! [`Shared`]: what every entity of one host sees alike, kept once.
//!
//! Entities on one host hear the same datagrams. Who is on the bus (the
//! entity table, RFC 3259 §8), which (source, SeqNum, TimeStamp) triples have
//! been seen (the replay guard, §11), which sources failed authentication,
//! and whose silence has lasted too long are facts about the bus, not about
//! one entity: a host of many entities keeps them here once and screens each
//! datagram once, before it is routed to the entities it is addressed to
//! ([`super::Entities`]). A lone [`super::Endpoint`] owns one of its own.
//!
//! Each entity keeps what is its own: its address, SeqNums, reliable
//! messages in flight, the acks it owes, its duplicate memory, its hello
//! timer and its Guidelines sub-machines.
//!
//! Like the rest of the core it is pure: every input carries `now`; a peer
//! joining or leaving is queued as a [`PeerChange`] for the driver to hand to
//! the entities that need it.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};

use crate::auth::Rejection;
use crate::wire::{timestamp_of, Address, Header, MessageType};

use super::hello::HelloTimer;
use super::peers::{Peer, PeerTable};
use super::replay::{ReplayGuard, ReplayVerdict};
use super::unauthenticated::{Unauthenticated, UnauthenticatedSource};
use super::{EndpointConfig, LeaveReason, Limits, Stats, Timers};

/// How long between the summaries logged while the entity table overflows.
const OVERFLOW_REPORT: Duration = Duration::from_secs(60);

/// How many entities of each kind a full table looks at for one to evict.
const EVICTION_SCAN: usize = 64;

/// The entity table overflowing: logged once when it starts, then summed up
/// once a minute while it lasts.
#[derive(Debug)]
struct Overflow {
    /// When the next summary is due.
    report_at: Instant,
    /// Evictions since the last report.
    evicted: u64,
    /// Untracked messages since the last report.
    untracked: u64,
}

/// A change of the entity table, for the entities to follow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PeerChange {
    /// A new entity was heard.
    Joined(Address),
    /// An entity left the table (bye, silence, or evicted for a newcomer).
    Left(Address, LeaveReason),
}

/// What screening made of a datagram's header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Screened {
    /// A fresh datagram; `tracked` is false if its source is new and the full
    /// table could not take it (it is heard, not tracked).
    Fresh {
        /// The source is in the table.
        tracked: bool,
    },
    /// A copy or an old datagram, refused by the replay guard.
    Refused(ReplayVerdict),
}

/// What the entities of one host share: see the module documentation.
#[derive(Debug)]
pub struct Shared {
    timers: Timers,
    limits: Limits,
    /// The monotonic instant and wall-clock milliseconds of one moment: the
    /// replay guard's clock is derived from it.
    anchor: (Instant, u64),
    peers: PeerTable,
    replay: ReplayGuard,
    unauthenticated: Unauthenticated,
    overflow: Option<Overflow>,
    changes: VecDeque<PeerChange>,
    /// Entities on the bus that the table does not list: a lone entity
    /// never lists itself (it drops its own echoes); a host's entities are
    /// listed once heard.
    unlisted: usize,
    /// The counters kept here: rejections, evictions, untracked senders.
    stats: Stats,
}

impl Shared {
    /// The shared state of a host whose entities use `config` (its timers,
    /// limits and replay policy), created at `now`, `wall` being the wall
    /// clock at that moment.
    pub fn new(config: &EndpointConfig, now: Instant, wall: SystemTime) -> Shared {
        Shared {
            timers: config.timers.clone(),
            limits: config.limits.clone(),
            anchor: (now, timestamp_of(wall)),
            peers: PeerTable::default(),
            replay: ReplayGuard::new(config.replay, config.limits.max_replay_entries),
            unauthenticated: Unauthenticated::default(),
            overflow: None,
            changes: VecDeque::new(),
            unlisted: 0,
            stats: Stats::default(),
        }
    }

    /// The shared state of one lone entity, which its table never lists.
    pub(crate) fn of_one(mut self) -> Shared {
        self.unlisted = 1;
        self
    }

    /// The entity count the hello timing and the expiry use: the table and
    /// the unlisted, capped at [`Limits::max_counted_entities`].
    fn timed_count(&self) -> usize {
        self.timed(self.peers.len() + self.unlisted)
    }

    // ---- views -------------------------------------------------------------------

    /// Every entity in the table, in the order they joined (the host's own
    /// entities among them, once they have been heard).
    pub fn peers(&self) -> impl Iterator<Item = &Peer> + '_ {
        self.peers.iter()
    }

    /// How many entities the table holds.
    pub fn len(&self) -> usize {
        self.peers.len()
    }

    /// True if the table is empty.
    pub fn is_empty(&self) -> bool {
        self.peers.len() == 0
    }

    /// The sources of datagrams that failed authentication (RFC 3259 §11).
    pub fn unauthenticated_sources(&self) -> &[UnauthenticatedSource] {
        self.unauthenticated.sources()
    }

    /// The counters kept once for the host: `rejected_auth`,
    /// `rejected_cipher`, `rejected_malformed`, `rejected_replay`, `evicted`
    /// and `untracked` (the others are each entity's).
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// How many (source, SeqNum, TimeStamp) triples and sources the replay
    /// guard remembers.
    pub fn replay_remembered(&self) -> usize {
        self.replay.remembered()
    }

    /// The known entities `dst` designates (RFC 3259 §4), through the
    /// table's element index.
    pub(crate) fn matching<'a>(&'a self, dst: &'a Address) -> impl Iterator<Item = &'a Peer> + 'a {
        self.peers.matching(dst)
    }

    pub(crate) fn peer(&self, addr: &Address) -> Option<&Peer> {
        self.peers.get(addr)
    }

    pub(crate) fn contains(&self, addr: &Address) -> bool {
        self.peers.contains(addr)
    }

    /// The entity count the hello timing and the expiry use for a table of
    /// `entities`: capped at [`Limits::max_counted_entities`].
    pub(crate) fn timed(&self, entities: usize) -> usize {
        entities.min(self.limits.max_counted_entities.max(1))
    }

    /// The wall clock at `now`, in milliseconds since the Unix epoch.
    pub(crate) fn wall_ms(&self, now: Instant) -> u64 {
        let (at, ms) = self.anchor;
        ms + now.saturating_duration_since(at).as_millis() as u64
    }

    // ---- input -------------------------------------------------------------------

    /// Re-anchors the replay guard's clock (see `Endpoint::set_wall_clock`).
    pub(crate) fn set_wall_clock(&mut self, now: Instant, wall: SystemTime) {
        self.anchor = (now, timestamp_of(wall));
    }

    /// A datagram that did not open: counted, and its source remembered.
    pub(crate) fn reject(&mut self, from: SocketAddr, rejection: &Rejection) {
        match rejection {
            Rejection::NoDigest | Rejection::BadDigest => self.stats.rejected_auth += 1,
            Rejection::Malformed(_) => self.stats.rejected_malformed += 1,
            _ => self.stats.rejected_cipher += 1,
        }
        self.unauthenticated.record(from, rejection);
        tracing::trace!(%from, reason = rejection.code(), "datagram rejected");
    }

    /// Screens an authentic datagram's header once for the host: the replay
    /// guard judges it, and a fresh one (or a copy that is most likely a
    /// retransmission) refreshes or adds its source in the table. `busy`
    /// says which entities some entity of the host has open work with (a
    /// full table does not evict those).
    pub(crate) fn screen(
        &mut self,
        now: Instant,
        from: SocketAddr,
        header: &Header,
        busy: &dyn Fn(&Address) -> bool,
    ) -> Screened {
        let local_ms = self.wall_ms(now);
        let verdict = self
            .replay
            .check(&header.src, header.seq, header.timestamp, local_ms);
        if verdict.is_fresh() {
            let tracked = self.heard_from(now, &header.src, from, busy);
            return Screened::Fresh { tracked };
        }
        let reliable = header.kind == MessageType::Reliable;
        if verdict.is_retransmission(reliable, self.timers.dup_memory) {
            // A retransmission is a sign of life, as any message is; a copy
            // beyond the duplicate memory is not trusted as one.
            self.heard_from(now, &header.src, from, busy);
        } else {
            self.stats.rejected_replay += 1;
            tracing::debug!(
                src = %header.src,
                seq = header.seq,
                timestamp = header.timestamp,
                reason = verdict.code(),
                "datagram refused: {verdict}"
            );
        }
        Screened::Refused(verdict)
    }

    /// Removes `addr` from the table (a bye, or a host's entity leaving);
    /// false if it was not there.
    pub(crate) fn remove(&mut self, addr: &Address, reason: LeaveReason) -> bool {
        if !self.peers.remove(addr) {
            return false;
        }
        tracing::debug!(peer = %addr, ?reason, "entity left");
        self.changes
            .push_back(PeerChange::Left(addr.clone(), reason));
        true
    }

    /// Removes every entity silent for too long at `now` (the threshold
    /// shrinks with the entity count, RFC 3259 §8) and the overflow summary
    /// due, if any.
    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        loop {
            let dead_after = HelloTimer::dead_after(&self.timers, self.timed_count());
            let Some((heard, addr)) = self.peers.least_recently_heard() else {
                break;
            };
            if heard + dead_after > now {
                break;
            }
            let addr = addr.clone();
            self.remove(&addr, LeaveReason::Timeout);
        }
        self.report_overflow(now);
    }

    /// When [`Shared::handle_timeout`] is due next.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        let dead_after = HelloTimer::dead_after(&self.timers, self.timed_count());
        let expiry = self
            .peers
            .least_recently_heard()
            .map(|(at, _)| at + dead_after);
        let report = self.overflow.as_ref().map(|o| o.report_at);
        expiry.into_iter().chain(report).min()
    }

    /// The next change of the table, for the entities to follow.
    pub(crate) fn poll_change(&mut self) -> Option<PeerChange> {
        self.changes.pop_front()
    }

    // ---- internals -------------------------------------------------------------------

    /// Adds or refreshes the sender in the table; false if it is new and the
    /// table is full of entities that cannot make room (counted in
    /// `untracked`: it is heard, not tracked). A newcomer to a full table
    /// takes the place of the entity [`PeerTable::eviction_candidate`] names.
    fn heard_from(
        &mut self,
        now: Instant,
        src: &Address,
        from: SocketAddr,
        busy: &dyn Fn(&Address) -> bool,
    ) -> bool {
        if self.peers.heard(src, from, now) {
            return true;
        }
        if self.peers.len() >= self.limits.max_peers.max(1) {
            if self.overflow.is_none() {
                tracing::warn!(
                    max_peers = self.limits.max_peers,
                    newcomer = %src,
                    "the entity table is full: newcomers now take the place of entities \
                     heard only once (a flood of hellos?); a summary follows each minute \
                     while it lasts"
                );
            }
            let overflow = self.overflow.get_or_insert(Overflow {
                report_at: now + OVERFLOW_REPORT,
                evicted: 0,
                untracked: 0,
            });
            let Some(victim) = self.peers.eviction_candidate(EVICTION_SCAN, busy).cloned() else {
                overflow.untracked += 1;
                self.stats.untracked += 1;
                return false;
            };
            overflow.evicted += 1;
            self.stats.evicted += 1;
            self.peers.remove(&victim);
            tracing::debug!(peer = %victim, newcomer = %src, "entity evicted");
            self.changes
                .push_back(PeerChange::Left(victim, LeaveReason::Evicted));
        }
        self.peers.insert(src, from, now);
        tracing::debug!(peer = %src, %from, "entity joined");
        self.changes.push_back(PeerChange::Joined(src.clone()));
        true
    }

    /// The summary of a minute of overflow, or the end of it.
    fn report_overflow(&mut self, now: Instant) {
        let Some(o) = self.overflow.as_mut().filter(|o| o.report_at <= now) else {
            return;
        };
        if o.evicted == 0 && o.untracked == 0 {
            tracing::info!("no newcomer overflowed the entity table in the last minute");
            self.overflow = None;
            return;
        }
        tracing::warn!(
            evicted = o.evicted,
            untracked = o.untracked,
            entities = self.peers.len(),
            "the entity table is still full: in the last minute {} entities were evicted \
             for newcomers and {} messages came from entities it could not take",
            o.evicted,
            o.untracked
        );
        o.evicted = 0;
        o.untracked = 0;
        o.report_at = now + OVERFLOW_REPORT;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Keys;
    use crate::wire::Framing;

    fn config(max_peers: usize) -> EndpointConfig {
        let limits = Limits {
            max_peers,
            ..Limits::default()
        };
        EndpointConfig {
            keys: Keys::md5_noencr(b"123156189112").unwrap(),
            framing: Framing::Lf,
            group: "239.255.255.247:47000".parse().unwrap(),
            send_unicast: false,
            seed: 1,
            first_seq: 0,
            timers: Timers::default(),
            limits,
            replay: super::super::ReplayPolicy::default(),
        }
    }

    /// A fresh shared state with a table of `max_peers`, the time it was
    /// made (monotonic, and wall-clock ms) and a source endpoint.
    fn setup(max_peers: usize) -> (Shared, Instant, u64, SocketAddr) {
        let (now, wall) = (Instant::now(), SystemTime::now());
        let shared = Shared::new(&config(max_peers), now, wall);
        let from: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        (shared, now, timestamp_of(wall), from)
    }

    fn header(src: &str, seq: u32, timestamp: u64) -> Header {
        Header {
            seq,
            timestamp,
            kind: MessageType::Unreliable,
            src: Address::parse(src).unwrap(),
            dst: Address::empty(),
            acks: vec![],
        }
    }

    #[test]
    fn a_datagram_is_screened_once_and_its_copy_refused() {
        let (mut shared, now, ms, from) = setup(16);
        let h = header("(n:a id:1@h)", 0, ms);
        assert_eq!(
            shared.screen(now, from, &h, &|_| false),
            Screened::Fresh { tracked: true }
        );
        assert_eq!(
            shared.poll_change(),
            Some(PeerChange::Joined(h.src.clone()))
        );
        assert!(matches!(
            shared.screen(now, from, &h, &|_| false),
            Screened::Refused(_)
        ));
        assert_eq!(shared.stats().rejected_replay, 1);
        assert_eq!(shared.poll_change(), None, "a copy changes nothing");
    }

    #[test]
    fn a_full_table_evicts_only_the_entities_no_one_is_busy_with() {
        let (mut shared, now, ms, from) = setup(2);
        let (a, b, c) = (
            header("(n:a id:1@h)", 0, ms),
            header("(n:b id:2@h)", 0, ms),
            header("(n:c id:3@h)", 0, ms),
        );
        for h in [&a, &b] {
            shared.screen(now, from, h, &|_| false);
        }
        let everyone_busy = |_: &Address| true;
        assert_eq!(
            shared.screen(now, from, &c, &everyone_busy),
            Screened::Fresh { tracked: false }
        );
        assert_eq!(shared.stats().untracked, 1);
        let c2 = header("(n:c id:3@h)", 1, ms);
        let a_busy = |x: &Address| *x == a.src;
        assert_eq!(
            shared.screen(now, from, &c2, &a_busy),
            Screened::Fresh { tracked: true }
        );
        assert!(shared.contains(&a.src) && !shared.contains(&b.src));
        let changes: Vec<_> = std::iter::from_fn(|| shared.poll_change()).collect();
        assert_eq!(
            changes[2..],
            [
                PeerChange::Left(b.src.clone(), LeaveReason::Evicted),
                PeerChange::Joined(c.src.clone())
            ]
        );
    }

    #[test]
    fn silent_entities_expire_once_for_the_host() {
        let (mut shared, now, ms, from) = setup(16);
        let h = header("(n:a id:1@h)", 0, ms);
        shared.screen(now, from, &h, &|_| false);
        shared.poll_change();
        let due = shared.next_deadline().expect("an expiry");
        shared.handle_timeout(due - Duration::from_millis(1));
        assert_eq!(shared.len(), 1);
        shared.handle_timeout(due);
        assert_eq!(shared.len(), 0);
        assert_eq!(
            shared.poll_change(),
            Some(PeerChange::Left(h.src, LeaveReason::Timeout))
        );
    }
}
