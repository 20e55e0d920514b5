//! Plugins and the auth plugins over real sockets: honest `active` flags, load/unload codes,
//! the auth tables enforced at CONNECT while loaded (and their routes 404 while not), the
//! retainer's unload stopping retained delivery, and delayed publish.

mod common;

use std::time::{Duration, Instant};

use common::{AdminNode, QUIET};
use serde_json::json;
use shardmq::codec::QoS;

#[test]
fn plugin_list_and_load_unload_codes() {
    let dir = tempfile::tempdir().unwrap();
    let node = AdminNode::start(dir.path(), &[]);
    let list = node.expect("GET", "plugins/", None, 0);
    assert_eq!(list["data"][0]["node"], node.name);
    let plugins = list["data"][0]["plugins"].as_array().unwrap().clone();
    assert_eq!(plugins.len(), 25);
    let active = |name: &str| {
        plugins.iter().find(|p| p["name"] == name).unwrap()["active"]
            .as_bool()
            .unwrap()
    };
    assert!(active("emqx_management") && active("emqx_retainer") && active("emqx_dashboard"));
    assert!(!active("emqx_auth_clientid") && !active("emqx_recon"));
    assert_eq!(plugins[0]["version"], "v3.1.0");
    let node_list = node.expect("GET", &node.node_path("plugins/"), None, 0);
    assert_eq!(node_list["data"].as_array().unwrap().len(), 25);
    let put = |p: &str, what: &str| node.node_path(&format!("plugins/{p}/{what}"));
    let r = node.expect("PUT", &put("emqx_recon", "load"), None, 102);
    assert_eq!(r["message"], "not_supported");
    node.expect("PUT", &put("emqx_retainer", "load"), None, 110);
    node.expect("PUT", &put("emqx_web_hook", "unload"), None, 111);
    node.expect("PUT", &put("emqx_management", "unload"), None, 102);
    assert_eq!(
        node.call("PUT", &put("emqx_nope", "load"), None).status,
        404
    );
    assert_eq!(
        node.call("PUT", "nodes/other@host/plugins/emqx_web_hook/load", None)
            .status,
        404
    );
    node.load("emqx_web_hook");
    node.expect("PUT", &put("emqx_web_hook", "reload"), None, 0);
    let list = node.expect("GET", &node.node_path("plugins/"), None, 0);
    let hook = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "emqx_web_hook")
        .cloned();
    assert_eq!(hook.unwrap()["active"], true);
}

#[test]
fn auth_clientid_is_enforced_while_loaded_and_its_routes_404_while_not() {
    let dir = tempfile::tempdir().unwrap();
    let node = AdminNode::start(dir.path(), &[]);
    assert_eq!(node.call("GET", "auth_clientid", None).status, 404);
    node.load("emqx_auth_clientid");
    node.expect(
        "POST",
        "auth_clientid",
        Some(json!({"clientid": "dev1", "password": "pw1"})),
        0,
    );
    node.expect(
        "POST",
        "auth_clientid",
        Some(json!({"clientid": "dev1", "password": "x"})),
        113,
    );
    node.expect(
        "POST",
        "auth_clientid",
        Some(json!({"clientid": "dev2"})),
        107,
    );
    assert_eq!(
        node.expect("GET", "auth_clientid", None, 0)["data"],
        json!(["dev1"])
    );
    let entry = node.expect("GET", "auth_clientid/dev1", None, 0)["data"].clone();
    assert_eq!(entry["clientid"], "dev1");
    let hash = entry["password"].as_str().unwrap();
    assert_eq!(hash.len(), 64, "a sha256 hex, never the password");
    assert_eq!(
        node.expect("GET", "auth_clientid/nobody", None, 0)["data"],
        json!({})
    );

    assert_eq!(node.connack("dev1", Some("u"), Some("pw1")), 0);
    assert_eq!(node.connack("dev1", Some("u"), Some("wrong")), 4);
    assert_eq!(node.connack("dev1", None, None), 4);
    assert_eq!(
        node.connack("stranger", None, None),
        0,
        "unknown ids fall through"
    );

    node.expect(
        "PUT",
        "auth_clientid/dev1",
        Some(json!({"password": "pw2"})),
        0,
    );
    node.expect(
        "PUT",
        "auth_clientid/nobody",
        Some(json!({"password": "pw2"})),
        105,
    );
    assert_eq!(node.connack("dev1", Some("u"), Some("pw1")), 4);
    assert_eq!(node.connack("dev1", Some("u"), Some("pw2")), 0);

    node.unload("emqx_auth_clientid");
    assert_eq!(node.call("GET", "auth_clientid", None).status, 404);
    assert_eq!(
        node.connack("dev1", Some("u"), Some("wrong")),
        0,
        "an unloaded plugin checks nothing"
    );
    node.load("emqx_auth_clientid");
    assert_eq!(
        node.connack("dev1", Some("u"), Some("wrong")),
        4,
        "the table was kept"
    );
    node.expect("DELETE", "auth_clientid/dev1", None, 0);
    assert_eq!(node.connack("dev1", Some("u"), Some("wrong")), 0);
}

