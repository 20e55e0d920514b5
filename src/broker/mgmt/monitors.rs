//! Alarms: the management thread's system monitors (EMQ X `emqx_os_mon` / `emqx_vm_mon`):
//! system CPU, system memory, this process's memory, live connections against
//! `listeners.tcp.max_connections`, and failing accepts (`accept_failed`: the listener could
//! not take a connection since the previous check, e.g. out of file descriptors; cleared by a
//! check with none), checked every `alarms.check_interval_ms`. Each raise and
//! clear is kept (present table keyed by id; history keyed by id with `clear_at`, as EMQ X
//! 3.2) and published to `$SYS/brokers/<node>/alarms/alert|clear`.
//!
//! Owns: [`Alarms`] (pure state machine over [`Sample`]s) and every `/proc` reader of the
//! management thread (system CPU and memory, this process's memory). Runs on the management
//! executor; the checks that publish events are in [`super::alarms`]. Must never: run on a
//! shard, or block longer than reading a few `/proc` files.

use std::collections::BTreeMap;

use shardmq_http::model::{Alarm, ClearedAlarm};

use crate::config::AlarmsConfig;

pub const CPU: &str = "cpu_high_watermark";
pub const SYSMEM: &str = "system_memory_high_watermark";
pub const PROCMEM: &str = "process_memory_high_watermark";
pub const CONNECTIONS: &str = "too_many_connections";
pub const ACCEPT_FAILED: &str = "accept_failed";

/// One reading of the monitored figures (`None`: not available on this system).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Sample {
    /// System CPU use since the previous check, 0..=1.
    pub cpu: Option<f64>,
    /// Used / total system memory.
    pub sysmem: Option<f64>,
    /// This process's resident memory / total system memory.
    pub procmem: Option<f64>,
    pub rss: u64,
    pub connections: u64,
    /// Accepts that failed on the MQTT listeners since the broker started.
    pub accept_failures: u64,
}

/// A raise or a clear, to publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AlarmEvent {
    Raised { id: String, desc: String },
    Cleared { id: String, desc: String },
}

/// Present alarms and the history of cleared ones.
#[derive(Debug, Default)]
pub struct Alarms {
    present: BTreeMap<String, String>,
    history: BTreeMap<String, ClearedAlarm>,
    cpu_prev: Option<(u64, u64)>,
    /// `accept_failures` at the previous check.
    accept_failures_prev: u64,
}

impl Alarms {
    pub fn present(&self) -> Vec<Alarm> {
        self.present
            .iter()
            .map(|(id, desc)| Alarm {
                id: id.clone(),
                desc: desc.clone(),
            })
            .collect()
    }

    pub fn history(&self) -> Vec<ClearedAlarm> {
        self.history.values().cloned().collect()
    }

    /// Raises `id` (a present alarm only gets its new `desc`: one event per transition).
    pub fn raise(&mut self, id: &str, desc: String) -> Option<AlarmEvent> {
        let new = self.present.insert(id.to_string(), desc.clone()).is_none();
        new.then(|| AlarmEvent::Raised {
            id: id.to_string(),
            desc,
        })
    }

    /// Clears `id` into the history (with `clear_at`), if present.
    pub fn clear(&mut self, id: &str, clear_at: String) -> Option<AlarmEvent> {
        let desc = self.present.remove(id)?;
        self.history.insert(
            id.to_string(),
            ClearedAlarm {
                clear_at,
                desc: desc.clone(),
                id: id.to_string(),
            },
        );
        Some(AlarmEvent::Cleared {
            id: id.to_string(),
            desc,
        })
    }

    /// Applies one sample: raise at or above the high watermark, clear below the low one.
    pub fn check(
        &mut self,
        cfg: &AlarmsConfig,
        s: &Sample,
        max_connections: u64,
        now: &str,
    ) -> Vec<AlarmEvent> {
        let mut events = Vec::new();
        let mut step = |id: &str, value: Option<f64>, high: f64, low: f64, desc: String| {
            let Some(v) = value else { return };
            let e = if v >= high {
                self.raise(id, desc)
            } else if v < low {
                self.clear(id, now.to_string())
            } else {
                None
            };
            events.extend(e);
        };
        step(
            CPU,
            s.cpu,
            cfg.cpu_high_watermark,
            cfg.cpu_low_watermark,
            format!("{}", s.cpu.unwrap_or(0.0) * 100.0),
        );
        let sysmem_desc = format!("{}", s.sysmem.unwrap_or(0.0) * 100.0);
        step(
            SYSMEM,
            s.sysmem,
            cfg.sysmem_high_watermark,
            cfg.sysmem_high_watermark,
            sysmem_desc,
        );
        step(
            PROCMEM,
            s.procmem,
            cfg.procmem_high_watermark,
            cfg.procmem_high_watermark,
            s.rss.to_string(),
        );
        let ratio = s.connections as f64 / max_connections.max(1) as f64;
        step(
            CONNECTIONS,
            Some(ratio),
            cfg.connections_high_watermark,
            cfg.connections_low_watermark,
            s.connections.to_string(),
        );
        let failed = s.accept_failures.saturating_sub(self.accept_failures_prev);
        self.accept_failures_prev = s.accept_failures;
        events.extend(if failed > 0 {
            self.raise(
                ACCEPT_FAILED,
                format!("{failed} connections could not be accepted"),
            )
        } else {
            self.clear(ACCEPT_FAILED, now.to_string())
        });
        events
    }

