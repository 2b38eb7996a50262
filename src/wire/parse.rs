//! The hand-written cursor parser (RFC 3259 §4, §5.2, §5.3), accepting too the
//! forms the deployed peers send (runs of whitespace, padded numbers, `cmd()`,
//! and pyMbus's Symbols with `/` and source addresses without `id`, see
//! [`Message::outside_rfc`]).
//!
//! It reads the bytes once, left to right, allocates only what it returns, never
//! recurses deeper than [`MAX_DEPTH`], and reports the first violation with its
//! byte offset and the grammar [`Rule`] it breaks. Inside a message CR, LF, SP
//! and HTAB are all whitespace; a trailing newline and trailing NULs are ignored.

use std::fmt;

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;

use super::address::{MAX_TAG_LEN, MAX_VALUE_LEN};
use super::{
    Address, Command, Header, Message, MessageType, Value, MAX_DATAGRAM, MAX_DEPTH, PROTOCOL_ID,
};

/// Base64 as the Data grammar has it: standard alphabet, `=` padding required.
/// Non-zero trailing bits are tolerated (the grammar does not forbid them).
const DATA_B64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::RequireCanonical)
        .with_decode_allow_trailing_bits(true),
);

/// The grammar rule a malformed message breaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Rule {
    /// The input is larger than [`MAX_DATAGRAM`].
    TooLarge,
    /// The message does not start with `mbus/1.0` followed by whitespace.
    ProtocolId,
    /// Whitespace is required here (between header fields, before a command,
    /// between list elements).
    Whitespace,
    /// SeqNum: 1 to 10 digits, at most 4294967295.
    SeqNum,
    /// TimeStamp: 1 to 13 digits.
    TimeStamp,
    /// MessageType: `R` or `U`.
    MessageType,
    /// An address: `(` elements `)`.
    Address,
    /// An address tag: 1 to 32 ASCII letters, then `:`.
    AddressTag,
    /// An address value: 1 to 64 printable ASCII characters other than space, `(`, `)`.
    AddressValue,
    /// The same tag twice in one address.
    DuplicateTag,
    /// The ack list: `(` SeqNums `)`.
    AckList,
    /// A command name: a Symbol.
    CommandName,
    /// A command's argument list: `(` … `)` after the name.
    ArgList,
    /// A list: `(` values separated by whitespace `)`.
    List,
    /// A value must start with a digit, `-`, `"`, `(`, `<` or a letter.
    Value,
    /// Integer: `-?[0-9]+`.
    Integer,
    /// Float: `-?[0-9]+\.[0-9]+`, finite.
    Float,
    /// String: `"` UTF-8 without NUL, escapes `\\` `\"` `\n` `"`.
    String,
    /// Data: `<` padded base64 `>`.
    Data,
    /// Lists nested deeper than [`MAX_DEPTH`].
    NestingTooDeep,
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Rule::TooLarge => "message larger than 65507 bytes",
            Rule::ProtocolId => "protocol id: expected \"mbus/1.0\" and whitespace",
            Rule::Whitespace => "whitespace expected",
            Rule::SeqNum => "SeqNum: 1 to 10 digits, at most 4294967295",
            Rule::TimeStamp => "TimeStamp: 1 to 13 digits",
            Rule::MessageType => "MessageType: R or U",
            Rule::Address => "address: '(' tag:value elements ')'",
            Rule::AddressTag => "address tag: 1 to 32 letters followed by ':'",
            Rule::AddressValue => {
                "address value: 1 to 64 printable ASCII characters other than space, '(' and ')'"
            }
            Rule::DuplicateTag => "address: a tag appears twice",
            Rule::AckList => "AckList: '(' SeqNums separated by whitespace ')'",
            Rule::CommandName => "command name: a Symbol (letter, then letters, digits, _ - .)",
            Rule::ArgList => "command: '(' argument list expected after the name",
            Rule::List => "list: values separated by whitespace, closed by ')'",
            Rule::Value => "value: expected a number, string, list, data or symbol",
            Rule::Integer => "Integer: optional '-' then digits",
            Rule::Float => "Float: optional '-', digits, '.', digits, finite",
            Rule::String => "String: '\"', UTF-8 without NUL, '\"'",
            Rule::Data => "Data: '<' padded base64 '>'",
            Rule::NestingTooDeep => "lists nested too deeply",
        })
    }
}

