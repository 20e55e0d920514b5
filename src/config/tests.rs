//! Unit tests of `config`: defaults vs the documented file, errors with keys and lines,
//! `--set`, validation and core placement.

use super::*;

#[test]
fn default_equals_the_documented_file() {
    let parsed = Config::from_toml_str(DEFAULT_TOML).expect("tuning/shardmq.toml parses");
    assert_eq!(parsed, Config::default());
}

#[test]
fn documented_file_spells_out_every_key() {
    // Equal values are not enough: a key missing from the file would take its default silently.
    let file: toml::Value = toml::from_str(DEFAULT_TOML).expect("parses");
    let code = toml::Value::try_from(Config::default()).expect("serialises");
    assert_eq!(file, code);
}

#[test]
fn defaults_validate() {
    Config::default().validate().expect("defaults are valid");
}

#[test]
fn empty_file_is_the_default() {
    assert_eq!(Config::from_toml_str("").unwrap(), Config::default());
}

#[test]
fn partial_file_keeps_other_defaults() {
    let c = Config::from_toml_str("[mqtt]\nmax_inflight = 64\n").unwrap();
    assert_eq!(c.mqtt.max_inflight, 64);
    assert_eq!(c.mqtt.max_mqueue, 1000);
    assert_eq!(c.node, NodeConfig::default());
}

#[test]
fn full_file_parses() {
    let text = r#"
[node]
name = "a@b"
[shards]
cores = [2, 3]
count = 4
channel_capacity = 8
scheduling = "batch"
[management]
core = 1
bind = "127.0.0.1:18083"
[listeners.tcp]
bind = "[::1]:1884"
[mqtt]
keepalive_multiplier = 2.0
shared_subscription_strategy = "hash_topic"
"#;
    let c = Config::from_toml_str(text).unwrap();
    assert_eq!(c.node.name, "a@b");
    assert_eq!(c.shards.cores, vec![2, 3]);
    assert_eq!(c.shards.count, 4);
    assert_eq!(c.shards.scheduling, crate::config::ShardScheduling::Batch);
    assert_eq!(c.management.core, Some(1));
    assert_eq!(c.management.bind, "127.0.0.1:18083".parse().unwrap());
    assert_eq!(c.listeners.tcp.bind, "[::1]:1884".parse().unwrap());
    assert_eq!(c.mqtt.keepalive_multiplier, 2.0);
    assert_eq!(
        c.mqtt.shared_subscription_strategy,
        SharedSubscriptionStrategy::HashTopic
    );
    c.validate().unwrap();
}

#[test]
fn wrong_type_names_key_and_line() {
    let text = "[node]\nname = \"x@y\"\n\n[mqtt]\nmax_mqueue = 5\nmax_inflight = \"a\"\n";
    let e = Config::from_toml_str(text).unwrap_err();
    assert_eq!(e.key(), Some("mqtt.max_inflight"));
    assert_eq!(e.line(), Some(6));
    assert_eq!(
        e.with_origin("tuning/x.toml").to_string(),
        "tuning/x.toml line 6: mqtt.max_inflight: invalid type: string \"a\", expected u16"
    );
}

#[test]
fn out_of_range_integer_names_key_and_line() {
    let e = Config::from_toml_str("[mqtt]\nmax_qos_allowed = 300\n").unwrap_err();
    assert_eq!(e.key(), Some("mqtt.max_qos_allowed"));
    assert_eq!(e.line(), Some(2));
}

#[test]
fn unknown_key_names_key_and_line() {
    let e = Config::from_toml_str("[mqtt]\nmax_inflight = 3\n\nmax_inflgiht = 4\n").unwrap_err();
    assert_eq!(e.key(), Some("mqtt.max_inflgiht"), "{e}");
    assert_eq!(e.line(), Some(4), "{e}");
    assert!(e.message().contains("unknown field"), "{e}");
}

#[test]
fn unknown_nested_key_and_unknown_section() {
    let e = Config::from_toml_str("[listeners.tcp]\nbind = \"0.0.0.0:1\"\nport = 1\n").unwrap_err();
    assert_eq!(e.key(), Some("listeners.tcp.port"), "{e}");
    assert_eq!(e.line(), Some(3), "{e}");

    let e = Config::from_toml_str("# comment\n[mqttt]\nmax_inflight = 1\n").unwrap_err();
    assert_eq!(e.key(), Some("mqttt"), "{e}");
    assert_eq!(e.line(), Some(2), "{e}");
}

#[test]
fn bad_address_and_strategy_are_parse_errors() {
    let e = Config::from_toml_str("[management]\nbind = \"localhost\"\n").unwrap_err();
    assert_eq!(e.key(), Some("management.bind"), "{e}");
    assert_eq!(e.line(), Some(2));
    assert!(e.message().contains("IP:PORT"), "{e}");

    let e =
        Config::from_toml_str("[mqtt]\nshared_subscription_strategy = \"sticky\"\n").unwrap_err();
    assert_eq!(e.key(), Some("mqtt.shared_subscription_strategy"), "{e}");
    assert!(e.message().contains("round_robin"), "{e}");
}

