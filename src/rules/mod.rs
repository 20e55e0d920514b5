//! The rule engine's pure core: its SQL ([`sql`]), its catalogue of events, actions and
//! resource types ([`catalog`]), the web hook request format ([`webhook`]) and the rules
//! themselves ([`Rule`], [`RuleSet`]): created from the REST API's body (the 3.1 model of
//! api-v3.md: `name`, `for`, `rawsql` with topic filters or quoted event names in `FROM`,
//! `actions`), validated once, and evaluated on an event's columns into the [`Effect`]s its
//! actions ask for. Pure: no I/O, no clock (the caller passes the time), no threads; the shard
//! carries the effects out and counts them (`broker::hooks`).
//!
//! Events: the eight hooks of EMQ X 3.x ([`Event`]). Actions: `built_in:inspect_action`
//! (`inspect`), `built_in:republish_action` (`republish`, param `target_topic`),
//! `web_hook:publish_action` and `web_hook:event_action` (`data_to_webserver`, param
//! `$resource`, the event action with an optional `template`).
//!
//! An event meets only the rules bound to it, and an event with a topic only the rules whose
//! `FROM` filters match that topic (a topic trie over the filters): rules for other topics or
//! other events cost nothing per event. Must never: evaluate a rule on an event it is not
//! bound to, or let a rule's failure stop another rule.

pub mod catalog;
pub mod plugin_hooks;
pub mod speed;
pub mod sql;
pub mod webhook;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use serde_json::{json, Map, Value};

use sql::{Env, Statement};
use webhook::WebTarget;

use crate::topic::TopicTrie;

/// The hook of a rule whose body names none (3.1's `for` default).
pub const MESSAGE_PUBLISH: &str = "message.publish";

/// The hooks a rule can run on (EMQ X 3.x `emqx_rule_sqlparser:hook/1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Event {
    MessagePublish,
    MessageDeliver,
    MessageAcked,
    MessageDropped,
    ClientConnected,
    ClientDisconnected,
    ClientSubscribe,
    ClientUnsubscribe,
}

impl Event {
    pub const ALL: [Event; 8] = [
        Event::MessagePublish,
        Event::MessageDeliver,
        Event::MessageAcked,
        Event::MessageDropped,
        Event::ClientConnected,
        Event::ClientDisconnected,
        Event::ClientSubscribe,
        Event::ClientUnsubscribe,
    ];

    /// The hook's name (`message.publish`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Event::MessagePublish => "message.publish",
            Event::MessageDeliver => "message.deliver",
            Event::MessageAcked => "message.acked",
            Event::MessageDropped => "message.dropped",
            Event::ClientConnected => "client.connected",
            Event::ClientDisconnected => "client.disconnected",
            Event::ClientSubscribe => "client.subscribe",
            Event::ClientUnsubscribe => "client.unsubscribe",
        }
    }

    /// The event of this name.
    pub fn parse(name: &str) -> Option<Event> {
        Event::ALL.into_iter().find(|e| e.name() == name)
    }

    fn bit(self) -> u8 {
        1 << self as u8
    }

    /// Whether the event carries a topic that `FROM` filters select on (the message events,
    /// and the first filter of a subscribe or unsubscribe).
    pub fn has_topic(self) -> bool {
        !matches!(self, Event::ClientConnected | Event::ClientDisconnected)
    }

    /// A message event (its `$SYS/` messages fire no rule: EMQ X `ignore_sys_message`).
    pub fn is_message(self) -> bool {
        matches!(
            self,
            Event::MessagePublish
                | Event::MessageDeliver
                | Event::MessageAcked
                | Event::MessageDropped
        )
    }

    /// The columns a rule on this event may read (the catalogue's list).
    pub fn columns(self) -> &'static [&'static str] {
        catalog::event(self.name()).map_or(&[], |e| e.columns)
    }
}

/// Which action of which rule an effect comes from (for its `success`/`failed` counters):
/// indexes into the [`RuleSet`] that produced it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ActionRef {
    pub rule: usize,
    pub action: usize,
}

/// What a matching rule asks the shard to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Publish the selected columns as JSON to `topic`, with the original QoS and retain flag
    /// (QoS 0, no retain, for an event that is not a message).
    Republish {
        topic: String,
        payload: String,
        qos: u8,
        retain: bool,
    },
    /// Log the selected columns (`built_in:inspect_action`).
    Inspect { rule: String, selected: Value },
    /// POST `body` (JSON) to a web hook resource; `None` when the rule's resource no longer
    /// exists (the action fails).
    WebHook {
        target: Option<Arc<WebTarget>>,
        body: Vec<u8>,
    },
}

