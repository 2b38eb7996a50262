//! Handles that C holds as pointers but that are checked on every use.
//!
//! A handle is a token (a number that looks like an aligned pointer and is
//! never handed out twice), not the address of the object: a handle used
//! after it was closed, or one that was never ours, is found missing in the
//! table instead of being dereferenced.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// Live objects by token.
pub struct Table<T> {
    inner: Mutex<Inner<T>>,
}

struct Inner<T> {
    next: usize,
    live: BTreeMap<usize, Arc<T>>,
}

impl<T> Table<T> {
    /// An empty table (for a `static`).
    pub const fn new() -> Table<T> {
        Table {
            inner: Mutex::new(Inner {
                next: 0,
                live: BTreeMap::new(),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner<T>> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Keeps `value` and returns its token (never 0, never reused), or
    /// `None` once the tokens are used up (a 32-bit process after about
    /// 250 million handles).
    pub fn insert(&self, value: T) -> Option<usize> {
        let mut t = self.lock();
        // Aligned and far from 0, like a heap pointer, so that C code that
        // compares it with NULL or prints it sees nothing odd.
        let next = t.next.checked_add(1)?;
        let token = next.checked_mul(16)?.checked_add(0x1000_0000)?;
        t.next = next;
        t.live.insert(token, Arc::new(value));
        Some(token)
    }

    /// The object behind `token`, if it is live.
    pub fn get(&self, token: usize) -> Option<Arc<T>> {
        self.lock().live.get(&token).cloned()
    }

    /// Takes `token` out of the table; the object lives on while a call
    /// still uses it.
    pub fn remove(&self, token: usize) -> Option<Arc<T>> {
        self.lock().live.remove(&token)
    }
}

impl<T> Default for Table<T> {
    fn default() -> Self {
        Table::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_never_reused_and_removed_ones_are_missing() {
        let t = Table::new();
        let a = t.insert(1).unwrap();
        assert_eq!(t.get(a).as_deref(), Some(&1));
        assert!(t.remove(a).is_some());
        assert!(t.get(a).is_none());
        let b = t.insert(2).unwrap();
        assert_ne!(a, b);
        assert!(t.get(0).is_none());
    }
}
