//! The fuzz target's body, kept in the library so that an ordinary test can run
//! it over the seed corpus (`fuzz/corpus/open`) on stable Rust.

use crate::auth::{open, seal, CipherAlgo, HashAlgo, Keys};
use crate::wire::{Framing, Message};

/// Feeds one input to the receive function under two key sets (plaintext and
/// DES), and to the parser directly. Whatever parses must re-encode and parse
/// back to the same message. Panics only on a real bug.
pub fn open_target(data: &[u8]) {
    let plain = Keys::md5_noencr(b"123156189112");
    let des = Keys::new(
        HashAlgo::HmacMd5_96,
        b"123156189112",
        CipherAlgo::Des,
        &[0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef],
    );
    for keys in [plain.ok(), des.ok()].into_iter().flatten() {
        if let Ok(msg) = open(data, &keys) {
            round_trip(&msg, &keys);
        }
    }
    if let (Ok(msg), Ok(keys)) = (Message::parse(data), Keys::md5_noencr(b"k")) {
        round_trip(&msg, &keys);
    }
}

fn round_trip(msg: &Message, keys: &Keys) {
    for framing in [Framing::Lf, Framing::Crlf] {
        let text = match msg.encode(framing) {
            Ok(t) => t,
            Err(e) => panic!("a parsed message must encode: {e}"),
        };
        assert_eq!(
            Message::parse(&text).as_ref(),
            Ok(msg),
            "parse(encode(m)) != m"
        );
        if let Ok(datagram) = seal(msg, keys, framing) {
            assert_eq!(
                open(&datagram, keys).as_ref(),
                Ok(msg),
                "open(seal(m)) != m"
            );
        }
    }
}
