//! Runs the fuzz target's body over its seed corpus, so that every CI run
//! exercises it on stable Rust (the target itself is built by `.ci/run`).

use std::fs;
use std::path::Path;

#[test]
fn fuzz_target_accepts_its_seed_corpus() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/open");
    let mut inputs = 0;
    let mut opened = 0;
    let keys = rmbus::auth::Keys::md5_noencr(b"123156189112").unwrap();
    for entry in fs::read_dir(&dir).unwrap() {
        let data = fs::read(entry.unwrap().path()).unwrap();
        rmbus::fuzzing::open_target(&data);
        inputs += 1;
        opened += usize::from(rmbus::auth::open(&data, &keys).is_ok());
    }
    assert!(
        inputs >= 10,
        "the seed corpus in {} is missing",
        dir.display()
    );
    assert!(
        opened >= 5,
        "the corpus should hold valid datagrams, only {opened} opened"
    );
    assert!(
        opened < inputs,
        "the corpus should hold rejected datagrams too"
    );
}

#[test]
fn endpoint_target_runs_its_seed_corpus_through_the_state_machines() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/endpoint");
    let mut total = rmbus::fuzzing::ScriptRun::default();
    let mut scripts = 0;
    for entry in fs::read_dir(&dir).unwrap() {
        let data = fs::read(entry.unwrap().path()).unwrap();
        let run = rmbus::fuzzing::endpoint_target(&data);
        scripts += 1;
        total.requests += run.requests;
        total.returned += run.returned;
        total.rejected += run.rejected;
        total.sent += run.sent;
    }
    assert!(
        scripts >= 10,
        "the seed corpus in {} is missing",
        dir.display()
    );
    // The seeds reach past authentication and parsing into the RPC layer,
    // both as callee and as caller, and some are refused.
    assert!(total.requests >= 2, "{total:?}");
    assert!(total.returned >= 1, "{total:?}");
    assert!(total.rejected >= 2, "{total:?}");
    assert!(total.sent > 0, "{total:?}");
    // An empty script and a truncated record are fine too.
    rmbus::fuzzing::endpoint_target(&[]);
    rmbus::fuzzing::endpoint_target(&[0, 0xff, 0xff, b'x']);
}
