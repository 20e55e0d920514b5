//! MQTT 5.0 properties: one struct holding every property, each optional.
//!
//! Owns: the property set type. The decoder checks which properties a packet type may
//! carry ([MQTT-2.2.2]); the struct itself allows all of them. Pure data.
//! 3.x packets always carry `Properties::default()`.

use bytes::Bytes;

use super::str::Str;

/// Every MQTT 5.0 property (spec 2.2.2.2). Absent ones are `None` / empty.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Properties {
    pub payload_format_indicator: Option<u8>,
    pub message_expiry_interval: Option<u32>,
    pub content_type: Option<Str>,
    pub response_topic: Option<Str>,
    pub correlation_data: Option<Bytes>,
    /// May repeat in PUBLISH (one per matching subscription).
    pub subscription_identifiers: Vec<u32>,
    pub session_expiry_interval: Option<u32>,
    pub assigned_client_identifier: Option<Str>,
    pub server_keep_alive: Option<u16>,
    pub authentication_method: Option<Str>,
    pub authentication_data: Option<Bytes>,
    pub request_problem_information: Option<u8>,
    pub will_delay_interval: Option<u32>,
    pub request_response_information: Option<u8>,
    pub response_information: Option<Str>,
    pub server_reference: Option<Str>,
    pub reason_string: Option<Str>,
    pub receive_maximum: Option<u16>,
    pub topic_alias_maximum: Option<u16>,
    pub topic_alias: Option<u16>,
    pub maximum_qos: Option<u8>,
    pub retain_available: Option<u8>,
    pub user_properties: Vec<(Str, Str)>,
    pub maximum_packet_size: Option<u32>,
    pub wildcard_subscription_available: Option<u8>,
    pub subscription_identifier_available: Option<u8>,
    pub shared_subscription_available: Option<u8>,
}

impl Properties {
    /// True when no property is set (the common case, and always for 3.x).
    pub fn is_empty(&self) -> bool {
        *self == Properties::default()
    }
}
