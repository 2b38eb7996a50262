//! What a member says about itself: the attributes of the CMBS `member` kind
//! (state, per-layer endpoint names, neighbors, topics, providers) and the
//! layers it has started. It travels in `cmbs.member.announce`.

use std::fmt;

use crate::wire::{Address, Value};

use super::layer::{Layer, LayerSet};
use super::map::{Fields, JsonFields, MapWriter};

/// A member's state (`cmbs.member.state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum MemberState {
    /// At least one layer receiver runs.
    Active,
    /// No layer receiver runs.
    #[default]
    Inactive,
    /// Set by a user: every delivery is refused until it is resumed.
    Suspended,
    /// Set by the runtime: the member's entity was lost or its bus session died.
    Failed,
}

impl MemberState {
    /// `active`, `inactive`, `suspended` or `failed`.
    pub fn as_str(self) -> &'static str {
        match self {
            MemberState::Active => "active",
            MemberState::Inactive => "inactive",
            MemberState::Suspended => "suspended",
            MemberState::Failed => "failed",
        }
    }

    /// Reads [`MemberState::as_str`]'s spelling.
    pub fn parse(s: &str) -> Option<MemberState> {
        match s {
            "active" => Some(MemberState::Active),
            "inactive" => Some(MemberState::Inactive),
            "suspended" => Some(MemberState::Suspended),
            "failed" => Some(MemberState::Failed),
            _ => None,
        }
    }
}

impl fmt::Display for MemberState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A member's description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Description {
    /// The member id (a UUID string).
    pub id: String,
    /// Its state.
    pub state: MemberState,
    /// The layers whose receivers run.
    pub started: LayerSet,
    /// The endpoint name of each layer, in [`Layer::ALL`] order.
    pub sockets: [String; 5],
    /// Endpoints of other members it knows of explicitly.
    pub neighbors: Vec<String>,
    /// Its subscriptions (L3.2, L4).
    pub topics: Vec<String>,
    /// The providers it serves (L3.1, L4); its id always counts as one.
    pub providers: Vec<String>,
    /// Set for a member of another site, announced on this link by its
    /// bridge (`None`: a member on this link).
    pub remote: Option<Box<Remote>>,
}

/// Where a member of another site is, as the bridge that announces it on
/// this link says: deliveries to it go to `via`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Remote {
    /// The name of its site.
    pub site: String,
    /// The bridge entity on this link that carries deliveries to it.
    pub via: Address,
    /// Its own address, on its site's bus.
    pub address: Address,
}

impl Description {
    /// A member with the default endpoint names (`mbus:<id>/l1` …), nothing
    /// started, `inactive`.
    pub fn new(id: &str) -> Description {
        Description {
            id: id.to_owned(),
            state: MemberState::Inactive,
            started: LayerSet::NONE,
            sockets: Layer::ALL.map(|l| default_socket(id, l)),
            neighbors: Vec::new(),
            topics: Vec::new(),
            providers: Vec::new(),
            remote: None,
        }
    }

    /// The endpoint name of `layer`.
    pub fn socket(&self, layer: Layer) -> &str {
        &self.sockets[layer as usize]
    }

    /// True if the member takes messages of `layer` now (started, not
    /// suspended or failed).
    pub fn accepts(&self, layer: Layer) -> bool {
        self.started.contains(layer)
            && !matches!(self.state, MemberState::Suspended | MemberState::Failed)
    }

    /// True if `name` names this member: its id or one of its endpoints.
    pub fn is_named(&self, name: &str) -> bool {
        self.id == name || self.sockets.iter().any(|s| s == name)
    }

    /// True if the member serves one of `providers` (its id counts as one).
    pub fn serves_any(&self, providers: &[String]) -> bool {
        providers
            .iter()
            .any(|p| *p == self.id || self.providers.contains(p))
    }

    /// The description as the map `cmbs.member.announce` carries.
    pub fn to_value(&self) -> Value {
        let mut m = MapWriter::default();
        m.string("id", &self.id)
            .string("state", self.state.as_str())
            .put(
                "layers",
                Value::List(
                    self.started
                        .iter()
                        .map(|l| Value::string(l.as_str()))
                        .collect(),
                ),
            );
        for l in Layer::ALL {
            m.string(&l.socket_attribute(), self.socket(l));
        }
        m.strings("neighbors_socket", &self.neighbors)
            .strings("topics", &self.topics)
            .strings("providers", &self.providers);
        if let Some(r) = &self.remote {
            m.string("site", &r.site)
                .string("via", &r.via.to_string())
                .string("address", &r.address.to_string());
        }
        m.finish()
    }

