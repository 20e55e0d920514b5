//! CONNECT / CONNACK (spec 3.1, 3.2): every 3.x return code, the session present flag,
//! MQTT 3.1 ("MQIsdp") clients, assigned client ids, PINGREQ and DISCONNECT.

mod common;

use common::*;
use shardmq::codec::{Packet, ProtocolVersion, QoS, Str};

/// A CONNECT with the given protocol name and level, clean session, keepalive 60, id "c".
fn connect_bytes(name: &[u8], level: u8) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&(name.len() as u16).to_be_bytes());
    body.extend_from_slice(name);
    body.push(level);
    body.push(0x02); // clean session
    body.extend_from_slice(&60u16.to_be_bytes());
    body.extend_from_slice(&1u16.to_be_bytes());
    body.push(b'c');
    let mut out = vec![0x10, body.len() as u8];
    out.extend_from_slice(&body);
    out
}

/// Reads the raw CONNACK bytes the broker answers to `connect`, then expects the close.
fn raw_connack(broker: &TestBroker, connect: &[u8]) -> Packet {
    let mut c = broker.raw();
    c.send_bytes(connect);
    let ack = c.recv();
    c.expect_closed_silently();
    ack
}

#[test]
fn mqtt_3_1_2_2_unsupported_protocol_level_gets_connack_1_and_close() {
    let broker = TestBroker::default_broker();
    match raw_connack(&broker, &connect_bytes(b"MQTT", 6)) {
        Packet::ConnAck(a) => {
            assert_eq!(a.code, 1, "unacceptable protocol version");
            assert!(!a.session_present);
        }
        other => panic!("expected CONNACK, got {other:?}"),
    }
}

#[test]
fn mqtt_3_1_2_1_bad_protocol_name_gets_connack_1_and_close() {
    let broker = TestBroker::default_broker();
    match raw_connack(&broker, &connect_bytes(b"MQTX", 4)) {
        Packet::ConnAck(a) => assert_eq!(a.code, 1),
        other => panic!("expected CONNACK, got {other:?}"),
    }
    // "MQIsdp" is only valid with level 3.
    match raw_connack(&broker, &connect_bytes(b"MQIsdp", 4)) {
        Packet::ConnAck(a) => assert_eq!(a.code, 1),
        other => panic!("expected CONNACK, got {other:?}"),
    }
}

#[test]
fn connack_bytes_on_the_wire_are_exact() {
    let broker = TestBroker::default_broker();
    // Read the raw bytes: 0x20, remaining length 2, flags 0, return code 0.
    let mut stream = std::net::TcpStream::connect(broker.addr).unwrap();
    use std::io::{Read, Write};
    stream.write_all(&connect_bytes(b"MQTT", 4)).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    let mut ack = [0u8; 4];
    stream.read_exact(&mut ack).unwrap();
    assert_eq!(ack, [0x20, 0x02, 0x00, 0x00]);
}

#[test]
fn mqtt_3_1_3_8_empty_client_id_with_clean_session_0_is_rejected_with_2() {
    let broker = TestBroker::default_broker();
    let (mut c, ack) = Raw::connect(broker.addr, "", false, 0, None);
    assert_eq!(ack.code, 2, "identifier rejected");
    assert!(!ack.session_present);
    c.expect_closed_silently();
}

#[test]
fn client_id_longer_than_max_clientid_len_is_rejected_with_2_on_either_shard() {
    let broker = TestBroker::start(&["mqtt.max_clientid_len=30"]);
    for shard in 0..SHARDS {
        let long = id_on_shard(&"x".repeat(31), shard);
        assert!(long.len() > 30);
        let (mut c, ack) = Raw::connect(broker.addr, &long, true, 0, None);
        assert_eq!(
            ack.code,
            2,
            "id of {} bytes, home shard {shard}",
            long.len()
        );
        c.expect_closed_silently();
        // Exactly at the limit is accepted.
        let ok = id_on_shard(&"y".repeat(26), shard);
        assert!(ok.len() <= 30, "{ok}");
        let (c, ack) = Raw::connect(broker.addr, &ok, true, 0, None);
        assert_eq!(ack.code, 0);
        c.disconnect();
    }
}

#[test]
fn anonymous_client_is_refused_with_5_when_allow_anonymous_is_false() {
    // No auth source is loaded: every client is anonymous, whatever username and password it
    // sends (EMQ X: a client no source accepted counts as anonymous).
    let broker = TestBroker::start(&["mqtt.allow_anonymous=false"]);
    for shard in 0..SHARDS {
        let id = id_on_shard("anon", shard);
        let (mut c, ack) = Raw::connect(broker.addr, &id, true, 0, None);
        assert_eq!(ack.code, 5, "not authorized");
        c.expect_closed_silently();

        for user in ["alice", ""] {
            let mut with_user = connect_packet(&id, true, 0, None, ProtocolVersion::V311);
            with_user.username = Some(Str::from(user));
            with_user.password = Some(bytes::Bytes::from_static(b"made-up"));
            let (mut c, ack) = Raw::connect_with(broker.addr, with_user);
            assert_eq!(
                ack.code, 5,
                "a made-up username {user:?} is still anonymous"
            );
            c.expect_closed_silently();
        }
    }
}

