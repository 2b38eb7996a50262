//! The gateway's bus side: the library's members thread
//! ([`rmbus::runtime::spawn_members`]) with the gateway entity `(app:cmbs
//! module:gateway)` as its plain sender, every member created through the
//! gateway hosted on it, and its events turned into monitor notes and
//! records. The HTTP side talks to it with [`BusHandle`], whose calls are
//! async.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rmbus::cmbs::cmd::ActionAnswer;
use rmbus::cmbs::{Action, Description, Entry, Event, Message, Publish, Report};
use rmbus::runtime::{
    spawn_members, ExecHandler, MembersError, MembersEvent, MembersHandle, MembersOptions,
};
use rmbus::wire::Address;
use tokio::sync::oneshot;

use crate::bus_args::BusPlace;
use crate::signals::Termination;
use crate::{exec, Failure};

use super::monitor;

/// A member a remote action changed, for the HTTP side's records.
pub type Changed = tokio::sync::mpsc::UnboundedSender<Description>;

/// The HTTP side's handle on the members' thread.
#[derive(Clone)]
pub struct BusHandle {
    members: MembersHandle,
}

/// Waits for a `_then` call's answer.
async fn answer<T>(rx: Answer<T>) -> Result<T, String> {
    match rx.await {
        Ok(r) => r.map_err(|e| match e {
            MembersError::Stopped => "the bus is down".to_owned(),
            other => other.to_string(),
        }),
        Err(_) => Err("the bus is down".to_owned()),
    }
}

/// What a `_then` call answers.
type Answer<T> = oneshot::Receiver<Result<T, MembersError>>;

/// A reply channel for a `_then` call.
fn reply<T: Send + 'static>() -> (
    impl FnOnce(Result<T, MembersError>) + Send + 'static,
    Answer<T>,
) {
    let (tx, rx) = oneshot::channel();
    (
        move |r| {
            let _ = tx.send(r);
        },
        rx,
    )
}

impl BusHandle {
    /// Hosts a member; its description once started.
    pub async fn host(&self, d: Description) -> Result<Description, String> {
        let (then, rx) = reply();
        self.members.host_then(d, then);
        answer(rx).await
    }

    /// Changes a hosted member.
    pub async fn update(&self, d: Description) -> Result<Description, String> {
        let (then, rx) = reply();
        self.members.update_then(d, then);
        answer(rx).await
    }

    /// Runs an action on member `id`.
    pub async fn act(&self, id: &str, action: Action) -> Result<ActionAnswer, String> {
        let (then, rx) = reply();
        self.members.act_then(id, action, then);
        answer(rx).await
    }

    /// Says bye for hosted member `id`.
    pub async fn remove(&self, id: &str) -> Result<(), String> {
        let (then, rx) = reply();
        self.members.remove_then(id, then);
        answer(rx).await
    }

    /// Sends a message from the gateway entity; its report.
    pub async fn publish(&self, m: Message) -> Result<Report, String> {
        let (then, rx) = reply();
        self.members.publish_then(None, Publish::new(m), then);
        answer(rx).await
    }

    /// The members the gateway knows of, hosted ones among them.
    pub fn directory(&self) -> Vec<Entry> {
        self.members.directory()
    }

    /// The member with id `id`, if the gateway knows of it.
    pub fn member(&self, id: &str) -> Option<Entry> {
        self.members.member(id)
    }
}

/// What hosted members need.
pub struct Settings {
    /// The database of the members' stores.
    pub db: PathBuf,
    /// `--exec PROGRAM [ARG…]` (empty: the echo handler).
    pub exec: Vec<String>,
    /// How long an execution may take.
    pub exec_timeout: Duration,
    /// Where member changes go, for the monitors.
    pub hub: Arc<super::monitor::Hub>,
}

/// Joins the bus and starts the members' thread; Ctrl-C or SIGTERM stops
/// it (every member says bye). `ended` runs when it has stopped (a signal,
/// or a failed bus).
pub fn start(
    place: &BusPlace,
    settings: Settings,
    changed: Changed,
    ended: impl FnOnce(Result<(), String>) + Send + 'static,
) -> Result<BusHandle, Failure> {
    let config = place.config()?;
    let exec: Option<ExecHandler> = match settings.exec.is_empty() {
        true => None,
        false => {
            let (program, timeout) = (settings.exec.clone(), settings.exec_timeout);
            Some(Arc::new(move |job: &rmbus::cmbs::ExecJob| {
                exec::run(&program, &job.message.content.to_bytes(), timeout)
            }))
        }
    };
    let options = MembersOptions {
        sender: Some(Address::parse("(app:cmbs module:gateway)").map_err(Failure::input)?),
        store: Some(settings.db.clone()),
        exec,
        exec_timeout: settings.exec_timeout,
        ..MembersOptions::default()
    };
    let hub = settings.hub;
    let members = spawn_members(&config, options, move |e| on_event(&hub, &changed, e))
        .map_err(Failure::input)?;
    let signals = Termination::install().map_err(Failure::input)?;
    let stopper = members.clone();
    std::thread::Builder::new()
        .name("rmbus-signals".into())
        .spawn(move || {
            if signals.wait().is_ok() {
                stopper.stop();
            }
        })
        .map_err(Failure::input)?;
    let watcher = members.clone();
    std::thread::Builder::new()
        .name("rmbus-gateway-bus".into())
        .spawn(move || ended(watcher.wait()))
        .map_err(Failure::input)?;
    Ok(BusHandle { members })
}

/// A members' event, for the monitors and the records.
fn on_event(hub: &monitor::Hub, changed: &Changed, e: MembersEvent) {
    match e {
        MembersEvent::Joined(entry) => {
            let address = entry.address.to_string();
            hub.publish(monitor::member_note(
                "joined",
                &entry.description,
                Some(&address),
                serde_json::json!({}),
            ));
        }
        MembersEvent::Changed { entry, before } => {
            let address = entry.address.to_string();
            for n in monitor::member_changes(&before, &entry.description, Some(&address)) {
                hub.publish(n);
            }
        }
        MembersEvent::Left { entry, reason } => {
            let reason = format!("{reason:?}").to_lowercase();
            hub.publish(monitor::member_note(
                "left",
                &entry.description,
                Some(&entry.address.to_string()),
                serde_json::json!({ "reason": reason }),
            ));
        }
        MembersEvent::Member { member, event } => match event {
            Event::Acted {
                by: Some(_),
                description,
                ..
            } => {
                let _ = changed.send(description);
            }
            Event::Received { message, from } => {
                eprintln!(
                    "rmbus gateway: member {member} received {} ({}) from {from}",
                    message.id,
                    message.layer.dotted()
                );
            }
            _ => {}
        },
        _ => {}
    }
}