#[test]
fn auth_username_checks_known_usernames_and_anonymous_follows_the_setting() {
    let dir = tempfile::tempdir().unwrap();
    let node = AdminNode::start(dir.path(), &["mqtt.allow_anonymous=false"]);
    node.load("emqx_auth_username");
    node.expect(
        "POST",
        "auth_username",
        Some(json!({"username": "alice", "password": "a"})),
        0,
    );
    assert_eq!(
        node.expect("GET", "auth_username/alice", None, 0)["data"]["username"],
        "alice"
    );
    assert_eq!(node.connack("c1", Some("alice"), Some("a")), 0);
    assert_eq!(node.connack("c1", Some("alice"), Some("b")), 4);
    assert_eq!(node.connack("c1", None, None), 5, "anonymous refused");
    assert_eq!(
        node.connack("c1", Some("mallory"), Some("a")),
        5,
        "a username the table does not know is anonymous too"
    );
    node.expect("DELETE", "auth_username/alice", None, 0);
    assert_eq!(
        node.expect("GET", "auth_username", None, 0)["data"],
        json!([])
    );
}

#[test]
fn unloading_the_retainer_stops_retained_delivery_and_keeps_the_messages() {
    let dir = tempfile::tempdir().unwrap();
    let node = AdminNode::start(dir.path(), &[]);
    let mut publisher = node.connect("pub", None, None).0;
    publisher.publish_retained("keep/a", b"1", 1);
    let mut sub = node.connect("sub1", None, None).0;
    sub.subscribe(1, &[("keep/#", QoS::AtLeastOnce)]);
    assert_eq!(&sub.recv_publish().payload[..], b"1");
    node.unload("emqx_retainer");
    let mut sub2 = node.connect("sub2", None, None).0;
    sub2.subscribe(1, &[("keep/#", QoS::AtLeastOnce)]);
    sub2.expect_nothing();
    // Published while unloaded: not stored.
    publisher.publish_retained("keep/b", b"2", 2);
    // Loaded again: what was retained before is served again (unloading deleted nothing).
    node.load("emqx_retainer");
    let mut sub3 = node.connect("sub3", None, None).0;
    sub3.subscribe(1, &[("keep/#", QoS::AtLeastOnce)]);
    let p = sub3.recv_publish();
    assert_eq!((&p.topic[..], &p.payload[..]), ("keep/a", &b"1"[..]));
    sub3.expect_nothing();
}

#[test]
fn delayed_publish_arrives_after_its_delay_and_not_before() {
    let dir = tempfile::tempdir().unwrap();
    let node = AdminNode::start(dir.path(), &[]);
    node.load("emqx_delayed_publish");
    let mut sub = node.connect("dsub", None, None).0;
    sub.subscribe(1, &[("later/x", QoS::AtMostOnce)]);
    let mut publisher = node.connect("dpub", None, None).0;
    let sent = Instant::now();
    publisher.publish1("$delayed/1/later/x", b"hello", 1);
    assert!(
        sub.try_recv(Duration::from_millis(700)).is_none(),
        "too early"
    );
    let p = sub.recv_publish();
    assert!(
        sent.elapsed() >= Duration::from_millis(950),
        "{:?}",
        sent.elapsed()
    );
    assert_eq!(&p.topic[..], "later/x");
    assert_eq!(&p.payload[..], b"hello");
    // Unloaded: `$delayed/...` is an ordinary topic again.
    node.unload("emqx_delayed_publish");
    publisher.publish1("$delayed/1/later/x", b"now", 2);
    assert!(sub.try_recv(QUIET * 4).is_none());
}
