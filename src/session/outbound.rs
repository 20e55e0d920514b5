//! Messages to the client: delivery into the inflight window or the queue, the client's
//! acknowledgements (PUBACK, PUBREC, PUBCOMP), draining the queue as the window frees up,
//! and redelivery (on resume, and on retry for 3.x).
//!
//! Owns: the outbound QoS flows (spec 4.3) and their ordering (4.6): messages enter the
//! window in delivery order; while anything is queued, new messages (QoS 0 too) queue behind
//! it; redelivery walks the window in send order. Pure: never does I/O and never looks at
//! the clock.

use std::collections::BTreeMap;
use std::time::Instant;

use super::inflight::{InflightEntry, InflightState};
use super::{Action, Message, Persist, Session};
use crate::codec::{Packet, ProtocolVersion, PubResp, Publish, QoS, Str, SubOptions};
use crate::metrics::{DropReason, Metrics};
use crate::topic::{matches, parse_shared};

impl Session {
    /// A message routed to this client through a subscription with granted options `sub`.
    /// Effective QoS = min(message, subscription), or max with `upgrade_qos`. The retain flag
    /// is sent as the glue set it. Online: sent now if nothing is queued and the window has
    /// room (QoS 0 needs no room), else queued. Offline: queued (QoS 0 only with
    /// `mqueue_store_qos0`, else dropped and counted).
    pub fn deliver(
        &mut self,
        msg: &Message,
        sub: SubOptions,
        now: Instant,
        m: &mut Metrics,
        out: &mut Vec<Action>,
    ) {
        // 5.0 No Local [MQTT-3.8.3-3]: never back to the publisher.
        if sub.no_local && !msg.publisher.is_empty() && msg.publisher == self.client_id {
            return;
        }
        // 5.0 Message Expiry: a copy whose interval ran out is not sent [MQTT-3.3.2-5].
        if msg.expired(now) {
            m.messages_expired += 1;
            return;
        }
        self.deliver_msg += 1;
        let qos = if self.cfg.upgrade_qos {
            msg.qos.max(sub.qos)
        } else {
            msg.qos.min(sub.qos)
        };
        // 5.0: never a packet larger than the client said it takes [MQTT-3.1.2-25]; such a
        // message is discarded for this client, as if delivered [MQTT-3.1.2-26].
        if self.max_packet_out > 0 && self.publish_len(msg, qos) > self.max_packet_out as usize {
            m.count_drop(DropReason::TooLargeForClient);
            return;
        }
        // RETAIN stays set only where the subscription asked Retain As Published (5.0); a live
        // delivery otherwise carries 0 [MQTT-3.3.1-9]. (Retained messages sent on subscribing
        // come with Retain As Published set by the caller: they keep RETAIN 1.)
        let retain = msg.retain && sub.retain_as_published;
        if qos == QoS::AtMostOnce && self.online && self.mqueue.is_empty() {
            // Straight out, nothing kept: no copy of the message (its strings and payload
            // are shared, so a copy costs an atomic increment and decrement each).
            count_sent(m, msg, QoS::AtMostOnce);
            if self.decorates(msg) {
                let mut publish = msg.to_publish(None, false);
                publish.qos = QoS::AtMostOnce;
                publish.retain = retain;
                self.decorate(&mut publish, msg, now);
                out.push(Action::Send(Packet::Publish(publish)));
            } else {
                out.push(Action::SendDelivered {
                    qos: QoS::AtMostOnce,
                    packet_id: None,
                    retain,
                });
            }
            return;
        }
        let mut msg = msg.clone();
        msg.qos = qos;
        msg.retain = retain;
        if self.persistent && self.cfg.journal && qos != QoS::AtMostOnce {
            // A durable session's QoS 1/2 copy is written down (see `persist`).
            msg.seq = self.next_seq;
            self.next_seq += 1;
        }
        if self.online && self.mqueue.is_empty() && self.window_allows(qos) {
            self.send_new(msg, now, m, out, Encode::ByCaller, Entered::Now);
        } else {
            self.enqueue(msg, m, Entered::Now);
        }
    }

