//! `mbus.waiting (condition)` (RFC 3259 §9.5).

use crate::wire::{Command, ShapeError};

/// "I wait for `condition`": repeated unreliably until an `mbus.go` releases
/// it (RAT repeats it every 100 ms).
///
/// # Format
///
/// ```text
/// mbus.waiting (<condition>)
/// ```
///
/// The condition is a Symbol; UCL's rendezvous helpers send a String, which
/// is accepted too. Exactly one argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Waiting {
    /// What the sender waits for.
    pub condition: String,
}

impl Waiting {
    /// The command name.
    pub const NAME: &'static str = "mbus.waiting";

    /// Reads `cmd` as `mbus.waiting`.
    pub fn from_command(cmd: &Command) -> Result<Waiting, ShapeError> {
        super::condition(cmd, Self::NAME).map(|condition| Waiting { condition })
    }

    /// The command on the wire (the condition as a Symbol).
    pub fn into_command(self) -> Command {
        super::with_condition(Self::NAME, self.condition)
    }
}
