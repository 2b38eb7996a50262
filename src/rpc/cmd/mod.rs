//! The Guidelines' message shapes as typed commands, one type per shape with
//! `from_command` (or `from_request` for what travels inside an RPC
//! request's ARGS) and `into_command`, each with its `# Format`:
//!
//! | shape | type | Guidelines |
//! |---|---|---|
//! | `<name> (META ARGS)` | [`RpcRequest`] | §5.2.1 |
//! | `<op>.return (RMETA (APPSTATUS RETVALS))` | [`RpcReturn`] | §5.2.2 |
//! | `<op>.standby (META)` | [`Standby`] | §5.2.5 |
//! | `<name> ((("ID" tid)) ARGS)` | [`TxnBegin`] | §5.3 |
//! | `<name>.commit` / `.cancel` | [`TxnControl`] | §5.3 |
//! | `<name>.ack` / `.completed` | [`TxnReply`] | §5.3 |
//! | `P.get`, `.set`, `.watch`, `.unwatch` | [`PropertyCall`] | §5.4 |
//! | `mbus.status` | [`StatusNotice`] | §5.7 |
//! | `mbus.register`, `.deregister`, `.get-registered` | [`Registration`] | §6.1 |
//! | `mbus.registered` | [`Registered`] | §6.1 |
//!
//! A command of another shape is [`crate::wire::ShapeError::Other`]; one of
//! this shape with arguments that do not fit is `Malformed`, naming the
//! problem and, where it could be read, the ID. The optional argument lists of
//! §3.2.1 are read by [`super::split_optional_args`].

mod property;
mod registration;
mod request;
mod ret;
mod standby;
mod status;
mod txn_begin;
mod txn_control;
mod txn_reply;

pub use property::{PropertyCall, PropertyVerb};
pub use registration::{Registered, Registration};
pub use request::RpcRequest;
pub use ret::RpcReturn;
pub use standby::Standby;
pub use status::StatusNotice;
pub use txn_begin::TxnBegin;
pub use txn_control::{ControlVerb, TxnControl};
pub use txn_reply::{ReplyVerb, TxnReply, TxnStatus};

#[cfg(test)]
pub(crate) mod tests {
    use crate::wire::{Command, Value};

    /// `name (args…)` from Mbus text.
    pub(crate) fn cmd(text: &str) -> Command {
        let (name, args) = text.split_once(' ').unwrap();
        let Value::List(args) = Value::parse(args).unwrap() else {
            panic!("{text}")
        };
        Command::new(name, args)
    }
}
