//! The CMBS commands on the bus, one type each, in the style of the
//! Guidelines' typed commands: `cmbs.member.announce`, `cmbs.member.describe`,
//! the `cmbs.message.deliver` RPC and its answer, the `cmbs.member.action`
//! RPC and its answer. Every one carries a Guidelines optional-argument map
//! (§3.2.1), so that fields can be added later; readers ignore names they do
//! not know.

use std::fmt;

use crate::rpc::{Reply, Status};
use crate::wire::{Command, Value};

use super::code::{Code, Refusal};
use super::description::Description;
use super::layer::Layer;
use super::map::{Fields, MapWriter};
use super::message::Message;

/// The command prefix of every CMBS command.
pub const PREFIX: &str = "cmbs";

/// `cmbs.member.announce (<description>)`: a member says who it is, sent
/// unreliably to `(app:cmbs)` when it starts, when its description changes
/// and in answer to a describe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Announce {
    /// What the member says about itself.
    pub description: Description,
}

impl Announce {
    /// The command name.
    pub const NAME: &'static str = "cmbs.member.announce";

    /// Reads the command; `Err` is why it is malformed.
    pub fn parse(cmd: &Command) -> Result<Announce, String> {
        match cmd.args.as_slice() {
            [map] => Ok(Announce {
                description: Description::from_value(map)?,
            }),
            _ => Err("expected one argument, the member's description".into()),
        }
    }

    /// The command.
    pub fn into_command(self) -> Command {
        Command::new(Self::NAME, vec![self.description.to_value()])
    }
}

/// `cmbs.member.leave (<map>)`: a bridge says that members of another site
/// it announced on this link have left their site's directory, sent
/// unreliably to `(app:cmbs)` (and again with its next announces of that
/// site's members). Only the bridge a member is announced via may say so.
///
/// # Format
///
/// ```text
/// cmbs.member.leave ((("ids" ("<member id>" …))))
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leave {
    /// The members that left.
    pub ids: Vec<String>,
}

impl Leave {
    /// The command name.
    pub const NAME: &'static str = "cmbs.member.leave";

    /// Reads the command; `Err` is why it is malformed.
    pub fn parse(cmd: &Command) -> Result<Leave, String> {
        match cmd.args.as_slice() {
            [map] => Ok(Leave {
                ids: Fields::read(map)?.strings("ids")?,
            }),
            _ => Err("expected one argument, a map with the ids".into()),
        }
    }

    /// The command.
    pub fn into_command(self) -> Command {
        let mut m = MapWriter::default();
        m.strings("ids", &self.ids);
        Command::new(Self::NAME, vec![m.finish()])
    }
}

/// `cmbs.member.describe ()`: asks every member that hears it to announce
/// itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Describe;

impl Describe {
    /// The command name.
    pub const NAME: &'static str = "cmbs.member.describe";

    /// The command.
    pub fn into_command(self) -> Command {
        Command::new(Self::NAME, Vec::new())
    }
}

/// Where a delivery stands in its sender's stream of deliveries to one
/// recipient: the recipient hands deliveries to its application in `seq`
/// order, waiting (briefly) for a missing one only if its sequence number is
/// at least `low`, the lowest one the sender still has open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Order {
    /// This delivery's number, counting from 0 per sender and recipient.
    pub seq: u64,
    /// The lowest number the sender has not settled yet (≤ `seq`).
    pub low: u64,
}

/// The `cmbs.message.deliver (<message>)` RPC: a message for one recipient,
/// sent as a unicast RPC, reliably, to its full address.
///
/// # Format
///
/// ```text
/// cmbs.message.deliver ((("id" "…") ("layer" "l32") ("executable" false) … ("seq" 7) ("low" 5)))
/// ```
///
/// The message's fields ([`Message::to_value`]) and, for a reliable
/// delivery, its [`Order`].
#[derive(Debug, Clone, PartialEq)]
pub struct Deliver {
    /// The message.
    pub message: Message,
    /// Its place in the sender's stream to this recipient (`None`: an
    /// unreliable multicast, or a sender that does not say).
    pub order: Option<Order>,
}

