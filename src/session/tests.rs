//! Unit tests of the session state machine: packets and deliveries in, actions out, with
//! time driven explicitly (a base `Instant` plus offsets; never the clock during a test).

use std::time::{Duration, Instant};

use bytes::Bytes;

use super::*;
use crate::codec::{
    ConnAck, Disconnect, Properties, PubResp, Publish, SubAck, Subscribe, UnsubAck, Unsubscribe,
};

const SEC: Duration = Duration::from_secs(1);

struct H {
    s: Session,
    m: Metrics,
    t0: Instant,
}

fn connect(clean: bool, keep_alive: u16) -> Connect {
    Connect {
        client_id: Str::from("c1"),
        clean_start: clean,
        keep_alive,
        will: Some(LastWill {
            topic: Str::from("will/c1"),
            payload: Bytes::from_static(b"bye"),
            ..Default::default()
        }),
        ..Default::default()
    }
}

impl H {
    fn new(cfg: SessionConfig) -> H {
        H::with(connect(false, 0), cfg)
    }

    fn with(c: Connect, cfg: SessionConfig) -> H {
        let t0 = Instant::now();
        H {
            s: Session::new(&c, cfg, t0),
            m: Metrics::default(),
            t0,
        }
    }

    fn at(&self, secs: u64) -> Instant {
        self.t0 + SEC * secs as u32
    }

    fn handle_at(&mut self, p: Packet, secs: u64) -> Vec<Action> {
        let mut out = Vec::new();
        let now = self.at(secs);
        self.s.handle(p, now, &mut self.m, &mut out);
        out
    }

    fn handle(&mut self, p: Packet) -> Vec<Action> {
        self.handle_at(p, 0)
    }

    fn deliver(&mut self, topic: &str, qos: QoS) -> Vec<Action> {
        self.deliver_sub(&Message::new(topic, "p", qos, false), sub(QoS::ExactlyOnce))
    }

    fn deliver_sub(&mut self, msg: &Message, opts: SubOptions) -> Vec<Action> {
        let mut out = Vec::new();
        self.s.deliver(msg, opts, self.t0, &mut self.m, &mut out);
        out.into_iter().map(|a| a.with_message(msg)).collect()
    }

    fn tick(&mut self, secs: u64) -> Vec<Action> {
        let mut out = Vec::new();
        let now = self.at(secs);
        self.s.tick(now, &mut self.m, &mut out);
        out
    }

    fn resume(&mut self, c: &Connect, secs: u64) -> Vec<Action> {
        let mut out = Vec::new();
        let now = self.at(secs);
        self.s.resume(c, now, &mut self.m, &mut out);
        out
    }
}

fn cfg() -> SessionConfig {
    SessionConfig::default()
}

fn sub(qos: QoS) -> SubOptions {
    SubOptions {
        qos,
        ..Default::default()
    }
}

fn publish(topic: &str, qos: QoS, id: Option<u16>) -> Packet {
    Packet::Publish(Publish {
        qos,
        topic: Str::from(topic),
        packet_id: id,
        payload: Bytes::from_static(b"hello"),
        ..Default::default()
    })
}

fn ack(id: u16) -> PubResp {
    PubResp::new(id)
}

/// The PUBLISHes sent, as (topic, packet id, qos, dup).
fn sent(out: &[Action]) -> Vec<(String, Option<u16>, QoS, bool)> {
    out.iter()
        .filter_map(|a| match a {
            Action::Send(Packet::Publish(p)) => {
                Some((p.topic.to_string(), p.packet_id, p.qos, p.dup))
            }
            _ => None,
        })
        .collect()
}

fn routed(out: &[Action]) -> usize {
    out.iter().filter(|a| matches!(a, Action::Route(_))).count()
}

fn closed(out: &[Action]) -> Option<CloseReason> {
    out.iter().find_map(|a| match a {
        Action::Close(r) => Some(*r),
        _ => None,
    })
}

// ---- inbound QoS flows (spec 4.3) ----

#[test]
fn qos0_publish_is_routed_only() {
    let mut h = H::new(cfg());
    let out = h.handle(publish("a/b", QoS::AtMostOnce, None));
    assert_eq!(out.len(), 1);
    match &out[0] {
        Action::Route(m) => {
            assert_eq!(m.topic.as_str(), "a/b");
            assert_eq!(m.publisher.as_str(), "c1");
            assert_eq!(&m.payload[..], b"hello");
        }
        a => panic!("{a:?}"),
    }
    assert_eq!((h.m.messages_received, h.m.messages_qos0_received), (1, 1));
}

#[test]
fn qos1_publish_is_routed_then_pubacked() {
    let mut h = H::new(cfg());
    let out = h.handle(publish("a", QoS::AtLeastOnce, Some(7)));
    assert!(matches!(out[0], Action::Route(_)));
    assert_eq!(out[1], Action::Send(Packet::PubAck(ack(7))));
    assert_eq!(out.len(), 2);
    assert_eq!((h.m.messages_received, h.m.messages_qos1_received), (1, 1));
}

#[test]
fn qos2_publish_is_routed_exactly_once() {
    let mut h = H::new(cfg());
    let out = h.handle(publish("a", QoS::ExactlyOnce, Some(9)));
    assert!(matches!(out[0], Action::Route(_)));
    assert_eq!(out[1], Action::Send(Packet::PubRec(ack(9))));
    // The client re-sends (DUP): PUBREC again, no second route.
    let out = h.handle(publish("a", QoS::ExactlyOnce, Some(9)));
    assert_eq!(out, vec![Action::Send(Packet::PubRec(ack(9)))]);
    assert_eq!(h.s.info().awaiting_rel_len, 1);
    let out = h.handle(Packet::PubRel(ack(9)));
    assert_eq!(out, vec![Action::Send(Packet::PubComp(ack(9)))]);
    assert_eq!(h.s.info().awaiting_rel_len, 0);
    // The id is free again: a new message with it is a new message.
    assert_eq!(
        routed(&h.handle(publish("a", QoS::ExactlyOnce, Some(9)))),
        1
    );
    // Every PUBLISH packet counts, the duplicate too (EMQ X).
    assert_eq!((h.m.messages_received, h.m.messages_qos2_received), (3, 3));
    assert_eq!(h.m.packets_pubrel_missed, 0);
}

#[test]
fn a_qos2_publish_refused_when_routed_frees_its_id() {
    let mut h = H::new(cfg());
    h.handle(publish("a", QoS::ExactlyOnce, Some(4)));
    assert_eq!(h.s.info().awaiting_rel_len, 1);
    h.s.refused_incoming(4);
    assert_eq!(h.s.info().awaiting_rel_len, 0);
    // Not a resend: routed as a new message.
    assert_eq!(
        routed(&h.handle(publish("b", QoS::ExactlyOnce, Some(4)))),
        1
    );
    // An id the session does not await changes nothing.
    h.s.refused_incoming(5);
    assert_eq!(h.s.info().awaiting_rel_len, 1);
}

#[test]
fn qos2_over_max_awaiting_rel_is_dropped_counted_and_pubreced() {
    let mut h = H::new(SessionConfig {
        max_awaiting_rel: 2,
        ..cfg()
    });
    h.handle(publish("a", QoS::ExactlyOnce, Some(1)));
    h.handle(publish("a", QoS::ExactlyOnce, Some(2)));
    let out = h.handle(publish("a", QoS::ExactlyOnce, Some(3)));
    assert_eq!(out, vec![Action::Send(Packet::PubRec(ack(3)))]);
    assert_eq!(h.m.messages_qos2_dropped, 1);
    assert_eq!(h.s.info().awaiting_rel_len, 2);
    assert!(h.s.is_online(), "dropping is not a reason to disconnect");
}

