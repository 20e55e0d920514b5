//! `Shard`: everything one core owns — the clients it serves and their sessions, the
//! directory of clients homed here and served elsewhere, its local subscription index, its
//! route replica, the retained messages whose topic hashes to it, and its counters — and the
//! logic that keeps them: connect/takeover (across shards through the home shard's
//! directory), routing a publish, applying route changes from peers, serving retained
//! queries and collects.
//!
//! Runs on exactly one executor thread; all state is `RefCell` on that thread.
//! Must never: hold a `RefCell` borrow across an `.await` or across a call that may
//! re-enter the shard (publishing delivers to other local clients); block; or await a peer
//! from the mesh inbox handler (`on_peer_msg` is synchronous).

use std::cell::{Cell, RefCell};

use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use crate::admin::acl::{Access, ClientRef};
use crate::admin::policy::{Policy, Verdict};
use crate::codec::{
    ConnAck, Connect, Packet, Props, ProtocolVersion, QoS, Str, SubOptions, UnsubAck,
};
use crate::config::Config;
use crate::home_shard;
use crate::metrics::{Metrics, Stats};
use crate::session::{Action, CloseReason, Message, Session};
use shardmq_http::throttle::Failure;
use shardmq_shards::mesh::Mesh;
use shardmq_shards::reply::{AwaitReplies, Replies};
use shardmq_shards::rt::spawn_local;
use shardmq_shards::runtime::ShutdownFlag;

use super::auth_throttle::MqttAuthThrottle;
use super::directory::Served;
use super::flow;
use super::handover::{Handovers, Landed, Mark};
use super::link::Link;
use super::msg::{Forward, ReplyData, ShardMsg};
use super::race::or_timeout;
use super::recent::{Recent, RoutedAt};
use super::route::{shards_in, RouteTable};

/// How long a shard waits for an answer another shard owes it (a confirmation of stored or
/// journaled messages, retained messages for a new subscription) before it goes on without:
/// only a shard that is shutting down fails to deliver one.
pub(super) const ROUTE_ACK_DEADLINE: Duration = Duration::from_secs(5);

/// A client this shard serves: its session, and its connection while online.
pub struct Client {
    pub session: Session,
    pub link: Option<Rc<Link>>,
    pub username: Option<Str>,
    pub peer: Option<SocketAddr>,
    /// When the client connected, in milliseconds since the Unix epoch (8 bytes, not a
    /// `SystemTime`'s 16).
    pub connected_at_ms: u64,
    pub keep_alive: u16,
    pub protocol: ProtocolVersion,
    /// The backlog episode in force while flow control counts this client as backlogged
    /// (see `flow`).
    pub backlog: Option<flow::FlowKey>,
    /// Flow control's view of the session's progress (stall detection).
    pub progress: flow::Progress,
    /// The journal holds records of this session (its end must be written too).
    pub journaled: bool,
}

impl super::clients::Keyed for Client {
    fn key(&self) -> &Str {
        self.session.client_id()
    }
}

impl Client {
    /// Whether flow control counts this client as backlogged (an episode is in force).
    pub fn backlogged(&self) -> bool {
        self.backlog.is_some()
    }
}

/// What an ended connection is taken to have freed (an idle one holds about this much).
const FREED_PER_CONNECTION: usize = 1536;
/// How long a CONNECT or a question waits at most for the hand-overs started before it
/// (each normally lands within microseconds).
const HANDOVER_WAIT: Duration = Duration::from_secs(1);

/// PUBACK / PUBREC reason codes (5.0) for a message the ACL refused and for one that no
/// subscription matched.
const RC_NOT_AUTHORIZED: u8 = 0x87;
const RC_NO_MATCHING_SUBSCRIBERS: u8 = 0x10;

/// Serves a connection handed over by another shard (see [`Shard::adopter`]).
pub type Adopter = fn(Rc<Shard>, super::msg::Adopt);

/// One core's broker state.
pub struct Shard {
    pub id: usize,
    /// The CPU this shard's thread is pinned to.
    pub core: usize,
    /// Abnormal connection ends by reason, for the listener view (`shutdown_count`).
    pub shutdowns: RefCell<std::collections::BTreeMap<&'static str, u64>>,
    /// Memory freed since the last tick (an estimate; see [`Shard::note_freed_memory`]).
    freed: Cell<usize>,
    pub shards: usize,
    pub cfg: Rc<Config>,
    pub node: String,
    pub mesh: Rc<Mesh<ShardMsg>>,
    pub replies: Rc<Replies<ReplyData>>,
    pub metrics: RefCell<Metrics>,
    pub clients: RefCell<super::clients::ClientTable<Client>>,
    /// The clients homed here that another shard serves (see `directory`).
    pub directory: RefCell<super::directory::Directory>,
    /// Clients whose session here a newer connection accepted elsewhere ends: taken from a
    /// `Claim`, ended by [`Shard::settle_displaced`] (not where the claim was read: that may
    /// be inside a delivery).
    displaced: RefCell<Vec<Str>>,
    /// Where subscribers are: this shard's own and, per filter, which shards have any.
    pub routes: RefCell<RouteTable>,
    /// Retained messages whose topic this shard owns, with when they were stored (for
    /// `retainer.expiry_interval`).
    pub retained: RefCell<crate::retained::RetainedStore>,
    /// The admin policy in force (bans, auth tables, plugins, runtime settings), replaced
    /// whole by `ShardMsg::Policy` from the management thread.
    pub policy: RefCell<Arc<Policy>>,
    pub shutdown: ShutdownFlag,
    pub started: Instant,
    next_link_id: Cell<u64>,
    rng: Cell<u64>,
    /// Scratch buffer reused by every local delivery (no per-publish allocation).
    pub(super) scratch: RefCell<Vec<(Str, SubOptions)>>,
    /// The backlog episodes one delivery fed (reused, no allocation per message).
    pub(super) backlog_scratch: std::cell::Cell<Vec<flow::FlowKey>>,
    /// The node's MQTT connection cap, shared with every shard (taken at accept).
    pub conn_slots: Arc<super::slots::ConnSlots>,
    /// Each listener's connection cap, by `ListenerKind as usize`.
    pub listener_slots: Vec<Arc<super::slots::ConnSlots>>,
    /// The TLS listeners' configurations in force (replaced when SIGHUP reloads them).
    pub tls: RefCell<crate::transport::TlsConfigs>,
    /// The node's failed-authentication table, shared with every shard (touched only for
    /// addresses that failed).
    pub auth_throttle: Arc<MqttAuthThrottle>,
    /// Flow control: backlogged sessions and throttled publishers.
    pub flow: super::flow::Flow,
    /// What serves a connection another shard handed over (`ShardMsg::Adopt`): set by the
    /// loop that starts the shard (the connection code), so that the shard's decisions do not
    /// depend on its sockets.
    pub adopter: Cell<Option<Adopter>>,
    /// This shard's share of `mqtt.input_budget` and who holds it.
    pub input_budget: RefCell<super::budget::InputBudget<std::rc::Weak<Link>>>,
    /// The warning for cuts over the input budget, at most once a second.
    pub input_budget_warned: RefCell<super::warned::Warned>,
    /// The warning for queues shed over the queue budget, at most once a second.
    queue_budget_warned: RefCell<super::warned::Warned>,
    /// Emptied action lists, reused by `on_packet` and deliveries.
    action_pool: RefCell<Vec<Vec<Action>>>,
    /// The time a connection task read at the start of its current batch of packets (see
    /// [`Shard::batch_clock`]); `None` outside a batch.
    batch_now: Cell<Option<Instant>>,
    /// Forwards made during the current batch, per destination shard, sent when it ends.
    pub(super) batched_forwards: RefCell<Vec<Vec<Forward>>>,
    /// Per shard: it keeps durable sessions (see [`NodeShared::durable`]).
    pub(super) durable_shards: Arc<Vec<std::sync::atomic::AtomicBool>>,
    /// This shard's journal (`persistence.enable`), opened before it serves.
    pub journal: std::cell::OnceCell<Rc<super::journal::Journal>>,
    /// Confirmations the current batch's forwards asked for (see `persist`).
    pub(super) batch_confirms: RefCell<Vec<AwaitReplies<ReplyData>>>,
    /// The rule engine's counters and web hook sender on this shard (see `hooks`).
    pub rule_engine: super::rule_state::RuleEngine,
    /// What this shard routed lately, for subscriptions whose SUBSCRIBE arrived first but
    /// was read later (`recent`).
    pub(super) recent: RefCell<Recent>,
    /// Live deliveries to clients whose new subscriptions' retained messages are on their
    /// way (`retained_overlap`).
    pub(super) retained_overlap: RefCell<super::retained_overlap::RetainedOverlap>,
    /// Per shard: when it last routed a message; this shard's own entry as last stored.
    routed_at: Arc<Vec<RoutedAt>>,
    routed_stored: Cell<u64>,
    /// When the kernel received the input being dispatched (0: unknown), set by the
    /// connection task before each batch.
    pub arrival: Cell<u64>,
    /// The wall-clock time (ns) of the open batch (0: not read yet; see [`Shard::wall_now`]).
    batch_wall: Cell<u64>,
    /// The node's hand-over counts (connections answered before they were handed over).
    pub handovers: Arc<Handovers>,
    /// The hand-overs taken over here, and who waits for more of them.
    landed: RefCell<Landed>,
    landed_waiters: RefCell<Vec<std::task::Waker>>,
}

