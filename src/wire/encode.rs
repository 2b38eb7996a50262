//! The canonical encoder (RFC 3259 §5.2, §5.3), with LF framing by default as
//! the deployed UCL and libgmbus peers send it (CRLF, the RFC's form, on request).
//!
//! Canonical form: single spaces between header fields, unpadded numbers,
//! `name (args)` with exactly one space, one space between list elements, strings
//! escaped with `\\`, `\"` and `\n` only, floats with at least one fraction digit
//! and never an exponent, Data as padded base64.

use std::io::Write as _;

use base64::Engine as _;

use super::value::{is_integer_text, is_symbol};
use super::{Address, Command, Message, MessageType, Value, MAX_DEPTH, PROTOCOL_ID};

/// How lines are separated in an encoded datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Framing {
    /// LF after the digest line and after every line, including the last: what
    /// UCL and libgmbus send, and what UCL receivers require. Our default.
    #[default]
    Lf,
    /// RFC 3259's form: CRLF after the digest and between lines, nothing after
    /// the last line.
    Crlf,
}

impl Framing {
    /// The line separator.
    pub fn newline(self) -> &'static str {
        match self {
            Framing::Lf => "\n",
            Framing::Crlf => "\r\n",
        }
    }
}

/// Why a message cannot be encoded.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// NaN or an infinity: the Float grammar has no form for them.
    #[error("float {0} is not finite and has no Mbus form")]
    NonFiniteFloat(f64),
    /// A command name that is not a Symbol.
    #[error("command name {0:?} is not a Symbol (a letter, then letters, digits, '_', '-', '.')")]
    BadCommandName(String),
    /// A BigInteger whose text is not `-?[0-9]+`.
    #[error("integer text {0:?} is not an optional '-' followed by digits")]
    BadInteger(String),
    /// A String holding a NUL, which Mbus messages cannot carry (and which
    /// decryption would strip).
    #[error("string holds a NUL byte, which an Mbus message cannot carry")]
    NulInString,
    /// Lists nested deeper than [`MAX_DEPTH`].
    #[error("lists nested deeper than {MAX_DEPTH}")]
    TooDeep,
    /// The datagram would exceed [`super::MAX_DATAGRAM`].
    #[error("datagram of {0} bytes exceeds the {max}-byte limit", max = super::MAX_DATAGRAM)]
    TooLarge(usize),
}

impl Message {
    /// Checks that every part of the message has an Mbus form.
    pub fn validate(&self) -> Result<(), EncodeError> {
        validate_commands(&self.commands)
    }

    /// Encodes the message (without the digest line) in canonical form.
    pub fn encode(&self, framing: Framing) -> Result<Vec<u8>, EncodeError> {
        let mut out = Vec::with_capacity(128);
        self.encode_into(&mut out, framing)?;
        Ok(out)
    }

    /// Appends the canonical encoding to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>, framing: Framing) -> Result<(), EncodeError> {
        self.view().encode_into(out, framing)
    }

    /// The message as a [`MessageView`].
    pub fn view(&self) -> MessageView<'_> {
        let h = &self.header;
        MessageView {
            seq: h.seq,
            timestamp: h.timestamp,
            kind: h.kind,
            src: &h.src,
            dst: &h.dst,
            acks: &h.acks,
            commands: &self.commands,
        }
    }
}

impl Command {
    /// Checks that the command has an Mbus form (name and arguments).
    pub fn validate(&self) -> Result<(), EncodeError> {
        validate_commands(std::slice::from_ref(self))
    }

    /// Appends the command's line (`name (args)`, RFC 3259 §5.3) to `out`,
    /// without a newline; what a sender uses to know how much room it takes
    /// in a message.
    pub fn encode_into(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        self.validate()?;
        write_command(out, self);
        Ok(())
    }
}

/// A message made of borrowed parts (RFC 3259 §5): what a sender encodes
/// without first cloning its own address and the destination into a
/// [`Message`]. It encodes exactly as the equivalent `Message` does.
#[derive(Debug, Clone, Copy)]
pub struct MessageView<'a> {
    /// Per-entity sequence number.
    pub seq: u32,
    /// Milliseconds since the Unix epoch.
    pub timestamp: u64,
    /// Reliable (`R`) or unreliable (`U`).
    pub kind: MessageType,
    /// The sender's complete address.
    pub src: &'a Address,
    /// The destination.
    pub dst: &'a Address,
    /// SeqNums acknowledged.
    pub acks: &'a [u32],
    /// The commands.
    pub commands: &'a [Command],
}

impl MessageView<'_> {
    /// Appends the canonical encoding to `out` (see [`Message::encode_into`]).
    pub fn encode_into(&self, out: &mut Vec<u8>, framing: Framing) -> Result<(), EncodeError> {
        validate_commands(self.commands)?;
        write_message(out, self, framing.newline(), framing == Framing::Lf);
        Ok(())
    }
}

fn validate_commands(commands: &[Command]) -> Result<(), EncodeError> {
    for cmd in commands {
        if !is_symbol(&cmd.name) {
            return Err(EncodeError::BadCommandName(cmd.name.clone()));
        }
        validate_list(&cmd.args, 1)?;
    }
    Ok(())
}

