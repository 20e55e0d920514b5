//! Credentials: Basic auth parsing, the apps and dashboard users, salted hashes and the
//! first-start bootstrap (api-notes item 5). Pure; the management thread owns the store.
//!
//! Owns: [`parse_basic`], [`SecretHash`] (sha256 over salt ++ secret, compared in constant
//! time), [`App`], [`User`], [`CredentialStore`] and its create/read/update/delete rules.
//! Must never: keep or log a plaintext secret, compare secrets with `==`, read or write files
//! (persistence is the caller's), or read the clock (the caller passes `now`).

use crate::collector::{AppParams, AppUpdate};
use crate::model::{AppInfo, UserInfo};
use crate::response::{ApiError, ErrorCode};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use sha2::{Digest, Sha256};

/// Default app id / user name created on first start.
pub const DEFAULT_LOGIN: &str = "admin";
/// Default secret / password created on first start (a warning is logged while in use).
pub const DEFAULT_SECRET: &str = "public";

/// `user:password` from an `Authorization: Basic ...` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BasicCredentials {
    pub user: String,
    pub password: String,
}

/// Parses an `Authorization` header value: scheme `Basic` (case-insensitive), base64 of
/// `user:password` (split at the first colon; the password may contain colons).
pub fn parse_basic(header: &[u8]) -> Option<BasicCredentials> {
    let text = std::str::from_utf8(header).ok()?.trim();
    let (scheme, token) = text.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = STANDARD.decode(token.trim()).ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (user, password) = decoded.split_once(':')?;
    Some(BasicCredentials {
        user: user.to_string(),
        password: password.to_string(),
    })
}

/// A salted sha256 of a secret. Serialized (for persistence) as `sha256$<salt hex>$<hash hex>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretHash {
    salt: [u8; 16],
    hash: [u8; 32],
}

impl SecretHash {
    /// Hashes `secret` with a fresh random salt.
    pub fn new(secret: &str) -> SecretHash {
        SecretHash::with_salt(secret, random_bytes())
    }

    /// Hashes `secret` with the given salt (deterministic; for tests and imports).
    pub fn with_salt(secret: &str, salt: [u8; 16]) -> SecretHash {
        SecretHash {
            salt,
            hash: digest(&salt, secret),
        }
    }

    /// Whether `secret` matches, in time independent of where the bytes differ.
    pub fn verify(&self, secret: &str) -> bool {
        constant_time_eq(&digest(&self.salt, secret), &self.hash)
    }

    /// `sha256$<salt hex>$<hash hex>`.
    pub fn encode(&self) -> String {
        format!("sha256${}${}", hex(&self.salt), hex(&self.hash))
    }

    /// Parses what [`SecretHash::encode`] wrote.
    pub fn decode(s: &str) -> Option<SecretHash> {
        let mut parts = s.split('$');
        if parts.next()? != "sha256" {
            return None;
        }
        let salt = unhex(parts.next()?)?.try_into().ok()?;
        let hash = unhex(parts.next()?)?.try_into().ok()?;
        if parts.next().is_some() {
            return None;
        }
        Some(SecretHash { salt, hash })
    }
}

fn digest(salt: &[u8], secret: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(salt);
    h.update(secret.as_bytes());
    h.finalize().into()
}

/// Compares two byte strings without an early exit (lengths are not secret).
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

/// 16 bytes from the operating system's random source (`getrandom(2)`), for salts and app
/// secrets. A system that cannot give any is not one to hand out credentials on: this
/// panics, and the API answers that request with 500.
pub fn random_bytes() -> [u8; 16] {
    let mut out = [0u8; 16];
    getrandom::getrandom(&mut out).expect("the OS random source (getrandom) failed");
    out
}

/// A random base62 secret (22 characters, ~128 bits), for apps created without one.
pub fn generate_secret() -> String {
    const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut n = u128::from_le_bytes(random_bytes());
    (0..22)
        .map(|_| {
            let c = ALPHABET[(n % 62) as usize] as char;
            n /= 62;
            c
        })
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// A management application (EMQ X `mqtt_app`): Basic auth `app_id:secret`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct App {
    pub app_id: String,
    pub secret: SecretHash,
    pub name: String,
    pub desc: String,
    /// Enabled.
    pub status: bool,
    /// Unix seconds after which the app is refused; `None` never expires.
    pub expired: Option<u64>,
}

