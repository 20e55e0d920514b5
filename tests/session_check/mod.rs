//! A reference model of one client's session, and a harness that drives a real
//! `shardmq::session::Session` with a sequence of [`Op`]s (packets from the client,
//! deliveries, clock advances, ticks, connection losses and reconnects, management-API
//! subscriptions) and checks after every step that the session and the model agree.
//! Shared by the property test `prop_session.rs` and the cargo-fuzz target `session`
//! (`tests/fuzz/fuzz_targets/session.rs` includes this file by path).
//!
//! Owns: the model and the checks. It drives the session the way the broker glue does
//! (`src/broker/shard.rs`): a reconnect takes over an online session, resumes a persistent
//! unexpired one when the CONNECT does not ask for a clean start, else starts a new one; the
//! will is taken when a connection ends. What it checks, and panics on:
//! * answers to the client's packets: exactly the spec's (PUBACK only for a QoS 1 PUBLISH
//!   with that id, after its route; PUBREC for QoS 2; a QoS 2 message routed once until its
//!   PUBREL; PUBCOMP for every PUBREL; PINGRESP; SUBSCRIBE/UNSUBSCRIBE results; the protocol
//!   violation that closes the connection), and nothing else but window refills;
//! * the outgoing window: never more outstanding on a connection than the effective window
//!   (config bounded by a 5.0 Receive Maximum); a new PUBLISH gets a non-zero id no message
//!   in flight has, and only into a window with room; QoS 0 carries no id; acknowledgements
//!   move or free exactly the entry they name; re-sends (resume, and 3.x retries) are the
//!   window's entries in send order, DUP set, and after a resume into a smaller window the
//!   rest follow one per freed slot, before any queued message;
//! * delivery: first transmissions in delivery order; effective QoS = min (or max with
//!   `upgrade_qos`) of message and subscription; sent at once when online, nothing queued and
//!   the window has room; nothing queued while online unless the window is full; every
//!   delivered message is sent, queued or counted as dropped (none vanish);
//! * bounds and bookkeeping: awaiting-PUBREL ids (`max_awaiting_rel`, `await_rel_timeout`),
//!   subscriptions (`max_subscriptions`), queue (`max_mqueue` unless publishers were held),
//!   the missed/dropped/expired counters, online/persistent/expired, the will;
//! * time: `next_deadline` is exactly the earliest of keepalive, retry, QoS 2 expiry and
//!   session expiry, and a tick does nothing before it.
//!
//! Must never: read the clock after setup (time is a base `Instant` plus the ops' advances).

#![allow(dead_code)]

use std::collections::HashMap;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use shardmq::codec::{
    self, Auth, ConnAck, Connect, Disconnect, LastWill, Packet, Properties, ProtocolVersion,
    PubResp, Publish, QoS, Str, SubAck, SubOptions, Subscribe, UnsubAck, Unsubscribe,
};
use shardmq::metrics::Metrics;
use shardmq::session::{
    Action, CloseReason, InflightState, Message, Session, SessionConfig, Violation,
};
use shardmq::topic::{parse_shared, valid_topic_filter, valid_topic_name};

/// The client id of the session under test.
pub const CLIENT: &str = "c1";
/// Topic names a structured PUBLISH may use: the first [`VALID_TOPICS`] valid, the others
/// not.
pub const TOPICS: &[&str] = &["a", "a/b", "/", "$SYS/x", "", "a/+", "#", "a\0b"];
pub const VALID_TOPICS: usize = 4;
/// Topic filters a structured SUBSCRIBE/UNSUBSCRIBE may use (valid, shared and invalid).
pub const FILTERS: &[&str] = &[
    "a",
    "a/+",
    "#",
    "a/#",
    "+/+",
    "$share/g/a",
    "$queue/a",
    "$share/g/#",
    "$share",
    "a/#/b",
    "",
    "$share//a",
    "$share/g",
    "a+",
    "$share/g+/a",
    "$share/g\0/a",
    "$queue/",
    "a\0",
];
/// The topic of every delivered message; its payload is the delivery's sequence number.
const DELIVERED_TOPIC: &str = "t";

/// The CONNECT of a connection (client id [`CLIENT`]).
#[derive(Debug, Clone)]
pub struct ConnectSpec {
    pub protocol: ProtocolVersion,
    pub clean_start: bool,
    pub keep_alive: u16,
    /// 5.0 only.
    pub receive_maximum: Option<u16>,
    /// 5.0 only.
    pub session_expiry: Option<u32>,
    pub will: bool,
}

impl ConnectSpec {
    pub fn connect(&self) -> Connect {
        let mut properties = Properties::default();
        if self.protocol == ProtocolVersion::V5 {
            properties.receive_maximum = self.receive_maximum;
            properties.session_expiry_interval = self.session_expiry;
        }
        Connect {
            protocol: self.protocol,
            clean_start: self.clean_start,
            keep_alive: self.keep_alive,
            client_id: Str::from(CLIENT),
            will: self.will.then(|| LastWill {
                topic: Str::from("will/c1"),
                payload: Bytes::from_static(b"bye"),
                ..Default::default()
            }),
            properties: properties.into(),
            ..Default::default()
        }
    }
}

/// The session's configuration and first CONNECT.
#[derive(Debug, Clone)]
pub struct Setup {
    pub cfg: SessionConfig,
    pub connect: ConnectSpec,
}

/// The packet id an acknowledgement from the client carries.
#[derive(Debug, Clone, Copy)]
pub enum Id {
    /// The id of the n-th (modulo its length) message in the model's window; `n + 1` when
    /// the window is empty. Lets acknowledgements hit the messages really in flight.
    Sent(u8),
    /// This id, whatever is in flight.
    Raw(u16),
}

