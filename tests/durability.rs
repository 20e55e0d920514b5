//! Durability over real restarts: persistent sessions (subscriptions, queued and in-flight
//! QoS 1/2 messages) and retained messages survive a clean stop, a restart with another shard
//! count, and `kill -9` in the middle of a stream of acknowledged QoS 1 messages to an
//! offline persistent session: every acknowledged message arrives, in order.

mod common;

use std::io::Read;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use shardmq::codec::{Packet, ProtocolVersion, PubResp, QoS};

/// The payloads (as numbers) and DUP flags a client receives until nothing more comes,
/// completing every flow (PUBACK; PUBREC, then PUBCOMP for each PUBREL).
fn drain_numbers(c: &mut Raw) -> Vec<(u32, bool)> {
    let mut got = Vec::new();
    // A quiet second ends it (generous: CI runs other tests on the same cores).
    while let Some(p) = c.try_recv(Duration::from_secs(1)) {
        match p {
            Packet::Publish(p) => {
                let n: u32 = std::str::from_utf8(&p.payload).unwrap().parse().unwrap();
                got.push((n, p.dup));
                match (p.qos, p.packet_id) {
                    (QoS::AtLeastOnce, Some(id)) => c.send(&Packet::PubAck(PubResp::new(id))),
                    (QoS::ExactlyOnce, Some(id)) => c.send(&Packet::PubRec(PubResp::new(id))),
                    _ => {}
                }
            }
            Packet::PubRel(r) => c.send(&Packet::PubComp(PubResp::new(r.packet_id))),
            other => panic!("unexpected {other:?}"),
        }
    }
    got
}

