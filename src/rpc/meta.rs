//! The shapes of Guidelines messages (`mbus.md` §9.1, §9.3): META maps,
//! requests, returns, standby replies and optional argument lists.

use crate::wire::{Command, Value};

use super::{Answer, Reply, RpcType, Status};

/// A META map: `(("ID" "123") ("RPC-TYPE" "UNICAST") …)`, a list of pairs
/// whose keys are Strings and unique (Guidelines §3, §5.2).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Meta {
    /// The pairs in written order.
    pub pairs: Vec<(String, Value)>,
}

impl Meta {
    /// The value for `key`.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// The value for `key` as text (String or Symbol).
    pub fn get_str(&self, key: &str) -> Option<&str> {
        self.get(key).and_then(Value::as_str)
    }

    /// The map as an Mbus value.
    pub fn to_value(&self) -> Value {
        Value::List(
            self.pairs
                .iter()
                .map(|(k, v)| Value::List(vec![Value::string(k.clone()), v.clone()]))
                .collect(),
        )
    }

    fn with(pairs: &[(&str, &str)]) -> Meta {
        Meta {
            pairs: pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), Value::string(*v)))
                .collect(),
        }
    }
}

/// Why a command is not a well-formed Guidelines message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MetaError {
    /// No META map with an `ID` as first argument: an ordinary command.
    #[error("not an RPC: the first argument is no META map with an ID")]
    NotRpc,
    /// A META map with an ID, but something about the message is wrong.
    #[error("malformed RPC{}: {problem}", rpc_id.as_ref().map(|i| format!(" {i:?}")).unwrap_or_default())]
    Malformed {
        /// The RPC ID, where it could be read (a FAILED return can then name it).
        rpc_id: Option<String>,
        /// What is wrong.
        problem: String,
    },
}

fn malformed(rpc_id: Option<&str>, problem: impl Into<String>) -> MetaError {
    MetaError::Malformed {
        rpc_id: rpc_id.map(str::to_owned),
        problem: problem.into(),
    }
}

/// Reads a META map. [`MetaError::NotRpc`] unless it is a list holding an
/// `("ID" …)` pair; after that, every flaw is [`MetaError::Malformed`].
fn read_meta(v: Option<&Value>) -> Result<(Meta, String), MetaError> {
    let list = v.and_then(Value::as_list).ok_or(MetaError::NotRpc)?;
    let id_entry = list
        .iter()
        .filter_map(Value::as_list)
        .find(|pair| matches!(pair.first(), Some(Value::String(k)) if k == "ID"))
        .ok_or(MetaError::NotRpc)?;
    let rpc_id = match id_entry {
        [_, Value::String(id)] => id.clone(),
        [_, Value::Integer(i)] => {
            return Err(malformed(Some(&i.to_string()), "the ID must be a String"))
        }
        _ => {
            return Err(malformed(
                None,
                "the ID entry must be a pair (\"ID\" \"<id>\")",
            ))
        }
    };
    let mut meta = Meta::default();
    for (n, entry) in list.iter().enumerate() {
        let Some([Value::String(key), value]) = entry.as_list() else {
            return Err(malformed(
                Some(&rpc_id),
                format!("META entry {} is not a (String value) pair", n + 1),
            ));
        };
        if meta.get(key).is_some() {
            return Err(malformed(
                Some(&rpc_id),
                format!("META key {key:?} appears twice"),
            ));
        }
        meta.pairs.push((key.clone(), value.clone()));
    }
    Ok((meta, rpc_id))
}

/// A request as read from the wire.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedRequest {
    /// The caller's RPC ID.
    pub rpc_id: String,
    /// `RPC-TYPE` (UNICAST when absent).
    pub rpc_type: RpcType,
    /// The whole META map.
    pub meta: Meta,
    /// The RPC parameters (empty when the draft's short form leaves ARGS out).
    pub args: Vec<Value>,
}

/// Reads `cmd` as an RPC request: `<cmd> (META ARGS)` (Guidelines §5.2.1),
/// also accepting `<cmd> (META)` (decision D10).
pub fn parse_request(cmd: &Command) -> Result<ParsedRequest, MetaError> {
    let (meta, rpc_id) = read_meta(cmd.args.first())?;
    let id = Some(rpc_id.as_str());
    let rpc_type = match meta.get("RPC-TYPE") {
        None => RpcType::Unicast,
        Some(Value::String(t)) => {
            RpcType::from_wire(t).ok_or_else(|| malformed(id, format!("unknown RPC-TYPE {t:?}")))?
        }
        Some(_) => return Err(malformed(id, "RPC-TYPE must be a String")),
    };
    let args = match &cmd.args[1..] {
        [] => Vec::new(),
        [Value::List(args)] => args.clone(),
        [_] => return Err(malformed(id, "ARGS (the second argument) must be a list")),
        more => {
            return Err(malformed(
                id,
                format!(
                    "a request has META and ARGS only, not {} arguments",
                    more.len() + 1
                ),
            ))
        }
    };
    Ok(ParsedRequest {
        rpc_id,
        rpc_type,
        meta,
        args,
    })
}

