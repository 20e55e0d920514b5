//! A new subscription's retained messages against what it already got live.
//!
//! A SUBSCRIBE's routes take effect at once, and the retained messages matching its filters
//! are asked of the topics' owner shards after the SUBACK. A retained message published in
//! between reaches the client live and may also be in the answer: it would arrive twice. So,
//! while a client's retained messages are on their way, the shard notes the messages with the
//! RETAIN flag it delivers to that client, and the answer leaves those out. A message is the
//! same one when its topic matches and its payload is the same stretch of the same buffer (the
//! retained store keeps the routed message itself; the note holds the payload, so the buffer
//! cannot be reused meanwhile).
//!
//! Owns: per client with retained messages on their way, how many SUBSCRIBEs wait and the
//! retained-flag messages delivered live since the first began. Runs on the client's shard;
//! pure. Must never: note anything for a client with nothing on its way (the message path
//! pays one emptiness check for a retained-flag message, nothing for others).

use bytes::Bytes;

use crate::codec::Str;
use crate::fastmap::FastMap;
use crate::session::Message;

/// See the module doc.
#[derive(Default)]
pub struct RetainedOverlap {
    waiting: FastMap<Str, Waiting>,
}

#[derive(Default)]
struct Waiting {
    subscribes: u32,
    delivered: Vec<(Str, Bytes)>,
}

impl RetainedOverlap {
    /// A SUBSCRIBE of `client` will be sent retained messages: note live deliveries from now.
    pub fn begin(&mut self, client: &Str) {
        self.waiting.entry(client.clone()).or_default().subscribes += 1;
    }

    /// That SUBSCRIBE's retained messages were sent (or the client left).
    pub fn end(&mut self, client: &Str) {
        if let Some(w) = self.waiting.get_mut(client) {
            w.subscribes -= 1;
            if w.subscribes == 0 {
                self.waiting.remove(client);
            }
        }
    }

    /// No client has retained messages on their way.
    pub fn is_empty(&self) -> bool {
        self.waiting.is_empty()
    }

    /// `msg` was delivered live to `client`: noted if it carries RETAIN and the client waits.
    pub fn delivered(&mut self, client: &Str, msg: &Message) {
        if !msg.retain {
            return;
        }
        if let Some(w) = self.waiting.get_mut(client) {
            w.delivered.push((msg.topic.clone(), msg.payload.clone()));
        }
    }

    /// Whether `msg`, a retained message for `client`, already reached it live.
    pub fn already_delivered(&self, client: &Str, msg: &Message) -> bool {
        self.waiting.get(client).is_some_and(|w| {
            w.delivered.iter().any(|(topic, payload)| {
                *topic == msg.topic
                    && payload.as_ptr() == msg.payload.as_ptr()
                    && payload.len() == msg.payload.len()
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::QoS;

    fn msg(topic: &str, payload: Bytes, retain: bool) -> Message {
        Message::new(topic, payload, QoS::AtMostOnce, retain)
    }

    #[test]
    fn a_message_delivered_live_while_retained_ones_are_on_their_way_is_left_out() {
        let mut o = RetainedOverlap::default();
        let c = Str::from("c");
        let live = msg("t", Bytes::from_static(b"x"), true);
        // Before the SUBSCRIBE: nothing noted.
        o.delivered(&c, &live);
        assert!(o.is_empty());
        o.begin(&c);
        o.delivered(&c, &live);
        // The retained store's copy shares the payload buffer.
        let stored = live.clone();
        assert!(o.already_delivered(&c, &stored));
        // The same bytes in another buffer, or another topic, are another message.
        let other = msg("t", Bytes::copy_from_slice(b"x"), true);
        assert!(!o.already_delivered(&c, &other));
        assert!(!o.already_delivered(&c, &msg("u", live.payload.clone(), true)));
        assert!(!o.already_delivered(&Str::from("d"), &stored));
        o.end(&c);
        assert!(o.is_empty());
        assert!(!o.already_delivered(&c, &stored));
    }

    #[test]
    fn only_retained_flag_messages_are_noted_and_until_the_last_subscribe_ends() {
        let mut o = RetainedOverlap::default();
        let c = Str::from("c");
        o.begin(&c);
        o.begin(&c);
        let plain = msg("t", Bytes::from_static(b"p"), false);
        o.delivered(&c, &plain);
        assert!(!o.already_delivered(&c, &plain));
        let kept = msg("t", Bytes::from_static(b"k"), true);
        o.delivered(&c, &kept);
        o.end(&c);
        assert!(o.already_delivered(&c, &kept), "one SUBSCRIBE still waits");
        o.end(&c);
        assert!(o.is_empty());
    }
}