/// What one event did: the rules that matched (indexes), the effects of their actions, and
/// the web hook plugin's posts (where, and the body).
#[derive(Debug, Default)]
pub struct Outcome {
    pub matched: Vec<usize>,
    pub effects: Vec<(ActionRef, Effect)>,
    pub posts: Vec<(Arc<WebTarget>, Vec<u8>)>,
}

/// One action of a rule.
#[derive(Debug, Clone, PartialEq)]
enum Action {
    Inspect,
    Republish {
        target_topic: String,
    },
    /// A web hook: the resource's id, and (event action) the body template.
    WebHook {
        resource: String,
        template: Option<Value>,
    },
}

/// A resource as rule creation sees it: its id and type.
#[derive(Debug, Clone, Copy)]
pub struct ResourceRef<'a> {
    pub id: &'a str,
    pub kind: &'a str,
}

/// One rule, validated.
#[derive(Debug, Clone)]
pub struct Rule {
    pub id: String,
    /// The definition as the API shows it (`id`, `name`, `for`, `rawsql`, `actions`,
    /// `description`, `enabled`); also what the admin store keeps.
    pub definition: Value,
    statement: Statement,
    /// The events it runs on (bits of [`Event`]).
    events: u8,
    /// The topic filters of its `FROM` (none: every topic).
    filters: Vec<String>,
    actions: Vec<Action>,
    enabled: bool,
}

/// Why a rule was refused (the API answers it with code 400 and this text).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleError(pub String);

impl Rule {
    /// A rule from the API's create body; `id` is given (`<name>:<nanoseconds>` as EMQ X 3.1
    /// makes it) or, for a stored rule, taken from the definition.
    ///
    /// `resources`: the resources that exist, when the body comes from the API (a web hook
    /// action must name one of type `web_hook`; an action of a type with resources and no
    /// `$resource` is bound to the first, as EMQ X 3.1 shows it). `None` for a stored rule:
    /// its resource may have been deleted since, and its web hook actions then fail.
    ///
    /// The events: the quoted event names in `FROM` when there are any, else `for`
    /// (default `message.publish`); the other `FROM` entries are topic filters that select the
    /// events with a topic.
    pub fn from_body(
        body: &Value,
        id: Option<String>,
        resources: Option<&[ResourceRef<'_>]>,
    ) -> Result<Rule, RuleError> {
        let bad = |m: &str| RuleError(m.to_string());
        let map = body
            .as_object()
            .ok_or_else(|| bad("the body must be a JSON object"))?;
        let text = |k: &str| map.get(k).and_then(Value::as_str).map(str::to_string);
        let rawsql = text("rawsql").ok_or_else(|| bad("missing rawsql"))?;
        let statement = sql::parse(&rawsql).map_err(|e| RuleError(format!("SQL: {e}")))?;
        let mut events = 0u8;
        let mut first_event = None;
        let mut filters = Vec::new();
        for from in &statement.from {
            if let Some(e) = Event::parse(from) {
                events |= e.bit();
                first_event.get_or_insert(e);
            } else if from.starts_with("client.")
                || from.starts_with("message.")
                || from.starts_with("session.")
            {
                return Err(RuleError(format!("Event {from} Not Found")));
            } else if crate::topic::valid_topic_filter(from) {
                filters.push(from.clone());
            } else {
                return Err(RuleError(format!(
                    "SQL: invalid topic filter {from:?} in FROM"
                )));
            }
        }
        let hook = match map.get("for") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Array(a)) => a.first().and_then(Value::as_str).map(str::to_string),
            Some(_) => return Err(bad("for must be an event name")),
        };
        if let Some(h) = &hook {
            let e = Event::parse(h).ok_or_else(|| RuleError(format!("Event {h} Not Found")))?;
            if events == 0 {
                events = e.bit();
                first_event = Some(e);
            }
        }
        let first_event = match first_event {
            Some(e) => e,
            None => {
                events = Event::MessagePublish.bit();
                Event::MessagePublish
            }
        };
        let mut known: Vec<&str> = Vec::new();
        for e in Event::ALL.into_iter().filter(|e| events & e.bit() != 0) {
            known.extend(e.columns());
        }
        if let Some(c) = statement.unknown_columns(&known).first() {
            return Err(RuleError(format!("Unknown Column: {c}")));
        }
        let mut actions = Vec::new();
        let mut shown = Vec::new();
        for a in map
            .get("actions")
            .and_then(Value::as_array)
            .ok_or_else(|| bad("missing actions"))?
        {
            let name = a
                .get("name")
                .and_then(Value::as_str)
                .ok_or_else(|| bad("an action needs a name"))?;
            let mut params = match a.get("params") {
                None | Some(Value::Null) => Map::new(),
                Some(Value::Object(p)) => p.clone(),
                Some(_) => return Err(bad("an action's params must be an object")),
            };
            let spec = catalog::action(name)
                .ok_or_else(|| RuleError(format!("Action {name} Not Found")))?;
            if let Some(known) = resources {
                bind_resource(spec.r#type, &mut params, known)?;
            }
            let resource = params
                .get("$resource")
                .and_then(Value::as_str)
                .map(str::to_string);
            let action = match spec.name {
                "built_in:inspect_action" => Action::Inspect,
                "built_in:republish_action" => {
                    let topic = params
                        .get("target_topic")
                        .and_then(Value::as_str)
                        .filter(|t| crate::topic::valid_topic_name(t))
                        .ok_or_else(|| {
                            bad("Bad Arguments: republish needs a valid target_topic")
                        })?;
                    Action::Republish {
                        target_topic: topic.to_string(),
                    }
                }
                _ => Action::WebHook {
                    resource: resource.ok_or_else(|| {
                        RuleError(format!("Bad Arguments: {name} needs a $resource"))
                    })?,
                    template: params
                        .get("template")
                        .filter(|t| t.is_object() && t.as_object().is_some_and(|o| !o.is_empty()))
                        .cloned(),
                },
            };
            actions.push(action);
            shown.push(json!({"name": name, "params": params}));
        }
        let name = text("name").unwrap_or_default();
        let id = id.or_else(|| text("id")).ok_or_else(|| bad("missing id"))?;
        let enabled = map.get("enabled").and_then(Value::as_bool).unwrap_or(true);
        let definition = json!({
            "actions": shown,
            "description": text("description").unwrap_or_default(),
            "enabled": enabled,
            "for": hook.unwrap_or_else(|| first_event.name().to_string()),
            "id": id,
            "name": name,
            "rawsql": rawsql,
        });
        Ok(Rule {
            id,
            definition,
            statement,
            events,
            filters,
            actions,
            enabled,
        })
    }

