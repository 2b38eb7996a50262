//! UCL common's `mbus.h` (version 1.2.19) on rmbus: `mbus_init`, the
//! message queue, `mbus_recv` and the handlers, the rendezvous, over
//! [`rmbus::runtime::Bus`] (RFC 3259).
//!
//! Ownership: a `struct mbus *` is a token of [`HANDLES`]; every string the
//! handlers get lives until the handler returns (they are `char *`, as in
//! UCL, and may be parsed in place); strings returned by the rendezvous
//! functions are the caller's, freed with `xfree`. Threads: one call at a
//! time per handle (a lock serialises them); handlers run on the calling
//! thread with no lock held, so they may call back into any function here.

use std::collections::{HashMap, VecDeque};
use std::ffi::{c_char, c_int, c_long, c_void, CString};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rmbus::proto::{Delivery, Event, LeaveReason, MsgId, SendError};
use rmbus::runtime::Bus;
use rmbus::wire::{Address, Command, Value};

use crate::common;
use crate::guard::{self, guarded, log};
use crate::table::Table;

/// `MBUS_MESSAGE_LOST`: a reliable message was not acknowledged.
pub const MBUS_MESSAGE_LOST: c_int = 1;
/// `MBUS_DESTINATION_UNKNOWN`: no known entity matches a reliable
/// destination.
pub const MBUS_DESTINATION_UNKNOWN: c_int = 2;
/// `MBUS_DESTINATION_NOT_UNIQUE`: several known entities match it.
pub const MBUS_DESTINATION_NOT_UNIQUE: c_int = 3;
/// `MBUS_ERR_MAX`: one past the last code.
pub const MBUS_ERR_MAX: c_int = 4;

/// Most commands one queued message takes (UCL's `MBUS_MAX_QLEN`).
const MAX_COMMANDS: usize = 50;
/// Most argument bytes one queued message takes, so that it stays within
/// what UCL receivers read (1500 bytes).
const MAX_MESSAGE_TEXT: usize = 1000;
/// How often the rendezvous functions send `mbus.waiting` and look again.
const RENDEZVOUS_STEP: Duration = Duration::from_millis(100);
/// How long a reliable message may take to be acknowledged or failed
/// (RFC 3259 §7: T_k = 600 ms), with a margin: how long `mbus_exit` lets
/// messages in flight settle, and `mbus_rendezvous_go` its go.
const GO_SETTLES: Duration = Duration::from_millis(700);

const fn padded(name: &[u8]) -> [u8; 30] {
    let mut out = [0u8; 30];
    let mut i = 0;
    while i < name.len() {
        out[i] = name[i];
        i += 1;
    }
    out
}

/// `mbus_errlist`: the codes' names, indexed by code, as UCL defines them
/// (its spelling of the last one included).
#[no_mangle]
pub static mbus_errlist: [[u8; 30]; 5] = [
    padded(b"MBUS_OK"),
    padded(b"MBUS_MESSAGE_LOST"),
    padded(b"MBUS_DESTINATION_UNKNOWN"),
    padded(b"MBUS_DESTINATION_NOT_UNIQUE"),
    padded(b"MBUS_UNKOWN_ERR"),
];

/// `struct mbus`: opaque to C; a pointer to it is a token of [`HANDLES`].
#[repr(C)]
pub struct Mbus {
    _opaque: [u8; 0],
}

/// UCL's command handler: `(src, cmd, args, data)`.
pub type CmdHandler =
    unsafe extern "C" fn(src: *mut c_char, cmd: *mut c_char, arg: *mut c_char, dat: *mut c_void);
/// UCL's error handler: `(seqnum, reason)`.
pub type ErrHandler = unsafe extern "C" fn(seqnum: c_int, reason: c_int);

/// Every live `struct mbus *`.
pub static HANDLES: Table<Ucl> = Table::new();

/// One UCL-style entity.
pub struct Ucl {
    state: Mutex<State>,
    fd: RawFd,
}

/// A message `mbus_qmsg` composed, not sent yet.
struct Queued {
    dest: Address,
    reliable: bool,
    commands: Vec<Command>,
    text: usize,
    seqnum: c_int,
}

