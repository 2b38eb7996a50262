//! `rmbus gateway`: CMBS members and messages as OCCI resources over HTTP.
//! The gateway is the bus entity `(app:cmbs module:gateway)`; it hosts the
//! members created through it, shows the members running elsewhere (read
//! only, their actions forwarded over the bus) and sends the messages
//! created through it.

mod auth;
mod bus;
mod entities;
mod model;

use std::collections::HashMap;
use std::io::BufRead;
use std::net::SocketAddr;
use std::os::unix::fs::DirBuilderExt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rmbus::occi::{EntityStore, Flavour, Server};

use crate::bus_args::BusPlace;
use crate::{Failure, Outcome};

/// Serve CMBS members and messages as OCCI resources over HTTP (the pyCMBS
/// curl recipes work against it).
#[derive(clap::Args)]
#[command(after_help = "\
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

Exit status: 0 stopped by Ctrl-C/SIGTERM; 2 bad arguments, state or bus.")]
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
    /// Run PROGRAM [ARG…] for executable messages (must come last).
    #[arg(long, value_name = "PROGRAM", num_args = 1.., allow_hyphen_values = true, trailing_var_arg = true)]
    exec: Vec<String>,
}

/// What binding to `listen` means: an error for `--no-auth` beyond
/// loopback, and the warnings to log.
pub fn bind_check(listen: &SocketAddr, no_auth: bool) -> Result<Vec<String>, String> {
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
    if !loopback {
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

fn users_of(args: &Args, state: &std::path::Path) -> Result<Option<auth::Users>, Failure> {
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
            auth::hash_password(password).map_err(Failure::input)?,
        );
    }
    if let Some(f) = &args.users {
        hashes.extend(auth::read_users_file(f).map_err(Failure::input)?);
    }
    if args.user.is_empty() && args.users.is_none() {
        let path = state.join("users");
        if !path.exists() {
            let password = auth::create_admin(&path).map_err(Failure::input)?;
            eprintln!(
                "rmbus gateway: created the user admin with the password {password} (shown once; its hash is in {})",
                path.display()
            );
        }
        hashes = auth::read_users_file(&path).map_err(Failure::input)?;
    }
    if hashes.is_empty() {
        return Err(Failure::input("no user configured"));
    }
    auth::Users::new(hashes).map(Some).map_err(Failure::input)
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
            auth::hash_password(password).map_err(Failure::input)?
        );
        return Ok(());
    }
    for w in bind_check(&args.listen, args.no_auth).map_err(Failure::input)? {
        eprintln!("rmbus gateway: warning: {w}");
    }
    let exec_timeout = Duration::try_from_secs_f64(args.exec_timeout)
        .map_err(|e| Failure::input(format!("--exec-timeout: {e}")))?;
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
        };
        let mut builder = Server::builder(&format!("http://{addr}"), store)
            .flavour(flavour)
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
            builder = builder.authenticator(Arc::new(auth::Basic(Arc::new(u))));
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
        eprintln!("rmbus gateway: listening on http://{addr}");
        let (done_tx, done_rx) = tokio::sync::oneshot::channel();
        let stopped = async move {
            let r = stop_rx.await.unwrap_or(Ok(()));
            let _ = done_tx.send(r);
        };
        server
            .serve(listener, stopped)
            .await
            .map_err(|e| e.to_string())?;
        done_rx.await.unwrap_or(Ok(()))
    });
    ended.map_err(Failure::input)
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
        assert!(bind_check(&lo, false).unwrap().is_empty());
        assert_eq!(bind_check(&lo, true).unwrap().len(), 1);
        assert_eq!(bind_check(&lo6, true).unwrap().len(), 1);
        assert!(bind_check(&any, true).unwrap_err().contains("loopback"));
        assert!(bind_check(&lan, true).is_err());
        let w = bind_check(&lan, false).unwrap();
        assert!(w[0].contains("plain HTTP"), "{w:?}");
    }
}
