//! `GET /monitor`: live monitors over a WebSocket, in the JSON protocol of
//! leviathan_rest_lib's monitor (`start`/`stop` from the client;
//! `response`, `event` and `error` from us; a client `sequence` carried
//! back, a server-chosen `monitorID`), beyond its limits: many monitors per
//! connection, every kind of change, and filters.
//!
//! Every connection has a bounded queue; the [`Hub`] never waits for one.
//! A connection whose queue overflows gets one `error` saying how many
//! events it missed, then the stream goes on; one that overflows three
//! times in a minute, or that reads nothing for `--ws-idle` while we have
//! something for it, is closed with code 1008 and a logged reason.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use crate::cmbs::Layer;
use crate::occi::Server;
use axum::extract::ws::{CloseFrame, Message as Frame, WebSocket};
use futures_util::{FutureExt, SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::sync::mpsc;

/// What a monitor watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Members: joined, left, state changed, layer started or stopped.
    Members,
    /// Messages: created, delivered (per recipient), refused, failed, executed.
    Messages,
    /// Every datagram on the bus, as `rmbus monitor --json` prints it.
    Raw,
}

impl Kind {
    fn parse(s: &str) -> Option<Kind> {
        match s {
            "members" => Some(Kind::Members),
            "messages" => Some(Kind::Messages),
            "raw" => Some(Kind::Raw),
            _ => None,
        }
    }
}

/// One change, with what the filters look at.
#[derive(Debug, Clone)]
pub struct Note {
    /// Which monitors hear it.
    pub kind: Kind,
    /// `member joined`, `message delivered`, `datagram`, …
    pub event: &'static str,
    /// The event's data.
    pub data: Value,
    /// The member it is about (or the recipient).
    pub member: Option<String>,
    /// The layers it concerns (a member's started layers, a message's layer).
    pub layers: Vec<Layer>,
    /// Topics: a member's subscriptions, a message's topics.
    pub topics: Vec<String>,
    /// Raw: the datagram's command names.
    pub commands: Vec<String>,
}

impl Note {
    /// A note about `member`.
    pub fn new(kind: Kind, event: &'static str, data: Value) -> Note {
        Note {
            kind,
            event,
            data,
            member: None,
            layers: Vec::new(),
            topics: Vec::new(),
            commands: Vec::new(),
        }
    }
}

struct Conn {
    id: u64,
    tx: mpsc::Sender<Arc<Note>>,
    missed: Arc<AtomicU64>,
    /// The kinds its monitors watch (a bit per [`Kind`]): nothing else is
    /// queued for it.
    kinds: Arc<AtomicUsize>,
}

impl Kind {
    fn bit(self) -> usize {
        match self {
            Kind::Members => 1,
            Kind::Messages => 2,
            Kind::Raw => 4,
        }
    }
}

/// Where changes go: to every connection's bounded queue, never waiting.
pub struct Hub {
    log: super::Log,
    conns: Mutex<Vec<Conn>>,
    next: AtomicU64,
    queue: usize,
    raw_monitors: AtomicUsize,
}

impl Hub {
    /// Says `what` in the gateway's log.
    pub fn log(&self, what: String) {
        (self.log)(what)
    }

    /// A hub whose connections queue at most `queue` events each; what
    /// the gateway has to say goes to `log`.
    pub fn new(queue: usize, log: super::Log) -> Arc<Hub> {
        Arc::new(Hub {
            log,
            conns: Mutex::new(Vec::new()),
            next: AtomicU64::new(1),
            queue: queue.max(1),
            raw_monitors: AtomicUsize::new(0),
        })
    }

