//! The management thread's admin state: apps and users (shared with the HTTP layer's
//! credential check), auth tables, bans, plugin states, changed configs and the alarm
//! monitors' state, where they are kept (`[node] data_dir`), and the [`Policy`] snapshot the
//! shards enforce. The API calls that change it are answered in [`super::admin`].
//!
//! Runs on the management executor; file writes are blocking but rare (admin changes only).
//! Must never: run on a shard, or know how requests reach it (no `Broker` here).

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::io;
use std::rc::Rc;
use std::sync::Arc;

use shardmq_http::auth::{Bootstrap, CredentialStore};
use shardmq_http::collector::{ApiAnswer, AuthTable};
use shardmq_http::{ApiError, ErrorCode};

use super::monitors::Alarms;
use std::sync::atomic::AtomicBool;
use std::sync::OnceLock;

use crate::admin::acl::Acl;
use crate::admin::configs;
use crate::admin::hash::{HashAlgo, PasswordHash};
use crate::admin::plugins;
use crate::admin::policy::{Ban, Policy};
use crate::admin::store::{self, AdminState, Store};
use crate::config::Config;

/// The admin state and where it is kept.
pub struct Admin {
    pub state: RefCell<AdminState>,
    pub store: Store,
    pub base: Arc<Config>,
    /// The apps and users, shared with the HTTP layer (Basic auth reads them).
    pub credentials: Rc<RefCell<CredentialStore>>,
    pub alarms: RefCell<Alarms>,
    /// The rules of `acl.file`, read at start and again on [`reload_flag`] (SIGHUP).
    pub acl: RefCell<Arc<Acl>>,
    /// The TLS listeners' certificates as last read again (SIGHUP); `None` until then (the
    /// shards have what was read at start).
    pub tls: RefCell<Option<crate::transport::TlsConfigs>>,
}

/// Set (by the SIGHUP handler `main` installs) when `acl.file` should be read again; the
/// management thread checks it at its next poll and pushes the new rules to the shards.
pub fn reload_flag() -> Arc<AtomicBool> {
    static FLAG: OnceLock<Arc<AtomicBool>> = OnceLock::new();
    FLAG.get_or_init(Default::default).clone()
}

/// The rules of the ACL file at `path` (none when the path is empty).
pub fn read_acl(path: &str) -> io::Result<Arc<Acl>> {
    if path.is_empty() {
        return Ok(Default::default());
    }
    let text = std::fs::read_to_string(path)
        .map_err(|e| io::Error::new(e.kind(), format!("acl.file {path}: {e}")))?;
    let acl = Acl::parse(&text)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("acl.file {path}: {e}")))?;
    tracing::info!("ACL: {} rules from {path}", acl.rules.len());
    Ok(Arc::new(acl))
}

/// A failed answer with this code.
pub(super) fn err(code: ErrorCode, message: impl Into<String>) -> ApiAnswer {
    ApiAnswer::Failed(ApiError::new(code, message))
}

impl Admin {
    /// Loads the state from `[node] data_dir` (a first start writes the bootstrap state).
    pub fn load(base: Arc<Config>) -> io::Result<Admin> {
        let store = Store::open(&base.node.data_dir)?;
        let boot = Bootstrap::default();
        let first = !std::path::Path::new(&base.node.data_dir)
            .join(format!("{}.json", store::APPS))
            .exists();
        let state = store.load(&boot, base.retainer.enable)?;
        if first {
            store.save_all(&state)?;
        }
        let credentials = Rc::new(RefCell::new(state.credentials.clone()));
        for who in credentials.borrow().defaults_in_use(&boot) {
            tracing::warn!("management API: {who} still uses its default secret; change it");
        }
        let acl = RefCell::new(read_acl(&base.acl.file)?);
        Ok(Admin {
            acl,
            state: RefCell::new(state),
            store,
            base,
            credentials,
            alarms: RefCell::new(Alarms::default()),
            tls: RefCell::new(None),
        })
    }

    /// The configuration with the API's changes applied.
    pub fn effective_config(&self) -> Config {
        configs::effective(&self.base, &self.state.borrow().configs)
    }

