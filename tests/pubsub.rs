//! SUBSCRIBE / UNSUBSCRIBE (spec 3.8 – 3.11), topic wildcards and the `$` rules (4.7),
//! and delivery between clients homed on different shards.

mod common;

use common::*;
use shardmq::codec::QoS;

#[test]
fn delivery_between_clients_on_different_shards_both_ways() {
    let broker = TestBroker::default_broker();
    let id0 = id_on_shard("xs", 0);
    let id1 = id_on_shard("xs", 1);
    let mut c0 = broker.client(&id0, true);
    let mut c1 = broker.client(&id1, true);
    c0.subscribe(1, &[("to/0", QoS::AtLeastOnce)]);
    c1.subscribe(1, &[("to/1", QoS::AtLeastOnce)]);
    c0.publish1("to/1", b"from shard 0", 1);
    let p = c1.recv_publish();
    assert_eq!(
        (p.topic.as_str(), &p.payload[..]),
        ("to/1", &b"from shard 0"[..])
    );
    c1.publish1("to/0", b"from shard 1", 1);
    let p = c0.recv_publish();
    assert_eq!(
        (p.topic.as_str(), &p.payload[..]),
        ("to/0", &b"from shard 1"[..])
    );
}

/// A SUBACK does not wait for the other shards to answer; they apply the new route before
/// they route any input that arrived after it. So a publish sent by a client on any shard
/// the moment the SUBACK is in reaches the new subscriber, round after round.
#[test]
fn a_publish_sent_right_after_the_suback_reaches_the_subscriber_from_every_shard() {
    const SHARDS_HERE: usize = 4;
    let broker = TestBroker::start_with_shards(SHARDS_HERE, &[]);
    let on = |prefix: &str, shard: usize| id_on_shard_of(prefix, shard, SHARDS_HERE);
    let mut sub = broker.client(&on("fresh-sub", 0), true);
    let mut publishers: Vec<Raw> = (1..SHARDS_HERE)
        .map(|s| broker.client(&on("fresh-pub", s), true))
        .collect();
    // Keep the publishers' shards busy (input to route on every turn), as under load: the
    // route must not depend on a shard having looked at its mesh before its sockets.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let noise: Vec<_> = (1..SHARDS_HERE)
        .map(|s| {
            let mut c = broker.client(&on("fresh-noise", s), true);
            let stop = stop.clone();
            std::thread::spawn(move || {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    for _ in 0..64 {
                        c.publish0("noise/nobody", b"x");
                    }
                    c.ping();
                }
            })
        })
        .collect();
    for round in 0..100u16 {
        let topic = format!("fresh/{round}");
        sub.subscribe(round + 1, &[(topic.as_str(), QoS::AtMostOnce)]);
        for p in &mut publishers {
            p.publish0(&topic, &round.to_be_bytes());
        }
        for _ in &publishers {
            let got = sub.recv_publish();
            assert_eq!(got.topic.as_str(), topic, "round {round}");
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for n in noise {
        n.join().unwrap();
    }
}

#[test]
fn messages_from_one_publisher_arrive_in_order_across_shards() {
    let broker = TestBroker::default_broker();
    let mut sub = broker.client(&id_on_shard("ord-sub", 1), true);
    sub.subscribe(1, &[("ord/t", QoS::AtMostOnce)]);
    let mut publisher = broker.client(&id_on_shard("ord-pub", 0), true);
    for i in 0..200u32 {
        publisher.publish0("ord/t", &i.to_be_bytes());
    }
    for i in 0..200u32 {
        assert_eq!(&sub.recv_publish().payload[..], &i.to_be_bytes());
    }
}

#[test]
fn mqtt_3_9_3_suback_grants_qos_and_0x80_for_invalid_filters() {
    let broker = TestBroker::default_broker();
    let mut c = broker.client("suback", true);
    let codes = c.subscribe(
        5,
        &[
            ("a/b", QoS::AtMostOnce),
            ("a/#/b", QoS::AtLeastOnce),
            ("a/+/c", QoS::AtLeastOnce),
            ("a+", QoS::AtMostOnce),
            ("x/#", QoS::ExactlyOnce),
            ("#", QoS::AtLeastOnce),
            ("$share//t", QoS::AtLeastOnce),
        ],
    );
    assert_eq!(codes, vec![0, 0x80, 1, 0x80, 2, 1, 0x80]);
    // The connection still works after refused filters.
    c.ping();
}

#[test]
fn granted_qos_is_capped_by_max_qos_allowed() {
    let broker = TestBroker::start(&["mqtt.max_qos_allowed=1"]);
    let mut c = broker.client("capped", true);
    assert_eq!(
        c.subscribe(1, &[("c/0", QoS::AtMostOnce), ("c/2", QoS::ExactlyOnce)]),
        vec![0, 1]
    );
}

#[test]
fn mqtt_3_8_4_3_resubscribing_replaces_the_subscription() {
    let broker = TestBroker::default_broker();
    let mut sub = broker.client(&id_on_shard("resub", 0), true);
    let mut publisher = broker.client(&id_on_shard("resub-pub", 1), true);
    sub.subscribe(1, &[("re/t", QoS::AtMostOnce)]);
    sub.subscribe(2, &[("re/t", QoS::AtLeastOnce)]);
    publisher.publish1("re/t", b"x", 1);
    let p = sub.recv_publish();
    assert_eq!(p.qos, QoS::AtLeastOnce, "the new QoS applies");
    sub.send(&shardmq::codec::Packet::PubAck(
        shardmq::codec::PubResp::new(p.packet_id.unwrap()),
    ));
    sub.expect_nothing(); // one subscription, one copy
}

#[test]
fn overlapping_subscriptions_deliver_one_copy_at_the_highest_qos() {
    let broker = TestBroker::default_broker();
    let mut sub = broker.client(&id_on_shard("overlap", 1), true);
    sub.subscribe(
        1,
        &[
            ("ov/#", QoS::AtMostOnce),
            ("ov/+/x", QoS::AtLeastOnce),
            ("ov/a/x", QoS::AtMostOnce),
        ],
    );
    let mut publisher = broker.client(&id_on_shard("overlap-pub", 0), true);
    publisher.publish1("ov/a/x", b"once", 1);
    let p = sub.recv_publish();
    assert_eq!(p.qos, QoS::AtLeastOnce);
    sub.send(&shardmq::codec::Packet::PubAck(
        shardmq::codec::PubResp::new(p.packet_id.unwrap()),
    ));
    sub.expect_nothing();
}

#[test]
fn mqtt_3_10_4_unsubscribe_stops_delivery_on_both_shards() {
    let broker = TestBroker::default_broker();
    for shard in 0..SHARDS {
        let mut sub = broker.client(&id_on_shard("unsub", shard), true);
        let mut publisher = broker.client(&id_on_shard("unsub-pub", 1 - shard), true);
        let mut local = broker.client(&id_on_shard("unsub-local", shard), true);
        sub.subscribe(
            1,
            &[("un/t", QoS::AtLeastOnce), ("un/keep", QoS::AtMostOnce)],
        );
        local.subscribe(1, &[("un/t", QoS::AtMostOnce)]);
        publisher.publish0("un/t", b"before");
        assert_eq!(&sub.recv_publish().payload[..], b"before");
        assert_eq!(&local.recv_publish().payload[..], b"before");
        sub.unsubscribe(2, &["un/t"]);
        publisher.publish0("un/t", b"after");
        publisher.publish0("un/keep", b"kept");
        // The other subscription still works, and the unsubscribed topic sent nothing
        // (messages from one publisher stay in order, so "after" would come first).
        let p = sub.recv_publish();
        assert_eq!(
            (p.topic.as_str(), &p.payload[..]),
            ("un/keep", &b"kept"[..])
        );
        assert_eq!(&local.recv_publish().payload[..], b"after");
        sub.expect_nothing();
    }
}

#[test]
fn unsubscribing_a_filter_never_subscribed_still_gets_unsuback() {
    let broker = TestBroker::default_broker();
    let mut c = broker.client("unsub-none", true);
    c.unsubscribe(3, &["never/subscribed"]);
}

#[test]
fn mqtt_4_7_1_wildcards_plus_and_hash_match_levels() {
    let broker = TestBroker::default_broker();
    let mut plus = broker.client(&id_on_shard("wc-plus", 0), true);
    let mut hash = broker.client(&id_on_shard("wc-hash", 1), true);
    let mut all = broker.client(&id_on_shard("wc-all", 0), true);
    plus.subscribe(1, &[("s/+/t", QoS::AtMostOnce)]);
    hash.subscribe(1, &[("s/#", QoS::AtMostOnce)]);
    all.subscribe(1, &[("#", QoS::AtMostOnce)]);
    let mut publisher = broker.client(&id_on_shard("wc-pub", 1), true);
    for t in ["s/a/t", "s/a/b/t", "s", "s/", "s/t", "other"] {
        publisher.publish0(t, t.as_bytes());
    }
    publisher.ping();
    let topics = |c: &mut Raw, n: usize| -> Vec<String> {
        let v: Vec<String> = (0..n)
            .map(|_| c.recv_publish().topic.as_str().to_owned())
            .collect();
        c.expect_nothing();
        v
    };
    // `+` matches exactly one level, including an empty one.
    assert_eq!(topics(&mut plus, 1), ["s/a/t"]);
    // `s/#` matches `s` itself and everything below [MQTT-4.7.1-2].
    assert_eq!(topics(&mut hash, 5), ["s/a/t", "s/a/b/t", "s", "s/", "s/t"]);
    assert_eq!(
        topics(&mut all, 6),
        ["s/a/t", "s/a/b/t", "s", "s/", "s/t", "other"]
    );
}

#[test]
fn mqtt_4_7_2_1_wildcards_at_the_first_level_do_not_match_dollar_topics() {
    let broker = TestBroker::default_broker();
    let mut all = broker.client(&id_on_shard("dollar-all", 0), true);
    let mut plus = broker.client(&id_on_shard("dollar-plus", 1), true);
    let mut dollar = broker.client(&id_on_shard("dollar-explicit", 0), true);
    let mut sys = broker.client(&id_on_shard("dollar-sys", 1), true);
    all.subscribe(1, &[("#", QoS::AtMostOnce)]);
    plus.subscribe(1, &[("+/x", QoS::AtMostOnce), ("+/+/#", QoS::AtMostOnce)]);
    dollar.subscribe(1, &[("$app/#", QoS::AtMostOnce)]);
    sys.subscribe(1, &[("$SYS/#", QoS::AtMostOnce)]);

    // A `$SYS` message from the broker: a client connects.
    let newcomer = id_on_shard("dollar-newcomer", 0);
    let _n = broker.client(&newcomer, true);
    let p = sys.recv_publish();
    assert_eq!(
        p.topic.as_str(),
        format!("$SYS/brokers/{}/clients/{newcomer}/connected", broker.node)
    );
    // A client message on a `$` topic.
    let mut publisher = broker.client(&id_on_shard("dollar-pub", 1), true);
    publisher.publish0("$app/x", b"dollar");
    assert_eq!(dollar.recv_publish().topic.as_str(), "$app/x");
    // Then a normal one, which `#` and `+/x` do get: anything `$` would have come first.
    publisher.publish0("n/x", b"normal");
    assert_eq!(all.recv_publish().topic.as_str(), "n/x");
    assert_eq!(plus.recv_publish().topic.as_str(), "n/x");
    all.expect_nothing();
    plus.expect_nothing();
}

#[test]
fn publish_to_a_topic_without_subscribers_is_fine() {
    let broker = TestBroker::default_broker();
    let mut c = broker.client("lonely", true);
    c.publish1("nobody/listens", b"x", 1);
    c.publish2("nobody/listens", b"x", 2);
    c.ping();
}

#[test]
fn pubsub_with_rumqttc_across_shards() {
    let broker = TestBroker::default_broker();
    block_on(async {
        let mut subs = Vec::new();
        for shard in 0..SHARDS {
            let (mut s, _) = Rumq::connect(broker.addr, &id_on_shard("rps", shard), true).await;
            s.subscribe("rps/+", rumqttc::QoS::AtLeastOnce).await;
            subs.push(s);
        }
        for shard in 0..SHARDS {
            let (p, _) = Rumq::connect(broker.addr, &id_on_shard("rpp", shard), true).await;
            p.client
                .publish(
                    format!("rps/{shard}"),
                    rumqttc::QoS::AtLeastOnce,
                    false,
                    b"hi".to_vec(),
                )
                .await
                .unwrap();
            for s in &mut subs {
                let m = s.next_publish().await;
                assert_eq!(m.topic, format!("rps/{shard}"));
                assert!(!m.retain);
            }
            p.disconnect().await;
        }
    });
}

#[test]
fn large_payload_crosses_shards_intact() {
    let broker = TestBroker::default_broker();
    let mut sub = broker.client(&id_on_shard("big-sub", 0), true);
    sub.subscribe(1, &[("big/t", QoS::AtLeastOnce)]);
    let mut publisher = broker.client(&id_on_shard("big-pub", 1), true);
    let payload: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    publisher.publish1("big/t", &payload, 1);
    let p = sub.recv_publish();
    assert_eq!(p.payload.len(), payload.len());
    assert!(p.payload[..] == payload[..]);
}

#[test]
fn a_burst_of_qos1_messages_across_shards_all_arrive_in_order() {
    // An unbounded queue: with the default (1000) a slow subscriber loses the oldest of
    // what does not fit behind its window, as in EMQ X.
    let broker = TestBroker::start(&["mqtt.max_mqueue=0"]);
    let mut sub = broker.client(&id_on_shard("burst-sub", 1), true);
    sub.subscribe(1, &[("burst/t", QoS::AtLeastOnce)]);
    let mut publisher = broker.client(&id_on_shard("burst-pub", 0), true);
    const COUNT: u32 = 3000;
    // Pipelined: every PUBLISH first, then the acks.
    let mut bytes = bytes::BytesMut::new();
    for i in 0..COUNT {
        shardmq::codec::encode(
            &publish(
                "burst/t",
                &i.to_be_bytes(),
                QoS::AtLeastOnce,
                false,
                Some((i % 60000 + 1) as u16),
            ),
            shardmq::codec::ProtocolVersion::V311,
            &mut bytes,
        )
        .unwrap();
    }
    publisher.send_bytes(&bytes);
    let got = recv_publishes_acking(&mut sub, COUNT as usize);
    for (i, p) in got.iter().enumerate() {
        assert_eq!(&p.payload[..], &(i as u32).to_be_bytes(), "message {i}");
    }
    for _ in 0..COUNT {
        assert!(matches!(
            publisher.recv(),
            shardmq::codec::Packet::PubAck(_)
        ));
    }
}

#[test]
fn a_client_receives_its_own_messages_in_3_1_1() {
    let broker = TestBroker::default_broker();
    let mut c = broker.client("narcissus", true);
    c.subscribe(1, &[("self/t", QoS::AtMostOnce)]);
    c.publish0("self/t", b"me");
    assert_eq!(&c.recv_publish().payload[..], b"me");
}
