//! The CMBS categories of the gateway (pyCMBS 0.2's `member` and `message`
//! kinds, the `l1 l2 l31 l32 l4` mixins, their actions, attribute names
//! byte for byte) and what they do on the bus: the member kind's hooks, the
//! member actions and the message actions.

use std::sync::Arc;
use std::time::Duration;

use crate::cmbs::cmd::ActionAnswer;
use crate::cmbs::{
    Action, Content, Description, ExecJob, Layer, MemberState, Message, Outcome, Report,
};
use crate::occi::{
    ActionCall, AttrType, Attribute, BoxFuture, Category, Entity, Hooks, OcciError, ServerBuilder,
    TypeId,
};
use crate::runtime::ExecHandler;
use crate::wire::Address;
use axum::http::StatusCode;
use serde_json::{json, Value};

use super::bus::BusHandle;
use super::monitor::{member_note, Hub, Kind, Note};

/// The CMBS kinds' and mixins' scheme.
pub const CMBS: &str = "http://houssem.org/cmbs#";
const MEMBER_ACTIONS: &str = "http://houssem.org/cmbs/member/action#";
const MESSAGE_ACTIONS: &str = "http://houssem.org/cmbs/message/action#";
/// Where members are.
pub const MEMBER_LOCATION: &str = "/cmbs/member/";

/// `http://houssem.org/cmbs#member`.
pub fn member_kind_id() -> TypeId {
    TypeId::new(CMBS, "member")
}

fn enum_of(values: &[&str]) -> AttrType {
    AttrType::Enum(values.iter().map(|s| s.to_string()).collect())
}

fn member_attr(name: &str, ty: AttrType) -> Attribute {
    Attribute::new(&format!("cmbs.member.{name}"), ty)
}

fn message_attr(name: &str, ty: AttrType) -> Attribute {
    Attribute::new(&format!("cmbs.message.{name}"), ty)
}

/// What the gateway's handlers need.
#[derive(Clone)]
pub struct Context {
    /// The bus side.
    pub bus: BusHandle,
    /// The execute handler of the `execute` action (`None`: echo).
    pub exec: Option<ExecHandler>,
    /// The gateway's address, the sender of the jobs it executes.
    pub address: Address,
    /// How long an execution may take.
    pub exec_timeout: Duration,
    /// Where message changes go, for the monitors.
    pub hub: Arc<Hub>,
}

