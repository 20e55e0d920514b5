//! Which reason / return codes each packet type may carry (MQTT 5.0 section 2.4 and
//! the per-packet tables; 3.1.1 CONNACK and SUBACK return codes).
//!
//! Owns: the allow-lists the decoder checks received codes against.
//! Must never: be consulted by the encoder (tests must be able to send odd codes).

use super::packet::ProtocolVersion;

const CONNACK_V5: &[u8] = &[
    0x00, 0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8A, 0x8C, 0x90, 0x95, 0x97,
    0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9F,
];
const PUBACK_PUBREC_V5: &[u8] = &[0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99];
const PUBREL_PUBCOMP_V5: &[u8] = &[0x00, 0x92];
const SUBACK_V5: &[u8] = &[
    0x00, 0x01, 0x02, 0x80, 0x83, 0x87, 0x8F, 0x91, 0x97, 0x9E, 0xA1, 0xA2,
];
const SUBACK_V3: &[u8] = &[0x00, 0x01, 0x02, 0x80];
const UNSUBACK_V5: &[u8] = &[0x00, 0x11, 0x80, 0x83, 0x87, 0x8F, 0x91];
const DISCONNECT_V5: &[u8] = &[
    0x00, 0x04, 0x80, 0x81, 0x82, 0x83, 0x87, 0x89, 0x8B, 0x8D, 0x8E, 0x8F, 0x90, 0x93, 0x94, 0x95,
    0x96, 0x97, 0x98, 0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9E, 0x9F, 0xA0, 0xA1, 0xA2,
];
const AUTH_V5: &[u8] = &[0x00, 0x18, 0x19];

/// The packet a code belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodeOf {
    ConnAck,
    /// PUBACK and PUBREC.
    PubAckRec,
    /// PUBREL and PUBCOMP.
    PubRelComp,
    SubAck,
    UnsubAck,
    Disconnect,
    Auth,
}

/// True when `code` may appear in that packet for that protocol version.
pub fn is_valid(of: CodeOf, version: ProtocolVersion, code: u8) -> bool {
    let v5 = version == ProtocolVersion::V5;
    match of {
        CodeOf::ConnAck if v5 => CONNACK_V5.contains(&code),
        CodeOf::ConnAck => code <= 5,
        CodeOf::SubAck if v5 => SUBACK_V5.contains(&code),
        CodeOf::SubAck => SUBACK_V3.contains(&code),
        // The rest carry codes only in 5.0; 3.x values are always 0.
        _ if !v5 => code == 0,
        CodeOf::PubAckRec => PUBACK_PUBREC_V5.contains(&code),
        CodeOf::PubRelComp => PUBREL_PUBCOMP_V5.contains(&code),
        CodeOf::UnsubAck => UNSUBACK_V5.contains(&code),
        CodeOf::Disconnect => DISCONNECT_V5.contains(&code),
        CodeOf::Auth => AUTH_V5.contains(&code),
    }
}
