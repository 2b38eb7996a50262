//! The `[MBUS]` file: parsing rules, location, permissions, creation and locking
//! (RFC 3259 §12.1).

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};

use rmbus::auth::{CipherAlgo, HashAlgo};
use rmbus::config::{file, Config, ConfigError, GroupAddress, IpVersion, Scope};
use rmbus::wire::Framing;

const MINIMAL: &str =
    "[MBUS]\nCONFIG_VERSION=1\nHASHKEY=(HMAC-MD5-96,MTIzMTU2MTg5MTEy)\nENCRYPTIONKEY=(NOENCR,)\n";

fn write_mode(path: &std::path::Path, text: &str, mode: u32) {
    fs::write(path, text).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn lenient_syntax_as_peers_write_it() {
    let text = "# written by hand\r\n\r\n[MBUS]\r\n  CONFIG_VERSION = 1 \r\nHASHKEY=(hmac-sha1-96, AAECAwQFBgcICQoLDA0ODxAREhM=)\r\n; comment\r\nENCRYPTIONKEY=(NOENCR)\r\nSCOPE=linklocal\r\nTIMER_C=70\r\n";
    let config = Config::parse(text).unwrap();
    assert_eq!(config.hash.algo, HashAlgo::HmacSha1_96);
    assert_eq!(config.hash.key, (0u8..20).collect::<Vec<_>>());
    assert_eq!(config.scope, Scope::LinkLocal);
    assert_eq!(config.scope.ttl(), 1);
    for noencr in ["(NOENCR)", "(NOENCR,)", "(NOENCR, )", "(noencr,ignored)"] {
        let c = Config::parse(&MINIMAL.replace("(NOENCR,)", noencr)).unwrap();
        assert_eq!(c.encryption.algo, CipherAlgo::None, "{noencr}");
    }
}

#[test]
fn defaults_and_extension_keys() {
    let config = Config::parse(MINIMAL).unwrap();
    assert_eq!(
        config.scope,
        Scope::HostLocal,
        "a missing SCOPE means HOSTLOCAL"
    );
    assert_eq!(
        config.group_addr(),
        "239.255.255.247:47000".parse().unwrap()
    );
    assert!(!config.send_unicast);
    assert_eq!(config.framing, Framing::Lf);

    let v6 = Config::parse(&format!("{MINIMAL}IPVERSION=6\nSCOPE=HOSTLOCAL\n")).unwrap();
    assert_eq!(v6.group_addr(), "[ff01::300]:47000".parse().unwrap());
    let v6_link = Config::parse(&format!(
        "{MINIMAL}IPVERSION=6\nSCOPE=LINKLOCAL\nINTERFACE=veth0\n"
    ))
    .unwrap();
    assert_eq!(v6_link.group_addr(), "[ff02::300]:47000".parse().unwrap());
    assert_eq!(v6_link.interface.as_deref(), Some("veth0"));
    let inferred = Config::parse(&format!("{MINIMAL}ADDRESS=ff02::300\n")).unwrap();
    assert_eq!(inferred.effective_ip_version(), IpVersion::V6);

    let ext = Config::parse(&format!(
        "{MINIMAL}SEND_UNICAST=yes\nFRAMING=crlf\nPORT=47123\nADDRESS=BROADCAST\n"
    ))
    .unwrap();
    assert!(ext.send_unicast);
    assert_eq!(ext.framing, Framing::Crlf);
    assert_eq!(ext.address, Some(GroupAddress::Broadcast));
    assert_eq!(ext.group_addr(), "255.255.255.255:47123".parse().unwrap());
}

#[test]
fn errors_name_line_key_and_value() {
    for (extra, key, value, reason) in [
        ("PORT=70000", "PORT", "70000", "port number"),
        ("PORT=0", "PORT", "0", "port number"),
        ("SCOPE=GLOBAL", "SCOPE", "GLOBAL", "HOSTLOCAL or LINKLOCAL"),
        ("ADDRESS=10.0.0.1", "ADDRESS", "10.0.0.1", "not a multicast"),
        ("ADDRESS=nowhere", "ADDRESS", "nowhere", "multicast address"),
        ("SEND_UNICAST=maybe", "SEND_UNICAST", "maybe", "yes or no"),
        ("IPVERSION=5", "IPVERSION", "5", "4 or 6"),
        ("FRAMING=CR", "FRAMING", "CR", "LF or CRLF"),
    ] {
        let text = format!("{MINIMAL}{extra}\n");
        match Config::parse(&text) {
            Err(ConfigError::Invalid {
                line,
                key: k,
                value: v,
                reason: r,
                ..
            }) => {
                assert_eq!((line, k.as_str(), v.as_str()), (5, key, value), "{extra}");
                assert!(r.contains(reason), "{extra}: {r}");
            }
            other => panic!("{extra}: expected an error, got {other:?}"),
        }
    }
    for (line, replaced, by, key) in [
        (
            3,
            "(HMAC-MD5-96,MTIzMTU2MTg5MTEy)",
            "(HMAC-MD4-96,MTIz)",
            "HASHKEY",
        ),
        (
            3,
            "(HMAC-MD5-96,MTIzMTU2MTg5MTEy)",
            "(HMAC-MD5-96,MTIzMTU2MTg5MTE)",
            "HASHKEY",
        ),
        (
            3,
            "(HMAC-MD5-96,MTIzMTU2MTg5MTEy)",
            "HMAC-MD5-96,MTIz",
            "HASHKEY",
        ),
        (
            4,
            "(NOENCR,)",
            "(IDEA,AAECAwQFBgcICQoLDA0ODw==)",
            "ENCRYPTIONKEY",
        ),
        (
            4,
            "(NOENCR,)",
            "(AES,AAECAwQFBgcICQoLDA0O)",
            "ENCRYPTIONKEY",
        ),
        (
            4,
            "(NOENCR,)",
            "(3DES,AAECAwQFBgcICQoLDA0ODw==)",
            "ENCRYPTIONKEY",
        ),
        (2, "CONFIG_VERSION=1", "CONFIG_VERSION=0", "CONFIG_VERSION"),
    ] {
        let text = MINIMAL.replace(replaced, by);
        match Config::parse(&text) {
            Err(ConfigError::Invalid {
                line: l,
                key: k,
                value,
                ..
            }) => {
                assert_eq!((l, k.as_str()), (line, key), "{by}");
                assert_eq!(value, by.trim_start_matches("CONFIG_VERSION="));
            }
            other => panic!("{by}: expected an error, got {other:?}"),
        }
    }
    let missing = MINIMAL.replace("HASHKEY=(HMAC-MD5-96,MTIzMTU2MTg5MTEy)\n", "");
    assert!(matches!(
        Config::parse(&missing),
        Err(ConfigError::Missing { key: "HASHKEY", .. })
    ));
    let headless = MINIMAL.replace("[MBUS]\n", "");
    assert!(matches!(
        Config::parse(&headless),
        Err(ConfigError::Invalid { line: 1, .. })
    ));
    let garbage = format!("{MINIMAL}just words\n");
    assert!(matches!(
        Config::parse(&garbage),
        Err(ConfigError::Invalid { line: 5, .. })
    ));
}

#[test]
fn written_text_parses_back() {
    for hash in [HashAlgo::HmacMd5_96, HashAlgo::HmacSha1_96] {
        for cipher in CipherAlgo::ALL {
            let config = Config::generate(hash, cipher);
            assert_eq!(config.hash.key.len(), hash.native_key_len());
            assert_eq!(config.encryption.key.len(), cipher.key_len());
            if cipher == CipherAlgo::Des {
                assert!(
                    config
                        .encryption
                        .key
                        .iter()
                        .all(|b| b.count_ones() % 2 == 1),
                    "odd parity"
                );
            }
            let text = config.to_file_text();
            assert!(text.contains("ADDRESS=239.255.255.247\nPORT=47000\n"));
            assert_eq!(Config::parse(&text).unwrap(), config);
            config.keys().unwrap();
        }
    }
    assert_ne!(
        Config::generate(HashAlgo::HmacMd5_96, CipherAlgo::None)
            .hash
            .key,
        Config::generate(HashAlgo::HmacMd5_96, CipherAlgo::None)
            .hash
            .key
    );
}

#[test]
fn file_error_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bus.conf");
    write_mode(&path, &format!("{MINIMAL}PORT=x\n"), 0o600);
    let err = file::load(&path).unwrap_err();
    let shown = err.to_string();
    assert!(
        shown.starts_with(&format!("{}:5: PORT=x:", path.display())),
        "{shown}"
    );
}

