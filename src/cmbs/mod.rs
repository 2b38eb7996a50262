//! CMBS on the bus: Cloud Message Brokering Service members and messages
//! (pyCMBS 0.2's two kinds and five layers), each member one Mbus entity,
//! with no central broker.
//!
//! - [`Member`]: an entity that receives messages on the layers it has
//!   started, refuses what it cannot take with a [`Code`], runs the
//!   application's execute handler and asks its store to keep what is
//!   storable. It answers every `cmbs.message.deliver` RPC itself: in every
//!   CMBS output "delivered" is that answer, never a transport ack.
//! - [`Client`]: what every participant has, member or plain sender: the
//!   [`Directory`] (filled from `cmbs.member.announce`, emptied when a member
//!   leaves) and the outbox, which resolves recipients in the directory,
//!   sends one delivery per recipient, retries what is not acknowledged,
//!   keeps held messages and reports per recipient ([`Report`]).
//! - The commands on the bus, one type each ([`cmd`]), the layers
//!   ([`Layer`]), topic matching with the AMQP topic-exchange rules
//!   ([`topic`]), the message ([`Message`]) and the member's description
//!   ([`Description`]).
//!
//! The layers: L1 (one member, named by its `l1_socket` or id; request and
//! reply), L2 (every member), L3.1 (members whose providers intersect the
//! message's; a member's id is always one of its providers), L3.2 (members
//! subscribed to a matching topic), L4 (both). Per sender and recipient,
//! messages reach the application in send order: deliveries are numbered
//! per recipient and put back in order there (a missing one is waited for
//! at most [`REORDER_WINDOW`]); one still missing then, or one the sender
//! gave up on, comes late.
//!
//! Like [`crate::proto`], this module is pure: it runs over the endpoint's
//! public interface, every input carries `now`, and work for the outside
//! world is pulled: store batches ([`Member::poll_store`]) and execute jobs
//! that run elsewhere ([`Execution::Later`]).

pub mod cmd;
pub mod crossing;
pub mod topic;

mod bridge;
mod client;
mod code;
mod description;
mod directory;
mod event;
mod layer;
mod map;
mod member;
mod memory;
mod message;
mod order;
mod persist;
mod relay;
mod report;
mod shared;
mod site;

pub use bridge::{
    Bridge, BridgeConfig, BridgeEvent, BridgeStats, NatsInput, NatsOutput, RequestFailure,
};
pub use client::{
    ask_to_describe, cmbs_group, member_id_of, members_group, Client, ClientConfig, Publish,
};
pub use cmd::{Action, Order};
pub use code::{Code, Refusal};
pub use description::{default_socket, Description, MemberState, Remote};
pub use directory::{matches_member, Change, Directory, Entry, MAX_MEMBERS};
pub use event::Event;
pub use layer::{Layer, LayerSet};
pub use member::{echo_executor, ExecJob, Execution, Executor, Member, MemberConfig, REANNOUNCES};
pub use memory::MemoryConfig;
pub use message::{parse_flag, Content, Message, MAX_DELIVER_BYTES};
pub use order::REORDER_WINDOW;
pub(crate) use persist::unix_ms;
pub use persist::{HeldRecord, StoreBatch, StoreOp, StoredMessage};
pub use relay::{
    Recipient, Relay, RelayAnswer, CROSSING_ALLOWANCE, MAX_REASON_BYTES, MAX_RECIPIENTS,
    MAX_RELAY_BYTES,
};
pub use report::{Line, LineStatus, Outcome, Report};
pub use shared::{is_bridge, SharedDirectory, Stats, DISCOVERY_INTERVAL};
pub use site::{Participant, Site, SiteEvent, ASKS_PER_ROUND};
