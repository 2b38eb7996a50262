//! The gateway left running: WebSocket monitors while members join, change
//! and leave and messages travel between real `rmbus member` processes; a
//! client that never reads cut off without stalling others; a client that
//! falls behind told what it missed; TLS with HTTP/2; and every limit hit
//! once.
#![cfg(feature = "gateway")]

mod common;
mod gw;
mod http;
mod procs;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use gw::Gateway;
use http::*;
use procs::*;
use serde_json::{json, Value as Json};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message as Frame;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

const MEMBER: &str = "996ad860-2a9a-504f-8861-aeafd0b2ae29";
const OTHER: &str = "cccccccc-0000-4000-8000-000000000003";

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

async fn connect(
    base: &str,
    auth: Option<&str>,
) -> Result<Ws, tokio_tungstenite::tungstenite::Error> {
    let url = format!("{}/monitor", base.replacen("http://", "ws://", 1));
    let mut req = url.into_client_request()?;
    if let Some(a) = auth {
        req.headers_mut()
            .insert("Authorization", a.parse().unwrap());
    }
    Ok(tokio_tungstenite::connect_async(req).await?.0)
}

/// A monitor connection whose socket takes in little (4 KiB): a client that
/// stops reading holds the gateway's sends back at once.
async fn connect_small(base: &str) -> Ws {
    use socket2::{Domain, Socket, Type};
    let host = base.trim_start_matches("http://");
    let addr: std::net::SocketAddr = host.parse().unwrap();
    let sock = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    sock.set_recv_buffer_size(4096).unwrap();
    sock.connect(&addr.into()).unwrap();
    sock.set_nonblocking(true).unwrap();
    let tcp = tokio::net::TcpStream::from_std(sock.into()).unwrap();
    let req = format!("ws://{host}/monitor")
        .into_client_request()
        .unwrap();
    tokio_tungstenite::client_async(req, tokio_tungstenite::MaybeTlsStream::Plain(tcp))
        .await
        .unwrap()
        .0
}

async fn say(ws: &mut Ws, v: Json) {
    ws.send(Frame::Text(v.to_string().into())).await.unwrap();
}

/// The next JSON message that `f` accepts (others are skipped).
async fn until(ws: &mut Ws, what: &str, f: impl Fn(&Json) -> bool) -> Json {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let frame = tokio::time::timeout(left, ws.next())
            .await
            .unwrap_or_else(|_| panic!("no {what} within {DEADLINE:?}"));
        match frame {
            Some(Ok(Frame::Text(t))) => {
                let v: Json = serde_json::from_str(t.as_str()).unwrap();
                if f(&v) {
                    return v;
                }
            }
            Some(Ok(_)) => {}
            other => panic!("the connection ended before {what}: {other:?}"),
        }
    }
}

fn is_event(v: &Json, monitor: &str, event: &str) -> bool {
    v["type"] == "event" && v["monitorID"] == monitor && v["event"] == event
}

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/pycmbs")
            .join(name),
    )
    .unwrap()
}

fn message(id: &str, topics: &[&str]) -> Vec<u8> {
    json!({"resources": [{"kind": "http://houssem.org/cmbs#message", "id": id,
        "mixins": ["http://houssem.org/cmbs#l32"],
        "attributes": {"cmbs": {"message": {"cmbs_layer": "l32", "topics": topics, "message_content": {"n": 1}}}}}]})
    .to_string()
    .into_bytes()
}

fn member_process(bus: &Bus, id: &str, topics: &str) -> Proc {
    let mut c: Command = rmbus(bus);
    c.args([
        "member", "--json", "--memory", "--id", id, "--topics", topics,
    ]);
    Proc::start(c)
}

