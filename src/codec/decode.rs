//! Decoding: one MQTT control packet from the front of a read buffer.
//!
//! Owns: framing (fixed header, remaining length, the size limit) and every
//! receiver-side check of the spec for packet bodies of 3.1, 3.1.1 and 5.0.
//! Must never: panic, consume bytes when it returns `Ok(None)`, wait for a body that
//! exceeds the size limit, copy strings or payloads (they are `Bytes::slice`s of the
//! frame), or allocate more than the input justifies.

use bytes::{Buf, Bytes, BytesMut};

use super::error::DecodeError;
use super::packet::*;
use super::props::{self, Ctx};
use super::reader::Reader;
use super::reason::{self, CodeOf};
use super::str::Str;
use super::varint::{self, VarInt};

/// Decodes one packet from the front of `buf`.
///
/// - `Ok(None)`: `buf` does not yet hold a whole packet; nothing was consumed.
/// - `Ok(Some(p))`: exactly the bytes of `p` were consumed.
/// - `Err(e)`: the stream is not valid MQTT; close the connection (after CONNACK /
///   DISCONNECT with `e.reason_code()` in 5.0). The packet's bytes may have been
///   consumed. Errors in the fixed header (flags, remaining length, size) are
///   reported as soon as those bytes arrive, without waiting for the body.
///
/// `max_packet_size` bounds the whole packet (fixed header included). `version`
/// selects the body rules; CONNECT ignores it and reads its own protocol level.
pub fn decode(
    buf: &mut BytesMut,
    version: ProtocolVersion,
    max_packet_size: usize,
) -> Result<Option<Packet>, DecodeError> {
    let Some(&first) = buf.first() else {
        return Ok(None);
    };
    check_fixed_header(first, version)?;
    let (remaining, len_len) = match varint::read(&buf[1..]) {
        VarInt::Value(v, n) => (v as usize, n),
        VarInt::Incomplete => return Ok(None),
        VarInt::Malformed => return Err(DecodeError::MalformedVarInt),
    };
    let total = 1 + len_len + remaining;
    if total > max_packet_size {
        return Err(DecodeError::PacketTooLarge);
    }
    if buf.len() < total {
        return Ok(None);
    }
    let mut body: Bytes = buf.split_to(total).freeze();
    body.advance(1 + len_len); // no reference-count traffic, unlike a slice
    let mut r = Reader::new(body);
    let packet = decode_body(first, version, &mut r)?;
    r.finish()?;
    Ok(Some(packet))
}

/// The protocol a CONNECT at the start of `buf` announces, read from its first bytes
/// (without decoding the rest): how to answer it when the rest turns out invalid (a 5.0
/// client gets a CONNACK with the reason). `None` before those bytes are there, for another
/// packet type, or for an unknown protocol.
pub fn connect_version(buf: &[u8]) -> Option<ProtocolVersion> {
    if buf.first()? >> 4 != 1 {
        return None;
    }
    let VarInt::Value(_, len_len) = varint::read(buf.get(1..)?) else {
        return None;
    };
    let rest = buf.get(1 + len_len..)?;
    let name_len = usize::from(u16::from_be_bytes([*rest.first()?, *rest.get(1)?]));
    let name = rest.get(2..2 + name_len)?;
    match (name, *rest.get(2 + name_len)?) {
        (b"MQIsdp", 3) => Some(ProtocolVersion::V31),
        (b"MQTT", 4) => Some(ProtocolVersion::V311),
        (b"MQTT", 5) => Some(ProtocolVersion::V5),
        _ => None,
    }
}

/// Packet type and flag bits [MQTT-2.1.3-1]; PUBLISH flags are checked with its body.
fn check_fixed_header(first: u8, version: ProtocolVersion) -> Result<(), DecodeError> {
    let flags = first & 0x0f;
    let required = match first >> 4 {
        0 => return Err(DecodeError::ReservedPacketType),
        15 if version != ProtocolVersion::V5 => return Err(DecodeError::ReservedPacketType),
        3 => return publish_flags(flags).map(|_| ()),
        // MQTT 3.1 sends these at QoS 1 and sets DUP when it resends them.
        6 | 8 | 10 if version == ProtocolVersion::V31 && flags == 0b1010 => 0b1010,
        6 | 8 | 10 => 0b0010,
        _ => 0,
    };
    if flags != required {
        return Err(DecodeError::InvalidHeaderFlags);
    }
    Ok(())
}

/// (dup, qos, retain) of a PUBLISH fixed header.
fn publish_flags(flags: u8) -> Result<(bool, QoS, bool), DecodeError> {
    let dup = flags & 0b1000 != 0;
    let qos = QoS::from_u8((flags >> 1) & 0b11).ok_or(DecodeError::InvalidQoS)?;
    if dup && qos == QoS::AtMostOnce {
        return Err(DecodeError::DupWithQoS0);
    }
    Ok((dup, qos, flags & 1 != 0))
}

