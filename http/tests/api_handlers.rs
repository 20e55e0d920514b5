//! Pure tests of the REST handlers (`shardmq_http::api::Api`) over a fake `Collector`: no
//! sockets, no broker. Requests are parsed from raw bytes, so they are exactly what a
//! client would send.

use std::cell::RefCell;
use std::net::IpAddr;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use futures_lite::future::block_on;
use serde_json::{json, Value};
use shardmq_http::api::Api;
use shardmq_http::auth::{Bootstrap, CredentialStore};
use shardmq_http::collector::{ApiAnswer, ApiCall, Collector, Coverage, LocalBoxFuture, Page};
use shardmq_http::index::API_INDEX;
use shardmq_http::model::{
    BrokerInfo, ConnectionInfo, ListenerInfo, Memory, NamedValues, NodeInfo, RouteInfo,
    SessionInfo, ShardView, ShutdownCount, SubscriptionInfo,
};
use shardmq_http::throttle::{AuthThrottle, ThrottleConfig};
use shardmq_http::{parse_request, ApiError, ErrorCode, Limits, Paging, Reply, Response};

const NODE: &str = "shardmq@test";

/// Answers every call from canned data and records what it was asked.
#[derive(Default)]
struct Fake {
    calls: RefCell<Vec<ApiCall>>,
    /// When set, every call answers this instead.
    fail: Option<ApiError>,
}

fn conn(id: &str) -> ConnectionInfo {
    ConnectionInfo {
        clean_start: true,
        client_id: id.into(),
        conn_mod: "emqx_connection".into(),
        connected_at: "2019-04-29 11:05:01".into(),
        heap_size: 1,
        ipaddress: "127.0.0.1".into(),
        is_bridge: false,
        keepalive: 60,
        mailbox_len: 0,
        node: NODE.into(),
        peercert: "nossl".into(),
        port: 1234,
        proto_name: "MQTT".into(),
        proto_ver: 4,
        recv_cnt: 1,
        recv_msg: 0,
        recv_oct: 10,
        recv_pkt: 1,
        reductions: 2,
        send_cnt: 1,
        send_msg: 0,
        send_oct: 4,
        send_pend: 0,
        send_pkt: 1,
        username: "undefined".into(),
        zone: "external".into(),
    }
}

fn session(id: &str) -> SessionInfo {
    SessionInfo {
        awaiting_rel_len: 0,
        binding: "local".into(),
        clean_start: false,
        client_id: id.into(),
        created_at: "2019-04-29 11:28:04".into(),
        deliver_msg: 0,
        enqueue_msg: 0,
        expiry_interval: 7200,
        heap_size: 0,
        inflight_len: 0,
        mailbox_len: 0,
        max_awaiting_rel: 100,
        max_inflight: 32,
        max_mqueue: 1000,
        max_subscriptions: 0,
        mqueue_dropped: 0,
        mqueue_len: 0,
        node: NODE.into(),
        reductions: 0,
        subscriptions_count: 1,
        username: "u".into(),
    }
}

fn sub(id: &str, topic: &str) -> SubscriptionInfo {
    SubscriptionInfo {
        client_id: id.into(),
        node: NODE.into(),
        qos: 1,
        topic: topic.into(),
    }
}

/// A page of `total` numbered rows as a broker would cut it.
fn cut<T: Clone>(all: Vec<T>, paging: Paging) -> Page<T> {
    Page {
        rows: paging.slice(&all).to_vec(),
        count: all.len() as u64,
    }
}

