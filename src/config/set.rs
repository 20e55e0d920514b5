//! `--set KEY=VALUE`: one override applied to a [`Config`] through its TOML form.
//!
//! Pure: string in, new `Config` or [`ConfigError`] out; never touches the original on error.
//! Runs at start-up only.

use serde::Deserialize;
use toml::{Table, Value};

use super::error::with_hint;
use super::{Config, ConfigError};

/// Returns `config` with `assignment` (`dotted.key=value`) applied.
pub(super) fn apply(config: &Config, assignment: &str) -> Result<Config, ConfigError> {
    let Some((key, raw)) = assignment.split_once('=') else {
        return Err(ConfigError::new(
            None,
            format!("expected KEY=VALUE, got {assignment:?}"),
        ));
    };
    let key = key.trim();
    let raw = raw.trim();
    let path: Vec<&str> = key.split('.').map(str::trim).collect();
    if path.iter().any(|segment| segment.is_empty()) {
        return Err(ConfigError::new(
            None,
            format!("expected a dotted key such as mqtt.max_inflight, got {key:?}"),
        ));
    }

    let base = Value::try_from(config)
        .map_err(|e| ConfigError::new(Some(key), format!("cannot serialise the config: {e}")))?;

    match parse_value(raw) {
        // A TOML value that does not fit (e.g. `node.name=123`) may still be meant as a string.
        Some(value) if !value.is_str() => {
            with_value(base.clone(), key, &path, value).or_else(|first| {
                with_value(base, key, &path, Value::String(raw.to_owned())).map_err(|_| first)
            })
        }
        Some(value) => with_value(base, key, &path, value),
        None => with_value(base, key, &path, Value::String(raw.to_owned())),
    }
}

/// `raw` as a TOML value (`42`, `true`, `"x"`, `[0, 1]`, `{ a = 1 }`), if it is one.
fn parse_value(raw: &str) -> Option<Value> {
    let mut table: Table = toml::from_str(&format!("v = {raw}")).ok()?;
    table.remove("v")
}

/// Puts `value` at `path` in `base` and reads the result back as a `Config`.
fn with_value(
    mut base: Value,
    key: &str,
    path: &[&str],
    value: Value,
) -> Result<Config, ConfigError> {
    let (last, parents) = path
        .split_last()
        .ok_or_else(|| ConfigError::new(None, "empty key"))?;
    let mut table = base
        .as_table_mut()
        .ok_or_else(|| ConfigError::new(Some(key), "the config is not a table"))?;
    for (i, segment) in parents.iter().enumerate() {
        // A missing table is created, so that deserialising names the unknown key.
        let entry = table
            .entry(segment.to_string())
            .or_insert_with(|| Value::Table(Table::new()));
        table = entry.as_table_mut().ok_or_else(|| {
            ConfigError::new(
                Some(&path[..=i].join(".")),
                "is a value, not a table of keys",
            )
        })?;
    }
    table.insert(last.to_string(), value);
    Config::deserialize(base)
        .map_err(|e| ConfigError::new(Some(key), with_hint(e.message().trim().to_owned())))
}
