//! The `mbus.waiting` / `mbus.go` rendezvous (RFC 3259 §9.5, §9.6): a worker
//! announces that it waits for `ready` until a coordinator releases it.
//!
//! Run: `cargo run --example rendezvous`

use std::net::UdpSocket;
use std::time::Duration;

use rmbus::auth::{CipherAlgo, HashAlgo};
use rmbus::config::Config;
use rmbus::proto::Event;
use rmbus::runtime::{spawn, Bus, Callbacks};
use rmbus::wire::Address;

pub fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut config = Config::generate(HashAlgo::HmacMd5_96, CipherAlgo::None);
    config.port = Some(UdpSocket::bind("127.0.0.1:0")?.local_addr()?.port());

    // The coordinator releases whoever waits for `ready`.
    let coordinator = rmbus::runtime::spawn_with_callbacks(
        &config,
        &Address::parse("(app:example module:coordinator)")?,
        Callbacks::new().on_event(|bus: &mut Bus, event| {
            if let Event::Waiting { src, condition } = event {
                if bus.endpoint().peer(src).is_some() && condition == "ready" {
                    println!("coordinator: {src} waits for {condition}; releasing it");
                    let _ = bus.with_endpoint(|ep, now| ep.go(now, src, condition));
                }
            }
        }),
    )?;

    // The worker waits on the bus thread; its events arrive on the channel.
    let (worker, events) = spawn(&config, &Address::parse("(app:example module:worker)")?)?;
    let me = worker.with(|bus| bus.local_address().clone())?;
    println!("worker {me}: waiting for ready");
    // mbus.waiting goes out every 100 ms until an mbus.go releases us.
    worker.with_endpoint(|ep, now| ep.start_waiting(now, &Address::empty(), "ready"))??;
    while let Ok(event) = events.recv_timeout(Duration::from_secs(10)) {
        if let Event::Go { src, condition } = event {
            println!("worker: released ({condition}) by {src}");
            worker.close();
            coordinator.close();
            return Ok(());
        }
    }
    Err("never released".into())
}
