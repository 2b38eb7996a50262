//! The Guidelines layer on the thread runtime: a `mixer` entity that serves
//! RPCs (one answered at once, one answered later from another thread) and
//! properties, and a client that calls them, watches a property and sees it
//! change.
//!
//! Run: `cargo run --example rpc_service` (a private host-local bus; it ends
//! by itself). `cargo run --example rpc_service -- --serve` instead runs the
//! mixer on the bus of `$MBUS` / `~/.mbus` until end of input, for trying
//! `rmbus call '(module:mixer)' mixer.add '(2 3)'`,
//! `rmbus get '(module:mixer)' mixer.volume` or `rmbus watch …` by hand.

use std::net::UdpSocket;
use std::sync::mpsc;
use std::time::Duration;

use rmbus::auth::{CipherAlgo, HashAlgo};
use rmbus::config::{file, Config};
use rmbus::proto::Event;
use rmbus::rpc::{Access, Outcome, Reply, DEFAULT_TIMEOUT};
use rmbus::runtime::{spawn, Handle, Handled};
use rmbus::wire::{Address, Value};

/// Starts the mixer: `mixer.add`, the deferred `mixer.slow`, and the
/// properties `mixer.volume` (read-write) and `mixer.model` (read-only).
fn mixer(config: &Config) -> Result<Handle, Box<dyn std::error::Error>> {
    let (mixer, _events) = spawn(config, &Address::parse("(app:example module:mixer)")?)?;
    // A deferred answer: the handler hands the request to a worker thread,
    // which answers through the handle.
    let (work, jobs) = mpsc::channel();
    mixer.with(move |bus| {
        bus.serve("mixer.add", |req| {
            let sum: Option<i64> = req.args.iter().map(Value::as_i64).sum();
            match sum {
                Some(sum) => Reply::ok_with("ADDED", "", vec![Value::Integer(sum)]).into(),
                None => Reply::failed("NOT_A_NUMBER", "mixer.add takes integers").into(),
            }
        });
        bus.serve("mixer.status", |_| {
            Reply::ok_with("MIXING", "", vec![]).into()
        });
        bus.serve("mixer.slow", move |req| {
            let _ = work.send(req.id);
            Handled::Later
        });
        bus.with_endpoint(|ep, _| {
            let mut properties = ep.properties();
            properties.define("mixer.volume", Value::Integer(50), Access::ReadWrite);
            properties.define("mixer.model", Value::string("MX-1"), Access::ReadOnly);
        });
    })?;
    // A weak handle: the worker does not keep the mixer on the bus.
    let answering = mixer.downgrade();
    std::thread::spawn(move || {
        for id in jobs {
            std::thread::sleep(Duration::from_millis(50));
            let Some(mixer) = answering.upgrade() else {
                return;
            };
            let done = Reply::ok(vec![Value::string("done, slowly")]);
            let _ = mixer.with_endpoint(move |ep, now| ep.rpc().reply(now, id, done));
        }
    });
    Ok(mixer)
}

/// Serves the mixer on the bus of `config` until `until` returns, then
/// leaves: it says bye, so that its callers forget it at once.
pub fn serve(config: &Config, until: impl FnOnce()) -> Result<(), Box<dyn std::error::Error>> {
    let mixer = mixer(config)?;
    until();
    mixer.close();
    Ok(())
}

fn show(what: &str, outcome: &Outcome) {
    match outcome {
        Outcome::Returned(r) => println!(
            "client: {what} -> {} {} {:?} {}",
            r.status.as_str(),
            r.result,
            r.description,
            Value::List(r.values.clone())
        ),
        other => println!("client: {what} -> {}", other.code()),
    }
}

pub fn main() -> Result<(), Box<dyn std::error::Error>> {
    if std::env::args().any(|a| a == "--serve") {
        let path = file::locate(None)?;
        let loaded = file::load_or_create(&path, HashAlgo::HmacMd5_96, CipherAlgo::None)?;
        return serve(&loaded.config, || {
            println!(
                "mixer serving on the bus of {}; end input (Ctrl-D) to leave",
                path.display()
            );
            std::io::stdin().lines().for_each(drop);
        });
    }
    let mut config = Config::generate(HashAlgo::HmacMd5_96, CipherAlgo::None);
    config.port = Some(UdpSocket::bind("127.0.0.1:0")?.local_addr()?.port());
    let mixer = mixer(&config)?;
    let mixer_addr = mixer.with(|bus| bus.local_address().clone())?;

    let (client, events) = spawn(&config, &Address::parse("(app:example module:client)")?)?;
    let group = Address::parse("(module:mixer)")?;
    client.with_endpoint(move |ep, now| ep.ping(now, &group))??;
    let known = |client: &Handle, who: &Address| {
        let who = who.clone();
        client.with(move |bus| bus.endpoint().peer(&who).is_some())
    };
    while !known(&client, &mixer_addr)? {
        match events.recv_timeout(Duration::from_secs(10)) {
            Ok(_) => {}
            Err(_) => return Err("the mixer never answered".into()),
        }
    }

    let call = |name: &str, args: Vec<Value>| client.call(&mixer_addr, name, args, DEFAULT_TIMEOUT);
    let (_, added) = call("mixer.add", vec![Value::Integer(2), Value::Integer(3)])?;
    show("mixer.add (2 3)", &added);
    let (_, slow) = call("mixer.slow", vec![])?;
    show("mixer.slow ()", &slow);
    let (_, unknown) = call("mixer.explode", vec![])?;
    show("mixer.explode ()", &unknown);
    let (_, watched) = call("mixer.volume.watch", vec![])?;
    show("mixer.volume.watch", &watched);
    let (_, set) = call("mixer.volume.set", vec![Value::Integer(80)])?;
    show("mixer.volume.set (80)", &set);
    let (_, refused) = call("mixer.model.set", vec![Value::string("MX-2")])?;
    show("mixer.model.set (\"MX-2\")", &refused);

    // The mixer changes the volume itself: the watcher hears it.
    mixer.with_endpoint(|ep, now| ep.properties().set(now, "mixer.volume", Value::Integer(65)))?;
    let mut heard = Vec::new();
    while heard.len() < 2 {
        match events.recv_timeout(Duration::from_secs(10)) {
            Ok(Event::Command { command, .. }) if command.name == "mixer.volume" => {
                println!(
                    "client: notified mixer.volume {}",
                    Value::List(command.args.clone())
                );
                heard.extend(command.args);
            }
            Ok(_) => {}
            Err(_) => return Err("no change notification".into()),
        }
    }
    let (_, unwatched) = call("mixer.volume.unwatch", vec![])?;
    show("mixer.volume.unwatch", &unwatched);

    let ok = |o: &Outcome, values: &[Value]| matches!(o, Outcome::Returned(r) if r.is_ok() && r.values == values);
    let expected = [
        ok(&added, &[Value::Integer(5)]),
        ok(&slow, &[Value::string("done, slowly")]),
        unknown == Outcome::Unknown,
        ok(&watched, &[Value::Integer(50)]),
        ok(&set, &[Value::Integer(80)]),
        matches!(&refused, Outcome::Returned(r) if r.result == "READ_ONLY"),
        heard == [Value::Integer(80), Value::Integer(65)],
        ok(&unwatched, &[]),
    ];
    client.close();
    mixer.close();
    if expected.iter().all(|&b| b) {
        Ok(())
    } else {
        Err(format!("unexpected outcomes: {expected:?}").into())
    }
}
