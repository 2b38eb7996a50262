//! The sans-I/O protocol core: one Mbus entity (RFC 3259 §6–§10).
//!
//! An [`Endpoint`] never touches a socket, a clock or a thread. Every input
//! carries `now`; the driver feeds it datagrams and timeouts and pulls out
//! datagrams to send, events and the next deadline:
//!
//! ```text
//! handle_datagram(now, from, bytes) / handle_timeout(now) / send(now, …) / close(now)
//! then: poll_event() until None, poll_transmit(now) until None, then poll_timeout()
//! ```
//!
//! Drain events before transmits: a reply the application sends while handling
//! an event then carries the acknowledgements owed to its destination
//! (piggy-backing), instead of a separate ack message going out first.
//!
//! Inside: the reliable sender and receiver (§7: retransmission at 100 and
//! 300 ms, failure at 600 ms, acks due within T_c = 70 ms and sent as soon as
//! the driver asks for transmits, duplicate suppression), the entity table and
//! hello timing (§8), and the `mbus.*` commands (§9: hello, bye, ping, quit,
//! waiting, go). Hostile input is not an error: it is dropped and counted in
//! [`Endpoint::stats`]. Randomness (hello dither) comes from the seed in
//! [`EndpointConfig`], so a simulation replays exactly.

mod endpoint;
mod hello;
mod peers;
mod reliable;
mod rng;

use std::net::SocketAddr;
use std::time::Duration;

use crate::auth::Keys;
use crate::config::Config;
use crate::wire::{Address, Command, EncodeError, Framing};

pub use endpoint::{Endpoint, SetupError};
pub use peers::Peer;

/// The protocol timers (RFC 3259 §10). The defaults are the RFC's.
#[derive(Debug, Clone, PartialEq)]
pub struct Timers {
    /// T_r: the first retransmission timeout (100 ms).
    pub t_r: Duration,
    /// N_r: transmissions of a reliable message before it fails (3).
    pub n_r: u32,
    /// T_c: the latest an acknowledgement may be sent after the message (70 ms).
    pub t_c: Duration,
    /// c_hello_min (1000 ms).
    pub hello_min: Duration,
    /// c_hello_factor per entity (200 ms).
    pub hello_factor: Duration,
    /// c_hello_dither_min and _max (0.9, 1.1).
    pub hello_dither: (f64, f64),
    /// c_hello_dead (5): a peer silent for 5 · hello_d · 1.1 is gone.
    pub hello_dead: u32,
    /// How long delivered reliable messages are remembered as duplicates (10 s:
    /// UCL retransmits for up to 5 s).
    pub dup_memory: Duration,
    /// How often `mbus.waiting` is repeated while waiting (100 ms, as RAT does).
    pub waiting_interval: Duration,
}

impl Default for Timers {
    fn default() -> Timers {
        Timers {
            t_r: Duration::from_millis(100),
            n_r: 3,
            t_c: Duration::from_millis(70),
            hello_min: Duration::from_millis(1000),
            hello_factor: Duration::from_millis(200),
            hello_dither: (0.9, 1.1),
            hello_dead: 5,
            dup_memory: Duration::from_secs(10),
            waiting_interval: Duration::from_millis(100),
        }
    }
}

/// Bounds on what the endpoint keeps, so that no peer can grow its memory
/// without limit. What does not fit is dropped and counted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Known entities.
    pub max_peers: usize,
    /// Events not yet polled (the oldest is dropped).
    pub max_events: usize,
    /// Datagrams not yet polled (the oldest is dropped).
    pub max_transmits: usize,
    /// Reliable messages in flight (further sends are refused).
    pub max_in_flight: usize,
    /// Remembered deliveries for duplicate detection (the oldest is forgotten).
    pub max_remembered: usize,
    /// Acks owed to one peer before they are sent without waiting.
    pub max_pending_acks: usize,
    /// RPC requests received and not answered yet; beyond it the oldest is
    /// forgotten (its caller times out).
    pub max_open_requests: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_peers: 4096,
            max_events: 8192,
            max_transmits: 8192,
            max_in_flight: 65_536,
            max_remembered: 65_536,
            max_pending_acks: 256,
            max_open_requests: 65_536,
        }
    }
}

