//! The pure poll API: the application owns the socket and the clock; the
//! protocol core only computes. Two endpoints on this host's loopback group,
//! driven by one plain loop, exchange a reliable message.
//!
//! Run: `cargo run --example poll_loop`

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant, SystemTime};

use rmbus::auth::{CipherAlgo, HashAlgo};
use rmbus::config::Config;
use rmbus::proto::{Delivery, Endpoint, EndpointConfig, Event};
use rmbus::wire::{Address, Command, Value};

pub fn main() -> Result<(), Box<dyn std::error::Error>> {
    // A private host-local bus: fresh keys, a free port.
    let port = UdpSocket::bind("127.0.0.1:0")?.local_addr()?.port();
    let mut config = Config::generate(HashAlgo::HmacMd5_96, CipherAlgo::None);
    config.port = Some(port);

    // Our own sockets: one joined to the group, one to send from (loopback, TTL 0).
    let group = config.group_addr();
    let rx = UdpSocket::bind(group)?;
    let SocketAddr::V4(g) = group else {
        unreachable!("IPv4 config")
    };
    rx.join_multicast_v4(g.ip(), &Ipv4Addr::LOCALHOST)?;
    rx.set_read_timeout(Some(Duration::from_millis(10)))?;
    let tx = UdpSocket::bind("127.0.0.1:0")?;
    tx.set_multicast_ttl_v4(0)?;
    socket2::SockRef::from(&tx).set_multicast_if_v4(&Ipv4Addr::LOCALHOST)?;

    let now = Instant::now();
    let mut endpoints = [("alice", 1u64), ("bob", 2)].map(|(name, seed)| {
        let addr = Address::parse(&format!(
            "(app:example name:{name} id:{}-{seed}@127.0.0.1)",
            std::process::id()
        ))
        .expect("valid address");
        let ep_config = EndpointConfig::from_config(&config, seed).expect("valid keys");
        Endpoint::new(ep_config, addr, now, SystemTime::now()).expect("address has an id")
    });
    let bob = endpoints[1].local_address().clone();
    let mut sent = None;
    let mut buf = vec![0u8; 65_536];
    let until = Instant::now() + Duration::from_secs(10);
    while Instant::now() < until {
        // Input: a datagram (every endpoint sees the group's traffic).
        if let Ok((n, from)) = rx.recv_from(&mut buf) {
            for ep in &mut endpoints {
                ep.handle_datagram(Instant::now(), from, &buf[..n]);
            }
        }
        for ep in &mut endpoints {
            let now = Instant::now();
            if ep.poll_timeout().is_some_and(|t| t <= now) {
                ep.handle_timeout(now);
            }
        }
        // Output: events first (so replies carry acks), then datagrams.
        for ep in &mut endpoints {
            while let Some(event) = ep.poll_event() {
                let me = ep.local_address().get("name").unwrap_or("?");
                match event {
                    Event::PeerJoined(who) => println!("{me}: heard {who}"),
                    Event::Command { src, command, .. } => println!("{me}: {command} from {src}"),
                    Event::Delivered { after, .. } => {
                        let ms = after.as_secs_f64() * 1e3;
                        println!("{me}: delivered, acknowledged after {ms:.1} ms; done");
                        return Ok(());
                    }
                    _ => {}
                }
            }
            while let Some(t) = ep.poll_transmit(Instant::now()) {
                tx.send_to(&t.contents, t.destination)?;
            }
        }
        // Once alice knows bob, she sends him one reliable command.
        if sent.is_none() && endpoints[0].peer(&bob).is_some() {
            let cmd = Command::new("example.greet", vec![Value::string("hello, bob")]);
            sent = Some(endpoints[0].send(Instant::now(), &bob, vec![cmd], Delivery::Reliable)?);
            while let Some(t) = endpoints[0].poll_transmit(Instant::now()) {
                tx.send_to(&t.contents, t.destination)?;
            }
        }
    }
    Err("no delivery within 10 s".into())
}
