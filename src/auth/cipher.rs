//! The ciphers: DES-CBC, AES-128-CBC and 3DES-CBC with an all-zero IV per
//! message and zero padding (RFC 3259 §11.2, §11.4). The RFC fixes CBC for
//! DES only and names no mode for the others; CBC with a zero IV is how the UCL
//! library does DES, and we do AES and 3DES the same way.

use std::fmt;

use cbc::cipher::block_padding::NoPadding;
use cbc::cipher::{BlockCipherDecrypt, BlockModeDecrypt, BlockModeEncrypt, InnerIvInit, KeyInit};

/// The encryption algorithms of the `ENCRYPTIONKEY` config entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CipherAlgo {
    /// `NOENCR`: no encryption (the default).
    None,
    /// `DES`: DES-CBC, 8-octet keys with odd parity (UCL-compatible).
    Des,
    /// `AES`: AES-128-CBC, 16-octet keys (the RFC's MUST).
    Aes,
    /// `3DES`: triple DES (EDE3) in CBC mode, 24-octet keys.
    TripleDes,
}

impl CipherAlgo {
    /// Every algorithm we implement.
    pub const ALL: [CipherAlgo; 4] = [
        CipherAlgo::None,
        CipherAlgo::Des,
        CipherAlgo::Aes,
        CipherAlgo::TripleDes,
    ];

    /// The config file's algo-id.
    pub fn config_name(self) -> &'static str {
        match self {
            CipherAlgo::None => "NOENCR",
            CipherAlgo::Des => "DES",
            CipherAlgo::Aes => "AES",
            CipherAlgo::TripleDes => "3DES",
        }
    }

    /// Parses an algo-id, in any case.
    pub fn from_config_name(name: &str) -> Option<CipherAlgo> {
        CipherAlgo::ALL
            .into_iter()
            .find(|a| a.config_name().eq_ignore_ascii_case(name))
    }

    /// The key length in octets (0 for NOENCR).
    pub fn key_len(self) -> usize {
        match self {
            CipherAlgo::None => 0,
            CipherAlgo::Des => 8,
            CipherAlgo::Aes => 16,
            CipherAlgo::TripleDes => 24,
        }
    }

    /// The block size in octets (1 for NOENCR).
    pub fn block_len(self) -> usize {
        match self {
            CipherAlgo::None => 1,
            CipherAlgo::Des | CipherAlgo::TripleDes => 8,
            CipherAlgo::Aes => 16,
        }
    }
}

impl fmt::Display for CipherAlgo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.config_name())
    }
}

/// A key that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The key is not the algorithm's length (RFC 3259 §11.2: a shorter key
    /// MUST NOT be used).
    #[error("{algo} needs a {expected}-octet key, this one has {got} octets")]
    WrongLength {
        /// The algorithm.
        algo: CipherAlgo,
        /// Its key length.
        expected: usize,
        /// The configured key's length.
        got: usize,
    },
    /// An empty HMAC key.
    #[error("the hash key is empty")]
    EmptyHashKey,
    /// The HMAC implementation refused the key.
    #[error("{0} cannot use this key")]
    BadHashKey(super::HashAlgo),
}

/// A prepared cipher (key schedule computed once).
#[derive(Clone)]
pub(crate) enum Cipher {
    None,
    Des(des::Des),
    Aes(aes::Aes128),
    TripleDes(des::TdesEde3),
}

impl Cipher {
    pub(crate) fn new(algo: CipherAlgo, key: &[u8]) -> Result<Cipher, KeyError> {
        let wrong = || KeyError::WrongLength {
            algo,
            expected: algo.key_len(),
            got: key.len(),
        };
        Ok(match algo {
            CipherAlgo::None => Cipher::None,
            CipherAlgo::Des => Cipher::Des(des::Des::new_from_slice(key).map_err(|_| wrong())?),
            CipherAlgo::Aes => Cipher::Aes(aes::Aes128::new_from_slice(key).map_err(|_| wrong())?),
            CipherAlgo::TripleDes => {
                Cipher::TripleDes(des::TdesEde3::new_from_slice(key).map_err(|_| wrong())?)
            }
        })
    }

    pub(crate) fn algo(&self) -> CipherAlgo {
        match self {
            Cipher::None => CipherAlgo::None,
            Cipher::Des(_) => CipherAlgo::Des,
            Cipher::Aes(_) => CipherAlgo::Aes,
            Cipher::TripleDes(_) => CipherAlgo::TripleDes,
        }
    }

    /// Encrypts `buf` in place; its length must be a multiple of the block size
    /// (the caller zero-pads).
    pub(crate) fn encrypt(&self, buf: &mut [u8]) {
        let n = buf.len();
        match self {
            Cipher::None => {}
            Cipher::Des(c) => {
                let _ = cbc_enc(c.clone()).encrypt_padded::<NoPadding>(buf, n);
            }
            Cipher::Aes(c) => {
                let _ = cbc_enc(c.clone()).encrypt_padded::<NoPadding>(buf, n);
            }
            Cipher::TripleDes(c) => {
                let _ = cbc_enc(c.clone()).encrypt_padded::<NoPadding>(buf, n);
            }
        }
    }

    /// Decrypts `buf` in place; returns false if its length is not a multiple
    /// of the block size.
    pub(crate) fn decrypt(&self, buf: &mut [u8]) -> bool {
        if buf.len() % self.algo().block_len() != 0 {
            return false;
        }
        match self {
            Cipher::None => true,
            Cipher::Des(c) => cbc_dec(c.clone()).decrypt_padded::<NoPadding>(buf).is_ok(),
            Cipher::Aes(c) => cbc_dec(c.clone()).decrypt_padded::<NoPadding>(buf).is_ok(),
            Cipher::TripleDes(c) => cbc_dec(c.clone()).decrypt_padded::<NoPadding>(buf).is_ok(),
        }
    }
}

/// CBC with an all-zero IV, restarted for every message (what UCL does).
fn cbc_enc<C: cbc::cipher::BlockCipherEncrypt + Clone>(c: C) -> cbc::Encryptor<C> {
    cbc::Encryptor::inner_iv_init(c, &Default::default())
}

fn cbc_dec<C: BlockCipherDecrypt + Clone>(c: C) -> cbc::Decryptor<C> {
    cbc::Decryptor::inner_iv_init(c, &Default::default())
}
