//! The directory: what one participant knows of the other members on its
//! bus, filled from `cmbs.member.announce` and emptied of members whose
//! entity is lost or that said bye. Senders resolve recipients here and
//! nowhere else. It is indexed by member id and by address (a member
//! joining or leaving costs a lookup, not a scan), by the topics and
//! providers the members name (an L3.1, L3.2 or L4 message finds its
//! recipients among thousands without reading every member), and bounded: a
//! new member beyond [`MAX_MEMBERS`] is not taken in.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use crate::proto::maps::HashMap;
use crate::wire::Address;

use super::description::Description;
use super::layer::Layer;
use super::message::Message;
use super::topic::any_match;

/// One member as the directory knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Its full Mbus address.
    pub address: Address,
    /// What it last announced.
    pub description: Description,
}

/// The most members a directory holds: as many as the endpoint's entity
/// table (`Limits::max_peers`) by default.
pub const MAX_MEMBERS: usize = 16_384;

/// What an announce changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// A member not in the directory before.
    New,
    /// A known member with a new description or address.
    Changed,
    /// Nothing new.
    Same,
    /// A new member the full directory did not take in.
    Full,
}

/// The members of the bus, by member id.
#[derive(Debug, Default, Clone)]
pub struct Directory {
    /// Shared, so that a host's snapshot for other threads costs a pointer
    /// per member, not a copy ([`Directory::shared`]).
    by_id: BTreeMap<String, Arc<Entry>>,
    /// Member id by address.
    by_address: HashMap<Address, String>,
    /// Member ids by subscription topic without wildcards.
    by_topic: HashMap<String, BTreeSet<String>>,
    /// Members with a subscription that holds a wildcard (read for every
    /// topic message).
    wild: BTreeSet<String>,
    /// Member ids by provider they serve (their own id counts as one).
    by_provider: HashMap<String, BTreeSet<String>>,
    /// Members of other sites, by the bridge that announced them here.
    by_via: HashMap<Address, BTreeSet<String>>,
}

/// True if the subscription `topic` holds a wildcard word.
fn is_wild(topic: &str) -> bool {
    topic.split('.').any(|w| w == "*" || w == "#")
}

impl Directory {
    /// Adds (`add`) or takes out member `d` from the topic and provider
    /// indexes.
    fn index(&mut self, d: &Description, add: bool) {
        let id = &d.id;
        let set = |map: &mut HashMap<String, BTreeSet<String>>, key: &str| {
            if add {
                map.entry(key.to_owned()).or_default().insert(id.clone());
            } else if let Some(ids) = map.get_mut(key) {
                ids.remove(id);
                if ids.is_empty() {
                    map.remove(key);
                }
            }
        };
        for t in &d.topics {
            if !is_wild(t) {
                set(&mut self.by_topic, t);
            }
        }
        set(&mut self.by_provider, id);
        for p in &d.providers {
            set(&mut self.by_provider, p);
        }
        if add && d.topics.iter().any(|t| is_wild(t)) {
            self.wild.insert(id.clone());
        } else if !add {
            self.wild.remove(id);
        }
        if let Some(r) = &d.remote {
            if add {
                self.by_via
                    .entry(r.via.clone())
                    .or_default()
                    .insert(id.clone());
            } else if let Some(ids) = self.by_via.get_mut(&r.via) {
                ids.remove(id);
                if ids.is_empty() {
                    self.by_via.remove(&r.via);
                }
            }
        }
    }

    /// Records what `address` announced.
    pub fn upsert(&mut self, address: Address, description: Description) -> Change {
        let full = self.by_id.len() >= MAX_MEMBERS;
        let old = match self.by_id.get(&description.id) {
            Some(e) if e.address == address && e.description == description => return Change::Same,
            Some(e) if e.description != description => Some(e.description.clone()),
            _ => None,
        };
        if let Some(old) = &old {
            self.index(old, false);
            self.index(&description, true);
        }
        match self.by_id.get_mut(&description.id) {
            Some(e) => {
                let e = Arc::make_mut(e);
                if e.address != address {
                    self.by_address.remove(&e.address);
                    self.by_address
                        .insert(address.clone(), description.id.clone());
                }
                e.address = address;
                e.description = description;
                Change::Changed
            }
            None if full => Change::Full,
            None => {
                if let Some(old) = self
                    .by_address
                    .insert(address.clone(), description.id.clone())
                {
                    // The address announced another id before: that one is gone.
                    if let Some(gone) = self.by_id.remove(&old) {
                        self.index(&gone.description.clone(), false);
                    }
                }
                self.index(&description, true);
                self.by_id.insert(
                    description.id.clone(),
                    Arc::new(Entry {
                        address,
                        description,
                    }),
                );
                Change::New
            }
        }
    }

