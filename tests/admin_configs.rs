//! Configs, plugin configs and alarms over real sockets: a whitelisted change applies on
//! every shard at once (`allow_anonymous=false` refuses an anonymous client), bad keys and
//! values get their codes; alarms raise and clear (a connection cap forces one) and are
//! published to `$SYS`.

mod common;

use std::time::{Duration, Instant};

use common::{AdminNode, WAIT};
use serde_json::{json, Value};
use shardmq::codec::QoS;

#[test]
fn a_config_change_applies_at_once_and_bad_ones_get_their_codes() {
    let dir = tempfile::tempdir().unwrap();
    let node = AdminNode::start(dir.path(), &[]);
    let all = node.expect("GET", "configs/", None, 0);
    assert_eq!(all["data"][0]["node"], node.name);
    let rows = all["data"][0]["config"].as_array().unwrap().clone();
    let anon = rows
        .iter()
        .find(|r| r["key"] == "mqtt.allow_anonymous")
        .unwrap();
    assert_eq!(
        anon,
        &json!({"key": "mqtt.allow_anonymous", "value": "true", "datatpye": "flag", "app": "emqx"})
    );
    assert_eq!(node.connack("anon", None, None), 0);

    node.expect(
        "PUT",
        "configs/emqx",
        Some(json!({"key": "mqtt.allow_anonymous", "value": "false"})),
        0,
    );
    assert_eq!(node.connack("anon", None, None), 5);
    assert_eq!(
        node.connack("anon", Some("user"), Some("made-up")),
        5,
        "no auth source accepted it: anonymous, whatever its username"
    );
    let node_rows = node.expect("GET", &node.node_path("configs/"), None, 0);
    let anon = node_rows["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["key"] == "mqtt.allow_anonymous")
        .cloned();
    assert_eq!(anon.unwrap()["value"], "false");
    node.expect(
        "PUT",
        &node.node_path("configs/emqx"),
        Some(json!({"key": "mqtt.allow_anonymous", "value": "true"})),
        0,
    );
    assert_eq!(node.connack("anon", None, None), 0);

    node.expect(
        "PUT",
        "configs/emqx",
        Some(json!({"key": "mqtt.max_inflight", "value": "zero"})),
        108,
    );
    node.expect(
        "PUT",
        "configs/emqx",
        Some(json!({"key": "mqtt.max_inflight", "value": "0"})),
        108,
    );
    node.expect(
        "PUT",
        "configs/emqx",
        Some(json!({"key": "node.name", "value": "a@b"})),
        102,
    );
    node.expect(
        "PUT",
        "configs/emqx",
        Some(json!({"key": "mqtt.max_inflight"})),
        107,
    );
    assert_eq!(
        node.call(
            "PUT",
            "configs/nope",
            Some(json!({"key": "k", "value": "v"}))
        )
        .status,
        404
    );

    let path = node.node_path("plugin_configs/emqx_retainer");
    let got = node.expect("GET", &path, None, 0);
    let expiry = got["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["key"] == "retainer.expiry_interval")
        .cloned()
        .unwrap();
    assert_eq!(expiry["value"], "0s");
    assert_eq!(expiry["required"], true);
    node.expect(
        "PUT",
        &path,
        Some(json!({"retainer.expiry_interval": "1m", "retainer.max_payload_size": "1KB"})),
        0,
    );
    node.expect(
        "PUT",
        &path,
        Some(json!({"retainer.max_payload_size": "huge"})),
        108,
    );
    let got = node.expect("GET", &path, None, 0);
    let values: Vec<&Value> = got["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| &r["value"])
        .collect();
    assert!(
        values.contains(&&json!("60s")) && values.contains(&&json!("1024")),
        "{got}"
    );
    assert_eq!(
        node.expect(
            "GET",
            &node.node_path("plugin_configs/emqx_dashboard"),
            None,
            0
        )["data"],
        json!([])
    );
    assert_eq!(
        node.call("GET", &node.node_path("plugin_configs/emqx_nope"), None)
            .status,
        404
    );
    // The new payload limit is enforced: a 2 KB retained message is not stored.
    let mut publisher = node.connect("p", None, None).0;
    publisher.publish_retained("big/t", &[b'x'; 2048], 1);
    publisher.publish_retained("small/t", b"ok", 2);
    let mut sub = node.connect("s", None, None).0;
    sub.subscribe(
        1,
        &[("big/t", QoS::AtLeastOnce), ("small/t", QoS::AtLeastOnce)],
    );
    let p = sub.recv_publish();
    assert_eq!(&p.topic[..], "small/t");
    sub.expect_nothing();
}

#[test]
fn connection_alarm_raises_and_clears_and_is_published() {
    let dir = tempfile::tempdir().unwrap();
    let node = AdminNode::start(
        dir.path(),
        &[
            "listeners.tcp.max_connections=2",
            "alarms.check_interval_ms=50",
        ],
    );
    let present = |n: &AdminNode| node_alarms(n, "alarms/present");
    let mut watcher = node.connect("watcher", None, None).0;
    watcher.subscribe(1, &[("$SYS/brokers/+/alarms/#", QoS::AtMostOnce)]);
    let extra = node.connect("extra", None, None).0;
    let deadline = Instant::now() + WAIT;
    while !present(&node).contains(&"too_many_connections".to_string()) {
        assert!(Instant::now() < deadline, "alarm not raised");
        std::thread::sleep(Duration::from_millis(20));
    }
    let alert = next_alarm(&mut watcher, "too_many_connections");
    assert!(alert.0.ends_with("/alarms/alert"), "{alert:?}");
    assert_eq!(alert.1["desc"], "2");
    let cluster = node.expect("GET", "alarms/present", None, 0);
    assert_eq!(cluster["data"][0]["node"], node.name);
    extra.disconnect();
    let deadline = Instant::now() + WAIT;
    while present(&node).contains(&"too_many_connections".to_string()) {
        assert!(Instant::now() < deadline, "alarm not cleared");
        std::thread::sleep(Duration::from_millis(20));
    }
    let clear = next_alarm(&mut watcher, "too_many_connections");
    assert!(clear.0.ends_with("/alarms/clear"), "{clear:?}");
    let history = node.expect("GET", &format!("alarms/history/{}", node.name), None, 0);
    let row = history["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == "too_many_connections")
        .cloned()
        .unwrap();
    assert_eq!(
        row["clear_at"].as_str().unwrap().len(),
        19,
        "YYYY-MM-DD HH:MM:SS"
    );
    let cluster = node.expect("GET", "alarms/history", None, 0);
    assert_eq!(cluster["data"][0]["node"], node.name);
    assert_eq!(
        node.call("GET", "alarms/present/other@node", None).status,
        404
    );
}

fn node_alarms(node: &AdminNode, path: &str) -> Vec<String> {
    let v = node.expect("GET", &format!("{path}/{}", node.name), None, 0);
    v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap().to_string())
        .collect()
}

/// The next `$SYS` alarm publish about `id` (others, e.g. CPU on a busy machine, skipped).
fn next_alarm(c: &mut common::Raw, id: &str) -> (String, Value) {
    loop {
        let p = c.recv_publish();
        let v: Value = serde_json::from_slice(&p.payload).unwrap();
        if v["id"] == id {
            return (p.topic.to_string(), v);
        }
    }
}