#[test]
fn qos2_over_receive_maximum_disconnects_a_v5_client_with_0x93() {
    let c = Connect {
        protocol: ProtocolVersion::V5,
        ..connect(true, 0)
    };
    let mut h = H::with(
        c,
        SessionConfig {
            max_awaiting_rel: 1,
            ..cfg()
        },
    );
    h.handle(publish("a", QoS::ExactlyOnce, Some(1)));
    // The client was told Receive Maximum 1 and sent a second before PUBREL [MQTT-3.3.4-7].
    let out = h.handle(publish("a", QoS::ExactlyOnce, Some(2)));
    let v = Violation::ReceiveMaximumExceeded;
    assert_eq!(out, vec![Action::Close(CloseReason::ProtocolError(v))]);
    assert_eq!(v.reason_code(), 0x93);
    assert_eq!(h.m.messages_qos2_dropped, 1);
}

#[test]
fn pubrel_for_unknown_id_still_gets_pubcomp_and_counts_missed() {
    let mut h = H::new(cfg());
    let out = h.handle(Packet::PubRel(ack(42)));
    assert_eq!(out, vec![Action::Send(Packet::PubComp(ack(42)))]);
    assert_eq!(h.m.packets_pubrel_missed, 1);
}

#[test]
fn awaiting_rel_expires_after_timeout_and_is_counted() {
    let mut h = H::new(SessionConfig {
        await_rel_timeout: SEC * 10,
        ..cfg()
    });
    h.handle_at(publish("a", QoS::ExactlyOnce, Some(1)), 0);
    h.handle_at(publish("a", QoS::ExactlyOnce, Some(2)), 5);
    assert_eq!(h.s.next_deadline(), Some(h.at(10)));
    assert!(h.tick(9).is_empty());
    h.tick(10);
    assert_eq!(
        (h.m.messages_qos2_expired, h.s.info().awaiting_rel_len),
        (1, 1)
    );
    assert_eq!(h.s.next_deadline(), Some(h.at(15)));
    h.tick(20);
    assert_eq!(
        (h.m.messages_qos2_expired, h.s.info().awaiting_rel_len),
        (2, 0)
    );
    assert_eq!(h.s.next_deadline(), None);
}

// ---- violations ----

#[test]
fn publish_to_wildcard_topic_closes_with_mqtt_3_3_2_2() {
    for topic in ["a/+", "a/#", "", "a\0b"] {
        let mut h = H::new(cfg());
        let out = h.handle(publish(topic, QoS::AtMostOnce, None));
        assert_eq!(
            out,
            vec![Action::Close(CloseReason::ProtocolError(
                Violation::PublishTopicInvalid
            ))],
            "{topic:?}"
        );
        assert!(!h.s.is_online());
        assert_eq!(h.m.messages_received, 0);
    }
    assert_eq!(Violation::PublishTopicInvalid.clause(), "MQTT-3.3.2-2");
    assert!(Violation::PublishTopicInvalid
        .to_string()
        .starts_with("[MQTT-3.3.2-2]"));
    assert_eq!(Violation::PublishTopicInvalid.reason_code(), 0x90);
}

#[test]
fn topics_and_filters_deeper_than_max_topic_levels_are_refused() {
    let deep = |levels: usize| vec!["l"; levels].join("/");
    let zone = SessionConfig {
        max_topic_levels: 4,
        ..cfg()
    };
    // PUBLISH: at the limit routed, past it the connection ends (5.0: 0x90).
    let mut h = H::new(zone.clone());
    assert_eq!(
        routed(&h.handle(publish(&deep(4), QoS::AtMostOnce, None))),
        1
    );
    let out = h.handle(publish(&deep(5), QoS::AtMostOnce, None));
    assert_eq!(
        out,
        vec![Action::Close(CloseReason::ProtocolError(
            Violation::PublishTopicTooDeep
        ))]
    );
    assert_eq!(Violation::PublishTopicTooDeep.reason_code(), 0x90);
    // SUBSCRIBE: refused in place; a shared filter's prefix does not count.
    let mut h = H::new(zone.clone());
    let out = h.handle(subscribe(&[
        (&deep(4), QoS::AtMostOnce),
        (&deep(5), QoS::AtMostOnce),
        (&format!("$share/g/{}", deep(4)), QoS::AtMostOnce),
        (&format!("$share/g/{}", deep(5)), QoS::AtMostOnce),
    ]));
    assert_eq!(
        sub_results(&out),
        vec![
            Ok(QoS::AtMostOnce),
            Err(0x80),
            Ok(QoS::AtMostOnce),
            Err(0x80)
        ]
    );
    let c = Connect {
        protocol: ProtocolVersion::V5,
        ..connect(true, 0)
    };
    let mut h = H::with(c, zone);
    let out = h.handle(subscribe(&[(&deep(5), QoS::AtMostOnce)]));
    assert_eq!(sub_results(&out), vec![Err(0x8F)]);
    // 0: no limit.
    let mut h = H::new(SessionConfig {
        max_topic_levels: 0,
        ..cfg()
    });
    assert_eq!(
        routed(&h.handle(publish(&deep(1000), QoS::AtMostOnce, None))),
        1
    );
}

#[test]
fn publish_above_max_qos_allowed_closes() {
    let mut h = H::new(SessionConfig {
        max_qos_allowed: QoS::AtLeastOnce,
        ..cfg()
    });
    let out = h.handle(publish("a", QoS::ExactlyOnce, Some(1)));
    assert_eq!(
        closed(&out),
        Some(CloseReason::ProtocolError(Violation::PublishQosNotAllowed))
    );
    assert_eq!(routed(&out), 0);
}

#[test]
fn publish_flag_violations_close() {
    let mut h = H::new(cfg());
    let out = h.handle(publish("a", QoS::AtLeastOnce, Some(0)));
    assert_eq!(
        closed(&out),
        Some(CloseReason::ProtocolError(
            Violation::PublishPacketIdMissing
        ))
    );
    let mut h = H::new(cfg());
    let out = h.handle(Packet::Publish(Publish {
        dup: true,
        topic: Str::from("a"),
        ..Default::default()
    }));
    assert_eq!(
        closed(&out),
        Some(CloseReason::ProtocolError(Violation::PublishDupOnQos0))
    );
}

#[test]
fn packets_a_server_never_receives_close_the_connection() {
    let cases = [
        (Packet::Connect(Box::default()), Violation::SecondConnect),
        (
            Packet::ConnAck(ConnAck::default()),
            Violation::ServerToClientPacket,
        ),
        (
            Packet::SubAck(SubAck::default()),
            Violation::ServerToClientPacket,
        ),
        (
            Packet::UnsubAck(UnsubAck::default()),
            Violation::ServerToClientPacket,
        ),
        (Packet::PingResp, Violation::ServerToClientPacket),
    ];
    for (p, v) in cases {
        let mut h = H::new(cfg());
        let out = h.handle(p);
        assert_eq!(out, vec![Action::Close(CloseReason::ProtocolError(v))]);
        assert!(CloseReason::ProtocolError(v).publishes_will());
        assert!(
            h.s.take_will().is_some(),
            "a protocol error keeps the will for the glue"
        );
    }
}

#[test]
fn after_close_packets_are_ignored() {
    let mut h = H::new(cfg());
    h.handle(Packet::PingResp);
    assert!(h.handle(publish("a", QoS::AtMostOnce, None)).is_empty());
    assert!(h.handle(Packet::PingReq).is_empty());
}

// ---- ping, disconnect, will, keepalive ----

#[test]
fn pingreq_gets_pingresp() {
    let mut h = H::new(cfg());
    assert_eq!(
        h.handle(Packet::PingReq),
        vec![Action::Send(Packet::PingResp)]
    );
}

#[test]
fn disconnect_discards_the_will() {
    let mut h = H::new(cfg());
    let out = h.handle(Packet::Disconnect(Disconnect::default()));
    assert_eq!(out, vec![Action::Close(CloseReason::Disconnect)]);
    assert!(!CloseReason::Disconnect.publishes_will());
    assert!(h.s.take_will().is_none());
    assert!(!h.s.is_online());
}

