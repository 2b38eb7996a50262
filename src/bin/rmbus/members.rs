//! `rmbus members`: the CMBS directory, and actions on a member.

use std::io::Write;
use std::time::Duration;

use rmbus::cmbs::cmd::ActionAnswer;
use rmbus::cmbs::Action;
use rmbus::runtime::{MembersError, MembersOptions};
use rmbus::wire::Address;

use crate::bus_args::BusPlace;
use crate::hosted::{Hosted, Wake};
use crate::{cmbs_out, Failure, Outcome};

/// Ask the members on the bus to describe themselves and print the
/// directory; with ID ACTION, run that action on that member.
#[derive(clap::Args)]
#[command(after_help = concat!("\
Actions: start_l1 … start_l4 (start_l3.1 or start_l31), stop_l1 … stop_l4,
suspend, resume, check_neighbors.

A member entity heard on the bus whose description never came is listed with
? in its columns (state \"undescribed\" in --json).

Examples:
  rmbus members
  rmbus members --json --wait 1
  rmbus members 6f1c0a2e-5b7d-4c1e-9a3f-2d8e4b6c1a90 stop_l2

", exit_codes!()))]
pub struct Args {
    #[command(flatten)]
    bus: BusPlace,
    /// How long to listen for the members, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 2.0)]
    wait: f64,
    /// How long the member may take to answer an action, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 2.0)]
    timeout: f64,
    /// One JSON object per member (or the action's answer).
    #[arg(long)]
    pub json: bool,
    /// A member id (with ACTION).
    #[arg(value_name = "ID", requires = "action")]
    id: Option<String>,
    /// The action to run on member ID.
    #[arg(value_name = "ACTION")]
    action: Option<String>,
}

fn secs(name: &str, v: f64) -> Result<Duration, Failure> {
    Duration::try_from_secs_f64(v).map_err(|e| Failure::input(format!("{name}: {e}")))
}

pub fn run(args: Args) -> Outcome {
    let wait = secs("--wait", args.wait)?;
    let timeout = secs("--timeout", args.timeout)?;
    let action = match &args.action {
        Some(term) => Some(Action::parse(term).ok_or_else(|| {
            Failure::input(format!(
                "unknown action {term:?} (start_l1 … start_l4, stop_l1 … stop_l4, suspend, resume, check_neighbors)"
            ))
        })?),
        None => None,
    };
    let options = MembersOptions {
        sender: Some(Address::parse("(app:cmbs module:members)").map_err(Failure::input)?),
        action_timeout: timeout,
        ..MembersOptions::default()
    };
    let hosted = Hosted::start(&args.bus, options, |_, _| {})?;
    let target = args.id.clone();
    let learned = hosted.learn(
        wait,
        move |dir| target.as_ref().is_some_and(|id| dir.get(id).is_some()),
        "interrupted",
    )?;
    let (Some(id), Some(action)) = (args.id.as_deref(), action) else {
        let mut out = std::io::stdout().lock();
        let dir = hosted.members.directory();
        if !args.json && (!dir.is_empty() || !learned.undescribed.is_empty()) {
            let _ = writeln!(out, "{}", cmbs_out::entry_header());
        }
        for e in &dir {
            let _ = if args.json {
                writeln!(out, "{}", cmbs_out::entry_json(e))
            } else {
                writeln!(out, "{}", cmbs_out::entry_line(e))
            };
        }
        // Members heard on the bus whose description never came: listed,
        // not left out.
        for (id, address) in &learned.undescribed {
            let _ = if args.json {
                writeln!(out, "{}", cmbs_out::undescribed_json(id, address))
            } else {
                writeln!(out, "{}", cmbs_out::undescribed_line(id, address))
            };
        }
        hosted.close();
        return Ok(());
    };
    if hosted.members.member(id).is_none() {
        hosted.close();
        return Err(Failure::input(format!(
            "no member {id} answered within {} s",
            args.wait
        )));
    }
    let tx = hosted.sender();
    hosted.members.act_then(id, action, move |r| {
        let _ = tx.send(Wake::Acted(r));
    });
    let answer = hosted.wait_for("interrupted", |w| match w {
        Wake::Acted(r) => Some(r),
        _ => None,
    })?;
    hosted.close();
    match answer {
        Ok(answer) => {
            print_answer(&answer, action, args.json);
            Ok(())
        }
        Err(MembersError::TimedOut(_)) => Err(Failure::malformed(format!(
            "{id} did not answer {action} in time"
        ))),
        Err(MembersError::Malformed(e)) => Err(Failure::malformed(format!(
            "{id} answered {action} malformed: {e}"
        ))),
        Err(e) => Err(Failure::lost(format!("{action} on {id}: {e}"))),
    }
}

fn print_answer(a: &ActionAnswer, action: Action, json: bool) {
    let mut out = std::io::stdout().lock();
    if json {
        let mut v = serde_json::json!({"action": action.to_string(), "member": cmbs_out::description_json(&a.member)});
        if action == Action::CheckNeighbors {
            v["neighbors"] = a
                .neighbors
                .iter()
                .map(|n| serde_json::json!({"endpoint": n.endpoint, "member": n.member}))
                .collect();
            v["members"] = a.members.iter().map(cmbs_out::description_json).collect();
        }
        let _ = writeln!(out, "{v}");
        return;
    }
    let d = &a.member;
    let layers: Vec<&str> = d.started.iter().map(|l| l.dotted()).collect();
    let _ = writeln!(
        out,
        "{}: {} on {}",
        d.id,
        d.state,
        if layers.is_empty() {
            "-".into()
        } else {
            layers.join(",")
        }
    );
    for n in &a.neighbors {
        let _ = writeln!(
            out,
            "  neighbor {:<40} {}",
            n.endpoint,
            n.member.as_deref().unwrap_or("not known")
        );
    }
    if action == Action::CheckNeighbors {
        let _ = writeln!(out, "  {} member(s) known", a.members.len());
    }
}