/// Adds the CMBS categories, hooks and handlers to `b`.
pub fn install(b: ServerBuilder, cx: Context) -> ServerBuilder {
    let mut member_actions: Vec<(Category, Action)> = Vec::new();
    for l in Layer::ALL {
        for (verb, act) in [("start", Action::Start(l)), ("stop", Action::Stop(l))] {
            let c = Category::action(
                MEMBER_ACTIONS,
                &format!("{verb}_{}", l.dotted()),
                &format!(
                    "{verb} the {} of the member instance",
                    l.dotted().to_uppercase()
                ),
            );
            member_actions.push((c, act));
        }
    }
    member_actions.push((
        Category::action(
            MEMBER_ACTIONS,
            "suspend",
            "refuse every delivery until resumed",
        ),
        Action::Suspend,
    ));
    member_actions.push((
        Category::action(MEMBER_ACTIONS, "resume", "take deliveries again"),
        Action::Resume,
    ));
    member_actions.push((
        Category::action(
            MEMBER_ACTIONS,
            "check_neighbors",
            "check the neighbors member and try to get their description",
        ),
        Action::CheckNeighbors,
    ));
    let mut member = Category::kind(CMBS, "member", "member of CMBS", MEMBER_LOCATION).attribute(
        member_attr(
            "state",
            enum_of(&["active", "inactive", "suspended", "failed"]),
        )
        .default("inactive"),
    );
    for l in Layer::ALL {
        member = member.attribute(member_attr(&l.socket_attribute(), AttrType::String));
    }
    member = member
        .attribute(member_attr("neighbors_socket", AttrType::Array).default(json!([])))
        .attribute(member_attr("topics", AttrType::Array).default(json!([])))
        .attribute(
            member_attr("providers", AttrType::Array)
                .default(json!([]))
                .describe("provider names served (L3.1, L4); the member id always counts"),
        )
        .attribute(
            member_attr("layers", AttrType::Array)
                .immutable()
                .default(json!([]))
                .describe("the layers whose receivers run"),
        )
        .attribute(
            member_attr("hosted", AttrType::Boolean)
                .immutable()
                .default(true)
                .describe("true: runs in this gateway; false: read from the bus directory"),
        )
        .attribute(member_attr("address", AttrType::String).immutable())
        .attribute(
            member_attr("site", AttrType::String)
                .immutable()
                .describe("a member of another site, reached through a bridge: its site"),
        )
        .attribute(
            member_attr("neighbors_known", AttrType::Array)
                .immutable()
                .describe("check_neighbors: each neighbors_socket entry and the member it names"),
        )
        .attribute(
            member_attr("members_found", AttrType::Array)
                .immutable()
                .describe("check_neighbors: every member found, described"),
        );
    for (c, _) in &member_actions {
        member = member.with_action(c);
    }

    let execute = Category::action(MESSAGE_ACTIONS, "execute", "execute locally the message");
    let message = Category::kind(CMBS, "message", "CMBS message", "/cmbs/message/")
        .attribute(
            message_attr(
                "cmbs_layer",
                enum_of(&["l1", "l2", "l31", "l32", "l4", "l3.1", "l3.2"]),
            )
            .describe("l1, l2, l31, l32 or l4 (l3.1 and l3.2 are read as l31 and l32)"),
        )
        .attribute(message_attr("executable", AttrType::Boolean).default(false))
        .attribute(message_attr("sendable", AttrType::Boolean).default(true))
        .attribute(message_attr("storable", AttrType::Boolean).default(false))
        .attribute(message_attr("path_history", AttrType::Array).default(json!([])))
        .attribute(message_attr("message_content", AttrType::Any).default(""))
        .attribute(message_attr("result", AttrType::Any).default(""))
        .attribute(
            message_attr(
                "status",
                enum_of(&["created", "sending", "delivered", "partial", "failed"]),
            )
            .immutable()
            .default("created"),
        )
        .attribute(
            message_attr("report", AttrType::Array)
                .immutable()
                .default(json!([]))
                .describe("per recipient: {member, outcome, reason}"),
        )
        .with_action(&execute);
    let receiver = message_attr("l1_socket_receiver_member", AttrType::String);
    let providers = message_attr("providers", AttrType::Array).default(json!([]));
    let topics = message_attr("topics", AttrType::Array).default(json!([]));
    let mut b = b;
    let mut mixins = Vec::new();
    for l in Layer::ALL {
        let send = Category::action(
            MESSAGE_ACTIONS,
            &format!("send_{}", l.as_str()),
            &format!("Send a {} message", l.as_str().to_uppercase()),
        );
        let mut mixin = Category::mixin(
            CMBS,
            l.as_str(),
            &format!("{} CMBS message", l.as_str().to_uppercase()),
            &format!("/cmbs/message/{}/", l.as_str()),
        )
        .applies_to(&message)
        .with_action(&send);
        mixin = match l {
            Layer::L1 => mixin.attribute(receiver.clone()),
            Layer::L2 => mixin,
            Layer::L31 => mixin.attribute(providers.clone()),
            Layer::L32 => mixin.attribute(topics.clone()),
            Layer::L4 => mixin.attribute(providers.clone()).attribute(topics.clone()),
        };
        mixins.push((mixin, send, l));
    }
    let hooks: Arc<dyn Hooks> = Arc::new(MemberHooks {
        bus: cx.bus.clone(),
    });
    let message_hooks: Arc<dyn Hooks> = Arc::new(MessageHooks {
        hub: Arc::clone(&cx.hub),
    });
    b = b
        .providers(&[&member, &message])
        .hooks(&member, hooks)
        .hooks(&message, message_hooks)
        .category(member)
        .category(message);
    for (mixin, send, l) in mixins {
        let cx = cx.clone();
        b = b
            .category(mixin)
            .action(send, move |call| send_message(cx.clone(), call, l));
    }
    for (c, act) in member_actions {
        let bus = cx.bus.clone();
        b = b.action(c, move |call| member_action(bus.clone(), call, act));
    }
    for (alias, term) in [
        ("start_l31", "start_l3.1"),
        ("start_l32", "start_l3.2"),
        ("stop_l31", "stop_l3.1"),
        ("stop_l32", "stop_l3.2"),
    ] {
        b = b.alias(alias, term);
    }
    let ecx = cx;
    b.action(execute, move |call| execute_message(ecx.clone(), call))
}

