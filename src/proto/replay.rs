//! Replays, out. RFC 3259 checks neither SeqNum nor TimeStamp (§3), so a
//! datagram captured from a peer could be sent again for ever; this guard
//! turns it away.
//!
//! Per source it remembers the newest TimeStamp seen and the (SeqNum,
//! TimeStamp) pairs of the last window W (`REPLAY_WINDOW`, 30 s by default).
//! A datagram whose TimeStamp is older than the newest by more than W, or
//! whose pair was seen already, is a replay. That needs no clock agreement
//! between hosts: every comparison is between one sender's own TimeStamps.
//! A peer restarting under the same address stamps later TimeStamps, so its
//! fresh SeqNums from 0 are new pairs.
//!
//! A pair is forgotten W after it arrived (our clock): from then on its
//! source's messages up to its TimeStamp are refused as a whole (the window
//! has moved past them). When the memory is full the oldest pair goes
//! early the same way: the window shrinks for new entries rather than
//! letting copies through. A source silent for [`SOURCE_RETENTION`] windows
//! is forgotten entirely; replays of its old datagrams are then stopped only
//! by the clock check: on a host-local bus every entity reads the same
//! clock, so a TimeStamp further than W from ours is refused there too
//! ([`ReplayPolicy::clock_check`]).

use std::collections::VecDeque;
use std::fmt;
use std::time::Duration;

use crate::config::{Config, Scope};
use crate::proto::maps::{HashMap, HashSet};
use crate::wire::{clock_offset_ms, timestamp_ms, Address};

pub use crate::config::DEFAULT_REPLAY_WINDOW;

/// A source silent for this many windows (5 minutes by default) is
/// forgotten.
pub const SOURCE_RETENTION: u32 = 10;

/// How the replay guard is set (`REPLAY_WINDOW`, `REPLAY_CLOCK`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplayPolicy {
    /// W: how far back a source's datagrams are remembered; `None` turns
    /// the guard off (every datagram passes, as RFC 3259 has it).
    pub window: Option<Duration>,
    /// Also refuse a datagram whose TimeStamp is further than W from our
    /// own clock (the default on a host-local bus, where every entity reads
    /// the same clock; opt-in on a link, where clocks differ and deployed
    /// peers make no such check).
    pub clock_check: bool,
}

impl Default for ReplayPolicy {
    /// A 30 s window, no clock check.
    fn default() -> ReplayPolicy {
        ReplayPolicy {
            window: Some(DEFAULT_REPLAY_WINDOW),
            clock_check: false,
        }
    }
}

impl ReplayPolicy {
    /// The policy a configuration file sets: its `REPLAY_WINDOW` (30 s when
    /// absent), and the clock check as `REPLAY_CLOCK` says, else on for
    /// `SCOPE=HOSTLOCAL` and off for `LINKLOCAL`.
    pub fn from_config(config: &Config) -> ReplayPolicy {
        ReplayPolicy {
            window: config.replay_window,
            clock_check: config
                .replay_clock
                .unwrap_or(config.scope == Scope::HostLocal),
        }
    }
}

/// What the guard made of a datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReplayVerdict {
    /// Not seen before, inside the window: it goes on.
    Fresh,
    /// Its (SeqNum, TimeStamp) was seen from this source `ago_ms` before,
    /// inside the window: a retransmission (a reliable one is acknowledged
    /// again) or a replay.
    Seen {
        /// How long ago the first copy came (our clock).
        ago_ms: u64,
    },
    /// Older than the newest TimeStamp from this source by more than W.
    Old {
        /// By how much it is older than the newest.
        behind_ms: u64,
        /// W.
        window_ms: u64,
    },
    /// At or before a TimeStamp whose pairs are no longer remembered (they
    /// expired, or the memory was full): the window has moved past it.
    Forgotten,
    /// Its TimeStamp is further than W from our clock (the clock check).
    Clock {
        /// Its TimeStamp minus our clock.
        offset_ms: i64,
        /// W.
        window_ms: u64,
    },
}

impl ReplayVerdict {
    /// True for [`ReplayVerdict::Fresh`].
    pub fn is_fresh(self) -> bool {
        self == ReplayVerdict::Fresh
    }

