//! The message, its header and its commands (RFC 3259 §3, §5.2, §5.3).

use std::fmt;

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
    /// Milliseconds since the Unix epoch (1 to 13 decimal digits on the wire).
    pub timestamp: u64,
    /// Reliable (`R`) or unreliable (`U`).
    pub kind: MessageType,
    /// The sender's complete address, including its `id` element.
    pub src: Address,
    /// The destination; a subset address reaches every entity that contains it.
    pub dst: Address,
    /// SeqNums that this message acknowledges, as listed (duplicates kept).
    pub acks: Vec<u32>,
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
