//! Property tests of the MQTT codec through its public API (`shardmq::codec`).
//!
//! Owns: generators of arbitrary *valid* packets for 3.1, 3.1.1 and 5.0, and the
//! codec laws: encode->decode round trip, every strict prefix is incomplete,
//! concatenated packets decode in order, and no input ever panics.
//! Must never: generate a packet the spec forbids (that is what the unit tests in
//! src/codec/tests_invalid.rs are for).

use bytes::{Bytes, BytesMut};
use proptest::collection::vec;
use proptest::option::of as opt;
use proptest::prelude::*;
use proptest::sample::select;
use shardmq::codec::reason::{is_valid, CodeOf};
use shardmq::codec::*;

const MAX_VARINT: u32 = 268_435_455;

fn version() -> impl Strategy<Value = ProtocolVersion> {
    select(vec![
        ProtocolVersion::V31,
        ProtocolVersion::V311,
        ProtocolVersion::V5,
    ])
}

/// Any valid MQTT string (no U+0000), including multi-byte characters.
fn text() -> impl Strategy<Value = Str> {
    "[a-zA-Z0-9/ _$é€😀+#]{0,8}".prop_map(Str::from)
}

/// A valid topic name: non-empty, no wildcards.
fn topic() -> impl Strategy<Value = Str> {
    "[a-zA-Z0-9/ _é€😀]{1,8}".prop_map(Str::from)
}

/// A topic filter (the codec does not check filter syntax; that is the topic module's).
fn filter() -> impl Strategy<Value = Str> {
    "[a-z0-9/+#]{0,8}".prop_map(Str::from)
}

fn bin() -> impl Strategy<Value = Bytes> {
    vec(any::<u8>(), 0..16).prop_map(Bytes::from)
}

fn qos() -> impl Strategy<Value = QoS> {
    select(vec![QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce])
}

fn code(of: CodeOf, v: ProtocolVersion) -> impl Strategy<Value = u8> {
    select(
        (0..=255u8)
            .filter(|c| is_valid(of, v, *c))
            .collect::<Vec<_>>(),
    )
}

fn pid() -> impl Strategy<Value = u16> {
    1..=u16::MAX
}

#[derive(Clone, Copy, PartialEq)]
enum Ctx {
    Connect,
    Will,
    ConnAck,
    Publish,
    PubResp,
    Subscribe,
    SubAck,
    Unsubscribe,
    UnsubAck,
    Disconnect,
    Auth,
}

/// The property table of MQTT 5.0 section 2.2.2.2, by field name.
fn allowed(ctx: Ctx) -> &'static [&'static str] {
    match ctx {
        Ctx::Connect => &[
            "session_expiry_interval",
            "authentication_method",
            "authentication_data",
            "request_problem_information",
            "request_response_information",
            "receive_maximum",
            "topic_alias_maximum",
            "user_properties",
            "maximum_packet_size",
        ],
        Ctx::Will => &[
            "payload_format_indicator",
            "message_expiry_interval",
            "content_type",
            "response_topic",
            "correlation_data",
            "will_delay_interval",
            "user_properties",
        ],
        Ctx::ConnAck => &[
            "session_expiry_interval",
            "assigned_client_identifier",
            "server_keep_alive",
            "authentication_method",
            "authentication_data",
            "response_information",
            "server_reference",
            "reason_string",
            "receive_maximum",
            "topic_alias_maximum",
            "maximum_qos",
            "retain_available",
            "user_properties",
            "maximum_packet_size",
            "wildcard_subscription_available",
            "subscription_identifier_available",
            "shared_subscription_available",
        ],
        Ctx::Publish => &[
            "payload_format_indicator",
            "message_expiry_interval",
            "content_type",
            "response_topic",
            "correlation_data",
            "subscription_identifiers",
            "topic_alias",
            "user_properties",
        ],
        Ctx::PubResp | Ctx::SubAck | Ctx::UnsubAck => &["reason_string", "user_properties"],
        Ctx::Subscribe => &["subscription_identifiers", "user_properties"],
        Ctx::Unsubscribe => &["user_properties"],
        Ctx::Disconnect => &[
            "session_expiry_interval",
            "server_reference",
            "reason_string",
            "user_properties",
        ],
        Ctx::Auth => &[
            "authentication_method",
            "authentication_data",
            "reason_string",
            "user_properties",
        ],
    }
}

