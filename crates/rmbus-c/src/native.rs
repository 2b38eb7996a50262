//! `rmbus.h`: rmbus's native C API. One entity per handle, driven by the
//! program's own loop through a descriptor and a deadline; reliable and
//! unreliable sends with a per-send outcome callback; RPC calls and
//! serving (Mbus Guidelines §5.2); errors as codes with a sentence.
//!
//! Ownership: `rmbus_open` returns a `Box` that `rmbus_close` frees (the
//! handle must not be used afterwards, nor by another thread meanwhile:
//! unlike UCL handles these are plain pointers, so that there is no global
//! state). Strings handed to callbacks live until the callback returns;
//! strings returned (`rmbus_error`, `rmbus_address`) live in the entity.
//! Threads: any thread, one call at a time (the entity's lock serialises
//! them; `rmbus_process` on two threads at once waits for the first);
//! callbacks run on the thread in `rmbus_process`, with no lock held.

use std::collections::HashMap;
use std::ffi::{c_char, c_int, c_void, CString};
use std::os::fd::{AsRawFd, RawFd};
use std::path::Path;
use std::sync::{Mutex, MutexGuard};
use std::thread::ThreadId;
use std::time::Duration;

use rmbus::proto::{Delivery, Event, MsgId, ReplyError, SendError};
use rmbus::rpc::{CallId, Outcome, Reply, RequestId, RpcEvent};
use rmbus::runtime::Bus;

use crate::common::{self, OpenError};
use crate::guard::{self, guarded};

/// `RMBUS_OK`.
pub const RMBUS_OK: c_int = 0;
/// `RMBUS_ERR_ARGUMENT`: a NULL, non-UTF-8 text, or text that does not parse.
pub const RMBUS_ERR_ARGUMENT: c_int = 1;
/// `RMBUS_ERR_CONFIG`: the configuration file.
pub const RMBUS_ERR_CONFIG: c_int = 2;
/// `RMBUS_ERR_BIND`: the sockets or the keys.
pub const RMBUS_ERR_BIND: c_int = 3;
/// `RMBUS_ERR_UNKNOWN_DESTINATION`.
pub const RMBUS_ERR_UNKNOWN_DESTINATION: c_int = 4;
/// `RMBUS_ERR_NOT_UNIQUE`.
pub const RMBUS_ERR_NOT_UNIQUE: c_int = 5;
/// `RMBUS_ERR_BUSY`: too many reliable messages in flight.
pub const RMBUS_ERR_BUSY: c_int = 6;
/// `RMBUS_ERR_CLOSED`: the entity said bye.
pub const RMBUS_ERR_CLOSED: c_int = 7;
/// `RMBUS_ERR_IO`: a socket error.
pub const RMBUS_ERR_IO: c_int = 8;
/// `RMBUS_ERR_REENTERED`: `rmbus_process`/`rmbus_close` from a callback.
pub const RMBUS_ERR_REENTERED: c_int = 9;
/// `RMBUS_ERR_NO_REQUEST`: no such open request.
pub const RMBUS_ERR_NO_REQUEST: c_int = 10;
/// `RMBUS_ERR_INTERNAL`: a bug caught at the boundary.
pub const RMBUS_ERR_INTERNAL: c_int = 11;

const CODE_NAMES: [&[u8]; 12] = [
    b"RMBUS_OK\0",
    b"RMBUS_ERR_ARGUMENT\0",
    b"RMBUS_ERR_CONFIG\0",
    b"RMBUS_ERR_BIND\0",
    b"RMBUS_ERR_UNKNOWN_DESTINATION\0",
    b"RMBUS_ERR_NOT_UNIQUE\0",
    b"RMBUS_ERR_BUSY\0",
    b"RMBUS_ERR_CLOSED\0",
    b"RMBUS_ERR_IO\0",
    b"RMBUS_ERR_REENTERED\0",
    b"RMBUS_ERR_NO_REQUEST\0",
    b"RMBUS_ERR_INTERNAL\0",
];

