//! A `Bus` in an application-owned mio loop, next to the application's own
//! sources: the bus is just another `mio::event::Source`, and its deadline
//! becomes the poll timeout. A second entity (on the thread runtime) asks it
//! to echo something; the loop answers and ends.
//!
//! Run: `cargo run --example mio_loop`

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use mio::{Events, Interest, Poll, Token};
use rmbus::auth::{CipherAlgo, HashAlgo};
use rmbus::config::Config;
use rmbus::proto::{Delivery, Event};
use rmbus::runtime::{spawn, Bus};
use rmbus::wire::{Address, Command, Value};

const BUS: Token = Token(0);

pub fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut config = Config::generate(HashAlgo::HmacMd5_96, CipherAlgo::None);
    config.port = Some(UdpSocket::bind("127.0.0.1:0")?.local_addr()?.port());
    let mut bus = Bus::bind(&config, &Address::parse("(app:example module:echo)")?)?;
    println!("joined as {} on {}", bus.local_address(), bus.group_addr());

    // Someone who wants an echo, once it has heard from us.
    let (asker, answers) = spawn(&config, &Address::parse("(app:example module:asker)")?)?;
    let echo = bus.local_address().clone();
    std::thread::spawn(move || {
        let unknown = |who: &Address| {
            let who = who.clone();
            asker.with(move |bus| bus.endpoint().peer(&who).is_none())
        };
        while unknown(&echo) == Ok(true) {
            std::thread::sleep(Duration::from_millis(20));
        }
        let ask = Command::new("example.echo", vec![Value::string("hello, loop")]);
        let _ = asker
            .with_endpoint(move |ep, now| ep.send(now, &echo, vec![ask], Delivery::Unreliable));
        while let Ok(event) = answers.recv_timeout(Duration::from_secs(10)) {
            if let Event::Command { command, .. } = event {
                println!("asker: got {command}");
                break;
            }
        }
        asker.close();
    });

    let mut poll = Poll::new()?;
    poll.registry()
        .register(&mut bus, BUS, Interest::READABLE)?;
    let mut events = Events::with_capacity(16);
    let give_up = Instant::now() + Duration::from_secs(20);
    while Instant::now() < give_up {
        // Sleep until a datagram arrives or the protocol's next deadline.
        poll.poll(&mut events, bus.timeout())?;
        if events.iter().any(|e| e.token() == BUS) {
            bus.on_readable()?;
        }
        bus.on_timeout()?;
        while let Some(event) = bus.poll_event() {
            if let Event::Command { src, command, .. } = event {
                if command.name == "example.echo" {
                    println!("echo: answering {command} from {src}");
                    let echoed = Command::new("example.echoed", command.args);
                    bus.with_endpoint(|ep, now| {
                        ep.send(now, &src, vec![echoed], Delivery::Unreliable)
                    })?;
                    bus.close()?;
                    return Ok(());
                }
            }
        }
    }
    Err("nobody asked for an echo".into())
}
