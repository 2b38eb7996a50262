//! The SQLite store (rusqlite, SQLite bundled): WAL with
//! `synchronous=FULL`, so a committed batch is on disk before the member
//! answers. The schema is versioned (`PRAGMA user_version`); opening a file
//! of an older version migrates it, one step per version.

use std::path::Path;
use std::time::SystemTime;

use rusqlite::{params, Connection, OpenFlags, OptionalExtension};

use crate::cmbs::{Description, HeldRecord, Message, StoreOp, StoredMessage};

use super::{unix_ms, Retention, Store, StoreError};

/// The schema version this rmbus writes.
pub const SCHEMA_VERSION: i64 = 3;

/// Each migration takes the schema from version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[
    // 0 → 1: members, received messages, held messages.
    "CREATE TABLE members (
         id TEXT PRIMARY KEY,
         added_ms INTEGER NOT NULL,
         position INTEGER NOT NULL
     );
     CREATE TABLE messages (
         member TEXT NOT NULL,
         id TEXT NOT NULL,
         layer TEXT NOT NULL,
         sender TEXT NOT NULL,
         stored_ms INTEGER NOT NULL,
         body TEXT NOT NULL,
         PRIMARY KEY (member, id)
     );
     CREATE INDEX messages_by_age ON messages (member, stored_ms);
     CREATE TABLE held (
         member TEXT NOT NULL,
         id TEXT NOT NULL,
         until_ms INTEGER NOT NULL,
         body TEXT NOT NULL,
         delivered TEXT NOT NULL,
         PRIMARY KEY (member, id)
     );",
    // 1 → 2: what each member last said about itself (its description as
    // JSON), taken up when it restarts.
    "ALTER TABLE members ADD COLUMN description TEXT;",
    // 2 → 3: a new member's position (the largest one plus one) found by
    // an index, not by reading every member's row.
    "CREATE INDEX members_by_position ON members (position);",
];

/// A store in one SQLite file.
#[derive(Debug)]
pub struct SqliteStore {
    conn: Connection,
    read_only: bool,
}

impl SqliteStore {
    /// Opens (creating it and its directory if needed) the store at `path`,
    /// migrating an older schema.
    pub fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| StoreError::Io {
                path: dir.to_owned(),
                source,
            })?;
        }
        let conn = Connection::open(path)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        let mut store = SqliteStore {
            conn,
            read_only: false,
        };
        store.migrate()?;
        Ok(store)
    }

    /// Opens an existing store for reading only (`rmbus messages`); every
    /// write fails.
    pub fn open_read_only(path: &Path) -> Result<SqliteStore, StoreError> {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        let store = SqliteStore {
            conn,
            read_only: true,
        };
        let version = store.version()?;
        if version > SCHEMA_VERSION {
            return Err(StoreError::TooNew {
                found: version,
                known: SCHEMA_VERSION,
            });
        }
        if version < SCHEMA_VERSION {
            return Err(StoreError::Corrupt(format!(
                "schema version {version}: open it read-write once to migrate it"
            )));
        }
        Ok(store)
    }

    fn version(&self) -> Result<i64, StoreError> {
        Ok(self
            .conn
            .pragma_query_value(None, "user_version", |r| r.get(0))?)
    }

    fn migrate(&mut self) -> Result<(), StoreError> {
        let mut version = self.version()?;
        if version > SCHEMA_VERSION {
            return Err(StoreError::TooNew {
                found: version,
                known: SCHEMA_VERSION,
            });
        }
        while version < SCHEMA_VERSION {
            let tx = self.conn.transaction()?;
            tx.execute_batch(MIGRATIONS[version as usize])?;
            version += 1;
            tx.pragma_update(None, "user_version", version)?;
            tx.commit()?;
        }
        Ok(())
    }

    fn writable(&self) -> Result<(), StoreError> {
        if self.read_only {
            Err(StoreError::ReadOnly)
        } else {
            Ok(())
        }
    }

    fn row_to_stored(
        body: String,
        sender: String,
        stored_ms: i64,
    ) -> Result<StoredMessage, StoreError> {
        let json: serde_json::Value =
            serde_json::from_str(&body).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        Ok(StoredMessage {
            message: Message::from_json(&json).map_err(StoreError::Corrupt)?,
            from: sender,
            stored_unix_ms: stored_ms.max(0) as u64,
        })
    }
}

