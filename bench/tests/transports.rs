//! The generator's TLS, WebSocket and secure WebSocket transports against a real in-process
//! ShardMQ (2 shards) with its `ssl`, `ws` and `wss` listeners on, certificates made at test
//! time (rcgen). Asserts delivery, accounting and handshake kinds only, never timing:
//! - a one-second QoS 1 pairs run over tls, ws and wss loses nothing;
//! - `conn --tls` makes full handshakes only, with `--tls-resume` every connection resumes;
//! - the rtt and window probes run over wss and tls.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use serde_json::Value;
use shardmq::config::Config;
use shardmq_bench::cli::Opts;
use shardmq_bench::transport::Transport;

/// `admin:public`, the management API's bootstrap account.
const ADMIN_AUTH: &str = "Basic YWRtaW46cHVibGlj";

struct Node {
    broker: shardmq::broker::Broker,
    ssl: SocketAddr,
    ws: SocketAddr,
    wss: SocketAddr,
    ca: PathBuf,
    _dirs: (tempfile::TempDir, tempfile::TempDir),
}

/// A CA and a server certificate from it for `localhost` / 127.0.0.1, as PEM files.
fn make_pki(dir: &std::path::Path) -> (PathBuf, PathBuf, PathBuf) {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
        KeyUsagePurpose,
    };
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "bench test CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate().unwrap();
    let mut params =
        CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
    params
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    params.use_authority_key_identifier_extension = true;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let cert = params.signed_by(&key, &issuer).unwrap();
    let write = |name: &str, text: String| {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    (
        write("ca.pem", ca.pem()),
        write("server.pem", cert.pem()),
        write("server.key", key.serialize_pem()),
    )
}

/// `GET /api/v3/<path>` on the management API, as JSON.
fn api_get(http: SocketAddr, path: &str) -> Value {
    let mut s = std::net::TcpStream::connect(http).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let req = format!(
        "GET /api/v3/{path} HTTP/1.1\r\nHost: x\r\nAuthorization: {ADMIN_AUTH}\r\n\
         Connection: close\r\n\r\n"
    );
    s.write_all(req.as_bytes()).unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let body = text.split_once("\r\n\r\n").expect("an HTTP answer").1;
    serde_json::from_str(body).unwrap_or_else(|e| panic!("JSON from {path}: {e}: {text}"))
}

fn start() -> Node {
    let pki = tempfile::tempdir().unwrap();
    let (ca, cert, key) = make_pki(pki.path());
    let mut cfg = Config::default();
    cfg.listeners.tcp.bind = "127.0.0.1:0".parse().unwrap();
    cfg.management.bind = "127.0.0.1:0".parse().unwrap();
    let data = tempfile::tempdir().unwrap();
    cfg.node.data_dir = data.path().to_string_lossy().into_owned();
    let (cert, key) = (cert.to_string_lossy(), key.to_string_lossy());
    for name in ["ssl", "wss"] {
        for set in [
            format!("listeners.{name}.bind=127.0.0.1:0"),
            format!("listeners.{name}.certfile={cert}"),
            format!("listeners.{name}.keyfile={key}"),
        ] {
            cfg.apply_set(&set).unwrap_or_else(|e| panic!("{set}: {e}"));
        }
    }
    cfg.apply_set("listeners.ws.bind=127.0.0.1:0").unwrap();
    cfg.validate().expect("a valid configuration");
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let broker = shardmq::broker::start(cfg, &[0, 1 % cores]).expect("broker starts");
    let listeners = api_get(broker.http_addr, "listeners");
    let list = listeners["data"][0]["listeners"]
        .as_array()
        .unwrap_or_else(|| panic!("listeners: {listeners}"))
        .clone();
    let addr = |protocol: &str| -> SocketAddr {
        list.iter()
            .find(|l| l["protocol"] == protocol)
            .unwrap_or_else(|| panic!("{protocol} in {list:?}"))["listen_on"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap()
    };
    Node {
        ssl: addr("mqtt:ssl"),
        ws: addr("mqtt:ws"),
        wss: addr("mqtt:wss"),
        broker,
        ca,
        _dirs: (pki, data),
    }
}

fn opts(scenario: &str, port: u16, extra: &[&str]) -> Opts {
    let port = port.to_string();
    let mut args = vec!["shardmq-bench", scenario, "--port", &port, "--quiet"];
    if !extra.contains(&"--timeout") {
        args.extend_from_slice(&["--timeout", "60"]);
    }
    args.extend_from_slice(extra);
    let o = Opts::parse_from(args);
    o.validate().expect("valid options");
    o
}

/// One second of QoS 1 pairs over each transport: nothing lost, nothing duplicated.
fn pairs_lose_nothing(node: &Node) {
    let ca = node.ca.to_string_lossy().into_owned();
    let runs: [(Transport, u16, Vec<&str>); 3] = [
        (
            Transport::Tls,
            node.ssl.port(),
            vec!["--tls", "--cafile", &ca],
        ),
        (Transport::Ws, node.ws.port(), vec!["--ws"]),
        (
            Transport::Wss,
            node.wss.port(),
            vec!["--tls", "--insecure", "--ws", "--ws-path", "/mqtt"],
        ),
    ];
    for (transport, port, flags) in runs {
        let mut extra = vec![
            "--qos",
            "1",
            "-n",
            "3",
            "--duration",
            "1",
            "--warmup",
            "0",
            "--window",
            "16",
            "--size",
            "200",
            "--threads",
            "2",
            "--drain",
            "10",
        ];
        extra.extend_from_slice(&flags);
        let o = opts("pairs", port, &extra);
        let (report, _) = shardmq_bench::run::run(&o, &mut Vec::new())
            .unwrap_or_else(|e| panic!("pairs over {transport:?}: {e}"));
        let s = report.summary();
        assert_eq!(report.transport, transport, "{s}");
        assert_eq!(report.failed_connections, 0, "{s}");
        assert!(report.sent > 100, "{s}");
        assert_eq!(report.lost, 0, "{s}");
        assert_eq!(report.delivered, report.sent, "{s}");
        assert_eq!(report.duplicates, 0, "{s}");
        assert_eq!(report.foreign, 0, "{s}");
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["transport"], transport.name());
        assert_eq!(json.get("tls_resumed").is_some(), transport.tls(), "{json}");
    }
}

