//! The rule engine's pure core: its SQL ([`sql`]) and the rules themselves ([`Rule`],
//! [`RuleSet`]): created from the REST API's body (the 3.1 model of api-v3.md: `name`,
//! `for`, `rawsql` with topic filters in `FROM`, `actions`), validated once, and evaluated
//! on a published message into the [`Effect`]s its actions ask for. Pure: no I/O, no clock
//! (the caller passes the time), no threads; the shard carries the effects out.
//!
//! Served: the `message.publish` hook, actions `built_in:inspect_action` (`inspect`) and
//! `built_in:republish_action` (`republish`, param `target_topic`). Not yet: the other
//! hooks, web hooks, resources, per-rule metrics.
//!
//! A message meets only the rules whose `FROM` filters match its topic (a topic trie over the
//! filters), so rules for other topics cost nothing per message.

pub mod sql;

use std::sync::Arc;

use serde_json::{json, Map, Value};

use sql::{Env, Statement};

use crate::topic::TopicTrie;

/// The hook a rule runs on (3.1's `for`).
pub const MESSAGE_PUBLISH: &str = "message.publish";

/// The columns a `message.publish` rule may read.
pub const PUBLISH_COLUMNS: &[&str] = &[
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

/// What a matching rule asks the shard to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Publish the selected columns as JSON to `topic`, with the original QoS and retain flag.
    Republish {
        topic: String,
        payload: String,
        qos: u8,
        retain: bool,
    },
    /// Log the selected columns (`built_in:inspect_action`).
    Inspect { rule: String, selected: Value },
}

/// One action of a rule.
#[derive(Debug, Clone, PartialEq)]
enum Action {
    Inspect,
    Republish { target_topic: String },
}

/// One rule, validated.
#[derive(Debug, Clone)]
pub struct Rule {
    pub id: String,
    /// The definition as the API shows it (`id`, `name`, `for`, `rawsql`, `actions`,
    /// `description`, `enabled`); also what the admin store keeps.
    pub definition: Value,
    statement: Statement,
    actions: Vec<Action>,
    enabled: bool,
}

/// Why a rule was refused (the API answers it with code 400 and this text).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleError(pub String);

impl Rule {
    /// A rule from the API's create body; `id` is given (`<name>:<nanoseconds>` as EMQ X 3.1
    /// makes it) or, for a stored rule, taken from the definition.
    pub fn from_body(body: &Value, id: Option<String>) -> Result<Rule, RuleError> {
        let bad = |m: &str| RuleError(m.to_string());
        let map = body
            .as_object()
            .ok_or_else(|| bad("the body must be a JSON object"))?;
        let text = |k: &str| map.get(k).and_then(Value::as_str).map(str::to_string);
        let name = text("name").ok_or_else(|| bad("missing name"))?;
        let hook = text("for").unwrap_or_else(|| MESSAGE_PUBLISH.to_string());
        if hook != MESSAGE_PUBLISH {
            return Err(RuleError(format!("Event {hook} Not Supported")));
        }
        let rawsql = text("rawsql").ok_or_else(|| bad("missing rawsql"))?;
        let statement = sql::parse(&rawsql).map_err(|e| RuleError(format!("SQL: {e}")))?;
        if let Some(c) = statement.unknown_columns(PUBLISH_COLUMNS).first() {
            return Err(RuleError(format!("Unknown Column: {c}")));
        }
        let mut actions = Vec::new();
        let mut shown = Vec::new();
        for a in map
            .get("actions")
            .and_then(Value::as_array)
            .ok_or_else(|| bad("missing actions"))?
        {
            let name = a.get("name").and_then(Value::as_str).unwrap_or_default();
            let params = a.get("params").cloned().unwrap_or_else(|| json!({}));
            let action = match name {
                "built_in:inspect_action" | "inspect" => Action::Inspect,
                "built_in:republish_action" | "republish" => {
                    let topic = params
                        .get("target_topic")
                        .and_then(Value::as_str)
                        .filter(|t| crate::topic::valid_topic_name(t))
                        .ok_or_else(|| bad("republish needs a valid target_topic"))?;
                    Action::Republish {
                        target_topic: topic.to_string(),
                    }
                }
                other => return Err(RuleError(format!("Action {other} Not Found"))),
            };
            actions.push(action);
            shown.push(json!({"name": name, "params": params}));
        }
        let id = id.or_else(|| text("id")).ok_or_else(|| bad("missing id"))?;
        let enabled = map.get("enabled").and_then(Value::as_bool).unwrap_or(true);
        let definition = json!({
            "actions": shown,
            "description": text("description").unwrap_or_default(),
            "enabled": enabled,
            "for": hook,
            "id": id,
            "name": name,
            "rawsql": rawsql,
        });
        Ok(Rule {
            id,
            definition,
            statement,
            actions,
            enabled,
        })
    }
}

