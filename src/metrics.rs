//! Per-shard counters and gauges, named exactly as EMQ X v3.1 names them.
//!
//! Owns: the metric set (`Metrics`, monotonic counters) and the stat set (`Stats`, gauges).
//! Each shard owns one `Metrics` and writes it alone (plain `u64`s, no atomics: a shard is
//! one thread). The management thread gets copies through `Collect` and adds them up with
//! [`Metrics::merge`]. How each counter counts is `../shared/emqx-v3-behaviour.md` section 5.

use serde::{Deserialize, Serialize};

macro_rules! metric_set {
    ($(#[$meta:meta])* $name:ident { $($field:ident => $key:literal,)* }
     $(beyond_emqx { $($xfield:ident => $xkey:literal,)* })?) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
        pub struct $name {
            $(#[doc = $key] pub $field: u64,)*
            $($(#[doc = $xkey] pub $xfield: u64,)*)?
        }

        impl $name {
            /// Every EMQ X entry as `(EMQ X name, value)`, in declaration order (what the
            /// REST API shows).
            pub fn entries(&self) -> Vec<(&'static str, u64)> {
                vec![$(($key, self.$field),)*]
            }

            /// ShardMQ's own entries beyond EMQ X's set (the per-core views show them).
            pub fn beyond_emqx(&self) -> Vec<(&'static str, u64)> {
                vec![$($(($xkey, self.$xfield),)*)?]
            }

            /// The EMQ X names, in declaration order.
            pub const NAMES: &'static [&'static str] = &[$($key,)*];

            /// Adds `other` into `self`, field by field.
            pub fn merge(&mut self, other: &$name) {
                $(self.$field += other.$field;)*
                $($(self.$xfield += other.$xfield;)*)?
            }

            /// The field-by-field maximum of `self` and `other`.
            pub fn max_of(&self, other: &$name) -> $name {
                $name {
                    $($field: self.$field.max(other.$field),)*
                    $($($xfield: self.$xfield.max(other.$xfield),)*)?
                }
            }
        }
    };
}

metric_set! {
    /// Monotonic counters since start (EMQ X `emqx_metrics`, 3.1 names).
    Metrics {
        bytes_received => "bytes/received",
        bytes_sent => "bytes/sent",
        packets_received => "packets/received",
        packets_sent => "packets/sent",
        packets_connect => "packets/connect",
        packets_connack => "packets/connack",
        packets_publish_received => "packets/publish/received",
        packets_publish_sent => "packets/publish/sent",
        packets_puback_received => "packets/puback/received",
        packets_puback_sent => "packets/puback/sent",
        packets_puback_missed => "packets/puback/missed",
        packets_pubrec_received => "packets/pubrec/received",
        packets_pubrec_sent => "packets/pubrec/sent",
        packets_pubrec_missed => "packets/pubrec/missed",
        packets_pubrel_received => "packets/pubrel/received",
        packets_pubrel_sent => "packets/pubrel/sent",
        packets_pubrel_missed => "packets/pubrel/missed",
        packets_pubcomp_received => "packets/pubcomp/received",
        packets_pubcomp_sent => "packets/pubcomp/sent",
        packets_pubcomp_missed => "packets/pubcomp/missed",
        packets_subscribe => "packets/subscribe",
        packets_suback => "packets/suback",
        packets_unsubscribe => "packets/unsubscribe",
        packets_unsuback => "packets/unsuback",
        packets_pingreq => "packets/pingreq",
        packets_pingresp => "packets/pingresp",
        packets_disconnect_received => "packets/disconnect/received",
        packets_disconnect_sent => "packets/disconnect/sent",
        packets_auth => "packets/auth",
        messages_received => "messages/received",
        messages_sent => "messages/sent",
        messages_qos0_received => "messages/qos0/received",
        messages_qos0_sent => "messages/qos0/sent",
        messages_qos1_received => "messages/qos1/received",
        messages_qos1_sent => "messages/qos1/sent",
        messages_qos2_received => "messages/qos2/received",
        messages_qos2_sent => "messages/qos2/sent",
        messages_qos2_dropped => "messages/qos2/dropped",
        messages_qos2_expired => "messages/qos2/expired",
        messages_dropped => "messages/dropped",
        messages_expired => "messages/expired",
        messages_forward => "messages/forward",
        messages_retained => "messages/retained",
    }
    beyond_emqx {
        dropped_no_subscribers => "messages/dropped/no_subscribers",
        dropped_queue_full => "messages/dropped/queue_full",
        dropped_qos0_offline => "messages/dropped/qos0_offline",
        dropped_slow_subscriber => "messages/dropped/slow_subscriber",
        dropped_invalid => "messages/dropped/invalid",
        dropped_queue_budget => "messages/dropped/queue_budget",
        dropped_acl_denied => "messages/dropped/acl_denied",
        dropped_too_large => "messages/dropped/too_large_for_client",
        connections_refused_over_cap => "connections/refused/max_connections",
        accept_failures => "connections/accept_failed",
        connections_cut_input_budget => "connections/cut/input_budget",
        handshake_failures => "connections/handshake_failed",
        tcp_bytes_received => "bytes/received/tcp",
        tcp_bytes_sent => "bytes/sent/tcp",
        ssl_bytes_received => "bytes/received/ssl",
        ssl_bytes_sent => "bytes/sent/ssl",
        ws_bytes_received => "bytes/received/ws",
        ws_bytes_sent => "bytes/sent/ws",
        wss_bytes_received => "bytes/received/wss",
        wss_bytes_sent => "bytes/sent/wss",
        connections_refused_auth_failed => "connections/refused/auth_failed",
        connections_refused_auth_throttled => "connections/refused/auth_throttled",
        auth_throttled_addresses => "auth/throttled_addresses",
        rules_matched => "rules.matched",
        actions_success => "actions.success",
        actions_failure => "actions.failure",
    }
}

metric_set! {
    /// Gauges of one shard right now (EMQ X `emqx_stats` `*/count`). The `*/max`
    /// high-water marks are kept by whoever samples them (see [`StatsWithMax`]).
    Stats {
        connections => "connections",
        sessions => "sessions",
        sessions_persistent => "sessions/persistent",
        topics => "topics",
        routes => "routes",
        subscribers => "subscribers",
        subscriptions => "subscriptions",
        subscriptions_shared => "subscriptions/shared",
        suboptions => "suboptions",
        retained => "retained",
    }
}

/// Why a message was dropped: every drop counts in `messages/dropped` and in one reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// Published where no subscription matched.
    NoSubscribers,
    /// A session's queue was at `max_mqueue` (the oldest QoS 0, else the oldest, went).
    QueueFull,
    /// QoS 0 for an offline session that does not store QoS 0 (`mqueue_store_qos0`).
    Qos0Offline,
    /// QoS 0 for a subscriber whose connection has more than 1 MiB unwritten.
    SlowSubscriber,
    /// Could not be published as asked (a malformed `$delayed` topic).
    Invalid,
    /// Shed from the largest queue when the shard's share of `mqtt.queue_budget` ran out.
    QueueBudget,
    /// Published where the ACL denies its client to publish.
    AclDenied,
    /// Larger than the Maximum Packet Size its 5.0 subscriber announced [MQTT-3.1.2-25].
    TooLargeForClient,
}

impl Metrics {
    /// Counts one dropped message and its reason.
    pub fn count_drop(&mut self, reason: DropReason) {
        self.messages_dropped += 1;
        match reason {
            DropReason::NoSubscribers => self.dropped_no_subscribers += 1,
            DropReason::QueueFull => self.dropped_queue_full += 1,
            DropReason::Qos0Offline => self.dropped_qos0_offline += 1,
            DropReason::SlowSubscriber => self.dropped_slow_subscriber += 1,
            DropReason::Invalid => self.dropped_invalid += 1,
            DropReason::QueueBudget => self.dropped_queue_budget += 1,
            DropReason::AclDenied => self.dropped_acl_denied += 1,
            DropReason::TooLargeForClient => self.dropped_too_large += 1,
        }
    }
}

/// Stats with their high-water marks, as EMQ X reports them (`x/count`, `x/max`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatsWithMax {
    /// Current values.
    pub count: Stats,
    /// Highest values seen by this sampler.
    pub max: Stats,
}

