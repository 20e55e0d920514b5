//! Topic names, topic filters and the topic trie.
//!
//! Owns: the MQTT topic rules (validity, `+`/`#` wildcards, the `$`-topic rule,
//! shared-subscription syntax) and the trie that maps filters to values. Pure: no I/O.

/// Longest topic or filter in bytes (a UTF-8 string's length prefix is a u16).
pub const MAX_TOPIC_LEN: usize = 65_535;

/// A topic name a client may PUBLISH to: non-empty, no wildcards, no NUL [MQTT-4.7.3-1].
pub fn valid_topic_name(topic: &str) -> bool {
    !topic.is_empty()
        && topic.len() <= MAX_TOPIC_LEN
        && !topic.bytes().any(|b| b == b'+' || b == b'#' || b == 0)
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
