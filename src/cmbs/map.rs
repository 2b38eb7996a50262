//! Reading and writing the Guidelines' optional-argument map
//! `(("name" value) …)` (Guidelines §3.2.1) that every CMBS command carries,
//! so that fields can be added later: unknown names are ignored.

use crate::rpc::split_optional_args;
use crate::wire::Value;

/// The fields of one map, read leniently: unknown names are skipped.
pub(crate) struct Fields<'a> {
    pairs: Vec<(&'a str, &'a Value)>,
}

impl<'a> Fields<'a> {
    /// The pairs of `v`, if it is a map of `("name" value)` pairs with
    /// unique names.
    pub(crate) fn read(v: &'a Value) -> Result<Fields<'a>, String> {
        // The Guidelines' own reader of optional-argument lists.
        match split_optional_args(std::slice::from_ref(v)) {
            ([], pairs) => Ok(Fields { pairs }),
            _ => Err("expected a map of (\"name\" value) pairs, each name once".into()),
        }
    }

    pub(crate) fn get(&self, name: &str) -> Option<&'a Value> {
        self.pairs.iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
    }

    /// A required String field.
    pub(crate) fn string(&self, name: &str) -> Result<&'a str, String> {
        match self.get(name) {
            Some(Value::String(s)) => Ok(s),
            Some(_) => Err(format!("the field {name:?} must be a String")),
            None => Err(format!("the field {name:?} is missing")),
        }
    }

    /// An optional String field.
    pub(crate) fn opt_string(&self, name: &str) -> Result<Option<&'a str>, String> {
        match self.get(name) {
            None => Ok(None),
            Some(_) => self.string(name).map(Some),
        }
    }

    /// An optional non-negative Integer.
    pub(crate) fn opt_u64(&self, name: &str) -> Result<Option<u64>, String> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Integer(i)) if *i >= 0 => Ok(Some(*i as u64)),
            Some(_) => Err(format!("the field {name:?} must be a non-negative Integer")),
        }
    }

    /// An optional list of Strings (missing: empty).
    pub(crate) fn strings(&self, name: &str) -> Result<Vec<String>, String> {
        match self.get(name) {
            None => Ok(Vec::new()),
            Some(Value::List(items)) => items
                .iter()
                .map(|v| match v {
                    Value::String(s) => Ok(s.clone()),
                    _ => Err(format!("the field {name:?} must be a list of Strings")),
                })
                .collect(),
            Some(_) => Err(format!("the field {name:?} must be a list of Strings")),
        }
    }

    /// An optional boolean, written as the Symbol `true` or `false`
    /// (missing: `default`).
    pub(crate) fn flag(&self, name: &str, default: bool) -> Result<bool, String> {
        match self.get(name) {
            None => Ok(default),
            Some(v) => match v.as_str() {
                Some("true") => Ok(true),
                Some("false") => Ok(false),
                _ => Err(format!("the field {name:?} must be true or false")),
            },
        }
    }
}

/// Builds a map in written order.
#[derive(Default)]
pub(crate) struct MapWriter {
    pairs: Vec<Value>,
}

impl MapWriter {
    pub(crate) fn put(&mut self, name: &str, v: Value) -> &mut Self {
        self.pairs.push(Value::List(vec![Value::string(name), v]));
        self
    }

    pub(crate) fn string(&mut self, name: &str, s: &str) -> &mut Self {
        self.put(name, Value::string(s))
    }

    pub(crate) fn strings(&mut self, name: &str, items: &[String]) -> &mut Self {
        self.put(name, strings_value(items))
    }

    pub(crate) fn flag(&mut self, name: &str, on: bool) -> &mut Self {
        self.put(name, Value::symbol(if on { "true" } else { "false" }))
    }

    pub(crate) fn finish(&mut self) -> Value {
        Value::List(std::mem::take(&mut self.pairs))
    }
}

/// A list of Strings.
pub(crate) fn strings_value(items: &[String]) -> Value {
    Value::List(items.iter().map(|s| Value::string(s.clone())).collect())
}

/// The fields of a JSON object (the OCCI attribute form of members and
/// messages), read with the same rules as [`Fields`]: a missing or null
/// field takes its default, a field of the wrong type is an error that names
/// it.
pub(crate) struct JsonFields<'a> {
    object: &'a serde_json::Map<String, serde_json::Value>,
}

impl<'a> JsonFields<'a> {
    /// The fields of `v`, which must be an object (`what` names it in the error).
    pub(crate) fn read(v: &'a serde_json::Value, what: &str) -> Result<JsonFields<'a>, String> {
        v.as_object()
            .map(|object| JsonFields { object })
            .ok_or_else(|| format!("{what} must be a JSON object"))
    }

    /// The value of `name`, unless missing or null.
    pub(crate) fn get(&self, name: &str) -> Option<&'a serde_json::Value> {
        self.object.get(name).filter(|v| !v.is_null())
    }

    /// An optional string.
    pub(crate) fn text(&self, name: &str) -> Result<Option<&'a str>, String> {
        match self.get(name) {
            None => Ok(None),
            Some(serde_json::Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(format!("{name} must be a string")),
        }
    }

    /// An optional array of strings (missing: empty).
    pub(crate) fn strings(&self, name: &str) -> Result<Vec<String>, String> {
        match self.get(name) {
            None => Ok(Vec::new()),
            Some(serde_json::Value::Array(a)) => a
                .iter()
                .map(|x| {
                    x.as_str()
                        .map(str::to_owned)
                        .ok_or_else(|| format!("{name} must be an array of strings"))
                })
                .collect(),
            Some(_) => Err(format!("{name} must be an array of strings")),
        }
    }

    /// An optional boolean: `true`/`false`, or pyCMBS's strings `"True"` and
    /// `"False"` (missing: `default`).
    pub(crate) fn flag(&self, name: &str, default: bool) -> Result<bool, String> {
        match self.get(name) {
            None => Ok(default),
            Some(serde_json::Value::Bool(b)) => Ok(*b),
            Some(serde_json::Value::String(s)) => {
                super::message::parse_flag(s).ok_or_else(|| format!("{name} must be true or false"))
            }
            Some(_) => Err(format!("{name} must be true or false")),
        }
    }
}
