//! `rmbus call`, `get`, `set` and `watch`: RPCs and properties of one entity
//! (Guidelines §5.2, §5.4), in the spirit of `busctl call/get-property/set-property`.

use std::time::{Duration, Instant};

use rmbus::proto::Event;
use rmbus::rpc::{Outcome as RpcOutcome, Reply, RpcEvent, RpcType};
use rmbus::runtime::EntityId;
use rmbus::wire::{Address, Value};
use serde_json::json;

use crate::bus_args::BusArgs;
use crate::driver::{entity, Driver, Ended, Flow};
use crate::reach;
use crate::{write_stdout, Failure, Outcome};
use rmbus::record::{to_line, Tagged};

/// What every one of these commands needs to reach its callee.
#[derive(clap::Args)]
pub struct Target {
    #[command(flatten)]
    bus: BusArgs,
    /// How long to wait for the return, in milliseconds (after the callee was found).
    #[arg(long, value_name = "MS", default_value_t = 2000)]
    timeout: u64,
    /// How long to wait to hear from the callee, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 2.0)]
    wait: f64,
    /// One JSON object per line on stdout.
    #[arg(long)]
    pub json: bool,
    /// The callee: an address that designates exactly one entity (for `call
    /// --anycast/--multicast`, any group of entities).
    #[arg(value_name = "DST")]
    dst: Address,
}

/// Call an RPC at one entity and print its outcome and return values.
#[derive(clap::Args)]
#[command(after_help = concat!("\
Examples:
  rmbus call '(app:rat module:engine)' tools.foo.bar '(\"gg\" 17)'
  rmbus call --json --timeout 500 '(module:engine)' engine.status
  rmbus call --multicast '(app:rat)' tools.version

A callee that no known entity matches is pinged and waited for (--wait); the
call itself then has --timeout to return.

--anycast asks the entities DST designates who volunteers, and calls the first
one that does (Guidelines ANYCAST); it starts as soon as one of them is known.
--multicast calls all of them at once and prints one outcome per entity, in the
order of their addresses; it waits for the answers to its ping (about a second,
at most --wait) to know whom to expect, and exits with the worst outcome's status.

", exit_codes!()))]
pub struct CallArgs {
    #[command(flatten)]
    pub target: Target,
    /// Call the first entity of the group DST that volunteers.
    #[arg(long, conflicts_with = "multicast")]
    anycast: bool,
    /// Call every entity of the group DST.
    #[arg(long)]
    multicast: bool,
    /// The operation (command name).
    #[arg(value_name = "CMD")]
    command: String,
    /// Its arguments, one Mbus list, e.g. '(1 "x" (2 3))'.
    #[arg(value_name = "ARGS", default_value = "()", allow_hyphen_values = true)]
    args: String,
}

/// Print a property of one entity (`PROP.get`).
#[derive(clap::Args)]
#[command(after_help = concat!("\
Example:
  rmbus get '(app:rat module:engine)' audio.volume

", exit_codes!()))]
pub struct GetArgs {
    #[command(flatten)]
    pub target: Target,
    /// The property.
    #[arg(value_name = "PROP")]
    property: String,
}

/// Set a property of one entity (`PROP.set`) and print its new value.
#[derive(clap::Args)]
#[command(after_help = concat!("\
Example:
  rmbus set '(app:rat module:engine)' audio.volume 80

", exit_codes!()))]
pub struct SetArgs {
    #[command(flatten)]
    pub target: Target,
    /// The property.
    #[arg(value_name = "PROP")]
    property: String,
    /// The new value, one Mbus value, e.g. 80, '"text"' or '(1 2)'.
    #[arg(value_name = "VALUE", allow_hyphen_values = true)]
    value: String,
    /// Refuse a value of another type than the property's, or one whose
    /// property's type cannot be read (without it, a change of type is made
    /// with a warning).
    #[arg(long)]
    strict: bool,
}

/// Watch a property of one entity (`PROP.watch`): print its value, then every
/// change, until interrupted (then `PROP.unwatch` and bye).
#[derive(clap::Args)]
#[command(after_help = concat!("\
Example:
  rmbus watch '(app:rat module:engine)' audio.volume

