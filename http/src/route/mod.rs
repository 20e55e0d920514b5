//! Routing: `(method, path)` → [`Route`]. Pure, runs on the management thread.
//!
//! Owns: the mapping of every route in [`crate::index::API_INDEX`] (EMQ X 3.2.0's table)
//! plus ShardMQ's own `GET /status`, `GET /stats` and `GET /metrics`, and the path-variable
//! decoding. Must never: look at node names, plugin state or credentials (the handler does,
//! using [`Route::node`], [`Route::plugin`] and [`Route::needs_auth`]), or allocate per
//! route beyond the decoded variables.
//!
//! Rules (api-notes item 1 and 3): the path is split on `/` and empty segments are dropped,
//! so trailing and doubled slashes do not matter; each segment is then percent-decoded
//! (`a%2Fb` is the single variable `a/b`, `+` stays `+`). An unknown path and a wrong method
//! on a known path are [`NotFound`] (HTTP 404, code 404); so is an undecodable segment here,
//! though the handler answers such a path 400 before it routes.

mod meta;

use crate::parse::{percent_decode, Method};

/// No route for this method and path (HTTP 404).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotFound;

/// Every route served on the management listener. Variables are decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum Route {
    /// `GET /api/v3/`: the route table.
    ApiIndex,
    /// `GET /status` (no auth): plain-text liveness.
    Status,
    /// `GET /stats`: per-shard JSON (ShardMQ addition).
    ShardStats,
    /// `GET /metrics`: Prometheus text, one series per shard (ShardMQ addition).
    ShardMetrics,

    ListClientid,
    LookupClientid {
        clientid: String,
    },
    AddClientid,
    UpdateClientid {
        clientid: String,
    },
    DeleteClientid {
        clientid: String,
    },
    ListUsername,
    LookupUsername {
        username: String,
    },
    AddUsername,
    UpdateUsername {
        username: String,
    },
    DeleteUsername {
        username: String,
    },

    AuthUser,
    CreateUser,
    ListUsers,
    UpdateUser {
        name: String,
    },
    DeleteUser {
        name: String,
    },
    ChangePwd {
        username: String,
    },

    ListAllAlarms,
    ListNodeAlarms {
        node: String,
    },
    ListAllAlarmHistory,
    ListNodeAlarmHistory {
        node: String,
    },

    AddApp,
    DelApp {
        appid: String,
    },
    ListApps,
    LookupApp {
        appid: String,
    },
    UpdateApp {
        appid: String,
    },

    ListBanned,
    CreateBanned,
    DeleteBanned {
        who: String,
    },

    ListBrokers,
    GetBroker {
        node: String,
    },

    GetAllConfigs,
    GetNodeConfigs {
        node: String,
    },
    UpdateConfig {
        app: String,
    },
    UpdateNodeConfig {
        node: String,
        app: String,
    },
    GetPluginConfigs {
        node: String,
        plugin: String,
    },
    UpdatePluginConfigs {
        node: String,
        plugin: String,
    },

    ListConnections,
    ListNodeConnections {
        node: String,
    },
    LookupNodeConnections {
        node: String,
        clientid: String,
    },
    LookupConnections {
        clientid: String,
    },
    LookupNodeConnectionViaUsername {
        node: String,
        username: String,
    },
    LookupConnectionViaUsername {
        username: String,
    },
    KickoutConnection {
        clientid: String,
    },

    ListListeners,
    ListNodeListeners {
        node: String,
    },

    ListAllMetrics,
    ListNodeMetrics {
        node: String,
    },

    ListNodes,
    GetNode {
        node: String,
    },

    ListAllPlugins,
    ListNodePlugins {
        node: String,
    },
    LoadPlugin {
        node: String,
        plugin: String,
    },
    UnloadPlugin {
        node: String,
        plugin: String,
    },
    ReloadPlugin {
        node: String,
        plugin: String,
    },

    MqttSubscribe,
    MqttPublish,
    MqttUnsubscribe,

    ListRoutes,
    LookupRoutes {
        topic: String,
    },

    ListSessions,
    ListNodeSessions {
        node: String,
    },
    LookupSession {
        clientid: String,
    },
    LookupNodeSession {
        node: String,
        clientid: String,
    },
    CleanPersistentSession {
        clientid: String,
    },
    CleanNodePersistentSession {
        node: String,
        clientid: String,
    },

    ListStats,
    LookupNodeStats {
        node: String,
    },

    ListSubscriptions,
    ListNodeSubscriptions {
        node: String,
    },
    LookupClientSubscriptions {
        clientid: String,
    },
    LookupClientSubscriptionsWithNode {
        node: String,
        clientid: String,
    },

    CreateRule,
    ListRules,
    ShowRule {
        id: String,
    },
    DeleteRule {
        id: String,
    },
    ListActions,
    ShowAction {
        name: String,
    },
    ListResources,
    CreateResource,
    ShowResource {
        id: String,
    },
    GetResourceStatus {
        id: String,
    },
    StartResource {
        id: String,
    },
    DeleteResource {
        id: String,
    },
    ListResourceTypes,
    ShowResourceType {
        name: String,
    },
    ListResourcesByType {
        r#type: String,
    },
    ListActionsByType {
        r#type: String,
    },
    ListEvents,
}

