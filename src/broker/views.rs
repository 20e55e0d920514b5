//! The questions a shard answers (`ask::ShardQuery`s sent in `Collect`): its rows and
//! figures for the management API and `$SYS`, and the API's actions on its clients (kick,
//! clean session, subscribe, publish); and the node's counters summed for `$SYS`.
//!
//! Runs on the shard that is asked; reads its state and builds plain rows (`Send`) for the
//! management thread. Must never: walk its tables unless asked (nothing here runs on the
//! message path), or hold a borrow across a call that can re-enter the shard.

use std::rc::Rc;
use std::time::{Instant, SystemTime};

use shardmq_http::model::{ConnectionInfo, SessionInfo, SubscriptionInfo};
use shardmq_http::{ApiError, ErrorCode};

use super::ask::{answers, question, Rows, ShardQuery};
use super::handover::Mark;
use super::msg::{ShardFigures, ShardMsg};
use super::race::or_timeout;
use super::shard::{Client, Shard, ROUTE_ACK_DEADLINE};
use crate::codec::{Packet, ProtocolVersion, QoS, Str, SubOptions, Subscribe, Unsubscribe};
use crate::metrics::{Metrics, Stats};
use crate::session::{CloseReason, Message};

/// Which clients a row query is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientFilter {
    All,
    ClientId(String),
    Username(String),
}

/// The shard's counters and gauges.
pub struct Counters;

impl ShardQuery for Counters {
    type Reply = (Metrics, Stats);
    fn answer(self, shard: &Rc<Shard>) -> (Metrics, Stats) {
        (shard.metrics_now(), shard.stats())
    }
}

/// Connection rows: all of the shard's, or those of one client id / username; only the
/// first `window` in client-id order are built (a page needs no more from any shard), and
/// how many match is counted.
pub struct ConnectionRows(pub ClientFilter, pub usize);

impl ShardQuery for ConnectionRows {
    type Reply = Rows<ConnectionInfo>;
    fn answer(self, shard: &Rc<Shard>) -> Self::Reply {
        let (ids, count) = shard.selected(&self.0, |c| c.link.is_some(), self.1);
        let rows = ids
            .iter()
            .filter_map(|id| shard.connection_row(id))
            .collect();
        Rows { rows, count }
    }
}

/// Session rows, likewise.
pub struct SessionRows(pub ClientFilter, pub usize);

impl ShardQuery for SessionRows {
    type Reply = Rows<SessionInfo>;
    fn answer(self, shard: &Rc<Shard>) -> Self::Reply {
        let (ids, count) = shard.selected(&self.0, |_| true, self.1);
        let rows = ids.iter().filter_map(|id| shard.session_row(id)).collect();
        Rows { rows, count }
    }
}

/// Subscription rows, likewise (in client id, then topic order).
pub struct SubscriptionRows(pub ClientFilter, pub usize);

impl ShardQuery for SubscriptionRows {
    type Reply = Rows<SubscriptionInfo>;
    fn answer(self, shard: &Rc<Shard>) -> Self::Reply {
        let (ids, _) = shard.selected(&self.0, |_| true, usize::MAX);
        let clients = shard.clients.borrow();
        let keys: Vec<(Str, Str)> = ids
            .iter()
            .filter_map(|id| clients.get(id).map(|c| (id, c)))
            .flat_map(|(id, c)| {
                c.session
                    .subscriptions()
                    .map(move |(topic, _)| (id.clone(), Str::from(topic)))
            })
            .collect();
        let count = keys.len() as u64;
        let rows = first_in_order(keys, self.1)
            .into_iter()
            .filter_map(|(id, topic)| {
                let opts = clients.get(&id)?.session.subscription(&topic)?;
                Some(SubscriptionInfo {
                    client_id: id.to_string(),
                    node: shard.node.clone(),
                    qos: opts.qos as u8,
                    topic: topic.to_string(),
                })
            })
            .collect();
        Rows { rows, count }
    }
}

/// The route replica's filters (every shard has the same; asked of one).
pub struct Routes;

impl ShardQuery for Routes {
    type Reply = Vec<String>;
    fn answer(self, shard: &Rc<Shard>) -> Vec<String> {
        shard.apply_posted();
        shard.routes.borrow().route_filters()
    }
}

/// Which shard serves a client id (asked of its home shard): the home shard itself when it
/// holds the id's session or nobody does, else the shard its directory names.
pub struct Locate(pub String);

