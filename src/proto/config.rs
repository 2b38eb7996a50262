//! What an [`super::Endpoint`] is told about its bus: keys, framing, group,
//! the protocol timers (RFC 3259 §10) and the bounds on what it keeps.

use std::net::SocketAddr;
use std::time::Duration;

use crate::auth::Keys;
use crate::config::Config;
use crate::wire::Framing;

use super::ReplayPolicy;

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
    /// Known entities. When the table is full a newcomer takes the place of
    /// an entity heard only once with nothing open with us
    /// ([`super::LeaveReason::Evicted`]); if none can make room, the
    /// newcomer's messages are still delivered and acknowledged, untracked.
    pub max_peers: usize,
    /// Events not yet polled (the oldest is dropped).
    pub max_events: usize,
    /// Datagrams not yet polled (the oldest is dropped).
    pub max_transmits: usize,
    /// Reliable messages in flight (further sends are refused).
    pub max_in_flight: usize,
    /// Remembered deliveries for duplicate detection (the oldest is forgotten).
    pub max_remembered: usize,
    /// Datagrams and sources the replay guard remembers
    /// ([`super::ReplayGuard`]): when it is full the oldest datagrams are
    /// forgotten early and the window shrinks for their sources (copies are
    /// refused, not let through). 65 536 holds 30 s of 2 180 datagrams a
    /// second, in about 5 MiB (4,972–5,100 KiB measured).
    pub max_replay_entries: usize,
    /// Acks owed to one peer before they are sent without waiting.
    pub max_pending_acks: usize,
    /// RPC requests received and not answered yet; beyond it the oldest is
    /// forgotten (its caller times out).
    pub max_open_requests: usize,
    /// The most entities counted for the hello interval and the expiry
    /// (RFC 3259 §8 scales both with the count): with 256 the interval is at
    /// most 51.2 s and a silent peer expires after at most 4.7 min, however
    /// many addresses a flood of hellos made up.
    pub max_counted_entities: usize,
    /// The largest datagram (UDP payload, octets) that batching makes: the
    /// commands of separate sends to one destination with one reliability,
    /// made within one drain, share a message up to this size. The default,
    /// 1472, is one Ethernet frame, which UCL peers and LAN links take
    /// whole; 0 turns batching off. A single send larger than this still
    /// goes, alone.
    pub max_batch_bytes: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_peers: 16_384,
            max_events: 8192,
            max_transmits: 8192,
            max_in_flight: 65_536,
            max_remembered: 65_536,
            max_replay_entries: 65_536,
            max_pending_acks: 256,
            max_open_requests: 65_536,
            max_counted_entities: 256,
            max_batch_bytes: 1472,
        }
    }
}

/// Everything an [`super::Endpoint`] needs to know about its bus.
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
    /// The replay window and clock check (`REPLAY_WINDOW`, `REPLAY_CLOCK`).
    pub replay: ReplayPolicy,
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
            replay: ReplayPolicy::from_config(config),
        })
    }
}
