//! What both C APIs need from the protocol crate: joining the bus with the
//! configuration found as rmbus finds it, addresses and argument lists from
//! C text, and waiting on the bus's descriptor.

use std::os::fd::RawFd;
use std::path::Path;
use std::time::{Duration, Instant};

use rmbus::config::file;
use rmbus::proto::SendError;
use rmbus::runtime::{BindError, Bus};
use rmbus::wire::{Address, Command, Value};

/// Why joining failed.
#[derive(Debug)]
pub enum OpenError {
    /// The configuration file (RFC 3259 §12).
    Config(String),
    /// The address given.
    Address(String),
    /// The sockets or the keys.
    Bind(BindError),
}

impl std::fmt::Display for OpenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OpenError::Config(e) | OpenError::Address(e) => f.write_str(e),
            OpenError::Bind(e) => write!(f, "{e}"),
        }
    }
}

/// Joins the bus as `address`, with the configuration file `config` (must
/// exist) or, without one, `$MBUS` else `~/.mbus`, created with fresh keys
/// (HMAC-MD5-96, no encryption) when missing, as UCL creates it.
pub fn open_bus(config: Option<&Path>, address: &str) -> Result<Bus, OpenError> {
    let address = parse_address(address).map_err(OpenError::Address)?;
    let (_, loaded) =
        file::load_for_joining(config).map_err(|e| OpenError::Config(e.to_string()))?;
    Bus::bind(&loaded, &address).map_err(OpenError::Bind)
}

/// An address as C code writes it: `(a:b c:d)`, or without the
/// parentheses as UCL's header code also accepts it.
pub fn parse_address(text: &str) -> Result<Address, String> {
    let trimmed = text.trim();
    let parsed = if trimmed.starts_with('(') {
        Address::parse(trimmed)
    } else {
        Address::parse(&format!("({trimmed})"))
    };
    parsed.map_err(|e| format!("address {text:?}: {e}"))
}

/// The values of an argument list written as the inside of a list
/// (`12 "x" (1 2)`), as UCL's `mbus_qmsg` takes it.
pub fn parse_args(text: &str) -> Result<Vec<Value>, String> {
    let list = format!("({text})");
    match Value::parse(&list) {
        Ok(Value::List(values)) => Ok(values),
        Ok(_) => Err(format!("arguments {text:?} are not a list")),
        Err(e) => Err(format!("arguments {text:?}: {}", e.explain(&list))),
    }
}

/// `values` as the inside of a list, as handlers get them.
pub fn args_text(values: &[Value]) -> String {
    let list = Value::List(values.to_vec()).to_string();
    list[1..list.len() - 1].to_owned()
}

/// A command from C text, checked for an Mbus form.
pub fn command(name: &str, args: &str) -> Result<Command, String> {
    let command = Command::new(name, parse_args(args)?);
    command
        .validate()
        .map_err(|e| format!("command {name:?}: {e}"))?;
    Ok(command)
}

/// Waits until `fd` is readable or `until` has come (`None`: no end);
/// true if readable.
pub fn wait_readable(fd: RawFd, until: Option<Instant>) -> bool {
    // Round up, so that a deadline 0.3 ms away is not a busy loop; -1 is
    // poll's "no timeout".
    let ms = until.map_or(-1, |u| {
        let left = u.saturating_duration_since(Instant::now());
        left.as_nanos().div_ceil(1_000_000).min(i32::MAX as u128) as i32
    });
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd, count 1.
    let n = unsafe { libc::poll(&mut pfd, 1, ms) };
    n > 0 && pfd.revents & libc::POLLIN != 0
}

/// Runs the bus's due timers and reads what waits (without blocking).
/// Returns how many datagrams arrived.
pub fn turn(bus: &mut Bus, read: bool) -> Result<u64, std::io::Error> {
    let before = bus.endpoint().stats().datagrams_in;
    if read {
        bus.on_readable()?;
    }
    if bus.deadline().is_some_and(|d| d <= Instant::now()) {
        bus.on_timeout()?;
    }
    Ok(bus.endpoint().stats().datagrams_in - before)
}

/// How long from now until `deadline`, in whole milliseconds rounded up.
pub fn millis_until(deadline: Instant) -> i64 {
    let left: Duration = deadline.saturating_duration_since(Instant::now());
    left.as_nanos().div_ceil(1_000_000).min(i64::MAX as u128) as i64
}

/// The sentence for a refused send.
pub fn send_error(e: &SendError) -> String {
    e.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_with_or_without_parentheses() {
        assert_eq!(
            parse_address("(app:rat module:engine)").unwrap(),
            parse_address("app:rat module:engine").unwrap()
        );
        assert!(parse_address("(app:rat").is_err());
    }

    #[test]
    fn argument_lists_round_trip_and_bad_ones_say_why() {
        let values = parse_args("12 \"a b\" (1 x)").unwrap();
        assert_eq!(values.len(), 3);
        assert_eq!(args_text(&values), "12 \"a b\" (1 x)");
        assert!(parse_args("\"open").unwrap_err().contains("unterminated"));
        assert!(parse_args("1 2)").is_err());
        assert_eq!(args_text(&[]), "");
    }
}
