//! `rmbus gateway`: CMBS members and messages as OCCI resources over HTTP.
//! The gateway is the bus entity `(app:cmbs module:gateway)`; it hosts the
//! members created through it, shows the members running elsewhere (read
//! only, their actions forwarded over the bus) and sends the messages
//! created through it.

mod bus;
mod entities;
mod model;
mod monitor;

use std::collections::HashMap;
use std::io::BufRead;
use std::net::SocketAddr;
use std::os::unix::fs::DirBuilderExt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rmbus::occi::{tls_config, EntityStore, Flavour, Limits, Listening, Server};

use crate::bus_args::BusPlace;
use crate::{Failure, Outcome};

/// Serve CMBS members and messages as OCCI resources over HTTP (the pyCMBS
/// curl recipes work against it).
#[derive(clap::Args)]
#[command(after_help = concat!("\
Every request needs HTTP Basic credentials unless --no-auth (loopback only).
With no --user and no --users, the gateway keeps its users in STATE/users and,
the first time, creates the user admin and prints its password once.
Executable messages sent to hosted members, and the execute action, use an
echo handler unless --exec PROGRAM [ARG…] is given (as rmbus member --exec).

Examples:
  rmbus gateway --no-auth
  rmbus gateway --user alice:secret --listen 127.0.0.1:8090
  echo -n secret | rmbus gateway --hash-password alice >> users && chmod 600 users
  curl -s --user alice:secret http://127.0.0.1:8090/-/

", exit_codes!()))]
pub struct Args {
    #[command(flatten)]
    bus: BusPlace,
    /// The address to listen on.
    #[arg(long, value_name = "ADDR:PORT", default_value = "127.0.0.1:8090")]
    listen: SocketAddr,
    /// The state directory (default: $XDG_DATA_HOME/rmbus/gateway).
    #[arg(long, value_name = "DIR")]
    state: Option<PathBuf>,
    /// A user (repeatable).
    #[arg(long = "user", value_name = "NAME:PASSWORD")]
    user: Vec<String>,
    /// A users file: NAME:<argon2id PHC string> lines, mode 0600.
    #[arg(long, value_name = "FILE")]
    users: Option<PathBuf>,
    /// No authentication (only on a loopback address).
    #[arg(long, conflicts_with_all = ["user", "users"])]
    no_auth: bool,
    /// The JSON flavour of answers to requests without a JSON body.
    #[arg(long, value_name = "F", default_value = "pyocni", value_parser = ["pyocni", "occi12"])]
    json_flavour: String,
    /// Read a password on stdin and print NAME:<argon2id PHC string>.
    #[arg(long, value_name = "NAME", num_args = 0..=1, default_missing_value = "admin")]
    hash_password: Option<String>,
    /// How long an execution may take, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 5.0)]
    exec_timeout: f64,
    /// The TLS certificate chain (PEM); with --tls-key, HTTPS with HTTP/2.
    #[arg(long, value_name = "PEM", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The TLS private key (PEM).
    #[arg(long, value_name = "PEM", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// The largest request body, in bytes (413 beyond).
    #[arg(long, value_name = "BYTES", default_value_t = 1 << 20)]
    max_body: usize,
    /// The most header bytes in one request (413 beyond).
    #[arg(long, value_name = "BYTES", default_value_t = 64 << 10)]
    max_header_bytes: usize,
    /// The most attribute values in one request (413 beyond).
    #[arg(long, value_name = "N", default_value_t = 256)]
    max_attributes: usize,
    /// Connections served at once (one more is answered 503).
    #[arg(long, value_name = "N", default_value_t = 512)]
    max_connections: usize,
    /// Seconds a request's headers may take (slow clients are cut off).
    #[arg(long, value_name = "SECS", default_value_t = 10.0)]
    header_timeout: f64,
    /// Seconds a connection may stay open before one of its requests is
    /// authenticated, whatever it sends.
    #[arg(long, value_name = "SECS", default_value_t = 15.0)]
    anonymous_timeout: f64,
    /// Seconds a connection may move no byte with no request in flight.
    #[arg(long, value_name = "SECS", default_value_t = 60.0)]
    idle_timeout: f64,
    /// Password checks run at once (each takes argon2's 19 MiB).
    #[arg(long, value_name = "N", default_value_t = 2)]
    password_checks: usize,
    /// Password checks that may wait; one more is answered 503.
    #[arg(long, value_name = "N", default_value_t = 32)]
    password_queue: usize,
    /// Seconds a request body may take (408 beyond).
    #[arg(long, value_name = "SECS", default_value_t = 30.0)]
    body_timeout: f64,
    /// Seconds a monitor client may read nothing while we have events for it.
    #[arg(long, value_name = "SECS", default_value_t = 30.0)]
    ws_idle: f64,
    /// The largest WebSocket message a client may send, in bytes.
    #[arg(long, value_name = "BYTES", default_value_t = 64 << 10)]
    ws_max_message: usize,
    /// Events queued per monitor connection before it misses some.
    #[arg(long, value_name = "N", default_value_t = 1024)]
    ws_queue: usize,
    /// Run PROGRAM [ARG…] for executable messages (must come last).
    #[arg(long, value_name = "PROGRAM", num_args = 1.., allow_hyphen_values = true, trailing_var_arg = true)]
    exec: Vec<String>,
}

