//! The hash tables of the protocol core (and of CMBS), with a fast hasher.
//!
//! The core looks up addresses, sequence numbers and message ids several
//! times per datagram; with the standard library's SipHash the hashing alone
//! cost about 12 % of a reliable round trip's user time. foldhash is seeded
//! at random per table, as SipHash is, so iteration order is unpredictable
//! and nothing may depend on it; every table fed from the wire is also
//! bounded by a limit ([`super::Limits`]). A deterministic simulation calls
//! [`seed_hash_tables`] first: the tables its thread makes then take fixed
//! seeds, so the order in which a run walks its tables, and with it the
//! whole run, replays from its seed.

use std::cell::Cell;
use std::hash::BuildHasher;

use foldhash::fast::SeedableRandomState;
use foldhash::SharedSeed;

/// A [`std::collections::HashMap`] with foldhash's seeded hasher.
pub type HashMap<K, V> = std::collections::HashMap<K, V, SeededState>;

/// A [`std::collections::HashSet`] with foldhash's seeded hasher.
pub type HashSet<K> = std::collections::HashSet<K, SeededState>;

thread_local! {
    /// The next table seed of this thread, once a simulation fixed it.
    static NEXT_SEED: Cell<Option<u64>> = const { Cell::new(None) };
}

/// SplitMix64's step: the next state, and the seed it hands out.
fn split_mix(state: u64) -> (u64, u64) {
    let next = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = next;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    (next, z ^ (z >> 31))
}

/// Makes the hash tables of the protocol core and of CMBS that this thread
/// creates from now on take fixed seeds drawn from `seed`: a simulation
/// that calls it first walks its tables in the same order every run, and so
/// replays exactly. Not for production: tables seeded so are predictable.
pub fn seed_hash_tables(seed: u64) {
    NEXT_SEED.with(|s| s.set(Some(seed)));
}

/// The hasher builder of the core's tables: foldhash, seeded at random, or
/// from the thread's fixed seeds after [`seed_hash_tables`].
#[derive(Clone, Debug)]
pub struct SeededState(SeedableRandomState);

impl Default for SeededState {
    fn default() -> SeededState {
        let fixed = NEXT_SEED.with(|s| {
            let (next, seed) = split_mix(s.get()?);
            s.set(Some(next));
            Some(seed)
        });
        SeededState(match fixed {
            Some(seed) => SeedableRandomState::with_seed(seed, SharedSeed::global_fixed()),
            None => SeedableRandomState::random(),
        })
    }
}

impl BuildHasher for SeededState {
    type Hasher = foldhash::fast::FoldHasher<'static>;

    fn build_hasher(&self) -> Self::Hasher {
        self.0.build_hasher()
    }
}
