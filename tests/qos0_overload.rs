//! QoS 0 under overload: publishers faster than their subscriber are held to its pace (no
//! message is dropped while it keeps reading); a subscriber that stops reading holds them only
//! until flow control calls it stalled, then it alone loses messages. Its own test binary: the
//! publishers load every core.

mod common;

use common::*;
use shardmq::codec::{ProtocolVersion, QoS};

/// Connects as `id` and sends `count` QoS 0 PUBLISHes of `size`-byte payloads on `topic`
/// (each starting with `publisher` and its sequence number) in 64 KiB bursts, as fast as the
/// broker takes them; returns once a PINGRESP says every one was handled.
fn blast(
    addr: std::net::SocketAddr,
    id: &str,
    topic: &str,
    publisher: u32,
    count: u32,
    size: usize,
) {
    let (mut c, ack) = Raw::connect(addr, id, true, 0, None);
    assert_eq!(ack.code, 0);
    let mut burst = bytes::BytesMut::new();
    for seq in 0..count {
        let mut payload = [publisher.to_be_bytes(), seq.to_be_bytes()].concat();
        payload.resize(size, 0);
        let p = publish(topic, &payload, QoS::AtMostOnce, false, None);
        shardmq::codec::encode(&p, ProtocolVersion::V311, &mut burst).unwrap();
        if burst.len() > 64 * 1024 {
            c.send_bytes(&burst);
            burst.clear();
        }
    }
    c.send_bytes(&burst);
    c.ping(); // every PUBLISH before it was handled
}

#[test]
fn a_qos0_fan_in_faster_than_its_subscriber_loses_nothing_while_it_reads() {
    const PUBLISHERS: u32 = 8;
    const PER_PUBLISHER: u32 = 25_000;
    let broker = TestBroker::default_broker();
    let mut sub = broker.client("q0-sub", true);
    sub.subscribe(1, &[("q0in/+", QoS::AtMostOnce)]);
    let addr = broker.addr;
    let publishers: Vec<_> = (0..PUBLISHERS)
        .map(|p| {
            std::thread::spawn(move || {
                blast(
                    addr,
                    &format!("q0-pub-{p}"),
                    &format!("q0in/{p}"),
                    p,
                    PER_PUBLISHER,
                    200,
                )
            })
        })
        .collect();
    let mut next = vec![0u32; PUBLISHERS as usize];
    for _ in 0..PUBLISHERS * PER_PUBLISHER {
        let m = sub.recv_publish();
        let p = u32::from_be_bytes(m.payload[..4].try_into().unwrap()) as usize;
        let seq = u32::from_be_bytes(m.payload[4..8].try_into().unwrap());
        assert_eq!(
            seq, next[p],
            "publisher {p}: a QoS 0 message was dropped or reordered"
        );
        next[p] += 1;
    }
    for t in publishers {
        t.join().unwrap();
    }
    sub.expect_nothing();
}

#[test]
fn a_qos0_subscriber_that_stops_reading_holds_its_publisher_only_until_it_counts_as_stalled() {
    const COUNT: u32 = 40_000;
    let broker = TestBroker::default_broker();
    // Subscribes, then never reads again: its socket and its connection's buffer fill up.
    let mut stuck = broker.client("q0-stuck", true);
    stuck.subscribe(1, &[("q0out", QoS::AtMostOnce)]);
    let mut reader = broker.client("q0-reader", true);
    reader.subscribe(1, &[("q0out", QoS::AtMostOnce)]);
    let addr = broker.addr;
    let publisher = std::thread::spawn(move || blast(addr, "q0-out-pub", "q0out", 0, COUNT, 1024));
    for seq in 0..COUNT {
        let m = reader.recv_publish();
        let got = u32::from_be_bytes(m.payload[4..8].try_into().unwrap());
        assert_eq!(got, seq, "the reading subscriber lost a message");
    }
    // The publisher finished: the subscriber that stopped reading held it back for a while
    // (until it counted as stalled), not for good.
    publisher.join().unwrap();
    drop(stuck);
}
