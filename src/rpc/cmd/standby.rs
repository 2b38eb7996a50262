//! `<op>.standby ((("ID" id)))`: an ANYCAST volunteer (Guidelines §5.2.5).

use crate::wire::{Command, ShapeError, Value};

use super::super::Meta;

/// An anycast volunteer's answer to a group request: "I can serve it".
///
/// # Format
///
/// ```text
/// <op>.standby ( (("ID" "<rpc-id>")) )
/// ```
///
/// Sent unreliably to the aggregate of the caller's and the group's address.
/// An ARGS list after the META map is accepted on receipt and ignored.
#[derive(Debug, Clone, PartialEq)]
pub struct Standby {
    /// The operation of the request (the name without `.standby`).
    pub op: String,
    /// The RPC ID of the request.
    pub rpc_id: String,
}

impl Standby {
    /// The shape's name in errors.
    pub const SHAPE: &'static str = "RPC standby";

    /// Reads `cmd` as a standby reply.
    pub fn from_command(cmd: &Command) -> Result<Standby, ShapeError> {
        let op = cmd
            .name
            .strip_suffix(".standby")
            .ok_or(ShapeError::Other(Self::SHAPE))?;
        let (_, rpc_id) = Meta::read(cmd.args.first(), Self::SHAPE)?;
        if !matches!(&cmd.args[1..], [] | [Value::List(_)]) {
            return Err(ShapeError::malformed(
                Self::SHAPE,
                Some(&rpc_id),
                "a standby has a META map and at most an ARGS list",
            ));
        }
        Ok(Standby {
            op: op.to_owned(),
            rpc_id,
        })
    }

    /// The command on the wire.
    pub fn into_command(self) -> Command {
        Command::new(
            format!("{}.standby", self.op),
            vec![Meta::of_strings(&[("ID", &self.rpc_id)]).to_value()],
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rpc::cmd::tests::cmd;

    #[test]
    fn reads_and_writes_back() {
        let c = cmd(r#"codec.encode.standby ((("ID" "4")))"#);
        let s = Standby::from_command(&c).unwrap();
        assert_eq!((s.op.as_str(), s.rpc_id.as_str()), ("codec.encode", "4"));
        assert_eq!(s.into_command(), c);
        assert!(Standby::from_command(&cmd(r#"x.standby ((("ID" "4")) () ())"#)).is_err());
        assert!(Standby::from_command(&cmd(r#"x.standby (1)"#))
            .unwrap_err()
            .is_other());
    }
}
