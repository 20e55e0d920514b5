//! One shard's retained messages: the topics that hash to it (`home_shard(topic)`), each with
//! the last retained message published on it and when it was stored; the store's limits
//! (count, payload size, expiry) and the lookups for new subscriptions.
//!
//! Owns: the table and every decision about it. Pure: time comes in as `now`, the limits as a
//! value; the shard that owns it calls it and carries out the rest (replies, deliveries).
//! Must never: keep a message past its expiry (the retainer's or its own) once asked (lookups and stores expire first),
//! store beyond its share of the node's count limit, or keep a payload over the size limit.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::codec::Str;
use crate::session::Message;

/// The retainer's limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RetainLimits {
    /// Node-wide count (0 = unlimited); a store of `shards` shards keeps at most its share.
    pub max_messages: u64,
    /// Largest payload kept, in bytes.
    pub max_payload_size: u64,
    /// Seconds a retained message lives (0 = until replaced or cleared).
    pub expiry_secs: u64,
}

/// What [`RetainedStore::store`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    /// Kept (new or replacing the topic's previous one).
    Kept,
    /// An empty payload cleared the topic [MQTT-3.3.1-10].
    Cleared,
    /// Not kept: the payload is over `max_payload_size`, or the store is at its share of
    /// `max_messages` and the topic is new.
    Refused,
}

/// The retained messages of one shard.
#[derive(Debug, Default)]
pub struct RetainedStore {
    messages: HashMap<Str, (Message, Instant)>,
}

impl RetainedStore {
    /// Stores `msg` as its topic's retained message (an empty payload clears it), within
    /// `limits` for a node of `shards` shards. The stored copy has RETAIN set.
    pub fn store(
        &mut self,
        mut msg: Message,
        limits: RetainLimits,
        shards: usize,
        now: Instant,
    ) -> Stored {
        self.expire(limits, now);
        if msg.payload.is_empty() {
            self.messages.remove(&msg.topic);
            return Stored::Cleared;
        }
        let limit = limits.max_messages as usize;
        if msg.payload.len() as u64 > limits.max_payload_size
            || (limit > 0
                && !self.messages.contains_key(&msg.topic)
                && self.messages.len() * shards.max(1) >= limit)
        {
            return Stored::Refused;
        }
        msg.retain = true;
        self.messages.insert(msg.topic.clone(), (msg, now));
        Stored::Kept
    }

    /// The retained messages whose topic `filter` matches (expired ones are dropped first:
    /// past the retainer's expiry, or past their own 5.0 Message Expiry Interval).
    pub fn matching(&mut self, filter: &str, limits: RetainLimits, now: Instant) -> Vec<Message> {
        self.expire(limits, now);
        // The walk below visits every message anyway.
        self.messages.retain(|_, (m, _)| !m.expired(now));
        self.messages
            .values()
            .filter(|(m, _)| crate::topic::matches(filter, &m.topic))
            .map(|(m, _)| m.clone())
            .collect()
    }

    /// Drops the messages older than `limits.expiry_secs` (none when it is 0).
    pub fn expire(&mut self, limits: RetainLimits, now: Instant) {
        if limits.expiry_secs == 0 {
            return;
        }
        let ttl = Duration::from_secs(limits.expiry_secs);
        self.messages
            .retain(|_, (_, stored)| now.saturating_duration_since(*stored) < ttl);
    }

    /// Every message retained here (for a snapshot of the journal).
    pub fn all(&self) -> Vec<Message> {
        self.messages.values().map(|(m, _)| m.clone()).collect()
    }

    /// How many messages are retained here.
    pub fn len(&self) -> usize {
        self.messages.len()
    }

    /// True when none is.
    pub fn is_empty(&self) -> bool {
        self.messages.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::QoS;

    fn msg(topic: &str, payload: &str) -> Message {
        Message::new(topic, payload.to_string(), QoS::AtLeastOnce, true)
    }

    const OPEN: RetainLimits = RetainLimits {
        max_messages: 0,
        max_payload_size: 1024,
        expiry_secs: 0,
    };

    #[test]
    fn the_last_message_per_topic_is_kept_and_an_empty_one_clears_it() {
        let now = Instant::now();
        let mut s = RetainedStore::default();
        assert_eq!(s.store(msg("a/b", "1"), OPEN, 1, now), Stored::Kept);
        assert_eq!(s.store(msg("a/b", "2"), OPEN, 1, now), Stored::Kept);
        assert_eq!(s.store(msg("a/c", "3"), OPEN, 1, now), Stored::Kept);
        let mut got: Vec<_> = s
            .matching("a/+", OPEN, now)
            .into_iter()
            .map(|m| (m.topic.to_string(), m.payload.to_vec(), m.retain))
            .collect();
        got.sort();
        assert_eq!(
            got,
            vec![
                ("a/b".into(), b"2".to_vec(), true),
                ("a/c".into(), b"3".to_vec(), true)
            ]
        );
        assert_eq!(s.store(msg("a/b", ""), OPEN, 1, now), Stored::Cleared);
        assert_eq!(s.len(), 1);
        assert!(s.matching("x/#", OPEN, now).is_empty());
    }

    #[test]
    fn limits_refuse_large_payloads_and_new_topics_over_the_shards_share() {
        let now = Instant::now();
        let limits = RetainLimits {
            max_messages: 4,
            max_payload_size: 3,
            expiry_secs: 0,
        };
        let mut s = RetainedStore::default();
        assert_eq!(s.store(msg("big", "1234"), limits, 2, now), Stored::Refused);
        // Two shards: this one keeps 2 of the node's 4.
        assert_eq!(s.store(msg("t1", "x"), limits, 2, now), Stored::Kept);
        assert_eq!(s.store(msg("t2", "x"), limits, 2, now), Stored::Kept);
        assert_eq!(s.store(msg("t3", "x"), limits, 2, now), Stored::Refused);
        assert_eq!(
            s.store(msg("t1", "y"), limits, 2, now),
            Stored::Kept,
            "a replacement"
        );
        assert_eq!(s.len(), 2);
    }

    #[test]
    fn a_message_leaves_when_its_own_expiry_interval_runs_out() {
        let t0 = Instant::now();
        let mut s = RetainedStore::default();
        let mut m = msg("t", "x");
        m.expires_at = Some(t0 + Duration::from_secs(5));
        s.store(m, OPEN, 1, t0);
        s.store(msg("u", "y"), OPEN, 1, t0);
        assert_eq!(s.matching("#", OPEN, t0 + Duration::from_secs(4)).len(), 2);
        let left = s.matching("#", OPEN, t0 + Duration::from_secs(5));
        assert_eq!(left.len(), 1);
        assert_eq!(&*left[0].topic, "u");
        assert_eq!(s.len(), 1);
    }

    #[test]
    fn messages_expire_after_the_interval_and_not_before() {
        let t0 = Instant::now();
        let limits = RetainLimits {
            expiry_secs: 10,
            ..OPEN
        };
        let mut s = RetainedStore::default();
        s.store(msg("t", "x"), limits, 1, t0);
        assert_eq!(
            s.matching("t", limits, t0 + Duration::from_secs(9)).len(),
            1
        );
        assert!(s
            .matching("t", limits, t0 + Duration::from_secs(10))
            .is_empty());
        assert!(s.is_empty());
    }
}
