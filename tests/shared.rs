//! Shared subscriptions (`$share/<group>/<filter>` and `$queue/<filter>`, EMQ X style):
//! each message goes to exactly one member of each group, whichever shards the members are
//! homed on; ordinary subscribers still get every message.

mod common;

use std::collections::HashSet;

use common::*;
use shardmq::codec::{Packet, PubResp, QoS};

const N: u32 = 60;

/// Publishes `N` QoS 1 messages numbered 0..N on `topic`.
fn publish_numbered(publisher: &mut Raw, topic: &str) {
    for i in 0..N {
        publisher.publish1(topic, &i.to_be_bytes(), (i + 1) as u16);
    }
}

/// Collects what each member got until `N` messages arrived in total, then checks that
/// nothing more comes. Returns the numbers per member.
fn collect(members: &mut [Raw]) -> Vec<Vec<u32>> {
    let mut got: Vec<Vec<u32>> = vec![Vec::new(); members.len()];
    let mut total = 0;
    let deadline = std::time::Instant::now() + WAIT;
    while total < N as usize {
        assert!(
            std::time::Instant::now() < deadline,
            "only {total} of {N} messages arrived: {got:?}"
        );
        for (i, m) in members.iter_mut().enumerate() {
            while let Some(p) = m.try_recv(std::time::Duration::from_millis(20)) {
                let Packet::Publish(p) = p else {
                    panic!("unexpected {p:?}")
                };
                if let Some(pid) = p.packet_id {
                    m.send(&Packet::PubAck(PubResp::new(pid)));
                }
                got[i].push(u32::from_be_bytes(p.payload[..].try_into().unwrap()));
                total += 1;
            }
        }
    }
    for m in members.iter_mut() {
        m.expect_nothing();
    }
    got
}

/// Every number exactly once over all members.
fn assert_exactly_once(got: &[Vec<u32>]) {
    let all: Vec<u32> = got.iter().flatten().copied().collect();
    assert_eq!(all.len(), N as usize, "{got:?}");
    let distinct: HashSet<u32> = all.iter().copied().collect();
    assert_eq!(
        distinct,
        (0..N).collect(),
        "each message exactly once: {got:?}"
    );
}

fn members(broker: &TestBroker, filter: &str, shards: &[usize]) -> Vec<Raw> {
    shards
        .iter()
        .enumerate()
        .map(|(i, &s)| {
            let mut m = broker.client(&id_on_shard(&format!("member{i}"), s), true);
            assert_eq!(m.subscribe(1, &[(filter, QoS::AtLeastOnce)]), vec![1]);
            m
        })
        .collect()
}

#[test]
fn share_group_members_on_different_shards_get_each_message_exactly_once() {
    let broker = TestBroker::default_broker();
    let mut ms = members(&broker, "$share/g/sh/t", &[0, 1, 0, 1]);
    let mut publisher = broker.client(&id_on_shard("sh-pub", 0), true);
    publish_numbered(&mut publisher, "sh/t");
    let got = collect(&mut ms);
    assert_exactly_once(&got);
    // Random picks: with 60 messages every member gets some.
    for (i, g) in got.iter().enumerate() {
        assert!(!g.is_empty(), "member {i} got nothing: {got:?}");
    }
}

#[test]
fn queue_members_on_different_shards_get_each_message_exactly_once() {
    let broker = TestBroker::default_broker();
    let mut ms = members(&broker, "$queue/q/t", &[1, 0]);
    let mut publisher = broker.client(&id_on_shard("q-pub", 1), true);
    publish_numbered(&mut publisher, "q/t");
    let got = collect(&mut ms);
    assert_exactly_once(&got);
    assert!(got.iter().all(|g| !g.is_empty()), "{got:?}");
}

#[test]
fn share_group_with_wildcard_filter() {
    let broker = TestBroker::default_broker();
    let mut ms = members(&broker, "$share/w/wq/+", &[0, 1]);
    let mut publisher = broker.client(&id_on_shard("wq-pub", 0), true);
    publish_numbered(&mut publisher, "wq/x");
    assert_exactly_once(&collect(&mut ms));
}

#[test]
fn each_group_gets_every_message_and_plain_subscribers_too() {
    let broker = TestBroker::default_broker();
    let mut g1 = members(&broker, "$share/g1/multi/t", &[0, 1]);
    let mut g2 = members(&broker, "$share/g2/multi/t", &[1, 0]);
    let mut plain = broker.client(&id_on_shard("plain", 1), true);
    plain.subscribe(1, &[("multi/t", QoS::AtMostOnce)]);
    let mut publisher = broker.client(&id_on_shard("multi-pub", 0), true);
    publish_numbered(&mut publisher, "multi/t");
    assert_exactly_once(&collect(&mut g1));
    assert_exactly_once(&collect(&mut g2));
    let all: Vec<u32> = (0..N)
        .map(|_| u32::from_be_bytes(plain.recv_publish().payload[..].try_into().unwrap()))
        .collect();
    assert_eq!(all, (0..N).collect::<Vec<_>>());
}

