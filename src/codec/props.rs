//! MQTT 5.0 property lists on the wire (spec 2.2.2): reading, writing, and which
//! properties each packet type may carry.
//!
//! Owns: property identifiers, the per-packet allow-lists, duplicate detection and
//! the value checks the spec calls protocol errors (Receive Maximum 0, boolean
//! bytes other than 0/1, ...).
//! Must never: accept a property outside its packet's allow-list, or let a
//! property list run past the bytes its length prefix claims.

use super::error::{DecodeError, EncodeError};
use super::properties::{Properties, Props};
use super::reader::Reader;
use super::writer::{Counter, Sink};

const PAYLOAD_FORMAT_INDICATOR: u32 = 0x01;
const MESSAGE_EXPIRY_INTERVAL: u32 = 0x02;
const CONTENT_TYPE: u32 = 0x03;
const RESPONSE_TOPIC: u32 = 0x08;
const CORRELATION_DATA: u32 = 0x09;
const SUBSCRIPTION_IDENTIFIER: u32 = 0x0B;
const SESSION_EXPIRY_INTERVAL: u32 = 0x11;
const ASSIGNED_CLIENT_IDENTIFIER: u32 = 0x12;
const SERVER_KEEP_ALIVE: u32 = 0x13;
const AUTHENTICATION_METHOD: u32 = 0x15;
const AUTHENTICATION_DATA: u32 = 0x16;
const REQUEST_PROBLEM_INFORMATION: u32 = 0x17;
const WILL_DELAY_INTERVAL: u32 = 0x18;
const REQUEST_RESPONSE_INFORMATION: u32 = 0x19;
const RESPONSE_INFORMATION: u32 = 0x1A;
const SERVER_REFERENCE: u32 = 0x1C;
const REASON_STRING: u32 = 0x1F;
const RECEIVE_MAXIMUM: u32 = 0x21;
const TOPIC_ALIAS_MAXIMUM: u32 = 0x22;
const TOPIC_ALIAS: u32 = 0x23;
const MAXIMUM_QOS: u32 = 0x24;
const RETAIN_AVAILABLE: u32 = 0x25;
const USER_PROPERTY: u32 = 0x26;
const MAXIMUM_PACKET_SIZE: u32 = 0x27;
const WILDCARD_SUBSCRIPTION_AVAILABLE: u32 = 0x28;
const SUBSCRIPTION_IDENTIFIER_AVAILABLE: u32 = 0x29;
const SHARED_SUBSCRIPTION_AVAILABLE: u32 = 0x2A;

/// Where a property list sits; selects the allow-list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ctx {
    Connect,
    Will,
    ConnAck,
    Publish,
    /// PUBACK, PUBREC, PUBREL, PUBCOMP.
    PubResp,
    Subscribe,
    SubAck,
    Unsubscribe,
    UnsubAck,
    Disconnect,
    Auth,
}

const fn bits(ids: &[u32]) -> u64 {
    let mut m = 0u64;
    let mut i = 0;
    while i < ids.len() {
        m |= 1 << ids[i];
        i += 1;
    }
    m
}