impl Store for SqliteStore {
    fn add_member(&mut self, id: &str) -> Result<(), StoreError> {
        self.writable()?;
        self.conn.execute(
            "INSERT OR IGNORE INTO members (id, added_ms, position)
             VALUES (?1, ?2, (SELECT COALESCE(MAX(position), 0) + 1 FROM members))",
            params![id, unix_ms(SystemTime::now()) as i64],
        )?;
        Ok(())
    }

    fn members(&self) -> Result<Vec<String>, StoreError> {
        let mut st = self
            .conn
            .prepare("SELECT id FROM members ORDER BY position")?;
        let ids = st
            .query_map([], |r| r.get(0))?
            .collect::<Result<Vec<String>, _>>()?;
        Ok(ids)
    }

    fn description(&self, member: &str) -> Result<Option<Description>, StoreError> {
        let text: Option<Option<String>> = self
            .conn
            .query_row(
                "SELECT description FROM members WHERE id = ?1",
                params![member],
                |r| r.get(0),
            )
            .optional()?;
        let Some(text) = text.flatten() else {
            return Ok(None);
        };
        let json: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        Description::from_json(&json)
            .map(Some)
            .map_err(|e| StoreError::Corrupt(format!("member {member}'s description: {e}")))
    }

    fn commit(&mut self, member: &str, ops: &[StoreOp], now: SystemTime) -> Result<(), StoreError> {
        self.commit_all(&[(member, ops)], now)
    }

    fn commit_all(
        &mut self,
        batches: &[(&str, &[StoreOp])],
        now: SystemTime,
    ) -> Result<(), StoreError> {
        self.writable()?;
        let now_ms = unix_ms(now) as i64;
        let tx = self.conn.transaction()?;
        for (member, ops) in batches {
            apply(&tx, member, ops, now_ms)?;
        }
        tx.commit()?;
        Ok(())
    }

