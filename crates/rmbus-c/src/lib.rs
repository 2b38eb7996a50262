//! rmbus for C programs: the shared and static library behind
//! `include/mbus.h` and `include/mbus_parser.h` (the Mbus API of the UCL
//! common library 1.2.19, which RAT, VIC and SDR are written against) and
//! `include/rmbus.h` (rmbus's native C API).
//!
//! This crate holds the unsafe code that the protocol crate (`rmbus`,
//! `#![forbid(unsafe_code)]`) keeps out: C strings, raw pointers, C
//! callbacks. Every exported function:
//!
//! - catches panics before they cross into C ([`guard::guarded`]) and
//!   turns them into its error value;
//! - checks each string (NULL, UTF-8 where it goes on the wire, at most
//!   [`guard::MAX_TEXT`] bytes) and each handle ([`table::Table`] for the
//!   UCL handles, which may be used after `mbus_exit` by mistake);
//! - never holds a lock while it calls into C, so a callback may call back
//!   into the library.
//!
//! Modules: [`ucl`] (`mbus.h`, RFC 3259 through UCL's API), [`parser`]
//! (`mbus_parser.h`), [`native`] (`rmbus.h`), and the shared parts
//! [`guard`], [`table`] and [`common`].
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

pub mod common;
pub mod guard;
pub mod native;
pub mod parser;
pub mod table;
pub mod ucl;
