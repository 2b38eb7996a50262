//! Reliable delivery state (RFC 3259 §7, §10).
//!
//! Sender: a reliable message is transmitted at 0, T_r and 3·T_r (100 and
//! 300 ms) and reported failed at 6·T_r (600 ms) without an ack; many may be in
//! flight at once ([`RetransmitPolicy`], [`InFlightTable`]). Receiver:
//! duplicates are recognised by (source, SeqNum, TimeStamp) for at least
//! `dup_memory`, re-acknowledged and never delivered twice
//! ([`DuplicateMemory`]).

use std::collections::VecDeque;

use crate::proto::maps::{HashMap, HashSet};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::wire::Address;

use super::deadlines::Deadlines;
use super::{MsgId, Timers};

/// When a reliable message is sent again and when it is given up (RFC 3259
/// §7: the k-th retransmission waits k·T_r, N_r transmissions in all).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RetransmitPolicy {
    t_r: Duration,
    n_r: u32,
}

/// What a reliable message's timer calls for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    /// Send it again (it is then its `transmissions`-th), and wait until `next`.
    Retransmit {
        /// Transmissions after this one.
        transmissions: u32,
        /// The next timer.
        next: Instant,
    },
    /// All transmissions are spent: report it failed.
    GiveUp,
}

impl RetransmitPolicy {
    /// The policy of these timers (T_r, N_r).
    pub(crate) fn new(timers: &Timers) -> RetransmitPolicy {
        RetransmitPolicy {
            t_r: timers.t_r,
            n_r: timers.n_r,
        }
    }

    /// The timer after the first transmission, at `sent`.
    pub(crate) fn first_timer(&self, sent: Instant) -> Instant {
        sent + self.t_r
    }

    /// The timer of a message transmitted `transmissions` times fired at `now`.
    pub(crate) fn on_timer(&self, transmissions: u32, now: Instant) -> Step {
        if transmissions >= self.n_r {
            return Step::GiveUp;
        }
        let transmissions = transmissions + 1;
        Step::Retransmit {
            transmissions,
            next: now + self.t_r * transmissions,
        }
    }

    /// T_k: how long a sender may still retransmit a message after its first
    /// transmission (T_r · N_r(N_r+1)/2, 600 ms), and so how long a receiver
    /// keeps the ack lists it sent, to send them whole again (§7).
    pub(crate) fn retransmit_window(&self) -> Duration {
        self.t_r * (self.n_r * (self.n_r + 1) / 2)
    }

    /// T_anycast = N_r·T_r (Guidelines §7): how long an anycast caller waits
    /// for volunteers.
    pub(crate) fn anycast_wait(&self) -> Duration {
        self.t_r * self.n_r
    }
}

/// One reliable message waiting for its ack.
#[derive(Debug)]
pub(crate) struct InFlight {
    pub(crate) dst: Address,
    pub(crate) seq: u32,
    /// The other sends batched into this message after the first (whose id
    /// keys it); its ack settles them all.
    pub(crate) batched: Vec<MsgId>,
    /// The sealed datagram; retransmissions repeat it byte for byte.
    pub(crate) bytes: Vec<u8>,
    pub(crate) to: SocketAddr,
    pub(crate) first_sent: Instant,
    pub(crate) transmissions: u32,
}

/// What the in-flight timers produced.
#[derive(Debug)]
pub(crate) enum Fired {
    /// Send this datagram again.
    Retransmit {
        /// Where.
        to: SocketAddr,
        /// The datagram.
        bytes: Vec<u8>,
    },
    /// This message got no acknowledgement.
    Failed(MsgId, InFlight),
}

/// Reliable messages in flight, findable by id and by SeqNum, with their
/// timers. Our SeqNums are unique among what is in flight (they wrap only
/// after 2³² messages, and at most `max_in_flight` are kept), so an ack is
/// found by its SeqNum and checked against the message's destination.
#[derive(Debug, Default)]
pub(crate) struct InFlightTable {
    by_id: HashMap<MsgId, InFlight>,
    by_seq: HashMap<u32, MsgId>,
    timers: Deadlines<MsgId>,
    /// The sends in the messages in flight (more than the messages when
    /// some were batched).
    sends: usize,
}

impl InFlightTable {
    /// How many sends are in flight (a batched message counts each).
    pub(crate) fn len(&self) -> usize {
        self.sends
    }

    /// Adds a message just transmitted for the first time.
    pub(crate) fn insert(&mut self, id: MsgId, m: InFlight, policy: &RetransmitPolicy) {
        self.sends += 1 + m.batched.len();
        self.timers.set(id, policy.first_timer(m.first_sent));
        self.by_seq.insert(m.seq, id);
        self.by_id.insert(id, m);
    }

