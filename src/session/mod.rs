//! The per-client session state machine (broker side), for MQTT 3.1 / 3.1.1, shaped for 5.0.
//!
//! Owns: everything the broker remembers about one client between packets: the QoS 1/2
//! flows in both directions (outgoing inflight window, message queue, incoming QoS 2 ids
//! awaiting PUBREL), the client's own record of its subscriptions, its will, its keepalive,
//! and whether it is online. Runs on the shard that serves the client and never leaves it.
//!
//! Must never: do I/O, read the clock (`Instant::now()`), arm timers, touch channels or
//! other sessions. Time comes in as an `Instant` argument; everything the session wants done
//! goes out as [`Action`]s appended to a caller-owned `Vec`, which the broker glue executes
//! in order: write packets, route messages, update the subscription indexes, close.
//!
//! Division of labour with the glue: CONNECT/CONNACK, authentication, client id assignment,
//! takeover, the routing indexes, SUBACK/UNSUBACK timing, retained messages on subscribe,
//! the will's publication and the `bytes/*` and `packets/*` counters are the glue's. The
//! session counts `messages/*` and `packets/*/missed`.
//!
//! Lifecycle: [`Session::new`] (online) → [`Session::handle`] / [`Session::deliver`] /
//! [`Session::tick`] → `Close` action or [`Session::connection_lost`] (offline) → the glue
//! drops a non-persistent session, keeps a persistent one until [`Session::expired`] or
//! [`Session::resume`]. After a `Close` action the session is offline and ignores packets.

mod awaiting_rel;
mod inbound;
mod inflight;
mod keepalive;
mod lazy_deque;
mod message;
mod mqueue;
mod outbound;
mod packet_id;
mod persist;
mod violation;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::codec::{Connect, LastWill, Packet, ProtocolVersion, QoS, Str, SubOptions};
use crate::metrics::Metrics;

use awaiting_rel::AwaitingRel;
use inflight::Inflight;
use keepalive::Keepalive;
use mqueue::MQueue;
use packet_id::PacketIds;

pub use inflight::InflightState;
pub use message::Message;
pub use persist::Persist;
pub use violation::Violation;

/// How long the session a CONNECT opens outlives its connection: 3.x, none with clean
/// session = 1, else the zone's `session_expiry`; 5.0, its Session Expiry Interval, at most
/// the zone's.
pub fn connect_expiry(connect: &Connect, cfg: &SessionConfig) -> Duration {
    match connect.protocol {
        ProtocolVersion::V5 => {
            let secs = connect.properties.session_expiry_interval.unwrap_or(0);
            Duration::from_secs(u64::from(secs)).min(cfg.session_expiry)
        }
        _ if connect.clean_start => Duration::ZERO,
        _ => cfg.session_expiry,
    }
}

/// Whether the session a CONNECT opens ends with its connection (it is never persistent):
/// 3.x clean session = 1, 5.0 an expiry of 0 (which a DISCONNECT may not raise
/// [MQTT-3.14.2-2]).
pub fn ends_with_connection(connect: &Connect, cfg: &SessionConfig) -> bool {
    match connect.protocol {
        ProtocolVersion::V5 => connect_expiry(connect, cfg).as_millis() == 0,
        _ => connect.clean_start,
    }
}

/// Whether a CONNECT needs no session but its own: it discards any session of the id and
/// its own ends with the connection. Such a client can be served by whichever shard
/// accepted the socket. A 5.0 Clean Start 0 with an expiry of 0 is not: it resumes the
/// session the id has [MQTT-3.1.2-5], which ends with this connection.
pub fn self_contained(connect: &Connect, cfg: &SessionConfig) -> bool {
    connect.clean_start && ends_with_connection(connect, cfg)
}

