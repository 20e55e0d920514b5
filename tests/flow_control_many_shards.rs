//! Flow control with many shards: a QoS 1 fan-in from publishers on every shard is held to
//! its subscriber's pace. Its own test binary: eight shards and 32 publisher threads load
//! this machine's cores, and the other flow-control tests (which assume an unloaded broker
//! for their default queue bound) must not run beside it.

mod common;

use common::*;
use shardmq::codec::QoS;

#[test]
fn many_publishers_on_many_shards_are_held_to_one_subscribers_pace() {
    // Eight shards (sharing this machine's cores), 32 publishers spread over them, one
    // subscriber. Together the remote publishers outrun the subscriber many times over; a
    // pause that ended on a timer (10 ms) let the queue grow without bound until it dropped.
    // Held until the subscriber drains, the queue stays within its high-water mark plus what
    // is in flight on the mesh (a few thousand messages here), well under this bound.
    // Every message must arrive, once, in order per publisher.
    const SHARDS: usize = 8;
    const PUBLISHERS: u32 = 32;
    const PER_PUBLISHER: u32 = 2000;
    const WINDOW: u32 = 32;
    let broker = TestBroker::start_with_shards(SHARDS, &["mqtt.max_mqueue=16000"]);
    let sub_id = "manyflow-sub";
    let mut sub = broker.client(sub_id, true);
    sub.subscribe(1, &[("manyflow/+", QoS::AtLeastOnce)]);
    let sub_shard = shardmq::home_shard(sub_id, SHARDS);
    let mut senders = Vec::new();
    let mut remote = 0;
    for p in 0..PUBLISHERS {
        let id = format!("manyflow-pub-{p}");
        if shardmq::home_shard(&id, SHARDS) != sub_shard {
            remote += 1;
        }
        let mut publisher = broker.client(&id, true);
        let topic = format!("manyflow/{p}");
        senders.push(std::thread::spawn(move || {
            publish_windowed(&mut publisher, &topic, PER_PUBLISHER, WINDOW, |i| {
                [p.to_be_bytes(), i.to_be_bytes()].concat()
            })
        }));
    }
    assert!(
        remote >= PUBLISHERS / 2,
        "most publishers are on other shards"
    );
    let got = recv_publishes_acking(&mut sub, (PUBLISHERS * PER_PUBLISHER) as usize);
    let mut next = vec![0u32; PUBLISHERS as usize];
    for p in &got {
        let publisher = u32::from_be_bytes(p.payload[..4].try_into().unwrap()) as usize;
        let seq = u32::from_be_bytes(p.payload[4..8].try_into().unwrap());
        assert_eq!(
            seq, next[publisher],
            "publisher {publisher}: lost or out of order"
        );
        next[publisher] += 1;
    }
    for s in senders {
        s.join().unwrap();
    }
}