#[test]
fn sessions_and_retained_messages_survive_a_restart_and_a_new_shard_count() {
    let dir = tempfile::tempdir().unwrap();
    let node = AdminNode::start(dir.path(), &[]);
    let sub_id = id_on_shard("dur-sub", 0);
    // A persistent subscriber takes two messages and acknowledges neither, then leaves.
    let (mut sub, _) = Raw::connect(node.mqtt, &sub_id, false, 0, None);
    assert_eq!(sub.subscribe(1, &[("dur/a", QoS::ExactlyOnce)]), vec![2]);
    let (mut publisher, _) = Raw::connect(node.mqtt, &id_on_shard("dur-pub", 1), true, 0, None);
    publisher.publish1("dur/a", b"0", 1);
    publisher.publish2("dur/a", b"1", 2);
    let first = sub.recv_publish();
    let second = sub.recv_publish();
    assert_eq!(
        (&first.payload[..], &second.payload[..]),
        (&b"0"[..], &b"1"[..])
    );
    sub.drop_socket();
    // Once the broker saw it go (else the next message may still be sent to the dead
    // socket, and come back with DUP like the first two)...
    let deadline = std::time::Instant::now() + WAIT;
    while node.stats_sum("connections/count") != 1 {
        assert!(
            std::time::Instant::now() < deadline,
            "the subscriber's drop was seen"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    // ... more arrive and are queued offline; a retained message is stored.
    for (i, pid) in (2..6).zip(10..) {
        publisher.publish1("dur/a", i.to_string().as_bytes(), pid);
    }
    publisher.publish_retained("dur/kept", b"r", 20);
    drop(publisher);
    node.stop();

    // Back with one shard instead of two: the session moved to its new home.
    let node = AdminNode::start_with_shards(dir.path(), 1, &[]);
    let (mut sub, ack) = Raw::connect(node.mqtt, &sub_id, false, 0, None);
    assert!(ack.session_present, "the session survived the restart");
    let got = drain_numbers(&mut sub);
    // The two in flight again with DUP set, then the queued ones, in order.
    let numbers: Vec<u32> = got.iter().map(|(n, _)| *n).collect();
    assert_eq!(numbers, [0, 1, 2, 3, 4, 5], "{got:?}");
    assert!(
        got[0].1 && got[1].1,
        "in-flight messages are re-sent with DUP: {got:?}"
    );
    assert!(!got[2].1);
    // Everything was acknowledged: a reconnect gets nothing more.
    sub.disconnect();
    let (mut sub, ack) = Raw::connect(node.mqtt, &sub_id, false, 0, None);
    assert!(ack.session_present);
    sub.expect_nothing();
    // The retained message is there for a new subscriber.
    let (mut late, _) = Raw::connect(node.mqtt, "dur-late", true, 0, None);
    late.subscribe(1, &[("dur/kept", QoS::AtMostOnce)]);
    assert_eq!(&late.recv_publish().payload[..], b"r");
    node.stop();

    // A session that ended (clean session) is not brought back.
    let node = AdminNode::start(dir.path(), &[]);
    let (c, _) = Raw::connect(node.mqtt, &sub_id, true, 0, None);
    c.disconnect();
    node.stop();
    let node = AdminNode::start(dir.path(), &[]);
    let (_c, ack) = Raw::connect(node.mqtt, &sub_id, false, 0, None);
    assert!(!ack.session_present);
    node.stop();
}

#[test]
fn persistence_off_keeps_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let off = ["persistence.enable=false"];
    let node = AdminNode::start(dir.path(), &off);
    let (mut sub, _) = Raw::connect(node.mqtt, "nodur", false, 0, None);
    sub.subscribe(1, &[("nodur/t", QoS::AtLeastOnce)]);
    sub.disconnect();
    node.stop();
    assert!(!dir.path().join("journal").exists());
    let node = AdminNode::start(dir.path(), &off);
    let (_c, ack) = Raw::connect(node.mqtt, "nodur", false, 0, None);
    assert!(!ack.session_present);
    node.stop();
}

const BIN: &str = env!("CARGO_BIN_EXE_shardmq");

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The broker binary on this MQTT port and data directory, once it serves: its MQTT port and
/// its own HTTP port accept. The HTTP port is bound only after the MQTT port was claimed, so a
/// port another test's broker grabbed in the meantime makes this one fail to start, never a
/// foreign broker answer.
fn spawn_broker(mqtt: u16, data: &std::path::Path) -> std::process::Child {
    let http = free_port();
    let mut child = Command::new(BIN)
        .args([
            "--mqtt",
            &format!("127.0.0.1:{mqtt}"),
            "--http",
            &format!("127.0.0.1:{http}"),
            "--shards",
            "2",
            "--set",
            &format!("node.data_dir={}", data.display()),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let up = |port: u16| std::net::TcpStream::connect(("127.0.0.1", port)).is_ok();
    while !(up(http) && up(mqtt)) {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            let _ = child.stderr.take().unwrap().read_to_string(&mut err);
            panic!("shardmq exited with {status}: {err}");
        }
        assert!(Instant::now() < deadline, "shardmq did not listen");
        std::thread::sleep(Duration::from_millis(20));
    }
    child
}

#[test]
fn kill_9_in_the_middle_of_a_stream_loses_no_acknowledged_message() {
    let data = tempfile::tempdir().unwrap();
    let mqtt = free_port();
    let addr: std::net::SocketAddr = format!("127.0.0.1:{mqtt}").parse().unwrap();
    let mut broker = spawn_broker(mqtt, data.path());
    // The persistent subscriber is homed on the other shard than the publisher.
    let sub_id = id_on_shard("k9-sub", 0);
    let (mut sub, _) = Raw::connect(addr, &sub_id, false, 0, None);
    sub.subscribe(1, &[("k9/t", QoS::AtLeastOnce)]);
    sub.disconnect();
    // A stream of QoS 1 messages, each acknowledged before the next; the broker is killed
    // once 300 were acknowledged, while the stream goes on.
    let acked = Arc::new(AtomicUsize::new(0));
    let counter = acked.clone();
    let pub_id = id_on_shard("k9-pub", 1);
    let stream = std::thread::spawn(move || {
        let connect = connect_packet(&pub_id, true, 0, None, ProtocolVersion::V311);
        let mut p = Raw::open(addr);
        p.send(&Packet::Connect(Box::new(connect)));
        let _ = p.try_recv(WAIT);
        for i in 0..800u32 {
            let pid = (i % 60000 + 1) as u16;
            p.send_bytes(&encode(&publish(
                "k9/t",
                i.to_string().as_bytes(),
                QoS::AtLeastOnce,
                false,
                Some(pid),
            )));
            match p.try_recv_or_closed(WAIT) {
                Some(Packet::PubAck(a)) if a.packet_id == pid => {
                    counter.store(i as usize + 1, Ordering::SeqCst)
                }
                _ => return, // the broker is gone
            }
        }
    });
    let deadline = Instant::now() + 4 * WAIT;
    while acked.load(Ordering::SeqCst) < 300 {
        assert!(Instant::now() < deadline, "the stream stalled");
        std::thread::yield_now();
    }
    broker.kill().unwrap(); // SIGKILL
    broker.wait().unwrap();
    stream.join().unwrap();
    let acknowledged = acked.load(Ordering::SeqCst) as u32;
    assert!(acknowledged >= 300);

    // A new port: the old one was free for anyone from the kill on.
    let mqtt = free_port();
    let addr: std::net::SocketAddr = format!("127.0.0.1:{mqtt}").parse().unwrap();
    let mut broker = spawn_broker(mqtt, data.path());
    let (mut sub, ack) = Raw::connect(addr, &sub_id, false, 0, None);
    assert!(ack.session_present);
    let got: Vec<u32> = drain_numbers(&mut sub)
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    // Every acknowledged message, in order (one more may have been stored and not acked).
    assert!(
        got.len() as u32 >= acknowledged,
        "{} of {acknowledged}",
        got.len()
    );
    assert_eq!(got, (0..got.len() as u32).collect::<Vec<_>>());
    broker.kill().unwrap();
    broker.wait().unwrap();
}

fn encode(p: &Packet) -> Vec<u8> {
    let mut out = bytes::BytesMut::new();
    shardmq::codec::encode(p, ProtocolVersion::V311, &mut out).unwrap();
    out.to_vec()
}

#[test]
fn the_journal_is_compacted_and_stays_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let node = AdminNode::start(dir.path(), &["persistence.compact_bytes=8192"]);
    let sub_id = id_on_shard("cmp-sub", 0);
    let (mut sub, _) = Raw::connect(node.mqtt, &sub_id, false, 0, None);
    sub.subscribe(1, &[("cmp/t", QoS::AtLeastOnce)]);
    let (mut publisher, _) = Raw::connect(node.mqtt, &id_on_shard("cmp-pub", 0), true, 0, None);
    // 2,000 messages through the durable session: two records each (kept, done), ~120 KB.
    for i in 0..2000u32 {
        publisher.publish1("cmp/t", i.to_string().as_bytes(), (i % 60000 + 1) as u16);
        let p = sub.recv_publish();
        sub.send(&Packet::PubAck(PubResp::new(p.packet_id.unwrap())));
    }
    let journal = dir.path().join("journal").join("shard-0.log");
    // The housekeeping tick rewrites it from the live state (one session, nothing queued).
    let deadline = Instant::now() + WAIT;
    loop {
        let len = std::fs::metadata(&journal).unwrap().len();
        if len < 8192 {
            break;
        }
        assert!(Instant::now() < deadline, "journal still {len} bytes");
        std::thread::sleep(Duration::from_millis(50));
    }
    sub.drop_socket();
    publisher.publish1("cmp/t", b"after", 7);
    node.stop();
    let node = AdminNode::start(dir.path(), &[]);
    let (mut sub, ack) = Raw::connect(node.mqtt, &sub_id, false, 0, None);
    assert!(ack.session_present);
    assert_eq!(&sub.recv_publish().payload[..], b"after");
    sub.expect_nothing();
    node.stop();
}
