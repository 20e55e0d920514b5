//! Routing a PUBLISH: retained storage on the topic's owner shard, the shards with
//! subscribers (from the route replica), one copy forwarded per other shard, and delivery to
//! this shard's subscribers and shared-group members.
//!
//! Runs on every shard, on the message path. Must never: allocate per subscriber beyond the
//! session's own queue, copy a payload, or hold a borrow across a call that re-enters the shard.

use std::rc::Rc;
use std::time::Instant;

use crate::codec::{QoS, Str};
use crate::home_shard;
use crate::metrics::DropReason;
use crate::session::{Action, Message};
use shardmq_shards::reply::AwaitReplies;

use super::flow::FlowKey;
use super::msg::{Forward, ReplyData, ShardMsg};
use super::race::or_timeout;
use super::route::{shards_in, ShardSet};
use super::shard::{Shard, ROUTE_ACK_DEADLINE};

/// Bytes not yet written to one connection above which QoS 0 deliveries to it are dropped,
/// unless flow control holds its publishers (then [`MAX_HELD_LINK_BACKLOG`]).
const MAX_LINK_BACKLOG: usize = 1 << 20;
/// The same bound while flow control holds the subscriber's publishers: what they sent before
/// the hold landed still arrives (a burst of forwards from a peer shard can exceed 1 MiB
/// between two turns of the subscriber's connection); past this, QoS 0 drops anyway.
const MAX_HELD_LINK_BACKLOG: usize = 16 << 20;

/// What routing a client's message came to, for its PUBACK or PUBREC.
pub(super) struct Routed {
    /// The wait for the shard that stores the message as retained, when that is another.
    pub stored: Option<AwaitReplies<ReplyData>>,
    /// Some subscription (ordinary or shared, on any shard) matched it, or it was set aside
    /// for later (`$delayed/`): 5.0 acknowledges a message that matched none with 0x10.
    pub matched: bool,
}

impl Shard {
    // ---------------------------------------------------------------- publish

    /// Routes an application message: stores it if retained, then delivers it to local
    /// subscribers and forwards one copy to each other shard with subscribers.
    pub fn publish(self: &Rc<Self>, msg: Message) {
        drop(self.publish_tracked(msg));
    }

    /// [`Shard::publish`]; also says whether any subscription matched and, when the message
    /// is retained and stored on another shard, returns the wait for that shard's
    /// acknowledgement, so that the publisher's PUBACK can wait until a new subscriber is
    /// sure to find the message.
    pub(super) fn publish_tracked(self: &Rc<Self>, msg: Message) -> Routed {
        // The only per-message cost of `emqx_delayed_publish`: a prefix check.
        if msg.topic.starts_with(super::enforce::DELAYED_PREFIX)
            && self.policy.borrow().delayed_publish
        {
            self.delay_publish(msg);
            return Routed {
                stored: None,
                matched: true,
            };
        }
        // The rule engine, for messages clients published whose topic some rule takes.
        self.hook_publish(&msg);
        // Routes other shards announced (and may have acknowledged to their subscribers)
        // before this message arrived are in the replica before it is routed; one announced
        // while it is routed learns of it (`recent`).
        let at = self.wall_now();
        self.routing_at(at);
        self.apply_posted();
        let mut stored = None;
        // Each subscriber's copy carries RETAIN 0 [MQTT-3.3.1-9] unless its subscription asked
        // Retain As Published: the session decides per subscriber.
        if msg.retain && self.policy.borrow().retainer {
            stored = self.set_retained(msg.clone());
        }
        let plan = self
            .routes
            .borrow()
            .plan(&msg.topic, |set| self.pick_shard(set));
        let targets = plan.targets();
        if targets == 0 {
            if !msg.topic.starts_with("$SYS/") {
                self.metrics
                    .borrow_mut()
                    .count_drop(DropReason::NoSubscribers);
                self.hook_dropped(&msg, "no_subscribers");
            }
            self.recent.borrow_mut().note(at, msg);
            return Routed {
                stored,
                matched: false,
            };
        }
        for shard in shards_in(targets) {
            let (to_subscribers, shared) = plan.for_shard(shard);
            if shard == self.id {
                self.deliver_local(&msg, to_subscribers, &shared, self.id);
            } else {
                let forward = Forward {
                    msg: msg.clone(),
                    to_subscribers,
                    shared,
                };
                if self.in_batch() {
                    self.batched_forwards.borrow_mut()[shard].push(forward);
                } else {
                    self.mesh.send(shard, ShardMsg::Forward(Box::new(forward)));
                }
            }
        }
        // Kept a while rather than dropped here when it went to no other shard (`recent`).
        if targets & !(1 << self.id) == 0 {
            self.recent.borrow_mut().note(at, msg);
        }
        Routed {
            stored,
            matched: true,
        }
    }