/// A batch of packets a connection task handles without awaiting. While alive,
/// [`Shard::now`] answers the time read when it was made, and forwards to other shards are
/// collected; dropping it sends them (one `Forwards` per destination) and goes back to
/// reading the clock. Never held across an await, so the time is at most one batch old.
pub struct BatchClock<'a>(&'a Shard);

impl Drop for BatchClock<'_> {
    fn drop(&mut self) {
        self.0.batch_now.set(None);
        self.0.send_batched_forwards();
    }
}

/// Why a CONNECT was refused (the CONNACK code to answer: [`Refusal::code_v3`], and
/// `conn::refuse` for 5.0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    IdentifierRejected,
    ServerUnavailable,
    BadCredentials,
    NotAuthorized,
    /// A ban matches (3.x: 5 "not authorized"; 5.0: 0x8A "banned").
    Banned,
    /// 5.0: the CONNECT asks for an enhanced authentication method, none is served (0x8C).
    BadAuthenticationMethod,
    /// The client's address is in back-off after too many failed authentications
    /// (`mqtt.auth_fail_*`), whatever it sent: answered as a ban, as EMQ X answers the
    /// temporary ban of its flapping detection (3.x: 5; 5.0: 0x8A).
    Throttled,
}

impl Refusal {
    /// The CONNACK return code of MQTT 3.1 / 3.1.1.
    pub fn code_v3(self) -> u8 {
        match self {
            Refusal::IdentifierRejected => 2,
            Refusal::ServerUnavailable => 3,
            Refusal::BadCredentials => 4,
            Refusal::NotAuthorized
            | Refusal::Banned
            | Refusal::Throttled
            | Refusal::BadAuthenticationMethod => 5,
        }
    }
}

/// What the shards of a node share: the connection cap and the failed-authentication table
/// (atomics, and a lock taken only for addresses that failed).
#[derive(Debug, Clone)]
pub struct NodeShared {
    pub conn_slots: Arc<super::slots::ConnSlots>,
    /// Per listener kind (`ListenerKind as usize`): its connection cap (the TCP one is
    /// `conn_slots`).
    pub listener_slots: Vec<Arc<super::slots::ConnSlots>>,
    /// The TLS listeners' configurations as read at start.
    pub tls: crate::transport::TlsConfigs,
    pub auth_throttle: Arc<MqttAuthThrottle>,
    /// Per shard: it has journaled a durable session (set once, never cleared), so a QoS 1/2
    /// message forwarded to it is acknowledged only once it confirms (see `persist`).
    pub durable: Arc<Vec<std::sync::atomic::AtomicBool>>,
    /// Per shard: when it last routed a message (see `recent`).
    pub routed_at: Arc<Vec<RoutedAt>>,
    /// Connections answered before they were handed over (`handover`).
    pub handovers: Arc<Handovers>,
}

impl Shard {
    pub fn new(
        id: usize,
        core: usize,
        shards: usize,
        cfg: Rc<Config>,
        mesh: Rc<Mesh<ShardMsg>>,
        shutdown: ShutdownFlag,
        shared: NodeShared,
    ) -> Rc<Shard> {
        let policy = Arc::new(Policy::from_config(&cfg));
        // An equal share, but never less than one whole packet.
        let input_share = (cfg.mqtt.input_budget / shards.max(1) as u64)
            .max(u64::from(cfg.mqtt.max_packet_size)) as usize;
        Rc::new(Shard {
            id,
            core,
            shutdowns: RefCell::new(Default::default()),
            freed: Cell::new(0),
            shards,
            node: cfg.node.name.clone(),
            cfg,
            mesh,
            replies: Rc::new(Replies::default()),
            metrics: RefCell::new(Metrics::default()),
            clients: RefCell::new(Default::default()),
            directory: RefCell::new(Default::default()),
            displaced: RefCell::new(Vec::new()),
            routes: RefCell::new(RouteTable::new(id)),
            retained: RefCell::new(Default::default()),
            shutdown,
            started: Instant::now(),
            policy: RefCell::new(policy),
            next_link_id: Cell::new(1),
            batch_now: Cell::new(None),
            batched_forwards: RefCell::new((0..shards).map(|_| Vec::new()).collect()),
            rng: Cell::new(0x9E37_79B9_7F4A_7C15 ^ (id as u64 + 1)),
            scratch: RefCell::new(Vec::new()),
            backlog_scratch: Default::default(),
            action_pool: RefCell::new(Vec::new()),
            flow: Default::default(),
            adopter: Cell::new(None),
            input_budget: RefCell::new(super::budget::InputBudget::new(input_share)),
            input_budget_warned: Default::default(),
            queue_budget_warned: Default::default(),
            conn_slots: shared.conn_slots,
            listener_slots: shared.listener_slots,
            tls: RefCell::new(shared.tls),
            auth_throttle: shared.auth_throttle,
            durable_shards: shared.durable,
            journal: std::cell::OnceCell::new(),
            batch_confirms: RefCell::new(Vec::new()),
            rule_engine: Default::default(),
            recent: RefCell::new(Recent::default()),
            retained_overlap: Default::default(),
            routed_at: shared.routed_at,
            routed_stored: Cell::new(0),
            arrival: Cell::new(0),
            batch_wall: Cell::new(0),
            handovers: shared.handovers,
            landed: RefCell::new(Landed::new(shards)),
            landed_waiters: RefCell::new(Vec::new()),
        })
    }