    fn conns(&self) -> std::sync::MutexGuard<'_, Vec<Conn>> {
        self.conns.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Hands `note` to every connection; a full queue counts it as missed.
    pub fn publish(&self, note: Note) {
        let note = Arc::new(note);
        let bit = note.kind.bit();
        let mut conns = self.conns();
        conns.retain(|c| {
            if c.kinds.load(Ordering::Relaxed) & bit == 0 {
                return !c.tx.is_closed();
            }
            match c.tx.try_send(Arc::clone(&note)) {
                Ok(()) => true,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    c.missed.fetch_add(1, Ordering::Relaxed);
                    true
                }
                Err(mpsc::error::TrySendError::Closed(_)) => false,
            }
        });
    }

    /// True while some connection watches the raw datagrams.
    pub fn wants_raw(&self) -> bool {
        self.raw_monitors.load(Ordering::Relaxed) > 0
    }

    fn subscribe(&self) -> Subscription {
        let (tx, rx) = mpsc::channel(self.queue);
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let missed = Arc::new(AtomicU64::new(0));
        let kinds = Arc::new(AtomicUsize::new(0));
        self.conns().push(Conn {
            id,
            tx,
            missed: Arc::clone(&missed),
            kinds: Arc::clone(&kinds),
        });
        Subscription {
            id,
            queue: rx,
            missed,
            kinds,
        }
    }

    fn unsubscribe(&self, id: u64) {
        self.conns().retain(|c| c.id != id);
    }
}

/// A connection's end of the hub.
struct Subscription {
    id: u64,
    queue: mpsc::Receiver<Arc<Note>>,
    missed: Arc<AtomicU64>,
    kinds: Arc<AtomicUsize>,
}

/// A monitor's filter: every given field must hold.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Filter {
    member: Option<String>,
    layer: Option<Layer>,
    topic: Option<String>,
    command: Option<String>,
}

impl Filter {
    /// Reads `{"member": ID, "layer": L, "topic": PATTERN, "command": PREFIX}`.
    pub fn parse(v: Option<&Value>) -> Result<Filter, String> {
        let mut f = Filter::default();
        let Some(v) = v.filter(|v| !v.is_null()) else {
            return Ok(f);
        };
        let o = v.as_object().ok_or("filter must be an object")?;
        for (k, v) in o {
            let s = v
                .as_str()
                .ok_or_else(|| format!("filter {k} must be a string"))?
                .to_owned();
            match k.as_str() {
                "member" => f.member = Some(s),
                "layer" => {
                    f.layer = Some(Layer::parse(&s).ok_or_else(|| format!("unknown layer {s:?}"))?)
                }
                "topic" => {
                    crate::cmbs::topic::validate_subscription(&s)
                        .map_err(|e| format!("filter topic: {e}"))?;
                    f.topic = Some(s);
                }
                "command" => f.command = Some(s),
                other => {
                    return Err(format!(
                        "unknown filter {other:?} (member, layer, topic, command)"
                    ))
                }
            }
        }
        Ok(f)
    }

    /// True if `n` passes. A topic pattern keeps messages with a topic it
    /// matches and members subscribed to exactly that pattern.
    pub fn keeps(&self, n: &Note) -> bool {
        let member = self
            .member
            .as_ref()
            .is_none_or(|m| n.member.as_ref() == Some(m));
        let layer = self.layer.is_none_or(|l| n.layers.contains(&l));
        let topic = self.topic.as_ref().is_none_or(|p| match n.kind {
            Kind::Members => n.topics.contains(p),
            _ => n.topics.iter().any(|t| crate::cmbs::topic::matches(p, t)),
        });
        let command = self
            .command
            .as_ref()
            .is_none_or(|p| n.commands.iter().any(|c| crate::wire::is_under(c, p)));
        member && layer && topic && command
    }
}

/// What a new monitor's `response` shows: the current members or messages.
pub type StateOf = Arc<dyn Fn(Kind, &Filter) -> Vec<Value> + Send + Sync>;

/// A connection's settings.
#[derive(Clone)]
pub struct Session {
    /// Where changes come from.
    pub hub: Arc<Hub>,
    /// The current state for responses.
    pub state: StateOf,
    /// How long a send may wait on a client that reads nothing.
    pub idle: Duration,
    /// How often a ping goes to the client; one that answers none for
    /// three of these is closed.
    pub ping_every: Duration,
    /// Who is connected, for the log.
    pub user: Option<String>,
}

/// The most monitors on one connection.
pub const MAX_MONITORS: usize = 32;

/// Bytes written to the socket at once from a connection's buffer.
pub const WRITE_BUFFER: usize = 128 << 10;

/// The largest event sent; a larger one is replaced by an `error` saying
/// so (a raw datagram of 64 KiB shown as JSON stays well below).
pub const LARGEST_EVENT: usize = 1 << 20;

struct Monitors {
    by_id: BTreeMap<String, (Kind, Filter)>,
    next: u64,
}

