//! ShardMQ's per-core runtime: pinned glommio executors, the cross-shard mesh, listeners and
//! socket hand-over, and the start-up [`preflight`] checks. Knows nothing of MQTT.

pub mod preflight;
