//! CMBS across sites with real parts: `nats-server` processes as a
//! three-node cluster on loopback, three sites as three host-local buses on
//! their own ports, each with members run from the library and a bridge
//! on a different NATS node. Skipped, saying so, where `nats-server` is
//! not installed (`.ci/run` installs it).

mod common;
mod nats;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use rmbus::bridge::{spawn_bridge, BridgeHandle, BridgeOptions, BridgeSpawnError, NatsCredentials};
use rmbus::cmbs::{Content, Description, Event, Layer, LayerSet, Message, Outcome, Report};
use rmbus::config::Config;
use rmbus::runtime::{spawn_members, MembersEvent, MembersHandle, MembersOptions};

const DEADLINE: Duration = Duration::from_secs(30);

/// One site: its bus, its members (and their plain sender), its bridge.
struct Site {
    name: String,
    config: Config,
    members: MembersHandle,
    events: Receiver<MembersEvent>,
    bridge: Option<BridgeHandle>,
}

fn member(id: &str, topics: &[&str]) -> Description {
    let mut d = Description::new(id);
    d.started = LayerSet::ALL;
    d.topics = topics.iter().map(|t| t.to_string()).collect();
    d
}

fn bridge_options(site: &str, url: &str, credentials: NatsCredentials) -> BridgeOptions {
    let mut o = BridgeOptions::new(site, vec![url.to_owned()]);
    o.credentials = credentials;
    o
}

impl Site {
    fn start(name: &str, members: &[(&str, &[&str])]) -> Site {
        let config = common::free_port_config();
        let (tx, events) = mpsc::channel();
        let handle = spawn_members(&config, MembersOptions::default(), move |e| {
            let _ = tx.send(e);
        })
        .unwrap();
        for (id, topics) in members {
            handle.host(member(id, topics)).unwrap();
        }
        Site {
            name: name.to_owned(),
            config,
            members: handle,
            events,
            bridge: None,
        }
    }

    fn bridge(&mut self, url: &str, credentials: NatsCredentials) {
        let options = bridge_options(&self.name, url, credentials);
        self.bridge = Some(spawn_bridge(&self.config, options, |_| {}).unwrap());
    }

    /// Waits until this site's directory holds `ids` (or, with `present`
    /// false, none of them); how long it took.
    fn until_members(&self, ids: &[&str], present: bool, limit: Duration) -> Option<Duration> {
        until_members(&self.members, ids, present, limit)
    }

    /// The messages member `id` received so far (drains the events).
    fn received(&self, into: &mut BTreeMap<String, Vec<String>>) {
        while let Ok(e) = self.events.try_recv() {
            if let MembersEvent::Member {
                member,
                event: Event::Received { message, .. },
            } = e
            {
                into.entry(member).or_default().push(message.id);
            }
        }
    }
}

