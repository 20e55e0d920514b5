//! Encoding: one [`Packet`] appended to an output buffer.
//!
//! Owns: the byte layout of every packet for 3.1, 3.1.1 and 5.0 on the sending side,
//! including the 5.0 short forms (acks and DISCONNECT / AUTH without reason code
//! and properties when those are 0 / empty).
//! Must never: append anything to `out` when it returns an error, emit a length
//! prefix that disagrees with the bytes, or write 5.0-only fields in a 3.x packet.
//! It does not police reason codes or list lengths, so tests can send odd packets;
//! it does refuse what has no encoding or what the peer must treat as malformed.

use bytes::BytesMut;

use super::error::EncodeError;
use super::packet::*;
use super::properties::Properties;
use super::props::{self, Ctx};
use super::varint::{self, MAX_VARINT};
use super::writer::{Counter, Sink};

/// Appends `packet` to `out`. CONNECT is written for its own `protocol` field;
/// every other packet for `version` (5.0-only fields are dropped for 3.x).
pub fn encode(
    packet: &Packet,
    version: ProtocolVersion,
    out: &mut BytesMut,
) -> Result<(), EncodeError> {
    let remaining = remaining_len(packet, version)?;
    out.reserve(1 + varint::len(remaining) + remaining);
    out.u8(first_byte(packet));
    out.varint(remaining)?;
    body(packet, version, out)
}

/// A PUBLISH made of borrowed parts: what a broker sends when it delivers a message it keeps
/// elsewhere, without building an owned [`Publish`] (whose shared topic and payload would cost
/// reference-count traffic for every subscriber).
#[derive(Debug, Clone, Copy)]
pub struct PublishRef<'a> {
    pub dup: bool,
    pub qos: QoS,
    pub retain: bool,
    pub topic: &'a str,
    /// Present exactly when `qos > 0`.
    pub packet_id: Option<u16>,
    pub properties: &'a Properties,
    pub payload: &'a [u8],
}

impl<'a> From<&'a Publish> for PublishRef<'a> {
    fn from(p: &'a Publish) -> Self {
        PublishRef {
            dup: p.dup,
            qos: p.qos,
            retain: p.retain,
            topic: &p.topic,
            packet_id: p.packet_id,
            properties: &p.properties,
            payload: &p.payload,
        }
    }
}

/// Appends the PUBLISH `p` to `out`, exactly as [`encode`] would append the equivalent
/// [`Packet::Publish`]. Returns the number of bytes appended.
pub fn encode_publish(
    p: &PublishRef<'_>,
    version: ProtocolVersion,
    out: &mut BytesMut,
) -> Result<usize, EncodeError> {
    let v5 = version == ProtocolVersion::V5;
    let mut c = Counter::default();
    publish_body(p, v5, &mut c)?;
    if c.0 > MAX_VARINT as usize {
        return Err(EncodeError::PacketTooLarge);
    }
    let len = 1 + varint::len(c.0) + c.0;
    out.reserve(len);
    out.u8(publish_first_byte(p));
    out.varint(c.0)?;
    publish_body(p, v5, out)?;
    Ok(len)
}

/// The number of bytes [`encode_publish`] would append for `p`.
pub fn publish_len(p: &PublishRef<'_>, version: ProtocolVersion) -> Result<usize, EncodeError> {
    let mut c = Counter::default();
    publish_body(p, version == ProtocolVersion::V5, &mut c)?;
    if c.0 > MAX_VARINT as usize {
        return Err(EncodeError::PacketTooLarge);
    }
    Ok(1 + varint::len(c.0) + c.0)
}

fn publish_first_byte(p: &PublishRef<'_>) -> u8 {
    0x30 | (u8::from(p.dup) << 3) | ((p.qos as u8) << 1) | u8::from(p.retain)
}

/// The number of bytes [`encode`] would append (fixed header included).
pub fn encoded_len(packet: &Packet, version: ProtocolVersion) -> Result<usize, EncodeError> {
    let remaining = remaining_len(packet, version)?;
    Ok(1 + varint::len(remaining) + remaining)
}

fn remaining_len(packet: &Packet, version: ProtocolVersion) -> Result<usize, EncodeError> {
    let mut c = Counter::default();
    body(packet, version, &mut c)?;
    if c.0 > MAX_VARINT as usize {
        return Err(EncodeError::PacketTooLarge);
    }
    Ok(c.0)
}

