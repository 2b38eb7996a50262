//! Fresh keys for a new configuration (RFC 3259 §11.2, §11.3).
//!
//! The RFC's examples use 12-octet keys; we generate 16 random octets for
//! HMAC-MD5-96 and 20 for HMAC-SHA1-96 (the hash's own length, as RFC 2104
//! advises), and a cipher key of the cipher's length. When a file is read, a
//! hash key of any length from one octet is accepted (a short one with a
//! warning); a cipher key must have the cipher's length.

use crate::auth::{CipherAlgo, HashAlgo};

use super::{Config, GroupAddress, KeyEntry, DEFAULT_GROUP_V4, DEFAULT_PORT};

impl Config {
    /// A new configuration with random keys from the operating system's CSPRNG:
    /// 16 octets for HMAC-MD5-96, 20 for HMAC-SHA1-96, and the cipher's key
    /// length (DES keys with odd parity, as UCL requires). ADDRESS and PORT are
    /// written explicitly (239.255.255.247:47000) so UCL programs, whose default
    /// group differs, meet us.
    pub fn generate(hash: HashAlgo, cipher: CipherAlgo) -> Config {
        let mut hash_key = vec![0u8; hash.native_key_len()];
        rand::fill(&mut hash_key[..]);
        let mut cipher_key = vec![0u8; cipher.key_len()];
        rand::fill(&mut cipher_key[..]);
        if matches!(cipher, CipherAlgo::Des | CipherAlgo::TripleDes) {
            set_odd_parity(&mut cipher_key);
        }
        let mut config = Config::with_keys(
            KeyEntry {
                algo: hash,
                key: hash_key,
            },
            KeyEntry {
                algo: cipher,
                key: cipher_key,
            },
        );
        config.address = Some(GroupAddress::Ip(DEFAULT_GROUP_V4.into()));
        config.port = Some(DEFAULT_PORT);
        config
    }
}

/// Sets the least significant bit of each octet so that it has an odd number of
/// one bits (RFC 1423 DES key parity).
pub(crate) fn set_odd_parity(key: &mut [u8]) {
    for b in key {
        let high = *b & 0xfe;
        *b = high | u8::from(high.count_ones() % 2 == 0);
    }
}

/// True if every octet has odd parity.
pub(crate) fn has_odd_parity(key: &[u8]) -> bool {
    key.iter().all(|b| b.count_ones() % 2 == 1)
}