/// A return as read from the wire.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedReturn {
    /// The RPC ID it answers.
    pub rpc_id: String,
    /// What the callee answered.
    pub answer: Answer,
}

/// Reads `cmd` (named `<op>.return`) as an RPC return:
/// `(RMETA (APPSTATUS RETVALS))` (Guidelines §5.2.2), also accepting a missing
/// result part, a missing RETVALS and a short APPSTATUS (D10). libgmbus's
/// `RPC-STATUS FAILED` reads as a FAILED reply.
pub fn parse_return(cmd: &Command) -> Result<ParsedReturn, MetaError> {
    let (meta, rpc_id) = read_meta(cmd.args.first())?;
    let id = Some(rpc_id.as_str());
    let rpc_status = meta.get_str("RPC-STATUS").unwrap_or("OK");
    let result = match &cmd.args[1..] {
        [] => None,
        [Value::List(result)] => Some(result.as_slice()),
        _ => return Err(malformed(id, "a return has RMETA and one result list only")),
    };
    let reply = match result {
        None | Some([]) => None,
        Some([Value::List(app), rest @ ..]) => {
            let status = match app.first().and_then(Value::as_str) {
                Some("OK") => Status::Ok,
                Some("FAILED") => Status::Failed,
                _ => return Err(malformed(id, "APPSTATUS must start with OK or FAILED")),
            };
            let values = match rest {
                [] => Vec::new(),
                [Value::List(values)] => values.clone(),
                _ => return Err(malformed(id, "the return values must be one list")),
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
        Some(_) => {
            return Err(malformed(
                id,
                "the result must start with the APPSTATUS list",
            ))
        }
    };
    let answer = match rpc_status {
        "OK" => Answer::Reply(reply.unwrap_or_else(|| Reply::ok(Vec::new()))),
        "UNKNOWN" => Answer::Unknown,
        "FAILED" => Answer::Reply(reply.unwrap_or_else(|| Reply::failed("RPC_FAILED", ""))),
        other => return Err(malformed(id, format!("unknown RPC-STATUS {other:?}"))),
    };
    Ok(ParsedReturn { rpc_id, answer })
}

/// `<name> ((("ID" id) ("RPC-TYPE" type) extra…) (args…))`.
pub fn request_command(
    name: &str,
    rpc_id: &str,
    rpc_type: RpcType,
    extra: &[(String, Value)],
    args: Vec<Value>,
) -> Command {
    let mut meta = Meta::with(&[("ID", rpc_id), ("RPC-TYPE", rpc_type.as_str())]);
    meta.pairs.extend(extra.iter().cloned());
    Command::new(name, vec![meta.to_value(), Value::List(args)])
}

/// `<request>.return ((("ID" id) ("RPC-STATUS" …)) ((status result "descr") (values…)))`.
pub fn return_command(request: &str, rpc_id: &str, answer: &Answer) -> Command {
    let name = format!("{request}.return");
    match answer {
        Answer::Unknown => Command::new(
            name,
            vec![Meta::with(&[("ID", rpc_id), ("RPC-STATUS", "UNKNOWN")]).to_value()],
        ),
        Answer::Reply(r) => Command::new(
            name,
            vec![
                Meta::with(&[("ID", rpc_id), ("RPC-STATUS", "OK")]).to_value(),
                Value::List(vec![
                    Value::List(vec![
                        Value::symbol(r.status.as_str()),
                        Value::symbol(r.result.clone()),
                        Value::string(r.description.clone()),
                    ]),
                    Value::List(r.values.clone()),
                ]),
            ],
        ),
    }
}

/// `<request>.standby ((("ID" id)))`: an anycast volunteer (Guidelines §5.2.5).
pub fn standby_command(request: &str, rpc_id: &str) -> Command {
    Command::new(
        format!("{request}.standby"),
        vec![Meta::with(&[("ID", rpc_id)]).to_value()],
    )
}

/// The optional argument list `(("name" value) …)` that goes last among a
/// command's arguments (Guidelines §3.2.1).
pub fn optional_args(pairs: &[(&str, Value)]) -> Value {
    Value::List(
        pairs
            .iter()
            .map(|(k, v)| Value::List(vec![Value::string(*k), v.clone()]))
            .collect(),
    )
}

/// Splits `args` into the fixed arguments and the optional argument list, for
/// an operation whose definition has one: the last argument, if it is a list
/// of `(String value)` pairs with unique names (Guidelines §3.2.1). When the
/// last argument is no such list, there are no optional arguments.
pub fn split_optional_args(args: &[Value]) -> (&[Value], Vec<(&str, &Value)>) {
    let Some((last, fixed)) = args.split_last() else {
        return (args, Vec::new());
    };
    let Some(list) = last.as_list() else {
        return (args, Vec::new());
    };
    let mut pairs = Vec::with_capacity(list.len());
    for entry in list {
        match entry.as_list() {
            Some([Value::String(k), v]) if pairs.iter().all(|(n, _)| n != k) => {
                pairs.push((k.as_str(), v))
            }
            _ => return (args, Vec::new()),
        }
    }
    (fixed, pairs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmd(text: &str) -> Command {
        let (name, args) = text.split_once(' ').unwrap();
        let Value::List(args) = Value::parse(args).unwrap() else {
            panic!()
        };
        Command::new(name, args)
    }

    #[test]
    fn v9_request_reads_and_writes_back() {
        let c = cmd(r#"tools.foo.bar ((("ID" "123") ("RPC-TYPE" "UNICAST")) ("gg" 17 ("a" "b")))"#);
        let r = parse_request(&c).unwrap();
        assert_eq!(r.rpc_id, "123");
        assert_eq!(r.rpc_type, RpcType::Unicast);
        assert_eq!(r.args.len(), 3);
        assert_eq!(
            request_command("tools.foo.bar", "123", RpcType::Unicast, &[], r.args),
            c
        );
    }

    #[test]
    fn v10_return_reads_and_writes_back() {
        let c = cmd(
            r#"tools.foo.bar.return ((("ID" "123") ("RPC-STATUS" "OK")) ((OK BAR_COMPLETED "Success!") (1)))"#,
        );
        let r = parse_return(&c).unwrap();
        let expected = Reply::ok_with("BAR_COMPLETED", "Success!", vec![Value::Integer(1)]);
        assert_eq!(r.answer, Answer::Reply(expected.clone()));
        assert_eq!(
            return_command("tools.foo.bar", "123", &Answer::Reply(expected)),
            c
        );
    }

    #[test]
    fn short_forms_of_d10_are_accepted() {
        let get = cmd(r#"tools.foo.bar.get ((("ID" "123") ("RPC-TYPE" "UNICAST")))"#);
        assert_eq!(parse_request(&get).unwrap().args, vec![]);
        let unwatch = cmd(r#"p.unwatch.return ((("ID" "123") ("RPC-STATUS" "OK")))"#);
        assert_eq!(
            parse_return(&unwatch).unwrap().answer,
            Answer::Reply(Reply::ok(vec![]))
        );
        let failed = cmd(r#"p.return ((("ID" "9") ("RPC-STATUS" "OK")) ((FAILED)))"#);
        let Answer::Reply(r) = parse_return(&failed).unwrap().answer else {
            panic!()
        };
        assert_eq!((r.status, r.result.as_str()), (Status::Failed, "FAILED"));
        let unknown = cmd(r#"p.return ((("ID" "9") ("RPC-STATUS" "UNKNOWN")))"#);
        assert_eq!(parse_return(&unknown).unwrap().answer, Answer::Unknown);
    }

    #[test]
    fn ordinary_commands_are_not_rpcs() {
        for text in [
            "a.b ()",
            "a.b (1 2)",
            r#"rtp.set-attributes ((("cname" "x") ("tool" "y")))"#,
            r#"a.b (("ID" "1"))"#,
        ] {
            assert_eq!(parse_request(&cmd(text)), Err(MetaError::NotRpc), "{text}");
        }
    }

    #[test]
    fn malformed_requests_name_the_problem_and_the_id() {
        for (text, id, problem) in [
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
            match parse_request(&cmd(text)) {
                Err(MetaError::Malformed { rpc_id, problem: p }) => {
                    assert_eq!(rpc_id.as_deref(), id, "{text}");
                    assert!(p.contains(problem), "{text}: {p}");
                }
                other => panic!("{text}: {other:?}"),
            }
        }
    }

    #[test]
    fn optional_argument_lists_split_off_the_last_argument() {
        let c = cmd(r#"tools.foo.bar ("gg" 17 ("a" "b") (("p4" "x") ("p5" 42)))"#);
        let (fixed, optional) = split_optional_args(&c.args);
        assert_eq!(fixed.len(), 3);
        assert_eq!(
            optional,
            vec![("p4", &Value::string("x")), ("p5", &Value::Integer(42))]
        );
        let written = optional_args(&[("p4", Value::string("x")), ("p5", Value::Integer(42))]);
        assert_eq!(&written, c.args.last().unwrap());
        // No such list last: everything is fixed.
        let plain = cmd(r#"x ("gg" 17 ("a" "b"))"#);
        assert_eq!(split_optional_args(&plain.args).0.len(), 3);
        assert!(split_optional_args(&plain.args).1.is_empty());
    }
}
