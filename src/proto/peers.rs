//! The entity table (RFC 3259 §8): every entity heard from, when, and from
//! which IP endpoint, plus the acknowledgements owed to it (§7).
//!
//! Peers are kept in the order they joined. Three [`Deadlines`] index them:
//! when each was last heard (the oldest is the next to expire, whatever the
//! threshold is at the time), when those heard only once were heard (the
//! first to make room for a newcomer when the table is full), and when the
//! acks owed to each are due. An index of address elements answers which
//! peers an address designates (RFC 3259 §4's subset rule) by looking at
//! the peers that hold its rarest element, not at every peer.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use crate::proto::maps::HashMap;
use std::net::SocketAddr;
use std::time::Instant;

use crate::wire::Address;

use super::deadlines::Deadlines;

/// A known entity, as the application sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    /// Its complete address.
    pub address: Address,
    /// The IP endpoint its last message came from.
    pub endpoint: SocketAddr,
    /// When we last heard from it.
    pub last_heard: Instant,
}

/// A known entity with the reliable-receiver state we keep for it.
#[derive(Debug)]
struct PeerState {
    peer: Peer,
    /// SeqNums of its reliable messages we still have to acknowledge.
    pending_acks: Vec<u32>,
    /// Ack lists sent recently, kept for T_k: if one of those messages comes
    /// again, the whole list is sent again (RFC 3259 §7).
    copies: VecDeque<(Instant, Vec<u32>)>,
}

/// The key of a peer in the indexes: its place in the join order.
type Key = u64;

/// The known entities.
#[derive(Debug, Default)]
pub(crate) struct PeerTable {
    keys: HashMap<Address, Key>,
    peers: BTreeMap<Key, PeerState>,
    heard: Deadlines<Key>,
    /// The entities heard only once, by when.
    heard_once: Deadlines<Key>,
    acks_due: Deadlines<Key>,
    /// The peers holding each `tag:value` element.
    by_element: HashMap<Box<str>, BTreeSet<Key>>,
    next_key: Key,
}

impl PeerTable {
    /// How many entities are known.
    pub(crate) fn len(&self) -> usize {
        self.peers.len()
    }

