//! [`SharedDirectory`]: the directory and its discovery, as one participant
//! keeps it, or as a host keeps it once for all its members.
//!
//! It is fed three inputs: announces (`cmbs.member.announce`), member
//! entities joining the bus's entity table, and member entities leaving it
//! (RFC 3259 §9's hello and bye, and expiry). A member entity heard but not
//! described is asked to describe itself, reliably, at once and then every
//! [`DISCOVERY_INTERVAL`] until it has; those asks are work this type hands
//! out ([`SharedDirectory::asks_due`]), the endpoint that sends them being
//! its owner's.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::proto::maps::{HashMap, HashSet};
use crate::proto::LeaveReason;
use crate::wire::{Address, Command};

use super::cmd::{Announce, Leave};
use super::description::Description;
use super::directory::{Change, Directory, Entry};
use super::event::Event;

/// How often a member entity that has not announced itself is asked to.
pub const DISCOVERY_INTERVAL: Duration = Duration::from_secs(1);

/// The most member entities remembered as heard (the endpoint's entity
/// table bounds them too).
const MAX_HEARD: usize = 1 << 16;

/// Counters of what was dropped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// CMBS commands that could not be read (or claimed another member's id).
    pub malformed: u64,
    /// Announces of new members the full directory did not take in
    /// ([`crate::cmbs::MAX_MEMBERS`]).
    pub directory_full: u64,
}

/// The members of the bus and the member entities heard but not described.
#[derive(Debug, Default)]
pub struct SharedDirectory {
    directory: Directory,
    /// The member entities the entity table holds, by member id: those the
    /// directory lacks are undescribed.
    heard: HashMap<String, Address>,
    /// The ids heard that the directory lacks (kept, not searched for: a
    /// sender reads them at every publish).
    lacking: HashSet<String>,
    /// When to ask the undescribed again.
    discover_at: Option<Instant>,
    /// The most asks handed out per round.
    asks_per_round: usize,
    stats: Stats,
    /// Members joined, changed and left, for the owner's application.
    events: VecDeque<Event>,
}

/// True if `addr` is a bridge's address: `app:cmbs module:bridge`.
pub fn is_bridge(addr: &Address) -> bool {
    addr.get("app") == Some("cmbs") && addr.get("module") == Some("bridge")
}

/// True if `addr` is a member's address: `app:cmbs module:member member:<id>`.
pub fn member_id_of(addr: &Address) -> Option<&str> {
    (addr.get("app") == Some("cmbs") && addr.get("module") == Some("member"))
        .then(|| addr.get("member"))
        .flatten()
}

impl SharedDirectory {
    /// An empty directory that asks at most `asks_per_round` undescribed
    /// member entities per [`DISCOVERY_INTERVAL`] (so that discovery never
    /// floods its endpoint's queue).
    pub fn new(asks_per_round: usize) -> SharedDirectory {
        SharedDirectory {
            asks_per_round: asks_per_round.max(1),
            ..SharedDirectory::default()
        }
    }

    /// The members, by id.
    pub fn directory(&self) -> &Directory {
        &self.directory
    }

    /// What was dropped.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// The address of the member entity with id `id`, if one is heard.
    pub fn heard(&self, id: &str) -> Option<&Address> {
        self.heard.get(id)
    }

