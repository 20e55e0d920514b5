//! The management REST API over real sockets: an in-process broker with 2 shards, raw MQTT
//! clients (the crate's codec over std `TcpStream`) spread over both shards, and a real HTTP
//! client (`ureq`), plus raw HTTP for framing and bad input. Loopback only; every wait is a
//! poll of the API or a read of an MQTT packet with a bounded timeout.

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use serde_json::{json, Value};
use shardmq::broker::{self, Broker};
use shardmq::codec::{
    self, Connect, Packet, ProtocolVersion, PubResp, Publish, QoS, Str, SubOptions, Subscribe,
};
use shardmq::config::Config;
use shardmq::home_shard;

const SHARDS: usize = 2;
const AUTH: &str = "Basic YWRtaW46cHVibGlj"; // admin:public
const WAIT: Duration = Duration::from_secs(5);

// ------------------------------------------------------------------ broker

struct Node {
    broker: Option<Broker>,
    mqtt: SocketAddr,
    http: SocketAddr,
    name: String,
    cores: Vec<usize>,
    _data: tempfile::TempDir,
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(b) = self.broker.take() {
            b.stop();
        }
    }
}

fn start() -> Node {
    let mut cfg = Config::default();
    cfg.listeners.tcp.bind = "127.0.0.1:0".parse().unwrap();
    cfg.management.bind = "127.0.0.1:0".parse().unwrap();
    cfg.management.request_timeout = 1;
    cfg.management.max_header_bytes = 4096;
    cfg.management.max_body_bytes = 4096;
    let data = tempfile::tempdir().expect("a temp data dir");
    cfg.node.data_dir = data.path().to_string_lossy().into_owned();
    let name = cfg.node.name.clone();
    let c = shardmq_shards::preflight::available_cores();
    let cores = vec![c[0], c[1 % c.len()]];
    let broker = broker::start(cfg, &cores).expect("broker starts");
    Node {
        mqtt: broker.mqtt_addr,
        http: broker.http_addr,
        broker: Some(broker),
        name,
        cores,
        _data: data,
    }
}

/// `n` client ids with the given prefix, alternating home shards 0, 1, 0, 1, ...
fn ids_on_both_shards(prefix: &str, n: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut i = 0;
    while out.len() < n {
        let id = format!("{prefix}-{i}");
        if home_shard(&id, SHARDS) == out.len() % SHARDS {
            out.push(id);
        }
        i += 1;
    }
    out
}

// ------------------------------------------------------------------ HTTP (ureq)

struct Http {
    status: u16,
    json: Value,
    text: String,
    shards_header: Option<String>,
    content_type: String,
}

fn finish(result: Result<ureq::Response, ureq::Error>) -> Http {
    let resp = match result {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("transport error: {e}"),
    };
    let status = resp.status();
    let shards_header = resp.header("X-ShardMQ-Shards").map(str::to_string);
    let content_type = resp.header("Content-Type").unwrap_or("").to_string();
    let text = resp.into_string().expect("body");
    let json = serde_json::from_str(&text).unwrap_or(Value::Null);
    Http {
        status,
        json,
        text,
        shards_header,
        content_type,
    }
}

fn agent() -> ureq::Agent {
    ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(10))
        .build()
}

impl Node {
    fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.http, path)
    }

    fn get(&self, path: &str) -> Http {
        finish(
            agent()
                .get(&self.url(path))
                .set("Authorization", AUTH)
                .call(),
        )
    }

    /// `GET` that must succeed with code 0: its JSON.
    fn ok(&self, path: &str) -> Value {
        let r = self.get(path);
        assert_eq!(r.status, 200, "{path}: {}", r.text);
        assert_eq!(r.json["code"], 0, "{path}: {}", r.text);
        r.json
    }

    fn post(&self, path: &str, body: Value) -> Http {
        finish(
            agent()
                .post(&self.url(path))
                .set("Authorization", AUTH)
                .send_json(body),
        )
    }

    fn delete(&self, path: &str) -> Http {
        finish(
            agent()
                .delete(&self.url(path))
                .set("Authorization", AUTH)
                .call(),
        )
    }

    fn api(&self, rest: &str) -> String {
        format!("/api/v3/{rest}")
    }

    fn node_api(&self, rest: &str) -> String {
        format!("/api/v3/nodes/{}/{rest}", self.name)
    }

    /// Polls `GET path` until `cond` holds on its JSON (bounded), and returns that JSON.
    fn poll(&self, path: &str, what: &str, cond: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + WAIT;
        loop {
            let v = self.ok(path);
            if cond(&v) {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}: {v}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn metric(&self, name: &str) -> u64 {
        self.ok(&self.node_api("metrics/"))["data"][name]
            .as_u64()
            .unwrap_or_else(|| panic!("metric {name}"))
    }

    fn connected(&self, n: usize) {
        self.poll(&self.api("connections/"), "connection count", |v| {
            v["meta"]["count"] == n
        });
    }
}

fn client_ids(rows: &Value) -> BTreeSet<String> {
    rows.as_array()
        .expect("array")
        .iter()
        .map(|r| r["client_id"].as_str().unwrap().to_string())
        .collect()
}

// ------------------------------------------------------------------ MQTT (raw codec)

struct Mqtt {
    stream: TcpStream,
    buf: BytesMut,
    next_id: u16,
}

struct ConnectOpts<'a> {
    clean: bool,
    username: Option<&'a str>,
}

const CLEAN: ConnectOpts<'static> = ConnectOpts {
    clean: true,
    username: None,
};
const PERSISTENT: ConnectOpts<'static> = ConnectOpts {
    clean: false,
    username: None,
};

impl Mqtt {
    fn connect(addr: SocketAddr, client_id: &str, opts: ConnectOpts<'_>) -> (Mqtt, bool) {
        let stream = TcpStream::connect(addr).expect("mqtt connect");
        stream.set_nodelay(true).unwrap();
        let mut c = Mqtt {
            stream,
            buf: BytesMut::new(),
            next_id: 1,
        };
        c.send(&Packet::Connect(Box::new(Connect {
            protocol: ProtocolVersion::V311,
            clean_start: opts.clean,
            keep_alive: 60,
            client_id: Str::from(client_id),
            will: None,
            username: opts.username.map(Str::from),
            password: None,
            properties: Default::default(),
        })));
        match c.recv() {
            Some(Packet::ConnAck(ack)) => {
                assert_eq!(ack.code, 0, "CONNACK for {client_id}");
                (c, ack.session_present)
            }
            other => panic!("expected CONNACK for {client_id}, got {other:?}"),
        }
    }

