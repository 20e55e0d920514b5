//! Packets from the client: PUBLISH and its QoS 1/2 acknowledgements (spec 4.3), PUBREL,
//! SUBSCRIBE/UNSUBSCRIBE bookkeeping, PINGREQ, DISCONNECT, and protocol violations.
//!
//! Owns: the `Session::handle_packet` dispatch and the inbound QoS flows. Pure: never does
//! I/O and never looks at the clock. Acknowledgements of the broker's own PUBLISHes
//! (PUBACK/PUBREC/PUBCOMP) are in `outbound.rs`.

use std::time::{Duration, Instant};

use super::{Action, CloseReason, Message, Persist, Session, Violation};
use crate::codec::{
    Disconnect, Packet, ProtocolVersion, PubResp, Publish, QoS, Str, SubOptions, Subscribe,
    Unsubscribe,
};
use crate::metrics::Metrics;
use crate::topic::{deeper_than, parse_shared, valid_topic_filter, valid_topic_name};

/// 5.0 reason codes used on acknowledgements.
const RC_PACKET_ID_NOT_FOUND: u8 = 0x92;
const RC_RECEIVE_MAXIMUM_EXCEEDED: u8 = 0x93;
const RC_TOPIC_FILTER_INVALID: u8 = 0x8F;
const RC_QUOTA_EXCEEDED: u8 = 0x97;
const RC_PAYLOAD_FORMAT_INVALID: u8 = 0x99;
/// 3.x SUBACK failure.
const RC_V3_FAILURE: u8 = 0x80;
/// 5.0 DISCONNECT reason: "Disconnect with Will Message".
const RC_DISCONNECT_WITH_WILL: u8 = 0x04;

impl Session {
    pub(super) fn handle_packet(
        &mut self,
        packet: Packet,
        now: Instant,
        m: &mut Metrics,
        out: &mut Vec<Action>,
    ) {
        match packet {
            Packet::Connect(_) => self.violation(Violation::SecondConnect, now, out),
            Packet::Publish(p) => self.handle_publish(p, now, m, out),
            Packet::PubAck(r) => self.handle_puback(r, now, m, out),
            Packet::PubRec(r) => self.handle_pubrec(r, now, m, out),
            Packet::PubRel(r) => self.handle_pubrel(r, m, out),
            Packet::PubComp(r) => self.handle_pubcomp(r, now, m, out),
            Packet::Subscribe(s) => self.handle_subscribe(s, now, out),
            Packet::Unsubscribe(u) => self.handle_unsubscribe(u, now, out),
            Packet::PingReq => out.push(Action::Send(Packet::PingResp)),
            Packet::Disconnect(d) => self.handle_disconnect(d, now, out),
            Packet::Auth(_) => self.violation(Violation::AuthNotSupported, now, out),
            Packet::ConnAck(_) | Packet::SubAck(_) | Packet::UnsubAck(_) | Packet::PingResp => {
                self.violation(Violation::ServerToClientPacket, now, out)
            }
        }
    }

    fn violation(&mut self, v: Violation, now: Instant, out: &mut Vec<Action>) {
        self.close(CloseReason::ProtocolError(v), now, out);
    }

    fn is_v5(&self) -> bool {
        self.protocol == ProtocolVersion::V5
    }

    /// A 3.x-safe acknowledgement: the reason code only reaches 5.0 clients.
    fn resp(&self, packet_id: u16, reason_v5: u8) -> PubResp {
        let mut r = PubResp::new(packet_id);
        if self.is_v5() {
            r.reason = reason_v5;
        }
        r
    }

