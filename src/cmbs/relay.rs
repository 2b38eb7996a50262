//! Deliveries through a bridge: a sender gives the bridge entity of its
//! link one `cmbs.message.deliver` naming the recipients of another site
//! ([`Relay`]), and gets back each recipient's own answer
//! ([`RelayAnswer`]), so that its report has one line per member as on one
//! link.

use std::time::Duration;

use crate::rpc::{Reply, Status};
use crate::wire::Value;

use super::cmd::{DeliverAnswer, Order};
use super::code::{Code, Refusal};
use super::map::{Fields, MapWriter};
use super::message::Message;

/// The field of a delivery's map that names the recipients at another site.
pub(crate) const RECIPIENTS: &str = "recipients";

/// What a delivery through a bridge may take on top of the sender's own
/// timeout: the crossing to the other site's bridge and back (two bridges,
/// the NATS servers between them and the bus hops at each end), 2 s. A
/// sender waits for such a line the delivery timeout plus this allowance;
/// the bridge gives the far side the delivery timeout alone.
pub const CROSSING_ALLOWANCE: Duration = Duration::from_secs(2);

/// The most recipients one relay names: a sender splits a larger group
/// for one bridge into several relays, so that each request and each
/// answer fits a datagram (a reason in an answer is cut at
/// [`MAX_REASON_BYTES`]).
pub const MAX_RECIPIENTS: usize = 128;

/// The longest reason a bridge passes on in an answer, in bytes.
pub const MAX_REASON_BYTES: usize = 200;

/// The most bytes of a relay's request: the message's map and the
/// recipients (the rest of a datagram is the header and the RPC's META).
pub const MAX_RELAY_BYTES: usize = 64_000;

/// One recipient of a relayed delivery and the delivery's place in the
/// sender's stream to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipient {
    /// The member id.
    pub member: String,
    /// Its place in the sender's stream to that member.
    pub order: Order,
}

/// A `cmbs.message.deliver` for a bridge: the message, the recipients it
/// is for at one or more other sites, and how long the far side may take.
///
/// # Format
///
/// ```text
/// cmbs.message.deliver ((<message's fields> ("recipients" ((("member" "…") ("seq" 7) ("low" 5)) …)) ("timeout_ms" 2000)))
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Relay {
    /// The message.
    pub message: Message,
    /// Who it is for.
    pub recipients: Vec<Recipient>,
    /// How long the far side's deliveries may take (the sender's delivery
    /// timeout, without the [`CROSSING_ALLOWANCE`]).
    pub timeout: Duration,
}

impl Relay {
    /// Reads a delivery's ARGS: `Ok(None)` if it names no recipients (a
    /// plain delivery), `Err` the reason of a `MALFORMED` refusal.
    pub fn from_args(args: &[Value]) -> Result<Option<Relay>, String> {
        let [map] = args else {
            return Err("expected one argument, the message".into());
        };
        let f = Fields::read(map)?;
        let Some(list) = f.get(RECIPIENTS) else {
            return Ok(None);
        };
        let message = Message::from_value(map)?;
        let items = list
            .as_list()
            .ok_or("the field \"recipients\" must be a list")?;
        if items.is_empty() || items.len() > MAX_RECIPIENTS {
            return Err(format!(
                "a relay names 1 to {MAX_RECIPIENTS} recipients, not {}",
                items.len()
            ));
        }
        let mut recipients = Vec::with_capacity(items.len());
        for item in items {
            let r = Fields::read(item)?;
            let member = r.string("member")?;
            let seq = r.opt_u64("seq")?.ok_or("a recipient needs \"seq\"")?;
            let low = r.opt_u64("low")?.unwrap_or(seq);
            if low > seq || member.is_empty() {
                return Err(
                    "a recipient's \"low\" may not exceed its \"seq\", and its member is named"
                        .into(),
                );
            }
            recipients.push(Recipient {
                member: member.to_owned(),
                order: Order { seq, low },
            });
        }
        let ms = f
            .opt_u64("timeout_ms")?
            .ok_or("a relay needs \"timeout_ms\"")?;
        Ok(Some(Relay {
            message,
            recipients,
            timeout: Duration::from_millis(ms.min(3_600_000)),
        }))
    }

    /// The ARGS from the message's map ([`Message::to_value`]).
    pub fn args(map: Value, recipients: &[Recipient], timeout: Duration) -> Vec<Value> {
        let int = |v: u64| Value::Integer(i64::try_from(v).unwrap_or(i64::MAX));
        let Value::List(mut pairs) = map else {
            return vec![map];
        };
        let list = recipients
            .iter()
            .map(|r| {
                let mut m = MapWriter::default();
                m.string("member", &r.member).put("seq", int(r.order.seq));
                if r.order.low != r.order.seq {
                    m.put("low", int(r.order.low));
                }
                m.finish()
            })
            .collect();
        pairs.push(Value::List(vec![
            Value::string(RECIPIENTS),
            Value::List(list),
        ]));
        pairs.push(Value::List(vec![
            Value::string("timeout_ms"),
            int(timeout.as_millis() as u64),
        ]));
        vec![Value::List(pairs)]
    }

    /// The ARGS.
    pub fn into_args(self) -> Vec<Value> {
        Relay::args(self.message.to_value(), &self.recipients, self.timeout)
    }
}

