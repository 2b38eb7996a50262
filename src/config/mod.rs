//! The `[MBUS]` configuration file (RFC 3259 §12, §12.1) and our extension keys.
//!
//! - [`Config::parse`] and [`Config::to_file_text`] are pure: text in, text out.
//! - [`file`](mod@file) finds the file (`$MBUS`, a file or a directory holding `.mbus`, else
//!   `~/.mbus`), refuses one that others can read, takes a POSIX record lock while
//!   reading or creating it, and creates it with fresh keys when it is missing.
//! - [`Config::generate`] makes fresh keys from the operating system's CSPRNG.
//!
//! The file:
//!
//! ```text
//! [MBUS]
//! CONFIG_VERSION=1
//! HASHKEY=(HMAC-MD5-96,<base64 key>)
//! ENCRYPTIONKEY=(NOENCR,)
//! SCOPE=HOSTLOCAL
//! ADDRESS=239.255.255.247
//! PORT=47000
//! ```
//!
//! plus, optionally, `INTERFACE`, `SEND_UNICAST` (yes/no), `IPVERSION` (4/6),
//! `FRAMING` (LF/CRLF), `REPLAY_WINDOW` (seconds, or `off`) and `REPLAY_CLOCK`
//! (yes/no). Unknown keys are ignored (logged at debug level). A file without
//! `CONFIG_VERSION` (as pyMbus writes it) is read as version 1.

pub mod file;
mod keygen;
mod text;
pub use text::{KeyHint, UnknownKey};

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use crate::auth::{CipherAlgo, HashAlgo, KeyError, Keys};
use crate::wire::Framing;

/// The default IPv4 group (RFC 3259 §6.1.1).
pub const DEFAULT_GROUP_V4: Ipv4Addr = Ipv4Addr::new(239, 255, 255, 247);
/// The default IPv6 host-local group FF01::300 (RFC 3259 §6.1.2).
pub const DEFAULT_GROUP_V6_HOSTLOCAL: Ipv6Addr = Ipv6Addr::new(0xff01, 0, 0, 0, 0, 0, 0, 0x300);
/// The default IPv6 link-local group FF02::300 (RFC 3259 §6.1.2).
pub const DEFAULT_GROUP_V6_LINKLOCAL: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0x300);
/// The default port (RFC 3259 §6.1.4).
pub const DEFAULT_PORT: u16 = 47000;
/// The default `REPLAY_WINDOW`: 30 s.
pub const DEFAULT_REPLAY_WINDOW: Duration = Duration::from_secs(30);
/// The configuration version this crate reads and writes.
pub const CONFIG_VERSION: u32 = 1;

/// How far the bus reaches (RFC 3259 §6.1; `SCOPE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Scope {
    /// Never leaves the host: IPv4 on the loopback with TTL 0; IPv6 FF01::300
    /// (interface-local) with hop limit 0. The default when `SCOPE` is missing.
    #[default]
    HostLocal,
    /// One link: TTL / hop limit 1 on the configured interface.
    LinkLocal,
}

impl Scope {
    /// The config keyword.
    pub fn config_name(self) -> &'static str {
        match self {
            Scope::HostLocal => "HOSTLOCAL",
            Scope::LinkLocal => "LINKLOCAL",
        }
    }

    /// The IP TTL / hop limit for this scope.
    pub fn ttl(self) -> u32 {
        match self {
            Scope::HostLocal => 0,
            Scope::LinkLocal => 1,
        }
    }
}

/// The `ADDRESS` entry: a multicast group, or broadcast (RFC 3259 §6.1.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GroupAddress {
    /// An IPv4 or IPv6 (multicast) address.
    Ip(IpAddr),
    /// `BROADCAST`: 255.255.255.255 (IPv4) or FF0X::1 (IPv6).
    Broadcast,
}

/// IPv4 or IPv6 (`IPVERSION`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum IpVersion {
    /// IPv4 (the default).
    #[default]
    V4,
    /// IPv6.
    V6,
}

/// An algorithm and its key, as in `HASHKEY=(algo,key)` / `ENCRYPTIONKEY=(algo,key)`.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyEntry<A> {
    /// The algorithm.
    pub algo: A,
    /// The decoded key octets (empty for NOENCR).
    pub key: Vec<u8>,
}

impl<A: fmt::Debug> fmt::Debug for KeyEntry<A> {
    /// Never prints key material.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyEntry({:?}, {} octets)", self.algo, self.key.len())
    }
}

/// One bus's configuration: the contents of an `[MBUS]` file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// `CONFIG_VERSION` (1).
    pub version: u32,
    /// `HASHKEY`.
    pub hash: KeyEntry<HashAlgo>,
    /// `ENCRYPTIONKEY`.
    pub encryption: KeyEntry<CipherAlgo>,
    /// `SCOPE` (default HOSTLOCAL).
    pub scope: Scope,
    /// `ADDRESS`, if given; else the RFC default for the IP version and scope.
    pub address: Option<GroupAddress>,
    /// `PORT`, if given; else 47000.
    pub port: Option<u16>,
    /// `INTERFACE`: the interface name for link-local (and IPv6) traffic.
    pub interface: Option<String>,
    /// `SEND_UNICAST`: use the RFC's unicast optimisation (default no).
    pub send_unicast: bool,
    /// `IPVERSION`, if given; else derived from `ADDRESS`, else IPv4.
    pub ip_version: Option<IpVersion>,
    /// `FRAMING`: LF (default) or CRLF.
    pub framing: Framing,
    /// `REPLAY_WINDOW`: how far back each source's datagrams are remembered
    /// to refuse replays (seconds; 30 by default); `None` for `off`.
    pub replay_window: Option<Duration>,
    /// `REPLAY_CLOCK` (yes/no): also refuse datagrams whose TimeStamp is
    /// further than the window from our clock. `None` (absent) means yes on
    /// `SCOPE=HOSTLOCAL` and no on `LINKLOCAL`.
    pub replay_clock: Option<bool>,
}