", exit_codes!()))]
pub struct WatchArgs {
    #[command(flatten)]
    pub target: Target,
    /// The property.
    #[arg(value_name = "PROP")]
    property: String,
}

/// A bus that has found its callee.
struct Session {
    driver: Driver,
    me: EntityId,
    callee: Address,
    timeout: Duration,
    json: bool,
}

impl Session {
    /// Joins the bus; `wait` is `--wait`.
    fn join(t: &Target) -> Result<(Driver, EntityId, Duration), Failure> {
        let wait = Duration::try_from_secs_f64(t.wait)
            .map_err(|e| Failure::input(format!("--wait: {e}")))?;
        let (driver, me) = Driver::join(&t.bus)?;
        Ok((driver, me, wait))
    }

    /// Joins the bus and finds the one callee.
    fn open(t: &Target) -> Result<Session, Failure> {
        let (mut driver, me, wait) = Session::join(t)?;
        let callee = find(&mut driver, me, &t.dst, wait)?;
        Ok(Session {
            driver,
            me,
            callee,
            timeout: Duration::from_millis(t.timeout),
            json: t.json,
        })
    }

    /// Makes one call and waits for its outcome (or a signal).
    fn call(&mut self, name: &str, args: Vec<Value>) -> Result<RpcOutcome, Failure> {
        let (callee, timeout) = (&self.callee, self.timeout);
        let id = entity(&mut self.driver.host, self.me)
            .with_endpoint(|ep, now| ep.rpc().call(now, callee, name, args, timeout))
            .map_err(Failure::input)?;
        let mut outcome = None;
        let ended = self
            .driver
            .run(
                Some(Instant::now() + self.timeout + Duration::from_secs(2)),
                |_| Flow::Continue,
                |_, _, event| match event {
                    Event::Rpc(RpcEvent::Returned {
                        call, outcome: o, ..
                    }) if call == id => {
                        outcome = Some(o);
                        Flow::Stop
                    }
                    _ => Flow::Continue,
                },
            )
            .map_err(Failure::input)?;
        match (outcome, ended) {
            (Some(o), _) => Ok(o),
            (None, Ended::Signal) => Err(Failure::interrupted("interrupted before the return")),
            (None, _) => Ok(RpcOutcome::TimedOut),
        }
    }

    fn close(mut self) {
        let _ = entity(&mut self.driver.host, self.me).close();
    }
}

/// Pings `dst` and waits to hear from one entity: unknown or not unique is
/// exit 2.
fn find(
    driver: &mut Driver,
    me: EntityId,
    dst: &Address,
    wait: Duration,
) -> Result<Address, Failure> {
    match reach::find(driver, me, dst, wait).map_err(Failure::input)? {
        None => Err(Failure::interrupted(
            "interrupted while looking for the callee",
        )),
        Some(Ok(full)) => Ok(full),
        Some(Err(e)) => Err(reach::not_found(&driver.host, me, e, |e| {
            Failure::input(format!("unknown callee: {e}"))
        })),
    }
}

/// The outcome as an exit: 0 OK; 1 FAILED or undeliverable; 2 UNKNOWN; 3 no
/// return in time (timed out, the callee left, nobody answered).
fn exit_for(outcome: &RpcOutcome, callee: &Address) -> Outcome {
    match outcome {
        RpcOutcome::Returned(r) if r.is_ok() => Ok(()),
        RpcOutcome::Returned(r) => Err(Failure::lost(format!(
            "{callee}: FAILED {} {:?}",
            r.result, r.description
        ))),
        RpcOutcome::Unknown => Err(Failure::input(format!(
            "{callee}: no such operation (UNKNOWN)"
        ))),
        RpcOutcome::Undeliverable => Err(Failure::lost(format!(
            "{callee}: the request was never acknowledged (undeliverable)"
        ))),
        RpcOutcome::TimedOut => Err(Failure::malformed(format!("{callee}: no return in time"))),
        RpcOutcome::CalleeLeft => Err(Failure::malformed(format!(
            "{callee}: left the bus before returning"
        ))),
        RpcOutcome::NoResponder => Err(Failure::malformed(format!("{callee}: nobody answered"))),
        RpcOutcome::Closed => Err(Failure::interrupted("interrupted before the return")),
        other => Err(Failure::malformed(format!("{callee}: {}", other.code()))),
    }
}

