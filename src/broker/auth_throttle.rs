//! The MQTT listener's failed-authentication throttle (`mqtt.auth_fail_limit`,
//! `auth_fail_window`, `auth_fail_backoff`): one table for the whole node, shared by the
//! shards. The decisions are the pure [`AuthThrottle`]'s; this is where it lives and how the
//! shards reach it.
//!
//! Why one shared table behind a lock, in a shared-nothing broker: a CONNECT is checked on the
//! shard that serves it, the home shard the *client* picks through its client id or the
//! accepting shard `SO_REUSEPORT` picks (which spreads its connections over the shards). Per-shard tables would give a guesser S
//! times the allowance; dividing the allowance by S would instead throttle an honest client S
//! times sooner (all its attempts land on its one home shard), or never be able to express a
//! limit smaller than S. A node-wide table has neither problem, and it costs the hot path
//! nothing: the lock is taken only for an address that failed — on a failure, and when the
//! lock-free [`Presence`] hint says the address may be in the table (a CONNECT from it
//! checks, an authenticated one clears it). A CONNECT from an address without recent
//! failures — every honest client, also while an attack comes from elsewhere — reads one
//! atomic and takes no lock. Failures are rare events, and under attack the lock is held for
//! a hash-map lookup per attempt.
//!
//! Runs on: every shard thread (created once at start, before the shards).
//! Must never: be touched on the message path, take its lock for an address the hint rules
//! out, or hold its lock across anything but the table's own methods.

use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use shardmq_http::throttle::{AuthThrottle, Failure, Presence, ThrottleConfig};

use crate::config::Config;

/// The node's MQTT failed-authentication table.
#[derive(Debug)]
pub struct MqttAuthThrottle {
    table: Mutex<AuthThrottle>,
    presence: Arc<Presence>,
    cfg: ThrottleConfig,
}

impl MqttAuthThrottle {
    /// The table of `mqtt.auth_fail_*`.
    pub fn new(cfg: &Config) -> Arc<MqttAuthThrottle> {
        let m = &cfg.mqtt;
        Self::with(ThrottleConfig::from_secs(
            m.auth_fail_limit,
            m.auth_fail_window,
            m.auth_fail_backoff,
        ))
    }

    pub fn with(cfg: ThrottleConfig) -> Arc<MqttAuthThrottle> {
        let table = AuthThrottle::new(cfg);
        Arc::new(MqttAuthThrottle {
            presence: table.presence(),
            table: Mutex::new(table),
            cfg,
        })
    }

    pub fn config(&self) -> &ThrottleConfig {
        &self.cfg
    }

    /// Before the credentials are checked: `Some(time left)` while `ip` is in back-off.
    pub fn refused(&self, ip: IpAddr) -> Option<Duration> {
        if !self.cfg.enabled() || !self.presence.may_track(ip) {
            return None;
        }
        self.lock().check(ip, Instant::now())
    }

    /// Credentials refused: counts against `ip`.
    pub fn failed(&self, ip: IpAddr) -> Failure {
        if !self.cfg.enabled() {
            return Failure::Counted;
        }
        self.lock().failure(ip, Instant::now())
    }

    /// Credentials verified: `ip`'s failures are forgotten (a back-off in force stays).
    pub fn authenticated(&self, ip: IpAddr) {
        if self.cfg.enabled() && self.presence.may_track(ip) {
            self.lock().success(ip, Instant::now());
        }
    }

    fn lock(&self) -> MutexGuard<'_, AuthThrottle> {
        // The table's methods do not panic; if one ever did, its state is still a valid table.
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_share_one_allowance() {
        let t = MqttAuthThrottle::with(ThrottleConfig::from_secs(4, 60, 60));
        let a: IpAddr = "10.1.2.3".parse().unwrap();
        // Four shards, one failure each: the node-wide limit, not four times it.
        let shards: Vec<_> = (0..4)
            .map(|_| {
                let t = t.clone();
                std::thread::spawn(move || t.failed(a))
            })
            .collect();
        let throttled = shards
            .into_iter()
            .map(|h| h.join().unwrap())
            .filter(|f| matches!(f, Failure::Throttled { .. }))
            .count();
        assert_eq!(throttled, 1);
        assert!(t.refused(a).is_some());
        t.authenticated(a);
        assert!(t.refused(a).is_some(), "a success does not lift a back-off");
        assert!(t.refused("10.1.2.4".parse().unwrap()).is_none());
    }

    #[test]
    fn off_never_refuses() {
        let t = MqttAuthThrottle::with(ThrottleConfig::off());
        let a: IpAddr = "10.1.2.3".parse().unwrap();
        for _ in 0..10 {
            assert_eq!(t.failed(a), Failure::Counted);
        }
        assert!(t.refused(a).is_none());
    }
}