/// Everything an [`Endpoint`] needs to know about its bus.
#[derive(Debug, Clone)]
pub struct EndpointConfig {
    /// The bus keys.
    pub keys: Keys,
    /// How datagrams are framed (LF by default).
    pub framing: Framing,
    /// The multicast group and port: where messages go unless sent by unicast.
    pub group: SocketAddr,
    /// Send to a unique destination by unicast when it has an endpoint of its
    /// own (RFC 3259 §6.2; `SEND_UNICAST`).
    pub send_unicast: bool,
    /// The seed of the core's random choices.
    pub seed: u64,
    /// The first SeqNum (RFC 3259 §3: it SHOULD be 0).
    pub first_seq: u32,
    /// Protocol timers.
    pub timers: Timers,
    /// Memory bounds.
    pub limits: Limits,
}

impl EndpointConfig {
    /// The settings of a configuration file, with the RFC's timers.
    pub fn from_config(
        config: &Config,
        seed: u64,
    ) -> Result<EndpointConfig, crate::auth::KeyError> {
        Ok(EndpointConfig {
            keys: config.keys()?,
            framing: config.framing,
            group: config.group_addr(),
            send_unicast: config.send_unicast,
            seed,
            first_seq: 0,
            timers: Timers::default(),
            limits: Limits::default(),
        })
    }
}

/// How a message is to be delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Delivery {
    /// `U`: sent once, never acknowledged.
    Unreliable,
    /// `R`: acknowledged or reported failed; many may be in flight at once.
    Reliable,
    /// `R`, and delivered to the destination in send order: a message waits
    /// until the previous one to the same destination is acknowledged or failed.
    ReliableOrdered,
}

/// Identifies a message given to [`Endpoint::send`], in its delivery events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MsgId(pub u64);

/// A datagram to send.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub struct Transmit {
    /// The multicast group, or a peer's own endpoint (unicast).
    pub destination: SocketAddr,
    /// The sealed datagram.
    pub contents: Vec<u8>,
}

/// Why a peer left the entity table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LeaveReason {
    /// It said `mbus.bye`.
    Bye,
    /// Nothing heard from it for 5.5 hello intervals.
    Timeout,
}

/// Something the application should know.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Event {
    /// A command addressed to us (every command but hello, bye, ping, quit,
    /// waiting and go, which have events of their own).
    Command {
        /// The sender.
        src: Address,
        /// True if it came in a reliable message.
        reliable: bool,
        /// The command.
        command: Command,
    },
    /// An entity was heard from for the first time (or again after leaving).
    PeerJoined(Address),
    /// An entity left.
    PeerLeft {
        /// Its address.
        addr: Address,
        /// Bye, or silence.
        reason: LeaveReason,
    },
    /// A reliable message was acknowledged.
    Delivered {
        /// The message.
        id: MsgId,
        /// Its destination.
        dst: Address,
        /// From the first transmission to the acknowledgement.
        after: Duration,
    },
    /// A reliable message got no acknowledgement. It may still have arrived
    /// (its acks may have been lost): it is unacknowledged, not undelivered.
    DeliveryFailed {
        /// The message.
        id: MsgId,
        /// Its destination.
        dst: Address,
    },
    /// `mbus.quit`: the sender asks us to terminate.
    Quit {
        /// The sender.
        src: Address,
    },
    /// `mbus.waiting`: the sender waits for `condition`.
    Waiting {
        /// The sender.
        src: Address,
        /// The condition (a Symbol, or UCL's String).
        condition: String,
    },
    /// `mbus.go`: the sender releases `condition`.
    Go {
        /// The sender.
        src: Address,
        /// The condition.
        condition: String,
    },
    /// An RPC request for an operation this entity serves (Guidelines §5.2);
    /// answer it with [`Endpoint::reply`].
    Request(crate::rpc::Request),
    /// A call made with [`Endpoint::call`] or an ANYCAST
    /// [`Endpoint::call_group`] ended.
    Returned {
        /// The call.
        call: crate::rpc::CallId,
        /// Who answered (for an anycast that found no volunteer: the group).
        callee: Address,
        /// How it ended.
        outcome: crate::rpc::Outcome,
    },
    /// A MULTICAST call ended: one outcome per entity.
    GroupReturned {
        /// The call.
        call: crate::rpc::CallId,
        /// Each entity and its outcome, ordered by address.
        results: Vec<(Address, crate::rpc::Outcome)>,
    },
    /// A transaction request for an operation served with
    /// [`Endpoint::serve_transaction`]: answer with [`Endpoint::txn_ack`].
    Transaction(crate::rpc::TxnRequest),
    /// The client committed a transaction we acknowledged OK: do it, then
    /// [`Endpoint::txn_complete`].
    TransactionCommit {
        /// The transaction.
        id: crate::rpc::OpenTxnId,
    },
    /// The client cancelled before committing (answered `CANCELLED` already):
    /// undo what the request did.
    TransactionCancelled {
        /// The transaction.
        id: crate::rpc::OpenTxnId,
    },
    /// The server acknowledged our transaction OK: commit or cancel it.
    TransactionAcked {
        /// The transaction.
        txn: crate::rpc::TxnId,
    },
    /// Our transaction ended.
    TransactionEnded {
        /// The transaction.
        txn: crate::rpc::TxnId,
        /// How.
        outcome: crate::rpc::TxnOutcome,
    },
    /// Another entity set one of our properties (Guidelines §5.4); the
    /// watchers have been told.
    PropertyChanged {
        /// The property.
        name: String,
        /// Its new value.
        value: crate::wire::Value,
        /// Who set it.
        by: Address,
    },
}

