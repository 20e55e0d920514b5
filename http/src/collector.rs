//! The seam between the HTTP crate and the broker: [`Collector`], which the broker implements
//! on the management thread (by scattering `Collect` to the shards and merging the replies),
//! and the [`ApiCall`] / [`ApiAnswer`] vocabulary. Pure types and one trait.
//!
//! Owns: what the REST handlers may ask of the broker. Must never: name glommio or any broker
//! type, require `Send` (everything runs on one executor), or carry HTTP concerns (statuses,
//! headers, envelopes) — handlers turn answers into responses.
//!
//! Node scoping: there is one node; handlers check `:node` against the configured name (404
//! otherwise) before calling, so calls carry no node. Paging is pushed down: the broker
//! returns the requested page and the true total count.

use std::future::Future;
use std::pin::Pin;

use crate::model::{
    Banned, BrokerInfo, ConnectionInfo, ListenerInfo, NamedValues, NodeInfo, PublishParams,
    RouteInfo, SessionInfo, ShardView, SubscribeParams, SubscriptionInfo, UnsubscribeParams,
};
use crate::response::{ApiError, Paging};

/// A request to the broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiCall {
    /// Broker info (`GET /brokers/...`) → [`ApiAnswer::Broker`].
    Broker,
    /// Node figures (`GET /nodes/...`) → [`ApiAnswer::Node`] (memory as bytes).
    Node,
    /// A page of connections → [`ApiAnswer::Connections`].
    ListConnections { paging: Paging },
    /// Connections of a client id (0 or 1) → [`ApiAnswer::Connections`].
    LookupConnection { client_id: String },
    /// Connections with this username → [`ApiAnswer::Connections`].
    LookupConnectionsByUsername { username: String },
    /// Close a client's connection with reason `kicked` → [`ApiAnswer::Done`] or
    /// [`ApiAnswer::Failed`] (112 `not_found`).
    Kick { client_id: String },
    /// A page of sessions → [`ApiAnswer::Sessions`].
    ListSessions { paging: Paging },
    /// The session of a client id (0 or 1) → [`ApiAnswer::Sessions`].
    LookupSession { client_id: String },
    /// Discard an offline persistent session → `Done`, or `Failed` (`running_session`,
    /// `not_found`).
    CleanPersistentSession { client_id: String },
    /// A page of subscriptions → [`ApiAnswer::Subscriptions`].
    ListSubscriptions { paging: Paging },
    /// A client's subscriptions → [`ApiAnswer::Subscriptions`].
    ClientSubscriptions { client_id: String },
    /// A page of routes (topic filters with at least one subscriber) → [`ApiAnswer::Routes`].
    ListRoutes { paging: Paging },
    /// Routes whose filter equals `topic` exactly → [`ApiAnswer::Routes`].
    LookupRoutes { topic: String },
    /// Publish on behalf of the API → `Done`, or `Failed` (115 `bad_topic`).
    Publish(PublishParams),
    /// Subscribe an existing session → `Done`, or `Failed` (112 `session_not_found`, 115).
    Subscribe(SubscribeParams),
    /// Unsubscribe an existing session → `Done`, or `Failed` (112, 115).
    Unsubscribe(UnsubscribeParams),
    /// Node-total metrics, 3.1 names → [`ApiAnswer::Values`].
    Metrics,
    /// Node-total stats, 3.1 names → [`ApiAnswer::Values`].
    Stats,
    /// Live listeners → [`ApiAnswer::Listeners`].
    Listeners,
    /// Every shard's view (`GET /stats`, `GET /metrics`) → [`ApiAnswer::Shards`].
    ShardViews,
    /// The ban table changed: shards enforce `bans` from now on (and kick matching
    /// connections) → `Done`.
    SetBanned { bans: Vec<Banned> },
    /// Turn a native plugin's feature on or off (`emqx_retainer`, `emqx_auth_clientid`, ...)
    /// → `Done` or `Failed`.
    SetPlugin { name: String, active: bool },
}

/// Rows of one page plus the total number of rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    pub rows: Vec<T>,
    pub count: u64,
}

impl<T> Page<T> {
    /// A complete (unpaged) list: `count` is its length.
    pub fn all(rows: Vec<T>) -> Page<T> {
        let count = rows.len() as u64;
        Page { rows, count }
    }
}

/// The broker's answer.
#[derive(Debug, Clone, PartialEq)]
pub enum ApiAnswer {
    Done,
    Broker(BrokerInfo),
    Node(NodeInfo),
    Connections(Page<ConnectionInfo>),
    Sessions(Page<SessionInfo>),
    Subscriptions(Page<SubscriptionInfo>),
    Routes(Page<RouteInfo>),
    Values(NamedValues),
    Listeners(Vec<ListenerInfo>),
    Shards(Vec<ShardView>),
    /// An application error (HTTP 200 with its code, per api-notes item 3).
    Failed(ApiError),
}

/// How many shards contributed to an answer; a slow shard gives a partial answer rather
/// than a hung API. Handlers expose it as `X-ShardMQ-Shards: responded/total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Coverage {
    pub responded: u32,
    pub total: u32,
}

impl Coverage {
    /// Whether every shard answered.
    pub fn is_complete(&self) -> bool {
        self.responded == self.total
    }
}

/// An answer and its coverage.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub answer: ApiAnswer,
    pub coverage: Coverage,
}

/// A boxed, non-`Send` future (the management thread is one executor).
pub type LocalBoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + 'a>>;

/// Implemented by the broker; called by the handlers, one call per request (or a few).
pub trait Collector {
    /// Runs `call` against the broker (the shards it needs) and answers.
    fn call(&self, call: ApiCall) -> LocalBoxFuture<'_, Reply>;
}
