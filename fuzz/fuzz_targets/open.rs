//! Fuzzes the receive function (`auth::open`) and the parser, with a
//! parse/encode round-trip oracle. The body lives in the library
//! (`rmbus::fuzzing::open_target`) so that `tests/fuzz_corpus.rs` runs it over
//! the seed corpus on stable Rust.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    rmbus::fuzzing::open_target(data);
});
