//! The OCCI gateway (feature `gateway`): CMBS members and messages as OCCI
//! resources over HTTP, the CMBS kinds and actions of the pyCMBS recipes on
//! the [`crate::occi`] server, with a live monitor over a WebSocket.
//!
//! The gateway is the bus entity `(app:cmbs module:gateway)`. It hosts the
//! members created through it (on [`crate::runtime::spawn_members`], their
//! messages in one SQLite file of its state directory), shows the members
//! running elsewhere on the bus (read only, their actions forwarded over
//! the bus) and sends the messages created through it. Its OCCI entities
//! are kept in the same directory and come back, hosted members included,
//! when it starts again. `rmbus gateway` is this module with arguments.
//!
//! ```no_run
//! use rmbus::gateway::{Gateway, GatewayOptions};
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let config = rmbus::config::file::load(&rmbus::config::file::locate(None)?)?;
//! let mut options = GatewayOptions::new("/var/lib/my-app/gateway".into());
//! options.listen = "127.0.0.1:0".parse()?; // any free port
//! let gateway = Gateway::bind(&config, options).await?; // no users: loopback only
//! println!("serving {}", gateway.url());
//! gateway.run(async { let _ = tokio::signal::ctrl_c().await; }).await?;
//! # Ok(())
//! # }
//! ```

mod bus;
mod entities;
mod log;
mod model;
mod monitor;

use std::future::Future;
use std::net::SocketAddr;
use std::os::unix::fs::DirBuilderExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::config::Config;
use crate::occi::{EntityStore, Flavour, Limits, Listening, Server, Users};
use crate::runtime::{ExecHandler, MembersSpawnError};
use crate::wire::Address;

pub use log::StderrLog;

/// Where the gateway says what happens to it (requests served, members
/// that cannot be listed, monitors closed): one line each.
pub type Log = Arc<dyn Fn(String) + Send + Sync>;

/// How a gateway serves.
pub struct GatewayOptions {
    /// The address to listen on (`127.0.0.1:8090` by default; port 0: any
    /// free port, [`Gateway::local_addr`] says which).
    pub listen: SocketAddr,
    /// The state directory: the OCCI entities and the hosted members'
    /// store (`gateway.sqlite`), created with mode 0700.
    pub state: PathBuf,
    /// Who may use it (HTTP Basic). `None`: no authentication, allowed on
    /// a loopback address only.
    pub users: Option<Users>,
    /// The JSON flavour of answers to requests without a JSON body.
    pub flavour: Flavour,
    /// Request limits.
    pub limits: Limits,
    /// Connection limits, timeouts and TLS.
    pub listening: Listening,
    /// The execute handler of hosted members and of the `execute` action
    /// (`None`: the content is the result).
    pub exec: Option<ExecHandler>,
    /// How long an execution may take.
    pub exec_timeout: Duration,
    /// How long a monitor client may read nothing while it has events.
    pub ws_idle: Duration,
    /// The largest WebSocket message a client may send, in bytes.
    pub ws_max_message: usize,
    /// Events queued per monitor connection before it misses some.
    pub ws_queue: usize,
    /// Where the gateway's log lines go (`tracing` at info by default).
    pub log: Log,
}

impl GatewayOptions {
    /// The defaults, with state directory `state`.
    pub fn new(state: PathBuf) -> GatewayOptions {
        GatewayOptions {
            listen: SocketAddr::from(([127, 0, 0, 1], 8090)),
            state,
            users: None,
            flavour: Flavour::default(),
            limits: Limits::default(),
            listening: Listening::default(),
            exec: None,
            exec_timeout: Duration::from_secs(5),
            ws_idle: Duration::from_secs(30),
            ws_max_message: 64 << 10,
            ws_queue: 1024,
            log: Arc::new(|line| tracing::info!("{line}")),
        }
    }
}

impl std::fmt::Debug for GatewayOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GatewayOptions")
            .field("listen", &self.listen)
            .field("state", &self.state)
            .field("authentication", &self.users.is_some())
            .field("exec_timeout", &self.exec_timeout)
            .finish_non_exhaustive()
    }
}

