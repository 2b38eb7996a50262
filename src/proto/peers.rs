//! The entity table (RFC 3259 §8): every entity heard from, when, and from
//! which IP endpoint, plus the acknowledgements owed to it (§7).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Instant;

use crate::wire::Address;

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
pub(crate) struct PeerState {
    pub(crate) peer: Peer,
    /// SeqNums of its reliable messages we still have to acknowledge.
    pub(crate) pending_acks: Vec<u32>,
    /// When they must be sent at the latest (T_c after the first one).
    pub(crate) ack_due: Option<Instant>,
    /// Ack lists sent recently, kept for T_k: if one of those messages comes
    /// again, the whole list is sent again (RFC 3259 §7).
    pub(crate) copies: VecDeque<(Instant, Vec<u32>)>,
}

impl PeerState {
    pub(crate) fn new(address: Address, endpoint: SocketAddr, now: Instant) -> PeerState {
        PeerState {
            peer: Peer {
                address,
                endpoint,
                last_heard: now,
            },
            pending_acks: Vec::new(),
            ack_due: None,
            copies: VecDeque::new(),
        }
    }

    /// Owes an ack for `seq`, due by `due` at the latest.
    pub(crate) fn owe_ack(&mut self, seq: u32, due: Instant) {
        if !self.pending_acks.contains(&seq) {
            self.pending_acks.push(seq);
        }
        self.ack_due = Some(self.ack_due.map_or(due, |d| d.min(due)));
    }

    /// The ack list to send now; it is remembered as a copy until `keep_until`.
    pub(crate) fn take_acks(&mut self, keep_until: Instant) -> Vec<u32> {
        let acks = std::mem::take(&mut self.pending_acks);
        self.ack_due = None;
        if !acks.is_empty() {
            self.copies.push_back((keep_until, acks.clone()));
        }
        acks
    }

    /// A reliable message `seq` came again: owe the whole copy list it was in.
    pub(crate) fn reack(&mut self, seq: u32, now: Instant, due: Instant) {
        while self.copies.front().is_some_and(|(until, _)| *until <= now) {
            self.copies.pop_front();
        }
        let stored: Vec<u32> = self
            .copies
            .iter()
            .filter(|(_, list)| list.contains(&seq))
            .flat_map(|(_, list)| list.iter().copied())
            .collect();
        self.owe_ack(seq, due);
        for s in stored {
            self.owe_ack(s, due);
        }
    }
}
