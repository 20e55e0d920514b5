//! Bans over real sockets: a banned client id / username / IP address cannot connect
//! (CONNACK 5), a live client that becomes banned is kicked, a ban already expired or an
//! `ip_address` ban of something not an address is refused (108), and the
//! routes validate (107/108) and page. Loopback only; bounded waits.

mod common;

use common::{id_on_shard, AdminNode, SHARDS};
use serde_json::json;

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[test]
fn banned_clients_cannot_connect_and_a_live_one_is_kicked() {
    let dir = tempfile::tempdir().unwrap();
    let node = AdminNode::start(dir.path(), &[]);
    for shard in 0..SHARDS {
        let id = id_on_shard("ban", shard);
        let (mut live, code) = node.connect(&id, None, None);
        assert_eq!(code, 0);
        let mut bystander = node.connect(&id_on_shard("ok", shard), None, None).0;
        let ban =
            json!({"who": id, "as": "client_id", "reason": "r", "desc": "d", "until": now() + 600});
        let echo = node.expect("POST", "banned/", Some(ban.clone()), 0);
        assert_eq!(echo["data"], ban, "the request is echoed");
        live.expect_closed();
        bystander.ping();
        assert_eq!(node.connack(&id, None, None), 5, "banned client id");
        node.expect("DELETE", &format!("banned/{id}?as=client_id"), None, 0);
        assert_eq!(node.connack(&id, None, None), 0, "ban lifted");
    }
    node.expect(
        "POST",
        "banned/",
        Some(json!({"who": "mallory", "as": "username"})),
        0,
    );
    assert_eq!(node.connack("u1", Some("mallory"), None), 5);
    assert_eq!(node.connack("u1", Some("alice"), None), 0);
    // An IP address ban really matches (it never did in EMQ X 3.x).
    node.expect(
        "POST",
        "banned/",
        Some(json!({"who": "127.0.0.1", "as": "ip_address"})),
        0,
    );
    assert_eq!(node.connack("anyone", None, None), 5);
    node.expect("DELETE", "banned/127.0.0.1?as=ip_address", None, 0);
    assert_eq!(node.connack("anyone", None, None), 0);
    // A ban whose `until` already passed would never take effect: refused (108), not
    // answered 0 and silently ignored.
    let r = node.expect(
        "POST",
        "banned/",
        Some(json!({"who": "old", "as": "client_id", "until": now() - 5})),
        108,
    );
    assert!(r["message"].as_str().unwrap().contains("until"), "{r}");
    assert_eq!(node.connack("old", None, None), 0);
}

#[test]
fn banned_routes_validate_and_page() {
    let dir = tempfile::tempdir().unwrap();
    let node = AdminNode::start(dir.path(), &[]);
    let r = node.expect("POST", "banned/", Some(json!({"as": "client_id"})), 107);
    assert!(r["message"].as_str().unwrap().contains("who"));
    node.expect("POST", "banned/", Some(json!({"who": "x"})), 107);
    node.expect(
        "POST",
        "banned/",
        Some(json!({"who": "x", "as": "nick"})),
        108,
    );
    node.expect(
        "POST",
        "banned/",
        Some(json!({"who": "x", "as": "client_id", "until": "soon"})),
        108,
    );
    // An ip_address ban needs an IP address.
    for who in ["not-an-ip", "127.0.0", "::g"] {
        node.expect(
            "POST",
            "banned/",
            Some(json!({"who": who, "as": "ip_address"})),
            108,
        );
    }
    node.expect(
        "POST",
        "banned/",
        Some(json!({"who": "::1", "as": "ip_address"})),
        0,
    );
    node.expect("DELETE", "banned/x", None, 107);
    node.expect("DELETE", "banned/x?as=nick", None, 108);
    assert_eq!(node.call("POST", "banned/", None).status, 400);
    for i in 0..3 {
        node.expect(
            "POST",
            "banned/",
            Some(json!({"who": format!("c{i}"), "as": "client_id"})),
            0,
        );
    }
    node.expect("DELETE", "banned/::1?as=ip_address", None, 0);
    let page = node.expect("GET", "banned/?_page=2&_limit=2", None, 0);
    assert_eq!(page["meta"], json!({"page": 2, "limit": 2, "count": 3}));
    assert_eq!(page["data"].as_array().unwrap().len(), 1);
    let all = node.expect("GET", "banned/", None, 0);
    assert_eq!(all["data"][0]["until"], "undefined");
    assert_eq!(all["data"][0]["as"], "client_id");
    node.expect("GET", "banned/?_page=0", None, 108);
}
