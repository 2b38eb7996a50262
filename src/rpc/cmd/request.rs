//! `<name> (META ARGS)`: an RPC request (Guidelines §5.2.1).

use crate::wire::{Command, ShapeError, Value};

use super::super::{Meta, RpcType};

/// An RPC request.
///
/// # Format
///
/// ```text
/// <name> ( (("ID" "<rpc-id>") ("RPC-TYPE" "UNICAST"|"ANYCAST"|"MULTICAST"|"COORDINATED") …) (<args>…) )
/// ```
///
/// A missing `RPC-TYPE` reads as UNICAST, and a missing ARGS (the draft's
/// short form) as `()`; nothing may follow ARGS. A command whose
/// first argument is no META map with an `ID` is not an RPC
/// ([`ShapeError::Other`]).
#[derive(Debug, Clone, PartialEq)]
pub struct RpcRequest {
    /// The operation.
    pub name: String,
    /// The caller's RPC ID.
    pub rpc_id: String,
    /// `RPC-TYPE`.
    pub rpc_type: RpcType,
    /// The whole META map as written, `ID` and `RPC-TYPE` included.
    pub meta: Meta,
    /// The RPC parameters.
    pub args: Vec<Value>,
}

impl RpcRequest {
    /// The shape's name in errors.
    pub const SHAPE: &'static str = "RPC request";

    /// A request whose META map is `ID`, `RPC-TYPE`, then `extra`.
    pub fn new(
        name: &str,
        rpc_id: &str,
        rpc_type: RpcType,
        extra: &[(String, Value)],
        args: Vec<Value>,
    ) -> RpcRequest {
        let mut meta = Meta::of_strings(&[("ID", rpc_id), ("RPC-TYPE", rpc_type.as_str())]);
        meta.pairs.extend(extra.iter().cloned());
        RpcRequest {
            name: name.to_owned(),
            rpc_id: rpc_id.to_owned(),
            rpc_type,
            meta,
            args,
        }
    }

    /// Reads `cmd` as an RPC request.
    pub fn from_command(cmd: &Command) -> Result<RpcRequest, ShapeError> {
        let (meta, rpc_id) = Meta::read(cmd.args.first(), Self::SHAPE)?;
        let id = Some(rpc_id.as_str());
        let bad = |problem: String| ShapeError::malformed(Self::SHAPE, id, problem);
        let rpc_type = match meta.get("RPC-TYPE") {
            None => RpcType::Unicast,
            Some(Value::String(t)) => {
                RpcType::from_wire(t).ok_or_else(|| bad(format!("unknown RPC-TYPE {t:?}")))?
            }
            Some(_) => return Err(bad("RPC-TYPE must be a String".into())),
        };
        let args = match &cmd.args[1..] {
            [] => Vec::new(),
            [Value::List(args)] => args.clone(),
            [_] => return Err(bad("ARGS (the second argument) must be a list".into())),
            more => {
                return Err(bad(format!(
                    "a request has META and ARGS only, not {} arguments",
                    more.len() + 1
                )))
            }
        };
        Ok(RpcRequest {
            name: cmd.name.clone(),
            rpc_id,
            rpc_type,
            meta,
            args,
        })
    }

    /// The command on the wire.
    pub fn into_command(self) -> Command {
        Command::new(
            self.name,
            vec![self.meta.to_value(), Value::List(self.args)],
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rpc::cmd::tests::cmd;

    #[test]
    fn v9_request_reads_and_writes_back() {
        let c = cmd(r#"tools.foo.bar ((("ID" "123") ("RPC-TYPE" "UNICAST")) ("gg" 17 ("a" "b")))"#);
        let r = RpcRequest::from_command(&c).unwrap();
        assert_eq!(r.rpc_id, "123");
        assert_eq!(r.rpc_type, RpcType::Unicast);
        assert_eq!(r.args.len(), 3);
        let made = RpcRequest::new(
            "tools.foo.bar",
            "123",
            RpcType::Unicast,
            &[],
            r.args.clone(),
        );
        assert_eq!(made, r);
        assert_eq!(made.into_command(), c);
    }

    #[test]
    fn the_short_form_without_args_is_accepted() {
        let get = cmd(r#"tools.foo.bar.get ((("ID" "123") ("RPC-TYPE" "UNICAST")))"#);
        assert_eq!(RpcRequest::from_command(&get).unwrap().args, vec![]);
    }

    #[test]
    fn ordinary_commands_are_not_rpcs() {
        for text in [
            "a.b ()",
            "a.b (1 2)",
            r#"rtp.set-attributes ((("cname" "x") ("tool" "y")))"#,
            r#"a.b (("ID" "1"))"#,
        ] {
            assert_eq!(
                RpcRequest::from_command(&cmd(text)),
                Err(ShapeError::Other(RpcRequest::SHAPE)),
                "{text}"
            );
        }
    }

    #[test]
    fn malformed_requests_name_the_problem_and_the_id() {
        for (text, want_id, want) in [
            (
                r#"a ((("ID" "7") ("RPC-TYPE" "SIDEWAYS")) ())"#,
                Some("7"),
                "RPC-TYPE",
            ),
            (r#"a ((("ID" "7")) 5)"#, Some("7"), "ARGS"),
            (r#"a ((("ID" "7") ("X")) ())"#, Some("7"), "entry 2"),
            (r#"a ((("ID" "7") ("X" 1) ("X" 2)) ())"#, Some("7"), "twice"),
            (r#"a ((("ID" 7)) ())"#, Some("7"), "String"),
            (r#"a ((("ID")) ())"#, None, "pair"),
            (r#"a ((("ID" "7")) () ())"#, Some("7"), "3 arguments"),
        ] {
            match RpcRequest::from_command(&cmd(text)) {
                Err(ShapeError::Malformed { id, problem, .. }) => {
                    assert_eq!(id.as_deref(), want_id, "{text}");
                    assert!(problem.contains(want), "{text}: {problem}");
                }
                other => panic!("{text}: {other:?}"),
            }
        }
    }
}
