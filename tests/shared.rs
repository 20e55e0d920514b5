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
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
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
