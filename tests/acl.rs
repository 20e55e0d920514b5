//! Authorization over real sockets: an `acl.file` in EMQ X's syntax decides who may subscribe
//! and publish where. A denied subscription gets SUBACK 0x80 in its place (5.0: 0x80, or 0x87
//! with `acl.deny_subscribe_v5 = not_authorized`) while the client's other filters are
//! granted; a denied publish reaches nobody and is counted (a 5.0 client's PUBACK or PUBREC
//! says 0x87, as EMQ X answers), and with `acl.deny_action = disconnect` its client is
//! disconnected.

mod common;

use common::*;
use shardmq::codec::{Packet, ProtocolVersion, PubResp, QoS};

const RULES: &str = r##"
%% the interoperability suite's rule, plus a read-only user
{deny, all, subscribe, ["test/nosubscribe"]}.
{deny, {user, "ro"}, publish, ["#"]}.
{deny, all, publish, ["test/nopublish"]}.
{allow, all}.
"##;

fn acl_file(dir: &std::path::Path) -> String {
    let path = dir.join("acl.conf");
    std::fs::write(&path, RULES).unwrap();
    format!("acl.file={}", path.display())
}

/// The SUBACK code a 5.0 client gets for the denied filter.
fn v5_denial(node: &AdminNode) -> u8 {
    let (mut v5, ack) = Raw::connect_with(
        node.mqtt,
        connect_packet("acl-v5", true, 0, None, ProtocolVersion::V5),
    );
    assert_eq!(ack.code, 0);
    let codes = v5.subscribe(1, &[("test/nosubscribe", QoS::AtMostOnce)]);
    assert_eq!(codes.len(), 1);
    codes[0]
}

#[test]
fn a_5_0_client_is_told_not_authorized_when_the_config_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let set = acl_file(dir.path());
    let node = AdminNode::start(
        dir.path(),
        &[set.as_str(), "acl.deny_subscribe_v5=not_authorized"],
    );
    assert_eq!(v5_denial(&node), 0x87);
    node.stop();
}

#[test]
fn denied_subscriptions_fail_in_place_and_denied_publishes_reach_nobody() {
    let dir = tempfile::tempdir().unwrap();
    let set = acl_file(dir.path());
    let node = AdminNode::start(dir.path(), &[set.as_str()]);
    // 3.1.1: the denied filter gets 0x80, the others their QoS, in order.
    let (mut sub, code) = node.connect("acl-sub", None, None);
    assert_eq!(code, 0);
    let codes = sub.subscribe(
        1,
        &[
            ("test/ok", QoS::AtLeastOnce),
            ("test/nosubscribe", QoS::AtLeastOnce),
            ("test/#", QoS::AtMostOnce),
        ],
    );
    assert_eq!(codes, vec![1, 0x80, 0]);
    // Only denied: a SUBACK of failures, and nothing is subscribed.
    assert_eq!(
        sub.subscribe(2, &[("test/nosubscribe", QoS::AtMostOnce)]),
        vec![0x80]
    );
    // 5.0, by default: 0x80 "unspecified error" (the reason is not revealed).
    assert_eq!(v5_denial(&node), 0x80);

    // The read-only user's publish reaches nobody and is counted; others' arrive.
    let (mut ro, code) = node.connect("acl-ro", Some("ro"), None);
    assert_eq!(code, 0);
    ro.publish1("test/ok", b"from ro", 1);
    let (mut rw, _) = node.connect("acl-rw", Some("rw"), None);
    rw.publish1("test/ok", b"from rw", 1);
    // (One copy for the two matching filters: overlapping subscriptions are merged.)
    let got = recv_publishes_acking(&mut sub, 1);
    assert_eq!(&got[0].payload[..], b"from rw");
    sub.expect_nothing();
    assert_eq!(node.stats_sum("messages/dropped/acl_denied"), 1);
    node.stop();
}

