//! `mbus.quit ()` (RFC 3259 §9.4).

use crate::wire::{Command, ShapeError};

/// "Please terminate": whether the application complies is its own business.
///
/// # Format
///
/// ```text
/// mbus.quit ()
/// ```
///
/// It takes no arguments; one that carries some is malformed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Quit;

impl Quit {
    /// The command name.
    pub const NAME: &'static str = "mbus.quit";

    /// Reads `cmd` as `mbus.quit`.
    pub fn from_command(cmd: &Command) -> Result<Quit, ShapeError> {
        super::without_arguments(cmd, Self::NAME).map(|()| Quit)
    }

    /// The command on the wire.
    pub fn into_command(self) -> Command {
        Command::new(Self::NAME, vec![])
    }
}
