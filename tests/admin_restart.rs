//! Durable admin state: stop the in-process broker, start a new one on the same data
//! directory, and the bans, apps, users, auth tables, plugin states and changed configs are
//! still there and still enforced.

mod common;

use common::{basic, AdminNode};
use serde_json::json;

#[test]
fn admin_state_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let node = AdminNode::start(dir.path(), &[]);
    node.expect(
        "POST",
        "banned/",
        Some(json!({"who": "evil", "as": "client_id", "reason": "spam"})),
        0,
    );
    let secret = node.expect("POST", "apps/", Some(json!({"app_id": "ci"})), 0)["data"]["secret"]
        .as_str()
        .unwrap()
        .to_string();
    node.expect(
        "POST",
        "users/",
        Some(json!({"username": "ops", "password": "pw"})),
        0,
    );
    node.load("emqx_auth_clientid");
    node.expect(
        "POST",
        "auth_clientid",
        Some(json!({"clientid": "dev", "password": "pw"})),
        0,
    );
    node.unload("emqx_retainer");
    node.expect(
        "PUT",
        "configs/emqx",
        Some(json!({"key": "mqtt.allow_anonymous", "value": "false"})),
        0,
    );
    node.stop();
    // No file may hold a secret or password in clear.
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            continue; // the journal: messages and sessions, no credentials
        }
        let text = std::fs::read_to_string(path).unwrap();
        assert!(
            !text.contains(&secret) && !text.contains("\"pw\""),
            "{text}"
        );
    }

    let node = AdminNode::start(dir.path(), &[]);
    let bans = node.expect("GET", "banned/", None, 0);
    assert_eq!(bans["data"][0]["who"], "evil");
    assert_eq!(bans["data"][0]["reason"], "spam");
    assert_eq!(node.connack("evil", Some("u"), None), 5);
    assert_eq!(
        node.call_as(Some(&basic("ci", &secret)), "GET", "brokers/", None)
            .status,
        200
    );
    assert_eq!(
        node.call_as(Some(&basic("ops", "pw")), "GET", "brokers/", None)
            .status,
        200
    );
    let plugins = node.expect("GET", &node.node_path("plugins/"), None, 0);
    let active = |name: &str| {
        plugins["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .unwrap()["active"]
            .clone()
    };
    assert_eq!(active("emqx_auth_clientid"), true);
    assert_eq!(active("emqx_retainer"), false);
    assert_eq!(node.connack("dev", Some("u"), Some("bad")), 4);
    assert_eq!(node.connack("dev", Some("u"), Some("pw")), 0);
    assert_eq!(
        node.connack("anon", None, None),
        5,
        "allow_anonymous=false kept"
    );
    // The bootstrap credentials were not recreated over the saved ones.
    assert_eq!(
        node.expect("GET", "apps/", None, 0)["data"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
}
