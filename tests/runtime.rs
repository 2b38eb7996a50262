//! The runtime on real sockets, on the host-local (loopback) group, each test
//! on its own free port. Waits are for events, with generous deadlines.

mod common;

use std::os::fd::AsRawFd;
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use rmbus::proto::{Delivery, Event, LeaveReason, MsgId};
use rmbus::rpc::RpcEvent;
use rmbus::runtime::{spawn, spawn_with_callbacks, Bus, Callbacks, Handle, HandleError};
use rmbus::wire::{Address, Command, Value};

const DEADLINE: Duration = Duration::from_secs(20);

fn addr(s: &str) -> Address {
    Address::parse(s).unwrap()
}

/// The entity's complete address.
fn address_of(h: &Handle) -> Address {
    h.with(|bus| bus.local_address().clone()).unwrap()
}

/// How many other entities it knows.
fn peer_count(h: &Handle) -> usize {
    h.with(|bus| bus.endpoint().peers().count()).unwrap()
}

/// Sends through the handle.
fn send(
    h: &Handle,
    dst: &Address,
    commands: Vec<Command>,
    delivery: Delivery,
) -> Result<MsgId, HandleError> {
    let dst = dst.clone();
    Ok(h.with_endpoint(move |ep, now| ep.send(now, &dst, commands, delivery))??)
}

/// Waits for the first event `f` accepts.
fn wait_for<T>(rx: &Receiver<Event>, f: impl Fn(&Event) -> Option<T>) -> T {
    let until = Instant::now() + DEADLINE;
    loop {
        let left = until.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(e) => {
                if let Some(t) = f(&e) {
                    return t;
                }
            }
            Err(e) => panic!("no such event within {DEADLINE:?}: {e}"),
        }
    }
}

#[test]
fn two_threaded_entities_exchange_a_reliable_command_and_say_bye() {
    let config = common::free_port_config();
    let (a, a_events) = spawn(&config, &addr("(app:test module:a)")).unwrap();
    let (b, b_events) = spawn(&config, &addr("(app:test module:b)")).unwrap();
    let (a_addr, b_addr) = (address_of(&a), address_of(&b));
    assert!(a_addr.id().unwrap().contains("@127.0.0.1"), "{a_addr}");
    wait_for(&a_events, |e| {
        matches!(e, Event::PeerJoined(x) if *x == b_addr).then_some(())
    });
    wait_for(&b_events, |e| {
        matches!(e, Event::PeerJoined(x) if *x == a_addr).then_some(())
    });

    let id = send(
        &a,
        &b_addr,
        vec![Command::new("test.set", vec![Value::Integer(7)])],
        Delivery::Reliable,
    )
    .unwrap();
    let got = wait_for(&b_events, |e| match e {
        Event::Command {
            src,
            reliable: true,
            command,
        } if *src == a_addr => Some(command.clone()),
        _ => None,
    });
    assert_eq!(got.args, vec![Value::Integer(7)]);
    wait_for(&a_events, |e| {
        matches!(e, Event::Delivered { id: i, .. } if *i == id).then_some(())
    });

    drop(b);
    wait_for(&a_events, |e| {
        matches!(e, Event::PeerLeft { addr, reason: LeaveReason::Bye } if *addr == b_addr)
            .then_some(())
    });
    assert_eq!(peer_count(&a), 0);
}

#[test]
fn callbacks_answer_from_the_bus_thread() {
    let config = common::free_port_config();
    let server = spawn_with_callbacks(
        &config,
        &addr("(app:test module:server)"),
        Callbacks::new().on_command("math.double", |bus, src, cmd, _reliable| {
            let n = cmd.args.first().and_then(Value::as_i64).unwrap_or(0);
            let reply = Command::new("math.result", vec![Value::Integer(2 * n)]);
            bus.with_endpoint(|ep, now| ep.send(now, src, vec![reply], Delivery::Reliable))
                .unwrap();
        }),
    )
    .unwrap();
    let server_addr = address_of(&server);
    let (client, events) = spawn(&config, &addr("(app:test module:client)")).unwrap();
    wait_for(&events, |e| {
        matches!(e, Event::PeerJoined(x) if *x == server_addr).then_some(())
    });
    // The server must know the client too before it can answer reliably.
    let until = Instant::now() + DEADLINE;
    while peer_count(&server) == 0 {
        assert!(Instant::now() < until, "server never heard the client");
        std::thread::sleep(Duration::from_millis(20));
    }
    send(
        &client,
        &server_addr,
        vec![Command::new("math.double", vec![Value::Integer(21)])],
        Delivery::Reliable,
    )
    .unwrap();
    let answer = wait_for(&events, |e| match e {
        Event::Command { command, .. } if command.name == "math.result" => command.args[0].as_i64(),
        _ => None,
    });
    assert_eq!(answer, 42);
}

