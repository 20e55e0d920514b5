//! The codec's error types: why bytes are not a packet, and why a packet cannot be bytes.
//!
//! Owns: [`DecodeError`] (with its MQTT 5.0 reason code) and [`EncodeError`].
//! Must never: carry data (both are small `Copy` enums, cheap to return on hot paths)
//! or allocate.

use std::fmt;

/// Reason code 0x81, Malformed Packet.
pub const MALFORMED_PACKET: u8 = 0x81;
/// Reason code 0x82, Protocol Error.
pub const PROTOCOL_ERROR: u8 = 0x82;
/// Reason code 0x84, Unsupported Protocol Version.
pub const UNSUPPORTED_PROTOCOL_VERSION: u8 = 0x84;
/// Reason code 0x90, Topic Name invalid.
pub const TOPIC_NAME_INVALID: u8 = 0x90;
/// Reason code 0x95, Packet too large.
pub const PACKET_TOO_LARGE: u8 = 0x95;

/// Why the bytes at the front of a buffer are not a valid packet.
///
/// After any of these the connection must be closed (in 5.0 after sending
/// DISCONNECT / CONNACK with [`DecodeError::reason_code`]). The offending packet's
/// bytes may or may not have been consumed from the buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DecodeError {
    /// The whole packet would be larger than the allowed maximum.
    PacketTooLarge,
    /// The remaining length (or another variable byte integer) runs over 4 bytes.
    MalformedVarInt,
    /// Packet type 0, or AUTH (15) before MQTT 5.0.
    ReservedPacketType,
    /// The fixed header flag bits are not the ones required for this packet type.
    InvalidHeaderFlags,
    /// PUBLISH with both QoS bits set.
    InvalidQoS,
    /// PUBLISH QoS 0 with the DUP flag set.
    DupWithQoS0,
    /// The packet body ended before a field it must contain.
    UnexpectedEnd,
    /// Bytes left over inside the packet after its last field.
    TrailingBytes,
    /// A packet identifier of 0 where a non-zero one is required.
    ZeroPacketId,
    /// A string that is not well-formed UTF-8.
    InvalidUtf8,
    /// A string containing U+0000.
    NullCharacter,
    /// CONNECT with an unknown protocol name or level.
    UnsupportedProtocolVersion,
    /// CONNECT with the reserved flag bit set.
    ConnectReservedFlag,
    /// CONNECT with Will QoS or Will Retain set but no Will Flag.
    WillFlagsWithoutWill,
    /// CONNECT with Will QoS 3.
    InvalidWillQoS,
    /// CONNECT (3.x) with the password flag set but not the user name flag.
    PasswordWithoutUsername,
    /// CONNACK with reserved acknowledge flag bits set.
    ConnAckReservedFlags,
    /// PUBLISH topic name containing a wildcard.
    TopicNameWildcard,
    /// PUBLISH with an empty topic name (and, in 5.0, no Topic Alias).
    EmptyTopicName,
    /// SUBSCRIBE with no topic filter.
    NoSubscribeFilters,
    /// UNSUBSCRIBE with no topic filter.
    NoUnsubscribeFilters,
    /// Subscription options with reserved bits set or QoS 3.
    InvalidSubscriptionOptions,
    /// Subscription options with Retain Handling 3.
    InvalidRetainHandling,
    /// No Local set on a shared subscription.
    NoLocalOnSharedSubscription,
    /// A property identifier that MQTT 5.0 does not define.
    UnknownProperty,
    /// A property that this packet type may not carry.
    PropertyNotAllowed,
    /// A single-instance property given more than once.
    DuplicateProperty,
    /// A property with a value the spec forbids (e.g. Receive Maximum 0).
    InvalidPropertyValue,
    /// Authentication Data without Authentication Method.
    AuthDataWithoutMethod,
    /// A reason / return code not allowed for this packet type.
    InvalidReasonCode,
}

impl DecodeError {
    /// The MQTT 5.0 reason code to send (in CONNACK or DISCONNECT) for this error.
    pub fn reason_code(&self) -> u8 {
        use DecodeError::*;
        match self {
            PacketTooLarge => PACKET_TOO_LARGE,
            UnsupportedProtocolVersion => UNSUPPORTED_PROTOCOL_VERSION,
            TopicNameWildcard => TOPIC_NAME_INVALID,
            ZeroPacketId
            | PasswordWithoutUsername
            | EmptyTopicName
            | NoSubscribeFilters
            | NoUnsubscribeFilters
            | InvalidRetainHandling
            | NoLocalOnSharedSubscription
            | PropertyNotAllowed
            | DuplicateProperty
            | InvalidPropertyValue
            | AuthDataWithoutMethod
            | InvalidReasonCode => PROTOCOL_ERROR,
            MalformedVarInt
            | ReservedPacketType
            | InvalidHeaderFlags
            | InvalidQoS
            | DupWithQoS0
            | UnexpectedEnd
            | TrailingBytes
            | InvalidUtf8
            | NullCharacter
            | ConnectReservedFlag
            | WillFlagsWithoutWill
            | InvalidWillQoS
            | ConnAckReservedFlags
            | InvalidSubscriptionOptions
            | UnknownProperty => MALFORMED_PACKET,
        }
    }

