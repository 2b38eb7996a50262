//! One timer type for the whole core: a keyed set of instants with an ordered
//! index (the shape of quinn-proto's timer table, for any number of keys).
//!
//! Each key has at most one instant; setting it again moves it. The earliest
//! instant is found in O(log n), and so is every update, so the endpoint's
//! `poll_timeout` never scans what is in flight. The core uses it for
//! retransmissions (by message), acknowledgements due (by peer), the peers'
//! last-heard times (their expiry threshold changes with the entity count, so
//! the index holds when each was last heard rather than a deadline), the
//! `mbus.waiting` repeats, calls and transactions.

use std::collections::BTreeSet;

use crate::proto::maps::HashMap;
use std::hash::Hash;
use std::time::Instant;

/// Instants by key, ordered.
#[derive(Debug, Clone)]
pub(crate) struct Deadlines<K> {
    at: HashMap<K, Instant>,
    order: BTreeSet<(Instant, K)>,
}

impl<K> Default for Deadlines<K> {
    fn default() -> Self {
        Deadlines {
            at: HashMap::default(),
            order: BTreeSet::new(),
        }
    }
}

impl<K: Ord + Hash + Clone> Deadlines<K> {
    /// Sets `key`'s instant to `at`, replacing any earlier setting.
    pub(crate) fn set(&mut self, key: K, at: Instant) {
        if let Some(old) = self.at.insert(key.clone(), at) {
            if old == at {
                return;
            }
            self.order.remove(&(old, key.clone()));
        }
        self.order.insert((at, key));
    }

    /// Sets `key`'s instant to `at` unless it is set earlier already.
    pub(crate) fn set_at_most(&mut self, key: K, at: Instant) {
        match self.at.get(&key) {
            Some(old) if *old <= at => {}
            _ => self.set(key, at),
        }
    }

    /// Removes `key`; returns its instant if it had one.
    pub(crate) fn remove(&mut self, key: &K) -> Option<Instant> {
        let at = self.at.remove(key)?;
        self.order.remove(&(at, key.clone()));
        Some(at)
    }

    /// The earliest instant.
    pub(crate) fn next(&self) -> Option<Instant> {
        self.order.first().map(|(at, _)| *at)
    }

    /// The earliest instant and its key.
    pub(crate) fn first(&self) -> Option<(Instant, &K)> {
        self.order.first().map(|(at, k)| (*at, k))
    }

    /// Removes and returns every key whose instant is at or before `now`,
    /// earliest first (equal instants by key).
    pub(crate) fn take_due(&mut self, now: Instant) -> Vec<K> {
        let mut due = Vec::new();
        while let Some((at, _)) = self.order.first() {
            if *at > now {
                break;
            }
            if let Some((_, key)) = self.order.pop_first() {
                self.at.remove(&key);
                due.push(key);
            }
        }
        due
    }

    /// The instants and their keys, earliest first.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (Instant, &K)> + '_ {
        self.order.iter().map(|(at, k)| (*at, k))
    }

    /// True if `key` is set.
    pub(crate) fn contains(&self, key: &K) -> bool {
        self.at.contains_key(key)
    }

    /// True if no key is set.
    pub(crate) fn is_empty(&self) -> bool {
        self.at.is_empty()
    }

    /// Removes every key.
    pub(crate) fn clear(&mut self) {
        self.at.clear();
        self.order.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn ms(base: Instant, n: u64) -> Instant {
        base + Duration::from_millis(n)
    }

    fn at(d: &Deadlines<u64>, key: u64) -> Option<Instant> {
        d.iter().find(|(_, k)| **k == key).map(|(at, _)| at)
    }

    #[test]
    fn the_earliest_instant_follows_every_change() {
        let t = Instant::now();
        let mut d = Deadlines::default();
        assert_eq!(d.next(), None);
        d.set(1u64, ms(t, 30));
        d.set(2, ms(t, 10));
        d.set(3, ms(t, 20));
        assert_eq!(d.first(), Some((ms(t, 10), &2)));
        d.set(2, ms(t, 40)); // moved, not added
        assert_eq!((d.iter().count(), d.next()), (3, Some(ms(t, 20))));
        assert_eq!(d.remove(&3), Some(ms(t, 20)));
        assert_eq!(d.remove(&3), None);
        assert_eq!(d.next(), Some(ms(t, 30)));
        d.set_at_most(1, ms(t, 50));
        assert_eq!(
            at(&d, 1),
            Some(ms(t, 30)),
            "a later instant does not move it"
        );
        d.set_at_most(1, ms(t, 5));
        assert_eq!(at(&d, 1), Some(ms(t, 5)), "an earlier one does");
        assert_eq!(d.iter().map(|(_, k)| *k).collect::<Vec<_>>(), vec![1, 2]);
        d.clear();
        assert!(d.is_empty());
        assert_eq!(d.next(), None);
    }

    #[test]
    fn due_keys_come_out_earliest_first_and_only_once() {
        let t = Instant::now();
        let mut d = Deadlines::default();
        for (k, at) in [(5u64, 20), (1, 20), (9, 5), (7, 25)] {
            d.set(k, ms(t, at));
        }
        assert_eq!(d.take_due(ms(t, 4)), Vec::<u64>::new());
        assert_eq!(d.take_due(ms(t, 20)), vec![9, 1, 5]);
        assert_eq!(d.take_due(ms(t, 20)), Vec::<u64>::new());
        assert_eq!((d.iter().count(), d.next()), (1, Some(ms(t, 25))));
    }
}
