//! pyMbus's dialect, in: golden tests from the pyMbus documentation's own
//! examples. Its configuration file has no CONFIG_VERSION and writes
//! `(NOENCR, )` and `(HMAC-MD5-96, Y2eAxOs7XWLxrby6)` with a space; its example
//! command carries a Symbol with `/`, which RFC 3259's grammar does not
//! allow; its headers carry TimeStamps in seconds (`mbus/1.0 3 1128277610 R
//! …`) and its example addresses no `id`. We read all of it; we emit RFC
//! forms only.

use rmbus::config::Config;
use rmbus::wire::{Framing, Message, Value};

/// The documentation's key lines; the other values are ours.
const PYMBUS_CONFIG: &str = "[MBUS]
ADDRESS=224.255.222.239
PORT=47000
ENCRYPTIONKEY=(NOENCR, )
HASHKEY=(HMAC-MD5-96, Y2eAxOs7XWLxrby6)
SCOPE=HOSTLOCAL
SEND_UNICAST=no
";

/// The documentation's example command.
const PYMBUS_COMMAND: &str = "desktop.configuration.notify (gex/panel/plugin/gxnet/interfaces (\"eth0\" \"eth1\" \"tun0\" ) )";

#[test]
fn a_pymbus_configuration_reads_as_version_1() {
    let config = Config::parse(PYMBUS_CONFIG).unwrap();
    assert_eq!(config.version, 1);
    assert_eq!(config.hash.key.len(), 12, "Y2eAxOs7XWLxrby6 is 12 octets");
    assert_eq!(config.group().to_string(), "224.255.222.239");
    assert!(!config.send_unicast);
    assert!(config.keys().is_ok());
    // Written back, it is the RFC form, with its version.
    let written = config.to_file_text();
    assert!(written.contains("CONFIG_VERSION=1"), "{written}");
    assert_eq!(Config::parse(&written).unwrap(), config);
}

#[test]
fn a_symbol_with_slashes_is_read_flagged_and_sent_as_a_string() {
    let text = format!(
        "mbus/1.0 3 1128277610 R (app:pymbus id:1-1@127.0.0.1) (app:us) ()\n{PYMBUS_COMMAND}"
    );
    let msg = Message::parse(text.as_bytes()).unwrap();
    let cmd = &msg.commands[0];
    assert_eq!(cmd.name, "desktop.configuration.notify");
    assert_eq!(
        cmd.args,
        [
            Value::symbol("gex/panel/plugin/gxnet/interfaces"),
            Value::List(vec![
                Value::string("eth0"),
                Value::string("eth1"),
                Value::string("tun0")
            ]),
        ]
    );
    let notes = msg.outside_rfc();
    assert_eq!(notes.len(), 2, "{notes:?}");
    assert!(
        notes[0].contains("TimeStamp 1128277610 is in seconds"),
        "{notes:?}"
    );
    assert!(
        notes[1].contains("gex/panel/plugin/gxnet/interfaces"),
        "{notes:?}"
    );
    // We never produce it: encoded, the Symbol goes as a String.
    let encoded = String::from_utf8(msg.encode(Framing::Lf).unwrap()).unwrap();
    assert!(
        encoded.trim_end().ends_with(
            "desktop.configuration.notify (\"gex/panel/plugin/gxnet/interfaces\" (\"eth0\" \"eth1\" \"tun0\"))"
        ),
        "{encoded}"
    );
    // RFC Symbols are untouched, and a message without pyMbus forms has no notes.
    let plain =
        Message::parse(b"mbus/1.0 1 1700000000000 U (app:a id:1) () ()\nx (OK sym-1.x)").unwrap();
    assert!(plain.outside_rfc().is_empty());
    assert!(String::from_utf8(plain.encode(Framing::Lf).unwrap())
        .unwrap()
        .trim_end()
        .ends_with("x (OK sym-1.x)"));
    // A name is still an RFC Symbol: '/' there is malformed.
    assert!(Message::parse(b"mbus/1.0 1 1 U (app:a id:1) () ()\nx/y ()").is_err());
}