#[test]
fn monitors_follow_members_and_messages_on_one_connection() {
    let bus = bus();
    let state = tempfile::tempdir().unwrap();
    let g = Gateway::start(&bus, state.path(), &["--user", "u:p"]);
    let b = g.base.clone();
    let auth = "Basic dTpw"; // u:p
    let h = [JSON, ACCEPT_JSON, ("Authorization", auth)];
    rt().block_on(async {
        let refused = connect(&b, None).await.unwrap_err();
        assert!(refused.to_string().contains("401"), "{refused}");
        assert!(connect(&b, Some("Basic dTp4")).await.is_err(), "a wrong password");
        let mut ws = connect(&b, Some(auth)).await.unwrap();
        say(&mut ws, json!({"type": "start", "sequence": 1, "monitor": "members"})).await;
        let r = until(&mut ws, "response 1", |v| v["sequence"] == 1).await;
        assert_eq!((r["type"].as_str(), r["state"].clone()), (Some("response"), json!([])));
        let members = r["monitorID"].as_str().unwrap().to_owned();
        say(&mut ws, json!({"type": "start", "sequence": 2, "monitor": "messages", "filter": {"topic": "alerts.#"}})).await;
        let messages = until(&mut ws, "response 2", |v| v["sequence"] == 2).await["monitorID"].as_str().unwrap().to_owned();
        say(&mut ws, json!({"type": "start", "sequence": "three", "monitor": "raw", "filter": {"command": "cmbs.member.announce"}})).await;
        let raw = until(&mut ws, "response 3", |v| v["sequence"] == "three").await["monitorID"].as_str().unwrap().to_owned();
        assert!(members != messages && messages != raw);

        // A member created through the gateway: joined, and its announce on the wire.
        assert_eq!(post(&b, "/cmbs/member/", &h, &fixture("post_member.json")).status, 201);
        // (Two threads see them: the bus's and the raw reader's; either may
        // publish first.)
        let (mut joined, mut datagram) = (None, None);
        while joined.is_none() || datagram.is_none() {
            let v = until(&mut ws, "joined and the announce", |v| {
                is_event(v, &members, "joined") || is_event(v, &raw, "datagram")
            })
            .await;
            if is_event(&v, &members, "joined") {
                joined = Some(v);
            } else {
                datagram = Some(v);
            }
        }
        let (joined, datagram) = (joined.unwrap(), datagram.unwrap());
        assert_eq!(joined["data"]["id"], MEMBER);
        assert_eq!(datagram["data"]["commands"][0]["name"], "cmbs.member.announce", "{datagram}");
        assert_eq!(datagram["data"]["auth"], "ok");

        // A member process joins; messages go to it; one monitor filters by topic.
        let mut p = member_process(&bus, OTHER, "alerts.#");
        let joined = until(&mut ws, "the process joining", |v| is_event(v, &members, "joined") && v["data"]["id"] == OTHER).await;
        assert_eq!(joined["data"]["topics"], json!(["alerts.#"]));
        assert_eq!(post(&b, "/cmbs/message/", &h, &message("n1", &["news.x"])).status, 201);
        assert_eq!(post(&b, "/cmbs/message/", &h, &message("a1", &["alerts.disk"])).status, 201);
        let created = until(&mut ws, "created", |v| is_event(v, &messages, "created")).await;
        assert_eq!(created["data"]["message"], "a1", "news.x is filtered out");
        assert_eq!(post(&b, "/cmbs/message/a1?action=send_l32", &h, b"{}").status, 200);
        let delivered = until(&mut ws, "delivered", |v| is_event(v, &messages, "delivered")).await;
        assert_eq!(delivered["data"]["member"], OTHER);
        p.expect("the message", |j| j["event"] == "received");

        // Layers and state, from an action through the gateway.
        assert_eq!(post(&b, &format!("/cmbs/member/{OTHER}?action=stop_l3.2"), &h, b"{}").status, 200);
        let stopped = until(&mut ws, "layer stopped", |v| is_event(v, &members, "layer stopped") && v["data"]["id"] == OTHER).await;
        assert_eq!(stopped["data"]["layer"], "l3.2");
        assert_eq!(post(&b, &format!("/cmbs/member/{OTHER}?action=suspend"), &h, b"{}").status, 200);
        let s = until(&mut ws, "state changed", |v| is_event(v, &members, "state changed")).await;
        assert_eq!((s["data"]["from"].clone(), s["data"]["to"].clone()), (json!("active"), json!("suspended")));

        // Replace a monitor (its state is filtered too), stop one, and bad requests.
        say(&mut ws, json!({"type": "start", "sequence": 4, "monitor": "members", "monitorID": members, "filter": {"member": OTHER}})).await;
        let r = until(&mut ws, "response 4", |v| v["sequence"] == 4).await;
        assert_eq!(r["monitorID"], members.as_str());
        let ids: Vec<&Json> = r["state"].as_array().unwrap().iter().map(|m| &m["id"]).collect();
        assert_eq!(ids, [&json!(OTHER)], "{r}");
        say(&mut ws, json!({"type": "stop", "sequence": 5, "monitorID": raw})).await;
        assert_eq!(until(&mut ws, "response 5", |v| v["sequence"] == 5).await["type"], "response");
        say(&mut ws, json!({"type": "stop", "sequence": 6, "monitorID": raw})).await;
        assert_eq!(until(&mut ws, "error 6", |v| v["sequence"] == 6).await["type"], "error");
        say(&mut ws, json!({"type": "start", "sequence": 7, "monitor": "everything"})).await;
        assert_eq!(until(&mut ws, "error 7", |v| v["sequence"] == 7).await["type"], "error");
        say(&mut ws, json!({"type": "start", "sequence": 8, "monitor": "raw", "filter": {"colour": 1}})).await;
        assert!(until(&mut ws, "error 8", |v| v["sequence"] == 8).await["reason"].as_str().unwrap().contains("colour"));
        ws.send(Frame::Text("not json".into())).await.unwrap();
        assert!(until(&mut ws, "an error", |v| v["type"] == "error").await["reason"].as_str().unwrap().contains("JSON"));

        // The process leaves with a bye.
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(p.child.id() as i32), nix::sys::signal::Signal::SIGTERM).unwrap();
        let left = until(&mut ws, "left", |v| is_event(v, &members, "left")).await;
        assert_eq!((left["data"]["id"].clone(), left["data"]["reason"].clone()), (json!(OTHER), json!("bye")));
    });
}

