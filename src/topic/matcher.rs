//! The straightforward filter-vs-topic matcher.
//!
//! Owns: the reference semantics of `+`, `#` and the `$`-topic rule for ONE filter against
//! ONE topic name. It is the oracle the trie is tested against, so it must stay obviously
//! correct: no cleverness, no allocation, no I/O. It must never know about shared-subscription
//! prefixes (strip those with [`super::parse_shared`] first).

/// Whether `filter` (a valid, non-shared topic filter) matches the topic name `topic`.
///
/// - `+` matches exactly one level, including an empty one (`a/+` matches `a/`).
/// - `#` matches the parent level and any number of levels below (`sport/#` matches
///   `sport`, `sport/` and `sport/tennis/player1`).
/// - Empty levels are real levels: `/a` has two levels, `a//b` has three.
/// - A filter starting with a wildcard (`#`, `+`, `+/...`) never matches a topic starting
///   with `$` [MQTT-4.7.2-1]; `$SYS/#` does match `$SYS/uptime`.
///
/// Invalid filters (e.g. `a/#/b`) are not rejected; the result for them is unspecified
/// but the call never panics.
pub fn matches(filter: &str, topic: &str) -> bool {
    if topic.starts_with('$') && (filter.starts_with('+') || filter.starts_with('#')) {
        return false;
    }
    let mut filter_levels = filter.split('/');
    let mut topic_levels = topic.split('/');
    loop {
        match (filter_levels.next(), topic_levels.next()) {
            // `#` is the last level: it matches this level, the parent, and everything below.
            (Some("#"), _) => return true,
            (Some("+"), Some(_)) => {}
            (Some(f), Some(t)) if f == t => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::matches;

    /// (filter, topic, expected)
    const CASES: &[(&str, &str, bool)] = &[
        // exact
        ("a", "a", true),
        ("a", "b", false),
        ("a/b", "a/b", true),
        ("a/b", "a", false),
        ("a", "a/b", false),
        ("A", "a", false),
        // empty levels are real levels
        ("/a", "/a", true),
        ("/a", "a", false),
        ("a/", "a/", true),
        ("a/", "a", false),
        ("a//b", "a//b", true),
        ("a//b", "a/b", false),
        ("/", "/", true),
        ("//", "//", true),
        ("//", "/", false),
        // spec 4.7.1.2: sport/tennis/player1/#
        ("sport/tennis/player1/#", "sport/tennis/player1", true),
        (
            "sport/tennis/player1/#",
            "sport/tennis/player1/ranking",
            true,
        ),
        (
            "sport/tennis/player1/#",
            "sport/tennis/player1/score/wimbledon",
            true,
        ),
        ("sport/tennis/player1/#", "sport/tennis/player2", false),
        ("sport/tennis/player1/#", "sport/tennis", false),
        ("sport/#", "sport", true),
        ("sport/#", "sport/", true),
        ("sport/#", "sports", false),
        ("#", "sport", true),
        ("#", "/", true),
        ("#", "a/b/c/d", true),
        // spec 4.7.1.3: sport/tennis/+
        ("sport/tennis/+", "sport/tennis/player1", true),
        ("sport/tennis/+", "sport/tennis/player2", true),
        ("sport/tennis/+", "sport/tennis/player1/ranking", false),
        ("sport/tennis/+", "sport/tennis", false),
        ("sport/tennis/+", "sport/tennis/", true),
        ("sport/+", "sport", false),
        ("sport/+", "sport/", true),
        ("+", "sport", true),
        ("+", "/sport", false),
        ("+", "", true),
        ("+/+", "/finance", true),
        ("+/+", "a/b", true),
        ("+/+", "a", false),
        ("+/+", "a/b/c", false),
        ("/+", "/finance", true),
        ("/+", "finance", false),
        ("+/tennis/#", "sport/tennis", true),
        ("+/tennis/#", "sport/tennis/player1", true),
        ("+/tennis/#", "sport/football", false),
        ("sport/+/player1", "sport/tennis/player1", true),
        ("sport/+/player1", "sport//player1", true),
        ("a/+/#", "a/b", true),
        ("a/+/#", "a", false),
        ("+/#", "a", true),
        ("+/#", "/", true),
        // 4.7.2: topics starting with `$`
        ("#", "$SYS", false),
        ("#", "$SYS/broker/uptime", false),
        ("+", "$SYS", false),
        ("+/#", "$SYS/x", false),
        ("+/monitor/Clients", "$SYS/monitor/Clients", false),
        ("$SYS/#", "$SYS/monitor/Clients", true),
        ("$SYS/#", "$SYS", true),
        ("$SYS/monitor/+", "$SYS/monitor/Clients", true),
        ("$SYS/+/Clients", "$SYS/monitor/Clients", true),
        ("$SYS", "$SYS", true),
        ("$", "$", true),
        ("+", "$", false),
        // `$` is only special as the first character of the topic
        ("+/$x", "a/$x", true),
        ("a/+", "a/$x", true),
        ("a/#", "a/$x", true),
        ("#", "a$", true),
    ];

    #[test]
    fn table() {
        for &(filter, topic, expected) in CASES {
            assert_eq!(
                matches(filter, topic),
                expected,
                "matches({filter:?}, {topic:?})"
            );
        }
    }

    #[test]
    fn exact_filter_matches_itself() {
        for &(_, topic, _) in CASES {
            if super::super::valid_topic_filter(topic) {
                assert!(matches(topic, topic), "{topic:?}");
            }
        }
    }
}