    /// The known entities, in the order they joined.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &Peer> + '_ {
        self.peers.values().map(|p| &p.peer)
    }

    /// The entities `dst` designates: those whose address holds every
    /// element of `dst` (RFC 3259 §4), in the order they joined. Only the
    /// peers holding `dst`'s rarest element are looked at.
    pub(crate) fn matching<'a>(&'a self, dst: &'a Address) -> impl Iterator<Item = &'a Peer> + 'a {
        let candidates: Box<dyn Iterator<Item = &Key> + 'a> = if dst.is_empty() {
            Box::new(self.peers.keys())
        } else {
            let mut rarest: Option<&BTreeSet<Key>> = None;
            let mut absent = false;
            for e in dst.elements() {
                match self.by_element.get(element_key(e.tag, e.value).as_str()) {
                    Some(keys) => {
                        if rarest.is_none_or(|r| keys.len() < r.len()) {
                            rarest = Some(keys);
                        }
                    }
                    None => absent = true,
                }
            }
            match rarest {
                Some(keys) if !absent => Box::new(keys.iter()),
                _ => Box::new(std::iter::empty()),
            }
        };
        candidates
            .filter_map(|k| self.peers.get(k))
            .map(|p| &p.peer)
            .filter(move |p| dst.is_subset_of(&p.address))
    }

    /// The entity with exactly this address.
    pub(crate) fn get(&self, addr: &Address) -> Option<&Peer> {
        self.state(addr).map(|p| &p.peer)
    }

    /// True if `addr` is a known entity's complete address.
    pub(crate) fn contains(&self, addr: &Address) -> bool {
        self.keys.contains_key(addr)
    }

    fn state(&self, addr: &Address) -> Option<&PeerState> {
        self.peers.get(self.keys.get(addr)?)
    }

    fn state_mut(&mut self, addr: &Address) -> Option<(Key, &mut PeerState)> {
        let key = *self.keys.get(addr)?;
        self.peers.get_mut(&key).map(|p| (key, p))
    }

    /// Refreshes a known entity heard at `now` from `from`; false if unknown.
    pub(crate) fn heard(&mut self, addr: &Address, from: SocketAddr, now: Instant) -> bool {
        let Some((key, p)) = self.state_mut(addr) else {
            return false;
        };
        p.peer.last_heard = now;
        p.peer.endpoint = from;
        self.heard.set(key, now);
        self.heard_once.remove(&key);
        true
    }

    /// Adds an entity first heard at `now` from `from`.
    pub(crate) fn insert(&mut self, addr: &Address, from: SocketAddr, now: Instant) {
        let key = self.next_key;
        self.next_key += 1;
        self.keys.insert(addr.clone(), key);
        for e in addr.elements() {
            self.by_element
                .entry(element_key(e.tag, e.value).into_boxed_str())
                .or_default()
                .insert(key);
        }
        self.heard.set(key, now);
        self.heard_once.set(key, now);
        self.peers.insert(
            key,
            PeerState {
                peer: Peer {
                    address: addr.clone(),
                    endpoint: from,
                    last_heard: now,
                },
                pending_acks: Vec::new(),
                copies: VecDeque::new(),
            },
        );
    }

    /// Removes an entity; true if it was known.
    pub(crate) fn remove(&mut self, addr: &Address) -> bool {
        let Some(key) = self.keys.remove(addr) else {
            return false;
        };
        self.peers.remove(&key);
        for e in addr.elements() {
            let k = element_key(e.tag, e.value);
            if let Some(keys) = self.by_element.get_mut(k.as_str()) {
                keys.remove(&key);
                if keys.is_empty() {
                    self.by_element.remove(k.as_str());
                }
            }
        }
        self.heard.remove(&key);
        self.heard_once.remove(&key);
        self.acks_due.remove(&key);
        true
    }

    /// The entity to make room for a newcomer in a full table: the least
    /// recently heard of those heard only once, else the least recently heard
    /// of the others (established entities go last), skipping those that owe
    /// or are owed something (`busy`, or acks we still owe them). At most
    /// `scan` entities of each kind are looked at, so a table of busy peers
    /// costs a bounded amount per datagram.
    pub(crate) fn eviction_candidate(
        &self,
        scan: usize,
        busy: impl Fn(&Address) -> bool,
    ) -> Option<&Address> {
        let free = |key: &Key| {
            let p = self.peers.get(key)?;
            (p.pending_acks.is_empty() && !busy(&p.peer.address)).then_some(&p.peer.address)
        };
        self.heard_once
            .iter()
            .take(scan)
            .find_map(|(_, key)| free(key))
            .or_else(|| {
                self.heard
                    .iter()
                    .filter(|(_, key)| !self.heard_once.contains(key))
                    .take(scan)
                    .find_map(|(_, key)| free(key))
            })
    }

    /// The entity heard from least recently, and when.
    pub(crate) fn least_recently_heard(&self) -> Option<(Instant, &Address)> {
        let (at, key) = self.heard.first()?;
        self.peers.get(key).map(|p| (at, &p.peer.address))
    }

    // ---- acknowledgements owed -------------------------------------------------

    /// True if acks are owed to anyone.
    pub(crate) fn owe_any(&self) -> bool {
        !self.acks_due.is_empty()
    }

    /// When the first owed acks are due.
    pub(crate) fn next_ack_due(&self) -> Option<Instant> {
        self.acks_due.next()
    }

    /// The entities owed acks, those due first first; only those due by
    /// `now` unless `now` is `None`.
    pub(crate) fn owed(&self, now: Option<Instant>) -> Vec<Address> {
        self.acks_due
            .iter()
            .take_while(|(due, _)| now.is_none_or(|now| *due <= now))
            .filter_map(|(_, key)| self.peers.get(key))
            .map(|p| p.peer.address.clone())
            .collect()
    }

    /// How many acks are owed to `addr`.
    pub(crate) fn pending_acks(&self, addr: &Address) -> usize {
        self.state(addr).map_or(0, |p| p.pending_acks.len())
    }

    /// Owes `addr` an ack for `seq`, due by `due` at the latest.
    pub(crate) fn owe_ack(&mut self, addr: &Address, seq: u32, due: Instant) {
        if let Some((key, p)) = self.state_mut(addr) {
            if !p.pending_acks.contains(&seq) {
                p.pending_acks.push(seq);
            }
            self.acks_due.set_at_most(key, due);
        }
    }

    /// `addr`'s reliable message `seq` came again: owe the whole ack list it
    /// was acknowledged in, if that list is still kept at `now`.
    pub(crate) fn reack(&mut self, addr: &Address, seq: u32, now: Instant, due: Instant) {
        let Some((_, p)) = self.state_mut(addr) else {
            return;
        };
        while p.copies.front().is_some_and(|(until, _)| *until <= now) {
            p.copies.pop_front();
        }
        let stored: Vec<u32> = p
            .copies
            .iter()
            .filter(|(_, list)| list.contains(&seq))
            .flat_map(|(_, list)| list.iter().copied())
            .collect();
        self.owe_ack(addr, seq, due);
        for s in stored {
            self.owe_ack(addr, s, due);
        }
    }

    /// The acks owed to `addr`, to send now; the list is kept as a copy
    /// until `keep_until`.
    pub(crate) fn take_acks(&mut self, addr: &Address, keep_until: Instant) -> Vec<u32> {
        let Some((key, p)) = self.state_mut(addr) else {
            return Vec::new();
        };
        let acks = std::mem::take(&mut p.pending_acks);
        if !acks.is_empty() {
            p.copies.push_back((keep_until, acks.clone()));
        }
        self.acks_due.remove(&key);
        acks
    }
}