#[test]
fn a_bus_in_an_application_owned_mio_loop_and_its_raw_fd() {
    let config = common::free_port_config();
    let mut bus = Bus::bind(&config, &addr("(app:test module:loop)")).unwrap();
    let mut poll = mio::Poll::new().unwrap();
    poll.registry()
        .register(&mut bus, mio::Token(7), mio::Interest::READABLE)
        .unwrap();
    let (other, _events) = spawn(&config, &addr("(app:test module:other)")).unwrap();
    let other_addr = address_of(&other);
    // The raw descriptor becomes readable when the other entity's hello arrives.
    let fd = bus.as_raw_fd();
    // SAFETY: `bus` owns the descriptor and outlives this borrow.
    let borrowed = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
    let mut pfd = [nix::poll::PollFd::new(
        borrowed,
        nix::poll::PollFlags::POLLIN,
    )];
    let ready =
        nix::poll::poll(&mut pfd, nix::poll::PollTimeout::try_from(20_000).unwrap()).unwrap();
    assert_eq!(ready, 1, "readable within the deadline");
    let mut events = mio::Events::with_capacity(8);
    let until = Instant::now() + DEADLINE;
    while bus.endpoint().peer(&other_addr).is_none() {
        assert!(Instant::now() < until, "never heard the other entity");
        poll.poll(
            &mut events,
            bus.timeout().map(|t| t.min(Duration::from_millis(200))),
        )
        .unwrap();
        bus.on_readable().unwrap();
        bus.on_timeout().unwrap();
        while bus.poll_event().is_some() {}
    }
    assert!(bus.timeout().is_some());
    bus.close().unwrap();
}

#[test]
fn thread_handles_call_serve_defer_and_survive_a_panicking_handler() {
    use rmbus::rpc::{Outcome, Reply, DEFAULT_TIMEOUT};
    use rmbus::runtime::Handled;

    let config = common::free_port_config();
    let (client, client_events) = spawn(&config, &addr("(app:test module:client)")).unwrap();
    let (server, server_events) = spawn(&config, &addr("(app:test module:server)")).unwrap();
    let server_addr = address_of(&server);
    wait_for(&client_events, |e| {
        matches!(e, Event::PeerJoined(x) if *x == server_addr).then_some(())
    });
    server
        .with(|bus| {
            bus.serve("calc.add", |req| {
                let sum = req.args.iter().filter_map(Value::as_i64).sum::<i64>();
                Reply::ok(vec![Value::Integer(sum)]).into()
            });
            bus.serve("calc.boom", |_| panic!("the handler broke"));
        })
        .unwrap();

    let args = vec![Value::Integer(2), Value::Integer(40)];
    let (callee, outcome) = client
        .call(&server_addr, "calc.add", args.clone(), DEFAULT_TIMEOUT)
        .unwrap();
    assert_eq!(callee, server_addr);
    assert_eq!(
        outcome,
        Outcome::Returned(Reply::ok(vec![Value::Integer(42)]))
    );

    let (_, outcome) = client
        .call(&server_addr, "calc.boom", vec![], DEFAULT_TIMEOUT)
        .unwrap();
    match outcome {
        Outcome::Returned(r) => {
            assert_eq!(r.result, "HANDLER_PANICKED");
            assert!(r.description.contains("the handler broke"), "{r:?}");
        }
        other => panic!("{other:?}"),
    }
    // The bus thread lives on.
    let (_, outcome) = client
        .call(&server_addr, "calc.add", args, DEFAULT_TIMEOUT)
        .unwrap();
    assert!(matches!(outcome, Outcome::Returned(ref r) if r.is_ok()));
    // Not served: UNKNOWN.
    let (_, outcome) = client
        .call(&server_addr, "calc.nothing", vec![], DEFAULT_TIMEOUT)
        .unwrap();
    assert_eq!(outcome, Outcome::Unknown);

    // A deferred answer: the handler keeps the request id, and another
    // thread answers through the handle.
    let (tx, rx) = std::sync::mpsc::channel();
    server
        .with(move |bus| {
            bus.serve("calc.slow", move |req| {
                let _ = tx.send(req.id);
                Handled::Later
            })
        })
        .unwrap();
    let caller = {
        let client = client.clone();
        let server_addr = server_addr.clone();
        std::thread::spawn(move || {
            client
                .call(&server_addr, "calc.slow", vec![], DEFAULT_TIMEOUT)
                .unwrap()
        })
    };
    let id = rx.recv_timeout(DEADLINE).unwrap();
    server
        .with_endpoint(move |ep, now| {
            ep.rpc()
                .reply(now, id, Reply::ok(vec![Value::string("finally")]))
        })
        .unwrap()
        .unwrap();
    let (_, outcome) = caller.join().unwrap();
    assert_eq!(
        outcome,
        Outcome::Returned(Reply::ok(vec![Value::string("finally")]))
    );
    // No Request events leaked to the channel for closure-served operations.
    assert!(server_events
        .try_iter()
        .all(|e| !matches!(e, Event::Rpc(RpcEvent::Request(_)))));
}

