//! The pure `[MBUS]` text parser and writer (RFC 3259 §12.1).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::IpAddr;
use std::time::Duration;

use base64::Engine as _;
use configparser::ini::Ini;

use super::keygen::has_odd_parity;
use super::{
    Config, ConfigError, GroupAddress, IpVersion, KeyEntry, Scope, CONFIG_VERSION,
    DEFAULT_REPLAY_WINDOW,
};
use crate::auth::{CipherAlgo, HashAlgo};
use crate::wire::Framing;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;
const SECTION: &str = "MBUS";

/// Where each key of the `[MBUS]` section was written (the last line wins, as
/// in the parsed map).
struct Lines<'a> {
    by_key: HashMap<&'a str, usize>,
}

impl<'a> Lines<'a> {
    /// Checks the file's shape (first meaningful line `[MBUS]`, every other line
    /// `[section]` or `KEY=VALUE`) and records the line of each `[MBUS]` key.
    fn scan(text: &'a str) -> Result<Lines<'a>, ConfigError> {
        let mut by_key = HashMap::new();
        let mut section: Option<&str> = None;
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim();
            let number = i + 1;
            if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
                continue;
            }
            if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                section = Some(name.trim());
                continue;
            }
            let Some((key, value)) = line.split_once('=') else {
                return Err(invalid(number, "", line, "expected KEY=VALUE"));
            };
            match section {
                None => {
                    return Err(invalid(
                        number,
                        key.trim(),
                        value.trim(),
                        "the file must start with the [MBUS] section header",
                    ))
                }
                Some(SECTION) => {
                    by_key.insert(key.trim(), number);
                }
                Some(other) => {
                    tracing::debug!(section = other, "ignoring a section other than [MBUS]")
                }
            }
        }
        if section.is_none() {
            return Err(ConfigError::Missing {
                path: None,
                key: "[MBUS]",
            });
        }
        Ok(Lines { by_key })
    }

    fn line(&self, key: &str) -> usize {
        self.by_key.get(key).copied().unwrap_or(0)
    }
}

fn invalid(line: usize, key: &str, value: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        path: None,
        line,
        key: key.to_owned(),
        value: value.to_owned(),
        reason: reason.into(),
    }
}

/// A key of the `[MBUS]` section that is neither ours, nor UCL's, nor one
/// that other implementations write: most likely a typo, which would
/// otherwise leave the setting at its default in silence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownKey {
    /// Its 1-based line.
    pub line: usize,
    /// The key as written.
    pub key: String,
    /// What became of it.
    pub hint: KeyHint,
}

/// What [`UnknownKey`] says about a key (it is ignored in every case).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyHint {
    /// It starts with this key: UCL matches a line by the key it starts
    /// with but reads the value at that key's length (`PORTX=47099` is no
    /// port to it either), so the line is most likely a typo of this key.
    StartsWith(&'static str),
    /// It differs from this key only in case (keys are upper case).
    UpperCase(&'static str),
    /// Ignored; this known key is the nearest.
    DidYouMean(&'static str),
    /// Ignored; no known key is near.
    Ignored,
}

impl std::fmt::Display for UnknownKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let key = &self.key;
        match self.hint {
            KeyHint::StartsWith(k) => write!(
                f,
                "unknown key {key}, ignored (here and by UCL, which reads no value from it): did you mean {k}?"
            ),
            KeyHint::UpperCase(k) => {
                write!(f, "unknown key {key}, ignored: keys are upper case ({k})")
            }
            KeyHint::DidYouMean(k) => write!(f, "unknown key {key}, ignored: did you mean {k}?"),
            KeyHint::Ignored => write!(f, "unknown key {key}, ignored"),
        }
    }
}

/// Keys other implementations write, which we read past in silence (the
/// TZI/libgmbus timers and options).
const OTHERS_KEYS: [&str; 7] = [
    "TIMER_C",
    "TIMER_R",
    "WITH_ACK_PIGGY_BACKING",
    "RETENTION",
    "RETRIES",
    "DELIVER_LATE_MSGS",
    "CHECK_DIGEST",
];

/// The edit distance between `a` and `b` (insertions, deletions,
/// substitutions).
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let here = row[j + 1];
            row[j + 1] = if ca == *cb {
                prev
            } else {
                1 + prev.min(row[j]).min(row[j + 1])
            };
            prev = here;
        }
    }
    row[b.len()]
}

/// What an unknown `key` is taken for.
fn hint_for(key: &str) -> KeyHint {
    if let Some(k) = KNOWN_KEYS
        .iter()
        .filter(|k| key.starts_with(**k))
        .max_by_key(|k| k.len())
    {
        return KeyHint::StartsWith(k);
    }
    let all = KNOWN_KEYS.iter().chain(OTHERS_KEYS.iter());
    if let Some(k) = all.clone().find(|k| k.eq_ignore_ascii_case(key)) {
        return KeyHint::UpperCase(k);
    }
    let upper = key.to_ascii_uppercase();
    match all.map(|k| (distance(&upper, k), *k)).min() {
        Some((d, k)) if d <= 2.max(k.len() / 4) => KeyHint::DidYouMean(k),
        _ => KeyHint::Ignored,
    }
}

