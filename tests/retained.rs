//! Retained messages (spec 3.3.1.3): stored by the shard that owns the topic
//! (`home_shard(topic)`), sent with RETAIN 1 to new subscriptions (wildcards collect them
//! from every shard), RETAIN 0 on normal delivery, cleared by an empty payload; a message
//! delivered live to a new subscription is not sent to it again as retained.

mod common;

use common::*;
use shardmq::codec::QoS;

#[test]
fn mqtt_3_3_1_6_retained_message_goes_to_new_subscribers_with_retain_1_on_either_shard() {
    let broker = TestBroker::default_broker();
    for owner in 0..SHARDS {
        let topic = topic_on_shard("ret/own", owner);
        // Publisher and subscriber homed on the shard that does not own the topic.
        let mut publisher = broker.client(&id_on_shard("ret-pub", 1 - owner), true);
        publisher.publish_retained(&topic, b"kept", 1);
        for sub_shard in 0..SHARDS {
            let mut sub = broker.client(&id_on_shard("ret-sub", sub_shard), true);
            sub.subscribe(1, &[(topic.as_str(), QoS::AtLeastOnce)]);
            let p = sub.recv_publish();
            assert_eq!(p.topic.as_str(), topic);
            assert_eq!(&p.payload[..], b"kept");
            assert!(p.retain, "[MQTT-3.3.1-8] RETAIN 1 on subscribe");
            assert_eq!(p.qos, QoS::AtLeastOnce);
            sub.expect_nothing();
            sub.disconnect();
        }
    }
}

/// A retained message published right after a SUBSCRIBE reaches the new subscription live; the
/// retained messages the subscription then gets (asked of the topic's owner shard after the
/// SUBACK) must not bring it a second time. A SUBSCRIBE and a retained PUBLISH to it written
/// together on one connection make the overlap certain: the owner shard stores the message
/// before it reads the question (the mesh keeps each pair of shards in order).
#[test]
fn a_retained_message_delivered_live_to_a_new_subscription_is_not_sent_again() {
    let broker = TestBroker::default_broker();
    for owner in 0..SHARDS {
        for round in 0..10 {
            let topic = topic_on_shard(&format!("ret/once{round}"), owner);
            let mut c = broker.client(&id_on_shard("ret-once", 1 - owner), true);
            c.send_all(&[
                subscribe_packet(1, &[(topic.as_str(), QoS::AtMostOnce)]),
                publish(&topic, b"once", QoS::AtMostOnce, true, None),
            ]);
            let mut copies = 0;
            let mut acked = false;
            while !acked || copies == 0 {
                match c.recv() {
                    shardmq::codec::Packet::SubAck(_) => acked = true,
                    shardmq::codec::Packet::Publish(p) => {
                        assert_eq!(&p.payload[..], b"once");
                        copies += 1;
                    }
                    other => panic!("unexpected {other:?}"),
                }
            }
            c.ping();
            c.expect_nothing();
            assert_eq!(copies, 1, "owner shard {owner}, round {round}");
            c.disconnect();
        }
    }
}

#[test]
fn mqtt_3_3_1_9_normal_delivery_of_a_retained_publish_has_retain_0() {
    let broker = TestBroker::default_broker();
    let mut sub = broker.client(&id_on_shard("live", 0), true);
    sub.subscribe(1, &[("ret/live", QoS::AtLeastOnce)]);
    let mut publisher = broker.client(&id_on_shard("live-pub", 1), true);
    publisher.publish_retained("ret/live", b"now", 1);
    let p = sub.recv_publish();
    assert_eq!(&p.payload[..], b"now");
    assert!(!p.retain);
}

#[test]
fn mqtt_3_3_1_10_empty_retained_payload_clears_the_retained_message() {
    let broker = TestBroker::default_broker();
    for owner in 0..SHARDS {
        let topic = topic_on_shard("ret/clear", owner);
        let mut publisher = broker.client(&id_on_shard("clr-pub", owner), true);
        publisher.publish_retained(&topic, b"soon gone", 1);
        publisher.publish_retained(&topic, b"", 2);
        // Check with a subscriber on the other shard: nothing retained any more.
        let mut sub = broker.client(&id_on_shard("clr-sub", 1 - owner), true);
        sub.subscribe(1, &[(topic.as_str(), QoS::AtLeastOnce)]);
        sub.expect_nothing();
    }
}

#[test]
fn newer_retained_message_replaces_the_older_one() {
    let broker = TestBroker::default_broker();
    let topic = topic_on_shard("ret/replace", 1);
    let mut publisher = broker.client(&id_on_shard("rep-pub", 0), true);
    publisher.publish_retained(&topic, b"v1", 1);
    publisher.publish_retained(&topic, b"v2", 2);
    let mut sub = broker.client(&id_on_shard("rep-sub", 0), true);
    sub.subscribe(1, &[(topic.as_str(), QoS::AtMostOnce)]);
    let p = sub.recv_publish();
    assert_eq!(&p.payload[..], b"v2");
    assert_eq!(p.qos, QoS::AtMostOnce, "min(retained qos 1, granted 0)");
    sub.expect_nothing();
}

#[test]
fn wildcard_subscription_collects_retained_messages_from_both_shards() {
    let broker = TestBroker::default_broker();
    let on0 = topic_on_shard("wr/a", 0);
    let on1 = topic_on_shard("wr/b", 1);
    assert_ne!(
        shardmq::home_shard(&on0, SHARDS),
        shardmq::home_shard(&on1, SHARDS)
    );
    let mut publisher = broker.client("wr-pub", true);
    publisher.publish_retained(&on0, b"zero", 1);
    publisher.publish_retained(&on1, b"one", 2);
    publisher.publish_retained("other/x", b"not matched", 3);
    for (i, filter) in ["#", "+", "wr/#"].into_iter().enumerate() {
        // "+" matches no topic here (all have two levels or are under wr/... with one).
        let mut sub = broker.client(&id_on_shard("wr-sub", i % SHARDS), true);
        sub.subscribe(1, &[(filter, QoS::AtLeastOnce)]);
        let expect: Vec<&str> = match filter {
            "#" => vec![on0.as_str(), on1.as_str(), "other/x"],
            "+" => vec![],
            _ => vec![on0.as_str(), on1.as_str()],
        };
        let mut got: Vec<String> = (0..expect.len())
            .map(|_| {
                let p = sub.recv_publish();
                assert!(p.retain);
                p.topic.as_str().to_owned()
            })
            .collect();
        got.sort();
        let mut expect: Vec<String> = expect.into_iter().map(str::to_owned).collect();
        expect.sort();
        assert_eq!(got, expect, "filter {filter}");
        sub.expect_nothing();
    }
}

#[test]
fn retained_messages_are_not_sent_to_shared_subscriptions() {
    let broker = TestBroker::default_broker();
    let mut publisher = broker.client("rs-pub", true);
    publisher.publish_retained("rs/t", b"retained", 1);
    let mut sub = broker.client("rs-sub", true);
    sub.subscribe(1, &[("$share/g/rs/t", QoS::AtLeastOnce)]);
    sub.expect_nothing();
}
