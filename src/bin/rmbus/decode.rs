//! `rmbus decode`: verify, decrypt and print one datagram.

use std::io::Read;

use rmbus::auth::open;

use crate::{ConfigArgs, Failure, Outcome};
use rmbus::record::{to_line, Accepted, Rejected};

/// Verify, decrypt and print one datagram with the configuration's keys.
#[derive(clap::Args)]
#[command(after_help = concat!("\
Examples:
  rmbus decode datagram.bin                     # one written by rmbus encode
  rmbus encode --src '(app:x id:1-1@127.0.0.1)' --dst '()' mbus.hello | rmbus decode --json

", exit_codes!()))]
pub struct Args {
    #[command(flatten)]
    config: ConfigArgs,
    /// The input is hex text (whitespace is ignored), not raw bytes.
    #[arg(long)]
    hex: bool,
    /// Print one JSON object instead of Mbus text.
    #[arg(long)]
    json: bool,
    /// The datagram file; `-` or nothing reads standard input.
    #[arg(value_name = "FILE", default_value = "-")]
    input: String,
}

pub fn run(args: Args) -> Outcome {
    let (_, keys) = args.config.load_existing()?;
    let mut raw = Vec::new();
    let read = if args.input == "-" {
        std::io::stdin().read_to_end(&mut raw)
    } else {
        std::fs::File::open(&args.input).and_then(|mut f| f.read_to_end(&mut raw))
    };
    read.map_err(|e| Failure::input(format!("{}: {e}", args.input)))?;
    let datagram = if args.hex {
        from_hex(&raw).map_err(|e| Failure::input(format!("{}: {e}", args.input)))?
    } else {
        raw
    };
    match open(&datagram, &keys) {
        Ok(msg) => {
            if args.json {
                println!("{}", to_line(&Accepted::new(&msg)));
            } else {
                println!("{msg}");
            }
            Ok(())
        }
        Err(rejection) => {
            if args.json {
                println!("{}", to_line(&Rejected::new(&rejection)));
            }
            let message = format!(
                "rejected: {} at byte {}: {}",
                rejection.code(),
                rejection.offset(),
                rejection.reason()
            );
            Err(if rejection.is_authenticated() {
                Failure::malformed(message)
            } else {
                Failure::input(message)
            })
        }
    }
}

/// Hex text to bytes, ignoring whitespace.
fn from_hex(text: &[u8]) -> Result<Vec<u8>, String> {
    let digits: Vec<u8> = text
        .iter()
        .copied()
        .filter(|c| !c.is_ascii_whitespace())
        .collect();
    if digits.len() % 2 != 0 {
        return Err(format!("odd number of hex digits ({})", digits.len()));
    }
    digits
        .chunks(2)
        .enumerate()
        .map(|(i, pair)| {
            std::str::from_utf8(pair)
                .ok()
                .and_then(|p| u8::from_str_radix(p, 16).ok())
                .ok_or_else(|| {
                    format!(
                        "not hex: {:?} (digit pair {})",
                        String::from_utf8_lossy(pair),
                        i + 1
                    )
                })
        })
        .collect()
}
