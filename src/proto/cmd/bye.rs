//! `mbus.bye ()` (RFC 3259 §9.2).

use crate::wire::{Command, ShapeError};

/// "I am leaving": sent unreliably to `()` on detach; receivers remove the sender at once (§8).
///
/// # Format
///
/// ```text
/// mbus.bye ()
/// ```
///
/// It takes no arguments; one that carries some is malformed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Bye;

impl Bye {
    /// The command name.
    pub const NAME: &'static str = "mbus.bye";

    /// Reads `cmd` as `mbus.bye`.
    pub fn from_command(cmd: &Command) -> Result<Bye, ShapeError> {
        super::without_arguments(cmd, Self::NAME).map(|()| Bye)
    }

    /// The command on the wire.
    pub fn into_command(self) -> Command {
        Command::new(Self::NAME, vec![])
    }
}
