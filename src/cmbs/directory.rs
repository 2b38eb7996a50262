//! The directory: what one participant knows of the other members on its
//! bus, filled from `cmbs.member.announce` and emptied of members whose
//! entity is lost or that said bye. Senders resolve recipients here and
//! nowhere else.

use std::collections::BTreeMap;

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

/// What an announce changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// A member not in the directory before.
    New,
    /// A known member with a new description or address.
    Changed,
    /// Nothing new.
    Same,
}

/// The members of the bus, by member id.
#[derive(Debug, Default, Clone)]
pub struct Directory {
    by_id: BTreeMap<String, Entry>,
}

impl Directory {
    /// Records what `address` announced.
    pub fn upsert(&mut self, address: Address, description: Description) -> Change {
        match self.by_id.get_mut(&description.id) {
            Some(e) if e.address == address && e.description == description => Change::Same,
            Some(e) => {
                e.address = address;
                e.description = description;
                Change::Changed
            }
            None => {
                self.by_id.insert(
                    description.id.clone(),
                    Entry {
                        address,
                        description,
                    },
                );
                Change::New
            }
        }
    }

    /// Forgets the member at `address` (it left); its entry, if it was one.
    pub fn remove_address(&mut self, address: &Address) -> Option<Entry> {
        let id = self
            .by_id
            .iter()
            .find(|(_, e)| e.address == *address)
            .map(|(id, _)| id.clone())?;
        self.by_id.remove(&id)
    }

    /// The member with id `id`.
    pub fn get(&self, id: &str) -> Option<&Entry> {
        self.by_id.get(id)
    }

    /// True if a member has this address.
    pub fn has_address(&self, address: &Address) -> bool {
        self.by_id.values().any(|e| e.address == *address)
    }

    /// Every member, by id.
    pub fn iter(&self) -> impl Iterator<Item = &Entry> + '_ {
        self.by_id.values()
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
        self.by_id
            .get(name)
            .or_else(|| self.by_id.values().find(|e| e.description.is_named(name)))
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
        self.by_id
            .values()
            .filter(move |e| matches_member(&e.description, message, l1.as_deref()))
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
