//! The gateway's entities: members and messages created through it, in
//! SQLite (the database its hosted members' stores share), committed before
//! each answer; and, read-only, the members the bus directory knows that
//! run elsewhere.
//!
//! Writes go to one writer thread that commits every write waiting at the
//! time in one transaction (group commit): fifty concurrent creates pay for
//! a few fsyncs, not fifty, and each still returns only once committed.
//! Reads come from a copy in memory, loaded at start and updated after
//! each commit.

use std::path::Path;
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::Mutex;

use crate::cmbs::{Entry, Layer};
use crate::occi::{
    Category, Entity, EntityStore, EntityStoreError, LinkIndex, StoreFuture, TypeId,
};
use rusqlite::Connection;
use serde_json::Value;

use super::bus::BusHandle;
use super::model::{member_kind_id, MEMBER_LOCATION};

/// The table as committed, in memory. The writer thread updates it right
/// after each commit, before the writer's caller hears of it: a request
/// dropped while it waits for its commit cannot leave it behind.
#[derive(Default)]
struct Committed {
    /// The entities, by location.
    entities: std::sync::RwLock<std::collections::BTreeMap<String, Entity>>,
    /// The links among them, by end (updated with the entities, under
    /// their lock).
    links: Mutex<LinkIndex>,
    /// Counts the changes (after each is in the entities).
    written: std::sync::atomic::AtomicU64,
}

/// What a committed write changes in [`Committed`].
enum Change {
    /// The entity, if the write changed a row.
    Put(Entity),
    /// The entity at this location is gone.
    Take(String),
    /// A client mixin.
    Mixins,
}

impl Committed {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, std::collections::BTreeMap<String, Entity>> {
        self.entities.read().unwrap_or_else(|p| p.into_inner())
    }

    fn link_index(&self) -> std::sync::MutexGuard<'_, LinkIndex> {
        self.links.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Applies a committed write that changed `rows` rows.
    fn apply(&self, change: &Change, rows: usize) {
        match change {
            Change::Put(e) if rows > 0 => self.put(Some(e), &e.location),
            Change::Put(_) => {}
            Change::Take(location) => self.put(None, location),
            Change::Mixins => self.counted(),
        }
    }

    fn put(&self, e: Option<&Entity>, location: &str) {
        let mut c = self.entities.write().unwrap_or_else(|p| p.into_inner());
        let old = match e {
            Some(e) => c.insert(location.to_owned(), e.clone()),
            None => c.remove(location),
        };
        let mut links = self.link_index();
        if let Some(old) = &old {
            links.remove(old);
        }
        if let Some(e) = e {
            links.add(e);
        }
        self.counted();
    }

    /// Counts a change, once it is in the entities.
    fn counted(&self) {
        self.written
            .fetch_add(1, std::sync::atomic::Ordering::Release);
    }
}

/// The entities of the gateway.
pub struct GatewayEntities {
    committed: std::sync::Arc<Committed>,
    /// For the mixins (read rarely).
    db: Mutex<Connection>,
    writes: Mutex<Sender<Write>>,
    bus: BusHandle,
    /// Members on the bus already said to be unlisted (their ids cannot be
    /// URL path segments).
    unlisted: Mutex<std::collections::HashSet<String>>,
}

/// One write for the writer thread: SQL, its parameters, and where to say
/// how many rows it changed once it is committed.
struct Write {
    sql: &'static str,
    params: Vec<String>,
    done: Box<dyn FnOnce(Result<usize, String>) + Send>,
}

/// Runs the writes: everything waiting goes into one transaction.
fn writer(mut db: Connection, jobs: Receiver<Write>) {
    while let Ok(first) = jobs.recv() {
        let mut batch = vec![first];
        while let Ok(more) = jobs.try_recv() {
            batch.push(more);
        }
        let mut results = Vec::with_capacity(batch.len());
        let committed = (|| -> rusqlite::Result<()> {
            let tx = db.transaction()?;
            for w in &batch {
                let p: Vec<&dyn rusqlite::ToSql> =
                    w.params.iter().map(|s| s as &dyn rusqlite::ToSql).collect();
                results.push(tx.execute(w.sql, p.as_slice()).map_err(|e| e.to_string()));
            }
            tx.commit()
        })();
        for (i, w) in batch.into_iter().enumerate() {
            let r = match &committed {
                Ok(()) => results.get(i).cloned().unwrap_or(Ok(0)),
                Err(e) => Err(format!("the commit failed: {e}")),
            };
            (w.done)(r);
        }
    }
}

