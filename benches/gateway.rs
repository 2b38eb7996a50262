//! The gateway under load, as ratios against baselines measured in the
//! same run (medians of interleaved rounds): `GET` one member and a list of
//! 1,000 entities (messages: see `bench_get`) at 1 and 50 connections
//! against an axum handler behind the same Basic check (a 12-byte body for
//! the member; for the listing, the listing's own bytes and type, served
//! static; and, for reference, a 404 of a path that is no entity's: the
//! HTTP side alone); `POST` create at 50 connections against raw
//! rusqlite inserts with the same group commit; monitor fan-out to 100
//! WebSocket clients while 1,000 events/s arrive, against a bare
//! tokio-tungstenite broadcast of the same frames. And members at scale:
//! `RMBUS_BENCH_MEMBERS` (10,000) members, each with two topics, created
//! one after another (`POST /cmbs/member/`) in one gateway, and 10 in
//! another: the p50 of 10 more creates (deleted after) in each, and the
//! rate of `GET` of one member at 50 connections in each, in interleaved
//! rounds; the large one's CPU while idle for 10 s, and its
//! resident memory per member beyond the first 10.
//!
//! `cargo bench --bench gateway` (it runs the release `rmbus gateway` on a
//! host-local bus of its own). `RMBUS_BENCH_ROUNDS` (5), `RMBUS_BENCH_ONLY`
//! (`get`, `create`, `monitor`, `members`).

mod support;

use support::{cpu_secs, median, rss_kib};

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc as std_mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const ROUND: Duration = Duration::from_millis(1500);
const USER: &str = "bench:pw";

/// Makes request `n`: its head and body.
type MakeRequest = Arc<dyn Fn(u64) -> (Vec<u8>, Vec<u8>) + Send + Sync>;

/// One keep-alive HTTP/1.1 connection.
struct Conn {
    s: TcpStream,
    buf: Vec<u8>,
    /// The last answer's body and `Content-Type`.
    body: Vec<u8>,
    content_type: String,
}

impl Conn {
    async fn open(addr: SocketAddr) -> Conn {
        let s = TcpStream::connect(addr).await.unwrap();
        s.set_nodelay(true).unwrap();
        Conn {
            s,
            buf: Vec::with_capacity(1 << 16),
            body: Vec::new(),
            content_type: String::new(),
        }
    }

    /// Sends a request and reads its answer; the status.
    async fn call(&mut self, head: &[u8], body: &[u8]) -> u16 {
        self.s.write_all(head).await.unwrap();
        if !body.is_empty() {
            self.s.write_all(body).await.unwrap();
        }
        self.buf.clear();
        let mut chunk = [0u8; 16384];
        loop {
            if let Some(end) = find(&self.buf, b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&self.buf[..end]).to_ascii_lowercase();
                let len: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .map_or(0, |v| v.trim().parse().unwrap());
                while self.buf.len() < end + 4 + len {
                    let n = self.s.read(&mut chunk).await.unwrap();
                    assert!(n > 0, "the server closed the connection");
                    self.buf.extend_from_slice(&chunk[..n]);
                }
                let status = head[9..12].parse().unwrap();
                self.content_type = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-type:"))
                    .map(|v| v.trim().to_owned())
                    .unwrap_or_default();
                self.body.clear();
                self.body
                    .extend_from_slice(&self.buf[end + 4..end + 4 + len]);
                self.buf.drain(..end + 4 + len);
                return status;
            }
            let n = self.s.read(&mut chunk).await.unwrap();
            assert!(n > 0, "the server closed the connection");
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }
}

fn find(h: &[u8], n: &[u8]) -> Option<usize> {
    h.windows(n.len()).position(|w| w == n)
}

fn auth_header() -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(USER)
    )
}

fn get_head(path: &str) -> Vec<u8> {
    format!(
        "GET {path} HTTP/1.1\r\nHost: b\r\nAccept: application/occi+json\r\nAuthorization: {}\r\n\r\n",
        auth_header()
    )
    .into_bytes()
}

