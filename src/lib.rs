//! ShardMQ: a thread-per-core, shared-nothing MQTT broker.
//!
//! This crate is two things:
//! - the **pure MQTT core** (always built): [`codec`], [`topic`], [`session`], [`config`],
//!   [`metrics`], [`retained`], [`durable`] (the journal's format and recovery), [`rules`]
//!   (the rule engine), [`transport`] (the TLS and WebSocket layers), and the administration's decisions in [`admin`] (the policy shards enforce:
//!   bans, auth tables, salted password hashes, the configs whitelist, plugins). None of it
//!   does I/O or knows about threads; all of it is unit-tested on values. (`admin::store`, the
//!   admin state's files, is part of the runtime.)
//! - the **broker** (`feature = "runtime"`): the glue that runs the pure core on the per-core
//!   runtime of `shardmq-shards` (glommio executors, one per core).

pub mod codec;
pub mod config;
pub mod durable;
pub mod fastmap;
pub mod metrics;
pub mod retained;
pub mod rules;
pub mod session;
pub mod topic;
pub mod transport;

pub mod admin;
#[cfg(feature = "runtime")]
pub mod broker;
#[cfg(feature = "runtime")]
pub mod cli;

/// The home shard of a client: `hash(client_id) % shards`. Stable across runs and
/// platforms (FNV-1a), so tests and tools can predict where a client lives.
pub fn home_shard(client_id: &str, shards: usize) -> usize {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in client_id.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    (h % shards.max(1) as u64) as usize
}
