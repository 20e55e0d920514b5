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
    BanKind, Banned, BrokerInfo, ConnectionInfo, ListenerInfo, NamedValues, NodeInfo,
    PublishParams, RouteInfo, SessionInfo, ShardView, SubscribeParams, SubscriptionInfo,
    UnsubscribeParams,
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

    // ---- administration (issue 4). Answers are `Data` (already in the document's shape),
    // `Banned`, `Done` or `Failed` with the code of api-notes item 3.
    /// Ids of an auth table → `Data(["id", ...])`.
    ListAuth { table: AuthTable },
    /// One entry → `Data({clientid|username, password: <hash hex>})`, `Data({})` if unknown.
    LookupAuth { table: AuthTable, id: String },
    /// → `Done`; 113 if the id exists.
    AddAuth {
        table: AuthTable,
        id: String,
        password: String,
    },
    /// → `Done`; 105 if the id is unknown.
    UpdateAuth {
        table: AuthTable,
        id: String,
        password: String,
    },
    /// → `Done` (idempotent).
    DeleteAuth { table: AuthTable, id: String },
    /// `POST /auth` → `Done`; 104 empty, 105 unknown user, 103 wrong password.
    AuthUser { username: String, password: String },
    /// → `Done`; 104 empty, 113 exists.
    CreateUser {
        username: String,
        password: String,
        tags: String,
    },
    /// → `Data([{username, tags}])`.
    ListUsers,
    /// → `Done`; 105 unknown.
    UpdateUser { username: String, tags: String },
    /// → `Done`; 106 for the admin user, 105 unknown.
    DeleteUser { username: String },
    /// → `Done`; 105 unknown, 114 old password wrong, 104 empty new password.
    ChangePwd {
        username: String,
        old: String,
        new: String,
    },
    /// → `Data({"secret": ...})` (the only time the secret is shown); 102 if it exists.
    AddApp(AppParams),
    /// → `Data([{app_id, name, desc, status, expired}])`.
    ListApps,
    /// → `Data({app_id, name, desc, status, expired})`, `Data([])` if unknown (EMQ X).
    LookupApp { app_id: String },
    /// Fields left `None` keep their value → `Done`; 102 `not_found`.
    UpdateApp { app_id: String, update: AppUpdate },
    /// → `Done` (idempotent).
    DelApp { app_id: String },
    /// Create a rule from the create body → `Data(rule)`, or `Failed` (400 with the reason).
    CreateRule(serde_json::Value),
    /// Every rule → `Data([rule])`.
    ListRules,
    /// One rule → `Data(rule)`, or `Failed` (404 `Not Found`).
    ShowRule { id: String },
    /// → `Done` (idempotent).
    DeleteRule { id: String },
    /// `POST /rules?test=true` (or `"test": true` in the body): run `rawsql` on `ctx` (sample
    /// values for what it leaves out) → `Data(selected)`, or `Failed` (404 `SQL Not Match`,
    /// 400 for bad SQL).
    TestRule(serde_json::Value),
    /// The actions (`for`: only those for that event or alias) → `Data([action])`, or
    /// `Failed` (400 `Event X Not Found`).
    ListActions { r#for: Option<String> },
    /// → `Data(action)`, or `Failed` (404).
    ShowAction { name: String },
    /// → `Data([resource type])`.
    ListResourceTypes,
    /// → `Data(resource type)`, or `Failed` (404).
    ShowResourceType { name: String },
    /// → `Data([resource])` of that type.
    ListResourcesByType { r#type: String },
    /// → `Data([action])` of that resource type.
    ListActionsByType { r#type: String },
    /// Create (or replace) a resource from the body → `Data(resource)`, or `Failed` (400
    /// `Resource Type X Not Found`, bad config). `test`: only check the config and the
    /// connection → `Done` or `Failed` (500 `Test Creating Resource Failed`).
    CreateResource { body: serde_json::Value, test: bool },
    /// → `Data([resource])`.
    ListResources,
    /// → `Data(resource + status)`, or `Failed` (404 `Not Found`).
    ShowResource { id: String },
    /// → `Data({is_alive})`, or `Failed` (400 `Resource X Not Found`).
    ResourceStatus { id: String },
    /// Check the resource again → `Done`, or `Failed` (400 `Start Resource X Failed`).
    StartResource { id: String },
    /// → `Done` (idempotent).
    DeleteResource { id: String },
    /// → `Data([event])` (`GET /rule_events`).
    ListEvents,
    /// A page of bans → `Banned`.
    ListBanned { paging: Paging },
    /// Add (or replace) a ban; shards refuse and kick matching clients → `Data(echo)`.
    CreateBanned(Banned),
    /// → `Done` (idempotent).
    DeleteBanned { who: String, kind: BanKind },
    /// → `Data([{name, version, description, active}])`.
    ListPlugins,
    /// → `Done`; 404 unknown, 102 `not_supported`, 110 `already_started`.
    LoadPlugin { name: String },
    /// → `Done`; 404 unknown, 102 `not_supported`, 111 `not_started`.
    UnloadPlugin { name: String },
    /// Unload if loaded, then load → `Done`; 404, 102.
    ReloadPlugin { name: String },
    /// → `Data([{key, value, datatpye, app}])`.
    ListConfigs,
    /// → `Done`; 404 unknown app, 102 key not settable, 108 bad value.
    SetConfig {
        app: String,
        key: String,
        value: String,
    },
    /// → `Data([{key, value, desc, required}])`; 404 unknown plugin.
    GetPluginConfigs { plugin: String },
    /// All or nothing → `Done`; 404, 102, 108.
    SetPluginConfigs {
        plugin: String,
        values: Vec<(String, String)>,
    },
    /// Present alarms `Data([{id, desc}])`, or the history `Data([{clear_at, desc, id}])`.
    Alarms { history: bool },
}

/// Which auth plugin's table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthTable {
    ClientId,
    Username,
}

impl AuthTable {
    /// The id field's name in bodies and answers.
    pub fn field(self) -> &'static str {
        match self {
            AuthTable::ClientId => "clientid",
            AuthTable::Username => "username",
        }
    }
}

/// `POST /apps/` body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppParams {
    pub app_id: String,
    pub name: String,
    /// `None`: generate one.
    pub secret: Option<String>,
    pub desc: String,
    pub status: bool,
    /// Unix seconds; `None` never expires.
    pub expired: Option<u64>,
}

/// `PUT /apps/:appid` body: `None` keeps the field.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AppUpdate {
    pub name: Option<String>,
    pub desc: Option<String>,
    pub status: Option<bool>,
    /// `Some(None)`: never expires from now on.
    pub expired: Option<Option<u64>>,
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
    /// Administration data, already in the document's shape.
    Data(serde_json::Value),
    /// A page of bans.
    Banned(Page<Banned>),
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

    /// Whether plugin `name` is loaded; the routes of an unloaded plugin answer 404.
    fn plugin_active(&self, _name: &str) -> bool {
        true
    }
}
