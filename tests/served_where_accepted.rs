//! With `shards.clean_sessions = "accepting"`, a clean start whose session ends with its
//! connection (3.x clean session, 5.0 Clean Start 1 with expiry 0) is served by the shard that accepted the socket; a persistent
//! one by its client id's home shard. Whichever
//! shards accept them, a newer connection of an id ends the older one (takeover, with its
//! will), a clean start discards a persistent session kept elsewhere, and the API finds and
//! acts on the client where it is.
//!
//! Which shard accepts a socket is the kernel's choice (`SO_REUSEPORT`), so each test repeats
//! until both placements happened and says so; `GET /stats` (`connections/count` per shard)
//! tells where a connection is served.

mod common;

use common::*;
use shardmq::codec::{Packet, ProtocolVersion, QoS};

/// Ids homed on shard 0 of two.
const HOME: usize = 0;

fn node() -> (tempfile::TempDir, AdminNode) {
    let dir = tempfile::tempdir().unwrap();
    let node = AdminNode::start(dir.path(), &["shards.clean_sessions=accepting"]);
    (dir, node)
}

/// The shard that serves the one connection opened since `before` was read.
fn serving_shard(node: &AdminNode, before: &[u64]) -> usize {
    let now = node.stats_per_shard("connections/count");
    let grew: Vec<usize> = (0..now.len()).filter(|&s| now[s] > before[s]).collect();
    assert_eq!(grew.len(), 1, "one new connection: {before:?} -> {now:?}");
    grew[0]
}

/// `n` connected clients whose ids are homed on [`HOME`].
fn connect_homed(node: &AdminNode, prefix: &str, clean: bool, n: usize) -> Vec<Raw> {
    (0..n)
        .map(|i| {
            let id = id_on_shard(&format!("{prefix}{i}-"), HOME);
            let (c, ack) = Raw::connect(node.mqtt, &id, clean, 0, None);
            assert_eq!(ack.code, 0);
            c
        })
        .collect()
}

#[test]
fn clean_sessions_are_served_where_accepted_and_persistent_ones_at_home() {
    let (_dir, node) = node();
    let mut clients = connect_homed(&node, "clean", true, 24);
    let clean = node.stats_per_shard("connections/count");
    assert_eq!(clean.iter().sum::<u64>(), 24);
    assert!(
        clean.iter().all(|&n| n > 0),
        "24 clean clients homed on one shard are served by both accepting shards: {clean:?}"
    );
    clients.extend(connect_homed(&node, "kept", false, 24));
    let all = node.stats_per_shard("connections/count");
    assert_eq!(
        all[HOME],
        clean[HOME] + 24,
        "persistent sessions live at home"
    );
    assert_eq!(all[1 - HOME], clean[1 - HOME]);
    for c in &mut clients {
        c.ping();
    }
}

#[test]
fn by_default_every_client_is_served_on_its_home_shard() {
    let dir = tempfile::tempdir().unwrap();
    let node = AdminNode::start(dir.path(), &[]);
    let clients: Vec<Raw> = (0..16)
        .map(|i| {
            Raw::connect(
                node.mqtt,
                &id_on_shard(&format!("d{i}-"), HOME),
                i % 2 == 0,
                0,
                None,
            )
            .0
        })
        .collect();
    assert_eq!(node.stats_per_shard("connections/count"), [16, 0]);
    drop(clients);
}

#[test]
fn a_newer_connection_ends_the_older_one_and_its_will_whichever_shards_serve_them() {
    let (_dir, node) = node();
    let id = id_on_shard("hopper", HOME);
    // Persistent, so at home: the other shard's count is the hopper's alone.
    let mut watcher = Raw::connect(node.mqtt, &id_on_shard("watcher", HOME), false, 0, None).0;
    watcher.subscribe(1, &[("hop/will", QoS::AtMostOnce)]);
    let mut current: Option<Raw> = None;
    let mut served_away = 0;
    for round in 0..20u32 {
        // Mostly clean sessions (served where accepted), now and then a persistent one.
        let clean = round % 4 != 3;
        let before = node.stats_per_shard("connections/count");
        let will = will("hop/will", &format!("{round}"), QoS::AtMostOnce, false);
        let (mut next, ack) = Raw::connect(node.mqtt, &id, clean, 0, Some(will));
        assert_eq!((ack.code, ack.session_present), (0, false), "round {round}");
        if let Some(mut old) = current.take() {
            old.expect_closed_silently();
            // The older connection's will goes out on the takeover.
            let p = watcher.recv_publish();
            assert_eq!(&p.payload[..], format!("{}", round - 1).as_bytes());
        }
        let now = node.stats_per_shard("connections/count");
        assert_eq!(
            now.iter().sum::<u64>(),
            before.iter().sum::<u64>() + u64::from(round == 0),
            "one connection of the id at a time (round {round}): {before:?} -> {now:?}"
        );
        if now[1 - HOME] == 1 {
            assert!(
                clean,
                "a persistent session is served at home (round {round})"
            );
            served_away += 1;
        }
        next.ping();
        current = Some(next);
    }
    assert!(
        served_away > 0,
        "a clean connection was served away from home"
    );
    // The API finds the client where it is, and kicks it there.
    let found = node.expect("GET", &format!("connections/{id}"), None, 0);
    assert_eq!(found["data"].as_array().map(Vec::len), Some(1), "{found}");
    node.expect("DELETE", &format!("connections/{id}"), None, 0);
    current.unwrap().expect_closed();
    // Kicked is not a DISCONNECT: the last connection's will goes out too, once.
    assert_eq!(&watcher.recv_publish().payload[..], b"19");
    watcher.expect_nothing();
}

