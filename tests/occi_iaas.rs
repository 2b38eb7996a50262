//! The OCCI library over real HTTP, serving the infrastructure kinds of
//! `examples/occi_iaas.rs` on a free loopback port: CRUD and actions in
//! every rendering, filters, paging, mixin tagging, client mixins, and the
//! error policy.
#![cfg(feature = "occi")]

mod http;
#[allow(dead_code)]
#[path = "../examples/occi_iaas.rs"]
mod occi_iaas;

use http::*;
use serde_json::json;

const INFRA: &str = "http://schemas.ogf.org/occi/infrastructure#";

/// Serves the example on a free port for the test's lifetime.
struct Served {
    base: String,
    _runtime: tokio::runtime::Runtime,
}

fn serve() -> Served {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let server = occi_iaas::server(&base).unwrap();
    runtime.spawn(async move { server.serve(listener, std::future::pending()).await });
    Served {
        base,
        _runtime: runtime,
    }
}

fn compute_plain(extra: &str) -> String {
    format!("Category: compute; scheme=\"{INFRA}\"; class=\"kind\"\n{extra}")
}

#[test]
fn crud_and_actions_in_text_plain_and_text_occi() {
    let s = serve();
    let b = &s.base;
    let created = post(
        b,
        "/compute/",
        &[PLAIN],
        compute_plain(
            "X-OCCI-Attribute: occi.compute.cores=2\nX-OCCI-Attribute: occi.core.title=\"web\"",
        )
        .as_bytes(),
    );
    assert_eq!(
        (created.status, created.reason.as_str()),
        (201, "Created"),
        "{}",
        created.body
    );
    let url = created.header("location").unwrap().to_owned();
    assert!(url.starts_with(&format!("{b}/compute/")), "{url}");
    assert_eq!(created.body.trim(), format!("X-OCCI-Location: {url}"));
    assert!(created.header("server").unwrap().contains("OCCI/1.1"));
    let path = url.strip_prefix(b.as_str()).unwrap().to_owned();

    // The listing has the same bytes, in every rendering.
    let list = get(b, "/compute/", &[]);
    assert_eq!(list.body.trim(), format!("X-OCCI-Location: {url}"));
    let occi = get(b, "/compute/", &[("Accept", "text/occi")]);
    assert_eq!(occi.header("x-occi-location"), Some(url.as_str()));
    let uris = get(b, "/compute/", &[("Accept", "text/uri-list")]);
    assert_eq!(uris.body.trim(), url);
    assert_eq!(
        get(b, "/resource/", &[]).body.trim(),
        format!("X-OCCI-Location: {url}")
    );

    let one = get(b, &path, &[]);
    assert_eq!(one.status, 200);
    assert!(
        one.body.contains("X-OCCI-Attribute: occi.compute.cores=2"),
        "{}",
        one.body
    );
    assert!(
        one.body.contains("occi.compute.state=\"inactive\""),
        "the default applies"
    );
    assert!(
        one.body.contains(&format!("Link: <{url}?action=start>")),
        "{}",
        one.body
    );
    let headers = get(b, &path, &[("Accept", "text/occi")]);
    assert!(headers
        .all("x-occi-attribute")
        .iter()
        .any(|v| v.contains("occi.compute.cores=2")));
    assert!(
        get(b, &path, &[("Accept", "text/uri-list")]).status == 400,
        "uri-list is for listings"
    );

    // Action, then a full update that echoes what GET gave (immutable
    // attributes and action links unchanged): accepted.
    let started = post(b, &format!("{path}?action=start"), &[], b"");
    assert_eq!(started.status, 200, "{}", started.body);
    assert!(started.body.contains("occi.compute.state=\"active\""));
    let again = post(b, &format!("{path}?action=start"), &[], b"");
    assert_eq!(again.status, 400, "start on an active compute");
    let echo = get(b, &path, &[]).body.replace("cores=2", "cores=4");
    let put = request(b, "PUT", &path, &[PLAIN], echo.as_bytes());
    assert_eq!(put.status, 200, "{}", put.body);
    assert!(put.body.contains("occi.compute.cores=4"));
    let forged = echo.replace("state=\"active\"", "state=\"inactive\"");
    assert_eq!(
        request(b, "PUT", &path, &[PLAIN], forged.as_bytes()).status,
        403
    );

    // Partial update, in text/occi headers.
    let partial = request(
        b,
        "POST",
        &path,
        &[
            ("Content-Type", "text/occi"),
            (
                "X-OCCI-Attribute",
                "occi.compute.hostname=\"h1\", occi.compute.speed=2.5",
            ),
        ],
        b"",
    );
    assert_eq!(partial.status, 200, "{}", partial.body);
    let now = get(b, &path, &[]).body;
    assert!(
        now.contains("occi.compute.hostname=\"h1\"") && now.contains("occi.compute.cores=4"),
        "{now}"
    );

    assert_eq!(request(b, "DELETE", &path, &[], b"").status, 200);
    assert_eq!(get(b, &path, &[]).status, 404);
    assert_eq!(get(b, "/compute/", &[]).body.trim(), "");
}

