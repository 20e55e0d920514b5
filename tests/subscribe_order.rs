//! A PUBLISH sent on one connection right after a SUBSCRIBE on another, before the SUBACK,
//! reaches the new subscriber whichever shards serve the two, as on a broker with one thread
//! (which reads them in the order they arrived); a message routed before the SUBSCRIBE
//! arrived does not (ARCHITECTURE.md, "A SUBSCRIBE read late").

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
        // The SUBACK and one copy from each publisher, in any order (a server may send
        // matching messages before the SUBACK, MQTT 3.1.1 section 3.8.4).
        let (mut acked, mut got) = (false, 0);
        while !acked || got < SHARDS_HERE {
            match sub.recv() {
                Packet::SubAck(a) => {
                    assert_eq!(a.packet_id, round + 1);
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
    sub.expect_nothing();
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
