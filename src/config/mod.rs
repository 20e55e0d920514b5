//! The broker's configuration: serde structs with EMQ X v3 defaults, parsing with line-numbered
//! errors, `--set KEY=VALUE` overrides, validation, and core placement.
//!
//! Owns: [`Config`] and its sections, [`ConfigError`], and [`DEFAULT_TOML`] (the documented
//! default file `tuning/shardmq.toml`, compiled in; a unit test keeps it equal to
//! [`Config::default`]).
//!
//! Pure: it never reads files, environment variables or the CPU set, never logs and never
//! exits; the binary passes text and the available cores in and decides what to do with the
//! errors and warnings. Runs once at start-up, before any shard exists; shards receive a
//! finished, validated `Config` and never parse one.

mod error;
mod set;

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

pub use error::ConfigError;

/// The documented default configuration (`tuning/shardmq.toml`), compiled in.
/// `Config::from_toml_str(DEFAULT_TOML)` equals `Config::default()`.
pub const DEFAULT_TOML: &str = include_str!("../../tuning/shardmq.toml");

/// The largest MQTT packet the protocol can express (the remaining length is at most
/// 268,435,455 bytes).
pub const MAX_PACKET_SIZE_LIMIT: u32 = 268_435_455;

/// The whole configuration. Every section and key is optional in a file; missing ones keep
/// their defaults, unknown ones are errors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// `[node]`
    pub node: NodeConfig,
    /// `[shards]`
    pub shards: ShardsConfig,
    /// `[management]`
    pub management: ManagementConfig,
    /// `[listeners.*]`
    pub listeners: ListenersConfig,
    /// `[mqtt]`
    pub mqtt: MqttConfig,
    /// `[retainer]`
    pub retainer: RetainerConfig,
    /// `[sys]`
    pub sys: SysConfig,
    /// `[alarms]`
    pub alarms: AlarmsConfig,
    /// `[acl]`
    pub acl: AclConfig,
    /// `[persistence]`
    pub persistence: PersistenceConfig,
}

/// `[persistence]`: durable sessions and retained messages on disk (each shard's journal
/// under `node.data_dir`/journal).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PersistenceConfig {
    /// Keep persistent sessions and retained messages across restarts.
    pub enable: bool,
    /// When the journal's writes reach the disk.
    pub fsync: FsyncMode,
    /// Milliseconds between two syncs with `fsync = "interval"`.
    pub fsync_interval_ms: u64,
    /// A shard's journal is rewritten from its live state once it grows past this many bytes
    /// and past twice its size after the last rewrite.
    pub compact_bytes: u64,
}

/// `persistence.fsync`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum FsyncMode {
    /// Written to the page cache before the acknowledgement; the kernel flushes it when it
    /// likes (survives a crash of the broker, not of the machine).
    Never,
    /// As `never`, and synced every `fsync_interval_ms` (a machine crash loses at most that).
    #[default]
    Interval,
    /// Synced before the acknowledgement.
    Always,
}

impl Default for PersistenceConfig {
    fn default() -> Self {
        PersistenceConfig {
            enable: true,
            fsync: FsyncMode::Interval,
            fsync_interval_ms: 100,
            compact_bytes: 64 * 1024 * 1024,
        }
    }
}

/// `[acl]`: authorization of publishes and subscriptions (EMQ X `acl.conf`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct AclConfig {
    /// Path of the rule file (EMQ X `acl.conf` syntax); empty = no rules.
    pub file: String,
    /// What a publish or subscription that no rule matches gets.
    pub nomatch: AclVerdict,
    /// What a denied publish does to its client: ignore it (dropped, counted) or disconnect.
    pub deny_action: AclDenyAction,
    /// The SUBACK reason code a 5.0 client gets for a denied subscription.
    pub deny_subscribe_v5: AclSubscribeDenial,
}