/// Requests per second with `conns` connections, each doing `make(i)`
/// requests back to back for [`ROUND`].
async fn rate(addr: SocketAddr, conns: usize, make: MakeRequest, want: u16) -> f64 {
    let done = Arc::new(AtomicU64::new(0));
    let counter = Arc::new(AtomicU64::new(0));
    let until = Instant::now() + ROUND;
    let mut tasks = Vec::new();
    for _ in 0..conns {
        let (done, counter, make) = (Arc::clone(&done), Arc::clone(&counter), Arc::clone(&make));
        tasks.push(tokio::spawn(async move {
            let mut c = Conn::open(addr).await;
            while Instant::now() < until {
                let (head, body) = make(counter.fetch_add(1, Ordering::Relaxed));
                assert_eq!(c.call(&head, &body).await, want);
                done.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    let started = Instant::now();
    for t in tasks {
        t.await.unwrap();
    }
    done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64()
}

struct Gateway {
    child: Child,
    addr: SocketAddr,
    config: rmbus::config::Config,
    _dir: tempfile::TempDir,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_gateway() -> Gateway {
    let dir = tempfile::tempdir().unwrap();
    let config = support::config();
    let path = dir.path().join("bus.conf");
    std::fs::write(&path, config.to_file_text()).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_rmbus"))
        .args(["gateway", "--listen", "127.0.0.1:0", "--user", USER])
        .args(["--max-connections", "2000", "--state"])
        .arg(dir.path().join("state"))
        .env("MBUS", &path)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let err = child.stderr.take().unwrap();
    let (tx, rx) = std_mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(err).lines().map_while(Result::ok) {
            if line.contains("listening on") {
                let _ = tx.send(line);
            }
            // The request log is read and dropped.
        }
    });
    let line = rx.recv_timeout(Duration::from_secs(30)).unwrap();
    let addr = line.rsplit("://").next().unwrap().parse().unwrap();
    Gateway {
        child,
        addr,
        config,
        _dir: dir,
    }
}

/// A trivial axum handler behind the same Basic check, on a runtime of its
/// own with as many workers as the gateway's: `/list` answers `listing`
/// (the bytes and type of the gateway's listing), anything else 12 bytes.
fn baseline_http(listing: (Vec<u8>, String)) -> (SocketAddr, tokio::runtime::Runtime) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let users = rmbus::occi::Users::new(std::collections::HashMap::from([(
        "bench".to_owned(),
        rmbus::occi::hash_password("pw").unwrap(),
    )]))
    .unwrap();
    let basic = Arc::new(rmbus::occi::Basic(Arc::new(users)));
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let (body, content_type) = (axum::body::Bytes::from(listing.0), listing.1);
    let app = axum::Router::new().fallback(
        move |uri: axum::http::Uri, headers: axum::http::HeaderMap| {
            let basic = Arc::clone(&basic);
            let (body, content_type) = (body.clone(), content_type.clone());
            async move {
                use axum::response::IntoResponse;
                use rmbus::occi::Authenticator;
                let given = headers.get("authorization").map(|v| v.as_bytes().to_vec());
                match basic.check(given, None).await {
                    Ok(_) if uri.path() == "/list" => (
                        axum::http::StatusCode::OK,
                        [(axum::http::header::CONTENT_TYPE, content_type)],
                        body,
                    )
                        .into_response(),
                    Ok(_) => (axum::http::StatusCode::OK, "{\"ok\":true}\n").into_response(),
                    Err(_) => (axum::http::StatusCode::UNAUTHORIZED, "no\n").into_response(),
                }
            }
        },
    );
    rt.spawn(async move { axum::serve(listener, app).await });
    (addr, rt)
}

fn report(what: &str, ours: &[f64], base: &[f64], target: f64) {
    let ratios: Vec<f64> = ours.iter().zip(base).map(|(o, b)| o / b).collect();
    println!(
        "{what:<44} gateway {:>9.0}/s  baseline {:>9.0}/s  ratio {:.2} (rounds {:.2}–{:.2}; target ≥ {target:.2})",
        median(ours.to_vec()),
        median(base.to_vec()),
        median(ratios.clone()),
        ratios.iter().copied().fold(f64::INFINITY, f64::min),
        ratios.iter().copied().fold(0.0, f64::max),
    );
}

fn member_doc(i: u64) -> Vec<u8> {
    let id = format!("bbbbbbbb-0000-4000-8000-{i:012}");
    format!(r#"{{"resources":[{{"kind":"http://houssem.org/cmbs#member","id":"{id}","attributes":{{"cmbs":{{"member":{{"state":"inactive"}}}}}}}}]}}"#).into_bytes()
}

fn post_head(path: &str, len: usize) -> Vec<u8> {
    format!(
        "POST {path} HTTP/1.1\r\nHost: b\r\nContent-Type: application/occi+json\r\nAccept: application/occi+json\r\nAuthorization: {}\r\nContent-Length: {len}\r\n\r\n",
        auth_header()
    )
    .into_bytes()
}

/// The body and `Content-Type` of `GET path` on `addr`.
async fn fetch(addr: SocketAddr, path: &str) -> (Vec<u8>, String) {
    let mut c = Conn::open(addr).await;
    assert_eq!(c.call(&get_head(path), &[]).await, 200);
    (c.body.clone(), c.content_type.clone())
}

fn bench_get(rt: &tokio::runtime::Runtime, rounds: usize) {
    let g = start_gateway();
    // One member, and 1,000 messages to list: a gateway hosting 1,000
    // members saturates its bus thread (every member hears every other's
    // hellos and discovery), which is the bus's load issue, not HTTP's.
    rt.block_on(async {
        let mut c = Conn::open(g.addr).await;
        let body = member_doc(7);
        assert_eq!(
            c.call(&post_head("/cmbs/member/", body.len()), &body).await,
            201
        );
        for i in 0..1000 {
            let body = message_doc(i);
            assert_eq!(
                c.call(&post_head("/cmbs/message/", body.len()), &body)
                    .await,
                201
            );
        }
    });
    // The baseline serves the listing's own bytes and type.
    let listing = rt.block_on(fetch(g.addr, "/cmbs/message/"));
    println!(
        "the listing: {} bytes of {}; the baseline serves the same",
        listing.0.len(),
        listing.1
    );
    let (base, _brt) = baseline_http(listing);
    let one: MakeRequest = Arc::new(|_| {
        (
            get_head("/cmbs/member/bbbbbbbb-0000-4000-8000-000000000007"),
            Vec::new(),
        )
    });
    let list: MakeRequest = Arc::new(|_| (get_head("/cmbs/message/"), Vec::new()));
    let trivial: MakeRequest = Arc::new(|_| (get_head("/x"), Vec::new()));
    let static_list: MakeRequest = Arc::new(|_| (get_head("/list"), Vec::new()));
    // The HTTP side alone (Basic check, request, a 404 answer): what every
    // request costs before it reaches an entity.
    let nothing: MakeRequest = Arc::new(|_| (get_head("/nothing"), Vec::new()));
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        ours.push(rt.block_on(rate(g.addr, 50, Arc::clone(&nothing), 404)));
        theirs.push(rt.block_on(rate(base, 50, Arc::clone(&trivial), 200)));
    }
    report(
        "GET of no entity (404), 50 connections",
        &ours,
        &theirs,
        0.5,
    );
    for (what, make, baseline) in [
        ("GET one member", &one, &trivial),
        ("GET a list of 1,000 (messages)", &list, &static_list),
    ] {
        for conns in [1, 50] {
            let (mut ours, mut theirs) = (Vec::new(), Vec::new());
            for _ in 0..rounds {
                ours.push(rt.block_on(rate(g.addr, conns, Arc::clone(make), 200)));
                theirs.push(rt.block_on(rate(base, conns, Arc::clone(baseline), 200)));
            }
            report(
                &format!("{what}, {conns} connection(s)"),
                &ours,
                &theirs,
                0.5,
            );
        }
    }
}

/// Raw rusqlite inserts through a group-commit writer like the gateway's.
fn baseline_inserts(rt: &tokio::runtime::Runtime, conns: usize) -> f64 {
    let dir = tempfile::tempdir().unwrap();
    let db = rusqlite::Connection::open(dir.path().join("b.sqlite")).unwrap();
    db.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;
         CREATE TABLE t (location TEXT PRIMARY KEY, body TEXT NOT NULL);",
    )
    .unwrap();
    type Job = (String, String, std_mpsc::SyncSender<()>);
    let (tx, rx) = std_mpsc::channel::<Job>();
    let writer = std::thread::spawn(move || {
        let mut db = db;
        while let Ok(first) = rx.recv() {
            let mut batch = vec![first];
            while let Ok(more) = rx.try_recv() {
                batch.push(more);
            }
            let t = db.transaction().unwrap();
            for (l, b, _) in &batch {
                t.execute("INSERT INTO t VALUES (?1, ?2)", [l, b]).unwrap();
            }
            t.commit().unwrap();
            for (_, _, done) in batch {
                let _ = done.send(());
            }
        }
    });
    let tx = Arc::new(std::sync::Mutex::new(tx));
    let count = Arc::new(AtomicU64::new(0));
    let until = Instant::now() + ROUND;
    let started = Instant::now();
    rt.block_on(async {
        let mut tasks = Vec::new();
        for _ in 0..conns {
            let (tx, count) = (Arc::clone(&tx), Arc::clone(&count));
            tasks.push(tokio::spawn(async move {
                while Instant::now() < until {
                    let n = count.fetch_add(1, Ordering::Relaxed);
                    let body = String::from_utf8(message_doc(n)).unwrap();
                    let (done, wait) = std_mpsc::sync_channel(1);
                    tx.lock()
                        .unwrap()
                        .send((format!("/m/{n}"), body, done))
                        .unwrap();
                    tokio::task::spawn_blocking(move || wait.recv().unwrap())
                        .await
                        .unwrap();
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
    });
    drop(tx);
    writer.join().unwrap();
    count.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64()
}

fn message_doc(n: u64) -> Vec<u8> {
    format!(r#"{{"resources":[{{"kind":"http://houssem.org/cmbs#message","id":"m{n}","mixins":["http://houssem.org/cmbs#l2"],"attributes":{{"cmbs":{{"message":{{"cmbs_layer":"l2","message_content":{{"n":{n}}}}}}}}}}}]}}"#).into_bytes()
}

fn bench_create(rt: &tokio::runtime::Runtime, rounds: usize) {
    let g = start_gateway();
    let round = Arc::new(AtomicU64::new(0));
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        let r = round.fetch_add(1, Ordering::Relaxed);
        let make: MakeRequest = Arc::new(move |n| {
            let body = message_doc(r * 10_000_000 + n);
            (post_head("/cmbs/message/", body.len()), body)
        });
        ours.push(rt.block_on(rate(g.addr, 50, make, 201)));
        theirs.push(baseline_inserts(rt, 50));
    }
    report(
        "POST create (messages), 50 connections",
        &ours,
        &theirs,
        0.5,
    );
}

/// Frames received by `clients` WebSocket clients of `url` while `send`
/// produces `per_second` events for `secs`; (frames/s, errors seen).
async fn fan_out(
    url: String,
    clients: usize,
    start: Option<String>,
    send: impl FnOnce() + Send + 'static,
    expect: u64,
) -> (f64, u64) {
    let frames = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let mut readers = Vec::new();
    let ready = Arc::new(AtomicU64::new(0));
    for _ in 0..clients {
        let mut req =
            tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
                url.as_str(),
            )
            .unwrap();
        req.headers_mut()
            .insert("Authorization", auth_header().parse().unwrap());
        let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
        if let Some(s) = &start {
            ws.send(tokio_tungstenite::tungstenite::Message::Text(
                s.clone().into(),
            ))
            .await
            .unwrap();
            // The response.
            ws.next().await.unwrap().unwrap();
        }
        ready.fetch_add(1, Ordering::Relaxed);
        let (frames, errors) = (Arc::clone(&frames), Arc::clone(&errors));
        readers.push(tokio::spawn(async move {
            let mut got = 0;
            while got < expect {
                match tokio::time::timeout(Duration::from_secs(3), ws.next()).await {
                    Ok(Some(Ok(tokio_tungstenite::tungstenite::Message::Text(t)))) => {
                        if t.as_str().contains("\"type\":\"error\"") {
                            errors.fetch_add(1, Ordering::Relaxed);
                        }
                        got += 1;
                        frames.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(Some(Ok(_))) => {}
                    _ => break,
                }
            }
        }));
    }
    let started = Instant::now();
    let sender = std::thread::spawn(send);
    for r in readers {
        r.await.unwrap();
    }
    sender.join().unwrap();
    (
        frames.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64(),
        errors.load(Ordering::Relaxed),
    )
}

/// `n` datagrams at `per_second`, signed for the bus.
fn tick_datagrams(config: &rmbus::config::Config, n: u64, per_second: u64) -> impl FnOnce() + Send {
    use rmbus::wire::{Address, Command as Cmd, Framing, Header, Message, MessageType, Value};
    let keys = config.keys().unwrap();
    let group = config.group_addr();
    let datagrams: Vec<Vec<u8>> = (0..n)
        .map(|i| {
            let msg = Message {
                header: Header {
                    seq: i as u32,
                    timestamp: 1_020_000_000_000,
                    kind: MessageType::Unreliable,
                    src: Address::parse("(app:bench module:tick id:1-1@127.0.0.1)").unwrap(),
                    dst: Address::parse("(app:nobody)").unwrap(),
                    acks: vec![],
                },
                commands: vec![Cmd::new("bench.tick", vec![Value::Integer(i as i64)])],
            };
            rmbus::auth::seal(&msg, &keys, Framing::Lf).unwrap()
        })
        .collect();
    move || {
        let s = support::loopback_sender();
        let start = Instant::now();
        for (i, d) in datagrams.iter().enumerate() {
            let at = start + Duration::from_secs_f64(i as f64 / per_second as f64);
            if let Some(w) = at.checked_duration_since(Instant::now()) {
                std::thread::sleep(w);
            }
            s.send_to(d, group).unwrap();
        }
    }
}

/// A bare tokio-tungstenite server that broadcasts `frames` to every client.
async fn bare_broadcast(
    frames: Vec<String>,
    per_second: u64,
    clients: usize,
) -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/", listener.local_addr().unwrap());
    let (tx, _) = tokio::sync::broadcast::channel::<Arc<String>>(4096);
    let tx2 = tx.clone();
    let connected = Arc::new(AtomicU64::new(0));
    let c2 = Arc::clone(&connected);
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            let mut rx = tx2.subscribe();
            let c2 = Arc::clone(&c2);
            tokio::spawn(async move {
                let mut ws = tokio_tungstenite::accept_async(s).await.unwrap();
                c2.fetch_add(1, Ordering::Relaxed);
                while let Ok(f) = rx.recv().await {
                    if ws
                        .send(tokio_tungstenite::tungstenite::Message::Text(
                            (*f).clone().into(),
                        ))
                        .await
                        .is_err()
                    {
                        break;
                    }
                }
            });
        }
    });
    let sender = tokio::spawn(async move {
        while connected.load(Ordering::Relaxed) < clients as u64 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let start = Instant::now();
        for (i, f) in frames.into_iter().enumerate() {
            let at = start + Duration::from_secs_f64(i as f64 / per_second as f64);
            tokio::time::sleep_until(at.into()).await;
            let _ = tx.send(Arc::new(f));
        }
    });
    (url, sender)
}

fn bench_monitor(rt: &tokio::runtime::Runtime, rounds: usize) {
    let g = start_gateway();
    const CLIENTS: usize = 100;
    const PER_SECOND: u64 = 1000;
    const EVENTS: u64 = 2000;
    let start =
        r#"{"type":"start","sequence":1,"monitor":"raw","filter":{"command":"bench.tick"}}"#;
    let url = format!("ws://{}/monitor", g.addr);
    let sample = r#"{"type":"event","monitorID":"m1","event":"datagram","data":{"time":"2026-12-02T00:00:00.000Z","from":"127.0.0.1:40000","auth":"ok","seq":1,"timestamp":1020000000000,"reliable":false,"src":"(app:bench module:tick id:1-1@127.0.0.1)","dst":"(app:nobody)","acks":[],"commands":[{"name":"bench.tick","args":[{"int":1}]}]}}"#.to_string();
    let (mut ours, mut theirs, mut lost) = (Vec::new(), Vec::new(), 0);
    for _ in 0..rounds {
        let send = tick_datagrams(&g.config, EVENTS, PER_SECOND);
        let (r, errors) = rt.block_on(fan_out(
            url.clone(),
            CLIENTS,
            Some(start.into()),
            send,
            EVENTS,
        ));
        lost += errors;
        ours.push(r);
        let frames = vec![sample.clone(); EVENTS as usize];
        let r = rt.block_on(async {
            let (burl, sender) = bare_broadcast(frames, PER_SECOND, CLIENTS).await;
            let r = fan_out(burl, CLIENTS, None, || {}, EVENTS).await;
            sender.await.unwrap();
            r.0
        });
        theirs.push(r);
    }
    report(
        &format!("monitor fan-out, {CLIENTS} clients, {PER_SECOND} events/s (frames)"),
        &ours,
        &theirs,
        0.5,
    );
    println!("  missed-event errors over all rounds and clients: {lost} (no loss while no queue reaches its bound)");
}

/// A member with two topics, as `bench_members` creates them.
fn member_with_topics(i: u64) -> Vec<u8> {
    let id = format!("cccccccc-0000-4000-8000-{i:012}");
    format!(r#"{{"resources":[{{"kind":"http://houssem.org/cmbs#member","id":"{id}","attributes":{{"cmbs":{{"member":{{"topics":["t.{i}","all"]}}}}}}}}]}}"#).into_bytes()
}

/// p50 of creating 10 members (ids from `first`) over `c`, in ms; then
/// deletes them, so that the gateway is back to its size.
async fn ten_creates(c: &mut Conn, first: u64) -> f64 {
    let mut times = Vec::new();
    for i in first..first + 10 {
        let body = member_with_topics(i);
        let t = Instant::now();
        let status = c.call(&post_head("/cmbs/member/", body.len()), &body).await;
        assert_eq!(status, 201, "member {i}");
        times.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    for i in first..first + 10 {
        let path = format!("/cmbs/member/cccccccc-0000-4000-8000-{i:012}");
        let head = format!(
            "DELETE {path} HTTP/1.1\r\nHost: b\r\nAuthorization: {}\r\n\r\n",
            auth_header()
        );
        let status = c.call(head.as_bytes(), &[]).await;
        assert!(status == 200 || status == 204, "delete {i}: {status}");
    }
    median(times)
}

fn bench_members(rt: &tokio::runtime::Runtime, rounds: usize) {
    let n: u64 = std::env::var("RMBUS_BENCH_MEMBERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    // One gateway with 10 members, one with n, each on a bus of its own.
    let small = start_gateway();
    let large = start_gateway();
    let pid = large.child.id();
    let mut rss_at_10 = 0.0;
    let started = Instant::now();
    rt.block_on(async {
        let mut to_small = Conn::open(small.addr).await;
        let mut to_large = Conn::open(large.addr).await;
        for i in 1..=10 {
            let body = member_with_topics(i);
            let status = to_small
                .call(&post_head("/cmbs/member/", body.len()), &body)
                .await;
            assert_eq!(status, 201, "member {i}");
        }
        for i in 1..=n {
            let body = member_with_topics(i);
            let status = to_large
                .call(&post_head("/cmbs/member/", body.len()), &body)
                .await;
            assert_eq!(status, 201, "member {i}");
            if i == 10 {
                rss_at_10 = rss_kib(pid);
            }
        }
    });
    let took = started.elapsed();
    // Members announce themselves again up to 20 s after they start
    // (`cmbs::REANNOUNCES`): idle is after the last one's.
    let (after, spread) = rmbus::cmbs::REANNOUNCES[rmbus::cmbs::REANNOUNCES.len() - 1];
    std::thread::sleep(after + spread + Duration::from_secs(1));
    let rss_end = rss_kib(pid);
    let cpu0 = cpu_secs(pid);
    std::thread::sleep(Duration::from_secs(10));
    let idle = (cpu_secs(pid) - cpu0) / 10.0 * 100.0;
    let per_member = (rss_end - rss_at_10) / (n.saturating_sub(10).max(1)) as f64;
    // Interleaved rounds: 10 more creates at 10 members, then at n.
    let (mut at_10, mut at_n) = (Vec::new(), Vec::new());
    for r in 0..rounds as u64 {
        let first = 1_000_000 + r * 100;
        rt.block_on(async {
            // Fresh connections: an idle one is closed after a while.
            let mut to_small = Conn::open(small.addr).await;
            at_10.push(ten_creates(&mut to_small, first).await);
            let mut to_large = Conn::open(large.addr).await;
            at_n.push(ten_creates(&mut to_large, first).await);
        });
    }
    // GET of one member, 50 connections, at n and at 10.
    let (mut get_10, mut get_n) = (Vec::new(), Vec::new());
    let one = |i: u64| -> MakeRequest {
        Arc::new(move |_| {
            (
                get_head(&format!("/cmbs/member/cccccccc-0000-4000-8000-{i:012}")),
                Vec::new(),
            )
        })
    };
    for _ in 0..rounds {
        get_10.push(rt.block_on(rate(small.addr, 50, one(5), 200)));
        get_n.push(rt.block_on(rate(large.addr, 50, one(n / 2), 200)));
    }
    let get_ratios: Vec<f64> = get_10.iter().zip(&get_n).map(|(s, l)| s / l).collect();
    println!(
        "GET one member, 50 connections: {:.0}/s at {n}, {:.0}/s at 10; at 10 ÷ at {n} {:.2} (rounds {:.2}–{:.2}; target ≤ 1.50)",
        median(get_n.clone()),
        median(get_10.clone()),
        median(get_ratios.clone()),
        get_ratios.iter().copied().fold(f64::INFINITY, f64::min),
        get_ratios.iter().copied().fold(0.0, f64::max),
    );
    let ratios: Vec<f64> = at_n.iter().zip(&at_10).map(|(l, s)| l / s).collect();
    println!(
        "{n} members created one after another in {:.0} s; create p50 of 10 at {n}: {:.2} ms, at 10: {:.2} ms; ratio {:.2} (rounds {:.2}–{:.2}; target ≤ 2.00)",
        took.as_secs_f64(),
        median(at_n.clone()),
        median(at_10.clone()),
        median(ratios.clone()),
        ratios.iter().copied().fold(f64::INFINITY, f64::min),
        ratios.iter().copied().fold(0.0, f64::max),
    );
    println!(
        "  idle with {n} members: {idle:.1} % of a core over 10 s (target < 5); resident {:.0} MiB, {per_member:.1} KiB per member beyond the 10th (target ≤ 16)",
        rss_end / 1024.0
    );
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("gateway benchmark: run with `cargo bench --bench gateway`");
        return;
    }
    let rounds: usize = std::env::var("RMBUS_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let only = std::env::var("RMBUS_BENCH_ONLY").unwrap_or_default();
    let part = |p: &str| only.is_empty() || only.contains(p);
    println!("\nrmbus gateway benchmark: release rmbus gateway, Basic auth on, {rounds} interleaved rounds of {ROUND:?}, one run\n");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    if part("get") {
        bench_get(&rt, rounds);
    }
    if part("create") {
        bench_create(&rt, rounds);
    }
    if part("monitor") {
        bench_monitor(&rt, rounds);
    }
    if part("members") {
        bench_members(&rt, rounds);
    }
}