    fn messages(&self, member: &str) -> Result<Vec<StoredMessage>, StoreError> {
        let mut st = self.conn.prepare(
            "SELECT body, sender, stored_ms FROM messages WHERE member = ?1 ORDER BY stored_ms, rowid",
        )?;
        let rows = st
            .query_map([member], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
            .collect::<Result<Vec<(String, String, i64)>, _>>()?;
        rows.into_iter()
            .map(|(b, s, t)| Self::row_to_stored(b, s, t))
            .collect()
    }

    fn message(&self, member: &str, id: &str) -> Result<Option<StoredMessage>, StoreError> {
        let row = self
            .conn
            .query_row(
                "SELECT body, sender, stored_ms FROM messages WHERE member = ?1 AND id = ?2",
                [member, id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()?;
        row.map(|(b, s, t)| Self::row_to_stored(b, s, t))
            .transpose()
    }

    fn answered(
        &self,
        member: &str,
    ) -> Result<Vec<(String, Option<serde_json::Value>)>, StoreError> {
        // Only the ids and results, not every body: a restart reads this.
        let mut st = self
            .conn
            .prepare("SELECT id, body -> '$.result' FROM messages WHERE member = ?1")?;
        let rows = st
            .query_map([member], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<Vec<(String, Option<String>)>, _>>()?;
        rows.into_iter()
            .map(|(id, result)| {
                let result = match result.as_deref() {
                    None | Some("null") => None,
                    Some(text) => Some(
                        serde_json::from_str(text)
                            .map_err(|e| StoreError::Corrupt(e.to_string()))?,
                    ),
                };
                Ok((id, result))
            })
            .collect()
    }

    fn delete(&mut self, member: &str, id: &str) -> Result<bool, StoreError> {
        self.writable()?;
        Ok(self.conn.execute(
            "DELETE FROM messages WHERE member = ?1 AND id = ?2",
            [member, id],
        )? > 0)
    }

    fn purge(&mut self, member: &str) -> Result<usize, StoreError> {
        self.writable()?;
        Ok(self
            .conn
            .execute("DELETE FROM messages WHERE member = ?1", [member])?)
    }

    fn held(&self, member: &str) -> Result<Vec<HeldRecord>, StoreError> {
        let mut st = self
            .conn
            .prepare("SELECT body, until_ms, delivered FROM held WHERE member = ?1 ORDER BY id")?;
        let rows = st
            .query_map([member], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
            .collect::<Result<Vec<(String, i64, String)>, _>>()?;
        rows.into_iter()
            .map(|(body, until, delivered)| {
                let json: serde_json::Value =
                    serde_json::from_str(&body).map_err(|e| StoreError::Corrupt(e.to_string()))?;
                Ok(HeldRecord {
                    message: Message::from_json(&json).map_err(StoreError::Corrupt)?,
                    until_unix_ms: until.max(0) as u64,
                    delivered: serde_json::from_str(&delivered)
                        .map_err(|e| StoreError::Corrupt(e.to_string()))?,
                })
            })
            .collect()
    }

    fn retain(
        &mut self,
        member: &str,
        retention: Retention,
        now: SystemTime,
    ) -> Result<usize, StoreError> {
        self.writable()?;
        let oldest = unix_ms(now).saturating_sub(retention.keep_for.as_millis() as u64) as i64;
        let tx = self.conn.transaction()?;
        let mut removed = tx.execute(
            "DELETE FROM messages WHERE member = ?1 AND stored_ms < ?2",
            params![member, oldest],
        )?;
        removed += tx.execute(
            "DELETE FROM messages WHERE member = ?1 AND rowid IN (
                 SELECT rowid FROM messages WHERE member = ?1
                 ORDER BY stored_ms DESC, rowid DESC LIMIT -1 OFFSET ?2)",
            params![member, retention.keep as i64],
        )?;
        tx.commit()?;
        Ok(removed)
    }
}

/// Writes one member's operations inside transaction `tx`.
fn apply(
    tx: &rusqlite::Transaction<'_>,
    member: &str,
    ops: &[StoreOp],
    now_ms: i64,
) -> Result<(), StoreError> {
    let mut save = tx.prepare_cached(
        "INSERT OR REPLACE INTO messages (member, id, layer, sender, stored_ms, body)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?;
    let mut hold = tx.prepare_cached(
        "INSERT OR REPLACE INTO held (member, id, until_ms, body, delivered)
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    let mut release = tx.prepare_cached("DELETE FROM held WHERE member = ?1 AND id = ?2")?;
    for op in ops {
        match op {
            StoreOp::Save { message, from } => {
                save.execute(params![
                    member,
                    message.id,
                    message.layer.as_str(),
                    from,
                    now_ms,
                    message.to_json().to_string()
                ])?;
            }
            StoreOp::Hold(r) => {
                hold.execute(params![
                    member,
                    r.message.id,
                    r.until_unix_ms as i64,
                    r.message.to_json().to_string(),
                    serde_json::Value::from(r.delivered.clone()).to_string()
                ])?;
            }
            StoreOp::Release { id } => {
                release.execute(params![member, id])?;
            }
            StoreOp::Describe(d) => {
                tx.prepare_cached(
                    "INSERT INTO members (id, added_ms, position, description)
                     VALUES (?1, ?2, (SELECT COALESCE(MAX(position), 0) + 1 FROM members), ?3)
                     ON CONFLICT (id) DO UPDATE SET description = excluded.description",
                )?
                .execute(params![member, now_ms, d.to_json().to_string()])?;
            }
        }
    }
    tx.prepare_cached(
        "INSERT OR IGNORE INTO members (id, added_ms, position)
         VALUES (?1, ?2, (SELECT COALESCE(MAX(position), 0) + 1 FROM members))",
    )?
    .execute(params![member, now_ms])?;
    Ok(())
}