fn answer(call: &ApiCall) -> ApiAnswer {
    match call {
        ApiCall::Broker => ApiAnswer::Broker(BrokerInfo {
            datetime: "2019-04-29 10:56:41".into(),
            node: None,
            node_status: "Running".into(),
            otp_release: "glommio 0.9/rustc 1".into(),
            sysdescr: "ShardMQ".into(),
            uptime: "3 minutes, 59 seconds".into(),
            version: "v0.1.0".into(),
        }),
        ApiCall::Node => ApiAnswer::Node(NodeInfo {
            connections: 2,
            load1: "0.10".into(),
            load15: "0.30".into(),
            load5: "0.20".into(),
            max_fds: 1024,
            memory_total: Memory::Bytes(80_162_816),
            memory_used: Memory::Bytes(62_254_160),
            name: NODE.into(),
            node: None,
            node_status: "Running".into(),
            otp_release: "glommio".into(),
            process_available: 100,
            process_used: 2,
            uptime: "1 seconds".into(),
            version: "v0.1.0".into(),
        }),
        ApiCall::ListConnections { paging } => ApiAnswer::Connections(cut(
            (0..5).map(|i| conn(&format!("c{i}"))).collect(),
            *paging,
        )),
        ApiCall::LookupConnection { client_id } => {
            ApiAnswer::Connections(Page::all(vec![conn(client_id)]))
        }
        ApiCall::LookupConnectionsByUsername { .. } => {
            ApiAnswer::Connections(Page::all(vec![conn("a"), conn("b")]))
        }
        ApiCall::ListSessions { paging } => ApiAnswer::Sessions(cut(
            (0..3).map(|i| session(&format!("s{i}"))).collect(),
            *paging,
        )),
        ApiCall::LookupSession { client_id } => {
            ApiAnswer::Sessions(Page::all(vec![session(client_id)]))
        }
        ApiCall::ListSubscriptions { paging } => {
            ApiAnswer::Subscriptions(cut(vec![sub("a", "t"), sub("b", "u/#")], *paging))
        }
        ApiCall::ClientSubscriptions { client_id } => {
            ApiAnswer::Subscriptions(Page::all(vec![sub(client_id, "t")]))
        }
        ApiCall::ListRoutes { paging } => ApiAnswer::Routes(cut(
            vec![RouteInfo {
                node: NODE.into(),
                topic: "t".into(),
            }],
            *paging,
        )),
        ApiCall::LookupRoutes { topic } => ApiAnswer::Routes(Page::all(vec![RouteInfo {
            node: NODE.into(),
            topic: topic.clone(),
        }])),
        ApiCall::Metrics => ApiAnswer::Values(NamedValues::from_pairs([
            ("packets/connect", 5),
            ("messages/received", 2),
        ])),
        ApiCall::Stats => ApiAnswer::Values(NamedValues::from_pairs([
            ("connections/count", 1),
            ("connections/max", 2),
        ])),
        ApiCall::Listeners => ApiAnswer::Listeners(vec![ListenerInfo {
            acceptors: 2,
            current_conns: 1,
            listen_on: "127.0.0.1:1883".into(),
            max_conns: 100,
            protocol: "mqtt:tcp".into(),
            shutdown_count: ShutdownCount(NamedValues::from_pairs([("kicked", 1)])),
        }]),
        ApiCall::ShardViews => ApiAnswer::Shards(
            (0..2)
                .map(|i| ShardView {
                    shard: i,
                    core: i + 4,
                    stats: NamedValues::from_pairs([("connections/count", u64::from(i))]),
                    metrics: NamedValues::from_pairs([("packets/connect", 3)]),
                    event_loop: NamedValues::from_pairs([("loop/busy_permille", 7)]),
                    rules: Vec::new(),
                })
                .collect(),
        ),
        _ => ApiAnswer::Done,
    }
}

impl Collector for Fake {
    fn call(&self, call: ApiCall) -> LocalBoxFuture<'_, Reply> {
        let answer = match &self.fail {
            Some(e) => ApiAnswer::Failed(e.clone()),
            None => answer(&call),
        };
        self.calls.borrow_mut().push(call);
        Box::pin(async move {
            Reply {
                answer,
                coverage: Coverage {
                    responded: 1,
                    total: 2,
                },
            }
        })
    }
}

fn api_with(fake: Fake) -> Api<Fake> {
    Api {
        collector: fake,
        node: NODE.into(),
        credentials: std::rc::Rc::new(RefCell::new(CredentialStore::bootstrap(
            &Bootstrap::default(),
        ))),
        clock: || 1_000,
        throttle: RefCell::new(AuthThrottle::new(ThrottleConfig::off())),
    }
}

fn api() -> Api<Fake> {
    api_with(Fake::default())
}

fn basic(user_pass: &str) -> String {
    format!("Basic {}", STANDARD.encode(user_pass))
}

/// Sends raw request bytes through the parser and the handlers.
fn send_raw(api: &Api<Fake>, raw: &[u8]) -> Response {
    send_raw_from(api, None, raw)
}

/// [`send_raw`] as if from `peer` (what the connection loop fills in).
fn send_raw_from(api: &Api<Fake>, peer: Option<IpAddr>, raw: &[u8]) -> Response {
    let (mut req, used) = parse_request(raw, &Limits::default())
        .expect("valid request")
        .expect("complete request");
    assert_eq!(used, raw.len());
    req.peer = peer;
    block_on(api.dispatch(&req))
}

fn request(
    api: &Api<Fake>,
    method: &str,
    target: &str,
    auth: Option<&str>,
    body: &str,
) -> Response {
    request_from(api, None, method, target, auth, body)
}

fn request_from(
    api: &Api<Fake>,
    peer: Option<&str>,
    method: &str,
    target: &str,
    auth: Option<&str>,
    body: &str,
) -> Response {
    let mut raw = format!("{method} {target} HTTP/1.1\r\nHost: x\r\n");
    if let Some(a) = auth {
        raw.push_str(&format!("Authorization: {}\r\n", basic(a)));
    }
    raw.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    let peer = peer.map(|p| p.parse().expect("an IP address"));
    send_raw_from(api, peer, raw.as_bytes())
}

fn get(api: &Api<Fake>, target: &str) -> Response {
    request(api, "GET", target, Some("admin:public"), "")
}