impl Monitors {
    fn raw_count(&self) -> usize {
        self.by_id.values().filter(|(k, _)| *k == Kind::Raw).count()
    }

    fn kinds(&self) -> usize {
        self.by_id.values().fold(0, |m, (k, _)| m | k.bit())
    }
}

fn error(sequence: Option<&Value>, reason: impl Into<String>) -> Value {
    let mut e = json!({"type": "error", "reason": reason.into()});
    if let Some(s) = sequence {
        e["sequence"] = s.clone();
    }
    e
}

/// Answers one client message.
fn on_client(text: &str, monitors: &mut Monitors, s: &Session) -> Value {
    if let Err(e) = crate::occi::check_integers(text.as_bytes()) {
        return error(None, e.to_string());
    }
    let v: Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => return error(None, format!("not JSON: {e}")),
    };
    let seq = v.get("sequence");
    match v.get("type").and_then(Value::as_str) {
        Some("start") => {
            let Some(kind) = v
                .get("monitor")
                .and_then(Value::as_str)
                .and_then(Kind::parse)
            else {
                return error(seq, "monitor must be members, messages or raw");
            };
            let filter = match Filter::parse(v.get("filter")) {
                Ok(f) => f,
                Err(e) => return error(seq, e),
            };
            let id = match v.get("monitorID") {
                None | Some(Value::Null) => {
                    if monitors.by_id.len() >= MAX_MONITORS {
                        return error(
                            seq,
                            format!("at most {MAX_MONITORS} monitors per connection"),
                        );
                    }
                    monitors.next += 1;
                    format!("m{}", monitors.next)
                }
                Some(Value::String(id)) if monitors.by_id.contains_key(id) => id.clone(),
                Some(other) => return error(seq, format!("no monitor {other} to replace")),
            };
            let state = if kind == Kind::Raw {
                Vec::new()
            } else {
                (s.state)(kind, &filter)
            };
            let before = monitors.raw_count();
            monitors.by_id.insert(id.clone(), (kind, filter));
            adjust_raw(s, before, monitors.raw_count());
            json!({"type": "response", "sequence": seq, "monitorID": id, "state": state})
        }
        Some("stop") => {
            let id = v.get("monitorID").and_then(Value::as_str).unwrap_or("");
            let before = monitors.raw_count();
            if monitors.by_id.remove(id).is_none() {
                return error(seq, format!("no monitor {id:?}"));
            }
            adjust_raw(s, before, monitors.raw_count());
            json!({"type": "response", "sequence": seq, "monitorID": id})
        }
        Some(other) => error(seq, format!("unknown type {other:?} (start, stop)")),
        None => error(seq, "a message needs a type (start, stop)"),
    }
}

fn adjust_raw(s: &Session, before: usize, after: usize) {
    if after > before {
        s.hub
            .raw_monitors
            .fetch_add(after - before, Ordering::Relaxed);
    } else if before > after {
        s.hub
            .raw_monitors
            .fetch_sub(before - after, Ordering::Relaxed);
    }
}

/// One JSON value as a text frame; an event over [`LARGEST_EVENT`] is
/// replaced by an error saying so.
fn text(v: &Value) -> Frame {
    let mut t = v.to_string();
    if t.len() > LARGEST_EVENT {
        let mut e = error(
            None,
            format!(
                "an event of {} bytes was left out (at most {LARGEST_EVENT})",
                t.len()
            ),
        );
        if let Some(m) = v.get("monitorID") {
            e["monitorID"] = m.clone();
        }
        t = e.to_string();
    }
    Frame::Text(t.into())
}

