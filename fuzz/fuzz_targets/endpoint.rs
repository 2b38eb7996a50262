//! Fuzzes the protocol core: scripts of signed and forged datagrams, time
//! passing and application actions against one endpoint with calls,
//! transactions, properties and a service open. The body lives in the library
//! (`rmbus::fuzzing::endpoint_target`) so that `tests/fuzz_corpus.rs` runs it
//! over the seed corpus on stable Rust.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    rmbus::fuzzing::endpoint_target(data);
});