/// Session limits and policies (EMQ X v3 zone settings). Shared by all sessions of a zone.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// Outgoing QoS 1/2 messages unacknowledged at once; 0 = unlimited (65535).
    pub max_inflight: u16,
    /// Messages queued behind the window or while offline; 0 = unbounded.
    pub max_mqueue: usize,
    /// Whether QoS 0 messages are queued for an offline client.
    pub mqueue_store_qos0: bool,
    /// Incoming QoS 2 messages awaiting PUBREL at once; 0 = unlimited.
    pub max_awaiting_rel: usize,
    /// How long an incoming QoS 2 id waits for PUBREL; zero = forever.
    pub await_rel_timeout: Duration,
    /// Re-send unacknowledged PUBLISH/PUBREL after this long (3.x only; zero = never).
    pub retry_interval: Duration,
    /// Keepalive is enforced at `keep_alive * keepalive_multiplier` ([MQTT-3.1.2-24]: 1.5).
    pub keepalive_multiplier: f32,
    /// Deliver at `max(message qos, subscription qos)` instead of the minimum.
    pub upgrade_qos: bool,
    /// Subscriptions per session; 0 = unlimited.
    pub max_subscriptions: usize,
    /// How long a persistent session outlives its connection (5.0: the upper bound).
    pub session_expiry: Duration,
    /// Highest QoS a client may publish with or be granted.
    pub max_qos_allowed: QoS,
    /// Most levels in a topic a client publishes to or a filter it subscribes to (without a
    /// shared subscription's prefix); 0 = unlimited.
    pub max_topic_levels: u32,
    /// Topic aliases a 5.0 client may bind per connection (the Topic Alias Maximum the
    /// glue announces in CONNACK); 0 = none.
    pub max_topic_alias: u16,
    /// Persistent sessions record their changes for the journal (`persistence.enable`).
    pub journal: bool,
}

impl Default for SessionConfig {
    /// The configuration's defaults (`Config::default()`, which `tuning/shardmq.toml` documents
    /// and a test holds equal to it): one place for each default.
    fn default() -> Self {
        SessionConfig::from(&crate::config::Config::default())
    }
}

/// What the glue must do, in order, after a session call.
// `Send` is the common action and holds a whole packet; boxing it would allocate per packet,
// and actions live in reused vectors, so their size costs nothing per message.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Write this packet to the client.
    Send(Packet),
    /// Only from [`Session::deliver`]: write the message that call was given, as a PUBLISH
    /// with this QoS and packet id (not a duplicate, its retain flag as in the message). The
    /// caller has the message at hand and encodes it without copying it into a packet.
    SendDelivered {
        qos: QoS,
        packet_id: Option<u16>,
        /// The RETAIN flag of this copy (the message's, kept only when the subscription asked
        /// Retain As Published, or for a retained message sent on subscribing).
        retain: bool,
    },
    /// Route this message the client published (to subscribers; store it if retained). A QoS
    /// 1 or 2 message's PUBACK / PUBREC is the next action: the glue holds it until a retained
    /// message is stored, and gives it the routing's 5.0 reason code (0x10, 0x87).
    Route(Message),
    /// Add these subscriptions to the indexes (`Ok`: granted options, replacing any existing
    /// subscription to the same filter) and, once the routes are acknowledged, send SUBACK
    /// (granted QoS or the failure code, in this order) and the retained messages.
    /// Failure codes: 0x80 for 3.x; 5.0 reason codes (0x8F, 0x97, ...) for 5.0.
    Subscribe {
        packet_id: u16,
        filters: Vec<(Str, Result<SubOptions, u8>)>,
    },
    /// Remove these filters from the indexes, then send UNSUBACK. The flag says whether the
    /// session had the subscription (5.0: reason 0x00, else 0x11 No subscription existed).
    Unsubscribe {
        packet_id: u16,
        filters: Vec<(Str, bool)>,
    },
    /// Close the connection. The session is already offline when this is emitted.
    Close(CloseReason),
}

impl Action {
    /// Turns an [`Action::SendDelivered`] into the owned [`Action::Send`] it stands for, given
    /// the message `deliver` was called with; any other action is returned as it is.
    pub fn with_message(self, msg: &Message) -> Action {
        match self {
            Action::SendDelivered {
                qos,
                packet_id,
                retain,
            } => {
                let mut publish = msg.to_publish(packet_id, false);
                publish.qos = qos;
                publish.retain = retain;
                Action::Send(Packet::Publish(publish))
            }
            other => other,
        }
    }
}

/// Why a connection ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// The client sent DISCONNECT: the will is discarded [MQTT-3.14.4-3].
    Disconnect,
    /// 5.0 DISCONNECT with reason 0x04: publish the will anyway.
    DisconnectWithWill,
    /// No packet within keepalive × multiplier [MQTT-3.1.2-24].
    KeepaliveTimeout,
    /// The client broke a protocol rule.
    ProtocolError(Violation),
    /// The client sent bytes that do not decode as an MQTT packet (glue).
    Malformed(crate::codec::DecodeError),
    /// A new connection with the same client id took the session over (glue).
    Takeover,
    /// Kicked by the management API (glue).
    Kicked,
    /// The socket closed or failed without DISCONNECT (glue).
    SocketClosed,
    /// The broker is shutting down (glue).
    ServerShutdown,
    /// The connection held the most input in unfinished packets when the broker's input
    /// budget ran out (glue).
    InputBudget,
    /// It published where the ACL denies it, with `acl.deny_action = disconnect` (glue).
    NotAuthorized,
}