#[test]
fn v5_disconnect_with_will_keeps_it() {
    let c = Connect {
        protocol: ProtocolVersion::V5,
        ..connect(true, 0)
    };
    let mut h = H::with(c, cfg());
    let out = h.handle(Packet::Disconnect(Disconnect {
        reason: 0x04,
        ..Default::default()
    }));
    assert_eq!(out, vec![Action::Close(CloseReason::DisconnectWithWill)]);
    assert!(h.s.take_will().is_some());
}

#[test]
fn socket_loss_keeps_the_will_once() {
    let mut h = H::new(cfg());
    h.s.connection_lost(h.at(1));
    assert!(CloseReason::SocketClosed.publishes_will());
    assert!(!CloseReason::Takeover.publishes_will());
    let will = h.s.take_will().unwrap();
    assert_eq!(will.topic.as_str(), "will/c1");
    assert_eq!(
        Message::from_will(&will, h.s.client_id(), h.t0)
            .publisher
            .as_str(),
        "c1"
    );
    assert!(h.s.take_will().is_none());
}

#[test]
fn keepalive_expires_at_one_and_a_half_times_and_any_packet_refreshes_it() {
    let mut h = H::with(connect(true, 10), cfg());
    assert_eq!(h.s.next_deadline(), Some(h.at(15)));
    assert!(h.tick(14).is_empty());
    h.handle_at(publish("a", QoS::AtMostOnce, None), 14);
    assert_eq!(h.s.next_deadline(), Some(h.at(29)));
    assert!(h.tick(28).is_empty());
    assert_eq!(
        h.tick(29),
        vec![Action::Close(CloseReason::KeepaliveTimeout)]
    );
    assert!(!h.s.is_online());
    assert!(h.tick(100).is_empty(), "closes once");
    assert_eq!(
        CloseReason::KeepaliveTimeout.disconnect_reason_code(),
        Some(0x8D)
    );
}

#[test]
fn keepalive_zero_is_disabled() {
    let mut h = H::with(connect(true, 0), cfg());
    assert_eq!(h.s.next_deadline(), None);
    assert!(h.tick(1_000_000).is_empty());
    assert!(h.s.is_online());
}

// ---- outbound QoS flows ----

#[test]
fn outbound_qos1_flow_and_missed_puback() {
    let mut h = H::new(cfg());
    let out = h.deliver("t", QoS::AtLeastOnce);
    assert_eq!(
        sent(&out),
        vec![("t".into(), Some(1), QoS::AtLeastOnce, false)]
    );
    assert_eq!(h.s.inflight_state(1), Some(InflightState::WaitAck));
    assert!(h.handle(Packet::PubAck(ack(1))).is_empty());
    assert_eq!(h.s.info().inflight_len, 0);
    h.handle(Packet::PubAck(ack(1)));
    assert_eq!(h.m.packets_puback_missed, 1);
    assert_eq!((h.m.messages_sent, h.m.messages_qos1_sent), (1, 1));
}

#[test]
fn outbound_qos2_flow_and_missed_pubrec_pubcomp() {
    let mut h = H::new(cfg());
    let out = h.deliver("t", QoS::ExactlyOnce);
    assert_eq!(
        sent(&out),
        vec![("t".into(), Some(1), QoS::ExactlyOnce, false)]
    );
    assert_eq!(h.s.inflight_state(1), Some(InflightState::WaitRec));
    assert_eq!(
        h.handle(Packet::PubRec(ack(1))),
        vec![Action::Send(Packet::PubRel(ack(1)))]
    );
    assert_eq!(h.s.inflight_state(1), Some(InflightState::WaitComp));
    // A PUBACK does not complete a QoS 2 flow.
    h.handle(Packet::PubAck(ack(1)));
    assert_eq!(h.m.packets_puback_missed, 1);
    assert!(h.handle(Packet::PubComp(ack(1))).is_empty());
    assert_eq!(h.s.inflight_state(1), None);
    h.handle(Packet::PubRec(ack(5)));
    h.handle(Packet::PubComp(ack(5)));
    assert_eq!(
        (h.m.packets_pubrec_missed, h.m.packets_pubcomp_missed),
        (1, 1)
    );
    assert_eq!((h.m.messages_sent, h.m.messages_qos2_sent), (1, 1));
}

#[test]
fn retain_handling_1_asks_for_retained_messages_only_on_a_new_subscription() {
    let mut h = H::new(cfg());
    let rh1 = SubOptions {
        retain_handling: 1,
        ..sub(QoS::AtLeastOnce)
    };
    let granted = |out: &[Action]| match &out[0] {
        Action::Subscribe { filters, .. } => filters[0].1.unwrap().retain_handling,
        other => panic!("{other:?}"),
    };
    let subscribe = |h: &mut H| {
        h.handle(Packet::Subscribe(Subscribe {
            packet_id: 1,
            filters: vec![(Str::from("t/#"), rh1)],
            properties: Default::default(),
        }))
    };
    assert_eq!(
        granted(&subscribe(&mut h)),
        1,
        "new: retained messages are sent"
    );
    assert_eq!(granted(&subscribe(&mut h)), 2, "again: none are");
}

#[test]
fn effective_qos_is_the_minimum_or_the_maximum_with_upgrade_qos() {
    let mut h = H::new(cfg());
    let msg = Message::new("t", "p", QoS::ExactlyOnce, false);
    assert_eq!(
        sent(&h.deliver_sub(&msg, sub(QoS::AtMostOnce)))[0].2,
        QoS::AtMostOnce
    );
    let msg0 = Message::new("t", "p", QoS::AtMostOnce, true);
    let out = h.deliver_sub(&msg0, sub(QoS::ExactlyOnce));
    assert_eq!(sent(&out)[0].2, QoS::AtMostOnce);
    assert!(
        matches!(&out[0], Action::Send(Packet::Publish(p)) if !p.retain),
        "a live delivery carries RETAIN 0 [MQTT-3.3.1-9]"
    );
    let rap = SubOptions {
        retain_as_published: true,
        ..sub(QoS::ExactlyOnce)
    };
    let out = h.deliver_sub(&msg0, rap);
    assert!(
        matches!(&out[0], Action::Send(Packet::Publish(p)) if p.retain),
        "Retain As Published keeps the publisher's RETAIN"
    );
    let mut h = H::new(SessionConfig {
        upgrade_qos: true,
        ..cfg()
    });
    assert_eq!(
        sent(&h.deliver_sub(&msg0, sub(QoS::AtLeastOnce)))[0].2,
        QoS::AtLeastOnce
    );
}

#[test]
fn window_full_queues_and_acks_drain_in_order() {
    let mut h = H::new(SessionConfig {
        max_inflight: 2,
        ..cfg()
    });
    let mut out = Vec::new();
    for t in ["1", "2", "3", "4"] {
        out.extend(h.deliver(t, QoS::AtLeastOnce));
    }
    assert_eq!(
        sent(&out).iter().map(|s| s.0.as_str()).collect::<Vec<_>>(),
        ["1", "2"]
    );
    assert_eq!((h.s.info().inflight_len, h.s.info().mqueue_len), (2, 2));
    // QoS 0 queues behind the queued messages (order), though it needs no window room.
    assert!(sent(&h.deliver("5", QoS::AtMostOnce)).is_empty());
    let out = h.handle(Packet::PubAck(ack(2)));
    assert_eq!(
        sent(&out),
        vec![("3".into(), Some(3), QoS::AtLeastOnce, false)]
    );
    let out = h.handle(Packet::PubAck(ack(1)));
    assert_eq!(
        sent(&out),
        vec![
            ("4".into(), Some(4), QoS::AtLeastOnce, false),
            ("5".into(), None, QoS::AtMostOnce, false)
        ]
    );
    assert_eq!(h.s.info().mqueue_len, 0);
    assert_eq!(h.s.info().enqueue_msg, 3);
    assert_eq!(h.s.info().deliver_msg, 5);
}

