//! The CMBS `message` kind as it travels in `cmbs.message.deliver`: id,
//! layer, flags, path history, content and the layer's targeting fields.

use crate::wire::Value;

use super::code::{Code, Refusal};
use super::layer::Layer;
use super::map::{Fields, JsonFields, MapWriter};
use super::topic::validate_topic;

/// The largest `cmbs.message.deliver` argument we send, in encoded bytes: it
/// leaves room in one datagram (65,507 bytes) for the header, the RPC META
/// and a cipher's padding.
pub const MAX_DELIVER_BYTES: usize = 60_000;

/// What a message carries: a JSON value (sent as an Mbus String holding the
/// JSON text) or bytes (sent as Data).
#[derive(Debug, Clone, PartialEq)]
pub enum Content {
    /// Any JSON value.
    Json(serde_json::Value),
    /// Binary data.
    Data(Vec<u8>),
}

impl Content {
    /// The content as an Mbus value.
    pub fn to_value(&self) -> Value {
        match self {
            Content::Json(j) => Value::String(j.to_string()),
            Content::Data(d) => Value::Data(d.clone()),
        }
    }

    /// Reads [`Content::to_value`]'s form.
    pub fn from_value(v: &Value) -> Result<Content, String> {
        match v {
            Value::String(s) => serde_json::from_str(s)
                .map(Content::Json)
                .map_err(|e| format!("the content is not JSON: {e}")),
            Value::Data(d) => Ok(Content::Data(d.clone())),
            _ => Err("the content must be a String holding JSON, or Data".into()),
        }
    }

    /// The content as JSON: itself, or bytes as a base64 string.
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Content::Json(j) => j.clone(),
            Content::Data(d) => {
                use base64::Engine;
                serde_json::Value::String(base64::engine::general_purpose::STANDARD.encode(d))
            }
        }
    }

    /// The bytes an execute handler reads on stdin: JSON text, or the bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        match self {
            Content::Json(j) => j.to_string().into_bytes(),
            Content::Data(d) => d.clone(),
        }
    }
}

/// One CMBS message.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    /// Its id (a UUID string), the same in every retry.
    pub id: String,
    /// Its layer (`cmbs_layer`).
    pub layer: Layer,
    /// The recipient runs its execute handler on it.
    pub executable: bool,
    /// It may be sent (`false`: only executed locally).
    pub sendable: bool,
    /// The recipient stores it before answering.
    pub storable: bool,
    /// The members it went through, oldest first.
    pub path_history: Vec<String>,
    /// What it carries (`message_content`).
    pub content: Content,
    /// What the execute handler answered (`result`); set by the recipient.
    pub result: Option<serde_json::Value>,
    /// L1: the recipient's `l1_socket` or member id (`l1_socket_receiver_member`).
    pub receiver: Option<String>,
    /// L3.1 and L4: the providers it is for.
    pub providers: Vec<String>,
    /// L3.2 and L4: its topics.
    pub topics: Vec<String>,
}

impl Message {
    /// A sendable message of `layer` with `content`, no flags, no targets.
    pub fn new(id: &str, layer: Layer, content: Content) -> Message {
        Message {
            id: id.to_owned(),
            layer,
            executable: false,
            sendable: true,
            storable: false,
            path_history: Vec::new(),
            content,
            result: None,
            receiver: None,
            providers: Vec::new(),
            topics: Vec::new(),
        }
    }

    /// The argument of `cmbs.message.deliver`.
    pub fn to_value(&self) -> Value {
        // Fields at their default (not executable, sendable, not storable, no
        // path history) are left out: every datagram carries less.
        let mut m = MapWriter::default();
        m.string("id", &self.id)
            .string("layer", self.layer.as_str());
        if self.executable {
            m.flag("executable", true);
        }
        if !self.sendable {
            m.flag("sendable", false);
        }
        if self.storable {
            m.flag("storable", true);
        }
        if !self.path_history.is_empty() {
            m.strings("path_history", &self.path_history);
        }
        m.put("content", self.content.to_value());
        if let Some(r) = &self.receiver {
            m.string("l1_socket_receiver_member", r);
        }
        if !self.providers.is_empty() {
            m.strings("providers", &self.providers);
        }
        if !self.topics.is_empty() {
            m.strings("topics", &self.topics);
        }
        m.finish()
    }

