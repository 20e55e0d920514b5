//! `shardmq-bench`: ShardMQ's bundled MQTT load generator.
//!
//! One process, one worker thread per configured core (optionally pinned), many non-blocking
//! connections per thread on a mio poll loop. Every payload carries the publisher id, a
//! sequence number and the time it was due, so subscribers measure end-to-end latency (HDR
//! histograms) and count loss, duplicates and reordering per publisher.
//!
//! Layout, in the order data flows: [`cli`] (options) → [`plan`] (scenario → clients) →
//! [`run`] (phases) → [`worker`] (a thread's poll loop) → [`conn`] (one connection) →
//! [`wire`] / [`payload`] (bytes) → [`transport`] (TCP, TLS, WebSocket with [`ws`]) → socket;
//! [`probe`] (the `window` probe, run instead of a load); [`rtt`] (the lone-client round-trip
//! probe); [`schedule`] (open-loop send times), [`track`] (loss, duplicates, order), [`stats`]
//! (histograms), [`timer`] (precise wake-ups), [`report`] / [`hgrm`] / [`plot`] (output),
//! [`clock`].
//! Only the pure MQTT codec of `shardmq` is used (`default-features = false`).

pub mod cli;
pub mod clock;
pub mod conn;
pub mod hgrm;
pub mod payload;
pub mod plan;
pub mod plot;
pub mod probe;
pub mod report;
pub mod rtt;
pub mod run;
pub mod schedule;
pub mod stats;
pub mod timer;
pub mod track;
pub mod transport;
pub mod wire;
pub mod worker;
pub mod ws;