/// `(status result "description")` and the values, for people.
fn human(reply: &Reply) -> String {
    let status = Value::List(vec![
        Value::symbol(reply.status.as_str()),
        Value::symbol(reply.result.clone()),
        Value::string(reply.description.clone()),
    ]);
    format!("{status}\n{}\n", Value::List(reply.values.clone()))
}

fn json_outcome(outcome: &RpcOutcome, callee: &Address) -> serde_json::Value {
    let mut v = json!({"outcome": outcome.code(), "callee": callee.to_string()});
    if let RpcOutcome::Returned(r) = outcome {
        v["status"] = json!(r.status.as_str());
        v["result"] = json!(r.result);
        v["description"] = json!(r.description);
        v["values"] = serde_json::to_value(Tagged(&r.values)).unwrap_or_default();
    }
    v
}

fn print_line(text: &str) -> Outcome {
    write_stdout(format!("{text}\n").as_bytes())
}

/// With `--json`, a failure before the outcome is one outcome object too:
/// `{"outcome":"error","exit":N,"callee":"(…)","error":"…"}`.
fn json_error<T>(t: &Target, result: Result<T, Failure>) -> Result<T, Failure> {
    if let (true, Err(f)) = (t.json, &result) {
        let _ = print_line(&to_line(&json!({
            "outcome": "error",
            "exit": f.code,
            "callee": t.dst.to_string(),
            "error": f.message,
        })));
    }
    result
}

pub fn run_call(args: CallArgs) -> Outcome {
    let cmd = json_error(
        &args.target,
        crate::send::command(&args.command, &args.args).map_err(Failure::input),
    )?;
    if args.anycast || args.multicast {
        let rpc_type = if args.anycast {
            RpcType::Anycast
        } else {
            RpcType::Multicast
        };
        return group_call(&args.target, rpc_type, &cmd.name, cmd.args);
    }
    let mut session = json_error(&args.target, Session::open(&args.target))?;
    let outcome = json_error(&args.target, session.call(&cmd.name, cmd.args))?;
    let callee = session.callee.clone();
    if session.json {
        print_line(&to_line(&json_outcome(&outcome, &callee)))?;
    } else if let RpcOutcome::Returned(r) = &outcome {
        write_stdout(human(r).as_bytes())?;
    }
    session.close();
    exit_for(&outcome, &callee)
}

/// Prints the one value a property operation returned.
fn print_value(session: &Session, outcome: &RpcOutcome) -> Outcome {
    if session.json {
        return print_line(&to_line(&json_outcome(outcome, &session.callee)));
    }
    if let RpcOutcome::Returned(r) = outcome {
        if r.is_ok() {
            let text = match r.values.as_slice() {
                [one] => one.to_string(),
                more => Value::List(more.to_vec()).to_string(),
            };
            return print_line(&text);
        }
    }
    Ok(())
}

pub fn run_get(args: GetArgs) -> Outcome {
    let t = &args.target;
    let mut session = json_error(t, Session::open(t))?;
    let outcome = json_error(t, session.call(&format!("{}.get", args.property), vec![]))?;
    print_value(&session, &outcome)?;
    let callee = session.callee.clone();
    session.close();
    exit_for(&outcome, &callee)
}

