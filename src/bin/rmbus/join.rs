//! `rmbus join`: an entity for scripts, driven by lines on stdin, reporting
//! events on stdout.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use rmbus::proto::cmd::Go;
use rmbus::proto::{Delivery, Event, LeaveReason, MsgId};
use rmbus::rpc::{Answer, CallId, Outcome as RpcOutcome, Reply, RequestId, RpcEvent};
use rmbus::runtime::{EntityId, Host};
use rmbus::wire::{Address, Command, Value};
use serde_json::{json, Value as Json};

use crate::bus_args::BusArgs;
use crate::driver::{entity, Driver, Ended, Flow};
use crate::reach::{Found, Search};
use crate::{Failure, Outcome};
use rmbus::record::Tagged;

/// Run an entity for scripts: actions on stdin, events on stdout.
#[derive(clap::Args)]
#[command(
    after_help = concat!(r#"Actions, one per line on stdin (ADDR in parentheses, ARGS one Mbus list, default ()):
  send ADDR CMD [ARGS]     send unreliably
  rsend ADDR CMD [ARGS]    send reliably (an unknown ADDR is pinged and waited for first,
                           like send --reliable)
  call ADDR CMD [ARGS]     call an RPC (an unknown ADDR is waited for first); its outcome is a
                           returned event with the action's id
  return #N STATUS [RESULT ["DESCRIPTION"]] [(VALUES)]
                           answer request event number N (its "request" field;
                           its rpc_id works too while no other open request has
                           it: every caller numbers its calls from 0), STATUS OK,
                           FAILED or UNKNOWN
  go ADDR CONDITION        release an entity waiting for CONDITION (mbus.go)
  wait CONDITION           announce mbus.waiting every 100 ms until released
  stats                    print the entity's counters (a stats event)
  bye                      leave (after messages in flight settle)

Events, one per line on stdout (with --json, one JSON object each):
  ready, joined, lost, command, request, returned, ok, delivered, failed, quit,
  waiting, go, stats, error, left
Every action is answered by an event with its id (the input line number);
delivered/failed carry the id of their rsend or go, returned that of its call.
Every RPC request to this entity is a request event (nothing is answered for the
script). End of input acts like bye: calls and reliable messages settle first.
An mbus.waiting that an entity repeats every 100 ms is one waiting event (again
after a second's pause). The last line is always a left event (reason bye or
signal, with the counts of errors and failures).

As text, each line is the event's name, then key=value fields in a fixed order;
a value with spaces, quotes or = is in double quotes (JSON escapes).

Exit status: 0 after bye, end of input, Ctrl-C or SIGTERM, whatever the actions
did (each outcome is an event); with --strict, 2 if an action was refused, else
1 if one failed.

Example:
  printf 'rsend (app:peer) test.ping ()\n' | rmbus join --json --address '(app:me)'

"#, exit_codes!())
)]
pub struct Args {
    #[command(flatten)]
    bus: BusArgs,
    /// One JSON object per event.
    #[arg(long)]
    json: bool,
    /// How long an rsend or call waits to hear from its destination, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 2.0)]
    wait: f64,
    /// How long a call waits for its return, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 2000)]
    timeout: u64,
    /// Make the script's errors count in the exit status: 2 if an action was
    /// refused (an error event), else 1 if one failed (a failed event, or a
    /// call that did not return OK).
    #[arg(long)]
    strict: bool,
}

/// A parsed input line.
enum Action {
    Send {
        dst: Address,
        command: Command,
        reliable: bool,
    },
    Go {
        dst: Address,
        condition: String,
    },
    Wait {
        condition: String,
    },
    Call {
        dst: Address,
        command: Command,
    },
    Return {
        request: RequestRef,
        answer: Answer,
    },
    /// Print the entity's counters.
    Stats,
    Bye,
}

/// How a `return` names the request it answers.
enum RequestRef {
    /// The caller's RPC ID, as in the request event's `rpc_id`.
    RpcId(String),
    /// `#N`: the request event's `request` number.
    Number(u64),
}