/// What binding to `listen` means: an error for `--no-auth` beyond
/// loopback, and the warnings to log.
pub fn bind_check(listen: &SocketAddr, no_auth: bool, tls: bool) -> Result<Vec<String>, String> {
    let loopback = listen.ip().is_loopback();
    if no_auth && !loopback {
        return Err(format!(
            "--no-auth is only allowed on a loopback address, not {}",
            listen.ip()
        ));
    }
    let mut warnings = Vec::new();
    if no_auth {
        warnings.push(
            "authentication is off (--no-auth): anyone on this host can use the gateway".to_owned(),
        );
    }
    if !loopback && !tls {
        warnings.push(format!(
            "serving plain HTTP on {}: credentials travel unencrypted",
            listen.ip()
        ));
    }
    Ok(warnings)
}

fn default_state() -> Option<PathBuf> {
    let base = match std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(std::env::var_os("HOME")?).join(".local/share"),
    };
    Some(base.join("rmbus").join("gateway"))
}

fn users_of(args: &Args, state: &std::path::Path) -> Result<Option<rmbus::occi::Users>, Failure> {
    if args.no_auth {
        return Ok(None);
    }
    let mut hashes = HashMap::new();
    for u in &args.user {
        let (name, password) = u
            .split_once(':')
            .filter(|(n, _)| !n.is_empty())
            .ok_or_else(|| Failure::input(format!("--user {u:?}: expected NAME:PASSWORD")))?;
        hashes.insert(
            name.to_owned(),
            rmbus::occi::hash_password(password).map_err(Failure::input)?,
        );
    }
    if let Some(f) = &args.users {
        hashes.extend(rmbus::occi::read_users_file(f).map_err(Failure::input)?);
    }
    if args.user.is_empty() && args.users.is_none() {
        let path = state.join("users");
        if !path.exists() {
            let password = rmbus::occi::create_admin(&path).map_err(Failure::input)?;
            eprintln!(
                "rmbus gateway: created the user admin with the password {password} (shown once; its hash is in {})",
                path.display()
            );
        }
        hashes = rmbus::occi::read_users_file(&path).map_err(Failure::input)?;
    }
    if hashes.is_empty() {
        return Err(Failure::input("no user configured"));
    }
    let limits = rmbus::occi::AuthLimits {
        checks: args.password_checks.max(1),
        queue: args.password_queue.max(1),
        ..rmbus::occi::AuthLimits::default()
    };
    rmbus::occi::Users::with_limits(hashes, limits)
        .map(Some)
        .map_err(Failure::input)
}

impl Args {
    /// True with `--hash-password`: it only reads a password from stdin.
    pub fn hashes_a_password(&self) -> bool {
        self.hash_password.is_some()
    }
}

