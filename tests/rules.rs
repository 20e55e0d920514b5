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

/// The body of `GET <path>` on the management listener.
fn get_text(node: &AdminNode, path: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(node.http).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: {}\r\nConnection: close\r\n\r\n",
        basic("admin", "public")
    );
    s.write_all(req.as_bytes()).unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    text.split_once("\r\n\r\n")
        .expect("an HTTP answer")
        .1
        .to_string()
}

/// A web server on loopback that answers every request 200 and hands over its JSON bodies
/// (with the request line).
struct Sink {
    url: String,
    bodies: std::sync::mpsc::Receiver<(String, Value)>,
}

impl Sink {
    fn start() -> Sink {
        use std::io::{BufRead, BufReader, Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let (tx, bodies) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            // At most a few connections: the broker keeps them alive.
            for stream in listener.incoming().take(32).flatten() {
                let tx = tx.clone();
                std::thread::spawn(move || {
                    let mut out = stream.try_clone().unwrap();
                    let mut r = BufReader::new(stream);
                    loop {
                        let mut line = String::new();
                        if r.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        let request = line.trim().to_string();
                        let mut len = 0;
                        loop {
                            let mut h = String::new();
                            if r.read_line(&mut h).unwrap_or(0) == 0 {
                                return;
                            }
                            if h == "\r\n" {
                                break;
                            }
                            if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:")
                            {
                                len = v.trim().parse().unwrap();
                            }
                        }
                        let mut body = vec![0; len];
                        r.read_exact(&mut body).unwrap();
                        let json = serde_json::from_slice(&body).unwrap_or(Value::Null);
                        if tx.send((request, json)).is_err() {
                            return;
                        }
                        out.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
                            .unwrap();
                    }
                });
            }
        });
        Sink { url, bodies }
    }

    /// The next body posted (within the test wait).
    fn next(&self) -> Value {
        let (request, body) = self
            .bodies
            .recv_timeout(std::time::Duration::from_secs(10))
            .expect("a web hook request");
        assert!(request.starts_with("POST /hook HTTP/1.1"), "{request}");
        body
    }

    /// The next body whose `field` is `value`, skipping others.
    fn next_with(&self, field: &str, value: &str) -> Value {
        loop {
            let b = self.next();
            if b[field] == value {
                return b;
            }
        }
    }
}