fn first_byte(packet: &Packet) -> u8 {
    match packet {
        Packet::Connect(_) => 0x10,
        Packet::ConnAck(_) => 0x20,
        Packet::Publish(p) => publish_first_byte(&PublishRef::from(p)),
        Packet::PubAck(_) => 0x40,
        Packet::PubRec(_) => 0x50,
        Packet::PubRel(_) => 0x62,
        Packet::PubComp(_) => 0x70,
        Packet::Subscribe(_) => 0x82,
        Packet::SubAck(_) => 0x90,
        Packet::Unsubscribe(_) => 0xa2,
        Packet::UnsubAck(_) => 0xb0,
        Packet::PingReq => 0xc0,
        Packet::PingResp => 0xd0,
        Packet::Disconnect(_) => 0xe0,
        Packet::Auth(_) => 0xf0,
    }
}

fn packet_id<S: Sink>(s: &mut S, id: u16) -> Result<(), EncodeError> {
    if id == 0 {
        return Err(EncodeError::ZeroPacketId);
    }
    s.u16(id);
    Ok(())
}

fn body<S: Sink>(packet: &Packet, v: ProtocolVersion, s: &mut S) -> Result<(), EncodeError> {
    let v5 = v == ProtocolVersion::V5;
    match packet {
        Packet::Connect(c) => connect(c, s)?,
        Packet::ConnAck(a) => {
            let flags = if v == ProtocolVersion::V31 {
                0
            } else {
                u8::from(a.session_present)
            };
            s.u8(flags);
            s.u8(a.code);
            if v5 {
                props::write(&a.properties, Ctx::ConnAck, s)?;
            }
        }
        Packet::Publish(p) => publish_body(&PublishRef::from(p), v5, s)?,
        Packet::PubAck(r) | Packet::PubRec(r) | Packet::PubRel(r) | Packet::PubComp(r) => {
            packet_id(s, r.packet_id)?;
            if v5 {
                short_tail(r.reason, &r.properties, Ctx::PubResp, s)?;
            }
        }
        Packet::Subscribe(sub) => {
            packet_id(s, sub.packet_id)?;
            if v5 {
                props::write(&sub.properties, Ctx::Subscribe, s)?;
            }
            for (filter, o) in &sub.filters {
                s.string(filter)?;
                let mut b = o.qos as u8;
                if v5 {
                    if o.retain_handling > 2 {
                        return Err(EncodeError::InvalidValue);
                    }
                    b |= u8::from(o.no_local) << 2
                        | u8::from(o.retain_as_published) << 3
                        | o.retain_handling << 4;
                }
                s.u8(b);
            }
        }
        Packet::SubAck(a) => {
            packet_id(s, a.packet_id)?;
            if v5 {
                props::write(&a.properties, Ctx::SubAck, s)?;
            }
            s.put(&a.codes);
        }
        Packet::Unsubscribe(u) => {
            packet_id(s, u.packet_id)?;
            if v5 {
                props::write(&u.properties, Ctx::Unsubscribe, s)?;
            }
            for filter in &u.filters {
                s.string(filter)?;
            }
        }
        Packet::UnsubAck(a) => {
            packet_id(s, a.packet_id)?;
            if v5 {
                props::write(&a.properties, Ctx::UnsubAck, s)?;
                s.put(&a.codes);
            }
        }
        Packet::PingReq | Packet::PingResp => {}
        Packet::Disconnect(d) => {
            if v5 {
                short_tail(d.reason, &d.properties, Ctx::Disconnect, s)?;
            }
        }
        Packet::Auth(a) => {
            if !v5 {
                return Err(EncodeError::NotInVersion);
            }
            short_tail(a.reason, &a.properties, Ctx::Auth, s)?;
        }
    }
    Ok(())
}

/// 5.0 "reason code, properties", both omitted when the reason is 0 and there are
/// no properties; the property length alone omitted when there are no properties.
fn short_tail<S: Sink>(
    reason: u8,
    properties: &Properties,
    ctx: Ctx,
    s: &mut S,
) -> Result<(), EncodeError> {
    let no_props = properties.is_empty();
    if reason == 0 && no_props {
        return Ok(());
    }
    s.u8(reason);
    if !no_props {
        props::write(properties, ctx, s)?;
    }
    Ok(())
}

