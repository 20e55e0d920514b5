//! The message queue: messages for the client that are not yet in the inflight window,
//! because the window is full or the client is offline.
//!
//! Owns: the bounded FIFO and its overflow policy (EMQ X: when full, drop the oldest QoS 0
//! message if there is one, else the oldest message). Pure: never does I/O and never looks
//! at the clock. Counting drops in the shard metrics is the caller's job; the queue keeps
//! its own lifetime drop count for the management API.

use super::lazy_deque::LazyDeque;

use super::message::Message;
use crate::codec::QoS;

/// A bounded FIFO of messages waiting to be sent.
#[derive(Debug, Clone)]
pub struct MQueue {
    items: LazyDeque<Message>,
    /// 0 means unbounded.
    max_len: u32,
    /// Flow control holds this client's publishers back (see [`MQueue::set_held`]): the
    /// bound drops QoS 0 messages only.
    held: bool,
    /// QoS 0 messages currently queued (so that overflow finds them without a scan when none).
    qos0_len: u32,
    dropped: u64,
    /// Memory the queued messages hold, as [`entry_bytes`] counts it.
    bytes: usize,
}

/// What one queued message costs: the entry, its topic and its payload (a payload shared with
/// other queues counts in each: an upper bound).
pub fn entry_bytes(msg: &Message) -> usize {
    std::mem::size_of::<Message>() + msg.topic.len() + msg.payload.len()
}

impl MQueue {
    /// An empty queue holding at most `max_len` messages (0 = unbounded).
    pub fn new(max_len: usize) -> MQueue {
        MQueue {
            items: LazyDeque::default(),
            // Bounds beyond u32::MAX messages are as good as none.
            max_len: u32::try_from(max_len).unwrap_or(0),
            held: false,
            qos0_len: 0,
            dropped: 0,
            bytes: 0,
        }
    }

    /// Appends `msg`; if the queue was full, drops and returns the message that made room
    /// (the oldest QoS 0 message if there is one, else the oldest). While held, a full queue
    /// drops only QoS 0: the oldest queued one, else `msg` itself when it is QoS 0; QoS 1/2
    /// messages then go past the bound.
    pub fn push(&mut self, msg: Message) -> Option<Message> {
        let full = self.max_len > 0 && self.items.len() >= self.max_len as usize;
        let dropped = if !full {
            None
        } else if self.qos0_len > 0 {
            let victim = self
                .items
                .iter()
                .position(|m| m.qos == QoS::AtMostOnce)
                .unwrap_or(0);
            self.take(victim)
        } else if !self.held {
            self.take(0)
        } else if msg.qos == QoS::AtMostOnce {
            self.dropped += 1;
            return Some(msg);
        } else {
            None
        };
        if msg.qos == QoS::AtMostOnce {
            self.qos0_len += 1;
        }
        self.bytes += entry_bytes(&msg);
        self.items.push_back(msg);
        dropped
    }

    fn take(&mut self, at: usize) -> Option<Message> {
        let old = self.items.remove(at);
        if let Some(old) = &old {
            self.forget(old);
            self.dropped += 1;
        }
        old
    }

    /// While `held`, QoS 1/2 messages are never dropped for the bound: they were
    /// acknowledged to publishers that flow control is holding back, sent before the hold
    /// reached them. Set back to false when the hold ends (the subscriber drained, stalled or
    /// left); from then on every push over the bound drops one again.
    pub fn set_held(&mut self, held: bool) {
        self.held = held;
    }

    /// The oldest message.
    pub fn front(&self) -> Option<&Message> {
        self.items.front()
    }

    /// Removes the oldest message.
    pub fn pop(&mut self) -> Option<Message> {
        let msg = self.items.pop_front()?;
        self.forget(&msg);
        Some(msg)
    }

    /// Records a message that was dropped before reaching the queue (e.g. QoS 0 offline).
    pub fn count_drop(&mut self) {
        self.dropped += 1;
    }

    /// Messages queued now.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Frees the queue's storage when it is empty (a backlog's high-water mark is not kept
    /// once it drained).
    /// Returns the bytes freed.
    pub fn release_idle(&mut self) -> usize {
        self.items.release_if_empty()
    }

    /// True when nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The bound (0 = unbounded).
    pub fn max_len(&self) -> usize {
        self.max_len as usize
    }