    /// True when a PUBLISH of `msg` to this client carries more than the message's own
    /// properties: what is left of its expiry interval, or Subscription Identifiers (5.0).
    fn decorates(&self, msg: &Message) -> bool {
        self.protocol == ProtocolVersion::V5
            && (msg.expires_at.is_some() || !self.subscription_ids().is_empty())
    }

    /// Adds to a PUBLISH of `msg` sent at `now` what is this client's or this moment's (see
    /// [`Session::decorates`]).
    fn decorate(&self, publish: &mut Publish, msg: &Message, now: Instant) {
        decorate(publish, msg, now, self.protocol, self.subscription_ids());
    }

    /// The size of `msg` as a PUBLISH to this client at `qos` (with a packet id when `qos > 0`,
    /// the message's properties on 5.0).
    fn publish_len(&self, msg: &Message, qos: QoS) -> usize {
        let empty = crate::codec::Properties::EMPTY;
        let publish = crate::codec::PublishRef {
            dup: false,
            qos,
            retain: msg.retain,
            topic: &msg.topic,
            packet_id: (qos != QoS::AtMostOnce).then_some(1),
            properties: msg.properties.as_deref().unwrap_or(&empty),
            payload: &msg.payload,
        };
        crate::codec::publish_len(&publish, self.protocol).unwrap_or(usize::MAX)
    }

    fn window_allows(&self, qos: QoS) -> bool {
        qos == QoS::AtMostOnce || self.inflight.len() < usize::from(self.max_inflight)
    }

    fn enqueue(&mut self, msg: Message, m: &mut Metrics, entered: Entered) {
        if !self.online && msg.qos == QoS::AtMostOnce && !self.cfg.mqueue_store_qos0 {
            self.mqueue.count_drop();
            m.count_drop(DropReason::Qos0Offline);
            return;
        }
        self.enqueue_msg += 1;
        if msg.seq != 0 && entered == Entered::Now {
            self.record(Persist::Keep {
                seq: msg.seq,
                msg: msg.clone(),
                packet_id: None,
            });
        }
        if let Some(dropped) = self.mqueue.push(msg) {
            m.count_drop(DropReason::QueueFull);
            self.forget(&dropped);
        }
    }

    /// [`Session::forget`] by sequence number.
    fn forget_seq(&mut self, seq: u64) {
        if seq != 0 {
            self.record(Persist::Done { seq });
        }
    }

    /// Records that a kept message left the session (a durable session only).
    pub(super) fn forget(&mut self, msg: &Message) {
        if msg.seq != 0 {
            self.record(Persist::Done { seq: msg.seq });
        }
    }

    /// Sends a message for the first time (QoS 1/2: into the window with a new packet id).
    fn send_new(
        &mut self,
        msg: Message,
        now: Instant,
        m: &mut Metrics,
        out: &mut Vec<Action>,
        encode: Encode,
        entered: Entered,
    ) {
        let encode = match encode {
            Encode::ByCaller if self.decorates(&msg) => Encode::Here,
            e => e,
        };
        let (protocol, ids) = (self.protocol, super::subscription_ids(&self.extras));
        let send = |packet_id: Option<u16>| match encode {
            Encode::Here => {
                let mut publish = msg.to_publish(packet_id, false);
                decorate(&mut publish, &msg, now, protocol, ids);
                Action::Send(Packet::Publish(publish))
            }
            Encode::ByCaller => Action::SendDelivered {
                qos: msg.qos,
                packet_id,
                retain: msg.retain,
            },
        };
        if msg.qos == QoS::AtMostOnce {
            count_sent(m, &msg, msg.qos);
            out.push(send(None));
            return;
        }
        let inflight = &self.inflight;
        let Some(packet_id) = self.packet_ids.alloc(|id| inflight.contains(id)) else {
            // Every id is in use (only with an unlimited window): wait in the queue.
            self.enqueue(msg, m, entered);
            return;
        };
        count_sent(m, &msg, msg.qos);
        out.push(send(Some(packet_id)));
        if msg.seq != 0 {
            let seq = msg.seq;
            let op = match entered {
                Entered::Now => Persist::Keep {
                    seq,
                    msg: msg.clone(),
                    packet_id: Some(packet_id),
                },
                Entered::Before => Persist::Sent { seq, packet_id },
            };
            self.record(op);
        }
        let state = if msg.qos == QoS::AtLeastOnce {
            InflightState::WaitAck
        } else {
            InflightState::WaitRec
        };
        self.inflight.push(InflightEntry {
            packet_id,
            msg,
            state,
            sent_at: now,
            resend: false,
        });
    }