impl Ctx {
    /// The allow-list from the property table of spec 2.2.2.2.
    fn allowed(self) -> u64 {
        match self {
            Ctx::Connect => bits(&[
                SESSION_EXPIRY_INTERVAL,
                AUTHENTICATION_METHOD,
                AUTHENTICATION_DATA,
                REQUEST_PROBLEM_INFORMATION,
                REQUEST_RESPONSE_INFORMATION,
                RECEIVE_MAXIMUM,
                TOPIC_ALIAS_MAXIMUM,
                USER_PROPERTY,
                MAXIMUM_PACKET_SIZE,
            ]),
            Ctx::Will => bits(&[
                PAYLOAD_FORMAT_INDICATOR,
                MESSAGE_EXPIRY_INTERVAL,
                CONTENT_TYPE,
                RESPONSE_TOPIC,
                CORRELATION_DATA,
                WILL_DELAY_INTERVAL,
                USER_PROPERTY,
            ]),
            Ctx::ConnAck => bits(&[
                SESSION_EXPIRY_INTERVAL,
                ASSIGNED_CLIENT_IDENTIFIER,
                SERVER_KEEP_ALIVE,
                AUTHENTICATION_METHOD,
                AUTHENTICATION_DATA,
                RESPONSE_INFORMATION,
                SERVER_REFERENCE,
                REASON_STRING,
                RECEIVE_MAXIMUM,
                TOPIC_ALIAS_MAXIMUM,
                MAXIMUM_QOS,
                RETAIN_AVAILABLE,
                USER_PROPERTY,
                MAXIMUM_PACKET_SIZE,
                WILDCARD_SUBSCRIPTION_AVAILABLE,
                SUBSCRIPTION_IDENTIFIER_AVAILABLE,
                SHARED_SUBSCRIPTION_AVAILABLE,
            ]),
            Ctx::Publish => bits(&[
                PAYLOAD_FORMAT_INDICATOR,
                MESSAGE_EXPIRY_INTERVAL,
                CONTENT_TYPE,
                RESPONSE_TOPIC,
                CORRELATION_DATA,
                SUBSCRIPTION_IDENTIFIER,
                TOPIC_ALIAS,
                USER_PROPERTY,
            ]),
            Ctx::PubResp | Ctx::SubAck | Ctx::UnsubAck => bits(&[REASON_STRING, USER_PROPERTY]),
            Ctx::Subscribe => bits(&[SUBSCRIPTION_IDENTIFIER, USER_PROPERTY]),
            Ctx::Unsubscribe => bits(&[USER_PROPERTY]),
            Ctx::Disconnect => bits(&[
                SESSION_EXPIRY_INTERVAL,
                SERVER_REFERENCE,
                REASON_STRING,
                USER_PROPERTY,
            ]),
            Ctx::Auth => bits(&[
                AUTHENTICATION_METHOD,
                AUTHENTICATION_DATA,
                REASON_STRING,
                USER_PROPERTY,
            ]),
        }
    }
}

/// Stores a single-instance property; a second one is a protocol error.
fn set<T>(slot: &mut Option<T>, v: T) -> Result<(), DecodeError> {
    if slot.is_some() {
        return Err(DecodeError::DuplicateProperty);
    }
    *slot = Some(v);
    Ok(())
}

/// A byte that may only be 0 or 1.
fn flag(r: &mut Reader) -> Result<u8, DecodeError> {
    match r.u8()? {
        v @ (0 | 1) => Ok(v),
        _ => Err(DecodeError::InvalidPropertyValue),
    }
}

fn nonzero_u16(r: &mut Reader) -> Result<u16, DecodeError> {
    match r.u16()? {
        0 => Err(DecodeError::InvalidPropertyValue),
        v => Ok(v),
    }
}