impl CloseReason {
    /// Whether the will is published ([MQTT-3.1.2-8]; EMQ X: not on takeover).
    pub fn publishes_will(self) -> bool {
        !matches!(self, CloseReason::Disconnect | CloseReason::Takeover)
    }

    /// The reason as EMQ X names it in logs and the `client.disconnected` event.
    pub fn as_str(self) -> &'static str {
        match self {
            CloseReason::Disconnect | CloseReason::DisconnectWithWill => "normal",
            CloseReason::KeepaliveTimeout => "keepalive_timeout",
            CloseReason::ProtocolError(_) => "protocol_error",
            CloseReason::Malformed(_) => "parse_error",
            CloseReason::Takeover => "takeover",
            CloseReason::Kicked => "kicked",
            CloseReason::SocketClosed => "closed",
            CloseReason::ServerShutdown => "shutdown",
            CloseReason::InputBudget => "input_budget",
            CloseReason::NotAuthorized => "not_authorized",
        }
    }

    /// The reason code of the DISCONNECT a 5.0 client gets; `None`: close without one.
    pub fn disconnect_reason_code(self) -> Option<u8> {
        match self {
            CloseReason::KeepaliveTimeout => Some(0x8D),
            CloseReason::ProtocolError(v) => Some(v.reason_code()),
            CloseReason::Malformed(e) => Some(e.reason_code()),
            CloseReason::Takeover => Some(0x8E),
            CloseReason::Kicked => Some(0x98),
            CloseReason::ServerShutdown => Some(0x8B),
            CloseReason::InputBudget => Some(0x97),
            CloseReason::NotAuthorized => Some(0x87),
            CloseReason::Disconnect
            | CloseReason::DisconnectWithWill
            | CloseReason::SocketClosed => None,
        }
    }
}

/// Figures for the management API (EMQ X session info fields).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionInfo {
    pub clean_start: bool,
    pub created_at: Instant,
    pub subscriptions_count: usize,
    /// 0 = unlimited.
    pub max_subscriptions: usize,
    pub inflight_len: usize,
    pub max_inflight: usize,
    pub mqueue_len: usize,
    /// 0 = unbounded.
    pub max_mqueue: usize,
    pub mqueue_dropped: u64,
    pub awaiting_rel_len: usize,
    /// 0 = unlimited.
    pub max_awaiting_rel: usize,
    /// Messages passed to `deliver` (EMQ X `deliver_msg`).
    pub deliver_msg: u64,
    /// Messages that went to the queue (EMQ X `enqueue_msg`).
    pub enqueue_msg: u64,
    /// How long the session outlives its connection, as in force (the config's bound, a
    /// 5.0 client's own interval, a DISCONNECT's change); zero for a clean session.
    pub expiry: Duration,
}

/// A durable session as written down (see [`Session::restore`]).
#[derive(Debug, Clone, Default)]
pub struct Restored {
    pub client_id: Str,
    pub protocol: ProtocolVersion,
    pub expiry_secs: u64,
    /// Filter, granted options, 5.0 Subscription Identifier (0 = none).
    pub subscriptions: Vec<(Str, SubOptions, u32)>,
    /// In the order they entered: the message (its `seq` set), its packet id when it was
    /// sent, and whether a QoS 2 one was PUBREC'd.
    pub messages: Vec<(Message, Option<u16>, bool)>,
    pub awaiting_rel: Vec<u16>,
}

