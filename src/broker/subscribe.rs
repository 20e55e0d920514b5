//! SUBSCRIBE and UNSUBSCRIBE on a shard: the local index, announcing new routes to the other
//! shards (marked mesh messages: each shard applies them before it routes input that arrived
//! later, so the SUBACK does not wait for answers), and the retained messages a new
//! subscription gets.
//!
//! Runs on the shard that serves the client. Must never: send SUBACK before the announcements are
//! in the mesh, or hold a borrow across an await.

use std::rc::Rc;
use std::time::Instant;

use crate::codec::{Packet, Props, Str, SubAck, SubOptions};
use crate::topic;
use shardmq_shards::rt::spawn_local;

use super::msg::ShardMsg;
use super::route::RouteChange;
use super::shard::Shard;

impl Shard {
    // ---------------------------------------------------------------- subscribe

    /// SUBSCRIBE, after the session accepted it: index the filters, wait until every shard
    /// knows the new routes, answer SUBACK, then deliver matching retained messages.
    ///
    /// The index changes at once (a PUBLISH right behind the SUBSCRIBE already matches);
    /// only the wait for the other shards, the SUBACK and the retained messages are deferred.
    pub(super) fn subscribe(
        self: &Rc<Self>,
        client_id: &Str,
        packet_id: u16,
        filters: Vec<(Str, Result<SubOptions, u8>)>,
    ) {
        self.subscribe_inner(client_id, Some(packet_id), filters)
    }

    /// A subscription made by the management API: like SUBSCRIBE, without a SUBACK.
    pub fn subscribe_silently(
        self: &Rc<Self>,
        client_id: &Str,
        filters: Vec<(Str, Result<SubOptions, u8>)>,
    ) {
        self.subscribe_inner(client_id, None, filters)
    }

    pub(super) fn subscribe_inner(
        self: &Rc<Self>,
        client_id: &Str,
        packet_id: Option<u16>,
        filters: Vec<(Str, Result<SubOptions, u8>)>,
    ) {
        let client_id = client_id.clone();
        let mut announce = Vec::new();
        let mut fresh = Vec::new();
        let mut codes = Vec::with_capacity(filters.len());
        for (filter, result) in &filters {
            match result {
                Ok(opts) => {
                    codes.push(opts.qos as u8);
                    let (real, group) = split_shared(filter);
                    if group.is_none() && !self.routes.borrow().subscribed(&client_id, real) {
                        fresh.push((Str::from(real), *opts));
                    }
                    let change = self
                        .routes
                        .borrow_mut()
                        .subscribe(&client_id, real, group, *opts);
                    if change == RouteChange::Added {
                        announce.push((Str::from(real), group.map(Str::from)));
                    }
                }
                Err(code) => codes.push(*code),
            }
        }
        // Posted: a shard applies it before it routes anything, so the SUBACK goes out
        // without waiting for the other shards, and without waking them.
        for (filter, group) in &announce {
            for to in self.other_shards() {
                self.mesh.post(
                    to,
                    ShardMsg::RouteAdd {
                        filter: filter.clone(),
                        group: group.clone(),
                    },
                );
            }
        }
        // Messages other shards routed after this SUBSCRIBE arrived, before they had the
        // routes (`recent`).
        if packet_id.is_some() && !fresh.is_empty() {
            self.catch_up(&client_id, fresh);
        }
        // What this SUBSCRIBE gets live from now on must not come again with its retained
        // messages (`retained_overlap`).
        let retained = filters.iter().any(|(f, r)| wants_retained(f, r));
        let overlap = retained.then(|| OverlapWatch::begin(self, &client_id));
        let me = self.clone();
        spawn_local(async move {
            me.finish_subscribe(client_id, packet_id, filters, codes)
                .await;
            drop(overlap);
        })
        .detach();
    }

