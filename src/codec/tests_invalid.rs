//! Rejection tests: each receiver-side rule of the specs, one malformed packet each.
//!
//! Owns: the mapping "bad bytes -> which DecodeError". Must never: depend on the
//! encoder.

use bytes::BytesMut;

use super::*;

const V31: ProtocolVersion = ProtocolVersion::V31;
const V311: ProtocolVersion = ProtocolVersion::V311;
const V5: ProtocolVersion = ProtocolVersion::V5;

fn err(bytes: &[u8], v: ProtocolVersion) -> DecodeError {
    let mut buf = BytesMut::from(bytes);
    match decode(&mut buf, v, usize::MAX) {
        Err(e) => e,
        other => panic!("{bytes:02x?} under {v:?} gave {other:?}"),
    }
}

fn connect(level_and_rest: &[u8]) -> Vec<u8> {
    let mut body = vec![0x00, 0x04, b'M', b'Q', b'T', b'T'];
    body.extend_from_slice(level_and_rest);
    let mut out = vec![0x10, body.len() as u8];
    out.extend(body);
    out
}

#[test]
fn fixed_header() {
    use DecodeError::*;
    assert_eq!(err(&[0x00, 0x00], V311), ReservedPacketType);
    assert_eq!(err(&[0xf0, 0x00], V311), ReservedPacketType);
    assert_eq!(err(&[0xc1, 0x00], V311), InvalidHeaderFlags);
    assert_eq!(err(&[0x60, 0x02, 0x00, 0x01], V311), InvalidHeaderFlags);
    assert_eq!(
        err(&[0x80], V5),
        InvalidHeaderFlags,
        "flags checked before the body"
    );
    assert_eq!(err(&[0xa0], V5), InvalidHeaderFlags);
    assert_eq!(err(&[0x36], V311), InvalidQoS);
    assert_eq!(err(&[0x38], V311), DupWithQoS0);
    assert_eq!(err(&[0x30, 0xff, 0xff, 0xff, 0xff], V311), MalformedVarInt);
    assert_eq!(err(&[0xc0, 0x01, 0x00], V311), TrailingBytes);
    assert_eq!(err(&[0xe0, 0x01, 0x00], V311), TrailingBytes);
}

/// MQTT 3.1 sends PUBREL, SUBSCRIBE and UNSUBSCRIBE at QoS 1 and sets DUP when it resends
/// them; 3.1.1 and 5.0 fix their flags at 0010 [MQTT-3.6.1-1, 3.8.1-1, 3.10.1-1].
#[test]
fn a_resent_pubrel_subscribe_or_unsubscribe_may_carry_dup_in_3_1_only() {
    use DecodeError::*;
    let pubrel = [0x6a, 0x02, 0x00, 0x01];
    let subscribe = [0x8a, 0x06, 0x00, 0x01, 0x00, 0x01, b't', 0x00];
    let unsubscribe = [0xaa, 0x05, 0x00, 0x01, 0x00, 0x01, b't'];
    for packet in [&pubrel[..], &subscribe, &unsubscribe] {
        let mut buf = BytesMut::from(packet);
        assert!(
            matches!(decode(&mut buf, V31, usize::MAX), Ok(Some(_))),
            "{packet:02x?} under 3.1"
        );
        assert_eq!(err(packet, V311), InvalidHeaderFlags);
        assert_eq!(err(packet, V5), InvalidHeaderFlags);
    }
    // Only DUP: a 3.1 PUBREL without the QoS 1 bit, or with RETAIN, is still refused.
    assert_eq!(err(&[0x68, 0x02, 0x00, 0x01], V31), InvalidHeaderFlags);
    assert_eq!(err(&[0x63, 0x02, 0x00, 0x01], V31), InvalidHeaderFlags);
}

#[test]
fn too_large_is_detected_before_the_body() {
    // Remaining length 200 announced, only the header present.
    let mut buf = BytesMut::from(&[0x30, 0xc8, 0x01][..]);
    assert_eq!(
        decode(&mut buf, V311, 100),
        Err(DecodeError::PacketTooLarge)
    );
    assert_eq!(DecodeError::PacketTooLarge.reason_code(), 0x95);
    // Exactly at the limit is fine: 2 header bytes + 2 body bytes.
    let mut buf = BytesMut::from(&[0x40, 0x02, 0x00, 0x01][..]);
    assert!(decode(&mut buf, V311, 4).unwrap().is_some());
    let mut buf = BytesMut::from(&[0x40, 0x02, 0x00, 0x01][..]);
    assert_eq!(decode(&mut buf, V311, 3), Err(DecodeError::PacketTooLarge));
}

