//! The hash map of the hot paths: the shard's client table and the topic trie's levels,
//! looked up for every packet and every routed message.
//!
//! Owns: the choice of hasher. `ahash` with per-process random keys: several times cheaper
//! than std's SipHash on short keys (client ids, topic levels), and still keyed, so a client
//! cannot choose ids or topics that collide. Must never: be used where iteration order is
//! observable (it differs between runs, as std's does).

/// A `HashMap` with the hot-path hasher. Build it with `FastMap::default()`.
pub type FastMap<K, V> = std::collections::HashMap<K, V, ahash::RandomState>;