struct State {
    bus: Bus,
    cmd_handler: Option<CmdHandler>,
    err_handler: Option<ErrHandler>,
    queue: Vec<Queued>,
    /// Events for the command handler that arrived outside `mbus_recv`.
    pending: VecDeque<Event>,
    /// Reliable messages in flight, by the number `mbus_qmsg` gave them.
    seqnums: HashMap<MsgId, c_int>,
    last_seqnum: c_int,
    last_error: CString,
    /// The rendezvous under way: what each waits for (every dispatch
    /// looks, so a nested `mbus_recv` in a handler cannot take it).
    watches: Vec<Watch>,
    next_watch: u64,
    exited: bool,
}

/// What a rendezvous waits for.
#[derive(Clone, Copy, PartialEq)]
enum WatchFor {
    /// `mbus.go (token)`, answering our `mbus.waiting`.
    Go,
    /// `mbus.waiting (token)`, to answer with `mbus.go`.
    Waiting,
}

/// One rendezvous under way, and who answered it.
struct Watch {
    id: u64,
    what: WatchFor,
    token: String,
    peer: Option<Address>,
}

impl Ucl {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records and logs a failure of function `what`.
    fn fail(&self, what: &str, why: &str) {
        self.lock().fail(what, why);
    }
}

impl State {
    fn fail(&mut self, what: &str, why: &str) {
        let line = format!("{what}: {why}");
        log(&line);
        self.last_error = CString::new(line.replace('\0', " ")).unwrap_or_default();
    }

    /// Takes the bus's events: failures and settled messages become calls
    /// of the error handler (returned), the rest waits in `pending` for
    /// `mbus_recv`.
    fn pull_events(&mut self) -> Vec<(c_int, c_int)> {
        let mut errors = Vec::new();
        while let Some(event) = self.bus.poll_event() {
            match event {
                Event::Delivered { id, .. } => {
                    self.seqnums.remove(&id);
                }
                Event::DeliveryFailed { id, .. } => {
                    if let Some(seq) = self.seqnums.remove(&id) {
                        errors.push((seq, MBUS_MESSAGE_LOST));
                    }
                }
                other => self.pending.push_back(other),
            }
        }
        errors
    }

    /// Sends the queue (what `mbus_send` does); refusals become calls of
    /// the error handler (returned).
    fn send_queue(&mut self) -> Vec<(c_int, c_int)> {
        let mut errors = Vec::new();
        for q in std::mem::take(&mut self.queue) {
            let seq = q.seqnum;
            let result = self.bus.with_endpoint(|ep, now| {
                if q.reliable {
                    let full = ep.unique_match(&q.dest)?;
                    ep.send(now, &full, q.commands, Delivery::Reliable)
                        .map(Some)
                } else {
                    ep.send(now, &q.dest, q.commands, Delivery::Unreliable)
                        .map(|_| None)
                }
            });
            match result {
                Ok(Some(id)) => {
                    self.seqnums.insert(id, seq);
                }
                Ok(None) => {}
                Err(SendError::UnknownDestination(d)) => {
                    self.fail("mbus_send", &format!("no known entity matches {d}"));
                    errors.push((seq, MBUS_DESTINATION_UNKNOWN));
                }
                Err(SendError::NotUnique { dst, matches }) => {
                    self.fail("mbus_send", &format!("{dst} matches {matches} entities"));
                    errors.push((seq, MBUS_DESTINATION_NOT_UNIQUE));
                }
                Err(e) => {
                    self.fail("mbus_send", &format!("message {seq} not sent: {e}"));
                    if q.reliable {
                        errors.push((seq, MBUS_MESSAGE_LOST));
                    }
                }
            }
        }
        if let Err(e) = self.bus.flush() {
            self.fail("mbus_send", &format!("the socket refused a datagram: {e}"));
        }
        errors
    }

    /// Runs due timers without reading.
    fn run_timers(&mut self, what: &str) {
        if let Err(e) = common::turn(&mut self.bus, false) {
            self.fail(what, &e.to_string());
        }
    }
}

/// The handle behind `m`, or a logged failure of `what`.
fn handle(m: *mut Mbus, what: &str) -> Option<Arc<Ucl>> {
    let found = HANDLES.get(m as usize);
    if found.is_none() {
        log(&format!(
            "{what}: {m:p} is not a live mbus handle (NULL, never returned by mbus_init, or used after mbus_exit)"
        ));
    }
    found
}