impl Deliver {
    /// The RPC name.
    pub const NAME: &'static str = "cmbs.message.deliver";

    /// Reads the request's ARGS; `Err` is the reason of a `MALFORMED` refusal.
    pub fn from_args(args: &[Value]) -> Result<Deliver, String> {
        let [map] = args else {
            return Err("expected one argument, the message".into());
        };
        let message = Message::from_value(map)?;
        let f = Fields::read(map)?;
        if f.get(super::relay::RECIPIENTS).is_some() {
            return Err("a delivery that names recipients is for a bridge, not a member".into());
        }
        let order = match (f.opt_u64("seq")?, f.opt_u64("low")?) {
            (Some(seq), Some(low)) if low <= seq => Some(Order { seq, low }),
            (Some(seq), None) => Some(Order { seq, low: seq }),
            (None, None) => None,
            _ => return Err("\"low\" needs \"seq\", and may not exceed it".into()),
        };
        Ok(Deliver { message, order })
    }

    /// The request's ARGS.
    pub fn into_args(self) -> Vec<Value> {
        Deliver::args(self.message.to_value(), self.order)
    }

    /// The request's ARGS from the message's map ([`Message::to_value`],
    /// made once for all its recipients) and its order.
    pub fn args(mut map: Value, order: Option<Order>) -> Vec<Value> {
        if let (Some(o), Value::List(pairs)) = (order, &mut map) {
            let int = |v: u64| Value::Integer(i64::try_from(v).unwrap_or(i64::MAX));
            pairs.push(Value::List(vec![Value::string("seq"), int(o.seq)]));
            // `low` equal to `seq` (nothing earlier open) goes without saying.
            if o.low != o.seq {
                pairs.push(Value::List(vec![Value::string("low"), int(o.low)]));
            }
        }
        vec![map]
    }
}

/// What a recipient answers to `cmbs.message.deliver`: the application-level
/// outcome that CMBS calls delivered, never the transport's ack.
///
/// # Format
///
/// ```text
/// (OK DELIVERED "") ((("result" "<JSON>")))     delivered (result for executed messages)
/// (FAILED <CODE> "<reason>")                     refused
/// ```
#[derive(Debug, Clone, PartialEq)]
pub enum DeliverAnswer {
    /// It has the message (stored before this answer, if storable).
    Delivered {
        /// The execute handler's output, for an executable message.
        result: Option<serde_json::Value>,
    },
    /// It refused the message.
    Refused(Refusal),
}

impl DeliverAnswer {
    /// The RPC reply.
    pub fn to_reply(&self) -> Reply {
        match self {
            DeliverAnswer::Delivered { result } => {
                let mut m = MapWriter::default();
                if let Some(r) = result {
                    m.string("result", &r.to_string());
                }
                Reply::ok_with("DELIVERED", "", vec![m.finish()])
            }
            DeliverAnswer::Refused(r) => Reply::failed(r.code.as_str(), &r.reason),
        }
    }

    /// Reads a reply; a reply of another shape is `MALFORMED`.
    pub fn from_reply(reply: &Reply) -> DeliverAnswer {
        let malformed =
            |why: &str| DeliverAnswer::Refused(Refusal::new(Code::Malformed, why.to_owned()));
        match reply.status {
            Status::Ok if reply.result == "DELIVERED" => {
                let result = match reply.values.first() {
                    None => None,
                    Some(v) => match Fields::read(v).and_then(|f| f.opt_string("result")) {
                        Ok(None) => None,
                        Ok(Some(text)) => match serde_json::from_str(text) {
                            Ok(j) => Some(j),
                            Err(_) => return malformed("the answer's result is not JSON"),
                        },
                        Err(e) => return malformed(&e),
                    },
                };
                DeliverAnswer::Delivered { result }
            }
            Status::Ok => malformed("the recipient answered OK without DELIVERED"),
            Status::Failed => match Code::parse(&reply.result) {
                Some(code) => DeliverAnswer::Refused(Refusal::new(code, reply.description.clone())),
                None => malformed(&format!(
                    "the recipient refused with an unknown code {}: {}",
                    reply.result, reply.description
                )),
            },
        }
    }
}

