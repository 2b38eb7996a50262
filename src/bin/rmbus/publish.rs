//! `rmbus publish`: send one CMBS message and print its outcome.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::time::Duration;

use rmbus::cmbs::{Content, Event, Layer, Message, Publish, Report};
use rmbus::runtime::{MembersEvent, MembersOptions};
use rmbus::wire::Address;

use crate::bus_args::BusPlace;
use crate::hosted::{Hosted, Wake};
use crate::{cmbs_out, Failure, Outcome};

/// Send one CMBS message and print its outcome (L1) or its delivery report.
#[derive(clap::Args)]
#[command(after_help = concat!("\
publish joins the bus as (app:cmbs module:publish), learns the directory
(waiting --wait, and up to 2 s more while members it has heard have not
described themselves: it asks them reliably once a second; for L1 only until
its target is known), sends the
message and prints the outcome: one line per matching member, and an
UNDESCRIBED line for each member whose description never came (it may have
been a recipient). \"DELIVERED\" is the member's own answer, never a transport
acknowledgement.

Examples:
  rmbus publish --layer l2 '{\"hello\": \"everyone\"}'
  rmbus publish --layer l1 --to mbus:6f1c0a2e-5b7d-4c1e-9a3f-2d8e4b6c1a90/l1 --executable '{\"a\": 1}'
  rmbus publish --layer l3.2 --topics alerts.disk --storable --text 'disk full'
  rmbus publish --layer l3.1 --providers weather --hold 5 '\"for later members\"'

", exit_codes!()))]
pub struct Args {
    #[command(flatten)]
    bus: BusPlace,
    /// The layer: l1, l2, l3.1 (l31), l3.2 (l32) or l4.
    #[arg(long, value_name = "LAYER")]
    layer: String,
    /// L1: the recipient's l1_socket or member id.
    #[arg(long, value_name = "MEMBER")]
    to: Option<String>,
    /// L3.1 and L4: the providers (comma-separated).
    #[arg(long, value_name = "P,…", value_delimiter = ',')]
    providers: Vec<String>,
    /// L3.2 and L4: the topics (comma-separated).
    #[arg(long, value_name = "T,…", value_delimiter = ',')]
    topics: Vec<String>,
    /// Recipients store the message before answering.
    #[arg(long)]
    storable: bool,
    /// Recipients run their execute handler on it (L1: its result is printed).
    #[arg(long)]
    executable: bool,
    /// L2 only: one unreliable multicast, no answers (SENT_UNCONFIRMED).
    #[arg(long)]
    unreliable: bool,
    /// Stay on the bus SECS seconds, offering the message to matching members
    /// that appear, and print each delivery.
    #[arg(long, value_name = "SECS")]
    hold: Option<f64>,
    /// How long to learn the directory first, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 2.0)]
    wait: f64,
    /// How long each recipient may take to answer, in seconds (executable
    /// messages get 5 s more).
    #[arg(long, value_name = "SECS", default_value_t = 2.0)]
    timeout: f64,
    /// Send TEXT as a JSON string.
    #[arg(long, value_name = "TEXT", conflicts_with_all = ["file", "content"])]
    text: Option<String>,
    /// Send the bytes of PATH (- for stdin) as Data.
    #[arg(long, value_name = "PATH", conflicts_with = "content")]
    file: Option<PathBuf>,
    /// Print JSON objects, one per line.
    #[arg(long)]
    pub json: bool,
    /// The content: a JSON value.
    #[arg(value_name = "CONTENT")]
    content: Option<String>,
}

fn secs(name: &str, v: f64) -> Result<Duration, Failure> {
    Duration::try_from_secs_f64(v).map_err(|e| Failure::input(format!("{name}: {e}")))
}

fn content(args: &Args) -> Result<Content, Failure> {
    if let Some(t) = &args.text {
        return Ok(Content::Json(serde_json::Value::String(t.clone())));
    }
    if let Some(path) = &args.file {
        let mut bytes = Vec::new();
        let read = if path.as_os_str() == "-" {
            std::io::stdin().read_to_end(&mut bytes)
        } else {
            std::fs::File::open(path).and_then(|mut f| f.read_to_end(&mut bytes))
        };
        read.map_err(|e| Failure::input(format!("{}: {e}", path.display())))?;
        return Ok(Content::Data(bytes));
    }
    let text = args
        .content
        .as_deref()
        .ok_or_else(|| Failure::input("give CONTENT (a JSON value), --text or --file"))?;
    serde_json::from_str(text).map(Content::Json).map_err(|e| {
        Failure::input(format!(
            "CONTENT is not JSON ({e}); for plain text use --text"
        ))
    })
}

