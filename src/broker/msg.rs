//! `ShardMsg`: every message that crosses from one executor to another.
//!
//! Owns: the cross-shard protocol. Each variant is listed in ARCHITECTURE.md with who
//! sends it to whom and why; a new variant must be added there too.
//! Must never: carry `Rc`s or anything tied to one executor (the policy is an immutable
//! `Arc`); payloads are `Bytes` and are shared, not copied.

use bytes::BytesMut;
use std::any::Any;
use std::net::SocketAddr;
use std::sync::Arc;

use crate::admin::policy::Policy;
use crate::codec::{Connect, Str, SubOptions};
use crate::metrics::{Metrics, Stats};
use crate::session::Message;

use super::flow::FlowKey;
use shardmq_shards::handoff::SocketInTransit;

/// A message between executors. The sender's id travels beside it (the mesh gives it).
pub enum ShardMsg {
    /// Publisher's shard → a shard that has subscribers: deliver to local subscribers.
    Forward(Box<Forward>),
    /// Publisher's shard → a shard that has subscribers: the forwards one batch of a
    /// connection's packets produced for that shard, in order (one channel slot and one
    /// wake-up for up to a batch of messages).
    Forwards(Vec<Forward>),
    /// `Forwards` with QoS 1/2 messages to a shard that keeps durable sessions: answered with
    /// [`ReplyData::Ack`] once what they made it journal is written (the publishers'
    /// acknowledgements wait for it).
    ForwardsDurable { req: u64, forwards: Vec<Forward> },
    /// Subscribing shard → every other shard: this shard now has a subscriber for `filter`
    /// (in shared `group` if any). Posted (`Mesh::post`), not sent: a receiver takes it
    /// before it routes anything (`Shard::apply_posted`), so the SUBACK need not wait
    /// for an answer, and no shard is woken for it.
    RouteAdd { filter: Str, group: Option<Str> },
    /// Unsubscribing shard → every other shard: no subscriber left here for `filter`/`group`.
    /// Posted like `RouteAdd`, so a receiver applies the two in their order.
    RouteDel { filter: Str, group: Option<Str> },
    /// Serving shard → home shard of `client_id`, posted: connection `link` of the id is
    /// served here, with a session that ends with it (served where it was accepted:
    /// `shards.clean_sessions = "accepting"`). The home shard's directory points here from now on, and an older
    /// session of the id ends as on a clean start's takeover (`Shard::note_claim`).
    /// Followed by [`ShardMsg::TakePosted`], so that the older session ends at once.
    Claim { client_id: Str, link: u64 },
    /// Serving shard → home shard, posted: connection `link` of `client_id` (claimed) ended.
    Release { client_id: Str, link: u64 },
    /// Home shard → the shard serving connection `link` of `client_id`: a newer connection
    /// of the id was accepted; end this one as a takeover ends the older connection.
    Displace { client_id: Str, link: u64 },
    /// Any → a shard: take what was posted to you now (a `Claim` that may end a session).
    TakePosted,
    /// A shard whose client subscribed to `filters` (ordinary subscriptions, new to it) in a
    /// SUBSCRIBE the kernel received at `since` → a shard that has routed messages since:
    /// send back those it routed after `since`, to no other shard, that match (`recent`).
    CatchUp {
        client_id: Str,
        link: u64,
        filters: Vec<(Str, SubOptions)>,
        since: u64,
    },
    /// The answer to `CatchUp`, when there is one: deliver each message to connection `link`
    /// of `client_id` with its options, unless a subscription other than `filters` took it.
    CaughtUp {
        client_id: Str,
        link: u64,
        filters: Vec<(Str, SubOptions)>,
        msgs: Vec<(Message, SubOptions)>,
    },
    /// Any → the owner shard of `msg.topic`: store (or, with an empty payload, clear) it.
    /// Answered with [`ShardMsg::Reply`] `Ack` once stored (and journaled).
    RetainSet { req: u64, msg: Box<Message> },
    /// Subscribing shard → owner shard(s): retained messages matching `filter`.
    RetainQuery { req: u64, filter: Str },
    /// Accepting shard → home shard of the client id: take over this connection.
    Adopt(Box<Adopt>),
    /// Any → one shard: a question about its part of a view (counters, a page of its
    /// clients, ...) or an action on its clients (see `ask`). Answered with
    /// [`ReplyData::Answer`].
    /// Answered once the hand-overs `after` counts have landed here (`handover`).
    Collect {
        req: u64,
        question: Question,
        after: super::handover::Mark,
    },
    /// Management → every shard: enforce this admin policy from now on (bans, auth tables,
    /// plugins, runtime settings), kick live clients a ban now matches. Answered with
    /// [`ReplyData::Ack`] once in force.
    Policy { req: u64, policy: Arc<Policy> },
    /// A subscriber on the sending shard is backlogged (episode `key`) and `publisher`
    /// (served on the receiving shard, where its messages came from) feeds it: pause that publisher's connection until the
    /// episode ends (see `flow`).
    SlowDown { publisher: Str, key: FlowKey },
    /// Episode `key` of the sending shard ended (its subscriber drained, stalled or left):
    /// the publishers paused on it may go on.
    FlowRelease { key: FlowKey },
    /// The answer to `RetainQuery`, `Policy`, `Collect` and the confirmations, by request id.
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
    /// The connection's TLS / WebSocket layers (`Layer::Plain` on the TCP listener).
    pub layer: super::stream::Layer,
    pub connect: Connect,
    /// The client sent an empty id and the broker assigned `connect.client_id`.
    pub assigned_id: bool,
    /// Bytes read after the CONNECT packet (the client may pipeline).
    pub rest: BytesMut,
    pub peer: SocketAddr,
    /// The connection's place under its listener's `max_connections`.
    pub slot: super::slots::ConnSlot,
    /// The accepting shard admitted this clean start and wrote its CONNACK, of this many
    /// bytes (`None`: the home shard decides and answers).
    pub acked: Option<u32>,
    /// The accepting shard.
    pub from: usize,
    /// The hand-overs to this shard started before the CONNECT was read: served after them.
    pub after: super::handover::Mark,
}

