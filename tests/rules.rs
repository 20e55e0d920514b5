//! The rule engine over the REST API and real sockets: a rule created with the document's
//! body (3.1 model) republishes what its SQL selects from matching messages to an MQTT
//! subscriber, survives a restart, and stops when deleted; bad SQL, an unknown column or an
//! unknown action are refused with code 400 and the reason.

mod common;

use common::*;
use serde_json::{json, Value};
use shardmq::codec::QoS;

fn rule_body(sql: &str) -> Value {
    json!({
        "name": "temp-rule",
        "for": "message.publish",
        "rawsql": sql,
        "actions": [{"name": "built_in:republish_action", "params": {"target_topic": "alerts/hot"}}],
        "description": "hot sensors"
    })
}

#[test]
fn a_rule_republishes_what_it_selects_until_it_is_deleted_and_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let node = AdminNode::start(dir.path(), &[]);
    let created = node.expect(
        "POST",
        "rules",
        Some(rule_body(
            "SELECT payload.temp AS temp, client_id FROM \"sensors/#\" WHERE payload.temp > 30",
        )),
        0,
    );
    let id = created["data"]["id"].as_str().unwrap().to_string();
    assert!(id.starts_with("temp-rule:"), "{created}");
    assert_eq!(created["data"]["enabled"], true);
    assert_eq!(created["data"]["for"], "message.publish");
    let listed = node.expect("GET", "rules", None, 0);
    assert_eq!(listed["data"][0]["id"], id.as_str());
    let shown = node.expect("GET", &format!("rules/{id}"), None, 0);
    assert_eq!(shown["data"]["rawsql"], created["data"]["rawsql"]);

    let (mut watcher, _) = node.connect(&id_on_shard("rule-watch", 0), None, None);
    watcher.subscribe(1, &[("alerts/hot", QoS::AtLeastOnce)]);
    let (mut sensor, _) = node.connect(&id_on_shard("sensor-1", 1), None, None);
    sensor.publish1("sensors/1", br#"{"temp": 35}"#, 1);
    sensor.publish1("sensors/1", br#"{"temp": 20}"#, 2);
    sensor.publish1("other/1", br#"{"temp": 99}"#, 3);
    let got = recv_publishes_acking(&mut watcher, 1);
    let v: Value = serde_json::from_slice(&got[0].payload).unwrap();
    assert_eq!(
        v,
        json!({"temp": 35, "client_id": id_on_shard("sensor-1", 1)})
    );
    watcher.expect_nothing();
    drop((watcher, sensor));
    node.stop();

    // The rule is admin state: it is back after a restart.
    let node = AdminNode::start(dir.path(), &[]);
    let (mut watcher, _) = node.connect(&id_on_shard("rule-watch2", 0), None, None);
    watcher.subscribe(1, &[("alerts/hot", QoS::AtLeastOnce)]);
    let (mut sensor, _) = node.connect(&id_on_shard("sensor-2", 1), None, None);
    sensor.publish1("sensors/2", br#"{"temp": 31}"#, 1);
    assert_eq!(recv_publishes_acking(&mut watcher, 1).len(), 1);
    // Deleted: nothing more.
    node.expect("DELETE", &format!("rules/{id}"), None, 0);
    assert_eq!(node.expect("GET", "rules", None, 0)["data"], json!([]));
    sensor.publish1("sensors/2", br#"{"temp": 40}"#, 2);
    watcher.expect_nothing();
    node.stop();
}

#[test]
fn bad_rules_are_refused_with_code_400_and_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let node = AdminNode::start(dir.path(), &[]);
    let refused = |body: Value| node.expect("POST", "rules", Some(body), 400)["message"].clone();
    assert!(refused(rule_body("SELEKT * FROM \"t\""))
        .as_str()
        .unwrap()
        .starts_with("SQL"));
    assert_eq!(
        refused(rule_body("SELECT nope FROM \"t\"")),
        "Unknown Column: nope"
    );
    let mut unknown_action = rule_body("SELECT * FROM \"t\"");
    unknown_action["actions"] = json!([{"name": "no:such_action", "params": {}}]);
    assert_eq!(refused(unknown_action), "Action no:such_action Not Found");
    assert_eq!(node.expect("GET", "rules", None, 0)["data"], json!([]));
    let missing = node.call("GET", "rules/nope:1", None);
    assert_eq!(missing.json["code"], 404);
    node.stop();
}
