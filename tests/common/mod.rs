//! Keys, addresses and golden vectors (RFC 3259 messages sealed with known
//! keys), shared by the tests.
#![allow(dead_code)]

use rmbus::auth::{CipherAlgo, HashAlgo, Keys};
use rmbus::config::Config;
use rmbus::wire::Address;

pub const K_MD5: &[u8] = b"123156189112";
pub const K_SHA1: [u8; 20] = [
    0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19,
];
pub const K_DES: [u8; 8] = [0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef];
pub const K_AES: [u8; 16] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15];

pub const A: &str = "(app:test module:engine id:4711-1@192.168.1.1)";
pub const B: &str = "(app:test module:gui id:4712-1@192.168.1.1)";

pub const V1_BODY: &[u8] = b"mbus/1.0 0 1020000000000 U (app:test module:engine id:4711-1@192.168.1.1) () ()\r\nmbus.hello ()";
pub const V2_BODY: &[u8] = b"mbus/1.0 1 1020000000100 R (app:test module:engine id:4711-1@192.168.1.1) (app:test module:gui id:4712-1@192.168.1.1) ()\r\ntool.test.set (42 -7 3.25 -0.5 \"a \\\"quoted\\\" word\\\\ and\\nnewline\" sym_bol-1.x (1 (2 3) ()) <aGVsbG8=>)\r\ntool.test.ping ()";
pub const V3_BODY: &[u8] = b"mbus/1.0 7 1020000000150 U (app:test module:gui id:4712-1@192.168.1.1) (app:test module:engine id:4711-1@192.168.1.1) (1)";
pub const V4_BODY: &[u8] = b"mbus/1.0      1 1020000000000 U (app:test module:engine id:4711-1@192.168.1.1) () ()\nmbus.hello ()\n";
pub const V5_BODY: &[u8] = b"mbus/1.0 2 1020000000200 U (app:test module:engine id:4711-1@192.168.1.1) (module:gui) ()\r\nmbus.waiting (ready)";
pub const V6_BODY: &[u8] = b"mbus/1.0 4294967295 1020000000300 U (app:test module:engine id:4711-1@192.168.1.1) () ()\r\nmbus.bye ()";
pub const V7_CIPHERTEXT_HEX: &str = "e34159a6489ea7fb2f325b5818f6cabb7ba78f9ba3c178355ed38be20b4792cdce2933dce904254402b1bd3ad103779c3a8f0f4bb58d40f27d4f450c79a1224660ebba25376bf1ac038f0add2c0f8b16efd450ae8a7b04a917141468d31696c7f8232e276f3806a6";
pub const V7_PLAINTEXT: &[u8] = b"mbus/1.0      3 1020000000400 U (app:test module:engine id:4711-1@192.168.1.1) () ()\nmbus.hello ()\n";
pub const V8_CIPHERTEXT_HEX: &str = "601a3486beb81fc5c46e3e75053ef9a4d9ee2bf40d5f1618ae4051605815631034abf9a1fb71f852952f75d7bc3da82905cb4678914ea6ea008589da70972a9986491fa3ec70b00e96c21614df4a75d5278509efec878d97c0442c6ae60c1eb6";
pub const V9_BODY: &[u8] = b"mbus/1.0 42 1020000000500 R (app:foo module:gui id:4711-1@192.168.1.1) (app:foo module:engine id:4712-1@192.168.1.1) ()\r\ntools.foo.bar (((\"ID\" \"123\") (\"RPC-TYPE\" \"UNICAST\")) (\"gg\" 17 (\"a\" \"b\")))";
pub const V10_BODY: &[u8] = b"mbus/1.0 57 1020000000510 U (app:foo module:engine id:4712-1@192.168.1.1) (app:foo module:gui id:4711-1@192.168.1.1) (42)\r\ntools.foo.bar.return (((\"ID\" \"123\") (\"RPC-STATUS\" \"OK\")) ((OK BAR_COMPLETED \"Success!\") (1)))";

/// A host-local configuration with fresh keys on a port nobody else uses, for
/// tests on real sockets (each test its own bus).
pub fn free_port_config() -> Config {
    let port = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut config = Config::generate(HashAlgo::HmacMd5_96, CipherAlgo::None);
    config.port = Some(port);
    config
}

/// The wall clock in milliseconds, as the TimeStamp of a datagram a test
/// makes for a real bus (a host-local bus refuses one far from its clock).
pub fn wall_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

pub fn md5() -> Keys {
    Keys::md5_noencr(K_MD5).unwrap()
}

pub fn sha1() -> Keys {
    Keys::new(HashAlgo::HmacSha1_96, &K_SHA1, CipherAlgo::None, &[]).unwrap()
}

pub fn md5_des(des_key: &[u8]) -> Keys {
    Keys::new(HashAlgo::HmacMd5_96, K_MD5, CipherAlgo::Des, des_key).unwrap()
}

pub fn sha1_aes() -> Keys {
    Keys::new(HashAlgo::HmacSha1_96, &K_SHA1, CipherAlgo::Aes, &K_AES).unwrap()
}

pub fn addr(s: &str) -> Address {
    Address::parse(s).unwrap()
}

pub fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// `digest || sep || body`.
pub fn wire(digest: &str, sep: &[u8], body: &[u8]) -> Vec<u8> {
    [digest.as_bytes(), sep, body].concat()
}

/// True, after saying so, when `RMBUS_SKIP_NETNS=1` asks the tests that
/// make network namespaces to skip.
pub fn netns_skipped() -> bool {
    let skip = std::env::var_os("RMBUS_SKIP_NETNS").is_some_and(|v| v == "1");
    if skip {
        eprintln!("skipped: RMBUS_SKIP_NETNS=1 (no network namespace made)");
    }
    skip
}

/// Runs test `name` of this test binary alone with `RMBUS_SKIP_NETNS=1`,
/// and checks that it says it skipped.
pub fn assert_skips_without_netns(name: &str) {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", name, "--nocapture", "--test-threads=1"])
        .env("RMBUS_SKIP_NETNS", "1")
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("skipped: RMBUS_SKIP_NETNS=1"), "{text}");
}