    fn handle_publish(
        &mut self,
        mut p: Publish,
        now: Instant,
        m: &mut Metrics,
        out: &mut Vec<Action>,
    ) {
        if let Some(alias) = p.properties.topic_alias {
            if let Err(v) = self.resolve_alias(alias, &mut p.topic) {
                return self.violation(v, now, out);
            }
        }
        if !valid_topic_name(&p.topic) {
            return self.violation(Violation::PublishTopicInvalid, now, out);
        }
        if deeper_than(&p.topic, self.cfg.max_topic_levels) {
            return self.violation(Violation::PublishTopicTooDeep, now, out);
        }
        if p.dup && p.qos == QoS::AtMostOnce {
            return self.violation(Violation::PublishDupOnQos0, now, out);
        }
        if p.qos > self.cfg.max_qos_allowed {
            return self.violation(Violation::PublishQosNotAllowed, now, out);
        }
        let packet_id = match (p.qos, p.packet_id) {
            (QoS::AtMostOnce, _) => 0,
            (_, Some(id)) if id != 0 => id,
            _ => return self.violation(Violation::PublishPacketIdMissing, now, out),
        };
        if self.is_v5() {
            if p.properties
                .response_topic
                .as_ref()
                .is_some_and(|t| !valid_topic_name(t))
            {
                return self.violation(Violation::ResponseTopicInvalid, now, out);
            }
            // Payload Format Indicator 1 promises UTF-8: checked, and refused when false
            // [MQTT-3.3.2-13] (only such messages pay for the check).
            if p.properties.payload_format_indicator == Some(1)
                && std::str::from_utf8(&p.payload).is_err()
            {
                m.messages_received += 1;
                let refuse = |code| self.resp(packet_id, code);
                match p.qos {
                    QoS::AtMostOnce => {
                        return self.violation(Violation::PayloadFormatInvalid, now, out)
                    }
                    QoS::AtLeastOnce => out.push(Action::Send(Packet::PubAck(refuse(
                        RC_PAYLOAD_FORMAT_INVALID,
                    )))),
                    QoS::ExactlyOnce => out.push(Action::Send(Packet::PubRec(refuse(
                        RC_PAYLOAD_FORMAT_INVALID,
                    )))),
                }
                return;
            }
        }
        // EMQ X counts every PUBLISH packet, duplicates included.
        m.messages_received += 1;
        match p.qos {
            QoS::AtMostOnce => m.messages_qos0_received += 1,
            QoS::AtLeastOnce => m.messages_qos1_received += 1,
            QoS::ExactlyOnce => m.messages_qos2_received += 1,
        }
        match p.qos {
            QoS::AtMostOnce => out.push(Action::Route(Message::from_publish(
                p,
                &self.client_id,
                now,
            ))),
            QoS::AtLeastOnce => {
                // Route first: PUBACK goes out once the message is routed (as EMQ X does).
                out.push(Action::Route(Message::from_publish(
                    p,
                    &self.client_id,
                    now,
                )));
                out.push(Action::Send(Packet::PubAck(PubResp::new(packet_id))));
            }
            QoS::ExactlyOnce => {
                if self.awaiting_rel.contains(packet_id) {
                    // A re-sent PUBLISH: acknowledge again, route nothing (exactly once).
                } else if self.awaiting_rel.is_full() {
                    m.messages_qos2_dropped += 1;
                    // 5.0: the client was told this bound as Receive Maximum and went past it:
                    // DISCONNECT 0x93. 3.x (EMQ X): drop, count, and still answer PUBREC.
                    if self.is_v5() {
                        return self.violation(Violation::ReceiveMaximumExceeded, now, out);
                    }
                    let r = self.resp(packet_id, RC_RECEIVE_MAXIMUM_EXCEEDED);
                    out.push(Action::Send(Packet::PubRec(r)));
                    return;
                } else {
                    self.awaiting_rel.insert(packet_id, now);
                    self.record(Persist::AwaitRel { packet_id });
                    out.push(Action::Route(Message::from_publish(
                        p,
                        &self.client_id,
                        now,
                    )));
                }
                out.push(Action::Send(Packet::PubRec(PubResp::new(packet_id))));
            }
        }
    }

    /// 5.0 Topic Alias: a PUBLISH with a topic name binds `alias` to it; one with an empty
    /// topic name gets the name bound to `alias` [MQTT-3.3.2-12].
    fn resolve_alias(&mut self, alias: u16, topic: &mut Str) -> Result<(), Violation> {
        if alias == 0 || alias > self.cfg.max_topic_alias || !self.is_v5() {
            return Err(Violation::TopicAliasInvalid);
        }
        if topic.is_empty() {
            *topic = self
                .extras
                .as_ref()
                .and_then(|e| e.aliases_in.get(&alias))
                .cloned()
                .ok_or(Violation::TopicAliasUnknown)?;
        } else if valid_topic_name(topic) {
            self.extras_mut().aliases_in.insert(alias, topic.clone());
        }
        Ok(())
    }

    fn handle_pubrel(&mut self, r: PubResp, m: &mut Metrics, out: &mut Vec<Action>) {
        let resp = if self.awaiting_rel.remove(r.packet_id) {
            self.record(Persist::Released {
                packet_id: r.packet_id,
            });
            PubResp::new(r.packet_id)
        } else {
            // Unknown id: complete anyway so the client can free it [MQTT-4.3.3-1 method B].
            m.packets_pubrel_missed += 1;
            self.resp(r.packet_id, RC_PACKET_ID_NOT_FOUND)
        };
        out.push(Action::Send(Packet::PubComp(resp)));
    }

