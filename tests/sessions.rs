//! Persistent sessions (clean session = 0, spec 3.1.2.4 and 4.1): subscriptions and
//! queued messages survive the connection, bounded by `max_mqueue`; and takeover by a
//! second connection with the same client id (spec 3.1.4-2), across shards too.

mod common;

use common::*;
use shardmq::codec::{Packet, PubResp, QoS};

#[test]
fn mqtt_3_1_2_4_offline_persistent_session_queues_qos1_and_qos2_messages() {
    let broker = TestBroker::default_broker();
    for shard in 0..SHARDS {
        let id = id_on_shard("offline", shard);
        let mut sub = broker.client(&id, false);
        sub.subscribe(
            1,
            &[("off/1", QoS::AtLeastOnce), ("off/2", QoS::ExactlyOnce)],
        );
        sub.disconnect();

        let mut publisher = broker.client(&id_on_shard("offline-pub", 1 - shard), true);
        publisher.publish1("off/1", b"one", 1);
        publisher.publish2("off/2", b"two", 2);
        publisher.publish1("off/1", b"three", 3);
        publisher.ping();

        let (mut sub, ack) = Raw::connect(broker.addr, &id, false, 0, None);
        assert_eq!((ack.code, ack.session_present), (0, true));
        let got = recv_publishes_acking(&mut sub, 3);
        let seen: Vec<(&str, &[u8], QoS)> = got
            .iter()
            .map(|p| (p.topic.as_str(), &p.payload[..], p.qos))
            .collect();
        assert_eq!(
            seen,
            [
                ("off/1", &b"one"[..], QoS::AtLeastOnce),
                ("off/2", &b"two"[..], QoS::ExactlyOnce),
                ("off/1", &b"three"[..], QoS::AtLeastOnce),
            ]
        );
        assert!(
            got.iter().all(|p| !p.dup),
            "first delivery, not a redelivery"
        );
        // Complete the QoS 2 flow, then nothing more.
        match sub.recv() {
            Packet::PubRel(r) => sub.send(&Packet::PubComp(PubResp::new(r.packet_id))),
            other => panic!("expected PUBREL, got {other:?}"),
        }
        // The subscriptions are still there after the reconnect.
        publisher.publish1("off/1", b"live", 4);
        assert_eq!(&sub.recv_publish().payload[..], b"live");
    }
}

#[test]
fn clean_session_does_not_keep_subscriptions() {
    let broker = TestBroker::default_broker();
    let id = id_on_shard("clean", 1);
    let mut sub = broker.client(&id, true);
    sub.subscribe(1, &[("cl/t", QoS::AtLeastOnce)]);
    sub.disconnect();
    let mut publisher = broker.client(&id_on_shard("clean-pub", 0), true);
    publisher.publish1("cl/t", b"lost", 1);
    let (mut sub, ack) = Raw::connect(broker.addr, &id, false, 0, None);
    assert!(!ack.session_present);
    publisher.publish1("cl/t", b"not subscribed", 2);
    sub.expect_nothing();
}

#[test]
fn offline_queue_is_bounded_by_max_mqueue_dropping_the_oldest() {
    let broker = TestBroker::start(&["mqtt.max_mqueue=5"]);
    let id = id_on_shard("bounded", 0);
    let mut sub = broker.client(&id, false);
    sub.subscribe(1, &[("bq/t", QoS::AtLeastOnce)]);
    sub.disconnect();
    let mut publisher = broker.client(&id_on_shard("bounded-pub", 1), true);
    for i in 0..8u16 {
        publisher.publish1("bq/t", format!("m{i}").as_bytes(), i + 1);
    }
    let (mut sub, ack) = Raw::connect(broker.addr, &id, false, 0, None);
    assert!(ack.session_present);
    let got: Vec<String> = recv_publishes_acking(&mut sub, 5)
        .iter()
        .map(|p| String::from_utf8(p.payload.to_vec()).unwrap())
        .collect();
    assert_eq!(got, ["m3", "m4", "m5", "m6", "m7"]);
    sub.expect_nothing();
}

