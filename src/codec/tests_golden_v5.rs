//! Golden byte vectors for MQTT 5.0: properties, reason codes and short forms.
//!
//! Owns: 5.0 byte-exact expectations. Must never: build expected bytes with the
//! encoder under test.

use bytes::Bytes;

use super::tests_golden_v3::{decodes_to, golden};
use super::*;

const V5: ProtocolVersion = ProtocolVersion::V5;

fn s(v: &'static str) -> Str {
    Str::from_static(v)
}

#[test]
fn connect_with_properties() {
    // Spec 3.1.2.12 example: 00 04 MQTT 05 C2 00 0A, properties 05 11 00 00 00 0A.
    let bytes = [
        0x10, 0x19, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x05, 0xc2, 0x00, 0x0a, // header
        0x05, 0x11, 0x00, 0x00, 0x00, 0x0a, // session expiry interval 10
        0x00, 0x01, b'c', // client id
        0x00, 0x01, b'u', // user name
        0x00, 0x01, b'p', // password
    ];
    let c = Connect {
        protocol: V5,
        clean_start: true,
        keep_alive: 10,
        client_id: s("c"),
        username: Some(s("u")),
        password: Some(Bytes::from_static(b"p")),
        properties: Properties {
            session_expiry_interval: Some(10),
            ..Default::default()
        }
        .into(),
        will: None,
    };
    golden(&bytes, V5, Packet::Connect(Box::new(c.clone())));
    // CONNECT carries its own version: decoding under 3.1.1 rules gives the same.
    decodes_to(&bytes, ProtocolVersion::V311, Packet::Connect(Box::new(c)));
}

#[test]
fn connect_with_will_properties() {
    let bytes = [
        0x10, 0x19, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x05, 0x2e, 0x00, 0x0a, // header
        0x00, // no properties
        0x00, 0x01, b'c', // client id
        0x05, 0x18, 0x00, 0x00, 0x00, 0x05, // will delay interval 5
        0x00, 0x01, b't', // will topic
        0x00, 0x00, // empty will payload
    ];
    let c = Connect {
        protocol: V5,
        clean_start: true,
        keep_alive: 10,
        client_id: s("c"),
        will: Some(LastWill {
            topic: s("t"),
            payload: Bytes::new(),
            qos: QoS::AtLeastOnce,
            retain: true,
            properties: Properties {
                will_delay_interval: Some(5),
                ..Default::default()
            }
            .into(),
        }),
        ..Default::default()
    };
    golden(&bytes, V5, Packet::Connect(Box::new(c)));
}

#[test]
fn connect_password_without_username_is_allowed_in_v5() {
    let bytes = [
        0x10, 0x10, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x05, 0x40, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x01, b'p',
    ];
    let c = Connect {
        protocol: V5,
        password: Some(Bytes::from_static(b"p")),
        ..Default::default()
    };
    golden(&bytes, V5, Packet::Connect(Box::new(c)));
}

#[test]
fn connack() {
    golden(
        &[0x20, 0x03, 0x00, 0x00, 0x00],
        V5,
        Packet::ConnAck(ConnAck::default()),
    );
    golden(
        &[
            0x20, 0x0b, 0x01, 0x00, 0x08, 0x12, 0x00, 0x02, b'i', b'd', 0x21, 0x00, 0x0a,
        ],
        V5,
        Packet::ConnAck(ConnAck {
            session_present: true,
            code: 0,
            properties: Properties {
                assigned_client_identifier: Some(s("id")),
                receive_maximum: Some(10),
                ..Default::default()
            }
            .into(),
        }),
    );
    golden(
        &[0x20, 0x03, 0x00, 0x84, 0x00],
        V5,
        Packet::ConnAck(ConnAck {
            code: 0x84,
            ..Default::default()
        }),
    );
}

#[test]
fn publish_with_properties() {
    let bytes = [
        0x32, 0x16, 0x00, 0x03, b'a', b'/', b'b', 0x00, 0x01, // topic, packet id
        0x0c, 0x01, 0x01, 0x23, 0x00, 0x05, 0x26, 0x00, 0x01, b'k', 0x00, 0x01, b'v', // props
        b'h', b'i',
    ];
    let p = Publish {
        dup: false,
        qos: QoS::AtLeastOnce,
        retain: false,
        topic: s("a/b"),
        packet_id: Some(1),
        payload: Bytes::from_static(b"hi"),
        properties: Properties {
            payload_format_indicator: Some(1),
            topic_alias: Some(5),
            user_properties: vec![(s("k"), s("v"))],
            ..Default::default()
        }
        .into(),
    };
    golden(&bytes, V5, Packet::Publish(p));
}

