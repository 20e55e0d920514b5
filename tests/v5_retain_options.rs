//! MQTT 5.0 subscription options about RETAIN, over real sockets: Retain As Published keeps
//! the publisher's RETAIN flag on live deliveries (without it they carry 0), and Retain
//! Handling 1 sends retained messages only when the subscription is new.

mod common;

use common::*;
use shardmq::codec::{Packet, ProtocolVersion, QoS, Str, SubOptions, Subscribe};

fn v5(broker: &TestBroker, id: &str) -> Raw {
    let (c, ack) = Raw::connect_with(
        broker.addr,
        connect_packet(id, true, 0, None, ProtocolVersion::V5),
    );
    assert_eq!(ack.code, 0);
    c
}

fn subscribe(c: &mut Raw, packet_id: u16, filter: &str, opts: SubOptions) {
    c.send(&Packet::Subscribe(Subscribe {
        packet_id,
        filters: vec![(Str::from(filter), opts)],
        properties: Default::default(),
    }));
    assert!(matches!(c.recv(), Packet::SubAck(_)));
}

#[test]
fn retain_as_published_keeps_the_flag_and_without_it_live_deliveries_carry_zero() {
    let broker = TestBroker::default_broker();
    let mut rap = v5(&broker, &id_on_shard("rap-on", 0));
    let mut plain = v5(&broker, &id_on_shard("rap-off", 1));
    let opts = |rap: bool| SubOptions {
        qos: QoS::AtMostOnce,
        retain_as_published: rap,
        ..SubOptions::default()
    };
    subscribe(&mut rap, 1, "rap/t", opts(true));
    subscribe(&mut plain, 1, "rap/t", opts(false));
    let mut publisher = broker.client("rap-pub", true);
    publisher.publish_retained("rap/t", b"kept", 1);
    assert!(rap.recv_publish().retain, "Retain As Published");
    assert!(
        !plain.recv_publish().retain,
        "a live delivery [MQTT-3.3.1-9]"
    );
    // A retained message sent because of a new subscription has RETAIN 1 either way.
    let mut late = v5(&broker, "rap-late");
    subscribe(&mut late, 1, "rap/t", opts(false));
    assert!(late.recv_publish().retain);
}

#[test]
fn retain_handling_1_sends_retained_messages_only_for_a_new_subscription() {
    let broker = TestBroker::default_broker();
    let mut publisher = broker.client("rh-pub", true);
    publisher.publish_retained("rh/t", b"r", 1);
    let mut c = v5(&broker, "rh-sub");
    let rh = |h: u8| SubOptions {
        qos: QoS::AtMostOnce,
        retain_handling: h,
        ..SubOptions::default()
    };
    subscribe(&mut c, 1, "rh/t", rh(1));
    assert_eq!(&c.recv_publish().payload[..], b"r", "new subscription");
    subscribe(&mut c, 2, "rh/t", rh(1));
    c.expect_nothing();
    // Retain Handling 0 sends them again on a repeated subscription.
    subscribe(&mut c, 3, "rh/t", rh(0));
    assert_eq!(&c.recv_publish().payload[..], b"r");
}
