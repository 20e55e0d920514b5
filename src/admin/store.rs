//! The durable admin state: apps, dashboard users, the auth_clientid / auth_username tables,
//! bans, plugin states and changed configs, kept as one JSON file per table in the data
//! directory, each replaced atomically (temp file, fsync, rename, fsync of the directory), so
//! a crash at any moment leaves the old or the new table, never a torn one.
//!
//! Owns: [`AdminState`] and its file format. Runs on the management thread at start and on
//! the rare admin writes (blocking file I/O is accepted there). Must never: run on a shard,
//! write a plaintext secret or password, or leave a half-written table under its real name.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use shardmq_http::auth::{App, Bootstrap, CredentialStore, SecretHash, User};
use shardmq_http::model::{BanKind, Banned};

use super::hash::PasswordHash;
use super::plugins::PLUGINS;

/// Table names = file names without `.json`.
pub const APPS: &str = "apps";
pub const USERS: &str = "users";
pub const AUTH_CLIENTID: &str = "auth_clientid";
pub const AUTH_USERNAME: &str = "auth_username";
pub const BANNED: &str = "banned";
pub const PLUGINS_TABLE: &str = "plugins";
pub const CONFIGS: &str = "configs";
pub const RULES: &str = "rules";
pub const RESOURCES: &str = "resources";

/// Everything the administration API changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminState {
    pub credentials: CredentialStore,
    pub auth_clientid: BTreeMap<String, PasswordHash>,
    pub auth_username: BTreeMap<String, PasswordHash>,
    pub bans: Vec<Banned>,
    /// Native plugins → loaded.
    pub plugins: BTreeMap<String, bool>,
    /// Config keys changed through the API → canonical value.
    pub configs: BTreeMap<String, String>,
    /// The rule engine's rules, as the API shows them (`rules::Rule::definition`).
    pub rules: Vec<serde_json::Value>,
    /// The rule engine's resources, as the API shows them (`{id, name, type, config,
    /// description, attrs}`), in creation order.
    pub resources: Vec<serde_json::Value>,
}

impl AdminState {
    /// The state of a first start: the bootstrap app and user, the default plugins (the
    /// retainer as `retainer_enabled` says), nothing else.
    pub fn first_start(boot: &Bootstrap, retainer_enabled: bool) -> AdminState {
        AdminState {
            credentials: CredentialStore::bootstrap(boot),
            auth_clientid: BTreeMap::new(),
            auth_username: BTreeMap::new(),
            bans: Vec::new(),
            plugins: default_plugins(retainer_enabled),
            configs: BTreeMap::new(),
            rules: Vec::new(),
            resources: Vec::new(),
        }
    }

    /// Whether a native plugin is loaded (`emqx_management` always is).
    pub fn plugin_active(&self, name: &str) -> bool {
        name == super::plugins::MANAGEMENT || self.plugins.get(name).copied().unwrap_or(false)
    }
}

fn default_plugins(retainer_enabled: bool) -> BTreeMap<String, bool> {
    PLUGINS
        .iter()
        .filter(|p| p.native)
        .map(|p| {
            let on = if p.name == super::plugins::RETAINER {
                retainer_enabled
            } else {
                p.default_active
            };
            (p.name.to_string(), on)
        })
        .collect()
}

#[derive(Serialize, Deserialize)]
struct AppRecord {
    app_id: String,
    secret: String,
    name: String,
    desc: String,
    status: bool,
    expired: Option<u64>,
}

#[derive(Serialize, Deserialize)]
struct UserRecord {
    username: String,
    password: String,
    tags: String,
}

#[derive(Serialize, Deserialize)]
struct BanRecord {
    who: String,
    #[serde(rename = "as")]
    kind: BanKind,
    reason: String,
    desc: String,
    by: Option<String>,
    until: Option<u64>,
}

/// The data directory.
#[derive(Debug, Clone)]
pub struct Store {
    dir: PathBuf,
}

