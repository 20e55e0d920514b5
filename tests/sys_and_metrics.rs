//! `$SYS/brokers/<node>/...` topics (EMQ X layout) and the node-wide counters they carry,
//! collected from both shards, compared with EMQ X's way of counting after known traffic.

mod common;

use std::collections::HashMap;
use std::time::Instant;

use common::*;
use shardmq::codec::{Packet, PubResp, QoS};

/// Reads `$SYS` messages on `c` until the `n`-th `version` message, then returns every
/// `metrics/*` and `stats/*` value of the round that follows it (a snapshot taken after
/// the `n`-th round began).
fn sys_round(c: &mut Raw, node: &str, n: usize) -> HashMap<String, u64> {
    let base = format!("$SYS/brokers/{node}/");
    let deadline = Instant::now() + WAIT;
    let mut versions = 0;
    let mut values = HashMap::new();
    loop {
        assert!(Instant::now() < deadline, "no complete $SYS round in time");
        let p = c.recv_publish();
        let name = p
            .topic
            .as_str()
            .strip_prefix(&base)
            .unwrap_or_else(|| panic!("unexpected topic {}", p.topic.as_str()))
            .to_owned();
        if name == "version" {
            versions += 1;
            continue;
        }
        if versions < n {
            continue;
        }
        if name.starts_with("metrics/") || name.starts_with("stats/") {
            let v: u64 = std::str::from_utf8(&p.payload)
                .unwrap()
                .parse()
                .unwrap_or_else(|_| panic!("{name} is not a number"));
            values.insert(name, v);
        }
        if values.keys().filter(|k| k.starts_with("metrics/")).count()
            == shardmq::metrics::Metrics::NAMES.len()
        {
            return values;
        }
    }
}

#[test]
fn sys_topics_are_published_every_interval() {
    let broker = TestBroker::start(&["sys.interval=1", "sys.heartbeat=1"]);
    let mut c = broker.client("sys-watch", true);
    let base = format!("$SYS/brokers/{}", broker.node);
    c.subscribe(
        1,
        &[
            (format!("{base}/#").as_str(), QoS::AtMostOnce),
            ("$SYS/brokers", QoS::AtMostOnce),
        ],
    );
    let mut seen: HashMap<String, String> = HashMap::new();
    let wanted = [
        "$SYS/brokers".to_owned(),
        format!("{base}/version"),
        format!("{base}/sysdescr"),
        format!("{base}/uptime"),
        format!("{base}/datetime"),
        format!("{base}/stats/connections/count"),
        format!("{base}/metrics/messages/received"),
        format!("{base}/metrics/packets/connect"),
    ];
    let deadline = Instant::now() + WAIT;
    while !wanted.iter().all(|w| seen.contains_key(w)) {
        assert!(
            Instant::now() < deadline,
            "missing: {:?}",
            wanted
                .iter()
                .filter(|w| !seen.contains_key(*w))
                .collect::<Vec<_>>()
        );
        let p = c.recv_publish();
        assert!(!p.retain);
        seen.insert(
            p.topic.as_str().to_owned(),
            String::from_utf8(p.payload.to_vec()).unwrap(),
        );
    }
    assert_eq!(seen["$SYS/brokers"], broker.node);
    assert!(seen[&format!("{base}/version")].starts_with('v'));
    assert!(seen[&format!("{base}/uptime")].ends_with(" seconds"));
    let dt = &seen[&format!("{base}/datetime")];
    assert_eq!(dt.len(), "2024-01-01 00:00:00".len(), "{dt}");
    let conns: u64 = seen[&format!("{base}/stats/connections/count")]
        .parse()
        .unwrap();
    assert!(conns >= 1);
}

/// Uptime and datetime go out every `sys.heartbeat` seconds (EMQ X's `sys_heartbeat`, 30 by
/// default), the rest every `sys.interval` (`sys_interval`, 60).
#[test]
fn uptime_and_datetime_follow_the_heartbeat() {
    let broker = TestBroker::start(&["sys.interval=3600", "sys.heartbeat=1"]);
    let mut c = broker.client("sys-beat", true);
    let base = format!("$SYS/brokers/{}", broker.node);
    c.subscribe(1, &[(format!("{base}/#").as_str(), QoS::AtMostOnce)]);
    let mut beats = 0;
    while beats < 2 {
        let p = c.recv_publish();
        let name = p.topic.as_str().strip_prefix(&base).unwrap().to_owned();
        match name.as_str() {
            "/uptime" => beats += 1,
            "/datetime" => {}
            other => panic!("{other} before the first interval"),
        }
    }
}

#[test]
fn client_connected_and_disconnected_events_are_published() {
    let broker = TestBroker::default_broker();
    let mut w = broker.client(&id_on_shard("event-watch", 0), true);
    let filter = format!("$SYS/brokers/{}/clients/#", broker.node);
    w.subscribe(1, &[(filter.as_str(), QoS::AtMostOnce)]);
    for shard in 0..SHARDS {
        let id = id_on_shard("eventful", shard);
        let c = broker.client(&id, true);
        let p = w.recv_publish();
        assert_eq!(
            p.topic.as_str(),
            format!("$SYS/brokers/{}/clients/{id}/connected", broker.node)
        );
        let json: serde_json::Value = serde_json::from_slice(&p.payload).unwrap();
        assert_eq!(json["clientid"], id.as_str());
        assert_eq!(json["proto_ver"], 4);
        assert_eq!(json["clean_start"], true);
        c.disconnect();
        let p = w.recv_publish();
        assert_eq!(
            p.topic.as_str(),
            format!("$SYS/brokers/{}/clients/{id}/disconnected", broker.node)
        );
        let json: serde_json::Value = serde_json::from_slice(&p.payload).unwrap();
        assert_eq!(json["clientid"], id.as_str());
        assert_eq!(json["reason"], "normal");
    }
}

