//! The META map of a Guidelines message: `(("ID" "123") ("RPC-TYPE" "UNICAST") …)`,
//! a list of pairs whose keys are Strings and unique (Guidelines §3, §5.2).

use crate::wire::{ShapeError, Value};

/// A META map, its pairs in written order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Meta {
    /// The pairs in written order.
    pub pairs: Vec<(String, Value)>,
}

impl Meta {
    /// A map of String values.
    pub fn of_strings(pairs: &[(&str, &str)]) -> Meta {
        Meta {
            pairs: pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), Value::string(*v)))
                .collect(),
        }
    }

    /// The value for `key`.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// The value for `key` as text (String or Symbol).
    pub fn get_str(&self, key: &str) -> Option<&str> {
        self.get(key).and_then(Value::as_str)
    }

    /// The map as an Mbus value.
    pub fn to_value(&self) -> Value {
        Value::List(
            self.pairs
                .iter()
                .map(|(k, v)| Value::List(vec![Value::string(k.clone()), v.clone()]))
                .collect(),
        )
    }

    /// Reads a META map for a message of shape `shape`, with its ID.
    /// [`ShapeError::Other`] unless `v` is a list holding an `("ID" …)` pair;
    /// after that, every flaw is [`ShapeError::Malformed`].
    pub fn read(v: Option<&Value>, shape: &'static str) -> Result<(Meta, String), ShapeError> {
        let list = v.and_then(Value::as_list).ok_or(ShapeError::Other(shape))?;
        let id_entry = list
            .iter()
            .filter_map(Value::as_list)
            .find(|pair| matches!(pair.first(), Some(Value::String(k)) if k == "ID"))
            .ok_or(ShapeError::Other(shape))?;
        let rpc_id = match id_entry {
            [_, Value::String(id)] => id.clone(),
            [_, Value::Integer(i)] => {
                return Err(ShapeError::malformed(
                    shape,
                    Some(&i.to_string()),
                    "the ID must be a String",
                ))
            }
            _ => {
                return Err(ShapeError::malformed(
                    shape,
                    None,
                    "the ID entry must be a pair (\"ID\" \"<id>\")",
                ))
            }
        };
        let mut meta = Meta::default();
        for (n, entry) in list.iter().enumerate() {
            let Some([Value::String(key), value]) = entry.as_list() else {
                return Err(ShapeError::malformed(
                    shape,
                    Some(&rpc_id),
                    format!("META entry {} is not a (String value) pair", n + 1),
                ));
            };
            if meta.get(key).is_some() {
                return Err(ShapeError::malformed(
                    shape,
                    Some(&rpc_id),
                    format!("META key {key:?} appears twice"),
                ));
            }
            meta.pairs.push((key.clone(), value.clone()));
        }
        Ok((meta, rpc_id))
    }
}