/// Reads a property length and the list it covers (no allocation when the list is empty).
pub(crate) fn read(r: &mut Reader, ctx: Ctx) -> Result<Props, DecodeError> {
    let len = r.varint()?;
    if len == 0 {
        return Ok(Props::default());
    }
    let mut r = Reader::new(r.take(len as usize)?);
    let allowed = ctx.allowed();
    let mut p = Properties::default();
    while !r.is_empty() {
        let id = r.varint()?;
        if id >= 64 || allowed & (1 << id) == 0 {
            return Err(if id < 64 && Properties::KNOWN & (1 << id) != 0 {
                DecodeError::PropertyNotAllowed
            } else {
                DecodeError::UnknownProperty
            });
        }
        match id {
            PAYLOAD_FORMAT_INDICATOR => set(&mut p.payload_format_indicator, flag(&mut r)?)?,
            MESSAGE_EXPIRY_INTERVAL => set(&mut p.message_expiry_interval, r.u32()?)?,
            CONTENT_TYPE => set(&mut p.content_type, r.string()?)?,
            RESPONSE_TOPIC => set(&mut p.response_topic, r.string()?)?,
            CORRELATION_DATA => set(&mut p.correlation_data, r.binary()?)?,
            SUBSCRIPTION_IDENTIFIER => {
                let v = r.varint()?;
                if v == 0 {
                    return Err(DecodeError::InvalidPropertyValue);
                }
                // Only a PUBLISH (server to client) may carry several.
                if ctx != Ctx::Publish && !p.subscription_identifiers.is_empty() {
                    return Err(DecodeError::DuplicateProperty);
                }
                p.subscription_identifiers.push(v);
            }
            SESSION_EXPIRY_INTERVAL => set(&mut p.session_expiry_interval, r.u32()?)?,
            ASSIGNED_CLIENT_IDENTIFIER => set(&mut p.assigned_client_identifier, r.string()?)?,
            SERVER_KEEP_ALIVE => set(&mut p.server_keep_alive, r.u16()?)?,
            AUTHENTICATION_METHOD => set(&mut p.authentication_method, r.string()?)?,
            AUTHENTICATION_DATA => set(&mut p.authentication_data, r.binary()?)?,
            REQUEST_PROBLEM_INFORMATION => set(&mut p.request_problem_information, flag(&mut r)?)?,
            WILL_DELAY_INTERVAL => set(&mut p.will_delay_interval, r.u32()?)?,
            REQUEST_RESPONSE_INFORMATION => {
                set(&mut p.request_response_information, flag(&mut r)?)?
            }
            RESPONSE_INFORMATION => set(&mut p.response_information, r.string()?)?,
            SERVER_REFERENCE => set(&mut p.server_reference, r.string()?)?,
            REASON_STRING => set(&mut p.reason_string, r.string()?)?,
            RECEIVE_MAXIMUM => set(&mut p.receive_maximum, nonzero_u16(&mut r)?)?,
            TOPIC_ALIAS_MAXIMUM => set(&mut p.topic_alias_maximum, r.u16()?)?,
            // 0 is decoded: the session refuses it as Topic Alias invalid (0x94), not malformed.
            TOPIC_ALIAS => set(&mut p.topic_alias, r.u16()?)?,
            MAXIMUM_QOS => set(&mut p.maximum_qos, flag(&mut r)?)?,
            RETAIN_AVAILABLE => set(&mut p.retain_available, flag(&mut r)?)?,
            USER_PROPERTY => {
                let k = r.string()?;
                let v = r.string()?;
                p.user_properties.push((k, v));
            }
            MAXIMUM_PACKET_SIZE => match r.u32()? {
                0 => return Err(DecodeError::InvalidPropertyValue),
                v => set(&mut p.maximum_packet_size, v)?,
            },
            WILDCARD_SUBSCRIPTION_AVAILABLE => {
                set(&mut p.wildcard_subscription_available, flag(&mut r)?)?
            }
            SUBSCRIPTION_IDENTIFIER_AVAILABLE => {
                set(&mut p.subscription_identifier_available, flag(&mut r)?)?
            }
            SHARED_SUBSCRIPTION_AVAILABLE => {
                set(&mut p.shared_subscription_available, flag(&mut r)?)?
            }
            _ => return Err(DecodeError::UnknownProperty),
        }
    }
    if p.authentication_data.is_some() && p.authentication_method.is_none() {
        return Err(DecodeError::AuthDataWithoutMethod);
    }
    Ok(p.into())
}

impl Properties {
    /// Bit `id` set for every property identifier MQTT 5.0 defines.
    const KNOWN: u64 = bits(&[
        PAYLOAD_FORMAT_INDICATOR,
        MESSAGE_EXPIRY_INTERVAL,
        CONTENT_TYPE,
        RESPONSE_TOPIC,
        CORRELATION_DATA,
        SUBSCRIPTION_IDENTIFIER,
        SESSION_EXPIRY_INTERVAL,
        ASSIGNED_CLIENT_IDENTIFIER,
        SERVER_KEEP_ALIVE,
        AUTHENTICATION_METHOD,
        AUTHENTICATION_DATA,
        REQUEST_PROBLEM_INFORMATION,
        WILL_DELAY_INTERVAL,
        REQUEST_RESPONSE_INFORMATION,
        RESPONSE_INFORMATION,
        SERVER_REFERENCE,
        REASON_STRING,
        RECEIVE_MAXIMUM,
        TOPIC_ALIAS_MAXIMUM,
        TOPIC_ALIAS,
        MAXIMUM_QOS,
        RETAIN_AVAILABLE,
        USER_PROPERTY,
        MAXIMUM_PACKET_SIZE,
        WILDCARD_SUBSCRIPTION_AVAILABLE,
        SUBSCRIPTION_IDENTIFIER_AVAILABLE,
        SHARED_SUBSCRIPTION_AVAILABLE,
    ]);
}

/// Writes the property length and the properties, in identifier order.
pub(crate) fn write<S: Sink>(p: &Properties, ctx: Ctx, s: &mut S) -> Result<(), EncodeError> {
    let mut c = Counter::default();
    write_list(p, ctx, &mut c)?;
    s.varint(c.0)?;
    write_list(p, ctx, s)
}

/// Checks that `id` may appear in this packet and writes it.
fn id<S: Sink>(s: &mut S, allowed: u64, id: u32) -> Result<(), EncodeError> {
    if allowed & (1 << id) == 0 {
        return Err(EncodeError::PropertyNotAllowed);
    }
    s.u8(id as u8);
    Ok(())
}