    fn open(addr: SocketAddr, client_id: &str) -> Mqtt {
        Mqtt::connect(addr, client_id, CLEAN).0
    }

    fn send(&mut self, p: &Packet) {
        let mut out = BytesMut::new();
        codec::encode(p, ProtocolVersion::V311, &mut out).expect("encode");
        self.stream.write_all(&out).expect("mqtt write");
    }

    /// The next packet within `WAIT`; `None` if the broker closed the connection.
    fn recv(&mut self) -> Option<Packet> {
        self.recv_within(WAIT)
    }

    fn recv_within(&mut self, limit: Duration) -> Option<Packet> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(p) =
                codec::decode(&mut self.buf, ProtocolVersion::V311, 1 << 20).expect("decode")
            {
                return Some(p);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "no MQTT packet within {limit:?}");
            self.stream.set_read_timeout(Some(left)).unwrap();
            let mut chunk = [0u8; 4096];
            match self.stream.read(&mut chunk) {
                Ok(0) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e)
                    if e.kind() == std::io::ErrorKind::WouldBlock
                        || e.kind() == std::io::ErrorKind::TimedOut =>
                {
                    continue
                }
                Err(_) => return None, // reset: closed
            }
        }
    }

    fn subscribe(&mut self, filter: &str, qos: QoS) {
        let id = self.next_id;
        self.next_id += 1;
        self.send(&Packet::Subscribe(Subscribe {
            packet_id: id,
            filters: vec![(
                Str::from(filter),
                SubOptions {
                    qos,
                    ..SubOptions::default()
                },
            )],
            properties: Default::default(),
        }));
        match self.recv() {
            Some(Packet::SubAck(ack)) => {
                assert_eq!(ack.packet_id, id);
                assert_eq!(ack.codes, vec![qos as u8]);
            }
            other => panic!("expected SUBACK, got {other:?}"),
        }
    }

    fn publish(&mut self, topic: &str, payload: &str) {
        self.send(&Packet::Publish(Publish {
            dup: false,
            qos: QoS::AtMostOnce,
            retain: false,
            topic: Str::from(topic),
            packet_id: None,
            payload: Bytes::copy_from_slice(payload.as_bytes()),
            properties: Default::default(),
        }));
    }

    /// The next PUBLISH (acknowledging QoS 1), skipping nothing: anything else fails.
    fn expect_publish(&mut self) -> Publish {
        match self.recv() {
            Some(Packet::Publish(p)) => {
                if let (QoS::AtLeastOnce, Some(id)) = (p.qos, p.packet_id) {
                    self.send(&Packet::PubAck(PubResp::new(id)));
                }
                p
            }
            other => panic!("expected PUBLISH, got {other:?}"),
        }
    }

    fn disconnect(mut self) {
        self.send(&Packet::Disconnect(Default::default()));
        // Wait for the broker to close its side, so the session is offline when we return.
        while self.recv().is_some() {}
    }
}

fn payload(p: &Publish) -> String {
    String::from_utf8(p.payload.to_vec()).unwrap()
}

// ------------------------------------------------------------------ raw HTTP

/// Reads one response (status, head, body) from `s`; `None` when the server closed first.
fn read_response(s: &mut TcpStream, pending: &mut Vec<u8>) -> Option<(u16, String, Vec<u8>)> {
    s.set_read_timeout(Some(WAIT)).unwrap();
    loop {
        if let Some(end) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&pending[..end]).to_string();
            let status: u16 = head.split(' ').nth(1).unwrap().parse().unwrap();
            let len: usize = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse().unwrap())
                })
                .expect("Content-Length");
            if pending.len() >= end + 4 + len {
                let body = pending[end + 4..end + 4 + len].to_vec();
                pending.drain(..end + 4 + len);
                return Some((status, head, body));
            }
        }
        let mut chunk = [0u8; 8192];
        match s.read(&mut chunk) {
            Ok(0) => return None,
            Ok(n) => pending.extend_from_slice(&chunk[..n]),
            Err(e) => panic!("reading a response: {e}"),
        }
    }
}

fn raw(node: &Node) -> TcpStream {
    let s = TcpStream::connect(node.http).unwrap();
    s.set_nodelay(true).unwrap();
    s
}

fn get_request(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: t\r\nAuthorization: {AUTH}\r\n\r\n")
}

/// After the server answered (or closed), the connection is closed: EOF or reset.
fn assert_closed(s: &mut TcpStream) {
    s.set_read_timeout(Some(WAIT)).unwrap();
    let mut b = [0u8; 64];
    match s.read(&mut b) {
        Ok(0) | Err(_) => {}
        Ok(n) => panic!("expected close, got {:?}", String::from_utf8_lossy(&b[..n])),
    }
}

/// The broker still answers a fresh connection.
fn still_serving(node: &Node) {
    assert_eq!(node.ok(&node.api("brokers/"))["data"][0]["node"], node.name);
}

// ================================================================== tests

#[test]
fn api_index_status_and_auth() {
    let node = start();
    let v = node.ok("/api/v3/");
    let doc: Value = serde_json::from_str(include_str!("../http/tests/fixtures/api_index.json"))
        .expect("fixture");
    assert_eq!(v["data"], doc["data"]);
    assert_eq!(v["data"].as_array().unwrap().len(), 87);

    let r = finish(agent().get(&node.url("/status")).call());
    assert_eq!(r.status, 200);
    assert_eq!(
        r.text,
        format!("Node {} is started\nshardmq is running", node.name)
    );

    let r = finish(agent().get(&node.url("/api/v3/brokers/")).call());
    assert_eq!(r.status, 401);
    assert_eq!(r.json["code"], 401);
    let r = finish(
        agent()
            .get(&node.url("/api/v3/brokers/"))
            .set("Authorization", "Basic YWRtaW46d3Jvbmc=") // admin:wrong
            .call(),
    );
    assert_eq!(r.status, 401);
    let r = node.get("/api/v3/nope");
    assert_eq!((r.status, r.json["code"].clone()), (404, json!(404)));
    let r = node.get(&node.api("nodes/other@host/connections/"));
    assert_eq!(r.status, 404);
}

