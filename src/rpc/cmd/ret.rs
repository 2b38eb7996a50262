//! `<op>.return (RMETA (APPSTATUS RETVALS))`: an RPC return (Guidelines §5.2.2).

use crate::wire::{Command, ShapeError, Value};

use super::super::{Answer, Meta, Reply, Status};

/// An RPC return.
///
/// # Format
///
/// ```text
/// <op>.return ( (("ID" "<rpc-id>") ("RPC-STATUS" "OK"|"UNKNOWN")) ( (OK|FAILED <result> "<description>") (<values>…) ) )
/// ```
///
/// On receipt a missing result part, a missing RETVALS and a short APPSTATUS
/// are accepted (the draft's shorter forms), and libgmbus's `RPC-STATUS FAILED` reads as a
/// FAILED reply. `UNKNOWN` is written with RMETA alone; an empty result as
/// `((OK OK "") ())`.
#[derive(Debug, Clone, PartialEq)]
pub struct RpcReturn {
    /// The operation of the request it answers (the name without `.return`).
    pub op: String,
    /// The RPC ID it answers.
    pub rpc_id: String,
    /// What the callee answered.
    pub answer: Answer,
}

impl RpcReturn {
    /// The shape's name in errors.
    pub const SHAPE: &'static str = "RPC return";

    /// Reads `cmd` as a return.
    pub fn from_command(cmd: &Command) -> Result<RpcReturn, ShapeError> {
        let op = cmd
            .name
            .strip_suffix(".return")
            .ok_or(ShapeError::Other(Self::SHAPE))?;
        let (meta, rpc_id) = Meta::read(cmd.args.first(), Self::SHAPE)?;
        let id = Some(rpc_id.as_str());
        let bad = |problem: &str| ShapeError::malformed(Self::SHAPE, id, problem);
        let rpc_status = meta.get_str("RPC-STATUS").unwrap_or("OK");
        let result = match &cmd.args[1..] {
            [] => None,
            [Value::List(result)] => Some(result.as_slice()),
            _ => return Err(bad("a return has RMETA and one result list only")),
        };
        let reply = match result {
            None | Some([]) => None,
            Some([Value::List(app), rest @ ..]) => {
                let status = app
                    .first()
                    .and_then(Value::as_str)
                    .and_then(Status::from_wire)
                    .ok_or_else(|| bad("APPSTATUS must start with OK or FAILED"))?;
                let values = match rest {
                    [] => Vec::new(),
                    [Value::List(values)] => values.clone(),
                    _ => return Err(bad("the return values must be one list")),
                };
                Some(Reply {
                    status,
                    result: app
                        .get(1)
                        .and_then(Value::as_str)
                        .unwrap_or(status.as_str())
                        .to_owned(),
                    description: app.get(2).and_then(Value::as_str).unwrap_or("").to_owned(),
                    values,
                })
            }
            Some(_) => return Err(bad("the result must start with the APPSTATUS list")),
        };
        let answer = match rpc_status {
            "OK" => Answer::Reply(reply.unwrap_or_else(|| Reply::ok(Vec::new()))),
            "UNKNOWN" => Answer::Unknown,
            "FAILED" => Answer::Reply(reply.unwrap_or_else(|| Reply::failed("RPC_FAILED", ""))),
            other => {
                return Err(ShapeError::malformed(
                    Self::SHAPE,
                    id,
                    format!("unknown RPC-STATUS {other:?}"),
                ))
            }
        };
        Ok(RpcReturn {
            op: op.to_owned(),
            rpc_id,
            answer,
        })
    }

    /// The command on the wire.
    pub fn into_command(self) -> Command {
        let name = format!("{}.return", self.op);
        let id = self.rpc_id.as_str();
        match self.answer {
            Answer::Unknown => Command::new(
                name,
                vec![Meta::of_strings(&[("ID", id), ("RPC-STATUS", "UNKNOWN")]).to_value()],
            ),
            Answer::Reply(r) => Command::new(
                name,
                vec![
                    Meta::of_strings(&[("ID", id), ("RPC-STATUS", "OK")]).to_value(),
                    Value::List(vec![
                        Value::List(vec![
                            Value::symbol(r.status.as_str()),
                            Value::Symbol(r.result),
                            Value::String(r.description),
                        ]),
                        Value::List(r.values),
                    ]),
                ],
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rpc::cmd::tests::cmd;

    fn answer(text: &str) -> Answer {
        RpcReturn::from_command(&cmd(text)).unwrap().answer
    }

    #[test]
    fn v10_return_reads_and_writes_back() {
        let c = cmd(
            r#"tools.foo.bar.return ((("ID" "123") ("RPC-STATUS" "OK")) ((OK BAR_COMPLETED "Success!") (1)))"#,
        );
        let r = RpcReturn::from_command(&c).unwrap();
        let expected = Reply::ok_with("BAR_COMPLETED", "Success!", vec![Value::Integer(1)]);
        assert_eq!((r.op.as_str(), r.rpc_id.as_str()), ("tools.foo.bar", "123"));
        assert_eq!(r.answer, Answer::Reply(expected));
        assert_eq!(r.into_command(), c);
    }

    #[test]
    fn short_forms_of_d10_are_accepted() {
        let unwatch = r#"p.unwatch.return ((("ID" "123") ("RPC-STATUS" "OK")))"#;
        assert_eq!(answer(unwatch), Answer::Reply(Reply::ok(vec![])));
        let Answer::Reply(r) = answer(r#"p.return ((("ID" "9") ("RPC-STATUS" "OK")) ((FAILED)))"#)
        else {
            panic!()
        };
        assert_eq!((r.status, r.result.as_str()), (Status::Failed, "FAILED"));
        let unknown = r#"p.return ((("ID" "9") ("RPC-STATUS" "UNKNOWN")))"#;
        assert_eq!(answer(unknown), Answer::Unknown);
        let gmbus = r#"p.return ((("ID" "9") ("RPC-STATUS" "FAILED")))"#;
        assert!(matches!(answer(gmbus), Answer::Reply(r) if !r.is_ok()));
    }

    #[test]
    fn unknown_is_written_with_rmeta_alone() {
        let r = RpcReturn {
            op: "p".into(),
            rpc_id: "9".into(),
            answer: Answer::Unknown,
        };
        assert_eq!(
            r.into_command().to_string(),
            r#"p.return ((("ID" "9") ("RPC-STATUS" "UNKNOWN")))"#
        );
    }

    #[test]
    fn other_names_and_bad_results_are_told_apart() {
        assert!(RpcReturn::from_command(&cmd(r#"p ((("ID" "9")))"#))
            .unwrap_err()
            .is_other());
        for bad in [
            r#"p.return ((("ID" "9")) (1) (2))"#,
            r#"p.return ((("ID" "9")) ((MAYBE)))"#,
            r#"p.return ((("ID" "9")) ((OK) 1))"#,
            r#"p.return ((("ID" "9")) (1))"#,
            r#"p.return ((("ID" "9") ("RPC-STATUS" "PERHAPS")))"#,
        ] {
            assert!(
                matches!(
                    RpcReturn::from_command(&cmd(bad)),
                    Err(ShapeError::Malformed { .. })
                ),
                "{bad}"
            );
        }
    }
}
