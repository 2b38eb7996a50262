//! A CMBS member inside an application, from the library: a member that
//! executes what it is sent, on a thread of its own, and a message to it
//! with its report. The README shows the part between the markers.
//!
//! Run: `cargo run --example embedded_member`

use std::net::UdpSocket;

use rmbus::auth::{CipherAlgo, HashAlgo};
use rmbus::cmbs::LineStatus;
use rmbus::config::Config;

pub fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut config = Config::generate(HashAlgo::HmacMd5_96, CipherAlgo::None);
    config.port = Some(UdpSocket::bind("127.0.0.1:0")?.local_addr()?.port());
    // README begin
    use rmbus::cmbs::{Content, Description, Layer, LayerSet, Message};
    use rmbus::runtime::{spawn_members, MembersEvent, MembersOptions};
    use std::sync::Arc;
    let options = MembersOptions {
        exec: Some(Arc::new(|j| Ok(j.message.content.to_bytes().len().into()))), // runs each job
        ..MembersOptions::default() // `store: Some(path)` keeps what members receive in SQLite
    };
    let members = spawn_members(&config, options, |event| {
        if let MembersEvent::Member { member, event } = event {
            println!("{member}: {event:?}");
        }
    })?;
    let mut me = Description::new("counter");
    me.started = LayerSet::ALL;
    members.host(me)?;
    let mut m = Message::new("", Layer::L1, Content::Json(serde_json::json!("hello")));
    (m.receiver, m.executable) = (Some("counter".into()), true);
    let report = members.publish(m)?; // blocking; publish_then takes a callback
    println!("{:?}", report.lines[0].status); // Delivered { result: Some(Number(7)) }
    members.stop();
    // README end
    match &report.lines[0].status {
        LineStatus::Delivered { result: Some(r) } if *r == 7 => Ok(()),
        other => Err(format!("not executed: {other:?}").into()),
    }
}