impl ShardQuery for Locate {
    type Reply = usize;
    fn answer(self, shard: &Rc<Shard>) -> usize {
        shard.apply_posted();
        if shard.clients.borrow().get(self.0.as_str()).is_some() {
            return shard.id;
        }
        shard.directory.borrow().locate(&self.0).unwrap_or(shard.id)
    }
}

/// Close a client's connection with reason `kicked` (asked of the shard that serves it).
pub struct Kick(pub String);

impl ShardQuery for Kick {
    type Reply = Result<(), ApiError>;
    fn answer(self, shard: &Rc<Shard>) -> Self::Reply {
        let link = shard
            .clients
            .borrow()
            .get(self.0.as_str())
            .and_then(|c| c.link.clone());
        match link {
            Some(link) => {
                link.close(CloseReason::Kicked);
                Ok(())
            }
            None => Err(ApiError::new(ErrorCode::ClientNotOnline, "not_found")),
        }
    }
}

/// Discard an offline persistent session (asked of the shard that serves it).
pub struct CleanSession(pub String);

impl ShardQuery for CleanSession {
    type Reply = Result<(), ApiError>;
    fn answer(self, shard: &Rc<Shard>) -> Self::Reply {
        let online = shard
            .clients
            .borrow()
            .get(self.0.as_str())
            .map(|c| c.link.is_some());
        match online {
            None => Err(ApiError::new(ErrorCode::ClientNotOnline, "not_found")),
            Some(true) => Err(ApiError::new(ErrorCode::ClientNotOnline, "running_session")),
            Some(false) => {
                shard.discard_session(&Str::from(self.0.as_str()));
                Ok(())
            }
        }
    }
}

/// Publish on behalf of the API (or the alarms), from the shard asked.
pub struct Publish(pub Box<Message>);

impl ShardQuery for Publish {
    type Reply = ();
    fn answer(self, shard: &Rc<Shard>) {
        shard.publish(*self.0);
    }
}

/// Subscribe a session on behalf of the API, as if it had sent SUBSCRIBE, without a SUBACK
/// to the client (asked of the shard that serves it).
pub struct SubscribeClient {
    pub client_id: String,
    pub filter: String,
    pub qos: u8,
}

impl ShardQuery for SubscribeClient {
    type Reply = Result<(), ApiError>;
    fn answer(self, shard: &Rc<Shard>) -> Self::Reply {
        shard.api_subscribe(&self.client_id, &self.filter, self.qos)
    }
}

/// Unsubscribe a session on behalf of the API (asked of the shard that serves it).
pub struct UnsubscribeClient {
    pub client_id: String,
    pub filter: String,
}

impl ShardQuery for UnsubscribeClient {
    type Reply = Result<(), ApiError>;
    fn answer(self, shard: &Rc<Shard>) -> Self::Reply {
        shard.api_unsubscribe(&self.client_id, &self.filter)
    }
}

/// The per-core view: counters, gauges, event-loop and mesh figures.
pub struct Figures;

impl ShardQuery for Figures {
    type Reply = ShardFigures;
    fn answer(self, shard: &Rc<Shard>) -> ShardFigures {
        let mesh = shard.mesh.stats();
        let wall = shard.started.elapsed().as_secs_f64().max(1e-9);
        let cpu = shardmq_shards::runtime::thread_cpu_time().as_secs_f64();
        ShardFigures {
            shard: shard.id,
            core: shard.core,
            metrics: shard.metrics_now(),
            stats: shard.stats(),
            busy_permille: ((cpu / wall) * 1000.0).min(1000.0) as u64,
            mesh_sent: mesh.sent,
            mesh_received: mesh.received,
            mesh_outbox_depth: mesh.outbox_depth,
            shutdowns: shard
                .shutdowns
                .borrow()
                .iter()
                .map(|(k, v)| (k.to_string(), *v))
                .collect(),
            rules: shard.rule_engine.counts(),
        }
    }
}

impl Shard {
    /// The node's counters as `$SYS` publishes them: this shard's own, summed with every
    /// other shard's that answers within the deadline (the same sum as the REST API's,
    /// [`super::msg::node_counters`]).
    pub async fn node_totals(self: &Rc<Self>) -> (Metrics, Stats) {
        let mut totals = vec![Counters.answer(self)];
        if self.shards > 1 {
            let (req, mut waiter) = self.replies.register(self.shards - 1);
            for to in self.other_shards() {
                self.mesh.send(
                    to,
                    ShardMsg::Collect {
                        req,
                        question: question(Counters),
                        after: Mark::none(),
                    },
                );
            }
            let replies = match or_timeout(&mut waiter, ROUTE_ACK_DEADLINE).await {
                Some(others) => others,
                None => waiter.take_partial(),
            };
            totals.extend(answers::<Counters>(replies));
        }
        super::msg::node_counters(totals)
    }