#[test]
fn brokers_and_nodes() {
    let node = start();
    let _a = Mqtt::open(node.mqtt, "bn-a");
    let _b = Mqtt::open(node.mqtt, "bn-b");

    let v = node.ok(&node.api("brokers/"));
    let list = v["data"].as_array().unwrap();
    assert_eq!(list.len(), 1);
    let b = &list[0];
    assert_eq!(b["node"], node.name);
    assert_eq!(b["node_status"], "Running");
    let keys: BTreeSet<&str> = b.as_object().unwrap().keys().map(|k| k.as_str()).collect();
    assert_eq!(
        keys,
        BTreeSet::from([
            "datetime",
            "node",
            "node_status",
            "otp_release",
            "sysdescr",
            "uptime",
            "version"
        ])
    );
    assert!(b["uptime"].as_str().unwrap().ends_with(" seconds"));
    let v = node.ok(&node.api(&format!("brokers/{}", node.name)));
    assert!(v["data"].get("node").is_none());
    assert_eq!(v["data"]["version"], b["version"]);

    let v = node.poll(&node.api("nodes/"), "2 connections", |v| {
        v["data"][0]["connections"] == 2
    });
    let n = &v["data"][0];
    assert_eq!(n["node"], node.name);
    assert_eq!(n["name"], node.name);
    assert!(n["memory_total"].is_string(), "{n}");
    assert!(n["memory_used"].is_string(), "{n}");
    assert!(n["max_fds"].as_u64().unwrap() > 0);
    assert!(n["load1"].as_str().unwrap().contains('.'));
    let v = node.ok(&node.api(&format!("nodes/{}", node.name)));
    let n = &v["data"];
    assert!(n.get("node").is_none());
    assert_eq!(n["connections"], 2);
    assert!(n["memory_total"].as_u64().unwrap() >= n["memory_used"].as_u64().unwrap());
    assert!(n["memory_used"].as_u64().unwrap() > 0);
    assert_eq!(n["process_used"], 2);
}