/// `CMD [ARGS]` after an address.
fn named_command(rest: &str) -> Result<Command, String> {
    let rest = rest.trim_start();
    let split = rest
        .find(|c: char| c.is_whitespace() || c == '(')
        .unwrap_or(rest.len());
    let (name, list) = rest.split_at(split);
    if name.is_empty() {
        return Err("expected a command name".into());
    }
    let list = if list.trim().is_empty() { "()" } else { list };
    crate::send::command(name, list)
}

/// `ID STATUS [RESULT ["DESCRIPTION"]] [(VALUES)]`.
fn return_action(rest: &str) -> Result<Action, String> {
    let rest = rest.trim();
    let (id, tail) = rest
        .split_once(char::is_whitespace)
        .ok_or("expected: return #N STATUS … (N the request number)")?;
    let request = match id.strip_prefix('#') {
        Some(n) => RequestRef::Number(
            n.parse()
                .map_err(|_| format!("bad request number {id:?}"))?,
        ),
        None => RequestRef::RpcId(id.to_owned()),
    };
    let parts = match Value::parse(&format!("({tail})")) {
        Ok(Value::List(parts)) => parts,
        Ok(_) => return Err("after the ID: expected STATUS …".into()),
        Err(e) => return Err(format!("after the ID: {e}")),
    };
    let status = parts.first().and_then(Value::as_str).unwrap_or("");
    let rest = &parts[1..];
    let answer = match status {
        "UNKNOWN" if rest.is_empty() => Answer::Unknown,
        "OK" | "FAILED" => {
            let mut reply = if status == "OK" {
                Reply::ok(vec![])
            } else {
                Reply::failed("FAILED", "")
            };
            let mut rest = rest.iter().peekable();
            if let Some(Value::Symbol(s)) = rest.peek() {
                reply.result = s.clone();
                rest.next();
            } else {
                reply.result = status.to_owned();
            }
            if let Some(Value::String(s)) = rest.peek() {
                reply.description = s.clone();
                rest.next();
            }
            if let Some(Value::List(values)) = rest.peek() {
                reply.values = values.clone();
                rest.next();
            }
            if rest.next().is_some() {
                return Err("expected STATUS [RESULT [\"DESCRIPTION\"]] [(VALUES)]".into());
            }
            Answer::Reply(reply)
        }
        _ => return Err("STATUS must be OK, FAILED or UNKNOWN (UNKNOWN alone)".into()),
    };
    Ok(Action::Return { request, answer })
}

/// `(…)` at the start of `text`, and the rest.
fn address(text: &str) -> Result<(Address, &str), String> {
    let text = text.trim_start();
    let end = text
        .find(')')
        .filter(|_| text.starts_with('('))
        .ok_or("expected an address in parentheses")?;
    let addr = Address::parse(&text[..=end]).map_err(|e| e.to_string())?;
    Ok((addr, &text[end + 1..]))
}

fn parse(line: &str) -> Result<Action, String> {
    let line = line.trim();
    let (verb, rest) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
    match verb {
        "send" | "rsend" => {
            let (dst, rest) = address(rest)?;
            Ok(Action::Send {
                dst,
                command: named_command(rest)?,
                reliable: verb == "rsend",
            })
        }
        "call" => {
            let (dst, rest) = address(rest)?;
            Ok(Action::Call {
                dst,
                command: named_command(rest)?,
            })
        }
        "return" => return_action(rest),
        "go" => {
            let (dst, rest) = address(rest)?;
            let condition = rest.trim();
            if condition.is_empty() || condition.contains(char::is_whitespace) {
                return Err("expected one condition".into());
            }
            Ok(Action::Go {
                dst,
                condition: condition.to_owned(),
            })
        }
        "wait" if !rest.trim().is_empty() && !rest.trim().contains(char::is_whitespace) => {
            Ok(Action::Wait {
                condition: rest.trim().to_owned(),
            })
        }
        "wait" => Err("expected one condition".into()),
        "bye" if rest.trim().is_empty() => Ok(Action::Bye),
        "stats" if rest.trim().is_empty() => Ok(Action::Stats),
        _ => Err(format!(
            "unknown action {verb:?}; expected send, rsend, call, return, go, wait, stats or bye"
        )),
    }
}

