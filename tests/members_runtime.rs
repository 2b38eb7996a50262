//! CMBS members run from the library ([`rmbus::runtime::spawn_members`]) on
//! a private host-local bus: publishing and reports (blocking and by
//! callback), messages received as events, an execute handler as a
//! closure, the SQLite store, two hosts seeing each other's members, and a
//! stop that every later call sees.

mod common;

use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rmbus::cmbs::{
    Action, Content, Description, Event, Layer, LayerSet, LineStatus, Message, Outcome, Publish,
};
use rmbus::runtime::{spawn_members, MembersError, MembersEvent, MembersOptions};
use rmbus::store::{SqliteStore, Store};

const DEADLINE: Duration = Duration::from_secs(20);

fn member(id: &str, topics: &[&str]) -> Description {
    let mut d = Description::new(id);
    d.started = LayerSet::ALL;
    d.topics = topics.iter().map(|t| t.to_string()).collect();
    d
}

fn delivered(r: &rmbus::cmbs::Report) -> Vec<String> {
    let mut v: Vec<String> = r
        .lines
        .iter()
        .filter(|l| l.is_delivered())
        .map(|l| l.member.clone())
        .collect();
    v.sort();
    v
}

#[test]
fn members_from_the_library_deliver_execute_store_and_stop() {
    let config = common::free_port_config();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("members.sqlite");
    let (tx, events) = mpsc::channel();
    let options = MembersOptions {
        store: Some(db.clone()),
        exec: Some(Arc::new(|job: &rmbus::cmbs::ExecJob| {
            let n = job.message.content.to_json()["n"].as_i64().ok_or("no n")?;
            Ok(serde_json::json!({ "doubled": n * 2 }))
        })),
        ..MembersOptions::default()
    };
    let members = spawn_members(&config, options, move |e| {
        let _ = tx.send(e);
    })
    .unwrap();
    for (id, topics) in [("a", &["news"][..]), ("b", &["news"]), ("c", &["sport"])] {
        let d = members.host(member(id, topics)).unwrap();
        assert_eq!(d.id, id);
    }
    assert_eq!(
        members.host(member("a", &[])).unwrap_err(),
        MembersError::Refused("member a is hosted already".into())
    );
    let until = Instant::now() + DEADLINE;
    while members.directory().len() < 3 {
        assert!(Instant::now() < until, "the directory never held the 3");
        std::thread::sleep(Duration::from_millis(20));
    }

    // L2 from the plain sender, blocking: every member, each told once.
    let l2 = Message::new("", Layer::L2, Content::Json(serde_json::json!("hi")));
    let report = members.publish(l2).unwrap();
    assert_eq!(report.outcome, Outcome::Delivered);
    assert_eq!(delivered(&report), ["a", "b", "c"]);
    let mut received = Vec::new();
    while received.len() < 3 {
        match events.recv_timeout(DEADLINE).expect("received events") {
            MembersEvent::Member {
                member,
                event: Event::Received { message, .. },
            } if message.id == report.message => received.push(member),
            _ => {}
        }
    }
    received.sort();
    assert_eq!(received, ["a", "b", "c"]);

    // L3.2 from member a, by callback: b only (a is never its own recipient).
    let mut news = Message::new("", Layer::L32, Content::Json(serde_json::json!(1)));
    news.topics = vec!["news".into()];
    let (rtx, rrx) = mpsc::channel();
    members.publish_then(Some("a"), Publish::new(news), move |r| {
        let _ = rtx.send(r);
    });
    let report = rrx.recv_timeout(DEADLINE).unwrap().unwrap();
    assert_eq!(delivered(&report), ["b"]);

    // An executable L1 runs the closure; a storable one is in the store.
    let mut job = Message::new("", Layer::L1, Content::Json(serde_json::json!({ "n": 21 })));
    job.receiver = Some("c".into());
    job.executable = true;
    job.storable = true;
    let report = members.publish(job).unwrap();
    match &report.lines[0].status {
        LineStatus::Delivered { result } => {
            assert_eq!(result, &Some(serde_json::json!({ "doubled": 42 })))
        }
        other => panic!("not executed: {other:?}"),
    }

    // Actions: a hosted member suspends, and refuses while suspended.
    let answer = members.act("b", Action::Suspend).unwrap();
    assert_eq!(answer.member.id, "b");
    assert_eq!(answer.member.state, rmbus::cmbs::MemberState::Suspended);
    let mut to_b = Message::new("", Layer::L1, Content::Json(serde_json::json!(0)));
    to_b.receiver = Some("b".into());
    let report = members.publish(to_b).unwrap();
    assert!(
        matches!(&report.lines[0].status, LineStatus::Refused(r) if r.code == rmbus::cmbs::Code::Suspended),
        "{:?}",
        report.lines
    );
    members.act("b", Action::Resume).unwrap();

    // A second host on the same bus learns all three; removing one here
    // takes it out of both.
    let other = spawn_members(&config, MembersOptions::default(), |_| {}).unwrap();
    let until = Instant::now() + DEADLINE;
    while other.directory().len() < 3 {
        assert!(Instant::now() < until, "the other host never learnt them");
        std::thread::sleep(Duration::from_millis(20));
    }
    members.remove("c").unwrap();
    assert!(members.member("c").is_none(), "gone here at once");
    let until = Instant::now() + DEADLINE;
    while other.member("c").is_some() {
        assert!(Instant::now() < until, "c stayed in the other directory");
        std::thread::sleep(Duration::from_millis(20));
    }
    other.stop();
    other.wait().unwrap();

    members.stop();
    members.wait().unwrap();
    assert!(!members.is_alive());
    assert_eq!(members.host(member("d", &[])), Err(MembersError::Stopped));
    let store = SqliteStore::open(&db).unwrap();
    let stored = store.messages("c").unwrap();
    assert_eq!(stored.len(), 1, "the storable message is kept");
}