impl Config {
    /// Parses the text of an `[MBUS]` file. Errors name the line, the key and
    /// the value; [`ConfigError::in_file`] adds the file name. Unknown keys
    /// are left out ([`Config::parse_checked`] says which).
    pub fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse_checked(text).map(|(config, _)| config)
    }

    /// [`Config::parse`], and the keys that are neither ours, nor UCL's, nor
    /// one other implementations write (keys are case-sensitive, spaces
    /// stripped), each ignored, with the nearest known key.
    pub fn parse_checked(text: &str) -> Result<(Config, Vec<UnknownKey>), ConfigError> {
        let lines = Lines::scan(text)?;
        let mut defaults = Ini::new_cs().defaults();
        defaults.delimiters = vec!['='];
        defaults.comment_symbols = vec!['#', ';'];
        defaults.enable_inline_comments = false;
        let mut ini = Ini::new_from_defaults(defaults);
        let map = ini
            .read(text.to_owned())
            .map_err(|e| invalid(0, "", "", e))?;
        let empty = HashMap::new();
        let entries = map.get(SECTION).unwrap_or(&empty);
        let mut unknown: Vec<UnknownKey> = entries
            .keys()
            .filter(|k| !KNOWN_KEYS.contains(&k.as_str()) && !OTHERS_KEYS.contains(&k.as_str()))
            .map(|k| UnknownKey {
                line: lines.line(k),
                key: k.clone(),
                hint: hint_for(k),
            })
            .collect();
        unknown.sort_by_key(|u| u.line);
        let get = |key: &'static str| -> Option<(&str, usize)> {
            entries
                .get(key)
                .map(|v| (v.as_deref().unwrap_or(""), lines.line(key)))
        };
        let require = |key: &'static str| get(key).ok_or(ConfigError::Missing { path: None, key });

        // pyMbus writes no CONFIG_VERSION: such a file is version 1.
        let version = match get("CONFIG_VERSION") {
            Some((v, line)) => parse_version(v).ok_or_else(|| {
                invalid(
                    line,
                    "CONFIG_VERSION",
                    v,
                    "expected a version number of at least 1",
                )
            })?,
            None => {
                tracing::debug!("no CONFIG_VERSION (as pyMbus writes): read as version 1");
                1
            }
        };
        if version > CONFIG_VERSION {
            tracing::warn!(
                version,
                "configuration version is newer than 1; reading it as version 1"
            );
        }

        let (v, line) = require("HASHKEY")?;
        let hash = parse_hash_key(v).map_err(|r| invalid(line, "HASHKEY", v, r))?;

        let (v, line) = require("ENCRYPTIONKEY")?;
        let encryption =
            parse_encryption_key(v).map_err(|r| invalid(line, "ENCRYPTIONKEY", v, r))?;

        let mut config = Config::with_keys(hash, encryption);
        config.version = version;

        if let Some((v, line)) = get("SCOPE") {
            config.scope = match v.to_ascii_uppercase().as_str() {
                "HOSTLOCAL" => Scope::HostLocal,
                "LINKLOCAL" => Scope::LinkLocal,
                _ => return Err(invalid(line, "SCOPE", v, "expected HOSTLOCAL or LINKLOCAL")),
            };
        }
        if let Some((v, line)) = get("ADDRESS") {
            config.address = Some(parse_group(v).map_err(|r| invalid(line, "ADDRESS", v, r))?);
        }
        if let Some((v, line)) = get("PORT") {
            config.port = Some(
                v.parse::<u16>()
                    .ok()
                    .filter(|p| *p != 0 && v.len() <= 5 && v.bytes().all(|c| c.is_ascii_digit()))
                    .ok_or_else(|| {
                        invalid(line, "PORT", v, "expected a port number from 1 to 65535")
                    })?,
            );
        }
        if let Some((v, line)) = get("INTERFACE") {
            if v.is_empty() {
                return Err(invalid(line, "INTERFACE", v, "expected an interface name"));
            }
            config.interface = Some(v.to_owned());
        }
        if let Some((v, line)) = get("SEND_UNICAST") {
            config.send_unicast = match v.to_ascii_lowercase().as_str() {
                "yes" | "true" | "1" => true,
                "no" | "false" | "0" => false,
                _ => return Err(invalid(line, "SEND_UNICAST", v, "expected yes or no")),
            };
        }
        if let Some((v, line)) = get("IPVERSION") {
            config.ip_version = Some(match v {
                "4" => IpVersion::V4,
                "6" => IpVersion::V6,
                _ => return Err(invalid(line, "IPVERSION", v, "expected 4 or 6")),
            });
        }
        if let Some((v, line)) = get("FRAMING") {
            config.framing = match v.to_ascii_uppercase().as_str() {
                "LF" => Framing::Lf,
                "CRLF" => Framing::Crlf,
                _ => return Err(invalid(line, "FRAMING", v, "expected LF or CRLF")),
            };
        }
        if let Some((v, line)) = get("REPLAY_WINDOW") {
            config.replay_window = parse_replay_window(v).ok_or_else(|| {
                invalid(
                    line,
                    "REPLAY_WINDOW",
                    v,
                    "expected a number of seconds from 1 to 86400, or off",
                )
            })?;
        }
        if let Some((v, line)) = get("REPLAY_CLOCK") {
            config.replay_clock = Some(match v.to_ascii_lowercase().as_str() {
                "yes" | "true" | "1" => true,
                "no" | "false" | "0" => false,
                _ => return Err(invalid(line, "REPLAY_CLOCK", v, "expected yes or no")),
            });
        }
        if let (Some(version), Some(GroupAddress::Ip(ip))) = (config.ip_version, config.address) {
            if (version == IpVersion::V6) != ip.is_ipv6() {
                let (v, line) = get("ADDRESS").unwrap_or_default();
                return Err(invalid(
                    line,
                    "ADDRESS",
                    v,
                    "the address family differs from IPVERSION",
                ));
            }
        }
        Ok((config, unknown))
    }

    /// The configuration as `[MBUS]` file text (LF line ends).
    pub fn to_file_text(&self) -> String {
        let mut out = String::from("[MBUS]\n");
        let _ = writeln!(out, "CONFIG_VERSION={}", self.version);
        let _ = writeln!(
            out,
            "HASHKEY=({},{})",
            self.hash.algo,
            B64.encode(&self.hash.key)
        );
        let _ = writeln!(
            out,
            "ENCRYPTIONKEY=({},{})",
            self.encryption.algo,
            B64.encode(&self.encryption.key)
        );
        let _ = writeln!(out, "SCOPE={}", self.scope.config_name());
        match self.address {
            Some(GroupAddress::Ip(ip)) => {
                let _ = writeln!(out, "ADDRESS={ip}");
            }
            Some(GroupAddress::Broadcast) => out.push_str("ADDRESS=BROADCAST\n"),
            None => {}
        }
        if let Some(port) = self.port {
            let _ = writeln!(out, "PORT={port}");
        }
        if let Some(interface) = &self.interface {
            let _ = writeln!(out, "INTERFACE={interface}");
        }
        if self.send_unicast {
            out.push_str("SEND_UNICAST=yes\n");
        }
        match self.ip_version {
            Some(IpVersion::V4) => out.push_str("IPVERSION=4\n"),
            Some(IpVersion::V6) => out.push_str("IPVERSION=6\n"),
            None => {}
        }
        if self.framing == Framing::Crlf {
            out.push_str("FRAMING=CRLF\n");
        }
        match self.replay_window {
            None => out.push_str("REPLAY_WINDOW=off\n"),
            Some(w) if w != DEFAULT_REPLAY_WINDOW => {
                let _ = writeln!(out, "REPLAY_WINDOW={}", w.as_secs());
            }
            Some(_) => {}
        }
        match self.replay_clock {
            Some(true) => out.push_str("REPLAY_CLOCK=yes\n"),
            Some(false) => out.push_str("REPLAY_CLOCK=no\n"),
            None => {}
        }
        out
    }
}