/// `rmbus_command_cb`.
pub type CommandCb = unsafe extern "C" fn(
    user: *mut c_void,
    src: *const c_char,
    command: *const c_char,
    args: *const c_char,
    reliable: c_int,
);
/// `rmbus_peer_cb`.
pub type PeerCb = unsafe extern "C" fn(user: *mut c_void, address: *const c_char, joined: c_int);
/// `rmbus_outcome_cb`.
pub type OutcomeCb = unsafe extern "C" fn(user: *mut c_void, delivered: c_int);
/// `rmbus_return_cb`.
pub type ReturnCb = unsafe extern "C" fn(user: *mut c_void, r: *const RmbusReturn);
/// `rmbus_request_cb`.
pub type RequestCb = unsafe extern "C" fn(
    user: *mut c_void,
    request: u64,
    src: *const c_char,
    name: *const c_char,
    args: *const c_char,
);

/// `rmbus_return`: how a call ended (strings valid during the callback).
#[repr(C)]
pub struct RmbusReturn {
    /// `ok`, `failed`, `unknown`, `undeliverable`, `timeout`,
    /// `callee_left`, `no_responder` or `closed`.
    pub outcome: *const c_char,
    /// The return's result Symbol, or "".
    pub result: *const c_char,
    /// The return's description, or "".
    pub description: *const c_char,
    /// The return's values (the inside of a list), or "".
    pub values: *const c_char,
    /// Who answered.
    pub callee: *const c_char,
}

/// A callback and its user pointer (kept as a number: C owns it).
struct Callback<F> {
    f: F,
    user: usize,
}

impl<F: Copy> Callback<F> {
    fn new(f: F, user: *mut c_void) -> Callback<F> {
        Callback {
            f,
            user: user as usize,
        }
    }

    fn user(&self) -> *mut c_void {
        self.user as *mut c_void
    }
}

struct State {
    bus: Bus,
    on_command: Option<Callback<CommandCb>>,
    on_peer: Option<Callback<PeerCb>>,
    outcomes: HashMap<MsgId, Callback<OutcomeCb>>,
    calls: HashMap<CallId, Callback<ReturnCb>>,
    serving: HashMap<String, Callback<RequestCb>>,
}

/// `rmbus_entity`.
pub struct RmbusEntity {
    state: Mutex<State>,
    /// Held for the whole of `rmbus_process` and `rmbus_close`.
    processing: Mutex<()>,
    /// The thread inside `rmbus_process`, if any (for re-entry).
    processor: Mutex<Option<ThreadId>>,
    last_error: Mutex<CString>,
    address: CString,
    fd: RawFd,
}

impl RmbusEntity {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records a failure and returns its code.
    fn fail(&self, code: c_int, why: impl Into<String>) -> c_int {
        let why = why.into().replace('\0', " ");
        *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) =
            CString::new(why).unwrap_or_default();
        code
    }

    fn ok(&self) -> c_int {
        self.fail(RMBUS_OK, "")
    }

    fn in_own_callback(&self) -> bool {
        *self.processor.lock().unwrap_or_else(|p| p.into_inner())
            == Some(std::thread::current().id())
    }
}

/// The entity behind `e`.
///
/// # Safety
///
/// `e` is NULL or came from `rmbus_open` and was not closed.
unsafe fn entity<'a>(e: *const RmbusEntity) -> Option<&'a RmbusEntity> {
    // SAFETY: the caller's promise above.
    unsafe { e.as_ref() }
}

fn send_code(e: &SendError) -> c_int {
    match e {
        SendError::UnknownDestination(_) => RMBUS_ERR_UNKNOWN_DESTINATION,
        SendError::NotUnique { .. } => RMBUS_ERR_NOT_UNIQUE,
        SendError::TooManyInFlight(_) => RMBUS_ERR_BUSY,
        SendError::Closed => RMBUS_ERR_CLOSED,
        _ => RMBUS_ERR_ARGUMENT,
    }
}

/// Runs `f` for the entity `e` behind the panic guard; NULL is
/// `RMBUS_ERR_ARGUMENT`.
///
/// # Safety
///
/// As [`entity`].
unsafe fn with_entity(
    e: *const RmbusEntity,
    what: &str,
    f: impl FnOnce(&RmbusEntity) -> c_int,
) -> c_int {
    guarded(what, RMBUS_ERR_INTERNAL, || {
        // SAFETY: the caller's promise above.
        match unsafe { entity(e) } {
            Some(ent) => f(ent),
            None => RMBUS_ERR_ARGUMENT,
        }
    })
}

