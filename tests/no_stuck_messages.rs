//! Every acknowledged QoS 1 message arrives: many publisher/subscriber pairs across more
//! shards than this machine has cores (4 shards on CI's 2), several rounds. Each publisher keeps a window of 100 in flight (bursts of 100, then their
//! PUBACKs); every message it got a PUBACK for must reach its subscriber, once, in order.
//! The subscribers are slower than their publishers (they pause briefly every 50 messages,
//! as a client doing work per message does), so every pair needs flow control all along.
//! With flow control that resumed a publisher when any backlogged subscriber of the shard
//! drained (not its own), publishers outran their subscribers and queues dropped
//! acknowledged messages. Its own test binary: it loads every core.

mod common;

use common::*;
use shardmq::codec::QoS;

#[test]
fn every_acknowledged_qos1_message_arrives_with_many_pairs_on_four_shards() {
    const SHARDS: usize = 4;
    const PAIRS: u32 = 32;
    const PER_PUBLISHER: u32 = 4000;
    const WINDOW: u32 = 100;
    const ROUNDS: u32 = 3;
    // A queue bound just above the backlog mark (256), so a pause that ends too early shows
    // as drops within this test's few thousand messages, not only at full speed.
    let broker = TestBroker::start_with_shards(SHARDS, &["mqtt.max_mqueue=300"]);
    for round in 0..ROUNDS {
        let mut subscribers = Vec::new();
        for p in 0..PAIRS {
            let topic = format!("pairs/{round}/{p}");
            let mut sub = broker.client(&format!("pair-sub-{round}-{p}"), true);
            sub.subscribe(1, &[(&topic, QoS::AtLeastOnce)]);
            subscribers.push(std::thread::spawn(move || {
                let mut got = Vec::with_capacity(PER_PUBLISHER as usize);
                while got.len() < PER_PUBLISHER as usize {
                    got.extend(recv_publishes_acking(&mut sub, 50));
                    // The load's shape, not a wait for an event: a consumer with work to do.
                    std::thread::sleep(std::time::Duration::from_millis(1));
                }
                for (i, m) in got.iter().enumerate() {
                    let seq = u32::from_be_bytes(m.payload[..4].try_into().unwrap());
                    assert_eq!(
                        seq, i as u32,
                        "round {round} pair {p}: lost, repeated or out of order"
                    );
                }
                sub.expect_nothing();
            }));
        }
        let mut publishers = Vec::new();
        for p in 0..PAIRS {
            let topic = format!("pairs/{round}/{p}");
            let mut publisher = broker.client(&format!("pair-pub-{round}-{p}"), true);
            publishers.push(std::thread::spawn(move || {
                publish_windowed(&mut publisher, &topic, PER_PUBLISHER, WINDOW, |i| {
                    let mut payload = i.to_be_bytes().to_vec();
                    payload.resize(64, 0);
                    payload
                });
            }));
        }
        for t in publishers {
            t.join().expect("every message was acknowledged");
        }
        for t in subscribers {
            t.join().expect("every acknowledged message arrived");
        }
    }
}