    /// Forgets the member at `address` (it left); its entry, if it was one.
    pub fn remove_address(&mut self, address: &Address) -> Option<Entry> {
        let id = self.by_address.remove(address)?;
        let entry = self.by_id.remove(&id).map(Arc::unwrap_or_clone)?;
        self.index(&entry.description, false);
        Some(entry)
    }

    /// Forgets member `id` (its bridge said it left its site).
    pub fn remove_id(&mut self, id: &str) -> Option<Entry> {
        let entry = self.by_id.remove(id).map(Arc::unwrap_or_clone)?;
        self.by_address.remove(&entry.address);
        self.index(&entry.description, false);
        Some(entry)
    }

    /// Forgets every member of another site that the bridge at `via`
    /// announced (it left this link): their entries.
    pub fn remove_via(&mut self, via: &Address) -> Vec<Entry> {
        let ids = self.by_via.get(via).cloned().unwrap_or_default();
        ids.iter().filter_map(|id| self.remove_id(id)).collect()
    }

    /// The members of other sites that the bridge at `via` announced.
    pub fn via(&self, via: &Address) -> impl Iterator<Item = &Entry> + '_ {
        self.by_via
            .get(via)
            .into_iter()
            .flatten()
            .filter_map(|id| self.get(id))
    }

    /// The member with id `id`.
    pub fn get(&self, id: &str) -> Option<&Entry> {
        self.by_id.get(id).map(|e| &**e)
    }

    /// The member with id `id`, shared (the directory's next change to it
    /// makes a new entry; this one stays as it is).
    pub fn shared(&self, id: &str) -> Option<Arc<Entry>> {
        self.by_id.get(id).cloned()
    }

    /// True if a member has this address.
    pub fn has_address(&self, address: &Address) -> bool {
        self.by_address.contains_key(address)
    }

    /// Every member, by id.
    pub fn iter(&self) -> impl Iterator<Item = &Entry> + '_ {
        self.by_id.values().map(|e| &**e)
    }

    /// How many members it holds.
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    /// True if it holds none.
    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// The member an L1 message names: by id or by any endpoint name.
    pub fn named(&self, name: &str) -> Option<&Entry> {
        self.get(name)
            .or_else(|| self.iter().find(|e| e.description.is_named(name)))
    }

    /// The members `message` is for, whatever their layers' state: L1 the
    /// named one, L2 all, L3.1 by provider, L3.2 by topic, L4 both.
    pub fn matching<'d, 'm>(
        &'d self,
        message: &'m Message,
    ) -> impl Iterator<Item = &'d Entry> + use<'d, 'm> {
        let l1 = match (message.layer, &message.receiver) {
            (Layer::L1, Some(name)) => self.named(name).map(|e| e.description.id.clone()),
            _ => None,
        };
        let candidates: Box<dyn Iterator<Item = &'d Entry> + 'd> = match self.candidates(message) {
            None => Box::new(self.iter()),
            Some(ids) => Box::new(ids.into_iter().filter_map(|id| self.get(id))),
        };
        candidates.filter(move |e| matches_member(&e.description, message, l1.as_deref()))
    }

    /// The ids of the members that may match `message`, by id, from the
    /// indexes (`None`: every member may).
    fn candidates(&self, message: &Message) -> Option<BTreeSet<&str>> {
        fn by<'a>(
            map: &'a HashMap<String, BTreeSet<String>>,
            keys: &[String],
        ) -> BTreeSet<&'a str> {
            let mut ids: BTreeSet<&str> = BTreeSet::new();
            for k in keys {
                if let Some(found) = map.get(k) {
                    ids.extend(found.iter().map(String::as_str));
                }
            }
            ids
        }
        let topics = || {
            if message.topics.iter().any(|t| is_wild(t)) {
                return None;
            }
            let mut ids = by(&self.by_topic, &message.topics);
            ids.extend(self.wild.iter().map(String::as_str));
            Some(ids)
        };
        match message.layer {
            Layer::L1 | Layer::L2 => None,
            Layer::L31 => Some(by(&self.by_provider, &message.providers)),
            Layer::L32 => topics(),
            Layer::L4 => {
                let providers = by(&self.by_provider, &message.providers);
                Some(match topics() {
                    Some(t) => providers.intersection(&t).copied().collect(),
                    None => providers,
                })
            }
        }
    }
}