#[test]
fn connect_rules() {
    use DecodeError::*;
    assert_eq!(
        err(&connect(&[0x06, 0x02, 0x00, 0x00, 0x00, 0x00]), V311),
        UnsupportedProtocolVersion
    );
    assert_eq!(
        err(&connect(&[0x03, 0x02, 0x00, 0x00, 0x00, 0x00]), V311),
        UnsupportedProtocolVersion
    );
    assert_eq!(UnsupportedProtocolVersion.reason_code(), 0x84);
    assert_eq!(UnsupportedProtocolVersion.connack_return_code_v3(), Some(1));
    // Reserved flag.
    assert_eq!(
        err(&connect(&[0x04, 0x03, 0x00, 0x00, 0x00, 0x00]), V311),
        ConnectReservedFlag
    );
    // Will QoS / retain without will flag.
    assert_eq!(
        err(&connect(&[0x04, 0x08, 0x00, 0x00, 0x00, 0x00]), V311),
        WillFlagsWithoutWill
    );
    assert_eq!(
        err(&connect(&[0x04, 0x20, 0x00, 0x00, 0x00, 0x00]), V311),
        WillFlagsWithoutWill
    );
    // Will QoS 3.
    assert_eq!(
        err(&connect(&[0x04, 0x1c, 0x00, 0x00, 0x00, 0x00]), V311),
        InvalidWillQoS
    );
    // Password without user name in 3.1.1.
    assert_eq!(
        err(
            &connect(&[0x04, 0x40, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, b'p']),
            V311
        ),
        PasswordWithoutUsername
    );
    // Missing client id.
    assert_eq!(
        err(&connect(&[0x04, 0x02, 0x00, 0x00]), V311),
        UnexpectedEnd
    );
    // Trailing byte.
    assert_eq!(
        err(&connect(&[0x04, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00]), V311),
        TrailingBytes
    );
    // Invalid UTF-8 / NUL in client id.
    assert_eq!(
        err(&connect(&[0x04, 0x02, 0x00, 0x00, 0x00, 0x01, 0xff]), V311),
        InvalidUtf8
    );
    assert_eq!(
        err(&connect(&[0x04, 0x02, 0x00, 0x00, 0x00, 0x01, 0x00]), V311),
        NullCharacter
    );
    // Will topic with a wildcard.
    assert_eq!(
        err(
            &connect(&[0x04, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, b'#', 0x00, 0x00]),
            V311
        ),
        TopicNameWildcard
    );
    // Garbage that is not an MQTT CONNECT at all.
    assert_eq!(err(&[0x10, 0x03, 0x00, 0x09, b'x'], V311), UnexpectedEnd);
    // A 3.1 CONNECT claiming level 4.
    let bad31 = [
        0x10, 0x0e, 0x00, 0x06, b'M', b'Q', b'I', b's', b'd', b'p', 0x04, 0x02, 0x00, 0x00, 0x00,
        0x00,
    ];
    assert_eq!(err(&bad31, V31), UnsupportedProtocolVersion);
}

#[test]
fn connect_v5_properties() {
    use DecodeError::*;
    // Property not allowed in CONNECT (topic alias).
    assert_eq!(
        err(
            &connect(&[0x05, 0x02, 0x00, 0x00, 0x03, 0x23, 0x00, 0x01, 0x00, 0x00]),
            V5
        ),
        PropertyNotAllowed
    );
    // Duplicate session expiry.
    assert_eq!(
        err(
            &connect(&[
                0x05, 0x02, 0x00, 0x00, 0x0a, 0x11, 0, 0, 0, 1, 0x11, 0, 0, 0, 2, 0x00, 0x00
            ]),
            V5
        ),
        DuplicateProperty
    );
    // Unknown property id 0x7f.
    assert_eq!(
        err(
            &connect(&[0x05, 0x02, 0x00, 0x00, 0x01, 0x7f, 0x00, 0x00]),
            V5
        ),
        UnknownProperty
    );
    // Receive maximum 0.
    assert_eq!(
        err(
            &connect(&[0x05, 0x02, 0x00, 0x00, 0x03, 0x21, 0x00, 0x00, 0x00, 0x00]),
            V5
        ),
        InvalidPropertyValue
    );
    // Request problem information 2.
    assert_eq!(
        err(
            &connect(&[0x05, 0x02, 0x00, 0x00, 0x02, 0x17, 0x02, 0x00, 0x00]),
            V5
        ),
        InvalidPropertyValue
    );
    // Authentication data without method.
    assert_eq!(
        err(
            &connect(&[0x05, 0x02, 0x00, 0x00, 0x03, 0x16, 0x00, 0x00, 0x00, 0x00]),
            V5
        ),
        AuthDataWithoutMethod
    );
    // Property length running past the packet.
    assert_eq!(
        err(&connect(&[0x05, 0x02, 0x00, 0x00, 0x09, 0x11, 0x00]), V5),
        UnexpectedEnd
    );
    // A property running past its property length.
    assert_eq!(
        err(
            &connect(&[0x05, 0x02, 0x00, 0x00, 0x02, 0x11, 0x00, 0x00, 0x00, 0x00, 0x00]),
            V5
        ),
        UnexpectedEnd
    );
    assert_eq!(PropertyNotAllowed.reason_code(), 0x82);
    assert_eq!(UnknownProperty.reason_code(), 0x81);
}