/// The rules in force on a shard (an immutable snapshot inside the admin policy), indexed by
/// the topic filters of their `FROM`: a message meets only the rules whose filters match it
/// (and those that name the `message.publish` event), whatever the number of rules.
#[derive(Default)]
pub struct RuleSet {
    rules: Vec<Arc<Rule>>,
    /// Filter → the rules (indexes into `rules`) whose `FROM` names it.
    by_filter: TopicTrie<Vec<usize>>,
    /// Rules whose `FROM` names the event: every message.
    every_message: Vec<usize>,
}

impl std::fmt::Debug for RuleSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RuleSet")
            .field("rules", &self.rules.len())
            .finish()
    }
}

impl RuleSet {
    /// A set of these rules.
    pub fn new(rules: Vec<Rule>) -> RuleSet {
        let mut set = RuleSet::default();
        for (i, rule) in rules.into_iter().enumerate() {
            for from in &rule.statement.from {
                if from == MESSAGE_PUBLISH {
                    set.every_message.push(i);
                } else if crate::topic::valid_topic_filter(from) {
                    set.by_filter.entry(from).push(i);
                }
            }
            set.rules.push(Arc::new(rule));
        }
        set
    }

    /// True when there is no rule: the publish path then asks nothing more.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Whether some rule's `FROM` takes a message on `topic` (checked before the message's
    /// columns are built: a message no rule takes costs one trie walk).
    pub fn takes(&self, topic: &str) -> bool {
        !topic.starts_with("$SYS/")
            && (!self.every_message.is_empty() || self.by_filter.has_match(topic))
    }

    /// What the rules ask for a published message with these columns (`topic` among them).
    /// Messages on `$SYS/` topics fire no rule (EMQ X `ignore_sys_message`).
    pub fn on_publish(&self, columns: &Map<String, Value>, out: &mut Vec<Effect>) {
        let topic = columns.get("topic").and_then(Value::as_str).unwrap_or("");
        if topic.starts_with("$SYS/") {
            return;
        }
        let mut hit = self.every_message.clone();
        self.by_filter
            .for_each_match(topic, |_, rules| hit.extend_from_slice(rules));
        if hit.is_empty() {
            return;
        }
        // In creation order, each rule once (a rule may name several matching filters).
        hit.sort_unstable();
        hit.dedup();
        let env = Env::new(columns);
        for rule in hit.iter().map(|&i| &self.rules[i]).filter(|r| r.enabled) {
            let Some(selected) = rule.statement.run(&env) else {
                continue;
            };
            let selected = Value::Object(selected);
            for action in &rule.actions {
                out.push(match action {
                    Action::Inspect => Effect::Inspect {
                        rule: rule.id.clone(),
                        selected: selected.clone(),
                    },
                    Action::Republish { target_topic } => Effect::Republish {
                        topic: target_topic.clone(),
                        payload: selected.to_string(),
                        qos: columns.get("qos").and_then(Value::as_u64).unwrap_or(0) as u8,
                        retain: columns.get("retain").and_then(Value::as_u64) == Some(1),
                    },
                });
            }
        }
    }
}