/// One member's answer as a map: `(("member" "…") ("code" "DELIVERED")
/// ("result" "<JSON>"))` or `(("member" "…") ("code" "<CODE>") ("reason"
/// "…"))`.
pub(crate) fn answer_value(member: &str, answer: &DeliverAnswer) -> Value {
    let mut m = MapWriter::default();
    m.string("member", member);
    match answer {
        DeliverAnswer::Delivered { result } => {
            m.string("code", "DELIVERED");
            if let Some(r) = result {
                m.string("result", &r.to_string());
            }
        }
        DeliverAnswer::Refused(r) => {
            m.string("code", r.code.as_str())
                .string("reason", &r.reason);
        }
    }
    m.finish()
}

/// Reads [`answer_value`]'s map.
pub(crate) fn read_answer(v: &Value) -> Result<(String, DeliverAnswer), String> {
    let a = Fields::read(v)?;
    let member = a.string("member")?.to_owned();
    let code = a.string("code")?;
    let answer = if code == "DELIVERED" {
        let result = match a.opt_string("result")? {
            None => None,
            Some(text) => Some(
                serde_json::from_str(text)
                    .map_err(|_| "an answer's result is not JSON".to_owned())?,
            ),
        };
        DeliverAnswer::Delivered { result }
    } else {
        let code = Code::parse(code).ok_or_else(|| format!("unknown code {code:?}"))?;
        let reason = a.opt_string("reason")?.unwrap_or_default();
        DeliverAnswer::Refused(Refusal::new(code, reason))
    };
    Ok((member, answer))
}

/// What a bridge answers to a [`Relay`]: each recipient's own answer, in
/// the order it was named.
///
/// # Format
///
/// ```text
/// (OK RELAYED "") ((("answers" ((("member" "…") ("code" "DELIVERED") ("result" "<JSON>")) (("member" "…") ("code" "SUSPENDED") ("reason" "…")) …))))
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct RelayAnswer {
    /// Each recipient and its answer.
    pub answers: Vec<(String, DeliverAnswer)>,
}

impl RelayAnswer {
    /// The answers as a map (the RPC reply's value).
    pub fn to_value(&self) -> Value {
        let list = self
            .answers
            .iter()
            .map(|(member, answer)| answer_value(member, answer))
            .collect();
        let mut m = MapWriter::default();
        m.put("answers", Value::List(list));
        m.finish()
    }

    /// Reads [`RelayAnswer::to_value`]'s map.
    pub fn from_value(v: &Value) -> Result<RelayAnswer, String> {
        let f = Fields::read(v)?;
        let list = f
            .get("answers")
            .and_then(Value::as_list)
            .ok_or("the answer has no list \"answers\"")?;
        Ok(RelayAnswer {
            answers: list.iter().map(read_answer).collect::<Result<_, _>>()?,
        })
    }

    /// The RPC reply.
    pub fn to_reply(&self) -> Reply {
        Reply::ok_with("RELAYED", "", vec![self.to_value()])
    }

    /// Reads a bridge's reply; `Err` is why it cannot be read.
    pub fn from_reply(reply: &Reply) -> Result<RelayAnswer, String> {
        match reply.status {
            Status::Ok if reply.result == "RELAYED" => {
                RelayAnswer::from_value(reply.values.first().ok_or("the answer has no values")?)
            }
            Status::Ok => Err(format!(
                "the bridge answered OK {}, not RELAYED",
                reply.result
            )),
            Status::Failed => Err(format!(
                "the bridge refused: {} {}",
                reply.result, reply.description
            )),
        }
    }

    /// Member `member`'s answer.
    pub fn answer_of(&self, member: &str) -> Option<&DeliverAnswer> {
        self.answers
            .iter()
            .find(|(m, _)| m == member)
            .map(|(_, a)| a)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmbs::cmd::Deliver;
    use crate::cmbs::{Content, Layer};

    #[test]
    fn a_relay_and_its_answer_read_back_and_a_member_refuses_a_relay() {
        let msg = Message::new("i", Layer::L32, Content::Json(serde_json::json!({"t": 1})));
        let relay = Relay {
            message: msg,
            recipients: vec![
                Recipient {
                    member: "a".into(),
                    order: Order { seq: 3, low: 1 },
                },
                Recipient {
                    member: "b".into(),
                    order: Order { seq: 0, low: 0 },
                },
            ],
            timeout: Duration::from_millis(2500),
        };
        let args = relay.clone().into_args();
        assert_eq!(Relay::from_args(&args).unwrap(), Some(relay.clone()));
        assert!(
            Deliver::from_args(&args).is_err(),
            "a member refuses a relay"
        );
        let plain = Deliver {
            message: relay.message.clone(),
            order: None,
        }
        .into_args();
        assert_eq!(Relay::from_args(&plain).unwrap(), None);
        let answer = RelayAnswer {
            answers: vec![
                (
                    "a".into(),
                    DeliverAnswer::Delivered {
                        result: Some(serde_json::json!([1])),
                    },
                ),
                (
                    "b".into(),
                    DeliverAnswer::Refused(Refusal::new(Code::Suspended, "zz")),
                ),
            ],
        };
        assert_eq!(RelayAnswer::from_reply(&answer.to_reply()).unwrap(), answer);
        assert!(RelayAnswer::from_reply(&Reply::failed("X", "y")).is_err());
    }
}