impl Store {
    /// The store in `dir` (created when missing, readable by this user only: the tables
    /// hold password hashes and app secrets).
    pub fn open(dir: impl Into<PathBuf>) -> io::Result<Store> {
        let dir = dir.into();
        create_private_dir(&dir)?;
        Ok(Store { dir })
    }

    fn path(&self, table: &str) -> PathBuf {
        self.dir.join(format!("{table}.json"))
    }

    /// Loads every table; a table without a file gets its first-start value. Leftover temp
    /// files of an interrupted write are removed. A file that does not parse is an error
    /// (the broker refuses to start rather than silently reset credentials).
    pub fn load(&self, boot: &Bootstrap, retainer_enabled: bool) -> io::Result<AdminState> {
        for entry in fs::read_dir(&self.dir)? {
            let path = entry?.path();
            if path.extension().is_some_and(|e| e == "tmp") {
                let _ = fs::remove_file(&path);
            }
        }
        let mut state = AdminState::first_start(boot, retainer_enabled);
        if let Some(apps) = self.read::<Vec<AppRecord>>(APPS)? {
            state.credentials.apps = apps
                .into_iter()
                .map(|a| {
                    Ok(App {
                        secret: SecretHash::decode(&a.secret).ok_or_else(|| corrupt(APPS))?,
                        app_id: a.app_id,
                        name: a.name,
                        desc: a.desc,
                        status: a.status,
                        expired: a.expired,
                    })
                })
                .collect::<io::Result<_>>()?;
        }
        if let Some(users) = self.read::<Vec<UserRecord>>(USERS)? {
            state.credentials.users = users
                .into_iter()
                .map(|u| {
                    Ok(User {
                        password: SecretHash::decode(&u.password).ok_or_else(|| corrupt(USERS))?,
                        username: u.username,
                        tags: u.tags,
                    })
                })
                .collect::<io::Result<_>>()?;
        }
        for (table, target) in [
            (AUTH_CLIENTID, &mut state.auth_clientid),
            (AUTH_USERNAME, &mut state.auth_username),
        ] {
            if let Some(map) = self.read::<BTreeMap<String, String>>(table)? {
                *target = map
                    .into_iter()
                    .map(|(k, v)| Ok((k, PasswordHash::decode(&v).ok_or_else(|| corrupt(table))?)))
                    .collect::<io::Result<_>>()?;
            }
        }
        if let Some(bans) = self.read::<Vec<BanRecord>>(BANNED)? {
            state.bans = bans
                .into_iter()
                .map(|b| Banned {
                    who: b.who,
                    kind: b.kind,
                    reason: b.reason,
                    desc: b.desc,
                    by: b.by,
                    until: b.until,
                })
                .collect();
        }
        if let Some(plugins) = self.read::<BTreeMap<String, bool>>(PLUGINS_TABLE)? {
            for (name, on) in plugins {
                if let Some(slot) = state.plugins.get_mut(&name) {
                    *slot = on;
                }
            }
        }
        if let Some(configs) = self.read(CONFIGS)? {
            state.configs = configs;
        }
        if let Some(rules) = self.read(RULES)? {
            state.rules = rules;
        }
        if let Some(resources) = self.read(RESOURCES)? {
            state.resources = resources;
        }
        Ok(state)
    }

