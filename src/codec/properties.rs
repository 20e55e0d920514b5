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
    /// No property set: what [`Props`] reads as when it holds none.
    pub const EMPTY: Properties = Properties {
        payload_format_indicator: None,
        message_expiry_interval: None,
        content_type: None,
        response_topic: None,
        correlation_data: None,
        subscription_identifiers: Vec::new(),
        session_expiry_interval: None,
        assigned_client_identifier: None,
        server_keep_alive: None,
        authentication_method: None,
        authentication_data: None,
        request_problem_information: None,
        will_delay_interval: None,
        request_response_information: None,
        response_information: None,
        server_reference: None,
        reason_string: None,
        receive_maximum: None,
        topic_alias_maximum: None,
        topic_alias: None,
        maximum_qos: None,
        retain_available: None,
        user_properties: Vec::new(),
        maximum_packet_size: None,
        wildcard_subscription_available: None,
        subscription_identifier_available: None,
        shared_subscription_available: None,
    };

    /// True when no property is set (the common case, and always for 3.x).
    pub fn is_empty(&self) -> bool {
        *self == Properties::EMPTY
    }
}

static NO_PROPERTIES: Properties = Properties::EMPTY;

/// The properties a packet carries, boxed: nothing at all when none is set (always for 3.x,
/// and most 5.0 packets), else one heap [`Properties`]. Inline, the 400-byte set made every
/// [`crate::codec::Packet`] 472 bytes, copied whole at each move on the hot path (decode,
/// session actions, queues); boxed, a packet is a fraction of that.
///
/// Reads go through `Deref` (an absent set reads as [`Properties::EMPTY`]); a write through
/// `DerefMut` allocates the set on first use.
#[derive(Clone, Default)]
pub struct Props(Option<Box<Properties>>);

impl Props {
    /// True when no property is set; without looking when none was ever allocated.
    pub fn is_empty(&self) -> bool {
        self.0.as_deref().is_none_or(Properties::is_empty)
    }

    /// The property set, by value.
    pub fn into_inner(self) -> Properties {
        self.0.map_or(Properties::EMPTY, |b| *b)
    }
}

impl std::ops::Deref for Props {
    type Target = Properties;
    fn deref(&self) -> &Properties {
        self.0.as_deref().unwrap_or(&NO_PROPERTIES)
    }
}

impl std::ops::DerefMut for Props {
    fn deref_mut(&mut self) -> &mut Properties {
        self.0.get_or_insert_with(Box::default)
    }
}

impl From<Properties> for Props {
    fn from(p: Properties) -> Props {
        if p.is_empty() {
            Props(None)
        } else {
            Props(Some(Box::new(p)))
        }
    }
}

/// Equal when the property sets are: an allocated but empty set equals an absent one.
impl PartialEq for Props {
    fn eq(&self, other: &Props) -> bool {
        **self == **other
    }
}

impl Eq for Props {}

impl std::fmt::Debug for Props {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        (**self).fmt(f)
    }
}
