//! `mbus.ping ()` (RFC 3259 §9.3).

use crate::wire::{Command, ShapeError};

/// "Who is there?": the entities the destination designates answer with one `mbus.hello` after U[0, c_hello_min].
///
/// # Format
///
/// ```text
/// mbus.ping ()
/// ```
///
/// It takes no arguments; one that carries some is malformed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Ping;

impl Ping {
    /// The command name.
    pub const NAME: &'static str = "mbus.ping";

    /// Reads `cmd` as `mbus.ping`.
    pub fn from_command(cmd: &Command) -> Result<Ping, ShapeError> {
        super::without_arguments(cmd, Self::NAME).map(|()| Ping)
    }

    /// The command on the wire.
    pub fn into_command(self) -> Command {
        Command::new(Self::NAME, vec![])
    }
}
