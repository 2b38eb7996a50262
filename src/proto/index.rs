//! An index of address elements: which addresses hold each `tag:value`
//! element, to answer which of many addresses a destination designates (RFC
//! 3259 §4's subset rule) by looking only at those holding its rarest
//! element. The entity table uses it for its peers, a host for its own
//! entities.

use std::collections::BTreeSet;

use crate::proto::maps::HashMap;
use crate::wire::Address;

/// Keys of addresses, by the elements the addresses hold.
#[derive(Debug)]
pub(crate) struct ElementIndex<K> {
    by_element: HashMap<Box<str>, BTreeSet<K>>,
}

impl<K> Default for ElementIndex<K> {
    fn default() -> Self {
        ElementIndex {
            by_element: HashMap::default(),
        }
    }
}

/// The keys a destination may designate.
pub(crate) enum Candidates<'a, K> {
    /// Every key (the destination is `()`, which designates every address).
    All,
    /// Only these (the holders of the destination's rarest element); each
    /// still has to be checked for the other elements.
    Some(&'a BTreeSet<K>),
    /// None: some element of the destination no address holds.
    None,
}

impl<K: Ord + Copy> ElementIndex<K> {
    /// Indexes `addr` under `key`.
    pub(crate) fn insert(&mut self, addr: &Address, key: K) {
        for e in addr.elements() {
            self.by_element
                .entry(element_key(e.tag, e.value).into_boxed_str())
                .or_default()
                .insert(key);
        }
    }

    /// Forgets `addr` under `key`; an element nothing holds any more goes.
    pub(crate) fn remove(&mut self, addr: &Address, key: K) {
        for e in addr.elements() {
            let k = element_key(e.tag, e.value);
            if let Some(keys) = self.by_element.get_mut(k.as_str()) {
                keys.remove(&key);
                if keys.is_empty() {
                    self.by_element.remove(k.as_str());
                }
            }
        }
    }

    /// The keys whose addresses may hold every element of `dst`.
    pub(crate) fn candidates(&self, dst: &Address) -> Candidates<'_, K> {
        if dst.is_empty() {
            return Candidates::All;
        }
        let mut rarest: Option<&BTreeSet<K>> = None;
        for e in dst.elements() {
            match self.by_element.get(element_key(e.tag, e.value).as_str()) {
                Some(keys) => {
                    if rarest.is_none_or(|r| keys.len() < r.len()) {
                        rarest = Some(keys);
                    }
                }
                None => return Candidates::None,
            }
        }
        rarest.map_or(Candidates::None, Candidates::Some)
    }

    /// True if some indexed address holds `tag:value`.
    #[cfg(test)]
    pub(crate) fn holds(&self, tag: &str, value: &str) -> bool {
        self.by_element
            .contains_key(element_key(tag, value).as_str())
    }
}

/// An element as the index keys it.
fn element_key(tag: &str, value: &str) -> String {
    format!("{tag}:{value}")
}
