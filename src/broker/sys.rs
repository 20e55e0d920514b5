//! `$SYS/brokers/<node>/...`: the broker's own topics, in EMQ X's names and layout.
//!
//! Owns: the periodic `$SYS` publisher. Runs on shard 0 only: every `sys.heartbeat` seconds
//! uptime and datetime, every `sys.interval` seconds version, sysdescr, the node list, and
//! node-wide stats and metrics (collected from every shard), as EMQ X's `sys_heartbeat` and
//! `sys_interval` do. Client connect/disconnect events are published by
//! the shard that serves the client (see `Shard::connect_client`).
//! Must never: count its messages in the client-facing metrics (the shard's counters skip
//! `$SYS/` topics).

use std::rc::Rc;
use std::time::{Duration, Instant};

use shardmq_shards::rt;

use super::shard::Shard;
use crate::session::Message;

/// The version string reported everywhere.
pub const VERSION: &str = concat!("v", env!("CARGO_PKG_VERSION"));
/// The system description.
pub const SYSDESCR: &str = "ShardMQ Broker";

/// Publishes the periodic `$SYS` topics until shutdown: each kind on its own period (0: never).
pub async fn run(shard: Rc<Shard>) {
    let period = |secs: u64| (secs > 0).then(|| Duration::from_secs(secs));
    let (interval, heartbeat) = (
        period(shard.cfg.sys.interval),
        period(shard.cfg.sys.heartbeat),
    );
    let start = Instant::now();
    let (mut next_round, mut next_beat) =
        (interval.map(|p| start + p), heartbeat.map(|p| start + p));
    while let Some(next) = next_round.into_iter().chain(next_beat).min() {
        rt::sleep(next.saturating_duration_since(Instant::now())).await;
        if shard.shutdown.is_set() {
            return;
        }
        let now = Instant::now();
        if next_beat.is_some_and(|t| t <= now) {
            publish_heartbeat(&shard);
            next_beat = heartbeat.map(|p| now + p);
        }
        if next_round.is_some_and(|t| t <= now) {
            publish_once(&shard).await;
            next_round = interval.map(|p| now + p);
        }
    }
}

/// The heartbeat's `$SYS` messages: uptime and datetime.
fn publish_heartbeat(shard: &Rc<Shard>) {
    let base = format!("$SYS/brokers/{}", shard.node);
    shard.publish(Message::system(
        format!("{base}/uptime"),
        uptime_string(shard.started.elapsed().as_secs()),
    ));
    shard.publish(Message::system(format!("{base}/datetime"), datetime_now()));
}

/// One round of the interval's `$SYS` messages.
pub async fn publish_once(shard: &Rc<Shard>) {
    let base = format!("$SYS/brokers/{}", shard.node);
    let publish = |topic: String, payload: String| shard.publish(Message::system(topic, payload));
    publish("$SYS/brokers".to_string(), shard.node.clone());
    publish(format!("{base}/version"), VERSION.to_string());
    publish(format!("{base}/sysdescr"), SYSDESCR.to_string());
    let (metrics, stats) = shard.node_totals().await;
    let mut with_max = crate::metrics::StatsWithMax::default();
    with_max.observe(stats);
    for (name, value) in with_max.entries() {
        if name.ends_with("/count") {
            shard.publish(Message::system(
                format!("{base}/stats/{name}"),
                value.to_string(),
            ));
        }
    }
    for (name, value) in metrics.entries() {
        shard.publish(Message::system(
            format!("{base}/metrics/{name}"),
            value.to_string(),
        ));
    }
}

/// EMQ X's uptime text: "S seconds", "M minutes, S seconds", "H hours, M minutes, S seconds",
/// "D days,H hours, M minutes, S seconds" (always plural; no space after "days,").
pub fn uptime_string(secs: u64) -> String {
    let (d, h, m, s) = (secs / 86_400, secs / 3_600 % 24, secs / 60 % 60, secs % 60);
    if d > 0 {
        format!("{d} days,{h} hours, {m} minutes, {s} seconds")
    } else if h > 0 {
        format!("{h} hours, {m} minutes, {s} seconds")
    } else if m > 0 {
        format!("{m} minutes, {s} seconds")
    } else {
        format!("{s} seconds")
    }
}

/// Local time as "YYYY-MM-DD HH:MM:SS".
pub fn datetime_now() -> String {
    chrono::Local::now().format("%Y-%m-%d %H:%M:%S").to_string()
}

#[cfg(test)]
mod tests {
    use super::uptime_string;

    #[test]
    fn uptime_reads_like_emqx() {
        assert_eq!(uptime_string(5), "5 seconds");
        assert_eq!(uptime_string(65), "1 minutes, 5 seconds");
        assert_eq!(uptime_string(3_725), "1 hours, 2 minutes, 5 seconds");
        assert_eq!(
            uptime_string(86_400 + 18 * 3_600 + 45 * 60 + 1),
            "1 days,18 hours, 45 minutes, 1 seconds"
        );
    }
}