/// A question for one shard, the type of its answer erased for the trip: built from a
/// typed query by `ask::question`, answered by the shard it is sent to (which passes itself,
/// an `Rc<Shard>`), its answer turned back into the query's reply type by `ask::answers`.
pub struct Question(Box<dyn Answering>);

/// What a [`Question`] holds: the closure that answers it.
pub trait Answering: FnOnce(&dyn Any) -> AnyAnswer + Send {}
impl<F: FnOnce(&dyn Any) -> AnyAnswer + Send> Answering for F {}

/// An answer whose type only the query that asked for it knows.
pub type AnyAnswer = Box<dyn Any + Send>;

impl Question {
    /// Wraps an answering function.
    pub fn new(answer: impl FnOnce(&dyn Any) -> AnyAnswer + Send + 'static) -> Self {
        Question(Box::new(answer))
    }

    /// Answers the question on the shard that was asked.
    pub fn answer(self, shard: &dyn Any) -> AnyAnswer {
        (self.0)(shard)
    }
}

/// Answers to requests, by kind.
pub enum ReplyData {
    /// `Policy` applied, or a retained message or durable forwards written.
    Ack,
    /// Retained messages matching a `RetainQuery`.
    Retained(Vec<Message>),
    /// A `Collect`'s answer (its type is the query's `Reply`).
    Answer(AnyAnswer),
}

/// One shard's figures for `GET /stats`, `GET /metrics` and the listener view.
pub struct ShardFigures {
    pub shard: usize,
    pub core: usize,
    pub metrics: Metrics,
    pub stats: Stats,
    /// Fraction of wall time the executor spent running tasks since start, in 1/1000.
    pub busy_permille: u64,
    pub mesh_sent: u64,
    pub mesh_received: u64,
    pub mesh_outbox_depth: u64,
    /// Abnormal connection ends by reason (`closed`, `kicked`, `keepalive_timeout`, ...).
    pub shutdowns: Vec<(String, u64)>,
    /// The rule engine's counters on this shard, per rule id.
    pub rules: Vec<(String, super::rule_state::RuleCount)>,
}

/// The node's counters from the shards' counters: metrics and gauges summed, except `routes`
/// and `topics`, which every shard's replica holds whole (the largest is taken). One sum for
/// `$SYS` and the REST API, over whichever shards answered in time.
pub fn node_counters(shards: impl IntoIterator<Item = (Metrics, Stats)>) -> (Metrics, Stats) {
    let mut metrics = Metrics::default();
    let mut stats = Stats::default();
    let mut routes = 0;
    for (m, s) in shards {
        metrics.merge(&m);
        routes = routes.max(s.routes);
        stats.merge(&s);
    }
    stats.routes = routes;
    stats.topics = routes;
    (metrics, stats)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_counters_sum_the_shards_but_take_the_replicated_routes_once() {
        let shard = |received: u64, conns: u64, routes: u64| {
            let metrics = Metrics {
                messages_received: received,
                ..Metrics::default()
            };
            let stats = Stats {
                connections: conns,
                routes,
                topics: routes,
                ..Stats::default()
            };
            (metrics, stats)
        };
        let (m, s) = node_counters([shard(5, 2, 7), shard(10, 3, 7)]);
        assert_eq!(m.messages_received, 15);
        assert_eq!(s.connections, 5);
        assert_eq!((s.routes, s.topics), (7, 7));
        assert_eq!(node_counters([]), (Metrics::default(), Stats::default()));
    }
}
