//! `mbus.status (class sym "descr")`: a status notification (Guidelines §5.7).

use crate::wire::{Command, ShapeError, Value};

/// A status notification: an event, sent like any other.
///
/// # Format
///
/// ```text
/// mbus.status ( INFO|WARNING|ERROR|<profile's class>  <symbol>  "<description>" [<optional argument list>] )
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct StatusNotice {
    /// `INFO`, `WARNING`, `ERROR` or a profile's own Symbol.
    pub class: String,
    /// The profile's Symbol for the condition.
    pub symbol: String,
    /// A human-readable description.
    pub description: String,
}

impl StatusNotice {
    /// The command name.
    pub const SHAPE: &'static str = "mbus.status";

    /// Reads `cmd` as `mbus.status`.
    pub fn from_command(cmd: &Command) -> Result<StatusNotice, ShapeError> {
        if cmd.name != Self::SHAPE {
            return Err(ShapeError::Other(Self::SHAPE));
        }
        match cmd.args.as_slice() {
            [Value::Symbol(c), Value::Symbol(s), Value::String(d), ..] => Ok(StatusNotice {
                class: c.clone(),
                symbol: s.clone(),
                description: d.clone(),
            }),
            _ => Err(ShapeError::malformed(
                Self::SHAPE,
                None,
                "expected (CLASS SYMBOL \"description\")",
            )),
        }
    }

    /// The command on the wire.
    pub fn into_command(self) -> Command {
        Command::new(
            Self::SHAPE,
            vec![
                Value::Symbol(self.class),
                Value::Symbol(self.symbol),
                Value::String(self.description),
            ],
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_and_writes_back() {
        let s = StatusNotice {
            class: "WARNING".into(),
            symbol: "LOW_BATTERY".into(),
            description: "10 % left".into(),
        };
        let c = s.clone().into_command();
        assert_eq!(
            c.to_string(),
            r#"mbus.status (WARNING LOW_BATTERY "10 % left")"#
        );
        assert_eq!(StatusNotice::from_command(&c), Ok(s));
        assert!(StatusNotice::from_command(&Command::new("mbus.status", vec![])).is_err());
    }
}