/// Datagrams signed with the bus's keys, each about `size` bytes once
/// rendered (made once and sent again: sealing is slow in a debug build).
fn sealed(config: &rmbus::config::Config, n: usize, size: usize) -> Vec<Vec<u8>> {
    use rmbus::wire::{Address, Command as Cmd, Framing, Header, Message, MessageType, Value};
    let keys = config.keys().unwrap();
    (0..n)
        .map(|i| {
            let msg = Message {
                header: Header {
                    seq: i as u32,
                    timestamp: 1_020_000_000_000,
                    kind: MessageType::Unreliable,
                    src: Address::parse("(app:test module:flood id:1-1@127.0.0.1)").unwrap(),
                    dst: Address::parse("(app:nobody)").unwrap(),
                    acks: vec![],
                },
                commands: vec![Cmd::new(
                    "test.flood",
                    vec![Value::string("x".repeat(size))],
                )],
            };
            rmbus::auth::seal(&msg, &keys, Framing::Lf).unwrap()
        })
        .collect()
}

/// Sends `datagrams` to the group, one every `gap`, so that the gateway
/// (a debug build in the tests) reads them rather than its socket buffer
/// dropping them.
fn send_all(config: &rmbus::config::Config, datagrams: &[Vec<u8>], gap: Duration) {
    let sender = loopback_sender();
    for d in datagrams {
        sender.send_to(d, config.group_addr()).unwrap();
        std::thread::sleep(gap);
    }
}

/// About `n` × 30 KB of events: more than a socket's buffers hold.
fn big_datagrams(config: &rmbus::config::Config, n: usize) {
    let d = sealed(config, 40, 30_000);
    for _ in 0..n.div_ceil(40) {
        send_all(config, &d, Duration::from_millis(5));
    }
}

#[test]
fn a_client_that_never_reads_is_cut_off_and_stalls_nobody() {
    let bus = bus();
    let state = tempfile::tempdir().unwrap();
    let mut g = Gateway::start(
        &bus,
        state.path(),
        &["--no-auth", "--ws-idle", "2", "--ws-queue", "64"],
    );
    let b = g.base.clone();
    rt().block_on(async {
        let mut stuck = connect_small(&b).await;
        say(
            &mut stuck,
            json!({"type": "start", "sequence": 1, "monitor": "raw"}),
        )
        .await;
        until(&mut stuck, "response", |v| v["type"] == "response").await;
        let mut fine = connect(&b, None).await.unwrap();
        say(
            &mut fine,
            json!({"type": "start", "sequence": 1, "monitor": "members"}),
        )
        .await;
        until(&mut fine, "response", |v| v["type"] == "response").await;
        // `stuck` reads nothing from here on.
        let config = bus.config.clone();
        tokio::task::spawn_blocking(move || big_datagrams(&config, 320))
            .await
            .unwrap();
        let _p = member_process(&bus, OTHER, "x.#");
        let joined = until(&mut fine, "joined", |v| v["event"] == "joined").await;
        assert_eq!(joined["data"]["id"], OTHER, "the reading client is served");
        let line = g.expect("closing monitor");
        assert!(line.contains("read nothing for 2 s"), "{line}");
        drop(stuck);
    });
}