    /// What the handshake of a connection on a `kind` listener needs.
    pub fn handshake_settings(
        &self,
        kind: super::stream::ListenerKind,
    ) -> super::stream::Handshake {
        use super::stream::ListenerKind as K;
        let tls = self.tls.borrow();
        let (tls, path) = match kind {
            K::Tcp => (None, String::new()),
            K::Ssl => (tls.ssl.clone(), String::new()),
            K::Ws => (None, self.cfg.listeners.ws.path.clone()),
            K::Wss => (tls.wss.clone(), self.cfg.listeners.wss.path.clone()),
        };
        super::stream::Handshake {
            kind,
            tls,
            ws: crate::transport::ws::WsSettings {
                path,
                max_frame: self.cfg.mqtt.max_packet_size as usize + 16,
            },
        }
    }

    /// Whether a `kind` (TLS) listener takes the client certificate's CN as the username.
    pub fn cert_cn_is_username(&self, kind: super::stream::ListenerKind) -> bool {
        let l = match kind {
            super::stream::ListenerKind::Ssl => &self.cfg.listeners.ssl,
            super::stream::ListenerKind::Wss => &self.cfg.listeners.wss,
            _ => return false,
        };
        l.peer_cert_as_username == "cn"
    }

    /// Sheds the largest sessions' queues when this shard's queues hold more than its share of
    /// `mqtt.queue_budget` ([`super::budget::queue_cuts`]); each message shed is counted.
    fn enforce_queue_budget(&self) {
        let budget = self.cfg.mqtt.queue_budget;
        if budget == 0 {
            return;
        }
        let share = (budget / self.shards.max(1) as u64) as usize;
        // A sum of one field per session each tick; the list is built only when over.
        let total: usize = self
            .clients
            .borrow()
            .values()
            .map(|c| c.session.queued_bytes())
            .sum();
        if total <= share {
            return;
        }
        let sizes: Vec<(Str, usize)> = self
            .clients
            .borrow()
            .iter()
            .map(|(id, c)| (id.clone(), c.session.queued_bytes()))
            .collect();
        let cuts = super::budget::queue_cuts(share, &sizes);
        if cuts.is_empty() {
            return;
        }
        let mut clients = self.clients.borrow_mut();
        let mut metrics = self.metrics.borrow_mut();
        let mut freed = 0;
        for (id, bytes) in &cuts {
            if let Some(c) = clients.get_mut(id) {
                freed += c.session.shed_queued(*bytes, &mut metrics);
                self.journal_session(id, c);
            }
        }
        self.queue_budget_warned.borrow_mut().warn(|more| {
            tracing::warn!(
                shard = self.id,
                "mqtt.queue_budget reached: shed {freed} bytes from the {} largest queues ({more} more since the last warning)",
                cuts.len()
            )
        });
    }

    /// Records that `link`'s connection holds `held` bytes of input not yet handled; when
    /// this shard's share of `mqtt.input_budget` runs out, the largest holder is closed
    /// (counted and logged). Returns the bytes now counted for `link`.
    pub fn hold_input(&self, link: &Rc<Link>, held: usize) -> usize {
        let (counted, cut) =
            self.input_budget
                .borrow_mut()
                .hold(link.id, held, &Rc::downgrade(link));
        if let Some(victim) = cut.and_then(|w| w.upgrade()) {
            self.metrics.borrow_mut().connections_cut_input_budget += 1;
            self.input_budget_warned.borrow_mut().warn(|more| {
                tracing::warn!(
                    shard = self.id,
                    "mqtt.input_budget reached: closing the connection holding the most unfinished input ({more} more since the last warning)"
                )
            });
            victim.close(CloseReason::InputBudget);
        }
        counted
    }

    pub(super) fn random(&self) -> u64 {
        // xorshift64*: cheap, good enough to spread shared-subscription picks.
        let mut x = self.rng.get();
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng.set(x);
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Applies the route announcements other shards posted here (`RouteAdd`/`RouteDel`, in
    /// each sender's order; see ARCHITECTURE.md, "The route barrier without a round trip").
    /// Called before anything reads the replica (routing a publish, the route views and
    /// counts) and at every tick: announcements wake nobody, so a shard with nothing to do
    /// takes them when it next has something.
    pub fn apply_posted(&self) {
        while let Some((from, msg)) = self.mesh.take_posted() {
            self.apply_notice(from, msg);
        }
    }

    fn apply_notice(&self, from: usize, msg: ShardMsg) {
        match msg {
            ShardMsg::RouteAdd { filter, group } => {
                self.routes
                    .borrow_mut()
                    .add_route(from, &filter, group.as_deref())
            }
            ShardMsg::RouteDel { filter, group } => {
                self.routes
                    .borrow_mut()
                    .remove_route(from, &filter, group.as_deref())
            }
            ShardMsg::Claim { client_id, link } => self.note_claim(from, client_id, link),
            ShardMsg::Release { client_id, link } => self
                .directory
                .borrow_mut()
                .release(&client_id, Served { shard: from, link }),
            _ => {
                debug_assert!(false, "a posted message that is not a notice");
                tracing::error!(
                    shard = self.id,
                    "ignored a posted message that is not a notice"
                );
            }
        }
    }

    /// Shard `from` serves connection `link` of `client_id` (homed here) from now on: the
    /// older connection of the id, on a third shard or here, ends.
    fn note_claim(&self, from: usize, client_id: Str, link: u64) {
        let older = self
            .directory
            .borrow_mut()
            .claim(&client_id, Served { shard: from, link });
        if let Some(older) = older {
            self.mesh.send(
                older.shard,
                ShardMsg::Displace {
                    client_id: client_id.clone(),
                    link: older.link,
                },
            );
        }
        // A session of the id here, online or not, is older than the claim. (Inside a
        // borrow of the client table, i.e. a delivery, look later.)
        let here = match self.clients.try_borrow() {
            Ok(clients) => clients.get(&client_id).is_some(),
            Err(_) => true,
        };
        if here {
            self.displaced.borrow_mut().push(client_id);
        }
    }

    /// After a connection of `client_id` was claimed (see `connect_client`): wake its home
    /// shard to take the claim now, if it is homed elsewhere.
    pub fn wake_for_claim(&self, client_id: &str) {
        let home = home_shard(client_id, self.shards);
        if home != self.id {
            self.mesh.send(home, ShardMsg::TakePosted);
        }
    }

    /// Ends the sessions here that newer connections accepted elsewhere replace (see
    /// `note_claim`): as a clean start's takeover does, with the old connection's will.
    pub fn settle_displaced(self: &Rc<Self>) {
        let ids = std::mem::take(&mut *self.displaced.borrow_mut());
        for id in ids {
            self.end_replaced(&id, Instant::now());
        }
    }

    /// A newer connection of `client_id` replaces its session here without resuming it:
    /// the old connection closes (reason `takeover`, its will published unless it has a
    /// delay) and the session ends (a will still waiting for its delay goes out then).
    fn end_replaced(self: &Rc<Self>, client_id: &Str, now: Instant) {
        self.take_over_link(client_id, now);
        self.end_session(client_id, now);
    }

    /// Closes the connection of `client_id` for a newer one (reason `takeover`); its will
    /// goes out now, unless it has a delay (5.0), which a resumption ends unpublished.
    fn take_over_link(self: &Rc<Self>, client_id: &Str, now: Instant) {
        let will = self.clients.borrow_mut().get_mut(client_id).and_then(|c| {
            let will = c.link.take().map(|l| {
                l.close(CloseReason::Takeover);
                c.session.connection_lost(now);
                c.session.take_due_will(now)
            });
            will.flatten()
        });
        if let Some(will) = will {
            self.publish(Message::from_will(&will, client_id, Instant::now()));
        }
    }

    /// Ends the session of `client_id` (not resumed by the connection replacing it).
    fn end_session(self: &Rc<Self>, client_id: &Str, now: Instant) {
        let removed = self.clients.borrow_mut().remove(client_id);
        if let Some(mut old) = removed {
            self.journal_gone(client_id, &old);
            if old.backlogged() {
                self.flow.observe(true, 0, false, false);
            }
            self.end_backlog(&mut old);
            self.drop_subscriptions(client_id, &old.session);
            // The old session ends here: a will still waiting for its delay goes out.
            if let Some(will) = old.session.take_will() {
                self.publish(Message::from_will(&will, client_id, now));
            }
        }
    }

    pub(super) fn other_shards(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.shards).filter(move |s| *s != self.id)
    }

    // ---------------------------------------------------------------- connect / close

    /// A client id the broker assigns to a clean client that sent an empty one. It hashes
    /// to this shard, so the connection needs no hand-over.
    pub fn assign_client_id(&self) -> Str {
        loop {
            let id = format!("shardmq-{:016x}", self.random());
            if home_shard(&id, self.shards) == self.id {
                return Str::from(id);
            }
        }
    }

    /// Reads the clock once for a batch of packets handled without awaiting (one
    /// `clock_gettime` per batch instead of two or three per packet).
    pub fn batch_clock(&self) -> BatchClock<'_> {
        self.batch_now.set(Some(Instant::now()));
        self.batch_wall.set(0);
        BatchClock(self)
    }