macro_rules! keep_allowed {
    ($p:ident, $ctx:expr, $($field:ident),*) => {
        $(
            if !allowed($ctx).contains(&stringify!($field)) {
                $p.$field = Default::default();
            }
        )*
    };
}

/// Arbitrary valid properties for `ctx` (empty for 3.x).
fn props(ctx: Ctx, v: ProtocolVersion) -> BoxedStrategy<Properties> {
    if v != ProtocolVersion::V5 {
        return Just(Properties::default()).boxed();
    }
    let a = (
        opt(0..=1u8),
        opt(any::<u32>()),
        opt(text()),
        opt(topic()),
        opt(bin()),
        vec(1..=MAX_VARINT, 0..3),
        opt(any::<u32>()),
        opt(text()),
        opt(any::<u16>()),
        opt(text()),
        opt(bin()),
        opt(0..=1u8),
    );
    let b = (
        opt(any::<u32>()),
        opt(0..=1u8),
        opt(text()),
        opt(text()),
        opt(text()),
        opt(1..=u16::MAX),
        opt(any::<u16>()),
        opt(1..=u16::MAX),
        opt(0..=1u8),
        opt(0..=1u8),
        vec((text(), text()), 0..3),
        opt(1..=u32::MAX),
    );
    let c = (opt(0..=1u8), opt(0..=1u8), opt(0..=1u8));
    (a, b, c)
        .prop_map(move |(a, b, c)| {
            let mut p = Properties {
                payload_format_indicator: a.0,
                message_expiry_interval: a.1,
                content_type: a.2,
                response_topic: a.3,
                correlation_data: a.4,
                subscription_identifiers: a.5,
                session_expiry_interval: a.6,
                assigned_client_identifier: a.7,
                server_keep_alive: a.8,
                authentication_method: a.9,
                authentication_data: a.10,
                request_problem_information: a.11,
                will_delay_interval: b.0,
                request_response_information: b.1,
                response_information: b.2,
                server_reference: b.3,
                reason_string: b.4,
                receive_maximum: b.5,
                topic_alias_maximum: b.6,
                topic_alias: b.7,
                maximum_qos: b.8,
                retain_available: b.9,
                user_properties: b.10,
                maximum_packet_size: b.11,
                wildcard_subscription_available: c.0,
                subscription_identifier_available: c.1,
                shared_subscription_available: c.2,
            };
            keep_allowed!(
                p,
                ctx,
                payload_format_indicator,
                message_expiry_interval,
                content_type,
                response_topic,
                correlation_data,
                subscription_identifiers,
                session_expiry_interval,
                assigned_client_identifier,
                server_keep_alive,
                authentication_method,
                authentication_data,
                request_problem_information,
                will_delay_interval,
                request_response_information,
                response_information,
                server_reference,
                reason_string,
                receive_maximum,
                topic_alias_maximum,
                topic_alias,
                maximum_qos,
                retain_available,
                user_properties,
                maximum_packet_size,
                wildcard_subscription_available,
                subscription_identifier_available,
                shared_subscription_available
            );
            if ctx != Ctx::Publish {
                p.subscription_identifiers.truncate(1);
            }
            // Authentication Data needs an Authentication Method.
            if p.authentication_data.is_some() && p.authentication_method.is_none() {
                p.authentication_method = Some(Str::from("m"));
            }
            p
        })
        .boxed()
}

fn connect(v: ProtocolVersion) -> impl Strategy<Value = Packet> {
    let will = (topic(), bin(), qos(), any::<bool>(), props(Ctx::Will, v)).prop_map(
        |(topic, payload, qos, retain, properties)| LastWill {
            topic,
            payload,
            qos,
            retain,
            properties: properties.into(),
        },
    );
    (
        any::<bool>(),
        any::<u16>(),
        text(),
        opt(will),
        opt(text()),
        opt(bin()),
        props(Ctx::Connect, v),
    )
        .prop_map(
            move |(clean_start, keep_alive, client_id, will, username, password, properties)| {
                // Before 5.0 a password needs a user name.
                let password = if v == ProtocolVersion::V5 || username.is_some() {
                    password
                } else {
                    None
                };
                Packet::Connect(Box::new(Connect {
                    protocol: v,
                    clean_start,
                    keep_alive,
                    client_id,
                    will,
                    username,
                    password,
                    properties: properties.into(),
                }))
            },
        )
}