/// `acl.deny_subscribe_v5`: how a denied subscription is answered to a 5.0 client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum AclSubscribeDenial {
    /// 0x80 "Unspecified error": the reason is not revealed (what the Eclipse Paho 5.0
    /// interoperability suite expects).
    #[default]
    Unspecified,
    /// 0x87 "Not authorized".
    NotAuthorized,
}

impl AclSubscribeDenial {
    /// The SUBACK reason code.
    pub fn code(self) -> u8 {
        match self {
            AclSubscribeDenial::Unspecified => 0x80,
            AclSubscribeDenial::NotAuthorized => 0x87,
        }
    }
}

/// `acl.nomatch`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum AclVerdict {
    #[default]
    Allow,
    Deny,
}

/// `acl.deny_action`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum AclDenyAction {
    #[default]
    Ignore,
    Disconnect,
}

/// `[node]`: the node's identity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NodeConfig {
    /// EMQ X style `name@host`; used in `/nodes/:node/...` API paths.
    pub name: String,
    /// Directory of the durable admin state (apps, users, auth tables, bans, plugin states,
    /// changed configs), one JSON file per table. Relative paths are from the working
    /// directory. Created when missing.
    pub data_dir: String,
}

/// The longest `shards.nap_us`: a napping shard's timers wait up to a nap.
pub const MAX_NAP_US: u64 = 10_000;
/// The longest `shards.spin_us`: a polling shard's timers and storage I/O wait that long too.
pub const MAX_SPIN_US: u64 = 1_000;

/// `[shards]`: which cores run a shard.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ShardsConfig {
    /// Cores to run a shard on; empty = every core in the process's affinity mask.
    pub cores: Vec<usize>,
    /// How many shards (0 = one per core of `cores` / the affinity mask). N > 0 takes the
    /// first N cores, wrapping around if there are fewer. `--shards N` sets it.
    pub count: usize,
    /// Slots per cross-shard channel (one channel per ordered pair of executors).
    pub channel_capacity: usize,
    /// How the kernel schedules the broker's threads against others on their cores.
    pub scheduling: ShardScheduling,
    /// Which shard serves a clean start whose session ends with its connection.
    pub clean_sessions: CleanSessionPlacement,
    /// Longest nap, in microseconds, of a shard that ran out of work before it parks its
    /// executor (0: park at once; at most [`MAX_NAP_US`]). See `tuning/shardmq.toml`.
    pub nap_us: u64,
    /// Longest poll, in microseconds, of a shard that ran out of work before it naps, taken
    /// only while the gaps between its work are that short (0: never poll; at most
    /// [`MAX_SPIN_US`]). See `tuning/shardmq.toml`.
    pub spin_us: u64,
}

/// `shards.clean_sessions`: which shard serves a clean start whose session ends with its
/// connection (3.x clean session = 1, 5.0 Clean Start 1 with Session Expiry Interval 0,
/// `session::self_contained`). Sessions that may outlive their connection, and connections
/// that resume one, are always served by the client id's home shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CleanSessionPlacement {
    /// The shard that accepted the socket, with no hand-over; the home shard keeps a
    /// directory entry (16 bytes) so that takeovers and the API find the client. A client's
    /// connections are then on shards the kernel picks, not ones its ids pick.
    Accepting,
    /// The default: the home shard, like persistent sessions (a hand-over for all but 1/S of
    /// the connections).
    Home,
}

/// `shards.scheduling`: the Linux scheduling policy of the shard and management threads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ShardScheduling {
    /// `SCHED_BATCH`: a shard that wakes does not preempt the thread running on its core
    /// (often a client, on shared cores); it runs when that thread blocks or its time slice
    /// ends, with more work waiting for it.
    Batch,
    /// `SCHED_OTHER`, the default: a shard that wakes may preempt at once, so a program on
    /// its core that never blocks does not make it wait a whole time slice.
    Normal,
}

