//! What an unauthenticated or misbehaving peer can make the broker buffer, over real sockets:
//! a CONNECT larger than `mqtt.max_connect_packet_size` is refused as soon as its fixed header
//! arrives, and when the connections of a shard hold more unfinished input than its share of
//! `mqtt.input_budget`, the one holding the most is cut (a 5.0 client is told 0x97 "quota
//! exceeded") while the others, and new clients, go on.

mod common;

use common::*;
use shardmq::codec::{Packet, ProtocolVersion, QoS};

/// The first bytes of a 5.0 QoS 0 PUBLISH on `topic` with `payload` bytes of payload: its
/// header and `sent` bytes of that payload (the rest never comes).
fn publish_start(topic: &str, payload: usize, sent: usize) -> Vec<u8> {
    let p = publish(topic, &vec![0u8; payload], QoS::AtMostOnce, false, None);
    let mut out = bytes::BytesMut::new();
    shardmq::codec::encode(&p, ProtocolVersion::V5, &mut out).unwrap();
    out.truncate(out.len() - payload + sent);
    out.to_vec()
}

#[test]
fn a_connect_announcing_more_than_max_connect_packet_size_is_closed_before_it_arrives() {
    let broker = TestBroker::start(&["mqtt.max_connect_packet_size=4096"]);
    let mut c = Raw::open(broker.addr);
    // CONNECT, remaining length 1 MiB, then only the start of the variable header.
    c.send_bytes(&[0x10, 0x80, 0x80, 0x40, 0, 4, b'M', b'Q', b'T', b'T', 4, 2]);
    c.expect_closed_silently();
    // An ordinary CONNECT is still fine.
    let (_, ack) = Raw::connect(broker.addr, "small-connect", true, 0, None);
    assert_eq!(ack.code, 0);
}

#[test]
fn over_the_input_budget_the_largest_holder_is_cut_and_the_rest_go_on() {
    // 2 shards: 1 MiB of unfinished input each.
    let broker = TestBroker::start(&["mqtt.input_budget=2097152"]);
    let v5 = |id: &str| {
        let (c, ack) = Raw::connect_with(
            broker.addr,
            connect_packet(id, true, 0, None, ProtocolVersion::V5),
        );
        assert_eq!(ack.code, 0);
        c
    };
    // Three clients on shard 0, each starting a large PUBLISH and sending part of it: 300 KiB
    // (of 400 KiB), 350 KiB (of 1000 KiB), then the third's bytes (of 1000 KiB) push the shard over
    // 1 MiB once it holds more than 374 KiB, so it is the largest holder when the budget runs
    // out.
    let announced = [400 * 1024, 1000 * 1024, 1000 * 1024];
    let sizes = [300 * 1024, 350 * 1024, 450 * 1024];
    let mut clients: Vec<Raw> = (0..3)
        .map(|i| v5(&id_on_shard(&format!("trickle{i}"), 0)))
        .collect();
    for ((c, size), whole) in clients.iter_mut().zip(sizes).zip(announced) {
        c.send_bytes(&publish_start("big/t", whole, size));
    }
    // The largest is told why and closed.
    match clients[2].recv() {
        Packet::Disconnect(d) => assert_eq!(d.reason, 0x97, "{d:?}"),
        other => panic!("expected DISCONNECT 0x97, got {other:?}"),
    }
    clients[2].expect_closed();
    // The two smaller holders stay connected (nothing arrives, nothing closes).
    clients[0].expect_nothing();
    clients[1].expect_nothing();
    // And the broker serves everyone else.
    let mut sub = broker.client("budget-sub", true);
    sub.subscribe(1, &[("ok/t", QoS::AtMostOnce)]);
    let mut publisher = broker.client("budget-pub", true);
    publisher.publish0("ok/t", b"fine");
    assert_eq!(&sub.recv_publish().payload[..], b"fine");
    // A holder that finishes its packet is served as usual: the first completes its PUBLISH
    // (no one subscribes: it is simply handled) and gets its ping answered.
    clients[0].send_bytes(&vec![0u8; announced[0] - sizes[0]]);
    clients[0].ping();
}