#[test]
fn max_connections_holds_across_shards_and_a_closed_connection_makes_room() {
    let broker = TestBroker::start(&["listeners.tcp.max_connections=3"]);
    // Clients homed on both shards (two of them handed over by the accepting shard).
    let held: Vec<Raw> = (0..3)
        .map(|i| broker.client(&id_on_shard(&format!("capped{i}"), i % SHARDS), true))
        .collect();
    for i in 0..4 {
        // Closed without a CONNACK, whether or not the CONNECT got there first (a reset or an
        // EOF; a write may fail too once the broker closed).
        use std::io::{Read, Write};
        let mut extra = std::net::TcpStream::connect(broker.addr).unwrap();
        extra.set_read_timeout(Some(WAIT)).unwrap();
        let mut bytes = bytes::BytesMut::new();
        let connect = connect_packet(&format!("over-{i}"), true, 0, None, ProtocolVersion::V311);
        shardmq::codec::encode(
            &Packet::Connect(Box::new(connect)),
            ProtocolVersion::V311,
            &mut bytes,
        )
        .unwrap();
        let _ = extra.write_all(&bytes);
        let mut got = [0u8; 4];
        match extra.read(&mut got) {
            Ok(0) => {}
            Err(e)
                if e.kind() != std::io::ErrorKind::WouldBlock
                    && e.kind() != std::io::ErrorKind::TimedOut => {}
            other => panic!("connection {i} over the cap was answered: {other:?} {got:?}"),
        }
    }
    let mut held = held.into_iter();
    held.next().unwrap().disconnect();
    // The slot comes back when the closed connection's task ends: retry until it has.
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        // Until then a new connection is closed without a CONNACK.
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(broker.addr).unwrap();
        s.set_read_timeout(Some(WAIT)).unwrap();
        let mut bytes = bytes::BytesMut::new();
        let connect = connect_packet("after-one-left", true, 0, None, ProtocolVersion::V311);
        shardmq::codec::encode(
            &Packet::Connect(Box::new(connect)),
            ProtocolVersion::V311,
            &mut bytes,
        )
        .unwrap();
        let _ = s.write_all(&bytes);
        let mut ack = [0u8; 4];
        if s.read_exact(&mut ack).is_ok() {
            assert_eq!(ack, [0x20, 2, 0, 0], "CONNACK once there is room");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no room after a client left"
        );
    }
    drop(held);
}

#[test]
fn mqtt_3_2_2_session_present_flag_follows_clean_session() {
    let broker = TestBroker::default_broker();
    for shard in 0..SHARDS {
        let id = id_on_shard("sp", shard);
        // No session yet: present = 0, even with clean session 0 [MQTT-3.2.2-3].
        let (c, ack) = Raw::connect(broker.addr, &id, false, 0, None);
        assert_eq!((ack.code, ack.session_present), (0, false));
        c.disconnect();
        // The persistent session is there now [MQTT-3.2.2-2].
        let (c, ack) = Raw::connect(broker.addr, &id, false, 0, None);
        assert_eq!((ack.code, ack.session_present), (0, true));
        c.disconnect();
        // Clean session 1 discards it and answers 0 [MQTT-3.2.2-1].
        let (c, ack) = Raw::connect(broker.addr, &id, true, 0, None);
        assert_eq!((ack.code, ack.session_present), (0, false));
        c.disconnect();
        // ... and it is really gone.
        let (c, ack) = Raw::connect(broker.addr, &id, false, 0, None);
        assert_eq!((ack.code, ack.session_present), (0, false));
        c.disconnect();
    }
}

#[test]
fn mqtt_3_1_clients_mqisdp_connect_and_exchange_messages() {
    let broker = TestBroker::default_broker();
    let sub_id = id_on_shard("v31-sub", 0);
    let pub_id = id_on_shard("v31-pub", 1);
    let (mut sub, ack) = Raw::connect_with(
        broker.addr,
        connect_packet(&sub_id, true, 0, None, ProtocolVersion::V31),
    );
    assert_eq!(ack.code, 0);
    assert_eq!(sub.subscribe(1, &[("v31/t", QoS::AtLeastOnce)]), vec![1]);
    let (mut publisher, ack) = Raw::connect_with(
        broker.addr,
        connect_packet(&pub_id, true, 0, None, ProtocolVersion::V31),
    );
    assert_eq!(ack.code, 0);
    publisher.publish1("v31/t", b"hello 3.1", 7);
    let p = sub.recv_publish();
    assert_eq!(p.topic.as_str(), "v31/t");
    assert_eq!(&p.payload[..], b"hello 3.1");
    assert_eq!(p.qos, QoS::AtLeastOnce);
    publisher.disconnect();
}