/// Builds the message from the arguments; every check that needs no bus.
fn message(args: &Args) -> Result<(Message, Option<Duration>), Failure> {
    let layer = Layer::parse(&args.layer).ok_or_else(|| {
        Failure::input(format!(
            "--layer {}: expected l1, l2, l3.1/l31, l3.2/l32 or l4",
            args.layer
        ))
    })?;
    let mut m = Message::new("", layer, content(args)?);
    m.storable = args.storable;
    m.executable = args.executable;
    m.receiver = args.to.clone();
    m.providers = args.providers.clone();
    m.topics = args.topics.clone();
    if layer != Layer::L1 && args.to.is_some() {
        return Err(Failure::input("--to is for --layer l1"));
    }
    if !layer.uses_providers() && !args.providers.is_empty() {
        return Err(Failure::input(format!(
            "--providers is for l3.1 and l4, not {layer}"
        )));
    }
    if !layer.uses_topics() && !args.topics.is_empty() {
        return Err(Failure::input(format!(
            "--topics is for l3.2 and l4, not {layer}"
        )));
    }
    let hold = args.hold.map(|h| secs("--hold", h)).transpose()?;
    Ok((m, hold))
}

fn print(json: bool, text: String) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{}", text.trim_end());
    let _ = out.flush();
    let _ = json;
}

fn print_report(json: bool, r: &Report) {
    print(
        json,
        if json {
            cmbs_out::report_json(r).to_string()
        } else {
            cmbs_out::report_text(r)
        },
    );
}

pub fn run(args: Args) -> Outcome {
    let (mut message, hold) = message(&args)?;
    if message.id.is_empty() {
        // Chosen here, so that a held message can be named at once.
        message.id = uuid::Builder::from_random_bytes(rand::random())
            .into_uuid()
            .to_string();
    }
    let id = message.id.clone();
    if let Err(r) = message.check_sendable() {
        return Err(Failure::input(r));
    }
    let wait = secs("--wait", args.wait)?;
    let options = MembersOptions {
        sender: Some(Address::parse("(app:cmbs module:publish)").map_err(Failure::input)?),
        client: rmbus::cmbs::ClientConfig {
            delivery_timeout: secs("--timeout", args.timeout)?,
            ..Default::default()
        },
        ..MembersOptions::default()
    };
    // The lines of a held message, as they settle, go to the main thread.
    let hosted = Hosted::start(&args.bus, options, |e, tx| {
        if let MembersEvent::Sender(Event::Line { .. }) = e {
            let _ = tx.send(Wake::Event(Box::new(e)));
        }
    })?;
    // Learn the directory: for L1 until the target is known.
    let target = (message.layer == Layer::L1).then(|| message.receiver.clone().unwrap_or_default());
    hosted.learn(
        wait,
        move |dir| target.as_ref().is_some_and(|t| dir.named(t).is_some()),
        "interrupted before anything was sent",
    )?;
    let publish = Publish {
        message,
        unreliable: args.unreliable,
        hold,
    };
    let tx = hosted.sender();
    hosted.members.publish_then(None, publish, move |r| {
        let _ = tx.send(Wake::Report(r));
    });
    if let Some(h) = hold {
        // Said at once: the report comes only when the hold ends.
        let until = rmbus::record::rfc3339(std::time::SystemTime::now() + h);
        let text = if args.json {
            serde_json::json!({"event": "held", "message": id, "until": until}).to_string()
        } else {
            format!(
                "message {id} held for {} s, until {until}: matching members that appear meanwhile get it",
                h.as_secs_f64()
            )
        };
        print(args.json, text);
    }
    // Wait for the report, printing lines as they come when holding.
    let json = args.json;
    let report = hosted.wait_for(
        "interrupted before the outcome (it may have been delivered)",
        |w| match w {
            Wake::Report(r) => Some(r),
            Wake::Event(e) => {
                if let MembersEvent::Sender(Event::Line { message, line }) = *e {
                    let text = if json {
                        serde_json::json!({"event": "line", "message": message, "line": cmbs_out::line_json(&line)}).to_string()
                    } else {
                        cmbs_out::line_text(&line)
                    };
                    print(json, text);
                }
                None
            }
            _ => None,
        },
    )?;
    hosted.close();
    let report = report.map_err(Failure::input)?;
    print_report(args.json, &report);
    if let (Some(h), rmbus::cmbs::Outcome::Rejected(r)) = (hold, &report.outcome) {
        if r.code == rmbus::cmbs::Code::NoRecipient && !args.json {
            eprintln!(
                "rmbus: no matching member appeared during the {} s hold",
                h.as_secs_f64()
            );
        }
    }
    match report.outcome.exit_code() {
        0 => Ok(()),
        code => Err(Failure::with_code(code, "")),
    }
}