/// Runs one WebSocket connection to its end.
pub async fn run(socket: WebSocket, s: Session) {
    let who = format!(
        "monitor{}",
        s.user
            .as_deref()
            .map_or(String::new(), |u| format!(" of user {u}"))
    );
    let Subscription {
        id,
        mut queue,
        missed,
        kinds,
    } = s.hub.subscribe();
    let (mut sink, mut stream) = socket.split();
    let mut monitors = Monitors {
        by_id: BTreeMap::new(),
        next: 0,
    };
    let mut overflows: VecDeque<Instant> = VecDeque::new();
    // Pings the client sent whose pongs are not out yet, and since when:
    // they count against the connection's queue like events, and may wait
    // as long as an event may.
    let mut owed: Option<(usize, Instant)> = None;
    let mut ping = tokio::time::interval(s.ping_every.max(Duration::from_millis(100)));
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ping.tick().await;
    let mut last_heard = Instant::now();
    let closing = 'session: loop {
        let mut out: Vec<Frame> = Vec::new();
        tokio::select! {
            m = stream.next() => {
                if matches!(m, Some(Ok(_))) {
                    last_heard = Instant::now();
                }
                match m {
                    None | Some(Err(_)) | Some(Ok(Frame::Close(_))) => break None,
                    Some(Ok(Frame::Text(t))) => {
                        out.push(text(&on_client(t.as_str(), &mut monitors, &s)));
                        kinds.store(monitors.kinds(), Ordering::Relaxed);
                    }
                    Some(Ok(Frame::Binary(_))) => out.push(text(&error(None, "send JSON text frames"))),
                    Some(Ok(Frame::Ping(_))) => {
                        // Its pong is queued by the WebSocket layer; it
                        // leaves when the client reads.
                        match sink.flush().now_or_never() {
                            Some(Ok(())) => owed = None,
                            Some(Err(_)) => break None,
                            None => {
                                let (n, _) = owed.get_or_insert((0, Instant::now()));
                                *n += 1;
                                if *n + queue.len() > s.hub.queue {
                                    break Some(format!(
                                        "it sent {n} pings without reading their pongs (over its queue of {})",
                                        s.hub.queue
                                    ));
                                }
                            }
                        }
                    }
                    Some(Ok(_)) => {}
                }
            }
            n = queue.recv() => {
                let Some(n) = n else { break None };
                for (mid, (kind, filter)) in &monitors.by_id {
                    if *kind == n.kind && filter.keeps(&n) {
                        let event = json!({"type": "event", "monitorID": mid, "event": n.event, "data": n.data});
                        out.push(text(&event));
                    }
                }
            }
            _ = ping.tick() => {
                let silent = last_heard.elapsed();
                if silent >= s.ping_every * 3 {
                    break Some(format!(
                        "it answered no ping for {} s",
                        silent.as_secs()
                    ));
                }
                out.push(Frame::Ping(Vec::new().into()));
            }
        }
        let lost = missed.swap(0, Ordering::Relaxed);
        if lost > 0 {
            let now = Instant::now();
            overflows.push_back(now);
            while overflows
                .front()
                .is_some_and(|t| now.duration_since(*t) > Duration::from_secs(60))
            {
                overflows.pop_front();
            }
            if overflows.len() >= 3 {
                break Some(format!(
                    "its queue overflowed three times in a minute ({lost} events missed)"
                ));
            }
            out.push(text(&error(
                None,
                format!("missed {lost} events: the connection's queue was full"),
            )));
        }
        if owed.is_some() && sink.flush().now_or_never().is_some_and(|r| r.is_ok()) {
            // The pongs went out meanwhile (the client read).
            owed = None;
        }
        if owed.is_some_and(|(_, since)| since.elapsed() >= s.idle) {
            break Some(format!("it read nothing for {} s", s.idle.as_secs_f64()));
        }
        for frame in out {
            match tokio::time::timeout(s.idle, sink.send(frame)).await {
                Ok(Ok(())) => owed = None,
                Ok(Err(_)) => break 'session None,
                Err(_) => {
                    break 'session Some(format!("it read nothing for {} s", s.idle.as_secs_f64()))
                }
            }
        }
    };
    adjust_raw(&s, monitors.raw_count(), 0);
    s.hub.unsubscribe(id);
    if let Some(reason) = closing {
        s.hub.log(format!("closing {who}: {reason}"));
        let frame = CloseFrame {
            code: 1008,
            reason: reason.into(),
        };
        let _ = tokio::time::timeout(Duration::from_secs(1), sink.send(Frame::Close(Some(frame))))
            .await;
    }
}

