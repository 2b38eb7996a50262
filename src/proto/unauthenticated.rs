//! Who sends us datagrams that fail authentication (RFC 3259 §11): the
//! usual sign of a peer configured with another key.
//!
//! Such datagrams are dropped and counted, as they must be; but a user whose
//! key differs from the bus's would otherwise see nothing at all. The first
//! failure from each source is logged as a warning, and the sources are kept
//! (a bounded list) so that a tool can name them when it heard no entity.

use std::net::SocketAddr;

use crate::auth::Rejection;

/// How many sources are remembered; the rest are only counted.
pub const MAX_SOURCES: usize = 64;

/// One source of datagrams that failed authentication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnauthenticatedSource {
    /// The UDP source of the datagrams.
    pub from: SocketAddr,
    /// Why the first of them failed: `no_digest`, `bad_digest`,
    /// `bad_cipher_length` or `not_mbus` ([`Rejection::code`]).
    pub reason: &'static str,
    /// How many failed from this source.
    pub datagrams: u64,
}

/// The sources seen so far, in the order they first failed.
#[derive(Debug, Default)]
pub(crate) struct Unauthenticated {
    sources: Vec<UnauthenticatedSource>,
    /// Failures from sources beyond [`MAX_SOURCES`].
    others: u64,
}

impl Unauthenticated {
    /// Records a datagram from `from` that failed with `rejection` (one that
    /// did authenticate but is malformed is not recorded here).
    pub(crate) fn record(&mut self, from: SocketAddr, rejection: &Rejection) {
        if matches!(rejection, Rejection::Malformed(_)) {
            return;
        }
        if let Some(s) = self.sources.iter_mut().find(|s| s.from == from) {
            s.datagrams += 1;
            return;
        }
        if self.sources.len() >= MAX_SOURCES {
            if self.others == 0 {
                tracing::warn!(
                    "datagrams that fail authentication come from more than {MAX_SOURCES} \
                     sources; the others are only counted"
                );
            }
            self.others += 1;
            return;
        }
        tracing::warn!(
            "ignoring datagrams from {from} that fail authentication: {}: a different key?",
            describe(rejection)
        );
        self.sources.push(UnauthenticatedSource {
            from,
            reason: rejection.code(),
            datagrams: 1,
        });
    }

    /// The sources remembered, in the order they first failed.
    pub(crate) fn sources(&self) -> &[UnauthenticatedSource] {
        &self.sources
    }
}

/// A short human description of a rejection.
fn describe(rejection: &Rejection) -> &'static str {
    match rejection {
        Rejection::NoDigest => "no digest",
        Rejection::BadDigest => "bad digest",
        Rejection::BadCipherLength { .. } => "not whole cipher blocks",
        Rejection::NotMbus { .. } => "not Mbus after decryption",
        Rejection::Malformed(_) => "malformed",
    }
}

/// One line for a tool to add to an answer that found no entity, naming the
/// first source whose datagrams failed authentication; `None` if there was
/// none.
pub fn hint(sources: &[UnauthenticatedSource]) -> Option<String> {
    let first = sources.first()?;
    let total: u64 = sources.iter().map(|s| s.datagrams).sum();
    let more = match sources.len() {
        1 => String::new(),
        n => format!(" and {} other source(s)", n - 1),
    };
    Some(format!(
        "{total} datagram(s) from {}{more} failed authentication ({}): \
         is the bus using a different key?",
        first.from,
        first.reason.replace('_', " ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_source_is_remembered_once_and_the_list_is_bounded() {
        let mut u = Unauthenticated::default();
        let a: SocketAddr = "127.0.0.1:40312".parse().unwrap();
        u.record(a, &Rejection::BadDigest);
        u.record(a, &Rejection::BadDigest);
        assert_eq!(u.sources().len(), 1);
        assert_eq!(u.sources()[0].datagrams, 2);
        assert_eq!(u.sources()[0].reason, "bad_digest");
        for port in 0..200u16 {
            u.record(
                SocketAddr::from(([127, 0, 0, 2], port)),
                &Rejection::NoDigest,
            );
        }
        assert_eq!(u.sources().len(), MAX_SOURCES);
        assert_eq!(u.others, 200 - (MAX_SOURCES as u64 - 1));
        let hint = hint(u.sources()).unwrap();
        assert!(
            hint.contains("127.0.0.1:40312") && hint.contains("bad digest"),
            "{hint}"
        );
        assert!(hint.contains("different key"), "{hint}");
    }

    #[test]
    fn malformed_datagrams_are_not_taken_for_a_key_problem() {
        let mut u = Unauthenticated::default();
        let e = crate::wire::Message::parse(b"nonsense").unwrap_err();
        u.record("127.0.0.1:1".parse().unwrap(), &Rejection::Malformed(e));
        assert!(u.sources().is_empty());
        assert!(hint(u.sources()).is_none());
    }
}