fn post(api: &Api<Fake>, target: &str, body: &str) -> Response {
    request(api, "POST", target, Some("admin:public"), body)
}

fn json_of(resp: &Response) -> Value {
    serde_json::from_slice(&resp.body)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&resp.body)))
}

fn header<'a>(resp: &'a Response, name: &str) -> Option<&'a str> {
    resp.extra_headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

fn assert_error(resp: &Response, status: u16, code: u64) {
    assert_eq!(
        resp.status,
        status,
        "{}",
        String::from_utf8_lossy(&resp.body)
    );
    assert_eq!(resp.content_type, "application/json");
    let v = json_of(resp);
    assert_eq!(v["code"], code, "{v}");
    assert!(v["message"].is_string(), "{v}");
    assert!(v.get("data").is_none(), "{v}");
}

// ---------------------------------------------------------------- auth

#[test]
fn missing_or_wrong_credentials_are_401_with_challenge() {
    let api = api();
    for auth in [
        None,
        Some("admin:wrong"),
        Some("nobody:public"),
        Some("admin"),
    ] {
        let resp = request(&api, "GET", "/api/v3/brokers/", auth, "");
        assert_error(&resp, 401, 401);
        assert_eq!(
            header(&resp, "WWW-Authenticate"),
            Some("Basic realm=\"shardmq\""),
            "{auth:?}"
        );
    }
    // A malformed Authorization header is a 401 too, not a 400 or a panic.
    let resp = send_raw(
        &api,
        b"GET /api/v3/brokers/ HTTP/1.1\r\nHost: x\r\nAuthorization: Basic !!!\r\n\r\n",
    );
    assert_error(&resp, 401, 401);
    let resp = send_raw(
        &api,
        b"GET /api/v3/brokers/ HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer abc\r\n\r\n",
    );
    assert_error(&resp, 401, 401);
    assert!(
        api.collector.calls.borrow().is_empty(),
        "no call before auth"
    );
}

fn throttled_api(fake: Fake, limit: u32) -> Api<Fake> {
    let api = api_with(fake);
    *api.throttle.borrow_mut() = AuthThrottle::new(ThrottleConfig::from_secs(limit, 60, 60));
    api
}

#[test]
fn wrong_credentials_from_one_address_are_401_then_429_for_every_login_from_it() {
    let api = throttled_api(Fake::default(), 3);
    let from = |ip: &str, auth: &str| {
        request_from(&api, Some(ip), "GET", "/api/v3/brokers/", Some(auth), "")
    };
    for _ in 0..3 {
        assert_error(&from("127.0.0.1", "admin:guess"), 401, 401);
    }
    for auth in ["admin:guess", "admin:public"] {
        let resp = from("127.0.0.1", auth);
        assert_error(&resp, 429, 429);
        assert!(resp.close, "a refused guesser reconnects");
        let secs: u64 = header(&resp, "Retry-After").unwrap().parse().unwrap();
        assert!((59..=60).contains(&secs), "{secs}");
        assert!(json_of(&resp)["message"]
            .as_str()
            .unwrap()
            .contains("retry in"));
    }
    // The login routes are throttled too; the unauthenticated liveness check is not.
    let login = request_from(
        &api,
        Some("127.0.0.1"),
        "POST",
        "/api/v3/auth",
        None,
        r#"{"username":"admin","password":"public"}"#,
    );
    assert_error(&login, 429, 429);
    assert_eq!(
        request_from(&api, Some("127.0.0.1"), "GET", "/status", None, "").status,
        200
    );
    // Another address, even next door, is not affected.
    assert_eq!(from("127.0.0.2", "admin:public").status, 200);
    assert_eq!(from("::1", "admin:public").status, 200);
    assert!(api
        .collector
        .calls
        .borrow()
        .iter()
        .all(|c| matches!(c, ApiCall::Broker)));

    let metrics = request_from(
        &api,
        Some("127.0.0.2"),
        "GET",
        "/metrics",
        Some("admin:public"),
        "",
    );
    let text = String::from_utf8(metrics.body).unwrap();
    for line in [
        "shardmq_http_refused_auth_failed_total 3",
        "shardmq_http_refused_auth_throttled_total 3",
        "shardmq_http_auth_throttled_addresses_total 1",
    ] {
        assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
    }
}

#[test]
fn a_success_before_the_limit_clears_and_missing_credentials_do_not_count() {
    let api = throttled_api(Fake::default(), 3);
    let from = |auth: Option<&str>| {
        request_from(&api, Some("10.0.0.9"), "GET", "/api/v3/brokers/", auth, "").status
    };
    for _ in 0..10 {
        assert_eq!(from(Some("admin:guess")), 401);
        assert_eq!(from(Some("admin:guess")), 401);
        assert_eq!(from(Some("admin:public")), 200, "clears the two failures");
    }
    for _ in 0..10 {
        assert_eq!(from(None), 401, "a question, not a guess");
    }
    assert_eq!(from(Some("admin:public")), 200);
}