/// The state of one client's session. See the module documentation.
#[derive(Debug, Clone)]
pub struct Session {
    client_id: Str,
    protocol: ProtocolVersion,
    clean_start: bool,
    /// Boxed: most clients set no will, and an idle session should stay small.
    will: Option<Box<LastWill>>,
    cfg: Arc<SessionConfig>,
    created_at: Instant,
    keepalive: Keepalive,
    online: bool,
    persistent: bool,
    /// Effective: config bound, lowered by a 5.0 Session Expiry Interval (in milliseconds:
    /// 8 bytes, not a `Duration`'s 16, in every session; see [`Session::session_expiry`]).
    session_expiry_ms: u64,
    /// Effective: config bound, lowered by a 5.0 Receive Maximum.
    max_inflight: u16,
    /// The client's Maximum Packet Size (5.0; 0 = none announced).
    max_packet_out: u32,
    inflight: Inflight,
    mqueue: MQueue,
    awaiting_rel: AwaitingRel,
    packet_ids: PacketIds,
    subscriptions: BTreeMap<Str, SubOptions>,
    /// What only some sessions have (5.0 identifiers and aliases, an offline session's
    /// clocks, a durable session's records to write): boxed, so that an idle online session
    /// does not carry it.
    extras: Option<Box<Extras>>,
    /// 5.0: the CONNECT's Session Expiry Interval was 0 (DISCONNECT may not raise it).
    connect_expiry_zero: bool,
    /// The next sequence number for a message this session keeps (from 1).
    next_seq: u64,
    deliver_msg: u64,
    enqueue_msg: u64,
}

/// The part of a [`Session`] most sessions never use.
#[derive(Debug, Clone, Default)]
struct Extras {
    /// 5.0 Subscription Identifiers by filter (only subscriptions that were given one).
    subscription_ids: BTreeMap<Str, u32>,
    /// 5.0: topic names the client bound to Topic Aliases on this connection.
    aliases_in: BTreeMap<u16, Str>,
    /// When the connection was lost (`None` while online).
    offline_since: Option<Instant>,
    /// Offline with a will: when it is due (its Will Delay Interval after the connection
    /// was lost, or the session's end if that comes first) [MQTT-3.1.3-9].
    will_due: Option<Instant>,
    /// What a durable session asks to be written down since the glue last took it.
    persist: Vec<Persist>,
}

impl Extras {
    fn is_empty(&self) -> bool {
        self.subscription_ids.is_empty()
            && self.aliases_in.is_empty()
            && self.offline_since.is_none()
            && self.will_due.is_none()
            && self.persist.is_empty()
    }
}

/// What [`Session::subscription_ids`] lends when a session has no extras.
static NO_SUBSCRIPTION_IDS: BTreeMap<Str, u32> = BTreeMap::new();

/// The session's subscription identifiers (a field borrow, so that others can be borrowed
/// mutably meanwhile).
fn subscription_ids(extras: &Option<Box<Extras>>) -> &BTreeMap<Str, u32> {
    extras
        .as_ref()
        .map_or(&NO_SUBSCRIPTION_IDS, |e| &e.subscription_ids)
}

impl Session {
    /// How long the session outlives its connection.
    fn session_expiry(&self) -> Duration {
        Duration::from_millis(self.session_expiry_ms)
    }

    fn set_session_expiry(&mut self, d: Duration) {
        self.session_expiry_ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    }

    fn extras_mut(&mut self) -> &mut Extras {
        self.extras.get_or_insert_with(Box::default)
    }

    /// Frees the extras once nothing is left in them; returns the bytes freed.
    fn trim_extras(&mut self) -> usize {
        if self.extras.as_ref().is_some_and(|e| e.is_empty()) {
            self.extras = None;
            std::mem::size_of::<Extras>()
        } else {
            0
        }
    }

    fn subscription_ids(&self) -> &BTreeMap<Str, u32> {
        subscription_ids(&self.extras)
    }

    fn offline_since(&self) -> Option<Instant> {
        self.extras.as_ref().and_then(|e| e.offline_since)
    }

    fn will_due(&self) -> Option<Instant> {
        self.extras.as_ref().and_then(|e| e.will_due)
    }

    /// Sets when the connection was lost and when the will is due (`None`, `None`: online).
    fn set_offline(&mut self, since: Option<Instant>, will_due: Option<Instant>) {
        if since.is_none() && will_due.is_none() && self.extras.is_none() {
            return;
        }
        let e = self.extras_mut();
        e.offline_since = since;
        e.will_due = will_due;
        self.trim_extras();
    }

    /// A fresh, online session for an accepted CONNECT (the glue has sent or will send CONNACK
    /// with session present = 0).
    pub fn new(connect: &Connect, cfg: impl Into<Arc<SessionConfig>>, now: Instant) -> Session {
        let mut s = Session::empty(connect.client_id.clone(), connect.protocol, cfg.into(), now);
        s.take_connect(connect, now);
        s
    }

