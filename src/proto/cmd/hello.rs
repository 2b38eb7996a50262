//! `mbus.hello ()` (RFC 3259 §9.1).

use crate::wire::{Command, ShapeError};

/// "I am here": sent unreliably to `()` at the hello interval (§8.1); every
/// authenticated message refreshes its sender's entry anyway.
///
/// # Format
///
/// ```text
/// mbus.hello ()
/// ```
///
/// Any arguments are ignored on receipt: drafts up to -05 gave hello
/// parameters, RFC 3259 has none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Hello;

impl Hello {
    /// The command name.
    pub const NAME: &'static str = "mbus.hello";

    /// Reads `cmd` as a hello.
    pub fn from_command(cmd: &Command) -> Result<Hello, ShapeError> {
        super::named(cmd, Self::NAME).map(|()| Hello)
    }

    /// The command on the wire.
    pub fn into_command(self) -> Command {
        Command::new(Self::NAME, vec![])
    }
}