    /// Whether the rule runs on `event`.
    pub fn runs_on(&self, event: Event) -> bool {
        self.events & event.bit() != 0
    }

    /// The resource ids its actions use.
    pub fn resources(&self) -> impl Iterator<Item = &str> {
        self.actions.iter().filter_map(|a| match a {
            Action::WebHook { resource, .. } => Some(resource.as_str()),
            _ => None,
        })
    }
}

/// The test mode of rule creation (`POST /rules?test=true`): runs `rawsql` on the event's
/// sample columns (`/rule_events`' `test_columns` of its first event) overlaid with `ctx`.
/// `Ok(None)`: the statement does not match (`FROM` filters or `WHERE`).
pub fn test_sql(rawsql: &str, ctx: &Map<String, Value>) -> Result<Option<Value>, RuleError> {
    let statement = sql::parse(rawsql).map_err(|e| RuleError(format!("SQL: {e}")))?;
    let event = statement
        .from
        .iter()
        .find_map(|f| Event::parse(f))
        .unwrap_or(Event::MessagePublish);
    let mut columns = catalog::rule_events()
        .as_array()
        .and_then(|events| events.iter().find(|e| e["event"] == event.name()))
        .and_then(|e| e["test_columns"].as_object().cloned())
        .unwrap_or_default();
    columns.insert("event".into(), json!(event.name()));
    for (k, v) in ctx {
        columns.insert(k.clone(), v.clone());
    }
    if let Some(c) = statement.unknown_columns(event.columns()).first() {
        if !ctx.contains_key(c) {
            return Err(RuleError(format!("Unknown Column: {c}")));
        }
    }
    let filters: Vec<&String> = statement
        .from
        .iter()
        .filter(|f| Event::parse(f).is_none())
        .collect();
    let topic = columns.get("topic").and_then(Value::as_str).unwrap_or("");
    if !filters.is_empty() && !filters.iter().any(|f| crate::topic::matches(f, topic)) {
        return Ok(None);
    }
    Ok(statement.run(&Env::new(&columns)).map(Value::Object))
}

/// Checks an action's `$resource` against the resources that exist, or binds the first of
/// the action's type when it names none.
fn bind_resource(
    kind: &str,
    params: &mut Map<String, Value>,
    known: &[ResourceRef<'_>],
) -> Result<(), RuleError> {
    match params.get("$resource") {
        Some(Value::String(id)) => match known.iter().find(|r| r.id == id) {
            Some(r) if r.kind == kind => Ok(()),
            Some(r) => Err(RuleError(format!(
                "Bad Arguments: resource {id} is of type {}, not {kind}",
                r.kind
            ))),
            None => Err(RuleError(format!("Resource {id} Not Found"))),
        },
        Some(_) => Err(RuleError(
            "Bad Arguments: $resource must be a string".into(),
        )),
        None => {
            if let Some(r) = known.iter().find(|r| r.kind == kind) {
                params.insert("$resource".into(), json!(r.id));
            }
            Ok(())
        }
    }
}

/// The rules in force on a shard (an immutable snapshot inside the admin policy), indexed by
/// event and by the topic filters of their `FROM`.
#[derive(Default)]
pub struct RuleSet {
    rules: Vec<Arc<Rule>>,
    /// Filter → the rules (indexes into `rules`) whose `FROM` names it.
    by_filter: TopicTrie<Vec<usize>>,
    /// Per event (index = `Event as usize`): the rules that take every such event.
    unfiltered: [Vec<usize>; 8],
    /// The events some enabled rule runs on (bits of [`Event`]).
    wanted: u8,
    /// The web hook resources: id → where to send.
    targets: HashMap<String, Arc<WebTarget>>,
    /// The web hook plugin's hooks, while it is loaded.
    plugin: Option<plugin_hooks::PluginHooks>,
    /// The events the plugin posts (bits of [`Event`]).
    plugin_events: u8,
}

impl std::fmt::Debug for RuleSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RuleSet")
            .field("rules", &self.rules.len())
            .finish()
    }
}