/// `[management]`: the management thread and its HTTP listener.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ManagementConfig {
    /// Core of the management thread; `None` = the last core shards may use.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub core: Option<usize>,
    /// HTTP listener address.
    pub bind: SocketAddr,
    /// Largest request head in bytes (larger: 431).
    pub max_header_bytes: usize,
    /// Largest request body in bytes (larger: 413).
    pub max_body_bytes: usize,
    /// Seconds a request may take to arrive completely (else 408 and close), and a response
    /// to be written.
    pub request_timeout: u64,
    /// Seconds an idle keep-alive connection is kept open. A connection that has not yet had a
    /// request answered successfully (an unauthenticated one) waits `request_timeout` instead.
    pub idle_timeout: u64,
    /// Most HTTP connections open at once; more are closed as they are accepted.
    pub max_connections: u64,
    /// Failed logins (wrong Basic credentials, failed `POST /auth`) from one IP address within
    /// `auth_fail_window` after which its requests get 429 for `auth_fail_backoff` (0 = off).
    pub auth_fail_limit: u32,
    /// Seconds failed logins are counted together, from the first (0 = off).
    pub auth_fail_window: u64,
    /// Seconds an address that reached `auth_fail_limit` is refused (0 = off).
    pub auth_fail_backoff: u64,
}

/// `[listeners]`: the MQTT listeners.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct ListenersConfig {
    /// `[listeners.tcp]`: plain MQTT over TCP.
    pub tcp: TcpListenerConfig,
    /// `[listeners.ssl]`: MQTT over TLS (EMQ X `listener.ssl.external`, port 8883).
    pub ssl: ListenerConfig,
    /// `[listeners.ws]`: MQTT over WebSocket (EMQ X `listener.ws.external`, port 8083).
    pub ws: ListenerConfig,
    /// `[listeners.wss]`: MQTT over WebSocket over TLS (EMQ X `listener.wss.external`, 8084).
    pub wss: ListenerConfig,
}

/// `[listeners.ssl]`, `[listeners.ws]`, `[listeners.wss]`: bound by every shard with
/// `SO_REUSEPORT` when `bind` is set; off while it is empty. `path` is for the WebSocket
/// listeners, the certificate settings for the TLS ones.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ListenerConfig {
    /// Listen address, e.g. `0.0.0.0:8883`; empty: the listener is off.
    pub bind: String,
    /// Most concurrent connections on this listener (all shards together).
    pub max_connections: u64,
    /// WebSocket: the HTTP path of the upgrade (`/mqtt`).
    pub path: String,
    /// TLS: the server's certificate chain (PEM).
    pub certfile: String,
    /// TLS: the server's private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub keyfile: String,
    /// TLS: the CA certificates client certificates must chain to (PEM); for `verify_peer`.
    pub cacertfile: String,
    /// TLS: `verify_none` (no client certificate asked) or `verify_peer`.
    pub verify: String,
    /// TLS with `verify_peer`: refuse a client that sends no certificate.
    pub fail_if_no_peer_cert: bool,
    /// TLS: `cn` takes the client certificate's subject CN as the MQTT username (EMQ X
    /// `peer_cert_as_username`); empty: off.
    pub peer_cert_as_username: String,
}

impl ListenerConfig {
    /// The bound address, when the listener is on.
    pub fn addr(&self) -> Option<SocketAddr> {
        self.bind.trim().parse().ok()
    }
}

impl Default for ListenerConfig {
    fn default() -> Self {
        ListenerConfig {
            bind: String::new(),
            max_connections: 102_400,
            path: "/mqtt".into(),
            certfile: String::new(),
            keyfile: String::new(),
            cacertfile: String::new(),
            verify: "verify_none".into(),
            fail_if_no_peer_cert: false,
            peer_cert_as_username: String::new(),
        }
    }
}

/// `[listeners.tcp]`: bound by every shard with `SO_REUSEPORT`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TcpListenerConfig {
    /// Listen address.
    pub bind: SocketAddr,
    /// Most concurrent MQTT connections on this node (all shards together).
    pub max_connections: u64,
    /// Listen backlog of each shard's socket (capped by `net.core.somaxconn`).
    pub backlog: u32,
    /// `TCP_DEFER_ACCEPT` in seconds (default 1; 0 turns it off): the kernel hands a
    /// connection to a shard only once its CONNECT arrived, so one wake-up accepts and reads
    /// it (bench/history/lone-client.md, "TCP_DEFER_ACCEPT again").
    pub defer_accept: u32,
}

