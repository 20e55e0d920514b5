//! Password guessing is throttled per source address, over real sockets: after
//! `auth_fail_limit` failed authentications from one IP address, MQTT CONNECTs from it get
//! CONNACK 5 and REST API requests get 429 for the back-off, even with the right password,
//! while a client with the right password from another address (127.0.0.2 on loopback) is
//! not affected; the refusals are counted in `GET /stats` and `GET /metrics`.

mod common;

use std::io::{Read, Write};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use common::{
    basic, connect_packet, id_on_shard, tcp_from, AdminNode, Raw, ADMIN_AUTH, SHARDS, WAIT,
};
use serde_json::{json, Value};
use shardmq::codec::{ProtocolVersion, Str};

const HERE: &str = "127.0.0.1";
const NEXT_DOOR: &str = "127.0.0.2";

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// A broker with `emqx_auth_username` loaded and the user `alice` / `secret`.
fn node_with_alice(dir: &std::path::Path, sets: &[&str]) -> AdminNode {
    let node = AdminNode::start(dir, sets);
    node.load("emqx_auth_username");
    node.expect(
        "POST",
        "auth_username",
        Some(json!({"username": "alice", "password": "secret"})),
        0,
    );
    node
}

/// The CONNACK code of alice's CONNECT with `password` from `from` (client id `id`).
fn alice(node: &AdminNode, from: &str, id: &str, password: &str) -> u8 {
    let (c, code) = node.connect_from(ip(from), id, Some("alice"), Some(password));
    if code == 0 {
        c.disconnect();
    }
    code
}