fn decode_body(first: u8, v: ProtocolVersion, r: &mut Reader) -> Result<Packet, DecodeError> {
    let v5 = v == ProtocolVersion::V5;
    Ok(match first >> 4 {
        1 => Packet::Connect(Box::new(connect(r)?)),
        2 => Packet::ConnAck(connack(r, v)?),
        3 => Packet::Publish(publish(first, r, v)?),
        4 => Packet::PubAck(pub_resp(r, v, CodeOf::PubAckRec)?),
        5 => Packet::PubRec(pub_resp(r, v, CodeOf::PubAckRec)?),
        6 => Packet::PubRel(pub_resp(r, v, CodeOf::PubRelComp)?),
        7 => Packet::PubComp(pub_resp(r, v, CodeOf::PubRelComp)?),
        8 => Packet::Subscribe(subscribe(r, v)?),
        9 => {
            let packet_id = r.packet_id()?;
            let properties = if v5 {
                props::read(r, Ctx::SubAck)?
            } else {
                Default::default()
            };
            let codes = codes(r, v, CodeOf::SubAck)?;
            Packet::SubAck(SubAck {
                packet_id,
                codes,
                properties,
            })
        }
        10 => Packet::Unsubscribe(unsubscribe(r, v)?),
        11 => {
            let packet_id = r.packet_id()?;
            let mut ack = UnsubAck {
                packet_id,
                ..Default::default()
            };
            if v5 {
                ack.properties = props::read(r, Ctx::UnsubAck)?;
                ack.codes = codes(r, v, CodeOf::UnsubAck)?;
            }
            Packet::UnsubAck(ack)
        }
        12 => Packet::PingReq,
        13 => Packet::PingResp,
        14 => {
            let (reason, properties) = reason_and_props(r, v, CodeOf::Disconnect, Ctx::Disconnect)?;
            Packet::Disconnect(Disconnect { reason, properties })
        }
        15 => {
            let (reason, properties) = reason_and_props(r, v, CodeOf::Auth, Ctx::Auth)?;
            Packet::Auth(Auth { reason, properties })
        }
        _ => return Err(DecodeError::ReservedPacketType),
    })
}

/// CONNECT: self-describing, reads its own protocol name and level.
fn connect(r: &mut Reader) -> Result<Connect, DecodeError> {
    let name = r.string()?;
    let level = r.u8()?;
    let protocol = match (name.as_str(), level) {
        ("MQIsdp", 3) => ProtocolVersion::V31,
        ("MQTT", 4) => ProtocolVersion::V311,
        ("MQTT", 5) => ProtocolVersion::V5,
        _ => return Err(DecodeError::UnsupportedProtocolVersion),
    };
    let v5 = protocol == ProtocolVersion::V5;
    let flags = r.u8()?;
    if flags & 0x01 != 0 {
        return Err(DecodeError::ConnectReservedFlag);
    }
    let clean_start = flags & 0x02 != 0;
    let will_flag = flags & 0x04 != 0;
    let will_qos = (flags >> 3) & 0b11;
    let will_retain = flags & 0x20 != 0;
    let has_password = flags & 0x40 != 0;
    let has_username = flags & 0x80 != 0;
    if !will_flag && (will_qos != 0 || will_retain) {
        return Err(DecodeError::WillFlagsWithoutWill);
    }
    let will_qos = QoS::from_u8(will_qos).ok_or(DecodeError::InvalidWillQoS)?;
    if has_password && !has_username && !v5 {
        return Err(DecodeError::PasswordWithoutUsername);
    }
    let keep_alive = r.u16()?;
    let properties = if v5 {
        props::read(r, Ctx::Connect)?
    } else {
        Default::default()
    };
    let client_id = r.string()?;
    let will = if will_flag {
        let properties = if v5 {
            props::read(r, Ctx::Will)?
        } else {
            Default::default()
        };
        let topic = r.string()?;
        check_topic_name(&topic)?;
        let payload = r.binary()?;
        Some(LastWill {
            topic,
            payload,
            qos: will_qos,
            retain: will_retain,
            properties,
        })
    } else {
        None
    };
    let username = if has_username {
        Some(r.string()?)
    } else {
        None
    };
    let password = if has_password {
        Some(r.binary()?)
    } else {
        None
    };
    Ok(Connect {
        protocol,
        clean_start,
        keep_alive,
        client_id,
        will,
        username,
        password,
        properties,
    })
}

fn connack(r: &mut Reader, v: ProtocolVersion) -> Result<ConnAck, DecodeError> {
    let flags = r.u8()?;
    // In 3.1 this byte is reserved and unused; from 3.1.1 on bit 0 is session present.
    let session_present = v != ProtocolVersion::V31 && flags & 0x01 != 0;
    if v != ProtocolVersion::V31 && flags & 0xfe != 0 {
        return Err(DecodeError::ConnAckReservedFlags);
    }
    let code = r.u8()?;
    if !reason::is_valid(CodeOf::ConnAck, v, code) {
        return Err(DecodeError::InvalidReasonCode);
    }
    let properties = if v == ProtocolVersion::V5 {
        props::read(r, Ctx::ConnAck)?
    } else {
        Default::default()
    };
    Ok(ConnAck {
        session_present,
        code,
        properties,
    })
}