    /// The wall-clock time in nanoseconds: within a batch, the one read at the batch's first
    /// routing (a batch that routes nothing reads none).
    pub(super) fn wall_now(&self) -> u64 {
        if !self.in_batch() {
            return wall_ns();
        }
        match self.batch_wall.get() {
            0 => {
                let now = wall_ns();
                self.batch_wall.set(now);
                now
            }
            at => at,
        }
    }

    /// This shard is about to route messages read by `at`: says so to the other shards
    /// before it takes the routes they posted (`recent`: a subscribing shard posts its route,
    /// then reads this; one of the two sees the other).
    pub(super) fn routing_at(&self, at: u64) {
        if at > self.routed_stored.get() {
            self.routed_stored.set(at);
            self.routed_at[self.id]
                .0
                .store(at, std::sync::atomic::Ordering::Relaxed);
            std::sync::atomic::fence(std::sync::atomic::Ordering::SeqCst);
        }
    }

    /// After `client_id` subscribed to `filters` (ordinary subscriptions new to it) in a
    /// SUBSCRIBE the kernel received at [`Shard::arrival`]: delivers what this shard routed
    /// after that, and asks each other shard that routed anything since for what it routed
    /// after that to no other shard (`recent`).
    pub(super) fn catch_up(self: &Rc<Self>, client_id: &Str, filters: Vec<(Str, SubOptions)>) {
        let since = self.arrival.get();
        let link = self
            .clients
            .borrow()
            .get(client_id)
            .and_then(|c| c.link.as_ref().map(|l| l.id));
        let (true, Some(link)) = (since > 0, link) else {
            return;
        };
        // What this shard routed after the SUBSCRIBE arrived, before it was read; not what an
        // older subscription of the client already matched.
        let here = self.recent.borrow().missed(client_id, since, &filters);
        if !here.is_empty() {
            self.deliver_caught_up(client_id, link, &filters, here);
        }
        // The routes were posted: now look (see `routing_at`).
        std::sync::atomic::fence(std::sync::atomic::Ordering::SeqCst);
        for to in self.other_shards() {
            if self.routed_at[to]
                .0
                .load(std::sync::atomic::Ordering::Relaxed)
                > since
            {
                self.mesh.send(
                    to,
                    ShardMsg::CatchUp {
                        client_id: client_id.clone(),
                        link,
                        filters: filters.clone(),
                        since,
                    },
                );
            }
        }
    }

    /// Messages routed while `client_id`'s SUBSCRIBE to `filters` waited to be read here:
    /// delivered to connection `link` if it is still the client's, except those one of its
    /// other subscriptions matches (they reached it).
    pub(super) fn deliver_caught_up(
        self: &Rc<Self>,
        client_id: &Str,
        link: u64,
        filters: &[(Str, SubOptions)],
        mut msgs: Vec<(Message, SubOptions)>,
    ) {
        {
            let routes = self.routes.borrow();
            msgs.retain(|(m, _)| !routes.matches_other(client_id, &m.topic, filters));
        }
        let mut actions = Vec::new();
        {
            let mut clients = self.clients.borrow_mut();
            let Some(c) = clients.get_mut(client_id) else {
                return;
            };
            if c.link.as_ref().map(|l| l.id) != Some(link) {
                return;
            }
            let mut metrics = self.metrics.borrow_mut();
            let mut delivered = Vec::new();
            let now = self.now();
            for (m, opts) in &msgs {
                c.session
                    .deliver(m, *opts, now, &mut metrics, &mut delivered);
                actions.extend(delivered.drain(..).map(|a| a.with_message(m)));
            }
            drop(metrics);
            self.journal_session(client_id, c);
        }
        self.apply(client_id, actions);
    }

    /// Whether a batch is open (forwards wait for its end).
    pub(super) fn in_batch(&self) -> bool {
        self.batch_now.get().is_some()
    }

    fn send_batched_forwards(&self) {
        let mut batched = self.batched_forwards.borrow_mut();
        for (to, forwards) in batched.iter_mut().enumerate() {
            if !forwards.is_empty() && self.must_confirm(to, forwards) {
                let (req, confirmed) = self.replies.register(1);
                self.batch_confirms.borrow_mut().push(confirmed);
                let forwards = std::mem::take(forwards);
                self.mesh
                    .send(to, ShardMsg::ForwardsDurable { req, forwards });
                continue;
            }
            match forwards.len() {
                0 => {}
                1 => {
                    let f = forwards.pop().expect("one forward");
                    self.mesh.send(to, ShardMsg::Forward(Box::new(f)));
                }
                _ => self
                    .mesh
                    .send(to, ShardMsg::Forwards(std::mem::take(forwards))),
            }
        }
    }

    /// The current time: the batch's, inside one, else the clock's.
    pub fn now(&self) -> Instant {
        self.batch_now.get().unwrap_or_else(Instant::now)
    }

    /// Whether every hand-over `mark` counts has landed here.
    pub fn has_landed(&self, mark: &Mark) -> bool {
        self.landed.borrow().reached(mark)
    }

    /// Waits until every hand-over `mark` counts has landed here (each is on its way: its
    /// shard sends it right after its CONNACK). Bounded, so that a lost one delays, never
    /// stops, what waits for it.
    pub async fn after_handovers(&self, mark: &Mark) {
        if self.has_landed(mark) {
            return;
        }
        let landed = std::future::poll_fn(|cx| {
            if self.has_landed(mark) {
                return std::task::Poll::Ready(());
            }
            self.landed_waiters.borrow_mut().push(cx.waker().clone());
            std::task::Poll::Pending
        });
        if or_timeout(landed, HANDOVER_WAIT).await.is_none() {
            tracing::warn!(
                shard = self.id,
                "a connection handed over did not arrive in time"
            );
        }
    }

    /// A connection answered by shard `from` was taken over here (served or refused).
    pub fn land_handover(&self, from: usize) {
        self.landed.borrow_mut().land(from);
        for waker in self.landed_waiters.take() {
            waker.wake();
        }
    }

    /// The live connection of `client_id`, if it has one here.
    pub fn live_link(&self, client_id: &str) -> Option<Rc<Link>> {
        self.clients.borrow().get(client_id)?.link.clone()
    }