impl App {
    /// Enabled, not expired (`expired >= now` is still valid, as in EMQ X), secret matches.
    pub fn accepts(&self, secret: &str, now_unix: u64) -> bool {
        let valid = self.status && self.expired.is_none_or(|t| t >= now_unix);
        // Verify even when invalid so the timing does not tell which check failed.
        self.secret.verify(secret) && valid
    }

    /// Whether the secret is still [`DEFAULT_SECRET`] (or the configured default).
    pub fn is_default(&self, default_secret: &str) -> bool {
        self.secret.verify(default_secret)
    }
}

/// A dashboard user: Basic auth `username:password`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub username: String,
    pub password: SecretHash,
    pub tags: String,
}

impl User {
    /// Whether the password is still the default one.
    pub fn is_default(&self, default_password: &str) -> bool {
        self.password.verify(default_password)
    }
}

/// Who was authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    App(String),
    User(String),
}

/// The first-start credentials (configurable; `admin` / `public` by default).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bootstrap {
    pub app_id: String,
    pub app_secret: String,
    pub username: String,
    pub password: String,
}

impl Default for Bootstrap {
    fn default() -> Self {
        Bootstrap {
            app_id: DEFAULT_LOGIN.to_string(),
            app_secret: DEFAULT_SECRET.to_string(),
            username: DEFAULT_LOGIN.to_string(),
            password: DEFAULT_SECRET.to_string(),
        }
    }
}

/// All apps and dashboard users. Lives on the management thread.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CredentialStore {
    pub apps: Vec<App>,
    pub users: Vec<User>,
}

impl CredentialStore {
    /// The store of a first start: one app and one user from `boot`.
    pub fn bootstrap(boot: &Bootstrap) -> CredentialStore {
        CredentialStore {
            apps: vec![App {
                app_id: boot.app_id.clone(),
                secret: SecretHash::new(&boot.app_secret),
                name: "Default".to_string(),
                desc: "Application created on first start".to_string(),
                status: true,
                expired: None,
            }],
            users: vec![User {
                username: boot.username.clone(),
                password: SecretHash::new(&boot.password),
                tags: "administrator".to_string(),
            }],
        }
    }

    /// Checks Basic credentials against the apps first, then the users.
    pub fn authenticate(&self, creds: &BasicCredentials, now_unix: u64) -> Option<Principal> {
        if let Some(app) = self.apps.iter().find(|a| a.app_id == creds.user) {
            if app.accepts(&creds.password, now_unix) {
                return Some(Principal::App(app.app_id.clone()));
            }
        }
        let user = self.users.iter().find(|u| u.username == creds.user)?;
        user.password
            .verify(&creds.password)
            .then(|| Principal::User(user.username.clone()))
    }

    /// Checks an `Authorization` header value (`None`: header missing).
    pub fn authorize(&self, header: Option<&[u8]>, now_unix: u64) -> Option<Principal> {
        self.authenticate(&parse_basic(header?)?, now_unix)
    }

    /// The logins that still use their default secret (`"app admin"`, `"user admin"`), to
    /// warn about at start and on every change.
    pub fn defaults_in_use(&self, boot: &Bootstrap) -> Vec<String> {
        let apps = self
            .apps
            .iter()
            .filter(|a| a.app_id == boot.app_id && a.is_default(&boot.app_secret))
            .map(|a| format!("app {}", a.app_id));
        let users = self
            .users
            .iter()
            .filter(|u| u.username == boot.username && u.is_default(&boot.password))
            .map(|u| format!("user {}", u.username));
        apps.chain(users).collect()
    }
}

/// Apps and dashboard users: create, read, update, delete (the `/apps` and `/users` routes).
/// Errors carry the codes of api-notes item 3.
impl CredentialStore {
    /// Adds an app; returns its secret (shown this once). 102 if the id exists.
    pub fn add_app(&mut self, p: &AppParams) -> Result<String, ApiError> {
        if p.app_id.is_empty() {
            return Err(ApiError::new(ErrorCode::MissingParameter, "missing app_id"));
        }
        if self.apps.iter().any(|a| a.app_id == p.app_id) {
            return Err(ApiError::new(ErrorCode::Unknown, "already_existed"));
        }
        let secret = p.secret.clone().unwrap_or_else(generate_secret);
        self.apps.push(App {
            app_id: p.app_id.clone(),
            secret: SecretHash::new(&secret),
            name: p.name.clone(),
            desc: p.desc.clone(),
            status: p.status,
            expired: p.expired,
        });
        Ok(secret)
    }

