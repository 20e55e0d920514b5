//! The rule engine's catalogue as the EMQ X v3 REST API lists it: the events a rule can run on
//! and their columns, the actions (`GET /actions`, `GET /resource_types/:type/actions`), the
//! resource types (`GET /resource_types`) and the events list (`GET /rule_events`). This module
//! is the one source of truth for event columns: the SQL checks (`Unknown Column: x`), the test
//! mode's sample values and the columns a shard builds for an event all come from [`EVENTS`].
//!
//! Shapes follow api-v3.md's "Rule Engine" examples field for field (the 3.1 model: actions
//! named `<type>:<name>`, plain-string titles and descriptions); what api-v3.md leaves out
//! (`/rule_events`, the `web_hook` resource type, the `for` aliases) follows EMQ X 3.2 as
//! emqx-v3-behaviour.md §4 describes it. Where the two disagree, api-v3.md's examples win and
//! the item's doc says so.
//!
//! Pure and constant: tables and functions that build JSON from them, no I/O, no clock, no
//! threads. It must never hold state (no registry, no cache, no counters): the rules, the
//! resources and their metrics live elsewhere, and every function here gives the same answer
//! on every core at every call.

use serde_json::{json, Map, Value};

/// One hook a rule can run on, with the columns its SQL may read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventSpec {
    /// The hook's name, e.g. `message.publish` (a rule's `for`, a quoted name in `FROM`).
    pub name: &'static str,
    /// The columns of the event, in the order `/rule_events` lists them: EMQ X's
    /// `rule_events.hrl` list first, then the keys the event also carries at runtime.
    pub columns: &'static [&'static str],
    /// A short English title.
    pub title: &'static str,
    /// One English sentence saying when the event fires.
    pub description: &'static str,
}

/// The columns of `message.publish` (EMQ X's list, then `retain`, 0 or 1, which exists at
/// runtime).
const MESSAGE_COLUMNS: &[&str] = &[
    "client_id",
    "username",
    "event",
    "id",
    "payload",
    "peername",
    "qos",
    "timestamp",
    "topic",
    "node",
    "retain",
];

/// The eight hooks of EMQ X 3.x (`emqx_rule_sqlparser:hook/1`), in that order. There is no
/// `session.*` or `message.delivered` event in 3.x.
///
/// Beyond EMQ X's column lists (ours, because the runtime map has them): `retain` on every
/// `message.*` event; `from_client_id` and `from_username` (the publisher of the message) on
/// `message.deliver` and `message.acked`, whose `client_id` is the receiver; `reason` on
/// `message.dropped`.
pub const EVENTS: &[EventSpec] = &[
    EventSpec {
        name: "message.publish",
        columns: MESSAGE_COLUMNS,
        title: "Message Publish",
        description: "A message is published by a client or by the broker",
    },
    EventSpec {
        name: "message.deliver",
        columns: &[
            "client_id",
            "username",
            "event",
            "id",
            "payload",
            "peername",
            "qos",
            "timestamp",
            "topic",
            "node",
            "auth_result",
            "mountpoint",
            "retain",
            "from_client_id",
            "from_username",
        ],
        title: "Message Deliver",
        description: "A message is delivered to a subscriber",
    },
    EventSpec {
        name: "message.acked",
        columns: &[
            "client_id",
            "username",
            "event",
            "id",
            "payload",
            "peername",
            "topic",
            "qos",
            "timestamp",
            "node",
            "retain",
            "from_client_id",
            "from_username",
        ],
        title: "Message Acked",
        description: "A subscriber acknowledges a QoS 1 or 2 message",
    },
    EventSpec {
        name: "message.dropped",
        columns: &[
            "client_id",
            "username",
            "event",
            "id",
            "payload",
            "peername",
            "qos",
            "timestamp",
            "topic",
            "node",
            "retain",
            "reason",
        ],
        title: "Message Dropped",
        description: "A message is dropped: no subscriber, or a queue limit",
    },
    EventSpec {
        name: "client.connected",
        columns: &[
            "client_id",
            "username",
            "event",
            "auth_result",
            "clean_start",
            "connack",
            "connected_at",
            "is_bridge",
            "keepalive",
            "mountpoint",
            "peername",
            "proto_ver",
            "timestamp",
            "node",
        ],
        title: "Client Connected",
        description: "A client's connection is accepted (CONNACK sent)",
    },
    EventSpec {
        name: "client.disconnected",
        columns: &[
            "client_id",
            "username",
            "event",
            "auth_result",
            "mountpoint",
            "peername",
            "reason_code",
            "timestamp",
            "node",
        ],
        title: "Client Disconnected",
        description: "A client's connection ends",
    },
    EventSpec {
        name: "client.subscribe",
        columns: SUBSCRIBE_COLUMNS,
        title: "Client Subscribe",
        description: "A client subscribes; topic and qos are those of its first filter",
    },
    EventSpec {
        name: "client.unsubscribe",
        columns: SUBSCRIBE_COLUMNS,
        title: "Client Unsubscribe",
        description: "A client unsubscribes; topic and qos are those of its first filter",
    },
];

