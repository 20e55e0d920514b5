//! QoS 0/1/2 flows in both directions (spec 4.3), the inflight window, and redelivery of
//! unacknowledged messages with DUP = 1 when a persistent session resumes (spec 4.4).

mod common;

use common::*;
use shardmq::codec::{Packet, PubResp, QoS};

#[test]
fn mqtt_4_3_1_qos0_is_delivered_without_packet_id_or_ack() {
    let broker = TestBroker::default_broker();
    let mut sub = broker.client(&id_on_shard("q0-sub", 0), true);
    sub.subscribe(1, &[("q0/t", QoS::ExactlyOnce)]);
    let mut publisher = broker.client(&id_on_shard("q0-pub", 1), true);
    publisher.publish0("q0/t", b"zero");
    let p = sub.recv_publish();
    assert_eq!(p.qos, QoS::AtMostOnce, "min(message qos 0, granted 2)");
    assert_eq!(p.packet_id, None);
    assert!(!p.dup);
    assert_eq!(&p.payload[..], b"zero");
    // The publisher gets no acknowledgement for QoS 0.
    publisher.expect_nothing();
}

#[test]
fn mqtt_4_3_2_qos1_puback_to_publisher_and_delivery_with_packet_id() {
    let broker = TestBroker::default_broker();
    let mut sub = broker.client(&id_on_shard("q1-sub", 1), true);
    sub.subscribe(1, &[("q1/t", QoS::AtLeastOnce)]);
    let mut publisher = broker.client(&id_on_shard("q1-pub", 0), true);
    publisher.publish1("q1/t", b"one", 42); // asserts PUBACK 42
    let p = sub.recv_publish();
    assert_eq!(p.qos, QoS::AtLeastOnce);
    let pid = p.packet_id.expect("QoS 1 PUBLISH carries a packet id");
    assert_ne!(pid, 0);
    assert!(!p.dup);
    sub.send(&Packet::PubAck(PubResp::new(pid)));
    // Acknowledged: no retry, nothing else.
    sub.expect_nothing();
}

#[test]
fn mqtt_4_3_3_qos2_publisher_flow_publish_pubrec_pubrel_pubcomp() {
    let broker = TestBroker::default_broker();
    let mut sub = broker.client(&id_on_shard("q2-sub", 0), true);
    sub.subscribe(1, &[("q2/t", QoS::ExactlyOnce)]);
    let mut publisher = broker.client(&id_on_shard("q2-pub", 1), true);

    publisher.send(&publish("q2/t", b"two", QoS::ExactlyOnce, false, Some(9)));
    match publisher.recv() {
        Packet::PubRec(r) => assert_eq!(r.packet_id, 9),
        other => panic!("expected PUBREC, got {other:?}"),
    }
    // The same PUBLISH again (DUP) before PUBREL: PUBREC again, no second delivery.
    let mut again = publish("q2/t", b"two", QoS::ExactlyOnce, false, Some(9));
    if let Packet::Publish(p) = &mut again {
        p.dup = true;
    }
    publisher.send(&again);
    match publisher.recv() {
        Packet::PubRec(r) => assert_eq!(r.packet_id, 9),
        other => panic!("expected PUBREC, got {other:?}"),
    }
    publisher.send(&Packet::PubRel(PubResp::new(9)));
    match publisher.recv() {
        Packet::PubComp(r) => assert_eq!(r.packet_id, 9),
        other => panic!("expected PUBCOMP, got {other:?}"),
    }

    // The subscriber's side: PUBLISH → PUBREC → PUBREL → PUBCOMP, exactly one message.
    let p = sub.recv_publish();
    assert_eq!(p.qos, QoS::ExactlyOnce);
    assert_eq!(&p.payload[..], b"two");
    let pid = p.packet_id.unwrap();
    sub.send(&Packet::PubRec(PubResp::new(pid)));
    match sub.recv() {
        Packet::PubRel(r) => assert_eq!(r.packet_id, pid),
        other => panic!("expected PUBREL, got {other:?}"),
    }
    sub.send(&Packet::PubComp(PubResp::new(pid)));
    sub.expect_nothing();
}

