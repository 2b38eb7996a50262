//! When to send `mbus.hello` (RFC 3259 §8.1, §9.1, §10), and when a silent peer
//! counts as gone (§8.2).
//!
//! ```text
//! hello_d = max(c_hello_min, c_hello_factor · entities)
//! hello_e = hello_d · U[c_hello_dither_min, c_hello_dither_max]
//! on expiry:   if hello_p + hello_e <= now: send, hello_p = now, hello_n = now + fresh hello_e
//!              else hello_n = hello_p + hello_e                      (reconsideration)
//! on loss:     hello_n = now + (entities/entities_p)(hello_n - now)
//!              hello_p = now - (entities/entities_p)(now - hello_p)
//! ```
//!
//! The first hello goes out after U[0, c_hello_min] (§9.1).

use std::time::{Duration, Instant};

use super::rng::Rng;
use super::Timers;

/// The hello schedule of one entity.
#[derive(Debug, Clone)]
pub(crate) struct HelloTimer {
    /// When the last hello was sent (`None`: never, the RFC's hello_p = 0).
    pub(crate) last: Option<Instant>,
    /// When the timer fires next.
    pub(crate) next: Instant,
    /// The entity count when the timer was last computed (entities_p).
    pub(crate) entities_then: usize,
}

impl HelloTimer {
    /// A timer for an entity that joins at `now`: first hello after U[0, hello_min].
    pub(crate) fn new(now: Instant, timers: &Timers, rng: &mut Rng) -> HelloTimer {
        HelloTimer {
            last: None,
            next: now + timers.hello_min.mul_f64(rng.unit()),
            entities_then: 1,
        }
    }

    /// The deterministic interval hello_d for `entities` (ourselves included).
    pub(crate) fn interval(timers: &Timers, entities: usize) -> Duration {
        let scaled = timers
            .hello_factor
            .saturating_mul(entities.min(u32::MAX as usize) as u32);
        timers.hello_min.max(scaled)
    }

    /// A randomised interval hello_e.
    fn dithered(timers: &Timers, entities: usize, rng: &mut Rng) -> Duration {
        let (lo, hi) = timers.hello_dither;
        Self::interval(timers, entities).mul_f64(lo + rng.unit() * (hi - lo))
    }

    /// Silence after which a peer counts as failed: c_hello_dead · hello_d · dither_max.
    pub(crate) fn dead_after(timers: &Timers, entities: usize) -> Duration {
        Self::interval(timers, entities)
            .mul_f64(f64::from(timers.hello_dead) * timers.hello_dither.1)
    }

    /// The timer fired at `now`: returns true if a hello is to be sent now.
    pub(crate) fn expire(
        &mut self,
        now: Instant,
        entities: usize,
        timers: &Timers,
        rng: &mut Rng,
    ) -> bool {
        let e = Self::dithered(timers, entities, rng);
        self.entities_then = entities;
        match self.last {
            Some(last) if last + e > now => {
                self.next = last + e;
                false
            }
            _ => {
                self.sent(now, entities, timers, rng);
                true
            }
        }
    }

    /// A hello was sent at `now` (regular, or in answer to a ping): restart.
    pub(crate) fn sent(&mut self, now: Instant, entities: usize, timers: &Timers, rng: &mut Rng) {
        self.last = Some(now);
        self.next = now + Self::dithered(timers, entities, rng);
    }

    /// Reverse reconsideration when the entity count drops (§8.1.4).
    pub(crate) fn entities_dropped(&mut self, now: Instant, entities: usize) {
        if self.entities_then == 0 || entities >= self.entities_then {
            self.entities_then = entities;
            return;
        }
        let ratio = entities as f64 / self.entities_then as f64;
        if self.next > now {
            self.next = now + (self.next - now).mul_f64(ratio);
        }
        if let Some(last) = self.last.filter(|l| *l < now) {
            self.last = Some(now - (now - last).mul_f64(ratio));
        }
        self.entities_then = entities;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(base: Instant, t: u64) -> Instant {
        base + Duration::from_millis(t)
    }

    #[test]
    fn case_19_reconsideration_on_loss() {
        let base = Instant::now();
        let mut timer = HelloTimer {
            last: Some(ms(base, 9000)),
            next: ms(base, 11000),
            entities_then: 10,
        };
        timer.entities_dropped(ms(base, 10000), 5);
        assert_eq!(timer.next, ms(base, 10500));
        assert_eq!(timer.last, Some(ms(base, 9500)));
        assert_eq!(timer.entities_then, 5);
    }

    #[test]
    fn intervals_and_expiry_threshold() {
        let t = Timers::default();
        for n in 1..=5 {
            assert_eq!(HelloTimer::interval(&t, n), Duration::from_millis(1000));
            assert_eq!(HelloTimer::dead_after(&t, n), Duration::from_millis(5500));
        }
        assert_eq!(HelloTimer::interval(&t, 10), Duration::from_millis(2000));
        assert_eq!(HelloTimer::dead_after(&t, 10), Duration::from_millis(11000));
        assert_eq!(HelloTimer::dead_after(&t, 20), Duration::from_millis(22000));
    }

    #[test]
    fn reconsideration_postpones_when_the_group_grew() {
        let base = Instant::now();
        let t = Timers::default();
        let mut rng = Rng::new(7);
        let mut timer = HelloTimer::new(base, &t, &mut rng);
        assert!(
            timer.expire(timer.next, 1, &t, &mut rng),
            "the first expiry always sends"
        );
        let first = timer.last.unwrap();
        // Many peers joined: hello_e is now 20 s, so the next expiry only re-arms.
        let at = timer.next;
        assert!(!timer.expire(at, 100, &t, &mut rng));
        assert!(timer.next >= first + Duration::from_millis(18000));
    }
}