#[test]
fn connections_list_lookup_and_pages_across_shards() {
    let node = start();
    let ids = ids_on_both_shards("conn", 5);
    let clients: Vec<Mqtt> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| {
            let user = format!("user{}", i % 2);
            Mqtt::connect(
                node.mqtt,
                id,
                ConnectOpts {
                    clean: true,
                    username: Some(&user),
                },
            )
            .0
        })
        .collect();
    node.connected(5);

    // Pages of 2: 2 + 2 + 1 rows, count 5 each time, together every client once.
    let mut seen = BTreeSet::new();
    for (page, len) in [(1, 2), (2, 2), (3, 1), (4, 0)] {
        let v = node.ok(&node.api(&format!("connections/?_page={page}&_limit=2")));
        assert_eq!(v["meta"], json!({"page": page, "limit": 2, "count": 5}));
        assert_eq!(v["data"].as_array().unwrap().len(), len);
        seen.extend(client_ids(&v["data"]));
    }
    assert_eq!(seen, ids.iter().cloned().collect());

    let v = node.ok(&node.node_api("connections/?_page=1&_limit=10000"));
    assert_eq!(v["meta"]["count"], 5);
    assert_eq!(client_ids(&v["data"]), ids.iter().cloned().collect());
    let row = &v["data"][0];
    for (k, want) in [
        ("conn_mod", json!("emqx_connection")),
        ("node", json!(node.name)),
        ("peercert", json!("nossl")),
        ("proto_name", json!("MQTT")),
        ("proto_ver", json!(4)),
        ("keepalive", json!(60)),
        ("zone", json!("external")),
        ("ipaddress", json!("127.0.0.1")),
        ("clean_start", json!(true)),
        ("is_bridge", json!(false)),
    ] {
        assert_eq!(row[k], want, "{k}: {row}");
    }
    assert_eq!(row.as_object().unwrap().len(), 26, "{row}");
    // Each client (accepted on its home shard or handed over) sent exactly a CONNECT and
    // got a CONNACK.
    for row in v["data"].as_array().unwrap() {
        assert_eq!(row["recv_pkt"], 1, "{row}");
        assert!(row["recv_oct"].as_u64().unwrap() > 12, "{row}");
        assert!(row["recv_cnt"].as_u64().unwrap() >= 1, "{row}");
        assert_eq!(row["recv_msg"], 0);
        assert_eq!(row["send_pkt"], 1, "{row}");
        assert_eq!(row["send_oct"], 4, "CONNACK is 4 bytes: {row}");
    }

    // Lookups by id (one client on each shard), cluster and node paths: arrays of one.
    for id in &ids[..2] {
        for path in [
            node.api(&format!("connections/{id}")),
            node.node_api(&format!("connections/{id}")),
        ] {
            let v = node.ok(&path);
            assert_eq!(v["data"].as_array().unwrap().len(), 1, "{path}");
            assert_eq!(v["data"][0]["client_id"], id.as_str());
            assert!(v.get("meta").is_none());
        }
    }
    assert_eq!(node.ok(&node.api("connections/nobody"))["data"], json!([]));

    // By username: user0 has ids 0, 2, 4 (both shards), user1 has 1, 3.
    let user0: BTreeSet<String> = [0, 2, 4].iter().map(|&i| ids[i].clone()).collect();
    for path in [
        node.api("connection/username/user0"),
        node.node_api("connection/username/user0"),
    ] {
        let v = node.ok(&path);
        assert_eq!(client_ids(&v["data"]), user0, "{path}");
        for r in v["data"].as_array().unwrap() {
            assert_eq!(r["username"], "user0");
        }
    }
    assert_eq!(
        node.ok(&node.api("connection/username/user1"))["data"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert_eq!(
        node.ok(&node.api("connection/username/nobody"))["data"],
        json!([])
    );
    drop(clients);
}

#[test]
fn kick_closes_the_client_and_counts_kicked() {
    let node = start();
    let ids = ids_on_both_shards("kick", 3);
    let mut clients: Vec<Mqtt> = ids.iter().map(|id| Mqtt::open(node.mqtt, id)).collect();
    node.connected(3);

    // Kick one client on each shard.
    for (i, id) in ids[..2].iter().enumerate() {
        let r = node.delete(&node.api(&format!("connections/{id}")));
        assert_eq!((r.status, &r.json), (200, &json!({"code": 0})), "{id}");
        assert!(
            clients[i].recv().is_none(),
            "{id} is closed by the broker (no packet)"
        );
    }
    node.connected(1);
    assert_eq!(
        client_ids(&node.ok(&node.api("connections/"))["data"]),
        BTreeSet::from([ids[2].clone()])
    );

    let v = node.poll(&node.node_api("listeners"), "kicked = 2", |v| {
        v["data"][0]["shutdown_count"]["kicked"] == 2
    });
    let tcp = &v["data"][0];
    assert_eq!(tcp["protocol"], "mqtt:tcp");
    assert_eq!(tcp["current_conns"], 1);

    // Not online: 112.
    let r = node.delete(&node.api(&format!("connections/{}", ids[0])));
    assert_eq!(r.status, 200);
    assert_eq!(r.json["code"], 112);
    let r = node.delete(&node.api("connections/nobody"));
    assert_eq!(r.json["code"], 112);
    // The survivor still works.
    clients[2].subscribe("still/here", QoS::AtMostOnce);
}

#[test]
fn sessions_list_lookup_and_persistent_cleanup() {
    let node = start();
    let ids = ids_on_both_shards("sess", 4);
    // 0, 1: persistent and then offline; 2, 3: online (2 persistent, 3 clean).
    for id in &ids[..2] {
        let (mut c, _) = Mqtt::connect(node.mqtt, id, PERSISTENT);
        c.subscribe("sess/t", QoS::AtLeastOnce);
        c.disconnect();
    }
    let (_online_p, _) = Mqtt::connect(node.mqtt, &ids[2], PERSISTENT);
    let _online_c = Mqtt::open(node.mqtt, &ids[3]);
    node.connected(2);

    let v = node.ok(&node.api("sessions/?_page=1&_limit=3"));
    assert_eq!(v["meta"], json!({"page": 1, "limit": 3, "count": 4}));
    assert_eq!(v["data"].as_array().unwrap().len(), 3);
    let v = node.ok(&node.node_api("sessions/"));
    assert_eq!(v["meta"]["count"], 4);
    assert_eq!(client_ids(&v["data"]), ids.iter().cloned().collect());
    let row = &v["data"][0];
    assert_eq!(row.as_object().unwrap().len(), 21, "{row}");
    assert_eq!(row["binding"], "local");

    for id in &ids[..2] {
        for path in [
            node.api(&format!("sessions/{id}")),
            node.node_api(&format!("sessions/{id}")),
        ] {
            let v = node.ok(&path);
            let rows = v["data"].as_array().unwrap();
            assert_eq!(rows.len(), 1, "{path}");
            assert_eq!(rows[0]["client_id"], id.as_str());
            assert_eq!(rows[0]["clean_start"], false);
            assert_eq!(rows[0]["subscriptions_count"], 1);
            assert!(rows[0]["expiry_interval"].as_u64().unwrap() > 0);
        }
    }
    let v = node.ok(&node.api(&format!("sessions/{}", ids[3])));
    assert_eq!(v["data"][0]["clean_start"], true);
    assert_eq!(v["data"][0]["expiry_interval"], 0);

    // A running session is refused, and stays.
    for path in [
        node.api(&format!("sessions/persistent/{}", ids[2])),
        node.node_api(&format!("sessions/persistent/{}", ids[2])),
    ] {
        let r = node.delete(&path);
        assert_eq!(r.status, 200);
        assert_eq!(r.json["code"], 112, "{path}: {}", r.text);
    }
    assert_eq!(
        node.ok(&node.api(&format!("sessions/{}", ids[2])))["data"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // The offline ones are removed: cluster form on one shard, node form on the other.
    let r = node.delete(&node.api(&format!("sessions/persistent/{}", ids[0])));
    assert_eq!((r.status, &r.json), (200, &json!({"code": 0})));
    let r = node.delete(&node.node_api(&format!("sessions/persistent/{}", ids[1])));
    assert_eq!((r.status, &r.json), (200, &json!({"code": 0})));
    for id in &ids[..2] {
        assert_eq!(
            node.ok(&node.api(&format!("sessions/{id}")))["data"],
            json!([])
        );
        assert_eq!(
            node.ok(&node.api(&format!("subscriptions/{id}")))["data"],
            json!([])
        );
    }
    assert_eq!(node.ok(&node.api("sessions/"))["meta"]["count"], 2);
    // Gone means gone: reconnecting finds no session.
    let (_c, present) = Mqtt::connect(node.mqtt, &ids[0], PERSISTENT);
    assert!(!present, "session was discarded");
    // Unknown: 112.
    let r = node.delete(&node.api("sessions/persistent/nobody"));
    assert_eq!(r.json["code"], 112);
}

#[test]
fn subscriptions_all_four_forms() {
    let node = start();
    let ids = ids_on_both_shards("subs", 2);
    let mut a = Mqtt::open(node.mqtt, &ids[0]);
    let mut b = Mqtt::open(node.mqtt, &ids[1]);
    a.subscribe("s/a", QoS::AtMostOnce);
    a.subscribe("s/#", QoS::AtLeastOnce);
    b.subscribe("s/b", QoS::ExactlyOnce);

    let v = node.ok(&node.api("subscriptions/?_page=1&_limit=2"));
    assert_eq!(v["meta"], json!({"page": 1, "limit": 2, "count": 3}));
    assert_eq!(v["data"].as_array().unwrap().len(), 2);
    let v = node.ok(&node.node_api("subscriptions/"));
    assert_eq!(v["meta"]["count"], 3);
    let mut rows: Vec<Value> = v["data"].as_array().unwrap().clone();
    rows.sort_by_key(|r| r["topic"].as_str().unwrap().to_string());
    assert_eq!(
        rows,
        vec![
            json!({"client_id": ids[0], "node": node.name, "qos": 1, "topic": "s/#"}),
            json!({"client_id": ids[0], "node": node.name, "qos": 0, "topic": "s/a"}),
            json!({"client_id": ids[1], "node": node.name, "qos": 2, "topic": "s/b"}),
        ]
    );
    for path in [
        node.api(&format!("subscriptions/{}", ids[1])),
        node.node_api(&format!("subscriptions/{}", ids[1])),
    ] {
        let v = node.ok(&path);
        assert_eq!(
            v["data"],
            json!([{"client_id": ids[1], "node": node.name, "qos": 2, "topic": "s/b"}]),
            "{path}"
        );
        assert!(v.get("meta").is_none());
    }
    assert_eq!(
        node.ok(&node.api(&format!("subscriptions/{}", ids[0])))["data"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert_eq!(
        node.ok(&node.api("subscriptions/nobody"))["data"],
        json!([])
    );
}

#[test]
fn routes_list_and_percent_encoded_lookup() {
    let node = start();
    let ids = ids_on_both_shards("rt", 2);
    let mut a = Mqtt::open(node.mqtt, &ids[0]);
    let mut b = Mqtt::open(node.mqtt, &ids[1]);
    a.subscribe("a/b/#", QoS::AtMostOnce);
    b.subscribe("a/b/#", QoS::AtMostOnce);
    b.subscribe("t", QoS::AtMostOnce);

    let v = node.poll(&node.api("routes/"), "2 routes", |v| {
        v["meta"]["count"] == 2
    });
    let topics: BTreeSet<&str> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            assert_eq!(r["node"], node.name);
            r["topic"].as_str().unwrap()
        })
        .collect();
    assert_eq!(topics, BTreeSet::from(["a/b/#", "t"]));
    let v = node.ok(&node.api("routes/?_page=2&_limit=1"));
    assert_eq!(v["meta"], json!({"page": 2, "limit": 1, "count": 2}));
    assert_eq!(v["data"].as_array().unwrap().len(), 1);

    let v = node.ok(&node.api("routes/a%2Fb%2F%23"));
    assert_eq!(v["data"], json!([{"node": node.name, "topic": "a/b/#"}]));
    let v = node.ok(&node.api("routes/t"));
    assert_eq!(v["data"], json!([{"node": node.name, "topic": "t"}]));
    assert_eq!(node.ok(&node.api("routes/a%2Fb"))["data"], json!([]));
}

#[test]
fn api_publish_reaches_subscribers_on_both_shards() {
    let node = start();
    let ids = ids_on_both_shards("pub", 2);
    let mut subs: Vec<Mqtt> = ids.iter().map(|id| Mqtt::open(node.mqtt, id)).collect();
    for s in &mut subs {
        s.subscribe("news/#", QoS::AtLeastOnce);
    }
    let r = node.post(
        &node.api("mqtt/publish"),
        json!({"topic": "news/1", "payload": "hello", "qos": 1, "retain": false, "client_id": "api"}),
    );
    assert_eq!(
        (r.status, &r.json),
        (200, &json!({"code": 0})),
        "{}",
        r.text
    );
    for s in &mut subs {
        let p = s.expect_publish();
        assert_eq!(p.topic.as_str(), "news/1");
        assert_eq!(payload(&p), "hello");
        assert_eq!(p.qos, QoS::AtLeastOnce);
        assert!(!p.retain);
    }

    // `topics` with commas: one message per topic, in order.
    let r = node.post(
        &node.api("mqtt/publish"),
        json!({"topics": "news/a,news/b", "payload": "multi", "qos": 0}),
    );
    assert_eq!(r.json, json!({"code": 0}), "{}", r.text);
    for s in &mut subs {
        let got: Vec<String> = (0..2)
            .map(|_| s.expect_publish().topic.to_string())
            .collect();
        assert_eq!(got, ["news/a", "news/b"]);
    }

    // Retained: a later subscriber gets it with retain set.
    let r = node.post(
        &node.api("mqtt/publish"),
        json!({"topic": "news/kept", "payload": "stay", "qos": 1, "retain": true}),
    );
    assert_eq!(r.json, json!({"code": 0}));
    for s in &mut subs {
        let p = s.expect_publish();
        assert_eq!(
            (p.topic.as_str(), payload(&p).as_str()),
            ("news/kept", "stay")
        );
    }
    for id in ids_on_both_shards("late", 2) {
        let mut late = Mqtt::open(node.mqtt, &id);
        late.subscribe("news/kept", QoS::AtLeastOnce);
        let p = late.expect_publish();
        assert_eq!(payload(&p), "stay");
        assert!(p.retain, "{id}: retained flag");
    }

    // Bad topics: 115.
    let r = node.post(
        &node.api("mqtt/publish"),
        json!({"topic": "a/#", "payload": "x"}),
    );
    assert_eq!((r.status, r.json["code"].clone()), (200, json!(115)));
    let r = node.post(&node.api("mqtt/publish"), json!({"payload": "x"}));
    assert_eq!(r.json["code"], 107);
}

#[test]
fn api_subscribe_and_unsubscribe_live_session() {
    let node = start();
    let ids = ids_on_both_shards("live", 2);
    let mut subscriber = Mqtt::open(node.mqtt, &ids[0]);
    let mut publisher = Mqtt::open(node.mqtt, &ids[1]);
    subscriber.subscribe("sentinel", QoS::AtMostOnce);

    let r = node.post(
        &node.api("mqtt/subscribe"),
        json!({"topic": "live/t", "qos": 1, "client_id": ids[0]}),
    );
    assert_eq!(r.json, json!({"code": 0}), "{}", r.text);
    let v = node.ok(&node.api(&format!("subscriptions/{}", ids[0])));
    let topics: BTreeSet<&str> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["topic"].as_str().unwrap())
        .collect();
    assert_eq!(topics, BTreeSet::from(["live/t", "sentinel"]));
    node.poll(&node.api("routes/live%2Ft"), "route", |v| {
        v["data"].as_array().unwrap().len() == 1
    });

    publisher.publish("live/t", "one");
    let p = subscriber.expect_publish();
    assert_eq!((p.topic.as_str(), payload(&p).as_str()), ("live/t", "one"));

    let r = node.post(
        &node.api("mqtt/unsubscribe"),
        json!({"topic": "live/t", "client_id": ids[0]}),
    );
    assert_eq!(r.json, json!({"code": 0}), "{}", r.text);
    node.poll(&node.api("routes/live%2Ft"), "route gone", |v| {
        v["data"] == json!([])
    });
    // Publish to the old topic, then to the sentinel: only the sentinel arrives (same
    // publisher, same subscriber: order is kept).
    publisher.publish("live/t", "two");
    publisher.publish("sentinel", "s");
    let p = subscriber.expect_publish();
    assert_eq!(
        p.topic.as_str(),
        "sentinel",
        "nothing on live/t after unsubscribe"
    );

    // `topics` with commas on subscribe.
    let r = node.post(
        &node.api("mqtt/subscribe"),
        json!({"topics": "m/1,m/2", "qos": 0, "client_id": ids[0]}),
    );
    assert_eq!(r.json, json!({"code": 0}));
    assert_eq!(
        node.ok(&node.api(&format!("subscriptions/{}", ids[0])))["data"]
            .as_array()
            .unwrap()
            .len(),
        3
    );

    // Unknown client: 112. Bad filter: 115.
    let r = node.post(
        &node.api("mqtt/subscribe"),
        json!({"topic": "x", "client_id": "nobody"}),
    );
    assert_eq!(r.json["code"], 112);
    let r = node.post(
        &node.api("mqtt/unsubscribe"),
        json!({"topic": "x", "client_id": "nobody"}),
    );
    assert_eq!(r.json["code"], 112);
    let r = node.post(
        &node.api("mqtt/subscribe"),
        json!({"topic": "a/#/b", "client_id": ids[0]}),
    );
    assert_eq!(r.json["code"], 115);
}

#[test]
fn api_subscribe_on_offline_persistent_session_queues_messages() {
    let node = start();
    for id in ids_on_both_shards("off", 2) {
        let (c, _) = Mqtt::connect(node.mqtt, &id, PERSISTENT);
        c.disconnect();
        node.poll(&node.api(&format!("connections/{id}")), "offline", |v| {
            v["data"] == json!([])
        });

        let r = node.post(
            &node.api("mqtt/subscribe"),
            json!({"topic": format!("off/{id}"), "qos": 1, "client_id": id}),
        );
        assert_eq!(r.json, json!({"code": 0}), "{id}: {}", r.text);
        let r = node.post(
            &node.api("mqtt/subscribe"),
            json!({"topic": "off/gone", "qos": 1, "client_id": id}),
        );
        assert_eq!(r.json, json!({"code": 0}));
        let r = node.post(
            &node.api("mqtt/unsubscribe"),
            json!({"topic": "off/gone", "client_id": id}),
        );
        assert_eq!(r.json, json!({"code": 0}));
        assert_eq!(
            node.ok(&node.api(&format!("subscriptions/{id}")))["data"],
            json!([{"client_id": id, "node": node.name, "qos": 1, "topic": format!("off/{id}")}])
        );

        for p in ["q1", "q2"] {
            let r = node.post(
                &node.api("mqtt/publish"),
                json!({"topic": format!("off/{id}"), "payload": p, "qos": 1}),
            );
            assert_eq!(r.json, json!({"code": 0}));
        }
        let r = node.post(
            &node.api("mqtt/publish"),
            json!({"topic": "off/gone", "payload": "no", "qos": 1}),
        );
        assert_eq!(r.json, json!({"code": 0}));
        let queued = node.poll(&node.api(&format!("sessions/{id}")), "2 queued", |v| {
            v["data"][0]["mqueue_len"] == 2
        });
        // heap_size: the bytes the session holds for its client (the two queued messages).
        assert!(
            queued["data"][0]["heap_size"].as_u64().unwrap() > 0,
            "{queued}"
        );

        let (mut c, present) = Mqtt::connect(node.mqtt, &id, PERSISTENT);
        assert!(present);
        let got: Vec<String> = (0..2).map(|_| payload(&c.expect_publish())).collect();
        assert_eq!(got, ["q1", "q2"], "{id}");
    }
}

/// The 43 metric names of the document (3.1 slash style).
const METRICS: [&str; 43] = [
    "bytes/received",
    "packets/pubrel/sent",
    "packets/pubcomp/missed",
    "packets/sent",
    "packets/pubrel/received",
    "messages/qos1/received",
    "packets/publish/received",
    "packets/auth",
    "messages/qos0/received",
    "packets/pubcomp/received",
    "packets/unsuback",
    "packets/pubrec/missed",
    "messages/qos1/sent",
    "messages/qos2/sent",
    "bytes/sent",
    "messages/received",
    "messages/dropped",
    "messages/qos2/received",
    "packets/connect",
    "messages/qos0/sent",
    "packets/disconnect/received",
    "packets/pubrec/sent",
    "packets/publish/sent",
    "packets/pubrec/received",
    "packets/received",
    "packets/unsubscribe",
    "packets/subscribe",
    "packets/disconnect/sent",
    "packets/pingresp",
    "messages/qos2/dropped",
    "packets/puback/missed",
    "packets/pingreq",
    "packets/connack",
    "packets/pubrel/missed",
    "messages/sent",
    "packets/suback",
    "messages/retained",
    "packets/puback/sent",
    "packets/puback/received",
    "messages/qos2/expired",
    "messages/forward",
    "messages/expired",
    "packets/pubcomp/sent",
];

/// The document's stats names plus `suboptions/count|max` (api-notes item 2).
const STATS: [&str; 20] = [
    "subscriptions/shared/max",
    "subscriptions/max",
    "subscribers/max",
    "topics/count",
    "subscriptions/count",
    "topics/max",
    "sessions/persistent/max",
    "connections/max",
    "subscriptions/shared/count",
    "sessions/persistent/count",
    "retained/count",
    "routes/count",
    "sessions/count",
    "retained/max",
    "sessions/max",
    "routes/max",
    "subscribers/count",
    "connections/count",
    "suboptions/count",
    "suboptions/max",
];

fn names(v: &Value) -> BTreeSet<String> {
    v.as_object()
        .unwrap()
        .keys()
        .filter(|k| *k != "node")
        .cloned()
        .collect()
}

#[test]
fn metrics_and_stats_after_known_traffic() {
    let node = start();
    let ids = ids_on_both_shards("met", 4);
    let mut clients: Vec<Mqtt> = ids.iter().map(|id| Mqtt::open(node.mqtt, id)).collect();
    clients[0].subscribe("m/t", QoS::AtMostOnce);
    clients[1].subscribe("m/t", QoS::AtMostOnce);
    // 3 publishes from each of two clients on different shards: 6 received, 12 sent.
    for _ in 0..3 {
        clients[2].publish("m/t", "x");
        clients[3].publish("m/t", "y");
    }
    for c in &mut clients[..2] {
        for _ in 0..6 {
            c.expect_publish();
        }
    }
    // One publish nobody subscribes to: dropped.
    clients[2].publish("nobody/here", "z");
    node.poll(&node.node_api("metrics/"), "7 received", |v| {
        v["data"]["messages/received"] == 7
    });

    let v = node.ok(&node.api("metrics/"));
    let list = v["data"].as_array().unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["node"], node.name);
    let m = &list[0]["metrics"];
    assert_eq!(
        names(m),
        METRICS.iter().map(|s| s.to_string()).collect(),
        "metric names"
    );
    for (name, want) in [
        ("packets/connect", 4),
        ("packets/connack", 4),
        ("packets/subscribe", 2),
        ("packets/suback", 2),
        ("messages/received", 7),
        ("packets/publish/received", 7),
        ("messages/qos0/received", 7),
        ("messages/sent", 12),
        ("packets/publish/sent", 12),
        ("messages/qos0/sent", 12),
        ("messages/dropped", 1),
        ("messages/qos1/received", 0),
        ("packets/disconnect/received", 0),
    ] {
        assert_eq!(m[name], want, "{name}");
    }
    // Every CONNECT, SUBSCRIBE and PUBLISH was received; CONNACK, SUBACK, PUBLISH sent.
    assert_eq!(m["packets/received"], 4 + 2 + 7);
    assert_eq!(m["packets/sent"], 4 + 2 + 12);
    assert!(m["bytes/received"].as_u64().unwrap() > 0);
    assert!(m["bytes/sent"].as_u64().unwrap() > 0);
    let v = node.ok(&node.node_api("metrics/"));
    assert_eq!(&v["data"], m, "node form equals cluster form");

    let v = node.ok(&node.api("stats/"));
    let s = &v["data"][0];
    assert_eq!(s["node"], node.name);
    assert_eq!(
        names(s),
        STATS.iter().map(|s| s.to_string()).collect(),
        "stat names"
    );
    for (name, want) in [
        ("connections/count", 4),
        ("sessions/count", 4),
        ("sessions/persistent/count", 0),
        ("subscriptions/count", 2),
        ("subscribers/count", 2),
        ("routes/count", 1),
        ("topics/count", 1),
    ] {
        assert_eq!(s[name], want, "{name}");
    }
    assert!(s["connections/max"].as_u64().unwrap() >= 4);
    let v = node.ok(&node.node_api("stats/"));
    assert!(v["data"].get("node").is_none());
    assert_eq!(v["data"]["connections/count"], 4);

    // After two disconnects: the count falls, the max stays.
    clients.pop().unwrap().disconnect();
    clients.pop().unwrap().disconnect();
    let v = node.poll(&node.node_api("stats/"), "2 connections", |v| {
        v["data"]["connections/count"] == 2
    });
    assert_eq!(v["data"]["connections/max"], 4);
    assert_eq!(node.metric("packets/disconnect/received"), 2);
}

#[test]
fn listeners_are_real_with_live_current_conns() {
    let node = start();
    let v = node.ok(&node.api("listeners/"));
    assert_eq!(v["data"][0]["node"], node.name);
    let listeners = v["data"][0]["listeners"].as_array().unwrap();
    let tcp = listeners
        .iter()
        .find(|l| l["protocol"] == "mqtt:tcp")
        .expect("mqtt:tcp");
    assert_eq!(tcp["listen_on"], node.mqtt.to_string());
    assert_eq!(tcp["acceptors"], SHARDS);
    assert_eq!(tcp["current_conns"], 0);
    assert_eq!(tcp["shutdown_count"], json!([]));
    let http = listeners
        .iter()
        .find(|l| l["protocol"] == "http:management")
        .expect("http:management");
    assert!(
        http["listen_on"]
            .as_str()
            .unwrap()
            .ends_with(&node.http.port().to_string()),
        "{http}"
    );
    assert!(http["current_conns"].as_u64().unwrap() >= 1, "this request");

    let ids = ids_on_both_shards("lis", 3);
    let mut clients: Vec<Mqtt> = ids.iter().map(|id| Mqtt::open(node.mqtt, id)).collect();
    let current = |v: &Value| -> u64 {
        v["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["protocol"] == "mqtt:tcp")
            .unwrap()["current_conns"]
            .as_u64()
            .unwrap()
    };
    node.poll(&node.node_api("listeners"), "3 conns", |v| current(v) == 3);
    clients.pop().unwrap().disconnect();
    node.poll(&node.node_api("listeners"), "2 conns", |v| current(v) == 2);
    // A clean DISCONNECT is not an abnormal end; a dropped socket is `closed`.
    drop(clients.pop());
    let v = node.poll(&node.node_api("listeners"), "1 conn", |v| current(v) == 1);
    let tcp = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["protocol"] == "mqtt:tcp")
        .unwrap()
        .clone();
    assert_eq!(tcp["shutdown_count"], json!({"closed": 1}));
}

#[test]
fn every_drop_counts_under_its_reason_per_shard_and_only_as_dropped_in_the_emqx_set() {
    let node = start();
    let mut c = Mqtt::open(node.mqtt, "dropper");
    c.publish("nobody/listens/here", "x");
    // The PINGRESP comes after the PUBLISH was handled (one connection, in order).
    c.send(&Packet::PingReq);
    assert!(matches!(c.recv(), Some(Packet::PingResp)));

    let r = node.get("/stats");
    assert_eq!(r.status, 200, "{}", r.text);
    let shards = r.json.as_array().expect("one object per shard");
    let sum = |k: &str| -> u64 {
        shards
            .iter()
            .map(|s| s[k].as_u64().unwrap_or_else(|| panic!("{k} in {s}")))
            .sum()
    };
    assert_eq!(sum("messages/dropped"), 1);
    assert_eq!(sum("messages/dropped/no_subscribers"), 1);
    for reason in ["queue_full", "qos0_offline", "slow_subscriber", "invalid"] {
        assert_eq!(sum(&format!("messages/dropped/{reason}")), 0, "{reason}");
    }
    let prom = node.get("/metrics").text;
    assert!(
        prom.lines().any(
            |l| l.starts_with("shardmq_messages_dropped_no_subscribers_total{")
                && l.ends_with(" 1")
        ),
        "{prom}"
    );

    // The EMQ X API keeps EMQ X's metric set: the reasons are ShardMQ's own.
    let metrics = node.ok("/api/v3/metrics/");
    let set = &metrics["data"][0]["metrics"];
    assert_eq!(set["messages/dropped"], 1, "{set}");
    assert!(
        set.as_object()
            .unwrap()
            .keys()
            .all(|k| !k.starts_with("messages/dropped/")),
        "{set}"
    );
}

#[test]
fn per_core_stats_and_prometheus_metrics() {
    let node = start();
    let ids = ids_on_both_shards("core", 2);
    let _clients: Vec<Mqtt> = ids.iter().map(|id| Mqtt::open(node.mqtt, id)).collect();
    node.connected(2);

    let r = node.get("/stats");
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.content_type.starts_with("application/json"));
    let shards = r.json.as_array().expect("one object per shard");
    assert_eq!(shards.len(), SHARDS);
    let mut connects = 0;
    for (i, s) in shards.iter().enumerate() {
        assert_eq!(s["shard"], i);
        assert_eq!(s["core"], node.cores[i]);
        for k in [
            "connections/count",
            "packets/connect",
            "messages/received",
            "loop/busy_permille",
            "mesh/sent",
            "mesh/received",
            "mesh/depth",
        ] {
            assert!(s[k].is_u64(), "shard {i}: {k} in {s}");
        }
        assert!(s["loop/busy_permille"].as_u64().unwrap() <= 1000);
        connects += s["packets/connect"].as_u64().unwrap();
    }
    assert_eq!(connects, 2);
    let live: u64 = shards
        .iter()
        .map(|s| s["connections/count"].as_u64().unwrap())
        .sum();
    assert_eq!(live, 2);
    assert_eq!(r.shards_header.as_deref(), Some("2/2"));

    let r = node.get("/metrics");
    assert_eq!(r.status, 200);
    assert!(
        r.content_type.starts_with("text/plain"),
        "{}",
        r.content_type
    );
    let text = &r.text;
    assert!(text.lines().any(|l| l.starts_with("# HELP ")));
    assert!(text.lines().any(|l| l.starts_with("# TYPE ")));
    let series: Vec<&str> = text
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    assert!(!series.is_empty());
    // Every series is per shard, except the management thread's own (node-wide).
    for line in &series {
        assert!(
            line.contains("shard=\"0\"")
                || line.contains("shard=\"1\"")
                || line.starts_with("shardmq_http_"),
            "{line}"
        );
    }
    // Every series family has its HELP and TYPE.
    for line in &series {
        let family = line.split(['{', ' ']).next().unwrap();
        let base = family
            .trim_end_matches("_total")
            .trim_end_matches("_bucket");
        assert!(
            text.contains(&format!("# TYPE {family} "))
                || text.contains(&format!("# TYPE {base} ")),
            "no TYPE for {family}"
        );
    }
    // Unauthenticated: 401.
    let r = finish(agent().get(&node.url("/metrics")).call());
    assert_eq!(r.status, 401);
}