impl RuleSet {
    /// A set of these rules, whose web hook actions post to these resources (id → target).
    pub fn new(rules: Vec<Rule>, targets: HashMap<String, Arc<WebTarget>>) -> RuleSet {
        let mut set = RuleSet {
            targets,
            ..RuleSet::default()
        };
        for (i, rule) in rules.into_iter().enumerate() {
            for e in Event::ALL.into_iter().filter(|e| rule.runs_on(*e)) {
                if rule.enabled {
                    set.wanted |= e.bit();
                }
                if !e.has_topic() || rule.filters.is_empty() {
                    set.unfiltered[e as usize].push(i);
                }
            }
            for f in &rule.filters {
                let entry = set.by_filter.entry(f);
                if !entry.contains(&i) {
                    entry.push(i);
                }
            }
            set.rules.push(Arc::new(rule));
        }
        set
    }

    /// The set with the web hook plugin's hooks in force too.
    pub fn with_plugin(mut self, plugin: plugin_hooks::PluginHooks) -> RuleSet {
        self.plugin_events = plugin.events();
        self.wanted |= self.plugin_events;
        self.plugin = Some(plugin);
        self
    }

    /// True when there is no rule and no plugin hook.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty() && self.plugin.is_none()
    }

    /// The rules, in creation order (what an [`ActionRef`] indexes).
    pub fn rules(&self) -> &[Arc<Rule>] {
        &self.rules
    }

    /// Whether some enabled rule runs on `event` (checked before any column is built).
    pub fn wants(&self, event: Event) -> bool {
        self.wanted & event.bit() != 0
    }

    /// Whether some rule may take `event` on `topic` (checked before the event's columns are
    /// built: an event no rule takes costs a bit test and, for a topic, one trie walk).
    pub fn takes(&self, event: Event, topic: &str) -> bool {
        self.wants(event)
            && !(event.is_message() && topic.starts_with("$SYS/"))
            && (!self.unfiltered[event as usize].is_empty()
                || self.plugin_events & event.bit() != 0
                || self.by_filter.has_match(topic))
    }

    /// Runs the rules bound to `event` on its columns (`topic` among them for an event with a
    /// topic) and adds the matches and the effects of their actions to `out`.
    pub fn on_event(&self, event: Event, columns: &Map<String, Value>, out: &mut Outcome) {
        if !self.wants(event) {
            return;
        }
        let topic = columns.get("topic").and_then(Value::as_str).unwrap_or("");
        if event.is_message() && topic.starts_with("$SYS/") {
            return;
        }
        if let Some(plugin) = &self.plugin {
            let mut bodies = Vec::new();
            plugin.bodies(event, columns, &mut bodies);
            out.posts
                .extend(bodies.into_iter().map(|b| (plugin.target.clone(), b)));
        }
        let mut hit = self.unfiltered[event as usize].clone();
        if event.has_topic() {
            self.by_filter.for_each_match(topic, |_, rules| {
                hit.extend(rules.iter().filter(|&&i| self.rules[i].runs_on(event)))
            });
        }
        if hit.is_empty() {
            return;
        }
        // In creation order, each rule once (a rule may name several matching filters).
        hit.sort_unstable();
        hit.dedup();
        let env = Env::new(columns);
        for i in hit {
            let rule = &self.rules[i];
            if !rule.enabled {
                continue;
            }
            let Some(selected) = rule.statement.run(&env) else {
                continue;
            };
            out.matched.push(i);
            let selected = Value::Object(selected);
            for (j, action) in rule.actions.iter().enumerate() {
                let effect = match action {
                    Action::Inspect => Effect::Inspect {
                        rule: rule.id.clone(),
                        selected: selected.clone(),
                    },
                    Action::Republish { target_topic } => Effect::Republish {
                        topic: target_topic.clone(),
                        payload: selected.to_string(),
                        qos: columns
                            .get("qos")
                            .and_then(Value::as_u64)
                            .unwrap_or(0)
                            .min(2) as u8,
                        retain: event.is_message()
                            && columns.get("retain").and_then(Value::as_u64) == Some(1),
                    },
                    Action::WebHook { resource, template } => Effect::WebHook {
                        target: self.targets.get(resource).cloned(),
                        body: match template {
                            Some(t) => fill_template(t, &selected).to_string().into_bytes(),
                            None => selected.to_string().into_bytes(),
                        },
                    },
                };
                out.effects.push((ActionRef { rule: i, action: j }, effect));
            }
        }
    }
}

