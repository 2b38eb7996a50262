//! The thread runtime with pyMbus-style callbacks: a server answering
//! `math.double`, and a client on the channel API calling it.
//!
//! Run: `cargo run --example callbacks`

use std::net::UdpSocket;
use std::time::Duration;

use rmbus::auth::{CipherAlgo, HashAlgo};
use rmbus::config::Config;
use rmbus::proto::{Delivery, Event};
use rmbus::runtime::{spawn, spawn_with_callbacks, Callbacks};
use rmbus::wire::{Address, Command, Value};

pub fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut config = Config::generate(HashAlgo::HmacMd5_96, CipherAlgo::None);
    config.port = Some(UdpSocket::bind("127.0.0.1:0")?.local_addr()?.port());

    let server = spawn_with_callbacks(
        &config,
        &Address::parse("(app:example module:server)")?,
        Callbacks::new()
            .on_new_entity(|_, who| println!("server: new entity {who}"))
            .on_lost_entity(|_, who, why| println!("server: lost {who} ({why:?})"))
            .on_command("math.double", |bus, src, cmd, _reliable| {
                let n = cmd.args.first().and_then(Value::as_i64).unwrap_or(0);
                println!("server: doubling {n} for {src}");
                // Replying from the callback: the reply carries the ack.
                let result = Command::new("math.result", vec![Value::Integer(2 * n)]);
                let _ = bus
                    .with_endpoint(|ep, now| ep.send(now, src, vec![result], Delivery::Reliable));
            })
            .on_unknown_message(|_, src, cmd, _| {
                println!("server: no handler for {cmd} from {src}")
            }),
    )?;
    let server_addr = server.with(|bus| bus.local_address().clone())?;

    let (client, events) = spawn(&config, &Address::parse("(app:example module:client)")?)?;
    client.with_endpoint(|ep, now| ep.ping(now, &Address::empty()))??;
    let mut asked = false;
    while let Ok(event) = events.recv_timeout(Duration::from_secs(10)) {
        match event {
            // Ask once both sides know each other.
            Event::PeerJoined(who) if who == server_addr && !asked => {
                while server.with(|bus| bus.endpoint().entities())? < 2 {
                    std::thread::sleep(Duration::from_millis(10));
                }
                let to = server_addr.clone();
                let ask = Command::new("math.double", vec![Value::Integer(21)]);
                client.with_endpoint(move |ep, now| {
                    ep.send(now, &to, vec![ask], Delivery::Reliable)
                })??;
                asked = true;
            }
            Event::Command { command, .. } if command.name == "math.result" => {
                println!("client: the answer is {}", command.args[0]);
                // Leave: both say bye.
                client.close();
                server.close();
                return Ok(());
            }
            _ => {}
        }
    }
    Err("no answer from the server".into())
}