#[test]
fn both_json_flavours_round_trip() {
    let s = serve();
    let b = &s.base;
    // OCCI 1.2: flat names, a bare resource.
    let flat = json!({"kind": format!("{INFRA}storage"), "id": "disk-1", "title": "disk",
        "attributes": {"occi.storage.size": 10}});
    let c = post(
        b,
        "/storage/",
        &[JSON, ACCEPT_JSON],
        flat.to_string().as_bytes(),
    );
    assert_eq!(c.status, 201, "{}", c.body);
    assert_eq!(c.json()["attributes"]["occi.storage.size"], 10);
    assert_eq!(
        c.header("location"),
        Some(format!("{b}/storage/disk-1").as_str())
    );
    // pyOCNI: nested, in an envelope; answered the same way.
    let nested = json!({"resources": [{"kind": format!("{INFRA}network"), "id": "net-1", "mixins": [],
        "attributes": {"occi": {"network": {"vlan": 7, "label": "lan"}}}, "actions": [], "links": []}]});
    let c = post(
        b,
        "/network/",
        &[JSON, ACCEPT_JSON],
        nested.to_string().as_bytes(),
    );
    assert_eq!(c.status, 201, "{}", c.body);
    assert_eq!(
        c.json(),
        json!({"Location": [format!("{b}/network/net-1")]})
    );
    let g = get(b, "/network/net-1", &[ACCEPT_JSON]).json();
    let r = &g["resources"][0];
    assert_eq!(r["attributes"]["occi"]["network"]["vlan"], 7);
    assert_eq!(r["attributes"]["occi"]["network"]["state"], "inactive");
    // A GFD.226 action invocation.
    let up = post(
        b,
        "/network/net-1?action=up",
        &[JSON, ACCEPT_JSON],
        json!({"action": "http://schemas.ogf.org/occi/infrastructure/network/action#up"})
            .to_string()
            .as_bytes(),
    );
    assert_eq!(up.status, 200, "{}", up.body);
    assert_eq!(
        up.json()["attributes"]["occi.network.state"],
        "active",
        "answered flat, like the request"
    );
    let mismatch = post(
        b,
        "/network/net-1?action=down",
        &[JSON],
        json!({"action": "http://schemas.ogf.org/occi/infrastructure/network/action#up"})
            .to_string()
            .as_bytes(),
    );
    assert_eq!(mismatch.status, 400);
    // The JSON query interface lists the core kinds, in both flavours.
    let q = get(b, "/-/", &[ACCEPT_JSON]).json();
    let terms: Vec<&str> = q["kinds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["term"].as_str().unwrap())
        .collect();
    for t in [
        "entity", "resource", "link", "compute", "storage", "network",
    ] {
        assert!(terms.contains(&t), "{t} in {terms:?}");
    }
    let compute = q["kinds"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["term"] == "compute")
        .unwrap();
    assert_eq!(compute["location"], "/compute/", "relative locations");
    assert_eq!(
        compute["attributes"]["occi"]["compute"]["cores"]["type"],
        "Number"
    );
    assert_eq!(
        get(b, "/.well-known/org/ogf/occi/-/", &[ACCEPT_JSON]).json(),
        q
    );
    // A listing in the 1.2 flavour carries the renderings.
    let listing = request(
        b,
        "GET",
        "/storage/",
        &[ACCEPT_JSON, JSON],
        br#"{"kind":"http://schemas.ogf.org/occi/infrastructure#storage"}"#,
    );
    assert_eq!(listing.status, 200);
}

#[test]
fn filters_paging_tags_and_client_mixins() {
    let s = serve();
    let b = &s.base;
    for (id, cores) in [("a", 1), ("b", 2), ("c", 2)] {
        let body = compute_plain(&format!(
            "X-OCCI-Attribute: occi.core.id=\"{id}\"\nX-OCCI-Attribute: occi.compute.cores={cores}"
        ));
        assert_eq!(post(b, "/compute/", &[PLAIN], body.as_bytes()).status, 201);
    }
    let two = get(
        b,
        "/compute/",
        &[("X-OCCI-Attribute", "occi.compute.cores=2")],
    );
    assert_eq!(two.body.lines().count(), 2, "{}", two.body);
    let page = get(b, "/compute/?page=2&number=2", &[]);
    assert_eq!(page.body.trim(), format!("X-OCCI-Location: {b}/compute/c"));
    assert_eq!(get(b, "/compute/?page=9&number=2", &[]).body.trim(), "");
    assert_eq!(get(b, "/compute/?number=5000", &[]).status, 413);
    assert_eq!(get(b, "/compute/?page=x", &[]).status, 400);

    // A template mixin, tagged at creation; the kind's collection filters by it.
    let body = compute_plain("Category: ubuntu; scheme=\"http://example.org/occi/os#\"; class=\"mixin\"\nX-OCCI-Attribute: occi.core.id=\"d\"");
    assert_eq!(post(b, "/compute/", &[PLAIN], body.as_bytes()).status, 201);
    assert_eq!(
        get(b, "/os_tpl/ubuntu/", &[]).body.trim(),
        format!("X-OCCI-Location: {b}/compute/d")
    );
    let filtered = get(
        b,
        "/compute/",
        &[
            ("Content-Type", "text/occi"),
            ("Category", "ubuntu; scheme=\"http://example.org/occi/os#\""),
        ],
    );
    assert_eq!(filtered.body.lines().count(), 1, "{}", filtered.body);

    // A client mixin: defined, tagged, listed, untagged, removed.
    let tag =
        "Category: mine; scheme=\"http://me.example/tags#\"; class=\"mixin\"; location=\"/mine/\"";
    assert_eq!(post(b, "/-/", &[PLAIN], tag.as_bytes()).status, 200);
    assert_eq!(
        post(b, "/-/", &[PLAIN], tag.as_bytes()).status,
        200,
        "idempotent"
    );
    let clash = "Category: other; scheme=\"http://me.example/tags#\"; class=\"mixin\"; location=\"/compute/\"";
    assert_eq!(post(b, "/-/", &[PLAIN], clash.as_bytes()).status, 409);
    let tagged = post(
        b,
        "/mine/",
        &[PLAIN],
        format!("X-OCCI-Location: {b}/compute/a\nX-OCCI-Location: {b}/compute/b").as_bytes(),
    );
    assert_eq!(tagged.status, 200, "{}", tagged.body);
    assert_eq!(get(b, "/mine/", &[]).body.lines().count(), 2);
    assert!(get(b, "/compute/a", &[]).body.contains("Category: mine;"));
    let replaced = request(
        b,
        "PUT",
        "/mine/",
        &[("Content-Type", "text/uri-list")],
        format!("{b}/compute/c\n").as_bytes(),
    );
    assert_eq!(replaced.status, 200);
    assert_eq!(
        get(b, "/mine/", &[]).body.trim(),
        format!("X-OCCI-Location: {b}/compute/c")
    );
    // An action on a collection: one result per entity, none rolled back.
    let results = post(b, "/compute/?action=start", &[], b"");
    assert_eq!(results.status, 200, "{}", results.body);
    assert_eq!(
        results
            .body
            .lines()
            .filter(|l| l.ends_with(" 200 OK"))
            .count(),
        4,
        "{}",
        results.body
    );
    let again = post(b, "/compute/?action=start", &[ACCEPT_JSON], b"").json();
    assert!(again["results"]
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["status"] == 400));
    assert_eq!(
        request(b, "DELETE", "/-/", &[PLAIN], tag.as_bytes()).status,
        200
    );
    assert!(!get(b, "/compute/c", &[]).body.contains("Category: mine;"));
    assert_eq!(get(b, "/mine/", &[]).status, 404);
    let provider = format!("Category: os_tpl; scheme=\"{INFRA}\"; class=\"mixin\"");
    assert_eq!(
        request(b, "DELETE", "/-/", &[PLAIN], provider.as_bytes()).status,
        403
    );
}