/// The columns of `client.subscribe` and `client.unsubscribe`.
const SUBSCRIBE_COLUMNS: &[&str] = &[
    "client_id",
    "username",
    "event",
    "auth_result",
    "mountpoint",
    "peername",
    "topic_filters",
    "topic",
    "qos",
    "timestamp",
    "node",
];

/// The event named `name`, if it is one of the eight.
pub fn event(name: &str) -> Option<&'static EventSpec> {
    EVENTS.iter().find(|e| e.name == name)
}

/// The Chinese title of an event (also its Chinese description in `/rule_events`).
fn title_zh(event: &str) -> &'static str {
    match event {
        "message.publish" => "消息发布",
        "message.deliver" => "消息投递",
        "message.acked" => "消息确认",
        "message.dropped" => "消息丢弃",
        "client.connected" => "连接完成",
        "client.disconnected" => "连接断开",
        "client.subscribe" => "订阅",
        "client.unsubscribe" => "取消订阅",
        _ => "",
    }
}

/// A sample value for `column` of `event`: what `/rule_events` shows as `test_columns` and what
/// the test mode fills in for a column the request leaves out. Constant, so answers repeat.
fn sample(event: &str, column: &str) -> Value {
    match column {
        "client_id" => json!("c_emqx"),
        "username" => json!("u_emqx"),
        "event" => json!(event),
        "id" => json!("5889D3AC5F1A2F440000000000000000"),
        "payload" => json!("{\"msg\": \"hello\"}"),
        "peername" => json!("127.0.0.1:63412"),
        "qos" => json!(1),
        "timestamp" => json!(1_556_263_150_688_u64),
        "topic" => json!("t/a"),
        "node" => json!("shardmq@127.0.0.1"),
        "retain" => json!(0),
        "from_client_id" => json!("c_emqx_publisher"),
        "from_username" => json!("u_emqx_publisher"),
        "reason" => json!("no_subscribers"),
        "auth_result" => json!("success"),
        "mountpoint" => json!("undefined"),
        "clean_start" => json!(true),
        "connack" => json!(0),
        "connected_at" => json!(1_556_263_150_600_u64),
        "is_bridge" => json!(false),
        "keepalive" => json!(60),
        "proto_ver" => json!(4),
        "reason_code" => json!("normal"),
        "topic_filters" => json!([{"topic": "t/a", "qos": 1}]),
        _ => Value::Null,
    }
}

/// The SQL `/rule_events` suggests for an event: a topic condition where the event has a
/// topic (it matches the sample `t/a`), else every event.
fn sql_example(e: &EventSpec) -> String {
    if e.columns.contains(&"topic") {
        format!("SELECT * FROM \"{}\" WHERE topic =~ 't/#'", e.name)
    } else {
        format!("SELECT * FROM \"{}\"", e.name)
    }
}