/// The event action's template with every `${column}` filled from the selected columns: a
/// string that is exactly one placeholder becomes that value (number, object, ...); one with
/// text around placeholders becomes text. Keys are kept; unknown columns read as empty.
pub fn fill_template(template: &Value, selected: &Value) -> Value {
    let lookup = |name: &str| -> Value {
        let mut v = selected;
        for key in name.split('.') {
            match v.get(key) {
                Some(x) => v = x,
                None => return Value::Null,
            }
        }
        v.clone()
    };
    match template {
        Value::String(s) => {
            let t = s.trim();
            if let Some(name) = t.strip_prefix("${").and_then(|r| r.strip_suffix('}')) {
                if !name.contains("${") && !name.contains('}') {
                    return lookup(name.trim());
                }
            }
            let mut out = String::new();
            let mut rest = s.as_str();
            while let Some(start) = rest.find("${") {
                out.push_str(&rest[..start]);
                let after = &rest[start + 2..];
                match after.find('}') {
                    Some(end) => {
                        match lookup(after[..end].trim()) {
                            Value::String(x) => out.push_str(&x),
                            Value::Null => {}
                            other => out.push_str(&other.to_string()),
                        }
                        rest = &after[end + 1..];
                    }
                    None => {
                        out.push_str(&rest[start..]);
                        rest = "";
                    }
                }
            }
            out.push_str(rest);
            Value::String(out)
        }
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| (k.clone(), fill_template(v, selected)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(|v| fill_template(v, selected)).collect()),
        other => other.clone(),
    }
}

/// Who an event is about, as the columns show it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Who<'a> {
    pub client_id: &'a str,
    pub username: Option<&'a str>,
    pub peer: Option<SocketAddr>,
}

/// The columns every event has.
fn base_columns(event: Event, who: &Who<'_>, node: &str, timestamp_ms: u64) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("client_id".into(), json!(who.client_id));
    m.insert(
        "username".into(),
        who.username.map_or(Value::Null, |u| json!(u)),
    );
    m.insert(
        "peername".into(),
        who.peer.map_or(Value::Null, |p| json!(p.to_string())),
    );
    m.insert("event".into(), json!(event.name()));
    m.insert("node".into(), json!(node));
    m.insert("timestamp".into(), json!(timestamp_ms));
    m
}

/// A message's id in the columns: 32 hex digits, the same for every copy of one message
/// while it lives on this node (the topic's hash and the address of its shared payload).
pub fn message_id(msg: &crate::session::Message) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in msg.topic.as_bytes() {
        h = (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3);
    }
    format!("{h:016X}{:016X}", msg.payload.as_ptr() as usize as u64)
}

/// The columns of a message event. `who`: the publisher for `message.publish` and
/// `message.dropped`, the receiver for `message.deliver` and `message.acked` (which also
/// name the publisher as `from_client_id`, with `from_username` when known).
pub fn message_columns(
    event: Event,
    msg: &crate::session::Message,
    who: &Who<'_>,
    from_username: Option<&str>,
    node: &str,
    timestamp_ms: u64,
) -> Map<String, Value> {
    let mut m = base_columns(event, who, node, timestamp_ms);
    m.insert("id".into(), json!(message_id(msg)));
    m.insert("topic".into(), json!(msg.topic.as_str()));
    m.insert(
        "payload".into(),
        json!(String::from_utf8_lossy(&msg.payload)),
    );
    m.insert("qos".into(), json!(msg.qos as u8));
    m.insert("retain".into(), json!(u8::from(msg.retain)));
    if matches!(event, Event::MessageDeliver | Event::MessageAcked) {
        m.insert("from_client_id".into(), json!(msg.publisher.as_str()));
        m.insert(
            "from_username".into(),
            from_username.map_or(Value::Null, |u| json!(u)),
        );
    }
    if event == Event::MessageDeliver {
        m.insert("auth_result".into(), json!("success"));
        m.insert("mountpoint".into(), Value::Null);
    }
    m
}

