//! The runtime-settable configuration: a whitelist of keys per "app" (`emqx` for the broker,
//! one set per native plugin), each with its `datatpye` (api-v3.md's spelling), validation
//! of new values, and the effective configuration with the changed values applied.
//!
//! Owns: [`KEYS`], [`validate`], [`effective`], [`display`]. Pure. Must never: accept a key
//! outside the whitelist, or hand out a value that [`Config::validate`] refuses.

use std::collections::BTreeMap;

use super::hash::HashAlgo;
use crate::config::Config;

/// A value's type, as `GET /configs/` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataType {
    /// `true`/`false` (also `on`/`off`).
    Flag,
    /// A whole number in `min..=max`.
    Integer { min: u64, max: u64 },
    /// One of the listed words.
    Enum(&'static [&'static str]),
    /// Seconds: `30`, `30s`, `5m`, `2h`, `1d`.
    Duration,
    /// Bytes: `1024`, `64KB`, `1MB`, `1GB`.
    ByteSize,
    /// An `http://` URL (the web hook plugin's server).
    Url,
    /// A web hook rule: JSON `{"action": "on_...", "topic": "filter"?}`; empty = off.
    HookSpec,
}

impl DataType {
    pub fn name(self) -> &'static str {
        match self {
            DataType::Flag => "flag",
            DataType::Integer { .. } => "integer",
            DataType::Enum(_) => "enum",
            DataType::Duration => "duration",
            DataType::ByteSize => "bytesize",
            DataType::Url | DataType::HookSpec => "string",
        }
    }

    /// The canonical form of `raw` (integers for durations and sizes), or why it is bad.
    pub fn parse(self, raw: &str) -> Result<String, String> {
        let raw = raw.trim();
        let int = |s: &str| {
            s.parse::<u64>()
                .map_err(|_| format!("{raw:?} is not a {}", self.name()))
        };
        match self {
            DataType::Flag => match raw {
                "true" | "on" => Ok("true".into()),
                "false" | "off" => Ok("false".into()),
                _ => Err(format!("{raw:?} is not a flag (true or false)")),
            },
            DataType::Integer { min, max } => {
                let n = int(raw)?;
                if n < min || n > max {
                    return Err(format!("{n} is outside {min}..={max}"));
                }
                Ok(n.to_string())
            }
            DataType::Enum(words) => words
                .iter()
                .find(|w| **w == raw)
                .map(|w| w.to_string())
                .ok_or_else(|| format!("{raw:?} is not one of {}", words.join(", "))),
            DataType::Duration => {
                let (num, unit) = split_unit(raw);
                let mult = match unit {
                    "" | "s" => 1,
                    "m" => 60,
                    "h" => 3600,
                    "d" => 86_400,
                    _ => return Err(format!("{raw:?} is not a duration")),
                };
                let n = int(num)?;
                n.checked_mul(mult)
                    .map(|s| s.to_string())
                    .ok_or_else(|| format!("{raw:?} is too long"))
            }
            DataType::Url => crate::rules::webhook::HttpUrl::parse(raw)
                .map(|_| raw.to_string())
                .map_err(|e| format!("{raw:?}: {e}")),
            DataType::HookSpec => {
                if raw.is_empty() {
                    return Ok(String::new());
                }
                crate::rules::plugin_hooks::HookSpec::parse(raw).map(|_| raw.to_string())
            }
            DataType::ByteSize => {
                let (num, unit) = split_unit(raw);
                let mult: u64 = match unit.to_ascii_uppercase().as_str() {
                    "" | "B" => 1,
                    "KB" | "K" => 1 << 10,
                    "MB" | "M" => 1 << 20,
                    "GB" | "G" => 1 << 30,
                    _ => return Err(format!("{raw:?} is not a size")),
                };
                let n = int(num)?;
                n.checked_mul(mult)
                    .map(|s| s.to_string())
                    .ok_or_else(|| format!("{raw:?} is too large"))
            }
        }
    }
}