/// The documentation's header: SeqNum 3, TimeStamp 1128277610 (seconds:
/// 2005-10-02), reliable, addresses without `id`.
const PYMBUS_HEADER: &str =
    "mbus/1.0 3 1128277610 R (app:gex module:panel) (app:gex module:config) ()";

#[test]
fn a_pymbus_header_reads_in_seconds_and_without_id() {
    let text = format!("{PYMBUS_HEADER}\n{PYMBUS_COMMAND}");
    let msg = Message::parse(text.as_bytes()).unwrap();
    let h = &msg.header;
    assert_eq!((h.seq, h.timestamp), (3, 1_128_277_610));
    assert!(h.timestamp_in_seconds());
    assert_eq!(h.timestamp_ms(), 1_128_277_610_000);
    assert_eq!(h.src.to_string(), "(app:gex module:panel)");
    assert_eq!(h.src.id(), None);
    let notes = msg.outside_rfc();
    assert_eq!(notes.len(), 3, "{notes:?}");
    assert!(notes[0].contains("has no id element"), "{notes:?}");
    assert!(notes[1].contains("read as 1128277610000 ms"), "{notes:?}");
    // Milliseconds stay milliseconds: the boundary is 10^11.
    let ms = Message::parse(b"mbus/1.0 3 100000000000 U (app:a id:1) () ()").unwrap();
    assert_eq!(ms.header.timestamp_ms(), 100_000_000_000);
    assert!(ms.outside_rfc().is_empty());
    let s = Message::parse(b"mbus/1.0 3 99999999999 U (app:a id:1) () ()").unwrap();
    assert_eq!(s.header.timestamp_ms(), 99_999_999_999_000);
}

#[test]
fn we_never_send_without_id() {
    use std::time::{Instant, SystemTime};
    let no_id = rmbus::wire::Address::parse("(app:gex module:panel)").unwrap();
    let config =
        rmbus::proto::EndpointConfig::from_config(&Config::parse(PYMBUS_CONFIG).unwrap(), 1)
            .unwrap();
    let refused = rmbus::proto::Endpoint::new(config, no_id, Instant::now(), SystemTime::now());
    assert!(matches!(
        refused,
        Err(rmbus::proto::SetupError::MissingId(_))
    ));
}

#[test]
fn the_replay_settings_read_and_write_back() {
    use std::time::Duration;
    let with = |extra: &str| Config::parse(&format!("{PYMBUS_CONFIG}{extra}"));
    let default = with("").unwrap();
    assert_eq!(default.replay_window, Some(Duration::from_secs(30)));
    assert_eq!(default.replay_clock, None);
    let policy = rmbus::proto::ReplayPolicy::from_config(&default);
    assert!(policy.clock_check, "on by default on HOSTLOCAL");
    let link = with("SCOPE=LINKLOCAL\n").unwrap();
    assert!(!rmbus::proto::ReplayPolicy::from_config(&link).clock_check);
    let set = with("REPLAY_WINDOW=5\nREPLAY_CLOCK=yes\nSCOPE=LINKLOCAL\n").unwrap();
    assert_eq!(set.replay_window, Some(Duration::from_secs(5)));
    assert!(rmbus::proto::ReplayPolicy::from_config(&set).clock_check);
    assert_eq!(Config::parse(&set.to_file_text()).unwrap(), set);
    let off = with("REPLAY_WINDOW=off\n").unwrap();
    assert_eq!(off.replay_window, None);
    assert!(off.to_file_text().contains("REPLAY_WINDOW=off"));
    assert_eq!(Config::parse(&off.to_file_text()).unwrap(), off);
    for (bad, key) in [
        ("REPLAY_WINDOW=0\n", "REPLAY_WINDOW"),
        ("REPLAY_WINDOW=30s\n", "REPLAY_WINDOW"),
        ("REPLAY_CLOCK=maybe\n", "REPLAY_CLOCK"),
    ] {
        let e = with(bad).unwrap_err().to_string();
        assert!(
            e.contains(key) && e.contains("configuration:8:"),
            "{bad}: {e}"
        );
    }
}
