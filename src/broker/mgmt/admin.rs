//! The management thread's administration calls: answers the administration [`ApiCall`]s
//! on the admin state ([`super::state`]), writes every change to the data directory before
//! answering, and puts the result in force on every shard with `ShardMsg::Policy` (waiting
//! for each shard's ack, with a deadline).
//!
//! Runs on the management executor; file writes are blocking but rare (admin changes only).
//! Must never: run on a shard, answer before a change is persisted and acknowledged by the
//! shards that answered, or return a secret or password except an app's secret at creation.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{json, Value};
use shardmq_http::collector::{ApiAnswer, ApiCall, AuthTable, Coverage};
use shardmq_http::{ApiError, ErrorCode};

use super::collector::{all_shards, page, Broker};
use super::state::err;
use crate::admin::configs::{self, ConfigError};
use crate::admin::hash::PasswordHash;
use crate::admin::plugins::{self, PLUGINS, PLUGIN_VERSION};
use crate::admin::store::{self, AdminState};
use crate::broker::msg::ShardMsg;

/// What a call changed: which table to write, and whether the shards need a new policy.
struct Change {
    table: &'static str,
    policy: bool,
}

impl Broker {
    /// Sends the current policy to every shard and waits for their acks (with the deadline).
    pub async fn push_policy(&self) -> Coverage {
        let policy = Arc::new(self.admin.policy());
        let shards = all_shards(self.facts.shards);
        let (req, waiter) = self.replies.register(shards.len());
        for s in shards {
            self.mesh.send(
                s,
                ShardMsg::Policy {
                    req,
                    policy: policy.clone(),
                },
            );
        }
        self.wait(waiter, self.facts.shards).await.1
    }

    /// Reads `acl.file` again and, when it parses, enforces its rules from now on (every
    /// shard gets the new policy); when it does not, the rules in force stay and the error is
    /// logged.
    pub async fn reload_acl(&self) {
        // The TLS listeners' certificates too (renewals without a restart): new connections
        // get the new ones, live ones keep theirs; a file that does not read keeps the old.
        match crate::transport::TlsConfigs::load(&self.admin.base) {
            Ok(tls) => {
                if tls.ssl.is_some() || tls.wss.is_some() {
                    tracing::info!("TLS certificates read again");
                }
                *self.admin.tls.borrow_mut() = Some(tls);
            }
            Err(e) => tracing::error!("TLS certificates not reloaded, the old ones stay: {e}"),
        }
        match super::state::read_acl(&self.admin.base.acl.file) {
            Ok(acl) => {
                *self.admin.acl.borrow_mut() = acl;
                let cov = self.push_policy().await;
                tracing::info!(
                    "ACL reloaded; {}/{} shards enforce it",
                    cov.responded,
                    cov.total
                );
            }
            Err(e) => tracing::error!("ACL not reloaded, the rules in force stay: {e}"),
        }
    }

    /// Answers an administration call.
    pub async fn admin_call(&self, call: ApiCall) -> (ApiAnswer, Coverage) {
        let complete = Coverage {
            responded: self.facts.shards as u32,
            total: self.facts.shards as u32,
        };
        let (answer, change) = match self.rule_call(call).await {
            Ok((answer, table)) => (
                answer,
                table.map(|table| Change {
                    table,
                    policy: true,
                }),
            ),
            Err(call) => self.admin_apply(call),
        };
        let Some(change) = change else {
            return (answer, complete);
        };
        if let Err(failed) = self.admin.persist(change.table) {
            return (*failed, complete);
        }
        let coverage = if change.policy {
            self.push_policy().await
        } else {
            complete
        };
        (answer, coverage)
    }

