//! `rmbus gateway` over real HTTP on a free loopback port, on a host-local
//! bus of its own: the pyCMBS recipe in its order (without and with
//! credentials), the gateway's members and messages meeting `rmbus member`
//! and `rmbus publish` processes, members running elsewhere read-only with
//! their actions forwarded, users and passwords, and a restart after
//! `kill -9`.
#![cfg(feature = "gateway")]

mod common;
mod gw;
mod http;
mod procs;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use gw::Gateway;
use http::*;
use procs::*;
use serde_json::{json, Value as Json};

const MEMBER: &str = "996ad860-2a9a-504f-8861-aeafd0b2ae29";
const MESSAGE: &str = "0101d860-2a9a-504f-8861-aeafd0b20101";
const OTHER: &str = "cccccccc-0000-4000-8000-000000000003";

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/pycmbs")
            .join(name),
    )
    .unwrap()
}

const J: [(&str, &str); 2] = [JSON, ACCEPT_JSON];

/// Waits until `path` answers with `f` true (the bus needs its moments).
fn eventually(
    b: &str,
    path: &str,
    headers: &[(&str, &str)],
    f: impl Fn(&Answer) -> bool,
) -> Answer {
    let until = Instant::now() + DEADLINE;
    loop {
        let a = get(b, path, headers);
        if f(&a) {
            return a;
        }
        assert!(
            Instant::now() < until,
            "{path} never satisfied the test; last:\n{}",
            a.body
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

fn member_attrs(a: &Answer) -> Json {
    a.json()["resources"][0]["attributes"]["cmbs"]["member"].clone()
}

fn message_attrs(a: &Answer) -> Json {
    a.json()["resources"][0]["attributes"]["cmbs"]["message"].clone()
}

/// Steps 1–4 of the recipe, with `auth` headers on steps 1–2 and `later` on 3–4.
fn register(b: &str, first: &[(&str, &str)], later: &[(&str, &str)]) -> Vec<u16> {
    let with = |extra: &[(&str, &str)]| -> Vec<(String, String)> {
        J.iter()
            .chain(extra)
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    let send = |method: &str, file: &str, extra: &[(&str, &str)]| {
        let h = with(extra);
        let h: Vec<(&str, &str)> = h.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        request(b, method, "/-/", &h, &fixture(file)).status
    };
    vec![
        send("POST", "post_category_cmbs_member.json", first),
        send("PUT", "put_provider_cmbs_member.json", first),
        send("POST", "post_category_cmbs_message.json", later),
        send("PUT", "put_provider_cmbs_message.json", later),
    ]
}

#[test]
fn the_pycmbs_recipe_in_its_order() {
    let bus = bus();
    let state = tempfile::tempdir().unwrap();
    let mut g = Gateway::start(&bus, state.path(), &["--no-auth"]);
    let b = g.base.clone();
    assert_eq!(register(&b, &[], &[]), [200, 200, 200, 200]);
    assert_eq!(
        register(&b, &[], &[]),
        [200, 200, 200, 200],
        "registration is idempotent"
    );

    let created = post(&b, "/cmbs/member/", &J, &fixture("post_member.json"));
    assert_eq!(created.status, 201, "{}", created.body);
    let url = format!("{b}/cmbs/member/{MEMBER}");
    assert_eq!(created.json(), json!({"Location": [url]}));
    assert_eq!(created.header("location"), Some(url.as_str()));
    assert_eq!(
        post(&b, "/cmbs/member/", &J, &fixture("post_member.json")).status,
        409
    );

    // The README's step 6 names a member that does not exist.
    let wrong = post(
        &b,
        "/cmbs/member/016ad860-2a9a-504f-8861-aeafd0b2ae29?action=check_neighbors",
        &J,
        b"{}",
    );
    assert_eq!(wrong.status, 404);
    let path = format!("/cmbs/member/{MEMBER}");
    let m = member_attrs(&get(&b, &path, &[ACCEPT_JSON]));
    assert_eq!(m["state"], "active");
    assert_eq!(
        m["layers"],
        json!(["l1", "l2", "l3.1", "l3.2", "l4"]),
        "active starts every layer"
    );
    assert_eq!(m["l3.1_socket"], "tcp://127.0.0.1:5031");
    for (action, layers) in [
        ("check_neighbors", json!(["l1", "l2", "l3.1", "l3.2", "l4"])),
        ("start_l1", json!(["l1", "l2", "l3.1", "l3.2", "l4"])),
        ("stop_l1", json!(["l2", "l3.1", "l3.2", "l4"])),
        ("start_l2", json!(["l2", "l3.1", "l3.2", "l4"])),
        ("stop_l2", json!(["l3.1", "l3.2", "l4"])),
    ] {
        let a = post(&b, &format!("{path}?action={action}"), &J, b"{}");
        assert_eq!(a.status, 200, "{action}: {}", a.body);
        assert_eq!(member_attrs(&a)["layers"], layers, "after {action}");
    }

    let msg = post(&b, "/cmbs/message/", &J, &fixture("post_message_l1.json"));
    assert_eq!(msg.status, 201, "{}", msg.body);
    let msg_path = format!("/cmbs/message/{MESSAGE}");
    assert_eq!(
        message_attrs(&get(&b, &msg_path, &[ACCEPT_JSON]))["status"],
        "created"
    );
    // L1 is stopped on the only member named tcp://127.0.0.1:5010.
    let sent = post(&b, &format!("{msg_path}?action=send_l1"), &J, b"{}");
    assert_eq!(sent.status, 200, "{}", sent.body);
    let a = message_attrs(&sent);
    assert_eq!(a["status"], "failed");
    assert_eq!(a["report"][0]["outcome"], "LAYER_STOPPED", "{a}");
    // Started again (pyCMBS's spelling of the term also works), it is delivered and answered.
    assert_eq!(
        post(&b, &format!("{path}?action=start_l1"), &J, b"{}").status,
        200
    );
    assert_eq!(
        post(&b, &format!("{path}?action=start_l31"), &J, b"{}").status,
        200
    );
    let sent = post(&b, &format!("{msg_path}?action=send_l1"), &J, b"{}");
    let a = message_attrs(&sent);
    assert_eq!(a["status"], "delivered", "{a}");
    assert_eq!(
        a["report"],
        json!([{"member": MEMBER, "outcome": "DELIVERED", "reason": ""}])
    );
    g.expect(&format!("member {MEMBER} received {MESSAGE}"));
    // Each request is logged on one line.
    g.expect(&format!("POST /cmbs/message/{MESSAGE}?action=send_l1 200"));
    // A send action of a layer the message does not have.
    assert_eq!(
        post(&b, &format!("{msg_path}?action=send_l2"), &J, b"{}").status,
        400
    );
    let executed = post(&b, &format!("{msg_path}?action=execute"), &J, b"{}");
    assert_eq!(executed.status, 200, "{}", executed.body);

    // A category that conflicts with ours is a 409.
    let mut cat: Json = serde_json::from_slice(&fixture("post_category_cmbs_member.json")).unwrap();
    cat["kinds"][0]["location"] = json!("/elsewhere/");
    assert_eq!(post(&b, "/-/", &J, cat.to_string().as_bytes()).status, 409);
    cat["kinds"][0]["location"] = json!("/cmbs/member/");
    cat["kinds"][0]["attributes"]["cmbs"]["member"]["topics"]["type"] = json!("Number");
    assert_eq!(post(&b, "/-/", &J, cat.to_string().as_bytes()).status, 409);
}

#[test]
fn the_recipe_with_credentials_and_the_users() {
    let bus = bus();
    let state = tempfile::tempdir().unwrap();
    let g = Gateway::start(&bus, state.path(), &["--user", "user_1:pass"]);
    let b = &g.base;
    let good = ("Authorization", "Basic dXNlcl8xOnBhc3M="); // user_1:pass
    let bad = ("Authorization", "Basic dXNlcl8xOm5vcGU="); // user_1:nope
                                                           // As in the README: steps 1-2 with credentials, 3-4 without.
    assert_eq!(register(b, &[good], &[]), [200, 200, 401, 401]);
    let refused = post(b, "/-/", &J, &fixture("post_category_cmbs_message.json"));
    assert_eq!(
        refused.header("www-authenticate"),
        Some("Basic realm=\"rmbus\"")
    );
    assert_eq!(register(b, &[bad], &[good]), [401, 401, 200, 200]);
    for _ in 0..3 {
        // Cached after the first: still right, still refused when wrong.
        assert_eq!(get(b, "/-/", &[good]).status, 200);
        assert_eq!(get(b, "/-/", &[bad]).status, 401);
    }
    let created = post(
        b,
        "/cmbs/member/",
        &[JSON, ACCEPT_JSON, good],
        &fixture("post_member.json"),
    );
    assert_eq!(created.status, 201);
    drop(g);

    // No user given: admin is created once, its password printed once.
    let state = tempfile::tempdir().unwrap();
    let mut g = Gateway::start(&bus, state.path(), &[]);
    let line = g.expect("created the user admin with the password ");
    let password = line
        .split("password ")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .to_owned();
    let header = format!("Basic {}", base64_of(&format!("admin:{password}")));
    assert_eq!(
        get(&g.base, "/-/", &[("Authorization", &header)]).status,
        200
    );
    assert_eq!(get(&g.base, "/-/", &[]).status, 401);
    drop(g);
    let mut g = Gateway::start(&bus, state.path(), &[]);
    g.expect("listening");
    assert!(
        !g.seen.iter().any(|l| l.contains("created the user")),
        "only once"
    );
    assert_eq!(
        get(&g.base, "/-/", &[("Authorization", &header)]).status,
        200
    );
    drop(g);

    // A users file made with --hash-password; mode 0600 is required.
    let mut hash = rmbus(&bus)
        .args(["gateway", "--hash-password", "ann"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    hash.stdin.take().unwrap().write_all(b"wonder\n").unwrap();
    let out = hash.wait_with_output().unwrap();
    assert!(out.status.success());
    let line = String::from_utf8(out.stdout).unwrap();
    assert!(line.starts_with("ann:$argon2id$"), "{line}");
    let users: PathBuf = state.path().join("ann.users");
    std::fs::write(&users, &line).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&users, std::fs::Permissions::from_mode(0o644)).unwrap();
    let open = rmbus(&bus)
        .args(["gateway", "--listen", "127.0.0.1:0", "--users"])
        .arg(&users)
        .arg("--state")
        .arg(state.path())
        .output()
        .unwrap();
    assert_eq!(open.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&open.stderr).contains("chmod 600"));
    std::fs::set_permissions(&users, std::fs::Permissions::from_mode(0o600)).unwrap();
    let g = Gateway::start(&bus, state.path(), &["--users", users.to_str().unwrap()]);
    let ann = format!("Basic {}", base64_of("ann:wonder"));
    assert_eq!(get(&g.base, "/-/", &[("Authorization", &ann)]).status, 200);
}

fn base64_of(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(s)
}

#[test]
fn gateway_members_and_messages_meet_processes_on_the_bus() {
    let bus = bus();
    let state = tempfile::tempdir().unwrap();
    let mut g = Gateway::start(&bus, state.path(), &["--no-auth"]);
    let b = g.base.clone();
    let first = post(&b, "/cmbs/member/", &J, &fixture("post_member.json"));
    assert_eq!(first.status, 201, "{}", first.body);

    // An L1 message from an `rmbus publish` process reaches the gateway's member.
    let out = rmbus(&bus)
        .args([
            "publish",
            "--json",
            "--wait",
            "2",
            "--layer",
            "l1",
            "--to",
            MEMBER,
            "--executable",
            "{\"a\": 1}",
        ])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    g.expect(&format!("member {MEMBER} received"));

    // A message created through the gateway reaches an `rmbus member` process.
    let mut member = Proc::start({
        let mut c: Command = rmbus(&bus);
        c.args([
            "member", "--json", "--memory", "--id", OTHER, "--topics", "alerts.#",
        ]);
        c
    });
    let other_path = format!("/cmbs/member/{OTHER}");
    let seen = eventually(&b, &other_path, &[ACCEPT_JSON], |a| a.status == 200);
    let m = member_attrs(&seen);
    assert_eq!(m["hosted"], false);
    assert_eq!(m["topics"], json!(["alerts.#"]));
    let listing = get(&b, "/cmbs/member/", &[ACCEPT_JSON]).json();
    assert_eq!(listing["X-OCCI-Location"].as_array().unwrap().len(), 2);
    let msg = json!({"resources": [{"kind": "http://houssem.org/cmbs#message",
        "mixins": ["http://houssem.org/cmbs#l32"], "id": "32323232-0000-4000-8000-000000000032",
        "attributes": {"cmbs": {"message": {"cmbs_layer": "l32", "topics": ["alerts.disk"],
            "message_content": {"disk": "full"}}}}}]});
    assert_eq!(
        post(&b, "/cmbs/message/", &J, msg.to_string().as_bytes()).status,
        201
    );
    let sent = post(
        &b,
        "/cmbs/message/32323232-0000-4000-8000-000000000032?action=send_l32",
        &J,
        b"{}",
    );
    let a = message_attrs(&sent);
    assert_eq!(a["status"], "delivered", "{a}");
    assert_eq!(a["report"][0]["member"], OTHER);
    let got = member.expect("the message", |j| j["event"] == "received");
    assert_eq!(
        got["message"]["message_content"],
        json!({"disk": "full"}),
        "{got}"
    );

    // A member running elsewhere is read-only; its actions are forwarded.
    let put = request(&b, "PUT", &other_path, &J, seen.body.as_bytes());
    assert_eq!(put.status, 405);
    assert_eq!(put.header("allow"), Some("GET, HEAD, POST"));
    assert!(put.body.contains("read-only"), "{}", put.body);
    assert_eq!(request(&b, "DELETE", &other_path, &[], b"").status, 405);
    let stopped = post(&b, &format!("{other_path}?action=stop_l3.2"), &J, b"{}");
    assert_eq!(stopped.status, 200, "{}", stopped.body);
    assert_eq!(
        member_attrs(&stopped)["layers"],
        json!(["l1", "l2", "l3.1", "l4"])
    );
    member.expect("the action", |j| {
        j["event"] == "action" && j["action"] == "stop_l3.2"
    });
    // Sent again: the member refuses, the report says so.
    let again = post(
        &b,
        "/cmbs/message/32323232-0000-4000-8000-000000000032?action=send_l32",
        &J,
        b"{}",
    );
    let a = message_attrs(&again);
    assert_eq!(a["status"], "failed", "{a}");

    // An action on the gateway's member from elsewhere shows in its entity.
    let out = rmbus(&bus)
        .args(["members", MEMBER, "stop_l4"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    eventually(&b, &format!("/cmbs/member/{MEMBER}"), &[ACCEPT_JSON], |a| {
        member_attrs(a)["layers"] == json!(["l1", "l2", "l3.1", "l3.2"])
    });

    // Deleting a hosted member says bye: the process sees it leave.
    assert_eq!(
        request(&b, "DELETE", &format!("/cmbs/member/{MEMBER}"), &[], b"").status,
        200
    );
    member.expect("the gateway's member leaving", |j| {
        j["event"] == "left" && j["member"] == MEMBER
    });
    assert_eq!(get(&b, &format!("/cmbs/member/{MEMBER}"), &[]).status, 404);

    // Members created through the gateway are UUIDs, active or inactive.
    let mut bad: Json = serde_json::from_slice(&fixture("post_member.json")).unwrap();
    bad["resources"][0]["attributes"]["cmbs"]["member"]["state"] = json!("failed");
    bad["resources"][0]["id"] = json!("aaaaaaaa-0000-4000-8000-00000000000a");
    assert_eq!(
        post(&b, "/cmbs/member/", &J, bad.to_string().as_bytes()).status,
        400
    );
    bad["resources"][0]["attributes"]["cmbs"]["member"]["state"] = json!("active");
    bad["resources"][0]["id"] = json!("not-a-uuid");
    assert_eq!(
        post(&b, "/cmbs/member/", &J, bad.to_string().as_bytes()).status,
        400
    );
    bad["resources"][0]["id"] = json!(OTHER);
    assert_eq!(
        post(&b, "/cmbs/member/", &J, bad.to_string().as_bytes()).status,
        409,
        "the id runs elsewhere"
    );
}

#[test]
fn a_restart_after_kill_9_keeps_every_acknowledged_resource() {
    let bus = bus();
    let state = tempfile::tempdir().unwrap();
    let mut g = Gateway::start(&bus, state.path(), &["--no-auth"]);
    let b = g.base.clone();
    assert_eq!(
        post(&b, "/cmbs/member/", &J, &fixture("post_member.json")).status,
        201
    );
    let path = format!("/cmbs/member/{MEMBER}");
    assert_eq!(
        post(&b, &format!("{path}?action=stop_l2"), &J, b"{}").status,
        200
    );
    let topics = json!({"resources": [{"kind": "http://houssem.org/cmbs#member",
        "attributes": {"cmbs": {"member": {"topics": ["news.#"]}}}}]});
    assert_eq!(
        post(&b, &path, &J, topics.to_string().as_bytes()).status,
        200
    );
    assert_eq!(
        post(&b, "/cmbs/message/", &J, &fixture("post_message_l1.json")).status,
        201
    );
    let tag =
        "Category: mine; scheme=\"http://me.example/tags#\"; class=\"mixin\"; location=\"/mine/\"";
    assert_eq!(post(&b, "/-/", &[PLAIN], tag.as_bytes()).status, 200);
    let before = get(&b, &path, &[ACCEPT_JSON]);
    g.kill9();

    let g = Gateway::start(&bus, state.path(), &["--no-auth"]);
    let b = g.base.clone();
    let after = get(&b, &path, &[ACCEPT_JSON]);
    let (x, y) = (member_attrs(&before), member_attrs(&after));
    assert_eq!(y["layers"], json!(["l1", "l3.1", "l3.2", "l4"]));
    assert_eq!(y["topics"], json!(["news.#"]));
    assert_eq!(x, y);
    assert_eq!(
        get(&b, &format!("/cmbs/message/{MESSAGE}"), &[]).status,
        200
    );
    assert_eq!(
        get(&b, "/mine/", &[]).status,
        200,
        "the client mixin is back"
    );
    // The member is back on the bus, in that state: L1 reaches it, L2 is refused.
    let l1 = rmbus(&bus)
        .args([
            "publish", "--json", "--wait", "2", "--layer", "l1", "--to", MEMBER, "\"back\"",
        ])
        .output()
        .unwrap();
    assert_eq!(
        l1.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&l1.stdout)
    );
    let l2 = rmbus(&bus)
        .args([
            "publish", "--json", "--wait", "2", "--layer", "l2", "\"all\"",
        ])
        .output()
        .unwrap();
    assert_ne!(l2.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&l2.stdout).contains("LAYER_STOPPED"));
}

fn member_doc(id: &str, state: &str, neighbors: &[&str]) -> Vec<u8> {
    json!({"resources": [{"kind": "http://houssem.org/cmbs#member", "id": id,
        "attributes": {"cmbs": {"member": {"state": state, "neighbors_socket": neighbors}}}}]})
    .to_string()
    .into_bytes()
}

#[test]
fn exec_neighbors_and_member_states() {
    let bus = bus();
    let state = tempfile::tempdir().unwrap();
    let g = Gateway::start(
        &bus,
        state.path(),
        &["--no-auth", "--exec", "printf", "{\"sum\": 3}"],
    );
    let b = g.base.clone();
    const A: &str = "aaaaaaaa-0000-4000-8000-000000000001";
    const B: &str = "bbbbbbbb-0000-4000-8000-000000000002";
    let b_socket = format!("mbus:{B}/l1");
    assert_eq!(
        post(
            &b,
            "/cmbs/member/",
            &J,
            &member_doc(A, "active", &[&b_socket, "nobody"])
        )
        .status,
        201
    );
    assert_eq!(
        post(&b, "/cmbs/member/", &J, &member_doc(B, "inactive", &[])).status,
        201
    );
    assert_eq!(
        post(
            &b,
            "/cmbs/member/",
            &J,
            &member_doc(OTHER, "suspended", &[])
        )
        .status,
        400
    );
    let b_path = format!("/cmbs/member/{B}");
    assert_eq!(
        member_attrs(&get(&b, &b_path, &[ACCEPT_JSON]))["layers"],
        json!([])
    );

    // check_neighbors says which neighbors_socket entries are known.
    let until = Instant::now() + DEADLINE;
    let known = loop {
        let a = post(
            &b,
            &format!("/cmbs/member/{A}?action=check_neighbors"),
            &J,
            b"{}",
        );
        let k = member_attrs(&a)["neighbors_known"].clone();
        if k[0]["member"] == B || Instant::now() > until {
            break k;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert_eq!(
        known,
        json!([{"endpoint": b_socket, "member": B}, {"endpoint": "nobody", "member": null}])
    );

    // A partial update to active starts every layer; the --exec program answers.
    let active = json!({"resources": [{"kind": "http://houssem.org/cmbs#member",
        "attributes": {"cmbs": {"member": {"state": "active"}}}}]});
    let up = post(&b, &b_path, &J, active.to_string().as_bytes());
    assert_eq!(
        member_attrs(&up)["layers"],
        json!(["l1", "l2", "l3.1", "l3.2", "l4"]),
        "{}",
        up.body
    );
    let msg = json!({"resources": [{"kind": "http://houssem.org/cmbs#message", "id": "e1",
        "mixins": ["http://houssem.org/cmbs#l1"],
        "attributes": {"cmbs": {"message": {"cmbs_layer": "l1", "executable": "True",
            "l1_socket_receiver_member": b_socket, "message_content": {"a": 1, "b": 2}}}}}]});
    assert_eq!(
        post(&b, "/cmbs/message/", &J, msg.to_string().as_bytes()).status,
        201
    );
    let executed = post(&b, "/cmbs/message/e1?action=execute", &J, b"{}");
    assert_eq!(
        message_attrs(&executed)["result"],
        json!({"sum": 3}),
        "{}",
        executed.body
    );
    let sent = post(&b, "/cmbs/message/e1?action=send_l1", &J, b"{}");
    let a = message_attrs(&sent);
    assert_eq!(
        (a["status"].clone(), a["result"].clone()),
        (json!("delivered"), json!({"sum": 3})),
        "{a}"
    );

    // Suspended by an update: deliveries are refused until it is set back.
    let suspend = json!({"resources": [{"kind": "http://houssem.org/cmbs#member",
        "attributes": {"cmbs": {"member": {"state": "suspended"}}}}]});
    assert_eq!(
        member_attrs(&post(&b, &b_path, &J, suspend.to_string().as_bytes()))["state"],
        "suspended"
    );
    // (A message id is delivered once: e1 again would get its first answer.)
    let e2 = msg.to_string().replace("\"e1\"", "\"e2\"");
    assert_eq!(post(&b, "/cmbs/message/", &J, e2.as_bytes()).status, 201);
    let refused = message_attrs(&post(&b, "/cmbs/message/e2?action=send_l1", &J, b"{}"));
    assert_eq!(refused["status"], "failed", "{refused}");
    assert_eq!(refused["report"][0]["outcome"], "SUSPENDED", "{refused}");
    let back = post(&b, &b_path, &J, active.to_string().as_bytes());
    assert_eq!(member_attrs(&back)["state"], "active");
    let failed = json!({"resources": [{"kind": "http://houssem.org/cmbs#member",
        "attributes": {"cmbs": {"member": {"state": "failed"}}}}]});
    assert_eq!(
        post(&b, &b_path, &J, failed.to_string().as_bytes()).status,
        400
    );
    // Server-managed attributes are not the client's.
    let forged = json!({"resources": [{"kind": "http://houssem.org/cmbs#message",
        "attributes": {"cmbs": {"message": {"status": "created"}}}}]});
    assert_eq!(
        post(&b, "/cmbs/message/e1", &J, forged.to_string().as_bytes()).status,
        403
    );
}
