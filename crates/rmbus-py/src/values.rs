//! Mbus values (RFC 3259 §5.3) to and from the tagged JSON the Python
//! layer speaks: `{"i": 5}`, `{"bi": "123…"}` (an Integer beyond 64 bits),
//! `{"f": 6.7}`, `{"s": "text"}`, `{"y": "SYMBOL"}`, `{"d": "<base64>"}`,
//! `{"l": [...]}`.

use base64::Engine;
use rmbus::wire::Value;
use serde_json::{json, Value as Json};

/// The Mbus value a tagged JSON value stands for.
pub fn from_tagged(t: &Json) -> Result<Value, String> {
    let Some((tag, v)) = t.as_object().and_then(|o| o.iter().next()) else {
        return Err(format!("not a tagged value: {t}"));
    };
    match (tag.as_str(), v) {
        ("i", Json::Number(n)) => n
            .as_i64()
            .map(Value::Integer)
            .ok_or_else(|| format!("{n} is not a 64-bit integer")),
        ("bi", Json::String(s)) => {
            let digits = s.strip_prefix('-').unwrap_or(s);
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return Err(format!("{s:?} is not an integer"));
            }
            Ok(Value::BigInteger(s.clone()))
        }
        ("f", Json::Number(n)) => n
            .as_f64()
            .filter(|f| f.is_finite())
            .map(Value::Float)
            .ok_or_else(|| format!("{n} is not a finite float")),
        ("s", Json::String(s)) => Ok(Value::String(s.clone())),
        ("y", Json::String(s)) => Ok(Value::Symbol(s.clone())),
        ("d", Json::String(s)) => base64::engine::general_purpose::STANDARD
            .decode(s)
            .map(Value::Data)
            .map_err(|e| format!("data {s:?}: {e}")),
        ("l", Json::Array(items)) => items
            .iter()
            .map(from_tagged)
            .collect::<Result<_, _>>()
            .map(Value::List),
        _ => Err(format!("not a tagged value: {t}")),
    }
}

/// A list of tagged values (a command's arguments).
pub fn list_from_tagged(t: &Json) -> Result<Vec<Value>, String> {
    match from_tagged(t)? {
        Value::List(items) => Ok(items),
        _ => Err("the arguments are not a list".into()),
    }
}

/// The tagged JSON of a value.
pub fn to_tagged(v: &Value) -> Json {
    match v {
        Value::Integer(i) => json!({ "i": i }),
        Value::BigInteger(s) => json!({ "bi": s }),
        Value::Float(f) => json!({ "f": f }),
        Value::String(s) => json!({ "s": s }),
        Value::Symbol(s) => json!({ "y": s }),
        Value::Data(d) => json!({ "d": base64::engine::general_purpose::STANDARD.encode(d) }),
        Value::List(items) => json!({ "l": items.iter().map(to_tagged).collect::<Vec<_>>() }),
    }
}

/// The tagged JSON of an argument list.
pub fn list_to_tagged(values: &[Value]) -> Json {
    Json::Array(values.iter().map(to_tagged).collect())
}