#[test]
fn failed_dashboard_logins_count_like_wrong_basic_credentials() {
    let api = throttled_api(
        Fake {
            fail: Some(ApiError::new(ErrorCode::BadCredentials, "Password Error")),
            ..Fake::default()
        },
        2,
    );
    let login = || {
        request_from(
            &api,
            Some("10.0.0.9"),
            "POST",
            "/api/v3/auth",
            None,
            r#"{"username":"admin","password":"x"}"#,
        )
    };
    assert_eq!(json_of(&login())["code"], 103);
    assert_eq!(json_of(&login())["code"], 103);
    assert_error(&login(), 429, 429);
    assert_eq!(
        api.collector.calls.borrow().len(),
        2,
        "the third never reached the broker"
    );
}

#[test]
fn without_a_peer_address_or_with_the_throttle_off_nothing_is_refused() {
    let unknown_peer = throttled_api(Fake::default(), 1);
    for _ in 0..5 {
        assert_eq!(
            request(
                &unknown_peer,
                "GET",
                "/api/v3/brokers/",
                Some("admin:x"),
                ""
            )
            .status,
            401
        );
    }
    assert_eq!(
        request(
            &unknown_peer,
            "GET",
            "/api/v3/brokers/",
            Some("admin:public"),
            ""
        )
        .status,
        200
    );
    let off = api();
    for _ in 0..50 {
        let resp = request_from(
            &off,
            Some("10.0.0.9"),
            "GET",
            "/api/v3/brokers/",
            Some("admin:x"),
            "",
        );
        assert_eq!(resp.status, 401);
    }
}

#[test]
fn default_app_and_user_are_accepted() {
    let api = api();
    let resp = request(&api, "GET", "/api/v3/brokers/", Some("admin:public"), "");
    assert_eq!(resp.status, 200);
    assert_eq!(json_of(&resp)["code"], 0);
    // With only the user left (the app removed), the same login still works.
    api.credentials.borrow_mut().apps.clear();
    let resp = request(&api, "GET", "/api/v3/brokers/", Some("admin:public"), "");
    assert_eq!(resp.status, 200);
    // And with neither, it does not.
    api.credentials.borrow_mut().users.clear();
    let resp = request(&api, "GET", "/api/v3/brokers/", Some("admin:public"), "");
    assert_eq!(resp.status, 401);
}

#[test]
fn status_needs_no_auth() {
    let api = api();
    let resp = request(&api, "GET", "/status", None, "");
    assert_eq!(resp.status, 200);
    assert!(resp.content_type.starts_with("text/plain"));
    assert_eq!(
        String::from_utf8_lossy(&resp.body),
        format!("Node {NODE} is started\nshardmq is running")
    );
    // The per-core views are not open.
    assert_eq!(request(&api, "GET", "/stats", None, "").status, 401);
    assert_eq!(request(&api, "GET", "/metrics", None, "").status, 401);
}

// ---------------------------------------------------------------- routing errors

#[test]
fn unknown_routes_and_wrong_methods_are_404() {
    let api = api();
    for (method, target) in [
        ("GET", "/api/v3/nothing"),
        ("GET", "/api/v3/connections/a/b/c"),
        ("GET", "/nothing"),
        ("GET", "/"),
        ("POST", "/api/v3/brokers/"),
        ("DELETE", "/api/v3/sessions/x"),
        ("PUT", "/api/v3/connections/x"),
        ("GET", "/api/v3/mqtt/publish"),
        ("BREW", "/api/v3/brokers/"),
        ("POST", "/status"),
    ] {
        let resp = request(&api, method, target, Some("admin:public"), "");
        assert_error(&resp, 404, 404);
    }
    assert!(api.collector.calls.borrow().is_empty());
}

#[test]
fn a_path_that_is_not_utf8_once_decoded_is_400_and_a_chunked_body_is_read() {
    let api = api();
    for target in ["/api/v3/routes/%FF", "/api/v3/%C3%28/x"] {
        let resp = request(&api, "GET", target, Some("admin:public"), "");
        assert_error(&resp, 400, 400);
    }
    assert!(api.collector.calls.borrow().is_empty());
    // A chunked body reaches the handler whole (a publish through the API).
    let auth = basic("admin:public");
    let mut raw = format!(
        "POST /api/v3/mqtt/publish HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\n\
         Transfer-Encoding: chunked\r\n\r\n"
    );
    for chunk in [r#"{"topic":"a/b","#, r#""payload":"hi","qos":1}"#] {
        raw.push_str(&format!("{:x}\r\n{chunk}\r\n", chunk.len()));
    }
    raw.push_str("0\r\n\r\n");
    let resp = send_raw(&api, raw.as_bytes());
    assert_eq!(resp.status, 200, "{}", json_of(&resp));
    assert_eq!(json_of(&resp)["code"], 0);
}

