//! Messages and datagrams as records for people and tools (feature
//! `record`): the JSON record of one datagram ([`Accepted`], [`Rejected`]),
//! a datagram seen on the bus with its time and source ([`datagram_json`]),
//! and wall-clock times in RFC 3339 UTC ([`rfc3339`]). What `rmbus decode`,
//! `rmbus monitor` and the gateway's raw monitor write. Pure: every time is
//! given, never read.

mod clock;
mod datagram;
mod json;

pub use clock::{rfc3339, short};
pub use datagram::{
    accepted_line, clock_offset, datagram_json, rejected_line, verified_line, Line, ReplayNote,
};
pub use json::{to_line, Accepted, Rejected, Tagged};