fn publish(v: ProtocolVersion) -> impl Strategy<Value = Packet> {
    (
        qos(),
        any::<bool>(),
        any::<bool>(),
        topic(),
        pid(),
        bin(),
        props(Ctx::Publish, v),
        any::<bool>(),
    )
        .prop_map(
            move |(qos, dup, retain, topic, id, payload, properties, drop_topic)| {
                let qos0 = qos == QoS::AtMostOnce;
                // 5.0: with a Topic Alias the topic name may be empty.
                let topic = if drop_topic && properties.topic_alias.is_some() {
                    Str::default()
                } else {
                    topic
                };
                Packet::Publish(Publish {
                    dup: dup && !qos0,
                    qos,
                    retain,
                    topic,
                    packet_id: if qos0 { None } else { Some(id) },
                    payload,
                    properties: properties.into(),
                })
            },
        )
}

fn pub_resp(v: ProtocolVersion, of: CodeOf) -> impl Strategy<Value = PubResp> {
    (pid(), code(of, v), props(Ctx::PubResp, v)).prop_map(|(packet_id, reason, properties)| {
        PubResp {
            packet_id,
            reason,
            properties: properties.into(),
        }
    })
}

fn sub_options(v: ProtocolVersion) -> impl Strategy<Value = SubOptions> {
    (qos(), any::<bool>(), any::<bool>(), 0..=2u8).prop_map(move |(qos, nl, rap, rh)| {
        if v == ProtocolVersion::V5 {
            SubOptions {
                qos,
                no_local: nl,
                retain_as_published: rap,
                retain_handling: rh,
            }
        } else {
            SubOptions {
                qos,
                ..Default::default()
            }
        }
    })
}

/// Any valid packet of version `v`.
fn packet(v: ProtocolVersion) -> BoxedStrategy<Packet> {
    let v5 = v == ProtocolVersion::V5;
    let mut s: Vec<BoxedStrategy<Packet>> = vec![
        connect(v).boxed(),
        (
            any::<bool>(),
            code(CodeOf::ConnAck, v),
            props(Ctx::ConnAck, v),
        )
            .prop_map(move |(sp, code, properties)| {
                let session_present = sp && v != ProtocolVersion::V31;
                Packet::ConnAck(ConnAck {
                    session_present,
                    code,
                    properties: properties.into(),
                })
            })
            .boxed(),
        publish(v).boxed(),
        pub_resp(v, CodeOf::PubAckRec)
            .prop_map(Packet::PubAck)
            .boxed(),
        pub_resp(v, CodeOf::PubAckRec)
            .prop_map(Packet::PubRec)
            .boxed(),
        pub_resp(v, CodeOf::PubRelComp)
            .prop_map(Packet::PubRel)
            .boxed(),
        pub_resp(v, CodeOf::PubRelComp)
            .prop_map(Packet::PubComp)
            .boxed(),
        (
            pid(),
            vec((filter(), sub_options(v)), 1..4),
            props(Ctx::Subscribe, v),
        )
            .prop_map(|(packet_id, filters, properties)| {
                Packet::Subscribe(Subscribe {
                    packet_id,
                    filters,
                    properties: properties.into(),
                })
            })
            .boxed(),
        (
            pid(),
            vec(code(CodeOf::SubAck, v), 0..4),
            props(Ctx::SubAck, v),
        )
            .prop_map(|(packet_id, codes, properties)| {
                Packet::SubAck(SubAck {
                    packet_id,
                    codes,
                    properties: properties.into(),
                })
            })
            .boxed(),
        (pid(), vec(filter(), 1..4), props(Ctx::Unsubscribe, v))
            .prop_map(|(packet_id, filters, properties)| {
                Packet::Unsubscribe(Unsubscribe {
                    packet_id,
                    filters,
                    properties: properties.into(),
                })
            })
            .boxed(),
        (
            pid(),
            vec(code(CodeOf::UnsubAck, v), 0..4),
            props(Ctx::UnsubAck, v),
        )
            .prop_map(move |(packet_id, codes, properties)| {
                let codes = if v5 { codes } else { Vec::new() };
                Packet::UnsubAck(UnsubAck {
                    packet_id,
                    codes,
                    properties: properties.into(),
                })
            })
            .boxed(),
        Just(Packet::PingReq).boxed(),
        Just(Packet::PingResp).boxed(),
        (code(CodeOf::Disconnect, v), props(Ctx::Disconnect, v))
            .prop_map(|(reason, properties)| {
                Packet::Disconnect(Disconnect {
                    reason,
                    properties: properties.into(),
                })
            })
            .boxed(),
    ];
    if v5 {
        s.push(
            (code(CodeOf::Auth, v), props(Ctx::Auth, v))
                .prop_map(|(reason, properties)| {
                    Packet::Auth(Auth {
                        reason,
                        properties: properties.into(),
                    })
                })
                .boxed(),
        );
    }
    proptest::strategy::Union::new(s).boxed()
}