/// Calls the error handler for each failure, with no lock held.
fn report(ucl: &Ucl, errors: Vec<(c_int, c_int)>) {
    if errors.is_empty() {
        return;
    }
    let handler = ucl.lock().err_handler;
    for (seq, reason) in errors {
        match handler {
            // SAFETY: a function pointer C gave us, called with plain ints.
            Some(h) => unsafe { h(seq, reason) },
            None => log(&format!(
                "message {seq}: {} (no error handler was given to mbus_init)",
                reason_name(reason)
            )),
        }
    }
}

fn reason_name(reason: c_int) -> &'static str {
    match reason {
        MBUS_MESSAGE_LOST => "MBUS_MESSAGE_LOST",
        MBUS_DESTINATION_UNKNOWN => "MBUS_DESTINATION_UNKNOWN",
        MBUS_DESTINATION_NOT_UNIQUE => "MBUS_DESTINATION_NOT_UNIQUE",
        _ => "MBUS_UNKOWN_ERR",
    }
}

/// What one event means to a UCL command handler: `(src, cmd, args)`.
fn as_command(event: Event) -> Option<(Address, String, String)> {
    let condition = |c: String| common::args_text(&[Value::String(c)]);
    match event {
        Event::Command { src, command, .. } => {
            let args = common::args_text(&command.args);
            Some((src, command.name, args))
        }
        Event::PeerJoined(src) => Some((src, "mbus.hello".into(), String::new())),
        Event::PeerLeft {
            addr,
            reason: LeaveReason::Bye,
        } => Some((addr, "mbus.bye".into(), String::new())),
        Event::Quit { src } => Some((src, "mbus.quit".into(), String::new())),
        Event::Waiting { src, condition: c } => Some((src, "mbus.waiting".into(), condition(c))),
        Event::Go { src, condition: c } => Some((src, "mbus.go".into(), condition(c))),
        _ => None,
    }
}

impl State {
    /// True if a rendezvous under way takes `event` (it then goes to no
    /// handler).
    fn watched(&mut self, event: &Event) -> bool {
        let (what, src, condition) = match event {
            Event::Go { src, condition } => (WatchFor::Go, src, condition),
            Event::Waiting { src, condition } => (WatchFor::Waiting, src, condition),
            _ => return false,
        };
        // Newest first: a rendezvous nested in a handler takes its answer
        // before the one it interrupted.
        let found = self
            .watches
            .iter_mut()
            .rev()
            .find(|w| w.what == what && w.peer.is_none() && w.token == *condition);
        match found {
            Some(w) => {
                w.peer = Some(src.clone());
                true
            }
            None => false,
        }
    }

    fn watch(&mut self, what: WatchFor, token: &str) -> u64 {
        self.next_watch += 1;
        self.watches.push(Watch {
            id: self.next_watch,
            what,
            token: token.to_owned(),
            peer: None,
        });
        self.next_watch
    }

    fn answered(&self, id: u64) -> Option<Address> {
        self.watches.iter().find(|w| w.id == id)?.peer.clone()
    }

    fn unwatch(&mut self, id: u64) -> Option<Address> {
        let at = self.watches.iter().position(|w| w.id == id)?;
        self.watches.remove(at).peer
    }
}

/// Gives the pending events to the command handler (or the watch), one at
/// a time with no lock held; stops if the handle exits meanwhile.
fn dispatch(ucl: &Ucl, data: *mut c_void) {
    loop {
        let (event, handler) = {
            let mut st = ucl.lock();
            if st.exited {
                return;
            }
            let Some(event) = st.pending.pop_front() else {
                return;
            };
            if st.watched(&event) {
                continue;
            }
            (event, st.cmd_handler)
        };
        let Some((src, cmd, args)) = as_command(event) else {
            continue;
        };
        let Some(handler) = handler else {
            continue;
        };
        let mut src = guard::c_buffer(&src.to_string());
        let mut cmd = guard::c_buffer(&cmd);
        let mut args = guard::c_buffer(&args);
        // SAFETY: a function pointer C gave us; the three buffers are
        // NUL-terminated, writable and live until it returns; `data` is
        // what the caller of mbus_recv passed.
        unsafe {
            handler(
                src.as_mut_ptr().cast(),
                cmd.as_mut_ptr().cast(),
                args.as_mut_ptr().cast(),
                data,
            )
        };
    }
}

