//! The global options of every subcommand that joins the bus.

use std::net::IpAddr;
use std::path::PathBuf;

use clap::ValueEnum;
use rmbus::auth::{CipherAlgo, HashAlgo};
use rmbus::config::{file, Config, ConfigError, GroupAddress, Scope};
use rmbus::wire::Address;

use crate::Failure;

/// The configuration this run joined with, as the fields of a `ready`
/// event: `config` (the file), `group`, `port` and `scope`.
static USED: std::sync::OnceLock<serde_json::Value> = std::sync::OnceLock::new();

/// Set when the configuration this run joins with is to be printed on
/// stdout as a typed `config` event (`-v` with `--json`, for the commands
/// without a `ready` event of their own).
static CONFIG_EVENT: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Asks [`BusPlace::config`] to print, once, `{"event":"config","config":
/// FILE,"group":ADDR,"port":N,"scope":S}` on stdout before the command's
/// own output.
pub fn print_config_event() {
    CONFIG_EVENT.store(true, std::sync::atomic::Ordering::Relaxed);
}

/// Adds to `event` (a JSON object) the fields of the configuration this
/// run joined with, if it has joined.
pub fn with_config_fields(mut event: serde_json::Value) -> serde_json::Value {
    if let (Some(serde_json::Value::Object(used)), Some(e)) = (USED.get(), event.as_object_mut()) {
        for (k, v) in used {
            e.insert(k.clone(), v.clone());
        }
    }
    event
}

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

    /// The configuration if there is one, never creating it (see
    /// [`BusPlace::existing_config`]).
    pub fn existing_config(&self) -> Result<Option<Config>, Failure> {
        self.place.existing_config()
    }
}

/// Where the bus is, for the commands whose own address is fixed (the CMBS
/// ones).
#[derive(clap::Args, Clone)]
pub struct BusPlace {
    /// The configuration file, which must exist (default: $MBUS, else ~/.mbus,
    /// created with fresh keys if missing).
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
    /// The configuration file's settings, with this run's overrides applied.
    /// An explicit `--config` must exist; only the default location ($MBUS,
    /// else ~/.mbus) is created with fresh keys when missing or empty, and we
    /// say so.
    pub fn config(&self) -> Result<Config, Failure> {
        let (path, config) = match &self.config {
            Some(given) => {
                let path = file::locate(Some(given)).map_err(Failure::input)?;
                let config = file::load(&path).map_err(|e| match e {
                    ConfigError::NotFound { .. } => Failure::input(format!(
                        "{}: no such configuration file (--config names an existing file; \
                         without it rmbus uses $MBUS, else ~/.mbus, and creates that one)",
                        path.display()
                    )),
                    e => Failure::input(e),
                })?;
                (path, config)
            }
            None => {
                let path = file::locate(None).map_err(Failure::input)?;
                let loaded = file::load_or_create(&path, HashAlgo::HmacMd5_96, CipherAlgo::None)
                    .map_err(Failure::input)?;
                match (loaded.created, loaded.was_empty) {
                    (true, false) => eprintln!(
                        "rmbus: created {} with fresh keys (HMAC-MD5-96, no encryption)",
                        path.display()
                    ),
                    (true, true) => eprintln!(
                        "rmbus: {} was empty; wrote fresh keys into it (HMAC-MD5-96, no encryption)",
                        path.display()
                    ),
                    _ => {}
                }
                (path, loaded.config)
            }
        };
        let config = self.overridden(&path, config)?;
        tracing::info!(
            "configuration {}: group {}, scope {}",
            path.display(),
            config.group_addr(),
            config.scope.config_name()
        );
        let group = config.group_addr();
        let used = serde_json::json!({
            "config": path.display().to_string(),
            "group": group.ip().to_string(),
            "port": group.port(),
            "scope": config.scope.config_name(),
        });
        if USED.set(used.clone()).is_ok() && CONFIG_EVENT.load(std::sync::atomic::Ordering::Relaxed)
        {
            let mut event = serde_json::json!({"event": "config"});
            if let (Some(e), serde_json::Value::Object(fields)) = (event.as_object_mut(), used) {
                e.extend(fields);
            }
            crate::write_stdout(format!("{event}\n").as_bytes())?;
        }
        Ok(config)
    }

    /// The configuration file's settings if there is one, never creating it
    /// (for reading captures); `None` when the default location has none.
    pub fn existing_config(&self) -> Result<Option<Config>, Failure> {
        let path = file::locate(self.config.as_deref()).map_err(Failure::input)?;
        match file::load(&path) {
            Ok(config) => self.overridden(&path, config).map(Some),
            Err(ConfigError::NotFound { .. }) if self.config.is_none() => Ok(None),
            Err(e) => Err(Failure::input(e)),
        }
    }

    fn overridden(&self, path: &std::path::Path, mut config: Config) -> Result<Config, Failure> {
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
            if port == 0 {
                return Err(Failure::input(
                    "--port 0: the bus needs a fixed port (1 to 65535) that every entity shares",
                ));
            }
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
