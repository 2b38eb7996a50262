//! `<name> ((("ID" tid)) (args…))`: a transaction request (Guidelines §5.3).

use crate::wire::{Command, ShapeError, Value};

use super::super::Meta;
use super::RpcRequest;

/// The request that opens a transaction; unicast and reliable only.
///
/// # Format
///
/// ```text
/// <name> ( (("ID" "<tid>")) (<args>…) )
/// ```
///
/// It has the shape of an RPC request (an `RPC-TYPE` entry is tolerated); which
/// names are transactions is the server's business.
#[derive(Debug, Clone, PartialEq)]
pub struct TxnBegin {
    /// The operation.
    pub name: String,
    /// The client's transaction ID.
    pub tid: String,
    /// Its parameters.
    pub args: Vec<Value>,
}

impl TxnBegin {
    /// The shape's name in errors.
    pub const SHAPE: &'static str = "transaction request";

    /// Reads `cmd` as a transaction request.
    pub fn from_command(cmd: &Command) -> Result<TxnBegin, ShapeError> {
        match RpcRequest::from_command(cmd) {
            Ok(r) => Ok(TxnBegin {
                name: r.name,
                tid: r.rpc_id,
                args: r.args,
            }),
            Err(ShapeError::Malformed { id, problem, .. }) => Err(ShapeError::Malformed {
                command: Self::SHAPE,
                id,
                problem,
            }),
            Err(_) => Err(ShapeError::Other(Self::SHAPE)),
        }
    }

    /// The command on the wire.
    pub fn into_command(self) -> Command {
        Command::new(
            self.name,
            vec![
                Meta::of_strings(&[("ID", &self.tid)]).to_value(),
                Value::List(self.args),
            ],
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rpc::cmd::tests::cmd;

    #[test]
    fn reads_and_writes_back() {
        let c = cmd(r#"conf.call ((("ID" "123")) ("joe@foo.bar"))"#);
        let t = TxnBegin::from_command(&c).unwrap();
        assert_eq!((t.name.as_str(), t.tid.as_str()), ("conf.call", "123"));
        assert_eq!(t.into_command(), c);
        assert!(TxnBegin::from_command(&cmd("conf.call (1)"))
            .unwrap_err()
            .is_other());
    }
}
