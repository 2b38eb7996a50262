//! The `rmbus` command's first subcommands: keygen, decode, encode, including
//! their error paths and exit codes.

mod common;

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::*;

const MD5_CONFIG: &str =
    "[MBUS]\nCONFIG_VERSION=1\nHASHKEY=(HMAC-MD5-96,MTIzMTU2MTg5MTEy)\nENCRYPTIONKEY=(NOENCR,)\n";
const MD5_DES_CONFIG: &str = "[MBUS]\nCONFIG_VERSION=1\nHASHKEY=(HMAC-MD5-96,MTIzMTU2MTg5MTEy)\nENCRYPTIONKEY=(DES,ASNFZ4mrze8=)\n";

/// The binary, with a clean environment: HOME and MBUS point into `home`.
fn rmbus(home: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_rmbus"));
    cmd.env_clear()
        .env("HOME", home)
        .env("PATH", std::env::var_os("PATH").unwrap_or_default());
    cmd
}

fn run(mut cmd: Command, stdin: &[u8]) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The command may exit (e.g. on a config error) before reading its input.
    if let Err(e) = child.stdin.take().unwrap().write_all(stdin) {
        assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe, "{e}");
    }
    child.wait_with_output().unwrap()
}

fn config_file(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("bus.conf");
    fs::write(&path, text).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
    path
}

/// A host-local bus configuration on a free port, in `dir`.
fn private_bus_config(dir: &Path) -> PathBuf {
    let port = free_port_config().port.unwrap();
    config_file(dir, &format!("{MD5_CONFIG}SCOPE=HOSTLOCAL\nPORT={port}\n"))
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn decode(dir: &Path, config: &Path, extra: &[&str], input: &[u8]) -> Output {
    let mut cmd = rmbus(dir);
    cmd.arg("decode").arg("--config").arg(config).args(extra);
    run(cmd, input)
}

// ---- keygen -----------------------------------------------------------------

#[test]
fn keygen_writes_owner_only_file_and_never_overwrites() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keys");
    let mut cmd = rmbus(dir.path());
    cmd.args(["keygen", "--hash", "sha1", "--cipher", "aes", "-o"])
        .arg(&path);
    let out = run(cmd, b"");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let text = fs::read_to_string(&path).unwrap();
    let config = rmbus::config::Config::parse(&text).unwrap();
    assert_eq!(config.hash.algo, rmbus::auth::HashAlgo::HmacSha1_96);
    assert_eq!(config.encryption.algo, rmbus::auth::CipherAlgo::Aes);

    let mut again = rmbus(dir.path());
    again.args(["keygen", "-o"]).arg(&path);
    let out = run(again, b"");
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--force"), "{}", stderr(&out));
    assert_eq!(fs::read_to_string(&path).unwrap(), text, "untouched");

    let mut forced = rmbus(dir.path());
    forced
        .args(["keygen", "--cipher", "3des", "--force", "-o"])
        .arg(&path);
    assert_eq!(run(forced, b"").status.code(), Some(0));
    assert!(fs::read_to_string(&path)
        .unwrap()
        .contains("ENCRYPTIONKEY=(3DES,"));
}

#[test]
fn keygen_default_location_follows_mbus_then_home() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(
        {
            let mut c = rmbus(dir.path());
            c.arg("keygen");
            c
        },
        b"",
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let home_file = dir.path().join(".mbus");
    assert!(fs::read_to_string(&home_file)
        .unwrap()
        .contains("HASHKEY=(HMAC-MD5-96,"));
    assert!(fs::read_to_string(&home_file)
        .unwrap()
        .contains("ENCRYPTIONKEY=(NOENCR,"));

    let sub = dir.path().join("sub");
    fs::create_dir(&sub).unwrap();
    let out = run(
        {
            let mut c = rmbus(dir.path());
            c.env("MBUS", &sub).arg("keygen");
            c
        },
        b"",
    );
    assert_eq!(out.status.code(), Some(0));
    assert!(
        sub.join(".mbus").exists(),
        "$MBUS naming a directory means its .mbus"
    );

    let named = dir.path().join("named.conf");
    let out = run(
        {
            let mut c = rmbus(dir.path());
            c.env("MBUS", &named).arg("keygen");
            c
        },
        b"",
    );
    assert_eq!(out.status.code(), Some(0));
    assert!(named.exists(), "$MBUS naming a file");
}

#[test]
fn keygen_rejects_unknown_algorithms() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(
        {
            let mut c = rmbus(dir.path());
            c.args(["keygen", "--cipher", "rot13"]);
            c
        },
        b"",
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(!dir.path().join(".mbus").exists());
}