#[test]
fn the_error_policy() {
    let s = serve();
    let b = &s.base;
    let check = |a: Answer, status: u16, says: &str| {
        assert_eq!(a.status, status, "{}", a.body);
        assert!(
            a.body.to_lowercase().contains(says),
            "{status}: {:?} lacks {says:?}",
            a.body
        );
        assert_eq!(a.body.trim().lines().count(), 1, "one line: {:?}", a.body);
    };
    check(post(b, "/compute/", &[JSON], b"{nope"), 400, "not json");
    check(
        post(b, "/compute/", &[PLAIN], b"Category compute"),
        400,
        "expected name: value",
    );
    check(
        post(
            b,
            "/compute/",
            &[PLAIN],
            compute_plain("X-OCCI-Attribute: occi.compute.nope=1").as_bytes(),
        ),
        400,
        "unknown attribute",
    );
    check(
        post(
            b,
            "/compute/",
            &[PLAIN],
            compute_plain("X-OCCI-Attribute: occi.compute.cores=\"two\"").as_bytes(),
        ),
        400,
        "must be a number",
    );
    check(
        post(
            b,
            "/compute/",
            &[PLAIN],
            compute_plain("X-OCCI-Attribute: occi.compute.architecture=\"arm\"").as_bytes(),
        ),
        400,
        "x86|x64",
    );
    check(
        post(
            b,
            "/compute/",
            &[PLAIN],
            b"Category: zzz; scheme=\"http://no#\"; class=\"mixin\"",
        ),
        400,
        "unknown mixin",
    );
    check(
        post(
            b,
            "/storage/",
            &[PLAIN],
            format!("Category: storage; scheme=\"{INFRA}\"; class=\"kind\"").as_bytes(),
        ),
        400,
        "required",
    );
    check(
        post(
            b,
            "/compute/",
            &[PLAIN],
            compute_plain("X-OCCI-Attribute: occi.compute.state=\"active\"").as_bytes(),
        ),
        403,
        "set by the server",
    );
    check(get(b, "/nowhere/", &[]), 404, "nothing at");
    check(get(b, "/compute/missing", &[]), 404, "no entity");
    let put_kind = request(b, "PUT", "/compute/", &[PLAIN], b"");
    assert_eq!(put_kind.header("allow"), Some("GET, HEAD, POST, DELETE"));
    check(put_kind, 405, "takes");
    check(
        get(b, "/compute/", &[("Accept", "image/png")]),
        406,
        "cannot answer",
    );
    let dup = compute_plain("X-OCCI-Attribute: occi.core.id=\"same\"");
    assert_eq!(post(b, "/compute/", &[PLAIN], dup.as_bytes()).status, 201);
    check(
        post(b, "/compute/", &[PLAIN], dup.as_bytes()),
        409,
        "already exists",
    );
    check(
        post(b, "/compute/", &[PLAIN], &vec![b'x'; 2 << 20]),
        413,
        "over",
    );
    let many: String = (0..300)
        .map(|i| format!("X-OCCI-Attribute: a{i}=1\n"))
        .collect();
    check(
        post(b, "/compute/", &[PLAIN], many.as_bytes()),
        413,
        "values in one request",
    );
    check(
        post(
            b,
            "/compute/",
            &[("Content-Type", "application/xml")],
            b"<x/>",
        ),
        415,
        "cannot read",
    );
    let big = "x".repeat(70_000);
    check(get(b, "/compute/", &[("X-Padding", &big)]), 413, "headers");
    check(
        get(b, "/-/", &[("User-Agent", "client/1 OCCI/1.3")]),
        501,
        "not supported",
    );
    check(
        post(b, "/compute/same?action=fly", &[], b""),
        400,
        "not offered",
    );
    // In JSON when asked.
    let j = get(b, "/compute/missing", &[ACCEPT_JSON]);
    assert_eq!(j.status, 404);
    assert_eq!(j.json()["status"], 404);
    // Nothing half-written: the refused creates left one entity.
    assert_eq!(get(b, "/compute/", &[]).body.lines().count(), 1);
}

