//! An OCCI server library (feature `occi`): the Open Cloud Computing
//! Interface's core model, its renderings and its HTTP protocol, on axum
//! and tokio.
//!
//! - [`Model`] and [`Category`]: kinds (with a parent and a location;
//!   resources and links), mixins and actions, with typed [`Attribute`]s (mandatory, immutable,
//!   defaults), built in code (OCCI Core, GFD.183 §3–§4; GFD.221).
//! - [`Entity`] and the [`EntityStore`] trait ([`MemoryEntities`] in memory).
//! - [`Server`]: the query interface at `/-/` and
//!   `/.well-known/org/ogf/occi/-/`, collections (kinds and mixins, with
//!   filters by category and attribute and OCCI 1.2 paging
//!   `?page=N&number=M`, pages counted from 1), entities (create, read, full
//!   and partial update, delete), actions on an entity or on a collection
//!   (one result per entity, nothing rolled back), mixin tagging and
//!   client-defined mixins; an async handler per action and optional
//!   [`Hooks`] per kind; an [`Authenticator`]; limits (GFD.185 §3.4–§3.6;
//!   GFD.223).
//! - The renderings: `text/plain` (the default when `Accept` is missing or
//!   `*/*`), `text/occi`, `text/uri-list` (listings) and
//!   `application/occi+json` in two flavours, pyOCNI's nested one and
//!   OCCI 1.2's flat one (GFD.226), recognised by shape on input and
//!   answered in the flavour of the request ([`Flavour`]).
//!
//! What clients rely on holds: category locations are relative, entity URLs
//! absolute and the same bytes in `Location:`, `X-OCCI-Location:` and
//! listings, the core kinds are listed, a PUT that echoes immutable
//! attributes and action links unchanged is accepted, and `Server:` names
//! `OCCI/1.1` and `OCCI/1.2`; a `User-Agent` with a newer OCCI version gets
//! 501.
//!
//! Every successful `GET` and `HEAD` carries `Content-MD5` (base64 MD5 of
//! the body) and an `ETag`; a `GET` with a matching `If-None-Match` gets
//! 304. A collection's tag changes whenever one of its entities does, and a
//! `text/occi` answer's covers the rendering in its head. An unfiltered
//! listing and an entity's rendering are kept, tags and all, while the
//! store's [`EntityStore::generation`] and the model stay the same (at most
//! 4,096 answers and 8 MiB). The server awaits its store's writes
//! ([`EntityStore::insert_async`] and its kin).
//!
//! Credentials are checked first: a request without good ones gets 401
//! and learns nothing else. Error policy: 400 unparsable body (a malformed
//! or truncated chunked encoding too), a header that is not UTF-8, unknown
//! category, attribute or action, invalid value, a term, scheme, id or
//! location outside the grammar (ids `.` and `..` included), a JSON integer
//! beyond 64 bits; 401 missing or bad
//! credentials; 403 an immutable attribute changed, or a server category
//! removed; 404 unknown path or entity; 405 method not allowed (with
//! `Allow:`); 406 an `Accept` we cannot answer; 409 a taken id or a
//! conflicting category; 413 body, headers, values or page over the limit;
//! 415 a request `Content-Type` we do not read; 429 too many wrong
//! credentials from one address, 503 all password checks busy (both with
//! `Retry-After`); 501 a newer OCCI version. Every error body is one line.
//!
//! Links ([`Category::link`], GFD.221 §4.6) are made on their kind's
//! location or inline with a resource (`Link:` lines, a JSON resource's
//! `links`), their ends checked when they are made and kept after; a
//! resource is shown with the links it owns, and deleting it deletes every
//! link from or to it.
//!
//! Serving it with [`serve`] bounds what strangers can hold: connection
//! slots in which anonymous connections give way to authenticated ones,
//! and deadlines that close every connection ([`Listening`]); [`Basic`]
//! bounds password checks, their memory and their rate per address
//! ([`AuthLimits`], [`Backoff`]).

mod basic;
mod body;
mod collection;
mod connections;
mod entity;
mod error;
mod json;
mod kept;
mod lifecycle;
mod links;
mod listen;
mod media;
mod model;
mod password;
mod query;
mod render;
mod request;
mod server;
mod tags;
mod text;
mod throttle;

pub use basic::{
    create_admin, hash_password, read_users_file, AuthLimits, Basic, Users, CACHE_FOR,
};
pub use body::{Body, CategoryRef, InlineLink};
pub use connections::Peer;
pub use entity::{Entity, EntityStore, EntityStoreError, LinkIndex, MemoryEntities, StoreFuture};
pub use error::OcciError;
pub use json::{check_integers, WideInteger};
pub use listen::{serve, tls_config, Listening};
pub use media::{Flavour, Media};
pub use model::{
    check_id, check_location, AttrType, Attribute, Category, Class, GrammarError, Model, TypeId,
    CORE_SCHEME, ENTITY, LINK, RESOURCE,
};
pub use server::{
    ActionCall, ActionHandler, Authenticator, BoxFuture, Hooks, Limits, Refusal, RequestLog,
    Server, ServerBuilder,
};
pub use throttle::Backoff;
