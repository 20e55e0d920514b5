//! Prometheus text exposition (format 0.0.4) for `GET /metrics`: one series per shard, with a
//! `shard` label (and `core`), then the management thread's node-wide counters, unlabelled.
//! Pure, runs on the management thread.
//!
//! Owns: metric-name mapping (`packets/connect` → `shardmq_packets_connect_total`), HELP/TYPE
//! lines, label escaping. Must never: emit a family twice, emit a name outside
//! `[a-zA-Z_:][a-zA-Z0-9_:]*`, or emit an unescaped label value.

use std::fmt::Write as _;

use crate::model::{NamedValues, ShardView};

/// `Content-Type` of the text format.
pub const PROMETHEUS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Prefix of every family name.
pub const PREFIX: &str = "shardmq_";

/// Counter or gauge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
        }
    }
}

/// The family name for an EMQ X style name: prefixed, every character outside
/// `[a-zA-Z0-9_]` becomes `_`, counters end in `_total`. A gauge's EMQ X `/count` suffix is
/// dropped (`connections/count` → `shardmq_connections`): Prometheus reserves `_count` for
/// summaries and histograms.
pub fn family_name(name: &str, kind: Kind) -> String {
    let name = match kind {
        Kind::Gauge => name.strip_suffix("/count").unwrap_or(name),
        Kind::Counter => name,
    };
    let mut out = String::with_capacity(PREFIX.len() + name.len() + 6);
    out.push_str(PREFIX);
    out.extend(name.chars().map(|c| {
        if c.is_ascii_alphanumeric() || c == '_' {
            c
        } else {
            '_'
        }
    }));
    if kind == Kind::Counter && !out.ends_with("_total") {
        out.push_str("_total");
    }
    out
}

/// Escapes a label value (`\`, `"`, newline).
pub fn escape_label(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// Escapes HELP text (`\`, newline).
fn escape_help(text: &str) -> String {
    text.replace('\\', "\\\\").replace('\n', "\\n")
}

/// Writes one family: HELP, TYPE, then one sample per `(labels, value)`.
pub fn write_family(
    out: &mut String,
    name: &str,
    help: &str,
    kind: Kind,
    samples: &[(Vec<(&str, String)>, f64)],
) {
    let _ = writeln!(out, "# HELP {name} {}", escape_help(help));
    let _ = writeln!(out, "# TYPE {name} {}", kind.as_str());
    for (labels, value) in samples {
        out.push_str(name);
        if !labels.is_empty() {
            out.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                let _ = write!(out, "{k}=\"{}\"", escape_label(v));
            }
            out.push('}');
        }
        let _ = writeln!(out, " {value}");
    }
}

/// Whether an event-loop figure is a gauge (its name ends in `depth`, `count`, `max` or
/// `permille`).
fn loop_kind(name: &str) -> Kind {
    if ["depth", "count", "max", "permille"]
        .iter()
        .any(|s| name.ends_with(s))
    {
        Kind::Gauge
    } else {
        Kind::Counter
    }
}

/// EMQ X metrics that are gauges although they sit among the counters (they go down).
const GAUGE_METRICS: &[&str] = &["messages/retained"];

/// How a figure is exposed: its family name, its kind, and the factor that brings its value
/// to base units (a `*_permille` figure becomes a `*_ratio` between 0 and 1).
fn exposed(name: &str, kind: Kind) -> (String, f64) {
    match name.strip_suffix("_permille") {
        Some(stem) => (family_name(&format!("{stem}_ratio"), kind), 0.001),
        None => (family_name(name, kind), 1.0),
    }
}

/// The parts of a shard view.
#[derive(Clone, Copy)]
enum Part {
    Stats,
    Metrics,
    EventLoop,
}

impl Part {
    /// The kind of the figure `name` of this part.
    fn kind(self, name: &str) -> Kind {
        match self {
            Part::Stats => Kind::Gauge,
            Part::Metrics if GAUGE_METRICS.contains(&name) => Kind::Gauge,
            Part::Metrics => Kind::Counter,
            Part::EventLoop => loop_kind(name),
        }
    }
}

