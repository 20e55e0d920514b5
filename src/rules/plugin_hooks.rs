//! The `emqx_web_hook` plugin's own hooks (not the rule engine's web hook actions): while the
//! plugin is loaded, each hook named by a `web.hook.rule.<hook>.<n>` setting POSTs EMQ X 3.x's
//! JSON for the event (`{"action": "client_connected", "client_id": ..., ...}`) to
//! `web.hook.api.url`, optionally only for topics matching the rule's `topic` filter.
//!
//! Pure: the settings in, the request bodies of one event out; the shard sends them with the
//! rule engine's web hook sender. The 3.x `session.*` hooks have no event of their own here:
//! `session.created` posts on every connect, `session.terminated` on every disconnect,
//! `session.subscribed` / `session.unsubscribed` with the subscribe and unsubscribe.
//! Must never: post an event no setting names, or post a `$SYS/` message.

use std::sync::Arc;

use serde_json::{json, Map, Value};

use super::webhook::WebTarget;
use super::Event;

/// The hooks of `emqx_web_hook.conf`: (setting name, the event that fires it, the `action`
/// of the body).
const HOOKS: &[(&str, Event, &str)] = &[
    (
        "client.connected",
        Event::ClientConnected,
        "client_connected",
    ),
    (
        "client.disconnected",
        Event::ClientDisconnected,
        "client_disconnected",
    ),
    (
        "client.subscribe",
        Event::ClientSubscribe,
        "client_subscribe",
    ),
    (
        "client.unsubscribe",
        Event::ClientUnsubscribe,
        "client_unsubscribe",
    ),
    ("session.created", Event::ClientConnected, "session_created"),
    (
        "session.subscribed",
        Event::ClientSubscribe,
        "session_subscribed",
    ),
    (
        "session.unsubscribed",
        Event::ClientUnsubscribe,
        "session_unsubscribed",
    ),
    (
        "session.terminated",
        Event::ClientDisconnected,
        "session_terminated",
    ),
    ("message.publish", Event::MessagePublish, "message_publish"),
    (
        "message.deliver",
        Event::MessageDeliver,
        "message_delivered",
    ),
    ("message.acked", Event::MessageAcked, "message_acked"),
];

/// One `web.hook.rule.*` value: `{"action": "on_client_connected", "topic": "t/#"}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookSpec {
    pub action: String,
    pub topic: Option<String>,
}

impl HookSpec {
    /// Reads a setting's value, or says why it is not one.
    pub fn parse(raw: &str) -> Result<HookSpec, String> {
        let v: Value =
            serde_json::from_str(raw).map_err(|e| format!("{raw:?} is not a JSON object: {e}"))?;
        let action = v
            .get("action")
            .and_then(Value::as_str)
            .ok_or_else(|| format!("{raw:?} has no \"action\""))?
            .to_string();
        let topic = match v.get("topic") {
            None | Some(Value::Null) => None,
            Some(Value::String(t)) if crate::topic::valid_topic_filter(t) => Some(t.clone()),
            Some(_) => return Err(format!("{raw:?}: \"topic\" must be a topic filter")),
        };
        Ok(HookSpec { action, topic })
    }
}

/// One hook in force: which body it posts, and for which topics.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Hook {
    event: Event,
    action: &'static str,
    topic: Option<String>,
}

/// The plugin's hooks in force and where they post.
#[derive(Debug, Clone)]
pub struct PluginHooks {
    pub target: Arc<WebTarget>,
    hooks: Vec<Hook>,
}

impl PluginHooks {
    /// The hooks of these settings (`(key, value)`, keys `web.hook.rule.<hook>.<n>`; an empty
    /// value is a hook switched off), posting to `url`.
    pub fn from_settings<'a>(
        url: &str,
        settings: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<PluginHooks, String> {
        let target = WebTarget::from_config(&json!({ "url": url }))?;
        let mut hooks = Vec::new();
        for (key, value) in settings {
            let Some(rest) = key.strip_prefix("web.hook.rule.") else {
                continue;
            };
            if value.trim().is_empty() {
                continue;
            }
            let name = rest.rsplit_once('.').map_or(rest, |(h, _)| h);
            let Some(&(_, event, action)) = HOOKS.iter().find(|(h, _, _)| *h == name) else {
                return Err(format!("{key}: no hook {name}"));
            };
            let spec = HookSpec::parse(value)?;
            hooks.push(Hook {
                event,
                action,
                topic: spec.topic,
            });
        }
        Ok(PluginHooks {
            target: Arc::new(target),
            hooks,
        })
    }