#[test]
fn a_client_that_falls_behind_hears_what_it_missed_and_three_times_is_closed() {
    let bus = bus();
    let state = tempfile::tempdir().unwrap();
    let mut g = Gateway::start(&bus, state.path(), &["--no-auth", "--ws-queue", "16"]);
    let b = g.base.clone();
    let config = bus.config.clone();
    let flooding = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let flood = {
        let flooding = Arc::clone(&flooding);
        std::thread::spawn(move || {
            let datagrams = sealed(&config, 40, 30_000);
            while flooding.load(std::sync::atomic::Ordering::Relaxed) {
                send_all(&config, &datagrams, Duration::from_millis(5));
            }
        })
    };
    let (errors, events_after_error, code) = rt().block_on(async {
        let mut slow = connect_small(&b).await;
        say(&mut slow, json!({"type": "start", "sequence": 1, "monitor": "raw", "filter": {"command": "test.flood"}})).await;
        until(&mut slow, "response", |v| v["type"] == "response").await;
        let (mut errors, mut after, mut code) = (Vec::new(), 0, None);
        let deadline = Instant::now() + DEADLINE;
        'rounds: while Instant::now() < deadline {
            // Fall behind for a while, then read for a while.
            tokio::time::sleep(Duration::from_millis(1500)).await;
            let reading = Instant::now() + Duration::from_millis(1000);
            while let Ok(frame) = tokio::time::timeout(reading.saturating_duration_since(Instant::now()), slow.next()).await {
                match frame {
                    Some(Ok(Frame::Text(t))) => {
                        let v: Json = serde_json::from_str(t.as_str()).unwrap();
                        if v["type"] == "error" {
                            errors.push(v["reason"].as_str().unwrap().to_owned());
                        } else if v["type"] == "event" && !errors.is_empty() {
                            after += 1;
                        }
                    }
                    Some(Ok(Frame::Close(c))) => {
                        code = c.map(|c| u16::from(c.code));
                        break 'rounds;
                    }
                    Some(Ok(_)) => {}
                    _ => break 'rounds,
                }
            }
        }
        (errors, after, code)
    });
    flooding.store(false, std::sync::atomic::Ordering::Relaxed);
    flood.join().unwrap();
    assert!(!errors.is_empty(), "told what it missed");
    assert!(
        errors[0].starts_with("missed ") && errors[0].contains("events"),
        "{errors:?}"
    );
    assert!(events_after_error > 0, "the stream goes on after an error");
    assert_eq!(code, Some(1008), "errors: {errors:?}");
    assert!(g
        .expect("closing monitor")
        .contains("overflowed three times"));
}

