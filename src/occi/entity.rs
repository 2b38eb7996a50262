//! Entities (OCCI Core, GFD.221 §4.3–§4.8) and where they are kept: the
//! [`EntityStore`] trait and [`MemoryEntities`].

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::model::{Category, TypeId};

/// One entity: its kind, mixins and attribute values (flat dotted names,
/// `occi.core.title` and `occi.core.summary` among them; the id is apart).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entity {
    /// The last segment of its URL (`occi.core.id`).
    pub id: String,
    /// Its path: the kind's location followed by the id.
    pub location: String,
    /// Its kind.
    pub kind: TypeId,
    /// Its mixins.
    pub mixins: Vec<TypeId>,
    /// Its attribute values.
    pub attributes: BTreeMap<String, Value>,
    /// Shown but never changed through the server: PUT, update and DELETE
    /// get 405 (actions still run).
    #[serde(default)]
    pub read_only: bool,
    /// Counts the server's writes of this entity (0: never written by it,
    /// as for entities an owner shows read-only); collection tags hash it
    /// instead of the whole entity.
    #[serde(default)]
    pub revision: u64,
}

impl Entity {
    /// An entity of `kind` at `location` with no attribute set.
    pub fn new(id: &str, location: &str, kind: TypeId) -> Entity {
        Entity {
            id: id.to_owned(),
            location: location.to_owned(),
            kind,
            mixins: Vec::new(),
            attributes: BTreeMap::new(),
            read_only: false,
            revision: 0,
        }
    }

    /// The string value of attribute `name`.
    pub fn text(&self, name: &str) -> Option<&str> {
        self.attributes.get(name).and_then(Value::as_str)
    }