/// `mbus_recv`'s work: waits up to `wait` for datagrams (running timers
/// meanwhile; a wait beyond what the clock can hold is for ever), reads
/// them and runs the handlers. True if a datagram came.
fn receive(ucl: &Ucl, data: *mut c_void, wait: Duration) -> bool {
    let until = Instant::now().checked_add(wait);
    let mut readable = true;
    loop {
        let (arrived, errors) = {
            let mut st = ucl.lock();
            if st.exited {
                return false;
            }
            let arrived = match common::turn(&mut st.bus, readable) {
                Ok(n) => n,
                Err(e) => {
                    st.fail("mbus_recv", &e.to_string());
                    0
                }
            };
            (arrived, st.pull_events())
        };
        report(ucl, errors);
        dispatch(ucl, data);
        // The handlers may have sent (a new, earlier deadline) or exited.
        let deadline = {
            let st = ucl.lock();
            if st.exited {
                return arrived > 0;
            }
            st.bus.deadline()
        };
        let now = Instant::now();
        if arrived > 0 || until.is_some_and(|u| now >= u) {
            return arrived > 0;
        }
        let wake = match (deadline, until) {
            (Some(d), Some(u)) => Some(d.min(u)),
            (d, u) => d.or(u),
        };
        readable = common::wait_readable(ucl.fd, wake);
    }
}

/// Sends the queue and runs the timers, then reports failures: the common
/// part of `mbus_send`, `mbus_retransmit` and `mbus_heartbeat`.
fn drive(ucl: &Ucl, what: &str, send: bool) {
    let errors = {
        let mut st = ucl.lock();
        let mut errors = if send { st.send_queue() } else { Vec::new() };
        st.run_timers(what);
        errors.extend(st.pull_events());
        errors
    };
    report(ucl, errors);
}

/// `mbus_init`: joins the bus as `addr` with the configuration rmbus finds
/// (`$MBUS`, else `~/.mbus`, created when missing). NULL on failure.
///
/// # Safety
///
/// `addr` is NULL or a NUL-terminated string; the handlers are NULL or
/// functions of the declared types.
#[no_mangle]
pub unsafe extern "C" fn mbus_init(
    cmd_handler: Option<CmdHandler>,
    err_handler: Option<ErrHandler>,
    addr: *mut c_char,
) -> *mut Mbus {
    guarded("mbus_init", std::ptr::null_mut(), || {
        // SAFETY: the caller's promise above.
        let address = match unsafe { guard::text(addr, "the address") } {
            Ok(a) => a,
            Err(e) => {
                log(&format!("mbus_init: {e}"));
                return std::ptr::null_mut();
            }
        };
        let bus = match common::open_bus(None, address) {
            Ok(bus) => bus,
            Err(e) => {
                log(&format!("mbus_init: {e}"));
                return std::ptr::null_mut();
            }
        };
        if cmd_handler.is_none() {
            log("mbus_init: no command handler: commands received are dropped until mbus_cmd_handler sets one");
        }
        let fd = bus.as_raw_fd();
        let ucl = Ucl {
            state: Mutex::new(State {
                bus,
                cmd_handler,
                err_handler,
                queue: Vec::new(),
                pending: VecDeque::new(),
                seqnums: HashMap::new(),
                last_seqnum: 0,
                last_error: CString::default(),
                watches: Vec::new(),
                next_watch: 0,
                exited: false,
            }),
            fd,
        };
        match HANDLES.insert(ucl) {
            Some(token) => token as *mut Mbus,
            None => {
                log("mbus_init: no more handles can be made in this process");
                std::ptr::null_mut()
            }
        }
    })
}

/// `mbus_cmd_handler`: replaces the command handler.
///
/// # Safety
///
/// `cmd_handler` is NULL or a function of the declared type.
#[no_mangle]
pub unsafe extern "C" fn mbus_cmd_handler(m: *mut Mbus, cmd_handler: Option<CmdHandler>) {
    guarded("mbus_cmd_handler", (), || {
        if let Some(ucl) = handle(m, "mbus_cmd_handler") {
            ucl.lock().cmd_handler = cmd_handler;
        }
    })
}

