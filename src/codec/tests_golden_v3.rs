//! Golden byte vectors for MQTT 3.1 and 3.1.1 (spec examples and hand-assembled
//! packets), decoded and encoded both ways.
//!
//! Owns: the shared `golden` check used by the 5.0 vectors too.
//! Must never: build expected bytes with the encoder under test.

use bytes::{Bytes, BytesMut};

use super::*;

/// `bytes` decodes to exactly `packet` (consuming everything), every strict prefix is
/// `Ok(None)`, and `packet` encodes back to `bytes`.
pub(super) fn golden(bytes: &[u8], version: ProtocolVersion, packet: Packet) {
    let mut buf = BytesMut::from(bytes);
    let got = decode(&mut buf, version, usize::MAX).expect("decodes");
    assert_eq!(got, Some(packet.clone()), "decode {bytes:02x?}");
    assert!(buf.is_empty(), "consumed everything");
    for cut in 0..bytes.len() {
        let mut prefix = BytesMut::from(&bytes[..cut]);
        assert_eq!(
            decode(&mut prefix, version, usize::MAX),
            Ok(None),
            "prefix {cut}"
        );
        assert_eq!(prefix.len(), cut, "prefix not consumed");
    }
    let mut out = BytesMut::new();
    encode(&packet, version, &mut out).expect("encodes");
    assert_eq!(&out[..], bytes, "encode {packet:?}");
    assert_eq!(encoded_len(&packet, version), Ok(bytes.len()));
}

/// `bytes` decodes to `packet` (but `packet` encodes differently, e.g. shorter).
pub(super) fn decodes_to(bytes: &[u8], version: ProtocolVersion, packet: Packet) {
    let mut buf = BytesMut::from(bytes);
    assert_eq!(decode(&mut buf, version, usize::MAX), Ok(Some(packet)));
    assert!(buf.is_empty());
}

const V3: [ProtocolVersion; 2] = [ProtocolVersion::V31, ProtocolVersion::V311];

fn s(v: &'static str) -> Str {
    Str::from_static(v)
}

#[test]
fn connect_mqtt31_mqisdp() {
    let bytes = [
        0x10, 0x12, 0x00, 0x06, b'M', b'Q', b'I', b's', b'd', b'p', 0x03, 0x02, 0x00, 0x3c, 0x00,
        0x04, b't', b'e', b's', b't',
    ];
    let c = Connect {
        protocol: ProtocolVersion::V31,
        clean_start: true,
        keep_alive: 60,
        client_id: s("test"),
        ..Default::default()
    };
    // CONNECT describes itself: the version argument does not matter.
    for v in [
        ProtocolVersion::V31,
        ProtocolVersion::V311,
        ProtocolVersion::V5,
    ] {
        decodes_to(&bytes, v, Packet::Connect(Box::new(c.clone())));
    }
    golden(&bytes, ProtocolVersion::V31, Packet::Connect(Box::new(c)));
}

#[test]
fn connect_mqtt311_will_user_password() {
    // Spec 3.1.2.10 example variable header: 00 04 MQTT 04 CE 00 0A.
    let bytes = [
        0x10, 0x1e, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x04, 0xce, 0x00, 0x0a, // header
        0x00, 0x02, b'c', b'1', // client id
        0x00, 0x03, b'w', b'/', b't', // will topic
        0x00, 0x03, b'b', b'y', b'e', // will payload
        0x00, 0x01, b'u', // user name
        0x00, 0x01, b'p', // password
    ];
    let c = Connect {
        protocol: ProtocolVersion::V311,
        clean_start: true,
        keep_alive: 10,
        client_id: s("c1"),
        will: Some(LastWill {
            topic: s("w/t"),
            payload: Bytes::from_static(b"bye"),
            qos: QoS::AtLeastOnce,
            retain: false,
            properties: Props::default(),
        }),
        username: Some(s("u")),
        password: Some(Bytes::from_static(b"p")),
        properties: Props::default(),
    };
    golden(&bytes, ProtocolVersion::V311, Packet::Connect(Box::new(c)));
}

#[test]
fn connect_mqtt311_minimal_empty_client_id() {
    let bytes = [
        0x10, 0x0c, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x04, 0x02, 0x00, 0x00, 0x00, 0x00,
    ];
    let c = Connect {
        clean_start: true,
        ..Default::default()
    };
    golden(&bytes, ProtocolVersion::V311, Packet::Connect(Box::new(c)));
}

#[test]
fn connack() {
    let ok = |sp, code| {
        Packet::ConnAck(ConnAck {
            session_present: sp,
            code,
            ..Default::default()
        })
    };
    golden(
        &[0x20, 0x02, 0x01, 0x00],
        ProtocolVersion::V311,
        ok(true, 0),
    );
    golden(
        &[0x20, 0x02, 0x00, 0x05],
        ProtocolVersion::V311,
        ok(false, 5),
    );
    golden(
        &[0x20, 0x02, 0x00, 0x01],
        ProtocolVersion::V31,
        ok(false, 1),
    );
}