    /// Reads [`Message::to_value`]'s map; unknown fields are ignored. The
    /// error is the reason of a `MALFORMED` refusal.
    pub fn from_value(v: &Value) -> Result<Message, String> {
        let f = Fields::read(v)?;
        let id = f.string("id")?;
        if id.is_empty() {
            return Err("the message id is empty".into());
        }
        let layer_name = f.string("layer")?;
        let layer =
            Layer::parse(layer_name).ok_or_else(|| format!("unknown layer {layer_name:?}"))?;
        let content =
            Content::from_value(f.get("content").ok_or("the field \"content\" is missing")?)?;
        let mut m = Message::new(id, layer, content);
        m.executable = f.flag("executable", false)?;
        m.sendable = f.flag("sendable", true)?;
        m.storable = f.flag("storable", false)?;
        m.path_history = f.strings("path_history")?;
        m.receiver = f
            .opt_string("l1_socket_receiver_member")?
            .map(str::to_owned);
        m.providers = f.strings("providers")?;
        m.topics = f.strings("topics")?;
        Ok(m)
    }

    /// Checks, before anything is sent, what the sender can know: the
    /// message is sendable, has its layer's targets, valid topics, and fits
    /// in a datagram.
    pub fn check_sendable(&self) -> Result<(), Refusal> {
        self.check_targets()?;
        check_size(&self.to_value())
    }

    /// [`Message::check_sendable`] but for the size, which [`check_size`]
    /// checks on the map the sender makes anyway.
    pub(crate) fn check_targets(&self) -> Result<(), Refusal> {
        if !self.sendable {
            return Err(Refusal::new(
                Code::NotSendable,
                "the message is sendable=false: it may only be executed locally",
            ));
        }
        if self.layer == Layer::L1 && self.receiver.as_deref().is_none_or(str::is_empty) {
            return Err(Refusal::new(
                Code::UnknownMember,
                "an L1 message needs l1_socket_receiver_member",
            ));
        }
        if self.layer.uses_providers() && self.providers.is_empty() {
            return Err(Refusal::new(
                Code::NoRecipient,
                format!("an {} message needs providers", self.layer),
            ));
        }
        if self.layer.uses_topics() {
            if self.topics.is_empty() {
                return Err(Refusal::new(
                    Code::InvalidTopic,
                    format!("an {} message needs topics", self.layer),
                ));
            }
            for t in &self.topics {
                validate_topic(t).map_err(|e| Refusal::new(Code::InvalidTopic, e.to_string()))?;
            }
        }
        Ok(())
    }
}

/// Checks that a message's map ([`Message::to_value`]) fits in a datagram.
pub fn check_size(map: &Value) -> Result<(), Refusal> {
    let size = map.encoded_len();
    if size > MAX_DELIVER_BYTES {
        return Err(Refusal::new(
            Code::TooLarge,
            format!("the message encodes to {size} bytes; the limit is {MAX_DELIVER_BYTES}"),
        ));
    }
    Ok(())
}