/// A packet from the client, in terms the harness resolves against its state.
#[derive(Debug, Clone)]
pub enum In {
    Publish {
        qos: QoS,
        dup: bool,
        retain: bool,
        /// `None`: no packet id (a violation unless QoS 0).
        id: Option<Id>,
        /// Index into [`TOPICS`] (modulo).
        topic: usize,
    },
    PubAck(Id),
    /// With a 5.0 reason code (>= 0x80 refuses the message).
    PubRec(Id, u8),
    PubRel(Id),
    PubComp(Id),
    /// Packet id and (index into [`FILTERS`], requested QoS, No Local).
    Subscribe(u16, Vec<(usize, QoS, bool)>),
    Unsubscribe(u16, Vec<usize>),
    PingReq,
    /// 5.0 reason code and Session Expiry Interval.
    Disconnect(u8, Option<u32>),
    /// A second CONNECT.
    Connect,
    /// A packet only a server sends: 0 CONNACK, 1 SUBACK, 2 UNSUBACK, 3 PINGRESP.
    ServerOnly(u8),
    Auth,
}

/// One step of a run.
#[derive(Debug, Clone)]
pub enum Op {
    /// A packet from the client (`Session::handle`).
    Packet(In),
    /// Bytes from the client, decoded with the codec at the session's protocol; every packet
    /// that decodes is handled, up to the first error.
    Raw(Vec<u8>),
    /// A management-API (un)subscription of one filter (`Session::handle_api`).
    Api {
        subscribe: bool,
        filter: usize,
        qos: QoS,
    },
    /// A message routed to the client through a subscription.
    Deliver {
        qos: QoS,
        sub_qos: QoS,
        no_local: bool,
        retain: bool,
        /// Published by this client itself (for No Local).
        own: bool,
    },
    /// The clock moves on.
    Advance(Duration),
    /// `Session::tick` now.
    Tick,
    /// The socket is gone.
    ConnectionLost,
    /// A new CONNECT for this client id (takeover, resume or a fresh session).
    Reconnect(ConnectSpec),
    /// Flow control holds (or releases) this client's publishers.
    Hold(bool),
    /// Up to this many QoS 1 deliveries, each acknowledged at once, while the window has
    /// room and nothing is queued: moves the packet id counter on (to wrap it past 65535).
    Cycle(u16),
}

/// One message in the model's window.
#[derive(Debug, Clone)]
struct Entry {
    id: u16,
    state: InflightState,
    seq: u64,
    qos: QoS,
    retain: bool,
    sent_at: Instant,
    /// Waiting to be re-sent on this connection (resumed with more in flight than the
    /// client's Receive Maximum allows outstanding).
    pending: bool,
}

/// The counters the session keeps in `Metrics` that the model predicts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Counters {
    received: [u64; 4],
    qos2_dropped: u64,
    qos2_expired: u64,
    missed: [u64; 4],
}

impl Counters {
    fn of(m: &Metrics) -> Counters {
        Counters {
            received: [
                m.messages_received,
                m.messages_qos0_received,
                m.messages_qos1_received,
                m.messages_qos2_received,
            ],
            qos2_dropped: m.messages_qos2_dropped,
            qos2_expired: m.messages_qos2_expired,
            missed: [
                m.packets_puback_missed,
                m.packets_pubrec_missed,
                m.packets_pubrel_missed,
                m.packets_pubcomp_missed,
            ],
        }
    }
}

const PUBACK: usize = 0;
const PUBREC: usize = 1;
const PUBREL: usize = 2;
const PUBCOMP: usize = 3;

/// What the model knows about the session.
#[derive(Debug, Clone)]
struct Model {
    protocol: ProtocolVersion,
    online: bool,
    offline_since: Option<Instant>,
    persistent: bool,
    expiry: Duration,
    /// 5.0: the CONNECT's Session Expiry Interval was 0 (a DISCONNECT may not raise it).
    connect_expiry_zero: bool,
    will: Option<LastWill>,
    keepalive: Option<Duration>,
    last_rx: Instant,
    max_inflight: usize,
    window: Vec<Entry>,
    awaiting: Vec<(u16, Instant)>,
    subs: HashMap<String, SubOptions>,
    /// Deliveries not skipped by No Local.
    delivered: u64,
    /// First transmissions of delivered messages.
    first_sent: u64,
    held_ever: bool,
}

impl Model {
    fn new(c: &Connect, cfg: &SessionConfig, now: Instant) -> Model {
        let mut m = Model {
            protocol: c.protocol,
            online: true,
            offline_since: None,
            persistent: false,
            expiry: Duration::ZERO,
            connect_expiry_zero: true,
            will: None,
            keepalive: None,
            last_rx: now,
            max_inflight: 0,
            window: Vec::new(),
            awaiting: Vec::new(),
            subs: HashMap::new(),
            delivered: 0,
            first_sent: 0,
            held_ever: false,
        };
        m.take_connect(c, cfg, now);
        m
    }

    /// What a CONNECT sets (MQTT-3.1.2-24 keepalive, 5.0 Receive Maximum and Session Expiry
    /// Interval bounded by the config; 3.x: persistent unless clean session).
    fn take_connect(&mut self, c: &Connect, cfg: &SessionConfig, now: Instant) {
        self.protocol = c.protocol;
        self.online = true;
        self.offline_since = None;
        self.will = c.will.clone();
        self.keepalive = (c.keep_alive > 0).then(|| {
            Duration::from_secs_f64(
                f64::from(c.keep_alive) * f64::from(cfg.keepalive_multiplier.max(1.0)),
            )
        });
        self.last_rx = now;
        let window = if cfg.max_inflight == 0 {
            u16::MAX
        } else {
            cfg.max_inflight
        };
        let receive_max = match c.protocol {
            ProtocolVersion::V5 => c
                .properties
                .receive_maximum
                .filter(|&r| r > 0)
                .unwrap_or(u16::MAX),
            _ => u16::MAX,
        };
        self.max_inflight = usize::from(window.min(receive_max));
        if c.protocol == ProtocolVersion::V5 {
            let secs = c.properties.session_expiry_interval.unwrap_or(0);
            self.connect_expiry_zero = secs == 0;
            self.set_v5_expiry(secs, cfg);
        } else {
            self.expiry = if c.clean_start {
                Duration::ZERO
            } else {
                cfg.session_expiry
            };
            self.persistent = !c.clean_start;
        }
    }