    /// A session with nothing in it yet, online, not persistent.
    fn empty(
        client_id: Str,
        protocol: ProtocolVersion,
        cfg: Arc<SessionConfig>,
        now: Instant,
    ) -> Self {
        Session {
            client_id,
            protocol,
            clean_start: true,
            will: None,
            keepalive: Keepalive::new(0, 1.0, now),
            online: true,
            persistent: false,
            session_expiry_ms: 0,
            max_inflight: 0,
            max_packet_out: 0,
            inflight: Inflight::default(),
            mqueue: MQueue::new(cfg.max_mqueue),
            awaiting_rel: AwaitingRel::new(cfg.max_awaiting_rel),
            packet_ids: PacketIds::default(),
            subscriptions: BTreeMap::new(),
            extras: None,
            connect_expiry_zero: true,
            next_seq: 1,
            deliver_msg: 0,
            enqueue_msg: 0,
            created_at: now,
            cfg,
        }
    }

    /// A durable session as a restart found it written down, offline since `now`: its
    /// messages in the order they entered (those sent with their packet id go back into the
    /// window, to be re-sent with DUP when the client resumes; the rest wait in the queue),
    /// its subscriptions and its incoming QoS 2 ids awaiting PUBREL.
    pub fn restore(r: Restored, cfg: impl Into<Arc<SessionConfig>>, now: Instant) -> Session {
        let cfg: Arc<SessionConfig> = cfg.into();
        let window = if cfg.max_inflight == 0 {
            u16::MAX
        } else {
            cfg.max_inflight
        };
        let mut s = Session::empty(r.client_id, r.protocol, cfg, now);
        s.clean_start = false;
        s.online = false;
        s.set_offline(Some(now), None);
        s.persistent = true;
        s.set_session_expiry(Duration::from_secs(r.expiry_secs));
        s.max_inflight = window;
        s.connect_expiry_zero = false;
        for (filter, opts, id) in r.subscriptions {
            if id != 0 {
                s.extras_mut().subscription_ids.insert(filter.clone(), id);
            }
            s.subscriptions.insert(filter, opts);
        }
        for (msg, packet_id, received) in r.messages {
            s.next_seq = s.next_seq.max(msg.seq + 1);
            match packet_id {
                Some(packet_id) if !s.inflight.contains(packet_id) => {
                    let state = match (msg.qos, received) {
                        (QoS::ExactlyOnce, true) => InflightState::WaitComp,
                        (QoS::ExactlyOnce, false) => InflightState::WaitRec,
                        _ => InflightState::WaitAck,
                    };
                    s.inflight.push(inflight::InflightEntry {
                        packet_id,
                        msg,
                        state,
                        sent_at: now,
                        resend: false,
                    });
                }
                _ => {
                    // Held past `max_mqueue` if need be: every one of them was acknowledged.
                    s.mqueue.set_held(true);
                    s.mqueue.push(msg);
                    s.mqueue.set_held(false);
                }
            }
        }
        for packet_id in r.awaiting_rel {
            s.awaiting_rel.insert(packet_id, now);
        }
        s
    }

    /// This session as [`Session::restore`] would rebuild it: what a snapshot of the journal
    /// writes (its QoS 1/2 messages with their sequence numbers, in order).
    pub fn written_down(&self, client_id: &Str) -> Restored {
        let mut messages: Vec<(Message, Option<u16>, bool)> = self
            .inflight
            .iter()
            .filter(|e| e.msg.seq != 0)
            .map(|e| {
                let received = e.state == InflightState::WaitComp;
                (e.msg.clone(), Some(e.packet_id), received)
            })
            .collect();
        messages.extend(
            self.mqueue
                .iter()
                .filter(|m| m.seq != 0)
                .map(|m| (m.clone(), None, false)),
        );
        messages.sort_by_key(|(m, _, _)| m.seq);
        Restored {
            client_id: client_id.clone(),
            protocol: self.protocol,
            expiry_secs: self.session_expiry().as_secs(),
            subscriptions: self
                .subscriptions
                .iter()
                .map(|(f, o)| {
                    (
                        f.clone(),
                        *o,
                        self.subscription_ids().get(f).copied().unwrap_or(0),
                    )
                })
                .collect(),
            messages,
            awaiting_rel: self.awaiting_rel.ids().collect(),
        }
    }

    /// The client reconnected to this persistent session (the glue checked clean
    /// session = 0 and sends CONNACK with session present = 1 before these actions).
    /// Takes the new will, keepalive and protocol, re-sends every unacknowledged PUBLISH with
    /// DUP = 1 and every pending PUBREL in original order [MQTT-4.4.0-1], then moves queued
    /// messages into the window. When the window holds more than the client now allows
    /// (5.0 Receive Maximum), the rest are re-sent as acknowledgements free it.
    pub fn resume(
        &mut self,
        connect: &Connect,
        now: Instant,
        m: &mut Metrics,
        out: &mut Vec<Action>,
    ) {
        self.take_connect(connect, now);
        self.inflight.mark_all_for_resend();
        self.drain(now, m, out);
    }

