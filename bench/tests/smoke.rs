//! Smoke test: a real in-process ShardMQ broker with 2 shards on a free loopback port, and a
//! short QoS 1 fan-in against it. Asserts delivery and accounting only, never timing.

use clap::Parser;
use shardmq::config::Config;
use shardmq_bench::cli::Opts;

/// A configuration for an in-process broker on free loopback ports (MQTT and API) with its
/// own data directory: one broker per address and per directory. Keep the directory alive
/// while the broker runs.
fn loopback_config() -> (Config, tempfile::TempDir) {
    let mut cfg = Config::default();
    cfg.listeners.tcp.bind = "127.0.0.1:0".parse().unwrap();
    cfg.management.bind = "127.0.0.1:0".parse().unwrap();
    let data = tempfile::tempdir().unwrap();
    cfg.node.data_dir = data.path().to_string_lossy().into_owned();
    (cfg, data)
}

#[test]
fn fanin_qos1_against_an_in_process_broker_loses_nothing() {
    let (mut cfg, _data) = loopback_config();
    cfg.mqtt.max_mqueue = 100_000;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let broker = shardmq::broker::start(cfg, &[0, 1 % cores]).expect("broker starts");
    let port = broker.mqtt_addr.port().to_string();
    let opts = Opts::parse_from([
        "shardmq-bench",
        "fanin",
        "--port",
        &port,
        "--qos",
        "1",
        "-n",
        "4",
        "--count",
        "500",
        "--duration",
        "1",
        "--warmup",
        "0",
        "--threads",
        "2",
        "--drain",
        "10",
        "--timeout",
        "30",
    ]);
    let mut progress = Vec::new();
    let result = shardmq_bench::run::run(&opts, &mut progress);
    broker.stop();
    let (report, hist) = result.expect("run succeeds");
    assert_eq!(report.publishers, 4);
    assert!(report.sent > 0, "something was published");
    assert_eq!(report.lost, 0, "{}", report.summary());
    assert_eq!(report.delivered, report.sent, "{}", report.summary());
    assert_eq!(report.duplicates, 0);
    assert_eq!(report.foreign, 0);
    assert_eq!(hist.len(), report.measured);
}

/// The window probe reports the broker's configured in-flight window exactly, and "no limit"
/// when the window is larger than what it publishes.
#[test]
fn window_probe_finds_the_brokers_inflight_window() {
    let (mut cfg, _data) = loopback_config();
    cfg.mqtt.max_inflight = 7;
    let broker = shardmq::broker::start(cfg, &[0]).expect("broker starts");
    let port = broker.mqtt_addr.port().to_string();
    let probe = |count: &str| {
        let opts = Opts::parse_from([
            "shardmq-bench",
            "window",
            "--port",
            &port,
            "--count",
            count,
            "--timeout",
            "30",
        ]);
        shardmq_bench::probe::window(&opts)
    };
    let seven = probe("50");
    let all = probe("5");
    broker.stop();
    let seven = seven.expect("probe runs");
    assert_eq!((seven.sent, seven.window, seven.unbounded), (50, 7, false));
    let all = all.expect("probe runs");
    assert_eq!((all.sent, all.window, all.unbounded), (5, 5, true));
}

/// `rtt --settle` pings unmeasured for that long before the measured rounds, which stay
/// `--count` each.
#[test]
fn rtt_probe_settles_before_measuring() {
    let (cfg, _data) = loopback_config();
    let broker = shardmq::broker::start(cfg, &[0, 0]).expect("broker starts");
    let port = broker.mqtt_addr.port().to_string();
    let opts = Opts::parse_from([
        "shardmq-bench",
        "rtt",
        "--port",
        &port,
        "--count",
        "10",
        "--settle",
        "0.3",
        "--timeout",
        "30",
    ]);
    let started = std::time::Instant::now();
    let report = shardmq_bench::rtt::rtt(&opts);
    let took = started.elapsed();
    broker.stop();
    let r = report.expect("probe runs");
    assert_eq!(r.settle_s, 0.3);
    assert_eq!(
        (
            r.ping.rounds,
            r.qos1.rounds,
            r.qos2.rounds,
            r.connect.rounds
        ),
        (10, 10, 10, 10)
    );
    assert!(
        took >= std::time::Duration::from_millis(300),
        "took {took:?}"
    );
}