/// Reads every datagram on the bus while a `raw` monitor is open, and hands
/// each to the hub in `rmbus monitor --json`'s form. Runs on its own thread
/// until `stop` is set (within half a second); its handle.
pub fn watch_raw(
    config: &crate::config::Config,
    hub: Arc<Hub>,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> Result<std::thread::JoinHandle<()>, String> {
    let keys = config.keys().map_err(|e| e.to_string())?;
    let sockets = crate::runtime::socket::open(config).map_err(|e| e.to_string())?;
    drop(sockets.own);
    let socket = sockets.group;
    socket
        .set_nonblocking(false)
        .and_then(|()| socket.set_read_timeout(Some(Duration::from_millis(500))))
        .map_err(|e| e.to_string())?;
    std::thread::Builder::new()
        .name("rmbus-gateway-raw".into())
        .spawn(move || {
            let mut buf = vec![0u8; 65_536];
            while !stop.load(Ordering::Acquire) {
                let (n, from) = match socket.recv_from(&mut buf) {
                    Ok(r) => r,
                    Err(e)
                        if matches!(
                            e.kind(),
                            std::io::ErrorKind::WouldBlock
                                | std::io::ErrorKind::TimedOut
                                | std::io::ErrorKind::Interrupted
                        ) =>
                    {
                        continue
                    }
                    Err(e) => {
                        hub.log(format!("the raw monitor stopped: {e}"));
                        return;
                    }
                };
                if !hub.wants_raw() {
                    continue;
                }
                let (record, msg) =
                    crate::record::datagram_json(SystemTime::now(), from, &buf[..n], &keys);
                let mut note = Note::new(Kind::Raw, "datagram", record);
                if let Some(m) = msg {
                    note.commands = m.commands.iter().map(|c| c.name.clone()).collect();
                }
                hub.publish(note);
            }
        })
        .map_err(|e| e.to_string())
}

/// A note about member `d`: its description (and address) in `data`,
/// merged with `extra`.
pub fn member_note(
    event: &'static str,
    d: &crate::cmbs::Description,
    address: Option<&str>,
    extra: Value,
) -> Note {
    let mut data = d.to_json();
    if let Some(a) = address {
        data["address"] = a.into();
    }
    if let (Value::Object(o), Value::Object(x)) = (&mut data, extra) {
        o.extend(x);
    }
    let mut n = Note::new(Kind::Members, event, data);
    n.member = Some(d.id.clone());
    n.layers = d.started.iter().collect();
    n.topics = d.topics.clone();
    n
}

/// The notes for a member's description changing from `old` to `new`:
/// `state changed`, `layer started`/`layer stopped` per layer, else `changed`.
pub fn member_changes(
    old: &crate::cmbs::Description,
    new: &crate::cmbs::Description,
    address: Option<&str>,
) -> Vec<Note> {
    let mut out = Vec::new();
    if old.state != new.state {
        out.push(member_note(
            "state changed",
            new,
            address,
            json!({"from": old.state.as_str(), "to": new.state.as_str()}),
        ));
    }
    for l in Layer::ALL {
        match (old.started.contains(l), new.started.contains(l)) {
            (false, true) => out.push(member_note(
                "layer started",
                new,
                address,
                json!({"layer": l.dotted()}),
            )),
            (true, false) => out.push(member_note(
                "layer stopped",
                new,
                address,
                json!({"layer": l.dotted()}),
            )),
            _ => {}
        }
    }
    if out.is_empty() && old != new {
        out.push(member_note("changed", new, address, json!({})));
    }
    out
}

/// `GET /monitor`: checks the credentials like any request, first (an
/// anonymous caller learns nothing but 401), then the method and the
/// upgrade.
pub async fn upgrade(
    server: &Server,
    mut session: Session,
    request: axum::extract::Request,
    max_message: usize,
    log: &super::Log,
) -> axum::response::Response {
    use axum::extract::FromRequestParts;
    use axum::response::IntoResponse;
    let (mut parts, _) = request.into_parts();
    let method = parts.method.clone();
    let refused = |e: crate::occi::OcciError| {
        log(format!(
            "{method} /monitor {} ({})",
            e.status.as_u16(),
            e.reason
        ));
        let mut r = (e.status, format!("{}\n", e.reason)).into_response();
        let h = r.headers_mut();
        if e.status == axum::http::StatusCode::UNAUTHORIZED {
            h.insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Basic realm=\"rmbus\""),
            );
        }
        if let Some(secs) = e.retry_after {
            h.insert(axum::http::header::RETRY_AFTER, secs.into());
        }
        if let Some(allow) = e.allow {
            h.insert(
                axum::http::header::ALLOW,
                axum::http::HeaderValue::from_static(allow),
            );
        }
        r
    };
    let user = match server.authenticate(&parts).await {
        Ok(user) => user,
        Err(e) => return refused(e),
    };
    if method != axum::http::Method::GET {
        return refused(crate::occi::OcciError::method_not_allowed(
            "GET",
            "the monitor is a WebSocket: GET with an upgrade",
        ));
    }
    let ws = match axum::extract::ws::WebSocketUpgrade::from_request_parts(&mut parts, &()).await {
        Ok(ws) => ws,
        Err(e) => {
            return refused(crate::occi::OcciError::bad_request(format!(
                "not a WebSocket upgrade: {}",
                e.body_text()
            )))
        }
    };
    log(format!(
        "GET /monitor 101{}",
        user.as_deref()
            .map_or(String::new(), |u| format!(" user={u}"))
    ));
    session.user = user;
    ws.max_message_size(max_message)
        .max_frame_size(max_message)
        // Our events wait in the connection's queue, not in a write buffer
        // that grows: a frame beyond this is an error, and pongs to a
        // client that does not read replace one another.
        .write_buffer_size(WRITE_BUFFER)
        .max_write_buffer_size(WRITE_BUFFER + LARGEST_EVENT)
        .on_upgrade(move |socket| run(socket, session))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_beyond_64_bits_are_refused_not_rounded() {
        let hub = Hub::new(4, Arc::new(|_| {}));
        let s = Session {
            hub,
            state: Arc::new(|_, _| Vec::new()),
            idle: Duration::from_secs(1),
            ping_every: Duration::from_secs(1),
            user: None,
        };
        let mut m = Monitors {
            by_id: BTreeMap::new(),
            next: 0,
        };
        let r = on_client(
            r#"{"type":"start","sequence":123456789012345678901234,"monitor":"members"}"#,
            &mut m,
            &s,
        );
        assert_eq!(r["type"], "error");
        assert!(r["reason"].as_str().unwrap().contains("64 bits"), "{r}");
        let r = on_client(
            r#"{"type":"start","sequence":18446744073709551615,"monitor":"members"}"#,
            &mut m,
            &s,
        );
        assert_eq!(r["sequence"], json!(u64::MAX), "kept exactly");
    }

    #[test]
    fn filters_read_and_keep() {
        assert!(Filter::parse(Some(&json!({"colour": "x"}))).is_err());
        assert!(Filter::parse(Some(&json!({"layer": "l9"}))).is_err());
        assert!(Filter::parse(Some(&json!({"topic": "a..b"}))).is_err());
        assert!(Filter::parse(Some(&json!([1]))).is_err());
        let f = Filter::parse(Some(&json!({"topic": "alerts.#", "layer": "l3.2"}))).unwrap();
        let mut n = Note::new(Kind::Messages, "message created", json!({}));
        n.topics = vec!["alerts.disk".into()];
        n.layers = vec![Layer::L32];
        assert!(f.keeps(&n));
        n.layers = vec![Layer::L2];
        assert!(!f.keeps(&n));
        let c = Filter::parse(Some(&json!({"command": "cmbs.member"}))).unwrap();
        let mut raw = Note::new(Kind::Raw, "datagram", json!({}));
        raw.commands = vec!["cmbs.member.announce".into()];
        assert!(c.keeps(&raw));
        raw.commands = vec!["mbus.hello".into()];
        assert!(!c.keeps(&raw));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_full_queue_counts_what_it_missed_and_never_blocks() {
        let hub = Hub::new(2, Arc::new(|_| {}));
        let sub = hub.subscribe();
        let (mut rx, missed) = (sub.queue, sub.missed);
        sub.kinds.store(Kind::Members.bit(), Ordering::Relaxed);
        hub.publish(Note::new(Kind::Raw, "datagram", json!({})));
        assert_eq!(missed.load(Ordering::Relaxed), 0, "not watched, not queued");
        for _ in 0..5 {
            hub.publish(Note::new(Kind::Members, "joined", json!({})));
        }
        assert_eq!(missed.load(Ordering::Relaxed), 3);
        assert!(rx.recv().await.is_some());
        drop(rx);
        hub.publish(Note::new(Kind::Members, "left", json!({})));
        assert!(hub.conns().is_empty(), "a closed connection is forgotten");
    }
}