#[test]
fn publish_empty_topic_with_alias_and_qos2_subscription_ids() {
    golden(
        &[0x30, 0x07, 0x00, 0x00, 0x03, 0x23, 0x00, 0x05, b'x'],
        V5,
        Packet::Publish(Publish {
            payload: Bytes::from_static(b"x"),
            properties: Properties {
                topic_alias: Some(5),
                ..Default::default()
            }
            .into(),
            ..Default::default()
        }),
    );
    // A PUBLISH to a client may carry several subscription identifiers.
    golden(
        &[
            0x34, 0x0b, 0x00, 0x01, b't', 0x00, 0x09, 0x05, 0x0b, 0x01, 0x0b, 0x80, 0x01,
        ],
        V5,
        Packet::Publish(Publish {
            qos: QoS::ExactlyOnce,
            topic: s("t"),
            packet_id: Some(9),
            properties: Properties {
                subscription_identifiers: vec![1, 128],
                ..Default::default()
            }
            .into(),
            ..Default::default()
        }),
    );
}

#[test]
fn pub_acks_short_and_long_forms() {
    golden(
        &[0x40, 0x02, 0x00, 0x01],
        V5,
        Packet::PubAck(PubResp::new(1)),
    );
    golden(
        &[0x40, 0x03, 0x00, 0x01, 0x10],
        V5,
        Packet::PubAck(PubResp {
            packet_id: 1,
            reason: 0x10,
            ..Default::default()
        }),
    );
    golden(
        &[0x50, 0x08, 0x00, 0x01, 0x80, 0x04, 0x1f, 0x00, 0x01, b'e'],
        V5,
        Packet::PubRec(PubResp {
            packet_id: 1,
            reason: 0x80,
            properties: Properties {
                reason_string: Some(s("e")),
                ..Default::default()
            }
            .into(),
        }),
    );
    golden(
        &[0x62, 0x03, 0x00, 0x01, 0x92],
        V5,
        Packet::PubRel(PubResp {
            packet_id: 1,
            reason: 0x92,
            ..Default::default()
        }),
    );
    golden(
        &[0x70, 0x02, 0x00, 0x01],
        V5,
        Packet::PubComp(PubResp::new(1)),
    );
    // Long forms of a plain success decode too.
    decodes_to(
        &[0x40, 0x03, 0x00, 0x01, 0x00],
        V5,
        Packet::PubAck(PubResp::new(1)),
    );
    decodes_to(
        &[0x40, 0x04, 0x00, 0x01, 0x00, 0x00],
        V5,
        Packet::PubAck(PubResp::new(1)),
    );
}

#[test]
fn subscribe_suback() {
    golden(
        &[
            0x82, 0x0b, 0x00, 0x01, 0x02, 0x0b, 0x07, 0x00, 0x03, b'a', b'/', b'b', 0x2d,
        ],
        V5,
        Packet::Subscribe(Subscribe {
            packet_id: 1,
            filters: vec![(
                s("a/b"),
                SubOptions {
                    qos: QoS::AtLeastOnce,
                    no_local: true,
                    retain_as_published: true,
                    retain_handling: 2,
                },
            )],
            properties: Properties {
                subscription_identifiers: vec![7],
                ..Default::default()
            }
            .into(),
        }),
    );
    golden(
        &[0x90, 0x06, 0x00, 0x01, 0x00, 0x00, 0x01, 0x87],
        V5,
        Packet::SubAck(SubAck {
            packet_id: 1,
            codes: vec![0, 1, 0x87],
            ..Default::default()
        }),
    );
}

#[test]
fn unsubscribe_unsuback() {
    golden(
        &[0xa2, 0x08, 0x00, 0x02, 0x00, 0x00, 0x03, b'a', b'/', b'b'],
        V5,
        Packet::Unsubscribe(Unsubscribe {
            packet_id: 2,
            filters: vec![s("a/b")],
            ..Default::default()
        }),
    );
    golden(
        &[0xb0, 0x05, 0x00, 0x02, 0x00, 0x00, 0x11],
        V5,
        Packet::UnsubAck(UnsubAck {
            packet_id: 2,
            codes: vec![0, 0x11],
            ..Default::default()
        }),
    );
}

#[test]
fn disconnect_forms() {
    golden(&[0xe0, 0x00], V5, Packet::Disconnect(Disconnect::default()));
    golden(
        &[0xe0, 0x01, 0x04],
        V5,
        Packet::Disconnect(Disconnect {
            reason: 0x04,
            ..Default::default()
        }),
    );
    golden(
        &[0xe0, 0x07, 0x00, 0x05, 0x11, 0x00, 0x00, 0x00, 0x3c],
        V5,
        Packet::Disconnect(Disconnect {
            reason: 0,
            properties: Properties {
                session_expiry_interval: Some(60),
                ..Default::default()
            }
            .into(),
        }),
    );
}

#[test]
fn auth() {
    golden(&[0xf0, 0x00], V5, Packet::Auth(Auth::default()));
    golden(
        &[
            0xf0, 0x0d, 0x18, 0x0b, 0x15, 0x00, 0x03, b'S', b'C', b'R', 0x16, 0x00, 0x02, 0x01,
            0x02,
        ],
        V5,
        Packet::Auth(Auth {
            reason: 0x18,
            properties: Properties {
                authentication_method: Some(s("SCR")),
                authentication_data: Some(Bytes::from_static(&[1, 2])),
                ..Default::default()
            }
            .into(),
        }),
    );
}

#[test]
fn ping() {
    golden(&[0xc0, 0x00], V5, Packet::PingReq);
    golden(&[0xd0, 0x00], V5, Packet::PingResp);
}
