//! `rmbus encode`: seal one message into a datagram, for scripts and tests.

use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

use rmbus::auth::seal;
use rmbus::wire::{Address, Command, Framing, Header, Message, MessageType, Value};

use crate::{ConfigArgs, Failure, Outcome};

/// Seal one message with the configuration's keys and write the datagram to stdout.
#[derive(clap::Args)]
#[command(after_help = concat!("\
Examples:
  rmbus encode --src '(app:demo id:42-1@127.0.0.1)' --dst '(app:rat)' \\
      --reliable --seq 7 test.set '(1 \"x\" (2 3))' test.ping > datagram.bin
  rmbus encode --hex --crlf --src '(app:a id:1-1@127.0.0.1)' --dst '()' mbus.hello '()'

Commands are NAME followed by an optional argument list in Mbus syntax (default ()).

", exit_codes!()))]
pub struct Args {
    #[command(flatten)]
    config: ConfigArgs,
    /// Write hex text (and a newline) instead of raw bytes.
    #[arg(long)]
    hex: bool,
    /// RFC 3259 CRLF framing instead of LF (the config's FRAMING otherwise).
    #[arg(long)]
    crlf: bool,
    /// The source address; it should hold an id element, or receivers drop it.
    #[arg(long, value_name = "ADDR")]
    src: Address,
    /// The destination address, e.g. '()' for everyone.
    #[arg(long, value_name = "ADDR")]
    dst: Address,
    /// The SeqNum.
    #[arg(long, value_name = "N", default_value_t = 0)]
    seq: u32,
    /// The TimeStamp in milliseconds since 1970 (default: now).
    #[arg(long, value_name = "MS")]
    timestamp: Option<u64>,
    /// Mark the message reliable (R).
    #[arg(long)]
    reliable: bool,
    /// SeqNums to acknowledge, comma-separated.
    #[arg(long, value_name = "N,N", value_delimiter = ',')]
    acks: Vec<u32>,
    /// Commands: NAME [ARGS] …, ARGS an Mbus list such as '(1 "x" (2 3))'.
    #[arg(value_name = "CMD ARGS", allow_hyphen_values = true)]
    commands: Vec<String>,
}

pub fn run(args: Args) -> Outcome {
    let (config, keys) = args.config.load_existing()?;
    if args.src.id().is_none() {
        tracing::warn!("the source address has no id element: receivers will discard the message");
    }
    let timestamp = match args.timestamp {
        Some(ms) => ms,
        None => SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0),
    };
    if timestamp > 9_999_999_999_999 {
        return Err(Failure::input("--timestamp has at most 13 digits"));
    }
    let msg = Message {
        header: Header {
            seq: args.seq,
            timestamp,
            kind: if args.reliable {
                MessageType::Reliable
            } else {
                MessageType::Unreliable
            },
            src: args.src,
            dst: args.dst,
            acks: args.acks,
        },
        commands: parse_commands(&args.commands).map_err(Failure::input)?,
    };
    let framing = if args.crlf {
        Framing::Crlf
    } else {
        config.framing
    };
    let datagram = seal(&msg, &keys, framing).map_err(Failure::input)?;
    for hazard in msg.ucl_hazards(datagram.len()) {
        tracing::warn!("{hazard}");
    }
    let mut out = std::io::stdout().lock();
    let written = if args.hex {
        let hex: String = datagram.iter().map(|b| format!("{b:02x}")).collect();
        writeln!(out, "{hex}")
    } else {
        out.write_all(&datagram)
    };
    written
        .and_then(|()| out.flush())
        .map_err(|e| Failure::input(format!("stdout: {e}")))
}

/// `NAME [ARGS] NAME [ARGS] …`: a name, then its argument list if the next word
/// starts with `(`.
fn parse_commands(words: &[String]) -> Result<Vec<Command>, String> {
    let mut commands = Vec::new();
    let mut words = words.iter().peekable();
    while let Some(name) = words.next() {
        let args = match words.next_if(|w| w.trim_start().starts_with('(')) {
            Some(list) => match Value::parse(list) {
                Ok(Value::List(items)) => items,
                Ok(_) => return Err(format!("arguments of {name}: '{list}' is not a list")),
                Err(e) => {
                    return Err(format!(
                        "arguments of {name}: '{list}': {}",
                        e.explain(list)
                    ))
                }
            },
            None => Vec::new(),
        };
        commands.push(Command::new(name.clone(), args));
    }
    Ok(commands)
}