const KNOWN_KEYS: [&str; 12] = [
    "CONFIG_VERSION",
    "HASHKEY",
    "ENCRYPTIONKEY",
    "SCOPE",
    "ADDRESS",
    "PORT",
    "INTERFACE",
    "SEND_UNICAST",
    "IPVERSION",
    "FRAMING",
    "REPLAY_WINDOW",
    "REPLAY_CLOCK",
];

/// `REPLAY_WINDOW`: whole seconds from 1 to a day, or `off` (`Some(None)`).
fn parse_replay_window(v: &str) -> Option<Option<Duration>> {
    if v.eq_ignore_ascii_case("off") {
        return Some(None);
    }
    if v.is_empty() || v.len() > 5 || !v.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let secs: u64 = v.parse().ok()?;
    (1..=86_400)
        .contains(&secs)
        .then(|| Some(Duration::from_secs(secs)))
}

fn parse_version(v: &str) -> Option<u32> {
    if v.is_empty() || v.len() > 10 || !v.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    v.parse::<u32>().ok().filter(|&n| n >= 1)
}

/// Splits `(algo,key)` (spaces allowed around both; the key may be absent).
fn split_entry(v: &str) -> Result<(&str, &str), String> {
    let inner = v
        .trim()
        .strip_prefix('(')
        .and_then(|s| s.strip_suffix(')'))
        .ok_or("expected (ALGORITHM,BASE64-KEY)")?;
    Ok(match inner.split_once(',') {
        Some((algo, key)) => (algo.trim(), key.trim()),
        None => (inner.trim(), ""),
    })
}