fn split_unit(raw: &str) -> (&str, &str) {
    let end = raw.find(|c: char| !c.is_ascii_digit()).unwrap_or(raw.len());
    (&raw[..end], raw[end..].trim())
}

/// Where a key's value lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// A key of [`Config`] with the same dotted name.
    Config,
    /// Kept by the admin state only, with this default (e.g. the auth plugins' hash).
    Own(&'static str),
}

/// One runtime-settable key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConfigKey {
    pub app: &'static str,
    pub key: &'static str,
    pub datatype: DataType,
    pub desc: &'static str,
    pub target: Target,
}

const U32: DataType = DataType::Integer {
    min: 0,
    max: u32::MAX as u64,
};
const HASHES: DataType = DataType::Enum(&HashAlgo::NAMES);

const fn k(
    app: &'static str,
    key: &'static str,
    datatype: DataType,
    desc: &'static str,
) -> ConfigKey {
    ConfigKey {
        app,
        key,
        datatype,
        desc,
        target: Target::Config,
    }
}

/// A rule of the web hook plugin, with its default (EMQ X's `emqx_web_hook.conf`).
const fn hook_rule(key: &'static str, default: &'static str) -> ConfigKey {
    ConfigKey {
        app: "emqx_web_hook",
        key,
        datatype: DataType::HookSpec,
        desc: "A hook the web hook plugin posts: {\"action\": ..., \"topic\": filter}; empty = off",
        target: Target::Own(default),
    }
}

/// Every key that `PUT /configs/:app` and `PUT .../plugin_configs/:plugin` may change. All
/// take effect at once on every shard (session limits: for sessions created from then on).
pub const KEYS: &[ConfigKey] = &[
    k(
        "emqx",
        "mqtt.allow_anonymous",
        DataType::Flag,
        "Allow clients without a username that no auth source authenticated",
    ),
    k(
        "emqx",
        "mqtt.max_inflight",
        DataType::Integer {
            min: 1,
            max: 65_535,
        },
        "Most unacknowledged QoS 1/2 deliveries per client",
    ),
    k(
        "emqx",
        "mqtt.max_mqueue",
        U32,
        "Most queued messages per client (0 = unlimited)",
    ),
    k(
        "emqx",
        "mqtt.mqueue_store_qos0",
        DataType::Flag,
        "Queue QoS 0 messages for offline clients",
    ),
    k(
        "emqx",
        "mqtt.max_awaiting_rel",
        U32,
        "Most QoS 2 messages awaiting PUBREL per client",
    ),
    k(
        "emqx",
        "mqtt.await_rel_timeout",
        DataType::Duration,
        "How long a QoS 2 message awaits its PUBREL",
    ),
    k(
        "emqx",
        "mqtt.retry_interval",
        DataType::Duration,
        "Retry interval of unacknowledged deliveries",
    ),
    k(
        "emqx",
        "mqtt.session_expiry_interval",
        DataType::Duration,
        "How long an offline persistent session is kept",
    ),
    k(
        "emqx",
        "mqtt.max_subscriptions",
        U32,
        "Most subscriptions per client (0 = unlimited)",
    ),
    k(
        "emqx",
        "mqtt.upgrade_qos",
        DataType::Flag,
        "Deliver at the subscription's QoS even when higher",
    ),
    k(
        "emqx",
        "mqtt.max_qos_allowed",
        DataType::Integer { min: 0, max: 2 },
        "Highest QoS allowed",
    ),
    k(
        "emqx_retainer",
        "retainer.max_retained_messages",
        U32,
        "Most retained messages (0 = unlimited)",
    ),
    k(
        "emqx_retainer",
        "retainer.max_payload_size",
        DataType::ByteSize,
        "Largest retained payload",
    ),
    k(
        "emqx_retainer",
        "retainer.expiry_interval",
        DataType::Duration,
        "How long a retained message is kept (0 = until replaced)",
    ),
    ConfigKey {
        app: "emqx_web_hook",
        key: "web.hook.api.url",
        datatype: DataType::Url,
        desc: "The web server every hook POSTs to",
        target: Target::Own("http://127.0.0.1:8080"),
    },
    hook_rule(
        "web.hook.rule.client.connected.1",
        r#"{"action": "on_client_connected"}"#,
    ),
    hook_rule(
        "web.hook.rule.client.disconnected.1",
        r#"{"action": "on_client_disconnected"}"#,
    ),
    hook_rule(
        "web.hook.rule.client.subscribe.1",
        r#"{"action": "on_client_subscribe"}"#,
    ),
    hook_rule(
        "web.hook.rule.client.unsubscribe.1",
        r#"{"action": "on_client_unsubscribe"}"#,
    ),
    hook_rule(
        "web.hook.rule.session.created.1",
        r#"{"action": "on_session_created"}"#,
    ),
    hook_rule(
        "web.hook.rule.session.subscribed.1",
        r#"{"action": "on_session_subscribed"}"#,
    ),
    hook_rule(
        "web.hook.rule.session.unsubscribed.1",
        r#"{"action": "on_session_unsubscribed"}"#,
    ),
    hook_rule(
        "web.hook.rule.session.terminated.1",
        r#"{"action": "on_session_terminated"}"#,
    ),
    hook_rule(
        "web.hook.rule.message.publish.1",
        r#"{"action": "on_message_publish"}"#,
    ),
    hook_rule(
        "web.hook.rule.message.deliver.1",
        r#"{"action": "on_message_deliver"}"#,
    ),
    hook_rule(
        "web.hook.rule.message.acked.1",
        r#"{"action": "on_message_acked"}"#,
    ),
    ConfigKey {
        app: "emqx_auth_clientid",
        key: "auth.client.password_hash",
        datatype: HASHES,
        desc: "Hash of new client id passwords",
        target: Target::Own("sha256"),
    },
    ConfigKey {
        app: "emqx_auth_username",
        key: "auth.user.password_hash",
        datatype: HASHES,
        desc: "Hash of new username passwords",
        target: Target::Own("sha256"),
    },
];