#[test]
fn publish_qos0_1_2() {
    let p = |qos, dup, retain, packet_id, payload: &'static [u8]| {
        Packet::Publish(Publish {
            dup,
            qos,
            retain,
            topic: s("a/b"),
            packet_id,
            payload: Bytes::from_static(payload),
            properties: Props::default(),
        })
    };
    for v in V3 {
        golden(
            &[
                0x30, 0x0a, 0x00, 0x03, b'a', b'/', b'b', b'h', b'e', b'l', b'l', b'o',
            ],
            v,
            p(QoS::AtMostOnce, false, false, None, b"hello"),
        );
        golden(
            &[
                0x33, 0x09, 0x00, 0x03, b'a', b'/', b'b', 0x00, 0x0a, b'h', b'i',
            ],
            v,
            p(QoS::AtLeastOnce, false, true, Some(10), b"hi"),
        );
        golden(
            &[0x3c, 0x07, 0x00, 0x03, b'a', b'/', b'b', 0x12, 0x34],
            v,
            p(QoS::ExactlyOnce, true, false, Some(0x1234), b""),
        );
    }
}

#[test]
fn publish_payload_is_a_zero_copy_slice() {
    let mut buf = BytesMut::from(&[0x30, 0x06, 0x00, 0x01, b't', b'x', b'y', b'z'][..]);
    let start = buf.as_ptr() as usize;
    let Ok(Some(Packet::Publish(p))) = decode(&mut buf, ProtocolVersion::V311, 1024) else {
        panic!("not a publish");
    };
    assert_eq!(p.payload.as_ptr() as usize, start + 5);
    assert_eq!(p.topic.as_bytes().as_ptr() as usize, start + 4);
}

#[test]
fn pub_acks() {
    for v in V3 {
        golden(
            &[0x40, 0x02, 0x00, 0x0a],
            v,
            Packet::PubAck(PubResp::new(10)),
        );
        golden(
            &[0x50, 0x02, 0x00, 0x0a],
            v,
            Packet::PubRec(PubResp::new(10)),
        );
        golden(
            &[0x62, 0x02, 0x00, 0x0a],
            v,
            Packet::PubRel(PubResp::new(10)),
        );
        golden(
            &[0x70, 0x02, 0x00, 0x0a],
            v,
            Packet::PubComp(PubResp::new(10)),
        );
    }
}

#[test]
fn subscribe_suback() {
    let opts = |qos| SubOptions {
        qos,
        ..Default::default()
    };
    for v in V3 {
        golden(
            &[
                0x82, 0x0e, 0x00, 0x01, 0x00, 0x03, b'a', b'/', b'b', 0x01, 0x00, 0x03, b'c', b'/',
                b'#', 0x02,
            ],
            v,
            Packet::Subscribe(Subscribe {
                packet_id: 1,
                filters: vec![
                    (s("a/b"), opts(QoS::AtLeastOnce)),
                    (s("c/#"), opts(QoS::ExactlyOnce)),
                ],
                properties: Props::default(),
            }),
        );
        golden(
            &[0x90, 0x05, 0x00, 0x01, 0x00, 0x01, 0x80],
            v,
            Packet::SubAck(SubAck {
                packet_id: 1,
                codes: vec![0, 1, 0x80],
                ..Default::default()
            }),
        );
    }
}

#[test]
fn unsubscribe_unsuback() {
    for v in V3 {
        golden(
            &[0xa2, 0x07, 0x00, 0x02, 0x00, 0x03, b'a', b'/', b'b'],
            v,
            Packet::Unsubscribe(Unsubscribe {
                packet_id: 2,
                filters: vec![s("a/b")],
                ..Default::default()
            }),
        );
        golden(
            &[0xb0, 0x02, 0x00, 0x02],
            v,
            Packet::UnsubAck(UnsubAck {
                packet_id: 2,
                ..Default::default()
            }),
        );
    }
}

#[test]
fn ping_and_disconnect() {
    for v in V3 {
        golden(&[0xc0, 0x00], v, Packet::PingReq);
        golden(&[0xd0, 0x00], v, Packet::PingResp);
        golden(&[0xe0, 0x00], v, Packet::Disconnect(Disconnect::default()));
    }
}

#[test]
fn encoder_drops_v5_fields_for_v3() {
    let props = Properties {
        reason_string: Some(s("why")),
        ..Default::default()
    };
    let ack = Packet::PubAck(PubResp {
        packet_id: 3,
        reason: 0x10,
        properties: props.clone().into(),
    });
    let mut out = BytesMut::new();
    encode(&ack, ProtocolVersion::V311, &mut out).unwrap();
    assert_eq!(&out[..], &[0x40, 0x02, 0x00, 0x03]);
    out.clear();
    let unsuback = Packet::UnsubAck(UnsubAck {
        packet_id: 3,
        codes: vec![0x11],
        properties: props.into(),
    });
    encode(&unsuback, ProtocolVersion::V31, &mut out).unwrap();
    assert_eq!(&out[..], &[0xb0, 0x02, 0x00, 0x03]);
    out.clear();
    let disc = Packet::Disconnect(Disconnect {
        reason: 0x04,
        ..Default::default()
    });
    encode(&disc, ProtocolVersion::V311, &mut out).unwrap();
    assert_eq!(&out[..], &[0xe0, 0x00]);
}

#[test]
fn two_packets_back_to_back_and_partial_third() {
    let mut buf = BytesMut::from(&[0xc0, 0x00, 0x40, 0x02, 0x00, 0x07, 0x30][..]);
    let v = ProtocolVersion::V311;
    assert_eq!(decode(&mut buf, v, 100), Ok(Some(Packet::PingReq)));
    assert_eq!(
        decode(&mut buf, v, 100),
        Ok(Some(Packet::PubAck(PubResp::new(7))))
    );
    assert_eq!(decode(&mut buf, v, 100), Ok(None));
    assert_eq!(&buf[..], &[0x30]);
}