    /// The member entities heard whose description has not reached us (id
    /// and address).
    pub fn undescribed(&self) -> impl Iterator<Item = (&str, &Address)> + '_ {
        self.lacking
            .iter()
            .filter_map(|id| Some((id.as_str(), self.heard.get(id)?)))
    }

    /// Takes an announce from `src`: the member's entry if it is new or
    /// changed (a [`Event::Joined`] or [`Event::Changed`] is queued), `None`
    /// if it said nothing new, was malformed, claimed another member's id or
    /// found the directory full (each counted).
    pub fn on_announce(&mut self, src: Address, command: &Command) -> Option<Entry> {
        let description = match Announce::parse(command) {
            Ok(a) => a.description,
            Err(e) => {
                tracing::debug!(%src, "malformed announce: {e}");
                self.stats.malformed += 1;
                return None;
            }
        };
        match &description.remote {
            None if member_id_of(&src) != Some(description.id.as_str()) => {
                tracing::debug!(%src, id = %description.id, "an announce for another member's id");
                self.stats.malformed += 1;
                None
            }
            None => self.learn(src, description),
            Some(r) if !is_bridge(&src) || r.via != src => {
                tracing::debug!(%src, id = %description.id, "a remote member announced by no bridge, or via another");
                self.stats.malformed += 1;
                None
            }
            Some(_) if self.heard.contains_key(&description.id) => {
                // The member is on this link: a bridge that announces it
                // as remote learnt it from this link, through another site.
                tracing::debug!(%src, id = %description.id, "a member of this link announced as remote");
                self.stats.malformed += 1;
                None
            }
            Some(r) => {
                let address = r.address.clone();
                self.learn(address, description)
            }
        }
    }

    /// Takes a bridge's `cmbs.member.leave` from `src`: the members it
    /// names that were announced via `src` leave the directory
    /// ([`Event::Left`] queued, reason bye); the rest of the ids are
    /// ignored. A malformed one is counted.
    pub fn on_leave(&mut self, src: &Address, command: &Command) {
        let leave = match Leave::parse(command) {
            Ok(l) if is_bridge(src) => l,
            Ok(_) => {
                tracing::debug!(%src, "a leave from an entity that is no bridge");
                self.stats.malformed += 1;
                return;
            }
            Err(e) => {
                tracing::debug!(%src, "malformed leave: {e}");
                self.stats.malformed += 1;
                return;
            }
        };
        for id in leave.ids {
            let via_src = self
                .directory
                .get(&id)
                .and_then(|e| e.description.remote.as_ref())
                .is_some_and(|r| r.via == *src);
            if via_src {
                if let Some(entry) = self.directory.remove_id(&id) {
                    self.events.push_back(Event::Left {
                        entry,
                        reason: LeaveReason::Bye,
                    });
                }
            }
        }
    }

    /// Takes `description` of the member at `address` as an announce would
    /// give it (a host's own member, known without the wire): its entry if
    /// new or changed.
    pub fn learn(&mut self, address: Address, description: Description) -> Option<Entry> {
        let id = description.id.clone();
        let change = self.directory.upsert(address, description);
        if change != Change::Full {
            self.lacking.remove(&id);
        }
        let entry = self.directory.get(&id).cloned();
        match (change, entry) {
            (Change::Full, _) => {
                self.stats.directory_full += 1;
                None
            }
            (Change::Same, _) | (_, None) => None,
            (Change::New, Some(e)) => {
                self.events.push_back(Event::Joined(e.clone()));
                Some(e)
            }
            (Change::Changed, Some(e)) => {
                self.events.push_back(Event::Changed(e.clone()));
                Some(e)
            }
        }
    }

    /// Entity `addr` joined the bus: true if it is a member entity the
    /// directory lacks, to be asked to describe itself now (the owner sends
    /// a `cmbs.member.describe` to it reliably; it is asked again every
    /// [`DISCOVERY_INTERVAL`] until it has).
    pub fn on_joined(&mut self, now: Instant, addr: &Address) -> bool {
        let Some(id) = member_id_of(addr) else {
            return false;
        };
        if self.heard.len() < MAX_HEARD || self.heard.contains_key(id) {
            self.heard.insert(id.to_owned(), addr.clone());
            if self.directory.get(id).is_none() {
                self.lacking.insert(id.to_owned());
            }
        }
        if self.directory.has_address(addr) {
            return false;
        }
        self.discover_at.get_or_insert(now + DISCOVERY_INTERVAL);
        true
    }

    /// Entity `addr` left the bus (`reason`): it is no longer heard, and its
    /// member leaves the directory ([`Event::Left`] queued).
    pub fn on_left(&mut self, addr: &Address, reason: LeaveReason) {
        if let Some(id) = member_id_of(addr) {
            if self.heard.get(id) == Some(addr) {
                self.heard.remove(id);
                self.lacking.remove(id);
            }
        }
        if let Some(entry) = self.directory.remove_address(addr) {
            let id = &entry.description.id;
            if self.heard.contains_key(id) {
                // Heard again under another address, not described there.
                self.lacking.insert(id.clone());
            }
            self.events.push_back(Event::Left { entry, reason });
        }
        // A bridge that leaves takes the members of other sites it carried.
        for entry in self.directory.remove_via(addr) {
            self.events.push_back(Event::Left { entry, reason });
        }
    }

    /// The member entities to ask again now, at most a round's worth,
    /// except `me` (a member does not ask itself). The rest are asked at
    /// the next round.
    pub fn asks_due(&mut self, now: Instant, me: Option<&str>) -> Vec<Address> {
        if self.discover_at.is_none_or(|t| t > now) {
            return Vec::new();
        }
        self.discover_at = None;
        // The member entities heard whose address the directory lacks (a new
        // one, or a known member back under a new address).
        let ask: Vec<Address> = self
            .heard
            .iter()
            .filter(|(id, _)| Some(id.as_str()) != me)
            .filter(|(_, addr)| !self.directory.has_address(addr))
            .take(self.asks_per_round)
            .map(|(_, addr)| addr.clone())
            .collect();
        if !ask.is_empty() {
            self.discover_at = Some(now + DISCOVERY_INTERVAL);
        }
        ask
    }

    /// When [`SharedDirectory::asks_due`] has work next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.discover_at
    }

    /// The next change of the directory.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(id: &str, n: u32) -> Address {
        Address::parse(&format!("(app:cmbs module:member member:{id} id:{n}-1@h)")).unwrap()
    }

    fn announce(id: &str) -> Command {
        Announce {
            description: Description::new(id),
        }
        .into_command()
    }

    #[test]
    fn a_member_heard_is_asked_until_it_describes_itself_and_leaves_with_its_entity() {
        let t0 = Instant::now();
        let mut d = SharedDirectory::new(16);
        assert!(!d.on_joined(t0, &Address::parse("(app:x id:1@h)").unwrap()));
        assert!(d.on_joined(t0, &member("a", 1)));
        assert_eq!(d.undescribed().count(), 1);
        assert!(d.asks_due(t0, None).is_empty(), "not before the interval");
        let later = t0 + DISCOVERY_INTERVAL;
        assert_eq!(d.asks_due(later, None), vec![member("a", 1)]);
        assert!(
            d.asks_due(later, Some("a")).is_empty(),
            "asked once a round"
        );
        assert_eq!(
            d.asks_due(later + DISCOVERY_INTERVAL, Some("a")),
            Vec::<Address>::new(),
            "a member never asks itself"
        );
        let entry = d.on_announce(member("a", 1), &announce("a")).unwrap();
        assert_eq!(entry.description.id, "a");
        assert!(matches!(d.poll_event(), Some(Event::Joined(_))));
        assert!(d.on_announce(member("a", 1), &announce("a")).is_none());
        assert_eq!(d.undescribed().count(), 0);
        assert!(!d.on_joined(later, &member("a", 1)), "described already");
        d.on_left(&member("a", 1), LeaveReason::Bye);
        assert!(matches!(d.poll_event(), Some(Event::Left { .. })));
        assert!(d.directory().is_empty() && d.heard("a").is_none());
    }

    #[test]
    fn an_announce_for_another_id_or_unreadable_is_counted_and_changes_nothing() {
        let mut d = SharedDirectory::new(1);
        assert!(d.on_announce(member("a", 1), &announce("b")).is_none());
        let bad = Command::new(Announce::NAME, vec![]);
        assert!(d.on_announce(member("a", 1), &bad).is_none());
        assert_eq!(d.stats().malformed, 2);
        assert!(d.directory().is_empty() && d.poll_event().is_none());
    }
}