#[test]
fn bad_input_over_the_socket() {
    let node = start();

    // Huge header: 431, closed.
    let mut s = raw(&node);
    let big = "x".repeat(8000);
    let req = format!("GET /api/v3/brokers/ HTTP/1.1\r\nHost: t\r\nX-Big: {big}\r\n\r\n");
    let _ = s.write_all(req.as_bytes());
    let (status, _, body) = read_response(&mut s, &mut Vec::new()).expect("an answer");
    assert_eq!(status, 431);
    assert_eq!(serde_json::from_slice::<Value>(&body).unwrap()["code"], 431);
    assert_closed(&mut s);
    still_serving(&node);

    // Huge body: 413 (refused from Content-Length, before it is sent).
    let mut s = raw(&node);
    let req = format!(
        "POST /api/v3/mqtt/publish HTTP/1.1\r\nHost: t\r\nAuthorization: {AUTH}\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n"
    );
    s.write_all(req.as_bytes()).unwrap();
    let (status, _, body) = read_response(&mut s, &mut Vec::new()).expect("an answer");
    assert_eq!(status, 413);
    assert_eq!(serde_json::from_slice::<Value>(&body).unwrap()["code"], 413);
    assert_closed(&mut s);
    still_serving(&node);

    // Garbage: 400, closed.
    let mut s = raw(&node);
    s.write_all(b"\x00\x01\x02 garbage \xff\xfe\r\n\r\n")
        .unwrap();
    let (status, _, _) = read_response(&mut s, &mut Vec::new()).expect("an answer");
    assert_eq!(status, 400);
    assert_closed(&mut s);
    still_serving(&node);

    // Half-sent request: the server gives up after its request timeout (1 s here) with a
    // 408 and closes, and meanwhile serves others.
    let mut slow = raw(&node);
    let started = Instant::now();
    slow.write_all(b"GET /api/v3/brokers/ HTTP/1.1\r\nHost: t\r\n")
        .unwrap();
    still_serving(&node);
    let answer = read_response(&mut slow, &mut Vec::new());
    let waited = started.elapsed();
    assert_eq!(answer.map(|(status, _, _)| status), Some(408));
    assert_closed(&mut slow);
    assert!(waited >= Duration::from_millis(900), "{waited:?}");
    assert!(waited < Duration::from_secs(4), "{waited:?}");

    // A half-sent body too.
    let mut slow = raw(&node);
    let req = format!(
        "POST /api/v3/mqtt/publish HTTP/1.1\r\nHost: t\r\nAuthorization: {AUTH}\r\nContent-Length: 20\r\n\r\n{{\"topic\""
    );
    slow.write_all(req.as_bytes()).unwrap();
    let answer = read_response(&mut slow, &mut Vec::new());
    assert_eq!(answer.map(|(status, _, _)| status), Some(408));
    assert_closed(&mut slow);

    // An application error keeps the connection usable: bad JSON, then a good request.
    let mut s = raw(&node);
    let mut pending = Vec::new();
    let req = format!(
        "POST /api/v3/mqtt/publish HTTP/1.1\r\nHost: t\r\nAuthorization: {AUTH}\r\nContent-Length: 5\r\n\r\n{{nope"
    );
    s.write_all(req.as_bytes()).unwrap();
    let (status, _, body) = read_response(&mut s, &mut pending).unwrap();
    assert_eq!(status, 400);
    assert_eq!(serde_json::from_slice::<Value>(&body).unwrap()["code"], 109);
    s.write_all(get_request("/api/v3/brokers/").as_bytes())
        .unwrap();
    let (status, _, _) = read_response(&mut s, &mut pending).unwrap();
    assert_eq!(status, 200);

    // The MQTT side is unaffected.
    let mut c = Mqtt::open(node.mqtt, "after-bad-http");
    c.subscribe("ok", QoS::AtMostOnce);
}