impl StatsWithMax {
    /// Records a new sample, raising the maxima.
    pub fn observe(&mut self, now: Stats) {
        self.count = now;
        self.max = self.max.max_of(&now);
    }

    /// `("connections/count", n), ("connections/max", m), ...` in EMQ X naming.
    pub fn entries(&self) -> Vec<(String, u64)> {
        let mut out = Vec::new();
        for ((name, c), (_, m)) in self.count.entries().into_iter().zip(self.max.entries()) {
            out.push((format!("{name}/count"), c));
            out.push((format!("{name}/max"), m));
        }
        out
    }
}

use crate::codec::Packet;

impl Metrics {
    /// Counts one packet read from a client: `packets/received` and its per-type counter.
    /// Byte counts are added by the reader, which knows the raw length.
    pub fn count_received(&mut self, packet: &Packet) {
        self.packets_received += 1;
        match packet {
            Packet::Connect(_) => self.packets_connect += 1,
            Packet::Publish(_) => self.packets_publish_received += 1,
            Packet::PubAck(_) => self.packets_puback_received += 1,
            Packet::PubRec(_) => self.packets_pubrec_received += 1,
            Packet::PubRel(_) => self.packets_pubrel_received += 1,
            Packet::PubComp(_) => self.packets_pubcomp_received += 1,
            Packet::Subscribe(_) => self.packets_subscribe += 1,
            Packet::Unsubscribe(_) => self.packets_unsubscribe += 1,
            Packet::PingReq => self.packets_pingreq += 1,
            Packet::Disconnect(_) => self.packets_disconnect_received += 1,
            // AUTH is never counted in EMQ X 3.1; server-bound-only packets fall through.
            _ => {}
        }
    }