/// Why [`Endpoint::send`] refused a message. Nothing was sent.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// Reliable messages need a destination we know (RFC 3259 §7).
    #[error("reliable destination {0} is not a known entity")]
    UnknownDestination(Address),
    /// Reliable messages need a destination that matches one entity only.
    #[error("reliable destination {dst} matches {matches} entities")]
    NotUnique {
        /// The destination.
        dst: Address,
        /// How many known entities it matches.
        matches: usize,
    },
    /// Reliable messages need the entity's complete address: it is only
    /// processed if the address is exactly its own.
    #[error("reliable destination {dst} is not the complete address {full}")]
    Incomplete {
        /// The destination given.
        dst: Address,
        /// The complete address of the one entity it matches.
        full: Address,
    },
    /// Too many reliable messages in flight.
    #[error("{0} reliable messages are in flight already")]
    TooManyInFlight(usize),
    /// The message has no Mbus form, or is too large.
    #[error(transparent)]
    Encode(#[from] EncodeError),
    /// The endpoint has said bye.
    #[error("the endpoint is closed")]
    Closed,
    /// [`crate::proto::Endpoint::call_group`] takes ANYCAST or MULTICAST only.
    #[error("{} is not a group RPC type this endpoint can call", .0.as_str())]
    UnsupportedRpcType(crate::rpc::RpcType),
    /// [`crate::proto::Endpoint::notify`] of a name under no defined service.
    #[error("{0} is under no service this entity offers")]
    NoSuchService(String),
    /// A thread handle was used on its own bus thread, from a callback: it
    /// would wait for itself. The callback's `&mut Bus` does the same work.
    #[error("a bus handle was used on its own bus thread; use the Bus the callback was given")]
    OnBusThread,
}

/// The endpoint's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Datagrams handed to [`Endpoint::handle_datagram`].
    pub datagrams_in: u64,
    /// Datagrams handed out by [`Endpoint::poll_transmit`].
    pub datagrams_out: u64,
    /// Rejected: no digest line, or a digest that does not match.
    pub rejected_auth: u64,
    /// Rejected: ciphertext of a bad length, or not `mbus/` after decryption.
    pub rejected_cipher: u64,
    /// Rejected: authenticated but malformed.
    pub rejected_malformed: u64,
    /// Our own messages, looped back by the multicast group.
    pub own_echoes: u64,
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
    /// Events, datagrams or entities dropped because a bound was reached.
    pub queue_drops: u64,
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