    /// Removes the message that `src`'s ack of `seq` acknowledges (an ack
    /// of our SeqNum from another entity acknowledges nothing).
    pub(crate) fn acked(&mut self, src: &Address, seq: u32) -> Option<(MsgId, InFlight)> {
        let id = *self.by_seq.get(&seq)?;
        if self.by_id.get(&id)?.dst != *src {
            return None;
        }
        self.remove(id).map(|m| (id, m))
    }

    /// Removes message `id`.
    pub(crate) fn remove(&mut self, id: MsgId) -> Option<InFlight> {
        let m = self.by_id.remove(&id)?;
        self.sends -= 1 + m.batched.len();
        self.timers.remove(&id);
        self.by_seq.remove(&m.seq);
        Some(m)
    }

    /// The next retransmission or failure.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.timers.next()
    }

    /// Runs the timers due at `now`, earliest first: each message is
    /// retransmitted or given up according to `policy`.
    pub(crate) fn fire(&mut self, now: Instant, policy: &RetransmitPolicy) -> Vec<Fired> {
        let mut fired = Vec::new();
        for id in self.timers.take_due(now) {
            let Some(m) = self.by_id.get_mut(&id) else {
                continue;
            };
            match policy.on_timer(m.transmissions, now) {
                Step::Retransmit {
                    transmissions,
                    next,
                } => {
                    m.transmissions = transmissions;
                    self.timers.set(id, next);
                    fired.push(Fired::Retransmit {
                        to: m.to,
                        bytes: m.bytes.clone(),
                    });
                }
                Step::GiveUp => {
                    if let Some(m) = self.remove(id) {
                        fired.push(Fired::Failed(id, m));
                    }
                }
            }
        }
        fired
    }

    /// Removes every message, by id.
    pub(crate) fn drain(&mut self) -> Vec<(MsgId, InFlight)> {
        let mut all: Vec<(MsgId, InFlight)> = self.by_id.drain().collect();
        all.sort_unstable_by_key(|(id, _)| *id);
        self.by_seq.clear();
        self.timers.clear();
        self.sends = 0;
        all
    }

    /// True if a message to `dst` is in flight (a scan: only ordered mode
    /// asks).
    pub(crate) fn has_destination(&self, dst: &Address) -> bool {
        self.by_id.values().any(|m| m.dst == *dst)
    }
}

/// Reliable messages already delivered, remembered to re-ack and not
/// redeliver their retransmissions. Each is kept as (source, SeqNum,
/// TimeStamp) with the source interned: a delivery costs a few dozen octets
/// and no allocation for a source already remembered.
#[derive(Debug, Default)]
pub(crate) struct DuplicateMemory {
    /// Each remembered source's number.
    sources: HashMap<Address, u32>,
    /// Each number's source and how many entries use it.
    uses: HashMap<u32, (Address, usize)>,
    next_source: u32,
    seen: HashSet<(u32, u32, u64)>,
    order: VecDeque<(Instant, u32, u32, u64)>,
}

impl DuplicateMemory {
    /// Records the delivery of `src`'s message (`seq`, `timestamp`); returns
    /// false if it was seen already. Beyond `limit` entries the oldest go.
    pub(crate) fn insert(
        &mut self,
        src: &Address,
        seq: u32,
        timestamp: u64,
        now: Instant,
        limit: usize,
    ) -> bool {
        if let Some(&n) = self.sources.get(src) {
            if self.seen.contains(&(n, seq, timestamp)) {
                return false;
            }
        }
        while self.seen.len() >= limit.max(1) {
            if !self.pop_oldest() {
                break;
            }
        }
        let n = match self.sources.get(src) {
            Some(&n) => n,
            None => {
                let n = self.next_source;
                self.next_source = self.next_source.wrapping_add(1);
                self.sources.insert(src.clone(), n);
                n
            }
        };
        self.uses.entry(n).or_insert_with(|| (src.clone(), 0)).1 += 1;
        self.seen.insert((n, seq, timestamp));
        self.order.push_back((now, n, seq, timestamp));
        true
    }

    /// Forgets what is older than `memory`.
    pub(crate) fn expire(&mut self, now: Instant, memory: Duration) {
        while self
            .order
            .front()
            .is_some_and(|(at, ..)| *at + memory <= now)
        {
            self.pop_oldest();
        }
    }

    /// Forgets everything from `src` (it said bye or expired).
    pub(crate) fn forget(&mut self, src: &Address) {
        let Some(n) = self.sources.remove(src) else {
            return;
        };
        self.uses.remove(&n);
        self.seen.retain(|(s, _, _)| *s != n);
        self.order.retain(|(_, s, _, _)| *s != n);
    }

