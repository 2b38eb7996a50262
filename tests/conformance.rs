//! The project's conformance cases 1, 2, 4–7, 14 (encode/parse), 15, 16 and
//! 22–24 (RFC 3259 §3–§5, §11).

mod common;

use common::*;
use rmbus::auth::{open, seal, seal_raw, CipherAlgo, HashAlgo, Rejection};
use rmbus::config::{Config, ConfigError, Scope};
use rmbus::wire::{Framing, Message, ParseError, Rule, Value};

fn digest(datagram: &[u8]) -> String {
    String::from_utf8(datagram[..16].to_vec()).unwrap()
}

/// V1's header with the given command text, sealed with K_md5 (so only the
/// body's grammar decides).
fn with_command(command: &str) -> Vec<u8> {
    let body = format!("mbus/1.0 0 1020000000000 U {A} () ()\n{command}\n");
    seal_raw(body.as_bytes(), &md5(), Framing::Lf).unwrap()
}

fn with_header(header: &str) -> Vec<u8> {
    seal_raw(
        format!("{header}\nmbus.hello ()\n").as_bytes(),
        &md5(),
        Framing::Lf,
    )
    .unwrap()
}

fn malformed_rule(datagram: &[u8]) -> Rule {
    match open(datagram, &md5()) {
        Err(Rejection::Malformed(ParseError { rule, .. })) => rule,
        other => panic!("expected a malformed rejection, got {other:?}"),
    }
}

#[test]
fn case_01_digest_generation_md5() {
    let msg = Message::parse(V1_BODY).unwrap();
    let datagram = seal(&msg, &md5(), Framing::Crlf).unwrap();
    assert_eq!(datagram, wire("qJsDJDwAMQVkzhxe", b"\r\n", V1_BODY));
}

#[test]
fn case_02_digest_generation_sha1() {
    let msg = Message::parse(V5_BODY).unwrap();
    assert_eq!(
        digest(&seal(&msg, &sha1(), Framing::Crlf).unwrap()),
        "wkOZCR8G9YXGen+q"
    );
}

#[test]
fn case_04_tampered_payload_is_discarded() {
    let mut datagram = wire("qJsDJDwAMQVkzhxe", b"\r\n", V1_BODY);
    let last_paren = datagram.len() - 2;
    datagram[last_paren] ^= 0x01;
    assert_eq!(open(&datagram, &md5()), Err(Rejection::BadDigest));
}

#[test]
fn case_05_wrong_key_is_discarded() {
    let datagram = wire("qJsDJDwAMQVkzhxe", b"\r\n", V1_BODY);
    let wrong = rmbus::auth::Keys::md5_noencr(b"123156189113").unwrap();
    assert_eq!(open(&datagram, &wrong), Err(Rejection::BadDigest));
}

#[test]
fn case_06_ucl_framing_and_its_crlf_variant() {
    let lf = wire("xUcJkx5G/Arv28zd", b"\n", V4_BODY);
    let crlf = wire("xUcJkx5G/Arv28zd", b"\r\n", V4_BODY);
    for datagram in [&lf, &crlf] {
        let msg = open(datagram, &md5()).unwrap();
        assert_eq!(msg.header.seq, 1);
        assert_eq!(msg.header.src, addr(A));
        assert!(msg.header.dst.is_empty());
        assert_eq!(msg.commands.len(), 1);
        assert_eq!(msg.commands[0].name, "mbus.hello");
    }
    // A UCL receiver hashes from byte 17: for the CRLF variant that region
    // starts with the LF, and its digest differs, which is why we send LF.
    let ucl_view = &crlf[17..];
    assert_eq!(
        digest(&seal_raw(ucl_view, &md5(), Framing::Lf).unwrap()),
        "BFOeKKVxTmd0bQ5E"
    );
}

#[test]
fn case_07_bad_protocol_id_is_discarded() {
    for header in [
        format!("mbus/1.1 0 1020000000000 U {A} () ()"),
        format!("MBUS/1.0 0 1020000000000 U {A} () ()"),
        format!("mbus/1.00 0 1020000000000 U {A} () ()"),
    ] {
        assert_eq!(
            malformed_rule(&with_header(&header)),
            Rule::ProtocolId,
            "{header}"
        );
    }
}

