//! Argument conventions of the Guidelines (§3): optional argument lists, and
//! addresses travelling as arguments (MbusAddress).

use crate::wire::{Address, Value};

/// The optional argument list `(("name" value) …)` that goes last among a
/// command's arguments (Guidelines §3.2.1).
pub fn optional_args(pairs: &[(&str, Value)]) -> Value {
    Value::List(
        pairs
            .iter()
            .map(|(k, v)| Value::List(vec![Value::string(*k), v.clone()]))
            .collect(),
    )
}

/// Splits `args` into the fixed arguments and the optional argument list, for
/// an operation whose definition has one: the last argument, if it is a list
/// of `(String value)` pairs with unique names (Guidelines §3.2.1). When the
/// last argument is no such list, there are no optional arguments.
pub fn split_optional_args(args: &[Value]) -> (&[Value], Vec<(&str, &Value)>) {
    let Some((last, fixed)) = args.split_last() else {
        return (args, Vec::new());
    };
    let Some(list) = last.as_list() else {
        return (args, Vec::new());
    };
    let mut pairs = Vec::with_capacity(list.len());
    for entry in list {
        match entry.as_list() {
            Some([Value::String(k), v]) if pairs.iter().all(|(n, _)| n != k) => {
                pairs.push((k.as_str(), v))
            }
            _ => return (args, Vec::new()),
        }
    }
    (fixed, pairs)
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
    fn optional_argument_lists_split_off_the_last_argument() {
        let Value::List(args) =
            Value::parse(r#"("gg" 17 ("a" "b") (("p4" "x") ("p5" 42)))"#).unwrap()
        else {
            panic!()
        };
        let (fixed, optional) = split_optional_args(&args);
        assert_eq!(fixed.len(), 3);
        assert_eq!(
            optional,
            vec![("p4", &Value::string("x")), ("p5", &Value::Integer(42))]
        );
        let written = optional_args(&[("p4", Value::string("x")), ("p5", Value::Integer(42))]);
        assert_eq!(&written, args.last().unwrap());
        // No such list last: everything is fixed.
        let Value::List(plain) = Value::parse(r#"("gg" 17 ("a" "b"))"#).unwrap() else {
            panic!()
        };
        assert_eq!(split_optional_args(&plain).0.len(), 3);
        assert!(split_optional_args(&plain).1.is_empty());
    }
}
