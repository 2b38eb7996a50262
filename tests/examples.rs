//! Every example runs to its end and succeeds. Their code is compiled into
//! this test (so it is always the current code); each `main` returns an error
//! when what it demonstrates does not happen. They use private host-local
//! buses on free ports.

#[path = "../examples/callbacks.rs"]
mod callbacks;
#[path = "../examples/cmbs_layers.rs"]
mod cmbs_layers;
#[path = "../examples/datagram.rs"]
mod datagram;
#[path = "../examples/embedded_member.rs"]
mod embedded_member;
#[path = "../examples/mio_loop.rs"]
mod mio_loop;
#[path = "../examples/poll_loop.rs"]
mod poll_loop;
#[path = "../examples/rendezvous.rs"]
mod rendezvous;
#[path = "../examples/rpc_service.rs"]
mod rpc_service;

#[test]
fn datagram_example() {
    datagram::main().unwrap();
}

#[test]
fn poll_loop_example() {
    poll_loop::main().unwrap();
}

#[test]
fn mio_loop_example() {
    mio_loop::main().unwrap();
}

#[test]
fn callbacks_example() {
    callbacks::main().unwrap();
}

#[test]
fn rendezvous_example() {
    rendezvous::main().unwrap();
}

#[test]
fn rpc_service_example() {
    rpc_service::main().unwrap();
}

#[test]
fn cmbs_layers_example() {
    cmbs_layers::main().unwrap();
}

#[test]
fn embedded_member_example_runs_and_is_the_readme_s_word_for_word() {
    embedded_member::main().unwrap();
    let example = include_str!("../examples/embedded_member.rs");
    let part: Vec<&str> = example
        .lines()
        .skip_while(|l| !l.contains("README begin"))
        .skip(1)
        .take_while(|l| !l.contains("README end"))
        .map(|l| l.strip_prefix("    ").unwrap_or(l))
        .collect();
    assert!(
        part.len() <= 20,
        "the README example has {} lines",
        part.len()
    );
    let readme = include_str!("../README.md");
    let block = format!("```rust\n{}\n```", part.join("\n"));
    assert!(
        readme.contains(&block),
        "README.md does not show examples/embedded_member.rs as it is:\n{block}"
    );
}

#[test]
fn rpc_service_serve_says_bye_when_it_leaves() {
    use rmbus::auth::{CipherAlgo, HashAlgo};
    use rmbus::proto::{Event, LeaveReason};
    use rmbus::wire::Address;
    use std::time::{Duration, Instant};

    let mut config = rmbus::config::Config::generate(HashAlgo::HmacMd5_96, CipherAlgo::None);
    config.port = Some(
        std::net::UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port(),
    );
    let (watcher, events) = rmbus::runtime::spawn(
        &config,
        &Address::parse("(app:test module:watcher)").unwrap(),
    )
    .unwrap();
    let (stop, stopped) = std::sync::mpsc::channel::<()>();
    let serving = config.clone();
    let server = std::thread::spawn(move || {
        rpc_service::serve(&serving, move || {
            let _ = stopped.recv();
        })
        .map_err(|e| e.to_string())
    });
    let mixer = Address::parse("(module:mixer)").unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let joined = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match events.recv_timeout(left) {
            Ok(Event::PeerJoined(who)) if mixer.is_subset_of(&who) => break who,
            Ok(_) => {}
            Err(e) => panic!("the mixer never joined: {e}"),
        }
    };
    // What the README's `rmbus call … mixer.status` asks of it.
    let status = watcher
        .call(&mixer, "mixer.status", vec![], Duration::from_secs(10))
        .unwrap();
    assert!(format!("{status:?}").contains("MIXING"), "{status:?}");
    stop.send(()).unwrap();
    server.join().unwrap().unwrap();
    // Its worker thread holds only a weak handle: leaving is a bye, not an
    // expiry seconds later.
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match events.recv_timeout(left) {
            Ok(Event::PeerLeft { addr, reason }) if addr == joined => {
                assert_eq!(reason, LeaveReason::Bye);
                break;
            }
            Ok(_) => {}
            Err(e) => panic!("the mixer never left: {e}"),
        }
    }
    watcher.close();
}
