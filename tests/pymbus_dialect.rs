//! pyMbus's dialect, in: golden tests from the pyMbus documentation's own
//! examples. Its configuration file has no CONFIG_VERSION and writes
//! `(NOENCR, )` and `(HMAC-MD5-96, Y2eAxOs7XWLxrby6)` with a space; its example
//! command carries a Symbol with `/`, which RFC 3259's grammar does not
//! allow. We read both; we emit RFC forms only.

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
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert!(
        notes[0].contains("gex/panel/plugin/gxnet/interfaces"),
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
    let plain = Message::parse(b"mbus/1.0 1 1 U (app:a id:1) () ()\nx (OK sym-1.x)").unwrap();
    assert!(plain.outside_rfc().is_empty());
    assert!(String::from_utf8(plain.encode(Framing::Lf).unwrap())
        .unwrap()
        .trim_end()
        .ends_with("x (OK sym-1.x)"));
    // A name is still an RFC Symbol: '/' there is malformed.
    assert!(Message::parse(b"mbus/1.0 1 1 U (app:a id:1) () ()\nx/y ()").is_err());
}