/// Waits until the directory of `members` holds `ids` (or, with `present`
/// false, none of them); how long it took.
fn until_members(
    members: &MembersHandle,
    ids: &[&str],
    present: bool,
    limit: Duration,
) -> Option<Duration> {
    let start = Instant::now();
    loop {
        let dir: BTreeSet<String> = members
            .directory()
            .into_iter()
            .map(|e| e.description.id)
            .collect();
        if ids.iter().all(|id| dir.contains(*id) == present) {
            return Some(start.elapsed());
        }
        if start.elapsed() > limit {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn message(layer: Layer, content: serde_json::Value) -> Message {
    Message::new("", layer, Content::Json(content))
}

fn lines(r: &Report) -> BTreeMap<String, (String, Option<String>)> {
    r.lines
        .iter()
        .map(|l| (l.member.clone(), (l.code().to_owned(), l.site.clone())))
        .collect()
}

/// Three sites, each with two members and a bridge on its own node.
fn three_sites(cluster: &nats::Cluster) -> Vec<Site> {
    let mut sites = vec![
        Site::start("s1", &[("a1", &["t.x"]), ("a2", &[])]),
        Site::start("s2", &[("b1", &["t.#"]), ("b2", &[])]),
        Site::start("s3", &[("c1", &["t.*"]), ("c2", &["u"])]),
    ];
    for (i, s) in sites.iter_mut().enumerate() {
        s.bridge(&cluster.nodes[i].url(), NatsCredentials::None);
    }
    let all = ["a1", "a2", "b1", "b2", "c1", "c2"];
    for s in &sites {
        assert!(
            s.until_members(&all, true, DEADLINE).is_some(),
            "site {} never learnt every member",
            s.name
        );
    }
    sites
}

#[test]
fn three_sites_see_one_directory_and_l1_l2_l32_cross_with_complete_reports() {
    let Some(cluster) = nats::Cluster::start(3, "") else {
        return;
    };
    let sites = three_sites(&cluster);
    // The remote entries carry their site.
    let b1 = sites[0].members.member("b1").unwrap();
    assert_eq!(b1.description.remote.as_ref().unwrap().site, "s2");
    assert!(sites[0]
        .members
        .member("a1")
        .unwrap()
        .description
        .remote
        .is_none());

    // L1 from s1 to a member of s3: its answer.
    let mut m = message(Layer::L1, serde_json::json!({"n": 1}));
    m.receiver = Some("c2".into());
    m.executable = true;
    let r = sites[0].members.publish(m).unwrap();
    assert_eq!(r.outcome, Outcome::Delivered, "{r:?}");
    assert_eq!(r.result(), Some(&serde_json::json!({"n": 1})));
    assert_eq!(lines(&r)["c2"], ("DELIVERED".into(), Some("s3".into())));

    // L2 from s2: one line per member of the three sites.
    let r = sites[1]
        .members
        .publish(message(Layer::L2, serde_json::json!(2)))
        .unwrap();
    assert_eq!(r.outcome, Outcome::Delivered, "{r:?}");
    let l = lines(&r);
    assert_eq!(l.len(), 6, "{l:?}");
    assert_eq!(l["a1"].1.as_deref(), Some("s1"));
    assert_eq!(l["b1"], ("DELIVERED".into(), None));

    // L3.2 from s3: the subscribers of t.x at every site.
    let mut m = message(Layer::L32, serde_json::json!(3));
    m.topics = vec!["t.x".into()];
    let r = sites[2].members.publish(m).unwrap();
    assert_eq!(r.outcome, Outcome::Delivered, "{r:?}");
    assert_eq!(lines(&r).keys().collect::<Vec<_>>(), ["a1", "b1", "c1"]);

    let mut got = BTreeMap::new();
    for s in &sites {
        s.received(&mut got);
    }
    assert_eq!(got["c2"].len(), 2, "{got:?}");
    assert_eq!(got["a1"].len(), 2, "{got:?}");
    assert_eq!(got["b2"].len(), 1, "{got:?}");
}

#[test]
fn credentials_user_password_token_and_nkey_work_and_a_wrong_one_is_a_clear_error() {
    let seed = nkeys::KeyPair::new_user();
    let authorization = format!(
        "authorization {{\n  users: [\n    {{user: s1, password: \"pw-one\"}}\n    {{nkey: {}}}\n  ]\n}}\n",
        seed.public_key()
    );
    let Some(cluster) = nats::Cluster::start(1, &authorization) else {
        return;
    };
    let url = cluster.nodes[0].url();
    let config = common::free_port_config();
    let good = [
        NatsCredentials::UserPassword {
            user: "s1".into(),
            password: "pw-one".into(),
        },
        NatsCredentials::NkeySeed(seed.seed().unwrap()),
    ];
    for (k, c) in good.into_iter().enumerate() {
        let b = spawn_bridge(
            &config,
            bridge_options(&format!("site{k}"), &url, c),
            |_| {},
        )
        .unwrap();
        assert!(b.is_connected());
        b.stop();
        b.wait().unwrap();
    }
    let wrong = [
        NatsCredentials::UserPassword {
            user: "s1".into(),
            password: "nope".into(),
        },
        NatsCredentials::None,
        NatsCredentials::NkeySeed(nkeys::KeyPair::new_user().seed().unwrap()),
    ];
    for c in wrong {
        let e = spawn_bridge(&config, bridge_options("x", &url, c.clone()), |_| {}).unwrap_err();
        assert!(matches!(e, BridgeSpawnError::Credentials(_)), "{c:?}: {e}");
        assert!(
            e.to_string().contains("refused the bridge's credentials"),
            "{e}"
        );
    }
}

#[test]
fn a_token_works_and_a_wrong_token_is_refused() {
    let Some(cluster) = nats::Cluster::start(1, "authorization { token: \"t0k3n\" }") else {
        return;
    };
    let url = cluster.nodes[0].url();
    let config = common::free_port_config();
    let b = spawn_bridge(
        &config,
        bridge_options("t", &url, NatsCredentials::Token("t0k3n".into())),
        |_| {},
    )
    .unwrap();
    assert!(b.is_connected());
    drop(b);
    let e = spawn_bridge(
        &config,
        bridge_options("t", &url, NatsCredentials::Token("wrong".into())),
        |_| {},
    )
    .unwrap_err();
    assert!(matches!(e, BridgeSpawnError::Credentials(_)), "{e}");
}

#[test]
fn a_bridge_given_a_cluster_it_cannot_reach_starts_and_connects_when_it_comes() {
    let Some(mut cluster) = nats::Cluster::start(1, "") else {
        return;
    };
    cluster.kill(0);
    let url = cluster.nodes[0].url();
    let mut site = Site::start("far", &[("f1", &[])]);
    let other = Site::start("near", &[("n1", &[])]);
    site.bridge(&url, NatsCredentials::None);
    assert!(!site.bridge.as_ref().unwrap().is_connected());
    cluster.restart(0);
    let mut other = other;
    other.bridge(&url, NatsCredentials::None);
    assert!(
        site.until_members(&["n1"], true, DEADLINE).is_some(),
        "the bridge connected later"
    );
    assert!(other.until_members(&["f1"], true, DEADLINE).is_some());
}

/// Sends `n` L1 messages from `from` to member `to`, `in_flight` at a
/// time, calling `at(k)` before message k; every report.
fn stream(
    from: &MembersHandle,
    to: &str,
    n: usize,
    in_flight: usize,
    mut at: impl FnMut(usize),
) -> Vec<Report> {
    let (tx, rx) = mpsc::channel();
    let mut out = 0;
    let mut reports = Vec::new();
    for k in 0..n {
        at(k);
        while out >= in_flight {
            reports.push(rx.recv_timeout(DEADLINE).expect("a report"));
            out -= 1;
        }
        let mut m = message(Layer::L1, serde_json::json!({ "n": k }));
        m.receiver = Some(to.into());
        let tx = tx.clone();
        from.publish_then(None, rmbus::cmbs::Publish::new(m), move |r| {
            let _ = tx.send(r.expect("the members run"));
        });
        out += 1;
    }
    while out > 0 {
        reports.push(rx.recv_timeout(DEADLINE).expect("a report"));
        out -= 1;
    }
    reports
}

/// What member `id` received, by content number, in order.
fn numbers(site: &Site, id: &str) -> Vec<i64> {
    let mut v = Vec::new();
    while let Ok(e) = site.events.try_recv() {
        if let MembersEvent::Member {
            member,
            event: Event::Received { message, .. },
        } = e
        {
            if member == id {
                v.push(message.content.to_json()["n"].as_i64().unwrap());
            }
        }
    }
    v
}

/// Every report ended with one line; delivered ≤ received; nobody received
/// a message twice, and what came came in order (late ones aside: none
/// here, the reorder window is longer than any gap).
fn check_stream(reports: &[Report], received: &[i64], n: usize) -> usize {
    assert_eq!(reports.len(), n);
    let delivered = reports
        .iter()
        .filter(|r| r.lines.iter().any(|l| l.is_delivered()))
        .count();
    let unique: BTreeSet<i64> = received.iter().copied().collect();
    assert_eq!(
        unique.len(),
        received.len(),
        "a message came twice: {received:?}"
    );
    assert!(
        delivered <= received.len(),
        "{delivered} delivered, {} received",
        received.len()
    );
    for r in reports {
        assert!(r.lines.len() <= 1, "{r:?}");
        for l in &r.lines {
            assert!(l.is_settled(), "{r:?}");
        }
    }
    delivered
}

#[test]
fn five_hundred_messages_cross_while_the_nats_node_of_a_bridge_is_killed_and_comes_back() {
    let Some(mut cluster) = nats::Cluster::start(3, "") else {
        return;
    };
    let sites = three_sites(&cluster);
    let reports = stream(&sites[0].members, "b1", 500, 8, |k| {
        if k == 100 {
            cluster.kill(1); // the node s2's bridge uses
        }
        if k == 250 {
            cluster.restart(1);
        }
    });
    let received = numbers(&sites[1], "b1");
    let delivered = check_stream(&reports, &received, 500);
    let mut sorted = received.clone();
    sorted.sort();
    assert_eq!(sorted, received, "in send order");
    eprintln!("{delivered} of 500 delivered, {} received", received.len());
    assert!(delivered >= 400, "only {delivered} of 500 delivered");
}

#[test]
fn a_site_cut_off_leaves_the_other_sites_in_bounded_time_and_comes_back_healed() {
    let Some(mut cluster) = nats::Cluster::start(3, "") else {
        return;
    };
    let mut sites = [
        Site::start("s1", &[("a1", &[])]),
        Site::start("s3", &[("c1", &[])]),
    ];
    for (s, node) in sites.iter_mut().zip([0, 2]) {
        let mut o = bridge_options(&s.name, &cluster.nodes[node].url(), NatsCredentials::None);
        o.only_listed = true;
        s.bridge = Some(spawn_bridge(&s.config, o, |_| {}).unwrap());
    }
    assert!(sites[0].until_members(&["c1"], true, DEADLINE).is_some());
    cluster.kill(2);
    // A delivery meanwhile ends UNDELIVERABLE or TIMEOUT, never delivered.
    let mut m = message(Layer::L1, serde_json::json!(0));
    m.receiver = Some("c1".into());
    if let Ok(r) = sites[0].members.publish(m) {
        assert!(!r.lines.iter().any(|l| l.is_delivered()), "{r:?}");
    }
    let took = sites[0]
        .until_members(&["c1"], false, DEADLINE)
        .expect("c1 leaves s1's directory");
    // Five heartbeats, the check after, and the bus: 7 s documented.
    assert!(took <= Duration::from_secs(7), "c1 left after {took:?}");
    // And s3 sees s1 leave too (it is cut off as well).
    assert!(sites[1].until_members(&["a1"], false, DEADLINE).is_some());
    cluster.restart(2);
    assert!(
        sites[0].until_members(&["c1"], true, DEADLINE).is_some(),
        "healed"
    );
    assert!(sites[1].until_members(&["a1"], true, DEADLINE).is_some());
}

/// `rmbus bridge` for `site` as a process of its own (to be killed).
fn bridge_process(
    config: &Config,
    dir: &std::path::Path,
    site: &str,
    url: &str,
) -> std::process::Child {
    let path = dir.join(format!("{site}.mbus"));
    if !path.exists() {
        rmbus::config::file::write_new(&path, config, false).unwrap();
    }
    std::process::Command::new(env!("CARGO_BIN_EXE_rmbus"))
        .args(["bridge", "--site", site, "--nats", url, "--config"])
        .arg(&path)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

#[test]
fn bridges_restarted_mid_stream_lose_no_report_and_deliver_nothing_twice() {
    let Some(cluster) = nats::Cluster::start(2, "") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut s1 = Site::start("s1", &[("a1", &[])]);
    let s2 = Site::start("s2", &[("b1", &[])]);
    s1.bridge(&cluster.nodes[0].url(), NatsCredentials::None);
    let url2 = cluster.nodes[1].url();
    let mut far = bridge_process(&s2.config, dir.path(), "s2", &url2);
    assert!(s1.until_members(&["b1"], true, DEADLINE).is_some());
    assert!(s2.until_members(&["a1"], true, DEADLINE).is_some());
    let mut near = s1.bridge.take();
    let (config1, members1) = (s1.config.clone(), &s1.members);
    let reports = stream(members1, "b1", 300, 8, |k| {
        if k == 100 {
            // The receiving side's bridge dies (SIGKILL) and comes back.
            let _ = far.kill();
            let _ = far.wait();
            far = bridge_process(&s2.config, dir.path(), "s2", &url2);
        }
        if k == 200 {
            // The sending side's bridge stops and starts again.
            let old = near.take().unwrap();
            old.stop();
            old.wait().unwrap();
            let o = bridge_options("s1", &cluster.nodes[0].url(), NatsCredentials::None);
            near = Some(spawn_bridge(&config1, o, |_| {}).unwrap());
            assert!(until_members(members1, &["b1"], true, DEADLINE).is_some());
        }
    });
    let received = numbers(&s2, "b1");
    let delivered = check_stream(&reports, &received, 300);
    eprintln!("{delivered} of 300 delivered, {} received", received.len());
    let after = reports[250..]
        .iter()
        .filter(|r| r.outcome == Outcome::Delivered)
        .count();
    assert!(
        after >= 45,
        "after both restarts only {after} of 50 delivered"
    );
    let _ = far.kill();
    let _ = far.wait();
}

/// The README's NATS configuration (one user per site), with passwords put
/// in: `pw-office` and `pw-cloud`.
fn readme_authorization() -> String {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let start = readme
        .find("authorization {")
        .expect("the README shows the configuration");
    let end = start + readme[start..].find("\n```").unwrap();
    readme[start..end]
        .replacen("password: \"…\"", "password: \"pw-office\"", 1)
        .replacen("password: \"…\"", "password: \"pw-cloud\"", 1)
}

#[test]
fn the_readme_configuration_lets_bridges_work_and_keeps_each_site_to_its_own_subjects() {
    let authorization = readme_authorization();
    assert!(authorization.contains("user: office") && authorization.contains("user: cloud"));
    let Some(cluster) = nats::Cluster::start(2, &authorization) else {
        return;
    };
    let mut office = Site::start("office", &[("o1", &["alerts.#"])]);
    let mut cloud = Site::start("cloud", &[("k1", &["alerts.#"])]);
    let login = |user: &str| NatsCredentials::UserPassword {
        user: user.into(),
        password: format!("pw-{user}"),
    };
    office.bridge(&cluster.nodes[0].url(), login("office"));
    cloud.bridge(&cluster.nodes[1].url(), login("cloud"));
    assert!(office.until_members(&["k1"], true, DEADLINE).is_some());
    assert!(cloud.until_members(&["o1"], true, DEADLINE).is_some());
    let mut m = message(Layer::L32, serde_json::json!("disk full"));
    m.topics = vec!["alerts.disk".into()];
    let r = office.members.publish(m).unwrap();
    assert_eq!(r.outcome, Outcome::Delivered, "{r:?}");
    assert_eq!(r.lines.len(), 2);

    // What the office's credentials cannot do: publish the cloud's
    // directory. A watcher with the cloud's credentials sees the office's
    // allowed message after the forged one would have come (one
    // publisher's messages arrive in order), and never the forged one.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        use futures_util::StreamExt;
        let connect = |user: &'static str| {
            async_nats::ConnectOptions::with_user_and_password(user.into(), format!("pw-{user}"))
                .custom_inbox_prefix(format!("_INBOX_{user}"))
                .connect(cluster.nodes[0].url())
        };
        let watcher = connect("cloud").await.unwrap();
        let mut seen = watcher.subscribe("cmbs.dir.*").await.unwrap();
        watcher.flush().await.unwrap();
        let forger = connect("office").await.unwrap();
        forger
            .publish("cmbs.dir.cloud", "forged".into())
            .await
            .unwrap();
        forger
            .publish("cmbs.dir.office", "marker".into())
            .await
            .unwrap();
        forger.flush().await.unwrap();
        loop {
            let msg = tokio::time::timeout(DEADLINE, seen.next())
                .await
                .expect("the marker comes")
                .unwrap();
            assert_ne!(
                &msg.payload[..],
                b"forged",
                "the office published the cloud's directory"
            );
            if &msg.payload[..] == b"marker" {
                break;
            }
        }
    });
    // The bridges dropped the marker as malformed, and go on.
    let mut m = message(Layer::L1, serde_json::json!(1));
    m.receiver = Some("o1".into());
    assert_eq!(
        cloud.members.publish(m).unwrap().outcome,
        Outcome::Delivered
    );
}

/// The README's commands across two sites, as a user types them (the NATS
/// server on a free port of its own, the bus ports free ones).
#[test]
fn the_readme_commands_run_across_two_sites() {
    let Some(cluster) = nats::Cluster::start(1, "") else {
        return;
    };
    let home = tempfile::tempdir().unwrap();
    let config = home.path().join("mbus.conf");
    rmbus::config::file::write_new(&config, &common::free_port_config(), false).unwrap();
    let port = |_: ()| common::free_port_config().port.unwrap().to_string();
    let (p1, p2) = (port(()), port(()));
    let url = cluster.nodes[0].url();
    let rmbus = |args: &[&str]| {
        let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_rmbus"));
        c.args(args).env("MBUS", &config).env("HOME", home.path());
        c
    };
    let spawn = |args: &[&str]| {
        rmbus(args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap()
    };
    let mut children = vec![
        spawn(&["member", "--port", &p1, "--memory", "--topics", "alerts.#"]),
        spawn(&["bridge", "--port", &p1, "--site", "office", "--nats", &url]),
        spawn(&["member", "--port", &p2, "--memory", "--topics", "alerts.#"]),
        spawn(&["bridge", "--port", &p2, "--site", "cloud", "--nats", &url]),
    ];
    let until = Instant::now() + DEADLINE;
    let members = loop {
        let out = rmbus(&["members", "--port", &p1, "--json"])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if text.contains("\"site\":\"cloud\"") {
            break text;
        }
        assert!(
            Instant::now() < until,
            "the office never saw the cloud's member: {text}"
        );
    };
    assert_eq!(
        members.lines().filter(|l| l.contains("\"id\"")).count(),
        2,
        "{members}"
    );
    let out = rmbus(&[
        "publish",
        "--port",
        &p1,
        "--layer",
        "l3.2",
        "--topics",
        "alerts.disk",
        "\"disk full\"",
    ])
    .output()
    .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert_eq!(
        text.matches("DELIVERED").count(),
        3,
        "the outcome and two lines: {text}"
    );
    assert!(text.contains("(site cloud)"), "{text}");
    for c in &mut children {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(c.id() as i32),
            nix::sys::signal::Signal::SIGINT,
        );
    }
    for mut c in children {
        assert_eq!(c.wait().unwrap().code(), Some(0), "a clean stop");
    }
}

#[test]
fn a_second_bridge_for_a_site_refuses_to_start_and_the_first_goes_on() {
    let Some(cluster) = nats::Cluster::start(1, "") else {
        return;
    };
    let url = cluster.nodes[0].url();
    let mut s1 = Site::start("s1", &[("a1", &[])]);
    let mut s2 = Site::start("s2", &[("b1", &[])]);
    s1.bridge(&url, NatsCredentials::None);
    s2.bridge(&url, NatsCredentials::None);
    assert!(s1.until_members(&["b1"], true, DEADLINE).is_some());
    // Another bridge for s1, on the same bus.
    let again = spawn_bridge(
        &s1.config,
        bridge_options("s1", &url, NatsCredentials::None),
        |_| {},
    )
    .unwrap();
    let e = again.wait().unwrap_err();
    assert!(e.contains("another bridge for site s1 runs"), "{e}");
    assert!(s1.bridge.as_ref().unwrap().is_alive());
    let mut m = message(Layer::L1, serde_json::json!(1));
    m.receiver = Some("b1".into());
    assert_eq!(s1.members.publish(m).unwrap().outcome, Outcome::Delivered);
    // And as a command: exit 2, saying why.
    let dir = tempfile::tempdir().unwrap();
    let mut third = bridge_process(&s1.config, dir.path(), "s1", &url);
    let status = third.wait().unwrap();
    assert_eq!(status.code(), Some(2));
}

/// A CA and a server certificate for 127.0.0.1 it signed, as PEM files in
/// `dir`: (ca.pem, server.pem, server-key.pem).
fn tls_files(
    dir: &std::path::Path,
) -> (std::path::PathBuf, std::path::PathBuf, std::path::PathBuf) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let server_key = KeyPair::generate().unwrap();
    let server = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
        .unwrap()
        .signed_by(&server_key, &issuer)
        .unwrap();
    let paths = (
        dir.join("ca.pem"),
        dir.join("server.pem"),
        dir.join("server-key.pem"),
    );
    std::fs::write(&paths.0, ca.pem()).unwrap();
    std::fs::write(&paths.1, server.pem()).unwrap();
    std::fs::write(&paths.2, server_key.serialize_pem()).unwrap();
    paths
}

#[test]
fn tls_with_a_ca_file_connects_and_a_server_it_cannot_check_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = tls_files(dir.path());
    let tls = format!(
        "tls {{\n  cert_file: \"{}\"\n  key_file: \"{}\"\n}}\n",
        cert.display(),
        key.display()
    );
    let Some(cluster) = nats::Cluster::start(1, &tls) else {
        return;
    };
    let url = format!("tls://127.0.0.1:{}", cluster.nodes[0].port);
    let config = common::free_port_config();
    let mut o = bridge_options("secure", &url, NatsCredentials::None);
    o.ca_file = Some(ca.clone());
    let b = spawn_bridge(&config, o, |_| {}).unwrap();
    assert!(b.is_connected());
    b.stop();
    b.wait().unwrap();
    // The system's roots do not know our CA: refused at start, saying why.
    let mut o = bridge_options("secure", &url, NatsCredentials::None);
    o.require_tls = true;
    let e = spawn_bridge(&config, o, |_| {}).unwrap_err();
    assert!(matches!(e, BridgeSpawnError::Nats(_)), "{e}");
}