/// How a shared subscription group picks the member that gets a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SharedSubscriptionStrategy {
    /// Members in turn.
    RoundRobin,
    /// A random member (the EMQ X default).
    Random,
    /// A member chosen by a hash of the publisher's client id.
    HashClientid,
    /// A member chosen by a hash of the topic.
    HashTopic,
}

/// `[mqtt]`: protocol limits and session behaviour. Durations are whole seconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MqttConfig {
    /// Largest packet in bytes, fixed header included (1..=268435455).
    pub max_packet_size: u32,
    /// Largest CONNECT in bytes (at most `max_packet_size` counts): what an unauthenticated
    /// peer may make the broker buffer.
    pub max_connect_packet_size: u32,
    /// Bytes all connections together may hold in packets not yet complete (an equal share
    /// per shard, at least `max_packet_size`; each connection counts from 64 KiB). Over it the connection holding the
    /// most is closed.
    pub input_budget: u64,
    /// Bytes all sessions' queues together may hold (an equal share per shard, checked every
    /// housekeeping tick; 0 = no limit). Over it the largest queues are shed, QoS 0 first.
    pub queue_budget: u64,
    /// Longest client id in bytes (at least 23).
    pub max_clientid_len: u16,
    /// Most levels in a topic name or filter (0 = unlimited).
    pub max_topic_levels: u32,
    /// Highest QoS allowed (0..=2); higher requests are downgraded.
    pub max_qos_allowed: u8,
    /// Most unacknowledged QoS 1/2 deliveries per client (at least 1).
    pub max_inflight: u16,
    /// Most queued messages per client beyond the inflight window (0 = unlimited).
    pub max_mqueue: usize,
    /// Whether QoS 0 messages are queued for offline persistent sessions.
    pub mqueue_store_qos0: bool,
    /// Most QoS 2 messages awaiting PUBREL per client (0 = unlimited).
    pub max_awaiting_rel: u32,
    /// Seconds to wait for a PUBREL.
    pub await_rel_timeout: u64,
    /// Seconds before an unacknowledged delivery is retried.
    pub retry_interval: u64,
    /// Seconds an offline clean_session=false session is kept.
    pub session_expiry_interval: u64,
    /// A client is dropped after `keepalive * keepalive_multiplier` seconds of silence (> 1.0).
    pub keepalive_multiplier: f64,
    /// Whether clients without a username may connect.
    pub allow_anonymous: bool,
    /// Most subscriptions per client (0 = unlimited).
    pub max_subscriptions: u32,
    /// Deliver at the subscription's QoS even if the message's QoS is lower.
    pub upgrade_qos: bool,
    /// The longest keepalive (seconds) an MQTT 5.0 client may use: one asking for none or for
    /// longer is given this one, as Server Keep Alive in CONNACK; 0 = the client's own.
    pub server_keepalive: u16,
    /// Topic aliases an MQTT 5.0 client may bind on one connection (sent as Topic Alias
    /// Maximum in CONNACK; 0 = none).
    pub max_topic_alias: u16,
    /// Seconds a socket may stay open without sending CONNECT (at least 1).
    pub idle_timeout: u64,
    /// How shared subscription groups pick a member.
    pub shared_subscription_strategy: SharedSubscriptionStrategy,
    /// Failed authentications (CONNACK 4, or 5 for an anonymous client when those are not
    /// allowed) from one IP address within `auth_fail_window` after which its CONNECTs are
    /// refused (CONNACK 5) for `auth_fail_backoff` (0 = off).
    pub auth_fail_limit: u32,
    /// Seconds failed authentications are counted together, from the first (0 = off).
    pub auth_fail_window: u64,
    /// Seconds an address that reached `auth_fail_limit` is refused (0 = off).
    pub auth_fail_backoff: u64,
}