fn md5_b64(body: &str) -> String {
    use base64::Engine;
    use md5::{Digest, Md5};
    base64::engine::general_purpose::STANDARD.encode(Md5::digest(body.as_bytes()))
}

#[test]
fn head_etags_and_304_on_every_kind_of_resource() {
    let s = serve();
    let b = &s.base;
    let body = compute_plain("X-OCCI-Attribute: occi.core.id=\"e\"");
    assert_eq!(post(b, "/compute/", &[PLAIN], body.as_bytes()).status, 201);
    let tag = "Category: t; scheme=\"http://me.example/tags#\"; class=\"mixin\"; location=\"/t/\"";
    assert_eq!(post(b, "/-/", &[PLAIN], tag.as_bytes()).status, 200);
    assert_eq!(
        post(
            b,
            "/t/",
            &[PLAIN],
            format!("X-OCCI-Location: {b}/compute/e").as_bytes()
        )
        .status,
        200
    );
    for path in ["/compute/e", "/compute/", "/t/", "/resource/", "/-/"] {
        for accept in ["text/plain", "text/occi", "application/occi+json"] {
            let h = [("Accept", accept)];
            let full = get(b, path, &h);
            let head = request(b, "HEAD", path, &h, b"");
            assert_eq!(head.status, 200, "{path}");
            assert!(head.body.is_empty());
            assert_eq!(
                head.header("content-md5"),
                Some(md5_b64(&full.body).as_str()),
                "{path} {accept}"
            );
            let etag = head.header("etag").unwrap().to_owned();
            assert_eq!(full.header("etag"), Some(etag.as_str()));
            let same = get(b, path, &[("Accept", accept), ("If-None-Match", &etag)]);
            assert_eq!(same.status, 304, "{path} {accept}");
            assert!(same.body.is_empty());
            assert_eq!(
                get(
                    b,
                    path,
                    &[("Accept", accept), ("If-None-Match", "\"other\"")]
                )
                .status,
                200
            );
        }
    }
    // A change to an entity changes its collections' tags, not their listing.
    let before = get(b, "/compute/", &[]);
    let tagged_before = get(b, "/t/", &[]);
    let entity_before = get(b, "/compute/e", &[]).header("etag").unwrap().to_owned();
    let change = request(
        b,
        "POST",
        "/compute/e",
        &[PLAIN],
        b"X-OCCI-Attribute: occi.compute.cores=8",
    );
    assert_eq!(change.status, 200);
    let after = get(b, "/compute/", &[]);
    assert_eq!(before.body, after.body);
    assert_ne!(before.header("etag"), after.header("etag"));
    let tagged_after = get(b, "/t/", &[]);
    assert_eq!(tagged_before.body, tagged_after.body);
    assert_ne!(tagged_before.header("etag"), tagged_after.header("etag"));
    assert_ne!(
        get(b, "/compute/e", &[]).header("etag").unwrap(),
        entity_before
    );
    let stale = get(
        b,
        "/compute/",
        &[("If-None-Match", before.header("etag").unwrap())],
    );
    assert_eq!(stale.status, 200);
}

