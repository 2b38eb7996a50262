//! The OCCI gateway run from the library ([`rmbus::gateway::Gateway`]), as
//! an application embeds it: bound on a free loopback port on a host-local
//! bus of its own, its log and execute handler given as closures, members
//! and messages made over HTTP, and a shutdown on the application's signal
//! after which its hosted member has said bye.
#![cfg(feature = "gateway")]

mod common;
mod http;

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use http::*;
use rmbus::gateway::{Gateway, GatewayError, GatewayOptions};
use rmbus::runtime::{spawn_members, MembersEvent, MembersOptions};

const MEMBER: &str = "996ad860-2a9a-504f-8861-aeafd0b2ae29";
const MESSAGE: &str = "0101d860-2a9a-504f-8861-aeafd0b20101";
const J: [(&str, &str); 2] = [JSON, ACCEPT_JSON];
const DEADLINE: Duration = Duration::from_secs(30);

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/pycmbs")
            .join(name),
    )
    .unwrap()
}

#[test]
fn an_application_serves_the_gateway_and_stops_it() {
    let config = common::free_port_config();
    let state = tempfile::tempdir().unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();

    // No authentication is refused beyond loopback, before anything binds.
    let mut open = GatewayOptions::new(state.path().join("open"));
    open.listen = "0.0.0.0:0".parse().unwrap();
    let refused = runtime.block_on(Gateway::bind(&config, open)).unwrap_err();
    assert!(
        matches!(refused, GatewayError::NoAuthBeyondLoopback(_)),
        "{refused}"
    );
    assert!(!state.path().join("open").exists());

    // A watcher on the same bus sees the gateway's member come and go.
    let (seen_tx, seen) = mpsc::channel();
    let watcher = spawn_members(&config, MembersOptions::default(), move |e| {
        if let MembersEvent::Joined(en) | MembersEvent::Left { entry: en, .. } = &e {
            if en.description.id == MEMBER {
                let _ = seen_tx.send(matches!(e, MembersEvent::Joined(_)));
            }
        }
    })
    .unwrap();

    let lines = Arc::new(Mutex::new(Vec::<String>::new()));
    let executed = Arc::new(AtomicUsize::new(0));
    let mut options = GatewayOptions::new(state.path().join("gateway"));
    options.listen = "127.0.0.1:0".parse().unwrap();
    let log = Arc::clone(&lines);
    options.log = Arc::new(move |line| log.lock().unwrap().push(line));
    let count = Arc::clone(&executed);
    options.exec = Some(Arc::new(move |_job| {
        count.fetch_add(1, Ordering::SeqCst);
        Ok(serde_json::json!("handled by the application"))
    }));
    let gateway = runtime.block_on(Gateway::bind(&config, options)).unwrap();
    let base = gateway.url().to_owned();
    let addr = gateway.local_addr();
    assert_eq!(base, format!("http://{addr}"));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = runtime.spawn(gateway.run(async move {
        let _ = stopped.await;
    }));

    let created = post(&base, "/cmbs/member/", &J, &fixture("post_member.json"));
    assert_eq!(created.status, 201, "{}", created.body);
    assert_eq!(seen.recv_timeout(DEADLINE), Ok(true), "the member joined");
    let msg = post(
        &base,
        "/cmbs/message/",
        &J,
        &fixture("post_message_l1.json"),
    );
    assert_eq!(msg.status, 201, "{}", msg.body);
    let path = format!("/cmbs/message/{MESSAGE}");
    let sent = post(&base, &format!("{path}?action=send_l1"), &J, b"{}");
    assert_eq!(sent.status, 200, "{}", sent.body);
    assert!(sent.body.contains("delivered"), "{}", sent.body);
    assert_eq!(executed.load(Ordering::SeqCst), 1, "the member ran the job");
    let run = post(&base, &format!("{path}?action=execute"), &J, b"{}");
    assert_eq!(run.status, 200, "{}", run.body);
    assert!(
        run.body.contains("handled by the application"),
        "{}",
        run.body
    );
    assert_eq!(executed.load(Ordering::SeqCst), 2);
    assert!(
        lines
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.starts_with("POST /cmbs/member/ 201")),
        "{:?}",
        lines.lock().unwrap()
    );

    stop.send(()).unwrap();
    let ended = runtime.block_on(async { tokio::time::timeout(DEADLINE, serving).await });
    ended.expect("it stops").unwrap().unwrap();
    assert_eq!(
        seen.recv_timeout(DEADLINE),
        Ok(false),
        "the member said bye"
    );
    assert!(
        std::net::TcpStream::connect(addr).is_err(),
        "nothing listens any more"
    );
    watcher.stop();
    watcher.wait().unwrap();
}