pub fn run_set(args: SetArgs) -> Outcome {
    let t = &args.target;
    let value = json_error(
        t,
        Value::parse(&args.value).map_err(|e| {
            Failure::input(format!(
                "value '{}': {}",
                args.value,
                e.explain(&args.value)
            ))
        }),
    )?;
    let mut session = json_error(t, Session::open(t))?;
    // A value of another type than the property has is most likely a slip
    // (`abc` for 80 is the Symbol abc): said, or with --strict refused.
    let current = match session.call(&format!("{}.get", args.property), vec![]) {
        Err(f) => {
            // Interrupted: nothing is set.
            session.close();
            return json_error(t, Err(f));
        }
        Ok(RpcOutcome::Returned(r)) if r.is_ok() && r.values.len() == 1 => {
            r.values.first().cloned()
        }
        Ok(_) => None,
    };
    match current {
        Some(old) if type_name(&old) != type_name(&value) => {
            let why = format!(
                "{} is {} {old}; {} is {} {value}",
                args.property,
                type_name(&old),
                args.value,
                type_name(&value)
            );
            if args.strict {
                session.close();
                let refused = Failure::input(format!("{why} (--strict: not set)"));
                return json_error(t, Err(refused));
            }
            tracing::warn!("{why}: the property changes type");
        }
        None if args.strict => {
            session.close();
            let refused = Failure::input(format!(
                "{}: its current value could not be read, so its type cannot be checked (--strict: not set)",
                args.property
            ));
            return json_error(t, Err(refused));
        }
        _ => {}
    }
    let outcome = json_error(
        t,
        session.call(&format!("{}.set", args.property), vec![value]),
    )?;
    print_value(&session, &outcome)?;
    let callee = session.callee.clone();
    session.close();
    exit_for(&outcome, &callee)
}

/// A value's type, with its article, for a person.
fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Integer(_) | Value::BigInteger(_) => "an Integer",
        Value::Float(_) => "a Float",
        Value::String(_) => "a String",
        Value::Symbol(_) => "a Symbol",
        Value::List(_) => "a List",
        Value::Data(_) => "Data",
    }
}

/// One line of `watch --json`: every line has the same top level, `event`
/// (`value`, `changed` or `error`), `property` and `callee`, then the value
/// or what went wrong.
fn watch_line(event: &str, prop: &str, callee: &str, rest: serde_json::Value) -> String {
    let mut line = json!({"event": event, "property": prop, "callee": callee});
    if let (Some(line), serde_json::Value::Object(rest)) = (line.as_object_mut(), rest) {
        line.extend(rest);
    }
    to_line(&line)
}

fn tagged_one(value: &Value) -> serde_json::Value {
    serde_json::to_value(Tagged(std::slice::from_ref(value))).unwrap_or_default()[0].clone()
}