#[test]
fn mqtt_3_1_4_2_takeover_closes_the_first_connection_and_keeps_the_session() {
    let broker = TestBroker::default_broker();
    for shard in 0..SHARDS {
        let id = id_on_shard("takeover", shard);
        let mut first = broker.client(&id, false);
        first.subscribe(1, &[("tk/t", QoS::AtLeastOnce)]);
        let (mut second, ack) = Raw::connect(broker.addr, &id, false, 0, None);
        assert_eq!((ack.code, ack.session_present), (0, true));
        first.expect_closed_silently();
        // The subscription carries on, on the new connection only.
        let mut publisher = broker.client(&id_on_shard("takeover-pub", 1 - shard), true);
        publisher.publish1("tk/t", b"to the second", 1);
        let p = second.recv_publish();
        assert_eq!(&p.payload[..], b"to the second");
        second.send(&Packet::PubAck(PubResp::new(p.packet_id.unwrap())));
        second.ping();
    }
}

#[test]
fn takeover_of_a_clean_session_starts_a_new_session() {
    let broker = TestBroker::default_broker();
    let id = id_on_shard("takeover-clean", 1);
    let mut first = broker.client(&id, true);
    first.subscribe(1, &[("tkc/t", QoS::AtLeastOnce)]);
    let (mut second, ack) = Raw::connect(broker.addr, &id, true, 0, None);
    assert_eq!((ack.code, ack.session_present), (0, false));
    first.expect_closed_silently();
    let mut publisher = broker.client(&id_on_shard("tkc-pub", 0), true);
    publisher.publish1("tkc/t", b"x", 1);
    second.expect_nothing();
}

/// Which shard accepts a socket is the kernel's choice (`SO_REUSEPORT`); repeated takeovers
/// make both "accepted by the home shard" and "accepted by the other shard" happen.
#[test]
fn repeated_takeovers_keep_one_session_whichever_shard_accepts() {
    let broker = TestBroker::default_broker();
    for shard in 0..SHARDS {
        let id = id_on_shard("hop", shard);
        let mut publisher = broker.client(&id_on_shard("hop-pub", 1 - shard), true);
        let mut current = broker.client(&id, false);
        current.subscribe(1, &[("hop/t", QoS::AtLeastOnce)]);
        for round in 0..8u16 {
            let (mut next, ack) = Raw::connect(broker.addr, &id, false, 0, None);
            assert_eq!((ack.code, ack.session_present), (0, true), "round {round}");
            current.expect_closed_silently();
            publisher.publish1("hop/t", &round.to_be_bytes(), round + 1);
            let p = next.recv_publish();
            assert_eq!(&p.payload[..], &round.to_be_bytes());
            assert!(!p.dup);
            next.send(&Packet::PubAck(PubResp::new(p.packet_id.unwrap())));
            current = next;
        }
        current.disconnect();
    }
}

#[test]
fn persistent_session_with_rumqttc_receives_what_was_published_offline() {
    let broker = TestBroker::default_broker();
    block_on(async {
        let id = id_on_shard("rq-offline", 1);
        let (mut sub, _) = Rumq::connect(broker.addr, &id, false).await;
        sub.subscribe("rqo/#", rumqttc::QoS::AtLeastOnce).await;
        sub.disconnect().await;

        let (publisher, _) =
            Rumq::connect(broker.addr, &id_on_shard("rq-offline-pub", 0), true).await;
        for i in 0..5u8 {
            publisher
                .client
                .publish("rqo/x", rumqttc::QoS::AtLeastOnce, false, vec![i])
                .await
                .unwrap();
        }
        publisher.disconnect().await; // waits until everything was written and acked

        let (mut sub, ack) = Rumq::connect(broker.addr, &id, false).await;
        assert!(ack.session_present);
        for i in 0..5u8 {
            assert_eq!(&sub.next_publish().await.payload[..], &[i]);
        }
        assert!(sub.drain_quiet().await.is_empty());
    });
}