/// `[retainer]`: retained messages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetainerConfig {
    /// Whether retained messages are stored and delivered.
    pub enable: bool,
    /// Most retained messages on this node (0 = unlimited).
    pub max_retained_messages: u64,
    /// Largest retained payload in bytes.
    pub max_payload_size: u32,
    /// Seconds a retained message is kept (0 = until replaced).
    pub expiry_interval: u64,
}

/// `[alarms]`: the management thread's system monitors (emqx_os_mon / emqx_vm_mon). Ratios
/// are fractions of 1.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlarmsConfig {
    /// Milliseconds between two checks (at least 10).
    pub check_interval_ms: u64,
    /// `cpu_high_watermark` is raised when system CPU use reaches this ratio...
    pub cpu_high_watermark: f64,
    /// ...and cleared when it falls below this one.
    pub cpu_low_watermark: f64,
    /// `system_memory_high_watermark`: used / total system memory above this ratio.
    pub sysmem_high_watermark: f64,
    /// `process_memory_high_watermark`: this process's resident memory / total memory above
    /// this ratio.
    pub procmem_high_watermark: f64,
    /// `too_many_connections`: live MQTT connections / `listeners.tcp.max_connections` at or
    /// above this ratio raises...
    pub connections_high_watermark: f64,
    /// ...and below this one clears.
    pub connections_low_watermark: f64,
}

/// `[sys]`: `$SYS` topic publishing. Durations are whole seconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SysConfig {
    /// Seconds between `$SYS` statistics publishes (0 = never).
    pub interval: u64,
    /// Seconds between `$SYS` heartbeat publishes (0 = never).
    pub heartbeat: u64,
}

impl Default for NodeConfig {
    fn default() -> Self {
        NodeConfig {
            name: "shardmq@127.0.0.1".to_owned(),
            data_dir: "data".to_owned(),
        }
    }
}

impl Default for ShardsConfig {
    fn default() -> Self {
        ShardsConfig {
            cores: Vec::new(),
            count: 0,
            channel_capacity: 1024,
            scheduling: ShardScheduling::Normal,
            clean_sessions: CleanSessionPlacement::Home,
            nap_us: 1000,
            spin_us: 50,
        }
    }
}

impl Default for ManagementConfig {
    fn default() -> Self {
        ManagementConfig {
            core: None,
            bind: SocketAddr::from(([0, 0, 0, 0], 8080)),
            max_header_bytes: 16 * 1024,
            max_body_bytes: 1024 * 1024,
            request_timeout: 10,
            idle_timeout: 60,
            max_connections: 512,
            auth_fail_limit: 5,
            auth_fail_window: 60,
            auth_fail_backoff: 60,
        }
    }
}

impl Default for TcpListenerConfig {
    fn default() -> Self {
        TcpListenerConfig {
            bind: SocketAddr::from(([0, 0, 0, 0], 1883)),
            max_connections: 1_024_000,
            backlog: 1024,
            defer_accept: 1,
        }
    }
}

impl MqttConfig {
    /// The keepalive a 5.0 client that asked for `client` seconds gets, when the server
    /// imposes another (sent as Server Keep Alive): `server_keepalive` is the most it allows,
    /// so a client asking for none (0) or for longer gets it, one asking for less keeps its
    /// own. `None`: the client's own stands.
    pub fn imposed_keepalive(&self, client: u16) -> Option<u16> {
        let server = self.server_keepalive;
        (server > 0 && (client == 0 || client > server)).then_some(server)
    }
}

