//! The entity table (RFC 3259 §8): every entity heard from, when, and from
//! which IP endpoint. A host keeps one for all its entities
//! ([`super::Shared`]); what each entity owes a peer is its own
//! ([`super::acks`]).
//!
//! Peers are kept in the order they joined. Two [`Deadlines`] index them:
//! when each was last heard (the oldest is the next to expire, whatever the
//! threshold is at the time), and when those heard only once were heard (the
//! first to make room for a newcomer when the table is full). An index of address elements answers which
//! peers an address designates (RFC 3259 §4's subset rule) by looking at
//! the peers that hold its rarest element, not at every peer.

use std::collections::BTreeMap;

use crate::proto::maps::HashMap;
use std::net::SocketAddr;
use std::time::Instant;

use crate::wire::Address;

use super::deadlines::Deadlines;
use super::index::{Candidates, ElementIndex};

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

/// A known entity as the table keeps it.
#[derive(Debug)]
struct PeerState {
    peer: Peer,
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
    /// The peers holding each `tag:value` element.
    by_element: ElementIndex<Key>,
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
        let candidates: Box<dyn Iterator<Item = &Key> + 'a> = match self.by_element.candidates(dst)
        {
            Candidates::All => Box::new(self.peers.keys()),
            Candidates::Some(keys) => Box::new(keys.iter()),
            Candidates::None => Box::new(std::iter::empty()),
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
        self.by_element.insert(addr, key);
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
            },
        );
    }

    /// Removes an entity; true if it was known.
    pub(crate) fn remove(&mut self, addr: &Address) -> bool {
        let Some(key) = self.keys.remove(addr) else {
            return false;
        };
        self.peers.remove(&key);
        self.by_element.remove(addr, key);
        self.heard.remove(&key);
        self.heard_once.remove(&key);
        true
    }

    /// The entity to make room for a newcomer in a full table: the least
    /// recently heard of those heard only once, else the least recently heard
    /// of the others (established entities go last), skipping those that owe
    /// or are owed something (`busy`, acks owed included). At most
    /// `scan` entities of each kind are looked at, so a table of busy peers
    /// costs a bounded amount per datagram.
    pub(crate) fn eviction_candidate(
        &self,
        scan: usize,
        busy: impl Fn(&Address) -> bool,
    ) -> Option<&Address> {
        let free = |key: &Key| {
            let p = self.peers.get(key)?;
            (!busy(&p.peer.address)).then_some(&p.peer.address)
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
        // c busy too (acks we owe it, say); then d, the next heard once.
        let busy = |x: &Address| *x == b || *x == c;
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
            !peers.by_element.holds("member", "b"),
            "an element no peer holds is forgotten"
        );
    }
}
