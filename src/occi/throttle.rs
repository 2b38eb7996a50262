//! A back-off for clients that keep giving wrong credentials, per client
//! address (an IPv6 client by its /64): a few failures are free, then each
//! further one shuts the address out for twice as long as the last, up to
//! a ceiling; a success forgives. An address may also have only a few
//! password checks waiting or running at once, so that one client cannot
//! fill the queue that all share. The table is bounded: when full, the
//! records that are quietest go first.
//!
//! Pure bookkeeping: every call carries `now`, so tests drive the clock.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// The back-off's settings.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    /// Failures in a row an address may make before it is shut out.
    pub free: u32,
    /// The first shut-out; each further failure doubles it.
    pub first: Duration,
    /// The longest shut-out.
    pub longest: Duration,
    /// A record without failures for this long is forgotten.
    pub forget: Duration,
    /// The most addresses remembered.
    pub addresses: usize,
    /// Password checks one address may have waiting or running at once.
    pub pending: u32,
}

impl Default for Backoff {
    fn default() -> Backoff {
        Backoff {
            free: 5,
            first: Duration::from_secs(1),
            longest: Duration::from_secs(60),
            forget: Duration::from_secs(600),
            addresses: 4096,
            pending: 2,
        }
    }
}

/// What the table keys on: an IPv4 address, or an IPv6 /64.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Client {
    V4(u32),
    V6(u64),
}