impl Default for MqttConfig {
    fn default() -> Self {
        MqttConfig {
            max_packet_size: 1024 * 1024,
            max_connect_packet_size: 64 * 1024,
            input_budget: 64 * 1024 * 1024,
            queue_budget: 1024 * 1024 * 1024,
            max_clientid_len: 65535,
            max_topic_levels: 201,
            max_qos_allowed: 2,
            max_inflight: 32,
            max_mqueue: 1000,
            mqueue_store_qos0: true,
            max_awaiting_rel: 100,
            await_rel_timeout: 300,
            retry_interval: 30,
            session_expiry_interval: 7200,
            keepalive_multiplier: 1.5,
            allow_anonymous: true,
            max_subscriptions: 0,
            upgrade_qos: false,
            server_keepalive: 0,
            max_topic_alias: 10,
            idle_timeout: 15,
            shared_subscription_strategy: SharedSubscriptionStrategy::Random,
            auth_fail_limit: 5,
            auth_fail_window: 60,
            auth_fail_backoff: 60,
        }
    }
}

impl Default for RetainerConfig {
    fn default() -> Self {
        RetainerConfig {
            enable: true,
            max_retained_messages: 0,
            max_payload_size: 1024 * 1024,
            expiry_interval: 0,
        }
    }
}

impl Default for AlarmsConfig {
    fn default() -> Self {
        AlarmsConfig {
            check_interval_ms: 5000,
            cpu_high_watermark: 0.8,
            cpu_low_watermark: 0.6,
            sysmem_high_watermark: 0.7,
            procmem_high_watermark: 0.05,
            connections_high_watermark: 0.8,
            connections_low_watermark: 0.6,
        }
    }
}

impl Default for SysConfig {
    fn default() -> Self {
        SysConfig {
            interval: 60,
            heartbeat: 30,
        }
    }
}

impl Config {
    /// Parses a TOML configuration. Keys left out keep their defaults; unknown keys and wrong
    /// types are errors naming the dotted key and the line. Does not [`validate`](Self::validate).
    pub fn from_toml_str(text: &str) -> Result<Config, ConfigError> {
        let de = toml::Deserializer::new(text);
        serde_path_to_error::deserialize(de).map_err(|e| ConfigError::from_toml(text, e))
    }

    /// Applies one `--set KEY=VALUE` override, e.g. `mqtt.max_mqueue=100000`,
    /// `shards.cores=[0,1]` or `node.name=foo@bar`. VALUE is read as a TOML value, or as a
    /// string when it is not valid TOML (or when the key wants a string). On error `self` is
    /// unchanged. Does not [`validate`](Self::validate).
    pub fn apply_set(&mut self, assignment: &str) -> Result<(), ConfigError> {
        *self = set::apply(self, assignment).map_err(|e| e.with_origin("--set"))?;
        Ok(())
    }

    /// Checks the values that types alone do not (ranges, names); the error names the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let fail = |key: &str, message: String| Err(ConfigError::new(Some(key), message));

        match self.node.name.split_once('@') {
            Some((name, host)) if !name.is_empty() && !host.is_empty() && !host.contains('@') => {}
            _ => {
                return fail(
                    "node.name",
                    format!("must look like name@host, got {:?}", self.node.name),
                )
            }
        }

        if self.node.data_dir.is_empty() {
            return fail("node.data_dir", "must name a directory".into());
        }
        if self.alarms.check_interval_ms < 10 {
            return fail("alarms.check_interval_ms", "must be at least 10".into());
        }

        let mut seen = self.shards.cores.clone();
        seen.sort_unstable();
        if let Some(w) = seen.windows(2).find(|w| w[0] == w[1]) {
            return fail("shards.cores", format!("core {} is listed twice", w[0]));
        }
        if self.shards.channel_capacity == 0 {
            return fail("shards.channel_capacity", "must be at least 1".into());
        }
        if self.shards.spin_us > MAX_SPIN_US {
            return fail(
                "shards.spin_us",
                format!("must be at most {MAX_SPIN_US} (a polling shard's timers wait that long)"),
            );
        }
        if self.shards.nap_us > MAX_NAP_US {
            return fail(
                "shards.nap_us",
                format!("must be at most {MAX_NAP_US} (a napping shard's timers wait that long)"),
            );
        }

