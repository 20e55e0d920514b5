//! Scenarios turned into a list of clients: who publishes where, who subscribes to what.
//!
//! Owns: the topic layout of each scenario and how many copies of each message are due
//! (`fanout`), which is what loss is measured against.
//! Must never: open sockets or read the clock.

use serde::Serialize;

/// The load shapes the generator knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scenario {
    /// N publishers, one subscriber on a wildcard (or a `$share` group of `--shared` members).
    Fanin,
    /// One publisher, N subscribers of its topic.
    Fanout,
    /// N publisher/subscriber pairs, one topic each.
    Pairs,
    /// A connection storm: N clients connect (no traffic); connects/s and CONNACK latency.
    Conn,
    /// N clients, each publishing at a fixed rate to the next one's topic.
    Mixed,
    /// A probe, not a load: one QoS 1 subscriber that acknowledges nothing and one publisher
    /// of `--count` messages (default 1000); reports how many the broker sends before it waits
    /// for acknowledgements (its real in-flight window towards a client).
    Window,
    /// A probe, not a load: one client on its own, one request at a time: PINGREQ, QoS 1 and
    /// QoS 2 publishes, CONNECT (`--count` rounds each, default 1000); round-trip percentiles.
    Rtt,
}

/// One client connection of the run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientSpec {
    /// Index in the plan (also part of the client id).
    pub index: usize,
    /// Publishes to this topic with this dense publisher id.
    pub publish: Option<(u32, String)>,
    /// Subscribes to this filter.
    pub subscribe: Option<String>,
}

/// The whole run's clients.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub clients: Vec<ClientSpec>,
    /// Publishers in the plan (ids are `0..publishers`).
    pub publishers: u32,
    /// Deliveries due for every message published.
    pub fanout: u64,
}

/// Builds the plan. `n` is the scenario's size (publishers for fanin, subscribers for fanout,
/// pairs, connections, or mixed clients); `shared` > 0 makes fanin use a `$share` group;
/// `prefix` keeps concurrent runs on one broker apart.
pub fn build(scenario: Scenario, n: usize, shared: usize, prefix: &str) -> Plan {
    let n = n.max(1);
    let mut clients = Vec::new();
    let mut push = |publish: Option<(u32, String)>, subscribe: Option<String>| {
        let index = clients.len();
        clients.push(ClientSpec {
            index,
            publish,
            subscribe,
        });
    };
    let (publishers, fanout) = match scenario {
        Scenario::Fanin => {
            let filter = format!("{prefix}/in/+");
            if shared > 0 {
                for _ in 0..shared {
                    push(None, Some(format!("$share/bench/{filter}")));
                }
            } else {
                push(None, Some(filter));
            }
            for p in 0..n {
                push(Some((p as u32, format!("{prefix}/in/{p}"))), None);
            }
            (n as u32, 1)
        }
        Scenario::Fanout => {
            let topic = format!("{prefix}/out");
            for _ in 0..n {
                push(None, Some(topic.clone()));
            }
            push(Some((0, topic)), None);
            (1, n as u64)
        }
        Scenario::Pairs => {
            for p in 0..n {
                let topic = format!("{prefix}/pair/{p}");
                push(None, Some(topic.clone()));
                push(Some((p as u32, topic)), None);
            }
            (n as u32, 1)
        }
        Scenario::Rtt => (0, 0), // run by `rtt::rtt`, not by the workers
        Scenario::Window => {
            // Run by `probe::window`, not by the workers: one silent subscriber, one publisher.
            let topic = format!("{prefix}/window");
            push(None, Some(topic.clone()));
            push(Some((0, topic)), None);
            (1, 1)
        }
        Scenario::Conn => {
            for _ in 0..n {
                push(None, None);
            }
            (0, 0)
        }
        Scenario::Mixed => {
            for p in 0..n {
                let to = format!("{prefix}/mix/{}", (p + 1) % n);
                push(Some((p as u32, to)), Some(format!("{prefix}/mix/{p}")));
            }
            (n as u32, 1)
        }
    };
    Plan {
        clients,
        publishers,
        fanout,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fanin_has_one_wildcard_subscriber_or_a_share_group() {
        let p = build(Scenario::Fanin, 16, 0, "b");
        assert_eq!(p.clients.len(), 17);
        assert_eq!(p.publishers, 16);
        assert_eq!(p.fanout, 1);
        assert_eq!(p.clients[0].subscribe.as_deref(), Some("b/in/+"));
        let s = build(Scenario::Fanin, 4, 3, "b");
        assert_eq!(s.clients.len(), 7);
        assert!(s.clients[..3]
            .iter()
            .all(|c| c.subscribe.as_deref() == Some("$share/bench/b/in/+")));
        assert_eq!(s.fanout, 1);
    }

    #[test]
    fn fanout_expects_one_copy_per_subscriber() {
        let p = build(Scenario::Fanout, 16, 0, "b");
        assert_eq!(p.publishers, 1);
        assert_eq!(p.fanout, 16);
        assert_eq!(
            p.clients.iter().filter(|c| c.subscribe.is_some()).count(),
            16
        );
    }

    #[test]
    fn mixed_clients_publish_to_their_neighbour() {
        let p = build(Scenario::Mixed, 3, 0, "b");
        assert_eq!(p.clients[2].publish, Some((2, "b/mix/0".to_string())));
        assert_eq!(p.clients[0].subscribe.as_deref(), Some("b/mix/0"));
    }

    #[test]
    fn conn_and_pairs_shapes() {
        let c = build(Scenario::Conn, 5, 0, "b");
        assert_eq!((c.clients.len(), c.publishers, c.fanout), (5, 0, 0));
        let p = build(Scenario::Pairs, 8, 0, "b");
        assert_eq!((p.clients.len(), p.publishers, p.fanout), (16, 8, 1));
    }
}