/// Prints events, as JSON lines or as text, and counts the ones that say
/// something went wrong (for `--strict`).
struct Out {
    json: bool,
    errors: Cell<u64>,
    failures: Cell<u64>,
}

/// The order of the fields in a text line: who and what first, then the
/// outcome, then the payload; anything else after, by name.
const FIELD_ORDER: &[&str] = &[
    "id",
    "action",
    "to",
    "address",
    "src",
    "callee",
    "reliable",
    "name",
    "rpc_id",
    "request",
    "type",
    "outcome",
    "status",
    "result",
    "description",
    "reason",
    "condition",
    "after_ms",
    "errors",
    "failures",
    "args",
    "values",
    "detail",
    "config",
    "group",
    "port",
    "scope",
];

/// A text field's value: a string as it is unless it holds white space,
/// quotes, `=` or nothing, then in double quotes with JSON escapes; numbers
/// and lists as JSON.
fn text_value(v: &Json) -> String {
    match v {
        Json::String(s)
            if s.is_empty() || s.contains(|c: char| c.is_whitespace() || c == '"' || c == '=') =>
        {
            v.to_string()
        }
        Json::String(s) => s.clone(),
        other => other.to_string(),
    }
}

impl Out {
    fn new(json: bool) -> Out {
        Out {
            json,
            errors: Cell::new(0),
            failures: Cell::new(0),
        }
    }

    fn emit(&self, event: Json) {
        match event["event"].as_str() {
            Some("error") => self.errors.set(self.errors.get() + 1),
            Some("failed") => self.failures.set(self.failures.get() + 1),
            Some("returned") if event["outcome"] != "ok" => {
                self.failures.set(self.failures.get() + 1)
            }
            _ => {}
        }
        let mut out = std::io::stdout().lock();
        let _ = if self.json {
            writeln!(out, "{event}")
        } else {
            writeln!(out, "{}", text_line(&event))
        };
        let _ = out.flush();
    }

    fn error(&self, id: Option<u64>, reason: impl std::fmt::Display) {
        let mut e = json!({"event": "error", "reason": reason.to_string()});
        if let Some(id) = id {
            e["id"] = json!(id);
        }
        self.emit(e);
    }
}

struct PendingSend {
    line: u64,
    search: Search,
    command: Command,
    what: Pending,
}

/// What a destination is looked for for.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Pending {
    Rsend,
    Go,
    Call,
}

impl Pending {
    fn name(self) -> &'static str {
        match self {
            Pending::Rsend => "rsend",
            Pending::Go => "go",
            Pending::Call => "call",
        }
    }
}

/// A request event the script has not answered yet.
struct OpenRequest {
    rpc_id: String,
    id: RequestId,
    /// Who asked, and for what: to name the candidates of an ambiguous
    /// answer.
    src: String,
    name: String,
}

/// An event as one line of text: its name, then `key=value` fields in
/// [`FIELD_ORDER`].
fn text_line(event: &Json) -> String {
    let name = event["event"].as_str().unwrap_or_default();
    let Some(fields) = event.as_object() else {
        return name.to_owned();
    };
    let rank = |k: &str| {
        FIELD_ORDER
            .iter()
            .position(|f| *f == k)
            .unwrap_or(FIELD_ORDER.len())
    };
    let mut keys: Vec<&String> = fields.keys().filter(|k| *k != "event").collect();
    keys.sort_by(|a, b| rank(a).cmp(&rank(b)).then(a.cmp(b)));
    let rest: Vec<String> = keys
        .into_iter()
        .map(|k| format!("{k}={}", text_value(&fields[k])))
        .collect();
    format!("{name:<9} {}", rest.join(" "))
        .trim_end()
        .to_owned()
}

