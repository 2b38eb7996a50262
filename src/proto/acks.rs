//! The acknowledgements one entity owes (RFC 3259 §7): its own, not the
//! host's. The entity table ([`super::peers`]) says who is on the bus and is
//! shared by the entities of a host; what each of them still has to
//! acknowledge, and the ack lists it sent recently, stay with that entity.

use std::collections::VecDeque;
use std::time::Instant;

use crate::proto::maps::HashMap;
use crate::wire::Address;

use super::deadlines::Deadlines;

/// What we owe one peer.
#[derive(Debug)]
struct Owed {
    /// Its key in the deadlines.
    key: u64,
    /// SeqNums of its reliable messages we still have to acknowledge.
    pending: Vec<u32>,
    /// Ack lists sent recently, kept for T_k: if one of those messages comes
    /// again, the whole list is sent again (RFC 3259 §7).
    copies: VecDeque<(Instant, Vec<u32>)>,
}

impl Owed {
    fn drop_copies_before(&mut self, now: Instant) {
        while self.copies.front().is_some_and(|(until, _)| *until <= now) {
            self.copies.pop_front();
        }
    }
}

/// The acks one entity owes, by peer, with when each peer's are due.
#[derive(Debug, Default)]
pub(crate) struct AcksOwed {
    owed: HashMap<Address, Owed>,
    /// The peers by key, in the deadlines' order.
    due: Deadlines<u64>,
    addresses: HashMap<u64, Address>,
    next_key: u64,
}

impl AcksOwed {
    /// True if acks are owed to anyone.
    pub(crate) fn owe_any(&self) -> bool {
        !self.due.is_empty()
    }

    /// True if acks are owed to `addr` (such a peer is not evicted).
    pub(crate) fn owes(&self, addr: &Address) -> bool {
        self.owed.get(addr).is_some_and(|o| !o.pending.is_empty())
    }

    /// When the first owed acks are due.
    pub(crate) fn next_due(&self) -> Option<Instant> {
        self.due.next()
    }

    /// The entities owed acks, those due first first; only those due by
    /// `now` unless `now` is `None`.
    pub(crate) fn owed(&self, now: Option<Instant>) -> Vec<Address> {
        self.due
            .iter()
            .take_while(|(due, _)| now.is_none_or(|now| *due <= now))
            .filter_map(|(_, key)| self.addresses.get(key).cloned())
            .collect()
    }

    /// How many acks are owed to `addr`.
    pub(crate) fn pending(&self, addr: &Address) -> usize {
        self.owed.get(addr).map_or(0, |o| o.pending.len())
    }

    /// Owes `addr` an ack for `seq`, due by `due` at the latest.
    pub(crate) fn owe(&mut self, addr: &Address, seq: u32, due: Instant) {
        let o = match self.owed.get_mut(addr) {
            Some(o) => o,
            None => {
                let key = self.next_key;
                self.next_key += 1;
                self.addresses.insert(key, addr.clone());
                self.owed.entry(addr.clone()).or_insert(Owed {
                    key,
                    pending: Vec::new(),
                    copies: VecDeque::new(),
                })
            }
        };
        if !o.pending.contains(&seq) {
            o.pending.push(seq);
        }
        self.due.set_at_most(o.key, due);
    }

    /// `addr`'s reliable message `seq` came again: owe the whole ack list it
    /// was acknowledged in, if that list is still kept at `now`.
    pub(crate) fn reack(&mut self, addr: &Address, seq: u32, now: Instant, due: Instant) {
        let stored: Vec<u32> = match self.owed.get_mut(addr) {
            Some(o) => {
                o.drop_copies_before(now);
                o.copies
                    .iter()
                    .filter(|(_, list)| list.contains(&seq))
                    .flat_map(|(_, list)| list.iter().copied())
                    .collect()
            }
            None => Vec::new(),
        };
        self.owe(addr, seq, due);
        for s in stored {
            self.owe(addr, s, due);
        }
    }

    /// The acks owed to `addr`, to send now; the list is kept as a copy
    /// until `keep_until`.
    pub(crate) fn take(&mut self, addr: &Address, keep_until: Instant) -> Vec<u32> {
        let Some(o) = self.owed.get_mut(addr) else {
            return Vec::new();
        };
        let acks = std::mem::take(&mut o.pending);
        if !acks.is_empty() {
            o.copies.push_back((keep_until, acks.clone()));
        }
        self.due.remove(&o.key);
        acks
    }

    /// Forgets the peers to which nothing is owed and whose copies have
    /// expired by `now`, so that the map holds only recent correspondents.
    pub(crate) fn prune(&mut self, now: Instant) {
        let addresses = &mut self.addresses;
        self.owed.retain(|_, o| {
            o.drop_copies_before(now);
            let keep = !o.pending.is_empty() || !o.copies.is_empty();
            if !keep {
                addresses.remove(&o.key);
            }
            keep
        });
    }

    /// Forgets `addr` (it left the bus): nothing more is owed to it.
    pub(crate) fn forget(&mut self, addr: &Address) {
        if let Some(o) = self.owed.remove(addr) {
            self.due.remove(&o.key);
            self.addresses.remove(&o.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn acks_are_owed_taken_and_sent_again_whole() {
        let t = Instant::now();
        let a = Address::parse("(n:a)").unwrap();
        let mut acks = AcksOwed::default();
        let due = t + Duration::from_millis(70);
        acks.owe(&a, 1, due);
        acks.owe(&a, 2, t + Duration::from_millis(90));
        assert_eq!(
            acks.next_due(),
            Some(due),
            "the first ack sets the deadline"
        );
        assert_eq!(acks.owed(Some(t)), Vec::<Address>::new());
        assert_eq!(acks.owed(None), vec![a.clone()]);
        assert!(acks.owes(&a));
        let keep = t + Duration::from_millis(600);
        assert_eq!(acks.take(&a, keep), vec![1, 2]);
        assert!(!acks.owe_any());
        assert!(!acks.owes(&a));
        // Message 2 comes again: the whole list {1, 2} is owed again.
        acks.reack(&a, 2, t + Duration::from_millis(100), due);
        assert_eq!(acks.pending(&a), 2);
        // After T_k the copy is gone: only the SeqNum itself.
        acks.take(&a, keep);
        acks.reack(&a, 2, keep, due);
        assert_eq!(acks.pending(&a), 1);
    }

    #[test]
    fn a_peer_owed_nothing_is_forgotten_once_its_copies_expire() {
        let t = Instant::now();
        let a = Address::parse("(n:a)").unwrap();
        let mut acks = AcksOwed::default();
        acks.owe(&a, 1, t);
        let keep = t + Duration::from_millis(600);
        acks.take(&a, keep);
        acks.prune(t + Duration::from_millis(100));
        assert_eq!(acks.owed.len(), 1, "the copy is still kept");
        acks.prune(keep);
        assert!(acks.owed.is_empty());
    }
}