    pub(super) fn pick_shard(&self, set: ShardSet) -> Option<usize> {
        let n = set.count_ones() as u64;
        if n == 0 {
            return None;
        }
        shards_in(set).nth((self.random() % n) as usize)
    }

    /// Delivers `msg` to this shard's subscribers: every ordinary subscriber once (with the
    /// highest QoS among its matching subscriptions), and one member of each shared group.
    /// `origin` is the shard it was published on (where its publisher is served).
    pub fn deliver_local(
        self: &Rc<Self>,
        msg: &Message,
        to_subscribers: bool,
        shared: &[(Str, Str)],
        origin: usize,
    ) {
        let mut targets = std::mem::take(&mut *self.scratch.borrow_mut());
        {
            let clients = self.clients.borrow();
            self.routes.borrow_mut().recipients(
                &msg.topic,
                &msg.publisher,
                to_subscribers,
                shared,
                self.cfg.mqtt.shared_subscription_strategy,
                || self.random(),
                |id| clients.get(id).is_some_and(|c| c.link.is_some()),
                &mut targets,
            );
        }
        let now = self.now();
        let mut fed_backlogs = self.backlog_scratch.take();
        let hook_deliver = self.wants_deliver(&msg.topic);
        for (client_id, opts) in targets.drain(..) {
            let mut delivered = false;
            if opts.no_local && client_id == msg.publisher {
                continue;
            }
            let mut actions = self.take_actions();
            {
                let mut clients = self.clients.borrow_mut();
                let Some(c) = clients.get_mut(&client_id) else {
                    continue;
                };
                let mut metrics = self.metrics.borrow_mut();
                // A subscriber that does not read: QoS 0 is dropped (and counted) rather
                // than queued without bound in its socket buffer; QoS 1/2 are bounded by the
                // session's inflight window and queue.
                let unread = c.link.as_ref().is_some_and(|l| {
                    let bound = if c.backlogged() {
                        MAX_HELD_LINK_BACKLOG
                    } else {
                        MAX_LINK_BACKLOG
                    };
                    l.unwritten() > bound
                });
                if unread && (msg.qos == QoS::AtMostOnce || opts.qos == QoS::AtMostOnce) {
                    metrics.count_drop(DropReason::SlowSubscriber);
                    continue;
                }
                c.session
                    .deliver(msg, opts, now, &mut metrics, &mut actions);
                if msg.retain {
                    let mut overlap = self.retained_overlap.borrow_mut();
                    if !overlap.is_empty() {
                        overlap.delivered(&client_id, msg);
                    }
                }
                self.journal_session(&client_id, c);
                // A delivery only makes sends: write them to the link at hand rather than
                // look the client up again in `apply`.
                // Offline, nothing is written (the session queued what it keeps).
                actions.retain(|a| match (a, &c.link) {
                    (Action::Send(packet), Some(link)) => {
                        link.send(packet, &mut metrics);
                        false
                    }
                    (
                        Action::SendDelivered {
                            qos,
                            packet_id,
                            retain,
                        },
                        Some(link),
                    ) => {
                        link.send_message(msg, *qos, *packet_id, *retain, &mut metrics);
                        delivered = true;
                        false
                    }
                    (Action::SendDelivered { .. }, None) => false,
                    _ => true,
                });
                drop(metrics);
                self.note_backlog(c);
                if let Some(key) = c.backlog {
                    if !fed_backlogs.contains(&key) {
                        fed_backlogs.push(key);
                    }
                }
            }
            self.apply(&client_id, actions);
            if hook_deliver && delivered {
                self.hook_message_to(crate::rules::Event::MessageDeliver, msg, &client_id);
            }
        }
        *self.scratch.borrow_mut() = targets;
        for key in fed_backlogs.drain(..) {
            self.throttle_publisher(&msg.publisher, origin, key, now);
        }
        self.backlog_scratch.set(fed_backlogs);
    }

