//! `Message`: an application message on its way from a publisher to subscribers.
//!
//! Owns: the routed message type and its conversions to and from PUBLISH. Pure data:
//! never does I/O and never looks at the clock. Cloning is cheap (refcounted `Bytes`/`Str`),
//! so one message can sit in many sessions' queues without copying its payload.

use std::sync::Arc;
use std::time::{Duration, Instant};

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
    /// 5.0 Message Expiry Interval, as the time it runs out: a copy not yet sent by then is
    /// discarded; one sent later carries what is left of the interval.
    pub expires_at: Option<Instant>,
    /// The sequence number a durable session gave its copy (0: not recorded; see `persist`).
    pub seq: u64,
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
            expires_at: None,
            seq: 0,
        }
    }

    /// The message a client PUBLISH received at `now` carries (retain as published;
    /// connection-scoped properties removed; a Message Expiry Interval counted from `now`).
    /// Takes the packet by value: its topic and payload move into the message (no
    /// reference-count round trip per received PUBLISH).
    pub fn from_publish(publish: Publish, publisher: &Str, now: Instant) -> Message {
        let properties = if publish.properties.is_empty() {
            None
        } else {
            let mut properties = publish.properties.into_inner();
            properties.topic_alias = None;
            properties.subscription_identifiers.clear();
            shared(properties)
        };
        let expires_at = expiry_from(properties.as_deref(), now);
        Message {
            topic: publish.topic,
            payload: publish.payload,
            qos: publish.qos,
            retain: publish.retain,
            properties,
            publisher: publisher.clone(),
            expires_at,
            seq: 0,
        }
    }

    /// The message a will becomes when the broker publishes it at `now`.
    pub fn from_will(will: &LastWill, publisher: &Str, now: Instant) -> Message {
        let mut properties = (*will.properties).clone();
        // Will properties that are not message properties.
        properties.will_delay_interval = None;
        let properties = shared(properties);
        let expires_at = expiry_from(properties.as_deref(), now);
        Message {
            topic: will.topic.clone(),
            payload: will.payload.clone(),
            qos: will.qos,
            retain: will.retain,
            properties,
            publisher: publisher.clone(),
            expires_at,
            seq: 0,
        }
    }

    /// True when the message's expiry interval has run out at `now`.
    pub fn expired(&self, now: Instant) -> bool {
        self.expires_at.is_some_and(|at| now >= at)
    }

    /// What is left at `now` of the message's expiry interval, in whole seconds rounded up
    /// (what a PUBLISH sent now carries [MQTT-3.3.2-6]); `None` when it has none.
    pub fn expiry_left(&self, now: Instant) -> Option<u32> {
        self.expires_at.map(|at| {
            let left = at.saturating_duration_since(now);
            let secs = left.as_secs() + u64::from(left.subsec_nanos() > 0);
            u32::try_from(secs).unwrap_or(u32::MAX)
        })
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

/// When a message with these properties, published at `now`, expires.
fn expiry_from(properties: Option<&Properties>, now: Instant) -> Option<Instant> {
    let secs = properties?.message_expiry_interval?;
    now.checked_add(Duration::from_secs(u64::from(secs)))
}

/// `None` for an empty set, so that a message without properties carries no allocation.
fn shared(properties: Properties) -> Option<Arc<Properties>> {
    (!properties.is_empty()).then(|| Arc::new(properties))
}