pub fn run(args: Args) -> Outcome {
    if let Some(name) = &args.hash_password {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(Failure::input)?;
        let password = line.trim_end_matches(['\n', '\r']);
        if password.is_empty() || name.is_empty() || name.contains(':') {
            return Err(Failure::input(
                "give a user name without ':' and a password on stdin",
            ));
        }
        println!(
            "{name}:{}",
            rmbus::occi::hash_password(password).map_err(Failure::input)?
        );
        return Ok(());
    }
    for w in
        bind_check(&args.listen, args.no_auth, args.tls_cert.is_some()).map_err(Failure::input)?
    {
        eprintln!("rmbus gateway: warning: {w}");
    }
    let secs = |flag: &str, v: f64| {
        Duration::try_from_secs_f64(v).map_err(|e| Failure::input(format!("--{flag}: {e}")))
    };
    let exec_timeout = secs("exec-timeout", args.exec_timeout)?;
    let limits = Limits {
        body: args.max_body,
        headers: args.max_header_bytes,
        attributes: args.max_attributes,
        body_timeout: secs("body-timeout", args.body_timeout)?,
        ..Limits::default()
    };
    let listening = Listening {
        tls: match (&args.tls_cert, &args.tls_key) {
            (Some(c), Some(k)) => Some(tls_config(c, k).map_err(Failure::input)?),
            _ => None,
        },
        max_connections: args.max_connections.max(1),
        header_timeout: secs("header-timeout", args.header_timeout)?,
        anonymous_timeout: secs("anonymous-timeout", args.anonymous_timeout)?,
        idle_timeout: secs("idle-timeout", args.idle_timeout)?,
        ..Listening::default()
    };
    let ws_idle = secs("ws-idle", args.ws_idle)?;
    let hub = monitor::Hub::new(args.ws_queue);
    let config = args.bus.config()?;
    monitor::watch_raw(&config, Arc::clone(&hub))
        .map_err(|e| Failure::input(format!("cannot watch the bus: {e}")))?;
    let state = match &args.state {
        Some(d) => d.clone(),
        None => default_state()
            .ok_or_else(|| Failure::input("no $XDG_DATA_HOME or $HOME; give --state DIR"))?,
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&state)
        .map_err(|e| Failure::input(format!("{}: {e}", state.display())))?;
    let users = users_of(&args, &state)?;
    let db = state.join("gateway.sqlite");
    let flavour = Flavour::parse(&args.json_flavour).unwrap_or_default();

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(Failure::input)?;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<Result<(), String>>();
    let stop_tx = Mutex::new(Some(stop_tx));
    let (changed_tx, mut changed_rx) = tokio::sync::mpsc::unbounded_channel();
    let settings = bus::Settings {
        db: db.clone(),
        exec: args.exec.clone(),
        exec_timeout,
        hub: Arc::clone(&hub),
    };
    let bus = bus::start(&args.bus, settings, changed_tx, move |r| {
        if let Some(tx) = stop_tx.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = tx.send(r);
        }
    })?;
    let ended: Result<(), String> = runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        let entities = Arc::new(
            entities::GatewayEntities::open(&db, bus.clone())
                .map_err(|e| format!("{}: {e}", db.display()))?,
        );
        for mut e in entities.stored().map_err(|e| e.to_string())? {
            if e.kind == model::member_kind_id() {
                if let Err(err) = model::restore(&bus, &e).await {
                    eprintln!("rmbus gateway: cannot bring member {} back: {err}", e.id);
                }
            } else if model::interrupted(&mut e) {
                // Stopped while it was sending: its report never came.
                entities.replace(&e).map_err(|e| e.to_string())?;
            }
        }
        let store: Arc<dyn EntityStore> = entities.clone();
        let cx = model::Context {
            bus: bus.clone(),
            exec: Arc::new(args.exec.clone()),
            exec_timeout,
            hub: Arc::clone(&hub),
        };
        let scheme = if listening.tls.is_some() {
            "https"
        } else {
            "http"
        };
        let mut builder = Server::builder(&format!("{scheme}://{addr}"), Arc::clone(&store))
            .flavour(flavour)
            .limits(limits)
            .log(|r| {
                eprintln!(
                    "rmbus gateway: {} {} {} {:.1} ms{}{}",
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
                );
            });
        if let Some(u) = users {
            builder = builder.authenticator(Arc::new(rmbus::occi::Basic(Arc::new(u))));
        }
        let server = model::install(builder, cx).build().map_err(|e| e.reason)?;
        // Remote actions on hosted members, recorded in their entities.
        let records = Arc::clone(&server);
        tokio::spawn(async move {
            while let Some(d) = changed_rx.recv().await {
                let location = format!("{}{}", model::MEMBER_LOCATION, d.id);
                if let Err(err) = records.modify(&location, |e| model::show(e, &d)).await {
                    eprintln!("rmbus gateway: cannot record member {}: {err}", d.id);
                }
            }
        });
        let session = monitor::Session {
            hub,
            state: Arc::new(move |kind, filter: &monitor::Filter| {
                model::state_of(&*store, kind, &|n| filter.keeps(n))
            }),
            idle: ws_idle,
            // Pings keep a quiet monitor inside the idle deadline.
            ping_every: listening.idle_timeout / 3,
            user: None,
        };
        let router = server.router().route(
            "/monitor",
            axum::routing::any({
                let server = Arc::clone(&server);
                let max = args.ws_max_message;
                move |request: axum::extract::Request| async move {
                    monitor_upgrade(&server, session, request, max).await
                }
            }),
        );
        eprintln!("rmbus gateway: listening on {scheme}://{addr}");
        let (done_tx, done_rx) = tokio::sync::oneshot::channel();
        let stopped = async move {
            let r = stop_rx.await.unwrap_or(Ok(()));
            let _ = done_tx.send(r);
        };
        let log: Arc<dyn Fn(String) + Send + Sync> = Arc::new(|m| eprintln!("rmbus gateway: {m}"));
        rmbus::occi::serve(listener, router, listening, stopped, log)
            .await
            .map_err(|e| e.to_string())?;
        done_rx.await.unwrap_or(Ok(()))
    });
    ended.map_err(Failure::input)
}