#[test]
fn keygen_says_that_ucl_peers_cannot_read_aes_or_3des() {
    let dir = tempfile::tempdir().unwrap();
    for (cipher, warned) in [
        ("aes", true),
        ("3des", true),
        ("des", false),
        ("none", false),
    ] {
        let mut c = rmbus(dir.path());
        c.args(["keygen", "--force", "--cipher", cipher, "-o"])
            .arg(dir.path().join("k"));
        let out = run(c, b"");
        assert_eq!(out.status.code(), Some(0));
        assert_eq!(
            stderr(&out).contains("accept only NOENCR and DES"),
            warned,
            "{cipher}: {}",
            stderr(&out)
        );
    }
}

// ---- decode -------------------------------------------------------------------

const V2_JSON: &str = r#"{"auth":"ok","seq":1,"timestamp":1020000000100,"reliable":true,"src":"(app:test module:engine id:4711-1@192.168.1.1)","dst":"(app:test module:gui id:4712-1@192.168.1.1)","acks":[],"commands":[{"name":"tool.test.set","args":[{"int":42},{"int":-7},{"float":3.25},{"float":-0.5},{"str":"a \"quoted\" word\\ and\nnewline"},{"sym":"sym_bol-1.x"},{"list":[{"int":1},{"list":[{"int":2},{"int":3}]},{"list":[]}]},{"data":"aGVsbG8="}]},{"name":"tool.test.ping","args":[]}]}"#;

#[test]
fn decode_prints_text_and_json() {
    let dir = tempfile::tempdir().unwrap();
    let config = config_file(dir.path(), MD5_CONFIG);
    let datagram = wire("83gngKI3713RhbY4", b"\r\n", V2_BODY);
    let out = decode(dir.path(), &config, &[], &datagram);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "mbus/1.0 1 1020000000100 R (app:test module:engine id:4711-1@192.168.1.1) (app:test module:gui id:4712-1@192.168.1.1) ()\ntool.test.set (42 -7 3.25 -0.5 \"a \\\"quoted\\\" word\\\\ and\\nnewline\" sym_bol-1.x (1 (2 3) ()) <aGVsbG8=>)\ntool.test.ping ()\n"
    );
    let out = decode(dir.path(), &config, &["--json"], &datagram);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(stdout(&out), format!("{V2_JSON}\n"));

    // The same datagram from a file, as hex text with whitespace.
    let hex: String = datagram
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .chunks(16)
        .map(|c| c.join(" "))
        .collect::<Vec<_>>()
        .join("\n");
    let file = dir.path().join("d.hex");
    fs::write(&file, hex).unwrap();
    let out = decode(
        dir.path(),
        &config,
        &["--hex", "--json", file.to_str().unwrap()],
        b"",
    );
    assert_eq!(stdout(&out), format!("{V2_JSON}\n"), "{}", stderr(&out));
}

#[test]
fn decode_json_keeps_duplicate_acks_and_big_integers() {
    let dir = tempfile::tempdir().unwrap();
    let config = config_file(dir.path(), MD5_CONFIG);
    let body = format!("mbus/1.0 3 1 U {A} () (     5 5 2)\nx (123456789012345678901234 -1)\n");
    let datagram =
        rmbus::auth::seal_raw(body.as_bytes(), &md5(), rmbus::wire::Framing::Lf).unwrap();
    let out = decode(dir.path(), &config, &["--json"], &datagram);
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(v["acks"], serde_json::json!([5, 5, 2]));
    assert_eq!(
        v["commands"][0]["args"],
        serde_json::json!([{"int": "123456789012345678901234"}, {"int": -1}])
    );
}