/// `mbus_exit`: sends what is queued, says bye and leaves; `m` is dead
/// afterwards.
#[no_mangle]
pub extern "C" fn mbus_exit(m: *mut Mbus) {
    guarded("mbus_exit", (), || {
        let Some(ucl) = HANDLES.remove(m as usize) else {
            handle(m, "mbus_exit");
            return;
        };
        let errors = {
            let mut st = ucl.lock();
            let mut errors = st.send_queue();
            // What was just sent settles before the bye (at most T_k), so
            // that a message that arrives is not reported lost. Commands
            // received meanwhile have no handler to go to any more.
            let until = Instant::now() + GO_SETTLES;
            while st.bus.endpoint().in_flight() > 0 && Instant::now() < until {
                let wake = st.bus.deadline().map_or(until, |d| d.min(until));
                drop(st);
                let readable = common::wait_readable(ucl.fd, Some(wake));
                st = ucl.lock();
                if let Err(e) = common::turn(&mut st.bus, readable) {
                    st.fail("mbus_exit", &e.to_string());
                    break;
                }
                errors.extend(st.pull_events());
            }
            if let Err(e) = st.bus.close() {
                st.fail("mbus_exit", &format!("bye not sent: {e}"));
            }
            // Messages still unacknowledged are failed by the close.
            errors.extend(st.pull_events());
            st.exited = true;
            st.pending.clear();
            errors
        };
        // The handle is dead already: a handler that uses it gets an error.
        report(&ucl, errors);
    })
}

/// `mbus_addr_valid`: 1 if a known entity's address contains `addr`.
///
/// # Safety
///
/// `addr` is NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn mbus_addr_valid(m: *mut Mbus, addr: *mut c_char) -> c_int {
    guarded("mbus_addr_valid", 0, || {
        let Some(ucl) = handle(m, "mbus_addr_valid") else {
            return 0;
        };
        // SAFETY: the caller's promise above.
        let parsed = unsafe { guard::text(addr, "the address") }.and_then(common::parse_address);
        match parsed {
            Ok(a) => {
                let st = ucl.lock();
                let known = st
                    .bus
                    .endpoint()
                    .peers()
                    .any(|p| a.is_subset_of(&p.address));
                known as c_int
            }
            Err(e) => {
                ucl.fail("mbus_addr_valid", &e);
                0
            }
        }
    })
}

/// `mbus_qmsg`: queues `cmnd (args)` for `dest`.
///
/// # Safety
///
/// The strings are NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn mbus_qmsg(
    m: *mut Mbus,
    dest: *const c_char,
    cmnd: *const c_char,
    args: *const c_char,
    reliable: c_int,
) {
    guarded("mbus_qmsg", (), || {
        let Some(ucl) = handle(m, "mbus_qmsg") else {
            return;
        };
        // SAFETY: the caller's promise above.
        let parts = unsafe {
            (
                guard::text(dest, "the destination"),
                guard::text(cmnd, "the command"),
                guard::text(args, "the arguments"),
            )
        };
        let built = match parts {
            (Ok(d), Ok(c), Ok(a)) => common::parse_address(d)
                .and_then(|dest| common::command(c, a).map(|cmd| (dest, cmd, a.len()))),
            (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => Err(e),
        };
        let mut st = ucl.lock();
        match built {
            Ok((dest, cmd, text)) => st.queue_command(dest, cmd, text, reliable != 0),
            Err(e) => st.fail("mbus_qmsg", &format!("nothing queued: {e}")),
        }
    })
}

impl State {
    fn queue_command(&mut self, dest: Address, cmd: Command, text: usize, reliable: bool) {
        let text = text + cmd.name.len();
        if let Some(last) = self.queue.last_mut() {
            if last.dest == dest
                && last.commands.len() < MAX_COMMANDS
                && last.text + text < MAX_MESSAGE_TEXT
            {
                last.commands.push(cmd);
                last.text += text;
                last.reliable |= reliable;
                return;
            }
        }
        // UCL counts messages from 1 and wraps before a seventh digit.
        self.last_seqnum = self.last_seqnum % 999_999 + 1;
        self.queue.push(Queued {
            dest,
            reliable,
            commands: vec![cmd],
            text,
            seqnum: self.last_seqnum,
        });
    }
}

/// Called by `mbus_qmsgf` (C) when it cannot format its arguments.
///
/// # Safety
///
/// `why` is NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn rmbus_qmsgf_failed(m: *mut Mbus, why: *const c_char) {
    guarded("mbus_qmsgf", (), || {
        if let Some(ucl) = handle(m, "mbus_qmsgf") {
            // SAFETY: the caller's promise above.
            let why = unsafe { guard::text(why, "the reason") }.unwrap_or("failed");
            ucl.fail("mbus_qmsgf", why);
        }
    })
}