#[test]
fn readable_by_others_is_refused_with_a_fix() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bus.conf");
    for mode in [0o644, 0o640, 0o606, 0o620] {
        write_mode(&path, MINIMAL, mode);
        let err = file::load(&path).unwrap_err();
        assert!(matches!(err, ConfigError::Permissions { .. }), "{mode:o}");
        assert!(err
            .to_string()
            .contains(&format!("chmod 600 {}", path.display())));
        assert!(file::load_or_create(&path, HashAlgo::HmacMd5_96, CipherAlgo::None).is_err());
    }
    write_mode(&path, MINIMAL, 0o400);
    assert!(file::load(&path).is_ok(), "owner-only read is fine");
}

#[test]
fn load_never_creates_but_load_or_create_does() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(".mbus");
    assert!(matches!(
        file::load(&path),
        Err(ConfigError::NotFound { .. })
    ));
    assert!(!path.exists());

    let first = file::load_or_create(&path, HashAlgo::HmacMd5_96, CipherAlgo::None).unwrap();
    assert!(first.created);
    assert_eq!(
        fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let second = file::load_or_create(&path, HashAlgo::HmacMd5_96, CipherAlgo::None).unwrap();
    assert!(!second.created);
    assert_eq!(second.config, first.config);
    assert_eq!(file::load(&path).unwrap(), first.config);
}

