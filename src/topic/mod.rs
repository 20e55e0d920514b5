//! Topic names, topic filters and the topic trie.
//!
//! Owns: the MQTT topic rules (validity, `+`/`#` wildcards, the `$`-topic rule,
//! shared-subscription syntax) and the trie that maps filters to values. Pure: it must never do
//! I/O, know about sessions or shards, or allocate on the matching path.
//!
//! - [`valid_topic_name`], [`valid_topic_filter`]: what a client may publish / subscribe to;
//!   [`deeper_than`]: the configured limit on levels.
//! - [`matches()`]: one filter against one topic (the reference semantics).
//! - [`parse_shared`]: `$share/<group>/<filter>` and `$queue/<filter>`.
//! - [`TopicTrie`]: many filters against one topic, fast.
//! - [`OutgoingAliases`]: the topic aliases the broker binds towards one 5.0 client.

mod alias;
mod matcher;
mod shared;
mod trie;

pub use alias::{AliasUse, OutgoingAliases};
pub use matcher::matches;
pub use shared::{parse_shared, SharedFilter, SharedFilterError, QUEUE_GROUP};
pub use trie::{Iter, TopicTrie};

/// Longest topic or filter in bytes (a UTF-8 string's length prefix is a u16).
pub const MAX_TOPIC_LEN: usize = 65_535;

/// A topic name a client may PUBLISH to: non-empty, no wildcards, no NUL [MQTT-4.7.3-1].
pub fn valid_topic_name(topic: &str) -> bool {
    !topic.is_empty()
        && topic.len() <= MAX_TOPIC_LEN
        && !topic.bytes().any(|b| b == b'+' || b == b'#' || b == 0)
}

/// Whether `topic` (a name, or a filter without its `$share/<group>/` prefix) has more than
/// `max` levels (`mqtt.max_topic_levels`; 0: no limit). Levels are what `/` separates.
pub fn deeper_than(topic: &str, max: u32) -> bool {
    let max = max as usize;
    // More than `max` levels take at least `max` separators: a shorter string has fewer.
    max > 0 && topic.len() >= max && topic.bytes().filter(|&b| b == b'/').count() >= max
}

/// A topic filter a client may SUBSCRIBE to [MQTT-4.7.1]: non-empty, no NUL, `+` alone in
/// its level, `#` alone in the last level. Shared forms are checked by the caller after
/// stripping `$share/<group>/` or `$queue/`.
pub fn valid_topic_filter(filter: &str) -> bool {
    if filter.is_empty() || filter.len() > MAX_TOPIC_LEN || filter.contains('\0') {
        return false;
    }
    let mut levels = filter.split('/').peekable();
    while let Some(level) = levels.next() {
        let is_last = levels.peek().is_none();
        if level.contains('#') && (level != "#" || !is_last) {
            return false;
        }
        if level.contains('+') && level != "+" {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_depth() {
        assert!(!deeper_than("a/b/c", 3));
        assert!(deeper_than("a/b/c/d", 3));
        assert!(deeper_than("///", 3), "empty levels count");
        assert!(!deeper_than("//", 3));
        assert!(!deeper_than("abc", 3));
        assert!(!deeper_than("+/+/#", 3));
        assert!(deeper_than("+/+/+/#", 3));
        assert!(!deeper_than(&"/".repeat(65_535), 0), "0: no limit");
        assert!(deeper_than(&"/".repeat(128), 128));
        assert!(!deeper_than(&"/".repeat(127), 128));
    }

    #[test]
    fn topic_names() {
        let cases: &[(&str, bool)] = &[
            ("a", true),
            ("/", true),
            ("//", true),
            ("a//b", true),
            ("/finance", true),
            ("$SYS/monitor/Clients", true),
            ("a b/c", true),
            ("sport/tennis/player1", true),
            ("", false),
            ("+", false),
            ("#", false),
            ("a/+", false),
            ("a/#", false),
            ("a+", false),
            ("a\0b", false),
        ];
        for &(topic, ok) in cases {
            assert_eq!(valid_topic_name(topic), ok, "valid_topic_name({topic:?})");
        }
        assert!(valid_topic_name(&"a".repeat(MAX_TOPIC_LEN)));
        assert!(!valid_topic_name(&"a".repeat(MAX_TOPIC_LEN + 1)));
    }

    #[test]
    fn topic_filters() {
        let cases: &[(&str, bool)] = &[
            ("#", true),
            ("+", true),
            ("+/+", true),
            ("/+", true),
            ("+/", true),
            ("/", true),
            ("sport/#", true),
            ("sport/tennis/#", true),
            ("sport/tennis/player1/#", true),
            ("sport/+", true),
            ("sport/+/player1", true),
            ("+/tennis/#", true),
            ("$SYS/#", true),
            ("a//b", true),
            ("", false),
            ("sport/tennis#", false),
            ("sport/tennis/#/ranking", false),
            ("#/a", false),
            ("##", false),
            ("sport+", false),
            ("a/++/b", false),
            ("+a", false),
            ("a\0", false),
        ];
        for &(filter, ok) in cases {
            assert_eq!(
                valid_topic_filter(filter),
                ok,
                "valid_topic_filter({filter:?})"
            );
        }
    }
}
