//! The narrow context through which the Guidelines sub-machines reach the
//! transport (in the manner of smoltcp's socket context): send reliably or
//! not, push an event, look up a peer, count. Nothing else of the transport
//! is visible to them.

use std::time::Instant;

use crate::wire::{Address, Command};

use super::super::reliable::RetransmitPolicy;
use super::super::transport::{Owner, Transport};
use super::super::{Delivery, Event, Limits, MsgId, SendError, Stats};

/// The transport, as a sub-machine sees it during one input at `now`.
pub(crate) struct Ctx<'a> {
    /// The time of the input being handled.
    pub(crate) now: Instant,
    transport: &'a mut Transport,
}

impl<'a> Ctx<'a> {
    pub(crate) fn new(transport: &'a mut Transport, now: Instant) -> Ctx<'a> {
        Ctx { now, transport }
    }

    /// Sends one command; a reliable one's outcome goes to the application.
    pub(crate) fn send(
        &mut self,
        dst: &Address,
        command: Command,
        delivery: Delivery,
    ) -> Result<MsgId, SendError> {
        self.transport.send(self.now, dst, vec![command], delivery)
    }

    /// Sends one command reliably to a known entity's complete address; its
    /// outcome goes to `owner`.
    pub(crate) fn send_owned(
        &mut self,
        dst: &Address,
        command: Command,
        owner: Owner,
    ) -> Result<MsgId, SendError> {
        self.transport.send_owned(self.now, dst, command, owner)
    }

    /// Sends one command to `to`, reliably if asked and `to` is a known
    /// entity (else unreliably); its outcome is nobody's business. Only an
    /// encoding failure is an error.
    pub(crate) fn send_quietly(
        &mut self,
        to: &Address,
        command: Command,
        reliable: bool,
    ) -> Result<(), SendError> {
        if reliable && self.transport.is_known(to) {
            match self.send_owned(to, command.clone(), Owner::Quiet) {
                Ok(_) => return Ok(()),
                Err(e @ SendError::Encode(_)) => return Err(e),
                Err(_) => {}
            }
        }
        self.send(to, command, Delivery::Unreliable).map(|_| ())
    }

    /// Queues an event for the application.
    pub(crate) fn push(&mut self, event: impl Into<Event>) {
        self.transport.push_event(event.into());
    }

    /// The complete address of the one known entity `dst` designates.
    pub(crate) fn unique_match(&self, dst: &Address) -> Result<Address, SendError> {
        self.transport.unique_match(dst)
    }

    /// True if `addr` is a known entity's complete address.
    pub(crate) fn is_known(&self, addr: &Address) -> bool {
        self.transport.is_known(addr)
    }

    /// The known entities that `dst` designates.
    pub(crate) fn known_matching(&self, dst: &Address) -> Vec<Address> {
        self.transport
            .matching(dst)
            .map(|p| p.address.clone())
            .collect()
    }

    /// Our own complete address.
    pub(crate) fn local(&self) -> &Address {
        self.transport.local_address()
    }

    /// The counters.
    pub(crate) fn stats(&mut self) -> &mut Stats {
        self.transport.stats_mut()
    }

    /// The retransmission policy (for T_anycast).
    pub(crate) fn policy(&self) -> RetransmitPolicy {
        *self.transport.policy()
    }

    /// The memory bounds.
    pub(crate) fn limits(&self) -> &Limits {
        self.transport.limits()
    }
}
