//! The MQTT control packets as Rust values, for 3.1, 3.1.1 and 5.0 alike.
//!
//! Owns: the packet types only. Pure data, no I/O, no parsing (see `decode`/`encode`).
//! Strings and payloads are `Bytes` slices of the read buffer, so a decoded PUBLISH
//! can be forwarded to other shards without copying its payload.
//! Fields that exist only in MQTT 5.0 (properties, reason codes on acks) are simply
//! left at their defaults for 3.x packets; the encoder drops them for 3.x.

use bytes::Bytes;

use super::properties::Props;
use super::str::Str;

/// The protocol level of a connection, read from CONNECT.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub enum ProtocolVersion {
    /// MQTT 3.1, protocol name "MQIsdp", level 3.
    V31,
    /// MQTT 3.1.1, protocol name "MQTT", level 4.
    #[default]
    V311,
    /// MQTT 5.0, protocol name "MQTT", level 5.
    V5,
}

impl ProtocolVersion {
    /// The protocol level byte on the wire.
    pub fn level(self) -> u8 {
        match self {
            ProtocolVersion::V31 => 3,
            ProtocolVersion::V311 => 4,
            ProtocolVersion::V5 => 5,
        }
    }
}

/// Quality of service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub enum QoS {
    /// At most once.
    #[default]
    AtMostOnce = 0,
    /// At least once.
    AtLeastOnce = 1,
    /// Exactly once.
    ExactlyOnce = 2,
}

impl QoS {
    /// From the two-bit wire value; 3 is not a QoS.
    pub fn from_u8(v: u8) -> Option<QoS> {
        match v {
            0 => Some(QoS::AtMostOnce),
            1 => Some(QoS::AtLeastOnce),
            2 => Some(QoS::ExactlyOnce),
            _ => None,
        }
    }
}

/// One MQTT control packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packet {
    Connect(Box<Connect>),
    ConnAck(ConnAck),
    Publish(Publish),
    PubAck(PubResp),
    PubRec(PubResp),
    PubRel(PubResp),
    PubComp(PubResp),
    Subscribe(Subscribe),
    SubAck(SubAck),
    Unsubscribe(Unsubscribe),
    UnsubAck(UnsubAck),
    PingReq,
    PingResp,
    Disconnect(Disconnect),
    /// MQTT 5.0 only.
    Auth(Auth),
}

/// CONNECT.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Connect {
    /// Taken from the protocol name and level.
    pub protocol: ProtocolVersion,
    /// "Clean session" in 3.x, "clean start" in 5.0.
    pub clean_start: bool,
    /// Seconds; 0 disables keepalive.
    pub keep_alive: u16,
    /// May be empty.
    pub client_id: Str,
    pub will: Option<LastWill>,
    pub username: Option<Str>,
    pub password: Option<Bytes>,
    /// 5.0 CONNECT properties (session expiry, receive maximum, ...).
    pub properties: Props,
}

/// The will message carried in CONNECT.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LastWill {
    pub topic: Str,
    pub payload: Bytes,
    pub qos: QoS,
    pub retain: bool,
    /// 5.0 will properties (will delay, message expiry, content type, ...).
    pub properties: Props,
}

/// CONNACK. `code` is the 3.x return code (0..=5) or the 5.0 reason code.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConnAck {
    pub session_present: bool,
    pub code: u8,
    pub properties: Props,
}

/// PUBLISH.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Publish {
    pub dup: bool,
    pub qos: QoS,
    pub retain: bool,
    /// Empty only in 5.0 when a topic alias stands for it.
    pub topic: Str,
    /// Present exactly when `qos > 0`.
    pub packet_id: Option<u16>,
    pub payload: Bytes,
    pub properties: Props,
}

impl std::fmt::Debug for Publish {
    /// Payloads are never printed: they may be large or private.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publish")
            .field("dup", &self.dup)
            .field("qos", &self.qos)
            .field("retain", &self.retain)
            .field("topic", &self.topic)
            .field("packet_id", &self.packet_id)
            .field("payload_len", &self.payload.len())
            .field("properties", &self.properties)
            .finish()
    }
}

/// PUBACK, PUBREC, PUBREL and PUBCOMP share one shape.
/// `reason` is 0 (success) for 3.x; in 5.0 it is omitted on the wire when 0 and no properties.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PubResp {
    pub packet_id: u16,
    pub reason: u8,
    pub properties: Props,
}

impl PubResp {
    /// A plain success acknowledgement.
    pub fn new(packet_id: u16) -> PubResp {
        PubResp {
            packet_id,
            reason: 0,
            properties: Props::default(),
        }
    }
}

/// Subscription options of one SUBSCRIBE entry (3.x uses only `qos`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SubOptions {
    pub qos: QoS,
    pub no_local: bool,
    pub retain_as_published: bool,
    /// 0: send retained on subscribe, 1: only if the subscription is new, 2: never.
    pub retain_handling: u8,
}

impl SubOptions {
    /// The 5.0 subscription options byte (QoS, No Local, Retain As Published, Retain
    /// Handling).
    pub fn to_byte(self) -> u8 {
        self.qos as u8
            | u8::from(self.no_local) << 2
            | u8::from(self.retain_as_published) << 3
            | (self.retain_handling & 0b11) << 4
    }

    /// The options a 5.0 options byte holds; `None` for reserved bits, QoS 3 or Retain
    /// Handling 3.
    pub fn from_byte(b: u8) -> Option<SubOptions> {
        let opts = SubOptions {
            qos: QoS::from_u8(b & 0b11)?,
            no_local: b & 0x04 != 0,
            retain_as_published: b & 0x08 != 0,
            retain_handling: (b >> 4) & 0b11,
        };
        (b & 0xc0 == 0 && opts.retain_handling != 3).then_some(opts)
    }
}

/// SUBSCRIBE.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Subscribe {
    pub packet_id: u16,
    pub filters: Vec<(Str, SubOptions)>,
    pub properties: Props,
}

/// SUBACK. Each code is the granted QoS (0..=2) or a failure (0x80, or a 5.0 reason).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SubAck {
    pub packet_id: u16,
    pub codes: Vec<u8>,
    pub properties: Props,
}

/// UNSUBSCRIBE.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Unsubscribe {
    pub packet_id: u16,
    pub filters: Vec<Str>,
    pub properties: Props,
}

/// UNSUBACK. `codes` is 5.0 only (one per filter); empty for 3.x.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UnsubAck {
    pub packet_id: u16,
    pub codes: Vec<u8>,
    pub properties: Props,
}

/// DISCONNECT. `reason` and properties are 5.0 only.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Disconnect {
    pub reason: u8,
    pub properties: Props,
}

/// AUTH (5.0 only).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Auth {
    pub reason: u8,
    pub properties: Props,
}