    /// True for a copy of a reliable message that came within
    /// `dup_memory` of the first: most likely its sender retransmitting
    /// because our ack was lost (acknowledged again, not delivered).
    pub fn is_retransmission(self, reliable: bool, dup_memory: Duration) -> bool {
        matches!(self, ReplayVerdict::Seen { ago_ms }
            if reliable && u128::from(ago_ms) < dup_memory.as_millis())
    }

    /// A short code for logs and JSON: `seen`, `old`, `forgotten`, `clock`.
    pub fn code(self) -> &'static str {
        match self {
            ReplayVerdict::Fresh => "fresh",
            ReplayVerdict::Seen { .. } => "seen",
            ReplayVerdict::Old { .. } => "old",
            ReplayVerdict::Forgotten => "forgotten",
            ReplayVerdict::Clock { .. } => "clock",
        }
    }
}

impl fmt::Display for ReplayVerdict {
    /// Why it was refused, in words.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            ReplayVerdict::Fresh => f.write_str("fresh"),
            ReplayVerdict::Seen { ago_ms } => write!(
                f,
                "a copy of a datagram seen {} ago: a retransmission or a replay \
                 (a reliable one is acknowledged again, never delivered twice)",
                seconds(ago_ms)
            ),
            ReplayVerdict::Old {
                behind_ms,
                window_ms,
            } => write!(
                f,
                "{} older than the newest TimeStamp from this source, beyond the \
                 {} replay window",
                seconds(behind_ms),
                seconds(window_ms)
            ),
            ReplayVerdict::Forgotten => f.write_str(
                "at or before a TimeStamp from this source that the replay window has \
                 moved past (its datagrams are no longer remembered)",
            ),
            ReplayVerdict::Clock {
                offset_ms,
                window_ms,
            } => write!(
                f,
                "its TimeStamp is {}{} from our clock, beyond the {} replay window",
                if offset_ms < 0 { "-" } else { "+" },
                seconds(offset_ms.unsigned_abs()),
                seconds(window_ms)
            ),
        }
    }
}

/// Milliseconds as seconds, e.g. `12.3 s`.
fn seconds(ms: u64) -> String {
    format!("{}.{} s", ms / 1000, (ms % 1000) / 100)
}

/// One remembered source.
#[derive(Debug)]
struct Source {
    addr: Address,
    /// The newest TimeStamp seen (ms).
    newest: u64,
    /// Datagrams at or before this TimeStamp are refused (their pairs are
    /// forgotten).
    floor: Option<u64>,
    /// When it last sent a fresh datagram (our clock, ms).
    last_heard: u64,
    /// How many pairs it has remembered.
    pairs: usize,
}

/// The replay guard: see the module docs. Every input carries our clock as
/// milliseconds since the Unix epoch (`local_ms`); it never reads one.
#[derive(Debug)]
pub struct ReplayGuard {
    policy: ReplayPolicy,
    /// Pairs and sources together: beyond it the window shrinks.
    limit: usize,
    numbers: HashMap<Address, u32>,
    sources: HashMap<u32, Source>,
    next_number: u32,
    /// (source, SeqNum, TimeStamp) → when it arrived (our clock, ms).
    seen: HashMap<(u32, u32, u64), u64>,
    /// The same pairs in arrival order.
    order: VecDeque<(u64, u32, u32, u64)>,
    /// When silent sources are looked for next (our clock, ms).
    next_sweep: u64,
    /// Sources that sent a datagram older than the window already logged.
    old_logged: HashSet<u32>,
    full_logged: bool,
}

impl ReplayGuard {
    /// A guard with `policy`, remembering at most `limit` pairs and sources.
    pub fn new(policy: ReplayPolicy, limit: usize) -> ReplayGuard {
        ReplayGuard {
            policy,
            limit: limit.max(2),
            numbers: HashMap::default(),
            sources: HashMap::default(),
            next_number: 0,
            seen: HashMap::default(),
            order: VecDeque::new(),
            next_sweep: 0,
            old_logged: HashSet::default(),
            full_logged: false,
        }
    }

    /// How many pairs and sources it remembers (at most its limit).
    pub fn remembered(&self) -> usize {
        self.seen.len() + self.sources.len()
    }

