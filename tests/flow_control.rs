//! Flow control: a QoS 1 fan-in faster than its subscriber loses nothing with the default
//! queue bound (`mqtt.max_mqueue` = 1000), because publishers that feed a backlogged
//! subscriber wait for it: on its shard directly (even a pipelined burst larger than the
//! queue), and across shards through `SlowDown`/`FlowRelease` (a publisher with an inflight
//! window). Without flow control the subscriber's queue overflows and the oldest messages
//! are dropped (EMQ X behaviour).

mod common;

use common::*;
use shardmq::codec::{encode, Packet, ProtocolVersion, QoS};

/// Every PUBLISH in one write, as a client with a large window would send them.
fn pipelined(topic: &str, count: u32) -> bytes::BytesMut {
    let mut bytes = bytes::BytesMut::new();
    for i in 0..count {
        let p = publish(
            topic,
            &i.to_be_bytes(),
            QoS::AtLeastOnce,
            false,
            Some((i + 1) as u16),
        );
        encode(&p, ProtocolVersion::V311, &mut bytes).unwrap();
    }
    bytes
}

#[test]
fn a_pipelined_qos1_burst_on_the_subscribers_shard_loses_nothing_with_the_default_queue_bound() {
    const PER_PUBLISHER: u32 = 1500;
    let broker = TestBroker::default_broker();
    let mut sub = broker.client(&id_on_shard("flow-sub", 1), true);
    sub.subscribe(1, &[("flow/#", QoS::AtLeastOnce)]);
    // Two publishers on the subscriber's shard, each bursting more than the queue holds.
    let homes = [1, 1];
    let mut publishers: Vec<_> = homes
        .iter()
        .enumerate()
        .map(|(n, home)| broker.client(&id_on_shard(&format!("flow-pub{n}-"), *home), true))
        .collect();
    for (n, p) in publishers.iter_mut().enumerate() {
        p.send_bytes(&pipelined(&format!("flow/{n}"), PER_PUBLISHER));
    }
    let total = PER_PUBLISHER as usize * homes.len();
    let got = recv_publishes_acking(&mut sub, total);
    // Per publisher: every message, once, in order.
    for n in 0..homes.len() {
        let seqs: Vec<u32> = got
            .iter()
            .filter(|p| p.topic.as_str() == format!("flow/{n}"))
            .map(|p| u32::from_be_bytes(p.payload[..4].try_into().unwrap()))
            .collect();
        assert_eq!(
            seqs,
            (0..PER_PUBLISHER).collect::<Vec<_>>(),
            "publisher {n}"
        );
    }
    for p in publishers.iter_mut() {
        for _ in 0..PER_PUBLISHER {
            assert!(matches!(p.recv(), Packet::PubAck(_)));
        }
    }
}

#[test]
fn a_publisher_on_another_shard_is_slowed_to_the_subscribers_pace() {
    const TOTAL: u32 = 4000;
    const WINDOW: u32 = 100;
    let broker = TestBroker::default_broker();
    let mut sub = broker.client(&id_on_shard("xflow-sub", 1), true);
    sub.subscribe(1, &[("xflow/t", QoS::AtLeastOnce)]);
    let mut publisher = broker.client(&id_on_shard("xflow-pub", 0), true);
    // The publisher keeps up to WINDOW messages unacknowledged, like a client library does.
    let sender = std::thread::spawn(move || {
        publish_windowed(&mut publisher, "xflow/t", TOTAL, WINDOW, |i| {
            i.to_be_bytes().to_vec()
        })
    });
    let got = recv_publishes_acking(&mut sub, TOTAL as usize);
    let seqs: Vec<u32> = got
        .iter()
        .map(|p| u32::from_be_bytes(p.payload[..4].try_into().unwrap()))
        .collect();
    assert_eq!(seqs, (0..TOTAL).collect::<Vec<_>>());
    sender.join().unwrap();
}

#[test]
fn a_subscriber_that_stops_acknowledging_holds_its_publishers_only_until_it_stalls() {
    // The subscriber takes its inflight window and then never reads again. Its publisher is
    // held while the queue looks like it may drain; once it has not shrunk for
    // `flow::STALL` (1 s), the publisher runs free and the queue overflows (dropping the
    // oldest, as EMQ X does) instead of stopping the publisher for good.
    const TOTAL: u32 = 3000;
    const WINDOW: u32 = 100;
    let broker = TestBroker::default_broker();
    let mut sub = broker.client(&id_on_shard("stall-sub", 1), true);
    sub.subscribe(1, &[("stall/t", QoS::AtLeastOnce)]);
    let mut publisher = broker.client(&id_on_shard("stall-pub", 0), true);
    let started = std::time::Instant::now();
    publish_windowed(&mut publisher, "stall/t", TOTAL, WINDOW, |i| {
        i.to_be_bytes().to_vec()
    });
    let took = started.elapsed();
    assert!(
        took < std::time::Duration::from_secs(10),
        "a stalled subscriber held its publisher for {took:?}"
    );
    drop(sub);
}
