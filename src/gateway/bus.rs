//! The gateway's bus side: the library's members thread
//! ([`crate::runtime::spawn_members`]) with the gateway entity `(app:cmbs
//! module:gateway)` as its plain sender, every member created through the
//! gateway hosted on it, and its events turned into monitor notes and
//! records. The HTTP side talks to it with [`BusHandle`], whose calls are
//! async.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::cmbs::cmd::ActionAnswer;
use crate::cmbs::{Action, Description, Entry, Event, Message, Publish, Report};
use crate::config::Config;
use crate::runtime::{
    spawn_members, ExecHandler, MembersError, MembersEvent, MembersHandle, MembersOptions,
    MembersSpawnError,
};
use crate::wire::Address;
use tokio::sync::oneshot;

use super::monitor;

/// A member a remote action changed, for the HTTP side's records.
pub type Changed = tokio::sync::mpsc::UnboundedSender<Description>;

/// The HTTP side's handle on the members' thread.
#[derive(Clone)]
pub struct BusHandle {
    members: MembersHandle,
    log: super::Log,
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

    /// A number that grows with every change of the directory.
    pub fn directory_version(&self) -> u64 {
        self.members.directory_version()
    }

    /// The member with id `id`, if the gateway knows of it.
    pub fn member(&self, id: &str) -> Option<Entry> {
        self.members.member(id)
    }

    /// Says `what` in the gateway's log.
    pub fn log(&self, what: String) {
        (self.log)(what)
    }

    /// Stops the members' thread (each member says bye).
    pub fn stop(&self) {
        self.members.stop();
    }
}

/// What hosted members need.
pub struct Settings {
    /// The database of the members' stores.
    pub db: PathBuf,
    /// The execute handler (`None`: the echo handler).
    pub exec: Option<ExecHandler>,
    /// How long an execution may take.
    pub exec_timeout: Duration,
    /// Where member changes go, for the monitors.
    pub hub: Arc<super::monitor::Hub>,
    /// What the gateway has to say.
    pub log: super::Log,
}

/// Joins the bus `config` describes and starts the members' thread.
/// `ended` runs when it has stopped ([`BusHandle::stop`], or a failed bus).
pub fn start(
    config: &Config,
    settings: Settings,
    changed: Changed,
    ended: impl FnOnce(Result<(), String>) + Send + 'static,
) -> Result<BusHandle, MembersSpawnError> {
    let options = MembersOptions {
        sender: Some(Address::parse("(app:cmbs module:gateway)").expect("a constant address")),
        store: Some(settings.db.clone()),
        exec: settings.exec,
        exec_timeout: settings.exec_timeout,
        ..MembersOptions::default()
    };
    let (hub, log) = (settings.hub, settings.log);
    let members = spawn_members(config, options, move |e| on_event(&hub, &changed, e))?;
    let watcher = members.clone();
    std::thread::Builder::new()
        .name("rmbus-gateway-bus".into())
        .spawn(move || ended(watcher.wait()))?;
    Ok(BusHandle { members, log })
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
                hub.log(format!(
                    "member {member} received {} ({}) from {from}",
                    message.id,
                    message.layer.dotted()
                ));
            }
            _ => {}
        },
        _ => {}
    }
}
