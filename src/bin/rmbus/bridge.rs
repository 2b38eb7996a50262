//! `rmbus bridge`: CMBS across sites, the library's [`rmbus::bridge`] with
//! arguments: the NATS servers, the site and the credentials.

use std::path::{Path, PathBuf};

use rmbus::bridge::{spawn_bridge, BridgeOptions, NatsCredentials};
use rmbus::cmbs::crossing::Subjects;
use rmbus::cmbs::BridgeEvent;
use serde_json::json;

use crate::bus_args::BusPlace;
use crate::signals::Termination;
use crate::{Failure, Outcome};

/// Carry this bus's CMBS members and deliveries to other sites over a NATS
/// cluster, and theirs to this bus.
#[derive(clap::Args)]
#[command(after_help = concat!("\
One bridge per site: a bridge that hears another one of its site (on NATS)
in its first 1.5 s refuses to start. Members of other sites appear in every
directory of this bus with their site; deliveries to them go through this
bridge. Credentials are read from files (or the environment), never from
the command line: --password-file or $RMBUS_NATS_PASSWORD with --user,
--token-file or $RMBUS_NATS_TOKEN, --nkey-file (a seed, SU…).

Examples:
  rmbus bridge --site office --nats nats://127.0.0.1:4222,nats://127.0.0.1:4223
  rmbus bridge --site cloud --nats nats://127.0.0.1:4222 --only-listed --json

", exit_codes!()))]
pub struct Args {
    #[command(flatten)]
    bus: BusPlace,
    /// This site's name (letters, digits, '-' and '_').
    #[arg(long, value_name = "NAME")]
    site: String,
    /// The NATS servers of the cluster (comma-separated or repeated).
    #[arg(long, value_name = "URL", value_delimiter = ',', required = true)]
    nats: Vec<String>,
    /// The NATS user (its password from --password-file or $RMBUS_NATS_PASSWORD).
    #[arg(long, value_name = "NAME", conflicts_with_all = ["token_file", "nkey_file"])]
    user: Option<String>,
    /// A file holding the user's password.
    #[arg(long, value_name = "FILE", requires = "user")]
    password_file: Option<PathBuf>,
    /// A file holding a NATS token (or $RMBUS_NATS_TOKEN).
    #[arg(long, value_name = "FILE", conflicts_with = "nkey_file")]
    token_file: Option<PathBuf>,
    /// A file holding an nkey seed (SU…).
    #[arg(long, value_name = "FILE")]
    nkey_file: Option<PathBuf>,
    /// A CA certificate (PEM) for the servers' TLS certificates; TLS is required.
    #[arg(long, value_name = "PEM")]
    ca: Option<PathBuf>,
    /// Require TLS (with the system's roots unless --ca).
    #[arg(long)]
    tls: bool,
    /// Connect only to the servers of --nats, not to others the cluster tells about.
    #[arg(long)]
    only_listed: bool,
    /// The prefix of the NATS subjects.
    #[arg(long, value_name = "PREFIX", default_value = "cmbs")]
    prefix: String,
    /// Events as JSON lines on stdout.
    #[arg(long)]
    json: bool,
}

/// The first line of `path`, without its line end: a secret.
fn secret(path: &Path, what: &str) -> Result<String, Failure> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Failure::input(format!("{what} {}: {e}", path.display())))?;
    let line = text.lines().next().unwrap_or("").trim().to_owned();
    if line.is_empty() {
        return Err(Failure::input(format!(
            "{what} {} is empty",
            path.display()
        )));
    }
    Ok(line)
}

fn credentials(args: &Args) -> Result<NatsCredentials, Failure> {
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    if let Some(user) = &args.user {
        let password = match &args.password_file {
            Some(f) => secret(f, "--password-file")?,
            None => env("RMBUS_NATS_PASSWORD").ok_or_else(|| {
                Failure::input("--user needs --password-file or $RMBUS_NATS_PASSWORD")
            })?,
        };
        return Ok(NatsCredentials::UserPassword {
            user: user.clone(),
            password,
        });
    }
    if let Some(f) = &args.token_file {
        return Ok(NatsCredentials::Token(secret(f, "--token-file")?));
    }
    if let Some(f) = &args.nkey_file {
        return Ok(NatsCredentials::NkeySeed(secret(f, "--nkey-file")?));
    }
    Ok(match env("RMBUS_NATS_TOKEN") {
        Some(t) => NatsCredentials::Token(t),
        None => NatsCredentials::None,
    })
}

/// One event as a line for people, or as a JSON object.
fn event_line(e: &BridgeEvent, site: &str, as_json: bool) -> String {
    let (kind, text, fields) = match e {
        BridgeEvent::Active => (
            "active",
            format!("site {site}: no other bridge for it heard; serving"),
            json!({}),
        ),
        BridgeEvent::Yield { other } => (
            "yield",
            format!("site {site} has an older bridge (epoch {other}); this one stops"),
            json!({"other": other}),
        ),
        BridgeEvent::Younger { other } => (
            "younger",
            format!("a younger bridge for site {site} was heard (epoch {other}); it stops"),
            json!({"other": other}),
        ),
        BridgeEvent::SiteJoined { site: s, members } => (
            "site_joined",
            format!("site {s} joined with {members} members"),
            json!({"remote_site": s, "members": members}),
        ),
        BridgeEvent::SiteLost { site: s, members } => (
            "site_lost",
            format!("site {s} was not heard: its {members} members left"),
            json!({"remote_site": s, "members": members}),
        ),
    };
    if as_json {
        let mut v = fields;
        v["event"] = json!(kind);
        v["site"] = json!(site);
        v.to_string()
    } else {
        format!("rmbus bridge: {text}")
    }
}

pub fn run(args: Args) -> Outcome {
    let subjects = Subjects::new(&args.prefix).ok_or_else(|| {
        Failure::input(format!(
            "--prefix {:?}: dot-separated words of letters, digits, '-' and '_'",
            args.prefix
        ))
    })?;
    let mut options = BridgeOptions::new(&args.site, args.nats.clone());
    options.credentials = credentials(&args)?;
    options.ca_file = args.ca.clone();
    options.require_tls = args.tls;
    options.only_listed = args.only_listed;
    options.bridge.subjects = subjects;
    let config = args.bus.config()?;
    let signals = Termination::install().map_err(Failure::input)?;
    let site = args.site.clone();
    let as_json = args.json;
    let bridge = spawn_bridge(&config, options, move |e| {
        println!("{}", event_line(&e, &site, as_json));
    })
    .map_err(Failure::input)?;
    let started = bridge.snapshot();
    let connected = if bridge.is_connected() {
        "connected to NATS"
    } else {
        "NATS not reachable yet (retrying)"
    };
    if args.json {
        let line = crate::bus_args::with_config_fields(
            json!({"event": "ready", "site": args.site, "address": started.address,
                   "nats": args.nats, "connected": bridge.is_connected()}),
        );
        println!("{line}");
    } else {
        println!(
            "rmbus bridge: site {} on the bus as {}; {connected}",
            args.site, started.address
        );
    }
    // A signal stops the bridge (its members leave other sites, its entity
    // says bye); the wait below then returns.
    let handle = std::sync::Arc::new(bridge);
    let stopping = std::sync::Arc::clone(&handle);
    std::thread::Builder::new()
        .name("rmbus-signals".into())
        .spawn(move || {
            if signals.wait().is_ok() {
                stopping.stop();
            }
        })
        .map_err(Failure::input)?;
    handle.wait().map_err(Failure::input)
}