#[test]
fn a_blocking_call_from_the_members_thread_is_an_error_not_a_deadlock() {
    let config = common::free_port_config();
    let (tx, rx) = mpsc::channel();
    let slot: Arc<std::sync::Mutex<Option<rmbus::runtime::MembersHandle>>> = Arc::default();
    let inner = Arc::clone(&slot);
    let members = spawn_members(&config, MembersOptions::default(), move |e| {
        if let MembersEvent::Joined(_) = e {
            if let Some(h) = inner.lock().unwrap().as_ref() {
                let _ = tx.send(h.host(member("nested", &[])));
            }
        }
    })
    .unwrap();
    *slot.lock().unwrap() = Some(members.clone());
    members.host(member("first", &[])).unwrap();
    assert_eq!(
        rx.recv_timeout(DEADLINE).unwrap(),
        Err(MembersError::OnMembersThread)
    );
    members.stop();
    members.wait().unwrap();
}

#[test]
fn held_messages_survive_a_restart_reach_members_known_before_and_end_with_their_member() {
    let config = common::free_port_config();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("members.sqlite");
    let options = MembersOptions {
        store: Some(db.clone()),
        ..MembersOptions::default()
    };
    let first = spawn_members(&config, options.clone(), |_| {}).unwrap();
    first.host(member("holder", &[])).unwrap();
    let mut later = Message::new("held-1", Layer::L32, Content::Json(serde_json::json!(1)));
    later.topics = vec!["later".into()];
    let held = Publish {
        hold: Some(Duration::from_secs(120)),
        ..Publish::new(later.clone())
    };
    let (rtx, rrx) = mpsc::channel();
    first.publish_then(Some("holder"), held, move |r| {
        let _ = rtx.send(r);
    });
    // The same id again while the first is open: refused.
    assert!(matches!(
        first.publish(later.clone()),
        Err(MembersError::Refused(_))
    ));
    first.stop();
    first.wait().unwrap();
    assert_eq!(
        rrx.recv_timeout(DEADLINE).unwrap(),
        Err(MembersError::Stopped),
        "a publish open at the stop fails"
    );

    // Restarted on the store: the subscriber first, then the holder, whose
    // held message goes to the member it finds already there.
    let (tx, events) = mpsc::channel();
    let second = spawn_members(&config, options, move |e| {
        let _ = tx.send(e);
    })
    .unwrap();
    second.host(member("sub", &["later"])).unwrap();
    second.host(member("holder", &[])).unwrap();
    let until = Instant::now() + DEADLINE;
    loop {
        let left = until.saturating_duration_since(Instant::now());
        match events
            .recv_timeout(left)
            .expect("sub received the held message")
        {
            MembersEvent::Member {
                member,
                event: Event::Received { message, .. },
            } if message.id == "held-1" => {
                assert_eq!(member, "sub");
                break;
            }
            _ => {}
        }
    }
    // A publish of a member that is removed before it is reported fails.
    let mut again = later;
    again.id = "held-2".into();
    let (rtx, rrx) = mpsc::channel();
    let held = Publish {
        hold: Some(Duration::from_secs(120)),
        ..Publish::new(again)
    };
    second.publish_then(Some("holder"), held, move |r| {
        let _ = rtx.send(r);
    });
    second.remove("holder").unwrap();
    assert!(matches!(
        rrx.recv_timeout(DEADLINE).unwrap(),
        Err(MembersError::Refused(_))
    ));
    second.stop();
    second.wait().unwrap();
}

