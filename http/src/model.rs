//! The API schema: serde types shaped field for field like api-v3.md's examples, and the
//! field formats of emqx-v3-behaviour.md §6. Pure data; built on the shards (rows) and on the
//! management thread (merged views).
//!
//! Owns: rows (connections, sessions, subscriptions, routes, listeners, plugins, alarms,
//! banned), node/broker views, ordered name→value maps for metrics and stats, the per-shard
//! view of `GET /stats`, and the formatting helpers (`uptime`, kmg memory, load averages).
//! Must never: hold references into shard state, reorder fields (the examples' order is the
//! wire order), or depend on the broker crate (it implements [`crate::Collector`]).

use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};

/// An ordered `name → integer` map (metrics, stats, loop figures), serialized as a JSON
/// object in insertion order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(from = "serde_json::Map<String, serde_json::Value>")]
pub struct NamedValues(pub Vec<(String, u64)>);

impl NamedValues {
    /// From `(name, value)` pairs, order kept.
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, u64)>) -> NamedValues {
        NamedValues(pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
    }

    /// The value of `name`.
    pub fn get(&self, name: &str) -> Option<u64> {
        self.0.iter().find(|(k, _)| k == name).map(|(_, v)| *v)
    }

    /// Adds `other` into `self`: values of equal names are summed, new names appended.
    pub fn merge_sum(&mut self, other: &NamedValues) {
        for (name, value) in &other.0 {
            match self.0.iter_mut().find(|(k, _)| k == name) {
                Some((_, v)) => *v = v.saturating_add(*value),
                None => self.0.push((name.clone(), *value)),
            }
        }
    }

    fn serialize_entries<M: SerializeMap>(&self, map: &mut M) -> Result<(), M::Error> {
        for (k, v) in &self.0 {
            map.serialize_entry(k, v)?;
        }
        Ok(())
    }
}

impl From<serde_json::Map<String, serde_json::Value>> for NamedValues {
    fn from(map: serde_json::Map<String, serde_json::Value>) -> Self {
        NamedValues(
            map.into_iter()
                .filter_map(|(k, v)| v.as_u64().map(|v| (k, v)))
                .collect(),
        )
    }
}

impl Serialize for NamedValues {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        self.serialize_entries(&mut map)?;
        map.end()
    }
}

/// `GET /brokers/` row; `GET /brokers/:node` is the same without `node`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerInfo {
    pub datetime: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub node: Option<String>,
    pub node_status: String,
    pub otp_release: String,
    pub sysdescr: String,
    pub uptime: String,
    pub version: String,
}

/// `memory_total` / `memory_used`: kmg strings in `GET /nodes/`, bytes in `GET /nodes/:node`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Memory {
    Bytes(u64),
    Kmg(String),
}

/// `GET /nodes/` row; `GET /nodes/:node` is the same without `node` (see [`NodeInfo::for_list`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfo {
    pub connections: u64,
    pub load1: String,
    pub load15: String,
    pub load5: String,
    pub max_fds: u64,
    pub memory_total: Memory,
    pub memory_used: Memory,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub node: Option<String>,
    pub node_status: String,
    pub otp_release: String,
    pub process_available: u64,
    pub process_used: u64,
    pub uptime: String,
    pub version: String,
}

impl NodeInfo {
    /// The `GET /nodes/` shape: `node` set, memory as kmg strings.
    pub fn for_list(mut self) -> NodeInfo {
        self.node = Some(self.name.clone());
        for m in [&mut self.memory_total, &mut self.memory_used] {
            if let Memory::Bytes(b) = *m {
                *m = Memory::Kmg(kmg(b));
            }
        }
        self
    }
}

/// A connection row (api-v3.md "List all Connections").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectionInfo {
    pub clean_start: bool,
    pub client_id: String,
    pub conn_mod: String,
    pub connected_at: String,
    pub heap_size: u64,
    pub ipaddress: String,
    pub is_bridge: bool,
    pub keepalive: u64,
    pub mailbox_len: u64,
    pub node: String,
    pub peercert: String,
    pub port: u16,
    pub proto_name: String,
    pub proto_ver: u8,
    pub recv_cnt: u64,
    pub recv_msg: u64,
    pub recv_oct: u64,
    pub recv_pkt: u64,
    pub reductions: u64,
    pub send_cnt: u64,
    pub send_msg: u64,
    pub send_oct: u64,
    pub send_pend: u64,
    pub send_pkt: u64,
    /// `"undefined"` when the client sent none (as EMQ X writes it).
    pub username: String,
    pub zone: String,
}

