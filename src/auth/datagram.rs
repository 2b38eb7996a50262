//! Sealing a message into a datagram and opening a datagram into a message
//! (RFC 3259 §11.4): on receipt, split off the digest line, verify it, decrypt,
//! check for `mbus/`, then parse, in that order.

use std::borrow::Cow;

use base64::Engine as _;

use super::mac::MAC_LEN;
use super::Keys;
use crate::wire::{EncodeError, Framing, Message, MessageView, ParseError, MAX_DATAGRAM};

/// Length of the base64 digest at the start of every datagram (12 octets → 16 chars).
pub const DIGEST_LEN: usize = 16;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// Why a datagram was not accepted, in pipeline order.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Rejection {
    /// No digest line: no LF within the first 18 bytes, or the line is not 16
    /// base64 characters.
    #[error("no digest line (16 base64 characters, then LF or CRLF)")]
    NoDigest,
    /// The HMAC does not match: wrong key, or the datagram was altered.
    #[error("digest does not match (wrong key, or altered in transit)")]
    BadDigest,
    /// The ciphertext is not a whole number of cipher blocks.
    #[error("ciphertext of {len} bytes is not a multiple of the {block}-byte block")]
    BadCipherLength {
        /// The ciphertext length.
        len: usize,
        /// The cipher's block size.
        block: usize,
        /// Where the ciphertext starts in the datagram.
        offset: usize,
    },
    /// After decryption the message does not start with `mbus/` (wrong
    /// encryption key, or not an Mbus message).
    #[error("decrypted message does not start with \"mbus/\" (wrong encryption key?)")]
    NotMbus {
        /// Where the message starts in the datagram.
        offset: usize,
    },
    /// Authenticated, but the message breaks the grammar. The error's offset is
    /// counted from the start of the datagram.
    #[error(transparent)]
    Malformed(ParseError),
}

impl Rejection {
    /// The short machine name: `no_digest`, `bad_digest`, `bad_cipher_length`,
    /// `not_mbus` or `malformed`.
    pub fn code(&self) -> &'static str {
        match self {
            Rejection::NoDigest => "no_digest",
            Rejection::BadDigest => "bad_digest",
            Rejection::BadCipherLength { .. } => "bad_cipher_length",
            Rejection::NotMbus { .. } => "not_mbus",
            Rejection::Malformed(_) => "malformed",
        }
    }

    /// The byte offset in the datagram where the problem was found.
    pub fn offset(&self) -> usize {
        match self {
            Rejection::NoDigest | Rejection::BadDigest => 0,
            Rejection::BadCipherLength { offset, .. } | Rejection::NotMbus { offset } => *offset,
            Rejection::Malformed(e) => e.offset,
        }
    }

    /// What is wrong, without the offset (which [`Rejection::offset`] gives):
    /// for a malformed body the grammar rule it breaks.
    pub fn reason(&self) -> String {
        match self {
            Rejection::Malformed(e) => e.rule.to_string(),
            other => other.to_string(),
        }
    }

    /// True if the datagram passed authentication (only a malformed body is
    /// rejected after that).
    pub fn is_authenticated(&self) -> bool {
        matches!(self, Rejection::Malformed(_))
    }
}

/// Encodes, encrypts (if configured) and signs `msg` into one datagram.
///
/// The digest line ends with LF or CRLF per `framing`, like the message lines.
pub fn seal(msg: &Message, keys: &Keys, framing: Framing) -> Result<Vec<u8>, EncodeError> {
    seal_view(&msg.view(), keys, framing)
}

/// [`seal`] for a message made of borrowed parts: what a sender uses to avoid
/// building a [`Message`] for every datagram.
pub fn seal_view(
    msg: &MessageView<'_>,
    keys: &Keys,
    framing: Framing,
) -> Result<Vec<u8>, EncodeError> {
    let mut out = digest_placeholder(framing);
    let body = out.len();
    msg.encode_into(&mut out, framing)?;
    finish(out, body, keys)
}

/// Encrypts (if configured) and signs bytes that are already a message, e.g.
/// to reproduce another implementation's exact text (UCL's padded SeqNums) or
/// to craft malformed traffic for tests. Nothing about `plaintext` is checked.
pub fn seal_raw(plaintext: &[u8], keys: &Keys, framing: Framing) -> Result<Vec<u8>, EncodeError> {
    let mut out = digest_placeholder(framing);
    let body = out.len();
    out.extend_from_slice(plaintext);
    finish(out, body, keys)
}

