//! What a shard answers to `Collect`: its rows and figures for the management API and
//! `$SYS`, and the API's actions on its clients (kick, clean session, subscribe, publish).
//!
//! Runs on the shard that is asked; reads its state and builds plain rows (`Send`) for the
//! management thread. Must never: walk its tables unless asked (nothing here runs on the
//! message path), or hold a borrow across a call that can re-enter the shard.

use std::rc::Rc;
use std::time::{Instant, SystemTime};

use shardmq_http::model::{ConnectionInfo, SessionInfo, SubscriptionInfo};
use shardmq_http::{ApiError, ErrorCode};

use super::msg::{ClientFilter, Query, ReplyData, ShardFigures};
use super::shard::{Client, Shard};
use crate::codec::{Packet, ProtocolVersion, QoS, Str, SubOptions, Subscribe, Unsubscribe};
use crate::session::CloseReason;

impl Shard {
    /// This shard's answer to `query`.
    pub fn collect(self: &Rc<Self>, query: Query) -> ReplyData {
        match query {
            Query::Counters => ReplyData::Counters {
                metrics: Box::new(self.metrics_now()),
                stats: self.stats(),
            },
            Query::Connections(filter, window) => {
                let (ids, count) = self.selected(&filter, |c| c.link.is_some(), window);
                let rows = ids
                    .iter()
                    .filter_map(|id| self.connection_row(id))
                    .collect();
                ReplyData::Connections(rows, count)
            }
            Query::Sessions(filter, window) => {
                let (ids, count) = self.selected(&filter, |_| true, window);
                let rows = ids.iter().filter_map(|id| self.session_row(id)).collect();
                ReplyData::Sessions(rows, count)
            }
            Query::Subscriptions(filter, window) => {
                let (ids, _) = self.selected(&filter, |_| true, usize::MAX);
                let clients = self.clients.borrow();
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
                let rows = first_in_order(keys, window)
                    .into_iter()
                    .filter_map(|(id, topic)| {
                        let opts = clients.get(&id)?.session.subscription(&topic)?;
                        Some(SubscriptionInfo {
                            client_id: id.to_string(),
                            node: self.node.clone(),
                            qos: opts.qos as u8,
                            topic: topic.to_string(),
                        })
                    })
                    .collect();
                ReplyData::Subscriptions(rows, count)
            }
            Query::Routes => {
                let routes = self.routes.borrow();
                let mut filters: Vec<String> =
                    routes.direct.iter().map(|(f, _)| f.to_string()).collect();
                for (f, groups) in routes.shared.iter() {
                    for g in groups.keys() {
                        filters.push(format!("$share/{g}/{f}"));
                    }
                }
                ReplyData::Routes(filters)
            }
            Query::Kick { client_id } => {
                let link = self
                    .clients
                    .borrow()
                    .get(client_id.as_str())
                    .and_then(|c| c.link.clone());
                ReplyData::Done(match link {
                    Some(link) => {
                        link.close(CloseReason::Kicked);
                        Ok(())
                    }
                    None => Err(ApiError::new(ErrorCode::ClientNotOnline, "not_found")),
                })
            }
            Query::CleanSession { client_id } => {
                let online = self
                    .clients
                    .borrow()
                    .get(client_id.as_str())
                    .map(|c| c.link.is_some());
                ReplyData::Done(match online {
                    None => Err(ApiError::new(ErrorCode::ClientNotOnline, "not_found")),
                    Some(true) => Err(ApiError::new(ErrorCode::ClientNotOnline, "running_session")),
                    Some(false) => {
                        self.discard_session(&Str::from(client_id.as_str()));
                        Ok(())
                    }
                })
            }
            Query::Publish(msg) => {
                self.publish(*msg);
                ReplyData::Done(Ok(()))
            }
            Query::Subscribe {
                client_id,
                filter,
                qos,
            } => ReplyData::Done(self.api_subscribe(&client_id, &filter, qos)),
            Query::Unsubscribe { client_id, filter } => {
                ReplyData::Done(self.api_unsubscribe(&client_id, &filter))
            }
            Query::ShardView => {
                let mesh = self.mesh.stats();
                let wall = self.started.elapsed().as_secs_f64().max(1e-9);
                let cpu = shardmq_shards::runtime::thread_cpu_time().as_secs_f64();
                ReplyData::Shard(Box::new(ShardFigures {
                    shard: self.id,
                    core: self.core,
                    metrics: self.metrics_now(),
                    stats: self.stats(),
                    busy_permille: ((cpu / wall) * 1000.0).min(1000.0) as u64,
                    mesh_sent: mesh.sent,
                    mesh_received: mesh.received,
                    mesh_outbox_depth: mesh.outbox_depth,
                    shutdowns: self
                        .shutdowns
                        .borrow()
                        .iter()
                        .map(|(k, v)| (k.to_string(), *v))
                        .collect(),
                }))
            }
        }
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
            connected_at: datetime(c.connected_at),
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
            expiry_interval: if info.clean_start {
                0
            } else {
                c.session.config().session_expiry.as_secs()
            },
            heap_size: 0,
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