    /// Re-sends the window entries marked at resume, then moves queued messages into the
    /// window, oldest first, while it has room.
    pub(super) fn drain(&mut self, now: Instant, m: &mut Metrics, out: &mut Vec<Action>) {
        self.resend_marked(now, m, out);
        while self.online {
            match self.mqueue.front() {
                Some(front) if self.window_allows(front.qos) => {}
                _ => break,
            }
            let Some(msg) = self.mqueue.pop() else { break };
            if msg.expired(now) {
                m.messages_expired += 1;
                self.forget(&msg);
                continue;
            }
            let before = self.mqueue.len();
            self.send_new(msg, now, m, out, Encode::Here, Entered::Before);
            if self.mqueue.len() > before {
                break; // no packet id free: it went back to the queue
            }
        }
    }

    /// Re-sends the window entries `due` selects, in send order (see [`resend`]).
    pub(super) fn redeliver_inflight(
        &mut self,
        now: Instant,
        m: &mut Metrics,
        out: &mut Vec<Action>,
        due: impl Fn(&InflightEntry) -> bool,
    ) {
        for e in self.inflight.iter_mut() {
            if due(e) {
                resend(
                    e,
                    now,
                    m,
                    out,
                    self.protocol,
                    super::subscription_ids(&self.extras),
                );
            }
        }
    }

    /// Re-sends the entries marked at resume, in send order, while fewer than the window
    /// are outstanding on this connection: a 5.0 client that comes back with a smaller
    /// Receive Maximum than the messages in flight gets no more than it allows
    /// [MQTT-3.3.4-9]; the others follow as acknowledgements free the window.
    fn resend_marked(&mut self, now: Instant, m: &mut Metrics, out: &mut Vec<Action>) {
        while self.online
            && self.inflight.len() - self.inflight.to_resend() < usize::from(self.max_inflight)
        {
            let Some(e) = self.inflight.next_to_resend() else {
                break;
            };
            resend(
                e,
                now,
                m,
                out,
                self.protocol,
                super::subscription_ids(&self.extras),
            );
        }
    }

    pub(super) fn handle_puback(
        &mut self,
        r: PubResp,
        now: Instant,
        m: &mut Metrics,
        out: &mut Vec<Action>,
    ) {
        if let Some(seq) = self
            .inflight
            .remove_in_state(r.packet_id, InflightState::WaitAck)
        {
            self.forget_seq(seq);
            self.drain(now, m, out);
        } else {
            m.packets_puback_missed += 1;
        }
    }

    pub(super) fn handle_pubrec(
        &mut self,
        r: PubResp,
        now: Instant,
        m: &mut Metrics,
        out: &mut Vec<Action>,
    ) {
        let v5_refused = self.protocol == crate::codec::ProtocolVersion::V5 && r.reason >= 0x80;
        match self.inflight.get_mut(r.packet_id) {
            Some(e) if e.state == InflightState::WaitRec && v5_refused => {
                // 5.0: the client refused the message; the flow ends here [MQTT-4.3.3-4].
                let seq = e.msg.seq;
                self.inflight.remove(r.packet_id);
                self.forget_seq(seq);
                self.drain(now, m, out);
            }
            Some(e) if e.state != InflightState::WaitAck => {
                // First PUBREC, or a repeated one after our PUBREL: (re)send PUBREL.
                let first = e.state == InflightState::WaitRec;
                let seq = e.msg.seq;
                e.state = InflightState::WaitComp;
                e.sent_at = now;
                out.push(Action::Send(Packet::PubRel(PubResp::new(r.packet_id))));
                if first && seq != 0 {
                    self.record(Persist::Received { seq });
                }
            }
            _ => m.packets_pubrec_missed += 1,
        }
    }