fn write_list<S: Sink>(p: &Properties, ctx: Ctx, s: &mut S) -> Result<(), EncodeError> {
    let a = ctx.allowed();
    if let Some(v) = p.payload_format_indicator {
        id(s, a, PAYLOAD_FORMAT_INDICATOR)?;
        s.u8(v);
    }
    if let Some(v) = p.message_expiry_interval {
        id(s, a, MESSAGE_EXPIRY_INTERVAL)?;
        s.u32(v);
    }
    if let Some(v) = &p.content_type {
        id(s, a, CONTENT_TYPE)?;
        s.string(v)?;
    }
    if let Some(v) = &p.response_topic {
        id(s, a, RESPONSE_TOPIC)?;
        s.string(v)?;
    }
    if let Some(v) = &p.correlation_data {
        id(s, a, CORRELATION_DATA)?;
        s.binary(v)?;
    }
    if ctx != Ctx::Publish && p.subscription_identifiers.len() > 1 {
        return Err(EncodeError::PropertyNotAllowed);
    }
    for &v in &p.subscription_identifiers {
        id(s, a, SUBSCRIPTION_IDENTIFIER)?;
        if v == 0 {
            return Err(EncodeError::InvalidValue);
        }
        s.varint(v as usize)?;
    }
    if let Some(v) = p.session_expiry_interval {
        id(s, a, SESSION_EXPIRY_INTERVAL)?;
        s.u32(v);
    }
    if let Some(v) = &p.assigned_client_identifier {
        id(s, a, ASSIGNED_CLIENT_IDENTIFIER)?;
        s.string(v)?;
    }
    if let Some(v) = p.server_keep_alive {
        id(s, a, SERVER_KEEP_ALIVE)?;
        s.u16(v);
    }
    if let Some(v) = &p.authentication_method {
        id(s, a, AUTHENTICATION_METHOD)?;
        s.string(v)?;
    }
    if let Some(v) = &p.authentication_data {
        id(s, a, AUTHENTICATION_DATA)?;
        s.binary(v)?;
    }
    if let Some(v) = p.request_problem_information {
        id(s, a, REQUEST_PROBLEM_INFORMATION)?;
        s.u8(v);
    }
    if let Some(v) = p.will_delay_interval {
        id(s, a, WILL_DELAY_INTERVAL)?;
        s.u32(v);
    }
    if let Some(v) = p.request_response_information {
        id(s, a, REQUEST_RESPONSE_INFORMATION)?;
        s.u8(v);
    }
    if let Some(v) = &p.response_information {
        id(s, a, RESPONSE_INFORMATION)?;
        s.string(v)?;
    }
    if let Some(v) = &p.server_reference {
        id(s, a, SERVER_REFERENCE)?;
        s.string(v)?;
    }
    if let Some(v) = &p.reason_string {
        id(s, a, REASON_STRING)?;
        s.string(v)?;
    }
    if let Some(v) = p.receive_maximum {
        id(s, a, RECEIVE_MAXIMUM)?;
        s.u16(v);
    }
    if let Some(v) = p.topic_alias_maximum {
        id(s, a, TOPIC_ALIAS_MAXIMUM)?;
        s.u16(v);
    }
    if let Some(v) = p.topic_alias {
        id(s, a, TOPIC_ALIAS)?;
        s.u16(v);
    }
    if let Some(v) = p.maximum_qos {
        id(s, a, MAXIMUM_QOS)?;
        s.u8(v);
    }
    if let Some(v) = p.retain_available {
        id(s, a, RETAIN_AVAILABLE)?;
        s.u8(v);
    }
    for (k, v) in &p.user_properties {
        id(s, a, USER_PROPERTY)?;
        s.string(k)?;
        s.string(v)?;
    }
    if let Some(v) = p.maximum_packet_size {
        id(s, a, MAXIMUM_PACKET_SIZE)?;
        s.u32(v);
    }
    if let Some(v) = p.wildcard_subscription_available {
        id(s, a, WILDCARD_SUBSCRIPTION_AVAILABLE)?;
        s.u8(v);
    }
    if let Some(v) = p.subscription_identifier_available {
        id(s, a, SUBSCRIPTION_IDENTIFIER_AVAILABLE)?;
        s.u8(v);
    }
    if let Some(v) = p.shared_subscription_available {
        id(s, a, SHARED_SUBSCRIPTION_AVAILABLE)?;
        s.u8(v);
    }
    Ok(())
}
