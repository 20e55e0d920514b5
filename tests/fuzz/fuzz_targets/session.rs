//! Fuzz target: the session state machine (`shardmq::session::Session`) driven by
//! fuzzer-made scripts: a configuration and first CONNECT, then client packets (structured,
//! or raw bytes decoded with the codec, a second CONNECT included), deliveries, clock
//! advances, ticks, connection losses and reconnects (resume or a fresh session),
//! management-API subscriptions, flow-control holds, and runs of acknowledged deliveries
//! that move the packet ids on. Every step is checked against the reference model of
//! `tests/session_check` (shared with the property test `tests/prop_session.rs`): answers
//! to the client as the spec says (no PUBACK/PUBREC/PUBCOMP for an id not received), the
//! window never over the configured/Receive Maximum bound, fresh packet ids unique among
//! those in flight, re-sends in order, deliveries in order and never lost silently, the
//! bounds, counters and deadlines.
//!
//! Run: `cargo +nightly fuzz run session --fuzz-dir tests/fuzz`

#![no_main]

use std::time::Duration;

use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use shardmq::codec::{ProtocolVersion, QoS};
use shardmq::session::SessionConfig;

#[path = "../../session_check/mod.rs"]
mod session_check;

use session_check::{ConnectSpec, Harness, Id, In, Op, Setup, FILTERS, TOPICS, VALID_TOPICS};

/// Ops per input at most (longer inputs are cut).
const MAX_OPS: usize = 256;

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let Ok(setup) = setup(&mut u) else {
        return;
    };
    let mut h = Harness::new(&setup);
    for _ in 0..MAX_OPS {
        if u.is_empty() {
            break;
        }
        let Ok(op) = op(&mut u) else {
            break;
        };
        h.step(&op);
    }
});

fn pick<T: Copy>(u: &mut Unstructured, choices: &[T]) -> Result<T> {
    u.choose(choices).copied()
}

fn qos(u: &mut Unstructured) -> Result<QoS> {
    pick(u, &[QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce])
}

fn secs(u: &mut Unstructured, choices: &[u64]) -> Result<Duration> {
    Ok(Duration::from_secs(pick(u, choices)?))
}

fn setup(u: &mut Unstructured) -> Result<Setup> {
    let cfg = SessionConfig {
        max_inflight: pick(u, &[0, 1, 2, 3, 32])?,
        max_mqueue: pick(u, &[0, 1, 3, 1000])?,
        mqueue_store_qos0: u.arbitrary()?,
        max_awaiting_rel: pick(u, &[0, 1, 2, 100])?,
        await_rel_timeout: secs(u, &[0, 5, 300])?,
        retry_interval: secs(u, &[0, 1, 30])?,
        keepalive_multiplier: 1.5,
        upgrade_qos: u.arbitrary()?,
        max_subscriptions: pick(u, &[0, 1, 2])?,
        session_expiry: secs(u, &[0, 10, 7200, 7200])?,
        max_qos_allowed: if u.ratio(3, 4)? {
            QoS::ExactlyOnce
        } else {
            qos(u)?
        },
        max_topic_alias: pick(u, &[0, 1, 10])?,
        journal: u.arbitrary()?,
    };
    Ok(Setup {
        cfg,
        connect: connect(u)?,
    })
}

fn connect(u: &mut Unstructured) -> Result<ConnectSpec> {
    Ok(ConnectSpec {
        protocol: pick(
            u,
            &[
                ProtocolVersion::V31,
                ProtocolVersion::V311,
                ProtocolVersion::V5,
            ],
        )?,
        clean_start: u.ratio(3, 10)?,
        keep_alive: pick(u, &[0, 1, 5, 60])?,
        receive_maximum: if u.arbitrary()? {
            Some(pick(u, &[1, 2, 3, 65535])?)
        } else {
            None
        },
        session_expiry: if u.arbitrary()? {
            Some(pick(u, &[0, 5, 3600, u32::MAX])?)
        } else {
            None
        },
        will: u.arbitrary()?,
    })
}

/// Mostly the ids of messages in flight; sometimes any id.
fn id(u: &mut Unstructured) -> Result<Id> {
    Ok(if u.ratio(4, 5)? {
        Id::Sent(u.arbitrary()?)
    } else {
        Id::Raw(u.arbitrary()?)
    })
}

fn packet(u: &mut Unstructured) -> Result<In> {
    Ok(match u.int_in_range(0..=12)? {
        0..=2 => In::Publish {
            qos: qos(u)?,
            dup: u.ratio(1, 20)?,
            retain: u.arbitrary()?,
            id: if u.ratio(19, 20)? { Some(id(u)?) } else { None },
            // Mostly valid topic names (an invalid one closes the connection).
            topic: if u.ratio(9, 10)? {
                u.choose_index(VALID_TOPICS)?
            } else {
                u.choose_index(TOPICS.len())?
            },
        },
        3 => In::PubAck(id(u)?),
        4 => In::PubRec(id(u)?, pick(u, &[0, 0x10, 0x80, 0x97])?),
        5 => In::PubRel(id(u)?),
        6 => In::PubComp(id(u)?),
        7 => {
            let n = u.int_in_range(0..=3)?;
            let mut filters = Vec::with_capacity(n);
            for _ in 0..n {
                filters.push((u.choose_index(FILTERS.len())?, qos(u)?, u.arbitrary()?));
            }
            In::Subscribe(u.arbitrary()?, filters)
        }
        8 => {
            let n = u.int_in_range(0..=2)?;
            let mut filters = Vec::with_capacity(n);
            for _ in 0..n {
                filters.push(u.choose_index(FILTERS.len())?);
            }
            In::Unsubscribe(u.arbitrary()?, filters)
        }
        9 => In::PingReq,
        10 => In::Disconnect(
            pick(u, &[0, 4, 0x80])?,
            if u.arbitrary()? {
                Some(pick(u, &[0, 10, 99999])?)
            } else {
                None
            },
        ),
        11 => In::Connect,
        _ => {
            if u.arbitrary()? {
                In::Auth
            } else {
                In::ServerOnly(u.arbitrary()?)
            }
        }
    })
}

fn op(u: &mut Unstructured) -> Result<Op> {
    Ok(match u.int_in_range(0..=31)? {
        0..=9 => Op::Packet(packet(u)?),
        10..=19 => Op::Deliver {
            qos: qos(u)?,
            sub_qos: qos(u)?,
            no_local: u.ratio(1, 5)?,
            retain: u.arbitrary()?,
            own: u.ratio(1, 3)?,
        },
        20 | 21 => Op::Advance(Duration::from_millis(pick(
            u,
            &[1, 499, 1000, 1500, 5000, 30_000, 301_000, 7_200_000],
        )?)),
        22 | 23 => Op::Tick,
        24 => Op::ConnectionLost,
        25..=27 => Op::Reconnect(connect(u)?),
        28 => Op::Api {
            subscribe: u.arbitrary()?,
            filter: u.choose_index(FILTERS.len())?,
            qos: qos(u)?,
        },
        29 => Op::Hold(u.arbitrary()?),
        30 => {
            let len = u.int_in_range(0..=48)?;
            Op::Raw(u.bytes(len)?.to_vec())
        }
        // Runs that move the packet ids on. Wrapping them takes 65535 deliveries, far too
        // slow per input here: `packet_ids_wrap_and_skip_those_in_flight` in
        // tests/prop_session.rs runs the same harness through a wrap.
        _ => Op::Cycle(pick(u, &[1, 7, 300])?),
    })
}
