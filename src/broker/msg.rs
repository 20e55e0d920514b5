//! `ShardMsg`: every message that crosses from one executor to another.
//!
//! Owns: the cross-shard protocol. Each variant is listed in ARCHITECTURE.md with who
//! sends it to whom and why; a new variant must be added there too.
//! Must never: carry `Rc`s or anything tied to one executor; payloads are `Bytes` and are
//! shared, not copied.

use bytes::BytesMut;
use std::net::SocketAddr;

use crate::codec::{Connect, Str};
use crate::metrics::{Metrics, Stats};
use crate::session::Message;
use shardmq_shards::handoff::SocketInTransit;

/// A message between executors. The sender's id travels beside it (the mesh gives it).
pub enum ShardMsg {
    /// Publisher's shard → a shard that has subscribers: deliver to local subscribers.
    Forward(Box<Forward>),
    /// Subscribing shard → every other shard: this shard now has a subscriber for `filter`
    /// (in shared `group` if any). Answered with [`ShardMsg::Ack`].
    RouteAdd {
        req: u64,
        filter: Str,
        group: Option<Str>,
    },
    /// Unsubscribing shard → every other shard: no subscriber left here for `filter`/`group`.
    RouteDel { filter: Str, group: Option<Str> },
    /// Any → the owner shard of `msg.topic`: store (or, with an empty payload, clear) it.
    RetainSet(Box<Message>),
    /// Subscribing shard → owner shard(s): retained messages matching `filter`.
    RetainQuery { req: u64, filter: Str },
    /// Accepting shard → home shard of the client id: take over this connection.
    Adopt(Box<Adopt>),
    /// Any → one shard: ask for its part of a view (counters, client lists, ...).
    Collect { req: u64, query: Query },
    /// The answer to `RouteAdd`, `RetainQuery` or `Collect`, by request id.
    Reply { req: u64, reply: Box<ReplyData> },
}

/// A published message on its way to another shard's subscribers.
pub struct Forward {
    /// The message (retain flag already as subscribers must see it).
    pub msg: Message,
    /// Deliver to this shard's ordinary (non-shared) subscribers.
    pub to_subscribers: bool,
    /// Shared groups `(filter, group)` this shard was picked to serve: one member each.
    pub shared: Vec<(Str, Str)>,
}

/// A connection moving to its client's home shard after CONNECT was read.
pub struct Adopt {
    pub socket: SocketInTransit,
    pub connect: Connect,
    /// Bytes read after the CONNECT packet (the client may pipeline).
    pub rest: BytesMut,
    pub peer: SocketAddr,
}

/// What a `Collect` asks a shard for.
#[derive(Debug, Clone)]
pub enum Query {
    /// The shard's counters and gauges.
    Counters,
}

/// Answers to requests, by kind.
pub enum ReplyData {
    /// `RouteAdd` applied.
    Ack,
    /// Retained messages matching a `RetainQuery`.
    Retained(Vec<Message>),
    /// A shard's counters.
    Counters { metrics: Metrics, stats: Stats },
}