#[test]
fn publish_rules() {
    use DecodeError::*;
    assert_eq!(
        err(&[0x32, 0x05, 0x00, 0x01, b't', 0x00, 0x00], V311),
        ZeroPacketId
    );
    assert_eq!(
        err(&[0x30, 0x03, 0x00, 0x01, b'+'], V311),
        TopicNameWildcard
    );
    assert_eq!(TopicNameWildcard.reason_code(), 0x90);
    assert_eq!(err(&[0x30, 0x02, 0x00, 0x00], V311), EmptyTopicName);
    assert_eq!(err(&[0x30, 0x03, 0x00, 0x00, 0x00], V5), EmptyTopicName);
    // Subscription identifier 0.
    assert_eq!(
        err(&[0x30, 0x06, 0x00, 0x01, b't', 0x02, 0x0b, 0x00], V5),
        InvalidPropertyValue
    );
    // Topic alias 0 is well-formed (the session answers it with 0x94 Topic Alias invalid).
    let mut alias0 = BytesMut::from(&[0x30, 0x07, 0x00, 0x01, b't', 0x03, 0x23, 0x00, 0x00][..]);
    match decode(&mut alias0, V5, usize::MAX) {
        Ok(Some(Packet::Publish(p))) => assert_eq!(p.properties.topic_alias, Some(0)),
        other => panic!("{other:?}"),
    }
    // Session expiry is not a PUBLISH property.
    assert_eq!(
        err(&[0x30, 0x09, 0x00, 0x01, b't', 0x05, 0x11, 0, 0, 0, 1], V5),
        PropertyNotAllowed
    );
    // Property varint longer than 4 bytes.
    assert_eq!(
        err(
            &[0x30, 0x08, 0x00, 0x01, b't', 0x80, 0x80, 0x80, 0x80, 0x01],
            V5
        ),
        MalformedVarInt
    );
}

#[test]
fn ack_rules() {
    use DecodeError::*;
    assert_eq!(err(&[0x40, 0x02, 0x00, 0x00], V311), ZeroPacketId);
    assert_eq!(err(&[0x40, 0x01, 0x00], V311), UnexpectedEnd);
    assert_eq!(err(&[0x40, 0x03, 0x00, 0x01, 0x00], V311), TrailingBytes);
    assert_eq!(err(&[0x40, 0x03, 0x00, 0x01, 0x92], V5), InvalidReasonCode);
    assert_eq!(err(&[0x62, 0x03, 0x00, 0x01, 0x10], V5), InvalidReasonCode);
    assert_eq!(err(&[0x20, 0x02, 0x02, 0x00], V311), ConnAckReservedFlags);
    assert_eq!(err(&[0x20, 0x02, 0x00, 0x06], V311), InvalidReasonCode);
    assert_eq!(err(&[0x20, 0x03, 0x00, 0x01, 0x00], V5), InvalidReasonCode);
    assert_eq!(
        err(&[0x90, 0x03, 0x00, 0x01, 0x03], V311),
        InvalidReasonCode
    );
    assert_eq!(err(&[0xb0, 0x03, 0x00, 0x01, 0x00], V311), TrailingBytes);
    assert_eq!(err(&[0xe0, 0x01, 0x05], V5), InvalidReasonCode);
    assert_eq!(err(&[0xf0, 0x01, 0x04], V5), InvalidReasonCode);
    // Reason string in DISCONNECT is fine, topic alias is not.
    assert_eq!(
        err(&[0xe0, 0x05, 0x00, 0x03, 0x23, 0x00, 0x01], V5),
        PropertyNotAllowed
    );
}