impl From<IpAddr> for Client {
    fn from(ip: IpAddr) -> Client {
        match ip {
            IpAddr::V4(v4) => Client::V4(u32::from(v4)),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Client::V4(u32::from(v4)),
                None => Client::V6((u128::from(v6) >> 64) as u64),
            },
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Record {
    failures: u32,
    last: Instant,
    shut_until: Instant,
    pending: u32,
}

/// Failures per client address.
#[derive(Debug)]
pub struct Throttle {
    how: Backoff,
    table: HashMap<Client, Record>,
}

impl Throttle {
    /// An empty table.
    pub fn new(mut how: Backoff) -> Throttle {
        how.addresses = how.addresses.max(1);
        Throttle {
            how,
            table: HashMap::new(),
        }
    }

    /// How long `ip` is still shut out, if it is.
    pub fn shut_out(&self, ip: IpAddr, now: Instant) -> Option<Duration> {
        let r = self.table.get(&Client::from(ip))?;
        (r.shut_until > now).then(|| r.shut_until - now)
    }

    fn record(&mut self, ip: IpAddr, now: Instant) -> &mut Record {
        let key = Client::from(ip);
        if !self.table.contains_key(&key) && self.table.len() >= self.how.addresses {
            self.make_room(now);
        }
        self.table.entry(key).or_insert(Record {
            failures: 0,
            last: now,
            shut_until: now,
            pending: 0,
        })
    }

    /// Counts a check of `ip` as started, unless it has as many waiting or
    /// running as it may (then `false`).
    pub fn start_check(&mut self, ip: IpAddr, now: Instant) -> bool {
        let most = self.how.pending.max(1);
        let r = self.record(ip, now);
        if r.pending >= most {
            return false;
        }
        r.pending += 1;
        true
    }

    /// Counts a check of `ip` as ended.
    pub fn end_check(&mut self, ip: IpAddr) {
        let key = Client::from(ip);
        if let Some(r) = self.table.get_mut(&key) {
            r.pending = r.pending.saturating_sub(1);
            if r.pending == 0 && r.failures == 0 {
                self.table.remove(&key);
            }
        }
    }

    /// Counts a failure of `ip`; the shut-out it starts, if any.
    pub fn failed(&mut self, ip: IpAddr, now: Instant) -> Option<Duration> {
        let how = self.how;
        let r = self.record(ip, now);
        if now.duration_since(r.last) >= how.forget {
            r.failures = 0;
        }
        r.failures = r.failures.saturating_add(1);
        r.last = now;
        let over = r.failures.checked_sub(how.free)?;
        if over == 0 {
            return None;
        }
        let doubled = how
            .first
            .checked_mul(1u32.checked_shl(over - 1).unwrap_or(u32::MAX))
            .unwrap_or(how.longest);
        let span = doubled.min(how.longest);
        r.shut_until = now + span;
        Some(span)
    }

    /// Forgives `ip` its failures.
    pub fn succeeded(&mut self, ip: IpAddr) {
        let key = Client::from(ip);
        if let Some(r) = self.table.get_mut(&key) {
            if r.pending == 0 {
                self.table.remove(&key);
            } else {
                r.failures = 0;
                r.shut_until = r.last;
            }
        }
    }

    /// Addresses remembered.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.table.len()
    }

    /// True when no address is remembered.
    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    fn make_room(&mut self, now: Instant) {
        let forget = self.how.forget;
        self.table.retain(|_, r| {
            now.duration_since(r.last) < forget || r.shut_until > now || r.pending > 0
        });
        if self.table.len() >= self.how.addresses {
            // Still full: the quietest eighth goes.
            let mut lasts: Vec<Instant> = self.table.values().map(|r| r.last).collect();
            lasts.sort_unstable();
            let cut = lasts[(lasts.len() / 8).min(lasts.len() - 1)];
            self.table.retain(|_, r| r.last > cut || r.pending > 0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn free_failures_then_doubling_shut_outs_up_to_the_ceiling() {
        let mut t = Throttle::new(Backoff::default());
        let a = ip("127.0.0.1");
        let t0 = Instant::now();
        for _ in 0..5 {
            assert_eq!(t.failed(a, t0), None);
        }
        assert_eq!(t.shut_out(a, t0), None);
        assert_eq!(t.failed(a, t0), Some(Duration::from_secs(1)));
        assert_eq!(t.failed(a, t0), Some(Duration::from_secs(2)));
        assert_eq!(t.failed(a, t0), Some(Duration::from_secs(4)));
        assert_eq!(
            t.shut_out(a, t0 + Duration::from_secs(1)),
            Some(Duration::from_secs(3))
        );
        assert_eq!(t.shut_out(a, t0 + Duration::from_secs(4)), None);
        for _ in 0..40 {
            t.failed(a, t0);
        }
        assert_eq!(
            t.shut_out(a, t0),
            Some(Duration::from_secs(60)),
            "the ceiling"
        );
        assert_eq!(
            t.shut_out(ip("127.0.0.2"), t0),
            None,
            "others are not touched"
        );
        t.succeeded(a);
        assert_eq!(t.shut_out(a, t0), None, "a success forgives");
        assert!(t.is_empty());
    }

    #[test]
    fn ipv6_clients_count_by_their_64_and_mapped_v4_as_v4() {
        let mut t = Throttle::new(Backoff {
            free: 0,
            ..Backoff::default()
        });
        let t0 = Instant::now();
        t.failed(ip("2001:db8::1"), t0);
        assert!(t.shut_out(ip("2001:db8::ffff:2"), t0).is_some());
        assert!(t.shut_out(ip("2001:db8:0:1::1"), t0).is_none());
        t.failed(ip("::ffff:10.0.0.1"), t0);
        assert!(t.shut_out(ip("10.0.0.1"), t0).is_some());
    }

    #[test]
    fn the_table_stays_within_its_bound() {
        let mut t = Throttle::new(Backoff {
            addresses: 64,
            ..Backoff::default()
        });
        let t0 = Instant::now();
        for i in 0..10_000u32 {
            t.failed(
                IpAddr::from(i.to_be_bytes()),
                t0 + Duration::from_millis(u64::from(i)),
            );
            assert!(t.len() <= 64, "{} at {i}", t.len());
        }
    }

    #[test]
    fn an_address_has_few_checks_at_once() {
        let mut t = Throttle::new(Backoff::default());
        let (a, b) = (ip("127.0.0.1"), ip("127.0.0.2"));
        let t0 = Instant::now();
        assert!(t.start_check(a, t0));
        assert!(t.start_check(a, t0));
        assert!(!t.start_check(a, t0), "a third waits for none of them");
        assert!(t.start_check(b, t0), "another address has its own");
        t.end_check(a);
        assert!(t.start_check(a, t0));
        t.end_check(a);
        t.end_check(a);
        t.end_check(b);
        assert!(t.is_empty(), "nothing left to remember");
    }

    #[test]
    fn old_failures_are_forgotten() {
        let mut t = Throttle::new(Backoff::default());
        let a = ip("127.0.0.1");
        let t0 = Instant::now();
        for _ in 0..5 {
            t.failed(a, t0);
        }
        let later = t0 + Duration::from_secs(601);
        assert_eq!(t.failed(a, later), None, "counting starts again");
    }
}