/// The columns of a `message.publish` event for `msg`, published by a client with this
/// username, on `node`, at `timestamp_ms` (milliseconds since the epoch).
pub fn publish_columns(
    msg: &crate::session::Message,
    username: Option<&str>,
    peer: Option<SocketAddr>,
    node: &str,
    timestamp_ms: u64,
) -> Map<String, Value> {
    let who = Who {
        client_id: msg.publisher.as_str(),
        username,
        peer,
    };
    message_columns(Event::MessagePublish, msg, &who, None, node, timestamp_ms)
}

/// What a `client.connected` event knows of the connection.
#[derive(Debug, Clone, Copy)]
pub struct Connected {
    pub clean_start: bool,
    pub keepalive: u16,
    pub proto_ver: u8,
    pub connected_at_ms: u64,
}

/// The columns of `client.connected`.
pub fn connected_columns(
    who: &Who<'_>,
    c: &Connected,
    node: &str,
    timestamp_ms: u64,
) -> Map<String, Value> {
    let mut m = base_columns(Event::ClientConnected, who, node, timestamp_ms);
    m.insert("auth_result".into(), json!("success"));
    m.insert("clean_start".into(), json!(c.clean_start));
    m.insert("connack".into(), json!(0));
    m.insert("connected_at".into(), json!(c.connected_at_ms));
    m.insert("is_bridge".into(), json!(false));
    m.insert("keepalive".into(), json!(c.keepalive));
    m.insert("mountpoint".into(), Value::Null);
    m.insert("proto_ver".into(), json!(c.proto_ver));
    m
}

/// The columns of `client.disconnected`; `reason` as EMQ X names it (`normal`, `closed`,
/// `keepalive_timeout`, `takeover`, `kicked`, ...).
pub fn disconnected_columns(
    who: &Who<'_>,
    reason: &str,
    node: &str,
    timestamp_ms: u64,
) -> Map<String, Value> {
    let mut m = base_columns(Event::ClientDisconnected, who, node, timestamp_ms);
    m.insert("auth_result".into(), json!("success"));
    m.insert("mountpoint".into(), Value::Null);
    m.insert("reason_code".into(), json!(reason));
    m
}