    fn set_v5_expiry(&mut self, secs: u32, cfg: &SessionConfig) {
        self.expiry = Duration::from_secs(u64::from(secs)).min(cfg.session_expiry);
        self.persistent = !self.expiry.is_zero();
    }

    fn v5(&self) -> bool {
        self.protocol == ProtocolVersion::V5
    }

    fn expired(&self, now: Instant) -> bool {
        self.offline_since
            .is_some_and(|t| now.saturating_duration_since(t) >= self.expiry)
    }

    fn retry(&self, cfg: &SessionConfig) -> Option<Duration> {
        (!cfg.retry_interval.is_zero() && !self.v5()).then_some(cfg.retry_interval)
    }

    /// The earliest moment something is due.
    fn deadline(&self, cfg: &SessionConfig) -> Option<Instant> {
        let mut all = Vec::new();
        if self.online {
            all.push(self.keepalive.map(|k| self.last_rx + k));
            if let Some(retry) = self.retry(cfg) {
                let oldest = self.window.iter().map(|e| e.sent_at).min();
                all.push(oldest.and_then(|t| t.checked_add(retry)));
            }
        } else if self.persistent {
            all.push(self.offline_since.and_then(|t| t.checked_add(self.expiry)));
        }
        if !cfg.await_rel_timeout.is_zero() {
            let oldest = self.awaiting.first().map(|(_, t)| *t);
            all.push(oldest.and_then(|t| t.checked_add(cfg.await_rel_timeout)));
        }
        all.into_iter().flatten().min()
    }

    fn entry(&self, id: u16) -> Option<usize> {
        self.window.iter().position(|e| e.id == id)
    }

    /// Entries sent on this connection and not acknowledged.
    fn outstanding(&self) -> usize {
        self.window.iter().filter(|e| !e.pending).count()
    }

    /// A 3.x-safe acknowledgement: the reason code only for 5.0.
    fn resp(&self, id: u16, reason_v5: u8) -> PubResp {
        let mut r = PubResp::new(id);
        if self.v5() {
            r.reason = reason_v5;
        }
        r
    }
}

/// An action the model expects.
#[derive(Debug)]
enum Want {
    /// Exactly this action.
    Exactly(Action),
    /// `Route` of the message this PUBLISH carries.
    Route(Publish),
}

/// How a filter is subscribed to (`None`: invalid), by the topic module's rules.
fn filter_kind(filter: &str) -> Option<bool> {
    match parse_shared(filter) {
        Ok(Some(_)) => Some(true),
        Ok(None) => valid_topic_filter(filter).then_some(false),
        Err(_) => None,
    }
}

fn seq_payload(seq: u64) -> Bytes {
    Bytes::copy_from_slice(&seq.to_be_bytes())
}

/// How much of the state machine a run exercised, so that a test can tell a vacuous run.
#[derive(Debug, Clone, Copy, Default)]
pub struct Stats {
    /// Deliveries sent for the first time.
    pub first_sends: u64,
    /// Window entries re-sent (resume, retry, refill after a resume).
    pub resends: u64,
    /// Window entries freed by the client's acknowledgements.
    pub freed: u64,
    /// Resumed sessions, and of those, resumed into a window smaller than in flight.
    pub resumes: u64,
    pub smaller_resumes: u64,
    /// Connections closed by the session.
    pub closes: u64,
    /// Incoming QoS 2 messages routed.
    pub qos2_routed: u64,
}

/// Drives a session and its model; see the module documentation.
pub struct Harness {
    session: Session,
    metrics: Metrics,
    cfg: SessionConfig,
    /// The start of the run; `now` only grows from there.
    t0: Instant,
    now: Instant,
    model: Model,
    counters: Counters,
    /// Sequence number of the next delivery (payload of the delivered message).
    next_seq: u64,
    /// The last delivery sent for the first time (all sessions: deliveries only grow).
    last_first_seq: Option<u64>,
    /// Effective QoS and retain flag of every delivery, by sequence number.
    deliveries: HashMap<u64, (QoS, bool)>,
    /// What ran so far, for failure messages.
    log: Vec<String>,
    stats: Stats,
}

macro_rules! ensure {
    ($h:expr, $cond:expr, $($arg:tt)+) => {
        if !$cond {
            $h.fail(format!($($arg)+))
        }
    };
}

impl Harness {
    pub fn new(setup: &Setup) -> Harness {
        let now = Instant::now();
        let c = setup.connect.connect();
        let h = Harness {
            session: Session::new(&c, setup.cfg.clone(), now),
            metrics: Metrics::default(),
            cfg: setup.cfg.clone(),
            t0: now,
            now,
            model: Model::new(&c, &setup.cfg, now),
            counters: Counters::default(),
            next_seq: 0,
            last_first_seq: None,
            deliveries: HashMap::new(),
            log: vec![format!("{setup:?}")],
            stats: Stats::default(),
        };
        h.check_state();
        h
    }

    /// Runs a whole script.
    pub fn run(setup: &Setup, ops: &[Op]) -> Stats {
        let mut h = Harness::new(setup);
        for op in ops {
            h.step(op);
        }
        h.stats
    }

    #[track_caller]
    fn fail(&self, what: String) -> ! {
        let mut msg = String::new();
        let from = self.log.len().saturating_sub(12);
        for (i, line) in self.log.iter().enumerate().skip(from) {
            let _ = writeln!(msg, "  #{i}: {line}");
        }
        panic!("session invariant broken: {what}\nlast steps:\n{msg}");
    }