    /// The snapshot shards enforce.
    pub fn policy(&self) -> Policy {
        let cfg = self.effective_config();
        let state = self.state.borrow();
        let mut p = Policy::from_config(&cfg);
        p.bans = state
            .bans
            .iter()
            .map(|b| Ban {
                who: b.who.clone(),
                kind: b.kind,
                until: b.until,
            })
            .collect();
        let table = |on: bool, t: &BTreeMap<String, PasswordHash>| {
            on.then(|| t.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        };
        p.auth_clientid = table(
            state.plugin_active(plugins::AUTH_CLIENTID),
            &state.auth_clientid,
        );
        p.auth_username = table(
            state.plugin_active(plugins::AUTH_USERNAME),
            &state.auth_username,
        );
        p.retainer = state.plugin_active(plugins::RETAINER);
        p.delayed_publish = state.plugin_active(plugins::DELAYED_PUBLISH);
        p.acl = self.acl.borrow().clone();
        p.tls = self.tls.borrow().clone();
        // The rule engine runs while its plugin is loaded. Stored rules were validated when
        // created; one that no longer is is left out.
        let mut rules = crate::rules::RuleSet::default();
        if state.plugin_active(plugins::RULE_ENGINE) {
            let list = state
                .rules
                .iter()
                .filter_map(|r| crate::rules::Rule::from_body(r, None, None).ok())
                .collect();
            rules = crate::rules::RuleSet::new(list, web_targets(&state.resources));
        }
        // The web hook plugin's own hooks, while it is loaded.
        if state.plugin_active(plugins::WEB_HOOK) {
            let setting = |k: &configs::ConfigKey| configs::display(k, &cfg, &state.configs);
            let keys: Vec<(&str, String)> = configs::keys_of(plugins::WEB_HOOK)
                .map(|k| (k.key, setting(k)))
                .collect();
            let url = keys
                .iter()
                .find(|(k, _)| *k == "web.hook.api.url")
                .map(|(_, v)| v.clone())
                .unwrap_or_default();
            match crate::rules::plugin_hooks::PluginHooks::from_settings(
                &url,
                keys.iter().map(|(k, v)| (*k, v.as_str())),
            ) {
                Ok(hooks) => rules = rules.with_plugin(hooks),
                Err(e) => tracing::error!(
                    "emqx_web_hook: its settings do not read, it posts nothing: {e}"
                ),
            }
        }
        p.rules = Arc::new(rules);
        p
    }

    /// Writes `table` (apps and users are taken from the shared credential store).
    pub(super) fn persist(&self, table: &str) -> Result<(), Box<ApiAnswer>> {
        let mut state = self.state.borrow_mut();
        if table == store::APPS || table == store::USERS {
            state.credentials = self.credentials.borrow().clone();
        }
        self.store.save(&state, table).map_err(|e| {
            tracing::error!("writing the {table} table: {e}");
            Box::new(err(ErrorCode::Unknown, format!("persistence failed: {e}")))
        })
    }

    pub(super) fn hash_algo(&self, table: AuthTable) -> HashAlgo {
        let key = match table {
            AuthTable::ClientId => "auth.client.password_hash",
            AuthTable::Username => "auth.user.password_hash",
        };
        self.state
            .borrow()
            .configs
            .get(key)
            .and_then(|v| HashAlgo::parse(v))
            .unwrap_or(HashAlgo::Sha256)
    }
}

/// The web hook resources among `resources` (id → where to post); one whose config no longer
/// reads is left out (its actions fail).
pub(super) fn web_targets(
    resources: &[serde_json::Value],
) -> std::collections::HashMap<String, Arc<crate::rules::webhook::WebTarget>> {
    resources
        .iter()
        .filter(|r| r["type"] == "web_hook")
        .filter_map(|r| {
            let id = r["id"].as_str()?.to_string();
            let target = crate::rules::webhook::WebTarget::from_config(&r["config"]).ok()?;
            Some((id, Arc::new(target)))
        })
        .collect()
}
