//! The administration handlers: auth_clientid / auth_username, dashboard users, apps, bans,
//! plugins, configs, plugin configs and alarms. Each route's body and query are validated
//! here (107 missing, 108 wrong type, 109 not JSON) and turned into one [`ApiCall`]; the
//! answer is wrapped in the document's shape (per-node lists for the cluster forms).
//!
//! Pure over the [`Collector`] seam, runs on the management thread. Must never: hold admin
//! state (the broker does), or put a secret or password into a response it did not get
//! from the broker.

use serde_json::{json, Map, Value};

use crate::api::{body_json, failed, opt_string, req_string, unexpected, Api};
use crate::collector::{ApiAnswer, ApiCall, AppParams, AppUpdate, AuthTable, Collector, Coverage};
use crate::model::{BanKind, Banned};
use crate::parse::Request;
use crate::response::{ApiError, ErrorCode, Paging, Response};
use crate::route::Route;

type Answer = Result<(Response, Coverage), Response>;

fn type_error(what: &str) -> Response {
    failed(ApiError::new(ErrorCode::ParameterType, what))
}

fn opt_bool(map: &Map<String, Value>, key: &str) -> Result<Option<bool>, Response> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(Value::String(s)) if s == "true" || s == "false" => Ok(Some(s == "true")),
        Some(_) => Err(type_error(&format!("{key} must be a boolean"))),
    }
}

/// Unix seconds; `"undefined"`/null = never. `Some(None)` when the key says "never".
fn opt_expiry(map: &Map<String, Value>, key: &str) -> Result<Option<Option<u64>>, Response> {
    match map.get(key) {
        None => Ok(None),
        Some(Value::Null) => Ok(Some(None)),
        Some(Value::String(s)) if s == "undefined" || s.is_empty() => Ok(Some(None)),
        Some(Value::String(s)) => s
            .parse()
            .map(|t| Some(Some(t)))
            .map_err(|_| type_error(&format!("{key} must be Unix seconds"))),
        Some(Value::Number(n)) => n
            .as_u64()
            .map(|t| Some(Some(t)))
            .ok_or_else(|| type_error(&format!("{key} must be Unix seconds"))),
        Some(_) => Err(type_error(&format!("{key} must be Unix seconds"))),
    }
}

/// A config value: a JSON string (numbers and booleans are taken as their text).
fn value_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn ban_kind(raw: Option<String>) -> Result<BanKind, Response> {
    let raw = raw.ok_or_else(|| {
        failed(ApiError::new(
            ErrorCode::MissingParameter,
            "missing mandatory params: ['as']",
        ))
    })?;
    match raw.as_str() {
        "client_id" => Ok(BanKind::ClientId),
        "username" => Ok(BanKind::Username),
        "ip_address" => Ok(BanKind::IpAddress),
        _ => Err(type_error(
            "value of 'as' must be one of: ['client_id', 'username', 'ip_address']",
        )),
    }
}

/// A ban from a `POST /banned` body, checked: `who` of an `ip_address` ban must be an IP
/// address, and an `until` at or before `now` (Unix seconds) would never take effect, so both
/// are refused (108) instead of answering 0 for a ban that is never listed or enforced.
fn banned_params(map: Map<String, Value>, now: u64) -> Result<Banned, Response> {
    let who = opt_string(&map, "who")?;
    let kind = opt_string(&map, "as")?;
    if who.as_deref().is_none_or(str::is_empty) || kind.is_none() {
        let mut missing = Vec::new();
        if who.as_deref().is_none_or(str::is_empty) {
            missing.push("'who'");
        }
        if kind.is_none() {
            missing.push("'as'");
        }
        return Err(failed(ApiError::new(
            ErrorCode::MissingParameter,
            format!("missing mandatory params: [{}]", missing.join(", ")),
        )));
    }
    let who = who.unwrap_or_default();
    let kind = ban_kind(kind)?;
    if kind == BanKind::IpAddress && who.parse::<std::net::IpAddr>().is_err() {
        return Err(type_error(&format!(
            "'who' of an ip_address ban must be an IP address, not {who:?}"
        )));
    }
    let until = opt_expiry(&map, "until")?.flatten();
    if let Some(t) = until.filter(|t| *t <= now) {
        return Err(type_error(&format!(
            "'until' ({t}) is not in the future (now {now}): the ban would never take effect"
        )));
    }
    Ok(Banned {
        who,
        kind,
        reason: opt_string(&map, "reason")?.unwrap_or_default(),
        desc: opt_string(&map, "desc")?.unwrap_or_default(),
        by: opt_string(&map, "by")?,
        until,
    })
}

fn update_auth(table: AuthTable, id: String, req: &Request) -> Result<ApiCall, Response> {
    let password = req_string(&body_json(req)?, "password")?;
    if password.is_empty() {
        return Err(failed(ApiError::new(
            ErrorCode::EmptyCredentials,
            "empty password",
        )));
    }
    Ok(ApiCall::UpdateAuth {
        table,
        id,
        password,
    })
}