#[test]
fn qos0_is_sent_even_when_the_window_is_full_if_nothing_is_queued() {
    let mut h = H::new(SessionConfig {
        max_inflight: 1,
        ..cfg()
    });
    h.deliver("a", QoS::AtLeastOnce);
    assert_eq!(sent(&h.deliver("b", QoS::AtMostOnce)).len(), 1);
}

#[test]
fn packet_ids_skip_ids_still_in_flight() {
    let mut h = H::new(SessionConfig {
        max_inflight: 0,
        ..cfg()
    });
    h.s.packet_ids = packet_id::PacketIds::default();
    h.deliver("a", QoS::AtLeastOnce); // id 1 stays unacknowledged
    for _ in 2..=65535u32 {
        let out = h.deliver("b", QoS::AtLeastOnce);
        let id = sent(&out)[0].1.unwrap();
        h.handle(Packet::PubAck(ack(id)));
    }
    // The counter wrapped: 1 is in use, so 2 comes next.
    assert_eq!(sent(&h.deliver("c", QoS::AtLeastOnce))[0].1, Some(2));
}

#[test]
fn queue_overflow_drops_oldest_qos0_first_and_counts() {
    let mut h = H::new(SessionConfig {
        max_inflight: 1,
        max_mqueue: 2,
        ..cfg()
    });
    h.deliver("inflight", QoS::AtLeastOnce);
    h.deliver("q1", QoS::AtLeastOnce);
    h.deliver("q0", QoS::AtMostOnce);
    h.deliver("q2", QoS::AtLeastOnce); // drops q0
    h.deliver("q3", QoS::AtLeastOnce); // drops q1
    assert_eq!(h.m.messages_dropped, 2);
    assert_eq!(h.m.dropped_queue_full, 2, "counted under their reason");
    assert_eq!(h.s.info().mqueue_dropped, 2);
    let out = h.handle(Packet::PubAck(ack(1)));
    assert_eq!(sent(&out)[0].0, "q2");
    let out = h.handle(Packet::PubAck(ack(2)));
    assert_eq!(sent(&out)[0].0, "q3");
}

#[test]
fn offline_queues_qos0_only_with_mqueue_store_qos0() {
    for store in [true, false] {
        let mut h = H::new(SessionConfig {
            mqueue_store_qos0: store,
            ..cfg()
        });
        h.s.connection_lost(h.at(1));
        assert!(h.deliver("a", QoS::AtMostOnce).is_empty());
        assert!(h.deliver("b", QoS::AtLeastOnce).is_empty());
        assert_eq!(h.s.info().mqueue_len, if store { 2 } else { 1 });
        assert_eq!(h.m.messages_dropped, if store { 0 } else { 1 });
        assert_eq!(h.m.dropped_qos0_offline, h.m.messages_dropped);
        assert_eq!(h.m.messages_sent, 0);
    }
}

#[test]
fn v5_no_local_skips_own_messages() {
    let mut h = H::new(cfg());
    let mut msg = Message::new("t", "p", QoS::AtMostOnce, false);
    msg.publisher = Str::from("c1");
    let nl = SubOptions {
        no_local: true,
        ..sub(QoS::AtMostOnce)
    };
    assert!(h.deliver_sub(&msg, nl).is_empty());
    msg.publisher = Str::from("other");
    assert_eq!(sent(&h.deliver_sub(&msg, nl)).len(), 1);
}

#[test]
fn sys_messages_are_not_counted_as_sent() {
    let mut h = H::new(cfg());
    assert_eq!(sent(&h.deliver("$SYS/brokers", QoS::AtMostOnce)).len(), 1);
    assert_eq!(h.m.messages_sent, 0);
}

// ---- redelivery: resume and retry ----

#[test]
fn resume_resends_unacked_with_dup_then_pubrel_in_order_then_drains_queue() {
    let mut h = H::new(SessionConfig {
        max_inflight: 3,
        ..cfg()
    });
    h.deliver("a", QoS::AtLeastOnce); // 1
    h.deliver("b", QoS::ExactlyOnce); // 2 -> PUBREC'd below
    h.deliver("c", QoS::ExactlyOnce); // 3
    h.handle(Packet::PubRec(ack(2)));
    h.deliver("d", QoS::AtLeastOnce); // queued
    h.s.connection_lost(h.at(1));
    assert!(!h.s.is_online() && h.s.is_persistent());
    h.deliver("e", QoS::AtLeastOnce); // queued offline
    let sent_before = h.m.messages_sent;
    let out = h.resume(&connect(false, 30), 2);
    assert_eq!(
        out,
        vec![
            Action::Send(Packet::Publish(Publish {
                dup: true,
                qos: QoS::AtLeastOnce,
                topic: Str::from("a"),
                packet_id: Some(1),
                payload: Bytes::from_static(b"p"),
                ..Default::default()
            })),
            Action::Send(Packet::PubRel(ack(2))),
            Action::Send(Packet::Publish(Publish {
                dup: true,
                qos: QoS::ExactlyOnce,
                topic: Str::from("c"),
                packet_id: Some(3),
                payload: Bytes::from_static(b"p"),
                ..Default::default()
            })),
        ]
    );
    assert_eq!(
        h.m.messages_sent - sent_before,
        2,
        "redeliveries count as sent"
    );
    assert!(h.s.is_online());
    // Retry (30 s) comes before keepalive (30 s x 1.5).
    assert_eq!(h.s.next_deadline(), Some(h.at(2 + 30)));
    // The window frees: the queue drains in order.
    let out = h.handle(Packet::PubAck(ack(1)));
    assert_eq!(
        sent(&out),
        vec![("d".into(), Some(4), QoS::AtLeastOnce, false)]
    );
    let out = h.handle(Packet::PubComp(ack(2)));
    assert_eq!(
        sent(&out),
        vec![("e".into(), Some(5), QoS::AtLeastOnce, false)]
    );
    let out = h.handle(Packet::PubRec(ack(3)));
    assert_eq!(out, vec![Action::Send(Packet::PubRel(ack(3)))]);
    assert!(h.handle(Packet::PubComp(ack(3))).is_empty());
    assert_eq!(h.s.info().mqueue_len, 0);
}

#[test]
fn resume_takes_the_new_will() {
    let mut h = H::new(cfg());
    h.s.connection_lost(h.at(1));
    let c = Connect {
        will: None,
        ..connect(false, 0)
    };
    h.resume(&c, 2);
    assert!(h.s.take_will().is_none());
}

#[test]
fn retry_resends_after_retry_interval_with_dup() {
    let mut h = H::new(SessionConfig {
        retry_interval: SEC * 20,
        ..cfg()
    });
    h.deliver("a", QoS::AtLeastOnce);
    h.deliver("b", QoS::ExactlyOnce);
    h.handle_at(Packet::PubRec(ack(2)), 10);
    assert_eq!(h.s.next_deadline(), Some(h.at(20)));
    let out = h.tick(20);
    assert_eq!(
        sent(&out),
        vec![("a".into(), Some(1), QoS::AtLeastOnce, true)]
    );
    assert_eq!(h.s.next_deadline(), Some(h.at(30)));
    assert_eq!(h.tick(30), vec![Action::Send(Packet::PubRel(ack(2)))]);
}

#[test]
fn v5_never_retries_within_a_connection() {
    let c = Connect {
        protocol: ProtocolVersion::V5,
        ..connect(true, 0)
    };
    let mut h = H::with(
        c,
        SessionConfig {
            retry_interval: SEC,
            ..cfg()
        },
    );
    h.deliver("a", QoS::AtLeastOnce);
    assert!(h.tick(100).is_empty());
    assert_eq!(h.s.next_deadline(), None);
}

