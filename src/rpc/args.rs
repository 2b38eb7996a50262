//! Message shapes of transactions (Guidelines §5.3), registration and status
//! (§5.7, §6), and addresses travelling as arguments (§3).

use crate::wire::{Address, Command, Value};

use super::meta::Meta;

/// The STATUS of a transaction's `.ack` and `.completed` (Guidelines §5.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TxnStatus {
    /// `OK`.
    Ok,
    /// `UNKNOWN`: no such transaction at the server.
    Unknown,
    /// `FAILED`.
    Failed,
    /// `CANCELLED`.
    Cancelled,
}

impl TxnStatus {
    /// The wire Symbol.
    pub fn as_str(self) -> &'static str {
        match self {
            TxnStatus::Ok => "OK",
            TxnStatus::Unknown => "UNKNOWN",
            TxnStatus::Failed => "FAILED",
            TxnStatus::Cancelled => "CANCELLED",
        }
    }

    /// Reads the wire Symbol.
    pub fn from_wire(s: &str) -> Option<TxnStatus> {
        Some(match s {
            "OK" => TxnStatus::Ok,
            "UNKNOWN" => TxnStatus::Unknown,
            "FAILED" => TxnStatus::Failed,
            "CANCELLED" => TxnStatus::Cancelled,
            _ => return None,
        })
    }
}

/// `<cmd> ((("ID" tid)) (args…))`: a transaction request.
pub fn transaction_command(name: &str, tid: &str, args: Vec<Value>) -> Command {
    Command::new(name, vec![id_meta(tid), Value::List(args)])
}

/// `<cmd>.commit ((("ID" tid)))` or `<cmd>.cancel ((("ID" tid)))`.
pub fn transaction_control(name: &str, verb: &str, tid: &str) -> Command {
    Command::new(format!("{name}.{verb}"), vec![id_meta(tid)])
}

/// `<cmd>.ack ("tid" STATUS)` or `<cmd>.completed ("tid" STATUS)`.
pub fn transaction_reply(name: &str, verb: &str, tid: &str, status: TxnStatus) -> Command {
    Command::new(
        format!("{name}.{verb}"),
        vec![Value::string(tid), Value::symbol(status.as_str())],
    )
}

/// Reads `("tid" STATUS …)`, the arguments of `.ack` and `.completed` (extra
/// information may follow in an optional argument list).
pub fn read_transaction_reply(args: &[Value]) -> Option<(&str, TxnStatus)> {
    match args {
        [Value::String(tid), Value::Symbol(status), ..] => {
            Some((tid.as_str(), TxnStatus::from_wire(status)?))
        }
        _ => None,
    }
}

/// Reads `((("ID" tid) …))`, the arguments of `.commit` and `.cancel`.
pub fn read_transaction_control(args: &[Value]) -> Option<&str> {
    let [Value::List(meta)] = args else {
        return None;
    };
    meta.iter().find_map(|pair| match pair.as_list() {
        Some([Value::String(k), Value::String(tid)]) if k == "ID" => Some(tid.as_str()),
        _ => None,
    })
}

fn id_meta(tid: &str) -> Value {
    Meta {
        pairs: vec![("ID".into(), Value::string(tid))],
    }
    .to_value()
}

/// An address as an argument: `(("app" "foo") ("module" "engine"))`
/// (Guidelines §3, MbusAddress).
pub fn address_value(addr: &Address) -> Value {
    Value::List(
        addr.elements()
            .map(|e| Value::List(vec![Value::string(e.tag), Value::string(e.value)]))
            .collect(),
    )
}

/// Reads an MbusAddress argument; `None` if it is not a map of valid
/// `(tag value)` String pairs.
pub fn value_address(v: &Value) -> Option<Address> {
    let pairs = v.as_list()?;
    let mut elements = Vec::with_capacity(pairs.len());
    for p in pairs {
        match p.as_list() {
            Some([Value::String(tag), Value::String(value)]) => elements.push((tag, value)),
            _ => return None,
        }
    }
    Address::new(elements).ok()
}

/// `mbus.status (class sym "descr")` (Guidelines §5.7): `class` is `INFO`,
/// `WARNING`, `ERROR` or a profile's own Symbol.
pub fn status_command(class: &str, symbol: &str, description: &str) -> Command {
    Command::new(
        "mbus.status",
        vec![
            Value::symbol(class),
            Value::symbol(symbol),
            Value::string(description),
        ],
    )
}

/// Reads the arguments of `mbus.status`: class, symbol and description.
pub fn read_status(args: &[Value]) -> Option<(&str, &str, &str)> {
    match args {
        [Value::Symbol(c), Value::Symbol(s), Value::String(d), ..] => Some((c, s, d)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_travel_as_maps_of_strings() {
        let a = Address::parse("(app:foo module:engine id:4711-1@192.168.1.1)").unwrap();
        let v = address_value(&a);
        assert_eq!(
            v.to_string(),
            r#"(("app" "foo") ("module" "engine") ("id" "4711-1@192.168.1.1"))"#
        );
        assert_eq!(value_address(&v), Some(a));
        assert_eq!(value_address(&Value::Integer(1)), None);
        let bad = Value::parse(r#"(("app" "has space"))"#).unwrap();
        assert_eq!(value_address(&bad), None);
    }

    #[test]
    fn transaction_messages_read_back() {
        let ack = transaction_reply("conf.call", "ack", "123", TxnStatus::Ok);
        assert_eq!(ack.to_string(), r#"conf.call.ack ("123" OK)"#);
        assert_eq!(
            read_transaction_reply(&ack.args),
            Some(("123", TxnStatus::Ok))
        );
        let commit = transaction_control("conf.call", "commit", "123");
        assert_eq!(commit.to_string(), r#"conf.call.commit ((("ID" "123")))"#);
        assert_eq!(read_transaction_control(&commit.args), Some("123"));
        assert_eq!(read_transaction_reply(&[Value::Integer(1)]), None);
        let status = status_command("WARNING", "LOW_BATTERY", "10 % left");
        assert_eq!(
            read_status(&status.args),
            Some(("WARNING", "LOW_BATTERY", "10 % left"))
        );
    }
}