const INSERT: &str = "INSERT OR IGNORE INTO occi_entity (location, body) VALUES (?1, ?2)";
const REPLACE: &str = "UPDATE occi_entity SET body = ?2 WHERE location = ?1";
const REMOVE: &str = "DELETE FROM occi_entity WHERE location = ?1";

/// The parameters of [`INSERT`] and [`REPLACE`] for `entity`, and what the
/// committed write changes in memory.
fn row(entity: &Entity) -> Result<(Vec<String>, Change), EntityStoreError> {
    let body = serde_json::to_string(entity).map_err(failed)?;
    Ok((
        vec![entity.location.clone(), body],
        Change::Put(entity.clone()),
    ))
}

/// What a [`REMOVE`] of `location` changes in memory.
fn taken(location: &str) -> Change {
    Change::Take(location.to_owned())
}

/// An [`INSERT`] or [`REPLACE`] of `entity` that changed `rows` rows: none
/// means its location was taken, or empty.
fn rows_changed(sql: &str, rows: usize, entity: &Entity) -> Result<(), EntityStoreError> {
    match rows {
        0 if sql == INSERT => Err(EntityStoreError::Exists(entity.location.clone())),
        0 => Err(EntityStoreError::Missing(entity.location.clone())),
        _ => Ok(()),
    }
}

fn failed(e: impl std::fmt::Display) -> EntityStoreError {
    EntityStoreError::Failed(e.to_string())
}

impl GatewayEntities {
    /// Opens (or creates) the tables in `path`.
    pub fn open(path: &Path, bus: BusHandle) -> Result<GatewayEntities, EntityStoreError> {
        let db = Connection::open(path).map_err(failed)?;
        db.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(failed)?;
        db.execute_batch(
            "PRAGMA journal_mode = WAL;
             PRAGMA synchronous = FULL;
             CREATE TABLE IF NOT EXISTS occi_entity (
                 location TEXT PRIMARY KEY,
                 body TEXT NOT NULL
             );
             CREATE TABLE IF NOT EXISTS occi_mixin (
                 id TEXT PRIMARY KEY,
                 n INTEGER NOT NULL,
                 body TEXT NOT NULL
             );",
        )
        .map_err(failed)?;
        let write_db = Connection::open(path).map_err(failed)?;
        write_db
            .busy_timeout(std::time::Duration::from_secs(10))
            .and_then(|()| write_db.execute_batch("PRAGMA synchronous = FULL;"))
            .map_err(failed)?;
        let (tx, rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("rmbus-gateway-db".into())
            .spawn(move || writer(write_db, rx))
            .map_err(failed)?;
        let g = GatewayEntities {
            committed: Default::default(),
            db: Mutex::new(db),
            writes: Mutex::new(tx),
            bus,
            unlisted: Mutex::default(),
        };
        let loaded = g.load()?;
        {
            let mut links = g.links();
            for e in &loaded {
                links.add(e);
            }
        }
        *g.committed
            .entities
            .write()
            .unwrap_or_else(|p| p.into_inner()) = loaded
            .into_iter()
            .map(|e| (e.location.clone(), e))
            .collect();
        Ok(g)
    }

    /// Hands one write to the writer thread: once it is committed, the
    /// writer applies `change` to the copy in memory, then tells `done`
    /// how many rows it changed.
    fn send_write(
        &self,
        sql: &'static str,
        params: Vec<String>,
        change: Change,
        done: Box<dyn FnOnce(Result<usize, String>) + Send>,
    ) -> Result<(), EntityStoreError> {
        let committed = std::sync::Arc::clone(&self.committed);
        let done = Box::new(move |r: Result<usize, String>| {
            if let Ok(rows) = &r {
                committed.apply(&change, *rows);
            }
            done(r);
        });
        self.writes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .send(Write { sql, params, done })
            .map_err(|_| failed("the database writer stopped"))
    }

    /// Runs one write on the writer thread and waits for its commit (in a
    /// tokio worker, letting the runtime move its other tasks meanwhile).
    fn write(
        &self,
        sql: &'static str,
        params: Vec<String>,
        change: Change,
    ) -> Result<usize, EntityStoreError> {
        let (done, wait) = mpsc::sync_channel(1);
        self.send_write(
            sql,
            params,
            change,
            Box::new(move |r| {
                let _ = done.send(r);
            }),
        )?;
        let recv = || {
            wait.recv()
                .map_err(|_| failed("the database writer stopped"))
        };
        let r = match tokio::runtime::Handle::try_current() {
            Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
                tokio::task::block_in_place(recv)
            }
            _ => recv(),
        }?;
        r.map_err(failed)
    }