    /// Whether a CONNECT may connect at all: the address's authentication back-off, bans,
    /// credentials (a failure counts against the address). Asked by the shard that writes
    /// the CONNACK: the serving shard, or for a clean start the accepting one.
    pub fn admit(&self, connect: &Connect, ip: std::net::IpAddr) -> Result<(), Refusal> {
        // An address in back-off is refused before its credentials are even looked at.
        if self.auth_throttle.refused(ip).is_some() {
            self.metrics.borrow_mut().connections_refused_auth_throttled += 1;
            return Err(Refusal::Throttled);
        }
        let verdict = self.policy.borrow().check_connect(
            &connect.client_id,
            connect.username.as_deref(),
            connect.password.as_deref(),
            Some(ip),
            unix_secs(),
        );
        match verdict {
            Verdict::Authenticated => self.auth_throttle.authenticated(ip),
            Verdict::Accept => {}
            Verdict::Banned => return Err(Refusal::Banned),
            Verdict::BadCredentials => {
                self.auth_failed(ip);
                return Err(Refusal::BadCredentials);
            }
            Verdict::NotAuthorized => {
                self.auth_failed(ip);
                return Err(Refusal::NotAuthorized);
            }
        }
        Ok(())
    }

    /// The CONNACK accepting `connect` (5.0: with the broker's properties, and the id when
    /// `assigned_id`).
    pub fn connack(&self, connect: &Connect, assigned_id: bool, session_present: bool) -> Packet {
        let properties = if connect.protocol == ProtocolVersion::V5 {
            // The handshake lowered the keepalive to `server_keepalive` where it imposes it.
            let server = self.cfg.mqtt.server_keepalive;
            let imposed = if server > 0 && connect.keep_alive == server {
                server
            } else {
                0
            };
            self.policy.borrow().connack_properties(
                self.cfg.mqtt.max_packet_size,
                imposed,
                assigned_id.then_some(&connect.client_id),
            )
        } else {
            Props::default()
        };
        Packet::ConnAck(ConnAck {
            session_present,
            code: 0,
            properties,
        })
    }

    /// Accepts (or refuses) a CONNECT for a client served here: takeover of an older
    /// connection, session resume or creation, CONNACK and redelivery into the new link.
    /// `acked`: the accepting shard admitted this clean start and wrote its CONNACK.
    pub fn connect_client(
        self: &Rc<Self>,
        connect: &Connect,
        peer: SocketAddr,
        assigned_id: bool,
        acked: bool,
    ) -> Result<Rc<Link>, Refusal> {
        // The id length limit is checked by the accepting shard (`conn::handshake`) on the
        // id the client sent, so an id the broker assigned is never refused by it.
        let client_id = connect.client_id.clone();
        let policy = self.policy.borrow().clone();
        if !acked {
            self.admit(connect, peer.ip())?;
        } else if policy.banned(
            &client_id,
            connect.username.as_deref(),
            Some(peer.ip()),
            unix_secs(),
        ) {
            // A ban that reached this shard after the accepting one admitted the client: it
            // ends the connection as it ends the live ones it matches.
            return Err(Refusal::Banned);
        }
        let now = Instant::now();
        let link_id = self.next_link_id.get();
        self.next_link_id.set(link_id + 1);
        let mut link = Link::new(link_id, connect.protocol);
        if connect.protocol == ProtocolVersion::V5 {
            link.use_topic_aliases(connect.properties.topic_alias_maximum.unwrap_or(0));
        }
        let link = Rc::new(link);

        // A connection of the id that another shard serves (the directory knows it when
        // the id is homed here) ends; so do the sessions here that newer connections
        // accepted elsewhere replaced.
        let home = home_shard(&client_id, self.shards);
        self.apply_posted();
        self.settle_displaced();
        if home == self.id {
            if let Some(older) = self.directory.borrow_mut().take(&client_id) {
                self.mesh.send(
                    older.shard,
                    ShardMsg::Displace {
                        client_id: client_id.clone(),
                        link: older.link,
                    },
                );
            }
        }
        // Take over an older connection here.
        self.take_over_link(&client_id, now);

        let resumable = self
            .clients
            .borrow()
            .get(&client_id)
            .map(|c| c.session.is_persistent() && !c.session.expired(now))
            .unwrap_or(false);
        let session_present = resumable && !connect.clean_start;
        if !session_present {
            self.end_session(&client_id, now);
        }

        if !acked {
            let connack = self.connack(connect, assigned_id, session_present);
            link.send(&connack, &mut self.metrics.borrow_mut());
        }

        let mut actions = Vec::new();
        {
            let mut clients = self.clients.borrow_mut();
            let mut metrics = self.metrics.borrow_mut();
            let info = Client {
                session: Session::new(connect, policy.session.clone(), now),
                link: Some(link.clone()),
                username: connect.username.clone(),
                peer: Some(peer),
                connected_at_ms: unix_millis(),
                keep_alive: connect.keep_alive,
                protocol: connect.protocol,
                backlog: None,
                progress: flow::Progress::new(now),
                journaled: false,
            };
            match clients.get_mut(&client_id) {
                Some(c) if session_present => {
                    c.session.resume(connect, now, &mut metrics, &mut actions);
                    c.link = Some(link.clone());
                    c.username = info.username;
                    c.peer = info.peer;
                    c.connected_at_ms = info.connected_at_ms;
                    c.keep_alive = info.keep_alive;
                    c.protocol = info.protocol;
                    c.progress.restart(); // back online
                    self.note_backlog(c);
                }
                _ => {
                    clients.insert(Box::new(info));
                }
            }
            if let Some(c) = clients.get_mut(&client_id) {
                self.journal_session(&client_id, c);
            }
        }
        if home != self.id {
            // Served here though homed elsewhere (a clean start that ends with its connection):
            // posted before the CONNACK is written, so that any later connection of the id
            // finds this one through the home shard. The connection code wakes the home
            // shard once the CONNACK is out ([`Shard::wake_for_claim`]), so that an older
            // connection of the id ends at once.
            self.mesh.post(
                home,
                ShardMsg::Claim {
                    client_id: client_id.clone(),
                    link: link.id,
                },
            );
        }
        self.apply(&client_id, actions);
        self.publish_client_event(connect, peer);
        self.hook_connected(
            &client_id,
            crate::rules::Connected {
                clean_start: connect.clean_start,
                keepalive: connect.keep_alive,
                proto_ver: connect.protocol.level(),
                connected_at_ms: unix_millis(),
            },
        );
        Ok(link)
    }

    /// A CONNECT from `ip` refused for its credentials: counted, and against the address in
    /// the node's throttle; the start of a back-off is logged (paced node-wide).
    fn auth_failed(&self, ip: std::net::IpAddr) {
        let failure = self.auth_throttle.failed(ip);
        let mut metrics = self.metrics.borrow_mut();
        metrics.connections_refused_auth_failed += 1;
        let Failure::Throttled { warn } = failure else {
            return;
        };
        metrics.auth_throttled_addresses += 1;
        if let Some(others) = warn {
            let cfg = self.auth_throttle.config();
            let more = match others {
                0 => String::new(),
                n => format!(" ({n} more addresses throttled since the last warning)"),
            };
            tracing::warn!(
                shard = self.id,
                address = %ip,
                "MQTT: {ip} failed to authenticate {} times within {} s: its CONNECTs are refused (CONNACK 5) for {} s{more}",
                cfg.limit,
                cfg.window.as_secs(),
                cfg.backoff.as_secs(),
            );
        }
    }