/// What `GET /api/v3/rule_events/` returns (EMQ X 3.2's shape): one object per event,
/// `{event, title:{en,zh}, description:{en,zh}, columns, test_columns, sql_example}`, in the
/// order of [`EVENTS`].
pub fn rule_events() -> Value {
    let list = EVENTS
        .iter()
        .map(|e| {
            let test_columns: Map<String, Value> = e
                .columns
                .iter()
                .map(|c| (c.to_string(), sample(e.name, c)))
                .collect();
            let zh = title_zh(e.name);
            json!({
                "event": e.name,
                "title": {"en": e.title, "zh": zh},
                "description": {"en": e.description, "zh": zh},
                "columns": e.columns,
                "test_columns": test_columns,
                "sql_example": sql_example(e),
            })
        })
        .collect();
    Value::Array(list)
}

/// One action a rule can name, as api-v3.md's 3.1 model shows it.
#[derive(Debug, Clone, Copy)]
pub struct ActionSpec {
    /// `<type>:<name>`, e.g. `built_in:inspect_action`.
    pub name: &'static str,
    /// The application that provides it (`emqx_rule_engine`, `emqx_web_hook`).
    pub app: &'static str,
    /// The events it may run on: `$any`, one event name, or `$events` (see [`actions_for`]).
    pub for_: &'static str,
    /// The resource type it belongs to.
    pub r#type: &'static str,
    pub description: &'static str,
    /// The spec of its params, `{param: {type, required, title, description, ...}}`.
    pub params: fn() -> Value,
}

/// The spec of `$resource`, the param that binds a resource to an action.
fn resource_param() -> Value {
    json!({
        "description": "Bind a resource to this action",
        "required": true,
        "title": "Resource ID",
        "type": "string"
    })
}

fn no_params() -> Value {
    json!({})
}

fn republish_params() -> Value {
    json!({
        "target_topic": {
            // Sic: the document's spelling, kept so that the answer is byte for byte its own.
            "description": "Repubilsh the message to which topic",
            "format": "topic",
            "required": true,
            "title": "To Which Topic",
            "type": "string"
        }
    })
}

fn web_hook_publish_params() -> Value {
    json!({ "$resource": resource_param() })
}

fn web_hook_event_params() -> Value {
    json!({
        "$resource": resource_param(),
        "template": {
            "description":
                "The payload template to be filled with variables before sending messages",
            "required": false,
            "schema": {},
            "title": "Payload Template",
            "type": "object"
        }
    })
}

/// The four actions of api-v3.md, in the order its "List Actions" example shows them.
pub const ACTIONS: &[ActionSpec] = &[
    ActionSpec {
        name: "built_in:republish_action",
        app: "emqx_rule_engine",
        for_: "message.publish",
        r#type: "built_in",
        description: "Republish a MQTT message to a another topic",
        params: republish_params,
    },
    ActionSpec {
        name: "web_hook:event_action",
        app: "emqx_web_hook",
        for_: "$events",
        r#type: "web_hook",
        description: "Forward Events to Web Server",
        params: web_hook_event_params,
    },
    ActionSpec {
        name: "web_hook:publish_action",
        app: "emqx_web_hook",
        for_: "message.publish",
        r#type: "web_hook",
        description: "Forward Messages to Web Server",
        params: web_hook_publish_params,
    },
    ActionSpec {
        name: "built_in:inspect_action",
        app: "emqx_rule_engine",
        for_: "$any",
        r#type: "built_in",
        description: "Inspect the details of action params for debug purpose",
        params: no_params,
    },
];

/// EMQ X 3.2's short action names, accepted by [`action`] for the 3.1 action they stand for.
/// They are never listed (not in [`ACTIONS`], not in any list answer). `data_to_webserver`
/// is `$any` in 3.2; here it is `web_hook:publish_action` and so runs on `message.publish`
/// only.
pub const ACTION_ALIASES: &[(&str, &str)] = &[
    ("inspect", "built_in:inspect_action"),
    ("republish", "built_in:republish_action"),
    ("data_to_webserver", "web_hook:publish_action"),
];

