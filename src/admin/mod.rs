//! Administration, the pure part: the plugin catalogue ([`plugins`]), password hashes of the
//! auth tables ([`hash`]), the runtime-settable config whitelist ([`configs`]), the policy
//! shards enforce ([`policy`]) and the durable admin state ([`store`]).
//!
//! Owns: the rules; the management thread (`broker::mgmt::admin`) owns the state and applies
//! them. Must never: touch a shard or the network. Only [`store`] does file I/O, and only
//! when the management thread asks.

pub mod acl;
pub mod configs;
pub mod hash;
pub mod plugins;
pub mod policy;
#[cfg(feature = "runtime")]
pub mod store;