/// An element as the index keys it.
fn element_key(tag: &str, value: &str) -> String {
    format!("{tag}:{value}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn addr(text: &str) -> Address {
        Address::parse(text).unwrap()
    }

    #[test]
    fn the_least_recently_heard_peer_comes_first() {
        let t = Instant::now();
        let from: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let (a, b) = (addr("(n:a)"), addr("(n:b)"));
        let mut peers = PeerTable::default();
        peers.insert(&a, from, t);
        peers.insert(&b, from, t + Duration::from_millis(5));
        assert_eq!(peers.least_recently_heard(), Some((t, &a)));
        assert!(peers.heard(&a, from, t + Duration::from_millis(9)));
        assert_eq!(
            peers.least_recently_heard(),
            Some((t + Duration::from_millis(5), &b))
        );
        assert!(peers.remove(&b));
        assert!(!peers.heard(&b, from, t), "gone");
        assert_eq!(peers.iter().count(), 1);
    }

    #[test]
    fn a_newcomer_replaces_the_oldest_heard_once_peer_that_is_free() {
        let t = Instant::now();
        let from: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let (a, b, c, d) = (addr("(n:a)"), addr("(n:b)"), addr("(n:c)"), addr("(n:d)"));
        let mut peers = PeerTable::default();
        for (i, p) in [&a, &b, &c, &d].into_iter().enumerate() {
            peers.insert(p, from, t + Duration::from_millis(i as u64));
        }
        // a is established (heard twice), b is busy, c owes nothing: c goes.
        assert!(peers.heard(&a, from, t + Duration::from_millis(9)));
        let busy = |x: &Address| *x == b;
        assert_eq!(peers.eviction_candidate(8, busy), Some(&c));
        // Acks we owe c make it busy too; then d, the next heard once.
        peers.owe_ack(&c, 1, t);
        assert_eq!(peers.eviction_candidate(8, busy), Some(&d));
        // With no one heard once and free, the established go last.
        assert!(peers.heard(&d, from, t + Duration::from_millis(10)));
        assert_eq!(peers.eviction_candidate(8, busy), Some(&a));
        assert_eq!(peers.eviction_candidate(8, |_| true), None);
    }

    #[test]
    fn the_element_index_finds_what_a_scan_finds() {
        let t = Instant::now();
        let from: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let mut peers = PeerTable::default();
        let all = [
            "(app:cmbs module:member member:a id:1-1@h)",
            "(app:cmbs module:member member:b id:2-1@h)",
            "(app:cmbs module:gateway id:3-1@h)",
            "(app:rat module:engine id:4-1@h)",
            "(app:rat id:5-1@h)",
        ]
        .map(addr);
        for a in &all {
            peers.insert(a, from, t);
        }
        let scan = |p: &PeerTable, dst: &Address| -> Vec<Address> {
            p.iter()
                .filter(|x| dst.is_subset_of(&x.address))
                .map(|x| x.address.clone())
                .collect()
        };
        let check = |p: &PeerTable| {
            for dst in [
                "()",
                "(app:cmbs)",
                "(module:member app:cmbs)",
                "(member:b)",
                "(app:rat)",
                "(app:rat module:member)",
                "(app:nobody)",
                "(id:5-1@h app:rat)",
            ] {
                let dst = addr(dst);
                let found: Vec<Address> = p.matching(&dst).map(|x| x.address.clone()).collect();
                assert_eq!(found, scan(p, &dst), "{dst}");
            }
        };
        check(&peers);
        assert!(peers.remove(&all[1]));
        assert!(peers.remove(&all[4]));
        check(&peers);
        assert_eq!(peers.matching(&addr("(member:b)")).count(), 0);
        assert!(
            !peers.by_element.contains_key("member:b"),
            "an element no peer holds is forgotten"
        );
    }

    #[test]
    fn acks_are_owed_taken_and_sent_again_whole() {
        let t = Instant::now();
        let from: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let a = addr("(n:a)");
        let mut peers = PeerTable::default();
        peers.insert(&a, from, t);
        let due = t + Duration::from_millis(70);
        peers.owe_ack(&a, 1, due);
        peers.owe_ack(&a, 2, t + Duration::from_millis(90));
        assert_eq!(
            peers.next_ack_due(),
            Some(due),
            "the first ack sets the deadline"
        );
        assert_eq!(peers.owed(Some(t)), Vec::<Address>::new());
        assert_eq!(peers.owed(None), vec![a.clone()]);
        let keep = t + Duration::from_millis(600);
        assert_eq!(peers.take_acks(&a, keep), vec![1, 2]);
        assert!(!peers.owe_any());
        // Message 2 comes again: the whole list {1, 2} is owed again.
        peers.reack(&a, 2, t + Duration::from_millis(100), due);
        assert_eq!(peers.pending_acks(&a), 2);
        // After T_k the copy is gone: only the SeqNum itself.
        peers.take_acks(&a, keep);
        peers.reack(&a, 2, keep, due);
        assert_eq!(peers.pending_acks(&a), 1);
    }
}