#[test]
fn metrics_after_known_traffic_match_emqx_counting() {
    let broker = TestBroker::start(&["sys.interval=1"]);
    // Traffic: a subscriber on shard 0, a publisher on shard 1.
    let mut sub = broker.client(&id_on_shard("m-sub", 0), true); // CONNECT, CONNACK
    sub.subscribe(1, &[("m/t", QoS::ExactlyOnce)]); // SUBSCRIBE, SUBACK
    let mut publisher = broker.client(&id_on_shard("m-pub", 1), true); // CONNECT, CONNACK
    publisher.publish0("m/t", b"0"); // PUBLISH in; PUBLISH out (qos 0)
    publisher.publish1("m/t", b"1", 1); // PUBLISH in, PUBACK out; PUBLISH out (qos 1)
    publisher.publish2("m/t", b"2", 2); // PUBLISH, PUBREC, PUBREL, PUBCOMP; PUBLISH out (qos 2)
    publisher.publish0("m/nobody", b"x"); // PUBLISH in, dropped: no subscriber
    publisher.ping(); // PINGREQ, PINGRESP

    assert_eq!(sub.recv_publish().qos, QoS::AtMostOnce);
    let p1 = sub.recv_publish();
    sub.send(&Packet::PubAck(PubResp::new(p1.packet_id.unwrap()))); // PUBACK in
    let p2 = sub.recv_publish();
    assert_eq!(p2.qos, QoS::ExactlyOnce);
    sub.send(&Packet::PubRec(PubResp::new(p2.packet_id.unwrap()))); // PUBREC in
    match sub.recv() {
        Packet::PubRel(_) => {} // PUBREL out
        other => panic!("expected PUBREL, got {other:?}"),
    }
    sub.send(&Packet::PubComp(PubResp::new(p2.packet_id.unwrap()))); // PUBCOMP in
    sub.disconnect(); // DISCONNECT in

    // The observer: CONNECT, CONNACK, SUBSCRIBE, SUBACK; $SYS messages are not counted.
    let mut observer = broker.client(&id_on_shard("m-observer", 1), true);
    let filter = format!("$SYS/brokers/{}/#", broker.node);
    observer.subscribe(1, &[(filter.as_str(), QoS::AtMostOnce)]);
    let m = sys_round(&mut observer, &broker.node, 2);

    let expect: &[(&str, u64)] = &[
        ("packets/connect", 3),
        ("packets/connack", 3),
        ("packets/subscribe", 2),
        ("packets/suback", 2),
        ("packets/publish/received", 4),
        ("packets/publish/sent", 3),
        ("packets/puback/received", 1),
        ("packets/puback/sent", 1),
        ("packets/puback/missed", 0),
        ("packets/pubrec/received", 1),
        ("packets/pubrec/sent", 1),
        ("packets/pubrel/received", 1),
        ("packets/pubrel/sent", 1),
        ("packets/pubcomp/received", 1),
        ("packets/pubcomp/sent", 1),
        ("packets/pingreq", 1),
        ("packets/pingresp", 1),
        ("packets/disconnect/received", 1),
        ("packets/disconnect/sent", 0),
        ("packets/unsubscribe", 0),
        ("packets/auth", 0),
        // 3 CONNECT + 2 SUBSCRIBE + 4 PUBLISH + PUBACK + PUBREC + PUBREL + PUBCOMP
        // + PINGREQ + DISCONNECT.
        ("packets/received", 15),
        // 3 CONNACK + 2 SUBACK + 3 PUBLISH + PUBACK + PUBREC + PUBREL + PUBCOMP + PINGRESP.
        ("packets/sent", 13),
        ("messages/received", 4),
        ("messages/qos0/received", 2),
        ("messages/qos1/received", 1),
        ("messages/qos2/received", 1),
        ("messages/sent", 3),
        ("messages/qos0/sent", 1),
        ("messages/qos1/sent", 1),
        ("messages/qos2/sent", 1),
        ("messages/dropped", 1),
        ("messages/forward", 0),
        ("messages/retained", 0),
    ];
    let mut wrong = Vec::new();
    for (name, want) in expect {
        let got = m[&format!("metrics/{name}")];
        if got != *want {
            wrong.push(format!("{name}: got {got}, want {want}"));
        }
    }
    assert!(
        wrong.is_empty(),
        "counters differ from EMQ X:\n{}",
        wrong.join("\n")
    );
    assert!(m["metrics/bytes/received"] > 0 && m["metrics/bytes/sent"] > 0);
    // Gauges: the publisher and the observer are connected; the subscriber left.
    assert_eq!(m["stats/connections/count"], 2);
    assert_eq!(m["stats/sessions/count"], 2);
}

#[test]
fn retained_gauge_counts_retained_messages_of_both_shards() {
    let broker = TestBroker::start(&["sys.interval=1"]);
    let mut publisher = broker.client("gauge-pub", true);
    for shard in 0..SHARDS {
        publisher.publish_retained(&topic_on_shard("gauge/r", shard), b"r", shard as u16 + 1);
    }
    let mut observer = broker.client("gauge-watch", true);
    let filter = format!("$SYS/brokers/{}/#", broker.node);
    observer.subscribe(1, &[(filter.as_str(), QoS::AtMostOnce)]);
    let m = sys_round(&mut observer, &broker.node, 2);
    assert_eq!(m["metrics/messages/retained"], 2);
    assert_eq!(m["stats/retained/count"], 2);
}
