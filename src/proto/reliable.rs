//! Reliable delivery state (RFC 3259 §7; the spec README's rows "retransmission",
//! "what reliable promises", "ack timing" and "duplicates").
//!
//! Sender: a reliable message is transmitted at 0, T_r and 3·T_r (100 and
//! 300 ms) and reported failed at 6·T_r (600 ms) without an ack; many may be in
//! flight at once. Receiver: duplicates are recognised by (source, SeqNum,
//! TimeStamp) for at least `dup_memory`, re-acknowledged and never delivered
//! twice.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::wire::Address;

use super::MsgId;

/// One reliable message waiting for its ack.
#[derive(Debug)]
pub(crate) struct InFlight {
    pub(crate) dst: Address,
    pub(crate) seq: u32,
    /// The sealed datagram; retransmissions repeat it byte for byte.
    pub(crate) bytes: Vec<u8>,
    pub(crate) to: SocketAddr,
    pub(crate) first_sent: Instant,
    pub(crate) transmissions: u32,
    /// The next retransmission, or the failure when all are spent.
    pub(crate) next: Instant,
}

/// Reliable messages in flight, findable by id and by (destination, SeqNum).
#[derive(Debug, Default)]
pub(crate) struct InFlightTable {
    by_id: HashMap<MsgId, InFlight>,
    by_seq: HashMap<(Address, u32), MsgId>,
}

impl InFlightTable {
    pub(crate) fn len(&self) -> usize {
        self.by_id.len()
    }

    pub(crate) fn insert(&mut self, id: MsgId, m: InFlight) {
        self.by_seq.insert((m.dst.clone(), m.seq), id);
        self.by_id.insert(id, m);
    }

    /// Removes the message that `src`'s ack of `seq` acknowledges.
    pub(crate) fn acked(&mut self, src: &Address, seq: u32) -> Option<(MsgId, InFlight)> {
        let id = self.by_seq.remove(&(src.clone(), seq))?;
        self.by_id.remove(&id).map(|m| (id, m))
    }

    pub(crate) fn remove(&mut self, id: MsgId) -> Option<InFlight> {
        let m = self.by_id.remove(&id)?;
        self.by_seq.remove(&(m.dst.clone(), m.seq));
        Some(m)
    }

    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.by_id.values().map(|m| m.next).min()
    }

    /// Ids of the messages whose timer is due at `now`, oldest first.
    pub(crate) fn due(&self, now: Instant) -> Vec<MsgId> {
        let mut ids: Vec<MsgId> = self
            .by_id
            .iter()
            .filter(|(_, m)| m.next <= now)
            .map(|(id, _)| *id)
            .collect();
        ids.sort_unstable();
        ids
    }

    pub(crate) fn get_mut(&mut self, id: MsgId) -> Option<&mut InFlight> {
        self.by_id.get_mut(&id)
    }

    pub(crate) fn ids(&self) -> Vec<MsgId> {
        let mut ids: Vec<MsgId> = self.by_id.keys().copied().collect();
        ids.sort_unstable();
        ids
    }

    /// True if a message to `dst` is in flight.
    pub(crate) fn has_destination(&self, dst: &Address) -> bool {
        self.by_id.values().any(|m| &m.dst == dst)
    }
}

/// Reliable messages already delivered, remembered to re-ack and not
/// redeliver their retransmissions.
#[derive(Debug, Default)]
pub(crate) struct DuplicateMemory {
    seen: HashMap<(Address, u32, u64), Instant>,
    order: VecDeque<(Instant, (Address, u32, u64))>,
}

impl DuplicateMemory {
    /// Records a delivery; returns false if it was seen already.
    pub(crate) fn insert(&mut self, key: (Address, u32, u64), now: Instant, limit: usize) -> bool {
        if self.seen.contains_key(&key) {
            return false;
        }
        while self.seen.len() >= limit.max(1) {
            match self.order.pop_front() {
                Some((_, old)) => {
                    self.seen.remove(&old);
                }
                None => break,
            }
        }
        self.seen.insert(key.clone(), now);
        self.order.push_back((now, key));
        true
    }

    /// Forgets what is older than `memory`.
    pub(crate) fn expire(&mut self, now: Instant, memory: Duration) {
        while let Some((at, _)) = self.order.front() {
            if *at + memory > now {
                break;
            }
            if let Some((_, key)) = self.order.pop_front() {
                self.seen.remove(&key);
            }
        }
    }

    /// Forgets everything from `src` (it said bye or expired).
    pub(crate) fn forget(&mut self, src: &Address) {
        self.seen.retain(|(a, _, _), _| a != src);
        self.order.retain(|(_, (a, _, _))| a != src);
    }
}
