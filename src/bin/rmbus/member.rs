//! `rmbus member`: run a CMBS member until Ctrl-C or SIGTERM.

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use rmbus::cmbs::{Description, Event, LayerSet};
use rmbus::runtime::{MembersEvent, MembersOptions};
use rmbus::store::{default_path, Retention, SqliteStore, Store};

use crate::bus_args::BusPlace;
use crate::hosted::{self, Hosted, Wake};
use crate::{cmbs_out, exec, Failure, Outcome};

/// Run a CMBS member: receive messages on its layers, store what is
/// storable, execute what is executable, until Ctrl-C or SIGTERM.
#[derive(clap::Args)]
#[command(after_help = concat!("\
The member logs on stdout what it receives and refuses and who joins or leaves
(--json: one object per line). Without --exec, executable messages are
answered with their own content (an echo handler). --exec runs PROGRAM with the
message content on stdin and takes its stdout as the result; it is never run
through a shell, and everything after --exec belongs to it.

Examples:
  rmbus member --topics 'sensors.*.temp,alerts.#' --providers weather
  rmbus member --store ./m.sqlite --layers l1,l3.2
  rmbus member --memory --id 6f1c0a2e-5b7d-4c1e-9a3f-2d8e4b6c1a90 --exec jq -c '{sum: (.a + .b)}'

", exit_codes!()))]
pub struct Args {
    #[command(flatten)]
    bus: BusPlace,
    /// The member id (a UUID); default: the one its store holds, else a new one.
    #[arg(long, value_name = "UUID")]
    id: Option<String>,
    /// Subscriptions for L3.2 and L4 (comma-separated; * one word, # any
    /// words); default: those its store kept, else none.
    #[arg(long, value_name = "T,…", value_delimiter = ',')]
    topics: Vec<String>,
    /// Providers served for L3.1 and L4 (comma-separated; the id always
    /// counts); default: those its store kept, else none.
    #[arg(long, value_name = "P,…", value_delimiter = ',')]
    providers: Vec<String>,
    /// The layers started (l1, l2, l3.1/l31, l3.2/l32, l4); default: those
    /// its store kept, else all.
    #[arg(long, value_name = "L,…")]
    layers: Option<String>,
    /// The store file (default: $XDG_DATA_HOME/rmbus/members/<id>.sqlite).
    #[arg(long, value_name = "PATH", conflicts_with = "memory")]
    store: Option<PathBuf>,
    /// No store: storable messages are refused NOT_STORABLE.
    #[arg(long)]
    memory: bool,
    /// Keep at most N received messages.
    #[arg(long, value_name = "N", default_value_t = 100_000)]
    keep: usize,
    /// Keep received messages at most D days.
    #[arg(long, value_name = "D", default_value_t = 30.0)]
    keep_days: f64,
    /// How long an execution may take, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 5.0)]
    exec_timeout: f64,
    /// Log events as JSON objects, one per line.
    #[arg(long)]
    pub json: bool,
    /// Run PROGRAM [ARG…] for executable messages (must come last).
    #[arg(long, value_name = "PROGRAM", num_args = 1.., allow_hyphen_values = true, trailing_var_arg = true)]
    exec: Vec<String>,
}

/// A fresh member id.
pub fn new_id() -> String {
    let bytes: [u8; 16] = rand::random();
    uuid::Builder::from_random_bytes(bytes)
        .into_uuid()
        .to_string()
}

/// Checks that `id` is a UUID.
pub fn check_id(id: &str) -> Result<(), Failure> {
    uuid::Uuid::parse_str(id)
        .map(|_| ())
        .map_err(|e| Failure::input(format!("--id {id:?}: not a UUID: {e}")))
}

/// The member id and its store (`None` with --memory).
fn open_store(args: &Args) -> Result<(String, Option<SqliteStore>, Option<PathBuf>), Failure> {
    if let Some(id) = &args.id {
        check_id(id)?;
    }
    if args.memory {
        return Ok((args.id.clone().unwrap_or_else(new_id), None, None));
    }
    let path = match (&args.store, &args.id) {
        (Some(p), _) => p.clone(),
        (None, Some(id)) => default_path(id).ok_or_else(|| {
            Failure::input(
                "no $XDG_DATA_HOME or $HOME for the default store; give --store or --memory",
            )
        })?,
        (None, None) => {
            let id = new_id();
            let p = default_path(&id).ok_or_else(|| {
                Failure::input(
                    "no $XDG_DATA_HOME or $HOME for the default store; give --store or --memory",
                )
            })?;
            return open_at(p, Some(id));
        }
    };
    open_at(path, args.id.clone())
}