#[test]
fn decode_rejections_and_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    let md5_config = config_file(dir.path(), MD5_CONFIG);
    let des_dir = tempfile::tempdir().unwrap();
    let des_config = config_file(des_dir.path(), MD5_DES_CONFIG);
    let good = wire("qJsDJDwAMQVkzhxe", b"\r\n", V1_BODY);
    let mut tampered = good.clone();
    let last = tampered.len() - 2;
    tampered[last] ^= 1;
    let malformed = rmbus::auth::seal_raw(
        format!("mbus/1.0 0 1 U {A} () ()\nx (1 .5)").as_bytes(),
        &md5(),
        rmbus::wire::Framing::Lf,
    )
    .unwrap();
    let odd_length = rmbus::auth::seal_raw(&[b'm'; 13], &md5(), rmbus::wire::Framing::Lf).unwrap();
    let v7 = wire("fj/524zXIxkSNiIF", b"\n", &hex(V7_CIPHERTEXT_HEX));
    let des_other = {
        let keys = md5_des(&[0x02; 8]);
        rmbus::auth::seal_raw(V1_BODY, &keys, rmbus::wire::Framing::Lf).unwrap()
    };
    for (config, datagram, code, exit, offset) in [
        (&md5_config, b"garbage".to_vec(), "no_digest", 2, 0),
        (&md5_config, tampered, "bad_digest", 2, 0),
        (&des_config, odd_length, "bad_cipher_length", 2, 17),
        (&des_config, des_other, "not_mbus", 2, 17),
        (
            &md5_config,
            malformed.clone(),
            "malformed",
            3,
            malformed.len() - 3,
        ),
    ] {
        let out = decode(dir.path(), config, &["--json"], &datagram);
        assert_eq!(out.status.code(), Some(exit), "{code}: {}", stderr(&out));
        let v: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
        assert_eq!(v["auth"], code);
        assert_eq!(v["offset"], offset, "{code}");
        assert!(v["reason"].as_str().unwrap().len() > 10);
        assert!(
            stderr(&out).contains(code),
            "{code}: stderr {}",
            stderr(&out)
        );
    }
    // V7 decrypts with the right DES key.
    let out = decode(dir.path(), &des_config, &[], &v7);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    // Malformed without --json: nothing on stdout, the reason and offset on stderr.
    let out = decode(dir.path(), &md5_config, &[], &malformed);
    assert_eq!(out.status.code(), Some(3));
    assert!(out.stdout.is_empty());
    assert!(
        stderr(&out).contains(&format!("at byte {}", malformed.len() - 3)),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        stderr(&out).matches("at byte").count(),
        1,
        "the offset is said once: {}",
        stderr(&out)
    );
}

#[test]
fn decode_needs_an_existing_safe_config() {
    let dir = tempfile::tempdir().unwrap();
    let datagram = wire("qJsDJDwAMQVkzhxe", b"\r\n", V1_BODY);
    // No config anywhere: refused, and none is created.
    let out = run(
        {
            let mut c = rmbus(dir.path());
            c.arg("decode");
            c
        },
        &datagram,
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("rmbus keygen"), "{}", stderr(&out));
    assert!(!dir.path().join(".mbus").exists());

    let config = config_file(dir.path(), MD5_CONFIG);
    fs::set_permissions(&config, fs::Permissions::from_mode(0o644)).unwrap();
    let out = decode(dir.path(), &config, &[], &datagram);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("chmod 600"), "{}", stderr(&out));

    fs::write(&config, MD5_CONFIG.replace("NOENCR,", "AES,AAEC")).unwrap();
    fs::set_permissions(&config, fs::Permissions::from_mode(0o600)).unwrap();
    let out = decode(dir.path(), &config, &[], &datagram);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains(&format!("{}:4: ENCRYPTIONKEY=", config.display())),
        "{}",
        stderr(&out)
    );

    let good = config_file(dir.path(), MD5_CONFIG);
    let out = decode(dir.path(), &good, &["--hex"], b"0a zz");
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("not hex"));
    let out = decode(dir.path(), &good, &["/nonexistent/datagram"], b"");
    assert_eq!(out.status.code(), Some(2));
}

// ---- encode -------------------------------------------------------------------

fn encode(dir: &Path, config: &Path, args: &[&str]) -> Output {
    let mut cmd = rmbus(dir);
    cmd.arg("encode").arg("--config").arg(config).args(args);
    run(cmd, b"")
}