    /// Runs one op and checks the session against the model.
    pub fn step(&mut self, op: &Op) {
        self.log.push(format!("{op:?}"));
        match op {
            Op::Packet(p) => {
                let p = self.resolve(p);
                self.handle(p, false);
            }
            Op::Raw(bytes) => {
                let mut buf = BytesMut::from(&bytes[..]);
                let mut n = 0;
                while let Ok(Some(p)) = codec::decode(&mut buf, self.model.protocol, usize::MAX) {
                    self.log.push(format!("  decoded {p:?}"));
                    self.handle(p, false);
                    n += 1;
                    if n == 16 {
                        break;
                    }
                }
            }
            Op::Api {
                subscribe,
                filter,
                qos,
            } => {
                let f = Str::from(FILTERS[filter % FILTERS.len()]);
                let p = if *subscribe {
                    let opts = SubOptions {
                        qos: *qos,
                        ..Default::default()
                    };
                    Packet::Subscribe(Subscribe {
                        packet_id: 1,
                        filters: vec![(f, opts)],
                        ..Default::default()
                    })
                } else {
                    Packet::Unsubscribe(Unsubscribe {
                        packet_id: 1,
                        filters: vec![f],
                        ..Default::default()
                    })
                };
                self.handle(p, true);
            }
            Op::Deliver {
                qos,
                sub_qos,
                no_local,
                retain,
                own,
            } => self.deliver(*qos, *sub_qos, *no_local, *retain, *own),
            Op::Advance(d) => self.now += *d,
            Op::Tick => self.tick(),
            Op::ConnectionLost => {
                self.session.connection_lost(self.now);
                self.went_offline();
                self.take_will();
            }
            Op::Reconnect(spec) => self.reconnect(spec),
            Op::Hold(held) => {
                self.session.hold_publishers(*held);
                self.model.held_ever |= *held;
            }
            Op::Cycle(n) => {
                for _ in 0..*n {
                    let m = &self.model;
                    if !m.online || m.window.len() >= m.max_inflight || self.session.queued() > 0 {
                        break;
                    }
                    let before = m.window.len();
                    let q = QoS::AtLeastOnce;
                    self.deliver(q, q, false, false, false);
                    let Some(e) = self.model.window.get(before) else {
                        self.fail("a QoS 1 delivery into a free window was not sent".into())
                    };
                    let ack = Packet::PubAck(PubResp::new(e.id));
                    self.handle(ack, false);
                }
            }
        }
        self.check_state();
    }

    fn resolve_id(&self, id: Id) -> u16 {
        match id {
            Id::Raw(id) => id,
            Id::Sent(n) => {
                let w = &self.model.window;
                if w.is_empty() {
                    u16::from(n) + 1
                } else {
                    w[usize::from(n) % w.len()].id
                }
            }
        }
    }

    /// The codec packet an [`In`] stands for now.
    fn resolve(&self, p: &In) -> Packet {
        let filter = |i: &usize| Str::from(FILTERS[i % FILTERS.len()]);
        match p {
            In::Publish {
                qos,
                dup,
                retain,
                id,
                topic,
            } => Packet::Publish(Publish {
                dup: *dup,
                qos: *qos,
                retain: *retain,
                topic: Str::from(TOPICS[topic % TOPICS.len()]),
                packet_id: id.map(|id| self.resolve_id(id)),
                payload: Bytes::from_static(b"in"),
                ..Default::default()
            }),
            In::PubAck(id) => Packet::PubAck(PubResp::new(self.resolve_id(*id))),
            In::PubRec(id, reason) => Packet::PubRec(PubResp {
                reason: if self.model.v5() { *reason } else { 0 },
                ..PubResp::new(self.resolve_id(*id))
            }),
            In::PubRel(id) => Packet::PubRel(PubResp::new(self.resolve_id(*id))),
            In::PubComp(id) => Packet::PubComp(PubResp::new(self.resolve_id(*id))),
            In::Subscribe(packet_id, filters) => Packet::Subscribe(Subscribe {
                packet_id: *packet_id,
                filters: filters
                    .iter()
                    .map(|(f, qos, no_local)| {
                        let opts = SubOptions {
                            qos: *qos,
                            no_local: *no_local && self.model.v5(),
                            ..Default::default()
                        };
                        (filter(f), opts)
                    })
                    .collect(),
                ..Default::default()
            }),
            In::Unsubscribe(packet_id, filters) => Packet::Unsubscribe(Unsubscribe {
                packet_id: *packet_id,
                filters: filters.iter().map(filter).collect(),
                ..Default::default()
            }),
            In::PingReq => Packet::PingReq,
            In::Disconnect(reason, expiry) => {
                let mut d = Disconnect::default();
                if self.model.v5() {
                    d.reason = *reason;
                    d.properties.session_expiry_interval = *expiry;
                }
                Packet::Disconnect(d)
            }
            In::Connect => Packet::Connect(Box::new(Connect {
                protocol: self.model.protocol,
                client_id: Str::from(CLIENT),
                ..Default::default()
            })),
            In::ServerOnly(which) => match which % 4 {
                0 => Packet::ConnAck(ConnAck::default()),
                1 => Packet::SubAck(SubAck::default()),
                2 => Packet::UnsubAck(UnsubAck::default()),
                _ => Packet::PingResp,
            },
            In::Auth => Packet::Auth(Auth::default()),
        }
    }

    // ------------------------------------------------------------------ client packets