    /// [`GatewayEntities::write`] for async callers: the task waits for
    /// the commit, its worker thread does not.
    async fn write_async(
        &self,
        sql: &'static str,
        params: Vec<String>,
        change: Change,
    ) -> Result<usize, EntityStoreError> {
        let (done, wait) = tokio::sync::oneshot::channel();
        self.send_write(
            sql,
            params,
            change,
            Box::new(move |r| {
                let _ = done.send(r);
            }),
        )?;
        wait.await
            .map_err(|_| failed("the database writer stopped"))?
            .map_err(failed)
    }

    fn db(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.db.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The stored entities (no directory entries).
    pub fn stored(&self) -> Result<Vec<Entity>, EntityStoreError> {
        Ok(self.cache().values().cloned().collect())
    }

    fn cache(&self) -> std::sync::RwLockReadGuard<'_, std::collections::BTreeMap<String, Entity>> {
        self.committed.read()
    }

    fn links(&self) -> std::sync::MutexGuard<'_, LinkIndex> {
        self.committed.link_index()
    }

    /// The table, read from the database.
    fn load(&self) -> Result<Vec<Entity>, EntityStoreError> {
        let db = self.db();
        let mut q = db
            .prepare("SELECT body FROM occi_entity ORDER BY location")
            .map_err(failed)?;
        let rows = q.query_map([], |r| r.get::<_, String>(0)).map_err(failed)?;
        let mut out = Vec::new();
        for body in rows {
            let body = body.map_err(failed)?;
            out.push(serde_json::from_str(&body).map_err(failed)?);
        }
        Ok(out)
    }

    fn remote(&self) -> Vec<Entity> {
        self.bus
            .directory()
            .iter()
            .filter(|e| match crate::occi::check_id(&e.description.id) {
                Ok(()) => true,
                Err(err) => {
                    self.unlisted(&e.description.id, &err);
                    false
                }
            })
            .map(directory_entity)
            .collect()
    }

    /// Says once per member (for the first 1024) that a member whose id
    /// cannot be a URL path segment is not listed.
    fn unlisted(&self, id: &str, why: &crate::occi::GrammarError) {
        let mut told = self.unlisted.lock().unwrap_or_else(|p| p.into_inner());
        if told.len() < 1024 && told.insert(id.to_owned()) {
            self.bus
                .log(format!("the member {id:?} on the bus is not listed: {why}"));
        }
    }
}

/// A member the directory knows, as a read-only entity.
pub fn directory_entity(e: &Entry) -> Entity {
    let d = &e.description;
    let location = format!("{MEMBER_LOCATION}{}", d.id);
    let mut ent = Entity::new(&d.id, &location, member_kind_id());
    ent.read_only = true;
    let a = &mut ent.attributes;
    let s = |v: &str| Value::String(v.to_owned());
    a.insert("cmbs.member.state".into(), s(d.state.as_str()));
    for l in Layer::ALL {
        a.insert(
            format!("cmbs.member.{}", l.socket_attribute()),
            s(d.socket(l)),
        );
    }
    a.insert(
        "cmbs.member.neighbors_socket".into(),
        d.neighbors.clone().into(),
    );
    a.insert("cmbs.member.topics".into(), d.topics.clone().into());
    a.insert("cmbs.member.providers".into(), d.providers.clone().into());
    let layers: Vec<&str> = d.started.iter().map(Layer::dotted).collect();
    a.insert("cmbs.member.layers".into(), layers.into());
    a.insert("cmbs.member.hosted".into(), Value::Bool(false));
    a.insert("cmbs.member.address".into(), s(&e.address.to_string()));
    if let Some(r) = &d.remote {
        a.insert("cmbs.member.site".into(), s(&r.site));
    }
    ent
}

impl EntityStore for GatewayEntities {
    fn list(&self) -> Result<Vec<Entity>, EntityStoreError> {
        let remote = self.remote();
        let cache = self.cache();
        let mut out: Vec<Entity> = cache.values().cloned().collect();
        out.extend(
            remote
                .into_iter()
                .filter(|r| !cache.contains_key(&r.location)),
        );
        Ok(out)
    }

    fn visit(&self, f: &mut dyn FnMut(&Entity)) -> Result<(), EntityStoreError> {
        let remote = self.remote();
        let cache = self.cache();
        cache.values().for_each(&mut *f);
        remote
            .iter()
            .filter(|r| !cache.contains_key(&r.location))
            .for_each(f);
        Ok(())
    }