fn unavailable(e: String) -> OcciError {
    OcciError::unavailable(format!("the bus: {e}"))
}

/// A member entity's description (its id, endpoints, lists, the state and
/// layers it asks for).
fn description_of(e: &Entity) -> Result<Description, OcciError> {
    let mut d = Description::new(&e.id);
    for l in Layer::ALL {
        if let Some(s) = e.text(&format!("cmbs.member.{}", l.socket_attribute())) {
            d.sockets[l as usize] = s.to_owned();
        }
    }
    d.neighbors = e.strings("cmbs.member.neighbors_socket");
    d.topics = e.strings("cmbs.member.topics");
    d.providers = e.strings("cmbs.member.providers");
    for t in &d.topics {
        crate::cmbs::topic::validate_subscription(t)
            .map_err(|err| OcciError::bad_request(format!("cmbs.member.topics: {err}")))?;
    }
    for name in e.strings("cmbs.member.layers") {
        if let Some(l) = Layer::parse(&name) {
            d.started.insert(l);
        }
    }
    if let Some(s) = e.text("cmbs.member.state").and_then(MemberState::parse) {
        d.state = s;
    }
    Ok(d)
}

/// Writes what the member is now into its entity.
pub fn show(e: &mut Entity, d: &Description) {
    let a = &mut e.attributes;
    a.insert("cmbs.member.state".into(), d.state.as_str().into());
    let layers: Vec<&str> = d.started.iter().map(Layer::dotted).collect();
    a.insert("cmbs.member.layers".into(), layers.into());
    for l in Layer::ALL {
        a.insert(
            format!("cmbs.member.{}", l.socket_attribute()),
            d.socket(l).into(),
        );
    }
    if let Ok(addr) = crate::cmbs::Member::address(&d.id) {
        a.entry("cmbs.member.address".into())
            .or_insert_with(|| addr.to_string().into());
    }
}

/// Brings a stored member back onto the bus after a restart.
pub async fn restore(bus: &BusHandle, e: &Entity) -> Result<(), String> {
    let d = description_of(e).map_err(|e| e.reason)?;
    bus.host(d).await.map(|_| ())
}

struct MemberHooks {
    bus: BusHandle,
}

impl Hooks for MemberHooks {
    fn create(&self, mut e: Entity) -> BoxFuture<Result<Entity, OcciError>> {
        let bus = self.bus.clone();
        Box::pin(async move {
            if uuid::Uuid::parse_str(&e.id).is_err() {
                return Err(OcciError::bad_request(format!(
                    "a member id is a UUID, not {:?}",
                    e.id
                )));
            }
            let mut d = description_of(&e)?;
            d.started = match d.state {
                MemberState::Active => crate::cmbs::LayerSet::ALL,
                MemberState::Inactive => crate::cmbs::LayerSet::NONE,
                s => {
                    return Err(OcciError::bad_request(format!(
                        "a member is created active or inactive, not {s}"
                    )))
                }
            };
            let d = bus.host(d).await.map_err(unavailable)?;
            show(&mut e, &d);
            Ok(e)
        })
    }