    /// A packet from the client (or, `api`, a management-API call).
    fn handle(&mut self, p: Packet, api: bool) {
        let applies = if api {
            matches!(p, Packet::Subscribe(_) | Packet::Unsubscribe(_))
        } else {
            self.model.online
        };
        let mut out = Vec::new();
        if !applies {
            self.call_handle(p, api, &mut out);
            ensure!(self, out.is_empty(), "ignored packet answered: {out:?}");
            return;
        }
        if !api {
            self.model.last_rx = self.now;
        }
        let (want, refill) = self.expect(&p);
        self.call_handle(p, api, &mut out);
        ensure!(
            self,
            out.len() >= want.len(),
            "answer {out:?}, expected {want:?}"
        );
        for (got, want) in out.iter().zip(&want) {
            self.matches(got, want);
        }
        let extra = &out[want.len()..];
        ensure!(
            self,
            refill || extra.is_empty(),
            "unexpected actions {extra:?} after {want:?}"
        );
        for a in extra {
            self.refill(a);
        }
        self.after_close(&out);
    }

    /// An action that follows a freed window entry: the re-send of the oldest entry still
    /// to re-send on this connection, else the first send of a queued message.
    fn refill(&mut self, a: &Action) {
        let now = self.now;
        let m = &mut self.model;
        let outstanding = m.outstanding();
        let max = m.max_inflight;
        if let Some(e) = m.window.iter_mut().find(|e| e.pending) {
            let want = Harness::resend(e, now);
            e.pending = false;
            self.stats.resends += 1;
            ensure!(
                self,
                *a == want,
                "refill {a:?}, expected the re-send {want:?}"
            );
            ensure!(
                self,
                outstanding < max,
                "re-sent with {outstanding} outstanding of {max}"
            );
            return;
        }
        match a {
            Action::Send(Packet::Publish(p)) => self.first_send(p, None),
            a => self.fail(format!("not a window refill: {a:?}")),
        }
    }

    fn call_handle(&mut self, p: Packet, api: bool, out: &mut Vec<Action>) {
        if api {
            self.session.handle_api(p, self.now, &mut self.metrics, out);
        } else {
            self.session.handle(p, self.now, &mut self.metrics, out);
        }
    }

    fn matches(&self, got: &Action, want: &Want) {
        match (got, want) {
            (got, Want::Exactly(want)) => {
                ensure!(self, got == want, "got {got:?}, expected {want:?}")
            }
            (Action::Route(m), Want::Route(p)) => {
                ensure!(
                    self,
                    m.topic == p.topic
                        && m.payload == p.payload
                        && m.qos == p.qos
                        && m.retain == p.retain
                        && m.publisher.as_str() == CLIENT,
                    "routed {m:?} for {p:?}"
                );
                // Connection-scoped properties never travel with the message.
                if let Some(props) = &m.properties {
                    ensure!(
                        self,
                        props.topic_alias.is_none() && props.subscription_identifiers.is_empty(),
                        "routed connection-scoped properties"
                    );
                }
            }
            (got, want) => self.fail(format!("got {got:?}, expected {want:?}")),
        }
    }

