//! The hash tables of the protocol core, with a fast hasher.
//!
//! The core looks up addresses, sequence numbers and message ids several
//! times per datagram; with the standard library's SipHash the hashing alone
//! cost about 12 % of a reliable round trip's user time. foldhash is seeded
//! at random per table, as SipHash is, so iteration order stays
//! unpredictable and nothing depends on it; every table fed from the wire is
//! also bounded by a limit ([`super::Limits`]).

/// A [`std::collections::HashMap`] with foldhash's seeded hasher.
pub type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

/// A [`std::collections::HashSet`] with foldhash's seeded hasher.
pub type HashSet<K> = std::collections::HashSet<K, foldhash::fast::RandomState>;