    /// The synchronous part: validate, change the state, say what to persist.
    fn admin_apply(&self, call: ApiCall) -> (ApiAnswer, Option<Change>) {
        let admin = &self.admin;
        let changed = |table, policy| Some(Change { table, policy });
        let now = crate::broker::shard::unix_secs();
        match call {
            ApiCall::ListAuth { table } => {
                let state = admin.state.borrow();
                let ids: Vec<&String> = auth_table(&state, table).keys().collect();
                (ApiAnswer::Data(json!(ids)), None)
            }
            ApiCall::LookupAuth { table, id } => {
                let state = admin.state.borrow();
                let data = match auth_table(&state, table).get(&id) {
                    Some(h) => json!({ table.field(): id, "password": h.hash_hex() }),
                    None => json!({}),
                };
                (ApiAnswer::Data(data), None)
            }
            ApiCall::AddAuth {
                table,
                id,
                password,
            } => {
                let algo = admin.hash_algo(table);
                let mut state = admin.state.borrow_mut();
                let map = auth_table_mut(&mut state, table);
                if map.contains_key(&id) {
                    return (err(ErrorCode::UserExists, "already_existed"), None);
                }
                map.insert(id, PasswordHash::new(algo, password.as_bytes()));
                (ApiAnswer::Done, changed(auth_file(table), true))
            }
            ApiCall::UpdateAuth {
                table,
                id,
                password,
            } => {
                let algo = admin.hash_algo(table);
                let mut state = admin.state.borrow_mut();
                match auth_table_mut(&mut state, table).get_mut(&id) {
                    Some(h) => *h = PasswordHash::new(algo, password.as_bytes()),
                    None => return (err(ErrorCode::UserNotFound, "not_existed"), None),
                }
                (ApiAnswer::Done, changed(auth_file(table), true))
            }
            ApiCall::DeleteAuth { table, id } => {
                let removed = auth_table_mut(&mut admin.state.borrow_mut(), table)
                    .remove(&id)
                    .is_some();
                (
                    ApiAnswer::Done,
                    removed.then_some(Change {
                        table: auth_file(table),
                        policy: true,
                    }),
                )
            }
            ApiCall::AuthUser { username, password } => {
                match admin.credentials.borrow().login(&username, &password) {
                    Ok(()) => (ApiAnswer::Done, None),
                    Err(e) => (ApiAnswer::Failed(e), None),
                }
            }
            ApiCall::CreateUser {
                username,
                password,
                tags,
            } => users(
                admin
                    .credentials
                    .borrow_mut()
                    .add_user(&username, &password, &tags),
            ),
            ApiCall::ListUsers => (
                ApiAnswer::Data(json!(admin.credentials.borrow().user_infos())),
                None,
            ),
            ApiCall::UpdateUser { username, tags } => {
                users(admin.credentials.borrow_mut().update_user(&username, &tags))
            }
            ApiCall::DeleteUser { username } => {
                users(admin.credentials.borrow_mut().delete_user(&username))
            }
            ApiCall::ChangePwd { username, old, new } => users(
                admin
                    .credentials
                    .borrow_mut()
                    .change_password(&username, &old, &new),
            ),
            ApiCall::AddApp(params) => match admin.credentials.borrow_mut().add_app(&params) {
                Ok(secret) => (
                    ApiAnswer::Data(json!({ "secret": secret })),
                    changed(store::APPS, false),
                ),
                Err(e) => (ApiAnswer::Failed(e), None),
            },
            ApiCall::ListApps => (
                ApiAnswer::Data(json!(admin.credentials.borrow().app_infos())),
                None,
            ),
            ApiCall::LookupApp { app_id } => {
                let infos = admin.credentials.borrow().app_infos();
                let data = infos
                    .into_iter()
                    .find(|a| a.app_id == app_id)
                    .map(|a| json!(a))
                    .unwrap_or_else(|| json!([]));
                (ApiAnswer::Data(data), None)
            }
            ApiCall::UpdateApp { app_id, update } => {
                match admin.credentials.borrow_mut().update_app(&app_id, &update) {
                    Ok(()) => (ApiAnswer::Done, changed(store::APPS, false)),
                    Err(e) => (ApiAnswer::Failed(e), None),
                }
            }
            ApiCall::DelApp { app_id } => {
                admin.credentials.borrow_mut().delete_app(&app_id);
                (ApiAnswer::Done, changed(store::APPS, false))
            }
            ApiCall::ListBanned { paging } => {
                let mut state = admin.state.borrow_mut();
                // Expired bans are purged when listed (EMQ X purges every minute).
                let before = state.bans.len();
                state.bans.retain(|b| b.until.is_none_or(|t| t >= now));
                let purged = state.bans.len() != before;
                let rows = page(state.bans.clone(), paging);
                drop(state);
                (
                    ApiAnswer::Banned(rows),
                    purged.then_some(Change {
                        table: store::BANNED,
                        policy: true,
                    }),
                )
            }
            ApiCall::CreateBanned(ban) => {
                let mut state = admin.state.borrow_mut();
                state
                    .bans
                    .retain(|b| !(b.who == ban.who && b.kind == ban.kind));
                state.bans.push(ban.clone());
                (ApiAnswer::Data(json!(ban)), changed(store::BANNED, true))
            }
            ApiCall::DeleteBanned { who, kind } => {
                admin
                    .state
                    .borrow_mut()
                    .bans
                    .retain(|b| !(b.who == who && b.kind == kind));
                (ApiAnswer::Done, changed(store::BANNED, true))
            }
            ApiCall::ListPlugins => {
                let state = admin.state.borrow();
                let rows: Vec<Value> = PLUGINS
                    .iter()
                    .map(|p| {
                        json!({
                            "name": p.name,
                            "version": PLUGIN_VERSION,
                            "description": p.description,
                            "active": state.plugin_active(p.name),
                        })
                    })
                    .collect();
                (ApiAnswer::Data(Value::Array(rows)), None)
            }
            ApiCall::LoadPlugin { name } => self.set_plugin(&name, Some(true)),
            ApiCall::UnloadPlugin { name } => self.set_plugin(&name, Some(false)),
            ApiCall::ReloadPlugin { name } => self.set_plugin(&name, None),
            ApiCall::ListConfigs => {
                let cfg = admin.effective_config();
                let state = admin.state.borrow();
                let rows: Vec<Value> = configs::KEYS
                    .iter()
                    .map(|k| {
                        json!({
                            "key": k.key,
                            "value": configs::display(k, &cfg, &state.configs),
                            "datatpye": k.datatype.name(),
                            "app": k.app,
                        })
                    })
                    .collect();
                (ApiAnswer::Data(Value::Array(rows)), None)
            }
            ApiCall::SetConfig { app, key, value } => self.set_configs(&app, vec![(key, value)]),
            ApiCall::GetPluginConfigs { plugin } => {
                if plugins::plugin(&plugin).is_none() {
                    return (ApiAnswer::Failed(ApiError::not_found()), None);
                }
                let cfg = admin.effective_config();
                let state = admin.state.borrow();
                let rows: Vec<Value> = configs::keys_of(&plugin)
                    .map(|k| {
                        json!({
                            "key": k.key,
                            "value": configs::display(k, &cfg, &state.configs),
                            "desc": k.desc,
                            "required": true,
                        })
                    })
                    .collect();
                (ApiAnswer::Data(Value::Array(rows)), None)
            }
            ApiCall::SetPluginConfigs { plugin, values } => {
                if plugins::plugin(&plugin).is_none() {
                    return (ApiAnswer::Failed(ApiError::not_found()), None);
                }
                self.set_configs(&plugin, values)
            }
            ApiCall::Alarms { history } => {
                let alarms = admin.alarms.borrow();
                let data = if history {
                    json!(alarms.history())
                } else {
                    json!(alarms.present())
                };
                (ApiAnswer::Data(data), None)
            }
            _ => (err(ErrorCode::Unknown, "not_supported"), None),
        }
    }