/// [`drive`] for the handle `m`, behind the panic guard.
fn drive_handle(m: *mut Mbus, what: &str, send: bool) {
    guarded(what, (), || {
        if let Some(ucl) = handle(m, what) {
            drive(&ucl, what, send);
        }
    })
}

/// `mbus_send`: sends every queued message.
#[no_mangle]
pub extern "C" fn mbus_send(m: *mut Mbus) {
    drive_handle(m, "mbus_send", true)
}

/// `mbus_recv`: waits up to `*timeout` for datagrams and runs the
/// handlers; 1 if a datagram came.
///
/// # Safety
///
/// `timeout` is NULL or points to a `struct timeval`.
#[no_mangle]
pub unsafe extern "C" fn mbus_recv(
    m: *mut Mbus,
    data: *mut c_void,
    timeout: *mut libc::timeval,
) -> c_int {
    guarded("mbus_recv", 0, || {
        let Some(ucl) = handle(m, "mbus_recv") else {
            return 0;
        };
        // SAFETY: the caller's promise above.
        let wait = match unsafe { timeout.as_ref() } {
            None => Duration::ZERO,
            Some(t) if t.tv_sec < 0 || t.tv_usec < 0 => {
                ucl.fail("mbus_recv", "a negative timeout is read as 0");
                Duration::ZERO
            }
            Some(t) => Duration::from_secs(t.tv_sec as u64)
                .saturating_add(Duration::from_micros(t.tv_usec as u64)),
        };
        receive(&ucl, data, wait) as c_int
    })
}

/// `mbus_retransmit`: runs the retransmission timers.
#[no_mangle]
pub extern "C" fn mbus_retransmit(m: *mut Mbus) {
    drive_handle(m, "mbus_retransmit", false)
}

/// `mbus_heartbeat`: runs the hello timer (RFC 3259 §9.1's schedule;
/// `interval` is not used).
#[no_mangle]
pub extern "C" fn mbus_heartbeat(m: *mut Mbus, interval: c_int) {
    let _ = interval;
    drive_handle(m, "mbus_heartbeat", false)
}

/// `mbus_waiting_ack`: 1 while a reliable message awaits its ack.
#[no_mangle]
pub extern "C" fn mbus_waiting_ack(m: *mut Mbus) -> c_int {
    guarded("mbus_waiting_ack", 0, || {
        handle(m, "mbus_waiting_ack").map_or(0, |ucl| {
            (ucl.lock().bus.endpoint().in_flight() > 0) as c_int
        })
    })
}

/// `mbus_sent_all`: 1 when nothing is queued or in flight.
#[no_mangle]
pub extern "C" fn mbus_sent_all(m: *mut Mbus) -> c_int {
    guarded("mbus_sent_all", 0, || {
        handle(m, "mbus_sent_all").map_or(0, |ucl| {
            let st = ucl.lock();
            (st.queue.is_empty() && st.bus.endpoint().in_flight() == 0) as c_int
        })
    })
}

/// How long a rendezvous may take: `None` for ever (UCL's 0, or more than
/// the clock can hold).
fn rendezvous_limit(usec: c_long) -> Option<Instant> {
    let usec = u64::try_from(usec).ok().filter(|&u| u > 0)?;
    Instant::now().checked_add(Duration::from_micros(usec))
}

/// How long a rendezvous waits for datagrams this turn: until `next`, and
/// not past `limit`.
fn step(next: Instant, limit: Option<Instant>) -> Duration {
    let until = limit.map_or(next, |l| l.min(next));
    until.saturating_duration_since(Instant::now())
}

