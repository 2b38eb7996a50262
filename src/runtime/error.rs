//! Why the runtime could not join the bus, or could not reach the bus thread.

use std::io;

use crate::auth::KeyError;
use crate::proto::{SendError, SetupError};

/// Why [`super::Bus::bind`], [`super::Host::bind`], [`super::Host::add`] or
/// [`super::spawn`] failed.
#[derive(thiserror::Error)]
#[non_exhaustive]
pub enum BindError {
    /// The sockets could not be opened or set up (a port in use, no such
    /// interface, no default route for LINKLOCAL, …).
    #[error("cannot open the bus sockets: {0}")]
    Io(#[from] io::Error),
    /// The configuration's keys are not usable.
    #[error("the configuration's keys: {0}")]
    Keys(#[from] KeyError),
    /// The entity could not be created (its address).
    #[error(transparent)]
    Setup(#[from] SetupError),
}

/// As its sentence (what `fn main() -> Result<(), Box<dyn Error>>`
/// prints).
impl std::fmt::Debug for BindError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

/// Why a [`super::Handle`] could not do what it was asked.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum HandleError {
    /// The handle was used on its own bus thread, from a callback: it would
    /// wait for itself. The callback's `&mut Bus` does the same work.
    #[error("a bus handle was used on its own bus thread; use the Bus the callback was given")]
    OnBusThread,
    /// The bus has been closed (the thread has ended).
    #[error("the bus is closed")]
    Closed,
    /// The bus refused to send (for [`super::Handle::call`]).
    #[error(transparent)]
    Send(#[from] SendError),
}
