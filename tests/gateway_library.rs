//! The OCCI gateway run from the library ([`rmbus::gateway::Gateway`]), as
//! an application embeds it: bound on a free loopback port on a host-local
//! bus of its own, its log and execute handler given as closures, members
//! and messages made over HTTP, and a shutdown on the application's signal
//! after which its hosted member has said bye.
#![cfg(feature = "gateway")]

mod common;
mod http;

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use http::*;
use rmbus::gateway::{Gateway, GatewayError, GatewayOptions};
use rmbus::runtime::{spawn_members, MembersEvent, MembersOptions};

const MEMBER: &str = "996ad860-2a9a-504f-8861-aeafd0b2ae29";
const MESSAGE: &str = "0101d860-2a9a-504f-8861-aeafd0b20101";
const J: [(&str, &str); 2] = [JSON, ACCEPT_JSON];
const DEADLINE: Duration = Duration::from_secs(30);

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/pycmbs")
            .join(name),
    )
    .unwrap()
}

#[test]
fn an_application_serves_the_gateway_and_stops_it() {
    let config = common::free_port_config();
    let state = tempfile::tempdir().unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();

    // No authentication is refused beyond loopback, before anything binds.
    let mut open = GatewayOptions::new(state.path().join("open"));
    open.listen = "0.0.0.0:0".parse().unwrap();
    let refused = runtime.block_on(Gateway::bind(&config, open)).unwrap_err();
    assert!(
        matches!(refused, GatewayError::NoAuthBeyondLoopback(_)),
        "{refused}"
    );
    assert!(!state.path().join("open").exists());

    // A watcher on the same bus sees the gateway's member come and go.
    let (seen_tx, seen) = mpsc::channel();
    let watcher = spawn_members(&config, MembersOptions::default(), move |e| {
        if let MembersEvent::Joined(en) | MembersEvent::Left { entry: en, .. } = &e {
            if en.description.id == MEMBER {
                let _ = seen_tx.send(matches!(e, MembersEvent::Joined(_)));
            }
        }
    })
    .unwrap();

    let lines = Arc::new(Mutex::new(Vec::<String>::new()));
    let executed = Arc::new(AtomicUsize::new(0));
    let mut options = GatewayOptions::new(state.path().join("gateway"));
    options.listen = "127.0.0.1:0".parse().unwrap();
    let log = Arc::clone(&lines);
    options.log = Arc::new(move |line| log.lock().unwrap().push(line));
    let count = Arc::clone(&executed);
    options.exec = Some(Arc::new(move |_job| {
        count.fetch_add(1, Ordering::SeqCst);
        Ok(serde_json::json!("handled by the application"))
    }));
    let gateway = runtime.block_on(Gateway::bind(&config, options)).unwrap();
    let base = gateway.url().to_owned();
    let addr = gateway.local_addr();
    assert_eq!(base, format!("http://{addr}"));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = runtime.spawn(gateway.run(async move {
        let _ = stopped.await;
    }));

    let created = post(&base, "/cmbs/member/", &J, &fixture("post_member.json"));
    assert_eq!(created.status, 201, "{}", created.body);
    assert_eq!(seen.recv_timeout(DEADLINE), Ok(true), "the member joined");
    let msg = post(
        &base,
        "/cmbs/message/",
        &J,
        &fixture("post_message_l1.json"),
    );
    assert_eq!(msg.status, 201, "{}", msg.body);
    let path = format!("/cmbs/message/{MESSAGE}");
    let sent = post(&base, &format!("{path}?action=send_l1"), &J, b"{}");
    assert_eq!(sent.status, 200, "{}", sent.body);
    assert!(sent.body.contains("delivered"), "{}", sent.body);
    assert_eq!(executed.load(Ordering::SeqCst), 1, "the member ran the job");
    let run = post(&base, &format!("{path}?action=execute"), &J, b"{}");
    assert_eq!(run.status, 200, "{}", run.body);
    assert!(
        run.body.contains("handled by the application"),
        "{}",
        run.body
    );
    assert_eq!(executed.load(Ordering::SeqCst), 2);
    assert!(
        lines
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.starts_with("POST /cmbs/member/ 201")),
        "{:?}",
        lines.lock().unwrap()
    );

    stop.send(()).unwrap();
    let ended = runtime.block_on(async { tokio::time::timeout(DEADLINE, serving).await });
    ended.expect("it stops").unwrap().unwrap();
    assert_eq!(
        seen.recv_timeout(DEADLINE),
        Ok(false),
        "the member said bye"
    );
    assert!(
        std::net::TcpStream::connect(addr).is_err(),
        "nothing listens any more"
    );
    watcher.stop();
    watcher.wait().unwrap();
}
