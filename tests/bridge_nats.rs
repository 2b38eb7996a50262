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
        let start = Instant::now();
        loop {
            let dir: BTreeSet<String> = self
                .members
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
    assert!(sites[0].members.member("a1").unwrap().description.remote.is_none());

    // L1 from s1 to a member of s3: its answer.
    let mut m = message(Layer::L1, serde_json::json!({"n": 1}));
    m.receiver = Some("c2".into());
    m.executable = true;
    let r = sites[0].members.publish(m).unwrap();
    assert_eq!(r.outcome, Outcome::Delivered, "{r:?}");
    assert_eq!(r.result(), Some(&serde_json::json!({"n": 1})));
    assert_eq!(lines(&r)["c2"], ("DELIVERED".into(), Some("s3".into())));

    // L2 from s2: one line per member of the three sites.
    let r = sites[1].members.publish(message(Layer::L2, serde_json::json!(2))).unwrap();
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
        let b = spawn_bridge(&config, bridge_options(&format!("site{k}"), &url, c), |_| {}).unwrap();
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
        assert!(
            matches!(e, BridgeSpawnError::Credentials(_)),
            "{c:?}: {e}"
        );
        assert!(e.to_string().contains("refused the bridge's credentials"), "{e}");
    }
}

#[test]
fn a_token_works_and_a_wrong_token_is_refused() {
    let Some(cluster) = nats::Cluster::start(1, "authorization { token: \"t0k3n\" }") else {
        return;
    };
    let url = cluster.nodes[0].url();
    let config = common::free_port_config();
    let b = spawn_bridge(&config, bridge_options("t", &url, NatsCredentials::Token("t0k3n".into())), |_| {}).unwrap();
    assert!(b.is_connected());
    drop(b);
    let e = spawn_bridge(&config, bridge_options("t", &url, NatsCredentials::Token("wrong".into())), |_| {}).unwrap_err();
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
    assert!(site.until_members(&["n1"], true, DEADLINE).is_some(), "the bridge connected later");
    assert!(other.until_members(&["f1"], true, DEADLINE).is_some());
}