fn open_at(
    path: PathBuf,
    id: Option<String>,
) -> Result<(String, Option<SqliteStore>, Option<PathBuf>), Failure> {
    let bad = |e: &dyn std::fmt::Display| Failure::input(format!("{}: {e}", path.display()));
    let mut store = SqliteStore::open(&path).map_err(|e| bad(&e))?;
    let known = store.members().map_err(|e| bad(&e))?;
    let id = match (id, known.as_slice()) {
        (Some(id), _) => id,
        (None, [one]) => one.clone(),
        (None, []) => new_id(),
        (None, many) => {
            return Err(Failure::input(format!(
                "{}: holds several members ({}); name one with --id",
                path.display(),
                many.join(", ")
            )))
        }
    };
    store.add_member(&id).map_err(|e| bad(&e))?;
    Ok((id, Some(store), Some(path)))
}

/// What the command line says about the member, beside its id.
struct Given<'a> {
    topics: &'a [String],
    providers: &'a [String],
    layers: Option<LayerSet>,
}

fn listed(v: &[String]) -> String {
    if v.is_empty() {
        "none".to_owned()
    } else {
        v.join(",")
    }
}

fn layer_list(l: LayerSet) -> String {
    let v: Vec<&str> = l.iter().map(|l| l.dotted()).collect();
    if v.is_empty() {
        "none".to_owned()
    } else {
        v.join(",")
    }
}

/// The member's description: what its store kept from its last run (the
/// same member: endpoints, neighbors, topics, providers, layers, a
/// suspension), with what the command line gives instead; and a line for
/// each thing taken up or changed.
fn described(id: &str, kept: Option<Description>, given: &Given) -> (Description, Vec<String>) {
    let Some(mut d) = kept else {
        let mut d = Description::new(id);
        d.topics = given.topics.to_vec();
        d.providers = given.providers.to_vec();
        d.started = given.layers.unwrap_or(LayerSet::ALL);
        return (d, Vec::new());
    };
    d.id = id.to_owned();
    if d.state == rmbus::cmbs::MemberState::Failed {
        // It failed with its last run; this run is a new start.
        d.state = rmbus::cmbs::MemberState::Inactive;
    }
    let mut said = Vec::new();
    let mut kept = Vec::new();
    // A list the command line gives replaces the stored one, aloud; one it
    // does not give is taken up.
    let mut take = |what: &str, given: &[String], stored: &mut Vec<String>| {
        if given.is_empty() {
            kept.push(format!("{what} {}", listed(stored)));
        } else if given != stored.as_slice() {
            said.push(format!(
                "{what} {} (were {} in its store)",
                listed(given),
                listed(stored)
            ));
            *stored = given.to_vec();
        }
    };
    take("topics", given.topics, &mut d.topics);
    take("providers", given.providers, &mut d.providers);
    match given.layers {
        None => kept.push(format!("layers {}", layer_list(d.started))),
        Some(l) if l != d.started => {
            said.push(format!(
                "layers {} (were {} in its store)",
                layer_list(l),
                layer_list(d.started)
            ));
            d.started = l;
        }
        Some(_) => {}
    }
    if !kept.is_empty() {
        said.insert(0, format!("taken up from its store: {}", kept.join("; ")));
    }
    (d, said)
}