#[test]
fn mqtt_4_3_3_pubrel_for_an_unknown_id_still_gets_pubcomp() {
    let broker = TestBroker::default_broker();
    let mut c = broker.client("stray-pubrel", true);
    c.send(&Packet::PubRel(PubResp::new(77)));
    match c.recv() {
        Packet::PubComp(r) => assert_eq!(r.packet_id, 77),
        other => panic!("expected PUBCOMP, got {other:?}"),
    }
}

#[test]
fn mqtt_3_8_4_delivery_qos_is_the_minimum_of_message_and_granted_qos() {
    let broker = TestBroker::default_broker();
    let mut s0 = broker.client(&id_on_shard("min-0", 0), true);
    let mut s1 = broker.client(&id_on_shard("min-1", 1), true);
    let mut s2 = broker.client(&id_on_shard("min-2", 0), true);
    s0.subscribe(1, &[("min/t", QoS::AtMostOnce)]);
    s1.subscribe(1, &[("min/t", QoS::AtLeastOnce)]);
    s2.subscribe(1, &[("min/t", QoS::ExactlyOnce)]);
    let mut publisher = broker.client(&id_on_shard("min-pub", 1), true);
    publisher.publish2("min/t", b"m", 3);
    assert_eq!(s0.recv_publish().qos, QoS::AtMostOnce);
    assert_eq!(s1.recv_publish().qos, QoS::AtLeastOnce);
    assert_eq!(s2.recv_publish().qos, QoS::ExactlyOnce);
    publisher.publish1("min/t", b"m", 4);
    assert_eq!(s0.recv_publish().qos, QoS::AtMostOnce);
    assert_eq!(s1.recv_publish().qos, QoS::AtLeastOnce);
    assert_eq!(s2.recv_publish().qos, QoS::AtLeastOnce);
}

#[test]
fn inflight_window_holds_back_messages_until_acknowledged() {
    let broker = TestBroker::start(&["mqtt.max_inflight=2"]);
    let mut sub = broker.client(&id_on_shard("win-sub", 0), true);
    sub.subscribe(1, &[("win/t", QoS::AtLeastOnce)]);
    let mut publisher = broker.client(&id_on_shard("win-pub", 1), true);
    for i in 0..5u16 {
        publisher.publish1("win/t", format!("m{i}").as_bytes(), i + 1);
    }
    let a = sub.recv_publish();
    let b = sub.recv_publish();
    assert_eq!((&a.payload[..], &b.payload[..]), (&b"m0"[..], &b"m1"[..]));
    // The window is full: the third waits.
    sub.expect_nothing();
    sub.send(&Packet::PubAck(PubResp::new(a.packet_id.unwrap())));
    let c = sub.recv_publish();
    assert_eq!(&c.payload[..], b"m2");
    sub.expect_nothing();
    sub.send(&Packet::PubAck(PubResp::new(b.packet_id.unwrap())));
    sub.send(&Packet::PubAck(PubResp::new(c.packet_id.unwrap())));
    let d = sub.recv_publish();
    let e = sub.recv_publish();
    assert_eq!((&d.payload[..], &e.payload[..]), (&b"m3"[..], &b"m4"[..]));
    // Packet ids in the window are distinct.
    assert_ne!(d.packet_id, e.packet_id);
}