    /// The client ids of this shard that `filter` selects and `keep` accepts: the first
    /// `window` in client-id order, and how many there are. No row is built here.
    fn selected(
        &self,
        filter: &ClientFilter,
        keep: impl Fn(&Client) -> bool,
        window: usize,
    ) -> (Vec<Str>, u64) {
        let clients = self.clients.borrow();
        let ids: Vec<Str> = match filter {
            ClientFilter::All => clients
                .iter()
                .filter(|(_, c)| keep(c))
                .map(|(k, _)| k.clone())
                .collect(),
            ClientFilter::ClientId(id) => clients
                .get(id.as_str())
                .filter(|c| keep(c))
                .map(|_| vec![Str::from(id.as_str())])
                .unwrap_or_default(),
            ClientFilter::Username(u) => clients
                .iter()
                .filter(|(_, c)| c.username.as_deref() == Some(u.as_str()) && keep(c))
                .map(|(k, _)| k.clone())
                .collect(),
        };
        let count = ids.len() as u64;
        (first_in_order(ids, window), count)
    }

    fn connection_row(&self, client_id: &str) -> Option<ConnectionInfo> {
        let clients = self.clients.borrow();
        let c = clients.get(client_id)?;
        let link = c.link.as_ref()?;
        let k = &link.counters;
        let peer = c.peer?;
        Some(ConnectionInfo {
            clean_start: c.session.info().clean_start,
            client_id: client_id.to_string(),
            conn_mod: "emqx_connection".into(),
            connected_at: datetime(
                std::time::UNIX_EPOCH + std::time::Duration::from_millis(c.connected_at_ms),
            ),
            heap_size: link.pending() as u64,
            ipaddress: peer.ip().to_string(),
            is_bridge: false,
            keepalive: u64::from(c.keep_alive),
            mailbox_len: c.session.info().mqueue_len as u64,
            node: self.node.clone(),
            peercert: "nossl".into(),
            port: peer.port(),
            proto_name: proto_name(c.protocol).into(),
            proto_ver: c.protocol.level(),
            recv_cnt: k.recv_cnt.get(),
            recv_msg: k.recv_msg.get(),
            recv_oct: k.recv_oct.get(),
            recv_pkt: k.recv_pkt.get(),
            reductions: k.recv_pkt.get() + k.send_pkt.get(),
            send_cnt: k.send_cnt.get(),
            send_msg: k.send_msg.get(),
            send_oct: k.send_oct.get(),
            send_pend: link.pending() as u64,
            send_pkt: k.send_pkt.get(),
            username: username(c),
            zone: "external".into(),
        })
    }

    fn session_row(&self, client_id: &str) -> Option<SessionInfo> {
        let clients = self.clients.borrow();
        let c = clients.get(client_id)?;
        let info = c.session.info();
        let created = SystemTime::now() - Instant::now().saturating_duration_since(info.created_at);
        Some(SessionInfo {
            awaiting_rel_len: info.awaiting_rel_len as u64,
            binding: "local".into(),
            clean_start: info.clean_start,
            client_id: client_id.to_string(),
            created_at: datetime(created),
            deliver_msg: info.deliver_msg,
            enqueue_msg: info.enqueue_msg,
            expiry_interval: info.expiry.as_secs(),
            // The bytes the session holds for its client: its queued messages.
            heap_size: c.session.queued_bytes() as u64,
            inflight_len: info.inflight_len as u64,
            mailbox_len: info.mqueue_len as u64,
            max_awaiting_rel: info.max_awaiting_rel as u64,
            max_inflight: info.max_inflight as u64,
            max_mqueue: info.max_mqueue as u64,
            max_subscriptions: info.max_subscriptions as u64,
            mqueue_dropped: info.mqueue_dropped,
            mqueue_len: info.mqueue_len as u64,
            node: self.node.clone(),
            reductions: c
                .link
                .as_ref()
                .map(|l| l.counters.recv_pkt.get() + l.counters.send_pkt.get())
                .unwrap_or(0),
            subscriptions_count: info.subscriptions_count as u64,
            username: username(c),
        })
    }