/// A session row (api-v3.md "List all Sessions").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionInfo {
    pub awaiting_rel_len: u64,
    pub binding: String,
    pub clean_start: bool,
    pub client_id: String,
    pub created_at: String,
    pub deliver_msg: u64,
    pub enqueue_msg: u64,
    pub expiry_interval: u64,
    pub heap_size: u64,
    pub inflight_len: u64,
    pub mailbox_len: u64,
    pub max_awaiting_rel: u64,
    pub max_inflight: u64,
    pub max_mqueue: u64,
    pub max_subscriptions: u64,
    pub mqueue_dropped: u64,
    pub mqueue_len: u64,
    pub node: String,
    pub reductions: u64,
    pub subscriptions_count: u64,
    pub username: String,
}

/// A subscription row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubscriptionInfo {
    pub client_id: String,
    pub node: String,
    pub qos: u8,
    pub topic: String,
}

/// A route row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteInfo {
    pub node: String,
    pub topic: String,
}

/// A plugin row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PluginInfo {
    pub name: String,
    pub version: String,
    pub description: String,
    pub active: bool,
}

/// `GET /plugins/` row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodePlugins {
    pub node: String,
    pub plugins: Vec<PluginInfo>,
}

/// Abnormal connection ends by reason. `[]` while empty, an object otherwise (the EMQ X
/// quirk api-v3.md shows).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(from = "serde_json::Value")]
pub struct ShutdownCount(pub NamedValues);

impl From<serde_json::Value> for ShutdownCount {
    fn from(v: serde_json::Value) -> Self {
        match v {
            serde_json::Value::Object(map) => ShutdownCount(NamedValues::from(map)),
            _ => ShutdownCount::default(),
        }
    }
}

impl Serialize for ShutdownCount {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.0 .0.is_empty() {
            s.collect_seq(std::iter::empty::<u64>())
        } else {
            self.0.serialize(s)
        }
    }
}

/// A listener row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListenerInfo {
    pub acceptors: u64,
    pub current_conns: u64,
    pub listen_on: String,
    pub max_conns: u64,
    pub protocol: String,
    pub shutdown_count: ShutdownCount,
}

/// `GET /listeners/` row (fields in the example's order).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeListeners {
    pub listeners: Vec<ListenerInfo>,
    pub node: String,
}

/// `GET /metrics/` row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeMetrics {
    pub node: String,
    pub metrics: NamedValues,
}

/// `GET /stats/` row: `node` followed by the stats, flattened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeStats {
    pub node: String,
    pub stats: NamedValues,
}

impl Serialize for NodeStats {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.stats.0.len() + 1))?;
        map.serialize_entry("node", &self.node)?;
        self.stats.serialize_entries(&mut map)?;
        map.end()
    }
}

/// A present alarm.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alarm {
    pub id: String,
    pub desc: String,
}

/// A cleared alarm (fields in the example's order).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClearedAlarm {
    pub clear_at: String,
    pub desc: String,
    pub id: String,
}

/// `GET /alarms/present` / `history` row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeAlarms<A> {
    pub alarms: Vec<A>,
    pub node: String,
}

/// What a ban matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BanKind {
    ClientId,
    Username,
    IpAddress,
}

/// A ban record (`GET /banned/` row, `POST /banned/` echo).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Banned {
    pub who: String,
    #[serde(rename = "as")]
    pub kind: BanKind,
    #[serde(default)]
    pub reason: String,
    #[serde(default)]
    pub desc: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
    /// Unix seconds; `None` never expires (written `"undefined"`, as EMQ X does).
    #[serde(default, serialize_with = "until_or_undefined")]
    pub until: Option<u64>,
}

fn until_or_undefined<S: Serializer>(until: &Option<u64>, s: S) -> Result<S::Ok, S::Error> {
    match until {
        Some(t) => s.serialize_u64(*t),
        None => s.serialize_str("undefined"),
    }
}

/// `GET /apps/` row (no secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppInfo {
    pub app_id: String,
    pub name: String,
    pub desc: String,
    pub status: bool,
    /// Unix seconds, or `"undefined"` when it never expires (EMQ X writes the atom).
    pub expired: serde_json::Value,
}

