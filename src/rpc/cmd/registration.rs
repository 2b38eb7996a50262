//! `mbus.register`, `mbus.deregister`, `mbus.get-registered` and
//! `mbus.registered`: the registration of a service's clients (Guidelines §6.1).

use crate::wire::{Address, Command, ShapeError, Value};

use super::super::{address_value, value_address};

/// A registration RPC, as the ARGS of its request.
///
/// # Format
///
/// ```text
/// mbus.register ("<command prefix>" <MbusAddress>)
/// mbus.deregister ("<command prefix>" <MbusAddress>)
/// mbus.get-registered ("<command prefix>")
/// ```
///
/// Each returns the list of registered addresses (`addr-list`).
#[derive(Debug, Clone, PartialEq)]
pub enum Registration {
    /// Add a client.
    Register {
        /// The service's command prefix.
        command: String,
        /// The client.
        addr: Address,
    },
    /// Remove a client.
    Deregister {
        /// The service's command prefix.
        command: String,
        /// The client.
        addr: Address,
    },
    /// List the clients.
    GetRegistered {
        /// The service's command prefix.
        command: String,
    },
}

impl Registration {
    /// The shape's name in errors.
    pub const SHAPE: &'static str = "registration request";

    /// True if `name` is one of the three registration RPCs.
    pub fn is_registration(name: &str) -> bool {
        matches!(
            name,
            "mbus.register" | "mbus.deregister" | "mbus.get-registered"
        )
    }

    /// Reads a request named `name` with ARGS `args`.
    pub fn from_request(name: &str, args: &[Value]) -> Result<Registration, ShapeError> {
        if !Self::is_registration(name) {
            return Err(ShapeError::Other(Self::SHAPE));
        }
        let bad = |problem: &str| ShapeError::malformed(Self::SHAPE, None, problem);
        match (name, args) {
            ("mbus.get-registered", [Value::String(command)]) => Ok(Registration::GetRegistered {
                command: command.clone(),
            }),
            ("mbus.register" | "mbus.deregister", [Value::String(command), a]) => {
                let addr = value_address(a)
                    .ok_or_else(|| bad("the address must be a map of (tag value) strings"))?;
                let command = command.clone();
                Ok(if name == "mbus.register" {
                    Registration::Register { command, addr }
                } else {
                    Registration::Deregister { command, addr }
                })
            }
            _ => Err(bad("expected (command) or (command address)")),
        }
    }

    /// The service's command prefix.
    pub fn command(&self) -> &str {
        match self {
            Registration::Register { command, .. }
            | Registration::Deregister { command, .. }
            | Registration::GetRegistered { command } => command,
        }
    }

    /// The request's name and ARGS, for a call.
    pub fn into_request(self) -> (String, Vec<Value>) {
        match self {
            Registration::Register { command, addr } => (
                "mbus.register".into(),
                vec![Value::String(command), address_value(&addr)],
            ),
            Registration::Deregister { command, addr } => (
                "mbus.deregister".into(),
                vec![Value::String(command), address_value(&addr)],
            ),
            Registration::GetRegistered { command } => {
                ("mbus.get-registered".into(), vec![Value::String(command)])
            }
        }
    }
}

/// The event that tells a service's old clients (or its default target) who
/// its clients are now.
///
/// # Format
///
/// ```text
/// mbus.registered ("<command prefix>" (<MbusAddress>…))
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Registered {
    /// The service's command prefix.
    pub command: String,
    /// The clients now registered.
    pub clients: Vec<Address>,
}

impl Registered {
    /// The shape's name in errors.
    pub const SHAPE: &'static str = "mbus.registered";

    /// Reads `cmd` as `mbus.registered`.
    pub fn from_command(cmd: &Command) -> Result<Registered, ShapeError> {
        if cmd.name != Self::SHAPE {
            return Err(ShapeError::Other(Self::SHAPE));
        }
        let bad = || ShapeError::malformed(Self::SHAPE, None, "expected (command addr-list)");
        match cmd.args.as_slice() {
            [Value::String(command), Value::List(list)] => Ok(Registered {
                command: command.clone(),
                clients: list
                    .iter()
                    .map(value_address)
                    .collect::<Option<_>>()
                    .ok_or_else(bad)?,
            }),
            _ => Err(bad()),
        }
    }

    /// The command on the wire.
    pub fn into_command(self) -> Command {
        Command::new(
            Self::SHAPE,
            vec![
                Value::String(self.command),
                Value::List(self.clients.iter().map(address_value).collect()),
            ],
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_and_the_event_read_back() {
        let a = Address::parse("(app:ui)").unwrap();
        let reg = Registration::Register {
            command: "audio.levels".into(),
            addr: a.clone(),
        };
        let (name, args) = reg.clone().into_request();
        assert_eq!(Registration::from_request(&name, &args), Ok(reg));
        let get = Registration::from_request("mbus.get-registered", &[Value::string("x")]).unwrap();
        assert_eq!(get.command(), "x");
        assert!(Registration::from_request("mbus.register", &[Value::string("x")]).is_err());
        assert!(Registration::from_request(
            "mbus.register",
            &[Value::string("x"), Value::Integer(1)]
        )
        .is_err());
        assert!(Registration::from_request("mbus.hello", &[])
            .unwrap_err()
            .is_other());
        let event = Registered {
            command: "audio.levels".into(),
            clients: vec![a],
        };
        let c = event.clone().into_command();
        assert_eq!(
            c.to_string(),
            r#"mbus.registered ("audio.levels" ((("app" "ui"))))"#
        );
        assert_eq!(Registered::from_command(&c), Ok(event));
    }
}