    fn update(&self, old: Entity, mut new: Entity) -> BoxFuture<Result<Entity, OcciError>> {
        let bus = self.bus.clone();
        Box::pin(async move {
            let before = description_of(&old)?;
            let wanted = description_of(&new)?;
            let mut now = bus.update(wanted.clone()).await.map_err(unavailable)?;
            let act = |a: Action| {
                let bus = bus.clone();
                let id = old.id.clone();
                async move { bus.act(&id, a).await.map_err(unavailable) }
            };
            match (before.state, wanted.state) {
                (_, MemberState::Failed) if before.state != MemberState::Failed => {
                    return Err(OcciError::bad_request(
                        "failed is set by the runtime, not by a client",
                    ))
                }
                (MemberState::Suspended, MemberState::Suspended) => {}
                (_, MemberState::Suspended) => now = act(Action::Suspend).await?.member,
                (from, to) => {
                    if from == MemberState::Suspended {
                        now = act(Action::Resume).await?.member;
                    }
                    let layers = now.started;
                    if to == MemberState::Active && layers.is_empty() {
                        for l in Layer::ALL {
                            now = act(Action::Start(l)).await?.member;
                        }
                    } else if to == MemberState::Inactive && !layers.is_empty() {
                        for l in layers.iter() {
                            now = act(Action::Stop(l)).await?.member;
                        }
                    }
                }
            }
            show(&mut new, &now);
            Ok(new)
        })
    }

    fn delete(&self, e: Entity) -> BoxFuture<Result<(), OcciError>> {
        let bus = self.bus.clone();
        Box::pin(async move { bus.remove(&e.id).await.map_err(unavailable) })
    }
}

/// A note about message entity `e`, with `extra` merged into its data.
pub fn message_note(event: &'static str, e: &Entity, extra: Value) -> Note {
    let layer = e.text("cmbs.message.cmbs_layer").and_then(Layer::parse);
    let topics = e.strings("cmbs.message.topics");
    let mut data = json!({
        "message": e.id,
        "layer": layer.map(|l| l.as_str()),
        "topics": topics,
        "status": e.text("cmbs.message.status"),
    });
    if let (Value::Object(o), Value::Object(x)) = (&mut data, extra) {
        o.extend(x);
    }
    let mut n = Note::new(Kind::Messages, event, data);
    n.layers = layer.into_iter().collect();
    n.topics = topics;
    n
}

/// The current state a new monitor of `kind` is answered with.
pub fn state_of(
    store: &dyn crate::occi::EntityStore,
    kind: Kind,
    keep: &dyn Fn(&Note) -> bool,
) -> Vec<Value> {
    let Ok(all) = store.list() else {
        return Vec::new();
    };
    all.iter()
        .filter_map(|e| match kind {
            Kind::Members if e.kind == member_kind_id() => {
                let d = description_of(e).ok()?;
                let hosted = e.flag("cmbs.member.hosted");
                Some(member_note(
                    "member",
                    &d,
                    e.text("cmbs.member.address"),
                    json!({"hosted": hosted}),
                ))
            }
            Kind::Messages if e.kind == TypeId::new(CMBS, "message") => {
                Some(message_note("message", e, json!({})))
            }
            _ => None,
        })
        .filter(|n| keep(n))
        .map(|n| n.data)
        .collect()
}

struct MessageHooks {
    hub: Arc<Hub>,
}

impl Hooks for MessageHooks {
    fn create(&self, mut e: Entity) -> BoxFuture<Result<Entity, OcciError>> {
        one_spelling(&mut e);
        self.hub.publish(message_note("created", &e, json!({})));
        Box::pin(async move { Ok(e) })
    }

    fn update(&self, _old: Entity, mut new: Entity) -> BoxFuture<Result<Entity, OcciError>> {
        one_spelling(&mut new);
        Box::pin(async move { Ok(new) })
    }
}

/// A message's layer as pyCMBS spells it (`l31`, `l32`), whichever
/// spelling it was given in (`rmbus publish` takes both).
fn one_spelling(e: &mut Entity) {
    let layer = e.text("cmbs.message.cmbs_layer").and_then(Layer::parse);
    if let Some(l) = layer {
        e.attributes
            .insert("cmbs.message.cmbs_layer".into(), l.as_str().into());
    }
}

async fn member_action(
    bus: BusHandle,
    call: ActionCall,
    action: Action,
) -> Result<Entity, OcciError> {
    let mut e = call.entity;
    let answer: ActionAnswer = bus.act(&e.id, action).await.map_err(|err| {
        if err.starts_with("no member") {
            OcciError::not_found(err)
        } else {
            unavailable(err)
        }
    })?;
    show(&mut e, &answer.member);
    if action == Action::CheckNeighbors {
        let known: Vec<Value> = answer
            .neighbors
            .iter()
            .map(|n| json!({"endpoint": n.endpoint, "member": n.member}))
            .collect();
        let found: Vec<Value> = answer.members.iter().map(Description::to_json).collect();
        e.attributes
            .insert("cmbs.member.neighbors_known".into(), known.into());
        e.attributes
            .insert("cmbs.member.members_found".into(), found.into());
    }
    Ok(e)
}