    /// The connection `link` of `client_id` ended for `reason`: publish the will if the
    /// reason calls for it, and keep or drop the session.
    pub fn connection_closed(self: &Rc<Self>, client_id: &Str, link: &Link, reason: CloseReason) {
        let now = Instant::now();
        self.note_connection_freed();
        // Every abnormal end counts for the listener view, takeovers included.
        if !matches!(
            reason,
            CloseReason::Disconnect | CloseReason::DisconnectWithWill
        ) {
            *self
                .shutdowns
                .borrow_mut()
                .entry(reason.as_str())
                .or_default() += 1;
        }
        let (will, drop_session, username, peer) = {
            let mut clients = self.clients.borrow_mut();
            let Some(c) = clients.get_mut(client_id) else {
                return;
            };
            match &c.link {
                Some(l) if l.id == link.id => {}
                _ => return, // taken over: the session belongs to the newer connection
            }
            c.link = None;
            c.session.connection_lost(now);
            self.note_backlog(c);
            let will = if reason.publishes_will() {
                // Now, or (5.0 Will Delay Interval) from the housekeeping tick once due.
                c.session.take_due_will(now)
            } else {
                // A DISCONNECT discards the will [MQTT-3.14.4-3].
                c.session.take_will();
                None
            };
            (will, !c.session.is_persistent(), c.username.clone(), c.peer)
        };
        if let Some(will) = will {
            self.publish(Message::from_will(&will, client_id, Instant::now()));
        }
        if drop_session {
            let removed = self.clients.borrow_mut().remove(client_id);
            if let Some(old) = removed {
                self.journal_gone(client_id, &old);
                self.drop_subscriptions(client_id, &old.session);
            }
            let home = home_shard(client_id, self.shards);
            if home != self.id {
                self.mesh.post(
                    home,
                    ShardMsg::Release {
                        client_id: client_id.clone(),
                        link: link.id,
                    },
                );
            }
        }
        let who = crate::rules::Who {
            client_id,
            username: username.as_deref(),
            peer,
        };
        self.hook_disconnected(&who, reason);
        self.publish_disconnect_event(client_id, username, reason);
    }

    /// Removes a client's session (offline, or about to be replaced) and its subscriptions;
    /// a will still waiting for its delay goes out, as the session ends.
    pub fn discard_session(self: &Rc<Self>, client_id: &Str) {
        let old = self.clients.borrow_mut().remove(client_id);
        if let Some(mut old) = old {
            self.journal_gone(client_id, &old);
            self.drop_subscriptions(client_id, &old.session);
            if let Some(will) = old.session.take_will() {
                self.publish(Message::from_will(&will, client_id, Instant::now()));
            }
        }
    }

    /// Removes every index entry of a session that is being discarded.
    pub(super) fn drop_subscriptions(self: &Rc<Self>, client_id: &Str, session: &Session) {
        let filters: Vec<Str> = session.subscriptions().map(|(f, _)| Str::from(f)).collect();
        for f in filters {
            self.unsubscribe_one(client_id, &f);
        }
    }

    // ---------------------------------------------------------------- packets and actions

    /// A packet from `client_id`'s connection `link_id`.
    pub fn on_packet(self: &Rc<Self>, client_id: &Str, link_id: u64, mut packet: Packet) {
        let mut actions = self.take_actions();
        // The rule engine's view of this packet, taken before the session consumes it.
        let acked = self.acked_message(client_id, &packet);
        let subscription = self.subscription_event(&packet);
        {
            let mut clients = self.clients.borrow_mut();
            let Some(c) = clients.get_mut(client_id) else {
                return;
            };
            if c.link.as_ref().map(|l| l.id) != Some(link_id) {
                return;
            }
            // Authorization of a SUBSCRIBE: the session sees only the filters the ACL allows;
            // the others are answered "not authorized" in their places.
            let mut denied = Vec::new();
            if let Packet::Subscribe(s) = &mut packet {
                let policy = self.policy.borrow();
                if !policy.acl_open() {
                    let who = acl_client(client_id, c);
                    let mut i = 0;
                    s.filters.retain(|(f, _)| {
                        let ok = policy.authorize(who, Access::Subscribe, f);
                        if !ok {
                            denied.push((i, f.clone()));
                        }
                        i += 1;
                        ok
                    });
                }
            }
            let mut metrics = self.metrics.borrow_mut();
            match &packet {
                Packet::Subscribe(s) if !denied.is_empty() => {
                    let packet_id = s.packet_id;
                    if !s.filters.is_empty() {
                        c.session
                            .handle(packet, self.now(), &mut metrics, &mut actions);
                    } else {
                        actions.push(Action::Subscribe {
                            packet_id,
                            filters: Vec::new(),
                        });
                    }
                    let v5 = c
                        .link
                        .as_ref()
                        .is_some_and(|l| l.version == ProtocolVersion::V5);
                    let code = if v5 {
                        self.policy.borrow().acl_deny_suback_v5
                    } else {
                        0x80
                    };
                    for a in actions.iter_mut() {
                        if let Action::Subscribe { filters, .. } = a {
                            for (i, f) in denied.drain(..) {
                                filters.insert(i.min(filters.len()), (f, Err(code)));
                            }
                        }
                    }
                }
                _ => c
                    .session
                    .handle(packet, self.now(), &mut metrics, &mut actions),
            }
            if c.backlogged() || c.progress.watched() {
                self.note_backlog(c);
            }
            self.journal_session(client_id, c);
        }
        self.apply(client_id, actions);
        if let Some(msg) = acked {
            self.hook_message_to(crate::rules::Event::MessageAcked, &msg, client_id);
        }
        if let Some((event, filters)) = subscription {
            self.hook_subscription(client_id, event, &filters);
        }
    }

    /// Re-evaluates whether `c` counts as backlogged for flow control; when it drained or
    /// stalled, releases the publishers throttled on its account (here and on the shards
    /// asked).
    pub(super) fn note_backlog(&self, c: &mut Client) {
        // Queued messages, or the connection's unwritten bytes in message units, whichever
        // is more: a QoS 0 subscriber that cannot keep up backs up in its connection only.
        let unwritten = c.link.as_ref().map_or(0, |l| l.unwritten());
        let queued = c.session.queued().max(unwritten / flow::BYTES_PER_MESSAGE);
        // The batch's clock: a fan-out observes every subscriber per message.
        let stalled = c.progress.observe(queued, || self.now());
        let was = c.backlogged();
        let (now, released) = self.flow.observe(was, queued, c.link.is_some(), stalled);
        if now != was {
            // Messages its publishers sent before the hold lands must not be dropped.
            c.session.hold_publishers(now);
        }
        if now && !was {
            c.backlog = Some(self.flow.begin(self.id));
        }
        if released {
            self.end_backlog(c);
        }
        if let Some(link) = &c.link {
            link.set_flow_watched(now || c.progress.watched());
        }
    }

    /// A write of `client_id`'s connection completed while flow control watched it: its
    /// unwritten bytes shrank, so its backlog may have drained.
    pub fn recheck_backlog(&self, client_id: &Str) {
        if let Some(c) = self.clients.borrow_mut().get_mut(client_id) {
            self.note_backlog(c);
        }
    }

    /// Ends `c`'s backlog episode, if one is in force: the publishers paused on it here and
    /// on the shards it asked go on.
    pub(super) fn end_backlog(&self, c: &mut Client) {
        if let Some(key) = c.backlog.take() {
            for shard in shards_in(self.flow.end(key)) {
                self.mesh.send(shard, ShardMsg::FlowRelease { key });
            }
        }
    }

    /// An empty action list, reused from earlier calls (no allocation per packet).
    pub(super) fn take_actions(&self) -> Vec<Action> {
        self.action_pool.borrow_mut().pop().unwrap_or_default()
    }