pub fn run_watch(args: WatchArgs) -> Outcome {
    let prop = args.property;
    let t = &args.target;
    let json = t.json;
    let failed = |f: Failure| {
        if json {
            let rest = json!({"exit": f.code, "error": f.message});
            let _ = print_line(&watch_line("error", &prop, &t.dst.to_string(), rest));
        }
        f
    };
    let mut session = Session::open(t).map_err(failed)?;
    let outcome = session
        .call(&format!("{prop}.watch"), vec![])
        .map_err(failed)?;
    let callee = session.callee.clone();
    if json {
        let line = match &outcome {
            RpcOutcome::Returned(r) if r.is_ok() => {
                let value = match r.values.as_slice() {
                    [one] => one.clone(),
                    more => Value::List(more.to_vec()),
                };
                watch_line(
                    "value",
                    &prop,
                    &callee.to_string(),
                    json!({"value": tagged_one(&value)}),
                )
            }
            other => watch_line(
                "error",
                &prop,
                &callee.to_string(),
                json_outcome(other, &callee),
            ),
        };
        print_line(&line)?;
    } else {
        print_value(&session, &outcome)?;
    }
    if !matches!(&outcome, RpcOutcome::Returned(r) if r.is_ok()) {
        session.close();
        return exit_for(&outcome, &callee);
    }
    let json = session.json;
    let mut gone = None;
    let mut write_failed = None;
    let ended = session
        .driver
        .run(
            None,
            |_| Flow::Continue,
            |_, _, event| match event {
                Event::Command { src, command, .. } if src == callee && command.name == prop => {
                    let value = match command.args.as_slice() {
                        [one] => one.clone(),
                        more => Value::List(more.to_vec()),
                    };
                    let line = if json {
                        watch_line(
                            "changed",
                            &prop,
                            &callee.to_string(),
                            json!({"value": tagged_one(&value)}),
                        )
                    } else {
                        value.to_string()
                    };
                    match print_line(&line) {
                        Ok(()) => Flow::Continue,
                        Err(e) => {
                            write_failed = Some(e);
                            Flow::Stop
                        }
                    }
                }
                Event::PeerLeft { addr, reason } if addr == callee => {
                    gone = Some(reason);
                    Flow::Stop
                }
                _ => Flow::Continue,
            },
        )
        .map_err(Failure::input)?;
    if let Some(reason) = gone {
        session.close();
        let f = Failure::malformed(format!("{callee} left the bus ({reason:?})"));
        if json {
            let rest = json!({"exit": f.code, "error": f.message});
            print_line(&watch_line("error", &prop, &callee.to_string(), rest))?;
        }
        return Err(f);
    }
    if ended == Ended::Signal || write_failed.is_some() {
        // Best effort: tell the callee we stopped watching, briefly.
        session.timeout = session.timeout.min(Duration::from_millis(500));
        let _ = session.call(&format!("{prop}.unwatch"), vec![]);
    }
    session.close();
    match write_failed {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// `call --anycast` and `call --multicast`: finds the group's entities, calls,
/// prints each outcome and exits with the worst.
fn group_call(t: &Target, rpc_type: RpcType, name: &str, args: Vec<Value>) -> Outcome {
    let (mut driver, me, wait) = Session::join(t)?;
    let first = rpc_type == RpcType::Anycast;
    let known = reach::gather(&mut driver, me, &t.dst, wait, first)
        .map_err(Failure::input)?
        .ok_or_else(|| Failure::interrupted("interrupted while looking for the callees"))?;
    if known.is_empty() {
        let hint = reach::key_hint(&driver.host, me);
        let _ = entity(&mut driver.host, me).close();
        let nobody = format!("no entity matching {} answered within --wait", t.dst);
        return json_error(
            t,
            Err(match hint {
                Some(hint) => Failure::input(format!("{nobody}; {hint}")),
                None => Failure::input(nobody),
            }),
        );
    }
    let timeout = Duration::from_millis(t.timeout);
    let id = entity(&mut driver.host, me)
        .with_endpoint(|ep, now| {
            ep.rpc()
                .call_group(now, &t.dst, name, args, rpc_type, timeout)
        })
        .map_err(Failure::input)?;
    let mut results = None;
    let ended = driver
        .run(
            Some(Instant::now() + timeout + Duration::from_secs(2)),
            |_| Flow::Continue,
            |_, _, event| match event {
                Event::Rpc(RpcEvent::Returned {
                    call,
                    callee,
                    outcome,
                }) if call == id => {
                    results = Some(vec![(callee, outcome)]);
                    Flow::Stop
                }
                Event::Rpc(RpcEvent::GroupReturned { call, results: r }) if call == id => {
                    results = Some(r);
                    Flow::Stop
                }
                _ => Flow::Continue,
            },
        )
        .map_err(Failure::input)?;
    let _ = entity(&mut driver.host, me).close();
    let results = match (results, ended) {
        (Some(r), _) => r,
        (None, Ended::Signal) => {
            return Err(Failure::interrupted("interrupted before the returns"))
        }
        // The core ends every call by its timeout; this is only a backstop.
        (None, _) if first => vec![(t.dst.clone(), RpcOutcome::TimedOut)],
        (None, _) => known
            .into_iter()
            .map(|a| (a, RpcOutcome::TimedOut))
            .collect(),
    };
    let mut worst: Outcome = Ok(());
    for (callee, outcome) in &results {
        if t.json {
            print_line(&to_line(&json_outcome(outcome, callee)))?;
        } else {
            match outcome {
                RpcOutcome::Returned(r) => {
                    write_stdout(format!("{callee}\n{}", human(r)).as_bytes())?
                }
                other => print_line(&format!("{callee}\n({})", other.code()))?,
            }
        }
        let exit = exit_for(outcome, callee);
        if exit_code(&exit) > exit_code(&worst) {
            worst = exit;
        }
    }
    worst
}

fn exit_code(outcome: &Outcome) -> u8 {
    outcome.as_ref().map_or_else(|f| f.code, |()| 0)
}