fn validate_list(values: &[Value], depth: usize) -> Result<(), EncodeError> {
    if depth > MAX_DEPTH {
        return Err(EncodeError::TooDeep);
    }
    for v in values {
        match v {
            Value::Float(f) if !f.is_finite() => return Err(EncodeError::NonFiniteFloat(*f)),
            Value::BigInteger(s) if !is_integer_text(s) => {
                return Err(EncodeError::BadInteger(s.clone()))
            }
            Value::String(s) if s.as_bytes().contains(&0) => return Err(EncodeError::NulInString),
            Value::List(l) => validate_list(l, depth + 1)?,
            _ => {}
        }
    }
    Ok(())
}

/// Writes header and commands; `newline` separates lines, `trailing` adds one
/// after the last line. Infallible: [`Message::validate`] is the gate.
pub(crate) fn write_message(out: &mut Vec<u8>, m: &MessageView<'_>, newline: &str, trailing: bool) {
    out.extend_from_slice(PROTOCOL_ID.as_bytes());
    out.push(b' ');
    write_u64(out, u64::from(m.seq));
    out.push(b' ');
    write_u64(out, m.timestamp);
    out.push(b' ');
    out.push(m.kind.letter() as u8);
    out.extend_from_slice(b" (");
    out.extend_from_slice(m.src.inner_text().as_bytes());
    out.extend_from_slice(b") (");
    out.extend_from_slice(m.dst.inner_text().as_bytes());
    out.extend_from_slice(b") (");
    for (i, &ack) in m.acks.iter().enumerate() {
        if i > 0 {
            out.push(b' ');
        }
        write_u64(out, u64::from(ack));
    }
    out.push(b')');
    for cmd in m.commands {
        out.extend_from_slice(newline.as_bytes());
        write_command(out, cmd);
    }
    if trailing {
        out.extend_from_slice(newline.as_bytes());
    }
}

/// Writes `n` in decimal without going through `core::fmt` (this is on every
/// send's path).
fn write_u64(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}

fn write_i64(out: &mut Vec<u8>, n: i64) {
    if n < 0 {
        out.push(b'-');
    }
    write_u64(out, n.unsigned_abs());
}

/// Writes `name (args)`.
pub(crate) fn write_command(out: &mut Vec<u8>, cmd: &Command) {
    out.extend_from_slice(cmd.name.as_bytes());
    out.push(b' ');
    write_list(out, &cmd.args);
}

fn write_list(out: &mut Vec<u8>, values: &[Value]) {
    out.push(b'(');
    for (i, v) in values.iter().enumerate() {
        if i > 0 {
            out.push(b' ');
        }
        write_value(out, v);
    }
    out.push(b')');
}

/// Writes one value in canonical form.
pub(crate) fn write_value(out: &mut Vec<u8>, v: &Value) {
    match v {
        Value::Integer(i) => write_i64(out, *i),
        Value::BigInteger(s) => out.extend_from_slice(s.as_bytes()),
        // We emit RFC 3259 Symbols only: anything else goes as a String.
        Value::Symbol(s) if is_symbol(s) => out.extend_from_slice(s.as_bytes()),
        Value::Symbol(s) => write_string(out, s),
        Value::Float(f) => write_float(out, *f),
        Value::String(s) => write_string(out, s),
        Value::List(l) => write_list(out, l),
        Value::Data(d) => {
            out.push(b'<');
            let start = out.len();
            let len = base64::encoded_len(d.len(), true).unwrap_or(0);
            out.resize(start + len, 0);
            let written = base64::engine::general_purpose::STANDARD
                .encode_slice(d, &mut out[start..])
                .unwrap_or(0);
            out.truncate(start + written);
            out.push(b'>');
        }
    }
}

/// Rust's `Display` for `f64` never uses an exponent and prints the shortest
/// text that reads back to the same value; it omits `.0` for integral values,
/// which the Float grammar requires.
fn write_float(out: &mut Vec<u8>, f: f64) {
    let start = out.len();
    let _ = write!(out, "{f}");
    if f.is_finite() && !out[start..].contains(&b'.') {
        out.extend_from_slice(b".0");
    }
}

fn write_string(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    for &c in s.as_bytes() {
        match c {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'"' => out.extend_from_slice(b"\\\""),
            b'\n' => out.extend_from_slice(b"\\n"),
            _ => out.push(c),
        }
    }
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_are_written_like_display() {
        for n in [0, 1, -1, 9, 10, -10, i64::MAX, i64::MIN, 4_294_967_295] {
            let mut out = Vec::new();
            write_value(&mut out, &Value::Integer(n));
            assert_eq!(String::from_utf8(out).unwrap(), n.to_string());
        }
    }

    #[test]
    fn a_view_encodes_exactly_as_its_message() {
        let msg = Message {
            header: super::super::Header {
                seq: u32::MAX,
                timestamp: 1_700_000_000_123,
                kind: MessageType::Reliable,
                src: Address::parse("(app:x id:1-1@127.0.0.1)").unwrap(),
                dst: Address::parse("(app:y)").unwrap(),
                acks: vec![0, 7, u32::MAX],
            },
            commands: vec![Command::new("a.b", vec![Value::Integer(-3)])],
        };
        for framing in [Framing::Lf, Framing::Crlf] {
            let mut via_view = Vec::new();
            msg.view().encode_into(&mut via_view, framing).unwrap();
            let text = String::from_utf8(via_view).unwrap();
            assert!(text.starts_with("mbus/1.0 4294967295 1700000000123 R (app:x id:1-1@127.0.0.1) (app:y) (0 7 4294967295)"), "{text}");
            assert_eq!(Message::parse(text.as_bytes()).unwrap(), msg);
        }
    }
}