#[test]
fn subscribe_rules() {
    use DecodeError::*;
    assert_eq!(err(&[0x82, 0x02, 0x00, 0x01], V311), NoSubscribeFilters);
    assert_eq!(err(&[0x82, 0x03, 0x00, 0x01, 0x00], V5), NoSubscribeFilters);
    assert_eq!(err(&[0xa2, 0x02, 0x00, 0x01], V311), NoUnsubscribeFilters);
    assert_eq!(
        NoSubscribeFilters.to_string(),
        "[MQTT-3.8.3-3] SUBSCRIBE with no topic filter"
    );
    let sub = |v5: bool, opts: u8| {
        let mut b = vec![0x82, if v5 { 0x07 } else { 0x06 }, 0x00, 0x01];
        if v5 {
            b.push(0x00);
        }
        b.extend_from_slice(&[0x00, 0x01, b'a', opts]);
        b
    };
    assert_eq!(err(&sub(false, 0x03), V311), InvalidSubscriptionOptions);
    assert_eq!(err(&sub(false, 0x04), V311), InvalidSubscriptionOptions);
    assert_eq!(err(&sub(true, 0x40), V5), InvalidSubscriptionOptions);
    assert_eq!(err(&sub(true, 0x30), V5), InvalidRetainHandling);
    // Packet id 0.
    assert_eq!(
        err(&[0x82, 0x06, 0x00, 0x00, 0x00, 0x01, b'a', 0x00], V311),
        ZeroPacketId
    );
    // No Local on a shared subscription.
    let shared = [
        0x82, 0x0d, 0x00, 0x01, 0x00, 0x00, 0x07, b'$', b's', b'h', b'a', b'r', b'e', b'/', 0x04,
    ];
    assert_eq!(err(&shared[..], V5), NoLocalOnSharedSubscription);
    // Two subscription identifiers in SUBSCRIBE.
    assert_eq!(
        err(
            &[0x82, 0x0b, 0x00, 0x01, 0x04, 0x0b, 0x01, 0x0b, 0x02, 0x00, 0x01, b'a', 0x00][..],
            V5
        ),
        DuplicateProperty
    );
}

#[test]
fn errors_are_displayed_and_coded() {
    let e: Box<dyn std::error::Error> = Box::new(DecodeError::TrailingBytes);
    assert!(e.to_string().contains("MQTT-"));
    assert_eq!(DecodeError::TrailingBytes.reason_code(), 0x81);
    assert_eq!(DecodeError::ZeroPacketId.reason_code(), 0x82);
}

#[test]
fn encode_errors() {
    let mut out = BytesMut::new();
    let long = Str::from("x".repeat(65_536));
    let p = Packet::Publish(Publish {
        topic: long,
        ..Default::default()
    });
    assert_eq!(encode(&p, V311, &mut out), Err(EncodeError::FieldTooLong));
    let p = Packet::Publish(Publish {
        qos: QoS::AtLeastOnce,
        topic: "t".into(),
        ..Default::default()
    });
    assert_eq!(
        encode(&p, V311, &mut out),
        Err(EncodeError::MissingPacketId)
    );
    let p = Packet::Publish(Publish {
        topic: "t".into(),
        payload: bytes::Bytes::from(vec![0u8; 268_435_455]),
        ..Default::default()
    });
    assert_eq!(encode(&p, V311, &mut out), Err(EncodeError::PacketTooLarge));
    assert_eq!(
        encode(&Packet::Auth(Auth::default()), V311, &mut out),
        Err(EncodeError::NotInVersion)
    );
    assert_eq!(
        encode(&Packet::PubAck(PubResp::new(0)), V311, &mut out),
        Err(EncodeError::ZeroPacketId)
    );
    let props = Properties {
        topic_alias: Some(1),
        ..Default::default()
    };
    let p = Packet::Disconnect(Disconnect {
        reason: 0,
        properties: props.into(),
    });
    assert_eq!(
        encode(&p, V5, &mut out),
        Err(EncodeError::PropertyNotAllowed)
    );
    assert!(out.is_empty(), "nothing appended on error");
}

#[test]
fn the_protocol_of_a_connect_is_read_from_its_first_bytes_whatever_follows() {
    // A 5.0 CONNECT whose flags are invalid: the version is still known.
    let bad = connect(&[5, 0x01, 0, 0]);
    assert_eq!(connect_version(&bad), Some(V5));
    assert_eq!(err(&bad, V5), DecodeError::ConnectReservedFlag);
    assert_eq!(connect_version(&connect(&[4, 0x02])), Some(V311));
    let mut v31 = vec![0x10, 9, 0, 6];
    v31.extend_from_slice(b"MQIsdp");
    v31.push(3);
    assert_eq!(connect_version(&v31), Some(V31));
    // Too few bytes yet, another packet, another protocol: unknown.
    assert_eq!(connect_version(&bad[..7]), None);
    assert_eq!(connect_version(&[0x30, 2, 0, 0]), None);
    assert_eq!(connect_version(&connect(&[6, 0x02])), None);
    assert_eq!(connect_version(&[]), None);
}