#[test]
fn keep_alive_and_pipelining() {
    let node = start();
    // Two requests one after the other on one connection.
    let mut s = raw(&node);
    let mut pending = Vec::new();
    for path in ["/api/v3/brokers/", "/api/v3/nodes/"] {
        s.write_all(get_request(path).as_bytes()).unwrap();
        let (status, head, body) = read_response(&mut s, &mut pending).expect("answer");
        assert_eq!(status, 200, "{path}");
        assert!(!head.to_ascii_lowercase().contains("connection: close"));
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["data"][0]["node"], node.name);
    }

    // Three pipelined in one write: three answers, in order; the last asks to close.
    let mut s = raw(&node);
    let mut pending = Vec::new();
    let batch = format!(
        "{}{}GET /status HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
        get_request("/api/v3/routes/"),
        get_request("/api/v3/nothing"),
    );
    s.write_all(batch.as_bytes()).unwrap();
    let (st1, _, b1) = read_response(&mut s, &mut pending).expect("first");
    let (st2, _, b2) = read_response(&mut s, &mut pending).expect("second");
    let (st3, head3, b3) = read_response(&mut s, &mut pending).expect("third");
    assert_eq!((st1, st2, st3), (200, 404, 200));
    assert!(serde_json::from_slice::<Value>(&b1).unwrap()["meta"].is_object());
    assert_eq!(serde_json::from_slice::<Value>(&b2).unwrap()["code"], 404);
    assert!(String::from_utf8_lossy(&b3).contains("is started"));
    assert!(head3.to_ascii_lowercase().contains("connection: close"));
    assert!(pending.is_empty());
    assert_closed(&mut s);
}
