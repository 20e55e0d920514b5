//! The messages a shard routed lately to no other shard, so that a subscription whose
//! SUBSCRIBE arrived before them, but was read after they were routed, still gets them.
//!
//! Two connections of one program may be served by two shards. The program sends SUBSCRIBE on
//! one and at once PUBLISH on the other; the publisher's shard, awake, routes the message
//! before the subscriber's shard (woken on another core) has read the SUBSCRIBE, and the
//! route replica it routes with does not have the new subscription yet: the message goes
//! nowhere, or only to subscribers on the publisher's own shard. A broker with one thread
//! reads the two in the order they arrived. So each shard keeps, for a short while, what it
//! routed to no other shard, with when it routed it ([`Recent::note`]). The subscriber's shard
//! knows when the kernel received its SUBSCRIBE (the socket's receive timestamp); it looks
//! at what it routed itself and asks every shard that routed anything since
//! ([`RoutedAt`]) for the messages routed after that moment that match the new filters
//! ([`Recent::missed`]). A message routed before the SUBSCRIBE arrived is never offered: a
//! program that published, had its PUBACK and then subscribed does not get it.
//!
//! Not kept: messages that went to another shard (keeping them would hold their reference
//! counts, which that shard touches, past the routing: a cache-line round trip per message),
//! so a subscription read late still misses what was routed, meanwhile, to subscribers of
//! the topic on other shards; and retained messages (the subscription's retained delivery
//! serves those).
//!
//! Owns: the window of routed messages (pure, unit-tested here).
//! Runs on: its shard's thread, on the message path ([`Recent::note`]: the router's own
//! copy moves in, no reference count, no allocation once the window is full).
//! Must never: keep more than [`WINDOW`], [`MAX_ENTRIES`] messages or [`MAX_BYTES`] of
//! payload.

use std::collections::VecDeque;

use crate::codec::{Str, SubOptions};
use crate::session::Message;
use crate::topic;

/// How long a routed message is kept (nanoseconds): longer than a shard takes to read input
/// that arrived while it was busy or asleep, short of anything a client could mistake.
pub const WINDOW: u64 = 100_000_000;
/// At most this many messages are kept...
pub const MAX_ENTRIES: usize = 128;
/// ...holding at most this many payload bytes.
pub const MAX_BYTES: usize = 1 << 20;

/// When a shard last routed a message (`CLOCK_REALTIME` nanoseconds), on a cache line of
/// its own: written by its shard (once per batch that routes), read by a shard whose client
/// subscribes, to ask only the shards that routed anything since.
#[repr(align(128))]
#[derive(Debug, Default)]
pub struct RoutedAt(pub std::sync::atomic::AtomicU64);

struct Entry {
    /// When it was routed (`CLOCK_REALTIME` nanoseconds, read after it was read).
    at: u64,
    msg: Message,
}

/// What one shard routed to no other shard within the window.
#[derive(Default)]
pub struct Recent {
    entries: VecDeque<Entry>,
    bytes: usize,
}

impl Recent {
    /// `msg` was routed at `at` to no other shard (to subscribers here, or to nobody). Takes
    /// the router's own copy: keeping it costs no reference count.
    pub fn note(&mut self, at: u64, msg: Message) {
        if msg.retain || msg.payload.len() > MAX_BYTES {
            return;
        }
        while self.entries.len() >= MAX_ENTRIES
            || self.bytes + msg.payload.len() > MAX_BYTES
            || self
                .entries
                .front()
                .is_some_and(|e| e.at.saturating_add(WINDOW) < at)
        {
            match self.entries.pop_front() {
                Some(old) => self.bytes -= old.msg.payload.len(),
                None => break,
            }
        }
        self.bytes += msg.payload.len();
        self.entries.push_back(Entry { at, msg });
    }

