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