/// Topic names are non-empty and carry no wildcards [MQTT-4.7.3-1], [MQTT-3.3.2-2].
fn check_topic_name(topic: &Str) -> Result<(), DecodeError> {
    if topic.is_empty() {
        return Err(DecodeError::EmptyTopicName);
    }
    if topic.as_bytes().iter().any(|&b| b == b'+' || b == b'#') {
        return Err(DecodeError::TopicNameWildcard);
    }
    Ok(())
}

fn publish(first: u8, r: &mut Reader, v: ProtocolVersion) -> Result<Publish, DecodeError> {
    let (dup, qos, retain) = publish_flags(first & 0x0f)?;
    let topic = r.string()?;
    let packet_id = if qos == QoS::AtMostOnce {
        None
    } else {
        Some(r.packet_id()?)
    };
    let properties = if v == ProtocolVersion::V5 {
        props::read(r, Ctx::Publish)?
    } else {
        Default::default()
    };
    // 5.0: an empty topic name stands for the one bound to the Topic Alias.
    if !(topic.is_empty() && properties.topic_alias.is_some()) {
        check_topic_name(&topic)?;
    }
    let payload = r.rest();
    Ok(Publish {
        dup,
        qos,
        retain,
        topic,
        packet_id,
        payload,
        properties,
    })
}

/// PUBACK, PUBREC, PUBREL, PUBCOMP. 5.0 may omit the reason code (then 0x00) and
/// the property length.
fn pub_resp(r: &mut Reader, v: ProtocolVersion, of: CodeOf) -> Result<PubResp, DecodeError> {
    let packet_id = r.packet_id()?;
    let (reason, properties) = reason_and_props(r, v, of, Ctx::PubResp)?;
    Ok(PubResp {
        packet_id,
        reason,
        properties,
    })
}

/// The optional 5.0 tail "reason code, properties" of acks, DISCONNECT and AUTH;
/// nothing at all in 3.x.
fn reason_and_props(
    r: &mut Reader,
    v: ProtocolVersion,
    of: CodeOf,
    ctx: Ctx,
) -> Result<(u8, super::properties::Props), DecodeError> {
    if v != ProtocolVersion::V5 || r.is_empty() {
        return Ok((0, Default::default()));
    }
    let reason = r.u8()?;
    if !reason::is_valid(of, v, reason) {
        return Err(DecodeError::InvalidReasonCode);
    }
    let properties = if r.is_empty() {
        Default::default()
    } else {
        props::read(r, ctx)?
    };
    Ok((reason, properties))
}

/// The rest of the body as reason / return codes (SUBACK, 5.0 UNSUBACK).
fn codes(r: &mut Reader, v: ProtocolVersion, of: CodeOf) -> Result<Vec<u8>, DecodeError> {
    let codes = r.rest();
    if let Some(_bad) = codes.iter().find(|&&c| !reason::is_valid(of, v, c)) {
        return Err(DecodeError::InvalidReasonCode);
    }
    Ok(codes.to_vec())
}

fn subscribe(r: &mut Reader, v: ProtocolVersion) -> Result<Subscribe, DecodeError> {
    let v5 = v == ProtocolVersion::V5;
    let packet_id = r.packet_id()?;
    let properties = if v5 {
        props::read(r, Ctx::Subscribe)?
    } else {
        Default::default()
    };
    let mut filters = Vec::new();
    while !r.is_empty() {
        let filter = r.string()?;
        let o = r.u8()?;
        let reserved = if v5 { 0xc0 } else { 0xfc };
        let qos = QoS::from_u8(o & 0b11).ok_or(DecodeError::InvalidSubscriptionOptions)?;
        if o & reserved != 0 {
            return Err(DecodeError::InvalidSubscriptionOptions);
        }
        let opts = SubOptions {
            qos,
            no_local: o & 0x04 != 0,
            retain_as_published: o & 0x08 != 0,
            retain_handling: (o >> 4) & 0b11,
        };
        if opts.retain_handling == 3 {
            return Err(DecodeError::InvalidRetainHandling);
        }
        if opts.no_local && filter.starts_with("$share/") {
            return Err(DecodeError::NoLocalOnSharedSubscription);
        }
        filters.push((filter, opts));
    }
    if filters.is_empty() {
        return Err(DecodeError::NoSubscribeFilters);
    }
    Ok(Subscribe {
        packet_id,
        filters,
        properties,
    })
}

fn unsubscribe(r: &mut Reader, v: ProtocolVersion) -> Result<Unsubscribe, DecodeError> {
    let packet_id = r.packet_id()?;
    let properties = if v == ProtocolVersion::V5 {
        props::read(r, Ctx::Unsubscribe)?
    } else {
        Default::default()
    };
    let mut filters = Vec::new();
    while !r.is_empty() {
        filters.push(r.string()?);
    }
    if filters.is_empty() {
        return Err(DecodeError::NoUnsubscribeFilters);
    }
    Ok(Unsubscribe {
        packet_id,
        filters,
        properties,
    })
}