#[test]
fn locate_uses_the_mbus_file_in_a_directory() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(
        file::locate(Some(dir.path())).unwrap(),
        dir.path().join(".mbus")
    );
    let plain = dir.path().join("other.conf");
    assert_eq!(file::locate(Some(&plain)).unwrap(), plain);
}

#[test]
fn write_new_never_overwrites_unless_asked() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("k");
    let a = Config::generate(HashAlgo::HmacMd5_96, CipherAlgo::None);
    let b = Config::generate(HashAlgo::HmacSha1_96, CipherAlgo::Aes);
    file::write_new(&path, &a, false).unwrap();
    assert!(matches!(
        file::write_new(&path, &b, false),
        Err(ConfigError::AlreadyExists { .. })
    ));
    assert_eq!(file::load(&path).unwrap(), a);
    fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
    file::write_new(&path, &b, true).unwrap();
    assert_eq!(
        fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(file::load(&path).unwrap(), b);
}

/// Another process holds the POSIX record lock on an empty file; it writes its
/// configuration only once the kernel shows us blocked on that lock. If
/// `load_or_create` did not wait for the lock it would see the empty file and
/// invent keys of its own.
#[test]
fn creation_waits_for_the_record_lock() {
    if !std::path::Path::new("/proc/locks").exists()
        || Command::new("python3").arg("-V").output().is_err()
    {
        eprintln!("skipped: needs /proc/locks and python3");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(".mbus");
    write_mode(&path, "", 0o600);
    let holder = r#"
import fcntl, os, sys, time
path, text = sys.argv[1], sys.argv[2]
f = open(path, "r+")
fcntl.lockf(f, fcntl.LOCK_EX)
print("locked", flush=True)
ino = os.fstat(f.fileno()).st_ino
deadline = time.time() + 60
while time.time() < deadline:
    waiting = [l for l in open("/proc/locks") if "->" in l and (":%d " % ino) in l]
    if waiting:
        break
    time.sleep(0.01)
else:
    sys.exit("nobody waited for the lock")
f.write(text); f.flush()
fcntl.lockf(f, fcntl.LOCK_UN)
"#;
    let theirs = Config::generate(HashAlgo::HmacSha1_96, CipherAlgo::None);
    let mut child = Command::new("python3")
        .args(["-c", holder])
        .arg(&path)
        .arg(theirs.to_file_text())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "locked");
    let loaded = file::load_or_create(&path, HashAlgo::HmacMd5_96, CipherAlgo::None).unwrap();
    assert!(child.wait().unwrap().success());
    assert!(
        !loaded.created,
        "must not create keys while another process holds the lock"
    );
    assert_eq!(loaded.config, theirs);
    let _ = std::io::stdout().flush();
}

#[test]
fn shipped_development_config_parses() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("conf/mbus-dev.conf");
    let config = Config::parse(&fs::read_to_string(path).unwrap()).unwrap();
    assert_eq!(config.scope, Scope::HostLocal);
    assert_eq!(
        config.group_addr(),
        "239.255.255.247:47099".parse().unwrap()
    );
    assert_eq!(config.hash.key.len(), 16);
    assert_eq!(config.framing, Framing::Lf);
}

#[test]
fn errors_print_as_sentences_even_as_debug_and_a_line_before_the_section_names_its_key_once() {
    let e = rmbus::config::ConfigError::Permissions {
        path: "/tmp/x.conf".into(),
        mode: 0o644,
    };
    // What `fn main() -> Result<(), Box<dyn Error>>` prints.
    let debug = format!("{e:?}");
    assert!(
        debug.contains("mode 0644") && debug.contains("chmod 600"),
        "{debug}"
    );
    let e = rmbus::config::Config::parse("CONFIG_VERSION=1\n[MBUS]\n").unwrap_err();
    let text = e.to_string();
    assert!(text.contains("CONFIG_VERSION=1:"), "{text}");
    assert!(!text.contains("CONFIG_VERSION=CONFIG_VERSION"), "{text}");
}
