//! Malformed input and protocol violations: the offending connection is closed, and only
//! that one: another client homed on the same shard keeps working.

mod common;

use common::*;
use shardmq::codec::QoS;

/// Connects a victim and a bystander homed on `shard`, sends `bad` from the victim, and
/// checks that the victim is closed while the bystander still publishes and receives.
fn only_the_offender_is_closed(bad: &[u8], what: &str) {
    let broker = TestBroker::default_broker();
    for shard in 0..SHARDS {
        let mut bystander = broker.client(&id_on_shard("bystander", shard), true);
        bystander.subscribe(1, &[("still/here", QoS::AtLeastOnce)]);
        let mut victim = broker.client(&id_on_shard("offender", shard), true);
        victim.send_bytes(bad);
        victim.expect_closed_silently();
        bystander.ping();
        bystander.publish0("still/here", what.as_bytes());
        let p = bystander.recv_publish();
        assert_eq!(&p.payload[..], what.as_bytes(), "{what}, shard {shard}");
    }
}

#[test]
fn garbage_bytes_close_only_that_connection() {
    only_the_offender_is_closed(&[0x00, 0xff, 0xff, 0xff, 0xff, 0x7f, 1, 2, 3], "garbage");
}

#[test]
fn mqtt_2_2_reserved_packet_type_15_closes_only_that_connection() {
    only_the_offender_is_closed(&[0xf0, 0x00], "reserved type 15");
}

#[test]
fn mqtt_2_2_reserved_packet_type_0_closes_only_that_connection() {
    only_the_offender_is_closed(&[0x00, 0x00], "reserved type 0");
}

#[test]
fn mqtt_3_3_2_2_publish_with_a_wildcard_topic_closes_only_that_connection() {
    // PUBLISH QoS 0, topic "a/+/b", payload "x".
    let mut bytes = vec![0x30, 0x08, 0x00, 0x05];
    bytes.extend_from_slice(b"a/+/bx");
    only_the_offender_is_closed(&bytes, "wildcard topic +");
    let mut bytes = vec![0x30, 0x06, 0x00, 0x03];
    bytes.extend_from_slice(b"a/#x");
    only_the_offender_is_closed(&bytes, "wildcard topic #");
}

/// `mqtt.max_topic_levels` (201 by default, as Mosquitto): a filter with more levels is refused in its
/// SUBACK place, a PUBLISH with more ends only its connection (5.0: DISCONNECT 0x90). Each
/// level of a subscribed filter would otherwise cost a route node on every shard: a few
/// SUBSCRIBEs of 65,000 levels made a broker hold 120 MB.
#[test]
fn topics_deeper_than_max_topic_levels_are_refused() {
    let broker = TestBroker::default_broker();
    let deep = |levels: usize| vec!["l"; levels].join("/");
    let mut sub = broker.client("deep-sub", true);
    assert_eq!(
        sub.subscribe(
            1,
            &[
                (deep(201).as_str(), QoS::AtMostOnce),
                (deep(202).as_str(), QoS::AtMostOnce),
                ("/".repeat(65_000).as_str(), QoS::AtMostOnce),
            ]
        ),
        vec![0, 0x80, 0x80]
    );
    sub.publish0(&deep(201), b"at the limit");
    assert_eq!(&sub.recv_publish().payload[..], b"at the limit");
    let (mut v5, ack) = Raw::connect_with(
        broker.addr,
        connect_packet(
            "deep-v5",
            true,
            0,
            None,
            shardmq::codec::ProtocolVersion::V5,
        ),
    );
    assert_eq!(ack.code, 0);
    v5.publish0(&deep(202), b"too deep");
    match v5.recv() {
        shardmq::codec::Packet::Disconnect(d) => assert_eq!(d.reason, 0x90),
        other => panic!("expected DISCONNECT 0x90, got {other:?}"),
    }
    v5.expect_closed();
    sub.ping();
    sub.expect_nothing();
}

#[test]
fn mqtt_3_3_1_4_publish_with_qos_3_closes_only_that_connection() {
    let mut bytes = vec![0x36, 0x06, 0x00, 0x01, b't', 0x00, 0x01, b'x'];
    bytes[1] = (bytes.len() - 2) as u8;
    only_the_offender_is_closed(&bytes, "qos 3");
}

#[test]
fn mqtt_3_3_1_2_dup_on_qos0_closes_the_connection() {
    only_the_offender_is_closed(&[0x38, 0x04, 0x00, 0x01, b't', b'x'], "dup on qos 0");
}

#[test]
fn mqtt_3_8_1_1_subscribe_with_wrong_fixed_header_flags_closes_the_connection() {
    // SUBSCRIBE must have flags 0b0010; 0x80 has 0.
    only_the_offender_is_closed(
        &[0x80, 0x06, 0x00, 0x01, 0x00, 0x01, b't', 0x00],
        "subscribe flags",
    );
}

#[test]
fn mqtt_3_8_3_3_subscribe_without_filters_closes_the_connection() {
    only_the_offender_is_closed(&[0x82, 0x02, 0x00, 0x01], "empty subscribe");
}

#[test]
fn qos1_publish_with_packet_id_0_closes_the_connection() {
    only_the_offender_is_closed(
        &[0x32, 0x06, 0x00, 0x01, b't', 0x00, 0x00, b'x'],
        "packet id 0",
    );
}

#[test]
fn server_only_packets_from_a_client_close_it() {
    let broker = TestBroker::default_broker();
    // PINGRESP, SUBACK, CONNACK.
    let packets: [&[u8]; 3] = [
        &[0xd0, 0x00],
        &[0x90, 0x03, 0x00, 0x01, 0x00],
        &[0x20, 0x02, 0x00, 0x00],
    ];
    for bytes in packets {
        let mut c = broker.client("server-only", true);
        c.send_bytes(bytes);
        c.expect_closed_silently();
    }
}

#[test]
fn oversized_packet_closes_the_connection() {
    let broker = TestBroker::start(&["mqtt.max_packet_size=1024"]);
    let mut bystander = broker.client("big-bystander", true);
    let mut c = broker.client("big", true);
    c.send(&publish(
        "big/t",
        &[7u8; 2000],
        QoS::AtMostOnce,
        false,
        None,
    ));
    c.expect_closed_silently();
    bystander.ping();
}

#[test]
fn a_packet_split_over_many_writes_is_reassembled() {
    let broker = TestBroker::default_broker();
    let mut sub = broker.client(&id_on_shard("split-sub", 0), true);
    sub.subscribe(1, &[("split/t", QoS::AtMostOnce)]);
    let mut c = broker.client(&id_on_shard("split", 1), true);
    let mut bytes = bytes::BytesMut::new();
    shardmq::codec::encode(
        &publish("split/t", &[9u8; 300], QoS::AtMostOnce, false, None),
        shardmq::codec::ProtocolVersion::V311,
        &mut bytes,
    )
    .unwrap();
    for chunk in bytes.chunks(7) {
        c.send_bytes(chunk);
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    assert_eq!(&sub.recv_publish().payload[..], &[9u8; 300][..]);
}
