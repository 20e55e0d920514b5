//! Rendering tests: envelope, pagination, error codes and statuses, wire bytes, model shapes
//! against api-v3.md's examples, Prometheus text.

use serde_json::{json, Value};
use shardmq_http::model::{
    format_datetime, format_load, format_uptime, kmg, BanKind, Banned, BrokerInfo, ListenerInfo,
    Memory, NamedValues, NodeInfo, NodeStats, ShardView, ShutdownCount, SubscriptionInfo,
};
use shardmq_http::parse::parse_query;
use shardmq_http::render::{family_name, render_shards, Kind};
use shardmq_http::{ApiError, ErrorCode, HttpError, Paging, Response};

fn body(resp: &Response) -> Value {
    serde_json::from_slice(&resp.body).unwrap()
}

fn wire(resp: &Response, keep_alive: bool) -> String {
    let mut out = Vec::new();
    resp.write_to(&mut out, keep_alive, false, false);
    String::from_utf8(out).unwrap()
}

#[test]
fn envelopes() {
    assert_eq!(body(&Response::ok()), json!({"code": 0}));
    assert_eq!(
        body(&Response::data(&json!({"a": 1}))),
        json!({"code": 0, "data": {"a": 1}})
    );
    let resp = Response::paginate(&[1, 2, 3], Paging { page: 1, limit: 2 });
    assert_eq!(
        body(&resp),
        json!({"code": 0, "data": [1, 2], "meta": {"page": 1, "limit": 2, "count": 3}})
    );
    // Key order on the wire: code, data, meta (as the document shows it).
    let text = String::from_utf8(resp.body).unwrap();
    assert!(text.starts_with(r#"{"code":0,"data":[1,2],"meta":{"page":1,"limit":2,"count":3}}"#));
}

#[test]
fn pagination_rules() {
    let q = |s: &str| Paging::from_pairs(&parse_query(s));
    assert_eq!(
        q(""),
        Ok(Paging {
            page: 1,
            limit: 10_000
        })
    );
    assert_eq!(q("_page=2&_limit=10"), Ok(Paging { page: 2, limit: 10 }));
    for bad in [
        "_page=0",
        "_limit=0",
        "_page=x",
        "_limit=-1",
        "_page=",
        "_limit=1.5",
        "_page=99999999999999999999999",
    ] {
        let err = q(bad).unwrap_err();
        assert_eq!(err.code, ErrorCode::ParameterType, "{bad}");
        let resp = Response::error(&err);
        assert_eq!(resp.status, 200);
        assert_eq!(body(&resp)["code"], 108);
    }
    let rows: Vec<u32> = (0..25).collect();
    let page3 = Paging { page: 3, limit: 10 };
    assert_eq!(page3.slice(&rows), &rows[20..25]);
    let past = Paging { page: 9, limit: 10 };
    assert_eq!(
        body(&Response::paginate(&rows, past)),
        json!({"code": 0, "data": [], "meta": {"page": 9, "limit": 10, "count": 25}})
    );
    let huge = Paging {
        page: u64::MAX,
        limit: u64::MAX,
    };
    assert!(huge.slice(&rows).is_empty());
}

#[test]
fn error_codes_and_statuses() {
    let cases = [
        (ErrorCode::Unknown, 102, 200),
        (ErrorCode::MissingParameter, 107, 200),
        (ErrorCode::ParameterType, 108, 200),
        (ErrorCode::BodyNotJson, 109, 400),
        (ErrorCode::ClientNotOnline, 112, 200),
        (ErrorCode::BadTopic, 115, 200),
        (ErrorCode::Unauthorized, 401, 401),
        (ErrorCode::NotFound, 404, 404),
        (ErrorCode::PayloadTooLarge, 413, 413),
        (ErrorCode::HeadersTooLarge, 431, 431),
    ];
    for (code, json_code, status) in cases {
        let resp = Response::error(&ApiError::new(code, "why"));
        assert_eq!(resp.status, status, "{code:?}");
        assert_eq!(body(&resp), json!({"code": json_code, "message": "why"}));
    }
    let unauthorized = wire(&Response::unauthorized(), true);
    assert!(unauthorized.starts_with("HTTP/1.1 401 Unauthorized\r\n"));
    assert!(unauthorized.contains("\r\nWWW-Authenticate: Basic realm=\"shardmq\"\r\n"));
    assert_eq!(
        body(&Response::not_found()),
        json!({"code": 404, "message": "Not found"})
    );
}

#[test]
fn http_errors_are_json_and_close() {
    let resp = Response::http_error(HttpError::PayloadTooLarge);
    assert_eq!(resp.status, 413);
    assert!(resp.close);
    assert_eq!(body(&resp)["code"], 413);
    let resp = Response::http_error(HttpError::HeadersTooLarge);
    assert_eq!(body(&resp)["code"], 431);
}

#[test]
fn wire_format() {
    let text = wire(&Response::ok(), true);
    assert_eq!(
        text,
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 10\r\n\r\n{\"code\":0}"
    );
    assert!(wire(&Response::ok(), false).contains("\r\nConnection: close\r\n"));
    let mut out = Vec::new();
    Response::ok().write_to(&mut out, true, true, false);
    assert!(String::from_utf8(out)
        .unwrap()
        .contains("\r\nConnection: keep-alive\r\n"));
    let mut head = Vec::new();
    Response::ok().write_to(&mut head, true, false, true);
    assert!(String::from_utf8(head)
        .unwrap()
        .ends_with("Content-Length: 10\r\n\r\n"));
    // Header injection is impossible.
    let resp = Response::ok().with_header("X-A", "a\r\nSet-Cookie: x");
    assert!(wire(&resp, true).contains("X-A: aSet-Cookie: x\r\n"));
}

#[test]
fn broker_and_node_shapes() {
    let broker = BrokerInfo {
        datetime: "2019-04-29 10:56:41".into(),
        node: Some("emqx@127.0.0.1".into()),
        node_status: "Running".into(),
        otp_release: "R21/10.3.2".into(),
        sysdescr: "EMQ X Broker".into(),
        uptime: "3 minutes, 59 seconds".into(),
        version: "v3.1.0".into(),
    };
    let expected = r#"{"datetime":"2019-04-29 10:56:41","node":"emqx@127.0.0.1","node_status":"Running","otp_release":"R21/10.3.2","sysdescr":"EMQ X Broker","uptime":"3 minutes, 59 seconds","version":"v3.1.0"}"#;
    assert_eq!(serde_json::to_string(&broker).unwrap(), expected);
    let single = BrokerInfo {
        node: None,
        ..broker
    };
    assert!(!serde_json::to_string(&single).unwrap().contains("\"node\""));

    let node = NodeInfo {
        connections: 1,
        load1: format_load(2.75),
        load15: format_load(2.87),
        load5: format_load(2.5666),
        max_fds: 7168,
        memory_total: Memory::Bytes(80_162_816),
        memory_used: Memory::Bytes(62_254_160),
        name: "emqx@127.0.0.1".into(),
        node: None,
        node_status: "Running".into(),
        otp_release: "R21/10.3.2".into(),
        process_available: 262_144,
        process_used: 331,
        uptime: format_uptime(86_400 + 18 * 3600 + 45 * 60 + 1),
        version: "v3.1.0".into(),
    };
    let one = serde_json::to_value(&node).unwrap();
    assert_eq!(one["memory_total"], 80_162_816);
    assert_eq!(one["load5"], "2.57");
    assert_eq!(one["uptime"], "1 days,18 hours, 45 minutes, 1 seconds");
    assert!(one.get("node").is_none());
    let listed = serde_json::to_value(node.for_list()).unwrap();
    assert_eq!(listed["memory_total"], "76.45M");
    assert_eq!(listed["memory_used"], "59.37M");
    assert_eq!(listed["node"], "emqx@127.0.0.1");
}

#[test]
fn formats() {
    assert_eq!(format_uptime(59), "59 seconds");
    assert_eq!(format_uptime(239), "3 minutes, 59 seconds");
    assert_eq!(format_uptime(3600), "1 hours, 0 minutes, 0 seconds");
    assert_eq!(kmg(1024), "1024");
    assert_eq!(kmg(2048), "2.00K");
    assert_eq!(kmg(3 * 1024 * 1024 * 1024 / 2), "1.50G");
    assert_eq!(
        format_datetime(2019, 4, 29, 10, 5, 1),
        "2019-04-29 10:05:01"
    );
}

#[test]
fn listener_shutdown_count_quirk() {
    let mut l = ListenerInfo {
        acceptors: 8,
        current_conns: 2,
        listen_on: "0.0.0.0:1883".into(),
        max_conns: 1_024_000,
        protocol: "mqtt:tcp".into(),
        shutdown_count: ShutdownCount::default(),
    };
    assert_eq!(
        serde_json::to_value(&l).unwrap()["shutdown_count"],
        json!([])
    );
    l.shutdown_count = ShutdownCount(NamedValues::from_pairs([("closed", 2), ("kicked", 1)]));
    assert_eq!(
        serde_json::to_string(&l).unwrap(),
        r#"{"acceptors":8,"current_conns":2,"listen_on":"0.0.0.0:1883","max_conns":1024000,"protocol":"mqtt:tcp","shutdown_count":{"closed":2,"kicked":1}}"#
    );
    let back: ListenerInfo = serde_json::from_str(&serde_json::to_string(&l).unwrap()).unwrap();
    assert_eq!(back, l);
}

#[test]
fn stats_and_subscriptions() {
    let stats = NodeStats {
        node: "emqx@127.0.0.1".into(),
        stats: NamedValues::from_pairs([("connections/count", 0), ("connections/max", 2)]),
    };
    assert_eq!(
        serde_json::to_string(&stats).unwrap(),
        r#"{"node":"emqx@127.0.0.1","connections/count":0,"connections/max":2}"#
    );
    let sub = SubscriptionInfo {
        client_id: "mosquitto_mqtt".into(),
        node: "emqx@127.0.0.1".into(),
        qos: 0,
        topic: "t".into(),
    };
    assert_eq!(
        serde_json::to_string(&sub).unwrap(),
        r#"{"client_id":"mosquitto_mqtt","node":"emqx@127.0.0.1","qos":0,"topic":"t"}"#
    );
    let mut a = NamedValues::from_pairs([("x", 1), ("y", 2)]);
    a.merge_sum(&NamedValues::from_pairs([("y", 3), ("z", 4)]));
    assert_eq!(a, NamedValues::from_pairs([("x", 1), ("y", 5), ("z", 4)]));
}

#[test]
fn banned_shape() {
    let body = r#"{"who":"mqttjs_ab9069449e","as":"client_id","reason":"banned the clientId","desc":"normal banned","until":1536146187}"#;
    let ban: Banned = serde_json::from_str(body).unwrap();
    assert_eq!(ban.kind, BanKind::ClientId);
    assert_eq!(serde_json::to_string(&ban).unwrap(), body);
    let forever = Banned { until: None, ..ban };
    assert_eq!(
        serde_json::to_value(&forever).unwrap()["until"],
        "undefined"
    );
    assert!(serde_json::from_str::<Banned>(r#"{"who":"x","as":"nobody"}"#).is_err());
}

#[test]
fn shard_view_json_and_prometheus() {
    let shard = |id: u32, conns: u64, connects: u64| ShardView {
        shard: id,
        core: id + 2,
        stats: NamedValues::from_pairs([("connections/count", conns)]),
        metrics: NamedValues::from_pairs([("packets/connect", connects)]),
        event_loop: NamedValues::from_pairs([("loop/busy_us", 7), ("mesh/depth", 1)]),
        rules: Vec::new(),
    };
    let shard_with_gauges = |id: u32| ShardView {
        shard: id,
        core: id,
        stats: NamedValues::from_pairs([("connections/max", 5)]),
        metrics: NamedValues::from_pairs([("messages/retained", 2)]),
        event_loop: NamedValues::from_pairs([("loop/busy_permille", 250)]),
        rules: Vec::new(),
    };
    let shards = [shard(0, 3, 10), shard(1, 4, 20)];
    assert_eq!(
        serde_json::to_string(&shards[0]).unwrap(),
        r#"{"shard":0,"core":2,"connections/count":3,"packets/connect":10,"loop/busy_us":7,"mesh/depth":1}"#
    );
    assert_eq!(
        family_name("packets/connect", Kind::Counter),
        "shardmq_packets_connect_total"
    );
    // `_count` is a summary's suffix in Prometheus: a gauge does without it.
    assert_eq!(
        family_name("connections/count", Kind::Gauge),
        "shardmq_connections"
    );
    let text = render_shards(&shards);
    let expected = "\
# HELP shardmq_connections EMQ X stat connections/count, per shard
# TYPE shardmq_connections gauge
shardmq_connections{shard=\"0\",core=\"2\"} 3
shardmq_connections{shard=\"1\",core=\"3\"} 4
# HELP shardmq_packets_connect_total EMQ X metric packets/connect, per shard
# TYPE shardmq_packets_connect_total counter
shardmq_packets_connect_total{shard=\"0\",core=\"2\"} 10
shardmq_packets_connect_total{shard=\"1\",core=\"3\"} 20
# HELP shardmq_loop_busy_us_total Shard event loop figure loop/busy_us, per shard
# TYPE shardmq_loop_busy_us_total counter
shardmq_loop_busy_us_total{shard=\"0\",core=\"2\"} 7
shardmq_loop_busy_us_total{shard=\"1\",core=\"3\"} 7
# HELP shardmq_mesh_depth Shard event loop figure mesh/depth, per shard
# TYPE shardmq_mesh_depth gauge
shardmq_mesh_depth{shard=\"0\",core=\"2\"} 1
shardmq_mesh_depth{shard=\"1\",core=\"3\"} 1
";
    assert_eq!(text, expected);
    // Figures that go down are gauges, and a permille is a ratio in base units.
    let text = render_shards(&[shard_with_gauges(0)]);
    let expected = "\
# HELP shardmq_connections_max EMQ X stat connections/max, per shard
# TYPE shardmq_connections_max gauge
shardmq_connections_max{shard=\"0\",core=\"0\"} 5
# HELP shardmq_messages_retained EMQ X metric messages/retained, per shard
# TYPE shardmq_messages_retained gauge
shardmq_messages_retained{shard=\"0\",core=\"0\"} 2
# HELP shardmq_loop_busy_ratio Shard event loop figure loop/busy_permille, per shard
# TYPE shardmq_loop_busy_ratio gauge
shardmq_loop_busy_ratio{shard=\"0\",core=\"0\"} 0.25
";
    assert_eq!(text, expected);
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let name = line.split(['{', ' ']).next().unwrap();
        assert!(
            name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "{name}"
        );
    }
}

#[test]
fn rule_counters_are_families_with_rule_and_action_labels() {
    use shardmq_http::model::{ActionFigures, RuleFigures};
    let shard = ShardView {
        shard: 1,
        core: 3,
        stats: NamedValues::from_pairs([]),
        metrics: NamedValues::from_pairs([]),
        event_loop: NamedValues::from_pairs([]),
        rules: vec![RuleFigures {
            rule: "r:1".into(),
            matched: 4,
            actions: vec![ActionFigures {
                success: 3,
                failed: 1,
            }],
        }],
    };
    assert_eq!(
        serde_json::to_string(&shard).unwrap(),
        r#"{"shard":1,"core":3,"rules":[{"rule":"r:1","matched":4,"actions":[{"success":3,"failed":1}]}]}"#
    );
    let text = render_shards(&[shard]);
    let expected = "\
# HELP shardmq_rule_matched_total Messages and events a rule matched, per shard
# TYPE shardmq_rule_matched_total counter
shardmq_rule_matched_total{shard=\"1\",core=\"3\",rule=\"r:1\"} 4
# HELP shardmq_rule_action_success_total Rule actions that ended in success, per shard, rule and action (its index)
# TYPE shardmq_rule_action_success_total counter
shardmq_rule_action_success_total{shard=\"1\",core=\"3\",rule=\"r:1\",action=\"0\"} 3
# HELP shardmq_rule_action_failed_total Rule actions that ended in failed, per shard, rule and action (its index)
# TYPE shardmq_rule_action_failed_total counter
shardmq_rule_action_failed_total{shard=\"1\",core=\"3\",rule=\"r:1\",action=\"0\"} 1
";
    assert_eq!(text, expected);
}
