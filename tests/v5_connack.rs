//! What an MQTT 5.0 client learns from CONNACK, over real sockets: the id the broker assigned
//! when it sent an empty one, the Server Keep Alive when `mqtt.server_keepalive` is set, and
//! what the broker supports (Maximum Packet Size, Retain / Wildcard / Shared Subscription
//! Available, no Subscription Identifiers, Maximum QoS when below 2). A 3.1.1 CONNACK carries
//! none of it.

mod common;

use common::*;
use shardmq::codec::{Packet, ProtocolVersion, QoS};

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
            connect_packet("", true, 10, None, ProtocolVersion::V5),
        );
        assert_eq!(ack.code, 0);
        let p = &ack.properties;
        let id = p
            .assigned_client_identifier
            .clone()
            .expect("an assigned id for an empty one");
        assert!(!id.is_empty());
        assert_eq!(p.server_keep_alive, Some(60));
        assert_eq!(p.maximum_packet_size, Some(65536));
        assert_eq!(p.maximum_qos, Some(1));
        assert_eq!(p.retain_available, Some(1));
        assert_eq!(p.wildcard_subscription_available, Some(1));
        assert_eq!(p.shared_subscription_available, Some(1));
        assert_eq!(p.subscription_identifier_available, Some(0));
        assert_eq!(p.receive_maximum, Some(100), "max_awaiting_rel");
        // The assigned id is the session's: a message to it arrives.
        c.subscribe(1, &[("v5/assigned", QoS::AtMostOnce)]);
        let mut other = broker.client("v5-pub", true);
        other.publish0("v5/assigned", b"hi");
        assert!(matches!(c.recv(), Packet::Publish(p) if &p.payload[..] == b"hi"));
    }
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