#[test]
fn v5_messages_larger_than_the_clients_maximum_packet_size_are_discarded_and_counted() {
    let mut c = Connect {
        protocol: ProtocolVersion::V5,
        ..connect(true, 0)
    };
    c.properties = Properties {
        maximum_packet_size: Some(40),
        ..Default::default()
    }
    .into();
    let mut h = H::with(c, cfg());
    // "t" + 20 bytes at QoS 1: 1 + 1 + (2 + 1 + 2 + 1 + 20) = 28 bytes: sent.
    let small = Message::new("t", "x".repeat(20), QoS::AtLeastOnce, false);
    assert_eq!(sent(&h.deliver_sub(&small, sub(QoS::AtLeastOnce))).len(), 1);
    // 40 bytes of payload: over 40 in all, discarded (no packet id used, nothing queued).
    let big = Message::new("t", "x".repeat(40), QoS::AtLeastOnce, false);
    assert!(h.deliver_sub(&big, sub(QoS::AtLeastOnce)).is_empty());
    assert_eq!(h.m.dropped_too_large, 1);
    assert_eq!((h.s.info().inflight_len, h.s.queued()), (1, 0));
    // 3.1.1 has no Maximum Packet Size: the same message goes out.
    let mut v3 = H::new(cfg());
    assert_eq!(sent(&v3.deliver_sub(&big, sub(QoS::AtLeastOnce))).len(), 1);
}

#[test]
fn v5_receive_maximum_narrows_the_window_and_pubrec_error_ends_the_flow() {
    let mut c = Connect {
        protocol: ProtocolVersion::V5,
        ..connect(true, 0)
    };
    c.properties = Properties {
        receive_maximum: Some(1),
        ..Default::default()
    }
    .into();
    let mut h = H::with(c, cfg());
    h.deliver("a", QoS::ExactlyOnce);
    assert!(sent(&h.deliver("b", QoS::ExactlyOnce)).is_empty());
    assert_eq!(h.s.info().max_inflight, 1);
    let out = h.handle(Packet::PubRec(PubResp {
        reason: 0x80,
        ..ack(1)
    }));
    assert_eq!(sent(&out)[0].0, "b");
}

#[test]
fn v5_resume_with_a_smaller_receive_maximum_resends_no_more_than_it_allows() {
    // Found by the `session` fuzz target: resume re-sent the whole window, more unacknowledged
    // PUBLISHes than the new Receive Maximum allows [MQTT-3.3.4-9].
    let v5 = |receive_maximum: u16| {
        let mut c = Connect {
            protocol: ProtocolVersion::V5,
            ..connect(false, 0)
        };
        c.properties = Properties {
            receive_maximum: Some(receive_maximum),
            session_expiry_interval: Some(60),
            ..Default::default()
        }
        .into();
        c
    };
    let mut h = H::with(v5(3), cfg());
    h.deliver("a", QoS::AtLeastOnce); // 1
    h.deliver("b", QoS::ExactlyOnce); // 2, PUBREC'd below
    h.deliver("c", QoS::AtLeastOnce); // 3
    h.handle(Packet::PubRec(ack(2)));
    h.deliver("d", QoS::AtLeastOnce); // queued: the window is full
    h.s.connection_lost(h.at(1));
    let out = h.resume(&v5(1), 2);
    assert_eq!(
        sent(&out),
        vec![("a".into(), Some(1), QoS::AtLeastOnce, true)]
    );
    assert_eq!(out.len(), 1);
    // Each acknowledgement lets the next one out, in the original order, then the queue.
    assert_eq!(
        h.handle(Packet::PubAck(ack(1))),
        vec![Action::Send(Packet::PubRel(ack(2)))]
    );
    let out = h.handle(Packet::PubComp(ack(2)));
    assert_eq!(
        sent(&out),
        vec![("c".into(), Some(3), QoS::AtLeastOnce, true)]
    );
    let out = h.handle(Packet::PubAck(ack(3)));
    assert_eq!(
        sent(&out),
        vec![("d".into(), Some(4), QoS::AtLeastOnce, false)]
    );
    // A later resume with room re-sends everything still unacknowledged at once.
    h.s.connection_lost(h.at(3));
    let out = h.resume(&v5(10), 4);
    assert_eq!(
        sent(&out),
        vec![("d".into(), Some(4), QoS::AtLeastOnce, true)]
    );
}

// ---- subscriptions ----

fn subscribe(filters: &[(&str, QoS)]) -> Packet {
    Packet::Subscribe(Subscribe {
        packet_id: 5,
        filters: filters
            .iter()
            .map(|(f, q)| (Str::from(*f), sub(*q)))
            .collect(),
        ..Default::default()
    })
}

fn sub_results(out: &[Action]) -> Vec<Result<QoS, u8>> {
    match out {
        [Action::Subscribe {
            packet_id: 5,
            filters,
        }] => filters.iter().map(|(_, r)| r.map(|o| o.qos)).collect(),
        _ => panic!("{out:?}"),
    }
}

#[test]
fn subscribe_validates_grants_and_records() {
    let mut h = H::new(SessionConfig {
        max_qos_allowed: QoS::AtLeastOnce,
        ..cfg()
    });
    let out = h.handle(subscribe(&[
        ("a/+", QoS::ExactlyOnce),
        ("a/#/b", QoS::AtMostOnce),
        ("$share/g/x/#", QoS::AtMostOnce),
        ("$share//x", QoS::AtMostOnce),
        ("$share/g", QoS::AtMostOnce),
        ("$share/g+/x", QoS::AtMostOnce),
        ("$queue/y", QoS::AtLeastOnce),
        ("$queue/y/#/z", QoS::AtLeastOnce),
    ]));
    assert_eq!(
        sub_results(&out),
        vec![
            Ok(QoS::AtLeastOnce),
            Err(0x80),
            Ok(QoS::AtMostOnce),
            Err(0x80),
            Err(0x80),
            Err(0x80),
            Ok(QoS::AtLeastOnce),
            Err(0x80)
        ]
    );
    let mut subs: Vec<_> =
        h.s.subscriptions()
            .map(|(f, o)| (f.to_string(), o.qos))
            .collect();
    subs.sort();
    assert_eq!(
        subs,
        vec![
            ("$queue/y".into(), QoS::AtLeastOnce),
            ("$share/g/x/#".into(), QoS::AtMostOnce),
            ("a/+".into(), QoS::AtLeastOnce)
        ]
    );
    // Same filter again: replaced, not duplicated.
    h.handle(subscribe(&[("a/+", QoS::AtMostOnce)]));
    assert_eq!(
        h.s.subscription("a/+").map(|o| o.qos),
        Some(QoS::AtMostOnce)
    );
    assert_eq!(h.s.info().subscriptions_count, 3);
}

#[test]
fn a_share_name_with_nul_is_refused_like_the_routing_index_does() {
    // Found by the `session` fuzz target: the session granted `$share/g\0/a`, which
    // topic::parse_shared refuses, so the index filed it as a plain filter [MQTT-4.7.3-2].
    let mut h = H::new(cfg());
    let out = h.handle(subscribe(&[
        ("$share/g\0/a", QoS::AtMostOnce),
        ("$share/g/a\0", QoS::AtMostOnce),
        ("$share/g/a", QoS::AtMostOnce),
    ]));
    assert_eq!(
        sub_results(&out),
        vec![Err(0x80), Err(0x80), Ok(QoS::AtMostOnce)]
    );
    assert_eq!(h.s.info().subscriptions_count, 1);
}