/// `rmbus_code_name`: a code's name (static).
#[no_mangle]
pub extern "C" fn rmbus_code_name(code: c_int) -> *const c_char {
    let name = usize::try_from(code)
        .ok()
        .and_then(|c| CODE_NAMES.get(c))
        .copied()
        .unwrap_or(b"RMBUS_ERR_UNKNOWN_CODE\0");
    name.as_ptr().cast()
}

/// Writes `why` into the caller's buffer, cut to fit.
///
/// # Safety
///
/// `error` is NULL or valid for `len` bytes.
unsafe fn write_error(error: *mut c_char, len: u32, why: &str) {
    if error.is_null() || len == 0 {
        return;
    }
    let n = why.len().min(len as usize - 1);
    // SAFETY: the caller's promise above; n + 1 <= len bytes written.
    unsafe {
        std::ptr::copy_nonoverlapping(why.as_ptr(), error.cast::<u8>(), n);
        *error.add(n) = 0;
    }
}

/// `rmbus_open`: joins the bus as `address`.
///
/// # Safety
///
/// The strings are NULL or NUL-terminated; `code` is NULL or writable;
/// `error` is NULL or valid for `error_len` bytes.
#[no_mangle]
pub unsafe extern "C" fn rmbus_open(
    config_path: *const c_char,
    address: *const c_char,
    code: *mut c_int,
    error: *mut c_char,
    error_len: u32,
) -> *mut RmbusEntity {
    let (entity, c, why) = guarded(
        "rmbus_open",
        (None, RMBUS_ERR_INTERNAL, "internal error".to_owned()),
        || {
            // SAFETY: the caller's promise above.
            let address = match unsafe { guard::text(address, "the address") } {
                Ok(a) => a,
                Err(e) => return (None, RMBUS_ERR_ARGUMENT, e),
            };
            let config = if config_path.is_null() {
                None
            } else {
                // SAFETY: the caller's promise above.
                match unsafe { guard::text(config_path, "the configuration path") } {
                    Ok(p) => Some(Path::new(p)),
                    Err(e) => return (None, RMBUS_ERR_ARGUMENT, e),
                }
            };
            let bus = match common::open_bus(config, address) {
                Ok(b) => b,
                Err(e) => {
                    let c = match e {
                        OpenError::Config(_) => RMBUS_ERR_CONFIG,
                        OpenError::Address(_) => RMBUS_ERR_ARGUMENT,
                        OpenError::Bind(_) => RMBUS_ERR_BIND,
                    };
                    return (None, c, e.to_string());
                }
            };
            let ent = RmbusEntity {
                address: CString::new(bus.local_address().to_string()).unwrap_or_default(),
                fd: bus.as_raw_fd(),
                state: Mutex::new(State {
                    bus,
                    on_command: None,
                    on_peer: None,
                    outcomes: HashMap::new(),
                    calls: HashMap::new(),
                    serving: HashMap::new(),
                }),
                processing: Mutex::new(()),
                processor: Mutex::new(None),
                last_error: Mutex::new(CString::default()),
            };
            (Some(ent), RMBUS_OK, String::new())
        },
    );
    if !code.is_null() {
        // SAFETY: the caller's promise above.
        unsafe { code.write(c) };
    }
    // SAFETY: the caller's promise above.
    unsafe { write_error(error, error_len, &why) };
    match entity {
        Some(ent) => Box::into_raw(Box::new(ent)),
        None => std::ptr::null_mut(),
    }
}