/// Why a change was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigError {
    /// The key is not runtime-settable for this app.
    UnknownKey(String),
    /// The value does not fit the key.
    BadValue(String),
}

/// The keys of `app` (empty for an app with none, e.g. `emqx_dashboard`).
pub fn keys_of(app: &str) -> impl Iterator<Item = &'static ConfigKey> + '_ {
    KEYS.iter().filter(move |k| k.app == app)
}

/// Checks `raw` for `key` of `app` against `current` (the effective configuration) and
/// returns its canonical form.
pub fn validate(current: &Config, app: &str, key: &str, raw: &str) -> Result<String, ConfigError> {
    let spec = keys_of(app)
        .find(|k| k.key == key)
        .ok_or_else(|| ConfigError::UnknownKey(key.to_string()))?;
    let value = spec.datatype.parse(raw).map_err(ConfigError::BadValue)?;
    if spec.target == Target::Config {
        let mut cfg = current.clone();
        cfg.apply_set(&format!("{key}={value}"))
            .map_err(|e| ConfigError::BadValue(e.to_string()))?;
        if !still_valid(current, &cfg) {
            let why = cfg
                .validate()
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            return Err(ConfigError::BadValue(why));
        }
    }
    Ok(value)
}

/// Whether `next` passes validation, or fails it only as `current` already did (a rule the
/// change has nothing to do with, e.g. two listeners on port 0 in tests).
fn still_valid(current: &Config, next: &Config) -> bool {
    match next.validate() {
        Ok(()) => true,
        Err(e) => current.validate().err().map(|c| c.to_string()) == Some(e.to_string()),
    }
}

/// `base` with the changed values (`key → canonical value`) applied. A stored value that no
/// longer applies (an old file) is skipped.
pub fn effective(base: &Config, changed: &BTreeMap<String, String>) -> Config {
    let mut cfg = base.clone();
    for (key, value) in changed {
        if KEYS
            .iter()
            .any(|k| k.key == key && k.target == Target::Config)
        {
            let mut next = cfg.clone();
            if next.apply_set(&format!("{key}={value}")).is_ok() && still_valid(&cfg, &next) {
                cfg = next;
            }
        }
    }
    cfg
}