    /// Judges `src`'s datagram with `seq` and the TimeStamp `timestamp` as
    /// written (seconds below 10¹¹ are read as such), arriving at
    /// `local_ms`; a fresh one is remembered.
    pub fn check(
        &mut self,
        src: &Address,
        seq: u32,
        timestamp: u64,
        local_ms: u64,
    ) -> ReplayVerdict {
        let Some(window) = self.policy.window else {
            return ReplayVerdict::Fresh;
        };
        let w = window.as_millis() as u64;
        let ts = timestamp_ms(timestamp);
        self.expire(local_ms, w);
        if self.policy.clock_check && ts.abs_diff(local_ms) > w {
            return ReplayVerdict::Clock {
                offset_ms: clock_offset_ms(ts, local_ms),
                window_ms: w,
            };
        }
        let number = match self.numbers.get(src) {
            Some(&n) => {
                let Some(s) = self.sources.get(&n) else {
                    return ReplayVerdict::Fresh;
                };
                if ts.saturating_add(w) < s.newest {
                    if self.old_logged.len() < 64 && self.old_logged.insert(n) {
                        tracing::info!(
                            source = %src,
                            "a datagram older than the replay window from this source: \
                             a replay, or its clock stepped back (it is refused until it \
                             catches up or is forgotten); logged once per source"
                        );
                    }
                    return ReplayVerdict::Old {
                        behind_ms: s.newest - ts,
                        window_ms: w,
                    };
                }
                if s.floor.is_some_and(|f| ts <= f) {
                    return ReplayVerdict::Forgotten;
                }
                if let Some(&at) = self.seen.get(&(n, seq, ts)) {
                    return ReplayVerdict::Seen {
                        ago_ms: local_ms.saturating_sub(at),
                    };
                }
                n
            }
            None => {
                self.make_room(None);
                let n = self.next_number;
                self.next_number = self.next_number.wrapping_add(1);
                self.numbers.insert(src.clone(), n);
                self.sources.insert(
                    n,
                    Source {
                        addr: src.clone(),
                        newest: ts,
                        floor: None,
                        last_heard: local_ms,
                        pairs: 0,
                    },
                );
                n
            }
        };
        self.make_room(Some(number));
        if let Some(s) = self.sources.get_mut(&number) {
            s.newest = s.newest.max(ts);
            s.last_heard = local_ms;
            s.pairs += 1;
            self.seen.insert((number, seq, ts), local_ms);
            self.order.push_back((local_ms, number, seq, ts));
        }
        ReplayVerdict::Fresh
    }

    /// Forgets the pairs that arrived W or more ago, and (once a second) the
    /// sources silent for [`SOURCE_RETENTION`] windows.
    fn expire(&mut self, local_ms: u64, w: u64) {
        while self
            .order
            .front()
            .is_some_and(|&(at, ..)| at.saturating_add(w) <= local_ms)
        {
            self.forget_oldest_pair();
        }
        if local_ms < self.next_sweep {
            return;
        }
        self.next_sweep = local_ms.saturating_add(1000);
        let retention = w.saturating_mul(u64::from(SOURCE_RETENTION));
        let silent: Vec<u32> = self
            .sources
            .iter()
            .filter(|(_, s)| s.pairs == 0 && s.last_heard.saturating_add(retention) <= local_ms)
            .map(|(n, _)| *n)
            .collect();
        for n in silent {
            self.forget_source(n);
        }
    }

    /// Makes room for one more entry: the oldest pair goes (its source's
    /// window shrinks), else the source heard longest ago (the first
    /// remembered among equals), never `keep`.
    fn make_room(&mut self, keep: Option<u32>) {
        while self.remembered() >= self.limit {
            if !self.full_logged {
                self.full_logged = true;
                tracing::warn!(
                    limit = self.limit,
                    "the replay memory is full: the oldest datagrams are forgotten early, \
                     and the window shrinks for their sources (copies are refused, not let \
                     through); logged once"
                );
            }
            if !self.forget_oldest_pair() {
                let oldest = self
                    .sources
                    .iter()
                    .filter(|(n, _)| Some(**n) != keep)
                    .min_by_key(|(n, s)| (s.last_heard, n.wrapping_sub(self.next_number)))
                    .map(|(n, _)| *n);
                match oldest {
                    Some(n) => self.forget_source(n),
                    None => break,
                }
            }
        }
    }