#[test]
fn web_hook_actions_post_what_rules_select_and_count_it() {
    let dir = tempfile::tempdir().unwrap();
    let node = AdminNode::start(dir.path(), &[]);
    let sink = Sink::start();
    let resource = node.expect(
        "POST",
        "resources",
        Some(
            json!({"name": "hook1", "type": "web_hook", "config": {"url": sink.url},
                    "description": "the test sink"}),
        ),
        0,
    );
    assert_eq!(
        resource["data"],
        json!({"attrs": "undefined", "config": {"url": sink.url}, "description": "the test sink",
               "id": "web_hook:hook1", "name": "hook1", "type": "web_hook"})
    );
    let shown = node.expect("GET", "resources/web_hook:hook1", None, 0);
    assert_eq!(shown["data"]["status"][0]["is_alive"], true, "{shown}");
    assert_eq!(
        node.expect("GET", "resource_status/web_hook:hook1", None, 0)["data"],
        json!({"is_alive": true})
    );
    let rule = node.expect(
        "POST",
        "rules",
        Some(json!({
            "name": "to-web",
            "for": "message.publish",
            "rawsql": "SELECT topic, payload.v AS v FROM \"web/#\"",
            "actions": [{"name": "web_hook:publish_action",
                         "params": {"$resource": "web_hook:hook1"}}],
        })),
        0,
    );
    let rule_id = rule["data"]["id"].as_str().unwrap().to_string();
    let connected = node.expect(
        "POST",
        "rules",
        Some(json!({
            "name": "on-connect",
            "rawsql": "SELECT client_id, username, proto_ver FROM \"client.connected\"",
            "actions": [{"name": "web_hook:event_action",
                         "params": {"$resource": "web_hook:hook1",
                                    "template": {"who": "${client_id}", "kind": "connected"}}}],
        })),
        0,
    );
    assert_eq!(connected["data"]["for"], "client.connected");

    let (mut c, _) = node.connect(&id_on_shard("webber", 1), Some("u1"), None);
    assert_eq!(
        sink.next_with("kind", "connected"),
        json!({"who": id_on_shard("webber", 1), "kind": "connected"})
    );
    c.publish1("web/1", br#"{"v": 42}"#, 1);
    assert_eq!(sink.next(), json!({"topic": "web/1", "v": 42}));

    // The sink hands the body over before the broker has read its answer, and
    // only that answer counts the action's success: ask until it has (bounded).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let rules = loop {
        let rules = node.expect("GET", &format!("rules/{rule_id}"), None, 0);
        let counted = rules["data"]["actions"][0]["metrics"][0]["success"] != 0;
        if counted || std::time::Instant::now() > deadline {
            break rules;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    };
    assert_eq!(rules["data"]["metrics"][0]["matched"], 1, "{rules}");
    assert_eq!(
        rules["data"]["actions"][0]["metrics"][0]["success"], 1,
        "{rules}"
    );
    assert_eq!(
        rules["data"]["actions"][0]["metrics"][0]["failed"], 0,
        "{rules}"
    );
    assert!(node.stats_sum("rules.matched") >= 2);
    let metrics = get_text(&node, "/metrics");
    let line = format!("rule=\"{rule_id}\"}} 1");
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("shardmq_rule_matched_total{") && l.ends_with(&line)),
        "{metrics}"
    );
    assert!(metrics
        .lines()
        .any(|l| l.starts_with("shardmq_rule_action_success_total{")
            && l.contains(&format!("rule=\"{rule_id}\",action=\"0\""))
            && l.ends_with(" 1")));

    // Deleted: that rule posts nothing more, the other one still does.
    node.expect("DELETE", &format!("rules/{rule_id}"), None, 0);
    c.publish1("web/1", br#"{"v": 43}"#, 2);
    let (_c2, _) = node.connect(&id_on_shard("webber2", 0), None, None);
    assert_eq!(sink.next()["who"], id_on_shard("webber2", 0).as_str());
    node.stop();
}