    pub(super) fn recycle_actions(&self, actions: Vec<Action>) {
        debug_assert!(actions.is_empty());
        let mut pool = self.action_pool.borrow_mut();
        if pool.len() < 16 {
            pool.push(actions);
        }
    }

    /// Whether the ACL lets `client_id` (served here) publish to `topic`. Free when no rule
    /// can deny anything ([`Policy::acl_open`]).
    fn may_publish(&self, client_id: &Str, topic: &str) -> bool {
        let policy = self.policy.borrow();
        if policy.acl_open() {
            return true;
        }
        let clients = self.clients.borrow();
        let Some(c) = clients.get(client_id) else {
            return true; // the API or `$SYS`: not a client's publish
        };
        policy.authorize(acl_client(client_id, c), Access::Publish, topic)
    }

    /// Gives `packet`, the PUBACK or PUBREC of a message of `client_id` just routed, the
    /// reason `code` (5.0). A PUBREC with an error code ends its QoS 2 flow: the session
    /// forgets the id.
    fn give_ack_reason(&self, client_id: &Str, packet: &mut Packet, code: u8) {
        match packet {
            Packet::PubAck(r) if r.reason == 0 => r.reason = code,
            Packet::PubRec(r) if r.reason == 0 => {
                r.reason = code;
                if code >= 0x80 {
                    if let Some(c) = self.clients.borrow_mut().get_mut(client_id) {
                        c.session.refused_incoming(r.packet_id);
                    }
                }
            }
            _ => {}
        }
    }

    /// Carries out a session's actions. Must be called with no borrow held.
    pub fn apply(self: &Rc<Self>, client_id: &Str, mut actions: Vec<Action>) {
        if actions.is_empty() {
            self.recycle_actions(actions);
            return;
        }
        let link = self
            .clients
            .borrow()
            .get(client_id)
            .and_then(|c| c.link.clone());
        let v5 = link
            .as_ref()
            .is_some_and(|l| l.version == ProtocolVersion::V5);
        // A 5.0 reason code for the PUBACK / PUBREC of the message just routed: the session
        // emits a QoS 1 or 2 message's acknowledgement right after its `Route`.
        let mut ack_reason = None;
        let mut pending = actions.drain(..);
        while let Some(action) = pending.next() {
            match action {
                Action::Send(mut packet) => {
                    if let Some(code) = ack_reason.take() {
                        self.give_ack_reason(client_id, &mut packet, code);
                    }
                    if let Some(link) = &link {
                        link.send(&packet, &mut self.metrics.borrow_mut());
                        self.hook_sent_publish(&packet, client_id);
                    }
                }
                Action::SendDelivered { .. } => {
                    // Only `deliver` makes it, and its callers resolve it with the message.
                    debug_assert!(false, "SendDelivered reached apply");
                    tracing::error!("a delivery reached apply without its message; dropped");
                }
                Action::Route(msg) => {
                    let acked = v5 && msg.qos != QoS::AtMostOnce;
                    ack_reason = None;
                    if !self.may_publish(client_id, &msg.topic) {
                        self.metrics
                            .borrow_mut()
                            .count_drop(crate::metrics::DropReason::AclDenied);
                        if self.policy.borrow().acl_deny_disconnects {
                            if let Some(link) = &link {
                                link.close(CloseReason::NotAuthorized);
                            }
                        }
                        // As EMQ X answers a 5.0 client.
                        ack_reason = acked.then_some(RC_NOT_AUTHORIZED);
                        continue;
                    }
                    let routed = self.publish_tracked(msg);
                    if acked && !routed.matched {
                        ack_reason = Some(RC_NO_MATCHING_SUBSCRIBERS);
                    }
                    if let Some(stored) = routed.stored {
                        // The PUBACK/PUBREC (and what follows) waits until the retained
                        // message is stored on its owner shard.
                        let mut rest: Vec<Action> = pending.by_ref().collect();
                        if let (Some(code), Some(Action::Send(ack))) =
                            (ack_reason.take(), rest.first_mut())
                        {
                            self.give_ack_reason(client_id, ack, code);
                        }
                        let me = self.clone();
                        let client_id = client_id.clone();
                        spawn_local(async move {
                            or_timeout(stored, ROUTE_ACK_DEADLINE).await;
                            me.apply(&client_id, rest);
                        })
                        .detach();
                    }
                }
                Action::Subscribe { packet_id, filters } => {
                    self.subscribe(client_id, packet_id, filters)
                }
                Action::Unsubscribe { packet_id, filters } => {
                    for (f, _) in &filters {
                        self.unsubscribe_one(client_id, f);
                    }
                    if let Some(link) = &link {
                        let codes = if link.version == ProtocolVersion::V5 {
                            filters
                                .iter()
                                .map(|(_, had)| if *had { 0x00 } else { 0x11 })
                                .collect()
                        } else {
                            Vec::new()
                        };
                        let ack = Packet::UnsubAck(UnsubAck {
                            packet_id,
                            codes,
                            properties: Props::default(),
                        });
                        link.send(&ack, &mut self.metrics.borrow_mut());
                    }
                }
                Action::Close(reason) => {
                    if let Some(link) = &link {
                        link.close(reason);
                    }
                }
            }
        }
        drop(pending);
        self.recycle_actions(actions);
    }

    // ---------------------------------------------------------------- peers

    /// A message from another executor. Synchronous: it never awaits a peer.
    pub fn on_peer_msg(self: &Rc<Self>, from: usize, msg: ShardMsg) {
        match msg {
            ShardMsg::Forward(f) => self.deliver_local(&f.msg, f.to_subscribers, &f.shared, from),
            ShardMsg::Forwards(forwards) => {
                for f in forwards {
                    self.deliver_local(&f.msg, f.to_subscribers, &f.shared, from);
                }
            }
            ShardMsg::ForwardsDurable { req, forwards } => {
                for f in forwards {
                    self.deliver_local(&f.msg, f.to_subscribers, &f.shared, from);
                }
                self.confirm_when_written(from, req);
            }
            ShardMsg::RouteAdd { .. }
            | ShardMsg::RouteDel { .. }
            | ShardMsg::Claim { .. }
            | ShardMsg::Release { .. } => self.apply_notice(from, msg),
            ShardMsg::TakePosted => {
                self.apply_posted();
                self.settle_displaced();
            }
            ShardMsg::CatchUp {
                client_id,
                link,
                filters,
                since,
            } => {
                let msgs = self.recent.borrow().missed(&client_id, since, &filters);
                if !msgs.is_empty() {
                    self.mesh.send(
                        from,
                        ShardMsg::CaughtUp {
                            client_id,
                            link,
                            filters,
                            msgs,
                        },
                    );
                }
            }
            ShardMsg::CaughtUp {
                client_id,
                link,
                filters,
                msgs,
            } => self.deliver_caught_up(&client_id, link, &filters, msgs),
            ShardMsg::Displace { client_id, link } => {
                let current = self
                    .clients
                    .borrow()
                    .get(&client_id)
                    .and_then(|c| c.link.as_ref().map(|l| l.id));
                if current == Some(link) {
                    self.end_replaced(&client_id, Instant::now());
                }
            }
            ShardMsg::RetainSet { req, msg } => {
                self.store_retained(*msg);
                self.confirm_when_written(from, req);
            }
            ShardMsg::RetainQuery { req, filter } => {
                let msgs = self.retained_matching(&filter);
                self.mesh.send(
                    from,
                    ShardMsg::Reply {
                        req,
                        reply: Box::new(ReplyData::Retained(msgs)),
                    },
                );
            }
            ShardMsg::Adopt(adopt) => match self.adopter.get() {
                Some(adopt_with) => adopt_with(self.clone(), *adopt),
                None => tracing::error!(
                    shard = self.id,
                    "a connection handed over before the shard serves any"
                ),
            },
            ShardMsg::Collect {
                req,
                question,
                after,
            } => {
                // A question about clients that connected before it was asked waits for
                // their connections still on their way here.
                let me = self.clone();
                let answer = move || {
                    let shard: &dyn std::any::Any = &me;
                    let answer = question.answer(shard);
                    me.mesh.send(
                        from,
                        ShardMsg::Reply {
                            req,
                            reply: Box::new(ReplyData::Answer(answer)),
                        },
                    );
                };
                if self.has_landed(&after) {
                    answer();
                } else {
                    let me = self.clone();
                    spawn_local(async move {
                        me.after_handovers(&after).await;
                        answer();
                    })
                    .detach();
                }
            }
            ShardMsg::Policy { req, policy } => {
                self.apply_policy(policy);
                self.mesh.send(
                    from,
                    ShardMsg::Reply {
                        req,
                        reply: Box::new(ReplyData::Ack),
                    },
                );
            }
            ShardMsg::Reply { req, reply } => self.replies.deliver(req, *reply),
            ShardMsg::SlowDown { publisher, key } => {
                if let Some(link) = self
                    .clients
                    .borrow()
                    .get(&publisher)
                    .and_then(|c| c.link.clone())
                {
                    self.flow.hold_remote(key);
                    link.throttle(key);
                }
            }
            ShardMsg::FlowRelease { key } => self.flow.forget(key),
        }
    }