/// A 5.0 publisher learns that its QoS 1 or 2 message was refused: PUBACK / PUBREC 0x87.
/// A refused QoS 2 flow ends there, so its packet id is free for the next message.
#[test]
fn a_5_0_publisher_is_told_its_publish_was_not_authorized() {
    let dir = tempfile::tempdir().unwrap();
    let set = acl_file(dir.path());
    let node = AdminNode::start(dir.path(), &[set.as_str()]);
    let (mut sub, _) = node.connect("acl-sub3", None, None);
    sub.subscribe(1, &[("test/#", QoS::AtLeastOnce)]);
    let (mut v5, ack) = Raw::connect_with(
        node.mqtt,
        connect_packet("acl-pub-v5", true, 0, None, ProtocolVersion::V5),
    );
    assert_eq!(ack.code, 0);
    let mut answer = |packet: Packet| {
        v5.send(&packet);
        match v5.recv() {
            Packet::PubAck(r) => ("PUBACK", r.packet_id, r.reason),
            Packet::PubRec(r) => ("PUBREC", r.packet_id, r.reason),
            Packet::PubComp(r) => ("PUBCOMP", r.packet_id, r.reason),
            other => panic!("expected an acknowledgement, got {other:?}"),
        }
    };
    let denied = |qos, id| publish("test/nopublish", b"no", qos, false, Some(id));
    assert_eq!(answer(denied(QoS::AtLeastOnce, 1)), ("PUBACK", 1, 0x87));
    assert_eq!(answer(denied(QoS::ExactlyOnce, 2)), ("PUBREC", 2, 0x87));
    // The same id again, on a topic it may publish to: a new message, not a resend.
    let allowed = publish("test/ok", b"yes", QoS::ExactlyOnce, false, Some(2));
    assert_eq!(answer(allowed), ("PUBREC", 2, 0x00));
    assert_eq!(
        answer(Packet::PubRel(PubResp::new(2))),
        ("PUBCOMP", 2, 0x00)
    );
    let got = recv_publishes_acking(&mut sub, 1);
    assert_eq!(&got[0].payload[..], b"yes");
    sub.expect_nothing();
    // A 3.1.1 client's PUBACK has no reason code: the same packet as for any publish.
    let (mut v3, _) = node.connect("acl-pub-v3", None, None);
    v3.publish1("test/nopublish", b"no", 3);
    sub.expect_nothing();
    assert_eq!(node.stats_sum("messages/dropped/acl_denied"), 3);
    node.stop();
}

#[test]
fn with_deny_action_disconnect_a_denied_publisher_is_disconnected() {
    let dir = tempfile::tempdir().unwrap();
    let set = acl_file(dir.path());
    let node = AdminNode::start(dir.path(), &[set.as_str(), "acl.deny_action=disconnect"]);
    let (mut ro, code) = node.connect("acl-ro2", Some("ro"), None);
    assert_eq!(code, 0);
    ro.publish0("test/ok", b"x");
    ro.expect_closed();
    // Subscriptions are unaffected by deny_action: still refused in place, not disconnected.
    let (mut sub, _) = node.connect("acl-sub2", None, None);
    assert_eq!(
        sub.subscribe(1, &[("test/nosubscribe", QoS::AtMostOnce)]),
        vec![0x80]
    );
    sub.ping();
    node.stop();
}

#[test]
fn a_rule_file_that_does_not_parse_stops_the_start_with_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.conf");
    std::fs::write(&path, "{allow, all}.\n{allow, nobody}.\n").unwrap();
    let mut cfg = shardmq::config::Config::default();
    cfg.listeners.tcp.bind = "127.0.0.1:0".parse().unwrap();
    cfg.management.bind = "127.0.0.1:0".parse().unwrap();
    cfg.node.data_dir = dir.path().join("data").to_string_lossy().into_owned();
    cfg.acl.file = path.to_string_lossy().into_owned();
    let err = match shardmq::broker::start(cfg, &[0]) {
        Ok(b) => {
            b.stop();
            panic!("a broker started with a bad ACL file");
        }
        Err(e) => e.to_string(),
    };
    assert!(err.contains("acl.file") && err.contains("line 2"), "{err}");
}
