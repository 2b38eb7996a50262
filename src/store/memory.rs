//! A store in memory: for tests, the simulation, and members that need no
//! disk. It can be told to refuse writes, as a full disk would.

use std::collections::BTreeMap;
use std::time::SystemTime;

use crate::cmbs::{Description, HeldRecord, StoreOp, StoredMessage};

use super::{unix_ms, Retention, Store, StoreError};

#[derive(Debug, Default, Clone)]
struct MemberData {
    messages: Vec<StoredMessage>,
    held: BTreeMap<String, HeldRecord>,
    description: Option<Description>,
}

/// A store in memory.
#[derive(Debug, Default, Clone)]
pub struct MemoryStore {
    members: Vec<String>,
    data: BTreeMap<String, MemberData>,
    /// When true, every write fails with [`StoreError::ReadOnly`].
    pub fail_writes: bool,
    commits: u64,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }

    /// How many batches were committed.
    pub fn commits(&self) -> u64 {
        self.commits
    }

    fn writable(&self) -> Result<(), StoreError> {
        if self.fail_writes {
            Err(StoreError::ReadOnly)
        } else {
            Ok(())
        }
    }
}

impl Store for MemoryStore {
    fn add_member(&mut self, id: &str) -> Result<(), StoreError> {
        self.writable()?;
        if !self.members.iter().any(|m| m == id) {
            self.members.push(id.to_owned());
        }
        Ok(())
    }

    fn members(&self) -> Result<Vec<String>, StoreError> {
        Ok(self.members.clone())
    }

    fn commit(&mut self, member: &str, ops: &[StoreOp], now: SystemTime) -> Result<(), StoreError> {
        self.writable()?;
        self.add_member(member)?;
        let d = self.data.entry(member.to_owned()).or_default();
        for op in ops {
            match op {
                StoreOp::Save { message, from } => {
                    d.messages.retain(|m| m.message.id != message.id);
                    d.messages.push(StoredMessage {
                        message: message.clone(),
                        from: from.clone(),
                        stored_unix_ms: unix_ms(now),
                    });
                }
                StoreOp::Hold(r) => {
                    d.held.insert(r.message.id.clone(), r.clone());
                }
                StoreOp::Release { id } => {
                    d.held.remove(id);
                }
                StoreOp::Describe(desc) => d.description = Some(desc.clone()),
            }
        }
        self.commits += 1;
        Ok(())
    }

    fn description(&self, member: &str) -> Result<Option<Description>, StoreError> {
        Ok(self.data.get(member).and_then(|d| d.description.clone()))
    }

    fn messages(&self, member: &str) -> Result<Vec<StoredMessage>, StoreError> {
        Ok(self
            .data
            .get(member)
            .map(|d| d.messages.clone())
            .unwrap_or_default())
    }

    fn message(&self, member: &str, id: &str) -> Result<Option<StoredMessage>, StoreError> {
        Ok(self
            .data
            .get(member)
            .and_then(|d| d.messages.iter().find(|m| m.message.id == id).cloned()))
    }

    fn delete(&mut self, member: &str, id: &str) -> Result<bool, StoreError> {
        self.writable()?;
        let Some(d) = self.data.get_mut(member) else {
            return Ok(false);
        };
        let before = d.messages.len();
        d.messages.retain(|m| m.message.id != id);
        Ok(d.messages.len() != before)
    }

    fn purge(&mut self, member: &str) -> Result<usize, StoreError> {
        self.writable()?;
        Ok(self
            .data
            .get_mut(member)
            .map(|d| std::mem::take(&mut d.messages).len())
            .unwrap_or(0))
    }

    fn held(&self, member: &str) -> Result<Vec<HeldRecord>, StoreError> {
        Ok(self
            .data
            .get(member)
            .map(|d| d.held.values().cloned().collect())
            .unwrap_or_default())
    }

    fn retain(
        &mut self,
        member: &str,
        retention: Retention,
        now: SystemTime,
    ) -> Result<usize, StoreError> {
        self.writable()?;
        let Some(d) = self.data.get_mut(member) else {
            return Ok(0);
        };
        let before = d.messages.len();
        let oldest = unix_ms(now).saturating_sub(retention.keep_for.as_millis() as u64);
        d.messages.retain(|m| m.stored_unix_ms >= oldest);
        let excess = d.messages.len().saturating_sub(retention.keep);
        d.messages.drain(..excess);
        Ok(before - d.messages.len())
    }
}