/// `mbus_rendezvous_waiting`: `mbus.waiting (token)` to `addr` every
/// 100 ms until an `mbus.go (token)` comes; its sender's address (for
/// `xfree`), or NULL.
///
/// # Safety
///
/// `addr` and `token` are NULL or NUL-terminated strings.
#[no_mangle]
pub unsafe extern "C" fn mbus_rendezvous_waiting(
    m: *mut Mbus,
    addr: *mut c_char,
    token: *mut c_char,
    data: *mut c_void,
    rendezvous_timeout_usec: c_long,
) -> *mut c_char {
    guarded("mbus_rendezvous_waiting", std::ptr::null_mut(), || {
        let Some(ucl) = handle(m, "mbus_rendezvous_waiting") else {
            return std::ptr::null_mut();
        };
        // SAFETY: the caller's promise above.
        let parts = unsafe {
            (
                guard::text(addr, "the address"),
                guard::text(token, "the token"),
            )
        };
        let (dest, token) = match parts {
            (Ok(a), Ok(t)) => match common::parse_address(a) {
                Ok(d) => (d, t.to_owned()),
                Err(e) => {
                    ucl.fail("mbus_rendezvous_waiting", &e);
                    return std::ptr::null_mut();
                }
            },
            (Err(e), _) | (_, Err(e)) => {
                ucl.fail("mbus_rendezvous_waiting", &e);
                return std::ptr::null_mut();
            }
        };
        // UCL's peers read the token as a String (mbus_parse_str).
        let waiting = Command::new("mbus.waiting", vec![Value::String(token.clone())]);
        let limit = rendezvous_limit(rendezvous_timeout_usec);
        let id = ucl.lock().watch(WatchFor::Go, &token);
        let mut next_send = Instant::now();
        let peer = loop {
            if Instant::now() >= next_send {
                let mut st = ucl.lock();
                if st.exited {
                    break None;
                }
                let sent = st.bus.with_endpoint(|ep, now| {
                    ep.send(now, &dest, vec![waiting.clone()], Delivery::Unreliable)
                });
                if let Err(e) = sent {
                    st.fail("mbus_rendezvous_waiting", &common::send_error(&e));
                    break None;
                }
                next_send = Instant::now() + RENDEZVOUS_STEP;
            }
            drive(&ucl, "mbus_rendezvous_waiting", true);
            receive(&ucl, data, step(next_send, limit));
            let st = ucl.lock();
            if let Some(p) = st.answered(id) {
                break Some(p);
            }
            if st.exited || limit.is_some_and(|l| Instant::now() >= l) {
                break None;
            }
        };
        ucl.lock().unwatch(id);
        match peer {
            Some(p) => guard::malloc_string(p.to_string().as_bytes()),
            None => std::ptr::null_mut(),
        }
    })
}

/// `mbus_rendezvous_go`: waits for an `mbus.waiting (token)`, answers it
/// with a reliable `mbus.go (token)` and waits until that settles; the
/// waiter's address (for `xfree`), or NULL.
///
/// # Safety
///
/// `token` is NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn mbus_rendezvous_go(
    m: *mut Mbus,
    token: *mut c_char,
    data: *mut c_void,
    rendezvous_timeout_usec: c_long,
) -> *mut c_char {
    guarded("mbus_rendezvous_go", std::ptr::null_mut(), || {
        let Some(ucl) = handle(m, "mbus_rendezvous_go") else {
            return std::ptr::null_mut();
        };
        // SAFETY: the caller's promise above.
        let token = match unsafe { guard::text(token, "the token") } {
            Ok(t) => t.to_owned(),
            Err(e) => {
                ucl.fail("mbus_rendezvous_go", &e);
                return std::ptr::null_mut();
            }
        };
        let limit = rendezvous_limit(rendezvous_timeout_usec);
        let id = ucl.lock().watch(WatchFor::Waiting, &token);
        let peer = loop {
            drive(&ucl, "mbus_rendezvous_go", true);
            receive(&ucl, data, step(Instant::now() + RENDEZVOUS_STEP, limit));
            let st = ucl.lock();
            if let Some(p) = st.answered(id) {
                break Some(p);
            }
            if st.exited || limit.is_some_and(|l| Instant::now() >= l) {
                break None;
            }
        };
        ucl.lock().unwatch(id);
        let Some(peer) = peer else {
            return std::ptr::null_mut();
        };
        let go = Command::new("mbus.go", vec![Value::String(token.clone())]);
        let sent = {
            let mut st = ucl.lock();
            let sent = st
                .bus
                .with_endpoint(|ep, now| ep.send(now, &peer, vec![go], Delivery::Reliable));
            if let Err(e) = &sent {
                st.fail("mbus_rendezvous_go", &common::send_error(e));
            }
            sent
        };
        if sent.is_ok() {
            // Until the go is acknowledged or failed: the transport settles
            // it within 600 ms; other reliable traffic may go on longer.
            let until = Instant::now() + GO_SETTLES;
            loop {
                let settled = {
                    let st = ucl.lock();
                    st.exited || st.bus.endpoint().in_flight() == 0
                };
                if settled || Instant::now() >= until {
                    break;
                }
                drive(&ucl, "mbus_rendezvous_go", true);
                receive(&ucl, data, RENDEZVOUS_STEP);
            }
        }
        guard::malloc_string(peer.to_string().as_bytes())
    })
}