/// An action on a member (scheme `http://houssem.org/cmbs/member/action#`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// `start_l1` … `start_l4` (also `start_l31`, `start_l32`).
    Start(Layer),
    /// `stop_l1` … `stop_l4`.
    Stop(Layer),
    /// `suspend`: refuse every delivery until resumed.
    Suspend,
    /// `resume`.
    Resume,
    /// `check_neighbors`: ask the bus who is a member, and say which
    /// `neighbors_socket` entries are known.
    CheckNeighbors,
}

impl Action {
    /// Reads a term: `start_l3.1`, `start_l31`, `stop_l2`, `suspend`, `resume`,
    /// `check_neighbors`.
    pub fn parse(term: &str) -> Option<Action> {
        match term {
            "suspend" => Some(Action::Suspend),
            "resume" => Some(Action::Resume),
            "check_neighbors" => Some(Action::CheckNeighbors),
            _ => {
                if let Some(l) = term.strip_prefix("start_") {
                    Layer::parse(l).map(Action::Start)
                } else if let Some(l) = term.strip_prefix("stop_") {
                    Layer::parse(l).map(Action::Stop)
                } else {
                    None
                }
            }
        }
    }

    /// Every action, in the order the OCCI kind lists them.
    pub fn all() -> Vec<Action> {
        let mut v: Vec<Action> = Layer::ALL.iter().map(|l| Action::Start(*l)).collect();
        v.extend(Layer::ALL.iter().map(|l| Action::Stop(*l)));
        v.extend([Action::Suspend, Action::Resume, Action::CheckNeighbors]);
        v
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::Start(l) => write!(f, "start_{}", l.dotted()),
            Action::Stop(l) => write!(f, "stop_{}", l.dotted()),
            Action::Suspend => f.write_str("suspend"),
            Action::Resume => f.write_str("resume"),
            Action::CheckNeighbors => f.write_str("check_neighbors"),
        }
    }
}

/// The `cmbs.member.action (<term>)` RPC, for the gateway and `rmbus members
/// ID ACTION` to run an action on a member elsewhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ActionRequest {
    /// The action.
    pub action: Action,
}

impl ActionRequest {
    /// The RPC name.
    pub const NAME: &'static str = "cmbs.member.action";

    /// Reads the request's ARGS: the term as a String or Symbol.
    pub fn from_args(args: &[Value]) -> Result<ActionRequest, String> {
        let term = match args {
            [v] => v.as_str().ok_or("the action must be a String")?,
            _ => return Err("expected one argument, the action term".into()),
        };
        Action::parse(term)
            .map(|action| ActionRequest { action })
            .ok_or_else(|| format!("unknown action {term:?}"))
    }

    /// The request's ARGS.
    pub fn into_args(self) -> Vec<Value> {
        vec![Value::string(self.action.to_string())]
    }
}

/// Whether one `neighbors_socket` entry was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NeighborCheck {
    /// The endpoint named in `neighbors_socket`.
    pub endpoint: String,
    /// The member it names, when one in the directory has it.
    pub member: Option<String>,
}

/// What an action answers: the member's description after it, and for
/// `check_neighbors` the neighbors and the members found.
///
/// # Format
///
/// ```text
/// (OK DONE "") ((("member" <description>) ("neighbors" ((("endpoint" "…") ("member" "…")) …)) ("members" (<description> …))))
/// (FAILED <REASON> "<why>")
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionAnswer {
    /// The member after the action.
    pub member: Description,
    /// `check_neighbors`: each `neighbors_socket` entry.
    pub neighbors: Vec<NeighborCheck>,
    /// `check_neighbors`: every member in the directory.
    pub members: Vec<Description>,
}

