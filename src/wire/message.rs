//! The message, its header and its commands (RFC 3259 §3, §5.2, §5.3).

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use super::{Address, Value};

/// Whether a message must be acknowledged (RFC 3259 §3 MessageType).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageType {
    /// `R`: the destination entity must acknowledge it.
    Reliable,
    /// `U`: it must not be acknowledged.
    Unreliable,
}

impl MessageType {
    /// The wire letter, `R` or `U`.
    pub fn letter(self) -> char {
        match self {
            MessageType::Reliable => 'R',
            MessageType::Unreliable => 'U',
        }
    }
}

/// The header line of a message (RFC 3259 §3, §5.2).
#[derive(Debug, Clone, PartialEq)]
pub struct Header {
    /// Per-entity sequence number, 0 … 4294967295, wrapping.
    pub seq: u32,
    /// The TimeStamp as written: milliseconds since the Unix epoch (1 to 13
    /// decimal digits on the wire), or seconds from pyMbus; see
    /// [`Header::timestamp_ms`].
    pub timestamp: u64,
    /// Reliable (`R`) or unreliable (`U`).
    pub kind: MessageType,
    /// The sender's complete address, including its `id` element (RFC 3259
    /// §4.1); a received one may lack it (pyMbus, see [`Message::outside_rfc`]).
    pub src: Address,
    /// The destination; a subset address reaches every entity that contains it.
    pub dst: Address,
    /// SeqNums that this message acknowledges, as listed (duplicates kept).
    pub acks: Vec<u32>,
}

/// TimeStamps below this are read as seconds: 10¹¹ ms is March 1973, 10¹¹ s
/// the year 5138, so no sender of either kind writes a value on the other
/// side of it (pyMbus stamps its headers in seconds).
pub const SECONDS_BELOW: u64 = 100_000_000_000;

impl Header {
    /// The TimeStamp in milliseconds since the Unix epoch (RFC 3259 §3):
    /// one below [`SECONDS_BELOW`] is read as seconds, as pyMbus writes it.
    pub fn timestamp_ms(&self) -> u64 {
        timestamp_ms(self.timestamp)
    }

    /// True if the TimeStamp is in seconds (see [`Header::timestamp_ms`]).
    pub fn timestamp_in_seconds(&self) -> bool {
        self.timestamp < SECONDS_BELOW
    }
}

/// A TimeStamp as written, in milliseconds (see [`Header::timestamp_ms`]).
pub fn timestamp_ms(raw: u64) -> u64 {
    if raw < SECONDS_BELOW {
        raw.saturating_mul(1000)
    } else {
        raw
    }
}

/// The TimeStamp of wall-clock time `t`: milliseconds since the Unix epoch
/// (RFC 3259 §3); 0 before it.
pub fn timestamp_of(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// How far the TimeStamp `ts_ms` is ahead of the clock reading `ours_ms`
/// (both in ms; negative when it is behind).
pub fn clock_offset_ms(ts_ms: u64, ours_ms: u64) -> i64 {
    if ts_ms >= ours_ms {
        i64::try_from(ts_ms - ours_ms).unwrap_or(i64::MAX)
    } else {
        i64::try_from(ours_ms - ts_ms).map_or(i64::MIN, |d| -d)
    }
}

/// One command: a name and an argument list (RFC 3259 §5.3).
#[derive(Debug, Clone, PartialEq)]
pub struct Command {
    /// A Symbol; hierarchical names use `.` as separator, e.g. `mbus.hello`.
    pub name: String,
    /// The argument list (the outer parentheses are implied).
    pub args: Vec<Value>,
}

impl Command {
    /// A command with the given name and arguments.
    pub fn new(name: impl Into<String>, args: Vec<Value>) -> Command {
        Command {
            name: name.into(),
            args,
        }
    }
}

/// A whole Mbus message: header plus commands in order (RFC 3259 §5.2).
///
/// Commands are handed to the application in the order they appear (§3).
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    /// The header line.
    pub header: Header,
    /// Zero or more commands; a message with none is a pure acknowledgement.
    pub commands: Vec<Command>,
}

impl fmt::Display for Command {
    /// `name (args)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = Vec::new();
        super::encode::write_command(&mut out, self);
        f.write_str(&String::from_utf8_lossy(&out))
    }
}

impl fmt::Display for Message {
    /// The message as Mbus text: the header line, then one line per command
    /// (LF-separated, no trailing newline).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = Vec::new();
        super::encode::write_message(&mut out, &self.view(), "\n", false);
        f.write_str(&String::from_utf8_lossy(&out))
    }
}