#[test]
fn encode_reproduces_golden_vector_v2() {
    let dir = tempfile::tempdir().unwrap();
    let config = config_file(dir.path(), MD5_CONFIG);
    let out = encode(
        dir.path(),
        &config,
        &[
            "--crlf",
            "--src",
            A,
            "--dst",
            B,
            "--seq",
            "1",
            "--timestamp",
            "1020000000100",
            "--reliable",
            "tool.test.set",
            r#"(42 -7 3.25 -0.5 "a \"quoted\" word\\ and\nnewline" sym_bol-1.x (1 (2 3) ()) <aGVsbG8=>)"#,
            "tool.test.ping",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(out.stdout, wire("83gngKI3713RhbY4", b"\r\n", V2_BODY));
}

#[test]
fn encode_then_decode_round_trip_with_encryption() {
    let dir = tempfile::tempdir().unwrap();
    let config = config_file(dir.path(), MD5_DES_CONFIG);
    let out = encode(
        dir.path(),
        &config,
        &[
            "--hex",
            "--src",
            B,
            "--dst",
            A,
            "--seq",
            "7",
            "--timestamp",
            "1020000000150",
            "--acks",
            "1,1,9",
            "test.neg",
            "(-5 \"x\")",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let hex_text = stdout(&out);
    assert!(hex_text.ends_with('\n') && hex_text.trim().bytes().all(|c| c.is_ascii_hexdigit()));
    let back = decode(
        dir.path(),
        &config,
        &["--hex", "--json"],
        hex_text.as_bytes(),
    );
    let v: serde_json::Value = serde_json::from_str(&stdout(&back)).unwrap();
    assert_eq!(v["acks"], serde_json::json!([1, 1, 9]));
    assert_eq!(v["reliable"], false);
    assert_eq!(
        v["commands"][0]["args"],
        serde_json::json!([{"int": -5}, {"str": "x"}])
    );
    // LF framing by default: the digest line ends in a bare LF.
    let raw = hex(hex_text.trim());
    assert_eq!(raw[16], b'\n');
}

#[test]
fn encode_uses_config_framing_and_current_time() {
    let dir = tempfile::tempdir().unwrap();
    let config = config_file(dir.path(), &format!("{MD5_CONFIG}FRAMING=CRLF\n"));
    let out = encode(
        dir.path(),
        &config,
        &["--src", A, "--dst", "()", "mbus.hello", "()"],
    );
    assert_eq!(&out.stdout[16..18], b"\r\n");
    let msg = rmbus::auth::open(&out.stdout, &md5()).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    assert!(msg.header.timestamp > now - 600_000 && msg.header.timestamp <= now);
}

#[test]
fn encode_refuses_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let config = config_file(dir.path(), MD5_CONFIG);
    for args in [
        vec!["--src", "(app:x", "--dst", "()"],
        vec!["--src", A, "--dst", "(a:1 a:2)"],
        vec!["--src", A, "--dst", "()", "bad name"],
        vec!["--src", A, "--dst", "()", "x.y", "(1 2"],
        vec!["--src", A, "--dst", "()", "--seq", "4294967296"],
        vec!["--src", A, "--dst", "()", "--timestamp", "99999999999999"],
        vec!["--src", A, "--dst", "()", "--acks", "1,x"],
        vec!["--dst", "()"],
    ] {
        let out = encode(dir.path(), &config, &args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(out.stdout.is_empty(), "{args:?}");
    }
    let out = run(
        {
            let mut c = rmbus(dir.path());
            c.args(["encode", "--src", A, "--dst", "()"]);
            c
        },
        b"",
    );
    assert_eq!(out.status.code(), Some(2), "no config");
    assert!(
        !dir.path().join(".mbus").exists(),
        "encode never creates a config"
    );
}

#[test]
fn encode_warns_about_ucl_hazards() {
    let dir = tempfile::tempdir().unwrap();
    let config = config_file(dir.path(), MD5_CONFIG);
    let long = format!("(\"{}\" 5000000000)", "x".repeat(1600));
    let out = encode(
        dir.path(),
        &config,
        &["--src", A, "--dst", "()", "big.one", &long],
    );
    assert_eq!(out.status.code(), Some(0));
    let err = stderr(&out);
    assert!(
        err.contains("exceeds 1500") && err.contains("outside 32 bits"),
        "{err}"
    );
}

#[test]
fn every_subcommand_documents_its_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    for sub in [
        "demo",
        "monitor",
        "list",
        "send",
        "join",
        "keygen",
        "decode",
        "encode",
        "completions",
    ] {
        let out = run(
            {
                let mut c = rmbus(dir.path());
                c.args([sub, "--help"]);
                c
            },
            b"",
        );
        assert_eq!(out.status.code(), Some(0));
        let help = stdout(&out);
        assert!(
            help.contains("Exit status") && help.contains("Example"),
            "{sub}: {help}"
        );
    }
}

#[test]
fn completions_and_manual_page() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(
        {
            let mut c = rmbus(dir.path());
            c.args(["completions", "bash"]);
            c
        },
        b"",
    );
    assert_eq!(out.status.code(), Some(0));
    assert!(stdout(&out).contains("_rmbus()") && stdout(&out).contains("monitor"));
    let out = run(
        {
            let mut c = rmbus(dir.path());
            c.arg("man");
            c
        },
        b"",
    );
    assert_eq!(out.status.code(), Some(0));
    assert!(
        stdout(&out).starts_with(".ie") || stdout(&out).contains(".TH rmbus"),
        "{}",
        stdout(&out)
    );
}

// ---- where keys are created -------------------------------------------------

/// A pcap file of raw IPv4 packets (link type 101) holding `payloads` as UDP
/// datagrams from 127.0.0.1:40000 to 239.255.255.247:47000.
fn raw_ip_capture(payloads: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&4u16.to_le_bytes());
    out.extend_from_slice(&[0; 8]);
    out.extend_from_slice(&65_535u32.to_le_bytes());
    out.extend_from_slice(&101u32.to_le_bytes());
    for (i, payload) in payloads.iter().enumerate() {
        let total = 20 + 8 + payload.len();
        let mut packet = vec![
            0x45,
            0,
            (total >> 8) as u8,
            total as u8,
            0,
            0,
            0,
            0,
            1,
            17,
            0,
            0,
        ];
        packet.extend_from_slice(&[127, 0, 0, 1, 239, 255, 255, 247]);
        packet.extend_from_slice(&40_000u16.to_be_bytes());
        packet.extend_from_slice(&47_000u16.to_be_bytes());
        packet.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
        packet.extend_from_slice(&[0, 0]);
        packet.extend_from_slice(payload);
        out.extend_from_slice(&(1_700_000_000u32 + i as u32).to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&(packet.len() as u32).to_le_bytes());
        out.extend_from_slice(&(packet.len() as u32).to_le_bytes());
        out.extend_from_slice(&packet);
    }
    out
}

fn hello_datagram(config_text: &str) -> Vec<u8> {
    use rmbus::wire::{Address, Command as Cmd, Framing, Header, Message, MessageType};
    let config = rmbus::config::Config::parse(config_text).unwrap();
    let msg = Message {
        header: Header {
            seq: 7,
            timestamp: 1_700_000_000_000,
            kind: MessageType::Unreliable,
            src: Address::parse("(app:captured id:1-1@127.0.0.1)").unwrap(),
            dst: Address::empty(),
            acks: vec![],
        },
        commands: vec![Cmd::new("mbus.hello", vec![])],
    };
    rmbus::auth::seal(&msg, &config.keys().unwrap(), Framing::Lf).unwrap()
}

#[test]
fn reading_a_capture_creates_nothing_and_shows_records_unverified_without_keys() {
    let home = tempfile::tempdir().unwrap();
    let capture = home.path().join("bus.pcap");
    fs::write(&capture, raw_ip_capture(&[hello_datagram(MD5_CONFIG)])).unwrap();
    let mut cmd = rmbus(home.path());
    cmd.args(["monitor", "--json", "--read"]).arg(&capture);
    let out = run(cmd, b"");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(!home.path().join(".mbus").exists(), "no key file was made");
    let line: serde_json::Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    assert_eq!(line["auth"], "unverified", "{line}");
    assert_eq!(line["commands"][0]["name"], "mbus.hello", "{line}");
    assert!(stderr(&out).contains("unverified"), "{}", stderr(&out));

    // With the keys it was sealed with, the same record is verified.
    let config = config_file(home.path(), MD5_CONFIG);
    let mut cmd = rmbus(home.path());
    cmd.args(["monitor", "--json", "--config"])
        .arg(&config)
        .arg("--read")
        .arg(&capture);
    let out = run(cmd, b"");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let line: serde_json::Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    assert_eq!(line["auth"], "ok", "{line}");
}

#[test]
fn an_explicit_config_must_exist_and_only_the_default_location_is_created() {
    let home = tempfile::tempdir().unwrap();
    // A typo in --config: an error, and no file minted.
    let typo = home.path().join("bsu.conf");
    let mut cmd = rmbus(home.path());
    cmd.args(["list", "--wait", "0", "--config"]).arg(&typo);
    let out = run(cmd, b"");
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("no such configuration file"),
        "{}",
        stderr(&out)
    );
    assert!(!typo.exists() && !home.path().join(".mbus").exists());

    // An explicit empty file is refused, not filled.
    let empty = home.path().join("empty.conf");
    fs::write(&empty, "").unwrap();
    fs::set_permissions(&empty, fs::Permissions::from_mode(0o600)).unwrap();
    let mut cmd = rmbus(home.path());
    cmd.args(["list", "--wait", "0", "--config"]).arg(&empty);
    let out = run(cmd, b"");
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("empty.conf"), "{}", stderr(&out));
    assert_eq!(fs::read(&empty).unwrap(), b"");

    // The default location is created, and said to be.
    let port = free_port_config().port.unwrap().to_string();
    let mut cmd = rmbus(home.path());
    cmd.args(["list", "--wait", "0", "--port", &port]);
    let out = run(cmd, b"");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let default = home.path().join(".mbus");
    assert!(stderr(&out).contains("created"), "{}", stderr(&out));
    assert_eq!(
        fs::metadata(&default).unwrap().permissions().mode() & 0o777,
        0o600
    );

    // An empty file at the default location is filled, and said so, not
    // reported as created; a readable one is made owner-only first.
    fs::write(&default, "").unwrap();
    fs::set_permissions(&default, fs::Permissions::from_mode(0o644)).unwrap();
    let mut cmd = rmbus(home.path());
    cmd.args(["list", "--wait", "0", "--port", &port]);
    let out = run(cmd, b"");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("was empty; wrote fresh keys into it"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        fs::metadata(&default).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert!(rmbus::config::file::load(&default).is_ok());

    // --port 0 is an argument error, not an operating-system one.
    let mut cmd = rmbus(home.path());
    cmd.args(["list", "--wait", "0", "--port", "0"]);
    let out = run(cmd, b"");
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("--port 0"), "{}", stderr(&out));
}

