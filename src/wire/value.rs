//! Argument values (RFC 3259 §5.3).

use std::fmt;

/// One argument of a command (RFC 3259 §5.3).
///
/// The six Mbus types, plus [`Value::BigInteger`] for an Integer that does not fit
/// 64 bits (the RFC sets no range): it keeps the decimal text so nothing is lost.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `-?[0-9]+` within `i64`.
    Integer(i64),
    /// `-?[0-9]+` outside `i64`, as its decimal text (optional `-`, then digits).
    BigInteger(String),
    /// `-?[0-9]+\.[0-9]+`; must be finite to be encoded.
    Float(f64),
    /// A double-quoted UTF-8 string (escapes `\\`, `\"`, `\n`); must not contain NUL.
    String(String),
    /// `[A-Za-z][A-Za-z0-9_.-]*`, e.g. `OK`, `sym_bol-1.x`. On receipt also
    /// with `/` (pyMbus); one that is not an RFC Symbol is sent as a String.
    Symbol(String),
    /// A parenthesised, whitespace-separated list of values, possibly nested.
    List(Vec<Value>),
    /// Binary data, written as `<base64>`.
    Data(Vec<u8>),
}

impl Value {
    /// A String value.
    pub fn string(s: impl Into<String>) -> Value {
        Value::String(s.into())
    }

    /// A Symbol value (validity is checked when the message is encoded).
    pub fn symbol(s: impl Into<String>) -> Value {
        Value::Symbol(s.into())
    }

    /// The integer, if this is an [`Value::Integer`].
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Integer(i) => Some(*i),
            _ => None,
        }
    }

    /// The text of a String or Symbol.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) | Value::Symbol(s) => Some(s),
            _ => None,
        }
    }

    /// How many bytes the value takes in a message.
    pub fn encoded_len(&self) -> usize {
        let mut out = Vec::new();
        super::encode::write_value(&mut out, self);
        out.len()
    }

    /// The elements, if this is a List.
    pub fn as_list(&self) -> Option<&[Value]> {
        match self {
            Value::List(l) => Some(l),
            _ => None,
        }
    }
}

impl From<i64> for Value {
    fn from(i: i64) -> Self {
        Value::Integer(i)
    }
}

impl From<f64> for Value {
    fn from(f: f64) -> Self {
        Value::Float(f)
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::String(s.to_owned())
    }
}

impl From<Vec<Value>> for Value {
    fn from(l: Vec<Value>) -> Self {
        Value::List(l)
    }
}

/// Prints the value in Mbus syntax (a non-finite Float prints as Rust does, and
/// would be refused by the encoder).
impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = Vec::new();
        super::encode::write_value(&mut out, self);
        f.write_str(&String::from_utf8_lossy(&out))
    }
}

/// True if `s` is a valid Symbol: `ALPHA *(ALPHA / DIGIT / "_" / "-" / ".")`.
pub(crate) fn is_symbol(s: &str) -> bool {
    let b = s.as_bytes();
    match b.first() {
        Some(c) if c.is_ascii_alphabetic() => b[1..].iter().copied().all(is_symbol_byte),
        _ => false,
    }
}

/// True for the bytes that may follow the first letter of a Symbol.
pub(crate) fn is_symbol_byte(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b'-' || c == b'.'
}

/// True if `s` is `-?[0-9]+`.
pub(crate) fn is_integer_text(s: &str) -> bool {
    let digits = s.strip_prefix('-').unwrap_or(s);
    !digits.is_empty() && digits.bytes().all(|c| c.is_ascii_digit())
}
