//! Interoperability hazards with UCL peers:
//! UCL truncates datagrams longer than 1500 bytes (then fails their HMAC) and
//! aborts on an Integer outside 32 bits.

use std::fmt;

use super::{Message, Value, UCL_MAX_DATAGRAM};

/// Something a UCL peer (RAT, VIC, SDR) cannot take.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum UclHazard {
    /// The datagram is longer than UCL's 1500-byte receive buffer.
    Oversized {
        /// The datagram's length.
        len: usize,
    },
    /// An Integer outside the 32-bit range, in the named command.
    WideInteger {
        /// The command carrying it.
        command: String,
    },
}

impl fmt::Display for UclHazard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UclHazard::Oversized { len } => write!(
                f,
                "datagram of {len} bytes exceeds {UCL_MAX_DATAGRAM}: UCL peers truncate it and drop it"
            ),
            UclHazard::WideInteger { command } => write!(
                f,
                "{command} carries an Integer outside 32 bits: UCL peers abort on it"
            ),
        }
    }
}

impl Message {
    /// The UCL hazards of sending this message as a datagram of `datagram_len` bytes.
    pub fn ucl_hazards(&self, datagram_len: usize) -> Vec<UclHazard> {
        let mut out = Vec::new();
        if datagram_len > UCL_MAX_DATAGRAM {
            out.push(UclHazard::Oversized { len: datagram_len });
        }
        for cmd in &self.commands {
            if cmd.has_wide_integer() {
                out.push(UclHazard::WideInteger {
                    command: cmd.name.clone(),
                });
            }
        }
        out
    }
}

impl super::Command {
    /// True if an argument is an Integer outside 32 bits, on which UCL peers
    /// abort.
    pub fn has_wide_integer(&self) -> bool {
        self.args.iter().any(is_wide)
    }
}

fn is_wide(v: &Value) -> bool {
    match v {
        Value::Integer(i) => i32::try_from(*i).is_err(),
        Value::BigInteger(_) => true,
        Value::List(l) => l.iter().any(is_wide),
        _ => false,
    }
}

impl Message {
    /// What this received message holds that RFC 3259's grammar does not
    /// allow but deployed peers send and we accept: Symbols with `/`, a
    /// source address without `id` and TimeStamps in seconds (pyMbus). One
    /// line each, for `rmbus monitor`.
    pub fn outside_rfc(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.header.src.id().is_none() {
            out.push(format!(
                "source {} has no id element (RFC 3259 §4.1 makes it mandatory; pyMbus \
                 leaves it out): acknowledged to that exact address",
                self.header.src
            ));
        }
        if self.header.timestamp_in_seconds() {
            out.push(format!(
                "TimeStamp {} is in seconds, not milliseconds (pyMbus): read as {} ms",
                self.header.timestamp,
                self.header.timestamp_ms()
            ));
        }
        for cmd in &self.commands {
            let mut wide = Vec::new();
            collect_wide_symbols(&cmd.args, &mut wide);
            for s in wide {
                out.push(format!(
                    "{}: Symbol {s} is outside RFC 3259's grammar (pyMbus writes '/'); \
                     we would send it as a String",
                    cmd.name
                ));
            }
        }
        out
    }
}

fn collect_wide_symbols<'a>(values: &'a [Value], out: &mut Vec<&'a str>) {
    for v in values {
        match v {
            Value::Symbol(s) if !super::value::is_symbol(s) => out.push(s),
            Value::List(l) => collect_wide_symbols(l, out),
            _ => {}
        }
    }
}