/// A message entity's layer (L1 if it names none).
fn layer_of(e: &Entity) -> Result<Layer, OcciError> {
    match e.text("cmbs.message.cmbs_layer") {
        None => Ok(Layer::L1),
        Some(l) => Layer::parse(l).ok_or_else(|| {
            OcciError::bad_request(format!(
                "cmbs.message.cmbs_layer {l:?} of {} is no layer (l1, l2, l3.1, l3.2 or l4)",
                e.id
            ))
        }),
    }
}

/// The CMBS message of a message entity.
fn message_of(e: &Entity, layer: Layer) -> Result<Message, OcciError> {
    if let Some(l) = e.text("cmbs.message.cmbs_layer") {
        if Layer::parse(l) != Some(layer) {
            return Err(OcciError::bad_request(format!(
                "{} is an {l} message; send_{} sends {} messages",
                e.id,
                layer.as_str(),
                layer.as_str()
            )));
        }
    }
    let content = e
        .attributes
        .get("cmbs.message.message_content")
        .cloned()
        .unwrap_or(Value::Null);
    let mut m = Message::new(&e.id, layer, Content::Json(content));
    m.executable = e.flag("cmbs.message.executable").unwrap_or(false);
    m.sendable = e.flag("cmbs.message.sendable").unwrap_or(true);
    m.storable = e.flag("cmbs.message.storable").unwrap_or(false);
    m.path_history = e.strings("cmbs.message.path_history");
    m.receiver = e
        .text("cmbs.message.l1_socket_receiver_member")
        .map(str::to_owned);
    m.providers = e.strings("cmbs.message.providers");
    m.topics = e.strings("cmbs.message.topics");
    Ok(m)
}

/// `created|sending|delivered|partial|failed` for a report.
fn status_of(r: &Report) -> &'static str {
    let delivered = r.lines.iter().filter(|l| l.code() == "DELIVERED").count();
    match &r.outcome {
        Outcome::Delivered | Outcome::SentUnconfirmed => "delivered",
        Outcome::Rejected(_) => "failed",
        _ if delivered > 0 => "partial",
        _ => "failed",
    }
}

async fn send_message(cx: Context, call: ActionCall, layer: Layer) -> Result<Entity, OcciError> {
    let mut e = call.entity;
    let m = message_of(&e, layer)?;
    e.attributes
        .insert("cmbs.message.cmbs_layer".into(), layer.as_str().into());
    e.attributes
        .insert("cmbs.message.status".into(), "sending".into());
    call.store.replace(&e)?;
    let report = match cx.bus.publish(m).await {
        Ok(r) => r,
        Err(err) => {
            e.attributes
                .insert("cmbs.message.status".into(), "failed".into());
            call.store.replace(&e)?;
            return Err(unavailable(err));
        }
    };
    let mut lines: Vec<Value> = report
        .lines
        .iter()
        .map(|l| json!({"member": l.member, "outcome": l.code(), "reason": line_reason(l)}))
        .collect();
    if let Outcome::Rejected(r) = &report.outcome {
        lines.push(json!({"member": null, "outcome": r.code.as_str(), "reason": r.reason}));
    }
    for l in &report.lines {
        let note = match &l.status {
            crate::cmbs::LineStatus::Delivered { result } => message_note(
                "delivered",
                &e,
                json!({"member": l.member, "result": result}),
            ),
            crate::cmbs::LineStatus::Refused(r) => message_note(
                "refused",
                &e,
                json!({"member": l.member, "outcome": r.code.as_str(), "reason": r.reason}),
            ),
            crate::cmbs::LineStatus::Pending => continue,
        };
        let mut note = note;
        note.member = Some(l.member.clone());
        cx.hub.publish(note);
    }
    e.attributes
        .insert("cmbs.message.status".into(), status_of(&report).into());
    if status_of(&report) == "failed" {
        cx.hub.publish(message_note(
            "failed",
            &e,
            json!({"outcome": report.outcome.code(), "report": lines.clone()}),
        ));
    }
    e.attributes
        .insert("cmbs.message.report".into(), lines.into());
    if let Some(result) = report.result() {
        e.attributes
            .insert("cmbs.message.result".into(), result.clone());
    }
    Ok(e)
}