    /// Changes the given fields of an app. 102 `not_found`.
    pub fn update_app(&mut self, app_id: &str, u: &AppUpdate) -> Result<(), ApiError> {
        let app = self
            .apps
            .iter_mut()
            .find(|a| a.app_id == app_id)
            .ok_or_else(|| ApiError::new(ErrorCode::Unknown, "not_found"))?;
        if let Some(name) = &u.name {
            app.name = name.clone();
        }
        if let Some(desc) = &u.desc {
            app.desc = desc.clone();
        }
        if let Some(status) = u.status {
            app.status = status;
        }
        if let Some(expired) = u.expired {
            app.expired = expired;
        }
        Ok(())
    }

    /// Removes an app (absent: nothing to do).
    pub fn delete_app(&mut self, app_id: &str) {
        self.apps.retain(|a| a.app_id != app_id);
    }

    /// The apps as `GET /apps/` lists them: never the secret.
    pub fn app_infos(&self) -> Vec<AppInfo> {
        self.apps
            .iter()
            .map(|a| AppInfo {
                app_id: a.app_id.clone(),
                name: a.name.clone(),
                desc: a.desc.clone(),
                status: a.status,
                expired: match a.expired {
                    Some(t) => t.into(),
                    None => "undefined".into(),
                },
            })
            .collect()
    }

    /// `POST /auth`: 104 empty, 105 unknown user, 103 wrong password.
    pub fn login(&self, username: &str, password: &str) -> Result<(), ApiError> {
        if username.is_empty() || password.is_empty() {
            return Err(ApiError::new(
                ErrorCode::EmptyCredentials,
                "Username or password undefined",
            ));
        }
        let user = self.user(username)?;
        if user.password.verify(password) {
            Ok(())
        } else {
            Err(ApiError::new(ErrorCode::BadCredentials, "Password Error"))
        }
    }

    fn user(&self, username: &str) -> Result<&User, ApiError> {
        self.users
            .iter()
            .find(|u| u.username == username)
            .ok_or_else(|| ApiError::new(ErrorCode::UserNotFound, "Username Not Found"))
    }

    fn user_mut(&mut self, username: &str) -> Result<&mut User, ApiError> {
        self.users
            .iter_mut()
            .find(|u| u.username == username)
            .ok_or_else(|| ApiError::new(ErrorCode::UserNotFound, "Username Not Found"))
    }

    /// 104 empty, 113 exists.
    pub fn add_user(&mut self, username: &str, password: &str, tags: &str) -> Result<(), ApiError> {
        if username.is_empty() || password.is_empty() {
            return Err(ApiError::new(
                ErrorCode::EmptyCredentials,
                "Username or password undefined",
            ));
        }
        if self.users.iter().any(|u| u.username == username) {
            return Err(ApiError::new(
                ErrorCode::UserExists,
                "Username Already Exist",
            ));
        }
        self.users.push(User {
            username: username.to_string(),
            password: SecretHash::new(password),
            tags: tags.to_string(),
        });
        Ok(())
    }

    /// 105 unknown.
    pub fn update_user(&mut self, username: &str, tags: &str) -> Result<(), ApiError> {
        self.user_mut(username)?.tags = tags.to_string();
        Ok(())
    }

    /// 106 for `admin`, 105 unknown.
    pub fn delete_user(&mut self, username: &str) -> Result<(), ApiError> {
        if username == DEFAULT_LOGIN {
            return Err(ApiError::new(
                ErrorCode::CannotDeleteAdmin,
                "Cannot delete admin",
            ));
        }
        self.user(username)?;
        self.users.retain(|u| u.username != username);
        Ok(())
    }

    /// 105 unknown, 114 wrong old password, 104 empty new password.
    pub fn change_password(
        &mut self,
        username: &str,
        old: &str,
        new: &str,
    ) -> Result<(), ApiError> {
        let user = self.user_mut(username)?;
        if !user.password.verify(old) {
            return Err(ApiError::new(ErrorCode::OldPasswordWrong, "Password Error"));
        }
        if new.is_empty() {
            return Err(ApiError::new(
                ErrorCode::EmptyCredentials,
                "Password undefined",
            ));
        }
        user.password = SecretHash::new(new);
        Ok(())
    }

    /// The users as `GET /users/` lists them: never the password.
    pub fn user_infos(&self) -> Vec<UserInfo> {
        self.users
            .iter()
            .map(|u| UserInfo {
                username: u.username.clone(),
                tags: u.tags.clone(),
            })
            .collect()
    }
}