/// Asserts a one-line 400 whose reason contains `says` (case kept).
fn refused(a: Answer, says: &str) {
    assert_eq!(a.status, 400, "{}", a.body);
    assert!(a.body.contains(says), "{:?} lacks {says:?}", a.body);
    assert_eq!(a.body.trim().lines().count(), 1, "one line: {:?}", a.body);
}

#[test]
fn dot_ids_are_refused_on_every_path_in() {
    let s = serve();
    let b = &s.base;
    let occi = [
        ("Content-Type", "text/occi"),
        (
            "Category",
            "compute; scheme=\"http://schemas.ogf.org/occi/infrastructure#\"; class=\"kind\"",
        ),
    ];
    for dot in [".", ".."] {
        let says = format!("the id \"{dot}\" cannot be used in a URL path");
        let plain = compute_plain(&format!("X-OCCI-Attribute: occi.core.id=\"{dot}\""));
        refused(post(b, "/compute/", &[PLAIN], plain.as_bytes()), &says);
        let id_header = format!("occi.core.id=\"{dot}\"");
        let mut headers = occi.to_vec();
        headers.push(("X-OCCI-Attribute", &id_header));
        refused(post(b, "/compute/", &headers, b""), &says);
        let flat = json!({"kind": format!("{INFRA}compute"), "id": dot});
        refused(
            post(b, "/compute/", &[JSON], flat.to_string().as_bytes()),
            &says,
        );
        let nested = json!({"resources": [{"kind": format!("{INFRA}compute"), "id": dot}]});
        refused(
            post(b, "/compute/", &[JSON], nested.to_string().as_bytes()),
            &says,
        );
        let path = format!("/compute/{dot}");
        refused(
            request(b, "PUT", &path, &[PLAIN], compute_plain("").as_bytes()),
            &says,
        );
        refused(request(b, "PUT", &path, &occi, b""), &says);
        assert_eq!(get(b, &path, &[]).status, 404);
    }
    assert_eq!(get(b, "/compute/", &[]).body.trim(), "", "nothing created");
    // Dots inside an id are fine.
    let fine = request(
        b,
        "PUT",
        "/compute/a.b",
        &[PLAIN],
        compute_plain("").as_bytes(),
    );
    assert_eq!(fine.status, 201, "{}", fine.body);
}