#[test]
fn a_dead_web_hook_counts_failures_and_disturbs_nobody() {
    let dir = tempfile::tempdir().unwrap();
    let node = AdminNode::start(dir.path(), &[]);
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    node.expect(
        "POST",
        "resources",
        Some(json!({"name": "dead", "type": "web_hook",
                    "config": {"url": format!("http://127.0.0.1:{port}/x")}})),
        0,
    );
    assert_eq!(
        node.expect("GET", "resource_status/web_hook:dead", None, 0)["data"],
        json!({"is_alive": false})
    );
    assert_eq!(
        node.expect("POST", "resources/web_hook:dead", None, 400)["message"],
        "Start Resource web_hook:dead Failed"
    );
    let rule = node.expect(
        "POST",
        "rules",
        Some(json!({"name": "r", "rawsql": "SELECT * FROM \"d/#\"",
                    "actions": [{"name": "data_to_webserver",
                                 "params": {"$resource": "web_hook:dead"}},
                                {"name": "built_in:republish_action",
                                 "params": {"target_topic": "d-out"}}]})),
        0,
    );
    let id = rule["data"]["id"].as_str().unwrap().to_string();
    let (mut watcher, _) = node.connect(&id_on_shard("dwatch", 0), None, None);
    watcher.subscribe(1, &[("d-out", QoS::AtLeastOnce)]);
    let (mut c, _) = node.connect(&id_on_shard("dpub", 1), None, None);
    for i in 1..=5u16 {
        c.publish1("d/1", b"x", i);
    }
    // The republish of every message arrives: the dead hook holds nobody up.
    assert_eq!(recv_publishes_acking(&mut watcher, 5).len(), 5);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let shown = node.expect("GET", &format!("rules/{id}"), None, 0);
        let failed = &shown["data"]["actions"][0]["metrics"][0]["failed"];
        if failed == 5 {
            assert_eq!(shown["data"]["actions"][1]["metrics"][0]["success"], 5);
            assert_eq!(shown["data"]["metrics"][0]["matched"], 5);
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{shown}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    node.stop();
}

#[test]
fn client_and_message_events_flow_through_rules_to_subscribers() {
    let dir = tempfile::tempdir().unwrap();
    let node = AdminNode::start(dir.path(), &[]);
    // Subscribed before the rules exist (its own SUBSCRIBE would fire the subscribe rule).
    let (mut watcher, _) = node.connect(&id_on_shard("evwatch", 0), None, None);
    watcher.subscribe(1, &[("ev/#", QoS::AtMostOnce)]);
    let rule = |sql: &str, target: &str| {
        node.expect(
            "POST",
            "rules",
            Some(json!({"name": "ev", "rawsql": sql,
                        "actions": [{"name": "republish", "params": {"target_topic": target}}]})),
            0,
        )
    };
    rule(
        "SELECT client_id, reason_code FROM \"client.disconnected\"",
        "ev/disconnected",
    );
    rule(
        "SELECT client_id, topic, qos FROM \"client.subscribe\"",
        "ev/subscribe",
    );
    rule(
        "SELECT client_id, from_client_id, topic FROM \"message.deliver\" WHERE topic =~ 'm/#'",
        "ev/deliver",
    );
    rule(
        "SELECT client_id, topic FROM \"message.acked\" WHERE topic =~ 'm/#'",
        "ev/acked",
    );
    rule(
        "SELECT topic, reason FROM \"message.dropped\" WHERE topic =~ 'nobody/#'",
        "ev/dropped",
    );
    let json_of =
        |p: &shardmq::codec::Publish| -> Value { serde_json::from_slice(&p.payload).unwrap() };

    let sub_id = id_on_shard("evsub", 1);
    let (mut sub, _) = node.connect(&sub_id, None, None);
    sub.subscribe(1, &[("m/#", QoS::AtLeastOnce)]);
    let got = watcher.recv_publish();
    assert_eq!(got.topic.as_str(), "ev/subscribe");
    assert_eq!(
        json_of(&got),
        json!({"client_id": sub_id, "topic": "m/#", "qos": 1})
    );

    let pub_id = id_on_shard("evpub", 0);
    let (mut publisher, _) = node.connect(&pub_id, None, None);
    publisher.publish1("m/1", b"hello", 1);
    let p = sub.recv_publish();
    let got = watcher.recv_publish();
    assert_eq!(got.topic.as_str(), "ev/deliver");
    assert_eq!(
        json_of(&got),
        json!({"client_id": sub_id, "from_client_id": pub_id, "topic": "m/1"})
    );
    sub.send(&shardmq::codec::Packet::PubAck(
        shardmq::codec::PubResp::new(p.packet_id.unwrap()),
    ));
    let got = watcher.recv_publish();
    assert_eq!(got.topic.as_str(), "ev/acked");
    assert_eq!(json_of(&got), json!({"client_id": sub_id, "topic": "m/1"}));

    publisher.publish1("nobody/1", b"lost", 2);
    let got = watcher.recv_publish();
    assert_eq!(
        json_of(&got),
        json!({"topic": "nobody/1", "reason": "no_subscribers"})
    );

    sub.disconnect();
    let got = watcher.recv_publish();
    assert_eq!(
        json_of(&got),
        json!({"client_id": sub_id, "reason_code": "normal"})
    );
    node.stop();
}

#[test]
fn the_catalogue_routes_answer_the_documents_shapes() {
    let dir = tempfile::tempdir().unwrap();
    let node = AdminNode::start(dir.path(), &[]);
    let actions = node.expect("GET", "actions", None, 0);
    let names: Vec<&str> = actions["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "built_in:republish_action",
            "web_hook:event_action",
            "web_hook:publish_action",
            "built_in:inspect_action"
        ]
    );
    let for_connected = node.expect("GET", "actions?for=client.connected", None, 0);
    assert_eq!(for_connected["data"][0]["name"], "built_in:inspect_action");
    assert_eq!(
        node.expect("GET", "actions?for=nope", None, 400)["message"],
        "Event nope Not Found"
    );
    let inspect = node.expect("GET", "actions/built_in:inspect_action", None, 0);
    assert_eq!(
        inspect["data"],
        json!({"app": "emqx_rule_engine",
               "description": "Inspect the details of action params for debug purpose",
               "for": "$any", "name": "built_in:inspect_action", "params": {}, "type": "built_in"})
    );
    assert_eq!(
        node.expect("GET", "resource_types/built_in", None, 0)["data"],
        json!({"description": "The built in resource type for debug purpose", "name": "built_in",
               "params": {}, "provider": "emqx_rule_engine"})
    );
    let types = node.expect("GET", "resource_types", None, 0);
    assert_eq!(types["data"].as_array().unwrap().len(), 2);
    let by_type = node.expect("GET", "resource_types/built_in/actions", None, 0);
    assert_eq!(by_type["data"].as_array().unwrap().len(), 2);
    let events = node.expect("GET", "rule_events", None, 0);
    assert_eq!(events["data"].as_array().unwrap().len(), 8);

    // A built_in resource, as the document creates it, and rules bound to it.
    let created = node.expect(
        "POST",
        "resources",
        Some(
            json!({"name": "test-resource", "type": "built_in", "config": {"a": 1},
                    "description": "test-resource"}),
        ),
        0,
    );
    assert_eq!(created["data"]["id"], "built_in:test-resource");
    let listed = node.expect("GET", "resource_types/built_in/resources", None, 0);
    assert_eq!(listed["data"][0]["id"], "built_in:test-resource");
    let rule = node.expect(
        "POST",
        "rules",
        Some(
            json!({"name": "test-rule", "for": "message.publish", "rawsql": "select * from \"t/a\"",
                    "actions": [{"name": "built_in:inspect_action", "params": {"a": 1}}],
                    "description": "test-rule"}),
        ),
        0,
    );
    assert_eq!(
        rule["data"]["actions"][0]["params"],
        json!({"$resource": "built_in:test-resource", "a": 1})
    );
    assert_eq!(
        node.expect(
            "POST",
            "resources",
            Some(json!({"type": "nope", "config": {}})),
            400
        )["message"],
        "Resource Type nope Not Found"
    );
    assert_eq!(
        node.expect("GET", "rules/nope:1", None, 404)["message"],
        "Not Found"
    );
    node.expect("DELETE", "resources/built_in:test-resource", None, 0);
    node.expect("DELETE", "resources/built_in:test-resource", None, 0);
    assert_eq!(
        node.expect("GET", "resource_status/built_in:test-resource", None, 400)["message"],
        "Resource built_in:test-resource Not Found"
    );

    // Test mode: the SQL on sample columns and the given context.
    let tested = node.expect(
        "POST",
        "rules?test=true",
        Some(
            json!({"rawsql": "SELECT payload.x AS x, topic FROM \"t/#\" WHERE payload.x > 1",
                    "ctx": {"topic": "t/1", "payload": "{\"x\": 2}"}}),
        ),
        0,
    );
    assert_eq!(tested["data"], json!({"x": 2, "topic": "t/1"}));
    let no_match = node.expect(
        "POST",
        "rules",
        Some(
            json!({"test": true, "rawsql": "SELECT * FROM \"t/#\" WHERE payload.x > 1",
                    "ctx": {"topic": "t/1", "payload": "{\"x\": 0}"}}),
        ),
        404,
    );
    assert_eq!(no_match["message"], "SQL Not Match");
    node.stop();
}

#[test]
fn the_web_hook_plugin_posts_emqx_bodies_to_its_url() {
    let dir = tempfile::tempdir().unwrap();
    let node = AdminNode::start(dir.path(), &[]);
    let sink = Sink::start();
    node.expect(
        "PUT",
        &node.node_path("plugin_configs/emqx_web_hook"),
        Some(json!({"web.hook.api.url": sink.url})),
        0,
    );
    node.load("emqx_web_hook");
    let id = id_on_shard("plugged", 1);
    let (mut c, _) = node.connect(&id, Some("pu"), None);
    let b = sink.next_with("action", "client_connected");
    assert_eq!(
        (b["client_id"].as_str(), b["username"].as_str()),
        (Some(id.as_str()), Some("pu"))
    );
    assert_eq!(b["ipaddress"], "127.0.0.1");
    c.publish1("plug/1", b"hi", 1);
    let b = sink.next_with("action", "message_publish");
    assert_eq!(b["from_client_id"], id.as_str());
    assert_eq!(
        (b["topic"].as_str(), b["payload"].as_str()),
        (Some("plug/1"), Some("hi"))
    );
    node.unload("emqx_web_hook");
    node.stop();
}