#[test]
fn a_host_without_a_plain_sender_learns_acts_and_publishes_from_its_member() {
    let config = common::free_port_config();
    let options = MembersOptions {
        sender: None,
        action_timeout: Duration::from_secs(10),
        ..MembersOptions::default()
    };
    let alone = spawn_members(&config, options, |_| {}).unwrap();
    let refused = alone.publish(Message::new("", Layer::L2, Content::Json(1.into())));
    assert!(
        matches!(&refused, Err(MembersError::Refused(why)) if why.contains("no plain sender")),
        "{refused:?}"
    );
    let other = spawn_members(&config, MembersOptions::default(), |_| {}).unwrap();
    other.host(member("other", &[])).unwrap();
    alone.host(member("solo", &[])).unwrap();

    // Its first member asked the bus; learning ends when the other is known.
    let learned = alone
        .learn(Instant::now() + DEADLINE, |d| {
            d.directory().get("other").is_some()
        })
        .unwrap();
    assert!(learned.reached, "{learned:?}");
    let started = Instant::now();
    let never = alone
        .learn(started + Duration::from_millis(300), |d| {
            d.directory().get("nobody").is_some()
        })
        .unwrap();
    assert!(!never.reached);
    assert!(started.elapsed() >= Duration::from_millis(300));

    // An action on a member elsewhere goes from the hosted member.
    let answer = alone.act("other", Action::Suspend).unwrap();
    assert_eq!(answer.member.state, rmbus::cmbs::MemberState::Suspended);
    alone.act("other", Action::Resume).unwrap();

    let (tx, rx) = mpsc::channel();
    let m = Message::new("", Layer::L2, Content::Json(2.into()));
    alone.publish_then(Some("solo"), Publish::new(m), move |r| {
        let _ = tx.send(r);
    });
    let report = rx.recv_timeout(DEADLINE).unwrap().unwrap();
    assert!(
        delivered(&report).contains(&"other".to_owned()),
        "{report:?}"
    );
    for h in [alone, other] {
        h.stop();
        h.wait().unwrap();
    }
}

#[test]
fn an_action_asked_from_a_member_that_is_removed_ends_instead_of_waiting() {
    let config = common::free_port_config();
    let options = MembersOptions {
        sender: None,
        action_timeout: Duration::from_secs(60),
        ..MembersOptions::default()
    };
    let alone = spawn_members(&config, options, |_| {}).unwrap();
    let other = spawn_members(&config, MembersOptions::default(), |_| {}).unwrap();
    other.host(member("other", &[])).unwrap();
    alone.host(member("asker", &[])).unwrap();
    let learned = alone
        .learn(Instant::now() + DEADLINE, |d| {
            d.directory().get("other").is_some()
        })
        .unwrap();
    assert!(learned.reached);
    // The action goes out from "asker" (there is no plain sender); the
    // asker is removed before the answer can come back, or after: either
    // way the caller hears, long before the action's 60 s.
    let (tx, rx) = mpsc::channel();
    alone.act_then("other", Action::Suspend, move |r| {
        let _ = tx.send(r);
    });
    alone.remove("asker").unwrap();
    match rx.recv_timeout(DEADLINE).expect("the action ended") {
        Ok(answer) => assert_eq!(answer.member.id, "other"),
        Err(e) => assert_eq!(
            e,
            MembersError::Refused("member asker was removed first".into())
        ),
    }
    for h in [alone, other] {
        h.stop();
        h.wait().unwrap();
    }
}