#[test]
fn mqtt_4_4_0_1_resumed_session_redelivers_unacked_publish_with_dup_and_pubrel() {
    let broker = TestBroker::default_broker();
    for shard in 0..SHARDS {
        let id = id_on_shard("redeliver", shard);
        let mut sub = broker.client(&id, false);
        sub.subscribe(1, &[("rd/1", QoS::AtLeastOnce), ("rd/2", QoS::ExactlyOnce)]);
        let mut publisher = broker.client(&id_on_shard("rd-pub", 1 - shard), true);
        publisher.publish1("rd/1", b"a", 1);
        publisher.publish2("rd/2", b"b", 2);
        publisher.publish2("rd/2", b"c", 3);
        publisher.publish1("rd/1", b"d", 4);

        let first: Vec<_> = (0..4).map(|_| sub.recv_publish()).collect();
        let payloads: Vec<&[u8]> = first.iter().map(|p| &p.payload[..]).collect();
        assert_eq!(payloads, [b"a", b"b", b"c", b"d"]);
        assert!(first.iter().all(|p| !p.dup));
        // PUBREC only "b": the broker answers PUBREL, which we leave unanswered.
        let b_id = first[1].packet_id.unwrap();
        sub.send(&Packet::PubRec(PubResp::new(b_id)));
        match sub.recv() {
            Packet::PubRel(r) => assert_eq!(r.packet_id, b_id),
            other => panic!("expected PUBREL, got {other:?}"),
        }
        sub.drop_socket();

        let (mut sub, ack) = Raw::connect(broker.addr, &id, false, 0, None);
        assert_eq!((ack.code, ack.session_present), (0, true));
        // In the original order: PUBLISH a (DUP), PUBREL b, PUBLISH c (DUP), PUBLISH d (DUP).
        for (i, orig) in first.iter().enumerate() {
            let pid = orig.packet_id.unwrap();
            match sub.recv() {
                Packet::PubRel(r) if i == 1 => assert_eq!(r.packet_id, pid),
                Packet::Publish(p) if i != 1 => {
                    assert!(p.dup, "redelivered PUBLISH has DUP = 1 [MQTT-3.3.1-1]");
                    assert_eq!(p.packet_id, Some(pid), "same packet id");
                    assert_eq!(p.payload, orig.payload);
                    assert_eq!(p.qos, orig.qos);
                }
                other => panic!("redelivery #{i}: unexpected {other:?}"),
            }
        }
        // Complete everything; nothing more comes.
        sub.send(&Packet::PubAck(PubResp::new(first[0].packet_id.unwrap())));
        sub.send(&Packet::PubComp(PubResp::new(b_id)));
        sub.send(&Packet::PubRec(PubResp::new(first[2].packet_id.unwrap())));
        match sub.recv() {
            Packet::PubRel(r) => assert_eq!(Some(r.packet_id), first[2].packet_id),
            other => panic!("expected PUBREL, got {other:?}"),
        }
        sub.send(&Packet::PubComp(PubResp::new(first[2].packet_id.unwrap())));
        sub.send(&Packet::PubAck(PubResp::new(first[3].packet_id.unwrap())));
        sub.expect_nothing();
        sub.disconnect();
    }
}

#[test]
fn qos1_and_qos2_with_rumqttc_across_shards() {
    let broker = TestBroker::default_broker();
    block_on(async {
        let (mut sub, _) = Rumq::connect(broker.addr, &id_on_shard("rq-sub", 0), true).await;
        let ack = sub.subscribe("rq/#", rumqttc::QoS::ExactlyOnce).await;
        assert_eq!(
            ack.return_codes,
            vec![rumqttc::SubscribeReasonCode::Success(
                rumqttc::QoS::ExactlyOnce
            )]
        );
        let (publisher, _) = Rumq::connect(broker.addr, &id_on_shard("rq-pub", 1), true).await;
        for i in 0..10 {
            let qos = if i % 2 == 0 {
                rumqttc::QoS::AtLeastOnce
            } else {
                rumqttc::QoS::ExactlyOnce
            };
            publisher
                .client
                .publish(format!("rq/{i}"), qos, false, vec![i as u8])
                .await
                .unwrap();
        }
        for i in 0..10u8 {
            let p = sub.next_publish().await;
            assert_eq!(p.topic, format!("rq/{i}"), "in order");
            assert_eq!(&p.payload[..], &[i]);
            let want = if i % 2 == 0 {
                rumqttc::QoS::AtLeastOnce
            } else {
                rumqttc::QoS::ExactlyOnce
            };
            assert_eq!(p.qos, want);
        }
        assert!(sub.drain_quiet().await.is_empty(), "exactly once each");
    });
}