#[test]
fn argument_lists_get_a_hint_and_plain_quotes_and_wide_integers_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let config = private_bus_config(dir.path());
    let send = |args: &[&str]| {
        let mut cmd = rmbus(dir.path());
        cmd.arg("send").arg("--config").arg(&config).args(args);
        run(cmd, b"")
    };
    // Two bare values are not one list: say what ARGS is.
    let out = send(&["--to", "()", "test.x", "2 3"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("arguments '2 3'"), "not Rust-escaped: {err}");
    assert!(err.contains("ARGS is one parenthesised list"), "{err}");
    // A string argument is echoed as written.
    let out = send(&["--to", "()", "test.x", "(\"a\" 1"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("arguments '(\"a\" 1'"),
        "{}",
        stderr(&out)
    );
    // An unclosed list: the offset is where its ')' is missing.
    let out = send(&["--to", "()", "test.x", "(1 2"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("at byte 4"), "{}", stderr(&out));
    // An Integer beyond 32 bits is sent, with a warning (UCL aborts on it).
    let out = send(&["--to", "()", "test.x", "(5000000000)"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stderr(&out).contains("outside 32 bits"), "{}", stderr(&out));
}

/// The IP packets of a raw-IP pcap made by [`raw_ip_capture`], one by one.
fn ip_packets(payloads: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let file = raw_ip_capture(payloads);
    let mut at = 24;
    let mut out = Vec::new();
    while at + 16 <= file.len() {
        let len = u32::from_le_bytes(file[at + 8..at + 12].try_into().unwrap()) as usize;
        out.push(file[at + 16..at + 16 + len].to_vec());
        at += 16 + len;
    }
    out
}

/// A pcapng file (Wireshark's default) of Ethernet frames holding `packets`.
fn ethernet_pcapng(packets: &[Vec<u8>]) -> Vec<u8> {
    let block = |kind: u32, body: &[u8]| {
        let len = (12 + body.len()) as u32;
        let mut b = kind.to_le_bytes().to_vec();
        b.extend_from_slice(&len.to_le_bytes());
        b.extend_from_slice(body);
        b.extend_from_slice(&len.to_le_bytes());
        b
    };
    let mut shb = 0x1a2b_3c4du32.to_le_bytes().to_vec();
    shb.extend_from_slice(&1u16.to_le_bytes());
    shb.extend_from_slice(&0u16.to_le_bytes());
    shb.extend_from_slice(&(-1i64).to_le_bytes());
    let mut out = block(0x0a0d_0d0a, &shb);
    let mut idb = 1u16.to_le_bytes().to_vec(); // LINKTYPE_ETHERNET
    idb.extend_from_slice(&0u16.to_le_bytes());
    idb.extend_from_slice(&65_535u32.to_le_bytes());
    out.extend(block(1, &idb));
    for (i, ip) in packets.iter().enumerate() {
        let mut frame = vec![
            0x01, 0x00, 0x5e, 0x7f, 0xff, 0xf7, 0x02, 0, 0, 0, 0, 1, 0x08, 0x00,
        ];
        frame.extend_from_slice(ip);
        let micros = 1_700_000_000_000_000u64 + i as u64;
        let mut epb = 0u32.to_le_bytes().to_vec();
        epb.extend_from_slice(&((micros >> 32) as u32).to_le_bytes());
        epb.extend_from_slice(&(micros as u32).to_le_bytes());
        epb.extend_from_slice(&(frame.len() as u32).to_le_bytes());
        epb.extend_from_slice(&(frame.len() as u32).to_le_bytes());
        epb.extend_from_slice(&frame);
        while epb.len() % 4 != 0 {
            epb.push(0);
        }
        out.extend(block(6, &epb));
    }
    out
}

#[test]
fn captures_in_pcapng_and_cut_off_mid_write_are_read() {
    let home = tempfile::tempdir().unwrap();
    let config = config_file(home.path(), MD5_CONFIG);
    let hellos = [hello_datagram(MD5_CONFIG), hello_datagram(MD5_CONFIG)];
    let read = |file: &Path| {
        let mut cmd = rmbus(home.path());
        cmd.args(["monitor", "--json", "--config"])
            .arg(&config)
            .arg("--read")
            .arg(file);
        run(cmd, b"")
    };
    // pcapng with Ethernet framing, as Wireshark saves a capture of lo.
    let pcapng = home.path().join("bus.pcapng");
    fs::write(&pcapng, ethernet_pcapng(&ip_packets(&hellos))).unwrap();
    let out = read(&pcapng);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let lines: Vec<serde_json::Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "{}", stdout(&out));
    assert!(lines.iter().all(|l| l["auth"] == "ok"), "{lines:?}");
    assert!(
        lines[0]["time"]
            .as_str()
            .unwrap()
            .starts_with("2023-11-14T22:13:20"),
        "{lines:?}"
    );

    // Cut off inside its second record: the first is shown, then a warning.
    let mut cut = raw_ip_capture(&hellos);
    cut.truncate(cut.len() - 5);
    let cut_path = home.path().join("cut.pcap");
    fs::write(&cut_path, cut).unwrap();
    let out = read(&cut_path);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out).lines().count(), 1, "{}", stdout(&out));
    assert!(stderr(&out).contains("record 2"), "{}", stderr(&out));
}