#[test]
fn syntax_error_has_line() {
    let e = Config::from_toml_str("[mqtt]\nmax_inflight = = 3\n").unwrap_err();
    assert_eq!(e.line(), Some(2), "{e}");
    assert!(!e.to_string().contains('\n'), "one line: {e}");
}

#[test]
fn set_integer_string_and_array() {
    let mut c = Config::default();
    c.apply_set("mqtt.max_mqueue=100000").unwrap();
    c.apply_set("shards.cores=[0,1]").unwrap();
    c.apply_set("node.name=foo@bar").unwrap();
    c.apply_set("listeners.tcp.bind=127.0.0.1:1999").unwrap();
    c.apply_set("mqtt.upgrade_qos = true").unwrap();
    c.apply_set("mqtt.shared_subscription_strategy=hash_clientid")
        .unwrap();
    c.apply_set("management.core=3").unwrap();
    assert_eq!(c.mqtt.max_mqueue, 100_000);
    assert_eq!(c.shards.cores, vec![0, 1]);
    assert_eq!(c.node.name, "foo@bar");
    assert_eq!(c.listeners.tcp.bind, "127.0.0.1:1999".parse().unwrap());
    assert!(c.mqtt.upgrade_qos);
    assert_eq!(
        c.mqtt.shared_subscription_strategy,
        SharedSubscriptionStrategy::HashClientid
    );
    assert_eq!(c.management.core, Some(3));
}

#[test]
fn set_quoted_and_numeric_strings() {
    let mut c = Config::default();
    c.apply_set("node.name=\"a@b\"").unwrap();
    assert_eq!(c.node.name, "a@b");
    // Valid TOML of the wrong type is retried as a string.
    c.apply_set("node.name=123").unwrap();
    assert_eq!(c.node.name, "123");
    // An integer is accepted where a float is expected.
    c.apply_set("mqtt.keepalive_multiplier=2").unwrap();
    assert_eq!(c.mqtt.keepalive_multiplier, 2.0);
}

#[test]
fn set_errors_name_the_key() {
    let mut c = Config::default();
    let e = c.apply_set("mqtt.max_inflight=a").unwrap_err();
    assert_eq!(e.key(), Some("mqtt.max_inflight"));
    assert_eq!(e.origin(), Some("--set"));
    assert!(e.message().contains("expected u16"), "{e}");

    let e = c.apply_set("mqtt.max_infligt=3").unwrap_err();
    assert_eq!(e.key(), Some("mqtt.max_infligt"));
    assert!(e.message().contains("unknown field `max_infligt`"), "{e}");

    let e = c.apply_set("nope.x=3").unwrap_err();
    assert!(e.message().contains("unknown field `nope`"), "{e}");

    let e = c.apply_set("mqtt.max_inflight.x=3").unwrap_err();
    assert_eq!(e.key(), Some("mqtt.max_inflight"));

    let e = c.apply_set("shards.cores=[0,\"a\"]").unwrap_err();
    assert_eq!(e.key(), Some("shards.cores"));

    assert!(c.apply_set("mqtt.max_inflight").is_err());
    assert!(c.apply_set("=3").is_err());
    assert!(c.apply_set("mqtt..x=3").is_err());
    assert_eq!(
        c,
        Config::default(),
        "failed --set leaves the config unchanged"
    );
}

#[test]
fn validate_rejects_bad_values() {
    let cases: &[(&str, &str)] = &[
        ("node.name=nohost", "node.name"),
        ("node.name=a@", "node.name"),
        ("shards.cores=[1,2,1]", "shards.cores"),
        ("shards.channel_capacity=0", "shards.channel_capacity"),
        ("shards.nap_us=10001", "shards.nap_us"),
        ("shards.spin_us=1001", "shards.spin_us"),
        (
            "management.max_header_bytes=10",
            "management.max_header_bytes",
        ),
        ("management.bind=0.0.0.0:1883", "management.bind"),
        (
            "listeners.tcp.max_connections=0",
            "listeners.tcp.max_connections",
        ),
        ("listeners.tcp.backlog=0", "listeners.tcp.backlog"),
        ("mqtt.max_packet_size=0", "mqtt.max_packet_size"),
        ("mqtt.max_packet_size=268435456", "mqtt.max_packet_size"),
        ("mqtt.max_clientid_len=22", "mqtt.max_clientid_len"),
        ("mqtt.max_qos_allowed=3", "mqtt.max_qos_allowed"),
        ("mqtt.max_inflight=0", "mqtt.max_inflight"),
        ("mqtt.keepalive_multiplier=1.0", "mqtt.keepalive_multiplier"),
        ("mqtt.keepalive_multiplier=nan", "mqtt.keepalive_multiplier"),
        ("mqtt.idle_timeout=0", "mqtt.idle_timeout"),
        ("retainer.max_payload_size=0", "retainer.max_payload_size"),
        ("listeners.ssl.bind=nowhere", "listeners.ssl.bind"),
        (
            "listeners.ssl.bind=127.0.0.1:8883",
            "listeners.ssl.certfile",
        ),
        ("listeners.ws.bind=0.0.0.0:1883", "listeners.ws.bind"),
    ];
    for (set, key) in cases {
        let mut c = Config::default();
        c.apply_set(set).unwrap_or_else(|e| panic!("{set}: {e}"));
        let e = c.validate().expect_err(set);
        assert_eq!(e.key(), Some(*key), "{set}: {e}");
    }
    let mut c = Config::default();
    c.apply_set("mqtt.max_packet_size=268435455").unwrap();
    c.validate().unwrap();
}

