//! The Mbus message model, parser and encoder (RFC 3259 §2–§5).
//!
//! A message is a header (protocol id, SeqNum, TimeStamp, type, source and
//! destination [`Address`], ack list) followed by zero or more commands, each a
//! command name and an argument list of [`Value`]s.
//!
//! - [`Message::parse`] accepts every form the deployed peers send (LF or CRLF
//!   line ends, runs of whitespace, UCL's padded SeqNums and ack lists, `cmd()`
//!   without a space, trailing newlines and NULs) and rejects what the grammar
//!   forbids with a [`ParseError`] naming the byte offset and the [`Rule`].
//!   It never panics, caps nesting depth at [`MAX_DEPTH`] and input size at
//!   [`MAX_DATAGRAM`].
//! - [`Message::encode`] writes the canonical form: single spaces, unpadded
//!   numbers, `cmd (args)`, string escapes `\\` `\"` `\n` only, floats with a
//!   fraction digit, LF framing by default ([`Framing`]).
//! - `Display` prints a message as Mbus text, one command per line.
//! - [`is_under`] is the crate's one rule for command-name prefixes, and
//!   [`ShapeError`] the error of every typed command (`proto::cmd`, `rpc::cmd`).

mod address;
mod encode;
mod hazard;
mod message;
mod name;
mod parse;
mod value;

pub use address::{Address, AddressError, Element};
pub use encode::{EncodeError, Framing, MessageView};
pub use hazard::UclHazard;
pub use message::{
    clock_offset_ms, timestamp_ms, timestamp_of, Command, Header, Message, MessageType,
    SECONDS_BELOW,
};
pub use name::{is_under, ShapeError};
pub use parse::{ParseError, Rule};
pub use value::Value;

/// The largest datagram (and so the largest message) we send or accept: the
/// IPv4 UDP payload limit, within RFC 3259 §6's 64 KBytes.
pub const MAX_DATAGRAM: usize = 65_507;

/// The deepest nesting of lists we accept or emit; the argument list itself is
/// depth 1. Deeper input is rejected as malformed rather than recursed into.
pub const MAX_DEPTH: usize = 32;

/// The protocol identifier that starts every message (RFC 3259 §3, case-sensitive).
pub const PROTOCOL_ID: &str = "mbus/1.0";

/// Above this size a datagram is truncated by UCL peers (1500-byte receive buffer).
pub const UCL_MAX_DATAGRAM: usize = 1500;