/// The size of the datagram that [`seal_view`] makes of a message whose
/// text (header and command lines, with their newlines) is `body` octets
/// long: the digest line plus the body, padded to the cipher's block.
pub fn sealed_len(body: usize, keys: &Keys, framing: Framing) -> usize {
    let block = keys.cipher.algo().block_len();
    DIGEST_LEN + framing.newline().len() + body.div_ceil(block) * block
}

fn digest_placeholder(framing: Framing) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    out.resize(DIGEST_LEN, b'=');
    out.extend_from_slice(framing.newline().as_bytes());
    out
}

/// Zero-pads and encrypts `out[body..]`, then writes the digest in front.
fn finish(mut out: Vec<u8>, body: usize, keys: &Keys) -> Result<Vec<u8>, EncodeError> {
    let block = keys.cipher.algo().block_len();
    let padded = (out.len() - body).div_ceil(block) * block;
    out.resize(body + padded, 0);
    if out.len() > MAX_DATAGRAM {
        return Err(EncodeError::TooLarge(out.len()));
    }
    keys.cipher.encrypt(&mut out[body..]);
    let mac = keys.mac.compute(&out[body..]);
    // 12 octets always encode to exactly 16 base64 characters.
    let _ = B64.encode_slice(mac, &mut out[..DIGEST_LEN]);
    Ok(out)
}

/// Verifies, decrypts and parses one datagram.
///
/// The digest line ends at the first LF (one CR before it is dropped), so LF and
/// CRLF senders are both accepted; the HMAC covers every byte after that LF and
/// is checked in constant time before anything else is looked at.
pub fn open(datagram: &[u8], keys: &Keys) -> Result<Message, Rejection> {
    let (tag, body_at) = digest(datagram).ok_or(Rejection::NoDigest)?;
    let body = &datagram[body_at..];
    if !keys.mac.verify(body, &tag) {
        return Err(Rejection::BadDigest);
    }
    let plain: Cow<'_, [u8]> = if keys.cipher.algo().block_len() == 1 {
        Cow::Borrowed(body)
    } else {
        let mut buf = body.to_vec();
        if !keys.cipher.decrypt(&mut buf) {
            return Err(Rejection::BadCipherLength {
                len: body.len(),
                block: keys.cipher.algo().block_len(),
                offset: body_at,
            });
        }
        if !buf.starts_with(b"mbus/") {
            return Err(Rejection::NotMbus { offset: body_at });
        }
        Cow::Owned(buf)
    };
    // CBC keeps lengths, so a plaintext offset is also a datagram offset.
    Message::parse(&plain).map_err(|e| {
        Rejection::Malformed(ParseError {
            offset: e.offset + body_at,
            rule: e.rule,
        })
    })
}

/// Parses a datagram without keys, checking only that it has a digest line
/// (for showing captures when no configuration is at hand). Nothing about
/// the result is authenticated, and an encrypted body reads as
/// [`Rejection::NotMbus`].
pub fn open_unverified(datagram: &[u8]) -> Result<Message, Rejection> {
    let (_, body_at) = digest(datagram).ok_or(Rejection::NoDigest)?;
    let body = &datagram[body_at..];
    if !body.starts_with(b"mbus/") {
        return Err(Rejection::NotMbus { offset: body_at });
    }
    Message::parse(body).map_err(|e| {
        Rejection::Malformed(ParseError {
            offset: e.offset + body_at,
            rule: e.rule,
        })
    })
}

/// Finds the digest line; returns the decoded tag and where the body starts.
fn digest(datagram: &[u8]) -> Option<([u8; MAC_LEN], usize)> {
    let head = &datagram[..datagram.len().min(DIGEST_LEN + 2)];
    let lf = head.iter().position(|&c| c == b'\n')?;
    let line = &head[..lf];
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.len() != DIGEST_LEN {
        return None;
    }
    let mut tag = [0u8; MAC_LEN];
    match B64.decode_slice(line, &mut tag) {
        Ok(MAC_LEN) => Some((tag, lf + 1)),
        _ => None,
    }
}
