//! `mbus._native`: the Rust half of the `mbus` Python package (pyMbus's
//! API on rmbus). One class, [`Bus`]: an entity on the bus (RFC 3259) with
//! the Guidelines' RPC (Mbus Guidelines §5.2), driven by the Python layer's
//! loop through `process`. Values cross as tagged JSON ([`values`]),
//! events as a JSON list; the Python package (`python/mbus`) builds
//! pyMbus's classes on top.
//!
//! Errors become Python exceptions: `ValueError` for input that does not
//! parse, `LookupError` for a destination no known entity (or several)
//! matches, `RuntimeError` for a closed entity and refusals of the bus;
//! a Rust panic becomes PyO3's `PanicException`, never a crash.

use std::path::Path;
use std::time::{Duration, Instant};

use pyo3::exceptions::{PyLookupError, PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use rmbus::config::file;
use rmbus::proto::{Delivery, Event, LeaveReason, SendError};
use rmbus::rpc::{Answer, Outcome, Reply, RequestId, RpcEvent, RpcType};
use rmbus::wire::{Address, Command};
use serde_json::{json, Value as Json};

pub mod values;

/// An address as Python code writes it: `app:x module:y`, with or without
/// the parentheses.
fn address(text: &str) -> PyResult<Address> {
    let t = text.trim();
    let parsed = if t.starts_with('(') {
        Address::parse(t)
    } else {
        Address::parse(&format!("({t})"))
    };
    parsed.map_err(|e| PyValueError::new_err(format!("address {text:?}: {e}")))
}

fn json_arg(text: &str, what: &str) -> PyResult<Json> {
    serde_json::from_str(text).map_err(|e| PyValueError::new_err(format!("{what}: {e}")))
}

fn send_error(e: SendError) -> PyErr {
    match e {
        SendError::UnknownDestination(_) | SendError::NotUnique { .. } => {
            PyLookupError::new_err(e.to_string())
        }
        SendError::Encode(_) => PyValueError::new_err(e.to_string()),
        _ => PyRuntimeError::new_err(e.to_string()),
    }
}

/// One entity on the bus.
// Sendable, so that Python may drop it on any thread (its garbage
// collector does); the Python layer keeps every other use to the thread
// that made it.
#[pyclass(module = "mbus._native")]
pub struct Bus {
    inner: std::sync::Mutex<Option<rmbus::runtime::Bus>>,
    address: String,
    fd: i32,
}

impl Bus {
    fn is_closed(&self) -> bool {
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_none()
    }

    fn bus(&mut self) -> PyResult<&mut rmbus::runtime::Bus> {
        self.inner
            .get_mut()
            .unwrap_or_else(|p| p.into_inner())
            .as_mut()
            .ok_or_else(|| PyRuntimeError::new_err("the entity is closed"))
    }
}

fn outcome_json(callee: &Address, outcome: &Outcome) -> Json {
    let (result, description, values) = match outcome {
        Outcome::Returned(r) => (
            r.result.clone(),
            r.description.clone(),
            values::list_to_tagged(&r.values),
        ),
        _ => (String::new(), String::new(), json!([])),
    };
    json!({"callee": callee.to_string(), "outcome": outcome.code(), "result": result,
           "description": description, "values": values})
}

fn event_json(event: Event) -> Option<Json> {
    Some(match event {
        Event::Command {
            src,
            reliable,
            command,
        } => json!({"e": "command", "src": src.to_string(), "name": command.name,
                    "args": values::list_to_tagged(&command.args), "reliable": reliable}),
        Event::PeerJoined(a) => json!({"e": "joined", "addr": a.to_string()}),
        Event::PeerLeft { addr, reason } => json!({"e": "left", "addr": addr.to_string(),
            "reason": match reason { LeaveReason::Bye => "bye", LeaveReason::Timeout => "timeout", LeaveReason::Evicted => "evicted" }}),
        Event::Delivered { id, dst, .. } => {
            json!({"e": "delivered", "id": id.0, "dst": dst.to_string()})
        }
        Event::DeliveryFailed { id, dst } => {
            json!({"e": "failed", "id": id.0, "dst": dst.to_string()})
        }
        Event::Quit { src } => json!({"e": "quit", "src": src.to_string()}),
        Event::Waiting { src, condition } => {
            json!({"e": "waiting", "src": src.to_string(), "condition": condition})
        }
        Event::Go { src, condition } => {
            json!({"e": "go", "src": src.to_string(), "condition": condition})
        }
        Event::Rpc(RpcEvent::Request(r)) => {
            json!({"e": "request", "id": r.id.0, "src": r.src.to_string(),
            "name": r.name, "args": values::list_to_tagged(&r.args)})
        }
        Event::Rpc(RpcEvent::Returned {
            call,
            callee,
            outcome,
        }) => {
            let mut j = outcome_json(&callee, &outcome);
            j["e"] = json!("returned");
            j["call"] = json!(call.0);
            j
        }
        Event::Rpc(RpcEvent::GroupReturned { call, results }) => {
            json!({"e": "group", "call": call.0,
            "results": results.iter().map(|(a, o)| outcome_json(a, o)).collect::<Vec<_>>()})
        }
        _ => return None,
    })
}

#[pymethods]
impl Bus {
    /// Joins the bus as `address` (an id element is added if it has none),
    /// with the configuration file `config`, or `$MBUS`, else `~/.mbus`
    /// (created with fresh keys when missing).
    #[new]
    #[pyo3(signature = (address, config=None))]
    fn new(address: &str, config: Option<&str>) -> PyResult<Self> {
        let addr = self::address(address)?;
        let (path, loaded) = file::load_for_joining(config.map(Path::new))
            .map_err(|e| PyValueError::new_err(format!("configuration: {e}")))?;
        let bus = rmbus::runtime::Bus::bind(&loaded, &addr).map_err(|e| {
            PyRuntimeError::new_err(format!("joining with {}: {e}", path.display()))
        })?;
        use std::os::fd::AsRawFd;
        Ok(Bus {
            address: bus.local_address().to_string(),
            fd: bus.as_raw_fd(),
            inner: std::sync::Mutex::new(Some(bus)),
        })
    }

    /// Our complete address, `(…)`.
    fn address(&self) -> String {
        self.address.clone()
    }

    /// The descriptor that is readable while datagrams wait.
    fn fileno(&self) -> PyResult<i32> {
        if self.is_closed() {
            return Err(PyRuntimeError::new_err("the entity is closed"));
        }
        Ok(self.fd)
    }

    /// Seconds until a timer is due (0.0: now), or None.
    fn timeout(&self) -> Option<f64> {
        let d = self
            .inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()?
            .deadline()?;
        Some(d.saturating_duration_since(Instant::now()).as_secs_f64())
    }

    /// Waits up to `wait` seconds for a datagram or a timer (without the
    /// GIL), reads, runs the timers, and returns the events as a JSON list.
    fn process(&mut self, py: Python<'_>, wait: f64) -> PyResult<String> {
        let fd = self.fd;
        let bus = self.bus()?;
        let mut wait = if wait.is_finite() && wait > 0.0 {
            Duration::try_from_secs_f64(wait).unwrap_or(Duration::from_secs(86_400))
        } else {
            Duration::ZERO
        };
        if let Some(d) = bus.deadline() {
            wait = wait.min(d.saturating_duration_since(Instant::now()));
        }
        if !wait.is_zero() {
            let ms = wait.as_nanos().div_ceil(1_000_000).min(i32::MAX as u128) as i32;
            py.detach(|| {
                let mut pfd = libc::pollfd {
                    fd,
                    events: libc::POLLIN,
                    revents: 0,
                };
                // SAFETY: one valid pollfd.
                unsafe { libc::poll(&mut pfd, 1, ms) };
            });
        }
        bus.on_readable()
            .map_err(|e| PyRuntimeError::new_err(format!("reading the bus: {e}")))?;
        if bus.deadline().is_some_and(|d| d <= Instant::now()) {
            bus.on_timeout()
                .map_err(|e| PyRuntimeError::new_err(format!("the bus's timers: {e}")))?;
        }
        let mut events = Vec::new();
        while let Some(e) = bus.poll_event() {
            events.extend(event_json(e));
        }
        Ok(Json::Array(events).to_string())
    }

    /// Sends `commands` (JSON `[[name, [tagged args]], …]`) to `dst`;
    /// reliably, the message's id (its outcome comes as an event).
    fn send(&mut self, dst: &str, commands: &str, reliable: bool) -> PyResult<Option<u64>> {
        let dst = address(dst)?;
        let list = json_arg(commands, "commands")?;
        let mut cmds = Vec::new();
        for c in list.as_array().into_iter().flatten() {
            let (Some(name), Some(args)) = (c.get(0).and_then(Json::as_str), c.get(1)) else {
                return Err(PyValueError::new_err(format!("not a command: {c}")));
            };
            let args =
                values::list_from_tagged(&json!({ "l": args })).map_err(PyValueError::new_err)?;
            let cmd = Command::new(name, args);
            cmd.validate()
                .map_err(|e| PyValueError::new_err(format!("command {name:?}: {e}")))?;
            cmds.push(cmd);
        }
        if cmds.is_empty() {
            return Err(PyValueError::new_err(
                "a message needs at least one command",
            ));
        }
        let bus = self.bus()?;
        bus.with_endpoint(|ep, now| {
            if reliable {
                let full = ep.unique_match(&dst)?;
                ep.send(now, &full, cmds, Delivery::Reliable)
                    .map(|id| Some(id.0))
            } else {
                ep.send(now, &dst, cmds, Delivery::Unreliable).map(|_| None)
            }
        })
        .map_err(send_error)
    }

    /// How many known entities `dst` designates.
    fn matches(&mut self, dst: &str) -> PyResult<usize> {
        let dst = address(dst)?;
        let bus = self.bus()?;
        Ok(bus
            .endpoint()
            .peers()
            .filter(|p| dst.is_subset_of(&p.address))
            .count())
    }

    /// The addresses of the known entities.
    fn peers(&mut self) -> PyResult<Vec<String>> {
        let bus = self.bus()?;
        Ok(bus
            .endpoint()
            .peers()
            .map(|p| p.address.to_string())
            .collect())
    }

    /// Calls RPC `name` at the one entity `dst` designates (waiting for it
    /// to appear within the timeout); the call's id.
    fn call(&mut self, dst: &str, name: &str, args: &str, timeout_ms: u64) -> PyResult<u64> {
        let dst = address(dst)?;
        let args = values::list_from_tagged(&json!({ "l": json_arg(args, "arguments")? }))
            .map_err(PyValueError::new_err)?;
        let timeout = Duration::from_millis(timeout_ms);
        let bus = self.bus()?;
        bus.with_endpoint(|ep, now| ep.rpc().call_within(now, &dst, name, args, timeout))
            .map(|c| c.0)
            .map_err(send_error)
    }

    /// Calls RPC `name` at every entity `dst` designates (a MULTICAST RPC);
    /// the call's id.
    fn call_group(&mut self, dst: &str, name: &str, args: &str, timeout_ms: u64) -> PyResult<u64> {
        let dst = address(dst)?;
        let args = values::list_from_tagged(&json!({ "l": json_arg(args, "arguments")? }))
            .map_err(PyValueError::new_err)?;
        let timeout = Duration::from_millis(timeout_ms);
        let bus = self.bus()?;
        bus.with_endpoint(|ep, now| {
            ep.rpc()
                .call_group(now, &dst, name, args, RpcType::Multicast, timeout)
        })
        .map(|c| c.0)
        .map_err(|e| PyRuntimeError::new_err(e.to_string()))
    }

    /// Serves RPC `name` (requests come as events).
    fn serve(&mut self, name: &str) -> PyResult<()> {
        Command::new(name, vec![])
            .validate()
            .map_err(|e| PyValueError::new_err(format!("RPC name {name:?}: {e}")))?;
        self.bus()?.serve_events(name);
        Ok(())
    }

    /// Stops serving RPC `name`.
    fn unserve(&mut self, name: &str) -> PyResult<()> {
        self.bus()?.unserve(name);
        Ok(())
    }

    /// Answers request `request`: OK or FAILED with a result Symbol, a
    /// description and values (tagged JSON list); `unknown` answers
    /// `RPC-STATUS UNKNOWN` instead.
    #[pyo3(signature = (request, ok, result, description, values, unknown=false))]
    fn reply(
        &mut self,
        request: u64,
        ok: bool,
        result: &str,
        description: &str,
        values: &str,
        unknown: bool,
    ) -> PyResult<()> {
        let values = values::list_from_tagged(&json!({ "l": json_arg(values, "values")? }))
            .map_err(PyValueError::new_err)?;
        let answer: Answer = if unknown {
            Answer::Unknown
        } else if ok {
            Reply::ok_with(result, description, values).into()
        } else {
            Reply {
                values,
                ..Reply::failed(result, description)
            }
            .into()
        };
        let bus = self.bus()?;
        bus.with_endpoint(|ep, now| ep.rpc().reply(now, RequestId(request), answer))
            .map_err(|e| PyRuntimeError::new_err(e.to_string()))
    }

    /// Says bye and leaves; every later use raises. Returns the events the
    /// close made (calls still open end `closed`, messages still
    /// unacknowledged fail) as a JSON list, for their callbacks. A bye the
    /// socket refused is no error: the entity is gone either way, and the
    /// others notice its silence.
    fn close(&mut self) -> String {
        let mut events = Vec::new();
        let taken = self
            .inner
            .get_mut()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(mut bus) = taken {
            let _ = bus.close();
            while let Some(e) = bus.poll_event() {
                events.extend(event_json(e));
            }
        }
        Json::Array(events).to_string()
    }

    /// True once closed.
    fn closed(&self) -> bool {
        self.is_closed()
    }
}

/// The module `mbus._native`.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Bus>()?;
    Ok(())
}
