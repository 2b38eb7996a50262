//! Every example runs to its end and succeeds. Their code is compiled into
//! this test (so it is always the current code); each `main` returns an error
//! when what it demonstrates does not happen. They use private host-local
//! buses on free ports.

#[path = "../examples/callbacks.rs"]
mod callbacks;
#[path = "../examples/cmbs_layers.rs"]
mod cmbs_layers;
#[path = "../examples/datagram.rs"]
mod datagram;
#[path = "../examples/mio_loop.rs"]
mod mio_loop;
#[path = "../examples/poll_loop.rs"]
mod poll_loop;
#[path = "../examples/rendezvous.rs"]
mod rendezvous;
#[path = "../examples/rpc_service.rs"]
mod rpc_service;

#[test]
fn datagram_example() {
    datagram::main().unwrap();
}

#[test]
fn poll_loop_example() {
    poll_loop::main().unwrap();
}

#[test]
fn mio_loop_example() {
    mio_loop::main().unwrap();
}

#[test]
fn callbacks_example() {
    callbacks::main().unwrap();
}

#[test]
fn rendezvous_example() {
    rendezvous::main().unwrap();
}

#[test]
fn rpc_service_example() {
    rpc_service::main().unwrap();
}

#[test]
fn cmbs_layers_example() {
    cmbs_layers::main().unwrap();
}
