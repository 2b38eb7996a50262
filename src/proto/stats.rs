//! The endpoint's counters.

/// The endpoint's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Datagrams handed to `Endpoint::handle_datagram`.
    pub datagrams_in: u64,
    /// Datagrams handed out by `Endpoint::poll_transmit`.
    pub datagrams_out: u64,
    /// Of those, the ones addressed to a peer's own endpoint instead of the
    /// group (the unicast optimisation, `SEND_UNICAST`, RFC 3259 §6.2).
    pub unicast_out: u64,
    /// Rejected: no digest line, or a digest that does not match.
    pub rejected_auth: u64,
    /// Rejected: ciphertext of a bad length, or not `mbus/` after decryption.
    pub rejected_cipher: u64,
    /// Rejected: authenticated but malformed.
    pub rejected_malformed: u64,
    /// Rejected by the replay guard: a copy of a datagram already seen
    /// (not a retransmission the duplicate memory still holds), one older
    /// than its source's window, or one whose TimeStamp is too far from our
    /// clock ([`super::ReplayVerdict`]).
    pub rejected_replay: u64,
    /// Our own messages, looped back by the multicast group (recognised by
    /// their source address; a runtime host with a single entity drops them
    /// before they reach the endpoint and counts them itself).
    pub own_echoes: u64,
    /// RFC 3259 §9 commands (`mbus.bye`, `ping`, `quit`, `waiting`, `go`)
    /// whose arguments do not fit their format: dropped.
    pub malformed_commands: u64,
    /// Authentic messages not addressed to us (or reliable to a subset of us).
    pub not_for_us: u64,
    /// Reliable messages received again, re-acknowledged and not delivered.
    pub duplicates: u64,
    /// Reliable messages sent (first transmissions).
    pub reliable_sent: u64,
    /// Retransmissions of reliable messages.
    pub retransmissions: u64,
    /// Reliable messages acknowledged.
    pub acknowledged: u64,
    /// Reliable messages that got no acknowledgement.
    pub failed: u64,
    /// Dedicated acknowledgement messages sent.
    pub dedicated_acks: u64,
    /// Events, datagrams, entities or open requests dropped because a bound was
    /// reached.
    pub queue_drops: u64,
    /// Entities removed from a full table to make room for a newcomer
    /// ([`super::LeaveReason::Evicted`]).
    pub evicted: u64,
    /// Messages from entities a full table could not take (every entity in
    /// it had something open with us): delivered and acknowledged at once,
    /// but the sender is not tracked.
    pub untracked: u64,
    /// RPC requests received (Guidelines layer).
    pub rpc_requests: u64,
    /// Malformed RPC requests, returns and standby replies, and requests the
    /// core answers itself (properties, registration) with arguments of the
    /// wrong shape.
    pub rpc_malformed: u64,
    /// Returns and standby replies for calls nobody made (or that ended).
    pub rpc_stray: u64,
    /// Transaction commits and cancels not honoured (a cancel after the
    /// commit, a commit out of turn, or for no open transaction).
    pub txn_refused: u64,
    /// Commands and requests refused because a tight service accepts them
    /// only from registered controllers.
    pub denied: u64,
}
