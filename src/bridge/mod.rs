//! [`spawn_bridge`]: a CMBS bridge ([`crate::cmbs::Bridge`]) on real
//! sockets and a real NATS cluster (feature `bridge`), with a
//! [`BridgeHandle`] to stop it and wait for its end. The `rmbus bridge`
//! command is this with arguments.
//!
//! Two threads: the bus thread runs a [`Host`](crate::runtime::Host) with the bridge's one
//! entity in a mio loop (as [`crate::runtime::spawn_members`] does), and
//! the NATS thread runs an async-nats client on a tokio runtime of its own.
//! What NATS brings is handed to the bus thread through a channel and its
//! waker; what the bridge sends on NATS goes the other way.
//!
//! ```no_run
//! use rmbus::bridge::{spawn_bridge, BridgeOptions, NatsCredentials};
//! use rmbus::config::file;
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let config = file::load(&file::locate(None)?)?; // $MBUS, else ~/.mbus
//! let mut options = BridgeOptions::new("office-1", vec!["nats://127.0.0.1:4222".into()]);
//! options.credentials = NatsCredentials::Token("s3cret".into());
//! let bridge = spawn_bridge(&config, options, |event| println!("{event:?}"))?;
//! // … later:
//! bridge.stop();
//! bridge.wait()?;
//! # Ok(())
//! # }
//! ```

mod bus;
mod nats;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use crate::cmbs::crossing::valid_site;
use crate::cmbs::{BridgeConfig, BridgeEvent, BridgeStats};
use crate::config::Config;
use crate::runtime::BindError;

/// How a bridge proves who it is to the NATS servers.
#[derive(Clone, Default, PartialEq, Eq)]
pub enum NatsCredentials {
    /// None (a server without authorization).
    #[default]
    None,
    /// A user and its password.
    UserPassword {
        /// The user.
        user: String,
        /// Its password.
        password: String,
    },
    /// A token.
    Token(String),
    /// An nkey: the seed (`SU…`), whose public key the server knows.
    NkeySeed(String),
}

impl std::fmt::Debug for NatsCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secret.
        match self {
            NatsCredentials::None => f.write_str("None"),
            NatsCredentials::UserPassword { user, .. } => write!(f, "UserPassword({user})"),
            NatsCredentials::Token(_) => f.write_str("Token"),
            NatsCredentials::NkeySeed(_) => f.write_str("NkeySeed"),
        }
    }
}

/// What a bridge is started with.
#[derive(Debug, Clone)]
pub struct BridgeOptions {
    /// The NATS servers (`nats://host:port`, `tls://host:port`); it
    /// connects to any of them and reconnects to any, for ever.
    pub servers: Vec<String>,
    /// Its credentials.
    pub credentials: NatsCredentials,
    /// A CA certificate file (PEM) to check the servers' certificates
    /// with; TLS is then required.
    pub ca_file: Option<PathBuf>,
    /// Require TLS even without a CA file of our own (the system's roots).
    pub require_tls: bool,
    /// How long the first connection attempt may take before the bridge
    /// starts anyway and keeps trying (3 s).
    pub connect_timeout: Duration,
    /// Connect only to the servers given, never to the others the cluster
    /// tells about (by default a bridge fails over to any server of the
    /// cluster, listed or not).
    pub only_listed: bool,
    /// The bridge's settings (its site, subjects and timers).
    pub bridge: BridgeConfig,
}

impl BridgeOptions {
    /// A bridge for site `site` on the cluster of `servers`, no
    /// credentials, no TLS, the default timers.
    pub fn new(site: &str, servers: Vec<String>) -> BridgeOptions {
        BridgeOptions {
            servers,
            credentials: NatsCredentials::None,
            ca_file: None,
            require_tls: false,
            connect_timeout: Duration::from_secs(3),
            only_listed: false,
            bridge: BridgeConfig::new(site),
        }
    }
}

/// Why a bridge did not start.
#[derive(Debug, thiserror::Error)]
pub enum BridgeSpawnError {
    /// The site name cannot be one (letters, digits, `-`, `_`; up to 64).
    #[error("{0:?} is no site name: use 1 to 64 letters, digits, '-' or '_'")]
    Site(String),
    /// No server given.
    #[error("no NATS server given")]
    NoServers,
    /// The bus could not be joined.
    #[error(transparent)]
    Bind(#[from] BindError),
    /// The NATS servers refused our credentials (or the credentials are
    /// unusable): retrying would not help.
    #[error("the NATS servers refused the bridge's credentials: {0}")]
    Credentials(String),
    /// The NATS options are wrong (a server URL, the CA file).
    #[error("NATS: {0}")]
    Nats(String),
    /// A thread or the event loop could not be made.
    #[error("cannot start the bridge: {0}")]
    Io(#[from] std::io::Error),
}

/// How the bridge's threads ended, for [`BridgeHandle::wait`].
type Ended = (Mutex<Option<Result<(), String>>>, Condvar);

/// How many NATS messages may wait for the bus thread, and how many of the
/// bridge's messages for the NATS thread; beyond, they are dropped and
/// counted (a request dropped on its way out is answered at once, as one
/// that could not be sent).
const QUEUE: usize = 65_536;

/// What the bridge's threads share with its handle.
#[derive(Default)]
struct Shared {
    stop: AtomicBool,
    alive: AtomicBool,
    connected: AtomicBool,
    /// NATS messages handed to the bus thread and not taken yet.
    queued: std::sync::atomic::AtomicUsize,
    /// Messages dropped because a queue was full.
    dropped: std::sync::atomic::AtomicU64,
    stats: Mutex<Snapshot>,
    ended: Ended,
}

/// What the bridge looked like at its last turn.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// Its counters.
    pub stats: BridgeStats,
    /// True once it listened long enough and publishes and serves.
    pub active: bool,
    /// The members of other sites it knows.
    pub remote_members: usize,
    /// The sites it knows, and their members.
    pub sites: Vec<(String, usize)>,
    /// Its entity's address on the bus.
    pub address: String,
    /// Messages dropped between the bus and NATS because a queue was full.
    pub dropped: u64,
}

/// A running bridge.
pub struct BridgeHandle {
    shared: Arc<Shared>,
    waker: Arc<mio::Waker>,
}

impl std::fmt::Debug for BridgeHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BridgeHandle")
            .field("alive", &self.is_alive())
            .finish_non_exhaustive()
    }
}