    fn get(&self, location: &str) -> Result<Option<Entity>, EntityStoreError> {
        if let Some(e) = self.cache().get(location) {
            return Ok(Some(e.clone()));
        }
        if !location.starts_with(MEMBER_LOCATION) {
            return Ok(None);
        }
        let id = &location[MEMBER_LOCATION.len()..];
        Ok(self
            .bus
            .member(id)
            .filter(|e| crate::occi::check_id(&e.description.id).is_ok())
            .map(|e| directory_entity(&e)))
    }

    fn insert(&self, entity: &Entity) -> Result<(), EntityStoreError> {
        // The server checked the directory before the member was started;
        // a hosted member is in the directory itself by now (its own
        // announce), so only the table decides here.
        let (params, change) = row(entity)?;
        rows_changed(INSERT, self.write(INSERT, params, change)?, entity)
    }

    fn replace(&self, entity: &Entity) -> Result<(), EntityStoreError> {
        let (params, change) = row(entity)?;
        rows_changed(REPLACE, self.write(REPLACE, params, change)?, entity)
    }

    fn remove(&self, location: &str) -> Result<bool, EntityStoreError> {
        let n = self.write(REMOVE, vec![location.to_owned()], taken(location))?;
        Ok(n > 0)
    }

    fn insert_async<'a>(&'a self, entity: &'a Entity) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let (params, change) = row(entity)?;
            rows_changed(
                INSERT,
                self.write_async(INSERT, params, change).await?,
                entity,
            )
        })
    }

    fn replace_async<'a>(&'a self, entity: &'a Entity) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let (params, change) = row(entity)?;
            rows_changed(
                REPLACE,
                self.write_async(REPLACE, params, change).await?,
                entity,
            )
        })
    }

    fn remove_async<'a>(&'a self, location: &'a str) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let n = self
                .write_async(REMOVE, vec![location.to_owned()], taken(location))
                .await?;
            Ok(n > 0)
        })
    }

    fn links_at(&self, location: &str) -> Result<Vec<Entity>, EntityStoreError> {
        let at: Vec<String> = self.links().at(location).cloned().collect();
        if at.is_empty() {
            return Ok(Vec::new());
        }
        let cache = self.cache();
        Ok(at.iter().filter_map(|l| cache.get(l).cloned()).collect())
    }

    fn user_mixins(&self) -> Result<Vec<Category>, EntityStoreError> {
        let db = self.db();
        let mut q = db
            .prepare("SELECT body FROM occi_mixin ORDER BY n")
            .map_err(failed)?;
        let rows = q.query_map([], |r| r.get::<_, String>(0)).map_err(failed)?;
        let mut out = Vec::new();
        for body in rows {
            out.push(serde_json::from_str(&body.map_err(failed)?).map_err(failed)?);
        }
        Ok(out)
    }

    fn put_user_mixin(&self, mixin: &Category) -> Result<(), EntityStoreError> {
        let body = serde_json::to_string(mixin).map_err(failed)?;
        self.write(
            "INSERT INTO occi_mixin (id, n, body)
             VALUES (?1, (SELECT COALESCE(MAX(n), 0) + 1 FROM occi_mixin), ?2)
             ON CONFLICT (id) DO UPDATE SET body = excluded.body",
            vec![mixin.id.to_string(), body],
            Change::Mixins,
        )?;
        Ok(())
    }

    fn remove_user_mixin(&self, id: &TypeId) -> Result<(), EntityStoreError> {
        self.write(
            "DELETE FROM occi_mixin WHERE id = ?1",
            vec![id.to_string()],
            Change::Mixins,
        )?;
        Ok(())
    }

    fn generation(&self) -> Option<u64> {
        // Both only grow: their sum changes whenever either does.
        Some(
            self.committed
                .written
                .load(std::sync::atomic::Ordering::Acquire)
                .wrapping_add(self.bus.directory_version()),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmbs::{Description, Remote};
    use crate::wire::Address;

    #[test]
    fn a_member_of_another_site_is_listed_with_its_site() {
        let address = Address::parse("(app:cmbs module:member member:m1 id:1-1@h)").unwrap();
        let mut d = Description::new("m1");
        let local = directory_entity(&Entry {
            address: address.clone(),
            description: d.clone(),
        });
        assert!(!local.attributes.contains_key("cmbs.member.site"));
        d.remote = Some(Box::new(Remote {
            site: "cloud".into(),
            via: Address::parse("(app:cmbs module:bridge site:office id:2-1@h)").unwrap(),
            address: address.clone(),
        }));
        let remote = directory_entity(&Entry {
            address,
            description: d,
        });
        assert_eq!(
            remote.attributes.get("cmbs.member.site"),
            Some(&Value::String("cloud".into()))
        );
        assert!(remote.read_only);
    }
}
