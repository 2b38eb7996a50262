//! Putting one sender's deliveries back in order at the recipient. Each
//! delivery carries its number in the sender's stream to this recipient and
//! the lowest number the sender still has open ([`Order`]); a delivery is
//! handed on when every open number before it has been, and waits for a
//! missing one at most [`REORDER_WINDOW`]: a delivery still missing then
//! comes late, after those that waited for it.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::proto::maps::HashMap;
use crate::proto::Deadlines;
use crate::wire::Address;

use super::cmd::Order;

/// How long a delivery waits for an earlier one of the same sender that is
/// missing: two full attempts of a sender with the RFC's timers (the
/// transport sends at 0, 100 and 300 ms and gives up at 600 ms; the sender
/// then tries again), six transmissions in all. At 15 % loss a delivery is still missing after
/// them about once in 10⁵; it then comes after the ones that waited for it.
/// The ones that waited are answered within 1.3 s, inside the sender's 2 s.
pub const REORDER_WINDOW: Duration = Duration::from_millis(1300);

/// The most deliveries held back per sender; beyond it they go on at once.
const MAX_HELD: usize = 1024;

/// The senders whose order is kept while nothing of theirs waits; beyond,
/// the idle ones are forgotten (a sender's next delivery says from where
/// to go on: its `low`).
const MAX_IDLE_STREAMS: usize = 64;

/// What waits can take in a second copy of itself (a retry).
pub(crate) trait Absorb {
    /// `other` is a retry of `self`.
    fn absorb(&mut self, other: Self);
}

/// One sender's stream.
#[derive(Debug)]
struct Stream<T> {
    /// The next number to hand on.
    next: u64,
    held: BTreeMap<u64, T>,
}

/// The deliveries of every sender (`K`: a sender's address, or for a
/// bridge a sender of another site and a recipient), each stream in its
/// order.
#[derive(Debug)]
pub(crate) struct Reorder<T, K = Address> {
    streams: HashMap<u64, Stream<T>>,
    stream_of: HashMap<K, u64>,
    next_stream: u64,
    timers: Deadlines<u64>,
}

impl<T, K> Default for Reorder<T, K> {
    fn default() -> Self {
        Reorder {
            streams: HashMap::default(),
            stream_of: HashMap::default(),
            next_stream: 0,
            timers: Deadlines::default(),
        }
    }
}

impl<T: Absorb, K: std::hash::Hash + Eq + Clone> Reorder<T, K> {
    /// Delivery `item` from `from`, numbered `o`: what to hand on now, in order.
    pub(crate) fn put(&mut self, now: Instant, from: &K, item: T, o: Order) -> Vec<T> {
        let sid = match self.stream_of.get(from) {
            Some(sid) => *sid,
            None => {
                let sid = self.next_stream;
                self.next_stream += 1;
                self.stream_of.insert(from.clone(), sid);
                let stream = Stream {
                    next: 0,
                    held: BTreeMap::new(),
                };
                self.streams.insert(sid, stream);
                sid
            }
        };
        let Some(st) = self.streams.get_mut(&sid) else {
            return vec![item];
        };
        let mut ready = Vec::new();
        // The sender settled everything below `low`: nothing to wait for there.
        st.next = st.next.max(o.low);
        while let Some(entry) = st.held.first_entry() {
            if *entry.key() >= st.next {
                break;
            }
            ready.push(entry.remove());
        }
        if o.seq < st.next {
            // Late (its turn was skipped) or a retry: on at once.
            ready.push(item);
        } else if o.seq == st.next {
            st.next += 1;
            ready.push(item);
        } else if let Some(h) = st.held.get_mut(&o.seq) {
            h.absorb(item);
        } else if st.held.len() >= MAX_HELD {
            ready.push(item);
        } else {
            st.held.insert(o.seq, item);
            self.timers.set_at_most(sid, now + REORDER_WINDOW);
        }
        while let Some(h) = st.held.remove(&st.next) {
            st.next += 1;
            ready.push(h);
        }
        if st.held.is_empty() {
            self.timers.remove(&sid);
        }
        if self.streams.len() > MAX_IDLE_STREAMS {
            self.forget_idle();
        }
        ready
    }

    /// Forgets the streams with nothing waiting.
    fn forget_idle(&mut self) {
        self.streams.retain(|_, st| !st.held.is_empty());
        let streams = &self.streams;
        self.stream_of.retain(|_, sid| streams.contains_key(sid));
    }