/// `rmbus_close`: says bye and frees `e`.
///
/// # Safety
///
/// `e` is NULL or came from `rmbus_open`, was not closed, and no other
/// thread uses it.
#[no_mangle]
pub unsafe extern "C" fn rmbus_close(e: *mut RmbusEntity) -> c_int {
    guarded("rmbus_close", RMBUS_ERR_INTERNAL, || {
        // SAFETY: the caller's promise above.
        let Some(ent) = (unsafe { entity(e) }) else {
            return RMBUS_OK;
        };
        if ent.in_own_callback() {
            return ent.fail(
                RMBUS_ERR_REENTERED,
                "rmbus_close from one of the entity's callbacks",
            );
        }
        {
            let _turn = ent.processing.lock().unwrap_or_else(|p| p.into_inner());
            let events = {
                let mut st = ent.lock();
                let _ = st.bus.close();
                let mut events = Vec::new();
                while let Some(ev) = st.bus.poll_event() {
                    events.push(ev);
                }
                events
            };
            // Sends still unacknowledged end failed and open calls end
            // "closed": their callbacks hear it before the entity goes.
            deliver_all(ent, events);
        }
        // SAFETY: from Box::into_raw in rmbus_open; the caller gives it up.
        drop(unsafe { Box::from_raw(e) });
        RMBUS_OK
    })
}

/// `rmbus_error`: the last failure's sentence, or "".
///
/// # Safety
///
/// `e` is NULL or a live entity.
#[no_mangle]
pub unsafe extern "C" fn rmbus_error(e: *const RmbusEntity) -> *const c_char {
    static NULL_ENTITY: &[u8] = b"the entity is NULL\0";
    guarded("rmbus_error", NULL_ENTITY.as_ptr().cast(), || {
        // SAFETY: the caller's promise above.
        match unsafe { entity(e) } {
            // A copy for this thread: another thread's call cannot free it.
            Some(ent) => guard::thread_copy(
                guard::Slot::Native,
                ent.last_error
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .clone(),
            ),
            None => NULL_ENTITY.as_ptr().cast(),
        }
    })
}

/// `rmbus_address`: our complete address.
///
/// # Safety
///
/// `e` is NULL or a live entity.
#[no_mangle]
pub unsafe extern "C" fn rmbus_address(e: *const RmbusEntity) -> *const c_char {
    // SAFETY: the caller's promise above.
    match unsafe { entity(e) } {
        Some(ent) => ent.address.as_ptr(),
        None => c"".as_ptr(),
    }
}

/// `rmbus_fd`: the descriptor to watch for reading.
///
/// # Safety
///
/// `e` is NULL or a live entity.
#[no_mangle]
pub unsafe extern "C" fn rmbus_fd(e: *const RmbusEntity) -> c_int {
    // SAFETY: the caller's promise above.
    unsafe { entity(e) }.map_or(-1, |ent| ent.fd)
}

/// `rmbus_timeout_ms`: milliseconds until a timer is due, or -1.
///
/// # Safety
///
/// `e` is NULL or a live entity.
#[no_mangle]
pub unsafe extern "C" fn rmbus_timeout_ms(e: *const RmbusEntity) -> i64 {
    guarded("rmbus_timeout_ms", -1, || {
        // SAFETY: the caller's promise above.
        unsafe { entity(e) }
            .and_then(|ent| ent.lock().bus.deadline())
            .map_or(-1, common::millis_until)
    })
}

