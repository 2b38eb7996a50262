//! `rmbus demo`: three entities on the host-local bus, narrated.

use std::io::Write;
use std::net::UdpSocket;
use std::time::{Duration, Instant};

use rmbus::auth::{CipherAlgo, HashAlgo};
use rmbus::config::{Config, Scope};
use rmbus::proto::{Delivery, Event, LeaveReason};
use rmbus::runtime::{EntityId, Host};
use rmbus::wire::{Address, Command, Value};

use crate::driver::{endpoint, entity, Driver, Ended, Flow};
use crate::{Failure, Outcome};

/// Watch a bus come alive: a sensor, a controller and a logger on this host.
#[derive(clap::Args)]
#[command(after_help = concat!("\
Example:
  rmbus demo --seconds 20

The demo runs on its own host-local bus (loopback only, TTL 0) with fresh keys
and a free port: it needs no configuration file and meets no other program.

", exit_codes!()))]
pub struct Args {
    /// How long the demo runs, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 10.0)]
    seconds: f64,
}

const NAMES: [&str; 3] = ["sensor", "controller", "logger"];

struct Narrator {
    start: Instant,
}

impl Narrator {
    fn say(&self, who: &str, what: impl std::fmt::Display) {
        let t = self.start.elapsed().as_secs_f64();
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{t:6.2}s  {who:<10}  {what}");
        let _ = out.flush();
    }
}

fn name_of(addr: &Address) -> &str {
    addr.get("module").unwrap_or("?")
}

pub fn run(args: Args) -> Outcome {
    let total = Duration::try_from_secs_f64(args.seconds)
        .map_err(|e| Failure::input(format!("--seconds: {e}")))?;
    let port = UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map_err(Failure::input)?
        .port();
    let mut config = Config::generate(HashAlgo::HmacMd5_96, CipherAlgo::None);
    config.scope = Scope::HostLocal;
    config.port = Some(port);
    // The sockets and the Ctrl-C handler first: a signal from the first line
    // on ends the demo with a bye.
    let host =
        Host::bind(&config).map_err(|e| Failure::input(format!("cannot join the bus: {e}")))?;
    let mut driver = Driver::new(host).map_err(Failure::input)?;
    let n = Narrator {
        start: Instant::now(),
    };
    n.say(
        "demo",
        format!(
            "a private host-local bus on {} (loopback only, TTL 0, fresh HMAC-MD5 key)",
            config.group_addr()
        ),
    );
    n.say(
        "demo",
        "three entities in this process, sharing one pair of sockets",
    );
    let mut ids = Vec::new();
    for name in NAMES {
        let address = Address::new([("app", "demo"), ("module", name)]).map_err(Failure::input)?;
        let id = driver
            .host
            .add(&address)
            .map_err(|e| Failure::input(format!("cannot join the bus: {e}")))?;
        n.say(
            name,
            format!("joins as {}", endpoint(&driver.host, id).local_address()),
        );
        ids.push(id);
    }
    let name = |id: EntityId| ids.iter().position(|i| *i == id).map_or("?", |i| NAMES[i]);
    let (sensor, controller) = (ids[0], ids[1]);
    // Ask everyone to say hello now rather than within a second.
    let _ =
        entity(&mut driver.host, sensor).with_endpoint(|ep, now| ep.ping(now, &Address::empty()));

    let leave_at = n.start + total.mul_f64(0.6);
    let mut next_reading = n.start + Duration::from_millis(1200);
    let mut next_command = n.start + Duration::from_millis(1500);
    let mut rate = 1;
    let mut sensor_left = false;
    let ended = driver
        .run(
            Some(n.start + total),
            |host| {
                let now = Instant::now();
                if !sensor_left && now >= leave_at {
                    n.say("sensor", "leaves the bus (mbus.bye)");
                    let _ = entity(host, sensor).close();
                    sensor_left = true;
                }
                if !sensor_left && now >= next_reading {
                    next_reading = now + Duration::from_millis(1000);
                    let reading = Command::new(
                        "demo.reading",
                        vec![
                            Value::Float(20.0 + rate as f64 * 0.5),
                            Value::symbol("CELSIUS"),
                        ],
                    );
                    let to =
                        Address::new([("app", "demo"), ("module", "logger")]).unwrap_or_default();
                    if entity(host, sensor)
                        .with_endpoint(|ep, now| {
                            ep.send(now, &to, vec![reading], Delivery::Unreliable)
                        })
                        .is_ok()
                    {
                        n.say("sensor", format!("sends a reading to {to}, unreliably"));
                    }
                }
                if now >= next_command {
                    next_command = now + Duration::from_millis(1500);
                    let target =
                        Address::new([("app", "demo"), ("module", "sensor")]).unwrap_or_default();
                    match endpoint(host, controller).unique_match(&target) {
                        Ok(full) => {
                            rate += 1;
                            let cmd =
                                Command::new("demo.sensor.set-rate", vec![Value::Integer(rate)]);
                            if entity(host, controller)
                                .with_endpoint(|ep, now| {
                                    ep.send(now, &full, vec![cmd], Delivery::Reliable)
                                })
                                .is_ok()
                            {
                                n.say(
                                    "controller",
                                    format!("sends demo.sensor.set-rate ({rate}) reliably"),
                                );
                            }
                        }
                        Err(e) => n.say("controller", format!("cannot send reliably: {e}")),
                    }
                }
                Flow::WakeAt(next_reading.min(next_command).min(leave_at.max(now)))
            },
            |_, i, event| {
                let me = name(i);
                match event {
                    Event::PeerJoined(a) => n.say(me, format!("notices {} joined", name_of(&a))),
                    Event::PeerLeft { addr, reason } => n.say(
                        me,
                        format!(
                            "notices {} left ({})",
                            name_of(&addr),
                            match reason {
                                LeaveReason::Bye => "it said bye",
                                LeaveReason::Timeout => "silent too long",
                                LeaveReason::Evicted => "evicted from a full table",
                            }
                        ),
                    ),
                    Event::Command {
                        src,
                        reliable,
                        command,
                    } => {
                        let how = if reliable { "reliably" } else { "unreliably" };
                        n.say(
                            me,
                            format!("receives {command} from {} {how}", name_of(&src)),
                        );
                    }
                    Event::Delivered { after, .. } => n.say(
                        me,
                        format!("acknowledged after {:.2} ms", after.as_secs_f64() * 1000.0),
                    ),
                    Event::DeliveryFailed { dst, .. } => {
                        n.say(me, format!("no acknowledgement from {}", name_of(&dst)))
                    }
                    _ => {}
                }
                Flow::Continue
            },
        )
        .map_err(Failure::input)?;
    if ended == Ended::Signal {
        n.say("demo", "interrupted");
    }
    for id in ids.iter().copied() {
        let mut e = entity(&mut driver.host, id);
        if !e.endpoint().is_closed() {
            n.say(name(id), "leaves the bus (mbus.bye)");
            let _ = e.close();
        }
    }
    n.say("demo", "done");
    Ok(())
}