#[test]
fn the_event_fd_wakes_a_foreign_loop_when_events_are_queued() {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

    let config = common::free_port_config();
    let (a, a_events) = spawn(&config, &addr("(app:test module:ui)")).unwrap();
    let (b, _b_events) = spawn(&config, &addr("(app:test module:peer)")).unwrap();
    let (a_addr, b_addr) = (address_of(&a), address_of(&b));
    let readable = |ms: u16| {
        let mut fds = [PollFd::new(a.event_fd().unwrap(), PollFlags::POLLIN)];
        poll(&mut fds, PollTimeout::from(ms)).unwrap() == 1
    };
    // The UI loop: wait on the descriptor, clear it, drain the channel.
    let mut seen = Vec::new();
    let until = Instant::now() + DEADLINE;
    while !seen
        .iter()
        .any(|e| matches!(e, Event::PeerJoined(x) if *x == b_addr))
    {
        assert!(Instant::now() < until, "no join seen through the event fd");
        if readable(1000) {
            a.clear_event_fd();
            seen.extend(a_events.try_iter());
        }
    }
    // Drained and cleared: quiet until the next event.
    a.clear_event_fd();
    seen.extend(a_events.try_iter());
    assert!(!readable(0));
    send(
        &b,
        &a_addr,
        vec![Command::new("ui.refresh", vec![])],
        Delivery::Unreliable,
    )
    .unwrap();
    assert!(readable(20_000), "a queued command makes it readable");
    a.clear_event_fd();
    let got: Vec<Event> = a_events.try_iter().collect();
    assert!(
        got.iter()
            .any(|e| matches!(e, Event::Command { command, .. } if command.name == "ui.refresh")),
        "{got:?}"
    );
    // Callbacks have no channel, so no descriptor.
    let quiet =
        spawn_with_callbacks(&config, &addr("(app:test module:cb)"), Callbacks::new()).unwrap();
    assert!(quiet.event_fd().is_none());
}