fn decode_key(key: &str) -> Result<Vec<u8>, String> {
    B64.decode(key)
        .map_err(|_| "the key is not base64 with padding".to_owned())
}

fn parse_hash_key(v: &str) -> Result<KeyEntry<HashAlgo>, String> {
    let (algo, key) = split_entry(v)?;
    let algo = HashAlgo::from_config_name(algo)
        .ok_or("unknown hash algorithm; expected HMAC-MD5-96 or HMAC-SHA1-96")?;
    let key = decode_key(key)?;
    if key.is_empty() {
        return Err("the hash key is empty".into());
    }
    if key.len() < algo.native_key_len() {
        tracing::warn!(
            octets = key.len(),
            "the {algo} key is shorter than {} octets (weak, but accepted)",
            algo.native_key_len()
        );
    }
    Ok(KeyEntry { algo, key })
}

fn parse_encryption_key(v: &str) -> Result<KeyEntry<CipherAlgo>, String> {
    let (name, key) = split_entry(v)?;
    if name.eq_ignore_ascii_case("IDEA") {
        return Err("IDEA is not supported by rmbus; use AES, DES or 3DES".into());
    }
    let algo = CipherAlgo::from_config_name(name)
        .ok_or("unknown encryption algorithm; expected NOENCR, AES, DES or 3DES")?;
    if algo == CipherAlgo::None {
        return Ok(KeyEntry { algo, key: vec![] });
    }
    let key = decode_key(key)?;
    if key.len() != algo.key_len() {
        return Err(format!(
            "{algo} needs a {}-octet key; this one decodes to {} octets",
            algo.key_len(),
            key.len()
        ));
    }
    if matches!(algo, CipherAlgo::Des | CipherAlgo::TripleDes) && !has_odd_parity(&key) {
        tracing::warn!("the {algo} key does not have odd parity; UCL programs will refuse it");
    }
    Ok(KeyEntry { algo, key })
}

fn parse_group(v: &str) -> Result<GroupAddress, String> {
    if v.eq_ignore_ascii_case("BROADCAST") {
        return Ok(GroupAddress::Broadcast);
    }
    let ip: IpAddr = v
        .parse()
        .map_err(|_| "expected an IPv4 or IPv6 multicast address, or BROADCAST".to_owned())?;
    let broadcast = matches!(ip, IpAddr::V4(v4) if v4.is_broadcast());
    if !ip.is_multicast() && !broadcast {
        return Err("not a multicast address".into());
    }
    Ok(GroupAddress::Ip(ip))
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEYS: &str =
        "[MBUS]\nCONFIG_VERSION=1\nHASHKEY=(HMAC-MD5-96,MTIzMTU2MTg5MTEy)\nENCRYPTIONKEY=(NOENCR,)\n";

    #[test]
    fn an_unknown_key_is_named_with_its_line_and_the_nearest_known_one() {
        let text =
            format!("{KEYS}PROT=47099\nport=47098\nTIMER_C=100\nSCOPEX=LINKLOCAL\nXYZZY_PLUGH=1\n");
        let (config, unknown) = Config::parse_checked(&text).unwrap();
        let said: Vec<(usize, &str, KeyHint)> = unknown
            .iter()
            .map(|u| (u.line, u.key.as_str(), u.hint.clone()))
            .collect();
        assert_eq!(
            said,
            [
                (5, "PROT", KeyHint::DidYouMean("PORT")),
                (6, "port", KeyHint::UpperCase("PORT")),
                (8, "SCOPEX", KeyHint::StartsWith("SCOPE")),
                (9, "XYZZY_PLUGH", KeyHint::Ignored),
            ]
        );
        assert_eq!(config.port, None, "neither PROT nor port sets the port");
        assert_eq!(config.scope, Scope::HostLocal, "nor SCOPEX the scope");
        assert_eq!(
            unknown[0].to_string(),
            "unknown key PROT, ignored: did you mean PORT?"
        );
        assert!(unknown[1].to_string().contains("keys are upper case"));
        // A key that only starts with ours is ignored, whatever it holds.
        let (config, unknown) =
            Config::parse_checked(&format!("{KEYS}PORTS=1,2\nPORT=47001\n")).unwrap();
        assert_eq!(config.port, Some(47001));
        assert_eq!(unknown[0].hint, KeyHint::StartsWith("PORT"));
    }
}