pub fn run(args: Args) -> Outcome {
    let layers = args
        .layers
        .as_deref()
        .map(|list| {
            LayerSet::parse_list(list).map_err(|e| Failure::input(format!("--layers: {e}")))
        })
        .transpose()?;
    for t in &args.topics {
        rmbus::cmbs::topic::validate_subscription(t)
            .map_err(|e| Failure::input(format!("--topics: {e}")))?;
    }
    let exec_timeout = Duration::try_from_secs_f64(args.exec_timeout)
        .map_err(|e| Failure::input(format!("--exec-timeout: {e}")))?;
    let keep_for = Duration::try_from_secs_f64(args.keep_days * 86_400.0)
        .map_err(|e| Failure::input(format!("--keep-days: {e}")))?;
    let (id, store, path) = open_store(&args)?;
    let retention = Retention {
        keep: args.keep,
        keep_for,
    };
    let kept = match store {
        Some(mut s) => {
            // What is past the retention goes now; the store's worker keeps
            // it so.
            s.retain(&id, retention, SystemTime::now())
                .map_err(|e| Failure::input(format!("applying the retention: {e}")))?;
            s.description(&id)
                .map_err(|e| Failure::input(format!("reading the store: {e}")))?
        }
        None => None,
    };
    let given = Given {
        topics: &args.topics,
        providers: &args.providers,
        layers,
    };
    let (description, said) = described(&id, kept, &given);
    for line in said {
        eprintln!("rmbus: member {id}: {line}");
    }
    let started = description.started;
    let exec = (!args.exec.is_empty()).then(|| exec::handler(args.exec.clone(), exec_timeout));
    let options = MembersOptions {
        // The member is the only entity: no plain sender beside it.
        sender: None,
        store: path.clone(),
        retention,
        exec,
        exec_timeout,
        ..MembersOptions::default()
    };
    let (json, me) = (args.json, id.clone());
    let hosted = Hosted::start(&args.bus, options, move |e, _| print(&me, e, json))?;
    if let Err(e) = hosted.members.host(description) {
        hosted.close();
        return Err(Failure::input(format!("member {id}: {e}")));
    }
    let layers: Vec<&str> = started.iter().map(|l| l.dotted()).collect();
    eprintln!(
        "rmbus: member {id} on {} ({})",
        if layers.is_empty() {
            "no layer".to_owned()
        } else {
            layers.join(",")
        },
        path.map_or("no store".to_owned(), |p| format!("store {}", p.display()))
    );
    // Runs until Ctrl-C or SIGTERM (its normal end); then the store makes
    // its last writes and the member says bye.
    loop {
        match hosted.next() {
            Wake::Signal => break,
            Wake::Ended(r) => return Err(hosted::ended(r)),
            _ => {}
        }
    }
    hosted.close();
    Ok(())
}

/// Prints an event of member `me` (the others' joining, changing and
/// leaving among them).
fn print(me: &str, e: MembersEvent, json: bool) {
    let event = match e {
        MembersEvent::Member { event, .. } => event,
        MembersEvent::Joined(entry) if entry.description.id != me => Event::Joined(entry),
        MembersEvent::Changed { entry, .. } if entry.description.id != me => Event::Changed(entry),
        MembersEvent::Left { entry, reason } if entry.description.id != me => {
            Event::Left { entry, reason }
        }
        _ => return,
    };
    if let Some(line) = cmbs_out::event_out(&event, json) {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{}", line.trim_end());
        let _ = out.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rmbus::cmbs::MemberState;

    fn kept() -> Description {
        let mut d = Description::new("m");
        d.topics = vec!["jobs.#".into()];
        d.providers = vec!["weather".into()];
        d.neighbors = vec!["mbus:n/l1".into()];
        d.started = LayerSet::parse_list("l1,l2").unwrap();
        d.state = MemberState::Suspended;
        d
    }

    #[test]
    fn a_restart_takes_up_its_store_and_the_options_change_it_aloud() {
        let none = Given {
            topics: &[],
            providers: &[],
            layers: None,
        };
        let (d, said) = described("m", Some(kept()), &none);
        assert_eq!(d, kept(), "the same member");
        assert_eq!(
            said,
            ["taken up from its store: topics jobs.#; providers weather; layers l1,l2"]
        );
        let topics = ["alerts.#".to_owned()];
        let changed = Given {
            topics: &topics,
            providers: &[],
            layers: Some(LayerSet::ALL),
        };
        let (d, said) = described("m", Some(kept()), &changed);
        assert_eq!(d.topics, topics);
        assert_eq!(d.providers, ["weather"]);
        assert_eq!(d.started, LayerSet::ALL);
        assert_eq!(d.neighbors, ["mbus:n/l1"]);
        assert!(said[0].contains("providers weather"), "{said:?}");
        assert!(
            said.contains(&"topics alerts.# (were jobs.# in its store)".to_owned()),
            "{said:?}"
        );
        assert!(
            said.iter()
                .any(|l| l.starts_with("layers l1,l2,l3.1,l3.2,l4 (were l1,l2")),
            "{said:?}"
        );
        let mut failed = kept();
        failed.state = MemberState::Failed;
        assert_eq!(
            described("m", Some(failed), &none).0.state,
            MemberState::Inactive
        );
        let (fresh, said) = described("m", None, &changed);
        assert!(said.is_empty());
        assert_eq!(
            (fresh.topics, fresh.started),
            (topics.to_vec(), LayerSet::ALL)
        );
    }
}
