//! Shared-subscription syntax: `$share/<group>/<filter>` and `$queue/<filter>`.
//!
//! Owns: recognising the shared prefixes and splitting them into group + inner filter,
//! with EMQ X semantics (`$queue/<filter>` is the group `"$queue"`). It must never decide
//! which member of a group gets a message, and never allocate: results borrow the input.

use super::valid_topic_filter;

/// The group name `$queue/<filter>` subscriptions belong to.
pub const QUEUE_GROUP: &str = "$queue";

const SHARE_PREFIX: &str = "$share/";
const QUEUE_PREFIX: &str = "$queue/";

/// A shared subscription's filter, split into its parts. Borrows the original filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SharedFilter<'a> {
    /// The share name: `g` in `$share/g/a/b`, [`QUEUE_GROUP`] for `$queue/a/b`.
    pub group: &'a str,
    /// The filter matched against topics: `a/b` in `$share/g/a/b`.
    pub filter: &'a str,
}

/// Why a filter with a shared prefix is not a valid shared subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SharedFilterError {
    /// `$share//a`: the share name is empty.
    EmptyGroup,
    /// The share name contains `+`, `#` or NUL.
    InvalidGroup,
    /// `$share/g`, `$share/g/` or `$queue/`: no filter after the group.
    MissingFilter,
    /// The filter after the group is not a valid topic filter.
    InvalidFilter,
}

impl std::fmt::Display for SharedFilterError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::EmptyGroup => "shared subscription with an empty share name",
            Self::InvalidGroup => "shared subscription share name contains '+', '#' or NUL",
            Self::MissingFilter => "shared subscription without a topic filter",
            Self::InvalidFilter => "shared subscription with an invalid topic filter",
        })
    }
}

impl std::error::Error for SharedFilterError {}

/// Splits a subscription filter into group + filter if it is shared.
///
/// - `$share/<group>/<filter>` gives `group` and `filter`; the group must be non-empty and
///   contain no `/`, `+`, `#` (or NUL), and `filter` must be a valid topic filter.
/// - `$queue/<filter>` gives the group [`QUEUE_GROUP`] and `filter`.
/// - Anything else (including a bare `$share` or `$queue`) is not shared: `Ok(None)`.
///   The caller still has to check it with [`valid_topic_filter`].
pub fn parse_shared(filter: &str) -> Result<Option<SharedFilter<'_>>, SharedFilterError> {
    let (group, inner) = if let Some(rest) = filter.strip_prefix(SHARE_PREFIX) {
        let (group, inner) = rest.split_once('/').ok_or(if rest.is_empty() {
            SharedFilterError::EmptyGroup
        } else {
            SharedFilterError::MissingFilter
        })?;
        if group.is_empty() {
            return Err(SharedFilterError::EmptyGroup);
        }
        if group.bytes().any(|b| b == b'+' || b == b'#' || b == 0) {
            return Err(SharedFilterError::InvalidGroup);
        }
        (group, inner)
    } else if let Some(inner) = filter.strip_prefix(QUEUE_PREFIX) {
        (QUEUE_GROUP, inner)
    } else {
        return Ok(None);
    };
    if inner.is_empty() {
        return Err(SharedFilterError::MissingFilter);
    }
    if !valid_topic_filter(inner) {
        return Err(SharedFilterError::InvalidFilter);
    }
    Ok(Some(SharedFilter {
        group,
        filter: inner,
    }))
}

#[cfg(test)]
mod tests {
    use super::SharedFilterError::*;
    use super::*;

    type Expected = Result<Option<(&'static str, &'static str)>, SharedFilterError>;

    const CASES: &[(&str, Expected)] = &[
        // not shared
        ("a/b", Ok(None)),
        ("#", Ok(None)),
        ("$SYS/#", Ok(None)),
        ("$share", Ok(None)),
        ("$queue", Ok(None)),
        ("$sharex/g/a", Ok(None)),
        ("$queuex/a", Ok(None)),
        ("a/$share/g/b", Ok(None)),
        ("$Share/g/a", Ok(None)),
        // $share
        ("$share/g/a", Ok(Some(("g", "a")))),
        ("$share/g/a/b/c", Ok(Some(("g", "a/b/c")))),
        (
            "$share/group1/sport/+/player1",
            Ok(Some(("group1", "sport/+/player1"))),
        ),
        ("$share/g/#", Ok(Some(("g", "#")))),
        ("$share/g/+", Ok(Some(("g", "+")))),
        ("$share/g//a", Ok(Some(("g", "/a")))),
        ("$share/g/$SYS/#", Ok(Some(("g", "$SYS/#")))),
        ("$share/$queue/a", Ok(Some(("$queue", "a")))),
        ("$share/g/$share/h/a", Ok(Some(("g", "$share/h/a")))),
        ("$share/g/a/", Ok(Some(("g", "a/")))),
        ("$share/g", Err(MissingFilter)),
        ("$share/g/", Err(MissingFilter)),
        ("$share/", Err(EmptyGroup)),
        ("$share//a", Err(EmptyGroup)),
        ("$share//", Err(EmptyGroup)),
        ("$share/+/a", Err(InvalidGroup)),
        ("$share/#/a", Err(InvalidGroup)),
        ("$share/g+/a", Err(InvalidGroup)),
        ("$share/g\0/a", Err(InvalidGroup)),
        ("$share/g/a/#/b", Err(InvalidFilter)),
        ("$share/g/a+", Err(InvalidFilter)),
        ("$share/g/a\0", Err(InvalidFilter)),
        // $queue
        ("$queue/a", Ok(Some(("$queue", "a")))),
        ("$queue/a/+/#", Ok(Some(("$queue", "a/+/#")))),
        ("$queue//", Ok(Some(("$queue", "/")))),
        ("$queue/", Err(MissingFilter)),
        ("$queue/a#", Err(InvalidFilter)),
    ];

    #[test]
    fn table() {
        for &(input, expected) in CASES {
            let got = parse_shared(input).map(|o| o.map(|s| (s.group, s.filter)));
            assert_eq!(got, expected, "parse_shared({input:?})");
        }
    }

    #[test]
    fn borrows_input() {
        let s = String::from("$share/g/a/b");
        let parsed = parse_shared(&s).unwrap().unwrap();
        assert!(std::ptr::eq(parsed.filter.as_ptr(), s[9..].as_ptr()));
    }
}