    /// The session's answer to `p` by the spec, updating the model; and whether window
    /// refills (first sends of queued messages) may follow it.
    fn expect(&mut self, p: &Packet) -> (Vec<Want>, bool) {
        use Want::Exactly;
        let cfg = self.cfg.clone();
        let v5 = self.model.v5();
        let close = |h: &mut Harness, v: Violation| {
            h.went_offline();
            (
                vec![Exactly(Action::Close(CloseReason::ProtocolError(v)))],
                false,
            )
        };
        match p {
            Packet::Connect(_) => close(self, Violation::SecondConnect),
            Packet::Publish(p) => {
                if !valid_topic_name(&p.topic) {
                    return close(self, Violation::PublishTopicInvalid);
                }
                if p.dup && p.qos == QoS::AtMostOnce {
                    return close(self, Violation::PublishDupOnQos0);
                }
                if p.qos > cfg.max_qos_allowed {
                    return close(self, Violation::PublishQosNotAllowed);
                }
                let id = match (p.qos, p.packet_id) {
                    (QoS::AtMostOnce, _) => 0,
                    (_, Some(id)) if id != 0 => id,
                    _ => return close(self, Violation::PublishPacketIdMissing),
                };
                self.counters.received[0] += 1;
                self.counters.received[1 + p.qos as usize] += 1;
                let route = Want::Route(p.clone());
                let want = match p.qos {
                    QoS::AtMostOnce => vec![route],
                    QoS::AtLeastOnce => {
                        vec![route, Exactly(send(Packet::PubAck(PubResp::new(id))))]
                    }
                    QoS::ExactlyOnce => {
                        let m = &mut self.model;
                        if m.awaiting.iter().any(|(a, _)| *a == id) {
                            // A re-sent PUBLISH: acknowledged again, routed once only.
                            vec![Exactly(send(Packet::PubRec(PubResp::new(id))))]
                        } else if cfg.max_awaiting_rel > 0
                            && m.awaiting.len() >= cfg.max_awaiting_rel
                        {
                            self.counters.qos2_dropped += 1;
                            // 5.0: past the announced Receive Maximum is DISCONNECT 0x93
                            // [MQTT-3.3.4-7]; 3.x: dropped, still answered.
                            if m.v5() {
                                return close(self, Violation::ReceiveMaximumExceeded);
                            }
                            vec![Exactly(send(Packet::PubRec(m.resp(id, 0x93))))]
                        } else {
                            m.awaiting.push((id, self.now));
                            self.stats.qos2_routed += 1;
                            vec![route, Exactly(send(Packet::PubRec(PubResp::new(id))))]
                        }
                    }
                };
                (want, false)
            }
            Packet::PubAck(r) => {
                let m = &mut self.model;
                match m.entry(r.packet_id) {
                    Some(i) if m.window[i].state == InflightState::WaitAck => {
                        m.window.remove(i);
                        self.stats.freed += 1;
                        (Vec::new(), true)
                    }
                    _ => {
                        self.counters.missed[PUBACK] += 1;
                        (Vec::new(), false)
                    }
                }
            }
            Packet::PubRec(r) => {
                let now = self.now;
                let m = &mut self.model;
                match m.entry(r.packet_id) {
                    Some(i)
                        if m.window[i].state == InflightState::WaitRec
                            && v5
                            && r.reason >= 0x80 =>
                    {
                        // 5.0: the client refused the message; its flow ends [MQTT-4.3.3-4].
                        m.window.remove(i);
                        self.stats.freed += 1;
                        (Vec::new(), true)
                    }
                    Some(i) if m.window[i].state != InflightState::WaitAck => {
                        m.window[i].state = InflightState::WaitComp;
                        m.window[i].sent_at = now;
                        let rel = send(Packet::PubRel(PubResp::new(r.packet_id)));
                        (vec![Exactly(rel)], false)
                    }
                    _ => {
                        self.counters.missed[PUBREC] += 1;
                        (Vec::new(), false)
                    }
                }
            }
            Packet::PubRel(r) => {
                let m = &mut self.model;
                let comp = match m.awaiting.iter().position(|(a, _)| *a == r.packet_id) {
                    Some(i) => {
                        m.awaiting.remove(i);
                        PubResp::new(r.packet_id)
                    }
                    None => {
                        self.counters.missed[PUBREL] += 1;
                        m.resp(r.packet_id, 0x92)
                    }
                };
                (vec![Exactly(send(Packet::PubComp(comp)))], false)
            }
            Packet::PubComp(r) => {
                let m = &mut self.model;
                match m.entry(r.packet_id) {
                    Some(i) if m.window[i].state == InflightState::WaitComp => {
                        m.window.remove(i);
                        self.stats.freed += 1;
                        (Vec::new(), true)
                    }
                    _ => {
                        self.counters.missed[PUBCOMP] += 1;
                        (Vec::new(), false)
                    }
                }
            }
            Packet::Subscribe(s) => {
                if s.filters.is_empty() {
                    return close(self, Violation::SubscribeEmpty);
                }
                let shared_no_local = s
                    .filters
                    .iter()
                    .any(|(f, o)| o.no_local && filter_kind(f) == Some(true));
                if v5 && shared_no_local {
                    return close(self, Violation::SharedSubscriptionNoLocal);
                }
                let m = &mut self.model;
                let mut results = Vec::new();
                for (f, requested) in &s.filters {
                    let max = cfg.max_subscriptions;
                    let result = if filter_kind(f).is_none() {
                        Err(if v5 { 0x8F } else { 0x80 })
                    } else if max > 0 && m.subs.len() >= max && !m.subs.contains_key(f.as_str()) {
                        Err(if v5 { 0x97 } else { 0x80 })
                    } else {
                        let granted = SubOptions {
                            qos: requested.qos.min(cfg.max_qos_allowed),
                            ..*requested
                        };
                        m.subs.insert(f.to_string(), granted);
                        Ok(granted)
                    };
                    results.push((f.clone(), result));
                }
                let want = Action::Subscribe {
                    packet_id: s.packet_id,
                    filters: results,
                };
                (vec![Exactly(want)], false)
            }
            Packet::Unsubscribe(u) => {
                if u.filters.is_empty() {
                    return close(self, Violation::UnsubscribeEmpty);
                }
                let m = &mut self.model;
                let filters = u
                    .filters
                    .iter()
                    .map(|f| (f.clone(), m.subs.remove(f.as_str()).is_some()))
                    .collect();
                let want = Action::Unsubscribe {
                    packet_id: u.packet_id,
                    filters,
                };
                (vec![Exactly(want)], false)
            }
            Packet::PingReq => (vec![Exactly(send(Packet::PingResp))], false),
            Packet::Disconnect(d) => {
                if v5 {
                    if let Some(secs) = d.properties.session_expiry_interval {
                        // [MQTT-3.14.2-2]: 0 at CONNECT cannot become non-zero.
                        if secs != 0 && self.model.connect_expiry_zero {
                            return close(self, Violation::SessionExpiryAtDisconnect);
                        }
                        self.model.set_v5_expiry(secs, &cfg);
                    }
                }
                let reason = if v5 && d.reason == 0x04 {
                    CloseReason::DisconnectWithWill
                } else {
                    // [MQTT-3.14.4-3]: the will is discarded.
                    self.model.will = None;
                    CloseReason::Disconnect
                };
                self.went_offline();
                (vec![Exactly(Action::Close(reason))], false)
            }
            Packet::Auth(_) => close(self, Violation::AuthNotSupported),
            Packet::ConnAck(_) | Packet::SubAck(_) | Packet::UnsubAck(_) | Packet::PingResp => {
                close(self, Violation::ServerToClientPacket)
            }
        }
    }

    // ------------------------------------------------------------------ the broker side

    fn deliver(&mut self, qos: QoS, sub_qos: QoS, no_local: bool, retain: bool, own: bool) {
        let seq = self.next_seq;
        let msg = Message {
            topic: Str::from(DELIVERED_TOPIC),
            payload: seq_payload(seq),
            qos,
            retain,
            properties: None,
            publisher: Str::from(if own { CLIENT } else { "other" }),
            expires_at: None,
            seq: 0,
        };
        let sub = SubOptions {
            qos: sub_qos,
            no_local,
            ..Default::default()
        };
        // 5.0 No Local [MQTT-3.8.3-3]: never back to the publisher.
        let skipped = no_local && own;
        let effective = if self.cfg.upgrade_qos {
            qos.max(sub_qos)
        } else {
            qos.min(sub_qos)
        };
        let m = &self.model;
        let room = effective == QoS::AtMostOnce || m.window.len() < m.max_inflight;
        let now = !skipped && m.online && self.session.queued() == 0 && room;
        if !skipped {
            self.next_seq += 1;
            // RETAIN survives only where the subscription asked Retain As Published.
            self.deliveries
                .insert(seq, (effective, retain && sub.retain_as_published));
            self.model.delivered += 1;
        }
        let mut out = Vec::new();
        self.session
            .deliver(&msg, sub, self.now, &mut self.metrics, &mut out);
        ensure!(
            self,
            out.len() == usize::from(now),
            "delivery (sent at once: {now}) gave {out:?}"
        );
        for a in out {
            ensure!(
                self,
                matches!(a, Action::SendDelivered { .. }),
                "deliver gave {a:?}"
            );
            match a.with_message(&msg) {
                Action::Send(Packet::Publish(p)) => self.first_send(&p, Some(seq)),
                a => self.fail(format!("deliver gave {a:?}")),
            }
        }
    }

