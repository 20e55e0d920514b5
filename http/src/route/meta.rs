//! What the handler needs to know about a [`Route`] beyond its variables: its EMQ X name,
//! its `:node`, the plugin that owns it, whether it needs auth and whether it paginates.
//! Pure. Must never: disagree with [`crate::index::API_INDEX`] (tests check every row).

use super::Route;

impl Route {
    /// The EMQ X route name as `GET /api/v3/` lists it; ShardMQ's own routes get their own
    /// names (`api_index`, `status`, `shard_stats`, `shard_metrics`).
    pub fn name(&self) -> &'static str {
        use Route as R;
        match self {
            R::ApiIndex => "api_index",
            R::Status => "status",
            R::ShardStats => "shard_stats",
            R::ShardMetrics => "shard_metrics",
            R::ListClientid => "list_clientid",
            R::LookupClientid { .. } => "lookup_clientid",
            R::AddClientid => "add_clientid",
            R::UpdateClientid { .. } => "update_clientid",
            R::DeleteClientid { .. } => "delete_clientid",
            R::ListUsername => "list_username",
            R::LookupUsername { .. } => "lookup_username",
            R::AddUsername => "add_username",
            R::UpdateUsername { .. } => "update_username",
            R::DeleteUsername { .. } => "delete_username",
            R::AuthUser => "auth_user",
            R::CreateUser => "create_user",
            R::ListUsers => "list_users",
            R::UpdateUser { .. } => "update_user",
            R::DeleteUser { .. } => "delete_user",
            R::ChangePwd { .. } => "change_pwd",
            R::ListAllAlarms => "list_all_alarms",
            R::ListNodeAlarms { .. } => "list_node_alarms",
            R::ListAllAlarmHistory => "list_all_alarm_history",
            R::ListNodeAlarmHistory { .. } => "list_node_alarm_history",
            R::AddApp => "add_app",
            R::DelApp { .. } => "del_app",
            R::ListApps => "list_apps",
            R::LookupApp { .. } => "lookup_app",
            R::UpdateApp { .. } => "update_app",
            R::ListBanned => "list_banned",
            R::CreateBanned => "create_banned",
            R::DeleteBanned { .. } => "delete_banned",
            R::ListBrokers => "list_brokers",
            R::GetBroker { .. } => "get_broker",
            R::GetAllConfigs | R::GetNodeConfigs { .. } => "get_all_configs",
            R::UpdateConfig { .. } => "update_config",
            R::UpdateNodeConfig { .. } => "update_node_config",
            R::GetPluginConfigs { .. } => "get_plugin_configs",
            R::UpdatePluginConfigs { .. } => "update_plugin_configs",
            R::ListConnections => "list_connections",
            R::ListNodeConnections { .. } => "list_node_connections",
            R::LookupNodeConnections { .. } => "lookup_node_connections",
            R::LookupConnections { .. } => "lookup_connections",
            R::LookupNodeConnectionViaUsername { .. } => "lookup_node_connection_via_username",
            R::LookupConnectionViaUsername { .. } => "lookup_connection_via_username",
            R::KickoutConnection { .. } => "kickout_connection",
            R::ListListeners => "list_listeners",
            R::ListNodeListeners { .. } => "list_node_listeners",
            R::ListAllMetrics => "list_all_metrics",
            R::ListNodeMetrics { .. } => "list_node_metrics",
            R::ListNodes => "list_nodes",
            R::GetNode { .. } => "get_node",
            R::ListAllPlugins => "list_all_plugins",
            R::ListNodePlugins { .. } => "list_node_plugins",
            R::LoadPlugin { .. } => "load_plugin",
            R::UnloadPlugin { .. } => "unload_plugin",
            R::ReloadPlugin { .. } => "reload_plugin",
            R::MqttSubscribe => "mqtt_subscribe",
            R::MqttPublish => "mqtt_publish",
            R::MqttUnsubscribe => "mqtt_unsubscribe",
            R::ListRoutes => "list_routes",
            R::LookupRoutes { .. } => "lookup_routes",
            R::ListSessions => "list_sessions",
            R::ListNodeSessions { .. } => "list_node_sessions",
            R::LookupSession { .. } => "lookup_session",
            R::LookupNodeSession { .. } => "lookup_node_session",
            R::CleanPersistentSession { .. } => "clean_presisent_session",
            R::CleanNodePersistentSession { .. } => "clean_node_presisent_session",
            R::ListStats => "list_stats",
            R::LookupNodeStats { .. } => "lookup_node_stats",
            R::ListSubscriptions => "list_subscriptions",
            R::ListNodeSubscriptions { .. } => "list_node_subscriptions",
            R::LookupClientSubscriptions { .. } => "lookup_client_subscriptions",
            R::LookupClientSubscriptionsWithNode { .. } => "lookup_client_subscriptions_with_node",
            R::CreateRule => "create_rule",
            R::ListRules => "list_rules",
            R::ShowRule { .. } => "show_rule",
            R::DeleteRule { .. } => "delete_rule",
            R::ListActions => "list_actions",
            R::ShowAction { .. } => "show_action",
            R::ListResources => "list_resources",
            R::CreateResource => "create_resource",
            R::ShowResource { .. } => "show_resource",
            R::GetResourceStatus { .. } => "get_resource_status",
            R::StartResource { .. } => "start_resource",
            R::DeleteResource { .. } => "delete_resource",
            R::ListResourceTypes => "list_resource_types",
            R::ShowResourceType { .. } => "show_resource_type",
            R::ListResourcesByType { .. } => "list_resources_by_type",
            R::ListActionsByType { .. } => "list_actions_by_type",
            R::ListEvents => "list_events",
        }
    }

    /// The `:node` variable, when the route has one. Any node name other than ours is 404.
    pub fn node(&self) -> Option<&str> {
        use Route as R;
        match self {
            R::ListNodeAlarms { node }
            | R::ListNodeAlarmHistory { node }
            | R::GetBroker { node }
            | R::GetNodeConfigs { node }
            | R::UpdateNodeConfig { node, .. }
            | R::GetPluginConfigs { node, .. }
            | R::UpdatePluginConfigs { node, .. }
            | R::ListNodeConnections { node }
            | R::LookupNodeConnections { node, .. }
            | R::LookupNodeConnectionViaUsername { node, .. }
            | R::ListNodeListeners { node }
            | R::ListNodeMetrics { node }
            | R::GetNode { node }
            | R::ListNodePlugins { node }
            | R::LoadPlugin { node, .. }
            | R::UnloadPlugin { node, .. }
            | R::ReloadPlugin { node, .. }
            | R::ListNodeSessions { node }
            | R::LookupNodeSession { node, .. }
            | R::CleanNodePersistentSession { node, .. }
            | R::LookupNodeStats { node }
            | R::ListNodeSubscriptions { node }
            | R::LookupClientSubscriptionsWithNode { node, .. } => Some(node),
            _ => None,
        }
    }

    /// The plugin that owns this route, if it is not `emqx_management` itself. While that
    /// plugin is not loaded the route answers 404 (as in EMQ X 3.x).
    pub fn plugin(&self) -> Option<&'static str> {
        use Route as R;
        match self {
            R::ListClientid
            | R::LookupClientid { .. }
            | R::AddClientid
            | R::UpdateClientid { .. }
            | R::DeleteClientid { .. } => Some("emqx_auth_clientid"),
            R::ListUsername
            | R::LookupUsername { .. }
            | R::AddUsername
            | R::UpdateUsername { .. }
            | R::DeleteUsername { .. } => Some("emqx_auth_username"),
            R::AuthUser
            | R::CreateUser
            | R::ListUsers
            | R::UpdateUser { .. }
            | R::DeleteUser { .. }
            | R::ChangePwd { .. } => Some("emqx_dashboard"),
            R::CreateRule
            | R::ListRules
            | R::ShowRule { .. }
            | R::DeleteRule { .. }
            | R::ListActions
            | R::ShowAction { .. }
            | R::ListResources
            | R::CreateResource
            | R::ShowResource { .. }
            | R::GetResourceStatus { .. }
            | R::StartResource { .. }
            | R::DeleteResource { .. }
            | R::ListResourceTypes
            | R::ShowResourceType { .. }
            | R::ListResourcesByType { .. }
            | R::ListActionsByType { .. }
            | R::ListEvents => Some("emqx_rule_engine"),
            _ => None,
        }
    }

    /// Whether Basic auth is required. `GET /status` and `POST /api/v3/auth` are open.
    pub fn needs_auth(&self) -> bool {
        !matches!(self, Route::Status | Route::AuthUser)
    }

    /// Whether the route takes `_page` / `_limit` and answers with `meta` (api-notes item 4).
    pub fn is_paginated(&self) -> bool {
        use Route as R;
        matches!(
            self,
            R::ListConnections
                | R::ListNodeConnections { .. }
                | R::ListSessions
                | R::ListNodeSessions { .. }
                | R::ListSubscriptions
                | R::ListNodeSubscriptions { .. }
                | R::ListRoutes
                | R::ListBanned
        )
    }
}