/// The action named `name`, by its `<type>:<name>` or by one of the [`ACTION_ALIASES`].
pub fn action(name: &str) -> Option<&'static ActionSpec> {
    let name = ACTION_ALIASES
        .iter()
        .find(|(alias, _)| *alias == name)
        .map_or(name, |(_, full)| full);
    ACTIONS.iter().find(|a| a.name == name)
}

/// The action as the API shows it: `{app, description, for, name, params, type}`.
pub fn action_json(a: &ActionSpec) -> Value {
    json!({
        "app": a.app,
        "description": a.description,
        "for": a.for_,
        "name": a.name,
        "params": (a.params)(),
        "type": a.r#type,
    })
}

/// Whether an action declared `for_` is listed by `GET /actions?for=filter`.
///
/// EMQ X 3.2's rule (emqx-v3-behaviour.md §4.3): `$message` takes `$message`, `$any` and the
/// `message.*` events; `$client` likewise for `client.*`; `$any` only `$any`; anything else
/// `$any` plus itself. `$events` is taken only by the filter `$events`, as api-v3.md's example
/// shows (`for=client.connected` lists `built_in:inspect_action` alone, not
/// `web_hook:event_action`).
fn action_matches(for_: &str, filter: &str) -> bool {
    match filter {
        "$any" => for_ == "$any",
        "$message" | "$client" => {
            let prefix = if filter == "$message" {
                "message."
            } else {
                "client."
            };
            for_ == "$any" || for_ == filter || (for_.starts_with(prefix) && event(for_).is_some())
        }
        _ => for_ == "$any" || for_ == filter,
    }
}

/// What `GET /actions[?for=X]` lists. `None`: all of [`ACTIONS`], in order. `Some(X)`: the
/// actions [`action_matches`] takes, in the same order (3.2 sorts by title; the 3.1 objects
/// have none). X must be one of the eight events, `$any`, `$message`, `$client` or `$events`
/// (the `for` of `web_hook:event_action`); any other X is `Err("Event X Not Found")`, which
/// the API answers with code 400.
pub fn actions_for(filter: Option<&str>) -> Result<Vec<Value>, String> {
    let Some(x) = filter else {
        return Ok(ACTIONS.iter().map(action_json).collect());
    };
    let known = event(x).is_some() || matches!(x, "$any" | "$message" | "$client" | "$events");
    if !known {
        return Err(format!("Event {x} Not Found"));
    }
    Ok(ACTIONS
        .iter()
        .filter(|a| action_matches(a.for_, x))
        .map(action_json)
        .collect())
}

/// The resource types, `{description, name, params, provider}` (api-notes.md: api-v3.md's
/// "List Resource Types" example shows resources by mistake). `built_in` is api-v3.md's own
/// object; `web_hook` is EMQ X 3.2's config spec (`url` required, `headers` default `{}`,
/// `method` PUT or POST, default POST) written in the style of the action params.
pub fn resource_types() -> Vec<Value> {
    vec![
        json!({
            "description": "The built in resource type for debug purpose",
            "name": "built_in",
            "params": {},
            "provider": "emqx_rule_engine"
        }),
        json!({
            "description": "WebHook",
            "name": "web_hook",
            "params": {
                "url": {
                    "description": "The URL of the web server to send requests to",
                    "format": "url",
                    "required": true,
                    "title": "Request URL",
                    "type": "string"
                },
                "headers": {
                    "default": {},
                    "description": "The HTTP headers of every request",
                    "required": false,
                    "schema": {},
                    "title": "Request Header",
                    "type": "object"
                },
                "method": {
                    "default": "POST",
                    "description": "The HTTP method of every request",
                    "enum": ["PUT", "POST"],
                    "required": false,
                    "title": "Request Method",
                    "type": "string"
                }
            },
            "provider": "emqx_web_hook"
        }),
    ]
}

/// The resource type named `name`.
pub fn resource_type(name: &str) -> Option<Value> {
    resource_types().into_iter().find(|t| t["name"] == name)
}

