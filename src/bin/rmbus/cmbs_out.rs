//! How the CMBS commands print members, messages, lines and reports: one
//! JSON form per thing (stable field names, one object per line) and an
//! aligned human form.

use std::time::SystemTime;

use rmbus::cmbs::{Description, Entry, Event, Line, LineStatus, Message, Report};
use serde_json::{json, Value};

/// A member's description as JSON (the library's one form).
pub fn description_json(d: &Description) -> Value {
    d.to_json()
}

/// A directory entry as JSON: the description plus the address.
pub fn entry_json(e: &Entry) -> Value {
    let mut v = description_json(&e.description);
    v["address"] = json!(e.address.to_string());
    v
}

/// The header of [`entry_line`]'s table.
pub fn entry_header() -> String {
    format!(
        "{:<36}  {:<9}  {:<22}  {:<24}  {:<20}  {:<12}  ADDRESS",
        "MEMBER", "STATE", "LAYERS", "TOPICS", "PROVIDERS", "SITE"
    )
}

/// One member, aligned under [`entry_header`].
pub fn entry_line(e: &Entry) -> String {
    let d = &e.description;
    let layers: Vec<&str> = d.started.iter().map(|l| l.dotted()).collect();
    let or_dash = |v: String| if v.is_empty() { "-".to_owned() } else { v };
    let site = d.remote.as_ref().map_or("-", |r| r.site.as_str());
    format!(
        "{:<36}  {:<9}  {:<22}  {:<24}  {:<20}  {:<12}  {}",
        d.id,
        d.state.as_str(),
        or_dash(layers.join(",")),
        or_dash(d.topics.join(",")),
        or_dash(d.providers.join(",")),
        site,
        e.address
    )
}

/// A member heard on the bus whose description never came, as JSON.
pub fn undescribed_json(id: &str, address: &rmbus::wire::Address) -> Value {
    json!({"id": id, "state": "undescribed", "address": address.to_string()})
}

/// The same, aligned under [`entry_header`].
pub fn undescribed_line(id: &str, address: &rmbus::wire::Address) -> String {
    format!(
        "{:<36}  {:<9}  {:<22}  {:<24}  {:<20}  {:<12}  {}",
        id, "?", "?", "?", "?", "-", address
    )
}

/// A report line as JSON.
pub fn line_json(l: &Line) -> Value {
    let mut v = json!({
        "member": l.member,
        "address": l.address.to_string(),
        "sent": l.sent,
        "status": l.code(),
    });
    if let Some(site) = &l.site {
        v["site"] = json!(site);
    }
    match &l.status {
        LineStatus::Delivered { result: Some(r) } => v["result"] = r.clone(),
        LineStatus::Refused(r) => v["reason"] = json!(r.reason),
        _ => {}
    }
    v
}

/// A report line for people.
pub fn line_text(l: &Line) -> String {
    let detail = match &l.status {
        LineStatus::Delivered { result: Some(r) } => r.to_string(),
        LineStatus::Delivered { result: None } | LineStatus::Pending => String::new(),
        LineStatus::Refused(r) if !l.sent => format!("{} (not sent)", r.reason),
        LineStatus::Refused(r) => r.reason.clone(),
    };
    match &l.site {
        Some(site) => format!(
            "  {:<36}  {:<14}  (site {site}) {detail}",
            l.member,
            l.code()
        ),
        None => format!("  {:<36}  {:<14}  {detail}", l.member, l.code()),
    }
}

/// A report as JSON.
pub fn report_json(r: &Report) -> Value {
    let mut v = json!({
        "event": "report",
        "message": r.message,
        "layer": r.layer.dotted(),
        "outcome": r.outcome.code(),
        "lines": r.lines.iter().map(line_json).collect::<Vec<_>>(),
    });
    if let rmbus::cmbs::Outcome::Rejected(x) = &r.outcome {
        v["reason"] = json!(x.reason);
    }
    if let Some(result) = r.result() {
        v["result"] = result.clone();
    }
    v
}

/// A report for people: the outcome, then one line per member.
pub fn report_text(r: &Report) -> String {
    let intended = r.lines.iter().filter(|l| l.sent).count();
    let delivered = r.lines.iter().filter(|l| l.is_delivered()).count();
    let mut s = match &r.outcome {
        rmbus::cmbs::Outcome::Rejected(x) => {
            format!(
                "message {} on {}: {}: {}\n",
                r.message, r.layer, x.code, x.reason
            )
        }
        other => format!(
            "message {} on {}: {} ({delivered} of {intended} delivered)\n",
            r.message,
            r.layer,
            other.code()
        ),
    };
    for l in &r.lines {
        s.push_str(&line_text(l));
        s.push('\n');
    }
    s
}

/// A received or stored message as JSON.
pub fn message_json(m: &Message) -> Value {
    m.to_json()
}

/// What a member logs of one CMBS event: JSON, or an aligned line.
pub fn event_out(e: &Event, json_out: bool) -> Option<String> {
    let now = SystemTime::now();
    let (kind, j, text) = match e {
        Event::Received { message, from } => (
            "received",
            json!({"message": message_json(message), "from": from.to_string()}),
            format!(
                "{:<8}  {:<36}  from {}  {}",
                message.layer.dotted(),
                message.id,
                from,
                truncate(&message.content.to_json().to_string(), 60)
            ),
        ),
        Event::Refused { id, from, refusal } => (
            "refused",
            json!({"id": id, "from": from.to_string(), "code": refusal.code.as_str(), "reason": refusal.reason}),
            format!(
                "{:<8}  {:<36}  from {}  {}",
                refusal.code, id, from, refusal.reason
            ),
        ),
        Event::Line { message, line } => (
            "line",
            json!({"message": message, "line": line_json(line)}),
            format!("{message}{}", line_text(line)),
        ),
        Event::Report(r) => {
            return Some(if json_out {
                report_json(r).to_string()
            } else {
                report_text(r)
            })
        }
        Event::Joined(entry) => (
            "joined",
            entry_json(entry),
            format!("{:<8}  {}", "", entry_line(entry)),
        ),
        Event::Changed(entry) => (
            "changed",
            entry_json(entry),
            format!("{:<8}  {}", "", entry_line(entry)),
        ),
        Event::Left { entry, reason } => (
            "left",
            json!({"member": entry.description.id, "reason": format!("{reason:?}").to_lowercase()}),
            format!("{:<8}  {} ({reason:?})", "", entry.description.id),
        ),
        Event::Acted {
            action,
            by,
            description,
        } => (
            "action",
            json!({"action": action.to_string(), "by": by.as_ref().map(|a| a.to_string()), "member": description_json(description)}),
            format!(
                "{:<8}  {action} (asked by {})",
                "",
                by.as_ref()
                    .map_or("this program".to_owned(), |a| a.to_string())
            ),
        ),
        _ => return None,
    };
    Some(if json_out {
        let mut j = j;
        j["event"] = json!(kind);
        j["time"] = json!(rmbus::record::rfc3339(now));
        j.to_string()
    } else {
        format!(
            "{}  {:<8}  {text}",
            rmbus::record::short(now),
            kind.to_uppercase()
        )
    })
}

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_owned()
    } else {
        let mut t: String = s.chars().take(max - 1).collect();
        t.push('…');
        t
    }
}