/// How an answer is wrapped: the cluster forms list one entry per node.
#[derive(Clone, Copy)]
enum Shape {
    Plain,
    Plugins,
    Configs,
    Alarms,
}

impl Shape {
    fn of(route: &Route) -> Shape {
        match route {
            Route::ListAllPlugins => Shape::Plugins,
            Route::GetAllConfigs => Shape::Configs,
            Route::ListAllAlarms | Route::ListAllAlarmHistory => Shape::Alarms,
            _ => Shape::Plain,
        }
    }
}

impl<C: Collector> Api<C> {
    /// Answers an administration route (already authenticated and node-checked).
    pub(crate) async fn admin(&self, route: Route, req: &Request, paging: Paging) -> Answer {
        let node = self.node.clone();
        let shape = Shape::of(&route);
        let login = matches!(route, Route::AuthUser);
        let call = match route {
            Route::ListClientid => ApiCall::ListAuth {
                table: AuthTable::ClientId,
            },
            Route::ListUsername => ApiCall::ListAuth {
                table: AuthTable::Username,
            },
            Route::LookupClientid { clientid: id } => ApiCall::LookupAuth {
                table: AuthTable::ClientId,
                id,
            },
            Route::LookupUsername { username: id } => ApiCall::LookupAuth {
                table: AuthTable::Username,
                id,
            },
            Route::AddClientid | Route::AddUsername => {
                let table = if matches!(route, Route::AddClientid) {
                    AuthTable::ClientId
                } else {
                    AuthTable::Username
                };
                let map = body_json(req)?;
                let id = req_string(&map, table.field())?;
                let password = req_string(&map, "password")?;
                if id.is_empty() || password.is_empty() {
                    return Err(failed(ApiError::new(
                        ErrorCode::EmptyCredentials,
                        format!("empty {} or password", table.field()),
                    )));
                }
                ApiCall::AddAuth {
                    table,
                    id,
                    password,
                }
            }
            Route::UpdateClientid { clientid: id } => update_auth(AuthTable::ClientId, id, req)?,
            Route::UpdateUsername { username: id } => update_auth(AuthTable::Username, id, req)?,
            Route::DeleteClientid { clientid: id } => ApiCall::DeleteAuth {
                table: AuthTable::ClientId,
                id,
            },
            Route::DeleteUsername { username: id } => ApiCall::DeleteAuth {
                table: AuthTable::Username,
                id,
            },

            Route::AuthUser => {
                let map = body_json(req)?;
                ApiCall::AuthUser {
                    username: opt_string(&map, "username")?.unwrap_or_default(),
                    password: opt_string(&map, "password")?.unwrap_or_default(),
                }
            }
            Route::CreateUser => {
                let map = body_json(req)?;
                ApiCall::CreateUser {
                    username: opt_string(&map, "username")?.unwrap_or_default(),
                    password: opt_string(&map, "password")?.unwrap_or_default(),
                    tags: opt_string(&map, "tags")?.unwrap_or_default(),
                }
            }
            Route::ListUsers => ApiCall::ListUsers,
            Route::UpdateUser { name } => {
                let map = body_json(req)?;
                ApiCall::UpdateUser {
                    username: name,
                    tags: req_string(&map, "tags")?,
                }
            }
            Route::DeleteUser { name } => ApiCall::DeleteUser { username: name },
            Route::ChangePwd { username } => {
                let map = body_json(req)?;
                ApiCall::ChangePwd {
                    username,
                    old: req_string(&map, "old_pwd")?,
                    new: req_string(&map, "new_pwd")?,
                }
            }

            Route::AddApp => {
                let map = body_json(req)?;
                let app_id = req_string(&map, "app_id")?;
                if app_id.is_empty() {
                    return Err(failed(ApiError::new(
                        ErrorCode::MissingParameter,
                        "missing app_id",
                    )));
                }
                ApiCall::AddApp(AppParams {
                    name: opt_string(&map, "name")?.unwrap_or_else(|| app_id.clone()),
                    app_id,
                    secret: opt_string(&map, "secret")?.filter(|s| !s.is_empty()),
                    desc: opt_string(&map, "desc")?.unwrap_or_default(),
                    status: opt_bool(&map, "status")?.unwrap_or(true),
                    expired: opt_expiry(&map, "expired")?.flatten(),
                })
            }
            Route::ListApps => ApiCall::ListApps,
            Route::LookupApp { appid } => ApiCall::LookupApp { app_id: appid },
            Route::UpdateApp { appid } => {
                let map = body_json(req)?;
                ApiCall::UpdateApp {
                    app_id: appid,
                    update: AppUpdate {
                        name: opt_string(&map, "name")?,
                        desc: opt_string(&map, "desc")?,
                        status: opt_bool(&map, "status")?,
                        expired: opt_expiry(&map, "expired")?,
                    },
                }
            }
            Route::DelApp { appid } => ApiCall::DelApp { app_id: appid },

            Route::ListBanned => ApiCall::ListBanned { paging },
            Route::CreateBanned => {
                ApiCall::CreateBanned(banned_params(body_json(req)?, (self.clock)())?)
            }
            Route::DeleteBanned { who } => ApiCall::DeleteBanned {
                kind: ban_kind(req.query_param("as"))?,
                who,
            },

            Route::ListAllPlugins | Route::ListNodePlugins { .. } => ApiCall::ListPlugins,
            Route::LoadPlugin { plugin, .. } => ApiCall::LoadPlugin { name: plugin },
            Route::UnloadPlugin { plugin, .. } => ApiCall::UnloadPlugin { name: plugin },
            Route::ReloadPlugin { plugin, .. } => ApiCall::ReloadPlugin { name: plugin },

            Route::GetAllConfigs | Route::GetNodeConfigs { .. } => ApiCall::ListConfigs,
            Route::UpdateConfig { app } | Route::UpdateNodeConfig { app, .. } => {
                let map = body_json(req)?;
                let key = req_string(&map, "key")?;
                let value = match map.get("value") {
                    None | Some(Value::Null) => {
                        return Err(failed(ApiError::new(
                            ErrorCode::MissingParameter,
                            "missing value",
                        )))
                    }
                    Some(v) => value_text(v).ok_or_else(|| type_error("value must be a string"))?,
                };
                ApiCall::SetConfig { app, key, value }
            }
            Route::GetPluginConfigs { plugin, .. } => ApiCall::GetPluginConfigs { plugin },
            Route::UpdatePluginConfigs { plugin, .. } => {
                let map = body_json(req)?;
                let mut values = Vec::new();
                for (k, v) in &map {
                    let text = value_text(v)
                        .ok_or_else(|| type_error(&format!("{k} must be a string")))?;
                    values.push((k.clone(), text));
                }
                ApiCall::SetPluginConfigs { plugin, values }
            }

            Route::ListAllAlarms | Route::ListNodeAlarms { .. } => {
                ApiCall::Alarms { history: false }
            }
            Route::ListAllAlarmHistory | Route::ListNodeAlarmHistory { .. } => {
                ApiCall::Alarms { history: true }
            }

            Route::CreateRule => {
                let body = body_json(req)?;
                let test = body.get("test").and_then(Value::as_bool) == Some(true)
                    || req.query_param("test").as_deref() == Some("true");
                if test {
                    ApiCall::TestRule(Value::Object(body))
                } else {
                    ApiCall::CreateRule(Value::Object(body))
                }
            }
            Route::ListRules => ApiCall::ListRules,
            Route::ShowRule { id } => ApiCall::ShowRule { id },
            Route::DeleteRule { id } => ApiCall::DeleteRule { id },
            Route::ListActions => ApiCall::ListActions {
                r#for: req.query_param("for"),
            },
            Route::ShowAction { name } => ApiCall::ShowAction { name },
            Route::ListResourceTypes => ApiCall::ListResourceTypes,
            Route::ShowResourceType { name } => ApiCall::ShowResourceType { name },
            Route::ListResourcesByType { r#type } => ApiCall::ListResourcesByType { r#type },
            Route::ListActionsByType { r#type } => ApiCall::ListActionsByType { r#type },
            Route::CreateResource => ApiCall::CreateResource {
                body: Value::Object(body_json(req)?),
                test: req.query_param("test").as_deref() == Some("true"),
            },
            Route::ListResources => ApiCall::ListResources,
            Route::ShowResource { id } => ApiCall::ShowResource { id },
            Route::GetResourceStatus { id } => ApiCall::ResourceStatus { id },
            Route::StartResource { id } => ApiCall::StartResource { id },
            Route::DeleteResource { id } => ApiCall::DeleteResource { id },
            Route::ListEvents => ApiCall::ListEvents,

            _ => return Err(failed(ApiError::new(ErrorCode::Unknown, "not_supported"))),
        };
        let reply = self.collector.call(call).await;
        // A dashboard login is a password check like Basic auth: throttled the same way.
        if login {
            match &reply.answer {
                ApiAnswer::Done => self.login_succeeded(req),
                ApiAnswer::Failed(e)
                    if matches!(e.code, ErrorCode::BadCredentials | ErrorCode::UserNotFound) =>
                {
                    self.login_failed(req)
                }
                _ => {}
            }
        }
        let resp = match (reply.answer, shape) {
            (ApiAnswer::Data(data), Shape::Plugins) => {
                Response::data(&json!([{"node": node, "plugins": data}]))
            }
            (ApiAnswer::Data(data), Shape::Configs) => {
                Response::data(&json!([{"node": node, "config": data}]))
            }
            (ApiAnswer::Data(data), Shape::Alarms) => {
                Response::data(&json!([{"alarms": data, "node": node}]))
            }
            (ApiAnswer::Data(data), _) => Response::data(&data),
            (ApiAnswer::Banned(page), _) => Response::page(&page.rows, paging, page.count),
            (ApiAnswer::Done, _) => Response::ok(),
            (ApiAnswer::Failed(e), _) if e.code == ErrorCode::NotFound => Response::not_found(),
            (other, _) => unexpected(other),
        };
        Ok((resp, reply.coverage))
    }
}