    /// Subscribes a session as if it had sent SUBSCRIBE, without a SUBACK to the client.
    fn api_subscribe(
        self: &Rc<Self>,
        client_id: &str,
        filter: &str,
        qos: u8,
    ) -> Result<(), ApiError> {
        let qos =
            QoS::from_u8(qos).ok_or_else(|| ApiError::new(ErrorCode::ParameterType, "bad_qos"))?;
        let packet = Packet::Subscribe(Subscribe {
            packet_id: 1,
            filters: vec![(
                Str::from(filter),
                SubOptions {
                    qos,
                    ..SubOptions::default()
                },
            )],
            properties: Default::default(),
        });
        let actions = self.api_session_call(client_id, packet)?;
        for action in actions {
            if let crate::session::Action::Subscribe { filters, .. } = action {
                if filters.iter().any(|(_, r)| r.is_err()) {
                    return Err(ApiError::new(ErrorCode::BadTopic, "bad_topic"));
                }
                self.subscribe_silently(&Str::from(client_id), filters);
            }
        }
        Ok(())
    }

    fn api_unsubscribe(self: &Rc<Self>, client_id: &str, filter: &str) -> Result<(), ApiError> {
        let packet = Packet::Unsubscribe(Unsubscribe {
            packet_id: 1,
            filters: vec![Str::from(filter)],
            properties: Default::default(),
        });
        for action in self.api_session_call(client_id, packet)? {
            if let crate::session::Action::Unsubscribe { filters, .. } = action {
                for (f, _) in filters {
                    self.unsubscribe_one(&Str::from(client_id), &f);
                }
            }
        }
        Ok(())
    }

    /// Feeds a synthetic packet to a session, online or not, and returns its actions.
    fn api_session_call(
        &self,
        client_id: &str,
        packet: Packet,
    ) -> Result<Vec<crate::session::Action>, ApiError> {
        let mut clients = self.clients.borrow_mut();
        let c = clients
            .get_mut(client_id)
            .ok_or_else(|| ApiError::new(ErrorCode::ClientNotOnline, "session_not_found"))?;
        let mut actions = Vec::new();
        let mut metrics = crate::metrics::Metrics::default(); // API calls are not client traffic
        c.session
            .handle_api(packet, Instant::now(), &mut metrics, &mut actions);
        self.journal_session(&Str::from(client_id), c);
        Ok(actions)
    }
}

fn username(c: &Client) -> String {
    c.username
        .as_ref()
        .map(|u| u.to_string())
        .unwrap_or_else(|| "undefined".into())
}

fn proto_name(p: ProtocolVersion) -> &'static str {
    if p == ProtocolVersion::V31 {
        "MQIsdp"
    } else {
        "MQTT"
    }
}

/// Local time as EMQ X prints it: "YYYY-MM-DD HH:MM:SS".
pub fn datetime(t: SystemTime) -> String {
    chrono::DateTime::<chrono::Local>::from(t)
        .format("%Y-%m-%d %H:%M:%S")
        .to_string()
}

/// The `window` smallest of `items`, in order (all of them, sorted, when there are fewer):
/// linear in `items` plus a sort of the window, so a page of a large list sorts only itself.
pub fn first_in_order<T: Ord>(mut items: Vec<T>, window: usize) -> Vec<T> {
    if window == 0 {
        return Vec::new();
    }
    if items.len() > window {
        items.select_nth_unstable(window - 1);
        items.truncate(window);
    }
    items.sort_unstable();
    items
}

/// This shard's rule engine counters: per rule id, its matches and its actions' outcomes.
pub struct RuleCounts;

impl ShardQuery for RuleCounts {
    type Reply = Vec<(String, super::rule_state::RuleCount)>;
    fn answer(self, shard: &Rc<Shard>) -> Self::Reply {
        shard.rule_engine.counts()
    }
}

#[cfg(test)]
mod tests {
    use super::first_in_order;

    #[test]
    fn the_first_window_in_order_whatever_the_input_order() {
        let items = vec![9, 3, 7, 1, 8, 2, 6];
        assert_eq!(first_in_order(items.clone(), 3), vec![1, 2, 3]);
        assert_eq!(
            first_in_order(items.clone(), 100),
            vec![1, 2, 3, 6, 7, 8, 9]
        );
        assert!(first_in_order(items, 0).is_empty());
        assert!(first_in_order(Vec::<u8>::new(), 5).is_empty());
    }
}
