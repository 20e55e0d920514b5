//! `Message`: an application message on its way from a publisher to subscribers.
//!
//! Owns: the routed message type and its conversions to and from PUBLISH. Pure data:
//! never does I/O and never looks at the clock. Cloning is cheap (refcounted `Bytes`/`Str`),
//! so one message can sit in many sessions' queues without copying its payload.

use std::sync::Arc;

use bytes::Bytes;

use crate::codec::{LastWill, Properties, Props, Publish, QoS, Str};

/// An application message being routed.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Message {
    pub topic: Str,
    pub payload: Bytes,
    pub qos: QoS,
    pub retain: bool,
    /// 5.0 properties that travel with the message (never the per-connection topic alias
    /// or the per-subscription identifiers); `None` when there are none (always for 3.x).
    /// Shared, not inline: a message is cloned into every subscriber's queue, and inline
    /// properties made it 504 bytes to copy instead of 112.
    pub properties: Option<Arc<Properties>>,
    /// Client id of the publisher; empty for messages from the API, `$SYS` or the broker.
    pub publisher: Str,
}

impl Message {
    /// A message with no properties.
    pub fn new(
        topic: impl Into<Str>,
        payload: impl Into<Bytes>,
        qos: QoS,
        retain: bool,
    ) -> Message {
        Message {
            topic: topic.into(),
            payload: payload.into(),
            qos,
            retain,
            properties: None,
            publisher: Str::default(),
        }
    }

    /// The message a client PUBLISH carries (retain as published; connection-scoped
    /// properties removed).
    /// Takes the packet by value: its topic and payload move into the message (no
    /// reference-count round trip per received PUBLISH).
    pub fn from_publish(publish: Publish, publisher: &Str) -> Message {
        let properties = if publish.properties.is_empty() {
            None
        } else {
            let mut properties = publish.properties.into_inner();
            properties.topic_alias = None;
            properties.subscription_identifiers.clear();
            shared(properties)
        };
        Message {
            topic: publish.topic,
            payload: publish.payload,
            qos: publish.qos,
            retain: publish.retain,
            properties,
            publisher: publisher.clone(),
        }
    }

    /// The message a will becomes when the broker publishes it.
    pub fn from_will(will: &LastWill, publisher: &Str) -> Message {
        let mut properties = (*will.properties).clone();
        // Will properties that are not message properties.
        properties.will_delay_interval = None;
        let properties = shared(properties);
        Message {
            topic: will.topic.clone(),
            payload: will.payload.clone(),
            qos: will.qos,
            retain: will.retain,
            properties,
            publisher: publisher.clone(),
        }
    }

    /// The PUBLISH packet that delivers this message (flags and id as given).
    pub fn to_publish(&self, packet_id: Option<u16>, dup: bool) -> Publish {
        Publish {
            dup,
            qos: self.qos,
            retain: self.retain,
            topic: self.topic.clone(),
            packet_id,
            payload: self.payload.clone(),
            properties: self
                .properties
                .as_deref()
                .map_or_else(Props::default, |p| p.clone().into()),
        }
    }

    /// A broker-generated `$SYS` message (QoS 0, not retained, no publisher).
    pub fn system(topic: String, payload: String) -> Message {
        Message::new(
            Str::from(topic),
            Bytes::from(payload),
            QoS::AtMostOnce,
            false,
        )
    }

    /// True for `$SYS/...` topics (not counted in the sent-message metrics, as in EMQ X).
    pub fn is_sys(&self) -> bool {
        self.topic.starts_with("$SYS/")
    }
}

/// `None` for an empty set, so that a message without properties carries no allocation.
fn shared(properties: Properties) -> Option<Arc<Properties>> {
    (!properties.is_empty()).then(|| Arc::new(properties))
}