#[test]
fn mqtt_3_1_3_6_empty_client_id_with_clean_session_gets_an_assigned_id() {
    let broker = TestBroker::default_broker();
    let (mut a, ack) = Raw::connect(broker.addr, "", true, 0, None);
    assert_eq!(ack.code, 0);
    assert!(!ack.session_present);
    let (mut b, ack) = Raw::connect(broker.addr, "", true, 0, None);
    assert_eq!(ack.code, 0);
    // Two anonymous clients are two sessions: both work, neither takes the other over.
    assert_eq!(a.subscribe(1, &[("assigned/a", QoS::AtMostOnce)]), vec![0]);
    assert_eq!(b.subscribe(1, &[("assigned/b", QoS::AtMostOnce)]), vec![0]);
    a.publish0("assigned/b", b"to b");
    b.publish0("assigned/a", b"to a");
    assert_eq!(&b.recv_publish().payload[..], b"to b");
    assert_eq!(&a.recv_publish().payload[..], b"to a");
}

#[test]
fn mqtt_3_12_pingreq_gets_pingresp() {
    let broker = TestBroker::default_broker();
    for shard in 0..SHARDS {
        let mut c = broker.client(&id_on_shard("ping", shard), true);
        for _ in 0..3 {
            c.ping();
        }
    }
}

#[test]
fn mqtt_3_14_4_disconnect_makes_the_broker_close_the_connection() {
    let broker = TestBroker::default_broker();
    let c = broker.client("bye", true);
    c.disconnect(); // waits for the close
}

#[test]
fn mqtt_3_1_0_1_first_packet_other_than_connect_closes_the_connection() {
    let broker = TestBroker::default_broker();
    let mut c = broker.raw();
    c.send(&Packet::PingReq);
    c.expect_closed_silently();
}

#[test]
fn mqtt_3_1_0_2_second_connect_closes_the_connection() {
    let broker = TestBroker::default_broker();
    let mut c = broker.client("twice", true);
    c.send(&Packet::Connect(Box::new(connect_packet(
        "twice",
        true,
        0,
        None,
        ProtocolVersion::V311,
    ))));
    c.expect_closed_silently();
}

#[test]
fn rumqttc_connects_with_clean_and_persistent_sessions() {
    let broker = TestBroker::default_broker();
    block_on(async {
        let (c, ack) = Rumq::connect(broker.addr, "rq-persist", false).await;
        assert_eq!(ack.code, rumqttc::ConnectReturnCode::Success);
        assert!(!ack.session_present);
        c.disconnect().await;
        let (c, ack) = Rumq::connect(broker.addr, "rq-persist", false).await;
        assert!(ack.session_present);
        c.disconnect().await;
    });
}

#[test]
fn assigned_client_id_is_accepted_with_the_smallest_max_clientid_len() {
    // 23 is the smallest allowed limit (the MQTT 3.1 maximum): a broker-assigned id must
    // not be refused by the limit that only applies to ids the client chose.
    let broker = TestBroker::start(&["mqtt.max_clientid_len=23"]);
    let (mut c, ack) = Raw::connect(broker.addr, "", true, 0, None);
    assert_eq!(
        ack.code, 0,
        "empty id with clean session gets an assigned id"
    );
    c.ping();
}

#[test]
fn packets_sent_right_behind_connect_survive_the_hand_over_to_the_home_shard() {
    let broker = TestBroker::default_broker();
    for round in 0..6 {
        for shard in 0..SHARDS {
            let id = id_on_shard(&format!("pipelined{round}"), shard);
            let topic = format!("pipe/{round}/{shard}");
            let mut c = broker.raw();
            // CONNECT, SUBSCRIBE and a PUBLISH to itself in a single write.
            let mut bytes = bytes::BytesMut::new();
            for p in [
                Packet::Connect(Box::new(connect_packet(
                    &id,
                    true,
                    0,
                    None,
                    ProtocolVersion::V311,
                ))),
                Packet::Subscribe(shardmq::codec::Subscribe {
                    packet_id: 1,
                    filters: vec![(Str::from(topic.as_str()), Default::default())],
                    properties: Default::default(),
                }),
                Packet::PingReq,
            ] {
                shardmq::codec::encode(&p, ProtocolVersion::V311, &mut bytes).unwrap();
            }
            c.send_bytes(&bytes);
            assert!(matches!(c.recv(), Packet::ConnAck(a) if a.code == 0));
            // PINGRESP may overtake SUBACK (SUBACK waits for the other shard's route ack).
            let mut got = [c.recv(), c.recv()];
            got.sort_by_key(|p| matches!(p, Packet::PingResp));
            assert!(
                matches!(&got[0], Packet::SubAck(a) if a.codes == vec![0]),
                "{got:?}"
            );
            assert!(matches!(got[1], Packet::PingResp));
            c.publish0(&topic, b"self");
            assert_eq!(&c.recv_publish().payload[..], b"self");
        }
    }
}