#[test]
fn unknown_node_is_404_on_every_node_route() {
    let api = api();
    for target in [
        "/api/v3/brokers/emqx@127.0.0.1",
        "/api/v3/nodes/other@host",
        "/api/v3/nodes/other@host/connections/",
        "/api/v3/nodes/other@host/connections/c1",
        "/api/v3/nodes/other@host/connection/username/u",
        "/api/v3/nodes/other@host/sessions/",
        "/api/v3/nodes/other@host/sessions/c1",
        "/api/v3/nodes/other@host/subscriptions/",
        "/api/v3/nodes/other@host/subscriptions/c1",
        "/api/v3/nodes/other@host/metrics/",
        "/api/v3/nodes/other@host/stats/",
        "/api/v3/nodes/other@host/listeners",
    ] {
        assert_error(&get(&api, target), 404, 404);
    }
    let resp = request(
        &api,
        "DELETE",
        "/api/v3/nodes/other@host/sessions/persistent/c1",
        Some("admin:public"),
        "",
    );
    assert_error(&resp, 404, 404);
    assert!(api.collector.calls.borrow().is_empty());
    // The right node, percent-encoded or not, is found.
    assert_eq!(get(&api, &format!("/api/v3/brokers/{NODE}")).status, 200);
    assert_eq!(get(&api, "/api/v3/brokers/shardmq%40test").status, 200);
}

// ---------------------------------------------------------------- parameters

#[test]
fn bad_paging_is_code_108_with_status_200() {
    let api = api();
    for q in [
        "_page=abc",
        "_limit=0",
        "_page=0",
        "_page=-1",
        "_limit=x",
        "_page=1.5",
        "_limit=99999999999999999999999",
    ] {
        for path in [
            "/api/v3/connections/",
            format!("/api/v3/nodes/{NODE}/sessions/").as_str(),
            "/api/v3/subscriptions/",
            "/api/v3/routes/",
        ] {
            let resp = get(&api, &format!("{path}?{q}"));
            assert_error(&resp, 200, 108);
        }
    }
    assert!(api.collector.calls.borrow().is_empty());
}