fn versioned_packet() -> impl Strategy<Value = (ProtocolVersion, Packet)> {
    version().prop_flat_map(|v| packet(v).prop_map(move |p| (v, p)))
}

fn encoded(p: &Packet, v: ProtocolVersion) -> BytesMut {
    let mut out = BytesMut::new();
    encode(p, v, &mut out).expect("valid packets encode");
    out
}

/// Decodes until `None` or an error; must never panic. Whatever decodes is valid,
/// so it must encode and decode back to itself (the fuzz target checks the same).
fn drain(bytes: &[u8], v: ProtocolVersion, max: usize) {
    let mut buf = BytesMut::from(bytes);
    while let Ok(Some(p)) = decode(&mut buf, v, max) {
        let v = match &p {
            Packet::Connect(c) => c.protocol,
            _ => v,
        };
        let mut again = encoded(&p, v);
        assert_eq!(decode(&mut again, v, usize::MAX), Ok(Some(p)));
        assert!(again.is_empty());
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn round_trip((v, p) in versioned_packet()) {
        let mut buf = encoded(&p, v);
        prop_assert_eq!(encoded_len(&p, v), Ok(buf.len()));
        let got = decode(&mut buf, v, usize::MAX);
        prop_assert_eq!(got, Ok(Some(p)));
        prop_assert!(buf.is_empty());
    }

    #[test]
    fn every_strict_prefix_is_incomplete((v, p) in versioned_packet()) {
        let full = encoded(&p, v);
        for cut in 0..full.len() {
            let mut buf = BytesMut::from(&full[..cut]);
            prop_assert_eq!(decode(&mut buf, v, usize::MAX), Ok(None), "cut {}", cut);
            prop_assert_eq!(buf.len(), cut);
        }
    }

    #[test]
    fn two_packets_decode_in_order(
        (v, a, b) in version().prop_flat_map(|v| (Just(v), packet(v), packet(v)))
    ) {
        let mut buf = encoded(&a, v);
        buf.extend_from_slice(&encoded(&b, v));
        prop_assert_eq!(decode(&mut buf, v, usize::MAX), Ok(Some(a)));
        prop_assert_eq!(decode(&mut buf, v, usize::MAX), Ok(Some(b)));
        prop_assert!(buf.is_empty());
        prop_assert_eq!(decode(&mut buf, v, usize::MAX), Ok(None));
    }

    #[test]
    fn size_limit_is_exact((v, p) in versioned_packet()) {
        let full = encoded(&p, v);
        let mut buf = full.clone();
        prop_assert!(decode(&mut buf, v, full.len()).unwrap().is_some());
        let mut buf = full.clone();
        prop_assert_eq!(decode(&mut buf, v, full.len() - 1), Err(DecodeError::PacketTooLarge));
    }

    #[test]
    fn arbitrary_bytes_never_panic(
        bytes in vec(any::<u8>(), 0..256),
        v in version(),
        max in select(vec![2usize, 16, 128, usize::MAX]),
    ) {
        drain(&bytes, v, max);
    }

    #[test]
    fn mutated_packets_never_panic(
        (v, p) in versioned_packet(),
        edits in vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
    ) {
        let mut bytes = encoded(&p, v).to_vec();
        for (i, b) in edits {
            let i = i.index(bytes.len());
            bytes[i] = b;
        }
        for v in [ProtocolVersion::V31, ProtocolVersion::V311, ProtocolVersion::V5] {
            drain(&bytes, v, usize::MAX);
        }
    }
}