/// `GET /monitor`: checks the credentials like any request, first (an
/// anonymous caller learns nothing but 401), then the method and the
/// upgrade.
async fn monitor_upgrade(
    server: &Server,
    mut session: monitor::Session,
    request: axum::extract::Request,
    max_message: usize,
) -> axum::response::Response {
    use axum::extract::FromRequestParts;
    use axum::response::IntoResponse;
    let (mut parts, _) = request.into_parts();
    let method = parts.method.clone();
    let refused = |e: rmbus::occi::OcciError| {
        eprintln!(
            "rmbus gateway: {method} /monitor {} ({})",
            e.status.as_u16(),
            e.reason
        );
        let mut r = (e.status, format!("{}\n", e.reason)).into_response();
        let h = r.headers_mut();
        if e.status == axum::http::StatusCode::UNAUTHORIZED {
            h.insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Basic realm=\"rmbus\""),
            );
        }
        if let Some(secs) = e.retry_after {
            h.insert(axum::http::header::RETRY_AFTER, secs.into());
        }
        if let Some(allow) = e.allow {
            h.insert(
                axum::http::header::ALLOW,
                axum::http::HeaderValue::from_static(allow),
            );
        }
        r
    };
    let user = match server.authenticate(&parts).await {
        Ok(user) => user,
        Err(e) => return refused(e),
    };
    if method != axum::http::Method::GET {
        return refused(rmbus::occi::OcciError::method_not_allowed(
            "GET",
            "the monitor is a WebSocket: GET with an upgrade",
        ));
    }
    let ws = match axum::extract::ws::WebSocketUpgrade::from_request_parts(&mut parts, &()).await {
        Ok(ws) => ws,
        Err(e) => {
            return refused(rmbus::occi::OcciError::bad_request(format!(
                "not a WebSocket upgrade: {}",
                e.body_text()
            )))
        }
    };
    eprintln!(
        "rmbus gateway: GET /monitor 101{}",
        user.as_deref()
            .map_or(String::new(), |u| format!(" user={u}"))
    );
    session.user = user;
    ws.max_message_size(max_message)
        .max_frame_size(max_message)
        // Our events wait in the connection's queue, not in a write buffer
        // that grows: a frame beyond this is an error, and pongs to a
        // client that does not read replace one another.
        .write_buffer_size(monitor::WRITE_BUFFER)
        .max_write_buffer_size(monitor::WRITE_BUFFER + monitor::LARGEST_EVENT)
        .on_upgrade(move |socket| monitor::run(socket, session))
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
            .contains("loopback"));
        assert!(
            bind_check(&lan, true, true).is_err(),
            "TLS does not make --no-auth safe"
        );
        let w = bind_check(&lan, false, false).unwrap();
        assert!(w[0].contains("plain HTTP"), "{w:?}");
        assert!(bind_check(&lan, false, true).unwrap().is_empty());
    }
}