    /// Load (`Some(true)`), unload (`Some(false)`) or reload (`None`) a plugin.
    fn set_plugin(&self, name: &str, load: Option<bool>) -> (ApiAnswer, Option<Change>) {
        let Some(spec) = plugins::plugin(name) else {
            return (ApiAnswer::Failed(ApiError::not_found()), None);
        };
        if !spec.native || (name == plugins::MANAGEMENT && load != Some(true)) {
            return (err(ErrorCode::Unknown, "not_supported"), None);
        }
        let mut state = self.admin.state.borrow_mut();
        let active = state.plugin_active(name);
        match load {
            Some(true) if active => return (err(ErrorCode::PluginLoaded, "already_started"), None),
            Some(false) if !active => {
                return (err(ErrorCode::PluginNotLoaded, "not_started"), None)
            }
            _ => {}
        }
        state.plugins.insert(name.to_string(), load.unwrap_or(true));
        let answer = ApiAnswer::Done;
        (
            answer,
            Some(Change {
                table: store::PLUGINS_TABLE,
                policy: true,
            }),
        )
    }

    /// Validates every `(key, value)` for `app` against the current configuration, then
    /// applies them all (or none).
    fn set_configs(&self, app: &str, values: Vec<(String, String)>) -> (ApiAnswer, Option<Change>) {
        if plugins::plugin(app).is_none() && app != "emqx" {
            return (ApiAnswer::Failed(ApiError::not_found()), None);
        }
        let mut cfg = self.admin.effective_config();
        let mut accepted = Vec::new();
        for (key, raw) in values {
            match configs::validate(&cfg, app, &key, &raw) {
                Ok(value) => {
                    if configs::KEYS
                        .iter()
                        .any(|k| k.key == key && k.target == configs::Target::Config)
                    {
                        let _ = cfg.apply_set(&format!("{key}={value}"));
                    }
                    accepted.push((key, value));
                }
                Err(ConfigError::UnknownKey(k)) => {
                    return (
                        err(ErrorCode::Unknown, format!("unknown_config_key: {k}")),
                        None,
                    )
                }
                Err(ConfigError::BadValue(why)) => {
                    return (err(ErrorCode::ParameterType, format!("{key}: {why}")), None)
                }
            }
        }
        let mut state = self.admin.state.borrow_mut();
        for (key, value) in accepted {
            state.configs.insert(key, value);
        }
        (
            ApiAnswer::Done,
            Some(Change {
                table: store::CONFIGS,
                policy: true,
            }),
        )
    }
}

fn users(result: Result<(), ApiError>) -> (ApiAnswer, Option<Change>) {
    match result {
        Ok(()) => (
            ApiAnswer::Done,
            Some(Change {
                table: store::USERS,
                policy: false,
            }),
        ),
        Err(e) => (ApiAnswer::Failed(e), None),
    }
}

fn auth_file(table: AuthTable) -> &'static str {
    match table {
        AuthTable::ClientId => store::AUTH_CLIENTID,
        AuthTable::Username => store::AUTH_USERNAME,
    }
}

fn auth_table(state: &AdminState, table: AuthTable) -> &BTreeMap<String, PasswordHash> {
    match table {
        AuthTable::ClientId => &state.auth_clientid,
        AuthTable::Username => &state.auth_username,
    }
}

fn auth_table_mut(state: &mut AdminState, table: AuthTable) -> &mut BTreeMap<String, PasswordHash> {
    match table {
        AuthTable::ClientId => &mut state.auth_clientid,
        AuthTable::Username => &mut state.auth_username,
    }
}