/// Reads a CMBS flag: `true`/`false`, and pyCMBS's `True`/`False`.
pub fn parse_flag(s: &str) -> Option<bool> {
    match s {
        "true" | "True" => Some(true),
        "false" | "False" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_reads_back() {
        let mut m = Message::new(
            "x",
            Layer::L4,
            Content::Json(serde_json::json!({"a": [1, 2]})),
        );
        m.storable = true;
        m.providers = vec!["p".into()];
        m.topics = vec!["a.b".into()];
        m.path_history = vec!["m0".into()];
        assert_eq!(Message::from_value(&m.to_value()).unwrap(), m);
        let data = Message::new("y", Layer::L2, Content::Data(vec![0, 1, 255]));
        assert_eq!(Message::from_value(&data.to_value()).unwrap(), data);
    }

    #[test]
    fn the_sender_checks_what_it_can() {
        let mut m = Message::new("x", Layer::L32, Content::Json(serde_json::json!(1)));
        assert_eq!(m.check_sendable().unwrap_err().code, Code::InvalidTopic);
        m.topics = vec!["a.*".into()];
        assert_eq!(m.check_sendable().unwrap_err().code, Code::InvalidTopic);
        m.topics = vec!["a.b".into()];
        assert!(m.check_sendable().is_ok());
        m.sendable = false;
        assert_eq!(m.check_sendable().unwrap_err().code, Code::NotSendable);
        let big = Message::new("z", Layer::L2, Content::Data(vec![7; 50_000]));
        let e = big.check_sendable().unwrap_err();
        assert_eq!(e.code, Code::TooLarge);
        assert!(e.reason.contains("60000"), "{e}");
        assert_eq!(parse_flag("True"), Some(true));
    }
}

impl Message {
    /// The message as a JSON object with the OCCI attribute names of the
    /// `message` kind (`cmbs_layer`, `executable`, `sendable`, `storable`,
    /// `path_history`, `message_content`, `result`,
    /// `l1_socket_receiver_member`, `providers`, `topics`) plus `id` and
    /// `content_encoding` (`json`, or `base64` for Data).
    pub fn to_json(&self) -> serde_json::Value {
        let mut o = serde_json::Map::new();
        o.insert("id".into(), self.id.clone().into());
        o.insert("cmbs_layer".into(), self.layer.as_str().into());
        o.insert("executable".into(), self.executable.into());
        o.insert("sendable".into(), self.sendable.into());
        o.insert("storable".into(), self.storable.into());
        o.insert("path_history".into(), self.path_history.clone().into());
        let encoding = match self.content {
            Content::Json(_) => "json",
            Content::Data(_) => "base64",
        };
        o.insert("content_encoding".into(), encoding.into());
        o.insert("message_content".into(), self.content.to_json());
        o.insert(
            "result".into(),
            self.result.clone().unwrap_or(serde_json::Value::Null),
        );
        if let Some(r) = &self.receiver {
            o.insert("l1_socket_receiver_member".into(), r.clone().into());
        }
        o.insert("providers".into(), self.providers.clone().into());
        o.insert("topics".into(), self.topics.clone().into());
        serde_json::Value::Object(o)
    }

    /// Reads [`Message::to_json`]'s object.
    pub fn from_json(v: &serde_json::Value) -> Result<Message, String> {
        let f = JsonFields::read(v, "a message")?;
        let layer_name = f.text("cmbs_layer")?.ok_or("cmbs_layer is missing")?;
        let layer =
            Layer::parse(layer_name).ok_or_else(|| format!("unknown layer {layer_name:?}"))?;
        let raw = f
            .get("message_content")
            .cloned()
            .unwrap_or(serde_json::Value::Null);
        let content = match f.text("content_encoding")? {
            Some("base64") => {
                use base64::Engine;
                let s = raw.as_str().ok_or("base64 content must be a string")?;
                Content::Data(
                    base64::engine::general_purpose::STANDARD
                        .decode(s)
                        .map_err(|e| format!("bad base64 content: {e}"))?,
                )
            }
            None | Some("json") => Content::Json(raw),
            Some(other) => return Err(format!("unknown content_encoding {other:?}")),
        };
        let mut m = Message::new(f.text("id")?.unwrap_or_default(), layer, content);
        m.executable = f.flag("executable", false)?;
        m.sendable = f.flag("sendable", true)?;
        m.storable = f.flag("storable", false)?;
        m.path_history = f.strings("path_history")?;
        m.result = f.get("result").cloned();
        m.receiver = f.text("l1_socket_receiver_member")?.map(str::to_owned);
        m.providers = f.strings("providers")?;
        m.topics = f.strings("topics")?;
        Ok(m)
    }
}

#[cfg(test)]
mod json_tests {
    use super::*;

    #[test]
    fn the_json_form_reads_back() {
        let mut m = Message::new("a", Layer::L1, Content::Data(vec![1, 2, 3]));
        m.receiver = Some("mbus:x/l1".into());
        m.result = Some(serde_json::json!({"r": 1}));
        m.path_history = vec!["x".into()];
        assert_eq!(Message::from_json(&m.to_json()).unwrap(), m);
        let py =
            serde_json::json!({"cmbs_layer": "l2", "storable": "True", "message_content": "hi"});
        let read = Message::from_json(&py).unwrap();
        assert!(read.storable);
        for bad in [
            serde_json::json!({"cmbs_layer": 2}),
            serde_json::json!({"cmbs_layer": "l2", "topics": "a.b"}),
            serde_json::json!({"cmbs_layer": "l2", "storable": "yes"}),
            serde_json::json!({"cmbs_layer": "l2", "id": 7}),
        ] {
            assert!(Message::from_json(&bad).is_err(), "{bad}");
        }
        assert_eq!(read.content, Content::Json(serde_json::json!("hi")));
    }
}