/// What `GET /resource_types/:type/actions` lists: the actions of that type, sorted by name
/// (api-v3.md's example lists `built_in`'s inspect before republish). Empty for an unknown
/// type.
pub fn actions_of_type(r#type: &str) -> Vec<Value> {
    let mut of_type: Vec<&ActionSpec> = ACTIONS.iter().filter(|a| a.r#type == r#type).collect();
    of_type.sort_by_key(|a| a.name);
    of_type.into_iter().map(action_json).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The `data` of one of api-v3.md's response examples, parsed.
    fn doc(text: &str) -> Value {
        serde_json::from_str(text).expect("the example is JSON")
    }

    const INSPECT: &str = r#"{
      "app": "emqx_rule_engine",
      "description": "Inspect the details of action params for debug purpose",
      "for": "$any",
      "name": "built_in:inspect_action",
      "params": {},
      "type": "built_in"
    }"#;

    const REPUBLISH: &str = r#"{
      "app": "emqx_rule_engine",
      "description": "Republish a MQTT message to a another topic",
      "for": "message.publish",
      "name": "built_in:republish_action",
      "params": {
          "target_topic": {
              "description": "Repubilsh the message to which topic",
              "format": "topic",
              "required": true,
              "title": "To Which Topic",
              "type": "string"
          }
      },
      "type": "built_in"
    }"#;

    /// api-v3.md, "List Actions", `GET api/v3/actions`: the `data` array as printed.
    const LIST_ACTIONS: &str = r#"[{
      "app": "emqx_rule_engine",
      "description": "Republish a MQTT message to a another topic",
      "for": "message.publish",
      "name": "built_in:republish_action",
      "params": {
          "target_topic": {
              "description": "Repubilsh the message to which topic",
              "format": "topic",
              "required": true,
              "title": "To Which Topic",
              "type": "string"
          }
      },
      "type": "built_in"
  }, {
      "app": "emqx_web_hook",
      "description": "Forward Events to Web Server",
      "for": "$events",
      "name": "web_hook:event_action",
      "params": {
          "$resource": {
              "description": "Bind a resource to this action",
              "required": true,
              "title": "Resource ID",
              "type": "string"
          },
          "template": {
              "description": "The payload template to be filled with variables before sending messages",
              "required": false,
              "schema": {},
              "title": "Payload Template",
              "type": "object"
          }
      },
      "type": "web_hook"
  }, {
      "app": "emqx_web_hook",
      "description": "Forward Messages to Web Server",
      "for": "message.publish",
      "name": "web_hook:publish_action",
      "params": {
          "$resource": {
              "description": "Bind a resource to this action",
              "required": true,
              "title": "Resource ID",
              "type": "string"
          }
      },
      "type": "web_hook"
  }, {
      "app": "emqx_rule_engine",
      "description": "Inspect the details of action params for debug purpose",
      "for": "$any",
      "name": "built_in:inspect_action",
      "params": {},
      "type": "built_in"
  }]"#;

    fn names(list: &[Value]) -> Vec<&str> {
        list.iter().map(|a| a["name"].as_str().unwrap()).collect()
    }

    #[test]
    fn eight_events_with_unique_names() {
        let names: Vec<&str> = EVENTS.iter().map(|e| e.name).collect();
        assert_eq!(
            names,
            [
                "message.publish",
                "message.deliver",
                "message.acked",
                "message.dropped",
                "client.connected",
                "client.disconnected",
                "client.subscribe",
                "client.unsubscribe",
            ]
        );
        for e in EVENTS {
            assert_eq!(event(e.name).map(|f| f.name), Some(e.name));
        }
        assert!(event("session.subscribed").is_none());
        assert!(event("message.delivered").is_none());
        assert!(event("$any").is_none());
    }

    #[test]
    fn every_event_has_the_common_columns_once() {
        for e in EVENTS {
            for c in ["client_id", "event", "timestamp", "node"] {
                assert!(e.columns.contains(&c), "{} lacks {c}", e.name);
            }
            let mut sorted = e.columns.to_vec();
            sorted.sort_unstable();
            sorted.dedup();
            assert_eq!(sorted.len(), e.columns.len(), "{} repeats a column", e.name);
        }
    }

    #[test]
    fn message_events_carry_the_message() {
        for e in EVENTS.iter().filter(|e| e.name.starts_with("message.")) {
            for c in ["topic", "payload", "qos", "retain", "id"] {
                assert!(e.columns.contains(&c), "{} lacks {c}", e.name);
            }
        }
        for name in ["message.deliver", "message.acked"] {
            let e = event(name).unwrap();
            assert!(e.columns.contains(&"from_client_id"));
            assert!(e.columns.contains(&"from_username"));
        }
        assert!(event("message.dropped")
            .unwrap()
            .columns
            .contains(&"reason"));
    }

    #[test]
    fn client_events_have_their_own_columns() {
        let connected = event("client.connected").unwrap().columns;
        for c in [
            "clean_start",
            "connack",
            "connected_at",
            "keepalive",
            "proto_ver",
        ] {
            assert!(connected.contains(&c));
        }
        assert!(event("client.disconnected")
            .unwrap()
            .columns
            .contains(&"reason_code"));
        for name in ["client.subscribe", "client.unsubscribe"] {
            let cols = event(name).unwrap().columns;
            for c in ["topic_filters", "topic", "qos"] {
                assert!(cols.contains(&c), "{name} lacks {c}");
            }
        }
    }

    #[test]
    fn rule_events_list_every_event_with_samples_for_every_column() {
        let list = rule_events();
        let list = list.as_array().unwrap();
        assert_eq!(list.len(), EVENTS.len());
        for (obj, e) in list.iter().zip(EVENTS) {
            assert_eq!(obj["event"], e.name);
            assert_eq!(obj["title"]["en"], e.title);
            assert!(!obj["title"]["zh"].as_str().unwrap().is_empty());
            assert_eq!(obj["description"]["en"], e.description);
            assert!(obj["description"]["zh"].is_string());
            assert_eq!(obj["columns"], json!(e.columns));
            let samples = obj["test_columns"].as_object().unwrap();
            assert_eq!(samples.len(), e.columns.len());
            for c in e.columns {
                assert!(!samples[*c].is_null(), "{}: no sample for {c}", e.name);
            }
            assert_eq!(samples["event"], e.name);
        }
        assert_eq!(
            list[0]["sql_example"],
            "SELECT * FROM \"message.publish\" WHERE topic =~ 't/#'"
        );
        assert_eq!(list[4]["sql_example"], "SELECT * FROM \"client.connected\"");
    }

    #[test]
    fn every_sql_example_parses_and_matches_its_samples() {
        use super::super::sql;
        for obj in rule_events().as_array().unwrap() {
            let e = event(obj["event"].as_str().unwrap()).unwrap();
            let text = obj["sql_example"].as_str().unwrap();
            let statement = sql::parse(text).unwrap_or_else(|err| panic!("{text}: {err:?}"));
            assert_eq!(statement.from, [e.name]);
            assert!(statement.unknown_columns(e.columns).is_empty(), "{text}");
            let samples = obj["test_columns"].as_object().unwrap();
            let selected = statement.run(&sql::Env::new(samples));
            assert_eq!(selected.as_ref(), Some(samples), "{text}");
        }
    }

    #[test]
    fn list_actions_is_the_documents_example() {
        assert_eq!(Value::Array(actions_for(None).unwrap()), doc(LIST_ACTIONS));
        assert_eq!(ACTIONS.len(), 4);
    }

    #[test]
    fn query_action_is_the_documents_example() {
        let inspect = action("built_in:inspect_action").unwrap();
        assert_eq!(action_json(inspect), doc(INSPECT));
        assert!(action("built_in:nothing").is_none());
        assert!(action("").is_none());
    }

    #[test]
    fn short_names_of_3_2_are_aliases_and_never_listed() {
        assert_eq!(action("inspect").unwrap().name, "built_in:inspect_action");
        assert_eq!(
            action("republish").unwrap().name,
            "built_in:republish_action"
        );
        assert_eq!(
            action("data_to_webserver").unwrap().name,
            "web_hook:publish_action"
        );
        for (alias, _) in ACTION_ALIASES {
            assert!(ACTIONS.iter().all(|a| a.name != *alias));
        }
        assert!(action("do_nothing").is_none());
    }

    #[test]
    fn actions_for_client_connected_is_the_documents_example() {
        let expected = format!("[{INSPECT}]");
        assert_eq!(
            Value::Array(actions_for(Some("client.connected")).unwrap()),
            doc(&expected)
        );
    }

    #[test]
    fn actions_for_each_filter() {
        let listed = |x: &str| names(&actions_for(Some(x)).unwrap()).join(" ");
        assert_eq!(
            listed("message.publish"),
            "built_in:republish_action web_hook:publish_action built_in:inspect_action"
        );
        assert_eq!(listed("message.deliver"), "built_in:inspect_action");
        for e in EVENTS.iter().filter(|e| e.name.starts_with("client.")) {
            assert_eq!(listed(e.name), "built_in:inspect_action");
        }
        assert_eq!(
            listed("$message"),
            "built_in:republish_action web_hook:publish_action built_in:inspect_action"
        );
        assert_eq!(listed("$client"), "built_in:inspect_action");
        assert_eq!(listed("$any"), "built_in:inspect_action");
        assert_eq!(
            listed("$events"),
            "web_hook:event_action built_in:inspect_action"
        );
    }

    #[test]
    fn actions_for_an_unknown_event_is_refused() {
        assert_eq!(
            actions_for(Some("session.subscribed")),
            Err("Event session.subscribed Not Found".to_string())
        );
        assert_eq!(actions_for(Some("")), Err("Event  Not Found".to_string()));
        assert!(actions_for(Some("$all")).is_err());
    }

    #[test]
    fn query_resource_type_is_the_documents_example() {
        let expected = doc(r#"{
      "description": "The built in resource type for debug purpose",
      "name": "built_in",
      "params": {},
      "provider": "emqx_rule_engine"
  }"#);
        assert_eq!(resource_type("built_in"), Some(expected));
        assert!(resource_type("mysql").is_none());
    }

    #[test]
    fn resource_types_have_the_type_shape() {
        let types = resource_types();
        assert_eq!(names(&types), ["built_in", "web_hook"]);
        for t in &types {
            let mut keys: Vec<&String> = t.as_object().unwrap().keys().collect();
            keys.sort();
            assert_eq!(keys, ["description", "name", "params", "provider"]);
        }
        let web_hook = resource_type("web_hook").unwrap();
        assert_eq!(web_hook["provider"], "emqx_web_hook");
        let params = &web_hook["params"];
        assert_eq!(params["url"]["required"], true);
        assert_eq!(params["url"]["type"], "string");
        assert_eq!(params["url"]["format"], "url");
        assert_eq!(params["url"]["title"], "Request URL");
        assert_eq!(params["headers"]["type"], "object");
        assert_eq!(params["headers"]["default"], json!({}));
        assert_eq!(params["headers"]["required"], false);
        assert_eq!(params["method"]["enum"], json!(["PUT", "POST"]));
        assert_eq!(params["method"]["default"], "POST");
        // Every action's type is a resource type.
        for a in ACTIONS {
            assert!(resource_type(a.r#type).is_some(), "{}", a.name);
        }
    }

    #[test]
    fn actions_of_type_is_the_documents_example() {
        let expected = format!("[{INSPECT}, {REPUBLISH}]");
        assert_eq!(Value::Array(actions_of_type("built_in")), doc(&expected));
        assert_eq!(
            names(&actions_of_type("web_hook")),
            ["web_hook:event_action", "web_hook:publish_action"]
        );
        assert!(actions_of_type("mysql").is_empty());
    }
}
