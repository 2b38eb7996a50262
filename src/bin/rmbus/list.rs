//! `rmbus list`: who is on the bus.

use std::io::Write;
use std::time::{Duration, Instant};

use rmbus::wire::Address;

use crate::bus_args::BusArgs;
use crate::driver::{entity, Driver, Ended, Flow};
use crate::{Failure, Outcome};

/// Ping the bus and print the entities that answer.
#[derive(clap::Args)]
#[command(after_help = concat!("\
Examples:
  rmbus list
  rmbus list --wait 5 --json

", exit_codes!()))]
pub struct Args {
    #[command(flatten)]
    bus: BusArgs,
    /// How long to listen for answers, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 2.0)]
    wait: f64,
    /// One JSON object per entity: {"address":"(…)","endpoint":"ip:port"}.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: Args) -> Outcome {
    let wait = Duration::try_from_secs_f64(args.wait)
        .map_err(|e| Failure::input(format!("--wait: {e}")))?;
    let (mut driver, me) = Driver::join(&args.bus)?;
    entity(&mut driver.host, me)
        .with_endpoint(|ep, now| ep.ping(now, &Address::empty()))
        .map_err(Failure::input)?;
    let ended = driver
        .run(
            Some(Instant::now() + wait),
            |_| Flow::Continue,
            |_, _, _| Flow::Continue,
        )
        .map_err(Failure::input)?;
    if ended == Ended::Signal {
        let _ = entity(&mut driver.host, me).close();
        return Err(Failure::interrupted(
            "interrupted while listening for answers",
        ));
    }
    let hint = crate::reach::key_hint(&driver.host, me);
    let mut me = entity(&mut driver.host, me);
    let mut peers: Vec<_> = me.endpoint().peers().cloned().collect();
    peers.sort_by_key(|p| p.address.to_string());
    me.close().map_err(Failure::input)?;
    if let (true, Some(hint)) = (peers.is_empty(), hint) {
        return Err(Failure::input(format!("no entity answered; {hint}")));
    }
    if peers.is_empty() {
        // Nothing is no error (an empty bus), but it is said, on stderr:
        // stdout stays what it always is (the table, or JSON lines).
        eprintln!(
            "rmbus: no entity answered within {:.1} s (--wait to wait longer)",
            wait.as_secs_f64()
        );
    }
    let mut out = std::io::stdout().lock();
    // The address column is as wide as the longest address.
    let width = peers
        .iter()
        .map(|p| p.address.to_string().len())
        .max()
        .unwrap_or(0)
        .max("ADDRESS".len());
    if !args.json && !peers.is_empty() {
        let _ = writeln!(out, "{:<width$}  ENDPOINT", "ADDRESS");
    }
    for p in peers {
        let _ = if args.json {
            writeln!(
                out,
                "{}",
                serde_json::json!({"address": p.address.to_string(), "endpoint": p.endpoint.to_string()})
            )
        } else {
            writeln!(out, "{:<width$}  {}", p.address.to_string(), p.endpoint)
        };
    }
    Ok(())
}