#[test]
fn shard_cores_default_to_available() {
    let c = Config::default();
    assert_eq!(c.shard_cores(&[0, 1, 2, 3]), vec![0, 1, 2, 3]);
    assert_eq!(c.management_core(&[0, 1, 2, 3]), 3);
    assert_eq!(c.shard_cores(&[]), vec![0]);
    assert_eq!(c.management_core(&[]), 0);
    assert!(c.placement_warnings(&[0, 1]).is_empty());
}

#[test]
fn configured_cores_win() {
    let mut c = Config::default();
    c.apply_set("shards.cores=[2,5]").unwrap();
    assert_eq!(c.shard_cores(&[0, 1, 2, 3, 4, 5]), vec![2, 5]);
    assert_eq!(c.management_core(&[0, 1, 2, 3, 4, 5]), 5);
    c.apply_set("management.core=0").unwrap();
    assert_eq!(c.management_core(&[0, 1, 2, 3, 4, 5]), 0);
    assert!(c.placement_warnings(&[0, 1, 2, 3, 4, 5]).is_empty());
    let w = c.placement_warnings(&[0, 1, 2]);
    assert_eq!(w.len(), 1);
    assert!(w[0].contains("[5]"), "{w:?}");
}

#[test]
fn shard_count_takes_first_n_and_wraps() {
    let mut c = Config::default();
    c.shards.count = 2;
    assert_eq!(c.shard_cores(&[4, 5, 6]), vec![4, 5]);
    assert!(c.placement_warnings(&[4, 5, 6]).is_empty());
    c.shards.count = 5;
    assert_eq!(c.shard_cores(&[4, 5]), vec![4, 5, 4, 5, 4]);
    assert_eq!(c.placement_warnings(&[4, 5]).len(), 1);
    c.shards.cores = vec![7];
    c.shards.count = 2;
    assert_eq!(c.shard_cores(&[0, 1]), vec![7, 7]);
}

#[test]
fn server_keepalive_is_the_most_a_client_may_use() {
    let mut m = Config::default().mqtt;
    assert_eq!(m.imposed_keepalive(120), None, "off by default");
    m.server_keepalive = 60;
    assert_eq!(m.imposed_keepalive(120), Some(60));
    assert_eq!(
        m.imposed_keepalive(0),
        Some(60),
        "no keepalive is longer than any"
    );
    assert_eq!(m.imposed_keepalive(5), None);
    assert_eq!(m.imposed_keepalive(60), None);
}

#[test]
fn tls_and_websocket_listeners_are_checked_when_on() {
    let mut c = Config::default();
    assert!(c.listeners.ssl.addr().is_none(), "off by default");
    for set in [
        "listeners.wss.bind=127.0.0.1:8084",
        "listeners.wss.certfile=/c.pem",
        "listeners.wss.keyfile=/k.pem",
        "listeners.ws.bind=127.0.0.1:8083",
    ] {
        c.apply_set(set).unwrap();
    }
    c.validate().unwrap();
    let bad = |set: &str| {
        let mut c = c.clone();
        c.apply_set(set).unwrap();
        c.validate().unwrap_err().key().map(str::to_string)
    };
    assert_eq!(
        bad("listeners.wss.verify=verify_peer").as_deref(),
        Some("listeners.wss.cacertfile")
    );
    assert_eq!(
        bad("listeners.wss.verify=maybe").as_deref(),
        Some("listeners.wss.verify")
    );
    assert_eq!(
        bad("listeners.ws.path=mqtt").as_deref(),
        Some("listeners.ws.path")
    );
    assert_eq!(
        bad("listeners.wss.peer_cert_as_username=dn").as_deref(),
        Some("listeners.wss.peer_cert_as_username")
    );
    assert_eq!(
        bad("listeners.ws.max_connections=0").as_deref(),
        Some("listeners.ws.max_connections")
    );
}