impl BridgeHandle {
    /// Asks it to stop: other sites are told its members are gone, and its
    /// entity says bye. Returns at once; see [`BridgeHandle::wait`].
    pub fn stop(&self) {
        self.shared.stop.store(true, Ordering::Release);
        let _ = self.waker.wake();
    }

    /// Waits until it has stopped: `Err` says why it stopped on its own
    /// (another bridge for its site runs, the bus failed).
    pub fn wait(&self) -> Result<(), String> {
        let (lock, cv) = &self.shared.ended;
        let mut ended = lock.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if let Some(r) = ended.as_ref() {
                return r.clone();
            }
            ended = cv.wait(ended).unwrap_or_else(|p| p.into_inner());
        }
    }

    /// True until it has stopped.
    pub fn is_alive(&self) -> bool {
        self.shared.alive.load(Ordering::Acquire)
    }

    /// True while it is connected to a NATS server.
    pub fn is_connected(&self) -> bool {
        self.shared.connected.load(Ordering::Acquire)
    }

    /// What it looked like at its last turn.
    pub fn snapshot(&self) -> Snapshot {
        self.shared
            .stats
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

impl Drop for BridgeHandle {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Starts a bridge on the bus `config` describes and the NATS cluster of
/// `options`; `on_event` gets what it tells (on the bus thread: keep it
/// short). A cluster it cannot reach is no error: it says so (a warning in
/// the log) and keeps trying; credentials the servers refuse are.
pub fn spawn_bridge(
    config: &Config,
    options: BridgeOptions,
    on_event: impl FnMut(BridgeEvent) + Send + 'static,
) -> Result<BridgeHandle, BridgeSpawnError> {
    let site = options.bridge.site.clone();
    if !valid_site(&site) {
        return Err(BridgeSpawnError::Site(site));
    }
    if options.servers.is_empty() {
        return Err(BridgeSpawnError::NoServers);
    }
    let shared = Arc::new(Shared::default());
    shared.alive.store(true, Ordering::Release);
    let (to_bus, from_nats) = std::sync::mpsc::channel();
    let (to_nats, from_bus) = tokio::sync::mpsc::channel(QUEUE);
    let bus = bus::BusSide::bind(
        config,
        &options.bridge,
        Arc::clone(&shared),
        from_nats,
        to_nats,
    )?;
    let waker = bus.waker();
    let subscriptions = bus.subscriptions();
    shared
        .stats
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .address = bus.address().to_owned();
    let nats = nats::NatsSide::connect(
        &options,
        subscriptions,
        to_bus,
        Arc::clone(&waker),
        Arc::clone(&shared),
    )?;
    let nats_thread = std::thread::Builder::new()
        .name("rmbus-bridge-nats".into())
        .spawn(move || nats.run(from_bus))?;
    let guard = EndGuard {
        shared: Arc::clone(&shared),
        result: Err("the bridge's thread panicked (in a callback?)".into()),
    };
    std::thread::Builder::new()
        .name("rmbus-bridge".into())
        .spawn(move || {
            // The whole guard moves here (not only its field): it ends
            // with this thread.
            let mut guard = guard;
            guard.result = bus.run(Box::new(on_event));
            if nats_thread.join().is_err() {
                tracing::error!("the bridge's NATS thread panicked");
            }
        })?;
    Ok(BridgeHandle { shared, waker })
}

/// However the bus thread ends (a panic in a callback too), the bridge is
/// marked stopped and [`BridgeHandle::wait`] returns.
struct EndGuard {
    shared: Arc<Shared>,
    result: Result<(), String>,
}

impl Drop for EndGuard {
    fn drop(&mut self) {
        self.shared.alive.store(false, Ordering::Release);
        let (lock, cv) = &self.shared.ended;
        *lock.lock().unwrap_or_else(|p| p.into_inner()) = Some(self.result.clone());
        cv.notify_all();
    }
}