    fn read<T: DeserializeOwned>(&self, table: &str) -> io::Result<Option<T>> {
        match fs::read(self.path(table)) {
            Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
                io::Error::new(io::ErrorKind::InvalidData, format!("{table}.json: {e}"))
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Writes one table of `state` atomically.
    pub fn save(&self, state: &AdminState, table: &str) -> io::Result<()> {
        let json = match table {
            APPS => serde_json::to_vec_pretty(
                &state
                    .credentials
                    .apps
                    .iter()
                    .map(|a| AppRecord {
                        app_id: a.app_id.clone(),
                        secret: a.secret.encode(),
                        name: a.name.clone(),
                        desc: a.desc.clone(),
                        status: a.status,
                        expired: a.expired,
                    })
                    .collect::<Vec<_>>(),
            ),
            USERS => serde_json::to_vec_pretty(
                &state
                    .credentials
                    .users
                    .iter()
                    .map(|u| UserRecord {
                        username: u.username.clone(),
                        password: u.password.encode(),
                        tags: u.tags.clone(),
                    })
                    .collect::<Vec<_>>(),
            ),
            AUTH_CLIENTID | AUTH_USERNAME => {
                let map = if table == AUTH_CLIENTID {
                    &state.auth_clientid
                } else {
                    &state.auth_username
                };
                serde_json::to_vec_pretty(
                    &map.iter()
                        .map(|(k, v)| (k.clone(), v.encode()))
                        .collect::<BTreeMap<_, _>>(),
                )
            }
            BANNED => serde_json::to_vec_pretty(
                &state
                    .bans
                    .iter()
                    .map(|b| BanRecord {
                        who: b.who.clone(),
                        kind: b.kind,
                        reason: b.reason.clone(),
                        desc: b.desc.clone(),
                        by: b.by.clone(),
                        until: b.until,
                    })
                    .collect::<Vec<_>>(),
            ),
            PLUGINS_TABLE => serde_json::to_vec_pretty(&state.plugins),
            CONFIGS => serde_json::to_vec_pretty(&state.configs),
            RULES => serde_json::to_vec_pretty(&state.rules),
            RESOURCES => serde_json::to_vec_pretty(&state.resources),
            other => return Err(io::Error::other(format!("no table {other}"))),
        }
        .map_err(io::Error::other)?;
        atomic_write(&self.dir, &format!("{table}.json"), &json)
    }

    /// Writes every table (used after a first start).
    pub fn save_all(&self, state: &AdminState) -> io::Result<()> {
        for t in [
            APPS,
            USERS,
            AUTH_CLIENTID,
            AUTH_USERNAME,
            BANNED,
            PLUGINS_TABLE,
            CONFIGS,
            RULES,
            RESOURCES,
        ] {
            self.save(state, t)?;
        }
        Ok(())
    }
}

fn corrupt(table: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("{table}.json: bad hash"),
    )
}

/// Takes `<dir>/shardmq.lock` (created when missing) with an exclusive `flock`, held until
/// the returned file is dropped (or the process ends): one broker per data directory. A
/// second one gets `WouldBlock` with a message that names the directory.
pub fn lock_data_dir(dir: &Path) -> io::Result<fs::File> {
    create_private_dir(dir)?;
    let path = dir.join("shardmq.lock");
    let file = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(fs::TryLockError::WouldBlock) => Err(io::Error::new(
            io::ErrorKind::WouldBlock,
            format!(
                "data_dir {} is in use by another broker (it holds {})",
                dir.display(),
                path.display()
            ),
        )),
        Err(fs::TryLockError::Error(e)) => Err(e),
    }
}

/// Creates `dir` (and its parents) when missing, the directory itself `0700`. An existing
/// directory keeps its mode (it may be shared, e.g. `/tmp`); one that others can read gets a
/// warning (the files in it are `0600` regardless).
pub fn create_private_dir(dir: &Path) -> io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    if !dir.exists() {
        if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
            fs::create_dir_all(parent)?;
        }
        match fs::DirBuilder::new().mode(0o700).create(dir) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
    }
    let mode = fs::metadata(dir)?.permissions().mode();
    if mode & 0o077 != 0 {
        tracing::warn!(
            "data_dir {} is readable by other users (mode {:o}); `chmod 700` it",
            dir.display(),
            mode & 0o777
        );
    }
    Ok(())
}

