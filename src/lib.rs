//! rmbus: the local Message Bus (Mbus, RFC 3259) for Rust.
//!
//! Mbus is a group-communication bus over IP multicast: applications on one host
//! (or one link) join a group, address each other by sets of `tag:value` elements,
//! and exchange authenticated text messages, optionally reliably.
//!
//! This crate is layered; each layer only uses the ones above it in this list:
//!
//! - [`wire`]: the message model ([`wire::Message`], [`wire::Address`],
//!   [`wire::Value`]), a hand-written parser that never panics and reports the byte
//!   offset and grammar rule of an error, the canonical encoder (RFC 3259 §2–§5),
//!   and the one rule for command-name prefixes ([`wire::is_under`]).
//! - [`auth`]: HMAC-MD5-96 / HMAC-SHA1-96 and the ciphers (DES-CBC, AES-128-CBC,
//!   3DES-CBC); [`auth::seal`] turns a message into a datagram and [`auth::open`]
//!   turns a datagram into a message or a typed [`auth::Rejection`] (RFC 3259 §11).
//! - [`config`]: the `[MBUS]` configuration file: a pure parser and writer, and a
//!   loader that finds, locks, permission-checks and creates the file (RFC 3259 §12).
//! - [`rpc`]: the vocabulary of the Mbus Guidelines (draft-ietf-mmusic-mbus-guidelines-00):
//!   every Guidelines message shape as a typed command ([`rpc::cmd`]), the values
//!   they carry, and what the application sees of calls, requests, transactions
//!   and properties (ids, outcomes, events). Pure data.
//! - [`proto`]: the sans-I/O protocol core, [`proto::Endpoint`]: the RFC 3259
//!   transport (reliable delivery, the entity table and hello timing, the
//!   `mbus.*` commands as typed commands in [`proto::cmd`]; RFC 3259 §6–§10) and
//!   the Guidelines layer's state machines as sub-machines of it, reached through
//!   the views `rpc()`, `properties()`, `transactions()` and `services()`, and
//!   [`proto::Entities`], the entities of one host over what they share (the
//!   entity table, the replay guard), with datagrams routed by an index of
//!   their addresses. Every input carries `now`; output is pulled.
//! - [`cmbs`]: CMBS (Cloud Message Brokering Service) members and messages on
//!   the bus: the member, the directory, the five delivery layers, topic
//!   matching, reports, held messages, [`cmbs::Site`], a host's
//!   participants over [`proto::Entities`] with one directory, and
//!   [`cmbs::Bridge`], one site's directory and deliveries carried to other
//!   sites' bridges (over NATS, by a runner). Pure like
//!   [`proto`], over the endpoint's public interface; store writes and long
//!   executions are work it hands out.
//! - [`record`] (feature `record`): messages and datagrams as JSON records
//!   and times in RFC 3339, for people and tools (what `rmbus decode` and
//!   `rmbus monitor --json` print). Pure: every time is given.
//! - [`store`]: where CMBS members keep what they receive and hold: a trait,
//!   a store in memory, SQLite (feature `sqlite`, on by default) and the
//!   worker thread that keeps disk I/O off the bus loop.
//! - [`runtime`] (feature `runtime`, on by default): sockets for each scope, a
//!   mio-driven [`runtime::Host`] for many entities on one set of sockets, the
//!   one-entity [`runtime::Bus`], a background thread with a handle, and CMBS
//!   members on a thread of their own (`runtime::spawn_members`, with
//!   `sqlite`).
//! - [`occi`] (feature `occi`, on by default): an OCCI server library on
//!   axum and tokio (the core model, its text and JSON renderings, the HTTP
//!   protocol). It uses no other layer of the crate.
//! - [`gateway`] (feature `gateway`, on by default): CMBS members and
//!   messages as OCCI resources over HTTP, on [`occi`] and
//!   `runtime::spawn_members`; the `rmbus gateway` command is it with
//!   arguments.
//! - [`bridge`] (feature `bridge`, on by default): CMBS across sites, a
//!   [`cmbs::Bridge`] on [`runtime`]'s host and a NATS client (async-nats
//!   on tokio); the `rmbus bridge` command is it with arguments.
//!
//! Only [`config`]'s loader, [`store`], [`runtime`] and the servers after
//! them ([`occi`], [`gateway`], [`bridge`]) open a socket or a file, read
//! a clock or spawn a thread; the rest is pure, which is what lets the test suite run
//! whole buses on a virtual clock. The `rmbus` command (feature `cli`) is
//! built on [`runtime`], and its `gateway` command on [`gateway`]. One more module, `fuzzing` (hidden from these docs), holds the
//! bodies of the fuzz targets, over [`proto`], so that the test suite runs
//! them over their seed corpora on stable Rust.
//!
//! Inside [`proto`] the same rule holds: the endpoint and its dispatch table
//! sit on the Guidelines sub-machines, which reach the transport only through
//! a narrow context; the transport sits on the reliable-delivery state, the
//! entity table, the hello timer and one keyed deadline set.
//!
//! ```
//! use rmbus::auth::{open, seal, Keys};
//! use rmbus::wire::{Address, Command, Framing, Header, Message, MessageType, Value};
//!
//! let keys = Keys::md5_noencr(b"123156189112")?;
//! let msg = Message {
//!     header: Header {
//!         seq: 0,
//!         timestamp: 1_020_000_000_000,
//!         kind: MessageType::Unreliable,
//!         src: Address::parse("(app:test module:engine id:4711-1@192.168.1.1)")?,
//!         dst: Address::parse("()")?,
//!         acks: vec![],
//!     },
//!     commands: vec![Command::new("tool.set", vec![Value::Integer(42)])],
//! };
//! let datagram = seal(&msg, &keys, Framing::Lf)?;
//! assert_eq!(open(&datagram, &keys)?, msg);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod auth;
#[cfg(feature = "bridge")]
pub mod bridge;
pub mod cmbs;
pub mod config;
#[cfg(feature = "gateway")]
pub mod gateway;
#[cfg(feature = "occi")]
pub mod occi;
pub mod proto;
#[cfg(feature = "record")]
pub mod record;
pub mod rpc;
#[cfg(feature = "runtime")]
pub mod runtime;
pub mod store;
pub mod wire;

#[doc(hidden)]
pub mod fuzzing;
