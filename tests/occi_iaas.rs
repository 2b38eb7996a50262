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
    serve_with(|base| occi_iaas::server(base).unwrap())
}

/// Serves the server `make` builds for its base URL.
fn serve_with(make: impl FnOnce(&str) -> std::sync::Arc<rmbus::occi::Server>) -> Served {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let server = make(&base);
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

/// The path of an absolute URL of the served example.
fn path_of<'a>(s: &Served, url: &'a str) -> &'a str {
    url.strip_prefix(s.base.as_str()).unwrap()
}

/// Creates an entity from a text/plain body; its URL.
fn made(s: &Served, at: &str, body: &str) -> String {
    let a = post(&s.base, at, &[PLAIN], body.as_bytes());
    assert_eq!(a.status, 201, "{at}: {}", a.body);
    a.header("location").unwrap().to_owned()
}

fn kind_line(term: &str) -> String {
    format!("Category: {term}; scheme=\"{INFRA}\"; class=\"kind\"\n")
}

/// The `Link:` lines of a text/plain rendering that are not action links.
fn resource_links(body: &str) -> Vec<&str> {
    body.lines()
        .filter(|l| l.starts_with("Link:") && !l.contains("?action="))
        .collect()
}

#[test]
fn links_are_made_inline_and_on_their_own_shown_with_their_source_and_go_with_an_end() {
    let s = serve();
    let b = &s.base;
    let net = made(&s, "/network/", &kind_line("network"));
    let disk = made(
        &s,
        "/storage/",
        &format!(
            "{}X-OCCI-Attribute: occi.storage.size=10",
            kind_line("storage")
        ),
    );
    // A compute with an inline network interface (GFD.185's Link line).
    let vm = made(
        &s,
        "/compute/",
        &format!(
            "{}Link: <{net}>; rel=\"{INFRA}network\"; category=\"{INFRA}networkinterface\"",
            kind_line("compute")
        ),
    );
    let vm_path = path_of(&s, &vm).to_owned();
    let shown = get(b, &vm_path, &[]);
    let links = resource_links(&shown.body);
    assert_eq!(links.len(), 1, "{}", shown.body);
    let nic_line = links[0];
    assert!(
        nic_line.starts_with(&format!(
            "Link: <{net}>; rel=\"{INFRA}network\"; self=\"{b}/networkinterface/"
        )),
        "{nic_line}"
    );
    assert!(nic_line.contains(&format!("category=\"{INFRA}networkinterface\"")));
    assert!(
        nic_line.contains("occi.networkinterface.interface=\"eth0\""),
        "the server names the device: {nic_line}"
    );
    assert!(nic_line.contains("occi.networkinterface.state=\"active\""));
    let nic = nic_line
        .split("self=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap()
        .to_owned();
    let nic_path = path_of(&s, &nic).to_owned();

    // The link on its own: its ends as URLs, their kinds the server's.
    let alone = get(b, &nic_path, &[]);
    assert_eq!(alone.status, 200, "{}", alone.body);
    for want in [
        format!("Category: networkinterface; scheme=\"{INFRA}\"; class=\"kind\""),
        format!("X-OCCI-Attribute: occi.core.source=\"{vm}\""),
        format!("X-OCCI-Attribute: occi.core.target=\"{net}\""),
        format!("X-OCCI-Attribute: occi.core.target.kind=\"{INFRA}network\""),
        format!("X-OCCI-Attribute: occi.core.source.kind=\"{INFRA}compute\""),
    ] {
        assert!(alone.body.contains(&want), "{want} in {}", alone.body);
    }
    let j = get(b, &nic_path, &[ACCEPT_JSON]).json();
    assert_eq!(j["links"][0]["source"]["location"], json!(vm), "{j}");
    assert_eq!(
        j["links"][0]["target"],
        json!({"location": net, "kind": format!("{INFRA}network")})
    );

    // A second interface made at its kind's location, with the IP mixin.
    let second = post(
        b,
        "/networkinterface/",
        &[PLAIN],
        format!(
            "{}Category: ipnetworkinterface; scheme=\"http://schemas.ogf.org/occi/infrastructure/networkinterface#\"; class=\"mixin\"\n\
             X-OCCI-Attribute: occi.core.source=\"{vm}\"\n\
             X-OCCI-Attribute: occi.core.target=\"{net}\"\n\
             X-OCCI-Attribute: occi.networkinterface.address=\"192.168.0.5/24\"\n\
             X-OCCI-Attribute: occi.networkinterface.allocation=\"static\"",
            kind_line("networkinterface")
        )
        .as_bytes(),
    );
    assert_eq!(second.status, 201, "{}", second.body);
    let second = second.header("location").unwrap().to_owned();
    let second_shown = get(b, path_of(&s, &second), &[]).body;
    assert!(second_shown.contains("occi.networkinterface.interface=\"eth1\""));
    assert!(second_shown.contains("occi.networkinterface.address=\"192.168.0.5/24\""));
    assert_eq!(resource_links(&get(b, &vm_path, &[]).body).len(), 2);
    // Filters name ends as the server shows them.
    let to_net = format!("occi.core.target=\"{net}\"");
    let filtered = get(
        b,
        "/networkinterface/",
        &[("Content-Type", "text/occi"), ("X-OCCI-Attribute", &to_net)],
    );
    assert_eq!(filtered.body.lines().count(), 2, "{}", filtered.body);

    // Ends are checked: the kinds the link kind asks for, existing
    // resources of this server; a link has no links of its own.
    let link_to = |target: &str, kind: &str| {
        post(
            b,
            &format!("/{kind}/"),
            &[PLAIN],
            format!(
                "{}X-OCCI-Attribute: occi.core.source=\"{vm}\"\nX-OCCI-Attribute: occi.core.target=\"{target}\"\n{}",
                kind_line(kind),
                if kind == "storagelink" {
                    "X-OCCI-Attribute: occi.storagelink.deviceid=\"vdb\""
                } else {
                    ""
                }
            )
            .as_bytes(),
        )
    };
    for (target, kind, says) in [
        (
            disk.as_str(),
            "networkinterface",
            "needs a http://schemas.ogf.org/occi/infrastructure#network",
        ),
        (
            net.as_str(),
            "storagelink",
            "needs a http://schemas.ogf.org/occi/infrastructure#storage",
        ),
        (
            &format!("{b}/storage/nothing"),
            "storagelink",
            "there is no entity at",
        ),
        (second.as_str(), "storagelink", "is not a resource"),
        (
            "http://elsewhere.example/storage/1",
            "storagelink",
            "there is no entity at",
        ),
    ] {
        let a = link_to(target, kind);
        refused(a, says);
    }
    let no_target = post(
        b,
        "/link/",
        &[PLAIN],
        format!(
            "Category: link; scheme=\"http://schemas.ogf.org/occi/core#\"; class=\"kind\"\nX-OCCI-Attribute: occi.core.source=\"{vm}\""
        )
        .as_bytes(),
    );
    refused(no_target, "occi.core.target is required");
    let tag_before = get(b, "/compute/", &[]).header("etag").unwrap().to_owned();
    let lying = link_to(&disk, "storagelink");
    assert_ne!(
        get(b, "/compute/", &[]).header("etag").unwrap(),
        tag_before,
        "a link made elsewhere changes its source's collection's tag"
    );
    assert_eq!(lying.status, 201, "{}", lying.body);
    let storage_link = lying.header("location").unwrap().to_owned();
    // A plain core#link between any two resources.
    let plain = post(
        b,
        "/link/",
        &[PLAIN],
        format!(
            "Category: link; scheme=\"http://schemas.ogf.org/occi/core#\"; class=\"kind\"\nX-OCCI-Attribute: occi.core.source=\"{net}\"\nX-OCCI-Attribute: occi.core.target=\"{disk}\""
        )
        .as_bytes(),
    );
    assert_eq!(plain.status, 201, "{}", plain.body);
    let listed = get(b, "/link/", &[]).body;
    assert_eq!(
        listed.lines().count(),
        4,
        "every link, of every link kind: {listed}"
    );
    assert!(get(b, "/", &[]).body.contains(&storage_link));

    // The source's rendering in each form, put back as it is: accepted,
    // the links as they were.
    for (accept, content) in [(("Accept", "text/plain"), PLAIN), (ACCEPT_JSON, JSON)] {
        let echo = get(b, &vm_path, &[accept]);
        let put = request(b, "PUT", &vm_path, &[content, accept], echo.body.as_bytes());
        assert_eq!(put.status, 200, "{}: {}", content.1, put.body);
    }
    let echo = get(b, &vm_path, &[("Accept", "text/occi")]);
    let headers: Vec<(&str, &str)> = ["category", "link", "x-occi-attribute"]
        .iter()
        .flat_map(|h| echo.all(h).into_iter().map(move |v| (*h, v)))
        .collect();
    let mut with = vec![("Content-Type", "text/occi")];
    with.extend(headers.iter().map(|(h, v)| (*h, *v)));
    let put = request(b, "PUT", &vm_path, &with, b"");
    assert_eq!(put.status, 200, "text/occi: {}", put.body);
    let now = get(b, &vm_path, &[]).body;
    assert_eq!(resource_links(&now).len(), 3, "{now}");
    // A PUT with a new link is refused; a POST makes it.
    let another = format!(
        "{}Link: <{disk}>; category=\"{INFRA}storagelink\"; occi.storagelink.deviceid=\"vdc\"",
        kind_line("compute")
    );
    let put = request(b, "PUT", &vm_path, &[PLAIN], another.as_bytes());
    refused(put, "a PUT leaves the links");
    let added = post(b, &vm_path, &[PLAIN], another.as_bytes());
    assert_eq!(added.status, 200, "{}", added.body);
    assert_eq!(resource_links(&added.body).len(), 4, "{}", added.body);

    // JSON (GFD.226): a resource's links inline, and a link object.
    let j = post(
        b,
        "/compute/",
        &[JSON, ACCEPT_JSON],
        json!({
            "kind": format!("{INFRA}compute"),
            "links": [{
                "kind": format!("{INFRA}storagelink"),
                "target": {"location": disk, "kind": format!("{INFRA}storage")},
                "attributes": {"occi.storagelink.deviceid": "vda"}
            }]
        })
        .to_string()
        .as_bytes(),
    );
    assert_eq!(j.status, 201, "{}", j.body);
    let vm2 = j.header("location").unwrap().to_owned();
    let links = &j.json()["links"];
    assert_eq!(links.as_array().map(Vec::len), Some(1), "{}", j.body);
    assert_eq!(links[0]["source"]["location"], json!(vm2));
    assert_eq!(
        links[0]["attributes"]["occi.storagelink.deviceid"],
        json!("vda")
    );
    let wrong_kind = post(
        b,
        "/storagelink/",
        &[JSON],
        json!({"kind": format!("{INFRA}storagelink"), "source": {"location": vm2},
               "target": {"location": disk, "kind": format!("{INFRA}network")},
               "attributes": {"occi.storagelink.deviceid": "x"}})
        .to_string()
        .as_bytes(),
    );
    refused(wrong_kind, "occi.core.target.kind says");
    let collection = post(
        b,
        "/storagelink/",
        &[JSON],
        json!({"links": [{"kind": format!("{INFRA}storagelink"), "source": {"location": vm2},
               "target": {"location": disk}, "attributes": {"occi.storagelink.deviceid": "vdz"}}]})
        .to_string()
        .as_bytes(),
    );
    assert_eq!(collection.status, 201, "{}", collection.body);

    // Deleted on its own, a link leaves its source's rendering.
    assert_eq!(
        request(b, "DELETE", path_of(&s, &second), &[], b"").status,
        200
    );
    assert_eq!(resource_links(&get(b, &vm_path, &[]).body).len(), 3);
    // A resource takes its links with it, those from it and those to it.
    assert_eq!(
        request(b, "DELETE", path_of(&s, &net), &[], b"").status,
        200
    );
    assert_eq!(
        get(b, &nic_path, &[]).status,
        404,
        "the interface went with its network"
    );
    assert_eq!(resource_links(&get(b, &vm_path, &[]).body).len(), 2);
    assert_eq!(request(b, "DELETE", &vm_path, &[], b"").status, 200);
    assert_eq!(get(b, path_of(&s, &storage_link), &[]).status, 404);
    let left = get(b, "/link/", &[]).body;
    assert_eq!(left.lines().count(), 2, "vm2's two storage links: {left}");
    assert_eq!(
        request(b, "DELETE", path_of(&s, &disk), &[], b"").status,
        200
    );
    assert_eq!(
        get(b, "/link/", &[]).body.trim(),
        "",
        "none is left dangling"
    );
}

/// A text/plain action invocation on `url`; its answer.
fn act(s: &Served, url: &str, term: &str, parameters: &str) -> Answer {
    post(
        &s.base,
        &format!("{}?action={term}", path_of(s, url)),
        &[PLAIN],
        parameters.as_bytes(),
    )
}

#[test]
fn every_action_template_and_mixin_of_the_model() {
    let s = serve();
    let b = &s.base;
    // The model: GFD.224's, with what GFD.184 adds.
    let model = get(b, "/-/", &[]).body;
    for want in [
        "networkinterface;",
        "storagelink;",
        "ipnetwork;",
        "ipnetworkinterface;",
        "ssh_key;",
        "user_data;",
        "occi.compute.speed",
        "occi.compute.share",
        "compute/action#save",
        "storage/action#snapshot",
        "storage/action#resize",
        "occi.core.source{immutable required}",
    ] {
        assert!(model.contains(want), "{want} in /-/");
    }

    // Templates: a resource template presets what it says; one OS
    // template at a time, a new one replaces the old.
    let os = |term: &str| {
        format!("Category: {term}; scheme=\"http://example.org/occi/os#\"; class=\"mixin\"\n")
    };
    let small = "Category: small; scheme=\"http://example.org/occi/resource#\"; class=\"mixin\"\n";
    let vm = made(
        &s,
        "/compute/",
        &format!(
            "{}{}{small}Category: user_data; scheme=\"http://schemas.ogf.org/occi/infrastructure/compute#\"; class=\"mixin\"\n\
             X-OCCI-Attribute: occi.compute.userdata=\"#!/bin/sh\"",
            kind_line("compute"),
            os("ubuntu")
        ),
    );
    let vm_path = path_of(&s, &vm).to_owned();
    let shown = get(b, &vm_path, &[]).body;
    assert!(shown.contains("occi.compute.cores=2"), "{shown}");
    assert!(shown.contains("occi.compute.memory=4"), "{shown}");
    let two = post(
        b,
        "/compute/",
        &[PLAIN],
        format!("{}{}{}", kind_line("compute"), os("ubuntu"), os("debian")).as_bytes(),
    );
    refused(two, "one os_tpl at a time");
    let swapped = post(b, &vm_path, &[PLAIN], os("debian").as_bytes());
    assert_eq!(swapped.status, 200, "{}", swapped.body);
    assert!(
        swapped.body.contains("debian;") && !swapped.body.contains("ubuntu;"),
        "{}",
        swapped.body
    );
    // Tagging through a template's collection is an update too: the new
    // template replaces the old.
    let tagged = post(
        b,
        "/os_tpl/ubuntu/",
        &[("Content-Type", "text/uri-list")],
        format!("{vm}\n").as_bytes(),
    );
    assert_eq!(tagged.status, 200, "{}", tagged.body);
    let now = get(b, &vm_path, &[]).body;
    assert!(now.contains("ubuntu;") && !now.contains("debian;"), "{now}");
    let changed = post(
        b,
        &vm_path,
        &[PLAIN],
        b"X-OCCI-Attribute: occi.compute.userdata=\"#!/bin/false\"",
    );
    assert_eq!(
        changed.status, 403,
        "user data is given once: {}",
        changed.body
    );
    let keyless = post(
        b,
        "/compute/",
        &[PLAIN],
        format!(
            "{}Category: ssh_key; scheme=\"http://schemas.ogf.org/occi/infrastructure/credentials#\"; class=\"mixin\"",
            kind_line("compute")
        )
        .as_bytes(),
    );
    refused(keyless, "occi.credentials.ssh.publickey is required");

    // Every compute action, with its parameters.
    let state = |url: &str, attr: &str| -> String {
        let j = get(b, path_of(&s, url), &[ACCEPT_JSON]).json();
        let a = &j["resources"][0]["attributes"];
        let (parent, leaf) = attr.rsplit_once('.').unwrap();
        let mut at = a;
        for part in parent.split('.') {
            at = &at[part];
        }
        at[leaf].as_str().unwrap_or_default().to_owned()
    };
    let c = "occi.compute.state";
    for (term, parameters, after) in [
        ("start", "", "active"),
        (
            "suspend",
            "X-OCCI-Attribute: method=\"hibernate\"",
            "suspended",
        ),
        ("start", "", "active"),
        (
            "save",
            "X-OCCI-Attribute: method=\"hot\"\nX-OCCI-Attribute: name=\"golden\"",
            "active",
        ),
        ("restart", "X-OCCI-Attribute: method=\"warm\"", "active"),
        ("stop", "X-OCCI-Attribute: method=\"acpioff\"", "inactive"),
    ] {
        let a = act(&s, &vm, term, parameters);
        assert_eq!(a.status, 200, "{term}: {}", a.body);
        assert_eq!(state(&vm, c), after, "after {term}");
    }
    assert!(get(b, &vm_path, &[])
        .body
        .contains("occi.compute.state.message=\"saved as golden\""));
    let bad_method = act(&s, &vm, "stop", "X-OCCI-Attribute: method=\"yank\"");
    assert_eq!(bad_method.status, 400);
    assert_eq!(
        act(&s, &vm, "save", "").status,
        400,
        "an inactive compute has nothing running to save"
    );

    // Every storage action, OCCI 1.1's among them.
    let disk = made(
        &s,
        "/storage/",
        &format!(
            "{}X-OCCI-Attribute: occi.storage.size=10",
            kind_line("storage")
        ),
    );
    let st = "occi.storage.state";
    assert_eq!(
        act(&s, &disk, "backup", "").status,
        400,
        "offline storage is not backed up"
    );
    for (term, parameters, after) in [
        ("online", "", "online"),
        ("backup", "", "online"),
        ("snapshot", "", "online"),
        ("resize", "X-OCCI-Attribute: size=20", "online"),
        ("offline", "", "offline"),
    ] {
        let a = act(&s, &disk, term, parameters);
        assert_eq!(a.status, 200, "{term}: {}", a.body);
        assert_eq!(state(&disk, st), after, "after {term}");
    }
    assert!(get(b, path_of(&s, &disk), &[])
        .body
        .contains("occi.storage.size=20"));
    assert_eq!(
        act(&s, &disk, "resize", "").status,
        400,
        "resize needs its size"
    );

    // Network actions, and the IP network mixin.
    let net = made(
        &s,
        "/network/",
        &format!(
            "{}Category: ipnetwork; scheme=\"http://schemas.ogf.org/occi/infrastructure/network#\"; class=\"mixin\"\n\
             X-OCCI-Attribute: occi.network.address=\"10.0.0.0/24\"\nX-OCCI-Attribute: occi.network.allocation=\"dynamic\"",
            kind_line("network")
        ),
    );
    assert!(get(b, path_of(&s, &net), &[])
        .body
        .contains("occi.network.address=\"10.0.0.0/24\""));
    for (term, after) in [("up", "active"), ("down", "inactive")] {
        assert_eq!(act(&s, &net, term, "").status, 200);
        assert_eq!(state(&net, "occi.network.state"), after);
    }
    assert_eq!(
        get(b, "/ipnetwork/", &[]).body.trim(),
        format!("X-OCCI-Location: {net}")
    );
}

#[test]
fn links_take_actions_and_mixins_and_read_back_in_every_rendering() {
    use rmbus::occi::{AttrType, Attribute, Category, MemoryEntities, Server};
    const X: &str = "http://example.org/x#";
    let s = serve_with(|base| {
        let host = Category::kind(X, "host", "Host", "/host/");
        let ping = Category::action("http://example.org/x/cable/action#", "ping", "Ping");
        let cable = Category::link(X, "cable", "Cable", "/cable/")
            .between(&host, &host)
            .attribute(Attribute::new("x.cable.metres", AttrType::Number))
            .attribute(
                Attribute::new("x.cable.pings", AttrType::Number)
                    .immutable()
                    .default(0),
            )
            .with_action(&ping);
        let shielded = Category::mixin(X, "shielded", "Shielded", "/shielded/")
            .applies_to(&cable)
            .attribute(Attribute::new("x.shield", AttrType::String));
        Server::builder(base, std::sync::Arc::new(MemoryEntities::new()))
            .category(host)
            .category(cable)
            .category(shielded)
            .action(ping, |call: rmbus::occi::ActionCall| async move {
                let mut e = call.entity;
                let n = e
                    .attributes
                    .get("x.cable.pings")
                    .and_then(|v| v.as_u64())
                    .unwrap_or(0);
                e.attributes.insert("x.cable.pings".into(), json!(n + 1));
                Ok(e)
            })
            .build()
            .unwrap()
    });
    let b = &s.base;
    let host = "Category: host; scheme=\"http://example.org/x#\"; class=\"kind\"\n";
    let a = made(&s, "/host/", host);
    let z = made(&s, "/host/", host);
    let cable = made(
        &s,
        "/cable/",
        &format!(
            "Category: cable; scheme=\"{X}\"; class=\"kind\"\n\
             Category: shielded; scheme=\"{X}\"; class=\"mixin\"\n\
             X-OCCI-Attribute: occi.core.source=\"{a}\"\nX-OCCI-Attribute: occi.core.target=\"{z}\"\n\
             X-OCCI-Attribute: x.cable.metres=3\nX-OCCI-Attribute: x.shield=\"foil\""
        ),
    );
    let cable_path = path_of(&s, &cable).to_owned();
    // Its action, offered on its rendering and run.
    let shown = get(b, &cable_path, &[]).body;
    assert!(
        shown.contains(&format!("Link: <{cable}?action=ping>")),
        "{shown}"
    );
    let pinged = post(b, &format!("{cable_path}?action=ping"), &[], b"");
    assert_eq!(pinged.status, 200, "{}", pinged.body);
    assert!(pinged.body.contains("x.cable.pings=1"), "{}", pinged.body);
    assert_eq!(
        get(b, "/shielded/", &[]).body.trim(),
        format!("X-OCCI-Location: {cable}")
    );
    // Shown with its source, with its mixin among its categories.
    let from = get(b, path_of(&s, &a), &[]).body;
    assert!(
        from.contains(&format!("category=\"{X}cable {X}shielded\"")),
        "{from}"
    );
    assert!(
        resource_links(&get(b, path_of(&s, &z), &[]).body).is_empty(),
        "a target does not show it"
    );
    // Every rendering of the link, and of its source, reads back to the
    // same entity.
    let before = get(b, &cable_path, &[ACCEPT_JSON]).json();
    for (accept, content) in [(("Accept", "text/plain"), PLAIN), (ACCEPT_JSON, JSON)] {
        for at in [cable_path.as_str(), path_of(&s, &a)] {
            let echo = get(b, at, &[accept]);
            let put = request(b, "PUT", at, &[content, accept], echo.body.as_bytes());
            assert_eq!(put.status, 200, "{at} in {}: {}", content.1, put.body);
        }
    }
    let mut after = get(b, &cable_path, &[ACCEPT_JSON]).json();
    assert_eq!(
        after["links"][0]["attributes"],
        before["links"][0]["attributes"]
    );
    assert_eq!(after["links"][0]["mixins"], before["links"][0]["mixins"]);
    // GFD.226's flat link object, as a create answers it, reads back too.
    let flat = post(
        b,
        "/cable/",
        &[JSON, ACCEPT_JSON],
        json!({"kind": format!("{X}cable"), "source": {"location": a}, "target": {"location": z}})
            .to_string()
            .as_bytes(),
    );
    assert_eq!(flat.status, 201, "{}", flat.body);
    let flat_path = path_of(&s, flat.header("location").unwrap()).to_owned();
    let put = request(b, "PUT", &flat_path, &[JSON], flat.body.as_bytes());
    assert_eq!(put.status, 200, "{}", put.body);
    // Its ends are kept: a change is refused.
    after["links"][0]["target"] = json!({"location": a});
    let moved = request(
        b,
        "PUT",
        &cable_path,
        &[JSON],
        json!({"links": [after["links"][0].clone()]})
            .to_string()
            .as_bytes(),
    );
    assert_eq!(moved.status, 403, "{}", moved.body);
    assert!(
        moved.body.contains("occi.core.target is immutable"),
        "{}",
        moved.body
    );
    // GFD.226's collection of links sent to a resource says what to do.
    let misplaced = post(
        b,
        path_of(&s, &a),
        &[JSON],
        json!({"links": [{"kind": format!("{X}cable"), "target": {"location": z}}]})
            .to_string()
            .as_bytes(),
    );
    refused(misplaced, "make links at their kind's location");
    // A link cannot have links of its own.
    let nested = post(b, &cable_path, &[PLAIN], format!("Link: <{a}>").as_bytes());
    assert_eq!(nested.status, 400, "{}", nested.body);
}

#[test]
fn kept_listings_and_renderings_follow_every_change_of_their_store() {
    let s = serve();
    let b = &s.base;
    let first = get(b, "/compute/", &[]);
    let again = get(b, "/compute/", &[]);
    assert_eq!(
        (first.body.as_str(), first.header("etag")),
        (again.body.as_str(), again.header("etag"))
    );
    let vm = made(&s, "/compute/", &kind_line("compute"));
    let listed = get(b, "/compute/", &[]);
    assert_eq!(listed.body.trim(), format!("X-OCCI-Location: {vm}"));
    let occi_list = [("Accept", "text/occi")];
    get(b, "/compute/", &occi_list);
    assert_eq!(
        get(b, "/compute/", &occi_list).header("x-occi-location"),
        Some(vm.as_str()),
        "a kept text/occi listing keeps its head"
    );
    // So is an entity's rendering, until it changes, in every rendering:
    // text/occi's is in the head, and its tag covers it.
    let occi = [("Accept", "text/occi")];
    let first_occi = get(b, path_of(&s, &vm), &occi);
    let kept_occi = get(b, path_of(&s, &vm), &occi);
    assert!(
        kept_occi
            .all("x-occi-attribute")
            .iter()
            .any(|v| v.contains("occi.compute.state=\"inactive\"")),
        "{:?}",
        kept_occi.all("x-occi-attribute")
    );
    assert_eq!(kept_occi.all("category"), first_occi.all("category"));
    let other = made(&s, "/compute/", &kind_line("compute"));
    assert_ne!(
        get(b, path_of(&s, &other), &occi).header("etag"),
        kept_occi.header("etag"),
        "two entities rendered in text/occi have different tags"
    );
    assert_eq!(
        request(b, "DELETE", path_of(&s, &other), &[], b"").status,
        200
    );
    let shown = get(b, path_of(&s, &vm), &[]);
    assert!(shown.body.contains("occi.compute.state=\"inactive\""));
    assert_eq!(get(b, path_of(&s, &vm), &[]).body, shown.body);
    // A change the URLs do not show changes the tag all the same.
    assert_eq!(act(&s, &vm, "start", "").status, 200);
    let after = get(b, path_of(&s, &vm), &[]);
    assert!(
        after.body.contains("occi.compute.state=\"active\""),
        "{}",
        after.body
    );
    assert_ne!(after.header("etag"), shown.header("etag"));
    let started = get(b, "/compute/", &[]);
    assert_eq!(started.body, listed.body);
    assert_ne!(started.header("etag"), listed.header("etag"));
    let tag = started.header("etag").unwrap().to_owned();
    let unchanged = get(b, "/compute/", &[("If-None-Match", &tag)]);
    assert_eq!(
        unchanged.status, 304,
        "a kept listing answers If-None-Match"
    );
    // Pages are kept apart.
    let page = get(b, "/compute/?page=2&number=1", &[]);
    assert_eq!(page.body.trim(), "");
    assert_eq!(request(b, "DELETE", path_of(&s, &vm), &[], b"").status, 200);
    assert_eq!(get(b, "/compute/", &[]).body.trim(), "");
}
