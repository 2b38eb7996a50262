//! Authentication and encryption of datagrams (RFC 3259 §11).
//!
//! A datagram is `digest LF message` (or `digest CRLF message`), where the digest
//! is the base64 of the first 12 octets of an HMAC over every byte after the
//! digest line, and the message is encrypted first when a cipher is configured
//! (encrypt-then-MAC, §11.4).
//!
//! - [`seal`] turns a [`Message`](crate::wire::Message) into a datagram.
//! - [`open`] verifies (in constant time), decrypts and parses a datagram, or says
//!   why it was rejected ([`Rejection`]).
//! - [`Keys`] holds the prepared MAC and cipher keys; build it once per
//!   configuration, it is cheap to share.

mod cipher;
mod datagram;
mod mac;

pub use cipher::{CipherAlgo, KeyError};
pub use datagram::{
    open, open_unverified, seal, seal_raw, seal_view, sealed_len, Rejection, DIGEST_LEN,
};
pub use mac::HashAlgo;

use cipher::Cipher;
use mac::MacKey;

/// The prepared keys of one bus: an HMAC key and an optional cipher key.
#[derive(Clone)]
pub struct Keys {
    mac: MacKey,
    cipher: Cipher,
}

impl Keys {
    /// Prepares keys from raw octets. The HMAC key may have any length of at
    /// least one octet (RFC 3259 §11.3; shorter than 16/20 octets is weak but
    /// what UCL generates); the cipher key must have the algorithm's exact length.
    pub fn new(
        hash: HashAlgo,
        hash_key: &[u8],
        cipher: CipherAlgo,
        cipher_key: &[u8],
    ) -> Result<Keys, KeyError> {
        if hash_key.is_empty() {
            return Err(KeyError::EmptyHashKey);
        }
        Ok(Keys {
            mac: MacKey::new(hash, hash_key)?,
            cipher: Cipher::new(cipher, cipher_key)?,
        })
    }

    /// HMAC-MD5-96 without encryption, the combination every deployed peer
    /// speaks.
    pub fn md5_noencr(hash_key: &[u8]) -> Result<Keys, KeyError> {
        Keys::new(HashAlgo::HmacMd5_96, hash_key, CipherAlgo::None, &[])
    }

    /// The HMAC algorithm.
    pub fn hash_algo(&self) -> HashAlgo {
        self.mac.algo()
    }

    /// The cipher algorithm.
    pub fn cipher_algo(&self) -> CipherAlgo {
        self.cipher.algo()
    }
}

impl std::fmt::Debug for Keys {
    /// Never prints key material.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keys")
            .field("hash", &self.hash_algo())
            .field("cipher", &self.cipher_algo())
            .finish_non_exhaustive()
    }
}