        if self.management.max_header_bytes < 1024 {
            return fail(
                "management.max_header_bytes",
                format!(
                    "must be at least 1024, got {}",
                    self.management.max_header_bytes
                ),
            );
        }

        if self.management.request_timeout == 0 {
            return fail("management.request_timeout", "must be at least 1".into());
        }
        if self.management.idle_timeout == 0 {
            return fail("management.idle_timeout", "must be at least 1".into());
        }
        if self.management.max_connections == 0 {
            return fail("management.max_connections", "must be at least 1".into());
        }

        let tcp = &self.listeners.tcp;
        if tcp.max_connections == 0 {
            return fail("listeners.tcp.max_connections", "must be at least 1".into());
        }
        if tcp.backlog == 0 {
            return fail("listeners.tcp.backlog", "must be at least 1".into());
        }
        // Port 0 is a different free port for each.
        if tcp.bind == self.management.bind && tcp.bind.port() != 0 {
            return fail(
                "management.bind",
                format!("{} is also listeners.tcp.bind", tcp.bind),
            );
        }

        for (name, l, tls) in [
            ("ssl", &self.listeners.ssl, true),
            ("ws", &self.listeners.ws, false),
            ("wss", &self.listeners.wss, true),
        ] {
            if l.bind.trim().is_empty() {
                continue;
            }
            let key = |k: &str| format!("listeners.{name}.{k}");
            let Some(addr) = l.addr() else {
                return fail(&key("bind"), format!("{:?} is not an address", l.bind));
            };
            if addr == tcp.bind && addr.port() != 0 {
                return fail(&key("bind"), format!("{addr} is also listeners.tcp.bind"));
            }
            if l.max_connections == 0 {
                return fail(&key("max_connections"), "must be at least 1".into());
            }
            if !tls {
                if !l.path.starts_with('/') {
                    return fail(&key("path"), "must start with /".into());
                }
                continue;
            }
            if l.certfile.is_empty() || l.keyfile.is_empty() {
                return fail(
                    &key("certfile"),
                    "a TLS listener needs certfile and keyfile".into(),
                );
            }
            if !matches!(l.verify.as_str(), "verify_none" | "verify_peer") {
                return fail(&key("verify"), "must be verify_none or verify_peer".into());
            }
            if l.verify == "verify_peer" && l.cacertfile.is_empty() {
                return fail(&key("cacertfile"), "verify_peer needs cacertfile".into());
            }
            if !matches!(l.peer_cert_as_username.as_str(), "" | "cn") {
                return fail(&key("peer_cert_as_username"), "must be cn or empty".into());
            }
        }

        let mqtt = &self.mqtt;
        if !(1..=MAX_PACKET_SIZE_LIMIT).contains(&mqtt.max_packet_size) {
            return fail(
                "mqtt.max_packet_size",
                format!(
                    "must be in 1..={MAX_PACKET_SIZE_LIMIT}, got {}",
                    mqtt.max_packet_size
                ),
            );
        }
        if mqtt.max_connect_packet_size < 64 {
            return fail(
                "mqtt.max_connect_packet_size",
                "must be at least 64 (a CONNECT with a short client id)".into(),
            );
        }
        // (A shard's share is never less than one whole packet, whatever this is.)
        if mqtt.input_budget < 1024 * 1024 {
            return fail("mqtt.input_budget", "must be at least 1048576".into());
        }
        if mqtt.max_clientid_len < 23 {
            return fail(
                "mqtt.max_clientid_len",
                format!(
                    "must be at least 23 (MQTT 3.1.3-5), got {}",
                    mqtt.max_clientid_len
                ),
            );
        }
        if mqtt.max_qos_allowed > 2 {
            return fail(
                "mqtt.max_qos_allowed",
                format!("must be 0, 1 or 2, got {}", mqtt.max_qos_allowed),
            );
        }
        if mqtt.max_inflight == 0 {
            return fail("mqtt.max_inflight", "must be at least 1".into());
        }
        if !(mqtt.keepalive_multiplier.is_finite() && mqtt.keepalive_multiplier > 1.0) {
            return fail(
                "mqtt.keepalive_multiplier",
                format!(
                    "must be a number greater than 1.0, got {}",
                    mqtt.keepalive_multiplier
                ),
            );
        }
        if mqtt.idle_timeout == 0 {
            return fail("mqtt.idle_timeout", "must be at least 1 second".into());
        }