    /// Messages dropped since the session was created.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    fn forget(&mut self, msg: &Message) {
        if msg.qos == QoS::AtMostOnce {
            self.qos0_len -= 1;
        }
        self.bytes -= entry_bytes(msg);
    }

    /// The queued messages, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = &Message> {
        self.items.iter()
    }

    /// Memory the queued messages hold ([`entry_bytes`] each).
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Drops one message to give memory back (the broker's queue budget ran out): the oldest
    /// QoS 0 message if there is one, else the oldest. Counted in [`MQueue::dropped`].
    pub fn shed(&mut self) -> Option<Message> {
        let victim = if self.qos0_len > 0 {
            self.items
                .iter()
                .position(|m| m.qos == QoS::AtMostOnce)
                .unwrap_or(0)
        } else {
            0
        };
        self.take(victim)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn held_queues_keep_every_qos1_message_and_drop_only_qos0() {
        let mut q = MQueue::new(2);
        q.set_held(true);
        for i in 0..4 {
            assert_eq!(q.push(m(&format!("t{i}"), QoS::AtLeastOnce)), None);
        }
        assert_eq!(q.len(), 4, "QoS 1 goes past the bound while held");
        assert_eq!(
            q.push(m("z", QoS::AtMostOnce)).map(|d| d.topic.to_string()),
            Some("z".to_string()),
            "a QoS 0 message over the bound is dropped itself"
        );
        q.set_held(false);
        assert_eq!(
            q.push(m("t5", QoS::AtLeastOnce))
                .map(|d| d.topic.to_string()),
            Some("t0".to_string()),
            "over the plain bound again: every push drops one"
        );
        assert_eq!(q.len(), 4);
        assert_eq!(q.dropped(), 2);
    }

    #[test]
    fn a_drained_backlog_gives_its_storage_back() {
        let mut q = MQueue::new(1000);
        for i in 0..500 {
            q.push(m(&format!("t{i}"), QoS::AtLeastOnce));
        }
        assert_eq!(q.release_idle(), 0, "a queue holding messages keeps them");
        assert_eq!(q.len(), 500);
        while q.pop().is_some() {}
        assert!(q.release_idle() >= 500 * std::mem::size_of::<Message>());
        assert!(!q.items.is_allocated(), "the drained backlog holds nothing");
        assert_eq!(q.bytes(), 0);
        q.push(m("again", QoS::AtLeastOnce));
        assert_eq!(q.len(), 1, "and takes messages again");
    }

    fn m(topic: &str, qos: QoS) -> Message {
        Message::new(topic, "", qos, false)
    }

    fn topics(q: &MQueue) -> Vec<String> {
        q.items.iter().map(|m| m.topic.to_string()).collect()
    }

    #[test]
    fn overflow_drops_oldest_qos0_first() {
        let mut q = MQueue::new(3);
        assert!(q.push(m("a", QoS::AtLeastOnce)).is_none());
        assert!(q.push(m("b", QoS::AtMostOnce)).is_none());
        assert!(q.push(m("c", QoS::AtMostOnce)).is_none());
        assert_eq!(
            q.push(m("d", QoS::ExactlyOnce)).unwrap().topic.as_str(),
            "b"
        );
        assert_eq!(
            q.push(m("e", QoS::AtLeastOnce)).unwrap().topic.as_str(),
            "c"
        );
        assert_eq!(topics(&q), ["a", "d", "e"]);
        // No QoS 0 left: the oldest goes.
        assert_eq!(q.push(m("f", QoS::AtMostOnce)).unwrap().topic.as_str(), "a");
        assert_eq!(topics(&q), ["d", "e", "f"]);
        assert_eq!(q.dropped(), 3);
    }

    #[test]
    fn zero_bound_is_unbounded() {
        let mut q = MQueue::new(0);
        for i in 0..5000 {
            assert!(q.push(m(&i.to_string(), QoS::AtMostOnce)).is_none());
        }
        assert_eq!(q.len(), 5000);
        assert_eq!(q.pop().unwrap().topic.as_str(), "0");
    }

    #[test]
    fn bytes_follow_every_push_pop_and_drop_and_shedding_takes_qos0_first() {
        let mut q = MQueue::new(2);
        let big = |t: &str, qos| Message::new(t, "x".repeat(1000), qos, false);
        q.push(big("a", QoS::AtLeastOnce));
        q.push(big("b", QoS::AtMostOnce));
        let each = entry_bytes(&big("a", QoS::AtLeastOnce));
        assert_eq!(q.bytes(), 2 * each);
        q.push(big("c", QoS::AtLeastOnce)); // full: drops b
        assert_eq!(q.bytes(), 2 * each);
        q.push(big("d", QoS::AtMostOnce)); // full, no QoS 0 queued: drops a
        assert_eq!(q.shed().unwrap().topic.as_str(), "d", "QoS 0 first");
        assert_eq!(q.shed().unwrap().topic.as_str(), "c");
        assert!(q.shed().is_none());
        assert_eq!(q.bytes(), 0);
        assert_eq!(q.dropped(), 4);
    }
}