/// `conn --tls`: every connection a full handshake; `--tls-resume`: all resume.
fn conn_counts_resumed_handshakes(node: &Node) {
    let ca = node.ca.to_string_lossy().into_owned();
    let common = ["-n", "40", "--concurrency", "4", "--tls"];
    let mut full = common.to_vec();
    full.push("--insecure");
    let o = opts("conn", node.ssl.port(), &full);
    let (r, _) = shardmq_bench::run::run(&o, &mut Vec::new()).expect("conn over tls");
    assert_eq!(r.failed_connections, 0, "{}", r.summary());
    assert_eq!(
        (r.connects, r.tls_resumed),
        (40, Some(0)),
        "{}",
        r.summary()
    );

    let mut resumed = common.to_vec();
    resumed.extend_from_slice(&["--cafile", &ca, "--tls-resume"]);
    let o = opts("conn", node.ssl.port(), &resumed);
    let (r, _) = shardmq_bench::run::run(&o, &mut Vec::new()).expect("conn over tls, resumed");
    assert_eq!(r.failed_connections, 0, "{}", r.summary());
    // The warm-up fills the store for the first wave; every connection leaves two tickets.
    assert_eq!(r.tls_resumed, Some(40), "{}", r.summary());
    assert!(r.summary().contains("resumed"), "{}", r.summary());

    // conn over wss too (upgrade inside TLS, then CONNECT).
    let o = opts(
        "conn",
        node.wss.port(),
        &["-n", "10", "--tls", "--insecure", "--ws"],
    );
    let (r, _) = shardmq_bench::run::run(&o, &mut Vec::new()).expect("conn over wss");
    assert_eq!(
        (r.connects, r.failed_connections),
        (10, 0),
        "{}",
        r.summary()
    );
}

/// The blocking probes over the secure transports.
fn probes_run_over_tls_and_wss(node: &Node) {
    let o = opts(
        "rtt",
        node.wss.port(),
        &["--count", "20", "--tls", "--insecure", "--ws"],
    );
    let r = shardmq_bench::rtt::rtt(&o).expect("rtt over wss");
    assert_eq!(r.transport, Transport::Wss);
    assert_eq!(
        (
            r.ping.rounds,
            r.qos1.rounds,
            r.qos2.rounds,
            r.connect.rounds
        ),
        (20, 20, 20, 20)
    );
    let ca = node.ca.to_string_lossy().into_owned();
    let o = opts(
        "window",
        node.ssl.port(),
        &["--count", "100", "--tls", "--cafile", &ca],
    );
    let w = shardmq_bench::probe::window(&o).expect("window over tls");
    assert_eq!(w.transport, Transport::Tls);
    assert_eq!(w.sent, 100);
    assert!(w.window > 0 && w.window <= 100, "{w:?}");
    let o = opts("rtt", node.ws.port(), &["--count", "5", "--ws"]);
    assert_eq!(
        shardmq_bench::rtt::rtt(&o).expect("rtt over ws").transport,
        Transport::Ws
    );
}

/// The wrong transport for a port fails the run with an error, not a hang.
fn wrong_transport_fails(node: &Node) {
    let tcp = node.broker.mqtt_addr.port();
    for (port, flags) in [
        (tcp, vec!["--tls", "--insecure"]),
        (tcp, vec!["--ws"]),
        (node.ssl.port(), vec![]),
        (node.ws.port(), vec!["--ws", "--ws-path", "/elsewhere"]),
    ] {
        let mut extra = vec!["-n", "1", "--timeout", "10"];
        extra.extend_from_slice(&flags);
        let o = opts("conn", port, &extra);
        let e = shardmq_bench::run::run(&o, &mut Vec::new())
            .err()
            .unwrap_or_else(|| panic!("{flags:?} to port {port} connected"));
        assert!(!e.is_empty());
    }
}

#[test]
fn tls_ws_and_wss_against_an_in_process_broker() {
    let node = start();
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        pairs_lose_nothing(&node);
        conn_counts_resumed_handshakes(&node);
        probes_run_over_tls_and_wss(&node);
        wrong_transport_fails(&node);
    }));
    node.broker.stop();
    if let Err(p) = result {
        std::panic::resume_unwind(p);
    }
}

/// A CA file that does not exist fails the run before it starts, naming the option.
#[test]
fn wrong_transport_settings_fail_clearly() {
    let o = opts("conn", 9, &["--tls", "--cafile", "/nonexistent/ca.pem"]);
    let e = shardmq_bench::run::run(&o, &mut Vec::new()).unwrap_err();
    assert!(e.contains("--cafile"), "{e}");
}
