//! The commands every entity must understand (RFC 3259 §9), as typed
//! commands: one type per command with `from_command` and `into_command`,
//! each with its `# Format`.
//!
//! | command | type | RFC 3259 |
//! |---|---|---|
//! | `mbus.hello ()` | [`Hello`] | §9.1 |
//! | `mbus.bye ()` | [`Bye`] | §9.2 |
//! | `mbus.ping ()` | [`Ping`] | §9.3 |
//! | `mbus.quit ()` | [`Quit`] | §9.4 |
//! | `mbus.waiting (condition)` | [`Waiting`] | §9.5 |
//! | `mbus.go (condition)` | [`Go`] | §9.6 |
//!
//! [`TransportCommand`] reads any of them. Hello ignores its arguments (RFC
//! 3259 §9); the others take exactly what their format says, and a command of
//! theirs with other arguments is [`ShapeError::Malformed`] (the endpoint
//! drops it and counts it in `Stats::malformed_commands`).

mod bye;
mod go;
mod hello;
mod ping;
mod quit;
mod waiting;

use crate::wire::{Command, ShapeError, Value};

pub use bye::Bye;
pub use go::Go;
pub use hello::Hello;
pub use ping::Ping;
pub use quit::Quit;
pub use waiting::Waiting;

/// One of the six commands of RFC 3259 §9.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransportCommand {
    /// `mbus.hello`.
    Hello(Hello),
    /// `mbus.bye`.
    Bye(Bye),
    /// `mbus.ping`.
    Ping(Ping),
    /// `mbus.quit`.
    Quit(Quit),
    /// `mbus.waiting`.
    Waiting(Waiting),
    /// `mbus.go`.
    Go(Go),
}

impl TransportCommand {
    /// The shape's name in errors.
    pub const SHAPE: &'static str = "RFC 3259 §9 command";

    /// Reads `cmd`: [`ShapeError::Other`] unless it has one of the six names.
    pub fn from_command(cmd: &Command) -> Result<TransportCommand, ShapeError> {
        Ok(match cmd.name.as_str() {
            Hello::NAME => TransportCommand::Hello(Hello::from_command(cmd)?),
            Bye::NAME => TransportCommand::Bye(Bye::from_command(cmd)?),
            Ping::NAME => TransportCommand::Ping(Ping::from_command(cmd)?),
            Quit::NAME => TransportCommand::Quit(Quit::from_command(cmd)?),
            Waiting::NAME => TransportCommand::Waiting(Waiting::from_command(cmd)?),
            Go::NAME => TransportCommand::Go(Go::from_command(cmd)?),
            _ => return Err(ShapeError::Other(Self::SHAPE)),
        })
    }

    /// The command on the wire.
    pub fn into_command(self) -> Command {
        match self {
            TransportCommand::Hello(c) => c.into_command(),
            TransportCommand::Bye(c) => c.into_command(),
            TransportCommand::Ping(c) => c.into_command(),
            TransportCommand::Quit(c) => c.into_command(),
            TransportCommand::Waiting(c) => c.into_command(),
            TransportCommand::Go(c) => c.into_command(),
        }
    }
}

/// `Ok` if `cmd` is named `name`, whatever its arguments.
fn named(cmd: &Command, name: &'static str) -> Result<(), ShapeError> {
    if cmd.name == name {
        Ok(())
    } else {
        Err(ShapeError::Other(name))
    }
}

/// `Ok` if `cmd` is named `name` and has no arguments.
fn without_arguments(cmd: &Command, name: &'static str) -> Result<(), ShapeError> {
    named(cmd, name)?;
    if cmd.args.is_empty() {
        Ok(())
    } else {
        Err(ShapeError::malformed(name, None, "takes no arguments"))
    }
}

/// The one condition (a Symbol, or UCL's String) of `cmd` named `name`.
fn condition(cmd: &Command, name: &'static str) -> Result<String, ShapeError> {
    named(cmd, name)?;
    match cmd.args.as_slice() {
        [Value::Symbol(c) | Value::String(c)] => Ok(c.clone()),
        _ => Err(ShapeError::malformed(
            name,
            None,
            "takes exactly one condition (a Symbol)",
        )),
    }
}

/// `name (condition)`, the condition as a Symbol.
fn with_condition(name: &'static str, condition: String) -> Command {
    Command::new(name, vec![Value::Symbol(condition)])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(name: &str, args: Vec<Value>) -> Result<TransportCommand, ShapeError> {
        TransportCommand::from_command(&Command::new(name, args))
    }

    #[test]
    fn each_command_reads_back() {
        for c in [
            TransportCommand::Hello(Hello),
            TransportCommand::Bye(Bye),
            TransportCommand::Ping(Ping),
            TransportCommand::Quit(Quit),
            TransportCommand::Waiting(Waiting {
                condition: "token".into(),
            }),
            TransportCommand::Go(Go {
                condition: "token".into(),
            }),
        ] {
            let written = c.clone().into_command();
            assert_eq!(TransportCommand::from_command(&written), Ok(c));
        }
        assert_eq!(
            Waiting {
                condition: "t".into()
            }
            .into_command()
            .to_string(),
            "mbus.waiting (t)"
        );
    }

    #[test]
    fn hello_ignores_arguments_and_the_others_take_what_their_format_says() {
        assert_eq!(
            read("mbus.hello", vec![Value::Integer(1)]),
            Ok(TransportCommand::Hello(Hello))
        );
        for name in ["mbus.bye", "mbus.ping", "mbus.quit"] {
            assert!(
                matches!(
                    read(name, vec![Value::Integer(1)]),
                    Err(ShapeError::Malformed { .. })
                ),
                "{name}"
            );
        }
        // UCL's rendezvous helpers quote the condition.
        assert_eq!(
            read("mbus.waiting", vec![Value::string("token")]),
            Ok(TransportCommand::Waiting(Waiting {
                condition: "token".into()
            }))
        );
        for args in [
            vec![],
            vec![Value::symbol("a"), Value::symbol("b")],
            vec![Value::Integer(1)],
        ] {
            assert!(read("mbus.go", args.clone()).is_err(), "{args:?}");
            assert!(read("mbus.waiting", args.clone()).is_err(), "{args:?}");
        }
        assert!(read("mbus.status", vec![]).unwrap_err().is_other());
        assert!(read("tool.hello", vec![]).unwrap_err().is_other());
    }
}
