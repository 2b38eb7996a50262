//! `<name>.ack` and `<name>.completed`: the server's answers (Guidelines §5.3).

use crate::wire::{Command, ShapeError, Value};

/// The STATUS of a transaction's `.ack` and `.completed` (Guidelines §5.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TxnStatus {
    /// `OK`.
    Ok,
    /// `UNKNOWN`: no such transaction at the server.
    Unknown,
    /// `FAILED`.
    Failed,
    /// `CANCELLED`.
    Cancelled,
}

impl TxnStatus {
    /// The wire Symbol.
    pub fn as_str(self) -> &'static str {
        match self {
            TxnStatus::Ok => "OK",
            TxnStatus::Unknown => "UNKNOWN",
            TxnStatus::Failed => "FAILED",
            TxnStatus::Cancelled => "CANCELLED",
        }
    }

    /// Reads the wire Symbol.
    pub fn from_wire(s: &str) -> Option<TxnStatus> {
        Some(match s {
            "OK" => TxnStatus::Ok,
            "UNKNOWN" => TxnStatus::Unknown,
            "FAILED" => TxnStatus::Failed,
            "CANCELLED" => TxnStatus::Cancelled,
            _ => return None,
        })
    }
}

/// Which answer of the server it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReplyVerb {
    /// `.ack`: the request was taken (OK) or refused.
    Ack,
    /// `.completed`: the committed (or cancelled) transaction is done.
    Completed,
}

impl ReplyVerb {
    /// The last name component.
    pub fn as_str(self) -> &'static str {
        match self {
            ReplyVerb::Ack => "ack",
            ReplyVerb::Completed => "completed",
        }
    }

    fn from_wire(s: &str) -> Option<ReplyVerb> {
        match s {
            "ack" => Some(ReplyVerb::Ack),
            "completed" => Some(ReplyVerb::Completed),
            _ => None,
        }
    }
}

/// A server's `.ack` or `.completed`.
///
/// # Format
///
/// ```text
/// <name>.ack ( "<tid>" OK|UNKNOWN|FAILED|CANCELLED [<optional argument list>] )
/// <name>.completed ( "<tid>" OK|UNKNOWN|FAILED|CANCELLED [<optional argument list>] )
/// ```
///
/// The first argument is a plain String, not a META map. Extra information
/// may follow the status; it is ignored on receipt.
#[derive(Debug, Clone, PartialEq)]
pub struct TxnReply {
    /// The transaction's operation (the name without the verb).
    pub name: String,
    /// Ack or completed.
    pub verb: ReplyVerb,
    /// The transaction ID.
    pub tid: String,
    /// Its status.
    pub status: TxnStatus,
}

impl TxnReply {
    /// The shape's name in errors.
    pub const SHAPE: &'static str = "transaction ack or completed";

    /// Reads `cmd` as an ack or completed.
    pub fn from_command(cmd: &Command) -> Result<TxnReply, ShapeError> {
        let (name, verb) = cmd
            .name
            .rsplit_once('.')
            .and_then(|(name, verb)| Some((name, ReplyVerb::from_wire(verb)?)))
            .ok_or(ShapeError::Other(Self::SHAPE))?;
        let (tid, status) = match cmd.args.as_slice() {
            [Value::String(tid), Value::Symbol(status), ..] => (tid, TxnStatus::from_wire(status)),
            _ => (&String::new(), None),
        };
        let status = status.ok_or_else(|| {
            ShapeError::malformed(Self::SHAPE, None, "expected (\"<tid>\" STATUS …)")
        })?;
        Ok(TxnReply {
            name: name.to_owned(),
            verb,
            tid: tid.clone(),
            status,
        })
    }

    /// The command on the wire.
    pub fn into_command(self) -> Command {
        Command::new(
            format!("{}.{}", self.name, self.verb.as_str()),
            vec![Value::String(self.tid), Value::symbol(self.status.as_str())],
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rpc::cmd::tests::cmd;

    #[test]
    fn reads_and_writes_back() {
        let ack = TxnReply {
            name: "conf.call".into(),
            verb: ReplyVerb::Ack,
            tid: "123".into(),
            status: TxnStatus::Ok,
        };
        let c = ack.clone().into_command();
        assert_eq!(c.to_string(), r#"conf.call.ack ("123" OK)"#);
        assert_eq!(TxnReply::from_command(&c), Ok(ack));
        let extra = cmd(r#"x.completed ("9" CANCELLED (("why" "user")))"#);
        let done = TxnReply::from_command(&extra).unwrap();
        assert_eq!(
            (done.verb, done.status),
            (ReplyVerb::Completed, TxnStatus::Cancelled)
        );
        assert!(TxnReply::from_command(&cmd("x.ack (1)")).is_err());
        assert!(TxnReply::from_command(&cmd(r#"x.ack ("1" MAYBE)"#)).is_err());
        assert!(TxnReply::from_command(&cmd(r#"x.done ("1" OK)"#))
            .unwrap_err()
            .is_other());
    }
}