    /// A PUBLISH of a delivered message sent for the first time (`this`: the delivery of
    /// the current `deliver` call).
    fn first_send(&mut self, p: &Publish, this: Option<u64>) {
        ensure!(self, self.model.online, "sent while offline: {p:?}");
        ensure!(self, !p.dup, "first send with DUP: {p:?}");
        ensure!(
            self,
            (p.qos == QoS::AtMostOnce) == p.packet_id.is_none(),
            "packet id and QoS disagree: {p:?}"
        );
        ensure!(self, p.topic.as_str() == DELIVERED_TOPIC, "sent {p:?}");
        let Ok(bytes) = <[u8; 8]>::try_from(&p.payload[..]) else {
            self.fail(format!("sent a message never delivered: {p:?}"))
        };
        let seq = u64::from_be_bytes(bytes);
        if let Some(this) = this {
            ensure!(self, seq == this, "deliver sent {seq}, not {this}");
        }
        ensure!(
            self,
            self.last_first_seq.is_none_or(|last| seq > last),
            "delivery {seq} sent after {:?}: out of order or twice",
            self.last_first_seq
        );
        self.last_first_seq = Some(seq);
        let Some(&(qos, retain)) = self.deliveries.get(&seq) else {
            self.fail(format!("sent delivery {seq} that was skipped"))
        };
        ensure!(
            self,
            p.qos == qos && p.retain == retain,
            "delivery {seq} sent as {p:?}, expected QoS {qos:?} retain {retain}"
        );
        self.model.first_sent += 1;
        self.stats.first_sends += 1;
        let Some(id) = p.packet_id else { return };
        let m = &self.model;
        ensure!(self, id != 0, "packet id 0");
        ensure!(
            self,
            m.entry(id).is_none(),
            "packet id {id} is already in flight"
        );
        ensure!(
            self,
            m.window.len() < m.max_inflight,
            "sent past a full window of {}",
            m.max_inflight
        );
        let state = if qos == QoS::AtLeastOnce {
            InflightState::WaitAck
        } else {
            InflightState::WaitRec
        };
        self.model.window.push(Entry {
            id,
            state,
            seq,
            qos,
            retain,
            sent_at: self.now,
            pending: false,
        });
    }

    /// The re-send of a window entry (DUP PUBLISH, or PUBREL once PUBREC'd); marks it sent.
    fn resend(e: &mut Entry, now: Instant) -> Action {
        e.sent_at = now;
        match e.state {
            InflightState::WaitAck | InflightState::WaitRec => send(Packet::Publish(Publish {
                dup: true,
                qos: e.qos,
                retain: e.retain,
                topic: Str::from(DELIVERED_TOPIC),
                packet_id: Some(e.id),
                payload: seq_payload(e.seq),
                ..Default::default()
            })),
            InflightState::WaitComp => send(Packet::PubRel(PubResp::new(e.id))),
        }
    }

    fn tick(&mut self) {
        let now = self.now;
        let deadline = self.session.next_deadline();
        let cfg = self.cfg.clone();
        let mut want = Vec::new();
        let m = &mut self.model;
        if m.online && m.keepalive.is_some_and(|k| now >= m.last_rx + k) {
            want.push(Action::Close(CloseReason::KeepaliveTimeout));
        }
        let mut expired = 0;
        if !cfg.await_rel_timeout.is_zero() {
            expired = m
                .awaiting
                .iter()
                .take_while(|(_, at)| now.saturating_duration_since(*at) >= cfg.await_rel_timeout)
                .count();
            m.awaiting.drain(..expired);
        }
        if want.is_empty() {
            if let Some(retry) = m.retry(&cfg) {
                if m.online {
                    for e in &mut m.window {
                        if !e.pending && now.saturating_duration_since(e.sent_at) >= retry {
                            want.push(Harness::resend(e, now));
                            self.stats.resends += 1;
                        }
                    }
                }
            }
        }
        self.counters.qos2_expired += expired as u64;
        if !want.is_empty() && matches!(want[0], Action::Close(_)) {
            self.went_offline();
        }
        ensure!(
            self,
            deadline.is_some_and(|d| now >= d) || (want.is_empty() && expired == 0),
            "work due at {:?} before the deadline {:?}",
            self.since_start(now),
            deadline.map(|d| self.since_start(d))
        );
        let mut out = Vec::new();
        self.session.tick(now, &mut self.metrics, &mut out);
        ensure!(self, out == want, "tick gave {out:?}, expected {want:?}");
        self.after_close(&out);
    }

    // ------------------------------------------------------------------ connections

    fn went_offline(&mut self) {
        if self.model.online {
            self.model.online = false;
            self.model.offline_since = Some(self.now);
        }
    }

    /// What the glue does when a connection ended: take the will (publish or drop it).
    fn take_will(&mut self) {
        let will = self.session.take_will();
        let want = self.model.will.take();
        ensure!(self, will == want, "will {will:?}, expected {want:?}");
    }

    /// A `Close` must be the last action, and the session is offline after it.
    fn after_close(&mut self, out: &[Action]) {
        let Some(i) = out.iter().position(|a| matches!(a, Action::Close(_))) else {
            return;
        };
        ensure!(self, i == out.len() - 1, "actions after Close: {out:?}");
        ensure!(self, !self.session.is_online(), "online after Close");
        self.stats.closes += 1;
        self.take_will();
    }