#[test]
fn terms_and_schemes_are_checked_and_no_category_line_is_forged() {
    let s = serve();
    let b = &s.base;
    const TAGS: &str = "http://me.example/tags#";
    // Client mixins at the query interface, in every rendering.
    let forged = "evil\nCategory: forged; scheme=\"http://f#\"; class=\"kind\"";
    let flat = json!({"mixins": [{"term": forged, "scheme": TAGS, "location": "/evil/"}]});
    refused(
        post(b, "/-/", &[JSON], flat.to_string().as_bytes()),
        "bad term \"evil\\nCategory: forged",
    );
    let nested = json!({"mixins": [{"term": forged, "scheme": TAGS, "related": [],
        "attributes": {}, "location": "/evil/"}]});
    refused(
        post(b, "/-/", &[JSON], nested.to_string().as_bytes()),
        "bad term",
    );
    let bad_scheme = json!({"mixins": [{"term": "ok", "scheme": "http://me.example/tags\"; class=\"kind#",
        "location": "/ok/"}]});
    refused(
        post(b, "/-/", &[JSON], bad_scheme.to_string().as_bytes()),
        "bad scheme",
    );
    let bad_applies = json!({"mixins": [{"term": "ok", "scheme": TAGS, "location": "/ok/",
        "applies": [format!("{INFRA}compute\nCategory: x")]}]});
    refused(
        post(b, "/-/", &[JSON], bad_applies.to_string().as_bytes()),
        "bad term",
    );
    let plain = format!(
        "Category: \"evil\\nCategory: forged\"; scheme=\"{TAGS}\"; class=\"mixin\"; location=\"/evil/\""
    );
    refused(post(b, "/-/", &[PLAIN], plain.as_bytes()), "bad term");
    let header = format!("ok; scheme=\"{TAGS}\\u000a\"; class=\"mixin\"; location=\"/ok/\"");
    refused(
        post(
            b,
            "/-/",
            &[("Content-Type", "text/occi"), ("Category", &header)],
            b"",
        ),
        "bad scheme",
    );
    let dotted_location =
        format!("Category: ok; scheme=\"{TAGS}\"; class=\"mixin\"; location=\"/ok/../\"");
    refused(
        post(b, "/-/", &[PLAIN], dotted_location.as_bytes()),
        "bad location",
    );
    // Category references of entities, in JSON and text.
    refused(
        post(
            b,
            "/compute/",
            &[JSON],
            json!({"kind": format!("{INFRA}comp ute")})
                .to_string()
                .as_bytes(),
        ),
        "bad term \"comp ute\"",
    );
    refused(
        post(
            b,
            "/compute/",
            &[JSON],
            json!({"resources": [{"kind": format!("{INFRA}compute"), "mixins": ["http://x\"y#m"]}]})
                .to_string()
                .as_bytes(),
        ),
        "bad scheme",
    );
    refused(
        post(
            b,
            "/compute/",
            &[PLAIN],
            compute_plain("Category: ubuntu; scheme=\"http://example.org/occi/os\"").as_bytes(),
        ),
        "bad scheme",
    );
    // A term with a dot, as servers define them, is taken.
    let dotted = format!("Category: v1.2; scheme=\"{TAGS}\"; class=\"mixin\"; location=\"/v1.2/\"");
    assert_eq!(post(b, "/-/", &[PLAIN], dotted.as_bytes()).status, 200);

    // The query interface: one Category line per category, nothing forged.
    let q = get(b, "/-/", &[ACCEPT_JSON]).json();
    let mut ids = Vec::new();
    for class in ["kinds", "mixins", "actions"] {
        for c in q[class].as_array().unwrap() {
            let id = rmbus::occi::TypeId::new(
                c["scheme"].as_str().unwrap(),
                c["term"].as_str().unwrap(),
            );
            assert!(id.check().is_ok(), "{id} fits GFD.185 §5.5");
            ids.push(id);
        }
    }
    let text = get(b, "/-/", &[]).body;
    assert!(!text.contains("forged"), "{text}");
    assert_eq!(text.lines().count(), ids.len(), "{text}");
    assert!(text.lines().all(|l| l.starts_with("Category: ")), "{text}");
    assert!(text.contains("Category: v1.2; scheme="), "{text}");
    let occi = get(b, "/-/", &[("Accept", "text/occi")]);
    assert_eq!(occi.all("category").len(), ids.len());
    assert!(occi.headers.iter().all(|(_, v)| !v.contains("forged")));
}