#[test]
fn a_member_that_unsubscribes_gets_no_more_messages() {
    let broker = TestBroker::default_broker();
    let mut ms = members(&broker, "$share/u/us/t", &[0, 1]);
    ms[0].unsubscribe(2, &["$share/u/us/t"]);
    let mut publisher = broker.client(&id_on_shard("us-pub", 0), true);
    publish_numbered(&mut publisher, "us/t");
    let got = collect(&mut ms);
    assert!(got[0].is_empty(), "{got:?}");
    assert_exactly_once(&got);
}

#[test]
fn shared_subscription_with_rumqttc_members_on_both_shards() {
    let broker = TestBroker::default_broker();
    block_on(async {
        let mut ms = Vec::new();
        for shard in 0..SHARDS {
            let (mut m, _) =
                Rumq::connect(broker.addr, &id_on_shard("rq-member", shard), true).await;
            m.subscribe("$share/rq/rqs/t", rumqttc::QoS::AtLeastOnce)
                .await;
            ms.push(m);
        }
        let (publisher, _) = Rumq::connect(broker.addr, &id_on_shard("rq-spub", 1), true).await;
        for i in 0..N {
            publisher
                .client
                .publish(
                    "rqs/t",
                    rumqttc::QoS::AtLeastOnce,
                    false,
                    i.to_be_bytes().to_vec(),
                )
                .await
                .unwrap();
        }
        publisher.disconnect().await;
        let mut got = vec![Vec::new(); ms.len()];
        let mut total = 0;
        while total < N as usize {
            let mut progressed = false;
            for (i, m) in ms.iter_mut().enumerate() {
                for p in m.drain_quiet().await {
                    got[i].push(u32::from_be_bytes(p.payload[..].try_into().unwrap()));
                    total += 1;
                    progressed = true;
                }
            }
            assert!(progressed, "stalled at {total} of {N}: {got:?}");
        }
        assert_exactly_once(&got);
    });
}

/// [MQTT 5.0 4.8.2] a client with a shared and a non-shared subscription matching the same
/// message gets the non-shared copy, and the shared copy too when its group picks it: the
/// group must not lose the message to the per-client de-duplication.
#[test]
fn a_member_that_also_has_a_plain_subscription_does_not_starve_its_group() {
    let broker = TestBroker::default_broker();
    for shard in 0..SHARDS {
        let mut both = broker.client(&id_on_shard("both", shard), true);
        both.subscribe(
            1,
            &[
                ("dup/t", QoS::AtLeastOnce),
                ("$share/g/dup/t", QoS::AtLeastOnce),
            ],
        );
        let mut other = broker.client(&id_on_shard("only-shared", shard), true);
        other.subscribe(1, &[("$share/g/dup/t", QoS::AtLeastOnce)]);
        let mut publisher = broker.client(&id_on_shard("dup-pub", 1 - shard), true);
        publish_numbered(&mut publisher, "dup/t");
        let mut members = [both, other];
        let got = collect_at_least(&mut members, 2 * N as usize);
        // `both` got every message once as a plain subscriber; over both members, each
        // message once more through the group.
        let mut all: Vec<u32> = got.iter().flatten().copied().collect();
        all.sort();
        let mut want: Vec<u32> = (0..N).flat_map(|i| [i, i]).collect();
        want.sort();
        assert_eq!(all, want, "shard {shard}: {got:?}");
    }
}

/// A client in two groups is picked by each group independently.
#[test]
fn a_client_in_two_groups_gets_a_copy_per_group_that_picks_it() {
    let broker = TestBroker::default_broker();
    let mut c = broker.client(&id_on_shard("two-groups", 0), true);
    c.subscribe(
        1,
        &[
            ("$share/a/tg/t", QoS::AtMostOnce),
            ("$share/b/tg/t", QoS::AtMostOnce),
        ],
    );
    let mut publisher = broker.client(&id_on_shard("tg-pub", 1), true);
    publisher.publish0("tg/t", b"x");
    publisher.ping();
    assert_eq!(&c.recv_publish().payload[..], b"x");
    assert_eq!(&c.recv_publish().payload[..], b"x");
    c.expect_nothing();
}

/// Collects what each member gets (acknowledging QoS 1) until at least `min_total`
/// messages arrived in all and then nothing more for [`QUIET`], or [`WAIT`] passed.
fn collect_at_least(members: &mut [Raw], min_total: usize) -> Vec<Vec<u32>> {
    use std::time::{Duration, Instant};
    let mut got: Vec<Vec<u32>> = vec![Vec::new(); members.len()];
    let deadline = Instant::now() + WAIT;
    let mut idle_since: Option<Instant> = None;
    let mut n = 0;
    loop {
        let mut progressed = false;
        for (i, m) in members.iter_mut().enumerate() {
            while let Some(p) = m.try_recv(Duration::from_millis(10)) {
                let Packet::Publish(p) = p else {
                    panic!("unexpected {p:?}")
                };
                if let Some(pid) = p.packet_id {
                    m.send(&Packet::PubAck(PubResp::new(pid)));
                }
                got[i].push(u32::from_be_bytes(p.payload[..].try_into().unwrap()));
                n += 1;
                progressed = true;
            }
        }
        if progressed {
            idle_since = None;
        } else if n >= min_total {
            if idle_since.get_or_insert_with(Instant::now).elapsed() >= QUIET {
                return got;
            }
        } else if Instant::now() > deadline {
            return got; // the caller's assertion shows what is missing
        }
    }
}