/// The text `mbus_last_error` returns for a handle that is not live.
static NOT_A_HANDLE: &[u8] =
    b"not a live mbus handle (NULL, never returned by mbus_init, or used after mbus_exit)\0";

/// `mbus_last_error` (rmbus's): why the most recent failed call on `m`
/// failed, or "". The text is a copy kept for the calling thread until its
/// next `mbus_last_error`, so that another thread's call (or `mbus_exit`)
/// cannot free it under the caller.
#[no_mangle]
pub extern "C" fn mbus_last_error(m: *mut Mbus) -> *const c_char {
    guarded(
        "mbus_last_error",
        NOT_A_HANDLE.as_ptr().cast(),
        || match HANDLES.get(m as usize) {
            Some(ucl) => {
                let text = ucl.lock().last_error.clone();
                guard::thread_copy(guard::Slot::Ucl, text)
            }
            None => NOT_A_HANDLE.as_ptr().cast(),
        },
    )
}

extern "C" {
    /// `mbus_qmsgf`'s body, in C (`src/qmsgf.c`): stable Rust cannot
    /// define a variadic function.
    fn rmbus_qmsgf_impl(
        m: *mut Mbus,
        dest: *const c_char,
        reliable: c_int,
        cmnd: *const c_char,
        format: *const c_char,
        ...
    );
}

/// `mbus_qmsgf(m, dest, reliable, cmnd, format, ...)`: `mbus_qmsg` with the
/// arguments formatted printf-style (in C, `src/qmsgf.c`). This is a jump
/// to that function with the caller's registers and stack untouched, so
/// that the variadic call arrives as made; being Rust, it is exported from
/// the shared library like every other function, whatever the linker.
///
/// # Safety
///
/// As `mbus_qmsg`, and the arguments match `format`.
#[cfg(target_arch = "x86_64")]
#[unsafe(naked)]
#[no_mangle]
pub unsafe extern "C" fn mbus_qmsgf() {
    std::arch::naked_asm!("jmp {}", sym rmbus_qmsgf_impl)
}

/// `mbus_qmsgf` on 64-bit ARM (see the x86-64 one).
///
/// # Safety
///
/// As `mbus_qmsg`, and the arguments match `format`.
#[cfg(target_arch = "aarch64")]
#[unsafe(naked)]
#[no_mangle]
pub unsafe extern "C" fn mbus_qmsgf() {
    std::arch::naked_asm!("b {}", sym rmbus_qmsgf_impl)
}

extern "C" {
    /// `mbus_qmsgf` as `src/qmsgf.c` defines it on the other targets.
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    fn mbus_qmsgf(
        m: *mut Mbus,
        dest: *const c_char,
        reliable: c_int,
        cmnd: *const c_char,
        format: *const c_char,
        ...
    );
}

/// Keeps the C `mbus_qmsgf` in the libraries on the other targets (the
/// linker takes from the C archive only what something refers to).
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
#[used]
static KEEP_QMSGF: unsafe extern "C" fn(
    *mut Mbus,
    *const c_char,
    c_int,
    *const c_char,
    *const c_char,
    ...
) = mbus_qmsgf;