        if self.retainer.max_payload_size == 0 {
            return fail("retainer.max_payload_size", "must be at least 1".into());
        }
        Ok(())
    }

    /// The cores to run shards on, one entry per shard (a core may repeat when
    /// `shards.count` exceeds the cores there are; see [`placement_warnings`](Self::placement_warnings)).
    ///
    /// `available` is the process's affinity mask (`shardmq_shards::available_cores()`).
    /// The base list is `shards.cores`, or `available` when that is empty; `shards.count = N > 0`
    /// takes its first N entries, wrapping around.
    pub fn shard_cores(&self, available: &[usize]) -> Vec<usize> {
        let base = self.base_cores(available);
        match self.shards.count {
            0 => base.to_vec(),
            n => base.iter().copied().cycle().take(n).collect(),
        }
    }

    /// The core of the management thread: `management.core`, or the last core of the base list
    /// (`shards.cores`, or `available` when that is empty).
    pub fn management_core(&self, available: &[usize]) -> usize {
        self.management
            .core
            .unwrap_or_else(|| self.base_cores(available).last().copied().unwrap_or(0))
    }

    /// Things about core placement worth a warning at start-up: configured cores outside the
    /// affinity mask, and shards sharing a core because `shards.count` exceeds the cores.
    pub fn placement_warnings(&self, available: &[usize]) -> Vec<String> {
        let mut warnings = Vec::new();
        let outside: Vec<usize> = self
            .shards
            .cores
            .iter()
            .chain(self.management.core.iter())
            .copied()
            .filter(|c| !available.contains(c))
            .collect();
        if !outside.is_empty() {
            warnings.push(format!(
                "cores {outside:?} are not in this process's affinity mask {available:?}; \
                 pinning to them will fail"
            ));
        }
        let base = self.base_cores(available).len();
        if self.shards.count > base {
            warnings.push(format!(
                "{} shards on {base} cores: some shards share a core, which costs latency",
                self.shards.count
            ));
        }
        warnings
    }

    fn base_cores<'a>(&'a self, available: &'a [usize]) -> &'a [usize] {
        match (self.shards.cores.as_slice(), available) {
            (cores, _) if !cores.is_empty() => cores,
            (_, available) if !available.is_empty() => available,
            _ => &[0],
        }
    }
}

#[cfg(test)]
mod tests;

/// The session settings a new session gets from the `[mqtt]` section.
impl From<&Config> for crate::session::SessionConfig {
    fn from(cfg: &Config) -> Self {
        let m = &cfg.mqtt;
        crate::session::SessionConfig {
            max_inflight: m.max_inflight,
            max_mqueue: m.max_mqueue,
            mqueue_store_qos0: m.mqueue_store_qos0,
            max_awaiting_rel: m.max_awaiting_rel as usize,
            await_rel_timeout: std::time::Duration::from_secs(m.await_rel_timeout),
            retry_interval: std::time::Duration::from_secs(m.retry_interval),
            keepalive_multiplier: m.keepalive_multiplier as f32,
            upgrade_qos: m.upgrade_qos,
            max_subscriptions: m.max_subscriptions as usize,
            session_expiry: std::time::Duration::from_secs(m.session_expiry_interval),
            max_qos_allowed: crate::codec::QoS::from_u8(m.max_qos_allowed)
                .unwrap_or(crate::codec::QoS::ExactlyOnce),
            max_topic_levels: m.max_topic_levels,
            max_topic_alias: m.max_topic_alias,
            journal: cfg.persistence.enable,
        }
    }
}