impl ActionAnswer {
    /// The RPC reply.
    pub fn to_reply(&self) -> Reply {
        let mut m = MapWriter::default();
        m.put("member", self.member.to_value());
        m.put(
            "neighbors",
            Value::List(
                self.neighbors
                    .iter()
                    .map(|n| {
                        let mut e = MapWriter::default();
                        e.string("endpoint", &n.endpoint);
                        if let Some(id) = &n.member {
                            e.string("member", id);
                        }
                        e.finish()
                    })
                    .collect(),
            ),
        );
        m.put(
            "members",
            Value::List(self.members.iter().map(Description::to_value).collect()),
        );
        Reply::ok_with("DONE", "", vec![m.finish()])
    }

    /// Reads an OK reply; `Err` is why it cannot be read.
    pub fn from_reply(reply: &Reply) -> Result<ActionAnswer, String> {
        let v = reply.values.first().ok_or("the answer has no values")?;
        let f = Fields::read(v)?;
        let member = Description::from_value(f.get("member").ok_or("no member in the answer")?)?;
        let mut neighbors = Vec::new();
        for n in f.get("neighbors").and_then(Value::as_list).unwrap_or(&[]) {
            let nf = Fields::read(n)?;
            neighbors.push(NeighborCheck {
                endpoint: nf.string("endpoint")?.to_owned(),
                member: nf.opt_string("member")?.map(str::to_owned),
            });
        }
        let mut members = Vec::new();
        for d in f.get("members").and_then(Value::as_list).unwrap_or(&[]) {
            members.push(Description::from_value(d)?);
        }
        Ok(ActionAnswer {
            member,
            neighbors,
            members,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmbs::message::Content;

    #[test]
    fn actions_read_in_both_spellings() {
        assert_eq!(Action::parse("start_l31"), Some(Action::Start(Layer::L31)));
        assert_eq!(Action::parse("start_l3.1"), Some(Action::Start(Layer::L31)));
        assert_eq!(Action::parse("stop_l4"), Some(Action::Stop(Layer::L4)));
        assert_eq!(Action::parse("explode"), None);
        for a in Action::all() {
            assert_eq!(Action::parse(&a.to_string()), Some(a));
        }
    }

    #[test]
    fn answers_read_back() {
        let d = DeliverAnswer::Delivered {
            result: Some(serde_json::json!({"ok": true})),
        };
        assert_eq!(DeliverAnswer::from_reply(&d.to_reply()), d);
        let r = DeliverAnswer::Refused(Refusal::new(Code::Loop, "seen"));
        assert_eq!(DeliverAnswer::from_reply(&r.to_reply()), r);
        let odd = Reply::failed("NOPE", "x");
        assert!(matches!(
            DeliverAnswer::from_reply(&odd),
            DeliverAnswer::Refused(Refusal {
                code: Code::Malformed,
                ..
            })
        ));
        let a = ActionAnswer {
            member: Description::new("m"),
            neighbors: vec![NeighborCheck {
                endpoint: "e".into(),
                member: None,
            }],
            members: vec![Description::new("n")],
        };
        assert_eq!(ActionAnswer::from_reply(&a.to_reply()).unwrap(), a);
        let msg = Message::new("i", Layer::L2, Content::Json(serde_json::json!(null)));
        let order = Some(Order { seq: 7, low: 5 });
        let args = Deliver {
            message: msg.clone(),
            order,
        }
        .into_args();
        let back = Deliver::from_args(&args).unwrap();
        assert_eq!((back.message, back.order), (msg.clone(), order));
        let alone = Deliver::args(msg.to_value(), Some(Order { seq: 3, low: 3 }));
        assert_eq!(
            Deliver::from_args(&alone).unwrap().order,
            Some(Order { seq: 3, low: 3 })
        );
        let bad = Deliver {
            message: msg,
            order: Some(Order { seq: 1, low: 2 }),
        }
        .into_args();
        assert!(Deliver::from_args(&bad).is_err());
    }
}