#[test]
fn paging_is_passed_down_and_echoed() {
    let api = api();
    let v = json_of(&get(&api, "/api/v3/connections/?_page=2&_limit=2"));
    assert_eq!(v["meta"], json!({"page": 2, "limit": 2, "count": 5}));
    let ids: Vec<&str> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["client_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["c2", "c3"]);
    assert_eq!(
        api.collector.calls.borrow().last(),
        Some(&ApiCall::ListConnections {
            paging: Paging { page: 2, limit: 2 }
        })
    );
    // Past the end: empty data, true count.
    let v = json_of(&get(&api, "/api/v3/connections/?_page=9&_limit=2"));
    assert_eq!(v["data"], json!([]));
    assert_eq!(v["meta"]["count"], 5);
    // Defaults.
    let v = json_of(&get(&api, "/api/v3/sessions/"));
    assert_eq!(v["meta"], json!({"page": 1, "limit": 10000, "count": 3}));
}

#[test]
fn bad_json_bodies_are_400_code_109() {
    let api = api();
    for path in [
        "/api/v3/mqtt/publish",
        "/api/v3/mqtt/subscribe",
        "/api/v3/mqtt/unsubscribe",
    ] {
        for body in ["", "{", "not json", "[1,2]", "\"topic\"", "42", "null"] {
            assert_error(&post(&api, path, body), 400, 109);
        }
    }
    assert!(api.collector.calls.borrow().is_empty());
}

#[test]
fn missing_parameters_are_code_107() {
    let api = api();
    for (path, body) in [
        ("/api/v3/mqtt/publish", json!({"payload": "x"})),
        ("/api/v3/mqtt/subscribe", json!({"client_id": "c"})),
        ("/api/v3/mqtt/subscribe", json!({"topic": "t"})),
        ("/api/v3/mqtt/unsubscribe", json!({"client_id": "c"})),
        ("/api/v3/mqtt/unsubscribe", json!({"topic": "t"})),
        (
            "/api/v3/mqtt/unsubscribe",
            json!({"topic": null, "client_id": "c"}),
        ),
    ] {
        let resp = post(&api, path, &body.to_string());
        assert_error(&resp, 200, 107);
    }
    assert!(api.collector.calls.borrow().is_empty());
}

#[test]
fn mistyped_parameters_are_code_108() {
    let api = api();
    for (path, body) in [
        ("/api/v3/mqtt/publish", json!({"topic": "t", "qos": "1"})),
        ("/api/v3/mqtt/publish", json!({"topic": "t", "qos": 3})),
        ("/api/v3/mqtt/publish", json!({"topic": "t", "qos": -1})),
        ("/api/v3/mqtt/publish", json!({"topic": "t", "qos": 1.5})),
        (
            "/api/v3/mqtt/publish",
            json!({"topic": "t", "retain": "yes"}),
        ),
        ("/api/v3/mqtt/publish", json!({"topic": 5})),
        (
            "/api/v3/mqtt/publish",
            json!({"topic": "t", "payload": {"a": 1}}),
        ),
        (
            "/api/v3/mqtt/publish",
            json!({"topic": "t", "client_id": 1}),
        ),
        (
            "/api/v3/mqtt/subscribe",
            json!({"topic": "t", "client_id": "c", "qos": "0"}),
        ),
        (
            "/api/v3/mqtt/subscribe",
            json!({"topic": "t", "client_id": 7}),
        ),
        (
            "/api/v3/mqtt/unsubscribe",
            json!({"topic": ["t"], "client_id": "c"}),
        ),
    ] {
        let resp = post(&api, path, &body.to_string());
        assert_error(&resp, 200, 108);
    }
    assert!(api.collector.calls.borrow().is_empty());
}

#[test]
fn publish_subscribe_unsubscribe_bodies_reach_the_broker() {
    let api = api();
    let resp = post(
        &api,
        "/api/v3/mqtt/publish",
        r#"{"topic":"a/b","payload":"hello","qos":1,"retain":true,"client_id":"api"}"#,
    );
    assert_eq!(json_of(&resp), json!({"code": 0}));
    let resp = post(
        &api,
        "/api/v3/mqtt/publish",
        r#"{"topics":"x,y/z","payload":"p"}"#,
    );
    assert_eq!(json_of(&resp), json!({"code": 0}));
    let resp = post(
        &api,
        "/api/v3/mqtt/subscribe",
        r#"{"topic":"t/#","qos":2,"client_id":"c1"}"#,
    );
    assert_eq!(json_of(&resp), json!({"code": 0}));
    let resp = post(
        &api,
        "/api/v3/mqtt/unsubscribe",
        r#"{"topic":"t/#","client_id":"c1"}"#,
    );
    assert_eq!(json_of(&resp), json!({"code": 0}));
    let calls = api.collector.calls.borrow();
    match &calls[0] {
        ApiCall::Publish(p) => {
            assert_eq!(p.topic.as_deref(), Some("a/b"));
            assert_eq!(p.payload, "hello");
            assert_eq!((p.qos, p.retain), (1, true));
            assert_eq!(p.client_id, "api");
        }
        other => panic!("{other:?}"),
    }
    match &calls[1] {
        ApiCall::Publish(p) => {
            assert_eq!(p.topics.as_deref(), Some("x,y/z"));
            assert_eq!((p.qos, p.retain), (0, false));
            assert_eq!(
                shardmq_http::api::topics_of(&p.topic, &p.topics),
                ["x", "y/z"]
            );
        }
        other => panic!("{other:?}"),
    }
    match &calls[2] {
        ApiCall::Subscribe(p) => {
            assert_eq!(
                (p.topic.as_deref(), p.qos, p.client_id.as_str()),
                (Some("t/#"), 2, "c1")
            );
        }
        other => panic!("{other:?}"),
    }
    match &calls[3] {
        ApiCall::Unsubscribe(p) => {
            assert_eq!((p.topic.as_str(), p.client_id.as_str()), ("t/#", "c1"))
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn broker_failures_keep_their_code_and_status_200() {
    for (code, msg) in [
        (ErrorCode::ClientNotOnline, "not_found"),
        (ErrorCode::BadTopic, "bad_topic"),
        (ErrorCode::Unknown, "timeout"),
    ] {
        let api = api_with(Fake {
            fail: Some(ApiError::new(code, msg)),
            ..Fake::default()
        });
        for resp in [
            request(
                &api,
                "DELETE",
                "/api/v3/connections/c1",
                Some("admin:public"),
                "",
            ),
            post(&api, "/api/v3/mqtt/publish", r#"{"topic":"t"}"#),
            post(
                &api,
                "/api/v3/mqtt/subscribe",
                r#"{"topic":"t","client_id":"c"}"#,
            ),
            request(
                &api,
                "DELETE",
                "/api/v3/sessions/persistent/c1",
                Some("admin:public"),
                "",
            ),
        ] {
            assert_error(&resp, 200, u64::from(code.code()));
            assert_eq!(json_of(&resp)["message"], msg);
        }
    }
}

// ---------------------------------------------------------------- shapes

#[test]
fn api_index_is_the_full_route_list() {
    let api = api();
    let v = json_of(&get(&api, "/api/v3/"));
    assert_eq!(v["code"], 0);
    let rows = v["data"].as_array().unwrap();
    assert_eq!(rows.len(), API_INDEX.len());
    // The document's list, field for field.
    let doc: Value =
        serde_json::from_str(include_str!("fixtures/api_index.json")).expect("fixture");
    assert_eq!(v["data"], doc["data"]);
    for row in rows {
        let keys: Vec<&String> = row.as_object().unwrap().keys().collect();
        assert_eq!(keys.len(), 4, "{row}");
    }
    // Same without the trailing slash.
    assert_eq!(json_of(&get(&api, "/api/v3")), v);
}

#[test]
fn brokers_and_nodes_shapes() {
    let api = api();
    let v = json_of(&get(&api, "/api/v3/brokers/"));
    let list = v["data"].as_array().unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["node"], NODE);
    for k in [
        "datetime",
        "node_status",
        "otp_release",
        "sysdescr",
        "uptime",
        "version",
    ] {
        assert!(list[0][k].is_string(), "{k}");
    }
    let v = json_of(&get(&api, &format!("/api/v3/brokers/{NODE}")));
    assert!(v["data"].is_object());
    assert!(v["data"].get("node").is_none());
    assert_eq!(v["data"]["node_status"], "Running");

    let v = json_of(&get(&api, "/api/v3/nodes/"));
    let row = &v["data"][0];
    assert_eq!(row["node"], NODE);
    assert_eq!(row["name"], NODE);
    assert_eq!(row["memory_total"], "76.45M");
    assert_eq!(row["memory_used"], "59.37M");
    let v = json_of(&get(&api, &format!("/api/v3/nodes/{NODE}")));
    assert!(v["data"].get("node").is_none());
    assert_eq!(v["data"]["memory_total"], 80_162_816);
    assert_eq!(v["data"]["connections"], 2);
}

#[test]
fn lookups_are_arrays_and_ask_for_the_right_thing() {
    let api = api();
    for (target, call) in [
        (
            "/api/v3/connections/a%2Fb".to_string(),
            ApiCall::LookupConnection {
                client_id: "a/b".into(),
            },
        ),
        (
            format!("/api/v3/nodes/{NODE}/connections/c1"),
            ApiCall::LookupConnection {
                client_id: "c1".into(),
            },
        ),
        (
            "/api/v3/connection/username/u%20x".to_string(),
            ApiCall::LookupConnectionsByUsername {
                username: "u x".into(),
            },
        ),
        (
            format!("/api/v3/nodes/{NODE}/connection/username/u"),
            ApiCall::LookupConnectionsByUsername {
                username: "u".into(),
            },
        ),
        (
            "/api/v3/sessions/s1".to_string(),
            ApiCall::LookupSession {
                client_id: "s1".into(),
            },
        ),
        (
            format!("/api/v3/nodes/{NODE}/sessions/s1"),
            ApiCall::LookupSession {
                client_id: "s1".into(),
            },
        ),
        (
            "/api/v3/subscriptions/c1".to_string(),
            ApiCall::ClientSubscriptions {
                client_id: "c1".into(),
            },
        ),
        (
            format!("/api/v3/nodes/{NODE}/subscriptions/c1"),
            ApiCall::ClientSubscriptions {
                client_id: "c1".into(),
            },
        ),
        (
            "/api/v3/routes/a%2Fb%2F%23".to_string(),
            ApiCall::LookupRoutes {
                topic: "a/b/#".into(),
            },
        ),
    ] {
        let resp = get(&api, &target);
        let v = json_of(&resp);
        assert_eq!(v["code"], 0, "{target}");
        assert!(v["data"].is_array(), "{target}: {v}");
        assert!(!v["data"].as_array().unwrap().is_empty(), "{target}");
        assert!(v.get("meta").is_none(), "{target}: lookups do not paginate");
        assert_eq!(api.collector.calls.borrow().last(), Some(&call), "{target}");
    }
    let v = json_of(&get(&api, "/api/v3/routes/a%2Fb%2F%23"));
    assert_eq!(v["data"], json!([{"node": NODE, "topic": "a/b/#"}]));
}

#[test]
fn paginated_lists_have_meta_and_node_rows() {
    let api = api();
    for target in [
        "/api/v3/connections/".to_string(),
        format!("/api/v3/nodes/{NODE}/connections/"),
        "/api/v3/sessions/".to_string(),
        format!("/api/v3/nodes/{NODE}/sessions/"),
        "/api/v3/subscriptions/".to_string(),
        format!("/api/v3/nodes/{NODE}/subscriptions/"),
        "/api/v3/routes/".to_string(),
    ] {
        let v = json_of(&get(&api, &format!("{target}?_page=1&_limit=10000")));
        assert_eq!(v["code"], 0);
        let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["code", "data", "meta"], "{target}");
        let meta = &v["meta"];
        assert_eq!(meta["page"], 1);
        assert_eq!(meta["limit"], 10000);
        assert_eq!(
            meta["count"].as_u64().unwrap() as usize,
            v["data"].as_array().unwrap().len()
        );
        for row in v["data"].as_array().unwrap() {
            assert_eq!(row["node"], NODE, "{target}");
        }
    }
}

#[test]
fn kick_and_clean_answer_code_0() {
    let api = api();
    for (target, call) in [
        (
            "/api/v3/connections/c%2F1".to_string(),
            ApiCall::Kick {
                client_id: "c/1".into(),
            },
        ),
        (
            "/api/v3/sessions/persistent/p1".to_string(),
            ApiCall::CleanPersistentSession {
                client_id: "p1".into(),
            },
        ),
        (
            format!("/api/v3/nodes/{NODE}/sessions/persistent/p1"),
            ApiCall::CleanPersistentSession {
                client_id: "p1".into(),
            },
        ),
    ] {
        let resp = request(&api, "DELETE", &target, Some("admin:public"), "");
        assert_eq!(json_of(&resp), json!({"code": 0}), "{target}");
        assert_eq!(api.collector.calls.borrow().last(), Some(&call));
    }
}

#[test]
fn metrics_stats_listeners_cluster_and_node_forms() {
    let api = api();
    let v = json_of(&get(&api, "/api/v3/metrics/"));
    assert_eq!(
        v["data"],
        json!([{"node": NODE, "metrics": {"packets/connect": 5, "messages/received": 2}}])
    );
    let v = json_of(&get(&api, &format!("/api/v3/nodes/{NODE}/metrics/")));
    assert_eq!(
        v["data"],
        json!({"packets/connect": 5, "messages/received": 2})
    );

    let v = json_of(&get(&api, "/api/v3/stats/"));
    assert_eq!(
        v["data"],
        json!([{"node": NODE, "connections/count": 1, "connections/max": 2}])
    );
    let v = json_of(&get(&api, &format!("/api/v3/nodes/{NODE}/stats/")));
    assert_eq!(
        v["data"],
        json!({"connections/count": 1, "connections/max": 2})
    );

    let listener = json!({
        "acceptors": 2, "current_conns": 1, "listen_on": "127.0.0.1:1883",
        "max_conns": 100, "protocol": "mqtt:tcp", "shutdown_count": {"kicked": 1}
    });
    let v = json_of(&get(&api, "/api/v3/listeners/"));
    assert_eq!(
        v["data"],
        json!([{"listeners": [listener.clone()], "node": NODE}])
    );
    let v = json_of(&get(&api, &format!("/api/v3/nodes/{NODE}/listeners")));
    assert_eq!(v["data"], json!([listener]));
}

#[test]
fn per_core_views() {
    let api = api();
    let resp = get(&api, "/stats");
    assert_eq!(resp.status, 200);
    assert_eq!(resp.content_type, "application/json");
    let v = json_of(&resp);
    let shards = v.as_array().expect("one object per shard");
    assert_eq!(shards.len(), 2);
    assert_eq!(shards[1]["shard"], 1);
    assert_eq!(shards[1]["core"], 5);
    assert_eq!(shards[1]["connections/count"], 1);
    assert_eq!(shards[1]["loop/busy_permille"], 7);

    let resp = get(&api, "/metrics");
    assert_eq!(resp.status, 200);
    assert!(
        resp.content_type.starts_with("text/plain"),
        "{}",
        resp.content_type
    );
    let text = String::from_utf8(resp.body.clone()).unwrap();
    assert!(text.contains("# HELP "), "{text}");
    assert!(text.contains("# TYPE "), "{text}");
    // Every series is per shard, except the management thread's own (node-wide, `http/`).
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        assert!(
            line.contains("shard=\"") || line.starts_with("shardmq_http_"),
            "{line}"
        );
    }
    assert!(text.contains("\nshardmq_http_refused_auth_throttled_total 0\n"));
}

#[test]
fn coverage_header_on_broker_answers() {
    let api = api();
    for target in [
        "/api/v3/brokers/".to_string(),
        "/api/v3/nodes/".to_string(),
        "/api/v3/connections/".to_string(),
        "/api/v3/sessions/s1".to_string(),
        "/api/v3/metrics/".to_string(),
        format!("/api/v3/nodes/{NODE}/stats/"),
        "/api/v3/listeners/".to_string(),
        "/stats".to_string(),
        "/metrics".to_string(),
    ] {
        let resp = get(&api, &target);
        assert_eq!(header(&resp, "X-ShardMQ-Shards"), Some("1/2"), "{target}");
    }
    let resp = post(&api, "/api/v3/mqtt/publish", r#"{"topic":"t"}"#);
    assert_eq!(header(&resp, "X-ShardMQ-Shards"), Some("1/2"));
    // Errors decided before asking the broker carry none.
    let resp = get(&api, "/api/v3/connections/?_page=x");
    assert_eq!(header(&resp, "X-ShardMQ-Shards"), None);
}

#[test]
fn trailing_and_doubled_slashes_do_not_matter() {
    let api = api();
    for target in [
        "/api/v3/brokers",
        "/api/v3/brokers/",
        "/api/v3//brokers//",
        "//api/v3/brokers",
    ] {
        let v = json_of(&get(&api, target));
        assert_eq!(v["code"], 0, "{target}");
        assert!(v["data"].is_array(), "{target}");
    }
}
