//! Property test of the session state machine: random configurations and random scripts of
//! client packets, deliveries, clock advances, ticks, connection losses and reconnects, run
//! against the reference model of `session_check` (which checks every step). The cargo-fuzz
//! target `session` runs the same harness on fuzzer-made scripts.
//!
//! Owns: the generators (configurations around the edges that matter: tiny windows and
//! queues, retries, expiries; packet ids drawn mostly from those in flight). Bounded to run
//! in a few seconds.

mod session_check;

use std::time::Duration;

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::select;
use session_check::{ConnectSpec, Harness, Id, In, Op, Setup, FILTERS, TOPICS, VALID_TOPICS};
use shardmq::codec::{ProtocolVersion, QoS};
use shardmq::session::SessionConfig;

fn qos() -> impl Strategy<Value = QoS> {
    select(vec![QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce])
}

fn secs(choices: &[u64]) -> impl Strategy<Value = Duration> {
    select(choices.to_vec()).prop_map(Duration::from_secs)
}

fn config() -> impl Strategy<Value = SessionConfig> {
    (
        (
            select(vec![0u16, 1, 2, 3, 32]),
            select(vec![0usize, 1, 3, 1000]),
            any::<bool>(),
            select(vec![0usize, 1, 2, 100]),
            secs(&[0, 5, 300]),
            secs(&[0, 1, 30]),
        ),
        (
            any::<bool>(),
            select(vec![0usize, 1, 2]),
            secs(&[0, 10, 7200, 7200]),
            prop_oneof![3 => Just(QoS::ExactlyOnce), 1 => qos()],
        ),
    )
        .prop_map(|(a, b)| SessionConfig {
            max_inflight: a.0,
            max_mqueue: a.1,
            mqueue_store_qos0: a.2,
            max_awaiting_rel: a.3,
            await_rel_timeout: a.4,
            retry_interval: a.5,
            keepalive_multiplier: 1.5,
            upgrade_qos: b.0,
            max_subscriptions: b.1,
            session_expiry: b.2,
            max_qos_allowed: b.3,
            max_topic_levels: 201,
            max_topic_alias: 10,
            journal: true,
        })
}

fn connect() -> impl Strategy<Value = ConnectSpec> {
    (
        select(vec![
            ProtocolVersion::V31,
            ProtocolVersion::V311,
            ProtocolVersion::V5,
        ]),
        prop::bool::weighted(0.3),
        select(vec![0u16, 1, 5, 60]),
        prop::option::weighted(0.6, select(vec![1u16, 2, 3, 65535])),
        prop::option::weighted(0.8, select(vec![0u32, 5, 3600, u32::MAX])),
        any::<bool>(),
    )
        .prop_map(
            |(protocol, clean_start, keep_alive, receive_maximum, session_expiry, will)| {
                ConnectSpec {
                    protocol,
                    clean_start,
                    keep_alive,
                    receive_maximum,
                    session_expiry,
                    will,
                }
            },
        )
}

/// Mostly ids of messages in flight; sometimes any id, 0 included.
fn id() -> impl Strategy<Value = Id> {
    prop_oneof![
        4 => any::<u8>().prop_map(Id::Sent),
        1 => select(vec![0u16, 1, 2, 3, 65535]).prop_map(Id::Raw),
    ]
}

/// Mostly valid topic names (an invalid one closes the connection).
fn topic() -> impl Strategy<Value = usize> {
    prop_oneof![9 => 0..VALID_TOPICS, 1 => 0..TOPICS.len()]
}

