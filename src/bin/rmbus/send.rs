//! `rmbus send`: send one command.

use std::time::{Duration, Instant};

use rmbus::proto::{Delivery, Event};
use rmbus::runtime::EntityId;
use rmbus::wire::{Address, Command, Value};

use crate::bus_args::BusArgs;
use crate::driver::{entity, Driver, Ended, Flow};
use crate::reach;
use crate::{Failure, Outcome};

/// Send one command, unreliably to any address, or reliably to one entity.
#[derive(clap::Args)]
#[command(after_help = concat!("\
Examples:
  rmbus send tool.refresh
  rmbus send --to '(app:rat module:engine)' --reliable audio.volume '(80)'

With --reliable, a destination that no known entity matches is pinged and waited
for (--wait); one that matches one entity is completed to its full address.

", exit_codes!()))]
pub struct Args {
    #[command(flatten)]
    bus: BusArgs,
    /// Send reliably and wait for the acknowledgement.
    #[arg(long)]
    reliable: bool,
    /// The destination.
    #[arg(long, value_name = "ADDR", default_value = "()")]
    to: Address,
    /// How long to wait to hear from the destination, in seconds (--reliable).
    #[arg(long, value_name = "SECS", default_value_t = 2.0)]
    wait: f64,
    /// The command name.
    #[arg(value_name = "CMD")]
    command: String,
    /// Its argument list in Mbus syntax, e.g. '(1 "x" (2 3))'.
    #[arg(value_name = "ARGS", default_value = "()", allow_hyphen_values = true)]
    args: String,
}

/// `NAME` and `(ARGS)` as one command.
pub fn command(name: &str, args: &str) -> Result<Command, String> {
    const HINT: &str = "ARGS is one parenthesised list, e.g. '(2 \"text\")'";
    let listed = args.trim_start().starts_with('(');
    match Value::parse(args) {
        Ok(Value::List(items)) => {
            let command = Command::new(name, items);
            if command.has_wide_integer() {
                tracing::warn!(
                    "{name} carries an Integer outside 32 bits: UCL peers (RAT, VIC, SDR) abort on it"
                );
            }
            Ok(command)
        }
        Ok(_) => Err(format!("arguments '{args}': not a list; {HINT}")),
        Err(e) if !listed => Err(format!("arguments '{args}': {}; {HINT}", e.explain(args))),
        Err(e) => Err(format!("arguments '{args}': {}", e.explain(args))),
    }
}

pub fn run(args: Args) -> Outcome {
    let cmd = command(&args.command, &args.args).map_err(Failure::input)?;
    let wait = Duration::try_from_secs_f64(args.wait)
        .map_err(|e| Failure::input(format!("--wait: {e}")))?;
    let (mut driver, me) = Driver::join(&args.bus)?;
    let outcome = if args.reliable {
        send_reliable(&mut driver, me, &args.to, cmd, wait)
    } else {
        entity(&mut driver.host, me)
            .with_endpoint(|ep, now| ep.send(now, &args.to, vec![cmd], Delivery::Unreliable))
            .map(|_| ())
            .map_err(Failure::input)
    };
    let _ = entity(&mut driver.host, me).close();
    outcome
}

fn send_reliable(
    driver: &mut Driver,
    me: EntityId,
    to: &Address,
    cmd: Command,
    wait: Duration,
) -> Outcome {
    let dst = match reach::find(driver, me, to, wait).map_err(Failure::input)? {
        None => return Err(Failure::interrupted("interrupted before sending")),
        Some(found) => found.map_err(|e| reach::not_found(&driver.host, me, e, Failure::input))?,
    };
    let id = entity(&mut driver.host, me)
        .with_endpoint(|ep, now| ep.send(now, &dst, vec![cmd], Delivery::Reliable))
        .map_err(Failure::input)?;
    let mut result = None;
    let ended = driver
        .run(
            Some(Instant::now() + Duration::from_secs(5)),
            |_| Flow::Continue,
            |_, _, event| match event {
                Event::Delivered { id: i, after, .. } if i == id => {
                    result = Some(Ok(after));
                    Flow::Stop
                }
                Event::DeliveryFailed { id: i, .. } if i == id => {
                    result = Some(Err(()));
                    Flow::Stop
                }
                _ => Flow::Continue,
            },
        )
        .map_err(Failure::input)?;
    match result {
        Some(Ok(after)) => {
            tracing::info!("acknowledged by {dst} after {after:?}");
            Ok(())
        }
        None if ended == Ended::Signal => Err(Failure::interrupted(format!(
            "interrupted before {dst} acknowledged (it may still arrive)"
        ))),
        _ => Err(Failure::lost(format!(
            "no acknowledgement from {dst} (it may still have arrived)"
        ))),
    }
}