#[test]
fn subscribe_respects_max_subscriptions() {
    let mut h = H::new(SessionConfig {
        max_subscriptions: 2,
        ..cfg()
    });
    let out = h.handle(subscribe(&[
        ("a", QoS::AtMostOnce),
        ("b", QoS::AtMostOnce),
        ("c", QoS::AtMostOnce),
    ]));
    assert_eq!(
        sub_results(&out),
        vec![Ok(QoS::AtMostOnce), Ok(QoS::AtMostOnce), Err(0x80)]
    );
    // Re-subscribing to an existing filter is not a new subscription.
    let out = h.handle(subscribe(&[("a", QoS::AtLeastOnce)]));
    assert_eq!(sub_results(&out), vec![Ok(QoS::AtLeastOnce)]);
}

#[test]
fn v5_subscribe_failures_use_5_0_reason_codes_and_shared_no_local_is_a_violation() {
    let c = Connect {
        protocol: ProtocolVersion::V5,
        ..connect(true, 0)
    };
    let mut h = H::with(
        c.clone(),
        SessionConfig {
            max_subscriptions: 1,
            ..cfg()
        },
    );
    let out = h.handle(subscribe(&[
        ("a/#/", QoS::AtMostOnce),
        ("a", QoS::AtMostOnce),
        ("b", QoS::AtMostOnce),
    ]));
    assert_eq!(
        sub_results(&out),
        vec![Err(0x8F), Ok(QoS::AtMostOnce), Err(0x97)]
    );
    let mut h = H::with(c, cfg());
    let nl = SubOptions {
        no_local: true,
        ..sub(QoS::AtMostOnce)
    };
    let p = Subscribe {
        packet_id: 1,
        filters: vec![
            ("a".into(), sub(QoS::AtMostOnce)),
            ("$share/g/a".into(), nl),
        ],
        ..Default::default()
    };
    let out = h.handle(Packet::Subscribe(p));
    assert_eq!(
        out,
        vec![Action::Close(CloseReason::ProtocolError(
            Violation::SharedSubscriptionNoLocal
        ))]
    );
    assert_eq!(
        h.s.info().subscriptions_count,
        0,
        "nothing recorded before the violation"
    );
}

#[test]
fn empty_subscribe_and_unsubscribe_are_violations() {
    let mut h = H::new(cfg());
    let out = h.handle(Packet::Subscribe(Subscribe::default()));
    assert_eq!(
        closed(&out),
        Some(CloseReason::ProtocolError(Violation::SubscribeEmpty))
    );
    let mut h = H::new(cfg());
    let out = h.handle(Packet::Unsubscribe(Unsubscribe::default()));
    assert_eq!(
        closed(&out),
        Some(CloseReason::ProtocolError(Violation::UnsubscribeEmpty))
    );
}

#[test]
fn unsubscribe_removes_and_reports_which_existed() {
    let mut h = H::new(cfg());
    h.handle(subscribe(&[("a", QoS::AtMostOnce), ("b", QoS::AtMostOnce)]));
    let out = h.handle(Packet::Unsubscribe(Unsubscribe {
        packet_id: 8,
        filters: vec!["a".into(), "zz".into()],
        ..Default::default()
    }));
    assert_eq!(
        out,
        vec![Action::Unsubscribe {
            packet_id: 8,
            filters: vec![("a".into(), true), ("zz".into(), false)]
        }]
    );
    assert_eq!(
        h.s.subscriptions()
            .map(|(f, _)| f.to_string())
            .collect::<Vec<_>>(),
        ["b"]
    );
}

// ---- lifetime ----

#[test]
fn persistent_session_expires_after_session_expiry_offline() {
    let mut h = H::new(SessionConfig {
        session_expiry: SEC * 60,
        ..cfg()
    });
    assert!(!h.s.expired(h.at(1000)), "online sessions never expire");
    h.s.connection_lost(h.at(10));
    h.s.connection_lost(h.at(20)); // idempotent
                                   // Its will (no delay in 3.1.1) is due at once, until the glue takes it.
    assert_eq!(h.s.next_deadline(), Some(h.at(10)));
    assert!(h.s.take_due_will(h.at(10)).is_some());
    assert_eq!(h.s.next_deadline(), Some(h.at(70)));
    assert!(!h.s.expired(h.at(69)));
    assert!(h.s.expired(h.at(70)));
}

#[test]
fn clean_session_is_not_persistent_and_expires_at_once() {
    let mut h = H::with(connect(true, 0), cfg());
    assert!(!h.s.is_persistent());
    h.s.connection_lost(h.at(1));
    assert!(h.s.expired(h.at(1)));
}

#[test]
fn v5_session_expiry_interval_is_bounded_by_the_config() {
    let mut c = Connect {
        protocol: ProtocolVersion::V5,
        ..connect(true, 0)
    };
    c.properties.session_expiry_interval = Some(u32::MAX);
    let h = H::with(
        c.clone(),
        SessionConfig {
            session_expiry: SEC * 100,
            ..cfg()
        },
    );
    assert!(h.s.is_persistent());
    assert_eq!(h.s.info().expiry, SEC * 100, "what the REST API shows");
    c.properties.session_expiry_interval = Some(300);
    assert_eq!(H::with(c.clone(), cfg()).s.info().expiry, SEC * 300);
    c.properties.session_expiry_interval = None;
    let h = H::with(c, cfg());
    assert!(!h.s.is_persistent());
    assert_eq!(h.s.info().expiry, Duration::ZERO);
}

/// Where a session is served depends on `ends_with_connection`; the session itself must agree.
#[test]
fn a_session_ends_with_its_connection_exactly_when_it_is_not_persistent() {
    let zone = |secs: u64| SessionConfig {
        session_expiry: SEC * secs as u32,
        ..cfg()
    };
    let v5 = |clean: bool, expiry: Option<u32>| {
        let mut c = Connect {
            protocol: ProtocolVersion::V5,
            ..connect(clean, 0)
        };
        c.properties.session_expiry_interval = expiry;
        c
    };
    let cases = [
        (connect(true, 0), zone(7200), true),
        (connect(false, 0), zone(7200), false),
        (connect(false, 0), zone(0), false), // 3.x: kept, however short the zone's expiry
        (v5(true, None), zone(7200), true),
        (v5(false, None), zone(7200), true), // 5.0: the expiry decides, not clean start
        (v5(true, Some(0)), zone(7200), true),
        (v5(true, Some(60)), zone(7200), false),
        (v5(false, Some(60)), zone(0), true), // the zone allows no expiry at all
    ];
    for (i, (c, z, ends)) in cases.into_iter().enumerate() {
        assert_eq!(ends_with_connection(&c, &z), ends, "case {i}");
        assert_eq!(
            self_contained(&c, &z),
            ends && c.clean_start,
            "case {i}: served anywhere only when it resumes nothing either"
        );
        let h = H::with(c, z);
        assert_eq!(h.s.is_persistent(), !ends, "case {i}");
    }
}

fn v5_connect() -> Connect {
    Connect {
        protocol: ProtocolVersion::V5,
        ..connect(true, 0)
    }
}

/// The properties of the PUBLISHes sent.
fn sent_properties(out: &[Action]) -> Vec<Properties> {
    out.iter()
        .filter_map(|a| match a {
            Action::Send(Packet::Publish(p)) => Some((*p.properties).clone()),
            _ => None,
        })
        .collect()
}

fn expiring(topic: &str, qos: QoS, secs: u32, published: Instant) -> Message {
    let mut p = match publish(topic, qos, (qos != QoS::AtMostOnce).then_some(1)) {
        Packet::Publish(p) => p,
        _ => unreachable!(),
    };
    p.properties.message_expiry_interval = Some(secs);
    Message::from_publish(p, &Str::from("pub"), published)
}

