//! What a member remembers of the messages it answered delivered, so that a
//! retry (same message id) is answered from memory and never reaches the
//! application twice. Bounded: an entry stays at least
//! [`MemoryConfig::remember_for`] (10 minutes) and, when its message is
//! stored, until the memory is full; when it is full the oldest goes first.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::proto::maps::HashMap;

/// The bounds of the memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryConfig {
    /// How long an answered id is remembered at least (10 minutes).
    pub remember_for: Duration,
    /// At most this many ids (100,000, the default retention of a store).
    pub capacity: usize,
}

impl Default for MemoryConfig {
    fn default() -> MemoryConfig {
        MemoryConfig {
            remember_for: Duration::from_secs(600),
            capacity: 100_000,
        }
    }
}

#[derive(Debug)]
struct Remembered {
    result: Option<serde_json::Value>,
    at: Instant,
    stored: bool,
}

/// Answered message ids and their results.
#[derive(Debug, Default)]
pub(crate) struct Answered {
    config: MemoryConfig,
    by_id: HashMap<String, Remembered>,
    order: VecDeque<String>,
}

impl Answered {
    pub(crate) fn new(config: MemoryConfig) -> Answered {
        Answered {
            config,
            ..Answered::default()
        }
    }

    /// The result a delivered message `id` was answered with.
    pub(crate) fn get(&self, id: &str) -> Option<&Option<serde_json::Value>> {
        self.by_id.get(id).map(|r| &r.result)
    }

    pub(crate) fn remember(
        &mut self,
        now: Instant,
        id: &str,
        result: Option<serde_json::Value>,
        stored: bool,
    ) {
        if self
            .by_id
            .insert(
                id.to_owned(),
                Remembered {
                    result,
                    at: now,
                    stored,
                },
            )
            .is_none()
        {
            self.order.push_back(id.to_owned());
        }
        self.prune(now);
    }

    /// Forgets what is past its time, and the oldest beyond the capacity.
    pub(crate) fn prune(&mut self, now: Instant) {
        while self.order.len() > self.config.capacity {
            if let Some(id) = self.order.pop_front() {
                self.by_id.remove(&id);
            }
        }
        while let Some(id) = self.order.front() {
            match self.by_id.get(id) {
                Some(r)
                    if r.stored
                        || now.saturating_duration_since(r.at) < self.config.remember_for =>
                {
                    break
                }
                _ => {
                    let id = self.order.pop_front().unwrap_or_default();
                    self.by_id.remove(&id);
                }
            }
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.by_id.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_stay_ten_minutes_and_stored_ones_until_the_memory_is_full() {
        let t0 = Instant::now();
        let config = MemoryConfig {
            capacity: 3,
            ..MemoryConfig::default()
        };
        let mut a = Answered::new(config);
        a.remember(t0, "stored", None, true);
        a.remember(t0, "plain", Some(serde_json::json!(1)), false);
        a.prune(t0 + Duration::from_secs(599));
        assert_eq!(a.get("plain"), Some(&Some(serde_json::json!(1))));
        a.prune(t0 + Duration::from_secs(601));
        assert!(a.get("stored").is_some(), "a stored message's answer stays");
        // Behind a stored entry the order is kept; the capacity bounds both.
        for k in 0..3 {
            a.remember(t0 + Duration::from_secs(700), &format!("n{k}"), None, false);
        }
        assert_eq!(a.len(), 3);
        assert!(a.get("stored").is_none(), "the oldest goes when it is full");
    }
}