    /// Reads the system figures (CPU use is the delta since the previous call).
    pub fn sample(&mut self, connections: u64, accept_failures: u64) -> Sample {
        let cpu = cpu_times().and_then(|(busy, total)| {
            let prev = self.cpu_prev.replace((busy, total));
            let (pb, pt) = prev?;
            let dt = total.checked_sub(pt).filter(|d| *d > 0)?;
            Some(busy.saturating_sub(pb) as f64 / dt as f64)
        });
        let mem = meminfo();
        let rss = rss_bytes();
        Sample {
            cpu,
            sysmem: mem.map(|(total, avail)| total.saturating_sub(avail) as f64 / total as f64),
            procmem: mem.map(|(total, _)| rss as f64 / total as f64),
            rss,
            connections,
            accept_failures,
        }
    }
}

/// (busy, total) jiffies of all CPUs from /proc/stat.
fn cpu_times() -> Option<(u64, u64)> {
    let text = std::fs::read_to_string("/proc/stat").ok()?;
    let line = text.lines().next()?.strip_prefix("cpu ")?;
    let v: Vec<u64> = line
        .split_whitespace()
        .filter_map(|x| x.parse().ok())
        .collect();
    let total: u64 = v.iter().take(8).sum();
    let idle = v.get(3)? + v.get(4).copied().unwrap_or(0);
    Some((total - idle, total))
}

/// (MemTotal, MemAvailable) in bytes from /proc/meminfo.
fn meminfo() -> Option<(u64, u64)> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let field = |name: &str| -> Option<u64> {
        let l = text.lines().find(|l| l.starts_with(name))?;
        Some(l.split_whitespace().nth(1)?.parse::<u64>().ok()? * 1024)
    };
    let total = field("MemTotal:").filter(|t| *t > 0)?;
    Some((total, field("MemAvailable:")?))
}

fn rss_bytes() -> u64 {
    let text = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    text.lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}

/// (VmSize, VmRSS) of this process in bytes, from /proc/self/status.
pub fn process_memory() -> (u64, u64) {
    let text = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
            .map(|kb| kb * 1024)
            .unwrap_or(0)
    };
    (field("VmSize:"), field("VmRSS:"))
}

/// The 1, 5 and 15 minute load averages as "2.75"-style strings.
pub fn load_average() -> [String; 3] {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let mut it = text
        .split_whitespace()
        .map(|v| v.parse::<f64>().unwrap_or(0.0));
    let mut next = || shardmq_http::model::format_load(it.next().unwrap_or(0.0));
    [next(), next(), next()]
}

/// RLIMIT_NOFILE's soft limit, from /proc/self/limits.
pub fn nofile_limit() -> u64 {
    let text = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
    text.lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watermarks_raise_and_clear_once_per_transition_and_keep_history() {
        let cfg = AlarmsConfig::default();
        let mut a = Alarms::default();
        let s = |cpu: f64, conns: u64| Sample {
            cpu: Some(cpu),
            connections: conns,
            ..Sample::default()
        };
        let ev = a.check(&cfg, &s(0.9, 0), 10, "t1");
        assert_eq!(ev.len(), 1);
        assert!(matches!(&ev[0], AlarmEvent::Raised { id, .. } if id == CPU));
        // Still high: no new event; between the watermarks: nothing changes.
        assert!(a.check(&cfg, &s(0.95, 0), 10, "t2").is_empty());
        assert!(a.check(&cfg, &s(0.7, 0), 10, "t3").is_empty());
        assert_eq!(a.present()[0].desc, "95");
        let ev = a.check(&cfg, &s(0.5, 9), 10, "t4");
        assert_eq!(ev.len(), 2, "{ev:?}");
        assert!(a.present().iter().any(|x| x.id == CONNECTIONS));
        assert_eq!(a.history()[0].clear_at, "t4");
        assert_eq!(a.history()[0].id, CPU);
        a.check(&cfg, &s(0.5, 1), 10, "t5");
        assert!(a.present().is_empty());
        assert_eq!(a.history().len(), 2);
    }

    #[test]
    fn accept_failures_raise_while_they_grow_and_clear_on_a_check_without_any() {
        let cfg = AlarmsConfig::default();
        let mut a = Alarms::default();
        let s = |failures: u64| Sample {
            accept_failures: failures,
            ..Sample::default()
        };
        assert!(a.check(&cfg, &s(0), 10, "t1").is_empty());
        let ev = a.check(&cfg, &s(40), 10, "t2");
        assert!(
            matches!(&ev[..], [AlarmEvent::Raised { id, desc }] if id == ACCEPT_FAILED && desc.starts_with("40 ")),
            "{ev:?}"
        );
        assert!(a.check(&cfg, &s(90), 10, "t3").is_empty(), "still failing");
        let ev = a.check(&cfg, &s(90), 10, "t4");
        assert!(matches!(&ev[..], [AlarmEvent::Cleared { id, .. }] if id == ACCEPT_FAILED));
        assert!(a.present().is_empty());
    }
}
