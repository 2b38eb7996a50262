//! `rmbus gateway`: CMBS members and messages as OCCI resources over HTTP,
//! the library's [`rmbus::gateway`] with arguments: users, TLS, limits and
//! the `--exec` program become its options.

use std::collections::HashMap;
use std::io::BufRead;
use std::net::SocketAddr;
use std::os::unix::fs::DirBuilderExt;
use std::path::PathBuf;
use std::time::Duration;

use rmbus::gateway::{Gateway, GatewayError, GatewayOptions, StderrLog};
use rmbus::occi::{tls_config, Flavour, Limits, Listening};

use crate::bus_args::BusPlace;
use crate::signals::Termination;
use crate::{exec, Failure, Outcome};

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
    let secs = |flag: &str, v: f64| {
        Duration::try_from_secs_f64(v).map_err(|e| Failure::input(format!("--{flag}: {e}")))
    };
    // Refused before anything is created.
    rmbus::gateway::bind_check(&args.listen, args.no_auth, args.tls_cert.is_some()).map_err(
        |_| {
            Failure::input(format!(
                "--no-auth is only allowed on a loopback address, not {}",
                args.listen.ip()
            ))
        },
    )?;
    let exec_timeout = secs("exec-timeout", args.exec_timeout)?;
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
    let mut options = GatewayOptions::new(state.clone());
    options.listen = args.listen;
    options.users = users_of(&args, &state)?;
    options.flavour = Flavour::parse(&args.json_flavour).unwrap_or_default();
    options.limits = Limits {
        body: args.max_body,
        headers: args.max_header_bytes,
        attributes: args.max_attributes,
        body_timeout: secs("body-timeout", args.body_timeout)?,
        ..Limits::default()
    };
    options.listening = Listening {
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
    options.exec = (!args.exec.is_empty()).then(|| exec::handler(args.exec.clone(), exec_timeout));
    options.exec_timeout = exec_timeout;
    options.ws_idle = secs("ws-idle", args.ws_idle)?;
    options.ws_max_message = args.ws_max_message;
    options.ws_queue = args.ws_queue;
    // Lines go out from a thread of their own: a request never waits on
    // stderr, and lines that come together go in one write.
    let stderr_log = StderrLog::start("rmbus gateway: ").map_err(Failure::input)?;
    options.log = stderr_log.log();
    let say = stderr_log.log();
    let config = args.bus.config()?;
    let signals = Termination::install().map_err(Failure::input)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(Failure::input)?;
    let served = runtime.block_on(async move {
        let gateway = Gateway::bind(&config, options).await?;
        say(format!("listening on {}", gateway.url()));
        // Ctrl-C or SIGTERM: every member says bye, then the server stops.
        let (signal_tx, signal_rx) = tokio::sync::oneshot::channel::<()>();
        std::thread::Builder::new()
            .name("rmbus-signals".into())
            .spawn(move || {
                if signals.wait().is_ok() {
                    let _ = signal_tx.send(());
                }
            })
            .map_err(|e| GatewayError::Serve(e.to_string()))?;
        gateway
            .run(async move {
                let _ = signal_rx.await;
            })
            .await
    });
    stderr_log.finish();
    served.map_err(Failure::input)
}