/// Calls the callback an event is for, if any, with no lock held.
fn deliver(ent: &RmbusEntity, event: Event) {
    match event {
        Event::Command {
            src,
            reliable,
            command: c,
        } => command(ent, &src, &c.name, &common::args_text(&c.args), reliable),
        Event::Quit { src } => command(ent, &src, "mbus.quit", "", false),
        Event::PeerJoined(addr) => peer(ent, addr, true),
        Event::PeerLeft { addr, .. } => peer(ent, addr, false),
        Event::Delivered { id, .. } | Event::DeliveryFailed { id, .. } => {
            let delivered = matches!(event, Event::Delivered { .. });
            let cb = ent.lock().outcomes.remove(&id);
            if let Some(cb) = cb {
                // SAFETY: as above.
                unsafe { (cb.f)(cb.user(), delivered as c_int) };
            }
        }
        Event::Rpc(RpcEvent::Request(req)) => {
            let cb = ent.lock().serving.get(&req.name).map(|c| (c.f, c.user()));
            match cb {
                Some((f, user)) => {
                    let src = CString::new(req.src.to_string()).unwrap_or_default();
                    let name = CString::new(req.name).unwrap_or_default();
                    let args = CString::new(common::args_text(&req.args)).unwrap_or_default();
                    // SAFETY: as above.
                    unsafe { f(user, req.id.0, src.as_ptr(), name.as_ptr(), args.as_ptr()) };
                }
                None => {
                    // Unserved since it arrived: answered as nobody serves it.
                    let _ = ent.lock().bus.with_endpoint(|ep, now| {
                        ep.rpc().reply(now, req.id, rmbus::rpc::Answer::Unknown)
                    });
                }
            }
        }
        Event::Rpc(RpcEvent::Returned {
            call,
            callee,
            outcome,
        }) => {
            let cb = ent.lock().calls.remove(&call);
            if let Some(cb) = cb {
                let text = |s: &str| CString::new(s).unwrap_or_default();
                let code = text(outcome.code());
                let (result, description, values) = match &outcome {
                    Outcome::Returned(r) => (
                        text(&r.result),
                        text(&r.description),
                        text(&common::args_text(&r.values)),
                    ),
                    _ => (text(""), text(""), text("")),
                };
                let callee = text(&callee.to_string());
                let r = RmbusReturn {
                    outcome: code.as_ptr(),
                    result: result.as_ptr(),
                    description: description.as_ptr(),
                    values: values.as_ptr(),
                    callee: callee.as_ptr(),
                };
                // SAFETY: as above; `r` and its strings live until it returns.
                unsafe { (cb.f)(cb.user(), &r) };
            }
        }
        _ => {}
    }
}

/// Calls the command callback, with no lock held.
fn command(ent: &RmbusEntity, src: &rmbus::wire::Address, name: &str, args: &str, reliable: bool) {
    let cb = ent.lock().on_command.as_ref().map(|c| (c.f, c.user()));
    if let Some((f, user)) = cb {
        let src = CString::new(src.to_string()).unwrap_or_default();
        let name = CString::new(name).unwrap_or_default();
        let args = CString::new(args).unwrap_or_default();
        // SAFETY: a callback C registered; the strings live until it returns.
        unsafe {
            f(
                user,
                src.as_ptr(),
                name.as_ptr(),
                args.as_ptr(),
                reliable as c_int,
            )
        };
    }
}

/// Calls the peer callback, with no lock held.
fn peer(ent: &RmbusEntity, addr: rmbus::wire::Address, joined: bool) {
    let cb = ent.lock().on_peer.as_ref().map(|c| (c.f, c.user()));
    if let Some((f, user)) = cb {
        let addr = CString::new(addr.to_string()).unwrap_or_default();
        // SAFETY: a callback C registered; the string lives until it returns.
        unsafe { f(user, addr.as_ptr(), joined as c_int) };
    }
}

/// Clears the mark of the thread in the callbacks, even if a callback's
/// panic unwinds (the guard catches it further up).
struct Unmark<'a>(&'a RmbusEntity);

impl Drop for Unmark<'_> {
    fn drop(&mut self) {
        *self.0.processor.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }
}

/// Calls the callbacks of `events`, marking this thread as the one in them
/// (so that `rmbus_process` and `rmbus_close` from one are refused).
fn deliver_all(ent: &RmbusEntity, events: Vec<Event>) {
    *ent.processor.lock().unwrap_or_else(|p| p.into_inner()) = Some(std::thread::current().id());
    let _unmark = Unmark(ent);
    for event in events {
        deliver(ent, event);
    }
}

/// `rmbus_process`: reads, runs due timers, calls the callbacks.
///
/// # Safety
///
/// `e` is NULL or a live entity.
#[no_mangle]
pub unsafe extern "C" fn rmbus_process(e: *mut RmbusEntity) -> c_int {
    // SAFETY: the caller's promise above.
    unsafe {
        with_entity(e, "rmbus_process", |ent| {
            if ent.in_own_callback() {
                return ent.fail(
                    RMBUS_ERR_REENTERED,
                    "rmbus_process from one of the entity's callbacks",
                );
            }
            let _turn = ent.processing.lock().unwrap_or_else(|p| p.into_inner());
            let (events, io) = {
                let mut st = ent.lock();
                let io = common::turn(&mut st.bus, true);
                let mut events = Vec::new();
                while let Some(ev) = st.bus.poll_event() {
                    events.push(ev);
                }
                (events, io)
            };
            deliver_all(ent, events);
            match io {
                Ok(_) => ent.ok(),
                Err(err) => ent.fail(RMBUS_ERR_IO, err.to_string()),
            }
        })
    }
}