#[test]
fn a_clean_start_away_from_home_discards_the_persistent_session_at_home() {
    let (_dir, node) = node();
    let id = id_on_shard("keeper", HOME);
    let mut publisher = Raw::connect(node.mqtt, &id_on_shard("feeder", HOME), true, 0, None).0;
    let mut away = 0;
    for round in 0..16u16 {
        let mut kept = Raw::connect(node.mqtt, &id, false, 0, None).0;
        kept.subscribe(1, &[("keep/t", QoS::AtLeastOnce)]);
        kept.disconnect();
        publisher.publish1("keep/t", b"queued", round + 1);

        let before = node.stats_per_shard("connections/count");
        let (clean, ack) = Raw::connect(node.mqtt, &id, true, 0, None);
        assert_eq!((ack.code, ack.session_present), (0, false), "round {round}");
        let served_away = serving_shard(&node, &before) != HOME;
        away += u32::from(served_away);
        clean.disconnect();

        let (mut again, ack) = Raw::connect(node.mqtt, &id, false, 0, None);
        assert_eq!(
            (ack.code, ack.session_present),
            (0, false),
            "the clean start ended the old session (round {round})"
        );
        if served_away {
            again.expect_nothing(); // nothing of the old session's queue either
        }
        again.disconnect();
        // Not kept either: the next round starts from nothing.
        let (c, ack) = Raw::connect(node.mqtt, &id, true, 0, None);
        assert!(!ack.session_present);
        c.disconnect();
    }
    assert!(away > 0, "a clean start was served away from home");
}

/// A 5.0 CONNECT with Clean Start 0 and no expiry resumes the session the id has, which then
/// ends with this connection [MQTT-3.1.2-5]: it is served where that session is, however
/// short-lived its own session will be.
#[test]
fn a_v5_resume_with_expiry_zero_finds_the_session_whichever_shard_accepts_it() {
    let (_dir, node) = node();
    let id = id_on_shard("resumer", HOME);
    let v5 = |clean: bool, expiry: Option<u32>| {
        let mut c = connect_packet(&id, clean, 0, None, ProtocolVersion::V5);
        c.properties.session_expiry_interval = expiry;
        c
    };
    let mut publisher = Raw::connect(node.mqtt, &id_on_shard("resume-feed", HOME), true, 0, None).0;
    // 16 rounds: the kernel spreads the accepts, so some are away from home (2^-16 that none is).
    for round in 0..16u16 {
        let (mut kept, ack) = Raw::connect_with(node.mqtt, v5(true, Some(300)));
        assert_eq!(ack.code, 0);
        kept.subscribe(1, &[("resume/t", QoS::AtLeastOnce)]);
        kept.disconnect();
        publisher.publish1("resume/t", b"queued", round + 1);

        let (mut resumed, ack) = Raw::connect_with(node.mqtt, v5(false, None));
        assert_eq!(
            (ack.code, ack.session_present),
            (0, true),
            "Clean Start 0 resumes the session (round {round})"
        );
        let p = resumed.recv_publish();
        assert_eq!(&p.payload[..], b"queued", "round {round}");
        resumed.send(&Packet::PubAck(shardmq::codec::PubResp::new(
            p.packet_id.unwrap(),
        )));
        resumed.disconnect();

        // Expiry 0: the session ended with that connection.
        let (gone, ack) = Raw::connect_with(node.mqtt, v5(false, None));
        assert!(!ack.session_present, "round {round}");
        gone.disconnect();
    }
}

#[test]
fn the_api_acts_on_a_clean_client_served_away_from_home() {
    let (_dir, node) = node();
    let id = id_on_shard("apiclient", HOME);
    // Connect until the client is served by the other shard.
    let mut client = None;
    for _ in 0..64 {
        let before = node.stats_per_shard("connections/count");
        let (c, ack) = Raw::connect(node.mqtt, &id, true, 0, None);
        assert_eq!(ack.code, 0);
        if serving_shard(&node, &before) != HOME {
            client = Some(c);
            break;
        }
        c.disconnect();
        // Its end is counted before the next round looks.
        let deadline = std::time::Instant::now() + WAIT;
        while node.stats_sum("connections/count") != 0 {
            assert!(std::time::Instant::now() < deadline, "the connection ended");
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }
    let mut client = client.expect("a connection served away from home in 64 tries");
    let body = serde_json::json!({"topic": "api/t", "qos": 1, "client_id": id});
    node.expect("POST", "mqtt/subscribe", Some(body), 0);
    let subs = node.expect("GET", &format!("subscriptions/{id}"), None, 0);
    assert_eq!(subs["data"][0]["topic"], "api/t", "{subs}");
    let session = node.expect("GET", &format!("sessions/{id}"), None, 0);
    assert_eq!(session["data"][0]["client_id"], id.as_str(), "{session}");
    let mut publisher = Raw::connect(node.mqtt, &id_on_shard("api-pub", HOME), true, 0, None).0;
    publisher.publish1("api/t", b"via the api's subscription", 1);
    let p = client.recv_publish();
    assert_eq!(&p.payload[..], b"via the api's subscription");
    client.send(&Packet::PubAck(shardmq::codec::PubResp::new(
        p.packet_id.unwrap(),
    )));
    node.expect("DELETE", &format!("connections/{id}"), None, 0);
    client.expect_closed();
}