/// Replaces `dir/name` with `bytes` (a file only this user can read or write): write `name.tmp`, fsync it, rename it over `name`,
/// fsync the directory so the rename itself is durable.
pub fn atomic_write(dir: &Path, name: &str, bytes: &[u8]) -> io::Result<()> {
    let tmp = dir.join(format!("{name}.tmp"));
    {
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        // `mode` applies only when the file is created: a leftover from an older version
        // is narrowed too.
        f.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    fs::rename(&tmp, dir.join(name))?;
    fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admin::hash::HashAlgo;

    fn sample() -> AdminState {
        let mut s = AdminState::first_start(&Bootstrap::default(), true);
        s.auth_clientid
            .insert("dev".into(), PasswordHash::new(HashAlgo::Sha256, b"pw"));
        s.auth_username
            .insert("bob".into(), PasswordHash::new(HashAlgo::Sha, b"pw2"));
        s.bans.push(Banned {
            who: "c1".into(),
            kind: BanKind::ClientId,
            reason: "r".into(),
            desc: "d".into(),
            by: Some("admin".into()),
            until: None,
        });
        s.plugins.insert("emqx_auth_clientid".into(), true);
        s.configs
            .insert("mqtt.allow_anonymous".into(), "false".into());
        s
    }

    #[test]
    fn a_saved_state_loads_back_equal_and_holds_no_plaintext() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let state = sample();
        store.save_all(&state).unwrap();
        let loaded = store.load(&Bootstrap::default(), true).unwrap();
        assert_eq!(loaded, state);
        for entry in fs::read_dir(dir.path()).unwrap() {
            let text = fs::read_to_string(entry.unwrap().path()).unwrap();
            assert!(!text.contains("\"public\""), "{text}");
            assert!(!text.contains("\"pw\""), "{text}");
        }
    }

    #[test]
    fn a_crash_before_the_rename_leaves_the_old_table_and_the_leftover_is_removed() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let state = sample();
        store.save_all(&state).unwrap();
        // The crash: a half-written temp file of a newer `banned` table.
        fs::write(
            dir.path().join("banned.json.tmp"),
            b"[{\"who\":\"c2\",\"as\"",
        )
        .unwrap();
        let loaded = store.load(&Bootstrap::default(), true).unwrap();
        assert_eq!(loaded.bans, state.bans);
        assert!(!dir.path().join("banned.json.tmp").exists());
    }

    #[test]
    fn an_empty_directory_is_a_first_start_and_a_torn_table_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("sub")).unwrap();
        let loaded = store.load(&Bootstrap::default(), false).unwrap();
        let first = AdminState::first_start(&Bootstrap::default(), false);
        assert_eq!(loaded.plugins, first.plugins);
        assert_eq!(loaded.credentials.apps.len(), 1);
        assert!(loaded.bans.is_empty() && loaded.configs.is_empty());
        assert!(!loaded.plugin_active("emqx_retainer"));
        assert!(loaded.plugin_active("emqx_management"));
        fs::write(dir.path().join("sub/apps.json"), b"[{").unwrap();
        assert!(store.load(&Bootstrap::default(), false).is_err());
    }

    #[test]
    fn tables_are_private_to_the_user_and_a_new_data_dir_too() {
        use std::os::unix::fs::PermissionsExt;
        let parent = tempfile::tempdir().unwrap();
        let dir = parent.path().join("data");
        let store = Store::open(&dir).unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir), 0o700);
        atomic_write(&dir, "apps.json", b"[]").unwrap();
        assert_eq!(mode(&dir.join("apps.json")), 0o600);
        // A table an older version left world-readable is narrowed on its next write.
        fs::set_permissions(dir.join("apps.json"), fs::Permissions::from_mode(0o644)).unwrap();
        fs::set_permissions(dir.join("apps.json.tmp"), fs::Permissions::from_mode(0o644)).ok();
        drop(store);
        fs::write(dir.join("apps.json.tmp"), b"x").unwrap();
        fs::set_permissions(dir.join("apps.json.tmp"), fs::Permissions::from_mode(0o644)).unwrap();
        atomic_write(&dir, "apps.json", b"[1]").unwrap();
        assert_eq!(mode(&dir.join("apps.json")), 0o600);
    }
}