/// A malformed message: where, and which rule it breaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("malformed at byte {offset}: {rule}")]
pub struct ParseError {
    /// Byte offset of the problem in the parsed input.
    pub offset: usize,
    /// The grammar rule broken there.
    pub rule: Rule,
}

impl Message {
    /// Parses one plaintext message (everything after the digest line, already
    /// decrypted). See the module docs for what is accepted.
    pub fn parse(bytes: &[u8]) -> Result<Message, ParseError> {
        if bytes.len() > MAX_DATAGRAM {
            return Err(ParseError {
                offset: MAX_DATAGRAM,
                rule: Rule::TooLarge,
            });
        }
        let end = bytes.iter().rposition(|&c| c != 0).map_or(0, |i| i + 1);
        Parser::new(bytes, end).message()
    }
}

/// Parses a standalone address, allowing whitespace around it.
pub(crate) fn parse_address_text(bytes: &[u8]) -> Result<Address, ParseError> {
    let mut p = Parser::new(bytes, bytes.len().min(MAX_DATAGRAM));
    p.skip_ws();
    let addr = p.address()?;
    p.skip_ws();
    if p.pos != bytes.len() {
        return Err(p.err(p.pos, Rule::Address));
    }
    Ok(addr)
}

/// Parses a standalone value (e.g. an argument list given on a command line),
/// allowing whitespace around it.
pub(crate) fn parse_value_text(bytes: &[u8]) -> Result<Value, ParseError> {
    let mut p = Parser::new(bytes, bytes.len().min(MAX_DATAGRAM));
    p.skip_ws();
    let v = p.value(0)?;
    p.skip_ws();
    if p.pos != bytes.len() {
        return Err(p.err(p.pos, Rule::Value));
    }
    Ok(v)
}

/// True if `text` (a string's body) holds a closing `"` that no backslash
/// escapes.
fn closed(text: &str) -> bool {
    let mut escaped = false;
    for c in text.chars() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '"' => return true,
            _ => {}
        }
    }
    false
}

impl ParseError {
    /// The error of [`Value::parse`] on `input` as a person reads it: what
    /// went wrong in words where the rule alone says little (text after a
    /// complete value, a string without its closing quote, a string in
    /// single quotes), with the byte offset.
    pub fn explain(&self, input: &str) -> String {
        let at = self.offset;
        let rest = input.get(at..).unwrap_or_default();
        let before = input.get(..at).unwrap_or_default();
        match self.rule {
            Rule::Value if before.trim().is_empty() && rest.starts_with('\'') => format!(
                "at byte {at}: strings are written in double quotes (\"x\"), not single ('x')"
            ),
            Rule::Value | Rule::Whitespace
                if !before.trim().is_empty() && Value::parse(before).is_ok() =>
            {
                let what = match Value::parse(before) {
                    Ok(Value::List(_)) => "list",
                    _ => "value",
                };
                format!("at byte {at}: text after the {what}: {rest:?}")
            }
            Rule::String if rest.starts_with('"') && !closed(&rest[1..]) => {
                format!("at byte {at}: unterminated string (no closing '\"')")
            }
            Rule::Value if rest.starts_with('\'') => format!(
                "at byte {at}: strings are written in double quotes (\"x\"), not single ('x')"
            ),
            _ => self.to_string(),
        }
    }
}

impl Value {
    /// Parses one value written in Mbus syntax, e.g. `(1 "x" (2 3))`.
    pub fn parse(text: &str) -> Result<Value, ParseError> {
        parse_value_text(text.as_bytes())
    }
}

/// Byte classes, looked up once per byte in the hot loops.
const WS: u8 = 1;
const ALPHA: u8 = 2;
const SYMBOL: u8 = 4;
/// What a received Symbol value may hold beyond RFC 3259's grammar: `/`,
/// as pyMbus writes (`gex/panel/plugin`).
const SYMBOL_WIDE: u8 = 16;
const ADDR_VALUE: u8 = 8;

const CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut c = 0;
    while c < 256 {
        let b = c as u8;
        let mut k = 0;
        if matches!(b, b' ' | b'\t' | b'\r' | b'\n') {
            k |= WS;
        }
        if b.is_ascii_alphabetic() {
            k |= ALPHA;
        }
        if b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.') {
            k |= SYMBOL | SYMBOL_WIDE;
        }
        if b == b'/' {
            k |= SYMBOL_WIDE;
        }
        if matches!(b, 0x21..=0x27 | 0x2A..=0x7E) {
            k |= ADDR_VALUE;
        }
        t[c] = k;
        c += 1;
    }
    t
};

fn class(c: u8, k: u8) -> bool {
    CLASS[c as usize] & k != 0
}

/// The `(tag, value)` byte pairs of already-validated address text.
fn elements(text: &[u8]) -> impl Iterator<Item = (&[u8], &[u8])> {
    text.split(|&c| is_ws(c))
        .filter(|e| !e.is_empty())
        .map(|e| match e.iter().position(|&c| c == b':') {
            Some(i) => (&e[..i], &e[i + 1..]),
            None => (e, &e[e.len()..]),
        })
}

fn is_ws(c: u8) -> bool {
    class(c, WS)
}

struct Parser<'a> {
    buf: &'a [u8],
    /// `buf` as text when all of it is valid UTF-8 (the normal case): then no
    /// slice needs checking again.
    text: Option<&'a str>,
    pos: usize,
    /// One past the last byte that counts (trailing NULs excluded).
    end: usize,
}

impl<'a> Parser<'a> {
    fn new(buf: &'a [u8], end: usize) -> Parser<'a> {
        Parser {
            buf,
            text: std::str::from_utf8(buf).ok(),
            pos: 0,
            end,
        }
    }

    /// The bytes `from..to`, which the caller has checked to be ASCII (or, for
    /// string contents, delimited by ASCII bytes), as text.
    fn slice(&self, from: usize, to: usize) -> Result<&'a str, usize> {
        match self.text {
            Some(t) => t.get(from..to).ok_or(from),
            None => std::str::from_utf8(&self.buf[from..to]).map_err(|e| from + e.valid_up_to()),
        }
    }

    /// Like [`Parser::slice`] for bytes already known to be ASCII.
    fn ascii(&self, from: usize, to: usize) -> &'a str {
        self.slice(from, to).unwrap_or_default()
    }
}

