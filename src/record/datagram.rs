//! One datagram seen on the bus as a JSON record: the time it came, its
//! source, its [`Accepted`] or [`Rejected`] record, and what a watcher
//! notes about it (UCL's hazards, what is outside RFC 3259's grammar, the
//! sender's clock offset, the replay guard's verdict). What `rmbus monitor
//! --json` prints and the gateway's raw monitor sends.

use std::net::SocketAddr;
use std::time::SystemTime;

use serde::Serialize;

use crate::auth::{open, Keys, Rejection};
use crate::proto::{ReplayVerdict, Timers};
use crate::wire::{clock_offset_ms, timestamp_of, Message, MessageType};

use super::clock;
use super::json::{Accepted, Rejected};

/// A datagram's record with when and whence it came (RFC 3259 §2).
#[derive(Serialize)]
pub struct Line<T: Serialize> {
    /// When it came (RFC 3339, UTC).
    pub time: String,
    /// Its source.
    pub from: SocketAddr,
    /// Its record.
    #[serde(flatten)]
    pub record: T,
    /// What in it UCL's parser would misread.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ucl_hazards: Vec<String>,
    /// What the message holds that RFC 3259's grammar does not allow (and
    /// we accept, as deployed peers send it).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub outside_rfc: Vec<String>,
    /// Its TimeStamp minus our clock, in milliseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub clock_offset_ms: Option<i64>,
    /// Why the entities' replay guard refuses it, if it does.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replay: Option<ReplayNote>,
}

/// Why the entities' replay guard refuses a datagram (RFC 3259 §11).
#[derive(Serialize)]
pub struct ReplayNote {
    /// `seen`, `old`, `forgotten` or `clock`.
    pub code: &'static str,
    /// True for a copy of a reliable message soon after the first: most
    /// likely its sender retransmitting (acknowledged again, not delivered).
    pub retransmission: bool,
    /// The guard's reason.
    pub reason: String,
}

impl ReplayNote {
    /// The note for `msg`, unless `verdict` lets it through.
    pub fn new(msg: &Message, verdict: ReplayVerdict) -> Option<ReplayNote> {
        if verdict.is_fresh() {
            return None;
        }
        let reliable = msg.header.kind == MessageType::Reliable;
        let retransmission = verdict.is_retransmission(reliable, Timers::default().dup_memory);
        Some(ReplayNote {
            code: verdict.code(),
            retransmission,
            reason: verdict.to_string(),
        })
    }
}

/// A message's TimeStamp minus the clock at `at`.
pub fn clock_offset(msg: &Message, at: SystemTime) -> i64 {
    clock_offset_ms(msg.header.timestamp_ms(), timestamp_of(at))
}

/// One datagram as `rmbus monitor --json` prints it (also the gateway's
/// `raw` monitor events): the record, and the message if it opened with
/// `keys`.
pub fn datagram_json(
    at: SystemTime,
    from: SocketAddr,
    bytes: &[u8],
    keys: &Keys,
) -> (serde_json::Value, Option<Message>) {
    match open(bytes, keys) {
        Ok(msg) => {
            let mut line = accepted_line(at, from, &msg, bytes.len());
            line.clock_offset_ms = Some(clock_offset(&msg, at));
            (value(&line), Some(msg))
        }
        Err(rejection) => (value(&rejected_line(at, from, &rejection)), None),
    }
}

/// A line as a JSON value (serializing these records cannot fail).
fn value<T: Serialize>(line: &Line<T>) -> serde_json::Value {
    serde_json::to_value(line).unwrap_or_else(|e| serde_json::json!({ "error": e.to_string() }))
}

/// The line of a message opened and verified.
pub fn accepted_line<'a>(
    at: SystemTime,
    from: SocketAddr,
    msg: &'a Message,
    len: usize,
) -> Line<Accepted<'a>> {
    verified_line(at, from, msg, len, true)
}

/// The line of an opened message (`verified`: its digest was checked).
pub fn verified_line<'a>(
    at: SystemTime,
    from: SocketAddr,
    msg: &'a Message,
    len: usize,
    verified: bool,
) -> Line<Accepted<'a>> {
    let hazards: Vec<String> = msg
        .ucl_hazards(len)
        .iter()
        .map(ToString::to_string)
        .collect();
    Line {
        time: clock::rfc3339(at),
        from,
        record: if verified {
            Accepted::new(msg)
        } else {
            Accepted::unverified(msg)
        },
        ucl_hazards: hazards,
        outside_rfc: msg.outside_rfc(),
        clock_offset_ms: None,
        replay: None,
    }
}

/// The line of a datagram refused.
pub fn rejected_line(at: SystemTime, from: SocketAddr, rejection: &Rejection) -> Line<Rejected> {
    Line {
        time: clock::rfc3339(at),
        from,
        record: Rejected::new(rejection),
        ucl_hazards: vec![],
        outside_rfc: vec![],
        clock_offset_ms: None,
        replay: None,
    }
}