/// The columns of `client.subscribe` / `client.unsubscribe`: every filter (with its QoS for
/// a subscribe) in `topic_filters`, the first one also as `topic` and `qos`.
pub fn subscription_columns(
    event: Event,
    who: &Who<'_>,
    filters: &[(&str, u8)],
    node: &str,
    timestamp_ms: u64,
) -> Map<String, Value> {
    let mut m = base_columns(event, who, node, timestamp_ms);
    m.insert("auth_result".into(), json!("success"));
    m.insert("mountpoint".into(), Value::Null);
    let list: Vec<Value> = filters
        .iter()
        .map(|(f, q)| json!({"topic": f, "qos": q}))
        .collect();
    m.insert("topic_filters".into(), Value::Array(list));
    let (topic, qos) = filters.first().copied().unwrap_or(("", 0));
    m.insert("topic".into(), json!(topic));
    m.insert("qos".into(), json!(qos));
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(sql: &str, actions: Value) -> Value {
        json!({"name": "r1", "for": "message.publish", "rawsql": sql, "actions": actions,
               "description": "d"})
    }

    fn rule(sql: &str, actions: Value, id: &str) -> Rule {
        Rule::from_body(&body(sql, actions), Some(id.into()), Some(&[])).unwrap()
    }

    fn set(rules: Vec<Rule>) -> RuleSet {
        RuleSet::new(rules, HashMap::new())
    }

    fn cols(topic: &str, payload: &str) -> Map<String, Value> {
        let mut msg = crate::session::Message::new(
            topic,
            payload.to_string(),
            crate::codec::QoS::AtLeastOnce,
            false,
        );
        msg.publisher = crate::codec::Str::from("c1");
        publish_columns(&msg, None, None, "n@h", 5)
    }

    fn run(set: &RuleSet, event: Event, columns: &Map<String, Value>) -> Outcome {
        let mut out = Outcome::default();
        set.on_event(event, columns, &mut out);
        out
    }

    fn inspect() -> Value {
        json!([{"name": "built_in:inspect_action", "params": {}}])
    }

    #[test]
    fn a_rule_republishes_what_it_selects_for_matching_topics_only() {
        let republish = json!([{"name": "built_in:republish_action",
                                "params": {"target_topic": "out/t"}}]);
        let r = rule(
            "SELECT payload.v AS v, topic FROM \"t/#\" WHERE payload.v > 10",
            republish,
            "r1:1",
        );
        assert_eq!(r.definition["id"], "r1:1");
        assert_eq!(
            r.definition["actions"][0]["params"]["target_topic"],
            "out/t"
        );
        let set = set(vec![r]);
        let mut effects = Vec::new();
        for (topic, payload) in [
            ("t/a", r#"{"v": 11}"#),
            ("t/a", r#"{"v": 9}"#),
            ("u/a", r#"{"v": 99}"#),
            ("$SYS/x", r#"{"v": 99}"#),
        ] {
            effects.extend(run(&set, Event::MessagePublish, &cols(topic, payload)).effects);
        }
        assert_eq!(effects.len(), 1);
        match &effects[0] {
            (
                ActionRef { rule: 0, action: 0 },
                Effect::Republish {
                    topic,
                    payload,
                    qos,
                    retain,
                },
            ) => {
                assert_eq!((topic.as_str(), *qos, *retain), ("out/t", 1, false));
                let v: Value = serde_json::from_str(payload).unwrap();
                assert_eq!(v, json!({"v": 11, "topic": "t/a"}));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn bad_rules_are_refused_with_the_reason() {
        let refused = |b: Value| {
            Rule::from_body(&b, Some("x:1".into()), Some(&[]))
                .unwrap_err()
                .0
        };
        assert!(refused(body("SELEC * FROM \"t\"", inspect())).starts_with("SQL"));
        assert_eq!(
            refused(body("SELECT nope FROM \"t\"", inspect())),
            "Unknown Column: nope"
        );
        assert_eq!(
            refused(body("SELECT * FROM \"t\"", json!([{"name": "x:y"}]))),
            "Action x:y Not Found"
        );
        let no_target = json!([{"name": "built_in:republish_action", "params": {}}]);
        assert!(refused(body("SELECT * FROM \"t\"", no_target)).contains("target_topic"));
        let mut other_hook = body("SELECT * FROM \"t\"", inspect());
        other_hook["for"] = json!("client.nothing");
        assert_eq!(refused(other_hook), "Event client.nothing Not Found");
        assert_eq!(
            refused(body("SELECT * FROM \"session.created\"", inspect())),
            "Event session.created Not Found"
        );
        let hook = json!([{"name": "web_hook:publish_action",
                           "params": {"$resource": "web_hook:nope"}}]);
        assert_eq!(
            refused(body("SELECT * FROM \"t\"", hook)),
            "Resource web_hook:nope Not Found"
        );
        // A column of another event: `reason_code` is not a message column.
        assert_eq!(
            refused(body("SELECT reason_code FROM \"t/#\"", inspect())),
            "Unknown Column: reason_code"
        );
    }

    #[test]
    fn only_rules_whose_filters_match_are_met_and_each_fires_once() {
        let mut rules: Vec<Rule> = (0..1000)
            .map(|i| {
                rule(
                    &format!("SELECT * FROM \"other/{i}/#\""),
                    inspect(),
                    &format!("r:{i}"),
                )
            })
            .collect();
        rules.push(rule("SELECT * FROM \"t/#\", \"t/+\"", inspect(), "two:1"));
        let set = set(rules);
        assert!(set.takes(Event::MessagePublish, "t/a"));
        assert!(!set.takes(Event::MessagePublish, "none/a"));
        assert!(
            !set.takes(Event::ClientConnected, ""),
            "no rule runs on connects"
        );
        let out = run(&set, Event::MessagePublish, &cols("t/a", "x"));
        assert_eq!(
            out.matched,
            vec![1000],
            "both filters match: the rule fires once"
        );
        assert_eq!(out.effects.len(), 1);
        assert!(run(&set, Event::MessagePublish, &cols("none/a", "x"))
            .effects
            .is_empty());
    }

    #[test]
    fn a_stored_definition_gives_back_the_same_rule() {
        let inspect = json!([{"name": "inspect", "params": {"a": 1}}]);
        let r = rule("SELECT * FROM \"message.publish\"", inspect, "r1:7");
        let again = Rule::from_body(&r.definition, None, None).unwrap();
        assert_eq!(again.definition, r.definition);
        let out = run(
            &set(vec![again]),
            Event::MessagePublish,
            &cols("any/topic", "x"),
        );
        assert!(matches!(&out.effects[..], [(_, Effect::Inspect { rule, .. })] if rule == "r1:7"));
    }

    #[test]
    fn a_quoted_event_in_from_binds_the_rule_to_that_event() {
        let who = Who {
            client_id: "c9",
            username: Some("u"),
            peer: "127.0.0.1:5000".parse().ok(),
        };
        let mut b = body(
            "SELECT client_id, keepalive FROM \"client.connected\" WHERE proto_ver = 4",
            inspect(),
        );
        b.as_object_mut().unwrap().remove("for");
        let r = Rule::from_body(&b, Some("c:1".into()), Some(&[])).unwrap();
        assert_eq!(r.definition["for"], "client.connected");
        let set = set(vec![r]);
        assert!(set.wants(Event::ClientConnected));
        assert!(!set.wants(Event::MessagePublish));
        let c = |v| Connected {
            clean_start: true,
            keepalive: 30,
            proto_ver: v,
            connected_at_ms: 1,
        };
        let out = run(
            &set,
            Event::ClientConnected,
            &connected_columns(&who, &c(4), "n", 2),
        );
        match &out.effects[..] {
            [(_, Effect::Inspect { selected, .. })] => {
                assert_eq!(selected, &json!({"client_id": "c9", "keepalive": 30}))
            }
            other => panic!("{other:?}"),
        }
        let v5 = run(
            &set,
            Event::ClientConnected,
            &connected_columns(&who, &c(5), "n", 2),
        );
        assert!(v5.matched.is_empty());
        // A message event never meets it.
        assert!(run(&set, Event::MessagePublish, &cols("t", "x"))
            .matched
            .is_empty());
    }

    #[test]
    fn topic_filters_select_deliveries_and_subscriptions_too() {
        let mut b = body("SELECT topic, from_client_id FROM \"t/#\"", inspect());
        b["for"] = json!("message.deliver");
        let r = Rule::from_body(&b, Some("d:1".into()), Some(&[])).unwrap();
        let mut b = body("SELECT topic_filters FROM \"s/#\"", inspect());
        b["for"] = json!("client.subscribe");
        let s = Rule::from_body(&b, Some("s:1".into()), Some(&[])).unwrap();
        let set = set(vec![r, s]);
        let mut msg =
            crate::session::Message::new("t/1", "p", crate::codec::QoS::AtMostOnce, false);
        msg.publisher = crate::codec::Str::from("pub");
        let receiver = Who {
            client_id: "sub",
            ..Who::default()
        };
        let deliver = message_columns(Event::MessageDeliver, &msg, &receiver, None, "n", 1);
        assert_eq!(deliver["client_id"], "sub");
        let out = run(&set, Event::MessageDeliver, &deliver);
        assert_eq!(out.matched, vec![0]);
        assert!(run(&set, Event::MessagePublish, &cols("t/1", "p"))
            .matched
            .is_empty());
        let sub =
            |f: &str| subscription_columns(Event::ClientSubscribe, &receiver, &[(f, 1)], "n", 1);
        assert_eq!(
            run(&set, Event::ClientSubscribe, &sub("s/x")).matched,
            vec![1]
        );
        assert!(run(&set, Event::ClientSubscribe, &sub("other"))
            .matched
            .is_empty());
    }

    #[test]
    fn web_hook_actions_bind_their_resource_and_fill_the_template() {
        let resources = [ResourceRef {
            id: "web_hook:w",
            kind: "web_hook",
        }];
        let b = body(
            "SELECT topic, payload FROM \"t/#\"",
            json!([{"name": "web_hook:event_action",
                    "params": {"template": {"t": "${topic}", "msg": "got ${payload}!"}}},
                   {"name": "data_to_webserver", "params": {"$resource": "web_hook:w"}}]),
        );
        let r = Rule::from_body(&b, Some("w:1".into()), Some(&resources)).unwrap();
        assert_eq!(
            r.definition["actions"][0]["params"]["$resource"], "web_hook:w",
            "bound to the first resource of the action's type"
        );
        assert_eq!(
            r.resources().collect::<Vec<_>>(),
            ["web_hook:w", "web_hook:w"]
        );
        let target = webhook::WebTarget::from_config(&json!({"url": "http://127.0.0.1:1/x"}))
            .map(Arc::new)
            .unwrap();
        let targets = HashMap::from([("web_hook:w".to_string(), target)]);
        let set = RuleSet::new(vec![r.clone()], targets);
        let out = run(&set, Event::MessagePublish, &cols("t/1", "hi"));
        let bodies: Vec<Value> = out
            .effects
            .iter()
            .map(|(_, e)| match e {
                Effect::WebHook {
                    target: Some(_),
                    body,
                } => serde_json::from_slice(body).unwrap(),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(bodies[0], json!({"t": "t/1", "msg": "got hi!"}));
        assert_eq!(bodies[1], json!({"topic": "t/1", "payload": "hi"}));
        // The resource gone: the action has no target (and fails).
        let orphan = RuleSet::new(vec![r], HashMap::new());
        let out = run(&orphan, Event::MessagePublish, &cols("t/1", "hi"));
        assert!(matches!(
            out.effects[0].1,
            Effect::WebHook { target: None, .. }
        ));
    }

    #[test]
    fn a_disabled_rule_costs_nothing_and_fires_nothing() {
        let mut b = body("SELECT * FROM \"t/#\"", inspect());
        b["enabled"] = json!(false);
        let r = Rule::from_body(&b, Some("x:1".into()), Some(&[])).unwrap();
        let set = set(vec![r]);
        assert!(!set.wants(Event::MessagePublish));
        assert!(run(&set, Event::MessagePublish, &cols("t/1", "p"))
            .matched
            .is_empty());
    }
}