    /// The events some hook posts (bits of [`Event`]).
    pub fn events(&self) -> u8 {
        self.hooks
            .iter()
            .fold(0, |bits, h| bits | (1 << h.event as u8))
    }

    /// The bodies to post for `event` with these columns (the rule engine's columns of it).
    pub fn bodies(&self, event: Event, columns: &Map<String, Value>, out: &mut Vec<Vec<u8>>) {
        let topic = columns.get("topic").and_then(Value::as_str).unwrap_or("");
        if event.is_message() && topic.starts_with("$SYS/") {
            return;
        }
        for hook in self.hooks.iter().filter(|h| h.event == event) {
            let wanted = |t: &str| {
                hook.topic
                    .as_ref()
                    .is_none_or(|f| crate::topic::matches(f, t))
            };
            match event {
                Event::ClientSubscribe | Event::ClientUnsubscribe => {
                    // One post per filter, as EMQ X posts them.
                    let filters = columns
                        .get("topic_filters")
                        .and_then(Value::as_array)
                        .cloned()
                        .unwrap_or_default();
                    for f in filters {
                        let t = f["topic"].as_str().unwrap_or_default();
                        if wanted(t) {
                            out.push(
                                subscription_body(hook.action, columns, &f)
                                    .to_string()
                                    .into_bytes(),
                            );
                        }
                    }
                }
                _ if event.is_message() && !wanted(topic) => {}
                _ => out.push(body(hook.action, event, columns).to_string().into_bytes()),
            }
        }
    }
}

fn col<'a>(columns: &'a Map<String, Value>, k: &str) -> &'a Value {
    columns.get(k).unwrap_or(&Value::Null)
}

fn secs(columns: &Map<String, Value>, k: &str) -> u64 {
    col(columns, k).as_u64().unwrap_or(0) / 1000
}

/// The body of a non-subscription hook, as EMQ X 3.x's web hook plugin writes it.
fn body(action: &str, event: Event, c: &Map<String, Value>) -> Value {
    let mut b = Map::new();
    b.insert("action".into(), json!(action));
    match event {
        Event::MessagePublish => {
            b.insert("from_client_id".into(), col(c, "client_id").clone());
            b.insert("from_username".into(), col(c, "username").clone());
        }
        Event::MessageDeliver | Event::MessageAcked => {
            b.insert("client_id".into(), col(c, "client_id").clone());
            b.insert("username".into(), col(c, "username").clone());
            b.insert("from_client_id".into(), col(c, "from_client_id").clone());
            b.insert("from_username".into(), col(c, "from_username").clone());
        }
        _ => {
            b.insert("client_id".into(), col(c, "client_id").clone());
            b.insert("username".into(), col(c, "username").clone());
        }
    }
    match (event, action) {
        (Event::ClientConnected, "client_connected") => {
            let ip = col(c, "peername")
                .as_str()
                .and_then(|p| p.parse::<std::net::SocketAddr>().ok())
                .map(|a| a.ip().to_string());
            b.insert("keepalive".into(), col(c, "keepalive").clone());
            b.insert("ipaddress".into(), json!(ip));
            b.insert("proto_ver".into(), col(c, "proto_ver").clone());
            b.insert("connected_at".into(), json!(secs(c, "connected_at")));
            b.insert("conn_ack".into(), json!(0));
        }
        (Event::ClientDisconnected, _) => {
            b.insert("reason".into(), col(c, "reason_code").clone());
        }
        _ if event.is_message() => {
            b.insert("topic".into(), col(c, "topic").clone());
            b.insert("qos".into(), col(c, "qos").clone());
            b.insert("retain".into(), json!(col(c, "retain").as_u64() == Some(1)));
            b.insert("payload".into(), col(c, "payload").clone());
            b.insert("ts".into(), json!(secs(c, "timestamp")));
        }
        _ => {}
    }
    Value::Object(b)
}