/// `GET /users/` row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserInfo {
    pub username: String,
    pub tags: String,
}

/// `POST /mqtt/publish` body (emqx-v3-behaviour §3.6).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct PublishParams {
    pub topic: Option<String>,
    /// Comma-separated topics, as an alternative to `topic`.
    pub topics: Option<String>,
    #[serde(default)]
    pub payload: String,
    #[serde(default)]
    pub qos: u8,
    #[serde(default)]
    pub retain: bool,
    #[serde(default)]
    pub client_id: String,
}

/// `POST /mqtt/subscribe` body.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct SubscribeParams {
    pub topic: Option<String>,
    pub topics: Option<String>,
    #[serde(default)]
    pub qos: u8,
    pub client_id: String,
}

/// `POST /mqtt/unsubscribe` body.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct UnsubscribeParams {
    pub topic: String,
    pub client_id: String,
}

/// One shard's view for `GET /stats` and `GET /metrics`: `shard`, `core`, then every stat,
/// metric and event-loop figure, flattened into one JSON object.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ShardView {
    pub shard: u32,
    pub core: u32,
    /// Gauges (`connections/count`, ...).
    pub stats: NamedValues,
    /// Counters (`packets/connect`, ...).
    pub metrics: NamedValues,
    /// Event-loop figures (`loop/busy_us`, `mesh/sent`, `mesh/received`, `mesh/depth`, ...);
    /// names ending in `/depth` or `/count` are gauges, the rest counters.
    pub event_loop: NamedValues,
    /// The rule engine's counters on this shard, per rule (`rules` in `/stats`, and the
    /// `shardmq_rule_*` families of `/metrics`); none while there is no rule.
    pub rules: Vec<RuleFigures>,
}

/// One rule's counters on one shard.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RuleFigures {
    pub rule: String,
    pub matched: u64,
    /// Per action, in the rule's order.
    pub actions: Vec<ActionFigures>,
}

/// One action's outcomes on one shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ActionFigures {
    pub success: u64,
    pub failed: u64,
}

impl Serialize for ShardView {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let len = 2
            + self.stats.0.len()
            + self.metrics.0.len()
            + self.event_loop.0.len()
            + usize::from(!self.rules.is_empty());
        let mut map = s.serialize_map(Some(len))?;
        map.serialize_entry("shard", &self.shard)?;
        map.serialize_entry("core", &self.core)?;
        self.stats.serialize_entries(&mut map)?;
        self.metrics.serialize_entries(&mut map)?;
        self.event_loop.serialize_entries(&mut map)?;
        if !self.rules.is_empty() {
            map.serialize_entry("rules", &self.rules)?;
        }
        map.end()
    }
}

/// EMQ X uptime text: `"S seconds"`, `"M minutes, S seconds"`, `"H hours, M minutes, S
/// seconds"`, `"D days,H hours, M minutes, S seconds"` (no space after `days,`).
pub fn format_uptime(secs: u64) -> String {
    let (d, h, m, s) = (secs / 86_400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    if d > 0 {
        format!("{d} days,{h} hours, {m} minutes, {s} seconds")
    } else if h > 0 {
        format!("{h} hours, {m} minutes, {s} seconds")
    } else if m > 0 {
        format!("{m} minutes, {s} seconds")
    } else {
        format!("{s} seconds")
    }
}

/// EMQ X kmg text: > 1 GiB `"1.50G"`, > 1 MiB `"76.45M"`, > 1 KiB `"2.00K"`, else the number.
pub fn kmg(bytes: u64) -> String {
    const K: u64 = 1024;
    let f = bytes as f64;
    if bytes > K * K * K {
        format!("{:.2}G", f / (K * K * K) as f64)
    } else if bytes > K * K {
        format!("{:.2}M", f / (K * K) as f64)
    } else if bytes > K {
        format!("{:.2}K", f / K as f64)
    } else {
        bytes.to_string()
    }
}

/// A load average as EMQ X prints it: two decimals.
pub fn format_load(load: f64) -> String {
    format!("{load:.2}")
}

/// `"YYYY-MM-DD HH:MM:SS"` from broken-down local time (the caller owns the time zone).
pub fn format_datetime(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> String {
    format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}")
}