/// The columns of a `message.publish` event for `msg`, published by a client with this
/// username, on `node`, at `timestamp_ms` (milliseconds since the epoch).
pub fn publish_columns(
    msg: &crate::session::Message,
    username: Option<&str>,
    node: &str,
    timestamp_ms: u64,
) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("client_id".into(), json!(msg.publisher.as_str()));
    m.insert(
        "username".into(),
        username.map_or(Value::Null, |u| json!(u)),
    );
    m.insert("event".into(), json!(MESSAGE_PUBLISH));
    m.insert("topic".into(), json!(msg.topic.as_str()));
    m.insert(
        "payload".into(),
        json!(String::from_utf8_lossy(&msg.payload)),
    );
    m.insert("qos".into(), json!(msg.qos as u8));
    m.insert("retain".into(), json!(u8::from(msg.retain)));
    m.insert("node".into(), json!(node));
    m.insert("timestamp".into(), json!(timestamp_ms));
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(sql: &str, actions: Value) -> Value {
        json!({"name": "r1", "for": "message.publish", "rawsql": sql, "actions": actions,
               "description": "d"})
    }

    fn cols(topic: &str, payload: &str) -> Map<String, Value> {
        let mut msg = crate::session::Message::new(
            topic,
            payload.to_string(),
            crate::codec::QoS::AtLeastOnce,
            false,
        );
        msg.publisher = crate::codec::Str::from("c1");
        publish_columns(&msg, None, "n@h", 5)
    }

    #[test]
    fn a_rule_republishes_what_it_selects_for_matching_topics_only() {
        let republish = json!([{"name": "built_in:republish_action",
                                "params": {"target_topic": "out/t"}}]);
        let rule = Rule::from_body(
            &body(
                "SELECT payload.v AS v, topic FROM \"t/#\" WHERE payload.v > 10",
                republish,
            ),
            Some("r1:1".into()),
        )
        .unwrap();
        assert_eq!(rule.definition["id"], "r1:1");
        assert_eq!(
            rule.definition["actions"][0]["params"]["target_topic"],
            "out/t"
        );
        let set = RuleSet::new(vec![rule]);
        let mut out = Vec::new();
        set.on_publish(&cols("t/a", r#"{"v": 11}"#), &mut out);
        set.on_publish(&cols("t/a", r#"{"v": 9}"#), &mut out);
        set.on_publish(&cols("u/a", r#"{"v": 99}"#), &mut out);
        set.on_publish(&cols("$SYS/x", r#"{"v": 99}"#), &mut out);
        assert_eq!(out.len(), 1);
        match &out[0] {
            Effect::Republish {
                topic,
                payload,
                qos,
                retain,
            } => {
                assert_eq!((topic.as_str(), *qos, *retain), ("out/t", 1, false));
                let v: Value = serde_json::from_str(payload).unwrap();
                assert_eq!(v, json!({"v": 11, "topic": "t/a"}));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn bad_rules_are_refused_with_the_reason() {
        let inspect = json!([{"name": "built_in:inspect_action", "params": {}}]);
        let refused = |b: Value| Rule::from_body(&b, Some("x:1".into())).unwrap_err().0;
        assert!(refused(body("SELEC * FROM \"t\"", inspect.clone())).starts_with("SQL"));
        assert_eq!(
            refused(body("SELECT nope FROM \"t\"", inspect.clone())),
            "Unknown Column: nope"
        );
        assert_eq!(
            refused(body("SELECT * FROM \"t\"", json!([{"name": "x:y"}]))),
            "Action x:y Not Found"
        );
        let no_target = json!([{"name": "built_in:republish_action", "params": {}}]);
        assert!(refused(body("SELECT * FROM \"t\"", no_target)).contains("target_topic"));
        let mut other_hook = body("SELECT * FROM \"t\"", inspect);
        other_hook["for"] = json!("client.connected");
        assert!(refused(other_hook).contains("Not Supported"));
    }

    #[test]
    fn only_rules_whose_filters_match_are_met_and_each_fires_once() {
        let inspect = json!([{"name": "inspect"}]);
        let mut rules: Vec<Rule> = (0..1000)
            .map(|i| {
                let sql = format!("SELECT * FROM \"other/{i}/#\"");
                Rule::from_body(&body(&sql, inspect.clone()), Some(format!("r:{i}"))).unwrap()
            })
            .collect();
        let two = body("SELECT * FROM \"t/#\", \"t/+\"", inspect);
        rules.push(Rule::from_body(&two, Some("two:1".into())).unwrap());
        let set = RuleSet::new(rules);
        let mut out = Vec::new();
        set.on_publish(&cols("t/a", "x"), &mut out);
        assert_eq!(out.len(), 1, "both filters match: the rule fires once");
        out.clear();
        set.on_publish(&cols("none/a", "x"), &mut out);
        assert!(out.is_empty());
    }

    #[test]
    fn a_stored_definition_gives_back_the_same_rule() {
        let inspect = json!([{"name": "inspect", "params": {"a": 1}}]);
        let rule = Rule::from_body(
            &body("SELECT * FROM \"message.publish\"", inspect),
            Some("r1:7".into()),
        )
        .unwrap();
        let again = Rule::from_body(&rule.definition, None).unwrap();
        assert_eq!(again.definition, rule.definition);
        let mut out = Vec::new();
        RuleSet::new(vec![again]).on_publish(&cols("any/topic", "x"), &mut out);
        assert!(matches!(&out[..], [Effect::Inspect { rule, .. }] if rule == "r1:7"));
    }
}