/// The body of a subscribe/unsubscribe hook for one filter (`{"topic", "qos"}`).
fn subscription_body(action: &str, c: &Map<String, Value>, filter: &Value) -> Value {
    let mut b = json!({
        "action": action,
        "client_id": col(c, "client_id"),
        "username": col(c, "username"),
        "topic": filter["topic"],
    });
    if action.ends_with("_subscribe") || action.ends_with("_subscribed") {
        b["opts"] = json!({"qos": filter["qos"]});
    }
    b
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::{self, Who};

    fn defaults() -> Vec<(String, String)> {
        HOOKS
            .iter()
            .map(|(h, _, _)| {
                let action = format!("on_{}", h.replace('.', "_"));
                (
                    format!("web.hook.rule.{h}.1"),
                    format!(r#"{{"action": "{action}"}}"#),
                )
            })
            .collect()
    }

    fn hooks(settings: &[(String, String)]) -> PluginHooks {
        PluginHooks::from_settings(
            "http://127.0.0.1:9/hook",
            settings.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        )
        .unwrap()
    }

    fn posted(h: &PluginHooks, event: Event, c: &Map<String, Value>) -> Vec<Value> {
        let mut out = Vec::new();
        h.bodies(event, c, &mut out);
        out.iter()
            .map(|b| serde_json::from_slice(b).unwrap())
            .collect()
    }

    #[test]
    fn the_default_settings_post_emqx_bodies_for_every_hook() {
        let h = hooks(&defaults());
        assert_eq!(
            h.events().count_ones(),
            7,
            "seven of the eight events (not dropped)"
        );
        let who = Who {
            client_id: "c1",
            username: Some("u1"),
            peer: "10.0.0.7:5555".parse().ok(),
        };
        let connected = rules::connected_columns(
            &who,
            &rules::Connected {
                clean_start: true,
                keepalive: 60,
                proto_ver: 4,
                connected_at_ms: 1_556_176_748_123,
            },
            "n",
            1,
        );
        let bodies = posted(&h, Event::ClientConnected, &connected);
        assert_eq!(
            bodies[0],
            json!({"action": "client_connected", "client_id": "c1", "username": "u1",
                   "keepalive": 60, "ipaddress": "10.0.0.7", "proto_ver": 4,
                   "connected_at": 1_556_176_748u64, "conn_ack": 0})
        );
        assert_eq!(
            bodies[1],
            json!({"action": "session_created", "client_id": "c1", "username": "u1"})
        );
        let mut msg = crate::session::Message::new(
            "world",
            "Hello world!",
            crate::codec::QoS::AtLeastOnce,
            true,
        );
        msg.publisher = crate::codec::Str::from("c1");
        let publish = rules::publish_columns(&msg, Some("u1"), None, "n", 1_492_412_774_000);
        assert_eq!(
            posted(&h, Event::MessagePublish, &publish),
            vec![json!({"action": "message_publish", "from_client_id": "c1",
                        "from_username": "u1", "topic": "world", "qos": 1, "retain": true,
                        "payload": "Hello world!", "ts": 1_492_412_774u64})]
        );
        let sub = rules::subscription_columns(
            Event::ClientSubscribe,
            &who,
            &[("a", 0), ("b", 1)],
            "n",
            1,
        );
        let bodies = posted(&h, Event::ClientSubscribe, &sub);
        assert_eq!(
            bodies.len(),
            4,
            "client_subscribe and session_subscribed per filter"
        );
        assert_eq!(
            bodies[1],
            json!({"action": "client_subscribe", "client_id": "c1", "username": "u1",
                   "topic": "b", "opts": {"qos": 1}})
        );
        let gone = rules::disconnected_columns(&who, "normal", "n", 1);
        assert_eq!(
            posted(&h, Event::ClientDisconnected, &gone)[0],
            json!({"action": "client_disconnected", "client_id": "c1", "username": "u1",
                   "reason": "normal"})
        );
    }

    #[test]
    fn a_topic_filter_and_empty_settings_narrow_what_is_posted() {
        let settings = vec![
            (
                "web.hook.rule.message.publish.1".to_string(),
                r#"{"action": "on_message_publish", "topic": "t/#"}"#.to_string(),
            ),
            (
                "web.hook.rule.client.connected.1".to_string(),
                String::new(),
            ),
        ];
        let h = hooks(&settings);
        assert_eq!(h.events(), 1 << Event::MessagePublish as u8);
        let cols = |t: &str| {
            let msg = crate::session::Message::new(t, "x", crate::codec::QoS::AtMostOnce, false);
            rules::publish_columns(&msg, None, None, "n", 1)
        };
        assert_eq!(posted(&h, Event::MessagePublish, &cols("t/1")).len(), 1);
        assert!(posted(&h, Event::MessagePublish, &cols("u/1")).is_empty());
        assert!(HookSpec::parse("{}").is_err());
        assert!(HookSpec::parse(r#"{"action": "a", "topic": "a/#/b"}"#).is_err());
        assert!(PluginHooks::from_settings(
            "http://h/",
            [("web.hook.rule.nothing.1", r#"{"action": "x"}"#)]
        )
        .is_err());
    }
}