#[test]
fn man_writes_a_page_for_every_subcommand_it_lists() {
    let home = tempfile::tempdir().unwrap();
    let dir = home.path().join("man");
    let mut cmd = rmbus(home.path());
    cmd.args(["man", "--out"]).arg(&dir);
    let out = run(cmd, b"");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let main = fs::read_to_string(dir.join("rmbus.1")).unwrap();
    assert!(
        main.contains(".SH \"EXIT STATUS\"") && main.contains("130"),
        "{main}"
    );
    assert!(main.contains(".SH \"FILES\"") && main.contains("CONFIG_VERSION=1"));
    // Every page rmbus(1) points to exists, and has its options.
    let mut listed = 0;
    for word in main.replace("\\-", "-").split_whitespace() {
        if let Some(name) = word.strip_suffix("(1)") {
            if name.starts_with("rmbus-") {
                listed += 1;
                let page = fs::read_to_string(dir.join(format!("{name}.1")))
                    .unwrap_or_else(|e| panic!("{name}.1: {e}"));
                assert!(page.contains(".SH OPTIONS"), "{name}.1 has its options");
            }
        }
    }
    assert!(listed >= 15, "rmbus(1) lists the subcommands: {listed}");
    let join = fs::read_to_string(dir.join("rmbus-join.1")).unwrap();
    assert!(
        join.contains("rsend ADDR CMD") && join.contains("Exit status"),
        "the grammar"
    );
    let written = stdout(&out);
    assert_eq!(written.lines().count(), listed + 1, "{written}");
}