    /// The deferred half of SUBSCRIBE: SUBACK, retained messages.
    pub(super) async fn finish_subscribe(
        self: Rc<Self>,
        client_id: Str,
        packet_id: Option<u16>,
        filters: Vec<(Str, Result<SubOptions, u8>)>,
        codes: Vec<u8>,
    ) {
        let link = self
            .clients
            .borrow()
            .get(&client_id)
            .and_then(|c| c.link.clone());
        if let (Some(link), Some(packet_id)) = (&link, packet_id) {
            let ack = Packet::SubAck(SubAck {
                packet_id,
                codes,
                properties: Props::default(),
            });
            link.send(&ack, &mut self.metrics.borrow_mut());
            // Let the connection write the SUBACK before asking other shards for retained
            // messages: waking one costs its vCPU a few tens of microseconds, which the
            // client, likely running there, would otherwise wait out.
            futures_lite::future::yield_now().await;
        }
        // Retained messages, for ordinary subscriptions only [MQTT-3.3.1-6].
        for (filter, result) in filters {
            if !wants_retained(&filter, &result) {
                continue;
            }
            let Ok(opts) = result else { continue };
            let mut msgs = self.query_retained(&filter).await;
            {
                let overlap = self.retained_overlap.borrow();
                msgs.retain(|m| !overlap.already_delivered(&client_id, m));
            }
            let mut actions = Vec::new();
            {
                let mut clients = self.clients.borrow_mut();
                let Some(c) = clients.get_mut(&client_id) else {
                    return;
                };
                let mut metrics = self.metrics.borrow_mut();
                let mut delivered = Vec::new();
                // Sent because of the subscription: RETAIN 1 whatever Retain As Published says
                // [MQTT-3.3.1-8].
                let opts = SubOptions {
                    retain_as_published: true,
                    ..opts
                };
                for mut m in msgs {
                    m.retain = true;
                    c.session
                        .deliver(&m, opts, Instant::now(), &mut metrics, &mut delivered);
                    actions.extend(delivered.drain(..).map(|a| a.with_message(&m)));
                }
            }
            self.apply(&client_id, actions);
        }
    }

    pub(super) fn unsubscribe_one(self: &Rc<Self>, client_id: &Str, filter: &str) {
        let (real, group) = split_shared(filter);
        let change = self.routes.borrow_mut().unsubscribe(client_id, real, group);
        if change == RouteChange::Removed {
            // Posted like `RouteAdd`, so that each shard applies the two in order.
            for to in self.other_shards() {
                self.mesh.post(
                    to,
                    ShardMsg::RouteDel {
                        filter: Str::from(real),
                        group: group.map(Str::from),
                    },
                );
            }
        }
    }
}

/// Whether a granted filter of a SUBSCRIBE gets retained messages: an ordinary (not shared)
/// subscription [MQTT-3.3.1-6] without Retain Handling 2 (the session turned 1 into 2 for a
/// subscription that existed).
fn wants_retained(filter: &str, result: &Result<SubOptions, u8>) -> bool {
    matches!(result, Ok(opts) if opts.retain_handling != 2 && split_shared(filter).1.is_none())
}

/// Notes live deliveries to a client while its SUBSCRIBE's retained messages are on their
/// way; stops when dropped (the task finished, or ended with the shard).
struct OverlapWatch {
    shard: Rc<Shard>,
    client_id: Str,
}

impl OverlapWatch {
    fn begin(shard: &Rc<Shard>, client_id: &Str) -> OverlapWatch {
        shard.retained_overlap.borrow_mut().begin(client_id);
        OverlapWatch {
            shard: shard.clone(),
            client_id: client_id.clone(),
        }
    }
}

impl Drop for OverlapWatch {
    fn drop(&mut self) {
        self.shard
            .retained_overlap
            .borrow_mut()
            .end(&self.client_id);
    }
}

/// `$share/g/f` → (`f`, Some(`g`)); `$queue/f` → (`f`, Some(`$queue`)); else (filter, None).
/// The session has validated the filter already.
pub fn split_shared(filter: &str) -> (&str, Option<&str>) {
    match topic::parse_shared(filter) {
        Ok(Some(s)) => (s.filter, Some(s.group)),
        _ => (filter, None),
    }
}
