//! `mbus.go (condition)` (RFC 3259 §9.6).

use crate::wire::{Command, ShapeError};

/// "Go on": releases an entity waiting for `condition`; sent reliably to its
/// complete address.
///
/// # Format
///
/// ```text
/// mbus.go (<condition>)
/// ```
///
/// The condition is a Symbol (a String is accepted too). Exactly one argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Go {
    /// The condition released.
    pub condition: String,
}

impl Go {
    /// The command name.
    pub const NAME: &'static str = "mbus.go";

    /// Reads `cmd` as `mbus.go`.
    pub fn from_command(cmd: &Command) -> Result<Go, ShapeError> {
        super::condition(cmd, Self::NAME).map(|condition| Go { condition })
    }

    /// The command on the wire (the condition as a Symbol).
    pub fn into_command(self) -> Command {
        super::with_condition(Self::NAME, self.condition)
    }
}