fn packet() -> impl Strategy<Value = In> {
    let filters = || vec((0..FILTERS.len(), qos(), any::<bool>()), 0..4);
    prop_oneof![
        6 => (qos(), prop::bool::weighted(0.05), any::<bool>(), prop::option::weighted(0.95, id()), topic())
            .prop_map(|(qos, dup, retain, id, topic)| In::Publish { qos, dup, retain, id, topic }),
        4 => id().prop_map(In::PubAck),
        4 => (id(), select(vec![0u8, 0x10, 0x80, 0x97])).prop_map(|(id, r)| In::PubRec(id, r)),
        3 => id().prop_map(In::PubRel),
        4 => id().prop_map(In::PubComp),
        2 => (any::<u16>(), filters()).prop_map(|(id, f)| In::Subscribe(id, f)),
        1 => (any::<u16>(), vec(0..FILTERS.len(), 0..3)).prop_map(|(id, f)| In::Unsubscribe(id, f)),
        1 => Just(In::PingReq),
        1 => (select(vec![0u8, 4, 0x80]), prop::option::of(select(vec![0u32, 10, 99999])))
            .prop_map(|(r, e)| In::Disconnect(r, e)),
        1 => prop_oneof![Just(In::Connect), (0..4u8).prop_map(In::ServerOnly), Just(In::Auth)],
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        10 => packet().prop_map(Op::Packet),
        10 => (qos(), qos(), prop::bool::weighted(0.2), any::<bool>(), prop::bool::weighted(0.3))
            .prop_map(|(qos, sub_qos, no_local, retain, own)| Op::Deliver { qos, sub_qos, no_local, retain, own }),
        3 => select(vec![1u64, 499, 1000, 1500, 5000, 30_000, 301_000, 7_200_000])
            .prop_map(|ms| Op::Advance(Duration::from_millis(ms))),
        3 => Just(Op::Tick),
        1 => Just(Op::ConnectionLost),
        3 => connect().prop_map(Op::Reconnect),
        1 => (any::<bool>(), 0..FILTERS.len(), qos())
            .prop_map(|(subscribe, filter, qos)| Op::Api { subscribe, filter, qos }),
        1 => any::<bool>().prop_map(Op::Hold),
        1 => vec(any::<u8>(), 0..24).prop_map(Op::Raw),
        1 => select(vec![1u16, 7, 300]).prop_map(Op::Cycle),
    ]
}

fn setup() -> impl Strategy<Value = Setup> {
    (config(), connect()).prop_map(|(cfg, connect)| Setup { cfg, connect })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn the_session_agrees_with_its_model(setup in setup(), ops in vec(op(), 0..80)) {
        Harness::run(&setup, &ops);
    }
}

/// Packet ids wrap after 65535 and skip the ids still in flight (too long a run for the
/// random scripts above to reach).
#[test]
fn packet_ids_wrap_and_skip_those_in_flight() {
    let setup = Setup {
        cfg: SessionConfig::default(),
        connect: ConnectSpec {
            protocol: ProtocolVersion::V311,
            clean_start: true,
            keep_alive: 0,
            receive_maximum: None,
            session_expiry: None,
            will: false,
        },
    };
    let hold = Op::Deliver {
        qos: QoS::AtLeastOnce,
        sub_qos: QoS::AtLeastOnce,
        no_local: false,
        retain: false,
        own: false,
    };
    // Ids 1 and 2 stay in flight while 3..=65535 come and go; then 1 and 2 must be skipped.
    let ops = [hold.clone(), hold, Op::Cycle(65533), Op::Cycle(3)];
    Harness::run(&setup, &ops);
}

/// The random scripts reach the interesting paths (else the property above would hold
/// vacuously): first sends, re-sends, acknowledgements that free the window, resumes (into
/// a smaller window too), closes and incoming QoS 2 flows.
#[test]
fn scripts_reach_the_interesting_paths() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;

    let mut runner = TestRunner::deterministic();
    let mut total = session_check::Stats::default();
    for _ in 0..300 {
        let setup = setup().new_tree(&mut runner).unwrap().current();
        let ops = vec(op(), 0..80).new_tree(&mut runner).unwrap().current();
        let s = Harness::run(&setup, &ops);
        total.first_sends += s.first_sends;
        total.resends += s.resends;
        total.freed += s.freed;
        total.resumes += s.resumes;
        total.smaller_resumes += s.smaller_resumes;
        total.closes += s.closes;
        total.qos2_routed += s.qos2_routed;
    }
    // Measured: 19703 first sends, 490 re-sends, 18115 freed, 330 resumes (4 into a
    // smaller window), 339 closes, 112 QoS 2 routed.
    let t = total;
    assert!(t.first_sends > 8000 && t.freed > 8000, "{t:?}");
    assert!(
        t.resends > 200 && t.resumes > 150 && t.smaller_resumes > 0,
        "{t:?}"
    );
    assert!(t.closes > 150 && t.qos2_routed > 50, "{t:?}");
}