/// Resolves a request to a route. `path` is the raw (still percent-encoded) path.
pub fn route(method: &Method, path: &str) -> Result<Route, NotFound> {
    let segs = path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|s| percent_decode(s, false).ok_or(NotFound))
        .collect::<Result<Vec<String>, NotFound>>()?;
    let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
    match segs.as_slice() {
        ["status"] => get(method, Route::Status),
        ["stats"] => get(method, Route::ShardStats),
        ["metrics"] => get(method, Route::ShardMetrics),
        ["api", "v3", rest @ ..] => route_v3(method, rest),
        _ => Err(NotFound),
    }
}

fn get(method: &Method, route: Route) -> Result<Route, NotFound> {
    if *method == Method::Get {
        Ok(route)
    } else {
        Err(NotFound)
    }
}

fn s(v: &str) -> String {
    v.to_string()
}

fn route_v3(method: &Method, segs: &[&str]) -> Result<Route, NotFound> {
    use Method::{Delete as D, Get as G, Post as P, Put as U};
    use Route as R;
    let route = match (method, segs) {
        (G, []) => R::ApiIndex,

        (G, ["auth_clientid"]) => R::ListClientid,
        (P, ["auth_clientid"]) => R::AddClientid,
        (G, ["auth_clientid", c]) => R::LookupClientid { clientid: s(c) },
        (U, ["auth_clientid", c]) => R::UpdateClientid { clientid: s(c) },
        (D, ["auth_clientid", c]) => R::DeleteClientid { clientid: s(c) },
        (G, ["auth_username"]) => R::ListUsername,
        (P, ["auth_username"]) => R::AddUsername,
        (G, ["auth_username", u]) => R::LookupUsername { username: s(u) },
        (U, ["auth_username", u]) => R::UpdateUsername { username: s(u) },
        (D, ["auth_username", u]) => R::DeleteUsername { username: s(u) },

        (P, ["auth"]) => R::AuthUser,
        (P, ["users"]) => R::CreateUser,
        (G, ["users"]) => R::ListUsers,
        (U, ["users", n]) => R::UpdateUser { name: s(n) },
        (D, ["users", n]) => R::DeleteUser { name: s(n) },
        (U, ["change_pwd", u]) => R::ChangePwd { username: s(u) },

        (G, ["alarms", "present"]) => R::ListAllAlarms,
        (G, ["alarms", "present", n]) => R::ListNodeAlarms { node: s(n) },
        (G, ["alarms", "history"]) => R::ListAllAlarmHistory,
        (G, ["alarms", "history", n]) => R::ListNodeAlarmHistory { node: s(n) },

        (P, ["apps"]) => R::AddApp,
        (G, ["apps"]) => R::ListApps,
        (D, ["apps", a]) => R::DelApp { appid: s(a) },
        (G, ["apps", a]) => R::LookupApp { appid: s(a) },
        (U, ["apps", a]) => R::UpdateApp { appid: s(a) },

        (G, ["banned"]) => R::ListBanned,
        (P, ["banned"]) => R::CreateBanned,
        (D, ["banned", w]) => R::DeleteBanned { who: s(w) },

        (G, ["brokers"]) => R::ListBrokers,
        (G, ["brokers", n]) => R::GetBroker { node: s(n) },

        (G, ["configs"]) => R::GetAllConfigs,
        (U, ["configs", a]) => R::UpdateConfig { app: s(a) },

        (G, ["connections"]) => R::ListConnections,
        (G, ["connections", c]) => R::LookupConnections { clientid: s(c) },
        (D, ["connections", c]) => R::KickoutConnection { clientid: s(c) },
        (G, ["connection", "username", u]) => R::LookupConnectionViaUsername { username: s(u) },

        (G, ["listeners"]) => R::ListListeners,
        (G, ["metrics"]) => R::ListAllMetrics,
        (G, ["plugins"]) => R::ListAllPlugins,

        (P, ["mqtt", "subscribe"]) => R::MqttSubscribe,
        (P, ["mqtt", "publish"]) => R::MqttPublish,
        (P, ["mqtt", "unsubscribe"]) => R::MqttUnsubscribe,

        (G, ["routes"]) => R::ListRoutes,
        (G, ["routes", t]) => R::LookupRoutes { topic: s(t) },

        (G, ["sessions"]) => R::ListSessions,
        (G, ["sessions", c]) => R::LookupSession { clientid: s(c) },
        (D, ["sessions", "persistent", c]) => R::CleanPersistentSession { clientid: s(c) },

        (G, ["stats"]) => R::ListStats,

        (G, ["subscriptions"]) => R::ListSubscriptions,
        (G, ["subscriptions", c]) => R::LookupClientSubscriptions { clientid: s(c) },

        (P, ["rules"]) => R::CreateRule,
        (G, ["rules"]) => R::ListRules,
        (G, ["rules", i]) => R::ShowRule { id: s(i) },
        (D, ["rules", i]) => R::DeleteRule { id: s(i) },
        (G, ["actions"]) => R::ListActions,
        (G, ["actions", n]) => R::ShowAction { name: s(n) },
        (G, ["resources"]) => R::ListResources,
        (P, ["resources"]) => R::CreateResource,
        (G, ["resources", i]) => R::ShowResource { id: s(i) },
        (P, ["resources", i]) => R::StartResource { id: s(i) },
        (D, ["resources", i]) => R::DeleteResource { id: s(i) },
        (G, ["resource_status", i]) => R::GetResourceStatus { id: s(i) },
        (G, ["resource_types"]) => R::ListResourceTypes,
        (G, ["resource_types", n]) => R::ShowResourceType { name: s(n) },
        (G, ["resource_types", t, "resources"]) => R::ListResourcesByType { r#type: s(t) },
        (G, ["resource_types", t, "actions"]) => R::ListActionsByType { r#type: s(t) },
        (G, ["rule_events"]) => R::ListEvents,

        (G, ["nodes"]) => R::ListNodes,
        (_, ["nodes", node, rest @ ..]) => return route_node(method, node, rest),
        _ => return Err(NotFound),
    };
    Ok(route)
}

/// Routes under `/api/v3/nodes/:node/`.
fn route_node(method: &Method, node: &str, rest: &[&str]) -> Result<Route, NotFound> {
    use Method::{Delete as D, Get as G, Put as U};
    use Route as R;
    let n = s(node);
    let route = match (method, rest) {
        (G, []) => R::GetNode { node: n },
        (G, ["configs"]) => R::GetNodeConfigs { node: n },
        (U, ["configs", a]) => R::UpdateNodeConfig { node: n, app: s(a) },
        (G, ["plugin_configs", p]) => R::GetPluginConfigs {
            node: n,
            plugin: s(p),
        },
        (U, ["plugin_configs", p]) => R::UpdatePluginConfigs {
            node: n,
            plugin: s(p),
        },
        (G, ["connections"]) => R::ListNodeConnections { node: n },
        (G, ["connections", c]) => R::LookupNodeConnections {
            node: n,
            clientid: s(c),
        },
        (G, ["connection", "username", u]) => R::LookupNodeConnectionViaUsername {
            node: n,
            username: s(u),
        },
        (G, ["listeners"]) => R::ListNodeListeners { node: n },
        (G, ["metrics"]) => R::ListNodeMetrics { node: n },
        (G, ["plugins"]) => R::ListNodePlugins { node: n },
        (U, ["plugins", p, "load"]) => R::LoadPlugin {
            node: n,
            plugin: s(p),
        },
        (U, ["plugins", p, "unload"]) => R::UnloadPlugin {
            node: n,
            plugin: s(p),
        },
        (U, ["plugins", p, "reload"]) => R::ReloadPlugin {
            node: n,
            plugin: s(p),
        },
        (G, ["sessions"]) => R::ListNodeSessions { node: n },
        (G, ["sessions", c]) => R::LookupNodeSession {
            node: n,
            clientid: s(c),
        },
        (D, ["sessions", "persistent", c]) => R::CleanNodePersistentSession {
            node: n,
            clientid: s(c),
        },
        (G, ["stats"]) => R::LookupNodeStats { node: n },
        (G, ["subscriptions"]) => R::ListNodeSubscriptions { node: n },
        (G, ["subscriptions", c]) => R::LookupClientSubscriptionsWithNode {
            node: n,
            clientid: s(c),
        },
        _ => return Err(NotFound),
    };
    Ok(route)
}