fn connect<S: Sink>(c: &Connect, s: &mut S) -> Result<(), EncodeError> {
    let v5 = c.protocol == ProtocolVersion::V5;
    if c.password.is_some() && c.username.is_none() && !v5 {
        return Err(EncodeError::InvalidValue);
    }
    s.string(if c.protocol == ProtocolVersion::V31 {
        "MQIsdp"
    } else {
        "MQTT"
    })?;
    s.u8(c.protocol.level());
    let mut flags = u8::from(c.clean_start) << 1;
    if let Some(w) = &c.will {
        flags |= 0x04 | (w.qos as u8) << 3 | u8::from(w.retain) << 5;
    }
    flags |= u8::from(c.password.is_some()) << 6 | u8::from(c.username.is_some()) << 7;
    s.u8(flags);
    s.u16(c.keep_alive);
    if v5 {
        props::write(&c.properties, Ctx::Connect, s)?;
    }
    s.string(&c.client_id)?;
    if let Some(w) = &c.will {
        if v5 {
            props::write(&w.properties, Ctx::Will, s)?;
        }
        s.string(&w.topic)?;
        s.binary(&w.payload)?;
    }
    if let Some(u) = &c.username {
        s.string(u)?;
    }
    if let Some(p) = &c.password {
        s.binary(p)?;
    }
    Ok(())
}

fn publish_body<S: Sink>(p: &PublishRef<'_>, v5: bool, s: &mut S) -> Result<(), EncodeError> {
    if p.dup && p.qos == QoS::AtMostOnce {
        return Err(EncodeError::InvalidValue);
    }
    s.string(p.topic)?;
    if p.qos != QoS::AtMostOnce {
        packet_id(s, p.packet_id.ok_or(EncodeError::MissingPacketId)?)?;
    }
    if v5 {
        props::write(p.properties, Ctx::Publish, s)?;
    }
    s.put(p.payload);
    Ok(())
}

#[cfg(test)]
mod publish_ref_tests {
    use super::*;
    use crate::codec::Str;
    use bytes::Bytes;

    #[test]
    fn encode_publish_writes_what_encode_writes_for_the_same_publish() {
        let props = Properties {
            message_expiry_interval: Some(30),
            ..Default::default()
        };
        for version in [ProtocolVersion::V311, ProtocolVersion::V5] {
            for (qos, packet_id, dup, retain) in [
                (QoS::AtMostOnce, None, false, false),
                (QoS::AtLeastOnce, Some(7), true, true),
                (QoS::ExactlyOnce, Some(65535), false, true),
            ] {
                for properties in [Properties::default(), props.clone()] {
                    let p = Publish {
                        dup,
                        qos,
                        retain,
                        topic: Str::from("a/b"),
                        packet_id,
                        payload: Bytes::from_static(b"payload"),
                        properties: properties.into(),
                    };
                    let mut want = BytesMut::new();
                    encode(&Packet::Publish(p.clone()), version, &mut want).unwrap();
                    let mut got = BytesMut::from(&b"kept"[..]);
                    let n = encode_publish(&PublishRef::from(&p), version, &mut got).unwrap();
                    assert_eq!(&got[..4], b"kept");
                    assert_eq!(&got[4..], &want[..], "{version:?} {qos:?}");
                    assert_eq!(n, want.len());
                }
            }
        }
    }

    #[test]
    fn encode_publish_refuses_what_encode_refuses_and_appends_nothing() {
        let empty = Properties::default();
        let missing_id = PublishRef {
            dup: false,
            qos: QoS::AtLeastOnce,
            retain: false,
            topic: "t",
            packet_id: None,
            properties: &empty,
            payload: b"",
        };
        let dup_qos0 = PublishRef {
            dup: true,
            qos: QoS::AtMostOnce,
            ..missing_id
        };
        for p in [missing_id, dup_qos0] {
            let mut out = BytesMut::new();
            assert!(encode_publish(&p, ProtocolVersion::V311, &mut out).is_err());
            assert!(out.is_empty());
        }
    }
}
