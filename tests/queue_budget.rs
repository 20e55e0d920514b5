//! The broker-wide budget for queued messages, over real sockets: an offline persistent
//! session whose queue outgrows its shard's share of `mqtt.queue_budget` is shed (QoS 0 first,
//! then the oldest), the drops are counted as `messages/dropped/queue_budget`, and what is left
//! is delivered, newest kept, when the client comes back.

mod common;

use std::time::{Duration, Instant};

use common::*;
use shardmq::codec::{ProtocolVersion, QoS};

#[test]
fn an_offline_queue_over_the_budget_is_shed_oldest_first_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    // 2 shards: 1 MiB of queued messages each; no per-session bound.
    let node = AdminNode::start(
        dir.path(),
        &["mqtt.queue_budget=2097152", "mqtt.max_mqueue=0"],
    );
    let id = "queued-offline";
    let (mut sub, ack) = Raw::connect_with(
        node.mqtt,
        connect_packet(id, false, 0, None, ProtocolVersion::V311),
    );
    assert_eq!(ack.code, 0);
    sub.subscribe(1, &[("budget/q", QoS::AtLeastOnce)]);
    sub.disconnect();
    // 64 messages of 64 KiB (4 MiB) for the offline session.
    let (mut publisher, code) = node.connect("queue-pub", None, None);
    assert_eq!(code, 0);
    let payload = vec![7u8; 64 * 1024];
    for i in 0..64u16 {
        let mut p = payload.clone();
        p[..2].copy_from_slice(&i.to_be_bytes());
        publisher.publish1("budget/q", &p, i + 1);
    }
    // Every message is queued (each was acknowledged); the shard's next tick sheds the queue
    // to under 90 % of the 1 MiB share: at most 14 of the 64 KiB messages stay, so at least 50
    // are counted (a tick during the publishing may have shed some already).
    let deadline = Instant::now() + WAIT;
    let dropped = loop {
        let n = node.stats_sum("messages/dropped/queue_budget");
        if n >= 50 {
            break n;
        }
        assert!(Instant::now() < deadline, "the queue was never shed");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(dropped < 64, "dropped {dropped}: the newest should stay");
    // Back online: the rest arrives, the newest included, in order.
    let (mut back, ack) = Raw::connect_with(
        node.mqtt,
        connect_packet(id, false, 0, None, ProtocolVersion::V311),
    );
    assert!(ack.session_present);
    let kept = 64 - dropped as usize;
    let seen: Vec<u16> = recv_publishes_acking(&mut back, kept)
        .iter()
        .map(|p| u16::from_be_bytes([p.payload[0], p.payload[1]]))
        .collect();
    let expected: Vec<u16> = (64 - kept as u16..64).collect();
    assert_eq!(
        seen, expected,
        "the oldest were shed, the newest kept in order"
    );
    back.expect_nothing();
}