/// `rmbus_on_command`: sets or removes the command callback.
///
/// # Safety
///
/// `e` is NULL or a live entity; `cb` is NULL or of the declared type.
#[no_mangle]
pub unsafe extern "C" fn rmbus_on_command(
    e: *mut RmbusEntity,
    cb: Option<CommandCb>,
    user: *mut c_void,
) -> c_int {
    // SAFETY: the caller's promise above.
    unsafe {
        with_entity(e, "rmbus_on_command", |ent| {
            ent.lock().on_command = cb.map(|f| Callback::new(f, user));
            ent.ok()
        })
    }
}

/// `rmbus_on_peer`: sets or removes the peer callback.
///
/// # Safety
///
/// `e` is NULL or a live entity; `cb` is NULL or of the declared type.
#[no_mangle]
pub unsafe extern "C" fn rmbus_on_peer(
    e: *mut RmbusEntity,
    cb: Option<PeerCb>,
    user: *mut c_void,
) -> c_int {
    // SAFETY: the caller's promise above.
    unsafe {
        with_entity(e, "rmbus_on_peer", |ent| {
            ent.lock().on_peer = cb.map(|f| Callback::new(f, user));
            ent.ok()
        })
    }
}

/// The destination and the command of a send or a call, from C text
/// (`dst_what` and `name_what` name them in errors).
///
/// # Safety
///
/// The strings are NULL or NUL-terminated.
unsafe fn target(
    dst: *const c_char,
    dst_what: &str,
    name: *const c_char,
    name_what: &str,
    args: *const c_char,
) -> Result<(rmbus::wire::Address, rmbus::wire::Command), String> {
    // SAFETY: the caller's promise above.
    let (dst, name, args) = unsafe {
        (
            guard::text(dst, dst_what)?,
            guard::text(name, name_what)?,
            guard::text(args, "the arguments")?,
        )
    };
    Ok((common::parse_address(dst)?, common::command(name, args)?))
}

/// `rmbus_send`: sends `command (args)` to `dst`.
///
/// # Safety
///
/// `e` is NULL or a live entity; the strings are NULL or NUL-terminated;
/// `done` is NULL or of the declared type.
#[no_mangle]
pub unsafe extern "C" fn rmbus_send(
    e: *mut RmbusEntity,
    dst: *const c_char,
    command: *const c_char,
    args: *const c_char,
    reliable: c_int,
    done: Option<OutcomeCb>,
    user: *mut c_void,
) -> c_int {
    // SAFETY: the caller's promise above.
    unsafe {
        with_entity(e, "rmbus_send", |ent| {
            let (dst, cmd) = match target(dst, "the destination", command, "the command", args) {
                Ok(p) => p,
                Err(why) => return ent.fail(RMBUS_ERR_ARGUMENT, why),
            };
            let sent = {
                let mut st = ent.lock();
                let sent = st.bus.with_endpoint(|ep, now| {
                    if reliable != 0 {
                        let full = ep.unique_match(&dst)?;
                        ep.send(now, &full, vec![cmd], Delivery::Reliable).map(Some)
                    } else {
                        ep.send(now, &dst, vec![cmd], Delivery::Unreliable)
                            .map(|_| None)
                    }
                });
                if let (Ok(Some(id)), Some(f)) = (&sent, done) {
                    st.outcomes.insert(*id, Callback::new(f, user));
                }
                sent
            };
            match sent {
                Ok(_) => ent.ok(),
                Err(err) => ent.fail(send_code(&err), err.to_string()),
            }
        })
    }
}

