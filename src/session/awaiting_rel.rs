//! Incoming QoS 2 messages the client has published and the broker has PUBREC'd, waiting
//! for the client's PUBREL (spec 4.3.3, method B: the message is routed on PUBLISH and only
//! its packet id is kept, which is what makes a re-sent PUBLISH a duplicate).
//!
//! Owns: the packet ids awaiting PUBREL and when each arrived, bounded by `max_awaiting_rel`.
//! Pure: never does I/O and never looks at the clock. Entries are in arrival order, so the
//! front is always the next to expire.

use super::lazy_deque::LazyDeque;
use std::time::{Duration, Instant};

/// Packet ids awaiting PUBREL, oldest first.
#[derive(Debug, Clone)]
pub struct AwaitingRel {
    ids: LazyDeque<(u16, Instant)>,
    /// 0 means unbounded.
    max_len: usize,
}

impl AwaitingRel {
    /// The ids awaiting PUBREL, oldest first.
    pub fn ids(&self) -> impl Iterator<Item = u16> + '_ {
        self.ids.iter().map(|(id, _)| *id)
    }

    /// An empty set holding at most `max_len` ids (0 = unbounded).
    pub fn new(max_len: usize) -> AwaitingRel {
        AwaitingRel {
            ids: LazyDeque::default(),
            max_len,
        }
    }

    /// True when `packet_id` is awaiting PUBREL.
    pub fn contains(&self, packet_id: u16) -> bool {
        self.ids.iter().any(|(id, _)| *id == packet_id)
    }

    /// True when no further id may be added.
    pub fn is_full(&self) -> bool {
        self.max_len > 0 && self.ids.len() >= self.max_len
    }

    /// Records `packet_id` (the caller checked `contains` and `is_full`).
    pub fn insert(&mut self, packet_id: u16, now: Instant) {
        self.ids.push_back((packet_id, now));
    }

    /// Removes `packet_id`; false when it was not awaiting.
    pub fn remove(&mut self, packet_id: u16) -> bool {
        let at = self.ids.iter().position(|(id, _)| *id == packet_id);
        match at {
            Some(i) => {
                self.ids.remove(i);
                true
            }
            None => false,
        }
    }

    /// Removes the ids that arrived `timeout` or longer before `now`; returns how many.
    pub fn expire(&mut self, now: Instant, timeout: Duration) -> usize {
        let mut n = 0;
        while let Some(&(_, at)) = self.ids.front() {
            if now.saturating_duration_since(at) < timeout {
                break;
            }
            self.ids.pop_front();
            n += 1;
        }
        n
    }

    /// When the oldest id arrived.
    pub fn oldest(&self) -> Option<Instant> {
        self.ids.front().map(|(_, at)| *at)
    }

    /// Ids awaiting now.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Frees the list's storage when it is empty.
    /// Returns the bytes freed.
    pub fn release_idle(&mut self) -> usize {
        self.ids.release_if_empty()
    }

    /// The bound (0 = unbounded).
    pub fn max_len(&self) -> usize {
        self.max_len
    }
}