#[test]
fn case_14_seqnum_range() {
    let max = with_header(&format!("mbus/1.0 4294967295 1 U {A} () ()"));
    let msg = open(&max, &md5()).unwrap();
    assert_eq!(msg.header.seq, 4_294_967_295);
    let reencoded = Message::parse(&msg.encode(Framing::Lf).unwrap()).unwrap();
    assert_eq!(reencoded.header.seq, u32::MAX);

    let over = with_header(&format!("mbus/1.0 4294967296 1 U {A} () ()"));
    assert_eq!(malformed_rule(&over), Rule::SeqNum);
    let eleven_digits = with_header(&format!("mbus/1.0 00000000001 1 U {A} () ()"));
    assert_eq!(malformed_rule(&eleven_digits), Rule::SeqNum);
    // An ack entry is a SeqNum too.
    let ack_over = with_header(&format!("mbus/1.0 1 1 U {A} () (4294967296)"));
    assert_eq!(malformed_rule(&ack_over), Rule::AckList);
}

#[test]
fn case_15_value_grammar() {
    for (arg, rule) in [
        (".5", Rule::Value),
        ("5.", Rule::Float),
        ("1e3", Rule::Integer),
        ("+1", Rule::Value),
        ("1abc", Rule::Integer),
        ("\"unterminated", Rule::String),
        ("(1(2))", Rule::List),
        ("<a>", Rule::Data),
    ] {
        let datagram = with_command(&format!("tool.x ({arg})"));
        assert_eq!(malformed_rule(&datagram), rule, "argument {arg}");
    }
    // The whole message goes, even when a good command came first: rmbus parses
    // the whole body before acting on any of it.
    let datagram = with_command("tool.good (1)\ntool.bad (.5)");
    assert_eq!(malformed_rule(&datagram), Rule::Value);

    let ok = open(&with_command("tool.x (() <> \"\" -0)"), &md5()).unwrap();
    assert_eq!(
        ok.commands[0].args,
        vec![
            Value::List(vec![]),
            Value::Data(vec![]),
            Value::string(""),
            Value::Integer(0)
        ]
    );
}

#[test]
fn case_15_malformed_offset_points_at_the_problem() {
    let datagram = with_command("tool.x (1 .5)");
    let Err(Rejection::Malformed(e)) = open(&datagram, &md5()) else {
        panic!("expected malformed");
    };
    assert_eq!(&datagram[e.offset..e.offset + 2], b".5");
}

#[test]
fn case_16_address_grammar() {
    let tag33 = "a".repeat(33);
    let value65 = "v".repeat(65);
    for (dst, rule) in [
        (format!("({tag33}:x)"), Rule::AddressTag),
        (format!("(a:{value65})"), Rule::AddressValue),
        ("(a:b(c)".to_owned(), Rule::AddressValue),
        ("(mod1:x)".to_owned(), Rule::AddressTag),
        ("(a:1 a:2)".to_owned(), Rule::DuplicateTag),
    ] {
        let datagram = with_header(&format!("mbus/1.0 0 1 U {A} {dst} ()"));
        assert_eq!(malformed_rule(&datagram), rule, "destination {dst}");
    }
    let ok = open(
        &with_header(&format!("mbus/1.0 0 1 U {A} ( a:b   c:d ) ()")),
        &md5(),
    )
    .unwrap();
    assert_eq!(ok.header.dst, addr("(c:d a:b)"));
    // 32-letter tags and 64-character values are the limits, not errors.
    let limit = format!("({}:{})", "a".repeat(32), "v".repeat(64));
    assert!(open(
        &with_header(&format!("mbus/1.0 0 1 U {A} {limit} ()")),
        &md5()
    )
    .is_ok());

    // pyMbus leaves `id` out of its source addresses: accepted, and flagged.
    let no_id = open(
        &with_header("mbus/1.0 0 1 U (app:test module:engine) () ()"),
        &md5(),
    )
    .unwrap();
    assert_eq!(no_id.header.src, addr("(app:test module:engine)"));
    assert!(no_id.outside_rfc()[0].contains("has no id element"));
}

const RFC_EXAMPLE: &str = "[MBUS]\nCONFIG_VERSION=1\nHASHKEY=(HMAC-MD5-96,MTIzMTU2MTg5MTEy)\nENCRYPTIONKEY=(DES,MTIzMTU2MQ==)\nSCOPE=HOSTLOCAL\nADDRESS=224.255.222.239\nPORT=47000\n";