    fn handle_subscribe(&mut self, s: Subscribe, now: Instant, out: &mut Vec<Action>) {
        if s.filters.is_empty() {
            return self.violation(Violation::SubscribeEmpty, now, out);
        }
        // Checked before anything changes, so the record never diverges from the indexes.
        if self.is_v5()
            && s.filters
                .iter()
                .any(|(f, o)| o.no_local && filter_kind(f) == Some(FilterKind::Shared))
        {
            return self.violation(Violation::SharedSubscriptionNoLocal, now, out);
        }
        let v5 = self.is_v5();
        let identifier = s.properties.subscription_identifiers.first().copied();
        let mut filters = Vec::with_capacity(s.filters.len());
        for (filter, requested) in s.filters {
            let existed = self.subscriptions.contains_key(&filter);
            let mut result = self.subscribe_one(&filter, requested, v5);
            if let Ok(granted) = result {
                // A subscription replaced without an identifier loses its old one.
                let id = identifier.filter(|_| v5);
                match id {
                    Some(id) => {
                        self.extras_mut()
                            .subscription_ids
                            .insert(filter.clone(), id);
                    }
                    None => {
                        if let Some(e) = &mut self.extras {
                            e.subscription_ids.remove(&filter);
                        }
                    }
                }
                self.record(Persist::Subscribe {
                    filter: filter.clone(),
                    opts: granted,
                    id: id.unwrap_or(0),
                });
            }
            // Retain Handling 1: retained messages only for a new subscription [MQTT-3.3.1-10];
            // the glue sends none for 2.
            if let Ok(granted) = &mut result {
                if granted.retain_handling == 1 && existed {
                    granted.retain_handling = 2;
                }
            }
            filters.push((filter, result));
        }
        out.push(Action::Subscribe {
            packet_id: s.packet_id,
            filters,
        });
    }

    fn subscribe_one(
        &mut self,
        filter: &Str,
        requested: SubOptions,
        v5: bool,
    ) -> Result<SubOptions, u8> {
        let inner = match parse_shared(filter) {
            Ok(Some(shared)) => shared.filter,
            _ => filter,
        };
        if filter_kind(filter).is_none() || deeper_than(inner, self.cfg.max_topic_levels) {
            return Err(if v5 {
                RC_TOPIC_FILTER_INVALID
            } else {
                RC_V3_FAILURE
            });
        }
        let max = self.cfg.max_subscriptions;
        if max > 0 && self.subscriptions.len() >= max && !self.subscriptions.contains_key(filter) {
            return Err(if v5 { RC_QUOTA_EXCEEDED } else { RC_V3_FAILURE });
        }
        let granted = SubOptions {
            qos: requested.qos.min(self.cfg.max_qos_allowed),
            ..requested
        };
        self.subscriptions.insert(filter.clone(), granted);
        Ok(granted)
    }

    fn handle_unsubscribe(&mut self, u: Unsubscribe, now: Instant, out: &mut Vec<Action>) {
        if u.filters.is_empty() {
            return self.violation(Violation::UnsubscribeEmpty, now, out);
        }
        let filters = u
            .filters
            .into_iter()
            .map(|f| {
                let existed = self.subscriptions.remove(&f).is_some();
                if let Some(e) = &mut self.extras {
                    e.subscription_ids.remove(&f);
                }
                if existed {
                    self.record(Persist::Unsubscribe { filter: f.clone() });
                }
                (f, existed)
            })
            .collect();
        out.push(Action::Unsubscribe {
            packet_id: u.packet_id,
            filters,
        });
    }

    fn handle_disconnect(&mut self, d: Disconnect, now: Instant, out: &mut Vec<Action>) {
        let keep_will = self.is_v5() && d.reason == RC_DISCONNECT_WITH_WILL;
        if self.is_v5() {
            if let Some(secs) = d.properties.session_expiry_interval {
                if secs != 0 && self.connect_expiry_zero {
                    return self.violation(Violation::SessionExpiryAtDisconnect, now, out);
                }
                self.set_session_expiry(
                    Duration::from_secs(u64::from(secs)).min(self.cfg.session_expiry),
                );
                self.record_settings();
                self.persistent = self.session_expiry_ms != 0;
            }
        }
        if keep_will {
            self.close(CloseReason::DisconnectWithWill, now, out);
        } else {
            // [MQTT-3.14.4-3]: the will is discarded without being published.
            self.will = None;
            self.close(CloseReason::Disconnect, now, out);
        }
    }
}

/// What kind of topic filter a SUBSCRIBE entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FilterKind {
    Normal,
    Shared,
}

/// `None` when the filter is invalid. Shared forms by the topic module's rules, the same
/// the routing index splits them with (a share name with NUL is refused, as `+` and `#`).
fn filter_kind(filter: &str) -> Option<FilterKind> {
    match parse_shared(filter) {
        Ok(Some(_)) => Some(FilterKind::Shared),
        Ok(None) => valid_topic_filter(filter).then_some(FilterKind::Normal),
        Err(_) => None,
    }
}
