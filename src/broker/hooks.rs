//! A shard's side of the rule engine: where the eight hooks fire (publish, deliver, ack and
//! drop of a message; connect, disconnect, subscribe and unsubscribe of a client), the
//! columns built for them, the effects of matching rules carried out (republish through this
//! shard's publish path, inspect as a log line, web hooks queued on this shard's
//! [`WebHooks`]), and this shard's counters per rule and per action.
//!
//! Runs on the shard that sees the event, on the message path. Every hook first asks the
//! rule snapshot whether any rule takes the event (a bit test, and one trie walk for an event
//! with a topic), so with no rule for it an event costs nothing more. Must never: build an
//! event's columns no rule asked for, run a rule while a client is borrowed (a republish
//! re-enters the publish path), wait for a web hook, or count an action twice.

use std::rc::Rc;
use std::sync::Arc;

use serde_json::{Map, Value};

use crate::codec::{Packet, QoS, Str};
use crate::rules::{self, Effect, Event, Outcome, RuleSet, Who};
use crate::session::{CloseReason, Message};

use super::shard::Shard;

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl Shard {
    /// The rule snapshot in force, when some rule may take `event` on `topic`.
    fn rules_for(&self, event: Event, topic: &str) -> Option<Arc<RuleSet>> {
        let policy = self.policy.borrow();
        policy
            .rules
            .takes(event, topic)
            .then(|| policy.rules.clone())
    }

    /// Who `client_id` (served here) is, for the columns.
    fn with_who<R>(&self, client_id: &str, f: impl FnOnce(&Who<'_>) -> R) -> R {
        let clients = self.clients.borrow();
        let c = clients.get(client_id);
        f(&Who {
            client_id,
            username: c.and_then(|c| c.username.as_deref()),
            peer: c.and_then(|c| c.peer),
        })
    }

    /// `message.publish`: a client published `msg` (only client messages fire it, so a
    /// republished message cannot feed its own rule).
    pub(super) fn hook_publish(self: &Rc<Self>, msg: &Message) {
        if msg.publisher.is_empty() {
            return;
        }
        let Some(rules) = self.rules_for(Event::MessagePublish, &msg.topic) else {
            return;
        };
        let columns = self.with_who(&msg.publisher, |who| {
            rules::message_columns(Event::MessagePublish, msg, who, None, &self.node, now_ms())
        });
        self.run_rules(&rules, Event::MessagePublish, &columns);
    }

    /// `message.dropped`: `msg` was dropped for `reason` (`no_subscribers`, ...).
    pub(super) fn hook_dropped(self: &Rc<Self>, msg: &Message, reason: &str) {
        let Some(rules) = self.rules_for(Event::MessageDropped, &msg.topic) else {
            return;
        };
        let mut columns = self.with_who(&msg.publisher, |who| {
            rules::message_columns(Event::MessageDropped, msg, who, None, &self.node, now_ms())
        });
        columns.insert("reason".into(), Value::from(reason));
        self.run_rules(&rules, Event::MessageDropped, &columns);
    }

    /// Whether `message.deliver` rules may take a message on `topic` (asked once per
    /// delivery round, before any client is borrowed).
    pub(super) fn wants_deliver(&self, topic: &str) -> bool {
        self.policy
            .borrow()
            .rules
            .takes(Event::MessageDeliver, topic)
    }

    /// `message.deliver` (or `message.acked`): `msg` was written to (or acknowledged by)
    /// `receiver`, a client served here.
    pub(super) fn hook_message_to(self: &Rc<Self>, event: Event, msg: &Message, receiver: &str) {
        let Some(rules) = self.rules_for(event, &msg.topic) else {
            return;
        };
        let from_username = self
            .clients
            .borrow()
            .get(msg.publisher.as_str())
            .and_then(|c| c.username.clone());
        let columns = self.with_who(receiver, |who| {
            rules::message_columns(
                event,
                msg,
                who,
                from_username.as_deref(),
                &self.node,
                now_ms(),
            )
        });
        self.run_rules(&rules, event, &columns);
    }

    /// `message.deliver` for a PUBLISH written from `apply` (a queued message leaving the
    /// session's queue, or one sent on resumption); duplicates are not deliveries.
    pub(super) fn hook_sent_publish(self: &Rc<Self>, packet: &Packet, receiver: &str) {
        let Packet::Publish(p) = packet else {
            return;
        };
        if p.dup || !self.wants_deliver(&p.topic) {
            return;
        }
        let msg = Message::new(p.topic.clone(), p.payload.clone(), p.qos, p.retain);
        self.hook_message_to(Event::MessageDeliver, &msg, receiver);
    }

    /// The message a PUBACK/PUBCOMP from `client_id` completes, when `message.acked` rules
    /// may take it (asked before the session forgets it).
    pub(super) fn acked_message(&self, client_id: &str, packet: &Packet) -> Option<Message> {
        if !matches!(packet, Packet::PubAck(_) | Packet::PubComp(_))
            || !self.policy.borrow().rules.wants(Event::MessageAcked)
        {
            return None;
        }
        let clients = self.clients.borrow();
        clients.get(client_id)?.session.acked_by(packet).cloned()
    }

    /// `client.connected`.
    pub(super) fn hook_connected(self: &Rc<Self>, client_id: &Str, connected: rules::Connected) {
        let Some(rules) = self.rules_for(Event::ClientConnected, "") else {
            return;
        };
        let columns = self.with_who(client_id, |who| {
            rules::connected_columns(who, &connected, &self.node, now_ms())
        });
        self.run_rules(&rules, Event::ClientConnected, &columns);
    }

    /// `client.disconnected`, with who the client was (its session may be gone already).
    pub(super) fn hook_disconnected(self: &Rc<Self>, who: &Who<'_>, reason: CloseReason) {
        let Some(rules) = self.rules_for(Event::ClientDisconnected, "") else {
            return;
        };
        let columns = rules::disconnected_columns(who, reason.as_str(), &self.node, now_ms());
        self.run_rules(&rules, Event::ClientDisconnected, &columns);
    }

    /// The filters of a SUBSCRIBE/UNSUBSCRIBE `client_id` sent, when `client.subscribe` /
    /// `client.unsubscribe` rules may take it (asked before the session consumes the packet).
    pub(super) fn subscription_event(&self, packet: &Packet) -> Option<(Event, Vec<(Str, u8)>)> {
        let (event, filters): (Event, Vec<(Str, u8)>) = match packet {
            Packet::Subscribe(s) => (
                Event::ClientSubscribe,
                s.filters
                    .iter()
                    .map(|(f, o)| (f.clone(), o.qos as u8))
                    .collect(),
            ),
            Packet::Unsubscribe(u) => (
                Event::ClientUnsubscribe,
                u.filters.iter().map(|f| (f.clone(), 0)).collect(),
            ),
            _ => return None,
        };
        let first = filters.first().map_or("", |(f, _)| f.as_str());
        self.policy
            .borrow()
            .rules
            .takes(event, first)
            .then_some((event, filters))
    }

    /// `client.subscribe` / `client.unsubscribe` with the filters [`Shard::subscription_event`] took.
    pub(super) fn hook_subscription(
        self: &Rc<Self>,
        client_id: &str,
        event: Event,
        filters: &[(Str, u8)],
    ) {
        let Some(rules) = self.rules_for(event, filters.first().map_or("", |(f, _)| f)) else {
            return;
        };
        let list: Vec<(&str, u8)> = filters.iter().map(|(f, q)| (f.as_str(), *q)).collect();
        let columns = self.with_who(client_id, |who| {
            rules::subscription_columns(event, who, &list, &self.node, now_ms())
        });
        self.run_rules(&rules, event, &columns);
    }

    /// Runs `rules` on one event and carries out what the matching ones ask.
    fn run_rules(
        self: &Rc<Self>,
        rules: &Arc<RuleSet>,
        event: Event,
        columns: &Map<String, Value>,
    ) {
        let mut out = Outcome::default();
        rules.on_event(event, columns, &mut out);
        for (target, body) in out.posts.drain(..) {
            // The plugin's posts are not rule actions: a failure is only logged.
            let queued = self.rule_engine.web.send(
                &target,
                body,
                Box::new(|ok| {
                    if !ok {
                        tracing::debug!("web hook plugin: a post failed");
                    }
                }),
            );
            if !queued {
                tracing::debug!("web hook plugin: queue full, a post dropped");
            }
        }
        if out.matched.is_empty() {
            return;
        }
        self.metrics.borrow_mut().rules_matched += out.matched.len() as u64;
        for &i in &out.matched {
            let rule = &rules.rules()[i];
            self.rule_engine.count(&rule.id, |c| c.matched += 1);
        }
        for (at, effect) in out.effects {
            let rule_id = &rules.rules()[at.rule].id;
            let done = match effect {
                Effect::Republish {
                    topic,
                    payload,
                    qos,
                    retain,
                } => {
                    let qos = QoS::from_u8(qos).unwrap_or(QoS::AtMostOnce);
                    self.publish(Message::new(
                        Str::from(topic.as_str()),
                        payload,
                        qos,
                        retain,
                    ));
                    Some(true)
                }
                Effect::Inspect { rule, selected } => {
                    tracing::info!(rule = %rule, event = event.name(), "inspect: selected {selected}");
                    Some(true)
                }
                Effect::WebHook { target: None, .. } => Some(false),
                Effect::WebHook {
                    target: Some(target),
                    body,
                } => {
                    let me = self.clone();
                    let id = rule_id.clone();
                    let action = at.action;
                    let queued = self.rule_engine.web.send(
                        &target,
                        body,
                        Box::new(move |ok| me.action_done(&id, action, ok)),
                    );
                    (!queued).then_some(false)
                }
            };
            if let Some(ok) = done {
                self.action_done(rule_id, at.action, ok);
            }
        }
    }

    /// One action of `rule` finished.
    fn action_done(&self, rule: &str, action: usize, ok: bool) {
        self.rule_engine.count_action(rule, action, ok);
        let mut m = self.metrics.borrow_mut();
        if ok {
            m.actions_success += 1;
        } else {
            m.actions_failure += 1;
        }
    }
}
