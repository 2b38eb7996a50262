//! The global options of every subcommand that joins the bus.

use std::net::IpAddr;
use std::path::PathBuf;

use clap::ValueEnum;
use rmbus::auth::{CipherAlgo, HashAlgo};
use rmbus::config::{file, Config, GroupAddress, Scope};
use rmbus::wire::Address;

use crate::Failure;

/// `--scope`.
#[derive(Clone, Copy, ValueEnum)]
pub enum ScopeArg {
    /// This host only (IPv4: the loopback, TTL 0).
    Hostlocal,
    /// The local link (TTL 1).
    Linklocal,
}

/// Where the bus is and who we are on it.
#[derive(clap::Args, Clone)]
pub struct BusArgs {
    #[command(flatten)]
    pub place: BusPlace,
    /// Our own address; an id element <pid>-<n>@<ip> is added unless given.
    #[arg(long, value_name = "ADDR", default_value = "(app:rmbus)")]
    pub address: Address,
}

impl BusArgs {
    /// The configuration (see [`BusPlace::config`]).
    pub fn config(&self) -> Result<Config, Failure> {
        self.place.config()
    }
}

/// Where the bus is, for the commands whose own address is fixed (the CMBS
/// ones).
#[derive(clap::Args, Clone)]
pub struct BusPlace {
    /// The configuration file (default: $MBUS, else ~/.mbus); created with fresh
    /// keys if missing.
    #[arg(long, value_name = "PATH")]
    config: Option<PathBuf>,
    /// The multicast group, overriding the configuration's ADDRESS.
    #[arg(long, value_name = "ADDR")]
    group: Option<IpAddr>,
    /// The port, overriding the configuration's PORT.
    #[arg(long, value_name = "N")]
    port: Option<u16>,
    /// The scope, overriding the configuration's SCOPE.
    #[arg(long, value_enum)]
    scope: Option<ScopeArg>,
    /// The interface, overriding the configuration's INTERFACE.
    #[arg(long, value_name = "IF")]
    interface: Option<String>,
}

impl BusPlace {
    /// The configuration file's settings (the file is created with fresh keys
    /// if missing, and we say so), with this run's overrides applied.
    pub fn config(&self) -> Result<Config, Failure> {
        let path = file::locate(self.config.as_deref()).map_err(Failure::input)?;
        let loaded = file::load_or_create(&path, HashAlgo::HmacMd5_96, CipherAlgo::None)
            .map_err(Failure::input)?;
        if loaded.created {
            eprintln!(
                "rmbus: created {} with fresh keys (HMAC-MD5-96, no encryption)",
                path.display()
            );
        }
        let mut config = loaded.config;
        if let Some(group) = self.group {
            if !group.is_multicast() {
                return Err(Failure::input(format!(
                    "--group {group}: not a multicast address"
                )));
            }
            config.address = Some(GroupAddress::Ip(group));
            config.ip_version = None;
        }
        if let Some(port) = self.port {
            config.port = Some(port);
        }
        if let Some(scope) = self.scope {
            config.scope = match scope {
                ScopeArg::Hostlocal => Scope::HostLocal,
                ScopeArg::Linklocal => Scope::LinkLocal,
            };
        }
        if let Some(interface) = &self.interface {
            config.interface = Some(interface.clone());
        }
        config
            .keys()
            .map_err(|e| Failure::input(format!("{}: {e}", path.display())))?;
        Ok(config)
    }
}
