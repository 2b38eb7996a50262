//! HMAC-MD5-96 and HMAC-SHA1-96 (RFC 3259 §11.3, RFC 2104).

use std::fmt;

use hmac::{Hmac, KeyInit, Mac};
use md5::Md5;

use super::KeyError;
use sha1::Sha1;

/// The HMAC algorithms of RFC 3259 §11.3, both truncated to 96 bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HashAlgo {
    /// `HMAC-MD5-96`: what every deployed peer speaks (RFC: MAY).
    HmacMd5_96,
    /// `HMAC-SHA1-96`: the RFC's MUST.
    HmacSha1_96,
}

impl HashAlgo {
    /// The config file's algo-id.
    pub fn config_name(self) -> &'static str {
        match self {
            HashAlgo::HmacMd5_96 => "HMAC-MD5-96",
            HashAlgo::HmacSha1_96 => "HMAC-SHA1-96",
        }
    }

    /// Parses an algo-id, in any case.
    pub fn from_config_name(name: &str) -> Option<HashAlgo> {
        [HashAlgo::HmacMd5_96, HashAlgo::HmacSha1_96]
            .into_iter()
            .find(|a| a.config_name().eq_ignore_ascii_case(name))
    }

    /// The key length we generate: the hash's output length (RFC 2104's advice).
    pub fn native_key_len(self) -> usize {
        match self {
            HashAlgo::HmacMd5_96 => 16,
            HashAlgo::HmacSha1_96 => 20,
        }
    }
}

impl fmt::Display for HashAlgo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.config_name())
    }
}

/// A keyed HMAC whose inner and outer pads are already hashed, so that each
/// message costs only its own blocks.
#[derive(Clone)]
pub(crate) enum MacKey {
    Md5(Hmac<Md5>),
    Sha1(Hmac<Sha1>),
}

/// The truncated MAC length in octets (96 bits).
pub(crate) const MAC_LEN: usize = 12;

impl MacKey {
    /// Hashes the key's pads. HMAC takes keys of any length (longer ones are
    /// hashed first), so the error is not expected; it is passed on rather than
    /// papered over.
    pub(crate) fn new(algo: HashAlgo, key: &[u8]) -> Result<MacKey, KeyError> {
        let refused = |_| KeyError::BadHashKey(algo);
        Ok(match algo {
            HashAlgo::HmacMd5_96 => {
                MacKey::Md5(<Hmac<Md5> as KeyInit>::new_from_slice(key).map_err(refused)?)
            }
            HashAlgo::HmacSha1_96 => {
                MacKey::Sha1(<Hmac<Sha1> as KeyInit>::new_from_slice(key).map_err(refused)?)
            }
        })
    }

    pub(crate) fn algo(&self) -> HashAlgo {
        match self {
            MacKey::Md5(_) => HashAlgo::HmacMd5_96,
            MacKey::Sha1(_) => HashAlgo::HmacSha1_96,
        }
    }

    /// The leftmost 96 bits of the HMAC of `data`.
    pub(crate) fn compute(&self, data: &[u8]) -> [u8; MAC_LEN] {
        let mut out = [0u8; MAC_LEN];
        match self {
            MacKey::Md5(m) => {
                let mut m = m.clone();
                m.update(data);
                out.copy_from_slice(&m.finalize().into_bytes()[..MAC_LEN]);
            }
            MacKey::Sha1(m) => {
                let mut m = m.clone();
                m.update(data);
                out.copy_from_slice(&m.finalize().into_bytes()[..MAC_LEN]);
            }
        }
        out
    }

    /// Constant-time check of a 96-bit tag.
    pub(crate) fn verify(&self, data: &[u8], tag: &[u8; MAC_LEN]) -> bool {
        match self {
            MacKey::Md5(m) => {
                let mut m = m.clone();
                m.update(data);
                m.verify_truncated_left(tag).is_ok()
            }
            MacKey::Sha1(m) => {
                let mut m = m.clone();
                m.update(data);
                m.verify_truncated_left(tag).is_ok()
            }
        }
    }
}