    /// Forgets the oldest entry; false if there was none.
    fn pop_oldest(&mut self) -> bool {
        let Some((_, n, seq, ts)) = self.order.pop_front() else {
            return false;
        };
        self.seen.remove(&(n, seq, ts));
        if let Some((addr, uses)) = self.uses.get_mut(&n) {
            *uses -= 1;
            if *uses == 0 {
                self.sources.remove(addr);
                self.uses.remove(&n);
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(base: Instant, n: u64) -> Instant {
        base + Duration::from_millis(n)
    }

    fn message(dst: &Address, seq: u32, sent: Instant) -> InFlight {
        InFlight {
            dst: dst.clone(),
            seq,
            batched: Vec::new(),
            bytes: vec![seq as u8],
            to: "239.255.255.247:47000".parse().unwrap(),
            first_sent: sent,
            transmissions: 1,
        }
    }

    #[test]
    fn sends_at_0_100_300_and_gives_up_at_600() {
        let p = RetransmitPolicy::new(&Timers::default());
        let t = Instant::now();
        assert_eq!(p.first_timer(t), ms(t, 100));
        assert_eq!(
            p.on_timer(1, ms(t, 100)),
            Step::Retransmit {
                transmissions: 2,
                next: ms(t, 300)
            }
        );
        assert_eq!(
            p.on_timer(2, ms(t, 300)),
            Step::Retransmit {
                transmissions: 3,
                next: ms(t, 600)
            }
        );
        assert_eq!(p.on_timer(3, ms(t, 600)), Step::GiveUp);
        assert_eq!(p.retransmit_window(), Duration::from_millis(600));
        assert_eq!(p.anycast_wait(), Duration::from_millis(300));
    }

    #[test]
    fn other_timers_scale_the_schedule() {
        let timers = Timers {
            t_r: Duration::from_millis(50),
            n_r: 1,
            ..Timers::default()
        };
        let p = RetransmitPolicy::new(&timers);
        let t = Instant::now();
        assert_eq!(p.first_timer(t), ms(t, 50));
        assert_eq!(
            p.on_timer(1, ms(t, 50)),
            Step::GiveUp,
            "one transmission only"
        );
        assert_eq!(p.retransmit_window(), Duration::from_millis(50));
    }

    #[test]
    fn the_table_retransmits_then_fails_each_message_once() {
        let p = RetransmitPolicy::new(&Timers::default());
        let t = Instant::now();
        let dst = Address::parse("(app:x id:1)").unwrap();
        let mut table = InFlightTable::default();
        table.insert(MsgId(1), message(&dst, 7, t), &p);
        table.insert(MsgId(2), message(&dst, 8, ms(t, 10)), &p);
        assert!(table.has_destination(&dst));
        assert_eq!(table.next_deadline(), Some(ms(t, 100)));
        let at_100: Vec<_> = table.fire(ms(t, 100), &p);
        assert!(matches!(at_100.as_slice(), [Fired::Retransmit { bytes, .. }] if bytes == &[7]));
        assert_eq!(table.next_deadline(), Some(ms(t, 110)));
        let other = Address::parse("(app:y id:2)").unwrap();
        assert!(
            table.acked(&other, 8).is_none(),
            "only its destination acks it"
        );
        let (id, m) = table.acked(&dst, 8).expect("the ack finds message 2");
        assert_eq!((id, m.seq), (MsgId(2), 8));
        assert!(table.acked(&dst, 8).is_none(), "acknowledged once");
        assert_eq!(table.fire(ms(t, 300), &p).len(), 1);
        let failed = table.fire(ms(t, 600), &p);
        assert!(matches!(failed.as_slice(), [Fired::Failed(MsgId(1), _)]));
        assert_eq!((table.len(), table.next_deadline()), (0, None));
        assert!(!table.has_destination(&dst));
    }

    #[test]
    fn duplicates_are_remembered_for_their_memory_and_forgotten_by_source() {
        let t = Instant::now();
        let a = Address::parse("(app:a id:1)").unwrap();
        let b = Address::parse("(app:b id:2)").unwrap();
        let mut seen = DuplicateMemory::default();
        assert!(seen.insert(&a, 1, 5, t, 10));
        assert!(!seen.insert(&a, 1, 5, t, 10));
        assert!(
            seen.insert(&a, 1, 6, t, 10),
            "a restarted peer: new TimeStamp"
        );
        assert!(seen.insert(&b, 1, 5, ms(t, 5000), 10));
        seen.expire(ms(t, 10_000), Duration::from_secs(10));
        assert_eq!(
            seen.sources.len(),
            1,
            "a's entries are gone, and a with them"
        );
        assert!(
            seen.insert(&a, 1, 5, ms(t, 10_000), 10),
            "forgotten after 10 s"
        );
        seen.forget(&b);
        assert!(seen.insert(&b, 1, 5, ms(t, 10_000), 10));
        // At the limit the oldest goes.
        for seq in 0..3 {
            assert!(seen.insert(&a, seq + 10, 5, ms(t, 10_000), 2));
        }
        assert_eq!(seen.seen.len(), 2);
    }
}