impl Parser<'_> {
    fn err(&self, offset: usize, rule: Rule) -> ParseError {
        ParseError { offset, rule }
    }

    fn peek(&self) -> Option<u8> {
        if self.pos < self.end {
            Some(self.buf[self.pos])
        } else {
            None
        }
    }

    /// Skips whitespace; returns how many bytes it skipped.
    fn skip_ws(&mut self) -> usize {
        let start = self.pos;
        self.pos += self.buf[start..self.end]
            .iter()
            .take_while(|&&c| is_ws(c))
            .count();
        self.pos - start
    }

    /// Advances over bytes of class `k`; returns how many.
    fn skip_class(&mut self, k: u8) -> usize {
        let start = self.pos;
        self.pos += self.buf[start..self.end]
            .iter()
            .take_while(|&&c| class(c, k))
            .count();
        self.pos - start
    }

    fn require_ws(&mut self) -> Result<(), ParseError> {
        if self.skip_ws() == 0 {
            return Err(self.err(self.pos, Rule::Whitespace));
        }
        Ok(())
    }

    /// Reads 1..=`max` digits as a number that must end at a non-alphanumeric byte.
    fn number(&mut self, max: usize, limit: u64, rule: Rule) -> Result<u64, ParseError> {
        let start = self.pos;
        let mut n: u64 = 0;
        while let Some(c) = self.peek().filter(u8::is_ascii_digit) {
            if self.pos - start == max {
                return Err(self.err(start, rule));
            }
            n = n * 10 + u64::from(c - b'0');
            self.pos += 1;
        }
        let followed_badly = self.peek().is_some_and(|c| c.is_ascii_alphanumeric());
        if self.pos == start || n > limit || followed_badly {
            return Err(self.err(start, rule));
        }
        Ok(n)
    }

    fn message(&mut self) -> Result<Message, ParseError> {
        let id = PROTOCOL_ID.as_bytes();
        if !self.buf[..self.end].starts_with(id)
            || !self.buf.get(id.len()).is_some_and(|&c| is_ws(c))
        {
            return Err(self.err(0, Rule::ProtocolId));
        }
        self.pos = id.len();
        self.require_ws()?;
        let seq = self.number(10, u64::from(u32::MAX), Rule::SeqNum)? as u32;
        self.require_ws()?;
        let timestamp = self.number(13, u64::MAX, Rule::TimeStamp)?;
        self.require_ws()?;
        let kind = match self.peek() {
            Some(b'R') => MessageType::Reliable,
            Some(b'U') => MessageType::Unreliable,
            _ => return Err(self.err(self.pos, Rule::MessageType)),
        };
        self.pos += 1;
        if !self.peek().is_some_and(is_ws) {
            return Err(self.err(self.pos - 1, Rule::MessageType));
        }
        self.skip_ws();
        // A source without `id` breaks RFC 3259 §4.1 but is what pyMbus
        // sends: it is accepted (and flagged by `Message::outside_rfc`).
        let src = self.address()?;
        self.require_ws()?;
        let dst = self.address()?;
        self.require_ws()?;
        let acks = self.ack_list()?;
        // A guess at the command count from the length left (a short
        // command line is about 20 octets), so that the vector seldom grows;
        // counting the lines costs more than a wrong guess.
        let mut commands = Vec::with_capacity(((self.end - self.pos) / 20).clamp(1, 32));
        loop {
            let skipped = self.skip_ws();
            if self.pos >= self.end {
                break;
            }
            if skipped == 0 {
                return Err(self.err(self.pos, Rule::Whitespace));
            }
            commands.push(self.command()?);
        }
        Ok(Message {
            header: Header {
                seq,
                timestamp,
                kind,
                src,
                dst,
                acks,
            },
            commands,
        })
    }

    /// An address.
    fn address(&mut self) -> Result<Address, ParseError> {
        let open = self.pos;
        if self.peek() != Some(b'(') {
            return Err(self.err(open, Rule::Address));
        }
        // Values cannot hold parentheses, so the first ')' closes the address.
        let close = match self.buf[open..self.end].iter().position(|&c| c == b')') {
            Some(i) => open + i,
            None => return Err(self.err(open, Rule::Address)),
        };
        self.pos += 1;
        // The first tags seen, as spans of `buf`, to find duplicates without
        // allocating; longer addresses fall back to scanning what came before.
        let mut tags = [(0usize, 0usize); 16];
        let mut count = 0;
        // Canonical: single spaces between elements and none inside the
        // parentheses, as every known sender writes; then the text is copied
        // in one piece.
        let mut canonical = true;
        loop {
            let skipped = self.skip_ws();
            if self.pos >= close {
                canonical &= skipped == 0;
                break;
            }
            canonical &=
                skipped == usize::from(count > 0) && (count == 0 || self.buf[self.pos - 1] == b' ');
            let tag_at = self.pos;
            // No ALPHA byte is ')', so this stops at `close` at the latest.
            let tag_len = self.skip_class(ALPHA);
            if tag_len == 0 || tag_len > MAX_TAG_LEN || self.buf[self.pos] != b':' {
                return Err(self.err(tag_at, Rule::AddressTag));
            }
            self.pos += 1;
            let value_at = self.pos;
            // Value bytes exclude whitespace and ')': this stops at the end of
            // the value, at an invalid byte, or at `close`.
            let value_len = self.skip_class(ADDR_VALUE);
            if self.pos < close && !is_ws(self.buf[self.pos]) {
                return Err(self.err(self.pos, Rule::AddressValue));
            }
            if value_len == 0 || value_len > MAX_VALUE_LEN {
                return Err(self.err(value_at, Rule::AddressValue));
            }
            let tag = &self.buf[tag_at..tag_at + tag_len];
            let duplicate = if count < tags.len() {
                tags[count] = (tag_at, tag_len);
                tags[..count]
                    .iter()
                    .any(|&(at, len)| self.buf[at..at + len] == *tag)
            } else {
                elements(&self.buf[open + 1..tag_at]).any(|(t, _)| t == tag)
            };
            if duplicate {
                return Err(self.err(tag_at, Rule::DuplicateTag));
            }
            count += 1;
        }
        // Everything between the parentheses is ASCII, checked above.
        let inner = self.ascii(open + 1, close);
        let addr = if canonical {
            Address::from_canonical(inner.to_owned(), count)
        } else {
            let mut addr = Address::with_capacity(inner.len());
            for element in inner.split_ascii_whitespace() {
                let (tag, value) = element.split_once(':').unwrap_or((element, ""));
                addr.push_unchecked(tag, value);
            }
            addr
        };
        self.pos = close + 1;
        Ok(addr)
    }

    fn ack_list(&mut self) -> Result<Vec<u32>, ParseError> {
        let open = self.pos;
        if self.peek() != Some(b'(') {
            return Err(self.err(open, Rule::AckList));
        }
        self.pos += 1;
        let mut acks = Vec::new();
        loop {
            let skipped = self.skip_ws();
            match self.peek() {
                None => return Err(self.err(open, Rule::AckList)),
                Some(b')') => {
                    self.pos += 1;
                    return Ok(acks);
                }
                Some(c) if !c.is_ascii_digit() || (skipped == 0 && !acks.is_empty()) => {
                    return Err(self.err(self.pos, Rule::AckList));
                }
                Some(_) => acks.push(self.number(10, u64::from(u32::MAX), Rule::AckList)? as u32),
            }
        }
    }

    fn command(&mut self) -> Result<Command, ParseError> {
        let start = self.pos;
        if !self.peek().is_some_and(|c| c.is_ascii_alphabetic()) {
            return Err(self.err(start, Rule::CommandName));
        }
        self.skip_class(SYMBOL);
        let name = self.ascii(start, self.pos).to_owned();
        if !self.peek().is_some_and(|c| is_ws(c) || c == b'(') {
            return Err(self.err(start, Rule::CommandName));
        }
        self.skip_ws();
        if self.peek() != Some(b'(') {
            return Err(self.err(self.pos, Rule::ArgList));
        }
        let args = self.list(1)?;
        Ok(Command { name, args })
    }

    /// A list starting at the current `(`, at nesting depth `depth`.
    fn list(&mut self, depth: usize) -> Result<Vec<Value>, ParseError> {
        let open = self.pos;
        if depth > MAX_DEPTH {
            return Err(self.err(open, Rule::NestingTooDeep));
        }
        self.pos += 1;
        let mut values = Vec::new();
        loop {
            let skipped = self.skip_ws();
            match self.peek() {
                // Unclosed: the ')' is missing where the input ends.
                None => return Err(self.err(self.pos, Rule::List)),
                Some(b')') => {
                    self.pos += 1;
                    return Ok(values);
                }
                Some(_) if skipped == 0 && !values.is_empty() => {
                    return Err(self.err(self.pos, Rule::List));
                }
                Some(_) => values.push(self.value(depth)?),
            }
        }
    }

    fn value(&mut self, depth: usize) -> Result<Value, ParseError> {
        match self.peek() {
            Some(b'(') => Ok(Value::List(self.list(depth + 1)?)),
            Some(b'"') => self.string(),
            Some(b'<') => self.data(),
            Some(c) if c == b'-' || c.is_ascii_digit() => self.numeric(),
            Some(c) if c.is_ascii_alphabetic() => {
                let start = self.pos;
                self.skip_class(SYMBOL_WIDE);
                Ok(Value::Symbol(self.ascii(start, self.pos).to_owned()))
            }
            _ => Err(self.err(self.pos, Rule::Value)),
        }
    }

    /// An Integer or Float. The whole run of symbol-like bytes is taken as the
    /// token, so `1abc`, `1e3` and `5.` are errors rather than two values.
    fn numeric(&mut self) -> Result<Value, ParseError> {
        let start = self.pos;
        while self.peek().is_some_and(|c| class(c, SYMBOL) || c == b'+') {
            self.pos += 1;
        }
        let token = self.ascii(start, self.pos);
        let unsigned = token.strip_prefix('-').unwrap_or(token);
        let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit());
        match unsigned.split_once('.') {
            None if all_digits(unsigned) => Ok(match token.parse::<i64>() {
                Ok(i) => Value::Integer(i),
                Err(_) => Value::BigInteger(token.to_owned()),
            }),
            None => Err(self.err(start, Rule::Integer)),
            Some((int, frac)) if all_digits(int) && all_digits(frac) => {
                match token.parse::<f64>() {
                    Ok(f) if f.is_finite() => Ok(Value::Float(f)),
                    _ => Err(self.err(start, Rule::Float)),
                }
            }
            Some(_) => Err(self.err(start, Rule::Float)),
        }
    }

    fn string(&mut self) -> Result<Value, ParseError> {
        let open = self.pos;
        let body = open + 1;
        let rest = &self.buf[body..self.end];
        let stop = rest.iter().position(|&c| c == b'"' || c == b'\\' || c == 0);
        // Fast path: no escapes.
        if let Some(i) = stop.filter(|&i| rest[i] == b'"') {
            let s = self
                .slice(body, body + i)
                .map_err(|at| self.err(at, Rule::String))?;
            self.pos = body + i + 1;
            return Ok(Value::String(s.to_owned()));
        }
        let mut out = Vec::with_capacity(rest.len().min(64));
        let mut i = 0;
        loop {
            match rest.get(i) {
                None => return Err(self.err(open, Rule::String)),
                Some(0) => return Err(self.err(body + i, Rule::String)),
                Some(b'"') => break,
                Some(b'\\') => {
                    match rest.get(i + 1) {
                        None => return Err(self.err(open, Rule::String)),
                        Some(0) => return Err(self.err(body + i + 1, Rule::String)),
                        Some(b'n') => out.push(b'\n'),
                        // UCL escapes other characters (`\ `): any `\X` reads as X.
                        Some(&c) => out.push(c),
                    }
                    i += 2;
                }
                Some(&c) => {
                    out.push(c);
                    i += 1;
                }
            }
        }
        let s = String::from_utf8(out).map_err(|_| self.err(open, Rule::String))?;
        self.pos = body + i + 1;
        Ok(Value::String(s))
    }

    fn data(&mut self) -> Result<Value, ParseError> {
        let open = self.pos;
        let rest = &self.buf[open + 1..self.end];
        let Some(len) = rest.iter().position(|&c| c == b'>') else {
            return Err(self.err(open, Rule::Data));
        };
        let bytes = DATA_B64
            .decode(&rest[..len])
            .map_err(|_| self.err(open, Rule::Data))?;
        self.pos = open + 1 + len + 1;
        Ok(Value::Data(bytes))
    }
}

#[cfg(test)]
mod explain_tests {
    use super::*;

    #[test]
    fn value_errors_read_as_sentences() {
        let explain = |t: &str| Value::parse(t).unwrap_err().explain(t);
        assert_eq!(explain("(1 2))"), "at byte 5: text after the list: \")\"");
        assert_eq!(explain("()x"), "at byte 2: text after the list: \"x\"");
        assert_eq!(
            explain("(1 \"x)"),
            "at byte 3: unterminated string (no closing '\"')"
        );
        assert!(
            explain("('x')").contains("double quotes"),
            "{}",
            explain("('x')")
        );
        assert!(explain("(.5)").contains("value: expected a number"));
        assert_eq!(
            explain("abc def"),
            "at byte 4: text after the value: \"def\""
        );
        assert!(explain("(\"x\\\")").contains("unterminated string"));
    }
}