/// A gateway answering in GFD.226's flat JSON, on a bus and a state
/// directory of its own, served by a runtime of its own; it stops when
/// dropped.
struct Flat {
    base: String,
    config: rmbus::config::Config,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    _runtime: tokio::runtime::Runtime,
    _state: tempfile::TempDir,
}

impl Flat {
    fn start() -> Flat {
        let config = common::free_port_config();
        let state = tempfile::tempdir().unwrap();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let mut options = GatewayOptions::new(state.path().to_path_buf());
        options.listen = "127.0.0.1:0".parse().unwrap();
        options.flavour = rmbus::occi::Flavour::Occi12;
        options.log = Arc::new(|_| {});
        let gateway = runtime.block_on(Gateway::bind(&config, options)).unwrap();
        let base = gateway.url().to_owned();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        runtime.spawn(gateway.run(async move {
            let _ = stopped.await;
        }));
        Flat {
            base,
            config,
            stop: Some(stop),
            _runtime: runtime,
            _state: state,
        }
    }
}

impl Drop for Flat {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// What entity `path` holds, as flat JSON attributes (its id left out, so
/// that copies compare equal).
fn attributes_at(base: &str, path: &str) -> serde_json::Value {
    let got = get(base, path, &[ACCEPT_JSON]);
    assert_eq!(got.status, 200, "{}", got.body);
    let mut a = got.json()["attributes"].clone();
    a.as_object_mut().unwrap().remove("occi.core.id");
    a
}

/// The `text/occi` headers of `written` (categories and attributes), with
/// `rename`'s first text replaced by its second, as a request sends them
/// back.
fn occi_headers(written: &Answer, rename: Option<(&str, &str)>) -> Vec<(String, String)> {
    let mut sent = vec![("Content-Type".to_owned(), "text/occi".to_owned())];
    sent.extend(
        written
            .headers
            .iter()
            .filter(|(k, _)| k == "category" || k == "x-occi-attribute")
            .map(|(k, v)| {
                let v = rename.map_or(v.clone(), |(from, to)| v.replace(from, to));
                (k.clone(), v)
            }),
    );
    sent
}

/// `headers` as the request helpers take them.
fn borrowed(headers: &[(String, String)]) -> Vec<(&str, &str)> {
    headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect()
}

#[test]
fn flat_json_with_mixins_keeps_every_attribute_and_reads_back_what_it_writes() {
    let flat = Flat::start();
    let base = flat.base.clone();
    let first = "11111111-0000-4000-8000-00000000f1a7";
    let body = |id: &str, mixin: serde_json::Value, extra: (&str, serde_json::Value)| {
        let mut attributes = serde_json::json!({
            "cmbs.message.cmbs_layer": "l32",
            "cmbs.message.topics": ["alerts.disk"],
            "cmbs.message.message_content": {"free": 3},
        });
        attributes[extra.0] = extra.1;
        serde_json::json!({
            "kind": "http://houssem.org/cmbs#message",
            "mixins": [mixin],
            "id": id,
            "attributes": attributes,
        })
        .to_string()
    };
    let attributes_of = |id: &str| attributes_at(&base, &format!("/cmbs/message/{id}"));
    // GFD.226's form: the mixin as a type id, the attributes flat.
    let created = post(
        &base,
        "/cmbs/message/",
        &J,
        body(first, "http://houssem.org/cmbs#l32".into(), ("x", 0.into()))
            .replace(",\"x\":0", "")
            .as_bytes(),
    );
    assert_eq!(created.status, 201, "{}", created.body);
    let a = attributes_of(first);
    assert_eq!(a["cmbs.message.cmbs_layer"], "l32", "{a}");
    assert_eq!(a["cmbs.message.topics"], serde_json::json!(["alerts.disk"]));
    assert_eq!(
        a["cmbs.message.message_content"],
        serde_json::json!({"free": 3})
    );
    // The mixin as a category object, as pyOCNI writes one.
    let second = "22222222-0000-4000-8000-00000000f1a7";
    let object = serde_json::json!({"scheme": "http://houssem.org/cmbs#", "term": "l32"});
    let created = post(
        &base,
        "/cmbs/message/",
        &J,
        body(
            second,
            object.clone(),
            ("cmbs.message.storable", true.into()),
        )
        .as_bytes(),
    );
    assert_eq!(created.status, 201, "{}", created.body);
    let b = attributes_of(second);
    assert_eq!(b["cmbs.message.topics"], serde_json::json!(["alerts.disk"]));
    assert_eq!(b["cmbs.message.storable"], true);
    // An attribute none of its categories defines is refused, named.
    let refused = post(
        &base,
        "/cmbs/message/",
        &J,
        body(
            "33333333-0000-4000-8000-00000000f1a7",
            object,
            ("cmbs.message.bogus", 1.into()),
        )
        .as_bytes(),
    );
    assert_eq!(refused.status, 400, "{}", refused.body);
    assert!(
        refused.body.contains("cmbs.message.bogus"),
        "{}",
        refused.body
    );
    // What it writes, it reads back to the same entity.
    let written = get(&base, &format!("/cmbs/message/{first}"), &[ACCEPT_JSON]).body;
    let copy = "44444444-0000-4000-8000-00000000f1a7";
    let again = post(
        &base,
        "/cmbs/message/",
        &J,
        written.replace(first, copy).as_bytes(),
    );
    assert_eq!(again.status, 201, "{written}\n{}", again.body);
    assert_eq!(attributes_of(copy), a);
    // Both spellings of a layer are read, one is written.
    let dotted = "88888888-0000-4000-8000-00000000f1a7";
    let created = post(
        &base,
        "/cmbs/message/",
        &J,
        body(
            dotted,
            "http://houssem.org/cmbs#l32".into(),
            ("cmbs.message.cmbs_layer", "l3.2".into()),
        )
        .as_bytes(),
    );
    assert_eq!(created.status, 201, "{}", created.body);
    assert_eq!(attributes_of(dotted)["cmbs.message.cmbs_layer"], "l32");
}

#[test]
fn text_renderings_quote_lists_and_objects_and_read_them_back() {
    let flat = Flat::start();
    let base = flat.base.clone();
    let first = "55555555-0000-4000-8000-00000000f1a7";
    let created = post(
        &base,
        "/cmbs/message/",
        &J,
        serde_json::json!({
            "kind": "http://houssem.org/cmbs#message",
            "mixins": ["http://houssem.org/cmbs#l32"],
            "id": first,
            "attributes": {
                "cmbs.message.cmbs_layer": "l32",
                "cmbs.message.topics": ["alerts.disk", "alerts.cpu"],
                "cmbs.message.message_content": {"free": [3, 4]},
            },
        })
        .to_string()
        .as_bytes(),
    );
    assert_eq!(created.status, 201, "{}", created.body);
    let attributes_of = |id: &str| attributes_at(&base, &format!("/cmbs/message/{id}"));
    let original = attributes_of(first);

    // text/plain: lists and objects are quoted strings holding their JSON.
    let plain = get(
        &base,
        &format!("/cmbs/message/{first}"),
        &[("Accept", "text/plain")],
    );
    assert_eq!(plain.status, 200, "{}", plain.body);
    assert!(
        plain
            .body
            .contains(r#"cmbs.message.topics="[\"alerts.disk\",\"alerts.cpu\"]""#),
        "{}",
        plain.body
    );
    assert!(
        plain.body.contains(r#"cmbs.message.path_history="[]""#),
        "{}",
        plain.body
    );
    let copy = "66666666-0000-4000-8000-00000000f1a7";
    let again = post(
        &base,
        "/cmbs/message/",
        &[("Content-Type", "text/plain")],
        plain.body.replace(first, copy).as_bytes(),
    );
    assert_eq!(again.status, 201, "{}\n{}", plain.body, again.body);
    assert_eq!(attributes_of(copy), original);

    // text/occi: the same values in headers.
    let occi = get(
        &base,
        &format!("/cmbs/message/{first}"),
        &[("Accept", "text/occi")],
    );
    assert_eq!(occi.status, 200, "{}", occi.body);
    let third = "77777777-0000-4000-8000-00000000f1a7";
    let headers = occi_headers(&occi, Some((first, third)));
    let again = post(&base, "/cmbs/message/", &borrowed(&headers), b"");
    assert_eq!(again.status, 201, "{headers:?}\n{}", again.body);
    assert_eq!(attributes_of(third), original);
}

#[test]
fn the_root_lists_and_creates_and_misspelt_or_empty_requests_are_refused() {
    let flat = Flat::start();
    let base = flat.base.clone();
    let id = "99999999-0000-4000-8000-00000000f1a7";
    // POST / with a body that names its kind creates at the kind's location.
    let created = post(
        &base,
        "/",
        &J,
        serde_json::json!({
            "kind": "http://houssem.org/cmbs#message",
            "mixins": ["http://houssem.org/cmbs#l2"],
            "id": id,
            "attributes": {"cmbs.message.cmbs_layer": "l2"},
        })
        .to_string()
        .as_bytes(),
    );
    assert_eq!(created.status, 201, "{}", created.body);
    assert_eq!(
        created.header("location"),
        Some(format!("{base}/cmbs/message/{id}").as_str())
    );
    // GET / lists every entity of the name-space.
    let all = get(&base, "/", &[("Accept", "text/uri-list")]);
    assert_eq!(all.status, 200, "{}", all.body);
    assert!(
        all.body.contains(&format!("/cmbs/message/{id}")),
        "{}",
        all.body
    );
    // An empty body creates nothing.
    let empty = post(&base, "/cmbs/message/", &J, b"");
    assert_eq!(empty.status, 400, "{}", empty.body);
    // A PUT outside every kind's location says so.
    let nowhere = request(&base, "PUT", "/nowhere/x", &J, b"{}");
    assert_eq!(nowhere.status, 400, "{}", nowhere.body);
    assert!(nowhere.body.contains("no kind"), "{}", nowhere.body);
    // A misspelt parameter is refused, named, and changes nothing.
    let misspelt = post(
        &base,
        &format!("/cmbs/message/{id}?actoin=send_l2"),
        &J,
        b"{}",
    );
    assert_eq!(misspelt.status, 400, "{}", misspelt.body);
    assert!(misspelt.body.contains("actoin"), "{}", misspelt.body);
    let status = get(&base, &format!("/cmbs/message/{id}"), &[ACCEPT_JSON]).json()["attributes"]
        ["cmbs.message.status"]
        .clone();
    assert_eq!(status, "created", "a misspelt action sent nothing");
    // / and /-/ have no actions.
    let rooted = post(&base, "/?action=send_l2", &J, b"{}");
    assert_eq!(rooted.status, 400, "{}", rooted.body);
    // A filter in the text form of a list matches the list.
    let filtered = get(
        &base,
        "/cmbs/message/",
        &[
            ("Accept", "text/uri-list"),
            ("X-OCCI-Attribute", r#"cmbs.message.path_history="[]""#),
        ],
    );
    assert_eq!(filtered.status, 200, "{}", filtered.body);
    assert!(filtered.body.contains(id), "{}", filtered.body);
}

#[test]
fn deleting_a_kinds_collection_deletes_its_own_entities_and_keeps_read_only_ones() {
    let flat = Flat::start();
    let base = flat.base.clone();
    let remote = "abababab-0000-4000-8000-00000000f1a7";
    // A listing made before the member elsewhere appears (and kept).
    let listing = || get(&base, "/cmbs/member/", &[("Accept", "text/uri-list")]);
    let before = listing();
    assert_eq!(before.status, 200);
    assert_eq!(listing().header("etag"), before.header("etag"), "kept");
    let elsewhere = spawn_members(&flat.config, MembersOptions::default(), |_| {}).unwrap();
    let mut d = rmbus::cmbs::Description::new(remote);
    d.started = rmbus::cmbs::LayerSet::ALL;
    elsewhere.host(d).unwrap();
    let created = post(&base, "/cmbs/member/", &J, &fixture("post_member.json"));
    assert_eq!(created.status, 201, "{}", created.body);
    // The member running elsewhere is listed, read-only.
    let until = std::time::Instant::now() + DEADLINE;
    while get(&base, &format!("/cmbs/member/{remote}"), &[ACCEPT_JSON]).status != 200 {
        assert!(
            std::time::Instant::now() < until,
            "the remote member never showed"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // The kept listing follows the directory.
    let after = listing();
    assert!(after.body.contains(remote), "{}", after.body);
    assert_ne!(after.header("etag"), before.header("etag"));
    let deleted = request(
        &base,
        "DELETE",
        "/cmbs/member/",
        &[("Accept", "text/plain")],
        b"",
    );
    assert_eq!(deleted.status, 200, "{}", deleted.body);
    let line = |id: &str| {
        deleted
            .body
            .lines()
            .find(|l| l.contains(id))
            .unwrap_or_else(|| panic!("no line for {id}: {}", deleted.body))
            .to_owned()
    };
    assert!(line(MEMBER).contains(" 200 "), "{}", deleted.body);
    assert!(line(remote).contains(" 405 "), "{}", deleted.body);
    assert_eq!(
        get(&base, &format!("/cmbs/member/{MEMBER}"), &[ACCEPT_JSON]).status,
        404
    );
    assert_eq!(
        get(&base, &format!("/cmbs/member/{remote}"), &[ACCEPT_JSON]).status,
        200
    );
    // DELETE /resource/ is not every resource: no entity is of that kind
    // itself.
    let messages: Vec<String> = ["1", "2"]
        .iter()
        .map(|n| format!("d{n}d{n}d{n}d{n}-0000-4000-8000-00000000f1a7"))
        .collect();
    for m in &messages {
        let body = serde_json::json!({
            "kind": "http://houssem.org/cmbs#message",
            "id": m,
            "attributes": {"cmbs.message.cmbs_layer": "l2"},
        });
        let made = post(&base, "/cmbs/message/", &J, body.to_string().as_bytes());
        assert_eq!(made.status, 201, "{}", made.body);
    }
    let none = request(
        &base,
        "DELETE",
        "/resource/",
        &[("Accept", "text/plain")],
        b"",
    );
    assert_eq!(none.status, 200, "{}", none.body);
    assert!(!none.body.contains("/cmbs/"), "{}", none.body);
    // Links join what the gateway keeps: two messages, not a member
    // running elsewhere (it can leave without a delete).
    let link = |target: &str| {
        let body = serde_json::json!({
            "kind": "http://schemas.ogf.org/occi/core#link",
            "source": {"location": format!("{base}/cmbs/message/{}", messages[0])},
            "target": {"location": format!("{base}{target}")},
        });
        post(&base, "/link/", &J, body.to_string().as_bytes())
    };
    let linked = link(&format!("/cmbs/message/{}", messages[1]));
    assert_eq!(linked.status, 201, "{}", linked.body);
    let shown = get(
        &base,
        &format!("/cmbs/message/{}", messages[0]),
        &[ACCEPT_JSON],
    )
    .json();
    assert_eq!(shown["links"].as_array().map(Vec::len), Some(1), "{shown}");
    let refused = link(&format!("/cmbs/member/{remote}"));
    assert_eq!(refused.status, 400, "{}", refused.body);
    assert!(refused.body.contains("read-only"), "{}", refused.body);
    // A DELETE that lists locations deletes those only (and their links).
    let listed = request(
        &base,
        "DELETE",
        "/cmbs/message/",
        &[("Content-Type", "text/uri-list"), ("Accept", "text/plain")],
        format!("{base}/cmbs/message/{}\n", messages[0]).as_bytes(),
    );
    assert_eq!(listed.status, 200, "{}", listed.body);
    let status = |m: &str| get(&base, &format!("/cmbs/message/{m}"), &[ACCEPT_JSON]).status;
    assert_eq!((status(&messages[0]), status(&messages[1])), (404, 200));
    assert_eq!(
        get(&base, "/link/", &[("Accept", "text/uri-list")])
            .body
            .trim(),
        "",
        "the link went with its source"
    );
    elsewhere.stop();
    elsewhere.wait().unwrap();
}

#[test]
fn every_rendering_reads_back_what_it_writes_for_each_kind_with_and_without_mixins() {
    let flat = Flat::start();
    let base = flat.base.clone();
    let created = post(&base, "/cmbs/member/", &J, &fixture("post_member.json"));
    assert_eq!(created.status, 201, "{}", created.body);
    let plain_message = "12121212-0000-4000-8000-00000000f1a7";
    let mixed_message = "13131313-0000-4000-8000-00000000f1a7";
    for (id, mixins, extra) in [
        (plain_message, serde_json::json!([]), serde_json::json!({})),
        (
            mixed_message,
            serde_json::json!(["http://houssem.org/cmbs#l4"]),
            serde_json::json!({
                "cmbs.message.topics": ["a.b"],
                "cmbs.message.providers": ["weather"],
            }),
        ),
    ] {
        let mut attributes = serde_json::json!({
            "cmbs.message.cmbs_layer": if id == plain_message { "l2" } else { "l4" },
            "cmbs.message.message_content": {"k": [1, "two", {"three": 3}]},
            "cmbs.message.path_history": [],
        });
        for (k, v) in extra.as_object().unwrap() {
            attributes[k] = v.clone();
        }
        let body = serde_json::json!({
            "kind": "http://houssem.org/cmbs#message",
            "mixins": mixins,
            "id": id,
            "attributes": attributes,
        });
        let made = post(&base, "/cmbs/message/", &J, body.to_string().as_bytes());
        assert_eq!(made.status, 201, "{}", made.body);
    }
    let renderings: [(&str, &str); 4] = [
        ("application/occi+json", "pyocni"),
        ("application/occi+json", "occi12"),
        ("text/plain", ""),
        ("text/occi", ""),
    ];
    for path in [
        format!("/cmbs/member/{MEMBER}"),
        format!("/cmbs/message/{plain_message}"),
        format!("/cmbs/message/{mixed_message}"),
    ] {
        let before = attributes_at(&base, &path);
        for (media, flavour) in renderings {
            let written = get(&base, &path, &[("Accept", media)]);
            assert_eq!(written.status, 200, "{media}: {}", written.body);
            let mut body = written.body.clone();
            if flavour == "pyocni" {
                // This gateway answers GFD.226's flavour; pyOCNI's is what
                // pyCMBS posts: the same entity, nested.
                let flat = written.json();
                let mut nested = serde_json::json!({});
                for (k, v) in flat["attributes"].as_object().unwrap() {
                    let mut at = &mut nested;
                    let parts: Vec<&str> = k.splitn(3, '.').collect();
                    for p in &parts[..parts.len() - 1] {
                        at = at
                            .as_object_mut()
                            .unwrap()
                            .entry(p.to_string())
                            .or_insert(serde_json::json!({}));
                    }
                    at[parts[parts.len() - 1]] = v.clone();
                }
                body = serde_json::json!({"resources": [{
                    "kind": flat["kind"],
                    "mixins": flat["mixins"],
                    "id": flat["id"],
                    "attributes": nested,
                }]})
                .to_string();
            }
            let back = if media == "text/occi" {
                let headers = occi_headers(&written, None);
                request(&base, "PUT", &path, &borrowed(&headers), b"")
            } else {
                request(
                    &base,
                    "PUT",
                    &path,
                    &[("Content-Type", media)],
                    body.as_bytes(),
                )
            };
            assert_eq!(
                back.status, 200,
                "{path} in {media} {flavour}: {body}\n{}",
                back.body
            );
            assert_eq!(
                attributes_at(&base, &path),
                before,
                "{path} in {media} {flavour}"
            );
        }
    }
}