    fn take_connect(&mut self, connect: &Connect, now: Instant) {
        self.protocol = connect.protocol;
        self.clean_start = connect.clean_start;
        // A will still waiting for its delay is not published: the client is back
        // [MQTT-3.1.3-9]; the new connection's will replaces it.
        self.will = connect.will.clone().map(Box::new);
        self.keepalive = Keepalive::new(connect.keep_alive, self.cfg.keepalive_multiplier, now);
        self.online = true;
        // Online: no will is due, and the aliases live as long as the connection
        // [MQTT-3.3.2-7].
        if let Some(e) = &mut self.extras {
            e.aliases_in.clear();
        }
        self.set_offline(None, None);
        let cfg_inflight = if self.cfg.max_inflight == 0 {
            u16::MAX
        } else {
            self.cfg.max_inflight
        };
        let receive_max = match self.protocol {
            ProtocolVersion::V5 => connect
                .properties
                .receive_maximum
                .filter(|&r| r > 0)
                .unwrap_or(u16::MAX),
            _ => u16::MAX,
        };
        self.max_inflight = cfg_inflight.min(receive_max);
        self.max_packet_out = match self.protocol {
            ProtocolVersion::V5 => connect.properties.maximum_packet_size.unwrap_or(0),
            _ => 0,
        };
        self.connect_expiry_zero = connect.properties.session_expiry_interval.unwrap_or(0) == 0;
        self.set_session_expiry(connect_expiry(connect, &self.cfg));
        self.persistent = !ends_with_connection(connect, &self.cfg);
        self.record_settings();
    }

    /// Records the settings a restart needs (a durable session only).
    pub(super) fn record_settings(&mut self) {
        let op = Persist::Open {
            protocol: self.protocol,
            expiry_secs: self.session_expiry().as_secs(),
        };
        self.record(op);
    }

    /// Appends `op` to what the glue must write down, if this session is durable.
    pub(super) fn record(&mut self, op: Persist) {
        if self.persistent && self.cfg.journal {
            self.extras_mut().persist.push(op);
        }
    }

    /// What this session asked to be written down since the last call, in order (empty for
    /// a session that is not persistent).
    pub fn take_persist(&mut self) -> Vec<Persist> {
        // The extras stay (a durable session records again soon); the tick trims them.
        self.extras
            .as_mut()
            .map(|e| std::mem::take(&mut e.persist))
            .unwrap_or_default()
    }

    /// True when [`Session::take_persist`] has something.
    pub fn has_persist(&self) -> bool {
        self.extras.as_ref().is_some_and(|e| !e.persist.is_empty())
    }

    /// The socket is gone: the session goes offline (the glue drops it if not persistent).
    /// Idempotent.
    pub fn connection_lost(&mut self, now: Instant) {
        if self.online {
            self.online = false;
            let will_due = self.will.as_ref().map(|w| {
                let delay = match self.protocol {
                    ProtocolVersion::V5 => w.properties.will_delay_interval.unwrap_or(0),
                    _ => 0,
                };
                let delay = Duration::from_secs(u64::from(delay)).min(self.session_expiry());
                now.checked_add(delay).unwrap_or(now)
            });
            self.set_offline(Some(now), will_due);
        }
    }

    /// Emits `Close(reason)` and goes offline.
    fn close(&mut self, reason: CloseReason, now: Instant, out: &mut Vec<Action>) {
        out.push(Action::Close(reason));
        self.connection_lost(now);
    }

    /// Keepalive expiry, QoS 2 PUBREL expiry and (3.x) retries of unacknowledged messages.
    pub fn tick(&mut self, now: Instant, m: &mut Metrics, out: &mut Vec<Action>) {
        if self.online && self.keepalive.expired(now) {
            self.close(CloseReason::KeepaliveTimeout, now, out);
        }
        if !self.cfg.await_rel_timeout.is_zero() {
            let n = self.awaiting_rel.expire(now, self.cfg.await_rel_timeout);
            m.messages_qos2_expired += n as u64;
        }
        if let Some(retry) = self.retry_interval() {
            if self.online {
                self.redeliver_inflight(now, m, out, |e| {
                    !e.resend && now.saturating_duration_since(e.sent_at) >= retry
                });
            }
        }
    }