/// One HTTP/1.1 request from the local address `from`; the status, the headers (lower-cased
/// names) and the body.
fn http_from(
    node: &AdminNode,
    from: &str,
    method: &str,
    path: &str,
    auth: Option<&str>,
) -> (u16, Vec<(String, String)>, String) {
    let mut s = tcp_from(ip(from), node.http);
    s.set_read_timeout(Some(WAIT)).unwrap();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\nContent-Length: 0\r\n"
    );
    if let Some(a) = auth {
        req.push_str(&format!("Authorization: {a}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)
        .expect("the whole response, then close");
    let text = String::from_utf8(raw).expect("UTF-8 response");
    let (head, body) = text.split_once("\r\n\r\n").expect("a response head");
    let mut lines = head.lines();
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    (status, headers, body.to_string())
}

/// The sum over the shards of a `GET /stats` figure.
fn stats_sum(node: &AdminNode, name: &str) -> u64 {
    let (status, _, body) = http_from(node, NEXT_DOOR, "GET", "/stats", Some(ADMIN_AUTH));
    assert_eq!(status, 200, "{body}");
    let shards: Value = serde_json::from_str(&body).unwrap();
    shards
        .as_array()
        .expect("one object per shard")
        .iter()
        .map(|s| s[name].as_u64().unwrap_or_else(|| panic!("{name} in {s}")))
        .sum()
}

/// `GET /metrics` (Prometheus text).
fn prometheus(node: &AdminNode) -> String {
    let (status, _, body) = http_from(node, NEXT_DOOR, "GET", "/metrics", Some(ADMIN_AUTH));
    assert_eq!(status, 200, "{body}");
    body
}

#[test]
fn mqtt_guesses_from_one_address_get_connack_5_even_with_the_right_password_and_not_next_door() {
    let dir = tempfile::tempdir().unwrap();
    // The defaults: 5 failures within 60 s, 60 s back-off.
    let node = node_with_alice(dir.path(), &[]);
    assert_eq!(alice(&node, HERE, "warm-up", "secret"), 0);

    // The guesses spread over both shards (the home shard follows the client id): the
    // allowance is the node's, not each shard's.
    for i in 0..5 {
        let id = id_on_shard(&format!("guess{i}"), i % SHARDS);
        assert_eq!(alice(&node, HERE, &id, "wrong"), 4, "guess {i}");
    }
    for shard in 0..SHARDS {
        let id = id_on_shard("after", shard);
        let (mut c, code) = node.connect_from(ip(HERE), &id, Some("alice"), Some("secret"));
        assert_eq!(code, 5, "throttled, even with the right password");
        c.expect_closed_silently();
        assert_eq!(alice(&node, HERE, &id, "wrong"), 5);
    }
    // MQTT 5.0: 0x8A, as a ban.
    let mut v5 = connect_packet("after-v5", true, 0, None, ProtocolVersion::V5);
    v5.username = Some(Str::from("alice"));
    v5.password = Some(bytes::Bytes::from_static(b"secret"));
    let (_, ack) = Raw::connect_from(ip(HERE), node.mqtt, v5);
    assert_eq!(ack.code, 0x8A);

    // Another address with the right password is not affected, on either shard.
    for shard in 0..SHARDS {
        let id = id_on_shard("neighbour", shard);
        assert_eq!(alice(&node, NEXT_DOOR, &id, "secret"), 0);
    }
    // Nor is an anonymous client from there (the REST API is another table).
    assert_eq!(node.connect_from(ip(NEXT_DOOR), "anon", None, None).1, 0);
    assert_eq!(node.call("GET", "brokers/", None).status, 200);

    assert_eq!(stats_sum(&node, "connections/refused/auth_failed"), 5);
    assert_eq!(stats_sum(&node, "connections/refused/auth_throttled"), 5);
    assert_eq!(stats_sum(&node, "auth/throttled_addresses"), 1);
    let text = prometheus(&node);
    assert!(
        text.lines()
            .any(|l| l.starts_with("shardmq_connections_refused_auth_throttled_total{shard=")),
        "{text}"
    );
    // Only EMQ X's own set in the REST API's metrics.
    let metrics = node.expect("GET", "metrics/", None, 0);
    let set = metrics["data"][0]["metrics"].as_object().unwrap();
    for ours in [
        "connections/refused/auth_failed",
        "connections/refused/auth_throttled",
        "auth/throttled_addresses",
    ] {
        assert!(!set.contains_key(ours), "{ours} in {set:?}");
    }
}

#[test]
fn mqtt_backoff_ends_and_a_success_before_the_limit_clears_the_failures() {
    let dir = tempfile::tempdir().unwrap();
    let node = node_with_alice(
        dir.path(),
        &[
            "mqtt.auth_fail_limit=2",
            "mqtt.auth_fail_window=60",
            "mqtt.auth_fail_backoff=1",
        ],
    );
    for _ in 0..3 {
        assert_eq!(alice(&node, HERE, "c", "wrong"), 4);
        assert_eq!(alice(&node, HERE, "c", "secret"), 0, "clears the failure");
    }
    assert_eq!(alice(&node, HERE, "c", "wrong"), 4);
    let throttled_from = Instant::now();
    assert_eq!(alice(&node, HERE, "c", "wrong"), 4, "the second: throttled");
    assert_eq!(alice(&node, HERE, "c", "secret"), 5);

    // The back-off (1 s) ends: the right password works again, and not before.
    let deadline = Instant::now() + WAIT;
    loop {
        match alice(&node, HERE, "c", "secret") {
            0 => break,
            5 if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
            code => panic!(
                "CONNACK {code} {:?} after the throttle",
                throttled_from.elapsed()
            ),
        }
    }
    assert!(throttled_from.elapsed() >= Duration::from_secs(1));
    // And the address starts from zero.
    assert_eq!(alice(&node, HERE, "c", "wrong"), 4);
    assert_eq!(alice(&node, HERE, "c", "secret"), 0);
}

#[test]
fn mqtt_anonymous_connects_neither_clear_failures_nor_escape_the_throttle() {
    let dir = tempfile::tempdir().unwrap();
    // allow_anonymous is true: a guesser could slip anonymous CONNECTs between guesses.
    let node = node_with_alice(dir.path(), &["mqtt.auth_fail_limit=3"]);
    for _ in 0..2 {
        assert_eq!(alice(&node, HERE, "c", "wrong"), 4);
        assert_eq!(
            node.connack("anon", None, None),
            0,
            "anonymous: not a proof"
        );
    }
    assert_eq!(alice(&node, HERE, "c", "wrong"), 4, "the third: throttled");
    assert_eq!(node.connect("anon", None, None).1, 5);
    assert_eq!(alice(&node, NEXT_DOOR, "c", "secret"), 0);
}

#[test]
fn mqtt_throttle_off_lets_every_guess_through() {
    let dir = tempfile::tempdir().unwrap();
    let node = node_with_alice(dir.path(), &["mqtt.auth_fail_limit=0"]);
    for _ in 0..20 {
        assert_eq!(alice(&node, HERE, "c", "wrong"), 4);
    }
    assert_eq!(alice(&node, HERE, "c", "secret"), 0);
    assert_eq!(stats_sum(&node, "connections/refused/auth_throttled"), 0);
}

#[test]
fn api_guesses_from_one_address_get_401_then_429_and_not_next_door() {
    let dir = tempfile::tempdir().unwrap();
    let node = AdminNode::start(dir.path(), &[]);
    let wrong = basic("admin", "guess");
    for i in 0..5 {
        let (status, headers, body) =
            http_from(&node, HERE, "GET", "/api/v3/brokers/", Some(&wrong));
        assert_eq!(status, 401, "guess {i}: {body}");
        assert!(headers.iter().any(|(k, _)| k == "www-authenticate"));
    }
    for auth in [wrong.as_str(), ADMIN_AUTH] {
        let (status, headers, body) = http_from(&node, HERE, "GET", "/api/v3/brokers/", Some(auth));
        assert_eq!(status, 429, "{body}");
        let v: Value = serde_json::from_str(&body).expect("a JSON error body");
        assert_eq!(v["code"], 429, "{v}");
        assert!(v["message"].is_string(), "{v}");
        let retry = headers
            .iter()
            .find(|(k, _)| k == "retry-after")
            .expect("Retry-After");
        assert!(retry.1.parse::<u64>().unwrap() <= 60, "{retry:?}");
    }
    // The dashboard login is refused too; the liveness check needs no credentials.
    assert_eq!(http_from(&node, HERE, "POST", "/api/v3/auth", None).0, 429);
    assert_eq!(http_from(&node, HERE, "GET", "/status", None).0, 200);

    // Another address with the right credentials is served.
    let (status, _, body) = http_from(
        &node,
        NEXT_DOOR,
        "GET",
        "/api/v3/brokers/",
        Some(ADMIN_AUTH),
    );
    assert_eq!(status, 200, "{body}");
    // MQTT from the throttled address is another table: not affected.
    assert_eq!(node.connect_from(ip(HERE), "mqtt-client", None, None).1, 0);

    let text = prometheus(&node);
    for line in [
        "shardmq_http_refused_auth_failed_total 5",
        "shardmq_http_refused_auth_throttled_total 3",
        "shardmq_http_auth_throttled_addresses_total 1",
    ] {
        assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
    }
}

#[test]
fn api_failed_dashboard_logins_count_and_a_good_login_clears() {
    let dir = tempfile::tempdir().unwrap();
    let node = AdminNode::start(dir.path(), &["management.auth_fail_limit=2"]);
    let login = |password: &str| {
        node.call_as(
            None,
            "POST",
            "auth",
            Some(json!({"username": "admin", "password": password})),
        )
    };
    for _ in 0..3 {
        assert_eq!(login("guess").json["code"], 103);
        assert_eq!(login("public").json["code"], 0, "clears the failure");
    }
    assert_eq!(login("guess").json["code"], 103);
    assert_eq!(login("guess").json["code"], 103);
    let refused = login("public");
    assert_eq!(refused.status, 429);
    assert_eq!(refused.json["code"], 429);
    assert_eq!(
        node.call("GET", "brokers/", None).status,
        429,
        "Basic auth too"
    );
}