impl Config {
    /// A configuration with the given keys and every other entry at its default.
    pub fn with_keys(hash: KeyEntry<HashAlgo>, encryption: KeyEntry<CipherAlgo>) -> Config {
        Config {
            version: CONFIG_VERSION,
            hash,
            encryption,
            scope: Scope::HostLocal,
            address: None,
            port: None,
            interface: None,
            send_unicast: false,
            ip_version: None,
            framing: Framing::Lf,
            replay_window: Some(DEFAULT_REPLAY_WINDOW),
            replay_clock: None,
        }
    }

    /// The prepared keys for [`crate::auth::seal`] and [`crate::auth::open`].
    pub fn keys(&self) -> Result<Keys, KeyError> {
        Keys::new(
            self.hash.algo,
            &self.hash.key,
            self.encryption.algo,
            &self.encryption.key,
        )
    }

    /// The IP version in effect: `IPVERSION`, else that of `ADDRESS`, else IPv4.
    pub fn effective_ip_version(&self) -> IpVersion {
        match (self.ip_version, self.address) {
            (Some(v), _) => v,
            (None, Some(GroupAddress::Ip(IpAddr::V6(_)))) => IpVersion::V6,
            _ => IpVersion::V4,
        }
    }

    /// The group address in effect: `ADDRESS`, else the RFC default for the IP
    /// version and scope (RFC 3259 §6.1).
    pub fn group(&self) -> IpAddr {
        let v6 = self.effective_ip_version() == IpVersion::V6;
        match (self.address, v6) {
            (Some(GroupAddress::Ip(ip)), _) => ip,
            (Some(GroupAddress::Broadcast), false) => IpAddr::V4(Ipv4Addr::BROADCAST),
            (Some(GroupAddress::Broadcast), true) => IpAddr::V6(match self.scope {
                Scope::HostLocal => Ipv6Addr::new(0xff01, 0, 0, 0, 0, 0, 0, 1),
                Scope::LinkLocal => Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1),
            }),
            (None, false) => IpAddr::V4(DEFAULT_GROUP_V4),
            (None, true) => IpAddr::V6(match self.scope {
                Scope::HostLocal => DEFAULT_GROUP_V6_HOSTLOCAL,
                Scope::LinkLocal => DEFAULT_GROUP_V6_LINKLOCAL,
            }),
        }
    }

    /// The port in effect: `PORT`, else 47000.
    pub fn effective_port(&self) -> u16 {
        self.port.unwrap_or(DEFAULT_PORT)
    }

    /// The group and port in effect.
    pub fn group_addr(&self) -> SocketAddr {
        SocketAddr::new(self.group(), self.effective_port())
    }
}

/// A configuration problem. Every variant names the file (when there is one);
/// value errors also name the line, the key and the offending value.
#[derive(thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read, created or written.
    #[error("{path}: {source}", path = .path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The file does not exist and this command does not create one.
    #[error("{path}: no such configuration file; create one with `rmbus keygen -o {path}`", path = .path.display())]
    NotFound {
        /// The file.
        path: PathBuf,
    },
    /// The file exists and we were asked not to overwrite it.
    #[error("{path}: already exists; pass --force to replace it (its keys will be lost)", path = .path.display())]
    AlreadyExists {
        /// The file.
        path: PathBuf,
    },
    /// Others may read or write the file (RFC 3259 §12.1: mode 0600).
    #[error("{path}: mode {mode:04o} lets other users read or change the bus keys; fix it with `chmod 600 {path}`", path = .path.display())]
    Permissions {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// No usable location: neither `$MBUS` nor `$HOME` is set.
    #[error("no configuration location: set MBUS to a file or directory, or HOME")]
    NoLocation,
    /// A line or value that cannot be used.
    #[error("{at}: {what}: {reason}", at = location(.path, *.line), what = entry(.key, .value))]
    Invalid {
        /// The file, if parsing one.
        path: Option<PathBuf>,
        /// 1-based line number (0 when the problem is not on one line).
        line: usize,
        /// The key (or the section header) at fault.
        key: String,
        /// The offending value as written.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A mandatory key is missing (RFC 3259 §12.1).
    #[error("{at}: the mandatory entry {key} is missing", at = location(.path, 0))]
    Missing {
        /// The file, if parsing one.
        path: Option<PathBuf>,
        /// The key.
        key: &'static str,
    },
}

/// `KEY=VALUE` as written, or the bare line when it has no key.
fn entry(key: &str, value: &str) -> String {
    if key.is_empty() {
        format!("{value:?}")
    } else {
        format!("{key}={value}")
    }
}

fn location(path: &Option<PathBuf>, line: usize) -> String {
    let file = path
        .as_ref()
        .map_or_else(|| "configuration".to_owned(), |p| p.display().to_string());
    if line == 0 {
        file
    } else {
        format!("{file}:{line}")
    }
}

/// As its sentence: what `fn main() -> Result<(), Box<dyn Error>>` prints
/// when a configuration error reaches it (the mode in octal, the path as
/// written).
impl std::fmt::Debug for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

impl ConfigError {
    /// Attaches the file name to an error from [`Config::parse`].
    pub fn in_file(self, file: PathBuf) -> ConfigError {
        match self {
            ConfigError::Invalid {
                line,
                key,
                value,
                reason,
                ..
            } => ConfigError::Invalid {
                path: Some(file),
                line,
                key,
                value,
                reason,
            },
            ConfigError::Missing { key, .. } => ConfigError::Missing {
                path: Some(file),
                key,
            },
            other => other,
        }
    }
}