    /// The retry interval when retries apply (5.0 forbids re-sending except on reconnect).
    fn retry_interval(&self) -> Option<Duration> {
        let enabled = !self.cfg.retry_interval.is_zero() && self.protocol != ProtocolVersion::V5;
        enabled.then_some(self.cfg.retry_interval)
    }

    /// When [`Session::tick`] must next run (or, offline, when to check [`Session::expired`]).
    pub fn next_deadline(&self) -> Option<Instant> {
        let mut next: Option<Instant> = None;
        let mut consider = |t: Option<Instant>| {
            if let Some(t) = t {
                next = Some(next.map_or(t, |n| n.min(t)));
            }
        };
        if self.online {
            consider(self.keepalive.deadline());
            if let Some(retry) = self.retry_interval() {
                consider(
                    self.inflight
                        .oldest_sent_at()
                        .and_then(|t| t.checked_add(retry)),
                );
            }
        } else if self.is_persistent() {
            consider(self.will_due());
            consider(
                self.offline_since()
                    .and_then(|t| t.checked_add(self.session_expiry())),
            );
        }
        if !self.cfg.await_rel_timeout.is_zero() {
            consider(
                self.awaiting_rel
                    .oldest()
                    .and_then(|t| t.checked_add(self.cfg.await_rel_timeout)),
            );
        }
        next
    }

    /// Frees the storage of the session's empty queues (the inflight window, the message
    /// queue, the QoS 2 ids, the journal's pending records): what a burst grew is given back
    /// once it is over, and a client gone quiet costs what an idle one does. Returns the
    /// bytes freed.
    pub fn release_idle_memory(&mut self) -> usize {
        let mut freed = self.inflight.release_idle()
            + self.mqueue.release_idle()
            + self.awaiting_rel.release_idle();
        if let Some(e) = &mut self.extras {
            if e.persist.is_empty() && e.persist.capacity() > 0 {
                freed += e.persist.capacity() * std::mem::size_of::<Persist>();
                e.persist = Vec::new();
            }
        }
        freed + self.trim_extras()
    }

    /// Messages waiting in the queue behind the inflight window.
    pub fn queued(&self) -> usize {
        self.mqueue.len()
    }

    /// Memory those messages hold (an upper bound: a payload shared with other sessions
    /// counts in each).
    pub fn queued_bytes(&self) -> usize {
        self.mqueue.bytes()
    }

    /// Drops queued messages (QoS 0 first, then the oldest) until at least `bytes` of memory
    /// were given back or the queue is empty: the broker's queue budget ran out and this
    /// session's queue is the largest. Each drop is counted (`queue_budget`). Returns the
    /// bytes given back.
    pub fn shed_queued(&mut self, bytes: usize, m: &mut Metrics) -> usize {
        let before = self.mqueue.bytes();
        while before - self.mqueue.bytes() < bytes {
            let Some(shed) = self.mqueue.shed() else {
                break;
            };
            m.count_drop(crate::metrics::DropReason::QueueBudget);
            self.forget(&shed);
        }
        before - self.mqueue.bytes()
    }

    /// True while a connection is attached.
    pub fn is_online(&self) -> bool {
        self.online
    }

    /// True when the session outlives its connection (3.x: clean session = 0; 5.0: a
    /// non-zero Session Expiry Interval).
    pub fn is_persistent(&self) -> bool {
        self.persistent
    }

    /// True when the session is offline and should be dropped: at once if not persistent,
    /// else once `session_expiry` has passed since the connection was lost.
    pub fn expired(&self, now: Instant) -> bool {
        match self.offline_since() {
            None => false,
            Some(since) => now.saturating_duration_since(since) >= self.session_expiry(),
        }
    }

    /// Flow control (the glue's): while this session's publishers are held back, messages
    /// they sent before the hold took effect may still arrive; they were acknowledged, so
    /// `held` keeps every QoS 1/2 message past `max_mqueue` (QoS 0 still drops). `false`
    /// restores the plain bound (the hold ended: the session drained, stalled or left).
    pub fn hold_publishers(&mut self, held: bool) {
        self.mqueue.set_held(held);
    }

    /// The will, whether due or not: for the glue to publish (with [`Message::from_will`])
    /// when the session ends, or to discard (a DISCONNECT); `None` once taken or discarded.
    pub fn take_will(&mut self) -> Option<LastWill> {
        if let Some(e) = &mut self.extras {
            e.will_due = None;
        }
        self.trim_extras();
        self.will.take().map(|w| *w)
    }

