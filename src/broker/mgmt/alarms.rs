//! The alarm checks: every `alarms.check_interval_ms` the management thread samples the
//! monitors ([`super::monitors`]) against the node's totals and publishes each raise and clear
//! to `$SYS/brokers/<node>/alarms/alert|clear`.
//!
//! Runs on the management executor. Must never: run on a shard.

use super::collector::Broker;
use super::monitors::AlarmEvent;
use crate::broker::sys::datetime_now;
use crate::broker::views::Publish;
use crate::home_shard;
use crate::session::Message;

impl Broker {
    /// One check of every monitor; raises and clears are published to `$SYS`.
    pub async fn check_alarms(&self) {
        let ((metrics, stats), cov) = self.totals().await;
        if !cov.is_complete() {
            return;
        }
        let cfg = &self.cfg.alarms;
        let events = {
            let mut alarms = self.admin.alarms.borrow_mut();
            let sample = alarms.sample(stats.connections, metrics.accept_failures);
            alarms.check(
                cfg,
                &sample,
                self.cfg.listeners.tcp.max_connections,
                &datetime_now(),
            )
        };
        for e in events {
            let (kind, id, desc) = match e {
                AlarmEvent::Raised { id, desc } => ("alert", id, desc),
                AlarmEvent::Cleared { id, desc } => ("clear", id, desc),
            };
            let topic = format!("$SYS/brokers/{}/alarms/{kind}", self.node);
            let payload = serde_json::json!({
                "id": id,
                "desc": desc,
                "node": self.node,
                "ts": crate::broker::shard::unix_secs(),
            });
            let msg = Box::new(Message::system(topic.clone(), payload.to_string()));
            let to = [home_shard(&topic, self.facts.shards)];
            self.ask(&to, || Publish(msg.clone())).await;
        }
    }
}