#[test]
fn tls_with_http2_and_keep_alive() {
    let bus = bus();
    let state = tempfile::tempdir().unwrap();
    let ck =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
            .unwrap();
    let (cert, key) = (state.path().join("cert.pem"), state.path().join("key.pem"));
    std::fs::write(&cert, ck.cert.pem()).unwrap();
    std::fs::write(&key, ck.signing_key.serialize_pem()).unwrap();
    let mut g = Gateway::start(
        &bus,
        state.path(),
        &[
            "--no-auth",
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
    );
    assert!(g.base.starts_with("https://"), "{}", g.base);
    let addr = g.base.trim_start_matches("https://").to_owned();
    use tokio_rustls::rustls;
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ck.cert.der().clone()).unwrap();
    // ring's provider, deprecated since rustls 0.23.48 for lacking
    // post-quantum key exchange, is the one the gateway serves with.
    #[allow(deprecated)]
    let ring = || rustls::crypto::ring::default_provider();
    let client = |alpn: &[&[u8]]| {
        let mut c = rustls::ClientConfig::builder_with_provider(Arc::new(ring()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots.clone())
            .with_no_client_auth();
        c.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        tokio_rustls::TlsConnector::from(Arc::new(c))
    };
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    rt().block_on(async {
        // HTTP/2, chosen by ALPN.
        let tcp = tokio::net::TcpStream::connect(&addr).await.unwrap();
        let tls = client(&[b"h2", b"http/1.1"])
            .connect(name.clone(), tcp)
            .await
            .unwrap();
        assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
        let (mut send, conn) = hyper::client::conn::http2::handshake(
            hyper_util::rt::TokioExecutor::new(),
            hyper_util::rt::TokioIo::new(tls),
        )
        .await
        .unwrap();
        tokio::spawn(conn);
        for _ in 0..2 {
            let req = hyper::Request::get(format!("https://{addr}/-/"))
                .body(http_body_util::Empty::<bytes::Bytes>::new())
                .unwrap();
            let r = send.send_request(req).await.unwrap();
            assert_eq!(r.status(), 200);
            assert_eq!(r.version(), hyper::Version::HTTP_2);
        }
        // HTTP/1.1 with keep-alive: two requests on one connection.
        let tcp = tokio::net::TcpStream::connect(&addr).await.unwrap();
        let mut tls = client(&[b"http/1.1"])
            .connect(name.clone(), tcp)
            .await
            .unwrap();
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        for _ in 0..2 {
            tls.write_all(b"GET /cmbs/member/ HTTP/1.1\r\nHost: x\r\n\r\n")
                .await
                .unwrap();
            let mut buf = vec![0u8; 4096];
            let n = tls.read(&mut buf).await.unwrap();
            assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200 OK"));
        }
        // A failed handshake is logged; the next client is served.
        let mut plain = tokio::net::TcpStream::connect(&addr).await.unwrap();
        plain.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
        let mut sink = Vec::new();
        let _ = plain.read_to_end(&mut sink).await;
        let tcp = tokio::net::TcpStream::connect(&addr).await.unwrap();
        assert!(client(&[b"http/1.1"]).connect(name, tcp).await.is_ok());
    });
    g.expect("TLS handshake failed");
}

#[test]
fn every_limit_answers_with_its_code() {
    let bus = bus();
    let state = tempfile::tempdir().unwrap();
    let mut g = Gateway::start(
        &bus,
        state.path(),
        &[
            "--no-auth",
            "--max-body",
            "1000",
            "--max-header-bytes",
            "4000",
            "--max-attributes",
            "5",
            "--max-connections",
            "3",
            "--header-timeout",
            "1",
            "--body-timeout",
            "1",
            "--ws-max-message",
            "1000",
        ],
    );
    let b = g.base.clone();
    let host = b.trim_start_matches("http://").to_owned();
    assert_eq!(
        post(&b, "/cmbs/member/", &[PLAIN], &[b'x'; 2000]).status,
        413
    );
    assert_eq!(get(&b, "/-/", &[("X-Pad", &"p".repeat(5000))]).status, 413);
    let many: String = (0..6)
        .map(|i| format!("X-OCCI-Attribute: a{i}=1\n"))
        .collect();
    assert_eq!(
        post(&b, "/cmbs/member/", &[PLAIN], many.as_bytes()).status,
        413
    );
    // A body that never finishes: 408.
    let mut slow = TcpStream::connect(&host).unwrap();
    slow.write_all(b"POST /cmbs/member/ HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: 100\r\n\r\nCategory").unwrap();
    let mut answer = String::new();
    slow.set_read_timeout(Some(DEADLINE)).unwrap();
    let _ = slow.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    // Headers that never finish: the connection is closed.
    let mut dribble = TcpStream::connect(&host).unwrap();
    dribble
        .write_all(b"GET /-/ HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    dribble.set_read_timeout(Some(DEADLINE)).unwrap();
    let mut rest = Vec::new();
    // Our read timeout would end it with an error; the gateway's close ends
    // it with the end of the stream.
    let ended = dribble.read_to_end(&mut rest);
    assert!(ended.is_ok(), "the gateway cut it off: {ended:?}");
    // Connections over the cap, when every slot holds a served client: 503.
    // (Connections that never made a request give their slots up instead.)
    let idle: Vec<TcpStream> = (0..3)
        .map(|_| {
            let mut s = TcpStream::connect(&host).unwrap();
            s.write_all(b"GET /-/ HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
            s.set_read_timeout(Some(DEADLINE)).unwrap();
            let mut head = [0u8; 12];
            s.read_exact(&mut head).unwrap();
            assert_eq!(&head, b"HTTP/1.1 200");
            s
        })
        .collect();
    let mut over = TcpStream::connect(&host).unwrap();
    over.set_read_timeout(Some(DEADLINE)).unwrap();
    let mut busy = String::new();
    let _ = over.read_to_string(&mut busy);
    assert!(busy.starts_with("HTTP/1.1 503"), "{busy}");
    drop(idle);
    g.expect("refused, 3 connections open");
    // A WebSocket message over the limit ends that connection only.
    rt().block_on(async {
        let until_ok = Instant::now() + DEADLINE;
        let mut ws = loop {
            match connect(&b, None).await {
                Ok(ws) => break ws,
                Err(_) if Instant::now() < until_ok => {
                    tokio::time::sleep(Duration::from_millis(50)).await
                }
                Err(e) => panic!("{e}"),
            }
        };
        let _ = ws.send(Frame::Text("x".repeat(5000).into())).await;
        let end = tokio::time::timeout(DEADLINE, async {
            loop {
                match ws.next().await {
                    Some(Ok(Frame::Close(c))) => return c.map(|c| u16::from(c.code)),
                    Some(Ok(_)) => continue,
                    _ => return None,
                }
            }
        })
        .await
        .unwrap();
        assert_ne!(end, Some(1000), "not a normal close");
        assert_eq!(get(&b, "/-/", &[]).status, 200, "the gateway goes on");
    });
}