    fn reconnect(&mut self, spec: &ConnectSpec) {
        let c = spec.connect();
        if self.model.online {
            // Takeover: the old connection ends first.
            self.session.connection_lost(self.now);
            self.went_offline();
            self.take_will();
        }
        let resumable = self.session.is_persistent() && !self.session.expired(self.now);
        if !resumable || c.clean_start {
            self.session = Session::new(&c, self.cfg.clone(), self.now);
            self.model = Model::new(&c, &self.cfg, self.now);
            return;
        }
        // Everything unacknowledged again, in send order [MQTT-4.4.0-1], but no more than
        // the new window allows outstanding [MQTT-3.3.4-9]; then refills.
        let now = self.now;
        self.model.take_connect(&c, &self.cfg, now);
        let max = self.model.max_inflight;
        let mut want = Vec::new();
        for e in self.model.window.iter_mut() {
            e.pending = want.len() >= max;
            if !e.pending {
                want.push(Harness::resend(e, now));
            }
        }
        self.stats.resumes += 1;
        self.stats.resends += want.len() as u64;
        self.stats.smaller_resumes += u64::from(want.len() < self.model.window.len());
        let mut out = Vec::new();
        self.session.resume(&c, now, &mut self.metrics, &mut out);
        ensure!(
            self,
            out.len() >= want.len() && out[..want.len()] == want[..],
            "resume gave {out:?}, expected first {want:?}"
        );
        for a in &out[want.len()..] {
            match a {
                Action::Send(Packet::Publish(p)) => self.first_send(p, None),
                a => self.fail(format!("resume gave {a:?}")),
            }
        }
    }

    // ------------------------------------------------------------------ state

    fn check_state(&self) {
        let s = &self.session;
        let m = &self.model;
        let cfg = &self.cfg;
        let info = s.info();
        ensure!(self, s.is_online() == m.online, "online: {}", s.is_online());
        ensure!(self, s.protocol() == m.protocol, "protocol");
        ensure!(
            self,
            s.is_persistent() == m.persistent,
            "persistent: {}",
            s.is_persistent()
        );
        ensure!(
            self,
            s.expired(self.now) == m.expired(self.now),
            "expired: {}",
            s.expired(self.now)
        );
        ensure!(
            self,
            info.max_inflight == m.max_inflight,
            "window {} expected {}",
            info.max_inflight,
            m.max_inflight
        );
        ensure!(
            self,
            info.inflight_len == m.window.len(),
            "{} in flight, expected {}",
            info.inflight_len,
            m.window.len()
        );
        for e in &m.window {
            let state = s.inflight_state(e.id);
            ensure!(
                self,
                state == Some(e.state),
                "id {} is {state:?}, expected {:?}",
                e.id,
                e.state
            );
        }
        let outstanding = m.outstanding();
        ensure!(
            self,
            outstanding <= m.max_inflight,
            "{outstanding} outstanding over a window of {}",
            m.max_inflight
        );
        ensure!(
            self,
            !m.online || outstanding == m.max_inflight || outstanding == m.window.len(),
            "{} waiting to be re-sent with {outstanding} of {} outstanding",
            m.window.len() - outstanding,
            m.max_inflight
        );
        ensure!(
            self,
            info.awaiting_rel_len == m.awaiting.len(),
            "{} awaiting PUBREL, expected {}",
            info.awaiting_rel_len,
            m.awaiting.len()
        );
        ensure!(
            self,
            cfg.max_awaiting_rel == 0 || m.awaiting.len() <= cfg.max_awaiting_rel,
            "awaiting PUBREL over the bound"
        );
        ensure!(
            self,
            info.subscriptions_count == m.subs.len(),
            "{} subscriptions, expected {}",
            info.subscriptions_count,
            m.subs.len()
        );
        for (f, o) in &m.subs {
            ensure!(self, s.subscription(f) == Some(o), "subscription {f:?}");
        }
        ensure!(
            self,
            cfg.max_subscriptions == 0 || m.subs.len() <= cfg.max_subscriptions,
            "subscriptions over the bound"
        );
        ensure!(
            self,
            cfg.max_mqueue == 0 || m.held_ever || info.mqueue_len <= cfg.max_mqueue,
            "{} queued over the bound {}",
            info.mqueue_len,
            cfg.max_mqueue
        );
        ensure!(
            self,
            !m.online || info.mqueue_len == 0 || m.window.len() >= m.max_inflight,
            "{} queued while the window has room ({} of {})",
            info.mqueue_len,
            m.window.len(),
            m.max_inflight
        );
        ensure!(
            self,
            info.deliver_msg == m.delivered,
            "deliver_msg {} expected {}",
            info.deliver_msg,
            m.delivered
        );
        ensure!(
            self,
            m.delivered == m.first_sent + info.mqueue_dropped + info.mqueue_len as u64,
            "messages vanished: {} delivered, {} sent, {} dropped, {} queued",
            m.delivered,
            m.first_sent,
            info.mqueue_dropped,
            info.mqueue_len
        );
        let deadline = s.next_deadline();
        let want = m.deadline(cfg);
        ensure!(
            self,
            deadline == want,
            "next deadline {:?}, expected {:?} (from the start)",
            deadline.map(|d| self.since_start(d)),
            want.map(|d| self.since_start(d))
        );
        let counters = Counters::of(&self.metrics);
        ensure!(
            self,
            counters == self.counters,
            "counters {counters:?}, expected {:?}",
            self.counters
        );
    }

    /// A time as an offset from the start of the run (for failure messages).
    fn since_start(&self, t: Instant) -> Duration {
        t.saturating_duration_since(self.t0)
    }
}

fn send(p: Packet) -> Action {
    Action::Send(p)
}