    /// Flow control: `publisher`, served on shard `origin`, fed a subscriber here that is
    /// backlogged in episode `key`. Pause its connection on that episode, directly when it is
    /// served here, else by asking its shard (at most once per `flow::RESIGNAL` while the
    /// episode lasts).
    fn throttle_publisher(&self, publisher: &Str, origin: usize, key: FlowKey, now: Instant) {
        if publisher.is_empty() {
            return; // the API, a will or `$SYS`: nothing to slow down
        }
        if origin == self.id {
            let link = self
                .clients
                .borrow()
                .get(publisher)
                .and_then(|c| c.link.clone());
            if let Some(link) = link {
                link.throttle(key);
            }
        } else if self.flow.signal_remote(key, publisher, origin, now) {
            self.mesh.send(
                origin,
                ShardMsg::SlowDown {
                    publisher: publisher.clone(),
                    key,
                },
            );
        }
    }

    // ---------------------------------------------------------------- retained

    pub(super) fn set_retained(self: &Rc<Self>, msg: Message) -> Option<AwaitReplies<ReplyData>> {
        let owner = home_shard(&msg.topic, self.shards);
        if owner == self.id {
            self.store_retained(msg);
            None
        } else {
            let (req, stored) = self.replies.register(1);
            self.mesh.send(
                owner,
                ShardMsg::RetainSet {
                    req,
                    msg: Box::new(msg),
                },
            );
            Some(stored)
        }
    }

    pub(super) fn store_retained(&self, msg: Message) {
        let policy = self.policy.borrow().clone();
        if policy.retainer {
            let copy = self.journal.get().map(|_| msg.clone());
            let stored = self.retained.borrow_mut().store(
                msg,
                policy.retainer_limits,
                self.shards,
                Instant::now(),
            );
            if let Some(copy) = copy {
                self.journal_retained(stored, &copy);
            }
        }
    }

    pub(super) fn retained_matching(&self, filter: &str) -> Vec<Message> {
        let policy = self.policy.borrow();
        if !policy.retainer {
            return Vec::new();
        }
        self.retained
            .borrow_mut()
            .matching(filter, policy.retainer_limits, Instant::now())
    }

    /// Retained messages matching `filter`, from their owner shard(s).
    pub(super) async fn query_retained(self: &Rc<Self>, filter: &str) -> Vec<Message> {
        let wildcard = filter.contains(['+', '#']);
        let owners: Vec<usize> = if wildcard {
            (0..self.shards).collect()
        } else {
            vec![home_shard(filter, self.shards)]
        };
        let mut found = Vec::new();
        let remote: Vec<usize> = owners.iter().copied().filter(|s| *s != self.id).collect();
        if owners.contains(&self.id) {
            found.extend(self.retained_matching(filter));
        }
        if !remote.is_empty() {
            let (req, replies) = self.replies.register(remote.len());
            for s in remote {
                self.mesh.send(
                    s,
                    ShardMsg::RetainQuery {
                        req,
                        filter: Str::from(filter),
                    },
                );
            }
            let replies = or_timeout(replies, ROUTE_ACK_DEADLINE)
                .await
                .unwrap_or_default();
            for r in replies {
                if let ReplyData::Retained(msgs) = r {
                    found.extend(msgs);
                }
            }
        }
        found.sort_by(|a, b| a.topic.cmp(&b.topic));
        found
    }
}
