//! A PUBLISH sent on one connection right after a SUBSCRIBE on another, before the SUBACK,
//! reaches the new subscriber whichever shards serve the two, as on a broker with one thread
//! (which reads them in the order they arrived), also when the SUBSCRIBE came in one write
//! with its CONNECT (and was read with it by a shard that handed the connection over); a
//! message routed before the SUBSCRIBE arrived does not (ARCHITECTURE.md, "A SUBSCRIBE read
//! late").

mod common;

use common::*;
use shardmq::codec::{Packet, QoS};

const SHARDS_HERE: usize = 4;

/// A broker of [`SHARDS_HERE`] shards, a subscriber homed on shard 0 and a publisher homed
/// on each shard (the subscriber's own included).
fn node(prefix: &str) -> (TestBroker, Raw, Vec<Raw>) {
    let broker = TestBroker::start_with_shards(SHARDS_HERE, &[]);
    let sub = broker.client(
        &id_on_shard_of(&format!("{prefix}-sub"), 0, SHARDS_HERE),
        true,
    );
    let publishers = (0..SHARDS_HERE)
        .map(|s| {
            broker.client(
                &id_on_shard_of(&format!("{prefix}-pub"), s, SHARDS_HERE),
                true,
            )
        })
        .collect();
    (broker, sub, publishers)
}

#[test]
fn a_publish_right_behind_a_subscribe_on_another_connection_reaches_it_from_every_shard() {
    let (_broker, mut sub, mut publishers) = node("behind");
    for round in 0..100u16 {
        let topic = format!("behind/{round}");
        sub.send_subscribe(round + 1, &[(topic.as_str(), QoS::AtMostOnce)]);
        for p in &mut publishers {
            p.publish0(&topic, &round.to_be_bytes());
        }
        expect_suback_and_every_copy(&mut sub, round + 1, &topic, round);
    }
    sub.expect_nothing();
}

/// Receives the SUBACK of `packet_id` and one copy of a message on `topic` from each shard,
/// in any order (a server may send matching messages before the SUBACK, MQTT 3.1.1 section
/// 3.8.4).
fn expect_suback_and_every_copy(sub: &mut Raw, packet_id: u16, topic: &str, round: u16) {
    let (mut acked, mut got) = (false, 0);
    while !acked || got < SHARDS_HERE {
        match sub.recv() {
            Packet::SubAck(a) => {
                assert_eq!(a.packet_id, packet_id);
                acked = true;
            }
            Packet::Publish(p) => {
                assert_eq!(p.topic.as_str(), topic, "round {round}");
                got += 1;
            }
            other => panic!("round {round}: unexpected {other:?}"),
        }
    }
}

#[test]
fn a_subscribe_written_with_its_connect_gets_a_publish_right_behind_it() {
    let (broker, _sub, mut publishers) = node("withconnect");
    let id = id_on_shard_of("withconnect-fresh", 0, SHARDS_HERE);
    for round in 0..60u16 {
        let topic = format!("withconnect/{round}");
        // The shard that accepts the socket is the kernel's choice: most rounds hand the
        // connection, with the SUBSCRIBE read along with the CONNECT, over to shard 0.
        let mut sub = Raw::open(broker.addr);
        sub.send_all(&[
            Packet::Connect(Box::new(connect_packet(
                &id,
                true,
                0,
                None,
                shardmq::codec::ProtocolVersion::V311,
            ))),
            subscribe_packet(1, &[(topic.as_str(), QoS::AtMostOnce)]),
        ]);
        for p in &mut publishers {
            p.publish0(&topic, &round.to_be_bytes());
        }
        match sub.recv() {
            Packet::ConnAck(a) => assert_eq!(a.code, 0),
            other => panic!("round {round}: expected CONNACK, got {other:?}"),
        }
        expect_suback_and_every_copy(&mut sub, 1, &topic, round);
        sub.disconnect();
    }
}

#[test]
fn a_message_acknowledged_before_the_subscribe_was_sent_is_not_delivered() {
    let (_broker, mut sub, mut publishers) = node("before");
    for round in 0..30u16 {
        let topic = format!("before/{round}");
        for p in &mut publishers {
            p.publish1(&topic, b"before", 1);
        }
        sub.subscribe(round + 1, &[(topic.as_str(), QoS::AtMostOnce)]);
        for p in &mut publishers {
            p.publish1(&topic, b"after", 2);
        }
        for _ in 0..SHARDS_HERE {
            let p = sub.recv_publish();
            assert_eq!(
                (p.topic.as_str(), &p.payload[..]),
                (topic.as_str(), &b"after"[..]),
                "round {round}"
            );
        }
    }
    sub.expect_nothing();
}