/// Which part of a shard view, and the HELP prefix.
type Section = (fn(&ShardView) -> &NamedValues, Part, &'static str);

/// Renders every shard's stats (gauges), metrics (counters) and event-loop figures as one
/// family per name, one sample per shard, labelled `shard` and `core`. Families appear in
/// first-seen order; a shard missing a name simply has no sample for it.
pub fn render_shards(shards: &[ShardView]) -> String {
    let mut out = String::new();
    let sections: [Section; 3] = [
        (|s| &s.stats, Part::Stats, "EMQ X stat"),
        (|s| &s.metrics, Part::Metrics, "EMQ X metric"),
        (
            |s| &s.event_loop,
            Part::EventLoop,
            "Shard event loop figure",
        ),
    ];
    let mut seen: Vec<String> = Vec::new();
    for (pick, part, what) in sections {
        let mut names: Vec<&str> = Vec::new();
        for shard in shards {
            for (name, _) in &pick(shard).0 {
                if !names.contains(&name.as_str()) {
                    names.push(name);
                }
            }
        }
        for name in names {
            let kind = part.kind(name);
            let (family, scale) = exposed(name, kind);
            if seen.contains(&family) {
                continue;
            }
            let samples: Vec<_> = shards
                .iter()
                .filter_map(|s| {
                    let labels = vec![("shard", s.shard.to_string()), ("core", s.core.to_string())];
                    pick(s).get(name).map(|v| (labels, v as f64 * scale))
                })
                .collect();
            write_family(
                &mut out,
                &family,
                &format!("{what} {name}, per shard"),
                kind,
                &samples,
            );
            seen.push(family);
        }
    }
    render_rules(&mut out, shards);
    out
}

/// The rule engine's counters: per shard, rule and action.
fn render_rules(out: &mut String, shards: &[ShardView]) {
    if shards.iter().all(|s| s.rules.is_empty()) {
        return;
    }
    let labels = |s: &ShardView, rule: &str| {
        vec![
            ("shard", s.shard.to_string()),
            ("core", s.core.to_string()),
            ("rule", rule.to_string()),
        ]
    };
    let matched: Vec<_> = shards
        .iter()
        .flat_map(|s| {
            s.rules
                .iter()
                .map(move |r| (labels(s, &r.rule), r.matched as f64))
        })
        .collect();
    write_family(
        out,
        &format!("{PREFIX}rule_matched_total"),
        "Messages and events a rule matched, per shard",
        Kind::Counter,
        &matched,
    );
    for (what, pick) in [
        (
            "success",
            (|a| a.success) as fn(&crate::model::ActionFigures) -> u64,
        ),
        ("failed", |a| a.failed),
    ] {
        let samples: Vec<_> = shards
            .iter()
            .flat_map(|s| {
                s.rules.iter().flat_map(move |r| {
                    r.actions.iter().enumerate().map(move |(i, a)| {
                        let mut l = labels(s, &r.rule);
                        l.push(("action", i.to_string()));
                        (l, pick(a) as f64)
                    })
                })
            })
            .collect();
        write_family(
            out,
            &format!("{PREFIX}rule_action_{what}_total"),
            &format!("Rule actions that ended in {what}, per shard, rule and action (its index)"),
            Kind::Counter,
            &samples,
        );
    }
}

/// Renders node-wide counters (the management thread's own, e.g. `http/refused/auth_failed`):
/// one family per name, one sample without labels. Their names must not be those of a shard
/// figure (they start with `http/`).
pub fn render_node(counters: &[(&str, u64)]) -> String {
    let mut out = String::new();
    for (name, value) in counters {
        write_family(
            &mut out,
            &family_name(name, Kind::Counter),
            &format!("Management thread figure {name}, node-wide"),
            Kind::Counter,
            &[(Vec::new(), *value as f64)],
        );
    }
    out
}
