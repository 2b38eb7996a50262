//! `rmbus messages`: what a member stored.

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use rmbus::store::{SqliteStore, Store};

use crate::{Failure, Outcome};

/// List, show or remove the messages a member stored.
#[derive(clap::Args)]
#[command(after_help = concat!("\
Examples:
  rmbus messages --store ./m.sqlite
  rmbus messages --store ./m.sqlite <message-id>     # the ids are in the listing
  rmbus messages --store ./m.sqlite --delete <message-id>
  rmbus messages --store ./m.sqlite --purge

", exit_codes!()))]
pub struct Args {
    /// The member's store file.
    #[arg(long, value_name = "PATH")]
    store: PathBuf,
    /// The member (needed when the store holds several).
    #[arg(long, value_name = "UUID")]
    member: Option<String>,
    /// One JSON object per message.
    #[arg(long)]
    pub json: bool,
    /// Show this message in full.
    #[arg(value_name = "ID", conflicts_with_all = ["delete", "purge"])]
    id: Option<String>,
    /// Remove this message.
    #[arg(long, value_name = "ID", conflicts_with = "purge")]
    delete: Option<String>,
    /// Remove every message of the member.
    #[arg(long)]
    purge: bool,
}

pub fn run(args: Args) -> Outcome {
    if !args.store.exists() {
        return Err(Failure::input(format!(
            "{}: no such store",
            args.store.display()
        )));
    }
    let bad = |e: &dyn std::fmt::Display| Failure::input(format!("{}: {e}", args.store.display()));
    let writing = args.delete.is_some() || args.purge;
    let mut store = if writing {
        SqliteStore::open(&args.store)
    } else {
        SqliteStore::open_read_only(&args.store)
    }
    .map_err(|e| bad(&e))?;
    let members = store.members().map_err(|e| bad(&e))?;
    let member = match (&args.member, members.as_slice()) {
        (Some(m), _) if members.contains(m) => m.clone(),
        (Some(m), _) => return Err(bad(&format!("holds no member {m}"))),
        (None, [one]) => one.clone(),
        (None, []) => return Err(bad(&"holds no member")),
        (None, many) => {
            return Err(bad(&format!(
                "holds several members ({}); name one with --member",
                many.join(", ")
            )))
        }
    };
    let mut out = std::io::stdout().lock();
    if let Some(id) = &args.delete {
        if !store.delete(&member, id).map_err(|e| bad(&e))? {
            return Err(bad(&format!("no message {id}")));
        }
        let _ = writeln!(out, "deleted {id}");
        return Ok(());
    }
    if args.purge {
        let n = store.purge(&member).map_err(|e| bad(&e))?;
        let _ = writeln!(out, "removed {n} message(s)");
        return Ok(());
    }
    let stamp =
        |ms: u64| rmbus::record::rfc3339(SystemTime::UNIX_EPOCH + Duration::from_millis(ms));
    if let Some(id) = &args.id {
        let m = store
            .message(&member, id)
            .map_err(|e| bad(&e))?
            .ok_or_else(|| bad(&format!("no message {id}")))?;
        let mut v = m.message.to_json();
        v["from"] = serde_json::json!(m.from);
        v["stored"] = serde_json::json!(stamp(m.stored_unix_ms));
        let text = if args.json {
            v.to_string()
        } else {
            serde_json::to_string_pretty(&v).unwrap_or_default()
        };
        let _ = writeln!(out, "{text}");
        return Ok(());
    }
    let all = store.messages(&member).map_err(|e| bad(&e))?;
    if !args.json && !all.is_empty() {
        let _ = writeln!(
            out,
            "{:<24}  {:<36}  {:<5}  CONTENT",
            "STORED", "ID", "LAYER"
        );
    }
    for m in all {
        if args.json {
            let mut v = m.message.to_json();
            v["from"] = serde_json::json!(m.from);
            v["stored"] = serde_json::json!(stamp(m.stored_unix_ms));
            let _ = writeln!(out, "{v}");
        } else {
            let content = m.message.content.to_json().to_string();
            let short: String = content.chars().take(60).collect();
            let _ = writeln!(
                out,
                "{:<24}  {:<36}  {:<5}  {short}",
                stamp(m.stored_unix_ms),
                m.message.id,
                m.message.layer.dotted()
            );
        }
    }
    Ok(())
}