/// `rmbus_call`: calls RPC `name` at the one entity `dst` designates.
///
/// # Safety
///
/// `e` is NULL or a live entity; the strings are NULL or NUL-terminated;
/// `done` is NULL or of the declared type.
#[no_mangle]
pub unsafe extern "C" fn rmbus_call(
    e: *mut RmbusEntity,
    dst: *const c_char,
    name: *const c_char,
    args: *const c_char,
    timeout_ms: u32,
    done: Option<ReturnCb>,
    user: *mut c_void,
) -> c_int {
    // SAFETY: the caller's promise above.
    unsafe {
        with_entity(e, "rmbus_call", |ent| {
            let (dst, cmd) = match target(dst, "the callee", name, "the RPC name", args) {
                Ok(p) => p,
                Err(why) => return ent.fail(RMBUS_ERR_ARGUMENT, why),
            };
            let timeout = Duration::from_millis(u64::from(timeout_ms));
            let called = {
                let mut st = ent.lock();
                let called = st.bus.with_endpoint(|ep, now| {
                    ep.rpc()
                        .call_within(now, &dst, &cmd.name, cmd.args, timeout)
                });
                if let (Ok(call), Some(f)) = (&called, done) {
                    st.calls.insert(*call, Callback::new(f, user));
                }
                called
            };
            match called {
                Ok(_) => ent.ok(),
                Err(err) => ent.fail(send_code(&err), err.to_string()),
            }
        })
    }
}

/// `rmbus_serve`: serves RPC `name` (NULL `cb` stops).
///
/// # Safety
///
/// `e` is NULL or a live entity; `name` is NULL or NUL-terminated; `cb` is
/// NULL or of the declared type.
#[no_mangle]
pub unsafe extern "C" fn rmbus_serve(
    e: *mut RmbusEntity,
    name: *const c_char,
    cb: Option<RequestCb>,
    user: *mut c_void,
) -> c_int {
    // SAFETY: the caller's promise above.
    unsafe {
        with_entity(e, "rmbus_serve", |ent| {
            let name = match guard::text(name, "the RPC name")
                .and_then(|n| common::command(n, "").map(|c| c.name))
            {
                Ok(n) => n,
                Err(why) => return ent.fail(RMBUS_ERR_ARGUMENT, why),
            };
            let mut st = ent.lock();
            match cb {
                Some(f) => {
                    st.bus.serve_events(&name);
                    st.serving.insert(name, Callback::new(f, user));
                }
                None => {
                    st.bus.unserve(&name);
                    st.serving.remove(&name);
                }
            }
            drop(st);
            ent.ok()
        })
    }
}

/// `rmbus_reply`: answers request `request`.
///
/// # Safety
///
/// `e` is NULL or a live entity; the strings are NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn rmbus_reply(
    e: *mut RmbusEntity,
    request: u64,
    ok: c_int,
    result: *const c_char,
    description: *const c_char,
    values: *const c_char,
) -> c_int {
    // SAFETY: the caller's promise above.
    unsafe {
        with_entity(e, "rmbus_reply", |ent| {
            let parsed = (|| {
                let result = if result.is_null() {
                    if ok != 0 { "OK" } else { "FAILED" }.to_owned()
                } else {
                    guard::text(result, "the result")?.to_owned()
                };
                let description = if description.is_null() {
                    String::new()
                } else {
                    guard::text(description, "the description")?.to_owned()
                };
                let values = if values.is_null() {
                    Vec::new()
                } else {
                    common::parse_args(guard::text(values, "the values")?)?
                };
                Ok::<_, String>((result, description, values))
            })();
            let (result, description, values) = match parsed {
                Ok(p) => p,
                Err(why) => return ent.fail(RMBUS_ERR_ARGUMENT, why),
            };
            let reply = if ok != 0 {
                Reply::ok_with(&result, &description, values)
            } else {
                Reply {
                    values,
                    ..Reply::failed(&result, &description)
                }
            };
            let answered = ent
                .lock()
                .bus
                .with_endpoint(|ep, now| ep.rpc().reply(now, RequestId(request), reply));
            match answered {
                Ok(()) => ent.ok(),
                Err(ReplyError::NoSuchRequest(_)) => ent.fail(
                    RMBUS_ERR_NO_REQUEST,
                    format!("no open request {request} (answered already, or never received)"),
                ),
                Err(ReplyError::Send(err)) => ent.fail(send_code(&err), err.to_string()),
                Err(err) => ent.fail(RMBUS_ERR_ARGUMENT, err.to_string()),
            }
        })
    }
}