    /// What waited too long for a missing delivery: everything those
    /// streams hold, in order, skipping the gaps.
    pub(crate) fn take_due(&mut self, now: Instant) -> Vec<T> {
        let mut ready = Vec::new();
        for sid in self.timers.take_due(now) {
            ready.extend(self.release(sid));
        }
        ready
    }

    /// `from` left: what it had waiting goes on, and its order is forgotten.
    pub(crate) fn sender_left(&mut self, from: &K) -> Vec<T> {
        match self.stream_of.remove(from) {
            Some(sid) => {
                let ready = self.release(sid);
                self.streams.remove(&sid);
                ready
            }
            None => Vec::new(),
        }
    }

    /// When [`Reorder::take_due`] has something.
    pub(crate) fn next_timeout(&self) -> Option<Instant> {
        self.timers.next()
    }

    fn release(&mut self, sid: u64) -> Vec<T> {
        self.timers.remove(&sid);
        let Some(st) = self.streams.get_mut(&sid) else {
            return Vec::new();
        };
        let held = std::mem::take(&mut st.held);
        if let Some(last) = held.keys().next_back() {
            st.next = st.next.max(last + 1);
        }
        held.into_values().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl Absorb for (u64, u32) {
        fn absorb(&mut self, other: Self) {
            self.1 += other.1;
        }
    }

    fn o(seq: u64, low: u64) -> Order {
        Order { seq, low }
    }

    #[test]
    fn idle_senders_are_forgotten_beyond_a_bound_and_one_with_a_gap_is_not() {
        let now = Instant::now();
        let mut r: Reorder<(u64, u32)> = Reorder::default();
        let waiting = Address::parse("(app:w id:0)").unwrap();
        assert!(
            r.put(now, &waiting, (1, 1), o(1, 0)).is_empty(),
            "0 is missing"
        );
        for i in 1..=200u64 {
            let a = Address::parse(&format!("(app:s id:{i})")).unwrap();
            assert_eq!(r.put(now, &a, (0, 1), o(0, 0)), vec![(0, 1)]);
        }
        assert!(
            r.streams.len() <= MAX_IDLE_STREAMS + 1,
            "{}",
            r.streams.len()
        );
        assert_eq!(r.streams.len(), r.stream_of.len());
        // The one with a gap still waits, and goes on in order.
        assert_eq!(r.put(now, &waiting, (0, 1), o(0, 0)), vec![(0, 1), (1, 1)]);
        // A forgotten sender goes on from its `low`.
        let first = Address::parse("(app:s id:1)").unwrap();
        assert_eq!(r.put(now, &first, (1, 1), o(1, 1)), vec![(1, 1)]);
    }

    #[test]
    fn deliveries_go_on_in_order_and_a_gap_is_waited_for_only_so_long() {
        let now = Instant::now();
        let a = Address::parse("(app:a id:1)").unwrap();
        let mut r: Reorder<(u64, u32)> = Reorder::default();
        assert_eq!(r.put(now, &a, (0, 1), o(0, 0)), vec![(0, 1)]);
        assert!(r.put(now, &a, (2, 1), o(2, 1)).is_empty(), "1 is missing");
        assert!(
            r.put(now, &a, (2, 1), o(2, 1)).is_empty(),
            "a retry joins it"
        );
        assert_eq!(r.next_timeout(), Some(now + REORDER_WINDOW));
        assert_eq!(r.put(now, &a, (1, 1), o(1, 1)), vec![(1, 1), (2, 2)]);
        assert_eq!(r.next_timeout(), None);
        // The sender gave up on 3: `low` 4 says so, and 4 goes on at once.
        assert_eq!(r.put(now, &a, (4, 1), o(4, 4)), vec![(4, 1)]);
        // 3 comes late after all: on at once.
        assert_eq!(r.put(now, &a, (3, 1), o(3, 3)), vec![(3, 1)]);
        // A gap nobody fills is skipped after the window.
        assert!(r.put(now, &a, (7, 1), o(7, 5)).is_empty());
        assert!(r.take_due(now + REORDER_WINDOW / 2).is_empty());
        assert_eq!(r.take_due(now + REORDER_WINDOW), vec![(7, 1)]);
        assert_eq!(r.put(now, &a, (8, 1), o(8, 8)), vec![(8, 1)]);
        // Another sender's stream is its own.
        let b = Address::parse("(app:b id:2)").unwrap();
        assert!(r.put(now, &b, (1, 1), o(1, 0)).is_empty());
        assert_eq!(r.sender_left(&b), vec![(1, 1)]);
    }
}