/// Marks a message the gateway stopped sending (a crash, a kill) as
/// failed; false if it was not sending.
pub fn interrupted(e: &mut Entity) -> bool {
    if e.text("cmbs.message.status") != Some("sending") {
        return false;
    }
    e.attributes
        .insert("cmbs.message.status".into(), "failed".into());
    e.attributes.insert(
        "cmbs.message.report".into(),
        json!([{"member": null, "outcome": "INTERRUPTED", "reason": "the gateway stopped while sending it; its outcome is unknown"}]),
    );
    true
}

fn line_reason(l: &crate::cmbs::Line) -> String {
    use crate::cmbs::LineStatus;
    match &l.status {
        LineStatus::Refused(r) => r.reason.clone(),
        _ => String::new(),
    }
}

async fn execute_message(cx: Context, call: ActionCall) -> Result<Entity, OcciError> {
    let mut e = call.entity;
    if e.flag("cmbs.message.executable") != Some(true) {
        return Err(OcciError::bad_request(format!(
            "{} is not executable (cmbs.message.executable is false)",
            e.id
        )));
    }
    let content = e
        .attributes
        .get("cmbs.message.message_content")
        .cloned()
        .unwrap_or(Value::Null);
    let result = match &cx.exec {
        None => Ok(content),
        Some(handler) => {
            let job = ExecJob {
                ticket: 0,
                message: message_of(&e, layer_of(&e)?)?,
                from: cx.address.clone(),
            };
            let handler = Arc::clone(handler);
            let run = tokio::task::spawn_blocking(move || handler(&job));
            match tokio::time::timeout(cx.exec_timeout, run).await {
                Ok(done) => done.map_err(|err| {
                    OcciError::new(StatusCode::INTERNAL_SERVER_ERROR, err.to_string())
                })?,
                Err(_) => Err(format!(
                    "the execution took longer than {} s",
                    cx.exec_timeout.as_secs_f64()
                )),
            }
        }
    };
    let result = result.unwrap_or_else(|reason| json!({ "error": reason }));
    cx.hub
        .publish(message_note("executed", &e, json!({ "result": result })));
    e.attributes.insert("cmbs.message.result".into(), result);
    Ok(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_left_sending_is_failed_at_restart() {
        let mut e = Entity::new("m", "/cmbs/message/m", TypeId::new(CMBS, "message"));
        assert!(!interrupted(&mut e));
        e.attributes
            .insert("cmbs.message.status".into(), "sending".into());
        assert!(interrupted(&mut e));
        assert_eq!(e.text("cmbs.message.status"), Some("failed"));
        assert_eq!(
            e.attributes["cmbs.message.report"][0]["outcome"],
            "INTERRUPTED"
        );
    }

    #[test]
    fn reports_map_to_statuses() {
        use crate::cmbs::{Code, Line, LineStatus, Refusal};
        let line = |status| Line {
            member: "x".into(),
            address: crate::wire::Address::parse("(app:cmbs)").unwrap(),
            site: None,
            sent: true,
            status,
        };
        let report = |lines: Vec<Line>, outcome| Report {
            message: "m".into(),
            layer: Layer::L2,
            lines,
            outcome,
        };
        let ok = line(LineStatus::Delivered { result: None });
        let no = line(LineStatus::Refused(Refusal::new(
            Code::LayerStopped,
            "stopped",
        )));
        assert_eq!(
            status_of(&report(vec![ok.clone()], Outcome::Delivered)),
            "delivered"
        );
        assert_eq!(
            status_of(&report(vec![ok, no.clone()], Outcome::Refused)),
            "partial"
        );
        assert_eq!(status_of(&report(vec![no], Outcome::Refused)), "failed");
        let r = Refusal::new(Code::NoRecipient, "none");
        assert_eq!(status_of(&report(vec![], Outcome::Rejected(r))), "failed");
    }
}
