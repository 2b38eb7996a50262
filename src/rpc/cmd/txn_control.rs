//! `<name>.commit` and `<name>.cancel`: the client's decision (Guidelines §5.3).

use crate::wire::{Command, ShapeError, Value};

use super::super::Meta;

/// What the client decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ControlVerb {
    /// `.commit`: do it.
    Commit,
    /// `.cancel`: forget it (not honoured after a commit).
    Cancel,
}

impl ControlVerb {
    /// The last name component.
    pub fn as_str(self) -> &'static str {
        match self {
            ControlVerb::Commit => "commit",
            ControlVerb::Cancel => "cancel",
        }
    }

    fn from_wire(s: &str) -> Option<ControlVerb> {
        match s {
            "commit" => Some(ControlVerb::Commit),
            "cancel" => Some(ControlVerb::Cancel),
            _ => None,
        }
    }
}

/// A transaction's commit or cancel.
///
/// # Format
///
/// ```text
/// <name>.commit ( (("ID" "<tid>")) )
/// <name>.cancel ( (("ID" "<tid>")) )
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct TxnControl {
    /// The transaction's operation (the name without the verb).
    pub name: String,
    /// Commit or cancel.
    pub verb: ControlVerb,
    /// The transaction ID.
    pub tid: String,
}

impl TxnControl {
    /// The shape's name in errors.
    pub const SHAPE: &'static str = "transaction commit or cancel";

    /// Reads `cmd` as a commit or cancel.
    pub fn from_command(cmd: &Command) -> Result<TxnControl, ShapeError> {
        let (name, verb) = cmd
            .name
            .rsplit_once('.')
            .and_then(|(name, verb)| Some((name, ControlVerb::from_wire(verb)?)))
            .ok_or(ShapeError::Other(Self::SHAPE))?;
        let tid = match cmd.args.as_slice() {
            [Value::List(meta)] => meta.iter().find_map(|pair| match pair.as_list() {
                Some([Value::String(k), Value::String(tid)]) if k == "ID" => Some(tid.as_str()),
                _ => None,
            }),
            _ => None,
        };
        let tid = tid.ok_or_else(|| {
            ShapeError::malformed(Self::SHAPE, None, "expected ((\"ID\" \"<tid>\"))")
        })?;
        Ok(TxnControl {
            name: name.to_owned(),
            verb,
            tid: tid.to_owned(),
        })
    }

    /// The command on the wire.
    pub fn into_command(self) -> Command {
        Command::new(
            format!("{}.{}", self.name, self.verb.as_str()),
            vec![Meta::of_strings(&[("ID", &self.tid)]).to_value()],
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rpc::cmd::tests::cmd;

    #[test]
    fn reads_and_writes_back() {
        let commit = TxnControl {
            name: "conf.call".into(),
            verb: ControlVerb::Commit,
            tid: "123".into(),
        };
        let c = commit.clone().into_command();
        assert_eq!(c.to_string(), r#"conf.call.commit ((("ID" "123")))"#);
        assert_eq!(TxnControl::from_command(&c), Ok(commit));
        let cancel = TxnControl::from_command(&cmd(r#"x.cancel ((("ID" "7")))"#)).unwrap();
        assert_eq!(cancel.verb, ControlVerb::Cancel);
        assert!(TxnControl::from_command(&cmd(r#"x.commit (1)"#)).is_err());
        assert!(TxnControl::from_command(&cmd(r#"x.undo ((("ID" "7")))"#))
            .unwrap_err()
            .is_other());
    }
}
