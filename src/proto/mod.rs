//! The sans-I/O protocol core: one Mbus entity, [`Endpoint`] (RFC 3259 §6–§10,
//! and the Guidelines layer as sub-state machines).
//!
//! An [`Endpoint`] never touches a socket, a clock or a thread. Every input
//! carries `now`; the driver feeds it datagrams and timeouts and pulls out
//! datagrams to send, events and the next deadline:
//!
//! ```text
//! handle_datagram(now, from, bytes) / handle_timeout(now) / send(now, …) / rpc().call(now, …) / close(now)
//! then: poll_event() until None, poll_transmit(now) until None, then poll_timeout()
//! ```
//!
//! Drain events before transmits: a reply the application sends while handling
//! an event then carries the acknowledgements owed to its destination
//! (piggy-backing), instead of a separate ack message going out first. The
//! [`SansIo`] trait names this shape, so that one simulation (and, later,
//! other machines built on the endpoint) can drive anything that has it.
//!
//! Inside, in layers:
//! - the transport (`transport.rs`): the reliable sender and receiver (§7:
//!   retransmission at 100 and 300 ms, failure at 600 ms, acks due within
//!   T_c = 70 ms and sent as soon as the driver asks for transmits, duplicate
//!   suppression; `reliable.rs`), the replay guard ([`ReplayGuard`]), the entity table and hello timing (§8;
//!   `peers.rs`, `hello.rs`), and the `mbus.*` commands of §9 ([`cmd`]);
//! - the Guidelines layer's sub-machines (`guidelines/`): calls and serving,
//!   properties, transactions, services. Each owns its state and reaches the
//!   transport through a narrow context (send reliably or not, push an event,
//!   look up a peer); the application reaches each through a view:
//!   [`Endpoint::rpc`], [`Endpoint::properties`], [`Endpoint::transactions`],
//!   [`Endpoint::services`];
//! - one dispatch table (`endpoint/dispatch.rs`) that routes every incoming
//!   command to the part that takes it, or to the application.
//!
//! Every timer is one keyed deadline set (`deadlines.rs`), so
//! [`Endpoint::poll_timeout`] costs O(log n) whatever is in flight. Hostile
//! input is not an error: it is dropped and counted in [`Endpoint::stats`].
//! Randomness (hello dither) comes from the seed in [`EndpointConfig`]
//! through [`Rng`], so a simulation replays exactly.

mod acks;
mod batch;
pub mod cmd;
mod config;
mod deadlines;
mod endpoint;
mod entities;
mod error;
mod event;
mod guidelines;
mod hello;
mod index;
pub(crate) mod maps;
mod peers;
mod reliable;
mod replay;
mod rng;
mod shared;
mod stats;
mod transport;
mod unauthenticated;

use std::net::SocketAddr;
use std::time::Instant;

pub use config::{EndpointConfig, Limits, Timers};
pub(crate) use deadlines::Deadlines;
pub use endpoint::Endpoint;
pub use entities::{Entities, EntityId, EntityView};
pub use error::{SendError, SetupError};
pub use event::{Event, LeaveReason};
pub use guidelines::{
    CallError, NotifyError, Properties, ReplyError, Rpc, Services, Transactions, TxnError,
};
pub use maps::seed_hash_tables;
pub use peers::Peer;
pub use replay::{ReplayGuard, ReplayPolicy, ReplayVerdict, SOURCE_RETENTION};
pub use rng::Rng;
pub use shared::Shared;
pub use stats::Stats;
pub use unauthenticated::{
    hint as unauthenticated_hint, UnauthenticatedSource, MAX_SOURCES as MAX_UNAUTHENTICATED_SOURCES,
};

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

/// Identifies a reliable message given to [`Endpoint::send`], in its delivery
/// events.
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

/// The shape of a sans-I/O machine: inputs `handle_*`, outputs `poll_*`.
///
/// After any input (or any command from the application), drain
/// [`SansIo::poll_event`] and [`SansIo::poll_transmit`] until they return
/// `None`, then read [`SansIo::poll_timeout`] and call
/// [`SansIo::handle_timeout`] when it is reached. [`Endpoint`] has this shape;
/// the deterministic simulation of the test suite drives anything that does.
pub trait SansIo {
    /// What the machine tells its application.
    type Event;

    /// One datagram from the bus, from IP endpoint `from`.
    fn handle_datagram(&mut self, now: Instant, from: SocketAddr, data: &[u8]);

    /// Timers; calling it early does no harm.
    fn handle_timeout(&mut self, now: Instant);

    /// The next datagram to send.
    fn poll_transmit(&mut self, now: Instant) -> Option<Transmit>;

    /// The next event for the application.
    fn poll_event(&mut self) -> Option<Self::Event>;

    /// When [`SansIo::handle_timeout`] is due next (`None`: never).
    fn poll_timeout(&self) -> Option<Instant>;
}
