//! `P.get`, `P.set (v)`, `P.watch`, `P.unwatch`: property requests (Guidelines §5.4).

use crate::wire::{ShapeError, Value};

/// The four property operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PropertyVerb {
    /// `P.get ()`: the current value.
    Get,
    /// `P.set (value)`: a new value.
    Set,
    /// `P.watch ()`: subscribe; the current value.
    Watch,
    /// `P.unwatch ()`: unsubscribe.
    Unwatch,
}

impl PropertyVerb {
    /// The last name component.
    pub fn as_str(self) -> &'static str {
        match self {
            PropertyVerb::Get => "get",
            PropertyVerb::Set => "set",
            PropertyVerb::Watch => "watch",
            PropertyVerb::Unwatch => "unwatch",
        }
    }

    fn from_wire(s: &str) -> Option<PropertyVerb> {
        Some(match s {
            "get" => PropertyVerb::Get,
            "set" => PropertyVerb::Set,
            "watch" => PropertyVerb::Watch,
            "unwatch" => PropertyVerb::Unwatch,
            _ => return None,
        })
    }
}

/// A property operation carried by a unicast RPC request (its ARGS are the
/// operation's arguments).
///
/// # Format
///
/// ```text
/// <P>.get ()   <P>.set (<value>)   <P>.watch ()   <P>.unwatch ()
/// ```
///
/// The returns carry the value (`get`, `set`, `watch`) or nothing
/// (`unwatch`); `FAILED NO_SUCH_PROPERTY`, `READ_ONLY` or `NOT_SUBSCRIBED`
/// otherwise.
#[derive(Debug, Clone, PartialEq)]
pub struct PropertyCall {
    /// The property's name `P`.
    pub property: String,
    /// The operation.
    pub verb: PropertyVerb,
    /// The new value, for `set`.
    pub value: Option<Value>,
}

impl PropertyCall {
    /// The shape's name in errors.
    pub const SHAPE: &'static str = "property request";

    /// The property and operation that request name `name` designates, if
    /// its last component is one of the four.
    pub fn split_name(name: &str) -> Option<(&str, PropertyVerb)> {
        let (property, verb) = name.rsplit_once('.')?;
        Some((property, PropertyVerb::from_wire(verb)?))
    }

    /// Reads a request named `name` with ARGS `args` as a property operation.
    pub fn from_request(name: &str, args: &[Value]) -> Result<PropertyCall, ShapeError> {
        let (property, verb) = Self::split_name(name).ok_or(ShapeError::Other(Self::SHAPE))?;
        let value = match (verb, args) {
            (PropertyVerb::Set, [value]) => Some(value.clone()),
            (PropertyVerb::Set, _) => {
                return Err(ShapeError::malformed(
                    Self::SHAPE,
                    None,
                    "set takes exactly one value",
                ))
            }
            (_, []) => None,
            (verb, _) => {
                return Err(ShapeError::malformed(
                    Self::SHAPE,
                    None,
                    format!("{} takes no arguments", verb.as_str()),
                ))
            }
        };
        Ok(PropertyCall {
            property: property.to_owned(),
            verb,
            value,
        })
    }

    /// The request's name and ARGS, for a call.
    pub fn into_request(self) -> (String, Vec<Value>) {
        (
            format!("{}.{}", self.property, self.verb.as_str()),
            self.value.into_iter().collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_arguments() {
        let set = PropertyCall::from_request("mixer.volume.set", &[Value::Integer(3)]).unwrap();
        assert_eq!(
            (set.property.as_str(), set.verb, set.value.clone()),
            ("mixer.volume", PropertyVerb::Set, Some(Value::Integer(3)))
        );
        assert_eq!(
            set.into_request(),
            ("mixer.volume.set".to_owned(), vec![Value::Integer(3)])
        );
        assert!(PropertyCall::from_request("p.get", &[]).is_ok());
        assert!(PropertyCall::from_request("p.set", &[]).is_err());
        assert!(PropertyCall::from_request("p.watch", &[Value::Integer(1)]).is_err());
        assert!(PropertyCall::from_request("p.size", &[])
            .unwrap_err()
            .is_other());
        assert_eq!(PropertyCall::split_name("get"), None);
    }
}