    /// The 3.1.1 CONNACK return code for a CONNECT that failed with this error, if
    /// there is one (1: unacceptable protocol version); otherwise just close.
    pub fn connack_return_code_v3(&self) -> Option<u8> {
        match self {
            DecodeError::UnsupportedProtocolVersion => Some(1),
            _ => None,
        }
    }

    /// What is wrong, with the spec clause where there is one.
    pub fn message(&self) -> &'static str {
        use DecodeError::*;
        match self {
            PacketTooLarge => "[MQTT-3.2.2-15] packet exceeds the maximum packet size",
            MalformedVarInt => "[MQTT-1.5.5] variable byte integer longer than 4 bytes",
            ReservedPacketType => "[MQTT-2.1.2] reserved control packet type",
            InvalidHeaderFlags => "[MQTT-2.1.3-1] invalid fixed header flags",
            InvalidQoS => "[MQTT-3.3.1-4] PUBLISH with QoS 3",
            DupWithQoS0 => "[MQTT-3.3.1-2] DUP flag set on a QoS 0 PUBLISH",
            UnexpectedEnd => "[MQTT-2.1.4] packet shorter than its fields",
            TrailingBytes => "[MQTT-2.1.4] unexpected bytes after the last field of the packet",
            ZeroPacketId => "[MQTT-2.2.1-3] packet identifier 0",
            InvalidUtf8 => "[MQTT-1.5.4-1] ill-formed UTF-8 string",
            NullCharacter => "[MQTT-1.5.4-2] UTF-8 string contains U+0000",
            UnsupportedProtocolVersion => {
                "[MQTT-3.1.2-2] unsupported protocol name or protocol level"
            }
            ConnectReservedFlag => "[MQTT-3.1.2-3] CONNECT reserved flag is not 0",
            WillFlagsWithoutWill => {
                "[MQTT-3.1.2-11] [MQTT-3.1.2-13] Will QoS / Will Retain set without Will Flag"
            }
            InvalidWillQoS => "[MQTT-3.1.2-12] Will QoS 3",
            PasswordWithoutUsername => "[MQTT-3.1.2-22] password flag set without user name flag",
            ConnAckReservedFlags => "[MQTT-3.2.2-1] CONNACK reserved flag bits are not 0",
            TopicNameWildcard => "[MQTT-3.3.2-2] PUBLISH topic name contains a wildcard",
            EmptyTopicName => "[MQTT-4.7.3-1] [MQTT-3.3.2-1] empty PUBLISH topic name",
            NoSubscribeFilters => "[MQTT-3.8.3-3] SUBSCRIBE with no topic filter",
            NoUnsubscribeFilters => "[MQTT-3.10.3-2] UNSUBSCRIBE with no topic filter",
            InvalidSubscriptionOptions => {
                "[MQTT-3.8.3-5] subscription options with reserved bits set or QoS 3"
            }
            InvalidRetainHandling => "[MQTT-3.8.3.1] Retain Handling 3",
            NoLocalOnSharedSubscription => "[MQTT-3.8.3-4] No Local on a shared subscription",
            UnknownProperty => "[MQTT-2.2.2] unknown property identifier",
            PropertyNotAllowed => "[MQTT-2.2.2] property not allowed in this packet type",
            DuplicateProperty => "[MQTT-2.2.2] property included more than once",
            InvalidPropertyValue => "[MQTT-2.2.2] property value out of range",
            AuthDataWithoutMethod => {
                "[MQTT-3.1.2.11] Authentication Data without Authentication Method"
            }
            InvalidReasonCode => "[MQTT-2.4] reason code not allowed for this packet type",
        }
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

impl std::error::Error for DecodeError {}

/// Why a packet value cannot be written as MQTT bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EncodeError {
    /// A string or binary field longer than 65,535 bytes.
    FieldTooLong,
    /// The remaining length would exceed 268,435,455 bytes.
    PacketTooLarge,
    /// PUBLISH with QoS > 0 and no packet identifier.
    MissingPacketId,
    /// A packet identifier of 0.
    ZeroPacketId,
    /// A variable byte integer property over 268,435,455.
    VarIntTooLarge,
    /// The packet type does not exist in this protocol version (AUTH before 5.0).
    NotInVersion,
    /// A field value that has no wire encoding (Retain Handling > 2, Subscription Identifier 0).
    InvalidValue,
    /// A 5.0 property that this packet type may not carry (or a second one of a
    /// single-instance property).
    PropertyNotAllowed,
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            EncodeError::FieldTooLong => "string or binary field longer than 65535 bytes",
            EncodeError::PacketTooLarge => "packet larger than 268435455 bytes",
            EncodeError::MissingPacketId => "PUBLISH with QoS > 0 needs a packet identifier",
            EncodeError::ZeroPacketId => "packet identifier 0",
            EncodeError::VarIntTooLarge => "variable byte integer over 268435455",
            EncodeError::NotInVersion => "packet type does not exist in this protocol version",
            EncodeError::InvalidValue => "field value has no wire encoding",
            EncodeError::PropertyNotAllowed => "property not allowed in this packet type",
        })
    }
}

impl std::error::Error for EncodeError {}