#[test]
fn every_help_ends_with_the_one_exit_table() {
    let home = tempfile::tempdir().unwrap();
    let table = |args: &[&str]| {
        let mut cmd = rmbus(home.path());
        cmd.args(args);
        let out = run(cmd, b"");
        let text = stdout(&out);
        let at = text
            .find("Exit status, the same for every rmbus command:")
            .unwrap_or_else(|| panic!("{args:?}: no exit table in\n{text}"));
        text[at..].to_owned()
    };
    let main = table(&["--help"]);
    assert!(
        main.contains("130  a one-shot command interrupted by SIGINT"),
        "{main}"
    );
    for sub in [
        "demo",
        "monitor",
        "list",
        "send",
        "join",
        "call",
        "get",
        "set",
        "watch",
        "member",
        "members",
        "publish",
        "messages",
        "gateway",
        "keygen",
        "decode",
        "encode",
        "completions",
        "man",
    ] {
        assert_eq!(
            table(&[sub, "--help"]).trim_end(),
            main.trim_end(),
            "rmbus {sub} --help"
        );
    }
}

#[test]
fn json_failures_are_one_outcome_object() {
    let home = tempfile::tempdir().unwrap();
    let config = private_bus_config(home.path());
    let check = |args: &[&str], code: i32| {
        let mut cmd = rmbus(home.path());
        cmd.args(args);
        let out = run(cmd, b"");
        assert_eq!(out.status.code(), Some(code), "{args:?}: {}", stderr(&out));
        let text = stdout(&out);
        let lines: Vec<&str> = text.lines().map(str::trim).collect();
        assert_eq!(lines.len(), 1, "{args:?}: one object: {}", stdout(&out));
        let j: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
        assert_eq!(
            (j["outcome"].as_str(), j["exit"].as_i64()),
            (Some("error"), Some(i64::from(code))),
            "{j}"
        );
    };
    let missing = home.path().join("missing.conf");
    check(
        &["list", "--json", "--config", missing.to_str().unwrap()],
        2,
    );
    let config = config.to_str().unwrap();
    check(
        &[
            "members",
            "--json",
            "--wait",
            "0.3",
            "--config",
            config,
            "6f1c0a2e-5b7d-4c1e-9a3f-2d8e4b6c1a90",
            "stop_l2",
        ],
        2,
    );
}