    /// Reads [`Description::to_value`]'s map; unknown fields are ignored.
    pub fn from_value(v: &Value) -> Result<Description, String> {
        let f = Fields::read(v)?;
        let id = f.string("id")?;
        if id.is_empty() {
            return Err("the member id is empty".into());
        }
        let state = MemberState::parse(f.string("state")?)
            .ok_or("the state must be active, inactive, suspended or failed")?;
        let mut started = LayerSet::NONE;
        for name in f.strings("layers")? {
            started.insert(Layer::parse(&name).ok_or_else(|| format!("unknown layer {name:?}"))?);
        }
        let mut d = Description::new(id);
        d.state = state;
        d.started = started;
        for l in Layer::ALL {
            if let Some(s) = f.opt_string(&l.socket_attribute())? {
                d.sockets[l as usize] = s.to_owned();
            }
        }
        d.neighbors = f.strings("neighbors_socket")?;
        d.topics = f.strings("topics")?;
        d.providers = f.strings("providers")?;
        // A member of another site is one a bridge announces `via` itself;
        // a `site` or `address` field alone says nothing of the kind.
        d.remote = match (
            f.opt_string("site")?,
            f.opt_string("via")?,
            f.opt_string("address")?,
        ) {
            (_, None, _) => None,
            (Some(site), Some(via), Some(address)) if !site.is_empty() => {
                let addr = |s: &str, what: &str| {
                    Address::parse(s).map_err(|e| format!("{what} is no address: {e}"))
                };
                Some(Box::new(Remote {
                    site: site.to_owned(),
                    via: addr(via, "via")?,
                    address: addr(address, "address")?,
                }))
            }
            _ => return Err("a member announced via a bridge needs site and address".into()),
        };
        Ok(d)
    }
}

impl Description {
    /// The description as a JSON object with the OCCI attribute names of the
    /// `member` kind (`state`, `l1_socket` … `l4_socket`, `neighbors_socket`,
    /// `topics`, `providers`) plus `id` and `layers` (the started ones, in
    /// dotted spelling).
    pub fn to_json(&self) -> serde_json::Value {
        let mut o = serde_json::Map::new();
        o.insert("id".into(), self.id.clone().into());
        o.insert("state".into(), self.state.as_str().into());
        let layers: Vec<&str> = self.started.iter().map(Layer::dotted).collect();
        o.insert("layers".into(), layers.into());
        for l in Layer::ALL {
            o.insert(l.socket_attribute(), self.socket(l).into());
        }
        o.insert("neighbors_socket".into(), self.neighbors.clone().into());
        o.insert("topics".into(), self.topics.clone().into());
        o.insert("providers".into(), self.providers.clone().into());
        if let Some(r) = &self.remote {
            o.insert("site".into(), r.site.clone().into());
            o.insert("via".into(), r.via.to_string().into());
        }
        serde_json::Value::Object(o)
    }

    /// Reads [`Description::to_json`]'s object; missing fields take their
    /// defaults (a new member's). `site` and `via` are not read: only a
    /// bridge says a member is remote.
    pub fn from_json(v: &serde_json::Value) -> Result<Description, String> {
        let f = JsonFields::read(v, "a member")?;
        let id = f
            .text("id")?
            .filter(|s| !s.is_empty())
            .ok_or("id is missing")?;
        let mut d = Description::new(id);
        if let Some(state) = f.text("state")? {
            d.state = MemberState::parse(state)
                .ok_or("state must be active, inactive, suspended or failed")?;
        }
        for name in f.strings("layers")? {
            d.started
                .insert(Layer::parse(&name).ok_or_else(|| format!("unknown layer {name:?}"))?);
        }
        for l in Layer::ALL {
            if let Some(s) = f.text(&l.socket_attribute())? {
                d.sockets[l as usize] = s.to_owned();
            }
        }
        d.neighbors = f.strings("neighbors_socket")?;
        d.topics = f.strings("topics")?;
        d.providers = f.strings("providers")?;
        Ok(d)
    }
}

/// The default endpoint name of `layer` for member `id`: `mbus:<id>/l3.1`.
pub fn default_socket(id: &str, layer: Layer) -> String {
    format!("mbus:{id}/{}", layer.dotted())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_json_form_reads_back() {
        let mut d = Description::new("m-1");
        d.state = MemberState::Suspended;
        d.started.insert(Layer::L31);
        d.topics = vec!["a.#".into()];
        let j = d.to_json();
        assert_eq!(j["l3.1_socket"], "mbus:m-1/l3.1");
        assert_eq!(j["layers"], serde_json::json!(["l3.1"]));
        assert_eq!(Description::from_json(&j).unwrap(), d);
        assert!(Description::from_json(&serde_json::json!({"id": "x", "layers": ["l9"]})).is_err());
        assert_eq!(
            Description::from_json(&serde_json::json!({"id": "x"})).unwrap(),
            Description::new("x")
        );
    }

    #[test]
    fn a_description_reads_back_and_ignores_unknown_fields() {
        let mut d = Description::new("m-1");
        d.state = MemberState::Active;
        d.started.insert(Layer::L32);
        d.topics = vec!["a.#".into()];
        d.providers = vec!["p".into()];
        d.neighbors = vec!["mbus:m-2/l1".into()];
        assert_eq!(Description::from_value(&d.to_value()).unwrap(), d);
        let Value::List(mut pairs) = d.to_value() else {
            unreachable!()
        };
        pairs.push(Value::List(vec![Value::string("later"), Value::Integer(1)]));
        assert_eq!(Description::from_value(&Value::List(pairs)).unwrap(), d);
        assert!(Description::from_value(&Value::Integer(3)).is_err());
        let id = Value::List(vec![Value::string("id"), Value::string("m-1")]);
        let twice = Value::List(vec![id.clone(), id]);
        assert!(
            Description::from_value(&twice).is_err(),
            "a name given twice"
        );
    }
}