#[test]
fn v5_message_expiry_drops_stale_copies_and_sends_what_is_left_of_the_interval() {
    let mut h = H::with(
        v5_connect(),
        SessionConfig {
            max_inflight: 1,
            ..cfg()
        },
    );
    // Published 2 s before t0 with 5 s: 3 s left when it goes out at t0.
    let fresh = expiring("t", QoS::AtLeastOnce, 5, h.t0 - SEC * 2);
    let out = h.deliver_sub(&fresh, sub(QoS::AtLeastOnce));
    assert_eq!(sent_properties(&out)[0].message_expiry_interval, Some(3));
    // Queued behind the full window: one lives 1 s, one 10 s (published at t0).
    let short = expiring("short", QoS::AtLeastOnce, 1, h.t0);
    let long = expiring("long", QoS::AtLeastOnce, 10, h.t0);
    assert!(sent(&h.deliver_sub(&short, sub(QoS::AtLeastOnce))).is_empty());
    assert!(sent(&h.deliver_sub(&long, sub(QoS::AtLeastOnce))).is_empty());
    // The window frees at t0 + 4 s: "short" has expired and is skipped, "long" goes with 6 s.
    let out = h.handle_at(Packet::PubAck(ack(1)), 4);
    assert_eq!(sent(&out)[0].0, "long");
    assert_eq!(sent_properties(&out)[0].message_expiry_interval, Some(6));
    assert_eq!(h.m.messages_expired, 1);
    // Already expired when delivered: not sent, counted.
    let stale = expiring("t", QoS::AtMostOnce, 1, h.t0 - SEC * 5);
    assert!(h.deliver_sub(&stale, sub(QoS::AtMostOnce)).is_empty());
    assert_eq!(h.m.messages_expired, 2);
    // 3.1.1: nothing is counted down (the codec writes no properties for it).
    let mut v3 = H::new(cfg());
    let out = v3.deliver_sub(&fresh, sub(QoS::AtLeastOnce));
    assert_eq!(sent_properties(&out)[0].message_expiry_interval, Some(5));
}

#[test]
fn v5_subscription_identifiers_go_on_every_matching_delivery() {
    let mut h = H::with(v5_connect(), cfg());
    let subscribe = |id: Option<u32>, filter: &str, packet_id: u16| {
        let mut s = Subscribe {
            packet_id,
            filters: vec![(Str::from(filter), sub(QoS::AtLeastOnce))],
            ..Default::default()
        };
        s.properties.subscription_identifiers = id.into_iter().collect();
        Packet::Subscribe(s)
    };
    h.handle(subscribe(Some(2), "a/b", 1));
    h.handle(subscribe(Some(3), "a/#", 2));
    h.handle(subscribe(None, "x", 3));
    let ids = |h: &mut H, topic: &str| {
        let out = h.deliver(topic, QoS::AtMostOnce);
        sent_properties(&out)[0].subscription_identifiers.clone()
    };
    assert_eq!(ids(&mut h, "a/b"), vec![2, 3]);
    assert_eq!(ids(&mut h, "a/c"), vec![3]);
    assert!(ids(&mut h, "x").is_empty());
    // Subscribing again without an identifier removes it; unsubscribing too.
    h.handle(subscribe(None, "a/#", 4));
    assert_eq!(ids(&mut h, "a/b"), vec![2]);
    h.handle(Packet::Unsubscribe(Unsubscribe {
        packet_id: 5,
        filters: vec![Str::from("a/b")],
        ..Default::default()
    }));
    assert!(ids(&mut h, "a/b").is_empty());
}

fn config_with_aliases(max: u16) -> SessionConfig {
    SessionConfig {
        max_topic_alias: max,
        ..cfg()
    }
}

#[test]
fn v5_topic_aliases_bind_on_the_connection_and_unknown_or_invalid_ones_end_it() {
    let with_alias = |topic: &str, alias: u16| {
        let mut p = match publish(topic, QoS::AtMostOnce, None) {
            Packet::Publish(p) => p,
            _ => unreachable!(),
        };
        p.properties.topic_alias = Some(alias);
        Packet::Publish(p)
    };
    let routed = |out: &[Action]| -> Vec<String> {
        out.iter()
            .filter_map(|a| match a {
                Action::Route(m) => Some(m.topic.to_string()),
                _ => None,
            })
            .collect()
    };
    let config = config_with_aliases(2);
    let mut h = H::with(v5_connect(), config.clone());
    assert_eq!(routed(&h.handle(with_alias("a/b", 1))), ["a/b"]);
    assert_eq!(routed(&h.handle(with_alias("", 1))), ["a/b"]);
    // Rebinding an alias takes the new topic.
    assert_eq!(routed(&h.handle(with_alias("c", 1))), ["c"]);
    assert_eq!(routed(&h.handle(with_alias("", 1))), ["c"]);
    // A new connection starts with no aliases [MQTT-3.3.2-7].
    h.resume(&v5_connect(), 1);
    let out = h.handle(with_alias("", 1));
    assert_eq!(
        out.last(),
        Some(&Action::Close(CloseReason::ProtocolError(
            Violation::TopicAliasUnknown
        )))
    );
    // Above the maximum the server announced: Topic Alias invalid (0x94).
    let mut h = H::with(v5_connect(), config);
    let out = h.handle(with_alias("a", 3));
    let v = Violation::TopicAliasInvalid;
    assert_eq!(
        out.last(),
        Some(&Action::Close(CloseReason::ProtocolError(v)))
    );
    assert_eq!(v.reason_code(), 0x94);
}

#[test]
fn v5_disconnect_may_not_raise_a_zero_session_expiry() {
    let disconnect = |secs: u32| {
        let mut d = Disconnect::default();
        d.properties.session_expiry_interval = Some(secs);
        Packet::Disconnect(d)
    };
    let mut h = H::with(v5_connect(), cfg());
    let out = h.handle(disconnect(60));
    assert_eq!(
        out.last(),
        Some(&Action::Close(CloseReason::ProtocolError(
            Violation::SessionExpiryAtDisconnect
        )))
    );
    // Non-zero at CONNECT: DISCONNECT may change it, to 0 as well.
    let mut c = v5_connect();
    c.properties.session_expiry_interval = Some(30);
    let mut h = H::with(c, cfg());
    h.handle(disconnect(0));
    assert!(!h.s.is_persistent());
}

#[test]
fn v5_a_will_waits_for_its_delay_or_the_sessions_end_and_not_for_a_client_that_came_back() {
    let with = |delay: u32, expiry: u32| {
        let mut c = v5_connect();
        c.properties.session_expiry_interval = Some(expiry);
        if let Some(w) = c.will.as_mut() {
            let mut props = (*w.properties).clone();
            props.will_delay_interval = Some(delay);
            w.properties = props.into();
        }
        c
    };
    // Delay 3 s, session 5 s: due 3 s after the connection was lost.
    let mut h = H::with(with(3, 5), cfg());
    h.s.connection_lost(h.at(10));
    assert!(h.s.take_due_will(h.at(12)).is_none());
    assert_eq!(h.s.next_deadline(), Some(h.at(13)));
    assert!(h.s.take_due_will(h.at(13)).is_some());
    assert!(h.s.take_due_will(h.at(14)).is_none(), "published once");
    // Delay 5 s, session 2 s: due when the session ends.
    let mut h = H::with(with(5, 2), cfg());
    h.s.connection_lost(h.at(0));
    assert!(h.s.take_due_will(h.at(1)).is_none());
    assert!(h.s.take_due_will(h.at(2)).is_some());
    // The client is back before the delay: the old will is never due.
    let mut h = H::with(with(3, 60), cfg());
    h.s.connection_lost(h.at(0));
    h.resume(&with(3, 60), 1);
    assert!(h.s.take_due_will(h.at(5)).is_none());
    // 3.1.1 has no delay: due at once.
    let mut h = H::new(cfg());
    h.s.connection_lost(h.at(0));
    assert!(h.s.take_due_will(h.at(0)).is_some());
}

