//! Where CMBS members keep what they receive and hold: a [`Store`] trait,
//! an in-memory store ([`MemoryStore`]) and, with the feature `sqlite` (on
//! by default), SQLite ([`SqliteStore`]). A store is never used on the bus
//! loop: a [`Worker`] thread commits the member's batches and tells the loop
//! when each is done.
//!
//! One store may hold several members, keyed by member id (the gateway
//! keeps all its hosted members in one), and it records the ids of its
//! members and what each last said about itself (its description), so
//! that a member restarted on its store comes back as itself: the same
//! id, endpoints, neighbors, topics, providers, layers and state.

mod memory;
#[cfg(feature = "sqlite")]
mod sqlite;
mod worker;

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

pub(crate) use crate::cmbs::unix_ms;
use crate::cmbs::{Description, HeldRecord, StoreOp, StoredMessage};

pub use memory::MemoryStore;
#[cfg(feature = "sqlite")]
pub use sqlite::{SqliteStore, SCHEMA_VERSION};
pub use worker::{Done, Worker};

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite said no (disk full, read-only file, locked, corrupt …).
    #[cfg(feature = "sqlite")]
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// A record that cannot be read back.
    #[error("a stored record cannot be read: {0}")]
    Corrupt(String),
    /// The store file's directory cannot be made.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
    /// The database was written by a newer rmbus.
    #[error("the store has schema version {found}; this rmbus reads up to {known}")]
    TooNew {
        /// The file's version.
        found: i64,
        /// Ours.
        known: i64,
    },
    /// The store refuses writes (opened read-only, or told to fail).
    #[error("the store is read-only")]
    ReadOnly,
}

/// How much a store keeps per member: at most `keep` messages, none older
/// than `keep_for` (defaults 100,000 and 30 days).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// The most messages kept per member.
    pub keep: usize,
    /// The oldest a kept message may be.
    pub keep_for: Duration,
}

impl Default for Retention {
    fn default() -> Retention {
        Retention {
            keep: 100_000,
            keep_for: Duration::from_secs(30 * 24 * 3600),
        }
    }
}

/// A member's store.
pub trait Store: Send {
    /// Records that the store holds member `id`.
    fn add_member(&mut self, id: &str) -> Result<(), StoreError>;

    /// The members it holds, in the order they were added.
    fn members(&self) -> Result<Vec<String>, StoreError>;

    /// What `member` last said about itself ([`StoreOp::Describe`]), if
    /// the store has it.
    fn description(&self, member: &str) -> Result<Option<Description>, StoreError>;

    /// Commits `ops` for `member` as one transaction, at wall time `now`.
    fn commit(&mut self, member: &str, ops: &[StoreOp], now: SystemTime) -> Result<(), StoreError>;

    /// Commits several members' batches as one transaction (what the worker
    /// does with every batch waiting at once). The default commits them one
    /// by one.
    fn commit_all(
        &mut self,
        batches: &[(&str, &[StoreOp])],
        now: SystemTime,
    ) -> Result<(), StoreError> {
        for (member, ops) in batches {
            self.commit(member, ops, now)?;
        }
        Ok(())
    }

    /// The messages `member` received, oldest first.
    fn messages(&self, member: &str) -> Result<Vec<StoredMessage>, StoreError>;

    /// One message.
    fn message(&self, member: &str, id: &str) -> Result<Option<StoredMessage>, StoreError>;

    /// Removes one message; true if it was there.
    fn delete(&mut self, member: &str, id: &str) -> Result<bool, StoreError>;

    /// Removes every message of `member`; how many.
    fn purge(&mut self, member: &str) -> Result<usize, StoreError>;

    /// The ids of the messages `member` received, with their results: what a
    /// restarted member needs to answer retries from memory. The default
    /// reads the whole messages.
    fn answered(
        &self,
        member: &str,
    ) -> Result<Vec<(String, Option<serde_json::Value>)>, StoreError> {
        Ok(self
            .messages(member)?
            .into_iter()
            .map(|m| (m.message.id, m.message.result))
            .collect())
    }

    /// The messages `member` holds for later recipients.
    fn held(&self, member: &str) -> Result<Vec<HeldRecord>, StoreError>;

    /// Applies `retention` to `member`'s messages at wall time `now`; how
    /// many were removed.
    fn retain(
        &mut self,
        member: &str,
        retention: Retention,
        now: SystemTime,
    ) -> Result<usize, StoreError>;
}

/// The default store file of member `id`:
/// `$XDG_DATA_HOME/rmbus/members/<id>.sqlite`, else under
/// `~/.local/share`.
pub fn default_path(id: &str) -> Option<PathBuf> {
    let base = std::env::var_os("XDG_DATA_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))?;
    Some(
        base.join("rmbus")
            .join("members")
            .join(format!("{id}.sqlite")),
    )
}