#[test]
fn monitor_flags_what_is_outside_the_rfc_grammar() {
    let home = tempfile::tempdir().unwrap();
    let config_path = config_file(home.path(), MD5_CONFIG);
    let keys = rmbus::config::Config::parse(MD5_CONFIG)
        .unwrap()
        .keys()
        .unwrap();
    let body = b"mbus/1.0 3 1128277610000 U (app:pymbus id:1-1@127.0.0.1) () ()\n\
        desktop.configuration.notify (gex/panel/plugin/gxnet/interfaces (\"eth0\"))";
    let datagram = rmbus::auth::seal_raw(body, &keys, rmbus::wire::Framing::Lf).unwrap();
    let capture = home.path().join("py.pcap");
    fs::write(&capture, raw_ip_capture(&[datagram])).unwrap();
    for json in [true, false] {
        let mut cmd = rmbus(home.path());
        cmd.arg("monitor").arg("--config").arg(&config_path);
        if json {
            cmd.arg("--json");
        }
        cmd.arg("--read").arg(&capture);
        let out = run(cmd, b"");
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        let text = stdout(&out);
        if json {
            let line: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
            let notes = line["outside_rfc"].as_array().unwrap();
            assert!(notes[0].as_str().unwrap().contains("gex/panel"), "{line}");
        } else {
            assert!(
                text.contains("! outside RFC 3259: desktop.configuration.notify"),
                "{text}"
            );
        }
    }
}

#[test]
fn a_typo_in_the_configuration_is_named_with_its_file_line_and_nearest_key() {
    let dir = tempfile::tempdir().unwrap();
    let datagram = wire("qJsDJDwAMQVkzhxe", b"\r\n", V1_BODY);
    let config = config_file(
        dir.path(),
        &format!("{MD5_CONFIG}PROT=47099\nport=47098\nTIMER_C=100\n"),
    );
    let out = decode(dir.path(), &config, &[], &datagram);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let err = stderr(&out);
    let at = |line: usize| format!("{}:{line}: ", config.display());
    assert!(
        err.contains(&format!(
            "{}unknown key PROT, ignored: did you mean PORT?",
            at(5)
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "{}unknown key port, ignored: keys are upper case (PORT)",
            at(6)
        )),
        "{err}"
    );
    assert!(
        !err.contains("TIMER_C"),
        "a key libgmbus writes passes in silence: {err}"
    );

    // At -v every command that joins says which file, group, port and
    // scope it uses.
    let port = free_port_config().port.unwrap();
    let joined = config_file(dir.path(), &format!("{MD5_CONFIG}PORTX=1\nPORT={port}\n"));
    let mut cmd = rmbus(dir.path());
    cmd.args(["-v", "list", "--wait", "0.2", "--config"])
        .arg(&joined);
    let out = run(cmd, b"");
    let err = stderr(&out);
    assert!(
        err.contains("unknown key PORTX, ignored (here and by UCL"),
        "{err}"
    );
    assert!(
        err.contains("no entity answered within 0.2 s"),
        "an empty bus is said: {err}"
    );
    assert!(
        err.contains(&format!(
            "configuration {}: group 239.255.255.247:{port}, scope HOSTLOCAL",
            joined.display()
        )),
        "{err}"
    );
}

#[test]
fn argument_lists_that_cannot_be_read_say_why_in_words() {
    let dir = tempfile::tempdir().unwrap();
    for (args, says) in [
        ("(1 2))", "text after the list"),
        ("()x", "text after the list"),
        ("(1 \"x)", "unterminated string"),
        ("('x')", "double quotes"),
    ] {
        let mut c = rmbus(dir.path());
        c.args(["send", "test.x", args]);
        let out = run(c, b"");
        assert_eq!(out.status.code(), Some(2), "{args}");
        assert!(stderr(&out).contains(says), "{args}: {}", stderr(&out));
        assert!(
            !dir.path().join(".mbus").exists(),
            "refused before anything was made"
        );
    }
}

#[test]
fn every_help_puts_the_logging_flags_apart_from_the_bus_options() {
    let dir = tempfile::tempdir().unwrap();
    for sub in [
        "demo", "monitor", "list", "send", "join", "call", "get", "set", "watch", "member",
        "members", "publish", "messages", "gateway", "bridge", "keygen", "decode", "encode",
    ] {
        let mut c = rmbus(dir.path());
        c.args([sub, "--help"]);
        let help = stdout(&run(c, b""));
        let logging = help
            .find("\nLogging:\n")
            .unwrap_or_else(|| panic!("{sub}: {help}"));
        let verbose = help.find("-v, --verbose").unwrap();
        assert!(verbose > logging, "{sub}: -v under Logging");
        if let Some(port) = help.find("--port <N>") {
            assert!(port < logging, "{sub}: the bus options come first");
        }
    }
}
