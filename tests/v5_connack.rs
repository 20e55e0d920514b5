//! What an MQTT 5.0 client learns from CONNACK, over real sockets: the id the broker assigned
//! when it sent an empty one, the Server Keep Alive when `mqtt.server_keepalive` is lower than
//! what it asked for (none when it asked for less), and
//! what the broker supports (Maximum Packet Size, Retain / Wildcard / Shared Subscription
//! Available, Topic Alias Maximum, Maximum QoS when below 2). A 3.1.1 CONNACK carries none of
//! it. A 5.0 CONNECT the broker refuses gets a CONNACK with the reason, malformed or not.

mod common;

use common::*;
use shardmq::codec::{Packet, ProtocolVersion, QoS, Str};

#[test]
fn a_v5_connack_names_the_assigned_id_the_server_keepalive_and_the_brokers_limits() {
    let broker = TestBroker::start(&[
        "mqtt.server_keepalive=60",
        "mqtt.max_packet_size=65536",
        "mqtt.max_qos_allowed=1",
    ]);
    // Several connects, so that assigned ids land on both shards (a hand-over included).
    for _ in 0..4 {
        let (mut c, ack) = Raw::connect_with(
            broker.addr,
            connect_packet("", true, 120, None, ProtocolVersion::V5),
        );
        assert_eq!(ack.code, 0);
        let p = &ack.properties;
        let id = p
            .assigned_client_identifier
            .clone()
            .expect("an assigned id for an empty one");
        assert!(!id.is_empty());
        assert_eq!(p.server_keep_alive, Some(60), "the most a client may use");
        assert_eq!(p.maximum_packet_size, Some(65536));
        assert_eq!(p.maximum_qos, Some(1));
        assert_eq!(p.retain_available, Some(1));
        assert_eq!(p.wildcard_subscription_available, Some(1));
        assert_eq!(p.shared_subscription_available, Some(1));
        // Subscription identifiers are served: the property is left at its default, 1.
        assert_eq!(p.subscription_identifier_available, None);
        assert_eq!(p.topic_alias_maximum, Some(10), "mqtt.max_topic_alias");
        assert_eq!(p.receive_maximum, Some(100), "max_awaiting_rel");
        // The assigned id is the session's: a message to it arrives.
        c.subscribe(1, &[("v5/assigned", QoS::AtMostOnce)]);
        let mut other = broker.client("v5-pub", true);
        other.publish0("v5/assigned", b"hi");
        assert!(matches!(c.recv(), Packet::Publish(p) if &p.payload[..] == b"hi"));
    }
    // A client asking for a shorter keepalive keeps its own: no Server Keep Alive.
    let (_c, ack) = Raw::connect_with(
        broker.addr,
        connect_packet("v5-short", true, 10, None, ProtocolVersion::V5),
    );
    assert_eq!(ack.properties.server_keep_alive, None);
    // A client that chose its id is not told one.
    let (_, ack) = Raw::connect_with(
        broker.addr,
        connect_packet("chosen", true, 10, None, ProtocolVersion::V5),
    );
    assert!(ack.properties.assigned_client_identifier.is_none());
    // 3.1.1: no properties at all.
    let (_, ack) = Raw::connect(broker.addr, "v3", true, 10, None);
    assert!(ack.properties.is_empty());
}

#[test]
fn a_refused_v5_connect_gets_a_connack_with_the_reason_before_the_close() {
    let broker = TestBroker::default_broker();
    // Enhanced authentication is not served: 0x8C "bad authentication method".
    let mut c = connect_packet("v5-auth", true, 0, None, ProtocolVersion::V5);
    c.properties.authentication_method = Some(Str::from("SCRAM-SHA-1"));
    let (mut raw, ack) = Raw::connect_with(broker.addr, c);
    assert_eq!(ack.code, 0x8C);
    raw.expect_closed();
    // Receive Maximum 0 is a protocol error (0x82): bytes written by hand, as the codec
    // would not encode it.
    let mut raw = Raw::open(broker.addr);
    raw.version = ProtocolVersion::V5;
    raw.send_bytes(&[
        0x10, 17, 0, 4, b'M', b'Q', b'T', b'T', 5, 0x02, 0, 0, // header, flags, keepalive
        3, 0x21, 0, 0, // properties: Receive Maximum 0
        0, 1, b'x', // client id
    ]);
    match raw.recv() {
        Packet::ConnAck(a) => assert_eq!(a.code, 0x82),
        other => panic!("expected CONNACK, got {other:?}"),
    }
    raw.expect_closed();
    // A wildcard in the will topic: 0x90 "topic name invalid".
    let will = will("w/#", "x", QoS::AtMostOnce, false);
    let c = connect_packet("v5-will", true, 0, Some(will), ProtocolVersion::V5);
    let mut raw = Raw::open(broker.addr);
    raw.version = ProtocolVersion::V5;
    let mut out = bytes::BytesMut::new();
    shardmq::codec::encode(&Packet::Connect(Box::new(c)), ProtocolVersion::V5, &mut out).unwrap();
    raw.send_bytes(&out);
    match raw.recv() {
        Packet::ConnAck(a) => assert_eq!(a.code, 0x90),
        other => panic!("expected CONNACK, got {other:?}"),
    }
    raw.expect_closed();
}