    /// The messages routed after `since` that match one of `filters` (ordinary
    /// subscriptions `client` just made, which none of them reached), each with the options
    /// of its highest-QoS matching filter; none that `client` published under a No Local
    /// filter.
    pub fn missed(
        &self,
        client: &Str,
        since: u64,
        filters: &[(Str, SubOptions)],
    ) -> Vec<(Message, SubOptions)> {
        let newer = self
            .entries
            .iter()
            .rev()
            .take_while(|e| e.at > since)
            .count();
        let mut found = Vec::new();
        for e in self.entries.range(self.entries.len() - newer..) {
            let best = filters
                .iter()
                .filter(|(f, _)| topic::matches(f, &e.msg.topic))
                .map(|(_, o)| *o)
                .max_by_key(|o| o.qos as u8);
            if let Some(opts) = best {
                if !(opts.no_local && e.msg.publisher == *client) {
                    found.push((e.msg.clone(), opts));
                }
            }
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::QoS;

    fn msg(topic: &str, publisher: &str) -> Message {
        let mut m = Message::new(topic, &b"x"[..], QoS::AtLeastOnce, false);
        m.publisher = Str::from(publisher);
        m
    }

    fn opts(qos: QoS) -> SubOptions {
        SubOptions {
            qos,
            ..SubOptions::default()
        }
    }

    fn topics(missed: &[(Message, SubOptions)]) -> Vec<&str> {
        missed.iter().map(|(m, _)| &*m.topic).collect()
    }

    #[test]
    fn a_subscription_is_offered_what_was_routed_after_its_subscribe_arrived() {
        let mut r = Recent::default();
        let me = Str::from("sub");
        r.note(100, msg("a/before", "p"));
        r.note(200, msg("a/after", "p"));
        r.note(300, msg("b/other", "p"));
        r.note(400, msg("a/b/deep", "p"));
        let filters = [(Str::from("a/+"), opts(QoS::AtLeastOnce))];
        assert_eq!(topics(&r.missed(&me, 150, &filters)), ["a/after"]);
        let filters = [(Str::from("a/#"), opts(QoS::AtLeastOnce))];
        assert_eq!(
            topics(&r.missed(&me, 100, &filters)),
            ["a/after", "a/b/deep"],
            "not what was routed when the SUBSCRIBE arrived or before"
        );
        assert!(r.missed(&me, 400, &filters).is_empty(), "nothing after");
    }

    #[test]
    fn the_highest_qos_of_the_matching_filters_applies_and_no_local_is_kept() {
        let mut r = Recent::default();
        r.note(10, msg("s/t", "sub"));
        r.note(20, msg("s/t", "other"));
        let filters = [
            (Str::from("s/+"), opts(QoS::AtMostOnce)),
            (Str::from("s/t"), opts(QoS::ExactlyOnce)),
        ];
        let missed = r.missed(&Str::from("sub"), 0, &filters);
        assert_eq!(missed.len(), 2);
        assert!(missed.iter().all(|(_, o)| o.qos == QoS::ExactlyOnce));
        let no_local = [(
            Str::from("s/t"),
            SubOptions {
                no_local: true,
                ..opts(QoS::AtLeastOnce)
            },
        )];
        let missed = r.missed(&Str::from("sub"), 0, &no_local);
        assert_eq!(missed.len(), 1);
        assert_eq!(&*missed[0].0.publisher, "other");
    }

    #[test]
    fn the_window_is_bounded_in_time_count_and_bytes_and_keeps_no_retained_message() {
        let mut r = Recent::default();
        r.note(1, msg("t", "p"));
        r.note(1 + WINDOW + 1, msg("t", "p"));
        assert_eq!(r.entries.len(), 1, "the first one left the window");
        for i in 0..(MAX_ENTRIES as u64 + 10) {
            r.note(2 * WINDOW + i, msg("t", "p"));
        }
        assert_eq!(r.entries.len(), MAX_ENTRIES);
        let mut big = msg("t", "p");
        big.payload = bytes::Bytes::from(vec![0u8; MAX_BYTES / 2 + 1]);
        r.note(3 * WINDOW, big.clone());
        r.note(3 * WINDOW, big);
        assert_eq!(r.entries.len(), 1, "two halves do not fit");
        let mut retained = msg("t", "p");
        retained.retain = true;
        r.note(3 * WINDOW, retained);
        assert_eq!(r.entries.len(), 1);
        let mut huge = msg("t", "p");
        huge.payload = bytes::Bytes::from(vec![0u8; MAX_BYTES + 1]);
        r.note(3 * WINDOW, huge);
        assert_eq!(r.entries.len(), 1, "a payload over the bound is not kept");
    }
}
