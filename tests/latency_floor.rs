//! A lone client on an idle broker: every round trip is answered at once, at any shard count.
//! A liveness check, not a speed target: the bound (a median under 2 ms) is far above what a
//! round trip takes (tens of µs) and far below the wake-up floor a shard that sleeps through
//! its socket's readiness shows (a timer tick, an RCU grace period: 4-16 ms and more). Its
//! own test binary, so no other test loads the cores while it measures.

mod common;

use std::time::{Duration, Instant};

use common::*;
use shardmq::codec::{Packet, QoS};

const ROUNDS: usize = 50;
const FLOOR: Duration = Duration::from_millis(2);

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn assert_below_floor(what: &str, shards: usize, samples: Vec<Duration>) {
    let m = median(samples);
    assert!(
        m < FLOOR,
        "{what} with {shards} shards: median {m:?}, the broker sleeps through its input"
    );
}

/// Ping, QoS 1 PUBLISH→PUBACK, QoS 2 PUBLISH→PUBREC→PUBREL→PUBCOMP, SUBSCRIBE→SUBACK (with
/// the route announcement every other shard acknowledges first) and CONNECT→CONNACK (for a
/// client homed on another shard than the one that accepted it: a hand-over), one at a time.
fn lone_client(shards: usize) {
    let broker = TestBroker::start_with_shards(shards, &[]);
    let id = "lone";
    let mut c = broker.client(id, true);

    let mut pings = Vec::new();
    for _ in 0..ROUNDS {
        let t = Instant::now();
        c.ping();
        pings.push(t.elapsed());
    }
    assert_below_floor("PINGREQ→PINGRESP", shards, pings);

    let mut acks = Vec::new();
    for i in 0..ROUNDS {
        let t = Instant::now();
        c.publish1("lone/q1", b"x", i as u16 + 1);
        acks.push(t.elapsed());
    }
    assert_below_floor("QoS 1 PUBLISH→PUBACK", shards, acks);

    let mut flows = Vec::new();
    for i in 0..ROUNDS {
        let t = Instant::now();
        c.publish2("lone/q2", b"x", i as u16 + 1);
        flows.push(t.elapsed());
    }
    assert_below_floor("QoS 2 PUBLISH→PUBCOMP", shards, flows);

    let mut subacks = Vec::new();
    for i in 0..ROUNDS {
        let filter = format!("lone/sub/{i}");
        let t = Instant::now();
        let codes = c.subscribe(i as u16 + 1, &[(&filter, QoS::AtLeastOnce)]);
        subacks.push(t.elapsed());
        assert_eq!(codes, vec![1]);
    }
    assert_below_floor("SUBSCRIBE→SUBACK", shards, subacks);

    let mut connacks = Vec::new();
    for i in 0..ROUNDS {
        let id = format!("lone-connect-{i}");
        let t = Instant::now();
        let (other, ack) = Raw::connect(broker.addr, &id, true, 0, None);
        connacks.push(t.elapsed());
        assert_eq!(ack.code, 0);
        other.disconnect();
    }
    assert_below_floor("CONNECT→CONNACK", shards, connacks);

    // The client still works after all that: a message to itself arrives.
    c.subscribe(ROUNDS as u16 + 1, &[("lone/self", QoS::AtMostOnce)]);
    c.publish0("lone/self", b"still here");
    match c.recv() {
        Packet::Publish(p) => assert_eq!(&p.payload[..], b"still here"),
        other => panic!("expected the PUBLISH, got {other:?}"),
    }
}

#[test]
fn a_lone_clients_round_trips_are_far_below_a_wake_up_floor_on_one_shard() {
    lone_client(1);
}

#[test]
fn a_lone_clients_round_trips_are_far_below_a_wake_up_floor_on_four_shards() {
    lone_client(4);
}

/// A QoS 1 message for a durable session is acknowledged once its journal record is written,
/// through glommio's file I/O, which glommio submits and completes only in its reactor's
/// turn. A shard that napped with that write pending would hold every such PUBACK for a nap:
/// with the longest nap (10 ms), the median must still be far below it.
#[test]
fn a_durable_deliverys_puback_does_not_wait_for_a_nap() {
    for shards in [1, 2] {
        let broker = TestBroker::start_with_shards(shards, &["shards.nap_us=10000"]);
        let mut sub = broker.client("durable-sub", false);
        assert_eq!(
            sub.subscribe(1, &[("durable/t", QoS::AtLeastOnce)]),
            vec![1]
        );
        let mut publisher = broker.client("durable-pub", true);
        let mut acks = Vec::new();
        for i in 0..ROUNDS {
            let t = Instant::now();
            publisher.publish1("durable/t", b"x", i as u16 + 1);
            acks.push(t.elapsed());
            assert_eq!(recv_publishes_acking(&mut sub, 1).len(), 1);
        }
        assert_below_floor("durable QoS 1 PUBLISH→PUBACK", shards, acks);
    }
}
