//! The runtime: sockets, an event loop and a thread around the protocol core
//! (feature `runtime`). The only part of the crate that touches sockets,
//! clocks and threads.
//!
//! - [`Bus`]: an entity on real sockets, driven by your event loop (it is a
//!   mio source, and exposes a file descriptor and its next deadline).
//! - [`Host`]: many entities on one set of sockets and one loop, added and
//!   removed at run time ([`Bus`] is its one-entity case).
//! - [`spawn`] / [`spawn_with_callbacks`]: the entity on a background thread,
//!   with a cloneable [`Handle`] and a channel of events or pyMbus-style
//!   callbacks.
//! - [`spawn_members`] (with feature `sqlite`): CMBS members and a plain
//!   sender hosted on a thread of their own, sharing one directory and one
//!   store, with a cloneable [`MembersHandle`].
//! - [`socket`]: how the sockets are set up for each scope.
//!
//! Join a bus and send, from any thread:
//!
//! ```no_run
//! use rmbus::config::file;
//! use rmbus::proto::Delivery;
//! use rmbus::runtime::spawn;
//! use rmbus::wire::{Address, Command, Value};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let config = file::load(&file::locate(None)?)?; // $MBUS, else ~/.mbus
//! let (handle, _events) = spawn(&config, &Address::parse("(app:myapp module:ui)")?)?;
//! let everyone = Address::empty();
//! let hello = Command::new("myapp.hello", vec![Value::string("hi")]);
//! handle.with_endpoint(move |ep, now| ep.send(now, &everyone, vec![hello], Delivery::Unreliable))??;
//! handle.close(); // leave: say bye
//! # Ok(())
//! # }
//! ```
//!
//! None of them mirrors the protocol core: [`Bus::with_endpoint`],
//! [`EntityMut::with_endpoint`] and [`Handle::with_endpoint`] run a closure on
//! the [`crate::proto::Endpoint`] (its methods and its views `rpc()`,
//! `properties()`, `transactions()`, `services()`) and send what it produced.
//! What they add is what needs a runtime: request handlers and call
//! callbacks that run on the driving thread ([`Handled`]).

mod bus;
mod closures;
mod echo_filter;
mod error;
mod host;
#[cfg(feature = "sqlite")]
mod members;
pub mod socket;
mod thread;

use std::net::IpAddr;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::wire::Address;

pub use bus::Bus;
pub use closures::{Handled, Handler};
pub use error::{BindError, HandleError};
pub use host::{EntityId, EntityMut, Host};
#[cfg(feature = "sqlite")]
pub use members::{
    spawn_members, ExecHandler, Learned, MembersError, MembersEvent, MembersHandle, MembersOptions,
    MembersSpawnError, LEARN_ASK_EVERY,
};
pub use thread::{
    spawn, spawn_with_callbacks, Callbacks, Handle, WeakHandle, EVENT_CHANNEL_CAPACITY,
};

/// `address`, with an `id` element `<pid>-<n>@<interface address>` added if it
/// has none (RFC 3259 §4.1): `n` counts this process's entities from 1.
pub fn entity_address(address: &Address, interface: IpAddr) -> Address {
    static COUNTER: AtomicU32 = AtomicU32::new(1);
    if address.id().is_some() {
        return address.clone();
    }
    let n = COUNTER.fetch_add(1, Ordering::Relaxed) % 100_000;
    let mut full = address.clone();
    // The pid has at most 10 digits, n at most 5, and an IP address is printable
    // ASCII without spaces or parentheses: the element is always valid.
    if full
        .push("id", &format!("{}-{n}@{interface}", std::process::id()))
        .is_err()
    {
        tracing::warn!("could not add an id element to {address}");
    }
    full
}