    /// The strings of list attribute `name` (non-strings are skipped).
    pub fn strings(&self, name: &str) -> Vec<String> {
        self.attributes
            .get(name)
            .and_then(Value::as_array)
            .map(|v| {
                v.iter()
                    .filter_map(|s| s.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The boolean value of attribute `name`.
    pub fn flag(&self, name: &str) -> Option<bool> {
        self.attributes.get(name).and_then(Value::as_bool)
    }

    /// True if the entity has mixin `id`.
    pub fn has_mixin(&self, id: &TypeId) -> bool {
        self.mixins.contains(id)
    }

    /// A link's source and target locations (`occi.core.source`,
    /// `occi.core.target`, as stored: paths of this server); `None` for a
    /// resource (GFD.221 §4.6).
    pub fn link_ends(&self) -> Option<(&str, &str)> {
        Some((
            self.text("occi.core.source")?,
            self.text("occi.core.target")?,
        ))
    }
}

/// Which links end at each location: the index a store keeps so that a
/// resource's links are found without reading every entity.
#[derive(Debug, Default, Clone)]
pub struct LinkIndex {
    ends: BTreeMap<String, BTreeSet<String>>,
}

impl LinkIndex {
    /// Indexes `e` if it is a link.
    pub fn add(&mut self, e: &Entity) {
        if let Some((source, target)) = e.link_ends() {
            for end in [source, target] {
                self.ends
                    .entry(end.to_owned())
                    .or_default()
                    .insert(e.location.clone());
            }
        }
    }

    /// Forgets `e` if it is a link.
    pub fn remove(&mut self, e: &Entity) {
        if let Some((source, target)) = e.link_ends() {
            for end in [source, target] {
                if let Some(set) = self.ends.get_mut(end) {
                    set.remove(&e.location);
                    if set.is_empty() {
                        self.ends.remove(end);
                    }
                }
            }
        }
    }

    /// The locations of the links whose source or target is `location`.
    pub fn at(&self, location: &str) -> impl Iterator<Item = &String> {
        self.ends.get(location).into_iter().flatten()
    }
}

/// What the asynchronous store operations return.
pub type StoreFuture<'a, T> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<T, EntityStoreError>> + Send + 'a>>;

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum EntityStoreError {
    /// An entity is already at that location.
    #[error("{0} already exists")]
    Exists(String),
    /// There is no entity at that location.
    #[error("{0} does not exist")]
    Missing(String),
    /// The store itself failed (disk, database).
    #[error("the store failed: {0}")]
    Failed(String),
}

/// Where a server keeps its entities and the mixins its clients defined.
/// Every method commits before it returns.
pub trait EntityStore: Send + Sync {
    /// Every entity.
    fn list(&self) -> Result<Vec<Entity>, EntityStoreError>;
    /// A number that changes whenever anything [`EntityStore::visit`]
    /// shows or a client mixin changes, so that what was made from the
    /// store (a listing) can be kept while it stays the same; `None` (the
    /// default): the store cannot tell, and nothing is kept.
    fn generation(&self) -> Option<u64> {
        None
    }
    /// Shows every entity to `f`, without copying it (listings read only
    /// what they show). The default copies [`EntityStore::list`].
    fn visit(&self, f: &mut dyn FnMut(&Entity)) -> Result<(), EntityStoreError> {
        for e in self.list()? {
            f(&e);
        }
        Ok(())
    }
    /// The entity at `location`.
    fn get(&self, location: &str) -> Result<Option<Entity>, EntityStoreError>;
    /// Adds an entity; [`EntityStoreError::Exists`] if its location is taken.
    fn insert(&self, entity: &Entity) -> Result<(), EntityStoreError>;
    /// Replaces the entity at its location; [`EntityStoreError::Missing`] if
    /// there is none.
    fn replace(&self, entity: &Entity) -> Result<(), EntityStoreError>;
    /// Removes the entity at `location`; false if there was none.
    fn remove(&self, location: &str) -> Result<bool, EntityStoreError>;
    /// [`EntityStore::insert`] as the server calls it: a store that waits
    /// (for a commit) can let the caller's thread go meanwhile. The
    /// default runs `insert` at once.
    fn insert_async<'a>(&'a self, entity: &'a Entity) -> StoreFuture<'a, ()> {
        Box::pin(std::future::ready(self.insert(entity)))
    }
    /// [`EntityStore::replace`] as the server calls it (see
    /// [`EntityStore::insert_async`]).
    fn replace_async<'a>(&'a self, entity: &'a Entity) -> StoreFuture<'a, ()> {
        Box::pin(std::future::ready(self.replace(entity)))
    }
    /// [`EntityStore::remove`] as the server calls it (see
    /// [`EntityStore::insert_async`]).
    fn remove_async<'a>(&'a self, location: &'a str) -> StoreFuture<'a, bool> {
        Box::pin(std::future::ready(self.remove(location)))
    }
    /// The links whose source or target is `location` (GFD.221 §4.6), in
    /// location order. The default reads every entity; a store with many
    /// should keep a [`LinkIndex`].
    fn links_at(&self, location: &str) -> Result<Vec<Entity>, EntityStoreError> {
        let mut out: Vec<Entity> = self
            .list()?
            .into_iter()
            .filter(|e| {
                e.link_ends()
                    .is_some_and(|(s, t)| s == location || t == location)
            })
            .collect();
        out.sort_by(|a, b| a.location.cmp(&b.location));
        Ok(out)
    }
    /// The mixins clients defined, in the order they were defined.
    fn user_mixins(&self) -> Result<Vec<Category>, EntityStoreError>;
    /// Keeps a client-defined mixin (or replaces the one with its id).
    fn put_user_mixin(&self, mixin: &Category) -> Result<(), EntityStoreError>;
    /// Forgets a client-defined mixin.
    fn remove_user_mixin(&self, id: &TypeId) -> Result<(), EntityStoreError>;
}

/// Entities in memory (lost when the process ends).
#[derive(Debug, Default)]
pub struct MemoryEntities {
    inner: Mutex<MemoryInner>,
}

#[derive(Debug, Default)]
struct MemoryInner {
    entities: BTreeMap<String, Entity>,
    links: LinkIndex,
    mixins: Vec<Category>,
    /// Counts the changes.
    generation: u64,
}

impl MemoryEntities {
    /// An empty store.
    pub fn new() -> MemoryEntities {
        MemoryEntities::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, MemoryInner> {
        // A panic elsewhere while holding the lock leaves plain data behind.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl EntityStore for MemoryEntities {
    fn list(&self) -> Result<Vec<Entity>, EntityStoreError> {
        Ok(self.lock().entities.values().cloned().collect())
    }

    fn visit(&self, f: &mut dyn FnMut(&Entity)) -> Result<(), EntityStoreError> {
        self.lock().entities.values().for_each(f);
        Ok(())
    }

    fn get(&self, location: &str) -> Result<Option<Entity>, EntityStoreError> {
        Ok(self.lock().entities.get(location).cloned())
    }

    fn insert(&self, entity: &Entity) -> Result<(), EntityStoreError> {
        let mut inner = self.lock();
        if inner.entities.contains_key(&entity.location) {
            return Err(EntityStoreError::Exists(entity.location.clone()));
        }
        inner.links.add(entity);
        inner
            .entities
            .insert(entity.location.clone(), entity.clone());
        inner.generation += 1;
        Ok(())
    }

    fn replace(&self, entity: &Entity) -> Result<(), EntityStoreError> {
        let inner = &mut *self.lock();
        match inner.entities.get_mut(&entity.location) {
            Some(e) => {
                inner.links.remove(e);
                inner.links.add(entity);
                *e = entity.clone();
                inner.generation += 1;
                Ok(())
            }
            None => Err(EntityStoreError::Missing(entity.location.clone())),
        }
    }

    fn remove(&self, location: &str) -> Result<bool, EntityStoreError> {
        let inner = &mut *self.lock();
        match inner.entities.remove(location) {
            Some(e) => {
                inner.links.remove(&e);
                inner.generation += 1;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    fn links_at(&self, location: &str) -> Result<Vec<Entity>, EntityStoreError> {
        let inner = self.lock();
        Ok(inner
            .links
            .at(location)
            .filter_map(|l| inner.entities.get(l).cloned())
            .collect())
    }

    fn user_mixins(&self) -> Result<Vec<Category>, EntityStoreError> {
        Ok(self.lock().mixins.clone())
    }

    fn put_user_mixin(&self, mixin: &Category) -> Result<(), EntityStoreError> {
        let mut inner = self.lock();
        inner.mixins.retain(|m| m.id != mixin.id);
        inner.mixins.push(mixin.clone());
        inner.generation += 1;
        Ok(())
    }

    fn remove_user_mixin(&self, id: &TypeId) -> Result<(), EntityStoreError> {
        let mut inner = self.lock();
        inner.mixins.retain(|m| m.id != *id);
        inner.generation += 1;
        Ok(())
    }

    fn generation(&self) -> Option<u64> {
        Some(self.lock().generation)
    }
}