    /// Counters with the gauges that EMQ X reports among them filled in.
    pub fn metrics_now(&self) -> Metrics {
        let mut m = *self.metrics.borrow();
        m.messages_retained = self.retained.borrow().len() as u64;
        m
    }

    /// This shard's gauges. `routes`/`topics` are the (identical) replica's size; the
    /// node total takes them from one shard rather than summing (see `node_totals`).
    pub fn stats(&self) -> Stats {
        self.apply_posted();
        let clients = self.clients.borrow();
        let table = self.routes.borrow();
        let direct = table.local_count() as u64;
        let shared = table.local_shared_count() as u64;
        let routes = table.route_count() as u64;
        Stats {
            connections: clients.values().filter(|c| c.link.is_some()).count() as u64,
            sessions: clients.len() as u64,
            sessions_persistent: clients
                .values()
                .filter(|c| c.session.is_persistent())
                .count() as u64,
            topics: routes,
            routes,
            subscribers: direct + shared,
            subscriptions: direct + shared,
            subscriptions_shared: shared,
            suboptions: direct + shared,
            retained: self.retained.borrow().len() as u64,
        }
    }

    // ---------------------------------------------------------------- housekeeping

    /// Tells the node what this shard freed since the last tick (`bytes` now, and what ended
    /// connections held): the management thread gives free pages back to the system once
    /// enough was freed (`shards::memory`), so what a burst or a wave of connections used
    /// stops counting in the broker's memory.
    fn note_freed_memory(&self, bytes: usize) {
        shardmq_shards::memory::note_freed(self.freed.take() + bytes);
    }

    /// A connection ended: what it held (its task, link and buffers; the session too, when
    /// it goes) is free memory now, about this much.
    fn note_connection_freed(&self) {
        self.freed.set(self.freed.get() + FREED_PER_CONNECTION);
    }

    /// Runs every session whose deadline passed (keepalive, retries, awaiting-PUBREL expiry)
    /// and drops offline persistent sessions past their expiry.
    pub fn tick(self: &Rc<Self>) {
        let now = Instant::now();
        // Posted notices wait for their receiver; this bounds how many an idle shard holds.
        self.apply_posted();
        self.settle_displaced();
        self.enforce_queue_budget();
        self.compact_journal();
        // One pass over the clients: each gives back what a burst grew in its queues, and
        // those with something due are picked.
        let mut freed = 0;
        let due: Vec<Str> = self
            .clients
            .borrow_mut()
            .values_mut()
            .filter_map(|c| {
                freed += c.session.release_idle_memory();
                let due = c.session.next_deadline().is_some_and(|d| d <= now)
                    || (c.link.is_none() && c.session.expired(now))
                    || c.backlogged(); // flow control: has it stalled?
                due.then(|| c.session.client_id().clone())
            })
            .collect();
        self.note_freed_memory(freed);
        for id in due {
            let mut actions = Vec::new();
            let (expired, will) = {
                let mut clients = self.clients.borrow_mut();
                let Some(c) = clients.get_mut(&id) else {
                    continue;
                };
                if c.link.is_none() && c.session.expired(now) {
                    // The session ends: its will goes out, delay or not.
                    (true, c.session.take_will())
                } else {
                    c.session
                        .tick(now, &mut self.metrics.borrow_mut(), &mut actions);
                    self.note_backlog(c);
                    self.journal_session(&id, c);
                    (false, c.session.take_due_will(now))
                }
            };
            if let Some(will) = will {
                self.publish(Message::from_will(&will, &id, now));
            }
            if expired {
                let removed = self.clients.borrow_mut().remove(&id);
                if let Some(old) = removed {
                    self.journal_gone(&id, &old);
                    self.drop_subscriptions(&id, &old.session);
                }
            } else {
                self.apply(&id, actions);
            }
        }
    }

    // ---------------------------------------------------------------- $SYS events

    /// True when some shard has a subscriber for `topic` (a `$SYS` event nobody listens to
    /// is not even formatted: connects and disconnects are on the connection-storm path).
    fn has_subscribers(&self, topic: &str) -> bool {
        self.apply_posted();
        self.routes.borrow().has_match(topic)
    }

    fn publish_client_event(self: &Rc<Self>, connect: &Connect, peer: SocketAddr) {
        let topic = format!(
            "$SYS/brokers/{}/clients/{}/connected",
            self.node, connect.client_id
        );
        if !self.has_subscribers(&topic) {
            return;
        }
        let payload = serde_json::json!({
            "clientid": connect.client_id.as_str(),
            "username": connect.username.as_ref().map(|u| u.as_str()),
            "ipaddress": peer.ip().to_string(),
            "connack": 0,
            "ts": unix_secs(),
            "proto_ver": connect.protocol.level(),
            "proto_name": if connect.protocol == ProtocolVersion::V31 { "MQIsdp" } else { "MQTT" },
            "clean_start": connect.clean_start,
            "keepalive": connect.keep_alive,
        });
        self.publish(Message::system(topic, payload.to_string()));
    }

    fn publish_disconnect_event(
        self: &Rc<Self>,
        client_id: &Str,
        username: Option<Str>,
        reason: CloseReason,
    ) {
        let topic = format!(
            "$SYS/brokers/{}/clients/{}/disconnected",
            self.node, client_id
        );
        if !self.has_subscribers(&topic) {
            return;
        }
        let payload = serde_json::json!({
            "clientid": client_id.as_str(),
            "username": username.as_ref().map(|u| u.as_str()),
            "reason": reason.as_str(),
            "ts": unix_secs(),
        });
        self.publish(Message::system(topic, payload.to_string()));
    }
}

/// Milliseconds since the Unix epoch.
pub fn unix_millis() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Nanoseconds since the Unix epoch (`CLOCK_REALTIME`, the clock of the kernel's receive
/// timestamps).
pub fn wall_ns() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// Seconds since the Unix epoch.
pub fn unix_secs() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The identity the ACL decides on.
fn acl_client<'a>(client_id: &'a str, c: &'a Client) -> ClientRef<'a> {
    ClientRef {
        client_id,
        username: c.username.as_deref(),
        ip: c.peer.map(|p| p.ip()),
    }
}