#[test]
fn a_handle_used_in_its_own_callback_fails_at_once_and_dropping_it_there_says_bye() {
    use std::sync::{mpsc, Arc, Mutex};

    let config = common::free_port_config();
    // The callbacks hold a clone of their own entity's handle, as an
    // application that keeps its handle in shared state would.
    let slot: Arc<Mutex<Option<Handle>>> = Arc::default();
    let (tx, results) = mpsc::channel();
    let (use_slot, drop_slot) = (Arc::clone(&slot), Arc::clone(&slot));
    let server = spawn_with_callbacks(
        &config,
        &addr("(app:test module:selfish)"),
        Callbacks::new()
            .on_command("test.use", move |_bus, src, _cmd, _reliable| {
                let handle = use_slot.lock().unwrap().clone().unwrap();
                let sent = send(
                    &handle,
                    src,
                    vec![Command::new("test.hi", vec![])],
                    Delivery::Unreliable,
                );
                let called = handle.call(src, "test.rpc", vec![], Duration::from_secs(1));
                let _ = tx.send((sent.err(), called.err(), handle.with(|_| ()).err()));
            })
            .on_command("test.drop", move |_bus, _src, _cmd, _reliable| {
                // The last handle goes here, on the bus thread.
                drop_slot.lock().unwrap().take();
            }),
    )
    .unwrap();
    *slot.lock().unwrap() = Some(server.clone());
    let server_addr = address_of(&server);
    let (client, events) = spawn(&config, &addr("(app:test module:client)")).unwrap();
    wait_for(&events, |e| {
        matches!(e, Event::PeerJoined(x) if *x == server_addr).then_some(())
    });

    let poke = |name: &str| {
        send(
            &client,
            &server_addr,
            vec![Command::new(name, vec![])],
            Delivery::Unreliable,
        )
        .unwrap();
    };
    poke("test.use");
    let (sent, called, with_refused) = results.recv_timeout(DEADLINE).unwrap();
    assert_eq!(sent, Some(HandleError::OnBusThread));
    assert_eq!(called, Some(HandleError::OnBusThread));
    assert_eq!(with_refused, Some(HandleError::OnBusThread));

    // Our handle goes; the callbacks' clone keeps the entity alive.
    drop(server);
    poke("test.drop");
    wait_for(&events, |e| {
        matches!(e, Event::PeerLeft { addr, reason: LeaveReason::Bye } if *addr == server_addr)
            .then_some(())
    });
}

/// An application that calls right after it started, before it has heard
/// its callee, gets the answer: the callee is pinged and waited for within
/// the call's timeout, instead of refused as unknown.
#[test]
fn a_handle_call_made_before_the_callee_is_heard_waits_for_it() {
    use rmbus::rpc::{Outcome, Reply};
    let config = common::free_port_config();
    let (server, _server_events) = spawn(&config, &addr("(app:test module:early-server)")).unwrap();
    server
        .with(|bus| bus.serve("calc.one", |_| Reply::ok(vec![Value::Integer(1)]).into()))
        .unwrap();
    let server_addr = address_of(&server);
    let (client, _client_events) = spawn(&config, &addr("(app:test module:early-client)")).unwrap();
    let (callee, outcome) = client
        .call(&server_addr, "calc.one", vec![], Duration::from_secs(20))
        .unwrap();
    assert_eq!(callee, server_addr);
    assert_eq!(
        outcome,
        Outcome::Returned(Reply::ok(vec![Value::Integer(1)]))
    );
    client.close();
    server.close();
}

#[test]
fn a_weak_handle_does_not_keep_the_entity_on_the_bus() {
    let config = common::free_port_config();
    let (watcher, events) = spawn(&config, &addr("(app:test module:watcher)")).unwrap();
    let (leaving, _leaving_events) = spawn(&config, &addr("(app:test module:leaving)")).unwrap();
    let leaving_addr = leaving.with(|bus| bus.local_address().clone()).unwrap();
    let until = Instant::now() + DEADLINE;
    loop {
        match events.recv_timeout(until.saturating_duration_since(Instant::now())) {
            Ok(Event::PeerJoined(who)) if who == leaving_addr => break,
            Ok(_) => {}
            Err(e) => panic!("never heard of it: {e}"),
        }
    }
    let weak = leaving.downgrade();
    let upgraded = weak.upgrade().expect("alive while a handle is");
    assert!(upgraded.with(|bus| bus.endpoint().entities()).is_ok());
    drop(upgraded);
    // A worker holding the weak handle does not stop the last handle's drop
    // from saying bye.
    let worker = std::thread::spawn(move || {
        while let Some(h) = weak.upgrade() {
            drop(h);
            std::thread::sleep(Duration::from_millis(5));
        }
    });
    drop(leaving);
    loop {
        match events.recv_timeout(until.saturating_duration_since(Instant::now())) {
            Ok(Event::PeerLeft { addr, reason }) if addr == leaving_addr => {
                assert_eq!(reason, LeaveReason::Bye);
                break;
            }
            Ok(_) => {}
            Err(e) => panic!("it never left: {e}"),
        }
    }
    worker.join().unwrap();
    watcher.close();
}
