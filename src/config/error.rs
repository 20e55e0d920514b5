//! [`ConfigError`]: what went wrong with the configuration, and where (file, line, dotted key).
//!
//! Pure: builds and formats errors, never reads files or prints. Used at start-up only, on
//! whichever thread parses the configuration (never on a shard's hot path).

use std::fmt;

/// A configuration error that names its origin (a file, `--set`, a flag), the line when it is
/// known, and the dotted key, e.g.
/// `tuning/x.toml line 12: mqtt.max_inflight: invalid type: string "a", expected u16`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    origin: Option<String>,
    line: Option<usize>,
    key: Option<String>,
    message: String,
}

impl ConfigError {
    /// An error about `key` (a dotted path such as `mqtt.max_inflight`; `None` when the error
    /// concerns no single key), with no origin or line yet.
    pub fn new(key: Option<&str>, message: impl Into<String>) -> Self {
        ConfigError {
            origin: None,
            line: None,
            key: key.map(str::to_owned),
            message: message.into(),
        }
    }

    /// Names where the configuration came from (a file path, `--set`, `--mqtt`, ...), unless
    /// the error already names one.
    pub fn with_origin(mut self, origin: impl Into<String>) -> Self {
        if self.origin.is_none() {
            self.origin = Some(origin.into());
        }
        self
    }

    /// Sets the 1-based line the error is on.
    pub fn with_line(mut self, line: usize) -> Self {
        self.line = Some(line);
        self
    }

    /// Where the configuration came from, if known.
    pub fn origin(&self) -> Option<&str> {
        self.origin.as_deref()
    }

    /// The 1-based line of the offending key or value, if known.
    pub fn line(&self) -> Option<usize> {
        self.line
    }

    /// The dotted key, if the error concerns one.
    pub fn key(&self) -> Option<&str> {
        self.key.as_deref()
    }

    /// What is wrong, without origin, line or key.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Converts a `toml` deserialisation error of `text`, with the key path that
    /// `serde_path_to_error` tracked, into a `ConfigError` with a line number.
    pub(crate) fn from_toml(text: &str, err: serde_path_to_error::Error<toml::de::Error>) -> Self {
        let path = err.path().to_string();
        let inner = err.into_inner();
        let message = with_hint(one_line(inner.message()));
        let mut key = (!path.is_empty() && path != ".").then_some(path);
        // serde_path_to_error ends the path with an unknown key's name; should it ever stop
        // doing so (the path would be the key's table), append the name from the message.
        if let Some(field) = unknown_field(&message) {
            key = match key {
                Some(path) if path == field || path.ends_with(&format!(".{field}")) => Some(path),
                Some(table) => Some(format!("{table}.{field}")),
                None => Some(field.to_owned()),
            };
        }
        ConfigError {
            origin: None,
            line: inner.span().map(|span| line_of(text, span.start)),
            key,
            message,
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let place = match (&self.origin, self.line) {
            (Some(origin), Some(line)) => Some(format!("{origin} line {line}")),
            (Some(origin), None) => Some(origin.clone()),
            (None, Some(line)) => Some(format!("line {line}")),
            (None, None) => None,
        };
        if let Some(place) = place {
            write!(f, "{place}: ")?;
        }
        if let Some(key) = &self.key {
            write!(f, "{key}: ")?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for ConfigError {}

/// The 1-based line that byte offset `at` of `text` is on.
fn line_of(text: &str, at: usize) -> usize {
    let end = at.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
        + 1
}

/// Joins a (possibly multi-line) parser message into one line.
fn one_line(message: &str) -> String {
    message
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Adds what is expected to std's terse parse messages.
pub(crate) fn with_hint(message: String) -> String {
    if message == "invalid socket address syntax" {
        format!("{message}, expected IP:PORT such as 0.0.0.0:1883 or [::]:1883")
    } else {
        message
    }
}

/// The field name in serde's "unknown field `x`, expected ..." message.
fn unknown_field(message: &str) -> Option<&str> {
    let rest = message.strip_prefix("unknown field `")?;
    rest.split('`').next()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_origin_line_and_key() {
        let e = ConfigError::new(Some("mqtt.max_inflight"), "must be at least 1")
            .with_line(12)
            .with_origin("tuning/x.toml");
        assert_eq!(
            e.to_string(),
            "tuning/x.toml line 12: mqtt.max_inflight: must be at least 1"
        );
        assert_eq!(e.line(), Some(12));
        assert_eq!(e.key(), Some("mqtt.max_inflight"));
        assert_eq!(e.origin(), Some("tuning/x.toml"));
        assert_eq!(e.message(), "must be at least 1");
    }

    #[test]
    fn display_without_parts() {
        assert_eq!(ConfigError::new(None, "boom").to_string(), "boom");
        assert_eq!(
            ConfigError::new(Some("a.b"), "bad")
                .with_origin("--set")
                .to_string(),
            "--set: a.b: bad"
        );
        assert_eq!(
            ConfigError::new(None, "bad").with_line(3).to_string(),
            "line 3: bad"
        );
    }

    #[test]
    fn first_origin_wins() {
        let e = ConfigError::new(None, "x")
            .with_origin("--set")
            .with_origin("file");
        assert_eq!(e.origin(), Some("--set"));
    }

    #[test]
    fn line_of_counts_newlines() {
        assert_eq!(line_of("a\nb\nc", 0), 1);
        assert_eq!(line_of("a\nb\nc", 2), 2);
        assert_eq!(line_of("a\nb\nc", 4), 3);
        assert_eq!(line_of("a\nb\nc", 99), 3);
    }

    #[test]
    fn unknown_field_is_extracted() {
        assert_eq!(
            unknown_field("unknown field `foo`, expected `bar`"),
            Some("foo")
        );
        assert_eq!(unknown_field("invalid type"), None);
    }
}
