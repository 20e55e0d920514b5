//! Protocol violations a client can commit against the session, named after spec clauses.
//!
//! Owns: the `Violation` enum, its spec clause, message and MQTT 5.0 reason code.
//! Pure data: never does I/O and never looks at the clock. A violation always ends the
//! connection (`CloseReason::ProtocolError`); for 5.0 clients the glue may first send a
//! DISCONNECT carrying [`Violation::reason_code`].

use std::fmt;

/// A broken protocol rule found by the session (the codec finds the malformed-packet ones).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Violation {
    /// [MQTT-3.1.0-2] a second CONNECT on a connection.
    SecondConnect,
    /// [MQTT-3.3.2-2] PUBLISH topic name is empty, has wildcards or NUL.
    PublishTopicInvalid,
    /// [MQTT-3.3.1-2] DUP set on a QoS 0 PUBLISH.
    PublishDupOnQos0,
    /// [MQTT-2.3.1-1] a QoS 1/2 PUBLISH without a non-zero packet identifier.
    PublishPacketIdMissing,
    /// [MQTT-3.2.2-11] (5.0; EMQ X applies it to 3.x too) PUBLISH QoS above the allowed maximum.
    PublishQosNotAllowed,
    /// [MQTT-3.8.3-3] SUBSCRIBE without any topic filter.
    SubscribeEmpty,
    /// [MQTT-3.8.3-4] (5.0) No Local set on a shared subscription.
    SharedSubscriptionNoLocal,
    /// [MQTT-3.10.3-2] UNSUBSCRIBE without any topic filter.
    UnsubscribeEmpty,
    /// [MQTT-2.2.1] a packet only a server sends (CONNACK, SUBACK, UNSUBACK, PINGRESP).
    ServerToClientPacket,
    /// [MQTT-4.12.0-1] (5.0) AUTH while no enhanced authentication method is supported.
    AuthNotSupported,
    /// [MQTT-3.3.4-7] (5.0) more QoS 2 PUBLISHes awaiting PUBREL than the Receive Maximum the
    /// server announced (`max_awaiting_rel`).
    ReceiveMaximumExceeded,
    /// [MQTT-3.3.2-8] (5.0) a Topic Alias of 0 or above the Topic Alias Maximum the server
    /// announced.
    TopicAliasInvalid,
    /// [MQTT-3.3.4] (5.0) an empty topic name with a Topic Alias the connection never bound,
    /// or with none at all.
    TopicAliasUnknown,
    /// [MQTT-3.14.2-2] (5.0) DISCONNECT sets a Session Expiry Interval when CONNECT's was 0.
    SessionExpiryAtDisconnect,
    /// [MQTT-3.3.2-13] (5.0) a QoS 0 PUBLISH with Payload Format Indicator 1 whose payload is
    /// not UTF-8 (QoS 1/2 ones are refused with a PUBACK/PUBREC 0x99 instead).
    PayloadFormatInvalid,
    /// [MQTT-3.3.2-14] (5.0) a Response Topic with wildcards.
    ResponseTopicInvalid,
    /// A PUBLISH topic with more levels than `mqtt.max_topic_levels` (a server limit, not a
    /// spec rule: the clause names the setting; EMQ X ends such a connection the same way).
    PublishTopicTooDeep,
}

impl Violation {
    /// The spec clause, e.g. `"MQTT-3.3.2-2"`.
    pub fn clause(self) -> &'static str {
        match self {
            Violation::SecondConnect => "MQTT-3.1.0-2",
            Violation::PublishTopicInvalid => "MQTT-3.3.2-2",
            Violation::PublishDupOnQos0 => "MQTT-3.3.1-2",
            Violation::PublishPacketIdMissing => "MQTT-2.3.1-1",
            Violation::PublishQosNotAllowed => "MQTT-3.2.2-11",
            Violation::SubscribeEmpty => "MQTT-3.8.3-3",
            Violation::SharedSubscriptionNoLocal => "MQTT-3.8.3-4",
            Violation::UnsubscribeEmpty => "MQTT-3.10.3-2",
            Violation::ServerToClientPacket => "MQTT-2.2.1",
            Violation::AuthNotSupported => "MQTT-4.12.0-1",
            Violation::ReceiveMaximumExceeded => "MQTT-3.3.4-7",
            Violation::TopicAliasInvalid => "MQTT-3.3.2-8",
            Violation::TopicAliasUnknown => "MQTT-3.3.4",
            Violation::SessionExpiryAtDisconnect => "MQTT-3.14.2-2",
            Violation::PayloadFormatInvalid => "MQTT-3.3.2-13",
            Violation::ResponseTopicInvalid => "MQTT-3.3.2-14",
            Violation::PublishTopicTooDeep => "mqtt.max_topic_levels",
        }
    }

    /// What went wrong, for logs.
    pub fn message(self) -> &'static str {
        match self {
            Violation::SecondConnect => "second CONNECT on a connection",
            Violation::PublishTopicInvalid => "PUBLISH topic name is empty or contains wildcards",
            Violation::PublishDupOnQos0 => "DUP flag set on a QoS 0 PUBLISH",
            Violation::PublishPacketIdMissing => "QoS 1/2 PUBLISH without a packet identifier",
            Violation::PublishQosNotAllowed => "PUBLISH QoS above the maximum allowed",
            Violation::SubscribeEmpty => "SUBSCRIBE without topic filters",
            Violation::SharedSubscriptionNoLocal => "No Local set on a shared subscription",
            Violation::UnsubscribeEmpty => "UNSUBSCRIBE without topic filters",
            Violation::ServerToClientPacket => "packet that only a server sends",
            Violation::AuthNotSupported => "AUTH without a supported authentication method",
            Violation::ReceiveMaximumExceeded => {
                "more QoS 2 PUBLISHes in flight than Receive Maximum"
            }
            Violation::TopicAliasInvalid => "Topic Alias 0 or above the Topic Alias Maximum",
            Violation::TopicAliasUnknown => "empty topic name without a bound Topic Alias",
            Violation::SessionExpiryAtDisconnect => {
                "Session Expiry Interval set at DISCONNECT after 0 at CONNECT"
            }
            Violation::PayloadFormatInvalid => {
                "Payload Format Indicator 1 with a non-UTF-8 payload"
            }
            Violation::ResponseTopicInvalid => "Response Topic with wildcards",
            Violation::PublishTopicTooDeep => "PUBLISH topic with more levels than allowed",
        }
    }

    /// The MQTT 5.0 DISCONNECT reason code for this violation.
    pub fn reason_code(self) -> u8 {
        match self {
            Violation::PublishTopicInvalid | Violation::PublishTopicTooDeep => 0x90, // Topic Name invalid
            Violation::PublishQosNotAllowed => 0x9B, // QoS not supported
            Violation::AuthNotSupported => 0x8C,     // Bad authentication method
            Violation::ReceiveMaximumExceeded => 0x93, // Receive Maximum exceeded
            Violation::TopicAliasInvalid => 0x94,    // Topic Alias invalid
            Violation::PayloadFormatInvalid => 0x99, // Payload format invalid
            _ => 0x82,                               // Protocol Error
        }
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}] {}", self.clause(), self.message())
    }
}

impl std::error::Error for Violation {}