#[test]
fn v5_payload_format_1_must_be_utf8_and_a_response_topic_has_no_wildcards() {
    let with = |qos: QoS, payload: &'static [u8], response: Option<&str>| {
        let mut p = Publish {
            qos,
            topic: Str::from("t"),
            packet_id: (qos != QoS::AtMostOnce).then_some(7),
            payload: Bytes::from_static(payload),
            ..Default::default()
        };
        p.properties.payload_format_indicator = Some(1);
        p.properties.response_topic = response.map(Str::from);
        Packet::Publish(p)
    };
    let mut h = H::with(v5_connect(), cfg());
    // Valid UTF-8: routed and acknowledged as usual.
    let out = h.handle(with(QoS::AtLeastOnce, "été".as_bytes(), Some("re/ply")));
    assert!(matches!(out[0], Action::Route(_)));
    // Not UTF-8: refused with 0x99, not routed.
    let out = h.handle(with(QoS::AtLeastOnce, b"\xff\xfe", None));
    assert_eq!(
        out,
        vec![Action::Send(Packet::PubAck(PubResp {
            reason: 0x99,
            ..ack(7)
        }))]
    );
    let out = h.handle(with(QoS::ExactlyOnce, b"\xff", None));
    assert!(matches!(&out[..], [Action::Send(Packet::PubRec(r))] if r.reason == 0x99));
    // QoS 0 has no acknowledgement: DISCONNECT 0x99.
    let out = h.handle(with(QoS::AtMostOnce, b"\xff", None));
    let v = Violation::PayloadFormatInvalid;
    assert_eq!(
        out.last(),
        Some(&Action::Close(CloseReason::ProtocolError(v)))
    );
    assert_eq!(v.reason_code(), 0x99);
    // A Response Topic with a wildcard: protocol error.
    let mut h = H::with(v5_connect(), cfg());
    let out = h.handle(with(QoS::AtLeastOnce, b"ok", Some("re/#")));
    assert_eq!(
        out.last(),
        Some(&Action::Close(CloseReason::ProtocolError(
            Violation::ResponseTopicInvalid
        )))
    );
}

#[test]
fn a_durable_session_records_each_change_and_what_it_wrote_down_restores_it() {
    let mut h = H::new(SessionConfig {
        max_inflight: 1,
        ..cfg()
    });
    h.handle(Packet::Subscribe(Subscribe {
        packet_id: 1,
        filters: vec![(Str::from("t"), sub(QoS::AtLeastOnce))],
        ..Default::default()
    }));
    h.deliver("t", QoS::AtLeastOnce); // sent, id 1
    h.deliver("t", QoS::AtLeastOnce); // queued
    h.deliver("t", QoS::AtMostOnce); // QoS 0: never recorded
    h.handle(Packet::PubAck(ack(1))); // done; the queued one goes out
    let kinds: Vec<String> =
        h.s.take_persist()
            .iter()
            .map(|op| {
                format!("{op:?}")
                    .split([' ', '{'])
                    .next()
                    .unwrap()
                    .to_string()
            })
            .collect();
    assert_eq!(kinds, ["Open", "Subscribe", "Keep", "Keep", "Done", "Sent"]);
    assert!(!h.s.has_persist());
    // What it wrote down rebuilds the same session: the message in flight comes back with
    // DUP when the client resumes.
    let down = h.s.written_down(&Str::from("c1"));
    assert_eq!(down.messages.len(), 1);
    let mut restored = Session::restore(down, cfg(), h.t0);
    let mut out = Vec::new();
    restored.resume(&connect(false, 0), h.t0, &mut h.m, &mut out);
    assert_eq!(
        sent(&out),
        vec![("t".to_string(), Some(2), QoS::AtLeastOnce, true)]
    );
    // A clean session records nothing.
    let mut clean = H::with(connect(true, 0), cfg());
    clean.deliver("t", QoS::AtLeastOnce);
    assert!(!clean.s.has_persist());
}

// ---- ordering (spec 4.6) under random acknowledgement orders and reconnects ----

#[test]
fn per_topic_order_survives_window_queue_and_redelivery() {
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    let mut rnd = move |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    for _round in 0..50 {
        let mut h = H::new(SessionConfig {
            max_inflight: 3,
            max_mqueue: 0,
            ..cfg()
        });
        let mut next_seq = [0u32; 2];
        // Per topic, the highest sequence number seen first-time (non-DUP).
        let mut last_seen = [None::<u32>; 2];
        let mut unacked: Vec<(u16, QoS)> = Vec::new();
        for _step in 0..200 {
            let mut out = Vec::new();
            match rnd(6) {
                0..=2 => {
                    let t = rnd(2) as usize;
                    let qos =
                        [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce][rnd(3) as usize];
                    let msg = Message::new(format!("t{t}"), next_seq[t].to_string(), qos, false);
                    next_seq[t] += 1;
                    h.s.deliver(&msg, sub(QoS::ExactlyOnce), h.t0, &mut h.m, &mut out);
                }
                3 | 4 if !unacked.is_empty() => {
                    let (id, qos) = unacked.remove(rnd(unacked.len() as u64) as usize);
                    if qos == QoS::AtLeastOnce {
                        h.s.handle(Packet::PubAck(ack(id)), h.t0, &mut h.m, &mut out);
                    } else {
                        h.s.handle(Packet::PubRec(ack(id)), h.t0, &mut h.m, &mut out);
                        h.s.handle(Packet::PubComp(ack(id)), h.t0, &mut h.m, &mut out);
                    }
                }
                _ => {
                    h.s.connection_lost(h.t0);
                    h.s.resume(&connect(false, 0), h.t0, &mut h.m, &mut out);
                }
            }
            for a in &out {
                if let Action::Send(Packet::Publish(p)) = a {
                    let t = usize::from(p.topic.as_bytes()[1] - b'0');
                    let seq: u32 = std::str::from_utf8(&p.payload).unwrap().parse().unwrap();
                    if p.dup {
                        continue; // a redelivery of something already seen
                    }
                    if let Some(prev) = last_seen[t] {
                        assert!(seq > prev, "topic t{t}: {seq} after {prev}");
                    }
                    last_seen[t] = Some(seq);
                    if let Some(id) = p.packet_id {
                        unacked.push((id, p.qos));
                    }
                }
            }
            assert!(h.s.info().inflight_len <= 3);
        }
    }
}

#[test]
fn close_reasons_map_to_will_and_v5_codes() {
    assert_eq!(CloseReason::Kicked.disconnect_reason_code(), Some(0x98));
    assert_eq!(CloseReason::Takeover.disconnect_reason_code(), Some(0x8E));
    assert_eq!(CloseReason::SocketClosed.disconnect_reason_code(), None);
    assert!(CloseReason::Kicked.publishes_will());
    assert!(CloseReason::DisconnectWithWill.publishes_will());
    assert_eq!(
        CloseReason::ProtocolError(Violation::SecondConnect).disconnect_reason_code(),
        Some(0x82)
    );
    assert_eq!(CloseReason::SocketClosed.as_str(), "closed");
}

#[test]
fn a_qos1_message_on_a_qos0_subscription_goes_out_at_qos0_and_counts_as_qos0() {
    let mut h = H::new(cfg());
    let msg = Message::new("t", "p", QoS::AtLeastOnce, false);
    let out = h.deliver_sub(&msg, sub(QoS::AtMostOnce));
    assert_eq!(
        sent(&out),
        vec![("t".to_string(), None, QoS::AtMostOnce, false)]
    );
    assert_eq!((h.m.messages_qos0_sent, h.m.messages_qos1_sent), (1, 0));
    // Nothing waits for an ack: a QoS 1 delivery right after uses the whole window.
    let out = h.deliver("t", QoS::AtLeastOnce);
    assert_eq!(
        sent(&out),
        vec![("t".to_string(), Some(1), QoS::AtLeastOnce, false)]
    );
    assert_eq!((h.m.messages_qos0_sent, h.m.messages_qos1_sent), (1, 1));
}