#[test]
fn json_integers_beyond_64_bits_are_refused_not_rounded() {
    let s = serve();
    let b = &s.base;
    let says = "the integer 12345678901234567890123 does not fit in 64 bits";
    let flat = format!(
        r#"{{"kind":"{INFRA}compute","id":"wide","attributes":{{"occi.compute.memory":12345678901234567890123}}}}"#
    );
    refused(post(b, "/compute/", &[JSON], flat.as_bytes()), says);
    let nested = format!(
        r#"{{"resources":[{{"kind":"{INFRA}compute","id":"wide","attributes":{{"occi":{{"compute":{{"memory":12345678901234567890123}}}}}}}}]}}"#
    );
    refused(post(b, "/compute/", &[JSON], nested.as_bytes()), says);
    refused(
        post(
            b,
            "/compute/",
            &[PLAIN],
            compute_plain("X-OCCI-Attribute: occi.compute.memory=12345678901234567890123")
                .as_bytes(),
        ),
        says,
    );
    refused(
        post(
            b,
            "/compute/",
            &[JSON],
            format!(r#"{{"kind":"{INFRA}compute","attributes":{{"occi.compute.memory":-9223372036854775809}}}}"#)
                .as_bytes(),
        ),
        "the integer -9223372036854775809 does not fit in 64 bits",
    );

    // 64 bits are kept exactly, and digits in strings are not numbers.
    let max = format!(
        r#"{{"kind":"{INFRA}compute","id":"big","title":"12345678901234567890123","attributes":{{"occi.compute.memory":18446744073709551615}}}}"#
    );
    let c = post(b, "/compute/", &[JSON, ACCEPT_JSON], max.as_bytes());
    assert_eq!(c.status, 201, "{}", c.body);
    let got = get(b, "/compute/big", &[ACCEPT_JSON]).json();
    let memory = &got["resources"][0]["attributes"]["occi"]["compute"]["memory"];
    assert_eq!(memory.as_u64(), Some(u64::MAX), "{got}");
    assert!(get(b, "/compute/big", &[])
        .body
        .contains("occi.compute.memory=18446744073709551615"));

    // Updates and action invocations are read the same way.
    let update = format!(
        r#"{{"kind":"{INFRA}compute","attributes":{{"occi.compute.memory":12345678901234567890123}}}}"#
    );
    refused(post(b, "/compute/big", &[JSON], update.as_bytes()), says);
    let action = br#"{"action":"http://schemas.ogf.org/occi/infrastructure/compute/action#start","attributes":{"n":12345678901234567890123}}"#;
    refused(post(b, "/compute/big?action=start", &[JSON], action), says);
    let after = get(b, "/compute/big", &[ACCEPT_JSON]).json();
    assert_eq!(after, got, "nothing changed");
}