    /// Forgets the oldest pair, raising its source's floor; false if none.
    fn forget_oldest_pair(&mut self) -> bool {
        let Some((_, n, seq, ts)) = self.order.pop_front() else {
            return false;
        };
        self.seen.remove(&(n, seq, ts));
        if let Some(s) = self.sources.get_mut(&n) {
            s.pairs = s.pairs.saturating_sub(1);
            s.floor = Some(s.floor.map_or(ts, |f| f.max(ts)));
        }
        true
    }

    /// Forgets source `n`, which has no pairs left (both callers see to it).
    fn forget_source(&mut self, n: u32) {
        if let Some(s) = self.sources.remove(&n) {
            debug_assert_eq!(s.pairs, 0, "a source is forgotten after its pairs");
            self.numbers.remove(&s.addr);
        }
        self.old_logged.remove(&n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: u64 = 1_700_000_000_000;

    fn a() -> Address {
        Address::parse("(app:a id:1)").unwrap()
    }

    fn guard(limit: usize) -> ReplayGuard {
        ReplayGuard::new(ReplayPolicy::default(), limit)
    }

    #[test]
    fn a_copy_inside_the_window_is_seen_and_an_older_one_is_old() {
        let mut g = guard(100);
        assert!(g.check(&a(), 1, T0, T0).is_fresh());
        assert_eq!(
            g.check(&a(), 1, T0, T0 + 5000),
            ReplayVerdict::Seen { ago_ms: 5000 }
        );
        assert!(g.check(&a(), 2, T0 + 40_000, T0 + 6000).is_fresh());
        assert_eq!(
            g.check(&a(), 3, T0 + 9_000, T0 + 6000),
            ReplayVerdict::Old {
                behind_ms: 31_000,
                window_ms: 30_000
            }
        );
        // Inside the window, out of order: fine.
        assert!(g.check(&a(), 4, T0 + 11_000, T0 + 6000).is_fresh());
    }

    #[test]
    fn a_silent_source_is_refused_at_or_before_its_forgotten_pairs() {
        let mut g = guard(100);
        assert!(g.check(&a(), 1, T0, T0).is_fresh());
        assert_eq!(g.check(&a(), 1, T0, T0 + 31_000), ReplayVerdict::Forgotten);
        assert_eq!(g.check(&a(), 9, T0, T0 + 31_000), ReplayVerdict::Forgotten);
        assert!(g.check(&a(), 2, T0 + 31_000, T0 + 31_000).is_fresh());
        // Silent for 10 windows (pairs gone too): forgotten, its replays pass.
        assert!(g.check(&a(), 2, T0 + 31_000, T0 + 400_000).is_fresh());
    }

    #[test]
    fn off_lets_everything_through_and_the_clock_check_uses_our_clock() {
        let mut off = ReplayGuard::new(
            ReplayPolicy {
                window: None,
                clock_check: true,
            },
            100,
        );
        assert!(off.check(&a(), 1, 1, T0).is_fresh());
        assert!(off.check(&a(), 1, 1, T0).is_fresh());
        assert_eq!(off.remembered(), 0);
        let mut clock = ReplayGuard::new(
            ReplayPolicy {
                clock_check: true,
                ..ReplayPolicy::default()
            },
            100,
        );
        assert_eq!(
            clock.check(&a(), 1, T0 - 31_000, T0),
            ReplayVerdict::Clock {
                offset_ms: -31_000,
                window_ms: 30_000
            }
        );
        // Seconds (pyMbus) are read as seconds.
        assert!(clock.check(&a(), 2, T0 / 1000, T0 + 400).is_fresh());
        assert_eq!(
            ReplayVerdict::Clock {
                offset_ms: -31_000,
                window_ms: 30_000
            }
            .to_string(),
            "its TimeStamp is -31.0 s from our clock, beyond the 30.0 s replay window"
        );
    }

    #[test]
    fn a_full_memory_shrinks_the_window_instead_of_letting_copies_through() {
        let mut g = guard(10);
        for seq in 0..20 {
            assert!(g.check(&a(), seq, T0 + u64::from(seq), T0).is_fresh());
            assert!(g.remembered() <= 10);
        }
        // The early pairs are forgotten: their copies are refused still.
        assert_eq!(g.check(&a(), 0, T0, T0), ReplayVerdict::Forgotten);
        assert_eq!(
            g.check(&a(), 19, T0 + 19, T0),
            ReplayVerdict::Seen { ago_ms: 0 }
        );
    }
}