    /// A PUBLISH on `topic` of `bytes` bytes went out (as [`Metrics::count_sent`] counts one).
    pub fn count_publish_sent(&mut self, topic: &str, bytes: usize) {
        if topic.starts_with("$SYS/") {
            return;
        }
        self.packets_sent += 1;
        self.bytes_sent += bytes as u64;
        self.packets_publish_sent += 1;
    }

    /// Counts one packet written to a client, `bytes` long on the wire. PUBLISH packets on
    /// `$SYS/` topics are not counted at all, as in EMQ X.
    pub fn count_sent(&mut self, packet: &Packet, bytes: usize) {
        if let Packet::Publish(p) = packet {
            return self.count_publish_sent(&p.topic, bytes);
        }
        self.packets_sent += 1;
        self.bytes_sent += bytes as u64;
        match packet {
            Packet::ConnAck(_) => self.packets_connack += 1,
            Packet::PubAck(_) => self.packets_puback_sent += 1,
            Packet::PubRec(_) => self.packets_pubrec_sent += 1,
            Packet::PubRel(_) => self.packets_pubrel_sent += 1,
            Packet::PubComp(_) => self.packets_pubcomp_sent += 1,
            Packet::SubAck(_) => self.packets_suback += 1,
            Packet::UnsubAck(_) => self.packets_unsuback += 1,
            Packet::PingResp => self.packets_pingresp += 1,
            Packet::Disconnect(_) => self.packets_disconnect_sent += 1,
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_names_are_the_43_of_emqx_3_1() {
        assert_eq!(Metrics::NAMES.len(), 43);
        let mut sorted = Metrics::NAMES.to_vec();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), 43, "names are unique");
    }

    #[test]
    fn merge_adds_field_by_field() {
        let mut a = Metrics {
            bytes_received: 3,
            packets_connect: 1,
            ..Default::default()
        };
        let b = Metrics {
            bytes_received: 4,
            messages_sent: 2,
            ..Default::default()
        };
        a.merge(&b);
        assert_eq!(a.bytes_received, 7);
        assert_eq!(a.packets_connect, 1);
        assert_eq!(a.messages_sent, 2);
    }

    #[test]
    fn stats_keep_high_water_marks() {
        let mut s = StatsWithMax::default();
        s.observe(Stats {
            connections: 5,
            retained: 1,
            ..Default::default()
        });
        s.observe(Stats {
            connections: 2,
            retained: 3,
            ..Default::default()
        });
        let e: std::collections::HashMap<_, _> = s.entries().into_iter().collect();
        assert_eq!(e["connections/count"], 2);
        assert_eq!(e["connections/max"], 5);
        assert_eq!(e["retained/max"], 3);
        assert_eq!(e.len(), 20);
    }
}
