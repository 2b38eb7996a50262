//! The JSON record of one datagram: what `decode --json` prints, and what
//! `monitor --json` prints for every datagram it sees.
//!
//! Accepted: `{"auth":"ok","seq":N,"timestamp":N,"reliable":bool,"src":"(…)",
//! "dst":"(…)","acks":[…],"commands":[{"name":"…","args":[…]}]}` with each value
//! tagged (`{"int":42}`, `{"float":3.25}`, `{"str":"…"}`, `{"sym":"…"}`,
//! `{"data":"<base64>"}`, `{"list":[…]}`; an Integer beyond 64 bits is
//! `{"int":"<digits>"}`). Rejected: `{"auth":"<code>","reason":"…","offset":N}`.

use crate::auth::Rejection;
use crate::wire::{Message, Value};
use base64::Engine as _;
use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Serialize, Serializer};

/// The record of an accepted datagram.
#[derive(Serialize)]
pub struct Accepted<'a> {
    auth: &'static str,
    seq: u32,
    timestamp: u64,
    reliable: bool,
    src: String,
    dst: String,
    acks: &'a [u32],
    commands: Vec<CommandRecord<'a>>,
}

#[derive(Serialize)]
struct CommandRecord<'a> {
    name: &'a str,
    args: Tagged<'a>,
}

/// A list of values, each serialized as a one-key object naming its type.
pub struct Tagged<'a>(pub &'a [Value]);

impl Serialize for Tagged<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.0.len()))?;
        for v in self.0 {
            seq.serialize_element(&TaggedValue(v))?;
        }
        seq.end()
    }
}

struct TaggedValue<'a>(&'a Value);

impl Serialize for TaggedValue<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(1))?;
        match self.0 {
            Value::Integer(i) => map.serialize_entry("int", i)?,
            Value::BigInteger(digits) => map.serialize_entry("int", digits)?,
            Value::Float(f) => map.serialize_entry("float", f)?,
            Value::String(text) => map.serialize_entry("str", text)?,
            Value::Symbol(name) => map.serialize_entry("sym", name)?,
            Value::Data(bytes) => map.serialize_entry(
                "data",
                &base64::engine::general_purpose::STANDARD.encode(bytes),
            )?,
            Value::List(items) => map.serialize_entry("list", &Tagged(items))?,
        }
        map.end()
    }
}

impl<'a> Accepted<'a> {
    /// The record of `msg`, its digest checked.
    pub fn new(msg: &'a Message) -> Accepted<'a> {
        Accepted::with_auth(msg, "ok")
    }

    /// A message read without keys: `"auth":"unverified"`.
    pub fn unverified(msg: &'a Message) -> Accepted<'a> {
        Accepted::with_auth(msg, "unverified")
    }

    fn with_auth(msg: &'a Message, auth: &'static str) -> Accepted<'a> {
        let h = &msg.header;
        Accepted {
            auth,
            seq: h.seq,
            timestamp: h.timestamp,
            reliable: h.kind == crate::wire::MessageType::Reliable,
            src: h.src.to_string(),
            dst: h.dst.to_string(),
            acks: &h.acks,
            commands: msg
                .commands
                .iter()
                .map(|c| CommandRecord {
                    name: &c.name,
                    args: Tagged(&c.args),
                })
                .collect(),
        }
    }
}

/// The record of a rejected datagram.
#[derive(Serialize)]
pub struct Rejected {
    auth: &'static str,
    reason: String,
    offset: usize,
}

impl Rejected {
    /// The record of a datagram refused for `rejection`.
    pub fn new(rejection: &Rejection) -> Rejected {
        Rejected {
            auth: rejection.code(),
            reason: rejection.reason(),
            offset: rejection.offset(),
        }
    }
}

/// One line of JSON (serializing these records cannot fail).
pub fn to_line<T: Serialize>(record: &T) -> String {
    serde_json::to_string(record).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
}