    pub(super) fn handle_pubcomp(
        &mut self,
        r: PubResp,
        now: Instant,
        m: &mut Metrics,
        out: &mut Vec<Action>,
    ) {
        if let Some(seq) = self
            .inflight
            .remove_in_state(r.packet_id, InflightState::WaitComp)
        {
            self.forget_seq(seq);
            self.drain(now, m, out);
        } else {
            m.packets_pubcomp_missed += 1;
        }
    }
}

/// Re-sends one window entry: PUBLISH with DUP = 1 while unacknowledged, PUBREL once
/// PUBREC'd.
fn resend(
    e: &mut InflightEntry,
    now: Instant,
    m: &mut Metrics,
    out: &mut Vec<Action>,
    protocol: ProtocolVersion,
    subscription_ids: &BTreeMap<Str, u32>,
) {
    e.sent_at = now;
    match e.state {
        InflightState::WaitAck | InflightState::WaitRec => {
            count_sent(m, &e.msg, e.msg.qos);
            let mut publish = e.msg.to_publish(Some(e.packet_id), true);
            decorate(&mut publish, &e.msg, now, protocol, subscription_ids);
            out.push(Action::Send(Packet::Publish(publish)));
        }
        InflightState::WaitComp => {
            out.push(Action::Send(Packet::PubRel(PubResp::new(e.packet_id))))
        }
    }
}

/// 5.0: sets on a PUBLISH of `msg` sent at `now` what is left of the message's expiry
/// interval [MQTT-3.3.2-6] and the identifiers of the client's subscriptions that match its
/// topic [MQTT-3.3.4-3] (a shared subscription by the filter it shares).
fn decorate(
    publish: &mut Publish,
    msg: &Message,
    now: Instant,
    protocol: ProtocolVersion,
    subscription_ids: &BTreeMap<Str, u32>,
) {
    if protocol != ProtocolVersion::V5 {
        return;
    }
    if let Some(left) = msg.expiry_left(now) {
        publish.properties.message_expiry_interval = Some(left);
    }
    if subscription_ids.is_empty() {
        return;
    }
    let mut ids: Vec<u32> = subscription_ids
        .iter()
        .filter(|(filter, _)| {
            let filter = match parse_shared(filter) {
                Ok(Some(shared)) => shared.filter,
                _ => filter.as_str(),
            };
            matches(filter, &msg.topic)
        })
        .map(|(_, id)| *id)
        .collect();
    if !ids.is_empty() {
        ids.sort_unstable();
        ids.dedup();
        publish.properties.subscription_identifiers = ids;
    }
}

/// `messages/sent` and `messages/qosN/sent` for one outgoing PUBLISH ($SYS excluded, as EMQ X).
/// Whether a message [`Session::send_new`] or [`Session::enqueue`] takes is new to the session
/// (a durable session records it whole) or was queued before (only where it goes is recorded).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Entered {
    Now,
    Before,
}

/// Who encodes a PUBLISH [`Session::send_new`] sends: the session (an owned packet), or the
/// caller of [`Session::deliver`], which has the message at hand
/// ([`Action::SendDelivered`]).
#[derive(Clone, Copy)]
enum Encode {
    Here,
    ByCaller,
}

/// Counts a message going out at `qos` (the granted one, not always the published one).
fn count_sent(m: &mut Metrics, msg: &Message, qos: QoS) {
    if msg.is_sys() {
        return;
    }
    m.messages_sent += 1;
    match qos {
        QoS::AtMostOnce => m.messages_qos0_sent += 1,
        QoS::AtLeastOnce => m.messages_qos1_sent += 1,
        QoS::ExactlyOnce => m.messages_qos2_sent += 1,
    }
}