/// True if `message` is for member `d` (for L1, `l1` is the id of the member
/// it names).
pub fn matches_member(d: &Description, message: &Message, l1: Option<&str>) -> bool {
    match message.layer {
        Layer::L1 => l1 == Some(d.id.as_str()),
        Layer::L2 => true,
        Layer::L31 => d.serves_any(&message.providers),
        Layer::L32 => any_match(&d.topics, &message.topics),
        Layer::L4 => d.serves_any(&message.providers) && any_match(&d.topics, &message.topics),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(i: usize) -> Address {
        Address::parse(&format!("(app:cmbs module:member member:m{i} id:{i}-1@h)")).unwrap()
    }

    #[test]
    fn the_topic_and_provider_indexes_find_what_reading_every_member_finds() {
        use crate::cmbs::{Content, Layer};
        let subscriptions: [&[&str]; 6] =
            [&["a.b"], &["a.*"], &["#"], &["c.#", "a.b"], &[], &["b"]];
        let providers: [&[&str]; 3] = [&["p"], &[], &["q", "p"]];
        let mut d = Directory::default();
        for i in 0..30 {
            let mut desc = Description::new(&format!("m{i}"));
            desc.topics = subscriptions[i % 6].iter().map(|t| t.to_string()).collect();
            desc.providers = providers[i % 3].iter().map(|t| t.to_string()).collect();
            d.upsert(addr(i), desc);
        }
        // A member changes its subscriptions, one leaves.
        let mut changed = Description::new("m0");
        changed.topics = vec!["z".into()];
        d.upsert(addr(0), changed);
        d.remove_address(&addr(5));
        let topics: [&[&str]; 5] = [&["a.b"], &["a.c"], &["c.d.e"], &["z"], &["b", "q"]];
        let wanted: [&[&str]; 4] = [&["p"], &["q"], &["m7"], &["nobody"]];
        for layer in [Layer::L31, Layer::L32, Layer::L4] {
            for t in topics {
                for p in wanted {
                    let mut m = Message::new("x", layer, Content::Json(serde_json::Value::Null));
                    m.topics = t.iter().map(|s| s.to_string()).collect();
                    m.providers = p.iter().map(|s| s.to_string()).collect();
                    let indexed: Vec<&str> =
                        d.matching(&m).map(|e| e.description.id.as_str()).collect();
                    let read: Vec<&str> = d
                        .iter()
                        .filter(|e| matches_member(&e.description, &m, None))
                        .map(|e| e.description.id.as_str())
                        .collect();
                    assert_eq!(indexed, read, "{layer:?} {t:?} {p:?}");
                }
            }
        }
    }

    #[test]
    fn the_address_index_follows_joins_moves_and_leaves_and_the_size_is_bounded() {
        let mut d = Directory::default();
        assert_eq!(d.upsert(addr(1), Description::new("m1")), Change::New);
        assert!(d.has_address(&addr(1)));
        // m1 comes back under a new entity address.
        let moved = Address::parse("(app:cmbs module:member member:m1 id:99-1@h)").unwrap();
        assert_eq!(
            d.upsert(moved.clone(), Description::new("m1")),
            Change::Changed
        );
        assert!(!d.has_address(&addr(1)) && d.has_address(&moved));
        assert!(
            d.remove_address(&addr(1)).is_none(),
            "the old address is gone"
        );
        assert_eq!(d.remove_address(&moved).unwrap().description.id, "m1");
        assert!(d.is_empty() && d.by_address.is_empty());
        for i in 0..MAX_MEMBERS {
            assert_eq!(
                d.upsert(addr(i), Description::new(&format!("m{i}"))),
                Change::New
            );
        }
        let one_more = MAX_MEMBERS;
        assert_eq!(
            d.upsert(addr(one_more), Description::new(&format!("m{one_more}"))),
            Change::Full
        );
        assert_eq!(d.len(), MAX_MEMBERS);
        assert_eq!(d.by_address.len(), MAX_MEMBERS);
        // A known member still changes in a full directory.
        let mut changed = Description::new("m0");
        changed.topics = vec!["t".into()];
        assert_eq!(d.upsert(addr(0), changed), Change::Changed);
    }
}