/// Why a gateway could not start, or stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GatewayError {
    /// No authentication on an address beyond loopback.
    #[error("no authentication is only allowed on a loopback address, not {0}")]
    NoAuthBeyondLoopback(std::net::IpAddr),
    /// The state directory or its database could not be opened.
    #[error("{path}: {reason}")]
    State {
        /// The file or directory.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The members' thread could not start (the bus, the store).
    #[error(transparent)]
    Members(#[from] MembersSpawnError),
    /// The bus could not be watched for the raw monitor.
    #[error("cannot watch the bus: {0}")]
    Watch(String),
    /// The members' thread failed while the gateway served.
    #[error("{0}")]
    Bus(String),
    /// The address could not be listened on.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The OCCI server could not be built, or serving failed.
    #[error("{0}")]
    Serve(String),
}

/// What binding to `listen` means: an error without authentication beyond
/// loopback, and the warnings to log (no authentication; plain HTTP beyond
/// loopback, where credentials travel unencrypted).
pub fn bind_check(
    listen: &SocketAddr,
    no_auth: bool,
    tls: bool,
) -> Result<Vec<String>, GatewayError> {
    let loopback = listen.ip().is_loopback();
    if no_auth && !loopback {
        return Err(GatewayError::NoAuthBeyondLoopback(listen.ip()));
    }
    let mut warnings = Vec::new();
    if no_auth {
        warnings.push("authentication is off: anyone on this host can use the gateway".to_owned());
    }
    if !loopback && !tls {
        warnings.push(format!(
            "serving plain HTTP on {}: credentials travel unencrypted",
            listen.ip()
        ));
    }
    Ok(warnings)
}

/// A gateway joined to the bus and listening, not yet serving:
/// [`Gateway::run`] serves.
pub struct Gateway {
    url: String,
    local_addr: SocketAddr,
    listener: tokio::net::TcpListener,
    router: axum::Router,
    listening: Listening,
    bus: bus::BusHandle,
    /// The members' thread's end.
    bus_ended: tokio::sync::oneshot::Receiver<Result<(), String>>,
    /// Members changed by remote actions, for their records.
    changed: tokio::sync::mpsc::UnboundedReceiver<crate::cmbs::Description>,
    server: Arc<Server>,
    /// Stops the members and the raw monitor's reader if the gateway is
    /// dropped before or while it runs.
    running: Running,
    log: Log,
}

/// What a gateway runs beside its HTTP side: the members' thread and the
/// raw monitor's reader. Dropped, it stops both (without waiting);
/// [`Running::stop`] also waits for the reader.
struct Running {
    bus: Option<bus::BusHandle>,
    raw_stop: Arc<AtomicBool>,
    raw: Option<std::thread::JoinHandle<()>>,
}

impl Running {
    /// Stops both and waits for the raw reader (at most half a second).
    async fn stop(mut self) {
        self.signal();
        if let Some(raw) = self.raw.take() {
            let _ = tokio::task::spawn_blocking(move || raw.join()).await;
        }
    }

    fn signal(&mut self) {
        self.raw_stop.store(true, Ordering::Release);
        if let Some(bus) = self.bus.take() {
            bus.stop();
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.signal();
    }
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl Gateway {
    /// Joins the bus `config` describes, opens the state directory, brings
    /// back the members and messages it kept, and listens. Must run inside
    /// a tokio runtime.
    pub async fn bind(config: &Config, options: GatewayOptions) -> Result<Gateway, GatewayError> {
        let tls = options.listening.tls.is_some();
        for w in bind_check(&options.listen, options.users.is_none(), tls)? {
            (options.log)(format!("warning: {w}"));
        }
        let log = Arc::clone(&options.log);
        let hub = monitor::Hub::new(options.ws_queue, Arc::clone(&log));
        let state = &options.state;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(state)
            .map_err(|e| GatewayError::State {
                path: state.clone(),
                reason: e.to_string(),
            })?;
        let db = state.join("gateway.sqlite");
        let raw_stop = Arc::new(AtomicBool::new(false));
        let raw = monitor::watch_raw(config, Arc::clone(&hub), Arc::clone(&raw_stop))
            .map_err(GatewayError::Watch)?;
        // From here on, whatever fails (or drops the gateway) stops what runs.
        let mut running = Running {
            bus: None,
            raw_stop,
            raw: Some(raw),
        };
        let (stop_tx, bus_ended) = tokio::sync::oneshot::channel();
        let stop_tx = Mutex::new(Some(stop_tx));
        let (changed_tx, changed) = tokio::sync::mpsc::unbounded_channel();
        let settings = bus::Settings {
            db: db.clone(),
            exec: options.exec.clone(),
            exec_timeout: options.exec_timeout,
            hub: Arc::clone(&hub),
            log: Arc::clone(&log),
        };
        let bus = bus::start(config, settings, changed_tx, move |r| {
            if let Some(tx) = stop_tx.lock().unwrap_or_else(|p| p.into_inner()).take() {
                let _ = tx.send(r);
            }
        })?;
        running.bus = Some(bus.clone());
        let listener = tokio::net::TcpListener::bind(options.listen)
            .await
            .map_err(|source| GatewayError::Listen {
                addr: options.listen,
                source,
            })?;
        let local_addr = listener
            .local_addr()
            .map_err(|source| GatewayError::Listen {
                addr: options.listen,
                source,
            })?;
        let state_failed = |e: &dyn std::fmt::Display| GatewayError::State {
            path: db.clone(),
            reason: e.to_string(),
        };
        let entities = Arc::new(
            entities::GatewayEntities::open(&db, bus.clone()).map_err(|e| state_failed(&e))?,
        );
        for mut e in entities.stored().map_err(|e| state_failed(&e))? {
            if e.kind == model::member_kind_id() {
                if let Err(err) = model::restore(&bus, &e).await {
                    log(format!("cannot bring member {} back: {err}", e.id));
                }
            } else if model::interrupted(&mut e) {
                // Stopped while it was sending: its report never came.
                entities.replace(&e).map_err(|e| state_failed(&e))?;
            }
        }
        let store: Arc<dyn EntityStore> = entities.clone();
        let cx = model::Context {
            bus: bus.clone(),
            exec: options.exec.clone(),
            address: Address::parse("(app:cmbs module:gateway)").expect("a constant address"),
            exec_timeout: options.exec_timeout,
            hub: Arc::clone(&hub),
        };
        let scheme = if tls { "https" } else { "http" };
        let url = format!("{scheme}://{local_addr}");
        let requests = Arc::clone(&log);
        let mut builder = Server::builder(&url, Arc::clone(&store))
            .flavour(options.flavour)
            .limits(options.limits)
            .log(move |r| {
                requests(format!(
                    "{} {} {} {:.1} ms{}{}",
                    r.method,
                    r.target,
                    r.status.as_u16(),
                    r.millis,
                    r.user
                        .as_deref()
                        .map_or(String::new(), |u| format!(" user={u}")),
                    r.reason
                        .as_deref()
                        .map_or(String::new(), |x| format!(" ({x})")),
                ))
            });
        if let Some(u) = options.users {
            builder = builder.authenticator(Arc::new(crate::occi::Basic(Arc::new(u))));
        }
        let server = model::install(builder, cx)
            .build()
            .map_err(|e| GatewayError::Serve(e.reason))?;
        let session = monitor::Session {
            hub,
            state: Arc::new(move |kind, filter: &monitor::Filter| {
                model::state_of(&*store, kind, &|n| filter.keeps(n))
            }),
            idle: options.ws_idle,
            // Pings keep a quiet monitor inside the idle deadline.
            ping_every: options.listening.idle_timeout / 3,
            user: None,
        };
        let router = server.router().route(
            "/monitor",
            axum::routing::any({
                let server = Arc::clone(&server);
                let (max, log) = (options.ws_max_message, Arc::clone(&log));
                move |request: axum::extract::Request| async move {
                    monitor::upgrade(&server, session, request, max, &log).await
                }
            }),
        );
        Ok(Gateway {
            url,
            local_addr,
            listener,
            router,
            listening: options.listening,
            bus,
            bus_ended,
            changed,
            server,
            running,
            log,
        })
    }

    /// The gateway's base URL (`http://127.0.0.1:8090`).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Serves until `shutdown` completes or the bus fails; then every
    /// hosted member says bye and the connections are drained.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), GatewayError> {
        let Gateway {
            listener,
            router,
            listening,
            bus,
            mut bus_ended,
            mut changed,
            server,
            running,
            log,
            ..
        } = self;
        // Remote actions on hosted members, recorded in their entities.
        let records = Arc::clone(&server);
        let record_log = Arc::clone(&log);
        tokio::spawn(async move {
            while let Some(d) = changed.recv().await {
                let location = format!("{}{}", model::MEMBER_LOCATION, d.id);
                if let Err(err) = records.modify(&location, |e| model::show(e, &d)).await {
                    record_log(format!("cannot record member {}: {err}", d.id));
                }
            }
        });
        let (done_tx, done_rx) = tokio::sync::oneshot::channel();
        let stopped = async move {
            let ended = tokio::select! {
                r = &mut bus_ended => r.unwrap_or(Ok(())),
                () = shutdown => {
                    bus.stop();
                    bus_ended.await.unwrap_or(Ok(()))
                }
            };
            let _ = done_tx.send(ended);
        };
        let served = crate::occi::serve(listener, router, listening, stopped, log).await;
        running.stop().await;
        served.map_err(|e| GatewayError::Serve(e.to_string()))?;
        done_rx.await.unwrap_or(Ok(())).map_err(GatewayError::Bus)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_auth_is_for_loopback_only_and_plain_http_beyond_it_warns() {
        let lo: SocketAddr = "127.0.0.1:8090".parse().unwrap();
        let lo6: SocketAddr = "[::1]:8090".parse().unwrap();
        let any: SocketAddr = "0.0.0.0:8090".parse().unwrap();
        let lan: SocketAddr = "192.168.1.5:8090".parse().unwrap();
        assert!(bind_check(&lo, false, false).unwrap().is_empty());
        assert_eq!(bind_check(&lo, true, false).unwrap().len(), 1);
        assert_eq!(bind_check(&lo6, true, false).unwrap().len(), 1);
        assert!(bind_check(&any, true, false)
            .unwrap_err()
            .to_string()
            .contains("loopback"));
        assert!(
            bind_check(&lan, true, true).is_err(),
            "TLS does not make no authentication safe"
        );
        let w = bind_check(&lan, false, false).unwrap();
        assert!(w[0].contains("plain HTTP"), "{w:?}");
        assert!(bind_check(&lan, false, true).unwrap().is_empty());
    }
}
