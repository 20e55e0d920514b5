//! Will messages (spec 3.1.2.5) and keepalive enforcement (3.1.2.10): the will goes out on
//! an abnormal close (socket dropped, keepalive expiry, protocol error, takeover) and never
//! after DISCONNECT.

mod common;

use std::time::{Duration, Instant};

use common::*;
use shardmq::codec::{Packet, QoS};

/// A subscriber to `topic` homed on `shard`.
fn watcher(broker: &TestBroker, shard: usize, topic: &str) -> Raw {
    let mut w = broker.client(&id_on_shard("will-watch", shard), true);
    w.subscribe(1, &[(topic, QoS::AtLeastOnce)]);
    w
}

#[test]
fn mqtt_3_1_2_8_will_is_published_when_the_socket_drops_without_disconnect() {
    let broker = TestBroker::default_broker();
    for shard in 0..SHARDS {
        let topic = format!("will/drop/{shard}");
        let mut w = watcher(&broker, 1 - shard, &topic);
        let (c, ack) = Raw::connect(
            broker.addr,
            &id_on_shard("dropper", shard),
            true,
            0,
            Some(will(&topic, "gone", QoS::AtLeastOnce, false)),
        );
        assert_eq!(ack.code, 0);
        c.drop_socket();
        let p = w.recv_publish();
        assert_eq!(p.topic.as_str(), topic);
        assert_eq!(&p.payload[..], b"gone");
        assert_eq!(p.qos, QoS::AtLeastOnce);
        assert!(!p.retain);
    }
}

#[test]
fn mqtt_3_14_4_3_no_will_after_disconnect() {
    let broker = TestBroker::default_broker();
    for shard in 0..SHARDS {
        let topic = format!("will/clean/{shard}");
        let mut w = watcher(&broker, 1 - shard, &topic);
        let (c, ack) = Raw::connect(
            broker.addr,
            &id_on_shard("polite", shard),
            true,
            0,
            Some(will(&topic, "should not appear", QoS::AtMostOnce, false)),
        );
        assert_eq!(ack.code, 0);
        c.disconnect();
        w.expect_nothing();
    }
}

#[test]
fn mqtt_3_1_2_24_keepalive_closes_after_one_and_a_half_times_and_publishes_the_will() {
    let broker = TestBroker::default_broker();
    for shard in 0..SHARDS {
        let topic = format!("will/ka/{shard}");
        let mut w = watcher(&broker, 1 - shard, &topic);
        let (mut c, ack) = Raw::connect(
            broker.addr,
            &id_on_shard("silent", shard),
            true,
            1,
            Some(will(&topic, "timed out", QoS::AtMostOnce, false)),
        );
        assert_eq!(ack.code, 0);
        let since = Instant::now();
        c.expect_closed_silently();
        let after = since.elapsed();
        assert!(
            after >= Duration::from_millis(1250),
            "closed after {after:?}: keepalive 1 s is enforced at 1.5 s"
        );
        assert!(
            after <= Duration::from_millis(2500),
            "closed after {after:?}"
        );
        let p = w.recv_publish();
        assert_eq!(&p.payload[..], b"timed out");
    }
}

#[test]
fn mqtt_3_1_2_23_packets_within_the_keepalive_keep_the_connection_open() {
    let broker = TestBroker::default_broker();
    let mut c = {
        let (c, ack) = Raw::connect(broker.addr, "chatty", true, 1, None);
        assert_eq!(ack.code, 0);
        c
    };
    // Pinging every 0.6 s for 2.4 s: well past 1.5 s, yet never 1.5 s of silence.
    let start = Instant::now();
    while start.elapsed() < Duration::from_millis(2400) {
        std::thread::sleep(Duration::from_millis(600));
        c.ping();
    }
}

#[test]
fn will_is_published_on_takeover() {
    let broker = TestBroker::default_broker();
    for shard in 0..SHARDS {
        let topic = format!("will/takeover/{shard}");
        let id = id_on_shard("taken", shard);
        let mut w = watcher(&broker, 1 - shard, &topic);
        let (mut first, _) = Raw::connect(
            broker.addr,
            &id,
            false,
            0,
            Some(will(&topic, "taken over", QoS::AtLeastOnce, false)),
        );
        let (second, ack) = Raw::connect(broker.addr, &id, false, 0, None);
        assert_eq!((ack.code, ack.session_present), (0, true));
        first.expect_closed_silently();
        assert_eq!(&w.recv_publish().payload[..], b"taken over");
        // The second connection had no will: its DISCONNECT publishes nothing.
        second.disconnect();
        w.expect_nothing();
    }
}

#[test]
fn will_is_published_when_the_broker_closes_on_a_protocol_error() {
    let broker = TestBroker::default_broker();
    let topic = "will/violation";
    let mut w = watcher(&broker, 0, topic);
    let (mut c, _) = Raw::connect(
        broker.addr,
        &id_on_shard("violator", 1),
        true,
        0,
        Some(will(topic, "broke the rules", QoS::AtMostOnce, false)),
    );
    c.send(&Packet::ConnAck(Default::default())); // a server-only packet
    c.expect_closed_silently();
    assert_eq!(&w.recv_publish().payload[..], b"broke the rules");
}

#[test]
fn retained_will_is_stored_as_a_retained_message() {
    let broker = TestBroker::default_broker();
    for shard in 0..SHARDS {
        let topic = topic_on_shard("will/retained", shard);
        let (c, _) = Raw::connect(
            broker.addr,
            &id_on_shard("retainer", 1 - shard),
            true,
            0,
            Some(will(&topic, "last words", QoS::AtLeastOnce, true)),
        );
        // A live subscriber gets it with RETAIN 0; a later one with RETAIN 1.
        let mut live = watcher(&broker, shard, &topic);
        c.drop_socket();
        let p = live.recv_publish();
        assert_eq!(&p.payload[..], b"last words");
        assert!(!p.retain);
        let mut later = broker.client(&id_on_shard("will-later", shard), true);
        later.subscribe(1, &[(topic.as_str(), QoS::AtLeastOnce)]);
        let p = later.recv_publish();
        assert_eq!(&p.payload[..], b"last words");
        assert!(p.retain);
    }
}