/// The current value of `spec` as the API shows it (a string; durations with `s`).
pub fn display(spec: &ConfigKey, cfg: &Config, changed: &BTreeMap<String, String>) -> String {
    let raw = match spec.target {
        Target::Own(default) => changed
            .get(spec.key)
            .cloned()
            .unwrap_or_else(|| default.to_string()),
        Target::Config => {
            let tree = toml::Value::try_from(cfg).ok();
            let mut node = tree.as_ref();
            for part in spec.key.split('.') {
                node = node.and_then(|n| n.get(part));
            }
            match node {
                Some(toml::Value::String(s)) => s.clone(),
                Some(v) => v.to_string(),
                None => String::new(),
            }
        }
    };
    match spec.datatype {
        DataType::Duration => format!("{raw}s"),
        _ => raw,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const U16: DataType = DataType::Integer {
        min: 0,
        max: 65_535,
    };

    #[test]
    fn datatypes_parse_to_canonical_values_and_refuse_the_rest() {
        assert_eq!(DataType::Flag.parse("on"), Ok("true".into()));
        assert!(DataType::Flag.parse("yes").is_err());
        assert_eq!(U16.parse(" 7 "), Ok("7".into()));
        assert!(DataType::Integer { min: 1, max: 3 }.parse("0").is_err());
        assert!(U16.parse("-1").is_err());
        assert_eq!(DataType::Duration.parse("5m"), Ok("300".into()));
        assert_eq!(DataType::Duration.parse("30s"), Ok("30".into()));
        assert!(DataType::Duration.parse("5w").is_err());
        assert_eq!(DataType::ByteSize.parse("64KB"), Ok("65536".into()));
        assert_eq!(HASHES.parse("sha512"), Ok("sha512".into()));
        assert!(HASHES.parse("md5").is_err());
    }

    #[test]
    fn validate_knows_the_whitelist_and_the_config_rules() {
        let cfg = Config::default();
        assert_eq!(
            validate(&cfg, "emqx", "mqtt.max_inflight", "10"),
            Ok("10".into())
        );
        assert!(matches!(
            validate(&cfg, "emqx", "mqtt.max_inflight", "0"),
            Err(ConfigError::BadValue(_))
        ));
        assert!(matches!(
            validate(&cfg, "emqx", "node.name", "x@y"),
            Err(ConfigError::UnknownKey(_))
        ));
        // A key of another app is unknown here.
        assert!(matches!(
            validate(&cfg, "emqx", "retainer.expiry_interval", "1"),
            Err(ConfigError::UnknownKey(_))
        ));
        assert_eq!(
            validate(&cfg, "emqx_retainer", "retainer.expiry_interval", "1m"),
            Ok("60".into())
        );
    }

    #[test]
    fn effective_applies_changes_and_display_reads_them_back() {
        let mut changed = BTreeMap::new();
        changed.insert("mqtt.allow_anonymous".to_string(), "false".to_string());
        changed.insert("retainer.expiry_interval".to_string(), "60".to_string());
        changed.insert("auth.user.password_hash".to_string(), "sha".to_string());
        changed.insert("mqtt.max_inflight".to_string(), "0".to_string()); // stale: skipped
        let cfg = effective(&Config::default(), &changed);
        assert!(!cfg.mqtt.allow_anonymous);
        assert_eq!(cfg.retainer.expiry_interval, 60);
        assert_eq!(cfg.mqtt.max_inflight, 32);
        let show = |key: &str| {
            let spec = KEYS.iter().find(|k| k.key == key).unwrap();
            display(spec, &cfg, &changed)
        };
        assert_eq!(show("mqtt.allow_anonymous"), "false");
        assert_eq!(show("retainer.expiry_interval"), "60s");
        assert_eq!(show("auth.user.password_hash"), "sha");
        assert_eq!(show("auth.client.password_hash"), "sha256");
        assert_eq!(show("mqtt.max_inflight"), "32");
    }
}