    /// The will once it is due at `now` (offline, its Will Delay Interval passed or the
    /// session's end reached), for the glue to publish; `None` before, or without a will.
    pub fn take_due_will(&mut self, now: Instant) -> Option<LastWill> {
        if self.will_due().is_some_and(|due| due <= now) {
            self.take_will()
        } else {
            None
        }
    }

    /// The client's QoS 2 message `packet_id`, taken in by [`Session::handle`], was refused
    /// when routed (the ACL): its PUBREC carries an error code, which ends the flow
    /// [MQTT-4.3.3-4], so the id is free for the client's next message.
    pub fn refused_incoming(&mut self, packet_id: u16) {
        if self.awaiting_rel.remove(packet_id) {
            self.record(Persist::Released { packet_id });
        }
    }

    /// The message that `ack` (a PUBACK or a PUBCOMP from the client) completes, if it
    /// completes one: the message of an inflight entry waiting for exactly that ack.
    pub fn acked_by(&self, ack: &Packet) -> Option<&Message> {
        let (id, state) = match ack {
            Packet::PubAck(r) => (r.packet_id, InflightState::WaitAck),
            Packet::PubComp(r) => (r.packet_id, InflightState::WaitComp),
            _ => return None,
        };
        self.inflight
            .get(id)
            .filter(|e| e.state == state)
            .map(|e| &e.msg)
    }

    /// The session's own record of its subscriptions (the glue keeps the indexes).
    pub fn subscriptions(&self) -> impl Iterator<Item = (&str, &SubOptions)> {
        self.subscriptions.iter().map(|(f, o)| (f.as_str(), o))
    }

    /// The granted options of one subscription.
    pub fn subscription(&self, filter: &str) -> Option<&SubOptions> {
        // `Str` is not `Borrow<str>`; this is a management-path lookup, a scan is fine.
        self.subscriptions
            .iter()
            .find(|(f, _)| f.as_str() == filter)
            .map(|(_, o)| o)
    }

    /// The client id.
    pub fn client_id(&self) -> &Str {
        &self.client_id
    }

    /// The protocol of the current (or last) connection.
    pub fn protocol(&self) -> ProtocolVersion {
        self.protocol
    }

    /// The configuration this session runs with.
    pub fn config(&self) -> &SessionConfig {
        &self.cfg
    }

    /// State of an outgoing message in the window, by packet id.
    pub fn inflight_state(&self, packet_id: u16) -> Option<InflightState> {
        self.inflight
            .iter()
            .find(|e| e.packet_id == packet_id)
            .map(|e| e.state)
    }

    /// Figures for the management API.
    pub fn info(&self) -> SessionInfo {
        SessionInfo {
            clean_start: self.clean_start,
            created_at: self.created_at,
            subscriptions_count: self.subscriptions.len(),
            max_subscriptions: self.cfg.max_subscriptions,
            inflight_len: self.inflight.len(),
            max_inflight: usize::from(self.max_inflight),
            mqueue_len: self.mqueue.len(),
            max_mqueue: self.mqueue.max_len(),
            mqueue_dropped: self.mqueue.dropped(),
            awaiting_rel_len: self.awaiting_rel.len(),
            max_awaiting_rel: self.awaiting_rel.max_len(),
            deliver_msg: self.deliver_msg,
            enqueue_msg: self.enqueue_msg,
            expiry: if self.persistent {
                self.session_expiry()
            } else {
                Duration::ZERO
            },
        }
    }

    /// A packet from the client (the glue has counted it). Ignored while offline.
    pub fn handle(&mut self, packet: Packet, now: Instant, m: &mut Metrics, out: &mut Vec<Action>) {
        if !self.online {
            return;
        }
        self.keepalive.received(now);
        self.handle_packet(packet, now, m, out);
    }

    /// A SUBSCRIBE or UNSUBSCRIBE made on the client's behalf by the management API: applied
    /// whether the client is online or not, without touching its keepalive. Other packets are
    /// ignored. The glue must not send the SUBACK/UNSUBACK to the client.
    pub fn handle_api(
        &mut self,
        packet: Packet,
        now: Instant,
        m: &mut Metrics,
        out: &mut Vec<Action>,
    ) {
        match packet {
            Packet::Subscribe(_) | Packet::Unsubscribe(_) => {
                self.handle_packet(packet, now, m, out)
            }
            _ => {}
        }
    }
}