#[test]
fn case_22_config_parse_rfc_example() {
    // The example's DES key decodes to 7 octets: refused, naming line and key.
    match Config::parse(RFC_EXAMPLE) {
        Err(ConfigError::Invalid {
            line, key, value, ..
        }) => {
            assert_eq!(
                (line, key.as_str(), value.as_str()),
                (4, "ENCRYPTIONKEY", "(DES,MTIzMTU2MQ==)")
            );
        }
        other => panic!("expected the 7-octet DES key to be refused, got {other:?}"),
    }
    let usable = RFC_EXAMPLE.replace("(DES,MTIzMTU2MQ==)", "(NOENCR,)");
    let config = Config::parse(&usable).unwrap();
    assert_eq!(config.hash.algo, HashAlgo::HmacMd5_96);
    assert_eq!(config.hash.key, b"123156189112");
    assert_eq!(config.scope, Scope::HostLocal);
    assert_eq!(config.scope.ttl(), 0);
    assert_eq!(
        config.group_addr(),
        "224.255.222.239:47000".parse().unwrap()
    );
    assert_eq!(config.encryption.algo, CipherAlgo::None);

    let defaults = usable.replace("ADDRESS=224.255.222.239\nPORT=47000\n", "");
    let config = Config::parse(&defaults).unwrap();
    assert_eq!(
        config.group_addr(),
        "239.255.255.247:47000".parse().unwrap()
    );
}

#[test]
fn case_23_des_decrypt_and_wrong_des_key() {
    let datagram = wire("fj/524zXIxkSNiIF", b"\n", &hex(V7_CIPHERTEXT_HEX));
    let msg = open(&datagram, &md5_des(&K_DES)).unwrap();
    assert_eq!(msg.commands[0].name, "mbus.hello");
    let wrong = md5_des(&[1; 8]);
    assert_eq!(
        open(&datagram, &wrong),
        Err(Rejection::NotMbus { offset: 17 })
    );
}

#[test]
fn case_24_padding_is_exact() {
    let plaintext = [b"mbus/1.0 ".as_slice(), &[b'x'; 87]].concat();
    assert_eq!(plaintext.len(), 96);
    let sealed = seal_raw(&plaintext, &md5_des(&K_DES), Framing::Lf).unwrap();
    assert_eq!(sealed.len() - 17, 96);
    let sealed = seal_raw(&plaintext[..95], &md5_des(&K_DES), Framing::Lf).unwrap();
    assert_eq!(sealed.len() - 17, 96, "95 bytes pad to one more block");
}

#[test]
fn cipher_length_must_be_whole_blocks() {
    // Signed with the right HMAC key, but 13 bytes cannot be DES ciphertext:
    // refused before decrypting.
    let datagram = seal_raw(&[b'm'; 13], &md5(), Framing::Lf).unwrap();
    assert!(matches!(
        open(&datagram, &md5_des(&K_DES)),
        Err(Rejection::BadCipherLength {
            len: 13,
            block: 8,
            offset: 17
        })
    ));
}

#[test]
fn no_digest_line() {
    for datagram in [
        b"".as_slice(),
        b"qJsDJDwAMQVkzhxe",
        b"qJsDJDwAMQVkzhx\nmbus/1.0",
        b"qJsDJDwAMQVkzh!e\nmbus/1.0",
        b"mbus/1.0 0 1 U (id:1-1@h) () ()\nmbus.hello ()",
    ] {
        assert_eq!(open(datagram, &md5()), Err(Rejection::NoDigest));
    }
}

#[test]
fn keys_refuse_unusable_material() {
    use rmbus::auth::{KeyError, Keys};
    assert_eq!(
        Keys::new(HashAlgo::HmacMd5_96, b"", CipherAlgo::None, &[]).unwrap_err(),
        KeyError::EmptyHashKey
    );
    for (algo, len) in [
        (CipherAlgo::Des, 7),
        (CipherAlgo::Aes, 24),
        (CipherAlgo::TripleDes, 16),
    ] {
        let err = Keys::new(HashAlgo::HmacMd5_96, K_MD5, algo, &vec![1; len]).unwrap_err();
        assert_eq!(
            err,
            KeyError::WrongLength {
                algo,
                expected: algo.key_len(),
                got: len
            }
        );
    }
    // HMAC keys of any length are usable (long ones are hashed first, RFC 2104).
    assert!(Keys::new(HashAlgo::HmacSha1_96, &[7; 200], CipherAlgo::None, &[]).is_ok());
}