/// Milliseconds with microsecond precision (no float noise such as
/// `0.30434100000000003`).
fn millis(d: Duration) -> f64 {
    d.as_micros() as f64 / 1000.0
}

/// How long a repeated `mbus.waiting` is shown once: an entity announces it
/// every 100 ms while it waits; after a pause this long it is shown again.
const WAITING_SHOWN_FOR: Duration = Duration::from_secs(1);

/// The `returned` event of a call.
fn returned_event(line: Option<u64>, callee: &Address, outcome: &RpcOutcome) -> Json {
    let mut e = json!({"event": "returned", "id": line, "callee": callee.to_string(), "outcome": outcome.code()});
    if let RpcOutcome::Returned(r) = outcome {
        e["status"] = json!(r.status.as_str());
        e["result"] = json!(r.result);
        e["description"] = json!(r.description);
        e["values"] = serde_json::to_value(Tagged(&r.values)).unwrap_or_default();
    }
    e
}

pub fn run(args: Args) -> Outcome {
    let wait = Duration::try_from_secs_f64(args.wait)
        .map_err(|e| Failure::input(format!("--wait: {e}")))?;
    let (mut driver, me) = Driver::join(&args.bus)?;
    let out = Out::new(args.json);
    let ready = entity(&mut driver.host, me).with_endpoint(|ep, _| {
        ep.rpc().serve_all(true);
        ep.local_address().to_string()
    });
    out.emit(crate::bus_args::with_config_fields(
        json!({"event": "ready", "address": ready}),
    ));
    let timeout = Duration::from_millis(args.timeout);

    // Stdin is read on a thread (so that it is never made non-blocking); each
    // line wakes the event loop.
    let (tx, lines) = mpsc::channel::<Option<String>>();
    let waker = driver.waker().map_err(Failure::input)?;
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            if tx.send(Some(line)).is_err() {
                return;
            }
            let _ = waker.wake();
        }
        let _ = tx.send(None);
        let _ = waker.wake();
    });

    let mut line_no = 0u64;
    let mut leaving = false;
    let mut pending: Vec<PendingSend> = Vec::new();
    let ids: RefCell<HashMap<MsgId, u64>> = RefCell::new(HashMap::new());
    let calls: RefCell<HashMap<CallId, u64>> = RefCell::new(HashMap::new());
    let requests: RefCell<Vec<(u64, OpenRequest)>> = RefCell::new(Vec::new());
    let waiting: RefCell<HashMap<(String, String), Instant>> = RefCell::new(HashMap::new());
    let tick = |host: &mut Host| {
        let mut bus = entity(host, me);
        while !leaving {
            let Ok(next) = lines.try_recv() else { break };
            let Some(line) = next else {
                leaving = true;
                break;
            };
            line_no += 1;
            if line.trim().is_empty() || line.trim_start().starts_with('#') {
                continue;
            }
            match parse(&line) {
                Err(reason) => out.error(Some(line_no), reason),
                Ok(Action::Bye) => {
                    out.emit(json!({"event": "ok", "id": line_no, "action": "bye"}));
                    leaving = true;
                }
                Ok(Action::Stats) => {
                    let s = bus.endpoint().stats();
                    out.emit(json!({
                        "event": "stats", "id": line_no,
                        "datagrams_in": s.datagrams_in, "datagrams_out": s.datagrams_out,
                        "unicast_out": s.unicast_out, "reliable_sent": s.reliable_sent,
                        "retransmissions": s.retransmissions, "acknowledged": s.acknowledged,
                        "failed": s.failed, "duplicates": s.duplicates,
                        "rejected_auth": s.rejected_auth,
                        "rejected_malformed": s.rejected_malformed,
                        "rejected_replay": s.rejected_replay,
                        "not_for_us": s.not_for_us,
                    }));
                }
                Ok(Action::Send {
                    dst,
                    command,
                    reliable: false,
                }) => match bus.with_endpoint(|ep, now| {
                    ep.send(now, &dst, vec![command], Delivery::Unreliable)
                }) {
                    Ok(_) => out.emit(json!({"event": "ok", "id": line_no, "action": "send"})),
                    Err(e) => out.error(Some(line_no), e),
                },
                Ok(Action::Send {
                    dst,
                    command,
                    reliable: true,
                }) => {
                    pending.push(PendingSend {
                        line: line_no,
                        search: Search::start(&mut bus, &dst, wait),
                        command,
                        what: Pending::Rsend,
                    });
                }
                Ok(Action::Call { dst, command }) => {
                    pending.push(PendingSend {
                        line: line_no,
                        search: Search::start(&mut bus, &dst, wait),
                        command,
                        what: Pending::Call,
                    });
                }
                Ok(Action::Return { request, answer }) => {
                    let mut open = requests.borrow_mut();
                    let hits: Vec<usize> = open
                        .iter()
                        .enumerate()
                        .filter(|(_, (n, r))| match &request {
                            RequestRef::Number(want) => n == want,
                            RequestRef::RpcId(want) => r.rpc_id == *want,
                        })
                        .map(|(i, _)| i)
                        .collect();
                    match hits.as_slice() {
                        [i] => {
                            let (_, r) = open.remove(*i);
                            match bus.with_endpoint(|ep, now| ep.rpc().reply(now, r.id, answer)) {
                                Ok(()) => out.emit(
                                    json!({"event": "ok", "id": line_no, "action": "return"}),
                                ),
                                Err(e) => out.error(Some(line_no), e),
                            }
                        }
                        [] => out.error(Some(line_no), "no open request with that ID"),
                        many => {
                            let candidates: Vec<String> = many
                                .iter()
                                .map(|i| {
                                    let (n, r) = &open[*i];
                                    format!("#{n} ({} from {})", r.name, r.src)
                                })
                                .collect();
                            out.error(
                                Some(line_no),
                                format!(
                                    "several open requests have that RPC ID (callers number their calls from 0): {}; answer with #N",
                                    candidates.join(", ")
                                ),
                            )
                        }
                    }
                }
                Ok(Action::Go { dst, condition }) => {
                    let cmd = Go { condition }.into_command();
                    pending.push(PendingSend {
                        line: line_no,
                        search: Search::start(&mut bus, &dst, wait),
                        command: cmd,
                        what: Pending::Go,
                    });
                }
                Ok(Action::Wait { condition }) => {
                    match bus.with_endpoint(|ep, now| {
                        ep.start_waiting(now, &Address::empty(), &condition)
                    }) {
                        Ok(()) => out.emit(json!({"event": "ok", "id": line_no, "action": "wait"})),
                        Err(e) => out.error(Some(line_no), e),
                    }
                }
            }
        }
        let now = Instant::now();
        pending.retain_mut(|p| match p.search.check(bus.endpoint().view(), now) {
            Found::NotYet => true,
            Found::No(e) => {
                out.error(Some(p.line), e);
                false
            }
            Found::Unique(full) if p.what == Pending::Call => {
                let Command { name, args } = p.command.clone();
                match bus.with_endpoint(|ep, now| ep.rpc().call(now, &full, &name, args, timeout)) {
                    Ok(id) => {
                        calls.borrow_mut().insert(id, p.line);
                        out.emit(json!({"event": "ok", "id": p.line, "action": "call", "to": full.to_string()}));
                    }
                    Err(e) => out.error(Some(p.line), e),
                }
                false
            }
            Found::Unique(full) => {
                let command = p.command.clone();
                match bus.with_endpoint(|ep, now| {
                    ep.send(now, &full, vec![command], Delivery::Reliable)
                }) {
                    Ok(id) => {
                        ids.borrow_mut().insert(id, p.line);
                        out.emit(json!({"event": "ok", "id": p.line, "action": p.what.name(), "to": full.to_string()}));
                    }
                    Err(e) => out.error(Some(p.line), e),
                }
                false
            }
        });
        let settled = bus.with_endpoint(|ep, _| ep.in_flight() == 0 && ep.rpc().open_calls() == 0);
        if leaving && pending.is_empty() && settled {
            Flow::Stop
        } else if let Some(t) = pending.iter().map(|p| p.search.next_check()).min() {
            Flow::WakeAt(t.max(now + std::time::Duration::from_millis(5)))
        } else {
            Flow::Continue
        }
    };
    let on_event = |_: &mut Host, _: EntityId, event: Event| {
        let line = |id: &MsgId| ids.borrow().get(id).copied();
        let e = match event {
            Event::PeerJoined(a) => json!({"event": "joined", "address": a.to_string()}),
            Event::PeerLeft { addr, reason } => {
                json!({"event": "lost", "address": addr.to_string(), "reason": match reason { LeaveReason::Bye => "bye", LeaveReason::Timeout => "timeout", LeaveReason::Evicted => "evicted" }})
            }
            Event::Command {
                src,
                reliable,
                command,
            } => {
                json!({"event": "command", "src": src.to_string(), "reliable": reliable, "name": command.name, "args": Tagged(&command.args)})
            }
            Event::Delivered { id, dst, after } => {
                json!({"event": "delivered", "id": line(&id), "to": dst.to_string(), "after_ms": millis(after)})
            }
            Event::DeliveryFailed { id, dst } => {
                json!({"event": "failed", "id": line(&id), "to": dst.to_string()})
            }
            Event::Quit { src } => json!({"event": "quit", "src": src.to_string()}),
            Event::Waiting { src, condition } => {
                let now = Instant::now();
                let mut seen = waiting.borrow_mut();
                seen.retain(|_, at: &mut Instant| now.duration_since(*at) < WAITING_SHOWN_FOR);
                if seen.len() >= 4096 {
                    seen.clear();
                }
                let key = (src.to_string(), condition.clone());
                let again = seen.insert(key, now).is_some();
                if again {
                    return Flow::Continue;
                }
                json!({"event": "waiting", "src": src.to_string(), "condition": condition})
            }
            Event::Go { src, condition } => {
                json!({"event": "go", "src": src.to_string(), "condition": condition})
            }
            Event::Rpc(RpcEvent::Request(r)) => {
                let mut open = requests.borrow_mut();
                let number = r.id.0;
                open.push((
                    number,
                    OpenRequest {
                        rpc_id: r.rpc_id.clone(),
                        id: r.id,
                        src: r.src.to_string(),
                        name: r.name.clone(),
                    },
                ));
                json!({"event": "request", "rpc_id": r.rpc_id, "request": number, "src": r.src.to_string(), "name": r.name, "type": r.rpc_type.as_str(), "args": Tagged(&r.args)})
            }
            Event::Rpc(RpcEvent::Returned {
                call,
                callee,
                outcome,
            }) => returned_event(calls.borrow_mut().remove(&call), &callee, &outcome),
            other => json!({"event": "other", "detail": format!("{other:?}")}),
        };
        out.emit(e);
        Flow::Continue
    };
    let ended = driver.run(None, tick, on_event).map_err(Failure::input)?;
    entity(&mut driver.host, me)
        .close()
        .map_err(Failure::input)?;
    while let Some((_, event)) = driver.host.poll_event() {
        if let Event::DeliveryFailed { id, dst } = event {
            out.emit(
                json!({"event": "failed", "id": ids.borrow().get(&id), "to": dst.to_string()}),
            );
        }
    }
    // The last line, however the run ended.
    let (errors, failures) = (out.errors.get(), out.failures.get());
    let reason = if ended == Ended::Signal {
        "signal"
    } else {
        "bye"
    };
    out.emit(json!({"event": "left", "reason": reason, "errors": errors, "failures": failures}));
    match (args.strict, errors, failures) {
        (true, 1.., _) => Err(Failure::input(format!(
            "{errors} action(s) refused, {failures} failed (--strict)"
        ))),
        (true, 0, 1..) => Err(Failure::lost(format!(
            "{failures} action(s) failed (--strict)"
        ))),
        _ => Ok(()),
    }
}
